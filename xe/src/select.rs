//! Choosing objects as xe does: field filters (`power-state=halted`, `other-config:k=v`,
//! `x=/=y` for "not"), a selector that matches a name-label or a uuid (`vm=`), the view's
//! default filters, and `--multiple` when more than one object matches.

use api_spec::Value;

use crate::args::Params;
use crate::client::Session;
use crate::error::XeError;
use crate::render::{self, Lookup};
use crate::views::{self, CliField, View};

/// One condition on a field.
#[derive(Debug)]
pub struct Filter {
    pub field: &'static CliField,
    /// For `map:key=value`, the key.
    pub key: Option<String>,
    pub value: String,
    /// `name=/=value`: the field must differ.
    pub negate: bool,
}

impl Filter {
    /// Parses a parameter as a filter on `view`'s class: `name=value`, `map:key=value` or
    /// `name=/=value`.
    pub fn parse(view: &View, name: &str, value: &str) -> Result<Filter, XeError> {
        let (name, key) = match name.split_once(':') {
            Some((name, key)) => (name, Some(key.to_owned())),
            None => (name, None),
        };
        let field = views::field(view.class, name)
            .filter(|f| key.is_none() || f.is_map())
            .ok_or_else(|| XeError::UnknownField {
                class: view.name.clone(),
                name: name.to_owned(),
            })?;
        let (value, negate) = match value.strip_prefix("/=") {
            Some(rest) => (rest.to_owned(), true),
            None => (value.to_owned(), false),
        };
        Ok(Filter {
            field,
            key,
            value,
            negate,
        })
    }

    /// Whether `record` passes: the field as xe prints it equals the value (in any case for
    /// enums and booleans), or one member of a set does.
    pub fn matches(&self, record: &Value, lookup: &Lookup) -> bool {
        let equal = match &self.key {
            Some(key) => {
                let item_ty = match self.field.field.ty {
                    api_spec::Ty::Map(_, item) => *item,
                    ty => ty,
                };
                record
                    .as_struct()
                    .and_then(|r| r.get(self.field.field.name))
                    .and_then(Value::as_struct)
                    .and_then(|m| m.get(key))
                    .is_some_and(|v| render::text(&item_ty, v, lookup) == self.value)
            }
            None => {
                let shown = render::display(self.field, record, lookup);
                let loose = matches!(
                    self.field.field.ty,
                    api_spec::Ty::Enum(_) | api_spec::Ty::Bool
                );
                shown == self.value
                    || (loose && shown.eq_ignore_ascii_case(&self.value))
                    || (self.field.is_set() && shown.split("; ").any(|m| m == self.value))
            }
        };
        equal != self.negate
    }
}

/// The filters among `params`: every parameter not in `reserved`.
pub fn filters(view: &View, params: &Params, reserved: &[&str]) -> Result<Vec<Filter>, XeError> {
    params
        .iter()
        .filter(|(name, _)| !reserved.contains(name))
        .map(|(name, value)| Filter::parse(view, name, value))
        .collect()
}

/// The view's default filters that the user did not override with their own on that field.
pub fn with_defaults(view: &View, mut given: Vec<Filter>) -> Result<Vec<Filter>, XeError> {
    for (name, value) in view.default_filters {
        if !given.iter().any(|f| f.field.name == *name) {
            given.push(Filter::parse(view, name, value)?);
        }
    }
    Ok(given)
}

/// The records of `view`'s class that pass every filter, by ref.
pub async fn matching(
    session: &Session,
    view: &View,
    filters: &[Filter],
    lookup: &mut Lookup,
) -> Result<Vec<(String, Value)>, XeError> {
    let all = render::all_records(session, view.class.name).await?;
    let fields: Vec<&CliField> = filters.iter().map(|f| f.field).collect();
    lookup.prepare(session, &fields, all.values()).await?;
    let chosen = all
        .iter()
        .filter(|(_, record)| filters.iter().all(|f| f.matches(record, lookup)))
        .map(|(r, record)| (r.clone(), record.clone()))
        .collect();
    lookup.insert(view.class.name, all);
    Ok(chosen)
}

/// The objects an operation acts on: `selector` (`vm=`) names one by name-label or uuid, the
/// other non-reserved parameters filter, and the view's defaults apply (operations on VMs leave
/// templates and control domains alone unless asked). Fails when nothing matches, or when
/// several do without `--multiple`.
pub async fn objects(
    session: &Session,
    view: &View,
    selector: &str,
    params: &Params,
    reserved: &[&str],
    lookup: &mut Lookup,
) -> Result<Vec<(String, Value)>, XeError> {
    let mut reserved = reserved.to_vec();
    reserved.push(selector);
    let mut given = filters(view, params, &reserved)?;
    if view.class.name == "VM" && view.name == "vm" {
        let not_dom0 = Filter::parse(view, "is-control-domain", "false")?;
        if !given.iter().any(|f| f.field.name == not_dom0.field.name) {
            given.push(not_dom0);
        }
    }
    let filters = with_defaults(view, given)?;
    let mut chosen = matching(session, view, &filters, lookup).await?;
    if let Some(wanted) = params.get(selector) {
        chosen.retain(|(_, record)| {
            let field = |name| record.as_struct()?.get(name)?.as_str();
            field("uuid") == Some(wanted) || field("name_label") == Some(wanted)
        });
    }
    match chosen.len() {
        0 => Err(XeError::NoMatch {
            class: view.name.clone(),
        }),
        1 => Ok(chosen),
        _ if params.flag("multiple") => Ok(chosen),
        count => Err(XeError::MultipleMatches {
            class: view.name.clone(),
            count,
        }),
    }
}

/// The ref of the object of `class` with this uuid.
pub async fn by_uuid(session: &Session, class: &str, uuid: &str) -> Result<String, XeError> {
    session
        .call_str(&format!("{class}.get_by_uuid"), vec![Value::str(uuid)])
        .await
}

/// The ref of an object of `view` named by uuid or name-label (`template=`, `on=`).
pub async fn one_by_name_or_uuid(
    session: &Session,
    view: &View,
    param: &str,
    wanted: &str,
    lookup: &mut Lookup,
) -> Result<String, XeError> {
    let filters = with_defaults(view, Vec::new())?;
    let chosen: Vec<String> = matching(session, view, &filters, lookup)
        .await?
        .into_iter()
        .filter(|(_, record)| {
            let field = |name| record.as_struct().and_then(|r| r.get(name)?.as_str());
            field("uuid") == Some(wanted) || field("name_label") == Some(wanted)
        })
        .map(|(r, _)| r)
        .collect();
    match chosen.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(XeError::InvalidValue {
            name: param.to_owned(),
            reason: format!("no {} is named or has the uuid '{wanted}'", view.name),
        }),
        _ => Err(XeError::InvalidValue {
            name: param.to_owned(),
            reason: format!(
                "several {}s are named '{wanted}': give a uuid instead",
                view.name
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn vm_view() -> &'static View {
        views::view("vm").expect("vm view")
    }

    fn record(pairs: &[(&str, Value)]) -> Value {
        Value::Struct(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    /// Filters match the printed value, enums in any case, a set member, a map key, or the
    /// negation.
    #[test]
    fn filters_match_as_xe_prints() {
        let lookup = Lookup::default();
        let vm = record(&[
            ("power_state", Value::str("Halted")),
            ("tags", Value::Array(vec![Value::str("a"), Value::str("b")])),
            (
                "other_config",
                Value::Struct(BTreeMap::from([("k".to_owned(), Value::str("v"))])),
            ),
        ]);
        let passes = |name: &str, value: &str| {
            Filter::parse(vm_view(), name, value)
                .expect("a field")
                .matches(&vm, &lookup)
        };
        assert!(passes("power-state", "halted"));
        assert!(passes("power-state", "Halted"));
        assert!(!passes("power-state", "running"));
        assert!(passes("power-state", "/=running"));
        assert!(passes("tags", "b"));
        assert!(passes("other-config:k", "v"));
        assert!(!passes("other-config:k", "w"));
        assert!(!passes("other-config:missing", "v"));
    }

    /// A filter on a field the class does not have is refused with its name.
    #[test]
    fn unknown_field_is_refused_by_name() {
        let err = Filter::parse(vm_view(), "colour", "red").expect_err("no such field");
        assert!(matches!(err, XeError::UnknownField { ref name, .. } if name == "colour"));
        assert!(Filter::parse(vm_view(), "name-label:k", "v").is_err());
    }

    /// The view's defaults apply unless the user filters on the same field.
    #[test]
    fn user_filters_override_view_defaults() {
        let given = vec![Filter::parse(vm_view(), "is-a-template", "true").expect("field")];
        let all = with_defaults(vm_view(), given).expect("valid");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].value, "true");
        assert_eq!(
            with_defaults(vm_view(), Vec::new()).expect("valid").len(),
            1
        );
    }
}
