//! Blue/green rollout end to end: a real controller against the real API server drives a whole
//! platform in a private strict emulator (its own, because the test makes a revision's targets
//! fail). A change of `app.version` moves the listener's weighted forward through the steps —
//! read back with DescribeListeners and in `status.app` — and survives an operator restart
//! mid-step; a revision whose targets fail is rolled back to blue with `RolloutFailed`.
//!
//! Steps are held `stepSeconds` × the controller's `rollout_step_scale` (0.1 here), so the CRD's
//! 30 s minimum stays as it is.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use plinth_crds::{DataPlatform, RolloutSpec};
use plinth_e2e::cluster::{
    RunningOperator, TestNamespace, condition, eventually, example, install_crd, is_true,
    test_settings,
};
use plinth_e2e::emulator::PrivateEmulator;
use plinth_e2e::kube_client;
use plinth_operator::aws::{AwsClients, AwsOptions};
use plinth_operator::components;
use plinth_operator::controller::Settings;
use plinth_operator::intent::AppRevision;
use plinth_operator::platform::Platform;
use serde_json::json;

/// Creating a whole platform (network, database, serving, compute, alarms) in the emulator.
const CONVERGE: Duration = Duration::from_secs(300);
const REVISION_TAG: &str = "plinth.dev/revision";
const SCALE: f64 = 0.1;

struct Rig {
    emulator: PrivateEmulator,
    client: Client,
    ns: TestNamespace,
    platform: Arc<Platform>,
    elbv2: aws_sdk_elasticloadbalancingv2::Client,
    autoscaling: aws_sdk_autoscaling::Client,
}

impl Rig {
    async fn new(test: &str) -> Self {
        // Short pending states: the platform converges in seconds, not minutes.
        let emulator = PrivateEmulator::start(&[("PLINTH_PENDING_SECONDS", "0.2")])
            .unwrap_or_else(|e| panic!("{e}"));
        let config = emulator
            .sdk_config()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let clients = AwsClients::from_config(&config, &AwsOptions::default());
        let platform = Arc::new(components::platform(&clients).unwrap_or_else(|e| panic!("{e}")));
        let client = kube_client().await.unwrap_or_else(|e| panic!("{e}"));
        install_crd(&client).await;
        let ns = TestNamespace::create(&client, test).await;
        Self {
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(&config),
            autoscaling: aws_sdk_autoscaling::Client::new(&config),
            emulator,
            client,
            ns,
            platform,
        }
    }

    fn settings(&self, identity: &str) -> Settings {
        let mut settings = test_settings(&self.ns.name, identity);
        settings.rollout_step_scale = SCALE;
        settings
    }

    fn operator(&self, identity: &str) -> RunningOperator {
        RunningOperator::start(
            self.client.clone(),
            self.settings(identity),
            self.platform.clone(),
        )
    }

    fn api(&self) -> Api<DataPlatform> {
        self.ns.platforms()
    }

    async fn get(&self, name: &str) -> DataPlatform {
        self.api()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("reading {name}: {e}"))
    }

    async fn wait(
        &self,
        timeout: Duration,
        name: &str,
        what: &str,
        check: impl Fn(&DataPlatform) -> bool,
    ) -> DataPlatform {
        let deadline = Instant::now() + timeout;
        loop {
            let dp = self.get(name).await;
            if check(&dp) {
                return dp;
            }
            if Instant::now() > deadline {
                let status = serde_json::to_string_pretty(&dp.status)
                    .unwrap_or_else(|e| panic!("status as JSON: {e}"));
                let events: Vec<String> = self
                    .ns
                    .events_for(name)
                    .await
                    .into_iter()
                    .map(|e| format!("{:?}: {:?}", e.reason, e.note))
                    .collect();
                panic!(
                    "timed out after {timeout:?} waiting for {what}; status: {status}; events: {events:#?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn set_version(&self, name: &str, version: &str) {
        self.api()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"app": {"version": version}}})),
            )
            .await
            .unwrap_or_else(|e| panic!("changing the version: {e}"));
    }

    /// The listener's weighted forward as revision id → weight, read with DescribeListeners and
    /// the target groups' `plinth.dev/revision` tags.
    async fn listener_weights(&self, dp: &DataPlatform) -> BTreeMap<String, i32> {
        let Some(balancer) = dp
            .status
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.load_balancer_arn.clone())
        else {
            return BTreeMap::new();
        };
        let listeners = self
            .elbv2
            .describe_listeners()
            .load_balancer_arn(balancer)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DescribeListeners: {e:?}"));
        let mut by_arn = BTreeMap::new();
        for listener in listeners.listeners() {
            for action in listener.default_actions() {
                match action.forward_config() {
                    Some(forward) if !forward.target_groups().is_empty() => {
                        for tuple in forward.target_groups() {
                            if let Some(arn) = tuple.target_group_arn() {
                                by_arn.insert(arn.to_owned(), tuple.weight().unwrap_or(1));
                            }
                        }
                    }
                    // A forward to one group may come back without the weighted form.
                    _ => {
                        if let Some(arn) = action.target_group_arn() {
                            by_arn.insert(arn.to_owned(), 100);
                        }
                    }
                }
            }
        }
        let revisions = self.target_group_revisions().await;
        by_arn
            .into_iter()
            .map(|(arn, weight)| {
                let revision = revisions.get(&arn).cloned().unwrap_or(arn);
                (revision, weight)
            })
            .collect()
    }

    /// Every target group in the emulator as ARN → its `plinth.dev/revision` tag.
    async fn target_group_revisions(&self) -> BTreeMap<String, String> {
        let groups = self
            .elbv2
            .describe_target_groups()
            .send()
            .await
            .unwrap_or_else(|e| panic!("DescribeTargetGroups: {e:?}"));
        let arns: Vec<String> = groups
            .target_groups()
            .iter()
            .filter_map(|g| g.target_group_arn().map(str::to_owned))
            .collect();
        let mut out = BTreeMap::new();
        for chunk in arns.chunks(20) {
            let tags = self
                .elbv2
                .describe_tags()
                .set_resource_arns(Some(chunk.to_vec()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("DescribeTags: {e:?}"));
            for description in tags.tag_descriptions() {
                let revision = description
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some(REVISION_TAG))
                    .and_then(|t| t.value());
                if let (Some(arn), Some(revision)) = (description.resource_arn(), revision) {
                    out.insert(arn.to_owned(), revision.to_owned());
                }
            }
        }
        out
    }

    /// The revisions that have a scaling group.
    async fn scaling_group_revisions(&self) -> Vec<String> {
        let groups = self
            .autoscaling
            .describe_auto_scaling_groups()
            .send()
            .await
            .unwrap_or_else(|e| panic!("DescribeAutoScalingGroups: {e:?}"));
        let mut revisions: Vec<String> = groups
            .auto_scaling_groups()
            .iter()
            .filter_map(|g| {
                g.tags()
                    .iter()
                    .find(|t| t.key() == Some(REVISION_TAG))
                    .and_then(|t| t.value().map(str::to_owned))
            })
            .collect();
        revisions.sort();
        revisions
    }

    /// Makes the targets of `revision`'s target group fail their health checks.
    async fn fail_targets_of(&self, revision: &AppRevision) {
        let url = format!("{}/_plinth/config", self.emulator.endpoint);
        let pattern = format!("{REVISION_TAG}={}", revision.id);
        plinth_e2e::http()
            .post(&url)
            .json(&json!({"unhealthy_target_groups": [pattern]}))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| panic!("configuring the emulator: {e}"));
    }

    async fn teardown(self, name: &str, operator: RunningOperator) {
        self.ns.delete_platform(name, CONVERGE).await;
        assert!(
            self.scaling_group_revisions().await.is_empty(),
            "teardown removed every scaling group"
        );
        operator.stop().await;
        self.ns.delete().await;
    }
}

fn spec_with_steps(
    name: &str,
    namespace: &str,
    steps: Vec<i32>,
    step_seconds: i32,
) -> DataPlatform {
    let mut dp = example("minimal.yaml", name, namespace);
    dp.spec.app.rollout = RolloutSpec {
        steps,
        step_seconds,
        ..RolloutSpec::default()
    };
    dp
}

fn rollout_of(dp: &DataPlatform) -> Option<(i32, i32, Option<String>)> {
    let rollout = dp.status.as_ref()?.app.as_ref()?.rollout.as_ref()?;
    Some((
        rollout.step,
        rollout.weight_percent,
        rollout.step_started_at.clone(),
    ))
}

fn active_version(dp: &DataPlatform) -> Option<String> {
    dp.status.as_ref()?.app.as_ref()?.active_version.clone()
}

async fn ready_at_v1(rig: &Rig, dp: &DataPlatform) -> (DataPlatform, AppRevision) {
    let name = dp.metadata.name.clone().unwrap_or_default();
    rig.api()
        .create(&PostParams::default(), dp)
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {e}"));
    let v1 = AppRevision::of(&dp.spec);
    let ready = rig
        .wait(CONVERGE, &name, "the platform Ready at 1.0.0", |dp| {
            is_true(dp, "Ready")
        })
        .await;
    let app = ready
        .status
        .as_ref()
        .and_then(|s| s.app.clone())
        .unwrap_or_else(|| panic!("no status.app"));
    assert_eq!(app.active_version.as_deref(), Some("1.0.0"));
    assert_eq!(app.active_revision.map(|r| r.id), Some(v1.id.clone()));
    assert_eq!(app.rollout, None);
    assert_eq!(
        rig.listener_weights(&ready).await,
        BTreeMap::from([(v1.id.clone(), 100)])
    );
    assert_eq!(
        rig.scaling_group_revisions().await,
        std::slice::from_ref(&v1.id)
    );
    (ready, v1)
}

/// A new version moves 20 → 60 → 100 % on the listener and in status, each step held; the
/// operator restarts mid-step and its successor resumes that step (same start, no new
/// rollout); at the end the new version is active and blue's scaling and target groups are gone.
#[tokio::test]
async fn a_new_version_moves_through_the_steps_and_resumes_after_an_operator_restart() {
    let rig = Rig::new("rollout-steps").await;
    let name = "steps";
    // 120 s × 0.1: each step holds 12 s, room for a restart inside one.
    let dp = spec_with_steps(name, &rig.ns.name, vec![20, 60, 100], 120);
    let first = rig.operator("steps-0");
    let (_, v1) = ready_at_v1(&rig, &dp).await;

    rig.set_version(name, "1.1.0").await;
    let mut changed = dp.spec.clone();
    changed.app.version = "1.1.0".into();
    let v2 = AppRevision::of(&changed);

    // Step 1 in status, then on the listener.
    let at_first_step = rig
        .wait(CONVERGE, name, "the rollout's first step", |dp| {
            rollout_of(dp).is_some_and(|(step, weight, _)| step == 0 && weight == 20)
        })
        .await;
    let (_, _, first_start) = rollout_of(&at_first_step).unwrap_or_else(|| panic!("no rollout"));
    let status_app = at_first_step.status.as_ref().and_then(|s| s.app.clone());
    let rollout = status_app
        .as_ref()
        .and_then(|a| a.rollout.clone())
        .unwrap_or_else(|| panic!("no rollout"));
    assert_eq!(rollout.target_version, "1.1.0");
    assert_eq!(rollout.target_revision.as_deref(), Some(v2.id.as_str()));
    assert_eq!(
        status_app.and_then(|a| a.active_version).as_deref(),
        Some("1.0.0")
    );
    assert!(!is_true(&at_first_step, "Ready"), "not Ready mid-rollout");
    let expected = BTreeMap::from([(v1.id.clone(), 80), (v2.id.clone(), 20)]);
    eventually(Duration::from_secs(10), "the listener at 80/20", || async {
        let dp = rig.get(name).await;
        (rig.listener_weights(&dp).await == expected).then_some(())
    })
    .await;

    // A restart mid-step: the successor has nothing but status and AWS to go on. (Aborting the
    // in-process replica's task would not free its Lease: the Lease watcher is a task of its
    // own that keeps renewing, so the stop is graceful.)
    first.stop().await;
    let restarted_at = Instant::now();
    let second = rig.operator("steps-1");

    // Record every step/weight in status and every weighted forward on the listener until the
    // rollout ends.
    let mut seen_status: Vec<(i32, i32, Option<String>)> = Vec::new();
    let mut seen_listener: Vec<BTreeMap<String, i32>> = vec![expected.clone()];
    let deadline = Instant::now() + Duration::from_secs(180);
    let done = loop {
        let dp = rig.get(name).await;
        assert!(
            Instant::now() < deadline,
            "the rollout never finished: {seen_status:?}; conditions: {:#?}",
            dp.status.as_ref().map(|s| &s.conditions)
        );
        if let Some(now) = rollout_of(&dp)
            && seen_status.last() != Some(&now)
        {
            seen_status.push(now);
        }
        let weights = rig.listener_weights(&dp).await;
        if seen_listener.last() != Some(&weights) && !weights.is_empty() {
            seen_listener.push(weights);
        }
        if active_version(&dp).as_deref() == Some("1.1.0") && is_true(&dp, "Ready") {
            break dp;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // The successor carried on with the step the restart interrupted: same step, same start.
    let first_seen = seen_status
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("no rollout status seen after the restart"));
    assert_eq!(
        first_seen,
        (0, 20, first_start.clone()),
        "resumed at the interrupted step ({:?} after the restart): {seen_status:?}",
        restarted_at.elapsed()
    );
    assert!(
        seen_status
            .iter()
            .filter(|(step, _, _)| *step == 0)
            .all(|(_, _, start)| *start == first_start),
        "step 1 was not started over: {seen_status:?}"
    );
    let weights: Vec<i32> = seen_status.iter().map(|(_, w, _)| *w).collect();
    let mut distinct = weights.clone();
    distinct.dedup();
    assert_eq!(distinct, [20, 60, 100], "status weights: {seen_status:?}");
    let steps: Vec<i32> = seen_status.iter().map(|(s, _, _)| *s).collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{seen_status:?}");

    // The listener followed: 80/20, 40/60, 0/100, then green alone.
    let green_weights: Vec<i32> = seen_listener
        .iter()
        .map(|w| w.get(&v2.id).copied().unwrap_or(0))
        .collect();
    for weight in [20, 60, 100] {
        assert!(
            green_weights.contains(&weight),
            "green at {weight}% on the listener: {seen_listener:?}"
        );
    }
    assert!(
        seen_listener.iter().all(|w| w.values().sum::<i32>() == 100),
        "{seen_listener:?}"
    );
    assert!(
        green_weights.windows(2).all(|w| w[0] <= w[1]),
        "green's weight never went back: {seen_listener:?}"
    );

    // Green is active; blue's scaling group and target group are gone.
    let app = done.status.as_ref().and_then(|s| s.app.clone());
    assert_eq!(
        app.as_ref()
            .and_then(|a| a.active_revision.as_ref())
            .map(|r| r.id.clone()),
        Some(v2.id.clone())
    );
    assert_eq!(app.and_then(|a| a.rollout), None);
    eventually(
        CONVERGE,
        "blue's scaling and target groups to be gone",
        || async {
            let dp = rig.get(name).await;
            let weights = rig.listener_weights(&dp).await;
            let groups = rig.scaling_group_revisions().await;
            let target_groups: Vec<String> =
                rig.target_group_revisions().await.into_values().collect();
            (weights == BTreeMap::from([(v2.id.clone(), 100)])
                && groups == [v2.id.clone()]
                && target_groups == [v2.id.clone()])
            .then_some(())
        },
    )
    .await;
    assert!(!is_true(&done, "RolloutFailed"));

    let events = rig.ns.wait_for_event(name, Some("RolloutSucceeded")).await;
    let count = |reason: &str| {
        events
            .iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .count()
    };
    assert_eq!(
        count("RolloutStarted"),
        1,
        "the successor did not start over"
    );
    assert!(count("RolloutStepAdvanced") >= 2);
    rig.teardown(name, second).await;
}

/// Green's targets fail once it takes traffic: all weight returns to blue, green's scaling and
/// target groups are removed, `RolloutFailed` is True with the reason, and the failed version
/// is not tried again.
#[tokio::test]
async fn a_version_whose_targets_fail_is_rolled_back_to_blue() {
    let rig = Rig::new("rollout-back").await;
    let name = "back";
    // 60 s × 0.1: each step holds 6 s.
    let dp = spec_with_steps(name, &rig.ns.name, vec![20, 60, 100], 60);
    let operator = rig.operator("back-0");
    let (_, v1) = ready_at_v1(&rig, &dp).await;

    rig.set_version(name, "2.0.0").await;
    let mut changed = dp.spec.clone();
    changed.app.version = "2.0.0".into();
    let v2 = AppRevision::of(&changed);
    rig.wait(CONVERGE, name, "green to take traffic", |dp| {
        rollout_of(dp).is_some_and(|(_, weight, _)| weight > 0)
    })
    .await;
    rig.fail_targets_of(&v2).await;

    let failed = rig
        .wait(Duration::from_secs(60), name, "RolloutFailed", |dp| {
            is_true(dp, "RolloutFailed")
        })
        .await;
    let (_, reason) = condition(&failed, "RolloutFailed").unwrap_or_default();
    assert_eq!(reason, "TargetsUnhealthy");
    let message = failed
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "RolloutFailed"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("2.0.0") && message.contains("unhealthy"),
        "{message}"
    );
    let app = failed.status.as_ref().and_then(|s| s.app.clone());
    assert_eq!(
        app.as_ref()
            .and_then(|a| a.active_version.clone())
            .as_deref(),
        Some("1.0.0")
    );
    assert_eq!(
        app.as_ref().and_then(|a| a.failed_revision.clone()),
        Some(v2.id.clone())
    );
    assert_eq!(app.and_then(|a| a.rollout), None);

    eventually(CONVERGE, "all weight on blue and green gone", || async {
        let dp = rig.get(name).await;
        let weights = rig.listener_weights(&dp).await;
        let groups = rig.scaling_group_revisions().await;
        let target_groups: Vec<String> = rig.target_group_revisions().await.into_values().collect();
        (weights == BTreeMap::from([(v1.id.clone(), 100)])
            && groups == [v1.id.clone()]
            && target_groups == [v1.id.clone()])
        .then_some(())
    })
    .await;
    let stalled = rig
        .wait(
            Duration::from_secs(30),
            name,
            "Stalled on the failed rollout",
            |dp| is_true(dp, "Stalled"),
        )
        .await;
    assert_eq!(
        condition(&stalled, "Ready"),
        Some(("False".into(), "RolloutFailed".into()))
    );
    rig.ns.wait_for_event(name, Some("RolloutFailed")).await;

    // The failed version is not retried while the spec names it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        rig.scaling_group_revisions().await,
        std::slice::from_ref(&v1.id)
    );
    let dp = rig.get(name).await;
    assert_eq!(rollout_of(&dp), None);
    assert_eq!(
        rig.listener_weights(&dp).await,
        BTreeMap::from([(v1.id.clone(), 100)])
    );
    rig.teardown(name, operator).await;
}
