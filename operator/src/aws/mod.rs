//! AWS access for the components: one SDK configuration per region (standard retries, five
//! attempts, the endpoint from `AWS_ENDPOINT_URL` when set), a rate limit of our own per service
//! and region applied before every call, a count of calls by service and operation, the classification of
//! AWS's errors into what the engine does next, and the tag conversions every component uses.
//!
//! - [`errors`]: AWS error → [`ActError`](crate::engine::ActError), keeping AWS's code and
//!   message; creates that survive a lost response ([`create_or_find`]).
//! - [`calls`]: the SDK interceptor that counts calls (for metrics, tests and the benchmark).
//! - [`kit`]: what every kind's driver shares (listing by tag, find after a lost create, the
//!   field helpers).
//! - [`tags`]: Plinth's tags in create calls and in describe filters.
//! - [`tagging`]: a platform's resources of one type by tag, for services without tag filters.

pub mod calls;
pub mod errors;
pub mod kit;
pub mod tagging;
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
pub use errors::{LostAnswer, SendError, classify, create_or_find, deletion, error_code};

use crate::metrics::AwsCallLabels;

/// Attempts per call, the first included: the SDK retries throttling and 5xx with backoff.
pub const MAX_ATTEMPTS: u32 = 5;

/// Our own limit per service and region, at EC2's refill rate for describes (20 a second), so
/// that many platforms in one account do not starve each other or other tools: calls per
/// second. Each AWS service throttles on its own buckets, so each gets its own limiter; one
/// limiter for all of them made the whole operator as slow as its slowest service.
pub const DEFAULT_CALLS_PER_SECOND: u32 = 20;

/// How clients are built.
#[derive(Clone, Default)]
pub struct AwsOptions {
    /// Also count calls into the operator's `plinth_aws_calls` metric.
    pub metrics: Option<Family<AwsCallLabels, Counter>>,
    /// These clients are a test's or a tool's (reading AWS back, setting a fixture up), not the
    /// operator's: leave their calls out of the record the IAM policy is checked against.
    pub unrecorded: bool,
    /// Calls per second per service (twice as many in a burst); `None` for
    /// [`DEFAULT_CALLS_PER_SECOND`]. Raise it only for an account whose limits were raised, or an
    /// emulator.
    pub calls_per_second: Option<NonZeroU32>,
}

/// One rate limiter per service.
struct Limiters {
    ec2: DefaultDirectRateLimiter,
    rds: DefaultDirectRateLimiter,
    secretsmanager: DefaultDirectRateLimiter,
    elbv2: DefaultDirectRateLimiter,
    autoscaling: DefaultDirectRateLimiter,
    cloudwatch: DefaultDirectRateLimiter,
    sns: DefaultDirectRateLimiter,
    iam: DefaultDirectRateLimiter,
    tagging: DefaultDirectRateLimiter,
}

impl Limiters {
    fn new(per_second: NonZeroU32) -> Self {
        let burst = per_second.saturating_mul(NonZeroU32::MIN.saturating_add(1));
        let limiter = || RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst));
        Self {
            ec2: limiter(),
            rds: limiter(),
            secretsmanager: limiter(),
            elbv2: limiter(),
            autoscaling: limiter(),
            cloudwatch: limiter(),
            sns: limiter(),
            iam: limiter(),
            tagging: limiter(),
        }
    }
}

/// Builds one service's client from the shared configuration: the call counter as interceptor,
/// and standard retries when the configuration names none.
macro_rules! service_client {
    ($sdk:ident, $config:expr, $calls:expr) => {{
        let mut builder = $sdk::config::Builder::from($config).interceptor($calls.interceptor());
        if $config.retry_config().is_none() {
            builder = builder.retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
        }
        $sdk::Client::from_conf(builder.build())
    }};
}

/// Defines the accessor of one service's client: it waits for our rate limit first, so call it
/// right before each request.
macro_rules! accessors {
    ($($(#[$doc:meta])* $name:ident: $client:ty;)*) => {
        $(
            $(#[$doc])*
            pub async fn $name(&self) -> &$client {
                self.limiters.$name.until_ready().await;
                &self.$name
            }
        )*
    };
}

/// The clients of one region, cheap to clone (shared connection pool, limiters and counts).
#[derive(Clone)]
pub struct AwsClients {
    region: String,
    ec2: aws_sdk_ec2::Client,
    rds: aws_sdk_rds::Client,
    secretsmanager: aws_sdk_secretsmanager::Client,
    elbv2: aws_sdk_elasticloadbalancingv2::Client,
    autoscaling: aws_sdk_autoscaling::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    sns: aws_sdk_sns::Client,
    iam: aws_sdk_iam::Client,
    tagging: aws_sdk_resourcegroupstagging::Client,
    limiters: Arc<Limiters>,
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
        let calls = CallCounts::new(options.metrics.clone()).unrecorded(options.unrecorded);
        let per_second = options
            .calls_per_second
            .unwrap_or(NonZeroU32::new(DEFAULT_CALLS_PER_SECOND).unwrap_or(NonZeroU32::MIN));
        Self {
            region,
            ec2: service_client!(aws_sdk_ec2, config, calls),
            rds: service_client!(aws_sdk_rds, config, calls),
            secretsmanager: service_client!(aws_sdk_secretsmanager, config, calls),
            elbv2: service_client!(aws_sdk_elasticloadbalancingv2, config, calls),
            autoscaling: service_client!(aws_sdk_autoscaling, config, calls),
            cloudwatch: service_client!(aws_sdk_cloudwatch, config, calls),
            sns: service_client!(aws_sdk_sns, config, calls),
            iam: service_client!(aws_sdk_iam, config, calls),
            tagging: service_client!(aws_sdk_resourcegroupstagging, config, calls),
            limiters: Arc::new(Limiters::new(per_second)),
            calls,
        }
    }

    /// The region these clients act in.
    pub fn region(&self) -> &str {
        &self.region
    }

    accessors! {
        /// The EC2 client, after waiting for our rate limit.
        ec2: aws_sdk_ec2::Client;
        /// The RDS client (Aurora), after waiting for our rate limit.
        rds: aws_sdk_rds::Client;
        /// The Secrets Manager client (rotation of the database secret), after waiting.
        secretsmanager: aws_sdk_secretsmanager::Client;
        /// The Elastic Load Balancing v2 client (ALB, target groups, listeners), after waiting.
        elbv2: aws_sdk_elasticloadbalancingv2::Client;
        /// The EC2 Auto Scaling client, after waiting for our rate limit.
        autoscaling: aws_sdk_autoscaling::Client;
        /// The CloudWatch client (alarms), after waiting for our rate limit.
        cloudwatch: aws_sdk_cloudwatch::Client;
        /// The SNS client (the alarm topic), after waiting for our rate limit.
        sns: aws_sdk_sns::Client;
        /// The IAM client (the instances' role and profile), after waiting for our rate limit.
        iam: aws_sdk_iam::Client;
        /// The Resource Groups Tagging API client (the platform's resources of a type by tag,
        /// with their tags), after waiting for our rate limit.
        tagging: aws_sdk_resourcegroupstagging::Client;
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
