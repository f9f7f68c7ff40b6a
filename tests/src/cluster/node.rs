//! One `oxapi` process of a test pool: its own address, data dir and config; started, killed,
//! frozen (SIGSTOP), thawed and restarted; its stdout watched for `oxapi ready` lines, so that a
//! host that restarts itself (after `pool.join`) can be waited for.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::sync::watch;

use crate::client::{Client, Protocol};
use crate::disk::SmallDisk;
use crate::host::{HTTPS_PORT, oxapi_bin};

/// How long a start (or a self-restart) may take: debug builds on a loaded 2-core machine.
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// What the process's stdout told so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Stdout {
    /// `oxapi ready:` lines printed by the current process (a self-restart prints another one).
    ready: u32,
    /// The process closed its stdout: it exited.
    is_closed: bool,
}

/// Whether the process runs, is frozen or is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Running,
    /// Stopped with SIGSTOP: it holds its sockets but answers nothing.
    Frozen,
    /// Killed or stopped; `restart` brings it back on the same data dir.
    Down,
}

/// How a host of a test pool starts.
#[derive(Debug, Clone, Default)]
pub struct NodeSetup {
    /// Its config file.
    pub config: serde_json::Value,
    /// Added to its process's environment (e.g. a `FakeClock`'s).
    pub env: Vec<(String, String)>,
    /// With a size, its data dir is a tmpfs of that many bytes (which needs root).
    pub disk_bytes: Option<u64>,
    /// Run real VMs with QEMU (`--backend qemu`) instead of the simulator.
    pub qemu: bool,
}

/// One host of a test pool.
pub struct Node {
    /// The index of this host in its cluster, from 0.
    pub index: usize,
    pub ip: Ipv4Addr,
    /// The root password this host accepts now (the pool's once it has joined).
    pub password: String,
    /// The root password of its first start (its environment's, whenever it starts a new pool).
    pub first_password: String,
    /// The tmpfs the data dir is on, if it has one of its own (before `root`: unmounted first).
    pub disk: Option<SmallDisk>,
    root: tempfile::TempDir,
    /// Variables set in the environment of every start (e.g. a fake clock's).
    env: Vec<(String, String)>,
    /// Whether it runs the qemu backend.
    qemu: bool,
    child: Option<Child>,
    stdout: Option<watch::Receiver<Stdout>>,
    state: NodeState,
    starts: u32,
}

impl Node {
    /// Writes the config file and starts the process as `setup` says; returns once it is
    /// ready.
    pub async fn start(index: usize, ip: Ipv4Addr, setup: NodeSetup) -> Node {
        let NodeSetup {
            config,
            env,
            disk_bytes,
            qemu,
        } = setup;
        let root = tempfile::Builder::new()
            .prefix("oxapi-cluster-")
            .tempdir()
            .expect("a temp dir for the host");
        let disk = disk_bytes.map(|bytes| {
            SmallDisk::mount(&root.path().join("data"), bytes)
                .unwrap_or_else(|why| panic!("no small disk for host {index}: {why}"))
        });
        let text = serde_json::to_vec_pretty(&config).expect("a config is plain JSON");
        std::fs::write(root.path().join("config.json"), text).expect("config file written");
        let password = format!("pw-{}-{index}", std::process::id());
        let mut node = Node {
            index,
            ip,
            first_password: password.clone(),
            password,
            disk,
            root,
            env,
            qemu,
            child: None,
            stdout: None,
            state: NodeState::Down,
            starts: 0,
        };
        node.spawn();
        node.wait_ready(1).await;
        node
    }

    pub fn state(&self) -> NodeState {
        self.state
    }

    pub fn is_running(&self) -> bool {
        self.state == NodeState::Running
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    pub fn url(&self) -> String {
        format!("https://{}:{}", self.ip, HTTPS_PORT)
    }

    /// `ip:port`, as `pool.join` takes the master's address.
    pub fn address(&self) -> String {
        format!("{}:{}", self.ip, HTTPS_PORT)
    }

    /// The file a start's stderr (the log) goes to; a self-restart keeps writing the same one.
    pub fn log_path(&self, start: u32) -> PathBuf {
        self.root.path().join(format!("oxapi-{start}.log"))
    }

    /// Every log this host wrote, over all its starts, in order.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|start| std::fs::read_to_string(self.log_path(start)).unwrap_or_default())
            .collect()
    }

    /// Whether this host leads, as the last leadership change in its logs says (`raft
    /// leadership changed … is_leader=…`); a host that never led does not.
    pub fn leads_by_its_logs(&self) -> bool {
        self.logs()
            .lines()
            .rfind(|line| line.contains("raft leadership changed"))
            .is_some_and(|line| line.contains("is_leader=true"))
    }

    /// The last lines of the current log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path(self.starts)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// This host's `identity.json` field `field` (`host_ref`, `host_uuid`, `raft_node_id`).
    pub fn identity(&self, field: &str) -> serde_json::Value {
        let path = self.data_dir().join("identity.json");
        let text = std::fs::read(&path).expect("the host wrote its identity");
        let identity: serde_json::Value =
            serde_json::from_slice(&text).expect("the identity is JSON");
        identity[field].clone()
    }

    pub fn host_ref(&self) -> String {
        self.identity("host_ref")
            .as_str()
            .expect("a host ref")
            .to_owned()
    }

    pub fn node_id(&self) -> u64 {
        self.identity("raft_node_id")
            .as_u64()
            .expect("a raft node id")
    }

    /// The host's certificate; a joiner keeps its own.
    pub fn cert_pem(&self) -> Vec<u8> {
        std::fs::read(self.data_dir().join("tls/cert.pem")).expect("the host wrote its certificate")
    }

    /// A client of this host, not logged in.
    pub fn client(&self, protocol: Protocol) -> Client {
        Client::pinned(self.url(), &self.cert_pem(), protocol)
    }

    /// A client of this host logged in as root with the password it accepts now.
    pub async fn login(&self, protocol: Protocol) -> Client {
        let mut client = self.client(protocol);
        client.login(&self.password).await;
        client
    }

    /// The process id, while there is a process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "host {} runs already", self.index);
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts)).expect("log file");
        let mut child = Command::new(oxapi_bin())
            .arg("serve")
            .arg("--config")
            .arg(self.root.path().join("config.json"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen")
            .arg(self.address())
            .arg("--unix-socket")
            .arg(self.root.path().join("xapi.sock"))
            .arg("--backend")
            .arg(if self.qemu { "qemu" } else { "simulator" })
            .arg("--log")
            .arg("info")
            .env("OXAPI_ROOT_PASSWORD", &self.first_password)
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", oxapi_bin().display()));
        let out = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = watch::channel(Stdout::default());
        // Drains stdout for the life of the process (so the pipe never fills), over self-restarts.
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("oxapi ready:") {
                    tx.send_modify(|s| s.ready += 1);
                }
            }
            tx.send_modify(|s| s.is_closed = true);
        });
        self.child = Some(child);
        self.stdout = Some(rx);
        self.state = NodeState::Running;
    }

    /// Waits until the current process has printed `count` ready lines; fails the test with its
    /// log if it exits or takes longer than `READY_TIMEOUT`.
    pub async fn wait_ready(&mut self, count: u32) {
        let mut rx = self.stdout.clone().expect("the host was started");
        let wait = rx.wait_for(|s| s.ready >= count || s.is_closed);
        let outcome = tokio::time::timeout(READY_TIMEOUT, wait).await;
        let is_ready = matches!(&outcome, Ok(Ok(s)) if s.ready >= count);
        if !is_ready {
            let status = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            panic!(
                "host {} did not print ready line {count} (exit status {status:?}); its log:\n{}",
                self.index,
                self.log_tail()
            );
        }
    }

    /// How many ready lines the current process printed.
    pub fn ready_count(&self) -> u32 {
        self.stdout.as_ref().map_or(0, |rx| rx.borrow().ready)
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = self.pid().expect("the host has a process");
        let pid = libc::pid_t::try_from(pid).expect("pids fit pid_t");
        // SAFETY: kill(2) on our own direct child, which we have not reaped yet.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.state = NodeState::Down;
    }

    /// SIGTERM, then wait for the exit; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        if self.state == NodeState::Frozen {
            self.thaw();
        }
        self.signal(libc::SIGTERM);
        let code = self.child.take()?.wait().ok().and_then(|s| s.code());
        self.state = NodeState::Down;
        code
    }

    /// SIGSTOP: the process keeps its sockets and answers nothing.
    pub fn freeze(&mut self) {
        assert_eq!(self.state, NodeState::Running, "host {}", self.index);
        self.signal(libc::SIGSTOP);
        self.state = NodeState::Frozen;
    }

    /// SIGCONT after `freeze`.
    pub fn thaw(&mut self) {
        assert_eq!(self.state, NodeState::Frozen, "host {}", self.index);
        self.signal(libc::SIGCONT);
        self.state = NodeState::Running;
    }

    /// Starts the process again on the same data dir, address and config; returns once ready.
    pub async fn restart(&mut self) {
        assert_eq!(self.state, NodeState::Down, "host {}", self.index);
        self.spawn();
        self.wait_ready(1).await;
    }

    /// The simulator's state file: what this host's hypervisor runs.
    pub fn simulator_state(&self) -> PathBuf {
        crate::host::simulator_state_in(&self.data_dir())
    }

    /// The process's resident memory now (`VmRSS`), in bytes.
    pub fn resident_bytes(&self) -> u64 {
        crate::host::memory_bytes(self.pid().expect("the host runs"), "VmRSS")
    }

    /// The process's peak resident memory (`VmHWM`) since it started or since
    /// `reset_peak_resident`, in bytes.
    pub fn peak_resident_bytes(&self) -> u64 {
        crate::host::memory_bytes(self.pid().expect("the host runs"), "VmHWM")
    }

    /// Starts the process's peak resident memory again from what it holds now (Linux's
    /// `clear_refs` 5).
    pub fn reset_peak_resident(&self) {
        let pid = self.pid().expect("the host runs");
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("peak RSS reset");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        // The QEMUs outlive `oxapi` by design (a restart takes them over): not the test.
        crate::qemu::kill_guests(&self.data_dir());
        crate::host::print_logs_of_failed_test(&self.ip.to_string(), self.starts, |start| {
            self.log_path(start)
        });
    }
}
