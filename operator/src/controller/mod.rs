//! The Kubernetes controller: watches `DataPlatform` objects, runs the platform engine for each,
//! and reports in status and events. Only the replica holding the leader Lease reconciles.
//!
//! - [`reconcile`]: one object's pass — finalizer, paused, spec checks, the engine, the reads
//!   after it (the rollout's gates, the serving health), then the status decision carried out.
//! - [`status`]: the status decision (pure): conditions, events and requeue from what a
//!   reconcile found, with a table-driven test of every branch.
//! - [`conditions`]: merging verdicts into kstatus conditions.
//! - [`readiness`]: whether the platform serves (pure): `Ready` / `Stalled` / `ComputeReady`
//!   from the active revision's target health and the first deploy.
//! - [`journal`]: each platform's journal of recent AWS changes, kept in its status.
//! - [`leader`]: leader election on a `coordination.k8s.io` Lease.
//! - [`server`]: `/metrics`, `/healthz`, `/readyz`.

mod after_pass;
pub mod conditions;
pub mod journal;
pub mod leader;
pub mod process;
pub mod readiness;
pub mod reconcile;
pub mod server;
pub mod status;
mod writes;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, predicates, reflector, watcher};
use kube::{Client, runtime::Predicate};
use plinth_crds::DataPlatform;
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::engine::DuplicateKind;
use crate::metrics::Metrics;
use crate::platform::{PassError, Platforms};

/// Held on every `DataPlatform` until everything Plinth created for it is gone.
pub const FINALIZER: &str = "plinth.dev/teardown";
/// `"true"` stops every AWS write for the platform.
pub const PAUSED_ANNOTATION: &str = "plinth.dev/paused";
/// Any new value forces an immediate reconcile; the handled value is echoed in status.
pub const RECONCILE_REQUESTED_ANNOTATION: &str = "plinth.dev/reconcile-requested-at";
/// The one field manager the operator writes status with.
pub const FIELD_MANAGER: &str = "plinth-operator";

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch only this namespace (all namespaces when `None`).
    pub namespace: Option<String>,
    /// Watch only objects matching this label selector.
    pub label_selector: Option<String>,
    /// The longest a Ready platform goes unchecked; each requeue picks a jittered time up to it.
    pub resync: Duration,
    /// How soon to look again while AWS is still creating or deleting something.
    pub progress_interval: Duration,
    /// This replica's name in the Lease and in events (the pod name in a cluster).
    pub identity: String,
    /// The Lease's namespace.
    pub lease_namespace: String,
    /// The Lease's name.
    pub lease_name: String,
    /// How long a Lease lasts without renewal; a standby takes over after it expires.
    pub lease_duration: Duration,
    /// Platforms reconciled at once.
    pub concurrency: u16,
    /// Multiplies every rollout duration (step hold, health timeout): 1 in production; tests
    /// shorten the CRD's 30 s minimum step with it instead of weakening validation.
    pub rollout_step_scale: f64,
    /// How long AWS may take to list a resource after its create (the journal's window).
    pub visibility_window: Duration,
}

impl Settings {
    /// Defaults for one replica named `identity`.
    pub fn new(identity: impl Into<String>) -> Self {
        Self {
            namespace: None,
            label_selector: None,
            resync: Duration::from_secs(600),
            progress_interval: Duration::from_secs(5),
            identity: identity.into(),
            lease_namespace: "default".into(),
            lease_name: "plinth-operator".into(),
            lease_duration: Duration::from_secs(15),
            concurrency: 8,
            rollout_step_scale: 1.0,
            visibility_window: crate::engine::DEFAULT_VISIBILITY_WINDOW,
        }
    }
}

/// Why a reconcile failed; the category labels the error metric.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A namespaced object arrived without a namespace.
    #[error("DataPlatform {0} has no namespace")]
    NotNamespaced(String),
    /// The Kubernetes API refused or failed a call.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The engine could not run its pass.
    #[error(transparent)]
    Pass(#[from] PassError),
    /// AWS is still deleting resources; the finalizer stays.
    #[error("teardown in progress: {0}")]
    TeardownPending(String),
    /// The component list registers a kind twice (a bug in the operator, not the spec).
    #[error("the operator's component list is inconsistent: {0}")]
    Components(#[from] DuplicateKind),
}

impl Error {
    /// A static category for logs and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Self::NotNamespaced(_) => "invalid-object",
            Self::Kube(_) => "kube",
            Self::Pass(e) => e.category(),
            Self::TeardownPending(_) => "teardown-pending",
            Self::Components(_) => "operator-bug",
        }
    }
}

/// Why the operator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The CRD is not installed in the cluster.
    #[error(
        "the DataPlatform CRD (dataplatforms.plinth.dev) is not installed: run `kubectl apply -f crds/dataplatform.yaml` or install the Helm chart, then start the operator again"
    )]
    CrdMissing,
    /// The API server could not be reached or refused the operator.
    #[error("cannot list DataPlatforms: {0}")]
    Kube(#[from] kube::Error),
    /// The metrics/health server could not bind.
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// Leader election failed.
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
}

/// What every reconcile shares.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// Publishes events on the objects.
    pub recorder: Recorder,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// How the controller runs.
    pub settings: Settings,
    /// The engine for each region.
    pub platforms: Arc<Platforms>,
    /// Consecutive failures per object, for capped exponential backoff.
    failures: Mutex<HashMap<ObjectRef<DataPlatform>, u32>>,
    /// Consecutive passes per object that left AWS still changing, for [`progress_wait`].
    progress: Mutex<HashMap<ObjectRef<DataPlatform>, u32>>,
    /// Each platform's journal of recent AWS changes, by object UID (see [`journal`]).
    journals: journal::Journals,
}

impl Context {
    /// A context for one controller run.
    pub fn new(
        client: Client,
        settings: Settings,
        platforms: Arc<Platforms>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: Some(settings.identity.clone()),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            settings,
            platforms,
            failures: Mutex::default(),
            progress: Mutex::default(),
            journals: journal::Journals::default(),
        }
    }

    /// The wait before the next pass of a platform AWS is still changing, counting this pass.
    pub(crate) fn next_progress_wait(&self, object: &ObjectRef<DataPlatform>) -> Duration {
        let mut progress = self
            .progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = progress.entry(object.clone()).or_default();
        let wait = progress_wait(*count, self.settings.progress_interval);
        *count = count.saturating_add(1);
        wait
    }

    pub(crate) fn reset_progress(&self, object: &ObjectRef<DataPlatform>) {
        self.progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(object);
    }

    /// The journal of recent AWS changes of `dp` (see [`journal`]).
    pub(crate) fn journal(
        &self,
        dp: &DataPlatform,
        api: &kube::Api<DataPlatform>,
    ) -> Arc<crate::engine::Journal> {
        self.journals.of(dp, api, self.settings.visibility_window)
    }

    /// Forgets the journal of a platform that is gone.
    pub(crate) fn forget_journal(&self, dp: &DataPlatform) {
        self.journals.forget(dp);
    }

    // A std mutex: never held across an await, and usable from the synchronous error policy.
    fn reset_failures(&self, object: &ObjectRef<DataPlatform>) {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(object);
    }

    fn count_failure(&self, object: ObjectRef<DataPlatform>) -> u32 {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = failures.entry(object).or_default();
        *count = count.saturating_add(1);
        *count
    }
}

/// The wait after the `passes`-th consecutive pass that left AWS still changing: 250 ms
/// doubling to at most `interval`. The first look comes at once because most passes end with
/// everything created and only the confirming observe missing; AWS's slow kinds (a NAT gateway,
/// a database) are then polled at `interval`, and an update that never settles costs no more
/// than one pass per `interval`.
pub fn progress_wait(passes: u32, interval: Duration) -> Duration {
    Duration::from_millis(250)
        .saturating_mul(1u32 << passes.min(16))
        .min(interval)
}

/// The wait before retrying after the `failures`-th consecutive failure: 2 s doubling to at
/// most 5 min, with up to 20 % jitter so many failing platforms do not retry in lockstep.
pub fn backoff(failures: u32) -> Duration {
    let base = Duration::from_secs(2).saturating_mul(1u32 << failures.saturating_sub(1).min(8));
    let capped = base.min(Duration::from_secs(300));
    capped.mul_f64(1.0 + rand::random::<f64>() * 0.2)
}

fn error_policy(object: Arc<DataPlatform>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.observe_error(error.category());
    let failures = ctx.count_failure(ObjectRef::from_obj(object.as_ref()));
    let wait = backoff(failures);
    warn!(
        platform = %ObjectRef::from_obj(object.as_ref()),
        category = error.category(),
        error = %error,
        retry_in_s = wait.as_secs(),
        "reconcile failed"
    );
    Action::requeue(wait)
}

/// Fails with [`StartError::CrdMissing`] when the CRD is not installed. Lists at most one
/// object, which needs only the `list` permission the controller has anyway.
pub async fn check_crd(client: &Client, settings: &Settings) -> Result<(), StartError> {
    let api = platforms_api(client, settings);
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(StartError::CrdMissing),
        Err(e) => Err(StartError::Kube(e)),
    }
}

fn platforms_api(client: &Client, settings: &Settings) -> Api<DataPlatform> {
    match &settings.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller until `stop` is cancelled: reconciles every watched platform, finishing
/// the passes in flight when `stop` fires.
pub async fn run_controller(ctx: Arc<Context>, stop: CancellationToken) {
    let api = platforms_api(&ctx.client, &ctx.settings);
    let mut config = watcher::Config::default();
    if let Some(selector) = &ctx.settings.label_selector {
        config = config.labels(selector);
    }
    let (reader, writer) = reflector::store();
    // Our own status writes must not trigger passes: only spec (generation), annotations
    // (paused, reconcile-requested) and finalizers (deletion) do.
    let changes = watcher(api, config)
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::annotations)
                .combine(predicates::finalizers),
            Default::default(),
        );
    Controller::for_stream(changes, reader)
        .with_config(ControllerConfig::default().concurrency(ctx.settings.concurrency))
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// The whole operator: CRD check, the metrics/health server, leader election, and the
/// controller while this replica leads. Returns when `shutdown` is cancelled, after the pass in
/// flight finished and the Lease was released.
pub async fn run(
    client: Client,
    settings: Settings,
    platforms: Arc<Platforms>,
    metrics: Arc<Metrics>,
    metrics_addr: SocketAddr,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let ready = Arc::new(AtomicBool::new(false));
    let probes = server::Probes {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let server_stop = shutdown.clone();
    let (bound, server_task) = server::serve(metrics_addr, probes, async move {
        server_stop.cancelled().await
    })
    .await
    .map_err(|source| StartError::Bind {
        addr: metrics_addr,
        source,
    })?;
    info!(%bound, "serving /metrics, /healthz and /readyz");

    check_crd(&client, &settings).await?;
    ready.store(true, Ordering::Release);

    let ctx = Arc::new(Context::new(
        client.clone(),
        settings.clone(),
        platforms,
        metrics.clone(),
    ));
    leader::lead(client, &settings, metrics, shutdown, |term| {
        run_controller(ctx.clone(), term)
    })
    .await?;
    if let Err(e) = server_task.await {
        warn!(error = %e, "metrics server task ended abnormally");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_checked_at_once_then_at_the_interval() {
        let interval = Duration::from_secs(5);
        let waits: Vec<u128> = (0..6)
            .map(|n| progress_wait(n, interval).as_millis())
            .collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 5000]);
        assert_eq!(progress_wait(u32::MAX, interval), interval);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let first = backoff(1);
        assert!(first >= Duration::from_secs(2) && first <= Duration::from_millis(2400));
        let third = backoff(3);
        assert!(third >= Duration::from_secs(8) && third <= Duration::from_millis(9600));
        let many = backoff(30);
        assert!(many >= Duration::from_secs(300) && many <= Duration::from_secs(360));
    }
}
