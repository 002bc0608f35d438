"""The emulator's settings: read from the environment at start, replaced piecewise at run time
through `POST /_plinth/config`, and shown as JSON by `GET /_plinth/config`.

The JSON document (every key optional on POST; a key given replaces that whole key, except
`pending`, where only the kinds named change):

    {"strict": true,                 # delete guards, duplicate refusals, pending states
     "seed": 0,                      # fault draws are a pure function of seed and call index
     "throttle_rate": 0.0, "error_5xx_rate": 0.0, "error_5xx_after_write_rate": 0.0,
     "latency_ms": 0,
     "overrides": {"ec2": {"throttle_rate": 0.5},              # per service ...
                   "rds:CreateDBCluster": {"error_5xx_rate": 1}},  # ... or per operation
     "rules": [{"service": "ec2", "operation": "CreateVpc", "nth": 2,
                "code": "InternalError", "status": 500, "message": "...", "count": 1,
                "after_write": false}],
     "pending": {"nat_gateway": {"seconds": 2.0, "describes": null}, ...},
     "unhealthy_target_groups": ["plinth.dev/revision=1a2b3c4d"],  # see lifecycle.py
     "data_plane": {"enabled": false,  # instances, load balancers, databases, alarms run for
                                       # real (dataplane/); set at start only
                    "time_scale": 1.0}}  # service clocks run this much faster (0.1: 10x)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

# How long each resource kind stays in its transitional state when strict. A kind moves on at
# the first of: `seconds` elapsed, or `describes` describe calls that returned it (null = never
# by that measure; both null = at once). For `target` the figures are per health check and are
# multiplied by the target group's HealthyThresholdCount. `db_instance` starts counting only
# once its cluster is available, so instances always finish after their cluster.
DEFAULT_PENDING = {
    "nat_gateway": {"seconds": 2.0, "describes": None},  # pending -> available
    "nat_gateway_delete": {"seconds": 2.0, "describes": None},  # deleting -> deleted
    "load_balancer": {"seconds": 2.0, "describes": None},  # provisioning -> active
    "db_cluster": {"seconds": 3.0, "describes": None},  # creating -> available
    "db_instance": {"seconds": 2.0, "describes": None},  # creating -> available
    "db_cluster_delete": {"seconds": 2.0, "describes": None},  # deleting -> gone
    "db_instance_delete": {"seconds": 2.0, "describes": None},  # deleting -> gone
    "asg_instance": {"seconds": 2.0, "describes": None},  # Pending -> InService
    "target": {"seconds": 0.3, "describes": None},  # initial -> healthy, per check
}

DEFAULT_DATA_PLANE = {"enabled": False, "time_scale": 1.0}

FAULT_KEYS = ("throttle_rate", "error_5xx_rate", "error_5xx_after_write_rate", "latency_ms")


@dataclass
class Rule:
    """Fail calls `nth` .. `nth + count - 1` of one operation (counted since the last reset)."""

    service: str
    operation: str
    nth: int
    code: str
    status: int = 400
    message: str = "Injected by the Plinth test emulator."
    count: int = 1
    # For a write: carry it out, then answer with the error (the response is "lost").
    after_write: bool = False

    def matches(self, service: str, operation: str, index: int) -> bool:
        return (
            self.service == service
            and self.operation == operation
            and self.nth <= index < self.nth + self.count
        )


@dataclass
class Config:
    strict: bool = True
    seed: int = 0
    throttle_rate: float = 0.0
    error_5xx_rate: float = 0.0
    # Writes carried out but answered 500/503: an idempotent client must find what it made.
    error_5xx_after_write_rate: float = 0.0
    latency_ms: int = 0
    overrides: dict = field(default_factory=dict)
    rules: list = field(default_factory=list)
    pending: dict = field(default_factory=lambda: json.loads(json.dumps(DEFAULT_PENDING)))
    # Target groups whose targets fail their health checks (a bad release): shell patterns
    # matched against each group's name, its ARN and its tags as `key=value`.
    unhealthy_target_groups: list = field(default_factory=list)
    # The local data plane (dataplane/): off, the emulator only declares instances, health and
    # alarms; on, they are real processes and measurements. `time_scale` shrinks the service
    # clocks (alarm periods, cooldowns, health-check timings) so tests need not wait minutes.
    data_plane: dict = field(default_factory=lambda: dict(DEFAULT_DATA_PLANE))

    def fault_setting(self, key: str, service: str, operation: str) -> float:
        """The operation's override, else the service's, else the global value."""
        for scope in (f"{service}:{operation}", service):
            if key in self.overrides.get(scope, {}):
                return self.overrides[scope][key]
        return getattr(self, key)

    def pending_for(self, kind: str) -> dict:
        return self.pending.get(kind, DEFAULT_PENDING[kind])

    def to_json(self) -> dict:
        document = asdict(self)
        document["rules"] = [asdict(rule) for rule in self.rules]
        return document

    def update(self, document: dict) -> None:
        """Replace the keys `document` names; unknown keys and bad values raise ValueError."""
        unknown = set(document) - set(Config.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        if "strict" in document:
            self.strict = bool(document["strict"])
        if "seed" in document:
            self.seed = int(document["seed"])
        for key in FAULT_KEYS:
            if key in document:
                setattr(self, key, _rate(key, document[key]))
        if "overrides" in document:
            overrides = document["overrides"]
            for scope, values in overrides.items():
                for key, value in values.items():
                    if key not in FAULT_KEYS:
                        raise ValueError(f"override {scope}: unknown setting {key}")
                    _rate(key, value)
            self.overrides = overrides
        if "rules" in document:
            self.rules = [Rule(**rule) for rule in document["rules"]]
        if "pending" in document:
            # Kinds not named keep their current durations.
            pending = json.loads(json.dumps(self.pending))
            for kind, values in document["pending"].items():
                if kind not in DEFAULT_PENDING:
                    raise ValueError(f"unknown pending kind: {kind}")
                pending[kind] = {"seconds": values.get("seconds"), "describes": values.get("describes")}
            self.pending = pending
        if "unhealthy_target_groups" in document:
            patterns = document["unhealthy_target_groups"]
            if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
                raise ValueError("unhealthy_target_groups must be a list of strings")
            self.unhealthy_target_groups = list(patterns)
        if "data_plane" in document:
            self.data_plane = _data_plane(self.data_plane, document["data_plane"])


def _data_plane(current: dict, values: dict) -> dict:
    if not isinstance(values, dict):
        raise ValueError("data_plane must be an object")
    unknown = set(values) - set(DEFAULT_DATA_PLANE)
    if unknown:
        raise ValueError(f"data_plane: unknown settings {sorted(unknown)}")
    merged = {**current, **values}
    merged["enabled"] = bool(merged["enabled"])
    scale = float(merged["time_scale"])
    if not 0.001 <= scale <= 1.0:
        raise ValueError("data_plane.time_scale must be within [0.001, 1]")
    merged["time_scale"] = scale
    return merged


def _rate(key: str, value: float) -> float:
    if key == "latency_ms":
        if value < 0:
            raise ValueError("latency_ms must be >= 0")
        return int(value)
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{key} must be within [0, 1]")
    return float(value)


def from_environment(environ: dict = os.environ) -> Config:
    """Settings from `PLINTH_*` variables; `PLINTH_AWS_CONFIG` (a JSON document as above) last."""
    config = Config()
    document: dict = {}
    if "PLINTH_STRICT" in environ:
        document["strict"] = environ["PLINTH_STRICT"].strip().lower() not in ("0", "false", "no", "")
    simple = {
        "PLINTH_FAULT_SEED": ("seed", int),
        "PLINTH_FAULT_THROTTLE_RATE": ("throttle_rate", float),
        "PLINTH_FAULT_5XX_RATE": ("error_5xx_rate", float),
        "PLINTH_FAULT_5XX_AFTER_WRITE_RATE": ("error_5xx_after_write_rate", float),
        "PLINTH_FAULT_LATENCY_MS": ("latency_ms", int),
    }
    for variable, (key, kind) in simple.items():
        if environ.get(variable):
            document[key] = kind(environ[variable])
    if environ.get("PLINTH_FAULT_OVERRIDES"):
        document["overrides"] = json.loads(environ["PLINTH_FAULT_OVERRIDES"])
    if environ.get("PLINTH_FAULT_RULES"):
        document["rules"] = json.loads(environ["PLINTH_FAULT_RULES"])
    if environ.get("PLINTH_PENDING_DESCRIBES") or environ.get("PLINTH_PENDING_SECONDS"):
        # One measure for every kind: the usual way to make a whole suite deterministic.
        describes = environ.get("PLINTH_PENDING_DESCRIBES")
        seconds = environ.get("PLINTH_PENDING_SECONDS")
        document["pending"] = {
            kind: {
                "describes": int(describes) if describes else None,
                "seconds": float(seconds) if seconds else None,
            }
            for kind in DEFAULT_PENDING
        }
    data_plane = {}
    if environ.get("PLINTH_DATA_PLANE"):
        data_plane["enabled"] = environ["PLINTH_DATA_PLANE"].strip().lower() not in ("0", "false", "no")
    if environ.get("PLINTH_DATA_PLANE_TIME_SCALE"):
        data_plane["time_scale"] = float(environ["PLINTH_DATA_PLANE_TIME_SCALE"])
    if data_plane:
        document["data_plane"] = data_plane
    config.update(document)
    if environ.get("PLINTH_AWS_CONFIG"):
        config.update(json.loads(environ["PLINTH_AWS_CONFIG"]))
    return config
