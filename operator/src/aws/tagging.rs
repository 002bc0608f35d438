//! Finding a platform's resources of one type by its tag through the Resource Groups Tagging
//! API (`GetResources`): ARNs with their tags, in a number of calls that depends on the
//! platform's own resources only, never on how many other platforms share the region. For the
//! services whose describe calls have no tag filter (ELBv2 target groups, SNS topics).
//!
//! The tagging API is eventually consistent: a resource created a moment ago may be missing
//! from the answer, and one deleted a moment ago may still be in it. Use it only for kinds whose
//! create is idempotent by name (a missed resource is "created" again and AWS answers with the
//! existing one), and treat a listed ARN the service no longer knows as gone.

use std::collections::BTreeMap;

use aws_sdk_resourcegroupstagging::types::TagFilter;

use super::{AwsClients, classify};
use crate::engine::{ActError, PLATFORM_TAG, Reads, Scope};

/// The resource types read through the tagging API, in one `GetResources` per observe shared
/// by every kind that asks ([`tagged`]): target groups and the alarm topic today. A kind that
/// reads another type adds it here.
pub const TYPES: &[&str] = &["elasticloadbalancing:targetgroup", "sns"];

/// Every resource of `resource_type` (one of [`TYPES`]: `elasticloadbalancing:targetgroup`, or a
/// whole service: `sns`) tagged for `scope`'s platform, as `(ARN, tags)`. The platform's
/// resources of all [`TYPES`] are read once per observe (`reads`), paging through the answer.
pub async fn tagged(
    aws: &AwsClients,
    scope: &Scope,
    reads: &Reads,
    resource_type: &str,
) -> Result<Vec<(String, BTreeMap<String, String>)>, ActError> {
    if !TYPES.contains(&resource_type) {
        return Err(ActError::refused(
            "PlinthTaggingType",
            format!(
                "{resource_type} is not among the tagging API's shared types; add it to aws::tagging::TYPES"
            ),
        ));
    }
    let all = reads
        .get_or_read("tagging:GetResources", || read_all(aws, scope))
        .await?;
    Ok(all
        .iter()
        .filter(|(arn, _)| arn_is(arn, resource_type))
        .cloned()
        .collect())
}

/// Whether `arn` names a resource of `resource_type` (`service` or `service:type`).
fn arn_is(arn: &str, resource_type: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some(service), Some(_region), Some(_account)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let resource = parts.next().unwrap_or_default();
    match resource_type.split_once(':') {
        None => service == resource_type,
        Some((wanted_service, wanted_type)) => {
            service == wanted_service
                && resource
                    .strip_prefix(wanted_type)
                    .is_some_and(|rest| rest.starts_with('/') || rest.starts_with(':'))
        }
    }
}

/// The platform's resources of every type in [`TYPES`], as `(ARN, tags)`.
async fn read_all(
    aws: &AwsClients,
    scope: &Scope,
) -> Result<Vec<(String, BTreeMap<String, String>)>, ActError> {
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let output = aws
            .tagging()
            .await
            .get_resources()
            .tag_filters(
                TagFilter::builder()
                    .key(PLATFORM_TAG)
                    .values(scope.platform())
                    .build(),
            )
            .set_resource_type_filters(Some(TYPES.iter().map(|t| (*t).to_owned()).collect()))
            .set_pagination_token(token)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        for mapping in output.resource_tag_mapping_list() {
            let Some(arn) = mapping.resource_arn() else {
                continue;
            };
            let tags: BTreeMap<String, String> = mapping
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect();
            // The filter already asked for it; checked again so a lax endpoint cannot hand
            // another platform's resource over.
            if tags.get(PLATFORM_TAG).map(String::as_str) == Some(scope.platform()) {
                found.push((arn.to_owned(), tags));
            }
        }
        // The API ends with an empty token rather than none.
        token = output
            .pagination_token()
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::arn_is;

    #[test]
    fn arns_are_told_apart_by_service_and_type() {
        let tg = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/plinth-x/abc";
        let lb =
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/plinth-x/abc";
        let topic = "arn:aws:sns:eu-west-1:123456789012:plinth-alarms";
        assert!(arn_is(tg, "elasticloadbalancing:targetgroup"));
        assert!(!arn_is(lb, "elasticloadbalancing:targetgroup"));
        assert!(arn_is(topic, "sns"));
        assert!(!arn_is(tg, "sns"));
        assert!(!arn_is("not-an-arn", "sns"));
    }
}
