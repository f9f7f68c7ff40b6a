//! The tests of `Config`: parsing, defaults, flags, validation, the agent's settings.

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
        config.limits.connection_limits(),
        crate::front::server::ConnectionLimits::default()
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
        backend: Some(BackendKind::Simulator),
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
            r#"{"agent": {"qemu_img_timeout_secs": 0}}"#,
            "agent.qemu_img_timeout_secs",
        ),
        (
            r#"{"limits": {"max_body_bytes": 10}}"#,
            "limits.max_body_bytes",
        ),
        (
            r#"{"limits": {"max_body_bytes": 2048, "max_string_bytes": 4096}}"#,
            "limits.max_string_bytes",
        ),
        (r#"{"limits": {"max_values": 0}}"#, "limits.max_values"),
        (
            r#"{"limits": {"header_timeout_secs": 0}}"#,
            "limits.header_timeout_secs",
        ),
        (
            r#"{"limits": {"body_timeout_secs": 3601}}"#,
            "limits.body_timeout_secs",
        ),
        (
            r#"{"limits": {"max_connections": 0}}"#,
            "limits.max_connections",
        ),
        (
            r#"{"limits": {"max_reply_bytes": 100}}"#,
            "limits.max_reply_bytes",
        ),
        (
            r#"{"master": {"session_idle_timeout_secs": 0}}"#,
            "master.session_idle_timeout_secs",
        ),
        (
            r#"{"master": {"password_checks": 0}}"#,
            "master.password_checks",
        ),
        (
            r#"{"master": {"password_failure_delay_ms": 60001}}"#,
            "master.password_failure_delay_ms",
        ),
        (
            r#"{"master": {"clock_skew_limit_secs": 0}}"#,
            "master.clock_skew_limit_secs",
        ),
        (r#"{"data_dir": ""}"#, "data_dir"),
        (
            r#"{"listen": "127.0.0.1:80", "http_listen": "127.0.0.1:80"}"#,
            "http_listen",
        ),
        (r#"{"shutdown_grace_secs": 601}"#, "shutdown_grace_secs"),
        (r#"{"agent": {"workers": 0}}"#, "agent.workers"),
        (
            r#"{"agent": {"clean_shutdown_timeout_secs": 0}}"#,
            "agent.clean_shutdown_timeout_secs",
        ),
        (
            r#"{"simulator": {"latency_ms": {"build": 600001}}}"#,
            "simulator.latency_ms",
        ),
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

/// The simulator's latency and failures reach the agent's configuration by operation name,
/// storage's operations as the hypervisor's.
#[test]
fn simulator_settings_reach_the_agent_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_config(
        &dir,
        r#"{"backend": "simulator", "agent": {"workers": 3},
            "simulator": {"latency_ms": {"build": 50, "attach": 5},
                          "fail": [{"operation": "plug_nic", "nth": 2}]}}"#,
    );
    let config = Config::load(Some(&path), Overrides::default()).expect("valid config");
    let agent = config.agent_config();
    assert_eq!(agent.workers, 3);
    assert_eq!(agent.clean_shutdown_timeout, Duration::from_secs(1200));
    let BackendConfig::Simulator(simulator) = agent.backend else {
        panic!("the simulator was asked for");
    };
    assert_eq!(
        simulator.latency.get(&BackendOp::Build),
        Some(&Duration::from_millis(50))
    );
    assert_eq!(
        simulator.latency.get(&BackendOp::Attach),
        Some(&Duration::from_millis(5))
    );
    assert_eq!(simulator.failures.len(), 1);
    assert_eq!(simulator.failures[0].operation, BackendOp::PlugNic);
    assert_eq!(simulator.failures[0].nth.get(), 2);
}

/// The storage driver is the simulator's unless the file chooses `file`, whose `qemu-img`
/// timeout then reaches the agent's configuration.
#[test]
fn the_storage_driver_reaches_the_agent_config() {
    assert_eq!(
        Config::default().agent_config().storage,
        StorageChoice::Backend
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_config(
        &dir,
        r#"{"agent": {"storage_driver": "file", "qemu_img_timeout_secs": 7}}"#,
    );
    let config = Config::load(Some(&path), Overrides::default()).expect("valid config");
    assert_eq!(
        config.agent_config().storage,
        StorageChoice::File(FileSrConfig {
            qemu_img_timeout: Duration::from_secs(7)
        })
    );
    let path = write_config(&dir, r#"{"agent": {"storage_driver": "lvm"}}"#);
    assert!(Config::load(Some(&path), Overrides::default()).is_err());
}

/// An unknown operation name or a zeroth failure is refused when the file is parsed.
#[test]
fn unknown_operations_and_zeroth_failures_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    for text in [
        r#"{"simulator": {"latency_ms": {"boot": 50}}}"#,
        r#"{"simulator": {"fail": [{"operation": "build", "nth": 0}]}}"#,
        r#"{"backend": "xen"}"#,
    ] {
        let path = write_config(&dir, text);
        let err = Config::load(Some(&path), Overrides::default()).expect_err(text);
        assert!(matches!(err, ConfigError::Parse { .. }), "{text}: {err:?}");
    }
}

/// `backend: "qemu"` gives the agent the qemu driver with its settings; `auto` is qemu exactly
/// when the emulator it names is installed.
#[test]
fn the_qemu_backend_reaches_the_agent_config() {
    let config: Config =
        serde_json::from_str(r#"{"backend": "qemu", "qemu": {"accel": "tcg"}}"#).expect("parses");
    let BackendConfig::Qemu(qemu) = config.agent_config().backend else {
        panic!("qemu was asked for");
    };
    assert_eq!(qemu.accel, agent::backend::qemu::AccelChoice::Tcg);

    let config: Config = serde_json::from_str(
        r#"{"backend": "auto", "qemu": {"binary": "/nonexistent/qemu-system-x86_64"}}"#,
    )
    .expect("parses");
    assert_eq!(config.backend(), BackendKind::Simulator);
    let config: Config =
        serde_json::from_str(r#"{"backend": "auto", "qemu": {"binary": "/bin/sh"}}"#)
            .expect("parses");
    assert_eq!(config.backend(), BackendKind::Qemu);
}
