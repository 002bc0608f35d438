//! Jobs: create one from a batch of records (JSON array or NDJSON, optionally gzip-encoded,
//! optionally under an `Idempotency-Key`), read one, list them with keyset pagination, and list
//! a job's processed records.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{Connection, MySqlConnection, QueryBuilder};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorBody, is_duplicate_key};
use crate::metrics::OutcomeLabels;
use crate::records::{self, BodyFormat, RecordLimits, parse_records};
use crate::state::AppState;

/// Raw records per multi-row INSERT when a job is stored.
const RAW_INSERT_BATCH: usize = 1000;
/// Longest `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 190;
/// Job statuses.
pub const STATUSES: [&str; 4] = ["queued", "processing", "succeeded", "failed"];

/// An ingestion job.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Job {
    /// Job id.
    pub id: u64,
    /// Owner.
    pub user_id: u64,
    /// `queued`, `processing`, `succeeded` or `failed`.
    pub status: String,
    /// The `Idempotency-Key` it was created under.
    pub idempotency_key: Option<String>,
    /// Records posted.
    pub record_count: u32,
    /// Records processed successfully.
    pub processed_count: u32,
    /// Records that failed validation (stored with their error).
    pub invalid_count: u32,
    /// Processing attempts so far.
    pub attempts: u32,
    /// Attempts before the job is `failed`.
    pub max_attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the job may next be attempted.
    pub next_attempt_at: DateTime<Utc>,
    /// When it was posted.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it reached `succeeded` or `failed`.
    pub finished_at: Option<DateTime<Utc>>,
}

const JOB_COLUMNS: &str = "id, user_id, status, idempotency_key, record_count, processed_count, \
    invalid_count, attempts, max_attempts, last_error, next_attempt_at, created_at, updated_at, \
    finished_at";

/// A page of jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    /// Jobs, by ascending id.
    pub jobs: Vec<Job>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<u64>,
}

/// Filters and page of `GET /v1/jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListJobs {
    /// Only jobs with this status.
    pub status: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// Only jobs with a larger id (the previous page's `next_after`).
    pub after: Option<u64>,
}

/// Page of `GET /v1/jobs/{id}/records`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListRecords {
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// Only records with a larger index (the previous page's `next_after`).
    pub after: Option<u32>,
}

/// One processed record.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessedRecord {
    /// Position in the posted batch, from 0.
    pub record_index: u32,
    /// `ok` or `invalid`.
    pub status: String,
    /// The transformed record (`ok`).
    pub data: Option<Value>,
    /// Why the record was refused (`invalid`).
    pub error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ProcessedRow {
    record_index: u32,
    status: String,
    data: Option<sqlx::types::Json<Value>>,
    error: Option<String>,
}

/// A page of processed records.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordPage {
    /// Records by ascending index.
    pub records: Vec<ProcessedRecord>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<u32>,
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<crate::state::AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_job, list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(list_records))
}

fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(100),
        Some(n @ 1..=1000) => Ok(n),
        Some(n) => Err(ApiError::InvalidParameter(format!(
            "limit must be 1 to 1000, not {n}"
        ))),
    }
}

/// Reads the body after gzip decoding, refusing more than `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(e) = source {
            if e.is::<http_body_util::LengthLimitError>() {
                return ApiError::PayloadTooLarge(limit);
            }
            source = e.source();
        }
        ApiError::MalformedJson(format!("the body could not be read or decoded: {error}"))
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= MAX_IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            ApiError::InvalidParameter(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            ))
        })?;
    Ok(Some(text.to_owned()))
}

async fn fetch_job(conn: &mut MySqlConnection, id: u64) -> Result<Option<Job>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM ingestion_jobs WHERE id = ?"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The job already created under this key: the same job when the body matches, else 409.
async fn replay(
    conn: &mut MySqlConnection,
    user_id: u64,
    key: &str,
    request_hash: &[u8; 32],
) -> Result<Option<Job>, ApiError> {
    let existing: Option<(u64, Vec<u8>)> = sqlx::query_as(
        "SELECT id, request_hash FROM ingestion_jobs WHERE user_id = ? AND idempotency_key = ?",
    )
    .bind(user_id)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    match existing {
        None => Ok(None),
        Some((_, hash)) if hash.as_slice() != request_hash.as_slice() => {
            Err(ApiError::IdempotencyConflict)
        }
        Some((id, _)) => Ok(fetch_job(conn, id).await?),
    }
}

fn accepted(job: Job, replayed: bool) -> Response {
    let location = format!("/v1/jobs/{}", job.id);
    let mut response = (StatusCode::ACCEPTED, Json(job)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Post a batch of records as a job.
///
/// The body is a JSON array of record objects (`application/json`) or one object per line
/// (`application/x-ndjson`), optionally `Content-Encoding: gzip`. Each record should have a
/// string `type`, and may have a `timestamp` (RFC 3339 or Unix seconds) and a numeric `value`;
/// records that do not are stored with their error when processed, without failing the job.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs",
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays return the same job; another body under the same key is 409")),
    request_body(content = Vec<Object>, description = "Records", content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted (or replayed)", body = Job),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid key", body = ErrorBody),
        (status = 403, description = "Role may not post", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another body", body = ErrorBody),
        (status = 413, description = "Too large or too many records", body = ErrorBody),
        (status = 415, description = "Unsupported Content-Type", body = ErrorBody),
        (status = 422, description = "Not an array of objects, or too deep", body = ErrorBody),
        (status = 429, description = "Rate limited or backlog full", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn create_job(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin, Role::Ingest])?;
    let key = idempotency_key(&headers)?;
    let format = BodyFormat::from_content_type(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    )?;
    let bytes = read_body(body, state.limits.max_body_bytes).await?;
    let limits = RecordLimits {
        max_records: state.limits.max_records,
        max_depth: state.limits.max_json_depth,
    };
    let records = parse_records(&bytes, format, limits)?;
    let request_hash: [u8; 32] = Sha256::digest(&bytes).into();
    drop(bytes);

    let mut conn = state.db.acquire().await?;
    if let Some(key) = &key
        && let Some(job) = replay(&mut conn, caller.user_id, key, &request_hash).await?
    {
        return Ok(accepted(job, true));
    }

    let backlog: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM ingestion_jobs \
         WHERE status IN ('queued', 'processing') LIMIT ?) AS backlog",
    )
    .bind(state.limits.max_backlog_jobs)
    .fetch_one(&mut *conn)
    .await?;
    if u64::try_from(backlog).unwrap_or(0) >= state.limits.max_backlog_jobs {
        return Err(ApiError::Backlog {
            retry_after_secs: 5,
        });
    }

    let record_count = u32::try_from(records.len())
        .map_err(|_| ApiError::Internal("record count overflow".into()))?;
    let raw: Vec<String> = records.iter().map(Value::to_string).collect();
    // A small job is processed at once, in the transaction that stores it (raw and processed
    // rows, status `succeeded`): no claim, no second read, one commit. A larger job, or one
    // whose processing fails here (e.g. a database error), is queued for the workers.
    let processed: Option<Vec<Result<String, String>>> =
        (records.len() <= state.process_on_accept_max).then(|| {
            records
                .into_iter()
                .map(|record| {
                    records::process_value(record)
                        .map(|data| data.to_string())
                        .map_err(crate::worker::truncate)
                })
                .collect()
        });
    let new_job = NewJob {
        user_id: caller.user_id,
        key: key.as_deref(),
        request_hash: &request_hash,
        max_attempts: state.max_attempts,
        raw: &raw,
    };
    let mut stored = insert_job(&mut conn, &new_job, processed.as_deref()).await;
    let mut processed_now = processed.is_some();
    if processed_now && matches!(&stored, Err(error) if !is_duplicate_key(error)) {
        if let Err(error) = &stored {
            tracing::warn!(%error, "processing on accept failed; the job is queued for the workers");
        }
        processed_now = false;
        stored = insert_job(&mut conn, &new_job, None).await;
    }
    let job_id = match stored {
        Ok(id) => id,
        Err(error) if is_duplicate_key(&error) => {
            // Another request under the same key won the race.
            let key = key.as_deref().unwrap_or_default();
            return match replay(&mut conn, caller.user_id, key, &request_hash).await? {
                Some(job) => Ok(accepted(job, true)),
                None => Err(ApiError::Database(error)),
            };
        }
        Err(error) => return Err(error.into()),
    };

    if let (true, Some(rows)) = (processed_now, &processed) {
        let ok = rows.iter().filter(|r| r.is_ok()).count() as u64;
        let metrics = &state.metrics;
        metrics
            .job_attempts
            .get_or_create(&OutcomeLabels {
                outcome: "succeeded",
            })
            .inc();
        metrics
            .records_processed
            .get_or_create(&OutcomeLabels { outcome: "ok" })
            .inc_by(ok);
        metrics
            .records_processed
            .get_or_create(&OutcomeLabels { outcome: "invalid" })
            .inc_by(rows.len() as u64 - ok);
    } else {
        state.work_available.notify_one();
    }
    state.metrics.jobs_created.inc();
    state
        .metrics
        .records_accepted
        .inc_by(u64::from(record_count));
    tracing::info!(job_id, records = record_count, "job accepted");
    let job = fetch_job(&mut conn, job_id)
        .await?
        .ok_or(ApiError::NotFound("job"))?;
    Ok(accepted(job, false))
}

/// A job to store.
struct NewJob<'a> {
    user_id: u64,
    key: Option<&'a str>,
    request_hash: &'a [u8; 32],
    max_attempts: u32,
    raw: &'a [String],
}

/// Stores a job and its raw records in one transaction: `queued`, or with `processed` (one
/// result per record) its processed rows too and `succeeded` (attempt 1). Rolled back on error.
async fn insert_job(
    conn: &mut MySqlConnection,
    job: &NewJob<'_>,
    processed: Option<&[Result<String, String>]>,
) -> Result<u64, sqlx::Error> {
    let mut tx = conn.begin().await?;
    match write_job(&mut tx, job, processed).await {
        Ok(id) => {
            tx.commit().await?;
            Ok(id)
        }
        Err(error) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(%rollback, "rollback failed");
            }
            Err(error)
        }
    }
}

async fn write_job(
    conn: &mut MySqlConnection,
    job: &NewJob<'_>,
    processed: Option<&[Result<String, String>]>,
) -> Result<u64, sqlx::Error> {
    let record_count = u32::try_from(job.raw.len()).unwrap_or(u32::MAX);
    let inserted = match processed {
        None => {
            sqlx::query(
                "INSERT INTO ingestion_jobs \
                 (user_id, status, idempotency_key, request_hash, record_count, max_attempts, next_attempt_at) \
                 VALUES (?, 'queued', ?, ?, ?, ?, NOW(6))",
            )
            .bind(job.user_id)
            .bind(job.key)
            .bind(&job.request_hash[..])
            .bind(record_count)
            .bind(job.max_attempts)
            .execute(&mut *conn)
            .await?
        }
        Some(rows) => {
            let ok = u32::try_from(rows.iter().filter(|r| r.is_ok()).count()).unwrap_or(u32::MAX);
            sqlx::query(
                "INSERT INTO ingestion_jobs \
                 (user_id, status, idempotency_key, request_hash, record_count, max_attempts, \
                  attempts, processed_count, invalid_count, next_attempt_at, finished_at) \
                 VALUES (?, 'succeeded', ?, ?, ?, ?, 1, ?, ?, NOW(6), NOW(6))",
            )
            .bind(job.user_id)
            .bind(job.key)
            .bind(&job.request_hash[..])
            .bind(record_count)
            .bind(job.max_attempts)
            .bind(ok)
            .bind(record_count - ok)
            .execute(&mut *conn)
            .await?
        }
    };
    let job_id = inserted.last_insert_id();
    for (chunk_number, chunk) in job.raw.chunks(RAW_INSERT_BATCH).enumerate() {
        let first = chunk_number * RAW_INSERT_BATCH;
        let mut insert =
            QueryBuilder::new("INSERT INTO raw_records (job_id, record_index, payload) ");
        insert.push_values(chunk.iter().enumerate(), |mut row, (offset, payload)| {
            row.push_bind(job_id)
                .push_bind(u32::try_from(first + offset).unwrap_or(u32::MAX))
                .push_bind(payload.as_str());
        });
        insert.build().execute(&mut *conn).await?;
    }
    let Some(rows) = processed else {
        return Ok(job_id);
    };
    for (chunk_number, chunk) in rows.chunks(RAW_INSERT_BATCH).enumerate() {
        let first = chunk_number * RAW_INSERT_BATCH;
        let mut insert = QueryBuilder::new(
            "INSERT INTO processed_data (job_id, record_index, status, data, error) ",
        );
        insert.push_values(chunk.iter().enumerate(), |mut row, (offset, result)| {
            row.push_bind(job_id)
                .push_bind(u32::try_from(first + offset).unwrap_or(u32::MAX));
            match result {
                Ok(data) => row
                    .push_bind("ok")
                    .push_bind(Some(data.as_str()))
                    .push_bind(None::<&str>),
                Err(error) => row
                    .push_bind("invalid")
                    .push_bind(None::<&str>)
                    .push_bind(Some(error.as_str())),
            };
        });
        insert.build().execute(&mut *conn).await?;
    }
    Ok(job_id)
}

fn parse_path<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(v)| v)
        .map_err(|e| ApiError::InvalidParameter(e.body_text()))
}

fn parse_query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(v)| v)
        .map_err(|e| ApiError::InvalidParameter(e.body_text()))
}

async fn visible_job(state: &AppState, caller: &Caller, id: u64) -> Result<Job, ApiError> {
    let mut conn = state.db.acquire().await?;
    match fetch_job(&mut conn, id).await? {
        Some(job) if caller.visible_user().is_none_or(|u| u == job.user_id) => Ok(job),
        _ => Err(ApiError::NotFound("job")),
    }
}

/// Read a job.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = u64, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Missing or invalid key", body = ErrorBody),
        (status = 404, description = "No such job of yours", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<Job>, ApiError> {
    let id = parse_path(id)?;
    Ok(Json(visible_job(&state, &caller, id).await?))
}

/// List jobs by ascending id, optionally by status (keyset pagination with `after`).
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs",
    params(ListJobs),
    responses(
        (status = 200, description = "A page of jobs", body = JobPage),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or invalid key", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_jobs(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListJobs>, QueryRejection>,
) -> Result<Json<JobPage>, ApiError> {
    let query = parse_query(query)?;
    let limit = page_limit(query.limit)?;
    if let Some(status) = &query.status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::InvalidParameter(format!(
            "status must be one of {}",
            STATUSES.join(", ")
        )));
    }
    let mut select = QueryBuilder::new(format!(
        "SELECT {JOB_COLUMNS} FROM ingestion_jobs WHERE id > "
    ));
    select.push_bind(query.after.unwrap_or(0));
    if let Some(user_id) = caller.visible_user() {
        select.push(" AND user_id = ").push_bind(user_id);
    }
    if let Some(status) = query.status {
        select.push(" AND status = ").push_bind(status);
    }
    select.push(" ORDER BY id LIMIT ").push_bind(limit);
    let mut conn = state.db.acquire().await?;
    let jobs: Vec<Job> = select.build_query_as().fetch_all(&mut *conn).await?;
    let next_after = (jobs.len() == limit as usize)
        .then(|| jobs.last().map(|j| j.id))
        .flatten();
    Ok(Json(JobPage { jobs, next_after }))
}

/// List a job's processed records by ascending index (keyset pagination with `after`).
#[utoipa::path(get, path = "/v1/jobs/{id}/records", tag = "jobs",
    params(("id" = u64, Path, description = "Job id"), ListRecords),
    responses(
        (status = 200, description = "A page of records", body = RecordPage),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or invalid key", body = ErrorBody),
        (status = 404, description = "No such job of yours", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_records(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<u64>, PathRejection>,
    query: Result<Query<ListRecords>, QueryRejection>,
) -> Result<Json<RecordPage>, ApiError> {
    let id = parse_path(id)?;
    let query = parse_query(query)?;
    let limit = page_limit(query.limit)?;
    let job = visible_job(&state, &caller, id).await?;
    let mut conn = state.db.acquire().await?;
    let mut select = QueryBuilder::new(
        "SELECT record_index, status, data, error FROM processed_data WHERE job_id = ",
    );
    select.push_bind(job.id);
    if let Some(after) = query.after {
        select.push(" AND record_index > ").push_bind(after);
    }
    select
        .push(" ORDER BY record_index LIMIT ")
        .push_bind(limit);
    let rows: Vec<ProcessedRow> = select.build_query_as().fetch_all(&mut *conn).await?;
    let records: Vec<ProcessedRecord> = rows
        .into_iter()
        .map(|row| ProcessedRecord {
            record_index: row.record_index,
            status: row.status,
            data: row.data.map(|d| d.0),
            error: row.error,
        })
        .collect();
    let next_after = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.record_index))
        .flatten();
    Ok(Json(RecordPage {
        records,
        next_after,
    }))
}
