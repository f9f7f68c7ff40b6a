//! The simulator as the hypervisor driver: each method is one state transition of
//! `state.rs`, run through `Simulator::run` for latency, failures and the state file.

use host_api::{DiskSpec, VbdSpec, VifSpec, VmSpec};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast;

use super::{Simulator, image, lock, quiet};
use crate::backend::{
    AttachedDisk, BackendError, BackendOp, Domain, DomainEvent, Hypervisor, NicPort, Op, RunState,
    ShutdownReason,
};

impl Hypervisor for Simulator {
    fn create<'a>(&'a self, spec: &'a VmSpec) -> Op<'a, i64> {
        Box::pin(self.run(BackendOp::Create, &spec.uuid, |m| quiet(m.create(spec))))
    }

    fn build<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(self.run(BackendOp::Build, vm, |m| quiet(m.build(vm))))
    }

    /// The simulator keeps the VBD; the path it would open is not read.
    fn plug_disk<'a>(
        &'a self,
        vm: &'a str,
        vbd: &'a VbdSpec,
        _disk: Option<&'a AttachedDisk>,
    ) -> Op<'a> {
        Box::pin(self.run(BackendOp::PlugDisk, vm, |m| quiet(m.plug_disk(vm, vbd))))
    }

    fn plug_nic<'a>(&'a self, vm: &'a str, vif: &'a VifSpec, _port: &'a NicPort) -> Op<'a> {
        Box::pin(self.run(BackendOp::PlugNic, vm, |m| quiet(m.plug_nic(vm, vif))))
    }

    fn start_device_model<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(self.run(BackendOp::StartDeviceModel, vm, |m| {
            quiet(m.start_device_model(vm))
        }))
    }

    fn unpause<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(self.run(BackendOp::Unpause, vm, |m| quiet(m.unpause(vm))))
    }

    fn set_needs_poweroff<'a>(&'a self, vm: &'a str, needs_poweroff: bool) -> Op<'a> {
        Box::pin(self.run(BackendOp::SetNeedsPoweroff, vm, move |m| {
            quiet(m.set_needs_poweroff(vm, needs_poweroff))
        }))
    }

    fn pause<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(self.run(BackendOp::Pause, vm, |m| quiet(m.pause(vm))))
    }

    fn request_shutdown<'a>(&'a self, vm: &'a str, reason: ShutdownReason) -> Op<'a> {
        Box::pin(self.run(BackendOp::RequestShutdown, vm, move |m| {
            m.request_shutdown(vm, reason).map(|effect| ((), effect))
        }))
    }

    fn wait_shutdown<'a>(&'a self, vm: &'a str) -> Op<'a, ShutdownReason> {
        Box::pin(async move {
            let mut changes = self.changed.subscribe();
            loop {
                match self.domain_now(vm) {
                    None => return Err(BackendError::NoDomain { vm: vm.to_owned() }),
                    Some(Domain {
                        state: RunState::Shutdown(reason),
                        ..
                    }) => return Ok(reason),
                    Some(_) => {}
                }
                if changes.changed().await.is_err() {
                    return Err(BackendError::NoDomain { vm: vm.to_owned() });
                }
            }
        })
    }

    fn unplug_nic<'a>(&'a self, vm: &'a str, vif: &'a str, _force: bool) -> Op<'a> {
        Box::pin(self.run(BackendOp::UnplugNic, vm, |m| quiet(m.unplug_nic(vm, vif))))
    }

    fn unplug_disk<'a>(&'a self, vm: &'a str, vbd: &'a str, _force: bool) -> Op<'a> {
        Box::pin(self.run(BackendOp::UnplugDisk, vm, |m| quiet(m.unplug_disk(vm, vbd))))
    }

    fn stop_device_model<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(self.run(BackendOp::StopDeviceModel, vm, |m| {
            quiet(m.stop_device_model(vm))
        }))
    }

    fn destroy<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(self.run(BackendOp::Destroy, vm, |m| quiet(m.destroy(vm))))
    }

    /// The simulator keeps the image under the VDI's location; it writes no file.
    fn save<'a>(&'a self, vm: &'a str, image: &'a DiskSpec, _attached: &'a AttachedDisk) -> Op<'a> {
        Box::pin(self.run(BackendOp::Save, vm, |m| quiet(m.save(vm, image))))
    }

    fn restore<'a>(
        &'a self,
        vm: &'a str,
        image: &'a DiskSpec,
        _attached: &'a AttachedDisk,
    ) -> Op<'a> {
        Box::pin(self.run(BackendOp::Restore, vm, |m| quiet(m.restore(vm, image))))
    }

    fn save_image<'a>(
        &'a self,
        vm: &'a str,
        to: &'a mut (dyn AsyncWrite + Send + Unpin),
    ) -> Op<'a> {
        Box::pin(async move {
            let header = self
                .run(BackendOp::SaveImage, vm, |m| quiet(m.save_image(vm)))
                .await?;
            // The domain stays paused and whole: a failed stream is undone by unpausing it.
            image::write(&header, to)
                .await
                .map_err(|err| BackendError::Failed {
                    op: BackendOp::SaveImage,
                    reason: format!("cannot write the image: {err}"),
                })
        })
    }

    fn receive_image<'a>(
        &'a self,
        vm: &'a str,
        from: &'a mut (dyn AsyncRead + Send + Unpin),
    ) -> Op<'a> {
        Box::pin(async move {
            let header = image::read(from)
                .await
                .map_err(|reason| BackendError::Failed {
                    op: BackendOp::ReceiveImage,
                    reason,
                })?;
            self.run(BackendOp::ReceiveImage, vm, |m| {
                quiet(m.receive_image(vm, header))
            })
            .await
        })
    }

    fn restore_received<'a>(&'a self, vm: &'a str) -> Op<'a> {
        Box::pin(self.run(BackendOp::RestoreReceived, vm, |m| {
            quiet(m.restore_received(vm))
        }))
    }

    fn insert_cd<'a>(
        &'a self,
        vm: &'a str,
        vbd: &'a str,
        disk: &'a DiskSpec,
        _attached: &'a AttachedDisk,
    ) -> Op<'a> {
        Box::pin(self.run(BackendOp::InsertCd, vm, |m| {
            quiet(m.insert_cd(vm, vbd, disk))
        }))
    }

    fn eject_cd<'a>(&'a self, vm: &'a str, vbd: &'a str) -> Op<'a> {
        Box::pin(self.run(BackendOp::EjectCd, vm, |m| quiet(m.eject_cd(vm, vbd))))
    }

    fn set_vcpus<'a>(&'a self, vm: &'a str, count: u32) -> Op<'a> {
        Box::pin(self.run(BackendOp::SetVcpus, vm, move |m| {
            quiet(m.set_vcpus(vm, count))
        }))
    }

    fn set_memory_target<'a>(&'a self, vm: &'a str, bytes: u64) -> Op<'a> {
        Box::pin(self.run(BackendOp::SetMemoryTarget, vm, move |m| {
            quiet(m.set_memory_target(vm, bytes))
        }))
    }

    fn update_spec<'a>(&'a self, vm: &'a str, spec: &'a VmSpec) -> Op<'a> {
        Box::pin(self.run(BackendOp::UpdateSpec, vm, |m| {
            quiet(m.update_spec(vm, spec))
        }))
    }

    fn domain<'a>(&'a self, vm: &'a str) -> Op<'a, Option<Domain>> {
        Box::pin(async move { Ok(self.domain_now(vm)) })
    }

    fn discover(&self) -> Op<'_, Vec<Domain>> {
        Box::pin(async move {
            Ok(lock(&self.live)
                .state
                .domains
                .values()
                .map(|sim| sim.domain.clone())
                .collect())
        })
    }

    fn events(&self) -> broadcast::Receiver<DomainEvent> {
        self.events.subscribe()
    }
}
