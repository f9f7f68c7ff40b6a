//! Builders of VM specs and domains for the agent's tests (and the integration tests in
//! `member/tests/agent_*.rs`).

use std::collections::BTreeMap;

use host_api::{AfterCrash, AfterShutdown, DiskSpec, SrSpec, VbdKind, VbdSpec, VifSpec, VmSpec};

use crate::backend::{Domain, RunState};

const MIB: u64 = 1024 * 1024;

/// A halted VM named `name` with a fresh uuid, 2 VCPUs (4 at most), 256 MiB, `disks` read-write
/// disks and `nics` NICs; guest shutdowns and reboots destroy, crashes preserve.
pub fn vm_spec(name: &str, disks: usize, nics: usize) -> VmSpec {
    VmSpec {
        uuid: uuid::Uuid::new_v4().to_string(),
        name_label: name.to_owned(),
        domain_type: "hvm".to_owned(),
        memory_static_max_bytes: 512 * MIB,
        memory_dynamic_min_bytes: 128 * MIB,
        memory_dynamic_max_bytes: 256 * MIB,
        vcpus_max: 4,
        vcpus_at_startup: 2,
        vcpus_params: BTreeMap::new(),
        platform: BTreeMap::new(),
        hvm_boot_params: BTreeMap::from([("order".to_owned(), "cd".to_owned())]),
        pv_kernel: String::new(),
        pv_ramdisk: String::new(),
        pv_args: String::new(),
        pv_bootloader: String::new(),
        on_shutdown: AfterShutdown::Destroy,
        on_reboot: AfterShutdown::Restart,
        on_crash: AfterCrash::Preserve,
        vbds: (0..disks).map(|i| hard_disk(name, i)).collect(),
        vifs: (0..nics).map(nic).collect(),
    }
}

/// A read-write disk at `device`, bootable when it is the first.
pub fn hard_disk(name: &str, device: usize) -> VbdSpec {
    VbdSpec {
        uuid: uuid::Uuid::new_v4().to_string(),
        device: device.to_string(),
        kind: VbdKind::Disk,
        read_only: false,
        bootable: device == 0,
        disk: Some(disk(&format!("{name}-disk-{device}"))),
    }
}

/// An empty, read-only CD drive at `device`.
pub fn cd_drive(device: usize) -> VbdSpec {
    VbdSpec {
        uuid: uuid::Uuid::new_v4().to_string(),
        device: device.to_string(),
        kind: VbdKind::Cd,
        read_only: true,
        bootable: false,
        disk: None,
    }
}

/// A NIC at `device` on `xenbr0`.
pub fn nic(device: usize) -> VifSpec {
    VifSpec {
        uuid: uuid::Uuid::new_v4().to_string(),
        device: device.to_string(),
        mac: format!("02:00:00:00:00:{:02x}", device % 256),
        mtu: 1500,
        bridge: "xenbr0".to_owned(),
    }
}

/// A 1 GiB image at `location` in an SR of type `ext` at `/srs/sr`.
pub fn disk(location: &str) -> DiskSpec {
    DiskSpec {
        vdi_uuid: uuid::Uuid::new_v4().to_string(),
        sr: SrSpec {
            uuid: "sr".to_owned(),
            sr_type: "ext".to_owned(),
            location: "/srs/sr".to_owned(),
        },
        location: location.to_owned(),
        virtual_size_bytes: 1024 * MIB,
    }
}

/// The running, complete domain a start of `spec` makes, as domid 1.
pub fn domain_of(spec: &VmSpec) -> Domain {
    Domain {
        domid: 1,
        state: RunState::Running,
        spec: spec.clone(),
        is_built: true,
        needs_poweroff: false,
        memory_actual_bytes: spec.memory_dynamic_max_bytes,
        vcpus: spec.vcpus_at_startup,
        vbds: spec.vbds.clone(),
        vifs: spec.vifs.clone(),
        has_device_model: true,
        consoles: Vec::new(),
    }
}
