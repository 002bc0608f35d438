"""Metric alarms evaluated as CloudWatch evaluates them, and their actions carried out.

moto 5.2.5 stores alarms and metric data but never evaluates an alarm: every alarm stays `OK`
(its state at creation) whatever its metric does, and no action ever runs. `AlarmEvaluator`
walks moto's CloudWatch backends about once a second (the data plane's loop) and moves each
metric alarm the way these pages describe:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html
("Using Amazon CloudWatch alarms": evaluating an alarm, M out of N, missing data, actions),
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/using-metric-math.html
(metric math syntax), https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
(a new alarm starts `INSUFFICIENT_DATA`; an updated one keeps its state),
https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-scaling-simple-step.html
(step and simple scaling policies, warm-up, cooldown).

**Evaluation.** A period of P seconds lasts `P * time_scale` seconds of the clock; periods are
windows aligned to multiples of that length. When a window completes, each alarm on that period
is evaluated once, over the most recent windows: Sum / Average / Minimum / Maximum / SampleCount
or a percentile `pNN[.N]` of the datapoints whose namespace, name, exact set of dimensions (and
unit, when the alarm names one) match; or a metric math expression (numbers, ids, `+ - * /`,
unary minus, parentheses, `FILL(x, number | REPEAT | LINEAR)`), where a window without data for
an input, or a division by zero, yields no datapoint. Comparison with the threshold, M of N
(`DatapointsToAlarm`, default N), and missing data (`TreatMissingData`) follow the tables of
"How alarm state is evaluated when data is missing":

- the evaluation range is N + 2 windows (the page's example: 3 evaluation periods, 5 datapoints
  retrieved); when it holds at least N real datapoints, the N most recent of them decide and
  TreatMissingData plays no part;
- otherwise all real datapoints of the range are used and the missing ones filled in:
  `breaching` / `notBreaching` fill them as breaching / not breaching; `missing` goes
  `INSUFFICIENT_DATA` when the range holds no datapoint, and `ignore` keeps the state then;
  with some data, both decide on the real datapoints alone, except that when every real
  datapoint breaches, `missing` goes `ALARM` once the oldest breaching datapoint is at least M
  periods old ("Avoiding premature transitions to alarm state") where `ignore` keeps the state;
- alarms on `AWS/DynamoDB` metrics always ignore missing data (the page's "Important" note).

A new alarm (moto creates it `OK`) is shown `INSUFFICIENT_DATA` from the first pass that sees it
and evaluated when the next window completes. An updated alarm (a new configuration timestamp)
keeps the state of the alarm it replaces, as PutMetricAlarm documents (moto resets it to `OK`),
and is evaluated afresh from the next window. A state set with SetAlarmState runs the new
state's actions as AWS does, and the next evaluation moves it back.

**Actions** (only with `ActionsEnabled`), on each state change, for the new state: an SNS topic
gets AWS's alarm notification (the JSON message, subject `ALARM: "name" in <Region name>`); an
Auto Scaling policy is executed, and executed again every (scaled) minute while the alarm stays
in that state ("For Auto Scaling actions, the alarm continues to invoke the action once per
minute that the alarm remains in the new state"). Other actions (Lambda, EC2, Systems Manager)
are not carried out; a line on stderr says so once per alarm.

**Policies.** StepScaling picks the step whose bounds (relative to the threshold; a missing
bound is infinite; lower bound inclusive and upper exclusive above the threshold, the reverse
below) hold the breach: the latest datapoint of the alarm's last evaluation minus the threshold.
ChangeInCapacity, ExactCapacity and PercentChangeInCapacity (fractions rounded as AWS documents,
MinAdjustmentMagnitude) are applied to the current capacity, and the result clamped to the
group's MinSize / MaxSize. Warm-up (`EstimatedInstanceWarmup`, else the group's
DefaultCooldown, scaled): instances a step policy launched do not count toward current capacity
until warmed up, and a scale-out only ever raises the desired capacity, so a breach answered
once is not answered twice; scale-in by a step policy waits until no instance is warming up.
SimpleScaling applies `ScalingAdjustment` and then ignores further alarms for the group's
cooldown (the policy's Cooldown, else the group's DefaultCooldown, scaled). The new desired
capacity goes through moto's `set_desired_capacity` (which launches or terminates instances and
registers them with the group's target groups), and each instance launched or terminated is
recorded as a scaling activity with AWS's wording.

**Simplified or not modelled.**
- Alarms are evaluated once per completed period; AWS evaluates alarms of a minute or longer
  every minute over a sliding window (the same for 60-second periods, which is what Plinth uses),
  and 10/20/30-second alarms every 10 seconds.
- The evaluation range is always N + 2 periods (AWS: depends on the period and resolution).
  With `missing`/`ignore` and every real datapoint breaching but the oldest younger than M
  periods, the state is kept (the page only says the alarm does not go to ALARM then).
- Percentiles use the nearest-rank method over the raw values (aggregated StatisticValues can
  give none); EvaluateLowSampleCountPercentile is not modelled (always `evaluate`). Other
  extended statistics (trimmed means, …), anomaly-detection alarms (ThresholdMetricId, the band
  operators), metric math functions other than FILL, Metrics Insights queries, cross-account
  metrics and composite alarms are not evaluated: the state stays, with a stderr note.
- A metric math alarm uses one period for all its metrics (AWS requires them to be equal).
- A step policy sizes the breach from the latest datapoint, not from MetricAggregationType over
  the alarm's datapoints; with no datapoint (an alarm in ALARM from missing data) it does nothing.
- Warm-up counts from launch, not from InService; instances launched by anything but a step
  policy never count as warming up. Cooldown counts from the policy's execution. Target
  tracking and predictive policies are not executed by alarms.
- A deleted and re-created alarm that the loop never saw missing is taken for an update (its
  state is kept). Between PutMetricAlarm and the next pass (about a second) describe shows
  moto's `OK`.
"""

from __future__ import annotations

import functools
import json
import math
import re
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable

import botocore.loaders
from moto.autoscaling.models import autoscaling_backends
from moto.cloudwatch.models import MetricAggregatedDatum, MetricDatum, cloudwatch_backends
from moto.sns.models import sns_backends

from .activities import Activities

ALARM, OK, INSUFFICIENT_DATA = "ALARM", "OK", "INSUFFICIENT_DATA"

# The page's example retrieves 5 datapoints for 3 evaluation periods.
EXTRA_RANGE_PERIODS = 2

# Comparison operators: (breaches, above the threshold, the reason's wording).
OPERATORS: dict[str, tuple[Callable[[float, float], bool], bool, str]] = {
    "GreaterThanThreshold": (lambda v, t: v > t, True, "greater than"),
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, True, "greater than or equal to"),
    "LessThanThreshold": (lambda v, t: v < t, False, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, False, "less than or equal to"),
}

SIMPLE_STATISTICS = ("Sum", "Average", "Minimum", "Maximum", "SampleCount")
PERCENTILE = re.compile(r"p(\d+(?:\.\d+)?)$")


def _log(message: str) -> None:
    print(f"plinth-aws alarms: {message}", file=sys.stderr, flush=True)


class Unsupported(Exception):
    """An alarm this evaluator cannot evaluate (or an action it cannot carry out); its state
    stays as it is."""


# -- the evaluator ----------------------------------------------------------------------------


@dataclass
class _Record:
    """What the evaluator remembers of one alarm (by ARN) between passes."""

    config: object  # moto's configuration_updated_timestamp: a new value is a PutMetricAlarm
    alarm: object  # the moto Alarm object last seen
    state: str  # the state last seen or set, to tell a SetAlarmState
    last_end: float | None = None  # end of the last window evaluated (clock seconds)
    latest: float | None = None  # latest datapoint of the last evaluation (sizes a step policy)
    invoked_minute: int | None = None  # scaled minute of the last Auto Scaling invocation
    range_seconds: float = 0.0


class AlarmEvaluator:
    def __init__(
        self,
        activities: Activities,
        time_scale: Callable[[], float],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._activities = activities
        self._time_scale = time_scale
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}
        self._noted: set[str] = set()
        self._scaling = _Scaling(activities)

    def evaluate(self) -> None:
        """One pass over every metric alarm of every CloudWatch backend moto has made. Never
        raises: a failure is one stderr line, and the next alarm is evaluated."""
        with self._lock:
            try:
                self._pass()
            except Exception as error:  # the loop thread must survive anything
                _log(f"pass failed: {type(error).__name__}: {error}")

    def reset(self) -> None:
        """Forget every alarm, warm-up and cooldown (the emulator was reset)."""
        with self._lock:
            self._records.clear()
            self._noted.clear()
            self._scaling.reset()

    def horizon(self) -> float:
        """Seconds of metric data (before now, clock time) the evaluator still reads: data older
        than this may be pruned from moto's backends."""
        with self._lock:
            return max((r.range_seconds for r in self._records.values()), default=0.0)

    # -- one pass ------------------------------------------------------------------------------

    def _pass(self) -> None:
        now = self._clock()
        scale = self._scale()
        seen: set[str] = set()
        for account, region, backend in _backends(cloudwatch_backends):
            index = _MetricIndex(backend)
            for alarm in _snapshot(lambda: list(backend.alarms.values())):
                if getattr(alarm, "rule", None) is not None:
                    continue  # composite alarms are not evaluated
                seen.add(alarm.alarm_arn)
                try:
                    self._tick(account, region, alarm, index, now, scale)
                except Unsupported as reason:
                    self._note(f"{alarm.alarm_arn}|{alarm.configuration_updated_timestamp}",
                               f"{alarm.name}: not evaluated ({reason}); its state stays {alarm.state_value}")
                except Exception as error:
                    _log(f"{alarm.name}: {type(error).__name__}: {error}")
        for arn in [arn for arn in self._records if arn not in seen]:
            del self._records[arn]

    def _scale(self) -> float:
        try:
            scale = float(self._time_scale())
        except Exception as error:
            self._note("time_scale", f"time_scale() failed ({error}); using 1")
            return 1.0
        return scale if scale > 0 else 1.0

    def _note(self, key: str, message: str) -> None:
        """A stderr line, once per key (an unsupported alarm would otherwise say it every pass)."""
        if key not in self._noted:
            self._noted.add(key)
            _log(message)

    def _tick(self, account: str, region: str, alarm, index: "_MetricIndex", now: float, scale: float) -> None:
        record = self._records.get(alarm.alarm_arn)
        if record is None or record.config != alarm.configuration_updated_timestamp or record.alarm is not alarm:
            record = self._adopt(alarm, record)
            self._records[alarm.alarm_arn] = record
        elif alarm.state_value != record.state:
            # Someone called SetAlarmState: AWS runs the new state's actions.
            old, record.state = record.state, alarm.state_value
            record.latest = _latest_from_reason_data(alarm.state_reason_data)
            self._act(account, region, alarm, old, record, now, scale)

        width = round(_period_of(alarm) * scale, 6)
        if width <= 0:
            raise Unsupported("no period")
        end = math.floor(now / width) * width  # end of the latest completed window
        record.range_seconds = (_range_periods(alarm) + 1) * width
        if record.last_end is None:
            record.last_end = end  # first sight: evaluated when the next window completes
        elif end > record.last_end:
            record.last_end = end  # before evaluating: a failing alarm fails once per window
            self._evaluate_alarm(account, region, alarm, record, index, end, width, now, scale)
        self._repeat_scaling(account, region, alarm, record, now, scale)

    def _adopt(self, alarm, previous: _Record | None) -> _Record:
        """First sight of an alarm's configuration. A new alarm is INSUFFICIENT_DATA until
        evaluated; an update keeps the state of the alarm it replaces (moto made it `OK`)."""
        if previous is not None and previous.alarm is not alarm:
            old = previous.alarm
            alarm.state_value = old.state_value
            alarm.state_reason = old.state_reason
            alarm.state_reason_data = old.state_reason_data
            alarm.state_updated_timestamp = old.state_updated_timestamp
            alarm.history = list(old.history) + list(alarm.history)
            return _Record(
                alarm.configuration_updated_timestamp, alarm, alarm.state_value,
                latest=previous.latest, invoked_minute=previous.invoked_minute,
            )
        alarm.state_value = INSUFFICIENT_DATA
        return _Record(alarm.configuration_updated_timestamp, alarm, INSUFFICIENT_DATA)

    # -- evaluation ----------------------------------------------------------------------------

    def _evaluate_alarm(
        self, account: str, region: str, alarm, record: _Record, index: "_MetricIndex",
        end: float, width: float, now: float, scale: float,
    ) -> None:
        try:
            spec = _Spec.of(alarm)
            last = round(end / width) - 1
            windows = list(range(last - _range_periods(alarm) + 1, last + 1))
            points = _points(alarm, spec, index, windows, width)
        except Unsupported as reason:
            self._note(f"{alarm.alarm_arn}|{alarm.configuration_updated_timestamp}",
                       f"{alarm.name}: not evaluated ({reason}); its state stays {alarm.state_value}")
            return
        decision = _decide(points, spec)
        record.latest = decision.used[-1].value if decision.used else None
        if decision.state is None or decision.state == alarm.state_value:
            return
        old = alarm.state_value
        reason = _reason(decision, spec)
        data = _reason_data(decision, spec, points, now)
        alarm.update_state(reason, json.dumps(data, separators=(",", ":")), decision.state)
        record.state = decision.state
        _log(f"state: {alarm.name} {old} -> {decision.state} at {time.time():.1f}: {reason}")
        self._act(account, region, alarm, old, record, now, scale)

    # -- actions -------------------------------------------------------------------------------

    def _act(self, account: str, region: str, alarm, old: str, record: _Record, now: float, scale: float) -> None:
        """Run the actions of the state the alarm just entered."""
        record.invoked_minute = math.floor(now / _minute(scale))
        if not _truthy(alarm.actions_enabled):
            return
        for arn in _actions_of(alarm, alarm.state_value):
            self._invoke(arn, account, region, alarm, old, record, now, scale)

    def _repeat_scaling(self, account: str, region: str, alarm, record: _Record, now: float, scale: float) -> None:
        """Auto Scaling actions run again once per (scaled) minute while the alarm stays in the
        state that ran them."""
        if record.invoked_minute is None or not _truthy(alarm.actions_enabled):
            return
        minute = math.floor(now / _minute(scale))
        if minute <= record.invoked_minute:
            return
        record.invoked_minute = minute
        for arn in _actions_of(alarm, alarm.state_value):
            if _action_kind(arn) == "autoscaling":
                self._invoke(arn, account, region, alarm, alarm.state_value, record, now, scale)

    def _invoke(
        self, arn: str, account: str, region: str, alarm, old: str, record: _Record, now: float, scale: float
    ) -> None:
        """One action; a failure is a stderr line (once, if it is something not supported)."""
        try:
            kind = _action_kind(arn)
            if kind == "sns":
                _notify(arn, account, region, alarm, old, now)
            elif kind == "autoscaling":
                self._scaling.execute(arn, alarm, record.latest, now, scale)
            else:
                raise Unsupported("not carried out (only SNS topics and scaling policies are)")
        except Unsupported as reason:
            self._note(f"{alarm.alarm_arn}|{arn}|{reason}", f"{alarm.name}: action {arn}: {reason}")
        except Exception as error:
            _log(f"{alarm.name}: action {arn} failed: {type(error).__name__}: {error}")


def _backends(backend_dict) -> Iterable[tuple[str, str, object]]:
    """(account, region, backend) of every backend moto has already made. `dict.items` on
    purpose: moto's containers make a backend on a missing key, and a pass must not."""
    for account, per_region in _snapshot(lambda: list(dict.items(backend_dict))):
        for region, backend in _snapshot(lambda: list(dict.items(per_region))):
            yield account, region, backend


def _snapshot(read: Callable[[], list]) -> list:
    """A copy of a moto container that request threads may be changing."""
    for _ in range(5):
        try:
            return read()
        except RuntimeError:  # changed size during iteration
            continue
    return []


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def _minute(scale: float) -> float:
    return round(60 * scale, 6)


def _actions_of(alarm, state: str) -> list[str]:
    actions = {ALARM: alarm.alarm_actions, OK: alarm.ok_actions, INSUFFICIENT_DATA: alarm.insufficient_data_actions}
    return list(actions.get(state) or [])


def _action_kind(arn: str) -> str:
    parts = arn.split(":")
    if len(parts) > 5 and parts[2] == "sns":
        return "sns"
    if len(parts) > 5 and parts[2] == "autoscaling" and parts[5] == "scalingPolicy":
        return "autoscaling"
    return "other"


# -- what an alarm watches ----------------------------------------------------------------------


@dataclass
class _Spec:
    """An alarm's evaluation settings, read once per evaluation."""

    n: int
    m: int
    threshold: float
    operator: str
    treat: str
    period: int
    statistic: str | None  # single-metric alarms: the statistic named in reason data

    @property
    def breaches(self) -> Callable[[float], bool]:
        compare = OPERATORS[self.operator][0]
        return lambda value: compare(value, self.threshold)

    @property
    def above(self) -> bool:
        return OPERATORS[self.operator][1]

    @property
    def wording(self) -> str:
        return OPERATORS[self.operator][2]

    @staticmethod
    def of(alarm) -> "_Spec":
        if alarm.comparison_operator not in OPERATORS:
            raise Unsupported(f"comparison operator {alarm.comparison_operator}")
        if getattr(alarm, "threshold_metric_id", None):
            raise Unsupported("anomaly detection (ThresholdMetricId)")
        if alarm.threshold is None:
            raise Unsupported("no threshold")
        n = int(alarm.evaluation_periods)
        m = int(alarm.datapoints_to_alarm) if alarm.datapoints_to_alarm else n
        treat = alarm.treat_missing_data or "missing"
        if not alarm.metric_data_queries and alarm.namespace == "AWS/DynamoDB":
            # "Alarms that evaluate metrics in the AWS/DynamoDB namespace always ignore missing data"
            treat = "ignore"
        statistic = None if alarm.metric_data_queries else (alarm.statistic or alarm.extended_statistic)
        return _Spec(n, m, float(alarm.threshold), alarm.comparison_operator, treat, _period_of(alarm), statistic)


def _period_of(alarm) -> int:
    """The alarm's period; a metric math alarm's is its metrics' (AWS requires one period)."""
    if not alarm.metric_data_queries:
        return int(alarm.period or 0)
    for query in alarm.metric_data_queries:
        if query.metric_stat is not None and query.metric_stat.period:
            return int(query.metric_stat.period)
    for query in alarm.metric_data_queries:
        if query.period:
            return int(query.period)
    return int(alarm.period or 0)


def _range_periods(alarm) -> int:
    return int(alarm.evaluation_periods or 1) + EXTRA_RANGE_PERIODS


# -- metric data --------------------------------------------------------------------------------


class _MetricIndex:
    """A backend's datapoints by metric, built at most once per pass and only if an alarm is
    due (moto keeps them in one list of every metric)."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self._by_metric: dict[tuple, list[tuple[float, object]]] | None = None

    def windows(
        self, namespace: str, name: str, dimensions, unit: str | None, windows: list[int], width: float
    ) -> list[list]:
        """The datapoints of each window (index k covers [k * width, (k + 1) * width))."""
        if self._by_metric is None:
            self._build()
        first, last = windows[0], windows[-1]
        found: list[list] = [[] for _ in windows]
        for epoch, datum in self._by_metric.get(_metric_key(namespace, name, dimensions), []):
            k = math.floor(epoch / width)
            if first <= k <= last and (unit is None or datum.unit == unit):
                found[k - first].append(datum)
        return found

    def _build(self) -> None:
        self._by_metric = {}
        for datum in _snapshot(lambda: list(self._backend.metric_data)):
            key = _metric_key(datum.namespace, datum.name, datum.dimensions)
            self._by_metric.setdefault(key, []).append((_epoch(datum.timestamp), datum))


def _metric_key(namespace: str, name: str, dimensions) -> tuple:
    # A metric is its namespace, name and exact set of dimensions.
    return namespace, name, frozenset((d.name, d.value) for d in dimensions or [])


def _epoch(timestamp: datetime) -> float:
    # moto keeps timestamps naive, in UTC.
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=timezone.utc)
    return timestamp.timestamp()


def _statistic(stat: str, datums: list) -> tuple[float | None, float]:
    """(the statistic, the sample count) of one window's datapoints; None: no datapoint."""
    raw = [float(d.value) for d in datums if isinstance(d, MetricDatum)]
    aggregated = [d for d in datums if isinstance(d, MetricAggregatedDatum)]
    samples = len(raw) + sum(float(a.sample_count) for a in aggregated)
    if not datums:
        return None, 0.0
    if stat == "Sum":
        return sum(raw) + sum(float(a.sum) for a in aggregated), samples
    if stat == "Average":
        total = sum(raw) + sum(float(a.sum) for a in aggregated)
        return (total / samples if samples else None), samples
    if stat == "Minimum":
        return min(raw + [float(a.min) for a in aggregated]), samples
    if stat == "Maximum":
        return max(raw + [float(a.max) for a in aggregated]), samples
    if stat == "SampleCount":
        return samples, samples
    percentile = PERCENTILE.match(stat or "")
    if percentile and 0 < float(percentile.group(1)) <= 100:
        # Only raw values give a percentile; StatisticValues sets cannot.
        if not raw:
            return None, samples
        ordered = sorted(raw)
        rank = math.ceil(float(percentile.group(1)) / 100 * len(ordered))
        return ordered[max(rank, 1) - 1], samples
    raise Unsupported(f"statistic {stat}")


@dataclass
class _Point:
    start: float  # the window's start, clock seconds
    value: float | None  # None: no datapoint
    samples: float | None = None


def _points(alarm, spec: _Spec, index: _MetricIndex, windows: list[int], width: float) -> list[_Point]:
    """The alarm's datapoint in each window of its evaluation range, oldest first."""
    starts = [k * width for k in windows]
    if not alarm.metric_data_queries:
        stat = alarm.statistic or alarm.extended_statistic
        if not stat:
            raise Unsupported("no statistic")
        per_window = index.windows(alarm.namespace, alarm.metric_name, alarm.dimensions, alarm.unit, windows, width)
        stats = [_statistic(stat, datums) for datums in per_window]
        return [_Point(start, value, samples) for start, (value, samples) in zip(starts, stats)]
    series = _MathAlarm(alarm.metric_data_queries, index, windows, width).result()
    return [_Point(start, value) for start, value in zip(starts, series)]


# -- metric math --------------------------------------------------------------------------------

Series = list  # list[float | None], one value per window

_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(\S))")


def _tokens(expression: str) -> list[tuple[str, object]]:
    tokens: list[tuple[str, object]] = []
    position = 0
    expression = expression.rstrip()
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if match is None:
            break
        number, name, symbol = match.groups()
        if number is not None:
            tokens.append(("number", float(number)))
        elif name is not None:
            tokens.append(("name", name))
        elif symbol is not None:
            if symbol not in "+-*/(),":
                raise Unsupported(f"'{symbol}' in expression {expression!r}")
            tokens.append(("symbol", symbol))
        position = match.end()
    tokens.append(("end", None))
    return tokens


class _Parser:
    """expression := term (('+' | '-') term)*;  term := unary (('*' | '/') unary)*;
    unary := '-' unary | '+' unary | primary;  primary := number | id | NAME '(' args ')' | '(' expression ')'.
    Produces nested tuples: ("number", v), ("id", name), ("neg", x), ("op", symbol, a, b),
    ("call", NAME, [args])."""

    def __init__(self, expression: str) -> None:
        self._expression = expression
        self._tokens = _tokens(expression)
        self._at = 0

    def parse(self) -> tuple:
        tree = self._sum()
        if self._peek() != ("end", None):
            raise Unsupported(f"expression {self._expression!r}: unexpected {self._peek()[1]!r}")
        return tree

    def _peek(self) -> tuple[str, object]:
        return self._tokens[self._at]

    def _take(self) -> tuple[str, object]:
        token = self._tokens[self._at]
        self._at += 1
        return token

    def _expect(self, symbol: str) -> None:
        if self._take() != ("symbol", symbol):
            raise Unsupported(f"expression {self._expression!r}: expected '{symbol}'")

    def _sum(self) -> tuple:
        tree = self._product()
        while self._peek() in (("symbol", "+"), ("symbol", "-")):
            tree = ("op", self._take()[1], tree, self._product())
        return tree

    def _product(self) -> tuple:
        tree = self._unary()
        while self._peek() in (("symbol", "*"), ("symbol", "/")):
            tree = ("op", self._take()[1], tree, self._unary())
        return tree

    def _unary(self) -> tuple:
        if self._peek() == ("symbol", "-"):
            self._take()
            return ("neg", self._unary())
        if self._peek() == ("symbol", "+"):
            self._take()
            return self._unary()
        return self._primary()

    def _primary(self) -> tuple:
        kind, value = self._take()
        if kind == "number":
            return ("number", value)
        if kind == "symbol" and value == "(":
            tree = self._sum()
            self._expect(")")
            return tree
        if kind == "name":
            if self._peek() == ("symbol", "("):
                self._take()
                arguments = [] if self._peek() == ("symbol", ")") else [self._sum()]
                while self._peek() == ("symbol", ","):
                    self._take()
                    arguments.append(self._sum())
                self._expect(")")
                return ("call", value, arguments)
            return ("id", value)
        raise Unsupported(f"expression {self._expression!r}: unexpected {value!r}")


class _MathAlarm:
    """The returned series of a metric math alarm, window by window."""

    def __init__(self, queries, index: _MetricIndex, windows: list[int], width: float) -> None:
        self._queries = {query.id: query for query in queries}
        self._order = list(queries)
        self._index = index
        self._windows = windows
        self._width = width
        self._done: dict[str, Series] = {}
        self._busy: set[str] = set()

    def result(self) -> Series:
        return self._series(_returned_query(self._order).id)

    def _series(self, query_id: str) -> Series:
        if query_id in self._done:
            return self._done[query_id]
        query = self._queries.get(query_id)
        if query is None:
            raise Unsupported(f"expression names an unknown id {query_id!r}")
        if query_id in self._busy:
            raise Unsupported(f"expression {query_id!r} refers to itself")
        self._busy.add(query_id)
        if query.metric_stat is not None:
            stat = query.metric_stat
            metric = stat.metric
            per_window = self._index.windows(
                metric.namespace, metric.metric_name, metric.dimensions, stat.unit, self._windows, self._width
            )
            series = [_statistic(stat.stat, datums)[0] for datums in per_window]
        elif query.expression:
            series = self._value(_Parser(query.expression).parse())
        else:
            raise Unsupported(f"query {query_id!r} has neither MetricStat nor Expression")
        self._busy.discard(query_id)
        self._done[query_id] = series
        return series

    def _value(self, tree: tuple) -> Series:
        kind = tree[0]
        if kind == "number":
            return [tree[1]] * len(self._windows)
        if kind == "id":
            return self._series(tree[1])
        if kind == "neg":
            return [None if v is None else -v for v in self._value(tree[1])]
        if kind == "op":
            return [_arithmetic(tree[1], a, b) for a, b in zip(self._value(tree[2]), self._value(tree[3]))]
        if kind == "call":
            return self._call(tree[1], tree[2])
        raise Unsupported(f"expression node {kind}")

    def _call(self, name: str, arguments: list[tuple]) -> Series:
        if name != "FILL":
            raise Unsupported(f"metric math function {name}")
        if len(arguments) != 2:
            raise Unsupported("FILL takes a series and a value")
        series, how = self._value(arguments[0]), arguments[1]
        if how == ("id", "REPEAT"):
            return _fill_repeat(series)
        if how == ("id", "LINEAR"):
            return _fill_linear(series)
        fill = self._value(how)
        return [v if v is not None else f for v, f in zip(series, fill)]


def _arithmetic(symbol: str, a: float | None, b: float | None) -> float | None:
    # A window without one of the operands, or a division by zero, has no datapoint.
    if a is None or b is None:
        return None
    if symbol == "+":
        return a + b
    if symbol == "-":
        return a - b
    if symbol == "*":
        return a * b
    return None if b == 0 else a / b


def _fill_repeat(series: Series) -> Series:
    filled, last = [], None
    for value in series:
        last = value if value is not None else last
        filled.append(last)
    return filled


def _fill_linear(series: Series) -> Series:
    known = [i for i, v in enumerate(series) if v is not None]
    filled = list(series)
    for left, right in zip(known, known[1:]):
        for i in range(left + 1, right):
            filled[i] = series[left] + (series[right] - series[left]) * (i - left) / (right - left)
    return filled


def _returned_query(queries: list):
    """The query whose result the alarm watches: ReturnData true (AWS's default when absent)."""
    explicit = [q for q in queries if q.return_data is not None and _truthy(q.return_data)]
    implicit = [q for q in queries if q.return_data is None]
    for candidates in (explicit, implicit):
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            expressions = [q for q in candidates if q.expression]
            return (expressions or candidates)[0]
    raise Unsupported("no query returns data")


# -- the decision: M of N and missing data ------------------------------------------------------


@dataclass
class _Decision:
    state: str | None  # None: the state stays
    used: list[_Point]  # real datapoints evaluated, oldest first
    filled: int = 0  # missing datapoints filled in by TreatMissingData
    kind: str = "threshold"  # threshold | premature | unknown


def _decide(points: list[_Point], spec: _Spec) -> _Decision:
    """The state per "How alarm state is evaluated when data is missing" (see the docstring)."""
    real = [p for p in points if p.value is not None]
    breaches = spec.breaches
    if len(real) >= spec.n:
        used = real[-spec.n:]
        count = sum(1 for p in used if breaches(p.value))
        return _Decision(ALARM if count >= spec.m else OK, used)
    fill = spec.n - len(real)
    breaching = sum(1 for p in real if breaches(p.value))
    if spec.treat == "breaching":
        return _Decision(ALARM if breaching + fill >= spec.m else OK, real, fill)
    if spec.treat == "notBreaching":
        return _Decision(ALARM if breaching >= spec.m else OK, real, fill)
    # missing, ignore (and anything else AWS would refuse)
    if not real:
        return _Decision(INSUFFICIENT_DATA if spec.treat == "missing" else None, [], fill, "unknown")
    if breaching >= spec.m:
        return _Decision(ALARM, real)
    if breaching == len(real):
        oldest = next(i for i, p in enumerate(points) if p.value is not None)
        if len(points) - oldest >= spec.m and spec.treat == "missing":
            return _Decision(ALARM, real, kind="premature")
        return _Decision(None, real)
    return _Decision(OK, real)


# -- reasons ------------------------------------------------------------------------------------


def _number(value: float) -> str:
    return repr(float(value))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _was(n: int) -> str:
    return "was" if n == 1 else "were"


def _reason_time(start: float) -> str:
    return datetime.fromtimestamp(start, timezone.utc).strftime("%d/%m/%y %H:%M:%S")


def _iso(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _reason(decision: _Decision, spec: _Spec) -> str:
    """AWS's StateReason, e.g. "Threshold Crossed: 3 out of the last 5 datapoints [12.0
    (04/12/26 15:00:00), …] were greater than the threshold (5.0) (minimum 3 datapoints for
    OK -> ALARM transition)."."""
    if decision.state == INSUFFICIENT_DATA:
        return f"Insufficient Data: {_count(spec.n, 'datapoint')} {_was(spec.n)} unknown."
    alarm = decision.state == ALARM
    listed = [p for p in reversed(decision.used) if spec.breaches(p.value) == alarm]
    wording = spec.wording if alarm else f"not {spec.wording}"
    filled = ""
    if decision.filled and spec.treat in ("breaching", "notBreaching"):
        treated = "Breaching" if spec.treat == "breaching" else "NonBreaching"
        filled = f"{_count(decision.filled, 'missing datapoint')} {_was(decision.filled)} treated as [{treated}]"
        if not decision.used:
            return (f"Threshold Crossed: no datapoints were received for {_count(decision.filled, 'period')} "
                    f"and {filled}.")
        filled = f" and {filled}"
    values = ", ".join(f"{_number(p.value)} ({_reason_time(p.start)})" for p in listed)
    if spec.n == 1 and len(decision.used) == 1 and not filled:
        return f"Threshold Crossed: 1 datapoint [{values}] was {wording} the threshold ({_number(spec.threshold)})."
    minimum = spec.m if alarm else max(spec.n - spec.m + 1, 1)
    transition = "OK -> ALARM" if alarm else "ALARM -> OK"
    return (
        f"Threshold Crossed: {len(listed)} out of the last {len(decision.used)} datapoints [{values}] "
        f"{_was(len(listed))} {wording} the threshold ({_number(spec.threshold)}){filled} "
        f"(minimum {_count(minimum, 'datapoint')} for {transition} transition)."
    )


def _reason_data(decision: _Decision, spec: _Spec, points: list[_Point], now: float) -> dict:
    """AWS's StateReasonData (JSON): recent datapoints oldest first, evaluated ones newest first."""
    data: dict = {"version": "1.0", "queryDate": _iso(now), "startDate": _iso(points[0].start)}
    if spec.statistic in SIMPLE_STATISTICS:
        data["statistic"] = spec.statistic
    elif spec.statistic:
        data["extendedStatistic"] = spec.statistic
    data["period"] = spec.period
    data["recentDatapoints"] = [p.value for p in decision.used]
    data["threshold"] = spec.threshold
    evaluated = []
    for p in reversed(decision.used):
        entry: dict = {"timestamp": _iso(p.start)}
        if p.samples is not None:
            entry["sampleCount"] = p.samples
        entry["value"] = p.value
        evaluated.append(entry)
    data["evaluatedDatapoints"] = evaluated
    return data


def _latest_from_reason_data(reason_data: str | None) -> float | None:
    """The latest datapoint named in StateReasonData (SetAlarmState: "you must include
    information in the StateReasonData parameter to enable the policy to take the correct action")."""
    try:
        recent = json.loads(reason_data or "{}").get("recentDatapoints") or []
        return float(recent[-1]) if recent else None
    except (ValueError, TypeError, AttributeError):
        return None


# -- SNS notifications --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _region_names() -> dict[str, str]:
    # botocore's endpoint data has each region's long name ("US East (N. Virginia)").
    data = botocore.loaders.create_loader().load_data("endpoints")
    return {
        code: info.get("description", code)
        for partition in data.get("partitions", [])
        for code, info in partition.get("regions", {}).items()
    }


def _notify(topic_arn: str, account: str, region: str, alarm, old: str, now: float) -> None:
    """Publish AWS's alarm notification to an SNS topic.
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-sns-notifications.html"""
    parts = topic_arn.split(":")
    topic_region, topic_account = parts[3], parts[4]
    region_name = _region_names().get(region, region)
    message = {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": account,
        "AlarmConfigurationUpdatedTimestamp": _iso(_epoch(alarm.configuration_updated_timestamp)),
        "NewStateValue": alarm.state_value,
        "NewStateReason": alarm.state_reason,
        "StateChangeTime": _iso(now),
        "Region": region_name,
        "AlarmArn": alarm.alarm_arn,
        "OldStateValue": old,
        "OKActions": list(alarm.ok_actions or []),
        "AlarmActions": list(alarm.alarm_actions or []),
        "InsufficientDataActions": list(alarm.insufficient_data_actions or []),
        "Trigger": _trigger(alarm),
    }
    # SNS refuses subjects over 100 characters.
    subject = f'{alarm.state_value}: "{alarm.name}" in {region_name}'[:100]
    backend = sns_backends[topic_account][topic_region]
    backend.publish(json.dumps(message), arn=topic_arn, subject=subject)


def _dimensions(dimensions) -> list[dict]:
    return [{"value": d.value, "name": d.name} for d in dimensions or []]


def _trigger(alarm) -> dict:
    trigger: dict = {}
    if not alarm.metric_data_queries:
        trigger.update({"MetricName": alarm.metric_name, "Namespace": alarm.namespace})
        if alarm.extended_statistic:
            trigger.update({"StatisticType": "ExtendedStatistic", "ExtendedStatistic": alarm.extended_statistic})
        else:
            statistic = re.sub(r"(?<!^)(?=[A-Z])", "_", alarm.statistic or "").upper()
            trigger.update({"StatisticType": "Statistic", "Statistic": statistic})
        trigger.update({"Unit": alarm.unit, "Dimensions": _dimensions(alarm.dimensions)})
    trigger["Period"] = _period_of(alarm)
    trigger["EvaluationPeriods"] = alarm.evaluation_periods
    if alarm.datapoints_to_alarm:
        trigger["DatapointsToAlarm"] = alarm.datapoints_to_alarm
    trigger.update({
        "ComparisonOperator": alarm.comparison_operator,
        "Threshold": alarm.threshold,
        "TreatMissingData": alarm.treat_missing_data or "",
        "EvaluateLowSampleCountPercentile": alarm.evaluate_low_sample_count_percentile or "",
    })
    if alarm.metric_data_queries:
        trigger["Metrics"] = [_trigger_metric(q) for q in alarm.metric_data_queries]
    return trigger


def _trigger_metric(query) -> dict:
    entry: dict = {"Id": query.id}
    if query.expression:
        entry["Expression"] = query.expression
    if query.label:
        entry["Label"] = query.label
    if query.metric_stat is not None:
        stat = query.metric_stat
        entry["MetricStat"] = {
            "Metric": {
                "Dimensions": _dimensions(stat.metric.dimensions),
                "MetricName": stat.metric.metric_name,
                "Namespace": stat.metric.namespace,
            },
            "Period": stat.period,
            "Stat": stat.stat,
        }
        if stat.unit:
            entry["MetricStat"]["Unit"] = stat.unit
    entry["ReturnData"] = query.return_data is None or _truthy(query.return_data)
    return entry


# -- Auto Scaling policies ----------------------------------------------------------------------

GroupKey = tuple[str, str, str]  # (account, region, group name)


@dataclass
class _Policy:
    account: str
    region: str
    policy: object
    group: object


class _Scaling:
    """Executes scaling policies for alarms, keeping what AWS keeps between executions: the
    instances still warming up (step policies) and each group's cooldown (simple policies)."""

    def __init__(self, activities: Activities) -> None:
        self._activities = activities
        self._warming: dict[GroupKey, dict[str, float]] = {}
        self._cooldown_until: dict[GroupKey, float] = {}

    def reset(self) -> None:
        self._warming.clear()
        self._cooldown_until.clear()

    def execute(self, policy_arn: str, alarm, breach: float | None, now: float, scale: float) -> None:
        found = _find_policy(policy_arn)
        policy, group = found.policy, found.group
        key = (found.account, found.region, group.name)
        kind = policy.policy_type or "SimpleScaling"
        if kind == "StepScaling":
            desired = self._step(key, policy, group, alarm, breach, now)
        elif kind == "SimpleScaling":
            desired = self._simple(key, policy, group, now)
        else:
            raise Unsupported(f"{kind} policies are not executed by alarms")
        if desired is None:
            return
        desired = max(int(group.min_size), min(int(group.max_size), desired))
        before = int(group.desired_capacity or 0)
        if desired == before:
            return
        launched, terminated = _apply(group, desired)
        if kind == "StepScaling":
            warmup = _seconds(policy.estimated_instance_warmup)
            if warmup is None:
                warmup = _seconds(getattr(group, "default_instance_warmup", None))
            if warmup is None:
                warmup = _seconds(group.default_cooldown) or 0.0
            warming = self._warming.setdefault(key, {})
            for instance_id in launched:
                warming[instance_id] = now + warmup * scale
        else:
            cooldown = _seconds(policy.cooldown)
            if cooldown is None:
                cooldown = _seconds(group.default_cooldown) or 0.0
            self._cooldown_until[key] = now + cooldown * scale
        self._record(found, alarm, before, desired, launched, terminated, now)

    def _step(self, key: GroupKey, policy, group, alarm, breach: float | None, now: float) -> int | None:
        if breach is None:
            raise Unsupported("no datapoint to size the breach; step policy not executed")
        threshold = float(alarm.threshold)
        above = OPERATORS.get(alarm.comparison_operator, (None, breach >= threshold))[1]
        adjustment = _step_adjustment(policy.step_adjustments or [], breach - threshold, above)
        if adjustment is None:
            raise Unsupported(f"no step adjustment for metric value {breach} and breach threshold {threshold}")
        ids = _instance_ids(group)
        warming = self._warming_in(key, ids, now)
        desired = int(group.desired_capacity or 0)
        # "Current capacity": instances that have passed their warm-up.
        current = len(ids) - len(warming)
        target = _adjusted(policy.adjustment_type, current, adjustment, policy.min_adjustment_magnitude)
        if target > current:
            # Warming instances already answer part of the breach: only add what is missing.
            return target if target > desired else None
        if target < current and target < desired:
            # "all scale-in activities initiated by scaling policies are blocked until the
            # instances finish warming up"
            return None if warming else target
        return None

    def _simple(self, key: GroupKey, policy, group, now: float) -> int | None:
        if now < self._cooldown_until.get(key, 0.0):
            return None  # the group's cooldown: further alarms are not answered yet
        if policy.scaling_adjustment is None:
            raise Unsupported("simple policy without ScalingAdjustment")
        current = int(group.desired_capacity or 0)
        adjustment = int(policy.scaling_adjustment)
        return _adjusted(policy.adjustment_type, current, adjustment, policy.min_adjustment_magnitude)

    def _warming_in(self, key: GroupKey, ids: list[str], now: float) -> set[str]:
        """Instances of the group still warming up (the finished and the gone are forgotten)."""
        warming = self._warming.get(key, {})
        present = set(ids)
        for instance_id, until in list(warming.items()):
            if until <= now or instance_id not in present:
                del warming[instance_id]
        return set(warming)

    def _record(
        self, found: _Policy, alarm, before: int, after: int, launched: list[str], terminated: list[str], now: float
    ) -> None:
        """One scaling activity per instance launched or terminated, in AWS's words."""
        at = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        trigger = (
            f"At {at} a monitor alarm {alarm.name} in state {alarm.state_value} triggered policy "
            f"{found.policy.name} changing the desired capacity from {before} to {after}."
        )
        for instance_id in launched:
            cause = (
                f"{trigger}  At {at} an instance was started in response to a difference between desired "
                f"and actual capacity, increasing the capacity from {before} to {after}."
            )
            description = f"Launching a new EC2 instance: {instance_id}"
            self._activities.record(found.account, found.region, found.group, description, cause)
        for instance_id in terminated:
            cause = (
                f"{trigger}  At {at} an instance was taken out of service in response to a difference between "
                f"desired and actual capacity, shrinking the capacity from {before} to {after}.  "
                f"At {at} instance {instance_id} was selected for termination."
            )
            description = f"Terminating EC2 instance: {instance_id}"
            self._activities.record(found.account, found.region, found.group, description, cause)


def _find_policy(policy_arn: str) -> _Policy:
    """moto's policy (and group) of a PolicyARN, `arn:aws:autoscaling:<region>:<account>:
    scalingPolicy:<id>:autoScalingGroupName/<group>:policyName/<name>` (moto's id is fixed, so
    the group and policy names decide)."""
    parts = policy_arn.split(":", 6)
    rest = parts[6] if len(parts) == 7 else ""
    group_at, policy_at = rest.find(":autoScalingGroupName/"), rest.rfind(":policyName/")
    if group_at < 0 or policy_at < group_at:
        raise Unsupported("not a scaling policy ARN")
    region, account = parts[3], parts[4]
    group_name = rest[group_at + len(":autoScalingGroupName/"):policy_at]
    policy_name = rest[policy_at + len(":policyName/"):]
    backend = dict.get(dict.get(autoscaling_backends, account) or {}, region)
    if backend is None:
        raise Unsupported("no such scaling policy")
    policies = _snapshot(lambda: list(backend.policies.values()))
    policy = next(
        (p for p in policies if p.name == policy_name and p.auto_scaling_group_name == group_name), None
    )
    group = backend.autoscaling_groups.get(group_name)
    if policy is None or group is None:
        raise Unsupported("no such scaling policy")
    return _Policy(account, region, policy, group)


def _instance_ids(group) -> list[str]:
    return [state.instance.id for state in _snapshot(lambda: list(group.instance_states))]


def _apply(group, desired: int) -> tuple[list[str], list[str]]:
    """Set the group's desired capacity through moto (it launches or terminates instances and
    updates the attached load balancers and target groups); returns (launched, terminated)."""
    before = set(_instance_ids(group))
    group.set_desired_capacity(desired)
    after = _instance_ids(group)
    return [i for i in after if i not in before], sorted(before - set(after))


def _seconds(value) -> float | None:
    if value is None or value == "":
        return None
    return float(value)


def _bound(value, default: float) -> float:
    return default if value is None or value == "" else float(value)


def _step_adjustment(steps: list[dict], breach: float, above: bool) -> int | None:
    """The ScalingAdjustment of the step holding `breach` (metric minus threshold). Above the
    threshold the lower bound is inclusive and the upper exclusive; below it, the reverse.
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_StepAdjustment.html"""
    for step in steps:
        lower = _bound(step.get("MetricIntervalLowerBound"), -math.inf)
        upper = _bound(step.get("MetricIntervalUpperBound"), math.inf)
        inside = lower <= breach < upper if above else lower < breach <= upper
        if inside:
            return int(step["ScalingAdjustment"])
    return None


def _adjusted(adjustment_type: str | None, current: int, adjustment: int, min_magnitude) -> int:
    """The capacity a policy asks for.
    https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-scaling-simple-step.html#as-scaling-adjustment"""
    if adjustment_type == "ExactCapacity":
        return adjustment
    if adjustment_type == "PercentChangeInCapacity":
        raw = current * adjustment / 100
        # Between 0 and 1 rounds to 1 (and -1 for -1..0); larger values toward zero.
        change = 1 if 0 < raw < 1 else -1 if -1 < raw < 0 else int(raw)
        magnitude = int(min_magnitude or 0)
        if magnitude and abs(change) < magnitude:
            change = magnitude if adjustment > 0 else -magnitude
        return current + change
    return current + adjustment
