//! Which accelerator and CPU model this host's QEMU runs guests with: KVM when it really works,
//! TCG otherwise, unless the config names one.
//!
//! "Works" is tried, not assumed: `/dev/kvm` may open and still refuse a CPU model (under a
//! nested PVM, QEMU 10.0 aborts on `-cpu host` while setting an MSR the host does not have, and
//! runs with `host,-arch-capabilities`). So each KVM CPU model in turn starts a paused QEMU
//! that is told to quit at once; the first that exits cleanly is the one.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The accelerator asked for in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelChoice {
    /// KVM if a probe shows it works, TCG otherwise.
    #[default]
    Auto,
    Kvm,
    Tcg,
}

/// What guests of this host run with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceleration {
    /// `kvm` or `tcg`, as QEMU's `-accel` takes it.
    pub accel: String,
    /// The `-cpu` argument.
    pub cpu_model: String,
}

/// The CPU models KVM is tried with, best first.
const KVM_CPU_MODELS: [&str; 2] = ["host", "host,-arch-capabilities"];
/// TCG's CPU model: one with the x86-64-v2 features a current distribution kernel wants.
const TCG_CPU_MODEL: &str = "max";
/// How long a probe QEMU may take to start and quit.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Chooses the acceleration for `choice`; `cpu_model` from the config replaces the model the
/// probe would pick.
pub async fn choose(binary: &Path, choice: AccelChoice, cpu_model: Option<&str>) -> Acceleration {
    let tcg = || Acceleration {
        accel: "tcg".to_owned(),
        cpu_model: cpu_model.unwrap_or(TCG_CPU_MODEL).to_owned(),
    };
    let kvm_models: Vec<&str> = match cpu_model {
        Some(model) => vec![model],
        None => KVM_CPU_MODELS.to_vec(),
    };
    match choice {
        AccelChoice::Tcg => tcg(),
        AccelChoice::Kvm => Acceleration {
            accel: "kvm".to_owned(),
            cpu_model: kvm_models[0].to_owned(),
        },
        AccelChoice::Auto => {
            if std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/kvm")
                .is_err()
            {
                return tcg();
            }
            for model in kvm_models {
                if starts(binary, model).await {
                    return Acceleration {
                        accel: "kvm".to_owned(),
                        cpu_model: model.to_owned(),
                    };
                }
                tracing::info!(cpu_model = model, "KVM refused this CPU model");
            }
            tcg()
        }
    }
}

/// Whether a paused KVM guest with `cpu_model` starts and quits cleanly.
async fn starts(binary: &Path, cpu_model: &str) -> bool {
    let child = Command::new(binary)
        .args(["-machine", "q35", "-accel", "kvm", "-cpu", cpu_model])
        .args(["-nodefaults", "-display", "none", "-S", "-qmp", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    let Some(mut stdin) = child.stdin.take() else {
        return false;
    };
    let probe = async {
        // QEMU reads these once it is up; a QEMU that aborts first never reads them.
        let _ = stdin
            .write_all(b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"quit\"}\n")
            .await;
        child.wait().await
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, probe).await,
        Ok(Ok(status)) if status.success()
    )
}
