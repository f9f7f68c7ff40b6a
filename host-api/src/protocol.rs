//! The version of the master↔agent frames. Two hosts tell each other theirs when their peer
//! stream opens; a master sends no action to a host whose version differs (a rolling upgrade
//! puts two versions in one pool), and the call that needed it fails with
//! `VM_HOST_INCOMPATIBLE_VERSION`.
//!
//! The test below hashes an encoding of every kind of frame: a change to any of them fails it
//! until `PROTOCOL_VERSION` is raised and the new hash recorded.

/// The version of the frames this crate declares.
pub const PROTOCOL_VERSION: u32 = 2;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sha2::{Digest, Sha256};

    use super::PROTOCOL_VERSION;
    use crate::*;

    /// The version and the hash of its frames, as last recorded.
    const RECORDED: (u32, &str) = (
        2,
        "8d63f93742ee37db0c8d5d5c8c738ea1023f791a9718db85d6dfedb7619fe6f5",
    );

    fn vm_spec() -> VmSpec {
        VmSpec {
            uuid: "vm".to_owned(),
            name_label: "name".to_owned(),
            domain_type: "hvm".to_owned(),
            memory_static_max_bytes: 3,
            memory_dynamic_min_bytes: 1,
            memory_dynamic_max_bytes: 2,
            vcpus_max: 4,
            vcpus_at_startup: 2,
            platform: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
            hvm_boot_params: BTreeMap::from([("order".to_owned(), "cd".to_owned())]),
            pv_kernel: "kernel".to_owned(),
            pv_ramdisk: "ramdisk".to_owned(),
            pv_args: "args".to_owned(),
            pv_bootloader: "loader".to_owned(),
            on_shutdown: AfterShutdown::Destroy,
            on_reboot: AfterShutdown::Restart,
            on_crash: AfterCrash::Preserve,
            vbds: vec![vbd()],
            vifs: vec![vif()],
        }
    }

    fn disk() -> DiskSpec {
        DiskSpec {
            vdi_uuid: "vdi".to_owned(),
            location: "location".to_owned(),
            virtual_size_bytes: 5,
        }
    }

    fn vbd() -> VbdSpec {
        VbdSpec {
            uuid: "vbd".to_owned(),
            device: "0".to_owned(),
            kind: VbdKind::Disk,
            read_only: false,
            bootable: true,
            disk: Some(disk()),
        }
    }

    fn vif() -> VifSpec {
        VifSpec {
            uuid: "vif".to_owned(),
            device: "0".to_owned(),
            mac: "aa:bb:cc:dd:ee:ff".to_owned(),
            mtu: 1500,
            bridge: "xenbr0".to_owned(),
        }
    }

    fn domain() -> DomainInfo {
        DomainInfo {
            vm: "vm".to_owned(),
            state: DomainState::Running,
            domid: 1,
            memory_actual_bytes: 2,
            vcpus: 2,
            vbds: vec!["vbd".to_owned()],
            vifs: vec!["vif".to_owned()],
            consoles: vec![ConsoleInfo {
                protocol: "rfb".to_owned(),
            }],
        }
    }

    /// One action of each kind; the match makes a new kind fail to compile until it has one.
    fn actions() -> Vec<HostAction> {
        let vm = || "vm".to_owned();
        let all: Vec<HostAction> = vec![
            HostAction::Inventory,
            VmAction::Start {
                vm: vm_spec(),
                paused: true,
            }
            .into(),
            VmAction::Shutdown {
                vm: vm(),
                clean: true,
            }
            .into(),
            VmAction::Reboot {
                vm: vm_spec(),
                clean: false,
            }
            .into(),
            VmAction::Suspend {
                vm: vm(),
                image: disk(),
            }
            .into(),
            VmAction::Resume {
                vm: vm_spec(),
                image: disk(),
                paused: false,
            }
            .into(),
            VmAction::Pause { vm: vm() }.into(),
            VmAction::Unpause { vm: vm() }.into(),
            VmAction::PlugVbd {
                vm: vm(),
                vbd: vbd(),
            }
            .into(),
            VmAction::UnplugVbd {
                vm: vm(),
                vbd: "vbd".to_owned(),
                force: true,
            }
            .into(),
            VmAction::PlugVif {
                vm: vm(),
                vif: vif(),
            }
            .into(),
            VmAction::UnplugVif {
                vm: vm(),
                vif: "vif".to_owned(),
                force: false,
            }
            .into(),
            VmAction::InsertCd {
                vm: vm(),
                vbd: "vbd".to_owned(),
                disk: disk(),
            }
            .into(),
            VmAction::EjectCd {
                vm: vm(),
                vbd: "vbd".to_owned(),
            }
            .into(),
            VmAction::SetVcpus { vm: vm(), count: 3 }.into(),
            VmAction::SetMemoryTarget { vm: vm(), bytes: 7 }.into(),
            VmAction::UpdateSpec { vm: vm_spec() }.into(),
            VmAction::MigrateOut {
                vm: vm(),
                to_host: "OpaqueRef:host".to_owned(),
                token: TransferToken("0123456789abcdef0123456789abcdef".to_owned()),
            }
            .into(),
            VmAction::MigrateIn {
                vm: vm_spec(),
                token: TransferToken("0123456789abcdef0123456789abcdef".to_owned()),
                paused: true,
            }
            .into(),
        ];
        let mut seen: Vec<usize> = all
            .iter()
            .map(|action| match action {
                HostAction::Inventory => 0,
                HostAction::Vm(vm) => match vm {
                    VmAction::Start { .. } => 1,
                    VmAction::Shutdown { .. } => 2,
                    VmAction::Reboot { .. } => 3,
                    VmAction::Suspend { .. } => 4,
                    VmAction::Resume { .. } => 5,
                    VmAction::Pause { .. } => 6,
                    VmAction::Unpause { .. } => 7,
                    VmAction::PlugVbd { .. } => 8,
                    VmAction::UnplugVbd { .. } => 9,
                    VmAction::PlugVif { .. } => 10,
                    VmAction::UnplugVif { .. } => 11,
                    VmAction::InsertCd { .. } => 12,
                    VmAction::EjectCd { .. } => 13,
                    VmAction::SetVcpus { .. } => 14,
                    VmAction::SetMemoryTarget { .. } => 15,
                    VmAction::UpdateSpec { .. } => 16,
                    VmAction::MigrateOut { .. } => 17,
                    VmAction::MigrateIn { .. } => 18,
                },
            })
            .collect();
        seen.dedup();
        assert_eq!(
            seen,
            (0..all.len()).collect::<Vec<_>>(),
            "one action of each kind"
        );
        all
    }

    fn results() -> Vec<Result<ActionResult, AgentFailure>> {
        let vm = || "vm".to_owned();
        let all = vec![
            Ok(ActionResult::Domain(Some(domain()))),
            Ok(ActionResult::Domain(None)),
            Ok(ActionResult::Inventory(vec![domain()])),
            Err(AgentFailure::StaleTerm {
                newest_seen: 2,
                got: 1,
            }),
            Err(AgentFailure::Cancelled),
            Err(AgentFailure::BadPowerState {
                vm: vm(),
                expected: PowerState::Running,
                actual: PowerState::Halted,
            }),
            Err(AgentFailure::ShutdownTimeout {
                vm: vm(),
                timeout_secs: 1.5,
            }),
            Err(AgentFailure::HookFailed {
                hook: "hook".to_owned(),
                reason: "none".to_owned(),
                stdout: "out".to_owned(),
                exit_code: "1".to_owned(),
            }),
            Err(AgentFailure::DeviceAlreadyAttached {
                device: "vbd".to_owned(),
            }),
            Err(AgentFailure::DeviceAlreadyDetached {
                device: "vif".to_owned(),
            }),
            Err(AgentFailure::DriveEmpty {
                vbd: "vbd".to_owned(),
            }),
            Err(AgentFailure::DriveNotEmpty {
                vbd: "vbd".to_owned(),
            }),
            Err(AgentFailure::NotRemovable {
                vbd: "vbd".to_owned(),
            }),
            Err(AgentFailure::TooManyVcpus { vm: vm() }),
            Err(AgentFailure::Internal {
                message: "m".to_owned(),
            }),
        ];
        for result in &all {
            match result {
                Ok(ActionResult::Domain(_) | ActionResult::Inventory(_))
                | Err(
                    AgentFailure::StaleTerm { .. }
                    | AgentFailure::Cancelled
                    | AgentFailure::BadPowerState { .. }
                    | AgentFailure::ShutdownTimeout { .. }
                    | AgentFailure::HookFailed { .. }
                    | AgentFailure::DeviceAlreadyAttached { .. }
                    | AgentFailure::DeviceAlreadyDetached { .. }
                    | AgentFailure::DriveEmpty { .. }
                    | AgentFailure::DriveNotEmpty { .. }
                    | AgentFailure::NotRemovable { .. }
                    | AgentFailure::TooManyVcpus { .. }
                    | AgentFailure::Internal { .. },
                ) => {}
            }
        }
        all
    }

    fn reports() -> Vec<AgentReport> {
        let all = vec![
            AgentReport::GuestChanged {
                vm: "vm".to_owned(),
                event: GuestEvent::PoweredOff,
                now: None,
            },
            AgentReport::GuestChanged {
                vm: "vm".to_owned(),
                event: GuestEvent::Rebooted,
                now: Some(domain()),
            },
            AgentReport::GuestChanged {
                vm: "vm".to_owned(),
                event: GuestEvent::Crashed,
                now: None,
            },
            AgentReport::Inventory(vec![domain()]),
        ];
        for report in &all {
            match report {
                AgentReport::GuestChanged { event, .. } => match event {
                    GuestEvent::PoweredOff | GuestEvent::Rebooted | GuestEvent::Crashed => {}
                },
                AgentReport::Inventory(_) => {}
            }
        }
        all
    }

    fn encoding() -> Vec<u8> {
        let health = HostHealth {
            store_failure: Some("failed".to_owned()),
            low_space: Some("low".to_owned()),
        };
        let after_crash = [
            AfterCrash::Destroy,
            AfterCrash::CoredumpAndDestroy,
            AfterCrash::Restart,
            AfterCrash::CoredumpAndRestart,
            AfterCrash::Preserve,
            AfterCrash::RenameRestart,
        ];
        let kinds = [VbdKind::Disk, VbdKind::Cd, VbdKind::Floppy];
        let states = [DomainState::Running, DomainState::Paused];
        let power = [
            PowerState::Halted,
            PowerState::Paused,
            PowerState::Running,
            PowerState::Suspended,
        ];
        let everything = (
            actions(),
            results(),
            reports(),
            health,
            (after_crash, kinds, states, power),
        );
        rmp_serde::to_vec_named(&everything).expect("plain data encodes")
    }

    /// Any change to the frames between a master and an agent changes this hash: raise
    /// `PROTOCOL_VERSION` and record both.
    #[test]
    fn the_frames_change_only_with_the_protocol_version() {
        let hash: String = Sha256::digest(encoding())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            (PROTOCOL_VERSION, hash.as_str()),
            RECORDED,
            "the master↔agent frames changed: raise PROTOCOL_VERSION and record its hash"
        );
    }
}
