//! The reconcile engine: desired → observe → plan → act, knowing no AWS service and no
//! Kubernetes.
//!
//! - [`component`]: what a component is ([`Component`]: its desired resources from the spec,
//!   plus a [`Driver`] that observes and acts on its kind) and the list of them ([`Components`]).
//! - [`desired`] / [`observed`]: the two sides, keyed by [`Key`]: a checked dependency graph of
//!   what the spec wants, and what was found in AWS by Plinth's tags.
//! - [`plan()`]: the pure function from both sides to ordered actions (create, update of the
//!   differing fields, replace, delete) plus what waits and what is stalled; [`render()`] prints
//!   it for `plinth plan`.
//! - [`execute()`]: runs a plan through the drivers, concurrently where the order allows, and
//!   reports what changed, what is pending and what AWS refused.
//! - [`pass`]: one pass of the loop ([`Engine::reconcile`], [`Engine::preview`] for
//!   `plinth plan`, [`Engine::teardown`] for the finalizer and `plinth destroy`).
//! - [`identity`]: the tags, deterministic names and client tokens every create carries.
//! - [`reads`]: the AWS answers one observe shares between kinds, read once.
//! - [`journal`]: the memory of recent creates and deletes that AWS's eventually consistent
//!   reads may not show yet, so a create is never sent twice and a deleted resource never
//!   comes back.
//!
//! One pass, as the controller and `plinth apply` run it:
//! ```ignore
//! let components = Components::new([Arc::new(network::Vpc::new(&aws)) as Arc<dyn Component<_>>])?;
//! let engine = Engine::new(&components, &scope, ExecuteOptions::default());
//! let pass = engine.reconcile(&spec).await?;
//! // pass.report.applied → events; requeue_soon() → requeue; is_stalled() → Stalled (refused)
//! ```
//!
//! Design choices:
//! - Attributes are a small dynamic value type ([`AttrValue`]) so diffing, reference resolution
//!   and printing are written once; each AWS module converts to and from its typed view. Each
//!   field says how AWS changes it ([`OnChange`]: update in place, replace, or create-only).
//! - References ([`AttrValue::Ref`]) name other components, not AWS ids, so the desired graph
//!   is a pure function of the spec; the engine resolves them to ids when it compares and acts.
//!   A reference to a component being replaced changes for sure: an immutable field holding it
//!   replaces the dependent too, an updatable one updates it. An attribute reference
//!   ([`AttrValue::Output`], such as a cluster's `endpoint`) resolves the same way to the value
//!   the referenced component's driver observed or returned from its create; while that value
//!   is not reported, a create waits and an existing dependent is left as it is (never
//!   replaced on a guess).
//! - A replacement is two actions, delete then create, so dependents can go before the old one
//!   and come after the new one. Components that must never be replaced (a database) say so
//!   ([`DesiredResource::forbid_replace`]) and the change becomes a [`Stall`].
//! - Waiting is not an action: what cannot start this pass is listed apart, and the next pass
//!   plans again from a fresh observe. The executor never retries either; the SDK retries
//!   throttling and 5xx, and the requeue retries the rest.
//! - Drivers are trait objects so one heterogeneous list carries every kind.
//! - Dependencies between found resources (for ordering deletes of things no longer in the
//!   spec) come from the ids in their attributes, so teardown needs no memory of old specs.

pub mod act;
pub mod attr;
pub mod component;
pub mod desired;
pub mod execute;
pub mod fields;
pub mod identity;
pub mod journal;
pub mod key;
pub mod observed;
pub mod pass;
pub mod plan;
pub mod reads;
pub mod render;

#[cfg(test)]
mod testing;

pub use act::{ActError, CreateRequest, Deletion, Driver, Drivers, UpdateRequest};
pub use attr::{AttrValue, Attrs, Field, OnChange};
pub use component::{Component, Components, DesiredError, DuplicateKind, Wanted};
pub use desired::{DesiredGraph, DesiredResource, GraphError};
pub use execute::{Applied, Blocked, Change, ExecuteOptions, Failure, Pending, Report, execute};
pub use identity::{COMPONENT_TAG, PLATFORM_TAG, Scope};
pub use journal::{DEFAULT_VISIBILITY_WINDOW, Entry, Journal, JournalStore, Operation, Unlisted};
pub use key::{Key, Kind};
pub use observed::{Lifecycle, Observed, ObservedResource};
pub use pass::{Engine, Pass, PassError};
pub use plan::{
    Action, ActionId, DeleteReason, FieldChange, Op, Plan, Planned, Stall, Wait, WaitReason, plan,
    plan_teardown,
};
pub use reads::Reads;
pub use render::{Summary, render};
