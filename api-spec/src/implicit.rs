//! The implicit messages every class gets from its declaration: `get_record`, `get_by_uuid`,
//! `get_X`, `set_X`, `add_to_X`, … Derived here once, never written per class.

use crate::model::{Class, Field};
use crate::roles::Role;
use crate::types::{Qualifier, Ty};

/// Which generated message a method is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Implicit {
    GetRecord,
    GetByUuid,
    GetByNameLabel,
    GetAll,
    GetAllRecords,
    GetAllRecordsWhere,
    Create,
    Destroy,
    Get(&'static Field),
    Set(&'static Field),
    AddToMap(&'static Field),
    RemoveFromMap(&'static Field),
    AddToSet(&'static Field),
    RemoveFromSet(&'static Field),
}

/// A parameter of a derived message (the session is never listed).
#[derive(Debug, Clone)]
pub struct DerivedParam {
    pub name: &'static str,
    pub ty: Ty,
}

/// One implicit message of a class, with its derived signature.
#[derive(Debug, Clone)]
pub struct ImplicitMessage {
    pub name: String,
    pub kind: Implicit,
    pub params: Vec<DerivedParam>,
    pub result: Option<Ty>,
    pub role: Role,
    pub has_async: bool,
}

/// The generic message a class-level name stands for (`get_record`, `get_all_records_where`,
/// `destroy`, …). A class that declares such a message explicitly (as `message` does, xapi
/// keeping its rows outside the DB) is still answered the generic way when its rows are in the DB.
pub fn class_level(name: &str) -> Option<Implicit> {
    Some(match name {
        "get_record" => Implicit::GetRecord,
        "get_by_uuid" => Implicit::GetByUuid,
        "get_by_name_label" => Implicit::GetByNameLabel,
        "get_all" => Implicit::GetAll,
        "get_all_records" => Implicit::GetAllRecords,
        "get_all_records_where" => Implicit::GetAllRecordsWhere,
        "destroy" => Implicit::Destroy,
        _ => return None,
    })
}

fn leak(ty: Ty) -> &'static Ty {
    Box::leak(Box::new(ty))
}

fn param(name: &'static str, ty: Ty) -> DerivedParam {
    DerivedParam { name, ty }
}

/// Every implicit message of `class`. Called once, when the API table is built, so the few
/// compound result types it makes are leaked on purpose: they live as long as the process.
pub fn derive(class: &'static Class) -> Vec<ImplicitMessage> {
    if !class.in_db {
        return Vec::new();
    }
    let this = Ty::Ref(class.name);
    let this_ref = leak(this);
    let record = Ty::Record(class.name);
    let mut out = Vec::new();
    let mut add = |name: String, kind, params, result, role, has_async| {
        out.push(ImplicitMessage {
            name,
            kind,
            params,
            result,
            role,
            has_async,
        })
    };
    add(
        "get_record".into(),
        Implicit::GetRecord,
        vec![param("self", this)],
        Some(record),
        Role::ReadOnly,
        false,
    );
    if class.has_uuid() {
        add(
            "get_by_uuid".into(),
            Implicit::GetByUuid,
            vec![param("uuid", Ty::String)],
            Some(this),
            Role::ReadOnly,
            false,
        );
    }
    if class.has_name_label() {
        add(
            "get_by_name_label".into(),
            Implicit::GetByNameLabel,
            vec![param("label", Ty::String)],
            Some(Ty::Set(this_ref)),
            Role::ReadOnly,
            false,
        );
    }
    if class.has_get_all {
        let records = Ty::Map(this_ref, leak(record));
        add(
            "get_all".into(),
            Implicit::GetAll,
            vec![],
            Some(Ty::Set(this_ref)),
            Role::ReadOnly,
            false,
        );
        add(
            "get_all_records".into(),
            Implicit::GetAllRecords,
            vec![],
            Some(records),
            Role::ReadOnly,
            false,
        );
        add(
            "get_all_records_where".into(),
            Implicit::GetAllRecordsWhere,
            vec![param("expr", Ty::String)],
            Some(records),
            Role::ReadOnly,
            false,
        );
    }
    if class.has_constructor {
        add(
            "create".into(),
            Implicit::Create,
            vec![param("args", record)],
            Some(this),
            class.writer_role,
            true,
        );
        add(
            "destroy".into(),
            Implicit::Destroy,
            vec![param("self", this)],
            None,
            class.writer_role,
            true,
        );
    }
    for field in class.fields {
        add(
            format!("get_{}", field.name),
            Implicit::Get(field),
            vec![param("self", this)],
            Some(field.ty),
            Role::ReadOnly,
            false,
        );
        // Only RW fields can be written by clients. A set of refs is the many end of a
        // relation (or a list the toolstack keeps), so xapi gives it only the getter.
        if field.qualifier != Qualifier::RW || matches!(field.ty, Ty::Set(Ty::Ref(_))) {
            continue;
        }
        add(
            format!("set_{}", field.name),
            Implicit::Set(field),
            vec![param("self", this), param("value", field.ty)],
            None,
            class.writer_role,
            false,
        );
        match field.ty {
            Ty::Map(key, value) => {
                add(
                    format!("add_to_{}", field.name),
                    Implicit::AddToMap(field),
                    vec![
                        param("self", this),
                        param("key", *key),
                        param("value", *value),
                    ],
                    None,
                    class.writer_role,
                    false,
                );
                add(
                    format!("remove_from_{}", field.name),
                    Implicit::RemoveFromMap(field),
                    vec![param("self", this), param("key", *key)],
                    None,
                    class.writer_role,
                    false,
                );
            }
            Ty::Set(item) => {
                add(
                    format!("add_{}", field.name),
                    Implicit::AddToSet(field),
                    vec![param("self", this), param("value", *item)],
                    None,
                    class.writer_role,
                    false,
                );
                add(
                    format!("remove_{}", field.name),
                    Implicit::RemoveFromSet(field),
                    vec![param("self", this), param("value", *item)],
                    None,
                    class.writer_role,
                    false,
                );
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classes::vbd::VBD;
    use crate::model::Lifecycle;

    fn names(class: &'static Class) -> Vec<String> {
        derive(class).into_iter().map(|m| m.name).collect()
    }

    /// VBD gets exactly the implicit messages xapi lists for it.
    #[test]
    fn vbd_gets_the_implicit_messages_xapi_lists() {
        let mut got = names(&VBD);
        got.sort();
        let mut want: Vec<String> = [
            "get_record",
            "get_by_uuid",
            "get_all",
            "get_all_records",
            "get_all_records_where",
            "create",
            "destroy",
            "add_to_other_config",
            "add_to_qos_algorithm_params",
            "remove_from_other_config",
            "remove_from_qos_algorithm_params",
            "set_bootable",
            "set_other_config",
            "set_qos_algorithm_params",
            "set_qos_algorithm_type",
            "set_type",
            "set_unpluggable",
            "set_userdevice",
        ]
        .into_iter()
        .map(String::from)
        .chain(VBD.fields.iter().map(|f| format!("get_{}", f.name)))
        .collect();
        want.sort();
        assert_eq!(got, want);
    }

    /// A writable set of refs gets a getter only, as in xapi.
    #[test]
    fn rw_set_of_refs_gets_only_a_getter() {
        static REFS: Ty = Ty::Ref("VM");
        static FIELDS: &[Field] = &[Field {
            name: "members",
            ty: Ty::Set(&REFS),
            qualifier: Qualifier::RW,
            default: None,
            lifecycle: Lifecycle::Published,
        }];
        static GROUP: Class = Class {
            name: "group",
            fields: FIELDS,
            messages: &[],
            enums: &[],
            has_constructor: false,
            has_get_all: false,
            in_db: true,
            gen_events: true,
            writer_role: Role::PoolAdmin,
        };
        assert_eq!(names(&GROUP), ["get_record", "get_members"]);
    }
}
