//! Durability against a real `oxapi`: kill -9 in the middle of a stream of writes loses no
//! acknowledged write; sessions and event tokens outlive the process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use api_spec::Value;
use oxapi_tests::{Client, Host, Protocol, logged_in};
use tokio::sync::Notify;

const WRITERS: usize = 8;
const ROUNDS: usize = 3;

async fn pool_ref(client: &Client) -> String {
    let pools = client.ok("pool.get_all", vec![]).await;
    pools
        .as_array()
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .expect("one pool")
        .to_owned()
}

async fn other_config(client: &Client, pool: &str) -> BTreeMap<String, Value> {
    client
        .ok("pool.get_other_config", vec![Value::str(pool)])
        .await
        .as_struct()
        .expect("a map")
        .clone()
}

/// Writers add keys to pool.other_config until the host is killed with SIGKILL at some point
/// mid-stream; after a restart every key whose write was acknowledged is there. Three rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_write_survives_kill_9() {
    let mut host = Host::start();
    for round in 0..ROUNDS {
        let client = logged_in(&host, Protocol::JsonRpc).await;
        let pool = pool_ref(&client).await;
        let acked: Arc<Mutex<Vec<String>>> = Arc::default();
        let progress = Arc::new(Notify::new());
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let client = client.clone();
            let pool = pool.clone();
            let acked = acked.clone();
            let progress = progress.clone();
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("r{round}-w{w}-{i}");
                    let params = vec![Value::str(&pool), Value::str(&key), Value::str("v")];
                    match client.try_call("pool.add_to_other_config", params).await {
                        Ok(Ok(_)) => {
                            acked.lock().expect("not poisoned").push(key);
                            progress.notify_one();
                        }
                        Ok(Err(e)) => panic!("write {key} failed: {e}"),
                        // No answer: the host is gone; the outcome of this write is unknown.
                        Err(_) => return,
                    }
                }
            }));
        }
        // Kill at a different point of each round, while every writer is mid-stream.
        let kill_after = 150 + 97 * round;
        while acked.lock().expect("not poisoned").len() < kill_after {
            progress.notified().await;
        }
        host.kill();
        for writer in writers {
            writer.await.expect("writer task");
        }
        let acked = acked.lock().expect("not poisoned").clone();
        assert!(acked.len() >= kill_after);

        host.start_again();
        let client = logged_in(&host, Protocol::JsonRpc).await;
        let config = other_config(&client, &pool).await;
        let lost: Vec<&String> = acked.iter().filter(|k| !config.contains_key(*k)).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} of {} acknowledged writes lost, e.g. {:?}",
            lost.len(),
            acked.len(),
            &lost[..lost.len().min(5)]
        );
    }
}

/// A session made before a kill -9 is still valid after the restart.
#[tokio::test]
async fn sessions_survive_kill_9() {
    let mut host = Host::start();
    let session = logged_in(&host, Protocol::XmlRpc).await.session;
    host.kill();
    host.start_again();
    // A new connection (the old one died with the process), the old session.
    let mut client = Client::new(&host, Protocol::XmlRpc);
    client.session = session;
    let pools = client.ok("pool.get_all", vec![]).await;
    assert_eq!(pools.as_array().map(<[_]>::len), Some(1));
}

/// A client that comes back after a kill -9 with its last event token misses nothing: it sees the
/// change made before the kill and the one made after the restart.
#[tokio::test]
async fn event_token_misses_nothing_across_kill_9() {
    let mut host = Host::start();
    let client = logged_in(&host, Protocol::JsonRpc).await;
    let pool = pool_ref(&client).await;
    let first = client
        .ok(
            "event.from",
            vec![
                Value::Array(vec![Value::str("pool")]),
                Value::str(""),
                Value::Float(0.0),
            ],
        )
        .await;
    let token = first.as_struct().expect("a struct")["token"].clone();
    client
        .ok(
            "pool.set_name_label",
            vec![Value::str(&pool), Value::str("before kill")],
        )
        .await;
    host.kill();
    host.start_again();
    let session = client.session.clone();
    let mut client = Client::new(&host, Protocol::JsonRpc);
    client.session = session;
    let batch = client
        .ok(
            "event.from",
            vec![
                Value::Array(vec![Value::str("pool")]),
                token.clone(),
                Value::Float(10.0),
            ],
        )
        .await;
    let batch = batch.as_struct().expect("a struct");
    let events = batch["events"].as_array().expect("events");
    let labels: Vec<&str> = events
        .iter()
        .filter_map(|e| e.as_struct())
        .filter(|e| e.get("operation").and_then(Value::as_str) == Some("mod"))
        .filter_map(|e| e.get("snapshot")?.as_struct()?.get("name_label")?.as_str())
        .collect();
    assert_eq!(labels, ["before kill"], "{events:?}");

    let token = batch["token"].clone();
    client
        .ok(
            "pool.set_name_label",
            vec![Value::str(&pool), Value::str("after restart")],
        )
        .await;
    let batch = client
        .ok(
            "event.from",
            vec![
                Value::Array(vec![Value::str("pool")]),
                token,
                Value::Float(10.0),
            ],
        )
        .await;
    let events = batch.as_struct().expect("a struct")["events"].clone();
    assert!(
        format!("{events:?}").contains("after restart"),
        "{events:?}"
    );
}
