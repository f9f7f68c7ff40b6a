//! Hosts whose wall clocks jump or disagree, each with a clock of its own through libfaketime
//! (`oxapi_tests::faketime`; the tests skip when it is not installed): sessions and finished
//! tasks outlive a jump of the master's clock by two days and a failover to a host whose clock
//! runs two days ahead, no host looks silent after the jump, and the master raises
//! `HOST_CLOCK_SKEW_DETECTED` for each host whose clock is off.

use std::time::Duration;

use api_spec::Value;
use oxapi_tests::cluster::pool::SETTLE_TIMEOUT;
use oxapi_tests::cluster::watch::messages_named;
use oxapi_tests::cluster::{Cluster, ClusterOptions, skipped};
use oxapi_tests::events::EventWait;
use oxapi_tests::faketime::FakeClock;
use oxapi_tests::{Client, Protocol};
use serde_json::json;

/// What libfaketime makes of a two-day jump.
const TWO_DAYS: &str = "+2d";
/// How long the master may take to raise a skew alert (a few heartbeats, then the commit).
const ALERT_TIMEOUT: Duration = Duration::from_secs(30);
/// What the master logs when it finds a host silent.
const SILENT_HOST_LINE: &str = "host silent too long: not live";

/// One fake clock per host at the given offsets, or `None` (the test is skipped, saying so)
/// when libfaketime is not installed.
fn fake_clocks(test: &str, offsets: &[&str]) -> Option<Vec<FakeClock>> {
    let clocks: Option<Vec<_>> = offsets.iter().map(|o| FakeClock::new(o)).collect();
    if clocks.is_none() {
        skipped(
            test,
            "libfaketime is not installed (Debian package faketime; tests/run installs it)",
        );
    }
    clocks
}

/// A pool of one host per clock, each with its clock, housekeeping every second, and client
/// tasks left pending destroyed after a second (the canary of `two_housekeeping_rounds`).
async fn pool_with(clocks: &[FakeClock]) -> Cluster {
    let mut options = ClusterOptions::hosts(clocks.len());
    for (i, clock) in clocks.iter().enumerate() {
        let master = json!({ "housekeeping_interval_secs": 1, "pending_task_gc_after_secs": 1 });
        options.host_config.insert(i, json!({ "master": master }));
        options.host_env.insert(i, clock.env());
    }
    Cluster::start(options).await
}

/// A task that has finished on the master `client` reaches.
async fn finished_task(client: &Client) -> String {
    let task = client.ok("Async.pool.sync_database", vec![]).await;
    let task = task.as_str().expect("a task ref").to_owned();
    let mut events = EventWait::new(client, &[&format!("task/{task}")], SETTLE_TIMEOUT);
    while client
        .ok("task.get_status", vec![Value::str(&task)])
        .await
        .as_str()
        != Some("success")
    {
        events.next("the task did not succeed").await;
    }
    task
}

/// Waits until the master that `client` reaches has run housekeeping at least twice from now:
/// a client task created now, pending and run by nobody, is destroyed by the third round that
/// sees it (`pending_task_gc_after_secs` is 1).
async fn two_housekeeping_rounds(client: &Client) {
    let canary = client
        .ok("task.create", vec![Value::str("canary"), Value::str("")])
        .await;
    let mut events = EventWait::new(client, &["task"], SETTLE_TIMEOUT);
    while client
        .call("task.get_status", vec![canary.clone()])
        .await
        .is_ok()
    {
        events
            .next("housekeeping never destroyed the canary task")
            .await;
    }
}

/// `session` still works and `task` is still there, finished.
async fn assert_kept(admin: &Client, session: &Client, task: &str) {
    session
        .call("pool.get_all", vec![])
        .await
        .expect("the session is still valid");
    let status = admin.call("task.get_status", vec![Value::str(task)]).await;
    assert_eq!(
        status,
        Ok(Value::str("success")),
        "the finished task is kept"
    );
}

/// The `obj_uuid` of every `HOST_CLOCK_SKEW_DETECTED` message of the pool.
async fn skew_alerts(client: &Client) -> Vec<String> {
    let messages = messages_named(client, "HOST_CLOCK_SKEW_DETECTED").await;
    messages.into_iter().map(|m| m.obj_uuid).collect()
}

/// The master's wall clock jumps two days ahead while it runs: after two housekeeping rounds
/// a session and a finished task made before the jump are still there, and the master found
/// no host silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_and_tasks_outlive_a_two_day_jump_of_the_masters_clock() {
    let test = "sessions_and_tasks_outlive_a_two_day_jump_of_the_masters_clock";
    let Some(clocks) = fake_clocks(test, &["+0", "+0", "+0"]) else {
        return;
    };
    let cluster = pool_with(&clocks).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let admin = cluster.nodes[master].login(Protocol::JsonRpc).await;
    let session = cluster.nodes[master].login(Protocol::JsonRpc).await;
    let task = finished_task(&admin).await;
    let silent_before = cluster.nodes[master]
        .logs()
        .matches(SILENT_HOST_LINE)
        .count();

    clocks[master].set(TWO_DAYS);
    let host = Value::str(cluster.nodes[master].host_ref());
    let servertime = admin.ok("host.get_servertime", vec![host]).await;
    let servertime = servertime.as_str().and_then(api_spec::datetime::parse_unix);
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    let real = i64::try_from(real.as_secs()).expect("a Unix time");
    assert!(
        servertime.is_some_and(|t| t - real > 2 * 24 * 3600 - 60),
        "the master's clock did not jump: {servertime:?}, really {real}"
    );
    two_housekeeping_rounds(&admin).await;

    assert_kept(&admin, &session, &task).await;
    let silent_after = cluster.nodes[master]
        .logs()
        .matches(SILENT_HOST_LINE)
        .count();
    assert_eq!(
        silent_after, silent_before,
        "hosts found silent after the jump"
    );
}

/// Two of three hosts run two days ahead: the master raises `HOST_CLOCK_SKEW_DETECTED` for
/// each of them and not for itself; once it is killed, the new master (two days ahead) keeps
/// the session and the finished task made on the old one through two housekeeping rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn skews_are_raised_and_a_failover_to_a_clock_ahead_keeps_sessions_and_tasks() {
    let test = "skews_are_raised_and_a_failover_to_a_clock_ahead_keeps_sessions_and_tasks";
    let Some(clocks) = fake_clocks(test, &["+0", TWO_DAYS, TWO_DAYS]) else {
        return;
    };
    let mut cluster = pool_with(&clocks).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    assert_eq!(master, 0, "the first master is the host on real time");
    let admin = cluster.nodes[0].login(Protocol::JsonRpc).await;
    let mut ahead: Vec<String> = [1, 2]
        .iter()
        .map(|&i| {
            let uuid = cluster.nodes[i].identity("host_uuid");
            uuid.as_str().expect("a host uuid").to_owned()
        })
        .collect();
    ahead.sort();
    let mut events = EventWait::new(&admin, &["message"], ALERT_TIMEOUT);
    loop {
        let mut alerts = skew_alerts(&admin).await;
        alerts.sort();
        if alerts == ahead {
            break;
        }
        events
            .next(&format!(
                "skew alerts for {alerts:?}, not for {ahead:?}\n{}",
                cluster.log_tails(&[0])
            ))
            .await;
    }

    let session = cluster.nodes[0].login(Protocol::JsonRpc).await;
    let task = finished_task(&admin).await;
    cluster.nodes[0].kill();
    let new_master = cluster.wait_for_master(&[1, 2]).await;
    let new_admin = cluster.nodes[new_master].login(Protocol::JsonRpc).await;
    two_housekeeping_rounds(&new_admin).await;

    let mut through_new_master = cluster.nodes[new_master].client(Protocol::JsonRpc);
    through_new_master.session = session.session;
    assert_kept(&new_admin, &through_new_master, &task).await;
}
