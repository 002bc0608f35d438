"""The data plane's load balancers (plinth_aws/dataplane/balancers.py): each ALB moto holds is an
HAProxy that forwards real requests by the listener's weights, redirects, terminates TLS with
the ACM certificate, checks its targets' health as the target group says, reloads without losing
a request, and logs every request for the metrics.

The rendering tests need nothing but HAProxy's `-c`; the process tests run moto in-process
(`mock_aws`), fake instances as small HTTP servers on 127.0.0.1, and need root (the Host makes a
bridge and writes /etc/hosts). Health checks run at `time_scale` 0.05: a 5 s interval is 0.25 s.
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html
"""

from __future__ import annotations

import http.client
import http.server
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import boto3
import pytest
from cryptography import x509
from moto import mock_aws

from plinth_aws.dataplane import balancers as balancers_module
from plinth_aws.dataplane.balancers import (
    Action,
    Balancers,
    BalancerView,
    FixedResponse,
    HealthCheck,
    Listener,
    Paths,
    Redirect,
    Target,
    TargetGroup,
    Track,
    matcher_codes,
    observe,
    parse_request,
    render,
    server_state,
)
from plinth_aws.dataplane.host import Host

REGION = "us-east-1"
SCALE = 0.05
HAPROXY = shutil.which("haproxy", path=os.environ.get("PATH", "") + ":/usr/sbin") or "/usr/sbin/haproxy"

needs_haproxy = pytest.mark.skipif(not Path(HAPROXY).exists(), reason="needs HAProxy")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not Path(HAPROXY).exists(), reason="the data plane needs root and HAProxy"
)

TG_A = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-a/0123456789abcdef"
TG_B = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-b/fedcba9876543210"
TG_C = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-c/00000000000000cc"
LB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/1111111111111111"


# -- rendering ------------------------------------------------------------------------------------


def group(arn: str, name: str, *targets: Target, **health) -> TargetGroup:
    return TargetGroup(arn=arn, name=name, health=HealthCheck(**health), targets=tuple(targets))


def view(*listeners: Listener, groups=()) -> BalancerView:
    return BalancerView(LB, "web", "web-1.us-east-1.elb.amazonaws.com", tuple(listeners), tuple(groups))


def rendered_lines(result) -> list[str]:
    return [line.strip() for line in result.config.splitlines()]


def check_config(result, tmp_path: Path) -> None:
    """What render made is a configuration HAProxy accepts, with its files in place."""
    if not Path(HAPROXY).exists():
        return
    for name, content in result.files.items():
        (tmp_path / name).write_text(content)
    (tmp_path / "haproxy.cfg").write_text(result.config)
    (tmp_path / "server-state").write_text("1\n")
    checked = subprocess.run([HAPROXY, "-c", "-q", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr + result.config


@pytest.fixture
def paths(tmp_path) -> Paths:
    return Paths(tmp_path, tmp_path / "stats.sock")


def test_render_forward_to_one_group(paths, tmp_path):
    result = render(
        view(
            Listener(80, "HTTP", Action("forward", forward=((TG_A, 1),))),
            groups=[group(TG_A, "web-a", Target("i-1", "127.0.0.1", 8080), path="/health")],
        ),
        "127.78.0.1",
        "key1",
        paths,
    )
    lines = rendered_lines(result)
    backend = result.backends and next(iter(result.backends))
    assert result.backends == {backend: TG_A}
    assert "bind 127.78.0.1:80" in lines
    assert f"default_backend {backend}" in lines
    # The checked server, and its fail-open twin used only while no checked server is up.
    assert "server i-1_127.0.0.1:8080 127.0.0.1:8080 check" in lines
    assert "server open_i-1_127.0.0.1:8080 127.0.0.1:8080 backup" in lines
    assert "option allbackups" in lines
    assert any(line.startswith("http-check send meth GET uri '/health' ver HTTP/1.1") for line in lines)
    assert "expose-fd listeners" in result.config and "option idle-close-on-response" in lines
    assert "load-server-state-from-file global" in lines
    spec = result.servers[(backend, "i-1_127.0.0.1:8080")]
    assert (spec.target_group_arn, spec.target_id, spec.checked, spec.fail_open) == (TG_A, "i-1", True, False)
    check_config(result, tmp_path)


def test_render_weighted_forward_is_exactly_the_listener_weights(paths, tmp_path):
    action = Action("forward", forward=((TG_A, 30), (TG_B, 70), (TG_C, 0)))
    groups = [group(TG_A, "web-a"), group(TG_B, "web-b"), group(TG_C, "web-c")]
    result = render(view(Listener(80, "HTTP", action), groups=groups), "127.78.0.1", "key1", paths)
    names = {arn: name for name, arn in result.backends.items()}
    lines = rendered_lines(result)
    assert "http-request set-var(txn.pick) rand(100)" in lines
    assert f"use_backend {names[TG_A]} if {{ var(txn.pick) -m int lt 30 }}" in lines
    assert f"default_backend {names[TG_B]}" in lines
    # Weight 0 gets nothing (its backend exists, no rule leads there).
    assert not any(names[TG_C] in line for line in lines if line.startswith(("use_backend", "default_backend")))
    check_config(result, tmp_path)


def test_render_redirect_with_aws_placeholders(paths, tmp_path):
    https = Listener(80, "HTTP", Action("redirect", redirect=Redirect(protocol="HTTPS", port="443", status=301)))
    custom = Listener(
        8080,
        "HTTP",
        Action("redirect", redirect=Redirect(host="new.example.com", path="/v2/#{path}", query="from=#{port}", status=302)),
    )
    result = render(view(https, custom), "127.78.0.1", "key1", paths)
    lines = rendered_lines(result)
    assert (
        "http-request redirect code 301 location 'https://%[hdr(host),field(1,:)]:443/%[path,regsub(^/,)]?%[query]'"
        " if { query -m len ge 1 }" in lines
    )
    assert "http-request redirect code 301 location 'https://%[hdr(host),field(1,:)]:443/%[path,regsub(^/,)]'" in lines
    assert "http-request redirect code 302 location 'http://new.example.com:8080/v2/%[path,regsub(^/,)]?from=8080'" in lines
    check_config(result, tmp_path)


def test_render_https_with_the_certificate_bundle(paths, tmp_path):
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n"
    listener = Listener(443, "HTTPS", Action("forward", forward=((TG_A, 1),)), certificates=(pem,))
    result = render(view(listener, groups=[group(TG_A, "web-a")]), "127.78.0.1", "key1", paths)
    [(name, content)] = result.files.items()
    assert content == pem and name.endswith(".pem")
    assert f"bind 127.78.0.1:443 ssl crt {paths.directory / name} alpn h2,http/1.1" in rendered_lines(result)
    assert "http-request set-header X-Forwarded-Proto https" in rendered_lines(result)


def test_render_health_check_settings(paths, tmp_path):
    settings = dict(
        protocol="HTTPS", port="8081", path="/ready", interval=5 * SCALE, timeout=2 * SCALE,
        healthy_threshold=3, unhealthy_threshold=4, matcher="200-299",
    )
    result = render(
        view(
            Listener(80, "HTTP", Action("forward", forward=((TG_A, 1),))),
            groups=[group(TG_A, "web-a", Target("i-1", "127.0.0.1", 8080), **settings)],
        ),
        "127.78.0.1",
        "key1",
        paths,
    )
    lines = rendered_lines(result)
    assert "default-server inter 250ms fastinter 250ms downinter 250ms rise 3 fall 4" in lines
    assert "timeout check 1000ms" in lines or "timeout check 1s" in lines
    assert "http-check expect status 200-299" in lines
    assert "server i-1_127.0.0.1:8080 127.0.0.1:8080 check port 8081 check-ssl verify none" in lines
    # The Host of a check is the target's address and port, as AWS sends it.
    assert any("hdr Host %[srv_name,field(2,_)] hdr User-Agent ELB-HealthChecker/2.0" in line for line in lines)
    # Floors: an interval scaled to nothing is still 200 ms; a timeout is never under a second
    # (a real app on a shared machine must not fail a check AWS would pass).
    tiny = render(
        view(groups=[group(TG_A, "web-a", Target("i-1", "127.0.0.1", 8080), interval=0.001, timeout=0.5)]),
        "127.78.0.1", "key1", paths,
    )
    assert "default-server inter 200ms fastinter 200ms downinter 200ms rise 5 fall 2" in rendered_lines(tiny)
    assert "timeout check 1000ms" in rendered_lines(tiny) or "timeout check 1s" in rendered_lines(tiny)
    check_config(result, tmp_path)


@pytest.mark.parametrize(
    "matcher,expected", [("200", "200"), ("200-299", "200-299"), ("200,202", "200,202"), ("200-299,302", "200-299,302"), ("ok", "200"), ("", "200")]
)
def test_matcher_forms(matcher, expected):
    assert matcher_codes(matcher) == expected


def test_render_fixed_response(paths, tmp_path):
    listener = Listener(80, "HTTP", Action("fixed-response", fixed=FixedResponse(503, "text/plain", "down for 'maintenance'\n")))
    result = render(view(listener), "127.78.0.1", "key1", paths)
    [(name, content)] = result.files.items()
    assert content == "down for 'maintenance'\n"
    assert f"http-request return status 503 content-type 'text/plain' file {paths.directory / name}" in rendered_lines(result)
    check_config(result, tmp_path)


def test_server_state_starts_new_servers_down(paths):
    before = render(
        view(groups=[group(TG_A, "web-a", Target("i-1", "127.0.0.1", 8080))]), "127.78.0.1", "k", paths
    ).servers
    after = render(
        view(groups=[group(TG_A, "web-a", Target("i-1", "127.0.0.1", 8080), Target("i-2", "127.0.0.1", 8081))]),
        "127.78.0.1", "k", paths,
    ).servers
    backend = next(iter(after))[0]
    dump = (
        "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state\n"
        f"3 {backend} 1 i-1_127.0.0.1:8080 127.0.0.1 2 0 1 1 5 15 3 4 6 0 0 0 - 8080 - 0 0 - - 0\n"
        f"3 {backend} 2 open_i-1_127.0.0.1:8080 127.0.0.1 2 0 1 1 5 1 0 2 0 0 0 0 - 8080 - 0 0 - - 0\n"
        f"3 {backend} 3 gone_127.0.0.1:9 127.0.0.1 2 0 1 1 5 15 3 4 6 0 0 0 - 9 - 0 0 - - 0\n"
    )
    lines = server_state(dump, after, before).splitlines()
    assert lines[0] == "1"
    assert any(line.startswith(f"3 {backend} 1 i-1_127.0.0.1:8080 127.0.0.1 2 ") for line in lines)  # kept, UP
    assert not any("gone_" in line for line in lines)
    [new] = [line for line in lines if "i-2_" in line and not line.split()[3].startswith("open_")]
    fields = new.split()
    assert (fields[1], fields[3], fields[5], fields[12]) == (backend, "i-2_127.0.0.1:8081", "0", "0")  # DOWN, health 0
    assert not any(line.split()[3] == "open_i-2_127.0.0.1:8081" for line in lines[2:])  # twins start UP


def test_observe_maps_haproxy_to_aws_states():
    track = Track(since=0.0)
    assert observe(track, "DOWN", "INI", "", 0.1, 1.0)[1] == "Elb.RegistrationInProgress"
    assert observe(track, "DOWN 1/3", "L7OK", "200", 0.3, 1.0)[1] == "Elb.InitialHealthChecking"
    assert observe(track, "UP", "L7OK", "200", 0.8, 1.0) == ("healthy", None, None)
    assert observe(track, "UP 1/2", "L7STS", "500", 1.0, 1.0) == ("healthy", None, None)  # not yet `fall`
    assert observe(track, "DOWN", "L7STS", "500", 1.2, 1.0) == (
        "unhealthy", "Target.ResponseCodeMismatch", "Health checks failed with these codes: [500]"
    )
    # Passing again but not yet `rise` times: still unhealthy, for the last failure's reason.
    assert observe(track, "DOWN 1/3", "L7OK", "200", 1.5, 1.0)[1] == "Target.ResponseCodeMismatch"
    never = Track(since=0.0)
    assert observe(never, "DOWN", "L4TOUT", "", 0.5, 1.0)[0] == "initial"  # fewer than `fall` intervals
    assert observe(never, "DOWN", "L4TOUT", "", 1.1, 1.0) == ("unhealthy", "Target.Timeout", "Request timed out")
    refused = Track(since=0.0)
    assert observe(refused, "DOWN", "L4CON", "", 2.0, 1.0) == ("unhealthy", "Target.FailedHealthChecks", "Health checks failed")


def test_parse_request_tells_target_errors_from_the_balancers():
    names = {"k": (LB, {"tg-a": TG_A}, {("tg-a", "i-1_127.0.0.1:8080"): "i-1", ("tg-a", "open_i-1_127.0.0.1:8080"): "i-1"})}.get
    target = parse_request("plinth-alb k listener-80 tg-a i-1_127.0.0.1:8080 500 12 ---- 1700000000.250", names)
    assert (target.target_group_arn, target.target_id, target.status, target.target_status, target.elb_error) == (TG_A, "i-1", 500, 500, False)
    assert target.target_response_time == pytest.approx(0.012) and target.timestamp == pytest.approx(1700000000.25)
    refused = parse_request("plinth-alb k listener-80 tg-a open_i-1_127.0.0.1:8080 502 -1 SC-- 1700000000.300", names)
    assert (refused.status, refused.target_status, refused.target_response_time, refused.elb_error) == (502, None, None, True)
    redirect = parse_request("plinth-alb k listener-80 listener-80 <NOSRV> 301 -1 LR-- 1700000000.400", names)
    assert (redirect.target_group_arn, redirect.target_id, redirect.elb_error) == (None, None, False)
    assert parse_request("Server tg-a/i-1 is UP", names) is None
    assert parse_request("plinth-alb unknown listener-80 x y 200 1 ---- 1.0", names) is None


# -- with processes -------------------------------------------------------------------------------


class App:
    """A fake instance's app: `codes` maps a path prefix to the status it answers."""

    def __init__(self, name: str, codes: dict[str, int]) -> None:
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                code = next((c for prefix, c in app.codes.items() if self.path.startswith(prefix)), 200)
                body = f"{app.name} {code}\n".encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.name, self.codes = name, codes
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # Health checks hang up as soon as they read the status line; not an error here.
        self.server.handle_error = lambda request, address: None
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def aws(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield lambda service: boto3.client(service, region_name=REGION)


@pytest.fixture
def world(aws, tmp_path):
    """moto, a Host, the Balancers over them, and the apps' addresses by instance id."""
    host = Host(Path(tmp_path))
    addresses: dict[str, str] = {}
    balancers = Balancers(host, address_of=addresses.get, time_scale=lambda: SCALE, haproxy=HAPROXY)
    apps: list[App] = []
    world = World(aws, host, balancers, addresses, apps)
    try:
        yield world
        pids = world.haproxy_pids()
        assert pids, "no HAProxy ran"
        balancers.close()
        assert not [pid for pid in pids if alive(pid)], "close() left an HAProxy behind"
        assert balancers.endpoints() == {}
        hosts = Path("/etc/hosts").read_text()
        assert not [name for name in world.dns_names if name in hosts], "close() left a hosts line"
    finally:
        balancers.close()
        for app in apps:
            app.close()
        host.close()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class World:
    def __init__(self, aws, host, balancers, addresses, apps) -> None:
        self.elbv2, self.ec2 = aws("elbv2"), aws("ec2")
        self.aws = aws
        self.host, self.balancers, self.addresses, self.apps = host, balancers, addresses, apps
        vpc = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.vpc = vpc
        self.subnets = [
            self.ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
            for i, zone in enumerate("ab")
        ]
        self.count = 0
        self.kept: list = []
        self.dns_names: list[str] = []

    def app(self, codes: dict[str, int] | None = None) -> tuple[str, App]:
        """A fake instance id and its app, reachable at 127.0.0.1:<app.port>."""
        self.count += 1
        instance_id = f"i-{self.count:017x}"
        app = App(instance_id, codes or {})
        self.apps.append(app)
        self.addresses[instance_id] = "127.0.0.1"
        return instance_id, app

    def balancer(self, name: str) -> dict:
        arn = self.elbv2.create_load_balancer(Name=name, Subnets=self.subnets)["LoadBalancers"][0]["LoadBalancerArn"]
        # moto activates a balancer on its next describe.
        described = self.elbv2.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"][0]
        self.dns_names.append(described["DNSName"])
        return described

    def group(self, name: str, targets: list[tuple[str, int]], **settings) -> str:
        options = dict(
            HealthCheckPath="/health", HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2,
            HealthyThresholdCount=3, UnhealthyThresholdCount=2,
        )
        options.update(settings)
        arn = self.elbv2.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=self.vpc, **options)["TargetGroups"][0]["TargetGroupArn"]
        if targets:
            self.elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": i, "Port": p} for i, p in targets])
        return arn

    def listen(self, balancer: dict, port: int, actions: list[dict], protocol: str = "HTTP", **extra) -> str:
        return self.elbv2.create_listener(
            LoadBalancerArn=balancer["LoadBalancerArn"], Protocol=protocol, Port=port, DefaultActions=actions, **extra
        )["Listeners"][0]["ListenerArn"]

    def until(self, condition, timeout: float = 10.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.balancers.reconcile()
            value = condition()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"{what} not reached within {timeout} s")

    def address(self, balancer: dict) -> str:
        return self.until(lambda: self.balancers.endpoints().get(balancer["DNSName"]), what="the balancer's proxy")

    def haproxy_pids(self) -> list[int]:
        pids = []
        for proxy in list(self.balancers._proxies.values()):
            if proxy.process is None:
                continue
            pids.append(proxy.process.pid)
            try:
                pids += sorted(balancers_module._processes(proxy.master)[0])
            except OSError:
                pass
        return pids


def get(address: str, port: int, path: str = "/", host: str = "web", connection=None):
    conn = connection or http.client.HTTPConnection(address, port, timeout=5)
    conn.request("GET", path, headers={"Host": host})
    response = conn.getresponse()
    body = response.read()
    if connection is None:
        conn.close()
    return response.status, response.getheader("Location"), body.decode()


def forward(arn: str) -> list[dict]:
    return [{"Type": "forward", "TargetGroupArn": arn}]


def weighted(*pairs: tuple[str, int]) -> list[dict]:
    return [{"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": a, "Weight": w} for a, w in pairs]}}]


@needs_root
def test_health_from_real_checks(world):
    good, good_app = world.app({"/health": 200})
    bad, bad_app = world.app({"/health": 500})
    gone = "i-0000000000000dead"
    world.addresses[gone] = "127.0.0.1"
    tg = world.group("checked", [(good, good_app.port), (bad, bad_app.port), (gone, closed_port())])
    unused = world.group("spare", [(good, good_app.port)])
    balancer = world.balancer("health")
    world.listen(balancer, 80, forward(tg))
    address = world.address(balancer)
    # The DNS name resolves on this machine to the proxy's loopback address.
    assert socket.gethostbyname(balancer["DNSName"]) == address

    # New targets start `initial`: no request goes to a target before it passed `rise` checks.
    first = world.balancers.target_health(tg, good)
    assert first[0] == "initial" and first[1] in ("Elb.RegistrationInProgress", "Elb.InitialHealthChecking"), first
    began = time.monotonic()
    world.until(lambda: world.balancers.target_health(tg, good)[0] == "healthy", what="healthy after rise checks")
    assert time.monotonic() - began >= 2 * 5 * SCALE - 0.05, "healthy before HealthyThresholdCount checks"

    assert world.until(lambda: world.balancers.target_health(tg, bad)[0] == "unhealthy" and world.balancers.target_health(tg, bad)) == (
        "unhealthy", "Target.ResponseCodeMismatch", "Health checks failed with these codes: [500]"
    )
    assert world.until(lambda: world.balancers.target_health(tg, gone)[0] == "unhealthy" and world.balancers.target_health(tg, gone)) == (
        "unhealthy", "Target.FailedHealthChecks", "Health checks failed"
    )
    assert world.balancers.target_health(unused, good) == (
        "unused", "Target.NotInUse", "Target group is not configured to receive traffic from the load balancer"
    )
    assert world.balancers.target_health("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/x/1", good) is None
    assert world.balancers.host_counts()[(balancer["LoadBalancerArn"], tg)] == (1, 2)
    # Only the healthy target gets requests.
    statuses = {get(address, 80)[2] for _ in range(10)}
    assert statuses == {f"{good} 200\n"}

    # The target starts failing: healthy until `fall` checks failed, then unhealthy.
    good_app.codes["/health"] = 503
    assert world.until(lambda: world.balancers.target_health(tg, good)[0] == "unhealthy" and world.balancers.target_health(tg, good))[2] == (
        "Health checks failed with these codes: [503]"
    )


@needs_root
def test_weighted_split_and_reloads_lose_no_request(world):
    a, a_app = world.app({"/health": 200})
    b, b_app = world.app({"/health": 200})
    tg_a = world.group("blue", [(a, a_app.port)])
    tg_b = world.group("green", [(b, b_app.port)])
    balancer = world.balancer("weights")
    listener = world.listen(balancer, 80, weighted((tg_a, 30), (tg_b, 70)))
    address = world.address(balancer)
    world.until(
        lambda: world.balancers.target_health(tg_a, a)[0] == "healthy" and world.balancers.target_health(tg_b, b)[0] == "healthy",
        what="both healthy",
    )
    world.balancers.take_requests()

    served = [get(address, 80)[2].split()[0] for _ in range(400)]
    share = served.count(a) / len(served)
    assert abs(share - 0.30) < 0.08, share  # 3.5 standard deviations of 400 draws
    assert served.count(a) + served.count(b) == 400

    # A bounded request loop (a keep-alive client and a new connection per request) while the
    # weights change five times, each change a reload.
    failures, answers, stop = [], [], threading.Event()

    def client(keep_alive: bool) -> None:
        conn = None
        while not stop.is_set():
            try:
                if keep_alive and conn is None:
                    conn = http.client.HTTPConnection(address, 80, timeout=5)
                status, _, body = get(address, 80, connection=conn if keep_alive else None)
                answers.append(body.split()[0]) if status == 200 else failures.append(status)
            except Exception as error:  # a refused or reset connection is a lost request
                failures.append(repr(error))
                conn = None

    clients = [threading.Thread(target=client, args=(keep,)) for keep in (True, False, True)]
    for thread in clients:
        thread.start()
    reloads_before = len(world.balancers.reload_seconds())
    try:
        for weights in [(90, 10), (10, 90), (50, 50), (0, 100), (100, 0)]:
            world.elbv2.modify_listener(ListenerArn=listener, DefaultActions=weighted((tg_a, weights[0]), (tg_b, weights[1])))
            world.balancers.reconcile()
            time.sleep(0.3)
        marker = len(answers)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=10)
    reloads = world.balancers.reload_seconds()[reloads_before:]
    assert len(reloads) == 5, reloads
    assert failures == [], failures[:5]
    assert len(answers) > 200
    # The last weights (100/0) hold once reloaded; a keep-alive connection may finish one
    # request on the old worker.
    assert answers[marker + 3 :].count(b) == 0
    print(f"\n{len(answers)} requests over {len(reloads)} reloads, none failed; reload took "
          f"{min(reloads) * 1000:.0f}-{max(reloads) * 1000:.0f} ms")
    # Every request is in the log, each with its target group and target.
    records = world.until(lambda: (lambda r: r if len(r) >= 400 + len(answers) else None)(_taken_for(world)), what="records")
    assert all(r.load_balancer_arn == balancer["LoadBalancerArn"] and r.status == 200 and not r.elb_error for r in records)
    assert {r.target_group_arn for r in records} == {tg_a, tg_b}
    assert {r.target_id for r in records} == {a, b}
    assert all(r.target_response_time is not None and r.target_response_time >= 0 for r in records)


def _taken_for(world) -> list:
    """Every record taken so far in this test (take_requests hands each out once)."""
    world.kept.extend(world.balancers.take_requests())
    return list(world.kept)


@needs_root
def test_redirect_and_fixed_response(world):
    app_id, app = world.app({"/health": 200})
    tg = world.group("site", [(app_id, app.port)])
    balancer = world.balancer("redirects")
    world.listen(
        balancer, 80,
        [{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}],
    )
    world.listen(
        balancer, 8080,
        [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503", "ContentType": "text/plain", "MessageBody": "maintenance"}}],
    )
    world.listen(balancer, 8081, forward(tg))
    address = world.address(balancer)
    dns = balancer["DNSName"]
    assert get(address, 80, "/shop/cart?item=1", host=dns)[:2] == (301, f"https://{dns}:443/shop/cart?item=1")
    assert get(address, 80, "/", host=f"{dns}:80")[:2] == (301, f"https://{dns}:443/")
    assert get(address, 8080) == (503, None, "maintenance")
    records = world.until(lambda: (lambda r: r if len(r) >= 3 else None)(_taken_for(world)), what="records")
    assert [(r.status, r.target_group_arn, r.elb_error) for r in records[:2]] == [(301, None, False), (301, None, False)]
    # A fixed 503 is the balancer's own answer: HTTPCode_ELB_5XX.
    assert (records[2].status, records[2].target_status, records[2].elb_error) == (503, None, True)


@needs_root
def test_https_serves_the_acm_certificate(world):
    acm = world.aws("acm")
    certificate_arn = acm.request_certificate(DomainName="shop.example.com")["CertificateArn"]
    app_id, app = world.app({"/health": 200})
    tg = world.group("secure", [(app_id, app.port)])
    balancer = world.balancer("tls")
    world.listen(balancer, 443, forward(tg), protocol="HTTPS", Certificates=[{"CertificateArn": certificate_arn}])
    address = world.address(balancer)
    world.until(lambda: world.balancers.target_health(tg, app_id)[0] == "healthy", what="healthy")

    expected = x509.load_pem_x509_certificate(acm.get_certificate(CertificateArn=certificate_arn)["Certificate"].encode())
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((address, 443), timeout=5) as raw, context.wrap_socket(raw, server_hostname="shop.example.com") as tls:
        served = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    assert served == expected
    conn = http.client.HTTPSConnection(address, 443, timeout=5, context=context)
    conn.request("GET", "/", headers={"Host": "shop.example.com"})
    response = conn.getresponse()
    assert (response.status, response.read().decode()) == (200, f"{app_id} 200\n")


@needs_root
def test_request_records_tell_target_5xx_from_balancer_5xx(world):
    failing, failing_app = world.app({"/": 500})
    refused = "i-00000000000000bad"
    world.addresses[refused] = "127.0.0.1"
    tg_failing = world.group("failing", [(failing, failing_app.port)])
    tg_refused = world.group("refusing", [(refused, closed_port())])
    empty = world.group("empty", [])
    balancer = world.balancer("errors")
    world.listen(balancer, 80, forward(tg_failing))
    world.listen(balancer, 8080, forward(tg_refused))
    world.listen(balancer, 8081, forward(empty))
    address = world.address(balancer)
    world.until(lambda: world.balancers.target_health(tg_failing, failing)[0] == "unhealthy", what="unhealthy")
    world.balancers.take_requests()
    # Fail-open: with no healthy target AWS still routes to the unhealthy ones; the target's
    # 500 is the target's (HTTPCode_Target_5XX), a refused connection the balancer's 502, no
    # registered target at all the balancer's 503.
    assert get(address, 80)[0] == 500
    assert get(address, 8080)[0] == 502
    assert get(address, 8081)[0] == 503
    records = world.until(lambda: (lambda r: r if len(r) >= 3 else None)(_taken_for(world)), what="records")
    by_group = {r.target_group_arn: r for r in records}
    target = by_group[tg_failing]
    assert (target.status, target.target_status, target.elb_error, target.target_id) == (500, 500, False, failing)
    assert target.target_response_time is not None
    own = by_group[tg_refused]
    assert (own.status, own.target_status, own.target_response_time, own.elb_error, own.target_id) == (502, None, None, True, refused)
    none = by_group[empty]
    assert (none.status, none.target_status, none.elb_error, none.target_id) == (503, None, True, None)


@needs_root
def test_drain_and_deregistration(world):
    a, a_app = world.app({"/health": 200})
    b, b_app = world.app({"/health": 200})
    tg = world.group("pool", [(a, a_app.port), (b, b_app.port)])
    world.elbv2.modify_target_group_attributes(
        TargetGroupArn=tg, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "20"}]
    )
    balancer = world.balancer("drains")
    world.listen(balancer, 80, forward(tg))
    address = world.address(balancer)
    world.until(lambda: all(world.balancers.target_health(tg, t)[0] == "healthy" for t in (a, b)), what="healthy")
    reloads = len(world.balancers.reload_seconds())

    # drain: at once, no reload, no new request to it.
    world.balancers.drain(a)
    assert {get(address, 80)[2].split()[0] for _ in range(20)} == {b}
    assert world.balancers.target_health(tg, a)[0] == "draining"
    assert world.balancers.host_counts()[(balancer["LoadBalancerArn"], tg)] == (1, 0)
    assert len(world.balancers.reload_seconds()) == reloads

    # Deregistered: draining for the (scaled) deregistration delay, 1 s here, then gone.
    world.elbv2.deregister_targets(TargetGroupArn=tg, Targets=[{"Id": b}])
    world.balancers.reconcile()
    assert world.balancers.target_health(tg, b) == ("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")
    assert get(address, 80)[0] == 503  # a drained, b deregistered: nothing left to send to
    world.until(lambda: world.balancers.target_health(tg, b) is None, timeout=5, what="b gone after the delay")
    assert len(world.balancers.reload_seconds()) == reloads + 1


@needs_root
def test_bad_state_never_raises_and_the_last_good_config_serves(world, capfd):
    app_id, app = world.app({"/health": 200})
    tg = world.group("steady", [(app_id, app.port)])
    balancer = world.balancer("robust")
    listener = world.listen(balancer, 80, forward(tg))
    address = world.address(balancer)
    world.until(lambda: world.balancers.target_health(tg, app_id)[0] == "healthy", what="healthy")
    from moto.elbv2.models import elbv2_backends

    fake = elbv2_backends["123456789012"][REGION].load_balancers[balancer["LoadBalancerArn"]].listeners[listener]
    # moto's state turned to nonsense: logged, the running proxy untouched.
    fake.default_actions = [None]
    world.balancers.reconcile()
    assert get(address, 80)[0] == 200
    # A configuration HAProxy refuses (a port another process holds) is not applied.
    world.elbv2.modify_listener(ListenerArn=listener, DefaultActions=forward(tg))
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((address, 8443))
        squatter.listen(1)
        world.listen(balancer, 8443, forward(tg))
        world.balancers.reconcile()
        assert get(address, 80)[0] == 200
    assert "plinth-aws balancers:" in capfd.readouterr().err
    # Once the port is free the change goes through (after the retry delay).
    world.until(lambda: _listening(address, 8443), timeout=balancers_module.RETRY_SECONDS + 5, what="the new listener")
    assert get(address, 8443)[0] == 200


def _listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


@needs_root
def test_deleted_balancer_is_stopped_and_released(world):
    app_id, app = world.app({"/health": 200})
    tg = world.group("brief", [(app_id, app.port)])
    balancer = world.balancer("brief")
    world.listen(balancer, 80, forward(tg))
    address = world.address(balancer)
    [proxy] = world.balancers._proxies.values()
    pids = [proxy.process.pid, *balancers_module._processes(proxy.master)[0]]
    world.elbv2.delete_load_balancer(LoadBalancerArn=balancer["LoadBalancerArn"])
    world.balancers.reconcile()
    assert world.balancers.endpoints() == {}
    assert not [pid for pid in pids if alive(pid)]
    assert balancer["DNSName"] not in Path("/etc/hosts").read_text()
    assert address not in world.host._lb_addresses
    # The fixture's check needs one running proxy.
    other = world.balancer("after")
    world.listen(other, 80, forward(world.group("after", [(app_id, app.port)])))
    world.address(other)
