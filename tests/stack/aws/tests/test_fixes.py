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
