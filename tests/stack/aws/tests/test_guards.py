"""Delete guards: AWS refuses to delete what something still uses, with these codes."""

from conftest import IMAGE_ID, PENDING_DESCRIBES, error_of, network, security_group


def _instance(ec2, subnet: str, groups: list[str]) -> str:
    return ec2.run_instances(ImageId=IMAGE_ID, MinCount=1, MaxCount=1, SubnetId=subnet,
                             SecurityGroupIds=groups)["Instances"][0]["InstanceId"]


def _load_balancer(client, net: dict, groups: list[str], name: str = "alb") -> str:
    return client("elbv2").create_load_balancer(Name=name, Subnets=net["subnets"], SecurityGroups=groups)[
        "LoadBalancers"][0]["LoadBalancerArn"]


def _nat(ec2, subnet: str) -> tuple[str, str]:
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation)["NatGateway"]["NatGatewayId"]
    return nat, allocation


def _settle_nat_deletion(ec2, nat: str) -> None:
    for _ in range(PENDING_DESCRIBES + 1):
        ec2.describe_nat_gateways(NatGatewayIds=[nat])


# Security groups. https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSecurityGroup.html
# ("If you attempt to delete a security group that is associated with an instance or network
# interface, is referenced by another security group in the same VPC, or has a VPC association,
# the operation fails with DependencyViolation.")


def test_security_group_referenced_by_another_groups_rule_is_not_deleted(client):
    ec2 = client("ec2")
    net = network(ec2)
    database, app = security_group(ec2, net["vpc"], "db"), security_group(ec2, net["vpc"], "app")
    ec2.authorize_security_group_ingress(GroupId=database, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "UserIdGroupPairs": [{"GroupId": app}]}])
    assert error_of(lambda: ec2.delete_security_group(GroupId=app)) == {
        "Code": "DependencyViolation", "Message": f"resource {app} has a dependent object", "HTTPStatusCode": 400}
    ec2.delete_security_group(GroupId=database)
    ec2.delete_security_group(GroupId=app)


def test_security_group_used_by_an_instance_is_not_deleted(client):
    ec2 = client("ec2")
    net = network(ec2)
    group = security_group(ec2, net["vpc"], "app")
    instance = _instance(ec2, net["subnets"][0], [group])
    assert error_of(lambda: ec2.delete_security_group(GroupId=group))["Code"] == "DependencyViolation"
    ec2.terminate_instances(InstanceIds=[instance])
    ec2.delete_security_group(GroupId=group)


def test_security_group_used_by_a_load_balancer_is_not_deleted(client):
    ec2 = client("ec2")
    net = network(ec2)
    group = security_group(ec2, net["vpc"], "alb")
    arn = _load_balancer(client, net, [group])
    assert error_of(lambda: ec2.delete_security_group(GroupId=group))["Code"] == "DependencyViolation"
    client("elbv2").delete_load_balancer(LoadBalancerArn=arn)
    ec2.delete_security_group(GroupId=group)


# Subnets. https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSubnet.html
# ("You must terminate all running instances in the subnet before you can delete the subnet.")
# and DependencyViolation in https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html


def test_subnet_with_a_nat_gateway_is_not_deleted_until_the_gateway_is_deleted(client):
    ec2 = client("ec2")
    net = network(ec2)
    subnet = net["subnets"][0]
    nat, _ = _nat(ec2, subnet)
    assert error_of(lambda: ec2.delete_subnet(SubnetId=subnet)) == {
        "Code": "DependencyViolation",
        "Message": f"The subnet '{subnet}' has dependencies and cannot be deleted.",
        "HTTPStatusCode": 400,
    }
    ec2.delete_nat_gateway(NatGatewayId=nat)
    assert error_of(lambda: ec2.delete_subnet(SubnetId=subnet))["Code"] == "DependencyViolation", "still deleting"
    _settle_nat_deletion(ec2, nat)
    ec2.delete_subnet(SubnetId=subnet)


def test_subnet_with_an_instance_is_not_deleted(client):
    ec2 = client("ec2")
    net = network(ec2)
    subnet = net["subnets"][0]
    instance = _instance(ec2, subnet, [])
    assert error_of(lambda: ec2.delete_subnet(SubnetId=subnet))["Code"] == "DependencyViolation"
    ec2.terminate_instances(InstanceIds=[instance])
    ec2.delete_subnet(SubnetId=subnet)


def test_subnet_with_a_load_balancer_is_not_deleted(client):
    ec2 = client("ec2")
    net = network(ec2)
    arn = _load_balancer(client, net, [])
    assert error_of(lambda: ec2.delete_subnet(SubnetId=net["subnets"][1]))["Code"] == "DependencyViolation"
    client("elbv2").delete_load_balancer(LoadBalancerArn=arn)
    ec2.delete_subnet(SubnetId=net["subnets"][1])


def test_internet_gateway_is_not_detached_while_public_addresses_are_mapped(client):
    # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DetachInternetGateway.html
    # ("The VPC must not contain any running instances with Elastic IP addresses or public IPv4
    # addresses.")
    ec2 = client("ec2")
    net = network(ec2)
    nat, _ = _nat(ec2, net["subnets"][0])
    assert error_of(lambda: ec2.detach_internet_gateway(InternetGatewayId=net["igw"], VpcId=net["vpc"])) == {
        "Code": "DependencyViolation",
        "Message": f"Network {net['vpc']} has some mapped public address(es). "
        "Please unmap those public address(es) before detaching the gateway.",
        "HTTPStatusCode": 400,
    }
    ec2.delete_nat_gateway(NatGatewayId=nat)
    _settle_nat_deletion(ec2, nat)
    ec2.detach_internet_gateway(InternetGatewayId=net["igw"], VpcId=net["vpc"])


def test_elastic_ip_associated_with_an_instance_is_not_released(client):
    # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ReleaseAddress.html
    # ("[Nondefault VPC] You must use DisassociateAddress to disassociate the Elastic IP address
    # before you can release it. Otherwise, Amazon EC2 returns an error (InvalidIPAddress.InUse).")
    ec2 = client("ec2")
    net = network(ec2)
    instance = _instance(ec2, net["subnets"][0], [])
    address = ec2.allocate_address(Domain="vpc")
    association = ec2.associate_address(AllocationId=address["AllocationId"], InstanceId=instance)["AssociationId"]
    assert error_of(lambda: ec2.release_address(AllocationId=address["AllocationId"])) == {
        "Code": "InvalidIPAddress.InUse", "Message": f"Address {address['PublicIp']} is in use.", "HTTPStatusCode": 400}
    ec2.disassociate_address(AssociationId=association)
    ec2.release_address(AllocationId=address["AllocationId"])


def test_elastic_ip_of_a_nat_gateway_is_released_only_once_the_gateway_is_deleted(client):
    # AWS answers AuthFailure for an address on a NAT gateway's (AWS-owned) interface; see the
    # common client errors: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
    ec2 = client("ec2")
    net = network(ec2)
    nat, allocation = _nat(ec2, net["subnets"][0])
    assert error_of(lambda: ec2.release_address(AllocationId=allocation))["Code"] == "AuthFailure"
    ec2.delete_nat_gateway(NatGatewayId=nat)
    assert error_of(lambda: ec2.release_address(AllocationId=allocation))["Code"] == "AuthFailure"
    _settle_nat_deletion(ec2, nat)
    ec2.release_address(AllocationId=allocation)


def _db_subnet_group(client, net: dict) -> str:
    client("rds").create_db_subnet_group(DBSubnetGroupName="dbnet", DBSubnetGroupDescription="db",
                                         SubnetIds=net["subnets"])
    return "dbnet"


def _cluster(rds, name: str, subnet_group: str | None = None) -> dict:
    options = {"DBSubnetGroupName": subnet_group} if subnet_group else {}
    return rds.create_db_cluster(DBClusterIdentifier=name, Engine="aurora-mysql", MasterUsername="admin",
                                 ManageMasterUserPassword=True, **options)["DBCluster"]


def test_db_subnet_group_in_use_is_not_deleted(client):
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DeleteDBSubnetGroup.html
    rds = client("rds")
    group = _db_subnet_group(client, network(client("ec2")))
    _cluster(rds, "db1", group)
    error = error_of(lambda: rds.delete_db_subnet_group(DBSubnetGroupName=group))
    assert error["Code"] == "InvalidDBSubnetGroupStateFault" and error["HTTPStatusCode"] == 400
    assert "db1" in error["Message"]


def test_db_cluster_with_instances_is_not_deleted(client):
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DeleteDBCluster.html
    # (InvalidDBClusterStateFault; moto already refuses this one)
    rds = client("rds")
    _cluster(rds, "db1")
    rds.create_db_instance(DBInstanceIdentifier="db1-a", DBClusterIdentifier="db1", Engine="aurora-mysql",
                           DBInstanceClass="db.serverless")
    error = error_of(lambda: rds.delete_db_cluster(DBClusterIdentifier="db1", SkipFinalSnapshot=True))
    assert error["Code"] == "InvalidDBClusterStateFault"
    rds.delete_db_instance(DBInstanceIdentifier="db1-a", SkipFinalSnapshot=True)
    # AWS lets the cluster go as soon as its instances are deleting.
    rds.delete_db_cluster(DBClusterIdentifier="db1", SkipFinalSnapshot=True)


def _scaling_group(client, net: dict, name: str = "web", size: int = 1) -> None:
    ec2 = client("ec2")
    ec2.create_launch_template(LaunchTemplateName=f"{name}-lt",
                               LaunchTemplateData={"ImageId": IMAGE_ID, "InstanceType": "t3.micro"})
    client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateName": f"{name}-lt"},
        MinSize=size, MaxSize=size, DesiredCapacity=size, VPCZoneIdentifier=",".join(net["subnets"]))


def test_scaling_group_with_instances_is_not_deleted_without_force_delete(client):
    # https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DeleteAutoScalingGroup.html
    # ("If the group has instances or scaling activities in progress, you must specify the option
    # to force the deletion"; errors ResourceInUse and ScalingActivityInProgress)
    autoscaling = client("autoscaling")
    _scaling_group(client, network(client("ec2")))
    assert error_of(lambda: autoscaling.delete_auto_scaling_group(AutoScalingGroupName="web")) == {
        "Code": "ScalingActivityInProgress",
        "Message": "You cannot delete an AutoScalingGroup while there are scaling activities in progress.",
        "HTTPStatusCode": 400,
    }
    for _ in range(PENDING_DESCRIBES + 1):
        autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["web"])
    assert error_of(lambda: autoscaling.delete_auto_scaling_group(AutoScalingGroupName="web")) == {
        "Code": "ResourceInUse",
        "Message": "You cannot delete an AutoScalingGroup while there are instances or pending Spot "
        "instance request(s) still in the group.",
        "HTTPStatusCode": 400,
    }
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName="web", ForceDelete=True)


def test_target_group_used_by_a_listener_is_not_deleted(client):
    # https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_DeleteTargetGroup.html
    # (ResourceInUse; moto already refuses this one)
    ec2, elbv2 = client("ec2"), client("elbv2")
    net = network(ec2)
    balancer = _load_balancer(client, net, [])
    group = elbv2.create_target_group(Name="tg", Protocol="HTTP", Port=80, VpcId=net["vpc"])[
        "TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(LoadBalancerArn=balancer, Protocol="HTTP", Port=80,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": group}])
    error = error_of(lambda: elbv2.delete_target_group(TargetGroupArn=group))
    assert (error["Code"], error["HTTPStatusCode"]) == ("ResourceInUse", 400)
