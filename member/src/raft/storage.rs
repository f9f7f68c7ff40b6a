//! The Raft log, hard state and configuration history in redb (the tables are in `tables.rs`),
//! with an in-memory copy of the log since the last compaction; `raft::Storage` over it.
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
use redb::{Database, ReadableDatabase, ReadableTable};

use crate::raft::StorageError;
use crate::raft::tables::{
    CONF_STATES, ENTRIES, HARD_STATE, META, SNAPSHOT, STAGED_SNAPSHOT, decode, encode, in_force_at,
    missing_conf_state, position, read_meta,
};

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
mod tests;
