//! One VM's QEMU process and what the driver keeps beside it: its directory (QMP socket,
//! pidfile, serial socket and log, QEMU's own log, the domain record), the spawn that keeps
//! QEMU a direct child of `oxapi`, and the checks that find it again after a restart.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;
use tokio::sync::watch;

use super::command_line::VmPaths;
use crate::backend::{BackendError, BackendOp, Domain, state_file};

/// `sun_path`'s size: a socket path must be shorter.
const SOCKET_PATH_MAX: usize = 108;

/// Starts `binary` with `args` in `paths.dir`, as a direct child in a process group of its
/// own (a signal to `oxapi`'s group does not reach the guests), stdin closed and its output
/// in its log. The returned receiver turns true once the child has exited and was reaped.
pub fn spawn(
    binary: &Path,
    args: &[std::ffi::OsString],
    paths: &VmPaths,
) -> Result<(u32, watch::Receiver<bool>), BackendError> {
    let failed = |reason: String| BackendError::Failed {
        op: BackendOp::Create,
        reason,
    };
    for socket in [&paths.qmp, &paths.serial] {
        if socket.as_os_str().len() >= SOCKET_PATH_MAX {
            return Err(failed(format!(
                "socket path {} is too long for a Unix socket; use a shorter data dir",
                socket.display()
            )));
        }
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.qemu_log)
        .map_err(|source| BackendError::State {
            path: paths.qemu_log.clone(),
            source,
        })?;
    let log_err = log.try_clone().map_err(|source| BackendError::State {
        path: paths.qemu_log.clone(),
        source,
    })?;
    let mut child = Command::new(binary)
        .args(args)
        .current_dir(&paths.dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
        .map_err(|err| failed(format!("cannot run {}: {err}", binary.display())))?;
    let pid = child
        .id()
        .ok_or_else(|| failed("QEMU exited at once".to_owned()))?;
    let (exited_tx, exited) = watch::channel(false);
    tokio::spawn(async move {
        match child.wait().await {
            Ok(status) => tracing::info!(pid, %status, "QEMU exited"),
            Err(err) => tracing::warn!(pid, error = &err as &dyn std::error::Error, "QEMU lost"),
        }
        let _ = exited_tx.send(true);
    });
    Ok((pid, exited))
}

/// The pid in `paths.pidfile` if that process is alive and is the QEMU of `vm` (its command
/// line names the VM's uuid: a pid reused by another process is not taken for it).
pub fn running_pid(paths: &VmPaths, vm: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(&paths.pidfile)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    is_qemu_of(pid, vm).then_some(pid)
}

/// Whether process `pid` is alive (not a zombie) and its command line names `vm`.
pub fn is_qemu_of(pid: u32, vm: &str) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name in parentheses; `Z` is a zombie.
    let state = status
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next());
    if matches!(state, None | Some("Z") | Some("X")) {
        return false;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    cmdline
        .split(|byte| *byte == 0)
        .any(|arg| arg == vm.as_bytes())
}

/// Sends SIGKILL to `pid` if it is still the QEMU of `vm`.
pub fn kill(pid: u32, vm: &str) {
    if !is_qemu_of(pid, vm) {
        return;
    }
    let Ok(pid) = i32::try_from(pid) else {
        return;
    };
    // SAFETY: kill has no memory effects; the pid was just checked to be this VM's QEMU.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Writes `domain` to `paths.record`, durably (`state_file`).
pub fn save_record(paths: &VmPaths, domain: &Domain) -> Result<(), BackendError> {
    state_file::write(&paths.record, domain)
}

/// The domain kept in `paths.record`.
pub fn load_record(paths: &VmPaths) -> Result<Domain, BackendError> {
    state_file::read_existing(&paths.record)
}
