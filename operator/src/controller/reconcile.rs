//! One reconcile of one `DataPlatform`, the I/O around the [status decision](super::status):
//! the finalizer first (before any AWS work), then either the teardown (object being deleted)
//! or a pass toward the spec with the rollout's and the serving health's reads after it, and
//! always a truthful status written with server-side apply plus an event for every change and
//! every error a user can act on.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use plinth_crds::DataPlatform;
use tracing::info;

use super::after_pass::{judge_rollout, read_health};
use super::readiness;
use super::status::{self, PassView, RolloutView, Situation};
use super::writes::{
    add_finalizer, carry_out, current_conditions, publish_changes, publish_rollout,
    remove_finalizer,
};
use super::{Context, Error, FINALIZER, PAUSED_ANNOTATION};
use crate::engine::Scope;
use crate::intent::{AppRevision, Intent};
use crate::platform::TeardownError;
use crate::rollout::{self, RolloutState, Timing};

pub use super::status::PAUSED_CONDITION;
pub use super::writes::DUPLICATE_DELETED;

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
    let status = dp.status.clone().unwrap_or_default();
    if paused {
        // Removing the annotation is a watched change: nothing to do until then.
        let decision = status::decide(
            &Situation::Paused { deleting: false },
            current_conditions(dp),
        );
        return carry_out(ctx, &api, dp, status, decision).await;
    }

    if let Err(errors) = dp.validate() {
        let message = errors.to_string();
        let situation = Situation::Refused {
            reason: "InvalidSpec",
            message: &message,
        };
        let decision = status::decide(&situation, current_conditions(dp));
        return carry_out(ctx, &api, dp, status, decision).await;
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
    let outcome = match platform.apply(&scope, &intent, Some(&journal)).await {
        Ok(outcome) => outcome,
        Err(e) => {
            let message = e.to_string();
            let situation = if e.is_refusal() {
                Situation::Refused {
                    reason: status::refusal_reason(&e),
                    message: &message,
                }
            } else {
                Situation::Retrying { message: &message }
            };
            let decision = status::decide(&situation, current_conditions(dp));
            let done = carry_out(ctx, &api, dp, status, decision).await?;
            return if e.is_refusal() {
                Ok(done)
            } else {
                Err(Error::Pass(e))
            };
        }
    };
    let mut status = status;
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
    publish_changes(ctx, dp, &outcome.pass.report.applied).await;
    publish_rollout(ctx, dp, &rollout.decision).await;
    let refused = outcome
        .pass
        .report
        .is_stalled()
        .then(|| status::refused_message(&outcome.pass.report));
    let progress = status::progress_message(&outcome);
    let situation = Situation::Applied(PassView {
        groups: &outcome.verdicts,
        refused: refused.as_deref(),
        converged: outcome.is_converged(),
        progress: &progress,
        rollout: RolloutView {
            rolling: rollout.decision.state.rollout.is_some(),
            serving_changed: rollout.serving_changed,
            rolled_back: rollout.rolled_back,
            verdicts: &rollout.decision.verdicts,
            requeue_after: rollout.decision.requeue_after,
        },
        readiness: &readiness,
    });
    let decision = status::decide(&situation, current_conditions(dp));
    carry_out(ctx, &api, dp, status, decision).await
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
    let status = dp.status.clone().unwrap_or_default();
    if paused {
        let decision = status::decide(
            &Situation::Paused { deleting: true },
            current_conditions(dp),
        );
        return carry_out(ctx, api, dp, status, decision).await;
    }
    let platform = ctx.platforms.for_region(&dp.spec.region).await?;
    // `deletionPolicy: Retain` leaves the database and its network out of the teardown; the
    // platform tags them once everything else is gone.
    let journal = ctx.journal(dp, api);
    let teardown = platform
        .teardown(scope, &dp.spec, Some(&journal))
        .await
        .map_err(|e| match e {
            TeardownError::Pass(e) => Error::Pass(e),
            other => Error::TeardownPending(other.to_string()),
        })?;
    let (outcome, retained) = (teardown.pass, teardown.retained);
    publish_changes(ctx, dp, &outcome.report.applied).await;
    if outcome.found == 0 {
        let retained_message = (!retained.is_empty()).then(|| status::retained_message(&retained));
        info!(platform = %ObjectRef::from_obj(dp), retained = retained.len(), "nothing tagged for the platform remains: releasing the finalizer");
        let situation = Situation::Deleted {
            retained: retained_message.as_deref(),
            retained_count: retained.len(),
        };
        let decision = status::decide(&situation, current_conditions(dp));
        let done = carry_out(ctx, api, dp, status, decision).await?;
        remove_finalizer(api, dp).await?;
        ctx.forget_journal(dp);
        return Ok(done);
    }
    let refused = outcome
        .report
        .is_stalled()
        .then(|| status::refused_message(&outcome.report));
    let situation = Situation::Deleting {
        remaining: outcome.found,
        refused: refused.as_deref(),
    };
    let decision = status::decide(&situation, current_conditions(dp));
    carry_out(ctx, api, dp, status, decision).await
}
