//! The rollout state machine's transitions, with no AWS: a clock and gate observations made up
//! per case.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use plinth_crds::{AppStatus, RolloutSpec};

use super::health::TargetHealth;
use super::machine::*;
use crate::intent::{AppRevision, Serving};

fn v(version: &str) -> AppRevision {
    AppRevision::new(version, "s3://bucket/app", "ami-1", "t4g.small")
}

fn spec() -> RolloutSpec {
    RolloutSpec {
        steps: vec![10, 50, 100],
        step_seconds: 60,
        ..RolloutSpec::default()
    }
}

fn timing() -> Timing {
    Timing::of(&spec(), 1.0, Duration::from_secs(5))
}

fn t0() -> Timestamp {
    "2026-01-01T00:00:00Z"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn at(seconds: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(seconds)
}

fn steady_on(revision: &AppRevision) -> RolloutState {
    RolloutState {
        active: Some(revision.clone()),
        ..RolloutState::default()
    }
}

fn healthy() -> Gates {
    Gates {
        applied: true,
        green: GreenTargets {
            found: true,
            desired: 2,
            registered: 2,
            healthy: 2,
            unhealthy: 0,
            not_healthy: Vec::new(),
        },
        alarms_firing: Vec::new(),
    }
}

fn booting() -> Gates {
    Gates {
        green: GreenTargets {
            found: true,
            desired: 2,
            registered: 2,
            healthy: 0,
            unhealthy: 0,
            not_healthy: vec![
                TargetHealth::new("i-0b1", "initial").because(
                    "Elb.InitialHealthChecking",
                    "Initial health checks in progress",
                ),
                TargetHealth::new("i-0b2", "initial").because(
                    "Elb.InitialHealthChecking",
                    "Initial health checks in progress",
                ),
            ],
        },
        ..healthy()
    }
}

fn unhealthy() -> Gates {
    Gates {
        green: GreenTargets {
            found: true,
            desired: 2,
            registered: 2,
            healthy: 1,
            unhealthy: 1,
            not_healthy: vec![TargetHealth::new("i-0abc", "unhealthy").because(
                "Target.ResponseCodeMismatch",
                "Health checks failed with these codes: [500]",
            )],
        },
        ..healthy()
    }
}

/// Decides before and after a pass, as the controller does, returning the second decision with
/// the first one's events in front.
fn pass(
    target: &AppRevision,
    state: &RolloutState,
    gates: &Gates,
    now: Timestamp,
) -> (Decision, Decision) {
    let before = decide(target, &spec(), state, timing(), None, now);
    let after = decide(target, &spec(), &before.state, timing(), Some(gates), now);
    (before, after)
}

fn reasons(events: &[RolloutEvent]) -> Vec<&'static str> {
    events.iter().map(RolloutEvent::reason).collect()
}

fn verdict<'a>(decision: &'a Decision, type_: &str) -> Option<&'a RolloutVerdict> {
    decision.verdicts.iter().find(|v| v.type_ == type_)
}

fn weight(serving: &Serving) -> Option<i32> {
    match serving {
        Serving::Steady(_) => None,
        Serving::Rolling { weight, .. } => Some(*weight),
    }
}

#[test]
fn a_new_platform_serves_its_revision_without_a_rollout() {
    let v1 = v("1.0.0");
    let decision = decide(&v1, &spec(), &RolloutState::default(), timing(), None, t0());
    assert_eq!(decision.serving, Serving::Steady(v1.clone()));
    assert_eq!(decision.state, steady_on(&v1));
    assert!(decision.events.is_empty());
    assert!(decision.verdicts.is_empty());
    assert_eq!(decision.requeue_after, None);
}

#[test]
fn an_unchanged_revision_stays_steady_and_reports_nothing() {
    let v1 = v("1.0.0");
    let (before, after) = pass(&v1, &steady_on(&v1), &healthy(), t0());
    for decision in [before, after] {
        assert_eq!(decision.serving, Serving::Steady(v1.clone()));
        assert!(decision.events.is_empty());
        assert!(decision.verdicts.is_empty());
    }
}

#[test]
fn a_new_revision_starts_green_with_no_traffic_until_it_is_healthy() {
    let (v1, v2) = (v("1.0.0"), v("2.0.0"));
    let before = decide(&v2, &spec(), &steady_on(&v1), timing(), None, t0());
    assert_eq!(
        before.serving,
        Serving::Rolling {
            blue: v1.clone(),
            green: v2.clone(),
            weight: 0
        }
    );
    assert_eq!(reasons(&before.events), ["RolloutStarted"]);
    let failed = verdict(&before, ROLLOUT_FAILED).unwrap_or_else(|| panic!("no verdict"));
    assert!(!failed.status);
    let inflight = before
        .state
        .rollout
        .clone()
        .unwrap_or_else(|| panic!("no rollout"));
    assert_eq!((inflight.step, inflight.weight), (0, 0));
    assert_eq!(inflight.target, v2.id);

    // Booting targets: no traffic yet, no new events, look again soon.
    let waiting = decide(
        &v2,
        &spec(),
        &before.state,
        timing(),
        Some(&booting()),
        at(10),
    );
    assert_eq!(weight(&waiting.serving), Some(0));
    assert!(waiting.events.is_empty());
    assert_eq!(waiting.requeue_after, Some(Duration::from_secs(6)));

    // Healthy: the first step's weight at once, its hold counted from now.
    let first = decide(
        &v2,
        &spec(),
        &before.state,
        timing(),
        Some(&healthy()),
        at(20),
    );
    assert_eq!(weight(&first.serving), Some(10));
    assert_eq!(reasons(&first.events), ["RolloutStepAdvanced"]);
    let inflight = first.state.rollout.unwrap_or_else(|| panic!("no rollout"));
    assert_eq!(
        (inflight.step, inflight.weight, inflight.started),
        (0, 10, at(20))
    );
}

#[test]
fn deciding_twice_without_gates_changes_nothing_the_second_time() {
    let (v1, v2) = (v("1.0.0"), v("2.0.0"));
    let first = decide(&v2, &spec(), &steady_on(&v1), timing(), None, t0());
    let second = decide(&v2, &spec(), &first.state, timing(), None, at(5));
    assert_eq!(second.state, first.state);
    assert_eq!(second.serving, first.serving);
    assert!(second.events.is_empty());
}

#[test]
fn each_step_holds_then_advances_and_the_last_one_makes_green_active() {
    let (v1, v2) = (v("1.0.0"), v("2.0.0"));
    let mut state = steady_on(&v1);
    let mut now = 0;
    let mut weights = Vec::new();
    let mut events = Vec::new();
    let mut passes = 0;
    loop {
        passes += 1;
        assert!(passes < 100, "never finished: {state:?}");
        let (before, after) = pass(&v2, &state, &healthy(), at(now));
        events.extend(before.events.iter().map(RolloutEvent::reason));
        events.extend(after.events.iter().map(RolloutEvent::reason));
        for w in [weight(&before.serving), weight(&after.serving)]
            .into_iter()
            .flatten()
        {
            if weights.last() != Some(&w) {
                weights.push(w);
            }
        }
        state = after.state.clone();
        match after.requeue_after {
            Some(wait) => {
                // Never wait past the step's end, and never longer than a poll.
                assert!(wait <= timing().poll, "{wait:?}");
                now += i64::try_from(wait.as_secs()).unwrap_or(0);
            }
            None => {
                assert_eq!(after.serving, Serving::Steady(v2.clone()));
                break;
            }
        }
    }
    assert_eq!(weights, [0, 10, 50, 100]);
    assert_eq!(
        events,
        [
            "RolloutStarted",
            "RolloutStepAdvanced",
            "RolloutStepAdvanced",
            "RolloutStepAdvanced",
            "RolloutSucceeded"
        ]
    );
    // Three steps held a minute each.
    assert!((180..200).contains(&now), "{now}");
    assert_eq!(state, steady_on(&v2));
}

#[test]
fn a_step_does_not_advance_before_its_hold_or_before_the_pass_applied_its_weight() {
    let (v1, v2) = (v("1.0.0"), v("2.0.0"));
    let state = RolloutState {
        active: Some(v1.clone()),
        rollout: Some(InFlight {
            target: v2.id.clone(),
            target_version: v2.version.clone(),
            step: 0,
            weight: 10,
            started: t0(),
        }),
        failed: None,
        unserved: false,
    };
    let early = decide(&v2, &spec(), &state, timing(), Some(&healthy()), at(58));
    assert_eq!(weight(&early.serving), Some(10));
    assert_eq!(early.requeue_after, Some(Duration::from_secs(2)));

    let unapplied = Gates {
        applied: false,
        ..healthy()
    };
    let waiting = decide(&v2, &spec(), &state, timing(), Some(&unapplied), at(90));
    assert_eq!(weight(&waiting.serving), Some(10));
    assert!(waiting.events.is_empty());

    let on = decide(&v2, &spec(), &state, timing(), Some(&healthy()), at(60));
    assert_eq!(weight(&on.serving), Some(50));
}

fn at_step_one(v1: &AppRevision, v2: &AppRevision) -> RolloutState {
    RolloutState {
        active: Some(v1.clone()),
        rollout: Some(InFlight {
            target: v2.id.clone(),
            target_version: v2.version.clone(),
            step: 1,
            weight: 50,
            started: t0(),
        }),
        failed: None,
        unserved: false,
    }
}

fn assert_rolled_back(decision: &Decision, blue: &AppRevision, green: &AppRevision, reason: &str) {
    assert_eq!(decision.serving, Serving::Steady(blue.clone()));
    assert_eq!(decision.state.rollout, None);
    assert_eq!(decision.state.active.as_ref(), Some(blue));
    assert_eq!(decision.state.failed.as_deref(), Some(green.id.as_str()));
    assert_eq!(reasons(&decision.events), ["RolloutFailed"]);
    assert!(decision.events[0].is_warning());
    let failed = verdict(decision, ROLLOUT_FAILED).unwrap_or_else(|| panic!("no verdict"));
    assert!(failed.status);
    assert_eq!(failed.reason, reason);
    assert!(
        failed.message.contains(&green.version),
        "{}",
        failed.message
    );
    assert_eq!(decision.requeue_after, None);
}

#[test]
fn an_unhealthy_green_target_with_traffic_rolls_back_at_once() {
    let (v1, v2) = (v("1.0.0"), v("2.0.0"));
    let decision = decide(
        &v2,
        &spec(),
        &at_step_one(&v1, &v2),
        timing(),
        Some(&unhealthy()),
        at(1),
    );
    assert_rolled_back(&decision, &v1, &v2, "TargetsUnhealthy");
    let failed = verdict(&decision, ROLLOUT_FAILED).unwrap_or_else(|| panic!("no verdict"));
    assert_eq!(
        failed.message,
        "rollout of version 2.0.0 failed: 1/2 green target(s) healthy, 1 unhealthy, 2 registered: \
         i-0abc unhealthy: Target.ResponseCodeMismatch (Health checks failed with these codes: [500])"
    );
    // The Warning event carries the same reasons.
    assert_eq!(
        decision.events[0].note(),
        format!(
            "{}; all traffic returned to the running version",
            failed.message
        )
    );
}

#[test]
fn a_firing_alarm_with_traffic_rolls_back() {
    let (v1, v2) = (v("1.0.0"), v("2.0.0"));
    let gates = Gates {
        alarms_firing: vec!["plinth-ns-p-alarm-5xx".into()],
        ..healthy()
    };
    let decision = decide(
        &v2,
        &spec(),
        &at_step_one(&v1, &v2),
        timing(),
        Some(&gates),
        at(1),
    );
    assert_rolled_back(&decision, &v1, &v2, "AlarmFiring");
}

#[test]
fn a_green_that_never_becomes_healthy_rolls_back_after_the_timeout() {
    let (v1, v2) = (v("1.0.0"), v("2.0.0"));
    let started = decide(&v2, &spec(), &steady_on(&v1), timing(), None, t0());
    // Failing checks while starting may be a slow boot: wait, no traffic.
    let waiting = decide(
        &v2,
        &spec(),
        &started.state,
        timing(),
        Some(&unhealthy()),
        at(599),
    );
    assert_eq!(weight(&waiting.serving), Some(0));
    assert!(waiting.events.is_empty());
    let timed_out = decide(
        &v2,
        &spec(),
        &started.state,
        timing(),
        Some(&booting()),
        at(600),
    );
    assert_rolled_back(&timed_out, &v1, &v2, "HealthTimeout");
    let failed = verdict(&timed_out, ROLLOUT_FAILED).unwrap_or_else(|| panic!("no verdict"));
    assert!(
        failed.message.ends_with(
            "0/2 green target(s) healthy, 0 unhealthy, 2 registered: \
             i-0b1 initial: Elb.InitialHealthChecking (Initial health checks in progress); \
             i-0b2 initial: Elb.InitialHealthChecking (Initial health checks in progress)"
        ),
        "{}",
        failed.message
    );
}

#[test]
fn a_failed_revision_is_not_retried_until_the_spec_names_another() {
    let (v1, v2, v3) = (v("1.0.0"), v("2.0.0"), v("3.0.0"));
    let failed = RolloutState {
        failed: Some(v2.id.clone()),
        ..steady_on(&v1)
    };
    let (before, after) = pass(&v2, &failed, &healthy(), at(1000));
    for decision in [&before, &after] {
        assert_eq!(decision.serving, Serving::Steady(v1.clone()));
        assert!(decision.events.is_empty());
        // The condition set at the rollback stays as it is.
        assert!(decision.verdicts.is_empty());
        assert_eq!(decision.state, failed);
    }

    let next = decide(&v3, &spec(), &failed, timing(), None, at(1000));
    assert_eq!(reasons(&next.events), ["RolloutStarted"]);
    assert_eq!(next.state.failed, None);
    assert_eq!(weight(&next.serving), Some(0));
    let condition = verdict(&next, ROLLOUT_FAILED).unwrap_or_else(|| panic!("no verdict"));
    assert!(!condition.status);

    // Going back to the running version also clears it.
    let back = decide(&v1, &spec(), &failed, timing(), None, at(1000));
    assert_eq!(back.serving, Serving::Steady(v1.clone()));
    assert_eq!(back.state.failed, None);
    assert!(!verdict(&back, ROLLOUT_FAILED).is_some_and(|c| c.status));
}

#[test]
fn a_spec_change_mid_rollout_cancels_or_supersedes_it() {
    let (v1, v2, v3) = (v("1.0.0"), v("2.0.0"), v("3.0.0"));
    let back = decide(&v1, &spec(), &at_step_one(&v1, &v2), timing(), None, at(1));
    assert_eq!(back.serving, Serving::Steady(v1.clone()));
    assert_eq!(reasons(&back.events), ["RolloutCancelled"]);
    assert_eq!(back.state, steady_on(&v1));

    let other = decide(&v3, &spec(), &at_step_one(&v1, &v2), timing(), None, at(1));
    assert_eq!(
        other.serving,
        Serving::Rolling {
            blue: v1.clone(),
            green: v3.clone(),
            weight: 0
        }
    );
    assert_eq!(
        reasons(&other.events),
        ["RolloutCancelled", "RolloutStarted"]
    );
}

#[test]
fn the_state_survives_status_so_a_restart_resumes_mid_step() {
    let (v1, v2) = (v("1.0.0"), v("2.0.0"));
    let state = started_at_step_one(&v1, &v2, at(30));
    let mut app = AppStatus::default();
    state.write_status(&mut app);
    assert_eq!(app.active_version.as_deref(), Some("1.0.0"));
    let rollout = app.rollout.clone().unwrap_or_else(|| panic!("no rollout"));
    assert_eq!((rollout.step, rollout.weight_percent), (1, 50));
    assert_eq!(rollout.target_version, "2.0.0");
    assert_eq!(
        rollout.step_started_at.as_deref(),
        Some("2026-01-01T00:00:30Z")
    );

    // A new operator reads it back and carries on at step 1 with the time already held.
    let back = RolloutState::from_status(Some(&app), at(1000));
    assert_eq!(back, state);
    let resumed = decide(&v2, &spec(), &back, timing(), Some(&healthy()), at(60));
    assert_eq!(weight(&resumed.serving), Some(50));
    assert_eq!(resumed.requeue_after, Some(Duration::from_secs(6)));
    assert!(resumed.events.is_empty());
    let next = decide(&v2, &spec(), &back, timing(), Some(&healthy()), at(90));
    assert_eq!(weight(&next.serving), Some(100));
}

fn started_at_step_one(v1: &AppRevision, v2: &AppRevision, started: Timestamp) -> RolloutState {
    let mut state = at_step_one(v1, v2);
    if let Some(inflight) = &mut state.rollout {
        inflight.started = started;
    }
    state
}

#[test]
fn a_status_without_the_rollout_fields_reads_as_no_rollout() {
    assert_eq!(
        RolloutState::from_status(None, t0()),
        RolloutState::default()
    );
    let mut app = AppStatus::default();
    at_step_one(&v("1.0.0"), &v("2.0.0")).write_status(&mut app);
    if let Some(rollout) = &mut app.rollout {
        rollout.step_started_at = Some("not a time".into());
    }
    let back = RolloutState::from_status(Some(&app), at(7));
    assert_eq!(back.rollout.map(|r| r.started), Some(at(7)));
}

#[test]
fn timing_scales_hold_and_timeout_and_polls_a_tenth_of_a_step() {
    let rollout = RolloutSpec {
        step_seconds: 300,
        ..RolloutSpec::default()
    };
    let real = Timing::of(&rollout, 1.0, Duration::from_secs(5));
    assert_eq!(real.hold, Duration::from_secs(300));
    assert_eq!(real.timeout, Duration::from_secs(900));
    assert_eq!(real.poll, Duration::from_secs(30));
    let fast = Timing::of(&rollout, 0.01, Duration::from_millis(500));
    assert_eq!(fast.hold, Duration::from_secs(3));
    assert_eq!(fast.timeout, Duration::from_secs(9));
    assert_eq!(fast.poll, Duration::from_millis(500));
    // Nonsense scales count as 1.
    assert_eq!(Timing::of(&rollout, f64::NAN, Duration::from_secs(5)), real);
    assert_eq!(Timing::of(&rollout, -1.0, Duration::from_secs(5)), real);
}

#[test]
fn a_first_deploy_that_never_served_is_replaced_without_a_rollout() {
    let (v09, v1) = (v("0.9.0"), v("1.0.0"));
    let unserved = RolloutState {
        unserved: true,
        failed: Some("deadbeef".into()),
        ..steady_on(&v09)
    };
    let (before, after) = pass(&v1, &unserved, &booting(), t0());
    assert_eq!(before.serving, Serving::Steady(v1.clone()));
    assert_eq!(before.state.active.as_ref(), Some(&v1));
    assert_eq!(before.state.rollout, None);
    assert_eq!(before.state.failed, None);
    assert_eq!(reasons(&before.events), ["FirstDeployReplaced"]);
    assert!(!before.events[0].is_warning());
    assert!(
        before.events[0].note().contains("never served"),
        "{}",
        before.events[0].note()
    );
    let failed = verdict(&before, ROLLOUT_FAILED).unwrap_or_else(|| panic!("no verdict"));
    assert!(!failed.status);
    // After the pass the spec's revision is the active one: nothing more happens.
    assert_eq!(after.serving, Serving::Steady(v1.clone()));
    assert!(after.events.is_empty());

    // A rollout under way beside an unserved revision (an older operator's) is cancelled.
    let rolling = RolloutState {
        unserved: true,
        ..at_step_one(&v09, &v1)
    };
    let v2 = v("2.0.0");
    let decision = decide(&v2, &spec(), &rolling, timing(), None, t0());
    assert_eq!(decision.serving, Serving::Steady(v2.clone()));
    assert_eq!(
        reasons(&decision.events),
        ["RolloutCancelled", "FirstDeployReplaced"]
    );

    // The flag comes from status.app.firstDeploy.
    let mut app = AppStatus::default();
    steady_on(&v09).write_status(&mut app);
    assert!(!RolloutState::from_status(Some(&app), t0()).unserved);
    app.first_deploy = Some(plinth_crds::FirstDeployStatus {
        revision: v09.id.clone(),
        started_at: None,
    });
    assert!(RolloutState::from_status(Some(&app), t0()).unserved);
}
