//! AWS errors, classified by what the engine should do next, with AWS's code and message kept
//! as AWS sent them; and creates that stay single when a response is lost.
//!
//! | AWS says | becomes |
//! |---|---|
//! | throttling (`RequestLimitExceeded`, `Throttling`, …), 5xx, no answer | `Retryable` |
//! | `DependencyViolation` (something still uses it) | `Retryable` |
//! | `IncorrectState`, `InvalidState…`, `Invalid…State…` (`InvalidDBClusterStateFault`) | `Pending` |
//! | `….NotFound` (eventual consistency right after a create) | `Retryable` |
//! | "Invalid IAM Instance Profile" (a profile IAM has not propagated yet) | `Pending` |
//! | invalid parameters, permissions, quotas, anything else 4xx | `Refused` (`Stalled`) |
//!
//! The SDK already retries throttling and 5xx ([`super::MAX_ATTEMPTS`]); what still fails is
//! retried by the next pass, never by a loop here. The one exception is [`create_or_find`]:
//! creates that take no client token run without the SDK's blind retry (a retried `CreateVpc`
//! whose first answer was lost makes a second VPC), and look for what they may have made
//! before trying again.

use std::future::Future;
use std::time::Duration;

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::engine::{ActError, Deletion};

/// Codes AWS uses for throttling, across services.
const THROTTLING: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
    "PriorRequestNotComplete",
    "BandwidthLimitExceeded",
    "EC2ThrottledException",
];

/// Codes AWS uses for its own failures.
const SERVER: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
    "InternalServerError",
];

/// Whether `code` is a throttling code.
pub fn is_throttling(code: &str) -> bool {
    THROTTLING.contains(&code)
}

/// Classifies an AWS error code (and the HTTP status when known).
pub fn classify_code(code: &str, status: Option<u16>, message: &str) -> ActError {
    if is_throttling(code) || SERVER.contains(&code) || status.is_some_and(|s| s >= 500) {
        return ActError::retryable(code, message);
    }
    if code == "DependencyViolation" {
        return ActError::retryable(code, message);
    }
    if code == "IncorrectState"
        || code == "IncorrectInstanceState"
        || code.starts_with("InvalidState")
        || (code.starts_with("Invalid") && code.contains("State") && !code.contains('.'))
    {
        return ActError::Pending {
            reason: format!("{code}: {message}"),
        };
    }
    // A role or instance profile made moments ago is not usable by EC2 and Auto Scaling until
    // IAM has propagated it (seconds): AWS answers a validation error naming it.
    if message.contains("Invalid IAM Instance Profile") {
        return ActError::Pending {
            reason: format!(
                "the instance profile is not usable yet (IAM propagates changes within seconds): {code}: {message}"
            ),
        };
    }
    if code.ends_with(".NotFound") || code.ends_with("NotFound") {
        return ActError::retryable(code, message);
    }
    ActError::refused(code, message)
}

/// AWS's error code, when AWS answered with one.
pub fn error_code<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> Option<&str> {
    match error {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

/// The outcome of a delete call: `on_success` when AWS accepted it (gone at once, or still
/// going), `Gone` when AWS says the resource does not exist (`not_found`, so a repeated or
/// raced delete is not a failure), AWS's error classified otherwise.
pub fn deletion<T, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
    not_found: &str,
    on_success: Deletion,
) -> Result<Deletion, ActError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(on_success),
        Err(e) if error_code(&e) == Some(not_found) => Ok(Deletion::Gone),
        Err(e) => Err(classify(&e)),
    }
}

/// Classifies any SDK error.
pub fn classify<E>(error: &SdkError<E, HttpResponse>) -> ActError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match error {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or("Unknown");
            let message = service
                .err()
                .message()
                .map(str::to_owned)
                .unwrap_or_else(|| service.err().to_string());
            classify_code(code, Some(status), &message)
        }
        SdkError::TimeoutError(_) => ActError::retryable("Timeout", "AWS did not answer in time"),
        SdkError::DispatchFailure(failure) => {
            ActError::retryable("DispatchFailure", format!("{failure:?}"))
        }
        SdkError::ResponseError(failure) => {
            ActError::retryable("ResponseError", format!("{failure:?}"))
        }
        SdkError::ConstructionFailure(failure) => {
            ActError::refused("ConstructionFailure", format!("{failure:?}"))
        }
        other => ActError::retryable("Unknown", other.to_string()),
    }
}

/// What an attempt of a create tells about whether it happened.
enum Attempt {
    /// It certainly did not happen (throttled before AWS acted): just try again.
    NotMade(ActError),
    /// It may have happened (5xx, no answer): look before trying again.
    Unknown(ActError),
    /// AWS answered that something with this identity exists already: find it.
    Duplicate(ActError),
    /// AWS refused it: stop.
    Failed(ActError),
}

/// A failed call with AWS's code kept beside its classification, whatever the service: what a
/// create hands [`create_or_find`], so creates of every service (and trait methods, which
/// cannot name each call's own error type) share it. `?` converts any SDK error into it.
#[derive(Debug)]
pub struct SendError {
    /// AWS's error code, when AWS answered with one.
    pub code: Option<String>,
    /// The error, classified.
    pub error: ActError,
}

impl<E> From<SdkError<E, HttpResponse>> for SendError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    fn from(error: SdkError<E, HttpResponse>) -> Self {
        Self {
            code: error_code(&error).map(str::to_owned),
            error: classify(&error),
        }
    }
}

impl From<ActError> for SendError {
    /// A failure of Plinth's own around the call (a missing field): AWS made nothing.
    fn from(error: ActError) -> Self {
        Self { code: None, error }
    }
}

fn attempt_of(error: SendError, duplicate_codes: &[&str]) -> Attempt {
    let classified = error.error;
    match error.code.as_deref() {
        Some(code) if is_throttling(code) => Attempt::NotMade(classified),
        Some(code) if duplicate_codes.contains(&code) => Attempt::Duplicate(classified),
        _ => match classified {
            ActError::Retryable { .. } => Attempt::Unknown(classified),
            other => Attempt::Failed(other),
        },
    }
}

/// Attempts of [`create_or_find`] before it hands the error to the next pass.
const CREATE_ATTEMPTS: u32 = 4;

/// The code of a create that may have been carried out: its answer was lost and AWS does not
/// list the resource yet.
pub const UNCONFIRMED: &str = "PlinthCreateUnconfirmed";

/// What a create may do after an answer that leaves it unknown whether AWS made the resource,
/// when `find` does not show it: AWS's reads are eventually consistent, so "not found" a moment
/// after a create proves nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LostAnswer {
    /// The create carries a client token, or AWS answers a same-settings create by name with
    /// the existing resource: sending it again cannot make a second one.
    SendAgain,
    /// Sending it again could make a second resource (or be refused as a duplicate of our own):
    /// the create ends [`ActError::Retryable`] with the code [`UNCONFIRMED`] (AWS may have made
    /// it), and the engine's journal holds the component until AWS lists what was made or the
    /// visibility window has passed.
    AwaitVisibility,
    /// The create call is idempotent as AWS defines it: a put that rewrites the resource of its
    /// name (PutMetricAlarm, PutScalingPolicy), or a create that answers a same-name call with
    /// the existing resource (CreateTopic, Subscribe). It is sent with the SDK's own retries,
    /// and nothing is looked for.
    Idempotent,
}

/// Runs a create so that a lost response never makes a duplicate: `create` must send the call
/// with the SDK's retries off; when an answer leaves it unknown whether the resource was made,
/// `find` (a describe by Plinth's tags or the resource's name) is asked first; when it finds
/// nothing, `lost` says whether the create is sent again. Throttled attempts, which AWS never
/// acted on, are sent again. An answer in `duplicate_codes` ("already exists") is success when
/// `find` finds it, and a refusal when it does not (something of that name that is not ours).
pub async fn create_or_find<T, C, CF, F, FF>(
    lost: LostAnswer,
    duplicate_codes: &[&str],
    create: C,
    find: F,
) -> Result<T, ActError>
where
    C: Fn() -> CF,
    CF: Future<Output = Result<T, SendError>>,
    F: Fn() -> FF,
    FF: Future<Output = Result<Option<T>, ActError>>,
{
    let mut last = ActError::retryable("Unknown", "no attempt was made");
    for attempt in 0..CREATE_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
        }
        let error = match create().await {
            Ok(made) => return Ok(made),
            Err(error) => error,
        };
        match attempt_of(error, duplicate_codes) {
            Attempt::NotMade(e) => last = e,
            Attempt::Unknown(e) => {
                tracing::warn!(error = %e, "a create's answer was lost: looking for what it made");
                if let Some(found) = find().await? {
                    return Ok(found);
                }
                if lost == LostAnswer::AwaitVisibility {
                    return Err(ActError::retryable(
                        UNCONFIRMED,
                        format!(
                            "a create got no answer ({e}) and AWS does not list what it may have \
                             made yet; it is not sent again before AWS shows it or the \
                             visibility window ends"
                        ),
                    ));
                }
                last = e;
            }
            Attempt::Duplicate(e) => {
                return match find().await? {
                    Some(found) => Ok(found),
                    // Something of this name exists but is not ours: never adopt it.
                    None => Err(match e {
                        ActError::Refused { .. } => e,
                        ActError::Retryable { code, message } => ActError::refused(code, message),
                        pending @ ActError::Pending { .. } => pending,
                    }),
                };
            }
            Attempt::Failed(e) => return Err(e),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn category(code: &str, status: u16) -> &'static str {
        classify_code(code, Some(status), "m").category()
    }

    #[test]
    fn an_instance_profile_not_propagated_yet_is_a_wait() {
        let message = "You must use a valid fully-formed launch template. Value (p) for parameter \
                       iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name";
        assert_eq!(
            classify_code("ValidationError", Some(400), message).category(),
            "pending"
        );
        assert_eq!(category("ValidationError", 400), "refused");
    }

    #[test]
    fn throttling_and_server_errors_are_retried() {
        assert_eq!(category("RequestLimitExceeded", 503), "retryable");
        assert_eq!(category("Throttling", 400), "retryable");
        assert_eq!(category("ThrottlingException", 400), "retryable");
        assert_eq!(category("InternalError", 500), "retryable");
        assert_eq!(category("ServiceUnavailable", 503), "retryable");
        assert_eq!(category("SomethingNew", 502), "retryable");
    }

    #[test]
    fn busy_resources_wait_and_refusals_stall() {
        assert_eq!(category("DependencyViolation", 400), "retryable");
        assert_eq!(category("IncorrectState", 400), "pending");
        assert_eq!(category("InvalidStateTransition", 400), "pending");
        assert_eq!(category("InvalidDBClusterStateFault", 400), "pending");
        assert_eq!(category("InvalidVpcID.NotFound", 400), "retryable");
        assert_eq!(category("InvalidParameterValue", 400), "refused");
        assert_eq!(category("UnauthorizedOperation", 403), "refused");
        assert_eq!(category("VpcLimitExceeded", 400), "refused");
        assert_eq!(category("AddressLimitExceeded", 400), "refused");
        assert_eq!(category("InvalidSubnet.Conflict", 400), "refused");
    }

    #[test]
    fn codes_and_messages_are_kept() {
        assert_eq!(
            classify_code("InvalidParameterValue", Some(400), "bad CIDR"),
            ActError::refused("InvalidParameterValue", "bad CIDR")
        );
        assert_eq!(
            classify_code("DependencyViolation", Some(400), "in use"),
            ActError::retryable("DependencyViolation", "in use")
        );
    }
}
