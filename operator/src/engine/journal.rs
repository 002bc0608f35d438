//! The engine's memory of its own recent creates and deletes, because AWS is eventually
//! consistent: a resource created a moment ago may be missing from the describe calls and tag
//! filters the next observe makes, and one deleted a moment ago may still be in them.
//!
//! Without this memory a pass that does not see what the pass before it made would create it
//! again (a second VPC), and a pass that still sees what it deleted could take the lingering
//! resource for the component and the new one for a duplicate. The rules:
//! - **Before** a create is sent, an entry (component, kind, time) is saved durably; once AWS
//!   answers, the id is added. The controller saves into the platform's status, so a SIGKILL
//!   between the call and the end of the pass loses nothing.
//! - A desired component with a recent create entry that the observe does not list is **held**:
//!   its create is not sent again (the action is pending with the reason) until AWS lists it,
//!   or until the visibility window has passed and it is taken as never made (an answer lost
//!   before AWS acted, a create refused). Drivers whose create is idempotent (a client token,
//!   same-settings by name) are not held: sending the create again returns what exists.
//! - When the observe lists several resources for a component, the one the journal recorded
//!   stands for it; the others are planned as duplicates.
//! - A resource AWS answered was deleted ([`super::act::Deletion::Gone`]) is left out of every
//!   observe within the window, so a lingering describe never plans a second delete or takes the
//!   place of a new resource.
//! - In a teardown, a recent create that AWS does not list yet counts as found: the finalizer
//!   waits until it is listed (and deleted) or the window has passed.
//!
//! Entries are dropped when the window has passed. [`Journal::in_memory`] serves the CLI, whose
//! memory lasts one command; the controller gives a [`JournalStore`] over the status.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::act::ActError;
use super::key::{Key, Kind};
use super::observed::Observed;

/// What an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A create was sent (and, with an id, answered).
    Create,
    /// AWS answered that the resource is gone.
    Delete,
}

impl Operation {
    /// `Create` or `Delete`, as the status shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "Create",
            Self::Delete => "Delete",
        }
    }

    /// The operation named by [`Operation::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "Create" => Some(Self::Create),
            "Delete" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// One recent create or delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The component.
    pub key: Key,
    /// Its kind's name.
    pub kind: String,
    /// What was done.
    pub operation: Operation,
    /// AWS's id: for a create, once AWS answered; for a delete, always.
    pub id: Option<String>,
    /// When the create was sent or the delete answered, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// For a create: an observe has listed the component since (by the recorded id, or by its
    /// tags when the id is unknown). A listed entry is never held again: if it disappears
    /// later, it was deleted behind Plinth's back and is made again at once.
    pub listed: bool,
}

/// Where a journal is kept between passes and processes.
#[async_trait]
pub trait JournalStore: Send + Sync {
    /// Saves every entry, replacing what was saved before; returns once it is durable.
    async fn save(&self, entries: &[Entry]) -> Result<(), String>;
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long AWS may take, by default, to show a write to every read (EC2 documents seconds,
/// the tagging API can take longer): a create not listed after this is taken as never made.
pub const DEFAULT_VISIBILITY_WINDOW: Duration = Duration::from_secs(120);

/// The entries and the pure rules over them (no I/O, no clock: `now` is passed in).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entries(pub Vec<Entry>);

/// A recent create the observe does not list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unlisted {
    /// The component.
    pub key: Key,
    /// Its kind's name.
    pub kind: String,
    /// AWS's id, when the create was answered.
    pub id: Option<String>,
    /// How long ago the create was sent.
    pub age: Duration,
}

impl Entries {
    /// Drops what is older than `window`; true when something was dropped.
    fn expire(&mut self, now_ms: u64, window: Duration) -> bool {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let before = self.0.len();
        self.0
            .retain(|e| e.at_ms.saturating_add(window_ms) > now_ms);
        self.0.len() != before
    }

    /// Applies the journal to a fresh observe: deleted ids left out, recorded creates marked
    /// listed and standing for their component. Returns the view, the recent creates it does
    /// not list, and whether the entries changed (to be saved).
    fn apply(&mut self, observed: Observed, now_ms: u64) -> (Observed, Vec<Unlisted>, bool) {
        let deleted: BTreeSet<&str> = self
            .0
            .iter()
            .filter(|e| e.operation == Operation::Delete)
            .filter_map(|e| e.id.as_deref())
            .collect();
        let mut view = if deleted.is_empty() {
            observed
        } else {
            observed.without(&|r| deleted.contains(r.id.as_str()))
        };
        let mut changed = false;
        let mut unlisted = Vec::new();
        for entry in self
            .0
            .iter_mut()
            .filter(|e| e.operation == Operation::Create)
        {
            let listed = match &entry.id {
                Some(id) => view.prefer(&entry.key, id),
                None => view.primary(&entry.key).is_some(),
            };
            if listed && !entry.listed {
                entry.listed = true;
                changed = true;
            }
            if !entry.listed {
                unlisted.push(Unlisted {
                    key: entry.key.clone(),
                    kind: entry.kind.clone(),
                    id: entry.id.clone(),
                    age: Duration::from_millis(now_ms.saturating_sub(entry.at_ms)),
                });
            }
        }
        (view, unlisted, changed)
    }

    /// Why a create of `key` must not be sent now, if it must not. A create AWS answered
    /// (its id known) is always awaited: sending it again could at best answer the same
    /// resource. One that got no answer is awaited unless `resend_unanswered` (the driver's
    /// create is idempotent: a token or unique settings make AWS answer what it made).
    fn hold(&self, key: &Key, now_ms: u64, resend_unanswered: bool) -> Option<String> {
        let entry = self.0.iter().find(|e| {
            e.operation == Operation::Create
                && &e.key == key
                && !e.listed
                && !(resend_unanswered && e.id.is_none())
        })?;
        let age = Duration::from_millis(now_ms.saturating_sub(entry.at_ms)).as_secs();
        Some(match &entry.id {
            Some(id) => format!(
                "{id} was created {age} s ago and AWS does not list it yet (eventual consistency)"
            ),
            None => format!(
                "a create sent {age} s ago got no answer and may have made it; AWS does not list \
                 it yet (eventual consistency)"
            ),
        })
    }

    /// Records a create about to be sent (replacing an older create entry of the component).
    fn begin(&mut self, key: &Key, kind: Kind, now_ms: u64) {
        self.0
            .retain(|e| !(e.operation == Operation::Create && &e.key == key));
        self.0.push(Entry {
            key: key.clone(),
            kind: kind.as_str().to_owned(),
            operation: Operation::Create,
            id: None,
            at_ms: now_ms,
            listed: false,
        });
    }

    /// Records the id a create answered with.
    fn created(&mut self, key: &Key, id: &str) {
        if let Some(entry) = self
            .0
            .iter_mut()
            .find(|e| e.operation == Operation::Create && &e.key == key)
        {
            entry.id = Some(id.to_owned());
        }
    }

    /// Forgets a create that certainly made nothing.
    fn abandoned(&mut self, key: &Key) {
        self.0
            .retain(|e| !(e.operation == Operation::Create && &e.key == key && e.id.is_none()));
    }

    /// Records that AWS answered the resource `id` is gone.
    fn deleted(&mut self, key: &Key, kind: Kind, id: &str, now_ms: u64) {
        self.0.retain(|e| e.id.as_deref() != Some(id));
        self.0.push(Entry {
            key: key.clone(),
            kind: kind.as_str().to_owned(),
            operation: Operation::Delete,
            id: Some(id.to_owned()),
            at_ms: now_ms,
            listed: false,
        });
    }
}

/// One platform's journal: the entries behind a lock, the store that keeps them, the window.
pub struct Journal {
    entries: tokio::sync::Mutex<Entries>,
    store: Option<Arc<dyn JournalStore>>,
    window: Duration,
}

impl Journal {
    /// A journal that lives only as long as this value (the CLI: one command).
    pub fn in_memory(window: Duration) -> Self {
        Self {
            entries: tokio::sync::Mutex::new(Entries::default()),
            store: None,
            window,
        }
    }

    /// A journal that starts from `entries` (as saved before) and saves every change to
    /// `store`.
    pub fn stored(entries: Vec<Entry>, window: Duration, store: Arc<dyn JournalStore>) -> Self {
        Self {
            entries: tokio::sync::Mutex::new(Entries(entries)),
            store: Some(store),
            window,
        }
    }

    async fn save(&self, entries: &Entries) -> Result<(), String> {
        match &self.store {
            Some(store) => store.save(&entries.0).await,
            None => Ok(()),
        }
    }

    /// Applies the journal to a fresh observe (see [`Entries`]'s rules); saves what changed.
    /// A failed save is logged: the entries stay in memory and the next change saves them.
    pub(crate) async fn view(&self, observed: Observed) -> (Observed, Vec<Unlisted>) {
        let now = now_ms();
        let mut entries = self.entries.lock().await;
        let expired = entries.expire(now, self.window);
        let (view, unlisted, changed) = entries.apply(observed, now);
        if (expired || changed)
            && let Err(e) = self.save(&entries).await
        {
            tracing::warn!(error = %e, "could not save the journal of recent AWS changes");
        }
        (view, unlisted)
    }

    /// Why a create of `key` must wait, if it must (see [`Entries`]'s rules).
    pub(crate) async fn hold(&self, key: &Key, resend_unanswered: bool) -> Option<String> {
        self.entries
            .lock()
            .await
            .hold(key, now_ms(), resend_unanswered)
    }

    /// Records, durably, that a create of `key` is about to be sent. An error means the
    /// create must not be sent.
    pub(crate) async fn begin(&self, key: &Key, kind: Kind) -> Result<(), ActError> {
        let mut entries = self.entries.lock().await;
        entries.begin(key, kind, now_ms());
        self.save(&entries).await.map_err(|e| {
            entries.abandoned(key);
            ActError::retryable(
                "PlinthJournalUnsaved",
                format!("the create was not sent: recording it first failed: {e}"),
            )
        })
    }

    /// Records the id a create answered with.
    pub(crate) async fn created(&self, key: &Key, id: &str) {
        self.record(key, |entries| entries.created(key, id)).await;
    }

    /// Forgets a create AWS refused: it made nothing, so nothing is awaited.
    pub(crate) async fn abandoned(&self, key: &Key) {
        self.record(key, |entries| entries.abandoned(key)).await;
    }

    /// Records that AWS answered the resource `id` of `key` is gone.
    pub(crate) async fn deleted(&self, key: &Key, kind: Kind, id: &str) {
        self.record(key, |entries| entries.deleted(key, kind, id, now_ms()))
            .await;
    }

    /// Applies `change` about `key` and saves the entries. A failed save is logged: the
    /// change stays in memory and the next save carries it.
    async fn record(&self, key: &Key, change: impl FnOnce(&mut Entries)) {
        let mut entries = self.entries.lock().await;
        change(&mut entries);
        if let Err(e) = self.save(&entries).await {
            tracing::warn!(%key, error = %e, "could not save the journal of recent AWS changes");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::observed::{Lifecycle, ObservedResource};

    const VPC: Kind = Kind("vpc");

    fn vpc(id: &str) -> ObservedResource {
        ObservedResource::new(VPC, "vpc", id)
    }

    #[test]
    fn a_create_not_listed_yet_is_held_until_listed() {
        let mut entries = Entries::default();
        let key = Key::from("vpc");
        entries.begin(&key, VPC, 1_000);
        assert!(
            entries
                .hold(&key, 2_000, false)
                .is_some_and(|r| r.contains("no answer"))
        );
        entries.created(&key, "vpc-2");
        let (view, unlisted, _) = entries.apply(Observed::empty(), 3_000);
        assert!(view.is_empty());
        assert_eq!(unlisted.len(), 1);
        assert_eq!(unlisted[0].id.as_deref(), Some("vpc-2"));
        assert!(
            entries
                .hold(&key, 3_000, false)
                .is_some_and(|r| r.contains("vpc-2"))
        );

        let (_, unlisted, changed) = entries.apply(Observed::new([vpc("vpc-2")]), 4_000);
        assert!(unlisted.is_empty() && changed);
        assert_eq!(entries.hold(&key, 4_000, false), None);
        // Gone later (deleted by hand): not held, so the drift is repaired at once.
        let (_, unlisted, changed) = entries.apply(Observed::empty(), 5_000);
        assert!(unlisted.is_empty() && !changed);
        assert_eq!(entries.hold(&key, 5_000, false), None);
    }

    #[test]
    fn an_idempotent_create_is_sent_again_only_while_its_answer_is_unknown() {
        let mut entries = Entries::default();
        let key = Key::from("launch-template");
        entries.begin(&key, VPC, 0);
        // No answer: its token makes a second send answer what the first made.
        assert_eq!(entries.hold(&key, 10, true), None);
        // Answered: what it made is awaited, a second send could only be refused by its name.
        entries.created(&key, "lt-1");
        assert!(
            entries
                .hold(&key, 20, true)
                .is_some_and(|r| r.contains("lt-1"))
        );
    }

    #[test]
    fn a_create_with_no_answer_is_listed_by_its_tags() {
        let mut entries = Entries::default();
        let key = Key::from("vpc");
        entries.begin(&key, VPC, 0);
        let (_, unlisted, changed) = entries.apply(Observed::new([vpc("vpc-9")]), 10);
        assert!(unlisted.is_empty() && changed);
        assert_eq!(entries.hold(&key, 10, false), None);
    }

    #[test]
    fn the_window_ends_a_hold() {
        let mut entries = Entries::default();
        let key = Key::from("vpc");
        entries.begin(&key, VPC, 0);
        assert!(!entries.expire(59_999, Duration::from_secs(60)));
        assert!(entries.hold(&key, 59_999, false).is_some());
        assert!(entries.expire(60_000, Duration::from_secs(60)));
        assert_eq!(entries.hold(&key, 60_000, false), None);
        assert!(entries.0.is_empty());
    }

    #[test]
    fn the_recorded_resource_stands_for_the_component_and_deleted_ones_are_left_out() {
        let mut entries = Entries::default();
        let key = Key::from("vpc");
        // An earlier incarnation's VPC, deleted, still in describes; this pass made vpc-b.
        entries.deleted(&key, VPC, "vpc-0", 0);
        entries.begin(&key, VPC, 0);
        entries.created(&key, "vpc-b");
        let observed = Observed::new([
            vpc("vpc-0"),
            vpc("vpc-a").lifecycle(Lifecycle::Available),
            vpc("vpc-b").lifecycle(Lifecycle::Pending),
        ]);
        let (view, unlisted, _) = entries.apply(observed, 1);
        assert!(unlisted.is_empty());
        assert_eq!(view.primary(&key).map(|r| r.id.as_str()), Some("vpc-b"));
        let duplicates: Vec<&str> = view
            .duplicates(&key)
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(duplicates, ["vpc-a"]);
    }

    #[test]
    fn a_refused_create_is_forgotten_but_an_answered_one_is_not() {
        let mut entries = Entries::default();
        let key = Key::from("vpc");
        entries.begin(&key, VPC, 0);
        entries.abandoned(&key);
        assert!(entries.0.is_empty());
        entries.begin(&key, VPC, 0);
        entries.created(&key, "vpc-1");
        entries.abandoned(&key);
        assert_eq!(entries.0.len(), 1);
    }

    #[test]
    fn operations_round_trip_through_their_names() {
        for op in [Operation::Create, Operation::Delete] {
            assert_eq!(Operation::parse(op.as_str()), Some(op));
        }
        assert_eq!(Operation::parse("Update"), None);
    }
}
