//! The storage figures of the QEMU backend: `VDI.snapshot` and `VDI.clone` of a 10 GiB VDI,
//! and the import of a 1 GiB raw image (`PUT /import_raw_vdi`) beside `cp` of the same file.
//! NOT MEASURED YET: each function below is the place its figure goes once VDIs hold data
//! and the import is served; until then it says so.

use oxapi_tests::Client;

/// The size of the VDI that is snapshot and cloned.
pub const SNAPSHOT_VDI_BYTES: u64 = 10 << 30;
/// The size of the raw image imported.
pub const IMPORT_IMAGE_BYTES: u64 = 1 << 30;

/// Why a figure is not measured: what it waits for.
pub struct NotMeasuredYet(&'static str);

/// Prints every storage figure, or why it is not measured yet.
pub async fn run(admin: &Client) {
    let figures = [
        (
            format!(
                "VDI.snapshot and VDI.clone, VDI of {} GiB",
                SNAPSHOT_VDI_BYTES >> 30
            ),
            vdi_snapshot_and_clone(admin).await,
        ),
        (
            format!(
                "import of a {} GiB raw image beside cp",
                IMPORT_IMAGE_BYTES >> 30
            ),
            import_raw_beside_cp(admin).await,
        ),
    ];
    for (what, figure) in figures {
        match figure {
            Ok(figure) => println!("{what}: {figure}"),
            Err(NotMeasuredYet(why)) => println!("{what}: not measured yet ({why})"),
        }
    }
}

/// NOT MEASURED YET. To come: create a VDI of `SNAPSHOT_VDI_BYTES` on the local SR, time
/// `VDI.snapshot` and `VDI.clone` of it (a qcow2 backing chain: no copy, so about a
/// `qemu-img create`), several trials each, p50 / min / max.
async fn vdi_snapshot_and_clone(_admin: &Client) -> Result<String, NotMeasuredYet> {
    Err(NotMeasuredYet("VDIs with data are being built"))
}

/// NOT MEASURED YET. To come: write a raw image of `IMPORT_IMAGE_BYTES`, time its
/// `PUT /import_raw_vdi?format=raw` into a VDI of that size and `cp` of the same file on the
/// same disk, and print both throughputs and their ratio.
async fn import_raw_beside_cp(_admin: &Client) -> Result<String, NotMeasuredYet> {
    Err(NotMeasuredYet("PUT /import_raw_vdi is being built"))
}
