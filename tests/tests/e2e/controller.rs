//! The controller's shell against the real API server: finalizer, status conditions a GitOps
//! tool reads, `observedGeneration`, events, the paused and reconcile-requested annotations,
//! leader election between two replicas, and running with exactly the chart's RBAC.
//!
//! The operator runs in-process (`controller::run`) with no AWS components, so these tests see
//! the Kubernetes side alone; the engine's AWS behaviour has its own suites.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use plinth_crds::DataPlatform;
use plinth_e2e::cluster::{
    OperatorProcess, RunningOperator, TEST_MANAGER, TestNamespace, condition, eventually, example,
    install_crd, test_settings,
};
use plinth_e2e::kube_client;
use plinth_operator::aws::{AwsClients, AwsOptions};
use plinth_operator::components;
use plinth_operator::controller::{FINALIZER, PAUSED_ANNOTATION};
use plinth_operator::platform::Platform;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
/// Tearing a platform down in the strict emulator waits on NAT gateways and other slow deletes.
const TEARDOWN: Duration = Duration::from_secs(180);

fn no_components() -> Arc<Platform> {
    Arc::new(Platform::new(Vec::new(), Default::default()).unwrap())
}

async fn setup(test: &str) -> (Client, TestNamespace) {
    let client = kube_client().await.unwrap();
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, test).await;
    (client, ns)
}

async fn wait_for(
    api: &Api<DataPlatform>,
    name: &str,
    what: &str,
    check: impl Fn(&DataPlatform) -> bool,
) -> DataPlatform {
    wait_within(WAIT, api, name, what, check).await
}

async fn wait_within(
    timeout: Duration,
    api: &Api<DataPlatform>,
    name: &str,
    what: &str,
    check: impl Fn(&DataPlatform) -> bool,
) -> DataPlatform {
    eventually(timeout, what, || async {
        let dp = api.get(name).await.ok()?;
        check(&dp).then_some(dp)
    })
    .await
}

/// The lifecycle a platform engineer and a GitOps tool see: the finalizer before any work,
/// kstatus conditions with `observedGeneration` following edits, an event when ready, and the
/// object gone after delete once teardown released the finalizer.
#[tokio::test]
async fn finalizer_conditions_and_observed_generation_follow_the_object() {
    let (client, ns) = setup("lifecycle").await;
    let operator = RunningOperator::start(
        client.clone(),
        test_settings(&ns.name, "lifecycle-0"),
        no_components(),
    );
    let api = ns.platforms();
    api.create(
        &PostParams::default(),
        &example("minimal.yaml", "ingest", &ns.name),
    )
    .await
    .unwrap();

    let dp = wait_for(&api, "ingest", "Ready with observedGeneration 1", |dp| {
        condition(dp, "Ready").is_some_and(|(s, _)| s == "True")
            && dp.status.as_ref().and_then(|s| s.observed_generation) == Some(1)
    })
    .await;
    assert!(dp.finalizers().iter().any(|f| f == FINALIZER));
    assert_eq!(
        condition(&dp, "Reconciling").map(|c| c.0).as_deref(),
        Some("False")
    );
    assert_eq!(
        condition(&dp, "Stalled").map(|c| c.0).as_deref(),
        Some("False")
    );
    let ready_since = dp
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .last_transition_time
        .clone();

    // An edit bumps the generation; the status follows and Ready keeps its transition time.
    api.patch(
        "ingest",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"compute": {"maxSize": 3}}})),
    )
    .await
    .unwrap();
    let dp = wait_for(&api, "ingest", "observedGeneration 2", |dp| {
        dp.status.as_ref().and_then(|s| s.observed_generation) == Some(2)
    })
    .await;
    let ready = dp
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
    assert_eq!(
        ready.last_transition_time, ready_since,
        "no transition, no new time"
    );
    assert_eq!(ready.observed_generation, Some(2));

    ns.wait_for_event("ingest", Some("Ready")).await;

    api.delete("ingest", &DeleteParams::default())
        .await
        .unwrap();
    eventually(WAIT, "the object to be gone", || async {
        api.get_opt("ingest").await.ok()?.is_none().then_some(())
    })
    .await;
    let events = ns.events_for("ingest").await;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("TornDown")),
        "{events:?}"
    );
    operator.stop().await;
    ns.delete().await;
}

/// `plinth.dev/paused: "true"` stops reconciling (status says so) with not one AWS call, holds a
/// delete, and removing it resumes; `plinth.dev/reconcile-requested-at` triggers a pass at once,
/// echoed in status. The operator acts on the emulator with every real component, through
/// clients whose calls the test counts.
#[tokio::test]
async fn paused_and_reconcile_requested_annotations() {
    let (client, ns) = setup("paused").await;
    let aws = AwsClients::from_config(
        &plinth_e2e::aws_config().await.unwrap(),
        &AwsOptions::default(),
    );
    let operator = RunningOperator::start(
        client.clone(),
        test_settings(&ns.name, "paused-0"),
        Arc::new(components::platform(&aws).unwrap()),
    );
    let api = ns.platforms();
    let mut dp = example("minimal.yaml", "ingest", &ns.name);
    dp.metadata.annotations = Some([(PAUSED_ANNOTATION.to_string(), "true".to_string())].into());
    api.create(&PostParams::default(), &dp).await.unwrap();

    let dp = wait_for(&api, "ingest", "Paused condition", |dp| {
        condition(dp, "Paused").is_some_and(|(s, _)| s == "True")
    })
    .await;
    assert_eq!(
        condition(&dp, "Reconciling"),
        Some(("False".into(), "Paused".into()))
    );
    assert_eq!(
        condition(&dp, "Ready"),
        None,
        "a paused platform is never judged Ready"
    );
    let calls = aws.calls().snapshot();
    assert_eq!(
        (calls.reads(), calls.writes()),
        (0, 0),
        "a paused platform costs no AWS call at all"
    );

    // A delete while paused waits: the finalizer stays.
    api.delete("ingest", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = api.get("ingest").await.unwrap();
    assert!(
        held.finalizers().iter().any(|f| f == FINALIZER),
        "paused holds the delete"
    );
    assert_eq!(
        aws.calls().snapshot().writes(),
        0,
        "nor does a delete while paused"
    );

    api.patch(
        "ingest",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {PAUSED_ANNOTATION: null}}})),
    )
    .await
    .unwrap();
    eventually(WAIT, "the object to be gone after resuming", || async {
        api.get_opt("ingest").await.ok()?.is_none().then_some(())
    })
    .await;

    // A second platform: a reconcile request is handled at once and echoed in status. It is
    // built for real, instances and all: its release must be where the example says.
    plinth_e2e::dataplane::publish_release(
        &plinth_e2e::aws_config().await.unwrap(),
        plinth_e2e::dataplane::EXAMPLE_RELEASE,
    )
    .await;
    api.create(
        &PostParams::default(),
        &example("minimal.yaml", "second", &ns.name),
    )
    .await
    .unwrap();
    // Unpaused, the platform is built for real in the emulator before it is Ready.
    wait_within(TEARDOWN, &api, "second", "Ready", |dp| {
        condition(dp, "Ready").is_some_and(|(s, _)| s == "True")
    })
    .await;
    assert!(
        aws.calls().snapshot().writes() > 0,
        "the network was created"
    );
    api.patch(
        "second",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {
            "plinth.dev/reconcile-requested-at": "2026-11-27T12:00:00Z"
        }}})),
    )
    .await
    .unwrap();
    wait_for(&api, "second", "lastHandledReconcileAt", |dp| {
        dp.status
            .as_ref()
            .and_then(|s| s.last_handled_reconcile_at.as_deref())
            == Some("2026-11-27T12:00:00Z")
    })
    .await;
    api.delete("second", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        TEARDOWN,
        "the second platform to be torn down and gone",
        || async { api.get_opt("second").await.ok()?.is_none().then_some(()) },
    )
    .await;
    operator.stop().await;
    ns.delete().await;
}

async fn lease_holder(client: &Client, ns: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    leases
        .get_opt("plinth-operator")
        .await
        .ok()??
        .spec?
        .holder_identity
}

/// Two operator processes: one holds the Lease and reconciles; SIGKILL it (nothing released)
/// and the other takes over within 30 s and reconciles what arrives next; SIGTERM the survivor
/// and it exits 0, releasing the Lease. The processes run the shipped entry point with every
/// AWS component, against the emulator.
#[tokio::test]
async fn two_replicas_one_leader_failover_and_sigterm() {
    let (client, ns) = setup("leader").await;
    let binary = env!("CARGO_BIN_EXE_plinth-operator-e2e");
    let a = OperatorProcess::spawn(binary, &ns.name, "replica-a");
    let first = eventually(WAIT, "a Lease holder", || lease_holder(&client, &ns.name)).await;
    assert_eq!(first, "replica-a");
    let b = OperatorProcess::spawn(binary, &ns.name, "replica-b");
    // The platforms are built for real, instances and all: the release the example names.
    plinth_e2e::dataplane::publish_release(
        &plinth_e2e::aws_config().await.unwrap(),
        plinth_e2e::dataplane::EXAMPLE_RELEASE,
    )
    .await;

    let api = ns.platforms();
    api.create(
        &PostParams::default(),
        &example("minimal.yaml", "one", &ns.name),
    )
    .await
    .unwrap();
    wait_for(&api, "one", "the finalizer from the leader", |dp| {
        dp.finalizers().iter().any(|f| f == FINALIZER)
    })
    .await;
    let events = ns.wait_for_event("one", None).await;
    for event in &events {
        assert_eq!(
            event.reporting_instance.as_deref(),
            Some("replica-a"),
            "only the leader acts: {event:?}"
        );
    }
    assert_eq!(
        lease_holder(&client, &ns.name).await.as_deref(),
        Some("replica-a")
    );

    // The leader builds the network in the emulator and reports it: NetworkReady, then Ready,
    // with the VPC's id in status — the VPC AWS really has, tagged for this platform.
    let ready = wait_within(TEARDOWN, &api, "one", "Ready with NetworkReady", |dp| {
        condition(dp, "Ready").is_some_and(|(s, _)| s == "True")
            && condition(dp, "NetworkReady").is_some_and(|(s, _)| s == "True")
    })
    .await;
    let vpc_id = ready
        .status
        .and_then(|s| s.resources)
        .and_then(|r| r.vpc_id)
        .expect("status.resources.vpcId");
    let ec2 = aws_sdk_ec2::Client::new(&plinth_e2e::aws_config().await.unwrap());
    let vpcs = ec2.describe_vpcs().vpc_ids(&vpc_id).send().await.unwrap();
    let tag = vpcs.vpcs()[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some("plinth.dev/platform"))
        .and_then(|t| t.value());
    assert_eq!(tag, Some(format!("{}/one", ns.name).as_str()));

    a.kill();
    let killed_at = tokio::time::Instant::now();
    eventually(WAIT, "replica-b to take the Lease", || async {
        (lease_holder(&client, &ns.name).await.as_deref() == Some("replica-b")).then_some(())
    })
    .await;
    assert!(killed_at.elapsed() < Duration::from_secs(30));

    api.create(
        &PostParams::default(),
        &example("minimal.yaml", "two", &ns.name),
    )
    .await
    .unwrap();
    wait_for(&api, "two", "the finalizer from the new leader", |dp| {
        dp.finalizers().iter().any(|f| f == FINALIZER)
    })
    .await;
    let events = ns.wait_for_event("two", None).await;
    assert!(
        events
            .iter()
            .all(|e| e.reporting_instance.as_deref() == Some("replica-b")),
        "{events:?}"
    );

    // Deleting tears down what the operator created in the emulator before the object goes.
    for name in ["one", "two"] {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    for name in ["one", "two"] {
        eventually(
            TEARDOWN,
            "the platform to be torn down and gone",
            || async { api.get_opt(name).await.ok()?.is_none().then_some(()) },
        )
        .await;
    }

    let status = b.terminate().await;
    assert!(
        status.success(),
        "SIGTERM ends the operator cleanly: {status}"
    );
    assert_ne!(
        lease_holder(&client, &ns.name).await.as_deref(),
        Some("replica-b"),
        "the Lease is released on SIGTERM, not left to expire"
    );
    ns.delete().await;
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RbacRules {
    cluster_rules: Vec<PolicyRule>,
    lease_rules: Vec<PolicyRule>,
}

/// The operator works with exactly the permissions the Helm chart ships
/// (`charts/plinth-operator/files/rbac-rules.yaml`), authenticated as a ServiceAccount token.
#[tokio::test]
async fn operator_runs_with_exactly_the_chart_rbac() {
    let (admin, ns) = setup("rbac").await;
    let path = plinth_e2e::package_dir().join("../charts/plinth-operator/files/rbac-rules.yaml");
    let rules: RbacRules = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let sa_name = "plinth-operator";
    let role_name = format!("plinth-operator-{}", ns.name);

    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns.name);
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": sa_name}})).unwrap(),
    )
    .await
    .unwrap();
    let subject = json!([{"kind": "ServiceAccount", "name": sa_name, "namespace": ns.name}]);
    let cluster_roles: Api<ClusterRole> = Api::all(admin.clone());
    let cluster_role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": role_name}, "rules": rules.cluster_rules
    }))
    .unwrap();
    cluster_roles
        .patch(
            &role_name,
            &PatchParams::apply(TEST_MANAGER),
            &Patch::Apply(&cluster_role),
        )
        .await
        .unwrap();
    let bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": role_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
        "subjects": subject,
    }))
    .unwrap();
    bindings
        .patch(
            &role_name,
            &PatchParams::apply(TEST_MANAGER),
            &Patch::Apply(&binding),
        )
        .await
        .unwrap();
    let roles: Api<Role> = Api::namespaced(admin.clone(), &ns.name);
    let role: Role = serde_json::from_value(
        json!({"metadata": {"name": "plinth-lease"}, "rules": rules.lease_rules}),
    )
    .unwrap();
    roles.create(&PostParams::default(), &role).await.unwrap();
    let role_bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), &ns.name);
    let role_binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "plinth-lease"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "plinth-lease"},
        "subjects": subject,
    }))
    .unwrap();
    role_bindings
        .create(&PostParams::default(), &role_binding)
        .await
        .unwrap();

    let token_request: TokenRequest =
        serde_json::from_value(json!({"spec": {"expirationSeconds": 3600}})).unwrap();
    let token = sas
        .create_token_request(sa_name, &PostParams::default(), &token_request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let kubeconfig =
        kube::config::Kubeconfig::read_from(plinth_e2e::stack_var("KUBECONFIG").unwrap()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    let as_operator = Client::try_from(config).unwrap();

    // The token really is limited: the operator's identity cannot read secrets.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(as_operator.clone(), &ns.name);
    assert!(
        secrets.list(&Default::default()).await.is_err(),
        "no permission beyond the rules"
    );

    let operator = RunningOperator::start(
        as_operator,
        test_settings(&ns.name, "rbac-0"),
        no_components(),
    );
    let api = ns.platforms();
    api.create(
        &PostParams::default(),
        &example("platform.yaml", "prod", &ns.name),
    )
    .await
    .unwrap();
    let dp = wait_for(&api, "prod", "Ready under the chart's RBAC", |dp| {
        condition(dp, "Ready").is_some_and(|(s, _)| s == "True")
    })
    .await;
    assert!(dp.finalizers().iter().any(|f| f == FINALIZER));
    ns.wait_for_event("prod", Some("Ready")).await;
    api.delete("prod", &DeleteParams::default()).await.unwrap();
    eventually(WAIT, "the object to be gone", || async {
        api.get_opt("prod").await.ok()?.is_none().then_some(())
    })
    .await;
    operator.stop().await;
    let _ = bindings.delete(&role_name, &DeleteParams::default()).await;
    let _ = cluster_roles
        .delete(&role_name, &DeleteParams::default())
        .await;
    ns.delete().await;
}
