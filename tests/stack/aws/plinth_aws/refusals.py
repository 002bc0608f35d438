"""AWS's refusals that moto does not make: delete guards (a resource something still uses),
creates of a name that already exists, and changes to a database that is not yet available. Each check reads moto's backends and answers with AWS's
error code and message, or None to let the call through to moto.

Refusals moto already makes itself (a target group used by a listener, a DB cluster that still
has instances, a launch template's name taken, a DB instance's identifier taken, a secret's
name taken, an IAM role's name taken) are left to moto and only covered by the tests.
"""

from __future__ import annotations

from typing import Callable

from moto.backends import get_backend

from .protocol import AwsError, AwsRequest

# NAT gateway states in which AWS still holds its network interface (and so its subnet and EIP).
NAT_HOLDS_RESOURCES = ("pending", "available", "deleting")


def check(request: AwsRequest) -> AwsError | None:
    handler = _CHECKS.get((request.service, request.operation))
    return handler(request) if handler else None


def _backend(name: str, request: AwsRequest):
    return get_backend(name)[request.account_id][request.region]


def _live_instances(ec2) -> list:
    return [i for i in ec2.all_instances() if i.state not in ("terminated", "shutting-down")]


# --- EC2 ---------------------------------------------------------------------------------------


def _delete_security_group(request: AwsRequest) -> AwsError | None:
    ec2 = _backend("ec2", request)
    group_id = request.params.get("GroupId")
    if not group_id:
        group = ec2.get_security_group_by_name_or_id(request.params.get("GroupName", ""))
        if group is None:
            return None
        group_id = group.id
    dependent = AwsError("DependencyViolation", f"resource {group_id} has a dependent object")
    for groups in ec2.groups.values():
        for other in groups.values():
            if other.id == group_id:
                continue
            for rule in other.ingress_rules + other.egress_rules:
                if rule.source_group.get("GroupId") == group_id:
                    return dependent
    for instance in _live_instances(ec2):
        if any(group.id == group_id for group in instance.security_groups):
            return dependent
    for eni in ec2.enis.values():
        # moto keeps a terminated instance's interface; AWS deletes it with the instance.
        if eni.instance is not None and eni.instance.state in ("terminated", "shutting-down"):
            continue
        if any(group.id == group_id for group in eni.group_set):
            return dependent
    for balancer in _backend("elbv2", request).load_balancers.values():
        if group_id in (balancer.security_groups or []):
            return dependent
    return None


def _delete_subnet(request: AwsRequest) -> AwsError | None:
    ec2 = _backend("ec2", request)
    subnet_id = request.params.get("SubnetId", "")
    in_use = (
        any(
            nat.subnet_id == subnet_id and nat.state in NAT_HOLDS_RESOURCES
            for nat in ec2.nat_gateways.values()
        )
        or any(instance.subnet_id == subnet_id for instance in _live_instances(ec2))
        or any(
            any(subnet.id == subnet_id for subnet in balancer.subnets)
            for balancer in _backend("elbv2", request).load_balancers.values()
        )
    )
    if in_use:
        return AwsError(
            "DependencyViolation", f"The subnet '{subnet_id}' has dependencies and cannot be deleted."
        )
    return None


def _detach_internet_gateway(request: AwsRequest) -> AwsError | None:
    ec2 = _backend("ec2", request)
    vpc_id = request.params.get("VpcId", "")
    mapped = any(
        instance.public_ip and _subnet_vpc(ec2, instance.subnet_id) == vpc_id
        for instance in _live_instances(ec2)
    ) or any(
        nat.vpc_id == vpc_id and nat.state in NAT_HOLDS_RESOURCES and nat.connectivity_type == "public"
        for nat in ec2.nat_gateways.values()
    ) or any(
        address.eni is not None and _subnet_vpc(ec2, address.eni.subnet.id) == vpc_id
        for address in ec2.addresses
    )
    if mapped:
        return AwsError(
            "DependencyViolation",
            f"Network {vpc_id} has some mapped public address(es). "
            "Please unmap those public address(es) before detaching the gateway.",
        )
    return None


def _subnet_vpc(ec2, subnet_id: str | None) -> str | None:
    for subnets in ec2.subnets.values():
        if subnet_id in subnets:
            return subnets[subnet_id].vpc_id
    return None


def _release_address(request: AwsRequest) -> AwsError | None:
    ec2 = _backend("ec2", request)
    allocation_id = request.params.get("AllocationId")
    public_ip = request.params.get("PublicIp")
    for address in ec2.addresses:
        if address.allocation_id != allocation_id and address.public_ip != public_ip:
            continue
        held_by_nat = any(
            nat.state in NAT_HOLDS_RESOURCES
            and any(entry.get("allocationId") == address.allocation_id for entry in nat.address_set)
            for nat in ec2.nat_gateways.values()
        )
        if held_by_nat:
            # A NAT gateway's address sits on an interface AWS owns, so AWS answers as if the
            # caller had no right to it.
            return AwsError("AuthFailure", "You do not have permission to access the specified resource.")
        if address.instance is not None or address.eni is not None:
            return AwsError("InvalidIPAddress.InUse", f"Address {address.public_ip} is in use.")
    return None


# --- Auto Scaling ------------------------------------------------------------------------------


def _delete_auto_scaling_group(request: AwsRequest) -> AwsError | None:
    if request.params.get("ForceDelete", "false").lower() == "true":
        return None
    group = _backend("autoscaling", request).autoscaling_groups.get(
        request.params.get("AutoScalingGroupName", "")
    )
    if group is None or not group.instance_states:
        return None
    if any(state.lifecycle_state == "Pending" for state in group.instance_states):
        return AwsError(
            "ScalingActivityInProgress",
            "You cannot delete an AutoScalingGroup while there are scaling activities in progress.",
        )
    return AwsError(
        "ResourceInUse",
        "You cannot delete an AutoScalingGroup while there are instances or pending Spot instance "
        "request(s) still in the group.",
    )


def _create_auto_scaling_group(request: AwsRequest) -> AwsError | None:
    name = request.params.get("AutoScalingGroupName", "")
    if name in _backend("autoscaling", request).autoscaling_groups:
        return AwsError(
            "AlreadyExists",
            f"AutoScalingGroup by this name already exists - A group with the name {name} already exists",
        )
    return None


# --- RDS ---------------------------------------------------------------------------------------


def _delete_db_subnet_group(request: AwsRequest) -> AwsError | None:
    rds = _backend("rds", request)
    name = request.params.get("DBSubnetGroupName", "")
    for cluster in rds.clusters.values():
        if cluster.db_subnet_group_name == name:
            return AwsError(
                "InvalidDBSubnetGroupStateFault",
                f"Cannot delete the subnet group '{name}' because at least one database cluster: "
                f"{cluster.db_cluster_identifier} is still using it.",
            )
    for instance in rds.databases.values():
        group = getattr(instance, "db_subnet_group", None)
        if group is not None and group.name == name:
            return AwsError(
                "InvalidDBSubnetGroupStateFault",
                f"Cannot delete the subnet group '{name}' because at least one database instance: "
                f"{instance.db_instance_identifier} is still using it.",
            )
    return None


def _create_db_cluster(request: AwsRequest) -> AwsError | None:
    name = request.params.get("DBClusterIdentifier", "")
    if name.lower() in {key.lower() for key in _backend("rds", request).clusters}:
        return AwsError("DBClusterAlreadyExistsFault", "DB Cluster already exists")
    return None


def _delete_db_cluster(request: AwsRequest) -> AwsError | None:
    cluster = _backend("rds", request).clusters.get(request.params.get("DBClusterIdentifier", ""))
    if cluster is not None and cluster._status == "deleting":
        return AwsError(
            "InvalidDBClusterStateFault",
            f"Cluster {cluster.db_cluster_identifier} is already being deleted.",
        )
    return None


def _delete_db_instance(request: AwsRequest) -> AwsError | None:
    instance = _backend("rds", request).databases.get(
        request.params.get("DBInstanceIdentifier", "").lower()
    )
    if instance is not None and instance.status == "deleting":
        return AwsError(
            "InvalidDBInstanceState",
            f"Instance {instance.db_instance_identifier} is already being deleted.",
        )
    return None


def _modify_db_cluster(request: AwsRequest) -> AwsError | None:
    cluster = _backend("rds", request).clusters.get(request.params.get("DBClusterIdentifier", ""))
    if cluster is not None and cluster.status != "available":
        return AwsError(
            "InvalidDBClusterStateFault",
            f"DB cluster is not available for modification with status {cluster.status}",
        )
    return None


def _modify_db_instance(request: AwsRequest) -> AwsError | None:
    instance = _backend("rds", request).databases.get(
        request.params.get("DBInstanceIdentifier", "").lower()
    )
    if instance is not None and instance.status != "available":
        return AwsError(
            "InvalidDBInstanceState",
            f"DB instance {instance.db_instance_identifier} is not in the available state.",
        )
    return None


_CHECKS: dict[tuple[str, str], Callable[[AwsRequest], AwsError | None]] = {
    ("ec2", "DeleteSecurityGroup"): _delete_security_group,
    ("ec2", "DeleteSubnet"): _delete_subnet,
    ("ec2", "DetachInternetGateway"): _detach_internet_gateway,
    ("ec2", "ReleaseAddress"): _release_address,
    ("autoscaling", "DeleteAutoScalingGroup"): _delete_auto_scaling_group,
    ("autoscaling", "CreateAutoScalingGroup"): _create_auto_scaling_group,
    ("rds", "DeleteDBSubnetGroup"): _delete_db_subnet_group,
    ("rds", "CreateDBCluster"): _create_db_cluster,
    ("rds", "DeleteDBCluster"): _delete_db_cluster,
    ("rds", "DeleteDBInstance"): _delete_db_instance,
    ("rds", "ModifyDBCluster"): _modify_db_cluster,
    ("rds", "ModifyDBInstance"): _modify_db_instance,
}
