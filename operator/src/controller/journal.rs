//! Where the controller keeps each platform's journal of recent AWS changes (the engine's
//! [`Journal`], see [`crate::engine::journal`]): durably in the platform's
//! `status.recentChanges`, so a restarted or newly elected operator never sends a create twice,
//! and in memory per object UID, so a pass never depends on how fresh the watch cache is.
//!
//! The status field is written with server-side apply under a field manager of its own
//! ([`JOURNAL_MANAGER`]); the status writer leaves the field out of everything it applies, so
//! neither manager ever removes the other's fields. A platform deleted and applied again is a
//! new object (a new UID) with a journal of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use plinth_crds::{DataPlatform, RecentChange};
use serde_json::json;

use crate::engine::{Entry, Journal, JournalStore, Key, Operation};

/// The field manager that owns `status.recentChanges`.
pub const JOURNAL_MANAGER: &str = "plinth-operator-journal";

/// Saves a journal into one platform's status.
struct StatusStore {
    api: Api<DataPlatform>,
    name: String,
}

#[async_trait]
impl JournalStore for StatusStore {
    async fn save(&self, entries: &[Entry]) -> Result<(), String> {
        let changes: Vec<RecentChange> = entries.iter().map(to_status).collect();
        // An empty journal is applied as no field at all, so the field goes from the status.
        let status = if changes.is_empty() {
            json!({})
        } else {
            json!({ "recentChanges": changes })
        };
        let patch = json!({
            "apiVersion": "plinth.dev/v1alpha1",
            "kind": "DataPlatform",
            "status": status,
        });
        self.api
            .patch_status(
                &self.name,
                &PatchParams::apply(JOURNAL_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map(|_| ())
            .map_err(|e| format!("writing status.recentChanges of {}: {e}", self.name))
    }
}

/// An entry as the status shows it.
fn to_status(entry: &Entry) -> RecentChange {
    let at = i64::try_from(entry.at_ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH);
    RecentChange {
        component: entry.key.to_string(),
        kind: entry.kind.clone(),
        operation: entry.operation.as_str().to_owned(),
        id: entry.id.clone(),
        at: at.to_string(),
        listed: entry.listed,
    }
}

/// The status's entry as the engine keeps it; `None` for one this operator cannot read (a
/// newer operator's operation, a malformed time), which is dropped with a warning.
fn from_status(change: &RecentChange) -> Option<Entry> {
    let operation = Operation::parse(&change.operation)?;
    let at: Timestamp = change.at.parse().ok()?;
    Some(Entry {
        key: Key::from(change.component.as_str()),
        kind: change.kind.clone(),
        operation,
        id: change.id.clone(),
        at_ms: u64::try_from(at.as_millisecond()).ok()?,
        listed: change.listed,
    })
}

/// The journals of the platforms this process reconciles, by object UID.
#[derive(Default)]
pub struct Journals(Mutex<HashMap<String, Arc<Journal>>>);

impl Journals {
    /// The journal of `dp`: the one in memory, or one started from its status (after a
    /// restart or a change of leader).
    pub fn of(&self, dp: &DataPlatform, api: &Api<DataPlatform>, window: Duration) -> Arc<Journal> {
        let mut journals = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        journals
            .entry(uid_of(dp))
            .or_insert_with(|| {
                let saved = dp
                    .status
                    .as_ref()
                    .map(|s| s.recent_changes.as_slice())
                    .unwrap_or_default();
                let entries: Vec<Entry> = saved
                    .iter()
                    .filter_map(|change| {
                        let entry = from_status(change);
                        if entry.is_none() {
                            tracing::warn!(component = %change.component, operation = %change.operation, at = %change.at, "dropping a recent change this operator cannot read");
                        }
                        entry
                    })
                    .collect();
                let store = StatusStore {
                    api: api.clone(),
                    name: dp.name_any(),
                };
                Arc::new(Journal::stored(entries, window, Arc::new(store)))
            })
            .clone()
    }

    /// Forgets the journal of a platform whose finalizer was released.
    pub fn forget(&self, dp: &DataPlatform) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&uid_of(dp));
    }
}

/// The key of `dp`'s journal: its UID (a platform deleted and applied again is a new object).
fn uid_of(dp: &DataPlatform) -> String {
    dp.uid().unwrap_or_else(|| dp.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_the_status() {
        let entry = Entry {
            key: Key::from("subnet/private/eu-west-1a"),
            kind: "subnet".into(),
            operation: Operation::Create,
            id: Some("subnet-1".into()),
            at_ms: 1_764_806_400_123,
            listed: true,
        };
        let shown = to_status(&entry);
        assert_eq!(shown.at, "2025-12-04T00:00:00.123Z");
        assert_eq!(from_status(&shown), Some(entry));
        let unreadable = RecentChange {
            operation: "Rename".into(),
            ..shown
        };
        assert_eq!(from_status(&unreadable), None);
    }
}
