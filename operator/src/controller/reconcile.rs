//! One reconcile of one `DataPlatform`: the finalizer first (before any AWS work), then either
//! the teardown (object being deleted) or a pass toward the spec, and always a truthful status
//! written with server-side apply plus an event for every change and every error a user can
//! act on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use plinth_crds::{DataPlatform, DataPlatformStatus, condition_types};
use serde_json::json;
use tracing::{debug, info};

use super::conditions::{self, Verdict};
use super::{
    Context, Error, FIELD_MANAGER, FINALIZER, PAUSED_ANNOTATION, RECONCILE_REQUESTED_ANNOTATION,
};
use crate::engine::{Applied, Change, Report, Scope};
use crate::intent::Intent;
use crate::platform::{PassError, PassOutcome};

/// The condition a paused platform carries.
pub const PAUSED_CONDITION: &str = "Paused";

/// The entry point the controller calls for each object.
pub async fn reconcile(dp: Arc<DataPlatform>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let object_ref = ObjectRef::from_obj(dp.as_ref());
    let result = reconcile_inner(&dp, &ctx).await;
    let outcome = match &result {
        Ok((_, outcome)) => *outcome,
        Err(_) => "error",
    };
    ctx.metrics.observe_reconcile(outcome, started.elapsed());
    if result.is_ok() {
        ctx.reset_failures(&object_ref);
    }
    result.map(|(action, _)| action)
}

async fn reconcile_inner(
    dp: &DataPlatform,
    ctx: &Context,
) -> Result<(Action, &'static str), Error> {
    let namespace = dp
        .namespace()
        .ok_or_else(|| Error::NotNamespaced(dp.name_any()))?;
    let api: Api<DataPlatform> = Api::namespaced(ctx.client.clone(), &namespace);
    let scope = Scope::new(
        &namespace,
        &dp.name_any(),
        dp.spec.tags.iter().map(|(k, v)| (k.clone(), v.clone())),
    );
    let paused = dp
        .annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v == "true");

    if dp.meta().deletion_timestamp.is_some() {
        return cleanup(dp, ctx, &api, &scope, paused).await;
    }
    // The finalizer goes on before any AWS call, so nothing can be created that a delete
    // would then forget.
    if !dp.finalizers().iter().any(|f| f == FINALIZER) {
        add_finalizer(&api, dp).await?;
    }
    if paused {
        write_status(
            &api,
            dp,
            &[
                Verdict::new(
                    condition_types::RECONCILING,
                    false,
                    "Paused",
                    format!("{PAUSED_ANNOTATION} is \"true\": no AWS changes until it is removed"),
                ),
                Verdict::new(
                    PAUSED_CONDITION,
                    true,
                    "Paused",
                    format!("{PAUSED_ANNOTATION} is \"true\""),
                ),
            ],
        )
        .await?;
        if !conditions::is_true(current_conditions(dp), PAUSED_CONDITION).unwrap_or(false) {
            publish(
                ctx,
                dp,
                EventType::Normal,
                "Paused",
                "Pause",
                "reconciling paused; no AWS changes until plinth.dev/paused is removed".into(),
            )
            .await;
        }
        // Removing the annotation is a watched change: nothing to do until then.
        return Ok((Action::await_change(), "paused"));
    }

    if let Err(errors) = dp.validate() {
        let message = errors.to_string();
        stalled(ctx, &api, dp, "InvalidSpec", &message).await?;
        return Ok((Action::await_change(), "stalled"));
    }

    let platform = ctx.platforms.for_region(&dp.spec.region).await?;
    match platform
        .apply(&scope, &Intent::steady(dp.spec.clone()))
        .await
    {
        Ok(outcome) => {
            let mut status = dp.status.clone().unwrap_or_default();
            platform.write_outputs(&outcome.pass.observed, &mut status);
            apply_outcome(ctx, &api, dp, status, outcome).await
        }
        Err(e) if e.is_refusal() => {
            stalled(ctx, &api, dp, refusal_reason(&e), &e.to_string()).await?;
            Ok((Action::await_change(), "stalled"))
        }
        Err(e) => {
            write_status(
                &api,
                dp,
                &[
                    Verdict::new(condition_types::READY, false, "Retrying", e.to_string()),
                    Verdict::new(
                        condition_types::RECONCILING,
                        true,
                        "Retrying",
                        e.to_string(),
                    ),
                    Verdict::new(condition_types::STALLED, false, "Retrying", ""),
                ],
            )
            .await?;
            Err(Error::Pass(e))
        }
    }
}

fn refusal_reason(error: &PassError) -> &'static str {
    match error {
        PassError::Desired(_) => "InvalidSpec",
        PassError::Observe(_) => "AwsRefused",
    }
}

async fn apply_outcome(
    ctx: &Context,
    api: &Api<DataPlatform>,
    dp: &DataPlatform,
    status: DataPlatformStatus,
    outcome: PassOutcome,
) -> Result<(Action, &'static str), Error> {
    publish_changes(ctx, dp, &outcome.pass.report.applied).await;
    let mut verdicts = outcome.verdicts.clone();
    let resumed = conditions::is_true(current_conditions(dp), PAUSED_CONDITION).unwrap_or(false);
    if resumed {
        verdicts.push(Verdict::new(PAUSED_CONDITION, false, "Resumed", ""));
    }

    if outcome.pass.report.is_stalled() {
        let message = refused_message(&outcome.pass.report);
        verdicts.extend([
            Verdict::new(condition_types::READY, false, "AwsRefused", message.clone()),
            Verdict::new(condition_types::RECONCILING, false, "AwsRefused", ""),
            Verdict::new(
                condition_types::STALLED,
                true,
                "AwsRefused",
                message.clone(),
            ),
        ]);
        write_status_from(api, dp, status, &verdicts).await?;
        publish(
            ctx,
            dp,
            EventType::Warning,
            "AwsRefused",
            "Reconcile",
            message,
        )
        .await;
        // The account may change (a quota raised) without a spec change: look again later.
        return Ok((Action::requeue(jittered(ctx.settings.resync)), "stalled"));
    }

    if outcome.is_converged() {
        verdicts.extend([
            Verdict::new(
                condition_types::READY,
                true,
                "Reconciled",
                "every AWS resource exists and matches the spec",
            ),
            Verdict::new(condition_types::RECONCILING, false, "Reconciled", ""),
            Verdict::new(condition_types::STALLED, false, "Reconciled", ""),
        ]);
        let was_ready =
            conditions::is_true(current_conditions(dp), condition_types::READY).unwrap_or(false);
        write_status_from(api, dp, status, &verdicts).await?;
        if !was_ready {
            publish(
                ctx,
                dp,
                EventType::Normal,
                "Ready",
                "Reconcile",
                "the platform matches its spec".into(),
            )
            .await;
        }
        debug!(platform = %ObjectRef::from_obj(dp), "in sync");
        return Ok((Action::requeue(jittered(ctx.settings.resync)), "ready"));
    }

    let progress = progress_message(&outcome);
    verdicts.extend([
        Verdict::new(
            condition_types::READY,
            false,
            "Progressing",
            progress.clone(),
        ),
        Verdict::new(condition_types::RECONCILING, true, "Progressing", progress),
        Verdict::new(condition_types::STALLED, false, "Progressing", ""),
    ]);
    write_status_from(api, dp, status, &verdicts).await?;
    Ok((
        Action::requeue(ctx.settings.progress_interval),
        "progressing",
    ))
}

async fn cleanup(
    dp: &DataPlatform,
    ctx: &Context,
    api: &Api<DataPlatform>,
    scope: &Scope,
    paused: bool,
) -> Result<(Action, &'static str), Error> {
    if !dp.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok((Action::await_change(), "deleted"));
    }
    if paused {
        write_status(
            api,
            dp,
            &[Verdict::new(
                condition_types::RECONCILING,
                false,
                "Paused",
                format!("deletion waits: {PAUSED_ANNOTATION} is \"true\""),
            )],
        )
        .await?;
        return Ok((Action::await_change(), "paused"));
    }
    let platform = ctx.platforms.for_region(&dp.spec.region).await?;
    let outcome = platform
        .teardown(scope, &Intent::steady(dp.spec.clone()), &|_| false)
        .await?;
    publish_changes(ctx, dp, &outcome.report.applied).await;
    if outcome.found == 0 {
        info!(platform = %ObjectRef::from_obj(dp), "nothing tagged for the platform remains: releasing the finalizer");
        publish(
            ctx,
            dp,
            EventType::Normal,
            "TornDown",
            "Delete",
            "every AWS resource of the platform is gone".into(),
        )
        .await;
        remove_finalizer(api, dp).await?;
        return Ok((Action::await_change(), "deleted"));
    }
    let remaining = outcome.found;
    let message = if outcome.report.is_stalled() {
        refused_message(&outcome.report)
    } else {
        format!("{remaining} AWS resource(s) still being deleted")
    };
    write_status(
        api,
        dp,
        &[
            Verdict::new(condition_types::READY, false, "Deleting", message.clone()),
            Verdict::new(
                condition_types::RECONCILING,
                true,
                "Deleting",
                message.clone(),
            ),
        ],
    )
    .await?;
    if outcome.report.is_stalled() {
        publish(
            ctx,
            dp,
            EventType::Warning,
            "DeleteRefused",
            "Delete",
            message,
        )
        .await;
        return Ok((Action::requeue(Duration::from_secs(60)), "stalled"));
    }
    Ok((
        Action::requeue(ctx.settings.progress_interval),
        "progressing",
    ))
}

fn refused_message(report: &Report) -> String {
    report
        .refused
        .iter()
        .map(|f| format!("{} ({}): {}", f.key, f.operation, f.error))
        .collect::<Vec<_>>()
        .join("; ")
}

fn progress_message(outcome: &PassOutcome) -> String {
    let report = &outcome.pass.report;
    let changed = report.applied.len();
    let pending = report.pending.len() + outcome.pass.plan.waits.len();
    let retrying = report.retryable.len();
    let mut parts = vec![format!("{changed} change(s) made")];
    if pending > 0 {
        parts.push(format!("{pending} waiting for AWS"));
    }
    if let Some(first) = report.retryable.first() {
        parts.push(format!(
            "{retrying} retrying (first: {}: {})",
            first.key, first.error
        ));
    }
    parts.join(", ")
}

async fn stalled(
    ctx: &Context,
    api: &Api<DataPlatform>,
    dp: &DataPlatform,
    reason: &str,
    message: &str,
) -> Result<(), Error> {
    write_status(
        api,
        dp,
        &[
            Verdict::new(condition_types::READY, false, reason, message),
            Verdict::new(condition_types::RECONCILING, false, reason, ""),
            Verdict::new(condition_types::STALLED, true, reason, message),
        ],
    )
    .await?;
    publish(
        ctx,
        dp,
        EventType::Warning,
        reason,
        "Reconcile",
        message.to_string(),
    )
    .await;
    Ok(())
}

fn current_conditions(
    dp: &DataPlatform,
) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
    dp.status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default()
}

/// Writes the status as it is with new verdicts merged into its conditions.
async fn write_status(
    api: &Api<DataPlatform>,
    dp: &DataPlatform,
    verdicts: &[Verdict],
) -> Result<(), Error> {
    write_status_from(api, dp, dp.status.clone().unwrap_or_default(), verdicts).await
}

/// Writes the whole status with server-side apply under one field manager: `status` (outputs
/// already filled in) with `verdicts` merged into the current conditions, which keep their
/// transition times unless their status changed.
async fn write_status_from(
    api: &Api<DataPlatform>,
    dp: &DataPlatform,
    mut status: DataPlatformStatus,
    verdicts: &[Verdict],
) -> Result<(), Error> {
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
async fn add_finalizer(api: &Api<DataPlatform>, dp: &DataPlatform) -> Result<(), Error> {
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

async fn remove_finalizer(api: &Api<DataPlatform>, dp: &DataPlatform) -> Result<(), Error> {
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

async fn publish_changes(ctx: &Context, dp: &DataPlatform, applied: &[Applied]) {
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
            Change::Deleted { id, done } => (
                "Deleted",
                "Delete",
                if *done {
                    format!("deleted {} {} ({id})", change.kind, change.key)
                } else {
                    format!("deleting {} {} ({id})", change.kind, change.key)
                },
            ),
        };
        publish(ctx, dp, EventType::Normal, reason, action, note).await;
    }
}

/// Publishes one event; a failure to publish is logged, never fails the reconcile.
async fn publish(
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
