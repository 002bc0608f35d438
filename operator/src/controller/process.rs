//! The operator process: its flags (each with an environment variable, as the Helm chart sets
//! them), logging, the AWS clients per region, and signals. SIGTERM or Ctrl-C finishes the
//! passes in flight, releases the leader Lease and exits 0. Every binary that runs the operator
//! calls [`main`], so tests start exactly what ships.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use crate::aws::{AwsOptions, AwsRegions};
use crate::components;
use crate::controller::{self, Settings};
use crate::metrics::Metrics;
use crate::platform::Platforms;
use crate::telemetry::{self, LogFormat};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// Reconciles DataPlatform resources into AWS.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "PLINTH_WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Watch only DataPlatforms matching this label selector, to split a fleet across
    /// several operator deployments (e.g. `plinth.dev/shard=a`).
    #[arg(long, env = "PLINTH_LABEL_SELECTOR")]
    selector: Option<String>,
    /// Longest interval between checks of a Ready platform, in seconds (jittered below it).
    #[arg(long, env = "PLINTH_RESYNC_SECONDS", default_value_t = 600)]
    resync_seconds: u64,
    /// This replica's identity in the Lease and in events.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Namespace of the leader Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, env = "PLINTH_LEASE_NAME", default_value = "plinth-operator")]
    lease_name: String,
    /// Seconds a Lease lasts without renewal; a standby takes over after it expires.
    #[arg(long, env = "PLINTH_LEASE_SECONDS", default_value_t = 15)]
    lease_seconds: u64,
    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "PLINTH_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// AWS calls per second per service and region, twice as many in a burst. The default keeps
    /// to EC2's refill rate for describes; raise it with the account's limits.
    #[arg(
        long,
        env = "PLINTH_AWS_CALLS_PER_SECOND",
        default_value_t = crate::aws::DEFAULT_CALLS_PER_SECOND
    )]
    aws_calls_per_second: u32,
    /// Seconds AWS may take to list a resource after its create: until then a create the
    /// operator sent is not sent again, and a teardown waits for it. A create never listed
    /// within it is taken as never made.
    #[arg(
        long,
        env = "PLINTH_AWS_VISIBILITY_SECONDS",
        default_value_t = crate::engine::DEFAULT_VISIBILITY_WINDOW.as_secs()
    )]
    aws_visibility_seconds: u64,
    /// Log format.
    #[arg(long, env = "PLINTH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
    /// Multiplies every rollout hold and timeout; for test campaigns that cannot wait out the
    /// CRD's 30 s minimum step. Keep 1 in production.
    #[arg(
        long,
        env = "PLINTH_ROLLOUT_STEP_SCALE",
        default_value_t = 1.0,
        hide = true
    )]
    rollout_step_scale: f64,
}

fn default_identity() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "plinth-operator".into());
    format!("{host}-{}", std::process::id())
}

/// Parses the flags, runs the operator until a signal, and returns the process's exit code.
pub async fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init(args.log_format, "info,kube=warn,aws=warn");

    let mut settings = Settings::new(args.identity.unwrap_or_else(default_identity));
    settings.namespace = args.namespace;
    settings.label_selector = args.selector;
    settings.resync = Duration::from_secs(args.resync_seconds.max(1));
    settings.lease_namespace = args.lease_namespace;
    settings.lease_name = args.lease_name;
    settings.lease_duration = Duration::from_secs(args.lease_seconds);
    // A scale of zero or below would make every step end at once: never faster than 1 %.
    settings.rollout_step_scale = args.rollout_step_scale.clamp(0.01, 1.0);
    settings.visibility_window = Duration::from_secs(args.aws_visibility_seconds);

    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(e) => {
            error!(error = %e, "cannot build a Kubernetes client (KUBECONFIG or in-cluster config)");
            return ExitCode::FAILURE;
        }
    };
    let metrics = Arc::new(Metrics::default());
    let regions = AwsRegions::new(AwsOptions {
        metrics: Some(metrics.aws_calls.clone()),
        unrecorded: false,
        calls_per_second: NonZeroU32::new(args.aws_calls_per_second),
    });
    let platforms = Arc::new(Platforms::per_region(regions, components::platform));

    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutdown requested: finishing passes in flight, then releasing the Lease");
        on_signal.cancel();
    });

    match controller::run(
        client,
        settings,
        platforms,
        metrics,
        args.metrics_addr,
        shutdown,
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "the operator stopped");
            eprintln!("plinth-operator: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = ctrl_c => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
