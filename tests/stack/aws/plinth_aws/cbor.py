"""CloudWatch over Smithy RPC v2 CBOR, which current SDKs (aws-sdk-rust's aws-sdk-cloudwatch
included) speak and moto 5.2.5 does not: each such call is translated to the AWS JSON 1.0
protocol moto does speak, and moto's answer translated back.

The translation is driven by botocore's CloudWatch model and its own protocol codecs (botocore
ships with moto), so timestamps, blobs and numbers keep the types the model gives them.
https://smithy.io/2.0/additional-specs/protocols/smithy-rpc-v2.html
"""

from __future__ import annotations

import io
import json
from functools import lru_cache
from typing import Callable, Iterable

import botocore.session
from botocore.parsers import JSONParser, RpcV2CBORParser
from botocore.serialize import JSONSerializer, RpcV2CBORSerializer

# SigV4 signing name -> botocore service name, for the services whose SDKs send CBOR.
BRIDGED_SERVICES = {"monitoring": "cloudwatch"}

CBOR_HEADERS = [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]


@lru_cache(maxsize=None)
def _service_model(service: str):
    return botocore.session.get_session().get_service_model(BRIDGED_SERVICES[service])


def operation_from_path(path: str) -> str | None:
    """`/service/GraniteServiceVersion20100801/operation/PutMetricAlarm` -> `PutMetricAlarm`."""
    parts = path.strip("/").split("/")
    if len(parts) == 4 and parts[0] == "service" and parts[2] == "operation":
        return parts[3]
    return None


def decode_params(service: str, operation: str, body: bytes) -> dict:
    """The call's input as botocore parameters ({} for a service or operation we cannot read)."""
    if service not in BRIDGED_SERVICES or not body:
        return {}
    try:
        shape = _service_model(service).operation_model(operation).input_shape
    except Exception:  # an operation botocore does not know: let moto answer it as it can
        return {}
    if shape is None:
        return {}
    parsed = RpcV2CBORParser().parse({"body": body, "headers": {}, "status_code": 200}, shape)
    parsed.pop("ResponseMetadata", None)
    return parsed


def serve(
    moto_app: Callable, environ: dict, start_response: Callable, service: str, operation: str, params: dict
) -> Iterable[bytes]:
    """Answer one CBOR call by asking moto in JSON."""
    operation_model = _service_model(service).operation_model(operation)
    request = JSONSerializer().serialize_to_request(params, operation_model)
    body = request["body"] if isinstance(request["body"], bytes) else request["body"].encode()

    forwarded = {key: value for key, value in environ.items() if key not in ("HTTP_SMITHY_PROTOCOL", "HTTP_ACCEPT")}
    forwarded.update(
        {
            "PATH_INFO": "/",
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": request["headers"]["Content-Type"],
            "HTTP_X_AMZ_TARGET": request["headers"]["X-Amz-Target"],
        }
    )
    answer: dict = {}

    def capture(status: str, headers: list, exc_info=None):
        answer["status"], answer["headers"] = int(status.split()[0]), headers

    moto_body = b"".join(moto_app(forwarded, capture))
    headers = {name.lower(): value for name, value in answer["headers"]}
    passed_on = [(name, headers[name.lower()]) for name in ("x-amzn-RequestId", "x-amzn-query-error") if name.lower() in headers]

    if answer["status"] >= 300:
        document = json.loads(moto_body or b"{}")
        code = headers.get("x-amzn-errortype") or document.get("__type", "InternalFailure")
        out = encode_error(code.split(":", 1)[0], document.get("message") or document.get("Message", ""))
    else:
        out = b""
        shape = operation_model.output_shape
        if shape is not None:
            parsed = JSONParser().parse(
                {"body": moto_body, "headers": headers, "status_code": answer["status"]}, shape
            )
            parsed.pop("ResponseMetadata", None)
            encoded = bytearray()
            RpcV2CBORSerializer()._serialize_data_item(encoded, parsed, shape)
            out = bytes(encoded)
    start_response(
        f"{answer['status']} {'OK' if answer['status'] < 300 else 'Error'}",
        CBOR_HEADERS + passed_on + [("Content-Length", str(len(out)))],
    )
    return [out]


def encode_error(code: str, message: str) -> bytes:
    """The CBOR map `{"__type": code, "message": message}` an RPC v2 error body carries."""
    return _map({"__type": code, "message": message})


def _map(document: dict[str, str]) -> bytes:
    out = bytearray(_head(5, len(document)))
    for key, value in document.items():
        for text in (key, value):
            encoded = text.encode("utf-8")
            out += _head(3, len(encoded)) + encoded
    return bytes(out)


def _head(major: int, length: int) -> bytes:
    """A CBOR initial byte (and length bytes) for a major type and a length."""
    if length < 24:
        return bytes([major << 5 | length])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if length < 1 << (8 * size):
            return bytes([major << 5 | info]) + length.to_bytes(size, "big")
    raise ValueError("too long for CBOR")
