"""CloudWatch over Smithy RPC v2 CBOR (what aws-sdk-rust's CloudWatch client speaks), bridged to
moto's JSON. boto3 prefers CloudWatch's JSON protocol, so these tests make it pick CBOR."""

import datetime

import boto3
import botocore.config
import botocore.model
import pytest

from conftest import REGION, error_of


@pytest.fixture
def cloudwatch_cbor(server_url, admin, monkeypatch):
    monkeypatch.setattr(botocore.model, "PRIORITY_ORDERED_SUPPORTED_PROTOCOLS", ("smithy-rpc-v2-cbor",))
    client = boto3.client(
        "cloudwatch", endpoint_url=server_url, region_name=REGION, aws_access_key_id="testing",
        aws_secret_access_key="testing", config=botocore.config.Config(retries={"total_max_attempts": 1}))
    sent = []
    client.meta.events.register("before-send.*", lambda request, **_: sent.append(request.headers))
    return client, sent


def test_alarms_round_trip_over_cbor(cloudwatch_cbor, admin):
    cloudwatch, sent = cloudwatch_cbor
    cloudwatch.put_metric_alarm(
        AlarmName="cpu-high", MetricName="CPUUtilization", Namespace="AWS/EC2", Statistic="Average",
        Period=60, EvaluationPeriods=2, Threshold=80.5, ComparisonOperator="GreaterThanThreshold",
        Dimensions=[{"Name": "AutoScalingGroupName", "Value": "web"}])
    alarm = cloudwatch.describe_alarms(AlarmNames=["cpu-high"])["MetricAlarms"][0]
    assert sent[0]["smithy-protocol"] == b"rpc-v2-cbor"
    assert (alarm["Threshold"], alarm["EvaluationPeriods"]) == (80.5, 2)
    assert alarm["Dimensions"] == [{"Name": "AutoScalingGroupName", "Value": "web"}]
    assert isinstance(alarm["AlarmConfigurationUpdatedTimestamp"], datetime.datetime)
    assert admin.calls()["services"]["monitoring"]["operations"]["PutMetricAlarm"]["calls"] == 1


def test_cbor_errors_carry_code_and_message(cloudwatch_cbor, admin):
    # https://smithy.io/2.0/additional-specs/protocols/smithy-rpc-v2.html#operation-error-serialization
    cloudwatch, _ = cloudwatch_cbor
    admin.configure(throttle_rate=1.0)
    error = error_of(cloudwatch.describe_alarms)
    assert error["Code"] in ("Throttling", "ThrottlingException") and error["HTTPStatusCode"] == 400
    assert error["Message"] == "Rate exceeded"
