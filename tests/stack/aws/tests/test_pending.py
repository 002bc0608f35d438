"""Pending states, with AWS's names and order. The session's emulator ends every transition
after PENDING_DESCRIBES describes that return the resource; one test uses time instead."""

import time

from conftest import IMAGE_ID, PENDING_DESCRIBES, error_of, network


def _states(describe, count: int) -> list[str]:
    return [describe() for _ in range(count)]


def _expected(before: str, after: str) -> list[str]:
    return [before] * PENDING_DESCRIBES + [after]


def _nat(ec2, subnet):
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    return ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation)["NatGateway"]


def test_nat_gateway_is_pending_then_available_and_deleting_then_deleted(client):
    # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_NatGateway.html
    # (State: pending | failed | available | deleting | deleted)
    ec2 = client("ec2")
    nat = _nat(ec2, network(ec2)["subnets"][0])
    assert nat["State"] == "pending"
    state = lambda: ec2.describe_nat_gateways(NatGatewayIds=[nat["NatGatewayId"]])["NatGateways"][0]["State"]
    assert _states(state, PENDING_DESCRIBES + 1) == _expected("pending", "available")

    ec2.delete_nat_gateway(NatGatewayId=nat["NatGatewayId"])
    assert _states(state, PENDING_DESCRIBES + 1) == _expected("deleting", "deleted")


def test_filtering_on_state_sees_the_pending_state(client):
    ec2 = client("ec2")
    nat = _nat(ec2, network(ec2)["subnets"][0])["NatGatewayId"]
    available = lambda: [n["NatGatewayId"] for n in ec2.describe_nat_gateways(
        Filters=[{"Name": "state", "Values": ["available"]}])["NatGateways"]]
    pending = ec2.describe_nat_gateways(Filters=[{"Name": "state", "Values": ["pending"]}])["NatGateways"]
    assert [n["NatGatewayId"] for n in pending] == [nat]
    assert available() == []
    for _ in range(PENDING_DESCRIBES):
        ec2.describe_nat_gateways(NatGatewayIds=[nat])
    assert available() == [nat]


def test_load_balancer_is_provisioning_then_active(client):
    # https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_LoadBalancerState.html
    net = network(client("ec2"))
    elbv2 = client("elbv2")
    created = elbv2.create_load_balancer(Name="alb", Subnets=net["subnets"])["LoadBalancers"][0]
    assert created["State"]["Code"] == "provisioning"
    state = lambda: elbv2.describe_load_balancers(Names=["alb"])["LoadBalancers"][0]["State"]["Code"]
    assert _states(state, PENDING_DESCRIBES + 1) == _expected("provisioning", "active")


def test_db_cluster_and_then_its_instances_are_creating_then_available(client):
    # https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/accessing-monitoring.html
    # (cluster and instance status "creating" -> "available"); the instances finish after the
    # cluster, so a waiter that watches only the cluster returns too early.
    rds = client("rds")
    rds.create_db_cluster(DBClusterIdentifier="db1", Engine="aurora-mysql", MasterUsername="admin",
                          ManageMasterUserPassword=True)
    rds.create_db_instance(DBInstanceIdentifier="db1-a", DBClusterIdentifier="db1", Engine="aurora-mysql",
                           DBInstanceClass="db.serverless")
    cluster = lambda: rds.describe_db_clusters(DBClusterIdentifier="db1")["DBClusters"][0]["Status"]
    instance = lambda: rds.describe_db_instances(DBInstanceIdentifier="db1-a")["DBInstances"][0]["DBInstanceStatus"]

    assert _states(cluster, PENDING_DESCRIBES + 1) == _expected("creating", "available")
    assert _states(instance, PENDING_DESCRIBES + 1) == _expected("creating", "available")


def test_db_instance_waits_for_its_cluster_even_when_only_the_instance_is_watched(client):
    rds = client("rds")
    rds.create_db_cluster(DBClusterIdentifier="db1", Engine="aurora-mysql", MasterUsername="admin",
                          ManageMasterUserPassword=True)
    rds.create_db_instance(DBInstanceIdentifier="db1-a", DBClusterIdentifier="db1", Engine="aurora-mysql",
                           DBInstanceClass="db.serverless")
    instance = lambda: rds.describe_db_instances(DBInstanceIdentifier="db1-a")["DBInstances"][0]["DBInstanceStatus"]
    # Describing the instance also observes its cluster: creating for the cluster's describes,
    # then for its own.
    assert _states(instance, 2 * PENDING_DESCRIBES + 1) == ["creating"] * (2 * PENDING_DESCRIBES) + ["available"]


def test_deleted_db_cluster_stays_deleting_and_keeps_its_name_meanwhile(client):
    rds = client("rds")
    rds.create_db_cluster(DBClusterIdentifier="db1", Engine="aurora-mysql", MasterUsername="admin",
                          MasterUserPassword="password1")
    rds.delete_db_cluster(DBClusterIdentifier="db1", SkipFinalSnapshot=True)
    clusters = lambda: [c["Status"] for c in rds.describe_db_clusters()["DBClusters"]]
    assert _states(clusters, PENDING_DESCRIBES + 1) == _expected(["deleting"], [])


def test_scaling_group_instances_are_pending_then_in_service(client):
    # https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-lifecycle.html
    net = network(client("ec2"))
    client("ec2").create_launch_template(LaunchTemplateName="web-lt", LaunchTemplateData={"ImageId": IMAGE_ID})
    autoscaling = client("autoscaling")
    autoscaling.create_auto_scaling_group(AutoScalingGroupName="web", LaunchTemplate={"LaunchTemplateName": "web-lt"},
                                          MinSize=2, MaxSize=2, VPCZoneIdentifier=",".join(net["subnets"]))
    states = lambda: sorted({i["LifecycleState"] for i in autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]["Instances"]})
    assert _states(states, PENDING_DESCRIBES + 1) == _expected(["Pending"], ["InService"])
    assert len(autoscaling.describe_auto_scaling_instances()["AutoScalingInstances"]) == 2, "no extra launches"


def test_targets_are_initial_until_the_healthy_threshold_of_checks_passes(client):
    # https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html
    # ("initial": Elb.RegistrationInProgress, until HealthyThresholdCount checks pass)
    ec2, elbv2 = client("ec2"), client("elbv2")
    net = network(ec2)
    instance = ec2.run_instances(ImageId=IMAGE_ID, MinCount=1, MaxCount=1, SubnetId=net["subnets"][0])[
        "Instances"][0]["InstanceId"]
    group = elbv2.create_target_group(Name="tg", Protocol="HTTP", Port=80, VpcId=net["vpc"],
                                      HealthyThresholdCount=2)["TargetGroups"][0]["TargetGroupArn"]
    elbv2.register_targets(TargetGroupArn=group, Targets=[{"Id": instance}])
    health = lambda: elbv2.describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"][0][
        "TargetHealth"]
    checks = 2 * PENDING_DESCRIBES
    seen = _states(health, checks + 1)
    assert seen[0] == {"State": "initial", "Reason": "Elb.RegistrationInProgress",
                       "Description": "Target registration is in progress"}
    assert [h["State"] for h in seen] == ["initial"] * checks + ["healthy"]


def test_transitions_can_run_on_time_instead_of_describes(admin, client):
    # A second leaves room for a loaded machine between the create and the first describe.
    admin.configure(pending={"nat_gateway": {"seconds": 1.0}})
    ec2 = client("ec2")
    nat = _nat(ec2, network(ec2)["subnets"][0])["NatGatewayId"]
    state = lambda: ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"]
    assert state() == "pending"
    time.sleep(1.05)
    assert state() == "available"


def test_without_strict_everything_is_available_at_once_as_in_plain_moto(admin, client):
    admin.configure(strict=False)
    ec2 = client("ec2")
    nat = _nat(ec2, network(ec2)["subnets"][0])
    assert nat["State"] == "available"


def test_db_cluster_and_instance_are_not_modified_until_available(client):
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ModifyDBCluster.html
    # (InvalidDBClusterStateFault: "The requested operation can't be performed while the cluster
    # is in this state."); likewise InvalidDBInstanceState for ModifyDBInstance.
    rds = client("rds")
    rds.create_db_cluster(DBClusterIdentifier="db1", Engine="aurora-mysql", MasterUsername="admin",
                          MasterUserPassword="password1")
    rds.create_db_instance(DBInstanceIdentifier="db1-a", DBClusterIdentifier="db1", Engine="aurora-mysql",
                           DBInstanceClass="db.serverless")
    modify = lambda: rds.modify_db_cluster(DBClusterIdentifier="db1", BackupRetentionPeriod=7)
    assert error_of(modify) == {
        "Code": "InvalidDBClusterStateFault",
        "Message": "DB cluster is not available for modification with status creating",
        "HTTPStatusCode": 400,
    }
    assert error_of(lambda: rds.modify_db_instance(DBInstanceIdentifier="db1-a", PromotionTier=2))[
        "Code"] == "InvalidDBInstanceState"
    for _ in range(PENDING_DESCRIBES + 1):
        rds.describe_db_clusters(DBClusterIdentifier="db1")
    modify()
