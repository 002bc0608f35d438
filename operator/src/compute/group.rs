//! One Auto Scaling group per app revision: the revision's launch template, the private
//! subnets of every zone, the spec's size bounds, the revision's target group with ELB health
//! checks, and Plinth's tags plus `plinth.dev/revision` propagated to every instance.
//!
//! The group's id is its name (`Scope::name_for`, unique per platform and revision), which
//! makes a retried create find the first one (`AlreadyExists`). Desired capacity is sent only
//! at create: afterwards the scaling policies own it, and correcting it would undo their work.
//! Delete is a force delete (AWS terminates the instances); while AWS reports "Delete in
//! progress" the group is observed as deleting, so its launch template, security group and
//! subnets wait until the instances are gone.

use std::collections::BTreeSet;

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_autoscaling::types::{AutoScalingGroup, Filter, LaunchTemplateSpecification, Tag};

use super::{AUTO_SCALING_GROUP, REVISION_TAG, keys};
use crate::aws::kit::{Deleted, Kit, Listed, Listing, Made, Select, Sent, updated};
use crate::aws::{classify, error_code};
use crate::driver;
use crate::engine::fields::owned;
use crate::engine::{
    ActError, AttrValue, COMPONENT_TAG, Component, CreateRequest, Deletion, DesiredResource, Key,
    Kind, Lifecycle, ObservedResource, PLATFORM_TAG, Reads, Scope, UpdateRequest, Wanted,
};
use crate::intent::Intent;
use crate::network::keys as network_keys;

crate::fields! {
    /// A group as compute wants it.
    desired GroupFields,
    /// A group's fields as its driver reads them.
    resolved GroupValues {
        /// The launch template's id.
        launch_template / LAUNCH_TEMPLATE = "launch_template": AttrValue => &'a str, updatable;
        /// The subnets, a set of ids.
        subnets / SUBNETS = "subnets": AttrValue => BTreeSet<&'a str>, updatable;
        /// Fewest instances.
        min_size / MIN_SIZE = "min_size": AttrValue => i32, updatable;
        /// Most instances.
        max_size / MAX_SIZE = "max_size": AttrValue => i32, updatable;
        /// Instances to start with.
        desired_capacity / DESIRED_CAPACITY = "desired_capacity": AttrValue => i32, create_only;
        /// The target groups, a set of ARNs.
        target_groups / TARGET_GROUPS = "target_groups": AttrValue => BTreeSet<&'a str>, updatable;
        /// `ELB` (an instance the load balancer finds unhealthy is replaced).
        health_check_type / HEALTH_CHECK_TYPE = "health_check_type": AttrValue => &'a str, updatable;
        /// Seconds a new instance has before health checks count.
        health_check_grace / HEALTH_CHECK_GRACE = "health_check_grace_period": AttrValue => i32, updatable;
        /// Seconds between scaling activities of simple policies (the spec's cooldown).
        default_cooldown / DEFAULT_COOLDOWN = "default_cooldown": AttrValue => i32, updatable;
        /// The app revision (its `plinth.dev/revision` tag).
        revision / REVISION = "revision": AttrValue => &'a str, immutable;
    }
}

/// Boot, fetch the binary, migrate and pass two health checks: five minutes is AWS's default
/// and leaves room for a slow first boot.
pub const GRACE_SECONDS: i64 = 300;
/// The version of the launch template the group launches: its only one.
const TEMPLATE_VERSION: &str = "$Default";
/// AWS's limit on a group name.
const NAME_LEN: usize = 255;
/// What AWS reports while a force delete terminates the instances.
const DELETING: &str = "Delete in progress";

/// The desired groups: one per revision that must exist.
pub fn desired_groups(intent: &Intent) -> Vec<DesiredResource> {
    let subnets = AttrValue::set(
        intent
            .network
            .availability_zones
            .iter()
            .map(|az| AttrValue::reference(network_keys::private_subnet(az))),
    );
    let compute = &intent.compute;
    let desired = compute.desired_capacity.unwrap_or(compute.min_size);
    intent
        .serving
        .weights()
        .into_iter()
        .map(|(revision, _)| {
            let fields = GroupFields {
                launch_template: AttrValue::reference(keys::launch_template(&revision.id)),
                subnets: subnets.clone(),
                min_size: compute.min_size.into(),
                max_size: compute.max_size.into(),
                desired_capacity: desired.into(),
                target_groups: AttrValue::set([AttrValue::reference(keys::target_group(
                    &revision.id,
                ))]),
                health_check_type: "ELB".into(),
                health_check_grace: GRACE_SECONDS.into(),
                default_cooldown: compute.scaling.cooldown_seconds.into(),
                revision: revision.id.as_str().into(),
            };
            fields.into_desired(AUTO_SCALING_GROUP, keys::auto_scaling_group(&revision.id))
        })
        .collect()
}

fn int(value: Option<i32>) -> Option<AttrValue> {
    value.map(|v| AttrValue::Int(i64::from(v)))
}

/// A group as observed, when its tags say it is `scope`'s.
fn observed_group(group: &AutoScalingGroup, scope: &Scope) -> Option<ObservedResource> {
    let tag = |name: &str| {
        group
            .tags()
            .iter()
            .find(|t| t.key() == Some(name))
            .and_then(|t| t.value())
    };
    if tag(PLATFORM_TAG) != Some(scope.platform()) {
        return None;
    }
    let key = Key::from(tag(COMPONENT_TAG)?);
    let name = group.auto_scaling_group_name()?;
    let lifecycle = if group.status() == Some(DELETING) {
        Lifecycle::Deleting
    } else {
        Lifecycle::Available
    };
    let mut resource = ObservedResource::new(AUTO_SCALING_GROUP, key, name).lifecycle(lifecycle);
    if let Some(template) = group.launch_template().and_then(|t| t.launch_template_id()) {
        resource = resource.attr(LAUNCH_TEMPLATE, template);
    }
    let subnets = group
        .vpc_zone_identifier()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(AttrValue::str);
    resource = resource.attr(SUBNETS, AttrValue::set(subnets));
    resource = resource.attr(
        TARGET_GROUPS,
        AttrValue::set(
            group
                .target_group_arns()
                .iter()
                .map(|a| AttrValue::str(a.as_str())),
        ),
    );
    for (field, value) in [
        (MIN_SIZE, int(group.min_size())),
        (MAX_SIZE, int(group.max_size())),
        (DESIRED_CAPACITY, int(group.desired_capacity())),
        (HEALTH_CHECK_GRACE, int(group.health_check_grace_period())),
        (DEFAULT_COOLDOWN, int(group.default_cooldown())),
        (
            HEALTH_CHECK_TYPE,
            group.health_check_type().map(AttrValue::str),
        ),
        (REVISION, tag(REVISION_TAG).map(AttrValue::str)),
    ] {
        if let Some(value) = value {
            resource = resource.attr(field, value);
        }
    }
    Some(resource)
}

fn strings(value: Option<&AttrValue>) -> BTreeSet<String> {
    match value {
        Some(AttrValue::Set(items)) => items
            .iter()
            .filter_map(AttrValue::as_str)
            .map(str::to_owned)
            .collect(),
        _ => BTreeSet::new(),
    }
}

driver!(
    /// The Auto Scaling groups component.
    AutoScalingGroups
);

impl AutoScalingGroups {
    /// The platform's groups, read once per observe for the groups and their scaling policies.
    pub async fn shared(
        &self,
        scope: &Scope,
        reads: &Reads,
    ) -> Result<Arc<Vec<ObservedResource>>, ActError> {
        reads
            .get_or_read("autoscaling:DescribeAutoScalingGroups", || self.list(scope))
            .await
    }

    /// The platform's groups (one call per page, filtered by the platform tag).
    pub async fn list(&self, scope: &Scope) -> Listed {
        let platform = Filter::builder()
            .name(format!("tag:{PLATFORM_TAG}"))
            .values(scope.platform())
            .build();
        let call = self.aws.autoscaling().await.describe_auto_scaling_groups();
        let pages = call.filters(platform).into_paginator().items().send();
        let groups: Vec<_> = pages.try_collect().await.map_err(|e| classify(&e))?;
        Ok(groups
            .iter()
            .filter_map(|g| observed_group(g, scope))
            .collect())
    }

    /// The group named `name`, when it exists and is `scope`'s.
    async fn find(&self, name: &str, scope: &Scope) -> Result<Option<ObservedResource>, ActError> {
        let output = self
            .aws
            .autoscaling()
            .await
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(output
            .auto_scaling_groups()
            .iter()
            .find_map(|g| observed_group(g, scope)))
    }

    async fn sync_target_groups(
        &self,
        group: &str,
        current: &BTreeSet<String>,
        desired: &BTreeSet<String>,
    ) -> Result<(), ActError> {
        let attach: Vec<String> = desired.difference(current).cloned().collect();
        let detach: Vec<String> = current.difference(desired).cloned().collect();
        if !attach.is_empty() {
            self.aws
                .autoscaling()
                .await
                .attach_load_balancer_target_groups()
                .auto_scaling_group_name(group)
                .set_target_group_arns(Some(attach))
                .send()
                .await
                .map_err(|e| classify(&e))?;
        }
        if !detach.is_empty() {
            self.aws
                .autoscaling()
                .await
                .detach_load_balancer_target_groups()
                .auto_scaling_group_name(group)
                .set_target_group_arns(Some(detach))
                .send()
                .await
                .map_err(|e| classify(&e))?;
        }
        Ok(())
    }
}

impl Component<Intent> for AutoScalingGroups {
    fn desired(&self, intent: &Intent) -> Wanted {
        Ok(desired_groups(intent))
    }
}

#[async_trait]
impl Listing for AutoScalingGroups {
    /// The platform's groups, read once per observe (their policies need them too); one
    /// component's by its deterministic name.
    async fn list(&self, select: Select<'_>, reads: &Reads) -> Listed {
        match select {
            Select::Platform(scope) => Ok(self.shared(scope, reads).await?.as_ref().clone()),
            Select::Component(scope, key) => {
                let name = scope.name_for(key, NAME_LEN);
                Ok(self.find(&name, scope).await?.into_iter().collect())
            }
        }
    }
}

#[async_trait]
impl Kit for AutoScalingGroups {
    const KIND: Kind = AUTO_SCALING_GROUP;
    // Launching from a template that names an instance profile passes its role.
    // The first group in an account creates Auto Scaling's service-linked role.
    const IAM_ACTIONS: &'static [&'static str] = crate::actions![
        autoscaling: DescribeAutoScalingGroups, CreateAutoScalingGroup, CreateOrUpdateTags,
            UpdateAutoScalingGroup, AttachLoadBalancerTargetGroups, DetachLoadBalancerTargetGroups,
            DeleteAutoScalingGroup;
        iam: PassRole, CreateServiceLinkedRole;
        ec2: RunInstances, CreateTags;
    ];
    const DUPLICATE_CODES: &'static [&'static str] = &["AlreadyExists"];

    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let fields = GroupValues::read(request.attrs)?;
        let (template, revision) = (fields.launch_template, fields.revision);
        let subnets: Vec<&str> = fields.subnets.iter().copied().collect();

        let name = request.name(NAME_LEN);
        let mut tags = request.tags();
        tags.insert(REVISION_TAG.to_owned(), revision.to_owned());
        tags.entry("Name".to_owned())
            .or_insert_with(|| name.clone());
        let tags: Vec<Tag> = tags
            .into_iter()
            .map(|(k, v)| {
                Tag::builder()
                    .key(k)
                    .value(v)
                    .propagate_at_launch(true)
                    .resource_id(&name)
                    .resource_type("auto-scaling-group")
                    .build()
            })
            .collect();
        let template = LaunchTemplateSpecification::builder()
            .launch_template_id(template)
            .version(TEMPLATE_VERSION)
            .build();
        let call = self.aws.autoscaling().await.create_auto_scaling_group();
        crate::send_once!(
            aws_sdk_autoscaling,
            call.auto_scaling_group_name(&name)
                .launch_template(template)
                .min_size(fields.min_size)
                .max_size(fields.max_size)
                .desired_capacity(fields.desired_capacity)
                .vpc_zone_identifier(subnets.join(","))
                .set_target_group_arns(Some(owned(&fields.target_groups)))
                .health_check_type(fields.health_check_type)
                .health_check_grace_period(fields.health_check_grace)
                .default_cooldown(fields.default_cooldown)
                .set_tags(Some(tags))
        )?;
        Ok(ObservedResource::new(
            AUTO_SCALING_GROUP,
            request.key,
            name.as_str(),
        ))
    }

    /// Every field as desired, on the group made or found (the next observe reads it back).
    async fn after_create(
        &self,
        mut resource: ObservedResource,
        request: &CreateRequest<'_>,
    ) -> Made {
        for (field, value) in request.attrs {
            resource
                .attrs
                .entry(field.clone())
                .or_insert_with(|| value.clone());
        }
        Ok(resource)
    }

    async fn update_in_place(&self, request: UpdateRequest<'_>) -> Made {
        let group = &request.current.id;
        let fields = GroupValues::read(request.attrs)?;
        let changed = |field: &str| request.changed.iter().any(|f| f == field);
        let mut call = self
            .aws
            .autoscaling()
            .await
            .update_auto_scaling_group()
            .auto_scaling_group_name(group);
        let mut any = false;
        if changed(LAUNCH_TEMPLATE) {
            call = call.launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_id(fields.launch_template)
                    .version(TEMPLATE_VERSION)
                    .build(),
            );
            any = true;
        }
        if changed(SUBNETS) {
            let subnets: Vec<&str> = fields.subnets.iter().copied().collect();
            call = call.vpc_zone_identifier(subnets.join(","));
            any = true;
        }
        if changed(MIN_SIZE) || changed(MAX_SIZE) {
            // Both bounds together: a new minimum above the old maximum is refused otherwise.
            call = call.min_size(fields.min_size).max_size(fields.max_size);
            any = true;
        }
        if changed(HEALTH_CHECK_TYPE) {
            call = call.health_check_type(fields.health_check_type);
            any = true;
        }
        if changed(HEALTH_CHECK_GRACE) {
            call = call.health_check_grace_period(fields.health_check_grace);
            any = true;
        }
        if changed(DEFAULT_COOLDOWN) {
            call = call.default_cooldown(fields.default_cooldown);
            any = true;
        }
        if any {
            call.send().await.map_err(|e| classify(&e))?;
        }
        if changed(TARGET_GROUPS) {
            self.sync_target_groups(
                group,
                &strings(request.current.attrs.get(TARGET_GROUPS)),
                &fields
                    .target_groups
                    .iter()
                    .map(|&arn| arn.to_owned())
                    .collect(),
            )
            .await?;
        }
        Ok(updated(&request))
    }

    async fn send_delete(&self, current: &ObservedResource, scope: &Scope) -> Deleted {
        let result = self
            .aws
            .autoscaling()
            .await
            .delete_auto_scaling_group()
            .auto_scaling_group_name(&current.id)
            .force_delete(true)
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e) if error_code(&e) == Some("ValidationError") && is_not_found(&e) => {
                return Ok(Deletion::Gone);
            }
            Err(e) if error_code(&e) == Some("ScalingActivityInProgress") => {
                return Err(ActError::Pending {
                    reason: format!("{}: a scaling activity is in progress", current.id),
                });
            }
            Err(e) => return Err(classify(&e)),
        }
        // AWS keeps the group, "Delete in progress", until its instances are terminated.
        Ok(match self.find(&current.id, scope).await? {
            Some(_) => Deletion::InProgress,
            None => Deletion::Gone,
        })
    }
}

/// Whether an Auto Scaling `ValidationError` says the group does not exist.
fn is_not_found<E>(
    error: &aws_sdk_autoscaling::error::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> bool
where
    E: aws_sdk_autoscaling::error::ProvideErrorMetadata,
{
    match error {
        aws_sdk_autoscaling::error::SdkError::ServiceError(service) => service
            .err()
            .message()
            .is_some_and(|m| m.to_lowercase().contains("not found")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_autoscaling::types::TagDescription;

    use super::*;

    fn group(status: Option<&str>, platform: &str) -> AutoScalingGroup {
        let tag = |k: &str, v: &str| TagDescription::builder().key(k).value(v).build();
        AutoScalingGroup::builder()
            .auto_scaling_group_name("plinth-ns-p-asg")
            .vpc_zone_identifier("subnet-b, subnet-a")
            .min_size(1)
            .max_size(3)
            .desired_capacity(2)
            .health_check_type("ELB")
            .health_check_grace_period(300)
            .default_cooldown(240)
            .target_group_arns("arn:tg")
            .launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_id("lt-1")
                    .version(TEMPLATE_VERSION)
                    .build(),
            )
            .set_status(status.map(str::to_owned))
            .tags(tag(PLATFORM_TAG, platform))
            .tags(tag(COMPONENT_TAG, "auto-scaling-group/abcd1234"))
            .tags(tag(REVISION_TAG, "abcd1234"))
            .build()
    }

    #[test]
    fn a_group_reads_back_as_the_fields_desired_and_deleting_while_aws_deletes_it() {
        let scope = Scope::new("ns", "p", []);
        let Some(found) = observed_group(&group(None, "ns/p"), &scope) else {
            panic!("the platform's group is observed");
        };
        assert_eq!(found.key.as_str(), "auto-scaling-group/abcd1234");
        assert_eq!(found.id, "plinth-ns-p-asg");
        assert_eq!(found.lifecycle, Lifecycle::Available);
        assert_eq!(
            found.attrs.get(SUBNETS),
            Some(&AttrValue::set([
                AttrValue::str("subnet-a"),
                AttrValue::str("subnet-b")
            ]))
        );
        assert_eq!(
            found.attrs.get(LAUNCH_TEMPLATE),
            Some(&AttrValue::str("lt-1"))
        );
        assert_eq!(found.attrs.get(REVISION), Some(&AttrValue::str("abcd1234")));
        assert_eq!(
            found.attrs.get(DEFAULT_COOLDOWN),
            Some(&AttrValue::Int(240))
        );
        assert_eq!(
            found.attrs.get(TARGET_GROUPS),
            Some(&AttrValue::set([AttrValue::str("arn:tg")]))
        );

        let deleting = observed_group(&group(Some(DELETING), "ns/p"), &scope);
        assert_eq!(deleting.map(|r| r.lifecycle), Some(Lifecycle::Deleting));
        assert!(observed_group(&group(None, "ns/other"), &scope).is_none());
    }
}
