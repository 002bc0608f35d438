"""Pending states with AWS's names and order, by holding moto's own objects in a transitional
state until their time has come, so every describe (and every filter on state) shows them the
way AWS would:

    NAT gateway          pending -> available;  deleting -> deleted (address and ENI freed then)
    load balancer        provisioning -> active
    DB cluster           creating -> available;  deleting -> gone
    DB instance          creating -> available, counted from its cluster's availability;
                         deleting -> gone
    scaling-group inst.  Pending -> InService
    target               initial (Elb.RegistrationInProgress) -> healthy, after the target
                         group's HealthyThresholdCount checks; `unhealthy` (failed health checks)
                         instead, for as long as the group matches `unhealthy_target_groups`

Also here, because it belongs to a cluster's delete: a deleted cluster's automated snapshots go
with it, as in AWS (moto kept them; see _drop_automated_snapshots).

A transition ends at the first of: its `seconds` elapsed, or `describes` describe calls that
returned the resource (see config.DEFAULT_PENDING). Time is checked on every AWS call, describe
counts after every describe. Nothing here runs when `strict` is off: moto's plain behaviour.
"""

from __future__ import annotations

import fnmatch
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from moto.autoscaling.models import AutoScalingBackend, FakeAutoScalingGroup, InstanceState
from moto.ec2.models.nat_gateways import NatGatewayBackend
from moto.elbv2.models import ELBv2Backend, FakeHealthStatus, FakeLoadBalancer, FakeTargetGroup
from moto.rds.models import DBCluster, RDSBackend

from .config import Config

Key = tuple[str, str]  # (kind, resource id)


@dataclass
class Transition:
    kind: str
    resource_id: str
    finish: Callable[[], None]
    started: float
    # Health checks for targets (the figures in the settings are per check); 1 elsewhere.
    checks: int = 1
    seen: int = 0
    # A transition that must end first; this one's clock starts when it does.
    waits_for: Key | None = None
    dependents: list = field(default_factory=list)


class Lifecycle:
    def __init__(self, config: Callable[[], Config]) -> None:
        self._config = config
        self._lock = threading.RLock()
        self._pending: dict[Key, Transition] = {}
        # Told when a resource held after its delete (`deleting`) is let go: the consistency
        # model (consistency.py) makes it linger from then.
        self.on_removed: Callable[[object], None] = lambda resource: None

    @property
    def active(self) -> bool:
        return self._config().strict

    def start(
        self,
        kind: str,
        resource_id: str,
        finish: Callable[[], None],
        checks: int = 1,
        waits_for: Key | None = None,
    ) -> None:
        with self._lock:
            transition = Transition(kind, resource_id, finish, time.monotonic(), checks)
            if waits_for in self._pending:
                transition.waits_for = waits_for
                self._pending[waits_for].dependents.append((kind, resource_id))
            self._pending[(kind, resource_id)] = transition

    def cancel(self, kind: str, resource_id: str) -> None:
        with self._lock:
            self._pending.pop((kind, resource_id), None)

    def unhealthy(self, target_group, elbv2) -> bool:
        """Whether the settings say this target group's targets fail their health checks."""
        patterns = self._config().unhealthy_target_groups
        if not patterns:
            return False
        tags = elbv2.tagging_service.get_tag_dict_for_resource(target_group.arn)
        subjects = [target_group.name, target_group.arn, *(f"{k}={v}" for k, v in tags.items())]
        return any(fnmatch.fnmatchcase(subject, pattern) for pattern in patterns for subject in subjects)

    def is_pending(self, kind: str, resource_id: str) -> bool:
        with self._lock:
            return (kind, resource_id) in self._pending

    def observed(self, resource_ids: list[str]) -> None:
        """A describe returned these resources; it also observes what each one waits for."""
        wanted = set(resource_ids)
        with self._lock:
            for transition in list(self._pending.values()):
                if transition.resource_id in wanted:
                    transition.seen += 1
                    prerequisite = self._pending.get(transition.waits_for)
                    if prerequisite is not None and prerequisite.resource_id not in wanted:
                        prerequisite.seen += 1

    def advance(self) -> None:
        """End every transition whose time has come (called before each AWS call is served)."""
        with self._lock:
            for key, transition in list(self._pending.items()):
                if key in self._pending and self._due(transition):
                    self._end(key)

    def reset(self) -> None:
        with self._lock:
            self._pending.clear()

    def _due(self, transition: Transition) -> bool:
        if transition.waits_for is not None:
            return False
        setting = self._config().pending_for(transition.kind)
        describes, seconds = setting.get("describes"), setting.get("seconds")
        if describes is None and seconds is None:
            return True
        if describes is not None and transition.seen >= describes * transition.checks:
            return True
        elapsed = time.monotonic() - transition.started
        return seconds is not None and elapsed >= seconds * transition.checks

    def _end(self, key: Key) -> None:
        transition = self._pending.pop(key)
        transition.finish()
        for dependent_key in transition.dependents:
            dependent = self._pending.get(dependent_key)
            if dependent is not None:
                dependent.waits_for = None
                dependent.started = time.monotonic()
                dependent.seen = 0


def install(lifecycle: Lifecycle) -> None:
    """Wrap the moto methods that create, delete and describe the resources with a pending state."""
    _install_nat_gateways(lifecycle)
    _install_load_balancers(lifecycle)
    _install_targets(lifecycle)
    _install_databases(lifecycle)
    _install_scaling_instances(lifecycle)


def _wrap(cls: type, name: str, make: Callable[[Callable], Callable]) -> None:
    original = getattr(cls, name)
    setattr(cls, name, make(original))


def _observing(lifecycle: Lifecycle, ids_of: Callable[[object], list[str]]):
    """A wrapper for a describe method: count each returned resource as observed."""

    def make(original: Callable) -> Callable:
        def describe(self, *args, **kwargs):
            result = original(self, *args, **kwargs)
            lifecycle.observed(ids_of(result))
            return result

        return describe

    return make


def _install_nat_gateways(lifecycle: Lifecycle) -> None:
    def make_create(original):
        def create_nat_gateway(self, *args, **kwargs):
            nat = original(self, *args, **kwargs)
            if lifecycle.active:
                nat.state = "pending"
                lifecycle.start("nat_gateway", nat.id, lambda: _set_if(nat, "state", "pending", "available"))
            return nat

        return create_nat_gateway

    def make_delete(original):
        def delete_nat_gateway(self, nat_gateway_id):
            nat = original(self, nat_gateway_id)
            if lifecycle.active:
                lifecycle.cancel("nat_gateway", nat.id)
                nat.state = "deleting"
                lifecycle.start("nat_gateway_delete", nat.id, lambda: _nat_deleted(self, nat))
            return nat

        return delete_nat_gateway

    _wrap(NatGatewayBackend, "create_nat_gateway", make_create)
    _wrap(NatGatewayBackend, "delete_nat_gateway", make_delete)
    _wrap(
        NatGatewayBackend,
        "describe_nat_gateways",
        _observing(lifecycle, lambda nats: [nat.id for nat in nats]),
    )


def _nat_deleted(ec2, nat) -> None:
    """A deleted NAT gateway lets go of its address and interface (moto keeps both forever)."""
    nat.state = "deleted"
    for address in ec2.addresses:
        if address.eni is nat._eni:
            address.eni = None
            address.association_id = None
    ec2.enis.pop(nat._eni.id, None)


def _install_load_balancers(lifecycle: Lifecycle) -> None:
    def make_create(original):
        def create_load_balancer(self, *args, **kwargs):
            balancer = original(self, *args, **kwargs)
            if lifecycle.active and balancer.state == "provisioning" and not _tracked(balancer):
                balancer._plinth_tracked = True
                lifecycle.start(
                    "load_balancer", balancer.arn, lambda: _set_if(balancer, "state", "provisioning", "active")
                )
            return balancer

        return create_load_balancer

    def make_activate(original):
        # moto activates every balancer on any describe; a tracked one waits for its transition.
        def activate(self):
            if not _tracked(self):
                original(self)

        return activate

    _wrap(ELBv2Backend, "create_load_balancer", make_create)
    _wrap(FakeLoadBalancer, "activate", make_activate)
    _wrap(
        ELBv2Backend,
        "describe_load_balancers",
        _observing(lifecycle, lambda balancers: [balancer.arn for balancer in balancers]),
    )


def _install_targets(lifecycle: Lifecycle) -> None:
    def make_register(original):
        def register(self, targets):
            new = [target["Id"] for target in targets if target["Id"] not in self.targets]
            original(self, targets)
            if lifecycle.active:
                for target_id in new:
                    lifecycle.start(
                        "target", f"{self.arn}|{target_id}", lambda: None, checks=int(self.healthy_threshold_count)
                    )

        return register

    def make_deregister(original):
        def deregister(self, targets):
            original(self, targets)
            for target in targets:
                lifecycle.cancel("target", f"{self.arn}|{target['Id']}")

        return deregister

    def make_health_for(original):
        def health_for(self, target, ec2_backend):
            health = original(self, target, ec2_backend)
            if health.status in ("healthy", "initial") and lifecycle.unhealthy(self, _elbv2_of(self)):
                return FakeHealthStatus(
                    health.instance_id,
                    health.port,
                    health.health_check_port,
                    "unhealthy",
                    "Target.FailedHealthChecks",
                    "Health checks failed",
                )
            if health.status == "healthy" and lifecycle.is_pending("target", f"{self.arn}|{target['Id']}"):
                return FakeHealthStatus(
                    health.instance_id,
                    health.port,
                    health.health_check_port,
                    "initial",
                    "Elb.RegistrationInProgress",
                    "Target registration is in progress",
                )
            return health

        return health_for

    def make_describe(original):
        def describe_target_health(self, target_group_arn, targets):
            result = original(self, target_group_arn, targets)
            lifecycle.observed([f"{target_group_arn}|{health.instance_id}" for health in result])
            return result

        return describe_target_health

    _wrap(FakeTargetGroup, "register", make_register)
    _wrap(FakeTargetGroup, "deregister", make_deregister)
    _wrap(FakeTargetGroup, "health_for", make_health_for)
    _wrap(ELBv2Backend, "describe_target_health", make_describe)


def _elbv2_of(target_group):
    """The ELBv2 backend that holds `target_group` (its tags live there)."""
    from moto.elbv2.models import elbv2_backends

    account, region = target_group.arn.split(":")[4], target_group.arn.split(":")[3]
    return elbv2_backends[account][region]


def _install_databases(lifecycle: Lifecycle) -> None:
    plain_status = DBCluster.status
    plain_members = DBCluster._members

    # moto shows a new cluster as `creating` for exactly one read; a tracked one shows its state.
    DBCluster.status = property(
        lambda self: self._status if _tracked(self) else plain_status.fget(self), plain_status.fset
    )
    # AWS lets a cluster go once its instances are deleting; we keep those visible meanwhile.
    DBCluster._members = property(
        lambda self: [member for member in plain_members.fget(self) if member.status != "deleting"]
    )

    def make_create_cluster(original):
        def create_db_cluster(self, kwargs):
            cluster = original(self, kwargs)
            if lifecycle.active:
                cluster._plinth_tracked = True
                cluster._status = "creating"
                lifecycle.start(
                    "db_cluster", cluster.db_cluster_arn, lambda: _set_if(cluster, "_status", "creating", "available")
                )
            return cluster

        return create_db_cluster

    def make_create_instance(original):
        def create_db_instance(self, db_kwargs):
            database = original(self, db_kwargs)
            if lifecycle.active:
                database.status = "creating"
                cluster = self.clusters.get(database.db_cluster_identifier or "")
                lifecycle.start(
                    "db_instance",
                    database.db_instance_arn,
                    lambda: _set_if(database, "status", "creating", "available"),
                    waits_for=("db_cluster", cluster.db_cluster_arn) if cluster else None,
                )
            return database

        return create_db_instance

    def make_delete_cluster(original):
        def delete_db_cluster(self, cluster_identifier, snapshot_name=None):
            cluster = original(self, cluster_identifier, snapshot_name)
            if lifecycle.active:
                _drop_automated_snapshots(self, cluster)
                # Keep it visible as `deleting` (its name stays taken) until the transition ends.
                lifecycle.cancel("db_cluster", cluster.db_cluster_arn)
                cluster._plinth_tracked = True
                cluster._status = "deleting"
                self.clusters[cluster_identifier] = cluster
                lifecycle.start(
                    "db_cluster_delete",
                    cluster.db_cluster_arn,
                    lambda: _remove_if(self.clusters, cluster_identifier, cluster) and lifecycle.on_removed(cluster),
                )
            return cluster

        return delete_db_cluster

    def make_delete_instance(original):
        def delete_db_instance(self, db_instance_identifier, *args, **kwargs):
            database = original(self, db_instance_identifier, *args, **kwargs)
            if lifecycle.active:
                lifecycle.cancel("db_instance", database.db_instance_arn)
                identifier = database.db_instance_identifier
                self.databases[identifier] = database
                lifecycle.start(
                    "db_instance_delete",
                    database.db_instance_arn,
                    lambda: _remove_if(self.databases, identifier, database) and lifecycle.on_removed(database),
                )
            return database

        return delete_db_instance

    _wrap(RDSBackend, "create_db_cluster", make_create_cluster)
    _wrap(RDSBackend, "create_db_instance", make_create_instance)
    _wrap(RDSBackend, "delete_db_cluster", make_delete_cluster)
    _wrap(RDSBackend, "delete_db_instance", make_delete_instance)
    _wrap(
        RDSBackend,
        "describe_db_clusters",
        _observing(lifecycle, lambda clusters: [cluster.db_cluster_arn for cluster in clusters]),
    )
    _wrap(
        RDSBackend,
        "describe_db_instances",
        _observing(lifecycle, lambda databases: [database.db_instance_arn for database in databases]),
    )


def _drop_automated_snapshots(rds, cluster) -> None:
    """AWS deletes a cluster's automated backups with it (keeping them is an opt-in Plinth does
    not use); moto keeps its `rds:<id>-<minute>` snapshot, so a cluster made again under the
    same identifier in the same minute failed with DBClusterSnapshotAlreadyExistsFault. Manual
    snapshots, the final one included, stay."""
    identifier = cluster.db_cluster_identifier.lower()
    for name, snapshot in list(rds.cluster_snapshots.items()):
        if snapshot.snapshot_type == "automated" and snapshot.db_cluster_identifier.lower() == identifier:
            del rds.cluster_snapshots[name]


def _install_scaling_instances(lifecycle: Lifecycle) -> None:
    def make_init(original):
        def __init__(self, *args, **kwargs):
            original(self, *args, **kwargs)
            if lifecycle.active and self.lifecycle_state == "InService":
                self.lifecycle_state = "Pending"
                lifecycle.start(
                    "asg_instance", self.instance.id, lambda: _set_if(self, "lifecycle_state", "Pending", "InService")
                )

        return __init__

    def active_instances(self):
        # Pending instances count toward capacity in AWS; moto would launch more to replace them.
        return [state for state in self.instance_states if state.lifecycle_state in ("Pending", "InService")]

    _wrap(InstanceState, "__init__", make_init)
    FakeAutoScalingGroup.active_instances = active_instances
    _wrap(
        AutoScalingBackend,
        "describe_auto_scaling_groups",
        _observing(
            lifecycle,
            lambda groups: [state.instance.id for group in groups for state in group.instance_states],
        ),
    )
    _wrap(
        AutoScalingBackend,
        "describe_auto_scaling_instances",
        _observing(lifecycle, lambda states: [state.instance.id for state in states]),
    )


def _tracked(resource: object) -> bool:
    return getattr(resource, "_plinth_tracked", False)


def _set_if(resource: object, attribute: str, expected: str, value: str) -> None:
    """Move on only from the state we set: something else (a delete) may have moved it since."""
    if getattr(resource, attribute) == expected:
        setattr(resource, attribute, value)


def _remove_if(table: dict, key: str, resource: object) -> bool:
    if table.get(key) is resource:
        del table[key]
        return True
    return False
