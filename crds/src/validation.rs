//! Client-side validation of a `DataPlatform`, for when no API server is at hand (`plinth plan`
//! on a spec file). It checks the same generated schema the API server enforces — the OpenAPI
//! bounds (lengths, item counts, ranges, enums, `multipleOf`) and the CEL rules, the latter
//! evaluated by `kube-cel` — and then what CEL cannot express (S3 bucket naming rules).

use std::fmt;

use serde_json::Value;

use crate::{ArtifactLocation, DataPlatform};

/// One reason a spec is refused: which field and what is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, for example `spec.compute.minSize`.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Every reason a spec is refused (never empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// The individual errors.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid DataPlatform: ")?;
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

impl DataPlatform {
    /// Validates a new DataPlatform as the API server would at create time, plus the checks CEL
    /// cannot do. Defaults are applied first, as admission does.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        validate_values(self, None)
    }

    /// Validates an update from `old`, including the immutable fields (`spec.region`,
    /// `spec.network.cidr`, `spec.network.availabilityZones`).
    pub fn validate_update(&self, old: &DataPlatform) -> Result<(), ValidationErrors> {
        validate_values(self, Some(old))
    }
}

fn validate_values(dp: &DataPlatform, old: Option<&DataPlatform>) -> Result<(), ValidationErrors> {
    let mut errors = Vec::new();
    let schema = match crd_schema() {
        Ok(s) => s,
        Err(message) => {
            return Err(ValidationErrors(vec![FieldError {
                field: String::new(),
                message,
            }]));
        }
    };
    let to_value = |d: &DataPlatform| {
        serde_json::to_value(d).map_err(|e| FieldError {
            field: String::new(),
            message: format!("cannot serialize the DataPlatform: {e}"),
        })
    };
    let value = match to_value(dp) {
        Ok(v) => v,
        Err(e) => return Err(ValidationErrors(vec![e])),
    };
    let old_value = match old.map(to_value).transpose() {
        Ok(v) => v,
        Err(e) => return Err(ValidationErrors(vec![e])),
    };

    check_schema(&schema, &value, "", &mut errors);
    if let Err(cel_errors) =
        kube::core::cel::Validator::new().validate(&schema, &value, old_value.as_ref())
    {
        for e in cel_errors.iter() {
            errors.push(FieldError {
                field: e.field_path.trim_start_matches('.').to_string(),
                message: e.message.clone(),
            });
        }
    }
    if let Err(e) = ArtifactLocation::parse(&dp.spec.app.artifact) {
        errors.push(FieldError {
            field: "spec.app.artifact".to_string(),
            message: e.to_string(),
        });
    }
    // The CEL rules report with the field named in their message; drop exact duplicates that
    // a schema bound and a rule may both produce.
    errors.dedup();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errors))
    }
}

/// The `openAPIV3Schema` of the generated CRD, as JSON.
fn crd_schema() -> Result<Value, String> {
    let crd = crate::crd();
    let schema = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .ok_or("the generated CRD has no openAPIV3Schema")?;
    serde_json::to_value(schema).map_err(|e| format!("cannot serialize the CRD schema: {e}"))
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// Checks the OpenAPI bounds the API server enforces before CEL: required properties, string
/// lengths, item and property counts, numeric ranges, `multipleOf` and enums.
fn check_schema(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let mut push = |message: String| {
        errors.push(FieldError {
            field: path.to_string(),
            message,
        })
    };
    let num = |key: &str| schema.get(key).and_then(Value::as_f64);
    let count = |key: &str| schema.get(key).and_then(Value::as_u64);
    match value {
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = count("maxLength").filter(|m| len > *m) {
                push(format!("must be at most {max} characters long"));
            }
            if let Some(min) = count("minLength").filter(|m| len < *m) {
                push(format!("must be at least {min} characters long"));
            }
            if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
                && !allowed.contains(value)
            {
                let names: Vec<String> = allowed.iter().map(Value::to_string).collect();
                push(format!(
                    "unsupported value {value}: supported values: {}",
                    names.join(", ")
                ));
            }
        }
        Value::Number(n) => {
            if let Some(v) = n.as_f64() {
                if let Some(max) = num("maximum").filter(|m| v > *m) {
                    push(format!("must be less than or equal to {max} (got {n})"));
                }
                if let Some(min) = num("minimum").filter(|m| v < *m) {
                    push(format!("must be greater than or equal to {min} (got {n})"));
                }
                if let Some(step) =
                    num("multipleOf").filter(|s| *s > 0.0 && (v / *s).fract() != 0.0)
                {
                    push(format!("must be a multiple of {step} (got {n})"));
                }
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(max) = count("maxItems").filter(|m| len > *m) {
                push(format!("must have at most {max} items"));
            }
            if let Some(min) = count("minItems").filter(|m| len < *m) {
                push(format!("must have at least {min} items"));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check_schema(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        Value::Object(map) => {
            let len = map.len() as u64;
            if let Some(max) = count("maxProperties").filter(|m| len > *m) {
                push(format!("must have at most {max} entries"));
            }
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(name) {
                        errors.push(FieldError {
                            field: join(path, name),
                            message: "Required value".to_string(),
                        });
                    }
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (name, child) in map {
                let child_schema = properties.and_then(|p| p.get(name)).or(additional);
                if let Some(child_schema) = child_schema {
                    check_schema(child_schema, child, &join(path, name), errors);
                }
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}
