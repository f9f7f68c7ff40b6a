//! Store operations on a stopped node: a joiner's reset (an empty store that waits for the
//! leader's snapshot) and an emergency's single voter (the local replica as a new one-voter
//! group).

use std::fs::{self, File};
use std::path::Path;

use db_schema::{Db, Txn, dump};
use raft::eraftpb::{ConfState, Entry, EntryType, HardState};
use redb::{Database, ReadableDatabase};

use crate::raft::tables::{self, ENTRIES, HARD_STATE, META, decode, position, read_meta};
use crate::raft::{DUMPS_DIR, STORE_FILE, STORE_TEMP_FILE, StorageError, snapshot};

/// Resets `dir` for a host joining a pool: the store and dumps are wiped and replaced by an
/// empty replica at index 0 and a store with no configuration, which takes the leader's
/// snapshot once the leader adds `node_id`. The node must not be running.
pub fn prepare_joiner(dir: &Path, node_id: u64) -> Result<(), StorageError> {
    if node_id == 0 {
        return Err(StorageError::NodeIdZero);
    }
    let dumps = dir.join(DUMPS_DIR);
    if dumps.try_exists()? {
        fs::remove_dir_all(&dumps)?;
    }
    let store = dir.join(STORE_FILE);
    if store.try_exists()? {
        fs::remove_file(&store)?;
    }
    fs::create_dir_all(dir)?;
    File::open(dir)?.sync_all()?;
    dump::write(&dumps, &Db::new())?;
    let mut empty = position(0, 0);
    empty.set_conf_state(ConfState::default());
    replace_store(dir, &empty, &HardState::default())?;
    tracing::info!(node_id, "raft store reset to join a pool");
    Ok(())
}

/// Makes `node_id` the only voter of the group of `dir`, keeping everything the replica holds:
/// the newest dump plus every log entry after it are applied (as sole voter, this node would
/// commit its whole log anyway), written as a dump, and the store restarts from there with
/// `node_id` its only voter. For an emergency transition, with the node stopped.
pub fn force_single_voter(dir: &Path, node_id: u64) -> Result<(), StorageError> {
    if node_id == 0 {
        return Err(StorageError::NodeIdZero);
    }
    let dumps = dir.join(DUMPS_DIR);
    let (mut db, _) = snapshot::load_newest(&dumps)?;
    let (hard_state, entries) = entries_after(&dir.join(STORE_FILE), db.applied_index())?;
    for entry in &entries {
        apply_offline(&mut db, entry)?;
    }
    dump::write(&dumps, &db)?;
    let mut start = position(db.applied_index(), db.applied_term());
    start.set_conf_state(ConfState {
        voters: vec![node_id],
        ..ConfState::default()
    });
    let hard_state = HardState {
        term: hard_state.term.max(db.applied_term()),
        commit: db.applied_index(),
        ..HardState::default()
    };
    replace_store(dir, &start, &hard_state)?;
    tracing::warn!(
        node_id,
        index = db.applied_index(),
        "raft store forced to a single voter"
    );
    Ok(())
}

/// The stored hard state and the log entries after `after`.
fn entries_after(path: &Path, after: u64) -> Result<(HardState, Vec<Entry>), StorageError> {
    let file = Database::open(path)?;
    let txn = file.begin_read()?;
    let hard_state: HardState = read_meta(&txn.open_table(META)?, HARD_STATE)?;
    let mut entries = Vec::new();
    for record in txn.open_table(ENTRIES)?.range(after + 1..)? {
        let entry: Entry = decode("entry", record?.1.value())?;
        entries.push(entry);
    }
    Ok((hard_state, entries))
}

/// Applies one entry as the Raft loop would; configuration entries only advance the
/// replica, as the configuration is replaced anyway.
fn apply_offline(db: &mut Db, entry: &Entry) -> Result<(), StorageError> {
    match entry.get_entry_type() {
        EntryType::EntryNormal if !entry.data.is_empty() => {
            let txn: Txn =
                rmp_serde::from_slice(&entry.data).map_err(|source| StorageError::TxnDecode {
                    index: entry.index,
                    source,
                })?;
            // A Txn refused at apply changed nothing, here as on every replica.
            let _ = db.apply(entry.index, entry.term, &txn);
        }
        _ => db.advance(entry.index, entry.term),
    }
    Ok(())
}

/// Replaces the store of `dir` by a new one starting from `start`, built under a temp name and
/// renamed into place.
fn replace_store(
    dir: &Path,
    start: &raft::eraftpb::SnapshotMetadata,
    hard_state: &HardState,
) -> Result<(), StorageError> {
    let temp = dir.join(STORE_TEMP_FILE);
    if temp.try_exists()? {
        fs::remove_file(&temp)?;
    }
    tables::create(&temp, start, hard_state)?;
    fs::rename(&temp, dir.join(STORE_FILE))?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use master::db::ReplicatedDb;

    use super::*;
    use crate::raft::{self, RaftConfig, put};

    /// A joiner's store is empty: no configuration, no log, an empty replica at index 0.
    #[tokio::test]
    async fn joiner_store_is_empty_and_opens() {
        let dir = tempfile::tempdir().expect("temp dir");
        raft::bootstrap(dir.path(), 1, &put("old pool")).expect("bootstrap");
        prepare_joiner(dir.path(), 2).expect("prepare");
        let summary = raft::inspect(dir.path()).expect("inspect");
        assert_eq!(
            (summary.snapshot_index, summary.last_index, summary.term),
            (0, 0, 0)
        );
        let config = RaftConfig {
            node_id: 2,
            ..RaftConfig::default()
        };
        let node = raft::open(dir.path(), config).await.expect("open");
        assert!(node.db.read().internal("old pool").is_none());
        assert!(node.db.membership().borrow().voters.is_empty());
        assert!(!node.db.status().borrow().is_leader);
    }

    /// A forced single voter keeps the committed writes and leads alone.
    #[tokio::test]
    async fn forced_single_voter_keeps_the_replica_and_leads() {
        let dir = tempfile::tempdir().expect("temp dir");
        raft::bootstrap(dir.path(), 1, &put("pool")).expect("bootstrap");
        let node = raft::open(dir.path(), RaftConfig::default())
            .await
            .expect("open");
        node.db.propose(put("kept")).await.expect("propose");
        drop(node);
        force_single_voter(dir.path(), 7).expect("force");
        let config = RaftConfig {
            node_id: 7,
            ..RaftConfig::default()
        };
        let node = raft::open(dir.path(), config).await.expect("open");
        assert!(node.db.status().borrow().is_leader);
        assert!(node.db.read().internal("kept").is_some());
        assert_eq!(node.db.membership().borrow().voters, vec![7]);
        node.db
            .propose(put("after"))
            .await
            .expect("propose as new voter");
    }
}
