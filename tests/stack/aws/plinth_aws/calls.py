"""Counts AWS calls by service and operation, split into reads and writes, for tests and
benchmarks (`GET /_plinth/calls`, `POST /_plinth/calls/reset`).

Each call also gets its 1-based index within its operation; fault draws and "fail the N-th
call" rules key on that index, so resetting the counts also restarts every fault sequence.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from .protocol import is_read


class CallCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[tuple[str, str], int] = defaultdict(int)
        self._faults: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._refused: dict[tuple[str, str], int] = defaultdict(int)

    def record(self, service: str, operation: str) -> int:
        """Count one call and return its index within its operation."""
        with self._lock:
            self._calls[(service, operation)] += 1
            return self._calls[(service, operation)]

    def record_fault(self, service: str, operation: str, code: str) -> None:
        with self._lock:
            self._faults[(service, operation)][code] += 1

    def record_refusal(self, service: str, operation: str) -> None:
        """A call answered with an AWS error moto would not have given (guard or duplicate)."""
        with self._lock:
            self._refused[(service, operation)] += 1

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._faults.clear()
            self._refused.clear()

    def snapshot(self) -> dict:
        """{"total", "reads", "writes", "services": {svc: {"reads", "writes", "operations":
        {op: {"calls", "kind", "faults": {code: n}, "refused"}}}}}"""
        with self._lock:
            services: dict[str, dict] = {}
            totals = {"reads": 0, "writes": 0}
            for (service, operation), calls in sorted(self._calls.items()):
                kind = "read" if is_read(operation) else "write"
                entry = services.setdefault(service, {"reads": 0, "writes": 0, "operations": {}})
                entry[kind + "s"] += calls
                totals[kind + "s"] += calls
                entry["operations"][operation] = {
                    "calls": calls,
                    "kind": kind,
                    "faults": dict(self._faults.get((service, operation), {})),
                    "refused": self._refused.get((service, operation), 0),
                }
            return {"total": totals["reads"] + totals["writes"], **totals, "services": services}
