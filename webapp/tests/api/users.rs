//! Users and API keys: admin only, conflicts, revocation.

use serde_json::json;

use crate::helpers::{ADMIN_KEY, error_code, records, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_shown_once_and_revocation_takes_effect() {
    let app = spawn_app().await;
    let (user_id, key_id, key) = app.create_key("alice", "ingest").await;
    assert!(key.starts_with("plk_") && key.len() == 68);

    // Only the hash is stored.
    let stored: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM api_keys WHERE key_prefix = ? AND key_hash = UNHEX(SHA2(?, 256))",
    )
    .bind(&key[..12])
    .bind(&key)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(stored, 1);

    assert_eq!(app.post_job(&key, &records(1)).await.status(), 202);

    let revoke = app
        .client
        .delete(app.url(&format!("/v1/users/{user_id}/keys/{key_id}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    let refused = app.post_job(&key, &records(1)).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(error_code(refused).await, "invalid_api_key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_admin_is_for_admins_only() {
    let app = spawn_app().await;
    let (user_id, _, ingest_key) = app.create_key("bob", "ingest").await;

    let response = app
        .post_json("/v1/users", &ingest_key, &json!({"name": "eve"}))
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(error_code(response).await, "forbidden");

    let response = app
        .post_json("/v1/users", ADMIN_KEY, &json!({"name": "bob"}))
        .await;
    assert_eq!(response.status(), 409);

    let response = app
        .post_json("/v1/users", ADMIN_KEY, &json!({"nom": "x"}))
        .await;
    assert_eq!(response.status(), 422);

    let response = app
        .post_json("/v1/users/999999/keys", ADMIN_KEY, &json!({"role": "read"}))
        .await;
    assert_eq!(response.status(), 404);

    let response = app
        .post_json(
            &format!("/v1/users/{user_id}/keys"),
            ADMIN_KEY,
            &json!({"role": "root"}),
        )
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(error_code(response).await, "invalid_body");

    // An admin key cannot revoke itself (no accidental lock-out).
    let (admin_user, admin_key_id): (u64, u64) =
        sqlx::query_as("SELECT user_id, id FROM api_keys WHERE role = 'admin'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let response = app
        .client
        .delete(app.url(&format!("/v1/users/{admin_user}/keys/{admin_key_id}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(app.get("/v1/jobs", ADMIN_KEY).await.status(), 200);
}
