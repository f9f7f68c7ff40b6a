//! `Config`: what an operator can set for one host, read from a JSON file and overridden by flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// Bounds on request bodies.
    pub limits: RequestLimits,
    /// The master's policy numbers.
    pub master: MasterSettings,
    /// How long a shutdown waits for calls in flight, in seconds, 0..=600.
    pub shutdown_grace_secs: u64,
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
}

/// Bounds on a request body, applied before and while decoding it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestLimits {
    /// The largest request body, in bytes, 1024..=1073741824; bigger ones get HTTP 413.
    pub max_body_bytes: usize,
    /// The deepest nesting of arrays and structs, 1..=1024.
    pub max_depth: usize,
    /// The longest string in a request, in bytes, 1..=`max_body_bytes`.
    pub max_string_bytes: usize,
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
        }
    }
}

impl Default for RequestLimits {
    fn default() -> Self {
        let limits = api_spec::codec::Limits::default();
        RequestLimits {
            max_body_bytes: limits.max_body_bytes,
            max_depth: limits.max_depth,
            max_string_bytes: limits.max_string_bytes,
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
        Ok(())
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
}

impl RequestLimits {
    /// The limits in the codecs' terms.
    pub fn codec_limits(&self) -> api_spec::codec::Limits {
        api_spec::codec::Limits {
            max_body_bytes: self.max_body_bytes,
            max_depth: self.max_depth,
            max_string_bytes: self.max_string_bytes,
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
mod tests {
    use super::*;

    /// The example configuration shipped in `deploy/` parses and validates.
    #[test]
    fn deploy_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config.json");
        let config = Config::from_file(&path).expect("deploy/config.json is a valid config");
        assert_eq!(config.data_dir, Path::new("/var/lib/oxapi"));
    }

    fn write_config(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("oxapi.json");
        std::fs::write(&path, text).expect("write the test config");
        path
    }

    fn invalid_field(result: Result<Config, ConfigError>) -> &'static str {
        match result {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    /// The default configuration is valid and runs a one-host pool on loopback.
    #[test]
    fn default_config_is_valid() {
        let config = Config::default();
        config.validate().expect("the default is valid");
        assert_eq!(config.listen, "127.0.0.1:4443".parse().expect("address"));
        assert_eq!(config.http_listen, None);
        assert_eq!(
            config.unix_socket_path(),
            Path::new("oxapi-data").join("xapi.sock")
        );
        assert_eq!(config.raft.tick_interval(), Duration::from_millis(100));
        assert_eq!(
            config.limits.codec_limits(),
            api_spec::codec::Limits::default()
        );
        assert_eq!(
            config.master.master_config(),
            master::MasterConfig::default()
        );
    }

    /// A partial file keeps the defaults of the fields it does not set.
    #[test]
    fn partial_file_keeps_other_defaults() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write_config(
            &dir,
            r#"{"data_dir": "/srv/oxapi", "raft": {"election_ticks": 20}}"#,
        );
        let config = Config::load(Some(&path), Overrides::default()).expect("valid config");
        assert_eq!(config.data_dir, PathBuf::from("/srv/oxapi"));
        assert_eq!(config.raft.election_ticks, 20);
        assert_eq!(config.raft.tick_interval_ms, 100);
        assert_eq!(config.unix_socket_path(), Path::new("/srv/oxapi/xapi.sock"));
    }

    /// Flags replace what the file says.
    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write_config(
            &dir,
            r#"{"data_dir": "from-file", "listen": "127.0.0.1:1000", "http_listen": "127.0.0.1:1001"}"#,
        );
        let overrides = Overrides {
            data_dir: Some(PathBuf::from("from-flag")),
            listen: Some("127.0.0.2:2000".parse().expect("address")),
            http_listen: None,
            unix_socket: Some(PathBuf::from("flag.sock")),
        };
        let config = Config::load(Some(&path), overrides).expect("valid config");
        assert_eq!(config.data_dir, PathBuf::from("from-flag"));
        assert_eq!(config.listen, "127.0.0.2:2000".parse().expect("address"));
        assert_eq!(
            config.http_listen,
            Some("127.0.0.1:1001".parse().expect("address"))
        );
        assert_eq!(config.unix_socket_path(), PathBuf::from("flag.sock"));
    }

    /// An unknown field is refused, and the error names it.
    #[test]
    fn unknown_field_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write_config(&dir, r#"{"raft": {"tick_interval": 100}}"#);
        let err = Config::load(Some(&path), Overrides::default()).expect_err("unknown field");
        let ConfigError::Parse { source, .. } = err else {
            panic!("expected a parse error, got {err:?}");
        };
        assert!(source.to_string().contains("tick_interval"), "{source}");
    }

    /// A missing config file is a read error naming the path.
    #[test]
    fn missing_file_is_a_read_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("absent.json");
        let err = Config::load(Some(&path), Overrides::default()).expect_err("no file");
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains("absent.json"));
    }

    /// Out-of-range values are refused, naming the field.
    #[test]
    fn out_of_range_values_name_their_field() {
        let cases = [
            (
                r#"{"raft": {"tick_interval_ms": 0}}"#,
                "raft.tick_interval_ms",
            ),
            (
                r#"{"raft": {"election_ticks": 3, "heartbeat_ticks": 3}}"#,
                "raft.election_ticks",
            ),
            (r#"{"raft": {"max_batch": 0}}"#, "raft.max_batch"),
            (
                r#"{"limits": {"max_body_bytes": 10}}"#,
                "limits.max_body_bytes",
            ),
            (
                r#"{"limits": {"max_body_bytes": 2048, "max_string_bytes": 4096}}"#,
                "limits.max_string_bytes",
            ),
            (
                r#"{"master": {"session_idle_timeout_secs": 0}}"#,
                "master.session_idle_timeout_secs",
            ),
            (r#"{"data_dir": ""}"#, "data_dir"),
            (
                r#"{"listen": "127.0.0.1:80", "http_listen": "127.0.0.1:80"}"#,
                "http_listen",
            ),
            (r#"{"shutdown_grace_secs": 601}"#, "shutdown_grace_secs"),
        ];
        let dir = tempfile::tempdir().expect("temp dir");
        for (text, field) in cases {
            let path = write_config(&dir, text);
            assert_eq!(
                invalid_field(Config::load(Some(&path), Overrides::default())),
                field,
                "{text}"
            );
        }
    }

    /// The error message starts with the field, so an operator sees what to fix.
    #[test]
    fn invalid_error_message_starts_with_the_field() {
        let mut config = Config::default();
        config.raft.heartbeat_ticks = 0;
        let err = config.validate().expect_err("heartbeat 0");
        assert!(
            err.to_string().starts_with("raft.heartbeat_ticks: "),
            "{err}"
        );
    }
}
