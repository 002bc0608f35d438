//! One platform as the controller and the CLI see it: the engine's pass (desired → observe →
//! plan → act) over the list of AWS components, and the verdicts it supports — one condition
//! per component group (`NetworkReady`, …), derived from what the pass planned and what AWS
//! answered, never from memory.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tokio::sync::Mutex;

use plinth_crds::{DataPlatformSpec, DataPlatformStatus};

use crate::aws::AwsRegions;
use crate::controller::conditions::Verdict;
use crate::database;
pub use crate::engine::PassError;
use crate::engine::{
    ActError, Component, Components, DesiredError, DesiredGraph, DuplicateKind, Engine,
    ExecuteOptions, Journal, Kind, Observed, ObservedResource, Pass, Plan, Report, Scope,
};
use crate::intent::Intent;

/// One component family (the network, the database, …) as one value: what it manages and how
/// the platform judges, reports and tears it down. Each family's `mod.rs` builds its own.
pub struct Family {
    /// Its components: what the spec wants of each kind, and the drivers.
    pub components: Vec<Arc<dyn Component<Intent>>>,
    /// Its condition, status writer and retention rule.
    pub group: Group,
}

/// What the platform keeps of a family besides its components.
#[derive(Clone, Copy, Debug)]
pub struct Group {
    /// The condition type judging the family, e.g. `NetworkReady`.
    pub condition: &'static str,
    /// The family's kinds.
    pub kinds: &'static [Kind],
    /// Writes its outputs (resource ids, endpoints) into the status.
    pub outputs: Outputs,
    /// Whether a teardown under the spec keeps the family's resources in AWS.
    pub retained: fn(&DataPlatformSpec) -> bool,
}

/// A family whose resources every teardown deletes.
pub fn never_retained(_: &DataPlatformSpec) -> bool {
    false
}

/// What one apply pass planned and did, and how each component group stands.
#[derive(Debug)]
pub struct PassOutcome {
    /// The engine's pass.
    pub pass: Pass,
    /// One verdict per component group.
    pub verdicts: Vec<Verdict>,
}

impl PassOutcome {
    /// AWS matches the spec: nothing was planned and nothing is on its way.
    pub fn is_converged(&self) -> bool {
        self.pass.plan.is_empty() && self.pass.report.is_settled()
    }
}

/// What one teardown pass did ([`Platform::teardown`]).
#[derive(Debug)]
pub struct Teardown {
    /// The engine's pass: `found == 0` means nothing the deletion policy lets go remains.
    pub pass: Pass,
    /// What the deletion policy keeps, tagged `plinth.dev/retained=true` once the pass found
    /// nothing else.
    pub retained: Vec<ObservedResource>,
}

/// Why a teardown pass did not run through.
#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    /// The deletion policy could not be recorded on the cluster.
    #[error("recording the deletion policy: {0}")]
    Policy(ActError),
    /// The pass could not run.
    #[error(transparent)]
    Pass(#[from] PassError),
    /// What the policy keeps could not be tagged as retained.
    #[error("tagging the retained resources: {0}")]
    Marking(ActError),
}

impl TeardownError {
    /// Whether another pass cannot help (AWS refused, or the spec is wrong).
    pub fn is_refusal(&self) -> bool {
        match self {
            Self::Policy(e) | Self::Marking(e) => matches!(e, ActError::Refused { .. }),
            Self::Pass(e) => e.is_refusal(),
        }
    }
}

/// Writes one component family's outputs (resource ids, endpoints) into the status from what a
/// pass observed.
pub type Outputs = fn(&Observed, &mut DataPlatformStatus);

/// The engine wired to a list of components.
pub struct Platform {
    components: Components<Intent>,
    groups: Vec<Group>,
    options: ExecuteOptions,
    clients: Option<crate::aws::AwsClients>,
}

impl Platform {
    /// A platform engine over `families`: their components in one graph, a condition, a status
    /// writer and a retention rule each.
    pub fn new(
        families: impl IntoIterator<Item = Family>,
        options: ExecuteOptions,
    ) -> Result<Self, DuplicateKind> {
        let (components, groups): (Vec<_>, Vec<_>) = families
            .into_iter()
            .map(|family| (family.components, family.group))
            .unzip();
        Ok(Self {
            components: Components::new(components.into_iter().flatten())?,
            groups,
            options,
            clients: None,
        })
    }

    /// Adds the AWS clients the components act through, for reads outside a pass (the
    /// rollout's gates).
    #[must_use]
    pub fn with_clients(mut self, clients: crate::aws::AwsClients) -> Self {
        self.clients = Some(clients);
        self
    }

    /// The AWS clients the components act through; `None` for a platform built without AWS
    /// (tests of the Kubernetes side).
    pub fn clients(&self) -> Option<&crate::aws::AwsClients> {
        self.clients.as_ref()
    }

    /// Writes every family's outputs from `observed` into `status`.
    pub fn write_outputs(&self, observed: &Observed, status: &mut DataPlatformStatus) {
        for group in &self.groups {
            (group.outputs)(observed, status);
        }
    }

    /// Every IAM action its components' calls need: the operator's policy (`plinth iam-policy`).
    pub fn iam_actions(&self) -> std::collections::BTreeSet<&'static str> {
        self.components.iam_actions()
    }

    /// Every kind its components handle.
    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        self.components.kinds()
    }

    /// The condition types this platform reports, besides Ready/Reconciling/Stalled.
    pub fn group_conditions(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.groups.iter().map(|g| g.condition)
    }

    fn engine<'a>(&'a self, scope: &'a Scope, journal: Option<&'a Journal>) -> Engine<'a, Intent> {
        let engine = Engine::new(&self.components, scope, self.options);
        match journal {
            Some(journal) => engine.with_journal(journal),
            None => engine,
        }
    }

    /// What a pass would do; changes nothing (`plinth plan`).
    pub async fn plan(&self, scope: &Scope, intent: &Intent) -> Result<Pass, PassError> {
        self.engine(scope, None).preview(intent).await
    }

    /// One pass toward the spec. `journal` remembers this platform's creates and deletes across
    /// passes, for AWS's eventual consistency (the controller's and the CLI's); `None` is for
    /// tools that look once.
    pub async fn apply(
        &self,
        scope: &Scope,
        intent: &Intent,
        journal: Option<&Journal>,
    ) -> Result<PassOutcome, PassError> {
        let pass = self.engine(scope, journal).reconcile(intent).await?;
        let verdicts = self.verdicts(&pass.plan, &pass.report);
        Ok(PassOutcome { pass, verdicts })
    }

    /// One teardown pass under the spec's deletion policy, the same for the controller and the
    /// CLI: the policy is first recorded on the cluster (its delete follows the tag), then
    /// everything tagged for the platform is deleted, dependents first, except what the
    /// policy keeps (each family's [`Group::retained`]; `Retain`: the database and its
    /// network). Once
    /// nothing else remains (`pass.found == 0`, counting the recent creates `journal`
    /// remembers that AWS does not list yet), what was kept is tagged
    /// `plinth.dev/retained=true`.
    pub async fn teardown(
        &self,
        scope: &Scope,
        spec: &DataPlatformSpec,
        journal: Option<&Journal>,
    ) -> Result<Teardown, TeardownError> {
        if let Some(clients) = &self.clients {
            database::sync_deletion_policy(clients, scope, spec)
                .await
                .map_err(TeardownError::Policy)?;
        }
        let retained = std::sync::Mutex::new(Vec::new());
        let retain = |resource: &ObservedResource| {
            let keep = self.retains(spec, resource);
            if keep {
                let mut kept = retained.lock().unwrap_or_else(|p| p.into_inner());
                kept.push(resource.clone());
            }
            keep
        };
        let intent = Intent::steady(spec.clone());
        let pass = self
            .engine(scope, journal)
            .teardown(Some(&intent), &retain)
            .await?;
        let retained = retained.into_inner().unwrap_or_else(|p| p.into_inner());
        if pass.found == 0 && !retained.is_empty() {
            match &self.clients {
                Some(clients) => {
                    database::mark_retained(clients, &retained)
                        .await
                        .map_err(TeardownError::Marking)?;
                }
                None => tracing::warn!(
                    "an engine without AWS clients of its own: the retained resources are not tagged"
                ),
            }
        }
        Ok(Teardown { pass, retained })
    }

    /// What `intent` wants of every component, as one graph.
    pub fn desired(&self, intent: &Intent) -> Result<DesiredGraph, DesiredError> {
        self.components.desired(intent)
    }

    /// Whether a teardown under `spec` leaves `resource` in AWS: its family's rule says so.
    pub fn retains(&self, spec: &DataPlatformSpec, resource: &ObservedResource) -> bool {
        self.groups
            .iter()
            .any(|g| g.kinds.contains(&resource.kind) && (g.retained)(spec))
    }

    /// Judges each group: ready only when the pass planned nothing for its kinds and nothing
    /// of them is pending or failed.
    fn verdicts(&self, plan: &Plan, report: &Report) -> Vec<Verdict> {
        self.groups
            .iter()
            .map(|group| {
                let kinds: BTreeSet<Kind> = group.kinds.iter().copied().collect();
                let mine = |kind: &Kind| kinds.contains(kind);
                if let Some(failure) = report.refused.iter().find(|f| mine(&f.kind)) {
                    return Verdict::new(
                        group.condition,
                        false,
                        "Refused",
                        format!("{}: {}", failure.key, failure.error),
                    );
                }
                if let Some(failure) = report.retryable.iter().find(|f| mine(&f.kind)) {
                    return Verdict::new(
                        group.condition,
                        false,
                        "Retrying",
                        format!("{}: {}", failure.key, failure.error),
                    );
                }
                let acted = plan.actions.iter().filter(|a| mine(&a.kind)).count();
                let waiting = plan.waits.iter().filter(|w| mine(&w.kind)).count();
                if acted == 0 && waiting == 0 {
                    Verdict::new(
                        group.condition,
                        true,
                        "Available",
                        "every resource exists and matches the spec",
                    )
                } else if let Some(wait) = plan.waits.iter().find(|w| mine(&w.kind)) {
                    Verdict::new(
                        group.condition,
                        false,
                        "Progressing",
                        format!(
                            "{} {}; {acted} change(s) in this pass",
                            wait.key, wait.reason
                        ),
                    )
                } else {
                    Verdict::new(
                        group.condition,
                        false,
                        "Progressing",
                        format!("{acted} change(s) in this pass"),
                    )
                }
            })
            .collect()
    }
}

/// Where the controller finds the engine for a platform: each platform names its own region, and
/// each region has its own AWS clients.
pub enum Platforms {
    /// One engine for every platform, whatever its region (tests of the Kubernetes side).
    Fixed(Arc<Platform>),
    /// One engine per region, built over that region's clients the first time it is needed.
    PerRegion {
        /// The AWS clients of each region.
        regions: AwsRegions,
        /// The engines built so far.
        engines: Mutex<HashMap<String, Arc<Platform>>>,
        /// Builds an engine over one region's clients (normally `components::platform`).
        build: fn(&crate::aws::AwsClients) -> Result<Platform, DuplicateKind>,
    },
}

impl Platforms {
    /// Engines per region over `regions`, built by `build`.
    pub fn per_region(
        regions: AwsRegions,
        build: fn(&crate::aws::AwsClients) -> Result<Platform, DuplicateKind>,
    ) -> Self {
        Self::PerRegion {
            regions,
            engines: Mutex::default(),
            build,
        }
    }

    /// The engine for platforms in `region`.
    pub async fn for_region(&self, region: &str) -> Result<Arc<Platform>, DuplicateKind> {
        match self {
            Self::Fixed(platform) => Ok(platform.clone()),
            Self::PerRegion {
                regions,
                engines,
                build,
            } => {
                let mut engines = engines.lock().await;
                if let Some(platform) = engines.get(region) {
                    return Ok(platform.clone());
                }
                let clients = regions.get(region).await;
                let platform = Arc::new(build(&clients)?);
                engines.insert(region.to_owned(), platform.clone());
                Ok(platform)
            }
        }
    }
}
