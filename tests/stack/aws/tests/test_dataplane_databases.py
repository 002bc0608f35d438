"""The data plane's databases (plinth_aws/dataplane/databases.py): an Aurora MySQL cluster made
through moto is a MariaDB server the real `mariadb` client logs in to over TLS, with the
password from the cluster's secret, following the secret's changes, gone with the cluster.

moto runs in-process (`mock_aws`), so the test reads the same backends the data plane does; the
data plane needs root (its Host makes a bridge) and Debian's MariaDB binaries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from plinth_aws.dataplane import databases as databases_module
from plinth_aws.dataplane.databases import Databases
from plinth_aws.dataplane.host import Host

REGION = "us-east-1"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mariadbd", path=os.environ.get("PATH", "") + ":/usr/sbin") is None,
    reason="the data plane needs root and MariaDB's server",
)


@pytest.fixture
def aws(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield lambda service: boto3.client(service, region_name=REGION)


@pytest.fixture
def host(tmp_path):
    host = Host(Path(tmp_path))
    yield host
    host.close()


@pytest.fixture
def databases(host):
    databases = Databases(host)
    yield databases
    databases.close()


def until(condition, databases: Databases, timeout: float = 20.0, what: str = "condition"):
    """Reconcile every 0.1 s until `condition()` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        databases.reconcile()
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout} s")


def mariadb(address: str, port: int, user: str, password: str, statement: str, *extra: str):
    """The real client over TCP with TLS asked for (ssl-mode REQUIRED, as the app connects)."""
    return subprocess.run(
        [
            shutil.which("mariadb") or "mariadb", "--no-defaults", "--protocol=tcp", f"--host={address}",
            f"--port={port}", f"--user={user}", "--ssl", "--connect-timeout=5", "--batch",
            "--skip-column-names", f"--execute={statement}", *extra,
        ],
        env={**os.environ, "MYSQL_PWD": password},
        capture_output=True,
        text=True,
        timeout=30,
    )


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def make_cluster(rds, cluster_id: str, **options) -> dict:
    cluster = rds.create_db_cluster(
        DBClusterIdentifier=cluster_id, Engine="aurora-mysql", MasterUsername="plinth", **options
    )["DBCluster"]
    rds.create_db_instance(
        DBInstanceIdentifier=f"{cluster_id}-1",
        DBInstanceClass="db.t3.medium",
        Engine="aurora-mysql",
        DBClusterIdentifier=cluster_id,
    )
    return cluster


def test_cluster_is_a_server_with_the_secrets_password(aws, databases, capfd):
    rds, secrets = aws("rds"), aws("secretsmanager")
    cluster = make_cluster(rds, "orders", ManageMasterUserPassword=True, DatabaseName="orders_app")
    arn, secret_arn = cluster["DBClusterArn"], cluster["MasterUserSecret"]["SecretArn"]
    credentials = json.loads(secrets.get_secret_value(SecretId=secret_arn)["SecretString"])

    began = time.monotonic()
    databases.reconcile()
    assert time.monotonic() - began < 0.2, "reconcile must not wait for the server"
    assert databases.endpoints() == {}

    server = until(lambda: databases.server_of(arn), databases, what="the cluster's server ready")
    started = time.monotonic() - began
    described = rds.describe_db_clusters(DBClusterIdentifier="orders")["DBClusters"][0]
    instance = rds.describe_db_instances(DBInstanceIdentifier="orders-1")["DBInstances"][0]
    endpoints = databases.endpoints()
    where = (server["address"], 3306)
    assert endpoints == {
        described["Endpoint"]: where,
        described["ReaderEndpoint"]: where,
        instance["Endpoint"]["Address"]: where,
    }
    assert server["address"].startswith(f"127.79.{databases.host.block}.")
    assert server["username"] == "plinth" and server["database"] == "orders_app"
    assert alive(server["pid"]) and Path(server["socket"]).exists()
    assert databases.cpu_seconds(arn) is not None and databases.cpu_seconds(arn) > 0
    print(f"cluster server ready in {started:.2f} s")

    # The master user of the cluster, and the user the secret names (moto's is always "admin").
    for user in {"plinth", credentials["username"]}:
        result = mariadb(*where, user, credentials["password"], "SHOW STATUS LIKE 'Ssl_cipher'; SHOW DATABASES")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].startswith("Ssl_cipher\t") and lines[0].split("\t")[1], "the session is not encrypted"
        assert "orders_app" in lines[1:]
    grants = mariadb(*where, "plinth", credentials["password"], "SHOW GRANTS").stdout
    assert "ALL PRIVILEGES ON *.*" in grants and "WITH GRANT OPTION" in grants

    # A client that verifies: the data plane's CA signs a certificate naming the address.
    verified = mariadb(
        *where, "plinth", credentials["password"], "SELECT 1",
        f"--ssl-ca={databases.ca_path}", "--ssl-verify-server-cert",
    )
    assert verified.returncode == 0, verified.stderr

    # Rotation: the new password works within a reconcile or two, the old one is refused.
    secrets.put_secret_value(
        SecretId=secret_arn, SecretString=json.dumps({"username": "plinth", "password": "n3w-Pa55'word\\"})
    )
    until(
        lambda: mariadb(*where, "plinth", "n3w-Pa55'word\\", "SELECT 1").returncode == 0,
        databases,
        timeout=10,
        what="the new password working",
    )
    refused = mariadb(*where, "plinth", credentials["password"], "SELECT 1")
    assert refused.returncode != 0 and "1045" in refused.stderr
    # The secret now names the master user: the extra user made for moto's "admin" is dropped.
    assert mariadb(*where, credentials["username"], "n3w-Pa55'word\\", "SELECT 1").returncode != 0

    # A value without a password changes nothing and says why.
    secrets.put_secret_value(SecretId=secret_arn, SecretString="not json")
    for _ in range(3):
        databases.reconcile()
        time.sleep(0.1)
    assert mariadb(*where, "plinth", "n3w-Pa55'word\\", "SELECT 1").returncode == 0
    assert "is not valid JSON; keeping the current password" in capfd.readouterr().err

    # Deleting the cluster stops the server, deletes its directory, frees its address.
    directory = databases.root / "orders"
    assert directory.is_dir()
    rds.delete_db_instance(DBInstanceIdentifier="orders-1", SkipFinalSnapshot=True)
    rds.delete_db_cluster(DBClusterIdentifier="orders", SkipFinalSnapshot=True)
    databases.reconcile()
    assert databases.endpoints() == {} and databases.server_of(arn) is None
    until(lambda: not alive(server["pid"]) and not directory.exists(), databases, timeout=15, what="teardown")
    assert databases.host.db_address() == server["address"], "the address was not released"


def test_close_stops_every_server(aws, databases):
    rds = aws("rds")
    managed = make_cluster(rds, "managed", ManageMasterUserPassword=True)
    plain = make_cluster(rds, "plain", MasterUserPassword="plain-password-1", Port=3307)
    servers = until(
        lambda: (lambda a, b: (a, b) if a and b else None)(
            databases.server_of(managed["DBClusterArn"]), databases.server_of(plain["DBClusterArn"])
        ),
        databases,
        what="both servers ready",
    )
    assert servers[0]["address"] != servers[1]["address"]
    assert servers[1]["port"] == 3307 and servers[1]["database"] is None
    result = mariadb(servers[1]["address"], 3307, "plinth", "plain-password-1", "SELECT CURRENT_USER()")
    assert result.returncode == 0 and result.stdout.strip() == "plinth@%", result.stderr

    databases.close()
    for server in servers:
        assert not alive(server["pid"]), f"mariadbd {server['pid']} still running"
    assert not databases.root.exists()
    assert databases.endpoints() == {}
    databases.reconcile()  # after close: nothing starts again
    assert databases.endpoints() == {}


def test_failed_start_is_logged_and_retried(aws, databases, monkeypatch, capfd):
    rds = aws("rds")
    cluster = make_cluster(rds, "flaky", MasterUserPassword="flaky-password-1")
    monkeypatch.setattr(databases_module, "MARIADBD", "/nonexistent/mariadbd")
    monkeypatch.setattr(databases_module, "MAX_BACKOFF", 0.5)

    until(lambda: "retrying in" in (err := capfd.readouterr().err) and err, databases, what="a logged failure")
    assert databases.server_of(cluster["DBClusterArn"]) is None

    monkeypatch.setattr(databases_module, "MARIADBD", shutil.which("mariadbd", path="/usr/sbin:/usr/bin"))
    server = until(lambda: databases.server_of(cluster["DBClusterArn"]), databases, what="ready after a retry")
    assert mariadb(server["address"], 3306, "plinth", "flaky-password-1", "SELECT 1").returncode == 0
