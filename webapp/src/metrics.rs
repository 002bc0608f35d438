//! Prometheus metrics (`prometheus-client`): one registry per application instance, so several
//! instances in one process (the tests) never share counters, and no global recorder.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the HTTP metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// Request method.
    pub method: String,
    /// Matched route template, e.g. `/v1/jobs/{id}` (never the raw path: bounded cardinality).
    pub route: String,
    /// Response status code.
    pub status: u16,
}

/// Label of the job outcome metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `succeeded`, `failed`, `retried`, `released`, `ok`, `invalid`.
    pub outcome: &'static str,
}

/// Every metric the service exports.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by method, route and status.
    pub http_requests: Family<HttpLabels, Counter>,
    /// HTTP request latency by method, route and status.
    pub http_duration: Family<HttpLabels, Histogram>,
    /// Jobs accepted.
    pub jobs_created: Counter,
    /// Records accepted.
    pub records_accepted: Counter,
    /// Job attempts ended, by outcome.
    pub job_attempts: Family<OutcomeLabels, Counter>,
    /// Records processed, by outcome (`ok` / `invalid`).
    pub records_processed: Family<OutcomeLabels, Counter>,
    /// Job processing time per attempt.
    pub job_duration: Histogram,
    /// Jobs claimed and in progress in this process.
    pub jobs_in_progress: Gauge,
    /// Times the database secret was re-read after a refused login.
    pub credential_refreshes: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("plinth_ingest");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests served",
            http_requests.clone(),
        );
        let http_duration = Family::<HttpLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            http_duration.clone(),
        );
        let jobs_created = Counter::default();
        registry.register("jobs_created", "Jobs accepted", jobs_created.clone());
        let records_accepted = Counter::default();
        registry.register(
            "records_accepted",
            "Records accepted",
            records_accepted.clone(),
        );
        let job_attempts = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "job_attempts",
            "Job attempts ended, by outcome",
            job_attempts.clone(),
        );
        let records_processed = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "records_processed",
            "Records processed, by outcome",
            records_processed.clone(),
        );
        let job_duration = latency_histogram();
        registry.register(
            "job_duration_seconds",
            "Processing time of one job attempt",
            job_duration.clone(),
        );
        let jobs_in_progress = Gauge::default();
        registry.register(
            "jobs_in_progress",
            "Jobs being processed by this process",
            jobs_in_progress.clone(),
        );
        let credential_refreshes = Counter::default();
        registry.register(
            "db_credential_refreshes",
            "Database secret re-reads after a refused login",
            credential_refreshes.clone(),
        );
        Self {
            registry,
            http_requests,
            http_duration,
            jobs_created,
            records_accepted,
            job_attempts,
            records_processed,
            job_duration,
            jobs_in_progress,
            credential_refreshes,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
