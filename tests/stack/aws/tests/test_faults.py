"""Injected faults: each service's own throttling code, 500/503, latency, per-service and
per-operation rates, seeded replay, and "fail the N-th call" rules."""

import json
import time
import xml.etree.ElementTree as ElementTree

from conftest import error_of, raw_call


def test_ec2_throttles_with_request_limit_exceeded_503_in_ec2s_error_shape(admin, server_url, client):
    # EC2 throttling is HTTP 503 RequestLimitExceeded, in EC2's own <Response><Errors> document:
    # https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html
    # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html#api-error-response
    admin.configure(throttle_rate=1.0)
    status, _, body = raw_call(server_url, "ec2", "Action=DescribeVpcs&Version=2016-11-15")
    assert status == 503
    document = ElementTree.fromstring(body)
    assert document.tag == "Response"
    assert document.find("Errors/Error/Code").text == "RequestLimitExceeded"
    assert document.find("Errors/Error/Message").text
    assert document.find("RequestID").text

    assert error_of(client("ec2").describe_vpcs)["Code"] == "RequestLimitExceeded"


def test_query_services_throttle_with_throttling_400_in_error_response_shape(admin, server_url, client):
    # Query-protocol services (Auto Scaling, ELBv2, RDS, IAM, SNS, CloudWatch) answer
    # <ErrorResponse><Error><Type/><Code>Throttling</Code>... with HTTP 400:
    # https://docs.aws.amazon.com/autoscaling/ec2/APIReference/CommonErrors.html
    admin.configure(throttle_rate=1.0)
    status, _, body = raw_call(server_url, "autoscaling", "Action=DescribeAutoScalingGroups&Version=2011-01-01")
    assert status == 400
    document = ElementTree.fromstring(body)
    namespace = "{http://autoscaling.amazonaws.com/doc/2011-01-01/}"
    assert document.tag == namespace + "ErrorResponse"
    assert document.find(f"{namespace}Error/{namespace}Type").text == "Sender"
    assert document.find(f"{namespace}Error/{namespace}Code").text == "Throttling"
    assert document.find(f"{namespace}RequestId").text

    for service, call in (
        ("rds", lambda: client("rds").describe_db_clusters()),
        ("elbv2", lambda: client("elbv2").describe_load_balancers()),
        ("iam", lambda: client("iam").list_roles()),
    ):
        assert error_of(call) == {"Code": "Throttling", "Message": "Rate exceeded", "HTTPStatusCode": 400}, service


def test_json_services_throttle_with_throttling_exception_and_error_type_header(admin, server_url, client):
    # JSON-protocol errors: {"__type": ..., "message": ...} and the x-amzn-ErrorType header:
    # https://docs.aws.amazon.com/secretsmanager/latest/apireference/CommonErrors.html
    admin.configure(throttle_rate=1.0)
    status, headers, body = raw_call(server_url, "secretsmanager", "{}", target="secretsmanager.ListSecrets")
    assert status == 400
    assert json.loads(body) == {"__type": "ThrottlingException", "message": "Rate exceeded"}
    assert headers["x-amzn-ErrorType"] == "ThrottlingException"

    assert error_of(client("secretsmanager").list_secrets)["Code"] == "ThrottlingException"


def test_server_errors_are_500_internal_error_or_503_service_unavailable(admin, client):
    # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html (server errors)
    # https://docs.aws.amazon.com/autoscaling/ec2/APIReference/CommonErrors.html
    admin.configure(error_5xx_rate=1.0)
    ec2 = {(e["Code"], e["HTTPStatusCode"]) for e in (error_of(client("ec2").describe_vpcs) for _ in range(20))}
    assert ec2 == {("InternalError", 500), ("ServiceUnavailable", 503)}
    rds = {(e["Code"], e["HTTPStatusCode"]) for e in (error_of(client("rds").describe_db_clusters) for _ in range(20))}
    assert rds == {("InternalFailure", 500), ("ServiceUnavailable", 503)}


def test_seeded_throttle_rate_holds_within_tolerance(admin, client):
    admin.configure(seed=7, throttle_rate=0.2)
    ec2 = client("ec2")
    calls = 300
    for _ in range(calls):
        try:
            ec2.describe_vpcs()
        except ec2.exceptions.ClientError:
            pass
    throttled = admin.calls()["services"]["ec2"]["operations"]["DescribeVpcs"]["faults"]["RequestLimitExceeded"]
    assert 0.13 * calls <= throttled <= 0.27 * calls


def _fault_pattern(admin, client, seed: int) -> list[bool]:
    admin.request("POST", "/_plinth/calls/reset")
    admin.configure(seed=seed, throttle_rate=0.3, error_5xx_rate=0.1)
    ec2 = client("ec2")
    pattern = []
    for _ in range(60):
        try:
            ec2.describe_vpcs()
            pattern.append(None)
        except ec2.exceptions.ClientError as error:
            pattern.append(error.response["Error"]["Code"])
    return pattern


def test_same_seed_replays_the_same_faults_and_another_seed_does_not(admin, client):
    first = _fault_pattern(admin, client, seed=42)
    assert _fault_pattern(admin, client, seed=42) == first
    assert _fault_pattern(admin, client, seed=43) != first
    assert any(first) and not all(first)


def test_rates_can_be_set_per_service_and_per_operation(admin, client):
    admin.configure(
        throttle_rate=0.0,
        overrides={"ec2": {"throttle_rate": 1.0}, "ec2:DescribeSubnets": {"throttle_rate": 0.0}},
    )
    assert error_of(client("ec2").describe_vpcs)["Code"] == "RequestLimitExceeded"
    client("ec2").describe_subnets()
    client("rds").describe_db_clusters()


def test_rule_fails_exactly_the_nth_call_of_an_operation(admin, client):
    admin.configure(
        rules=[{"service": "ec2", "operation": "CreateVpc", "nth": 2, "code": "VpcLimitExceeded",
                "message": "The maximum number of VPCs has been reached.", "status": 400}]
    )
    ec2 = client("ec2")
    ec2.create_vpc(CidrBlock="10.0.0.0/16")
    assert error_of(lambda: ec2.create_vpc(CidrBlock="10.1.0.0/16")) == {
        "Code": "VpcLimitExceeded",
        "Message": "The maximum number of VPCs has been reached.",
        "HTTPStatusCode": 400,
    }
    ec2.create_vpc(CidrBlock="10.2.0.0/16")
    assert admin.calls()["services"]["ec2"]["operations"]["CreateVpc"]["faults"] == {"VpcLimitExceeded": 1}


def test_latency_is_added_to_each_call(admin, client):
    admin.configure(latency_ms=150)
    started = time.monotonic()
    client("ec2").describe_vpcs()
    assert time.monotonic() - started >= 0.15


def test_a_lost_response_makes_the_write_but_answers_5xx(admin, client):
    # AWS can fail a call after carrying it out; clients recover through idempotency (ClientToken,
    # find-by-tag): https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html
    admin.configure(rules=[{"service": "ec2", "operation": "CreateVpc", "nth": 1, "code": "InternalError",
                            "status": 500, "message": "An internal error has occurred.", "after_write": True}])
    ec2 = client("ec2")
    before = len(ec2.describe_vpcs()["Vpcs"])
    assert error_of(lambda: ec2.create_vpc(CidrBlock="10.9.0.0/16"))["HTTPStatusCode"] == 500
    assert len(ec2.describe_vpcs()["Vpcs"]) == before + 1


def test_lost_responses_come_at_the_set_rate_and_only_for_writes(admin, client):
    ec2 = client("ec2")
    before = len(ec2.describe_vpcs()["Vpcs"])
    admin.configure(seed=1, error_5xx_after_write_rate=0.5)
    for _ in range(10):
        ec2.describe_vpcs()
    lost = 0
    for n in range(40):
        try:
            ec2.create_vpc(CidrBlock=f"10.{n}.0.0/16")
        except ec2.exceptions.ClientError:
            lost += 1
    assert 10 <= lost <= 30
    assert len(ec2.describe_vpcs()["Vpcs"]) == before + 40, "every write was carried out"
    assert admin.calls()["services"]["ec2"]["operations"]["DescribeVpcs"]["faults"] == {}


def test_s3_calls_are_counted_by_operation_and_throttle_with_slow_down(admin, client):
    # https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html (SlowDown, HTTP 503)
    s3 = client("s3")
    s3.create_bucket(Bucket="artifacts")
    s3.put_object(Bucket="artifacts", Key="app/1.0/plinth-ingest", Body=b"binary")
    s3.head_object(Bucket="artifacts", Key="app/1.0/plinth-ingest")
    s3.list_objects_v2(Bucket="artifacts")
    operations = admin.calls()["services"]["s3"]["operations"]
    assert {name: entry["kind"] for name, entry in operations.items()} == {
        "CreateBucket": "write", "PutObject": "write", "HeadObject": "read", "ListObjectsV2": "read"}

    admin.configure(overrides={"s3": {"throttle_rate": 1.0}})
    assert error_of(lambda: s3.get_object(Bucket="artifacts", Key="app/1.0/plinth-ingest")) == {
        "Code": "SlowDown", "Message": "Please reduce your request rate.", "HTTPStatusCode": 503}
