"""Creates of a name (or client token) that already exists, answered as AWS answers them."""

from conftest import IMAGE_ID, PENDING_DESCRIBES, error_of, network


def test_load_balancer_create_is_idempotent_for_the_same_settings_only(client):
    # https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateLoadBalancer.html
    # ("This operation is idempotent, which means that it completes at most one time. If you
    # attempt to create multiple load balancers with the same settings, each call succeeds.")
    net, elbv2 = network(client("ec2")), client("elbv2")
    first = elbv2.create_load_balancer(Name="alb", Subnets=net["subnets"])["LoadBalancers"][0]
    again = elbv2.create_load_balancer(Name="alb", Subnets=list(reversed(net["subnets"])))["LoadBalancers"][0]
    assert again["LoadBalancerArn"] == first["LoadBalancerArn"]
    assert len(elbv2.describe_load_balancers()["LoadBalancers"]) == 1
    error = error_of(lambda: elbv2.create_load_balancer(Name="alb", Subnets=net["subnets"], Scheme="internal"))
    assert (error["Code"], error["HTTPStatusCode"]) == ("DuplicateLoadBalancerName", 400)


def test_target_group_create_is_idempotent_for_the_same_settings_only(client):
    # https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateTargetGroup.html
    # ("If you attempt to create multiple target groups with the same settings, each call
    # succeeds."; DuplicateTargetGroupName otherwise)
    net, elbv2 = network(client("ec2")), client("elbv2")
    create = lambda port: elbv2.create_target_group(Name="tg", Protocol="HTTP", Port=port, VpcId=net["vpc"])[
        "TargetGroups"][0]["TargetGroupArn"]
    assert create(80) == create(80)
    error = error_of(lambda: create(8080))
    assert (error["Code"], error["HTTPStatusCode"]) == ("DuplicateTargetGroupName", 400)


def test_scaling_group_of_an_existing_name_is_refused(client):
    # https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_CreateAutoScalingGroup.html
    # (AlreadyExists: "You already have an Auto Scaling group or launch configuration with this name.")
    net = network(client("ec2"))
    client("ec2").create_launch_template(LaunchTemplateName="web-lt", LaunchTemplateData={"ImageId": IMAGE_ID})
    autoscaling = client("autoscaling")
    create = lambda: autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="web", LaunchTemplate={"LaunchTemplateName": "web-lt"}, MinSize=0, MaxSize=1,
        VPCZoneIdentifier=net["subnets"][0])
    create()
    assert error_of(create) == {
        "Code": "AlreadyExists",
        "Message": "AutoScalingGroup by this name already exists - A group with the name web already exists",
        "HTTPStatusCode": 400,
    }


def test_db_cluster_of_an_existing_name_is_refused(client):
    # https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBCluster.html
    # (DBClusterAlreadyExistsFault, HTTP 400)
    rds = client("rds")
    create = lambda: rds.create_db_cluster(DBClusterIdentifier="db1", Engine="aurora-mysql",
                                           MasterUsername="admin", MasterUserPassword="password1")
    create()
    assert error_of(create) == {"Code": "DBClusterAlreadyExistsFault", "Message": "DB Cluster already exists",
                                "HTTPStatusCode": 400}


def test_launch_template_of_an_existing_name_is_refused(client):
    # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
    # (InvalidLaunchTemplateName.AlreadyExistsException; moto already refuses this one)
    ec2 = client("ec2")
    create = lambda: ec2.create_launch_template(LaunchTemplateName="web-lt", LaunchTemplateData={"ImageId": IMAGE_ID})
    create()
    assert error_of(create)["Code"] == "InvalidLaunchTemplateName.AlreadyExistsException"


def test_secret_of_an_existing_name_is_refused(client):
    # https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html
    # (ResourceExistsException; moto already refuses this one)
    secrets = client("secretsmanager")
    secrets.create_secret(Name="db", SecretString="x")
    assert error_of(lambda: secrets.create_secret(Name="db", SecretString="x")) == {
        "Code": "ResourceExistsException",
        "Message": "The operation failed because the secret db already exists.",
        "HTTPStatusCode": 400,
    }


def test_iam_role_of_an_existing_name_is_refused(client):
    # https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html
    # (EntityAlreadyExists, HTTP 409; moto already refuses this one)
    iam = client("iam")
    iam.create_role(RoleName="app", AssumeRolePolicyDocument="{}")
    assert error_of(lambda: iam.create_role(RoleName="app", AssumeRolePolicyDocument="{}")) == {
        "Code": "EntityAlreadyExists", "Message": "Role with name app already exists.", "HTTPStatusCode": 409}


def test_nat_gateway_honours_client_token(client):
    # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateNatGateway.html (ClientToken)
    # https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html
    ec2 = client("ec2")
    subnets = network(ec2)["subnets"]
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    create = lambda token, subnet: ec2.create_nat_gateway(
        SubnetId=subnet, AllocationId=allocation, ClientToken=token)["NatGateway"]["NatGatewayId"]
    first = create("token-1", subnets[0])
    assert create("token-1", subnets[0]) == first
    assert len(ec2.describe_nat_gateways()["NatGateways"]) == 1
    error = error_of(lambda: create("token-1", subnets[1]))
    assert (error["Code"], error["HTTPStatusCode"]) == ("IdempotentParameterMismatch", 400)


def test_route_table_honours_client_token(client):
    # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateRouteTable.html (ClientToken)
    ec2 = client("ec2")
    vpc = network(ec2)["vpc"]
    other = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    create = lambda token, in_vpc: ec2.create_route_table(VpcId=in_vpc, ClientToken=token)["RouteTable"]["RouteTableId"]
    first = create("token-1", vpc)
    assert create("token-1", vpc) == first
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]
    assert sorted(t["RouteTableId"] for t in tables if not any(a.get("Main") for a in t["Associations"])) == [first]
    error = error_of(lambda: create("token-1", other))
    assert (error["Code"], error["HTTPStatusCode"]) == ("IdempotentParameterMismatch", 400)
    # Another token is another table.
    assert create("token-2", vpc) != first


def test_launch_template_honours_client_token(client):
    # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateLaunchTemplate.html (ClientToken)
    ec2 = client("ec2")
    create = lambda token, image: ec2.create_launch_template(
        LaunchTemplateName="app", ClientToken=token, LaunchTemplateData={"ImageId": image}
    )["LaunchTemplate"]["LaunchTemplateId"]
    first = create("token-1", "ami-12c6146b")
    assert create("token-1", "ami-12c6146b") == first
    assert len(ec2.describe_launch_templates()["LaunchTemplates"]) == 1
    error = error_of(lambda: create("token-1", "ami-00000001"))
    assert (error["Code"], error["HTTPStatusCode"]) == ("IdempotentParameterMismatch", 400)
    # Without the token the name is taken, as in AWS.
    assert error_of(lambda: create("token-2", "ami-12c6146b"))["Code"] == "InvalidLaunchTemplateName.AlreadyExistsException"


def test_db_cluster_name_stays_taken_while_the_old_cluster_is_deleting(client):
    rds = client("rds")
    create = lambda: rds.create_db_cluster(DBClusterIdentifier="db1", Engine="aurora-mysql",
                                           MasterUsername="admin", MasterUserPassword="password1")
    create()
    rds.delete_db_cluster(DBClusterIdentifier="db1", SkipFinalSnapshot=True)
    assert error_of(create)["Code"] == "DBClusterAlreadyExistsFault"
    for _ in range(PENDING_DESCRIBES + 1):
        rds.describe_db_clusters()
    # Gone now. (Creating it again here would hit moto's own clash of automated snapshot names
    # within the same minute, listed in TESTING.md.)
    assert rds.describe_db_clusters()["DBClusters"] == []
