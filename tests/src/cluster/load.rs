//! A continuous write load on a test pool: writers add distinct keys to the pool's
//! `other_config` through every host in turn, and the history records each acknowledged one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use api_spec::Value;
use tokio::task::JoinHandle;

use crate::client::{Client, Protocol};
use crate::cluster::history::{Ack, History};
use crate::cluster::pool::Cluster;

/// The pause after a write that was not acknowledged, before the writer tries the next host.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// How long a writer waits for an answer before it counts the write as not acknowledged and
/// tries the next host; well under the 3 s a failover may take, so that a write stuck on a
/// frozen or cut-off host does not hide a master that already takes writes elsewhere.
const WRITE_TIMEOUT: Duration = Duration::from_millis(1500);

/// The pool ref and a session, taken through whichever host answers.
pub async fn pool_and_session(cluster: &Cluster) -> (String, String) {
    for via in cluster.running() {
        let Some(client) = cluster.try_login(via).await else {
            continue;
        };
        let Some(pools) = crate::cluster::pool::try_ask(&client, "pool.get_all", vec![]).await
        else {
            continue;
        };
        let pool = pools
            .as_array()
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .expect("one pool")
            .to_owned();
        return (pool, client.session.expect("logged in"));
    }
    panic!(
        "no host answers a login\n{}",
        cluster.log_tails(&cluster.running())
    );
}

/// Clients of every host of the cluster, sharing one session.
pub fn clients_of(cluster: &Cluster, session: &str) -> Vec<(usize, Client)> {
    cluster
        .nodes
        .iter()
        .map(|n| {
            let mut client = n.client(Protocol::JsonRpc);
            client.session = Some(session.to_owned());
            (n.index, client)
        })
        .collect()
}

/// Writers running until `stop`.
pub struct Load {
    pub history: Arc<History>,
    is_stopping: Arc<AtomicBool>,
    writers: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `writers` writers; writer `w` begins with host `w % hosts` and moves to the next
    /// host after every write that is not acknowledged (error, no answer, no answer in time).
    pub async fn start(cluster: &Cluster, writers: usize) -> Load {
        let (pool, session) = pool_and_session(cluster).await;
        let targets = Arc::new(clients_of(cluster, &session));
        let history = Arc::new(History::default());
        let is_stopping = Arc::new(AtomicBool::new(false));
        let writers = (0..writers)
            .map(|w| {
                let (targets, history) = (targets.clone(), history.clone());
                let (pool, is_stopping) = (pool.clone(), is_stopping.clone());
                tokio::spawn(async move {
                    let mut at = w % targets.len();
                    let mut i = 0u64;
                    while !is_stopping.load(Ordering::Relaxed) {
                        let (via, client) = &targets[at];
                        let key = format!("load-w{w}-{i}");
                        i += 1;
                        let params = vec![Value::str(&pool), Value::str(&key), Value::str("v")];
                        let sent = Instant::now();
                        let call = client.try_call("pool.add_to_other_config", params);
                        match tokio::time::timeout(WRITE_TIMEOUT, call).await {
                            Ok(Ok(Ok(_))) => history.record(Ack {
                                key,
                                via: *via,
                                sent,
                                acked: Instant::now(),
                            }),
                            _ => {
                                history.record_failure();
                                at = (at + 1) % targets.len();
                                tokio::time::sleep(RETRY_PAUSE).await;
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            history,
            is_stopping,
            writers,
        }
    }

    /// Stops the writers (each finishes the write it is in) and returns the history.
    pub async fn stop(self) -> Arc<History> {
        self.is_stopping.store(true, Ordering::Relaxed);
        for writer in self.writers {
            writer.await.expect("a writer panicked");
        }
        self.history
    }
}
