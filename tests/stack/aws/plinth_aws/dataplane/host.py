"""This emulator's share of the machine: what the data plane creates outside its own process,
allocated so two emulators never collide, recorded so nothing outlives them.

One emulator with the data plane on takes a **block** `n` (0-63), held by a registry file
`/run/plinth-dataplane/blocks/<n>.json` naming its pid. The block gives it:

- `10.250.<4n>.0/22` for instances: a bridge `plbr<n>` on the host holds `.1`; each instance is
  a network namespace `plinth-<n>-<instance id>` joined to the bridge by a veth pair, with one
  address of the block. Traffic to those addresses stays inside namespaces the stack made.
- `127.78.<n>.1-254` for load balancers and `127.79.<n>.1-254` for database servers: loopback
  addresses, one per load balancer or cluster (the whole 127/8 is local on Linux, no alias
  needed), so each listens on its real port (80, 443, 3306) without colliding.
- a cgroup v2 directory `plinth-dataplane/<n>/` for instances' CPU accounting and killing.
- a block of `/etc/hosts` lines between `# plinth-dataplane <n> begin/end` markers, so a load
  balancer's DNS name resolves on this machine (curl, the demo).

Every long-lived process the data plane starts (haproxy, mariadbd, an instance's processes) is
started through `spawn` in its own session and listed in the registry file. `sweep()` (called
when a data plane starts, and by `tests/stack/down`) undoes the blocks of emulators that died
without stopping cleanly: kills their processes, deletes namespaces, links, cgroups, hosts
lines and state.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

REGISTRY = Path(os.environ.get("PLINTH_DATA_PLANE_REGISTRY", "/run/plinth-dataplane"))
BLOCKS = 64
HOSTS_FILE = Path("/etc/hosts")
CLONE_NEWNET = 0x40000000


class HostError(RuntimeError):
    """A host operation failed; the message says which command and why."""


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise HostError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()}")
    return result


def _start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/pid/stat), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start_time: str | None) -> bool:
    return _start_time(pid) is not None and _start_time(pid) == start_time


def cgroup2_root() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`)."""
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and parts[2] == "cgroup2":
                return Path(parts[1])
    except OSError:
        pass
    return None


class Host:
    """One block of the machine, held while this emulator runs."""

    def __init__(self, state_root: Path) -> None:
        self._lock = threading.RLock()
        self.registry = REGISTRY / "blocks"
        self.registry.mkdir(parents=True, exist_ok=True)
        sweep()
        self.block = self._claim_block()
        self.tag = f"{self.block}"
        self.state_dir = state_root / f"block-{self.block}"
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.state_dir.mkdir(parents=True)
        self.bridge = f"plbr{self.block}"
        self.gateway = f"10.250.{4 * self.block}.1"
        self._processes: dict[int, dict] = {}
        self._addresses: set[str] = set()
        self._next_address = 0
        self._lb_addresses: set[str] = set()
        self._db_addresses: set[str] = set()
        self._hosts_lines: dict[str, str] = {}
        root = cgroup2_root()
        self.cgroup = root / "plinth-dataplane" / str(self.block) if root else None
        self._write_registry()
        self._make_bridge()
        if self.cgroup is not None:
            self.cgroup.mkdir(parents=True, exist_ok=True)

    # -- the block ---------------------------------------------------------------------------

    def _claim_block(self) -> int:
        me = {"pid": os.getpid(), "start_time": _start_time(os.getpid())}
        with _registry_lock():
            for block in range(BLOCKS):
                path = self.registry / f"{block}.json"
                if not path.exists():
                    path.write_text(json.dumps({**me, "processes": []}))
                    return block
        raise HostError(f"all {BLOCKS} data plane blocks are in use (see {self.registry})")

    def _write_registry(self) -> None:
        document = {
            "pid": os.getpid(),
            "start_time": _start_time(os.getpid()),
            "state_dir": str(self.state_dir),
            "processes": list(self._processes.values()),
        }
        path = self.registry / f"{self.block}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(document))
        tmp.replace(path)

    def _make_bridge(self) -> None:
        run(["ip", "link", "del", self.bridge], check=False)
        run(["ip", "link", "add", self.bridge, "type", "bridge"])
        run(["ip", "addr", "add", f"{self.gateway}/22", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])

    # -- addresses ---------------------------------------------------------------------------

    def instance_address(self) -> str:
        """A free address of the block for an instance. Addresses are handed out round the
        block, not lowest-first: a terminated instance's address is not given to the next one
        while the host's neighbour cache may still hold the old instance's MAC for it (checks
        and requests to the new one would time out)."""
        with self._lock:
            base = 4 * self.block
            for _ in range(1020):
                self._next_address = self._next_address % 1020 + 1
                index = self._next_address + 1
                address = f"10.250.{base + index // 256}.{index % 256}"
                if address not in self._addresses:
                    self._addresses.add(address)
                    # An entry left from an earlier instance with this address goes too.
                    run(["ip", "neigh", "del", address, "dev", self.bridge], check=False)
                    return address
        raise HostError(f"no instance address left in block {self.block}")

    def release_instance_address(self, address: str) -> None:
        with self._lock:
            self._addresses.discard(address)

    def lb_address(self) -> str:
        """A free loopback address for a load balancer."""
        with self._lock:
            for index in range(1, 255):
                address = f"127.78.{self.block}.{index}"
                if address not in self._lb_addresses:
                    self._lb_addresses.add(address)
                    return address
        raise HostError(f"no load balancer address left in block {self.block}")

    def release_lb_address(self, address: str) -> None:
        with self._lock:
            self._lb_addresses.discard(address)

    def db_address(self) -> str:
        """A free loopback address for a database server."""
        with self._lock:
            for index in range(1, 255):
                address = f"127.79.{self.block}.{index}"
                if address not in self._db_addresses:
                    self._db_addresses.add(address)
                    return address
        raise HostError(f"no database address left in block {self.block}")

    def release_db_address(self, address: str) -> None:
        with self._lock:
            self._db_addresses.discard(address)

    # -- network namespaces ------------------------------------------------------------------

    def netns_name(self, name: str) -> str:
        return f"plinth-{self.block}-{name}"

    def create_netns(self, name: str, address: str, veth_index: int) -> str:
        """A namespace `netns_name(name)` with loopback up, `address`/22 on a veth joined to
        the bridge, and a default route to the bridge; returns the namespace's name."""
        netns = self.netns_name(name)
        host_end, inner_end = f"plv{self.block}-{veth_index}", f"pli{self.block}-{veth_index}"
        run(["ip", "netns", "del", netns], check=False)
        run(["ip", "link", "del", host_end], check=False)
        run(["ip", "netns", "add", netns])
        run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", inner_end])
        run(["ip", "link", "set", inner_end, "netns", netns])
        run(["ip", "link", "set", host_end, "master", self.bridge])
        run(["ip", "link", "set", host_end, "up"])
        run(["ip", "-n", netns, "link", "set", "lo", "up"])
        run(["ip", "-n", netns, "addr", "add", f"{address}/22", "dev", inner_end])
        run(["ip", "-n", netns, "link", "set", inner_end, "up"])
        run(["ip", "-n", netns, "route", "add", "default", "via", self.gateway])
        return netns

    def add_local_address(self, netns: str, address: str) -> None:
        """An extra address on the namespace's loopback (the metadata service's)."""
        run(["ip", "-n", netns, "addr", "add", f"{address}/32", "dev", "lo"], check=False)

    def delete_netns(self, netns: str, veth_index: int) -> None:
        run(["ip", "link", "del", f"plv{self.block}-{veth_index}"], check=False)
        run(["ip", "netns", "del", netns], check=False)

    @staticmethod
    def socket_in_netns(netns: str, address: tuple[str, int]) -> socket.socket:
        """A TCP socket listening on `address` inside namespace `netns`.

        A thread enters the namespace (setns changes only the calling thread), creates and
        binds the socket, and ends; the socket stays in the namespace it was made in, while
        this process accepts on it and connects out from the host's namespace."""
        made: dict = {}

        def inside() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns into {netns}")
                finally:
                    os.close(fd)
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind(address)
                listener.listen(128)
                listener.setblocking(False)
                made["socket"] = listener
            except Exception as error:  # handed to the caller below
                made["error"] = error

        thread = threading.Thread(target=inside, name=f"setns-{netns}")
        thread.start()
        thread.join()
        if "error" in made:
            raise HostError(f"listening on {address[0]}:{address[1]} in {netns}: {made['error']}")
        return made["socket"]

    # -- cgroups -----------------------------------------------------------------------------

    def make_cgroup(self, name: str) -> Path | None:
        if self.cgroup is None:
            return None
        path = self.cgroup / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @staticmethod
    def cgroup_cpu_seconds(path: Path | None) -> float:
        if path is None:
            return 0.0
        try:
            for line in (path / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
        except OSError:
            pass
        return 0.0

    @staticmethod
    def cgroup_pids(path: Path | None) -> list[int]:
        if path is None:
            return []
        try:
            return [int(p) for p in (path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    @staticmethod
    def remove_cgroup(path: Path | None) -> None:
        """Kill whatever is left in the cgroup and remove it."""
        if path is None or not path.exists():
            return
        _kill_cgroup(path)

    # -- processes ---------------------------------------------------------------------------

    def spawn(
        self,
        name: str,
        argv: list[str],
        log: Path,
        env: dict | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen:
        """Start `argv` in a session of its own, output appended to `log`, recorded in the
        registry until `stop`ped or seen to have exited."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        with self._lock:
            self._processes[process.pid] = {
                "name": name,
                "pid": process.pid,
                "start_time": _start_time(process.pid),
            }
            self._write_registry()
        return process

    def stop(self, process: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 10.0) -> int | None:
        """Signal the process's session (group), wait up to `grace` seconds, then SIGKILL it."""
        if process.poll() is None:
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=10)
        else:
            # The leader is gone; its children may not be.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.forget(process)
        return process.returncode

    def forget(self, process: subprocess.Popen) -> None:
        with self._lock:
            if self._processes.pop(process.pid, None) is not None:
                self._write_registry()

    # -- /etc/hosts --------------------------------------------------------------------------

    def set_host_name(self, name: str, address: str | None) -> None:
        """Map `name` to `address` in this block's /etc/hosts lines (None removes it)."""
        with self._lock:
            if address is None:
                if self._hosts_lines.pop(name, None) is None:
                    return
            elif self._hosts_lines.get(name) == address:
                return
            else:
                self._hosts_lines[name] = address
            _write_hosts_block(self.block, dict(self._hosts_lines))

    # -- the end -----------------------------------------------------------------------------

    def close(self) -> None:
        """Undo everything of this block: processes, namespaces, links, cgroups, hosts lines."""
        with self._lock:
            for entry in list(self._processes.values()):
                _kill_group(entry["pid"], entry.get("start_time"))
            self._processes.clear()
            _undo_block(self.block, self.state_dir)
            (self.registry / f"{self.block}.json").unlink(missing_ok=True)


class _registry_lock:
    def __enter__(self):
        REGISTRY.mkdir(parents=True, exist_ok=True)
        self._file = open(REGISTRY / "lock", "w")
        fcntl.flock(self._file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


def _kill_group(pid: int, start_time: str | None) -> None:
    if _start_time(pid) != start_time:
        # Exited (its group may still hold children: kill the group anyway if it exists).
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_cgroup(path: Path) -> None:
    for child in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if child.is_dir():
            _kill_cgroup_dir(child)
    _kill_cgroup_dir(path)


def _kill_cgroup_dir(path: Path) -> None:
    kill = path / "cgroup.kill"
    for _ in range(50):
        try:
            pids = (path / "cgroup.procs").read_text().split()
        except OSError:
            return
        if not pids:
            break
        if kill.exists():
            try:
                kill.write_text("1")
            except OSError:
                pass
        else:
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.05)
    try:
        path.rmdir()
    except OSError:
        pass


def _write_hosts_block(block: int, lines: dict[str, str]) -> None:
    begin, end = f"# plinth-dataplane {block} begin", f"# plinth-dataplane {block} end"
    with _registry_lock():
        try:
            current = HOSTS_FILE.read_text()
        except OSError:
            return
        kept, inside = [], False
        for line in current.splitlines():
            if line == begin:
                inside = True
            elif line == end:
                inside = False
            elif not inside:
                kept.append(line)
        if lines:
            kept.append(begin)
            kept.extend(f"{address} {name}" for name, address in sorted(lines.items()))
            kept.append(end)
        # Written in place: /etc/hosts may be a bind mount, which a rename would not replace.
        with open(HOSTS_FILE, "r+") as hosts:
            hosts.seek(0)
            hosts.write("\n".join(kept) + "\n")
            hosts.truncate()


def _undo_block(block: int, state_dir: Path | None) -> None:
    netns_prefix = f"plinth-{block}-"
    for netns in run(["ip", "netns", "list"], check=False).stdout.split("\n"):
        name = netns.split(" ")[0].strip()
        if name.startswith(netns_prefix):
            run(["ip", "netns", "pids", name], check=False)
            for pid in run(["ip", "netns", "pids", name], check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run(["ip", "netns", "del", name], check=False)
    links = run(["ip", "-o", "link", "show"], check=False).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith(f"plv{block}-") or name == f"plbr{block}":
            run(["ip", "link", "del", name], check=False)
    root = cgroup2_root()
    if root is not None:
        _kill_cgroup(root / "plinth-dataplane" / str(block))
    _write_hosts_block(block, {})
    if state_dir is not None:
        shutil.rmtree(state_dir, ignore_errors=True)


def sweep() -> list[int]:
    """Undo the blocks of emulators that are gone (killed without stopping cleanly); returns
    the blocks freed. Safe to run beside live emulators: their blocks are left alone."""
    freed = []
    blocks = REGISTRY / "blocks"
    if not blocks.is_dir():
        return freed
    with _registry_lock():
        for path in blocks.glob("*.json"):
            try:
                entry = json.loads(path.read_text())
            except (OSError, ValueError):
                entry = {}
            if entry and _alive(entry.get("pid", -1), entry.get("start_time")):
                continue
            for process in entry.get("processes", []):
                _kill_group(process["pid"], process.get("start_time"))
            block = int(path.stem)
            state_dir = Path(entry["state_dir"]) if entry.get("state_dir") else None
            freed.append((block, state_dir, path))
    for block, state_dir, path in freed:
        _undo_block(block, state_dir)
        path.unlink(missing_ok=True)
    return [block for block, _, _ in freed]


if __name__ == "__main__":
    # `python -m plinth_aws.dataplane.host sweep`: what tests/stack/down runs.
    import sys

    if sys.argv[1:] == ["sweep"]:
        print(f"data plane blocks freed: {sweep()}")
    else:
        print("usage: python -m plinth_aws.dataplane.host sweep", file=sys.stderr)
        sys.exit(2)
