//! The DataPlatform API against the real API server (tests/stack/up): the generated CRD installs,
//! the examples are accepted with their defaults filled in, every spec of the shared invalid
//! table is refused at create time with a message naming the field, and the immutable fields
//! are refused on update (replace and server-side apply).
//!
//! Each test works in its own namespace, so runs can overlap.

#[path = "../../../crds/testdata/invalid_cases.rs"]
mod invalid_cases;

use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams, PostParams},
};
use plinth_crds::DataPlatform;
use plinth_e2e::cluster::{TEST_MANAGER as MANAGER, TestNamespace, install_crd};
use serde_json::{Value, json};
use std::time::Duration;

async fn client() -> Client {
    plinth_e2e::kube_client().await.unwrap()
}

const MINIMAL: &str = include_str!("../../../examples/minimal.yaml");
const PLATFORM: &str = include_str!("../../../examples/platform.yaml");

/// An example as a JSON object, renamed and placed in `namespace`.
fn example(text: &str, name: &str, namespace: &str) -> Value {
    let mut v: Value = serde_norway::from_str(text).expect("example parses");
    v["metadata"] = json!({"name": name, "namespace": namespace});
    v
}

fn dynamic(v: Value) -> DynamicObject {
    serde_json::from_value(v).expect("a DataPlatform object")
}

/// The message of an API error, or a description of the unexpected outcome.
fn refusal<T>(result: Result<T, kube::Error>) -> Result<String, String> {
    match result {
        Ok(_) => Err("accepted".to_string()),
        Err(kube::Error::Api(status)) if status.code == 422 => Ok(status.message.clone()),
        Err(e) => Err(format!("failed with something other than 422 Invalid: {e}")),
    }
}

/// Creates once, retrying while the API server has not yet picked up a just-installed schema.
async fn create(
    api: &Api<DynamicObject>,
    obj: &DynamicObject,
) -> Result<DynamicObject, kube::Error> {
    let mut result = api.create(&PostParams::default(), obj).await;
    for _ in 0..50 {
        match &result {
            Err(kube::Error::Api(s)) if s.code == 404 => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                result = api.create(&PostParams::default(), obj).await;
            }
            _ => break,
        }
    }
    result
}

#[tokio::test]
async fn invalid_specs_are_refused_with_the_field_named() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, "invalid").await;
    let api = ns.dynamic();

    let cases = invalid_cases::invalid_cases();
    assert!(cases.len() >= 30, "the table needs at least 30 cases");
    let mut failures = Vec::new();
    for case in &cases {
        let mut v = example(MINIMAL, case.name, &ns.name);
        invalid_cases::merge_patch(&mut v, &case.patch);
        match refusal(create(&api, &dynamic(v)).await) {
            Err(outcome) => failures.push(format!("{}: {outcome}", case.name)),
            Ok(message) => {
                for fragment in case.expect {
                    if !message.contains(fragment) {
                        failures.push(format!("{}: {message:?} lacks {fragment:?}", case.name));
                    }
                }
            }
        }
    }
    ns.delete().await;
    assert!(
        failures.is_empty(),
        "{} of {} invalid specs were not refused as expected:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn examples_are_accepted_with_defaults_filled_in() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, "examples").await;
    let api = ns.dynamic();

    let minimal = create(&api, &dynamic(example(MINIMAL, "minimal", &ns.name))).await;
    let platform = create(&api, &dynamic(example(PLATFORM, "platform", &ns.name))).await;
    ns.delete().await;

    let minimal = minimal.expect("examples/minimal.yaml is accepted");
    platform.expect("examples/platform.yaml is accepted");
    // The API server applied the schema defaults; the typed view agrees with serde's defaults.
    let spec = &minimal.data["spec"];
    assert_eq!(spec["network"]["natGateways"], json!("PerZone"));
    assert_eq!(spec["loadBalancer"]["allowedCidrs"], json!(["0.0.0.0/0"]));
    assert_eq!(
        spec["loadBalancer"]["healthCheck"]["path"],
        json!("/health")
    );
    assert_eq!(spec["compute"]["scaling"]["scaleOutCpuPercent"], json!(80));
    assert_eq!(spec["database"]["backupRetentionDays"], json!(7));
    assert_eq!(spec["database"]["deletionPolicy"], json!("Snapshot"));
    assert_eq!(spec["credentials"]["rotationDays"], json!(30));
    assert_eq!(spec["app"]["port"], json!(8080));
    assert_eq!(spec["app"]["rollout"]["steps"], json!([10, 50, 100]));
    let typed: DataPlatform =
        serde_json::from_value(serde_json::to_value(&minimal).unwrap()).unwrap();
    let from_file: DataPlatform = serde_norway::from_str(MINIMAL).unwrap();
    assert_eq!(typed.spec, from_file.spec);
}

#[tokio::test]
async fn immutable_fields_are_refused_on_update() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, "immutable").await;
    let api = ns.dynamic();
    let name = "platform";
    let created = create(&api, &dynamic(example(PLATFORM, name, &ns.name)))
        .await
        .expect("examples/platform.yaml is accepted");

    let mut failures = Vec::new();
    // Replace (PUT) of the whole object with one immutable field changed.
    let replaced: [(&str, Value, &str); 3] = [
        (
            "region",
            json!({"spec": {"region": "eu-central-1", "network": {"availabilityZones": ["eu-central-1a", "eu-central-1b", "eu-central-1c"]}}}),
            "spec.region is immutable",
        ),
        (
            "cidr",
            json!({"spec": {"network": {"cidr": "10.30.0.0/16"}}}),
            "spec.network.cidr is immutable",
        ),
        (
            "zones",
            json!({"spec": {"network": {"availabilityZones": ["eu-west-1a", "eu-west-1b"]}}}),
            "spec.network.availabilityZones is immutable",
        ),
    ];
    for (what, patch, expected) in &replaced {
        // The latest version, in case something else (an operator's finalizer) wrote it since.
        let current = api.get(name).await.unwrap_or_else(|_| created.clone());
        let mut v = serde_json::to_value(&current).unwrap();
        invalid_cases::merge_patch(&mut v, patch);
        match refusal(api.replace(name, &PostParams::default(), &dynamic(v)).await) {
            Err(outcome) => failures.push(format!("replace {what}: {outcome}")),
            Ok(m) if !m.contains(expected) => {
                failures.push(format!("replace {what}: {m:?} lacks {expected:?}"))
            }
            Ok(_) => {}
        }
    }
    // Server-side apply of the example with the CIDR changed.
    let mut applied = example(PLATFORM, name, &ns.name);
    applied["spec"]["network"]["cidr"] = json!("10.40.0.0/16");
    let ssa = PatchParams::apply(MANAGER).force();
    match refusal(api.patch(name, &ssa, &Patch::Apply(&applied)).await) {
        Err(outcome) => failures.push(format!("apply cidr: {outcome}")),
        Ok(m) if !m.contains("spec.network.cidr is immutable") => {
            failures.push(format!("apply cidr: {m:?} lacks the immutability message"))
        }
        Ok(_) => {}
    }
    // Mutable fields still change.
    let mut scaled = example(PLATFORM, name, &ns.name);
    scaled["spec"]["compute"]["maxSize"] = json!(20);
    let outcome = api.patch(name, &ssa, &Patch::Apply(&scaled)).await;
    ns.delete().await;

    match outcome {
        Ok(obj) => assert_eq!(obj.data["spec"]["compute"]["maxSize"], json!(20)),
        Err(e) => failures.push(format!("changing compute.maxSize was refused: {e}")),
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The status subresource takes the operator's status (conditions included), and `kubectl get
/// dp` shows it in the Ready, Endpoint, Version and Age columns.
#[tokio::test]
async fn status_subresource_and_printer_columns() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, "columns").await;
    let api = ns.dynamic();
    let name = "columns";
    create(&api, &dynamic(example(MINIMAL, name, &ns.name)))
        .await
        .expect("examples/minimal.yaml is accepted");
    let status = json!({
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "DataPlatform",
        "status": {
            "observedGeneration": 1,
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "Reconciled",
                "message": "all components ready", "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": 1
            }],
            "endpoint": "http://ingest-123.eu-west-1.elb.amazonaws.com",
            "database": {"endpoint": "db.example", "readerEndpoint": "db-ro.example", "port": 3306,
                         "secretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db"},
            "resources": {"vpcId": "vpc-0123", "publicSubnetIds": ["subnet-1", "subnet-2"]},
            "app": {"activeVersion": "1.0.0", "rollout": {"targetVersion": "1.1.0", "weightPercent": 10, "step": 0}}
        }
    });
    let patched = api
        .patch_status(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&status),
        )
        .await;
    let output = plinth_e2e::kubectl()
        .unwrap()
        .args(["get", "dp", name, "-n", &ns.name])
        .output();
    ns.delete().await;

    let patched = patched.expect("the status subresource accepts the operator's status");
    let typed: DataPlatform = serde_json::from_value(serde_json::to_value(&patched).unwrap())
        .expect("the stored status reads back as DataPlatformStatus");
    let status = typed.status.expect("status is stored");
    assert_eq!(status.conditions[0].type_, "Ready");
    assert_eq!(
        status.app.and_then(|a| a.active_version).as_deref(),
        Some("1.0.0")
    );
    let output = output.expect("the stack's kubectl runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kubectl get dp failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "READY", "ENDPOINT", "VERSION", "AGE"]);
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..4],
        [
            name,
            "True",
            "http://ingest-123.eu-west-1.elb.amazonaws.com",
            "1.0.0"
        ]
    );
}
