"""Decides which calls fail (throttling, 500, 503, a 500/503 after the write was made, "the N-th
call" rules) and how long each waits, from the settings and the call's index within its
operation.

Every draw is a hash of (seed, service, operation, index), not a shared RNG stream: calls made
concurrently by a reconciler interleave differently from run to run, yet the k-th call of an
operation gets the same answer in every run with the same seed. That is what makes a failing
run replayable.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .config import Config
from .protocol import AwsError, AwsRequest, server_error, throttling_error


def draw(seed: int, service: str, operation: str, index: int, purpose: str) -> float:
    """A uniform number in [0, 1) fixed by its inputs."""
    digest = hashlib.blake2b(
        f"{seed}|{service}|{operation}|{index}|{purpose}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass
class Decision:
    """`before`: answer with this instead of asking moto. `after`: ask moto (the change is made),
    then answer with this instead of moto's answer: the caller cannot tell whether it happened."""

    before: AwsError | None = None
    after: AwsError | None = None


def decide(config: Config, request: AwsRequest, index: int) -> Decision:
    for rule in config.rules:
        if rule.matches(request.service, request.operation, index):
            error = AwsError(rule.code, rule.message, rule.status)
            return Decision(after=error) if rule.after_write and not request.is_read else Decision(before=error)
    service, operation = request.service, request.operation
    throttle = config.fault_setting("throttle_rate", service, operation)
    errors = config.fault_setting("error_5xx_rate", service, operation)
    roll = draw(config.seed, service, operation, index, "fault")
    if roll < throttle:
        return Decision(before=throttling_error(request))
    if roll < throttle + errors:
        return Decision(before=_server_error(config, request, index))
    lost = config.fault_setting("error_5xx_after_write_rate", service, operation)
    if not request.is_read and draw(config.seed, service, operation, index, "after") < lost:
        return Decision(after=_server_error(config, request, index))
    return Decision()


def _server_error(config: Config, request: AwsRequest, index: int) -> AwsError:
    coin = draw(config.seed, request.service, request.operation, index, "status")
    return server_error(request, 500 if coin < 0.5 else 503)


def latency_seconds(config: Config, request: AwsRequest) -> float:
    return config.fault_setting("latency_ms", request.service, request.operation) / 1000.0
