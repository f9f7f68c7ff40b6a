//! Field values as xe prints them: references as the uuid of the object (`<not in database>`
//! for none), enums in lower case, sets as `a; b`, maps as `k1: v1; k2: v2`; and the same
//! values as JSON for `--json`.

use std::collections::{BTreeMap, HashMap};

use api_spec::{NULL_REF, Ty, Value, api};

use crate::client::Session;
use crate::error::XeError;
use crate::views::CliField;

/// What xapi's xe prints for a reference to nothing (or to an object it cannot see).
pub const NOT_IN_DATABASE: &str = "<not in database>";

/// The records of the classes that references point into, fetched once per class.
#[derive(Debug, Default)]
pub struct Lookup {
    records: HashMap<&'static str, BTreeMap<String, Value>>,
}

impl Lookup {
    /// Remembers records already fetched.
    pub fn insert(&mut self, class: &'static str, records: BTreeMap<String, Value>) {
        self.records.insert(class, records);
    }

    /// Fetches the records of `class`, unless they are known already.
    pub async fn load(&mut self, session: &Session, class: &'static str) -> Result<(), XeError> {
        if self.records.contains_key(class) {
            return Ok(());
        }
        let records = all_records(session, class).await?;
        self.records.insert(class, records);
        Ok(())
    }

    /// Fetches every class that a non-null reference of `fields` in `records` points into.
    pub async fn prepare<'a>(
        &mut self,
        session: &Session,
        fields: &[&CliField],
        records: impl Iterator<Item = &'a Value>,
    ) -> Result<(), XeError> {
        let mut wanted = Vec::new();
        for record in records {
            for field in fields {
                let value = record.as_struct().and_then(|r| r.get(field.field.name));
                if let Some(value) = value {
                    collect_ref_classes(&field.field.ty, value, &mut wanted);
                }
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        for class in wanted {
            self.load(session, class).await?;
        }
        Ok(())
    }

    /// A record of `class` by ref, if fetched.
    pub fn record(&self, class: &str, r: &str) -> Option<&Value> {
        self.records.get(class)?.get(r)
    }

    fn field_of(&self, class: &str, r: &str, field: &str) -> Option<&str> {
        self.record(class, r)?.as_struct()?.get(field)?.as_str()
    }
}

/// `Class.get_all_records` as a map from ref to record.
pub async fn all_records(
    session: &Session,
    class: &str,
) -> Result<BTreeMap<String, Value>, XeError> {
    let method = format!("{class}.get_all_records");
    match session.call(&method, Vec::new()).await? {
        Value::Struct(records) => Ok(records),
        other => Err(XeError::UnexpectedReply {
            what: format!("{other:?}"),
            expected: "a map of records",
        }),
    }
}

/// The classes (with rows xe can list) that non-null references in `value` point into.
fn collect_ref_classes(ty: &Ty, value: &Value, out: &mut Vec<&'static str>) {
    match (ty, value) {
        (Ty::Ref(class), Value::String(r)) if r != NULL_REF && !r.is_empty() => {
            if let Some(class) = api().class(class)
                && api()
                    .method(&format!("{}.get_all_records", class.name))
                    .is_some()
            {
                out.push(class.name);
            }
        }
        (Ty::Set(item) | Ty::Option(item), Value::Array(items)) => {
            for v in items {
                collect_ref_classes(item, v, out);
            }
        }
        (Ty::Map(key, item), Value::Struct(members)) => {
            for (k, v) in members {
                collect_ref_classes(key, &Value::String(k.clone()), out);
                collect_ref_classes(item, v, out);
            }
        }
        (Ty::Option(inner), v) => collect_ref_classes(inner, v, out),
        _ => {}
    }
}

/// A field of a record as xe prints it.
pub fn display(field: &CliField, record: &Value, lookup: &Lookup) -> String {
    let value = record.as_struct().and_then(|r| r.get(field.field.name));
    match (field.shows_name, field.field.ty, value) {
        (_, _, None) => String::new(),
        (true, Ty::Ref(class), Some(Value::String(r))) => lookup
            .field_of(class, r, "name_label")
            .unwrap_or(NOT_IN_DATABASE)
            .to_owned(),
        (_, ty, Some(value)) => text(&ty, value, lookup),
    }
}

/// A value of type `ty` as xe prints it.
pub fn text(ty: &Ty, value: &Value, lookup: &Lookup) -> String {
    match (ty, value) {
        (Ty::Enum(_), Value::String(s)) => s.to_lowercase(),
        (Ty::Ref(class), Value::String(r)) => ref_text(class, r, lookup),
        (Ty::Set(item), Value::Array(items)) => items
            .iter()
            .map(|v| text(item, v, lookup))
            .collect::<Vec<_>>()
            .join("; "),
        (Ty::Map(key, item), Value::Struct(members)) => members
            .iter()
            .map(|(k, v)| {
                let k = text(key, &Value::String(k.clone()), lookup);
                format!("{k}: {}", text(item, v, lookup))
            })
            .collect::<Vec<_>>()
            .join("; "),
        (Ty::Option(inner), v) => text(inner, v, lookup),
        (_, Value::Nil) => String::new(),
        (_, Value::Bool(b)) => b.to_string(),
        (_, Value::Int(i)) => i.to_string(),
        (_, Value::Int32(i)) => i.to_string(),
        (_, Value::Float(f)) => format!("{f:.3}"),
        (_, Value::String(s) | Value::DateTime(s)) => s.clone(),
        (_, v @ (Value::Array(_) | Value::Struct(_))) => {
            api_spec::codec::jsonrpc::to_json(v).to_string()
        }
    }
}

/// The uuid of the object `r` refers to, or `<not in database>`; a class xe cannot list keeps
/// the ref itself.
fn ref_text(class: &str, r: &str, lookup: &Lookup) -> String {
    if r == NULL_REF || r.is_empty() {
        return NOT_IN_DATABASE.to_owned();
    }
    match lookup.records.get(class) {
        Some(records) => records
            .get(r)
            .and_then(|rec| rec.as_struct()?.get("uuid")?.as_str())
            .unwrap_or(NOT_IN_DATABASE)
            .to_owned(),
        None => r.to_owned(),
    }
}

/// A field of a record as JSON: typed, with references as uuids (`null` for none) and enums
/// in lower case.
pub fn json(field: &CliField, record: &Value, lookup: &Lookup) -> serde_json::Value {
    let value = record.as_struct().and_then(|r| r.get(field.field.name));
    match (field.shows_name, value) {
        (_, None) => serde_json::Value::Null,
        (true, Some(_)) => match display(field, record, lookup) {
            name if name == NOT_IN_DATABASE => serde_json::Value::Null,
            name => serde_json::Value::String(name),
        },
        (false, Some(value)) => json_value(&field.field.ty, value, lookup),
    }
}

fn json_value(ty: &Ty, value: &Value, lookup: &Lookup) -> serde_json::Value {
    use serde_json::Value as J;
    match (ty, value) {
        (Ty::Enum(_), Value::String(s)) => J::String(s.to_lowercase()),
        (Ty::Ref(class), Value::String(r)) => match ref_text(class, r, lookup) {
            t if t == NOT_IN_DATABASE => J::Null,
            t => J::String(t),
        },
        (Ty::Set(item), Value::Array(items)) => {
            J::Array(items.iter().map(|v| json_value(item, v, lookup)).collect())
        }
        (Ty::Map(key, item), Value::Struct(members)) => J::Object(
            members
                .iter()
                .map(|(k, v)| {
                    (
                        text(key, &Value::String(k.clone()), lookup),
                        json_value(item, v, lookup),
                    )
                })
                .collect(),
        ),
        (Ty::Option(inner), v) => json_value(inner, v, lookup),
        (_, v) => api_spec::codec::jsonrpc::to_json(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::field;

    fn vm_record(pairs: &[(&str, Value)]) -> Value {
        Value::Struct(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    /// Enums print in lower case, sets with `; `, maps as `k: v; …`, null refs as
    /// `<not in database>`, floats with three decimals.
    #[test]
    fn values_print_as_xe_prints_them() {
        let vm = api().class("VM").expect("VM");
        let record = vm_record(&[
            ("power_state", Value::str("Halted")),
            ("tags", Value::Array(vec![Value::str("a"), Value::str("b")])),
            (
                "other_config",
                Value::Struct(BTreeMap::from([
                    ("k1".to_owned(), Value::str("v1")),
                    ("k2".to_owned(), Value::str("v2")),
                ])),
            ),
            ("resident_on", Value::str(NULL_REF)),
            ("HVM_shadow_multiplier", Value::Float(1.0)),
            ("VCPUs_max", Value::Int(2)),
        ]);
        let lookup = Lookup::default();
        let show = |name: &str| display(field(vm, name).expect(name), &record, &lookup);
        assert_eq!(show("power-state"), "halted");
        assert_eq!(show("tags"), "a; b");
        assert_eq!(show("other-config"), "k1: v1; k2: v2");
        assert_eq!(show("resident-on"), NOT_IN_DATABASE);
        assert_eq!(show("HVM-shadow-multiplier"), "1.000");
        assert_eq!(show("VCPUs-max"), "2");
    }

    /// References print as the uuid of their object, and name fields as its name.
    #[test]
    fn references_print_as_uuids_and_names() {
        let vbd = api().class("VBD").expect("VBD");
        let mut lookup = Lookup::default();
        lookup.insert(
            "VM",
            BTreeMap::from([(
                "OpaqueRef:v".to_owned(),
                vm_record(&[("uuid", Value::str("u-1")), ("name_label", Value::str("n"))]),
            )]),
        );
        let record = vm_record(&[("VM", Value::str("OpaqueRef:v"))]);
        let vm_uuid = field(vbd, "vm-uuid").expect("vm-uuid");
        assert_eq!(display(vm_uuid, &record, &lookup), "u-1");
        assert_eq!(
            display(field(vbd, "vm-name-label").expect("name"), &record, &lookup),
            "n"
        );
        assert_eq!(json(vm_uuid, &record, &lookup), serde_json::json!("u-1"));
        let gone = vm_record(&[("VM", Value::str("OpaqueRef:gone"))]);
        assert_eq!(display(vm_uuid, &gone, &lookup), NOT_IN_DATABASE);
        assert_eq!(json(vm_uuid, &gone, &lookup), serde_json::Value::Null);
    }
}
