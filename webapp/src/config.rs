//! Configuration: every setting is a flag with an environment variable (`clap`), so the same
//! binary runs from a systemd unit (environment) or by hand (flags).

use std::net::IpAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

/// The command line of `plinth-ingest`.
#[derive(Debug, Parser)]
#[command(name = "plinth-ingest", version, about = "Plinth's ingestion service")]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server settings (used by `serve`, and the database settings by every command).
    #[command(flatten)]
    pub config: Config,
}

/// Subcommands besides serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server and the workers (the default).
    Serve,
    /// Migrate the database, create an admin user with a new API key, print the key once, exit.
    CreateAdmin {
        /// Name of the admin user (created if missing).
        #[arg(long, default_value = "admin")]
        name: String,
    },
}

/// Everything the application needs to start.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "PLINTH_LISTEN_ADDR", default_value = "0.0.0.0")]
    pub listen_addr: IpAddr,
    /// Port to listen on; 0 picks a free one (tests).
    #[arg(long, env = "PLINTH_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Database settings.
    #[command(flatten)]
    pub database: DatabaseSettings,
    /// Worker settings.
    #[command(flatten)]
    pub worker: WorkerSettings,
    /// Request limits.
    #[command(flatten)]
    pub limits: Limits,
    /// An API key that is made an admin key at start-up if no key with its hash exists yet
    /// (at least 32 characters). How the first admin gets in; see README.
    #[arg(long, env = "PLINTH_BOOTSTRAP_ADMIN_KEY", value_parser = parse_secret, hide_env_values = true)]
    pub bootstrap_admin_key: Option<SecretString>,
    /// Log format: `json` (production) or `pretty`.
    #[arg(long, env = "PLINTH_LOG_FORMAT", default_value = "json")]
    pub log_format: LogFormat,
    /// The release this instance runs, as the platform's spec names it (`spec.app.version`; the
    /// operator's unit sets it). `/health` reports it, so a client can tell which version
    /// answered during a blue/green rollout.
    #[arg(long, env = "PLINTH_VERSION")]
    pub release: Option<String>,
    /// How long SIGTERM waits for requests in flight and workers before exiting, in seconds.
    #[arg(long, env = "PLINTH_SHUTDOWN_GRACE_SECS", default_value_t = 25)]
    pub shutdown_grace_secs: u64,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

/// Where the database credentials come from, and pool sizing.
#[derive(Debug, Clone, Args)]
pub struct DatabaseSettings {
    /// `mysql://user:password@host:port/database`. Either this or `--db-secret-arn`.
    #[arg(long, env = "DATABASE_URL", value_parser = parse_secret, hide_env_values = true)]
    pub database_url: Option<SecretString>,
    /// Database name, overriding the one in `--database-url` (required with `--db-secret-arn`).
    #[arg(long, env = "PLINTH_DB_NAME")]
    pub db_name: Option<String>,
    /// ARN of the Secrets Manager secret holding `{"username","password"}` (the RDS-managed
    /// master user secret). Re-read when a login is refused, so rotation costs no request.
    #[arg(long, env = "PLINTH_DB_SECRET_ARN", conflicts_with = "database_url")]
    pub db_secret_arn: Option<String>,
    /// Database host (with `--db-secret-arn`).
    #[arg(long, env = "PLINTH_DB_HOST")]
    pub db_host: Option<String>,
    /// Database port (with `--db-secret-arn`).
    #[arg(long, env = "PLINTH_DB_PORT", default_value_t = 3306)]
    pub db_port: u16,
    /// TLS to the database: disabled, preferred, required, verify_ca, verify_identity.
    #[arg(long, env = "PLINTH_DB_SSL_MODE", default_value = "preferred")]
    pub db_ssl_mode: String,
    /// CA bundle (PEM) to verify the database's certificate with (`verify_ca`,
    /// `verify_identity`), e.g. the RDS global bundle.
    #[arg(long, env = "PLINTH_DB_SSL_CA")]
    pub db_ssl_ca: Option<std::path::PathBuf>,
    /// Maximum connections in the pool.
    #[arg(long, env = "PLINTH_DB_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,
    /// Connections are replaced after this many seconds (picks up rotated credentials).
    #[arg(long, env = "PLINTH_DB_MAX_LIFETIME_SECS", default_value_t = 1800)]
    pub db_max_lifetime_secs: u64,
    /// How long a request waits for a connection before 503, in seconds.
    #[arg(long, env = "PLINTH_DB_ACQUIRE_TIMEOUT_SECS", default_value_t = 5)]
    pub db_acquire_timeout_secs: u64,
}

/// The worker pool that processes jobs.
#[derive(Debug, Clone, Args)]
pub struct WorkerSettings {
    /// Number of workers in this process (0: this instance only accepts jobs).
    #[arg(long, env = "PLINTH_WORKERS", default_value_t = 4)]
    pub workers: usize,
    /// How often an idle worker looks for work, in milliseconds (new jobs posted to this
    /// instance wake a worker at once).
    #[arg(long, env = "PLINTH_WORKER_POLL_MS", default_value_t = 500)]
    pub poll_interval_ms: u64,
    /// A claim lasts this long without progress before another worker may take the job over.
    #[arg(long, env = "PLINTH_CLAIM_TTL_MS", default_value_t = 60_000)]
    pub claim_ttl_ms: u64,
    /// Attempts before a job is marked `failed`.
    #[arg(long, env = "PLINTH_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
    /// First retry delay, in milliseconds; doubled per attempt, with jitter.
    #[arg(long, env = "PLINTH_RETRY_BASE_MS", default_value_t = 1_000)]
    pub retry_base_ms: u64,
    /// Longest retry delay, in milliseconds.
    #[arg(long, env = "PLINTH_RETRY_MAX_MS", default_value_t = 300_000)]
    pub retry_max_ms: u64,
    /// Records per multi-row INSERT when writing processed data.
    #[arg(long, env = "PLINTH_PROCESS_BATCH", default_value_t = 1000)]
    pub batch_size: usize,
}

impl WorkerSettings {
    /// Claim lifetime as a duration.
    pub fn claim_ttl(&self) -> Duration {
        Duration::from_millis(self.claim_ttl_ms)
    }
}

/// Limits on what a client may send.
#[derive(Debug, Clone, Args)]
pub struct Limits {
    /// Largest request body, in bytes, after gzip decoding.
    #[arg(long, env = "PLINTH_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Most records in one job.
    #[arg(long, env = "PLINTH_MAX_RECORDS", default_value_t = 10_000)]
    pub max_records: usize,
    /// Deepest nesting of arrays and objects inside one record.
    #[arg(long, env = "PLINTH_MAX_JSON_DEPTH", default_value_t = 32)]
    pub max_json_depth: usize,
    /// Requests per second allowed per API key.
    #[arg(long, env = "PLINTH_RATE_LIMIT_PER_SEC", default_value_t = 200)]
    pub rate_limit_per_sec: u32,
    /// Burst allowed per API key above the steady rate.
    #[arg(long, env = "PLINTH_RATE_LIMIT_BURST", default_value_t = 400)]
    pub rate_limit_burst: u32,
    /// Jobs queued or processing beyond which new jobs get 429.
    #[arg(long, env = "PLINTH_MAX_BACKLOG_JOBS", default_value_t = 10_000)]
    pub max_backlog_jobs: u64,
    /// Request timeout, in seconds.
    #[arg(long, env = "PLINTH_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
}

/// clap value parser for secrets: wraps at once so the value never prints.
pub fn parse_secret(value: &str) -> Result<SecretString, String> {
    if value.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(SecretString::from(value.to_owned()))
}

impl Config {
    /// Configuration for tests and benchmarks: 127.0.0.1 port 0, the given database URL, and
    /// defaults (or `PLINTH_*` environment variables) elsewhere.
    pub fn for_tests(database_url: &str) -> Self {
        let mut cli =
            Cli::parse_from(["plinth-ingest", "--port", "0", "--listen-addr", "127.0.0.1"]);
        cli.config.database.database_url = Some(SecretString::from(database_url.to_owned()));
        cli.config.log_format = LogFormat::Pretty;
        cli.config
    }
}
