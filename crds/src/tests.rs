//! Unit tests of the API: the generated CRD (names, columns, rules, defaults, bounds), defaults on
//! deserialize, the examples, the helpers, and client-side validation over the shared table of
//! invalid specs.

#[path = "../testdata/invalid_cases.rs"]
mod invalid_cases;

use serde_json::{Value, json};

use super::*;

const MINIMAL: &str = include_str!("../../examples/minimal.yaml");
const PLATFORM: &str = include_str!("../../examples/platform.yaml");

fn schema() -> Value {
    let crd = crd();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

fn minimal_json() -> Value {
    serde_norway::from_str(MINIMAL).unwrap()
}

fn rules(schema: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Array(rs)) = m.get("x-kubernetes-validations") {
                    for r in rs {
                        out.push((
                            r["rule"].as_str().unwrap_or_default().to_string(),
                            r["message"].as_str().unwrap_or_default().to_string(),
                        ));
                    }
                }
                m.values().for_each(|c| walk(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    walk(schema, &mut out);
    out
}

#[test]
fn crd_names_scope_and_subresources() {
    let crd = DataPlatform::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("dataplatforms.plinth.dev")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "DataPlatform");
    assert_eq!(crd.spec.names.short_names, Some(vec!["dp".to_string()]));
    assert_eq!(crd.spec.names.categories, Some(vec!["plinth".to_string()]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.subresources.as_ref().unwrap().status.is_some());
    let columns: Vec<(String, String)> = version
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| (c.name.clone(), c.json_path.clone()))
        .collect();
    assert_eq!(
        columns,
        [
            ("Ready", r#".status.conditions[?(@.type=="Ready")].status"#),
            ("Endpoint", ".status.endpoint"),
            ("Version", ".status.app.activeVersion"),
            ("Age", ".metadata.creationTimestamp"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
}

#[test]
fn schema_carries_the_cel_rules() {
    let rules = rules(&schema());
    let has = |rule: &str| rules.iter().any(|(r, _)| r.contains(rule));
    for rule in [
        "self == oldSelf",
        "isCIDR(self)",
        "cidr(self).prefixLength() >= 16",
        "z.startsWith(self.region)",
        "self.exists_one(y, y == z)",
        "self.minSize <= self.maxSize",
        "self.minCapacity <= self.maxCapacity",
        "self[size(self) - 1] == 100",
        "!k.startsWith('aws:')",
        "mysql_aurora",
        "self * 2.0 == double(int(self * 2.0))",
    ] {
        assert!(has(rule), "no CEL rule contains {rule:?}");
    }
    // Three immutable fields: region, network.cidr, network.availabilityZones.
    assert_eq!(
        rules.iter().filter(|(r, _)| r == "self == oldSelf").count(),
        3
    );
    // Every rule has a message that names a spec field.
    for (rule, message) in &rules {
        assert!(
            message.starts_with("spec.") || message.starts_with("metadata."),
            "rule {rule:?} has message {message:?}"
        );
    }
    let spec = &schema()["properties"]["spec"];
    assert_eq!(spec["properties"]["tags"]["maxProperties"], json!(40));
}

#[test]
fn schema_has_defaults() {
    let s = schema();
    let spec = &s["properties"]["spec"]["properties"];
    let lb = &spec["loadBalancer"];
    assert_eq!(
        lb["properties"]["allowedCidrs"]["default"],
        json!(["0.0.0.0/0"])
    );
    let hc = &lb["properties"]["healthCheck"]["properties"];
    assert_eq!(hc["path"]["default"], json!("/health"));
    assert_eq!(hc["intervalSeconds"]["default"], json!(30));
    let scaling = &spec["compute"]["properties"]["scaling"]["properties"];
    assert_eq!(scaling["scaleOutCpuPercent"]["default"], json!(80));
    assert_eq!(scaling["scaleInCpuPercent"]["default"], json!(30));
    assert_eq!(scaling["cooldownSeconds"]["default"], json!(300));
    assert_eq!(
        spec["network"]["properties"]["natGateways"]["default"],
        json!("PerZone")
    );
    let db = &spec["database"]["properties"];
    assert_eq!(db["backupRetentionDays"]["default"], json!(7));
    assert_eq!(db["readers"]["default"], json!(1));
    assert_eq!(db["deletionPolicy"]["default"], json!("Snapshot"));
    assert_eq!(
        spec["credentials"]["properties"]["rotationDays"]["default"],
        json!(30)
    );
    let app = &spec["app"]["properties"];
    assert_eq!(app["port"]["default"], json!(8080));
    assert_eq!(
        app["rollout"]["properties"]["steps"]["default"],
        json!([10, 50, 100])
    );
    assert_eq!(
        app["rollout"]["properties"]["stepSeconds"]["default"],
        json!(300)
    );
    // Whole optional sections default too, so their inner defaults apply when they are left out.
    assert!(spec["loadBalancer"]["default"].is_object());
    assert!(spec["credentials"]["default"].is_object());
}

/// Every property has a description (it is what `kubectl explain` shows), and in the spec every
/// string has a maxLength and every list a maxItems, which CEL cost estimation needs.
#[test]
fn every_field_documented_and_bounded() {
    fn walk(v: &Value, path: &str, in_spec: bool, problems: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (name, p) in props {
                let child = format!("{path}.{name}");
                if !path.is_empty() && p.get("description").is_none() {
                    problems.push(format!("{child}: no description"));
                }
                walk(p, &child, in_spec || child == ".spec", problems);
            }
        }
        if in_spec {
            match v.get("type").and_then(Value::as_str) {
                Some("string") if v.get("maxLength").is_none() && v.get("enum").is_none() => {
                    problems.push(format!("{path}: string without maxLength"))
                }
                Some("array") if v.get("maxItems").is_none() => {
                    problems.push(format!("{path}: list without maxItems"))
                }
                Some("object")
                    if v.get("additionalProperties").is_some()
                        && v.get("maxProperties").is_none() =>
                {
                    problems.push(format!("{path}: map without maxProperties"))
                }
                _ => {}
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = v.get(key).filter(|c| c.is_object()) {
                walk(child, &format!("{path}[]"), in_spec, problems);
            }
        }
    }
    let mut problems = Vec::new();
    let s = schema();
    walk(&s["properties"]["spec"], ".spec", true, &mut problems);
    walk(&s["properties"]["status"], ".status", false, &mut problems);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn defaults_applied_on_deserialize() {
    let dp: DataPlatform = serde_norway::from_str(MINIMAL).unwrap();
    let s = &dp.spec;
    assert_eq!(s.network.nat_gateways, NatGatewayMode::PerZone);
    assert_eq!(s.load_balancer.allowed_cidrs, vec!["0.0.0.0/0"]);
    assert_eq!(s.load_balancer.https_certificate(), None);
    assert_eq!(s.load_balancer.health_check, HealthCheckSpec::default());
    assert_eq!(s.load_balancer.health_check.path, "/health");
    assert_eq!(s.load_balancer.health_check.interval_seconds, 30);
    assert_eq!(s.load_balancer.health_check.healthy_threshold, 2);
    assert_eq!(s.load_balancer.health_check.unhealthy_threshold, 3);
    assert_eq!(s.compute.scaling.scale_out_cpu_percent, 80);
    assert_eq!(s.compute.scaling.scale_in_cpu_percent, 30);
    assert_eq!(s.compute.scaling.cooldown_seconds, 300);
    assert_eq!(s.compute.desired_capacity, None);
    assert_eq!(s.database.engine_version, "8.0.mysql_aurora.3.08.0");
    assert_eq!(s.database.readers, 1);
    assert_eq!(s.database.backup_retention_days, 7);
    assert_eq!(s.database.deletion_policy, DeletionPolicy::Snapshot);
    assert_eq!(s.credentials.rotation_days, 30);
    assert_eq!(s.app.port, 8080);
    assert_eq!(s.app.rollout.strategy, RolloutStrategy::BlueGreen);
    assert_eq!(s.app.rollout.steps, vec![10, 50, 100]);
    assert_eq!(s.app.rollout.step_seconds, 300);
    assert_eq!(s.monitoring.alarm_email, None);
    assert!(s.tags.is_empty());
    assert!(dp.status.is_none());
}

/// A partly written section keeps the defaults of the fields it leaves out.
#[test]
fn partial_sections_keep_inner_defaults() {
    let mut v = minimal_json();
    v["spec"]["loadBalancer"] = json!({"healthCheck": {"path": "/ready"}});
    let dp: DataPlatform = serde_json::from_value(v).unwrap();
    assert_eq!(dp.spec.load_balancer.health_check.path, "/ready");
    assert_eq!(dp.spec.load_balancer.health_check.interval_seconds, 30);
    assert_eq!(dp.spec.load_balancer.allowed_cidrs, vec!["0.0.0.0/0"]);
}

#[test]
fn examples_are_valid() {
    for (name, text) in [("minimal", MINIMAL), ("platform", PLATFORM)] {
        let dp: DataPlatform = serde_norway::from_str(text).unwrap();
        if let Err(e) = dp.validate() {
            panic!("examples/{name}.yaml: {e}");
        }
    }
    let dp: DataPlatform = serde_norway::from_str(PLATFORM).unwrap();
    assert_eq!(dp.platform_key().unwrap(), "data-team/ingest");
    assert!(dp.spec.load_balancer.https_certificate().is_some());
    let loc = dp.spec.app.artifact_location().unwrap();
    assert_eq!(
        (loc.bucket.as_str(), loc.key.as_str()),
        ("plinth-artifacts", "plinth-ingest/1.0.0/plinth-ingest")
    );
}

#[test]
fn platform_key_needs_namespace_and_name() {
    let mut dp: DataPlatform = serde_norway::from_str(MINIMAL).unwrap();
    assert_eq!(
        dp.platform_key(),
        Err(KeyError::MissingNamespace("ingest".to_string()))
    );
    dp.metadata.namespace = Some("team-a".to_string());
    assert_eq!(dp.platform_key().unwrap(), "team-a/ingest");
    dp.metadata.name = None;
    assert_eq!(dp.platform_key(), Err(KeyError::MissingName));
}

#[test]
fn empty_certificate_arn_means_http() {
    let mut v = minimal_json();
    v["spec"]["loadBalancer"] = json!({"certificateArn": ""});
    let dp: DataPlatform = serde_json::from_value(v).unwrap();
    dp.validate().unwrap();
    assert_eq!(dp.spec.load_balancer.https_certificate(), None);
}

/// Client-side validation refuses every case of the shared table with a message naming the
/// field. Cases whose value has no Rust representation (an unknown enum value, a missing
/// section) are refused by deserialization instead.
#[test]
fn validate_refuses_every_invalid_case() {
    let cases = invalid_cases::invalid_cases();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for case in cases {
        let mut v = minimal_json();
        invalid_cases::merge_patch(&mut v, &case.patch);
        let dp: DataPlatform = match serde_json::from_value(v) {
            Ok(dp) => dp,
            Err(e) => {
                let e = e.to_string();
                if !(e.contains("unknown variant") || e.contains("missing field")) {
                    failures.push(format!("{}: unexpected deserialize error {e}", case.name));
                }
                continue;
            }
        };
        match dp.validate() {
            Ok(()) => failures.push(format!("{}: accepted", case.name)),
            Err(e) => {
                let text = e.to_string();
                for fragment in case.expect {
                    if !text.contains(fragment) {
                        failures.push(format!("{}: {text:?} lacks {fragment:?}", case.name));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn validate_update_refuses_immutable_changes() {
    let old: DataPlatform = serde_norway::from_str(PLATFORM).unwrap();
    let mut new = old.clone();
    new.spec.compute.max_size = 20;
    new.validate_update(&old).unwrap();

    let mut new = old.clone();
    new.spec.region = "eu-central-1".to_string();
    new.spec.network.availability_zones = vec!["eu-central-1a".into(), "eu-central-1b".into()];
    new.spec.network.cidr = "10.30.0.0/16".to_string();
    let text = new.validate_update(&old).unwrap_err().to_string();
    for fragment in [
        "spec.region is immutable",
        "spec.network.cidr is immutable",
        "spec.network.availabilityZones is immutable",
    ] {
        assert!(text.contains(fragment), "{text:?} lacks {fragment:?}");
    }
}

#[test]
fn status_round_trips_without_secrets() {
    let status = DataPlatformStatus {
        observed_generation: Some(3),
        endpoint: Some("https://ingest.example.com".into()),
        database: Some(DatabaseStatus {
            endpoint: Some("db.cluster-abc.eu-west-1.rds.amazonaws.com".into()),
            reader_endpoint: Some("db.cluster-ro-abc.eu-west-1.rds.amazonaws.com".into()),
            port: Some(3306),
            secret_arn: Some("arn:aws:secretsmanager:eu-west-1:123456789012:secret:x".into()),
        }),
        app: Some(AppStatus {
            active_version: Some("1.0.0".into()),
            rollout: Some(RolloutStatus {
                target_version: "1.1.0".into(),
                weight_percent: 10,
                step: 0,
                target_revision: Some("1a2b3c4d".into()),
                step_started_at: Some("2026-01-01T00:00:00Z".into()),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let v = serde_json::to_value(&status).unwrap();
    assert_eq!(v["observedGeneration"], json!(3));
    assert_eq!(
        v["database"]["readerEndpoint"],
        json!("db.cluster-ro-abc.eu-west-1.rds.amazonaws.com")
    );
    assert_eq!(v["app"]["rollout"]["weightPercent"], json!(10));
    assert!(v.get("conditions").is_none());
    let text = v.to_string().to_lowercase();
    assert!(!text.contains("password"));
    let back: DataPlatformStatus = serde_json::from_value(v).unwrap();
    assert_eq!(back, status);
    let s = schema();
    let conditions = &s["properties"]["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], json!("map"));
    assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
}

#[test]
fn committed_crd_is_current() {
    let committed = include_str!("../dataplatform.yaml");
    assert!(
        committed == crd_yaml().unwrap(),
        "crds/dataplatform.yaml is stale: run `cargo run -p plinth-crds --bin crdgen`"
    );
}

#[test]
fn descriptions_are_unwrapped_for_kubectl_explain() {
    let s = schema();
    let cidr =
        s["properties"]["spec"]["properties"]["network"]["properties"]["cidr"]["description"]
            .as_str()
            .unwrap();
    assert!(cidr.starts_with("IPv4 range of the VPC"), "{cidr}");
    assert!(!cidr.contains('\n'), "{cidr:?}");
    assert_eq!(unwrap_paragraphs("a\nb\n\nc\n d"), "a b\n\nc d");
}
