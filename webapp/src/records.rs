//! Records: reading a request body (a JSON array or NDJSON) into records under the limits, and
//! the per-record validation and transformation the workers apply. Pure functions, unit-tested.
//!
//! A request is refused as a whole (4xx, nothing stored) when it is not well-formed, not a list
//! of JSON objects, too large, too deep or has too many records. A record that is a JSON object
//! but fails validation (see [`process`]) is stored with its error; it does not fail its job.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// How the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json`: one JSON array of records.
    JsonArray,
    /// `application/x-ndjson`: one record per line.
    Ndjson,
}

impl BodyFormat {
    /// The format named by a `Content-Type` header (JSON when absent).
    pub fn from_content_type(content_type: Option<&str>) -> Result<Self, ApiError> {
        let Some(value) = content_type else {
            return Ok(Self::JsonArray);
        };
        let essence = value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Ok(Self::JsonArray),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines" => Ok(Self::Ndjson),
            _ => Err(ApiError::UnsupportedMediaType),
        }
    }
}

/// Limits applied while reading a body.
#[derive(Debug, Clone, Copy)]
pub struct RecordLimits {
    /// Most records.
    pub max_records: usize,
    /// Deepest nesting inside a record (a flat object is depth 1).
    pub max_depth: usize,
}

/// Reads the records of a body; each is a JSON object, returned as compact JSON text.
pub fn parse_body(
    body: &[u8],
    format: BodyFormat,
    limits: RecordLimits,
) -> Result<Vec<String>, ApiError> {
    Ok(parse_records(body, format, limits)?
        .iter()
        .map(Value::to_string)
        .collect())
}

/// Reads the records of a body; each is a JSON object (checked against the limits).
pub fn parse_records(
    body: &[u8],
    format: BodyFormat,
    limits: RecordLimits,
) -> Result<Vec<Value>, ApiError> {
    let values: Vec<Value> = match format {
        BodyFormat::JsonArray => {
            let value: Value =
                serde_json::from_slice(body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
            match value {
                Value::Array(items) => items,
                other => {
                    return Err(ApiError::InvalidBody(format!(
                        "the body is a JSON {}; send an array of record objects",
                        type_name(&other)
                    )));
                }
            }
        }
        BodyFormat::Ndjson => {
            let mut items = Vec::new();
            for (number, line) in body.split(|b| *b == b'\n').enumerate() {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if items.len() >= limits.max_records {
                    return Err(ApiError::TooManyRecords {
                        count: items.len() + 1,
                        max: limits.max_records,
                    });
                }
                let value: Value = serde_json::from_slice(line)
                    .map_err(|e| ApiError::MalformedJson(format!("line {}: {e}", number + 1)))?;
                items.push(value);
            }
            items
        }
    };
    if values.is_empty() {
        return Err(ApiError::InvalidBody("the body holds no records".into()));
    }
    if values.len() > limits.max_records {
        return Err(ApiError::TooManyRecords {
            count: values.len(),
            max: limits.max_records,
        });
    }
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            if !value.is_object() {
                return Err(ApiError::InvalidBody(format!(
                    "record {index} is a JSON {}; each record must be an object",
                    type_name(&value)
                )));
            }
            let depth = depth(&value);
            if depth > limits.max_depth {
                return Err(ApiError::InvalidBody(format!(
                    "record {index} is nested {depth} levels deep; at most {} allowed",
                    limits.max_depth
                )));
            }
            Ok(value)
        })
        .collect()
}

/// Nesting depth of a JSON value: scalars 0, `{}` 1, `{"a": [1]}` 2. Iterative, so a deep
/// value cannot overflow the stack.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, level)) = stack.pop() {
        match value {
            Value::Array(items) => {
                deepest = deepest.max(level + 1);
                stack.extend(items.iter().map(|v| (v, level + 1)));
            }
            Value::Object(map) => {
                deepest = deepest.max(level + 1);
                stack.extend(map.values().map(|v| (v, level + 1)));
            }
            _ => {}
        }
    }
    deepest
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Longest `type` accepted.
const MAX_TYPE_LEN: usize = 128;

/// Validates and transforms one stored record.
///
/// A valid record is an object with a non-empty string `type`; an optional `timestamp`
/// (RFC 3339 string or Unix seconds) and an optional numeric `value`. The processed form is
/// `{"type": lower-cased type, "timestamp": RFC 3339 UTC or null, "value": number or null,
/// "attributes": every other field}`. The error says what to fix.
pub fn process(raw: &str) -> Result<Value, String> {
    let value: Value =
        serde_json::from_str(raw).map_err(|e| format!("record is not valid JSON: {e}"))?;
    process_value(value)
}

/// [`process`] for a record already parsed.
pub fn process_value(value: Value) -> Result<Value, String> {
    let Value::Object(mut fields) = value else {
        return Err(format!(
            "record is a JSON {}, expected an object",
            type_name(&value)
        ));
    };
    let kind = match fields.remove("type") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= MAX_TYPE_LEN => {
            s.trim().to_lowercase()
        }
        Some(Value::String(_)) => {
            return Err(format!("`type` must be 1 to {MAX_TYPE_LEN} characters"));
        }
        Some(other) => {
            return Err(format!(
                "`type` must be a string, not {}",
                type_name(&other)
            ));
        }
        None => return Err("`type` is missing".to_owned()),
    };
    let timestamp = match fields.remove("timestamp") {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(&s) {
            Ok(t) => Value::String(
                t.with_timezone(&Utc)
                    .to_rfc3339_opts(SecondsFormat::AutoSi, true),
            ),
            Err(e) => return Err(format!("`timestamp` is not RFC 3339: {e}")),
        },
        Some(Value::Number(n)) => match n
            .as_i64()
            .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
        {
            Some(t) => Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            None => return Err("`timestamp` as a number must be whole Unix seconds".to_owned()),
        },
        Some(other) => {
            return Err(format!(
                "`timestamp` must be a string or a number, not {}",
                type_name(&other)
            ));
        }
    };
    let value = match fields.remove("value") {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Number(n)) => Value::Number(n),
        Some(other) => {
            return Err(format!(
                "`value` must be a number, not {}",
                type_name(&other)
            ));
        }
    };
    let mut out = Map::new();
    out.insert("type".into(), Value::String(kind));
    out.insert("timestamp".into(), timestamp);
    out.insert("value".into(), value);
    out.insert("attributes".into(), Value::Object(fields));
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMITS: RecordLimits = RecordLimits {
        max_records: 3,
        max_depth: 3,
    };

    #[test]
    fn content_types() {
        assert_eq!(
            BodyFormat::from_content_type(None).ok(),
            Some(BodyFormat::JsonArray)
        );
        assert_eq!(
            BodyFormat::from_content_type(Some("application/json; charset=utf-8")).ok(),
            Some(BodyFormat::JsonArray)
        );
        assert_eq!(
            BodyFormat::from_content_type(Some("application/x-ndjson")).ok(),
            Some(BodyFormat::Ndjson)
        );
        assert!(BodyFormat::from_content_type(Some("text/csv")).is_err());
    }

    #[test]
    fn json_array_and_ndjson_read_the_same_records() {
        let array = parse_body(br#"[{"a":1},{"b":2}]"#, BodyFormat::JsonArray, LIMITS).unwrap();
        let lines = parse_body(b"{\"a\":1}\r\n\n{\"b\":2}\n", BodyFormat::Ndjson, LIMITS).unwrap();
        assert_eq!(array, lines);
        assert_eq!(
            array,
            vec![r#"{"a":1}"#.to_owned(), r#"{"b":2}"#.to_owned()]
        );
    }

    #[test]
    fn refusals() {
        let code = |body: &[u8], format| parse_body(body, format, LIMITS).unwrap_err().code();
        assert_eq!(code(b"[{", BodyFormat::JsonArray), "malformed_json");
        assert_eq!(
            code(b"{\"a\":1}\nnope", BodyFormat::Ndjson),
            "malformed_json"
        );
        assert_eq!(code(br#"{"a":1}"#, BodyFormat::JsonArray), "invalid_body");
        assert_eq!(code(b"[1]", BodyFormat::JsonArray), "invalid_body");
        assert_eq!(code(b"[]", BodyFormat::JsonArray), "invalid_body");
        assert_eq!(
            code(b"[{},{},{},{}]", BodyFormat::JsonArray),
            "too_many_records"
        );
        assert_eq!(
            code(b"{}\n{}\n{}\n{}", BodyFormat::Ndjson),
            "too_many_records"
        );
        assert_eq!(
            code(br#"[{"a":{"b":{"c":{}}}}]"#, BodyFormat::JsonArray),
            "invalid_body"
        );
    }

    #[test]
    fn depth_counts_containers() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!({"a": [1, {"b": []}]})), 4);
    }

    #[test]
    fn process_transforms_valid_records() {
        let out = process(
            r#"{"type":" Click ","timestamp":"2026-01-02T03:04:05+01:00","value":2.5,"user":"u1"}"#,
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"type": "click", "timestamp": "2026-01-02T02:04:05Z", "value": 2.5, "attributes": {"user": "u1"}})
        );
        let out = process(r#"{"type":"view","timestamp":0}"#).unwrap();
        assert_eq!(out["timestamp"], json!("1970-01-01T00:00:00Z"));
    }

    #[test]
    fn process_explains_bad_records() {
        assert!(
            process(r#"{"value":1}"#)
                .unwrap_err()
                .contains("`type` is missing")
        );
        assert!(
            process(r#"{"type":3}"#)
                .unwrap_err()
                .contains("must be a string")
        );
        assert!(
            process(r#"{"type":"a","value":"x"}"#)
                .unwrap_err()
                .contains("`value`")
        );
        assert!(
            process(r#"{"type":"a","timestamp":"yesterday"}"#)
                .unwrap_err()
                .contains("RFC 3339")
        );
    }
}
