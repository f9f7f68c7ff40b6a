//! A partition made with real packet drops (iptables, in a chain of the test's own): the master
//! cut off from the other two hosts stops acting as master, the majority elects one that takes
//! writes, and once the network heals the old master serves again at once (its streams to the
//! others noticed the silence and are redialled) and the pool is one again with nothing
//! acknowledged lost.
//! Skipped, with a message, where the tests cannot use iptables (not root).

use std::time::{Duration, Instant};

use api_spec::Value;
use oxapi_tests::Protocol;
use oxapi_tests::cluster::net::hosts_dial_from_their_own_address;
use oxapi_tests::cluster::pool::within;
use oxapi_tests::cluster::{Cluster, ClusterOptions, Firewall, Load, assert_history, skipped};
use oxapi_tests::host::HTTPS_PORT;

const WRITERS: usize = 6;
/// How long the majority may take to elect a master that takes writes.
const ELECTION_LIMIT: Duration = Duration::from_secs(10);
/// After this long cut off, a master must have stepped down (a few election timeouts).
const STEP_DOWN_LIMIT: Duration = Duration::from_secs(4);
/// How soon after the heal the old master answers calls again (forwarded to the new one).
const SERVE_LIMIT: Duration = Duration::from_secs(2);

/// The master cut off from both other hosts: the two elect a new master that acknowledges
/// writes, the old one acknowledges none and no longer names itself master; within 2 s of the
/// heal it answers calls (forwarded to the new master), it follows the new master and every
/// acknowledged write is on all three hosts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_master_steps_down_and_the_majority_elects() {
    let cluster = Cluster::start(ClusterOptions::hosts(3)).await;
    let firewall = match Firewall::new(&cluster.subnet) {
        Ok(firewall) => firewall,
        Err(why) => {
            skipped(
                "a_partitioned_master_steps_down_and_the_majority_elects",
                &why.0,
            );
            return;
        }
    };
    let master = cluster.settle(&[0, 1, 2]).await;
    let ips: Vec<_> = cluster.nodes.iter().map(|n| n.ip).collect();
    assert!(
        hosts_dial_from_their_own_address(&ips, HTTPS_PORT),
        "the hosts dial each other from 127.0.0.1, not from their own addresses, so address \
         rules cannot cut them apart: the peer transport must bind its connections to the \
         host's listen address"
    );
    let majority: Vec<usize> = (0..3).filter(|&i| i != master).collect();
    let load = Load::start(&cluster, WRITERS).await;
    assert!(load.history.wait_len(50, Duration::from_secs(30)).await);

    let majority_ips: Vec<_> = majority.iter().map(|&i| ips[i]).collect();
    firewall.cut(&[ips[master]], &majority_ips);
    let cut_at = Instant::now();

    let deadline = cut_at + ELECTION_LIMIT;
    let elected = loop {
        let via_majority = load
            .history
            .first_ack_after(cut_at, |a| majority.contains(&a.via));
        if let Some(ack) = via_majority {
            break ack;
        }
        assert!(
            Instant::now() < deadline,
            "the majority took no write within {ELECTION_LIMIT:?}\n{}",
            cluster.log_tails(&[0, 1, 2])
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let new_master = cluster.wait_for_master(&majority).await;
    assert_ne!(new_master, master);

    // Within a few election timeouts the old master steps down (its log says so); then it
    // takes no write and does not name itself master.
    while cluster.nodes[master].leads_by_its_logs() {
        assert!(
            Instant::now() < cut_at + STEP_DOWN_LIMIT,
            "the cut-off master still leads {STEP_DOWN_LIMIT:?} after the cut\n{}",
            cluster.log_tails(&[master])
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let probe_from = Instant::now();
    let (pool, session) = oxapi_tests::cluster::load::pool_and_session(&cluster).await;
    let mut old = cluster.nodes[master].client(Protocol::JsonRpc);
    old.session = Some(session.clone());
    let probe = old.try_call(
        "pool.add_to_other_config",
        vec![
            Value::str(&pool),
            Value::str("probe-minority"),
            Value::str("v"),
        ],
    );
    let outcome = within(probe).await;
    assert!(
        !matches!(outcome, Some(Ok(Ok(_)))),
        "the cut-off old master acknowledged a write"
    );
    assert_ne!(cluster.master_seen_by(master).await, Some(master));
    let heal_at = Instant::now();
    let minority_acks: Vec<_> = load
        .history
        .acks()
        .into_iter()
        .filter(|a| a.via == master && a.sent >= probe_from && a.acked < heal_at)
        .collect();
    assert!(
        minority_acks.is_empty(),
        "writes acknowledged by the cut-off host: {minority_acks:?}"
    );
    firewall.heal();
    if let Err(failure) = cluster
        .answers_by(master, &session, heal_at + SERVE_LIMIT)
        .await
    {
        panic!(
            "the old master did not answer within {SERVE_LIMIT:?} of the heal: {failure}\n{}",
            cluster.log_tails(&[0, 1, 2])
        );
    }

    assert_eq!(cluster.settle(&[0, 1, 2]).await, new_master);
    assert!(elected.acked >= cut_at);
    let history = load.stop().await;
    assert_history(&cluster, &history, &[0, 1, 2], None).await;
    drop(firewall);
}
