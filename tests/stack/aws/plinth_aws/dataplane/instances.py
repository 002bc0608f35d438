"""Instances that boot: every EC2 instance the emulator says is `pending` or `running` becomes a
small machine on this host, booted from its user data the way EC2 boots it, and is shut down
when the emulator terminates it.

**Isolation (what, and why).** Each instance gets a network namespace of its own (`ip netns`,
an address of the data plane's block on a veth joined to the block's bridge) and runs every
process in a mount namespace (`ip netns exec` makes one per process) where the paths an
instance writes are directories of its own: `/etc/cloud`, `/etc/systemd/system`,
`/var/lib/cloud`, `/var/log`, `/opt`, `/tmp`, `/run`, `/root`, `/etc/hosts`, `/etc/hostname`.
The rest of the host's filesystem is read as the machine image (Debian 12 with cloud-init and
util-linux). Namespaces rather than loopback aliases because the app listens on
`0.0.0.0:<port>` as the unit says: several instances on one host need a network stack each. A
cgroup per instance (v2) measures its CPU (`AWS/EC2 CPUUtilization`) and kills whatever is left
at termination.

**Boot, as on EC2.**
1. The network, then the instance's services (`services.py`): the metadata service at
   169.254.169.254 (IMDSv2, the instance profile's credentials), the emulator at
   `127.0.0.1:4566` (the machine's `AWS_ENDPOINT_URL`: the test world's stand-in for AWS's DNS
   names), and each database endpoint at a loopback address its /etc/hosts names.
2. Debian's cloud-init, for real, from a NoCloud seed holding the user data: `cloud-init init`,
   `modules --mode config`, `modules --mode final`, with the module lists cut to `write_files`,
   `runcmd` and `scripts_user` (no hostname, users, packages or disks: they would act on the
   host). So a document `cloud-init schema` accepts is executed the way an instance executes
   it, and one it rejects fails the way it fails there.
3. `systemctl` inside the instance is this runner's (`machine/systemctl`): `enable --now`,
   `start`, `stop`, `restart` of a unit written to `/etc/systemd/system` start its `ExecStart`
   with its `Environment=` lines (over `env -i`), as nobody when `DynamicUser=yes`, restarted
   per `Restart=`/`RestartSec=`; stopped with `KillSignal=` and SIGKILL after `TimeoutStopSec=`.

**Termination** (scale-in, group deleted, a health-check replacement, TerminateInstances): the
load balancer stops sending new requests to it (`drain`), its units are stopped as systemd
would, what is left in its cgroup is killed, its namespace, address and services go. Logs stay
in `<state>/logs/<instance id>/` (console: cloud-init's output; one file per unit).

**Health-check replacement.** A group with `HealthCheckType: ELB` replaces an `InService`
instance that a target group of the group reports `unhealthy` once its grace period has passed
(`HealthCheckGracePeriod`, scaled), recording AWS's activity.
https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-health-checks.html

Not modelled: instance stop/start/reboot, user data other than cloud-config and shell scripts
(what cloud-init itself handles), the unit's sandboxing options (`ProtectSystem=` …), the
instance type's CPU and memory (every instance shares the host's), security groups and NACLs
between instances, databases and the load balancer.
"""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .activities import Activities
from .host import Host
from .services import Identity, Services

MACHINE = Path(__file__).resolve().parent / "machine"
INSTANCE_EXEC = MACHINE / "instance-exec"
SYSTEMCTL = MACHINE / "systemctl"
METADATA_ADDRESS = "169.254.169.254"
# What the instance's processes see as AWS: the emulator, forwarded into the namespace.
EMULATOR_IN_INSTANCE = ("127.0.0.1", 4566)
# cloud-init's module lists: only what acts inside the instance's own paths.
CLOUD_CFG = """\
# Written by the Plinth data plane: cloud-init on a data plane instance runs only the modules
# that act inside the instance's own paths (no hostname, users, packages or disks).
datasource_list: [NoCloud]
cloud_init_modules: [write-files]
cloud_config_modules: [runcmd]
cloud_final_modules: [scripts-user]
"""
BOOT_TIMEOUT = 600.0
# Boots running at once: cloud-init and the AWS CLI are Python processes of a second or two of
# CPU each, on a machine of two cores.
CONCURRENT_BOOTS = 3
KEEP_STOPPED = 100


@dataclass
class Unit:
    """The parts of a systemd unit file the runner acts on."""

    name: str
    exec_start: list[str]
    environment: dict[str, str]
    restart: str = "no"
    restart_sec: float = 0.1
    kill_signal: int = signal.SIGTERM
    timeout_stop: float = 90.0
    dynamic_user: bool = False
    user: str | None = None


def parse_unit(name: str, text: str) -> Unit:
    """A unit file's `[Service]` settings (systemd's syntax: quoted `Environment=` assignments,
    several per line; an `ExecStart=` prefix of `-`, `@`, `+` or `!` is dropped)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section != "Service" or "=" not in line:
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    environment: dict[str, str] = {}
    for value in settings.get("Environment", []):
        for assignment in shlex.split(value):
            variable, _, content = assignment.partition("=")
            environment[variable] = content
    exec_start = shlex.split(settings.get("ExecStart", [""])[-1])
    if exec_start:
        exec_start[0] = exec_start[0].lstrip("-@+!")
    unit = Unit(name=name, exec_start=exec_start, environment=environment)
    if "Restart" in settings:
        unit.restart = settings["Restart"][-1]
    if "RestartSec" in settings:
        unit.restart_sec = _seconds(settings["RestartSec"][-1], unit.restart_sec)
    if "TimeoutStopSec" in settings:
        unit.timeout_stop = _seconds(settings["TimeoutStopSec"][-1], unit.timeout_stop)
    if "KillSignal" in settings:
        unit.kill_signal = getattr(signal, settings["KillSignal"][-1], signal.SIGTERM)
    if "DynamicUser" in settings:
        unit.dynamic_user = settings["DynamicUser"][-1].lower() in ("yes", "true", "1", "on")
    if "User" in settings:
        unit.user = settings["User"][-1]
    return unit


def _seconds(value: str, default: float) -> float:
    value = value.strip()
    try:
        if value.endswith("ms"):
            return float(value[:-2]) / 1000
        if value.endswith("min"):
            return float(value[:-3]) * 60
        return float(value.rstrip("s"))
    except ValueError:
        return default


def decode_user_data(user_data) -> bytes | None:
    """Moto keeps user data base64-encoded (a string or its Base64EncodedString)."""
    if user_data is None:
        return None
    if hasattr(user_data, "decode") and not isinstance(user_data, (str, bytes)):
        try:
            return base64.b64decode(user_data.as_bytes())
        except Exception:
            return None
    if isinstance(user_data, list):
        user_data = user_data[0] if user_data else None
        if user_data is None:
            return None
    raw = user_data.encode() if isinstance(user_data, str) else user_data
    try:
        return base64.b64decode(raw, validate=True)
    except Exception:
        return raw


@dataclass
class UnitRun:
    unit: Unit
    process: subprocess.Popen | None = None
    restarts: int = 0
    state: str = "inactive"
    stopping: bool = False
    thread: threading.Thread | None = None


@dataclass
class InstanceRecord:
    instance_id: str
    account: str
    region: str
    group_name: str | None
    dir: Path
    first_seen: float
    state: str = "booting"  # booting -> running -> stopping -> stopped
    address: str | None = None
    netns: str | None = None
    veth_index: int = 0
    cgroup: Path | None = None
    cloud_init: subprocess.Popen | None = None
    cloud_init_exit: int | None = None
    units: dict[str, UnitRun] = field(default_factory=dict)
    db_wiring: dict[str, str] = field(default_factory=dict)  # endpoint host -> address inside
    failure: str | None = None
    in_service_since: float | None = None
    # Detailed (1-minute) monitoring: the instance's own `Monitoring` or its launch template's.
    detailed_monitoring: bool = False
    lock: threading.RLock = field(default_factory=threading.RLock)


class Instances:
    def __init__(
        self,
        host: Host,
        services: Services,
        activities: Activities,
        emulator_port: int,
        database_endpoints: Callable[[], dict[str, tuple[str, int]]],
        target_health: Callable[[str, str], tuple | None],
        drain: Callable[[str], None],
        time_scale: Callable[[], float],
        machine_venv: str | None,
    ) -> None:
        self._host = host
        self._services = services
        self._activities = activities
        self._emulator_port = emulator_port
        self._database_endpoints = database_endpoints
        self._target_health = target_health
        self._drain = drain
        self._time_scale = time_scale
        self._venv = machine_venv
        self._lock = threading.RLock()
        self._records: dict[str, InstanceRecord] = {}
        self._stopped: list[InstanceRecord] = []
        self._veth_counter = 0
        self._boots = threading.Semaphore(CONCURRENT_BOOTS)
        self._closing = False
        self.logs = host.state_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    # -- what the rest of the data plane asks ---------------------------------------------------

    def address_of(self, instance_id: str) -> str | None:
        """The instance's address as its target groups' load balancer reaches it, once its
        registration has completed.

        Under a time scale below 1 that is when the instance has booted (cloud-init finished, or
        the boot failed): the boot takes real seconds, which the balancer's scaled clock would
        count twenty-fold (at 0.05) against the target's health checks, so a 4 s boot would be
        an 80 s one and a loaded machine's 15 s boot would outlast a 3-minute alarm. On AWS an
        instance boots in well under the health checks' and alarms' windows. At scale 1 the
        target is checked from the start, as there."""
        record = self._records.get(instance_id)
        return registered_address(record, self._scale()) if record is not None else None

    def _scale(self) -> float:
        try:
            return float(self._time_scale())
        except Exception:
            return 1.0

    def cpu_seconds(self) -> dict[str, tuple[str, str, str | None, float]]:
        """instance id -> (account, region, group, CPU seconds used so far, detailed
        monitoring), live instances."""
        with self._lock:
            records = [r for r in self._records.values() if r.state in ("booting", "running")]
        return {
            r.instance_id: (r.account, r.region, r.group_name, Host.cgroup_cpu_seconds(r.cgroup), r.detailed_monitoring)
            for r in records
        }

    def describe(self) -> dict:
        with self._lock:
            records = list(self._records.values()) + list(self._stopped)
        return {
            r.instance_id: {
                "state": r.state,
                "group": r.group_name,
                "address": r.address,
                "netns": r.netns,
                "failure": r.failure,
                "cloud_init_exit": r.cloud_init_exit,
                "units": {
                    name: {
                        "state": run.state,
                        "restarts": run.restarts,
                        "pid": run.process.pid if run.process and run.process.poll() is None else None,
                    }
                    for name, run in r.units.items()
                },
                "logs": str(self.logs / r.instance_id),
                "pids": Host.cgroup_pids(r.cgroup) if r.state != "stopped" else [],
            }
            for r in records
        }

    # -- the loop ---------------------------------------------------------------------------

    def reconcile(self) -> None:
        live: dict[str, tuple[str, str, object]] = {}
        for account, region, backend in _backends("ec2"):
            for reservation in list(backend.reservations.values()):
                for instance in list(reservation.instances):
                    if instance._state.name in ("pending", "running"):
                        live[instance.id] = (account, region, instance)
        with self._lock:
            if self._closing:
                return
            known = set(self._records)
            for instance_id, (account, region, instance) in live.items():
                if instance_id not in known:
                    self._start(account, region, instance)
                elif self._records[instance_id].group_name is None:
                    self._join_group(self._records[instance_id], instance)
            for instance_id in known - set(live):
                record = self._records[instance_id]
                if record.state in ("booting", "running"):
                    self._terminate(record)
        self._wire_databases()
        self._replace_unhealthy()

    def close(self) -> None:
        """Stop every instance (as a termination would) and wait for them."""
        with self._lock:
            self._closing = True
            records = list(self._records.values())
        threads = []
        for record in records:
            if record.state in ("booting", "running"):
                thread = threading.Thread(target=self._stop, args=(record,), daemon=True)
                thread.start()
                threads.append(thread)
        for thread in threads:
            thread.join(timeout=60)

    # -- start ------------------------------------------------------------------------------

    def _start(self, account: str, region: str, instance) -> None:
        record = InstanceRecord(
            instance_id=instance.id,
            account=account,
            region=region,
            group_name=None,
            dir=self._host.state_dir / "instances" / instance.id,
            first_seen=time.monotonic(),
        )
        self._records[instance.id] = record
        self._join_group(record, instance)
        details = _launch_details(account, region, instance)
        record.detailed_monitoring = details["detailed_monitoring"]
        threading.Thread(target=self._boot, args=(record, details), name=f"boot-{instance.id}", daemon=True).start()

    def _join_group(self, record: InstanceRecord, instance) -> None:
        """The instance's scaling group, once moto has set it. moto's Auto Scaling makes the
        instance (visible to this loop) before it sets `autoscaling_group` on it, so a turn can
        see an instance of a group without its group; it is looked at again every turn until
        known, or the group's CPU metric and the launch activity would miss the instance."""
        group = getattr(instance, "autoscaling_group", None)
        if group is None:
            return
        record.group_name = group.name
        if not self._activities.mentions(record.account, record.region, group.name, record.instance_id):
            self._activities.record(
                record.account,
                record.region,
                group,
                f"Launching a new EC2 instance: {record.instance_id}",
                f"At {_aws_time()} an instance was started in response to a difference between "
                "desired and actual capacity.",
            )

    def _boot(self, record: InstanceRecord, details: dict) -> None:
        console = self.logs / record.instance_id / "console.log"
        try:
            with self._boots:
                slot = time.monotonic()
                self._prepare(record, details)
                if record.state != "booting":
                    return
                if details["user_data"] is None:
                    _say(console, "no user data: nothing to run")
                else:
                    self._run_cloud_init(record, console)
            with record.lock:
                if record.state == "booting":
                    record.state = "running"
            now = time.monotonic()
            print(
                f"dataplane: boot: {record.instance_id} waited {slot - record.first_seen:.1f} s for a slot, "
                f"booted in {now - slot:.1f} s (cloud-init exit {record.cloud_init_exit}) at {time.time():.1f}",
                file=sys.stderr,
                flush=True,
            )
            self._follow_requests(record)
        except Exception as error:
            record.failure = f"{type(error).__name__}: {error}"
            _say(console, f"boot failed: {record.failure}")
            traceback.print_exc()

    def _prepare(self, record: InstanceRecord, details: dict) -> None:
        """The instance's directories, network, cgroup and services."""
        root = record.dir / "root"
        for sub in ("etc-cloud", "etc-systemd-system", "var-lib-cloud/seed/nocloud", "var-log", "opt", "tmp",
                    "run/plinth-init/units", "home", "bin"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(root / "tmp", 0o1777)
        (root / "etc-cloud" / "cloud.cfg").write_text(CLOUD_CFG)
        shutil.copy(SYSTEMCTL, root / "bin" / "systemctl")
        seed = root / "var-lib-cloud" / "seed" / "nocloud"
        (seed / "meta-data").write_text(
            f"instance-id: {record.instance_id}\nlocal-hostname: {details['hostname']}\n"
        )
        if details["user_data"] is not None:
            (seed / "user-data").write_bytes(details["user_data"])
        (root / "hostname").write_text(details["hostname"] + "\n")
        with self._lock:
            self._veth_counter += 1
            record.veth_index = self._veth_counter
        record.address = self._host.instance_address()
        record.netns = self._host.create_netns(record.instance_id, record.address, record.veth_index)
        self._write_hosts(record, details["hostname"])
        self._host.add_local_address(record.netns, METADATA_ADDRESS)
        record.cgroup = self._host.make_cgroup(f"instances/{record.instance_id}")
        identity = Identity(
            instance_id=record.instance_id,
            account=record.account,
            region=record.region,
            zone=details["zone"],
            instance_type=details["instance_type"],
            image_id=details["image_id"],
            private_ip=details["private_ip"],
            hostname=details["hostname"],
            role_name=details["role_name"],
            tokens_required=details["tokens_required"],
        )
        self._services.serve_metadata(
            record.instance_id, Host.socket_in_netns(record.netns, (METADATA_ADDRESS, 80)), identity
        )
        self._services.forward(
            record.instance_id,
            Host.socket_in_netns(record.netns, EMULATOR_IN_INSTANCE),
            ("127.0.0.1", self._emulator_port),
        )
        self._wire(record, self._database_endpoints())

    def _write_hosts(self, record: InstanceRecord, hostname: str | None = None) -> None:
        root = record.dir / "root"
        if hostname is None:
            hostname = (root / "hostname").read_text().strip()
        lines = ["127.0.0.1 localhost", f"{record.address} {hostname} {hostname.split('.')[0]}"]
        lines += [f"{address} {name}" for name, address in sorted(record.db_wiring.items())]
        path = root / "hosts"
        # In place: the file is bind-mounted over /etc/hosts of running processes.
        with open(path, "a+") as hosts:
            hosts.seek(0)
            hosts.truncate()
            hosts.write("\n".join(lines) + "\n")

    def _wire(self, record: InstanceRecord, endpoints: dict[str, tuple[str, int]]) -> None:
        """Forward each database endpoint the instance does not reach yet."""
        with record.lock:
            if record.netns is None or record.state not in ("booting", "running"):
                return
            added = False
            for name, (address, port) in sorted(endpoints.items()):
                if name in record.db_wiring:
                    continue
                inside = f"127.0.1.{len(record.db_wiring) + 1}"
                self._services.forward(
                    record.instance_id, Host.socket_in_netns(record.netns, (inside, port)), (address, port)
                )
                record.db_wiring[name] = inside
                added = True
            if added:
                self._write_hosts(record)

    def _wire_databases(self) -> None:
        endpoints = self._database_endpoints()
        if not endpoints:
            return
        with self._lock:
            records = [r for r in self._records.values() if r.state in ("booting", "running")]
        for record in records:
            if not set(endpoints) <= set(record.db_wiring):
                try:
                    self._wire(record, endpoints)
                except Exception as error:
                    print(f"dataplane: wiring databases into {record.instance_id}: {error}", file=sys.stderr)

    def _machine_env(self) -> dict[str, str]:
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        if self._venv:
            path = f"{self._venv}/bin:{path}"
        env = {
            "PATH": path,
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "AWS_ENDPOINT_URL": f"http://{EMULATOR_IN_INSTANCE[0]}:{EMULATOR_IN_INSTANCE[1]}",
        }
        if self._venv:
            env["PLINTH_MACHINE_PATHS"] = f"{self._venv}:{sys.base_prefix}"
        return env

    def _in_instance(self, record: InstanceRecord, argv: list[str]) -> list[str]:
        command = ["ip", "netns", "exec", record.netns, str(INSTANCE_EXEC), str(record.dir), *argv]
        if record.cgroup is None:
            return command
        # Into the instance's cgroup first: inside `ip netns exec` /sys is another mount.
        join = 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"'
        return ["sh", "-c", join, "join-cgroup", str(record.cgroup), *command]

    def _run_cloud_init(self, record: InstanceRecord, console: Path) -> None:
        stages = "cloud-init init && cloud-init modules --mode config && cloud-init modules --mode final"
        with record.lock:
            if record.state != "booting":
                return
            record.cloud_init = self._host.spawn(
                f"{record.instance_id}/cloud-init",
                self._in_instance(record, ["sh", "-c", stages]),
                console,
                env=self._machine_env(),
            )
        deadline = time.monotonic() + BOOT_TIMEOUT
        while record.cloud_init.poll() is None and time.monotonic() < deadline:
            # A unit started by `systemctl enable --now` in runcmd starts now, not after boot.
            self._act_on_requests(record)
            time.sleep(0.2)
        if record.cloud_init.poll() is None:
            _say(console, f"cloud-init did not finish within {BOOT_TIMEOUT:.0f} s: stopped")
            self._host.stop(record.cloud_init, grace=5)
        else:
            self._host.forget(record.cloud_init)
        record.cloud_init_exit = record.cloud_init.returncode
        if record.cloud_init_exit != 0:
            _say(console, f"cloud-init exited with {record.cloud_init_exit}")
        self._act_on_requests(record)

    # -- units ------------------------------------------------------------------------------

    def _follow_requests(self, record: InstanceRecord) -> None:
        """After boot, keep acting on systemctl requests (a later `systemctl restart`)."""
        while record.state == "running" and not self._closing:
            self._act_on_requests(record)
            time.sleep(0.5)

    def _act_on_requests(self, record: InstanceRecord) -> None:
        requests = record.dir / "root" / "run" / "plinth-init" / "requests"
        try:
            with open(requests, "r+") as queue:
                fcntl_lock(queue)
                lines = queue.read().splitlines()
                queue.seek(0)
                queue.truncate()
        except FileNotFoundError:
            return
        for line in lines:
            words = line.split()
            if not words:
                continue
            command, now, unit_name = words[0], "--now" in words, words[-1]
            if command in ("start", "restart") or (command == "enable" and now):
                if command == "restart":
                    self._stop_unit(record, unit_name)
                self._start_unit(record, unit_name)
            elif command == "stop" or (command == "disable" and now):
                self._stop_unit(record, unit_name)

    def _start_unit(self, record: InstanceRecord, name: str) -> None:
        path = record.dir / "root" / "etc-systemd-system" / name
        journal = record.dir / "root" / "var-log" / f"{name}.journal"
        if not path.exists():
            # cloud-init asks for units of a full Debian (systemd-networkd …): not here.
            _say(record.dir.parent.parent / "logs" / record.instance_id / "console.log", f"systemctl: Unit {name} not found.")
            return
        unit = parse_unit(name, path.read_text())
        with record.lock:
            current = record.units.get(name)
            if current is not None and current.state in ("active", "activating"):
                return
            run = UnitRun(unit=unit)
            record.units[name] = run
        run.thread = threading.Thread(target=self._supervise, args=(record, run, journal), name=f"{record.instance_id}/{name}", daemon=True)
        run.thread.start()

    def _unit_argv(self, unit: Unit) -> list[str]:
        env = self._machine_env()
        env.pop("HOME", None)
        env.pop("PLINTH_MACHINE_PATHS", None)
        env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
        env.update(unit.environment)
        argv = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *unit.exec_start]
        if unit.dynamic_user or (unit.user not in (None, "root", "0")):
            # DynamicUser: a uid of its own on systemd; nobody here (one app per instance).
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", *argv]
        return argv

    def _supervise(self, record: InstanceRecord, run: UnitRun, journal: Path) -> None:
        unit = run.unit
        state_file = record.dir / "root" / "run" / "plinth-init" / "units" / unit.name
        while not run.stopping and record.state in ("booting", "running"):
            if not unit.exec_start:
                _say(journal, f"{unit.name}: Service has no ExecStart= setting. Refusing.")
                run.state = "failed"
                break
            run.state = "active"
            state_file.write_text("active")
            _say(journal, f"Started {unit.name}.")
            with record.lock:
                if run.stopping or record.state not in ("booting", "running"):
                    break
                run.process = self._host.spawn(
                    f"{record.instance_id}/{unit.name}",
                    self._in_instance(record, self._unit_argv(unit)),
                    journal,
                )
            code = run.process.wait()
            self._host.forget(run.process)
            if run.stopping:
                break
            result = "success" if code == 0 else "exit-code"
            _say(journal, f"{unit.name}: Main process exited, code=exited, status={code}/{'SUCCESS' if code == 0 else 'FAILURE'}")
            restart = unit.restart == "always" or (unit.restart == "on-failure" and code != 0)
            if not restart:
                run.state = "inactive" if code == 0 else "failed"
                state_file.write_text(run.state)
                return
            run.state = "activating"
            state_file.write_text("activating")
            run.restarts += 1
            _say(journal, f"{unit.name}: Failed with result '{result}'. Scheduled restart job, restart counter is at {run.restarts}.")
            time.sleep(unit.restart_sec)
        run.state = "inactive"
        try:
            state_file.write_text("inactive")
        except OSError:
            pass

    def _stop_unit(self, record: InstanceRecord, name: str) -> None:
        run = record.units.get(name)
        if run is None:
            return
        run.stopping = True
        process = run.process
        if process is not None and process.poll() is None:
            journal = record.dir / "root" / "var-log" / f"{name}.journal"
            _say(journal, f"Stopping {name}...")
            self._host.stop(process, sig=run.unit.kill_signal, grace=run.unit.timeout_stop)
            _say(journal, f"Stopped {name}.")
        if run.thread is not None:
            run.thread.join(timeout=5)

    # -- termination ------------------------------------------------------------------------

    def _terminate(self, record: InstanceRecord) -> None:
        record.state = "stopping"
        threading.Thread(target=self._stop, args=(record,), name=f"stop-{record.instance_id}", daemon=True).start()

    def _stop(self, record: InstanceRecord) -> None:
        record.state = "stopping"
        try:
            self._drain(record.instance_id)
        except Exception as error:
            print(f"dataplane: draining {record.instance_id}: {error}", file=sys.stderr)
        units = list(record.units)
        threads = [threading.Thread(target=self._stop_unit, args=(record, name), daemon=True) for name in units]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        with record.lock:
            if record.cloud_init is not None and record.cloud_init.poll() is None:
                self._host.stop(record.cloud_init, grace=2)
        Host.remove_cgroup(record.cgroup)
        self._services.close_owner(record.instance_id)
        if record.netns is not None:
            self._host.delete_netns(record.netns, record.veth_index)
        if record.address is not None:
            self._host.release_instance_address(record.address)
        self._keep_logs(record)
        shutil.rmtree(record.dir, ignore_errors=True)
        with self._lock:
            record.state = "stopped"
            self._records.pop(record.instance_id, None)
            self._stopped.append(record)
            del self._stopped[:-KEEP_STOPPED]

    def _keep_logs(self, record: InstanceRecord) -> None:
        target = self.logs / record.instance_id
        target.mkdir(parents=True, exist_ok=True)
        for journal in (record.dir / "root" / "var-log").glob("*.journal"):
            shutil.copy(journal, target / journal.name)
        cloud_log = record.dir / "root" / "var-log" / "cloud-init-output.log"
        if cloud_log.exists():
            shutil.copy(cloud_log, target / cloud_log.name)

    # -- health-check replacement -----------------------------------------------------------

    def _replace_unhealthy(self) -> None:
        now = time.monotonic()
        for account, region, backend in _backends("autoscaling"):
            for group in list(backend.autoscaling_groups.values()):
                if group.health_check_type != "ELB" or not group.target_group_arns:
                    continue
                grace = float(group.health_check_grace_period or 0) * self._scale()
                for state in list(group.instance_states):
                    record = self._records.get(state.instance.id)
                    if record is None or record.state not in ("booting", "running"):
                        continue
                    if state.lifecycle_state != "InService":
                        continue
                    if record.in_service_since is None:
                        record.in_service_since = now
                        continue
                    if now - record.in_service_since < grace:
                        continue
                    reason = self._unhealthy_reason(group.target_group_arns, record.instance_id)
                    if reason is not None:
                        self._replace(backend, account, region, group, record.instance_id, reason)

    def _unhealthy_reason(self, target_groups: list[str], instance_id: str) -> str | None:
        for arn in list(target_groups):
            health = self._target_health(arn, instance_id)
            if health is not None and health[0] == "unhealthy":
                return health[1] or "unhealthy"
        return None

    def _replace(self, backend, account: str, region: str, group, instance_id: str, reason: str) -> None:
        self._activities.record(
            account,
            region,
            group,
            f"Terminating EC2 instance: {instance_id}",
            f"At {_aws_time()} an instance was taken out of service in response to an ELB system "
            f"health check failure ({reason}).",
        )
        try:
            # Detaches it, terminates it and launches a replacement (desired capacity unchanged).
            backend.terminate_instance(instance_id, should_decrement=False)
        except Exception as error:
            print(f"dataplane: replacing {instance_id}: {error}", file=sys.stderr)


def registered_address(record: InstanceRecord, scale: float) -> str | None:
    """The address a target group reaches `record` at, or None while its registration is in
    progress or once it is stopping (`Instances.address_of` says why the boot counts)."""
    if record.state not in ("booting", "running"):
        return None
    if record.state == "booting" and record.failure is None and scale < 1:
        return None
    return record.address


def fcntl_lock(handle) -> None:
    import fcntl

    fcntl.flock(handle, fcntl.LOCK_EX)


def _say(path: Path, message: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as log:
        log.write(f"{datetime.now(timezone.utc).isoformat(timespec='milliseconds')} [plinth-dataplane] {message}\n")


def _aws_time() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _backends(service: str):
    """(account, region, backend) of every backend moto has made for `service` so far (looked
    up without creating new ones)."""
    from moto.backends import get_backend

    for account, regions in list(get_backend(service).items()):
        for region, backend in list(regions.items()):
            yield account, region, backend


def _launch_details(account: str, region: str, instance) -> dict:
    """What the boot needs from moto's instance, read once on the loop thread."""
    template = _template_data(instance)
    profile = instance.iam_instance_profile or template.get("IamInstanceProfile") or {}
    metadata = template.get("MetadataOptions") or {}
    private_ip = instance.private_ip or "10.0.0.1"
    return {
        "user_data": decode_user_data(instance.user_data),
        "zone": instance.placement or f"{region}a",
        "instance_type": instance.instance_type,
        "image_id": instance.image_id or "",
        "private_ip": private_ip,
        "hostname": f"ip-{private_ip.replace('.', '-')}.{region}.compute.internal",
        "role_name": lambda: _role_of(account, profile),
        "tokens_required": metadata.get("HttpTokens", "optional") == "required",
        # moto's Auto Scaling launches without the template's `Monitoring`; EC2 applies it.
        "detailed_monitoring": instance.monitoring_state.lower() == "enabled"
        or str((template.get("Monitoring") or {}).get("Enabled", "")).lower() == "true",
    }


def _template_data(instance) -> dict:
    tags = instance.get_tags() if hasattr(instance, "get_tags") else []
    values = {t["key"]: t["value"] for t in tags}
    template_id = values.get("aws:ec2launchtemplate:id")
    if not template_id:
        return {}
    try:
        version = instance.ec2_backend._get_template_from_args(
            {"LaunchTemplateId": template_id, "Version": values.get("aws:ec2launchtemplate:version", "$Default")}
        )
        return version.data or {}
    except Exception:
        return {}


def _role_of(account: str, profile: dict) -> str | None:
    """The role of an instance profile named by `{"Arn"}` or `{"Name"}`, if it exists now."""
    from moto.iam.models import iam_backends

    name = profile.get("Name") or (profile.get("Arn") or "").rsplit("/", 1)[-1]
    if not name:
        return None
    try:
        iam = iam_backends[account]["global"]
        for candidate in list(iam.instance_profiles.values()):
            if candidate.name == name and candidate.roles:
                return candidate.roles[0].name
    except Exception:
        return None
    return None
