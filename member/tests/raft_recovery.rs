//! What survives a stop: acknowledged writes after a crash (the node dropped without its
//! final dump), the log compacted behind dumps, and a damaged newest dump.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use api_spec::Value;
use db_schema::{Op, Txn};
use master::db::ReplicatedDb;
use member::raft::{self, RaftConfig};

/// A Txn that sets internal value `key` to `value`.
fn put(key: &str, value: i64) -> Txn {
    Txn {
        preconditions: Vec::new(),
        ops: vec![Op::PutInternal {
            key: key.into(),
            value: Value::Int(value),
        }],
    }
}

fn bootstrap(dir: &Path) {
    raft::bootstrap(dir, 1, &put("bootstrapped", 1)).expect("bootstrap");
}

/// The dump files in a data dir, oldest first.
fn dumps(dir: &Path) -> Vec<PathBuf> {
    let mut dumps: Vec<PathBuf> = std::fs::read_dir(dir.join("dumps"))
        .expect("dumps dir")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "dump"))
        .collect();
    dumps.sort();
    dumps
}

/// Proposes `count` writes `key-<i>` one after the other.
async fn write_sequentially(db: &dyn ReplicatedDb, count: i64) {
    for i in 0..count {
        db.propose(put(&format!("key-{i}"), i))
            .await
            .expect("propose");
    }
}

/// Asserts that the replica holds the `count` writes of `write_sequentially`.
fn assert_all_written(db: &raft::RaftDb, count: i64) {
    let db = db.read();
    for i in 0..count {
        assert_eq!(db.internal(&format!("key-{i}")), Some(&Value::Int(i)));
    }
}

/// Waits until the log is compacted up to at least `index`.
async fn wait_compacted(db: &raft::RaftDb, index: u64) {
    let mut compacted = db.compacted();
    tokio::time::timeout(Duration::from_secs(60), compacted.wait_for(|c| *c >= index))
        .await
        .expect("compaction in time")
        .expect("node running");
}

/// Every write acknowledged to 50 concurrent writers is there after the node is dropped
/// without a final dump and reopened: replayed from the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_crash() {
    const TASKS: i64 = 50;
    const PER_TASK: i64 = 20;
    let dir = tempfile::tempdir().expect("temp dir");
    bootstrap(dir.path());
    let node = raft::open(dir.path(), RaftConfig::default())
        .await
        .expect("open");
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let db = Arc::clone(&node.db);
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0..PER_TASK {
                    let key = format!("task-{task}-{n}");
                    let applied = db.propose(put(&key, n)).await.expect("propose");
                    acknowledged.push((key, n, applied.generation));
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.expect("task"));
    }
    assert_eq!(acknowledged.len(), (TASKS * PER_TASK) as usize);
    drop(node);
    assert_eq!(dumps(dir.path()).len(), 1, "only the bootstrap dump exists");

    let node = raft::open(dir.path(), RaftConfig::default())
        .await
        .expect("reopen");
    let newest = acknowledged
        .iter()
        .map(|(_, _, g)| *g)
        .max()
        .expect("writes");
    assert!(node.db.read().applied_index() >= newest);
    {
        let db = node.db.read();
        for (key, value, _) in &acknowledged {
            assert_eq!(db.internal(key), Some(&Value::Int(*value)), "{key}");
        }
    }
    node.shutdown().await.expect("shutdown");
}

/// With a dump every 50 entries, 500 writes leave a short log behind two dumps, and a reopen
/// restores every write from the newest dump and the log.
#[tokio::test]
async fn log_is_compacted_behind_dumps_and_reopen_restores_everything() {
    const WRITES: i64 = 500;
    let dir = tempfile::tempdir().expect("temp dir");
    bootstrap(dir.path());
    let config = RaftConfig {
        compact_after_entries: 50,
        ..RaftConfig::default()
    };
    let node = raft::open(dir.path(), config.clone()).await.expect("open");
    write_sequentially(node.db.as_ref(), WRITES).await;
    wait_compacted(&node.db, 300).await;
    drop(node);

    let summary = raft::inspect(dir.path()).expect("inspect");
    assert!(summary.snapshot_index >= 300, "{summary:?}");
    assert!(summary.entries <= 250, "{summary:?}");
    assert_eq!(dumps(dir.path()).len(), 2);

    let node = raft::open(dir.path(), config).await.expect("reopen");
    assert!(node.db.read().applied_index() >= summary.last_index);
    assert_all_written(&node.db, WRITES);
    node.shutdown().await.expect("shutdown");
}

/// A damaged newest dump is set aside: the reopen starts from the dump before it, replays the
/// log from there, and loses nothing.
#[tokio::test]
async fn corrupt_newest_dump_falls_back_to_the_older_dump_and_the_log() {
    const WRITES: i64 = 200;
    let dir = tempfile::tempdir().expect("temp dir");
    bootstrap(dir.path());
    let config = RaftConfig {
        compact_after_entries: 50,
        ..RaftConfig::default()
    };
    let node = raft::open(dir.path(), config.clone()).await.expect("open");
    write_sequentially(node.db.as_ref(), WRITES).await;
    wait_compacted(&node.db, 51).await;
    node.shutdown().await.expect("shutdown writes a final dump");

    let written = dumps(dir.path());
    assert_eq!(written.len(), 2);
    let newest = written.last().expect("a dump");
    let mut bytes = std::fs::read(newest).expect("read dump");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(newest, bytes).expect("damage dump");

    let node = raft::open(dir.path(), config).await.expect("reopen");
    assert_all_written(&node.db, WRITES);
    assert_eq!(dumps(dir.path()).len(), 1, "the damaged dump is set aside");
    node.shutdown().await.expect("shutdown");
}
