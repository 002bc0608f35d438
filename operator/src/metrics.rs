//! The operator's Prometheus metrics: reconciles by outcome, errors by category, reconcile
//! duration, AWS calls by service and operation, and leadership. `prometheus-client` (the
//! Prometheus project's own Rust client, also used by the webapp) keeps one registry per process
//! and encodes the OpenMetrics text format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Labels of the reconcile counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `ready`, `progressing`, `stalled`, `paused`, `deleted` or `error`.
    pub outcome: &'static str,
}

/// Labels of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The error's static category (see the controller's `Error::category`).
    pub category: &'static str,
}

/// Labels of the AWS call counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsCallLabels {
    /// The AWS service, e.g. `ec2`.
    pub service: String,
    /// The operation, e.g. `DescribeVpcs`.
    pub operation: String,
}

/// Every metric the operator exports, registered once.
pub struct Metrics {
    registry: Registry,
    /// Reconcile passes by outcome.
    pub reconciles: Family<OutcomeLabels, Counter>,
    /// Failed passes by error category.
    pub errors: Family<ErrorLabels, Counter>,
    /// How long a pass takes, in seconds.
    pub reconcile_duration: Histogram,
    /// AWS API calls made, by service and operation.
    pub aws_calls: Family<AwsCallLabels, Counter>,
    /// 1 while this replica holds the leader Lease.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("plinth");
        let reconciles = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconcile passes by outcome",
            reconciles.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed reconcile passes by error category",
            errors.clone(),
        );
        let reconcile_duration = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register(
            "reconcile_duration_seconds",
            "Duration of a reconcile pass",
            reconcile_duration.clone(),
        );
        let aws_calls = Family::<AwsCallLabels, Counter>::default();
        registry.register(
            "aws_calls",
            "AWS API calls by service and operation",
            aws_calls.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            reconcile_duration,
            aws_calls,
            leader,
        }
    }
}

impl Metrics {
    /// Counts one pass and its duration.
    pub fn observe_reconcile(&self, outcome: &'static str, took: Duration) {
        self.reconciles
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// Counts one failed pass.
    pub fn observe_error(&self, category: &'static str) {
        self.errors.get_or_create(&ErrorLabels { category }).inc();
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counted_reconciles_and_errors() {
        let metrics = Metrics::default();
        metrics.observe_reconcile("ready", Duration::from_millis(20));
        metrics.observe_error("kube");
        let text = metrics.render().unwrap();
        assert!(
            text.contains(r#"plinth_reconciles_total{outcome="ready"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"plinth_reconcile_errors_total{category="kube"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("plinth_reconcile_duration_seconds_count 1"),
            "{text}"
        );
    }
}
