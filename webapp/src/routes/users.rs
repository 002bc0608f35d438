//! Users and API keys (admin role): create a user, create a key for a user (the key is in the
//! response once and never again), revoke a key.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, Role, generate_key};
use crate::error::{ApiError, ErrorBody, is_duplicate_key};
use crate::state::AppState;

/// Longest user name.
const MAX_NAME: usize = 190;

/// Body of `POST /v1/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Unique name, 1 to 190 characters (not only spaces).
    #[schema(min_length = 1, max_length = 190, pattern = r"\S")]
    pub name: String,
}

/// A user.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct User {
    /// User id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// Body of `POST /v1/users/{id}/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// Role of the key.
    pub role: Role,
}

/// A key just created: `key` is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// Key id (for revocation).
    pub id: u64,
    /// Owner.
    pub user_id: u64,
    /// Role.
    pub role: Role,
    /// The key: send as `Authorization: Bearer <key>`. Not retrievable later.
    pub key: String,
    /// First characters of the key, to tell keys apart.
    pub prefix: String,
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user))
        .routes(routes!(create_key))
        .routes(routes!(revoke_key))
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    match body {
        Ok(Json(value)) => Ok(value),
        Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::MalformedJson(e.body_text())),
        Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(ApiError::PayloadTooLarge(2 * 1024 * 1024))
        }
        Err(e) => Err(ApiError::InvalidBody(e.body_text())),
    }
}

fn path<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(v)| v)
        .map_err(|e| ApiError::InvalidParameter(e.body_text()))
}

/// Create a user (admin).
#[utoipa::path(post, path = "/v1/users", tag = "users",
    request_body = NewUser,
    responses(
        (status = 201, description = "Created", body = User),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    caller.require(&[Role::Admin])?;
    let body = json_body(body)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(ApiError::InvalidBody(format!(
            "name must be 1 to {MAX_NAME} characters"
        )));
    }
    let mut conn = state.db.acquire().await?;
    let id = match sqlx::query("INSERT INTO users (name) VALUES (?)")
        .bind(name)
        .execute(&mut *conn)
        .await
    {
        Ok(result) => result.last_insert_id(),
        Err(e) if is_duplicate_key(&e) => {
            return Err(ApiError::Conflict(format!("a user named {name:?} exists")));
        }
        Err(e) => return Err(e.into()),
    };
    let user: User = sqlx::query_as("SELECT id, name, created_at FROM users WHERE id = ?")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    tracing::info!(user_id = id, "user created");
    Ok((StatusCode::CREATED, Json(user)))
}

/// Create an API key for a user (admin). The key is in this response only.
#[utoipa::path(post, path = "/v1/users/{id}/keys", tag = "users",
    params(("id" = u64, Path, description = "User id")),
    request_body = NewApiKey,
    responses(
        (status = 201, description = "Created; the key is shown once", body = CreatedApiKey),
        (status = 401, description = "Missing or invalid key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    user_id: Result<Path<u64>, PathRejection>,
    body: Result<Json<NewApiKey>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    caller.require(&[Role::Admin])?;
    let user_id = path(user_id)?;
    let body = json_body(body)?;
    let mut conn = state.db.acquire().await?;
    let exists: Option<u64> = sqlx::query_scalar("SELECT id FROM users WHERE id = ?")
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
        return Err(ApiError::NotFound("user"));
    }
    let new = generate_key();
    let id = sqlx::query(
        "INSERT INTO api_keys (user_id, key_hash, key_prefix, role) VALUES (?, ?, ?, ?)",
    )
    .bind(user_id)
    .bind(&new.hash[..])
    .bind(&new.prefix)
    .bind(body.role.as_str())
    .execute(&mut *conn)
    .await?
    .last_insert_id();
    tracing::info!(
        user_id,
        key_id = id,
        role = body.role.as_str(),
        "API key created"
    );
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            id,
            user_id,
            role: body.role,
            key: new.key,
            prefix: new.prefix,
        }),
    ))
}

/// Revoke an API key (admin). Revoking a revoked key is a no-op.
#[utoipa::path(delete, path = "/v1/users/{id}/keys/{key_id}", tag = "users",
    params(("id" = u64, Path, description = "User id"), ("key_id" = u64, Path, description = "Key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Missing or invalid key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such key of this user", body = ErrorBody),
        (status = 409, description = "A key cannot revoke itself", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    ids: Result<Path<(u64, u64)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Admin])?;
    let (user_id, key_id) = path(ids)?;
    if key_id == caller.key_id {
        // Never lock the last admin out by accident: revoke it with another admin key.
        return Err(ApiError::Conflict(
            "this request's own key cannot revoke itself; use another admin key".into(),
        ));
    }
    let mut conn = state.db.acquire().await?;
    let found = sqlx::query(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, NOW(6)) WHERE id = ? AND user_id = ?",
    )
    .bind(key_id)
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    if found.rows_affected() == 0 {
        return Err(ApiError::NotFound("API key"));
    }
    tracing::info!(user_id, key_id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
