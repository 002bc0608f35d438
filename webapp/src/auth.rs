//! API keys: generation (256 bits of randomness, shown once), storage as SHA-256 hashes, the
//! [`Caller`] extractor that authenticates a request and applies the per-key rate limit, and
//! roles (admin / ingest / read).

use std::num::NonZeroU32;
use std::str::FromStr;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including users and keys, and every user's jobs.
    Admin,
    /// Post jobs and read its user's jobs.
    Ingest,
    /// Read its user's jobs.
    Read,
}

impl Role {
    /// The role as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Ingest => "ingest",
            Self::Read => "read",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Self::Admin),
            "ingest" => Ok(Self::Ingest),
            "read" => Ok(Self::Read),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

/// Prefix of every generated key, so a leaked key is recognisable in a scan.
pub const KEY_PREFIX: &str = "plk_";

/// A new key: the text (give it to the user once) and what is stored.
pub struct NewKey {
    /// `plk_` and 64 hex digits (256 random bits).
    pub key: String,
    /// SHA-256 of `key`.
    pub hash: [u8; 32],
    /// The first characters, stored to tell keys apart.
    pub prefix: String,
}

/// Generates a key.
pub fn generate_key() -> NewKey {
    let mut bytes = [0u8; 32];
    // ThreadRng: a CSPRNG (ChaCha) seeded from the operating system.
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("{KEY_PREFIX}{}", hex::encode(bytes));
    NewKey {
        hash: hash_key(&key),
        prefix: key_prefix(&key),
        key,
    }
}

/// SHA-256 of a key. A plain hash suffices: the key has 256 bits of entropy.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The first 12 characters of a key.
pub fn key_prefix(key: &str) -> String {
    key.chars().take(12).collect()
}

/// Keyed rate limiter: one bucket per API key id.
pub type KeyRateLimiter = DefaultKeyedRateLimiter<u64>;

/// A limiter allowing `per_second` steady and `burst` at once per key.
pub fn rate_limiter(per_second: u32, burst: u32) -> KeyRateLimiter {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// The key used.
    pub key_id: u64,
    /// Its user.
    pub user_id: u64,
    /// Its role.
    pub role: Role,
}

impl Caller {
    /// Refuses unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(self.role.as_str()))
        }
    }

    /// The user whose jobs this caller may see (`None`: all, for admins).
    pub fn visible_user(&self) -> Option<u64> {
        (self.role != Role::Admin).then_some(self.user_id)
    }
}

fn presented_key(parts: &Parts) -> Option<&str> {
    if let Some(value) = parts.headers.get(AUTHORIZATION)
        && let Ok(text) = value.to_str()
    {
        let mut words = text.splitn(2, ' ');
        if let (Some(scheme), Some(token)) = (words.next(), words.next())
            && scheme.eq_ignore_ascii_case("bearer")
        {
            return Some(token.trim());
        }
        return None;
    }
    parts
        .headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = presented_key(parts).ok_or(ApiError::MissingKey)?;
        if key.is_empty() {
            return Err(ApiError::MissingKey);
        }
        let hash = hash_key(key);
        let mut conn = state.db.acquire().await?;
        let row: Option<(u64, u64, String)> = sqlx::query_as(
            "SELECT id, user_id, role FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
        )
        .bind(&hash[..])
        .fetch_optional(&mut *conn)
        .await?;
        drop(conn);
        let (key_id, user_id, role) = row.ok_or(ApiError::InvalidKey)?;
        let role = Role::from_str(&role).map_err(ApiError::Internal)?;
        if let Err(not_until) = state.rate_limiter.check_key(&key_id) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(ApiError::RateLimited {
                retry_after_secs: wait.as_secs() + 1,
            });
        }
        Ok(Self {
            key_id,
            user_id,
            role,
        })
    }
}

/// Makes `key` an admin key of user `name` unless a key with its hash exists (start-up
/// bootstrap and the `create-admin` command). Returns true when it created the key.
pub async fn ensure_admin_key(
    conn: &mut sqlx::MySqlConnection,
    name: &str,
    key: &str,
) -> Result<bool, sqlx::Error> {
    let hash = hash_key(key);
    let exists: Option<u64> = sqlx::query_scalar("SELECT id FROM api_keys WHERE key_hash = ?")
        .bind(&hash[..])
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_some() {
        return Ok(false);
    }
    sqlx::query("INSERT INTO users (name) VALUES (?) ON DUPLICATE KEY UPDATE name = name")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    let user_id: u64 = sqlx::query_scalar("SELECT id FROM users WHERE name = ?")
        .bind(name)
        .fetch_one(&mut *conn)
        .await?;
    let inserted = sqlx::query(
        "INSERT IGNORE INTO api_keys (user_id, key_hash, key_prefix, role) VALUES (?, ?, ?, 'admin')",
    )
    .bind(user_id)
    .bind(&hash[..])
    .bind(key_prefix(key))
    .execute(&mut *conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_hex_and_hashed() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a.key, b.key);
        assert_eq!(a.key.len(), KEY_PREFIX.len() + 64);
        assert_eq!(a.hash, hash_key(&a.key));
        assert!(a.key.starts_with(&a.prefix));
    }

    #[test]
    fn roles_round_trip() {
        for role in [Role::Admin, Role::Ingest, Role::Read] {
            assert_eq!(Role::from_str(role.as_str()), Ok(role));
        }
        assert!(Role::from_str("root").is_err());
    }
}
