//! The real Linux test guest (a Debian kernel and a busybox initramfs that `tests/guest/build`
//! makes from Debian packages), whether QEMU is installed, and waiting for the guest's marker
//! lines in a serial console log. The builder's header lists every marker and every
//! `oxapi.*` word of the kernel command line the guest obeys.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::host::target_dir;

/// The guest's marker lines on its serial console (ttyS0), as `tests/guest/build` documents them.
pub mod marker {
    /// User space runs, drivers are loaded, acpid listens for the power button.
    pub const UP: &str = "OXAPI-GUEST-UP";
    /// What the guest sees: block devices, CPUs, memory, NICs; later, hotplug.
    pub const INFO: &str = "OXAPI-GUEST-INFO";
    /// `oxapi.write` wrote its block; followed by the block's sha256.
    pub const WROTE: &str = "OXAPI-GUEST-WROTE";
    /// `oxapi.read`: followed by the sha256 of the first MiB of /dev/vda.
    pub const READ: &str = "OXAPI-GUEST-READ";
    /// `oxapi.fill` touched the guest's available memory; followed by `kib=<n>`.
    pub const FILLED: &str = "OXAPI-GUEST-FILLED";
    /// `oxapi.reboot`: the guest is about to reboot.
    pub const REBOOTING: &str = "OXAPI-GUEST-REBOOTING";
    /// `oxapi.reboot`: the boot after the reboot, which does not reboot again.
    pub const REBOOTED: &str = "OXAPI-GUEST-REBOOTED";
    /// The power button was pressed, or `oxapi.poweroff` asked: the guest syncs and powers off.
    pub const POWEROFF: &str = "OXAPI-GUEST-POWEROFF";
    /// A word of the command line could not be obeyed; followed by the word and why.
    pub const ERROR: &str = "OXAPI-GUEST-ERROR";
}

/// The size of the block `oxapi.write` writes and `oxapi.read` hashes, at offset 0 of /dev/vda.
pub const BLOCK_BYTES: usize = 1 << 20;

/// How often `SerialLog::wait_for` reads the log again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How many lines of the log a failed wait shows.
const LOG_TAIL_LINES: usize = 40;

/// The test guest's boot files, for QEMU's `-kernel` and `-initrd` (or a VM's `PV_kernel` and
/// `PV_ramdisk`).
#[derive(Debug, Clone)]
pub struct TestGuest {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// The test guest, built on the first call of this process (a no-op when `tests/run` or
/// another process built it already); `None`, printing why, when it cannot be built here (no
/// Debian apt, no network, not root on a machine whose apt lists are empty). A test without it
/// returns early, skipped.
pub fn test_guest() -> Option<TestGuest> {
    static BUILT: OnceLock<Result<TestGuest, String>> = OnceLock::new();
    match BUILT.get_or_init(build) {
        Ok(guest) => Some(guest.clone()),
        Err(why) => {
            let _ = writeln!(std::io::stderr(), "skipped: no test guest: {why}");
            None
        }
    }
}

/// Runs `tests/guest/build` into `<target>/test-guest`.
fn build() -> Result<TestGuest, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("guest/build");
    let dir = target_dir().join("test-guest");
    let out = Command::new(&script)
        .arg(&dir)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr.lines().last().unwrap_or("no message");
        return Err(format!(
            "{} failed ({}): {why}",
            script.display(),
            out.status
        ));
    }
    Ok(TestGuest {
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.img"),
    })
}

/// Whether `qemu-system-x86_64` runs here (`tests/run` installs it as root).
pub fn qemu_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
    })
}

/// The kernel command line for the guest: its console on ttyS0, then `words` (`oxapi.write=5a`, …).
pub fn kernel_args(words: &[&str]) -> String {
    std::iter::once("console=ttyS0")
        .chain(words.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The sha256 (lowercase hex) of `data`, as the guest's `sha256sum` prints it.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The sha256 the guest prints after `oxapi.write=<byte>`: of `BLOCK_BYTES` bytes of `byte`.
pub fn block_sha256(byte: u8) -> String {
    sha256_hex(&vec![byte; BLOCK_BYTES])
}

/// A guest's serial console log file, read as it grows: each wait looks only past the line
/// the previous wait matched, so a test can follow a boot (or several) step by step.
pub struct SerialLog {
    path: PathBuf,
    /// Bytes of the file already looked at: up to the end of the last matched line.
    consumed: usize,
}

impl SerialLog {
    /// The log at `path`, read from its start (the file may not exist yet).
    pub fn new(path: &Path) -> SerialLog {
        SerialLog {
            path: path.to_owned(),
            consumed: 0,
        }
    }

    /// Waits until a whole line past the last match contains `marker`; returns what follows the
    /// marker on that line, trimmed (e.g. the hash after `OXAPI-GUEST-WROTE`). Fails after
    /// `timeout` with the end of the log.
    pub fn wait_for(&mut self, marker: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let bytes = std::fs::read(&self.path).unwrap_or_default();
            let mut start = self.consumed.min(bytes.len());
            // Only complete lines: a marker line is written in pieces.
            while let Some(len) = bytes[start..].iter().position(|&b| b == b'\n') {
                let line = String::from_utf8_lossy(&bytes[start..start + len]);
                start += len + 1;
                if let Some(at) = line.find(marker) {
                    self.consumed = start;
                    return Ok(line[at + marker.len()..].trim().to_owned());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no line with {marker} in {} within {timeout:?}; its end:\n{}",
                    self.path.display(),
                    self.tail()
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The last lines of the log, for failure messages.
    pub fn tail(&self) -> String {
        let bytes = std::fs::read(&self.path).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wait returns what follows the marker and the next wait looks only past that line.
    #[test]
    fn waits_follow_the_log_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        std::fs::write(
            &path,
            "boot\nOXAPI-GUEST-UP\nOXAPI-GUEST-READ aa\r\nx OXAPI-GUEST-READ bb\n",
        )
        .unwrap();
        let mut log = SerialLog::new(&path);
        let second = Duration::from_secs(1);
        assert_eq!(log.wait_for(marker::UP, second), Ok(String::new()));
        assert_eq!(log.wait_for(marker::READ, second), Ok("aa".to_owned()));
        assert_eq!(log.wait_for(marker::READ, second), Ok("bb".to_owned()));
        assert!(log.wait_for(marker::UP, Duration::ZERO).is_err());
    }

    /// A marker on a line not yet ended is not matched: the guest may still be writing it.
    #[test]
    fn a_line_without_its_newline_is_not_matched_yet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        std::fs::write(&path, "OXAPI-GUEST-WROTE 12").unwrap();
        let mut log = SerialLog::new(&path);
        assert!(log.wait_for(marker::WROTE, Duration::ZERO).is_err());
        std::fs::write(&path, "OXAPI-GUEST-WROTE 1234\n").unwrap();
        assert_eq!(
            log.wait_for(marker::WROTE, Duration::ZERO),
            Ok("1234".to_owned())
        );
    }

    /// The expected hash of a written block is the one `sha256sum` gives for that MiB.
    #[test]
    fn block_sha256_is_the_hash_of_a_mib_of_the_byte() {
        assert_eq!(
            block_sha256(0),
            "30e14955ebf1352266dc2ff8067e68104607e750abb9d3b36582b8af909fcb58"
        );
    }

    /// The command line always puts the console on the serial port, then the words in order.
    #[test]
    fn kernel_args_start_with_the_serial_console() {
        assert_eq!(
            kernel_args(&["oxapi.write=5a", "oxapi.read"]),
            "console=ttyS0 oxapi.write=5a oxapi.read"
        );
    }
}
