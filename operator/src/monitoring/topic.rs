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

use async_trait::async_trait;
use aws_sdk_sns::types::Tag;

use super::{ALARM_SUBSCRIPTION, ALARM_TOPIC, keys};
use crate::aws::kit::{not_updatable, required};
use crate::aws::tagging::{GET_RESOURCES, tagged};
use crate::aws::{AwsClients, classify, error_code};
use crate::engine::identity::stable_hash;
use crate::engine::{
    ActError, AttrValue, COMPONENT_TAG, Component, CreateRequest, Deletion, DesiredError,
    DesiredResource, Driver, Key, Kind, ObservedResource, PLATFORM_TAG, Reads, Scope,
    UpdateRequest,
};
use crate::intent::Intent;

/// Field (subscription): the topic.
pub const TOPIC_ARN: &str = "topic_arn";
/// Field (subscription): `email`.
pub const PROTOCOL: &str = "protocol";
/// Field (subscription): the e-mail address.
pub const ENDPOINT: &str = "endpoint";
/// Observed only (subscription): the address has not confirmed yet.
pub const PENDING_CONFIRMATION: &str = "pending_confirmation";

/// The topic tag naming Plinth's e-mail subscription by a hash of its address.
pub const SUBSCRIPTION_TAG: &str = "plinth.dev/alarm-subscription";

/// What SNS shows instead of an ARN for an unconfirmed subscription.
const PENDING_ARN: &str = "PendingConfirmation";

/// AWS's limit on a topic name.
const TOPIC_NAME_LEN: usize = 256;

/// The IAM actions of the topic driver.
const TOPIC_ACTIONS: &[&str] = &[
    GET_RESOURCES,
    "sns:CreateTopic",
    "sns:TagResource",
    "sns:DeleteTopic",
];

/// The IAM actions of the subscription driver.
const SUBSCRIPTION_ACTIONS: &[&str] = &[
    GET_RESOURCES,
    "sns:ListTopics",
    "sns:ListTagsForResource",
    "sns:ListSubscriptionsByTopic",
    "sns:TagResource",
    "sns:UntagResource",
    "sns:Subscribe",
    "sns:Unsubscribe",
];

/// The platform's topic, found by its platform tag and its deterministic name.
struct FoundTopic {
    arn: String,
    key: Key,
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
        Some(FoundTopic { arn, key })
    }))
}

/// The ARN of the topic named [`topic_name`], by paging through the region's topics
/// (`ListTopics` returns only ARNs): strongly consistent, but its cost grows with the number of
/// topics in the region, so only for when the tagging API shows no topic (before the first
/// create, after the teardown, or while the tagging API lags behind a fresh create).
async fn list_topic(aws: &AwsClients, scope: &Scope) -> Result<Option<String>, ActError> {
    let suffix = format!(":{}", topic_name(scope));
    let mut token = None;
    loop {
        let output = aws
            .sns()
            .await
            .list_topics()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        if let Some(arn) = output
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn())
            .find(|a| a.ends_with(&suffix))
        {
            return Ok(Some(arn.to_owned()));
        }
        token = output.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(None);
        }
    }
}

/// The topic's tags as SNS has them now (strongly consistent, unlike the tagging API); none
/// when the topic is gone.
async fn current_tags(
    aws: &AwsClients,
    arn: &str,
) -> Result<Option<std::collections::BTreeMap<String, String>>, ActError> {
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

/// The alarm topic component.
pub struct Topics {
    aws: AwsClients,
}

impl Topics {
    /// The component acting through `aws`.
    pub fn new(aws: AwsClients) -> Self {
        Self { aws }
    }
}

impl Component<Intent> for Topics {
    fn desired(&self, _intent: &Intent) -> Result<Vec<DesiredResource>, DesiredError> {
        Ok(vec![DesiredResource::new(ALARM_TOPIC, keys::ALARM_TOPIC)])
    }
}

#[async_trait]
impl Driver for Topics {
    fn kind(&self) -> Kind {
        ALARM_TOPIC
    }

    /// CreateTopic of an existing name answers with that topic.
    fn idempotent_create(&self) -> bool {
        true
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        TOPIC_ACTIONS
    }

    async fn observe(
        &self,
        scope: &Scope,
        reads: &Reads,
    ) -> Result<Vec<ObservedResource>, ActError> {
        Ok(find_topic(&self.aws, scope, reads)
            .await?
            .map(|t| ObservedResource::new(ALARM_TOPIC, t.key, t.arn))
            .into_iter()
            .collect())
    }

    async fn create(&self, request: CreateRequest<'_>) -> Result<ObservedResource, ActError> {
        let tags = request
            .tags()
            .iter()
            .map(|(k, v)| sns_tag(k, v))
            .collect::<Result<Vec<_>, _>>()?;
        // Idempotent by name (same tags): the SDK's retries cannot make a second topic.
        let output = self
            .aws
            .sns()
            .await
            .create_topic()
            .name(topic_name(request.scope))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let arn = output.topic_arn().ok_or_else(|| {
            ActError::retryable("PlinthNotReturned", "CreateTopic answered without an ARN")
        })?;
        Ok(ObservedResource::new(ALARM_TOPIC, request.key, arn))
    }

    async fn update(&self, request: UpdateRequest<'_>) -> Result<ObservedResource, ActError> {
        Err(not_updatable(&request))
    }

    async fn delete(
        &self,
        current: &ObservedResource,
        _scope: &Scope,
    ) -> Result<Deletion, ActError> {
        // DeleteTopic of a topic that is gone succeeds; NotFound is kept for emulators.
        crate::aws::deletion(
            self.aws
                .sns()
                .await
                .delete_topic()
                .topic_arn(&current.id)
                .send()
                .await,
            "NotFound",
            Deletion::Gone,
        )
    }
}

// --- Subscription -------------------------------------------------------------------------

/// The e-mail subscription component.
pub struct Subscriptions {
    aws: AwsClients,
}

impl Subscriptions {
    /// The component acting through `aws`.
    pub fn new(aws: AwsClients) -> Self {
        Self { aws }
    }
}

/// The desired subscription of an Intent: none without `spec.monitoring.alarmEmail` (pure).
pub fn desired_subscription(intent: &Intent) -> Option<DesiredResource> {
    let email = intent.monitoring.alarm_email.as_deref()?;
    Some(
        DesiredResource::new(ALARM_SUBSCRIPTION, keys::ALARM_SUBSCRIPTION)
            .immutable(TOPIC_ARN, AttrValue::reference(keys::ALARM_TOPIC))
            .immutable(PROTOCOL, "email")
            .immutable(ENDPOINT, email),
    )
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
    fn desired(&self, intent: &Intent) -> Result<Vec<DesiredResource>, DesiredError> {
        Ok(desired_subscription(intent).into_iter().collect())
    }
}

#[async_trait]
impl Driver for Subscriptions {
    fn kind(&self) -> Kind {
        ALARM_SUBSCRIPTION
    }

    /// Subscribing the same endpoint again answers with the existing subscription.
    fn idempotent_create(&self) -> bool {
        true
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        SUBSCRIPTION_ACTIONS
    }

    async fn observe(
        &self,
        scope: &Scope,
        reads: &Reads,
    ) -> Result<Vec<ObservedResource>, ActError> {
        // A topic the tagging API does not show yet is looked for by listing: missing it (or,
        // below, the subscription tag written a moment ago) would subscribe again, and each
        // `Subscribe` of a pending address mails it another confirmation. A steady platform's
        // topic is always shown, so the listing costs nothing then.
        let arn = match find_topic(&self.aws, scope, reads).await? {
            Some(topic) => Some(topic.arn),
            None => list_topic(&self.aws, scope).await?,
        };
        let Some(topic) = arn else {
            return Ok(Vec::new());
        };
        // The subscription tag from SNS itself (strongly consistent).
        let Some(tags) = current_tags(&self.aws, &topic).await? else {
            return Ok(Vec::new());
        };
        if tags.get(PLATFORM_TAG).map(String::as_str) != Some(scope.platform()) {
            return Ok(Vec::new());
        }
        let Some(tag) = tags.get(SUBSCRIPTION_TAG) else {
            return Ok(Vec::new());
        };
        let mut all = Vec::new();
        let mut token = None;
        loop {
            let output = self
                .aws
                .sns()
                .await
                .list_subscriptions_by_topic()
                .topic_arn(&topic)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| classify(&e))?;
            all.extend(output.subscriptions().iter().map(|s| {
                (
                    s.subscription_arn().unwrap_or_default().to_owned(),
                    s.protocol().unwrap_or_default().to_owned(),
                    s.endpoint().unwrap_or_default().to_owned(),
                )
            }));
            token = output.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let found = subscription_of(
            &topic,
            Some(tag),
            all.iter()
                .map(|(a, p, e)| (a.as_str(), p.as_str(), e.as_str())),
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
        Ok(found.into_iter().collect())
    }

    async fn create(&self, request: CreateRequest<'_>) -> Result<ObservedResource, ActError> {
        let topic = required(request.attrs, TOPIC_ARN)?;
        let protocol = required(request.attrs, PROTOCOL)?;
        let endpoint = required(request.attrs, ENDPOINT)?;
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
        subscription_of(
            topic,
            Some(&stable_hash(endpoint)),
            [(arn, protocol, endpoint)],
        )
        .ok_or_else(|| ActError::retryable("PlinthNotReturned", "Subscribe answered nothing"))
    }

    async fn update(&self, request: UpdateRequest<'_>) -> Result<ObservedResource, ActError> {
        Err(not_updatable(&request))
    }

    async fn delete(
        &self,
        current: &ObservedResource,
        _scope: &Scope,
    ) -> Result<Deletion, ActError> {
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
