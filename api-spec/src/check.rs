//! The model's invariants: what the declarations must satisfy for dispatch, the DB and the
//! derived messages to work. `check` lists every violation; the tests below keep the list empty.

use std::collections::BTreeSet;

use crate::api::Api;
use crate::coerce::coerce;
use crate::errors;
use crate::implicit;
use crate::model::{Class, Lifecycle, Relation};
use crate::types::{EnumDecl, Lit, Qualifier, Ty};

/// Every invariant the model violates, one sentence each; empty when the model is sound.
pub fn check(api: &Api) -> Vec<String> {
    let mut problems = Vec::new();
    problems.extend(check_names(api.classes));
    problems.extend(check_defaults(api.classes));
    problems.extend(check_relations(api.classes, api.relations));
    problems.extend(check_error_codes(api.classes));
    problems.extend(check_enums(api.classes));
    problems.extend(check_messages(api.classes));
    problems.extend(check_wire_names(api));
    problems
}

/// Names that must be unique: classes (also ignoring case, as `event.from` matches them),
/// fields and explicit messages per class, parameters per message.
fn check_names(classes: &[&'static Class]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for class in classes {
        if !seen.insert(class.name.to_ascii_lowercase()) {
            problems.push(format!("class {} is declared twice", class.name));
        }
        problems.extend(
            duplicates(class.fields.iter().map(|f| f.name))
                .map(|name| format!("{}.{name}: field declared twice", class.name)),
        );
        problems.extend(
            duplicates(class.messages.iter().map(|m| m.name))
                .map(|name| format!("{}.{name}: message declared twice", class.name)),
        );
        for message in class.messages {
            problems.extend(
                duplicates(message.params.iter().map(|p| p.name)).map(|name| {
                    format!(
                        "{}.{}: parameter {name} declared twice",
                        class.name, message.name
                    )
                }),
            );
        }
    }
    problems
}

/// Field and parameter defaults fit their types; removed fields are not declared.
fn check_defaults(classes: &[&'static Class]) -> Vec<String> {
    let mut problems = Vec::new();
    for class in classes {
        for field in class.fields {
            if field.lifecycle == Lifecycle::Removed {
                problems.push(format!(
                    "{}.{}: removed fields are not declared",
                    class.name, field.name
                ));
            }
            if let Some(default) = &field.default
                && !fits(&field.ty, default)
            {
                problems.push(format!(
                    "{}.{}: default {default:?} is not a {:?}",
                    class.name, field.name, field.ty
                ));
            }
        }
        for message in class.messages {
            for param in message.params {
                if let Some(default) = &param.default
                    && !fits(&param.ty, default)
                {
                    problems.push(format!(
                        "{}.{}: default of {} {default:?} is not a {:?}",
                        class.name, message.name, param.name, param.ty
                    ));
                }
            }
        }
    }
    problems
}

fn fits(ty: &Ty, default: &Lit) -> bool {
    coerce(ty, default.to_value()).is_ok()
}

/// Both ends of each relation exist: the one end is a ref to the many class, the many end a
/// DynamicRO set of refs to the one class; no field is an end of two relations.
fn check_relations(classes: &[&'static Class], relations: &[Relation]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut ends = BTreeSet::new();
    for r in relations {
        let name = format!(
            "relation {}.{} <-> {}.{}",
            r.one_class, r.one_field, r.many_class, r.many_field
        );
        for end in [(r.one_class, r.one_field), (r.many_class, r.many_field)] {
            if !ends.insert(end) {
                problems.push(format!("{name}: {}.{} is already an end", end.0, end.1));
            }
        }
        let field = |class: &str, field: &str| {
            let class = classes.iter().find(|c| c.name == class)?;
            class.field(field)
        };
        match field(r.one_class, r.one_field) {
            None => problems.push(format!("{name}: the one end is not declared")),
            Some(one) if one.ty != Ty::Ref(r.many_class) => problems.push(format!(
                "{name}: the one end is a {:?}, not a ref to {}",
                one.ty, r.many_class
            )),
            Some(_) => {}
        }
        match field(r.many_class, r.many_field) {
            None => problems.push(format!("{name}: the many end is not declared")),
            Some(many) => {
                if !matches!(many.ty, Ty::Set(Ty::Ref(class)) if *class == r.one_class) {
                    problems.push(format!(
                        "{name}: the many end is a {:?}, not a set of refs to {}",
                        many.ty, r.one_class
                    ));
                }
                if many.qualifier != Qualifier::DynamicRO {
                    problems.push(format!("{name}: the many end is not DynamicRO"));
                }
            }
        }
    }
    problems
}

/// Every error code a message lists is declared in `errors.rs`.
fn check_error_codes(classes: &[&'static Class]) -> Vec<String> {
    let mut problems = Vec::new();
    for class in classes {
        for message in class.messages {
            for code in message.errors {
                if errors::decl(code).is_none() {
                    problems.push(format!(
                        "{}.{}: error {code} is not declared",
                        class.name, message.name
                    ));
                }
            }
        }
    }
    for pair in errors::ERRORS.windows(2) {
        if pair[0].code >= pair[1].code {
            problems.push(format!(
                "errors: {} is not sorted before {}",
                pair[0].code, pair[1].code
            ));
        }
    }
    problems
}

/// Every enum a type uses is declared by exactly one class, under a unique name, with
/// distinct values.
fn check_enums(classes: &[&'static Class]) -> Vec<String> {
    let mut problems = Vec::new();
    let declared: Vec<&'static EnumDecl> = classes
        .iter()
        .flat_map(|c| c.enums.iter().copied())
        .collect();
    problems.extend(
        duplicates(declared.iter().map(|e| e.name))
            .map(|name| format!("enum {name} is declared twice")),
    );
    for decl in &declared {
        problems.extend(
            duplicates(decl.values.iter().copied())
                .map(|value| format!("enum {}: value {value} listed twice", decl.name)),
        );
    }
    for class in classes {
        let types =
            class
                .fields
                .iter()
                .map(|f| (f.name, f.ty))
                .chain(class.messages.iter().flat_map(|m| {
                    m.params
                        .iter()
                        .map(move |p| (m.name, p.ty))
                        .chain(m.result.map(|ty| (m.name, ty)))
                }));
        for (user, ty) in types {
            for used in enums_in(&ty) {
                if !declared.iter().any(|d| std::ptr::eq(*d, used)) {
                    problems.push(format!(
                        "{}.{user}: enum {} is not declared by any class",
                        class.name, used.name
                    ));
                }
            }
        }
    }
    problems
}

fn enums_in(ty: &Ty) -> Vec<&'static EnumDecl> {
    match *ty {
        Ty::Enum(decl) => vec![decl],
        Ty::Set(inner) | Ty::Option(inner) => enums_in(inner),
        Ty::Map(key, value) => {
            let mut found = enums_in(key);
            found.extend(enums_in(value));
            found
        }
        _ => Vec::new(),
    }
}

/// Messages are well formed: defaulted parameters come last (callers may only leave out a
/// trailing run), and a message called without a session has no `Async.` form.
fn check_messages(classes: &[&'static Class]) -> Vec<String> {
    let mut problems = Vec::new();
    for class in classes {
        for message in class.messages {
            let first_default = message.params.iter().position(|p| p.default.is_some());
            if let Some(first) = first_default
                && message.params[first..].iter().any(|p| p.default.is_none())
            {
                problems.push(format!(
                    "{}.{}: a parameter without a default follows a defaulted one",
                    class.name, message.name
                ));
            }
            if !message.takes_session && message.has_async {
                problems.push(format!(
                    "{}.{}: an Async form needs a session",
                    class.name, message.name
                ));
            }
        }
    }
    problems
}

/// Every wire method name is unique: the derived messages of a class do not collide with each
/// other, and the API table holds exactly the declared and derived names (an explicit message
/// may replace a derived one of the same name, as `message.get_record` does).
fn check_wire_names(api: &Api) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expected = BTreeSet::new();
    for class in api.classes {
        let derived: Vec<String> = implicit::derive(class)
            .into_iter()
            .map(|m| m.name)
            .collect();
        problems.extend(
            duplicates(derived.iter().map(String::as_str))
                .map(|name| format!("{}.{name}: derived twice", class.name)),
        );
        let names = derived.iter().map(String::as_str);
        expected.extend(
            names
                .chain(class.messages.iter().map(|m| m.name))
                .map(|name| format!("{}.{name}", class.name)),
        );
    }
    let table: BTreeSet<String> = api.methods().map(|m| m.wire_name.clone()).collect();
    for missing in expected.difference(&table) {
        problems.push(format!("{missing}: missing from the API table"));
    }
    for extra in table.difference(&expected) {
        problems.push(format!(
            "{extra}: in the API table but not declared or derived"
        ));
    }
    problems
}

/// The items that occur more than once, each reported once.
fn duplicates<'a>(items: impl Iterator<Item = &'a str>) -> impl Iterator<Item = &'a str> {
    let mut seen = BTreeSet::new();
    let mut reported = BTreeSet::new();
    items
        .filter(move |item| !seen.insert(*item))
        .filter(move |item| reported.insert(*item))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{MODEL_VERSION, api};
    use crate::classes::{ALL, RELATIONS};
    use crate::model::{Field, Message, Param};
    use crate::roles::Role;

    /// The version and hash of the model this crate was last released with.
    const RECORDED_MODEL: (u32, u64) = (9, 0x03fe_6a58_d8f4_c532);

    /// 64-bit FNV-1a: small, stable across platforms and releases.
    fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash
    }

    fn model_hash() -> u64 {
        let mut hash = 0xcbf2_9ce4_8422_2325;
        for class in ALL {
            hash = fnv1a(format!("{class:?}").as_bytes(), hash);
        }
        for relation in RELATIONS {
            hash = fnv1a(format!("{relation:?}").as_bytes(), hash);
        }
        for error in errors::ERRORS {
            hash = fnv1a(format!("{error:?}").as_bytes(), hash);
        }
        hash
    }

    fn assert_none(problems: Vec<String>) {
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// The whole model passes every check.
    #[test]
    fn the_model_has_no_problems() {
        assert_none(check(api()));
    }

    /// Every class the issue asks for is declared.
    #[test]
    fn every_class_the_issue_lists_is_declared() {
        let wanted = [
            "session",
            "pool",
            "host",
            "host_metrics",
            "host_cpu",
            "VM",
            "VM_metrics",
            "VM_guest_metrics",
            "VBD",
            "VDI",
            "SR",
            "PBD",
            "VIF",
            "network",
            "PIF",
            "console",
            "task",
            "message",
            "event",
        ];
        for name in wanted {
            assert!(api().class(name).is_some(), "{name} is not declared");
        }
    }

    /// Class, field, message and parameter names are unique.
    #[test]
    fn names_are_unique() {
        assert_none(check_names(ALL));
    }

    /// Every default fits the type of its field or parameter.
    #[test]
    fn every_default_fits_its_type() {
        assert_none(check_defaults(ALL));
    }

    /// Both ends of each relation exist, with a ref at the one end and a DynamicRO set of refs
    /// at the many end.
    #[test]
    fn relations_have_both_ends_with_matching_types() {
        assert_none(check_relations(ALL, RELATIONS));
    }

    /// Every error a message lists is declared.
    #[test]
    fn every_listed_error_is_declared() {
        assert_none(check_error_codes(ALL));
    }

    /// Every wire method name is unique and in the API table.
    #[test]
    fn every_wire_method_name_is_unique() {
        assert_none(check_wire_names(api()));
    }

    /// The model only changes together with `MODEL_VERSION`.
    #[test]
    fn model_hash_matches_the_recorded_version() {
        let hash = model_hash();
        assert_eq!(
            (MODEL_VERSION, hash),
            RECORDED_MODEL,
            "the model changed: if on purpose, bump MODEL_VERSION in api.rs and record \
             (the new version, {hash:#x}) as RECORDED_MODEL in check.rs"
        );
    }

    static HOST_REF: Ty = Ty::Ref("host");
    static BROKEN_FIELDS: &[Field] = &[
        Field::static_ro("host", Ty::Ref("host")),
        Field::rw("VMs", Ty::Set(&HOST_REF)),
        Field::rw("size", Ty::Int).default(Lit::Str("big")),
        Field::rw("size", Ty::Int),
    ];
    static BROKEN_MESSAGES: &[Message] = &[Message::new("start", Role::VmOperator)
        .params(&[
            Param::new("force", Ty::Bool).default(Lit::Bool(false)),
            Param::new("host", Ty::Ref("host")),
        ])
        .errors(&["NO_SUCH_CODE"])
        .without_session()];
    static BROKEN: Class = Class {
        name: "broken",
        fields: BROKEN_FIELDS,
        messages: BROKEN_MESSAGES,
        enums: &[],
        has_constructor: false,
        has_get_all: false,
        in_db: true,
        gen_events: true,
        writer_role: Role::PoolAdmin,
    };

    /// A relation whose ends have the wrong types or qualifier is reported.
    #[test]
    fn relations_with_wrong_ends_are_reported() {
        let relation = Relation {
            one_class: "broken",
            one_field: "host",
            many_class: "broken",
            many_field: "VMs",
        };
        let problems = check_relations(&[&BROKEN], &[relation]);
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    /// A default of the wrong type, a duplicate field, an undeclared error, a required
    /// parameter after a defaulted one and an Async form without a session are all reported.
    #[test]
    fn broken_declarations_are_reported() {
        let classes: &[&'static Class] = &[&BROKEN];
        assert_eq!(check_defaults(classes).len(), 1);
        assert_eq!(check_names(classes).len(), 1);
        assert_eq!(check_error_codes(classes).len(), 1);
        assert_eq!(check_messages(classes).len(), 2);
    }
}
