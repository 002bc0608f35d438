//! Credential rotation: the app reads its database credentials from a Secrets Manager secret
//! (the local AWS emulator); the password is rotated the way RDS does it (AWSPENDING, then the
//! database, then AWSCURRENT) while requests flow, and no request fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use serde_json::json;

use crate::helpers::{ADMIN_KEY, create_database, records, server_url, spawn_app_on};

async fn secrets_client() -> Client {
    if std::env::var("AWS_ENDPOINT_URL").map_or(true, |v| v.is_empty()) {
        panic!(
            "AWS_ENDPOINT_URL is not set: start the stack: tests/stack/up (then `. .stack/env`)"
        );
    }
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    Client::new(&config)
}

async fn root_exec(sql: String) {
    let pool = sqlx::MySqlPool::connect(&server_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_rotation_under_load_fails_no_request() {
    let client = secrets_client().await;
    let db_name = create_database().await;
    let suffix = &db_name[db_name.len() - 12..];
    let user = format!("rot_{suffix}");
    root_exec(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'first-password'"
    ))
    .await;
    root_exec(format!(
        "GRANT ALL PRIVILEGES ON `{db_name}`.* TO '{user}'@'%'"
    ))
    .await;

    let created = client
        .create_secret()
        .name(format!("plinth-test/{db_name}"))
        .secret_string(json!({"username": user, "password": "first-password"}).to_string())
        .send()
        .await
        .expect("create the secret in the emulator");
    let arn = created.arn().unwrap().to_owned();
    let first_version = created.version_id().unwrap().to_owned();

    // The same server DATABASE_URL names (the stack may run MariaDB on another port).
    let server: sqlx::mysql::MySqlConnectOptions =
        server_url().parse().expect("DATABASE_URL is a MySQL URL");
    let app = spawn_app_on(&db_name, |c| {
        c.database.database_url = None;
        c.database.db_secret_arn = Some(arn.clone());
        c.database.db_host = Some(server.get_host().to_owned());
        c.database.db_port = server.get_port();
        c.database.db_name = Some(db_name.clone());
        c.database.db_ssl_mode = "disabled".into();
        // Connections are replaced every second, so new logins happen throughout the test.
        c.database.db_max_lifetime_secs = 1;
        c.limits.rate_limit_per_sec = 10_000;
        c.limits.rate_limit_burst = 10_000;
    })
    .await;

    // Load: 4 clients posting and reading until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for n in 0..4 {
        let stop = stop.clone();
        let http = app.client.clone();
        let base = app.address.clone();
        clients.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let response = if n % 2 == 0 {
                    http.post(format!("{base}/v1/jobs"))
                        .bearer_auth(ADMIN_KEY)
                        .json(&records(10))
                        .send()
                        .await
                } else {
                    http.get(format!("{base}/v1/jobs?limit=5"))
                        .bearer_auth(ADMIN_KEY)
                        .send()
                        .await
                };
                statuses.push(response.map(|r| r.status().as_u16()).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            statuses
        }));
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Rotation, RDS style: the new password as AWSPENDING, then the database, then AWSCURRENT.
    let pending = client
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(json!({"username": user, "password": "second-password"}).to_string())
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("put AWSPENDING");
    let pending_version = pending.version_id().unwrap().to_owned();
    root_exec(format!(
        "ALTER USER '{user}'@'%' IDENTIFIED BY 'second-password'"
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    client
        .update_secret_version_stage()
        .secret_id(&arn)
        .version_stage("AWSCURRENT")
        .move_to_version_id(&pending_version)
        .remove_from_version_id(&first_version)
        .send()
        .await
        .expect("move AWSCURRENT");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut statuses = Vec::new();
    for client in clients {
        statuses.extend(client.await.unwrap());
    }
    let failed: Vec<_> = statuses
        .iter()
        .filter(|s| !(200..300).contains(*s))
        .collect();
    assert!(statuses.len() > 50, "load ran: {} requests", statuses.len());
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        statuses.len()
    );

    let metrics = app.get("/metrics", ADMIN_KEY).await.text().await.unwrap();
    let refreshes = metrics
        .lines()
        .find(|l| l.starts_with("plinth_ingest_db_credential_refreshes_total"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        refreshes >= 1.0,
        "the rotation was noticed and the secret re-read:\n{metrics}"
    );

    drop(app);
    root_exec(format!("DROP DATABASE IF EXISTS `{db_name}`")).await;
    root_exec(format!("DROP USER IF EXISTS '{user}'@'%'")).await;
}
