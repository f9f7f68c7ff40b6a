//! Running the `xe` binary against a real `oxapi` host, with a home directory of its own.

// Each test target uses a part of these helpers.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use oxapi_tests::Host;
use oxapi_tests::host::HTTPS_PORT;

/// The `xe` binary under test: `$XE_BIN`, else the one built beside this crate's test binaries.
pub fn xe_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("XE_BIN") {
        return PathBuf::from(bin);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug").join("xe")
}

/// A user of `xe`: a temp `HOME` (for `~/.xe` and `~/.xe.d`) and the host to talk to.
pub struct Xe {
    pub home: tempfile::TempDir,
    pub server: String,
    pub password: String,
}

/// What one run of `xe` did.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Xe {
    pub fn new(host: &Host) -> Xe {
        Xe::at(&host.ip.to_string(), &host.password)
    }

    /// xe for the host at `server` (its HTTPS port), root with `password`, with a home of its
    /// own.
    pub fn at(server: &str, password: &str) -> Xe {
        Xe {
            home: tempfile::Builder::new()
                .prefix("xe-home-")
                .tempdir()
                .expect("a temp home"),
            server: server.to_owned(),
            password: password.to_owned(),
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `xe` with only `HOME` set for it (no connection options).
    pub fn bare(&self) -> Command {
        let mut cmd = Command::new(xe_bin());
        cmd.env("HOME", self.home())
            .env_remove("XE_EXTRA_ARGS")
            .stdin(Stdio::null());
        cmd
    }

    /// `xe <args> -s <host> -p <port> -u root -pw <password>`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.bare();
        cmd.args(args).args([
            "-s",
            &self.server,
            "-p",
            &HTTPS_PORT.to_string(),
            "-u",
            "root",
            "-pw",
            &self.password,
        ]);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = self
            .command(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", xe_bin().display()));
        out.into()
    }

    /// Runs with `input` on stdin.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("xe starts");
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(input.as_bytes())
            .expect("input written");
        child.wait_with_output().expect("xe ends").into()
    }

    /// Runs with stderr on a terminal (a pseudo-terminal of 100 columns) and stdout piped;
    /// returns whether xe succeeded and what it wrote on the terminal.
    pub fn run_on_terminal(&self, args: &[&str]) -> (bool, String) {
        use std::io::Read;
        use std::os::fd::{FromRawFd, OwnedFd};

        let (mut leader, follower) = {
            let (mut leader, mut follower) = (-1, -1);
            let size = libc::winsize {
                ws_row: 24,
                ws_col: 100,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: the out-pointers are valid; no name buffer or termios is passed.
            let rc = unsafe {
                libc::openpty(
                    &mut leader,
                    &mut follower,
                    std::ptr::null_mut(),
                    std::ptr::null(),
                    &size,
                )
            };
            assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
            // SAFETY: openpty returned two open descriptors that nothing else owns.
            unsafe {
                (
                    std::fs::File::from(OwnedFd::from_raw_fd(leader)),
                    OwnedFd::from_raw_fd(follower),
                )
            }
        };
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(follower))
            .spawn()
            .expect("xe starts");
        // The command kept the only copy of the follower side: reading ends (EIO) when xe does.
        let mut screen = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = leader.read(&mut chunk) {
            if n == 0 {
                break;
            }
            screen.extend_from_slice(&chunk[..n]);
        }
        let status = child.wait().expect("xe ends");
        (
            status.success(),
            String::from_utf8_lossy(&screen).into_owned(),
        )
    }

    /// Runs, and measures the most memory xe held: what it did and its peak resident set, in
    /// KiB.
    #[expect(
        clippy::zombie_processes,
        reason = "wait4 reaps the child, with its resource usage"
    )]
    pub fn run_measured(&self, args: &[&str]) -> (Run, u64) {
        use std::io::Read;

        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("xe starts");
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        };
        let stdout = drain(Box::new(child.stdout.take().expect("piped")));
        let stderr = drain(Box::new(child.stderr.take().expect("piped")));
        let pid = libc::pid_t::try_from(child.id()).expect("a pid");
        let mut status = 0;
        // SAFETY: rusage is plain integers, for which all zeros is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: the pointers are valid for the call; `pid` is our child, not yet waited for
        // (std's `Child` is not waited on afterwards).
        let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
        let run = Run {
            ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            stdout: stdout.join().expect("stdout read"),
            stderr: stderr.join().expect("stderr read"),
        };
        let peak_kib = u64::try_from(usage.ru_maxrss).expect("a size");
        (run, peak_kib)
    }

    /// Runs and fails the test unless xe succeeded; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert!(run.ok, "xe {args:?} failed:\n{}", run.stderr);
        run.stdout
    }

    /// Runs and fails the test unless xe failed; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert!(!run.ok, "xe {args:?} succeeded:\n{}", run.stdout);
        run.stderr
    }

    /// The single line `--minimal` printed.
    pub fn minimal(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.push("--minimal");
        self.ok(&all).trim_end_matches('\n').to_owned()
    }

    /// A new halted VM from the Debian template; its uuid.
    pub fn install(&self, name: &str) -> String {
        let label = format!("new-name-label={name}");
        let uuid = self.ok(&["vm-install", "template=Debian Bookworm 12", &label]);
        uuid.trim().to_owned()
    }
}

/// Whether `text` at `i` starts a uuid (8-4-4-4-12 hex digits).
fn uuid_at(text: &[u8], i: usize) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let mut at = i;
    for (n, len) in GROUPS.iter().enumerate() {
        if n > 0 {
            if text.get(at) != Some(&b'-') {
                return false;
            }
            at += 1;
        }
        for _ in 0..*len {
            if !text.get(at).is_some_and(u8::is_ascii_hexdigit) {
                return false;
            }
            at += 1;
        }
    }
    true
}

/// `text` with every uuid replaced by `<uuid>`, so that output compares across runs.
pub fn mask_uuids(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if uuid_at(bytes, i) {
            out.push_str("<uuid>");
            i += 36;
        } else {
            let c = text[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Whether a failed or successful run reached `method` on the server with a well-formed call:
/// it succeeded, or the server refused that very message for a reason other than the call's
/// shape.
pub fn reached(run: &Run, method: &str) -> bool {
    if run.ok {
        return true;
    }
    let refused = format!("error: the server refused {method}:");
    run.stderr.starts_with(&refused)
        && ![
            "MESSAGE_PARAMETER_COUNT_MISMATCH",
            "MESSAGE_METHOD_UNKNOWN",
            "HANDLE_INVALID",
            "UUID_INVALID",
            "FIELD_TYPE_ERROR",
        ]
        .iter()
        .any(|code| run.stderr.contains(code))
}
