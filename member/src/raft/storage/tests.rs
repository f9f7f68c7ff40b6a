//! Tests of `LogStore`: what it answers raft-rs and what survives a reopen.

use raft::Storage as _;

use super::*;
use crate::raft::tables::{create, summary};

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: format!("entry {index}").into_bytes().into(),
        ..Entry::default()
    }
}

fn voters(ids: &[u64]) -> ConfState {
    ConfState {
        voters: ids.to_vec(),
        ..ConfState::default()
    }
}

fn hard_state(term: u64, commit: u64) -> HardState {
    HardState {
        term,
        commit,
        ..HardState::default()
    }
}

/// A store created at index 1, term 1, voters [1], in a fresh directory.
fn created() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("raft.redb");
    let mut snapshot = position(1, 1);
    snapshot.set_conf_state(voters(&[1]));
    create(&path, &snapshot, &hard_state(1, 1)).expect("create");
    (dir, path)
}

fn open(path: &Path, dump_index: u64, dump_term: u64) -> Result<LogStore, StorageError> {
    LogStore::open(
        path,
        dump_index,
        dump_term,
        Arc::new(RwLock::new(Db::new())),
        Arc::default(),
    )
}

/// A new store answers raft-rs as a log that starts after a snapshot at index 1, term 1.
#[test]
fn created_store_starts_after_a_snapshot_at_index_one() {
    let (_dir, path) = created();
    let store = open(&path, 1, 1).expect("open");
    assert_eq!(store.first_index().expect("first"), 2);
    assert_eq!(store.last_index().expect("last"), 1);
    assert_eq!(store.term(1).expect("term of the snapshot index"), 1);
    let state = store.initial_state().expect("state");
    assert_eq!(state.hard_state, hard_state(1, 1));
    assert_eq!(state.conf_state.voters, vec![1]);
}

/// Entries and hard state written by `persist` are there after a reopen, in order.
#[test]
fn persisted_entries_and_hard_state_survive_reopen() {
    let (_dir, path) = created();
    let mut store = open(&path, 1, 1).expect("open");
    let entries: Vec<Entry> = (2..=5).map(|i| entry(i, 2)).collect();
    store
        .persist(None, &entries, Some(&hard_state(2, 5)))
        .expect("persist");
    assert_eq!(store.commits.load(Ordering::Relaxed), 1);
    drop(store);

    let store = open(&path, 1, 1).expect("reopen");
    assert_eq!(store.last_index().expect("last"), 5);
    let got = store
        .entries(2, 6, None, GetEntriesContext::empty(false))
        .expect("entries");
    assert_eq!(got, entries);
    assert_eq!(store.initial_state().expect("state").hard_state.commit, 5);
}

/// Appending at an index inside the log replaces the tail from there (a new leader's log).
#[test]
fn append_inside_the_log_replaces_the_conflicting_tail() {
    let (_dir, path) = created();
    let mut store = open(&path, 1, 1).expect("open");
    let first: Vec<Entry> = (2..=6).map(|i| entry(i, 2)).collect();
    store.persist(None, &first, None).expect("persist");
    store
        .persist(None, &[entry(4, 3), entry(5, 3)], None)
        .expect("persist the new tail");
    assert_eq!(store.last_index().expect("last"), 5);
    assert_eq!(store.term(4).expect("term"), 3);
    drop(store);
    let store = open(&path, 1, 1).expect("reopen");
    assert_eq!(store.last_index().expect("last"), 5);
    assert_eq!(store.term(3).expect("term"), 2);
    assert_eq!(store.term(5).expect("term"), 3);
}

/// A commit recorded with `set_commit` reaches the disk with the next write.
#[test]
fn commit_index_is_written_with_the_next_persist() {
    let (_dir, path) = created();
    let mut store = open(&path, 1, 1).expect("open");
    store.persist(None, &[entry(2, 2)], None).expect("persist");
    store.set_commit(2);
    store.persist(None, &[entry(3, 2)], None).expect("persist");
    drop(store);
    assert_eq!(summary(&path).expect("summary").commit, 2);
}

/// Compaction drops the log up to the index, answers Compacted below it, and keeps the
/// term of the compaction point.
#[test]
fn compaction_drops_the_log_up_to_the_index() {
    let (_dir, path) = created();
    let mut store = open(&path, 1, 1).expect("open");
    let entries: Vec<Entry> = (2..=10).map(|i| entry(i, 2)).collect();
    store.persist(None, &entries, None).expect("persist");
    store.compact(7).expect("compact");
    assert_eq!(store.first_index().expect("first"), 8);
    assert_eq!(store.term(7).expect("term of the compaction point"), 2);
    assert_eq!(
        store.term(6),
        Err(raft::Error::Store(raft::StorageError::Compacted))
    );
    assert_eq!(
        store.entries(7, 9, None, GetEntriesContext::empty(false)),
        Err(raft::Error::Store(raft::StorageError::Compacted))
    );
    drop(store);
    let summary = summary(&path).expect("summary");
    assert_eq!((summary.snapshot_index, summary.entries), (7, 3));
    let store = open(&path, 8, 2).expect("reopen from a dump at 8");
    assert_eq!(store.first_index().expect("first"), 8);
    assert_eq!(store.last_index().expect("last"), 10);
}

/// The configuration raft-rs starts from is the one in force at the dump's index.
#[test]
fn open_takes_the_configuration_in_force_at_the_dump() {
    let (_dir, path) = created();
    let mut store = open(&path, 1, 1).expect("open");
    let entries: Vec<Entry> = (2..=6).map(|i| entry(i, 2)).collect();
    store.persist(None, &entries, None).expect("persist");
    store
        .set_conf_state(4, voters(&[1, 2]))
        .expect("conf state");
    drop(store);
    let before = open(&path, 3, 2).expect("open at 3");
    assert_eq!(before.conf_state().voters, vec![1]);
    drop(before);
    let mut after = open(&path, 5, 2).expect("open at 5");
    assert_eq!(after.conf_state().voters, vec![1, 2]);
    after.compact(5).expect("compact");
    drop(after);
    let compacted = open(&path, 5, 2).expect("open after compaction");
    assert_eq!(compacted.conf_state().voters, vec![1, 2]);
}

/// A dump older than the compaction point cannot be replayed from: open says so.
#[test]
fn dump_behind_the_log_is_refused() {
    let (_dir, path) = created();
    let mut store = open(&path, 1, 1).expect("open");
    let entries: Vec<Entry> = (2..=6).map(|i| entry(i, 2)).collect();
    store.persist(None, &entries, None).expect("persist");
    store.compact(4).expect("compact");
    drop(store);
    assert!(matches!(
        open(&path, 3, 2),
        Err(StorageError::DumpBehindLog {
            dump_index: 3,
            first_index: 5
        })
    ));
    assert!(matches!(
        open(&path, 9, 2),
        Err(StorageError::DumpAheadOfLog { .. })
    ));
    assert!(matches!(
        open(&path, 5, 7),
        Err(StorageError::DumpLogMismatch { .. })
    ));
}

/// A snapshot install that stopped after its dump was written is finished on open; without
/// the staged record the same dump is refused.
#[test]
fn staged_snapshot_whose_dump_was_written_is_installed_on_open() {
    let (_dir, path) = created();
    let mut store = open(&path, 1, 1).expect("open");
    let entries: Vec<Entry> = (2..=6).map(|i| entry(i, 2)).collect();
    store.persist(None, &entries, None).expect("persist");
    let mut snapshot = position(20, 4);
    snapshot.set_conf_state(voters(&[1, 2, 3]));
    store.stage_snapshot(&snapshot).expect("stage");
    drop(store);

    let store = open(&path, 20, 4).expect("reopen from the snapshot's dump");
    assert_eq!(store.first_index().expect("first"), 21);
    assert_eq!(store.term(20).expect("term"), 4);
    assert_eq!(store.conf_state().voters, vec![1, 2, 3]);
    assert_eq!(store.initial_state().expect("state").hard_state.commit, 20);
    drop(store);
    let store = open(&path, 20, 4).expect("reopen once installed");
    assert_eq!(store.last_index().expect("last"), 20);
    drop(store);
    assert!(matches!(
        open(&path, 30, 4),
        Err(StorageError::DumpAheadOfLog { .. })
    ));
}

/// A snapshot from the leader replaces the whole log and the configuration.
#[test]
fn snapshot_from_the_leader_replaces_the_log() {
    let (_dir, path) = created();
    let mut store = open(&path, 1, 1).expect("open");
    let entries: Vec<Entry> = (2..=6).map(|i| entry(i, 2)).collect();
    store.persist(None, &entries, None).expect("persist");
    let mut snapshot = position(20, 4);
    snapshot.set_conf_state(voters(&[1, 2, 3]));
    store
        .persist(Some(&snapshot), &[entry(21, 4)], Some(&hard_state(4, 20)))
        .expect("persist the snapshot");
    assert_eq!(store.first_index().expect("first"), 21);
    assert_eq!(store.term(20).expect("term"), 4);
    drop(store);
    let store = open(&path, 20, 4).expect("reopen");
    assert_eq!(store.last_index().expect("last"), 21);
    assert_eq!(store.conf_state().voters, vec![1, 2, 3]);
}
