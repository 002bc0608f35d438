//! Operations endpoints: `/health` (the process answers), `/ready` (the database answers),
//! `/metrics` (Prometheus text, for admin keys only).
//!
//! Why `/metrics` takes a key: the instances serve only through the load balancer's public
//! listener, so an open `/metrics` would tell anyone on the internet the service's request and
//! error rates per route, its job throughput and its database credential refreshes. A scraper
//! gets an admin key (`Authorization: Bearer`, as Prometheus's `authorization` setting sends
//! it). `/openapi.json` stays open: it is the API's published contract, holds no data, and is
//! what clients generate their code from.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Health or readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok`.
    pub status: &'static str,
    /// The release this instance runs (`PLINTH_VERSION`), when it was started with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(metrics))
}

/// The process is up (the load balancer's health check).
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Up", body = Status)))]
pub async fn health(State(state): State<AppState>) -> Json<Status> {
    Json(Status {
        status: "ok",
        version: state.release.as_deref().map(str::to_owned),
    })
}

/// The database answers.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "Database unreachable", body = ErrorBody),
    ))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    match tokio::time::timeout(Duration::from_secs(3), state.db.ping()).await {
        Ok(Ok(())) => Ok(Json(Status {
            status: "ok",
            version: None,
        })),
        Ok(Err(error)) => Err(ApiError::Unavailable(error)),
        Err(_) => Err(ApiError::Unavailable(sqlx::Error::PoolTimedOut)),
    }
}

/// Prometheus metrics (OpenMetrics text), for admin keys.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Metrics", content_type = "application/openmetrics-text", body = String),
        (status = 401, description = "Missing or invalid key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn metrics(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let text = state
        .metrics
        .encode()
        .map_err(|e| ApiError::Internal(format!("encoding metrics: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
}
