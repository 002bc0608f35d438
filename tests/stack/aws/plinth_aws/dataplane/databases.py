"""Each Aurora MySQL cluster moto holds, run as a MariaDB server of its own that the app on the
instances can log in to, as it would to the cluster on AWS.

For every DB cluster of engine `aurora-mysql` (or `aurora`, `mysql`) in any account and region,
in any state but `deleting`, one `mariadbd`:

- listens on a loopback address of this emulator's block (`Host.db_address()`) at the cluster's
  `Port` (3306 unless given), and on a unix socket in its directory
  (`<state>/databases/<cluster id>/`); every endpoint name of the cluster (writer, reader, each
  DB instance's) maps to that address and port (`endpoints()`).
  https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/Aurora.Overview.Endpoints.html
- speaks TLS, as Aurora MySQL does to a client that asks (`ssl-mode=REQUIRED`), with a server
  certificate per cluster naming its endpoints and address, issued by a certificate authority of
  this data plane (`ca_path`, the stand-in for AWS's `global-bundle.pem`).
  https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/AuroraMySQL.Security.html
- has the cluster's master user, `'<MasterUsername>'@'%'`, with every privilege and GRANT
  OPTION (the master user creates the others), and the cluster's `DatabaseName` if it has one.
  https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/UsingWithRDS.MasterAccounts.html
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBCluster.html
- takes the master password from the cluster's managed secret (`ManageMasterUserPassword`: the
  `AWSCURRENT` version of `MasterUserSecret.SecretArn`, JSON `{"username", "password"}`), else
  from `MasterUserPassword`. When the secret's current value changes (rotation,
  PutSecretValue) the password is changed within a reconcile or two, so a client that re-reads
  the secret after a refused login finds the new one working and the old one refused. A value
  that is not JSON or has no password changes nothing; the reason is logged.
  https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/rds-secrets-manager.html

A cluster gone from moto (or `deleting`) has its server stopped (SIGTERM, then SIGKILL), its
directory deleted and its address released; `close()` does that to all. The slow parts (the
data directory, copied from one made by `mariadb-install-db` per data plane; the server's start;
SQL) run in a thread per cluster, so `reconcile()` returns at once; a failure is logged with the
server's log and retried with backoff. A server is ready, and its endpoints listed, only once
its master user has logged in over TCP with TLS: about 0.3 s after the cluster appears, 1-2 s for
the first one (the install), on a 2-CPU machine. Each server holds about 55 MB resident.
`cpu_seconds()` reads the server's CPU from /proc for `AWS/RDS` `CPUUtilization`.

moto writes `{"username": "admin", "password": "P@55w0rd!"}` into every managed secret, whatever
the MasterUsername. A client that takes its user name from the secret (as AWS's guide and the
app do) would then be refused, so a secret naming another user than the master gets that user
too, with the same password and privileges, until the secret names someone else.

What is not modelled:
- Aurora's storage and engine: the server is MariaDB 10.11 (MySQL's protocol and most of its
  SQL, not MySQL 8.0's dialect, defaults, sql_mode or system tables), on this machine's disk,
  with small buffers; no storage autoscaling, no `VolumeBytesUsed`.
- Instances: readers are not servers of their own and there is no replication, failover,
  replica lag or promotion tiers; the writer, reader and every instance endpoint reach the one
  server. Instance classes set no memory or `max_connections`.
- A stopped cluster keeps serving; a port changed by ModifyDBCluster takes effect by a restart
  of the server (the data stays).
- IAM database authentication, Kerberos, custom endpoints, RDS Proxy, Data API, the master user
  being limited to `rds_superuser_role` (here it has every privilege, SUPER included).
- Serverless v1/v2 capacity and pausing, parameter groups (cluster or instance), option groups,
  backtrack, backups, snapshots and point-in-time restore, global databases, zero-ETL,
  performance insights and enhanced monitoring; logs are not exported to CloudWatch.
- Security groups and subnets: any process on this machine that reaches the address may connect.
- Rotation through RDS (`ModifyDBCluster RotateMasterUserPassword`): moto's rotation leaves the
  secret's new current version without a value, which is logged and changes nothing.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from moto.rds.models import DBInstanceClustered, rds_backends
from moto.secretsmanager.models import secretsmanager_backends

from .host import Host

ENGINES = ("aurora-mysql", "aurora", "mysql")
# Debian installs the server under /usr/sbin, which a service's PATH may lack.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
MARIADBD = shutil.which("mariadbd", path=_SEARCH_PATH) or "mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db", path=_SEARCH_PATH) or "mariadb-install-db"
CLIENT = shutil.which("mariadb", path=_SEARCH_PATH) or "mariadb"

# Generous: many clusters may be installing at once on a loaded CI machine.
INSTALL_TIMEOUT = 120.0
START_TIMEOUT = 60.0
SQL_TIMEOUT = 20.0
STOP_GRACE = 10.0
# Retry a failed start after 1, 2, 4, ... seconds, at most this many.
MAX_BACKOFF = 60.0
# A unix socket's path must fit sockaddr_un.sun_path (108 bytes with its NUL).
MAX_SOCKET_PATH = 100
# Names the master user's alias (moto's secret username) may not take over.
RESERVED_USERS = frozenset({"root", "mariadb.sys", "mysql", "public", "rdsadmin"})

# Small enough for dozens of clusters on a laptop; innodb-log-file-size also goes to
# mariadb-install-db, or the bootstrap writes a 96 MB redo log the server then shrinks.
INNODB_OPTIONS = ["--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M"]
# With these a server holds about 55 MB resident instead of 90 MB. There is no query cache in
# MySQL 8.0 (Aurora MySQL 3) either.
SMALL_OPTIONS = [
    "--innodb-log-buffer-size=2M",
    "--key-buffer-size=1M",
    "--aria-pagecache-buffer-size=2M",
    "--query-cache-type=0",
    "--query-cache-size=0",
]


def log(message: str) -> None:
    print(f"plinth-aws databases: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Wanted:
    """What moto says one cluster should be, read in one reconcile."""

    key: tuple[str, str]  # (cluster ARN, DbClusterResourceId): a recreated cluster is another
    arn: str
    cluster_id: str
    port: int
    username: str
    database: str | None
    names: tuple[str, ...]  # endpoint host names
    password: str | None  # None: not known (see problem)
    alias: str | None  # the secret's username, when it is not the master's
    problem: str | None  # why the password (or alias) could not be taken, to log once


@dataclass(eq=False)
class Server:
    """One cluster's MariaDB server and what this module knows of it."""

    want: Wanted
    dir: Path
    address: str
    socket: Path
    socket_dir: Path | None  # a short directory of its own when `dir` is too deep for a socket
    state: str = "new"  # new | starting | ready | failed
    port: int = 0  # the port it was started on
    process: subprocess.Popen | None = None
    installer: subprocess.Popen | None = None
    worker: threading.Thread | None = None
    applied: tuple[str, str | None] | None = None  # (password, alias) the server has
    failures: int = 0
    next_attempt: float = 0.0
    logged_problem: str | None = None
    cancelled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def datadir(self) -> Path:
        return self.dir / "data"

    @property
    def log(self) -> Path:
        return self.dir / "mariadbd.log"

    @property
    def busy(self) -> bool:
        return self.worker is not None and self.worker.is_alive()


class Cancelled(Exception):
    """The server was retired while a worker was starting it."""


class StartError(RuntimeError):
    pass


class Databases:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.root = host.state_dir / "databases"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._servers: dict[tuple[str, str], Server] = {}
        self._retiring: dict[Server, threading.Thread] = {}
        self._closed = False
        self._last_error: str | None = None  # logged once, not every half second
        self._template_lock = threading.Lock()
        self._ca_key, self._ca_cert = _make_ca(f"plinth data plane {host.block} databases CA")
        self.ca_path = self.root / "ca.pem"
        self.ca_path.write_bytes(self._ca_cert.public_bytes(serialization.Encoding.PEM))

    # -- the loop ------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Move the servers toward moto's clusters; returns in milliseconds, never raises."""
        try:
            self._reconcile()
            self._last_error = None
        except Exception as error:  # the loop must go on; the next pass tries again
            if repr(error) != self._last_error:
                log(f"reconcile failed: {error!r}")
            self._last_error = repr(error)

    def _reconcile(self) -> None:
        if self._closed:
            return
        wanted = _read_moto()
        if wanted is None:
            return
        now = time.monotonic()
        with self._lock:
            if self._closed:
                return
            for key, server in list(self._servers.items()):
                if key not in wanted:
                    self._retire(server)
            failed = None
            for key, want in wanted.items():
                try:
                    server = self._servers.get(key)
                    if server is None:
                        server = self._servers[key] = self._new_server(want)
                    server.want = want
                    self._drive(server, now)
                except Exception as error:  # one cluster's trouble (no address left) stops no other
                    failed = failed or error
        if failed is not None:
            raise failed

    def _new_server(self, want: Wanted) -> Server:
        taken = {s.dir.name for s in list(self._servers.values()) + list(self._retiring)}
        name, n = want.cluster_id, 1
        # Another region's cluster of the same name, or the old one of a name still stopping.
        while name in taken:
            n += 1
            name = f"{want.cluster_id}-{n}"
        directory = self.root / name
        sock, sock_dir = directory / "mysqld.sock", None
        if len(str(sock)) > MAX_SOCKET_PATH:
            sock_dir = Path(tempfile.mkdtemp(prefix=f"plinth-db{self.host.block}-"))
            sock = sock_dir / "mysqld.sock"
        return Server(want=want, dir=directory, address=self.host.db_address(), socket=sock, socket_dir=sock_dir)

    def _drive(self, server: Server, now: float) -> None:
        """Start what one server needs next (under self._lock; the work runs in a thread)."""
        want = server.want
        if want.problem != server.logged_problem:
            if want.problem:
                kept = "; keeping the current password" if server.applied and want.password is None else ""
                log(f"cluster {want.cluster_id}: {want.problem}{kept}")
            server.logged_problem = want.problem
        if server.busy:
            return
        if server.state == "ready":
            if server.process is not None and server.process.poll() is not None:
                code = server.process.returncode
                self._fail(server, f"mariadbd exited with {code}", now)
                self._work(server, self._reap)
            elif want.port != server.port:
                log(f"cluster {want.cluster_id}: port {server.port} -> {want.port}, restarting its server")
                server.state = "starting"
                self._work(server, self._restart)
            elif (
                want.password is not None
                and (want.password, want.alias) != server.applied
                and now >= server.next_attempt
            ):
                self._work(server, self._update_users)
        elif server.state in ("new", "failed") and now >= server.next_attempt:
            if want.password is None:
                return  # logged above; a later value of the secret starts it
            server.state = "starting"
            self._work(server, self._start)

    def _work(self, server: Server, action) -> None:
        want = server.want

        def run() -> None:
            try:
                action(server, want)
            except Exception as error:  # a bug here must not leave the server `starting` for good
                with self._lock:
                    if not server.cancelled:
                        self._fail(server, f"{action.__name__} failed: {error!r}")

        server.worker = threading.Thread(target=run, name=f"db-{want.cluster_id}", daemon=True)
        server.worker.start()

    def _fail(self, server: Server, why: str, now: float | None = None) -> None:
        """Mark a failed start (under self._lock) and log it with its log and next try."""
        now = time.monotonic() if now is None else now
        backoff = min(2.0**server.failures, MAX_BACKOFF)
        server.failures += 1
        server.state = "failed"
        server.next_attempt = now + backoff
        log(f"cluster {server.want.cluster_id}: {why}; log: {server.log}; retrying in {backoff:.0f} s")

    # -- workers (one at a time per server) ---------------------------------------------------

    def _start(self, server: Server, want: Wanted) -> None:
        started = time.monotonic()
        try:
            self._bring_up(server, want)
        except Cancelled:
            return
        except Exception as error:
            self._stop_process(server)
            with self._lock:
                if not server.cancelled:
                    self._fail(server, str(error) or repr(error))
            return
        with self._lock:
            if server.cancelled or server.process is None:
                return
            server.state = "ready"
            server.failures = 0
            server.port = want.port
            pid = server.process.pid
        log(
            f"cluster {want.cluster_id} ready on {server.address}:{want.port} "
            f"in {time.monotonic() - started:.2f} s (pid {pid})"
        )

    def _restart(self, server: Server, want: Wanted) -> None:
        self._stop_process(server)
        self._start(server, want)

    def _reap(self, server: Server, want: Wanted) -> None:
        self._stop_process(server)

    def _update_users(self, server: Server, want: Wanted) -> None:
        try:
            self._sql(server, _users_sql(want, server.applied))
        except Cancelled:
            return
        except Exception as error:
            with self._lock:
                backoff = min(2.0**server.failures, MAX_BACKOFF)
                server.failures += 1
                server.next_attempt = time.monotonic() + backoff
            log(
                f"cluster {want.cluster_id}: changing the master user's password failed: {error}; "
                f"log: {server.log}; retrying in {backoff:.0f} s"
            )
            return
        with self._lock:
            server.applied = (want.password, want.alias)
            server.failures = 0
        log(f"cluster {want.cluster_id}: master user password changed")

    def _bring_up(self, server: Server, want: Wanted) -> None:
        server.dir.mkdir(parents=True, exist_ok=True)
        (server.dir / "tmp").mkdir(exist_ok=True)
        cert, key = self._issue(want, server.address)
        (server.dir / "server-cert.pem").write_bytes(cert)
        key_path = server.dir / "server-key.pem"
        key_path.touch(mode=0o600)
        key_path.write_bytes(key)
        installed = server.dir / "installed"
        if not installed.exists():
            shutil.rmtree(server.datadir, ignore_errors=True)
            shutil.copytree(self._template(server), server.datadir, symlinks=True)
            installed.touch()
        argv = [
            MARIADBD,
            "--no-defaults",
            "--user=root",
            f"--datadir={server.datadir}",
            f"--socket={server.socket}",
            f"--pid-file={server.dir / 'mariadbd.pid'}",
            f"--tmpdir={server.dir / 'tmp'}",
            f"--bind-address={server.address}",
            f"--port={want.port}",
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            # MySQL 8.0's (Aurora MySQL 3's) default; MariaDB's is 16 MB.
            "--max-allowed-packet=64M",
            "--performance-schema=off",
            f"--ssl-cert={server.dir / 'server-cert.pem'}",
            f"--ssl-key={key_path}",
            f"--ssl-ca={self.ca_path}",
            *INNODB_OPTIONS,
            *SMALL_OPTIONS,
        ]
        process = self._spawn(server, "mariadbd", argv)
        self._wait_for_socket(server, process)
        self._sql(server, _users_sql(want, None))
        with self._lock:
            server.applied = (want.password, want.alias)
        self._check_login(server, want)

    def _template(self, server: Server) -> Path:
        """A fresh data directory, made by `mariadb-install-db` once and copied for each
        cluster: a copy takes tens of milliseconds, an install 0.5-1.5 s of CPU."""
        template = self.root / "_template"  # no cluster id starts with "_"
        with self._template_lock:
            if not (template / "installed").exists():
                shutil.rmtree(template, ignore_errors=True)
                (template / "tmp").mkdir(parents=True)
                self._install(server, template / "data", template / "tmp")
                (template / "installed").touch()
        return template / "data"

    def _install(self, server: Server, datadir: Path, tmpdir: Path) -> None:
        argv = [
            INSTALL_DB,
            "--no-defaults",
            "--user=root",
            f"--datadir={datadir}",
            # root logs in only over the socket as uid 0: this module, never a client.
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
            "--skip-name-resolve",
            # Passed on to the bootstrap server: its temporary tables stay out of the shared /tmp,
            # where concurrent bootstraps were seen failing (`Unknown table 'mysql.tmp_user_sys'`).
            f"--tmpdir={tmpdir}",
            *INNODB_OPTIONS,
        ]
        with server.lock:
            if server.cancelled:
                raise Cancelled
            server.installer = self.host.spawn(f"mariadb-install-db {server.want.cluster_id}", argv, server.log)
        installer = server.installer
        try:
            code = installer.wait(timeout=INSTALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        self.host.stop(installer, signal.SIGKILL, 1.0)  # its bootstrap server, if still there
        with server.lock:
            server.installer = None
            if server.cancelled:
                raise Cancelled
        if code != 0:
            shutil.rmtree(datadir, ignore_errors=True)
            raise StartError(
                f"mariadb-install-db {'timed out' if code is None else f'exited with {code}'}"
            )

    def _spawn(self, server: Server, name: str, argv: list[str]) -> subprocess.Popen:
        with server.lock:
            if server.cancelled:
                raise Cancelled
            server.process = self.host.spawn(f"{name} {server.want.cluster_id}", argv, server.log)
            return server.process

    def _stop_process(self, server: Server) -> None:
        with server.lock:
            process, server.process = server.process, None
        if process is not None:
            self.host.stop(process, signal.SIGTERM, STOP_GRACE)

    def _wait_for_socket(self, server: Server, process: subprocess.Popen) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if server.cancelled:
                raise Cancelled
            if process.poll() is not None:
                raise StartError(f"mariadbd exited with {process.returncode} while starting")
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(str(server.socket))
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        raise StartError(f"mariadbd did not open {server.socket} within {START_TIMEOUT:.0f} s")

    def _sql(self, server: Server, statements: str) -> str:
        """Run SQL as root over the server's socket (statements on stdin: no password in argv)."""
        result = subprocess.run(
            [CLIENT, "--no-defaults", "--protocol=socket", f"--socket={server.socket}", "--user=root", "--batch"],
            input=statements,
            capture_output=True,
            text=True,
            timeout=SQL_TIMEOUT,
        )
        if server.cancelled:
            raise Cancelled
        if result.returncode != 0:
            raise StartError(f"SQL as root failed: {result.stderr.strip()}")
        return result.stdout

    def _check_login(self, server: Server, want: Wanted) -> None:
        """The master user logs in over TCP and the session is encrypted, as a client with
        ssl-mode REQUIRED would see it. The server may bind TCP a moment after its socket."""
        deadline = time.monotonic() + 10.0
        while True:
            result = subprocess.run(
                [
                    CLIENT, "--no-defaults", "--protocol=tcp", f"--host={server.address}",
                    f"--port={want.port}", f"--user={want.username}", "--ssl", "--connect-timeout=5",
                    "--batch", "--skip-column-names", "--execute=SHOW SESSION STATUS LIKE 'Ssl_cipher'",
                ],
                env={**os.environ, "MYSQL_PWD": want.password or ""},
                capture_output=True,
                text=True,
                timeout=SQL_TIMEOUT,
            )
            if server.cancelled:
                raise Cancelled
            cipher = result.stdout.split("\t", 1)[1].strip() if "\t" in result.stdout else ""
            if result.returncode == 0 and cipher:
                return
            if time.monotonic() > deadline:
                why = result.stderr.strip() or f"no TLS cipher in {result.stdout.strip()!r}"
                raise StartError(f"the master user cannot log in over TCP with TLS: {why}")
            time.sleep(0.1)

    def _issue(self, want: Wanted, address: str) -> tuple[bytes, bytes]:
        """A server certificate naming the cluster's endpoints (and, by wildcard, instance
        endpoints made after it started) and its address, signed by this data plane's CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        dns: list[str] = []
        for name in want.names:
            for candidate in (name, "*." + name.split(".", 1)[1] if "." in name else name):
                if candidate not in dns:
                    dns.append(candidate)
        san = [x509.DNSName(n) for n in dns] + [x509.IPAddress(ipaddress.ip_address(address))]
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, want.cluster_id[:64])]))
            .issuer_name(self._ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()), critical=False
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        return (
            cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )

    # -- ending --------------------------------------------------------------------------------

    def _retire(self, server: Server, why: str = "is gone") -> None:
        """Stop and forget a server (under self._lock); the stopping runs in a thread."""
        self._servers.pop(server.want.key, None)
        with server.lock:
            server.cancelled = True  # no worker spawns anything for it from now on
        log(f"cluster {server.want.cluster_id} {why}: stopping its server")
        thread = threading.Thread(
            target=self._teardown, args=(server,), name=f"db-stop-{server.want.cluster_id}", daemon=True
        )
        self._retiring[server] = thread
        thread.start()

    def _teardown(self, server: Server) -> None:
        try:
            with server.lock:
                installer = server.installer
            if installer is not None:
                self.host.stop(installer, signal.SIGKILL, 1.0)
            self._stop_process(server)
            worker = server.worker
            if worker is not None and worker is not threading.current_thread():
                worker.join(timeout=SQL_TIMEOUT + STOP_GRACE)
            # A worker that spawned after the first stop (it checks `cancelled` first, so only
            # a spawn already under way) is stopped here.
            self._stop_process(server)
            shutil.rmtree(server.dir, ignore_errors=True)
            if server.socket_dir is not None:
                shutil.rmtree(server.socket_dir, ignore_errors=True)
            self.host.release_db_address(server.address)
        except Exception as error:
            log(f"cluster {server.want.cluster_id}: stopping its server failed: {error!r}")
        finally:
            with self._lock:
                self._retiring.pop(server, None)

    def close(self) -> None:
        """Stop every server and delete every directory; waits for all of it."""
        with self._lock:
            self._closed = True
            for server in list(self._servers.values()):
                self._retire(server, "(the data plane is closing)")
            threads = list(self._retiring.values())
        for thread in threads:
            thread.join(timeout=2 * (SQL_TIMEOUT + STOP_GRACE))
        shutil.rmtree(self.root, ignore_errors=True)

    # -- answers -------------------------------------------------------------------------------

    def _ready(self) -> list[Server]:
        with self._lock:
            return [s for s in self._servers.values() if s.state == "ready" and not s.cancelled]

    def endpoints(self) -> dict[str, tuple[str, int]]:
        """Every endpoint host name of every ready cluster -> (address, port) of its server."""
        return {name: (s.address, s.port) for s in self._ready() for name in s.want.names}

    def _server_by_arn(self, cluster_arn: str) -> Server | None:
        return next((s for s in self._ready() if s.want.arn == cluster_arn), None)

    def server_of(self, cluster_arn: str) -> dict | None:
        """Where a ready cluster's server is and who its master user is (never the password)."""
        server = self._server_by_arn(cluster_arn)
        process = server.process if server else None
        if server is None or process is None:
            return None
        return {
            "address": server.address,
            "port": server.port,
            "socket": str(server.socket),
            "pid": process.pid,
            "username": server.want.username,
            "database": server.want.database,
        }

    def cpu_seconds(self, cluster_arn: str) -> float | None:
        """User + system CPU the cluster's server has used (fields 14-15 of /proc/pid/stat)."""
        server = self._server_by_arn(cluster_arn)
        process = server.process if server else None
        if process is None:
            return None
        try:
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- reading moto ---------------------------------------------------------------------------------


def _read_moto() -> dict[tuple[str, str], Wanted] | None:
    """Every MySQL-family cluster not `deleting`, in every RDS backend moto has made; None when
    a request thread changed a registry while it was read (the next pass reads again)."""
    wanted: dict[tuple[str, str], Wanted] = {}
    try:
        # dict.items, not [], so no backend is created just by looking.
        for account, regions in list(rds_backends.items()):
            for region, backend in list(regions.items()):
                clusters = list(backend.clusters.values())
                if not clusters:
                    continue
                members: dict[str, list[str]] = {}
                for database in list(backend.databases.values()):
                    if isinstance(database, DBInstanceClustered) and database.status != "deleting":
                        members.setdefault(database.db_cluster_identifier, []).append(database.address)
                for cluster in clusters:
                    # `_status`: moto's `status` getter turns `creating` into `available`.
                    if cluster.engine not in ENGINES or getattr(cluster, "_status", None) == "deleting":
                        continue
                    want = _want(account, region, cluster, members.get(cluster.db_cluster_identifier, []))
                    wanted[want.key] = want
    except RuntimeError:  # "dictionary changed size during iteration"
        return None
    return wanted


def _want(account: str, region: str, cluster, instance_names: list[str]) -> Wanted:
    username = cluster.master_username or ""
    password, alias, problem = None, None, None
    secret = getattr(cluster, "master_user_secret", None)
    if getattr(cluster, "manage_master_user_password", False) and secret is not None:
        password, secret_user, problem = _secret_value(account, region, secret.secret_arn)
        if secret_user and secret_user != username:
            if secret_user.lower() in RESERVED_USERS:
                problem = f"the secret names the reserved user {secret_user!r}; only {username!r} is made"
            else:
                alias = secret_user
    else:
        password = getattr(cluster, "_master_user_password", None) or None
        if password is None:
            problem = "the cluster has neither a managed secret nor a MasterUserPassword"
    if not username:
        password, problem = None, "the cluster has no MasterUsername"
    return Wanted(
        key=(cluster.arn, cluster.db_cluster_resource_id),
        arn=cluster.arn,
        cluster_id=cluster.db_cluster_identifier,
        port=int(cluster.port),
        username=username,
        database=cluster.database_name or None,
        names=(cluster.endpoint, cluster.reader_endpoint, *sorted(instance_names)),
        password=password,
        alias=alias,
        problem=problem,
    )


def _secret_value(account: str, region: str, arn: str) -> tuple[str | None, str | None, str | None]:
    """(password, username, problem) from the secret's AWSCURRENT version, read from moto's
    Secrets Manager of the cluster's account and region."""
    try:
        secret = secretsmanager_backends[account][region].secrets.get(arn)
    except RuntimeError:
        raise  # a registry changed under us: the whole pass is read again
    except Exception as error:
        return None, None, f"reading its master user secret {arn} failed: {error!r}"
    if secret is None or getattr(secret, "deleted_date", None):
        return None, None, f"its master user secret {arn} does not exist"
    current = next(
        (v for v in list(getattr(secret, "versions", {}).values()) if "AWSCURRENT" in v.get("version_stages", [])),
        None,
    )
    if current is None or current.get("secret_string") is None:
        return None, None, f"the current version of secret {arn} has no SecretString"
    try:
        document = json.loads(current["secret_string"])
    except ValueError:
        return None, None, f"the current value of secret {arn} is not valid JSON"
    if not isinstance(document, dict) or not isinstance(document.get("password"), str) or not document["password"]:
        return None, None, f"the current value of secret {arn} has no password"
    username = document.get("username") if isinstance(document.get("username"), str) else None
    return document["password"], username, None


# -- SQL and certificates -------------------------------------------------------------------------


def _literal(text: str) -> str:
    """A MariaDB string literal (NO_BACKSLASH_ESCAPES is not set on these servers)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\0", "\\0") + "'"


def _identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _users_sql(want: Wanted, applied: tuple[str, str | None] | None) -> str:
    """Idempotent: the master user (and the secret's user, if another) with the wanted password
    and every privilege, the old alias dropped, the cluster's database made."""
    statements = []
    for user in (want.username, want.alias):
        if not user:
            continue
        account, password = f"{_literal(user)}@'%'", _literal(want.password or "")
        statements += [
            f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {password};",
            f"ALTER USER {account} IDENTIFIED BY {password};",
            f"GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION;",
        ]
    old_alias = applied[1] if applied else None
    if old_alias and old_alias not in (want.username, want.alias):
        statements.append(f"DROP USER IF EXISTS {_literal(old_alias)}@'%';")
    if want.database:
        statements.append(f"CREATE DATABASE IF NOT EXISTS {_identifier(want.database)};")
    return "\n".join(statements) + "\n"


def _make_ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert
