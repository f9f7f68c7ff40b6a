//! The SR and VDI commands that take more than a uuid (`sr-create`, `vdi-create`,
//! `vdi-resize`, `vdi-copy`, and `vdi-import` / `vdi-export` in `vdi_transfer.rs`), with
//! xapi's xe names and parameters; and what the storage and drive commands share: sizes with
//! xe's suffixes, `name:key=value` maps, constructor records derived from api-spec.

use std::collections::BTreeMap;

use api_spec::coerce::zero;
use api_spec::{NULL_REF, Qualifier, Value, api};

use super::setters::parse_value;
use super::{Action, Command, print_uuid, vdi_transfer};
use crate::args::{Params, is_true};
use crate::client::Session;
use crate::error::XeError;
use crate::select;
use crate::tasks::call_and_wait;

/// An SR or VDI operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageAction {
    SrCreate,
    VdiCreate,
    VdiResize,
    VdiCopy,
    VdiImport,
    VdiExport,
}

/// Adds the commands to the table.
pub fn commands(out: &mut Vec<Command>) {
    use StorageAction::*;
    let storage = |name, action, help| Command::new(name, Action::Storage(action), help);
    out.push(
        storage(
            "sr-create",
            SrCreate,
            "Makes an SR of type= (file, ext, or iso for an ISO library) at \
             device-config:location=<directory>, with a PBD on host-uuid= (by default the \
             master), or on every host if shared=true; prints its uuid.",
        )
        .required(&["name-label", "type"])
        .optional(&[
            "host-uuid",
            "name-description",
            "content-type",
            "shared",
            "physical-size",
            "device-config:",
            "sm-config:",
        ])
        .on("sr"),
    );
    out.push(
        storage(
            "vdi-create",
            VdiCreate,
            "Makes a VDI of virtual-size= (bytes, or with a suffix: KiB, MiB, GiB, TiB) in the \
             SR sr-uuid=; type= is user unless given; prints its uuid.",
        )
        .required(&["sr-uuid", "name-label", "virtual-size"])
        .optional(&["name-description", "type", "sharable", "sm-config:"])
        .on("vdi"),
    );
    out.push(
        storage(
            "vdi-resize",
            VdiResize,
            "Grows the VDI uuid= to disk-size= (bytes, or with a suffix: KiB, MiB, GiB, TiB); \
             with online=true also while a running VM writes to it.",
        )
        .required(&["uuid", "disk-size"])
        .optional(&["online"])
        .on("vdi"),
    );
    out.push(
        storage(
            "vdi-copy",
            VdiCopy,
            "Copies the VDI uuid= into a new VDI in the SR sr-uuid= (prints its uuid), or into \
             the existing VDI into-vdi-uuid=.",
        )
        .required(&["uuid"])
        .optional(&["sr-uuid", "into-vdi-uuid", "base-vdi-uuid"])
        .on("vdi"),
    );
    out.push(
        storage(
            "vdi-import",
            VdiImport,
            "Writes the image in the file filename= into the VDI uuid=; format= is raw (the \
             default) or qcow2.",
        )
        .required(&["uuid", "filename"])
        .optional(&["format"])
        .on("vdi"),
    );
    out.push(
        storage(
            "vdi-export",
            VdiExport,
            "Writes the VDI uuid= into the file filename=; format= is raw (the default) or \
             qcow2.",
        )
        .required(&["uuid", "filename"])
        .optional(&["format"])
        .on("vdi"),
    );
}

/// Runs an SR or VDI command.
pub async fn run(action: StorageAction, session: &Session, params: &Params) -> Result<(), XeError> {
    match action {
        StorageAction::SrCreate => sr_create(session, params).await,
        StorageAction::VdiCreate => vdi_create(session, params).await,
        StorageAction::VdiResize => {
            let vdi = object(session, "VDI", params, "uuid").await?;
            let size = Value::Int(size_param(params, "disk-size")?);
            let online = params.get("online").is_some_and(is_true);
            let method = if online {
                "VDI.resize_online"
            } else {
                "VDI.resize"
            };
            call_and_wait(session, method, vec![vdi, size]).await?;
            Ok(())
        }
        StorageAction::VdiCopy => vdi_copy(session, params).await,
        StorageAction::VdiImport => vdi_transfer::import(session, params).await,
        StorageAction::VdiExport => vdi_transfer::export(session, params).await,
    }
}

/// `sr-create`: `SR.create` with the parameters given, on the host `host-uuid=` names, else on
/// the master (xapi's xe too makes a shared SR there, and a pool of one host has no other).
async fn sr_create(session: &Session, params: &Params) -> Result<(), XeError> {
    let host = match params.get("host-uuid") {
        Some(uuid) => select::by_uuid(session, "host", uuid).await?,
        None => pool_field(session, "master").await?,
    };
    let text = |name| Value::str(params.get(name).unwrap_or_default());
    let physical_size = match params.get("physical-size") {
        Some(_) => size_param(params, "physical-size")?,
        None => 0,
    };
    let args = vec![
        Value::String(host),
        map_param(params, "device-config"),
        Value::Int(physical_size),
        text("name-label"),
        text("name-description"),
        text("type"),
        text("content-type"),
        Value::Bool(params.flag("shared")),
        map_param(params, "sm-config"),
    ];
    let sr = call_and_wait(session, "SR.create", args).await?;
    print_uuid(session, "SR", params, sr).await
}

/// `vdi-create`: `VDI.create` of a record from the parameters given.
async fn vdi_create(session: &Session, params: &Params) -> Result<(), XeError> {
    let size = size_param(params, "virtual-size")?;
    let fields = vec![
        ("type", Value::str("user")),
        ("virtual_size", Value::Int(size)),
        ("sm_config", map_param(params, "sm-config")),
    ];
    let named = [
        ("sr-uuid", "SR"),
        ("name-label", "name_label"),
        ("name-description", "name_description"),
        ("type", "type"),
        ("sharable", "sharable"),
    ];
    create(session, "VDI", fields, &named, params).await
}

/// `<class>.create` of a constructor record: `fields`, then what the parameters `named` give
/// (`(parameter, field)`); prints the new object's uuid.
pub(super) async fn create(
    session: &Session,
    class: &str,
    mut fields: Vec<(&str, Value)>,
    named: &[(&str, &'static str)],
    params: &Params,
) -> Result<(), XeError> {
    fields.extend(fields_from_params(session, class, params, named).await?);
    let record = constructor_record(class, fields);
    let new = call_and_wait(session, &format!("{class}.create"), vec![record]).await?;
    print_uuid(session, class, params, new).await
}

/// `vdi-copy`: `VDI.copy` into a new VDI in `sr-uuid=` or into the VDI `into-vdi-uuid=` (one
/// of them, as xapi's xe asks), from `base-vdi-uuid=` if given.
async fn vdi_copy(session: &Session, params: &Params) -> Result<(), XeError> {
    let (sr, into) = match (params.has("sr-uuid"), params.has("into-vdi-uuid")) {
        (true, false) | (false, true) => (
            object(session, "SR", params, "sr-uuid").await?,
            object(session, "VDI", params, "into-vdi-uuid").await?,
        ),
        _ => {
            return Err(XeError::InvalidValue {
                name: "sr-uuid".to_owned(),
                reason: "give either sr-uuid= (a new VDI there) or into-vdi-uuid= (an \
                         existing VDI), not both"
                    .to_owned(),
            });
        }
    };
    let vdi = object(session, "VDI", params, "uuid").await?;
    let base = object(session, "VDI", params, "base-vdi-uuid").await?;
    let new = call_and_wait(session, "VDI.copy", vec![vdi, sr, base, into]).await?;
    print_uuid(session, "VDI", params, new).await
}

/// A field of the pool that is a reference (`master`, `default_SR`).
pub(super) async fn pool_field(session: &Session, field: &str) -> Result<String, XeError> {
    let pools = session.call("pool.get_all", Vec::new()).await?;
    let pool = pools.as_array().and_then(|p| p.first()).cloned();
    let pool = pool.ok_or_else(|| XeError::UnexpectedReply {
        what: "no pool".to_owned(),
        expected: "the pool",
    })?;
    let getter = format!("pool.get_{field}");
    session.call_str(&getter, vec![pool]).await
}

/// The ref of the object of `class` whose uuid `param=` gives; `NULL` when it is not given.
pub(super) async fn object(
    session: &Session,
    class: &str,
    params: &Params,
    param: &str,
) -> Result<Value, XeError> {
    Ok(Value::String(match params.get(param) {
        Some(uuid) => select::by_uuid(session, class, uuid).await?,
        None => NULL_REF.to_owned(),
    }))
}

/// A size in bytes, as xapi's xe reads one: a number, then optionally a unit (`b`, `KiB`,
/// `MiB`, `GiB`, `TiB`, or `k`/`kb`, `m`/`mb`, …, all powers of 1024), in any case.
pub(super) fn size_bytes(name: &str, text: &str) -> Result<i64, XeError> {
    let invalid = || XeError::InvalidValue {
        name: name.to_owned(),
        reason: format!(
            "'{text}' is not a size: a number of bytes, optionally followed by KiB, MiB, GiB or \
             TiB"
        ),
    };
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: i64 = text[..digits].parse().map_err(|_| invalid())?;
    let power = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 0,
        "k" | "kb" | "kib" => 1,
        "m" | "mb" | "mib" => 2,
        "g" | "gb" | "gib" => 3,
        "t" | "tb" | "tib" => 4,
        _ => return Err(invalid()),
    };
    number.checked_mul(1 << (10 * power)).ok_or_else(invalid)
}

/// The size the parameter `name=` gives.
pub(super) fn size_param(params: &Params, name: &str) -> Result<i64, XeError> {
    size_bytes(name, params.get(name).unwrap_or_default())
}

/// The map given as `name:key=value` parameters.
pub(super) fn map_param(params: &Params, name: &str) -> Value {
    let prefix = format!("{name}:");
    Value::Struct(
        params
            .iter()
            .filter_map(|(param, value)| {
                let key = param.strip_prefix(&prefix)?;
                Some((key.to_owned(), Value::str(value)))
            })
            .collect(),
    )
}

/// The fields of `class` the parameters give: for each `(parameter, field)` given, its value
/// read as the field's type says (a reference by uuid, an enum in any case, …).
async fn fields_from_params(
    session: &Session,
    class: &str,
    params: &Params,
    named: &[(&str, &'static str)],
) -> Result<Vec<(&'static str, Value)>, XeError> {
    let class = api().class(class).ok_or_else(|| XeError::UnknownCommand {
        name: class.to_owned(),
    })?;
    let mut fields = Vec::new();
    for (param, name) in named {
        let (Some(text), Some(field)) = (params.get(param), class.field(name)) else {
            continue;
        };
        fields.push((*name, parse_value(session, param, &field.ty, text).await?));
    }
    Ok(fields)
}

/// The constructor record of `class` (what `VDI.create`, `VBD.create` take): `fields` (a later
/// value of a field wins), and every other field the constructor needs (RW or StaticRO without
/// a default, as api-spec declares) at its type's zero value.
pub(super) fn constructor_record(class: &str, fields: Vec<(&str, Value)>) -> Value {
    let mut record: BTreeMap<String, Value> = api()
        .class(class)
        .map(|c| c.fields)
        .unwrap_or_default()
        .iter()
        .filter(|f| f.qualifier != Qualifier::DynamicRO && f.default.is_none())
        .map(|f| (f.name.to_owned(), zero(&f.ty)))
        .collect();
    record.extend(fields.into_iter().map(|(k, v)| (k.to_owned(), v)));
    Value::Struct(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args;

    /// Sizes take xe's units, powers of 1024 in any case; anything else is refused by name.
    #[test]
    fn sizes_take_xe_units() {
        assert_eq!(size_bytes("s", "512").expect("bytes"), 512);
        assert_eq!(size_bytes("s", "10GiB").expect("GiB"), 10 << 30);
        assert_eq!(size_bytes("s", "3 mib").expect("MiB"), 3 << 20);
        assert_eq!(size_bytes("s", "2k").expect("k"), 2048);
        assert_eq!(size_bytes("s", "1T").expect("T"), 1 << 40);
        for bad in ["", "GiB", "-1", "1.5GiB", "10 parsecs", "9999999999TiB"] {
            let err = size_bytes("virtual-size", bad).expect_err(bad);
            assert!(
                matches!(err, XeError::InvalidValue { ref name, .. } if name == "virtual-size"),
                "{bad}"
            );
        }
    }

    /// `name:key=value` parameters make a map; other parameters are not in it.
    #[test]
    fn map_parameters_collect_their_entries() {
        let params = args::parse(
            [
                "device-config:location=/srv/iso",
                "device-config:x=y",
                "type=iso",
            ]
            .map(str::to_owned),
        )
        .params;
        let map = map_param(&params, "device-config");
        let map = map.as_struct().expect("a map");
        assert_eq!(map.len(), 2);
        assert_eq!(map["location"], Value::str("/srv/iso"));
        assert_eq!(
            map_param(&params, "sm-config"),
            Value::Struct(BTreeMap::new())
        );
    }

    /// A constructor record has every field the constructor needs, the ones given first.
    #[test]
    fn constructor_records_fill_what_the_constructor_needs() {
        let record = constructor_record("VBD", vec![("type", Value::str("CD"))]);
        let record = record.as_struct().expect("a record");
        assert_eq!(record["type"], Value::str("CD"));
        assert_eq!(record["VDI"], Value::str(NULL_REF));
        assert_eq!(record["other_config"], Value::Struct(BTreeMap::new()));
        assert!(
            !record.contains_key("currently_attached"),
            "it has a default"
        );
        assert!(!record.contains_key("uuid"), "it is dynamic");
    }
}
