//! Planning: the pure function from (desired, observed) to the actions that make AWS match the
//! spec, with the order between them. No I/O: every case is unit-tested with in-memory values.
//!
//! A plan is a small DAG. Each [`Action`] lists the actions that must have finished first
//! (`after`): creates and updates follow the creates and updates of their dependencies; deletes
//! follow the deletes of the resources that depend on them; a replacement is two actions, the
//! delete of the old resource and the create of the new one, so that the dependents of a replaced
//! resource can be deleted before it and created after it. What cannot start in this pass (a
//! dependency still pending, a dependent still deleting) is a [`Wait`], and makes the controller
//! requeue soon; the next pass plans again from what it observes then.
//!
//! The action list is itself in a valid order (every action after those it waits for), which is
//! what `plinth plan` prints.

use std::collections::{BTreeMap, BTreeSet};

use super::attr::{AttrValue, Lookup, OnChange};
use super::desired::{DesiredGraph, DesiredResource, topological_order};
use super::key::{Key, Kind};
use super::observed::{Lifecycle, Observed, ObservedResource};

/// An action's index in [`Plan::actions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActionId(pub usize);

/// What a field will be set to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Planned {
    /// The value, references resolved.
    Known(AttrValue),
    /// The value refers to a component that is about to be created or replaced, so its id is
    /// only known after apply. Holds the unresolved value.
    AfterApply(AttrValue),
}

/// One field that differs between the spec and AWS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldChange {
    /// The field's name.
    pub field: String,
    /// What AWS has now (`None`: AWS reports nothing for it).
    pub old: Option<AttrValue>,
    /// What it will be.
    pub new: Planned,
    /// Whether the difference is applied in place or forces a replacement.
    pub on_change: OnChange,
}

/// Why a resource is deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteReason {
    /// Its key is no longer desired (removed from the spec, or the whole platform is deleted).
    NotDesired,
    /// Another resource carries the same key and stands for the component.
    Duplicate,
    /// It is replaced: these fields changed and at least one is immutable.
    Replaced {
        /// Every field that differs (the immutable ones are why it is replaced).
        changes: Vec<FieldChange>,
    },
    /// AWS reports it failed; a new one is created.
    Failed {
        /// AWS's reason.
        reason: String,
    },
}

/// What an action does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Create the component (as a replacement when `replaces` names the old resource's id).
    Create {
        /// The desired component; references are resolved when the action runs.
        desired: DesiredResource,
        /// Every field as far as it is known at plan time (what `plinth plan` prints).
        planned: BTreeMap<String, Planned>,
        /// The id of the resource this one replaces, deleted by an earlier action.
        replaces: Option<String>,
    },
    /// Update only the fields that differ.
    Update {
        /// The resource as found.
        current: ObservedResource,
        /// The desired component.
        desired: DesiredResource,
        /// The differing fields.
        changes: Vec<FieldChange>,
    },
    /// Delete a resource.
    Delete {
        /// The resource as found.
        current: ObservedResource,
        /// Why.
        reason: DeleteReason,
    },
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    /// Its index in the plan.
    pub id: ActionId,
    /// The component it acts on.
    pub key: Key,
    /// The kind of resource, which selects the driver.
    pub kind: Kind,
    /// What it does.
    pub op: Op,
    /// Actions that must have finished, leaving their resource available (or gone), first.
    pub after: Vec<ActionId>,
}

/// Why nothing can be done for a component in this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitReason {
    /// The resource itself is still being created or modified.
    Pending,
    /// The resource is being deleted; if it is desired it is created again once gone.
    Deleting,
    /// A dependency is not available yet.
    Dependency(Key),
    /// A resource that depends on this one is still being deleted, so this one cannot go yet.
    Dependent(Key),
    /// A resource holding the same unique value (a CIDR, a name) is still being deleted.
    Conflict(Key),
}

impl std::fmt::Display for WaitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pending => f.write_str("still being created or modified"),
            Self::Deleting => f.write_str("still being deleted"),
            Self::Dependency(key) => write!(f, "waiting for {key} to become available"),
            Self::Dependent(key) => write!(f, "waiting for {key} to be deleted first"),
            Self::Conflict(key) => write!(
                f,
                "waiting for {key}, which holds the same value, to be deleted"
            ),
        }
    }
}

/// A component the plan cannot act on yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wait {
    /// The component.
    pub key: Key,
    /// Its kind.
    pub kind: Kind,
    /// Why it waits.
    pub reason: WaitReason,
}

/// A change the plan will not make by itself: it needs a replacement the component forbids.
/// Surfaces as `Stalled` until the spec changes back (or a human replaces the resource).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stall {
    /// The component.
    pub key: Key,
    /// Its kind.
    pub kind: Kind,
    /// What would need a replacement: the immutable fields that differ, if that is why.
    pub changes: Vec<FieldChange>,
    /// Says what is wrong and what to do, for the condition's message.
    pub message: String,
}

/// The actions of one pass, in a valid order, what waits, and what is stalled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The actions; each one's `after` only names earlier ones.
    pub actions: Vec<Action>,
    /// Components that wait for AWS; the pass requeues soon when there are any.
    pub waits: Vec<Wait>,
    /// Changes that need a forbidden replacement.
    pub stalls: Vec<Stall>,
}

impl Plan {
    /// Nothing to do, nothing to wait for, nothing stalled: AWS matches the spec.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.waits.is_empty() && self.stalls.is_empty()
    }

    /// The action with this id.
    pub fn action(&self, id: ActionId) -> Option<&Action> {
        self.actions.get(id.0)
    }
}

/// Plans the actions that make what was observed match what is desired.
pub fn plan(desired: &DesiredGraph, observed: &Observed) -> Plan {
    Planner::new(desired, desired, observed).run()
}

/// Plans deleting everything observed, dependents first. The desired graph is only a hint for
/// ordering (its dependencies); what is deleted is exactly what was observed, so nothing without
/// Plinth's tags is ever touched.
pub fn plan_teardown(hints: &DesiredGraph, observed: &Observed) -> Plan {
    let nothing = DesiredGraph::empty();
    Planner::new(&nothing, hints, observed).run()
}

/// What happens to a desired component in this pass.
enum Fate<'a> {
    /// In sync (possibly still pending, which dependents look at).
    Keep(&'a ObservedResource),
    /// Update these fields in place.
    Update(&'a ObservedResource, Vec<FieldChange>),
    /// Delete the current resource, then create a new one.
    Replace(&'a ObservedResource, DeleteReason),
    /// Create it.
    Create,
    /// Nothing this pass; `current` survives the pass if any.
    Wait(Option<&'a ObservedResource>, WaitReason),
}

impl Fate<'_> {
    /// The current resource when it survives this pass (what references and attribute
    /// references resolve to at plan time).
    fn surviving(&self) -> Option<&ObservedResource> {
        match self {
            Fate::Keep(c) | Fate::Update(c, _) => Some(c),
            Fate::Wait(Some(c), _) if c.lifecycle != Lifecycle::Deleting => Some(c),
            Fate::Wait(..) | Fate::Replace(..) | Fate::Create => None,
        }
    }
}

/// Resolves references against the fates decided so far: a surviving resource's id or
/// attribute.
fn lookup_fates(
    fates: &BTreeMap<Key, Fate<'_>>,
    key: &Key,
    field: Option<&str>,
) -> Option<AttrValue> {
    let current = fates.get(key).and_then(Fate::surviving)?;
    match field {
        None => Some(AttrValue::Str(current.id.clone())),
        Some(field) => current.attrs.get(field).cloned(),
    }
}

impl Fate<'_> {
    /// Whether the component cannot be relied on by dependents in this pass.
    fn blocks_dependents(&self) -> bool {
        match self {
            Fate::Keep(c) => c.lifecycle != Lifecycle::Available,
            Fate::Wait(..) => true,
            Fate::Update(..) | Fate::Replace(..) | Fate::Create => false,
        }
    }
}

struct Planner<'a> {
    desired: &'a DesiredGraph,
    hints: &'a DesiredGraph,
    observed: &'a Observed,
    actions: Vec<Action>,
    waits: Vec<Wait>,
    stalls: Vec<Stall>,
}

/// A resource to delete in this pass, before its ordering is known.
struct Doomed<'a> {
    resource: &'a ObservedResource,
    reason: DeleteReason,
}

/// What became of a doomed resource.
enum DeleteSlot {
    Action(ActionId),
    /// Deleting already, or blocked behind a dependent: whatever must follow it waits.
    Waiting,
}

impl<'a> Planner<'a> {
    fn new(desired: &'a DesiredGraph, hints: &'a DesiredGraph, observed: &'a Observed) -> Self {
        Self {
            desired,
            hints,
            observed,
            actions: Vec::new(),
            waits: Vec::new(),
            stalls: Vec::new(),
        }
    }

    fn run(mut self) -> Plan {
        let fates = self.fates();

        // Everything to delete this pass: replaced resources, duplicates, what is not desired.
        let mut doomed: BTreeMap<&str, Doomed<'a>> = BTreeMap::new();
        for (key, fate) in &fates {
            if let Fate::Replace(current, reason) = fate {
                doomed.insert(
                    &current.id,
                    Doomed {
                        resource: current,
                        reason: reason.clone(),
                    },
                );
            }
            for duplicate in self.observed.duplicates(key) {
                doomed.insert(
                    &duplicate.id,
                    Doomed {
                        resource: duplicate,
                        reason: DeleteReason::Duplicate,
                    },
                );
            }
        }
        for resource in self.observed.iter() {
            if !self.desired.contains(&resource.key) {
                doomed.insert(
                    &resource.id,
                    Doomed {
                        resource,
                        reason: DeleteReason::NotDesired,
                    },
                );
            }
        }

        let deletes = self.plan_deletes(doomed);
        self.plan_creates(&fates, &deletes);
        Plan {
            actions: self.actions,
            waits: self.waits,
            stalls: self.stalls,
        }
    }

    /// Turns a replacement the component forbids into a stall, still updating in place what
    /// can be. Decided before dependents are planned, so they keep pointing at the current one.
    fn unless_forbidden(&mut self, desired: &DesiredResource, fate: Fate<'a>) -> Fate<'a> {
        let Fate::Replace(current, reason) = fate else {
            return fate;
        };
        if !desired.replace_forbidden() {
            return Fate::Replace(current, reason);
        }
        let key = desired.key();
        let (updatable, stall) = match reason {
            DeleteReason::Replaced { changes } => {
                let (immutable, updatable): (Vec<_>, Vec<_>) = changes
                    .into_iter()
                    .partition(|c| c.on_change == OnChange::Replace);
                let fields: Vec<&str> = immutable.iter().map(|c| c.field.as_str()).collect();
                let message = format!(
                    "changing {} would replace {key} ({}), which Plinth never does: \
                     change the spec back, or replace it by hand",
                    fields.join(", "),
                    current.id
                );
                (updatable, (immutable, message))
            }
            DeleteReason::Failed { reason } => (
                Vec::new(),
                (
                    Vec::new(),
                    format!(
                        "AWS reports {key} ({}) failed: {reason}; Plinth never replaces it by itself",
                        current.id
                    ),
                ),
            ),
            DeleteReason::NotDesired | DeleteReason::Duplicate => {
                return Fate::Replace(current, reason);
            }
        };
        self.stalls.push(Stall {
            key: key.clone(),
            kind: current.kind,
            changes: stall.0,
            message: stall.1,
        });
        if updatable.is_empty() {
            Fate::Keep(current)
        } else {
            Fate::Update(current, updatable)
        }
    }

    /// Decides each desired component's fate, dependencies first.
    fn fates(&mut self) -> BTreeMap<Key, Fate<'a>> {
        let mut fates: BTreeMap<Key, Fate<'a>> = BTreeMap::new();
        for desired in self.desired.in_order() {
            let key = desired.key();
            let fate = match self.observed.primary(key) {
                None => Fate::Create,
                Some(current) => match &current.lifecycle {
                    Lifecycle::Deleting => Fate::Wait(Some(current), WaitReason::Deleting),
                    Lifecycle::Failed { reason } => Fate::Replace(
                        current,
                        DeleteReason::Failed {
                            reason: reason.clone(),
                        },
                    ),
                    Lifecycle::Pending | Lifecycle::Available => {
                        let changes = diff(desired, current, &|dep, field| {
                            lookup_fates(&fates, dep, field)
                        });
                        if changes.is_empty() {
                            Fate::Keep(current)
                        } else if current.lifecycle == Lifecycle::Pending {
                            // AWS rarely accepts changes to a resource in transition.
                            Fate::Wait(Some(current), WaitReason::Pending)
                        } else if changes.iter().any(|c| c.on_change == OnChange::Replace) {
                            Fate::Replace(current, DeleteReason::Replaced { changes })
                        } else {
                            Fate::Update(current, changes)
                        }
                    }
                },
            };
            let fate = self.unless_forbidden(desired, fate);
            let fate = match fate {
                Fate::Update(..) | Fate::Replace(..) | Fate::Create => {
                    let blocked = desired
                        .dependencies()
                        .iter()
                        .find(|dep| fates.get(*dep).is_some_and(Fate::blocks_dependents));
                    match blocked {
                        Some(dep) => Fate::Wait(
                            self.observed.primary(key),
                            WaitReason::Dependency(dep.clone()),
                        ),
                        None => fate,
                    }
                }
                Fate::Keep(..) | Fate::Wait(..) => fate,
            };
            fates.insert(key.clone(), fate);
        }
        fates
    }

    /// Orders the deletes, dependents first; a delete whose dependent is still deleting waits.
    fn plan_deletes(
        &mut self,
        mut doomed: BTreeMap<&'a str, Doomed<'a>>,
    ) -> BTreeMap<String, DeleteSlot> {
        let hints = self.hints;
        let depends_on = self.observed.dependency_ids(&|key| {
            hints
                .get(key)
                .map(|d| d.dependencies().iter().cloned().collect())
                .unwrap_or_default()
        });
        let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (id, deps) in &depends_on {
            for dep in deps {
                dependents.entry(dep).or_default().push(id);
            }
        }
        let by_id: BTreeMap<&str, &ObservedResource> =
            self.observed.iter().map(|r| (r.id.as_str(), r)).collect();

        // Dependencies first; a cycle among found resources (which the desired graph forbids,
        // but AWS attributes can show) is broken by id order rather than refusing to delete.
        let order = match topological_order(&depends_on) {
            Ok(order) => order,
            Err((mut order, stuck)) => {
                // Nothing outside `stuck` depends on anything in it, so the stuck ones go first
                // (in reverse) and the rest keep their order.
                tracing::warn!(?stuck, "found resources depend on each other in a cycle");
                order.extend(stuck);
                order
            }
        };

        let mut slots: BTreeMap<String, DeleteSlot> = BTreeMap::new();
        for id in order.iter().rev() {
            let Some(Doomed { resource, reason }) = doomed.remove(id.as_str()) else {
                continue;
            };
            if resource.lifecycle == Lifecycle::Deleting {
                self.wait(resource, WaitReason::Deleting);
                slots.insert(id.clone(), DeleteSlot::Waiting);
                continue;
            }
            let mut after = Vec::new();
            let mut blocker = None;
            for dependent in dependents.get(id.as_str()).into_iter().flatten() {
                let Some(dependent_resource) = by_id.get(dependent) else {
                    continue;
                };
                match slots.get(*dependent) {
                    Some(DeleteSlot::Action(action)) => after.push(*action),
                    Some(DeleteSlot::Waiting) => blocker = Some(dependent_resource.key.clone()),
                    // A dependent that stays (or sits in a cycle) does not hold the delete back:
                    // AWS answers a real conflict with a dependency violation, which is retried.
                    None if dependent_resource.lifecycle == Lifecycle::Deleting => {
                        blocker = Some(dependent_resource.key.clone());
                    }
                    None => {}
                }
            }
            if let Some(blocker) = blocker {
                self.wait(resource, WaitReason::Dependent(blocker));
                slots.insert(id.clone(), DeleteSlot::Waiting);
                continue;
            }
            let action = self.push(
                resource.key.clone(),
                resource.kind,
                Op::Delete {
                    current: resource.clone(),
                    reason,
                },
                after,
            );
            slots.insert(id.clone(), DeleteSlot::Action(action));
        }
        slots
    }

    /// Creates and updates, dependencies first, each after its dependencies' actions, the
    /// delete of what it replaces, and the delete of anything holding the same unique value.
    fn plan_creates(
        &mut self,
        fates: &BTreeMap<Key, Fate<'a>>,
        deletes: &BTreeMap<String, DeleteSlot>,
    ) {
        // The action that makes each component ready, for its dependents to follow.
        let mut readied_by: BTreeMap<Key, ActionId> = BTreeMap::new();
        let mut blocked: BTreeSet<Key> = BTreeSet::new();
        let surviving = |dep: &Key, field: Option<&str>| lookup_fates(fates, dep, field);
        for desired in self.desired.in_order() {
            let key = desired.key();
            let Some(fate) = fates.get(key) else { continue };
            let current = match fate {
                // In sync but not ready: nothing to do, yet the platform is not ready either.
                Fate::Keep(current) if current.lifecycle == Lifecycle::Pending => {
                    self.wait(current, WaitReason::Pending);
                    continue;
                }
                Fate::Keep(_) => continue,
                Fate::Wait(_, reason) => {
                    blocked.insert(key.clone());
                    self.waits.push(Wait {
                        key: key.clone(),
                        kind: desired.kind(),
                        reason: reason.clone(),
                    });
                    continue;
                }
                Fate::Update(current, _) => Some(*current),
                Fate::Replace(current, _) => Some(*current),
                Fate::Create => None,
            };

            let mut after = Vec::new();
            let mut wait = None;
            for dep in desired.dependencies() {
                if blocked.contains(dep) {
                    wait = Some(WaitReason::Dependency(dep.clone()));
                } else if let Some(action) = readied_by.get(dep) {
                    after.push(*action);
                }
            }
            let creates = matches!(fate, Fate::Create | Fate::Replace(..));
            if let Fate::Replace(old, _) = fate {
                match deletes.get(&old.id) {
                    Some(DeleteSlot::Action(action)) => after.push(*action),
                    Some(DeleteSlot::Waiting) | None => wait = Some(WaitReason::Deleting),
                }
            }
            if creates {
                for conflicting in unique_conflicts(desired, self.observed, deletes, &surviving) {
                    match deletes.get(&conflicting.id) {
                        Some(DeleteSlot::Action(action)) => after.push(*action),
                        Some(DeleteSlot::Waiting) | None => {
                            wait = Some(WaitReason::Conflict(conflicting.key.clone()));
                        }
                    }
                }
            }
            if let Some(reason) = wait {
                blocked.insert(key.clone());
                self.waits.push(Wait {
                    key: key.clone(),
                    kind: desired.kind(),
                    reason,
                });
                continue;
            }
            after.sort();
            after.dedup();
            let op = match fate {
                Fate::Update(current, changes) => Op::Update {
                    current: (*current).clone(),
                    desired: desired.clone(),
                    changes: changes.clone(),
                },
                _ => Op::Create {
                    desired: desired.clone(),
                    planned: desired
                        .fields()
                        .iter()
                        .map(|(name, field)| {
                            let planned = match field.value.resolve_with(&surviving) {
                                Some(value) => Planned::Known(value),
                                None => Planned::AfterApply(field.value.clone()),
                            };
                            (name.clone(), planned)
                        })
                        .collect(),
                    replaces: current.map(|c| c.id.clone()),
                },
            };
            let action = self.push(key.clone(), desired.kind(), op, after);
            readied_by.insert(key.clone(), action);
        }
    }

    fn push(&mut self, key: Key, kind: Kind, op: Op, after: Vec<ActionId>) -> ActionId {
        let id = ActionId(self.actions.len());
        self.actions.push(Action {
            id,
            key,
            kind,
            op,
            after,
        });
        id
    }

    fn wait(&mut self, resource: &ObservedResource, reason: WaitReason) {
        self.waits.push(Wait {
            key: resource.key.clone(),
            kind: resource.kind,
            reason,
        });
    }
}

/// The managed fields whose observed value differs from the desired one.
fn diff(
    desired: &DesiredResource,
    current: &ObservedResource,
    lookup: &Lookup<'_>,
) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    for (name, field) in desired.fields() {
        if field.on_change == OnChange::CreateOnly {
            continue;
        }
        let old = current.attrs.get(name);
        let new = match field.value.resolve_with(lookup) {
            Some(value) if old == Some(&value) => continue,
            Some(value) => Planned::Known(value),
            // Every referenced component survives, yet the value is unknown: one of them has
            // not reported an attribute referred to (an endpoint not assigned yet). Nothing can
            // be compared, and a guess could replace a resource for nothing: leave it as it is.
            None if all_survive(&field.value, lookup) => {
                tracing::debug!(key = %desired.key(), field = %name, "an attribute it refers to is not known yet");
                continue;
            }
            // The referenced component gets a new id: the field changes for sure.
            None => Planned::AfterApply(field.value.clone()),
        };
        changes.push(FieldChange {
            field: name.clone(),
            old: old.cloned(),
            new,
            on_change: field.on_change,
        });
    }
    changes
}

/// Whether every component `value` refers to keeps its id in this pass.
fn all_survive(value: &AttrValue, lookup: &Lookup<'_>) -> bool {
    let mut refs = BTreeSet::new();
    value.refs(&mut refs);
    refs.iter().all(|key| lookup(key, None).is_some())
}

/// Resources of the same kind, deleted in this pass or being deleted, that hold a value one of
/// `desired`'s unique fields is about to take.
fn unique_conflicts<'o>(
    desired: &DesiredResource,
    observed: &'o Observed,
    deletes: &BTreeMap<String, DeleteSlot>,
    lookup: &Lookup<'_>,
) -> Vec<&'o ObservedResource> {
    let mut out = Vec::new();
    for (name, field) in desired.fields().iter().filter(|(_, f)| f.unique) {
        let Some(value) = field.value.resolve_with(lookup) else {
            continue;
        };
        for other in observed.iter().filter(|o| o.kind == desired.kind()) {
            let going = other.lifecycle == Lifecycle::Deleting || deletes.contains_key(&other.id);
            if going && other.attrs.get(name) == Some(&value) {
                out.push(other);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testing::{self, Net, realise, tweak};

    /// `op key` for every action, in plan order.
    fn ops(plan: &Plan) -> Vec<String> {
        plan.actions.iter().map(describe).collect()
    }

    fn describe(action: &Action) -> String {
        let op = match &action.op {
            Op::Create { replaces: None, .. } => "create",
            Op::Create {
                replaces: Some(_), ..
            } => "recreate",
            Op::Update { .. } => "update",
            Op::Delete {
                reason: DeleteReason::Replaced { .. },
                ..
            } => "replace-delete",
            Op::Delete { .. } => "delete",
        };
        format!("{op} {}", action.key)
    }

    /// Whether `first` is among the actions `then` (transitively) waits for.
    fn ordered(plan: &Plan, first: &str, then: &str) -> bool {
        let find = |name: &str| {
            plan.actions
                .iter()
                .find(|a| describe(a) == name)
                .map(|a| a.id)
                .unwrap_or_else(|| panic!("{name} not in {:?}", ops(plan)))
        };
        let (first, then) = (find(first), find(then));
        let mut stack = vec![then];
        let mut seen = BTreeSet::new();
        while let Some(id) = stack.pop() {
            if id == first {
                return true;
            }
            if seen.insert(id) {
                stack.extend(plan.actions[id.0].after.iter().copied());
            }
        }
        false
    }

    fn assert_valid_order(plan: &Plan) {
        for action in &plan.actions {
            assert!(
                action.after.iter().all(|before| *before < action.id),
                "{} waits for a later action",
                describe(action)
            );
        }
    }

    #[test]
    fn a_fresh_platform_is_created_in_dependency_order() {
        let plan = plan(&Net::new(&["a", "b"]).graph(), &Observed::empty());
        assert!(plan.waits.is_empty());
        assert_eq!(plan.actions.len(), 9);
        assert!(
            plan.actions
                .iter()
                .all(|a| matches!(a.op, Op::Create { replaces: None, .. }))
        );
        assert_valid_order(&plan);
        assert!(plan.actions[0].after.is_empty() && plan.actions[0].key.as_str() == "eip/a");
        for az in ["a", "b"] {
            assert!(ordered(&plan, "create vpc", &format!("create subnet/{az}")));
            assert!(ordered(
                &plan,
                &format!("create subnet/{az}"),
                &format!("create nat/{az}")
            ));
            assert!(ordered(
                &plan,
                &format!("create eip/{az}"),
                &format!("create nat/{az}")
            ));
            assert!(ordered(
                &plan,
                &format!("create nat/{az}"),
                &format!("create route/{az}")
            ));
        }
        // The AZs do not wait for each other.
        assert!(!ordered(&plan, "create subnet/a", "create subnet/b"));
        assert!(!ordered(&plan, "create nat/a", "create route/b"));
    }

    #[test]
    fn nothing_to_do_when_in_sync() {
        let graph = Net::new(&["a", "b", "c"]).graph();
        let plan = plan(&graph, &Observed::new(realise(&graph)));
        assert!(plan.is_empty(), "{:?}", ops(&plan));
    }

    #[test]
    fn drift_in_a_managed_field_updates_only_that_field() {
        let graph = Net::new(&["a", "b"]).graph();
        let mut found = realise(&graph);
        tweak(&mut found, "vpc", |vpc| {
            vpc.attrs.insert("dns".into(), false.into());
        });
        tweak(&mut found, "route/b", |route| {
            route
                .attrs
                .insert("nat_id".into(), "nat:something-else".into());
        });
        let plan = plan(&graph, &Observed::new(found));
        assert_eq!(ops(&plan), ["update vpc", "update route/b"]);
        let Op::Update { changes, .. } = &plan.actions[0].op else {
            panic!("not an update");
        };
        assert_eq!(
            changes,
            &[FieldChange {
                field: "dns".into(),
                old: Some(false.into()),
                new: Planned::Known(true.into()),
                on_change: OnChange::Update,
            }]
        );
        let Op::Update { changes, .. } = &plan.actions[1].op else {
            panic!("not an update");
        };
        assert_eq!(changes[0].new, Planned::Known("nat:nat/b".into()));
        // A field that disappeared from AWS's answer is drift too.
        let mut found = realise(&graph);
        tweak(&mut found, "vpc", |vpc| {
            vpc.attrs.remove("dns");
        });
        assert_eq!(
            ops(&super::plan(&graph, &Observed::new(found))),
            ["update vpc"]
        );
    }

    #[test]
    fn an_immutable_change_replaces_the_resource_and_what_points_at_it() {
        let before = Net::new(&["a"]);
        let found = Observed::new(realise(&before.graph()));
        let after = Net {
            cidr: "10.1.0.0/16",
            ..before
        };
        let plan = plan(&after.graph(), &found);
        assert_valid_order(&plan);
        assert_eq!(
            ops(&plan),
            [
                // Dependents go first, the NAT because its subnet is replaced.
                "replace-delete nat/a",
                "replace-delete subnet/a",
                "replace-delete vpc",
                "recreate vpc",
                "recreate subnet/a",
                "recreate nat/a",
                // The route only points at the NAT through an updatable field.
                "update route/a",
            ]
        );
        assert!(ordered(
            &plan,
            "replace-delete nat/a",
            "replace-delete subnet/a"
        ));
        assert!(ordered(
            &plan,
            "replace-delete subnet/a",
            "replace-delete vpc"
        ));
        assert!(ordered(&plan, "replace-delete vpc", "recreate vpc"));
        assert!(ordered(&plan, "recreate vpc", "recreate subnet/a"));
        assert!(ordered(&plan, "recreate nat/a", "update route/a"));
        let Op::Delete {
            reason: DeleteReason::Replaced { changes },
            ..
        } = &plan.actions[1].op
        else {
            panic!("not a replacement");
        };
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].field, "vpc_id");
        assert_eq!(
            changes[0].new,
            Planned::AfterApply(AttrValue::reference("vpc"))
        );
    }

    #[test]
    fn removing_an_az_deletes_its_resources_dependents_first() {
        let found = Observed::new(realise(&Net::new(&["a", "b", "c"]).graph()));
        let plan = plan(&Net::new(&["a", "b"]).graph(), &found);
        assert_valid_order(&plan);
        let mut deleted = ops(&plan);
        deleted.sort();
        assert_eq!(
            deleted,
            [
                "delete eip/c",
                "delete nat/c",
                "delete route/c",
                "delete subnet/c"
            ]
        );
        assert!(ordered(&plan, "delete route/c", "delete nat/c"));
        assert!(ordered(&plan, "delete nat/c", "delete subnet/c"));
        assert!(ordered(&plan, "delete nat/c", "delete eip/c"));
    }

    #[test]
    fn teardown_deletes_everything_in_reverse_dependency_order() {
        let graph = Net::new(&["a", "b"]).graph();
        let found = Observed::new(realise(&graph));
        // With the spec's graph as a hint, and without it (only what the attributes show).
        for plan in [
            plan_teardown(&graph, &found),
            plan(&DesiredGraph::empty(), &found),
        ] {
            assert_valid_order(&plan);
            assert_eq!(plan.actions.len(), 9);
            assert!(plan.waits.is_empty());
            for az in ["a", "b"] {
                for first in ["route", "nat", "subnet"] {
                    assert!(ordered(
                        &plan,
                        &format!("delete {first}/{az}"),
                        "delete vpc"
                    ));
                }
                assert!(ordered(
                    &plan,
                    &format!("delete route/{az}"),
                    &format!("delete nat/{az}")
                ));
                assert!(ordered(
                    &plan,
                    &format!("delete nat/{az}"),
                    &format!("delete eip/{az}")
                ));
                assert!(ordered(&plan, &format!("delete subnet/{az}"), "delete vpc"));
            }
        }
    }

    #[test]
    fn teardown_waits_for_dependents_that_are_still_deleting() {
        let graph = Net::new(&["a"]).graph();
        let mut found = realise(&graph);
        found.retain(|r| r.key.as_str() != "route/a");
        tweak(&mut found, "nat/a", |nat| {
            nat.lifecycle = Lifecycle::Deleting
        });
        let plan = plan_teardown(&graph, &Observed::new(found));
        assert!(plan.actions.is_empty(), "{:?}", ops(&plan));
        let waits: BTreeMap<&str, &WaitReason> = plan
            .waits
            .iter()
            .map(|w| (w.key.as_str(), &w.reason))
            .collect();
        assert_eq!(waits["nat/a"], &WaitReason::Deleting);
        assert_eq!(waits["eip/a"], &WaitReason::Dependent("nat/a".into()));
        assert_eq!(waits["subnet/a"], &WaitReason::Dependent("nat/a".into()));
        assert_eq!(waits["vpc"], &WaitReason::Dependent("subnet/a".into()));
    }

    #[test]
    fn creates_wait_for_pending_dependencies() {
        let graph = Net::new(&["a"]).graph();
        let found: Vec<_> = realise(&graph)
            .into_iter()
            .filter(|r| r.key.as_str() == "vpc")
            .map(|r| r.lifecycle(Lifecycle::Pending))
            .collect();
        let plan = plan(&graph, &Observed::new(found));
        assert_eq!(ops(&plan), ["create eip/a"]);
        let waits: BTreeMap<&str, &WaitReason> = plan
            .waits
            .iter()
            .map(|w| (w.key.as_str(), &w.reason))
            .collect();
        assert_eq!(waits["subnet/a"], &WaitReason::Dependency("vpc".into()));
        assert_eq!(waits["nat/a"], &WaitReason::Dependency("subnet/a".into()));
        assert_eq!(waits["route/a"], &WaitReason::Dependency("nat/a".into()));
        assert_eq!(
            waits["vpc"],
            &WaitReason::Pending,
            "in sync, but not ready yet"
        );
    }

    #[test]
    fn a_pending_resource_with_drift_waits_until_it_settles() {
        let graph = Net::new(&["a"]).graph();
        let mut found = realise(&graph);
        tweak(&mut found, "vpc", |vpc| {
            vpc.lifecycle = Lifecycle::Pending;
            vpc.attrs.insert("dns".into(), false.into());
        });
        let plan = plan(&graph, &Observed::new(found));
        assert!(plan.actions.is_empty());
        assert_eq!(plan.waits.len(), 1);
        assert_eq!(plan.waits[0].reason, WaitReason::Pending);
    }

    #[test]
    fn a_failed_resource_is_replaced() {
        let graph = Net::new(&["a"]).graph();
        let mut found = realise(&graph);
        tweak(&mut found, "nat/a", |nat| {
            nat.lifecycle = Lifecycle::Failed {
                reason: "Subnet has insufficient free addresses".into(),
            };
        });
        let plan = plan(&graph, &Observed::new(found));
        assert_eq!(
            ops(&plan),
            ["delete nat/a", "recreate nat/a", "update route/a"]
        );
        assert!(matches!(
            &plan.actions[0].op,
            Op::Delete {
                reason: DeleteReason::Failed { .. },
                ..
            }
        ));
    }

    #[test]
    fn duplicates_are_deleted_and_the_available_one_kept() {
        let graph = Net::new(&["a"]).graph();
        let mut found = realise(&graph);
        let mut twin = found[0].clone();
        twin.id = "eip:twin".into();
        twin.lifecycle = Lifecycle::Pending;
        found.push(twin);
        let plan = plan(&graph, &Observed::new(found));
        assert_eq!(ops(&plan), ["delete eip/a"]);
        let Op::Delete { current, reason } = &plan.actions[0].op else {
            panic!("not a delete");
        };
        assert_eq!(
            (current.id.as_str(), reason),
            ("eip:twin", &DeleteReason::Duplicate)
        );
    }

    #[test]
    fn deletes_still_happen_when_found_resources_point_at_each_other() {
        // Two security groups whose rules name each other, plus one that uses the first.
        let group = Kind("group");
        let found = Observed::new([
            ObservedResource::new(group, "sg/a", "sg-a").attr("peer", "sg-b"),
            ObservedResource::new(group, "sg/b", "sg-b").attr("peer", "sg-a"),
            ObservedResource::new(group, "sg/c", "sg-c").attr("source", "sg-a"),
            ObservedResource::new(group, "sg/d", "sg-d"),
        ]);
        let plan = plan(&DesiredGraph::empty(), &found);
        assert_valid_order(&plan);
        assert_eq!(plan.actions.len(), 4);
        assert!(ordered(&plan, "delete sg/c", "delete sg/a"));
    }

    #[test]
    fn a_forbidden_replacement_stalls_and_keeps_dependents_on_the_current_resource() {
        let graph = |cidr: &'static str, dns: bool| {
            DesiredGraph::new([
                DesiredResource::new(testing::VPC, "vpc")
                    .immutable("cidr", cidr)
                    .updatable("dns", dns)
                    .forbid_replace(),
                DesiredResource::new(testing::SUBNET, "subnet")
                    .immutable("vpc_id", AttrValue::reference("vpc")),
            ])
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let found = Observed::new(realise(&graph("10.0.0.0/16", true)));
        let plan = plan(&graph("10.1.0.0/16", false), &found);
        // The in-place change still happens; the subnet is left alone.
        assert_eq!(ops(&plan), ["update vpc"]);
        assert_eq!(plan.stalls.len(), 1);
        let stall = &plan.stalls[0];
        assert_eq!(stall.key.as_str(), "vpc");
        assert_eq!(stall.changes.len(), 1);
        assert_eq!(stall.changes[0].field, "cidr");
        assert!(
            stall.message.contains("changing cidr would replace vpc"),
            "{}",
            stall.message
        );
        assert!(!plan.is_empty());
        let text = crate::engine::render::render(&plan);
        assert!(text.contains("stalled"), "{text}");
        assert!(
            text.contains("\n! vpc (vpc): changing cidr would replace vpc"),
            "{text}"
        );
        assert!(
            text.contains("    cidr: \"10.0.0.0/16\" → \"10.1.0.0/16\""),
            "{text}"
        );

        let mut failed = realise(&graph("10.0.0.0/16", true));
        tweak(&mut failed, "vpc", |vpc| {
            vpc.lifecycle = Lifecycle::Failed {
                reason: "broken".into(),
            };
        });
        let plan = super::plan(&graph("10.0.0.0/16", true), &Observed::new(failed));
        assert!(plan.actions.is_empty(), "{:?}", ops(&plan));
        assert!(
            plan.stalls[0]
                .message
                .contains("never replaces it by itself")
        );
    }

    #[test]
    fn a_create_waits_for_the_delete_of_a_resource_with_the_same_unique_value() {
        // Zone b is swapped for zone c: subnet/c takes subnet/b's CIDR.
        let found = Observed::new(realise(&Net::new(&["a", "b"]).graph()));
        let plan = plan(&Net::new(&["a", "c"]).graph(), &found);
        assert_valid_order(&plan);
        assert!(ordered(&plan, "delete subnet/b", "create subnet/c"));
        // Nothing unique ties the gateways' creates to the old zone's deletes.
        assert!(!ordered(&plan, "delete eip/b", "create eip/c"));
    }

    #[test]
    fn attribute_references_resolve_to_what_was_observed_and_never_replace_on_a_missing_one() {
        const DB: Kind = Kind("db");
        const APP: Kind = Kind("app");
        let desired = DesiredGraph::new([
            DesiredResource::new(DB, "db").immutable("size", AttrValue::Int(1)),
            DesiredResource::new(APP, "app").immutable("host", AttrValue::output("db", "endpoint")),
        ])
        .unwrap_or_else(|e| panic!("{e}"));

        // Nothing exists: the app is created after the database, its host known after apply.
        let fresh = plan(&desired, &Observed::empty());
        assert_eq!(ops(&fresh), ["create db", "create app"]);
        assert!(ordered(&fresh, "create db", "create app"));
        let Some(Op::Create { planned, .. }) = fresh.actions.get(1).map(|a| &a.op) else {
            panic!("{fresh:?}");
        };
        assert_eq!(
            planned.get("host"),
            Some(&Planned::AfterApply(AttrValue::output("db", "endpoint")))
        );

        let db = |endpoint: Option<&str>| {
            let resource = ObservedResource::new(DB, "db", "db-1").attr("size", 1);
            match endpoint {
                Some(e) => resource.attr("endpoint", e),
                None => resource,
            }
        };
        let app = ObservedResource::new(APP, "app", "app-1").attr("host", "a.example");

        // In sync with the observed attribute: nothing to do.
        let steady = plan(
            &desired,
            &Observed::new([db(Some("a.example")), app.clone()]),
        );
        assert!(steady.is_empty(), "{steady:?}");

        // The attribute changed: the immutable field holding it replaces the app.
        let moved = plan(
            &desired,
            &Observed::new([db(Some("b.example")), app.clone()]),
        );
        assert_eq!(ops(&moved), ["replace-delete app", "recreate app"]);

        // The database does not report the attribute: nothing is replaced on a guess.
        let unknown = plan(&desired, &Observed::new([db(None), app]));
        assert!(unknown.actions.is_empty(), "{unknown:?}");
    }
}
