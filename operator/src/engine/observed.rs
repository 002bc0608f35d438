//! The observed side: what the drivers found in AWS by Plinth's tags, grouped by component key,
//! with the dependencies between found resources worked out for ordering deletes.

use std::collections::{BTreeMap, BTreeSet};

use super::attr::Attrs;
use super::key::{Key, Kind};

/// Where an AWS resource is in its life, as far as the engine cares.
///
/// Drivers map each service's states onto these four, from the point of view of dependents:
/// a VPC that AWS reports `pending` but already accepts subnets in is [`Lifecycle::Available`].
/// Resources that are already gone (a NAT gateway `deleted`, an instance `terminated`) are not
/// reported at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// Being created or modified; dependents must wait.
    Pending,
    /// Usable.
    Available,
    /// Being deleted; whatever it depends on must wait until it is gone, and its replacement is
    /// created only after.
    Deleting,
    /// AWS gave up on it (a NAT gateway `failed`): it is replaced.
    Failed {
        /// AWS's reason, kept for the plan and events.
        reason: String,
    },
}

/// One AWS resource found with Plinth's tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedResource {
    /// The kind of resource, which selects the driver that deletes it when it is not desired.
    pub kind: Kind,
    /// The component key from its `plinth.dev/component` tag.
    pub key: Key,
    /// AWS's id for it (or a composite id the driver makes up, for resources with none).
    pub id: String,
    /// The managed fields as AWS reports them; references to other resources as their AWS ids.
    pub attrs: Attrs,
    /// Its state.
    pub lifecycle: Lifecycle,
    /// Components it depends on that its attributes do not show by id. Usually empty: an
    /// attribute holding another found resource's id already counts as a dependency.
    pub depends_on: BTreeSet<Key>,
}

impl ObservedResource {
    /// An available resource with no attributes yet.
    pub fn new(kind: Kind, key: impl Into<Key>, id: impl Into<String>) -> Self {
        Self {
            kind,
            key: key.into(),
            id: id.into(),
            attrs: Attrs::new(),
            lifecycle: Lifecycle::Available,
            depends_on: BTreeSet::new(),
        }
    }

    /// Sets an attribute.
    #[must_use]
    pub fn attr(
        mut self,
        name: impl Into<String>,
        value: impl Into<super::attr::AttrValue>,
    ) -> Self {
        self.attrs.insert(name.into(), value.into());
        self
    }

    /// Sets the lifecycle.
    #[must_use]
    pub fn lifecycle(mut self, lifecycle: Lifecycle) -> Self {
        self.lifecycle = lifecycle;
        self
    }
}

/// Everything found for one platform.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Per key, the resource that stands for the component first, then any duplicates.
    by_key: BTreeMap<Key, Vec<ObservedResource>>,
}

impl Observed {
    /// Nothing found.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Groups found resources by key. When several carry one key (a create that was retried
    /// before its tags were visible), the one that stands for the component is, in order: not
    /// being deleted, available, lowest id; the others are duplicates and get deleted.
    pub fn new(resources: impl IntoIterator<Item = ObservedResource>) -> Self {
        let mut by_key: BTreeMap<Key, Vec<ObservedResource>> = BTreeMap::new();
        for resource in resources {
            by_key
                .entry(resource.key.clone())
                .or_default()
                .push(resource);
        }
        for group in by_key.values_mut() {
            group.sort_by(|a, b| {
                let rank = |r: &ObservedResource| match r.lifecycle {
                    Lifecycle::Available => 0,
                    Lifecycle::Pending => 1,
                    Lifecycle::Failed { .. } => 2,
                    Lifecycle::Deleting => 3,
                };
                (rank(a), &a.id).cmp(&(rank(b), &b.id))
            });
        }
        Self { by_key }
    }

    /// The resource that stands for `key`, if any.
    pub fn primary(&self, key: &Key) -> Option<&ObservedResource> {
        self.by_key.get(key).and_then(|group| group.first())
    }

    /// Makes the resource `id` stand for `key` (the one the engine recorded creating), moving
    /// any other resource of the key among its duplicates. False when `key` has no resource
    /// `id`.
    pub fn prefer(&mut self, key: &Key, id: &str) -> bool {
        let Some(group) = self.by_key.get_mut(key) else {
            return false;
        };
        let Some(index) = group.iter().position(|r| r.id == id) else {
            return false;
        };
        let chosen = group.remove(index);
        group.insert(0, chosen);
        true
    }

    /// Adds `resource` for its key when nothing else carries that key (a stand-in for one AWS
    /// does not list yet); false, and nothing added, otherwise.
    pub fn stand_in(&mut self, resource: ObservedResource) -> bool {
        let group = self.by_key.entry(resource.key.clone()).or_default();
        if !group.is_empty() {
            return false;
        }
        group.push(resource);
        true
    }

    /// Resources beyond the first that carry `key`.
    pub fn duplicates(&self, key: &Key) -> &[ObservedResource] {
        self.by_key
            .get(key)
            .and_then(|group| group.get(1..))
            .unwrap_or(&[])
    }

    /// Every key more than one resource carries, with the resources beyond the first: what a
    /// campaign counts as duplicates.
    pub fn duplicated(&self) -> impl Iterator<Item = (&Key, &[ObservedResource])> {
        self.by_key
            .iter()
            .filter_map(|(key, group)| Some((key, group.get(1..)?)).filter(|(_, d)| !d.is_empty()))
    }

    /// The same view without the resources `leave_out` selects (retained resources that a
    /// teardown must not touch).
    #[must_use]
    pub fn without(self, leave_out: &dyn Fn(&ObservedResource) -> bool) -> Self {
        Self::new(
            self.by_key
                .into_values()
                .flatten()
                .filter(|r| !leave_out(r)),
        )
    }

    /// Every found resource.
    pub fn iter(&self) -> impl Iterator<Item = &ObservedResource> {
        self.by_key.values().flatten()
    }

    /// Keys that have at least one resource.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.by_key.keys()
    }

    /// Whether nothing was found: the condition for releasing the finalizer.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// How many resources were found.
    pub fn len(&self) -> usize {
        self.by_key.values().map(Vec::len).sum()
    }

    /// For every found resource (by id), the ids of the found resources it depends on: its
    /// explicit `depends_on` keys, every found resource whose id appears among its attribute
    /// values, and `extra` edges by key (the desired graph's, which still describe resources
    /// that are being replaced). Used to delete dependents before what they depend on, including
    /// for resources that are no longer in the spec.
    pub(crate) fn dependency_ids(
        &self,
        extra: &dyn Fn(&Key) -> Vec<Key>,
    ) -> BTreeMap<String, BTreeSet<String>> {
        let ids: BTreeSet<&str> = self.iter().map(|r| r.id.as_str()).collect();
        let mut out = BTreeMap::new();
        for resource in self.iter() {
            let mut deps = BTreeSet::new();
            let mut strings = Vec::new();
            for value in resource.attrs.values() {
                value.strings(&mut strings);
            }
            deps.extend(
                strings
                    .into_iter()
                    .filter(|s| ids.contains(s))
                    .map(str::to_owned),
            );
            let keys = resource
                .depends_on
                .iter()
                .cloned()
                .chain(extra(&resource.key));
            for key in keys {
                deps.extend(
                    self.by_key
                        .get(&key)
                        .into_iter()
                        .flatten()
                        .map(|r| r.id.clone()),
                );
            }
            deps.remove(&resource.id);
            out.insert(resource.id.clone(), deps);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_held_by_more_than_one_resource_are_duplicated() {
        let kind = Kind("vpc");
        let observed = Observed::new([
            ObservedResource::new(kind, "vpc", "vpc-1"),
            ObservedResource::new(kind, "vpc", "vpc-2"),
            ObservedResource::new(kind, "other", "vpc-3"),
        ]);
        let duplicated: Vec<(String, Vec<&str>)> = observed
            .duplicated()
            .map(|(key, extra)| {
                (
                    key.to_string(),
                    extra.iter().map(|r| r.id.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(duplicated.len(), 1);
        assert_eq!(duplicated[0].0, "vpc");
        assert_eq!(duplicated[0].1.len(), 1);
        assert_eq!(observed.duplicates(&Key::from("vpc")).len(), 1);
    }
}
