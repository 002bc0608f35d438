"""The data plane as one object: its parts built over one `Host`, one loop thread that moves the
real world toward moto's state, the hooks where an API answers from the real world, and the
admin view (`GET /_plinth/dataplane`).

The loop is level-triggered: every `LOOP_SECONDS` each part reads moto's current state and
acts on the difference (start an instance, reload a proxy, stop a database server), so a
resource changed by any API call, a reset or a deletion is picked up the same way. A part that
fails is logged and tried again on the next turn; the loop never stops on an error.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

from . import activities as activities_module
from .activities import Activities
from .alarms import AlarmEvaluator
from .balancers import Balancers
from .databases import Databases
from .host import Host
from .instances import Instances
from .metrics import Metrics
from .services import Services

LOOP_SECONDS = 0.5
# A turn longer than this is reported with what each step took (a stuck step stops alarms,
# metrics and instance changes alike, so it must show in the log, not only as a timeout).
SLOW_TURN_SECONDS = 5.0
# What an instance, a proxy and a database server need from the machine (tests/stack/up
# installs them).
REQUIRED_COMMANDS = ("ip", "haproxy", "cloud-init", "mariadbd", "mariadb-install-db", "setpriv", "nsenter")


class DataPlaneError(RuntimeError):
    """The data plane cannot run on this machine; the message says what to install or change."""


def state_root() -> Path:
    if os.environ.get("PLINTH_DATA_PLANE_DIR"):
        return Path(os.environ["PLINTH_DATA_PLANE_DIR"])
    if os.environ.get("PLINTH_STACK_DIR"):
        return Path(os.environ["PLINTH_STACK_DIR"]) / "dataplane"
    return Path("/tmp/plinth-dataplane")


def check_machine() -> None:
    if os.geteuid() != 0:
        raise DataPlaneError("the data plane needs root (network namespaces, cgroups, mounts)")
    missing = [c for c in REQUIRED_COMMANDS if shutil.which(c) is None and not Path(f"/usr/sbin/{c}").exists()]
    if missing:
        raise DataPlaneError(f"the data plane needs {', '.join(missing)}: run tests/stack/up (it installs them)")
    # cloud-init's state directory is a mount point inside each instance.
    Path("/var/lib/cloud").mkdir(parents=True, exist_ok=True)


class DataPlane:
    def __init__(self, time_scale: Callable[[], float], emulator_port: int, activities: Activities) -> None:
        check_machine()
        self.time_scale = time_scale
        self.activities = activities
        self.host = Host(state_root())
        self.services = Services()
        self.databases = Databases(self.host)
        self.balancers = Balancers(self.host, address_of=self._address_of, time_scale=time_scale)
        self.instances = Instances(
            self.host,
            self.services,
            activities,
            emulator_port,
            database_endpoints=self.databases.endpoints,
            target_health=self.balancers.target_health,
            drain=self.balancers.drain,
            time_scale=time_scale,
            machine_venv=sys.prefix if sys.prefix != sys.base_prefix else None,
        )
        self.metrics = Metrics(self.balancers, self.instances, self.databases, time_scale)
        self.alarms = AlarmEvaluator(activities, time_scale)
        self._stop = threading.Event()
        # When the current turn began and which step it is in, for the admin view.
        self._turn_started = time.monotonic()
        self._step = "starting"
        self._thread = threading.Thread(target=self._run, name="dataplane", daemon=True)
        self._thread.start()

    def _address_of(self, instance_id: str) -> str | None:
        return self.instances.address_of(instance_id)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self._turn()
            self._stop.wait(max(0.05, LOOP_SECONDS - (time.monotonic() - started)))

    def _turn(self) -> None:
        # The proxies first: a listener's new weights are applied before an instance of the
        # old revision is drained, so no request is sent to a backend with no server left.
        steps = [
            ("load balancers", self.balancers.reconcile),
            ("instances", self.instances.reconcile),
            ("databases", self.databases.reconcile),
            ("alarms", self.alarms.evaluate),
        ]
        if self.metrics.due():
            steps.insert(3, ("metrics", self.metrics.publish))
        self._turn_started = time.monotonic()
        took = []
        for name, step in steps:
            self._step = name
            began = time.monotonic()
            try:
                step()
            except Exception:
                print(f"dataplane: {name} failed this turn:", file=sys.stderr)
                traceback.print_exc()
            took.append(f"{name} {time.monotonic() - began:.1f} s")
        self._step = "idle"
        if time.monotonic() - self._turn_started > SLOW_TURN_SECONDS:
            print(f"dataplane: a slow turn: {', '.join(took)}", file=sys.stderr)

    def target_health(self, target_group_arn: str, target_id: str) -> tuple | None:
        return self.balancers.target_health(target_group_arn, target_id)

    def describe(self) -> dict:
        return {
            "enabled": True,
            "time_scale": self.time_scale(),
            "block": self.host.block,
            "state_dir": str(self.host.state_dir),
            # load balancer DNS name -> the loopback address its proxy listens on
            "load_balancers": self.balancers.endpoints(),
            # database endpoint host name -> "address:port" of the cluster's server
            "database_endpoints": {
                name: f"{address}:{port}" for name, (address, port) in self.databases.endpoints().items()
            },
            "instances": self.instances.describe(),
            # the loop's step now, and how long its turn has lasted (a stuck step shows here)
            "loop": {"step": self._step, "turn_seconds": round(time.monotonic() - self._turn_started, 1)},
        }

    def reset(self) -> None:
        """The emulator was reset: the loop stops what moto no longer has; forget bookkeeping."""
        self.alarms.reset()
        self.activities.reset()

    def close(self) -> None:
        """Stop everything this data plane started, instances first (their units drain)."""
        self._stop.set()
        self._thread.join(timeout=10)
        for name, step in [
            ("instances", self.instances.close),
            ("load balancers", self.balancers.close),
            ("databases", self.databases.close),
            ("services", self.services.close),
            ("host", self.host.close),
        ]:
            try:
                step()
            except Exception:
                print(f"dataplane: closing {name} failed:", file=sys.stderr)
                traceback.print_exc()


def install_hooks(plane: Callable[[], DataPlane | None]) -> None:
    """`DescribeTargetHealth` answers from the load balancer's real checks while a data plane
    runs (the declared states of lifecycle.py only without one). A registered target no proxy
    checks yet is `initial` when a listener forwards to its group (the proxy is starting or
    reloading), `unused` when none does, as AWS reports them."""
    from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup

    declared = FakeTargetGroup.health_for

    def health_for(self, target, ec2_backend):
        current = plane()
        if current is None or target["Id"] not in self.targets:
            return declared(self, target, ec2_backend)
        registered = self.targets[target["Id"]]
        port = registered.get("Port", self.port)
        measured = current.target_health(self.arn, target["Id"])
        if measured is None:
            if self.load_balancer_arns:
                measured = ("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
            else:
                measured = (
                    "unused",
                    "Target.NotInUse",
                    "Target group is not configured to receive traffic from the load balancer",
                )
        state, reason, description = measured
        return FakeHealthStatus(target["Id"], port, self.health_check_port, state, reason, description)

    FakeTargetGroup.health_for = health_for


def install_activities(activities: Activities) -> None:
    activities_module.install(activities)
