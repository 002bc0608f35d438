//! Benchmark of the network components against the local AWS emulator: `plinth apply` of a
//! three-zone network (NAT gateway per zone), one steady-state pass, and `plinth destroy`,
//! printing the AWS calls of each phase by service and operation (reads / writes) and its wall
//! time.
//!
//! Two counts per phase: the operator's own (an SDK interceptor on its clients: exactly this
//! run's calls) and the emulator's (`GET /_plinth/calls`, global: it also counts whatever other
//! clients did meanwhile, so it is printed only as a cross-check).
//!
//! Run: `cargo run -p plinth-e2e --bin bench-network` (the stack must be up: `tests/stack/up`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use plinth_e2e::{START_HINT, aws_config, stack_var, unique_name};
use plinth_operator::aws::calls::is_read;
use plinth_operator::aws::{AwsClients, AwsOptions, CallSnapshot};
use plinth_operator::cli::{self, Pace};
use plinth_operator::components;

/// `(service, operation)` → calls, from the emulator.
type EmulatorCounts = BTreeMap<(String, String), u64>;

async fn emulator_counts(endpoint: &str) -> Result<EmulatorCounts, String> {
    let url = format!("{}/_plinth/calls", endpoint.trim_end_matches('/'));
    let body: serde_json::Value = plinth_e2e::http_get(&url)
        .await
        .map_err(|e| format!("cannot reach the emulator at {url}: {e}; {START_HINT}"))?
        .json()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let mut out = BTreeMap::new();
    if let Some(services) = body["services"].as_object() {
        for (service, value) in services {
            if let Some(operations) = value["operations"].as_object() {
                for (operation, count) in operations {
                    out.insert(
                        (service.clone(), operation.clone()),
                        count["calls"].as_u64().unwrap_or(0),
                    );
                }
            }
        }
    }
    Ok(out)
}

fn emulator_diff(after: &EmulatorCounts, before: &EmulatorCounts) -> (u64, u64) {
    let mut reads = 0;
    let mut writes = 0;
    for (key, now) in after {
        let diff = now.saturating_sub(before.get(key).copied().unwrap_or(0));
        if is_read(&key.1) {
            reads += diff;
        } else {
            writes += diff;
        }
    }
    (reads, writes)
}

struct Phase {
    name: &'static str,
    wall: Duration,
    passes: u32,
    ours: CallSnapshot,
    emulator: (u64, u64),
}

async fn run() -> Result<Vec<Phase>, String> {
    let endpoint = stack_var("AWS_ENDPOINT_URL").map_err(|e| e.to_string())?;
    emulator_counts(&endpoint).await?;
    let config = aws_config().await.map_err(|e| e.to_string())?;
    let text = include_str!("../../../examples/platform.yaml").replace(
        "namespace: data-team",
        &format!("namespace: {}", unique_name("bench")),
    );
    let file =
        cli::parse_spec(&text, Path::new("examples/platform.yaml")).map_err(|e| e.to_string())?;
    let clients = AwsClients::from_config(&config, &AwsOptions::default());
    let platform = components::network_only(&clients).map_err(|e| e.to_string())?;
    let pace = Pace {
        timeout: Duration::from_secs(300),
        interval: Duration::from_millis(250),
        visibility_window: plinth_e2e::CONSISTENT_VISIBILITY,
    };
    let mut quiet = |_: &str| {};
    let mut phases = Vec::new();

    // Apply: passes until converged (the last pass confirms: nothing to do).
    let (ours, emulator, started) = (
        clients.calls().snapshot(),
        emulator_counts(&endpoint).await?,
        Instant::now(),
    );
    let finished = cli::converge(&platform, &file, pace, &mut quiet)
        .await
        .map_err(|e| e.to_string())?;
    phases.push(Phase {
        name: "apply (create, until converged)",
        wall: started.elapsed(),
        passes: finished.passes,
        ours: clients.calls().snapshot().since(&ours),
        emulator: emulator_diff(&emulator_counts(&endpoint).await?, &emulator),
    });

    // One steady-state pass, as a resync would run it.
    let (ours, emulator, started) = (
        clients.calls().snapshot(),
        emulator_counts(&endpoint).await?,
        Instant::now(),
    );
    let outcome = platform
        .apply(&file.scope, &file.intent(), None)
        .await
        .map_err(|e| e.to_string())?;
    if !outcome.is_converged() {
        return Err(format!(
            "the steady-state pass was not in sync: {:?}",
            outcome.pass.plan
        ));
    }
    phases.push(Phase {
        name: "steady-state pass",
        wall: started.elapsed(),
        passes: 1,
        ours: clients.calls().snapshot().since(&ours),
        emulator: emulator_diff(&emulator_counts(&endpoint).await?, &emulator),
    });

    // Teardown until nothing tagged remains.
    let (ours, emulator, started) = (
        clients.calls().snapshot(),
        emulator_counts(&endpoint).await?,
        Instant::now(),
    );
    let finished = cli::destroy(&platform, &file, pace, &mut quiet)
        .await
        .map_err(|e| e.to_string())?;
    phases.push(Phase {
        name: "teardown (until nothing remains)",
        wall: started.elapsed(),
        passes: finished.passes,
        ours: clients.calls().snapshot().since(&ours),
        emulator: emulator_diff(&emulator_counts(&endpoint).await?, &emulator),
    });
    println!(
        "platform {} ({} zones, NAT gateway per zone) in {}\n",
        file.scope.platform(),
        file.spec().network.availability_zones.len(),
        file.spec().region
    );
    Ok(phases)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(phases) => {
            for phase in &phases {
                println!(
                    "== {}: {:.2} s wall, {} pass(es)",
                    phase.name,
                    phase.wall.as_secs_f64(),
                    phase.passes
                );
                println!("{}", phase.ours);
                println!(
                    "  (emulator's global count over the same interval: {} reads, {} writes{})\n",
                    phase.emulator.0,
                    phase.emulator.1,
                    if phase.emulator != (phase.ours.reads(), phase.ours.writes()) {
                        "; differs: other clients were calling too"
                    } else {
                        ""
                    }
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-network: {e}");
            ExitCode::FAILURE
        }
    }
}
