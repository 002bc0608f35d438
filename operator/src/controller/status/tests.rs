//! Every branch of [`decide`], one row each: what `Ready`, `Reconciling` and `Stalled` say, which
//! events go out and when the platform is looked at again.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::controller::readiness::{ComputeVerdict, Notice, Overall};

fn condition(type_: &str, status: bool, message: &str) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: "Before".to_owned(),
        message: message.to_owned(),
        observed_generation: Some(1),
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
    }
}

/// A condition's (status, reason) in a decision, when it sets it.
fn said(decision: &Decision, type_: &str) -> Option<(bool, String)> {
    decision
        .verdicts
        .iter()
        .rev()
        .find(|v| v.type_ == type_)
        .map(|v| (v.status, v.reason.clone()))
}

fn no_rollout() -> RolloutView<'static> {
    RolloutView {
        rolling: false,
        serving_changed: false,
        rolled_back: false,
        verdicts: &[],
        requeue_after: None,
    }
}

fn readiness(overall: Option<Overall>) -> Readiness {
    Readiness {
        first_deploy: None,
        compute: ComputeVerdict::Pass,
        overall,
    }
}

fn serving_ready() -> Overall {
    Overall {
        verdicts: vec![
            Verdict::new(READY, true, "Reconciled", "every resource matches the spec"),
            Verdict::new(RECONCILING, false, "Reconciled", ""),
            Verdict::new(STALLED, false, "Reconciled", ""),
        ],
        event: Some(Notice {
            warning: false,
            reason: "Ready",
            note: "serving".to_owned(),
        }),
        wait: Wait::Resync,
        outcome: "ready",
    }
}

fn serving_stuck() -> Overall {
    Overall {
        verdicts: vec![Verdict::new(
            READY,
            false,
            "FirstDeployUnhealthy",
            "no target healthy",
        )],
        event: None,
        wait: Wait::After(Duration::from_secs(5)),
        outcome: "stalled",
    }
}

/// `Ready`, `Reconciling` and `Stalled` as a decision sets them: `Type=Status/Reason`, `-` for
/// one it leaves as it is.
fn overall(decision: &Decision) -> String {
    [READY, RECONCILING, STALLED]
        .iter()
        .map(|type_| match said(decision, type_) {
            Some((status, reason)) => {
                format!("{type_}={}/{reason}", if status { "True" } else { "False" })
            }
            None => format!("{type_}=-"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// (row, situation, Ready/Reconciling/Stalled, events, requeue, outcome).
type Row<'a> = (
    &'a str,
    Situation<'a>,
    &'a str,
    &'a [&'a str],
    Requeue,
    &'a str,
);

#[test]
fn every_branch_decides_conditions_events_and_requeue() {
    let group = [Verdict::new("NetworkReady", true, "Available", "")];
    let progressing = [RolloutVerdict {
        type_: rollout::ROLLOUT_PROGRESSING,
        status: true,
        reason: "Shifting",
        message: "green takes 25% of traffic".to_owned(),
    }];
    let failed = [RolloutVerdict {
        type_: rollout::ROLLOUT_FAILED,
        status: true,
        reason: "AlarmFired",
        message: "green's alarm fired: rolled back".to_owned(),
    }];
    let (steady, stuck, moving) = (
        readiness(Some(serving_ready())),
        readiness(Some(serving_stuck())),
        readiness(None),
    );
    let pass = |readiness, converged, refused, rollout| {
        Situation::Applied(PassView {
            groups: &group,
            refused,
            converged,
            progress: "3 change(s) made, 1 waiting for AWS",
            rollout,
            readiness,
        })
    };
    let step = RolloutView {
        rolling: true,
        verdicts: &progressing,
        requeue_after: Some(Duration::from_secs(30)),
        ..no_rollout()
    };
    let rolled_back = RolloutView {
        rolled_back: true,
        verdicts: &failed,
        ..no_rollout()
    };
    let secs = Duration::from_secs;
    let rows: [Row<'_>; 15] = [
        (
            "converged and serving",
            pass(&steady, true, None, no_rollout()),
            "Ready=True/Reconciled Reconciling=False/Reconciled Stalled=False/Reconciled",
            &["Ready"],
            Requeue::Resync,
            "ready",
        ),
        (
            "converged, first deploy not serving",
            pass(&stuck, true, None, no_rollout()),
            "Ready=False/FirstDeployUnhealthy Reconciling=- Stalled=-",
            &[],
            Requeue::AtLeastProgress(secs(5)),
            "stalled",
        ),
        (
            "progressing (changes made, AWS still working)",
            pass(&moving, false, None, no_rollout()),
            "Ready=False/Progressing Reconciling=True/Progressing Stalled=False/Progressing",
            &[],
            Requeue::Progress,
            "progressing",
        ),
        (
            "AWS refused a change",
            pass(
                &moving,
                false,
                Some("vpc (create): VpcLimitExceeded"),
                no_rollout(),
            ),
            "Ready=False/AwsRefused Reconciling=False/AwsRefused Stalled=True/AwsRefused",
            &["AwsRefused"],
            Requeue::Resync,
            "stalled",
        ),
        (
            "a rollout step applied",
            pass(&moving, true, None, step),
            "Ready=False/RollingOut Reconciling=True/RollingOut Stalled=False/RollingOut",
            &[],
            Requeue::After(secs(30)),
            "progressing",
        ),
        (
            "a rollout step asks for another serving state",
            pass(
                &moving,
                true,
                None,
                RolloutView {
                    serving_changed: true,
                    ..step
                },
            ),
            "Ready=False/Progressing Reconciling=True/Progressing Stalled=False/Progressing",
            &[],
            Requeue::Progress,
            "progressing",
        ),
        (
            "the spec's version rolled back",
            pass(&steady, true, None, rolled_back),
            "Ready=False/RolloutFailed Reconciling=False/RolloutFailed Stalled=True/RolloutFailed",
            &[],
            Requeue::Resync,
            "stalled",
        ),
        (
            "paused",
            Situation::Paused { deleting: false },
            "Ready=- Reconciling=False/Paused Stalled=-",
            &["Paused"],
            Requeue::AwaitChange,
            "paused",
        ),
        (
            "paused while deleting",
            Situation::Paused { deleting: true },
            "Ready=- Reconciling=False/Paused Stalled=-",
            &[],
            Requeue::AwaitChange,
            "paused",
        ),
        (
            "invalid spec",
            Situation::Refused {
                reason: "InvalidSpec",
                message: "spec.network.cidr is not a CIDR",
            },
            "Ready=False/InvalidSpec Reconciling=False/InvalidSpec Stalled=True/InvalidSpec",
            &["InvalidSpec"],
            Requeue::AwaitChange,
            "stalled",
        ),
        (
            "the pass failed, worth retrying",
            Situation::Retrying {
                message: "Throttling: slow down (will retry)",
            },
            "Ready=False/Retrying Reconciling=True/Retrying Stalled=False/Retrying",
            &[],
            Requeue::Backoff,
            "error",
        ),
        (
            "deleting",
            Situation::Deleting {
                remaining: 12,
                refused: None,
            },
            "Ready=False/Deleting Reconciling=True/Deleting Stalled=-",
            &[],
            Requeue::Progress,
            "progressing",
        ),
        (
            "deleting, AWS refused a delete",
            Situation::Deleting {
                remaining: 3,
                refused: Some("vpc (delete): DependencyViolation"),
            },
            "Ready=False/Deleting Reconciling=True/Deleting Stalled=-",
            &["DeleteRefused"],
            Requeue::After(secs(60)),
            "stalled",
        ),
        (
            "deleted, the database retained",
            Situation::Deleted {
                retained: Some("deletionPolicy is Retain: the database stays"),
                retained_count: 9,
            },
            "Ready=False/Retained Reconciling=- Stalled=-",
            &["Retained", "TornDown"],
            Requeue::AwaitChange,
            "deleted",
        ),
        (
            "deleted",
            Situation::Deleted {
                retained: None,
                retained_count: 0,
            },
            "Ready=- Reconciling=- Stalled=-",
            &["TornDown"],
            Requeue::AwaitChange,
            "deleted",
        ),
    ];
    for (row, situation, conditions, events, requeue, outcome) in &rows {
        let decision = decide(situation, &[]);
        assert_eq!(overall(&decision), *conditions, "{row}: conditions");
        let sent: Vec<&str> = decision.events.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(sent, *events, "{row}: events");
        assert_eq!(decision.requeue, *requeue, "{row}: requeue");
        assert_eq!(decision.outcome, *outcome, "{row}: outcome");
    }
}

#[test]
fn a_resumed_platform_clears_paused_and_pausing_again_sends_no_second_event() {
    let group = [Verdict::new("NetworkReady", true, "Available", "")];
    let steady = readiness(Some(serving_ready()));
    let paused = [condition(PAUSED_CONDITION, true, "paused")];
    let decision = decide(
        &Situation::Applied(PassView {
            groups: &group,
            refused: None,
            converged: true,
            progress: "",
            rollout: no_rollout(),
            readiness: &steady,
        }),
        &paused,
    );
    assert_eq!(
        said(&decision, PAUSED_CONDITION),
        Some((false, "Resumed".to_owned()))
    );
    assert_eq!(
        said(&decision, "NetworkReady"),
        Some((true, "Available".to_owned()))
    );
    let again = decide(&Situation::Paused { deleting: false }, &paused);
    assert!(again.events.is_empty());
}

#[test]
fn a_rolled_back_platform_keeps_the_failure_message_it_already_reported() {
    let steady = readiness(Some(serving_ready()));
    let current = [condition(
        rollout::ROLLOUT_FAILED,
        true,
        "green's 5xx alarm fired",
    )];
    let decision = decide(
        &Situation::Applied(PassView {
            groups: &[],
            refused: None,
            converged: true,
            progress: "",
            rollout: RolloutView {
                rolled_back: true,
                ..no_rollout()
            },
            readiness: &steady,
        }),
        &current,
    );
    let stalled = decision.verdicts.iter().find(|v| v.type_ == STALLED);
    assert_eq!(
        stalled.map(|v| v.message.as_str()),
        Some("green's 5xx alarm fired")
    );
}

#[test]
fn the_compute_judgement_replaces_the_pass_verdict() {
    let group = [Verdict::new(
        crate::compute::CONDITION,
        true,
        "Available",
        "",
    )];
    let judged = Readiness {
        first_deploy: None,
        compute: ComputeVerdict::Replace(Verdict::new(
            crate::compute::CONDITION,
            false,
            "InstancesUnhealthy",
            "0 of 2 healthy",
        )),
        overall: None,
    };
    let decision = decide(
        &Situation::Applied(PassView {
            groups: &group,
            refused: None,
            converged: false,
            progress: "",
            rollout: no_rollout(),
            readiness: &judged,
        }),
        &[],
    );
    assert_eq!(
        said(&decision, crate::compute::CONDITION),
        Some((false, "InstancesUnhealthy".to_owned()))
    );
    assert_eq!(
        decision
            .verdicts
            .iter()
            .filter(|v| v.type_ == crate::compute::CONDITION)
            .count(),
        1
    );
}
