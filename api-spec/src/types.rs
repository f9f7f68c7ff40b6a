//! The XenAPI type system (`Ty`), field qualifiers, literal defaults and wire values (`Value`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A XenAPI type, as the datamodel declares it. Declarations are `static`, so compound types borrow
/// their parts for `'static`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ty {
    String,
    /// A string that must never be logged (passwords).
    SecretString,
    /// Always 64-bit on the wire.
    Int,
    Float,
    Bool,
    DateTime,
    Enum(&'static EnumDecl),
    /// A reference to an object of the named class.
    Ref(&'static str),
    Set(&'static Ty),
    Map(&'static Ty, &'static Ty),
    /// The record of the named class; `"<class>"` stands for "the record of the class at hand"
    /// (the event snapshot).
    Record(&'static str),
    Option(&'static Ty),
}

/// A declared enumeration and its values, spelled as on the wire.
#[derive(Debug, PartialEq)]
pub struct EnumDecl {
    pub name: &'static str,
    pub values: &'static [&'static str],
}

impl EnumDecl {
    /// The canonical spelling of `value`, matched case-insensitively as xapi does.
    pub fn canonical(&self, value: &str) -> Option<&'static str> {
        self.values
            .iter()
            .copied()
            .find(|v| v.eq_ignore_ascii_case(value))
    }
}

/// Declares an enumeration once as a Rust enum and as its `EnumDecl`:
/// `pub enum VmPowerState in VM_POWER_STATE = "vm_power_state" { Halted = "Halted", … }` gives
/// the enum (with `wire`, `from_wire`, `ALL` in declaration order, and its wire string as a
/// `Value`) and the static `VM_POWER_STATE` whose values are the wire spellings in the same order.
#[macro_export]
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident in $decl:ident = $wire_name:literal {
            $($variant:ident = $wire:literal),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name {
            $($variant),*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The value as spelled on the wire and in the DB.
            pub const fn wire(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),*
                }
            }

            /// The value spelled exactly `wire`, as the DB holds it.
            pub fn from_wire(wire: &str) -> Option<$name> {
                match wire {
                    $($wire => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.wire())
            }
        }

        impl From<$name> for $crate::types::Value {
            fn from(value: $name) -> Self {
                $crate::types::Value::String(value.wire().to_owned())
            }
        }

        #[doc = concat!("The `", $wire_name, "` enumeration: the values of `", stringify!($name), "`.")]
        pub static $decl: $crate::types::EnumDecl = $crate::types::EnumDecl {
            name: $wire_name,
            values: &[$($wire),*],
        };
    };
}

/// Who may write a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    /// A constructor argument with generated setters.
    RW,
    /// A constructor argument without setters.
    StaticRO,
    /// Set by the toolstack only; defaulted at creation.
    DynamicRO,
}

/// A default value written as Rust data, turned into a `Value` by [`Lit::to_value`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Lit {
    Str(&'static str),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// In the wire format, e.g. `19700101T00:00:00Z`.
    DateTime(&'static str),
    Enum(&'static str),
    /// `OpaqueRef:NULL`.
    NullRef,
    Set(&'static [Lit]),
    Map(&'static [(Lit, Lit)]),
}

/// The null reference, as xapi spells it.
pub const NULL_REF: &str = "OpaqueRef:NULL";

/// The datetime xapi uses for "never".
pub const NEVER: &str = "19700101T00:00:00Z";

impl Lit {
    pub fn to_value(&self) -> Value {
        match *self {
            Lit::Str(s) | Lit::Enum(s) => Value::String(s.to_owned()),
            Lit::Int(i) => Value::Int(i),
            Lit::Float(f) => Value::Float(f),
            Lit::Bool(b) => Value::Bool(b),
            Lit::DateTime(d) => Value::DateTime(d.to_owned()),
            Lit::NullRef => Value::String(NULL_REF.to_owned()),
            Lit::Set(items) => Value::Array(items.iter().map(Lit::to_value).collect()),
            Lit::Map(pairs) => Value::Struct(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_value().to_key(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

/// A value as it travels on the wire and as the DB stores it.
///
/// Canonical forms (what `coerce` produces and the DB holds): ints are `Int`, datetimes are
/// `DateTime` in xapi's dash-less format, refs, uuids and enums are `String`, sets are `Array`,
/// maps and records are `Struct` with string keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    /// A 32-bit int: sent as `<i4>` in XML-RPC. Only `event.from`'s `valid_ref_counts` use it.
    Int32(i32),
    Float(f64),
    String(String),
    /// `YYYYMMDDTHH:MM:SSZ`.
    DateTime(String),
    Array(Vec<Value>),
    Struct(BTreeMap<String, Value>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::DateTime(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Int32(i) => Some(i64::from(*i)),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_struct(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Struct(m) => Some(m),
            _ => None,
        }
    }

    /// The text of a scalar used as a map key; maps are structs keyed by strings on the wire.
    pub fn to_key(&self) -> String {
        match self {
            Value::String(s) | Value::DateTime(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Int32(i) => i.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Nil | Value::Array(_) | Value::Struct(_) => String::new(),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

#[cfg(test)]
mod tests {
    use super::{EnumDecl, Value};
    use crate::classes::task::{TASK_ALLOWED_OPERATIONS, TaskOperation};
    use crate::classes::vbd::{VBD_OPERATIONS, VbdOperation};
    use crate::classes::vdi::{VDI_OPERATIONS, VdiOperation};
    use crate::classes::vif::{VIF_OPERATIONS, VifOperation};
    use crate::classes::vm::{VM_OPERATIONS, VM_POWER_STATE, VmOperation, VmPowerState};

    /// Whether `all`, spelled on the wire, are `decl`'s values in order, each reading back.
    fn matches_declaration<T: Copy + PartialEq + std::fmt::Debug>(
        all: &[T],
        wire: impl Fn(T) -> &'static str,
        from_wire: impl Fn(&str) -> Option<T>,
        decl: &EnumDecl,
    ) {
        let values: Vec<&str> = all.iter().map(|v| wire(*v)).collect();
        assert_eq!(values, decl.values, "{}", decl.name);
        for value in all {
            assert_eq!(from_wire(wire(*value)), Some(*value), "{}", decl.name);
        }
    }

    /// A `wire_enum!` declares its values in the `EnumDecl` in order, and each reads back from
    /// its wire spelling.
    #[test]
    fn wire_enum_values_match_their_declaration() {
        matches_declaration(
            VmPowerState::ALL,
            VmPowerState::wire,
            VmPowerState::from_wire,
            &VM_POWER_STATE,
        );
        matches_declaration(
            VmOperation::ALL,
            VmOperation::wire,
            VmOperation::from_wire,
            &VM_OPERATIONS,
        );
        matches_declaration(
            VbdOperation::ALL,
            VbdOperation::wire,
            VbdOperation::from_wire,
            &VBD_OPERATIONS,
        );
        matches_declaration(
            VifOperation::ALL,
            VifOperation::wire,
            VifOperation::from_wire,
            &VIF_OPERATIONS,
        );
        matches_declaration(
            VdiOperation::ALL,
            VdiOperation::wire,
            VdiOperation::from_wire,
            &VDI_OPERATIONS,
        );
        matches_declaration(
            TaskOperation::ALL,
            TaskOperation::wire,
            TaskOperation::from_wire,
            &TASK_ALLOWED_OPERATIONS,
        );
        assert_eq!(VmPowerState::from_wire("running"), None);
        assert_eq!(VmOperation::ChangingVcpus.to_string(), "changing_VCPUs");
        assert_eq!(Value::from(VmPowerState::Halted), Value::str("Halted"));
    }
}
