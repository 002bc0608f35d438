"""Each Application Load Balancer moto holds, run as an HAProxy of its own that forwards real
requests to the instances' apps and checks their health for real.

For every load balancer of type `application` in state `active`, in any account and region, one
HAProxy 2.6 in master-worker mode (`-W -S <master socket>`), started through `Host.spawn`:

- listens on a loopback address of this emulator's block (`Host.lb_address()`) at each
  listener's port; the balancer's DNS name maps to that address in /etc/hosts (`endpoints()`).
- HTTPS listeners terminate TLS with the listener's ACM certificate (certificate, chain and key
  from moto's ACM backend, one PEM); further listener certificates are offered by SNI.
  https://docs.aws.amazon.com/elasticloadbalancing/latest/application/create-https-listener.html
- a listener's default action: `forward` to one target group or to several with
  `ForwardConfig` weights (a weighted random choice per request, weight 0 gets nothing),
  `redirect` (protocol, port, host, path, query with AWS's `#{...}` placeholders, 301/302) or
  `fixed-response`.
  https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-listeners.html
  https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_RedirectActionConfig.html
- each target group a listener forwards to is a backend with the group's health check: path,
  port (`traffic-port` or a number), protocol, interval (scaled by `data_plane.time_scale`),
  timeout (not scaled: it bounds how long the app takes to answer, real time at any scale;
  never below a second), HealthyThresholdCount as `rise`, UnhealthyThresholdCount as `fall`,
  the `Matcher` codes ("200", "200-299", "200,202": HAProxy's `http-check expect status` takes
  AWS's syntax as it is). A check is `GET <path> HTTP/1.1` with `Host: <address>:<port>` of the
  target and `User-Agent: ELB-HealthChecker/2.0`, as AWS sends it. Requests go round robin
  (`least_outstanding_requests`: leastconn); `slow_start.duration_seconds` is HAProxy's slowstart.
  https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html
- **fail-open**: when no target of a group is healthy, AWS routes to all of them regardless of
  health; each target is therefore also a `backup` server without checks (`option
  allbackups`), used only while no checked server is up.
- errors the balancer makes itself: a target that refuses the connection answers 502 (HAProxy's
  503 after a failed connection is rewritten, as ALB reports it), no target at all 503, a
  target slower than the idle timeout 504.
  https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-troubleshooting.html

**Target health** (`target_health`) is read from HAProxy's `show stat`: a target is `initial`
(`Elb.RegistrationInProgress` before its first check, then `Elb.InitialHealthChecking`) until it
passes `rise` checks (`healthy`) or has failed for `fall` intervals (`unhealthy`); once it has
been up or declared unhealthy it is `healthy` or `unhealthy` by HAProxy's state, with
`Target.ResponseCodeMismatch` ("Health checks failed with these codes: [500]"),
`Target.Timeout` or `Target.FailedHealthChecks` from the last failed check; `draining`
(`Target.DeregistrationInProgress`) once drained or deregistered; `unused` (`Target.NotInUse`)
for a group no listener of any balancer uses.
https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_TargetHealth.html

**Changes** are applied by re-rendering the configuration and, when its text changed, a reload
through the master socket. No request is lost: the listening sockets pass to the new worker
(`expose-fd listeners`), the old one finishes what it has in flight and keeps idle keep-alive
connections until their next request (`option idle-close-on-response`), and the servers' state
goes over in a server-state file, in which every server the new configuration adds is written
DOWN, so a new target starts unchecked and must pass `rise` checks as on AWS (a server HAProxy
adds by itself starts UP and would take traffic at once). A configuration HAProxy refuses
(`haproxy -c`) or a failed start or reload is logged and tried again later; the last good
configuration keeps serving.

**Draining.** `drain(instance)` sets the instance's servers to DRAIN (and their fail-open twins
to MAINT) on the runtime API at once: no new request, the ones in flight finish. A target
deregistered from a group stays as such a server for the group's
`deregistration_delay.timeout_seconds` (scaled), then leaves the configuration.
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-target-groups.html#deregistration-delay

**Requests.** Each HAProxy logs every request (balancer, backend, server, status, the target's
response time, termination state, time) to its standard output, the append-only file
`Host.spawn` gives it, which a reader thread tails (freeing what it has read) and turns into
`RequestRecord`s for `AWS/ApplicationELB` RequestCount, HTTPCode_Target_*,
HTTPCode_ELB_5XX_Count and TargetResponseTime: a 5xx no target answered is the balancer's.
Measured here, why not a socket: a unix datagram socket lost a fifth of the lines under six
concurrent clients (Linux queues `net.unix.max_dgram_qlen` = 10 datagrams); a ring forwarding
over a unix stream lost the last request of every keep-alive connection an old worker closes
at a reload (it exits before forwarding); the file lost none of 35,000 requests over 8 reloads.
The worker runs one thread: with two, HAProxy drops a line when the other holds the log lock.
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html

What is not modelled, or differs:
- Listener rules other than the default (conditions, priorities, their actions), authenticate
  actions, target group stickiness, `ForwardConfig` stickiness, mutual TLS, SSL policies
  (HAProxy's defaults apply), gRPC, HTTP/2 to targets, Lambda and ALB targets, IAM server
  certificates (an HTTPS listener without an ACM certificate is left out, and logged).
- Network and Gateway Load Balancers (only `application` ones get a proxy).
- Security groups, subnets and zones: every listener is reachable from this machine; no
  cross-zone or zonal behaviour, one "node" per balancer.
- A target's registration completes when its instance has booted, under a time scale below 1
  (`Instances.address_of`: a real boot would otherwise count twenty-fold against the scaled
  health checks); until then it is `initial` (`Elb.RegistrationInProgress`).
- A new target needs HealthyThresholdCount passing checks (the brief's choice; AWS's guide now
  says one passing check makes a newly registered target healthy). Its `unhealthy` verdict,
  before it was ever up, is timed (`fall` intervals of failing checks): HAProxy counts no
  failures for a server that is already DOWN.
- A target re-registered while draining keeps its health; the bodies of the balancer's own
  502/503 are HAProxy's; `X-Amzn-Trace-Id` is not added (X-Forwarded-For/-Proto/-Port are).
- Reloads: an old worker still holding a connection after the idle timeout + 5 s is stopped
  (`hard-stop-after`), and after 100 further reloads (`mworker-max-reloads`).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .host import Host, HostError

# A unix socket's path must fit sockaddr_un.sun_path (108 bytes with its NUL).
MAX_SOCKET_PATH = 100
# Health checks faster than this would only load the machine; AWS's own floor is 5 s.
MIN_INTERVAL = 0.2
# A check's timeout is never under a second (AWS's own floor is 2 s): the app on an instance here
# shares two cores with everything else.
MIN_TIMEOUT = 1.0
START_TIMEOUT = 10.0
RELOAD_TIMEOUT = 10.0
CHECK_TIMEOUT = 30.0
STOP_GRACE = 5.0
# After a refused configuration or a failed start/reload, the next attempt waits this long
# (unless the configuration changes again).
RETRY_SECONDS = 5.0
# Old workers a reload leaves are stopped after this many further reloads.
MAX_RELOADS = 100
# Request records kept for `take_requests` when nobody takes them.
MAX_RECORDS = 200_000
# The log line's first word, so lines HAProxy writes about servers are told apart.
LOG_TAG = "plinth-alb"
HEALTH_STALE = 0.25
LOG_POLL = 0.2
# The request log's disk space is given back (a hole punched) every so many bytes read.
LOG_PUNCH_BYTES = 8 << 20
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 0x01, 0x02

# ALB answers 503 for a request it could not route, 502 when the target refused (HAProxy says
# 503 for both; the 502 is restored below), 460 when the client left before the answer.
CLIENT_CLOSED = 460

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")
_MATCHER = re.compile(r"^\d{3}(-\d{3})?(,\d{3}(-\d{3})?)*$")
_PLACEHOLDER = re.compile(r"#\{(protocol|host|port|path|query)\}")
# Characters kept as they are in a redirect's literal parts; others are percent-encoded.
_URL_SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&()*+,;=%")


def log(message: str) -> None:
    print(f"plinth-aws balancers: {message}", file=sys.stderr, flush=True)


# -- what one load balancer should be, read from moto ------------------------------------------


@dataclass(frozen=True)
class HealthCheck:
    enabled: bool = True
    protocol: str = "HTTP"
    port: str = "traffic-port"
    path: str = "/"
    interval: float = 30.0  # seconds, already scaled
    timeout: float = 5.0
    healthy_threshold: int = 5
    unhealthy_threshold: int = 2
    matcher: str = "200"


@dataclass(frozen=True)
class Target:
    id: str
    address: str
    port: int
    draining: bool = False  # drained or deregistered: applied at run time, not in the text


@dataclass(frozen=True)
class TargetGroup:
    arn: str
    name: str
    protocol: str = "HTTP"
    health: HealthCheck = HealthCheck()
    targets: tuple[Target, ...] = ()
    algorithm: str = "round_robin"
    slow_start: float = 0.0  # seconds, scaled


@dataclass(frozen=True)
class Redirect:
    protocol: str = "#{protocol}"
    port: str = "#{port}"
    host: str = "#{host}"
    path: str = "/#{path}"
    query: str = "#{query}"
    status: int = 301


@dataclass(frozen=True)
class FixedResponse:
    status: int = 200
    content_type: str | None = None
    body: str | None = None


@dataclass(frozen=True)
class Action:
    type: str  # forward | redirect | fixed-response
    forward: tuple[tuple[str, int], ...] = ()  # (target group ARN, weight)
    redirect: Redirect | None = None
    fixed: FixedResponse | None = None


@dataclass(frozen=True)
class Listener:
    port: int
    protocol: str  # HTTP | HTTPS
    action: Action
    certificates: tuple[str, ...] = ()  # PEM bundles (certificate, chain, key); the first is the default


@dataclass(frozen=True)
class BalancerView:
    arn: str
    name: str
    dns_name: str
    listeners: tuple[Listener, ...]
    target_groups: tuple[TargetGroup, ...]  # the groups the listeners forward to
    idle_timeout: float = 60.0


# -- rendering: a view to HAProxy's configuration, no side effects -----------------------------


@dataclass(frozen=True)
class ServerSpec:
    backend: str
    name: str
    target_group_arn: str
    target_id: str
    address: str
    port: int
    checked: bool
    fail_open: bool  # the backup twin used while no checked server is up
    ssl: bool
    check_port: int  # 0: the traffic port
    fall_window: float  # seconds of failing checks after which a new target is unhealthy


@dataclass
class Rendered:
    config: str
    files: dict[str, str]  # name inside the balancer's directory -> content
    backends: dict[str, str]  # backend name -> target group ARN
    servers: dict[tuple[str, str], ServerSpec]  # (backend, server) -> spec


@dataclass(frozen=True)
class Paths:
    """Where the rendered configuration points to (all absolute)."""

    directory: Path  # certificates, bodies, server-state file
    stats_socket: Path


def _digest(text: str, length: int = 10) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def backend_name(group: TargetGroup) -> str:
    return f"tg-{_NAME_UNSAFE.sub('-', group.name)[:32]}-{_digest(group.arn, 6)}"


def server_name(target: Target) -> str:
    # The address and port are part of the name: a target that comes back elsewhere is a new
    # server (checked from scratch), and the health check sends them as `Host` (field 2).
    return f"{_NAME_UNSAFE.sub('-', target.id)}_{target.address}:{target.port}"


def _milliseconds(seconds: float) -> str:
    return f"{max(1, int(round(seconds * 1000)))}ms"


def _lf_literal(text: str) -> str:
    """`text` as a literal inside a single-quoted log-format argument."""
    encoded = "".join(c if c in _URL_SAFE and c != "'" else "".join(f"%{b:02X}" for b in c.encode()) for c in text)
    return encoded.replace("%", "%%")


def _expand(template: str, listener: Listener) -> str:
    """AWS's `#{...}` placeholders to HAProxy sample expressions, the rest literal."""
    out, last = [], 0
    for match in _PLACEHOLDER.finditer(template):
        out.append(_lf_literal(template[last : match.start()]))
        out.append(
            {
                "protocol": listener.protocol.lower(),
                "host": "%[hdr(host),field(1,:)]",
                "port": str(listener.port),
                "path": "%[path,regsub(^/,)]",
                "query": "%[query]",
            }[match.group(1)]
        )
        last = match.end()
    out.append(_lf_literal(template[last:]))
    return "".join(out)


def redirect_rules(redirect: Redirect, listener: Listener) -> list[str]:
    """`http-request redirect` lines: AWS's location is protocol://host:port/path?query, without
    the `?` when the query is empty."""
    protocol = redirect.protocol
    protocol = listener.protocol if protocol == "#{protocol}" else protocol
    base = f"{protocol.lower()}://{_expand(redirect.host, listener)}:{_expand(redirect.port, listener)}"
    path = redirect.path if redirect.path.startswith("/") else "/" + redirect.path
    base += _expand(path, listener)
    code = 302 if redirect.status == 302 else 301
    if redirect.query == "#{query}":
        return [
            f"http-request redirect code {code} location '{base}?%[query]' if {{ query -m len ge 1 }}",
            f"http-request redirect code {code} location '{base}'",
        ]
    if redirect.query == "":
        return [f"http-request redirect code {code} location '{base}'"]
    return [f"http-request redirect code {code} location '{base}?{_expand(redirect.query, listener)}'"]


def matcher_codes(matcher: str) -> str:
    """The Matcher's HttpCode as HAProxy's `http-check expect status` list (same syntax); AWS's
    default when it is not a valid one."""
    codes = (matcher or "").replace(" ", "")
    return codes if _MATCHER.match(codes) else "200"


def render(view: BalancerView, address: str, key: str, paths: Paths) -> Rendered:
    """The HAProxy configuration of one load balancer, with the files it refers to."""
    files: dict[str, str] = {}
    backends: dict[str, str] = {}
    servers: dict[tuple[str, str], ServerSpec] = {}
    idle = max(1.0, view.idle_timeout)
    state_file = paths.directory / "server-state"
    lines = [
        f"# {view.name} {view.arn}",
        "global",
        # One thread: with more, a request log line is dropped when another holds the lock.
        "    nbthread 1",
        f"    stats socket {paths.stats_socket} mode 600 level admin expose-fd listeners",
        "    stats timeout 30s",
        f"    server-state-file {state_file}",
        f"    hard-stop-after {int(idle) + 5}s",
        f"    mworker-max-reloads {MAX_RELOADS}",
        "    tune.ssl.default-dh-param 2048",
        "",
        "defaults",
        "    mode http",
        # Standard output is the spawn's append-only file: nothing is lost, even from a worker
        # that a reload retires (see the module's docstring).
        "    log stdout len 4096 format raw local0 info",
        f'    log-format "{LOG_TAG} {key} %ft %b %s %ST %Tr %tsc %Ts.%ms"',
        "    option idle-close-on-response",
        "    load-server-state-from-file global",
        # ALB does not retry a target that refused; it answers 502.
        "    retries 0",
        "    timeout connect 10s",
        f"    timeout client {_milliseconds(idle)}",
        f"    timeout server {_milliseconds(idle)}",
        f"    timeout http-request {_milliseconds(idle)}",
        f"    timeout http-keep-alive {_milliseconds(idle)}",
    ]
    group_backends = {group.arn: backend_name(group) for group in view.target_groups}
    for listener in view.listeners:
        lines += ["", f"frontend listener-{listener.port}"]
        bind = f"    bind {address}:{listener.port}"
        if listener.protocol == "HTTPS":
            names = []
            for pem in listener.certificates:
                name = f"certificate-{_digest(pem)}.pem"
                files[name] = pem
                names.append(f"crt {paths.directory / name}")
            bind += " ssl " + " ".join(names) + " alpn h2,http/1.1"
        lines += [
            bind,
            "    option forwardfor",
            f"    http-request set-header X-Forwarded-Proto {listener.protocol.lower()}",
            f"    http-request set-header X-Forwarded-Port {listener.port}",
        ]
        action = listener.action
        if action.type == "redirect" and action.redirect is not None:
            lines += [f"    {rule}" for rule in redirect_rules(action.redirect, listener)]
        elif action.type == "fixed-response" and action.fixed is not None:
            fixed = action.fixed
            rule = f"    http-request return status {fixed.status}"
            if fixed.body:
                name = f"body-{_digest(fixed.body)}.txt"
                files[name] = fixed.body
                content_type = re.sub(r"[^A-Za-z0-9/+.;= -]", "", fixed.content_type or "text/plain")
                rule += f" content-type '{content_type}' file {paths.directory / name}"
            lines.append(rule)
        elif action.type == "forward":
            choices = [(group_backends[arn], weight) for arn, weight in action.forward if arn in group_backends and weight > 0]
            if len(choices) == 1:
                lines.append(f"    default_backend {choices[0][0]}")
            elif choices:
                # A weighted random choice per request: rand(total) falls in a group's share
                # with exactly its weight's probability. ACLs rather than a map file keep the
                # whole configuration in one text, so a weight change is one reload.
                total = sum(weight for _, weight in choices)
                lines.append(f"    http-request set-var(txn.pick) rand({total})")
                bound = 0
                for name, weight in choices[:-1]:
                    bound += weight
                    lines.append(f"    use_backend {name} if {{ var(txn.pick) -m int lt {bound} }}")
                lines.append(f"    default_backend {choices[-1][0]}")
            # No group with weight: no backend, HAProxy answers 503 as ALB does.
    for group in view.target_groups:
        name = group_backends[group.arn]
        backends[name] = group.arn
        health = group.health
        interval = max(MIN_INTERVAL, health.interval)
        # Not capped by the interval: HAProxy starts the next check when one ends.
        timeout = max(MIN_TIMEOUT, health.timeout)
        rise = min(10, max(1, health.healthy_threshold))
        fall = min(10, max(1, health.unhealthy_threshold))
        balance = {"least_outstanding_requests": "leastconn", "weighted_random": "random"}.get(group.algorithm, "roundrobin")
        lines += ["", f"backend {name}", f"    # {group.arn}", f"    balance {balance}", "    option allbackups"]
        if health.enabled:
            path = "".join(c if c in _URL_SAFE and c != "'" else "".join(f"%{b:02X}" for b in c.encode()) for c in health.path or "/")
            lines += [
                "    option httpchk",
                f"    http-check send meth GET uri '{path}' ver HTTP/1.1 hdr Host %[srv_name,field(2,_)] hdr User-Agent ELB-HealthChecker/2.0",
                f"    http-check expect status {matcher_codes(health.matcher)}",
                f"    timeout check {_milliseconds(timeout)}",
            ]
        default_server = f"    default-server inter {_milliseconds(interval)} fastinter {_milliseconds(interval)} downinter {_milliseconds(interval)} rise {rise} fall {fall}"
        if group.slow_start > 0:
            default_server += f" slowstart {_milliseconds(group.slow_start)}"
        lines += [
            default_server,
            # Whether a server answered: only then is a 503 the target's own.
            "    http-response set-var(txn.served) bool(true)",
            "    http-after-response set-status 502 if { status 503 } !{ var(txn.served) -m found } { nbsrv gt 0 }",
        ]
        ssl = group.protocol == "HTTPS"
        check_port = int(health.port) if str(health.port).isdigit() else 0
        fall_window = fall * interval + timeout
        for target in group.targets:
            primary = server_name(target)
            line = f"    server {primary} {target.address}:{target.port}"
            if ssl:
                line += " ssl verify none"
            if health.enabled:
                line += " check"
                if check_port:
                    line += f" port {check_port}"
                if health.protocol == "HTTPS" and not ssl:
                    line += " check-ssl verify none"
                elif health.protocol != "HTTPS" and ssl:
                    line += " no-check-ssl"
            lines.append(line)
            twin = f"open_{primary}"
            lines.append(f"    server {twin} {target.address}:{target.port} backup" + (" ssl verify none" if ssl else ""))
            for server, checked, fail_open in ((primary, health.enabled, False), (twin, False, True)):
                servers[(name, server)] = ServerSpec(
                    name, server, group.arn, target.id, target.address, target.port, checked, fail_open, ssl, check_port, fall_window
                )
    return Rendered("\n".join(lines) + "\n", files, backends, servers)


def down_line(spec: ServerSpec) -> str:
    """A server-state line (format 1) for a server the configuration adds: stopped, its check
    not yet run, health 0, so it must pass `rise` checks before it takes traffic."""
    return (
        f"1 {spec.backend} 1 {spec.name} {spec.address} 0 0 1 1 0 1 1 0 6 0 0 0 - {spec.port} - "
        f"{1 if spec.ssl else 0} {spec.check_port} - - 0"
    )


def server_state(dump: str, servers: dict[tuple[str, str], ServerSpec], previous: dict[tuple[str, str], ServerSpec]) -> str:
    """The state file for a reload: the running servers' lines the new configuration still has,
    unchanged (same checks), and a DOWN line for each new checked server."""
    kept, header, seen = [], "# be_id be_name srv_id srv_name srv_addr", set()
    for line in dump.splitlines():
        if not line.strip() or line.strip() == "1":
            continue
        if line.startswith("#"):
            header = line
            continue
        parts = line.split()
        if len(parts) < 5:
            continue
        key = (parts[1], parts[3])
        spec, old = servers.get(key), previous.get(key)
        if spec is None or old is None or (spec.checked, spec.check_port, spec.ssl) != (old.checked, old.check_port, old.ssl):
            continue
        kept.append(line)
        seen.add(key)
    for key, spec in servers.items():
        if key not in seen and spec.checked:
            kept.append(down_line(spec))
    return "\n".join(["1", header, *kept]) + "\n"


# -- target health, AWS's words for HAProxy's state ---------------------------------------------


@dataclass
class Track:
    """What one checked server has been through since it was added."""

    since: float  # when a worker first had it
    ever_up: bool = False
    declared: bool = False  # failed `fall` intervals without ever being up
    last_failure: tuple[str, str] | None = None  # (check_status, check_code)


INITIAL_REGISTERING = ("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
INITIAL_CHECKING = ("initial", "Elb.InitialHealthChecking", "Initial health checks in progress")
HEALTHY = ("healthy", None, None)
DRAINING = ("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")
NOT_IN_USE = ("unused", "Target.NotInUse", "Target group is not configured to receive traffic from the load balancer")
CHECKS_DISABLED = ("unavailable", "Target.HealthCheckDisabled", "Health checks are disabled")
PASSING = ("L7OK", "L7OKC", "L6OK", "L4OK")


def unhealthy(check_status: str, check_code: str) -> tuple[str, str, str]:
    if check_status == "L7STS":
        return ("unhealthy", "Target.ResponseCodeMismatch", f"Health checks failed with these codes: [{check_code}]")
    if check_status.endswith("TOUT"):
        return ("unhealthy", "Target.Timeout", "Request timed out")
    return ("unhealthy", "Target.FailedHealthChecks", "Health checks failed")


def observe(track: Track, status: str, check_status: str, check_code: str, now: float, fall_window: float) -> tuple:
    """Update `track` with one `show stat` row of a checked server; its AWS (State, Reason,
    Description)."""
    word = status.split(" ")[0] if status else ""
    check_status = check_status.replace("*", "").strip()
    if check_status and check_status not in PASSING and check_status not in ("INI", "UNK"):
        track.last_failure = (check_status, check_code)
    if word in ("UP", "NOLB", "DRAIN"):
        track.ever_up = True
        return HEALTHY
    if word == "MAINT":
        return DRAINING
    failing = check_status not in PASSING and check_status not in ("INI", "UNK", "")
    if not track.ever_up and not track.declared and failing and now - track.since >= fall_window:
        track.declared = True
    if track.ever_up or track.declared:
        failure = track.last_failure or (check_status, check_code)
        return unhealthy(*failure)
    return INITIAL_REGISTERING if check_status in ("INI", "UNK", "") else INITIAL_CHECKING


# -- request log --------------------------------------------------------------------------------


@dataclass
class RequestRecord:
    """One HTTP request the load balancer handled."""

    load_balancer_arn: str
    target_group_arn: str | None  # None when the LB answered itself (redirect, fixed response, no backend)
    target_id: str | None  # instance id that served it
    status: int  # status sent to the client
    target_status: int | None  # status the target answered, None if no target answered
    target_response_time: float | None  # seconds (AWS TargetResponseTime), None without a target answer
    elb_error: bool  # the LB generated a 5xx itself
    timestamp: float  # epoch seconds


def parse_request(line: str, names: Callable[[str], tuple[str, dict, dict] | None]) -> RequestRecord | None:
    """One log line (`plinth-alb <key> <frontend> <backend> <server> <status> <Tr> <term>
    <accept time>`) to a record; `names(key)` gives (balancer ARN, backends, servers)."""
    parts = line.strip().split(" ")
    if len(parts) != 9 or parts[0] != LOG_TAG:
        return None
    known = names(parts[1])
    if known is None:
        return None
    lb_arn, backends, servers = known
    try:
        status, response_time, stamp = int(parts[5]), int(parts[6]), float(parts[8])
    except ValueError:
        return None
    answered = response_time >= 0
    if status < 0:
        status = CLIENT_CLOSED
    server = servers.get((parts[3], parts[4]))
    return RequestRecord(
        load_balancer_arn=lb_arn,
        target_group_arn=backends.get(parts[3]),
        target_id=server,
        status=status,
        target_status=status if answered else None,
        target_response_time=response_time / 1000.0 if answered else None,
        elb_error=not answered and status >= 500,
        timestamp=stamp,
    )


# -- reading moto -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _GroupSpec:
    """A target group as moto has it, before the targets' addresses are known."""

    arn: str
    name: str
    protocol: str
    target_type: str
    health: HealthCheck
    registered: tuple[tuple[str, int], ...]  # (id, port)
    deregistration_delay: float  # seconds, scaled
    algorithm: str
    slow_start: float


@dataclass(frozen=True)
class _BalancerSpec:
    arn: str
    name: str
    dns_name: str
    idle_timeout: float
    listeners: tuple[Listener, ...]
    groups: tuple[_GroupSpec, ...]
    problems: tuple[str, ...] = ()  # listeners left out, and why


def _number(value, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _terminal_action(actions) -> Action | None:
    data = [getattr(a, "data", a) for a in actions or []]
    data.sort(key=lambda d: _number(d.get("Order"), 0))
    for item in data:
        kind = item.get("Type")
        if kind == "forward":
            groups = (item.get("ForwardConfig") or {}).get("TargetGroups") or []
            if groups:
                forward = tuple((g["TargetGroupArn"], int(_number(g.get("Weight"), 1))) for g in groups if g.get("TargetGroupArn"))
            elif item.get("TargetGroupArn"):
                forward = ((item["TargetGroupArn"], 1),)
            else:
                forward = ()
            return Action("forward", forward=forward)
        if kind == "redirect":
            config = item.get("RedirectConfig") or {}
            return Action(
                "redirect",
                redirect=Redirect(
                    protocol=config.get("Protocol") or "#{protocol}",
                    port=str(config.get("Port") or "#{port}"),
                    host=config.get("Host") or "#{host}",
                    path=config.get("Path") or "/#{path}",
                    query=config["Query"] if config.get("Query") is not None else "#{query}",
                    status=302 if config.get("StatusCode") == "HTTP_302" else 301,
                ),
            )
        if kind == "fixed-response":
            config = item.get("FixedResponseConfig") or {}
            return Action(
                "fixed-response",
                fixed=FixedResponse(
                    status=int(_number(config.get("StatusCode"), 200)),
                    content_type=config.get("ContentType"),
                    body=config.get("MessageBody"),
                ),
            )
    return None


def _certificate_pem(arn: str) -> str | None:
    """Certificate, chain and private key of an ACM certificate moto holds, as one PEM."""
    from moto.acm.models import acm_backends

    parts = arn.split(":")
    if len(parts) < 6 or parts[2] != "acm":
        return None
    regions = dict.get(acm_backends, parts[4])
    backend = dict.get(regions, parts[3]) if regions is not None else None
    bundle = getattr(backend, "_certificates", {}).get(arn) if backend is not None else None
    if bundle is None:
        return None

    def text(value) -> str:
        value = value.decode() if isinstance(value, bytes) else str(value or "")
        return value.strip() + "\n" if value.strip() else ""

    return text(bundle.cert) + text(bundle.chain) + text(bundle.key)


def _group_spec(group, time_scale: float) -> _GroupSpec:
    matcher = getattr(group, "matcher", None) or {}
    protocol = (group.protocol or "HTTP").upper()
    attributes = group.attributes or {}
    health = HealthCheck(
        enabled=bool(group.health_check_enabled),
        protocol=(group.health_check_protocol or protocol).upper(),
        port=str(group.health_check_port or "traffic-port"),
        path=group.health_check_path or "/",
        interval=_number(group.health_check_interval_seconds, 30) * time_scale,
        # Not scaled: it bounds the app's answer, which takes real time at any scale.
        timeout=_number(group.health_check_timeout_seconds, 5),
        healthy_threshold=int(_number(group.healthy_threshold_count, 5)),
        unhealthy_threshold=int(_number(group.unhealthy_threshold_count, 2)),
        matcher=str(matcher.get("HttpCode") or "200"),
    )
    registered = tuple((str(t["Id"]), int(_number(t.get("Port"), _number(group.port, 80)))) for t in list(group.targets.values()))
    return _GroupSpec(
        arn=group.arn,
        name=group.name,
        protocol=protocol,
        target_type=group.target_type or "instance",
        health=health,
        registered=registered,
        deregistration_delay=_number(attributes.get("deregistration_delay.timeout_seconds"), 300) * time_scale,
        algorithm=str(attributes.get("load_balancing.algorithm.type") or "round_robin"),
        slow_start=_number(attributes.get("slow_start.duration_seconds"), 0) * time_scale,
    )


def _read_balancer(backend, balancer, time_scale: float) -> _BalancerSpec:
    listeners, groups, problems = [], {}, []
    for listener in sorted(list(balancer.listeners.values()), key=lambda l: int(_number(l.port, 0))):
        protocol = (listener.protocol or "HTTP").upper()
        if protocol not in ("HTTP", "HTTPS"):
            continue
        action = _terminal_action(listener.default_actions)
        if action is None:
            continue
        certificates = ()
        if protocol == "HTTPS":
            arns = [a if isinstance(a, str) else a.get("CertificateArn") for a in (listener.certificates or [listener.certificate])]
            pems = [_certificate_pem(arn) for arn in arns if arn]
            certificates = tuple(pem for pem in pems if pem)
            if not certificates:
                problems.append(f"listener {listener.port} left out: no certificate ACM holds among {arns}")
                continue
        for arn, _ in action.forward:
            group = backend.target_groups.get(arn)
            if group is not None and arn not in groups:
                groups[arn] = _group_spec(group, time_scale)
        listeners.append(Listener(int(_number(listener.port, 80)), protocol, action, certificates))
    idle = _number((balancer.attrs or {}).get("idle_timeout.timeout_seconds"), 60)
    return _BalancerSpec(
        balancer.arn, balancer.name, balancer.dns_name, idle, tuple(listeners), tuple(groups.values()), tuple(problems)
    )


def _group_uses(backends) -> dict[str, int]:
    """Target group ARN -> how many listener actions (default or rule, any balancer) use it."""
    uses: dict[str, int] = {}
    for backend in backends:
        for balancer in list(backend.load_balancers.values()):
            for listener in list(balancer.listeners.values()):
                for rule in list(listener.rules.values()):
                    for action in rule.actions:
                        data = getattr(action, "data", action) or {}
                        arns = [data.get("TargetGroupArn")] + [
                            g.get("TargetGroupArn") for g in (data.get("ForwardConfig") or {}).get("TargetGroups") or []
                        ]
                        for arn in filter(None, arns):
                            uses[arn] = uses.get(arn, 0) + 1
    return uses


def _elbv2_backends() -> list:
    from moto.elbv2.models import elbv2_backends

    found = []
    for _, regions in list(dict.items(elbv2_backends)):
        for _, backend in list(dict.items(regions)):
            found.append(backend)
    return found


# -- one HAProxy --------------------------------------------------------------------------------


class ProxyError(RuntimeError):
    pass


def _punch(fd: int, length: int) -> None:
    """Give back the disk space of the first `length` bytes of a file others append to (its
    size and everyone's offsets stay); best effort."""
    if length <= 0:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
        libc.fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, length)
    except (OSError, AttributeError):
        pass


def cli(path: Path, command: str, timeout: float = 5.0) -> str:
    """One command on an HAProxy CLI socket (stats or master); its whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(path))
        conn.sendall(command.encode() + b"\n")
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _processes(master: Path) -> tuple[set[int], int]:
    """(current worker pids, failed reloads) from the master's `show proc`."""
    workers, failed, section = set(), 0, "master"
    for line in cli(master, "show proc", timeout=2).splitlines():
        if line.startswith("# workers"):
            section = "workers"
            continue
        if line.startswith("#"):
            section = "other" if not line.startswith("#<PID>") else section
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        if parts[1] == "master":
            match = re.search(r"failed:\s*(\d+)", line)
            failed = int(match.group(1)) if match else 0
        elif section == "workers" and parts[0].isdigit():
            workers.add(int(parts[0]))
    return workers, failed


def show_stat(stats: Path) -> dict[tuple[str, str], dict[str, str]]:
    text = cli(stats, "show stat", timeout=2)
    rows = text.splitlines()
    if not rows or not rows[0].startswith("#"):
        return {}
    header = rows[0].lstrip("# ").split(",")
    found = {}
    for row in rows[1:]:
        values = row.split(",")
        if len(values) < len(header) - 1:
            continue
        entry = dict(zip(header, values))
        if entry.get("svname") not in ("FRONTEND", "BACKEND"):
            found[(entry.get("pxname", ""), entry.get("svname", ""))] = entry
    return found


@dataclass(eq=False)
class Proxy:
    """One load balancer's HAProxy and what this module knows of it."""

    arn: str
    key: str
    name: str
    dns_name: str
    address: str
    dir: Path
    run_dir: Path
    own_run_dir: bool
    process: subprocess.Popen | None = None
    rendered: Rendered | None = None  # what the running worker has
    spec: _BalancerSpec | None = None
    view: BalancerView | None = None
    refused: str | None = None  # a configuration text that failed, not tried again until retry_at
    retry_at: float = 0.0
    drain_sent: set = field(default_factory=set)  # (backend, server) the running worker has drained
    draining: dict[tuple[str, str], tuple[float, Target]] = field(default_factory=dict)  # deregistered
    tracks: dict[tuple[str, str], Track] = field(default_factory=dict)
    health: dict[tuple[str, str], tuple] = field(default_factory=dict)  # (tg, target) -> AWS health
    polled_at: float = 0.0
    reloads: list[float] = field(default_factory=list)  # seconds each successful reload took
    log_offset: int = 0  # how far the request log has been read
    log_punched: int = 0
    log_partial: bytes = b""
    log_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cfg(self) -> Path:
        return self.dir / "haproxy.cfg"

    @property
    def master(self) -> Path:
        return self.run_dir / "master.sock"

    @property
    def stats(self) -> Path:
        return self.run_dir / "stats.sock"

    @property
    def log(self) -> Path:
        return self.dir / "haproxy.log"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


# -- the load balancers -------------------------------------------------------------------------


class Balancers:
    def __init__(
        self,
        host: Host,
        address_of: Callable[[str], str | None],
        time_scale: Callable[[], float],
        haproxy: str = "/usr/sbin/haproxy",
    ) -> None:
        self._host = host
        self._address_of = address_of
        self._time_scale = time_scale
        self._haproxy = haproxy if Path(haproxy).exists() else (shutil.which("haproxy") or haproxy)
        self._lock = threading.RLock()
        self._reconcile_lock = threading.Lock()
        self._closed = False
        self._proxies: dict[str, Proxy] = {}
        self._problems: dict[str, str] = {}  # balancer ARN -> what is wrong, logged once
        self._drained: set[str] = set()
        self._last_address: dict[str, str] = {}
        self._records: list[RequestRecord] = []
        # key -> (balancer ARN, backend -> group ARN, (backend, server) -> target id); kept after
        # a balancer goes, for lines still on their way.
        self._names: dict[str, tuple[str, dict, dict]] = {}
        # Target groups as of the last reconcile: ARN -> (moto object, served by, used anywhere)
        self._groups: dict[str, tuple[object, str | None, bool]] = {}
        self.dir = host.state_dir / "balancers"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read_logs, name="balancers-log", daemon=True)
        self._reader.start()

    # -- the loop -------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Bring one HAProxy per active ALB in line with moto; stop the ones moto no longer has."""
        with self._reconcile_lock:
            if self._closed:
                return
            try:
                scale = float(self._time_scale())
            except Exception:
                scale = 1.0
            wanted: dict[str, _BalancerSpec | None] = {}
            groups: dict[str, tuple[object, str | None, bool]] = {}
            try:
                backends = _elbv2_backends()
                uses = _group_uses(backends)
            except Exception as error:  # moto changed under us; next turn
                log(f"reading moto's load balancers: {error!r}")
                return
            for backend in backends:
                for balancer in list(backend.load_balancers.values()):
                    if getattr(balancer, "type", "application") != "application" or balancer.state != "active":
                        continue
                    try:
                        wanted[balancer.arn] = _read_balancer(backend, balancer, scale)
                    except Exception as error:
                        wanted[balancer.arn] = None  # keep what runs; say why once
                        self._complain(balancer.arn, f"cannot read {balancer.name}: {error!r}")
                        continue
                    if wanted[balancer.arn].problems:
                        self._complain(balancer.arn, f"{balancer.name}: " + "; ".join(wanted[balancer.arn].problems))
                for arn, group in list(backend.target_groups.items()):
                    groups[arn] = (group, None, uses.get(arn, 0) > 0)
            for arn in [arn for arn in self._proxies if arn not in wanted]:
                self._remove(arn)
            for arn, spec in wanted.items():
                if spec is None:
                    continue
                try:
                    proxy = self._proxies.get(arn) or self._add(spec)
                    if proxy is None:
                        continue
                    self._apply(proxy, spec)
                    for group in spec.groups:
                        if group.arn in groups and groups[group.arn][1] is None:
                            groups[group.arn] = (groups[group.arn][0], arn, True)
                except Exception as error:
                    self._complain(arn, f"{spec.name}: {error!r}")
            with self._lock:
                self._groups = groups
            for proxy in list(self._proxies.values()):
                self._poll(proxy)

    def _complain(self, arn: str, problem: str) -> None:
        if self._problems.get(arn) != problem:
            log(problem)
        self._problems[arn] = problem

    def _add(self, spec: _BalancerSpec) -> Proxy | None:
        try:
            address = self._host.lb_address()
        except HostError as error:
            log(f"{spec.name}: {error}")
            return None
        key = _digest(spec.arn, 12)
        directory = self.dir / key
        directory.mkdir(parents=True, exist_ok=True)
        own = len(str(directory / "master.sock")) > MAX_SOCKET_PATH
        run_dir = Path(tempfile.mkdtemp(prefix="plinth-alb-")) if own else directory
        proxy = Proxy(spec.arn, key, spec.name, spec.dns_name, address, directory, run_dir, own)
        self._host.set_host_name(spec.dns_name, address)
        with self._lock:
            self._proxies[spec.arn] = proxy
            self._names[key] = (spec.arn, {}, {})
        return proxy

    def _remove(self, arn: str) -> None:
        with self._lock:
            proxy = self._proxies.pop(arn)
        self._problems.pop(arn, None)
        if proxy.process is not None:
            self._host.stop(proxy.process, grace=STOP_GRACE)
        self._collect(proxy)  # its last requests
        self._host.set_host_name(proxy.dns_name, None)
        self._host.release_lb_address(proxy.address)
        shutil.rmtree(proxy.dir, ignore_errors=True)
        if proxy.own_run_dir:
            shutil.rmtree(proxy.run_dir, ignore_errors=True)

    # -- one balancer ---------------------------------------------------------------------------

    def _view(self, proxy: Proxy, spec: _BalancerSpec) -> BalancerView:
        """The spec with each target's address, and the deregistered targets still draining."""
        now = time.monotonic()
        previous = {g.arn: g for g in proxy.view.target_groups} if proxy.view is not None else {}
        with self._lock:
            drained = set(self._drained)
        groups = []
        for group in spec.groups:
            targets: dict[str, Target] = {}
            if group.target_type in ("instance", "ip"):
                for target_id, port in group.registered:
                    address = target_id if group.target_type == "ip" else self._address_of(target_id)
                    if address is None and target_id in drained:
                        # Going away: keep the server (drained) for the requests in flight.
                        address = self._last_address.get(target_id)
                    if address is None:
                        continue
                    self._last_address[target_id] = address
                    targets[target_id] = Target(target_id, address, port, draining=target_id in drained)
                    proxy.draining.pop((group.arn, target_id), None)
            old = previous.get(group.arn)
            for target in old.targets if old is not None else ():
                if target.id in targets or target.id in dict(group.registered):
                    continue
                key = (group.arn, target.id)
                if key not in proxy.draining and group.deregistration_delay > 0:
                    proxy.draining[key] = (now + group.deregistration_delay, target)
            for (arn, target_id), (deadline, target) in list(proxy.draining.items()):
                if arn != group.arn:
                    continue
                if deadline <= now or target_id in targets:
                    proxy.draining.pop((arn, target_id), None)
                else:
                    targets[target_id] = Target(target.id, target.address, target.port, draining=True)
            groups.append(
                TargetGroup(
                    arn=group.arn,
                    name=group.name,
                    protocol=group.protocol,
                    health=group.health,
                    targets=tuple(sorted(targets.values(), key=lambda t: t.id)),
                    algorithm=group.algorithm,
                    slow_start=group.slow_start,
                )
            )
        served = {g.arn for g in spec.groups}
        for key in [k for k in proxy.draining if k[0] not in served]:
            proxy.draining.pop(key)
        return BalancerView(spec.arn, spec.name, spec.dns_name, spec.listeners, tuple(groups), spec.idle_timeout)

    def _apply(self, proxy: Proxy, spec: _BalancerSpec) -> None:
        view = self._view(proxy, spec)
        paths = Paths(proxy.dir, proxy.stats)
        rendered = render(view, proxy.address, proxy.key, paths)
        with self._lock:
            proxy.spec, proxy.view = spec, view
            _, backends, servers = self._names[proxy.key]
            backends.update(rendered.backends)
            servers.update({key: spec_.target_id for key, spec_ in rendered.servers.items()})
        # Drain at once what became draining (no reload needed: the server stays).
        if proxy.alive() and proxy.rendered is not None:
            self._set_drains(proxy, resend=False)
        if proxy.alive() and proxy.rendered is not None and proxy.rendered.config == rendered.config:
            return
        if rendered.config == proxy.refused and time.monotonic() < proxy.retry_at:
            return
        for name, content in rendered.files.items():
            path = proxy.dir / name
            if not path.exists() or path.read_text() != content:
                path.write_text(content)
                path.chmod(0o600)
        candidate = proxy.dir / "haproxy.cfg.new"
        candidate.write_text(rendered.config)
        try:
            checked = subprocess.run(
                [self._haproxy, "-c", "-q", "-f", str(candidate)], capture_output=True, text=True, timeout=CHECK_TIMEOUT
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            self._refuse(proxy, rendered, f"{proxy.name}: checking the configuration: {error}")
            return
        if checked.returncode != 0:
            said = (checked.stderr or checked.stdout).strip()[-2000:]
            self._refuse(proxy, rendered, f"{proxy.name}: HAProxy refuses the configuration: {said}")
            return
        try:
            if proxy.alive() and proxy.rendered is not None:
                self._reload(proxy, rendered, candidate)
            else:
                self._start(proxy, rendered, candidate)
        except (ProxyError, OSError) as error:
            self._refuse(proxy, rendered, f"{proxy.name}: {error}")
            return
        proxy.refused = None
        if not spec.problems:
            self._problems.pop(proxy.arn, None)
        self._set_drains(proxy, resend=True)

    def _refuse(self, proxy: Proxy, rendered: Rendered, problem: str) -> None:
        proxy.refused = rendered.config
        proxy.retry_at = time.monotonic() + RETRY_SECONDS
        self._complain(proxy.arn, problem)

    def _start(self, proxy: Proxy, rendered: Rendered, candidate: Path) -> None:
        if proxy.process is not None:  # it died: clean up its group before starting again
            self._host.stop(proxy.process, grace=1)
            proxy.process = None
        with self._lock:  # every server starts DOWN again: nothing carries over
            proxy.rendered = None
            proxy.tracks.clear()
        (proxy.dir / "server-state").write_text(server_state("", rendered.servers, {}))
        os.replace(candidate, proxy.cfg)
        for path in (proxy.master, proxy.stats):
            path.unlink(missing_ok=True)
        argv = [self._haproxy, "-W", "-S", f"{proxy.master},mode,600", "-f", str(proxy.cfg)]
        proxy.process = self._host.spawn(f"haproxy-{proxy.name}", argv, proxy.log)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proxy.process.poll() is not None:
                process, proxy.process = proxy.process, None
                self._host.stop(process, grace=1)
                raise ProxyError(f"haproxy exited ({process.returncode}) at start: {self._tail(proxy)}")
            try:
                workers, _ = _processes(proxy.master)
                if workers and "Pid:" in cli(proxy.stats, "show info", timeout=1):
                    break
            except OSError:
                pass
            time.sleep(0.02)
        else:
            process, proxy.process = proxy.process, None
            self._host.stop(process, grace=1)
            raise ProxyError(f"haproxy not ready after {START_TIMEOUT} s: {self._tail(proxy)}")
        self._started(proxy, rendered)

    def _reload(self, proxy: Proxy, rendered: Rendered, candidate: Path) -> None:
        began = time.monotonic()
        workers, failed = _processes(proxy.master)
        dump = cli(proxy.stats, "show servers state")
        (proxy.dir / "server-state").write_text(server_state(dump, rendered.servers, proxy.rendered.servers))
        good = proxy.cfg.read_text() if proxy.cfg.exists() else None
        os.replace(candidate, proxy.cfg)
        try:
            cli(proxy.master, "reload", timeout=5)
        except OSError:
            pass  # the master closes the connection when it re-executes
        deadline = time.monotonic() + RELOAD_TIMEOUT
        outcome = "timeout"
        while time.monotonic() < deadline:
            if proxy.process.poll() is not None:
                outcome = "exited"
                break
            try:
                now_workers, now_failed = _processes(proxy.master)
            except OSError:
                time.sleep(0.01)
                continue
            if now_failed > failed:
                outcome = "failed"
                break
            new = now_workers - workers
            if new:
                try:
                    info = cli(proxy.stats, "show info", timeout=1)
                except OSError:
                    info = ""
                if any(f"Pid: {pid}" in info for pid in new):
                    outcome = "ok"
                    break
            time.sleep(0.01)
        if outcome != "ok":
            if good is not None:
                proxy.cfg.write_text(good)  # the master's next re-exec reads the last good one
            raise ProxyError(f"reload {outcome}: {self._tail(proxy)}")
        proxy.reloads.append(time.monotonic() - began)
        del proxy.reloads[:-1000]
        self._started(proxy, rendered)

    def _started(self, proxy: Proxy, rendered: Rendered) -> None:
        now = time.monotonic()
        with self._lock:
            previous = proxy.rendered.servers if proxy.rendered is not None else {}
            for key, spec in rendered.servers.items():
                if spec.checked and (key not in previous or key not in proxy.tracks):
                    proxy.tracks[key] = Track(since=now)
            for key in [k for k in proxy.tracks if k not in rendered.servers]:
                proxy.tracks.pop(key)
            proxy.rendered = rendered
            proxy.polled_at = 0.0

    def _set_drains(self, proxy: Proxy, resend: bool) -> None:
        """Every draining target's servers to DRAIN (fail-open twins to MAINT) on the running
        worker; `resend` after a start or reload (the state file carries them, this makes sure)."""
        with self._lock:
            drained = set(self._drained)
            rendered, view = proxy.rendered, proxy.view
            if resend:
                proxy.drain_sent = set()
            sent = set(proxy.drain_sent)
        if rendered is None or view is None:
            return
        deregistered = {(g.arn, t.id) for g in view.target_groups for t in g.targets if t.draining}
        for (backend, server), spec in rendered.servers.items():
            if (backend, server) in sent:
                continue
            if spec.target_id not in drained and (spec.target_group_arn, spec.target_id) not in deregistered:
                continue
            self._server_state(proxy, backend, server, "maint" if spec.fail_open else "drain")

    def _server_state(self, proxy: Proxy, backend: str, server: str, state: str) -> None:
        command = f"set server {backend}/{server} state {state}"
        try:
            answer = cli(proxy.stats, command, timeout=2).strip()
        except OSError as error:
            log(f"{proxy.name}: {command}: {error}")
            return
        if answer:
            log(f"{proxy.name}: {command}: {answer}")
        with self._lock:
            proxy.drain_sent.add((backend, server))

    def _tail(self, proxy: Proxy) -> str:
        """HAProxy's last words (its own messages, not the request lines)."""
        try:
            with open(proxy.log, "rb") as file:
                file.seek(max(0, file.seek(0, os.SEEK_END) - 65536))
                text = file.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        said = [line for line in text.splitlines() if line.strip() and not line.startswith(LOG_TAG)]
        return " | ".join(said[-6:]) or "(nothing logged)"

    # -- health ---------------------------------------------------------------------------------

    def _poll(self, proxy: Proxy) -> None:
        if not proxy.alive() or proxy.rendered is None:
            return
        try:
            rows = show_stat(proxy.stats)
        except OSError:
            return
        now = time.monotonic()
        with self._lock:
            rendered, view = proxy.rendered, proxy.view
            if rendered is None or view is None:
                return
            draining = {(g.arn, t.id) for g in view.target_groups for t in g.targets if t.draining}
            health: dict[tuple[str, str], tuple] = {}
            for key, spec in rendered.servers.items():
                if spec.fail_open:
                    continue
                target = (spec.target_group_arn, spec.target_id)
                if target in draining or spec.target_id in self._drained:
                    health[target] = DRAINING
                    continue
                if not spec.checked:
                    health[target] = CHECKS_DISABLED
                    continue
                row = rows.get(key)
                track = proxy.tracks.setdefault(key, Track(since=now))
                if row is None:
                    health[target] = INITIAL_REGISTERING
                    continue
                health[target] = observe(
                    track, row.get("status", ""), row.get("check_status", ""), row.get("check_code", ""), now, spec.fall_window
                )
            for target, state in health.items():
                before = proxy.health.get(target)
                if before is None or before[:2] != state[:2]:
                    # One line per change, so a failure's report can tell what a target went
                    # through and when (the emulator log's lines carry no time of their own).
                    group = target[0].split("/")[-2] if target[0].count("/") >= 2 else target[0]
                    reason = f" ({state[1]})" if state[1] else ""
                    log(f"health: {group} {target[1]} {state[0]}{reason} at {time.time():.1f}")
            proxy.health = health
            proxy.polled_at = now

    def _fresh(self, proxy: Proxy) -> None:
        if time.monotonic() - proxy.polled_at > HEALTH_STALE:
            self._poll(proxy)

    def target_health(self, target_group_arn: str, target_id: str) -> tuple[str, str | None, str | None] | None:
        """(State, Reason, Description) as DescribeTargetHealth reports them, from HAProxy's
        checks; None when no balancer here serves the group (moto's answer stands)."""
        with self._lock:
            known = self._groups.get(target_group_arn)
            if known is None:
                return None
            group, served_by, used = known
            proxy = self._proxies.get(served_by) if served_by else None
        if proxy is None:
            if not used and target_id in getattr(group, "targets", {}):
                return NOT_IN_USE
            return None
        try:
            self._fresh(proxy)
        except Exception as error:
            log(f"{proxy.name}: reading health: {error!r}")
        with self._lock:
            measured = proxy.health.get((target_group_arn, target_id))
            if target_id in self._drained and measured is not None:
                return DRAINING
        if measured is not None:
            return measured
        if target_id in getattr(group, "targets", {}):
            return INITIAL_REGISTERING  # registered, no address yet, or not yet in the proxy
        return None

    def drain(self, instance_id: str) -> None:
        """Stop sending new requests to the instance at once (runtime API, no reload); the
        requests in flight finish."""
        with self._lock:
            self._drained.add(instance_id)
            proxies = list(self._proxies.values())
        for proxy in proxies:
            rendered = proxy.rendered
            if rendered is None or not proxy.alive():
                continue
            for (backend, server), spec in rendered.servers.items():
                if spec.target_id == instance_id:
                    self._server_state(proxy, backend, server, "maint" if spec.fail_open else "drain")

    def host_counts(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(balancer ARN, target group ARN) -> (healthy, unhealthy) targets, draining ones not
        counted (HealthyHostCount / UnHealthyHostCount)."""
        counts = {}
        for proxy in list(self._proxies.values()):
            try:
                self._fresh(proxy)
            except Exception:
                pass
            with self._lock:
                if proxy.view is None:
                    continue
                for group in proxy.view.target_groups:
                    states = [
                        proxy.health.get((group.arn, t.id), INITIAL_REGISTERING)[0]
                        for t in group.targets
                        if not t.draining and t.id not in self._drained
                    ]
                    counts[(proxy.arn, group.arn)] = (states.count("healthy"), states.count("unhealthy"))
        return counts

    def endpoints(self) -> dict[str, str]:
        """ALB DNS name -> the loopback address its HAProxy listens on."""
        with self._lock:
            return {p.dns_name: p.address for p in self._proxies.values() if p.alive()}

    def reload_seconds(self) -> list[float]:
        """How long each successful reload took (sending `reload` to the new worker answering)."""
        with self._lock:
            return [s for p in self._proxies.values() for s in p.reloads]

    # -- request log ----------------------------------------------------------------------------

    def _read_logs(self) -> None:
        while not self._stop.wait(LOG_POLL):
            for proxy in list(self._proxies.values()):
                self._collect(proxy)

    def _collect(self, proxy: Proxy) -> None:
        """Read what the proxy's workers logged since last time into records."""
        with proxy.log_lock:
            try:
                fd = os.open(proxy.log, os.O_RDWR)
            except OSError:
                return
            try:
                os.lseek(fd, proxy.log_offset, os.SEEK_SET)
                chunks = []
                while True:
                    chunk = os.read(fd, 1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    proxy.log_offset += len(chunk)
                if proxy.log_offset - proxy.log_punched >= LOG_PUNCH_BYTES:
                    _punch(fd, proxy.log_offset & ~4095)
                    proxy.log_punched = proxy.log_offset
            finally:
                os.close(fd)
            if not chunks:
                return
            *lines, proxy.log_partial = (proxy.log_partial + b"".join(chunks)).split(b"\n")
        records = []
        with self._lock:
            names = dict(self._names)
        for raw in lines:
            if raw.startswith(LOG_TAG.encode()):
                record = parse_request(raw.decode(errors="replace"), names.get)
                if record is not None:
                    records.append(record)
        if records:
            with self._lock:
                self._records.extend(records)
                del self._records[:-MAX_RECORDS]

    def take_requests(self) -> list[RequestRecord]:
        """The requests handled since the last call."""
        for proxy in list(self._proxies.values()):
            self._collect(proxy)
        with self._lock:
            records, self._records = self._records, []
        return records

    # -- the end --------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every HAProxy (no process is left), release addresses and hosts lines."""
        with self._reconcile_lock:
            self._closed = True
            for arn in list(self._proxies):
                try:
                    self._remove(arn)
                except Exception as error:
                    log(f"closing {arn}: {error!r}")
        self._stop.set()
        self._reader.join(timeout=2)
