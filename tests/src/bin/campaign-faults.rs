//! The faults campaign: the whole lifecycle of a platform (create, a blue/green rollout of a new
//! version, delete) under the shipped operator process, against two private emulators side by
//! side: one fault-free, one throttling 20 % and failing 5 % of every call with a 5xx, both with
//! pending states. Every trial must converge with no duplicate and nothing left after the
//! delete; the calls the operator spent are printed for both, as a ratio measured in one run.
//!
//! ```sh
//! cargo build -p plinth-e2e --bins
//! $CARGO_TARGET_DIR/debug/campaign-faults --trials 10    # the full campaign (10 pairs)
//! $CARGO_TARGET_DIR/debug/campaign-faults --trials 10 --lag   # the same with AWS's lag
//! $CARGO_TARGET_DIR/debug/campaign-faults --trials 1 --pending-seconds 0 --lag   # CI's short version
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt as _;
use plinth_e2e::campaign::{LAG_VISIBILITY_SECONDS, Replicas, Trial, Verdict};
use plinth_e2e::cluster::{install_crd, operator_beside_this_binary};
use plinth_e2e::emulator::{PrivateEmulator, faults_answered};
use plinth_e2e::kube_client;

/// What to run.
#[derive(Parser)]
struct Args {
    /// Trials on each emulator.
    #[arg(long, default_value_t = 10)]
    trials: u64,
    /// Seed of the faulty emulator's draws.
    #[arg(long, default_value_t = 20_261_127)]
    seed: u64,
    /// Share of calls answered with a throttling error.
    #[arg(long, default_value = "0.2")]
    throttle_rate: String,
    /// Share of calls answered with a 5xx.
    #[arg(long, default_value = "0.05")]
    error_5xx_rate: String,
    /// Seconds each AWS resource stays pending, on both emulators.
    #[arg(long, default_value = "0.5")]
    pending_seconds: String,
    /// The file in `examples/` each trial's platform is made from.
    #[arg(long, default_value = "minimal.yaml")]
    example: String,
    /// Trials at once (over both emulators).
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Give up on a phase after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Turn both emulators' consistency model on (creates invisible for a while, deletes
    /// lingering, IAM profiles unusable at first), as AWS is.
    #[arg(long)]
    lag: bool,
}

type Failure = Box<dyn std::error::Error>;

/// The replicas' log filter: `PLINTH_OPERATOR_LOG`, else errors only.
fn operator_log() -> &'static str {
    static LOG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LOG.get_or_init(|| std::env::var("PLINTH_OPERATOR_LOG").unwrap_or_else(|_| "error".into()))
}

struct Side<'a> {
    name: &'static str,
    replicas: Replicas<'a>,
    aws: plinth_operator::aws::AwsClients,
}

impl<'a> Side<'a> {
    async fn new(
        name: &'static str,
        emulator: &'a PrivateEmulator,
        binary: &'a str,
        lag: bool,
    ) -> Result<Self, Failure> {
        let mut env = vec![
            ("AWS_ENDPOINT_URL", emulator.endpoint.as_str()),
            // Rollout steps of 1.5 s instead of the CRD's 30 s minimum.
            ("PLINTH_ROLLOUT_STEP_SCALE", "0.05"),
            // Every injected fault is a warning in the operator's log: keep errors only, unless
            // PLINTH_OPERATOR_LOG asks for more (a filter like RUST_LOG's).
            ("RUST_LOG", operator_log()),
        ];
        if lag {
            env.push(("PLINTH_AWS_VISIBILITY_SECONDS", LAG_VISIBILITY_SECONDS));
        }
        Ok(Self {
            name,
            replicas: Replicas { binary, env },
            // Verdicts read the truth, whatever the emulator's lag shows the operator.
            aws: plinth_e2e::truth_clients(&emulator.sdk_config().await?),
        })
    }
}

async fn run(args: Args) -> Result<bool, Failure> {
    let client = kube_client().await?;
    install_crd(&client).await;
    let seed = args.seed.to_string();
    let lag = if args.lag { "1" } else { "0" };
    let clean = PrivateEmulator::start(&[
        ("PLINTH_PENDING_SECONDS", &args.pending_seconds),
        ("PLINTH_LAG", lag),
    ])?;
    let faulty = PrivateEmulator::start(&[
        ("PLINTH_PENDING_SECONDS", &args.pending_seconds),
        ("PLINTH_FAULT_SEED", &seed),
        ("PLINTH_FAULT_THROTTLE_RATE", &args.throttle_rate),
        ("PLINTH_FAULT_5XX_RATE", &args.error_5xx_rate),
        ("PLINTH_LAG", lag),
    ])?;
    let binary = operator_beside_this_binary()?
        .to_string_lossy()
        .into_owned();
    let sides = [
        Side::new("fault-free", &clean, &binary, args.lag).await?,
        Side::new("faulty", &faulty, &binary, args.lag).await?,
    ];
    let trial = Trial {
        example: &args.example,
        seed: args.seed,
        kill_within_ms: None,
        timeout: Duration::from_secs(args.timeout),
    };
    println!(
        "faults campaign: {} trial(s) on each of a fault-free emulator and one throttling {} and failing {} of calls with a 5xx (seed {}), {} s pending on both{}, {} at a time",
        args.trials,
        args.throttle_rate,
        args.error_5xx_rate,
        args.seed,
        args.pending_seconds,
        if args.lag {
            format!(", AWS's lag on both (operator's visibility window {LAG_VISIBILITY_SECONDS} s)")
        } else {
            String::new()
        },
        args.parallel
    );
    let started = Instant::now();
    let jobs: Vec<(u64, &Side<'_>)> = (0..args.trials)
        .flat_map(|i| sides.iter().map(move |side| (i, side)))
        .collect();
    let mut runs = futures::stream::iter(jobs)
        .map(|(i, side)| {
            let (trial, client) = (&trial, &client);
            async move {
                let took = Instant::now();
                let label = if side.name == "faulty" {
                    "faulty"
                } else {
                    "clean"
                };
                let result = trial.run(i, &side.replicas, client, &side.aws, label).await;
                (i, side.name, took.elapsed(), result)
            }
        })
        .buffer_unordered(args.parallel.max(1));
    let mut ok = true;
    let mut totals = [(0u64, 0u64); 2];
    while let Some((i, name, took, result)) = runs.next().await {
        let slot = usize::from(name == "faulty");
        match result {
            Ok(Verdict {
                duplicates,
                leaked,
                calls,
            }) => {
                let clean = duplicates.is_empty() && leaked == 0;
                ok &= clean;
                if let Some(total) = totals.get_mut(slot) {
                    total.0 += 1;
                    total.1 += calls;
                }
                println!(
                    "  {name:<10} trial {i:>2}: {} in {took:.1?}, {calls} AWS calls{}{}",
                    if clean { "converged" } else { "FAILED" },
                    duplicates
                        .iter()
                        .map(|d| format!("\n      duplicate {d}"))
                        .collect::<String>(),
                    if leaked > 0 {
                        format!("\n      {leaked} resource(s) left after delete")
                    } else {
                        String::new()
                    }
                );
            }
            Err(e) => {
                ok = false;
                println!("  {name:<10} trial {i:>2}: did not converge: {e}");
            }
        }
    }
    drop(runs);
    let mean = |(n, calls): (u64, u64)| calls as f64 / n.max(1) as f64;
    let (clean_mean, faulty_mean) = (mean(totals[0]), mean(totals[1]));
    let (throttled, server_errors) = faults_answered(&faulty.calls().await);
    println!(
        "{} trial(s) in {:.0?}: {}",
        2 * args.trials,
        started.elapsed(),
        if ok {
            "every one converged, no duplicate, nothing left after delete"
        } else {
            "FAILURES above"
        }
    );
    println!(
        "operator AWS calls per lifecycle: fault-free {clean_mean:.0}, faulty {faulty_mean:.0} ({:.2}×); the faulty emulator answered {throttled} throttling errors and {server_errors} 5xx",
        faulty_mean / clean_mean.max(1.0)
    );
    Ok(ok)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("campaign-faults: {e}");
            ExitCode::FAILURE
        }
    }
}
