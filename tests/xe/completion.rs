//! `xe`'s bash completion against a real `oxapi`: the hidden `xe __complete` with uuids and
//! names from the pool, and the script `source <(xe completion bash)` installs, run by bash.

mod support;

use std::process::Command;

use oxapi_tests::Host;
use oxapi_tests::host::HTTPS_PORT;
use support::{Xe, xe_bin};

/// An `xe` user whose `~/.xe` points at `host` and who has trusted it once.
fn trusting_user(host: &Host) -> Xe {
    let xe = Xe::new(host);
    std::fs::write(
        xe.home().join(".xe"),
        format!(
            "server={}\nport={HTTPS_PORT}\npassword={}\n",
            host.ip, host.password
        ),
    )
    .expect("~/.xe written");
    xe.ok(&["host-list"]);
    xe
}

/// The candidates `xe __complete <bash word> <line>` prints.
fn complete(xe: &Xe, word: &str, line: &str) -> Vec<String> {
    let out = xe
        .bare()
        .args(["__complete", word, line])
        .output()
        .expect("xe runs");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Commands, parameter names and enum values complete; uuids and names come from the pool,
/// each cut to the part of the word bash replaces.
#[test]
fn completion_offers_commands_parameters_and_pool_objects() {
    let host = Host::start();
    let xe = trusting_user(&host);
    assert_eq!(complete(&xe, "vm-shu", "xe vm-shu"), ["vm-shutdown "]);
    assert!(complete(&xe, "", "xe vm-start ").contains(&"on=".to_owned()));
    assert_eq!(
        complete(&xe, "ha", "xe vm-list power-state=ha"),
        ["halted "]
    );
    let dom0 = xe.minimal(&["vm-list"]);
    assert_eq!(
        complete(&xe, "=", "xe vm-param-list uuid="),
        [format!("={dom0} ")]
    );
    let templates = complete(&xe, "Deb", "xe vm-install template=Deb");
    assert_eq!(templates, [r"Debian\ Bookworm\ 12 "]);
    let host_uuid = xe.minimal(&["host-list"]);
    assert_eq!(
        complete(&xe, "=", "xe pool-eject host-uuid="),
        [format!("={host_uuid} ")]
    );
}

/// Completion never trusts a server on its own: without a known certificate it offers no
/// uuids and remembers nothing.
#[test]
fn completion_does_not_trust_unknown_servers() {
    let host = Host::start();
    let xe = Xe::new(&host);
    std::fs::write(
        xe.home().join(".xe"),
        format!(
            "server={}\nport={HTTPS_PORT}\npassword={}\n",
            host.ip, host.password
        ),
    )
    .expect("~/.xe written");
    assert!(complete(&xe, "=", "xe vm-param-list uuid=").is_empty());
    assert!(!xe.home().join(".xe.d/known_hosts").exists());
}

/// The script from `xe completion bash`, sourced into bash, fills COMPREPLY through the
/// completion protocol (COMP_LINE, COMP_POINT, COMP_WORDS, COMP_CWORD).
#[test]
fn bash_script_completes_through_the_protocol() {
    let host = Host::start();
    let xe = trusting_user(&host);
    let script = xe.ok(&["completion", "bash"]);
    let dom0 = xe.minimal(&["vm-list"]);
    let bin = xe_bin().display().to_string();
    let run = |line: &str, words: &[&str]| {
        let words: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let program = format!(
            "{script}\nCOMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; \
             COMP_WORDS=('{bin}' {}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _xe_complete; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            words.join(" ")
        );
        let out = Command::new("bash")
            .args(["--norc", "-c", &program])
            .env("HOME", xe.home())
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(run("xe vm-para", &["vm-para"]).lines().count(), 6);
    assert_eq!(
        run("xe vm-param-list uuid=", &["vm-param-list", "uuid", "="]),
        format!("={dom0} \n")
    );
}
