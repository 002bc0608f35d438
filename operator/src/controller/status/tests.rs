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

/// What one row expects.
struct Row {
    name: &'static str,
    ready: Option<(bool, &'static str)>,
    reconciling: Option<(bool, &'static str)>,
    stalled: Option<(bool, &'static str)>,
    events: &'static [&'static str],
    requeue: Requeue,
    outcome: &'static str,
}

fn check(row: &Row, situation: &Situation<'_>, current: &[Condition]) -> Decision {
    let decision = decide(situation, current);
    let expect = |x: Option<(bool, &str)>| x.map(|(s, r)| (s, r.to_owned()));
    assert_eq!(
        said(&decision, READY),
        expect(row.ready),
        "{}: Ready",
        row.name
    );
    assert_eq!(
        said(&decision, RECONCILING),
        expect(row.reconciling),
        "{}: Reconciling",
        row.name
    );
    assert_eq!(
        said(&decision, STALLED),
        expect(row.stalled),
        "{}: Stalled",
        row.name
    );
    let events: Vec<&str> = decision.events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(events, row.events, "{}: events", row.name);
    assert_eq!(decision.requeue, row.requeue, "{}: requeue", row.name);
    assert_eq!(decision.outcome, row.outcome, "{}: outcome", row.name);
    decision
}

#[test]
fn every_branch_decides_conditions_events_and_requeue() {
    let group = [Verdict::new("NetworkReady", true, "Available", "")];
    let progressing_verdict = [RolloutVerdict {
        type_: rollout::ROLLOUT_PROGRESSING,
        status: true,
        reason: "Shifting",
        message: "green takes 25% of traffic".to_owned(),
    }];
    let failed_verdict = [RolloutVerdict {
        type_: rollout::ROLLOUT_FAILED,
        status: true,
        reason: "AlarmFired",
        message: "green's alarm fired: rolled back".to_owned(),
    }];
    let steady = readiness(Some(serving_ready()));
    let stuck = readiness(Some(serving_stuck()));
    let moving = readiness(None);
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
    let rows: Vec<(Row, Situation<'_>)> = vec![
        (
            Row {
                name: "converged and serving",
                ready: Some((true, "Reconciled")),
                reconciling: Some((false, "Reconciled")),
                stalled: Some((false, "Reconciled")),
                events: &["Ready"],
                requeue: Requeue::Resync,
                outcome: "ready",
            },
            pass(&steady, true, None, no_rollout()),
        ),
        (
            Row {
                name: "converged, first deploy not serving",
                ready: Some((false, "FirstDeployUnhealthy")),
                reconciling: None,
                stalled: None,
                events: &[],
                requeue: Requeue::AtLeastProgress(Duration::from_secs(5)),
                outcome: "stalled",
            },
            pass(&stuck, true, None, no_rollout()),
        ),
        (
            Row {
                name: "progressing (changes made, AWS still working)",
                ready: Some((false, "Progressing")),
                reconciling: Some((true, "Progressing")),
                stalled: Some((false, "Progressing")),
                events: &[],
                requeue: Requeue::Progress,
                outcome: "progressing",
            },
            pass(&moving, false, None, no_rollout()),
        ),
        (
            Row {
                name: "AWS refused a change",
                ready: Some((false, "AwsRefused")),
                reconciling: Some((false, "AwsRefused")),
                stalled: Some((true, "AwsRefused")),
                events: &["AwsRefused"],
                requeue: Requeue::Resync,
                outcome: "stalled",
            },
            pass(
                &moving,
                false,
                Some("vpc (create): VpcLimitExceeded"),
                no_rollout(),
            ),
        ),
        (
            Row {
                name: "a rollout step applied",
                ready: Some((false, "RollingOut")),
                reconciling: Some((true, "RollingOut")),
                stalled: Some((false, "RollingOut")),
                events: &[],
                requeue: Requeue::After(Duration::from_secs(30)),
                outcome: "progressing",
            },
            pass(
                &moving,
                true,
                None,
                RolloutView {
                    rolling: true,
                    verdicts: &progressing_verdict,
                    requeue_after: Some(Duration::from_secs(30)),
                    ..no_rollout()
                },
            ),
        ),
        (
            Row {
                name: "a rollout step asks for another serving state: progressing",
                ready: Some((false, "Progressing")),
                reconciling: Some((true, "Progressing")),
                stalled: Some((false, "Progressing")),
                events: &[],
                requeue: Requeue::Progress,
                outcome: "progressing",
            },
            pass(
                &moving,
                true,
                None,
                RolloutView {
                    rolling: true,
                    serving_changed: true,
                    verdicts: &progressing_verdict,
                    ..no_rollout()
                },
            ),
        ),
        (
            Row {
                name: "the spec's version rolled back",
                ready: Some((false, "RolloutFailed")),
                reconciling: Some((false, "RolloutFailed")),
                stalled: Some((true, "RolloutFailed")),
                events: &[],
                requeue: Requeue::Resync,
                outcome: "stalled",
            },
            pass(
                &steady,
                true,
                None,
                RolloutView {
                    rolled_back: true,
                    verdicts: &failed_verdict,
                    ..no_rollout()
                },
            ),
        ),
        (
            Row {
                name: "paused",
                ready: None,
                reconciling: Some((false, "Paused")),
                stalled: None,
                events: &["Paused"],
                requeue: Requeue::AwaitChange,
                outcome: "paused",
            },
            Situation::Paused { deleting: false },
        ),
        (
            Row {
                name: "paused while deleting",
                ready: None,
                reconciling: Some((false, "Paused")),
                stalled: None,
                events: &[],
                requeue: Requeue::AwaitChange,
                outcome: "paused",
            },
            Situation::Paused { deleting: true },
        ),
        (
            Row {
                name: "invalid spec",
                ready: Some((false, "InvalidSpec")),
                reconciling: Some((false, "InvalidSpec")),
                stalled: Some((true, "InvalidSpec")),
                events: &["InvalidSpec"],
                requeue: Requeue::AwaitChange,
                outcome: "stalled",
            },
            Situation::Refused {
                reason: "InvalidSpec",
                message: "spec.network.cidr is not a CIDR",
            },
        ),
        (
            Row {
                name: "the pass failed, worth retrying",
                ready: Some((false, "Retrying")),
                reconciling: Some((true, "Retrying")),
                stalled: Some((false, "Retrying")),
                events: &[],
                requeue: Requeue::Backoff,
                outcome: "error",
            },
            Situation::Retrying {
                message: "Throttling: slow down (will retry)",
            },
        ),
        (
            Row {
                name: "deleting",
                ready: Some((false, "Deleting")),
                reconciling: Some((true, "Deleting")),
                stalled: None,
                events: &[],
                requeue: Requeue::Progress,
                outcome: "progressing",
            },
            Situation::Deleting {
                remaining: 12,
                refused: None,
            },
        ),
        (
            Row {
                name: "deleting, AWS refused a delete",
                ready: Some((false, "Deleting")),
                reconciling: Some((true, "Deleting")),
                stalled: None,
                events: &["DeleteRefused"],
                requeue: Requeue::After(Duration::from_secs(60)),
                outcome: "stalled",
            },
            Situation::Deleting {
                remaining: 3,
                refused: Some("vpc (delete): DependencyViolation"),
            },
        ),
        (
            Row {
                name: "deleted, the database retained",
                ready: Some((false, "Retained")),
                reconciling: None,
                stalled: None,
                events: &["Retained", "TornDown"],
                requeue: Requeue::AwaitChange,
                outcome: "deleted",
            },
            Situation::Deleted {
                retained: Some("deletionPolicy is Retain: the database stays"),
                retained_count: 9,
            },
        ),
        (
            Row {
                name: "deleted",
                ready: None,
                reconciling: None,
                stalled: None,
                events: &["TornDown"],
                requeue: Requeue::AwaitChange,
                outcome: "deleted",
            },
            Situation::Deleted {
                retained: None,
                retained_count: 0,
            },
        ),
    ];
    for (row, situation) in &rows {
        check(row, situation, &[]);
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
