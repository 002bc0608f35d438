//! The one state struct every handler receives.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::auth::KeyRateLimiter;
use crate::config::Limits;
use crate::database::Database;
use crate::metrics::Metrics;

/// Shared application state (cheap to clone).
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub db: Database,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Request limits.
    pub limits: Arc<Limits>,
    /// Per-API-key rate limiter.
    pub rate_limiter: Arc<KeyRateLimiter>,
    /// Woken when a job is queued, so an idle worker starts at once.
    pub work_available: Arc<Notify>,
    /// Attempts a new job gets.
    pub max_attempts: u32,
    /// A job of at most this many records is processed when it is accepted, in the same
    /// transaction (0: never; an instance without workers only queues).
    pub process_on_accept_max: usize,
    /// The release this instance runs (`PLINTH_VERSION`), reported by `/health`.
    pub release: Option<Arc<str>>,
}
