//! The anchor of the QEMU figures: the same guest launched by hand, without oxapi. Its
//! arguments come from the command line of a QEMU that oxapi runs, so both stay the same
//! guest; a launch is timed from the spawn to the QMP connection, `cont`, and `query-status`
//! answering `running`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::process::{Child, Command};

/// The options of oxapi's command line that make the machine itself (with their values), and
/// the flags that keep QEMU from adding its default devices: a user launching this guest by
/// hand would give the same.
const MACHINE_OPTIONS: [&str; 6] = ["-machine", "-accel", "-cpu", "-m", "-smp", "-display"];
const MACHINE_FLAGS: [&str; 2] = ["-nodefaults", "-no-user-config"];
/// How often a launch tries its QMP socket before QEMU has made it.
const CONNECT_RETRY: Duration = Duration::from_millis(1);
/// How long a launch may take, and each QMP answer, before the benchmark gives up.
const LAUNCH_GIVE_UP: Duration = Duration::from_secs(30);

/// How to launch the guest by hand: QEMU's binary and its arguments but the monitor.
#[derive(Debug, Clone)]
pub struct BareGuest {
    pub binary: String,
    args: Vec<String>,
    /// The directory of oxapi's QEMU, replaced by the launch's own in every argument.
    oxapi_dir: Option<String>,
}

impl BareGuest {
    /// The guest of `cmdline` (a QEMU's `/proc/PID/cmdline`, its arguments split) with only
    /// its machine, accelerator, CPU, memory and vCPUs, paused (`-S`): what a user would type.
    pub fn machine_of(cmdline: &[String]) -> BareGuest {
        let mut args = Vec::new();
        let mut it = cmdline.iter().skip(1);
        while let Some(arg) = it.next() {
            if MACHINE_OPTIONS.contains(&arg.as_str()) {
                let value = it.next().expect("an option of QEMU's has its value");
                args.extend([arg.clone(), value.clone()]);
            } else if MACHINE_FLAGS.contains(&arg.as_str()) {
                args.push(arg.clone());
            }
        }
        for option in ["-machine", "-accel", "-cpu", "-m"] {
            assert!(
                args.contains(&option.to_owned()),
                "oxapi's QEMU has no {option}: {cmdline:?}"
            );
        }
        args.push("-S".to_owned());
        BareGuest {
            binary: cmdline[0].clone(),
            args,
            oxapi_dir: None,
        }
    }

    /// The guest of `cmdline` with every argument oxapi gave (its buses, balloon, pvpanic,
    /// serial socket, pidfile), the directory `dir` of oxapi's QEMU replaced by the launch's own
    /// and the monitor by the launch's.
    pub fn whole_command_line_of(cmdline: &[String], dir: &Path) -> BareGuest {
        let mut args = Vec::new();
        let mut it = cmdline.iter().skip(1);
        while let Some(arg) = it.next() {
            if arg == "-qmp" {
                it.next();
            } else {
                args.push(arg.clone());
            }
        }
        BareGuest {
            binary: cmdline[0].clone(),
            args,
            oxapi_dir: Some(dir.display().to_string()),
        }
    }

    /// The accelerator the guest runs on (`kvm`, `tcg`).
    pub fn accel(&self) -> &str {
        self.args
            .iter()
            .position(|arg| arg == "-accel")
            .and_then(|i| self.args.get(i + 1))
            .map_or("an unknown accelerator", String::as_str)
    }

    /// The arguments but the monitor, as one line.
    pub fn shown_args(&self) -> String {
        self.args.join(" ")
    }

    /// The arguments of a launch in `dir`, its monitor at `qmp`.
    fn args_in(&self, dir: &Path, qmp: &Path) -> Vec<String> {
        let mut args: Vec<String> = match &self.oxapi_dir {
            Some(oxapi_dir) => {
                let own = dir.display().to_string();
                self.args
                    .iter()
                    .map(|arg| arg.replace(oxapi_dir.as_str(), &own))
                    .collect()
            }
            None => self.args.clone(),
        };
        args.push("-qmp".to_owned());
        args.push(format!("unix:{},server=on,wait=off", qmp.display()));
        args
    }
}

/// A QEMU launched by the benchmark, a direct child: killed and reaped when dropped.
pub struct Launched {
    child: Child,
}

impl Launched {
    /// Kills and reaps the QEMU.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Launches `guest` in the new directory `dir` and times it from the spawn until QMP says it
/// runs.
pub async fn launch(guest: &BareGuest, dir: PathBuf) -> (Duration, Launched) {
    std::fs::create_dir_all(&dir).expect("a directory for a bare QEMU");
    let qmp = dir.join("qmp");
    let log = std::fs::File::create(dir.join("qemu.log")).expect("a log file for a bare QEMU");
    let started = Instant::now();
    let child = Command::new(&guest.binary)
        .args(guest.args_in(&dir, &qmp))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", guest.binary));
    let launched = Launched { child };
    let work = async {
        let mut monitor = Monitor::dial(&qmp).await;
        monitor.execute("qmp_capabilities").await;
        monitor.execute("cont").await;
        let status = monitor.execute("query-status").await;
        assert_eq!(status["status"], "running", "a bare QEMU after cont");
    };
    if tokio::time::timeout(LAUNCH_GIVE_UP, work).await.is_err() {
        let log = std::fs::read_to_string(dir.join("qemu.log")).unwrap_or_default();
        panic!("a bare QEMU did not run within {LAUNCH_GIVE_UP:?}; it said: {log}");
    }
    (started.elapsed(), launched)
}

/// A QMP connection to a bare QEMU: one JSON object a line; events are passed over.
struct Monitor {
    lines: Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
}

impl Monitor {
    /// Connects as soon as QEMU listens at `path`, and reads its greeting.
    async fn dial(path: &Path) -> Monitor {
        let stream = loop {
            match UnixStream::connect(path).await {
                Ok(stream) => break stream,
                Err(_) => tokio::time::sleep(CONNECT_RETRY).await,
            }
        };
        let (reader, writer) = stream.into_split();
        let mut monitor = Monitor {
            lines: BufReader::new(reader).lines(),
            writer,
        };
        let greeting = monitor.next().await;
        assert!(greeting.get("QMP").is_some(), "a QMP greeting: {greeting}");
        monitor
    }

    /// The next message QEMU sends.
    async fn next(&mut self) -> Value {
        let line = self.lines.next_line().await.expect("QMP reads");
        let line = line.expect("QMP stays open");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("QMP sent {line:?}: {e}"))
    }

    /// Runs `command` (no arguments) and returns its answer.
    async fn execute(&mut self, command: &str) -> Value {
        let mut request = json!({ "execute": command }).to_string();
        request.push('\n');
        self.writer
            .write_all(request.as_bytes())
            .await
            .expect("QMP takes a command");
        loop {
            let mut message = self.next().await;
            if let Some(answer) = message.get_mut("return") {
                return answer.take();
            }
            assert!(message.get("event").is_some(), "{command}: {message}");
        }
    }
}
