//! The database handle: one sqlx pool, migrations, and rotation-safe credentials.
//!
//! Every connection the application uses comes from [`Database::acquire`]. When MySQL refuses a
//! new login with error 1045 (access denied) and the credentials came from Secrets Manager, the
//! secret is re-read (once for all waiting tasks), the pool's connect options are replaced, and
//! the acquire is retried, so a password rotation costs no failed request. Open connections keep
//! working through a rotation (MySQL does not end sessions when a password changes).

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::MySql;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlSslMode};
use sqlx::pool::PoolConnection;

use crate::config::DatabaseSettings;
use crate::error::mysql_error_number;
use crate::metrics::Metrics;
use crate::secrets::{Credentials, SecretError, SecretSource};

/// The migrations in `webapp/migrations`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// MySQL's "access denied for user" on login.
const ER_ACCESS_DENIED: u16 = 1045;
/// How long one acquire keeps re-reading the secret while logins are refused (a rotation's
/// window between the database's password change and the secret's `AWSCURRENT` move).
const MAX_ROTATION_WAIT: Duration = Duration::from_secs(10);

/// Why the database could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// Neither `--database-url` nor `--db-secret-arn` was given, or a companion flag is missing.
    #[error("database settings: {0}")]
    Settings(String),
    /// The URL or an option did not parse.
    #[error("database URL or option is invalid: {0}")]
    Options(#[source] sqlx::Error),
    /// Secrets Manager.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// Connecting failed.
    #[error("connecting to the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// A migration failed.
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

struct SecretRefresher {
    source: SecretSource,
    base: MySqlConnectOptions,
    current: std::sync::Mutex<Credentials>,
    generation: AtomicU64,
    lock: tokio::sync::Mutex<()>,
}

/// The application's database: a pool plus where its credentials come from.
#[derive(Clone)]
pub struct Database {
    pool: MySqlPool,
    refresher: Option<Arc<SecretRefresher>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("rotating", &self.refresher.is_some())
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Builds the pool from the settings (connections are opened on first use).
    pub async fn connect(
        settings: &DatabaseSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, DatabaseError> {
        let pool_options = MySqlPoolOptions::new()
            .max_connections(settings.db_max_connections)
            .min_connections(0)
            .max_lifetime(Duration::from_secs(settings.db_max_lifetime_secs))
            .idle_timeout(Duration::from_secs(300))
            .acquire_timeout(Duration::from_secs(settings.db_acquire_timeout_secs))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // READ COMMITTED: locking reads (the workers' claims) take no gap locks,
                    // so they never block inserts of new jobs.
                    sqlx::query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .execute(conn)
                        .await?;
                    Ok(())
                })
            });

        let (options, refresher) = match (&settings.database_url, &settings.db_secret_arn) {
            (Some(url), None) => {
                let mut options = MySqlConnectOptions::from_str(url.expose_secret())
                    .map_err(DatabaseError::Options)?;
                if let Some(name) = &settings.db_name {
                    options = options.database(name);
                }
                (options, None)
            }
            (None, Some(arn)) => {
                let host = settings.db_host.as_deref().ok_or_else(|| {
                    DatabaseError::Settings("--db-host is required with --db-secret-arn".into())
                })?;
                let name = settings.db_name.as_deref().ok_or_else(|| {
                    DatabaseError::Settings("--db-name is required with --db-secret-arn".into())
                })?;
                let ssl_mode = MySqlSslMode::from_str(&settings.db_ssl_mode)
                    .map_err(DatabaseError::Options)?;
                let mut base = MySqlConnectOptions::new()
                    .host(host)
                    .port(settings.db_port)
                    .database(name)
                    .ssl_mode(ssl_mode);
                if let Some(ca) = &settings.db_ssl_ca {
                    base = base.ssl_ca(ca);
                }
                let source = SecretSource::from_env(arn.clone()).await;
                let credentials = source.read(None).await?;
                let options = with_credentials(&base, &credentials);
                let refresher = SecretRefresher {
                    source,
                    base,
                    current: std::sync::Mutex::new(credentials),
                    generation: AtomicU64::new(0),
                    lock: tokio::sync::Mutex::new(()),
                };
                (options, Some(Arc::new(refresher)))
            }
            (None, None) => {
                return Err(DatabaseError::Settings(
                    "set --database-url (DATABASE_URL) or --db-secret-arn".into(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err(DatabaseError::Settings(
                    "set only one of --database-url and --db-secret-arn".into(),
                ));
            }
        };
        Ok(Self {
            pool: pool_options.connect_lazy_with(options),
            refresher,
            metrics,
        })
    }

    /// A pooled connection; re-reads rotated credentials when a login is refused.
    pub async fn acquire(&self) -> Result<PoolConnection<MySql>, sqlx::Error> {
        let started = std::time::Instant::now();
        let mut refreshes = 0;
        loop {
            let seen = self
                .refresher
                .as_ref()
                .map(|r| r.generation.load(Ordering::Acquire));
            match self.pool.acquire().await {
                Err(error)
                    if started.elapsed() < MAX_ROTATION_WAIT
                        && is_access_denied(&error)
                        && self.refresher.is_some() =>
                {
                    refreshes += 1;
                    if let (Some(refresher), Some(seen)) = (&self.refresher, seen) {
                        self.refresh(refresher, seen, refreshes).await;
                    }
                }
                other => return other,
            }
        }
    }

    async fn refresh(&self, refresher: &SecretRefresher, seen: u64, attempt: u32) {
        let _guard = refresher.lock.lock().await;
        if refresher.generation.load(Ordering::Acquire) != seen {
            // Another task refreshed while we waited: just retry with its options.
            return;
        }
        tracing::warn!(
            secret = refresher.source.arn(),
            attempt,
            "database refused the login; re-reading the secret"
        );
        self.metrics.credential_refreshes.inc();
        let unchanged = |creds: &Credentials| {
            refresher
                .current
                .lock()
                .map(|c| {
                    c.username == creds.username
                        && c.password.expose_secret() == creds.password.expose_secret()
                })
                .unwrap_or(false)
        };
        let mut fresh = match refresher.source.read(None).await {
            Ok(creds) => Some(creds),
            Err(error) => {
                tracing::error!(%error, "re-reading the database secret failed");
                None
            }
        };
        // Mid-rotation the database may already have the new password while AWSCURRENT still
        // holds the old one: try AWSPENDING too.
        if fresh.as_ref().is_none_or(&unchanged)
            && let Ok(pending) = refresher.source.read(Some("AWSPENDING")).await
            && !unchanged(&pending)
        {
            fresh = Some(pending);
        }
        match fresh {
            Some(creds) if !unchanged(&creds) => {
                self.pool
                    .set_connect_options(with_credentials(&refresher.base, &creds));
                if let Ok(mut current) = refresher.current.lock() {
                    *current = creds;
                }
                tracing::info!("database credentials replaced from the secret");
            }
            _ => {
                // The secret has not changed yet: give the rotation a moment.
                let backoff = 100 * u64::from(attempt.min(10));
                tokio::time::sleep(Duration::from_millis(backoff)).await;
            }
        }
        refresher.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Runs the embedded migrations (sqlx's MySQL migrator takes a named lock, so instances
    /// starting together migrate once).
    pub async fn migrate(&self) -> Result<(), DatabaseError> {
        let mut conn = self.acquire().await.map_err(DatabaseError::Connect)?;
        MIGRATOR.run(&mut *conn).await?;
        Ok(())
    }

    /// `SELECT 1` through the pool.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        let mut conn = self.acquire().await?;
        sqlx::query("SELECT 1").execute(&mut *conn).await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn with_credentials(base: &MySqlConnectOptions, creds: &Credentials) -> MySqlConnectOptions {
    base.clone()
        .username(&creds.username)
        .password(creds.password.expose_secret())
}

/// True when a login was refused (MySQL 1045).
pub fn is_access_denied(error: &sqlx::Error) -> bool {
    mysql_error_number(error) == Some(ER_ACCESS_DENIED)
}
