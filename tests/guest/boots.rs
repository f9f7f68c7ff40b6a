//! The test guest boots under bare QEMU (TCG, direct kernel boot, no oxapi): it announces
//! itself on the serial console, writes a known block to its virtio disk, and powers off
//! cleanly on the ACPI power button. This tests the harness (`oxapi_tests::guest`) that the
//! QEMU driver's tests then use through oxapi. Skipped, saying why, without QEMU or without
//! the guest (`tests/guest/build` could not run here).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use oxapi_tests::cluster::skipped;
use oxapi_tests::guest::{BLOCK_BYTES, block_sha256, kernel_args, marker, sha256_hex};
use oxapi_tests::{SerialLog, qemu_available, test_guest};

/// How long the guest may take to reach user space under TCG (about 3 s when the machine is
/// idle; the 2 cores are shared with builds and other tests).
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a marker after the boot, the QMP socket and each QMP answer may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long QEMU may take to exit after the power button is pressed.
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the test checks whether QEMU exited or its QMP socket exists.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A QEMU process, a direct child of the test: killed and reaped if the test ends first.
struct Qemu {
    child: Child,
}

impl Qemu {
    /// Waits for QEMU to exit on its own, within `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("QEMU can be waited for") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A QMP connection: one JSON object a line; events are skipped while waiting for an answer.
struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to the socket QEMU listens on (once it exists) and negotiates capabilities.
    fn connect(path: &Path) -> Qmp {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(e) if Instant::now() >= deadline => panic!("no QMP at {path:?}: {e}"),
                Err(_) => std::thread::sleep(POLL_INTERVAL),
            }
        };
        stream
            .set_read_timeout(Some(STEP_TIMEOUT))
            .expect("a read timeout");
        let writer = stream.try_clone().expect("a second handle");
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read();
        assert!(greeting.get("QMP").is_some(), "a QMP greeting: {greeting}");
        qmp.execute("qmp_capabilities");
        qmp
    }

    /// One message from QEMU.
    fn read(&mut self) -> serde_json::Value {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .expect("QMP answers in time");
        assert!(n > 0, "QMP closed");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("QMP sent {line:?}: {e}"))
    }

    /// Runs a command without arguments and returns its `return` value.
    fn execute(&mut self, command: &str) -> serde_json::Value {
        let request = serde_json::json!({ "execute": command });
        writeln!(self.writer, "{request}").expect("QMP takes the command");
        loop {
            let mut message = self.read();
            if let Some(value) = message.get_mut("return") {
                return value.take();
            }
            assert!(
                message.get("event").is_some(),
                "{command} failed: {message}"
            );
        }
    }
}

/// The guest boots to its marker under TCG, writes 1 MiB of 0xa7 to /dev/vda and prints that
/// block's hash, the disk file then holds that block, and QMP `system_powerdown` makes the
/// guest power off so that QEMU exits with status 0.
#[test]
fn the_test_guest_boots_writes_its_disk_and_powers_off_on_the_power_button() {
    let test = "the_test_guest_boots_writes_its_disk_and_powers_off_on_the_power_button";
    if !qemu_available() {
        skipped(test, "qemu-system-x86_64 is not installed");
        return;
    }
    let Some(guest) = test_guest() else {
        skipped(test, "the test guest cannot be built here");
        return;
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let disk = dir.path().join("disk.raw");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(8 << 20))
        .expect("a scratch disk");
    let serial = dir.path().join("serial.log");
    let qmp_socket = dir.path().join("qmp.sock");
    let stderr = std::fs::File::create(dir.path().join("qemu.stderr")).expect("a stderr file");
    let byte = 0xa7_u8;

    let started = Instant::now();
    let child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-machine", "q35", "-m", "256", "-smp", "1"])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .arg("-kernel")
        .arg(&guest.kernel)
        .arg("-initrd")
        .arg(&guest.initrd)
        .arg("-append")
        .arg(kernel_args(&[&format!("oxapi.write={byte:02x}")]))
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-drive")
        .arg(format!(
            "file={},format=raw,if=none,id=disk0",
            disk.display()
        ))
        .args([
            "-device",
            "virtio-blk-pci,drive=disk0",
            "-device",
            "pvpanic",
        ])
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", qmp_socket.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("qemu-system-x86_64 starts");
    let mut qemu = Qemu { child };
    let mut qmp = Qmp::connect(&qmp_socket);
    let mut log = SerialLog::new(&serial);

    log.wait_for(marker::UP, BOOT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let up = started.elapsed();
    let wrote = log
        .wait_for(marker::WROTE, STEP_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let written = started.elapsed();
    assert_eq!(wrote, block_sha256(byte), "the hash the guest printed");

    qmp.execute("system_powerdown");
    let pressed = Instant::now();
    log.wait_for(marker::POWEROFF, STEP_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let status = qemu.wait_exit(POWEROFF_TIMEOUT).unwrap_or_else(|| {
        panic!(
            "QEMU still runs {POWEROFF_TIMEOUT:?} after system_powerdown; serial log:\n{}",
            log.tail()
        )
    });
    let powered_off = pressed.elapsed();
    assert!(status.success(), "QEMU exited with {status}");

    let bytes = std::fs::read(&disk).expect("the disk file");
    assert_eq!(
        sha256_hex(&bytes[..BLOCK_BYTES]),
        block_sha256(byte),
        "the disk's first MiB"
    );
    let _ = writeln!(
        std::io::stderr(),
        "test guest under TCG: exec → {} {} ms, → {} {} ms; system_powerdown → QEMU exit {} ms",
        marker::UP,
        up.as_millis(),
        marker::WROTE,
        written.as_millis(),
        powered_off.as_millis()
    );
}
