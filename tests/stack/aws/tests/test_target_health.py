"""Failing targets on demand (a bad release, for rollback tests), and scaling-group instances
registered in the group's target groups as AWS does (`TargetGroupARNs`)."""

from conftest import IMAGE_ID, PENDING_DESCRIBES, network


def _scaling_group_behind(client, name: str, tags: list[dict]) -> tuple[str, str]:
    """A target group tagged `tags` and a two-instance scaling group registered with it."""
    ec2, elbv2, autoscaling = client("ec2"), client("elbv2"), client("autoscaling")
    net = network(ec2)
    extra = {"Tags": tags} if tags else {}
    group = elbv2.create_target_group(Name=name, Protocol="HTTP", Port=8080, VpcId=net["vpc"],
                                      HealthyThresholdCount=2, **extra)["TargetGroups"][0]["TargetGroupArn"]
    ec2.create_launch_template(LaunchTemplateName=f"{name}-lt", LaunchTemplateData={"ImageId": IMAGE_ID})
    autoscaling.create_auto_scaling_group(AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateName": f"{name}-lt"},
                                          MinSize=2, MaxSize=2, VPCZoneIdentifier=",".join(net["subnets"]),
                                          TargetGroupARNs=[group])
    return group, name


def _states(elbv2, group: str) -> list[str]:
    return sorted(d["TargetHealth"]["State"] for d in elbv2.describe_target_health(TargetGroupArn=group)[
        "TargetHealthDescriptions"])


def test_scaling_group_instances_are_registered_in_its_target_groups(client):
    group, name = _scaling_group_behind(client, "web", [])
    instances = sorted(i["InstanceId"] for i in client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[name])["AutoScalingGroups"][0]["Instances"])
    targets = sorted(d["Target"]["Id"] for d in client("elbv2").describe_target_health(TargetGroupArn=group)[
        "TargetHealthDescriptions"])
    assert len(instances) == 2 and targets == instances


def test_a_target_group_matching_a_tag_pattern_has_failing_targets_until_cleared(admin, client):
    elbv2 = client("elbv2")
    green, _ = _scaling_group_behind(client, "green", [{"Key": "plinth.dev/revision", "Value": "bad12345"}])
    document = admin.configure(unhealthy_target_groups=["plinth.dev/revision=bad12345"])
    assert document["unhealthy_target_groups"] == ["plinth.dev/revision=bad12345"]

    for _ in range(3 * PENDING_DESCRIBES):
        assert _states(elbv2, green) == ["unhealthy", "unhealthy"]
    described = elbv2.describe_target_health(TargetGroupArn=green)["TargetHealthDescriptions"][0]["TargetHealth"]
    assert described == {"State": "unhealthy", "Reason": "Target.FailedHealthChecks",
                         "Description": "Health checks failed"}

    admin.configure(unhealthy_target_groups=[])
    # The health checks were counting meanwhile: healthy as soon as they pass again.
    for _ in range(2 * PENDING_DESCRIBES):
        _states(elbv2, green)
    assert _states(elbv2, green) == ["healthy", "healthy"]


def test_other_target_groups_stay_healthy_and_names_and_globs_match(admin, client):
    elbv2 = client("elbv2")
    blue, _ = _scaling_group_behind(client, "blue", [{"Key": "plinth.dev/revision", "Value": "good1234"}])
    admin.configure(unhealthy_target_groups=["plinth.dev/revision=bad*"])
    for _ in range(2 * PENDING_DESCRIBES + 1):
        states = _states(elbv2, blue)
    assert states == ["healthy", "healthy"]

    admin.configure(unhealthy_target_groups=["bl?e"])
    assert _states(elbv2, blue) == ["unhealthy", "unhealthy"]


def test_unhealthy_target_groups_must_be_a_list_of_strings(admin):
    assert admin.request("POST", "/_plinth/config", {"unhealthy_target_groups": "x"})[0] == 400
    assert admin.request("POST", "/_plinth/config", {"unhealthy_target_groups": [1]})[0] == 400
    assert admin.request("GET", "/_plinth/config")[1]["unhealthy_target_groups"] == []
