//! The history checker: what a run acknowledged, and the checks over it and the hosts' own
//! records: no acknowledged write lost on any live host, no two hosts leading in the same Raft
//! term, no VM with a domain on two hosts at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api_spec::Value;
use tokio::sync::Notify;

use crate::cluster::load::clients_of;
use crate::cluster::pool::{Cluster, within};

/// How long a live host's replica may take to catch up with every acknowledged write.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(20);
/// Time between two samples of the hosts' simulator state files.
const VM_SAMPLE_INTERVAL: Duration = Duration::from_millis(50);

/// One acknowledged write: `key` added to the pool's other_config through host `via`.
#[derive(Debug, Clone)]
pub struct Ack {
    pub key: String,
    pub via: usize,
    pub sent: Instant,
    pub acked: Instant,
}

/// Every acknowledged write of a run, in acknowledgement order.
#[derive(Default)]
pub struct History {
    acks: Mutex<Vec<Ack>>,
    failures: AtomicU64,
    changed: Notify,
}

impl History {
    pub fn record(&self, ack: Ack) {
        self.acks.lock().expect("not poisoned").push(ack);
        self.changed.notify_waiters();
    }

    /// A write that was not acknowledged (refused, or no answer): its outcome is unknown.
    pub fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub fn acks(&self) -> Vec<Ack> {
        self.acks.lock().expect("not poisoned").clone()
    }

    pub fn len(&self) -> usize {
        self.acks.lock().expect("not poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first acknowledgement of a write sent at or after `since` and matching `filter`.
    pub fn first_ack_after(&self, since: Instant, filter: impl Fn(&Ack) -> bool) -> Option<Ack> {
        let acks = self.acks.lock().expect("not poisoned");
        acks.iter()
            .filter(|a| a.sent >= since && filter(a))
            .min_by_key(|a| a.acked)
            .cloned()
    }

    /// Waits (up to `timeout`) for the first acknowledgement of a write sent at or after `since`.
    pub async fn wait_ack_after(&self, since: Instant, timeout: Duration) -> Option<Ack> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            if let Some(ack) = self.first_ack_after(since, |_| true) {
                return Some(ack);
            }
            tokio::time::timeout_at(deadline, changed).await.ok()?;
        }
    }

    /// Waits until at least `count` writes are acknowledged in all.
    pub async fn wait_len(&self, count: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            if self.len() >= count {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return false;
            }
        }
    }
}

/// The pool's other_config as host `node`'s own replica holds it (`event.from` is served
/// locally); `None` if the host does not answer.
async fn local_other_config(client: &crate::client::Client) -> Option<BTreeMap<String, Value>> {
    let params = vec![
        Value::Array(vec![Value::str("pool")]),
        Value::str(""),
        Value::Float(0.0),
    ];
    let batch = within(client.try_call("event.from", params))
        .await?
        .ok()?
        .ok()?;
    let events = batch.as_struct()?.get("events")?.as_array()?;
    events.iter().find_map(|e| {
        let e = e.as_struct()?;
        let snapshot = e.get("snapshot")?.as_struct()?;
        snapshot.get("other_config")?.as_struct().cloned()
    })
}

/// Every acknowledged write of `history` is in the replica of every host of `hosts` (waiting a
/// little for followers to catch up); panics with what is missing where.
pub async fn assert_no_ack_lost(cluster: &Cluster, history: &History, hosts: &[usize]) {
    let acks = history.acks();
    let session = crate::cluster::load::pool_and_session(cluster).await.1;
    let clients = clients_of(cluster, &session);
    for &h in hosts {
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        let missing = loop {
            let config = local_other_config(&clients[h].1).await;
            let missing: Vec<&Ack> = match &config {
                Some(config) => acks
                    .iter()
                    .filter(|a| !config.contains_key(&a.key))
                    .collect(),
                None => acks.iter().collect(),
            };
            if missing.is_empty() || Instant::now() > deadline {
                break missing;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(
            missing.is_empty(),
            "host {h}: {} of {} acknowledged writes missing, e.g. {:?}\n{}",
            missing.len(),
            acks.len(),
            &missing[..missing.len().min(5)],
            cluster.log_tails(&[h])
        );
    }
}

/// The value of `key=` in a log line, up to the next space.
fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let (_, rest) = line.split_once(&format!(" {key}="))?;
    rest.split(' ').next()
}

/// Every "became leader" line of every host's logs, as (pool epoch, term, host). A host's
/// epoch is the latest its log names (`peer membership updated … epoch=…`); before any, the
/// host is alone in a pool of its own.
pub fn leaderships(cluster: &Cluster) -> Vec<(String, u64, usize)> {
    let logs: Vec<(usize, String)> = cluster.nodes.iter().map(|n| (n.index, n.logs())).collect();
    leaderships_in(&logs)
}

/// `leaderships` over (host, its logs) pairs.
fn leaderships_in(logs: &[(usize, String)]) -> Vec<(String, u64, usize)> {
    let mut out = Vec::new();
    for (host, log) in logs {
        let mut epoch = format!("the first one-host pool of host {host}");
        for line in log.lines() {
            if line.contains("peer membership updated")
                && let Some(e) = log_field(line, "epoch")
            {
                epoch = e.to_owned();
            }
            let is_leader = line.contains("raft leadership changed")
                && log_field(line, "is_leader") == Some("true");
            if let Some(term) = log_field(line, "term").and_then(|t| t.parse().ok())
                && is_leader
            {
                out.push((epoch.clone(), term, *host));
            }
        }
    }
    out
}

/// No Raft term of a pool (an epoch) had two leaders, by the hosts' own logs.
pub fn assert_one_leader_per_term(cluster: &Cluster) {
    let doubles = two_leader_terms(&leaderships(cluster));
    assert!(doubles.is_empty(), "terms with two leaders: {doubles:?}");
}

/// The (epoch, term) keys with more than one leader, and their leaders.
fn two_leader_terms(leaderships: &[(String, u64, usize)]) -> Vec<((String, u64), BTreeSet<usize>)> {
    let mut by_term: BTreeMap<(String, u64), BTreeSet<usize>> = BTreeMap::new();
    for (epoch, term, host) in leaderships {
        by_term
            .entry((epoch.clone(), *term))
            .or_default()
            .insert(*host);
    }
    by_term.into_iter().filter(|(_, h)| h.len() > 1).collect()
}

/// The VMs with a live domain on two hosts at once, in one sample of every host's state file
/// (a killed or frozen host's domains count: its hypervisor keeps them).
pub fn doubly_running(files: &[PathBuf]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut doubles = Vec::new();
    for file in files {
        for vm in super::vm::live_domains(file) {
            if !seen.insert(vm.clone()) {
                doubles.push(vm);
            }
        }
    }
    doubles
}

/// Samples every host's simulator state file until dropped or `finish`ed, remembering every VM
/// seen with a domain on two hosts at once.
pub struct VmWatch {
    is_stopping: Arc<AtomicBool>,
    doubles: Arc<Mutex<BTreeSet<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl VmWatch {
    pub fn start(cluster: &Cluster) -> VmWatch {
        let files: Vec<PathBuf> = cluster.nodes.iter().map(|n| n.simulator_state()).collect();
        let is_stopping = Arc::new(AtomicBool::new(false));
        let doubles: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let thread = {
            let (is_stopping, doubles) = (is_stopping.clone(), doubles.clone());
            std::thread::spawn(move || {
                while !is_stopping.load(Ordering::Relaxed) {
                    let found = doubly_running(&files);
                    doubles.lock().expect("not poisoned").extend(found);
                    std::thread::sleep(VM_SAMPLE_INTERVAL);
                }
            })
        };
        VmWatch {
            is_stopping,
            doubles,
            thread: Some(thread),
        }
    }

    /// Stops sampling; panics if some VM ran on two hosts at once.
    pub fn finish(mut self) {
        self.stop();
        let doubles = self.doubles.lock().expect("not poisoned").clone();
        assert!(
            doubles.is_empty(),
            "VMs running on two hosts at once: {doubles:?}"
        );
    }

    fn stop(&mut self) {
        self.is_stopping.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for VmWatch {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The three checks of a run on `live` hosts: no acknowledged write lost, one leader per term,
/// and (with `vms`) no VM on two hosts.
pub async fn assert_history(
    cluster: &Cluster,
    history: &History,
    live: &[usize],
    vms: Option<VmWatch>,
) {
    assert_no_ack_lost(cluster, history, live).await;
    assert_one_leader_per_term(cluster);
    if let Some(vms) = vms {
        vms.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEAD: &str =
        "INFO member::raft::node: raft leadership changed term=2 node_id=7 is_leader=true";
    const JOIN: &str = "INFO member::peer: peer membership updated members=[1, 7] epoch=e1";

    /// Hosts that each led term 2 of their own one-host pool before joining are no double.
    #[test]
    fn leaders_of_separate_pools_in_the_same_term_are_no_double() {
        let logs = vec![(0, LEAD.to_owned()), (1, LEAD.to_owned())];
        assert!(two_leader_terms(&leaderships_in(&logs)).is_empty());
    }

    /// Two hosts leading the same term of the same epoch are reported.
    #[test]
    fn two_leaders_of_one_pool_in_one_term_are_reported() {
        let log = format!("{JOIN}\n{LEAD}\n");
        let logs = vec![(0, log.clone()), (1, log)];
        let doubles = two_leader_terms(&leaderships_in(&logs));
        assert_eq!(doubles.len(), 1);
        assert_eq!(doubles[0].0, ("e1".to_owned(), 2));
    }

    /// A step-down line (`is_leader=false`) is no leadership.
    #[test]
    fn stepping_down_is_no_leadership() {
        let log = format!(
            "{JOIN}\n{}\n",
            LEAD.replace("is_leader=true", "is_leader=false")
        );
        assert!(leaderships_in(&[(0, log)]).is_empty());
    }

    /// A VM whose domain runs in two state files is reported; a shut-down domain is not live.
    #[test]
    fn a_domain_in_two_state_files_is_a_double() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let write = |name: &str, state: serde_json::Value| {
            let path = dir.path().join(name);
            let body = serde_json::json!({"domains": {"vm-a": {"domain": {"state": state}}}});
            std::fs::write(&path, body.to_string()).expect("written");
            path
        };
        let running = write("a.json", serde_json::json!("running"));
        let paused = write("b.json", serde_json::json!("paused"));
        let stopped = write("c.json", serde_json::json!({"shutdown": "power_off"}));
        assert_eq!(doubly_running(&[running.clone(), paused]), ["vm-a"]);
        assert!(doubly_running(&[running, stopped]).is_empty());
    }
}
