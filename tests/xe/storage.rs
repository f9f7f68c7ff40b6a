//! `xe`'s storage commands against a real `oxapi` whose SRs keep their VDIs as files (the
//! `file` driver, with its ISO libraries): SRs and PBDs, VDIs made, resized, snapshotted,
//! cloned, copied and destroyed, a VM's CD drives and disks, VBDs by uuid, and a VDI's bytes
//! imported from and exported to files, streamed.

mod support;

use std::path::Path;

use oxapi_tests::storage::file_driver_host;
use support::Xe;

const MIB: u64 = 1 << 20;

/// `xe <class>-param-get uuid=<uuid> param-name=<name>`.
fn param(xe: &Xe, class: &str, uuid: &str, name: &str) -> String {
    let command = format!("{class}-param-get");
    let out = xe.ok(&[
        &command,
        &format!("uuid={uuid}"),
        &format!("param-name={name}"),
    ]);
    out.trim().to_owned()
}

/// The pool's default SR: the host's local SR.
fn local_sr(xe: &Xe) -> String {
    let pool = xe.minimal(&["pool-list"]);
    param(xe, "pool", &pool, "default-SR")
}

/// The uuid a command printed.
fn new_uuid(xe: &Xe, args: &[&str]) -> String {
    let out = xe.ok(args);
    let uuid = out.trim().to_owned();
    assert_eq!(uuid.len(), 36, "{args:?} printed {out:?}");
    uuid
}

/// A file of `length` bytes whose every 4 KiB block holds its own number, so that a block
/// out of place shows.
fn patterned_file(path: &Path, length: u64) {
    let bytes: Vec<u8> = (0..length).map(|i| ((i / 4096) % 251) as u8).collect();
    std::fs::write(path, bytes).expect("the image is written");
}

/// An ISO library made with `sr-create type=iso` on a directory shows its `.iso` file as a
/// VDI after `sr-scan`; a halted VM gets a CD drive holding it (`vm-cd-add`), which
/// `vm-cd-list` shows and `vm-cd-eject` / `vm-cd-insert` (and `vbd-eject` / `vbd-insert`)
/// empty and fill, and `vm-cd-remove` removes; `pbd-unplug` / `pbd-plug` detach and attach the
/// library, and `sr-forget` / `sr-destroy` remove SRs. What cannot be done is said by name.
#[test]
fn iso_library_cds_go_in_and_out_of_a_halted_vm() {
    let host = file_driver_host();
    let xe = Xe::new(&host);
    let library = tempfile::tempdir().expect("a directory for ISOs");
    let iso = std::fs::File::create(library.path().join("install.iso")).expect("an ISO");
    iso.set_len(8 * 2048).expect("its length");
    let location = format!("device-config:location={}", library.path().display());
    let sr = new_uuid(
        &xe,
        &[
            "sr-create",
            "name-label=isos",
            "type=iso",
            "content-type=iso",
            &location,
        ],
    );
    assert_eq!(param(&xe, "sr", &sr, "type"), "iso");
    // A new SR is scanned once: the ISO is there already, and a scan finds nothing more.
    let in_library = format!("sr-uuid={sr}");
    let listed = xe.minimal(&["vdi-list", &in_library]);
    xe.ok(&["sr-scan", &format!("uuid={sr}")]);
    assert_eq!(xe.minimal(&["vdi-list", &in_library]), listed);
    let cd = xe.minimal(&["vdi-list", &in_library, "name-label=install.iso"]);
    assert_eq!(cd, listed, "the one VDI is the ISO");
    assert_eq!(
        param(&xe, "vdi", &cd, "virtual-size"),
        (8 * 2048).to_string()
    );

    let vm = new_uuid(
        &xe,
        &[
            "vm-install",
            "template=Other install media",
            "new-name-label=cdvm",
        ],
    );
    let err = xe.fails(&["vm-cd-insert", "vm=cdvm", "cd-name=install.iso"]);
    assert!(err.contains("VM cdvm has no empty CD drive"), "{err}");
    let err = xe.fails(&["vm-cd-add", "vm=cdvm", "cd-name=nothing.iso", "device=3"]);
    assert!(err.contains("invalid value for cd-name"), "{err}");
    xe.ok(&["vm-cd-add", "vm=cdvm", "cd-name=install.iso", "device=3"]);
    let listed = xe.ok(&["vm-cd-list", "vm=cdvm"]);
    assert!(listed.starts_with("CD 0 VBD:\n"), "{listed}");
    assert!(listed.contains("CD 0 VDI:\n"), "{listed}");
    assert!(listed.contains("name-label ( RW): install.iso"), "{listed}");
    assert!(listed.contains("userdevice ( RW): 3"), "{listed}");
    let drive = xe.minimal(&["vm-cd-list", "vm=cdvm"]);
    assert_eq!(param(&xe, "vbd", &drive, "vm-uuid"), vm);
    assert_eq!(param(&xe, "vbd", &drive, "vdi-uuid"), cd);
    assert_eq!(param(&xe, "vbd", &drive, "mode"), "ro");

    xe.ok(&["vm-cd-eject", "vm=cdvm"]);
    assert_eq!(param(&xe, "vbd", &drive, "empty"), "true");
    let listed = xe.ok(&["vm-cd-list", "vm=cdvm"]);
    assert!(!listed.contains("CD 0 VDI:"), "{listed}");
    let err = xe.fails(&["vm-cd-eject", "vm=cdvm"]);
    assert!(err.contains("VBD_IS_EMPTY"), "{err}");
    xe.ok(&["vm-cd-insert", "vm=cdvm", "cd-name=install.iso"]);
    assert_eq!(param(&xe, "vbd", &drive, "empty"), "false");
    xe.ok(&["vbd-eject", &format!("uuid={drive}")]);
    assert_eq!(param(&xe, "vbd", &drive, "vdi-uuid"), "<not in database>");
    xe.ok(&[
        "vbd-insert",
        &format!("uuid={drive}"),
        &format!("vdi-uuid={cd}"),
    ]);
    assert_eq!(param(&xe, "vbd", &drive, "vdi-uuid"), cd);
    let err = xe.fails(&["vm-cd-remove", "vm=cdvm", "cd-name=other.iso"]);
    assert!(
        err.contains("VM cdvm has no CD drive holding 'other.iso'"),
        "{err}"
    );
    xe.ok(&["vm-cd-remove", "vm=cdvm", "cd-name=install.iso"]);
    assert_eq!(xe.minimal(&["vm-cd-list", "vm=cdvm"]), "");

    let pbd = xe.minimal(&["pbd-list", &in_library]);
    let err = xe.fails(&["sr-forget", &format!("uuid={sr}")]);
    assert!(err.contains("SR_HAS_PBD"), "{err}");
    xe.ok(&["pbd-unplug", &format!("uuid={pbd}")]);
    assert_eq!(param(&xe, "pbd", &pbd, "currently-attached"), "false");
    let err = xe.fails(&["sr-scan", &format!("uuid={sr}")]);
    assert!(err.contains("SR_HAS_NO_PBDS"), "{err}");
    xe.ok(&["pbd-plug", &format!("uuid={pbd}")]);
    assert_eq!(param(&xe, "pbd", &pbd, "currently-attached"), "true");
    xe.ok(&["pbd-unplug", &format!("uuid={pbd}")]);
    xe.ok(&["sr-forget", &format!("uuid={sr}")]);
    assert_eq!(xe.minimal(&["sr-list", "name-label=isos"]), "");
    assert!(
        library.path().join("install.iso").is_file(),
        "the data stays"
    );

    let empty = tempfile::tempdir().expect("a directory for an SR");
    let location = format!("device-config:location={}", empty.path().display());
    let files = new_uuid(
        &xe,
        &["sr-create", "name-label=files", "type=file", &location],
    );
    let pbd = xe.minimal(&["pbd-list", &format!("sr-uuid={files}")]);
    xe.ok(&["pbd-unplug", &format!("uuid={pbd}")]);
    xe.ok(&["sr-destroy", &format!("uuid={files}")]);
    assert_eq!(xe.minimal(&["sr-list", "name-label=files"]), "");
    let err = xe.fails(&["sr-create", "name-label=x", "type=lvmoiscsi", &location]);
    assert!(err.contains("SR_UNKNOWN_DRIVER"), "{err}");
    let err = xe.fails(&["sr-create", "name-label=x", "type=iso", "device-config=/x"]);
    assert!(err.contains("unknown parameter: device-config"), "{err}");
}

/// `vdi-create` (sizes with xe's suffixes), `vdi-resize` (`online=true` too),
/// `vdi-snapshot`, `vdi-clone`, `vdi-copy` and `vdi-destroy` print the new uuids where xe does
/// and change the VDIs as asked; `vm-disk-add` gives a VM a new disk; `vbd-create` and `vbd-destroy` make and remove
/// drives by uuid. Bad sizes, missing objects and wrong pairs of parameters are refused.
#[test]
fn vdi_commands_make_and_change_disks() {
    let host = file_driver_host();
    let xe = Xe::new(&host);
    let sr = local_sr(&xe);
    let in_sr = format!("sr-uuid={sr}");
    let vdi = new_uuid(
        &xe,
        &["vdi-create", &in_sr, "name-label=data", "virtual-size=8MiB"],
    );
    assert_eq!(
        param(&xe, "vdi", &vdi, "virtual-size"),
        (8 * MIB).to_string()
    );
    assert_eq!(param(&xe, "vdi", &vdi, "type"), "user");
    let this = format!("uuid={vdi}");
    xe.ok(&["vdi-resize", &this, "disk-size=12 mib"]);
    assert_eq!(
        param(&xe, "vdi", &vdi, "virtual-size"),
        (12 * MIB).to_string()
    );
    xe.ok(&["vdi-resize", &this, "disk-size=16MiB", "online=true"]);
    assert_eq!(
        param(&xe, "vdi", &vdi, "virtual-size"),
        (16 * MIB).to_string()
    );
    let snapshot = new_uuid(&xe, &["vdi-snapshot", &this]);
    assert_eq!(param(&xe, "vdi", &snapshot, "is-a-snapshot"), "true");
    assert_eq!(param(&xe, "vdi", &snapshot, "snapshot-of"), vdi);
    let clone = new_uuid(&xe, &["vdi-clone", &this, "new-name-label=clone"]);
    assert_eq!(param(&xe, "vdi", &clone, "name-label"), "clone");
    let copy = new_uuid(&xe, &["vdi-copy", &this, &in_sr]);
    assert_eq!(
        param(&xe, "vdi", &copy, "virtual-size"),
        (16 * MIB).to_string()
    );
    for gone in [&snapshot, &clone, &copy] {
        xe.ok(&["vdi-destroy", &format!("uuid={gone}")]);
        assert_eq!(xe.minimal(&["vdi-list", &format!("uuid={gone}")]), "");
    }

    let err = xe.fails(&["vdi-copy", &this]);
    assert!(err.contains("either sr-uuid= "), "{err}");
    let err = xe.fails(&[
        "vdi-create",
        &in_sr,
        "name-label=x",
        "virtual-size=10 parsecs",
    ]);
    assert!(err.contains("invalid value for virtual-size"), "{err}");
    let err = xe.fails(&[
        "vdi-create",
        &in_sr,
        "name-label=x",
        "virtual-size=1",
        "type=odd",
    ]);
    assert!(err.contains("invalid value for type"), "{err}");
    let nowhere = "uuid=00000000-0000-0000-0000-000000000000";
    let err = xe.fails(&["vdi-resize", nowhere, "disk-size=1GiB"]);
    assert!(err.contains("UUID_INVALID"), "{err}");
    let err = xe.fails(&["vdi-snapshot", nowhere]);
    assert!(err.contains("UUID_INVALID"), "{err}");

    let vm = xe.install("disks");
    xe.ok(&["vm-disk-add", "vm=disks", "disk-size=32MiB", "device=1"]);
    let added = xe.minimal(&["vbd-list", &format!("vm-uuid={vm}"), "userdevice=1"]);
    let disk = param(&xe, "vbd", &added, "vdi-uuid");
    assert_eq!(param(&xe, "vdi", &disk, "name-label"), "Created by xe");
    assert_eq!(
        param(&xe, "vdi", &disk, "virtual-size"),
        (32 * MIB).to_string()
    );
    let err = xe.fails(&["vm-disk-add", "vm=disks", "disk-size=32MiB", "device=1"]);
    assert!(err.contains("DEVICE_ALREADY_EXISTS"), "{err}");
    let drive = new_uuid(
        &xe,
        &[
            "vbd-create",
            &format!("vm-uuid={vm}"),
            &format!("vdi-uuid={vdi}"),
            "device=2",
        ],
    );
    assert_eq!(param(&xe, "vbd", &drive, "type"), "disk");
    assert_eq!(param(&xe, "vbd", &drive, "mode"), "rw");
    let empty_cd = new_uuid(
        &xe,
        &[
            "vbd-create",
            &format!("vm-uuid={vm}"),
            "device=3",
            "type=cd",
            "mode=ro",
        ],
    );
    assert_eq!(param(&xe, "vbd", &empty_cd, "empty"), "true");
    let err = xe.fails(&[
        "vbd-create",
        &format!("vm-uuid={vm}"),
        "device=4",
        "type=CD",
    ]);
    assert!(err.contains("VBD_CDS_MUST_BE_READONLY"), "{err}");
    for gone in [&drive, &empty_cd] {
        xe.ok(&["vbd-destroy", &format!("uuid={gone}")]);
        assert_eq!(xe.minimal(&["vbd-list", &format!("uuid={gone}")]), "");
    }
    xe.ok(&["vdi-destroy", &this]);
    assert_eq!(xe.minimal(&["vdi-list", &this]), "");
}

/// A raw image imported with `vdi-import` comes back the same with `vdi-export` as raw, and
/// as a qcow2 that `qemu-img` reads as the same bytes; a qcow2 imported comes back the same
/// too. A missing file, an unknown format and an unknown VDI are refused by name, leaving no
/// file behind.
#[test]
fn vdi_import_and_export_give_the_same_bytes_back() {
    let host = file_driver_host();
    let xe = Xe::new(&host);
    let sr = format!("sr-uuid={}", local_sr(&xe));
    let files = tempfile::tempdir().expect("a directory for images");
    let file = |name: &str| files.path().join(name);
    let arg = |name: &str| format!("filename={}", file(name).display());
    let image = file("image.raw");
    patterned_file(&image, 4 * MIB);
    let vdi = new_uuid(
        &xe,
        &["vdi-create", &sr, "name-label=in", "virtual-size=4MiB"],
    );
    let this = format!("uuid={vdi}");
    xe.ok(&["vdi-import", &this, &arg("image.raw"), "format=raw"]);
    xe.ok(&["vdi-export", &this, &arg("back.raw")]);
    let original = std::fs::read(&image).expect("the image");
    assert!(
        std::fs::read(file("back.raw")).expect("the export") == original,
        "the raw export differs from the import"
    );
    xe.ok(&["vdi-export", &this, &arg("back.qcow2"), "format=qcow2"]);
    let converted = std::process::Command::new("qemu-img")
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(file("back.qcow2"))
        .arg(file("converted.raw"))
        .status()
        .expect("qemu-img runs (tests/run installs it)");
    assert!(converted.success());
    assert!(
        std::fs::read(file("converted.raw")).expect("the conversion") == original,
        "the qcow2 export holds other bytes"
    );
    let other = new_uuid(
        &xe,
        &["vdi-create", &sr, "name-label=q", "virtual-size=4MiB"],
    );
    let other = format!("uuid={other}");
    xe.ok(&["vdi-import", &other, &arg("back.qcow2"), "format=qcow2"]);
    xe.ok(&["vdi-export", &other, &arg("again.raw"), "format=raw"]);
    assert!(
        std::fs::read(file("again.raw")).expect("the export") == original,
        "the qcow2 import differs"
    );

    let err = xe.fails(&["vdi-import", &this, &arg("missing.raw")]);
    assert!(err.contains("cannot read"), "{err}");
    let err = xe.fails(&["vdi-import", &this, &arg("image.raw"), "format=vhd"]);
    assert!(
        err.starts_with("error: the server refused /import_raw_vdi: VALUE_NOT_SUPPORTED\n"),
        "{err}"
    );
    let err = xe.fails(&["vdi-export", &this, &arg("refused.vhd"), "format=vhd"]);
    assert!(err.contains("VALUE_NOT_SUPPORTED"), "{err}");
    assert!(
        !file("refused.vhd").exists(),
        "a refused export makes no file"
    );
    let nowhere = "uuid=00000000-0000-0000-0000-000000000000";
    let err = xe.fails(&["vdi-import", nowhere, &arg("image.raw")]);
    assert!(err.contains("UUID_INVALID"), "{err}");
    let err = xe.fails(&["vdi-export", nowhere, &arg("nothing.raw")]);
    assert!(err.contains("UUID_INVALID"), "{err}");
    assert!(!file("nothing.raw").exists());
    let err = xe.fails(&["vdi-import", &this, &arg("image.raw"), "colour=red"]);
    assert!(err.contains("unknown parameter: colour"), "{err}");
}

/// `vdi-import` and `vdi-export` stream the file: moving a 128 MiB image either way, xe never
/// holds more than a fraction of it in memory.
#[test]
fn vdi_import_and_export_stream_with_bounded_memory() {
    const LENGTH: u64 = 128 * MIB;
    /// Far below the image, far above what xe needs for itself and its chunks.
    const LIMIT_KIB: u64 = 48 * 1024;
    let host = file_driver_host();
    let xe = Xe::new(&host);
    let sr = format!("sr-uuid={}", local_sr(&xe));
    let files = tempfile::tempdir().expect("a directory for images");
    let image = files.path().join("big.raw");
    let file = std::fs::File::create(&image).expect("the image");
    file.set_len(LENGTH).expect("a sparse image");
    let vdi = new_uuid(
        &xe,
        &["vdi-create", &sr, "name-label=big", "virtual-size=128MiB"],
    );
    let this = format!("uuid={vdi}");
    let (run, peak_kib) = xe.run_measured(&[
        "vdi-import",
        &this,
        &format!("filename={}", image.display()),
    ]);
    assert!(run.ok, "{}", run.stderr);
    assert!(peak_kib < LIMIT_KIB, "vdi-import held {peak_kib} KiB");
    let back = files.path().join("back.raw");
    let (run, peak_kib) =
        xe.run_measured(&["vdi-export", &this, &format!("filename={}", back.display())]);
    assert!(run.ok, "{}", run.stderr);
    assert!(peak_kib < LIMIT_KIB, "vdi-export held {peak_kib} KiB");
    let length = std::fs::metadata(&back).expect("the export").len();
    assert_eq!(length, LENGTH);
}
