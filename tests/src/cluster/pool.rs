//! `Cluster`: N `oxapi` hosts joined into one pool with the XenAPI `pool.join` call, and what the
//! tests ask of the pool as a whole: who is master, which hosts are voters, waiting until it
//! settles after a failure.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use api_spec::{ApiError, Value};
use serde_json::json;

use crate::client::{Client, Protocol};
use crate::cluster::net::Subnet;
use crate::cluster::node::{Node, NodeSetup, NodeState};

/// How long a call of the harness may take before the host counts as not answering.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the pool may take to settle (joins, elections, promotions) before the test fails.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(45);
/// Time between two looks at a pool that is settling.
const POLL: Duration = Duration::from_millis(100);
/// How long one try of `answers_by` waits: a call that takes longer may sit in a retry of the
/// host's own (a forward to a master whose stream was not up yet), and a fresh one shows sooner
/// whether the host serves.
const TRY_TIMEOUT: Duration = Duration::from_millis(500);

/// How to build a test pool. The timings are short so that failures show within seconds.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub hosts: usize,
    /// `raft.max_voters`; `None` keeps oxapi's default (3).
    pub max_voters: Option<usize>,
    /// `pool.forward_calls`: `false` answers `HOST_IS_SLAVE` on non-masters.
    pub forward_calls: bool,
    /// `pool.dead_after_secs`: a host silent this long is not live.
    pub dead_after_secs: u64,
    /// `pool.fence_after_secs`: an agent cut off from the master this long stops its domains.
    pub fence_after_secs: u64,
    /// `raft.replace_voter_after_secs`: a voter down this long is replaced by a learner.
    pub replace_voter_after_secs: u64,
    /// Join the hosts into one pool at start (else each stays a one-host pool).
    pub join: bool,
    /// Config sections of one host, by index, merged over the pool's (e.g. `simulator.cpu`).
    pub host_config: BTreeMap<usize, serde_json::Value>,
    /// Hosts whose data dir is a tmpfs of its own, by index: its size in bytes (needs root).
    pub small_disks: BTreeMap<usize, u64>,
    /// Environment variables of one host's process, by index (e.g. a `FakeClock`'s).
    pub host_env: BTreeMap<usize, Vec<(String, String)>>,
    /// Every host runs real VMs with QEMU (`--backend qemu`) instead of the simulator.
    pub qemu: bool,
}

impl ClusterOptions {
    /// `hosts` hosts joined into one pool, with short failure timings.
    pub fn hosts(hosts: usize) -> ClusterOptions {
        ClusterOptions {
            hosts,
            max_voters: None,
            forward_calls: true,
            dead_after_secs: 4,
            fence_after_secs: 2,
            replace_voter_after_secs: 4,
            join: true,
            host_config: BTreeMap::new(),
            small_disks: BTreeMap::new(),
            host_env: BTreeMap::new(),
            qemu: false,
        }
    }

    /// The same hosts left as separate one-host pools.
    pub fn unjoined(mut self) -> ClusterOptions {
        self.join = false;
        self
    }

    /// Host `index`'s config: the pool's, with the settings of `host_config` merged over it
    /// (each one replacing the pool's setting of the same name in the same section).
    fn config_of(&self, index: usize) -> serde_json::Value {
        let mut config = self.config();
        if let Some(serde_json::Value::Object(own)) = self.host_config.get(&index) {
            for (section, value) in own {
                match (config.get_mut(section.as_str()), value) {
                    (
                        Some(serde_json::Value::Object(settings)),
                        serde_json::Value::Object(own_settings),
                    ) => settings.extend(own_settings.clone()),
                    _ => config[section.as_str()] = value.clone(),
                }
            }
        }
        config
    }

    fn config(&self) -> serde_json::Value {
        let mut raft = json!({ "replace_voter_after_secs": self.replace_voter_after_secs });
        if let Some(max) = self.max_voters {
            raft["max_voters"] = json!(max);
        }
        let mut pool = json!({
            "dead_after_secs": self.dead_after_secs,
            "fence_after_secs": self.fence_after_secs,
        });
        if !self.forward_calls {
            pool["forward_calls"] = json!(false);
        }
        json!({ "raft": raft, "pool": pool })
    }

    /// The number of voters a settled pool of `hosts` hosts has.
    pub fn voters(&self, hosts: usize) -> usize {
        hosts.min(self.max_voters.unwrap_or(3))
    }
}

/// A call with the harness's deadline: `None` when the host did not answer in time (frozen,
/// cut off, killed).
pub async fn within<T>(call: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(CALL_TIMEOUT, call).await.ok()
}

/// Asks with `Client::try_call` and folds "no answer" and "answer too late" into `None`.
pub async fn try_ask(client: &Client, method: &str, params: Vec<Value>) -> Option<Value> {
    match within(client.try_call(method, params)).await {
        Some(Ok(Ok(value))) => Some(value),
        _ => None,
    }
}

/// A test pool: hosts on 127.0.X.1..n, joined to host 0 (the first master).
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub options: ClusterOptions,
    pub subnet: Subnet,
    /// A session of the pool the harness reuses to ask who is master (a login is a write).
    session: Mutex<Option<String>>,
}

impl Cluster {
    /// Starts the hosts (all at once), then joins each to host 0, one after the other, and
    /// waits until the pool has settled.
    pub async fn start(options: ClusterOptions) -> Cluster {
        let subnet = Subnet::take();
        let starts: Vec<_> = (0..options.hosts)
            .map(|i| {
                let setup = NodeSetup {
                    config: options.config_of(i),
                    env: options.host_env.get(&i).cloned().unwrap_or_default(),
                    disk_bytes: options.small_disks.get(&i).copied(),
                    qemu: options.qemu,
                };
                tokio::spawn(Node::start(i, subnet.host(i), setup))
            })
            .collect();
        let mut nodes = Vec::with_capacity(starts.len());
        for start in starts {
            nodes.push(start.await.expect("a host start panicked"));
        }
        let mut cluster = Cluster {
            nodes,
            options,
            subnet,
            session: Mutex::new(None),
        };
        if cluster.options.join {
            for i in 1..cluster.nodes.len() {
                cluster
                    .join(i, 0)
                    .await
                    .unwrap_or_else(|e| panic!("host {i} cannot join: {e}"));
            }
            let all: Vec<usize> = (0..cluster.nodes.len()).collect();
            cluster.settle(&all).await;
        }
        cluster
    }

    /// Starts every host's peak resident memory again from what it holds now; what each holds,
    /// by index, for `assert_peak_growth_below`.
    pub fn reset_peak_resident(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .map(|node| {
                node.reset_peak_resident();
                node.resident_bytes()
            })
            .collect()
    }

    /// Fails unless every host's peak resident memory stayed less than `limit` bytes above
    /// what it held at `reset_peak_resident` (`before`).
    pub fn assert_peak_growth_below(&self, before: &[u64], limit: u64) {
        for (node, before) in self.nodes.iter().zip(before) {
            let growth = node.peak_resident_bytes().saturating_sub(*before);
            assert!(
                growth < limit,
                "host {} grew by {} MiB",
                node.index,
                growth >> 20
            );
        }
    }

    /// The pool's root password: the first master's (joiners take it).
    pub fn password(&self) -> &str {
        &self.nodes[0].password
    }

    /// `pool.join` called on host `joiner` towards host `master`; on success, waits for the
    /// joiner's self-restart (same pid, a second ready line) and for it to answer as a member.
    pub async fn join(&mut self, joiner: usize, master: usize) -> Result<(), ApiError> {
        let (address, password) = {
            let m = &self.nodes[master];
            (m.address(), m.password.clone())
        };
        self.join_with(joiner, &address, &password).await?;
        Ok(())
    }

    /// `pool.join_force` called on host `joiner` towards host `master`; on success, as `join`.
    pub async fn join_force(&mut self, joiner: usize, master: usize) -> Result<(), ApiError> {
        let (address, password) = {
            let m = &self.nodes[master];
            (m.address(), m.password.clone())
        };
        self.join_by("pool.join_force", joiner, &address, &password)
            .await
    }

    /// `pool.join(address, "root", password)` on host `joiner`; on success, as `join`.
    pub async fn join_with(
        &mut self,
        joiner: usize,
        address: &str,
        password: &str,
    ) -> Result<(), ApiError> {
        self.join_by("pool.join", joiner, address, password).await
    }

    /// `method(address, "root", password)` on host `joiner`; on success, as `join`.
    async fn join_by(
        &mut self,
        method: &str,
        joiner: usize,
        address: &str,
        password: &str,
    ) -> Result<(), ApiError> {
        let node = &mut self.nodes[joiner];
        let client = node.login(Protocol::JsonRpc).await;
        let pid = node.pid();
        let ready = node.ready_count();
        client
            .call(
                method,
                vec![
                    Value::str(address),
                    Value::str("root"),
                    Value::str(password),
                ],
            )
            .await?;
        node.wait_ready(ready + 1).await;
        assert_eq!(node.pid(), pid, "the joiner restarts itself in place");
        node.password = password.to_owned();
        Ok(())
    }

    /// The host whose host ref is `host_ref`.
    pub fn index_of(&self, host_ref: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.host_ref() == host_ref)
    }

    /// Indexes of the hosts whose process runs (not frozen, not down).
    pub fn running(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .filter(|n| n.state() == NodeState::Running)
            .map(|n| n.index)
            .collect()
    }

    /// Logs in through host `via` with the pool's password; `None` if it does not answer.
    pub async fn try_login(&self, via: usize) -> Option<Client> {
        let node = &self.nodes[via];
        let mut client = node.client(Protocol::JsonRpc);
        let login = client.try_call_raw(
            "session.login_with_password",
            vec![Value::str("root"), Value::str(&node.password)],
        );
        let session = within(login).await?.ok()?.ok()?;
        client.session = Some(session.as_str()?.to_owned());
        Some(client)
    }

    /// The master as host `via` reports it (`pool.get_master`, forwarded if `via` is not the
    /// master); `None` if it does not answer or names no host of this cluster.
    pub async fn master_seen_by(&self, via: usize) -> Option<usize> {
        let cached = self.session.lock().expect("not poisoned").clone();
        if let Some(session) = cached {
            let mut client = self.nodes[via].client(Protocol::JsonRpc);
            client.session = Some(session);
            if let Some(master) = self.ask_master(&client).await {
                return Some(master);
            }
        }
        let client = self.try_login(via).await?;
        *self.session.lock().expect("not poisoned") = client.session.clone();
        self.ask_master(&client).await
    }

    async fn ask_master(&self, client: &Client) -> Option<usize> {
        let pools = try_ask(client, "pool.get_all", vec![]).await?;
        let pool = pools.as_array()?.first()?.as_str()?.to_owned();
        let master = try_ask(client, "pool.get_master", vec![Value::str(pool)]).await?;
        self.index_of(master.as_str()?)
    }

    /// Asks host `via` for the pools (`pool.get_all` with `session`: the master's answer,
    /// forwarded when `via` does not lead) until it answers, a fresh try every `TRY_TIMEOUT` at
    /// most; `Err` with the last failure once `deadline` passes.
    pub async fn answers_by(
        &self,
        via: usize,
        session: &str,
        deadline: Instant,
    ) -> Result<(), String> {
        let mut client = self.nodes[via].client(Protocol::JsonRpc);
        client.session = Some(session.to_owned());
        loop {
            let call = client.try_call("pool.get_all", vec![]);
            let given_up = deadline.min(Instant::now() + TRY_TIMEOUT);
            let failure = match tokio::time::timeout_at(given_up.into(), call).await {
                Ok(Ok(Ok(_))) => return Ok(()),
                Ok(Ok(Err(error))) => error.to_string(),
                Ok(Err(error)) => error.to_string(),
                Err(_) => "no answer".to_owned(),
            };
            if Instant::now() >= deadline {
                return Err(failure);
            }
            let pause = POLL.min(deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(pause).await;
        }
    }

    /// Waits until every host of `hosts` names the same master, one of `hosts`; returns it.
    pub async fn wait_for_master(&self, hosts: &[usize]) -> usize {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let mut seen = Vec::new();
            for &h in hosts {
                seen.push(self.master_seen_by(h).await);
            }
            if let Some(Some(master)) = seen.first().copied()
                && hosts.contains(&master)
                && seen.iter().all(|s| *s == Some(master))
            {
                return master;
            }
            assert!(
                Instant::now() < deadline,
                "hosts {hosts:?} agree on no master among them: {seen:?}\n{}",
                self.log_tails(hosts)
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The voters of the latest Raft configuration `node` applied, by the node ids of its log
    /// (`raft configuration changed … voters=[…]`).
    pub fn voters_in_log(&self, node: usize) -> Vec<u64> {
        let logs = self.nodes[node].logs();
        let line = logs
            .lines()
            .rev()
            .find(|l| l.contains("raft configuration changed"));
        line.and_then(|l| l.split_once("voters=["))
            .and_then(|(_, rest)| rest.split_once(']'))
            .map(|(ids, _)| {
                ids.split(',')
                    .filter_map(|id| id.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Indexes of the hosts that are voters, as host `node` last saw the configuration.
    pub fn voter_hosts(&self, node: usize) -> Vec<usize> {
        let voters = self.voters_in_log(node);
        self.nodes
            .iter()
            .filter(|n| voters.contains(&n.node_id()))
            .map(|n| n.index)
            .collect()
    }

    /// Waits until `hosts` agree on a master, one of them, and the master's Raft configuration
    /// has as many voters as the pool should have (at most as many as `hosts`); returns it.
    pub async fn settle(&self, hosts: &[usize]) -> usize {
        if self.options.forward_calls {
            self.settle_asking(hosts, hosts).await
        } else {
            // Non-masters answer no call: ask the host that was master at the start.
            self.settle_asking(hosts, &[0]).await
        }
    }

    /// `settle`, asking only the hosts of `ask` who the master is.
    pub async fn settle_asking(&self, hosts: &[usize], ask: &[usize]) -> usize {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let master = self.wait_for_master(ask).await;
            let want = self.options.voters(self.nodes.len());
            let voters = self.voter_hosts(master);
            if voters.len() >= want.min(hosts.len()) {
                return master;
            }
            assert!(
                Instant::now() < deadline,
                "the pool of {hosts:?} did not settle: master {master}, voters {voters:?} (want {want})\n{}",
                self.log_tails(hosts)
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The last log lines of each host of `hosts`, for failure messages.
    pub fn log_tails(&self, hosts: &[usize]) -> String {
        hosts
            .iter()
            .map(|&h| format!("--- host {h} ---\n{}\n", self.nodes[h].log_tail()))
            .collect()
    }

    /// A host ref per host of this cluster, as `host.get_all` lists them through `via`.
    pub async fn hosts_seen_by(&self, via: usize) -> Vec<String> {
        let client = self.nodes[via].login(Protocol::JsonRpc).await;
        let hosts = client.ok("host.get_all", vec![]).await;
        hosts
            .as_array()
            .expect("a list of hosts")
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    }
}
