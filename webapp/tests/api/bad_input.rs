//! The bad-input table: every refused request gets the right 4xx with the JSON error shape,
//! and nothing is stored.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::helpers::{ADMIN_KEY, error_code, spawn_app_with};

struct Case {
    name: &'static str,
    key: Option<String>,
    content_type: &'static str,
    gzip: bool,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_and_store_nothing() {
    let app = spawn_app_with(|c| {
        c.limits.max_body_bytes = 64 * 1024;
        c.limits.max_records = 50;
        c.limits.max_json_depth = 5;
    })
    .await;
    let (_, _, ingest) = app.create_key("ingester", "ingest").await;
    let (_, _, read) = app.create_key("reader", "read").await;
    let (revoked_user, revoked_id, revoked) = app.create_key("gone", "ingest").await;
    let response = app
        .client
        .delete(app.url(&format!("/v1/users/{revoked_user}/keys/{revoked_id}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    let ok_records = br#"[{"type":"a"}]"#.to_vec();
    let huge = format!(
        "[{}]",
        vec![format!(r#"{{"type":"a","pad":"{}"}}"#, "x".repeat(1000)); 100].join(",")
    );
    let deep = format!(
        r#"[{{"type":"a","n":{}1{}}}]"#,
        "[".repeat(10),
        "]".repeat(10)
    );
    let many = format!("[{}]", vec![r#"{"type":"a"}"#; 51].join(","));
    let key = |k: &str| Some(k.to_owned());
    let json = "application/json";
    let cases = vec![
        Case {
            name: "malformed JSON",
            key: key(&ingest),
            content_type: json,
            gzip: false,
            body: br#"[{"type":"#.to_vec(),
            status: 400,
            code: "malformed_json",
        },
        Case {
            name: "malformed NDJSON line",
            key: key(&ingest),
            content_type: "application/x-ndjson",
            gzip: false,
            body: b"{\"type\":\"a\"}\n{nope}\n".to_vec(),
            status: 400,
            code: "malformed_json",
        },
        Case {
            name: "object instead of array",
            key: key(&ingest),
            content_type: json,
            gzip: false,
            body: br#"{"type":"a"}"#.to_vec(),
            status: 422,
            code: "invalid_body",
        },
        Case {
            name: "records of the wrong type",
            key: key(&ingest),
            content_type: json,
            gzip: false,
            body: br#"[{"type":"a"}, 42, "x"]"#.to_vec(),
            status: 422,
            code: "invalid_body",
        },
        Case {
            name: "no records",
            key: key(&ingest),
            content_type: json,
            gzip: false,
            body: b"[]".to_vec(),
            status: 422,
            code: "invalid_body",
        },
        Case {
            name: "too deep",
            key: key(&ingest),
            content_type: json,
            gzip: false,
            body: deep.into_bytes(),
            status: 422,
            code: "invalid_body",
        },
        Case {
            name: "oversized body",
            key: key(&ingest),
            content_type: json,
            gzip: false,
            body: huge.clone().into_bytes(),
            status: 413,
            code: "payload_too_large",
        },
        Case {
            name: "oversized once decompressed",
            key: key(&ingest),
            content_type: json,
            gzip: true,
            body: huge.into_bytes(),
            status: 413,
            code: "payload_too_large",
        },
        Case {
            name: "too many records",
            key: key(&ingest),
            content_type: json,
            gzip: false,
            body: many.into_bytes(),
            status: 413,
            code: "too_many_records",
        },
        Case {
            name: "unsupported content type",
            key: key(&ingest),
            content_type: "text/csv",
            gzip: false,
            body: b"type\na\n".to_vec(),
            status: 415,
            code: "unsupported_media_type",
        },
        Case {
            name: "missing key",
            key: None,
            content_type: json,
            gzip: false,
            body: ok_records.clone(),
            status: 401,
            code: "missing_api_key",
        },
        Case {
            name: "unknown key",
            key: key("plk_0000000000000000000000000000000000000000000000000000000000000000"),
            content_type: json,
            gzip: false,
            body: ok_records.clone(),
            status: 401,
            code: "invalid_api_key",
        },
        Case {
            name: "revoked key",
            key: key(&revoked),
            content_type: json,
            gzip: false,
            body: ok_records.clone(),
            status: 401,
            code: "invalid_api_key",
        },
        Case {
            name: "read-only key posting",
            key: key(&read),
            content_type: json,
            gzip: false,
            body: ok_records.clone(),
            status: 403,
            code: "forbidden",
        },
    ];

    for case in cases {
        let mut request = app
            .client
            .post(app.url("/v1/jobs"))
            .header("content-type", case.content_type);
        if let Some(key) = &case.key {
            request = request.bearer_auth(key);
        }
        let body = if case.gzip {
            request = request.header("content-encoding", "gzip");
            gzip(&case.body)
        } else {
            case.body
        };
        let response = request.body(body).send().await.unwrap();
        assert_eq!(
            response.status().as_u16(),
            case.status,
            "{}: status",
            case.name
        );
        assert!(
            response.headers().contains_key("x-request-id"),
            "{}: request id",
            case.name
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{}: JSON error",
            case.name
        );
        assert_eq!(error_code(response).await, case.code, "{}: code", case.name);
    }

    assert_eq!(app.count("ingestion_jobs").await, 0, "no job stored");
    assert_eq!(app.count("raw_records").await, 0, "no record stored");
    assert_eq!(app.count("processed_data").await, 0, "nothing processed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_per_key_answers_429_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.limits.rate_limit_per_sec = 1;
        c.limits.rate_limit_burst = 3;
    })
    .await;
    // Two of the admin key's three requests.
    let (_, _, key) = app.create_key("chatty", "read").await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(app.get("/v1/jobs", &key).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200]);
    let limited = app.get("/v1/jobs", &key).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(error_code(limited).await, "rate_limited");
    // Another key has its own bucket.
    assert_eq!(app.get("/v1/jobs", ADMIN_KEY).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_answers_429_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.worker.workers = 0;
        c.limits.max_backlog_jobs = 2;
    })
    .await;
    let records = serde_json::json!([{"type": "a"}]);
    assert_eq!(app.post_job(ADMIN_KEY, &records).await.status(), 202);
    assert_eq!(app.post_job(ADMIN_KEY, &records).await.status(), 202);
    let refused = app.post_job(ADMIN_KEY, &records).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(error_code(refused).await, "backlog_full");
    assert_eq!(app.count("ingestion_jobs").await, 2);
}
