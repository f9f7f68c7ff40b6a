//! The slots of a VM's devices: the names a VBD's `userdevice` and a VIF's `device` may take,
//! which are taken, and which a VM may still use (xapi's `allowed_VBD_devices` and
//! `allowed_VIF_devices`).

use crate::vm::operations::Overlay;

/// The disk slots of a VM that is not a control domain: xapi's 0 to 254.
const VM_DISKS: u64 = 255;
/// The disk slots of a control domain: 0 to 255.
const CONTROL_DOMAIN_DISKS: u64 = 256;
/// The NIC slots of any VM: 0 to 6.
const NICS: u64 = 7;

/// The slot a VBD's `userdevice` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VbdSlot {
    /// A disk or CD: `3`, or a Linux name such as `xvdd`, `hdd` or `sdd` (a partition number
    /// after it names the same disk).
    Disk(u64),
    /// A floppy drive: `fda` or `fdb`.
    Floppy(u64),
}

/// The slot `device` names, for a VBD of type Floppy when `is_floppy`; `None` for a name xapi
/// refuses (and for `autodetect`, which names no slot yet). A floppy drive has no number.
pub(crate) fn vbd_slot(device: &str, is_floppy: bool) -> Option<VbdSlot> {
    if let Ok(number) = device.parse::<u64>() {
        return (!is_floppy).then_some(VbdSlot::Disk(number));
    }
    let lettered = |prefix: &str, last: u8| {
        let rest = device.strip_prefix(prefix)?.as_bytes();
        let (&letter, partition) = rest.split_first()?;
        let is_partition = partition.iter().all(u8::is_ascii_digit);
        (letter.is_ascii_lowercase() && letter <= last && is_partition)
            .then(|| u64::from(letter - b'a'))
    };
    if let Some(number) = lettered("fd", b'b') {
        return Some(VbdSlot::Floppy(number));
    }
    ["xvd", "hd", "sd"]
        .into_iter()
        .find_map(|prefix| lettered(prefix, b'p'))
        .map(VbdSlot::Disk)
}

/// Whether `device` is a VIF device xapi takes: a number.
pub(crate) fn is_vif_device(device: &str) -> bool {
    device.parse::<u64>().is_ok()
}

/// The disk numbers `vm` may still give a VBD, in order.
pub(crate) fn free_vbd_disks(view: &Overlay, vm: &str) -> Vec<u64> {
    let used: Vec<VbdSlot> = view
        .children("VBD", "VM", vm)
        .iter()
        .filter_map(|vbd| vbd_slot(view.str("VBD", vbd, "userdevice"), false))
        .collect();
    let all = if view.bool("VM", vm, "is_control_domain") {
        CONTROL_DOMAIN_DISKS
    } else {
        VM_DISKS
    };
    (0..all)
        .filter(|n| !used.contains(&VbdSlot::Disk(*n)))
        .collect()
}

/// The VIF devices `vm` may still use, in order.
pub(crate) fn free_vif_devices(view: &Overlay, vm: &str) -> Vec<String> {
    let used: Vec<String> = view
        .children("VIF", "VM", vm)
        .iter()
        .map(|vif| view.str("VIF", vif, "device").to_owned())
        .collect();
    (0..NICS)
        .map(|n| n.to_string())
        .filter(|device| !used.contains(device))
        .collect()
}

#[cfg(test)]
mod tests {
    use api_spec::Value;

    use super::*;
    use crate::testing::TestPool;
    use crate::vm::operations::Draft;

    /// Numbers and Linux names name disks; floppies take only `fda` and `fdb`; anything else
    /// is refused.
    #[test]
    fn device_names_map_to_slots() {
        assert_eq!(vbd_slot("3", false), Some(VbdSlot::Disk(3)));
        assert_eq!(vbd_slot("xvdb", false), Some(VbdSlot::Disk(1)));
        assert_eq!(vbd_slot("hda1", false), Some(VbdSlot::Disk(0)));
        assert_eq!(vbd_slot("sdp", false), Some(VbdSlot::Disk(15)));
        assert_eq!(vbd_slot("fdb", true), Some(VbdSlot::Floppy(1)));
        for refused in ["", "xvdq", "xvd", "hdb!", "disk", "-1", "fdc"] {
            assert_eq!(vbd_slot(refused, false), None, "{refused}");
        }
        assert_eq!(vbd_slot("0", true), None);
        assert!(is_vif_device("2") && !is_vif_device("eth0"));
    }

    /// A VM's free slots leave out those its devices use, whatever the name they use.
    #[test]
    fn free_slots_leave_out_used_ones() {
        let pool = TestPool::new();
        let db = pool.read();
        let vm = db.refs_by_name_label("VM", "Other install media")[0].to_owned();
        let mut draft = Draft::new(&db);
        for device in ["0", "xvdc"] {
            draft.create(
                "VBD",
                [
                    ("VM", Value::str(vm.as_str())),
                    ("userdevice", Value::str(device)),
                ],
            );
        }
        draft.create(
            "VIF",
            [("VM", Value::str(vm.as_str())), ("device", Value::str("1"))],
        );
        let disks = free_vbd_disks(draft.view(), &vm);
        assert_eq!(disks[..3], [1, 3, 4]);
        assert_eq!(disks.len(), 253);
        assert_eq!(
            free_vif_devices(draft.view(), &vm),
            ["0", "2", "3", "4", "5", "6"]
        );
    }
}
