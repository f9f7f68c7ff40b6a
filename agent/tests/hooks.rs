//! Hook scripts in the data dir: the arguments they get at each point of a VM's life, and a
//! failing `vm-pre-start` hook that stops the start.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use agent::AgentConfig;
use agent::testing::vm_spec;
use host_api::{ActionResult, AgentFailure, HostAction, VmAction};
use support::{TestAgent, failure, names};

/// Writes an executable shell script `hooks/<folder>/<name>` with `body`.
fn write_hook(data_dir: &Path, folder: &str, name: &str, body: &str) {
    let dir = data_dir.join("hooks").join(folder);
    std::fs::create_dir_all(&dir).expect("hooks folder");
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write the hook");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Each hook point gets `-reason <reason> -vmuuid <uuid>`, in xenopsd's order of points for a
/// start, a hard reboot and a clean shutdown; scripts of one folder run in name order.
#[tokio::test]
async fn hooks_get_their_arguments_at_each_point() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let data_dir = agent.dir.path().to_owned();
    let log = data_dir.join("hooks.log");
    for folder in [
        "vm-pre-start",
        "vm-pre-shutdown",
        "vm-post-destroy",
        "vm-pre-reboot",
    ] {
        let line = format!("echo \"{folder} $*\" >> '{}'\n", log.display());
        write_hook(&data_dir, folder, "20-log", &line);
    }
    let first = format!("echo first >> '{}'\n", log.display());
    write_hook(&data_dir, "vm-pre-start", "10-first", &first);

    let spec = vm_spec("hooked", 1, 0);
    let vm = spec.uuid.clone();
    agent.start_vm(&spec).await;
    agent
        .domain_after(HostAction::Vm(VmAction::Reboot {
            vm: spec.clone(),
            clean: false,
        }))
        .await;
    let down = agent
        .run(HostAction::Vm(VmAction::Shutdown {
            vm: vm.clone(),
            clean: true,
        }))
        .await;
    assert_eq!(down, Ok(ActionResult::Domain(None)));

    let logged = std::fs::read_to_string(&log).expect("the hooks wrote their log");
    let args = |folder: &str, reason: &str| format!("{folder} -reason {reason} -vmuuid {vm}");
    assert_eq!(
        logged.lines().collect::<Vec<_>>(),
        [
            "first".to_owned(),
            args("vm-pre-start", "none"),
            args("vm-pre-shutdown", "hard-reboot"),
            args("vm-post-destroy", "hard-reboot"),
            args("vm-pre-reboot", "none"),
            "first".to_owned(),
            args("vm-pre-start", "none"),
            args("vm-pre-shutdown", "clean-shutdown"),
            args("vm-post-destroy", "clean-shutdown"),
        ]
    );
}

/// A `vm-pre-start` hook exiting 3 fails the start with XAPI_HOOK_FAILED [hook; reason;
/// stdout; exit code] before any domain is made; exit 1 only logs and the start goes on.
#[tokio::test]
async fn a_failing_pre_start_hook_fails_the_start_and_makes_no_domain() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let data_dir = agent.dir.path().to_owned();
    write_hook(
        &data_dir,
        "vm-pre-start",
        "10-refuse",
        "echo refusing\nexit 3\n",
    );
    let spec = vm_spec("refused", 1, 1);
    let refused = agent
        .run(HostAction::Vm(VmAction::Start {
            vm: spec.clone(),
            paused: false,
        }))
        .await;
    assert_eq!(
        failure(refused),
        AgentFailure::HookFailed {
            hook: "vm-pre-start/10-refuse".to_owned(),
            reason: "none".to_owned(),
            stdout: "refusing\n".to_owned(),
            exit_code: "3".to_owned()
        }
    );
    assert_eq!(agent.domain(&spec.uuid).await, None);
    assert!(names(&agent.ops_on(&spec.uuid)).is_empty());

    write_hook(
        &data_dir,
        "vm-pre-start",
        "10-refuse",
        "echo noted\nexit 1\n",
    );
    agent.start_vm(&spec).await;
}

/// A failing hook other than `vm-pre-start` is logged and the operation carries on.
#[tokio::test]
async fn other_failing_hooks_do_not_stop_the_operation() {
    let agent = TestAgent::start(AgentConfig::default()).await;
    let data_dir = agent.dir.path().to_owned();
    write_hook(&data_dir, "vm-pre-shutdown", "10-fail", "exit 7\n");
    write_hook(&data_dir, "vm-post-destroy", "10-fail", "exit 7\n");
    let spec = vm_spec("shrugged", 0, 0);
    agent.start_vm(&spec).await;
    let down = agent
        .run(HostAction::Vm(VmAction::Shutdown {
            vm: spec.uuid.clone(),
            clean: false,
        }))
        .await;
    assert_eq!(down, Ok(ActionResult::Domain(None)));
}
