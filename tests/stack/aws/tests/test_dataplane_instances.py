"""The data plane's instances and the wiring around them, through the emulator's own API, with a
server of their own (data plane on, clocks 20 times faster). Each test builds a small serving
stack with boto3 — VPC, subnets, ALB, target group, listener, instance profile, launch template,
scaling group — and checks what an instance really does: boots from its user data with
cloud-init, fetches its release from S3 with the AWS CLI and the instance role's credentials,
runs its systemd unit as the unit says, is health-checked by the load balancer, and is stopped
for good when terminated. Bad input (a document cloud-init refuses, a release missing from S3)
makes an instance fail its health checks, never the runner.

https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/user-data.html
https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-health-checks.html
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest

from conftest import SERVER, start_server

REGION = "eu-west-1"
SCALE = "0.05"

# The release: a small HTTP server that says who and where it runs.
RELEASE = b'''#!/usr/bin/env python3
import http.server, json, os, signal, sys
def stop(signum, frame):
    print("release: SIGTERM received, draining", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"uid": os.getuid(), "greeting": os.environ.get("GREETING"),
                           "path": self.path, "args": sys.argv[1:]}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
print("release: listening", flush=True)
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
'''

USER_DATA = """#cloud-config
write_files:
  - path: /etc/systemd/system/release.service
    content: |
      [Service]
      Type=exec
      DynamicUser=yes
      Environment="PORT=8080" "GREETING=hello-from-the-unit"
      ExecStart=/opt/release/bin/release serve
      KillSignal=SIGTERM
      TimeoutStopSec=10
      Restart=always
      RestartSec=1
runcmd:
  - [mkdir, -p, "/opt/release/bin"]
  - [aws, s3, cp, --only-show-errors, --region, "eu-west-1", "s3://releases/{key}", "/opt/release/bin/release"]
  - [chmod, "0755", "/opt/release/bin/release"]
  - [systemctl, daemon-reload]
  - [systemctl, enable, --now, release.service]
"""


def start_plane(tmp: Path) -> tuple[subprocess.Popen, str]:
    """A server of its own with the data plane on, its state and log in `tmp`."""
    env = {
        "AWS_REGION": REGION,
        "PLINTH_DATA_PLANE": "1",
        "PLINTH_DATA_PLANE_TIME_SCALE": SCALE,
        "PLINTH_DATA_PLANE_DIR": str(tmp),
        "PLINTH_PENDING_SECONDS": "0.2",
    }
    process, url = start_server(env, stderr=open(tmp / "emulator.log", "w"))
    return process, url


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plane")
    process, url = start_plane(tmp)
    yield url
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=90)


def clients(url: str) -> dict:
    kw = dict(endpoint_url=url, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    return {name: boto3.client(name, **kw) for name in ("ec2", "elbv2", "autoscaling", "iam", "s3")}


def describe(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_plinth/dataplane") as response:
        return json.loads(response.read())


def eventually(what: str, check, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def serving_stack(url: str, user_data: str, release: bytes | None, healthy_threshold: int = 2) -> dict:
    """VPC to scaling group, as Plinth builds them; returns the names and ARNs."""
    c = clients(url)
    name = f"t{uuid.uuid4().hex[:8]}"
    key = f"{name}/release"
    try:
        c["s3"].create_bucket(Bucket="releases", CreateBucketConfiguration={"LocationConstraint": REGION})
    except c["s3"].exceptions.BucketAlreadyOwnedByYou:
        pass
    if release is not None:
        c["s3"].put_object(Bucket="releases", Key=key, Body=release)
    role = c["iam"].create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["RoleName"]
    c["iam"].create_instance_profile(InstanceProfileName=name)
    c["iam"].add_role_to_instance_profile(InstanceProfileName=name, RoleName=role)
    vpc = c["ec2"].create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        c["ec2"].create_subnet(VpcId=vpc, CidrBlock=f"10.77.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
        for i, zone in ((1, "a"), (2, "b"))
    ]
    lb = c["elbv2"].create_load_balancer(Name=name, Subnets=subnets)["LoadBalancers"][0]
    tg = c["elbv2"].create_target_group(
        Name=name, Protocol="HTTP", Port=8080, VpcId=vpc, HealthCheckPath="/health",
        HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2, HealthyThresholdCount=healthy_threshold,
        UnhealthyThresholdCount=2,
    )["TargetGroups"][0]
    c["elbv2"].create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )
    document = user_data.replace("{key}", key)
    c["ec2"].create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData={
            "ImageId": "ami-12c6146b",
            "UserData": base64.b64encode(document.encode()).decode(),
            "IamInstanceProfile": {"Name": name},
            "MetadataOptions": {"HttpTokens": "required"},
        },
    )
    c["autoscaling"].create_auto_scaling_group(
        AutoScalingGroupName=name, MinSize=1, MaxSize=2, DesiredCapacity=1,
        VPCZoneIdentifier=",".join(subnets), LaunchTemplate={"LaunchTemplateName": name, "Version": "$Latest"},
        TargetGroupARNs=[tg["TargetGroupArn"]], HealthCheckType="ELB", HealthCheckGracePeriod=3600,
    )
    return {"name": name, "dns": lb["DNSName"], "tg": tg["TargetGroupArn"], "clients": c}


def health_of(stack: dict) -> list[tuple[str, str, str | None]]:
    answer = stack["clients"]["elbv2"].describe_target_health(TargetGroupArn=stack["tg"])
    return [(d["Target"]["Id"], d["TargetHealth"]["State"], d["TargetHealth"].get("Reason")) for d in answer["TargetHealthDescriptions"]]


def instance_of(url: str, stack: dict) -> tuple[str, dict]:
    group = stack["clients"]["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[stack["name"]])
    instance_id = group["AutoScalingGroups"][0]["Instances"][0]["InstanceId"]
    # The data plane's loop picks a new instance up within half a second.
    instance = eventually(f"the data plane to run {instance_id}", lambda: describe(url)["instances"].get(instance_id))
    return instance_id, instance


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper is gone for good)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def netns_list() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def tear_down(url: str, stack: dict) -> str:
    """Deletes the group (ForceDelete terminates its instance) and waits for the instance to stop."""
    instance_id, _ = instance_of(url, stack)
    stack["clients"]["autoscaling"].delete_auto_scaling_group(AutoScalingGroupName=stack["name"], ForceDelete=True)
    eventually("the instance to stop", lambda: describe(url)["instances"][instance_id]["state"] == "stopped", 60)
    return instance_id


def test_an_instance_boots_from_its_user_data_and_serves_through_the_load_balancer(plane):
    stack = serving_stack(plane, USER_DATA, RELEASE)
    # Initial, then healthy: the proxy's own checks, not a declared state.
    assert health_of(stack)[0][1] == "initial"
    eventually("the target to be healthy", lambda: health_of(stack)[0][1] == "healthy")
    address = describe(plane)["load_balancers"][stack["dns"]]
    with urllib.request.urlopen(f"http://{address}/whoami", timeout=5) as response:
        answer = json.loads(response.read())
    # The unit's command line and Environment= lines, as nobody (DynamicUser=yes): the release
    # the AWS CLI fetched from S3 with the instance role's credentials from the metadata service.
    assert answer == {"uid": 65534, "greeting": "hello-from-the-unit", "path": "/whoami", "args": ["serve"]}
    instance_id, instance = instance_of(plane, stack)
    assert instance["cloud_init_exit"] == 0
    assert instance["units"]["release.service"]["state"] == "active"
    assert instance["pids"], "the instance's processes are in its cgroup"

    # Terminated: the unit gets its KillSignal, the namespace and every process go.
    pids = instance["pids"]
    tear_down(plane, stack)
    assert instance_id not in netns_list()
    for pid in pids:
        assert not alive(pid), f"process {pid} of {instance_id} outlived it"
    journal = Path(describe(plane)["instances"][instance_id]["logs"]) / "release.service.journal"
    text = journal.read_text()
    assert "release: SIGTERM received, draining" in text, text
    assert "Stopped release.service." in text, text


def test_a_document_cloud_init_refuses_fails_the_health_checks_not_the_runner(plane):
    stack = serving_stack(plane, "#cloud-config\nruncmd: 5\nwrite_files: nope\n", RELEASE)
    eventually(
        "the target to fail its checks",
        lambda: health_of(stack)[0][1:] == ("unhealthy", "Target.FailedHealthChecks"),
    )
    instance_id, instance = instance_of(plane, stack)
    assert instance["state"] == "running" and instance["units"] == {}, instance
    tear_down(plane, stack)
    assert instance_id not in netns_list()
    # The runner is still serving: another instance boots fine afterwards.
    good = serving_stack(plane, USER_DATA, RELEASE)
    eventually("a later instance to be healthy", lambda: health_of(good)[0][1] == "healthy")
    tear_down(plane, good)


def test_a_release_missing_from_s3_never_listens_and_says_why_in_its_console(plane):
    stack = serving_stack(plane, USER_DATA, release=None)
    eventually(
        "the target to fail its checks",
        lambda: health_of(stack)[0][1:] == ("unhealthy", "Target.FailedHealthChecks"),
    )
    instance_id, instance = instance_of(plane, stack)
    # The unit keeps restarting (Restart=always) a command that does not exist.
    assert instance["units"]["release.service"]["restarts"] >= 1, instance
    console = (Path(instance["logs"]) / "console.log").read_text()
    assert "404" in console or "does not exist" in console or "Not Found" in console, console[-2000:]
    tear_down(plane, stack)


def test_an_instance_without_credentials_cannot_fetch_its_release(plane):
    """The metadata service gives credentials only for an instance profile that exists."""
    stack = serving_stack(plane, USER_DATA, RELEASE)
    c = stack["clients"]
    c["iam"].remove_role_from_instance_profile(InstanceProfileName=stack["name"], RoleName=stack["name"])
    c["iam"].delete_instance_profile(InstanceProfileName=stack["name"])
    # Replace the running instance: its successor boots with no profile.
    instance_id, _ = instance_of(plane, stack)
    c["autoscaling"].terminate_instance_in_auto_scaling_group(InstanceId=instance_id, ShouldDecrementDesiredCapacity=False)
    successor = eventually(
        "a successor instance",
        lambda: next(
            (i["InstanceId"] for g in c["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[stack["name"]])["AutoScalingGroups"]
             for i in g["Instances"] if i["InstanceId"] != instance_id),
            None,
        ),
    )
    eventually("the successor's boot to end", lambda: describe(plane)["instances"].get(successor, {}).get("cloud_init_exit") is not None, 60)
    console = (Path(describe(plane)["instances"][successor]["logs"]) / "console.log").read_text()
    assert "credentials" in console.lower(), console[-2000:]
    tear_down(plane, stack)


def test_sweep_undoes_what_a_killed_emulator_left(tmp_path):
    process, url = start_plane(tmp_path)
    stack = serving_stack(url, USER_DATA, RELEASE)
    eventually("the target to be healthy", lambda: health_of(stack)[0][1] == "healthy")
    view = describe(url)
    block = view["block"]
    instance = next(iter(view["instances"].values()))
    process.kill()
    process.wait(timeout=10)
    # Its instance, proxy and database processes are orphans now; the sweep finds them.
    sweep = subprocess.run(
        [sys.executable, "-m", "plinth_aws.dataplane.host", "sweep"],
        cwd=SERVER.parent, capture_output=True, text=True, timeout=60,
    )
    assert sweep.returncode == 0, sweep.stderr
    assert str(block) in sweep.stdout, sweep.stdout
    assert f"plinth-{block}-" not in netns_list()
    for pid in instance["pids"]:
        assert not alive(pid), f"process {pid} survived the sweep"
    assert f"plinth-dataplane {block} begin" not in Path("/etc/hosts").read_text()


def test_an_instance_seen_before_moto_names_its_group_joins_the_group_on_a_later_turn(tmp_path):
    """moto's Auto Scaling makes an instance (visible to the loop) before it sets the instance's
    group; the loop must not keep the instance groupless, or the group's `CPUUtilization` (what
    the scaling alarms read) and its launch activity would miss it for good. No server: the
    record and the activity log are the data plane's own objects."""
    from types import SimpleNamespace

    from plinth_aws.dataplane.activities import Activities
    from plinth_aws.dataplane.instances import InstanceRecord, Instances

    activities = Activities()
    instances = Instances.__new__(Instances)
    instances._activities = activities
    record = InstanceRecord("i-0123", "123456789012", REGION, None, tmp_path, 0.0)
    instance = SimpleNamespace(id="i-0123")

    instances._join_group(record, instance)  # the turn that saw it before moto named the group
    assert record.group_name is None
    group = SimpleNamespace(name="asg-web")
    instance.autoscaling_group = group
    instances._join_group(record, instance)  # a later turn
    assert record.group_name == "asg-web"
    launches = [a.description for a in activities.of("123456789012", REGION, "asg-web")]
    assert launches == ["Launching a new EC2 instance: i-0123"]
    instances._join_group(record, instance)  # once only
    assert len(activities.of("123456789012", REGION, "asg-web")) == 1


def test_a_target_registers_once_its_instance_has_booted_below_scale_one(tmp_path):
    """Below scale 1 the load balancer reaches an instance only once its boot has finished (or
    failed): a boot's real seconds must not count twenty-fold against the scaled health checks.
    At scale 1 it is checked from the start, as on AWS. No server: the record is the data
    plane's own object."""
    from plinth_aws.dataplane.instances import InstanceRecord, registered_address

    record = InstanceRecord("i-0123", "123456789012", REGION, "asg-web", tmp_path, 0.0, address="127.77.0.9")
    assert registered_address(record, 0.05) is None, "booting: registration in progress"
    assert registered_address(record, 1.0) == "127.77.0.9", "at scale 1 a booting instance is checked"
    record.failure = "RuntimeError: the netns could not be made"
    assert registered_address(record, 0.05) == "127.77.0.9", "a failed boot is checked (and fails)"
    record.failure = None
    record.state = "running"
    assert registered_address(record, 0.05) == "127.77.0.9"
    record.state = "stopping"
    assert registered_address(record, 0.05) is None
