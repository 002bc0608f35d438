"""Fixtures: one emulator per test session, started from server.py in a subprocess on a free
port (never the shared 4566), reset before every test; boto3 clients with retries off so each
call is exactly one request; and small helpers for the admin endpoints and raw requests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
import pytest

SERVER = Path(__file__).resolve().parent.parent / "server.py"

# Every client here names its endpoint, or is meant for moto in-process (`mock_aws`): the
# stack's AWS_ENDPOINT_URL (tests/run sources .stack/env) would send the latter's calls to the
# stack's emulator instead. Gone before any fixture makes a client.
os.environ.pop("AWS_ENDPOINT_URL", None)
REGION = "us-east-1"

# Pending states end after this many describes, never by time: the suite is deterministic.
PENDING_DESCRIBES = 2


def start_server(extra_env: dict | None = None, stderr=None) -> tuple[subprocess.Popen, str]:
    """Start server.py on a free port; return the process and its base URL. `stderr`: where its
    log goes (a file object), else this process's."""
    env = {**os.environ, "PLINTH_STRICT": "1", "PLINTH_PENDING_DESCRIBES": str(PENDING_DESCRIBES)}
    env.pop("PLINTH_PENDING_SECONDS", None)
    env.update(extra_env or {})
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
    )
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return process, line.split("listening on ", 1)[1].split()[0]


@pytest.fixture(scope="session")
def server_url():
    process, url = start_server()
    yield url
    process.terminate()
    process.wait(timeout=10)


class Admin:
    def __init__(self, url: str) -> None:
        self.url = url

    def request(self, method: str, path: str, document: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(document).encode() if document is not None else (b"" if method == "POST" else None)
        request = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def configure(self, **settings) -> dict:
        status, document = self.request("POST", "/_plinth/config", settings)
        assert status == 200, document
        return document

    def calls(self) -> dict:
        return self.request("GET", "/_plinth/calls")[1]


@pytest.fixture
def admin(server_url) -> Admin:
    admin = Admin(server_url)
    status, _ = admin.request("POST", "/_plinth/reset")
    assert status == 200
    return admin


@pytest.fixture
def client(server_url, admin):
    """client("ec2") -> a boto3 client with retries off, against this test's fresh emulator."""

    def make(service: str):
        return boto3.client(
            service,
            endpoint_url=server_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=botocore.config.Config(retries={"total_max_attempts": 1}),
        )

    return make


def raw_call(url: str, service: str, body: str, target: str | None = None):
    """One unsigned-but-scoped request, to see the exact bytes of an error (boto3 parses them
    away). The emulator reads the service from the credential scope, as moto does."""
    headers = {
        "Authorization": f"AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/{service}/aws4_request, "
        "SignedHeaders=host, Signature=0",
        "Content-Type": "application/x-amz-json-1.1" if target else "application/x-www-form-urlencoded",
    }
    if target:
        headers["X-Amz-Target"] = target
    request = urllib.request.Request(url + "/", data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def error_of(call) -> dict:
    """Run `call`, expect an AWS error, return {"Code", "Message", "HTTPStatusCode"}."""
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        call()
    response = raised.value.response
    return {
        "Code": response["Error"]["Code"],
        "Message": response["Error"].get("Message", ""),
        "HTTPStatusCode": response["ResponseMetadata"]["HTTPStatusCode"],
    }


# --- small builders shared by the behaviour tests ------------------------------------------------


def network(ec2) -> dict:
    """A VPC with two subnets in two zones and an attached internet gateway."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=f"{REGION}{zone}")[
            "Subnet"
        ]["SubnetId"]
        for n, zone in ((1, "a"), (2, "b"))
    ]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    return {"vpc": vpc, "subnets": subnets, "igw": igw}


def security_group(ec2, vpc: str, name: str) -> str:
    return ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]


# moto does not check image ids unless asked to, and loading its AMI catalogue after every
# reset costs seconds.
IMAGE_ID = "ami-12c6146b"

