"""What an instance reaches on its own network: the instance metadata service and the wires to
the emulator and the database servers, each a listening socket inside the instance's network
namespace, served by one asyncio loop in the emulator's process.

- **IMDS** at `169.254.169.254:80`, as on EC2: IMDSv2 tokens (`PUT /latest/api/token`, then the
  `X-aws-ec2-metadata-token` header; IMDSv1 refused when the launch template says
  `HttpTokens: required`, as Plinth's do), the instance's id, type, zone, region, addresses, and the
  instance profile role's temporary credentials — what the AWS CLI and the AWS SDKs' default
  credential chains read. No profile, no credentials: the SDKs fail as on EC2.
  https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html
- **Forwards**: `127.0.0.1:4566` inside the namespace to the emulator, and one loopback address
  per database endpoint (`127.0.1.<n>:<port>`, named in the instance's /etc/hosts) to that
  cluster's server. A forward is a plain byte pipe: TLS and the MySQL protocol pass through.

Sockets are created inside the namespace (`Host.socket_in_netns`) and served from here, in the
emulator's own namespace, which is what lets an instance reach loopback services of the host and
nothing else.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

# IMDSv2 tokens last at most six hours (x-aws-ec2-metadata-token-ttl-seconds).
MAX_TOKEN_TTL = 21600


@dataclass
class Identity:
    """What the metadata service says about one instance (filled in by the instance runner)."""

    instance_id: str
    account: str
    region: str
    zone: str
    instance_type: str
    image_id: str
    private_ip: str
    hostname: str
    # Returns the role name of the instance profile, or None when the instance has none (or it
    # no longer exists): asked on every credentials request, as EC2 does.
    role_name: Callable[[], str | None]
    # The launch template's MetadataOptions.HttpTokens: "required" refuses IMDSv1 requests.
    tokens_required: bool = True
    tokens: dict = field(default_factory=dict)


class Services:
    """One event loop thread serving every instance's metadata service and forwards."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._servers: dict[str, list[asyncio.base_events.Server]] = {}
        self._thread = threading.Thread(target=self._run, name="dataplane-services", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, coroutine) -> object:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def serve_metadata(self, owner: str, listener: socket.socket, identity: Identity) -> None:
        """Serve the metadata service of `identity` on `listener` (inside its namespace)."""

        async def start():
            return await asyncio.start_server(
                lambda r, w: _metadata_connection(r, w, identity), sock=listener
            )

        self._servers.setdefault(owner, []).append(self._call(start()))

    def forward(self, owner: str, listener: socket.socket, target: tuple[str, int]) -> None:
        """Pipe every connection accepted on `listener` to `target` (an address on the host)."""

        async def start():
            return await asyncio.start_server(lambda r, w: _pipe(r, w, target), sock=listener)

        self._servers.setdefault(owner, []).append(self._call(start()))

    def close_owner(self, owner: str) -> None:
        """Stop listening on every socket of `owner` (an instance); open connections end too."""
        servers = self._servers.pop(owner, [])

        async def stop():
            for server in servers:
                server.close()
                # Connections already accepted hold their own tasks; closing the server is what
                # the namespace's deletion needs (no listener left).
            for server in servers:
                try:
                    await asyncio.wait_for(server.wait_closed(), 1)
                except (asyncio.TimeoutError, Exception):
                    pass

        if servers:
            try:
                self._call(stop())
            except Exception as error:  # the loop is gone: nothing left to close
                print(f"dataplane: closing services of {owner}: {error}", file=sys.stderr)

    def close(self) -> None:
        for owner in list(self._servers):
            self.close_owner(owner)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: tuple[str, int]) -> None:
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(*target)
    except OSError:
        writer.close()
        return

    async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            try:
                if sink.can_write_eof():
                    sink.write_eof()
            except (OSError, RuntimeError):
                pass

    await asyncio.gather(copy(reader, upstream_writer), copy(upstream_reader, writer))
    for w in (writer, upstream_writer):
        try:
            w.close()
        except OSError:
            pass


async def _metadata_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, identity: Identity) -> None:
    try:
        while True:
            request_line = await reader.readline()
            if not request_line:
                break
            method, path, _ = (request_line.decode("latin-1").split(" ", 2) + ["", ""])[:3]
            headers = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if length:
                await reader.readexactly(length)
            status, content_type, body, extra = _metadata_answer(identity, method, path, headers)
            head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", f"Content-Type: {content_type}",
                    f"Content-Length: {len(body)}", "Server: EC2ws"]
            head += [f"{k}: {v}" for k, v in extra.items()]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                break
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            writer.close()
        except OSError:
            pass


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed"}


def _metadata_answer(identity: Identity, method: str, path: str, headers: dict) -> tuple[int, str, bytes, dict]:
    now = time.time()
    path = path.split("?", 1)[0]
    if path == "/latest/api/token":
        if method != "PUT":
            return 405, "text/plain", b"", {}
        try:
            ttl = int(headers.get("x-aws-ec2-metadata-token-ttl-seconds", ""))
        except ValueError:
            return 400, "text/plain", b"", {}
        if not 1 <= ttl <= MAX_TOKEN_TTL:
            return 400, "text/plain", b"", {}
        token = secrets.token_urlsafe(32)
        identity.tokens[token] = now + ttl
        return 200, "text/plain", token.encode(), {"x-aws-ec2-metadata-token-ttl-seconds": str(ttl)}
    token = headers.get("x-aws-ec2-metadata-token")
    if token is not None and identity.tokens.get(token, 0) < now:
        return 401, "text/plain", b"", {}
    if token is None and identity.tokens_required:
        # IMDSv2 only (HttpTokens required, as Plinth's launch templates ask for).
        return 401, "text/plain", b"", {}
    if method != "GET":
        return 405, "text/plain", b"", {}
    text = _metadata_value(identity, path)
    if text is None:
        return 404, "text/plain", b"", {}
    content_type = "application/json" if text.startswith("{") else "text/plain"
    return 200, content_type, text.encode(), {}


def _metadata_value(identity: Identity, path: str) -> str | None:
    meta = "/latest/meta-data/"
    if path in ("/latest/dynamic/instance-identity/document",):
        return json.dumps(
            {
                "accountId": identity.account,
                "architecture": "x86_64",
                "availabilityZone": identity.zone,
                "imageId": identity.image_id,
                "instanceId": identity.instance_id,
                "instanceType": identity.instance_type,
                "privateIp": identity.private_ip,
                "region": identity.region,
                "version": "2017-09-30",
            },
            indent=2,
        )
    if not path.startswith(meta):
        return None
    key = path[len(meta):]
    simple = {
        "instance-id": identity.instance_id,
        "instance-type": identity.instance_type,
        "ami-id": identity.image_id,
        "local-ipv4": identity.private_ip,
        "local-hostname": identity.hostname,
        "hostname": identity.hostname,
        "placement/availability-zone": identity.zone,
        "placement/region": identity.region,
    }
    if key in simple:
        return simple[key]
    if key == "":
        return "\n".join(["ami-id", "hostname", "iam/", "instance-id", "instance-type", "local-hostname", "local-ipv4", "placement/"])
    for prefix in ("iam/security-credentials/", "iam/security-credentials-extended/"):
        if key.startswith(prefix):
            role = identity.role_name()
            if role is None:
                return None
            wanted = key[len(prefix):].rstrip("/")
            if wanted == "":
                return role
            if wanted != role:
                return None
            document = _credentials(identity, role)
            if prefix.endswith("extended/"):
                document["AccountId"] = identity.account
            return json.dumps(document, indent=2)
    if key == "iam/info":
        role = identity.role_name()
        if role is None:
            return None
        return json.dumps({"Code": "Success", "InstanceProfileArn": f"arn:aws:iam::{identity.account}:instance-profile/{role}"})
    return None


def _credentials(identity: Identity, role: str) -> dict:
    """Temporary credentials of the role. The emulator checks no signature; they are shaped as
    STS's (ASIA key id, session token, expiry in six hours) so every client treats them as such."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    digest = secrets.token_hex(8).upper()
    return {
        "Code": "Success",
        "LastUpdated": now.isoformat().replace("+00:00", "Z"),
        "Type": "AWS-HMAC",
        "AccessKeyId": f"ASIA{digest}",
        "SecretAccessKey": secrets.token_urlsafe(30),
        "Token": secrets.token_urlsafe(96),
        "Expiration": (now + timedelta(hours=6)).isoformat().replace("+00:00", "Z"),
    }
