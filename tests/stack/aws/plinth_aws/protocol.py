"""Reads which AWS service, operation and parameters a request carries, and writes an AWS error
in the exact shape that request's protocol uses.

Services are named by their SigV4 signing name (the credential scope in `Authorization`):
`ec2`, `elasticloadbalancing`, `autoscaling`, `rds`, `iam`, `sns`, `monitoring`,
`secretsmanager`, `sts`, `s3`. That is also the key used in call counts and fault overrides.
Other REST services pass through to moto uncounted.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from . import cbor

# The `xmlns` AWS puts on query-protocol error bodies; SDKs ignore it, but a reader comparing
# with AWS's documented samples should see the same document.
QUERY_NAMESPACES = {
    "elasticloadbalancing": "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/",
    "autoscaling": "http://autoscaling.amazonaws.com/doc/2011-01-01/",
    "rds": "http://rds.amazonaws.com/doc/2014-10-31/",
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "sns": "http://sns.amazonaws.com/doc/2010-03-31/",
    "monitoring": "http://monitoring.amazonaws.com/doc/2010-08-01/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
}

# CloudWatch's JSON and CBOR protocols are "awsQueryCompatible": an error carries its query code
# in the `x-amzn-query-error` header too.
QUERY_COMPATIBLE = {"monitoring"}

DEFAULT_ACCOUNT_ID = "123456789012"


@dataclass
class AwsRequest:
    """One AWS API call as the emulator sees it."""

    service: str
    region: str
    operation: str
    # "ec2" (EC2's own query dialect), "query", "json", "cbor" (Smithy RPC v2), or "s3" (REST-XML).
    protocol: str
    access_key: str
    # Query protocols: the flattened form (`Filter.1.Name`); JSON and CBOR: the input's members;
    # S3: none (no check reads them).
    params: dict = field(default_factory=dict)
    account_id: str = DEFAULT_ACCOUNT_ID

    @property
    def is_read(self) -> bool:
        return is_read(self.operation)


def is_read(operation: str) -> bool:
    return operation.startswith(("Describe", "List", "Get", "Head"))


@dataclass
class AwsError(Exception):
    """An error to answer with instead of asking moto."""

    code: str
    message: str
    status: int = 400

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def parse(environ: dict, body: bytes) -> AwsRequest | None:
    """The AWS call in a WSGI request, or None when it is not a SigV4-signed AWS call."""
    scope = _credential_scope(environ.get("HTTP_AUTHORIZATION", ""))
    if scope is None:
        return None
    access_key, region, service = scope
    target = environ.get("HTTP_X_AMZ_TARGET")
    if environ.get("HTTP_SMITHY_PROTOCOL") == "rpc-v2-cbor":
        operation = cbor.operation_from_path(environ.get("PATH_INFO", ""))
        if not operation:
            return None
        request = AwsRequest(
            service=service,
            region=region,
            operation=operation,
            protocol="cbor",
            access_key=access_key,
            params=cbor.decode_params(service, operation, body),
        )
    elif service == "s3":
        request = AwsRequest(
            service=service,
            region=region,
            operation=_s3_operation(environ),
            protocol="s3",
            access_key=access_key,
        )
    elif target:
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
        request = AwsRequest(
            service=service,
            region=region,
            operation=target.rsplit(".", 1)[-1],
            protocol="json",
            access_key=access_key,
            params=params if isinstance(params, dict) else {},
        )
    else:
        params = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        if "form-urlencoded" in environ.get("CONTENT_TYPE", "") or not environ.get("CONTENT_TYPE"):
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        operation = params.get("Action")
        if not operation:
            return None
        request = AwsRequest(
            service=service,
            region=region,
            operation=operation,
            protocol="ec2" if service == "ec2" else "query",
            access_key=access_key,
            params=params,
        )
    request.account_id = _account_id(environ, access_key)
    return request


def _s3_operation(environ: dict) -> str:
    """S3's operation name from method, path depth and sub-resource, the way S3 names them:
    `GET /b/k` GetObject, `PUT /b?tagging` PutBucketTagging, `GET /b?list-type=2` ListObjectsV2.
    Rarer operations get a name of the same pattern (`POST /b/k?uploads` PostObjectUploads)."""
    method = environ.get("REQUEST_METHOD", "GET")
    depth = len([part for part in environ.get("PATH_INFO", "/").split("/") if part])
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    if depth == 0:
        return "ListBuckets"
    level = "Bucket" if depth == 1 else "Object"
    if level == "Bucket" and method == "GET" and not any(value == "" for value in query.values()):
        return "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
    verb = {"GET": "Get", "HEAD": "Head", "PUT": "Put", "DELETE": "Delete", "POST": "Post"}.get(method, method)
    if level == "Bucket" and not query:
        verb = {"Put": "Create"}.get(verb, verb)
    sub = next((key for key, value in query.items() if value == ""), "")
    return verb + level + sub[:1].upper() + sub[1:]


def _credential_scope(authorization: str) -> tuple[str, str, str] | None:
    """(access key, region, service) from `Credential=AKID/date/region/service/aws4_request`."""
    marker = "Credential="
    start = authorization.find(marker)
    if start < 0:
        return None
    credential = authorization[start + len(marker) :].split(",", 1)[0].strip()
    parts = credential.split("/")
    if len(parts) != 5:
        return None
    return parts[0], parts[2], parts[3].lower()


def _account_id(environ: dict, access_key: str) -> str:
    """The account moto files this call under, found the way moto finds it."""
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    if environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
        return environ["HTTP_X_MOTO_ACCOUNT_ID"]
    from moto.iam.models import get_account_id_from

    return get_account_id_from(access_key)


def error_response(request: AwsRequest, error: AwsError) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) for `error`, shaped as AWS shapes it for this request's protocol."""
    request_id = str(uuid.uuid4())
    code, message = escape(error.code), escape(error.message)
    if request.protocol == "ec2":
        # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html#api-error-response
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error>"
            f"</Errors><RequestID>{request_id}</RequestID></Response>"
        )
        headers = [("Content-Type", "text/xml;charset=UTF-8")]
    elif request.protocol == "query":
        fault = "Receiver" if error.status >= 500 else "Sender"
        namespace = QUERY_NAMESPACES.get(request.service)
        xmlns = f' xmlns="{namespace}"' if namespace else ""
        body = (
            f"<ErrorResponse{xmlns}><Error><Type>{fault}</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    elif request.protocol == "s3":
        # https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#RESTErrorResponses
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
        )
        headers = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)]
    elif request.protocol == "json":
        # https://smithy.io/2.0/aws/protocols/aws-json-1_1-protocol.html#operation-error-serialization
        body = json.dumps({"__type": error.code, "message": error.message})
        headers = [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", error.code),
        ]
    else:
        # https://smithy.io/2.0/additional-specs/protocols/smithy-rpc-v2.html#operation-error-serialization
        body = cbor.encode_error(error.code, error.message)
        headers = cbor.CBOR_HEADERS + [("x-amzn-RequestId", request_id)]
    if request.protocol in ("json", "cbor") and request.service in QUERY_COMPATIBLE:
        # SDKs take a query-compatible service's error code from this header.
        fault = "Receiver" if error.status >= 500 else "Sender"
        query_code = "Throttling" if error.code == "ThrottlingException" else error.code
        headers.append(("x-amzn-query-error", f"{query_code};{fault}"))
    encoded = body if isinstance(body, bytes) else body.encode("utf-8")
    headers.append(("Content-Length", str(len(encoded))))
    return error.status, headers, encoded


def throttling_error(request: AwsRequest) -> AwsError:
    """The error each service throttles with (all are in aws-sdk-rust's THROTTLING_ERRORS)."""
    if request.protocol == "ec2":
        # EC2 throttles with HTTP 503: https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html
        return AwsError("RequestLimitExceeded", "Request limit exceeded.", 503)
    if request.protocol == "s3":
        return AwsError("SlowDown", "Please reduce your request rate.", 503)
    if request.protocol == "query":
        return AwsError("Throttling", "Rate exceeded", 400)
    return AwsError("ThrottlingException", "Rate exceeded", 400)


def server_error(request: AwsRequest, status: int) -> AwsError:
    """A 500 or 503 with the code each protocol documents for it."""
    if status == 503:
        return AwsError(
            "ServiceUnavailable", "The request has failed due to a temporary failure of the server.", 503
        )
    if request.protocol in ("ec2", "s3"):
        return AwsError("InternalError", "An internal error has occurred.", 500)
    return AwsError(
        "InternalFailure",
        "The request processing has failed because of an unknown error, exception or failure.",
        500,
    )
