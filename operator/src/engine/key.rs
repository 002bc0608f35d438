//! Names of things in the graph: a component's stable [`Key`] and the [`Kind`] that says which
//! driver acts on it.

use std::fmt;

/// A component's stable name inside one platform, such as `subnet/public/eu-west-1a`.
///
/// The key is what ties a desired component to the AWS resource that realises it: it is written
/// into the `plinth.dev/component` tag at create time and read back by the observers. It must
/// therefore never depend on anything AWS assigns (ids, ARNs), only on the spec.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

impl Key {
    /// The key as written in tags and printed in plans.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Key {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl From<String> for Key {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&Key> for Key {
    fn from(value: &Key) -> Self {
        value.clone()
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kind of resource a component is (`vpc`, `subnet`, `nat-gateway`, …).
///
/// One [`Driver`](super::act::Driver) acts on each kind; the engine routes every action, including
/// deletes of resources that are no longer desired, to the driver of the resource's kind. A
/// `&'static str` because kinds are fixed in code, one per AWS module's component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kind(pub &'static str);

impl Kind {
    /// The kind's name.
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
