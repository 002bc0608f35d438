//! Whether the platform serves, decided without I/O: from the active revision's serving health
//! read after a pass (healthy targets against the scaling group's minimum), the first deploy
//! persisted in `status.app.firstDeploy`, the conditions already on the object and the clock,
//! the `Ready` / `Reconciling` / `Stalled` verdicts of a steady pass, the `ComputeReady` verdict,
//! the event to publish on a transition, when to look again, and the first deploy to persist.
//!
//! | the active revision | Ready | Reconciling | Stalled | ComputeReady |
//! |---|---|---|---|---|
//! | enough healthy targets | True `Reconciled` | False | False | True `Available` |
//! | too few, waiting | False `WaitingForHealthyTargets` | True | False | False `InstancesUnhealthy` |
//! | too few after the rollout timeout of a first deploy | False `FirstDeployUnhealthy` | False | True | False `InstancesUnhealthy` |
//! | health unreadable (retrying) | False `HealthUnknown` | True | False | kept |
//! | health read refused | False `AwsRefused` | False | True | kept |
//!
//! A platform whose engine reads no health (no AWS clients, no serving or compute family) is
//! `Ready` once AWS matches the spec, as before.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use plinth_crds::{FirstDeployStatus, condition_types};

use super::conditions::{Verdict, is_true};
use crate::engine::ActError;
use crate::intent::AppRevision;
use crate::rollout::ServingHealth;

/// Ready: AWS matches the spec and the active revision serves.
pub const RECONCILED: &str = "Reconciled";
/// Too few of the active revision's targets are healthy; the operator keeps looking.
pub const WAITING_FOR_HEALTHY_TARGETS: &str = "WaitingForHealthyTargets";
/// The first revision did not serve within the rollout timeout.
pub const FIRST_DEPLOY_UNHEALTHY: &str = "FirstDeployUnhealthy";
/// `ComputeReady`: the resources exist but too few instances are healthy targets.
pub const INSTANCES_UNHEALTHY: &str = "InstancesUnhealthy";
/// The event when a platform that was `Ready` loses healthy targets.
pub const SERVING_DEGRADED: &str = "ServingDegraded";
/// The targets' health could not be read (AWS did not answer); the pass is retried.
pub const HEALTH_UNKNOWN: &str = "HealthUnknown";
/// AWS refused to tell the targets' health (permissions).
pub const AWS_REFUSED: &str = "AwsRefused";
/// `ComputeReady` with every compute resource in place.
pub const AVAILABLE: &str = "Available";

/// What the controller learnt about the active revision's serving after the pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Not read: a rollout is under way or was rolled back, the engine has no AWS clients, or
    /// the pass found no target group and scaling group of the active revision.
    NotRead,
    /// Read.
    Read(ServingHealth),
    /// AWS's answer was an error.
    Unreadable(ActError),
}

/// Everything [`judge`] decides from.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// The revision that serves all traffic after this pass (`None` only for a state the
    /// rollout has not decided, which makes the judgement a no-op).
    pub active: Option<&'a AppRevision>,
    /// The platform had no active revision before this pass: its first deploy starts now.
    pub new_platform: bool,
    /// `status.app.firstDeploy` before this pass.
    pub first_deploy: Option<&'a FirstDeployStatus>,
    /// AWS matches the spec and no rollout is under way or rolled back: `Ready` is judged.
    pub steady: bool,
    /// The pass's own `ComputeReady` verdict (resources only).
    pub compute: Option<&'a Verdict>,
    /// The active revision's serving health.
    pub health: &'a Health,
    /// The conditions on the object before this pass (for transitions).
    pub conditions: &'a [Condition],
    /// How long a first deploy may take to serve ([`crate::rollout::Timing::timeout`]).
    pub timeout: Duration,
    /// Now.
    pub now: Timestamp,
}

/// What to do with the pass's `ComputeReady` verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComputeVerdict {
    /// Keep the pass's (its resources are not all in place, or the health was not read).
    Pass,
    /// Replace it: the resources are in place and this says whether the instances serve.
    Replace(Verdict),
    /// Leave it out, so the condition keeps its value: the health could not be read this
    /// time, and the resources alone would say True.
    Unjudged,
}

impl ComputeVerdict {
    /// Applies the decision to a pass's verdicts.
    pub fn apply(&self, verdicts: &mut Vec<Verdict>, condition: &str) {
        match self {
            Self::Pass => {}
            Self::Replace(verdict) => {
                verdicts.retain(|v| v.type_ != condition);
                verdicts.push(verdict.clone());
            }
            Self::Unjudged => verdicts.retain(|v| v.type_ != condition),
        }
    }
}

/// When to look again after a steady pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// At the resync interval (jittered).
    Resync,
    /// Soon, with the controller's growing progress wait.
    Progress,
    /// After this long (at least the progress interval): a stalled first deploy is still
    /// polled, so a fix that arrives without a spec change (instances replaced) is seen.
    After(Duration),
}

/// An event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Warning (a person should look) or Normal.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// The note.
    pub note: String,
}

/// The verdicts of a steady pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overall {
    /// `Ready`, `Reconciling`, `Stalled`.
    pub verdicts: Vec<Verdict>,
    /// The event of this transition, if it is one.
    pub event: Option<Notice>,
    /// When to look again.
    pub wait: Wait,
    /// The metrics label of the pass: `ready`, `progressing` or `stalled`.
    pub outcome: &'static str,
}

/// The judgement of one pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Readiness {
    /// `status.app.firstDeploy` to write.
    pub first_deploy: Option<FirstDeployStatus>,
    /// What becomes of the pass's `ComputeReady`.
    pub compute: ComputeVerdict,
    /// `Ready` / `Reconciling` / `Stalled` when the pass was steady.
    pub overall: Option<Overall>,
}

/// The judgement of one pass; see the module's table.
pub fn judge(input: &Input<'_>) -> Readiness {
    let Some(active) = input.active else {
        return Readiness {
            first_deploy: input.first_deploy.cloned(),
            compute: ComputeVerdict::Pass,
            overall: None,
        };
    };
    let mut first_deploy = track_first_deploy(input, active);
    let compute_in_place = input.compute.is_some_and(|v| v.status);
    let was_ready = is_true(input.conditions, condition_types::READY).unwrap_or(false);

    let (compute, overall) = match input.health {
        Health::NotRead => {
            let overall = input.steady.then(|| {
                ready(
                    "every AWS resource exists and matches the spec".to_owned(),
                    "the platform matches its spec".to_owned(),
                    was_ready,
                )
            });
            (ComputeVerdict::Pass, overall)
        }
        Health::Read(health) if health.serves() => {
            let compute = if compute_in_place {
                ComputeVerdict::Replace(Verdict::new(
                    crate::compute::CONDITION,
                    true,
                    AVAILABLE,
                    format!(
                        "every resource exists and matches the spec; {}",
                        health.summary()
                    ),
                ))
            } else {
                ComputeVerdict::Pass
            };
            let overall = input.steady.then(|| {
                ready(
                    format!(
                        "every AWS resource exists and matches the spec; {}",
                        health.summary()
                    ),
                    format!(
                        "the platform matches its spec and serves: {}",
                        health.summary()
                    ),
                    was_ready,
                )
            });
            (compute, overall)
        }
        Health::Read(health) => {
            let why = health.explain();
            let compute = if compute_in_place {
                ComputeVerdict::Replace(Verdict::new(
                    crate::compute::CONDITION,
                    false,
                    INSTANCES_UNHEALTHY,
                    format!("version {} does not serve: {why}", active.version),
                ))
            } else {
                ComputeVerdict::Pass
            };
            let overall = input
                .steady
                .then(|| not_serving(input, active, first_deploy.as_ref(), &why, was_ready));
            (compute, overall)
        }
        Health::Unreadable(error) => {
            let compute = if compute_in_place {
                ComputeVerdict::Unjudged
            } else {
                ComputeVerdict::Pass
            };
            let overall = input.steady.then(|| unreadable(input, error));
            (compute, overall)
        }
    };
    // Ready once: the first deploy is over, and a later loss of targets never stalls.
    if overall.as_ref().is_some_and(|o| o.outcome == "ready") {
        first_deploy = None;
    }
    Readiness {
        first_deploy,
        compute,
        overall,
    }
}

/// The first deploy to carry on: started for a new platform, restarted for another active
/// revision, its clock started when the revision's groups are first read.
fn track_first_deploy(input: &Input<'_>, active: &AppRevision) -> Option<FirstDeployStatus> {
    let mut first_deploy = if input.new_platform {
        Some(FirstDeployStatus {
            revision: active.id.clone(),
            started_at: None,
        })
    } else {
        input.first_deploy.cloned()
    };
    if let Some(first) = first_deploy.as_mut() {
        if first.revision != active.id {
            first.revision.clone_from(&active.id);
            first.started_at = None;
        }
        let readable = first
            .started_at
            .as_deref()
            .is_some_and(|t| t.parse::<Timestamp>().is_ok());
        if matches!(input.health, Health::Read(_)) && !readable {
            first.started_at = Some(input.now.to_string());
        }
    }
    first_deploy
}

fn ready(message: String, note: String, was_ready: bool) -> Overall {
    Overall {
        verdicts: vec![
            Verdict::new(condition_types::READY, true, RECONCILED, message),
            Verdict::new(condition_types::RECONCILING, false, RECONCILED, ""),
            Verdict::new(condition_types::STALLED, false, RECONCILED, ""),
        ],
        event: (!was_ready).then_some(Notice {
            warning: false,
            reason: "Ready",
            note,
        }),
        wait: Wait::Resync,
        outcome: "ready",
    }
}

fn not_serving(
    input: &Input<'_>,
    active: &AppRevision,
    first_deploy: Option<&FirstDeployStatus>,
    why: &str,
    was_ready: bool,
) -> Overall {
    let waited = first_deploy
        .and_then(|f| f.started_at.as_deref())
        .and_then(|t| t.parse::<Timestamp>().ok())
        .map(|started| elapsed(started, input.now));
    if waited.is_some_and(|w| w >= input.timeout) {
        let message = format!(
            "version {} has not served within {}s of its first deploy: {why}",
            active.version,
            input.timeout.as_secs()
        );
        let already = is_true(input.conditions, condition_types::STALLED).unwrap_or(false)
            && reason_of(input.conditions, condition_types::STALLED)
                == Some(FIRST_DEPLOY_UNHEALTHY);
        return Overall {
            verdicts: vec![
                Verdict::new(
                    condition_types::READY,
                    false,
                    FIRST_DEPLOY_UNHEALTHY,
                    message.clone(),
                ),
                Verdict::new(
                    condition_types::RECONCILING,
                    false,
                    FIRST_DEPLOY_UNHEALTHY,
                    "",
                ),
                Verdict::new(
                    condition_types::STALLED,
                    true,
                    FIRST_DEPLOY_UNHEALTHY,
                    message.clone(),
                ),
            ],
            event: (!already).then_some(Notice {
                warning: true,
                reason: FIRST_DEPLOY_UNHEALTHY,
                note: message,
            }),
            // Still polled, so a fix that needs no spec change (instances replaced) is seen.
            wait: Wait::After(input.timeout / 10),
            outcome: "stalled",
        };
    }
    let message = match waited {
        Some(waited) => format!(
            "waiting for healthy targets (first deploy of version {}, {}s of at most {}s): {why}",
            active.version,
            waited.as_secs(),
            input.timeout.as_secs()
        ),
        None => format!(
            "waiting for healthy targets of version {}: {why}",
            active.version
        ),
    };
    Overall {
        verdicts: vec![
            Verdict::new(
                condition_types::READY,
                false,
                WAITING_FOR_HEALTHY_TARGETS,
                message.clone(),
            ),
            Verdict::new(
                condition_types::RECONCILING,
                true,
                WAITING_FOR_HEALTHY_TARGETS,
                message.clone(),
            ),
            Verdict::new(
                condition_types::STALLED,
                false,
                WAITING_FOR_HEALTHY_TARGETS,
                "",
            ),
        ],
        event: was_ready.then_some(Notice {
            warning: true,
            reason: SERVING_DEGRADED,
            note: message,
        }),
        wait: Wait::Progress,
        outcome: "progressing",
    }
}

fn unreadable(input: &Input<'_>, error: &ActError) -> Overall {
    if matches!(error, ActError::Refused { .. }) {
        let message = format!("reading the targets' health: {error}");
        let already = is_true(input.conditions, condition_types::STALLED).unwrap_or(false)
            && reason_of(input.conditions, condition_types::STALLED) == Some(AWS_REFUSED);
        return Overall {
            verdicts: vec![
                Verdict::new(condition_types::READY, false, AWS_REFUSED, message.clone()),
                Verdict::new(condition_types::RECONCILING, false, AWS_REFUSED, ""),
                Verdict::new(condition_types::STALLED, true, AWS_REFUSED, message.clone()),
            ],
            event: (!already).then_some(Notice {
                warning: true,
                reason: AWS_REFUSED,
                note: message,
            }),
            wait: Wait::Resync,
            outcome: "stalled",
        };
    }
    let message = format!("could not read the targets' health: {error}");
    Overall {
        verdicts: vec![
            Verdict::new(
                condition_types::READY,
                false,
                HEALTH_UNKNOWN,
                message.clone(),
            ),
            Verdict::new(condition_types::RECONCILING, true, HEALTH_UNKNOWN, message),
            Verdict::new(condition_types::STALLED, false, HEALTH_UNKNOWN, ""),
        ],
        event: None,
        wait: Wait::Progress,
        outcome: "progressing",
    }
}

fn reason_of<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.reason.as_str())
}

/// Time since `started`; a start in the future (clock skew between replicas) counts as zero.
fn elapsed(started: Timestamp, now: Timestamp) -> Duration {
    let span: SignedDuration = now.duration_since(started);
    Duration::try_from(span).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests;
