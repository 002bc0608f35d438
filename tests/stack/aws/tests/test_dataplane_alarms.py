"""The data plane's alarm evaluator (plinth_aws/dataplane/alarms.py) against moto in-process,
with a clock the tests move: no server, no sleeping. Each test cites the AWS page it follows;
"Using Amazon CloudWatch alarms" is
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import boto3
import pytest
from moto import mock_aws
from moto.autoscaling.models import autoscaling_backends
from moto.core.base_backend import BackendDict

from conftest import IMAGE_ID
from plinth_aws.dataplane.activities import Activities
from plinth_aws.dataplane.alarms import AlarmEvaluator, _adjusted

REGION = "us-east-1"
ACCOUNT = "123456789012"
T0 = datetime(2026, 12, 4, 15, 0, tzinfo=timezone.utc).timestamp()  # a multiple of 60 s
NAMESPACE = "Plinth/Test"
HIGH, LOW = 10.0, 1.0  # breaching / not breaching a threshold of 5 (GreaterThanThreshold)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class World:
    """moto's clients, an evaluator with a fake clock, and helpers to walk periods."""

    def __init__(self, clients: dict, scale: float = 1.0) -> None:
        self.clients = clients
        self.cw = clients["cloudwatch"]
        self.clock = Clock(T0 + 1)
        self.scale = scale
        self.activities = Activities()
        self.evaluator = AlarmEvaluator(self.activities, lambda: self.scale, clock=self.clock)

    @property
    def period(self) -> float:
        return 60 * self.scale

    def put(self, value: float, at: float | None = None, name: str = "Load", dimensions: dict | None = None) -> None:
        dims = [{"Name": k, "Value": v} for k, v in (dimensions or {"Service": "web"}).items()]
        when = datetime.fromtimestamp(self.clock.now if at is None else at, timezone.utc)
        self.cw.put_metric_data(Namespace=NAMESPACE, MetricData=[
            {"MetricName": name, "Value": value, "Timestamp": when, "Dimensions": dims}])

    def alarm(self, name: str, **settings) -> None:
        arguments = {
            "AlarmName": name, "Namespace": NAMESPACE, "MetricName": "Load", "Statistic": "Average",
            "Dimensions": [{"Name": "Service", "Value": "web"}], "Period": 60, "EvaluationPeriods": 1,
            "Threshold": 5.0, "ComparisonOperator": "GreaterThanThreshold",
        }
        arguments.update(settings)
        self.cw.put_metric_alarm(**arguments)

    def state(self, name: str) -> str:
        return self.cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"]

    def reason(self, name: str) -> str:
        return self.cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateReason"]

    def next_period(self, *values: float, **put) -> None:
        """Put `values` in the current period, then let it complete and evaluate."""
        for value in values:
            self.put(value, **put)
        self.clock.now += self.period
        self.evaluator.evaluate()


@pytest.fixture(scope="module")
def clients():
    with mock_aws():  # dummy credentials of its own
        yield {service: boto3.client(service, region_name=REGION)
               for service in ("cloudwatch", "sns", "sqs", "ec2", "autoscaling")}


@pytest.fixture
def world(clients) -> World:
    BackendDict.reset()
    return World(clients)


# -- states and thresholds ------------------------------------------------------------------------


def test_a_new_alarm_is_insufficient_data_until_evaluated_then_ok_or_alarm(world):
    # https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
    # ("When this operation creates an alarm, the alarm state is immediately set to INSUFFICIENT_DATA")
    world.alarm("load")
    world.evaluator.evaluate()
    assert world.state("load") == "INSUFFICIENT_DATA"  # moto says OK

    world.next_period(LOW)
    assert world.state("load") == "OK"
    assert world.reason("load") == "Threshold Crossed: 1 datapoint [1.0 (04/12/26 15:00:00)] was not greater than the threshold (5.0)."

    world.next_period(HIGH)
    assert world.state("load") == "ALARM"
    alarm = world.cw.describe_alarms(AlarmNames=["load"])["MetricAlarms"][0]
    data = json.loads(alarm["StateReasonData"])
    assert data["recentDatapoints"] == [HIGH] and data["threshold"] == 5.0 and data["statistic"] == "Average"
    assert data["evaluatedDatapoints"] == [{"timestamp": "2026-12-04T15:01:00.000+0000", "sampleCount": 1.0, "value": HIGH}]


def test_only_the_metric_with_exactly_the_alarms_dimensions_counts(world):
    # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html#Dimension
    # ("CloudWatch treats each unique combination of dimensions as a separate metric")
    world.alarm("load")
    world.evaluator.evaluate()
    world.put(HIGH, dimensions={"Service": "web", "Zone": "a"})
    world.put(HIGH, dimensions={"Service": "api"})
    world.next_period(LOW)
    assert world.state("load") == "OK"


@pytest.mark.parametrize("operator,value,state", [
    ("GreaterThanThreshold", 5.0, "OK"),
    ("GreaterThanThreshold", 5.5, "ALARM"),
    ("GreaterThanOrEqualToThreshold", 5.0, "ALARM"),
    ("GreaterThanOrEqualToThreshold", 4.5, "OK"),
    ("LessThanThreshold", 5.0, "OK"),
    ("LessThanThreshold", 4.5, "ALARM"),
    ("LessThanOrEqualToThreshold", 5.0, "ALARM"),
    ("LessThanOrEqualToThreshold", 5.5, "OK"),
])
def test_each_comparison_operator(world, operator, value, state):
    # https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html (ComparisonOperator)
    world.alarm("load", ComparisonOperator=operator)
    world.evaluator.evaluate()
    world.next_period(value)
    assert world.state("load") == state


def test_m_out_of_n_needs_m_breaching_datapoints_within_the_last_n(world):
    # "Using Amazon CloudWatch alarms", Evaluating an alarm: Datapoints to Alarm (M) out of
    # Evaluation Periods (N); the breaching datapoints don't have to be consecutive.
    world.alarm("load", EvaluationPeriods=3, DatapointsToAlarm=2)
    world.evaluator.evaluate()
    world.next_period(HIGH)
    world.next_period(LOW)
    assert world.state("load") == "OK"  # - - - X 0: one of M breaching (as the table's 0 - X - -)
    world.next_period(HIGH)  # X 0 X
    assert world.state("load") == "ALARM"
    assert world.reason("load") == (
        "Threshold Crossed: 2 out of the last 3 datapoints [10.0 (04/12/26 15:02:00), 10.0 (04/12/26 15:00:00)] "
        "were greater than the threshold (5.0) (minimum 2 datapoints for OK -> ALARM transition).")
    world.next_period(LOW)  # 0 X 0
    assert world.state("load") == "OK"
    assert world.reason("load").endswith("(minimum 2 datapoints for ALARM -> OK transition).")


# "How alarm state is evaluated when data is missing", the two tables of "Using Amazon CloudWatch
# alarms": the 5 most recent datapoints (most recent on the right; 0 not breaching, X breaching,
# - missing) and the state for missing / ignore / breaching / notBreaching. "keep": Retain current
# state (here INSUFFICIENT_DATA, the state of a new alarm).
MISSING_DATA_TABLE = [
    # Datapoints to Alarm 3, Evaluation Periods 3
    (3, 3, "0 - X - X", ("OK", "OK", "OK", "OK")),
    (3, 3, "0 - - - -", ("OK", "OK", "OK", "OK")),
    (3, 3, "- - - - -", ("INSUFFICIENT_DATA", "keep", "ALARM", "OK")),
    (3, 3, "0 X X - X", ("ALARM", "ALARM", "ALARM", "ALARM")),
    (3, 3, "- - X - -", ("ALARM", "keep", "ALARM", "OK")),
    # Datapoints to Alarm 2, Evaluation Periods 3
    (3, 2, "0 - X - X", ("ALARM", "ALARM", "ALARM", "ALARM")),
    (3, 2, "0 0 X 0 X", ("ALARM", "ALARM", "ALARM", "ALARM")),
    (3, 2, "0 - X - -", ("OK", "OK", "ALARM", "OK")),
    (3, 2, "- - - - 0", ("OK", "OK", "ALARM", "OK")),
    (3, 2, "- - X - -", ("ALARM", "keep", "ALARM", "OK")),
]


@pytest.mark.parametrize("n,m,datapoints,expected", MISSING_DATA_TABLE)
def test_missing_data_follows_the_aws_table(world, n, m, datapoints, expected):
    treatments = ("missing", "ignore", "breaching", "notBreaching")
    for treat in treatments:
        world.alarm(treat, EvaluationPeriods=n, DatapointsToAlarm=m, TreatMissingData=treat)
    world.evaluator.evaluate()
    for i, point in enumerate(datapoints.split()):
        if point != "-":
            world.put(HIGH if point == "X" else LOW, at=T0 + 60 * i + 10)
    # One evaluation, after the fifth period: all five are in its evaluation range.
    world.clock.now = T0 + 5 * 60 + 1
    world.evaluator.evaluate()
    states = tuple(world.state(treat) for treat in treatments)
    assert states == tuple("INSUFFICIENT_DATA" if e == "keep" else e for e in expected)


def test_missing_data_reasons(world):
    world.alarm("breaching", TreatMissingData="breaching")
    world.alarm("missing")
    world.evaluator.evaluate()
    world.next_period(LOW)
    assert world.state("missing") == "OK"
    for _ in range(3):  # the evaluation range: 1 evaluation period + 2
        world.next_period()
    assert world.reason("breaching") == (
        "Threshold Crossed: no datapoints were received for 1 period and 1 missing datapoint was treated as [Breaching].")
    assert world.state("missing") == "INSUFFICIENT_DATA"
    assert world.reason("missing") == "Insufficient Data: 1 datapoint was unknown."


def test_percentile_statistic_over_raw_values(world):
    # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html#Percentiles
    arguments = {
        "Namespace": NAMESPACE, "MetricName": "Latency", "Dimensions": [{"Name": "Service", "Value": "web"}],
        "Period": 60, "EvaluationPeriods": 1, "Threshold": 8.5, "ComparisonOperator": "GreaterThanThreshold",
    }
    world.cw.put_metric_alarm(AlarmName="p90", ExtendedStatistic="p90", **arguments)
    world.cw.put_metric_alarm(AlarmName="p50", ExtendedStatistic="p50", **arguments)
    world.cw.put_metric_alarm(AlarmName="max", Statistic="Maximum", **arguments)
    world.evaluator.evaluate()
    for value in range(1, 11):
        world.put(float(value), name="Latency")
    # A StatisticValues set counts for Maximum but can give no percentile.
    world.cw.put_metric_data(Namespace=NAMESPACE, MetricData=[{
        "MetricName": "Latency", "Dimensions": [{"Name": "Service", "Value": "web"}],
        "Timestamp": datetime.fromtimestamp(world.clock.now, timezone.utc),
        "StatisticValues": {"SampleCount": 2, "Sum": 200, "Minimum": 100, "Maximum": 100}}])
    world.next_period()
    assert (world.state("p90"), world.state("p50"), world.state("max")) == ("ALARM", "OK", "ALARM")
    assert "[9.0 (04/12/26 15:00:00)]" in world.reason("p90")


# -- metric math ---------------------------------------------------------------------------------

PLINTH_5XX = "100 * (FILL(elb, 0) + FILL(target, 0)) / requests"


def _math_alarm(world: World, name: str, expression: str, lb: str, treat: str = "missing") -> None:
    def metric(query_id: str, metric_name: str) -> dict:
        return {"Id": query_id, "ReturnData": False, "MetricStat": {"Metric": {
            "Namespace": "AWS/ApplicationELB", "MetricName": metric_name,
            "Dimensions": [{"Name": "LoadBalancer", "Value": lb}]}, "Period": 60, "Stat": "Sum"}}

    world.cw.put_metric_alarm(
        AlarmName=name, EvaluationPeriods=1, Threshold=5.0, ComparisonOperator="GreaterThanThreshold",
        TreatMissingData=treat, Metrics=[
            {"Id": "errors", "Expression": expression, "Label": "5xx %", "ReturnData": True},
            metric("elb", "HTTPCode_ELB_5XX_Count"), metric("target", "HTTPCode_Target_5XX_Count"),
            metric("requests", "RequestCount")])


def _elb(world: World, lb: str, **counts: float) -> None:
    names = {"elb": "HTTPCode_ELB_5XX_Count", "target": "HTTPCode_Target_5XX_Count", "requests": "RequestCount"}
    for key, value in counts.items():
        world.cw.put_metric_data(Namespace="AWS/ApplicationELB", MetricData=[{
            "MetricName": names[key], "Value": value, "Dimensions": [{"Name": "LoadBalancer", "Value": lb}],
            "Timestamp": datetime.fromtimestamp(world.clock.now, timezone.utc)}])


def test_metric_math_with_fill(world):
    # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/using-metric-math.html (FILL)
    _math_alarm(world, "5xx", PLINTH_5XX, "app/a")
    _math_alarm(world, "5xx-no-fill", "100 * (elb + target) / requests", "app/a")
    world.evaluator.evaluate()

    _elb(world, "app/a", elb=1, requests=5)
    _elb(world, "app/a", requests=5)  # Sum of requests: 10; no target 5xx at all
    world.next_period()
    assert world.state("5xx") == "ALARM"
    assert world.reason("5xx").startswith("Threshold Crossed: 1 datapoint [10.0 (04/12/26 15:00:00)]")
    assert world.state("5xx-no-fill") == "INSUFFICIENT_DATA"  # target has no datapoint: nor has the sum

    _elb(world, "app/a", requests=20)
    world.next_period()
    assert world.state("5xx") == "OK"  # FILL makes the missing counts 0: 0 %


def test_metric_math_division_by_zero_and_missing_operand_give_no_datapoint(world):
    _math_alarm(world, "by-zero", PLINTH_5XX, "app/b", treat="breaching")
    _math_alarm(world, "no-requests", PLINTH_5XX, "app/c", treat="breaching")
    world.cw.put_metric_alarm(
        AlarmName="negated", EvaluationPeriods=1, Threshold=4.0, ComparisonOperator="GreaterThanThreshold",
        Metrics=[{"Id": "e", "Expression": "-(m - 20) / 2", "ReturnData": True},
                 {"Id": "m", "ReturnData": False, "MetricStat": {"Metric": {
                     "Namespace": NAMESPACE, "MetricName": "Load", "Dimensions": [{"Name": "Service", "Value": "web"}]},
                     "Period": 60, "Stat": "Sum"}}])
    world.evaluator.evaluate()
    _elb(world, "app/b", elb=3, requests=0)
    _elb(world, "app/c", elb=3)
    world.put(10.0)
    world.next_period()
    # No datapoint, treated as breaching.
    expected = "Threshold Crossed: no datapoints were received for 1 period and 1 missing datapoint was treated as [Breaching]."
    assert (world.state("by-zero"), world.reason("by-zero")) == ("ALARM", expected)
    assert (world.state("no-requests"), world.reason("no-requests")) == ("ALARM", expected)
    assert world.state("negated") == "ALARM"
    assert "[5.0 (04/12/26 15:00:00)]" in world.reason("negated")


# -- notifications ---------------------------------------------------------------------------------


def test_state_changes_notify_the_sns_topic_with_the_alarm_message(world):
    # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-sns-notifications.html
    sns, sqs = world.clients["sns"], world.clients["sqs"]
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    world.alarm("cpu-high", AlarmDescription="CPU is high", AlarmActions=[topic], OKActions=[topic])
    world.alarm("quiet", AlarmActions=[topic], ActionsEnabled=False)
    world.evaluator.evaluate()

    def received() -> list[dict]:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        for message in messages:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return [json.loads(m["Body"]) for m in messages]

    world.next_period(HIGH)
    world.next_period(HIGH)  # still ALARM: SNS is told once
    [envelope] = received()
    assert envelope["Subject"] == 'ALARM: "cpu-high" in US East (N. Virginia)'
    message = json.loads(envelope["Message"])
    assert {k: message[k] for k in ("AlarmName", "AlarmDescription", "AWSAccountId", "NewStateValue",
                                    "OldStateValue", "Region", "StateChangeTime")} == {
        "AlarmName": "cpu-high", "AlarmDescription": "CPU is high", "AWSAccountId": ACCOUNT,
        "NewStateValue": "ALARM", "OldStateValue": "INSUFFICIENT_DATA", "Region": "US East (N. Virginia)",
        "StateChangeTime": "2026-12-04T15:01:01.000+0000"}
    assert message["NewStateReason"].startswith("Threshold Crossed: 1 datapoint [10.0")
    assert message["Trigger"] == {
        "MetricName": "Load", "Namespace": NAMESPACE, "StatisticType": "Statistic", "Statistic": "AVERAGE",
        "Unit": None, "Dimensions": [{"value": "web", "name": "Service"}], "Period": 60, "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanThreshold", "Threshold": 5.0, "TreatMissingData": "",
        "EvaluateLowSampleCountPercentile": ""}

    # SetAlarmState runs the new state's actions too; the next evaluation sets the state back.
    # https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_SetAlarmState.html
    world.cw.set_alarm_state(AlarmName="cpu-high", StateValue="OK", StateReason="testing")
    world.next_period(HIGH)
    assert [json.loads(e["Message"])["NewStateValue"] for e in received()] == ["OK", "ALARM"]
    assert world.state("quiet") == "ALARM"  # evaluated, but its actions are disabled: nothing sent


# -- scaling policies ------------------------------------------------------------------------------


def _group(world: World, name: str = "web", max_size: int = 3) -> None:
    ec2, autoscaling = world.clients["ec2"], world.clients["autoscaling"]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    ec2.create_launch_template(LaunchTemplateName=f"{name}-template", LaunchTemplateData={"ImageId": IMAGE_ID})
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateName": f"{name}-template"},
        MinSize=1, MaxSize=max_size, DesiredCapacity=1, VPCZoneIdentifier=subnet)


def _policy_arn(world: World, group: str, policy: str) -> str:
    # moto 5.2.5 leaves PolicyARN out of PutScalingPolicy's answer; DescribePolicies has it.
    policies = world.clients["autoscaling"].describe_policies(AutoScalingGroupName=group, PolicyNames=[policy])
    return policies["ScalingPolicies"][0]["PolicyARN"]


def _desired(world: World, group: str = "web") -> int:
    return autoscaling_backends[ACCOUNT][REGION].autoscaling_groups[group].desired_capacity


def test_step_policies_scale_by_the_breach_with_warm_up_clamped_and_reinvoked_each_period(world):
    # https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-scaling-simple-step.html (step
    # adjustments; instance warmup: warming instances are not current capacity, scale-in waits)
    # and "Using Amazon CloudWatch alarms" (Auto Scaling actions run again every minute in the state).
    world.scale = 0.1  # 60 s periods last 6 s; the 300 s warm-up 30 s
    autoscaling = world.clients["autoscaling"]
    _group(world)
    autoscaling.put_scaling_policy(
        AutoScalingGroupName="web", PolicyName="out", PolicyType="StepScaling", AdjustmentType="ChangeInCapacity",
        MetricAggregationType="Average", EstimatedInstanceWarmup=300, StepAdjustments=[
            {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 20, "ScalingAdjustment": 1},
            {"MetricIntervalLowerBound": 20, "ScalingAdjustment": 3}])
    autoscaling.put_scaling_policy(
        AutoScalingGroupName="web", PolicyName="in", PolicyType="StepScaling", AdjustmentType="ChangeInCapacity",
        MetricAggregationType="Average", EstimatedInstanceWarmup=300, StepAdjustments=[
            {"MetricIntervalUpperBound": 0, "ScalingAdjustment": -1}])
    world.alarm("high", MetricName="CPU", Threshold=50.0, AlarmActions=[_policy_arn(world, "web", "out")])
    world.alarm("low", MetricName="CPU", Threshold=20.0, ComparisonOperator="LessThanThreshold",
                AlarmActions=[_policy_arn(world, "web", "in")])
    world.evaluator.evaluate()

    desired = []
    for cpu in [55, 55, 75, 75, 75, 10, 10, 10, 10, 10]:
        world.next_period(float(cpu), name="CPU")
        desired.append(_desired(world))
    assert desired == [
        2,  # breach 5, the first step: +1
        2,  # re-invoked, breach 5: the new instance is warming up, current capacity 1 + 1 = 2
        3,  # re-invoked, breach 25: 1 warmed-up instance + 3 = 4, clamped to MaxSize 3
        3, 3,  # 1 + 3 again (both new instances are warming up): nothing more
        3, 3,  # low CPU: scale-in waits until the second new instance has warmed up (30 s)
        2, 1,  # then -1 a period, down to MinSize
        1,
    ]

    activities = world.activities.of(ACCOUNT, REGION, "web")
    launches = [a for a in activities if a.description.startswith("Launching a new EC2 instance: i-")]
    terminations = [a for a in activities if a.description.startswith("Terminating EC2 instance: i-")]
    assert (len(launches), len(terminations)) == (2, 2)
    first = min(launches, key=lambda a: a.cause)
    assert first.cause == (
        "At 2026-12-04T15:00:07Z a monitor alarm high in state ALARM triggered policy out changing the desired "
        "capacity from 1 to 2.  At 2026-12-04T15:00:07Z an instance was started in response to a difference "
        "between desired and actual capacity, increasing the capacity from 1 to 2.")
    assert "was selected for termination." in terminations[0].cause
    group = world.clients["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=["web"])
    assert len(group["AutoScalingGroups"][0]["Instances"]) == 1  # moto launched and terminated them


def test_simple_policy_waits_for_its_cooldown(world):
    # https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-scaling-cooldowns.html
    world.scale = 0.1
    _group(world, max_size=10)
    world.clients["autoscaling"].put_scaling_policy(
        AutoScalingGroupName="web", PolicyName="add", AdjustmentType="ChangeInCapacity", ScalingAdjustment=1, Cooldown=120)
    world.alarm("high", AlarmActions=[_policy_arn(world, "web", "add")])
    world.evaluator.evaluate()
    desired = []
    for _ in range(5):
        world.next_period(HIGH)
        desired.append(_desired(world))
    assert desired == [2, 2, 3, 3, 4]  # a 120 s cooldown is two 60 s periods


@pytest.mark.parametrize("adjustment_type,current,adjustment,magnitude,expected", [
    ("ChangeInCapacity", 3, 2, None, 5),
    ("ExactCapacity", 3, 7, None, 7),
    ("PercentChangeInCapacity", 10, 25, None, 12),  # 2.5 rounds down to 2
    ("PercentChangeInCapacity", 2, 25, None, 3),  # 0.5 rounds up to 1
    ("PercentChangeInCapacity", 2, -25, None, 1),  # -0.5 rounds to -1
    ("PercentChangeInCapacity", 10, -67, None, 4),  # -6.7 rounds to -6
    ("PercentChangeInCapacity", 10, 10, 2, 12),  # at least MinAdjustmentMagnitude
])
def test_adjustment_types(adjustment_type, current, adjustment, magnitude, expected):
    # https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-scaling-simple-step.html#as-scaling-adjustment
    assert _adjusted(adjustment_type, current, adjustment, magnitude) == expected


# -- configuration and time ------------------------------------------------------------------------


def test_an_updated_alarm_keeps_its_state_and_is_evaluated_again(world):
    # https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
    # ("When you update an existing alarm, its state is left unchanged, but the update completely
    # overwrites the previous configuration of the alarm.")
    world.alarm("load")
    world.evaluator.evaluate()
    world.next_period(HIGH)
    assert world.state("load") == "ALARM"
    world.alarm("load", Threshold=100.0)  # moto makes a fresh alarm, OK
    world.evaluator.evaluate()
    assert world.state("load") == "ALARM"
    world.next_period(HIGH)  # evaluated against the new threshold
    assert world.state("load") == "OK"
    assert "the threshold (100.0)" in world.reason("load")


def test_time_scale_shrinks_periods(world):
    world.scale = 0.1
    world.alarm("load")
    world.evaluator.evaluate()
    world.put(HIGH)
    world.clock.now = T0 + 5.9  # the 6-second window is not over
    world.evaluator.evaluate()
    assert world.state("load") == "INSUFFICIENT_DATA"
    world.clock.now = T0 + 6.1
    world.evaluator.evaluate()
    assert world.state("load") == "ALARM"
    assert "(04/12/26 15:00:00)" in world.reason("load")


def test_unsupported_alarms_keep_their_state_and_evaluate_never_raises(world, capsys):
    world.alarm("band", ComparisonOperator="LessThanLowerOrGreaterThanUpperThreshold")
    world.cw.put_metric_alarm(
        AlarmName="bad-math", EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold",
        Metrics=[{"Id": "e", "Expression": "ANOMALY_DETECTION_BAND(m)", "ReturnData": True},
                 {"Id": "m", "ReturnData": False, "MetricStat": {"Metric": {"Namespace": NAMESPACE, "MetricName": "Load"},
                                                                  "Period": 60, "Stat": "Sum"}}])
    world.alarm("load")
    world.evaluator.evaluate()
    world.next_period(HIGH)
    world.next_period(HIGH)
    assert (world.state("band"), world.state("bad-math"), world.state("load")) == (
        "INSUFFICIENT_DATA", "INSUFFICIENT_DATA", "ALARM")
    notes = capsys.readouterr().err.splitlines()
    assert len([n for n in notes if "band" in n]) == 1  # said once, not every pass
    assert any("ANOMALY_DETECTION_BAND" in n for n in notes)
