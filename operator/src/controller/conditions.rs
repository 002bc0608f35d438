//! Status conditions with kstatus meaning: merging a pass's verdicts into the conditions already
//! on the object so `lastTransitionTime` moves only when a condition's status really changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// One condition as a reconcile pass judges it, before it is merged into the object's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Condition type, e.g. `Ready` or `NetworkReady`.
    pub type_: String,
    /// Whether the condition holds.
    pub status: bool,
    /// A CamelCase reason a tool can match on.
    pub reason: String,
    /// A sentence a person reads; never a secret value.
    pub message: String,
}

impl Verdict {
    /// A verdict with the given type, status, reason and message.
    pub fn new(
        type_: impl Into<String>,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

fn status_word(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// Merges `verdicts` into `current`: a condition keeps its `lastTransitionTime` while its status
/// stays the same (reason and message may change), gets `now` when the status flips or the
/// condition is new. Conditions not judged in this pass are kept as they were, so a component
/// that was not evaluated does not lose its history. The result is sorted by type so repeated
/// passes write identical status and server-side apply sees no change.
pub fn merge(
    current: &[Condition],
    verdicts: &[Verdict],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut merged: Vec<Condition> = current
        .iter()
        .filter(|c| !verdicts.iter().any(|v| v.type_ == c.type_))
        .cloned()
        .collect();
    for verdict in verdicts {
        let status = status_word(verdict.status);
        let previous = current.iter().find(|c| c.type_ == verdict.type_);
        let last_transition_time = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Time(now),
        };
        merged.push(Condition {
            type_: verdict.type_.clone(),
            status: status.to_string(),
            reason: verdict.reason.clone(),
            message: verdict.message.clone(),
            observed_generation: generation,
            last_transition_time,
        });
    }
    merged.sort_by(|a, b| a.type_.cmp(&b.type_));
    merged
}

/// The status of condition `type_` in `conditions`, if present.
pub fn is_true(conditions: &[Condition], type_: &str) -> Option<bool> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn new_condition_gets_now_as_transition_time() {
        let merged = merge(
            &[],
            &[Verdict::new("Ready", false, "Creating", "VPC pending")],
            Some(1),
            at(100),
        );
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].status, "False");
        assert_eq!(merged[0].last_transition_time, Time(at(100)));
        assert_eq!(merged[0].observed_generation, Some(1));
    }

    #[test]
    fn same_status_keeps_transition_time_but_updates_message() {
        let first = merge(
            &[],
            &[Verdict::new("Ready", false, "Creating", "VPC pending")],
            Some(1),
            at(100),
        );
        let second = merge(
            &first,
            &[Verdict::new("Ready", false, "Creating", "NAT pending")],
            Some(2),
            at(200),
        );
        assert_eq!(second[0].last_transition_time, Time(at(100)));
        assert_eq!(second[0].message, "NAT pending");
        assert_eq!(second[0].observed_generation, Some(2));
    }

    #[test]
    fn flipped_status_moves_transition_time() {
        let first = merge(
            &[],
            &[Verdict::new("Ready", false, "Creating", "")],
            Some(1),
            at(100),
        );
        let second = merge(
            &first,
            &[Verdict::new("Ready", true, "Reconciled", "")],
            Some(1),
            at(300),
        );
        assert_eq!(second[0].status, "True");
        assert_eq!(second[0].last_transition_time, Time(at(300)));
    }

    #[test]
    fn unjudged_conditions_are_kept_and_order_is_stable() {
        let first = merge(
            &[],
            &[
                Verdict::new("Ready", true, "Reconciled", ""),
                Verdict::new("NetworkReady", true, "Available", ""),
            ],
            Some(1),
            at(100),
        );
        let second = merge(
            &first,
            &[Verdict::new("Ready", true, "Reconciled", "")],
            Some(1),
            at(200),
        );
        let types: Vec<_> = second.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["NetworkReady", "Ready"]);
        assert_eq!(
            second, first,
            "an unchanged pass writes identical conditions"
        );
        assert_eq!(is_true(&second, "NetworkReady"), Some(true));
        assert_eq!(is_true(&second, "Stalled"), None);
    }
}
