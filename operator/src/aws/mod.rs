//! AWS access for the components: one SDK configuration per region (standard retries, five
//! attempts, the endpoint from `AWS_ENDPOINT_URL` when set), a rate limit of our own per region
//! applied before every call, a count of calls by service and operation, the classification of
//! AWS's errors into what the engine does next, and the tag conversions every component uses.
//!
//! - [`errors`]: AWS error → [`ActError`](crate::engine::ActError), keeping AWS's code and
//!   message; creates that survive a lost response ([`create_or_find`]).
//! - [`calls`]: the SDK interceptor that counts calls (for metrics, tests and the benchmark).
//! - [`tags`]: Plinth's tags in create calls and in describe filters.

pub mod calls;
pub mod errors;
pub mod tags;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::Mutex;

pub use calls::{CallCounts, CallSnapshot};
pub use errors::{classify, create_or_find, deletion, error_code};

use crate::metrics::AwsCallLabels;

/// Attempts per call, the first included: the SDK retries throttling and 5xx with backoff.
pub const MAX_ATTEMPTS: u32 = 5;

/// Our own limit per region, below EC2's request-rate buckets (about 20 describes and 5 writes a
/// second refill), so that many platforms in one account do not starve each other: calls per
/// second, and the burst allowed above it.
const CALLS_PER_SECOND: u32 = 20;
const BURST: u32 = 40;

/// How clients are built.
#[derive(Clone, Default)]
pub struct AwsOptions {
    /// Also count calls into the operator's `plinth_aws_calls` metric.
    pub metrics: Option<Family<AwsCallLabels, Counter>>,
}

/// The clients of one region, cheap to clone (shared connection pool, limiter and counts).
#[derive(Clone)]
pub struct AwsClients {
    region: String,
    ec2: aws_sdk_ec2::Client,
    limiter: Arc<DefaultDirectRateLimiter>,
    calls: CallCounts,
}

impl std::fmt::Debug for AwsClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsClients")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl AwsClients {
    /// Loads the SDK configuration for `region` from the default chain (environment, profile,
    /// IRSA / Pod Identity) and builds the clients. Prefer [`AwsRegions::get`], which loads each
    /// region once.
    pub async fn load(region: &str, options: &AwsOptions) -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .load()
            .await;
        Self::from_config(&config, options)
    }

    /// Clients from an SDK configuration that is already loaded (tests pass the stack's).
    pub fn from_config(config: &aws_config::SdkConfig, options: &AwsOptions) -> Self {
        let region = config
            .region()
            .map(|r| r.as_ref().to_owned())
            .unwrap_or_default();
        let calls = CallCounts::new(options.metrics.clone());
        let mut ec2 = aws_sdk_ec2::config::Builder::from(config).interceptor(calls.interceptor());
        if config.retry_config().is_none() {
            ec2 = ec2.retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
        }
        let quota = Quota::per_second(NonZeroU32::new(CALLS_PER_SECOND).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(BURST).unwrap_or(NonZeroU32::MIN));
        Self {
            region,
            ec2: aws_sdk_ec2::Client::from_conf(ec2.build()),
            limiter: Arc::new(RateLimiter::direct(quota)),
            calls,
        }
    }

    /// The region these clients act in.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The EC2 client, after waiting for our rate limit: call it right before each request.
    pub async fn ec2(&self) -> &aws_sdk_ec2::Client {
        self.limiter.until_ready().await;
        &self.ec2
    }

    /// Calls made through these clients so far, by service and operation.
    pub fn calls(&self) -> &CallCounts {
        &self.calls
    }
}

/// Clients per region, each region's configuration loaded once.
#[derive(Default)]
pub struct AwsRegions {
    options: AwsOptions,
    by_region: Mutex<HashMap<String, AwsClients>>,
}

impl AwsRegions {
    /// An empty registry whose clients are built with `options`.
    pub fn new(options: AwsOptions) -> Self {
        Self {
            options,
            by_region: Mutex::new(HashMap::new()),
        }
    }

    /// The clients of `region`, loading its configuration the first time.
    pub async fn get(&self, region: &str) -> AwsClients {
        let mut by_region = self.by_region.lock().await;
        if let Some(clients) = by_region.get(region) {
            return clients.clone();
        }
        let clients = AwsClients::load(region, &self.options).await;
        by_region.insert(region.to_owned(), clients.clone());
        clients
    }
}
