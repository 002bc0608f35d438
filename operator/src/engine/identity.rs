//! Identity of what Plinth creates: the platform scope, the tags every create carries, and the
//! deterministic names and client tokens that keep a retried or interrupted create from making
//! a duplicate.

use std::collections::BTreeMap;

use super::attr::Attrs;
use super::key::Key;

/// The tag naming the platform (`<namespace>/<name>`) a resource belongs to.
pub const PLATFORM_TAG: &str = "plinth.dev/platform";
/// The tag naming the component key a resource stands for.
pub const COMPONENT_TAG: &str = "plinth.dev/component";

/// One platform: whose resources these are, and the user's tags for everything created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    platform: String,
    user_tags: BTreeMap<String, String>,
}

impl Scope {
    /// The scope of the platform `namespace/name`, with the user's extra tags.
    pub fn new(
        namespace: &str,
        name: &str,
        user_tags: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        Self {
            platform: format!("{namespace}/{name}"),
            user_tags: user_tags.into_iter().collect(),
        }
    }

    /// `<namespace>/<name>`: the value of [`PLATFORM_TAG`], which observers filter on.
    pub fn platform(&self) -> &str {
        &self.platform
    }

    /// The tags a create of `key` carries in the create call itself: the user's, then Plinth's
    /// two, which win over a user tag of the same name (the user cannot break identity).
    pub fn tags_for(&self, key: &Key) -> BTreeMap<String, String> {
        let mut tags = self.user_tags.clone();
        tags.insert(PLATFORM_TAG.to_owned(), self.platform.clone());
        tags.insert(COMPONENT_TAG.to_owned(), key.as_str().to_owned());
        tags
    }

    /// A name for `key` that is the same on every pass and unique per platform, made of
    /// lowercase letters, digits and hyphens, at most `max_len` characters (AWS limits vary:
    /// 32 for a load balancer, 255 for a security group). Readable prefix, then a hash of the
    /// full identity so truncation never makes two names collide.
    pub fn name_for(&self, key: &Key, max_len: usize) -> String {
        let full = format!("{}/{}", self.platform, key);
        let hash = format!("{:016x}", fnv1a(full.as_bytes()));
        let hash = &hash[..10];
        let readable: String = format!("plinth-{full}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let room = max_len.saturating_sub(hash.len() + 1);
        let prefix: String = readable.chars().take(room).collect();
        let prefix = prefix.trim_end_matches('-');
        if prefix.is_empty() {
            hash.chars().take(max_len).collect()
        } else {
            format!("{prefix}-{hash}")
        }
    }

    /// An idempotency token for creating `key` with these attributes (AWS's ClientToken): the
    /// same create retried, even by a restarted operator, carries the same token, so AWS returns
    /// the first result instead of making a second resource; a changed spec gets a new token.
    pub fn client_token(&self, key: &Key, attrs: &Attrs) -> String {
        let mut text = format!("{}\n{}\n", self.platform, key);
        for (name, value) in attrs {
            text.push_str(name);
            text.push('=');
            text.push_str(&value.to_string());
            text.push('\n');
        }
        format!("plinth-{:016x}", fnv1a(text.as_bytes()))
    }
}

/// A short identifier of `text` that is the same on every machine and in every release (names,
/// tokens, app revisions): 64-bit FNV-1a in hex. Not for security.
pub fn stable_hash(text: &str) -> String {
    format!("{:016x}", fnv1a(text.as_bytes()))
}

/// 64-bit FNV-1a: fixed forever (unlike std's hasher), so names and tokens are stable across
/// releases. Not for security, only for stable short identifiers.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::attr::AttrValue;

    #[test]
    fn tags_carry_identity_and_win_over_user_tags() {
        let scope = Scope::new(
            "team",
            "ingest",
            [
                ("cost-center".to_owned(), "42".to_owned()),
                (PLATFORM_TAG.to_owned(), "spoofed".to_owned()),
            ],
        );
        let tags = scope.tags_for(&"vpc".into());
        assert_eq!(tags[PLATFORM_TAG], "team/ingest");
        assert_eq!(tags[COMPONENT_TAG], "vpc");
        assert_eq!(tags["cost-center"], "42");
    }

    #[test]
    fn names_are_stable_bounded_and_distinct() {
        let scope = Scope::new("a-very-long-namespace-name", "platform", []);
        let a = scope.name_for(&"target-group/blue".into(), 32);
        let b = scope.name_for(&"target-group/green".into(), 32);
        assert!(a.len() <= 32 && b.len() <= 32, "{a} {b}");
        assert_ne!(a, b);
        assert_eq!(a, scope.name_for(&"target-group/blue".into(), 32));
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        assert!(!a.starts_with('-') && !a.ends_with('-'));
    }

    #[test]
    fn client_tokens_follow_the_desired_attributes() {
        let scope = Scope::new("ns", "p", []);
        let key: Key = "vpc".into();
        let one = Attrs::from([("cidr".to_owned(), AttrValue::from("10.0.0.0/16"))]);
        let two = Attrs::from([("cidr".to_owned(), AttrValue::from("10.1.0.0/16"))]);
        assert_eq!(
            scope.client_token(&key, &one),
            scope.client_token(&key, &one)
        );
        assert_ne!(
            scope.client_token(&key, &one),
            scope.client_token(&key, &two)
        );
        assert!(scope.client_token(&key, &one).len() <= 64);
    }
}
