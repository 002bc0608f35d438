"""Measured metrics, put into the emulator's CloudWatch as the AWS services would publish them,
so alarms (`alarms.py`) evaluate what really happened:

| namespace | metric | dimensions | measured from |
|---|---|---|---|
| `AWS/ApplicationELB` | `RequestCount`, `HTTPCode_Target_2XX/3XX/4XX/5XX_Count`, `TargetResponseTime` (every request's time) | `LoadBalancer`; `LoadBalancer` + `TargetGroup` | HAProxy's request log |
| `AWS/ApplicationELB` | `HTTPCode_ELB_5XX_Count` | `LoadBalancer` | the same: 5xx the proxy made itself |
| `AWS/ApplicationELB` | `HealthyHostCount`, `UnHealthyHostCount` | `LoadBalancer` + `TargetGroup` | HAProxy's health checks |
| `AWS/EC2` | `CPUUtilization` | `InstanceId`; `AutoScalingGroupName` | each instance's cgroup, as a share of one vCPU; once per 5 (scaled) minutes unless the instance has detailed monitoring (its own `Monitoring`, or its launch template's) |
| `AWS/RDS` | `CPUUtilization` | `DBClusterIdentifier` | the cluster's MariaDB process |
| `AWS/RDS` | `ServerlessDatabaseCapacity` | `DBClusterIdentifier` | **synthetic**: the cluster's minimum capacity (there is no Aurora Serverless scaling here) |

As on AWS, request metrics are published only for periods that had requests (hence `FILL` in
alarm math), host counts and CPU always. Datapoints are published every `interval()` seconds
(a sixth of a scaled minute, at least 0.25 s) with the time they cover, and data older than the
horizon the alarms need is pruned so evaluation stays cheap.
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/viewing_metrics_with_cloudwatch.html
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/manage-detailed-monitoring.html
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from typing import Callable

# The longest lookback of the alarms the data plane serves: Plinth's scale-in alarm looks at 10
# one-minute periods; keep 30 (scaled) so a describe of recent data still finds something.
HORIZON_MINUTES = 30
# The instances' CPU is shared with the whole host; a datapoint is the share of one vCPU.
VCPUS = 1.0
# An instance without detailed monitoring publishes EC2 metrics once per this many minutes.
BASIC_MONITORING_MINUTES = 5


class Metrics:
    def __init__(
        self,
        balancers,
        instances,
        databases,
        time_scale: Callable[[], float],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._balancers = balancers
        self._instances = instances
        self._databases = databases
        self._time_scale = time_scale
        self._clock = clock
        self._last = clock()
        # instance id -> (when its current datapoint's span began, its CPU seconds then)
        self._last_cpu: dict[str, tuple[float, float]] = {}
        self._last_db_cpu: dict[str, float] = {}
        self._complaints: dict[str, str] = {}

    def interval(self) -> float:
        return max(0.25, 60.0 * self._time_scale() / 6)

    def due(self) -> bool:
        return self._clock() - self._last >= self.interval()

    def publish(self) -> None:
        now = self._clock()
        elapsed = max(now - self._last, 1e-3)
        self._last = now
        # Naive UTC, as moto stores the timestamps of PutMetricData (its reads compare them).
        stamp = datetime.fromtimestamp(now, timezone.utc).replace(tzinfo=None)
        batches: dict[tuple[str, str], dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
        # Each source and each namespace on its own: a source that fails this turn (a proxy's log
        # it cannot read, a database server going away) must not take the others' datapoints
        # with it, or every alarm on them would sit in INSUFFICIENT_DATA with no word why.
        for name, source in [
            ("load balancer requests", lambda: self._requests(batches, stamp)),
            ("target health counts", lambda: self._hosts(batches, stamp)),
            ("instance CPU", lambda: self._instance_cpu(batches, stamp, now)),
            ("database CPU", lambda: self._database(batches, stamp, elapsed)),
        ]:
            try:
                source()
            except Exception as error:
                self._complain(name, error)
        from moto.cloudwatch.models import cloudwatch_backends

        for (account, region), namespaces in batches.items():
            backend = cloudwatch_backends[account][region]
            for namespace, data in namespaces.items():
                try:
                    backend.put_metric_data(namespace, data)
                except Exception as error:
                    self._complain(f"PutMetricData {namespace} in {account}/{region}", error)
        self._prune(now)

    def _complain(self, what: str, error: Exception) -> None:
        """A stderr line per failing source, again only when its error changes."""
        said = f"{type(error).__name__}: {error}"
        if self._complaints.get(what) != said:
            self._complaints[what] = said
            print(f"dataplane: metrics: {what} failed: {said}", file=sys.stderr)

    # -- sources ----------------------------------------------------------------------------

    def _requests(self, batches, stamp: datetime) -> None:
        counts: dict[tuple, float] = defaultdict(float)
        times: dict[tuple, list[float]] = defaultdict(list)
        for record in self._balancers.take_requests():
            account, region, lb = _elb_dimension(record.load_balancer_arn)
            per_lb = (account, region, (("LoadBalancer", lb),))
            scopes = [per_lb]
            if record.target_group_arn:
                scopes.append((account, region, (("LoadBalancer", lb), ("TargetGroup", _tg_dimension(record.target_group_arn)))))
            for scope in scopes:
                counts[(scope, "RequestCount")] += 1
                if record.target_status is not None:
                    counts[(scope, f"HTTPCode_Target_{record.target_status // 100}XX_Count")] += 1
                if record.target_response_time is not None:
                    times[scope].append(record.target_response_time)
            if record.elb_error:
                counts[(per_lb, "HTTPCode_ELB_5XX_Count")] += 1
        for ((account, region, dims), name), value in counts.items():
            batches[(account, region)]["AWS/ApplicationELB"].append(_datum(name, dims, stamp, value=value, unit="Count"))
        for (account, region, dims), values in times.items():
            batches[(account, region)]["AWS/ApplicationELB"].append(
                _datum("TargetResponseTime", dims, stamp, values=values, unit="Seconds")
            )

    def _hosts(self, batches, stamp: datetime) -> None:
        for (lb_arn, tg_arn), (healthy, unhealthy) in self._balancers.host_counts().items():
            account, region, lb = _elb_dimension(lb_arn)
            dims = (("LoadBalancer", lb), ("TargetGroup", _tg_dimension(tg_arn)))
            data = batches[(account, region)]["AWS/ApplicationELB"]
            data.append(_datum("HealthyHostCount", dims, stamp, value=healthy, unit="Count"))
            data.append(_datum("UnHealthyHostCount", dims, stamp, value=unhealthy, unit="Count"))

    def _instance_cpu(self, batches, stamp: datetime, now: float) -> None:
        basic = BASIC_MONITORING_MINUTES * 60.0 * self._time_scale()
        seen: dict[str, tuple[float, float]] = {}
        for instance_id, (account, region, group, seconds, detailed) in self._instances.cpu_seconds().items():
            previous = self._last_cpu.get(instance_id)
            seen[instance_id] = previous or (now, seconds)
            if previous is None:
                continue
            since, used = previous
            if not detailed and now - since < basic:
                continue  # basic monitoring: one datapoint per five minutes, their average
            seen[instance_id] = (now, seconds)
            percent = min(100.0, max(0.0, (seconds - used) / max(now - since, 1e-3) / VCPUS * 100.0))
            data = batches[(account, region)]["AWS/EC2"]
            data.append(_datum("CPUUtilization", (("InstanceId", instance_id),), stamp, value=percent, unit="Percent"))
            if group:
                data.append(
                    _datum("CPUUtilization", (("AutoScalingGroupName", group),), stamp, value=percent, unit="Percent")
                )
        self._last_cpu = seen

    def _database(self, batches, stamp: datetime, elapsed: float) -> None:
        from .instances import _backends

        seen = {}
        for account, region, backend in _backends("rds"):
            for cluster in list(backend.clusters.values()):
                arn = cluster.db_cluster_arn
                seconds = self._databases.cpu_seconds(arn)
                if seconds is None:
                    continue
                seen[arn] = seconds
                dims = (("DBClusterIdentifier", cluster.db_cluster_identifier),)
                data = batches[(account, region)]["AWS/RDS"]
                previous = self._last_db_cpu.get(arn)
                if previous is not None:
                    percent = min(100.0, max(0.0, (seconds - previous) / elapsed * 100.0))
                    data.append(_datum("CPUUtilization", dims, stamp, value=percent, unit="Percent"))
                capacity = getattr(cluster, "serverless_v2_scaling_configuration", None) or {}
                minimum = capacity.get("MinCapacity")
                if minimum is not None:
                    data.append(_datum("ServerlessDatabaseCapacity", dims, stamp, value=float(minimum), unit="Count"))
        self._last_db_cpu = seen

    def _prune(self, now: float) -> None:
        from moto.cloudwatch.models import cloudwatch_backends

        horizon = datetime.fromtimestamp(now - HORIZON_MINUTES * 60 * self._time_scale(), timezone.utc)
        for account, regions in list(cloudwatch_backends.items()):
            for region, backend in list(regions.items()):
                data = backend.metric_data
                if data and _aware(data[0].timestamp) < horizon:
                    backend.metric_data = [d for d in data if _aware(d.timestamp) >= horizon]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _datum(name: str, dims: tuple, stamp: datetime, value: float | None = None, values: list[float] | None = None, unit: str = "None") -> dict:
    datum = {
        "MetricName": name,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dims],
        "Timestamp": stamp,
        "Unit": unit,
    }
    if values is not None:
        datum["Values"] = [float(v) for v in values]
    else:
        datum["Value"] = value
    return datum


def _elb_dimension(arn: str) -> tuple[str, str, str]:
    """(account, region, `app/<name>/<id>`) of a load balancer ARN."""
    parts = arn.split(":", 5)
    return parts[4], parts[3], parts[5].split("loadbalancer/", 1)[-1]


def _tg_dimension(arn: str) -> str:
    """`targetgroup/<name>/<id>` of a target group ARN."""
    return arn.split(":", 5)[5]
