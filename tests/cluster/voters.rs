//! Voter replacement on a 5-host pool with 3 voters: a voter down longer than
//! `raft.replace_voter_after_secs` is replaced by a caught-up learner, so the pool survives two
//! successive losses of voters that, without replacement, would leave it without a quorum. With
//! `raft.max_voters = 5` every host of a 5-host pool votes, and two hosts may go at once.

use std::time::{Duration, Instant};

use oxapi_tests::cluster::{Cluster, ClusterOptions, Load, assert_history};

/// How long a replacement may take: `replace_voter_after_secs` plus catching up, with margin.
const REPLACE_LIMIT: Duration = Duration::from_secs(30);

/// Waits until the master's configuration has three voters, all of them running hosts;
/// returns the master and the voters.
async fn wait_for_live_voters(cluster: &Cluster) -> (usize, Vec<usize>) {
    let running = cluster.running();
    let deadline = Instant::now() + REPLACE_LIMIT;
    loop {
        let master = cluster.wait_for_master(&running).await;
        let voters = cluster.voter_hosts(master);
        if voters.len() == 3 && voters.iter().all(|v| running.contains(v)) {
            return (master, voters);
        }
        assert!(
            Instant::now() < deadline,
            "voters {voters:?} are not three running hosts of {running:?}\n{}",
            cluster.log_tails(&[master])
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Two non-master voters killed one after the other, each replaced before the next loss: the
/// pool keeps a master that takes writes, and the three hosts left have every acknowledged
/// write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_five_host_pool_survives_two_successive_voter_losses() {
    let mut cluster = Cluster::start(ClusterOptions::hosts(5)).await;
    let (_, voters) = wait_for_live_voters(&cluster).await;
    assert_eq!(voters.len(), 3);
    let load = Load::start(&cluster, 4).await;
    assert!(load.history.wait_len(50, Duration::from_secs(30)).await);

    for loss in 0..2 {
        let (master, voters) = wait_for_live_voters(&cluster).await;
        let doomed = *voters
            .iter()
            .find(|&&v| v != master)
            .expect("a voter that is not master");
        cluster.nodes[doomed].kill();
        let (_, replaced) = wait_for_live_voters(&cluster).await;
        assert!(!replaced.contains(&doomed), "loss {loss}: {replaced:?}");
        let since = Instant::now();
        assert!(
            load.history
                .wait_ack_after(since, Duration::from_secs(10))
                .await
                .is_some(),
            "loss {loss}: no write acknowledged after the replacement"
        );
    }
    let live = cluster.running();
    assert_eq!(live.len(), 3);
    let history = load.stop().await;
    assert_history(&cluster, &history, &live, None).await;
}

/// With `raft.max_voters = 5` the five hosts all vote; the master and another voter killed at
/// the same moment leave a quorum of three, which elects a master that takes writes within 3 s,
/// and the three hosts left have every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_voters_survive_two_hosts_killed_at_once() {
    let mut options = ClusterOptions::hosts(5);
    options.max_voters = Some(5);
    let mut cluster = Cluster::start(options).await;
    let master = cluster.settle(&[0, 1, 2, 3, 4]).await;
    assert_eq!(cluster.voter_hosts(master), vec![0, 1, 2, 3, 4]);
    let load = Load::start(&cluster, 4).await;
    assert!(load.history.wait_len(50, Duration::from_secs(30)).await);

    let other = (0..5)
        .find(|&i| i != master)
        .expect("a voter that is not master");
    cluster.nodes[master].kill();
    cluster.nodes[other].kill();
    let killed_at = Instant::now();
    let live = cluster.running();
    assert!(
        load.history
            .wait_ack_after(killed_at, Duration::from_secs(3))
            .await
            .is_some(),
        "no write acknowledged within 3 s of losing two of five voters\n{}",
        cluster.log_tails(&live)
    );
    let new_master = cluster.wait_for_master(&live).await;
    assert_ne!(new_master, master);
    let history = load.stop().await;
    assert_history(&cluster, &history, &live, None).await;
}
