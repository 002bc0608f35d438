//! The crash campaign: the operator process is SIGKILLed at a random moment while it creates,
//! updates (a new app version: a blue/green rollout) and tears down a platform; a new process
//! takes over each time. After every trial: the platform converged, AWS holds zero duplicate
//! resources (two resources tagged for one component key, counted per kind), and after the
//! delete zero resources tagged for the platform remain. Seeded, so a failing trial replays.
//!
//! ```sh
//! cargo build -p plinth-e2e --bins
//! $CARGO_TARGET_DIR/debug/campaign-crash --trials 100 --seed 20261127   # the full campaign
//! $CARGO_TARGET_DIR/debug/campaign-crash --trials 4                     # CI's short version
//! ```
//!
//! The trials run `--parallel` at a time, each in its own namespace with its own replicas,
//! against a private emulator whose resources stay pending `--pending-seconds`, so a kill can
//! land while AWS is still creating or deleting.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt as _;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use plinth_crds::DataPlatform;
use plinth_e2e::cluster::{
    OperatorProcess, TEST_MANAGER, TestNamespace, condition, example, install_crd,
    operator_beside_this_binary,
};
use plinth_e2e::emulator::PrivateEmulator;
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
    /// Trials at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Seconds each AWS resource stays pending in the private emulator.
    #[arg(long, default_value = "0.5")]
    pending_seconds: String,
    /// Run against the stack's shared emulator (its default pending states) instead.
    #[arg(long)]
    shared_emulator: bool,
}

/// Settings every replica of a trial gets on top of the stack's.
struct Replicas<'a> {
    binary: &'a str,
    env: Vec<(&'a str, &'a str)>,
}

impl Replicas<'_> {
    fn spawn(&self, namespace: &str, identity: &str) -> OperatorProcess {
        OperatorProcess::spawn_with(self.binary, namespace, identity, &self.env)
    }
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
    replicas: &Replicas<'_>,
    namespace: &str,
    rng: &mut StdRng,
    window_ms: u64,
    phase: &str,
) -> OperatorProcess {
    let first = replicas.spawn(namespace, &format!("{phase}-a"));
    let after = rng.random_range(0..=window_ms);
    tokio::time::sleep(Duration::from_millis(after)).await;
    first.kill();
    replicas.spawn(namespace, &format!("{phase}-b"))
}

async fn trial(
    args: &Args,
    index: u64,
    replicas: &Replicas<'_>,
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
    let replica = crash_once(replicas, &namespace, &mut rng, args.window_ms, "create").await;
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
    // Steps of 30 s, which the replicas' PLINTH_ROLLOUT_STEP_SCALE makes 1.5 s.
    let patch =
        serde_json::json!({"spec": {"app": {"version": "1.0.1", "rollout": {"stepSeconds": 30}}}});
    api.patch(
        name,
        &PatchParams::apply(TEST_MANAGER),
        &Patch::Merge(&patch),
    )
    .await?;
    let replica = crash_once(replicas, &namespace, &mut rng, args.window_ms, "update").await;
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
    let replica = crash_once(replicas, &namespace, &mut rng, args.window_ms, "delete").await;
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
    let emulator = if args.shared_emulator {
        None
    } else {
        Some(PrivateEmulator::start(&[(
            "PLINTH_PENDING_SECONDS",
            args.pending_seconds.as_str(),
        )])?)
    };
    let config = match &emulator {
        Some(e) => e.sdk_config().await?,
        None => aws_config().await?,
    };
    let aws = plinth_e2e::reader_clients(&config);
    let binary = operator_beside_this_binary()?
        .to_string_lossy()
        .into_owned();
    let mut env = vec![
        // A killed leader's Lease expires after 3 s instead of the tests' 6 s.
        ("PLINTH_LEASE_SECONDS", "3"),
        // Rollout steps of 1.5 s instead of the CRD's 30 s minimum.
        ("PLINTH_ROLLOUT_STEP_SCALE", "0.05"),
    ];
    if let Some(e) = &emulator {
        env.push(("AWS_ENDPOINT_URL", e.endpoint.as_str()));
    }
    let replicas = Replicas {
        binary: &binary,
        env,
    };
    println!(
        "crash campaign: {} trial(s), {} at a time, seed {}, {}, a kill within {} ms of each phase, {}",
        args.trials,
        args.parallel,
        args.seed,
        args.example,
        args.window_ms,
        match &emulator {
            Some(_) => format!("private emulator with {} s pending", args.pending_seconds),
            None => "the stack's emulator".to_owned(),
        }
    );
    let started = Instant::now();
    let mut failures: BTreeMap<u64, String> = BTreeMap::new();
    let (mut duplicates, mut leaked) = (0, 0);
    let mut trials = futures::stream::iter(0..args.trials)
        .map(|i| {
            let (args, replicas, client, aws) = (&args, &replicas, &client, &aws);
            async move {
                let trial_started = Instant::now();
                let result = trial(args, i, replicas, client, aws).await;
                (i, trial_started.elapsed(), result)
            }
        })
        .buffer_unordered(args.parallel.max(1));
    while let Some((i, took, result)) = trials.next().await {
        match result {
            Ok(verdict) => {
                duplicates += verdict.duplicates.len();
                leaked += verdict.leaked;
                let ok = verdict.duplicates.is_empty() && verdict.leaked == 0;
                println!(
                    "  trial {i:>3} (seed {}): {} in {took:.1?}{}",
                    args.seed + i,
                    if ok { "converged" } else { "FAILED" },
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
