//! AWS is eventually consistent, and the emulator's consistency model makes it so here: a
//! created resource is missing from describes, tag filters and the tagging API for a while,
//! a deleted one lingers, a new instance profile is refused at first. Plinth must still never
//! make a second resource for one component, and must converge.
//!
//! Every verdict reads the emulator's truth ([`plinth_e2e::truth_clients`]), never the lagging
//! view the operator gets.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{DeleteParams, PostParams};
use plinth_e2e::campaign::observe;
use plinth_e2e::cluster::{
    RunningOperator, TestNamespace, eventually, example, install_crd, is_true, test_settings,
};
use plinth_e2e::emulator::PrivateEmulator;
use plinth_e2e::{kube_client, truth_clients, unique_name};
use plinth_operator::aws::{AwsClients, AwsOptions};
use plinth_operator::cli::{self, Pace};
use plinth_operator::components;
use plinth_operator::engine::{Observed, Scope};
use plinth_operator::intent::Intent;

/// Every create is invisible to the operator's reads for exactly this long (the tagging API
/// too), so a lost answer is always followed by a read that does not show what was made.
const LAG_SECONDS: f64 = 3.0;

/// The operator's visibility window against that lag.
const WINDOW: Duration = Duration::from_secs(12);

/// The consistency model with fixed delays, so each test is the same every run.
fn fixed_lag() -> String {
    serde_json::json!({
        "enabled": true,
        "visible_after": {"default": [LAG_SECONDS, LAG_SECONDS], "tagging": [LAG_SECONDS, LAG_SECONDS]},
        "tags_after": [LAG_SECONDS, LAG_SECONDS],
        "linger": [LAG_SECONDS, LAG_SECONDS],
        "iam_usable_after": [LAG_SECONDS, LAG_SECONDS],
    })
    .to_string()
}

/// The creates that carry no idempotency token and are not answered with the existing
/// resource when sent again: `(service, operation, the kind it makes)`.
const UNTOKENED_CREATES: &[(&str, &str, &str)] = &[
    ("ec2", "CreateVpc", "vpc"),
    ("ec2", "CreateSubnet", "subnet"),
    ("ec2", "CreateInternetGateway", "internet-gateway"),
    ("ec2", "AllocateAddress", "elastic-ip"),
    ("ec2", "CreateSecurityGroup", "security-group"),
    ("iam", "CreateRole", "iam-role"),
    ("iam", "CreateInstanceProfile", "instance-profile"),
    ("rds", "CreateDBSubnetGroup", "db-subnet-group"),
    (
        "rds",
        "CreateDBClusterParameterGroup",
        "db-cluster-parameter-group",
    ),
    ("rds", "CreateDBCluster", "db-cluster"),
    ("rds", "CreateDBInstance", "db-instance"),
    (
        "autoscaling",
        "CreateAutoScalingGroup",
        "auto-scaling-group",
    ),
    ("elasticloadbalancing", "CreateListener", "listener"),
];

/// Each key AWS holds more than one resource for, with the extra ids.
fn duplicates(observed: &Observed) -> Vec<String> {
    observed
        .duplicated()
        .map(|(key, extra)| {
            let ids: Vec<&str> = extra.iter().map(|r| r.id.as_str()).collect();
            format!("{key}: {}", ids.join(", "))
        })
        .collect()
}

/// With the lag on, the first call of every untokened create is carried out and its answer
/// lost (a 500 after the write). The read right after does not show what it made. Before the
/// journal, the create was sent again and made a second VPC (and a second of every kind that
/// has no unique name); now it waits until AWS lists it. Applied with the CLI's engine: no
/// duplicate, converged, and torn down to nothing.
#[tokio::test]
async fn a_lost_create_answer_under_lag_is_never_sent_again_blindly() {
    let rules: Vec<serde_json::Value> = UNTOKENED_CREATES
        .iter()
        .map(|(service, operation, _)| {
            serde_json::json!({
                "service": service, "operation": operation, "nth": 1, "count": 1,
                "code": "InternalError", "status": 500, "after_write": true,
                "message": "Injected: the create was carried out and its answer lost.",
            })
        })
        .collect();
    let rules = serde_json::Value::Array(rules).to_string();
    let lag = fixed_lag();
    let emulator = PrivateEmulator::start(&[
        ("PLINTH_PENDING_SECONDS", "0.3"),
        ("PLINTH_CONSISTENCY", lag.as_str()),
        ("PLINTH_FAULT_RULES", rules.as_str()),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let config = emulator
        .sdk_config()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let clients = AwsClients::from_config(&config, &AwsOptions::default());
    let platform = components::platform(&clients).unwrap_or_else(|e| panic!("{e}"));
    let truth = truth_clients(&config);
    let namespace = unique_name("lag");
    let text = std::fs::read_to_string(plinth_e2e::package_dir().join("../examples/minimal.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .replace(
            "name: ingest",
            &format!("name: ingest\n  namespace: {namespace}"),
        );
    let file = cli::parse_spec(&text, Path::new("minimal.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let pace = Pace {
        timeout: Duration::from_secs(240),
        interval: Duration::from_millis(300),
        visibility_window: WINDOW,
    };

    let started = Instant::now();
    cli::converge(&platform, &file, pace, &mut |line| {
        eprintln!("[lag] {line}")
    })
    .await
    .unwrap_or_else(|e| panic!("apply under lag with lost answers: {e}"));
    let built = started.elapsed();

    let observed = observe(&truth, &file.scope, &file.intent())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(duplicates(&observed), Vec::<String>::new(), "no duplicate");
    // Each create that AWS carried out was sent once per resource it made: a second send of one
    // would have made a second resource or been refused by its name. Calls refused before they
    // were carried out (a cluster still creating, an instance profile IAM has not spread yet)
    // do not count.
    let calls = emulator.calls().await;
    for (service, operation, kind) in UNTOKENED_CREATES {
        let counts = &calls["services"][service]["operations"][operation];
        let sent = counts["calls"].as_u64().unwrap_or(0);
        let refused = counts["refused"].as_u64().unwrap_or(0);
        let made = observed.iter().filter(|r| r.kind.as_str() == *kind).count() as u64;
        assert!(made >= 1, "the platform has a {kind}");
        assert_eq!(
            sent - refused,
            made,
            "{service}:{operation} carried out once per {kind} (sent {sent}, refused {refused})"
        );
    }
    println!(
        "{} untokened creates each lost their first answer under a {LAG_SECONDS} s lag: converged in {:.1} s, {} resources, no duplicate",
        UNTOKENED_CREATES.len(),
        built.as_secs_f64(),
        observed.len()
    );

    cli::destroy(&platform, &file, pace, &mut |line| {
        eprintln!("[lag] {line}")
    })
    .await
    .unwrap_or_else(|e| panic!("teardown under lag: {e}"));
    let left = observe(&truth, &file.scope, &file.intent())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        left.len(),
        0,
        "nothing left: {:?}",
        left.keys().collect::<Vec<_>>()
    );
}

/// A platform deleted and applied again at once under the same name (what a GitOps tool does
/// when a manifest is replaced): the second one converges, with no duplicate, and the delete
/// after it leaves nothing. Against an emulator with `settings`; the operator's window `window`.
async fn deleted_and_applied_again(label: &str, settings: &[(&str, &str)], window: Duration) {
    let client = kube_client().await.unwrap_or_else(|e| panic!("{e}"));
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, label).await;
    let emulator = PrivateEmulator::start(settings).unwrap_or_else(|e| panic!("{e}"));
    let config = emulator
        .sdk_config()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let clients = AwsClients::from_config(&config, &AwsOptions::default());
    let platform = components::platform(&clients).unwrap_or_else(|e| panic!("{e}"));
    let truth = truth_clients(&config);
    let mut settings = test_settings(&ns.name, label);
    settings.visibility_window = window;
    let operator = RunningOperator::start(client.clone(), settings, Arc::new(platform));
    let api = ns.platforms();
    let dp = example("minimal.yaml", "again", &ns.name);
    let scope = Scope::new(&ns.name, "again", dp.spec.tags.clone());
    let intent = Intent::steady(dp.spec.clone());
    let ready = |what: String| {
        let api = api.clone();
        async move {
            eventually(Duration::from_secs(300), &what, || async {
                let dp = api.get("again").await.ok()?;
                (is_true(&dp, "Ready")
                    && dp.status.as_ref().and_then(|s| s.observed_generation)
                        == dp.metadata.generation)
                    .then_some(())
            })
            .await;
        }
    };
    let gone = |what: String| {
        let api = api.clone();
        async move {
            eventually(Duration::from_secs(300), &what, || async {
                matches!(api.get_opt("again").await, Ok(None)).then_some(())
            })
            .await;
        }
    };

    api.create(&PostParams::default(), &dp)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ready(format!("[{label}] the first platform Ready")).await;
    api.delete("again", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    gone(format!("[{label}] the first platform gone")).await;
    let again = Instant::now();
    api.create(&PostParams::default(), &dp)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ready(format!("[{label}] the second platform Ready")).await;
    let took = again.elapsed();
    let observed = observe(&truth, &scope, &intent)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(duplicates(&observed), Vec::<String>::new(), "no duplicate");
    println!(
        "[{label}] applied again at once after the delete: Ready in {:.1} s, {} resources, no duplicate",
        took.as_secs_f64(),
        observed.len()
    );

    api.delete("again", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    gone(format!("[{label}] the second platform gone")).await;
    let left = observe(&truth, &scope, &intent)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        left.len(),
        0,
        "nothing left: {:?}",
        left.keys().collect::<Vec<_>>()
    );
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_deleted_and_applied_again_at_once_converges() {
    deleted_and_applied_again(
        "again",
        &[("PLINTH_PENDING_SECONDS", "0.3")],
        plinth_e2e::CONSISTENT_VISIBILITY,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_deleted_and_applied_again_at_once_converges_under_lag() {
    let lag = fixed_lag();
    deleted_and_applied_again(
        "again-lag",
        &[
            ("PLINTH_PENDING_SECONDS", "0.3"),
            ("PLINTH_CONSISTENCY", lag.as_str()),
        ],
        WINDOW,
    )
    .await;
}
