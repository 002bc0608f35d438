//! The fleet benchmark: many DataPlatforms in one operator process (or two replicas with a
//! leader failover in the middle) against a private AWS emulator without pending delays (or the
//! stack's, `--shared-emulator`). Prints the time until every platform is Ready, the AWS calls
//! one steady-state resync costs per platform (reads and writes, from the operator's own
//! `/metrics`), the time until every platform is deleted, what is left in AWS afterwards (read
//! back; the run fails if anything is), the CPU the operator and the emulator used, and the
//! operator's peak RSS.
//!
//! ```sh
//! cargo build --release -p plinth-e2e --bins
//! $CARGO_TARGET_DIR/release/bench-fleet --platforms 200            # one replica
//! $CARGO_TARGET_DIR/release/bench-fleet --platforms 200 --failover # two, the leader killed midway
//! $CARGO_TARGET_DIR/debug/bench-fleet --platforms 3                # CI's short version
//! ```
//! The operator is the shipped process (`plinth-operator-e2e` next to this binary): build both
//! with `--release` to measure the RSS and CPU a deployment would see. `--aws-calls-per-second`
//! sets the operator's own per-service rate limit (default 20, the shipped default).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use plinth_crds::DataPlatform;
use plinth_e2e::campaign::{observe, ready};
use plinth_e2e::cluster::{
    OperatorProcess, TEST_MANAGER, TestNamespace, example, install_crd, operator_beside_this_binary,
};
use plinth_e2e::emulator::PrivateEmulator;
use plinth_e2e::{aws_config, kube_client, unique_name};
use plinth_operator::aws::calls::is_read;
use plinth_operator::engine::Scope;
use plinth_operator::intent::Intent;

/// What to run.
#[derive(Parser)]
struct Args {
    /// How many platforms.
    #[arg(long, default_value_t = 200)]
    platforms: usize,
    /// The file in `examples/` each platform is made from (name and namespace replaced).
    #[arg(long, default_value = "minimal.yaml")]
    example: String,
    /// Two replicas; SIGKILL the leader once half the platforms are Ready.
    #[arg(long)]
    failover: bool,
    /// Give up after this many seconds in a phase.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// The operator binary (default: `plinth-operator-e2e` beside this one).
    #[arg(long)]
    operator: Option<PathBuf>,
    /// Run against the stack's shared emulator instead of a private one started for this run.
    #[arg(long)]
    shared_emulator: bool,
    /// Seconds each AWS resource stays pending in the private emulator (0: none, the target's
    /// "without injected delays"; the stack's default is 2–3 s per kind).
    #[arg(long, default_value = "0")]
    pending_seconds: String,
    /// The operator's own AWS rate limit, calls per second per service (its default keeps to
    /// EC2's refill rate for describes; an emulator has no such limit).
    #[arg(long, default_value = "20")]
    aws_calls_per_second: String,
}

type Failure = Box<dyn std::error::Error>;

/// Runs once while waiting, given the replicas and how many platforms are done so far; true
/// when it acted (it is not called again).
type Midway<'a> = dyn FnMut(&mut [OperatorProcess], usize) -> bool + 'a;

/// Polls until `done` holds for the listed platforms, sampling every replica's RSS; returns the
/// elapsed time. Runs `midway` once, when `half` holds.
async fn wait_for(
    api: &Api<DataPlatform>,
    replicas: &mut [OperatorProcess],
    peak_kib: &mut u64,
    timeout: Duration,
    what: &str,
    done: impl Fn(&[DataPlatform]) -> (usize, bool),
    mut midway: Option<&mut Midway<'_>>,
) -> Result<Duration, Failure> {
    let started = Instant::now();
    let mut last_report = Instant::now();
    loop {
        for replica in replicas.iter() {
            let (now, hwm) = replica.rss_kib();
            *peak_kib = (*peak_kib).max(now).max(hwm);
        }
        let list = api.list(&ListParams::default()).await?;
        let (count, finished) = done(&list.items);
        if finished {
            return Ok(started.elapsed());
        }
        if let Some(hook) = midway.as_mut()
            && hook(replicas, count)
        {
            midway = None;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            println!("  … {what}: {count} after {:.0?}", started.elapsed());
            last_report = Instant::now();
        }
        if started.elapsed() > timeout {
            return Err(format!("{what}: only {count} after {timeout:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    let client: Client = kube_client().await?;
    install_crd(&client).await;
    let ns = TestNamespace::create(&client, "fleet").await;
    let namespace = ns.name.clone();
    let api = ns.platforms();

    let binary = match args.operator {
        Some(path) => path,
        None => operator_beside_this_binary()?,
    };
    let replica_count = if args.failover { 2 } else { 1 };
    let emulator = if args.shared_emulator {
        None
    } else {
        Some(PrivateEmulator::start(&[(
            "PLINTH_PENDING_SECONDS",
            args.pending_seconds.as_str(),
        )])?)
    };
    let mut endpoint: Vec<(&str, &str)> = emulator
        .iter()
        .map(|e| ("AWS_ENDPOINT_URL", e.endpoint.as_str()))
        .collect();
    endpoint.push(("PLINTH_AWS_CALLS_PER_SECOND", &args.aws_calls_per_second));
    let mut replicas = (0..replica_count)
        .map(|i| {
            OperatorProcess::spawn_with(
                &binary.to_string_lossy(),
                &namespace,
                &format!("fleet-{i}"),
                &endpoint,
            )
        })
        .collect::<Vec<_>>();
    println!(
        "fleet: {} platform(s) from {} in namespace {namespace}, {replica_count} replica(s), {} AWS calls/s per service, {}",
        args.platforms,
        args.example,
        args.aws_calls_per_second,
        match &emulator {
            Some(e) => format!(
                "private emulator {} with {} s pending",
                e.endpoint, args.pending_seconds
            ),
            None => "the stack's emulator".to_owned(),
        }
    );

    let started = Instant::now();
    for i in 0..args.platforms {
        let dp = example(&args.example, &format!("p{i:03}"), &namespace);
        api.create(&PostParams::default(), &dp).await?;
    }
    println!(
        "  created {} objects in {:.1?}",
        args.platforms,
        started.elapsed()
    );

    let mut peak = 0;
    let timeout = Duration::from_secs(args.timeout);
    let total = args.platforms;
    let half = total / 2;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    let leader = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let mut killed = None;
    let mut failover = |replicas: &mut [OperatorProcess], count: usize| -> bool {
        if replicas.len() < 2 || count < half {
            return false;
        }
        let holder = leader.lock().map(|l| l.clone()).unwrap_or_default();
        let Some(holder) = holder else {
            return false;
        };
        if let Some(replica) = replicas.iter_mut().find(|r| r.identity == holder) {
            println!("  SIGKILL the leader {holder} at {count}/{total} Ready");
            replica.kill_in_place();
            killed = Some(holder);
        }
        true
    };
    // The Lease holder is read on every poll before the hook, so the kill hits the leader.
    let lease_watch = {
        let leader = leader.clone();
        let leases = leases.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(lease) = leases.get("plinth-operator").await {
                    let holder = lease.spec.and_then(|s| s.holder_identity);
                    if let Ok(mut l) = leader.lock() {
                        *l = holder;
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let to_ready = wait_for(
        &api,
        &mut replicas,
        &mut peak,
        timeout,
        "Ready",
        |items| {
            let n = items.iter().filter(|dp| ready(dp)).count();
            (n, n == total)
        },
        if args.failover {
            Some(&mut failover)
        } else {
            None
        },
    )
    .await?;
    lease_watch.abort();
    println!(
        "all {total} Ready {:.1?} after the first create ({to_ready:.1?} after the last)",
        started.elapsed()
    );

    // One steady-state resync of every platform: request a pass on each and count the calls.
    let live: Vec<&OperatorProcess> = replicas
        .iter()
        .filter(|r| Some(&r.identity) != killed.as_ref())
        .collect();
    let mut before = BTreeMap::new();
    for replica in &live {
        for (k, v) in replica.aws_calls().await? {
            *before.entry(k).or_insert(0) += v;
        }
    }
    let stamp = format!("fleet-{}", unique_name("resync"));
    for i in 0..total {
        let patch = serde_json::json!({"metadata": {"annotations": {"plinth.dev/reconcile-requested-at": stamp}}});
        api.patch(
            &format!("p{i:03}"),
            &PatchParams::apply(TEST_MANAGER),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    let resync = wait_for(
        &api,
        &mut replicas,
        &mut peak,
        timeout,
        "resynced",
        |items| {
            let n = items
                .iter()
                .filter(|dp| {
                    dp.status
                        .as_ref()
                        .and_then(|s| s.last_handled_reconcile_at.as_ref())
                        == Some(&stamp)
                })
                .count();
            (n, n == total)
        },
        None,
    )
    .await?;
    let live: Vec<&OperatorProcess> = replicas
        .iter()
        .filter(|r| Some(&r.identity) != killed.as_ref())
        .collect();
    let mut after = BTreeMap::new();
    for replica in &live {
        for (k, v) in replica.aws_calls().await? {
            *after.entry(k).or_insert(0) += v;
        }
    }
    let (mut reads, mut writes) = (0u64, 0u64);
    let mut by_operation = BTreeMap::new();
    for (key, count) in &after {
        let delta = count.saturating_sub(before.get(key).copied().unwrap_or(0));
        if delta == 0 {
            continue;
        }
        if is_read(&key.1) {
            reads += delta;
        } else {
            writes += delta;
        }
        by_operation.insert(format!("{}:{}", key.0, key.1), delta);
    }
    println!(
        "one steady-state resync of all {total} in {resync:.1?}: {:.1} reads and {:.2} writes per platform",
        reads as f64 / total as f64,
        writes as f64 / total as f64
    );
    for (operation, count) in &by_operation {
        println!("  {operation:<50} {count}");
    }

    // Read back with the engine's own observe (after the resync, so the reads are not counted
    // as the operator's): no component of any platform exists twice, failover or not.
    let config = match &emulator {
        Some(e) => e.sdk_config().await?,
        None => aws_config().await?,
    };
    let reader = plinth_e2e::reader_clients(&config);
    // Platform `p{i:03}` as AWS holds it, by the engine's own observe.
    let read_back = async |i: usize| {
        let name = format!("p{i:03}");
        let dp = example(&args.example, &name, &namespace);
        let scope = Scope::new(&namespace, &name, dp.spec.tags.clone());
        observe(&reader, &scope, &Intent::steady(dp.spec))
            .await
            .map(|observed| (name, observed))
    };
    let mut duplicated = Vec::new();
    for i in 0..total {
        let (name, observed) = read_back(i).await?;
        duplicated.extend(
            observed
                .duplicated()
                .map(|(key, extra)| format!("{name} {key}: {} extra", extra.len())),
        );
    }
    println!(
        "duplicate resources across the {total} platforms: {}",
        duplicated.len()
    );
    if !duplicated.is_empty() {
        return Err(format!("duplicates: {}", duplicated.join("; ")).into());
    }

    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    let to_gone = wait_for(
        &api,
        &mut replicas,
        &mut peak,
        timeout,
        "still present",
        |items| (items.len(), items.is_empty()),
        None,
    )
    .await?;
    println!("all {total} deleted (AWS torn down, finalizers released) after {to_gone:.1?}");
    // The operator's word is not enough: read AWS back with the engine's own observe.
    let mut leaked = 0;
    for i in 0..total {
        leaked += read_back(i).await?.1.len();
    }
    println!("resources left in AWS for the {total} deleted platforms: {leaked}");
    if leaked > 0 {
        return Err(format!("{leaked} resource(s) leaked").into());
    }
    let operator_cpu: f64 = replicas.iter().map(OperatorProcess::cpu_seconds).sum();
    let total_calls: u64 = {
        let mut sum = 0;
        for replica in replicas
            .iter()
            .filter(|r| Some(&r.identity) != killed.as_ref())
        {
            sum += replica.aws_calls().await?.values().sum::<u64>();
        }
        sum
    };
    println!(
        "CPU used: operator {operator_cpu:.1} s{} for {total_calls} AWS calls ({:.2} ms per call){}",
        if args.failover {
            " (the live replica)"
        } else {
            ""
        },
        operator_cpu * 1000.0 / total_calls.max(1) as f64,
        match &emulator {
            Some(e) => format!(
                ", emulator {:.1} s ({:.2} ms per call)",
                e.cpu_seconds(),
                e.cpu_seconds() * 1000.0 / total_calls.max(1) as f64
            ),
            None => String::new(),
        }
    );
    println!(
        "operator peak RSS: {:.1} MiB{}",
        peak as f64 / 1024.0,
        if args.failover {
            " (the larger replica)"
        } else {
            ""
        }
    );
    drop(replicas);
    ns.delete().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-fleet: {e}");
            ExitCode::FAILURE
        }
    }
}
