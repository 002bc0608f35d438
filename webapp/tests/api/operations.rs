//! /health, /ready, /metrics, /openapi.json, security headers and request ids, graceful stop.

use crate::helpers::{ADMIN_KEY, error_code, records, spawn_app, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_metrics_and_openapi_answer() {
    let app = spawn_app().await;

    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let headers = health.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers.contains_key("content-security-policy"));
    assert!(headers.contains_key("x-request-id"));

    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    // A request id sent by the client (the ALB's) is kept.
    let response = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");

    let openapi: serde_json::Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/records",
        "/v1/users",
        "/v1/users/{id}/keys",
        "/health",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "{path} documented");
    }

    // /metrics is for admin keys: through the public listener it would show anyone the
    // service's rates; a key of another role is refused, no key is unauthenticated.
    let anonymous = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(error_code(anonymous).await, "missing_api_key");
    let (_, _, ingest_key) = app.create_key("metrics-reader", "ingest").await;
    let ingest = app.get("/metrics", &ingest_key).await;
    assert_eq!(ingest.status(), 403);
    let metrics = app.get("/metrics", ADMIN_KEY).await.text().await.unwrap();
    assert!(
        metrics.contains(
            "plinth_ingest_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"}"
        ),
        "{metrics}"
    );

    // Unknown routes get the JSON error too, with a request id.
    let missing = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.headers().contains_key("x-request-id"));
    assert_eq!(error_code(missing).await, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_the_claimed_job() {
    // One record per batch: the job takes long enough to be caught mid-way.
    let mut app = spawn_app_with(|c| {
        c.worker.workers = 1;
        c.worker.batch_size = 1;
    })
    .await;
    let id = app.create_job(ADMIN_KEY, &records(3000)).await;
    app.wait_for_status(id, "processing").await;
    app.stop().await;

    let (status, attempts, claimed_by): (String, u32, Option<String>) =
        sqlx::query_as("SELECT status, attempts, claimed_by FROM ingestion_jobs WHERE id = ?")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(status, "queued", "released for another instance");
    assert_eq!(attempts, 0, "a released attempt is not counted");
    assert_eq!(claimed_by, None);
}
