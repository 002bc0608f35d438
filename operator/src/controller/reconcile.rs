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
use super::readiness::{self, Health, Readiness, Wait};
use super::{
    Context, Error, FIELD_MANAGER, FINALIZER, PAUSED_ANNOTATION, RECONCILE_REQUESTED_ANNOTATION,
};
use crate::engine::{Applied, Change, Report, Scope};
use crate::intent::{AppRevision, Intent};
use crate::platform::{PassError, PassOutcome, Platform};
use crate::rollout::{self, Decision, RolloutState, Timing};

/// The reason of the warning event for a duplicate resource the operator deleted.
pub const DUPLICATE_DELETED: &str = "DuplicateDeleted";

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
    if outcome != "progressing" {
        ctx.reset_progress(&object_ref);
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
    // The rollout state comes from status, never from memory: a restarted operator resumes.
    let now = Timestamp::now();
    let revision = AppRevision::of(&dp.spec);
    let timing = Timing::of(
        &dp.spec.app.rollout,
        ctx.settings.rollout_step_scale,
        ctx.settings.progress_interval,
    );
    let persisted = RolloutState::from_status(dp.status.as_ref().and_then(|s| s.app.as_ref()), now);
    let new_platform = persisted.active.is_none();
    let before = rollout::decide(
        &revision,
        &dp.spec.app.rollout,
        &persisted,
        timing,
        None,
        now,
    );
    let intent = Intent {
        spec: dp.spec.clone(),
        serving: before.serving.clone(),
    };
    let journal = ctx.journal(dp, &api);
    match platform.apply(&scope, &intent, Some(&journal)).await {
        Ok(outcome) => {
            let mut status = dp.status.clone().unwrap_or_default();
            platform.write_outputs(&outcome.pass.observed, &mut status);
            let rollout = judge_rollout(dp, &platform, &outcome, &revision, before, timing).await;
            let app = status.app.get_or_insert_with(Default::default);
            rollout.decision.state.write_status(app);
            let health = read_health(dp, &platform, &outcome, &rollout).await;
            let readiness = readiness::judge(&readiness::Input {
                active: rollout.decision.state.active.as_ref(),
                new_platform,
                first_deploy: app.first_deploy.as_ref(),
                steady: outcome.is_converged()
                    && !rollout.serving_changed
                    && rollout.decision.state.rollout.is_none()
                    && !rollout.rolled_back,
                compute: outcome
                    .verdicts
                    .iter()
                    .find(|v| v.type_ == crate::compute::CONDITION),
                health: &health,
                conditions: current_conditions(dp),
                timeout: timing.timeout,
                now: Timestamp::now(),
            });
            app.first_deploy.clone_from(&readiness.first_deploy);
            apply_outcome(ctx, &api, dp, status, outcome, &rollout, &readiness).await
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

/// The rollout's decision for a pass: the one made before it (which the pass built), moved on
/// by what the gates observed after it.
struct RolloutPass {
    /// The final decision; its events include those of the decision before the pass.
    decision: Decision,
    /// The decision asks for another serving state than the pass built (a step, a rollback,
    /// success): the next pass should come at once.
    serving_changed: bool,
    /// The spec's revision failed its rollout: blue serves until the spec changes.
    rolled_back: bool,
}

/// Observes the gates after the pass when a rollout is under way and decides again.
async fn judge_rollout(
    dp: &DataPlatform,
    platform: &Platform,
    outcome: &PassOutcome,
    revision: &AppRevision,
    before: Decision,
    timing: Timing,
) -> RolloutPass {
    let rolled_back = before.state.failed.as_deref() == Some(revision.id.as_str());
    let unchanged = |decision| RolloutPass {
        decision,
        serving_changed: false,
        rolled_back,
    };
    if before.state.rollout.is_none() {
        return unchanged(before);
    }
    let Some(clients) = platform.clients() else {
        return unchanged(before);
    };
    let gates = match rollout::observe(
        clients,
        &outcome.pass.observed,
        revision,
        outcome.is_converged(),
    )
    .await
    {
        Ok(gates) => gates,
        Err(e) => {
            // Without gates nothing moves: the rollout holds where it is and looks again.
            tracing::warn!(platform = %ObjectRef::from_obj(dp), error = %e, "could not read the rollout's gates");
            return unchanged(before);
        }
    };
    debug!(platform = %ObjectRef::from_obj(dp), ?gates, "rollout gates");
    let mut after = rollout::decide(
        revision,
        &dp.spec.app.rollout,
        &before.state,
        timing,
        Some(&gates),
        Timestamp::now(),
    );
    let serving_changed = after.serving != before.serving;
    let mut events = before.events;
    events.append(&mut after.events);
    after.events = events;
    let mut verdicts: Vec<_> = before
        .verdicts
        .into_iter()
        .filter(|v| !after.verdicts.iter().any(|a| a.type_ == v.type_))
        .collect();
    verdicts.append(&mut after.verdicts);
    after.verdicts = verdicts;
    RolloutPass {
        rolled_back: after.state.failed.as_deref() == Some(revision.id.as_str()),
        decision: after,
        serving_changed,
    }
}

/// Reads the active revision's serving health after a pass with no rollout under way (one
/// DescribeTargetHealth; the scaling activities only when too few targets are healthy).
async fn read_health(
    dp: &DataPlatform,
    platform: &Platform,
    outcome: &PassOutcome,
    rollout: &RolloutPass,
) -> Health {
    let state = &rollout.decision.state;
    if state.rollout.is_some() || rollout.rolled_back {
        return Health::NotRead;
    }
    let (Some(active), Some(clients)) = (state.active.as_ref(), platform.clients()) else {
        return Health::NotRead;
    };
    match rollout::serving_health(clients, &outcome.pass.observed, active).await {
        Ok(Some(health)) => {
            debug!(platform = %ObjectRef::from_obj(dp), healthy = health.healthy(), needed = health.needed(), "serving health");
            Health::Read(health)
        }
        Ok(None) => Health::NotRead,
        Err(e) => {
            tracing::warn!(platform = %ObjectRef::from_obj(dp), error = %e, "could not read the targets' health");
            Health::Unreadable(e)
        }
    }
}

async fn publish_rollout(ctx: &Context, dp: &DataPlatform, decision: &Decision) {
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

async fn apply_outcome(
    ctx: &Context,
    api: &Api<DataPlatform>,
    dp: &DataPlatform,
    status: DataPlatformStatus,
    outcome: PassOutcome,
    rollout: &RolloutPass,
    readiness: &Readiness,
) -> Result<(Action, &'static str), Error> {
    publish_changes(ctx, dp, &outcome.pass.report.applied).await;
    publish_rollout(ctx, dp, &rollout.decision).await;
    let mut verdicts = outcome.verdicts.clone();
    readiness
        .compute
        .apply(&mut verdicts, crate::compute::CONDITION);
    verdicts.extend(
        rollout
            .decision
            .verdicts
            .iter()
            .map(|v| Verdict::new(v.type_, v.status, v.reason, v.message.clone())),
    );
    let rolling = rollout.decision.state.rollout.is_some();
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

    if outcome.is_converged() && !rollout.serving_changed && rolling {
        // AWS matches this step of the rollout; Ready waits for the rollout's end.
        let message = rollout
            .decision
            .verdicts
            .iter()
            .find(|v| v.type_ == rollout::ROLLOUT_PROGRESSING)
            .map_or_else(
                || "a new version is rolling out".to_owned(),
                |v| v.message.clone(),
            );
        verdicts.extend([
            Verdict::new(condition_types::READY, false, "RollingOut", message.clone()),
            Verdict::new(condition_types::RECONCILING, true, "RollingOut", message),
            Verdict::new(condition_types::STALLED, false, "RollingOut", ""),
        ]);
        write_status_from(api, dp, status, &verdicts).await?;
        let wait = rollout
            .decision
            .requeue_after
            .unwrap_or(ctx.settings.progress_interval);
        return Ok((Action::requeue(wait), "progressing"));
    }

    if outcome.is_converged() && !rollout.serving_changed && rollout.rolled_back {
        // The spec's version was rolled back: the platform serves the previous one until the
        // spec changes, which is kstatus's Stalled.
        let message = rollout
            .decision
            .verdicts
            .iter()
            .find(|v| v.type_ == rollout::ROLLOUT_FAILED)
            .map(|v| v.message.clone())
            .or_else(|| {
                current_conditions(dp)
                    .iter()
                    .find(|c| c.type_ == rollout::ROLLOUT_FAILED)
                    .map(|c| c.message.clone())
            })
            .unwrap_or_else(|| "the rollout of the spec's version failed".to_owned());
        verdicts.extend([
            Verdict::new(
                condition_types::READY,
                false,
                "RolloutFailed",
                message.clone(),
            ),
            Verdict::new(condition_types::RECONCILING, false, "RolloutFailed", ""),
            Verdict::new(condition_types::STALLED, true, "RolloutFailed", message),
        ]);
        write_status_from(api, dp, status, &verdicts).await?;
        return Ok((Action::requeue(jittered(ctx.settings.resync)), "stalled"));
    }

    if let Some(serving) = &readiness.overall {
        // AWS matches the spec with no rollout under way: Ready when the active revision serves.
        verdicts.extend(serving.verdicts.iter().cloned());
        write_status_from(api, dp, status, &verdicts).await?;
        if let Some(event) = &serving.event {
            let type_ = if event.warning {
                EventType::Warning
            } else {
                EventType::Normal
            };
            info!(platform = %ObjectRef::from_obj(dp), reason = event.reason, note = %event.note, "serving");
            publish(
                ctx,
                dp,
                type_,
                event.reason,
                "Reconcile",
                event.note.clone(),
            )
            .await;
        }
        let wait = match serving.wait {
            Wait::Resync => jittered(ctx.settings.resync),
            Wait::Progress => ctx.next_progress_wait(&ObjectRef::from_obj(dp)),
            Wait::After(wait) => wait.max(ctx.settings.progress_interval),
        };
        debug!(platform = %ObjectRef::from_obj(dp), outcome = serving.outcome, "steady pass");
        return Ok((Action::requeue(wait), serving.outcome));
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
        Action::requeue(ctx.next_progress_wait(&ObjectRef::from_obj(dp))),
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
    // `deletionPolicy: Retain` leaves the database and its network out of the teardown; what
    // was left out is kept to tag it once everything else is gone.
    let retained = std::sync::Mutex::new(Vec::new());
    let retain = |resource: &crate::engine::ObservedResource| {
        let keep = crate::database::retains(&dp.spec, resource);
        if keep {
            retained
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(resource.clone());
        }
        keep
    };
    if let Some(clients) = platform.clients() {
        crate::database::sync_deletion_policy(clients, scope, &dp.spec)
            .await
            .map_err(|e| Error::TeardownPending(format!("recording the deletion policy: {e}")))?;
    }
    let journal = ctx.journal(dp, api);
    let outcome = platform
        .teardown(
            scope,
            &Intent::steady(dp.spec.clone()),
            &retain,
            Some(&journal),
        )
        .await?;
    let retained = retained
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    publish_changes(ctx, dp, &outcome.report.applied).await;
    if outcome.found == 0 {
        if !retained.is_empty() {
            report_retained(ctx, &platform, api, dp, &retained).await?;
        }
        info!(platform = %ObjectRef::from_obj(dp), retained = retained.len(), "nothing tagged for the platform remains: releasing the finalizer");
        let note = if retained.is_empty() {
            "every AWS resource of the platform is gone".to_owned()
        } else {
            format!(
                "every AWS resource of the platform is gone except the {} retained",
                retained.len()
            )
        };
        publish(ctx, dp, EventType::Normal, "TornDown", "Delete", note).await;
        remove_finalizer(api, dp).await?;
        ctx.forget_journal(dp);
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
        Action::requeue(ctx.next_progress_wait(&ObjectRef::from_obj(dp))),
        "progressing",
    ))
}

/// `deletionPolicy: Retain`, once everything else is gone: tags what stays in AWS
/// `plinth.dev/retained=true` and says so in the status and an event, before the finalizer goes.
async fn report_retained(
    ctx: &Context,
    platform: &Platform,
    api: &Api<DataPlatform>,
    dp: &DataPlatform,
    retained: &[crate::engine::ObservedResource],
) -> Result<(), Error> {
    match platform.clients() {
        Some(clients) => {
            crate::database::mark_retained(clients, retained)
                .await
                .map_err(|e| {
                    Error::TeardownPending(format!("tagging the retained resources: {e}"))
                })?;
        }
        None => tracing::warn!(
            "an engine without AWS clients of its own: the retained resources are not tagged"
        ),
    }
    let cluster = retained
        .iter()
        .find(|r| r.kind == crate::database::DB_CLUSTER)
        .map(|r| format!(" (cluster {})", r.id))
        .unwrap_or_default();
    let message = format!(
        "deletionPolicy is Retain: the database{cluster} and the network it lives in stay in AWS, \
         {} resource(s) tagged {}=true",
        retained.len(),
        crate::database::RETAINED_TAG
    );
    write_status(
        api,
        dp,
        &[
            Verdict::new("DatabaseReady", false, "Retained", message.clone()),
            Verdict::new(condition_types::READY, false, "Retained", message.clone()),
        ],
    )
    .await?;
    publish(ctx, dp, EventType::Normal, "Retained", "Delete", message).await;
    Ok(())
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
