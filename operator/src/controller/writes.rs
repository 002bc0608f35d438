//! The operator's writes to Kubernetes for one platform: the status by server-side apply (the
//! conditions merged so transition times move only on a change), the finalizer by JSON patches
//! that test what they change, and events; and carrying a [status decision](super::status) out.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use plinth_crds::{DataPlatform, DataPlatformStatus};
use serde_json::json;
use tracing::info;

use super::conditions::{self, Verdict};
use super::status::{Decision as StatusDecision, Requeue};
use super::{Context, Error, FIELD_MANAGER, FINALIZER, RECONCILE_REQUESTED_ANNOTATION};
use crate::engine::{Applied, Change};
use crate::rollout::Decision;

/// The reason of the warning event for a duplicate resource the operator deleted.
pub const DUPLICATE_DELETED: &str = "DuplicateDeleted";

/// Writes `decision`'s verdicts into `status` (outputs already filled in), publishes its events
/// and says when to look again.
pub(super) async fn carry_out(
    ctx: &Context,
    api: &Api<DataPlatform>,
    dp: &DataPlatform,
    status: DataPlatformStatus,
    decision: StatusDecision,
) -> Result<(Action, &'static str), Error> {
    if !decision.verdicts.is_empty() {
        write_status_from(api, dp, status, &decision.verdicts).await?;
    }
    for event in decision.events {
        let type_ = if event.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        info!(platform = %ObjectRef::from_obj(dp), reason = %event.reason, note = %event.note, "status");
        publish(ctx, dp, type_, &event.reason, event.action, event.note).await;
    }
    let settings = &ctx.settings;
    let action = match decision.requeue {
        Requeue::AwaitChange => Action::await_change(),
        Requeue::Resync => Action::requeue(jittered(settings.resync)),
        Requeue::Progress => Action::requeue(ctx.next_progress_wait(&ObjectRef::from_obj(dp))),
        Requeue::After(wait) => Action::requeue(wait),
        Requeue::AtLeastProgress(wait) => Action::requeue(wait.max(settings.progress_interval)),
        // The controller's error policy backs off; the reconcile returns the error itself.
        Requeue::Backoff => Action::requeue(settings.progress_interval),
    };
    Ok((action, decision.outcome))
}

pub(super) async fn publish_rollout(ctx: &Context, dp: &DataPlatform, decision: &Decision) {
    for event in &decision.events {
        let type_ = if event.is_warning() {
            EventType::Warning
        } else {
            EventType::Normal
        };
        info!(platform = %ObjectRef::from_obj(dp), reason = event.reason(), note = %event.note(), "rollout");
        publish(ctx, dp, type_, event.reason(), "Rollout", event.note()).await;
    }
}

pub(super) fn current_conditions(
    dp: &DataPlatform,
) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
    dp.status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default()
}

/// Writes the whole status with server-side apply under one field manager: `status` (outputs
/// already filled in) with `verdicts` merged into the current conditions, which keep their
/// transition times unless their status changed.
pub(super) async fn write_status_from(
    api: &Api<DataPlatform>,
    dp: &DataPlatform,
    mut status: DataPlatformStatus,
    verdicts: &[Verdict],
) -> Result<(), Error> {
    // The journal's field belongs to its own field manager: applied here too, it would be
    // co-owned and never removed when the journal empties.
    status.recent_changes.clear();
    status.conditions = conditions::merge(
        current_conditions(dp),
        verdicts,
        dp.meta().generation,
        Timestamp::now(),
    );
    status.observed_generation = dp.meta().generation;
    if let Some(requested) = dp.annotations().get(RECONCILE_REQUESTED_ANNOTATION) {
        status.last_handled_reconcile_at = Some(requested.clone());
    }
    apply_status(api, dp, status).await
}

async fn apply_status(
    api: &Api<DataPlatform>,
    dp: &DataPlatform,
    status: DataPlatformStatus,
) -> Result<(), Error> {
    let patch = json!({
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "DataPlatform",
        "status": status,
    });
    api.patch_status(
        &dp.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Adds the finalizer with a JSON patch that first tests the list it extends, so a concurrent
/// edit of the finalizers fails the patch instead of being overwritten.
pub(super) async fn add_finalizer(api: &Api<DataPlatform>, dp: &DataPlatform) -> Result<(), Error> {
    let ops = if dp.finalizers().is_empty() {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": dp.finalizers()},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ])
    };
    json_patch_object(api, dp, ops).await
}

pub(super) async fn remove_finalizer(
    api: &Api<DataPlatform>,
    dp: &DataPlatform,
) -> Result<(), Error> {
    let Some(index) = dp.finalizers().iter().position(|f| f == FINALIZER) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{index}");
    let ops = json!([
        {"op": "test", "path": path, "value": FINALIZER},
        {"op": "remove", "path": path},
    ]);
    json_patch_object(api, dp, ops).await
}

async fn json_patch_object(
    api: &Api<DataPlatform>,
    dp: &DataPlatform,
    ops: serde_json::Value,
) -> Result<(), Error> {
    let patch: json_patch::Patch =
        serde_json::from_value(ops).map_err(|e| Error::Kube(kube::Error::SerdeError(e)))?;
    api.patch::<DataPlatform>(&dp.name_any(), &PatchParams::default(), &Patch::Json(patch))
        .await?;
    Ok(())
}

pub(super) async fn publish_changes(ctx: &Context, dp: &DataPlatform, applied: &[Applied]) {
    for change in applied {
        let (reason, action, note) = match &change.change {
            Change::Created { id, replaced: None } => (
                "Created",
                "Create",
                format!("created {} {} ({id})", change.kind, change.key),
            ),
            Change::Created {
                id,
                replaced: Some(old),
            } => (
                "Replaced",
                "Replace",
                format!("replaced {} {} ({old} → {id})", change.kind, change.key),
            ),
            Change::Updated { id, fields } => (
                "Updated",
                "Update",
                format!(
                    "updated {} {} ({id}): {}",
                    change.kind,
                    change.key,
                    fields.join(", ")
                ),
            ),
            Change::Deleted {
                id,
                duplicate: true,
                ..
            } => (
                DUPLICATE_DELETED,
                "Delete",
                format!(
                    "deleted {id}, a second {} for {}: a create was repeated before AWS listed \
                     the first",
                    change.kind, change.key
                ),
            ),
            Change::Deleted { id, done, .. } => (
                "Deleted",
                "Delete",
                if *done {
                    format!("deleted {} {} ({id})", change.kind, change.key)
                } else {
                    format!("deleting {} {} ({id})", change.kind, change.key)
                },
            ),
        };
        let type_ = if matches!(
            change.change,
            Change::Deleted {
                duplicate: true,
                ..
            }
        ) {
            EventType::Warning
        } else {
            EventType::Normal
        };
        publish(ctx, dp, type_, reason, action, note).await;
    }
}

/// Publishes one event; a failure to publish is logged, never fails the reconcile.
pub(super) async fn publish(
    ctx: &Context,
    dp: &DataPlatform,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        // Kubernetes caps an event's note at 1 kB.
        note: Some(note.chars().take(1000).collect()),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &dp.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "could not publish an event");
    }
}

/// A time up to `max`, at least half of it, so many platforms do not resync in lockstep.
fn jittered(max: Duration) -> Duration {
    max.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}
