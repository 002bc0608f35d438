//! The driver kit: what every kind's driver shares, so that a kind is only its AWS-specific calls
//! and the mapping of AWS's answer to an [`ObservedResource`].
//!
//! - [`Kit`]: a kind, which the kit makes a [`Driver`]: the kit writes the observe, finds one
//!   component again after a create whose answer was lost ([`find`]) and refuses updates of
//!   kinds with nothing to change in place; the kind writes its calls and the mapping of
//!   AWS's answer.
//! - [`Listing`]: how a kind lists the platform's resources. An EC2 kind only maps one item
//!   ([`Ec2Listing`]): the kit builds the tag filters, pages through the describe
//!   ([`Ec2Item`]) and keeps only what the platform's own tags name.
//! - [`driver!`](crate::driver): a kind's struct, its `new` and its clients ([`Acts`]).
//! - [`updated`], [`not_updatable`]: the resource after an in-place update, and the refusal of
//!   a kind with nothing to change in place. A kind's fields are declared with
//!   [`fields!`](crate::fields) and read in one call ([`crate::engine::fields`]).
//! - [`send_once!`](crate::send_once) and [`no_retries!`](crate::no_retries): the SDK's
//!   retries off for a create that [`create_or_find`] retries itself.
//!
//! Rate limiting and call counting stay in [`AwsClients`](super::AwsClients): every call goes
//! through its accessors, the kit's included.

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, Tag};

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::AwsClients;
use super::errors::{LostAnswer, SendError, classify, create_or_find, error_code};
use super::tags::{component_filter, component_key, platform_filter};
use crate::engine::{
    ActError, AttrValue, CreateRequest, Deletion, Driver, Key, Kind, Lifecycle, ObservedResource,
    Reads, Scope, UpdateRequest,
};

/// What a listing answers ([`Listing::list`]).
pub type Listed = Result<Vec<ObservedResource>, ActError>;
/// What a create sent once answers ([`Kit::send_create`]): AWS's code kept for the kit.
pub type Sent = Result<ObservedResource, SendError>;
/// The resource as a create or an update left it.
pub type Made = Result<ObservedResource, ActError>;
/// One described item as observed, or `None` to leave it out ([`Ec2Listing::observed`]).
pub type Seen = Result<Option<ObservedResource>, ActError>;
/// How a delete ended ([`Kit::send_delete`]).
pub type Deleted = Result<Deletion, ActError>;

/// Which of the platform's resources a listing asks AWS for.
#[derive(Clone, Copy, Debug)]
pub enum Select<'a> {
    /// Every resource of the kind tagged for the platform (an observe).
    Platform(&'a Scope),
    /// The one tagged for a component of the platform (what a create that lost its answer
    /// looks for).
    Component(&'a Scope, &'a Key),
}

impl Select<'_> {
    /// The platform.
    pub fn scope(&self) -> &Scope {
        match self {
            Self::Platform(scope) | Self::Component(scope, _) => scope,
        }
    }

    /// The platform and the component key, when the selection asks for the component `key`:
    /// what a kind with one resource per platform, found by its deterministic name, lists.
    pub fn singleton(&self, key: &str) -> Option<(&Scope, Key)> {
        match self {
            Self::Component(_, wanted) if wanted.as_str() != key => None,
            _ => Some((self.scope(), Key::from(key))),
        }
    }

    /// Whether the selection takes the resource of component `key`.
    pub fn wants(&self, key: &Key) -> bool {
        match self {
            Self::Platform(_) => true,
            Self::Component(_, wanted) => *wanted == key,
        }
    }

    /// The resources of `found` the selection takes.
    pub fn keep(&self, found: impl IntoIterator<Item = ObservedResource>) -> Vec<ObservedResource> {
        found.into_iter().filter(|r| self.wants(&r.key)).collect()
    }

    /// The EC2 describe filters that select it.
    pub fn ec2_filters(&self) -> Vec<Filter> {
        match self {
            Self::Platform(scope) => vec![platform_filter(scope)],
            Self::Component(scope, key) => vec![platform_filter(scope), component_filter(key)],
        }
    }
}

/// One kind of resource as the kit drives it: its identity (kind, IAM actions, how a lost
/// create behaves), how the platform's resources of the kind are listed, and its create, update
/// and delete calls. Every `Kit` is a [`Driver`]: the kit writes the observe, the find after a
/// lost create and the not-updatable refusal. EC2 kinds list through [`Ec2Listing`]; kinds
/// found by their deterministic name write their [`Listing`].
#[async_trait]
pub trait Kit: Listing + Send + Sync {
    /// The kind.
    const KIND: Kind;
    /// Every IAM action its calls need.
    const IAM_ACTIONS: &'static [&'static str];
    /// What a create does when its answer is lost and AWS does not list what it made:
    /// [`LostAnswer::SendAgain`] for a create that carries a client token or that AWS answers
    /// by name with the existing resource (then the journal never holds it back),
    /// [`LostAnswer::Idempotent`] for a put, or a create AWS itself makes idempotent by name,
    /// [`LostAnswer::AwaitVisibility`] otherwise.
    const LOST_ANSWER: LostAnswer = LostAnswer::AwaitVisibility;
    /// The codes AWS answers a create of something that exists already with (then the
    /// platform's own is found again, and anything else is a refusal).
    const DUPLICATE_CODES: &'static [&'static str] = &[];
    /// Whether a resource of the component's key that AWS is deleting is left out when a create
    /// looks for what it made: for kinds whose delete takes long and whose name can be taken
    /// again meanwhile (an Aurora cluster or instance), that one is an older resource. Other
    /// kinds take it, and the engine waits for its delete before making it again.
    const SKIP_DELETING: bool = false;

    /// Sends the create once, tagged in the same call, with the SDK's retries off
    /// ([`no_retries!`](crate::no_retries)): the kit retries it, looking first.
    async fn send_create(&self, request: &CreateRequest<'_>) -> Sent;

    /// What the create call cannot carry, done after it (an attachment, DNS attributes, an
    /// inline policy), on the resource made or found.
    async fn after_create(&self, made: ObservedResource, _request: &CreateRequest<'_>) -> Made {
        Ok(made)
    }

    /// The whole create: [`send_create`](Self::send_create) through [`create_or_find`] with the
    /// kind's [`find`] (an idempotent call, [`LostAnswer::Idempotent`], is sent as it is), then
    /// [`after_create`](Self::after_create).
    async fn create_resource(&self, request: &CreateRequest<'_>) -> Made
    where
        Self: Sized,
    {
        if Self::LOST_ANSWER == LostAnswer::Idempotent {
            let made = self.send_create(request).await.map_err(|e| e.error)?;
            return self.after_create(made, request).await;
        }
        let made = create_or_find(
            Self::LOST_ANSWER,
            Self::DUPLICATE_CODES,
            || self.send_create(request),
            || find(self, request.scope, request.key),
        )
        .await?;
        self.after_create(made, request).await
    }

    /// Changes the listed fields in place. By default nothing changes in place.
    async fn update_in_place(&self, request: UpdateRequest<'_>) -> Made {
        Err(not_updatable(&request))
    }

    /// Sends the delete; AWS's "not found" is [`Deletion::Gone`] (see [`super::deletion`]).
    async fn send_delete(&self, current: &ObservedResource, scope: &Scope) -> Deleted;
}

#[async_trait]
impl<K: Kit> Driver for K {
    fn kind(&self) -> Kind {
        K::KIND
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        K::IAM_ACTIONS
    }

    fn idempotent_create(&self) -> bool {
        matches!(
            K::LOST_ANSWER,
            LostAnswer::SendAgain | LostAnswer::Idempotent
        )
    }

    async fn observe(
        &self,
        scope: &Scope,
        reads: &Reads,
    ) -> Result<Vec<ObservedResource>, ActError> {
        self.list(Select::Platform(scope), reads).await
    }

    async fn create(&self, request: CreateRequest<'_>) -> Result<ObservedResource, ActError> {
        self.create_resource(&request).await
    }

    async fn update(&self, request: UpdateRequest<'_>) -> Result<ObservedResource, ActError> {
        self.update_in_place(request).await
    }

    async fn delete(
        &self,
        current: &ObservedResource,
        scope: &Scope,
    ) -> Result<Deletion, ActError> {
        self.send_delete(current, scope).await
    }
}

/// The resource of `key`, read afresh: what a create that lost its answer made, or a
/// duplicate-name answer's resource. One being deleted counts only for a kind that does not
/// [`SKIP_DELETING`](Kit::SKIP_DELETING).
pub async fn find<K: Kit>(
    kind: &K,
    scope: &Scope,
    key: &Key,
) -> Result<Option<ObservedResource>, ActError> {
    let found = kind
        .list(Select::Component(scope, key), &Reads::new())
        .await?;
    let usable = |r: &ObservedResource| !(K::SKIP_DELETING && r.lifecycle == Lifecycle::Deleting);
    Ok(found.into_iter().find(|r| &r.key == key && usable(r)))
}

/// How a kind lists the platform's resources: the one piece of a [`Kit`] every EC2 kind gets
/// from [`Ec2Listing`] and every other kind writes (found by its deterministic name, or read
/// from what [`Reads`] shares).
#[async_trait]
pub trait Listing: Send + Sync {
    /// The resources `select` asks for, each under the component key its tags (or name)
    /// give it. `reads` shares answers with other kinds within one observe.
    async fn list(&self, select: Select<'_>, reads: &Reads) -> Listed;
}

/// What a driver acts through: the region's rate-limited, counted clients.
pub trait Acts {
    /// The clients.
    fn aws(&self) -> &AwsClients;
}

/// An EC2 type the kit can describe: its describe call, every page, and its tags.
#[async_trait]
pub trait Ec2Item: Sized + Send + Sync {
    /// Every item that matches `filters`.
    async fn describe(aws: &AwsClients, filters: Vec<Filter>) -> Result<Vec<Self>, ActError>;

    /// The item's tags.
    fn item_tags(&self) -> &[Tag];
}

/// The [`Ec2Item`] of each EC2 type described through a paginator (its describe call and the
/// name of the call's filter setter, which DescribeNatGateways spells `set_filter`).
macro_rules! paged_ec2_items {
    ($($item:ident: $call:ident, $filters:ident;)*) => {$(
        #[async_trait]
        impl Ec2Item for aws_sdk_ec2::types::$item {
            async fn describe(
                aws: &AwsClients,
                filters: Vec<Filter>,
            ) -> Result<Vec<Self>, ActError> {
                let call = aws.ec2().await.$call().$filters(Some(filters));
                let pages = call.into_paginator().items().send();
                pages.try_collect().await.map_err(|e| classify(&e))
            }

            fn item_tags(&self) -> &[Tag] {
                self.tags()
            }
        }
    )*};
}

paged_ec2_items! {
    Vpc: describe_vpcs, set_filters;
    Subnet: describe_subnets, set_filters;
    InternetGateway: describe_internet_gateways, set_filters;
    NatGateway: describe_nat_gateways, set_filter;
    RouteTable: describe_route_tables, set_filters;
    SecurityGroup: describe_security_groups, set_filters;
    LaunchTemplate: describe_launch_templates, set_filters;
}

#[async_trait]
impl Ec2Item for aws_sdk_ec2::types::Address {
    /// DescribeAddresses has no pages: one answer holds every match.
    async fn describe(aws: &AwsClients, filters: Vec<Filter>) -> Result<Vec<Self>, ActError> {
        let call = aws.ec2().await.describe_addresses();
        let output = call.set_filters(Some(filters)).send().await;
        Ok(output.map_err(|e| classify(&e))?.addresses().to_vec())
    }

    fn item_tags(&self) -> &[Tag] {
        self.tags()
    }
}

/// An EC2 kind: what its describe answers ([`Ec2Item`]) and how one item maps to what the
/// engine observes. The kit filters the describe by Plinth's tags, pages through it and keeps
/// only what the platform's own tags name: the kind's [`Listing`].
#[async_trait]
pub trait Ec2Listing: Acts + Send + Sync {
    /// What the describe call returns a list of (`Vpc`, `Subnet`, …).
    type Item: Ec2Item;

    /// The item as observed under `key`: `None` leaves it out (AWS still lists it but it is
    /// gone: a `deleted` NAT gateway).
    async fn observed(&self, item: &Self::Item, key: Key) -> Seen;
}

/// An item whose tags are not the platform's is left out even if the filter let it through,
/// so nothing untagged is ever touched.
#[async_trait]
impl<K: Ec2Listing> Listing for K {
    async fn list(&self, select: Select<'_>, _reads: &Reads) -> Listed {
        let mut found = Vec::new();
        for item in K::Item::describe(self.aws(), select.ec2_filters()).await? {
            let Some(key) = component_key(item.item_tags(), select.scope()) else {
                continue;
            };
            if select.wants(&key) {
                found.extend(self.observed(&item, key).await?);
            }
        }
        Ok(found)
    }
}

/// A call's outcome where the AWS error codes in `done` mean the call's purpose holds already
/// (attached by an earlier attempt, already detached): success; anything else classified.
pub fn ignore<T, E>(
    result: Result<T, aws_sdk_ec2::error::SdkError<E, HttpResponse>>,
    done: &[&str],
) -> Result<(), ActError>
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(e) if error_code(&e).is_some_and(|code| done.contains(&code)) => Ok(()),
        Err(e) => Err(classify(&e)),
    }
}

/// A set field's members (none when the field is absent or not a set).
pub fn set_of(value: Option<&AttrValue>) -> std::collections::BTreeSet<AttrValue> {
    match value {
        Some(AttrValue::Set(items)) => items.clone(),
        _ => std::collections::BTreeSet::new(),
    }
}

/// The resource as it is after an in-place update of the changed fields.
pub fn updated(request: &UpdateRequest<'_>) -> ObservedResource {
    let mut resource = request.current.clone();
    for field in request.changed {
        if let Some(value) = request.new_value(field) {
            resource.attrs.insert(field.clone(), value.clone());
        }
    }
    resource
}

/// The refusal of an update to a kind whose fields never change in place (the engine replaces
/// such resources instead, so this is only reached by a component marking a field updatable by
/// mistake).
pub fn not_updatable(request: &UpdateRequest<'_>) -> ActError {
    ActError::refused(
        "PlinthNotUpdatable",
        format!(
            "{} has no fields that change in place (asked to change {})",
            request.current.key,
            request.changed.join(", ")
        ),
    )
}

/// A config override that turns the SDK's retries off for one call of the service crate named
/// (`no_retries!(aws_sdk_ec2)`): for creates that [`create_or_find`] retries itself, looking
/// before it sends again.
#[macro_export]
macro_rules! no_retries {
    ($sdk:ident) => {
        $sdk::config::Builder::default().retry_config(aws_config::retry::RetryConfig::disabled())
    };
}

/// Sends a create call once, with the SDK's retries off ([`no_retries!`](crate::no_retries)),
/// for a [`Kit::send_create`]: `send_once!(aws_sdk_ec2, call)`.
#[macro_export]
macro_rules! send_once {
    ($sdk:ident, $call:expr) => {
        $call
            .customize()
            .config_override($crate::no_retries!($sdk))
            .send()
            .await
    };
}

/// Declares a kind's driver: a struct that acts through the region's clients, its `new` and
/// its [`Acts`](crate::aws::kit::Acts).
#[macro_export]
macro_rules! driver {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name {
            aws: $crate::aws::AwsClients,
        }

        impl $name {
            /// The driver acting through `aws`.
            pub fn new(aws: $crate::aws::AwsClients) -> Self {
                Self { aws }
            }
        }

        impl $crate::aws::kit::Acts for $name {
            fn aws(&self) -> &$crate::aws::AwsClients {
                &self.aws
            }
        }
    };
}

/// IAM actions by service, in the order given: `actions![ec2: DescribeVpcs, CreateVpc; iam:
/// PassRole]` is `&["ec2:DescribeVpcs", "ec2:CreateVpc", "iam:PassRole"]`.
#[macro_export]
macro_rules! actions {
    ($($service:ident: $($action:ident),+);+ $(;)?) => {
        &[$($(concat!(stringify!($service), ":", stringify!($action))),+),+]
    };
}
