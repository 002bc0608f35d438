//! Jobs API: idempotent replay and conflict, NDJSON and gzip bodies, keyset pagination,
//! visibility between users.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_KEY, error_code, records, spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_replay_returns_the_same_job_and_another_body_conflicts() {
    let app = spawn_app().await;
    let (_, _, key) = app.create_key("client", "ingest").await;
    let (_, _, other_user_key) = app.create_key("other", "ingest").await;
    let body = records(3);
    let post = |key: String, body: Value| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/v1/jobs"))
                .bearer_auth(key)
                .header("idempotency-key", "batch-2026-11-27-001")
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };

    let first = post(key.clone(), body.clone()).await;
    assert_eq!(first.status(), 202);
    assert!(first.headers().contains_key("location"));
    let first: Value = first.json().await.unwrap();

    let replay = post(key.clone(), body.clone()).await;
    assert_eq!(replay.status(), 202);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["id"], first["id"]);

    let conflict = post(key.clone(), records(4)).await;
    assert_eq!(conflict.status(), 409);
    assert_eq!(error_code(conflict).await, "idempotency_conflict");

    // The key is per user: another user's job under the same key is its own.
    let theirs = post(other_user_key, body).await;
    assert_eq!(theirs.status(), 202);
    let theirs: Value = theirs.json().await.unwrap();
    assert_ne!(theirs["id"], first["id"]);

    assert_eq!(app.count("ingestion_jobs").await, 2);
    assert_eq!(app.count("raw_records").await, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_ndjson_is_accepted() {
    let app = spawn_app().await;
    let ndjson: String = (0..20)
        .map(|i| format!("{{\"type\":\"line\",\"value\":{i}}}\n"))
        .collect();
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(ndjson.as_bytes()).unwrap();
    let response = app
        .client
        .post(app.url("/v1/jobs"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "gzip")
        .body(encoder.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["record_count"], 20);
    let id = job["id"].as_u64().unwrap();
    let done = app.wait_for_status(id, "succeeded").await;
    assert_eq!(done["processed_count"], 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_listed_with_keyset_pagination_and_only_to_their_owner() {
    let app = spawn_app_with(|c| c.worker.workers = 0).await;
    let (_, _, key) = app.create_key("pager", "ingest").await;
    let (_, _, stranger) = app.create_key("stranger", "read").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.create_job(&key, &records(1)).await);
    }

    let mut seen = Vec::new();
    let mut after: Option<u64> = None;
    let mut pages = 0;
    loop {
        let path = match after {
            Some(a) => format!("/v1/jobs?limit=2&after={a}"),
            None => "/v1/jobs?limit=2".to_owned(),
        };
        let page: Value = app.get(&path, &key).await.json().await.unwrap();
        pages += 1;
        seen.extend(
            page["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_u64().unwrap()),
        );
        match page["next_after"].as_u64() {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3);

    let queued: Value = app
        .get("/v1/jobs?status=queued", &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(queued["jobs"].as_array().unwrap().len(), 5);
    let done: Value = app
        .get("/v1/jobs?status=succeeded", &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(done["jobs"].as_array().unwrap().len(), 0);

    let bad = app.get("/v1/jobs?status=lost", &key).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(error_code(bad).await, "invalid_parameter");
    assert_eq!(app.get("/v1/jobs?limit=0", &key).await.status(), 400);
    assert_eq!(app.get("/v1/jobs?after=x", &key).await.status(), 400);
    assert_eq!(app.get("/v1/jobs/abc", &key).await.status(), 400);

    // Another user sees none of them.
    let theirs: Value = app.get("/v1/jobs", &stranger).await.json().await.unwrap();
    assert_eq!(theirs["jobs"], json!([]));
    assert_eq!(
        app.get(&format!("/v1/jobs/{}", ids[0]), &stranger)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.get(&format!("/v1/jobs/{}/records", ids[0]), &stranger)
            .await
            .status(),
        404
    );
    // The admin sees them all.
    let all: Value = app
        .get("/v1/jobs?limit=1000", ADMIN_KEY)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["jobs"].as_array().unwrap().len(), 5);
}
