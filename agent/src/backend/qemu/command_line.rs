//! The `qemu-system-x86_64` command line of a VM: the machine, its CPUs and memory, the
//! monitor and serial sockets, and the buses its disks and NICs are later plugged into over
//! QMP. No disk or NIC is on the command line: every one goes through the same `blockdev-add`
//! and `device_add` path, at start as by hotplug.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use host_api::VmSpec;
use host_api::overhead::TCG_TRANSLATION_CACHE_MIB;

use super::accel::Acceleration;

/// The files of one VM's QEMU, in its own directory.
#[derive(Debug, Clone)]
pub struct VmPaths {
    pub dir: PathBuf,
    /// The QMP socket.
    pub qmp: PathBuf,
    pub pidfile: PathBuf,
    /// The serial console's socket (a client attaches there).
    pub serial: PathBuf,
    /// Everything the guest wrote on its serial console.
    pub serial_log: PathBuf,
    /// The serial log of the VM's last run, kept once its domain is destroyed.
    pub last_serial_log: PathBuf,
    /// QEMU's own stdout and stderr.
    pub qemu_log: PathBuf,
    /// The domain as the driver keeps it.
    pub record: PathBuf,
    /// The VM's EFI variables (UEFI guests), kept across its starts beside the VM directories.
    pub nvram: PathBuf,
}

impl VmPaths {
    pub fn new(root: &Path, vm: &str) -> VmPaths {
        let dir = root.join(vm);
        VmPaths {
            qmp: dir.join("qmp"),
            pidfile: dir.join("pid"),
            serial: dir.join("serial"),
            serial_log: dir.join("serial.log"),
            qemu_log: dir.join("qemu.log"),
            record: dir.join("domain.json"),
            last_serial_log: root.join(format!("{vm}.serial.log")),
            nvram: root.join(format!("{vm}.nvram.fd")),
            dir,
        }
    }
}

/// Root ports made at boot for disks (by `userdevice`), then for NICs (by `device`): q35's
/// root bus takes no hotplug, so every slot a device may take later exists from the start.
pub const DISK_PORTS: u32 = 16;
pub const NIC_PORTS: u32 = 8;

/// The root port a disk with `userdevice` plugs into, or a NIC with `device` (`is_nic`).
pub fn root_port(device: &str, is_nic: bool) -> Option<String> {
    let index: u32 = device.parse().ok()?;
    match is_nic {
        false if index < DISK_PORTS => Some(format!("rp{index}")),
        true if index < NIC_PORTS => Some(format!("rp{}", DISK_PORTS + index)),
        _ => None,
    }
}

/// The UEFI firmware a guest boots: OVMF's code (read-only) and the VM's variable store.
#[derive(Debug, Clone, PartialEq)]
pub struct Uefi {
    pub code: PathBuf,
    pub vars: PathBuf,
}

/// Whether `spec` boots UEFI firmware (`HVM_boot_params:firmware=uefi`, and no `PV_kernel`).
pub fn boots_uefi(spec: &VmSpec) -> bool {
    spec.pv_kernel.is_empty()
        && spec
            .hvm_boot_params
            .get("firmware")
            .is_some_and(|firmware| firmware.eq_ignore_ascii_case("uefi"))
}

/// The arguments of the QEMU of `spec`, paused before its first instruction; `uefi` is its
/// firmware when it boots UEFI (SeaBIOS otherwise).
pub fn arguments(
    spec: &VmSpec,
    paths: &VmPaths,
    accel: &Acceleration,
    uefi: Option<&Uefi>,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    let name = format!(
        "guest={},debug-threads=on",
        spec.name_label.replace(',', ",,")
    );
    push(&["-name", &name, "-uuid", &spec.uuid]);
    // TCG's translation cache is bounded to what the master's memory model reserves for it.
    let accel_arg = match accel.accel.as_str() {
        "tcg" => format!("tcg,tb-size={TCG_TRANSLATION_CACHE_MIB}"),
        other => other.to_owned(),
    };
    push(&[
        "-machine",
        "q35",
        "-accel",
        &accel_arg,
        "-cpu",
        &accel.cpu_model,
    ]);
    let memory_mib = spec.memory_static_max_bytes.div_ceil(1 << 20).max(1);
    push(&["-m", &memory_mib.to_string()]);
    let vcpus_max = spec.vcpus_max.max(1);
    let vcpus = spec.vcpus_at_startup.clamp(1, vcpus_max);
    push(&["-smp", &format!("{vcpus},maxcpus={vcpus_max}")]);
    push(&["-nodefaults", "-no-user-config", "-display", "none", "-S"]);
    // A guest's power-off, reboot or panic stops it where the agent finds it, even if the
    // agent was down when it happened; the agent then honours `actions_after_*`.
    push(&["-action", "shutdown=pause,reboot=shutdown,panic=pause"]);
    let qmp = format!("unix:{},server=on,wait=off", paths.qmp.display());
    push(&["-qmp", &qmp]);
    let pidfile = paths.pidfile.display().to_string();
    push(&["-pidfile", &pidfile]);
    let serial = format!(
        "socket,id=serial0,path={},server=on,wait=off,logfile={},logappend=on",
        paths.serial.display(),
        paths.serial_log.display()
    );
    push(&["-chardev", &serial, "-serial", "chardev:serial0"]);
    push(&[
        "-device",
        "pvpanic",
        "-device",
        "virtio-balloon-pci,id=balloon0",
    ]);
    push(&["-device", "virtio-scsi-pci,id=scsi0"]);
    for port in 0..DISK_PORTS + NIC_PORTS {
        let device = format!("pcie-root-port,id=rp{port},chassis={}", port + 1);
        push(&["-device", &device]);
    }
    if let Some(uefi) = uefi {
        // QEMU's option syntax doubles a comma within a value.
        let file = |path: &Path| path.display().to_string().replace(',', ",,");
        let code = format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={}",
            file(&uefi.code)
        );
        let vars = format!("if=pflash,format=raw,unit=1,file={}", file(&uefi.vars));
        push(&["-drive", &code, "-drive", &vars]);
    }
    if spec.pv_kernel.is_empty() {
        if let Some(order) = spec.hvm_boot_params.get("order") {
            let order: String = order.chars().filter(|c| "cdn".contains(*c)).collect();
            if !order.is_empty() {
                push(&["-boot", &format!("order={order}")]);
            }
        }
    } else {
        push(&["-kernel", &spec.pv_kernel]);
        if !spec.pv_ramdisk.is_empty() {
            push(&["-initrd", &spec.pv_ramdisk]);
        }
        if !spec.pv_args.is_empty() {
            push(&["-append", &spec.pv_args]);
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        crate::testing::vm_spec("vm-1", 0, 0)
    }

    fn joined(args: &[OsString]) -> String {
        args.iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn accel() -> Acceleration {
        Acceleration {
            accel: "tcg".to_owned(),
            cpu_model: "max".to_owned(),
        }
    }

    /// Memory is `memory_static_max` in MiB, CPUs start at `VCPUs_at_startup` with room to
    /// hot-add up to `VCPUs_max`, and the guest starts paused with its stops kept.
    #[test]
    fn the_machine_is_sized_from_the_spec_and_starts_paused() {
        let mut spec = spec();
        spec.memory_static_max_bytes = 256 << 20;
        spec.vcpus_at_startup = 2;
        spec.vcpus_max = 4;
        let paths = VmPaths::new(Path::new("/run/x"), &spec.uuid);
        let line = joined(&arguments(&spec, &paths, &accel(), None));
        assert!(line.contains("-m 256 "), "{line}");
        assert!(line.contains("-accel tcg,tb-size=64 "), "{line}");
        assert!(line.contains("-smp 2,maxcpus=4 "), "{line}");
        assert!(line.contains(" -S "), "{line}");
        assert!(line.contains("-action shutdown=pause,reboot=shutdown,panic=pause"));
        assert!(line.contains(&format!("-uuid {}", spec.uuid)), "{line}");
    }

    /// A PV kernel boots directly with its ramdisk and arguments; without one the HVM boot
    /// order is kept, with letters QEMU does not know dropped.
    #[test]
    fn a_pv_kernel_boots_directly_and_hvm_keeps_its_boot_order() {
        let mut spec = spec();
        spec.hvm_boot_params
            .insert("order".to_owned(), "dcx".to_owned());
        let paths = VmPaths::new(Path::new("/run/x"), &spec.uuid);
        let line = joined(&arguments(&spec, &paths, &accel(), None));
        assert!(line.contains("-boot order=dc"), "{line}");
        assert!(!line.contains("-kernel"), "{line}");
        spec.pv_kernel = "/boot/vmlinuz".to_owned();
        spec.pv_ramdisk = "/boot/initrd".to_owned();
        spec.pv_args = "console=ttyS0 quiet".to_owned();
        let args = arguments(&spec, &paths, &accel(), None);
        let line = joined(&args);
        assert!(
            line.contains("-kernel /boot/vmlinuz -initrd /boot/initrd"),
            "{line}"
        );
        assert!(args.contains(&OsString::from("console=ttyS0 quiet")));
        assert!(!line.contains("-boot"), "{line}");
    }

    /// `firmware=uefi` boots OVMF from its read-only code with the VM's own variable store
    /// (commas in paths doubled); a PV kernel or another firmware does not.
    #[test]
    fn uefi_guests_boot_ovmf_with_their_own_variables() {
        let mut spec = spec();
        assert!(!boots_uefi(&spec));
        spec.hvm_boot_params
            .insert("firmware".to_owned(), "uefi".to_owned());
        assert!(boots_uefi(&spec));
        let paths = VmPaths::new(Path::new("/run/x"), &spec.uuid);
        let uefi = Uefi {
            code: PathBuf::from("/usr/share/OVMF/a,b.fd"),
            vars: paths.nvram.clone(),
        };
        let line = joined(&arguments(&spec, &paths, &accel(), Some(&uefi)));
        assert!(
            line.contains(
                "-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/a,,b.fd"
            ),
            "{line}"
        );
        let vars = format!(
            "-drive if=pflash,format=raw,unit=1,file=/run/x/{}.nvram.fd",
            spec.uuid
        );
        assert!(line.contains(&vars), "{line}");
        spec.pv_kernel = "/boot/vmlinuz".to_owned();
        assert!(!boots_uefi(&spec));
    }

    /// Disks take the first root ports by `userdevice`, NICs the next ones by `device`; a
    /// device number out of range has none.
    #[test]
    fn disks_and_nics_have_root_ports_of_their_own() {
        assert_eq!(root_port("0", false).as_deref(), Some("rp0"));
        assert_eq!(root_port("15", false).as_deref(), Some("rp15"));
        assert_eq!(root_port("0", true).as_deref(), Some("rp16"));
        assert_eq!(root_port("16", false), None);
        assert_eq!(root_port("8", true), None);
        assert_eq!(root_port("xvda", false), None);
    }
}
