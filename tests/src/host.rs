//! Real `oxapi` processes on their own loopback addresses: start, stop, kill -9, start again.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The port every test host serves HTTPS on; hosts differ by address, not port.
pub const HTTPS_PORT: u16 = 4443;
/// The port of the optional plain-HTTP listener.
pub const HTTP_PORT: u16 = 4080;
/// How long a start may take before the test fails (debug builds on a loaded 2-core machine).
const READY_TIMEOUT: Duration = Duration::from_secs(90);

static STARTED: AtomicU32 = AtomicU32::new(0);

/// The `oxapi` binary under test: `$OXAPI_BIN`, else the one built with the same profile as this
/// crate (`<target dir>/debug/oxapi`, or `release` for the benchmark).
pub fn oxapi_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("OXAPI_BIN") {
        return PathBuf::from(bin);
    }
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    target_dir().join(profile).join("oxapi")
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, else the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// A loopback address no other test process uses: the pid picks the middle bytes, a counter the
/// last one.
fn fresh_address() -> Ipv4Addr {
    let pid = std::process::id();
    let n = STARTED.fetch_add(1, Ordering::Relaxed);
    assert!(n < 250, "one test process may start at most 250 hosts");
    Ipv4Addr::new(
        127,
        ((pid >> 8) % 254 + 1) as u8,
        (pid & 0xff) as u8,
        (n + 2) as u8,
    )
}

/// How to start a host.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// Put `OXAPI_ROOT_PASSWORD` in the environment of the first start; `None` lets oxapi generate one.
    pub root_password: Option<String>,
    /// Also listen on plain HTTP (port `HTTP_PORT`).
    pub plain_http: bool,
    /// A config file for `--config` (e.g. the simulator's latencies).
    pub config: Option<serde_json::Value>,
    /// The umask the process starts with (the test's own when `None`).
    pub umask: Option<libc::mode_t>,
    /// Run real VMs with QEMU (`--backend qemu`) instead of the simulator.
    pub qemu: bool,
}

/// A running (or stopped) `oxapi` process with its own data dir and address.
pub struct Host {
    pub ip: Ipv4Addr,
    /// The root password: given, or read from the first start's output.
    pub password: String,
    /// Every stdout line the process printed before it was ready, over all its starts.
    pub startup_lines: Vec<String>,
    options: HostOptions,
    root: tempfile::TempDir,
    child: Option<Child>,
    starts: u32,
}

impl Host {
    /// Starts a new one-host pool with a known root password.
    pub fn start() -> Host {
        Host::start_with(HostOptions {
            root_password: Some(format!("pw-{}", std::process::id())),
            ..HostOptions::default()
        })
    }

    pub fn start_with(options: HostOptions) -> Host {
        let root = tempfile::Builder::new()
            .prefix("oxapi-test-")
            .tempdir()
            .expect("a temp dir for the host");
        let mut host = Host {
            ip: fresh_address(),
            password: options.root_password.clone().unwrap_or_default(),
            startup_lines: Vec::new(),
            options,
            root,
            child: None,
            starts: 0,
        };
        host.start_again();
        host
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The simulator's state file: what this host's hypervisor, storage and network hold.
    pub fn simulator_state(&self) -> PathBuf {
        simulator_state_in(&self.data_dir())
    }

    pub fn unix_socket(&self) -> PathBuf {
        self.root.path().join("xapi.sock")
    }

    /// Where the process's stderr (its log) goes, one file per start.
    pub fn log_path(&self, start: u32) -> PathBuf {
        self.root.path().join(format!("oxapi-{start}.log"))
    }

    pub fn url(&self) -> String {
        format!("https://{}:{}", self.ip, HTTPS_PORT)
    }

    pub fn http_url(&self) -> String {
        format!("http://{}:{}", self.ip, HTTP_PORT)
    }

    /// The host's TLS certificate, as it keeps it in its data dir.
    pub fn cert_pem(&self) -> Vec<u8> {
        std::fs::read(self.data_dir().join("tls/cert.pem")).expect("the host wrote its certificate")
    }

    /// The command that starts this host's process on its data dir, its log going to the
    /// file of start number `self.starts`.
    fn command(&self) -> Command {
        let log = std::fs::File::create(self.log_path(self.starts)).expect("log file");
        let mut cmd = Command::new(oxapi_bin());
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen")
            .arg(format!("{}:{}", self.ip, HTTPS_PORT))
            .arg("--unix-socket")
            .arg(self.unix_socket())
            .arg("--backend")
            .arg(if self.options.qemu {
                "qemu"
            } else {
                "simulator"
            })
            .env_remove("OXAPI_ROOT_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        if self.options.plain_http {
            cmd.arg("--http-listen")
                .arg(format!("{}:{}", self.ip, HTTP_PORT));
        }
        if let Some(pw) = &self.options.root_password {
            cmd.env("OXAPI_ROOT_PASSWORD", pw);
        }
        if let Some(config) = &self.options.config {
            let path = self.root.path().join("config.json");
            let text = serde_json::to_vec_pretty(config).expect("a config is plain JSON");
            std::fs::write(&path, text).expect("config file written");
            cmd.arg("--config").arg(path);
        }
        if let Some(mask) = self.options.umask {
            // SAFETY: umask(2) is async-signal-safe and touches only the child's own mask.
            unsafe {
                cmd.pre_exec(move || {
                    libc::umask(mask);
                    Ok(())
                });
            }
        }
        cmd
    }

    /// Starts the process, as the next start of this host.
    fn spawn(&mut self) -> Child {
        assert!(self.child.is_none(), "the host is running already");
        self.starts += 1;
        self.command()
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", oxapi_bin().display()))
    }

    /// Starts the process (again) on the same data dir and waits until it prints that it is ready.
    pub fn start_again(&mut self) {
        let mut child = self.spawn();
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        // The reader thread keeps draining stdout after the ready line, so the pipe never fills.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("oxapi ready:") => break,
                Ok(line) => {
                    if let Some(pw) = line.strip_prefix("root password: ") {
                        self.password = pw.trim().to_owned();
                    }
                    self.startup_lines.push(line);
                }
                Err(_) => {
                    let status = self
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten());
                    let log =
                        std::fs::read_to_string(self.log_path(self.starts)).unwrap_or_default();
                    panic!("oxapi did not become ready (exit status {status:?}); its log:\n{log}");
                }
            }
        }
    }

    /// Starts the process again on the same data dir, expecting it to refuse to start: returns
    /// its exit code and log once it has exited (within `READY_TIMEOUT`).
    pub fn start_refused(&mut self) -> (Option<i32>, String) {
        let mut child = self.spawn();
        let deadline = Instant::now() + READY_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("the child can be waited for") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("oxapi did not exit; its log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status.code(), self.log())
    }

    /// Starts again with `OXAPI_ROOT_PASSWORD` set to `password`, which the host must ignore: its
    /// pool exists already.
    pub fn start_again_with_password(&mut self, password: &str) {
        self.options.root_password = Some(password.to_owned());
        self.start_again();
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A memory figure of the running process in KiB: `VmRSS` (resident now) or `VmHWM` (the
    /// most it was resident).
    pub fn memory_kib(&self, field: &str) -> u64 {
        memory_bytes(self.pid().expect("the host runs"), field) / 1024
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = libc::pid_t::try_from(child.id()).expect("pids fit pid_t");
        // SAFETY: kill(2) on our own direct child, which we have not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        child.wait().ok().and_then(|s| s.code())
    }

    /// The log of the latest start, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path(self.starts)).unwrap_or_default()
    }
}

/// The simulator's state file under the data dir `data_dir`.
pub fn simulator_state_in(data_dir: &Path) -> PathBuf {
    data_dir.join("simulator/domains.json")
}

/// The simulator's state file at `path` as JSON; `None` before the simulator first wrote it
/// (or if it is not JSON).
pub fn read_simulator_state(path: &Path) -> Option<serde_json::Value> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A memory figure of process `pid` from `/proc/<pid>/status`, in bytes: `"VmRSS"` (resident
/// now) or `"VmHWM"` (the highest resident so far).
pub fn memory_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read the status of process {pid}: {e}"));
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in the status of process {pid}"));
    kib * 1024
}

/// How many lines of each log a failed test prints.
const LOG_TAIL_LINES: usize = 80;

/// When the current thread is panicking (a failed test), prints the end of the logs
/// `log_path(1..=starts)` of the host at `ip`: its temp dir goes with it.
pub fn print_logs_of_failed_test(ip: &str, starts: u32, log_path: impl Fn(u32) -> PathBuf) {
    if !std::thread::panicking() {
        return;
    }
    for start in 1..=starts {
        let log = std::fs::read_to_string(log_path(start)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        eprintln!(
            "--- host {ip} start {start}: log tail ---\n{}",
            tail.join("\n")
        );
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
        // The QEMUs outlive `oxapi` by design (a restart takes them over): not the test.
        crate::qemu::kill_guests(&self.data_dir());
        print_logs_of_failed_test(&self.ip.to_string(), self.starts, |start| {
            self.log_path(start)
        });
    }
}
