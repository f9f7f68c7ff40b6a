//! The QEMUs a `--backend qemu` host runs: each guest's process found from the driver's
//! directories, and the cleanup a test needs (the QEMUs outlive
//! `oxapi` by design, so a test's end must stop them).

use std::path::{Path, PathBuf};

use crate::{Host, HostOptions, qemu_available};

/// Whether QEMU runs here; when it does not, says that the test skips.
pub fn qemu_or_skip() -> bool {
    let available = qemu_available();
    if !available {
        eprintln!("skipped: qemu-system-x86_64 is not installed (tests/run installs it)");
    }
    available
}

/// A one-host pool on the qemu backend with `config` (the config file's JSON, if any); `None`
/// (the test skips) without QEMU.
pub fn qemu_host(config: Option<serde_json::Value>) -> Option<Host> {
    qemu_or_skip().then(|| {
        Host::start_with(HostOptions {
            qemu: true,
            config,
            ..HostOptions::default()
        })
    })
}

/// The directory the `qemu` driver keeps the VM `uuid`'s QEMU files in.
pub fn guest_dir(data_dir: &Path, uuid: &str) -> PathBuf {
    data_dir.join("qemu").join(uuid)
}

/// The serial console log of the VM `uuid`'s QEMU while it runs.
pub fn serial_log(data_dir: &Path, uuid: &str) -> PathBuf {
    guest_dir(data_dir, uuid).join("serial.log")
}

/// The serial console log of the VM `uuid`'s last run, kept once its QEMU is gone.
pub fn last_serial_log(data_dir: &Path, uuid: &str) -> PathBuf {
    data_dir.join("qemu").join(format!("{uuid}.serial.log"))
}

/// The pid of the VM `uuid`'s QEMU, if that process is alive (not a zombie) and runs QEMU for
/// this VM.
pub fn guest_pid(data_dir: &Path, uuid: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(guest_dir(data_dir, uuid).join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    is_alive_qemu_of(pid, uuid).then_some(pid)
}

/// Whether process `pid` is alive, not a zombie, and has `uuid` on its command line.
pub fn is_alive_qemu_of(pid: u32, uuid: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next());
    if matches!(state, None | Some("Z") | Some("X")) {
        return false;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    cmdline
        .split(|byte| *byte == 0)
        .any(|arg| arg == uuid.as_bytes())
}

/// Whether process `pid` has the file at `path` open.
pub fn has_open(pid: u32, path: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path))
}

/// The parent of process `pid`.
pub fn parent_pid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("PPid:"))
        .and_then(|ppid| ppid.trim().parse().ok())
}

/// The most memory process `pid` has held resident so far (`VmHWM`), in bytes.
pub fn peak_resident_bytes(pid: u32) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: i64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The cpu cgroup process `pid` is in, as a directory, and whether it is cgroup v2's; `None`
/// when this machine has no cpu controller (cgroup v2's unified hierarchy when it offers one,
/// else v1's hierarchy of its own).
pub fn cpu_cgroup(pid: u32) -> Option<(PathBuf, bool)> {
    let root = Path::new("/sys/fs/cgroup");
    let unified = std::fs::read_to_string(root.join("cgroup.controllers"))
        .is_ok_and(|list| list.split_whitespace().any(|c| c == "cpu"));
    let groups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    groups.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        if unified {
            controllers.is_empty().then(|| (root.join(path), true))
        } else {
            controllers
                .split(',')
                .any(|c| c == "cpu")
                .then(|| (root.join(controllers).join(path), false))
        }
    })
}

/// The `Cpus_allowed_list` of each vCPU thread of QEMU `pid` (QEMU names them `CPU n/KVM`
/// or `CPU n/TCG`).
pub fn vcpu_affinities(pid: u32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut allowed = Vec::new();
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("CPU ") {
            continue;
        }
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        if let Some(list) = status
            .lines()
            .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        {
            allowed.push(list.trim().to_owned());
        }
    }
    allowed
}

/// Kills every QEMU the driver started under `data_dir`.
pub fn kill_guests(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir.join("qemu")) else {
        return;
    };
    for entry in entries.flatten() {
        let uuid = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = guest_pid(data_dir, &uuid) {
            // SAFETY: kill has no memory effects; the pid was just checked to be this QEMU.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
    }
}
