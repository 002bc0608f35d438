"""Eventual consistency (plinth_aws/consistency.py): creates show late, deletes linger, added
tags lag, new instance profiles are refused for a while; a client signed with the exempt access
key sees the truth. Every range here is fixed ([d, d]), so each delay is exactly d seconds and
the tests are deterministic; the delays are short (1-2 s), waited for with `time.sleep`."""

from __future__ import annotations

import time

import boto3
import botocore.config
import pytest

from conftest import IMAGE_ID, PENDING_DESCRIBES, REGION, Admin, error_of, network, start_server

EXEMPT_KEY = "PLINTHCONSISTENT"
DELAY = 1.5
# After the delay, a little room for a loaded machine.
PAST = DELAY + 0.3


@pytest.fixture
def truth(server_url, admin):
    """truth("ec2") -> a client signed with the exempt access key: it reads what was written."""

    def make(service: str):
        return boto3.client(
            service,
            endpoint_url=server_url,
            region_name=REGION,
            aws_access_key_id=EXEMPT_KEY,
            aws_secret_access_key="testing",
            config=botocore.config.Config(retries={"total_max_attempts": 1}),
        )

    return make


def lag(admin, **settings) -> dict:
    """The model on with every delay 0 except those given (each [d, d] or an object of ranges)."""
    document = {
        "enabled": True,
        "visible_after": {"default": [0, 0], "tagging": [0, 0]},
        "tags_after": [0, 0],
        "linger": [0, 0],
        "iam_usable_after": [0, 0],
    }
    for key, value in settings.items():
        if key == "visible_after" and isinstance(value, dict):
            document[key] = {**document[key], **value}
        else:
            document[key] = value
    return admin.configure(consistency=document)["consistency"]


def vpc_ids(ec2, **kwargs) -> list[str]:
    return [vpc["VpcId"] for vpc in ec2.describe_vpcs(**kwargs)["Vpcs"]]


def tagged_arns(tagging, **kwargs) -> list[str]:
    return [r["ResourceARN"] for r in tagging.get_resources(**kwargs)["ResourceTagMappingList"]]


def make_vpc(ec2, **tags) -> str:
    specifications = [{"ResourceType": "vpc", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
    return ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=specifications if tags else [])["Vpc"]["VpcId"]


# --- the model off ----------------------------------------------------------------------------------


def test_off_by_default_a_created_vpc_shows_at_once(admin, client):
    assert admin.request("GET", "/_plinth/config")[1]["consistency"]["enabled"] is False
    ec2 = client("ec2")
    vpc = make_vpc(ec2, app="web")
    assert vpc in vpc_ids(ec2)
    assert vpc_ids(ec2, VpcIds=[vpc]) == [vpc]
    assert vpc_ids(ec2, Filters=[{"Name": "tag:app", "Values": ["web"]}]) == [vpc]
    ec2.delete_vpc(VpcId=vpc)
    assert vpc not in vpc_ids(ec2)


# --- creates show late --------------------------------------------------------------------------------


def test_a_created_vpc_is_missing_from_reads_until_visible_after_but_not_for_the_exempt_key(admin, client, truth):
    lag(admin, visible_after={"default": [DELAY, DELAY]})
    ec2, exempt = client("ec2"), truth("ec2")
    vpc = make_vpc(ec2, app="web")
    by_tag = [{"Name": "tag:app", "Values": ["web"]}]

    assert vpc not in vpc_ids(ec2)
    assert vpc_ids(ec2, Filters=by_tag) == []
    assert error_of(lambda: ec2.describe_vpcs(VpcIds=[vpc])) == {
        "Code": "InvalidVpcID.NotFound",
        "Message": f"VpcID {{'{vpc}'}} does not exist.",
        "HTTPStatusCode": 400,
    }
    assert vpc_ids(exempt, VpcIds=[vpc]) == [vpc]
    assert vpc_ids(exempt, Filters=by_tag) == [vpc]
    # The VPC's default security group and main route table come with it.
    assert ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"] == []
    assert ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"] == []
    # Writes see the truth: a subnet in the VPC nobody reads yet is made.
    ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")

    time.sleep(PAST)
    assert vpc in vpc_ids(ec2)
    assert vpc_ids(ec2, VpcIds=[vpc]) == [vpc]
    assert vpc_ids(ec2, Filters=by_tag) == [vpc]
    assert len(ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"]) == 1


def test_a_target_group_and_a_db_subnet_group_show_late_with_their_services_errors(admin, client, truth):
    lag(admin, visible_after={"elasticloadbalancing:target_group": [DELAY, DELAY], "rds": [DELAY, DELAY]})
    ec2, elbv2, rds = client("ec2"), client("elbv2"), client("rds")
    net = network(ec2)
    assert net["vpc"] in vpc_ids(ec2), "a kind not named keeps the default delay (0 here)"
    group = elbv2.create_target_group(Name="tg", Protocol="HTTP", Port=80, VpcId=net["vpc"])["TargetGroups"][0]
    rds.create_db_subnet_group(DBSubnetGroupName="db", DBSubnetGroupDescription="db", SubnetIds=net["subnets"])

    assert error_of(lambda: elbv2.describe_target_groups(Names=["tg"]))["Code"] == "TargetGroupNotFound"
    assert error_of(lambda: elbv2.describe_target_groups(TargetGroupArns=[group["TargetGroupArn"]]))[
        "Code"] == "TargetGroupNotFound"
    assert elbv2.describe_target_groups()["TargetGroups"] == []
    assert error_of(lambda: rds.describe_db_subnet_groups(DBSubnetGroupName="db"))["Code"] == "DBSubnetGroupNotFoundFault"
    assert rds.describe_db_subnet_groups()["DBSubnetGroups"] == []
    assert truth("elbv2").describe_target_groups(Names=["tg"])["TargetGroups"][0]["TargetGroupArn"] == group[
        "TargetGroupArn"]
    assert truth("rds").describe_db_subnet_groups(DBSubnetGroupName="db")["DBSubnetGroups"][0][
        "DBSubnetGroupName"] == "db"

    time.sleep(PAST)
    assert [g["TargetGroupName"] for g in elbv2.describe_target_groups(Names=["tg"])["TargetGroups"]] == ["tg"]
    assert [g["DBSubnetGroupName"] for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]] == ["db"]


def test_the_tagging_api_shows_a_resource_after_its_own_delay(admin, client, truth):
    lag(admin, visible_after={"tagging": [DELAY, DELAY]})
    ec2, tagging = client("ec2"), client("resourcegroupstaggingapi")
    vpc = make_vpc(ec2, app="web")
    filters = {"TagFilters": [{"Key": "app", "Values": ["web"]}]}
    assert vpc_ids(ec2, VpcIds=[vpc]) == [vpc], "EC2 itself shows it at once (default 0)"
    assert tagged_arns(tagging, **filters) == []
    assert [arn.rsplit("/", 1)[-1] for arn in tagged_arns(truth("resourcegroupstaggingapi"), **filters)] == [vpc]

    time.sleep(PAST)
    assert [arn.rsplit("/", 1)[-1] for arn in tagged_arns(tagging, **filters)] == [vpc]


# --- tags added later lag -----------------------------------------------------------------------------


def test_tags_added_later_are_missing_from_filters_for_tags_after_while_create_tags_come_at_once(
    admin, client, truth
):
    lag(admin, tags_after=[DELAY, DELAY])
    ec2, tagging = client("ec2"), client("resourcegroupstaggingapi")
    vpc = make_vpc(ec2, app="web")
    ec2.create_tags(Resources=[vpc], Tags=[{"Key": "owner", "Value": "plinth"}])
    by = lambda key, value: [{"Name": f"tag:{key}", "Values": [value]}]
    tags = lambda client_: {t["Key"]: t["Value"] for t in client_.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["Tags"]}

    assert vpc_ids(ec2, Filters=by("app", "web")) == [vpc]
    assert vpc_ids(ec2, Filters=by("owner", "plinth")) == []
    assert tags(ec2) == {"app": "web"}
    assert tagged_arns(tagging, TagFilters=[{"Key": "owner", "Values": ["plinth"]}]) == []
    assert len(tagged_arns(tagging, TagFilters=[{"Key": "app", "Values": ["web"]}])) == 1
    assert tags(truth("ec2")) == {"app": "web", "owner": "plinth"}
    assert vpc_ids(truth("ec2"), Filters=by("owner", "plinth")) == [vpc]

    time.sleep(PAST)
    assert vpc_ids(ec2, Filters=by("owner", "plinth")) == [vpc]
    assert tags(ec2) == {"app": "web", "owner": "plinth"}
    assert len(tagged_arns(tagging, TagFilters=[{"Key": "owner", "Values": ["plinth"]}])) == 1


# --- deletes linger -----------------------------------------------------------------------------------


def test_a_deleted_vpc_and_security_group_linger_then_are_gone(admin, client, truth):
    lag(admin, linger=[DELAY, DELAY])
    ec2 = client("ec2")
    vpc = make_vpc(ec2)
    group = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
    ec2.delete_security_group(GroupId=group)
    ec2.delete_vpc(VpcId=vpc)

    assert vpc_ids(ec2, VpcIds=[vpc]) == [vpc]
    assert vpc in vpc_ids(ec2)
    assert [g["GroupId"] for g in ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"]] == [group]
    assert error_of(lambda: truth("ec2").describe_vpcs(VpcIds=[vpc]))["Code"] == "InvalidVpcID.NotFound"
    # A write on it answers NotFound, as for anything gone.
    assert error_of(lambda: ec2.delete_vpc(VpcId=vpc))["Code"] == "InvalidVpcID.NotFound"

    time.sleep(PAST)
    assert vpc not in vpc_ids(ec2)
    assert error_of(lambda: ec2.describe_vpcs(VpcIds=[vpc]))["Code"] == "InvalidVpcID.NotFound"
    assert error_of(lambda: ec2.describe_security_groups(GroupIds=[group]))["Code"] == "InvalidGroup.NotFound"


def test_a_deleted_db_cluster_lingers_after_deleting_and_its_name_is_free_meanwhile(admin, client, truth):
    lag(admin, linger=[DELAY, DELAY])
    rds = client("rds")
    create = lambda: rds.create_db_cluster(DBClusterIdentifier="db1", Engine="aurora-mysql",
                                           MasterUsername="admin", MasterUserPassword="password1")
    create()
    status = lambda c: [x["Status"] for x in c.describe_db_clusters()["DBClusters"]]
    for _ in range(PENDING_DESCRIBES + 1):
        status(rds)
    rds.delete_db_cluster(DBClusterIdentifier="db1", SkipFinalSnapshot=True)
    assert [status(rds) for _ in range(PENDING_DESCRIBES)] == [["deleting"]] * PENDING_DESCRIBES
    assert status(truth("rds")) == []
    assert status(rds) == ["deleting"], "gone from moto, it lingers as readers last saw it"

    create()
    assert status(rds) == ["creating"], "the new cluster, not the lingering one"
    time.sleep(PAST)
    assert status(rds) == ["creating"]


# --- IAM propagates late ------------------------------------------------------------------------------


def test_a_new_instance_profile_is_refused_by_ec2_and_auto_scaling_until_iam_usable_after(admin, client, truth):
    lag(admin, iam_usable_after=[DELAY, DELAY])
    ec2, iam, autoscaling = client("ec2"), client("iam"), client("autoscaling")
    net = network(ec2)
    iam.create_role(RoleName="web", AssumeRolePolicyDocument='{"Version": "2012-10-17", "Statement": []}')
    iam.create_instance_profile(InstanceProfileName="web")
    iam.add_role_to_instance_profile(InstanceProfileName="web", RoleName="web")
    ec2.create_launch_template(LaunchTemplateName="web", LaunchTemplateData={
        "ImageId": IMAGE_ID, "IamInstanceProfile": {"Name": "web"}})
    run = lambda: ec2.run_instances(ImageId=IMAGE_ID, MinCount=1, MaxCount=1, SubnetId=net["subnets"][0],
                                    IamInstanceProfile={"Name": "web"})
    group = lambda: autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="web", LaunchTemplate={"LaunchTemplateName": "web"}, MinSize=0, MaxSize=1,
        VPCZoneIdentifier=",".join(net["subnets"]))

    assert error_of(run) == {
        "Code": "InvalidParameterValue",
        "Message": "Value (web) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name",
        "HTTPStatusCode": 400,
    }
    assert error_of(group) == {
        "Code": "ValidationError",
        "Message": "You must use a valid fully-formed launch template. Value (web) for parameter "
        "iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name",
        "HTTPStatusCode": 400,
    }
    assert iam.get_instance_profile(InstanceProfileName="web")["InstanceProfile"]["Roles"][0]["RoleName"] == "web", \
        "IAM's own reads are not delayed here (visible_after 0)"

    time.sleep(PAST)
    assert len(run()["Instances"]) == 1
    group()
    assert [g["AutoScalingGroupName"] for g in autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]] == ["web"]


def test_an_instance_profile_by_arn_is_refused_with_the_arn_message(admin, client):
    lag(admin, iam_usable_after=[DELAY, DELAY])
    ec2, iam = client("ec2"), client("iam")
    net = network(ec2)
    arn = iam.create_instance_profile(InstanceProfileName="web")["InstanceProfile"]["Arn"]
    error = error_of(lambda: ec2.run_instances(ImageId=IMAGE_ID, MinCount=1, MaxCount=1, SubnetId=net["subnets"][0],
                                               IamInstanceProfile={"Arn": arn}))
    assert error["Message"] == f"Value ({arn}) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN"


# --- delays: determinism and settings -----------------------------------------------------------------


def test_delays_are_a_pure_function_of_seed_and_resource_within_their_range():
    from plinth_aws.config import Config
    from plinth_aws.consistency import Consistency

    config = Config()
    config.update({"seed": 7, "consistency": {"enabled": True, "linger": {"default": [0, 4], "ec2:vpc": [1, 2]}}})
    model = Consistency(lambda: config)
    delay = lambda kind, ident: model._delay("linger", "ec2", kind, ident, "linger")
    ids = [f"vpc-{n:08x}" for n in range(50)]
    vpcs = [delay("vpc", i) for i in ids]
    assert vpcs == [Consistency(lambda: config)._delay("linger", "ec2", "vpc", i, "linger") for i in ids]
    assert all(1 <= d <= 2 for d in vpcs) and len(set(vpcs)) == len(vpcs)
    assert all(0 <= delay("subnet", i) <= 4 for i in ids)
    config.update({"seed": 8})
    assert [delay("vpc", i) for i in ids] != vpcs, "another seed, other delays"


def test_config_names_the_bad_consistency_key_and_keeps_the_old_settings(admin):
    cases = [
        ({"lag": True}, "lag"),
        ({"linger": [3, 1]}, "consistency.linger.default"),
        ({"tags_after": [1]}, "consistency.tags_after.default"),
        ({"visible_after": {"ec2:nope": [0, 1]}}, "ec2:nope"),
        ({"linger": {"elasticloadbalancing:rule": [0, 1]}}, "elasticloadbalancing:rule"),  # not modelled
        ({"iam_usable_after": "soon"}, "consistency.iam_usable_after"),
        ({"enabled": "yes"}, "consistency.enabled"),
    ]
    for consistency, named in cases:
        status, document = admin.request("POST", "/_plinth/config", {"consistency": consistency})
        assert status == 400, consistency
        assert named in document["error"], (consistency, document)
    current = admin.request("GET", "/_plinth/config")[1]["consistency"]
    assert current["enabled"] is False
    assert current["exempt_access_key"] == EXEMPT_KEY
    assert current["visible_after"] == {"default": [0.0, 5.0], "tagging": [0.0, 15.0]}


def test_plinth_lag_turns_the_model_on_at_start_and_plinth_consistency_sets_it():
    process, url = start_server({"PLINTH_LAG": "1", "PLINTH_CONSISTENCY": '{"linger": [1, 2], "exempt_access_key": "K"}'})
    try:
        document = Admin(url).request("GET", "/_plinth/config")[1]["consistency"]
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert document["enabled"] is True
    assert document["linger"] == {"default": [1.0, 2.0]}
    assert document["exempt_access_key"] == "K"
    assert document["iam_usable_after"] == {"default": [2.0, 8.0]}, "the rest at their defaults"


def test_a_post_replaces_the_whole_consistency_key_with_defaults_for_what_it_leaves_out(admin):
    admin.configure(consistency={"enabled": True, "linger": [1, 1]})
    document = admin.configure(consistency={"visible_after": {"ec2": [2, 3]}})["consistency"]
    assert document["enabled"] is False
    assert document["linger"] == {"default": [0.0, 5.0]}
    assert document["visible_after"] == {"default": [0.0, 5.0], "tagging": [0.0, 15.0], "ec2": [2.0, 3.0]}


# --- a DB cluster made again under its name -------------------------------------------------------------


def test_a_db_cluster_deleted_then_made_again_under_the_same_identifier_is_made(client):
    # moto kept the deleted cluster's automated snapshot `rds:db1-<minute>`, so the second
    # create failed with DBClusterSnapshotAlreadyExistsFault within the same minute.
    rds = client("rds")
    create = lambda: rds.create_db_cluster(DBClusterIdentifier="db1", Engine="aurora-mysql",
                                           MasterUsername="admin", MasterUserPassword="password1")
    create()
    clusters = lambda: [c["Status"] for c in rds.describe_db_clusters()["DBClusters"]]
    assert [clusters() for _ in range(PENDING_DESCRIBES + 1)][-1] == ["available"]
    rds.delete_db_cluster(DBClusterIdentifier="db1", SkipFinalSnapshot=True)
    assert [clusters() for _ in range(PENDING_DESCRIBES + 1)][-1] == []
    assert rds.describe_db_cluster_snapshots(DBClusterIdentifier="db1")["DBClusterSnapshots"] == []

    assert create()["DBCluster"]["Status"] == "creating"
    assert clusters() == ["creating"]
