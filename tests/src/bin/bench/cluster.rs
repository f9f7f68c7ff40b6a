//! The 3-host pool's figures: replicated write throughput through the master with 1 and 32
//! concurrent clients, and the failover time (kill -9 of the master → the first acknowledged
//! write through a survivor) over several trials, p50 and max.

use std::time::{Duration, Instant};

use api_spec::Value;
use oxapi_tests::cluster::vm::new_vm;
use oxapi_tests::cluster::{Cluster, ClusterOptions};
use oxapi_tests::{Client, Protocol};
use tokio::task::JoinSet;

use crate::{percentile, rename, throughput};

const CONCURRENCY: [usize; 2] = [1, 32];
/// How long one probe write may go unanswered before the prober sends another.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);
/// The pause after a probe that was not acknowledged, so that probes do not crowd the election.
const PROBE_PAUSE: Duration = Duration::from_millis(10);
/// The longest a failover may take before the benchmark gives up on the pool.
const FAILOVER_GIVE_UP: Duration = Duration::from_secs(60);

/// `count` clients of host `node`, each on its own connection, sharing `session`.
fn clients_of(
    cluster: &Cluster,
    node: usize,
    protocol: Protocol,
    session: &str,
    count: usize,
) -> Vec<Client> {
    (0..count)
        .map(|_| {
            let mut client = cluster.nodes[node].client(protocol);
            client.session = Some(session.to_owned());
            client
        })
        .collect()
}

/// Writes `VM.set_name_label` through `client` until one is acknowledged; returns when.
async fn first_ack(client: Client, vm: String) -> Instant {
    let mut i = 0u64;
    loop {
        i += 1;
        let params = vec![Value::str(&vm), Value::str(format!("probe {i}"))];
        let call = client.try_call("VM.set_name_label", params);
        if let Ok(Ok(Ok(_))) = tokio::time::timeout(PROBE_TIMEOUT, call).await {
            return Instant::now();
        }
        tokio::time::sleep(PROBE_PAUSE).await;
    }
}

/// One failover: kills the master, probes every survivor at once, and returns the time from
/// the kill to the first acknowledged write; then restarts the killed host and lets the pool
/// settle.
async fn failover(cluster: &mut Cluster, protocol: Protocol, session: &str, vm: &str) -> Duration {
    let all: Vec<usize> = (0..cluster.nodes.len()).collect();
    let master = cluster.settle(&all).await;
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != master).collect();
    let mut probes = JoinSet::new();
    let clients: Vec<Client> = survivors
        .iter()
        .flat_map(|&s| clients_of(cluster, s, protocol, session, 1))
        .collect();
    cluster.nodes[master].kill();
    let killed_at = Instant::now();
    for client in clients {
        probes.spawn(first_ack(client, vm.to_owned()));
    }
    let acked = tokio::time::timeout(FAILOVER_GIVE_UP, probes.join_next())
        .await
        .ok()
        .flatten()
        .map(|r| r.expect("a probe panicked"))
        .unwrap_or_else(|| panic!("no master after {FAILOVER_GIVE_UP:?}"));
    probes.abort_all();
    cluster.nodes[master].restart().await;
    acked.saturating_duration_since(killed_at)
}

/// Starts a 3-host pool and prints its figures.
pub async fn run(protocol: Protocol, duration: Duration, trials: usize) {
    let mut cluster = Cluster::start(ClusterOptions::hosts(3)).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let admin = cluster.nodes[master].login(protocol).await;
    let session = admin.session.clone().expect("logged in");
    let vm = new_vm(&admin, "pool bench vm").await;
    println!(
        "3-host pool, {protocol:?} through the master, {}s per figure",
        duration.as_secs()
    );
    for clients in CONCURRENCY {
        let pool = clients_of(&cluster, master, protocol, &session, clients);
        let target = vm.clone();
        let rate = throughput(pool, duration, move |c, i| rename(c, target.clone(), i)).await;
        println!(
            "write  VM.set_name_label   {clients:>2} clients: {rate:>9.0} calls/s (committed by 2 of 3 hosts, fsynced)"
        );
    }
    let mut times = Vec::with_capacity(trials);
    for _ in 0..trials {
        times.push(failover(&mut cluster, protocol, &session, &vm).await);
    }
    times.sort();
    println!(
        "failover: kill -9 of the master → first acknowledged write through a survivor ({trials} trials): p50 {:.0} ms, max {:.0} ms",
        percentile(&times, 0.50).as_secs_f64() * 1e3,
        times.last().expect("at least one trial").as_secs_f64() * 1e3
    );
}
