//! The classes as xe shows them, derived from api-spec: one view per class with
//! `get_all_records` (`vm`, `host-cpu`, …, plus xe's `template` and `snapshot` views of VM),
//! and each class's fields under their CLI names with their `( RO)` / `(MRW)` markers.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use api_spec::model::{Class, Field};
use api_spec::{Ty, api};

/// A class as the CLI lists it.
#[derive(Debug)]
pub struct View {
    /// The CLI name: `vm`, `host-cpu`, `template`.
    pub name: String,
    pub class: &'static Class,
    /// Filters `-list` and selectors apply unless the user filters on the same field
    /// (`vm-list` hides templates), as xapi's xe does.
    pub default_filters: &'static [(&'static str, &'static str)],
    /// The columns `-list` shows without `params=`; empty means every field.
    pub default_columns: &'static [&'static str],
}

/// The default columns of `-list`, as xapi's xe chooses them (presentation, not API: the
/// names are this CLI's). A class not listed shows its uuid and names.
const DEFAULT_COLUMNS: &[(&str, &[&str])] = &[
    (
        "pool",
        &[
            "uuid",
            "name-label",
            "name-description",
            "master",
            "default-SR",
        ],
    ),
    (
        "pif",
        &[
            "uuid",
            "device",
            "VLAN",
            "MAC",
            "network-uuid",
            "currently-attached",
        ],
    ),
    ("vif", &["uuid", "device", "vm-uuid", "network-uuid"]),
    (
        "network",
        &["uuid", "name-label", "name-description", "bridge"],
    ),
    (
        "console",
        &["uuid", "vm-uuid", "vm-name-label", "protocol", "location"],
    ),
    ("vm", &["uuid", "name-label", "power-state"]),
    ("template", &["uuid", "name-label", "name-description"]),
    (
        "snapshot",
        &[
            "uuid",
            "name-label",
            "name-description",
            "snapshot-of",
            "snapshot-time",
        ],
    ),
    ("host", &["uuid", "name-label", "name-description"]),
    (
        "host-cpu",
        &["uuid", "number", "vendor", "speed", "utilisation"],
    ),
    (
        "vdi",
        &[
            "uuid",
            "name-label",
            "name-description",
            "virtual-size",
            "read-only",
            "sharable",
            "sr-uuid",
        ],
    ),
    (
        "vbd",
        &[
            "uuid",
            "vm-uuid",
            "vm-name-label",
            "vdi-uuid",
            "device",
            "empty",
        ],
    ),
    (
        "sr",
        &[
            "uuid",
            "name-label",
            "name-description",
            "type",
            "content-type",
        ],
    ),
    (
        "pbd",
        &[
            "uuid",
            "host-uuid",
            "sr-uuid",
            "device-config",
            "currently-attached",
        ],
    ),
    (
        "task",
        &[
            "uuid",
            "name-label",
            "name-description",
            "status",
            "progress",
        ],
    ),
    ("message", &[]),
];

/// The extra views of VM that xapi's xe has, with their filters.
const VM_VIEWS: &[(&str, &[(&str, &str)])] = &[
    ("vm", &[("is-a-template", "false")]),
    (
        "template",
        &[("is-a-template", "true"), ("is-a-snapshot", "false")],
    ),
    ("snapshot", &[("is-a-snapshot", "true")]),
];

/// A class's CLI name: its wire name lower-cased, `_` → `-` (`VM_metrics` → `vm-metrics`).
pub fn cli_class_name(class: &str) -> String {
    class.to_ascii_lowercase().replace('_', "-")
}

fn default_columns(name: &str, class: &Class) -> &'static [&'static str] {
    if let Some((_, columns)) = DEFAULT_COLUMNS.iter().find(|(n, _)| *n == name) {
        return columns;
    }
    if class.has_name_label() {
        &["uuid", "name-label", "name-description"]
    } else {
        &["uuid"]
    }
}

static VIEWS: LazyLock<Vec<View>> = LazyLock::new(|| {
    let mut views = Vec::new();
    for class in api().classes.iter().copied() {
        let listable = api()
            .method(&format!("{}.get_all_records", class.name))
            .is_some();
        if !listable || !class.has_uuid() {
            continue;
        }
        if class.name == "VM" {
            for (name, filters) in VM_VIEWS {
                views.push(View {
                    name: (*name).to_owned(),
                    class,
                    default_filters: filters,
                    default_columns: default_columns(name, class),
                });
            }
            continue;
        }
        let name = cli_class_name(class.name);
        views.push(View {
            default_columns: default_columns(&name, class),
            name,
            class,
            default_filters: &[],
        });
    }
    views
});

/// Every view, in api-spec's class order.
pub fn views() -> &'static [View] {
    &VIEWS
}

/// The view with this CLI name.
pub fn view(name: &str) -> Option<&'static View> {
    views().iter().find(|v| v.name == name)
}

/// The main view of a class (`vm` for VM).
pub fn view_of(class: &str) -> Option<&'static View> {
    views().iter().find(|v| v.class.name == class)
}

/// A field under its CLI name.
#[derive(Debug)]
pub struct CliField {
    pub name: String,
    pub field: &'static Field,
    /// Shows the name of the object referred to rather than its uuid (`vm-name-label`).
    pub shows_name: bool,
    /// Whether `-param-set` (or `-param-add` for sets and maps) can change it.
    pub writable: bool,
}

impl CliField {
    /// `( RO)`, `( RW)`, `(SRO)`, `(SRW)`, `(MRO)` or `(MRW)`.
    pub fn marker(&self) -> &'static str {
        match (self.collection(), self.writable) {
            (Some('S'), false) => "(SRO)",
            (Some('S'), true) => "(SRW)",
            (Some(_), false) => "(MRO)",
            (Some(_), true) => "(MRW)",
            (None, false) => "( RO)",
            (None, true) => "( RW)",
        }
    }

    /// `S` for a set, `M` for a map.
    fn collection(&self) -> Option<char> {
        if self.shows_name {
            return None;
        }
        match self.field.ty {
            Ty::Set(_) => Some('S'),
            Ty::Map(..) => Some('M'),
            _ => None,
        }
    }

    pub fn is_map(&self) -> bool {
        self.collection() == Some('M')
    }

    pub fn is_set(&self) -> bool {
        self.collection() == Some('S')
    }
}

/// The CLI name of a field: its name with `_` → `-`, keeping xapi's capitals (`VCPUs-max`);
/// a reference named after its class is shown as that object's uuid, so it is `<class>-uuid`
/// (`VBD.VM` → `vm-uuid`, `PBD.SR` → `sr-uuid`).
pub fn cli_field_name(field: &Field) -> String {
    match field.ty {
        Ty::Ref(target) if target.eq_ignore_ascii_case(field.name) => {
            format!("{}-uuid", cli_class_name(target))
        }
        _ => field.name.replace('_', "-"),
    }
}

fn has_method(class: &Class, name: &str) -> bool {
    api()
        .method(&format!("{}.{name}", class.name))
        .is_some_and(|m| !m.is_removed)
}

fn is_writable(class: &Class, field: &Field) -> bool {
    let name = field.name;
    has_method(class, &format!("set_{name}"))
        || match field.ty {
            Ty::Set(_) => has_method(class, &format!("add_{name}")),
            Ty::Map(..) => has_method(class, &format!("add_to_{name}")),
            _ => false,
        }
}

fn derive_fields(class: &'static Class) -> Vec<CliField> {
    let mut out = Vec::new();
    for field in class.fields {
        out.push(CliField {
            name: cli_field_name(field),
            field,
            shows_name: false,
            writable: is_writable(class, field),
        });
        // xe also shows the name of the object a `<class>-uuid` field refers to.
        if let Ty::Ref(target) = field.ty
            && target.eq_ignore_ascii_case(field.name)
            && api().class(target).is_some_and(Class::has_name_label)
        {
            out.push(CliField {
                name: format!("{}-name-label", cli_class_name(target)),
                field,
                shows_name: true,
                writable: false,
            });
        }
    }
    out
}

static FIELDS: LazyLock<BTreeMap<&'static str, Vec<CliField>>> = LazyLock::new(|| {
    api()
        .classes
        .iter()
        .map(|c| (c.name, derive_fields(c)))
        .collect()
});

/// Every field of a class under its CLI name, in declaration order (uuid first).
pub fn fields(class: &Class) -> &'static [CliField] {
    FIELDS.get(class.name).map_or(&[], Vec::as_slice)
}

/// The field with this CLI name.
pub fn field(class: &Class, name: &str) -> Option<&'static CliField> {
    fields(class).iter().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every default column names a field of its view's class, so the table stays true to the
    /// model.
    #[test]
    fn every_default_column_is_a_field_of_its_class() {
        for view in views() {
            for column in view.default_columns {
                assert!(
                    field(view.class, column).is_some(),
                    "{}: no field {column}",
                    view.name
                );
            }
            for (name, _) in view.default_filters {
                assert!(field(view.class, name).is_some(), "{}: {name}", view.name);
            }
        }
    }

    /// The views are xe's class names, with the template and snapshot views of VM.
    #[test]
    fn views_have_xe_class_names() {
        let names: Vec<&str> = views().iter().map(|v| v.name.as_str()).collect();
        for want in [
            "pool",
            "host",
            "host-cpu",
            "vm",
            "template",
            "snapshot",
            "vm-metrics",
            "vbd",
            "vdi",
            "sr",
            "pbd",
            "vif",
            "network",
            "pif",
            "console",
            "task",
            "message",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        assert!(!names.contains(&"session") && !names.contains(&"event"));
    }

    /// CLI names keep xapi's capitals, and references named after their class are uuids.
    #[test]
    fn field_names_follow_xe() {
        let vm = api().class("VM").expect("VM");
        let vbd = api().class("VBD").expect("VBD");
        assert!(field(vm, "VCPUs-max").is_some());
        assert!(field(vm, "power-state").is_some());
        assert!(field(vm, "resident-on").is_some());
        assert!(field(vbd, "vm-uuid").is_some());
        assert!(field(vbd, "vm-name-label").is_some_and(|f| f.shows_name));
    }

    /// Markers follow the type and the setters the API has.
    #[test]
    fn markers_follow_type_and_setters() {
        let vm = api().class("VM").expect("VM");
        let marker = |name: &str| field(vm, name).expect(name).marker();
        assert_eq!(marker("uuid"), "( RO)");
        assert_eq!(marker("name-label"), "( RW)");
        assert_eq!(marker("VCPUs-max"), "( RW)");
        assert_eq!(marker("power-state"), "( RO)");
        assert_eq!(marker("tags"), "(SRW)");
        assert_eq!(marker("allowed-operations"), "(SRO)");
        assert_eq!(marker("other-config"), "(MRW)");
        assert_eq!(marker("last-boot-CPU-flags"), "(MRO)");
    }
}
