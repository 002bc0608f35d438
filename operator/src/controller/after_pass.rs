//! What a reconcile reads from AWS after its pass, besides the pass itself: the rollout's gates
//! (when a rollout is under way), from which the rollout decides again, and the active
//! revision's serving health (when none is).

use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use plinth_crds::DataPlatform;
use tracing::debug;

use super::readiness::Health;
use crate::intent::AppRevision;
use crate::platform::{PassOutcome, Platform};
use crate::rollout::{self, Decision, Timing};

/// The rollout's decision for a pass: the one made before it (which the pass built), moved on
/// by what the gates observed after it.
pub(super) struct RolloutPass {
    /// The final decision; its events include those of the decision before the pass.
    pub decision: Decision,
    /// The decision asks for another serving state than the pass built (a step, a rollback,
    /// success): the next pass should come at once.
    pub serving_changed: bool,
    /// The spec's revision failed its rollout: blue serves until the spec changes.
    pub rolled_back: bool,
}

/// Observes the gates after the pass when a rollout is under way and decides again.
pub(super) async fn judge_rollout(
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
pub(super) async fn read_health(
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
