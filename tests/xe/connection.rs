//! How `xe` connects: flags over `XE_EXTRA_ARGS` over `~/.xe`, a password file, trust on
//! first use of a certificate (a changed one refused, `--no-verify` to skip), and failover to
//! a pool member seen before when the server named is down.

mod support;

use std::net::Ipv4Addr;

use oxapi_tests::Host;
use oxapi_tests::host::HTTPS_PORT;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use support::Xe;

/// A loopback address nothing listens on: connecting to it is refused at once.
fn dead_address(host: &Host) -> String {
    let [a, b, c, d] = host.ip.octets();
    Ipv4Addr::new(a, b, c, d.wrapping_add(100)).to_string()
}

/// The SHA-256 fingerprint of the host's certificate, as `openssl x509 -fingerprint -sha256`
/// prints it.
fn fingerprint(host: &Host) -> String {
    let der = CertificateDer::from_pem_slice(&host.cert_pem()).expect("a PEM certificate");
    let suite = rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .expect("a TLS 1.3 suite");
    let digest = suite.common.hash_provider.hash(der.as_ref());
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// The command line beats `XE_EXTRA_ARGS`, which beats `~/.xe`.
#[test]
fn flags_beat_environment_beat_rc_file() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let dead = dead_address(&host);
    std::fs::write(
        xe.home().join(".xe"),
        format!(
            "server={dead}\nport={HTTPS_PORT}\nusername=root\npassword={}\n",
            host.password
        ),
    )
    .expect("~/.xe written");
    let run = |env: Option<String>, args: &[&str]| {
        let mut cmd = xe.bare();
        cmd.arg("host-list").arg("--minimal").args(args);
        if let Some(env) = env {
            cmd.env("XE_EXTRA_ARGS", env);
        }
        support::Run::from(cmd.output().expect("xe runs"))
    };
    let from_rc = run(None, &[]);
    assert!(!from_rc.ok, "{}", from_rc.stdout);
    assert!(
        from_rc
            .stderr
            .contains(&format!("cannot reach {dead}:{HTTPS_PORT}")),
        "{}",
        from_rc.stderr
    );
    let from_env = run(Some(format!("server={}", host.ip)), &[]);
    assert!(from_env.ok, "{}", from_env.stderr);
    let flag_wins = run(Some(format!("server={}", host.ip)), &["-s", &dead]);
    assert!(
        !flag_wins.ok && flag_wins.stderr.contains(&dead),
        "{}",
        flag_wins.stderr
    );
    let wrong_password = run(Some(format!("server={}", host.ip)), &["-pw", "wrong"]);
    assert!(
        wrong_password
            .stderr
            .contains("refused session.login_with_password: SESSION_AUTHENTICATION_FAILED"),
        "{}",
        wrong_password.stderr
    );
}

/// A password file gives the user name and the password.
#[test]
fn password_file_gives_user_and_password() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let file = xe.home().join("pw");
    std::fs::write(&file, format!("root\n{}\n", host.password)).expect("written");
    let out = xe
        .bare()
        .args(["host-list", "--minimal", "-s", &host.ip.to_string()])
        .args(["-p", &HTTPS_PORT.to_string(), "-pwf"])
        .arg(&file)
        .output()
        .expect("xe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first use remembers the certificate's fingerprint; a different one is then refused
/// with a message that says how to accept it, unless `--no-verify`.
#[test]
fn first_use_is_remembered_and_a_changed_certificate_refused() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let first = xe.run(&["host-list", "--minimal"]);
    assert!(first.ok, "{}", first.stderr);
    assert!(
        first.stderr.contains("trusting the certificate"),
        "{}",
        first.stderr
    );
    let known_hosts = xe.home().join(".xe.d/known_hosts");
    let address = format!("{}:{HTTPS_PORT}", host.ip);
    let line = format!("{address} {}\n", fingerprint(&host));
    assert_eq!(
        std::fs::read_to_string(&known_hosts).expect("remembered"),
        line
    );
    let again = xe.run(&["host-list", "--minimal"]);
    assert!(
        again.ok && !again.stderr.contains("trusting"),
        "{}",
        again.stderr
    );
    let forged = format!("{address} {}\n", ["AB"; 32].join(":"));
    std::fs::write(&known_hosts, &forged).expect("written");
    let refused = xe.run(&["host-list"]);
    assert!(!refused.ok, "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains(&format!("the certificate of {address} has changed")),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains(&known_hosts.display().to_string()));
    assert!(refused.stderr.contains("--no-verify"));
    let unchecked = xe.run(&["host-list", "--minimal", "--no-verify"]);
    assert!(unchecked.ok, "{}", unchecked.stderr);
    assert_eq!(std::fs::read_to_string(&known_hosts).expect("kept"), forged);
}

/// When the server named is down, xe logs in through a pool member it saw behind it; the
/// members are remembered after each login.
#[test]
fn down_server_fails_over_to_a_member_seen_before() {
    let host = Host::start();
    let xe = Xe::new(&host);
    xe.ok(&["host-list"]);
    let members = xe.home().join(".xe.d/pool_members");
    let live = format!("{}:{HTTPS_PORT}", host.ip);
    assert_eq!(
        std::fs::read_to_string(&members).expect("members remembered"),
        format!("{live} {live}\n")
    );
    let dead = dead_address(&host);
    let through_dead = |xe: &Xe| {
        let mut cmd = xe.bare();
        cmd.args(["host-list", "--minimal", "-s", &dead, "-p"])
            .arg(HTTPS_PORT.to_string())
            .args(["-pw", &host.password]);
        support::Run::from(cmd.output().expect("xe runs"))
    };
    let alone = through_dead(&xe);
    assert!(
        !alone.ok && alone.stderr.contains("cannot reach"),
        "{}",
        alone.stderr
    );
    std::fs::write(&members, format!("{dead}:{HTTPS_PORT} {live}\n")).expect("written");
    let failed_over = through_dead(&xe);
    assert!(failed_over.ok, "{}", failed_over.stderr);
    assert_eq!(failed_over.stdout.trim(), xe.minimal(&["host-list"]));
}
