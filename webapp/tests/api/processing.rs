//! Processing: success with a bad record kept, retries with backoff then success or `failed`,
//! and a dead worker's job taken over after its claim expires, with no duplicate rows.

use serde_json::{Value, json};

use crate::helpers::{ADMIN_KEY, records, spawn_app, spawn_app_on, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_processed_and_a_bad_record_is_kept_with_its_error() {
    let app = spawn_app().await;
    let body = json!([
        {"type": "Click", "timestamp": "2026-11-27T10:00:00+01:00", "value": 1.5, "page": "/home"},
        {"value": 2},
        {"type": "view", "timestamp": 1764237600},
    ]);
    let id = app.create_job(ADMIN_KEY, &body).await;
    let job = app.wait_for_status(id, "succeeded").await;
    assert_eq!(job["record_count"], 3);
    assert_eq!(job["processed_count"], 2);
    assert_eq!(job["invalid_count"], 1);
    assert_eq!(job["attempts"], 1);
    assert_eq!(
        app.count(&format!("processed_data WHERE job_id = {id}"))
            .await,
        3
    );

    let page: Value = app
        .get(&format!("/v1/jobs/{id}/records"), ADMIN_KEY)
        .await
        .json()
        .await
        .unwrap();
    let records = page["records"].as_array().unwrap();
    assert_eq!(records[0]["status"], "ok");
    assert_eq!(
        records[0]["data"],
        json!({"type": "click", "timestamp": "2026-11-27T09:00:00Z", "value": 1.5, "attributes": {"page": "/home"}})
    );
    assert_eq!(records[1]["status"], "invalid");
    assert_eq!(records[1]["error"], "`type` is missing");
    assert_eq!(records[2]["data"]["timestamp"], "2025-11-27T10:00:00Z");

    // Paging through records.
    let first: Value = app
        .get(&format!("/v1/jobs/{id}/records?limit=2"), ADMIN_KEY)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["next_after"], 1);
    let rest: Value = app
        .get(&format!("/v1/jobs/{id}/records?limit=2&after=1"), ADMIN_KEY)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["records"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_after"], Value::Null);
}

async fn break_processing(app: &crate::helpers::TestApp) {
    sqlx::query("RENAME TABLE processed_data TO processed_data_away")
        .execute(&app.db)
        .await
        .unwrap();
}

async fn mend_processing(app: &crate::helpers::TestApp) {
    sqlx::query("RENAME TABLE processed_data_away TO processed_data")
        .execute(&app.db)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_is_retried_with_backoff_then_succeeds() {
    let app = spawn_app().await;
    break_processing(&app).await;
    let id = app.create_job(ADMIN_KEY, &records(10)).await;
    let retrying = app
        .wait_for(id, |job| {
            job["attempts"].as_u64() >= Some(2) && job["status"] == "queued"
        })
        .await;
    assert!(
        retrying["last_error"]
            .as_str()
            .unwrap()
            .contains("processed_data"),
        "the reason is kept: {retrying}"
    );
    mend_processing(&app).await;
    let job = app.wait_for_status(id, "succeeded").await;
    assert!(job["attempts"].as_u64().unwrap() >= 3);
    assert_eq!(job["last_error"], Value::Null);
    assert_eq!(job["processed_count"], 10);
    assert_eq!(
        app.count(&format!("processed_data WHERE job_id = {id}"))
            .await,
        10
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_failing_ends_failed_with_the_reason() {
    let app = spawn_app_with(|c| c.worker.max_attempts = 3).await;
    break_processing(&app).await;
    let id = app.create_job(ADMIN_KEY, &records(5)).await;
    let job = app.wait_for_status(id, "failed").await;
    assert_eq!(job["attempts"], 3);
    let reason = job["last_error"].as_str().unwrap();
    assert!(
        reason.contains("attempt 3 of 3") && reason.contains("processed_data"),
        "{reason}"
    );
    assert!(job["finished_at"].is_string());
    mend_processing(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_job_is_finished_once_by_another_worker() {
    // Instance A only accepts jobs.
    let accepting = spawn_app_with(|c| c.worker.workers = 0).await;
    let id = accepting.create_job(ADMIN_KEY, &records(250)).await;

    // A worker claimed it, wrote the first 100 rows, and died: its claim has expired.
    sqlx::query(
        "UPDATE ingestion_jobs SET status = 'processing', attempts = 1, claimed_by = 'dead-worker', \
         claim_expires_at = NOW(6) - INTERVAL 1 SECOND WHERE id = ?",
    )
    .bind(id)
    .execute(&accepting.db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO processed_data (job_id, record_index, status, data) \
         SELECT job_id, record_index, 'ok', payload FROM raw_records WHERE job_id = ? AND record_index < 100",
    )
    .bind(id)
    .execute(&accepting.db)
    .await
    .unwrap();

    // Instance B's workers take it over.
    let worker = spawn_app_on(&accepting.db_name, |c| {
        c.worker.workers = 3;
        c.worker.batch_size = 40;
    })
    .await;
    let job = worker.wait_for_status(id, "succeeded").await;
    assert_eq!(job["attempts"], 2);
    assert_eq!(job["processed_count"], 250);
    assert_eq!(
        worker
            .count(&format!("processed_data WHERE job_id = {id}"))
            .await,
        250
    );
    let distinct: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT record_index) FROM processed_data WHERE job_id = ?",
    )
    .bind(id)
    .fetch_one(&worker.db)
    .await
    .unwrap();
    assert_eq!(distinct, 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_claim_expired_on_its_last_attempt_ends_failed() {
    let accepting = spawn_app_with(|c| {
        c.worker.workers = 0;
        c.worker.max_attempts = 2;
    })
    .await;
    let id = accepting.create_job(ADMIN_KEY, &records(3)).await;
    sqlx::query(
        "UPDATE ingestion_jobs SET status = 'processing', attempts = 2, claimed_by = 'dead-worker', \
         claim_expires_at = NOW(6) - INTERVAL 1 SECOND WHERE id = ?",
    )
    .bind(id)
    .execute(&accepting.db)
    .await
    .unwrap();
    let worker = spawn_app_on(&accepting.db_name, |_| {}).await;
    let job = worker.wait_for_status(id, "failed").await;
    assert!(
        job["last_error"]
            .as_str()
            .unwrap()
            .contains("claim expired")
    );
}
