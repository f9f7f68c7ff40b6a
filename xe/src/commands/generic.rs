//! The generic commands that read, for every view: `-list`, `-param-list`, `-param-get`
//! (those that change fields are in `setters.rs`).

use api_spec::{Ty, Value};

use super::{Command, format};
use crate::args::Params;
use crate::client::Session;
use crate::error::XeError;
use crate::output::{self, Format, Lines};
use crate::render::{self, Lookup};
use crate::select;
use crate::views::{self, CliField, View};

/// The fields `params=` asks for, in the class's order; without it, the view's defaults.
pub(super) fn columns(
    view: &View,
    wanted: Option<&str>,
) -> Result<Vec<&'static CliField>, XeError> {
    let all = views::fields(view.class);
    let names: Vec<&str> = match wanted {
        Some("all") => return Ok(all.iter().collect()),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect(),
        None if view.default_columns.is_empty() => return Ok(all.iter().collect()),
        None => view.default_columns.to_vec(),
    };
    if let Some(unknown) = names.iter().find(|n| views::field(view.class, n).is_none()) {
        return Err(XeError::UnknownField {
            class: view.name.clone(),
            name: (*unknown).to_owned(),
        });
    }
    Ok(all
        .iter()
        .filter(|f| names.contains(&f.name.as_str()))
        .collect())
}

/// Prints records in the format asked for.
pub fn print_records(
    columns: &[&CliField],
    records: &[(String, Value)],
    lookup: &Lookup,
    format: Format,
) {
    match format {
        Format::Records => {
            let text: String = records
                .iter()
                .map(|(_, record)| {
                    let lines: Lines = columns
                        .iter()
                        .map(|f| {
                            (
                                format!("{} {}", f.name, f.marker()),
                                render::display(f, record, lookup),
                            )
                        })
                        .collect();
                    output::record(&lines)
                })
                .collect();
            output::print(&text);
        }
        Format::Minimal => {
            let values: Vec<String> = records
                .iter()
                .filter_map(|(_, record)| Some(render::display(columns.first()?, record, lookup)))
                .collect();
            output::print(&output::minimal(&values));
        }
        Format::Json => {
            let objects = records
                .iter()
                .map(|(_, record)| json_object(columns, record, lookup))
                .collect();
            output::print(&output::json(&serde_json::Value::Array(objects)));
        }
    }
}

pub(super) fn json_object(
    columns: &[&CliField],
    record: &Value,
    lookup: &Lookup,
) -> serde_json::Value {
    serde_json::Value::Object(
        columns
            .iter()
            .map(|f| (f.name.clone(), render::json(f, record, lookup)))
            .collect(),
    )
}

/// Sorts records by name, then uuid, so that output is stable.
pub fn sort_by_name(records: &mut [(String, Value)]) {
    let key = |record: &Value| {
        let field = |name| {
            record
                .as_struct()
                .and_then(|r| r.get(name)?.as_str())
                .unwrap_or("")
                .to_owned()
        };
        (field("name_label"), field("uuid"))
    };
    records.sort_by_cached_key(|(_, record)| key(record));
}

/// `<class>-list [params=…|all] [<field>=<value> …]`.
pub async fn list(
    session: &Session,
    view: &View,
    command: &Command,
    params: &Params,
) -> Result<(), XeError> {
    let filters = select::filters(view, params, &command.named_params())?;
    let filters = select::with_defaults(view, filters)?;
    let columns = columns(view, params.get("params"))?;
    let mut lookup = Lookup::default();
    let mut records = select::matching(session, view, &filters, &mut lookup).await?;
    sort_by_name(&mut records);
    lookup
        .prepare(session, &columns, records.iter().map(|(_, r)| r))
        .await?;
    print_records(&columns, &records, &lookup, format(params));
    Ok(())
}

/// The object named by `uuid=`: its ref and record.
async fn object(
    session: &Session,
    view: &View,
    params: &Params,
) -> Result<(String, Value), XeError> {
    let uuid = params.get("uuid").unwrap_or_default();
    let class = view.class.name;
    let r = select::by_uuid(session, class, uuid).await?;
    let record = session
        .call(&format!("{class}.get_record"), vec![Value::str(r.as_str())])
        .await?;
    Ok((r, record))
}

/// The field named by `param-name=`.
pub(super) fn named_field(view: &View, params: &Params) -> Result<&'static CliField, XeError> {
    let name = params.get("param-name").unwrap_or_default();
    views::field(view.class, name).ok_or_else(|| XeError::UnknownField {
        class: view.name.clone(),
        name: name.to_owned(),
    })
}

/// `<class>-param-list uuid=`.
pub async fn param_list(session: &Session, view: &View, params: &Params) -> Result<(), XeError> {
    let record = object(session, view, params).await?;
    let columns: Vec<&CliField> = views::fields(view.class).iter().collect();
    let mut lookup = Lookup::default();
    lookup
        .prepare(session, &columns, std::iter::once(&record.1))
        .await?;
    print_records(&columns, &[record], &lookup, format(params));
    Ok(())
}

/// `<class>-param-get uuid= param-name= [param-key=]`.
pub async fn param_get(session: &Session, view: &View, params: &Params) -> Result<(), XeError> {
    let field = named_field(view, params)?;
    let (_, record) = object(session, view, params).await?;
    let mut lookup = Lookup::default();
    lookup
        .prepare(session, &[field], std::iter::once(&record))
        .await?;
    let json = format(params) == Format::Json;
    let text = match params.get("param-key") {
        Some(key) => {
            let (Ty::Map(_, item), false) = (field.field.ty, field.shows_name) else {
                return Err(XeError::InvalidValue {
                    name: "param-key".to_owned(),
                    reason: format!("{} is not a map field", field.name),
                });
            };
            let entry = record
                .as_struct()
                .and_then(|r| r.get(field.field.name)?.as_struct()?.get(key))
                .ok_or_else(|| XeError::InvalidValue {
                    name: "param-key".to_owned(),
                    reason: format!("{} has no key '{key}'", field.name),
                })?;
            let text = render::text(item, entry, &lookup);
            if json {
                output::json(&serde_json::Value::String(text))
            } else {
                format!("{text}\n")
            }
        }
        None if json => output::json(&render::json(field, &record, &lookup)),
        None => format!("{}\n", render::display(field, &record, &lookup)),
    };
    output::print(&text);
    Ok(())
}
