//! The qemu driver on its own, against real QEMUs (skipped where QEMU is not installed): a
//! guest suspended into a qcow2 image and resumed from it on a new QEMU, and CPUs hot-added
//! up to `VCPUs_max`. The guests have no OS; they run under KVM where it works.

use std::path::Path;
use std::process::Command;

use agent::backend::qemu::{Qemu, QemuConfig, is_installed};
use agent::backend::{AttachedDisk, DiskFormat, Hypervisor, RunState};
use agent::testing::vm_spec;
use host_api::{DiskSpec, SrSpec};

const MIB: u64 = 1 << 20;

fn qemu() -> Option<(tempfile::TempDir, std::sync::Arc<Qemu>)> {
    if !is_installed(Path::new("qemu-system-x86_64")) {
        eprintln!("skipped: qemu-system-x86_64 is not installed (tests/run installs it)");
        return None;
    }
    let dir = tempfile::tempdir().expect("a data dir");
    let qemu = Qemu::new(dir.path(), QemuConfig::default());
    Some((dir, qemu))
}

/// A qcow2 image of `size_bytes` at `path`, made with qemu-img.
fn qcow2(path: &Path, size_bytes: u64) {
    let status = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg(size_bytes.to_string())
        .status()
        .expect("qemu-img runs");
    assert!(status.success());
}

/// The internal snapshots qemu-img lists in the image at `path`.
fn snapshots(path: &Path) -> String {
    let out = Command::new("qemu-img")
        .args(["snapshot", "-U", "-l"])
        .arg(path)
        .output()
        .expect("qemu-img runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Save stops the guest and writes its state into the suspend image (as that qcow2's
/// internal snapshot); a new QEMU restores it, and the guest runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_saved_into_a_qcow2_image_runs_again_from_it() {
    let Some((dir, qemu)) = qemu() else { return };
    let mut spec = vm_spec("suspended", 0, 0);
    spec.memory_static_max_bytes = 128 * MIB;
    let path = dir.path().join("suspend.qcow2");
    qcow2(&path, 256 * MIB);
    let image = DiskSpec {
        vdi_uuid: "3f0c2a8e-0000-4000-8000-000000000001".to_owned(),
        sr: SrSpec {
            uuid: "sr".to_owned(),
            sr_type: "ext".to_owned(),
            location: dir.path().display().to_string(),
        },
        location: "suspend.qcow2".to_owned(),
        virtual_size_bytes: 256 * MIB,
    };
    let attached = AttachedDisk {
        path: path.clone(),
        format: DiskFormat::Qcow2,
        read_only: false,
    };
    let vm = spec.uuid.as_str();

    qemu.create(&spec).await.expect("created");
    qemu.build(vm).await.expect("built");
    qemu.unpause(vm).await.expect("running");
    qemu.save(vm, &image, &attached).await.expect("saved");
    let saved = qemu.domain(vm).await.expect("read").expect("a domain");
    assert_eq!(saved.state, RunState::Paused);
    assert!(
        snapshots(&path).contains("oxapi-suspend"),
        "{}",
        snapshots(&path)
    );
    qemu.destroy(vm).await.expect("destroyed");

    qemu.create(&spec).await.expect("created again");
    qemu.restore(vm, &image, &attached).await.expect("restored");
    let restored = qemu.domain(vm).await.expect("read").expect("a domain");
    assert!(restored.is_built);
    qemu.unpause(vm).await.expect("running again");
    let running = qemu.domain(vm).await.expect("read").expect("a domain");
    assert_eq!(running.state, RunState::Running);
    qemu.destroy(vm).await.expect("destroyed");

    // An image that holds no saved state is refused, and the new guest stays unbuilt.
    let empty = dir.path().join("empty.qcow2");
    qcow2(&empty, 256 * MIB);
    let empty_at = AttachedDisk {
        path: empty,
        ..attached
    };
    qemu.create(&spec).await.expect("created a third time");
    assert!(qemu.restore(vm, &image, &empty_at).await.is_err());
    let unbuilt = qemu.domain(vm).await.expect("read").expect("a domain");
    assert!(!unbuilt.is_built);
    qemu.destroy(vm).await.expect("destroyed");
}

/// CPUs are hot-added into free slots up to `VCPUs_max` and removed again; more than the
/// maximum is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpus_are_hot_added_up_to_the_maximum() {
    let Some((_dir, qemu)) = qemu() else { return };
    let mut spec = vm_spec("cpus", 0, 0);
    spec.memory_static_max_bytes = 128 * MIB;
    spec.vcpus_at_startup = 1;
    spec.vcpus_max = 3;
    let vm = spec.uuid.as_str();
    qemu.create(&spec).await.expect("created");
    qemu.build(vm).await.expect("built");
    qemu.unpause(vm).await.expect("running");
    qemu.set_vcpus(vm, 3).await.expect("two CPUs added");
    assert_eq!(
        qemu.domain(vm)
            .await
            .expect("read")
            .expect("a domain")
            .vcpus,
        3
    );
    assert!(qemu.set_vcpus(vm, 4).await.is_err());
    qemu.destroy(vm).await.expect("destroyed");
}
