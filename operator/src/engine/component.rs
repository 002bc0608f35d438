//! What a component is: a [`Driver`] for one kind of resource that also knows which resources of
//! its kind a spec wants. The controller and the CLI build one [`Components`] list from the AWS
//! modules and hand it to the engine; adding a resource kind means one new component in its
//! module and one entry in that list.
//!
//! Generic over the spec type `S` so the engine needs neither the CRD crate nor Kubernetes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::StreamExt as _;
use futures::stream;

use super::act::{ActError, Driver, Drivers};
use super::desired::{DesiredGraph, DesiredResource, GraphError};
use super::identity::Scope;
use super::key::Kind;
use super::observed::{Observed, ObservedResource};
use super::reads::Reads;

/// A spec the engine cannot turn into a graph of components.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DesiredError {
    /// The spec asks for something impossible (no room for the subnets, …): the user must change
    /// it. The message says what to change.
    #[error("{kind}: {message}")]
    Invalid {
        /// The component that could not be derived.
        kind: Kind,
        /// What to change.
        message: String,
    },
    /// A component emitted a resource of another kind (a bug in that component).
    #[error("component {component} emitted {key} of kind {emitted}")]
    WrongKind {
        /// The component's kind.
        component: Kind,
        /// The kind it emitted.
        emitted: Kind,
        /// The key it emitted.
        key: String,
    },
    /// The components do not form a graph (a bug in a component).
    #[error(transparent)]
    Graph(#[from] GraphError),
}

/// The resources of one kind a spec wants, or why the spec cannot have them.
pub type Wanted = Result<Vec<DesiredResource>, DesiredError>;

/// One kind of AWS resource, as the spec wants it and as AWS has it.
pub trait Component<S>: Driver {
    /// The resources of this component's kind that `spec` wants (none is a valid answer: no NAT
    /// gateways when the spec says so). Pure: no AWS calls.
    fn desired(&self, spec: &S) -> Wanted;
}

/// Two components registered for one kind.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("two components are registered for kind {0}")]
pub struct DuplicateKind(pub Kind);

/// The list of components the controller and the CLI hand the engine.
pub struct Components<S> {
    by_kind: BTreeMap<Kind, Arc<dyn Component<S>>>,
}

impl<S> Components<S> {
    /// Registers the components, one per kind.
    pub fn new(
        components: impl IntoIterator<Item = Arc<dyn Component<S>>>,
    ) -> Result<Self, DuplicateKind> {
        let mut by_kind = BTreeMap::new();
        for component in components {
            let kind = component.kind();
            if by_kind.insert(kind, component).is_some() {
                return Err(DuplicateKind(kind));
            }
        }
        Ok(Self { by_kind })
    }

    /// Every component's desired resources, checked into one graph.
    pub fn desired(&self, spec: &S) -> Result<DesiredGraph, DesiredError> {
        let mut all = Vec::new();
        for (kind, component) in &self.by_kind {
            for resource in component.desired(spec)? {
                if resource.kind() != *kind {
                    return Err(DesiredError::WrongKind {
                        component: *kind,
                        emitted: resource.kind(),
                        key: resource.key().to_string(),
                    });
                }
                all.push(resource);
            }
        }
        Ok(DesiredGraph::new(all)?)
    }

    /// Observes every kind, up to `concurrency` describe calls at once. Fails as a whole when
    /// one kind cannot be read: a plan from a partial view would delete or duplicate things.
    pub async fn observe(&self, scope: &Scope, concurrency: usize) -> Result<Observed, ActError> {
        let reads = Reads::new();
        let results: Vec<Result<Vec<ObservedResource>, ActError>> =
            // The futures are made before they are streamed: a closure over `&Arc<dyn …>`
            // inside the stream would make the whole pass's future fail the `Send` check the
            // controller's runtime needs (a higher-ranked lifetime the compiler cannot prove).
            stream::iter(
                self.by_kind
                    .values()
                    .map(|component| component.observe(scope, &reads))
                    .collect::<Vec<_>>(),
            )
            .buffer_unordered(concurrency.max(1))
                .collect()
                .await;
        let mut found = Vec::new();
        for result in results {
            found.extend(result?);
        }
        Ok(Observed::new(found))
    }

    /// Every registered kind, by name.
    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        self.by_kind.keys().copied()
    }

    /// The registered kind called `name`.
    pub fn kind_named(&self, name: &str) -> Option<Kind> {
        self.by_kind.keys().copied().find(|k| k.as_str() == name)
    }

    /// Every IAM action the registered drivers declare, deduplicated and sorted.
    pub fn iam_actions(&self) -> BTreeSet<&'static str> {
        self.by_kind
            .values()
            .flat_map(|component| component.iam_actions().iter().copied())
            .collect()
    }
}

impl<S> Drivers for Components<S> {
    fn driver(&self, kind: Kind) -> Option<&dyn Driver> {
        self.by_kind.get(&kind).map(|c| c.as_ref() as &dyn Driver)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::execute::{ExecuteOptions, execute};
    use crate::engine::plan::plan;
    use crate::engine::testing::{FakeCloud, Net, scope};

    /// A component that wants the toy network's resources of one kind and acts through the
    /// fake cloud's driver for that kind.
    struct Toy {
        kind: Kind,
        cloud: Arc<FakeCloud>,
        /// Emits resources of this kind instead (to test the registry's check).
        emits: Kind,
    }

    #[async_trait::async_trait]
    impl Driver for Toy {
        fn kind(&self) -> Kind {
            self.kind
        }
        async fn observe(
            &self,
            scope: &Scope,
            reads: &Reads,
        ) -> Result<Vec<ObservedResource>, ActError> {
            match self.cloud.driver(self.kind) {
                Some(driver) => driver.observe(scope, reads).await,
                None => Ok(Vec::new()),
            }
        }
        async fn create(
            &self,
            request: crate::engine::act::CreateRequest<'_>,
        ) -> Result<ObservedResource, ActError> {
            match self.cloud.driver(self.kind) {
                Some(driver) => driver.create(request).await,
                None => Err(ActError::refused("NoDriver", "none")),
            }
        }
        async fn update(
            &self,
            request: crate::engine::act::UpdateRequest<'_>,
        ) -> Result<ObservedResource, ActError> {
            match self.cloud.driver(self.kind) {
                Some(driver) => driver.update(request).await,
                None => Err(ActError::refused("NoDriver", "none")),
            }
        }
        async fn delete(
            &self,
            current: &ObservedResource,
            scope: &Scope,
        ) -> Result<crate::engine::act::Deletion, ActError> {
            match self.cloud.driver(self.kind) {
                Some(driver) => driver.delete(current, scope).await,
                None => Err(ActError::refused("NoDriver", "none")),
            }
        }
    }

    impl Component<Net> for Toy {
        fn desired(&self, spec: &Net) -> Result<Vec<DesiredResource>, DesiredError> {
            Ok(spec
                .graph()
                .in_order()
                .filter(|d| d.kind() == self.emits)
                .cloned()
                .collect())
        }
    }

    fn components(cloud: &Arc<FakeCloud>) -> Result<Components<Net>, DuplicateKind> {
        Components::new(crate::engine::testing::KINDS.map(|kind| {
            Arc::new(Toy {
                kind,
                cloud: Arc::clone(cloud),
                emits: kind,
            }) as Arc<dyn Component<Net>>
        }))
    }

    #[tokio::test]
    async fn the_component_list_drives_a_whole_pass() {
        let cloud = Arc::new(FakeCloud::new(Duration::from_millis(1)));
        let Ok(components) = components(&cloud) else {
            panic!("kinds are distinct");
        };
        let spec = Net::new(&["a", "b"]);
        let Ok(desired) = components.desired(&spec) else {
            panic!("the toy spec is valid");
        };
        assert_eq!(desired.len(), 9);
        let Ok(observed) = components.observe(&scope(), 2).await else {
            panic!("the fake observes");
        };
        let report = execute(
            &plan(&desired, &observed),
            &observed,
            &components,
            &scope(),
            ExecuteOptions::default(),
        )
        .await;
        assert!(report.is_settled(), "{report:?}");
        let Ok(observed) = components.observe(&scope(), 2).await else {
            panic!("the fake observes");
        };
        assert_eq!(observed.len(), 9);
        assert!(plan(&desired, &observed).is_empty());
    }

    #[test]
    fn the_registry_rejects_duplicate_kinds_and_resources_of_a_foreign_kind() {
        let cloud = Arc::new(FakeCloud::new(Duration::ZERO));
        let vpc = crate::engine::testing::VPC;
        let toy = |kind, emits| {
            Arc::new(Toy {
                kind,
                cloud: Arc::clone(&cloud),
                emits,
            }) as Arc<dyn Component<Net>>
        };
        assert_eq!(
            Components::new([toy(vpc, vpc), toy(vpc, vpc)]).err(),
            Some(DuplicateKind(vpc))
        );
        let Ok(liar) = Components::new([toy(Kind("other"), vpc)]) else {
            panic!("one kind");
        };
        assert!(matches!(
            liar.desired(&Net::new(&["a"])),
            Err(DesiredError::WrongKind { .. })
        ));
    }
}
