//! HVM boot on the `qemu` backend, as a user installs a VM from the pool's default template
//! "Other install media" (`VM.clone`, then `VM.provision` makes its empty system disk, as
//! `xe vm-install` does): a disk image imported into that disk boots, an ISO from an ISO
//! library in its CD drive boots, and `HVM_boot_params:order` picks which of the two boots
//! when both could; a booted disk grows under its running guest (`VDI.resize_online`). The
//! guests are 512-byte boot sectors made here, which print a marker on COM1 and halt: no OS,
//! so they run under KVM where it works. A UEFI template's VM boots OVMF, with EFI variables of
//! its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use api_spec::Value;
use oxapi_tests::qemu::{qemu_host, serial_log};
use oxapi_tests::storage::{create_cd, create_sr, image_info, import_image, sr_directory};
use oxapi_tests::{Client, Host, Protocol, SerialLog, logged_in};

const MIB: usize = 1 << 20;
/// The default template a user installs an OS from, from an ISO or a disk image.
const TEMPLATE: &str = "Other install media";
/// What the boot sector on the disk prints.
const DISK_MARKER: &str = "OXAPI-DISK-BOOTED";
/// What the boot sector on the ISO prints.
const CD_MARKER: &str = "OXAPI-CD-BOOTED";
/// How long a start may take to reach its boot sector (SeaBIOS tries an empty disk first).
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// The machine code of the boot sector, for `org 0x7c00` (SeaBIOS jumps there with the
/// sector loaded, from a disk to 0000:7c00, from a no-emulation CD to 07c0:0000; the code
/// uses only absolute data addresses with DS = 0 and relative jumps, so either serves):
///
/// ```text
///        xor  ax, ax        ; 31 c0
///        mov  ds, ax        ; 8e d8
///        mov  si, 0x7c17    ; be 17 7c   the message, right after the code
///        mov  dx, 0x3f8     ; ba f8 03   COM1's data register
///        cld                ; fc
/// next:  lodsb              ; ac
///        test al, al        ; 84 c0
///        jz   halt          ; 74 03
///        out  dx, al        ; ee
///        jmp  next          ; eb f8
/// halt:  cli                ; fa
///        hlt                ; f4
///        jmp  halt          ; eb fc
/// msg:   db   "<marker>", 13, 10, 0
/// ```
const BOOT_CODE: [u8; 23] = [
    0x31, 0xc0, 0x8e, 0xd8, 0xbe, 0x17, 0x7c, 0xba, 0xf8, 0x03, 0xfc, 0xac, 0x84, 0xc0, 0x74, 0x03,
    0xee, 0xeb, 0xf8, 0xfa, 0xf4, 0xeb, 0xfc,
];

/// A 512-byte x86 boot sector that prints `marker` and a line end on COM1, then halts.
fn boot_sector(marker: &str) -> [u8; 512] {
    let mut sector = [0u8; 512];
    sector[..BOOT_CODE.len()].copy_from_slice(&BOOT_CODE);
    let message = format!("{marker}\r\n");
    let end = BOOT_CODE.len() + message.len();
    assert!(
        end < 510,
        "the message and its NUL fit before the signature"
    );
    sector[BOOT_CODE.len()..end].copy_from_slice(message.as_bytes());
    sector[510..].copy_from_slice(&[0x55, 0xaa]);
    sector
}

/// A 1 MiB raw disk image whose MBR is the boot sector printing `marker`.
fn disk_image(marker: &str) -> Vec<u8> {
    let mut image = vec![0u8; MIB];
    image[..512].copy_from_slice(&boot_sector(marker));
    image
}

/// An El Torito no-emulation ISO at `dir/name` whose boot image (one 2048-byte CD sector,
/// which SeaBIOS loads whole: `-boot-load-size 4`) starts with the boot sector printing
/// `marker`; `None`, saying why, when `xorriso` is not installed (`tests/run` installs it).
fn iso_image(dir: &Path, name: &str, marker: &str) -> Option<PathBuf> {
    let tree = dir.join("iso-tree");
    std::fs::create_dir_all(&tree).expect("the ISO's tree");
    let mut boot = vec![0u8; 2048];
    boot[..512].copy_from_slice(&boot_sector(marker));
    std::fs::write(tree.join("boot.img"), boot).expect("the boot image");
    let iso = dir.join(name);
    let made = Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-V", "OXAPI_BOOT", "-o"])
        .arg(&iso)
        .args(["-b", "boot.img", "-no-emul-boot", "-boot-load-size", "4"])
        .arg(&tree)
        .output();
    match made {
        Ok(out) if out.status.success() => Some(iso),
        Ok(out) => panic!(
            "xorriso failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => {
            eprintln!("skipped: xorriso does not run ({e}); tests/run installs it");
            None
        }
    }
}

/// A VM installed from `TEMPLATE` as `xe vm-install` does it; its ref and uuid.
async fn install(client: &Client, name: &str) -> (String, String) {
    let templates = client
        .ok("VM.get_by_name_label", vec![Value::str(TEMPLATE)])
        .await;
    let template = templates.as_array().and_then(|t| t.first());
    let template = template.expect("the pool has the template").clone();
    // What the tests rely on: BIOS boot, the disk first and then the CD.
    let params = client
        .ok("VM.get_HVM_boot_params", vec![template.clone()])
        .await;
    let params = params.as_struct().expect("a map");
    assert_eq!(params.get("order"), Some(&Value::str("cd")), "{params:?}");
    assert_eq!(
        params.get("firmware"),
        Some(&Value::str("bios")),
        "{params:?}"
    );
    let vm = client
        .ok("VM.clone", vec![template, Value::str(name)])
        .await;
    client.ok("VM.provision", vec![vm.clone()]).await;
    client
        .ok("VM.set_is_a_template", vec![vm.clone(), Value::Bool(false)])
        .await;
    let uuid = client.ok("VM.get_uuid", vec![vm.clone()]).await;
    let vm = vm.as_str().expect("a VM ref").to_owned();
    (vm, uuid.as_str().expect("a uuid").to_owned())
}

/// The VDI of `vm`'s bootable disk at userdevice 0, which `VM.provision` made.
async fn system_disk(client: &Client, vm: &str) -> String {
    let vbds = client.ok("VM.get_VBDs", vec![Value::str(vm)]).await;
    for vbd in vbds.as_array().expect("a set of VBDs") {
        let record = client.ok("VBD.get_record", vec![vbd.clone()]).await;
        let record = record.as_struct().expect("a VBD record");
        let is = |field: &str, value: Value| record.get(field) == Some(&value);
        if is("userdevice", Value::str("0")) && is("type", Value::str("Disk")) {
            assert!(is("bootable", Value::Bool(true)), "{record:?}");
            let vdi = record.get("VDI").and_then(Value::as_str);
            return vdi.expect("the disk's VDI").to_owned();
        }
    }
    panic!("VM.provision made no disk at userdevice 0 for {vm}");
}

/// An ISO library SR on the directory of `iso`, scanned; the VDI `SR.scan` made of `iso`.
async fn iso_in_library(client: &Client, iso: &Path) -> String {
    let dir = iso.parent().expect("the ISO's directory");
    let sr = create_sr(client, "iso", &dir.to_string_lossy())
        .await
        .expect("SR.create of an ISO library");
    client.ok("SR.scan", vec![Value::str(&sr)]).await;
    let name = iso.file_name().expect("a file name").to_string_lossy();
    let vdis = client.ok("SR.get_VDIs", vec![Value::str(&sr)]).await;
    for vdi in vdis.as_array().expect("a set of VDIs") {
        let label = client.ok("VDI.get_name_label", vec![vdi.clone()]).await;
        if label.as_str() == Some(name.as_ref()) {
            return vdi.as_str().expect("a VDI ref").to_owned();
        }
    }
    panic!("SR.scan made no VDI named {name}");
}

/// Starts `vm` and waits until its serial console shows `marker`, and not the other device's.
async fn start_and_see(host: &Host, client: &Client, vm: &str, uuid: &str, marker: &str) {
    let start = vec![Value::str(vm), Value::Bool(false), Value::Bool(false)];
    client.ok("VM.start", start).await;
    let path = serial_log(&host.data_dir(), uuid);
    let mut log = SerialLog::new(&path);
    tokio::task::block_in_place(|| log.wait_for(marker, BOOT_TIMEOUT))
        .unwrap_or_else(|err| panic!("{err}"));
    let seen = String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()).into_owned();
    let other = if marker == DISK_MARKER {
        CD_MARKER
    } else {
        DISK_MARKER
    };
    assert!(!seen.contains(other), "both devices booted:\n{seen}");
}

/// Stops `vm` hard; it is Halted after.
async fn hard_shutdown(client: &Client, vm: &str) {
    client.ok("VM.hard_shutdown", vec![Value::str(vm)]).await;
    let state = client.ok("VM.get_power_state", vec![Value::str(vm)]).await;
    assert_eq!(state, Value::str("Halted"));
}

/// The layout the hand-assembled code relies on: the message right after the code, where
/// `mov si` points, and the boot signature at the end.
#[test]
fn the_boot_sector_prints_the_message_its_code_points_at() {
    let sector = boot_sector(DISK_MARKER);
    let message_at = u16::from_le_bytes([sector[5], sector[6]]) - 0x7c00;
    let message = &sector[usize::from(message_at)..];
    assert!(message.starts_with(format!("{DISK_MARKER}\r\n\0").as_bytes()));
    assert_eq!(&sector[510..], &[0x55, 0xaa]);
}

/// A raw disk image imported (`PUT /import_raw_vdi`) into the system disk of a VM installed
/// from "Other install media", as the README's cloud-image recipe does, boots on start: its
/// boot sector prints on the serial console. The running guest's disk then grows under it
/// with `VDI.resize_online` (QEMU's `block_resize`: the image QEMU holds open, write-locked,
/// has the new size), while `VDI.resize` refuses it (`VDI_IN_USE`) and a shrink is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_disk_image_boots_a_vm_installed_from_the_template() {
    let Some(host) = qemu_host(None) else { return };
    let client = logged_in(&host, Protocol::JsonRpc).await;
    let (vm, uuid) = install(&client, "disk-image").await;
    let disk = system_disk(&client, &vm).await;
    import_image(&host, &client, &disk, disk_image(DISK_MARKER)).await;

    start_and_see(&host, &client, &vm, &uuid, DISK_MARKER).await;
    grow_under_the_guest(&client, &disk).await;
    hard_shutdown(&client, &vm).await;
}

/// Grows `disk`, attached to a running guest, by 64 MiB online, and checks it.
async fn grow_under_the_guest(client: &Client, disk: &str) {
    let size_of = || client.ok("VDI.get_virtual_size", vec![Value::str(disk)]);
    let before = size_of().await.as_int().expect("a size");
    let grown = before + (64 << 20);
    let resize = |method: &'static str, size: i64| {
        client.call(method, vec![Value::str(disk), Value::Int(size)])
    };
    let refused = resize("VDI.resize", grown).await.expect_err("in use");
    assert_eq!(refused.code, "VDI_IN_USE", "{refused:?}");
    let shrink = resize("VDI.resize_online", before - (1 << 20))
        .await
        .expect_err("a shrink");
    assert_eq!(shrink.code, "SR_BACKEND_FAILURE_79", "{shrink:?}");
    assert_eq!(size_of().await, Value::Int(before));

    assert_eq!(resize("VDI.resize_online", grown).await, Ok(Value::str("")));
    assert_eq!(size_of().await, Value::Int(grown));
    let sr = client.ok("VDI.get_SR", vec![Value::str(disk)]).await;
    let location = client.ok("VDI.get_location", vec![Value::str(disk)]).await;
    let path = sr_directory(client, sr.as_str().expect("an SR ref"))
        .await
        .join(location.as_str().expect("a location"));
    let info = image_info(&path).expect("the disk is a qcow2 image");
    assert_eq!(info["virtual-size"].as_i64(), Some(grown), "{info}");
}

/// A root client of a host whose ISO library holds the bootable ISO printing `CD_MARKER`.
struct BootLibrary {
    client: Client,
    /// The ISO's VDI.
    iso: String,
    /// The library's directory, kept while the test runs.
    _dir: tempfile::TempDir,
}

impl BootLibrary {
    /// `None`, saying why, when the ISO cannot be made here (no `xorriso`).
    async fn new(host: &Host) -> Option<BootLibrary> {
        let dir = tempfile::tempdir().expect("a temp dir");
        let iso = iso_image(dir.path(), "boot.iso", CD_MARKER)?;
        let client = logged_in(host, Protocol::JsonRpc).await;
        let iso = iso_in_library(&client, &iso).await;
        Some(BootLibrary {
            client,
            iso,
            _dir: dir,
        })
    }
}

/// An ISO from an ISO library, put in the CD drive (userdevice 3) of a VM installed from
/// "Other install media", as the README's installer recipe does, boots on start: the
/// template's order `cd` tries the empty system disk first, finds no boot sector, and boots
/// the CD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iso_in_the_cd_drive_boots_a_vm_installed_from_the_template() {
    let Some(host) = qemu_host(None) else { return };
    let Some(library) = BootLibrary::new(&host).await else {
        return;
    };
    let (client, iso) = (&library.client, &library.iso);
    let (vm, uuid) = install(client, "installer").await;
    create_cd(client, &vm, Some(iso), "3").await;

    start_and_see(&host, client, &vm, &uuid, CD_MARKER).await;
    hard_shutdown(client, &vm).await;
}

/// With a bootable disk image and a bootable ISO in the CD drive, `HVM_boot_params:order`
/// decides: the template's `cd` boots the disk, `dc` (set as `xe vm-param-set
/// HVM-boot-params:order=dc` does) boots the CD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_boot_order_picks_the_disk_or_the_cd() {
    let Some(host) = qemu_host(None) else { return };
    let Some(library) = BootLibrary::new(&host).await else {
        return;
    };
    let (client, iso) = (&library.client, &library.iso);
    let (vm, uuid) = install(client, "both").await;
    let disk = system_disk(client, &vm).await;
    import_image(&host, client, &disk, disk_image(DISK_MARKER)).await;
    create_cd(client, &vm, Some(iso), "3").await;

    start_and_see(&host, client, &vm, &uuid, DISK_MARKER).await;
    hard_shutdown(client, &vm).await;

    let key = || Value::str("order");
    client
        .ok(
            "VM.remove_from_HVM_boot_params",
            vec![Value::str(&vm), key()],
        )
        .await;
    let order = vec![Value::str(&vm), key(), Value::str("dc")];
    client.ok("VM.add_to_HVM_boot_params", order).await;
    start_and_see(&host, client, &vm, &uuid, CD_MARKER).await;
    hard_shutdown(client, &vm).await;
}

/// Where Debian's `ovmf` package puts the empty EFI variable store oxapi copies per VM.
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// What OVMF's boot manager prints on the serial console as it tries the boot options.
const UEFI_MARKER: &str = "BdsDxe";

/// A VM installed from "Generic Linux UEFI" (`HVM_boot_params:firmware=uefi`) boots OVMF, not
/// SeaBIOS: its boot manager reports on the serial console as it finds nothing to boot on the
/// empty disk. The VM has an EFI variable store of its own, kept beside the VM directories,
/// which the firmware wrote into (its boot options), and which its next start keeps. Under TCG,
/// forced by the config and shown in the host's `cpu_info` (OVMF stops with an emulation
/// failure under this nested KVM); skipped without OVMF.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uefi_template_boots_ovmf_with_a_variable_store_of_its_own() {
    if !Path::new(OVMF_VARS).is_file() {
        eprintln!("skipped: OVMF is not installed (tests/run installs the ovmf package)");
        return;
    }
    let Some(host) = qemu_host(Some(serde_json::json!({"qemu": {"accel": "tcg"}}))) else {
        return;
    };
    let client = logged_in(&host, Protocol::JsonRpc).await;
    // The accelerator the config forces is the one the host shows.
    let hosts = client.ok("host.get_all", vec![]).await;
    let this = hosts.as_array().and_then(|h| h.first()).expect("a host");
    let cpu_info = client.ok("host.get_cpu_info", vec![this.clone()]).await;
    let accel = cpu_info.as_struct().and_then(|info| info.get("accel"));
    assert_eq!(accel, Some(&Value::str("tcg")), "{cpu_info:?}");
    let templates = client
        .ok(
            "VM.get_by_name_label",
            vec![Value::str("Generic Linux UEFI")],
        )
        .await;
    let template = templates.as_array().and_then(|t| t.first());
    let template = template.expect("the pool has the UEFI template").clone();
    let vm = client
        .ok("VM.clone", vec![template, Value::str("uefi")])
        .await;
    client.ok("VM.provision", vec![vm.clone()]).await;
    client
        .ok("VM.set_is_a_template", vec![vm.clone(), Value::Bool(false)])
        .await;
    let vm = vm.as_str().expect("a VM ref").to_owned();
    let uuid = client.ok("VM.get_uuid", vec![Value::str(&vm)]).await;
    let uuid = uuid.as_str().expect("a uuid").to_owned();
    let nvram = host
        .data_dir()
        .join("qemu")
        .join(format!("{uuid}.nvram.fd"));
    let empty_store = std::fs::read(OVMF_VARS).expect("OVMF's variable store");

    let start = vec![Value::str(&vm), Value::Bool(false), Value::Bool(false)];
    client.ok("VM.start", start.clone()).await;
    let mut log = SerialLog::new(&serial_log(&host.data_dir(), &uuid));
    tokio::task::block_in_place(|| log.wait_for(UEFI_MARKER, BOOT_TIMEOUT))
        .unwrap_or_else(|err| panic!("{err}"));
    hard_shutdown(&client, &vm).await;
    let written = std::fs::read(&nvram).expect("the VM's own variable store");
    assert_eq!(written.len(), empty_store.len(), "a copy of OVMF's store");
    assert!(
        written != empty_store,
        "the firmware wrote its boot options"
    );

    client.ok("VM.start", start).await;
    let mut log = SerialLog::new(&serial_log(&host.data_dir(), &uuid));
    tokio::task::block_in_place(|| log.wait_for(UEFI_MARKER, BOOT_TIMEOUT))
        .unwrap_or_else(|err| panic!("{err}"));
    hard_shutdown(&client, &vm).await;
    let kept = std::fs::read(&nvram).expect("the VM's own variable store");
    assert!(
        kept != empty_store,
        "the next start kept the VM's variables"
    );
}
