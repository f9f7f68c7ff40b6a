//! `VM.snapshot`: a copy of the VM (`copies.rs`) that is a snapshot of it.

use api_spec::Value;

use super::copies::{Kind, copy_as};
use crate::call::ctx::{Args, Ctx};
use crate::error::Error;

/// `VM.snapshot`: a snapshot VM (Halted, a template, `snapshot_of` the VM) with snapshots of
/// its disks but those in `ignore_vdis`, in any power state. The VM's `parent` becomes the
/// snapshot, whose own parent is the VM's former one.
pub(in crate::handlers) async fn snapshot(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (vm, new_name) = (args.str("vm")?, args.str("new_name")?);
    let ignore_vdis = args.strings("ignore_vdis")?;
    copy_as(
        &ctx,
        vm,
        new_name,
        Kind::Snapshot {
            ignore_vdis: &ignore_vdis,
        },
    )
    .await
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::testing::{TestPool, s};

    /// A snapshot of a running VM is a halted template that is a snapshot of it, taken now,
    /// with snapshots of its disks (but those ignored), its MACs and the VM as child.
    #[tokio::test]
    async fn a_snapshot_of_a_running_vm_is_a_halted_template_of_it() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let (vm, vdi) = pool.vm_with_devices(&session).await;
        let (_, ignored) = pool.add_disk(&session, &vm, "1").await;
        let start = vec![s(&vm), Value::Bool(false), Value::Bool(false)];
        pool.call_as(&session, "VM.start", start)
            .await
            .expect("started");
        pool.clock.advance(30);
        let ignore = Value::Array(vec![s(&ignored)]);
        let snap = pool
            .call_as(&session, "VM.snapshot", vec![s(&vm), s("snap"), ignore])
            .await
            .expect("a snapshot");
        let snap = snap.as_str().expect("a ref").to_owned();
        assert_eq!(pool.text("VM", &snap, "power_state"), "Halted");
        for flag in ["is_a_snapshot", "is_a_template"] {
            assert_eq!(
                pool.field("VM", &snap, flag),
                Some(Value::Bool(true)),
                "{flag}"
            );
        }
        assert_eq!(pool.text("VM", &snap, "snapshot_of"), vm);
        let taken = api_spec::datetime::format_unix(crate::testing::TEST_START_UNIX + 30);
        assert_eq!(
            pool.field("VM", &snap, "snapshot_time"),
            Some(Value::DateTime(taken))
        );
        let info = pool.field("VM", &snap, "snapshot_info").expect("info");
        assert_eq!(
            info.as_struct().expect("a map")["power-state-at-snapshot"],
            s("Running")
        );
        assert_eq!(
            pool.ref_list("VM", &vm, "snapshots"),
            std::slice::from_ref(&snap)
        );
        assert_eq!(pool.text("VM", &vm, "parent"), snap);
        assert_eq!(
            pool.ref_list("VM", &snap, "children"),
            std::slice::from_ref(&vm)
        );
        assert_eq!(pool.text("VM", &vm, "power_state"), "Running");
        let vbds = pool.ref_list("VM", &snap, "VBDs");
        assert_eq!(vbds.len(), 2);
        let disk = vbds
            .iter()
            .find(|vbd| pool.text("VBD", vbd, "type") == "Disk")
            .expect("a disk");
        assert_eq!(
            pool.field("VBD", disk, "currently_attached"),
            Some(Value::Bool(false))
        );
        let disk_snapshot = pool.text("VBD", disk, "VDI");
        assert_eq!(pool.text("VDI", &disk_snapshot, "snapshot_of"), vdi);
        assert_eq!(pool.ref_list("VDI", &vdi, "snapshots"), [disk_snapshot]);
        let vif = pool.ref_list("VM", &vm, "VIFs").remove(0);
        let snap_vif = pool.ref_list("VM", &snap, "VIFs").remove(0);
        assert_eq!(
            pool.text("VIF", &snap_vif, "MAC"),
            pool.text("VIF", &vif, "MAC")
        );
        assert_eq!(
            pool.allowed("VM", &snap),
            ["clone", "copy", "destroy", "export", "revert"]
        );
    }

    /// A template is not snapshotted (`VM_IS_TEMPLATE`), nor is a snapshot
    /// (`VM_IS_SNAPSHOT`).
    #[tokio::test]
    async fn templates_and_snapshots_are_not_snapshotted() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let template = pool.read().refs_by_name_label("VM", "Debian Bookworm 12")[0].to_owned();
        let snapshot = |vm: &str| {
            pool.call_as(
                &session,
                "VM.snapshot",
                vec![s(vm), s("x"), Value::Array(Vec::new())],
            )
        };
        assert_eq!(
            snapshot(&template).await,
            Err(api_spec::errors::vm_is_template(&template))
        );
        let vm = pool.new_vm(&session, "web").await;
        let snap = snapshot(&vm).await.expect("a snapshot");
        let snap = snap.as_str().expect("a ref").to_owned();
        assert_eq!(
            snapshot(&snap).await,
            Err(api_spec::errors::vm_is_snapshot(&snap, "snapshot"))
        );
    }
}
