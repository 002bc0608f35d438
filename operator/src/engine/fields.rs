//! Typed fields of a kind: [`fields!`](crate::fields) declares a kind's fields once, as a
//! struct of desired values that a component fills in (a field left out does not compile) and
//! a struct of resolved values that its driver reads (a field's name and type are checked by
//! the compiler, not looked up by string). Each struct has the one conversion to or from the
//! engine's [`Attrs`], which keep the generic diff.

use std::collections::BTreeSet;

use super::{ActError, AttrValue, Attrs};

/// A resolved value a driver reads out of the engine's attributes.
pub trait FromAttr<'a>: Sized {
    /// What the value is, for the error naming a field that is missing or of another type.
    const WHAT: &'static str;

    /// The value, or `None` when `value` is absent or of another type.
    fn from_attr(value: Option<&'a AttrValue>) -> Option<Self>;
}

impl<'a> FromAttr<'a> for &'a str {
    const WHAT: &'static str = "string";

    fn from_attr(value: Option<&'a AttrValue>) -> Option<Self> {
        value.and_then(AttrValue::as_str)
    }
}

impl FromAttr<'_> for bool {
    const WHAT: &'static str = "flag";

    fn from_attr(value: Option<&AttrValue>) -> Option<Self> {
        match value {
            Some(AttrValue::Bool(flag)) => Some(*flag),
            _ => None,
        }
    }
}

impl FromAttr<'_> for i64 {
    const WHAT: &'static str = "number";

    fn from_attr(value: Option<&AttrValue>) -> Option<Self> {
        value.and_then(AttrValue::as_int)
    }
}

impl FromAttr<'_> for i32 {
    const WHAT: &'static str = "32-bit number";

    fn from_attr(value: Option<&AttrValue>) -> Option<Self> {
        value
            .and_then(AttrValue::as_int)
            .and_then(|v| i32::try_from(v).ok())
    }
}

impl<'a> FromAttr<'a> for &'a AttrValue {
    const WHAT: &'static str = "value";

    fn from_attr(value: Option<&'a AttrValue>) -> Option<Self> {
        value
    }
}

/// A set of strings (subnet ids, ARNs); a list of strings reads as its members too.
impl<'a> FromAttr<'a> for BTreeSet<&'a str> {
    const WHAT: &'static str = "set of strings";

    fn from_attr(value: Option<&'a AttrValue>) -> Option<Self> {
        let items: Vec<&AttrValue> = match value? {
            AttrValue::Set(items) => items.iter().collect(),
            AttrValue::List(items) => items.iter().collect(),
            _ => return None,
        };
        items.into_iter().map(AttrValue::as_str).collect()
    }
}

/// A set of any values (rules, routes), as the engine compares it.
impl<'a> FromAttr<'a> for &'a BTreeSet<AttrValue> {
    const WHAT: &'static str = "set";

    fn from_attr(value: Option<&'a AttrValue>) -> Option<Self> {
        match value? {
            AttrValue::Set(items) => Some(items),
            _ => None,
        }
    }
}

/// An optional field: absent is `Some(None)`; present but of another type is an error.
impl<'a, T: FromAttr<'a>> FromAttr<'a> for Option<T> {
    const WHAT: &'static str = T::WHAT;

    fn from_attr(value: Option<&'a AttrValue>) -> Option<Self> {
        match value {
            None => Some(None),
            Some(present) => T::from_attr(Some(present)).map(Some),
        }
    }
}

/// A desired value a component sets: always ([`AttrValue`]) or only when there is one
/// (`Option<AttrValue>`: a field the kind takes only in some specs).
pub trait IntoField {
    /// The value, if the field is set.
    fn into_value(self) -> Option<AttrValue>;
}

impl IntoField for AttrValue {
    fn into_value(self) -> Option<AttrValue> {
        Some(self)
    }
}

impl IntoField for Option<AttrValue> {
    fn into_value(self) -> Option<AttrValue> {
        self
    }
}

/// A set of strings as the SDK takes a list of them.
pub fn owned(items: &BTreeSet<&str>) -> Vec<String> {
    items.iter().map(|&item| item.to_owned()).collect()
}

/// Reads one field for [`fields!`](crate::fields): a refusal naming it when it is missing or
/// of another type (a bug in the component's `desired`, since the engine hands every desired
/// field over).
pub fn read<'a, T: FromAttr<'a>>(attrs: &'a Attrs, name: &str) -> Result<T, ActError> {
    T::from_attr(attrs.get(name)).ok_or_else(|| {
        ActError::refused(
            "PlinthMissingField",
            format!("the desired resource has no {} field {name}", T::WHAT),
        )
    })
}

/// Declares a kind's fields once: each field's name (a constant, for the observed side), its
/// desired type and its resolved type.
///
/// ```ignore
/// fields! {
///     /// The subnet as a component wants it.
///     desired SubnetFields,
///     /// The subnet's fields as the driver reads them.
///     resolved SubnetValues {
///         /// The VPC.
///         vpc_id / VPC_ID = "vpc_id": AttrValue => &'a str, immutable;
///     }
/// }
/// ```
///
/// Each field gives a constant naming it (`VPC_ID`; `VPC_ID = _` for one the module declares
/// already), a field of `desired`, the values a
/// component sets (`AttrValue`, or `Option<AttrValue>` for a field some specs leave out), and
/// a field of `resolved`, what the driver reads with its references resolved (`&'a str`,
/// `bool`, `i64`, `i32`, `BTreeSet<&'a str>`, `&'a BTreeSet<AttrValue>`, `&'a AttrValue`, or
/// an `Option` of one). `desired` has `into_desired(kind, key)`: the resource whose fields
/// change in place (`updatable`), force a replacement (`immutable`, `immutable_unique`) or are
/// sent at create only (`create_only`). `resolved` has `read(attrs)`.
#[macro_export]
macro_rules! fields {
    // A field's name: a new constant, or (`_`) one the module declares already (a name two
    // kinds of the module share).
    (@name [$($doc:tt)*] $konst:ident _) => {};
    (@name [$($doc:tt)*] $konst:ident $name:literal) => {
        $($doc)*
        pub const $konst: &str = $name;
    };
    (
        $(#[$dmeta:meta])*
        desired $desired:ident,
        $(#[$rmeta:meta])*
        resolved $resolved:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident / $konst:ident = $name:tt: $dty:ty => $rty:ty, $change:ident;
            )*
        }
    ) => {
        $( $crate::fields!(@name [$(#[$fmeta])*] $konst $name); )*

        $(#[$dmeta])*
        #[derive(Clone, Debug)]
        pub struct $desired {
            $( $(#[$fmeta])* pub $field: $dty, )*
        }

        impl $desired {
            /// The desired resource of `kind` under `key` with these fields.
            pub fn into_desired(
                self,
                kind: $crate::engine::Kind,
                key: impl Into<$crate::engine::Key>,
            ) -> $crate::engine::DesiredResource {
                #[allow(unused_mut)]
                let mut resource = $crate::engine::DesiredResource::new(kind, key);
                $(
                    if let Some(value) = $crate::engine::fields::IntoField::into_value(self.$field) {
                        resource = resource.field($konst, $crate::engine::Field::$change(value));
                    }
                )*
                resource
            }
        }

        $(#[$rmeta])*
        #[derive(Clone, Debug)]
        pub struct $resolved<'a> {
            $( $(#[$fmeta])* pub $field: $rty, )*
            _attrs: std::marker::PhantomData<&'a ()>,
        }

        impl<'a> $resolved<'a> {
            /// The fields out of a request's resolved attributes.
            pub fn read(
                attrs: &'a $crate::engine::Attrs,
            ) -> Result<Self, $crate::engine::ActError> {
                Ok(Self {
                    $( $field: $crate::engine::fields::read(attrs, $konst)?, )*
                    _attrs: std::marker::PhantomData,
                })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Key, Kind, OnChange};

    crate::fields! {
        /// A toy kind's desired fields.
        desired ToyFields,
        /// A toy kind's resolved fields.
        resolved ToyValues {
            /// Its name.
            name / NAME = "name": AttrValue => &'a str, immutable;
            /// Its size.
            size / SIZE = "size": AttrValue => i32, updatable;
            /// Its zones.
            zones / ZONES = "zones": AttrValue => BTreeSet<&'a str>, updatable;
            /// A field some specs leave out.
            note / NOTE = "note": Option<AttrValue> => Option<&'a str>, create_only;
        }
    }

    fn attrs(resource: &crate::engine::DesiredResource) -> Attrs {
        let fields = resource.fields().iter();
        fields.map(|(k, f)| (k.clone(), f.value.clone())).collect()
    }

    #[test]
    fn desired_fields_read_back_with_their_change_marks() {
        let toy = ToyFields {
            name: "a".into(),
            size: 3.into(),
            zones: AttrValue::set(["z1", "z2"].map(AttrValue::str)),
            note: None,
        }
        .into_desired(Kind("toy"), Key::from("toy"));
        let fields = toy.fields();
        assert_eq!(fields[NAME].on_change, OnChange::Replace);
        assert_eq!(fields[SIZE].on_change, OnChange::Update);
        assert!(
            !fields.contains_key(NOTE),
            "an unset optional field is left out"
        );
        let attrs = attrs(&toy);
        let Ok(read) = ToyValues::read(&attrs) else {
            panic!("every field is there");
        };
        assert_eq!((read.name, read.size, read.note), ("a", 3, None));
        assert_eq!(read.zones, BTreeSet::from(["z1", "z2"]));
    }

    #[test]
    fn a_missing_or_mistyped_field_is_a_refusal_naming_it() {
        let mut attrs = Attrs::new();
        attrs.insert(NAME.into(), "a".into());
        attrs.insert(SIZE.into(), "three".into());
        attrs.insert(ZONES.into(), AttrValue::set([]));
        let Err(error) = ToyValues::read(&attrs) else {
            panic!("size is not a number");
        };
        assert!(error.to_string().contains("size"), "{error}");
        attrs.insert(SIZE.into(), 3.into());
        attrs.insert(NOTE.into(), 4.into());
        assert!(ToyValues::read(&attrs).is_err(), "a note must be a string");
    }
}
