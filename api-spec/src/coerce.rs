//! Turning a decoded wire value into the canonical value of a declared type.
//!
//! Clients are loose about types (untyped XML-RPC strings, ints where floats are due, `Z`-less
//! datetimes), so this is lenient where xapi's clients need it and strict where a wrong value
//! would be stored: an int field never holds "abc", an enum only its declared values.

use std::collections::BTreeMap;

use crate::types::{Ty, Value};

/// A value that does not fit its type. `field` names the record field at fault, when the value
/// was a record; otherwise the caller names the parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub field: Option<&'static str>,
}

const MISMATCH: Mismatch = Mismatch { field: None };

/// The canonical form of `value` as a `ty`, or why it is not one.
pub fn coerce(ty: &Ty, value: Value) -> Result<Value, Mismatch> {
    match (ty, value) {
        (Ty::Option(_), Value::Nil) => Ok(Value::Nil),
        (Ty::Option(inner), v) => coerce(inner, v),
        (Ty::String | Ty::SecretString | Ty::Ref(_), Value::String(s)) => Ok(Value::String(s)),
        (Ty::Int, Value::Int(i)) => Ok(Value::Int(i)),
        (Ty::Int, Value::Int32(i)) => Ok(Value::Int(i64::from(i))),
        (Ty::Int, Value::String(s)) => s.trim().parse().map(Value::Int).map_err(|_| MISMATCH),
        (Ty::Float, Value::Float(f)) => Ok(Value::Float(f)),
        (Ty::Float, Value::Int(i)) => Ok(Value::Float(i as f64)),
        (Ty::Float, Value::Int32(i)) => Ok(Value::Float(f64::from(i))),
        (Ty::Float, Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::Float)
            .ok_or(MISMATCH),
        (Ty::Bool, Value::Bool(b)) => Ok(Value::Bool(b)),
        (Ty::Bool, Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Value::Bool(true)),
            "false" | "0" => Ok(Value::Bool(false)),
            _ => Err(MISMATCH),
        },
        (Ty::DateTime, Value::DateTime(s) | Value::String(s)) => crate::datetime::normalise(&s)
            .map(Value::DateTime)
            .ok_or(MISMATCH),
        (Ty::Enum(decl), Value::String(s)) => decl
            .canonical(&s)
            .map(|c| Value::String(c.to_owned()))
            .ok_or(MISMATCH),
        (Ty::Set(item), Value::Array(items)) => items
            .into_iter()
            .map(|v| coerce(item, v))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        (Ty::Map(key, val), Value::Struct(pairs)) => {
            let mut out = BTreeMap::new();
            for (k, v) in pairs {
                let k = coerce(key, Value::String(k))?.to_key();
                out.insert(k, coerce(val, v)?);
            }
            Ok(Value::Struct(out))
        }
        (Ty::Record(class), Value::Struct(fields)) => coerce_record(class, fields),
        _ => Err(MISMATCH),
    }
}

/// Coerces the fields of a record that the class declares; fields it does not declare are
/// dropped, as xapi ignores them. Missing fields are left to the caller (constructors fill
/// defaults).
fn coerce_record(class: &str, fields: BTreeMap<String, Value>) -> Result<Value, Mismatch> {
    let Some(class) = crate::api().class(class) else {
        // "<class> record" (an event snapshot) has no fixed shape.
        return Ok(Value::Struct(fields));
    };
    let mut out = BTreeMap::new();
    for (name, value) in fields {
        let Some(field) = class.field(&name) else {
            continue;
        };
        let value = coerce(&field.ty, value).map_err(|m| Mismatch {
            field: m.field.or(Some(field.name)),
        })?;
        out.insert(name, value);
    }
    Ok(Value::Struct(out))
}

/// The value a field of this type starts at when nothing else is given.
pub fn zero(ty: &Ty) -> Value {
    match ty {
        Ty::String | Ty::SecretString => Value::String(String::new()),
        Ty::Int => Value::Int(0),
        Ty::Float => Value::Float(0.0),
        Ty::Bool => Value::Bool(false),
        Ty::DateTime => Value::DateTime(crate::NEVER.to_owned()),
        Ty::Enum(decl) => Value::String(decl.values.first().copied().unwrap_or("").to_owned()),
        Ty::Ref(_) => Value::String(crate::NULL_REF.to_owned()),
        Ty::Set(_) => Value::Array(Vec::new()),
        Ty::Map(..) | Ty::Record(_) => Value::Struct(BTreeMap::new()),
        Ty::Option(_) => Value::Nil,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::EnumDecl;

    static COLOUR: EnumDecl = EnumDecl {
        name: "colour",
        values: &["Red", "green"],
    };

    #[test]
    fn untyped_strings_become_ints_floats_and_bools() {
        assert_eq!(coerce(&Ty::Int, Value::str("42")), Ok(Value::Int(42)));
        assert_eq!(coerce(&Ty::Float, Value::Int(2)), Ok(Value::Float(2.0)));
        assert_eq!(coerce(&Ty::Bool, Value::str("TRUE")), Ok(Value::Bool(true)));
    }

    #[test]
    fn wrong_scalars_are_mismatches() {
        assert!(coerce(&Ty::Int, Value::str("abc")).is_err());
        assert!(coerce(&Ty::String, Value::Int(1)).is_err());
        assert!(coerce(&Ty::Float, Value::str("NaN")).is_err());
        assert!(coerce(&Ty::String, Value::Nil).is_err());
    }

    #[test]
    fn enums_match_any_case_and_come_out_canonical() {
        let ty = Ty::Enum(&COLOUR);
        assert_eq!(coerce(&ty, Value::str("red")), Ok(Value::str("Red")));
        assert!(coerce(&ty, Value::str("blue")).is_err());
    }

    #[test]
    fn map_keys_of_int_type_are_checked_and_kept_as_text() {
        static KEY: Ty = Ty::Int;
        static VAL: Ty = Ty::String;
        let ty = Ty::Map(&KEY, &VAL);
        let ok = Value::Struct([("7".to_owned(), Value::str("x"))].into());
        assert_eq!(coerce(&ty, ok.clone()), Ok(ok));
        let bad = Value::Struct([("seven".to_owned(), Value::str("x"))].into());
        assert!(coerce(&ty, bad).is_err());
    }

    #[test]
    fn datetimes_are_normalised() {
        assert_eq!(
            coerce(&Ty::DateTime, Value::str("2024-01-02T03:04:05Z")),
            Ok(Value::DateTime("20240102T03:04:05Z".to_owned()))
        );
    }
}
