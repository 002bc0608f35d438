//! Shared helpers for the end-to-end tests: finding the local stack's endpoints (the env file
//! `tests/stack/up` writes) and opening real clients to its Kubernetes API server, AWS emulator
//! and MariaDB. A test that cannot reach a part fails with the command that starts it.

pub mod campaign;
pub mod cluster;
pub mod dataplane;
pub mod emulator;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The command a developer runs when a part of the stack is missing.
pub const START_HINT: &str = "start the local stack first: `tests/stack/up` (then `. .stack/env`)";

/// Why a test could not reach the local stack.
#[derive(thiserror::Error)]
pub enum StackError {
    /// The variable is neither in the environment nor in `.stack/env`.
    #[error("{0} is not set and .stack/env does not define it; {START_HINT}")]
    Missing(&'static str),
    /// The part answered with an error or did not answer.
    #[error("cannot reach {part} at {endpoint}: {source}; {START_HINT}")]
    Unreachable {
        /// Which part of the stack.
        part: &'static str,
        /// Where it was expected.
        endpoint: String,
        /// What the client reported.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Tests `unwrap()` these errors; Debug shows the same sentence as Display so the failure says
/// which part is missing and the command that starts it.
impl std::fmt::Debug for StackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

/// The `tests/` package's directory: the one `cargo test` or `cargo run` names now, else the
/// one the binary was compiled in (a campaign run directly). The compile-time one alone goes
/// stale when a shared target directory serves a checkout at another path.
pub fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// Variables from `.stack/env`, read once, used when the process environment lacks them so
/// that `cargo test` works right after `tests/stack/up` without sourcing anything.
fn env_file() -> &'static HashMap<String, String> {
    static VARS: OnceLock<HashMap<String, String>> = OnceLock::new();
    VARS.get_or_init(|| {
        let dir = std::env::var_os("PLINTH_STACK_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| package_dir().join("../.stack"));
        let Ok(text) = std::fs::read_to_string(dir.join("env")) else {
            return HashMap::new();
        };
        text.lines()
            .filter_map(|line| line.strip_prefix("export "))
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches(['\'', '"']).to_string()))
            .collect()
    })
}

/// One endpoint of the stack: the process environment first, then `.stack/env`.
pub fn stack_var(name: &'static str) -> Result<String, StackError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| env_file().get(name).cloned())
        .ok_or(StackError::Missing(name))
}

/// A name no other test or run uses, for namespaces, databases and tags, so tests can run at
/// once against one stack and reruns never collide with leftovers.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nanos:x}-{n}", run_id())
}

/// CPU seconds (user + system) process `pid` has used so far, from `/proc/<pid>/stat`; zero once
/// it is gone. For the benchmarks' "who is busy" figures.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command may contain spaces: fields are counted after its closing parenthesis.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are the line's fields 14 and 15: 11 and 12 counted from the state.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // USER_HZ is 100 on every Linux this runs on.
    ticks as f64 / 100.0
}

/// The id of this test run, embedded in every [`unique_name`]: `PLINTH_TEST_RUN` when
/// `tests/run` set it (so its leak check can tell this run's platforms from older ones), else
/// the process id.
pub fn run_id() -> String {
    std::env::var("PLINTH_TEST_RUN")
        .ok()
        .filter(|run| !run.is_empty())
        .unwrap_or_else(|| std::process::id().to_string())
}

/// A `kubectl` command for the stack's API server: the kubectl `tests/stack/up` built (not
/// whatever is on PATH) with the stack's admin kubeconfig.
pub fn kubectl() -> Result<std::process::Command, StackError> {
    let bin_dirs = stack_var("PLINTH_BIN")?;
    let kubeconfig = stack_var("KUBECONFIG")?;
    let binary = std::env::split_paths(&bin_dirs)
        .map(|dir| dir.join("kubectl"))
        .find(|path| path.is_file())
        .ok_or(StackError::Missing(
            "PLINTH_BIN (a directory holding kubectl)",
        ))?;
    let mut command = std::process::Command::new(binary);
    command.env("KUBECONFIG", kubeconfig);
    Ok(command)
}

/// An HTTP client for the tests and programs of this crate. reqwest is built with rustls here
/// (the data plane's HTTPS endpoints) and without a crypto provider of its own, so the
/// workspace's one (aws-lc-rs) is installed first; every client of the crate comes from here.
pub fn http() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::new()
}

/// Installs the workspace's rustls crypto provider (aws-lc-rs) for this process, before any
/// reqwest client is built; a second call does nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// `GET url` with [`http`].
pub async fn http_get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    http().get(url).send().await
}

/// AWS SDK configuration pointing at the emulator with the stack's dummy credentials.
pub async fn aws_config() -> Result<aws_config::SdkConfig, StackError> {
    aws_config_for(&stack_var("AWS_ENDPOINT_URL")?, &stack_var("AWS_REGION")?).await
}

/// AWS SDK configuration for an emulator at `endpoint` (the stack's or a private one) in
/// `region`, with the stack's dummy credentials.
pub async fn aws_config_for(
    endpoint: &str,
    region: &str,
) -> Result<aws_config::SdkConfig, StackError> {
    let key = stack_var("AWS_ACCESS_KEY_ID")?;
    let secret = stack_var("AWS_SECRET_ACCESS_KEY")?;
    let credentials =
        aws_sdk_ec2::config::Credentials::new(key, secret, None, None, "plinth-stack");
    Ok(aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(credentials)
        .load()
        .await)
}

/// AWS clients for a test's own reads and fixtures: counted like the operator's, but left out
/// of the record of calls the IAM policy is checked against (they are not the operator's).
pub fn reader_clients(config: &aws_config::SdkConfig) -> plinth_operator::aws::AwsClients {
    let options = plinth_operator::aws::AwsOptions {
        unrecorded: true,
        ..Default::default()
    };
    plinth_operator::aws::AwsClients::from_config(config, &options)
}

/// The engine's visibility window against the emulator with its lag off: every write shows
/// in the next read, so a create not listed a few seconds later was never made.
pub const CONSISTENT_VISIBILITY: std::time::Duration = std::time::Duration::from_secs(5);

/// The access key the emulator's consistency model spares (`exempt_access_key`): calls signed
/// with it see every write at once, as a verdict must.
pub const TRUTH_ACCESS_KEY: &str = "PLINTHCONSISTENT";

/// Reader clients (as [`reader_clients`]) that see the emulator's truth even when it lags as
/// AWS does (`PLINTH_LAG`): a campaign counts duplicates and leaks with these, so a resource
/// the lag hides is still counted.
pub fn truth_clients(config: &aws_config::SdkConfig) -> plinth_operator::aws::AwsClients {
    let credentials = aws_sdk_ec2::config::Credentials::new(
        TRUTH_ACCESS_KEY,
        "plinth-truth",
        None,
        None,
        "plinth-truth",
    );
    let config = config
        .to_builder()
        .credentials_provider(aws_sdk_ec2::config::SharedCredentialsProvider::new(
            credentials,
        ))
        .build();
    reader_clients(&config)
}

/// A Kubernetes client for the stack's API server, with the admin kubeconfig `up` wrote.
pub async fn kube_client() -> Result<kube::Client, StackError> {
    let path = stack_var("KUBECONFIG")?;
    let unreachable = |source: Box<dyn std::error::Error + Send + Sync>| StackError::Unreachable {
        part: "kube-apiserver",
        endpoint: path.clone(),
        source,
    };
    let kubeconfig =
        kube::config::Kubeconfig::read_from(&path).map_err(|e| unreachable(e.into()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| unreachable(e.into()))?;
    let client = kube::Client::try_from(config).map_err(|e| unreachable(e.into()))?;
    client
        .apiserver_version()
        .await
        .map_err(|e| unreachable(e.into()))?;
    Ok(client)
}

/// A fresh MariaDB database for one test, dropped by [`TestDatabase::drop_database`].
pub struct TestDatabase {
    /// A pool connected to the new database.
    pub pool: sqlx::MySqlPool,
    /// The database's name.
    pub name: String,
    server: sqlx::MySqlPool,
}

impl TestDatabase {
    /// Creates a uniquely named database on the stack's MariaDB.
    pub async fn create() -> Result<Self, StackError> {
        let url = stack_var("DATABASE_URL")?;
        let unreachable = |source: sqlx::Error| StackError::Unreachable {
            part: "MariaDB",
            endpoint: url.clone(),
            source: source.into(),
        };
        let server = sqlx::mysql::MySqlPoolOptions::new()
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&url)
            .await
            .map_err(unreachable)?;
        let name = unique_name("t").replace('-', "_");
        // The name is generated here, never user input.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
        )))
        .execute(&server)
        .await
        .map_err(unreachable)?;
        let pool = sqlx::MySqlPool::connect(&format!("{}/{name}", url.trim_end_matches('/')))
            .await
            .map_err(unreachable)?;
        Ok(Self { pool, name, server })
    }

    /// Drops the database; tests call it at the end so MariaDB does not fill with leftovers.
    pub async fn drop_database(self) -> Result<(), sqlx::Error> {
        self.pool.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE `{}`",
            self.name
        )))
        .execute(&self.server)
        .await?;
        Ok(())
    }
}
