//! The generic commands that change fields: `-param-set`, `-param-add`, `-param-remove` and
//! `-param-clear`, through the setters api-spec derives (`set_X`, `add_to_X`, `remove_X`, …)
//! or, where a class has only `set_X`, by rewriting the whole value.

use std::collections::BTreeMap;

use api_spec::{NULL_REF, Ty, Value, api};

use super::{Command, GLOBAL_SWITCHES};
use crate::args::{Params, is_true};
use crate::client::Session;
use crate::error::XeError;
use crate::render::NOT_IN_DATABASE;
use crate::select;
use crate::views::{self, CliField, View};

use super::generic::named_field;

/// A field's value from its CLI text, typed as the field is; references are given by uuid.
pub async fn parse_value(
    session: &Session,
    name: &str,
    ty: &Ty,
    text: &str,
) -> Result<Value, XeError> {
    let invalid = |reason: String| XeError::InvalidValue {
        name: name.to_owned(),
        reason,
    };
    Ok(match ty {
        Ty::String | Ty::SecretString | Ty::DateTime => Value::str(text),
        Ty::Int => Value::Int(
            text.trim()
                .parse()
                .map_err(|_| invalid(format!("'{text}' is not an integer")))?,
        ),
        Ty::Float => Value::Float(
            text.trim()
                .parse()
                .map_err(|_| invalid(format!("'{text}' is not a number")))?,
        ),
        Ty::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "false" => Value::Bool(is_true(text)),
            _ => return Err(invalid(format!("'{text}' is not true or false"))),
        },
        Ty::Enum(decl) => match decl.canonical(text) {
            Some(value) => Value::str(value),
            None => {
                let values: Vec<String> = decl.values.iter().map(|v| v.to_lowercase()).collect();
                return Err(invalid(format!(
                    "'{text}' is not one of {}",
                    values.join(", ")
                )));
            }
        },
        Ty::Ref(class) if text.is_empty() || text == NOT_IN_DATABASE => Value::str(NULL_REF),
        Ty::Ref(class) => Value::String(select::by_uuid(session, class, text).await?),
        Ty::Set(item) => {
            let mut items = Vec::new();
            for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                items.push(Box::pin(parse_value(session, name, item, part)).await?);
            }
            Value::Array(items)
        }
        Ty::Option(inner) => Box::pin(parse_value(session, name, inner, text)).await?,
        Ty::Map(..) | Ty::Record(_) => {
            return Err(invalid(format!("give map entries as {name}:<key>=<value>")));
        }
    })
}

fn method(class: &str, name: &str) -> Option<String> {
    let wire = format!("{class}.{name}");
    api()
        .method(&wire)
        .is_some_and(|m| !m.is_removed)
        .then_some(wire)
}

fn read_only(view: &View, field: &CliField) -> XeError {
    XeError::ReadOnlyField {
        class: view.name.clone(),
        name: field.name.clone(),
    }
}

/// The writable field a parameter names, refusing names that are not fields.
fn writable_field(view: &View, name: &str) -> Result<&'static CliField, XeError> {
    let field = views::field(view.class, name).ok_or_else(|| XeError::UnknownField {
        class: view.name.clone(),
        name: name.to_owned(),
    })?;
    if !field.writable || field.shows_name {
        return Err(read_only(view, field));
    }
    Ok(field)
}

/// `<class>-param-set uuid= <field>=<value> … <map>:<key>=<value> …`.
pub async fn param_set(
    session: &Session,
    view: &View,
    command: &Command,
    params: &Params,
) -> Result<(), XeError> {
    let class = view.class.name;
    let uuid = params.get("uuid").unwrap_or_default();
    let r = Value::String(select::by_uuid(session, class, uuid).await?);
    let named = command.named_params();
    for (name, text) in params.iter().filter(|(n, _)| !named.contains(n)) {
        if let Some((name, key)) = name.split_once(':') {
            let field = writable_field(view, name)?;
            set_map_entry(session, view, field, &r, key, text).await?;
            continue;
        }
        let field = writable_field(view, name)?;
        let setter = method(class, &format!("set_{}", field.field.name))
            .ok_or_else(|| read_only(view, field))?;
        let value = parse_value(session, name, &field.field.ty, text).await?;
        session.call(&setter, vec![r.clone(), value]).await?;
    }
    Ok(())
}

/// Sets one entry of a map field: removes the key, then adds it (`add_to_X` refuses a key
/// that exists), or rewrites the whole map where the class has only a setter.
async fn set_map_entry(
    session: &Session,
    view: &View,
    field: &CliField,
    r: &Value,
    key: &str,
    text: &str,
) -> Result<(), XeError> {
    let class = view.class.name;
    let name = field.field.name;
    let Ty::Map(key_ty, item_ty) = field.field.ty else {
        return Err(XeError::InvalidValue {
            name: field.name.clone(),
            reason: "only map fields take <name>:<key>=<value>".to_owned(),
        });
    };
    let key_value = parse_value(session, &field.name, key_ty, key).await?;
    let value = parse_value(session, &field.name, item_ty, text).await?;
    if let (Some(remove), Some(add)) = (
        method(class, &format!("remove_from_{name}")),
        method(class, &format!("add_to_{name}")),
    ) {
        session
            .call(&remove, vec![r.clone(), key_value.clone()])
            .await?;
        session
            .call(&add, vec![r.clone(), key_value, value])
            .await?;
        return Ok(());
    }
    let setter = method(class, &format!("set_{name}")).ok_or_else(|| read_only(view, field))?;
    let mut map = current_map(session, class, name, r).await?;
    map.insert(key_value.to_key(), value);
    session
        .call(&setter, vec![r.clone(), Value::Struct(map)])
        .await?;
    Ok(())
}

async fn current(session: &Session, class: &str, field: &str, r: &Value) -> Result<Value, XeError> {
    session
        .call(&format!("{class}.get_{field}"), vec![r.clone()])
        .await
}

async fn current_map(
    session: &Session,
    class: &str,
    field: &str,
    r: &Value,
) -> Result<BTreeMap<String, Value>, XeError> {
    match current(session, class, field, r).await? {
        Value::Struct(map) => Ok(map),
        _ => Ok(BTreeMap::new()),
    }
}

/// The set or map field `param-name=` names, which must be writable.
fn collection_field(view: &View, params: &Params) -> Result<&'static CliField, XeError> {
    let field = named_field(view, params)?;
    if !field.writable || !(field.is_set() || field.is_map()) {
        return Err(XeError::InvalidValue {
            name: "param-name".to_owned(),
            reason: format!(
                "{} is not a set or map field that can be changed",
                field.name
            ),
        });
    }
    Ok(field)
}

/// `<class>-param-add uuid= param-name= [param-key=<member>] [<key>=<value> …]`.
pub async fn param_add(session: &Session, view: &View, params: &Params) -> Result<(), XeError> {
    let field = collection_field(view, params)?;
    let (class, name) = (view.class.name, field.field.name);
    let r = Value::String(select::by_uuid(session, class, params.get("uuid").unwrap_or("")).await?);
    match field.field.ty {
        Ty::Set(item) => {
            let member = params
                .get("param-key")
                .ok_or_else(|| XeError::MissingParam {
                    command: format!("{}-param-add", view.name),
                    name: "param-key".to_owned(),
                })?;
            let member = parse_value(session, "param-key", item, member).await?;
            if let Some(add) = method(class, &format!("add_{name}")) {
                session.call(&add, vec![r, member]).await?;
            } else {
                let setter =
                    method(class, &format!("set_{name}")).ok_or_else(|| read_only(view, field))?;
                let mut members = match current(session, class, name, &r).await? {
                    Value::Array(members) => members,
                    _ => Vec::new(),
                };
                if !members.contains(&member) {
                    members.push(member);
                }
                session
                    .call(&setter, vec![r, Value::Array(members)])
                    .await?;
            }
        }
        _ => {
            let own = ["uuid", "param-name", "param-key"];
            for (key, value) in params
                .iter()
                .filter(|(k, _)| !own.contains(k) && !GLOBAL_SWITCHES.contains(k))
            {
                set_map_entry(session, view, field, &r, key, value).await?;
            }
        }
    }
    Ok(())
}

/// `<class>-param-remove uuid= param-name= param-key=`.
pub async fn param_remove(session: &Session, view: &View, params: &Params) -> Result<(), XeError> {
    let field = collection_field(view, params)?;
    let (class, name) = (view.class.name, field.field.name);
    let r = Value::String(select::by_uuid(session, class, params.get("uuid").unwrap_or("")).await?);
    let key = params.get("param-key").unwrap_or_default();
    let (remover, key_ty) = match field.field.ty {
        Ty::Set(item) => (format!("remove_{name}"), *item),
        Ty::Map(key_ty, _) => (format!("remove_from_{name}"), *key_ty),
        _ => return Err(read_only(view, field)),
    };
    let key = parse_value(session, "param-key", &key_ty, key).await?;
    match method(class, &remover) {
        Some(remover) => {
            session.call(&remover, vec![r, key]).await?;
        }
        None => {
            let setter =
                method(class, &format!("set_{name}")).ok_or_else(|| read_only(view, field))?;
            let rest = match current(session, class, name, &r).await? {
                Value::Array(members) => {
                    Value::Array(members.into_iter().filter(|m| *m != key).collect())
                }
                Value::Struct(mut map) => {
                    map.remove(&key.to_key());
                    Value::Struct(map)
                }
                other => other,
            };
            session.call(&setter, vec![r, rest]).await?;
        }
    }
    Ok(())
}

/// `<class>-param-clear uuid= param-name=`.
pub async fn param_clear(session: &Session, view: &View, params: &Params) -> Result<(), XeError> {
    let field = collection_field(view, params)?;
    let (class, name) = (view.class.name, field.field.name);
    let r = Value::String(select::by_uuid(session, class, params.get("uuid").unwrap_or("")).await?);
    let empty = if field.is_set() {
        Value::Array(Vec::new())
    } else {
        Value::Struct(BTreeMap::new())
    };
    if let Some(setter) = method(class, &format!("set_{name}")) {
        session.call(&setter, vec![r, empty]).await?;
        return Ok(());
    }
    match current(session, class, name, &r).await? {
        Value::Array(members) => {
            let remover =
                method(class, &format!("remove_{name}")).ok_or_else(|| read_only(view, field))?;
            for member in members {
                session.call(&remover, vec![r.clone(), member]).await?;
            }
        }
        Value::Struct(map) => {
            let remover = method(class, &format!("remove_from_{name}"))
                .ok_or_else(|| read_only(view, field))?;
            for key in map.into_keys() {
                session
                    .call(&remover, vec![r.clone(), Value::String(key)])
                    .await?;
            }
        }
        _ => return Err(read_only(view, field)),
    }
    Ok(())
}
