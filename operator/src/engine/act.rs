//! The seam between the engine and AWS: the [`Driver`] trait each AWS module implements for its
//! kind of resource (observe, create, update, delete), and the classified errors it returns.
//!
//! Trait objects rather than generics, so the controller and the CLI can hand the engine one
//! heterogeneous list of drivers; `async_trait` because `async fn` in a trait is not yet usable
//! through `dyn`.

use async_trait::async_trait;

use super::attr::{AttrValue, Attrs};
use super::identity::Scope;
use super::key::{Key, Kind};
use super::observed::ObservedResource;
use super::reads::Reads;

/// Why an AWS call did not do what was asked, classified by what the engine should do next.
/// AWS's code and message are kept as AWS sent them, for the `Stalled` condition and events.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActError {
    /// Worth retrying soon: throttling and 5xx the SDK's own retries did not absorb, a
    /// `DependencyViolation` while something else is still going away, an eventually
    /// consistent read that does not show a fresh resource yet.
    #[error("{code}: {message} (will retry)")]
    Retryable {
        /// AWS's error code (or a driver's own, for errors AWS did not name).
        code: String,
        /// AWS's message.
        message: String,
    },
    /// AWS rejected the request as specified (invalid parameter, quota, permissions): retrying
    /// the same spec cannot help, so the platform is `Stalled` until the spec or account changes.
    #[error("AWS refused: {code}: {message}")]
    Refused {
        /// AWS's error code.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// The resource is busy in a transition (for example `IncorrectState`): try again once it
    /// settles, without counting it as a failure.
    #[error("waiting for AWS: {reason}")]
    Pending {
        /// What is awaited.
        reason: String,
    },
}

impl ActError {
    /// A retryable error.
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Retryable {
            code: code.into(),
            message: message.into(),
        }
    }

    /// A refusal of the spec.
    pub fn refused(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Refused {
            code: code.into(),
            message: message.into(),
        }
    }

    /// A static label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Retryable { .. } => "retryable",
            Self::Refused { .. } => "refused",
            Self::Pending { .. } => "pending",
        }
    }
}

/// What a driver needs to create a component.
#[derive(Clone, Copy, Debug)]
pub struct CreateRequest<'a> {
    /// The component's key.
    pub key: &'a Key,
    /// Every desired field, references resolved to AWS ids (create-only fields included).
    pub attrs: &'a Attrs,
    /// The platform, for names ([`Scope::name_for`]) and tags ([`Scope::tags_for`]); the create
    /// call must carry the tags itself, so a create that is interrupted before anything is
    /// recorded is still found by the next observe.
    pub scope: &'a Scope,
    /// The idempotency token to pass where the API takes one (`ClientToken`).
    pub client_token: &'a str,
}

impl CreateRequest<'_> {
    /// The tags the create call must carry (the user's, plus Plinth's identity tags).
    pub fn tags(&self) -> std::collections::BTreeMap<String, String> {
        self.scope.tags_for(self.key)
    }

    /// The deterministic name for the resource, at most `max_len` characters.
    pub fn name(&self, max_len: usize) -> String {
        self.scope.name_for(self.key, max_len)
    }

    /// A desired field's value.
    pub fn attr(&self, field: &str) -> Option<&AttrValue> {
        self.attrs.get(field)
    }
}

/// What a driver needs to update a component in place.
#[derive(Clone, Copy, Debug)]
pub struct UpdateRequest<'a> {
    /// The resource as found.
    pub current: &'a ObservedResource,
    /// Every desired field, references resolved.
    pub attrs: &'a Attrs,
    /// The names of the fields that differ: only those are sent.
    pub changed: &'a [String],
    /// The platform.
    pub scope: &'a Scope,
}

impl UpdateRequest<'_> {
    /// The desired value of a changed field.
    pub fn new_value(&self, field: &str) -> Option<&AttrValue> {
        self.attrs.get(field)
    }
}

/// How a delete ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deletion {
    /// The resource is gone (or was already gone: "not found" on delete is success).
    Gone,
    /// AWS accepted the delete and is working on it (a NAT gateway goes through `deleting`);
    /// whatever depends on it being gone waits for a later pass.
    InProgress,
}

/// Observes and acts on one kind of AWS resource. Implemented by each AWS module, one per kind;
/// the engine calls it, never an AWS client directly.
#[async_trait]
pub trait Driver: Send + Sync {
    /// The kind this driver handles.
    fn kind(&self) -> Kind;

    /// Every resource of this kind tagged for `scope`'s platform, in as few calls as the API
    /// allows (one describe filtered by the platform tag, not one per resource). Resources AWS
    /// still lists but that are gone (`deleted`, `terminated`) are left out. An answer that
    /// serves other kinds too is read through `reads`, once for the whole observe.
    async fn observe(
        &self,
        scope: &Scope,
        reads: &Reads,
    ) -> Result<Vec<ObservedResource>, ActError>;

    /// Creates the component, tagged in the same call, and returns it as observed (its
    /// lifecycle may be [`Lifecycle::Pending`](super::observed::Lifecycle::Pending)). "Already
    /// exists" for the same client token or name is success: return the existing resource.
    ///
    /// The error says whether AWS may have made it, which the [journal](super::journal) relies
    /// on: [`ActError::Refused`] and [`ActError::Pending`] only when AWS answered the create
    /// and made nothing; [`ActError::Retryable`] when it may have (no answer, a 5xx, or a step
    /// after the create that failed).
    async fn create(&self, request: CreateRequest<'_>) -> Result<ObservedResource, ActError>;

    /// Changes only the listed fields of an existing resource and returns it as observed.
    async fn update(&self, request: UpdateRequest<'_>) -> Result<ObservedResource, ActError>;

    /// Deletes a resource Plinth created.
    async fn delete(&self, current: &ObservedResource, scope: &Scope)
    -> Result<Deletion, ActError>;

    /// Whether sending the same create twice makes one resource (a client token, or AWS
    /// answering a same-settings create by name with the existing resource). Such creates are
    /// never held back by the [journal](super::journal) while AWS does not list them yet.
    fn idempotent_create(&self) -> bool {
        false
    }

    /// Every IAM action this driver's calls need (`ec2:DescribeVpcs`, …): the one source of the
    /// operator's least-privilege policy (`plinth iam-policy`), checked against the calls the
    /// end-to-end suites record.
    fn iam_actions(&self) -> &'static [&'static str] {
        &[]
    }
}

/// Finds the driver for a kind. The component registry implements it; tests implement it with
/// an in-memory cloud.
pub trait Drivers: Sync {
    /// The driver for `kind`, if one is registered.
    fn driver(&self, kind: Kind) -> Option<&dyn Driver>;
}
