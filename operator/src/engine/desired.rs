//! The desired side: what each component should look like, and the dependency graph between
//! components, checked once (unique keys, known dependencies, no cycles) when it is built.

use std::collections::{BTreeMap, BTreeSet};

use super::attr::{AttrValue, Field};
use super::key::{Key, Kind};

/// One component as the spec wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredResource {
    kind: Kind,
    key: Key,
    fields: BTreeMap<String, Field>,
    depends_on: BTreeSet<Key>,
    replace_forbidden: bool,
}

impl DesiredResource {
    /// A component of `kind` named `key`, with no fields yet.
    pub fn new(kind: Kind, key: impl Into<Key>) -> Self {
        Self {
            kind,
            key: key.into(),
            fields: BTreeMap::new(),
            depends_on: BTreeSet::new(),
            replace_forbidden: false,
        }
    }

    /// Never replace this component, even when an immutable field changes or AWS reports it
    /// failed (a database): the plan reports the change as stalled, with the fields, and still
    /// applies the fields that can change in place.
    #[must_use]
    pub fn forbid_replace(mut self) -> Self {
        self.replace_forbidden = true;
        self
    }

    /// Whether replacing this component is forbidden.
    pub fn replace_forbidden(&self) -> bool {
        self.replace_forbidden
    }

    /// Adds a field. A reference inside the value also adds a dependency, so that a component
    /// can never be acted on before the ids it needs exist.
    #[must_use]
    pub fn field(mut self, name: impl Into<String>, field: Field) -> Self {
        field.value.refs(&mut self.depends_on);
        self.fields.insert(name.into(), field);
        self
    }

    /// Adds a field AWS updates in place.
    #[must_use]
    pub fn updatable(self, name: impl Into<String>, value: impl Into<AttrValue>) -> Self {
        self.field(name, Field::updatable(value))
    }

    /// Adds a field whose change forces a replacement.
    #[must_use]
    pub fn immutable(self, name: impl Into<String>, value: impl Into<AttrValue>) -> Self {
        self.field(name, Field::immutable(value))
    }

    /// Adds a dependency that no field references (for example "the internet gateway must be
    /// attached before a NAT gateway is created").
    #[must_use]
    pub fn depends_on(mut self, key: impl Into<Key>) -> Self {
        self.depends_on.insert(key.into());
        self
    }

    /// The component's kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The component's key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The managed fields by name.
    pub fn fields(&self) -> &BTreeMap<String, Field> {
        &self.fields
    }

    /// The components this one needs to exist (and be available) first.
    pub fn dependencies(&self) -> &BTreeSet<Key> {
        &self.depends_on
    }
}

/// Why a set of desired components does not form a graph the engine can act on. These are bugs
/// in a component's `desired` function, not user errors.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    /// Two components claim the same key.
    #[error("two desired components share the key {0}")]
    DuplicateKey(Key),
    /// A component depends on a key nothing desires.
    #[error("{key} depends on {missing}, which no component desires")]
    UnknownDependency {
        /// The component with the dangling dependency.
        key: Key,
        /// The key that is not in the graph.
        missing: Key,
    },
    /// The dependencies loop, so no order exists.
    #[error("dependency cycle among {}", display_keys(.0))]
    Cycle(Vec<Key>),
}

fn display_keys(keys: &[Key]) -> String {
    keys.iter().map(Key::as_str).collect::<Vec<_>>().join(", ")
}

/// Every desired component, keyed, with a dependency order computed once.
#[derive(Clone, Debug, Default)]
pub struct DesiredGraph {
    resources: BTreeMap<Key, DesiredResource>,
    /// Keys such that every component comes after its dependencies; ties broken by key so plans
    /// are deterministic.
    order: Vec<Key>,
}

impl DesiredGraph {
    /// The empty graph: planning against it tears everything down.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Checks and orders the components.
    pub fn new(resources: impl IntoIterator<Item = DesiredResource>) -> Result<Self, GraphError> {
        let mut by_key = BTreeMap::new();
        for resource in resources {
            let key = resource.key.clone();
            if by_key.insert(key.clone(), resource).is_some() {
                return Err(GraphError::DuplicateKey(key));
            }
        }
        for resource in by_key.values() {
            if let Some(missing) = resource
                .depends_on
                .iter()
                .find(|dep| !by_key.contains_key(*dep))
            {
                return Err(GraphError::UnknownDependency {
                    key: resource.key.clone(),
                    missing: missing.clone(),
                });
            }
        }
        let edges: BTreeMap<Key, BTreeSet<Key>> = by_key
            .values()
            .map(|r| (r.key.clone(), r.depends_on.clone()))
            .collect();
        let order = topological_order(&edges).map_err(|(_, stuck)| GraphError::Cycle(stuck))?;
        Ok(Self {
            resources: by_key,
            order,
        })
    }

    /// The component named `key`.
    pub fn get(&self, key: &Key) -> Option<&DesiredResource> {
        self.resources.get(key)
    }

    /// Whether `key` is desired.
    pub fn contains(&self, key: &Key) -> bool {
        self.resources.contains_key(key)
    }

    /// Components in dependency order (dependencies first).
    pub fn in_order(&self) -> impl Iterator<Item = &DesiredResource> {
        self.order.iter().filter_map(|key| self.resources.get(key))
    }

    /// How many components there are.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// Whether nothing is desired.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}

/// Kahn's algorithm over `node → its dependencies`, smallest ready node first so the result is
/// deterministic. On a cycle, returns the order of the nodes that could be ordered and, apart,
/// the nodes that could not (those in a cycle and those depending on one).
pub(crate) fn topological_order<N: Ord + Clone>(
    edges: &BTreeMap<N, BTreeSet<N>>,
) -> Result<Vec<N>, (Vec<N>, Vec<N>)> {
    let mut remaining: BTreeMap<&N, usize> = edges
        .iter()
        .map(|(n, deps)| (n, deps.iter().filter(|d| edges.contains_key(*d)).count()))
        .collect();
    let mut dependents: BTreeMap<&N, Vec<&N>> = BTreeMap::new();
    for (node, deps) in edges {
        for dep in deps.iter().filter(|d| edges.contains_key(*d)) {
            dependents.entry(dep).or_default().push(node);
        }
    }
    let mut ready: BTreeSet<&N> = remaining
        .iter()
        .filter(|(_, count)| **count == 0)
        .map(|(n, _)| *n)
        .collect();
    let mut order = Vec::with_capacity(edges.len());
    while let Some(node) = ready.pop_first() {
        remaining.remove(node);
        order.push(node.clone());
        for dependent in dependents.get(node).into_iter().flatten() {
            if let Some(count) = remaining.get_mut(dependent) {
                *count -= 1;
                if *count == 0 {
                    ready.insert(dependent);
                }
            }
        }
    }
    if remaining.is_empty() {
        Ok(order)
    } else {
        Err((order, remaining.into_keys().cloned().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THING: Kind = Kind("thing");

    #[test]
    fn orders_dependencies_first_and_deterministically() {
        let graph = DesiredGraph::new([
            DesiredResource::new(THING, "c").immutable("parent", AttrValue::reference("a")),
            DesiredResource::new(THING, "b").depends_on("a"),
            DesiredResource::new(THING, "a"),
            DesiredResource::new(THING, "d")
                .depends_on("b")
                .depends_on("c"),
        ]);
        let order: Vec<&str> = graph
            .iter()
            .flat_map(|g| g.in_order())
            .map(|r| r.key().as_str())
            .collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
    }

    #[test]
    fn rejects_cycles_duplicates_and_unknown_dependencies() {
        let cycle = DesiredGraph::new([
            DesiredResource::new(THING, "a").depends_on("b"),
            DesiredResource::new(THING, "b").depends_on("a"),
            DesiredResource::new(THING, "c"),
        ]);
        assert_eq!(
            cycle.err(),
            Some(GraphError::Cycle(vec!["a".into(), "b".into()]))
        );

        let duplicate = DesiredGraph::new([
            DesiredResource::new(THING, "a"),
            DesiredResource::new(THING, "a"),
        ]);
        assert_eq!(duplicate.err(), Some(GraphError::DuplicateKey("a".into())));

        let unknown = DesiredGraph::new([DesiredResource::new(THING, "a").depends_on("ghost")]);
        assert!(matches!(
            unknown.err(),
            Some(GraphError::UnknownDependency { .. })
        ));
    }
}
