//! The reconcile engine under AWS's bad days (the faults campaign of CI): a whole platform is
//! applied, checked in a steady-state pass, changed, and torn down against a private strict
//! emulator that throttles 20 % of all calls (each service's own code) and answers 5 % with a
//! 5xx, from a fixed seed — the same pending states and delete guards as every suite, plus the
//! faults. It must converge, create no duplicate of any component, and leave nothing behind;
//! the figures (calls spent with and without faults) are printed.

use std::path::Path;
use std::time::Duration;

use plinth_e2e::campaign::read_back;
use plinth_e2e::emulator::{PrivateEmulator, faults_answered};
use plinth_e2e::unique_name;
use plinth_operator::aws::{AwsClients, AwsOptions};
use plinth_operator::cli::{self, Pace};
use plinth_operator::components;

fn manifest(namespace: &str, max_acu: u32) -> String {
    format!(
        r#"apiVersion: plinth.dev/v1alpha1
kind: DataPlatform
metadata:
  name: ingest
  namespace: {namespace}
spec:
  region: eu-west-1
  network:
    cidr: 10.60.0.0/16
    availabilityZones: [eu-west-1a, eu-west-1b, eu-west-1c]
    natGateways: PerZone
  compute:
    instanceType: t3.small
    imageId: ami-0123456789abcdef0
    minSize: 1
    maxSize: 2
  database:
    minCapacity: 0.5
    maxCapacity: {max_acu}
  app:
    version: 1.0.0
    artifact: s3://plinth-artifacts/plinth-ingest/1.0.0/plinth-ingest
"#
    )
}

struct Run {
    total_calls: u64,
    throttled: u64,
    server_errors: u64,
    created_vpcs: u64,
}

/// A pass that only reads, retried ([`read_back`]): one describe failing after the SDK's
/// retries must not be mistaken for a verdict.
async fn settled_plan(
    platform: &plinth_operator::platform::Platform,
    file: &cli::SpecFile,
) -> plinth_operator::engine::Pass {
    read_back(platform, &file.scope, &file.intent())
        .await
        .unwrap_or_else(|e| panic!("observing failed ten times: {e}"))
}

/// Every component key with more than one resource in AWS.
fn duplicates(pass: &plinth_operator::engine::Pass) -> Vec<String> {
    pass.observed
        .duplicated()
        .map(|(key, _)| key.to_string())
        .collect()
}

/// Applies, re-checks and tears down one platform against an emulator with `settings`.
async fn lifecycle(settings: &[(&str, &str)]) -> Run {
    let emulator = PrivateEmulator::start(settings).unwrap();
    let config = emulator.sdk_config().await.unwrap();
    let clients = AwsClients::from_config(&config, &AwsOptions::default());
    let platform = components::platform(&clients).unwrap();
    let namespace = unique_name("faults");
    let file = cli::parse_spec(&manifest(&namespace, 2), Path::new("faults.yaml")).unwrap();
    let pace = Pace {
        timeout: Duration::from_secs(240),
        interval: Duration::from_millis(300),
        visibility_window: plinth_e2e::CONSISTENT_VISIBILITY,
    };

    let applied = cli::converge(&platform, &file, pace, &mut |_| {})
        .await
        .unwrap_or_else(|e| panic!("apply under faults: {e}"));
    assert!(
        applied.changes >= 20,
        "the network was built: {} changes",
        applied.changes
    );

    // Converged means a fresh pass plans nothing; check it once more explicitly.
    let steady = settled_plan(&platform, &file).await;
    assert!(steady.plan.is_empty(), "steady state: {:?}", steady.plan);
    assert_eq!(duplicates(&steady), Vec::<String>::new(), "no duplicates");

    // A change: the database's capacity range, made in place under the same faults.
    let changed = cli::parse_spec(&manifest(&namespace, 4), Path::new("faults.yaml")).unwrap();
    let applied = cli::converge(&platform, &changed, pace, &mut |_| {})
        .await
        .unwrap_or_else(|e| panic!("change under faults: {e}"));
    assert!(applied.changes >= 1, "the capacity change was applied");
    let steady = settled_plan(&platform, &changed).await;
    assert!(
        steady.plan.is_empty(),
        "steady after the change: {:?}",
        steady.plan
    );
    assert_eq!(duplicates(&steady), Vec::<String>::new(), "no duplicates");

    // No duplicates, read with a plain client too: exactly one VPC tagged for the platform.
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let tagged = aws_sdk_ec2::types::Filter::builder()
        .name("tag:plinth.dev/platform")
        .values(file.scope.platform())
        .build();
    let vpcs = ec2
        .describe_vpcs()
        .filters(tagged.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(vpcs.vpcs().len(), 1, "one VPC, no duplicate");

    cli::destroy(&platform, &changed, pace, &mut |_| {})
        .await
        .unwrap_or_else(|e| panic!("teardown under faults: {e}"));
    let after = settled_plan(&platform, &changed).await;
    assert_eq!(after.found, 0, "nothing tagged for the platform remains");

    let calls = emulator.calls().await;
    let ec2_ops = &calls["services"]["ec2"]["operations"];
    let (throttled, server_errors) = faults_answered(&calls);
    Run {
        total_calls: calls["total"].as_u64().unwrap_or(0),
        throttled,
        server_errors,
        created_vpcs: ec2_ops["CreateVpc"]["calls"].as_u64().unwrap_or(0),
    }
}

/// 20 % of every call throttled and 5 % answered 5xx: the platform still converges, changes,
/// has no duplicate, and tears down to nothing; the calls it cost are printed beside a
/// fault-free run of the same platform.
#[tokio::test]
async fn a_platform_converges_changes_and_tears_down_with_throttling_and_5xx() {
    let (clean, faulty) = tokio::join!(
        lifecycle(&[]),
        lifecycle(&[
            ("PLINTH_FAULT_SEED", "20261127"),
            ("PLINTH_FAULT_THROTTLE_RATE", "0.2"),
            ("PLINTH_FAULT_5XX_RATE", "0.05"),
        ])
    );
    assert_eq!(clean.throttled, 0);
    assert!(
        faulty.throttled > 0,
        "the emulator really throttled ({} calls)",
        faulty.total_calls
    );
    assert!(faulty.created_vpcs >= 1);
    println!(
        "fault-free: {} calls; 20 % throttling + 5 % 5xx: {} calls ({} throttled, {} 5xx, {} CreateVpc attempts)",
        clean.total_calls,
        faulty.total_calls,
        faulty.throttled,
        faulty.server_errors,
        faulty.created_vpcs
    );
}
