//! The blue/green rollout as a pure state machine: from the spec's revision, the rollout state
//! persisted in `status.app`, and (after a pass) what the gates observed, it decides which
//! [`Serving`] the next pass builds, the state to persist, the events and conditions to report,
//! and when to look again. No AWS and no clock of its own, so every transition is unit-tested.
//!
//! States of a rollout (blue serves, green is the spec's new revision):
//!
//! - no rollout: `Steady(active)`.
//! - starting (`weight 0`): green's scaling group and target group are created and must become
//!   healthy; no traffic yet.
//! - step `i` (`weight = steps[i]`): held `hold` from `started`, advancing only with every green
//!   target healthy and no alarm firing.
//! - after the last step has held: green becomes the active revision, `Steady(green)`, blue is
//!   removed by the engine.
//! - any failure: `Steady(blue)`, green removed, the revision remembered as failed.
//!
//! A first deploy that never served (`status.app.firstDeploy` present) has no blue to protect:
//! a new revision replaces it at once, `Steady(new)`, without a rollout (a rollout beside a
//! revision that serves nothing would be rolled back by that revision's own alarms).

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use plinth_crds::{AppStatus, RevisionStatus, RolloutSpec, RolloutStatus, RolloutStrategy};

use super::health::{TargetHealth, why_targets};
use crate::intent::{AppRevision, Serving};

/// The condition that says whether the last rollout failed and was rolled back.
pub const ROLLOUT_FAILED: &str = "RolloutFailed";
/// The condition that says whether a rollout is under way.
pub const ROLLOUT_PROGRESSING: &str = "RolloutProgressing";

/// A rollout under way, as persisted in `status.app.rollout`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// Id of the revision being rolled out (green).
    pub target: String,
    /// Version of green, for status and events.
    pub target_version: String,
    /// Index of the current step in `spec.app.rollout.steps`.
    pub step: usize,
    /// Percent of traffic green gets now; 0 while green is starting.
    pub weight: i32,
    /// When the current step (or the start) began.
    pub started: Timestamp,
}

/// Everything the rollout carries between passes (and across operator restarts).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RolloutState {
    /// The revision that serves all traffic outside a rollout, and blue during one. `None`
    /// before the first pass of a new platform.
    pub active: Option<AppRevision>,
    /// The rollout under way.
    pub rollout: Option<InFlight>,
    /// Id of the revision whose rollout failed, not tried again while the spec names it.
    pub failed: Option<String>,
    /// The active revision is a first deploy that has never served (`status.app.firstDeploy`
    /// is present; the controller's readiness keeps it): a new revision replaces it directly.
    pub unserved: bool,
}

impl RolloutState {
    /// The state persisted in `status.app`; a missing or unreadable step start counts from
    /// `now` (the step is then held again in full rather than cut short).
    pub fn from_status(app: Option<&AppStatus>, now: Timestamp) -> Self {
        let Some(app) = app else {
            return Self::default();
        };
        let active = app.active_revision.as_ref().map(|r| AppRevision {
            id: r.id.clone(),
            version: r.version.clone(),
            artifact: r.artifact.clone(),
            image_id: r.image_id.clone(),
            instance_type: r.instance_type.clone(),
        });
        let rollout = app.rollout.as_ref().and_then(|r| {
            Some(InFlight {
                target: r.target_revision.clone()?,
                target_version: r.target_version.clone(),
                step: usize::try_from(r.step).unwrap_or(0),
                weight: r.weight_percent.clamp(0, 100),
                started: r
                    .step_started_at
                    .as_deref()
                    .and_then(|t| t.parse::<Timestamp>().ok())
                    .unwrap_or(now),
            })
        });
        Self {
            active,
            rollout,
            failed: app.failed_revision.clone(),
            unserved: app.first_deploy.is_some(),
        }
    }

    /// Writes the state into `status.app` (all but `firstDeploy`, which the controller's
    /// readiness keeps).
    pub fn write_status(&self, app: &mut AppStatus) {
        app.active_version = self.active.as_ref().map(|r| r.version.clone());
        app.active_revision = self.active.as_ref().map(|r| RevisionStatus {
            id: r.id.clone(),
            version: r.version.clone(),
            artifact: r.artifact.clone(),
            image_id: r.image_id.clone(),
            instance_type: r.instance_type.clone(),
        });
        app.rollout = self.rollout.as_ref().map(|r| RolloutStatus {
            target_version: r.target_version.clone(),
            weight_percent: r.weight,
            step: i32::try_from(r.step).unwrap_or(i32::MAX),
            target_revision: Some(r.target.clone()),
            step_started_at: Some(r.started.to_string()),
        });
        app.failed_revision = self.failed.clone();
    }
}

/// How long steps last, from `spec.app.rollout` (scaled in tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long each step holds with healthy targets before the next.
    pub hold: Duration,
    /// How long green may take to become healthy in one step (or at the start) before the
    /// rollout fails.
    pub timeout: Duration,
    /// How often to look at the gates while waiting (a target can fail mid-step).
    pub poll: Duration,
}

impl Timing {
    /// The timing `rollout` asks for, every duration multiplied by `scale` (1 in production; a
    /// test may shorten the 30 s minimum step this way without weakening validation). The
    /// timeout covers an instance's boot and its health checks: three steps, at least 10 min.
    pub fn of(rollout: &RolloutSpec, scale: f64, poll: Duration) -> Self {
        let step = Duration::from_secs(u64::try_from(rollout.step_seconds).unwrap_or(0));
        let timeout = (step * 3).max(Duration::from_secs(600));
        let scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        let hold = step.mul_f64(scale);
        Self {
            hold,
            timeout: timeout.mul_f64(scale),
            // A failure mid-step is noticed within a tenth of the step.
            poll: poll.max(hold / 10),
        }
    }
}

/// Green's targets as the load balancer sees them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GreenTargets {
    /// Green's target group and scaling group exist.
    pub found: bool,
    /// The scaling group's desired capacity.
    pub desired: i32,
    /// Targets registered in green's target group (any state).
    pub registered: usize,
    /// Targets in state `healthy`.
    pub healthy: usize,
    /// Targets in state `unhealthy` (failed their health checks).
    pub unhealthy: usize,
    /// The registered targets that are not healthy (`initial`, `unhealthy`, `unavailable`), with
    /// AWS's reason and description, for the failure's message.
    pub not_healthy: Vec<TargetHealth>,
}

impl GreenTargets {
    /// Every target the scaling group should have is registered and healthy.
    pub fn ready(&self) -> bool {
        let want = usize::try_from(self.desired.max(1)).unwrap_or(1);
        self.found && self.unhealthy == 0 && self.healthy >= want
    }

    fn describe(&self) -> String {
        if !self.found {
            return "green's target group or scaling group not found yet".into();
        }
        let mut text = format!(
            "{}/{} green target(s) healthy, {} unhealthy, {} registered",
            self.healthy, self.desired, self.unhealthy, self.registered
        );
        let why = why_targets(&self.not_healthy);
        if !why.is_empty() {
            text.push_str(": ");
            text.push_str(&why.join("; "));
        }
        text
    }
}

/// What the gates observed after a pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gates {
    /// The pass found AWS already matching its serving state (it planned nothing), so the
    /// listener's weights are the ones in status. A rollout advances only then.
    pub applied: bool,
    /// Green's targets.
    pub green: GreenTargets,
    /// Names of the platform's alarms in state ALARM (scaling alarms left out).
    pub alarms_firing: Vec<String>,
}

/// A rollout event for the object's event stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutEvent {
    /// A new revision started rolling out.
    Started {
        /// The version rolling out.
        version: String,
        /// The version serving until now.
        from: String,
    },
    /// Green's traffic moved to the next step.
    StepAdvanced {
        /// The step now in effect, from 0.
        step: usize,
        /// Green's weight now.
        weight: i32,
    },
    /// Green took all traffic and became the active revision.
    Succeeded {
        /// The version now active.
        version: String,
    },
    /// The rollout failed; all traffic went back to blue.
    Failed {
        /// CamelCase reason.
        reason: &'static str,
        /// What failed.
        message: String,
    },
    /// The spec went back to the active revision (or on to another one) mid-rollout.
    Cancelled {
        /// The version that was rolling out.
        version: String,
    },
    /// A first deploy that never served was replaced by the spec's new revision, directly.
    Replaced {
        /// The version deployed now.
        version: String,
        /// The version that never served.
        from: String,
    },
}

impl RolloutEvent {
    /// The event's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Started { .. } => "RolloutStarted",
            Self::StepAdvanced { .. } => "RolloutStepAdvanced",
            Self::Succeeded { .. } => "RolloutSucceeded",
            Self::Failed { .. } => "RolloutFailed",
            Self::Cancelled { .. } => "RolloutCancelled",
            Self::Replaced { .. } => "FirstDeployReplaced",
        }
    }

    /// Whether a person should look at it (a Warning event).
    pub fn is_warning(&self) -> bool {
        matches!(self, Self::Failed { .. })
    }

    /// The event's note.
    pub fn note(&self) -> String {
        match self {
            Self::Started { version, from } => {
                format!("rolling out version {version} (blue/green, from {from})")
            }
            Self::StepAdvanced { step, weight } => {
                format!(
                    "step {}: the new version takes {weight}% of traffic",
                    step + 1
                )
            }
            Self::Succeeded { version } => {
                format!("version {version} takes all traffic; the old version is being removed")
            }
            Self::Failed { message, .. } => {
                format!("{message}; all traffic returned to the running version")
            }
            Self::Cancelled { version } => {
                format!("rollout of version {version} cancelled: the spec no longer asks for it")
            }
            Self::Replaced { version, from } => format!(
                "version {version} replaces version {from}, which never served: deployed \
                 directly, without a blue/green rollout"
            ),
        }
    }
}

/// A condition the rollout reports: type, status, reason, message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutVerdict {
    /// `RolloutFailed` or `RolloutProgressing`.
    pub type_: &'static str,
    /// Whether it holds.
    pub status: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// A sentence.
    pub message: String,
}

/// What to do this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The serving state the pass builds.
    pub serving: Serving,
    /// The state to persist.
    pub state: RolloutState,
    /// Events to publish.
    pub events: Vec<RolloutEvent>,
    /// Conditions to set; those not named keep their value.
    pub verdicts: Vec<RolloutVerdict>,
    /// When to look again while a rollout is under way (`None`: no rollout, normal resync).
    pub requeue_after: Option<Duration>,
}

/// One decision. Without `gates` (before a pass) it only reconciles the persisted state with
/// the spec: first deploy, a new revision to roll out, a rollout superseded or cancelled. With
/// `gates` (after the pass) it also moves the rollout on, or rolls it back. Deciding twice on
/// the same inputs changes nothing the second time, so the controller can decide before and
/// after its pass.
pub fn decide(
    spec: &AppRevision,
    rollout: &RolloutSpec,
    state: &RolloutState,
    timing: Timing,
    gates: Option<&Gates>,
    now: Timestamp,
) -> Decision {
    match rollout.strategy {
        RolloutStrategy::BlueGreen => blue_green(spec, rollout, state, timing, gates, now),
    }
}

fn blue_green(
    spec: &AppRevision,
    rollout: &RolloutSpec,
    state: &RolloutState,
    timing: Timing,
    gates: Option<&Gates>,
    now: Timestamp,
) -> Decision {
    let mut events = Vec::new();
    let mut verdicts = Vec::new();
    let mut next = state.clone();

    let Some(active) = state.active.clone() else {
        // A new platform: the spec's revision is the first one, no rollout.
        next.active = Some(spec.clone());
        next.rollout = None;
        next.failed = None;
        return steady(spec.clone(), next, events, verdicts);
    };

    if active.id == spec.id {
        if let Some(inflight) = &state.rollout {
            events.push(RolloutEvent::Cancelled {
                version: inflight.target_version.clone(),
            });
        }
        next.rollout = None;
        if next.failed.take().is_some() {
            verdicts.push(RolloutVerdict {
                type_: ROLLOUT_FAILED,
                status: false,
                reason: "Reverted",
                message: format!("the spec is back at the running version {}", active.version),
            });
        }
        return steady(active, next, events, verdicts);
    }

    if state.unserved {
        // Nothing serves yet, so nothing to roll out beside: the spec's revision replaces the
        // first deploy at once (the controller's readiness restarts the wait for it).
        if let Some(inflight) = &state.rollout {
            events.push(RolloutEvent::Cancelled {
                version: inflight.target_version.clone(),
            });
        }
        events.push(RolloutEvent::Replaced {
            version: spec.version.clone(),
            from: active.version.clone(),
        });
        if next.failed.take().is_some() {
            verdicts.push(RolloutVerdict {
                type_: ROLLOUT_FAILED,
                status: false,
                reason: "Replaced",
                message: format!("version {} deployed directly", spec.version),
            });
        }
        next.active = Some(spec.clone());
        next.rollout = None;
        return steady(spec.clone(), next, events, verdicts);
    }

    if state.failed.as_deref() == Some(spec.id.as_str()) {
        // Rolled back already: keep serving blue until the spec names another revision. The
        // RolloutFailed condition set at the rollback stays as it is.
        next.rollout = None;
        return steady(active, next, events, verdicts);
    }

    let inflight = match &state.rollout {
        Some(inflight) if inflight.target == spec.id => inflight.clone(),
        other => {
            if let Some(old) = other {
                events.push(RolloutEvent::Cancelled {
                    version: old.target_version.clone(),
                });
            }
            events.push(RolloutEvent::Started {
                version: spec.version.clone(),
                from: active.version.clone(),
            });
            verdicts.push(RolloutVerdict {
                type_: ROLLOUT_FAILED,
                status: false,
                reason: "RolloutStarted",
                message: format!("rolling out version {}", spec.version),
            });
            next.failed = None;
            InFlight {
                target: spec.id.clone(),
                target_version: spec.version.clone(),
                step: 0,
                weight: 0,
                started: now,
            }
        }
    };

    let Some(gates) = gates else {
        return rolling(
            active, spec, inflight, next, events, verdicts, rollout, timing, now,
        );
    };
    advance(
        active, spec, inflight, next, events, verdicts, rollout, timing, gates, now,
    )
}

#[allow(clippy::too_many_arguments)]
fn advance(
    active: AppRevision,
    green: &AppRevision,
    mut inflight: InFlight,
    mut next: RolloutState,
    mut events: Vec<RolloutEvent>,
    mut verdicts: Vec<RolloutVerdict>,
    rollout: &RolloutSpec,
    timing: Timing,
    gates: &Gates,
    now: Timestamp,
) -> Decision {
    let elapsed = elapsed(inflight.started, now);
    let taking_traffic = inflight.weight > 0;

    // Once green takes traffic, a failed target or a firing alarm is green's doing: roll back
    // at once. While it only starts, an unhealthy target may still be booting: wait.
    let failure = if taking_traffic && gates.green.unhealthy > 0 {
        Some(("TargetsUnhealthy", gates.green.describe()))
    } else if taking_traffic && !gates.alarms_firing.is_empty() {
        Some((
            "AlarmFiring",
            format!("alarm(s) firing: {}", gates.alarms_firing.join(", ")),
        ))
    } else if elapsed >= timing.timeout && !gates.green.ready() {
        Some((
            "HealthTimeout",
            format!(
                "green not healthy within {}s: {}",
                timing.timeout.as_secs(),
                gates.green.describe()
            ),
        ))
    } else if elapsed >= timing.timeout && !gates.alarms_firing.is_empty() {
        Some((
            "AlarmFiring",
            format!(
                "alarm(s) still firing after {}s: {}",
                timing.timeout.as_secs(),
                gates.alarms_firing.join(", ")
            ),
        ))
    } else {
        None
    };
    if let Some((reason, detail)) = failure {
        let message = format!("rollout of version {} failed: {detail}", green.version);
        events.push(RolloutEvent::Failed {
            reason,
            message: message.clone(),
        });
        verdicts.push(RolloutVerdict {
            type_: ROLLOUT_FAILED,
            status: true,
            reason,
            message,
        });
        verdicts.push(RolloutVerdict {
            type_: ROLLOUT_PROGRESSING,
            status: false,
            reason: "RolledBack",
            message: format!("all traffic back on version {}", active.version),
        });
        next.rollout = None;
        next.failed = Some(green.id.clone());
        return Decision {
            serving: Serving::Steady(active),
            state: next,
            events,
            verdicts,
            requeue_after: None,
        };
    }

    let gates_pass = gates.applied && gates.green.ready() && gates.alarms_firing.is_empty();
    let held = !taking_traffic || elapsed >= timing.hold;
    if gates_pass && held {
        let steps = &rollout.steps;
        let next_step = if taking_traffic { inflight.step + 1 } else { 0 };
        match steps.get(next_step) {
            Some(&weight) => {
                inflight.step = next_step;
                inflight.weight = weight.clamp(1, 100);
                inflight.started = now;
                events.push(RolloutEvent::StepAdvanced {
                    step: next_step,
                    weight: inflight.weight,
                });
            }
            _ => {
                // The last step held: green is the active revision now.
                events.push(RolloutEvent::Succeeded {
                    version: green.version.clone(),
                });
                verdicts.push(RolloutVerdict {
                    type_: ROLLOUT_FAILED,
                    status: false,
                    reason: "Succeeded",
                    message: format!("version {} rolled out", green.version),
                });
                verdicts.push(RolloutVerdict {
                    type_: ROLLOUT_PROGRESSING,
                    status: false,
                    reason: "Succeeded",
                    message: format!("version {} takes all traffic", green.version),
                });
                next.active = Some(green.clone());
                next.rollout = None;
                next.failed = None;
                return Decision {
                    serving: Serving::Steady(green.clone()),
                    state: next,
                    events,
                    verdicts,
                    requeue_after: None,
                };
            }
        }
    }
    rolling(
        active, green, inflight, next, events, verdicts, rollout, timing, now,
    )
}

/// The decision to keep rolling with `inflight` as it stands.
#[allow(clippy::too_many_arguments)]
fn rolling(
    active: AppRevision,
    green: &AppRevision,
    inflight: InFlight,
    mut next: RolloutState,
    events: Vec<RolloutEvent>,
    mut verdicts: Vec<RolloutVerdict>,
    rollout: &RolloutSpec,
    timing: Timing,
    now: Timestamp,
) -> Decision {
    let elapsed = elapsed(inflight.started, now);
    let message = if inflight.weight == 0 {
        format!(
            "starting version {}: waiting for its targets to be healthy",
            green.version
        )
    } else {
        format!(
            "version {} at step {}/{}: {}% of traffic",
            green.version,
            inflight.step + 1,
            rollout.steps.len(),
            inflight.weight
        )
    };
    verdicts.push(RolloutVerdict {
        type_: ROLLOUT_PROGRESSING,
        status: true,
        reason: "Progressing",
        message,
    });
    // Look again when the step's hold ends, or sooner to catch a failing target.
    let until_hold = timing.hold.saturating_sub(elapsed);
    let requeue = if inflight.weight > 0 && !until_hold.is_zero() {
        until_hold.min(timing.poll)
    } else {
        timing.poll
    };
    let serving = Serving::Rolling {
        blue: active,
        green: green.clone(),
        weight: inflight.weight,
    };
    next.rollout = Some(inflight);
    Decision {
        serving,
        state: next,
        events,
        verdicts,
        requeue_after: Some(requeue),
    }
}

fn steady(
    revision: AppRevision,
    state: RolloutState,
    events: Vec<RolloutEvent>,
    mut verdicts: Vec<RolloutVerdict>,
) -> Decision {
    if !events.is_empty() || verdicts.iter().any(|v| v.type_ == ROLLOUT_FAILED) {
        verdicts.push(RolloutVerdict {
            type_: ROLLOUT_PROGRESSING,
            status: false,
            reason: "Idle",
            message: format!("version {} takes all traffic", revision.version),
        });
    }
    Decision {
        serving: Serving::Steady(revision),
        state,
        events,
        verdicts,
        requeue_after: None,
    }
}

/// Time since `started`; a start in the future (clock skew between replicas) counts as zero.
fn elapsed(started: Timestamp, now: Timestamp) -> Duration {
    let span: SignedDuration = now.duration_since(started);
    Duration::try_from(span).unwrap_or(Duration::ZERO)
}
