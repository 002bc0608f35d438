//! The readiness judgement, table-driven: (target health, min size, first deploy, now, previous
//! conditions) → verdicts, event, wait and the first deploy to persist. No AWS, no clock.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use plinth_crds::FirstDeployStatus;

use super::*;
use crate::rollout::{ScalingActivity, TargetHealth};

const TIMEOUT: Duration = Duration::from_secs(600);

fn t0() -> Timestamp {
    "2026-12-01T10:00:00Z"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn at(seconds: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(seconds)
}

fn v1() -> AppRevision {
    AppRevision::new("1.0.0", "s3://bucket/app", "ami-1", "t4g.small")
}

fn v2() -> AppRevision {
    AppRevision::new("2.0.0", "s3://bucket/app", "ami-1", "t4g.small")
}

fn healthy(id: &str) -> TargetHealth {
    TargetHealth::new(id, "healthy")
}

fn failing(id: &str) -> TargetHealth {
    TargetHealth::new(id, "unhealthy").because(
        "Target.ResponseCodeMismatch",
        "Health checks failed with these codes: [500]",
    )
}

fn booting(id: &str) -> TargetHealth {
    TargetHealth::new(id, "initial").because(
        "Elb.RegistrationInProgress",
        "Target registration is in progress",
    )
}

fn read(min_size: i32, targets: Vec<TargetHealth>) -> Health {
    Health::Read(ServingHealth {
        min_size,
        targets,
        ..ServingHealth::default()
    })
}

fn first_deploy(revision: &AppRevision, started: Option<Timestamp>) -> FirstDeployStatus {
    FirstDeployStatus {
        revision: revision.id.clone(),
        started_at: started.map(|t| t.to_string()),
    }
}

fn condition(type_: &str, status: bool, reason: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: Some(1),
        last_transition_time: Time(t0()),
    }
}

fn was_ready() -> Vec<Condition> {
    vec![
        condition("Ready", true, RECONCILED),
        condition("Stalled", false, RECONCILED),
    ]
}

fn was_stalled_first_deploy() -> Vec<Condition> {
    vec![
        condition("Ready", false, FIRST_DEPLOY_UNHEALTHY),
        condition("Stalled", true, FIRST_DEPLOY_UNHEALTHY),
    ]
}

fn compute_available() -> Verdict {
    Verdict::new(
        crate::compute::CONDITION,
        true,
        AVAILABLE,
        "every resource exists and matches the spec",
    )
}

/// One case: everything `judge` takes, with the defaults of a steady pass of an old platform.
struct Case {
    name: &'static str,
    active: AppRevision,
    new_platform: bool,
    first_deploy: Option<FirstDeployStatus>,
    steady: bool,
    health: Health,
    conditions: Vec<Condition>,
    now: Timestamp,
}

impl Case {
    fn new(name: &'static str, health: Health) -> Self {
        Self {
            name,
            active: v1(),
            new_platform: false,
            first_deploy: None,
            steady: true,
            health,
            conditions: Vec::new(),
            now: at(0),
        }
    }

    fn judge(&self) -> Readiness {
        let compute = compute_available();
        judge(&Input {
            active: Some(&self.active),
            new_platform: self.new_platform,
            first_deploy: self.first_deploy.as_ref(),
            steady: self.steady,
            compute: Some(&compute),
            health: &self.health,
            conditions: &self.conditions,
            timeout: TIMEOUT,
            now: self.now,
        })
    }
}

/// The expected (status, reason) of Ready, Reconciling, Stalled.
type Triple = [(bool, &'static str); 3];

fn triple(readiness: &Readiness) -> Option<Triple> {
    let overall = readiness.overall.as_ref()?;
    let find = |type_: &str| {
        overall
            .verdicts
            .iter()
            .find(|v| v.type_ == type_)
            .map(|v| {
                (
                    v.status,
                    match v.reason.as_str() {
                        RECONCILED => RECONCILED,
                        WAITING_FOR_HEALTHY_TARGETS => WAITING_FOR_HEALTHY_TARGETS,
                        FIRST_DEPLOY_UNHEALTHY => FIRST_DEPLOY_UNHEALTHY,
                        HEALTH_UNKNOWN => HEALTH_UNKNOWN,
                        AWS_REFUSED => AWS_REFUSED,
                        _ => "other",
                    },
                )
            })
            .unwrap_or((false, "missing"))
    };
    Some([find("Ready"), find("Reconciling"), find("Stalled")])
}

fn ready_triple() -> Triple {
    [(true, RECONCILED), (false, RECONCILED), (false, RECONCILED)]
}

fn waiting_triple() -> Triple {
    [
        (false, WAITING_FOR_HEALTHY_TARGETS),
        (true, WAITING_FOR_HEALTHY_TARGETS),
        (false, WAITING_FOR_HEALTHY_TARGETS),
    ]
}

fn stalled_triple() -> Triple {
    [
        (false, FIRST_DEPLOY_UNHEALTHY),
        (false, FIRST_DEPLOY_UNHEALTHY),
        (true, FIRST_DEPLOY_UNHEALTHY),
    ]
}

fn compute_of(readiness: &Readiness) -> Option<(bool, String)> {
    match &readiness.compute {
        ComputeVerdict::Replace(v) => Some((v.status, v.reason.clone())),
        _ => None,
    }
}

fn event_of(readiness: &Readiness) -> Option<(bool, &'static str)> {
    let event = readiness.overall.as_ref()?.event.as_ref()?;
    Some((event.warning, event.reason))
}

#[test]
fn ready_stalled_and_waiting_follow_health_first_deploy_and_time() {
    struct Want {
        triple: Option<Triple>,
        compute: Option<(bool, &'static str)>,
        event: Option<(bool, &'static str)>,
        wait: Option<Wait>,
        first_deploy: Option<FirstDeployStatus>,
    }
    let cases: Vec<(Case, Want)> = vec![
        (
            Case::new(
                "enough healthy targets: Ready, first deploy over",
                read(2, vec![healthy("i-1"), healthy("i-2")]),
            )
            .with_first_deploy(first_deploy(&v1(), Some(at(-30)))),
            Want {
                triple: Some(ready_triple()),
                compute: Some((true, AVAILABLE)),
                event: Some((false, "Ready")),
                wait: Some(Wait::Resync),
                first_deploy: None,
            },
        ),
        (
            Case::new(
                "already Ready: no second Ready event",
                read(1, vec![healthy("i-1"), failing("i-2")]),
            )
            .with_conditions(was_ready()),
            Want {
                triple: Some(ready_triple()),
                compute: Some((true, AVAILABLE)),
                event: None,
                wait: Some(Wait::Resync),
                first_deploy: None,
            },
        ),
        (
            Case::new(
                "a first deploy booting within its timeout waits",
                read(2, vec![healthy("i-1"), booting("i-2")]),
            )
            .with_first_deploy(first_deploy(&v1(), Some(at(-599)))),
            Want {
                triple: Some(waiting_triple()),
                compute: Some((false, INSTANCES_UNHEALTHY)),
                event: None,
                wait: Some(Wait::Progress),
                first_deploy: Some(first_deploy(&v1(), Some(at(-599)))),
            },
        ),
        (
            Case::new(
                "a first deploy past its timeout stalls, with a Warning",
                read(2, vec![failing("i-1"), failing("i-2")]),
            )
            .with_first_deploy(first_deploy(&v1(), Some(at(-600)))),
            Want {
                triple: Some(stalled_triple()),
                compute: Some((false, INSTANCES_UNHEALTHY)),
                event: Some((true, FIRST_DEPLOY_UNHEALTHY)),
                wait: Some(Wait::After(Duration::from_secs(60))),
                first_deploy: Some(first_deploy(&v1(), Some(at(-600)))),
            },
        ),
        (
            Case::new(
                "still stalled: no second Warning",
                read(2, vec![failing("i-1")]),
            )
            .with_first_deploy(first_deploy(&v1(), Some(at(-900))))
            .with_conditions(was_stalled_first_deploy()),
            Want {
                triple: Some(stalled_triple()),
                compute: Some((false, INSTANCES_UNHEALTHY)),
                event: None,
                wait: Some(Wait::After(Duration::from_secs(60))),
                first_deploy: Some(first_deploy(&v1(), Some(at(-900)))),
            },
        ),
        (
            Case::new(
                "a stalled first deploy that heals is Ready",
                read(2, vec![healthy("i-3"), healthy("i-4")]),
            )
            .with_first_deploy(first_deploy(&v1(), Some(at(-900))))
            .with_conditions(was_stalled_first_deploy()),
            Want {
                triple: Some(ready_triple()),
                compute: Some((true, AVAILABLE)),
                event: Some((false, "Ready")),
                wait: Some(Wait::Resync),
                first_deploy: None,
            },
        ),
        (
            Case::new(
                "after Ready, a loss of targets waits (never stalls) and warns once",
                read(2, vec![healthy("i-1"), failing("i-2")]),
            )
            .with_conditions(was_ready()),
            Want {
                triple: Some(waiting_triple()),
                compute: Some((false, INSTANCES_UNHEALTHY)),
                event: Some((true, SERVING_DEGRADED)),
                wait: Some(Wait::Progress),
                first_deploy: None,
            },
        ),
        (
            Case::new(
                "a long loss of targets after Ready still only waits",
                read(2, vec![failing("i-2")]),
            )
            .with_conditions(vec![condition("Ready", false, WAITING_FOR_HEALTHY_TARGETS)])
            .at(at(100_000)),
            Want {
                triple: Some(waiting_triple()),
                compute: Some((false, INSTANCES_UNHEALTHY)),
                event: None,
                wait: Some(Wait::Progress),
                first_deploy: None,
            },
        ),
        (
            Case::new(
                "a new platform's first read starts the first deploy's clock",
                read(1, vec![booting("i-1")]),
            )
            .new_platform(),
            Want {
                triple: Some(waiting_triple()),
                compute: Some((false, INSTANCES_UNHEALTHY)),
                event: None,
                wait: Some(Wait::Progress),
                first_deploy: Some(first_deploy(&v1(), Some(at(0)))),
            },
        ),
        (
            Case::new(
                "a new platform still creating: the first deploy starts, no clock yet",
                Health::NotRead,
            )
            .new_platform()
            .not_steady(),
            Want {
                triple: None,
                compute: None,
                event: None,
                wait: None,
                first_deploy: Some(first_deploy(&v1(), None)),
            },
        ),
        (
            Case::new(
                "not steady: ComputeReady says why, Ready is not judged",
                read(1, vec![failing("i-1")]),
            )
            .with_first_deploy(first_deploy(&v1(), Some(at(-10_000))))
            .not_steady(),
            Want {
                triple: None,
                compute: Some((false, INSTANCES_UNHEALTHY)),
                event: None,
                wait: None,
                first_deploy: Some(first_deploy(&v1(), Some(at(-10_000)))),
            },
        ),
        (
            Case::new(
                "another revision became active before the first one served: its clock restarts",
                read(1, vec![booting("i-9")]),
            )
            .with_first_deploy(first_deploy(&v1(), Some(at(-10_000))))
            .active(v2()),
            Want {
                triple: Some(waiting_triple()),
                compute: Some((false, INSTANCES_UNHEALTHY)),
                event: None,
                wait: Some(Wait::Progress),
                first_deploy: Some(first_deploy(&v2(), Some(at(0)))),
            },
        ),
        (
            Case::new(
                "an unreadable start time restarts the clock instead of stalling",
                read(1, vec![failing("i-1")]),
            )
            .with_first_deploy(FirstDeployStatus {
                revision: v1().id,
                started_at: Some("yesterday".into()),
            }),
            Want {
                triple: Some(waiting_triple()),
                compute: Some((false, INSTANCES_UNHEALTHY)),
                event: None,
                wait: Some(Wait::Progress),
                first_deploy: Some(first_deploy(&v1(), Some(at(0)))),
            },
        ),
        (
            Case::new(
                "no health to read (no serving family): Ready as before",
                Health::NotRead,
            ),
            Want {
                triple: Some(ready_triple()),
                compute: None,
                event: Some((false, "Ready")),
                wait: Some(Wait::Resync),
                first_deploy: None,
            },
        ),
        (
            Case::new(
                "health unreadable for now: retry soon, ComputeReady kept",
                Health::Unreadable(ActError::retryable("Throttling", "Rate exceeded")),
            )
            .with_conditions(was_ready()),
            Want {
                triple: Some([
                    (false, HEALTH_UNKNOWN),
                    (true, HEALTH_UNKNOWN),
                    (false, HEALTH_UNKNOWN),
                ]),
                compute: None,
                event: None,
                wait: Some(Wait::Progress),
                first_deploy: None,
            },
        ),
        (
            Case::new(
                "health read refused: Stalled with AWS's code, warned once",
                Health::Unreadable(ActError::refused("AccessDenied", "not authorized")),
            ),
            Want {
                triple: Some([
                    (false, AWS_REFUSED),
                    (false, AWS_REFUSED),
                    (true, AWS_REFUSED),
                ]),
                compute: None,
                event: Some((true, AWS_REFUSED)),
                wait: Some(Wait::Resync),
                first_deploy: None,
            },
        ),
    ];
    for (case, want) in cases {
        let got = case.judge();
        let name = case.name;
        assert_eq!(
            triple(&got),
            want.triple,
            "{name}: Ready/Reconciling/Stalled"
        );
        assert_eq!(
            compute_of(&got),
            want.compute.map(|(s, r)| (s, r.to_owned())),
            "{name}: ComputeReady"
        );
        assert_eq!(event_of(&got), want.event, "{name}: event");
        assert_eq!(
            got.overall.as_ref().map(|o| o.wait),
            want.wait,
            "{name}: wait"
        );
        assert_eq!(got.first_deploy, want.first_deploy, "{name}: first deploy");
    }
}

impl Case {
    fn with_first_deploy(mut self, first_deploy: FirstDeployStatus) -> Self {
        self.first_deploy = Some(first_deploy);
        self
    }

    fn with_conditions(mut self, conditions: Vec<Condition>) -> Self {
        self.conditions = conditions;
        self
    }

    fn at(mut self, now: Timestamp) -> Self {
        self.now = now;
        self
    }

    fn new_platform(mut self) -> Self {
        self.new_platform = true;
        self
    }

    fn not_steady(mut self) -> Self {
        self.steady = false;
        self
    }

    fn active(mut self, active: AppRevision) -> Self {
        self.active = active;
        self
    }
}

#[test]
fn messages_say_how_many_of_how_many_and_why() {
    let mut health = ServingHealth {
        min_size: 2,
        targets: vec![healthy("i-0aaa"), failing("i-0abc")],
        ..ServingHealth::default()
    };
    health.activities = vec![ScalingActivity {
        status_code: "Successful".into(),
        description: "Terminating EC2 instance: i-0old".into(),
        cause: "At 2026-12-01T09:59:00Z an instance was taken out of service in response to an ELB system health check failure.".into(),
        status_message: None,
    }];
    let health = Health::Read(health);
    let stalled = Case::new("stalled", health.clone())
        .with_first_deploy(first_deploy(&v1(), Some(at(-700))))
        .judge();
    let overall = stalled
        .overall
        .as_ref()
        .unwrap_or_else(|| panic!("no verdicts"));
    let ready = &overall.verdicts[0];
    assert_eq!(
        ready.message,
        "version 1.0.0 has not served within 600s of its first deploy: \
         1 of 2 needed target(s) healthy; \
         i-0abc unhealthy: Target.ResponseCodeMismatch (Health checks failed with these codes: [500]); \
         scaling activities: Terminating EC2 instance: i-0old: At 2026-12-01T09:59:00Z an instance \
         was taken out of service in response to an ELB system health check failure."
    );
    let event = overall.event.as_ref().unwrap_or_else(|| panic!("no event"));
    assert_eq!(event.note, ready.message);
    let ComputeVerdict::Replace(compute) = &stalled.compute else {
        panic!("ComputeReady not judged: {:?}", stalled.compute);
    };
    assert!(
        compute.message.starts_with(
            "version 1.0.0 does not serve: 1 of 2 needed target(s) healthy; i-0abc unhealthy"
        ),
        "{}",
        compute.message
    );

    let waiting = Case::new("waiting", health)
        .with_first_deploy(first_deploy(&v1(), Some(at(-42))))
        .judge();
    let message = &waiting
        .overall
        .unwrap_or_else(|| panic!("no verdicts"))
        .verdicts[0]
        .message;
    assert!(
        message.starts_with(
            "waiting for healthy targets (first deploy of version 1.0.0, 42s of at most 600s): \
             1 of 2 needed target(s) healthy; i-0abc unhealthy: Target.ResponseCodeMismatch"
        ),
        "{message}"
    );
}

#[test]
fn compute_ready_is_left_alone_while_its_resources_are_not_in_place() {
    let progressing = Verdict::new(
        crate::compute::CONDITION,
        false,
        "Progressing",
        "1 change(s) in this pass",
    );
    let health = read(1, vec![failing("i-1")]);
    let got = judge(&Input {
        active: Some(&v1()),
        new_platform: false,
        first_deploy: None,
        steady: false,
        compute: Some(&progressing),
        health: &health,
        conditions: &[],
        timeout: TIMEOUT,
        now: t0(),
    });
    assert_eq!(got.compute, ComputeVerdict::Pass);
    assert_eq!(got.overall, None);
}

#[test]
fn the_compute_verdict_replaces_or_removes_the_passes_own() {
    let pass = || {
        vec![
            Verdict::new("NetworkReady", true, AVAILABLE, ""),
            compute_available(),
        ]
    };
    let mut replaced = pass();
    ComputeVerdict::Replace(Verdict::new(
        crate::compute::CONDITION,
        false,
        INSTANCES_UNHEALTHY,
        "why",
    ))
    .apply(&mut replaced, crate::compute::CONDITION);
    let computes: Vec<_> = replaced
        .iter()
        .filter(|v| v.type_ == crate::compute::CONDITION)
        .collect();
    assert_eq!(computes.len(), 1, "one ComputeReady, not two: {replaced:?}");
    assert_eq!(computes[0].reason, INSTANCES_UNHEALTHY);

    let mut unjudged = pass();
    ComputeVerdict::Unjudged.apply(&mut unjudged, crate::compute::CONDITION);
    assert!(
        unjudged
            .iter()
            .all(|v| v.type_ != crate::compute::CONDITION)
    );

    let mut kept = pass();
    ComputeVerdict::Pass.apply(&mut kept, crate::compute::CONDITION);
    assert_eq!(kept, pass());
}

#[test]
fn no_active_revision_decides_nothing() {
    let health = Health::NotRead;
    let previous = first_deploy(&v1(), Some(t0()));
    let got = judge(&Input {
        active: None,
        new_platform: true,
        first_deploy: Some(&previous),
        steady: true,
        compute: None,
        health: &health,
        conditions: &[],
        timeout: TIMEOUT,
        now: t0(),
    });
    assert_eq!(got.overall, None);
    assert_eq!(got.compute, ComputeVerdict::Pass);
    assert_eq!(got.first_deploy, Some(previous));
}
