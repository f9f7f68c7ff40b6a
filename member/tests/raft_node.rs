//! The Raft node of a one-voter pool: proposals, apply-time preconditions, read barriers and
//! group commit, through `ReplicatedDb` as the master uses it.

use std::path::Path;
use std::sync::Arc;

use api_spec::Value;
use db_schema::{ApplyError, Op, Precondition, Txn};
use master::db::{ProposeError, ReplicatedDb};
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

/// A new pool in `dir` whose bootstrap Txn sets `pool_name`.
fn bootstrap(dir: &Path) {
    let txn = Txn {
        preconditions: Vec::new(),
        ops: vec![Op::PutInternal {
            key: "pool_name".into(),
            value: Value::str("test pool"),
        }],
    };
    raft::bootstrap(dir, 1, &txn).expect("bootstrap");
}

/// A bootstrapped pool holds what its Txn made, and a proposed Txn comes back applied at the
/// generation it was committed at.
#[tokio::test]
async fn proposed_txn_is_applied_after_the_bootstrap_txn() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert!(!raft::exists(dir.path()));
    bootstrap(dir.path());
    assert!(raft::exists(dir.path()));
    let node = raft::open(dir.path(), RaftConfig::default())
        .await
        .expect("open");
    assert!(node.db.status().borrow().is_leader);
    assert_eq!(
        node.db.read().internal("pool_name"),
        Some(&Value::str("test pool"))
    );

    let applied = node.db.propose(put("answer", 42)).await.expect("propose");
    assert!(applied.generation > 1, "{applied:?}");
    assert_eq!(*node.db.applied().borrow(), applied.generation);
    assert_eq!(node.db.read().internal("answer"), Some(&Value::Int(42)));
    assert_eq!(node.db.read().applied_index(), applied.generation);
    node.shutdown().await.expect("shutdown");
}

/// A Txn whose precondition fails at apply time comes back as `Apply` and changes nothing.
#[tokio::test]
async fn txn_with_failing_precondition_comes_back_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    bootstrap(dir.path());
    let node = raft::open(dir.path(), RaftConfig::default())
        .await
        .expect("open");
    let precondition = Precondition::Exists {
        class: "VM".into(),
        r#ref: "OpaqueRef:no-such-vm".into(),
    };
    let mut txn = put("must not appear", 1);
    txn.preconditions.push(precondition.clone());

    let refused = node.db.propose(txn).await;
    assert_eq!(
        refused,
        Err(ProposeError::Apply(ApplyError::PreconditionFailed {
            precondition: Box::new(precondition),
        }))
    );
    assert_eq!(node.db.read().internal("must not appear"), None);
    let applied = node.db.propose(put("after", 2)).await.expect("propose");
    assert_eq!(node.db.read().internal("after"), Some(&Value::Int(2)));
    assert_eq!(node.db.read().applied_index(), applied.generation);
    node.shutdown().await.expect("shutdown");
}

/// A read barrier resolves on the one-voter leader, and a read after it sees every write
/// acknowledged before it.
#[tokio::test]
async fn read_barrier_resolves_on_the_one_voter_leader() {
    let dir = tempfile::tempdir().expect("temp dir");
    bootstrap(dir.path());
    let node = raft::open(dir.path(), RaftConfig::default())
        .await
        .expect("open");
    node.db.read_barrier().await.expect("first barrier");
    let applied = node.db.propose(put("seen", 7)).await.expect("propose");
    node.db.read_barrier().await.expect("barrier");
    {
        let db = node.db.read();
        assert!(db.applied_index() >= applied.generation);
        assert_eq!(db.internal("seen"), Some(&Value::Int(7)));
    }
    node.shutdown().await.expect("shutdown");
}

/// A node that is not a voter of the group is never leader: proposals and read barriers fail
/// at once with NotLeader.
#[tokio::test]
async fn node_that_is_not_leader_refuses_proposals_and_read_barriers() {
    let dir = tempfile::tempdir().expect("temp dir");
    bootstrap(dir.path());
    let config = RaftConfig {
        node_id: 2,
        ..RaftConfig::default()
    };
    let node = raft::open(dir.path(), config).await.expect("open");
    assert!(!node.db.status().borrow().is_leader);
    assert_eq!(
        node.db.propose(put("k", 1)).await,
        Err(ProposeError::NotLeader)
    );
    assert_eq!(node.db.read_barrier().await, Err(ProposeError::NotLeader));
    assert_eq!(node.db.read().internal("k"), None);
    node.shutdown().await.expect("shutdown");
}

/// Concurrent proposals share fsyncs: 200 of them take far fewer than 200 redb commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_proposals_share_redb_commits() {
    const PROPOSALS: i64 = 200;
    let dir = tempfile::tempdir().expect("temp dir");
    bootstrap(dir.path());
    let node = raft::open(dir.path(), RaftConfig::default())
        .await
        .expect("open");
    node.db.read_barrier().await.expect("leader settled");
    let commits_before = node.db.log_commits();

    let start = Arc::new(tokio::sync::Barrier::new(PROPOSALS as usize));
    let tasks: Vec<_> = (0..PROPOSALS)
        .map(|i| {
            let db = Arc::clone(&node.db);
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                db.propose(put(&format!("key-{i}"), i)).await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("propose");
    }
    let commits = node.db.log_commits() - commits_before;
    assert!(
        commits <= PROPOSALS as u64 / 4,
        "{commits} commits for {PROPOSALS} proposals"
    );
    for i in 0..PROPOSALS {
        assert_eq!(
            node.db.read().internal(&format!("key-{i}")),
            Some(&Value::Int(i))
        );
    }
    node.shutdown().await.expect("shutdown");
}
