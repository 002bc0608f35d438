//! The alarm topic (SNS) and the spec's e-mail subscription to it.
//!
//! **Topic.** Its name is deterministic ([`Scope::name_for`]), and `CreateTopic` of an existing
//! name with the same tags returns that topic, so a retried create never makes a second one.
//! Observing asks the Resource Groups Tagging API for the SNS topics tagged for the platform:
//! one `GetResources` that returns the ARN with its tags, whatever the number of topics in the
//! region (`ListTopics` would page through all of them).
//!
//! **Subscription.** SNS subscriptions carry no tags, and an e-mail subscription stays
//! *pending confirmation* until someone clicks the link AWS mails: until then
//! `ListSubscriptionsByTopic` shows it with the ARN `PendingConfirmation`, it cannot be
//! unsubscribed (there is no ARN to name), and AWS deletes it by itself if it is never
//! confirmed. So:
//! - which e-mail subscription is Plinth's is remembered on the topic, as the tag
//!   [`SUBSCRIPTION_TAG`] holding a hash of the address (not the address). It is written before
//!   `Subscribe`, so a subscription is never made without it; other subscriptions on the topic
//!   (added by hand) are never touched;
//! - a pending subscription counts as existing (`Available`, with the observed-only field
//!   [`PENDING_CONFIRMATION`] = true): Plinth cannot confirm it and must not subscribe again
//!   every pass (each `Subscribe` mails a new confirmation);
//! - deleting a pending subscription (the address changed, or teardown) only drops the tag: the
//!   subscription itself waits for its confirmation in vain and AWS removes it; a confirmed one
//!   is unsubscribed. Deleting the topic removes every subscription with it.
//!
//! The moto emulator confirms e-mail subscriptions at once, so the end-to-end tests see the
//! confirmed path; the pending path is covered by the unit tests of [`subscription_of`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_sns::types::Tag;

use super::{ALARM_SUBSCRIPTION, ALARM_TOPIC, keys};
use crate::aws::kit::{Deleted, Kit, Listed, Listing, Select, Sent};
use crate::aws::tagging::tagged;
use crate::aws::{AwsClients, LostAnswer, classify, deletion, error_code};
use crate::driver;
use crate::engine::identity::stable_hash;
use crate::engine::{
    ActError, AttrValue, COMPONENT_TAG, Component, CreateRequest, Deletion, DesiredResource, Key,
    Kind, ObservedResource, PLATFORM_TAG, Reads, Scope, Wanted,
};
use crate::intent::Intent;

/// Observed only (subscription): the address has not confirmed yet.
pub const PENDING_CONFIRMATION: &str = "pending_confirmation";

crate::fields! {
    /// The e-mail subscription as monitoring wants it.
    desired SubscriptionFields,
    /// The subscription's fields as its driver reads them.
    resolved SubscriptionValues {
        /// The topic.
        topic_arn / TOPIC_ARN = "topic_arn": AttrValue => &'a str, immutable;
        /// The protocol: `email`.
        protocol / PROTOCOL = "protocol": AttrValue => &'a str, immutable;
        /// The e-mail address.
        endpoint / ENDPOINT = "endpoint": AttrValue => &'a str, immutable;
    }
}

/// The topic tag naming Plinth's e-mail subscription by a hash of its address.
pub const SUBSCRIPTION_TAG: &str = "plinth.dev/alarm-subscription";

/// What SNS shows instead of an ARN for an unconfirmed subscription.
const PENDING_ARN: &str = "PendingConfirmation";

/// AWS's limit on a topic name.
const TOPIC_NAME_LEN: usize = 256;

/// The IAM actions of the topic driver.
const TOPIC_ACTIONS: &[&str] = crate::actions![
    tag: GetResources;
    sns: CreateTopic, TagResource, DeleteTopic;
];

/// The IAM actions of the subscription driver.
const SUBSCRIPTION_ACTIONS: &[&str] = crate::actions![
    tag: GetResources;
    sns: ListTopics, ListTagsForResource, ListSubscriptionsByTopic, TagResource, UntagResource,
        Subscribe, Unsubscribe;
];

/// The platform's topic, found by its platform tag and its deterministic name.
struct FoundTopic {
    arn: String,
    key: Key,
    /// Its tags as the tagging API shows them (eventually consistent).
    tags: BTreeMap<String, String>,
}

/// The topic's deterministic name for `scope`.
pub fn topic_name(scope: &Scope) -> String {
    scope.name_for(&Key::from(keys::ALARM_TOPIC), TOPIC_NAME_LEN)
}

/// The platform's topic by its platform tag, keyed by its component tag.
///
/// The tagging API is eventually consistent: a topic created a moment ago may be missing. That
/// is safe because `CreateTopic` is idempotent by name (the same name and tags answer with the
/// existing topic), so a lagging read never makes a second topic. Only the topic's name and
/// identity tags are taken from it; the subscription tag, which Plinth changes, is read with
/// [`current_tags`].
async fn find_topic(
    aws: &AwsClients,
    scope: &Scope,
    reads: &Reads,
) -> Result<Option<FoundTopic>, ActError> {
    let name = topic_name(scope);
    let suffix = format!(":{name}");
    // SNS topic ARNs have no resource-type part, so the filter names the service; the name
    // picks the topic out.
    let found = tagged(aws, scope, reads, "sns").await?;
    Ok(found.into_iter().find_map(|(arn, tags)| {
        if !arn.ends_with(&suffix) {
            return None;
        }
        let key = tags.get(COMPONENT_TAG).map(|k| Key::from(k.as_str()))?;
        Some(FoundTopic { arn, key, tags })
    }))
}

/// The ARN of the topic named [`topic_name`], by paging through the region's topics
/// (`ListTopics` returns only ARNs): strongly consistent, but its cost grows with the number of
/// topics in the region, so only for when the tagging API shows no topic (before the first
/// create, after the teardown, or while the tagging API lags behind a fresh create).
async fn list_topic(aws: &AwsClients, scope: &Scope) -> Result<Option<String>, ActError> {
    let suffix = format!(":{}", topic_name(scope));
    let pages = aws
        .sns()
        .await
        .list_topics()
        .into_paginator()
        .items()
        .send();
    let topics: Vec<_> = pages.try_collect().await.map_err(|e| classify(&e))?;
    let arns = topics.into_iter().filter_map(|t| t.topic_arn);
    Ok(arns.into_iter().find(|arn| arn.ends_with(&suffix)))
}

/// The topic's tags as SNS has them now (strongly consistent, unlike the tagging API); none
/// when the topic is gone.
async fn current_tags(
    aws: &AwsClients,
    arn: &str,
) -> Result<Option<BTreeMap<String, String>>, ActError> {
    let output = match aws
        .sns()
        .await
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
    {
        Ok(output) => output,
        // Deleted since the tagging API listed it.
        Err(e) if matches!(error_code(&e), Some("NotFound" | "ResourceNotFound")) => {
            return Ok(None);
        }
        Err(e) => return Err(classify(&e)),
    };
    Ok(Some(
        output
            .tags()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect(),
    ))
}

fn sns_tag(key: &str, value: &str) -> Result<Tag, ActError> {
    Tag::builder()
        .key(key)
        .value(value)
        .build()
        .map_err(|e| ActError::refused("PlinthInvalidTag", e.to_string()))
}

// --- Topic --------------------------------------------------------------------------------

driver!(
    /// The alarm topic component.
    Topics
);

impl Component<Intent> for Topics {
    fn desired(&self, _intent: &Intent) -> Wanted {
        Ok(vec![DesiredResource::new(ALARM_TOPIC, keys::ALARM_TOPIC)])
    }
}

#[async_trait]
impl Listing for Topics {
    async fn list(&self, select: Select<'_>, reads: &Reads) -> Listed {
        let found = find_topic(&self.aws, select.scope(), reads).await?;
        let found = found.filter(|t| select.wants(&t.key));
        Ok(found
            .into_iter()
            .map(|t| ObservedResource::new(ALARM_TOPIC, t.key, t.arn))
            .collect())
    }
}

#[async_trait]
impl Kit for Topics {
    const KIND: Kind = ALARM_TOPIC;
    const IAM_ACTIONS: &'static [&'static str] = TOPIC_ACTIONS;
    /// CreateTopic of an existing name (and the same tags) answers with that topic.
    const LOST_ANSWER: LostAnswer = LostAnswer::Idempotent;

    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let tags = request
            .tags()
            .iter()
            .map(|(k, v)| sns_tag(k, v))
            .collect::<Result<_, _>>()?;
        let call = self
            .aws
            .sns()
            .await
            .create_topic()
            .name(topic_name(request.scope));
        let output = call.set_tags(Some(tags)).send().await?;
        let arn = output.topic_arn().ok_or_else(|| {
            ActError::retryable("PlinthNotReturned", "CreateTopic answered without an ARN")
        })?;
        Ok(ObservedResource::new(ALARM_TOPIC, request.key, arn))
    }

    async fn send_delete(&self, current: &ObservedResource, _: &Scope) -> Deleted {
        // DeleteTopic of a topic that is gone succeeds; NotFound is kept for emulators.
        let call = self.aws.sns().await.delete_topic().topic_arn(&current.id);
        deletion(call.send().await, "NotFound", Deletion::Gone)
    }
}

// --- Subscription -------------------------------------------------------------------------

driver!(
    /// The e-mail subscription component.
    Subscriptions
);

/// The desired subscription of an Intent: none without `spec.monitoring.alarmEmail` (pure).
pub fn desired_subscription(intent: &Intent) -> Option<DesiredResource> {
    let email = intent.monitoring.alarm_email.as_deref()?;
    let fields = SubscriptionFields {
        topic_arn: AttrValue::reference(keys::ALARM_TOPIC),
        protocol: "email".into(),
        endpoint: email.into(),
    };
    Some(fields.into_desired(ALARM_SUBSCRIPTION, keys::ALARM_SUBSCRIPTION))
}

/// The id Plinth gives a subscription SNS lists without an ARN (pending confirmation).
fn pending_id(topic: &str, endpoint: &str) -> String {
    format!("{topic}:{PENDING_ARN}:{}", stable_hash(endpoint))
}

/// Plinth's subscription among a topic's, as `(subscription ARN or "PendingConfirmation",
/// protocol, endpoint)`: the e-mail one whose address hashes to the topic's
/// [`SUBSCRIPTION_TAG`]. Pending confirmation counts as existing.
pub fn subscription_of<'a>(
    topic: &str,
    tag: Option<&str>,
    subscriptions: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
) -> Option<ObservedResource> {
    let tag = tag?;
    let (arn, _, endpoint) = subscriptions
        .into_iter()
        .find(|(_, protocol, endpoint)| *protocol == "email" && stable_hash(endpoint) == tag)?;
    let pending = arn == PENDING_ARN || arn.is_empty();
    let id = if pending {
        pending_id(topic, endpoint)
    } else {
        arn.to_owned()
    };
    Some(
        ObservedResource::new(ALARM_SUBSCRIPTION, keys::ALARM_SUBSCRIPTION, id)
            .attr(TOPIC_ARN, topic)
            .attr(PROTOCOL, "email")
            .attr(ENDPOINT, endpoint)
            .attr(PENDING_CONFIRMATION, pending),
    )
}

impl Component<Intent> for Subscriptions {
    fn desired(&self, intent: &Intent) -> Wanted {
        Ok(desired_subscription(intent).into_iter().collect())
    }
}

#[async_trait]
impl Listing for Subscriptions {
    async fn list(&self, select: Select<'_>, reads: &Reads) -> Listed {
        // The tagging API's view, shared with the topic: a subscription tag written a moment
        // ago may be missing from it, which only matters before a `Subscribe`, and
        // `send_create` reads SNS itself first. A topic it does not show yet is looked for by
        // listing, and its tags read from SNS.
        let scope = select.scope();
        let (topic, tags) = match find_topic(&self.aws, scope, reads).await? {
            Some(found) => (found.arn, found.tags),
            None => {
                let Some(arn) = list_topic(&self.aws, scope).await? else {
                    return Ok(Vec::new());
                };
                let Some(tags) = current_tags(&self.aws, &arn).await? else {
                    return Ok(Vec::new());
                };
                (arn, tags)
            }
        };
        if tags.get(PLATFORM_TAG).map(String::as_str) != Some(scope.platform()) {
            return Ok(Vec::new());
        }
        let Some(tag) = tags.get(SUBSCRIPTION_TAG) else {
            return Ok(Vec::new());
        };
        Ok(select.keep(self.subscription(&topic, tag).await?))
    }
}

impl Subscriptions {
    /// Plinth's subscription on `topic`, the one whose address hashes to `tag`.
    async fn subscription(
        &self,
        topic: &str,
        tag: &str,
    ) -> Result<Option<ObservedResource>, ActError> {
        let call = self.aws.sns().await.list_subscriptions_by_topic();
        let pages = call.topic_arn(topic).into_paginator().items().send();
        let all: Vec<_> = pages.try_collect().await.map_err(|e| classify(&e))?;
        let found = subscription_of(
            topic,
            Some(tag),
            all.iter().map(|s| {
                let arn = s.subscription_arn().unwrap_or_default();
                (
                    arn,
                    s.protocol().unwrap_or_default(),
                    s.endpoint().unwrap_or_default(),
                )
            }),
        );
        if found
            .as_ref()
            .is_some_and(|s| s.attrs.get(PENDING_CONFIRMATION) == Some(&AttrValue::Bool(true)))
        {
            tracing::debug!(
                topic = %topic,
                "the alarm e-mail has not confirmed its subscription yet"
            );
        }
        Ok(found)
    }
}

#[async_trait]
impl Kit for Subscriptions {
    const KIND: Kind = ALARM_SUBSCRIPTION;
    const IAM_ACTIONS: &'static [&'static str] = SUBSCRIPTION_ACTIONS;
    /// Subscribing the same endpoint again answers with the existing subscription.
    const LOST_ANSWER: LostAnswer = LostAnswer::Idempotent;

    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent {
        let fields = SubscriptionValues::read(request.attrs)?;
        let (topic, protocol, endpoint) = (fields.topic_arn, fields.protocol, fields.endpoint);
        // SNS's own view first (the observe's may lag behind a subscribe a moment ago): each
        // `Subscribe` of a pending address mails it another confirmation.
        let hash = stable_hash(endpoint);
        let tags = current_tags(&self.aws, topic).await?.unwrap_or_default();
        if tags.get(SUBSCRIPTION_TAG) == Some(&hash)
            && let Some(made) = self.subscription(topic, &hash).await?
        {
            return Ok(made);
        }
        // The tag first: whatever Subscribe makes is recognised as Plinth's from then on.
        self.aws
            .sns()
            .await
            .tag_resource()
            .resource_arn(topic)
            .tags(sns_tag(SUBSCRIPTION_TAG, &stable_hash(endpoint))?)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        // Subscribe is idempotent for the same topic, protocol and endpoint.
        let output = self
            .aws
            .sns()
            .await
            .subscribe()
            .topic_arn(topic)
            .protocol(protocol)
            .endpoint(endpoint)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let arn = output.subscription_arn().unwrap_or(PENDING_ARN);
        // Without ReturnSubscriptionArn, AWS answers "pending confirmation" for an e-mail.
        let arn = if arn.starts_with("arn:") {
            arn
        } else {
            PENDING_ARN
        };
        let made = subscription_of(
            topic,
            Some(&stable_hash(endpoint)),
            [(arn, protocol, endpoint)],
        )
        .ok_or_else(|| ActError::retryable("PlinthNotReturned", "Subscribe answered nothing"));
        Ok(made?)
    }

    async fn send_delete(&self, current: &ObservedResource, _: &Scope) -> Deleted {
        if current.id.starts_with("arn:") && !current.id.contains(PENDING_ARN) {
            match self
                .aws
                .sns()
                .await
                .unsubscribe()
                .subscription_arn(&current.id)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if matches!(error_code(&e), Some("NotFound")) => {}
                Err(e) => return Err(classify(&e)),
            }
        } else {
            tracing::info!(
                subscription = %current.id,
                "the alarm e-mail never confirmed its subscription: it cannot be unsubscribed, \
                 AWS removes it by itself; Plinth forgets it"
            );
        }
        let Some(topic) = current.attrs.get(TOPIC_ARN).and_then(AttrValue::as_str) else {
            return Ok(Deletion::Gone);
        };
        match self
            .aws
            .sns()
            .await
            .untag_resource()
            .resource_arn(topic)
            .tag_keys(SUBSCRIPTION_TAG)
            .send()
            .await
        {
            Ok(_) => Ok(Deletion::Gone),
            Err(e) if matches!(error_code(&e), Some("NotFound" | "ResourceNotFound")) => {
                Ok(Deletion::Gone)
            }
            Err(e) => Err(classify(&e)),
        }
    }
}
