//! Database credentials from AWS Secrets Manager: the RDS-managed secret's JSON
//! (`{"username": "...", "password": "..."}`), read at start and again when a login is refused.

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};
use secrecy::SecretString;
use serde::Deserialize;

/// A username and password read from the secret.
#[derive(Clone)]
pub struct Credentials {
    /// Database user.
    pub username: String,
    /// Its password; never printed.
    pub password: SecretString,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

/// Why the secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Secrets Manager refused or failed the call (AWS's code and message kept).
    #[error("reading secret {arn}: {code}: {message}")]
    Aws {
        /// The secret.
        arn: String,
        /// AWS error code, e.g. `ResourceNotFoundException`.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// The secret has no string value or is not the expected JSON.
    #[error("secret {arn} is not JSON with `username` and `password`: {reason}")]
    Format {
        /// The secret.
        arn: String,
        /// What is wrong (never the value).
        reason: String,
    },
}

#[derive(Deserialize)]
struct SecretJson {
    username: String,
    password: String,
}

/// Reads one secret.
#[derive(Debug, Clone)]
pub struct SecretSource {
    client: aws_sdk_secretsmanager::Client,
    arn: String,
}

impl SecretSource {
    /// A source for `arn`, with AWS configuration from the default chain (region, credentials,
    /// `AWS_ENDPOINT_URL`).
    pub async fn from_env(arn: String) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3))
            .load()
            .await;
        Self {
            client: aws_sdk_secretsmanager::Client::new(&config),
            arn,
        }
    }

    /// The secret's ARN.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// Reads the version at `stage` (`AWSCURRENT` when `None`).
    pub async fn read(&self, stage: Option<&str>) -> Result<Credentials, SecretError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.arn)
            .set_version_stage(stage.map(str::to_owned))
            .send()
            .await
            .map_err(|e| SecretError::Aws {
                arn: self.arn.clone(),
                code: e.code().unwrap_or("unknown").to_owned(),
                message: e
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| DisplayErrorContext(&e).to_string()),
            })?;
        let text = output.secret_string().ok_or_else(|| SecretError::Format {
            arn: self.arn.clone(),
            reason: "no SecretString".to_owned(),
        })?;
        let parsed: SecretJson = serde_json::from_str(text).map_err(|e| SecretError::Format {
            arn: self.arn.clone(),
            // serde's message names the missing field or position, never the value.
            reason: format!(
                "line {} column {}: {}",
                e.line(),
                e.column(),
                e.classify_str()
            ),
        })?;
        Ok(Credentials {
            username: parsed.username,
            password: SecretString::from(parsed.password),
        })
    }
}

trait ClassifyStr {
    fn classify_str(&self) -> &'static str;
}

impl ClassifyStr for serde_json::Error {
    fn classify_str(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "missing or mistyped field",
            serde_json::error::Category::Eof => "unexpected end",
        }
    }
}
