"""Moto bugs the layer fixes (plinth_aws/fixes.py)."""

from conftest import network


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
