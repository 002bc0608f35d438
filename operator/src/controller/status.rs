//! The status decision: from what one reconcile found, the conditions to write, the events to
//! publish and when to look again. A pure function ([`decide`]) with a table-driven test of
//! every branch; [`super::reconcile`] gathers the inputs and carries the decision out.
//!
//! | situation | Ready | Reconciling | Stalled | requeue |
//! |---|---|---|---|---|
//! | paused (annotation) | kept | False `Paused` | kept | on a change |
//! | spec invalid, observe refused | False | False | True (reason) | on a change |
//! | pass failed, worth retrying | False `Retrying` | True | False | controller's backoff |
//! | AWS refused a change | False `AwsRefused` | False | True | resync |
//! | a rollout step applied | False `RollingOut` | True | False | the rollout's pace |
//! | the spec's version rolled back | False `RolloutFailed` | False | True | resync |
//! | converged, no rollout | [`super::readiness`]'s judgement (serving health) | | | its wait |
//! | progressing | False `Progressing` | True | False | growing progress wait |
//! | deleting | False `Deleting` | True | kept | progress wait (60 s when refused) |
//! | deleted, something retained | False `Retained` (and `DatabaseReady`) | kept | kept | on a change |

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use plinth_crds::condition_types::{READY, RECONCILING, STALLED};

use super::PAUSED_ANNOTATION;
use super::conditions::{self, Verdict};
use super::readiness::{Readiness, Wait};
use crate::engine::{ObservedResource, Report};
use crate::platform::{PassError, PassOutcome};
use crate::rollout::{self, RolloutVerdict};

/// The condition a paused platform carries.
pub const PAUSED_CONDITION: &str = "Paused";

/// An event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Warning (a person should look) or Normal.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: String,
    /// The action the event is about (`Reconcile`, `Delete`, `Pause`).
    pub action: &'static str,
    /// The note; never a secret value.
    pub note: String,
}

impl Event {
    fn new(warning: bool, reason: &str, action: &'static str, note: impl Into<String>) -> Self {
        Self {
            warning,
            reason: reason.to_owned(),
            action,
            note: note.into(),
        }
    }
}

/// When to look at the platform again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// Only on a watched change (of the object itself).
    AwaitChange,
    /// At the resync interval, jittered.
    Resync,
    /// Soon, with the controller's growing progress wait.
    Progress,
    /// After this long.
    After(Duration),
    /// After this long, but not sooner than the progress interval.
    AtLeastProgress(Duration),
    /// The controller's error backoff (the reconcile returns an error).
    Backoff,
}

/// What to do with the status and the events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Conditions to merge into the status; those not named keep their value.
    pub verdicts: Vec<Verdict>,
    /// Events to publish, in order.
    pub events: Vec<Event>,
    /// When to look again.
    pub requeue: Requeue,
    /// The metrics label of the reconcile (`ready`, `progressing`, `stalled`, `paused`,
    /// `deleted`, `error`).
    pub outcome: &'static str,
}

/// The rollout as the pass left it.
#[derive(Clone, Copy, Debug)]
pub struct RolloutView<'a> {
    /// A rollout is under way.
    pub rolling: bool,
    /// The decision after the pass asks for another serving state than the pass built.
    pub serving_changed: bool,
    /// The spec's version failed its rollout: the previous one serves.
    pub rolled_back: bool,
    /// The rollout's own conditions.
    pub verdicts: &'a [RolloutVerdict],
    /// The rollout's pace while it is under way.
    pub requeue_after: Option<Duration>,
}

/// One pass toward the spec, as the status needs it.
#[derive(Clone, Copy, Debug)]
pub struct PassView<'a> {
    /// One verdict per component group, as the pass judged them.
    pub groups: &'a [Verdict],
    /// What AWS refused, when it refused anything (the platform is stalled).
    pub refused: Option<&'a str>,
    /// AWS matches the spec: nothing planned, nothing on its way.
    pub converged: bool,
    /// What the pass did and what it waits for, in a sentence.
    pub progress: &'a str,
    /// The rollout.
    pub rollout: RolloutView<'a>,
    /// The serving judgement of the pass.
    pub readiness: &'a Readiness,
}

/// What one reconcile found.
#[derive(Clone, Copy, Debug)]
pub enum Situation<'a> {
    /// The paused annotation is set.
    Paused {
        /// The object is being deleted (the deletion waits too).
        deleting: bool,
    },
    /// The spec cannot be acted on as written (`InvalidSpec`), or AWS refused to be read
    /// (`AwsRefused`): stalled until the spec changes.
    Refused {
        /// CamelCase reason.
        reason: &'a str,
        /// What to change.
        message: &'a str,
    },
    /// The pass failed for a reason worth retrying (throttled, AWS unreachable).
    Retrying {
        /// The error.
        message: &'a str,
    },
    /// A pass toward the spec ran.
    Applied(PassView<'a>),
    /// A teardown pass ran and resources remain.
    Deleting {
        /// How many remain.
        remaining: usize,
        /// What AWS refused to delete, if anything.
        refused: Option<&'a str>,
    },
    /// Nothing of the platform remains in AWS: the finalizer goes.
    Deleted {
        /// What `deletionPolicy: Retain` kept, in a sentence (`None`: nothing kept).
        retained: Option<&'a str>,
        /// How many resources were kept.
        retained_count: usize,
    },
}

/// The status decision for `situation`, given the object's current conditions.
pub fn decide(situation: &Situation<'_>, current: &[Condition]) -> Decision {
    match *situation {
        Situation::Paused { deleting: true } => Decision {
            verdicts: vec![Verdict::new(
                RECONCILING,
                false,
                "Paused",
                format!("deletion waits: {PAUSED_ANNOTATION} is \"true\""),
            )],
            events: Vec::new(),
            requeue: Requeue::AwaitChange,
            outcome: "paused",
        },
        Situation::Paused { deleting: false } => {
            let already = conditions::is_true(current, PAUSED_CONDITION).unwrap_or(false);
            Decision {
                verdicts: vec![
                    Verdict::new(
                        RECONCILING,
                        false,
                        "Paused",
                        format!(
                            "{PAUSED_ANNOTATION} is \"true\": no AWS changes until it is removed"
                        ),
                    ),
                    Verdict::new(
                        PAUSED_CONDITION,
                        true,
                        "Paused",
                        format!("{PAUSED_ANNOTATION} is \"true\""),
                    ),
                ],
                events: if already {
                    Vec::new()
                } else {
                    vec![Event::new(
                        false,
                        "Paused",
                        "Pause",
                        "reconciling paused; no AWS changes until plinth.dev/paused is removed",
                    )]
                },
                requeue: Requeue::AwaitChange,
                outcome: "paused",
            }
        }
        Situation::Refused { reason, message } => Decision {
            verdicts: stalled(reason, message),
            events: vec![Event::new(true, reason, "Reconcile", message)],
            requeue: Requeue::AwaitChange,
            outcome: "stalled",
        },
        Situation::Retrying { message } => Decision {
            verdicts: vec![
                Verdict::new(READY, false, "Retrying", message),
                Verdict::new(RECONCILING, true, "Retrying", message),
                Verdict::new(STALLED, false, "Retrying", ""),
            ],
            events: Vec::new(),
            requeue: Requeue::Backoff,
            outcome: "error",
        },
        Situation::Applied(pass) => applied(&pass, current),
        Situation::Deleting { remaining, refused } => {
            let message = refused.map_or_else(
                || format!("{remaining} AWS resource(s) still being deleted"),
                str::to_owned,
            );
            Decision {
                verdicts: vec![
                    Verdict::new(READY, false, "Deleting", message.clone()),
                    Verdict::new(RECONCILING, true, "Deleting", message.clone()),
                ],
                events: match refused {
                    Some(_) => vec![Event::new(true, "DeleteRefused", "Delete", message)],
                    None => Vec::new(),
                },
                requeue: match refused {
                    // A refused delete (something outside Plinth uses the resource) is looked
                    // at again calmly, not at the progress pace.
                    Some(_) => Requeue::After(Duration::from_secs(60)),
                    None => Requeue::Progress,
                },
                outcome: if refused.is_some() {
                    "stalled"
                } else {
                    "progressing"
                },
            }
        }
        Situation::Deleted {
            retained,
            retained_count,
        } => {
            let mut decision = Decision {
                verdicts: Vec::new(),
                events: Vec::new(),
                requeue: Requeue::AwaitChange,
                outcome: "deleted",
            };
            if let Some(message) = retained {
                decision.verdicts = vec![
                    Verdict::new("DatabaseReady", false, "Retained", message),
                    Verdict::new(READY, false, "Retained", message),
                ];
                decision
                    .events
                    .push(Event::new(false, "Retained", "Delete", message));
            }
            let note = if retained.is_some() {
                format!(
                    "every AWS resource of the platform is gone except the {retained_count} retained"
                )
            } else {
                "every AWS resource of the platform is gone".to_owned()
            };
            decision
                .events
                .push(Event::new(false, "TornDown", "Delete", note));
            decision
        }
    }
}

/// `Ready` False, `Reconciling` False and `Stalled` True, for `reason`.
fn stalled(reason: &str, message: &str) -> Vec<Verdict> {
    vec![
        Verdict::new(READY, false, reason, message),
        Verdict::new(RECONCILING, false, reason, ""),
        Verdict::new(STALLED, true, reason, message),
    ]
}

/// `Ready` False and `Reconciling` True for `reason`: work is under way.
fn under_way(reason: &str, message: &str) -> [Verdict; 3] {
    [
        Verdict::new(READY, false, reason, message),
        Verdict::new(RECONCILING, true, reason, message),
        Verdict::new(STALLED, false, reason, ""),
    ]
}

fn rollout_message(verdicts: &[RolloutVerdict], type_: &str) -> Option<String> {
    verdicts
        .iter()
        .find(|v| v.type_ == type_)
        .map(|v| v.message.clone())
}

fn applied(pass: &PassView<'_>, current: &[Condition]) -> Decision {
    let mut verdicts = pass.groups.to_vec();
    pass.readiness
        .compute
        .apply(&mut verdicts, crate::compute::CONDITION);
    verdicts.extend(
        pass.rollout
            .verdicts
            .iter()
            .map(|v| Verdict::new(v.type_, v.status, v.reason, v.message.clone())),
    );
    if conditions::is_true(current, PAUSED_CONDITION).unwrap_or(false) {
        verdicts.push(Verdict::new(PAUSED_CONDITION, false, "Resumed", ""));
    }
    let rollout = pass.rollout;
    let settled = pass.converged && !rollout.serving_changed;
    let (more, events, requeue, outcome) = if let Some(message) = pass.refused {
        (
            stalled("AwsRefused", message),
            vec![Event::new(true, "AwsRefused", "Reconcile", message)],
            // The account may change (a quota raised) without a spec change: look again.
            Requeue::Resync,
            "stalled",
        )
    } else if settled && rollout.rolling {
        // AWS matches this step of the rollout; Ready waits for the rollout's end.
        let message = rollout_message(rollout.verdicts, rollout::ROLLOUT_PROGRESSING)
            .unwrap_or_else(|| "a new version is rolling out".to_owned());
        let requeue = rollout
            .requeue_after
            .map_or(Requeue::AtLeastProgress(Duration::ZERO), Requeue::After);
        (
            under_way("RollingOut", &message).to_vec(),
            Vec::new(),
            requeue,
            "progressing",
        )
    } else if settled && rollout.rolled_back {
        // The spec's version was rolled back: the previous one serves until the spec
        // changes, which is kstatus's Stalled.
        let message = rollout_message(rollout.verdicts, rollout::ROLLOUT_FAILED)
            .or_else(|| {
                current
                    .iter()
                    .find(|c| c.type_ == rollout::ROLLOUT_FAILED)
                    .map(|c| c.message.clone())
            })
            .unwrap_or_else(|| "the rollout of the spec's version failed".to_owned());
        (
            stalled("RolloutFailed", &message),
            Vec::new(),
            Requeue::Resync,
            "stalled",
        )
    } else if let Some(serving) = &pass.readiness.overall {
        // AWS matches the spec with no rollout under way: Ready when the active revision
        // serves.
        let events = serving
            .event
            .iter()
            .map(|e| Event::new(e.warning, e.reason, "Reconcile", e.note.clone()))
            .collect();
        let requeue = match serving.wait {
            Wait::Resync => Requeue::Resync,
            Wait::Progress => Requeue::Progress,
            Wait::After(wait) => Requeue::AtLeastProgress(wait),
        };
        (serving.verdicts.clone(), events, requeue, serving.outcome)
    } else {
        (
            under_way("Progressing", pass.progress).to_vec(),
            Vec::new(),
            Requeue::Progress,
            "progressing",
        )
    };
    verdicts.extend(more);
    Decision {
        verdicts,
        events,
        requeue,
        outcome,
    }
}

/// What AWS refused in a pass, in a sentence.
pub fn refused_message(report: &Report) -> String {
    report
        .refused
        .iter()
        .map(|f| format!("{} ({}): {}", f.key, f.operation, f.error))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a pass did and what it waits for, in a sentence.
pub fn progress_message(outcome: &PassOutcome) -> String {
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

/// The `Stalled` reason of a pass that could not start: the spec (`InvalidSpec`) or AWS
/// refusing to be read (`AwsRefused`).
pub fn refusal_reason(error: &PassError) -> &'static str {
    match error {
        PassError::Desired(_) => "InvalidSpec",
        PassError::Observe(_) => "AwsRefused",
    }
}

/// What `deletionPolicy: Retain` kept, in a sentence for the status and the event.
pub fn retained_message(retained: &[ObservedResource]) -> String {
    let cluster = retained
        .iter()
        .find(|r| r.kind == crate::database::DB_CLUSTER)
        .map(|r| format!(" (cluster {})", r.id))
        .unwrap_or_default();
    format!(
        "deletionPolicy is Retain: the database{cluster} and the network it lives in stay in AWS, \
         {} resource(s) tagged {}=true",
        retained.len(),
        crate::database::RETAINED_TAG
    )
}

#[cfg(test)]
mod tests;
