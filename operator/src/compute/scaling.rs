//! Step scaling policies of each revision's group: `scaling-policy/<rev>/out` adds instances,
//! `scaling-policy/<rev>/in` removes one. The CloudWatch alarms that trigger them on the spec's
//! CPU thresholds belong to the monitoring family and refer to these policies by ARN (the id).
//!
//! Step scaling, not simple or target tracking: the spec gives two thresholds, which are two
//! alarms, each triggering its own policy; target tracking would make its own alarms around
//! one target instead. Unlike simple scaling, a step policy keeps answering its alarm while an
//! activity is in progress, and sizes its answer to the breach (+1 just above the threshold, +2
//! far above). The spec's cooldown becomes the policies' estimated instance warm-up (new
//! instances' CPU does not count until then, so one breach is not answered twice) and the
//! group's default cooldown.
//!
//! Policies carry no tags: they are found through the platform's groups (`DescribePolicies`
//! per group), each policy's key recovered from its deterministic name. `PutScalingPolicy`
//! creates and updates alike.

use async_trait::async_trait;
use aws_sdk_autoscaling::types::{ScalingPolicy, StepAdjustment};

use super::group::AutoScalingGroups;
use super::{SCALING_POLICY, keys};
use crate::aws::kit::{Deleted, Kit, Listed, Listing, Made, Select, Sent};
use crate::aws::{AwsClients, LostAnswer, classify, error_code};
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, DesiredResource, Key, Kind,
    ObservedResource, Reads, Scope, UpdateRequest, Wanted,
};
use crate::intent::Intent;

/// Observed only: the policy's name.
pub const POLICY_NAME: &str = "policy_name";

/// CPU points above the scale-out threshold from which two instances are added at once.
pub const SURGE_POINTS: i64 = 20;
/// AWS's limit on a policy name.
const NAME_LEN: usize = 255;

/// One step: `adjustment` instances when the metric is between `lower` and `upper` above the
/// threshold (`None`: unbounded).
pub fn step(lower: Option<i64>, upper: Option<i64>, adjustment: i64) -> AttrValue {
    let mut entries = std::collections::BTreeMap::new();
    if let Some(lower) = lower {
        entries.insert("lower".to_owned(), AttrValue::Int(lower));
    }
    if let Some(upper) = upper {
        entries.insert("upper".to_owned(), AttrValue::Int(upper));
    }
    entries.insert("adjustment".to_owned(), AttrValue::Int(adjustment));
    AttrValue::Map(entries)
}

crate::fields! {
    /// A scaling policy as compute wants it.
    desired PolicyFields,
    /// A scaling policy's fields as its driver reads them.
    resolved PolicyValues {
        /// The group's name.
        group / GROUP = "auto_scaling_group": AttrValue => &'a str, immutable;
        /// Always `StepScaling`.
        policy_type / POLICY_TYPE = "policy_type": AttrValue => &'a str, immutable;
        /// Always `ChangeInCapacity`.
        adjustment_type / ADJUSTMENT_TYPE = "adjustment_type": AttrValue => &'a str, updatable;
        /// Always `Average` (the alarms watch average CPU).
        aggregation / AGGREGATION = "metric_aggregation_type": AttrValue => &'a str, updatable;
        /// The step table, a list of `{lower, upper, adjustment}` (bounds relative to the
        /// alarm's threshold; a missing bound is infinite).
        steps / STEPS = "steps": AttrValue => &'a AttrValue, updatable;
        /// Seconds before a new instance's metrics count (the spec's cooldown).
        warmup / WARMUP = "estimated_instance_warmup": AttrValue => i32, updatable;
    }
}

/// The desired policies: out and in for each revision that must exist.
pub fn desired_policies(intent: &Intent) -> Vec<DesiredResource> {
    let warmup = intent.compute.scaling.cooldown_seconds;
    let mut out = Vec::new();
    for (revision, _) in intent.serving.weights() {
        let policy = |key: Key, steps: Vec<AttrValue>| {
            let fields = PolicyFields {
                group: AttrValue::reference(keys::auto_scaling_group(&revision.id)),
                policy_type: "StepScaling".into(),
                adjustment_type: "ChangeInCapacity".into(),
                aggregation: "Average".into(),
                steps: AttrValue::List(steps),
                warmup: warmup.into(),
            };
            fields.into_desired(SCALING_POLICY, key)
        };
        out.push(policy(
            keys::scale_out(&revision.id),
            vec![
                step(Some(0), Some(SURGE_POINTS), 1),
                step(Some(SURGE_POINTS), None, 2),
            ],
        ));
        out.push(policy(
            keys::scale_in(&revision.id),
            vec![step(None, Some(0), -1)],
        ));
    }
    out
}

/// Bounds are whole CPU points; AWS returns them as floats.
fn bound(value: Option<f64>) -> Option<i64> {
    #[allow(clippy::cast_possible_truncation)]
    value.map(|v| v.round() as i64)
}

fn observed_policy(policy: &ScalingPolicy, key: Key) -> Option<ObservedResource> {
    let arn = policy.policy_arn()?;
    let mut resource = ObservedResource::new(SCALING_POLICY, key, arn)
        .attr(POLICY_NAME, policy.policy_name().unwrap_or_default())
        .attr(
            STEPS,
            AttrValue::List(
                policy
                    .step_adjustments()
                    .iter()
                    .map(|s| {
                        step(
                            bound(s.metric_interval_lower_bound()),
                            bound(s.metric_interval_upper_bound()),
                            i64::from(s.scaling_adjustment().unwrap_or_default()),
                        )
                    })
                    .collect(),
            ),
        );
    for (field, value) in [
        (GROUP, policy.auto_scaling_group_name()),
        (POLICY_TYPE, policy.policy_type()),
        (ADJUSTMENT_TYPE, policy.adjustment_type()),
        (AGGREGATION, policy.metric_aggregation_type()),
    ] {
        if let Some(value) = value {
            resource = resource.attr(field, value);
        }
    }
    if let Some(warmup) = policy.estimated_instance_warmup() {
        resource = resource.attr(WARMUP, AttrValue::Int(i64::from(warmup)));
    }
    Some(resource)
}

fn steps_of(value: &AttrValue) -> Vec<StepAdjustment> {
    let AttrValue::List(items) = value else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let AttrValue::Map(entries) = item else {
                return None;
            };
            let number = |name: &str| entries.get(name).and_then(AttrValue::as_int);
            #[allow(clippy::cast_precision_loss)]
            let float = |name: &str| number(name).map(|v| v as f64);
            Some(
                StepAdjustment::builder()
                    .set_metric_interval_lower_bound(float("lower"))
                    .set_metric_interval_upper_bound(float("upper"))
                    .scaling_adjustment(i32::try_from(number("adjustment")?).ok()?)
                    .build(),
            )
        })
        .collect()
}

/// The scaling policies component.
pub struct ScalingPolicies {
    aws: AwsClients,
    groups: AutoScalingGroups,
}

impl ScalingPolicies {
    /// The component acting through `aws`.
    pub fn new(aws: AwsClients) -> Self {
        Self {
            groups: AutoScalingGroups::new(aws.clone()),
            aws,
        }
    }

    /// The policies of `group`, keyed when their name is one of the revision's.
    async fn of_group(
        &self,
        group: &str,
        revision: &str,
        scope: &Scope,
    ) -> Result<Vec<ObservedResource>, ActError> {
        let candidates = [keys::scale_out(revision), keys::scale_in(revision)];
        let output = self
            .aws
            .autoscaling()
            .await
            .describe_policies()
            .auto_scaling_group_name(group)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(output
            .scaling_policies()
            .iter()
            .filter_map(|policy| {
                let key = candidates
                    .iter()
                    .find(|k| policy.policy_name() == Some(scope.name_for(k, NAME_LEN).as_str()))?;
                observed_policy(policy, key.clone())
            })
            .collect())
    }

    /// Creates or updates the policy with every desired field.
    async fn put(&self, key: &Key, attrs: &crate::engine::Attrs, scope: &Scope) -> Made {
        let fields = PolicyValues::read(attrs)?;
        let group = fields.group;
        let name = scope.name_for(key, NAME_LEN);
        let output = self
            .aws
            .autoscaling()
            .await
            .put_scaling_policy()
            .auto_scaling_group_name(group)
            .policy_name(&name)
            .policy_type(fields.policy_type)
            .adjustment_type(fields.adjustment_type)
            .metric_aggregation_type(fields.aggregation)
            .set_step_adjustments(Some(steps_of(fields.steps)))
            .estimated_instance_warmup(fields.warmup)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let arn = match output.policy_arn() {
            Some(arn) if !arn.is_empty() => arn.to_owned(),
            // moto (5.2.5) leaves PolicyARN out of the answer: read it back.
            _ => self
                .aws
                .autoscaling()
                .await
                .describe_policies()
                .auto_scaling_group_name(group)
                .policy_names(&name)
                .send()
                .await
                .map_err(|e| classify(&e))?
                .scaling_policies()
                .iter()
                .find_map(|p| p.policy_arn().map(str::to_owned))
                .ok_or_else(|| {
                    ActError::retryable(
                        "PlinthPolicyNotFound",
                        format!("policy {name} is not listed yet"),
                    )
                })?,
        };
        let mut resource =
            ObservedResource::new(SCALING_POLICY, key, arn).attr(POLICY_NAME, name.as_str());
        for (field, value) in attrs {
            resource.attrs.insert(field.clone(), value.clone());
        }
        Ok(resource)
    }
}

impl Component<Intent> for ScalingPolicies {
    fn desired(&self, intent: &Intent) -> Wanted {
        Ok(desired_policies(intent))
    }
}

#[async_trait]
impl Listing for ScalingPolicies {
    /// The policies of the platform's groups, from the groups read once per observe.
    async fn list(&self, select: Select<'_>, reads: &Reads) -> Listed {
        let scope = select.scope();
        let mut found = Vec::new();
        for group in self.groups.shared(scope, reads).await?.iter() {
            let Some(revision) = keys::revision_of(&group.key, "auto-scaling-group") else {
                continue;
            };
            found.extend(self.of_group(&group.id, revision, scope).await?);
        }
        Ok(found)
    }
}

#[async_trait]
impl Kit for ScalingPolicies {
    const KIND: Kind = SCALING_POLICY;
    const IAM_ACTIONS: &'static [&'static str] = crate::actions![
        autoscaling: DescribeAutoScalingGroups, DescribePolicies, PutScalingPolicy, DeletePolicy;
    ];
    /// PutScalingPolicy creates or replaces the policy of that name.
    const LOST_ANSWER: LostAnswer = LostAnswer::Idempotent;

    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        Ok(self.put(request.key, request.attrs, request.scope).await?)
    }

    async fn update_in_place(&self, request: UpdateRequest<'_>) -> Made {
        // PutScalingPolicy replaces the whole definition: send every field.
        self.put(&request.current.key, request.attrs, request.scope)
            .await
    }

    async fn send_delete(&self, current: &ObservedResource, scope: &Scope) -> Deleted {
        let name = current
            .attrs
            .get(POLICY_NAME)
            .and_then(AttrValue::as_str)
            .map_or_else(|| scope.name_for(&current.key, NAME_LEN), str::to_owned);
        let group = current.attrs.get(GROUP).and_then(AttrValue::as_str);
        match self
            .aws
            .autoscaling()
            .await
            .delete_policy()
            .set_auto_scaling_group_name(group.map(str::to_owned))
            .policy_name(name)
            .send()
            .await
        {
            Ok(_) => Ok(Deletion::Gone),
            // The group (and its policies with it) is gone already.
            Err(e) if error_code(&e) == Some("ValidationError") => Ok(Deletion::Gone),
            Err(e) => Err(classify(&e)),
        }
    }
}
