//! The API's one error type: every failure a handler can return, its HTTP status, and the
//! stable JSON shape `{"error": {"code": "...", "message": "..."}}`. Server-side causes are
//! logged here and never sent to the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No API key in the request.
    #[error("an API key is required: send `Authorization: Bearer <key>`")]
    MissingKey,
    /// The key is unknown or revoked (one answer for both: no oracle).
    #[error("the API key is not valid")]
    InvalidKey,
    /// The key's role may not do this.
    #[error("this API key's role ({0}) may not do this")]
    Forbidden(&'static str),
    /// No such resource (or not the caller's).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The body is not well-formed JSON / NDJSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// Well-formed, but not what the endpoint takes.
    #[error("{0}")]
    InvalidBody(String),
    /// Bad query string or path parameter.
    #[error("{0}")]
    InvalidParameter(String),
    /// Body larger than the limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// More records than the limit.
    #[error("{count} records sent; at most {max} per job")]
    TooManyRecords {
        /// Records sent.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Content-Type we do not read.
    #[error("send `application/json` (an array of records) or `application/x-ndjson`")]
    UnsupportedMediaType,
    /// Same `Idempotency-Key`, different body.
    #[error("Idempotency-Key was already used with a different request body")]
    IdempotencyConflict,
    /// A unique value already exists.
    #[error("{0}")]
    Conflict(String),
    /// Per-key rate limit.
    #[error("rate limit exceeded; retry after {retry_after_secs} s")]
    RateLimited {
        /// Seconds until a request would be allowed.
        retry_after_secs: u64,
    },
    /// Too many jobs waiting.
    #[error("the processing backlog is full; retry after {retry_after_secs} s")]
    Backlog {
        /// Suggested wait.
        retry_after_secs: u64,
    },
    /// The database could not be reached in time.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database failure.
    #[error("internal error")]
    Database(#[source] sqlx::Error),
    /// Anything else that is our fault.
    #[error("internal error")]
    Internal(String),
}

/// The JSON error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message of an error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code, e.g. `invalid_api_key`.
    pub code: &'static str,
    /// What went wrong and what to change.
    pub message: String,
}

impl ApiError {
    /// HTTP status of each error: the one explicit map.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingKey | Self::InvalidKey => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MalformedJson(_) | Self::InvalidParameter(_) => StatusCode::BAD_REQUEST,
            Self::InvalidBody(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge(_) | Self::TooManyRecords { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::IdempotencyConflict | Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RateLimited { .. } | Self::Backlog { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable code of each error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingKey => "missing_api_key",
            Self::InvalidKey => "invalid_api_key",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MalformedJson(_) => "malformed_json",
            Self::InvalidBody(_) => "invalid_body",
            Self::InvalidParameter(_) => "invalid_parameter",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::TooManyRecords { .. } => "too_many_records",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::Conflict(_) => "conflict",
            Self::RateLimited { .. } => "rate_limited",
            Self::Backlog { .. } => "backlog_full",
            Self::Unavailable(_) => "unavailable",
            Self::Database(_) | Self::Internal(_) => "internal",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_secs } | Self::Backlog { retry_after_secs } => {
                Some(*retry_after_secs)
            }
            Self::Unavailable(_) => Some(1),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable(error)
            }
            other => Self::Database(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = ?self, code = self.code(), "request failed");
        } else {
            tracing::info!(code = self.code(), message = %self, "request rejected");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// True when a database error is MySQL's unique-key violation (1062).
pub fn is_duplicate_key(error: &sqlx::Error) -> bool {
    mysql_error_number(error) == Some(1062)
}

/// MySQL's error number of a database error, if it is one.
pub fn mysql_error_number(error: &sqlx::Error) -> Option<u16> {
    match error {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .map(|e| e.number()),
        _ => None,
    }
}
