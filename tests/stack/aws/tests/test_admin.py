"""The emulator's own interface: start and stop, health, call counts, settings, reset."""

import signal

from conftest import Admin, start_server


def test_health_answers_json(admin):
    status, document = admin.request("GET", "/_plinth/health")
    assert status == 200
    assert document["status"] == "ok"
    assert document["moto"] == "5.2.5"


def test_sigterm_stops_the_server_cleanly():
    process, _ = start_server()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_calls_are_counted_by_service_and_operation_split_into_reads_and_writes(admin, client):
    ec2 = client("ec2")
    ec2.create_vpc(CidrBlock="10.0.0.0/16")
    ec2.describe_vpcs()
    ec2.describe_vpcs()
    client("secretsmanager").list_secrets()

    calls = admin.calls()
    assert (calls["total"], calls["reads"], calls["writes"]) == (4, 3, 1)
    assert calls["services"]["ec2"]["operations"]["DescribeVpcs"] == {
        "calls": 2,
        "kind": "read",
        "faults": {},
        "refused": 0,
    }
    assert calls["services"]["ec2"]["operations"]["CreateVpc"]["kind"] == "write"
    assert calls["services"]["secretsmanager"]["reads"] == 1

    status, after = admin.request("POST", "/_plinth/calls/reset")
    assert status == 200 and after["total"] == 0 and admin.calls()["services"] == {}


def test_config_is_read_and_replaced_key_by_key(admin):
    document = admin.configure(throttle_rate=0.25, overrides={"ec2": {"latency_ms": 5}})
    assert document["throttle_rate"] == 0.25
    assert document["overrides"] == {"ec2": {"latency_ms": 5}}
    assert document["strict"] is True, "keys not named stay as they were"
    assert admin.request("GET", "/_plinth/config")[1] == document


def test_config_refuses_bad_settings_and_keeps_the_old_ones(admin):
    assert admin.request("POST", "/_plinth/config", {"throttle_rate": 2})[0] == 400
    assert admin.request("POST", "/_plinth/config", {"no_such_setting": 1})[0] == 400
    assert admin.request("GET", "/_plinth/config")[1]["throttle_rate"] == 0.0


def test_reset_empties_moto_and_restores_the_start_settings(admin, client):
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    admin.configure(strict=False)
    assert admin.request("POST", "/_plinth/reset")[0] == 200
    assert vpc not in [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]]
    assert admin.request("GET", "/_plinth/config")[1]["strict"] is True
    assert admin.calls()["services"]["ec2"]["operations"] == {"DescribeVpcs": {
        "calls": 1, "kind": "read", "faults": {}, "refused": 0}}


def test_settings_are_read_from_the_environment_at_start():
    process, url = start_server({
        "PLINTH_STRICT": "0",
        "PLINTH_FAULT_SEED": "9",
        "PLINTH_FAULT_THROTTLE_RATE": "0.2",
        "PLINTH_FAULT_5XX_RATE": "0.05",
        "PLINTH_FAULT_LATENCY_MS": "3",
        "PLINTH_FAULT_OVERRIDES": '{"rds": {"throttle_rate": 0.5}}',
        "PLINTH_FAULT_RULES": '[{"service": "ec2", "operation": "CreateVpc", "nth": 1, "code": "X"}]',
        "PLINTH_PENDING_SECONDS": "4",
        "PLINTH_PENDING_DESCRIBES": "",
    })
    try:
        config = Admin(url).request("GET", "/_plinth/config")[1]
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert (config["strict"], config["seed"], config["throttle_rate"], config["error_5xx_rate"],
            config["latency_ms"]) == (False, 9, 0.2, 0.05, 3)
    assert config["overrides"] == {"rds": {"throttle_rate": 0.5}}
    assert config["rules"][0]["code"] == "X"
    assert config["pending"]["nat_gateway"] == {"seconds": 4.0, "describes": None}
