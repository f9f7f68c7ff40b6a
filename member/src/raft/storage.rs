//! The Raft log, hard state and configuration history in redb, with an in-memory copy of the
//! log since the last compaction; `raft::Storage` over it.
//!
//! Tables of `raft.redb`:
//! - `entries`: the log after the compaction point, by index (protobuf `Entry`);
//! - `conf_states`: the configuration after each configuration entry, by index, back to the
//!   newest one at or before the compaction point (protobuf `ConfState`);
//! - `meta`: `hard_state` (protobuf `HardState`), `snapshot`, the compaction point (protobuf
//!   `SnapshotMetadata`, index and term), and `staged_snapshot`, a leader's snapshot whose
//!   install has begun (`SnapshotMetadata` with its configuration).
//!
//! The configuration raft-rs starts from is the one in force at the dump the replica is loaded
//! from; the configuration entries after it are replayed with the rest of the log.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use db_schema::Db;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::raft::StorageError;

const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
const CONF_STATES: TableDefinition<u64, &[u8]> = TableDefinition::new("conf_states");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const HARD_STATE: &str = "hard_state";
const SNAPSHOT: &str = "snapshot";
const STAGED_SNAPSHOT: &str = "staged_snapshot";

/// Encodes a raft-rs record.
fn encode(record: &impl protobuf::Message) -> Vec<u8> {
    record
        .write_to_bytes()
        .expect("eraftpb messages are proto3 and always encode")
}

/// Decodes a raft-rs record read from the store.
fn decode<M: protobuf::Message>(record: &'static str, bytes: &[u8]) -> Result<M, StorageError> {
    M::parse_from_bytes(bytes).map_err(|source| StorageError::Decode { record, source })
}

/// Creates a new store at `path` that starts from a snapshot (`snapshot`: index, term and
/// configuration) with hard state `hard_state` and an empty log. One durable commit.
pub(crate) fn create(
    path: &Path,
    snapshot: &SnapshotMetadata,
    hard_state: &HardState,
) -> Result<(), StorageError> {
    let file = Database::create(path)?;
    let txn = file.begin_write()?;
    {
        txn.open_table(ENTRIES)?;
        let mut conf_states = txn.open_table(CONF_STATES)?;
        conf_states.insert(snapshot.index, encode(snapshot.get_conf_state()).as_slice())?;
        let mut meta = txn.open_table(META)?;
        meta.insert(HARD_STATE, encode(hard_state).as_slice())?;
        meta.insert(
            SNAPSHOT,
            encode(&position(snapshot.index, snapshot.term)).as_slice(),
        )?;
    }
    txn.commit()?;
    Ok(())
}

/// A compaction point as stored: index and term only.
fn position(index: u64, term: u64) -> SnapshotMetadata {
    SnapshotMetadata {
        index,
        term,
        ..SnapshotMetadata::default()
    }
}

/// What a store holds, read without starting a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSummary {
    /// The compaction point: the log starts right after it.
    pub snapshot_index: u64,
    pub snapshot_term: u64,
    /// Entries in the `entries` table.
    pub entries: u64,
    /// The last index in the log (the compaction point when the log is empty).
    pub last_index: u64,
    pub term: u64,
    /// The commit index as last written; it may lag: the loaded dump's index also counts.
    pub commit: u64,
}

/// Reads the summary of the store at `path`; the store must not be open elsewhere.
pub(crate) fn summary(path: &Path) -> Result<LogSummary, StorageError> {
    let file = Database::open(path)?;
    let txn = file.begin_read()?;
    let meta = txn.open_table(META)?;
    let hard_state: HardState = read_meta(&meta, HARD_STATE)?;
    let snapshot: SnapshotMetadata = read_meta(&meta, SNAPSHOT)?;
    let entries = txn.open_table(ENTRIES)?;
    let last_index = match entries.last()? {
        Some((index, _)) => index.value(),
        None => snapshot.index,
    };
    Ok(LogSummary {
        snapshot_index: snapshot.index,
        snapshot_term: snapshot.term,
        entries: entries.len()?,
        last_index,
        term: hard_state.term,
        commit: hard_state.commit,
    })
}

/// The index of the configuration in force at `index`: the newest record at or before it.
fn in_force_at(
    conf_states: &impl ReadableTable<u64, &'static [u8]>,
    index: u64,
) -> Result<u64, StorageError> {
    match conf_states.range(..=index)?.next_back() {
        Some(record) => Ok(record?.0.value()),
        None => Err(missing_conf_state()),
    }
}

fn missing_conf_state() -> StorageError {
    StorageError::Missing {
        record: "conf_state",
    }
}

fn read_meta<M: protobuf::Message>(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    record: &'static str,
) -> Result<M, StorageError> {
    let bytes = meta.get(record)?.ok_or(StorageError::Missing { record })?;
    decode(record, bytes.value())
}

/// The Raft store of this node: what raft-rs reads through `raft::Storage`, and the writes the
/// Raft loop makes after each Ready. Only the Raft thread touches it.
pub struct LogStore {
    file: Database,
    /// The log after `snapshot_index`, contiguous; the same as the `entries` table.
    entries: VecDeque<Entry>,
    /// The compaction point: the log starts at `snapshot_index + 1`.
    snapshot_index: u64,
    snapshot_term: u64,
    /// The newest hard state; `commit` may be ahead of the stored one until the next write.
    hard_state: HardState,
    /// The configuration as of the applied index.
    conf_state: ConfState,
    /// The replica, read by `snapshot()`.
    db: Arc<RwLock<Db>>,
    /// redb write transactions committed since open (each one an fsync).
    commits: Arc<AtomicU64>,
}

impl LogStore {
    /// Opens the store at `path` for a replica loaded from the dump at `dump_index` in
    /// `dump_term`, which `db` holds.
    pub(crate) fn open(
        path: &Path,
        dump_index: u64,
        dump_term: u64,
        db: Arc<RwLock<Db>>,
        commits: Arc<AtomicU64>,
    ) -> Result<LogStore, StorageError> {
        let file = Database::open(path)?;
        let txn = file.begin_read()?;
        let meta = txn.open_table(META)?;
        let mut hard_state: HardState = read_meta(&meta, HARD_STATE)?;
        let snapshot: SnapshotMetadata = read_meta(&meta, SNAPSHOT)?;
        let staged: Option<SnapshotMetadata> = match meta.get(STAGED_SNAPSHOT)? {
            Some(bytes) => Some(decode(STAGED_SNAPSHOT, bytes.value())?),
            None => None,
        };
        let conf_states = txn.open_table(CONF_STATES)?;
        let conf_state: Option<ConfState> = match conf_states.range(..=dump_index)?.next_back() {
            Some(record) => Some(decode("conf_state", record?.1.value())?),
            None => None,
        };
        let mut entries = VecDeque::new();
        for (expected, record) in (snapshot.index + 1..).zip(txn.open_table(ENTRIES)?.iter()?) {
            let (index, bytes) = record?;
            let entry: Entry = decode("entry", bytes.value())?;
            if index.value() != expected || entry.index != expected {
                return Err(StorageError::LogGap {
                    expected,
                    found: index.value(),
                });
            }
            entries.push_back(entry);
        }
        drop((meta, conf_states, txn));
        // The dump holds only applied entries, so its index was committed even when the
        // stored commit (written lazily, with the next Ready) lags behind it.
        hard_state.commit = hard_state.commit.max(dump_index);
        let has_conf_state = conf_state.is_some();
        let mut store = LogStore {
            file,
            entries,
            snapshot_index: snapshot.index,
            snapshot_term: snapshot.term,
            hard_state,
            conf_state: conf_state.unwrap_or_default(),
            db,
            commits,
        };
        let log_term = store.term_of(dump_index);
        // A leader's snapshot written as the dump, with the log not replaced yet: finish the
        // install.
        if let Some(staged) = staged.filter(|staged| {
            (staged.index, staged.term) == (dump_index, dump_term) && log_term != Some(dump_term)
        }) {
            store.hard_state.term = store.hard_state.term.max(staged.term);
            store.persist(Some(&staged), &[], None)?;
            return Ok(store);
        }
        if dump_index < store.snapshot_index {
            return Err(StorageError::DumpBehindLog {
                dump_index,
                first_index: store.snapshot_index + 1,
            });
        }
        if dump_index > store.last() {
            return Err(StorageError::DumpAheadOfLog {
                dump_index,
                last_index: store.last(),
            });
        }
        if log_term != Some(dump_term) {
            return Err(StorageError::DumpLogMismatch {
                index: dump_index,
                dump_term,
                log_term: log_term.unwrap_or_default(),
            });
        }
        if !has_conf_state {
            return Err(missing_conf_state());
        }
        Ok(store)
    }

    /// The last index in the log, or the compaction point when the log is empty.
    fn last(&self) -> u64 {
        self.entries
            .back()
            .map_or(self.snapshot_index, |entry| entry.index)
    }

    /// The term of `index`, if the log still knows it.
    fn term_of(&self, index: u64) -> Option<u64> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        let offset = index.checked_sub(self.snapshot_index + 1)?;
        let entry = self.entries.get(usize::try_from(offset).ok()?)?;
        Some(entry.term)
    }

    /// The compaction point: the log starts right after it.
    pub(crate) fn snapshot_index(&self) -> u64 {
        self.snapshot_index
    }

    /// The configuration as of the applied index.
    pub(crate) fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// Persists what one Ready asks for, in one redb write transaction whose commit is durable
    /// when it returns (redb's default durability, `Immediate`: the commit fsyncs): a snapshot
    /// from the leader (which replaces the whole log), new entries (replacing any conflicting
    /// tail) and the hard state.
    pub(crate) fn persist(
        &mut self,
        snapshot: Option<&SnapshotMetadata>,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), StorageError> {
        if let Some(first) = entries.first() {
            let next = snapshot.map_or(self.last(), |s| s.index) + 1;
            if first.index > next {
                return Err(StorageError::LogGap {
                    expected: next,
                    found: first.index,
                });
            }
        }
        if let Some(hard_state) = hard_state {
            self.hard_state = hard_state.clone();
        }
        let txn = self.file.begin_write()?;
        {
            let mut table = txn.open_table(ENTRIES)?;
            let mut meta = txn.open_table(META)?;
            if let Some(snapshot) = snapshot {
                table.retain(|_, _| false)?;
                let mut conf_states = txn.open_table(CONF_STATES)?;
                conf_states.retain(|_, _| false)?;
                conf_states.insert(snapshot.index, encode(snapshot.get_conf_state()).as_slice())?;
                meta.insert(
                    SNAPSHOT,
                    encode(&position(snapshot.index, snapshot.term)).as_slice(),
                )?;
                meta.remove(STAGED_SNAPSHOT)?;
            }
            if let Some(first) = entries.first() {
                table.retain_in(first.index.., |_, _| false)?;
                for entry in entries {
                    table.insert(entry.index, encode(entry).as_slice())?;
                }
            }
            meta.insert(HARD_STATE, encode(&self.hard_state).as_slice())?;
        }
        txn.commit()?;
        self.commits.fetch_add(1, Ordering::Relaxed);

        if let Some(snapshot) = snapshot {
            self.entries.clear();
            self.snapshot_index = snapshot.index;
            self.snapshot_term = snapshot.term;
            self.conf_state = snapshot.get_conf_state().clone();
        }
        if let Some(first) = entries.first() {
            let keep = first.index.saturating_sub(self.snapshot_index + 1);
            self.entries
                .truncate(usize::try_from(keep).unwrap_or(usize::MAX));
            self.entries.extend(entries.iter().cloned());
        }
        Ok(())
    }

    /// Durably records a leader's snapshot (position and configuration) before its data is
    /// written as a dump, so that a crash between the dump and `persist` can be finished on
    /// open.
    pub(crate) fn stage_snapshot(
        &mut self,
        snapshot: &SnapshotMetadata,
    ) -> Result<(), StorageError> {
        let txn = self.file.begin_write()?;
        txn.open_table(META)?
            .insert(STAGED_SNAPSHOT, encode(snapshot).as_slice())?;
        txn.commit()?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Records a new commit index; it is written with the next `persist`. Losing it is safe:
    /// the entries are durable and the loaded dump's index counts as committed on open.
    pub(crate) fn set_commit(&mut self, commit: u64) {
        self.hard_state.commit = self.hard_state.commit.max(commit);
    }

    /// Durably records the configuration that the configuration entry at `index` put in force.
    pub(crate) fn set_conf_state(
        &mut self,
        index: u64,
        conf_state: ConfState,
    ) -> Result<(), StorageError> {
        let txn = self.file.begin_write()?;
        txn.open_table(CONF_STATES)?
            .insert(index, encode(&conf_state).as_slice())?;
        txn.commit()?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.conf_state = conf_state;
        Ok(())
    }

    /// Drops the log up to and including `index` (a durable dump must cover it), and the
    /// configurations older than the one in force at `index`. Does nothing unless `index` is
    /// in the log.
    pub(crate) fn compact(&mut self, index: u64) -> Result<(), StorageError> {
        if index <= self.snapshot_index {
            return Ok(());
        }
        let Some(term) = self.term_of(index) else {
            return Ok(());
        };
        let txn = self.file.begin_write()?;
        {
            txn.open_table(ENTRIES)?.retain_in(..=index, |_, _| false)?;
            let mut conf_states = txn.open_table(CONF_STATES)?;
            let in_force = in_force_at(&conf_states, index)?;
            conf_states.retain_in(..in_force, |_, _| false)?;
            txn.open_table(META)?
                .insert(SNAPSHOT, encode(&position(index, term)).as_slice())?;
        }
        txn.commit()?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        let dropped = index - self.snapshot_index;
        self.entries.drain(
            ..usize::try_from(dropped)
                .unwrap_or(usize::MAX)
                .min(self.entries.len()),
        );
        self.snapshot_index = index;
        self.snapshot_term = term;
        Ok(())
    }
}

impl raft::Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.snapshot_index {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        let start = usize::try_from(low - self.snapshot_index - 1)
            .expect("the in-memory log fits in memory");
        let end = usize::try_from(high - self.snapshot_index - 1)
            .expect("the in-memory log fits in memory");
        let mut entries: Vec<Entry> = self.entries.range(start..end).cloned().collect();
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        if index < self.snapshot_index {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        self.term_of(index)
            .ok_or(raft::Error::Store(raft::StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.snapshot_index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    /// The replica as it is now, as a dump: a snapshot at the applied index, with the
    /// configuration in force there.
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let unavailable = raft::Error::Store(raft::StorageError::SnapshotTemporarilyUnavailable);
        let db = self
            .db
            .read()
            .expect("the raft thread never panics while holding the db lock");
        if db.applied_index() < request_index {
            return Err(unavailable);
        }
        let data = match db_schema::dump::to_bytes(&db) {
            Ok(data) => data,
            Err(error) => {
                tracing::warn!(to, error = %error, "snapshot for a peer could not be encoded");
                return Err(unavailable);
            }
        };
        let mut snapshot = Snapshot {
            data: data.into(),
            ..Snapshot::default()
        };
        let meta = snapshot.mut_metadata();
        meta.index = db.applied_index();
        meta.term = db.applied_term();
        meta.set_conf_state(self.conf_state.clone());
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use raft::Storage as _;

    use super::*;

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
}
