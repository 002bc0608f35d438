//! Counting AWS calls by service and operation: an SDK interceptor that sees every attempt
//! (retries included, as AWS and the emulator count them), for the operator's metrics, the
//! end-to-end tests' "no writes in a steady pass" checks and the benchmark's figures. With
//! [`RECORD_CALLS_DIR`] set, each process also lists the operations it called in that directory,
//! for the check that the IAM policy covers every call.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use aws_sdk_ec2::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_ec2::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_ec2::error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::metrics::AwsCallLabels;

/// Calls and failed attempts of one operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OperationCount {
    /// Requests sent.
    pub calls: u64,
    /// Requests answered with a 5xx or not answered at all.
    pub server_errors: u64,
}

/// Whether an operation only reads (`Describe*`, `List*`, `Get*`, `Head*`), as the emulator
/// splits its counts.
pub fn is_read(operation: &str) -> bool {
    ["Describe", "List", "Get", "Head"]
        .iter()
        .any(|prefix| operation.starts_with(prefix))
}

/// A copy of the counts at one moment, keyed by `(service, operation)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallSnapshot(pub BTreeMap<(String, String), OperationCount>);

impl CallSnapshot {
    /// What was counted after `earlier`.
    #[must_use]
    pub fn since(&self, earlier: &CallSnapshot) -> CallSnapshot {
        let mut out = BTreeMap::new();
        for (key, now) in &self.0 {
            let before = earlier.0.get(key).copied().unwrap_or_default();
            let diff = OperationCount {
                calls: now.calls.saturating_sub(before.calls),
                server_errors: now.server_errors.saturating_sub(before.server_errors),
            };
            if diff.calls > 0 {
                out.insert(key.clone(), diff);
            }
        }
        CallSnapshot(out)
    }

    /// Read calls.
    pub fn reads(&self) -> u64 {
        self.0
            .iter()
            .filter(|((_, op), _)| is_read(op))
            .map(|(_, c)| c.calls)
            .sum()
    }

    /// Write calls.
    pub fn writes(&self) -> u64 {
        self.0
            .iter()
            .filter(|((_, op), _)| !is_read(op))
            .map(|(_, c)| c.calls)
            .sum()
    }

    /// Calls of one operation.
    pub fn of(&self, operation: &str) -> OperationCount {
        self.0
            .iter()
            .filter(|((_, op), _)| op == operation)
            .map(|(_, c)| *c)
            .fold(OperationCount::default(), |a, b| OperationCount {
                calls: a.calls + b.calls,
                server_errors: a.server_errors + b.server_errors,
            })
    }
}

impl fmt::Display for CallSnapshot {
    /// One line per operation (`ec2 DescribeVpcs read 1`), then the totals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for ((service, operation), count) in &self.0 {
            let kind = if is_read(operation) { "read " } else { "write" };
            write!(
                f,
                "  {service:<6} {operation:<36} {kind} {:>4}",
                count.calls
            )?;
            if count.server_errors > 0 {
                write!(f, "  ({} answered 5xx)", count.server_errors)?;
            }
            writeln!(f)?;
        }
        write!(
            f,
            "  total: {} reads, {} writes",
            self.reads(),
            self.writes()
        )
    }
}

/// The environment variable naming a directory in which every process appends the AWS
/// operations its clients sent (`<pid>.tsv`, one `service<TAB>operation` line the first time
/// each is sent). The end-to-end run sets it; the policy check compares the union with the IAM
/// policy (`tests/src/bin/policy-check.rs`).
pub const RECORD_CALLS_DIR: &str = "PLINTH_RECORD_CALLS_DIR";

/// This process's record of operations sent, when [`RECORD_CALLS_DIR`] is set.
struct Recorder {
    path: PathBuf,
    seen: Mutex<BTreeSet<(String, String)>>,
}

static RECORDER: OnceLock<Option<Recorder>> = OnceLock::new();

/// Appends `key` to this process's record the first time it is sent.
fn record_operation(key: &(String, String)) {
    let recorder = RECORDER.get_or_init(|| {
        let dir = std::env::var_os(RECORD_CALLS_DIR).filter(|dir| !dir.is_empty())?;
        Some(Recorder {
            path: PathBuf::from(dir).join(format!("{}.tsv", std::process::id())),
            seen: Mutex::default(),
        })
    });
    let Some(recorder) = recorder else { return };
    // Held while writing, so one process's lines never interleave.
    let mut seen = match recorder.seen.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    if !seen.insert(key.clone()) {
        return;
    }
    let written = recorder
        .path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&recorder.path)
        })
        .and_then(|mut file| writeln!(file, "{}\t{}", key.0, key.1));
    if let Err(error) = written {
        // The policy check then reports the operation as never called: loud enough.
        tracing::warn!(path = %recorder.path.display(), %error, "cannot record an AWS operation");
    }
}

/// The shared counts of one set of clients.
#[derive(Clone, Default)]
pub struct CallCounts {
    counts: Arc<Mutex<BTreeMap<(String, String), OperationCount>>>,
    metrics: Option<Family<AwsCallLabels, Counter>>,
    /// Not the operator's clients (a test's reader, a tool): left out of the policy record.
    unrecorded: bool,
}

impl CallCounts {
    /// Empty counts, mirrored into `metrics` when given.
    pub fn new(metrics: Option<Family<AwsCallLabels, Counter>>) -> Self {
        Self {
            counts: Arc::default(),
            metrics,
            unrecorded: false,
        }
    }

    /// Leaves these clients' calls out of the [`RECORD_CALLS_DIR`] record: they are a test's
    /// or a tool's reads and setup, not calls the operator's policy must allow.
    #[must_use]
    pub fn unrecorded(mut self, unrecorded: bool) -> Self {
        self.unrecorded = unrecorded;
        self
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<(String, String), OperationCount>> {
        match self.counts.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The counts now.
    pub fn snapshot(&self) -> CallSnapshot {
        CallSnapshot(self.lock().clone())
    }

    /// The interceptor to register on each service client.
    pub fn interceptor(&self) -> CountCalls {
        CountCalls {
            counts: self.clone(),
        }
    }

    fn record(&self, metadata: &Metadata, server_error: bool, sent: bool) {
        // Lowercase, as the emulator and the metric labels name services (`ec2`).
        let key = (
            metadata.service().to_ascii_lowercase(),
            metadata.name().to_owned(),
        );
        let mut counts = self.lock();
        let entry = counts.entry(key.clone()).or_default();
        if sent {
            entry.calls += 1;
        }
        if sent && entry.calls == 1 && !self.unrecorded {
            record_operation(&key);
        }
        if server_error {
            entry.server_errors += 1;
        }
        drop(counts);
        if sent && let Some(metrics) = &self.metrics {
            metrics
                .get_or_create(&AwsCallLabels {
                    service: key.0,
                    operation: key.1,
                })
                .inc();
        }
    }
}

/// The interceptor: counts each attempt as it is sent, and its 5xx answer.
#[derive(Clone)]
pub struct CountCalls {
    counts: CallCounts,
}

impl fmt::Debug for CountCalls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CountCalls")
    }
}

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "PlinthCountCalls"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            self.counts.record(metadata, false, true);
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let server_error = context
            .response()
            .is_some_and(|r| r.status().as_u16() >= 500);
        if server_error && let Some(metadata) = cfg.load::<Metadata>() {
            self.counts.record(metadata, true, false);
        }
        Ok(())
    }
}
