//! Acting: runs a plan's actions through the drivers, each as soon as the actions it follows have
//! left their resource ready, independent ones concurrently up to a bound, and reports what
//! changed, what is pending and what failed.
//!
//! One task drives a `FuturesUnordered`, so no action needs `'static` data and the bound is
//! simply how many futures are in it. Nothing is retried here: the SDK already retries
//! throttling and 5xx, and the next pass re-plans from a fresh observe, which is the right retry
//! for everything else. A failed or still-pending action stops only its own branch: the actions
//! that follow it are skipped, independent ones still run.

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::future::{BoxFuture, FutureExt as _};
use futures::stream::FuturesUnordered;

use super::act::{ActError, CreateRequest, Deletion, Driver, Drivers, UpdateRequest};
use super::attr::{AttrValue, Attrs};
use super::desired::DesiredResource;
use super::identity::Scope;
use super::journal::Journal;
use super::key::{Key, Kind};
use super::observed::{Lifecycle, Observed, ObservedResource};
use super::plan::{Action, ActionId, Op, Plan};

/// How the executor runs.
#[derive(Clone, Copy, Debug)]
pub struct ExecuteOptions {
    /// At most this many AWS calls in flight (the per-platform share of the account's API rate).
    pub concurrency: NonZeroUsize,
    /// How long one action may wait, within the pass, for AWS to finish what it started (a
    /// resource `pending`, a delete in progress) before its followers are left to a later pass.
    /// Zero leaves every wait to the next pass.
    pub settle: Duration,
}

/// Long enough for what AWS finishes in moments (a route table association, a subnet group, an
/// emulator without delays) to save a whole pass; short against what takes minutes (a NAT
/// gateway, a database), which the next passes pick up as before.
const DEFAULT_SETTLE: Duration = Duration::from_millis(1500);

/// The first look after an action left its resource unfinished; each later one waits twice as
/// long.
const FIRST_SETTLE_LOOK: Duration = Duration::from_millis(250);

/// Four calls in flight: enough to build an AZ's subnets, gateways and routes side by side,
/// little enough to stay far below EC2's request rate with several platforms per account.
const DEFAULT_CONCURRENCY: NonZeroUsize = match NonZeroUsize::new(4) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

impl Default for ExecuteOptions {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
            settle: DEFAULT_SETTLE,
        }
    }
}

/// A change made to AWS, for events and progress output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Created (as a replacement when `replaced` is set).
    Created {
        /// The new resource.
        id: String,
        /// The old resource's id, when this replaces one.
        replaced: Option<String>,
    },
    /// Updated in place.
    Updated {
        /// The resource.
        id: String,
        /// The fields that were changed.
        fields: Vec<String>,
    },
    /// Deleted, or its deletion started.
    Deleted {
        /// The resource.
        id: String,
        /// Whether it is gone already, or AWS is still deleting it.
        done: bool,
        /// It was a second resource for a component that already had one (a create repeated
        /// before AWS listed the first): a warning, which the campaigns count.
        duplicate: bool,
    },
}

/// A change, and which component it was made to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The component.
    pub key: Key,
    /// Its kind.
    pub kind: Kind,
    /// What was done.
    pub change: Change,
}

/// A component that is not where the spec wants it yet but will get there without help.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The component.
    pub key: Key,
    /// Its kind.
    pub kind: Kind,
    /// What it waits for.
    pub reason: String,
}

/// An action that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The component.
    pub key: Key,
    /// Its kind.
    pub kind: Kind,
    /// `create`, `update` or `delete`.
    pub operation: &'static str,
    /// AWS's error, classified.
    pub error: ActError,
}

/// An action that was not attempted because one it follows failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// The component.
    pub key: Key,
    /// Its kind.
    pub kind: Kind,
    /// The component whose action failed.
    pub by: Key,
}

/// What one pass of acting did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Changes made, in the order they finished (one event each).
    pub applied: Vec<Applied>,
    /// What is still on its way (requeue soon).
    pub pending: Vec<Pending>,
    /// Failures AWS may get over by itself (requeue soon, with backoff).
    pub retryable: Vec<Failure>,
    /// Specs AWS refused: the platform is `Stalled` with these codes and messages.
    pub refused: Vec<Failure>,
    /// Actions skipped behind a failure.
    pub blocked: Vec<Blocked>,
}

impl Report {
    /// Nothing pending, nothing failed: if nothing was changed either, AWS matches the spec.
    pub fn is_settled(&self) -> bool {
        self.pending.is_empty()
            && self.retryable.is_empty()
            && self.refused.is_empty()
            && self.blocked.is_empty()
    }

    /// AWS refused part of the spec: report `Stalled` instead of retrying hot.
    pub fn is_stalled(&self) -> bool {
        !self.refused.is_empty()
    }

    /// Something will change without a spec change: look again soon.
    pub fn requeue_soon(&self) -> bool {
        !self.pending.is_empty() || !self.retryable.is_empty() || !self.applied.is_empty()
    }
}

/// What became of an action.
enum Outcome {
    /// Its resource is ready (available, or gone for a delete): followers may run.
    Ready,
    /// It worked but AWS is still on it: followers wait for a later pass.
    NotReady(String),
    /// It failed: followers are blocked.
    Failed,
}

/// Why an action was skipped.
#[derive(Clone)]
enum Skip {
    Waiting(Key),
    Blocked(Key),
}

/// What a driver call returned.
enum Done {
    Created(ObservedResource),
    Updated(ObservedResource),
    Deleted(Deletion),
}

/// What finished in the executor's loop: a driver call, or a wait for AWS to finish one.
enum Event {
    Acted(ActionId, Result<Done, ActError>),
    Settled(ActionId, Settle),
}

/// How a wait within the pass ended.
enum Settle {
    /// The resource is available now, as read back.
    Available(ObservedResource),
    /// The deleted resource is gone.
    Gone,
    /// Still unfinished when the wait ran out (or the read failed): a later pass takes over.
    Unfinished,
}

/// Runs `plan` (made from `observed`) through `drivers`.
pub async fn execute(
    plan: &Plan,
    observed: &Observed,
    drivers: &dyn Drivers,
    scope: &Scope,
    options: ExecuteOptions,
) -> Report {
    execute_journaled(plan, observed, drivers, scope, options, None).await
}

/// Runs `plan` like [`execute`], recording creates and deletes in `journal` and holding the
/// creates it says AWS may have made already (see [`super::journal`]).
pub async fn execute_journaled(
    plan: &Plan,
    observed: &Observed,
    drivers: &dyn Drivers,
    scope: &Scope,
    options: ExecuteOptions,
    journal: Option<&Journal>,
) -> Report {
    let mut report = Report::default();
    for stall in &plan.stalls {
        report.refused.push(Failure {
            key: stall.key.clone(),
            kind: stall.kind,
            operation: "replace",
            error: ActError::refused("PlinthReplacementForbidden", stall.message.clone()),
        });
    }
    for wait in &plan.waits {
        report.pending.push(Pending {
            key: wait.key.clone(),
            kind: wait.kind,
            reason: wait.reason.to_string(),
        });
    }

    // The ids and attributes references resolve to, updated as creates and updates finish.
    let mut known = Known {
        ids: BTreeMap::new(),
        attrs: BTreeMap::new(),
    };
    for resource in observed
        .keys()
        .filter_map(|key| observed.primary(key))
        .filter(|r| r.lifecycle != Lifecycle::Deleting)
    {
        known.insert(resource);
    }

    let count = plan.actions.len();
    let mut unmet: Vec<usize> = plan.actions.iter().map(|a| a.after.len()).collect();
    let mut followers: Vec<Vec<ActionId>> = vec![Vec::new(); count];
    for action in &plan.actions {
        for before in &action.after {
            if let Some(list) = followers.get_mut(before.0) {
                list.push(action.id);
            }
        }
    }
    let mut skipped: Vec<Option<Skip>> = vec![None; count];
    let mut ready: VecDeque<ActionId> = plan
        .actions
        .iter()
        .filter(|a| a.after.is_empty())
        .map(|a| a.id)
        .collect();
    let mut running: FuturesUnordered<BoxFuture<'_, Event>> = FuturesUnordered::new();
    // Waits sleep most of the time: they do not count against the concurrency bound.
    let mut settling = 0usize;

    loop {
        while running.len().saturating_sub(settling) < options.concurrency.get() {
            let Some(id) = ready.pop_front() else { break };
            let Some(action) = plan.action(id) else {
                continue;
            };
            let attrs = match &action.op {
                Op::Create { desired, .. } | Op::Update { desired, .. } => resolve(desired, &known),
                Op::Delete { .. } => Ok(Attrs::new()),
            };
            running.push(run(drivers.driver(action.kind), action, attrs, scope, journal).boxed());
        }
        let Some(event) = running.next().await else {
            break;
        };
        let (id, outcome) = match event {
            Event::Acted(id, result) => {
                let Some(action) = plan.action(id) else {
                    continue;
                };
                let settle_id = settle_target(action, &result);
                let outcome = record(action, result, &mut known, &mut report);
                if let (Outcome::NotReady(_), Some(settle_id), Some(driver)) =
                    (&outcome, settle_id, drivers.driver(action.kind))
                    && !options.settle.is_zero()
                {
                    settling += 1;
                    running.push(settle(driver, action, settle_id, scope, options.settle).boxed());
                    continue;
                }
                (id, outcome)
            }
            Event::Settled(id, settled) => {
                settling = settling.saturating_sub(1);
                let Some(action) = plan.action(id) else {
                    continue;
                };
                (id, record_settled(action, settled, &mut known, &mut report))
            }
        };
        let Some(action) = plan.action(id) else {
            continue;
        };
        let skip = match outcome {
            Outcome::Ready => {
                for follower in followers.get(id.0).into_iter().flatten() {
                    if let Some(n) = unmet.get_mut(follower.0) {
                        *n = n.saturating_sub(1);
                        if *n == 0 && skipped.get(follower.0).is_some_and(Option::is_none) {
                            ready.push_back(*follower);
                        }
                    }
                }
                None
            }
            Outcome::NotReady(_) => Some(Skip::Waiting(action.key.clone())),
            Outcome::Failed => Some(Skip::Blocked(action.key.clone())),
        };
        if let Some(skip) = skip {
            skip_followers(id, skip, &followers, &mut skipped);
        }
    }

    for action in &plan.actions {
        match skipped.get(action.id.0).cloned().flatten() {
            Some(Skip::Waiting(on)) => report.pending.push(Pending {
                key: action.key.clone(),
                kind: action.kind,
                reason: format!("waiting for {on}"),
            }),
            Some(Skip::Blocked(by)) => report.blocked.push(Blocked {
                key: action.key.clone(),
                kind: action.kind,
                by,
            }),
            None => {}
        }
    }
    report
}

/// Marks everything downstream of `id` as skipped for `skip`'s reason (the first reason wins).
fn skip_followers(
    id: ActionId,
    skip: Skip,
    followers: &[Vec<ActionId>],
    skipped: &mut [Option<Skip>],
) {
    let mut stack: Vec<ActionId> = followers.get(id.0).cloned().unwrap_or_default();
    while let Some(next) = stack.pop() {
        if let Some(slot) = skipped.get_mut(next.0)
            && slot.is_none()
        {
            *slot = Some(skip.clone());
            stack.extend(followers.get(next.0).into_iter().flatten().copied());
        }
    }
}

/// The ids and attributes of the components that exist now, for resolving references.
struct Known {
    ids: BTreeMap<Key, String>,
    attrs: BTreeMap<Key, Attrs>,
}

impl Known {
    fn insert(&mut self, resource: &ObservedResource) {
        self.ids.insert(resource.key.clone(), resource.id.clone());
        self.attrs
            .insert(resource.key.clone(), resource.attrs.clone());
    }

    fn remove(&mut self, key: &Key) {
        self.ids.remove(key);
        self.attrs.remove(key);
    }

    fn lookup(&self, key: &Key, field: Option<&str>) -> Option<AttrValue> {
        match field {
            None => self.ids.get(key).cloned().map(AttrValue::Str),
            Some(field) => self.attrs.get(key).and_then(|a| a.get(field)).cloned(),
        }
    }
}

/// The desired fields with references replaced by the ids and attributes known now.
fn resolve(desired: &DesiredResource, known: &Known) -> Result<Attrs, ActError> {
    let lookup = |key: &Key, field: Option<&str>| known.lookup(key, field);
    desired
        .fields()
        .iter()
        .map(|(name, field)| match field.value.resolve_with(&lookup) {
            Some(value) => Ok((name.clone(), value)),
            None => Err(ActError::Pending {
                reason: format!(
                    "{name} refers to a component (or an attribute of one) that does not exist yet"
                ),
            }),
        })
        .collect()
}

/// Calls the driver for one action.
async fn run<'a>(
    driver: Option<&'a dyn Driver>,
    action: &'a Action,
    attrs: Result<Attrs, ActError>,
    scope: &'a Scope,
    journal: Option<&'a Journal>,
) -> Event {
    let result = async {
        let driver = driver.ok_or_else(|| {
            ActError::refused(
                "PlinthNoDriver",
                format!("no driver is registered for kind {}", action.kind),
            )
        })?;
        let attrs = attrs?;
        tracing::debug!(key = %action.key, kind = %action.kind, op = op_name(&action.op), "acting");
        match &action.op {
            Op::Create { .. } => {
                let client_token = scope.client_token(&action.key, &attrs);
                let request = CreateRequest {
                    key: &action.key,
                    attrs: &attrs,
                    scope,
                    client_token: &client_token,
                };
                let Some(journal) = journal else {
                    return driver.create(request).await.map(Done::Created);
                };
                if let Some(reason) = journal.hold(&action.key, driver.idempotent_create()).await {
                    return Err(ActError::Pending { reason });
                }
                journal.begin(&action.key, action.kind).await?;
                let created = driver.create(request).await;
                match &created {
                    Ok(resource) => journal.created(&action.key, &resource.id).await,
                    // AWS answered and refused the call, or said to wait (a dependency busy, a
                    // role not usable yet): nothing was made, so nothing is awaited.
                    Err(ActError::Refused { .. } | ActError::Pending { .. }) => {
                        journal.abandoned(&action.key).await;
                    }
                    // No answer, a 5xx, or a step after the create that failed: what it may have
                    // made is awaited before the create is sent again.
                    Err(ActError::Retryable { .. }) => {}
                }
                created.map(Done::Created)
            }
            Op::Update {
                current, changes, ..
            } => {
                let changed: Vec<String> = changes.iter().map(|c| c.field.clone()).collect();
                let request = UpdateRequest {
                    current,
                    attrs: &attrs,
                    changed: &changed,
                    scope,
                };
                driver.update(request).await.map(Done::Updated)
            }
            Op::Delete { current, .. } => {
                let deletion = driver.delete(current, scope).await;
                if let (Ok(Deletion::Gone), Some(journal)) = (&deletion, journal) {
                    journal.deleted(&action.key, action.kind, &current.id).await;
                }
                deletion.map(Done::Deleted)
            }
        }
    }
    .await;
    Event::Acted(action.id, result)
}

/// The id of the resource a driver call left unfinished, when waiting for it can help: not
/// for an action that never reached AWS.
fn settle_target(action: &Action, result: &Result<Done, ActError>) -> Option<String> {
    match (result, &action.op) {
        (Ok(Done::Created(r) | Done::Updated(r)), _) => Some(r.id.clone()),
        (Ok(Done::Deleted(Deletion::InProgress)), Op::Delete { current, .. }) => {
            Some(current.id.clone())
        }
        _ => None,
    }
}

/// Reads the action's kind again, after 250 ms and then twice as long each time, until the
/// resource `id` is available (or gone, for a delete) or `budget` has passed.
async fn settle<'a>(
    driver: &'a dyn Driver,
    action: &'a Action,
    id: String,
    scope: &'a Scope,
    budget: Duration,
) -> Event {
    let started = Instant::now();
    let mut wait = FIRST_SETTLE_LOOK;
    let deleting = matches!(action.op, Op::Delete { .. });
    let settled = loop {
        let left = budget.saturating_sub(started.elapsed());
        if left.is_zero() {
            break Settle::Unfinished;
        }
        tokio::time::sleep(wait.min(left)).await;
        wait = wait.saturating_mul(2);
        // A fresh look each time: what an earlier look read is what is awaited to change.
        let Ok(found) = driver.observe(scope, &super::reads::Reads::new()).await else {
            break Settle::Unfinished;
        };
        let now = found.into_iter().find(|r| r.id == id);
        match (deleting, now) {
            (true, None) => break Settle::Gone,
            (false, Some(r)) if r.lifecycle == Lifecycle::Available => {
                break Settle::Available(r);
            }
            (
                false,
                Some(ObservedResource {
                    lifecycle: Lifecycle::Failed { .. },
                    ..
                }),
            ) => break Settle::Unfinished,
            _ => {}
        }
    };
    Event::Settled(action.id, settled)
}

/// Records how a wait ended: a resource that became ready within the pass is no longer
/// pending, and its followers may run.
fn record_settled(
    action: &Action,
    settled: Settle,
    known: &mut Known,
    report: &mut Report,
) -> Outcome {
    match settled {
        Settle::Unfinished => {
            return Outcome::NotReady("still unfinished".to_owned());
        }
        Settle::Available(resource) => known.insert(&resource),
        Settle::Gone => {
            for applied in report.applied.iter_mut().rev() {
                if applied.key == action.key
                    && let Change::Deleted { done, .. } = &mut applied.change
                {
                    *done = true;
                    break;
                }
            }
        }
    }
    report.pending.retain(|p| p.key != action.key);
    Outcome::Ready
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Create { .. } => "create",
        Op::Update { .. } => "update",
        Op::Delete { .. } => "delete",
    }
}

/// Records a finished action in the report and the id map.
fn record(
    action: &Action,
    result: Result<Done, ActError>,
    known: &mut Known,
    report: &mut Report,
) -> Outcome {
    let applied = |change| Applied {
        key: action.key.clone(),
        kind: action.kind,
        change,
    };
    let settled = |resource: &ObservedResource| match &resource.lifecycle {
        Lifecycle::Available => Outcome::Ready,
        Lifecycle::Pending => Outcome::NotReady("still being created or modified".to_owned()),
        Lifecycle::Deleting => Outcome::NotReady("being deleted".to_owned()),
        Lifecycle::Failed { reason } => {
            Outcome::NotReady(format!("AWS reports it failed: {reason}"))
        }
    };
    let outcome = match result {
        Ok(Done::Created(resource)) => {
            tracing::info!(key = %action.key, id = %resource.id, "created");
            known.insert(&resource);
            let replaced = match &action.op {
                Op::Create { replaces, .. } => replaces.clone(),
                _ => None,
            };
            report.applied.push(applied(Change::Created {
                id: resource.id.clone(),
                replaced,
            }));
            settled(&resource)
        }
        Ok(Done::Updated(resource)) => {
            tracing::info!(key = %action.key, id = %resource.id, "updated");
            known.insert(&resource);
            let fields = match &action.op {
                Op::Update { changes, .. } => changes.iter().map(|c| c.field.clone()).collect(),
                _ => Vec::new(),
            };
            report.applied.push(applied(Change::Updated {
                id: resource.id.clone(),
                fields,
            }));
            settled(&resource)
        }
        Ok(Done::Deleted(deletion)) => {
            let (id, duplicate) = match &action.op {
                Op::Delete { current, reason } => (
                    current.id.clone(),
                    *reason == super::plan::DeleteReason::Duplicate,
                ),
                _ => (String::new(), false),
            };
            tracing::info!(key = %action.key, %id, ?deletion, "deleted");
            if known.ids.get(&action.key) == Some(&id) {
                known.remove(&action.key);
            }
            let done = deletion == Deletion::Gone;
            report.applied.push(applied(Change::Deleted {
                id,
                done,
                duplicate,
            }));
            if done {
                Outcome::Ready
            } else {
                Outcome::NotReady("still being deleted".to_owned())
            }
        }
        Err(ActError::Pending { reason }) => Outcome::NotReady(reason),
        Err(error) => {
            tracing::warn!(key = %action.key, %error, "action failed");
            let failure = Failure {
                key: action.key.clone(),
                kind: action.kind,
                operation: op_name(&action.op),
                error,
            };
            match failure.error {
                ActError::Refused { .. } => report.refused.push(failure),
                _ => report.retryable.push(failure),
            }
            return Outcome::Failed;
        }
    };
    if let Outcome::NotReady(reason) = &outcome {
        report.pending.push(Pending {
            key: action.key.clone(),
            kind: action.kind,
            reason: reason.clone(),
        });
    }
    outcome
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::attr::AttrValue;
    use crate::engine::desired::DesiredGraph;
    use crate::engine::plan::{plan, plan_teardown};
    use crate::engine::testing::{Behaviour, FakeCloud, Net, scope};

    fn options(concurrency: usize) -> ExecuteOptions {
        ExecuteOptions {
            concurrency: NonZeroUsize::new(concurrency).unwrap_or(NonZeroUsize::MIN),
            settle: Duration::ZERO,
        }
    }

    /// One pass: observe the fake, plan, act.
    async fn pass(cloud: &FakeCloud, desired: &DesiredGraph, concurrency: usize) -> (Plan, Report) {
        cloud.state().log.clear();
        let observed = cloud.observed();
        let plan = plan(desired, &observed);
        let report = execute(&plan, &observed, cloud, &scope(), options(concurrency)).await;
        (plan, report)
    }

    async fn teardown_pass(cloud: &FakeCloud, hints: &DesiredGraph) -> (Plan, Report) {
        cloud.state().log.clear();
        let observed = cloud.observed();
        let plan = plan_teardown(hints, &observed);
        let report = execute(&plan, &observed, cloud, &scope(), options(4)).await;
        (plan, report)
    }

    fn op_name_of(action: &Action) -> &'static str {
        op_name(&action.op)
    }

    /// Every action started only after the actions it follows had ended.
    fn assert_followed_order(cloud: &FakeCloud, plan: &Plan) {
        for action in &plan.actions {
            // Skipped actions never start.
            let Some(start) =
                cloud.position(&format!("start {} {}", op_name_of(action), action.key))
            else {
                continue;
            };
            for before in &action.after {
                let before = &plan.actions[before.0];
                let end = cloud.position(&format!("end {} {}", op_name_of(before), before.key));
                assert!(
                    end.is_some_and(|end| end < start),
                    "{} started before {} ended",
                    action.key,
                    before.key
                );
            }
        }
    }

    fn keys<T>(items: &[T], key: impl Fn(&T) -> &Key) -> Vec<String> {
        let mut keys: Vec<String> = items.iter().map(|i| key(i).to_string()).collect();
        keys.sort();
        keys
    }

    #[tokio::test]
    async fn applies_a_fresh_platform_then_has_nothing_to_do() {
        let cloud = FakeCloud::new(Duration::from_millis(2));
        let desired = Net::new(&["a", "b", "c"]).graph();
        let (plan, report) = pass(&cloud, &desired, 4).await;
        assert!(report.is_settled(), "{report:?}");
        assert_eq!(report.applied.len(), 13);
        assert!(
            report.requeue_soon(),
            "changes are verified by another pass"
        );
        assert_followed_order(&cloud, &plan);

        let writes = cloud.state().write_calls;
        let (plan, report) = pass(&cloud, &desired, 4).await;
        assert!(plan.is_empty(), "{plan:?}");
        assert_eq!(report, Report::default());
        assert_eq!(
            cloud.state().write_calls,
            writes,
            "a steady pass writes nothing"
        );
    }

    #[tokio::test]
    async fn runs_independent_actions_concurrently_within_the_bound() {
        let desired = Net::new(&["a", "b", "c", "d", "e", "f"]).graph();
        for (bound, expected) in [(1, 1), (2, 2), (5, 5)] {
            let cloud = FakeCloud::new(Duration::from_millis(5));
            let (plan, report) = pass(&cloud, &desired, bound).await;
            assert!(report.is_settled(), "{report:?}");
            assert_eq!(cloud.state().max_in_flight, expected, "bound {bound}");
            assert_followed_order(&cloud, &plan);
        }
        // Unbounded, the VPC and the six addresses start together.
        let cloud = FakeCloud::new(Duration::from_millis(5));
        pass(&cloud, &desired, 64).await;
        assert!(cloud.state().max_in_flight >= 7);
    }

    #[tokio::test]
    async fn a_refused_create_stops_its_branch_only() {
        let cloud = FakeCloud::new(Duration::from_millis(1));
        cloud.behave("subnet/b", Behaviour::RefuseCreate);
        let desired = Net::new(&["a", "b"]).graph();
        let (_, report) = pass(&cloud, &desired, 4).await;
        assert!(report.is_stalled());
        assert_eq!(report.refused.len(), 1);
        let refused = &report.refused[0];
        assert_eq!(refused.key.as_str(), "subnet/b");
        assert_eq!(refused.operation, "create");
        assert_eq!(
            refused.error,
            ActError::refused("InvalidParameterValue", "no such thing")
        );
        assert_eq!(keys(&report.blocked, |b| &b.key), ["nat/b", "route/b"]);
        assert!(report.blocked.iter().all(|b| b.by.as_str() == "subnet/b"));
        // Zone a and the independent address of zone b went ahead.
        assert_eq!(
            keys(&report.applied, |a| &a.key),
            ["eip/a", "eip/b", "nat/a", "route/a", "subnet/a", "vpc"]
        );
        assert!(cloud.state().log.iter().all(|l| !l.ends_with("nat/b")));
    }

    #[tokio::test]
    async fn a_retryable_failure_requeues_without_stalling() {
        let cloud = FakeCloud::new(Duration::from_millis(1));
        cloud.behave("vpc", Behaviour::ThrottleCreate);
        let (_, report) = pass(&cloud, &Net::new(&["a"]).graph(), 4).await;
        assert!(!report.is_stalled());
        assert!(report.requeue_soon());
        assert_eq!(keys(&report.retryable, |f| &f.key), ["vpc"]);
        assert_eq!(
            keys(&report.blocked, |b| &b.key),
            ["nat/a", "route/a", "subnet/a"]
        );
    }

    #[tokio::test]
    async fn dependents_of_a_pending_create_wait_for_the_next_pass() {
        let cloud = FakeCloud::new(Duration::from_millis(1));
        cloud.behave("nat/a", Behaviour::CreatePending);
        let desired = Net::new(&["a"]).graph();
        let (_, report) = pass(&cloud, &desired, 4).await;
        assert!(report.requeue_soon());
        let pending: BTreeMap<String, String> = report
            .pending
            .iter()
            .map(|p| (p.key.to_string(), p.reason.clone()))
            .collect();
        assert_eq!(pending["nat/a"], "still being created or modified");
        assert_eq!(pending["route/a"], "waiting for nat/a");

        // Still pending: the plan waits and does nothing.
        let (plan, report) = pass(&cloud, &desired, 4).await;
        assert!(plan.actions.is_empty());
        assert_eq!(keys(&report.pending, |p| &p.key), ["nat/a", "route/a"]);

        cloud.finish_creates();
        let (plan, report) = pass(&cloud, &desired, 4).await;
        assert_eq!(plan.actions.len(), 1);
        assert!(report.is_settled());
        assert!(pass(&cloud, &desired, 4).await.0.is_empty());
    }

    #[tokio::test]
    async fn replacing_the_vpc_rebuilds_what_depends_on_it_and_converges() {
        let cloud = FakeCloud::new(Duration::from_millis(1));
        let before = Net::new(&["a", "b"]);
        pass(&cloud, &before.graph(), 4).await;
        let old_vpc = cloud
            .observed()
            .primary(&"vpc".into())
            .map(|r| r.id.clone());

        let after = Net {
            cidr: "10.1.0.0/16",
            ..before
        };
        let (plan, report) = pass(&cloud, &after.graph(), 3).await;
        // The fake refuses deleting anything still in use and any reference to a missing id,
        // so a settled report means the order was right.
        assert!(report.is_settled(), "{report:?}");
        assert_followed_order(&cloud, &plan);
        let observed = cloud.observed();
        let vpc = observed.primary(&"vpc".into());
        assert_ne!(vpc.map(|r| r.id.clone()), old_vpc);
        let nat = observed.primary(&"nat/a".into()).map(|r| r.id.clone());
        let route = observed.primary(&"route/a".into());
        assert_eq!(
            route
                .and_then(|r| r.attrs.get("nat_id"))
                .and_then(AttrValue::as_str),
            nat.as_deref()
        );
        assert!(pass(&cloud, &after.graph(), 3).await.0.is_empty());
    }

    /// Executes `plan` with 5 s to settle, while `finish` moves the fake's resources on 100 ms in.
    async fn execute_then(
        cloud: &FakeCloud,
        plan: &Plan,
        observed: &Observed,
        finish: fn(&FakeCloud),
    ) -> Report {
        let settling = ExecuteOptions {
            settle: Duration::from_secs(5),
            ..options(4)
        };
        let finishing = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            finish(cloud);
        };
        let scope = scope();
        let (report, ()) =
            tokio::join!(execute(plan, observed, cloud, &scope, settling), finishing);
        report
    }

    #[tokio::test]
    async fn a_create_finished_within_the_settle_time_releases_its_followers_in_the_same_pass() {
        let cloud = FakeCloud::new(Duration::from_millis(1));
        cloud.behave("nat/a", Behaviour::CreatePending);
        let desired = Net::new(&["a"]).graph();
        let observed = cloud.observed();
        let plan = plan(&desired, &observed);
        let report = execute_then(&cloud, &plan, &observed, FakeCloud::finish_creates).await;
        assert!(report.is_settled(), "{report:?}");
        assert!(cloud.position("end create route/a").is_some());
        assert_eq!(report.applied.len(), 5);
    }

    #[tokio::test]
    async fn a_create_still_pending_after_the_settle_time_leaves_its_followers_waiting() {
        let cloud = FakeCloud::new(Duration::from_millis(1));
        cloud.behave("nat/a", Behaviour::CreatePending);
        let desired = Net::new(&["a"]).graph();
        let observed = cloud.observed();
        let plan = plan(&desired, &observed);
        let settling = ExecuteOptions {
            settle: Duration::from_millis(300),
            ..options(4)
        };
        let report = execute(&plan, &observed, &cloud, &scope(), settling).await;
        assert_eq!(keys(&report.pending, |p| &p.key), ["nat/a", "route/a"]);
        assert!(cloud.position("start create route/a").is_none());
    }

    #[tokio::test]
    async fn a_delete_finished_within_the_settle_time_lets_what_it_depends_on_go_too() {
        let cloud = FakeCloud::new(Duration::from_millis(1));
        let desired = Net::new(&["a"]).graph();
        pass(&cloud, &desired, 4).await;
        cloud.behave("nat/a", Behaviour::SlowDelete);
        let observed = cloud.observed();
        let plan = plan_teardown(&desired, &observed);
        let report = execute_then(&cloud, &plan, &observed, FakeCloud::finish_deletes).await;
        assert!(report.is_settled(), "{report:?}");
        assert!(cloud.observed().is_empty(), "the VPC went in the same pass");
        assert!(
            report
                .applied
                .iter()
                .all(|a| matches!(a.change, Change::Deleted { done: true, .. }))
        );
    }

    #[tokio::test]
    async fn teardown_waits_for_slow_deletes_and_ends_with_nothing() {
        let cloud = FakeCloud::new(Duration::from_millis(1));
        let desired = Net::new(&["a", "b"]).graph();
        pass(&cloud, &desired, 4).await;
        cloud.behave("nat/a", Behaviour::SlowDelete);

        let (plan, report) = teardown_pass(&cloud, &desired).await;
        assert_followed_order(&cloud, &plan);
        assert!(report.retryable.is_empty(), "{report:?}");
        // Zone b is gone; zone a waits for its NAT gateway, and the VPC for zone a.
        let remaining = keys(&cloud.observed().iter().collect::<Vec<_>>(), |r| &r.key);
        assert_eq!(remaining, ["eip/a", "nat/a", "subnet/a", "vpc"]);
        assert!(report.requeue_soon());

        let (plan, _) = teardown_pass(&cloud, &desired).await;
        assert!(
            plan.actions.is_empty(),
            "nothing can go while the NAT is deleting"
        );

        cloud.finish_deletes();
        let (_, report) = teardown_pass(&cloud, &desired).await;
        assert!(report.is_settled(), "{report:?}");
        assert!(cloud.observed().is_empty());
        assert!(teardown_pass(&cloud, &desired).await.0.is_empty());
    }

    #[tokio::test]
    async fn attribute_references_take_what_a_create_reported_in_the_same_pass() {
        use crate::engine::desired::DesiredResource;
        use crate::engine::testing::{NAT, VPC};

        let cloud = FakeCloud::new(Duration::from_millis(1));
        let graph = |cidr: &str| {
            DesiredGraph::new([
                DesiredResource::new(VPC, "vpc").immutable("block", AttrValue::str(cidr)),
                DesiredResource::new(NAT, "nat/a")
                    .updatable("vpc_block", AttrValue::output("vpc", "block")),
            ])
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let (plan, report) = pass(&cloud, &graph("10.0.0.0/16"), 4).await;
        assert!(report.is_settled(), "{report:?}");
        assert_followed_order(&cloud, &plan);
        let observed = cloud.observed();
        let nat = observed
            .primary(&"nat/a".into())
            .unwrap_or_else(|| panic!("no nat"));
        assert_eq!(
            nat.attrs.get("vpc_block"),
            Some(&AttrValue::str("10.0.0.0/16")),
            "the create got the VPC's attribute, not a reference"
        );
        assert!(pass(&cloud, &graph("10.0.0.0/16"), 4).await.0.is_empty());

        // The VPC is replaced with another block: the dependent is updated to the new value
        // after the new VPC reported it.
        let (plan, report) = pass(&cloud, &graph("10.9.0.0/16"), 4).await;
        assert!(report.is_settled(), "{report:?}");
        assert_followed_order(&cloud, &plan);
        let observed = cloud.observed();
        let nat = observed
            .primary(&"nat/a".into())
            .unwrap_or_else(|| panic!("no nat"));
        assert_eq!(
            nat.attrs.get("vpc_block"),
            Some(&AttrValue::str("10.9.0.0/16"))
        );
        assert!(pass(&cloud, &graph("10.9.0.0/16"), 4).await.0.is_empty());
    }
}
