//! Attribute values: the comparable values a component manages, and how a change to each field
//! is carried out in AWS (update in place, or replace).
//!
//! Attributes are a small dynamic value type rather than one Rust type per resource kind so that
//! the engine can diff, resolve and print every kind the same way; each AWS module converts its
//! typed view into these fields in one place (its `desired` and `observe`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::key::Key;

/// A managed value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttrValue {
    /// A flag such as `enable_dns_hostnames`.
    Bool(bool),
    /// A number such as a port or a count.
    Int(i64),
    /// A string such as a CIDR block, an AZ, or an AWS id.
    Str(String),
    /// An ordered list: order is significant when compared.
    List(Vec<AttrValue>),
    /// An unordered collection (security-group rules, subnet ids): compared as a set, printed as
    /// what was added and removed.
    Set(BTreeSet<AttrValue>),
    /// A nested map of values (for example a health check's settings).
    Map(BTreeMap<String, AttrValue>),
    /// The id of another component, known only once that component exists. Only desired
    /// attributes hold references; the engine resolves them to [`AttrValue::Str`] ids before
    /// comparing with what was observed and before handing them to a driver. A reference also
    /// makes the referenced component a dependency.
    Ref(Key),
    /// An attribute of another component as its driver reports it (a database cluster's
    /// `endpoint`), for values that are not the component's id. Resolved like [`AttrValue::Ref`]
    /// (to the observed or just-created value) and a dependency the same way; unknown until the
    /// component exists and reports the attribute.
    Output(Key, String),
}

/// What references resolve against: a component's id (`field` is `None`) or one of its
/// attributes, or `None` when it is not known (yet).
pub(crate) type Lookup<'a> = dyn Fn(&Key, Option<&str>) -> Option<AttrValue> + 'a;

/// A [`Lookup`] over ids only (no attribute is ever known): for callers that have no
/// attributes at hand.
#[cfg(test)]
pub(crate) fn ids_only<'a>(id: &'a dyn Fn(&Key) -> Option<String>) -> Box<Lookup<'a>> {
    Box::new(move |key: &Key, field: Option<&str>| match field {
        None => id(key).map(AttrValue::Str),
        Some(_) => None,
    })
}

impl AttrValue {
    /// A set of values, compared without regard to order.
    pub fn set<I: IntoIterator<Item = AttrValue>>(items: I) -> Self {
        Self::Set(items.into_iter().collect())
    }

    /// A string value.
    pub fn str(value: impl Into<String>) -> Self {
        Self::Str(value.into())
    }

    /// A reference to another component's id.
    pub fn reference(key: impl Into<Key>) -> Self {
        Self::Ref(key.into())
    }

    /// A reference to another component's attribute `field` (as its driver observes it).
    pub fn output(key: impl Into<Key>, field: impl Into<String>) -> Self {
        Self::Output(key.into(), field.into())
    }

    /// The string inside, when this is a [`AttrValue::Str`]: what drivers read ids and names with.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The number inside, when this is an [`AttrValue::Int`].
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The flag inside, when this is an [`AttrValue::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Every key this value refers to, nested ones included.
    pub(crate) fn refs(&self, out: &mut BTreeSet<Key>) {
        match self {
            Self::Ref(key) | Self::Output(key, _) => {
                out.insert(key.clone());
            }
            Self::List(items) => items.iter().for_each(|v| v.refs(out)),
            Self::Set(items) => items.iter().for_each(|v| v.refs(out)),
            Self::Map(items) => items.values().for_each(|v| v.refs(out)),
            Self::Bool(_) | Self::Int(_) | Self::Str(_) => {}
        }
    }

    /// Every string inside this value, nested ones included: used to find which observed
    /// resources an observed resource points at by id.
    pub(crate) fn strings<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Self::Str(s) => out.push(s),
            Self::List(items) => items.iter().for_each(|v| v.strings(out)),
            Self::Set(items) => items.iter().for_each(|v| v.strings(out)),
            Self::Map(items) => items.values().for_each(|v| v.strings(out)),
            Self::Bool(_) | Self::Int(_) | Self::Ref(_) | Self::Output(..) => {}
        }
    }

    /// This value with every reference replaced by the id `lookup` gives, or `None` when some
    /// referenced id is not known yet (the component is about to be created or replaced). An
    /// attribute reference ([`AttrValue::Output`]) is never known this way: see
    /// [`AttrValue::resolve_with`].
    #[cfg(test)]
    pub(crate) fn resolve(&self, lookup: &dyn Fn(&Key) -> Option<String>) -> Option<AttrValue> {
        self.resolve_with(&*ids_only(lookup))
    }

    /// This value with every reference replaced by the id (or attribute) `lookup` gives, or
    /// `None` when some referenced value is not known yet (the component is about to be created
    /// or replaced, or has not reported the attribute).
    pub(crate) fn resolve_with(&self, lookup: &Lookup<'_>) -> Option<AttrValue> {
        Some(match self {
            Self::Ref(key) => lookup(key, None)?,
            Self::Output(key, field) => lookup(key, Some(field))?,
            Self::List(items) => Self::List(
                items
                    .iter()
                    .map(|v| v.resolve_with(lookup))
                    .collect::<Option<_>>()?,
            ),
            Self::Set(items) => Self::Set(
                items
                    .iter()
                    .map(|v| v.resolve_with(lookup))
                    .collect::<Option<_>>()?,
            ),
            Self::Map(items) => Self::Map(
                items
                    .iter()
                    .map(|(k, v)| v.resolve_with(lookup).map(|v| (k.clone(), v)))
                    .collect::<Option<_>>()?,
            ),
            Self::Bool(_) | Self::Int(_) | Self::Str(_) => self.clone(),
        })
    }
}

impl From<bool> for AttrValue {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl From<i64> for AttrValue {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<i32> for AttrValue {
    fn from(value: i32) -> Self {
        Self::Int(i64::from(value))
    }
}

impl From<u16> for AttrValue {
    fn from(value: u16) -> Self {
        Self::Int(i64::from(value))
    }
}

impl From<&str> for AttrValue {
    fn from(value: &str) -> Self {
        Self::Str(value.to_owned())
    }
}

impl From<String> for AttrValue {
    fn from(value: String) -> Self {
        Self::Str(value)
    }
}

impl fmt::Display for AttrValue {
    /// Plan-friendly rendering: strings quoted, sets in braces, references (ids known only after
    /// apply) as `<id of key>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Str(s) => write!(f, "{s:?}"),
            Self::Ref(key) => write!(f, "<id of {key}>"),
            Self::Output(key, field) => write!(f, "<{field} of {key}>"),
            Self::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Self::Set(items) => {
                f.write_str("{")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("}")
            }
            Self::Map(items) => {
                f.write_str("{")?;
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// How AWS lets a field change on an existing resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnChange {
    /// AWS can modify it in place: a difference becomes an update of only the fields that differ.
    Update,
    /// AWS cannot modify it: a difference replaces the resource (delete, then create).
    Replace,
    /// Sent at create time and never compared, for values AWS does not return on describe
    /// (client tokens, some user data). Drift in them cannot be seen, so it is not corrected.
    CreateOnly,
}

/// One desired field: its value, how a change to it is applied, and whether it must be unique
/// among live resources of its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The desired value (may hold references to other components).
    pub value: AttrValue,
    /// What a difference from the observed value costs.
    pub on_change: OnChange,
    /// AWS refuses two live resources of this kind with the same value (a subnet's CIDR in one
    /// VPC, a security group's name): a create with this value waits until a resource that is
    /// being deleted and holds the same value is gone.
    pub unique: bool,
}

impl Field {
    /// A field AWS updates in place.
    pub fn updatable(value: impl Into<AttrValue>) -> Self {
        Self {
            value: value.into(),
            on_change: OnChange::Update,
            unique: false,
        }
    }

    /// A field whose change forces a replacement.
    pub fn immutable(value: impl Into<AttrValue>) -> Self {
        Self {
            value: value.into(),
            on_change: OnChange::Replace,
            unique: false,
        }
    }

    /// A field whose change forces a replacement, unique among live resources of the kind
    /// ([`Field::unique`]).
    pub fn immutable_unique(value: impl Into<AttrValue>) -> Self {
        Self::immutable(value).unique()
    }

    /// A field sent at create time only and never compared.
    pub fn create_only(value: impl Into<AttrValue>) -> Self {
        Self {
            value: value.into(),
            on_change: OnChange::CreateOnly,
            unique: false,
        }
    }

    /// Marks the value as unique among live resources of the kind.
    #[must_use]
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }
}

/// Resolved attribute values by field name, as drivers receive them and observers report them.
pub type Attrs = BTreeMap<String, AttrValue>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_replaces_nested_references_or_reports_unknown() {
        let value = AttrValue::Map(BTreeMap::from([
            ("vpc".to_owned(), AttrValue::reference("vpc")),
            (
                "subnets".to_owned(),
                AttrValue::set([AttrValue::reference("a"), AttrValue::reference("b")]),
            ),
        ]));
        let all = |k: &Key| Some(format!("id-{k}"));
        let resolved = value.resolve(&all);
        let mut strings = Vec::new();
        if let Some(v) = &resolved {
            v.strings(&mut strings);
        }
        assert_eq!(strings, ["id-a", "id-b", "id-vpc"]);

        let partial = |k: &Key| (k.as_str() != "b").then(|| format!("id-{k}"));
        assert_eq!(value.resolve(&partial), None);

        let mut refs = BTreeSet::new();
        value.refs(&mut refs);
        assert_eq!(refs.len(), 3);
    }

    #[test]
    fn outputs_resolve_to_attributes_and_are_dependencies() {
        let value = AttrValue::List(vec![
            AttrValue::output("db", "endpoint"),
            AttrValue::reference("db"),
        ]);
        let lookup = |key: &Key, field: Option<&str>| match (key.as_str(), field) {
            ("db", None) => Some(AttrValue::str("cluster-1")),
            ("db", Some("endpoint")) => Some(AttrValue::str("db.example")),
            _ => None,
        };
        assert_eq!(
            value.resolve_with(&lookup),
            Some(AttrValue::List(vec![
                AttrValue::str("db.example"),
                AttrValue::str("cluster-1")
            ]))
        );
        // An attribute not reported (yet) leaves the value unresolved, as an unknown id does.
        let no_endpoint = |key: &Key, field: Option<&str>| match field {
            None => Some(AttrValue::str(key.as_str())),
            Some(_) => None,
        };
        assert_eq!(value.resolve_with(&no_endpoint), None);
        assert_eq!(value.resolve(&|k: &Key| Some(k.to_string())), None);
        let mut refs = BTreeSet::new();
        value.refs(&mut refs);
        assert_eq!(refs, BTreeSet::from([Key::from("db")]));
        assert_eq!(
            AttrValue::output("db", "endpoint").to_string(),
            "<endpoint of db>"
        );
    }

    #[test]
    fn sets_compare_without_order() {
        assert_eq!(
            AttrValue::set([1.into(), 2.into()]),
            AttrValue::set([2.into(), 1.into()])
        );
        assert_eq!(
            AttrValue::set(["b".into(), "a".into()]).to_string(),
            r#"{"a", "b"}"#
        );
    }
}
