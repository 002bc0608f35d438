//! In-memory fixtures for the engine tests: a small network-shaped graph of components and a
//! fake cloud that implements the drivers, enforces AWS's ordering rules (no reference to a
//! missing id, no delete while something still points at the resource) and records the calls.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::act::{ActError, CreateRequest, Deletion, Driver, Drivers, UpdateRequest};
use super::attr::{AttrValue, Field};
use super::component::{Component, Components, DesiredError};
use super::desired::{DesiredGraph, DesiredResource};
use super::identity::Scope;
use super::key::{Key, Kind};
use super::observed::{Lifecycle, Observed, ObservedResource};
use super::reads::Reads;

pub const VPC: Kind = Kind("vpc");
pub const SUBNET: Kind = Kind("subnet");
pub const EIP: Kind = Kind("eip");
pub const NAT: Kind = Kind("nat");
pub const ROUTE: Kind = Kind("route");
pub const KINDS: [Kind; 5] = [VPC, SUBNET, EIP, NAT, ROUTE];

/// The VPC CIDR, DNS flag and AZs of a toy network.
#[derive(Clone)]
pub struct Net {
    pub cidr: &'static str,
    pub dns: bool,
    pub azs: Vec<&'static str>,
}

impl Net {
    pub fn new(azs: &[&'static str]) -> Self {
        Self {
            cidr: "10.0.0.0/16",
            dns: true,
            azs: azs.to_vec(),
        }
    }

    /// vpc ← subnet/<az> ← nat/<az> (also ← eip/<az>) ← route/<az>.
    pub fn graph(&self) -> DesiredGraph {
        let mut all = vec![
            DesiredResource::new(VPC, "vpc")
                .immutable("cidr", self.cidr)
                .updatable("dns", self.dns),
        ];
        for (i, az) in self.azs.iter().enumerate() {
            let cidr = format!("10.0.{}.0/24", i + 1);
            all.push(
                DesiredResource::new(SUBNET, format!("subnet/{az}"))
                    .immutable("vpc_id", AttrValue::reference("vpc"))
                    .field("cidr", Field::immutable(cidr).unique())
                    .immutable("az", *az),
            );
            all.push(DesiredResource::new(EIP, format!("eip/{az}")));
            all.push(
                DesiredResource::new(NAT, format!("nat/{az}"))
                    .immutable("subnet_id", AttrValue::reference(format!("subnet/{az}")))
                    .immutable("allocation_id", AttrValue::reference(format!("eip/{az}"))),
            );
            all.push(
                DesiredResource::new(ROUTE, format!("route/{az}"))
                    .updatable("nat_id", AttrValue::reference(format!("nat/{az}"))),
            );
        }
        match DesiredGraph::new(all) {
            Ok(graph) => graph,
            Err(error) => panic!("fixture graph is invalid: {error}"),
        }
    }
}

/// How the fake answers for one key.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Create returns the resource pending.
    CreatePending,
    /// Create is refused.
    RefuseCreate,
    /// Create fails with a retryable error.
    ThrottleCreate,
    /// Delete is accepted and the resource stays `Deleting`.
    SlowDelete,
}

#[derive(Default)]
pub struct State {
    pub resources: BTreeMap<String, ObservedResource>,
    next_id: usize,
    in_flight: usize,
    pub max_in_flight: usize,
    /// `start <op> <key>` / `end <op> <key>` in call order.
    pub log: Vec<String>,
    pub behaviours: BTreeMap<Key, Behaviour>,
    pub write_calls: usize,
}

struct Shared {
    state: Mutex<State>,
    delay: Duration,
}

/// An in-memory cloud: one driver per kind, all sharing the state.
pub struct FakeCloud {
    shared: Arc<Shared>,
    drivers: Vec<FakeDriver>,
}

pub struct FakeDriver {
    kind: Kind,
    shared: Arc<Shared>,
}

impl FakeCloud {
    /// A cloud whose calls each take `delay` (so concurrency shows).
    pub fn new(delay: Duration) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            delay,
        });
        let drivers = KINDS
            .iter()
            .map(|kind| FakeDriver {
                kind: *kind,
                shared: Arc::clone(&shared),
            })
            .collect();
        Self { shared, drivers }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }

    pub fn behave(&self, key: &str, behaviour: Behaviour) {
        self.state().behaviours.insert(key.into(), behaviour);
    }

    /// What a fresh observe would find.
    pub fn observed(&self) -> Observed {
        Observed::new(self.state().resources.values().cloned())
    }

    /// Deleting resources finish deleting.
    pub fn finish_deletes(&self) {
        self.state()
            .resources
            .retain(|_, r| r.lifecycle != Lifecycle::Deleting);
    }

    /// Pending resources become available.
    pub fn finish_creates(&self) {
        for resource in self.state().resources.values_mut() {
            if resource.lifecycle == Lifecycle::Pending {
                resource.lifecycle = Lifecycle::Available;
            }
        }
    }

    /// The index of a log line, to assert orders.
    pub fn position(&self, line: &str) -> Option<usize> {
        self.state().log.iter().position(|l| l == line)
    }
}

impl FakeCloud {
    /// The fake's drivers as components wanting the toy network's resources of their kind.
    pub fn components(&self) -> Components<Net> {
        let list = KINDS.map(|kind| {
            Arc::new(FakeDriver {
                kind,
                shared: Arc::clone(&self.shared),
            }) as Arc<dyn Component<Net>>
        });
        match Components::new(list) {
            Ok(components) => components,
            Err(error) => panic!("{error}"),
        }
    }
}

impl Component<Net> for FakeDriver {
    fn desired(&self, spec: &Net) -> Result<Vec<DesiredResource>, DesiredError> {
        Ok(spec
            .graph()
            .in_order()
            .filter(|d| d.kind() == self.kind)
            .cloned()
            .collect())
    }
}

impl Drivers for FakeCloud {
    fn driver(&self, kind: Kind) -> Option<&dyn Driver> {
        self.drivers
            .iter()
            .find(|d| d.kind == kind)
            .map(|d| d as &dyn Driver)
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    match shared.state.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl FakeDriver {
    async fn call<T>(
        &self,
        op: &str,
        key: &Key,
        body: impl FnOnce(&mut State) -> Result<T, ActError>,
    ) -> Result<T, ActError> {
        {
            let mut state = lock(&self.shared);
            state.log.push(format!("start {op} {key}"));
            state.in_flight += 1;
            state.max_in_flight = state.max_in_flight.max(state.in_flight);
            state.write_calls += 1;
        }
        tokio::time::sleep(self.shared.delay).await;
        let mut state = lock(&self.shared);
        state.in_flight -= 1;
        state.log.push(format!("end {op} {key}"));
        body(&mut state)
    }
}

/// Every string in `attrs` that looks like one of the fake's ids must exist: AWS refuses a
/// reference to something missing.
fn check_references(state: &State, attrs: &super::attr::Attrs) -> Result<(), ActError> {
    for value in attrs.values() {
        let mut strings = Vec::new();
        value.strings(&mut strings);
        for s in strings {
            let looks_like_id = KINDS.iter().any(|k| s.starts_with(&format!("{}-", k.0)));
            if looks_like_id && !state.resources.contains_key(s) {
                return Err(ActError::refused(
                    "InvalidID.NotFound",
                    format!("{s} does not exist"),
                ));
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Driver for FakeDriver {
    fn kind(&self) -> Kind {
        self.kind
    }

    async fn observe(
        &self,
        _scope: &Scope,
        _reads: &Reads,
    ) -> Result<Vec<ObservedResource>, ActError> {
        let state = lock(&self.shared);
        Ok(state
            .resources
            .values()
            .filter(|r| r.kind == self.kind)
            .cloned()
            .collect())
    }

    async fn create(&self, request: CreateRequest<'_>) -> Result<ObservedResource, ActError> {
        let kind = self.kind;
        self.call("create", request.key, |state| {
            let behaviour = state.behaviours.get(request.key).cloned();
            match behaviour {
                Some(Behaviour::RefuseCreate) => {
                    return Err(ActError::refused("InvalidParameterValue", "no such thing"));
                }
                Some(Behaviour::ThrottleCreate) => {
                    return Err(ActError::retryable("Throttling", "rate exceeded"));
                }
                _ => {}
            }
            check_references(state, request.attrs)?;
            if let Some(conflict) = state.resources.values().find(|r| {
                r.kind == kind
                    && r.attrs.contains_key("cidr")
                    && r.attrs.get("cidr") == request.attrs.get("cidr")
            }) {
                return Err(ActError::refused(
                    "InvalidSubnet.Conflict",
                    format!("conflicts with {}", conflict.id),
                ));
            }
            state.next_id += 1;
            let id = format!("{}-{}", kind.0, state.next_id);
            let lifecycle = match behaviour {
                Some(Behaviour::CreatePending) => Lifecycle::Pending,
                _ => Lifecycle::Available,
            };
            let resource = ObservedResource {
                kind,
                key: request.key.clone(),
                id: id.clone(),
                attrs: request.attrs.clone(),
                lifecycle,
                depends_on: BTreeSet::new(),
            };
            state.resources.insert(id, resource.clone());
            Ok(resource)
        })
        .await
    }

    async fn update(&self, request: UpdateRequest<'_>) -> Result<ObservedResource, ActError> {
        self.call("update", &request.current.key, |state| {
            check_references(state, request.attrs)?;
            let Some(resource) = state.resources.get_mut(&request.current.id) else {
                return Err(ActError::retryable("NotFound", "gone"));
            };
            for field in request.changed {
                if let Some(value) = request.new_value(field) {
                    resource.attrs.insert(field.clone(), value.clone());
                }
            }
            Ok(resource.clone())
        })
        .await
    }

    async fn delete(
        &self,
        current: &ObservedResource,
        _scope: &Scope,
    ) -> Result<Deletion, ActError> {
        self.call("delete", &current.key, |state| {
            // Like AWS, refuse to delete what another resource still uses; a route to a NAT
            // gateway is the exception (AWS leaves a blackhole route).
            let referenced_by = state.resources.values().find(|r| {
                let mut strings = Vec::new();
                r.attrs
                    .iter()
                    .filter(|(name, _)| name.as_str() != "nat_id")
                    .for_each(|(_, v)| v.strings(&mut strings));
                strings.contains(&current.id.as_str())
            });
            if let Some(other) = referenced_by {
                return Err(ActError::retryable(
                    "DependencyViolation",
                    format!("{} is used by {}", current.id, other.id),
                ));
            }
            let slow = matches!(
                state.behaviours.get(&current.key),
                Some(Behaviour::SlowDelete)
            );
            if slow {
                if let Some(resource) = state.resources.get_mut(&current.id) {
                    resource.lifecycle = Lifecycle::Deleting;
                }
                Ok(Deletion::InProgress)
            } else {
                state.resources.remove(&current.id);
                Ok(Deletion::Gone)
            }
        })
        .await
    }
}

/// The scope the tests act in.
pub fn scope() -> Scope {
    Scope::new("team", "ingest", [])
}

/// What AWS would hold if `graph` had been applied: one available resource per component, ids
/// `<kind>:<key>`, references resolved.
pub fn realise(graph: &DesiredGraph) -> Vec<ObservedResource> {
    let id = |key: &Key| graph.get(key).map(|d| format!("{}:{}", d.kind(), d.key()));
    graph
        .in_order()
        .map(|desired| {
            let attrs = desired
                .fields()
                .iter()
                .filter_map(|(name, field)| Some((name.clone(), field.value.resolve(&id)?)))
                .collect();
            ObservedResource {
                kind: desired.kind(),
                key: desired.key().clone(),
                id: format!("{}:{}", desired.kind(), desired.key()),
                attrs,
                lifecycle: Lifecycle::Available,
                depends_on: BTreeSet::new(),
            }
        })
        .collect()
}

/// Changes the realised resource with `key`.
pub fn tweak(
    resources: &mut [ObservedResource],
    key: &str,
    change: impl FnOnce(&mut ObservedResource),
) {
    match resources.iter_mut().find(|r| r.key.as_str() == key) {
        Some(resource) => change(resource),
        None => panic!("no resource {key}"),
    }
}
