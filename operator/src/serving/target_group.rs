//! One target group per app revision the Intent runs (`target-group/<revision>`): HTTP to the
//! app's port on instances in the VPC, checked by `spec.loadBalancer.healthCheck`, tagged
//! `plinth.dev/revision`. The compute family registers its scaling group with it by reference.
//!
//! The health check changes in place (`ModifyTargetGroup`); protocol, port, VPC, target type
//! and revision replace the group (a port change is a new revision's worth of change anyway).
//!
//! Observing costs two calls whatever the number of platforms in the region: `GetResources` of
//! the Resource Groups Tagging API finds every target group tagged for the platform with its
//! tags (those of revisions the Intent no longer names too, so a crash mid-rollout leaves
//! nothing behind), then one `DescribeTargetGroups` of those ARNs reads their settings.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{Matcher, ProtocolEnum, TargetGroup, TargetTypeEnum};

use super::{NAME_LEN, REVISION_TAG, TARGET_GROUP, create_tags, key_of, keys, tags_of};
use crate::aws::kit::{Deleted, Kit, Listed, Listing, Made, Select, Sent, updated};
use crate::aws::tagging::tagged;
use crate::aws::{LostAnswer, classify, error_code};
use crate::driver;
use crate::engine::{
    ActError, AttrValue, Component, CreateRequest, Deletion, DesiredResource, Key, Kind, Lifecycle,
    ObservedResource, Reads, Scope, UpdateRequest, Wanted,
};
use crate::intent::Intent;
use crate::network;

/// Health check: the path requested.
pub const HC_PATH: &str = "path";
/// Health check: seconds between checks.
pub const HC_INTERVAL: &str = "interval_seconds";
/// Health check: seconds to wait for an answer.
pub const HC_TIMEOUT: &str = "timeout_seconds";
/// Health check: successes before healthy.
pub const HC_HEALTHY: &str = "healthy_threshold";
/// Health check: failures before unhealthy.
pub const HC_UNHEALTHY: &str = "unhealthy_threshold";
/// Health check: the HTTP codes that count as healthy.
pub const HC_MATCHER: &str = "matcher";

/// "2xx means healthy", as the spec documents.
const HEALTHY_CODES: &str = "200-299";

/// The IAM actions this driver's calls need.
const IAM_ACTIONS: &[&str] = crate::actions![
    tag: GetResources;
    elasticloadbalancing: DescribeTargetGroups, DescribeTags, CreateTargetGroup, AddTags,
        ModifyTargetGroup, DeleteTargetGroup;
];

driver!(
    /// The target groups component.
    TargetGroups
);

crate::fields! {
    /// A target group as serving wants it.
    desired TargetGroupFields,
    /// A target group's fields as its driver reads them.
    resolved TargetGroupValues {
        /// `HTTP`.
        protocol / PROTOCOL = "protocol": AttrValue => &'a str, immutable;
        /// The app's port.
        port / PORT = "port": AttrValue => i32, immutable;
        /// The VPC.
        vpc_id / VPC_ID = "vpc_id": AttrValue => &'a str, immutable;
        /// `instance`.
        target_type / TARGET_TYPE = "target_type": AttrValue => &'a str, immutable;
        /// The app revision (the `plinth.dev/revision` tag).
        revision / REVISION = "revision": AttrValue => &'a str, immutable;
        /// The health check, a map of [`HC_PATH`], [`HC_INTERVAL`], [`HC_TIMEOUT`],
        /// [`HC_HEALTHY`], [`HC_UNHEALTHY`] and [`HC_MATCHER`].
        health_check / HEALTH_CHECK = "health_check": AttrValue => &'a AttrValue, updatable;
    }
}

/// The desired target groups of an Intent, one per revision it runs (pure).
pub fn desired_target_groups(intent: &Intent) -> Vec<DesiredResource> {
    let check = &intent.load_balancer.health_check;
    let health = AttrValue::Map(BTreeMap::from([
        (HC_PATH.to_owned(), AttrValue::str(check.path.clone())),
        (HC_INTERVAL.to_owned(), check.interval_seconds.into()),
        (HC_TIMEOUT.to_owned(), check.timeout_seconds.into()),
        (HC_HEALTHY.to_owned(), check.healthy_threshold.into()),
        (HC_UNHEALTHY.to_owned(), check.unhealthy_threshold.into()),
        (HC_MATCHER.to_owned(), HEALTHY_CODES.into()),
    ]));
    intent
        .serving
        .weights()
        .into_iter()
        .map(|(revision, _)| {
            let fields = TargetGroupFields {
                protocol: "HTTP".into(),
                port: intent.app.port.into(),
                vpc_id: AttrValue::reference(network::keys::VPC),
                target_type: "instance".into(),
                revision: revision.id.clone().into(),
                health_check: health.clone(),
            };
            fields.into_desired(TARGET_GROUP, keys::target_group(&revision.id))
        })
        .collect()
}

/// The health check as AWS describes it, in the shape of [`HEALTH_CHECK`].
fn health_of(group: &TargetGroup) -> AttrValue {
    let mut map = BTreeMap::new();
    if let Some(path) = group.health_check_path() {
        map.insert(HC_PATH.to_owned(), AttrValue::str(path));
    }
    let ints = [
        (HC_INTERVAL, group.health_check_interval_seconds()),
        (HC_TIMEOUT, group.health_check_timeout_seconds()),
        (HC_HEALTHY, group.healthy_threshold_count()),
        (HC_UNHEALTHY, group.unhealthy_threshold_count()),
    ];
    for (name, value) in ints {
        if let Some(value) = value {
            map.insert(name.to_owned(), value.into());
        }
    }
    if let Some(codes) = group.matcher().and_then(Matcher::http_code) {
        map.insert(HC_MATCHER.to_owned(), AttrValue::str(codes));
    }
    AttrValue::Map(map)
}

/// A health check setting of the desired map.
fn setting<'a>(health: Option<&'a AttrValue>, name: &str) -> Option<&'a AttrValue> {
    match health {
        Some(AttrValue::Map(map)) => map.get(name),
        _ => None,
    }
}

/// An integer health check setting, in the SDK's type.
fn int_setting(health: Option<&AttrValue>, name: &str) -> Option<i32> {
    setting(health, name)
        .and_then(AttrValue::as_int)
        .and_then(|v| i32::try_from(v).ok())
}

impl TargetGroups {
    async fn tagged(
        &self,
        scope: &Scope,
        reads: &Reads,
    ) -> Result<Vec<ObservedResource>, ActError> {
        // The tagging API is eventually consistent: a group created a moment ago may be
        // missing. That is safe because CreateTargetGroup is idempotent by name (the same name
        // and settings answer with the existing group), so a lagging read never makes a
        // duplicate; a group deleted a moment ago may still be listed, and is dropped below
        // when ELBv2 no longer knows it.
        let tagged = tagged(&self.aws, scope, reads, "elasticloadbalancing:targetgroup").await?;
        let ours: BTreeMap<String, (Key, Option<String>)> = tagged
            .into_iter()
            .filter_map(|(arn, tags)| {
                let key = key_of(&tags, scope)?;
                Some((arn, (key, tags.get(REVISION_TAG).cloned())))
            })
            .collect();
        if ours.is_empty() {
            return Ok(Vec::new());
        }
        let arns: Vec<String> = ours.keys().cloned().collect();
        Ok(self
            .describe(&arns)
            .await?
            .iter()
            .filter_map(|group| {
                let (key, revision) = ours.get(group.target_group_arn()?)?;
                observed_of(key.clone(), group, revision.as_deref())
            })
            .collect())
    }

    /// The target groups of `arns` in one call. A group the tagging API still lists but ELBv2
    /// no longer knows fails the whole call (`TargetGroupNotFound`): then each is read alone
    /// and the gone ones are left out (rare: only right after a delete).
    async fn describe(&self, arns: &[String]) -> Result<Vec<TargetGroup>, ActError> {
        match self.describe_page(arns).await {
            Ok(groups) => Ok(groups),
            Err(e) if e.code() == Some("TargetGroupNotFound") => {
                let mut groups = Vec::new();
                for arn in arns {
                    match self.describe_page(std::slice::from_ref(arn)).await {
                        Ok(found) => groups.extend(found),
                        Err(e) if e.code() == Some("TargetGroupNotFound") => {}
                        Err(e) => return Err(e.into_act()),
                    }
                }
                Ok(groups)
            }
            Err(e) => Err(e.into_act()),
        }
    }

    /// `DescribeTargetGroups` of `arns`, every page.
    async fn describe_page(&self, arns: &[String]) -> Result<Vec<TargetGroup>, DescribeError> {
        let mut groups = Vec::new();
        let mut marker = None;
        loop {
            let output = self
                .aws
                .elbv2()
                .await
                .describe_target_groups()
                .set_target_group_arns(Some(arns.to_vec()))
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| DescribeError {
                    code: error_code(&e).map(str::to_owned),
                    error: classify(&e),
                })?;
            groups.extend(output.target_groups().iter().cloned());
            marker = output.next_marker().map(str::to_owned);
            if marker.is_none() {
                break;
            }
        }
        Ok(groups)
    }

    /// The group of `key` by its deterministic name, when it exists and its tags say it is
    /// `scope`'s: what a create that lost its answer looks for (strongly consistent, unlike
    /// the tagging API the observe uses).
    async fn find_named(
        &self,
        key: &Key,
        scope: &Scope,
    ) -> Result<Option<ObservedResource>, ActError> {
        let name = scope.name_for(key, NAME_LEN);
        let groups = match self
            .aws
            .elbv2()
            .await
            .describe_target_groups()
            .names(&name)
            .send()
            .await
        {
            Ok(output) => output.target_groups().to_vec(),
            Err(e) if error_code(&e) == Some("TargetGroupNotFound") => return Ok(None),
            Err(e) => return Err(classify(&e)),
        };
        let Some(group) = groups.first() else {
            return Ok(None);
        };
        let Some(arn) = group.target_group_arn() else {
            return Ok(None);
        };
        let tags = tags_of(&self.aws, &[arn.to_owned()]).await?;
        let Some(tags) = tags.get(arn) else {
            return Ok(None);
        };
        Ok(key_of(tags, scope)
            .filter(|found| found == key)
            .and_then(|key| observed_of(key, group, tags.get(REVISION_TAG).map(String::as_str))))
    }
}

/// A failed describe with AWS's code kept, so "not found" can be told apart.
struct DescribeError {
    code: Option<String>,
    error: ActError,
}

impl DescribeError {
    fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    fn into_act(self) -> ActError {
        self.error
    }
}

/// A target group as AWS describes it, with its revision tag.
fn observed_of(key: Key, group: &TargetGroup, revision: Option<&str>) -> Option<ObservedResource> {
    let mut resource = ObservedResource::new(TARGET_GROUP, key, group.target_group_arn()?)
        .attr(HEALTH_CHECK, health_of(group));
    if let Some(protocol) = group.protocol() {
        resource = resource.attr(PROTOCOL, protocol.as_str());
    }
    if let Some(port) = group.port() {
        resource = resource.attr(PORT, port);
    }
    if let Some(vpc) = group.vpc_id() {
        resource = resource.attr(VPC_ID, vpc);
    }
    if let Some(kind) = group.target_type() {
        resource = resource.attr(TARGET_TYPE, kind.as_str());
    }
    if let Some(revision) = revision {
        resource = resource.attr(REVISION, revision);
    }
    Some(resource.lifecycle(Lifecycle::Available))
}

impl Component<Intent> for TargetGroups {
    fn desired(&self, intent: &Intent) -> Wanted {
        Ok(desired_target_groups(intent))
    }
}

#[async_trait]
impl Listing for TargetGroups {
    /// The platform's groups through the tagging API (old revisions' too, for cleanup); one
    /// component's by its deterministic name (strongly consistent: what a lost create looks
    /// for).
    async fn list(&self, select: Select<'_>, reads: &Reads) -> Listed {
        match select {
            Select::Platform(scope) => self.tagged(scope, reads).await,
            Select::Component(scope, key) => {
                Ok(self.find_named(key, scope).await?.into_iter().collect())
            }
        }
    }
}

#[async_trait]
impl Kit for TargetGroups {
    const KIND: Kind = TARGET_GROUP;
    const IAM_ACTIONS: &'static [&'static str] = IAM_ACTIONS;
    /// AWS answers a same-settings create of the name with the existing target group, and
    /// `DuplicateTargetGroupName` when the settings differ.
    const LOST_ANSWER: LostAnswer = LostAnswer::SendAgain;
    const DUPLICATE_CODES: &'static [&'static str] = &["DuplicateTargetGroupName"];

    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let fields = TargetGroupValues::read(request.attrs)?;
        let (vpc, revision) = (fields.vpc_id, fields.revision);
        let health = Some(fields.health_check);
        let name = request.name(NAME_LEN);
        let path = setting(health, HC_PATH).and_then(AttrValue::as_str);
        let matcher = setting(health, HC_MATCHER).and_then(AttrValue::as_str);
        let call = self.aws.elbv2().await.create_target_group();
        let output = crate::send_once!(
            aws_sdk_elasticloadbalancingv2,
            call.name(&name)
                .protocol(ProtocolEnum::from(fields.protocol))
                .port(fields.port)
                .vpc_id(vpc)
                .target_type(TargetTypeEnum::from(fields.target_type))
                .health_check_protocol(ProtocolEnum::Http)
                .set_health_check_path(path.map(str::to_owned))
                .set_health_check_interval_seconds(int_setting(health, HC_INTERVAL))
                .set_health_check_timeout_seconds(int_setting(health, HC_TIMEOUT))
                .set_healthy_threshold_count(int_setting(health, HC_HEALTHY))
                .set_unhealthy_threshold_count(int_setting(health, HC_UNHEALTHY))
                .set_matcher(matcher.map(|codes| Matcher::builder().http_code(codes).build()))
                .set_tags(Some(create_tags(request, &[(REVISION_TAG, revision)])))
        )?;
        let made = output.target_groups().first();
        let made = made.and_then(|g| observed_of(request.key.clone(), g, Some(revision)));
        Ok(made.ok_or_else(|| {
            ActError::retryable(
                "PlinthNotReturned",
                format!("CreateTargetGroup {name} answered without the group"),
            )
        })?)
    }

    async fn update_in_place(&self, request: UpdateRequest<'_>) -> Made {
        if let Some(other) = request.changed.iter().find(|f| *f != HEALTH_CHECK) {
            return Err(ActError::refused(
                "PlinthNotUpdatable",
                format!("{other} of a target group cannot change in place"),
            ));
        }
        let health = Some(TargetGroupValues::read(request.attrs)?.health_check);
        self.aws
            .elbv2()
            .await
            .modify_target_group()
            .target_group_arn(&request.current.id)
            .set_health_check_path(
                setting(health, HC_PATH)
                    .and_then(AttrValue::as_str)
                    .map(str::to_owned),
            )
            .set_health_check_interval_seconds(int_setting(health, HC_INTERVAL))
            .set_health_check_timeout_seconds(int_setting(health, HC_TIMEOUT))
            .set_healthy_threshold_count(int_setting(health, HC_HEALTHY))
            .set_unhealthy_threshold_count(int_setting(health, HC_UNHEALTHY))
            .set_matcher(
                setting(health, HC_MATCHER)
                    .and_then(AttrValue::as_str)
                    .map(|codes| Matcher::builder().http_code(codes).build()),
            )
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(updated(&request))
    }

    async fn send_delete(&self, current: &ObservedResource, _scope: &Scope) -> Deleted {
        let call = self.aws.elbv2().await.delete_target_group();
        match call.target_group_arn(&current.id).send().await {
            Ok(_) => Ok(Deletion::Gone),
            Err(e) => match error_code(&e) {
                Some("TargetGroupNotFound") => Ok(Deletion::Gone),
                // A listener still forwards to it (its change is in flight): retry.
                Some(code @ "ResourceInUse") => {
                    Err(ActError::retryable(code, classify(&e).to_string()))
                }
                _ => Err(classify(&e)),
            },
        }
    }
}
