//! `Config`: what an operator can set for one host, read from a JSON file and overridden by flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::front::server::ConnectionLimits;
use agent::backend::BackendOp;
use agent::backend::simulator::{Failure, SimulatorConfig};
use agent::{AgentConfig, BackendConfig, FileSrConfig, StorageChoice};

mod data_plane;
mod peer;
mod pool;
mod qemu;
pub use self::data_plane::DataPlaneSettings;
pub use self::peer::PeerSettings;
pub use self::pool::PoolSettings;
pub use self::qemu::QemuSettings;

/// Everything an operator can set for one host. The default runs a one-host pool on this machine.
///
/// The file is JSON; every field may be left out and keeps its default:
///
/// ```
/// # fn main() -> Result<(), serde_json::Error> {
/// let config: member::config::Config = serde_json::from_str(
///     r#"{"data_dir": "/var/lib/oxapi", "listen": "0.0.0.0:443", "raft": {"election_ticks": 20}}"#,
/// )?;
/// assert_eq!(config.raft.election_ticks, 20);
/// assert_eq!(config.raft.tick_interval_ms, 100);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where this host keeps its Raft log, DB dumps, TLS key and certificate and identity. A
    /// relative path is relative to the working directory.
    pub data_dir: PathBuf,
    /// The HTTPS address of the XenAPI, `IP:PORT`. `0.0.0.0` listens everywhere (the management
    /// address is then the default-route interface's); port 0 picks a free port.
    pub listen: SocketAddr,
    /// An optional plain-HTTP address of the XenAPI, `IP:PORT`; absent: no plain HTTP.
    pub http_listen: Option<SocketAddr>,
    /// The Unix socket of local, trusted calls (a login there is root); absent:
    /// `<data_dir>/xapi.sock`.
    pub unix_socket: Option<PathBuf>,
    /// The Raft node's policy numbers.
    pub raft: RaftSettings,
    /// Bounds on requests, connections and the replies of other hosts.
    pub limits: RequestLimits,
    /// The master's policy numbers.
    pub master: MasterSettings,
    /// How long a shutdown waits for calls in flight, in seconds, 0..=600.
    pub shutdown_grace_secs: u64,
    /// The drivers the host agent acts through (hypervisor, storage per SR type, network):
    /// `"simulator"` (the only one yet, all three in one).
    pub backend: BackendKind,
    /// The host agent's policy numbers.
    pub agent: AgentSettings,
    /// The simulator's behaviour; read only when `backend` is `"simulator"`.
    pub simulator: SimulatorSettings,
    /// How QEMU runs guests; read only when the backend is `"qemu"`.
    pub qemu: QemuSettings,
    /// How the hosts of a pool answer for each other.
    pub pool: PoolSettings,
    /// How the streams between the hosts of a pool notice a silent peer and come back.
    pub peer: PeerSettings,
    /// How long a bulk transfer between two hosts may make no progress.
    pub data_plane: DataPlaneSettings,
}

/// The sets of drivers the agent's factory (`agent::backend::Drivers::from_config`) can
/// choose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// `qemu` where its emulator (`qemu.binary`) is installed, `simulator` otherwise.
    #[default]
    Auto,
    /// In-memory domains, VDIs and bridges kept in `<data_dir>/simulator/domains.json`, for
    /// tests and benchmarks.
    Simulator,
    /// Real VMs, one QEMU each (`qemu` settings); the local SR's and `file` SRs' disks are
    /// qcow2 files made with `qemu-img`, whatever `agent.storage_driver` says.
    Qemu,
}

/// The host agent's policy numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettings {
    /// The most VM operations running at once on this host (the parallelism of VM starts;
    /// xapi's default is 4), 1..=1024.
    pub workers: usize,
    /// How long one hook script may run before it is killed, in seconds, 1..=86400.
    pub hook_timeout_secs: u64,
    /// How long a clean shutdown or reboot waits for the guest before failing with
    /// `VM_SHUTDOWN_TIMEOUT`, in seconds, 1..=86400 (xapi: 1200).
    pub clean_shutdown_timeout_secs: u64,
    /// Which driver keeps the VDIs of the local SR and of `file` SRs: `"simulator"` (the
    /// default: the backend's records without data) or `"file"` (qcow2 files in the SR's
    /// directory, made with `qemu-img`).
    pub storage_driver: StorageDriverKind,
    /// How long one `qemu-img` run of the `file` driver may take before it is killed (also its
    /// CPU-time limit), in seconds, 1..=86400; default 60.
    pub qemu_img_timeout_secs: u64,
}

/// The drivers that can keep the VDIs of directory SRs (`agent.storage_driver`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageDriverKind {
    /// The backend's own storage.
    #[default]
    Simulator,
    /// qcow2 files through `qemu-img`.
    File,
}

/// The simulator's behaviour, e.g.
/// `{"latency_ms": {"build": 50}, "fail": [{"operation": "build", "nth": 3}]}`. Operations are
/// named as the drivers' methods: the hypervisor's `create`, `build`, `plug_disk`, `plug_nic`,
/// `start_device_model`, `unpause`, `set_needs_poweroff`, `pause`, `request_shutdown`,
/// `unplug_nic`, `unplug_disk`, `stop_device_model`, `destroy`, `save`, `restore`,
/// `save_image`, `receive_image`, `restore_received`, `insert_cd`, `eject_cd`, `set_vcpus`,
/// `set_memory_target`, `update_spec`; storage's `attach`, `activate`, `deactivate`,
/// `detach`, `create_vdi`, `destroy_vdi`, `resize_vdi`, `snapshot_vdi`, `clone_vdi`, `scan`;
/// the network's `ensure_network`, `ensure_vif`, `tear_down_vif`, `tear_down_network`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorSettings {
    /// How long each kind of operation takes, in milliseconds, 0..=600000; absent kinds take
    /// no time.
    pub latency_ms: BTreeMap<BackendOp, u64>,
    /// Failures to inject: `{"operation": "build", "nth": 3}` fails the third `build` after
    /// start (once); `nth` is at least 1.
    pub fail: Vec<Failure>,
    /// The CPU the simulated host presents to guests, e.g. `{"vendor": "GenuineIntel",
    /// "flags": "fpu vme"}`: the vendor and flags of every `host_cpu` (the pool's homogeneity
    /// check compares them at a join). Absent: the machine's, from /proc/cpuinfo.
    pub cpu: Option<SimulatedCpu>,
}

/// The vendor and flags a simulated host's CPUs show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedCpu {
    pub vendor: String,
    pub flags: String,
}

/// The Raft node's policy numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftSettings {
    /// Time between two Raft ticks, in milliseconds, 1..=10000.
    pub tick_interval_ms: u64,
    /// Ticks without a heartbeat before a follower starts an election, 2..=1000, and more than
    /// `heartbeat_ticks`.
    pub election_ticks: usize,
    /// Ticks between two heartbeats of the leader, 1..=1000.
    pub heartbeat_ticks: usize,
    /// Applied entries kept in the log before a snapshot compacts it, 1..=100000000.
    pub compact_after_entries: u64,
    /// The most proposals committed in one batch (one fsync), 1..=65536.
    pub max_batch: usize,
    /// The leader promotes caught-up learners while there are fewer voters than this, 1..=5.
    pub max_voters: usize,
    /// A voter silent this long is replaced by a caught-up learner, in seconds, 1..=86400.
    pub replace_voter_after_secs: u64,
    /// How long a node whose store failed (a full or read-only disk) waits before it opens the
    /// store again, in seconds, 1..=3600.
    pub store_retry_secs: u64,
    /// The free bytes the data dir's disk keeps in reserve: below it the pool refuses API
    /// writes (`DATABASE_SPACE_LOW`) until there is room again, and a store that failed waits
    /// for it before it opens again; 0 turns the reserve off (256 MiB).
    pub min_free_bytes: u64,
    /// The most bytes the store (Raft log and dumps) may take before the pool refuses API
    /// writes; 0 is no quota (2 GiB).
    pub quota_bytes: u64,
    /// The largest encoded change one call may commit, in bytes, 1024..=67108864; larger ones
    /// are refused with `DATABASE_ENTRY_TOO_LARGE` (2 MiB).
    pub max_entry_bytes: usize,
}

/// Bounds on a request (its body, applied before and while decoding it, and how long it may
/// take to arrive), on the connections of the front door, and on the replies this host reads
/// from other hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestLimits {
    /// The largest request body, in bytes, 1024..=1073741824; bigger ones get HTTP 413.
    pub max_body_bytes: usize,
    /// The deepest nesting of arrays and structs, 1..=1024.
    pub max_depth: usize,
    /// The longest string in a request, in bytes, 1..=`max_body_bytes`.
    pub max_string_bytes: usize,
    /// The most values (scalars, arrays, structs) in one request body, 1..=100000000; more get
    /// `INTERNAL_ERROR` before any of them is built. Default 100000.
    pub max_values: usize,
    /// How long a client may take to send a request's headers, which is also how long an idle
    /// keep-alive connection stays open, in seconds, 1..=3600; then the connection is closed.
    /// Default 30.
    pub header_timeout_secs: u64,
    /// How long a client may take to send a request's body once its headers are in, in seconds,
    /// 1..=3600; a slower one gets HTTP 408. Default 60.
    pub body_timeout_secs: u64,
    /// The most connections open at once on the HTTPS and plain-HTTP listeners together (the
    /// Unix socket is not counted), 1..=1000000; more get HTTP 503. Keep it well below the
    /// process's open-file limit. Default 512.
    pub max_connections: usize,
    /// The largest reply read from another host (the master's answers to `pool.join`, a
    /// member's to `pool.eject`, `pool.recover_slaves`, `pool.sync_database`), in bytes,
    /// 4096..=1073741824; a longer one fails the operation as an unreachable host would.
    /// Default 4194304.
    pub max_reply_bytes: usize,
}

/// The master's policy numbers (see `master::MasterConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MasterSettings {
    /// How stale a session's `last_active` may get before a call writes it again, in seconds,
    /// 1..=86400.
    pub session_last_active_interval_secs: i64,
    /// Sessions idle longer than this are destroyed, in seconds, 60..=31536000.
    pub session_idle_timeout_secs: i64,
    /// Finished tasks older than this are destroyed, in seconds, 1..=31536000.
    pub task_gc_after_secs: i64,
    /// Pending tasks older than this are destroyed, in seconds, 1..=31536000.
    pub pending_task_gc_after_secs: i64,
    /// Time between two housekeeping rounds (old tasks, idle sessions), in seconds, 1..=86400.
    pub housekeeping_interval_secs: u64,
    /// A host whose wall clock differs from the master's by more than this (for a few
    /// seconds) raises `HOST_CLOCK_SKEW_DETECTED`, in seconds, 1..=86400; default 5.
    pub clock_skew_limit_secs: i64,
    /// The most argon2 password checks (and hashes) running at once, each ~19 MiB and a core
    /// for ~20 ms; the others wait their turn; 1..=64, default 2.
    pub password_checks: usize,
    /// How long a wrong password or unknown user holds its source (the client's IP) before
    /// the answer and before that source's next check, in milliseconds, 0..=60000; default
    /// 2000.
    pub password_failure_delay_ms: u64,
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse config file {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// What the command line sets; each present value replaces the file's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
    pub unix_socket: Option<PathBuf>,
    pub backend: Option<BackendKind>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("oxapi-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 4443)),
            http_listen: None,
            unix_socket: None,
            raft: RaftSettings::default(),
            limits: RequestLimits::default(),
            master: MasterSettings::default(),
            shutdown_grace_secs: 5,
            backend: BackendKind::default(),
            agent: AgentSettings::default(),
            simulator: SimulatorSettings::default(),
            qemu: QemuSettings::default(),
            pool: PoolSettings::default(),
            peer: PeerSettings::default(),
            data_plane: DataPlaneSettings::default(),
        }
    }
}

impl Default for AgentSettings {
    fn default() -> Self {
        let agent = AgentConfig::default();
        AgentSettings {
            workers: agent.workers,
            hook_timeout_secs: agent.hook_timeout.as_secs(),
            clean_shutdown_timeout_secs: agent.clean_shutdown_timeout.as_secs(),
            storage_driver: StorageDriverKind::default(),
            qemu_img_timeout_secs: 60,
        }
    }
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            tick_interval_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 1,
            compact_after_entries: 10_000,
            max_batch: 256,
            max_voters: 3,
            replace_voter_after_secs: 30,
            store_retry_secs: 2,
            min_free_bytes: 256 << 20,
            quota_bytes: 2 << 30,
            max_entry_bytes: 2 << 20,
        }
    }
}

impl Default for RequestLimits {
    fn default() -> Self {
        let limits = api_spec::codec::Limits::default();
        let connections = ConnectionLimits::default();
        RequestLimits {
            max_body_bytes: limits.max_body_bytes,
            max_depth: limits.max_depth,
            max_string_bytes: limits.max_string_bytes,
            max_values: limits.max_values,
            header_timeout_secs: connections.header_timeout.as_secs(),
            body_timeout_secs: connections.body_timeout.as_secs(),
            max_connections: connections.max_connections,
            max_reply_bytes: 4 * 1024 * 1024,
        }
    }
}

impl Default for MasterSettings {
    fn default() -> Self {
        let master = master::MasterConfig::default();
        MasterSettings {
            session_last_active_interval_secs: master.session_last_active_interval_secs,
            session_idle_timeout_secs: master.session_idle_timeout_secs,
            task_gc_after_secs: master.task_gc_after_secs,
            pending_task_gc_after_secs: master.pending_task_gc_after_secs,
            housekeeping_interval_secs: 60,
            clock_skew_limit_secs: master.clock_skew_limit_secs,
            password_checks: master.password_checks,
            password_failure_delay_ms: master.password_failure_delay_ms,
        }
    }
}

impl Config {
    /// Reads the file if one is given (else starts from the default), applies the flags and
    /// validates the result.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        overrides.apply(&mut config);
        config.validate()?;
        Ok(config)
    }

    /// Parses a JSON config file; absent fields keep their defaults, unknown ones are refused.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", "must not be empty");
        }
        if self
            .http_listen
            .is_some_and(|http| http == self.listen && http.port() != 0)
        {
            return invalid("http_listen", "must differ from listen");
        }
        if self
            .unix_socket
            .as_ref()
            .is_some_and(|path| path.as_os_str().is_empty())
        {
            return invalid("unix_socket", "must not be empty");
        }
        check_range("shutdown_grace_secs", self.shutdown_grace_secs, 0, 600)?;

        let raft = &self.raft;
        check_range("raft.tick_interval_ms", raft.tick_interval_ms, 1, 10_000)?;
        check_range("raft.election_ticks", raft.election_ticks, 2, 1000)?;
        check_range("raft.heartbeat_ticks", raft.heartbeat_ticks, 1, 1000)?;
        if raft.election_ticks <= raft.heartbeat_ticks {
            return invalid(
                "raft.election_ticks",
                "must be greater than raft.heartbeat_ticks",
            );
        }
        check_range(
            "raft.compact_after_entries",
            raft.compact_after_entries,
            1,
            100_000_000,
        )?;
        check_range("raft.max_batch", raft.max_batch, 1, 65_536)?;
        check_range("raft.max_voters", raft.max_voters, 1, 5)?;
        check_range(
            "raft.replace_voter_after_secs",
            raft.replace_voter_after_secs,
            1,
            86_400,
        )?;
        check_range("raft.store_retry_secs", raft.store_retry_secs, 1, 3600)?;
        check_range("raft.max_entry_bytes", raft.max_entry_bytes, 1024, 64 << 20)?;

        let limits = &self.limits;
        check_range(
            "limits.max_body_bytes",
            limits.max_body_bytes,
            1024,
            1 << 30,
        )?;
        check_range("limits.max_depth", limits.max_depth, 1, 1024)?;
        check_range(
            "limits.max_string_bytes",
            limits.max_string_bytes,
            1,
            limits.max_body_bytes,
        )?;
        check_range("limits.max_values", limits.max_values, 1, 100_000_000)?;
        check_range(
            "limits.header_timeout_secs",
            limits.header_timeout_secs,
            1,
            3600,
        )?;
        check_range(
            "limits.body_timeout_secs",
            limits.body_timeout_secs,
            1,
            3600,
        )?;
        check_range(
            "limits.max_connections",
            limits.max_connections,
            1,
            1_000_000,
        )?;
        check_range(
            "limits.max_reply_bytes",
            limits.max_reply_bytes,
            4096,
            1 << 30,
        )?;

        let master = &self.master;
        check_range(
            "master.session_last_active_interval_secs",
            master.session_last_active_interval_secs,
            1,
            86_400,
        )?;
        check_range(
            "master.session_idle_timeout_secs",
            master.session_idle_timeout_secs,
            60,
            YEAR_SECS,
        )?;
        check_range(
            "master.task_gc_after_secs",
            master.task_gc_after_secs,
            1,
            YEAR_SECS,
        )?;
        check_range(
            "master.pending_task_gc_after_secs",
            master.pending_task_gc_after_secs,
            1,
            YEAR_SECS,
        )?;
        check_range(
            "master.housekeeping_interval_secs",
            master.housekeeping_interval_secs,
            1,
            86_400,
        )?;
        check_range(
            "master.clock_skew_limit_secs",
            master.clock_skew_limit_secs,
            1,
            86_400,
        )?;
        check_range("master.password_checks", master.password_checks, 1, 64)?;
        check_range(
            "master.password_failure_delay_ms",
            master.password_failure_delay_ms,
            0,
            60_000,
        )?;

        let agent = &self.agent;
        check_range("agent.workers", agent.workers, 1, 1024)?;
        check_range(
            "agent.hook_timeout_secs",
            agent.hook_timeout_secs,
            1,
            86_400,
        )?;
        check_range(
            "agent.qemu_img_timeout_secs",
            agent.qemu_img_timeout_secs,
            1,
            86_400,
        )?;
        check_range(
            "agent.clean_shutdown_timeout_secs",
            agent.clean_shutdown_timeout_secs,
            1,
            86_400,
        )?;
        for latency in self.simulator.latency_ms.values() {
            check_range("simulator.latency_ms", *latency, 0, 600_000)?;
        }
        self.pool.validate()?;
        self.peer.validate()?;
        self.data_plane.validate()?;
        self.qemu.validate()
    }

    /// The CPU the backend presents instead of the machine's, if it does.
    pub fn presented_cpu(&self) -> Option<&SimulatedCpu> {
        match self.backend() {
            BackendKind::Simulator => self.simulator.cpu.as_ref(),
            _ => None,
        }
    }

    /// The backend this host runs: `Auto` resolved by whether QEMU is installed.
    pub fn backend(&self) -> BackendKind {
        match self.backend {
            BackendKind::Auto if agent::backend::qemu::is_installed(&self.qemu.binary) => {
                BackendKind::Qemu
            }
            BackendKind::Auto => BackendKind::Simulator,
            chosen => chosen,
        }
    }

    /// The host agent's part of the settings.
    pub fn agent_config(&self) -> AgentConfig {
        let backend = match self.backend() {
            BackendKind::Qemu => BackendConfig::Qemu(self.qemu.driver_config()),
            BackendKind::Auto | BackendKind::Simulator => {
                BackendConfig::Simulator(SimulatorConfig {
                    latency: self
                        .simulator
                        .latency_ms
                        .iter()
                        .map(|(op, ms)| (*op, Duration::from_millis(*ms)))
                        .collect(),
                    failures: self.simulator.fail.clone(),
                })
            }
        };
        AgentConfig {
            workers: self.agent.workers,
            hook_timeout: Duration::from_secs(self.agent.hook_timeout_secs),
            clean_shutdown_timeout: Duration::from_secs(self.agent.clean_shutdown_timeout_secs),
            // Waiting for the other end of a migration is a transfer making no progress.
            transfer_wait: self.data_plane.stall_timeout(),
            backend,
            storage: match self.agent.storage_driver {
                StorageDriverKind::Simulator => StorageChoice::Backend,
                StorageDriverKind::File => StorageChoice::File(FileSrConfig {
                    qemu_img_timeout: Duration::from_secs(self.agent.qemu_img_timeout_secs),
                }),
            },
        }
    }

    /// The Unix socket path, defaulted from the data dir.
    pub fn unix_socket_path(&self) -> PathBuf {
        self.unix_socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join("xapi.sock"))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

impl RaftSettings {
    pub fn tick_interval(&self) -> Duration {
        Duration::from_millis(self.tick_interval_ms)
    }

    /// Where the pool DB must keep room on this host.
    pub fn space_limits(&self) -> crate::space::SpaceLimits {
        crate::space::SpaceLimits {
            reserve_bytes: self.min_free_bytes,
            quota_bytes: self.quota_bytes,
        }
    }

    /// The leader's voter policy.
    pub fn voter_policy(&self) -> crate::raft::VoterPolicy {
        crate::raft::VoterPolicy {
            max_voters: self.max_voters,
            replace_voter_after: Duration::from_secs(self.replace_voter_after_secs),
        }
    }
}

impl RequestLimits {
    /// The limits in the codecs' terms.
    pub fn codec_limits(&self) -> api_spec::codec::Limits {
        api_spec::codec::Limits {
            max_body_bytes: self.max_body_bytes,
            max_depth: self.max_depth,
            max_string_bytes: self.max_string_bytes,
            max_values: self.max_values,
        }
    }

    /// The front door's bounds on connections.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            body_timeout: Duration::from_secs(self.body_timeout_secs),
            max_connections: self.max_connections,
        }
    }
}

impl MasterSettings {
    /// The master's part of the settings.
    pub fn master_config(&self) -> master::MasterConfig {
        master::MasterConfig {
            session_last_active_interval_secs: self.session_last_active_interval_secs,
            session_idle_timeout_secs: self.session_idle_timeout_secs,
            task_gc_after_secs: self.task_gc_after_secs,
            pending_task_gc_after_secs: self.pending_task_gc_after_secs,
            clock_skew_limit_secs: self.clock_skew_limit_secs,
            password_checks: self.password_checks,
            password_failure_delay_ms: self.password_failure_delay_ms,
        }
    }

    pub fn housekeeping_interval(&self) -> Duration {
        Duration::from_secs(self.housekeeping_interval_secs)
    }
}

impl Overrides {
    /// Replaces the fields of `config` that the command line sets.
    pub fn apply(self, config: &mut Config) {
        if let Some(data_dir) = self.data_dir {
            config.data_dir = data_dir;
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(http_listen) = self.http_listen {
            config.http_listen = Some(http_listen);
        }
        if let Some(unix_socket) = self.unix_socket {
            config.unix_socket = Some(unix_socket);
        }
        if let Some(backend) = self.backend {
            config.backend = backend;
        }
    }
}

const YEAR_SECS: i64 = 365 * 24 * 3600;

fn invalid(field: &'static str, reason: &str) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        field,
        reason: reason.to_owned(),
    })
}

fn check_range<T: PartialOrd + std::fmt::Display>(
    field: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::Invalid {
            field,
            reason: format!("{value} is outside {min}..={max}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
