//! Test harness: starts the real application on 127.0.0.1 port 0 against a fresh MariaDB
//! database (created with a unique name, dropped when the test's `TestApp` is dropped).
//! Needs the local stack: `tests/stack/up`, then `. .stack/env` for `DATABASE_URL`.

use std::time::Duration;

use plinth_ingest::config::Config;
use plinth_ingest::startup::Application;
use serde_json::Value;
use sqlx::mysql::MySqlPoolOptions;
use sqlx::{Connection, MySqlConnection, MySqlPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The admin key every test app is bootstrapped with.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef0123456789abcdef";

/// The server URL (no database) from `DATABASE_URL`; fails the test when the stack is down.
pub fn server_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url.trim_end_matches('/').to_owned(),
        _ => {
            panic!("DATABASE_URL is not set: start the stack: tests/stack/up (then `. .stack/env`)")
        }
    }
}

async fn server_connection() -> MySqlConnection {
    let url = server_url();
    match MySqlConnection::connect(&url).await {
        Ok(conn) => conn,
        Err(error) => panic!(
            "MariaDB at DATABASE_URL is unreachable ({error}): start the stack: tests/stack/up"
        ),
    }
}

/// A running application with its own database.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// HTTP client.
    pub client: reqwest::Client,
    /// Direct connection pool to the test database, for assertions.
    pub db: MySqlPool,
    /// The test database's name.
    pub db_name: String,
    owns_database: bool,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<()>>,
}

/// Creates a fresh database and returns its name.
pub async fn create_database() -> String {
    let name = format!("plinth_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = server_connection().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )))
    .execute(&mut conn)
    .await
    .expect("CREATE DATABASE");
    name
}

/// Test configuration on database `db_name`: fast polling and retries, logs only with TEST_LOG.
pub fn test_config(db_name: &str) -> Config {
    let mut config = Config::for_tests(&format!("{}/{db_name}", server_url()));
    config.bootstrap_admin_key = Some(ADMIN_KEY.to_owned().into());
    config.worker.poll_interval_ms = 50;
    config.worker.retry_base_ms = 50;
    config.worker.retry_max_ms = 200;
    config.database.db_max_connections = 10;
    config.shutdown_grace_secs = 10;
    config
}

/// Starts the app on a new database with default test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app on a new database after `customize` adjusts the configuration.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    let db_name = create_database().await;
    let mut app = spawn_app_on(&db_name, customize).await;
    app.owns_database = true;
    app
}

/// Starts another app on an existing database (it will not drop it).
pub async fn spawn_app_on(db_name: &str, customize: impl FnOnce(&mut Config)) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        plinth_ingest::telemetry::init(plinth_ingest::config::LogFormat::Pretty);
    }
    let mut config = test_config(db_name);
    customize(&mut config);
    let app = Application::build(config)
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    let handle = tokio::spawn(async move {
        if let Err(error) = app.run_until_stopped().await {
            panic!("application failed: {error}");
        }
    });
    let db = MySqlPoolOptions::new()
        .max_connections(4)
        .connect(&format!("{}/{db_name}", server_url()))
        .await
        .expect("test pool");
    // reqwest may be built with rustls and no provider (features unified with the e2e tests').
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    TestApp {
        address,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        db,
        db_name: db_name.to_owned(),
        owns_database: false,
        shutdown,
        handle: Some(handle),
    }
}

impl TestApp {
    /// URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// GET with a key.
    pub async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("GET")
    }

    /// POST a JSON body with a key.
    pub async fn post_json(&self, path: &str, key: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    /// POST records as a job; returns the response.
    pub async fn post_job(&self, key: &str, records: &Value) -> reqwest::Response {
        self.post_json("/v1/jobs", key, records).await
    }

    /// POST records and return the new job id (asserting 202).
    pub async fn create_job(&self, key: &str, records: &Value) -> u64 {
        let response = self.post_job(key, records).await;
        assert_eq!(response.status(), 202, "job accepted");
        let job: Value = response.json().await.expect("job JSON");
        job["id"].as_u64().expect("job id")
    }

    /// Creates a user and a key with `role`; returns (user id, key id, key).
    pub async fn create_key(&self, user: &str, role: &str) -> (u64, u64, String) {
        let response = self
            .post_json("/v1/users", ADMIN_KEY, &serde_json::json!({"name": user}))
            .await;
        assert_eq!(response.status(), 201, "user created");
        let user: Value = response.json().await.expect("user JSON");
        let user_id = user["id"].as_u64().expect("user id");
        let response = self
            .post_json(
                &format!("/v1/users/{user_id}/keys"),
                ADMIN_KEY,
                &serde_json::json!({"role": role}),
            )
            .await;
        assert_eq!(response.status(), 201, "key created");
        let key: Value = response.json().await.expect("key JSON");
        (
            user_id,
            key["id"].as_u64().expect("key id"),
            key["key"].as_str().expect("key").to_owned(),
        )
    }

    /// Reads a job.
    pub async fn job(&self, id: u64) -> Value {
        let response = self.get(&format!("/v1/jobs/{id}"), ADMIN_KEY).await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("job JSON")
    }

    /// Polls until the job's status is `status` (panics after 30 s with the job).
    pub async fn wait_for_status(&self, id: u64, status: &str) -> Value {
        self.wait_for(id, |job| job["status"] == status).await
    }

    /// Polls until `done(job)` (panics after 30 s with the job).
    pub async fn wait_for(&self, id: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let job = self.job(id).await;
            if done(&job) {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out; job is {job}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `SELECT COUNT(*) FROM <table>` (optionally `WHERE ...`).
    pub async fn count(&self, table_and_filter: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {table_and_filter}"
        )))
        .fetch_one(&self.db)
        .await
        .expect("count")
    }

    /// Shuts the application down gracefully and waits for it.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await.expect("application task");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if !self.owns_database {
            return;
        }
        let name = self.db_name.clone();
        // Drop runs outside async: drop the database from a thread with its own runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let mut conn = MySqlConnection::connect(&server_url()).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS `{name}`"
                )))
                .execute(&mut conn)
                .await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.db_name);
        }
    }
}

/// Records `[{"type": "event", "value": i}, ...]`.
pub fn records(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| serde_json::json!({"type": "event", "value": i, "source": "test"}))
            .collect(),
    )
}

/// The error code of a JSON error response (asserting the stable shape).
pub async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("error body is JSON");
    let error = body.get("error").expect("`error` object");
    assert!(error["message"].is_string(), "error.message in {body}");
    error["code"].as_str().expect("error.code").to_owned()
}
