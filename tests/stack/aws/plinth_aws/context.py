"""The AWS call being served on this thread, for the backend patches that need a request
parameter moto does not pass to its backends (NAT gateways' ClientToken)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from .protocol import AwsRequest

_local = threading.local()


@contextmanager
def serving(request: AwsRequest) -> Iterator[None]:
    _local.request = request
    try:
        yield
    finally:
        _local.request = None


def current() -> AwsRequest | None:
    return getattr(_local, "request", None)
