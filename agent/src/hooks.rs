//! Hook scripts: the executables in `<data dir>/hooks/<hook>/`, run at fixed points of a VM's
//! life with xenopsd's arguments, `-reason <reason> -vmuuid <uuid>`.
//!
//! As xenopsd does: the scripts of a folder run one after the other in the byte order of their
//! names; exit 0 is success and exit 1 means "log and continue"; any other exit is a failure,
//! `XAPI_HOOK_FAILED [<hook>/<script>; reason; stdout; exit code]`. Only a failing `vm-pre-start`
//! hook stops its operation (nothing has been made yet); the others are logged. Files whose names start
//! with a dot and files without an execute bit are skipped. Each script is a direct child of
//! oxapi, waited for (and killed and reaped after `timeout`); nothing is double-forked.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// The hooks folder, relative to the data dir.
pub const HOOKS_DIR: &str = "hooks";
/// The most output kept from a script's stdout or stderr; the rest is read and dropped.
const OUTPUT_LIMIT_BYTES: u64 = 64 * 1024;
/// How often a script that is being written (ETXTBSY) is tried again.
const BUSY_RETRIES: u32 = 5;
/// The exit status that means "log and continue".
const EXIT_LOG_AND_CONTINUE: i32 = 1;

/// A point in a VM's life where hooks run, named as xenopsd's folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookPoint {
    PreStart,
    /// Before a domain is torn down (xenopsd's `VM_pre_destroy`, folder `vm-pre-shutdown`).
    PreShutdown,
    PostDestroy,
    PreReboot,
    PreSuspend,
    PreResume,
    PostResume,
    /// On the source, before a migration saves the domain.
    PreMigrate,
    /// On the destination, once a migrated domain is rebuilt.
    PostMigrate,
}

impl HookPoint {
    pub fn folder(self) -> &'static str {
        match self {
            HookPoint::PreStart => "vm-pre-start",
            HookPoint::PreShutdown => "vm-pre-shutdown",
            HookPoint::PostDestroy => "vm-post-destroy",
            HookPoint::PreReboot => "vm-pre-reboot",
            HookPoint::PreSuspend => "vm-pre-suspend",
            HookPoint::PreResume => "vm-pre-resume",
            HookPoint::PostResume => "vm-post-resume",
            HookPoint::PreMigrate => "vm-pre-migrate",
            HookPoint::PostMigrate => "vm-post-migrate",
        }
    }

    /// Whether a failing script stops the operation: only before a start makes anything.
    pub fn is_fatal(self) -> bool {
        self == HookPoint::PreStart
    }
}

/// Why a hook runs, as passed in `-reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookReason {
    None,
    CleanShutdown,
    HardShutdown,
    CleanReboot,
    HardReboot,
    Suspend,
    /// A migration, on its source host.
    MigrateSource,
    /// A migration, on its destination host.
    MigrateDestination,
}

impl HookReason {
    pub fn as_str(self) -> &'static str {
        match self {
            HookReason::None => "none",
            HookReason::CleanShutdown => "clean-shutdown",
            HookReason::HardShutdown => "hard-shutdown",
            HookReason::CleanReboot => "clean-reboot",
            HookReason::HardReboot => "hard-reboot",
            HookReason::Suspend => "suspend",
            HookReason::MigrateSource => "source",
            HookReason::MigrateDestination => "destination",
        }
    }
}

/// Why a hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The script ran and failed; `exit_code` is its status, `signal N`, or `timeout`.
    #[error("hook {hook} failed with {exit_code}")]
    Failed {
        /// `<folder>/<script>`.
        hook: String,
        reason: &'static str,
        stdout: String,
        exit_code: String,
    },
    #[error("cannot run hook {hook}")]
    Spawn {
        hook: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot list the hooks in {path}")]
    List {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The hook scripts of this host.
#[derive(Debug, Clone)]
pub struct Hooks {
    dir: PathBuf,
    timeout: Duration,
}

impl Hooks {
    /// The hooks under `<data_dir>/hooks`, each script given at most `timeout`.
    pub fn new(data_dir: &Path, timeout: Duration) -> Hooks {
        Hooks {
            dir: data_dir.join(HOOKS_DIR),
            timeout,
        }
    }

    /// Runs the scripts of `point` for `vm`, in order, until one fails.
    pub async fn run(
        &self,
        point: HookPoint,
        reason: HookReason,
        vm: &str,
    ) -> Result<(), HookError> {
        let folder = self.dir.join(point.folder());
        for script in scripts(&folder)? {
            let hook = format!("{}/{}", point.folder(), script.display());
            let path = folder.join(&script);
            tracing::debug!(hook = %hook, vm, reason = reason.as_str(), "running hook");
            let outcome = self.run_script(&path, &hook, reason, vm).await?;
            if outcome.code == Some(EXIT_LOG_AND_CONTINUE) {
                tracing::info!(hook = %hook, vm, stdout = %outcome.stdout, "hook asked to log and continue");
                continue;
            }
            if !outcome.succeeded {
                tracing::debug!(hook = %hook, vm, stderr = %outcome.stderr, "hook stderr");
                return Err(HookError::Failed {
                    hook,
                    reason: reason.as_str(),
                    stdout: outcome.stdout,
                    exit_code: outcome.exit_code,
                });
            }
        }
        Ok(())
    }

    async fn run_script(
        &self,
        path: &Path,
        hook: &str,
        reason: HookReason,
        vm: &str,
    ) -> Result<Outcome, HookError> {
        let mut child = spawn(path, reason, vm)
            .await
            .map_err(|source| HookError::Spawn {
                hook: hook.to_owned(),
                source,
            })?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let finished = async {
            let (status, stdout, stderr) =
                tokio::join!(child.wait(), read_capped(stdout), read_capped(stderr));
            (status, stdout, stderr)
        };
        match tokio::time::timeout(self.timeout, finished).await {
            Ok((Ok(status), stdout, stderr)) => Ok(Outcome::of(status, stdout, stderr)),
            Ok((Err(source), _, _)) => Err(HookError::Spawn {
                hook: hook.to_owned(),
                source,
            }),
            Err(_) => {
                tracing::warn!(hook, vm, timeout = ?self.timeout, "hook timed out; killing it");
                // `kill` also waits for the child, so it is reaped here.
                if let Err(err) = child.kill().await {
                    tracing::warn!(hook, error = %err, "cannot kill the hook");
                }
                Ok(Outcome {
                    succeeded: false,
                    code: None,
                    exit_code: "timeout".to_owned(),
                    stdout: String::new(),
                    stderr: String::new(),
                })
            }
        }
    }
}

struct Outcome {
    succeeded: bool,
    code: Option<i32>,
    exit_code: String,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn of(status: ExitStatus, stdout: String, stderr: String) -> Outcome {
        use std::os::unix::process::ExitStatusExt;
        let exit_code = match (status.code(), status.signal()) {
            (Some(code), _) => code.to_string(),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => "unknown".to_owned(),
        };
        Outcome {
            succeeded: status.success(),
            code: status.code(),
            exit_code,
            stdout,
            stderr,
        }
    }
}

/// The runnable scripts of `folder`, sorted by name; none when the folder does not exist.
fn scripts(folder: &Path) -> Result<Vec<PathBuf>, HookError> {
    let list_error = |source| HookError::List {
        path: folder.to_owned(),
        source,
    };
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(list_error(err)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(list_error)?;
        let name = entry.file_name();
        if name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        // Follows symlinks, as exec would.
        match std::fs::metadata(entry.path()) {
            Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => {
                names.push(PathBuf::from(name));
            }
            Ok(_) => {
                tracing::warn!(path = %entry.path().display(), "skipping a hook that is not an executable file");
            }
            Err(err) => {
                tracing::warn!(path = %entry.path().display(), error = %err, "skipping an unreadable hook");
            }
        }
    }
    names.sort_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    Ok(names)
}

/// Starts the script. A script that is still open for writing somewhere (ETXTBSY: being
/// copied in, or a file descriptor inherited by a child being forked at that moment) is tried
/// again a few times.
async fn spawn(
    path: &Path,
    reason: HookReason,
    vm: &str,
) -> std::io::Result<tokio::process::Child> {
    let mut attempt = 0;
    loop {
        let spawned = Command::new(path)
            .args(["-reason", reason.as_str(), "-vmuuid", vm])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        match spawned {
            Err(err) if err.kind() == ErrorKind::ExecutableFileBusy && attempt < BUSY_RETRIES => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt))).await;
            }
            other => return other,
        }
    }
}

/// Reads a pipe to its end, keeping the first `OUTPUT_LIMIT_BYTES`, as lossy UTF-8.
async fn read_capped(pipe: Option<impl AsyncRead + Unpin>) -> String {
    let Some(pipe) = pipe else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut limited = pipe.take(OUTPUT_LIMIT_BYTES);
    if limited.read_to_end(&mut kept).await.is_ok() {
        let _ = tokio::io::copy(&mut limited.into_inner(), &mut tokio::io::sink()).await;
    }
    String::from_utf8_lossy(&kept).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str, mode: u32) {
        let folder = dir.join(HOOKS_DIR).join(HookPoint::PreStart.folder());
        std::fs::create_dir_all(&folder).expect("hooks folder");
        let path = folder.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write the hook");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// Dotfiles and files without an execute bit are skipped; the rest run in name order.
    #[test]
    fn only_executable_visible_files_are_hooks_in_name_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), "20-b", "", 0o755);
        write(dir.path(), "10-a", "", 0o700);
        write(dir.path(), "README", "", 0o644);
        write(dir.path(), ".hidden", "", 0o755);
        let folder = dir
            .path()
            .join(HOOKS_DIR)
            .join(HookPoint::PreStart.folder());
        let found = scripts(&folder).expect("listed");
        assert_eq!(found, [PathBuf::from("10-a"), PathBuf::from("20-b")]);
        let absent = scripts(&dir.path().join("nowhere")).expect("no folder, no hooks");
        assert!(absent.is_empty());
    }

    /// A script that runs past the timeout is killed and reported as a failure with exit code
    /// `timeout`.
    #[tokio::test]
    async fn a_script_past_its_timeout_is_killed() {
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), "10-slow", "exec sleep 30\n", 0o755);
        let hooks = Hooks::new(dir.path(), Duration::from_millis(200));
        let err = hooks
            .run(HookPoint::PreStart, HookReason::None, "vm")
            .await
            .expect_err("timed out");
        let HookError::Failed {
            hook, exit_code, ..
        } = err
        else {
            panic!("a failed hook, got {err:?}");
        };
        assert_eq!(hook, "vm-pre-start/10-slow");
        assert_eq!(exit_code, "timeout");
    }

    /// A script killed by a signal fails with `signal N` as its exit code, and its output so
    /// far is kept.
    #[tokio::test]
    async fn a_script_killed_by_a_signal_names_the_signal() {
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), "10-killed", "echo before\nkill -9 $$\n", 0o755);
        let hooks = Hooks::new(dir.path(), Duration::from_secs(30));
        let err = hooks
            .run(HookPoint::PreStart, HookReason::None, "vm")
            .await
            .expect_err("killed");
        let HookError::Failed {
            stdout, exit_code, ..
        } = err
        else {
            panic!("a failed hook, got {err:?}");
        };
        assert_eq!(stdout, "before\n");
        assert_eq!(exit_code, "signal 9");
    }
}
