//! The operator's small HTTP server: `/metrics` for Prometheus, `/healthz` (the process runs)
//! and `/readyz` (it reached the API server, found the CRD and joined leader election; a
//! standby replica is ready too, so a rollout of two replicas does not wait on the Lease).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::metrics::Metrics;

/// What the endpoints read.
#[derive(Clone)]
pub struct Probes {
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// Set once start-up checks passed.
    pub ready: Arc<AtomicBool>,
}

async fn metrics(State(probes): State<Probes>) -> impl IntoResponse {
    match probes.metrics.render() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(probes): State<Probes>) -> impl IntoResponse {
    if probes.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

/// The router, separate from binding so tests can serve it on port 0.
pub fn router(probes: Probes) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(probes)
}

/// Binds `addr` and serves until `shutdown` resolves. Returns the bound address (useful with
/// port 0) and the serving task.
pub async fn serve(
    addr: SocketAddr,
    probes: Probes,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(probes);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(app: Router, path: &str) -> (StatusCode, String) {
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn probes_and_metrics_answer_as_kubernetes_and_prometheus_expect() {
        let probes = Probes {
            metrics: Arc::new(Metrics::default()),
            ready: Arc::new(AtomicBool::new(false)),
        };
        probes
            .metrics
            .observe_reconcile("ready", std::time::Duration::from_millis(5));
        let app = router(probes.clone());

        assert_eq!(get(app.clone(), "/healthz").await.0, StatusCode::OK);
        assert_eq!(
            get(app.clone(), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready before the start-up checks"
        );
        probes.ready.store(true, Ordering::Release);
        assert_eq!(get(app.clone(), "/readyz").await.0, StatusCode::OK);

        let (status, text) = get(app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            text.contains(r#"plinth_reconciles_total{outcome="ready"} 1"#),
            "{text}"
        );
        assert!(text.contains("plinth_leader"), "{text}");
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics text ends with # EOF"
        );
    }
}
