//! One pass of the loop, as the controller and the CLI run it: desired → observe → plan → act,
//! or the same towards nothing for teardown. Level-triggered: every pass starts from a fresh
//! observe, never from what an earlier pass remembers.

use super::act::ActError;
use super::component::{Components, DesiredError};
use super::desired::DesiredGraph;
use super::execute::{ExecuteOptions, Report, execute_journaled};
use super::identity::Scope;
use super::journal::{Journal, Unlisted};
use super::observed::{Lifecycle, Observed, ObservedResource};
use super::plan::{Plan, plan, plan_teardown};

/// Why a pass could not even plan.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The spec cannot be turned into components.
    #[error(transparent)]
    Desired(#[from] DesiredError),
    /// AWS could not be read, so no safe plan exists.
    #[error("reading the platform's resources from AWS failed: {0}")]
    Observe(#[source] ActError),
}

impl PassError {
    /// Whether retrying the same spec cannot help: the spec cannot be built, or AWS refused the
    /// reads themselves (permissions).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Desired(_) | Self::Observe(ActError::Refused { .. })
        )
    }

    /// A static label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Desired(_) => "desired",
            Self::Observe(_) => "observe",
        }
    }
}

/// What a pass planned and what acting on it did.
#[derive(Debug)]
pub struct Pass {
    /// The plan made from this pass's observe.
    pub plan: Plan,
    /// What acting did (empty for a preview).
    pub report: Report,
    /// How many of the platform's resources the observe found, plus the recent creates AWS may
    /// not list yet ([`Pass::unlisted`]): zero at the start of a teardown pass means
    /// everything is gone and the finalizer may go.
    pub found: usize,
    /// Recent creates the journal remembers that the observe did not list.
    pub unlisted: Vec<Unlisted>,
    /// What the observe found (retained resources left out), for the outputs status reports
    /// (resource ids, endpoints).
    pub observed: Observed,
}

/// The engine for one platform: the component list, the platform's scope, and how many AWS
/// calls may be in flight.
pub struct Engine<'a, S> {
    components: &'a Components<S>,
    scope: &'a Scope,
    options: ExecuteOptions,
    journal: Option<&'a Journal>,
}

impl<'a, S> Engine<'a, S> {
    /// The engine acting for `scope` through `components`.
    pub fn new(components: &'a Components<S>, scope: &'a Scope, options: ExecuteOptions) -> Self {
        Self {
            components,
            scope,
            options,
            journal: None,
        }
    }

    /// The same engine remembering its creates and deletes in `journal`, which also corrects
    /// every observe for what AWS does not show yet (see [`super::journal`]).
    #[must_use]
    pub fn with_journal(mut self, journal: &'a Journal) -> Self {
        self.journal = Some(journal);
        self
    }

    /// `observed` with a stand-in, still being created, for each recent create AWS answered
    /// but does not list yet. The plan then waits for it instead of creating it again, and its
    /// dependents, which AWS may already list, keep their reference to its id: without it they
    /// would look moved to a component about to be made, and be replaced.
    fn standing_in(&self, mut observed: Observed, unlisted: &[Unlisted]) -> Observed {
        for entry in unlisted {
            let (Some(id), Some(kind)) =
                (entry.id.as_deref(), self.components.kind_named(&entry.kind))
            else {
                continue;
            };
            observed.stand_in(
                ObservedResource::new(kind, entry.key.clone(), id).lifecycle(Lifecycle::Pending),
            );
        }
        observed
    }

    async fn observe(&self) -> Result<(Observed, Vec<Unlisted>), PassError> {
        let observed = self
            .components
            .observe(self.scope, self.options.concurrency.get())
            .await
            .map_err(PassError::Observe)?;
        Ok(match self.journal {
            Some(journal) => journal.view(observed).await,
            None => (observed, Vec::new()),
        })
    }

    async fn execute(&self, plan: &Plan, observed: &Observed) -> Report {
        execute_journaled(
            plan,
            observed,
            self.components,
            self.scope,
            self.options,
            self.journal,
        )
        .await
    }

    /// What a pass would do, changing nothing (`plinth plan`).
    pub async fn preview(&self, spec: &S) -> Result<Pass, PassError> {
        let desired = self.components.desired(spec)?;
        let (observed, unlisted) = self.observe().await?;
        let found = observed.len() + unlisted.len();
        let observed = self.standing_in(observed, &unlisted);
        Ok(Pass {
            plan: plan(&desired, &observed),
            report: Report::default(),
            found,
            unlisted,
            observed,
        })
    }

    /// One reconcile pass: make AWS match `spec` as far as AWS allows right now.
    pub async fn reconcile(&self, spec: &S) -> Result<Pass, PassError> {
        let desired = self.components.desired(spec)?;
        let (observed, unlisted) = self.observe().await?;
        let found = observed.len() + unlisted.len();
        let observed = self.standing_in(observed, &unlisted);
        let plan = plan(&desired, &observed);
        let report = self.execute(&plan, &observed).await;
        Ok(Pass {
            plan,
            report,
            found,
            unlisted,
            observed,
        })
    }

    /// One teardown pass: delete what Plinth created for the platform, dependents first.
    /// `spec`, when still readable, only helps ordering. Resources `retain` selects are left in
    /// place and not counted in [`Pass::found`] (a `Retain` deletion policy); what they depend
    /// on is retained with them by the caller's choice of `retain`.
    pub async fn teardown(
        &self,
        spec: Option<&S>,
        retain: &(dyn Fn(&ObservedResource) -> bool + Sync),
    ) -> Result<Pass, PassError> {
        let hints = match spec {
            Some(spec) => self.components.desired(spec)?,
            None => DesiredGraph::empty(),
        };
        let (observed, unlisted) = self.observe().await?;
        let observed = observed.without(retain);
        let plan = plan_teardown(&hints, &observed);
        let mut report = self.execute(&plan, &observed).await;
        // What AWS may have made but does not list yet cannot be deleted yet: the teardown
        // waits for it rather than releasing the finalizer over it.
        for entry in &unlisted {
            report.pending.push(super::execute::Pending {
                key: entry.key.clone(),
                // A kind no longer registered (a journal saved by an older operator) still
                // holds the teardown; it is named as such.
                kind: self
                    .components
                    .kind_named(&entry.kind)
                    .unwrap_or(super::key::Kind("unregistered")),
                reason: format!(
                    "created {} s ago ({}); AWS does not list it yet",
                    entry.age.as_secs(),
                    entry.id.as_deref().unwrap_or("no answer")
                ),
            });
        }
        Ok(Pass {
            plan,
            report,
            found: observed.len() + unlisted.len(),
            unlisted,
            observed,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::testing::{Behaviour, FakeCloud, Net, scope};

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn passes_can_run_on_a_multi_threaded_runtime() {
        // kube's controller and tokio::spawn need Send futures; this fails to compile if a
        // non-Send value is ever held across an await in the engine.
        let cloud = FakeCloud::new(Duration::ZERO);
        let components = cloud.components();
        let scope = scope();
        let engine = Engine::new(&components, &scope, ExecuteOptions::default());
        let spec = Net::new(&["a"]);
        assert_send(&engine.preview(&spec));
        assert_send(&engine.reconcile(&spec));
        assert_send(&engine.teardown(Some(&spec), &|_| false));
    }

    #[tokio::test]
    async fn passes_converge_then_tear_down_leaving_what_is_retained() {
        let cloud = FakeCloud::new(Duration::from_millis(1));
        cloud.behave("nat/a", Behaviour::CreatePending);
        let components = cloud.components();
        let scope = scope();
        let engine = Engine::new(&components, &scope, ExecuteOptions::default());
        let spec = Net::new(&["a", "b"]);

        let preview = engine
            .preview(&spec)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(preview.plan.actions.len(), 9);
        assert_eq!(cloud.state().write_calls, 0, "a preview changes nothing");

        let mut passes = 0;
        loop {
            passes += 1;
            assert!(passes < 10, "never converged");
            let pass = engine
                .reconcile(&spec)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            if pass.plan.is_empty() {
                break;
            }
            cloud.finish_creates();
        }
        assert_eq!(passes, 3, "create, finish the NAT's route, confirm");

        let keep_vpc = |r: &ObservedResource| r.key.as_str() == "vpc";
        let mut passes = 0;
        loop {
            passes += 1;
            assert!(passes < 10, "never finished");
            let pass = engine
                .teardown(Some(&spec), &keep_vpc)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            if pass.found == 0 {
                break;
            }
        }
        assert_eq!(passes, 2);
        let left: Vec<String> = cloud.observed().keys().map(ToString::to_string).collect();
        assert_eq!(left, ["vpc"]);
    }
}
