//! The storage figures of the QEMU backend: `VDI.snapshot` and `VDI.clone` of a 10 GiB VDI
//! on the local SR (qcow2 overlays: no data is copied), and the import of a 1 GiB raw image
//! (`PUT /import_raw_vdi`) beside `cp` of the same file on the same disk.

use std::time::{Duration, Instant};

use api_spec::Value;
use oxapi_tests::storage::{create_vdi, import_raw, local_sr, transfer_query};
use oxapi_tests::{Client, Host};

use crate::qemu::Spread;

/// The size of the VDI that is snapshot and cloned.
pub const SNAPSHOT_VDI_BYTES: i64 = 10 << 30;
/// The size of the raw image imported.
pub const IMPORT_IMAGE_BYTES: usize = 1 << 30;

/// Prints every storage figure, `trials` trials of the snapshot and clone.
pub async fn run(host: &Host, admin: &Client, trials: usize) {
    let sr = local_sr(admin).await;
    vdi_snapshot_and_clone(admin, &sr, trials).await;
    import_raw_beside_cp(host, admin, &sr).await;
}

/// Times `VDI.snapshot` and `VDI.clone` of one 10 GiB VDI, each new VDI destroyed untimed.
async fn vdi_snapshot_and_clone(admin: &Client, sr: &str, trials: usize) {
    let vdi = create_vdi(admin, sr, SNAPSHOT_VDI_BYTES).await;
    let empty = Value::Struct(Default::default());
    for method in ["VDI.snapshot", "VDI.clone"] {
        let mut times = Vec::new();
        for _ in 0..trials {
            let sent = Instant::now();
            let made = admin
                .ok(method, vec![Value::str(&vdi), empty.clone()])
                .await;
            times.push(sent.elapsed());
            admin.ok("VDI.destroy", vec![made]).await;
        }
        println!(
            "{method} of a VDI of {} GiB: {}",
            SNAPSHOT_VDI_BYTES >> 30,
            Spread::of(&mut times)
        );
    }
    admin.ok("VDI.destroy", vec![Value::str(&vdi)]).await;
}

/// Times the import of a 1 GiB raw image (no zero block, so none is skipped) into a VDI of
/// its size, and `cp` of the same file beside it on the host's disk; throughputs and ratio.
async fn import_raw_beside_cp(host: &Host, admin: &Client, sr: &str) {
    let image: Vec<u8> = (0..IMPORT_IMAGE_BYTES)
        .map(|i| (i % 251) as u8 | 1)
        .collect();
    let dir = tempfile::tempdir_in(host.data_dir().parent().expect("a parent"))
        .expect("a temp dir beside the data dir");
    let source = dir.path().join("image.raw");
    std::fs::write(&source, &image).expect("the image written");
    let size = i64::try_from(IMPORT_IMAGE_BYTES).expect("1 GiB fits");
    let vdi = create_vdi(admin, sr, size).await;
    let query = transfer_query(admin, &vdi, "raw");
    let sent = Instant::now();
    let (status, answer) = import_raw(&host.url(), &host.cert_pem(), &query, image).await;
    let imported = sent.elapsed();
    if status != 200 {
        println!("import of a 1 GiB raw image: failed ({status}): {answer}");
        return;
    }
    let started = Instant::now();
    let copied = std::process::Command::new("cp")
        .arg(&source)
        .arg(dir.path().join("copy.raw"))
        .status()
        .is_ok_and(|status| status.success());
    let cp = started.elapsed();
    admin.ok("VDI.destroy", vec![Value::str(&vdi)]).await;
    let mib_per_s = |d: Duration| (IMPORT_IMAGE_BYTES >> 20) as f64 / d.as_secs_f64();
    if !copied {
        println!("cp of the 1 GiB image failed");
        return;
    }
    println!(
        "import of a 1 GiB raw image: {:.0} MiB/s ({:.2} s); cp of the same file: {:.0} MiB/s ({:.2} s); ratio import / cp: {:.2}",
        mib_per_s(imported),
        imported.as_secs_f64(),
        mib_per_s(cp),
        cp.as_secs_f64(),
        mib_per_s(imported) / mib_per_s(cp)
    );
}
