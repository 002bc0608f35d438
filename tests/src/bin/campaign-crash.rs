//! The crash campaign: the operator process is SIGKILLed at a random moment while it creates,
//! updates (a new app version: a blue/green rollout) and tears down a platform; a new process
//! takes over each time. After every trial: the platform converged, AWS holds zero duplicate
//! resources (two resources tagged for one component key, counted per kind), and after the
//! delete zero resources tagged for the platform remain. Seeded, so a failing trial replays.
//!
//! ```sh
//! cargo build -p plinth-e2e --bins
//! $CARGO_TARGET_DIR/debug/campaign-crash --trials 100 --seed 20261127   # the full campaign
//! $CARGO_TARGET_DIR/debug/campaign-crash --trials 100 --lag             # with AWS's lag
//! $CARGO_TARGET_DIR/debug/campaign-crash --trials 2 --parallel 2 --lag  # CI's short version
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
use plinth_e2e::campaign::{LAG_VISIBILITY_SECONDS, Replicas, Trial};
use plinth_e2e::cluster::{install_crd, operator_beside_this_binary};
use plinth_e2e::emulator::PrivateEmulator;
use plinth_e2e::{aws_config, kube_client};

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
    /// Turn the private emulator's consistency model on: creates invisible to reads for
    /// 0–5 s (the tagging API 0–15 s), deletes lingering 0–5 s, IAM profiles unusable 2–8 s.
    #[arg(long, conflicts_with = "shared_emulator")]
    lag: bool,
}

type Failure = Box<dyn std::error::Error>;

async fn run(args: Args) -> Result<bool, Failure> {
    let client = kube_client().await?;
    install_crd(&client).await;
    let emulator = if args.shared_emulator {
        None
    } else {
        let mut settings = vec![("PLINTH_PENDING_SECONDS", args.pending_seconds.as_str())];
        if args.lag {
            settings.push(("PLINTH_LAG", "1"));
        }
        Some(PrivateEmulator::start(&settings)?)
    };
    let config = match &emulator {
        Some(e) => e.sdk_config().await?,
        None => aws_config().await?,
    };
    // Verdicts read the truth, whatever the emulator's lag shows the operator.
    let aws = plinth_e2e::truth_clients(&config);
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
    if args.lag {
        env.push(("PLINTH_AWS_VISIBILITY_SECONDS", LAG_VISIBILITY_SECONDS));
    }
    let replicas = Replicas {
        binary: &binary,
        env,
    };
    let trial = Trial {
        example: &args.example,
        seed: args.seed,
        kill_within_ms: Some(args.window_ms),
        timeout: Duration::from_secs(args.timeout),
    };
    println!(
        "crash campaign: {} trial(s), {} at a time, seed {}, {}, a kill within {} ms of each phase, {}",
        args.trials,
        args.parallel,
        args.seed,
        args.example,
        args.window_ms,
        match &emulator {
            Some(_) if args.lag => format!(
                "private emulator with {} s pending and AWS's lag (operator's visibility window {LAG_VISIBILITY_SECONDS} s)",
                args.pending_seconds
            ),
            Some(_) => format!("private emulator with {} s pending", args.pending_seconds),
            None => "the stack's emulator".to_owned(),
        }
    );
    let started = Instant::now();
    let mut failures: BTreeMap<u64, String> = BTreeMap::new();
    let (mut duplicates, mut leaked) = (0, 0);
    let mut trials = futures::stream::iter(0..args.trials)
        .map(|i| {
            let (trial, replicas, client, aws) = (&trial, &replicas, &client, &aws);
            async move {
                let trial_started = Instant::now();
                let result = trial.run(i, replicas, client, aws, "crash").await;
                (i, trial_started.elapsed(), result)
            }
        })
        .buffer_unordered(args.parallel.max(1));
    while let Some((i, took, result)) = trials.next().await {
        match result {
            Ok(verdict) => {
                duplicates += verdict.duplicates.len();
                leaked += verdict.leaked;
                let ok = verdict.is_clean();
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
