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
                    "time_scale": 1.0},  # service clocks run this much faster (0.1: 10x)
     "consistency": {"enabled": false,  # eventual consistency (consistency.py); a POST replaces
                                        # the whole key, sub-keys left out take their defaults
                     "visible_after": {"default": [0, 5], "tagging": [0, 15], "ec2:vpc": [0, 5]},
                     "tags_after": [0, 5],        # each a range [min, max] in seconds, or an
                     "linger": [0, 5],            # object of ranges by "default", service or
                     "iam_usable_after": [2, 8],  # "service:kind" like visible_after
                     "exempt_access_key": "PLINTHCONSISTENT"}}  # this key sees the truth
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

# The eventual-consistency model (consistency.py), off unless asked for. Ranges are [min, max]
# seconds; each resource's delay is drawn in its range from the seed, so a run replays.
DEFAULT_CONSISTENCY = {
    "enabled": False,
    # A created resource is missing from reads for this long; `tagging` is the Resource Groups
    # Tagging API's own draw (the resource shows there at the later of the two).
    "visible_after": {"default": [0.0, 5.0], "tagging": [0.0, 15.0]},
    # A tag added to an existing resource is missing from tag filters and the tagging API.
    "tags_after": {"default": [0.0, 5.0]},
    # A deleted resource still shows in reads.
    "linger": {"default": [0.0, 5.0]},
    # A new IAM role or instance profile is refused by EC2 and Auto Scaling.
    "iam_usable_after": {"default": [2.0, 8.0]},
    # Requests signed with this access key id see the truth (test verdicts read with it).
    "exempt_access_key": "PLINTHCONSISTENT",
}

# The resource kinds the model knows, as `service:kind` (service = SigV4 signing name); a range
# may be given for a whole service or for one of these.
CONSISTENCY_KINDS = (
    "ec2:vpc", "ec2:subnet", "ec2:internet_gateway", "ec2:address", "ec2:nat_gateway",
    "ec2:route_table", "ec2:security_group", "ec2:launch_template", "ec2:instance",
    "elasticloadbalancing:load_balancer", "elasticloadbalancing:target_group",
    "elasticloadbalancing:listener",
    "autoscaling:group", "autoscaling:policy",
    "rds:db_subnet_group", "rds:db_cluster_parameter_group", "rds:db_cluster", "rds:db_instance",
    "iam:role", "iam:instance_profile",
    "sns:topic", "sns:subscription",
    "monitoring:alarm",
    "secretsmanager:secret",
)

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
    # The eventual-consistency model (consistency.py): off, every write shows in the very next
    # read, as in moto; on, creates show late, deletes linger, added tags and IAM lag.
    consistency: dict = field(default_factory=lambda: consistency_document({}))

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
        if "consistency" in document:
            self.consistency = consistency_document(document["consistency"])

    def consistency_range(self, setting: str, service: str, kind: str) -> tuple[float, float]:
        """The range of `setting` for this kind: its own, else its service's, else the default."""
        ranges = self.consistency[setting]
        for scope in (f"{service}:{kind}", service, "default"):
            if scope in ranges:
                return tuple(ranges[scope])
        return (0.0, 0.0)


def consistency_document(values: dict) -> dict:
    """The whole `consistency` key from `values`: sub-keys left out take their defaults; a range
    may be given as [min, max] (for every kind) or as an object of ranges by scope."""
    if not isinstance(values, dict):
        raise ValueError("consistency must be an object")
    unknown = set(values) - set(DEFAULT_CONSISTENCY)
    if unknown:
        raise ValueError(f"consistency: unknown settings {sorted(unknown)}")
    document = json.loads(json.dumps(DEFAULT_CONSISTENCY))
    if "enabled" in values:
        if not isinstance(values["enabled"], bool):
            raise ValueError("consistency.enabled must be true or false")
        document["enabled"] = values["enabled"]
    if "exempt_access_key" in values:
        key = values["exempt_access_key"]
        if not isinstance(key, str) or not key:
            raise ValueError("consistency.exempt_access_key must be a non-empty string")
        document["exempt_access_key"] = key
    for setting in ("visible_after", "tags_after", "linger", "iam_usable_after"):
        if setting not in values:
            continue
        given = values[setting]
        ranges = {"default": given} if isinstance(given, list) else given
        if not isinstance(ranges, dict):
            raise ValueError(f"consistency.{setting} must be [min, max] or an object of ranges")
        scopes = {"default"} | {kind.split(":")[0] for kind in CONSISTENCY_KINDS} | set(CONSISTENCY_KINDS)
        if setting == "visible_after":
            scopes.add("tagging")
        merged = dict(document[setting]) if setting == "visible_after" else {}
        for scope, value in ranges.items():
            if scope not in scopes:
                raise ValueError(f"consistency.{setting}: unknown scope {scope!r} (default, a service or service:kind)")
            merged[scope] = _seconds_range(f"consistency.{setting}.{scope}", value)
        merged.setdefault("default", document[setting]["default"])
        document[setting] = merged
    return document


def _seconds_range(name: str, value) -> list[float]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise ValueError(f"{name} must be [min, max] in seconds")
    low, high = float(value[0]), float(value[1])
    if not 0.0 <= low <= high <= 3600.0:
        raise ValueError(f"{name} must satisfy 0 <= min <= max <= 3600")
    return [low, high]


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
    consistency: dict = {}
    if environ.get("PLINTH_LAG"):
        # The model on with its defaults; PLINTH_CONSISTENCY's keys, if any, go over that.
        consistency["enabled"] = environ["PLINTH_LAG"].strip().lower() not in ("0", "false", "no")
    if environ.get("PLINTH_CONSISTENCY"):
        consistency.update(json.loads(environ["PLINTH_CONSISTENCY"]))
    if consistency:
        document["consistency"] = consistency
    config.update(document)
    if environ.get("PLINTH_AWS_CONFIG"):
        config.update(json.loads(environ["PLINTH_AWS_CONFIG"]))
    return config
