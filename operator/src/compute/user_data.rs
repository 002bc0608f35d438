//! The instances' user data: a `#cloud-config` document that installs the app's systemd unit,
//! fetches the release binary from S3 with the instance role, and starts the unit — rendered
//! from the unit's environment (pure), and read back from a launch template to compare.
//!
//! Everything the app needs to find its database is in the unit's `Environment=` lines: the
//! secret's ARN, never a credential (the app reads the secret with the instance role at start
//! and again when a login is refused). The environment names are `plinth-ingest`'s own
//! (`webapp/src/config.rs`).

use std::collections::BTreeMap;

/// Where the binary is installed on the instance.
pub const BINARY_PATH: &str = "/opt/plinth/bin/plinth-ingest";
/// The systemd unit's name.
pub const UNIT_NAME: &str = "plinth-ingest.service";
/// Where the unit file is written.
pub const UNIT_PATH: &str = "/etc/systemd/system/plinth-ingest.service";

/// `plinth-ingest`'s environment variables the unit sets.
pub mod env {
    /// The region the app's AWS clients use (Secrets Manager).
    pub const REGION: &str = "AWS_REGION";
    /// The app's version: the app reports it in `/health` (which version answered).
    pub const VERSION: &str = "PLINTH_VERSION";
    /// The artifact the binary was fetched from (the app does not read it; `runcmd` does).
    pub const ARTIFACT: &str = "PLINTH_ARTIFACT";
    /// Address to listen on.
    pub const LISTEN_ADDR: &str = "PLINTH_LISTEN_ADDR";
    /// Port to listen on.
    pub const PORT: &str = "PLINTH_PORT";
    /// The database secret's ARN.
    pub const DB_SECRET_ARN: &str = "PLINTH_DB_SECRET_ARN";
    /// The cluster's writer endpoint.
    pub const DB_HOST: &str = "PLINTH_DB_HOST";
    /// The database port.
    pub const DB_PORT: &str = "PLINTH_DB_PORT";
    /// The database name.
    pub const DB_NAME: &str = "PLINTH_DB_NAME";
    /// TLS to the database.
    pub const DB_SSL_MODE: &str = "PLINTH_DB_SSL_MODE";
    /// Log format (JSON lines to the journal).
    pub const LOG_FORMAT: &str = "PLINTH_LOG_FORMAT";
}

/// Why user data cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserDataError {
    /// A value holds a character that would need quoting in a unit file or YAML.
    #[error("{name}={value:?} has a character that cannot go into a systemd Environment= line")]
    UnsafeValue {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
    },
    /// A variable the document needs is missing.
    #[error("the unit's environment has no {0}")]
    Missing(&'static str),
}

/// Values are ARNs (an RDS-managed secret's name is `rds!cluster-…`), host names, S3 URLs,
/// versions and numbers: a narrow character set keeps them free of YAML, shell and systemd
/// quoting rules (`%` is a systemd specifier, `"` and `\` quote, whitespace splits).
fn is_safe(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":/._@+=,-!".contains(c))
}

/// The `#cloud-config` document for a unit with `environment` (variable → value, every value
/// of the narrow character set above). [`env::REGION`] and [`env::ARTIFACT`] are required: the
/// binary is fetched from the artifact with the instance role, in that region.
pub fn render(environment: &BTreeMap<String, String>) -> Result<String, UserDataError> {
    for (name, value) in environment {
        if !is_safe(name) || !is_safe(value) {
            return Err(UserDataError::UnsafeValue {
                name: name.clone(),
                value: value.clone(),
            });
        }
    }
    let region = environment
        .get(env::REGION)
        .ok_or(UserDataError::Missing(env::REGION))?;
    let artifact = environment
        .get(env::ARTIFACT)
        .ok_or(UserDataError::Missing(env::ARTIFACT))?;
    let version = environment.get(env::VERSION).map_or("", String::as_str);

    let mut unit = String::new();
    unit.push_str("[Unit]\n");
    unit.push_str(&format!("Description=Plinth ingestion service {version}\n"));
    unit.push_str("Wants=network-online.target\nAfter=network-online.target\n\n");
    unit.push_str("[Service]\nType=exec\nDynamicUser=yes\n");
    for (name, value) in environment {
        unit.push_str(&format!("Environment=\"{name}={value}\"\n"));
    }
    unit.push_str(&format!("ExecStart={BINARY_PATH} serve\n"));
    // The app drains for PLINTH_SHUTDOWN_GRACE_SECS (25 s by default) on SIGTERM.
    unit.push_str("KillSignal=SIGTERM\nTimeoutStopSec=35\nRestart=always\nRestartSec=5\n");
    unit.push_str("NoNewPrivileges=yes\nProtectSystem=strict\nProtectHome=yes\nPrivateTmp=yes\n\n");
    unit.push_str("[Install]\nWantedBy=multi-user.target\n");

    let mut doc = String::from("#cloud-config\n");
    doc.push_str("write_files:\n");
    doc.push_str(&format!("  - path: {UNIT_PATH}\n"));
    doc.push_str("    owner: root:root\n    permissions: '0644'\n    content: |\n");
    for line in unit.lines() {
        if line.is_empty() {
            doc.push('\n');
        } else {
            doc.push_str(&format!("      {line}\n"));
        }
    }
    let dir = BINARY_PATH.rsplit_once('/').map_or("/", |(dir, _)| dir);
    doc.push_str("runcmd:\n");
    doc.push_str(&format!("  - [mkdir, -p, \"{dir}\"]\n"));
    // AWS CLI v2 ships with Amazon Linux 2023; it takes the instance role from IMDSv2.
    doc.push_str(&format!(
        "  - [aws, s3, cp, --only-show-errors, --region, \"{region}\", \"{artifact}\", \"{BINARY_PATH}\"]\n"
    ));
    doc.push_str(&format!("  - [chmod, \"0755\", \"{BINARY_PATH}\"]\n"));
    doc.push_str("  - [systemctl, daemon-reload]\n");
    doc.push_str(&format!("  - [systemctl, enable, --now, {UNIT_NAME}]\n"));
    Ok(doc)
}

/// The unit as rendered into user data: its environment and its start command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unit {
    /// `Environment=` assignments, by variable.
    pub environment: BTreeMap<String, String>,
    /// `ExecStart=`, split on whitespace.
    pub exec_start: Vec<String>,
}

/// The app's unit inside a `#cloud-config` document, or `None` when the document is not one
/// Plinth rendered (no such file, not YAML, not cloud-config).
pub fn parse(document: &str) -> Option<Unit> {
    if !document.starts_with("#cloud-config") {
        return None;
    }
    let yaml: serde_norway::Value = serde_norway::from_str(document).ok()?;
    let files = yaml.get("write_files")?.as_sequence()?;
    let content = files
        .iter()
        .find(|f| f.get("path").and_then(|p| p.as_str()) == Some(UNIT_PATH))?
        .get("content")?
        .as_str()?;
    Some(parse_unit(content))
}

/// The `Environment=` and `ExecStart=` lines of a unit file.
pub fn parse_unit(content: &str) -> Unit {
    let mut unit = Unit::default();
    for line in content.lines().map(str::trim) {
        if let Some(assignment) = line.strip_prefix("Environment=") {
            let assignment = assignment.trim_matches('"');
            if let Some((name, value)) = assignment.split_once('=') {
                unit.environment.insert(name.to_owned(), value.to_owned());
            }
        } else if let Some(command) = line.strip_prefix("ExecStart=") {
            unit.exec_start = command.split_whitespace().map(str::to_owned).collect();
        }
    }
    unit
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (what `UserData` carries).
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let index = ((n >> (18 - 6 * i)) & 0x3f) as usize;
                out.push(char::from(ALPHABET[index]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional, whitespace ignored); `None` on other characters.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            break;
        }
        let value = ALPHABET.iter().position(|a| *a == c)?;
        buffer = (buffer << 6) | u32::try_from(value).ok()?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environment() -> BTreeMap<String, String> {
        [
            (env::REGION, "eu-west-1"),
            (env::VERSION, "1.2.0-rc.1"),
            (
                env::ARTIFACT,
                "s3://plinth-artifacts/ingest/1.2.0/plinth-ingest",
            ),
            (env::LISTEN_ADDR, "0.0.0.0"),
            (env::PORT, "8080"),
            (
                env::DB_SECRET_ARN,
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-abc-AbCdEf",
            ),
            (
                env::DB_HOST,
                "plinth.cluster-abc.eu-west-1.rds.amazonaws.com",
            ),
            (env::DB_PORT, "3306"),
            (env::DB_NAME, "plinth"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn renders_cloud_config_that_reads_back_to_the_same_unit() {
        let env = environment();
        let doc = render(&env).unwrap_or_else(|e| panic!("{e}"));
        assert!(doc.starts_with("#cloud-config\n"));
        let yaml: serde_norway::Value =
            serde_norway::from_str(&doc).unwrap_or_else(|e| panic!("{e}\n{doc}"));
        let runcmd = yaml
            .get("runcmd")
            .and_then(|r| r.as_sequence())
            .unwrap_or_else(|| panic!("no runcmd in\n{doc}"));
        let fetch: Vec<&str> = runcmd[1]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(
            fetch,
            [
                "aws",
                "s3",
                "cp",
                "--only-show-errors",
                "--region",
                "eu-west-1",
                "s3://plinth-artifacts/ingest/1.2.0/plinth-ingest",
                BINARY_PATH
            ]
        );
        let unit = parse(&doc).unwrap_or_else(|| panic!("not read back:\n{doc}"));
        assert_eq!(unit.environment, env);
        assert_eq!(unit.exec_start, [BINARY_PATH, "serve"]);
        // No credential: the secret is named by ARN only.
        assert!(!doc.to_lowercase().contains("password"), "{doc}");
        assert!(!doc.contains("DATABASE_URL"), "{doc}");
    }

    #[test]
    fn refuses_values_that_would_need_quoting_and_missing_essentials() {
        for bad in ["a b", "a\"b", "a%b", "a\nb", "a\\b", ""] {
            let mut env = environment();
            env.insert(env::DB_HOST.to_owned(), bad.to_owned());
            assert!(
                matches!(render(&env), Err(UserDataError::UnsafeValue { .. })),
                "{bad:?}"
            );
        }
        let mut env = environment();
        env.remove(env::ARTIFACT);
        assert_eq!(render(&env), Err(UserDataError::Missing(env::ARTIFACT)));
        assert_eq!(parse("#!/bin/sh\necho hi\n"), None);
    }

    #[test]
    fn base64_round_trips_and_matches_the_standard_alphabet() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"#cloud-config\n"), "I2Nsb3VkLWNvbmZpZwo=");
        for text in [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "#cloud-config\nwrite_files: []\n",
        ] {
            assert_eq!(
                base64_decode(&base64_encode(text.as_bytes())).as_deref(),
                Some(text.as_bytes())
            );
        }
        assert_eq!(base64_decode("Zm9v!"), None);
    }
}
