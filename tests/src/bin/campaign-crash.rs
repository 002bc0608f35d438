//! The crash campaign: the operator process is SIGKILLed at a random moment while it creates,
//! updates (a new app version: a blue/green rollout) and tears down a platform; a new process
//! takes over each time. After every trial: the platform converged, AWS holds zero duplicate
//! resources (two resources tagged for one component key, counted per kind), and after the
//! delete zero resources tagged for the platform remain. Seeded, so a failing trial replays.
//!
//! ```sh
//! cargo build -p plinth-e2e --bins
//! $CARGO_TARGET_DIR/debug/campaign-crash --trials 100 --seed 20261127   # the full campaign
//! $CARGO_TARGET_DIR/debug/campaign-crash --trials 3                     # CI's short version
//! ```

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use plinth_crds::DataPlatform;
use plinth_e2e::cluster::{
    OperatorProcess, TEST_MANAGER, TestNamespace, condition, example, install_crd,
    operator_beside_this_binary,
};
use plinth_e2e::{aws_config, kube_client};
use plinth_operator::aws::AwsClients;
use plinth_operator::components;
use plinth_operator::engine::Scope;
use plinth_operator::intent::Intent;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What to run.
#[derive(Parser)]
struct Args {
    /// Trials (each: create, update, delete, one kill in each).
    #[arg(long, default_value_t = 100)]
    trials: u64,
    /// Seed of the kill moments; trial `i` uses `seed + i`.
    #[arg(long, default_value_t = 20_261_127)]
    seed: u64,
    /// The file in `examples/` each trial's platform is made from.
    #[arg(long, default_value = "minimal.yaml")]
    example: String,
    /// The kill falls within this many milliseconds after each phase starts.
    #[arg(long, default_value_t = 4_000)]
    window_ms: u64,
    /// Give up on a phase after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

type Failure = Box<dyn std::error::Error>;

/// What one trial found.
#[derive(Default)]
struct Verdict {
    duplicates: Vec<String>,
    leaked: usize,
}

fn ready(dp: &DataPlatform) -> bool {
    condition(dp, "Ready").is_some_and(|(status, _)| status == "True")
        && dp.status.as_ref().and_then(|s| s.observed_generation) == dp.metadata.generation
        && dp
            .status
            .as_ref()
            .and_then(|s| s.app.as_ref())
            .is_none_or(|app| app.rollout.is_none())
}

async fn wait(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Result<bool, Failure>,
) -> Result<(), Failure> {
    let started = Instant::now();
    while !check().await? {
        if started.elapsed() > timeout {
            return Err(format!("{what}: not within {timeout:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

/// Duplicates per kind in what AWS holds for the platform, by the engine's own observe.
async fn duplicates(
    aws: &AwsClients,
    scope: &Scope,
    intent: &Intent,
) -> Result<Vec<String>, Failure> {
    let platform = components::platform(aws)?;
    let pass = platform.plan(scope, intent).await?;
    Ok(pass
        .observed
        .duplicated()
        .map(|(key, extra)| {
            let ids: Vec<&str> = extra.iter().map(|r| r.id.as_str()).collect();
            format!("{key}: {} extra ({})", extra.len(), ids.join(", "))
        })
        .collect())
}

/// Spawns a replica, waits a random moment within the window, kills it, and spawns the one
/// that must finish the job.
async fn crash_once(
    binary: &str,
    namespace: &str,
    rng: &mut StdRng,
    window_ms: u64,
    phase: &str,
) -> OperatorProcess {
    let first = OperatorProcess::spawn(binary, namespace, &format!("{phase}-a"));
    let after = rng.random_range(0..=window_ms);
    tokio::time::sleep(Duration::from_millis(after)).await;
    first.kill();
    OperatorProcess::spawn(binary, namespace, &format!("{phase}-b"))
}

async fn trial(
    args: &Args,
    index: u64,
    binary: &str,
    client: &kube::Client,
    aws: &AwsClients,
) -> Result<Verdict, Failure> {
    let mut rng = StdRng::seed_from_u64(args.seed + index);
    let ns = TestNamespace::create(client, "crash").await;
    let namespace = ns.name.clone();
    let api = ns.platforms();
    let name = "crash";
    let dp = example(&args.example, name, &namespace);
    let timeout = Duration::from_secs(args.timeout);
    let scope = Scope::new(&namespace, name, dp.spec.tags.clone());
    let mut verdict = Verdict::default();

    // Create, killed once.
    api.create(&PostParams::default(), &dp).await?;
    let replica = crash_once(binary, &namespace, &mut rng, args.window_ms, "create").await;
    wait("Ready after the create", timeout, async || {
        Ok(ready(&api.get(name).await?))
    })
    .await?;
    let intent = Intent::steady(api.get(name).await?.spec);
    verdict
        .duplicates
        .extend(duplicates(aws, &scope, &intent).await?);
    replica.kill();

    // A new app version (a rollout), killed once.
    // Steps of 30 s, which the replicas' PLINTH_ROLLOUT_STEP_SCALE of 0.1 makes 3 s.
    let patch =
        serde_json::json!({"spec": {"app": {"version": "1.0.1", "rollout": {"stepSeconds": 30}}}});
    api.patch(
        name,
        &PatchParams::apply(TEST_MANAGER),
        &Patch::Merge(&patch),
    )
    .await?;
    let replica = crash_once(binary, &namespace, &mut rng, args.window_ms, "update").await;
    wait("Ready after the update", timeout, async || {
        Ok(ready(&api.get(name).await?))
    })
    .await?;
    let intent = Intent::steady(api.get(name).await?.spec);
    verdict
        .duplicates
        .extend(duplicates(aws, &scope, &intent).await?);
    replica.kill();

    // Delete, killed once.
    api.delete(name, &DeleteParams::default()).await?;
    let replica = crash_once(binary, &namespace, &mut rng, args.window_ms, "delete").await;
    wait("the platform gone after the delete", timeout, async || {
        Ok(api.get_opt(name).await?.is_none())
    })
    .await?;
    replica.kill();
    let platform = components::platform(aws)?;
    verdict.leaked = platform.plan(&scope, &intent).await?.observed.len();
    Ok(verdict)
}

async fn run(args: Args) -> Result<bool, Failure> {
    let client = kube_client().await?;
    install_crd(&client).await;
    let aws = plinth_e2e::reader_clients(&aws_config().await?);
    let binary = operator_beside_this_binary()?
        .to_string_lossy()
        .into_owned();
    println!(
        "crash campaign: {} trial(s), seed {}, {}, a kill within {} ms of each phase",
        args.trials, args.seed, args.example, args.window_ms
    );
    let started = Instant::now();
    let mut failures: BTreeMap<u64, String> = BTreeMap::new();
    let (mut duplicates, mut leaked) = (0, 0);
    for i in 0..args.trials {
        let trial_started = Instant::now();
        match trial(&args, i, &binary, &client, &aws).await {
            Ok(verdict) => {
                duplicates += verdict.duplicates.len();
                leaked += verdict.leaked;
                let ok = verdict.duplicates.is_empty() && verdict.leaked == 0;
                println!(
                    "  trial {i:>3} (seed {}): {} in {:.1?}{}",
                    args.seed + i,
                    if ok { "converged" } else { "FAILED" },
                    trial_started.elapsed(),
                    verdict
                        .duplicates
                        .iter()
                        .map(|d| format!("\n      duplicate {d}"))
                        .chain((verdict.leaked > 0).then(|| {
                            format!("\n      {} resource(s) left after delete", verdict.leaked)
                        }))
                        .collect::<String>()
                );
                if !ok {
                    failures.insert(i, "duplicates or leaks".into());
                }
            }
            Err(e) => {
                println!(
                    "  trial {i:>3} (seed {}): did not converge: {e}",
                    args.seed + i
                );
                failures.insert(i, e.to_string());
            }
        }
    }
    println!(
        "{} trial(s) in {:.0?}: {} converged, {duplicates} duplicate(s), {leaked} leaked resource(s)",
        args.trials,
        started.elapsed(),
        args.trials as usize - failures.len()
    );
    Ok(failures.is_empty())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("campaign-crash: {e}");
            ExitCode::FAILURE
        }
    }
}
