//! The instance role's IAM policy documents, as comparable values: the trust policy (EC2 may
//! assume the role) and the inline policy allowing only what the app does — read its one
//! database secret, fetch its one artifact object, write its own logs.
//!
//! Documents are held as [`AttrValue`] maps (keys sorted, so two documents that differ only in
//! key order compare equal) and converted to JSON for IAM, and from what IAM returns (which is
//! URL-encoded JSON on the wire) back to maps.

use std::collections::BTreeMap;

use plinth_crds::ArtifactLocation;

use crate::engine::AttrValue;

/// The inline policy's name on the role.
pub const INLINE_POLICY_NAME: &str = "plinth-instance";
/// The `Sid` of the statement letting the app write its logs. Its resource names the platform,
/// which the spec does not know, so the driver adds it when writing (see
/// [`with_log_statement`]) and takes it out when reading, only if it is exactly as written.
pub const LOGS_SID: &str = "WriteOwnLogs";

const VERSION: &str = "2012-10-17";

fn map<const N: usize>(entries: [(&str, AttrValue); N]) -> AttrValue {
    AttrValue::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

/// EC2 may assume the role (the instances' identity), nothing else.
pub fn trust_policy() -> AttrValue {
    map([
        ("Version", AttrValue::str(VERSION)),
        (
            "Statement",
            AttrValue::List(vec![map([
                ("Effect", AttrValue::str("Allow")),
                (
                    "Principal",
                    map([("Service", AttrValue::str("ec2.amazonaws.com"))]),
                ),
                ("Action", AttrValue::str("sts:AssumeRole")),
            ])]),
        ),
    ])
}

/// The S3 object ARN of the artifact.
pub fn artifact_arn(artifact: &ArtifactLocation) -> String {
    format!("arn:aws:s3:::{}/{}", artifact.bucket, artifact.key)
}

/// The inline policy: `secret` (an ARN, or a reference to the secret component) may be read,
/// the artifact objects fetched (one per revision running: two during a rollout). The log
/// statement is added by the driver.
pub fn instance_policy(secret: AttrValue, artifacts: &[ArtifactLocation]) -> AttrValue {
    let objects: Vec<AttrValue> = artifacts
        .iter()
        .map(|a| AttrValue::str(artifact_arn(a)))
        .collect();
    let objects = match objects.as_slice() {
        [one] => one.clone(),
        _ => AttrValue::List(objects),
    };
    map([
        ("Version", AttrValue::str(VERSION)),
        (
            "Statement",
            AttrValue::List(vec![
                map([
                    ("Sid", AttrValue::str("ReadDatabaseSecret")),
                    ("Effect", AttrValue::str("Allow")),
                    ("Action", AttrValue::str("secretsmanager:GetSecretValue")),
                    ("Resource", secret),
                ]),
                map([
                    ("Sid", AttrValue::str("FetchArtifact")),
                    ("Effect", AttrValue::str("Allow")),
                    ("Action", AttrValue::str("s3:GetObject")),
                    ("Resource", objects),
                ]),
            ]),
        ),
    ])
}

/// The log group the app of `platform` (`<namespace>/<name>`) writes to.
pub fn log_group(platform: &str) -> String {
    format!("/plinth/{platform}")
}

/// The statement letting the instances write to their platform's log group in `region`.
pub fn log_statement(region: &str, platform: &str) -> AttrValue {
    map([
        ("Sid", AttrValue::str(LOGS_SID)),
        ("Effect", AttrValue::str("Allow")),
        (
            "Action",
            AttrValue::List(vec![
                AttrValue::str("logs:CreateLogStream"),
                AttrValue::str("logs:PutLogEvents"),
            ]),
        ),
        (
            "Resource",
            AttrValue::str(format!(
                "arn:aws:logs:{region}:*:log-group:{}:*",
                log_group(platform)
            )),
        ),
    ])
}

fn statements_mut(document: &mut AttrValue) -> Option<&mut Vec<AttrValue>> {
    match document {
        AttrValue::Map(entries) => match entries.get_mut("Statement") {
            Some(AttrValue::List(statements)) => Some(statements),
            _ => None,
        },
        _ => None,
    }
}

/// `document` with `statement` appended (what is written to IAM).
pub fn with_log_statement(mut document: AttrValue, statement: AttrValue) -> AttrValue {
    if let Some(statements) = statements_mut(&mut document) {
        statements.push(statement);
    }
    document
}

/// `document` as read from IAM without `statement`, when it holds exactly that statement (so it
/// compares with the desired document); a changed log statement is left in, so the difference
/// shows and the policy is written again.
pub fn without_log_statement(mut document: AttrValue, statement: &AttrValue) -> AttrValue {
    if let Some(statements) = statements_mut(&mut document) {
        statements.retain(|s| s != statement);
    }
    document
}

/// A JSON document as a comparable value (numbers that are not integers are kept as text).
pub fn from_json(value: &serde_json::Value) -> AttrValue {
    match value {
        serde_json::Value::Null => AttrValue::str("null"),
        serde_json::Value::Bool(b) => AttrValue::Bool(*b),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map_or_else(|| AttrValue::str(n.to_string()), AttrValue::Int),
        serde_json::Value::String(s) => AttrValue::str(s.as_str()),
        serde_json::Value::Array(items) => AttrValue::List(items.iter().map(from_json).collect()),
        serde_json::Value::Object(entries) => AttrValue::Map(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), from_json(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

/// A resolved document as JSON text for IAM (`None` if it still holds a reference).
pub fn to_json(value: &AttrValue) -> Option<String> {
    fn convert(value: &AttrValue) -> Option<serde_json::Value> {
        Some(match value {
            AttrValue::Bool(b) => serde_json::Value::Bool(*b),
            AttrValue::Int(i) => serde_json::Value::from(*i),
            AttrValue::Str(s) => serde_json::Value::String(s.clone()),
            AttrValue::List(items) => {
                serde_json::Value::Array(items.iter().map(convert).collect::<Option<_>>()?)
            }
            AttrValue::Set(items) => {
                serde_json::Value::Array(items.iter().map(convert).collect::<Option<_>>()?)
            }
            AttrValue::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| convert(v).map(|v| (k.clone(), v)))
                    .collect::<Option<_>>()?,
            ),
            AttrValue::Ref(_) | AttrValue::Output(..) => return None,
        })
    }
    convert(value).map(|v| v.to_string())
}

/// A policy document as IAM returns it (URL-encoded JSON; some emulators send plain JSON), as
/// a comparable value; `None` if it is neither.
pub fn parse_document(text: &str) -> Option<AttrValue> {
    let json = if text.trim_start().starts_with('{') {
        text.to_owned()
    } else {
        percent_decode(text)?
    };
    serde_json::from_str::<serde_json::Value>(&json)
        .ok()
        .map(|v| from_json(&v))
}

/// RFC 3986 percent-decoding (`+` is left as it is, as IAM encodes spaces as `%20`).
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact() -> ArtifactLocation {
        ArtifactLocation::parse("s3://plinth-artifacts/ingest/1.0.0/plinth-ingest")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_inline_policy_names_exactly_one_secret_and_one_object() {
        let secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-x-AbCdEf";
        let policy = instance_policy(AttrValue::str(secret), &[artifact()]);
        let json = to_json(&policy).unwrap_or_else(|| panic!("resolved"));
        let value: serde_json::Value =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        let statements = value["Statement"].as_array().cloned().unwrap_or_default();
        let pairs: Vec<(String, String)> = statements
            .iter()
            .map(|s| (s["Action"].to_string(), s["Resource"].to_string()))
            .collect();
        assert_eq!(
            pairs,
            [
                (
                    "\"secretsmanager:GetSecretValue\"".to_owned(),
                    format!("\"{secret}\"")
                ),
                (
                    "\"s3:GetObject\"".to_owned(),
                    "\"arn:aws:s3:::plinth-artifacts/ingest/1.0.0/plinth-ingest\"".to_owned()
                ),
            ]
        );
        assert!(!json.contains('*'), "no wildcard: {json}");
        // A reference cannot be written.
        assert_eq!(
            to_json(&instance_policy(
                AttrValue::reference("db-secret"),
                &[artifact()]
            )),
            None
        );
    }

    #[test]
    fn documents_read_back_from_iam_compare_equal_to_what_was_written() {
        let log = log_statement("eu-west-1", "team/ingest");
        let desired = instance_policy(AttrValue::str("arn:s"), &[artifact()]);
        let written = with_log_statement(desired.clone(), log.clone());
        let json = to_json(&written).unwrap_or_else(|| panic!("resolved"));
        // IAM answers URL-encoded JSON.
        let encoded: String = json
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let read = parse_document(&encoded).unwrap_or_else(|| panic!("parses"));
        assert_eq!(read, written);
        assert_eq!(without_log_statement(read.clone(), &log), desired);
        // A log statement someone widened stays in, so the policy differs and is rewritten.
        let widened = log_statement("eu-west-1", "*");
        let tampered = with_log_statement(desired.clone(), widened);
        assert_ne!(without_log_statement(tampered, &log), desired);
        assert_eq!(parse_document(&json), Some(written));
        assert_eq!(parse_document("%ZZ"), None);
        assert!(
            to_json(&trust_policy())
                .unwrap_or_default()
                .contains("ec2.amazonaws.com")
        );
    }
}
