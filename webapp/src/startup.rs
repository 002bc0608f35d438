//! Building and running the application: `Application::build` connects, migrates, bootstraps
//! the first admin key, and binds the listener (port 0 picks a free port, which [`Application::port`]
//! exposes); `run_until_stopped` serves and runs the workers until the shutdown token is
//! cancelled, then drains requests in flight, releases claimed jobs and closes the pool.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth::{ensure_admin_key, rate_limiter};
use crate::config::{Config, WorkerSettings};
use crate::database::{Database, DatabaseError};
use crate::metrics::Metrics;
use crate::routes;
use crate::state::AppState;
use crate::worker::{self, WorkerContext};

/// Shortest bootstrap admin key accepted.
const MIN_BOOTSTRAP_KEY_LEN: usize = 32;

/// Why the application could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Database set-up.
    #[error(transparent)]
    Database(#[from] DatabaseError),
    /// Creating the bootstrap admin key.
    #[error("bootstrapping the admin key: {0}")]
    Bootstrap(String),
    /// Binding or serving.
    #[error("listening on {addr}: {source}")]
    Io {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// Largest job processed when it is accepted (see `AppState::process_on_accept_max`).
const PROCESS_ON_ACCEPT_MAX: usize = 100;

/// A built application, ready to run.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
    state: AppState,
    workers: WorkerSettings,
    shutdown: CancellationToken,
    grace: Duration,
}

impl Application {
    /// Connects, migrates, bootstraps and binds.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let metrics = Arc::new(Metrics::new());
        let db = Database::connect(&config.database, metrics.clone()).await?;
        db.migrate().await?;
        if let Some(key) = &config.bootstrap_admin_key {
            let key = key.expose_secret();
            if key.len() < MIN_BOOTSTRAP_KEY_LEN {
                return Err(StartupError::Bootstrap(format!(
                    "PLINTH_BOOTSTRAP_ADMIN_KEY must be at least {MIN_BOOTSTRAP_KEY_LEN} characters"
                )));
            }
            let mut conn = db
                .acquire()
                .await
                .map_err(|e| StartupError::Bootstrap(e.to_string()))?;
            if ensure_admin_key(&mut conn, "admin", key)
                .await
                .map_err(|e| StartupError::Bootstrap(e.to_string()))?
            {
                tracing::info!("bootstrap admin key installed");
            }
        }
        let limits = config.limits.clone();
        let state = AppState {
            db,
            metrics,
            rate_limiter: Arc::new(rate_limiter(
                limits.rate_limit_per_sec,
                limits.rate_limit_burst,
            )),
            limits: Arc::new(limits),
            work_available: Arc::new(Notify::new()),
            max_attempts: config.worker.max_attempts.max(1),
            release: config.release.as_deref().map(Arc::from),
            // Small jobs are bound by round trips and commits, which processing on accept
            // saves; larger ones by the writes, which the workers overlap with accepting
            // (measured: 1,000-record jobs keep a lower POST latency through the workers).
            process_on_accept_max: if config.worker.workers == 0 {
                0
            } else {
                config.worker.batch_size.min(PROCESS_ON_ACCEPT_MAX)
            },
        };
        let wanted = SocketAddr::new(config.listen_addr, config.port);
        let listener = TcpListener::bind(wanted)
            .await
            .map_err(|source| StartupError::Io {
                addr: wanted,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Io {
            addr: wanted,
            source,
        })?;
        let router = routes::router(
            state.clone(),
            Duration::from_secs(config.limits.request_timeout_secs),
        );
        Ok(Self {
            listener,
            addr,
            router,
            state,
            workers: config.worker,
            shutdown: CancellationToken::new(),
            grace: Duration::from_secs(config.shutdown_grace_secs),
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cancel this token to shut the application down gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The database handle.
    pub fn db(&self) -> &Database {
        &self.state.db
    }

    /// Serves and processes until the shutdown token is cancelled, then drains.
    pub async fn run_until_stopped(self) -> Result<(), StartupError> {
        let mut workers = worker::spawn(WorkerContext {
            db: self.state.db.clone(),
            settings: self.workers.clone(),
            metrics: self.state.metrics.clone(),
            work_available: self.state.work_available.clone(),
            shutdown: self.shutdown.clone(),
            instance: format!("{}-{}", self.addr.port(), uuid::Uuid::new_v4().simple()),
        });
        // Forget the rate-limit state of keys idle long enough to be full again.
        let limiter = self.state.rate_limiter.clone();
        let sweeper_stop = self.shutdown.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = every.tick() => {
                        limiter.retain_recent();
                        limiter.shrink_to_fit();
                    }
                    () = sweeper_stop.cancelled() => break,
                }
            }
        });
        tracing::info!(addr = %self.addr, workers = self.workers.workers, "plinth-ingest listening");
        let shutdown = self.shutdown.clone();
        let addr = self.addr;
        let serve = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let served = serve.await;
        let drained = tokio::time::timeout(self.grace, async {
            while workers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "workers did not stop within the grace period; their claims will expire"
            );
            workers.abort_all();
        }
        self.state.db.close().await;
        tracing::info!("plinth-ingest stopped");
        served.map_err(|source| StartupError::Io { addr, source })
    }
}
