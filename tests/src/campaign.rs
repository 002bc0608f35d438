//! One lifecycle trial of a platform under an operator process, shared by the crash and the
//! faults campaigns: create → Ready, a new app version rolled out blue/green → Ready, delete →
//! gone. Optionally a replica is SIGKILLed at a random moment in each phase and a new one takes
//! over. After each phase AWS is read back with the engine's own observe: duplicates (two
//! resources for one component) and, after the delete, anything left.

use std::time::{Duration, Instant};

use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use plinth_crds::DataPlatform;
use plinth_operator::aws::AwsClients;
use plinth_operator::components;
use plinth_operator::engine::{Observed, Pass, PassError, Scope};
use plinth_operator::intent::Intent;
use plinth_operator::platform::Platform;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cluster::{OperatorProcess, TEST_MANAGER, TestNamespace, condition, example};

/// The operator's visibility window (`PLINTH_AWS_VISIBILITY_SECONDS`) in a campaign run
/// with the emulator's lag (`--lag`): above its longest delay (15 s, the tagging API), far below
/// the production default.
pub const LAG_VISIBILITY_SECONDS: &str = "30";

/// Why a trial could not run to its end.
pub type Failure = Box<dyn std::error::Error>;

/// How the replicas of a trial are started: the operator binary and the environment they get
/// on top of the stack's (a private emulator's endpoint, a short Lease).
pub struct Replicas<'a> {
    /// The operator binary.
    pub binary: &'a str,
    /// Extra environment, set last.
    pub env: Vec<(&'a str, &'a str)>,
}

impl Replicas<'_> {
    fn spawn(&self, namespace: &str, identity: &str) -> OperatorProcess {
        OperatorProcess::spawn_with(self.binary, namespace, identity, &self.env)
    }
}

/// What a trial does.
pub struct Trial<'a> {
    /// The file in `examples/` the platform is made from.
    pub example: &'a str,
    /// Seed of the kill moments; trial `i` uses `seed + i`.
    pub seed: u64,
    /// SIGKILL a replica within this many milliseconds after each phase starts; `None` runs
    /// each phase with one replica, untouched.
    pub kill_within_ms: Option<u64>,
    /// Give up on a phase after this long.
    pub timeout: Duration,
}

/// What one trial found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Components AWS holds more than one resource for, after create and after the rollout.
    pub duplicates: Vec<String>,
    /// Resources left for the platform after the delete.
    pub leaked: usize,
    /// AWS calls the replicas that finished each phase made (a killed replica's are lost).
    pub calls: u64,
}

impl Verdict {
    /// Converged with nothing duplicated and nothing left.
    pub fn is_clean(&self) -> bool {
        self.duplicates.is_empty() && self.leaked == 0
    }
}

/// Ready for the current generation, with no rollout in flight.
pub fn ready(dp: &DataPlatform) -> bool {
    condition(dp, "Ready").is_some_and(|(status, _)| status == "True")
        && dp.status.as_ref().and_then(|s| s.observed_generation) == dp.metadata.generation
        && dp
            .status
            .as_ref()
            .and_then(|s| s.app.as_ref())
            .is_none_or(|app| app.rollout.is_none())
}

async fn wait(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Result<bool, Failure>,
) -> Result<(), Failure> {
    let started = Instant::now();
    while !check().await? {
        if started.elapsed() > timeout {
            return Err(format!("{what}: not within {timeout:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

/// A pass of `platform` for `scope` that only reads, retried up to ten times half a second
/// apart: under injected faults one read in a few hundred still fails after the SDK's retries,
/// and a check must not mistake that for a verdict. The last error when every attempt failed.
pub async fn read_back(
    platform: &Platform,
    scope: &Scope,
    intent: &Intent,
) -> Result<Pass, PassError> {
    let mut attempt = 0;
    loop {
        match platform.plan(scope, intent).await {
            Ok(pass) => return Ok(pass),
            Err(_) if attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// What AWS holds for the platform, by the engine's own observe through `aws`, retried as
/// [`read_back`] does.
pub async fn observe(
    aws: &AwsClients,
    scope: &Scope,
    intent: &Intent,
) -> Result<Observed, Failure> {
    let platform = components::platform(aws)?;
    Ok(read_back(&platform, scope, intent).await?.observed)
}

/// Duplicates per kind in what AWS holds for the platform.
async fn duplicates(
    aws: &AwsClients,
    scope: &Scope,
    intent: &Intent,
) -> Result<Vec<String>, Failure> {
    Ok(observe(aws, scope, intent)
        .await?
        .duplicated()
        .map(|(key, extra)| {
            let ids: Vec<&str> = extra.iter().map(|r| r.id.as_str()).collect();
            format!("{key}: {} extra ({})", extra.len(), ids.join(", "))
        })
        .collect())
}

/// The duplicates the operator found and deleted in `namespace`, from its
/// `DuplicateDeleted` warning events.
async fn duplicates_deleted(
    client: &kube::Client,
    namespace: &str,
) -> Result<Vec<String>, Failure> {
    let events: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(client.clone(), namespace);
    Ok(events
        .list(&kube::api::ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(plinth_operator::controller::reconcile::DUPLICATE_DELETED)
        })
        .map(|e| format!("made and deleted again: {}", e.message.unwrap_or_default()))
        .collect())
}

impl Trial<'_> {
    /// The replica that must finish a phase: with kills, a first one is SIGKILLed at a random
    /// moment within the window and a second started.
    async fn replica_for(
        &self,
        replicas: &Replicas<'_>,
        namespace: &str,
        rng: &mut StdRng,
        phase: &str,
    ) -> OperatorProcess {
        let Some(window_ms) = self.kill_within_ms else {
            return replicas.spawn(namespace, phase);
        };
        let first = replicas.spawn(namespace, &format!("{phase}-a"));
        let after = rng.random_range(0..=window_ms);
        tokio::time::sleep(Duration::from_millis(after)).await;
        first.kill();
        replicas.spawn(namespace, &format!("{phase}-b"))
    }

    /// Runs trial `index`: create, roll out, delete, each finished by a replica of `replicas`;
    /// `aws` reads AWS back.
    pub async fn run(
        &self,
        index: u64,
        replicas: &Replicas<'_>,
        client: &kube::Client,
        aws: &AwsClients,
        label: &str,
    ) -> Result<Verdict, Failure> {
        let mut rng = StdRng::seed_from_u64(self.seed + index);
        let ns = TestNamespace::create(client, label).await;
        let namespace = ns.name.clone();
        let api = ns.platforms();
        let name = label;
        let dp = example(self.example, name, &namespace);
        let scope = Scope::new(&namespace, name, dp.spec.tags.clone());
        let mut verdict = Verdict::default();
        // The replica that finished a phase: its calls counted, then gone.
        let finished = async |replica: OperatorProcess, verdict: &mut Verdict| {
            verdict.calls += replica
                .aws_calls()
                .await
                .map_or(0, |calls| calls.values().sum());
            replica.kill();
        };
        // A phase's end: Ready, AWS read back for duplicates, the replica finished.
        let converged = async |what: &str,
                               replica: OperatorProcess,
                               verdict: &mut Verdict|
               -> Result<Intent, Failure> {
            wait(what, self.timeout, async || {
                Ok(ready(&api.get(name).await?))
            })
            .await?;
            let intent = Intent::steady(api.get(name).await?.spec);
            verdict
                .duplicates
                .extend(duplicates(aws, &scope, &intent).await?);
            finished(replica, verdict).await;
            Ok(intent)
        };

        api.create(&PostParams::default(), &dp).await?;
        let replica = self
            .replica_for(replicas, &namespace, &mut rng, "create")
            .await;
        converged("Ready after the create", replica, &mut verdict).await?;

        // A new app version: a blue/green rollout. Steps of 30 s, which the replicas'
        // PLINTH_ROLLOUT_STEP_SCALE shortens.
        let patch = serde_json::json!({"spec": {"app": {"version": "1.0.1", "rollout": {"stepSeconds": 30}}}});
        api.patch(
            name,
            &PatchParams::apply(TEST_MANAGER),
            &Patch::Merge(&patch),
        )
        .await?;
        let replica = self
            .replica_for(replicas, &namespace, &mut rng, "update")
            .await;
        let intent = converged("Ready after the rollout", replica, &mut verdict).await?;

        api.delete(name, &DeleteParams::default()).await?;
        let replica = self
            .replica_for(replicas, &namespace, &mut rng, "delete")
            .await;
        wait(
            "the platform gone after the delete",
            self.timeout,
            async || Ok(api.get_opt(name).await?.is_none()),
        )
        .await?;
        finished(replica, &mut verdict).await;
        verdict.leaked = observe(aws, &scope, &intent).await?.len();
        // A duplicate the operator made and deleted again is gone from AWS by now: its warning
        // event still says so.
        verdict
            .duplicates
            .extend(duplicates_deleted(client, &namespace).await?);
        ns.delete().await;
        Ok(verdict)
    }
}
