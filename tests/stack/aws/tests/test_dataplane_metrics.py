"""What the data plane publishes into CloudWatch (dataplane/metrics.py) and what
DescribeScalingActivities answers (dataplane/activities.py), in-process against moto's
backends: the request log of a load balancer becomes AWS/ApplicationELB metrics with AWS's
dimensions and meaning, an instance's CPU time becomes AWS/EC2 CPUUtilization, and recorded
activities come back newest first, per group and paged.
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html
https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeScalingActivities.html
"""

from __future__ import annotations

from collections import Counter

import boto3
import pytest
from moto import mock_aws
from moto.cloudwatch.models import cloudwatch_backends

from plinth_aws.dataplane import activities as activities_module
from plinth_aws.dataplane.activities import Activities
from plinth_aws.dataplane.balancers import RequestRecord
from plinth_aws.dataplane.metrics import Metrics

ACCOUNT, REGION = "123456789012", "eu-west-1"
LB = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/app/web/0123456789abcdef"
TG = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/blue/fedcba9876543210"


class Requests:
    """The balancers' side of the contract: a request log and host counts."""

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def take_requests(self) -> list[RequestRecord]:
        taken, self.records = self.records, []
        return taken

    def host_counts(self) -> dict:
        return {(LB, TG): (2, 1)}


class Cpu:
    """The instances' side: CPU seconds used so far per instance."""

    def __init__(self, detailed: bool = True) -> None:
        self.seconds = 0.0
        self.detailed = detailed

    def cpu_seconds(self) -> dict:
        return {"i-0abc": (ACCOUNT, REGION, "web-group", self.seconds, self.detailed)}


class NoDatabases:
    def cpu_seconds(self, arn: str):
        return None


def record(status: int | None, target_status: int | None, elb_error: bool = False, time_taken: float | None = 0.05) -> RequestRecord:
    return RequestRecord(
        load_balancer_arn=LB,
        target_group_arn=TG if target_status is not None else None,
        target_id="i-0abc" if target_status is not None else None,
        status=status,
        target_status=target_status,
        target_response_time=time_taken if target_status is not None else None,
        elb_error=elb_error,
        timestamp=0.0,
    )


def published() -> list:
    return list(cloudwatch_backends[ACCOUNT][REGION].metric_data)


def sums(data, name: str, dimension_names: set[str]) -> float:
    return sum(
        getattr(d, "value", 0.0)
        for d in data
        if d.name == name and {x.name for x in d.dimensions} == dimension_names
    )


@pytest.fixture
def clock():
    now = [1_000_000.0]
    return now


@mock_aws
def test_requests_become_load_balancer_metrics_with_aws_dimensions(clock):
    requests, cpu = Requests(), Cpu()
    metrics = Metrics(requests, cpu, NoDatabases(), lambda: 0.1, clock=lambda: clock[0])
    requests.records = [record(200, 200), record(200, 200), record(500, 500), record(502, None, elb_error=True)]
    clock[0] += 1
    metrics.publish()
    data = published()
    lb = {"LoadBalancer"}
    lb_tg = {"LoadBalancer", "TargetGroup"}
    assert sums(data, "RequestCount", lb) == 4
    assert sums(data, "RequestCount", lb_tg) == 3, "requests the load balancer answered itself reach no group"
    assert sums(data, "HTTPCode_Target_5XX_Count", lb) == 1
    assert sums(data, "HTTPCode_Target_2XX_Count", lb) == 2
    assert sums(data, "HTTPCode_ELB_5XX_Count", lb) == 1
    times = [d.value for d in data if d.name == "TargetResponseTime" and {x.name for x in d.dimensions} == lb]
    assert times == [0.05, 0.05, 0.05], "one value per request a target answered"
    dims = next(d for d in data if d.name == "RequestCount" and len(d.dimensions) == 2).dimensions
    assert {(x.name, x.value) for x in dims} == {
        ("LoadBalancer", "app/web/0123456789abcdef"),
        ("TargetGroup", "targetgroup/blue/fedcba9876543210"),
    }
    assert sums(data, "HealthyHostCount", lb_tg) == 2 and sums(data, "UnHealthyHostCount", lb_tg) == 1
    # No traffic: no request metric at all (alarm math FILLs the gap), host counts as always.
    before = Counter(d.name for d in published())
    clock[0] += 1
    metrics.publish()
    after = Counter(d.name for d in published())
    assert after["RequestCount"] == before["RequestCount"]
    assert after["HealthyHostCount"] == before["HealthyHostCount"] + 1


@mock_aws
def test_cpu_time_becomes_a_share_of_one_vcpu_per_instance_and_per_group(clock):
    requests, cpu = Requests(), Cpu()
    metrics = Metrics(requests, cpu, NoDatabases(), lambda: 0.1, clock=lambda: clock[0])
    metrics.publish()  # the first reading has nothing to compare with
    clock[0] += 2.0
    cpu.seconds += 0.5
    metrics.publish()
    points = [(tuple((x.name, x.value) for x in d.dimensions), d.value) for d in published() if d.name == "CPUUtilization"]
    assert ((("InstanceId", "i-0abc"),), 25.0) in points
    assert ((("AutoScalingGroupName", "web-group"),), 25.0) in points


@mock_aws
def test_without_detailed_monitoring_cpu_is_one_datapoint_per_five_minutes(clock):
    """EC2's basic monitoring: a 60-second alarm on CPUUtilization sees four empty periods of
    every five, which is why Plinth's launch templates turn detailed monitoring on."""
    requests, cpu = Requests(), Cpu(detailed=False)
    metrics = Metrics(requests, cpu, NoDatabases(), lambda: 0.1, clock=lambda: clock[0])
    metrics.publish()
    for _ in range(4):  # four scaled minutes (6 s each at 0.1), busy: still no datapoint
        clock[0] += 6.0
        cpu.seconds += 3.0
        metrics.publish()
        assert not [d for d in published() if d.name == "CPUUtilization"]
    clock[0] += 6.0
    cpu.seconds += 3.0
    metrics.publish()
    points = [d.value for d in published() if d.name == "CPUUtilization" and d.dimensions[0].name == "InstanceId"]
    assert points == [50.0], "one datapoint, the five minutes' average"


@mock_aws
def test_old_data_is_pruned_beyond_what_alarms_read(clock):
    requests, cpu = Requests(), Cpu()
    metrics = Metrics(requests, cpu, NoDatabases(), lambda: 0.01, clock=lambda: clock[0])
    requests.records = [record(200, 200)]
    metrics.publish()
    assert any(d.name == "RequestCount" for d in published())
    clock[0] += 60 * 60  # an hour: far beyond 30 scaled minutes (18 s)
    metrics.publish()
    assert not any(d.name == "RequestCount" for d in published())


@mock_aws
def test_scaling_activities_are_listed_newest_first_per_group_and_paged():
    activities = Activities()
    activities_module.install(activities)
    client = boto3.client("autoscaling", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    template = ec2.create_launch_template(LaunchTemplateName="web", LaunchTemplateData={"ImageId": "ami-12c6146b"})
    for name in ("web", "other"):
        client.create_auto_scaling_group(
            AutoScalingGroupName=name, MinSize=0, MaxSize=1, AvailabilityZones=[f"{REGION}a"],
            LaunchTemplate={"LaunchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"]},
        )
    from moto.autoscaling.models import autoscaling_backends

    groups = autoscaling_backends[ACCOUNT][REGION].autoscaling_groups
    for i in range(3):
        activities.record(ACCOUNT, REGION, groups["web"], f"Launching a new EC2 instance: i-{i}", f"cause {i}")
    activities.record(ACCOUNT, REGION, groups["other"], "Terminating EC2 instance: i-9", "elsewhere", "Failed", "why")
    answer = client.describe_scaling_activities(AutoScalingGroupName="web", MaxRecords=2)
    assert [a["Description"] for a in answer["Activities"]] == [
        "Launching a new EC2 instance: i-2",
        "Launching a new EC2 instance: i-1",
    ]
    assert answer["Activities"][0]["StatusCode"] == "Successful"
    rest = client.describe_scaling_activities(AutoScalingGroupName="web", MaxRecords=2, NextToken=answer["NextToken"])
    assert [a["Description"] for a in rest["Activities"]] == ["Launching a new EC2 instance: i-0"]
    assert "NextToken" not in rest
    other = client.describe_scaling_activities(AutoScalingGroupName="other")["Activities"]
    assert [(a["StatusCode"], a["StatusMessage"]) for a in other] == [("Failed", "why")]
    assert activities.mentions(ACCOUNT, REGION, "web", "i-1") and not activities.mentions(ACCOUNT, REGION, "web", "i-9")
