//! Blue/green rollout of a new app revision: which revisions serve and with what share of the
//! traffic on each pass, moved step by step on healthy targets and rolled back on failure.
//!
//! - [`machine`]: the pure state machine (spec revision + persisted state + gates → the pass's
//!   [`Serving`](crate::intent::Serving), the new state, events, conditions, requeue).
//! - [`gates`]: reads green's target health and the firing alarms from AWS after a pass, and
//!   the active revision's serving health outside a rollout.
//! - [`health`]: target health and scaling activities in AWS's words, and the sentences that
//!   say why a revision does not serve (pure).
//!
//! All state lives in `status.app` (and the revisions' tags in AWS), so a restarted operator
//! resumes a rollout at the step it was in.

pub mod gates;
pub mod health;
pub mod machine;

#[cfg(test)]
mod tests;

pub use gates::{IAM_ACTIONS, observe, serving_health};
pub use health::{ScalingActivity, ServingHealth, TargetHealth};
pub use machine::{
    Decision, Gates, GreenTargets, ROLLOUT_FAILED, ROLLOUT_PROGRESSING, RolloutEvent, RolloutState,
    RolloutVerdict, Timing, decide,
};
