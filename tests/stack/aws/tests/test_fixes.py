"""Moto bugs the layer fixes (plinth_aws/fixes.py)."""

from conftest import IMAGE_ID, REGION, error_of, network


# https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ModifyDBSubnetGroup.html
# ("Modifies an existing DB subnet group. DB subnet groups must contain at least one subnet in
# at least two AZs in the Amazon Web Services Region.")
def test_a_modified_db_subnet_group_is_still_there_with_its_new_subnets(client):
    ec2, rds = client("ec2"), client("rds")
    net = network(ec2)
    third = ec2.create_subnet(VpcId=net["vpc"], CidrBlock="10.0.3.0/24", AvailabilityZone="us-east-1c")[
        "Subnet"]["SubnetId"]
    rds.create_db_subnet_group(DBSubnetGroupName="dbnet", DBSubnetGroupDescription="db", SubnetIds=net["subnets"])
    rds.modify_db_subnet_group(DBSubnetGroupName="dbnet", SubnetIds=[net["subnets"][0], third])
    group = rds.describe_db_subnet_groups(DBSubnetGroupName="dbnet")["DBSubnetGroups"][0]
    assert sorted(s["SubnetIdentifier"] for s in group["Subnets"]) == sorted([net["subnets"][0], third])
    rds.delete_db_subnet_group(DBSubnetGroupName="dbnet")


# Tags read by id (a dictionary lookup instead of a scan of every tag): describes show each
# resource's own tags, and tag filters select exactly the resources that carry them.
def test_ec2_tag_filters_and_tags_read_by_id(client):
    ec2 = client("ec2")
    ids = []
    for n in range(3):
        vpc = ec2.create_vpc(
            CidrBlock=f"10.{n}.0.0/16",
            TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "fleet", "Value": f"p{n}"}]}],
        )["Vpc"]["VpcId"]
        ids.append(vpc)
    found = ec2.describe_vpcs(Filters=[{"Name": "tag:fleet", "Values": ["p1"]}])["Vpcs"]
    assert [v["VpcId"] for v in found] == [ids[1]]
    assert found[0]["Tags"] == [{"Key": "fleet", "Value": "p1"}]
    ec2.create_tags(Resources=[ids[2]], Tags=[{"Key": "extra", "Value": "x"}])
    tagged = ec2.describe_vpcs(VpcIds=[ids[2]])["Vpcs"][0]["Tags"]
    assert sorted((t["Key"], t["Value"]) for t in tagged) == [("extra", "x"), ("fleet", "p2")]
    assert ec2.describe_vpcs(Filters=[{"Name": "tag-key", "Values": ["extra"]}])["Vpcs"][0]["VpcId"] == ids[2]
    for vpc in ids:
        ec2.delete_vpc(VpcId=vpc)


# A deleted subnet takes its route table and network ACL associations with it: nothing in
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSubnet.html asks to
# disassociate first, and then the table can be deleted ("You must disassociate the route table
# from any subnets before you can delete it.",
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteRouteTable.html) and so can the
# VPC. moto 5.2.5 kept both associations, and DeleteRouteTable / DeleteVpc failed forever.
def _vpc_with_subnets(ec2) -> tuple[str, list[str]]:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"][
            "SubnetId"]
        for n, zone in ((1, "a"), (2, "b"))
    ]
    return vpc, subnets


def _route_table_subnets(ec2, route_table: str) -> list[str]:
    associations = ec2.describe_route_tables(RouteTableIds=[route_table])["RouteTables"][0]["Associations"]
    return sorted(a["SubnetId"] for a in associations if "SubnetId" in a)


def _network_acl_subnets(ec2, vpc: str) -> dict[str, list[str]]:
    acls = ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["NetworkAcls"]
    return {acl["NetworkAclId"]: sorted(a["SubnetId"] for a in acl["Associations"]) for acl in acls}


def test_a_deleted_subnet_leaves_no_route_table_association(client):
    ec2 = client("ec2")
    vpc, (gone, kept) = _vpc_with_subnets(ec2)
    route_table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=route_table, SubnetId=gone)
    ec2.associate_route_table(RouteTableId=route_table, SubnetId=kept)
    ec2.delete_subnet(SubnetId=gone)
    assert _route_table_subnets(ec2, route_table) == [kept]
    assert ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [gone]}])[
        "RouteTables"] == []
    assert error_of(lambda: ec2.delete_route_table(RouteTableId=route_table))["Code"] == "DependencyViolation"
    ec2.delete_subnet(SubnetId=kept)
    assert _route_table_subnets(ec2, route_table) == []
    ec2.delete_route_table(RouteTableId=route_table)
    ec2.delete_vpc(VpcId=vpc)
    assert ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Vpcs"] == []


def test_a_deleted_subnet_leaves_no_network_acl_association(client):
    ec2 = client("ec2")
    vpc, (custom_subnet, default_subnet) = _vpc_with_subnets(ec2)
    default_acl = next(iter(_network_acl_subnets(ec2, vpc)))
    acl = ec2.create_network_acl(VpcId=vpc)["NetworkAcl"]["NetworkAclId"]
    association = next(
        a["NetworkAclAssociationId"]
        for a in ec2.describe_network_acls(NetworkAclIds=[default_acl])["NetworkAcls"][0]["Associations"]
        if a["SubnetId"] == custom_subnet
    )
    ec2.replace_network_acl_association(AssociationId=association, NetworkAclId=acl)
    assert _network_acl_subnets(ec2, vpc) == {default_acl: [default_subnet], acl: [custom_subnet]}
    ec2.delete_subnet(SubnetId=custom_subnet)
    ec2.delete_subnet(SubnetId=default_subnet)
    assert _network_acl_subnets(ec2, vpc) == {default_acl: [], acl: []}
    ec2.delete_network_acl(NetworkAclId=acl)
    ec2.delete_vpc(VpcId=vpc)


# The strict layer's guard refuses to delete a subnet with an instance in it (test_guards.py):
# a refused delete changes nothing, the associations included.
def test_a_refused_subnet_delete_keeps_its_associations(client):
    ec2 = client("ec2")
    vpc, (subnet, _) = _vpc_with_subnets(ec2)
    route_table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=route_table, SubnetId=subnet)
    before = _network_acl_subnets(ec2, vpc)
    instance = ec2.run_instances(ImageId=IMAGE_ID, MinCount=1, MaxCount=1, SubnetId=subnet)["Instances"][0][
        "InstanceId"]
    assert error_of(lambda: ec2.delete_subnet(SubnetId=subnet))["Code"] == "DependencyViolation"
    assert _route_table_subnets(ec2, route_table) == [subnet]
    assert _network_acl_subnets(ec2, vpc) == before
    assert error_of(lambda: ec2.delete_route_table(RouteTableId=route_table))["Code"] == "DependencyViolation"
    ec2.terminate_instances(InstanceIds=[instance])
    ec2.delete_subnet(SubnetId=subnet)
    assert _route_table_subnets(ec2, route_table) == []
    ec2.delete_route_table(RouteTableId=route_table)
