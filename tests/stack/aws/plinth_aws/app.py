"""The WSGI application: the admin endpoints under `/_plinth/`, and in front of moto, for every
AWS call, count it, add latency, inject a fault, refuse it as AWS would, or hand it to moto
(and maybe lose moto's answer).

Admin endpoints (JSON):
    GET  /_plinth/health        {"status": "ok", ...}
    GET  /_plinth/calls         counts by service and operation (see calls.py)
    POST /_plinth/calls/reset   zero the counts (and so restart every fault sequence)
    GET  /_plinth/config        the settings (see config.py)
    POST /_plinth/config        replace the settings it names; answers with the result
    POST /_plinth/reset         reset moto, counts, pending states, tokens and settings
    GET  /_plinth/dataplane     the data plane's instances, load balancers and databases
                                (`{"enabled": false}` when it is off; see dataplane/)
"""

from __future__ import annotations

import io
import json
import sys
import time
import traceback
from copy import deepcopy
from typing import Callable, Iterable

import moto

from . import cbor, consistency, context, duplicates, faults, fixes, lifecycle, refusals
from .calls import CallCounter
from .dataplane.activities import Activities
from .dataplane.plane import install_activities, install_hooks
from .config import Config
from .protocol import AwsError, AwsRequest, error_response, parse

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]


class StrictAws:
    def __init__(self, config: Config, moto_app: WsgiApp) -> None:
        self._start_config = deepcopy(config)
        self.config = config
        self.moto_app = moto_app
        self.calls = CallCounter()
        self.lifecycle = lifecycle.Lifecycle(lambda: self.config)
        self.duplicates = duplicates.Duplicates(lambda: self.config)
        lifecycle.install(self.lifecycle)
        duplicates.install(self.duplicates)
        fixes.install()
        self.consistency = consistency.Consistency(lambda: self.config)
        consistency.install(self.consistency, self.lifecycle)
        self.activities = Activities()
        install_activities(self.activities)
        # Built by start_data_plane once the server knows its port (instances reach it there).
        self.data_plane = None
        install_hooks(lambda: self.data_plane)

    def start_data_plane(self, port: int) -> None:
        """Start the data plane when the settings ask for it (raises DataPlaneError when this
        machine cannot run it)."""
        if not self.config.data_plane["enabled"]:
            return
        from .dataplane.plane import DataPlane

        self.data_plane = DataPlane(lambda: self.config.data_plane["time_scale"], port, self.activities)

    def close(self) -> None:
        """Stop what the data plane started (instances, proxies, database servers)."""
        if self.data_plane is not None:
            plane, self.data_plane = self.data_plane, None
            plane.close()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_plinth/"):
            return self._admin(environ, start_response, path)
        if path == "/moto-api/reset":
            # Moto's objects are about to go; the transitions and tokens that point at them too.
            self._forget_resources()
            return self.moto_app(environ, start_response)

        body = _read_body(environ)
        request = parse(environ, body)
        if request is None:
            return self.moto_app(environ, start_response)

        index = self.calls.record(request.service, request.operation)
        self.lifecycle.advance()
        delay = faults.latency_seconds(self.config, request)
        if delay:
            time.sleep(delay)
        decision = faults.decide(self.config, request, index)
        if decision.before is not None:
            self.calls.record_fault(request.service, request.operation, decision.before.code)
            return _respond(start_response, *error_response(request, decision.before))
        if self.config.strict:
            refusal = self._refusal(request)
            if refusal is not None:
                self.calls.record_refusal(request.service, request.operation)
                return _respond(start_response, *error_response(request, refusal))
        lag = self._lagging_refusal(request)
        if lag is not None:
            self.calls.record_refusal(request.service, request.operation)
            return _respond(start_response, *error_response(request, lag))
        if decision.after is not None:
            self._serve(request, environ, lambda status, headers, exc_info=None: None)
            self.calls.record_fault(request.service, request.operation, decision.after.code)
            return _respond(start_response, *error_response(request, decision.after))
        return self._serve(request, environ, start_response)

    def _refusal(self, request: AwsRequest) -> AwsError | None:
        """AWS's refusal of this call, if any. A check that breaks on moto's data is a bug here,
        not the caller's: it is logged and the call goes to moto unchecked."""
        try:
            return refusals.check(request)
        except Exception:
            traceback.print_exc()
            print(f"plinth-aws: check of {request.service}:{request.operation} failed; call passed to moto", file=sys.stderr)
            return None

    def _lagging_refusal(self, request: AwsRequest) -> AwsError | None:
        """A refusal that eventual consistency causes (an instance profile IAM has not spread
        yet), when the consistency model is on; like _refusal, a check that breaks is logged."""
        try:
            return self.consistency.refusal(request)
        except Exception:
            traceback.print_exc()
            print(f"plinth-aws: consistency check of {request.service}:{request.operation} failed", file=sys.stderr)
            return None

    def _serve(self, request: AwsRequest, environ: dict, start_response: Callable) -> list[bytes]:
        """Hand the call to moto (through the CBOR bridge where moto cannot read it)."""
        with context.serving(request):
            # Moto builds the whole response inside this call, so the context covers it.
            if request.protocol == "cbor" and request.service in cbor.BRIDGED_SERVICES:
                return list(
                    cbor.serve(
                        self.moto_app, environ, start_response, request.service, request.operation, request.params
                    )
                )
            return list(self.moto_app(environ, start_response))

    def _forget_resources(self) -> None:
        self.lifecycle.reset()
        self.duplicates.reset()
        self.consistency.reset()
        self.activities.reset()
        if self.data_plane is not None:
            self.data_plane.reset()

    def _admin(self, environ: dict, start_response: Callable, path: str) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        route = (method, path.rstrip("/"))
        if route == ("GET", "/_plinth/health"):
            return _json(start_response, 200, {"status": "ok", "moto": moto.__version__, "strict": self.config.strict})
        if route == ("GET", "/_plinth/calls"):
            return _json(start_response, 200, self.calls.snapshot())
        if route == ("POST", "/_plinth/calls/reset"):
            self.calls.reset()
            return _json(start_response, 200, self.calls.snapshot())
        if route == ("GET", "/_plinth/config"):
            return _json(start_response, 200, self.config.to_json())
        if route == ("POST", "/_plinth/config"):
            try:
                document = json.loads(_read_body(environ) or b"{}")
                candidate = deepcopy(self.config)
                candidate.update(document)
                if candidate.data_plane["enabled"] != self.config.data_plane["enabled"]:
                    raise ValueError("data_plane.enabled is set at start (PLINTH_DATA_PLANE); only time_scale changes at run time")
            except (ValueError, TypeError, AttributeError) as problem:
                return _json(start_response, 400, {"error": str(problem)})
            self.config = candidate
            return _json(start_response, 200, self.config.to_json())
        if route == ("POST", "/_plinth/reset"):
            from moto.moto_api._internal.models import moto_api_backend

            self._forget_resources()
            moto_api_backend.reset()
            self.calls.reset()
            self.config = deepcopy(self._start_config)
            return _json(start_response, 200, {"status": "reset"})
        if route == ("GET", "/_plinth/dataplane"):
            plane = self.data_plane
            return _json(start_response, 200, plane.describe() if plane is not None else {"enabled": False})
        return _json(start_response, 404, {"error": f"no route {method} {path}"})


def _read_body(environ: dict) -> bytes:
    """Read the request body and put it back, so moto can read it again."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH")
    if length:
        body = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def _respond(start_response: Callable, status: int, headers: list, body: bytes) -> list[bytes]:
    start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
    return [body]


def _json(start_response: Callable, status: int, document: dict) -> list[bytes]:
    body = json.dumps(document, indent=1, sort_keys=True).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    return _respond(start_response, status, headers, body)


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 409: "Conflict", 500: "Internal Server Error", 503: "Service Unavailable"}

