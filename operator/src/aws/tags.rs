//! Plinth's tags on EC2: the `TagSpecifications` every create carries (identity tags, the
//! user's tags, a readable `Name`), the describe filter that finds a platform's resources, and
//! reading the component key back.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use crate::engine::{COMPONENT_TAG, CreateRequest, Key, PLATFORM_TAG, Scope};

/// The longest `Name` tag value we write (AWS allows 256).
const NAME_LEN: usize = 128;

/// The tags of a create: [`CreateRequest::tags`] plus a `Name` (unless the user set one), so
/// the console shows what each resource is.
pub fn create_tags(request: &CreateRequest<'_>) -> BTreeMap<String, String> {
    let mut tags = request.tags();
    tags.entry("Name".to_owned())
        .or_insert_with(|| request.name(NAME_LEN));
    tags
}

/// `TagSpecifications` for a create of `resource_type`.
pub fn tag_specification(
    resource_type: ResourceType,
    request: &CreateRequest<'_>,
) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource_type)
        .set_tags(Some(
            create_tags(request)
                .into_iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

/// The filter that selects the platform's resources in a describe call.
pub fn platform_filter(scope: &Scope) -> Filter {
    Filter::builder()
        .name(format!("tag:{PLATFORM_TAG}"))
        .values(scope.platform())
        .build()
}

/// The filter that selects one component's resources (with [`platform_filter`]).
pub fn component_filter(key: &Key) -> Filter {
    Filter::builder()
        .name(format!("tag:{COMPONENT_TAG}"))
        .values(key.as_str())
        .build()
}

/// A resource's tags as a map.
pub fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// The component key a resource's tags name, when it is one of `scope`'s (the describe filter
/// already asked for that; this double-checks so nothing untagged is ever touched).
pub fn component_key(tags: &[Tag], scope: &Scope) -> Option<Key> {
    let tags = tag_map(tags);
    if tags.get(PLATFORM_TAG).map(String::as_str) != Some(scope.platform()) {
        return None;
    }
    tags.get(COMPONENT_TAG).map(|k| Key::from(k.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_only_from_the_platforms_own_tags() {
        let scope = Scope::new("ns", "p", []);
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        let ours = [tag(PLATFORM_TAG, "ns/p"), tag(COMPONENT_TAG, "vpc")];
        assert_eq!(component_key(&ours, &scope), Some(Key::from("vpc")));
        let theirs = [tag(PLATFORM_TAG, "ns/other"), tag(COMPONENT_TAG, "vpc")];
        assert_eq!(component_key(&theirs, &scope), None);
        assert_eq!(component_key(&[tag("Name", "x")], &scope), None);
    }
}
