//! Password logins of a real `oxapi` under attack: many wrong passwords at once stay within a
//! memory bound while a real login goes through, and one source's failures are spaced by the
//! failure delay, unknown user names alike.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use api_spec::Value;
use oxapi_tests::{Client, Host, Protocol};

/// oxapi's default `master.password_failure_delay_ms`.
const FAILURE_DELAY: Duration = Duration::from_millis(2000);
/// The memory one argon2 check takes (argon2's default `m_cost`, 19 MiB), in KiB.
const ARGON2_KIB: u64 = 19 * 1024;

/// The `n`th client address: each its own source, as the host sees it.
fn source(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 254, 0, n))
}

/// `session.login_with_password(uname, pwd)` from `source`, on a connection of its own, in a
/// task of its own: the reply (its error code on failure) and when it came, from `start`.
fn login_from(
    host: &Host,
    source: IpAddr,
    uname: &str,
    pwd: &str,
    start: Instant,
) -> tokio::task::JoinHandle<(Result<Value, String>, Duration)> {
    let client = Client::from_source(host, Protocol::JsonRpc, source);
    let params = vec![Value::str(uname), Value::str(pwd)];
    tokio::spawn(async move {
        let reply = client.call_raw("session.login_with_password", params).await;
        (reply.map_err(|e| e.code), start.elapsed())
    })
}

async fn reply_of(
    login: tokio::task::JoinHandle<(Result<Value, String>, Duration)>,
) -> (Result<Value, String>, Duration) {
    login.await.expect("the login task does not panic")
}

/// 64 wrong logins at once, half with root's wrong password and half with an unknown user
/// name, each from its own address, raise the process's peak memory by far less than 64
/// argon2 checks would (the checks run a few at a time), and a login with the right password
/// sent meanwhile succeeds.
#[tokio::test]
async fn sixty_four_wrong_logins_at_once_stay_within_a_memory_bound() {
    let host = Host::start();
    let start = Instant::now();
    let (first, _) = reply_of(login_from(
        &host,
        source(100),
        "root",
        &host.password,
        start,
    ))
    .await;
    first.expect("a first login");
    let peak_before = host.memory_kib("VmHWM");
    let wrong: Vec<_> = (1..=64u8)
        .map(|n| {
            let uname = if n % 2 == 0 { "root" } else { "admin" };
            login_from(&host, source(n), uname, "not the password", start)
        })
        .collect();
    let right = login_from(&host, source(101), "root", &host.password, start);
    for login in wrong {
        let (reply, _) = reply_of(login).await;
        assert_eq!(reply, Err("SESSION_AUTHENTICATION_FAILED".to_owned()));
    }
    let (session, _) = reply_of(right).await;
    let session = session.expect("the right password logs in meanwhile");
    assert!(
        session
            .as_str()
            .is_some_and(|s| s.starts_with("OpaqueRef:"))
    );
    let grown = host.memory_kib("VmHWM").saturating_sub(peak_before);
    // Two checks at once by default; the rest is room for 65 TLS connections and threads.
    let bound = 4 * ARGON2_KIB;
    assert!(
        grown < bound,
        "peak memory grew by {grown} KiB (bound {bound} KiB); now resident: {} KiB",
        host.memory_kib("VmRSS")
    );
}

/// Three failed logins from one address, sent at once (a wrong password, root's right
/// password under an unknown user name, and another unknown user), are answered one failure
/// delay apart, while a login from another address, sent with them, is answered before the
/// last of them.
#[tokio::test]
async fn one_sources_failures_are_spaced_by_the_failure_delay_unknown_users_too() {
    let host = Host::start();
    let attacker = source(1);
    let start = Instant::now();
    let attempts = [
        login_from(&host, attacker, "root", "not the password", start),
        login_from(&host, attacker, "admin", &host.password, start),
        login_from(&host, attacker, "nobody", "x", start),
    ];
    let other = login_from(&host, source(2), "root", &host.password, start);
    let mut last = Duration::ZERO;
    for attempt in attempts {
        let (reply, at) = reply_of(attempt).await;
        assert_eq!(reply, Err("SESSION_AUTHENTICATION_FAILED".to_owned()));
        last = last.max(at);
    }
    let (other, other_at) = reply_of(other).await;
    other.expect("another address logs in");
    assert!(
        last >= 3 * FAILURE_DELAY,
        "the third failure was answered after {last:?}"
    );
    assert!(
        other_at < last,
        "the other address waited for the attacker's delays"
    );
}
