//! Specs the API must refuse, shared by the crate's unit tests (client-side `validate()`) and the
//! end-to-end test against the real API server, so both sides enforce the same rules.
//!
//! Each case is a JSON merge patch (RFC 7386) on `examples/minimal.yaml` and the fragments the
//! error must contain: the field's path and what is allowed.

use serde_json::{Value, json};

/// One spec that must be refused at create time.
pub struct InvalidCase {
    /// Short name, used in the object name and in failure messages.
    pub name: &'static str,
    /// Merge patch applied to the minimal example.
    pub patch: Value,
    /// Every fragment must appear in the error message.
    pub expect: &'static [&'static str],
}

fn case(name: &'static str, patch: Value, expect: &'static [&'static str]) -> InvalidCase {
    InvalidCase {
        name,
        patch: json!({ "spec": patch }),
        expect,
    }
}

/// RFC 7386 merge patch: objects merge, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// The table: at least one case per rule.
pub fn invalid_cases() -> Vec<InvalidCase> {
    let long_value = "v".repeat(257);
    let long_key = "k".repeat(129);
    let many_tags: serde_json::Map<String, Value> =
        (0..41).map(|i| (format!("tag{i}"), json!("x"))).collect();
    vec![
        case(
            "region-format",
            json!({"region": "Ireland"}),
            &["spec.region must be an AWS region name"],
        ),
        case(
            "cidr-syntax",
            json!({"network": {"cidr": "10.0.0.300/16"}}),
            &["spec.network.cidr must be an IPv4 CIDR"],
        ),
        case(
            "cidr-ipv6",
            json!({"network": {"cidr": "fd00:1::/48"}}),
            &["spec.network.cidr must be an IPv4 CIDR"],
        ),
        case(
            "cidr-too-big",
            json!({"network": {"cidr": "10.0.0.0/8"}}),
            &["spec.network.cidr must have a prefix length from /16 to /19"],
        ),
        case(
            "cidr-too-small",
            json!({"network": {"cidr": "10.0.0.0/24"}}),
            &["spec.network.cidr must have a prefix length from /16 to /19"],
        ),
        case(
            "cidr-host-bits",
            json!({"network": {"cidr": "10.0.1.0/16"}}),
            &["spec.network.cidr must be a network address"],
        ),
        case(
            "azs-too-few",
            json!({"network": {"availabilityZones": ["eu-west-1a"]}}),
            &["spec.network.availabilityZones", "at least 2 items"],
        ),
        case(
            "azs-too-many",
            json!({"network": {"availabilityZones": ["eu-west-1a", "eu-west-1b", "eu-west-1c", "eu-west-1d", "eu-west-1e", "eu-west-1f", "eu-west-1g"]}}),
            &["spec.network.availabilityZones", "at most 6 items"],
        ),
        case(
            "azs-duplicate",
            json!({"network": {"availabilityZones": ["eu-west-1a", "eu-west-1a"]}}),
            &["spec.network.availabilityZones must not contain the same zone twice"],
        ),
        case(
            "azs-other-region",
            json!({"network": {"availabilityZones": ["eu-west-1a", "us-east-1b"]}}),
            &["spec.network.availabilityZones: every zone must be in spec.region"],
        ),
        case(
            "azs-format",
            json!({"network": {"availabilityZones": ["eu-west-1a", "eu-west-1-b"]}}),
            &["spec.network.availabilityZones: each entry must be an availability zone name"],
        ),
        case(
            "nat-mode",
            json!({"network": {"natGateways": "Sometimes"}}),
            &["spec.network.natGateways", "supported values"],
        ),
        case(
            "certificate-arn",
            json!({"loadBalancer": {"certificateArn": "arn:aws:iam::123456789012:role/x"}}),
            &["spec.loadBalancer.certificateArn must be an ACM certificate ARN"],
        ),
        case(
            "allowed-cidrs-syntax",
            json!({"loadBalancer": {"allowedCidrs": ["300.0.0.0/24"]}}),
            &["spec.loadBalancer.allowedCidrs: each entry must be an IPv4 CIDR"],
        ),
        case(
            "certificate-region",
            json!({"loadBalancer": {"certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d"}}),
            &["spec.loadBalancer.certificateArn must be a certificate in spec.region"],
        ),
        case(
            "allowed-cidrs-host-bits",
            json!({"loadBalancer": {"allowedCidrs": ["203.0.113.7/24"]}}),
            &["spec.loadBalancer.allowedCidrs: each entry must be a network address"],
        ),
        case(
            "allowed-cidrs-empty",
            json!({"loadBalancer": {"allowedCidrs": []}}),
            &["spec.loadBalancer.allowedCidrs", "at least 1 item"],
        ),
        case(
            "health-path",
            json!({"loadBalancer": {"healthCheck": {"path": "health"}}}),
            &["spec.loadBalancer.healthCheck.path must start with /"],
        ),
        case(
            "health-interval",
            json!({"loadBalancer": {"healthCheck": {"intervalSeconds": 1}}}),
            &[
                "spec.loadBalancer.healthCheck.intervalSeconds",
                "greater than or equal to 5",
            ],
        ),
        case(
            "health-timeout",
            json!({"loadBalancer": {"healthCheck": {"intervalSeconds": 10, "timeoutSeconds": 10}}}),
            &["spec.loadBalancer.healthCheck.timeoutSeconds must be less than intervalSeconds"],
        ),
        case(
            "health-threshold",
            json!({"loadBalancer": {"healthCheck": {"healthyThreshold": 11}}}),
            &[
                "spec.loadBalancer.healthCheck.healthyThreshold",
                "less than or equal to 10",
            ],
        ),
        case(
            "instance-type",
            json!({"compute": {"instanceType": "large"}}),
            &["spec.compute.instanceType must be an EC2 instance type"],
        ),
        case(
            "image-id",
            json!({"compute": {"imageId": "ami-XYZ456789abc"}}),
            &["spec.compute.imageId must be an AMI ID"],
        ),
        case(
            "min-size-zero",
            json!({"compute": {"minSize": 0}}),
            &["spec.compute.minSize", "greater than or equal to 1"],
        ),
        case(
            "max-size-bound",
            json!({"compute": {"maxSize": 101}}),
            &["spec.compute.maxSize", "less than or equal to 100"],
        ),
        case(
            "min-above-max",
            json!({"compute": {"minSize": 5, "maxSize": 2}}),
            &["spec.compute.minSize must be less than or equal to spec.compute.maxSize"],
        ),
        case(
            "desired-outside",
            json!({"compute": {"desiredCapacity": 10}}),
            &[
                "spec.compute.desiredCapacity must be between spec.compute.minSize and spec.compute.maxSize",
            ],
        ),
        case(
            "scale-in-above-out",
            json!({"compute": {"scaling": {"scaleOutCpuPercent": 50, "scaleInCpuPercent": 60}}}),
            &["spec.compute.scaling.scaleInCpuPercent must be less than scaleOutCpuPercent"],
        ),
        case(
            "scale-out-bound",
            json!({"compute": {"scaling": {"scaleOutCpuPercent": 120}}}),
            &[
                "spec.compute.scaling.scaleOutCpuPercent",
                "less than or equal to 100",
            ],
        ),
        case(
            "engine-version",
            json!({"database": {"engineVersion": "5.7.mysql_aurora.2.11.2"}}),
            &["spec.database.engineVersion must be an Aurora MySQL 3 version"],
        ),
        case(
            "acu-step",
            json!({"database": {"minCapacity": 0.75}}),
            &["spec.database.minCapacity must be a multiple of 0.5 ACU"],
        ),
        case(
            "acu-step-max",
            json!({"database": {"maxCapacity": 2.25}}),
            &["spec.database.maxCapacity must be a multiple of 0.5 ACU"],
        ),
        case(
            "acu-min-zero",
            json!({"database": {"minCapacity": 0}}),
            &["spec.database.minCapacity must be at least 0.5 ACU"],
        ),
        case(
            "acu-max-bound",
            json!({"database": {"maxCapacity": 512}}),
            &["spec.database.maxCapacity", "less than or equal to 256"],
        ),
        case(
            "acu-min-above-max",
            json!({"database": {"minCapacity": 8, "maxCapacity": 4}}),
            &["spec.database.minCapacity must be less than or equal to spec.database.maxCapacity"],
        ),
        case(
            "readers-bound",
            json!({"database": {"readers": 16}}),
            &["spec.database.readers", "less than or equal to 15"],
        ),
        case(
            "backup-retention",
            json!({"database": {"backupRetentionDays": 0}}),
            &[
                "spec.database.backupRetentionDays",
                "greater than or equal to 1",
            ],
        ),
        case(
            "deletion-policy",
            json!({"database": {"deletionPolicy": "Keep"}}),
            &["spec.database.deletionPolicy", "supported values"],
        ),
        case(
            "rotation-days",
            json!({"credentials": {"rotationDays": 400}}),
            &["spec.credentials.rotationDays", "less than or equal to 365"],
        ),
        case(
            "app-version",
            json!({"app": {"version": "latest"}}),
            &["spec.app.version must be a semantic version"],
        ),
        case(
            "artifact-scheme",
            json!({"app": {"artifact": "https://example.com/bin"}}),
            &["spec.app.artifact must be an S3 URL"],
        ),
        case(
            "artifact-bucket",
            json!({"app": {"artifact": "s3://My_Bucket/bin"}}),
            &["spec.app.artifact must be an S3 URL"],
        ),
        case(
            "app-port-low",
            json!({"app": {"port": 80}}),
            &["spec.app.port", "greater than or equal to 1024"],
        ),
        case(
            "app-port-high",
            json!({"app": {"port": 70000}}),
            &["spec.app.port", "less than or equal to 65535"],
        ),
        case(
            "rollout-order",
            json!({"app": {"rollout": {"steps": [50, 10, 100]}}}),
            &["spec.app.rollout.steps must be strictly increasing"],
        ),
        case(
            "rollout-repeat",
            json!({"app": {"rollout": {"steps": [10, 10, 100]}}}),
            &["spec.app.rollout.steps must be strictly increasing"],
        ),
        case(
            "rollout-end",
            json!({"app": {"rollout": {"steps": [10, 50]}}}),
            &["spec.app.rollout.steps must end at 100"],
        ),
        case(
            "rollout-range",
            json!({"app": {"rollout": {"steps": [0, 100]}}}),
            &["spec.app.rollout.steps: each step must be a percentage from 1 to 100"],
        ),
        case(
            "rollout-strategy",
            json!({"app": {"rollout": {"strategy": "Canary"}}}),
            &["spec.app.rollout.strategy", "supported values"],
        ),
        case(
            "rollout-step-seconds",
            json!({"app": {"rollout": {"stepSeconds": 5}}}),
            &[
                "spec.app.rollout.stepSeconds",
                "greater than or equal to 30",
            ],
        ),
        case(
            "alarm-email",
            json!({"monitoring": {"alarmEmail": "oncall"}}),
            &["spec.monitoring.alarmEmail must be an e-mail address"],
        ),
        case(
            "tag-aws-prefix",
            json!({"tags": {"aws:createdBy": "me"}}),
            &["spec.tags: keys must not start with 'aws:' or 'plinth.dev/'"],
        ),
        case(
            "tag-plinth-prefix",
            json!({"tags": {"plinth.dev/platform": "x"}}),
            &["spec.tags: keys must not start with 'aws:' or 'plinth.dev/'"],
        ),
        case(
            "tag-key-length",
            json!({"tags": {(long_key): "x"}}),
            &["spec.tags: keys must be 1 to 128 characters long"],
        ),
        case(
            "tag-value-length",
            json!({"tags": {"team": long_value}}),
            &["spec.tags", "256"],
        ),
        case(
            "tag-characters",
            json!({"tags": {"team": "data!"}}),
            &["spec.tags: keys and values may contain only"],
        ),
        case(
            "tag-count",
            json!({"tags": many_tags}),
            &["spec.tags", "at most 40"],
        ),
        InvalidCase {
            name: "name-too-long",
            patch: json!({"metadata": {"name": "n".repeat(64)}}),
            expect: &["metadata.name must be at most 63 characters"],
        },
        case(
            "app-missing",
            json!({"app": null}),
            &["spec.app", "Required value"],
        ),
    ]
}
