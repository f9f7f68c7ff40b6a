//! The simulator's state: its domains and saved images, and what each hypervisor operation
//! does to them, beside its storage's (`storage.rs`) and network's (`network.rs`). Pure state
//! transitions; `simulator.rs` adds time, failures and the state file.

use std::collections::BTreeMap;

use host_api::{ConsoleInfo, DiskSpec, PowerState, VbdKind, VbdSpec, VifSpec, VmSpec};
use serde::{Deserialize, Serialize};

use super::image::ImageHeader;
use super::network::SimNetwork;
use super::storage::SimStorage;
use crate::backend::{BackendError, BackendOp, Domain, RunState, ShutdownReason};

/// Everything the simulator holds; the state file is this, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SimState {
    /// The domid the next domain gets; domid 0 is the control domain's.
    pub next_domid: i64,
    pub domains: BTreeMap<String, SimDomain>,
    /// Saved memory images, by the location they were saved to.
    pub images: BTreeMap<String, Image>,
    /// Migration images received, by VM, until its domain is built from one.
    #[serde(default)]
    pub received: BTreeMap<String, Image>,
    /// The VDIs, attached and not.
    #[serde(default)]
    pub storage: SimStorage,
    /// The bridges and the VIFs' ports.
    #[serde(default)]
    pub network: SimNetwork,
}

/// A domain and what only the simulator knows about its guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SimDomain {
    pub domain: Domain,
    /// The guest no longer answers shutdown requests.
    pub is_hung: bool,
}

/// A saved domain's memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Image {
    pub memory_bytes: u64,
    pub vcpus: u32,
}

/// What an operation changed, beyond its result: whether the guest's domain shut down (the
/// agent is then told).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    Quiet,
    GuestStopped,
}

impl Default for SimState {
    fn default() -> Self {
        SimState {
            next_domid: 1,
            domains: BTreeMap::new(),
            images: BTreeMap::new(),
            received: BTreeMap::new(),
            storage: SimStorage::default(),
            network: SimNetwork::default(),
        }
    }
}

impl SimState {
    fn get(&mut self, vm: &str) -> Result<&mut SimDomain, BackendError> {
        self.domains
            .get_mut(vm)
            .ok_or_else(|| BackendError::NoDomain { vm: vm.to_owned() })
    }

    /// A domain whose guest has not shut down.
    fn live(&mut self, vm: &str) -> Result<&mut Domain, BackendError> {
        let domain = &mut self.get(vm)?.domain;
        if let RunState::Shutdown(_) = domain.state {
            return Err(bad_state(vm, PowerState::Running, domain.state));
        }
        Ok(domain)
    }

    pub fn create(&mut self, spec: &VmSpec) -> Result<i64, BackendError> {
        if self.domains.contains_key(&spec.uuid) {
            return Err(BackendError::DomainExists {
                vm: spec.uuid.clone(),
            });
        }
        let domid = self.next_domid;
        self.next_domid += 1;
        let domain = Domain {
            domid,
            state: RunState::Paused,
            spec: spec.clone(),
            is_built: false,
            needs_poweroff: true,
            memory_actual_bytes: 0,
            vcpus: 0,
            vbds: Vec::new(),
            vifs: Vec::new(),
            has_device_model: false,
            consoles: Vec::new(),
        };
        self.domains.insert(
            spec.uuid.clone(),
            SimDomain {
                domain,
                is_hung: false,
            },
        );
        Ok(domid)
    }

    pub fn build(&mut self, vm: &str) -> Result<(), BackendError> {
        let domain = self.live(vm)?;
        if domain.is_built {
            return Err(failed(BackendOp::Build, "the domain is already built"));
        }
        domain.memory_actual_bytes = domain.spec.memory_dynamic_max_bytes;
        domain.vcpus = domain.spec.vcpus_at_startup;
        domain.is_built = true;
        Ok(())
    }

    pub fn plug_disk(&mut self, vm: &str, vbd: &VbdSpec) -> Result<(), BackendError> {
        let domain = self.live(vm)?;
        if domain.vbds.iter().any(|plugged| plugged.uuid == vbd.uuid) {
            return Err(BackendError::DeviceAttached {
                device: vbd.uuid.clone(),
            });
        }
        domain.vbds.push(vbd.clone());
        Ok(())
    }

    pub fn plug_nic(&mut self, vm: &str, vif: &VifSpec) -> Result<(), BackendError> {
        let domain = self.live(vm)?;
        if domain.vifs.iter().any(|plugged| plugged.uuid == vif.uuid) {
            return Err(BackendError::DeviceAttached {
                device: vif.uuid.clone(),
            });
        }
        domain.vifs.push(vif.clone());
        Ok(())
    }

    pub fn start_device_model(&mut self, vm: &str) -> Result<(), BackendError> {
        let domain = self.live(vm)?;
        domain.has_device_model = true;
        domain.consoles = ["rfb", "vt100"]
            .into_iter()
            .map(|protocol| ConsoleInfo {
                protocol: protocol.to_owned(),
            })
            .collect();
        Ok(())
    }

    pub fn unpause(&mut self, vm: &str) -> Result<(), BackendError> {
        let domain = self.live(vm)?;
        if domain.state != RunState::Paused {
            return Err(bad_state(vm, PowerState::Paused, domain.state));
        }
        if !domain.is_built {
            return Err(failed(BackendOp::Unpause, "the domain is not built"));
        }
        domain.state = RunState::Running;
        Ok(())
    }

    pub fn set_needs_poweroff(
        &mut self,
        vm: &str,
        needs_poweroff: bool,
    ) -> Result<(), BackendError> {
        self.get(vm)?.domain.needs_poweroff = needs_poweroff;
        Ok(())
    }

    pub fn pause(&mut self, vm: &str) -> Result<(), BackendError> {
        let domain = self.live(vm)?;
        if domain.state != RunState::Running {
            return Err(bad_state(vm, PowerState::Running, domain.state));
        }
        domain.state = RunState::Paused;
        Ok(())
    }

    /// A guest that is not hung shuts down at once.
    pub fn request_shutdown(
        &mut self,
        vm: &str,
        reason: ShutdownReason,
    ) -> Result<Effect, BackendError> {
        let sim = self.get(vm)?;
        if sim.domain.state != RunState::Running {
            return Err(bad_state(vm, PowerState::Running, sim.domain.state));
        }
        if sim.is_hung {
            return Ok(Effect::Quiet);
        }
        sim.domain.state = RunState::Shutdown(reason);
        Ok(Effect::GuestStopped)
    }

    pub fn unplug_nic(&mut self, vm: &str, vif: &str) -> Result<(), BackendError> {
        let domain = &mut self.get(vm)?.domain;
        let before = domain.vifs.len();
        domain.vifs.retain(|plugged| plugged.uuid != vif);
        if domain.vifs.len() == before {
            return Err(BackendError::DeviceDetached {
                device: vif.to_owned(),
            });
        }
        Ok(())
    }

    pub fn unplug_disk(&mut self, vm: &str, vbd: &str) -> Result<(), BackendError> {
        let domain = &mut self.get(vm)?.domain;
        let before = domain.vbds.len();
        domain.vbds.retain(|plugged| plugged.uuid != vbd);
        if domain.vbds.len() == before {
            return Err(BackendError::DeviceDetached {
                device: vbd.to_owned(),
            });
        }
        Ok(())
    }

    pub fn stop_device_model(&mut self, vm: &str) -> Result<(), BackendError> {
        let domain = &mut self.get(vm)?.domain;
        domain.has_device_model = false;
        domain.consoles.clear();
        Ok(())
    }

    pub fn destroy(&mut self, vm: &str) -> Result<(), BackendError> {
        self.domains
            .remove(vm)
            .map(drop)
            .ok_or_else(|| BackendError::NoDomain { vm: vm.to_owned() })
    }

    pub fn save(&mut self, vm: &str, image: &DiskSpec) -> Result<(), BackendError> {
        let domain = self.live(vm)?;
        let saved = Image {
            memory_bytes: domain.memory_actual_bytes,
            vcpus: domain.vcpus,
        };
        domain.state = RunState::Paused;
        self.images.insert(image.location.clone(), saved);
        Ok(())
    }

    pub fn restore(&mut self, vm: &str, image: &DiskSpec) -> Result<(), BackendError> {
        let saved =
            self.images
                .get(&image.location)
                .cloned()
                .ok_or_else(|| BackendError::NoImage {
                    location: image.location.clone(),
                })?;
        let domain = self.live(vm)?;
        if domain.is_built {
            return Err(failed(BackendOp::Restore, "the domain is already built"));
        }
        domain.memory_actual_bytes = saved.memory_bytes;
        domain.vcpus = saved.vcpus;
        domain.is_built = true;
        Ok(())
    }

    /// What a migration image of a live domain says of it: its state, tagged with the VM so
    /// that it cannot fill another's domain, and its `memory_static_max`, the length of the
    /// memory the image streams. Leaves the domain paused.
    pub fn save_image(&mut self, vm: &str) -> Result<ImageHeader, BackendError> {
        let domain = self.live(vm)?;
        let header = ImageHeader {
            vm: vm.to_owned(),
            image: Image {
                memory_bytes: domain.memory_actual_bytes,
                vcpus: domain.vcpus,
            },
            memory_bytes: domain.spec.memory_static_max_bytes,
        };
        domain.state = RunState::Paused;
        Ok(header)
    }

    /// Keeps the image `save_image` made for `vm` (here or on another host) until
    /// `restore_received`.
    pub fn receive_image(&mut self, vm: &str, saved: ImageHeader) -> Result<(), BackendError> {
        if saved.vm != vm {
            let reason = format!("the image is of vm {}", saved.vm);
            return Err(failed(BackendOp::ReceiveImage, &reason));
        }
        self.received.insert(vm.to_owned(), saved.image);
        Ok(())
    }

    /// Fills a created domain from the image `receive_image` kept for it.
    pub fn restore_received(&mut self, vm: &str) -> Result<(), BackendError> {
        let domain = self.live(vm)?;
        if domain.is_built {
            return Err(failed(
                BackendOp::RestoreReceived,
                "the domain is already built",
            ));
        }
        let Some(saved) = self.received.remove(vm) else {
            return Err(failed(
                BackendOp::RestoreReceived,
                "no migration image was received for it",
            ));
        };
        let domain = self.live(vm)?;
        domain.memory_actual_bytes = saved.memory_bytes;
        domain.vcpus = saved.vcpus;
        domain.is_built = true;
        Ok(())
    }

    fn removable_drive<'a>(
        &'a mut self,
        vm: &str,
        vbd: &str,
    ) -> Result<&'a mut VbdSpec, BackendError> {
        let domain = self.live(vm)?;
        let drive = domain
            .vbds
            .iter_mut()
            .find(|plugged| plugged.uuid == vbd)
            .ok_or_else(|| BackendError::DeviceDetached {
                device: vbd.to_owned(),
            })?;
        if drive.kind != VbdKind::Cd {
            return Err(BackendError::NotRemovable {
                vbd: vbd.to_owned(),
            });
        }
        Ok(drive)
    }

    pub fn insert_cd(&mut self, vm: &str, vbd: &str, disk: &DiskSpec) -> Result<(), BackendError> {
        let drive = self.removable_drive(vm, vbd)?;
        if drive.disk.is_some() {
            return Err(BackendError::DriveNotEmpty {
                vbd: vbd.to_owned(),
            });
        }
        drive.disk = Some(disk.clone());
        Ok(())
    }

    pub fn eject_cd(&mut self, vm: &str, vbd: &str) -> Result<(), BackendError> {
        let drive = self.removable_drive(vm, vbd)?;
        if drive.disk.take().is_none() {
            return Err(BackendError::DriveEmpty {
                vbd: vbd.to_owned(),
            });
        }
        Ok(())
    }

    pub fn set_vcpus(&mut self, vm: &str, count: u32) -> Result<(), BackendError> {
        let domain = self.live(vm)?;
        let max = domain.spec.vcpus_max;
        if count == 0 || count > max {
            return Err(BackendError::TooManyVcpus {
                vm: vm.to_owned(),
                count,
                max,
            });
        }
        domain.vcpus = count;
        Ok(())
    }

    pub fn set_memory_target(&mut self, vm: &str, bytes: u64) -> Result<(), BackendError> {
        let domain = self.live(vm)?;
        if bytes > domain.spec.memory_static_max_bytes {
            return Err(failed(
                BackendOp::SetMemoryTarget,
                "the target is over memory_static_max",
            ));
        }
        domain.memory_actual_bytes = bytes;
        Ok(())
    }

    /// Replaces the spec of the domain of `vm`, but for the devices asked for at start (the new
    /// spec's are the master's view of now, not what the domain was created with).
    pub fn update_spec(&mut self, vm: &str, spec: &VmSpec) -> Result<(), BackendError> {
        let domain = &mut self.get(vm)?.domain;
        domain.spec = VmSpec {
            vbds: std::mem::take(&mut domain.spec.vbds),
            vifs: std::mem::take(&mut domain.spec.vifs),
            ..spec.clone()
        };
        Ok(())
    }

    /// The guest powers off, reboots or crashes by itself.
    pub fn guest_stops(
        &mut self,
        vm: &str,
        reason: ShutdownReason,
    ) -> Result<Effect, BackendError> {
        let domain = &mut self.get(vm)?.domain;
        if domain.state != RunState::Running {
            return Err(bad_state(vm, PowerState::Running, domain.state));
        }
        domain.state = RunState::Shutdown(reason);
        Ok(Effect::GuestStopped)
    }

    /// The guest stops answering shutdown requests.
    pub fn guest_hangs(&mut self, vm: &str) -> Result<Effect, BackendError> {
        self.get(vm)?.is_hung = true;
        Ok(Effect::Quiet)
    }
}

fn bad_state(vm: &str, expected: PowerState, actual: RunState) -> BackendError {
    BackendError::BadState {
        vm: vm.to_owned(),
        expected,
        actual: actual.power_state(),
    }
}

pub(super) fn failed(op: BackendOp, reason: &str) -> BackendError {
    BackendError::Failed {
        op,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{cd_drive, disk, vm_spec};

    fn running(state: &mut SimState, spec: &VmSpec) {
        state.create(spec).expect("create");
        state.build(&spec.uuid).expect("build");
        for vbd in &spec.vbds {
            state.plug_disk(&spec.uuid, vbd).expect("plug disk");
        }
        state.start_device_model(&spec.uuid).expect("device model");
        state.unpause(&spec.uuid).expect("unpause");
    }

    /// Domids are handed out in order and never reused, even after a destroy.
    #[test]
    fn domids_are_never_reused() {
        let mut state = SimState::default();
        let (a, b) = (vm_spec("a", 1, 0), vm_spec("b", 1, 0));
        assert_eq!(state.create(&a).expect("create a"), 1);
        state.destroy(&a.uuid).expect("destroy a");
        assert_eq!(state.create(&b).expect("create b"), 2);
        assert!(matches!(
            state.create(&b),
            Err(BackendError::DomainExists { .. })
        ));
    }

    /// A built domain has the spec's dynamic maximum and VCPUs at startup; the device model
    /// brings an rfb and a vt100 console.
    #[test]
    fn build_and_device_model_fill_the_domain() {
        let mut state = SimState::default();
        let spec = vm_spec("a", 2, 1);
        running(&mut state, &spec);
        let domain = &state.domains[&spec.uuid].domain;
        assert_eq!(domain.state, RunState::Running);
        assert_eq!(domain.memory_actual_bytes, spec.memory_dynamic_max_bytes);
        assert_eq!(domain.vcpus, spec.vcpus_at_startup);
        let protocols: Vec<_> = domain
            .consoles
            .iter()
            .map(|c| c.protocol.as_str())
            .collect();
        assert_eq!(protocols, ["rfb", "vt100"]);
    }

    /// A hung guest ignores a shutdown request; a healthy one shuts down with the reason asked.
    #[test]
    fn hung_guests_ignore_shutdown_requests() {
        let mut state = SimState::default();
        let spec = vm_spec("a", 0, 0);
        running(&mut state, &spec);
        state.guest_hangs(&spec.uuid).expect("hang");
        let effect = state.request_shutdown(&spec.uuid, ShutdownReason::PowerOff);
        assert_eq!(effect.expect("asked"), Effect::Quiet);
        state.domains.get_mut(&spec.uuid).expect("domain").is_hung = false;
        let effect = state.request_shutdown(&spec.uuid, ShutdownReason::Reboot);
        assert_eq!(effect.expect("asked"), Effect::GuestStopped);
        assert_eq!(
            state.domains[&spec.uuid].domain.state,
            RunState::Shutdown(ShutdownReason::Reboot)
        );
    }

    /// CD drives take a disk only when empty and give one only when full; disks are not
    /// removable.
    #[test]
    fn cd_insert_and_eject_follow_the_drive() {
        let mut state = SimState::default();
        let mut spec = vm_spec("a", 1, 0);
        spec.vbds.push(cd_drive(1));
        running(&mut state, &spec);
        let (hdd, cd) = (spec.vbds[0].uuid.clone(), spec.vbds[1].uuid.clone());
        assert!(matches!(
            state.eject_cd(&spec.uuid, &cd),
            Err(BackendError::DriveEmpty { .. })
        ));
        state
            .insert_cd(&spec.uuid, &cd, &disk("iso"))
            .expect("insert");
        assert!(matches!(
            state.insert_cd(&spec.uuid, &cd, &disk("iso")),
            Err(BackendError::DriveNotEmpty { .. })
        ));
        state.eject_cd(&spec.uuid, &cd).expect("eject");
        assert!(matches!(
            state.eject_cd(&spec.uuid, &hdd),
            Err(BackendError::NotRemovable { .. })
        ));
    }

    /// A saved image restores the state and VCPUs it was saved with.
    #[test]
    fn save_then_restore_keeps_memory_and_vcpus() {
        let mut state = SimState::default();
        let spec = vm_spec("a", 0, 0);
        running(&mut state, &spec);
        state.set_vcpus(&spec.uuid, 1).expect("vcpus");
        state.save(&spec.uuid, &disk("suspend")).expect("save");
        state.destroy(&spec.uuid).expect("destroy");
        state.create(&spec).expect("create");
        state
            .restore(&spec.uuid, &disk("suspend"))
            .expect("restore");
        let domain = &state.domains[&spec.uuid].domain;
        assert_eq!(domain.vcpus, 1);
        assert!(domain.is_built);
        assert!(matches!(
            state.restore(&spec.uuid, &disk("elsewhere")),
            Err(BackendError::NoImage { .. })
        ));
    }

    /// A state file written before the simulator had storage and network (and before disks
    /// named their SR) still loads, with nothing attached.
    #[test]
    fn a_state_file_without_storage_and_network_loads() {
        let mut state = SimState::default();
        running(&mut state, &vm_spec("a", 1, 0));
        let mut old = serde_json::to_value(&state).expect("encodes");
        let fields = old.as_object_mut().expect("an object");
        fields.remove("storage");
        fields.remove("network");
        let text = serde_json::to_string(&old).expect("encodes").replace(
            "\"sr\":{\"location\":\"/srs/sr\",\"sr_type\":\"ext\",\"uuid\":\"sr\"},",
            "",
        );
        assert!(!text.contains("sr_type"));
        let loaded: SimState = serde_json::from_str(&text).expect("an old state file loads");
        assert_eq!(loaded.domains.len(), 1);
        assert!(loaded.storage.attached.is_empty());
    }

    /// VCPU counts outside 1..=VCPUs_max are refused.
    #[test]
    fn vcpus_outside_the_range_are_refused() {
        let mut state = SimState::default();
        let spec = vm_spec("a", 0, 0);
        running(&mut state, &spec);
        for count in [0, spec.vcpus_max + 1] {
            assert!(matches!(
                state.set_vcpus(&spec.uuid, count),
                Err(BackendError::TooManyVcpus { .. })
            ));
        }
    }
}
