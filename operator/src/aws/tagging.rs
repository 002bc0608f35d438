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
use crate::engine::{ActError, PLATFORM_TAG, Scope};

/// The IAM action [`tagged`] needs.
pub const GET_RESOURCES: &str = "tag:GetResources";

/// Every resource of `resource_type` (`elasticloadbalancing:targetgroup`, or a whole service:
/// `sns`) tagged for `scope`'s platform, as `(ARN, tags)`, paging through the answer.
pub async fn tagged(
    aws: &AwsClients,
    scope: &Scope,
    resource_type: &str,
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
            .resource_type_filters(resource_type)
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
