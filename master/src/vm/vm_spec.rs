//! `VmSpec`: everything an agent needs to run a VM, read from the DB at the time of the
//! action: memory, VCPUs, platform, boot parameters, what to do after a shutdown, reboot or
//! crash, the disks (with their image's location and size; empty CD drives without one) and
//! the NICs (with their network's bridge).

use std::collections::BTreeMap;

use crate::storage::sr_spec::sr_spec;
use crate::vm::operations::Overlay;
use host_api::{AfterCrash, AfterShutdown, DiskSpec, VbdKind, VbdSpec, VifSpec, VmSpec};

/// The fields of a VM that its spec is built from (its devices aside): a write to one of them
/// changes what the agent of a running domain must know.
pub(crate) static SPEC_FIELDS: &[&str] = &[
    "uuid",
    "name_label",
    "domain_type",
    "HVM_boot_policy",
    "memory_static_max",
    "memory_dynamic_min",
    "memory_dynamic_max",
    "VCPUs_max",
    "VCPUs_at_startup",
    "VCPUs_params",
    "platform",
    "HVM_boot_params",
    "PV_kernel",
    "PV_ramdisk",
    "PV_args",
    "PV_bootloader",
    "actions_after_shutdown",
    "actions_after_reboot",
    "actions_after_crash",
];

/// A count or size from the DB as the unsigned number an agent takes (negatives are 0).
fn unsigned<T: TryFrom<i64> + Default>(value: i64) -> T {
    T::try_from(value.max(0)).unwrap_or_default()
}

/// The domain type a VM boots as: its `domain_type`, or for `unspecified` what xapi derives
/// from the boot policy (HVM when one is set).
pub(crate) fn domain_type(view: &Overlay, vm: &str) -> String {
    match view.str("VM", vm, "domain_type") {
        "" | "unspecified" if view.str("VM", vm, "HVM_boot_policy").is_empty() => "pv".to_owned(),
        "" | "unspecified" => "hvm".to_owned(),
        other => other.to_owned(),
    }
}

fn after_shutdown(value: &str) -> AfterShutdown {
    match value {
        "restart" => AfterShutdown::Restart,
        _ => AfterShutdown::Destroy,
    }
}

fn after_crash(value: &str) -> AfterCrash {
    match value {
        "coredump_and_destroy" => AfterCrash::CoredumpAndDestroy,
        "restart" => AfterCrash::Restart,
        "coredump_and_restart" => AfterCrash::CoredumpAndRestart,
        "preserve" => AfterCrash::Preserve,
        "rename_restart" => AfterCrash::RenameRestart,
        _ => AfterCrash::Destroy,
    }
}

/// The image behind a VDI, with its SR as a host where the SR is attached reaches it.
pub(crate) fn disk(view: &Overlay, vdi: &str) -> DiskSpec {
    DiskSpec {
        vdi_uuid: view.str("VDI", vdi, "uuid").to_owned(),
        sr: sr_spec(view, view.str("VDI", vdi, "SR")),
        location: view.str("VDI", vdi, "location").to_owned(),
        virtual_size_bytes: unsigned(view.int("VDI", vdi, "virtual_size")),
    }
}

/// A VBD as the agent plugs it.
pub(crate) fn vbd(view: &Overlay, vbd: &str) -> VbdSpec {
    let vdi = view.str("VBD", vbd, "VDI");
    let has_disk = !view.bool("VBD", vbd, "empty") && view.exists("VDI", vdi);
    VbdSpec {
        uuid: view.str("VBD", vbd, "uuid").to_owned(),
        device: view.str("VBD", vbd, "userdevice").to_owned(),
        kind: match view.str("VBD", vbd, "type") {
            "CD" => VbdKind::Cd,
            "Floppy" => VbdKind::Floppy,
            _ => VbdKind::Disk,
        },
        read_only: view.str("VBD", vbd, "mode") == "RO",
        bootable: view.bool("VBD", vbd, "bootable"),
        disk: has_disk.then(|| disk(view, vdi)),
    }
}

/// A VIF as the agent plugs it.
pub(crate) fn vif(view: &Overlay, vif: &str) -> VifSpec {
    let network = view.str("VIF", vif, "network");
    VifSpec {
        uuid: view.str("VIF", vif, "uuid").to_owned(),
        device: view.str("VIF", vif, "device").to_owned(),
        mac: view.str("VIF", vif, "MAC").to_owned(),
        mtu: unsigned(view.int("VIF", vif, "MTU")),
        bridge: view.str("network", network, "bridge").to_owned(),
    }
}

/// Device numbers order numerically ("2" before "10"); others after, by text.
fn device_order(device: &str) -> (u64, String) {
    (device.parse().unwrap_or(u64::MAX), device.to_owned())
}

/// The spec of `vm` as `view` holds it.
pub(crate) fn build(view: &Overlay, vm: &str) -> VmSpec {
    let text = |field| view.str("VM", vm, field).to_owned();
    let map = |field| -> BTreeMap<String, String> { view.string_map("VM", vm, field) };
    let mut vbds: Vec<VbdSpec> = view
        .children("VBD", "VM", vm)
        .iter()
        .map(|r| vbd(view, r))
        .collect();
    vbds.sort_by_key(|v| device_order(&v.device));
    let mut vifs: Vec<VifSpec> = view
        .children("VIF", "VM", vm)
        .iter()
        .map(|r| vif(view, r))
        .collect();
    vifs.sort_by_key(|v| device_order(&v.device));
    VmSpec {
        uuid: text("uuid"),
        name_label: text("name_label"),
        domain_type: domain_type(view, vm),
        memory_static_max_bytes: unsigned(view.int("VM", vm, "memory_static_max")),
        memory_dynamic_min_bytes: unsigned(view.int("VM", vm, "memory_dynamic_min")),
        memory_dynamic_max_bytes: unsigned(view.int("VM", vm, "memory_dynamic_max")),
        vcpus_max: unsigned(view.int("VM", vm, "VCPUs_max")),
        vcpus_at_startup: unsigned(view.int("VM", vm, "VCPUs_at_startup")),
        vcpus_params: map("VCPUs_params"),
        platform: map("platform"),
        hvm_boot_params: map("HVM_boot_params"),
        pv_kernel: text("PV_kernel"),
        pv_ramdisk: text("PV_ramdisk"),
        pv_args: text("PV_args"),
        pv_bootloader: text("PV_bootloader"),
        on_shutdown: after_shutdown(view.str("VM", vm, "actions_after_shutdown")),
        on_reboot: after_shutdown(view.str("VM", vm, "actions_after_reboot")),
        on_crash: after_crash(view.str("VM", vm, "actions_after_crash")),
        vbds,
        vifs,
    }
}

#[cfg(test)]
mod tests {
    use api_spec::{NULL_REF, Value};

    use super::*;
    use crate::testing::TestPool;
    use crate::vm::operations::Draft;

    /// A VM's spec carries its memory, VCPUs, platform and actions, its disks in device
    /// order with their image and SR (an empty CD without one) and its NICs with their bridge.
    #[test]
    fn the_spec_carries_resources_disks_and_nics() {
        let pool = TestPool::new();
        let sr = pool.refs("SR").remove(0);
        let network = pool.refs("network").remove(0);
        let db = pool.read();
        let template = db.refs_by_name_label("VM", "Debian Bookworm 12")[0].to_owned();
        let mut draft = Draft::new(&db);
        let vdi = draft.create(
            "VDI",
            [
                ("SR", Value::str(sr.as_str())),
                ("location", Value::str("disk-0.qcow2")),
                ("virtual_size", Value::Int(10 << 30)),
            ],
        );
        for (device, vdi, kind, empty) in [
            ("10", vdi.as_str(), "Disk", false),
            ("2", NULL_REF, "CD", true),
        ] {
            draft.create(
                "VBD",
                [
                    ("VM", Value::str(template.as_str())),
                    ("VDI", Value::str(vdi)),
                    ("userdevice", Value::str(device)),
                    ("type", Value::str(kind)),
                    ("empty", Value::Bool(empty)),
                    ("mode", Value::str(if empty { "RO" } else { "RW" })),
                ],
            );
        }
        draft.create(
            "VIF",
            [
                ("VM", Value::str(template.as_str())),
                ("network", Value::str(network.as_str())),
                ("device", Value::str("0")),
                ("MAC", Value::str("02:00:00:00:00:02")),
                ("MTU", Value::Int(1500)),
            ],
        );
        let spec = build(draft.view(), &template);
        assert_eq!(spec.name_label, "Debian Bookworm 12");
        assert_eq!(spec.domain_type, "hvm");
        assert_eq!(spec.memory_dynamic_max_bytes, 1 << 30);
        assert_eq!((spec.vcpus_max, spec.vcpus_at_startup), (1, 1));
        assert_eq!(spec.platform.get("acpi").map(String::as_str), Some("1"));
        assert_eq!(spec.on_reboot, AfterShutdown::Restart);
        assert_eq!(spec.on_crash, AfterCrash::Restart);
        let devices: Vec<&str> = spec.vbds.iter().map(|v| v.device.as_str()).collect();
        assert_eq!(devices, ["2", "10"]);
        assert_eq!(spec.vbds[0].kind, VbdKind::Cd);
        assert_eq!(spec.vbds[0].disk, None);
        let disk = spec.vbds[1].disk.as_ref().expect("a disk");
        assert_eq!(disk.location, "disk-0.qcow2");
        assert_eq!(disk.sr.uuid, pool.text("SR", &sr, "uuid"));
        assert_eq!(disk.sr.sr_type, "ext");
        assert_eq!(disk.sr.location, "/var/lib/oxapi/sr");
        assert_eq!(disk.virtual_size_bytes, 10 << 30);
        assert!(!spec.vbds[1].read_only);
        assert_eq!(spec.vifs[0].bridge, "xenbr0");
        assert_eq!(spec.vifs[0].mtu, 1500);
    }

    /// Writing any field of `SPEC_FIELDS` changes the spec, and writing a field outside it
    /// (the VM's description) does not: the list is what `build` reads.
    #[test]
    fn spec_fields_are_what_the_spec_reads() {
        let pool = TestPool::new();
        let db = pool.read();
        let vm = db.refs_by_name_label("VM", "Other install media")[0].to_owned();
        let unspecified = |draft: &mut Draft| {
            draft.set("VM", &vm, "domain_type", Value::str("unspecified"));
        };
        let mut draft = Draft::new(&db);
        unspecified(&mut draft);
        let before = build(draft.view(), &vm);
        for field in SPEC_FIELDS {
            let mut draft = Draft::new(&db);
            unspecified(&mut draft);
            let value = match draft.view().field("VM", &vm, field) {
                Some(Value::Int(n)) => Value::Int(n + 1),
                Some(Value::Struct(_)) => Value::Struct([("k".to_owned(), Value::str("v"))].into()),
                _ => Value::str(match *field {
                    "domain_type" => "pv",
                    "actions_after_shutdown" => "restart",
                    "actions_after_reboot" => "destroy",
                    "actions_after_crash" => "preserve",
                    "HVM_boot_policy" => "",
                    _ => "changed",
                }),
            };
            draft.set("VM", &vm, field, value);
            assert_ne!(build(draft.view(), &vm), before, "{field}");
        }
        let mut draft = Draft::new(&db);
        unspecified(&mut draft);
        draft.set("VM", &vm, "name_description", Value::str("changed"));
        assert_eq!(build(draft.view(), &vm), before);
    }
}
