//! The reconcile engine under AWS's bad days: the network of a platform is applied, checked in
//! a steady-state pass, and torn down against a private strict emulator that throttles 20 % of
//! all calls (each service's own code) from a fixed seed — the same pending states and delete
//! guards as every suite, plus the faults. It must converge, create no duplicate, and leave
//! nothing behind; the figures (calls spent with and without faults) are printed.

use std::path::Path;
use std::time::Duration;

use plinth_e2e::emulator::PrivateEmulator;
use plinth_e2e::unique_name;
use plinth_operator::aws::{AwsClients, AwsOptions};
use plinth_operator::cli::{self, Pace};
use plinth_operator::components;

fn manifest(namespace: &str) -> String {
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
    maxCapacity: 2
  app:
    version: 1.0.0
    artifact: s3://plinth-artifacts/plinth-ingest/1.0.0/plinth-ingest
"#
    )
}

struct Run {
    total_calls: u64,
    throttled: u64,
    created_vpcs: u64,
}

/// Applies, re-checks and tears down one platform against an emulator with `settings`.
async fn lifecycle(settings: &[(&str, &str)]) -> Run {
    let emulator = PrivateEmulator::start(settings).unwrap();
    let config = emulator.sdk_config().await.unwrap();
    let clients = AwsClients::from_config(&config, &AwsOptions::default());
    let platform = components::platform(&clients).unwrap();
    let text = manifest(&unique_name("faults"));
    let file = cli::parse_spec(&text, Path::new("faults.yaml")).unwrap();
    let pace = Pace {
        timeout: Duration::from_secs(240),
        interval: Duration::from_millis(300),
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
    let steady = platform.apply(&file.scope, &file.intent()).await.unwrap();
    assert!(
        steady.is_converged(),
        "steady state: {:?}",
        steady.pass.plan
    );
    assert!(steady.pass.report.applied.is_empty());

    // No duplicates: exactly one VPC tagged for the platform, even though creates were throttled.
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

    cli::destroy(&platform, &file, pace, &mut |_| {})
        .await
        .unwrap_or_else(|e| panic!("teardown under faults: {e}"));
    let after = platform.plan(&file.scope, &file.intent()).await.unwrap();
    assert_eq!(after.found, 0, "nothing tagged for the platform remains");

    let calls = emulator.calls().await;
    let ec2_ops = &calls["services"]["ec2"]["operations"];
    let throttled = ec2_ops
        .as_object()
        .map(|ops| {
            ops.values()
                .map(|op| op["faults"]["RequestLimitExceeded"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    Run {
        total_calls: calls["total"].as_u64().unwrap_or(0),
        throttled,
        created_vpcs: ec2_ops["CreateVpc"]["calls"].as_u64().unwrap_or(0),
    }
}

/// 20 % of every call throttled: the platform still converges, has no duplicate, and tears down
/// to nothing; the calls it cost are printed beside a fault-free run of the same platform.
#[tokio::test]
async fn network_converges_and_tears_down_with_20_percent_throttling() {
    let (clean, faulty) = tokio::join!(
        lifecycle(&[]),
        lifecycle(&[
            ("PLINTH_FAULT_SEED", "20261127"),
            ("PLINTH_FAULT_THROTTLE_RATE", "0.2"),
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
        "fault-free: {} calls; 20 % throttling: {} calls ({} throttled, {} CreateVpc attempts)",
        clean.total_calls, faulty.total_calls, faulty.throttled, faulty.created_vpcs
    );
}
