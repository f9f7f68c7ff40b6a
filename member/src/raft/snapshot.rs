//! Snapshots: the replica loaded from the newest dump, DB dumps written off the Raft thread
//! every `compact_after_entries` applied entries, the log compacted behind them, and the
//! replica replaced by a leader's snapshot.
//!
//! `db_schema::dump::write` keeps the newest dump and the one before it. The log is compacted
//! only up to that older one, so a newest dump damaged on disk still leaves a dump plus the log
//! that leads from it to the present; the distance between the two dumps is also the slack
//! kept for lagging followers. `dump::load_newest` sets damaged dumps aside, so the one kept
//! before a new dump is always one this node loaded or wrote.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::thread::{self, JoinHandle};

use db_schema::{Db, DumpError, dump};
use raft::eraftpb::Snapshot;

use crate::raft::StorageError;

/// A dump known durable: the Raft position of the replica it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DumpPosition {
    pub index: u64,
    pub term: u64,
}

impl DumpPosition {
    /// The position of the replica `db` holds.
    fn of(db: &Db) -> DumpPosition {
        DumpPosition {
            index: db.applied_index(),
            term: db.applied_term(),
        }
    }
}

/// The replica held by the newest readable dump in `dir`, and its position. The damaged dumps
/// newer than it, which `dump::load_newest` set aside, are logged.
pub(crate) fn load_newest(dir: &Path) -> Result<(Db, DumpPosition), StorageError> {
    let loaded = dump::load_newest(dir)?.ok_or(StorageError::NoDump)?;
    for (path, error) in &loaded.skipped {
        tracing::warn!(
            path = %path.display(),
            error = error as &dyn std::error::Error,
            "unreadable dump set aside"
        );
    }
    let position = DumpPosition::of(&loaded.db);
    tracing::info!(
        index = position.index,
        term = position.term,
        path = %loaded.path.display(),
        "replica loaded from dump"
    );
    Ok((loaded.db, position))
}

/// The dumps of this node: which exist, and when the next one is due.
pub(crate) struct Dumps {
    dir: PathBuf,
    compact_after_entries: u64,
    /// The newest durable dump.
    newest: DumpPosition,
    /// The dump before `newest`, still on disk as its fallback; `None` when unknown.
    fallback: Option<DumpPosition>,
    /// The applied index at which the next dump is started.
    next_due: u64,
    /// The thread writing a dump, if one is.
    writing: Option<JoinHandle<()>>,
}

impl Dumps {
    /// `newest` is the dump the replica was loaded from.
    pub(crate) fn new(dir: PathBuf, compact_after_entries: u64, newest: DumpPosition) -> Dumps {
        Dumps {
            dir,
            compact_after_entries,
            newest,
            fallback: None,
            next_due: newest.index.saturating_add(compact_after_entries),
            writing: None,
        }
    }

    /// Whether a dump should be started now that `applied` entries are applied.
    pub(crate) fn is_due(&self, applied: u64) -> bool {
        self.writing.is_none() && applied >= self.next_due
    }

    /// Starts writing a dump of `db` on its own thread. The thread serialises the replica under
    /// the read lock (the apply waits for the serialising, not for the file) and then writes the
    /// bytes; `written` is called there with the outcome, and must hand it back to the Raft
    /// thread.
    pub(crate) fn start(
        &mut self,
        db: Arc<RwLock<Db>>,
        written: impl FnOnce(DumpPosition, Result<(), DumpError>) + Send + 'static,
    ) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        let thread = thread::Builder::new()
            .name("oxapi-dump".into())
            .spawn(move || {
                let (position, bytes) = {
                    let db = db
                        .read()
                        .expect("the raft thread never panics while holding the db lock");
                    (DumpPosition::of(&db), dump::to_bytes(&db))
                };
                let outcome = bytes
                    .and_then(|bytes| dump::write_bytes(&dir, position.index, &bytes))
                    .map(|_| ());
                written(position, outcome);
            })?;
        self.writing = Some(thread);
        Ok(())
    }

    /// Takes the outcome of a dump started by `start`. Returns the index the log may now be
    /// compacted up to: the fallback dump, which `dump::write` kept.
    pub(crate) fn written(
        &mut self,
        position: DumpPosition,
        outcome: Result<(), DumpError>,
    ) -> Option<u64> {
        if let Some(thread) = self.writing.take() {
            // The thread has sent its outcome, its last act: joining does not wait.
            let _ = thread.join();
        }
        match outcome {
            Ok(()) if position.index > self.newest.index => {
                tracing::debug!(index = position.index, "dump written");
                self.fallback = Some(self.newest);
                self.newest = position;
                self.next_due = position.index.saturating_add(self.compact_after_entries);
                self.fallback.map(|fallback| fallback.index)
            }
            // Overtaken by a leader's snapshot while it was written.
            Ok(()) => None,
            Err(error) => {
                tracing::warn!(index = position.index, error = %error, "dump failed; retrying later");
                self.next_due = position.index.saturating_add(self.compact_after_entries);
                None
            }
        }
    }

    /// Waits for the dump in progress, if any, to end.
    pub(crate) fn finish(&mut self) -> Result<(), StorageError> {
        match self.writing.take() {
            Some(thread) => thread.join().map_err(|_| StorageError::ThreadPanicked),
            None => Ok(()),
        }
    }

    /// Writes a dump of `db` now, on this thread, after any dump in progress; nothing when the
    /// newest dump already holds it. For a clean stop.
    pub(crate) fn write_final(&mut self, db: &RwLock<Db>) -> Result<(), StorageError> {
        self.finish()?;
        let db = db
            .read()
            .expect("the raft thread never panics while holding the db lock");
        if db.applied_index() <= self.newest.index {
            return Ok(());
        }
        dump::write(&self.dir, &db)?;
        tracing::debug!(index = db.applied_index(), "final dump written");
        Ok(())
    }

    /// Replaces the replica by a leader's snapshot: decodes it and writes its bytes, checked by
    /// the decoding, as a dump before the log is replaced, so that a restart finds a dump at
    /// least as new as the log's start.
    pub(crate) fn restore(&mut self, snapshot: &Snapshot) -> Result<Db, StorageError> {
        self.finish()?;
        let db = dump::from_bytes(&snapshot.data)?;
        let meta = snapshot.get_metadata();
        if (db.applied_index(), db.applied_term()) != (meta.index, meta.term) {
            return Err(StorageError::SnapshotMismatch {
                meta_index: meta.index,
                meta_term: meta.term,
                dump_index: db.applied_index(),
                dump_term: db.applied_term(),
            });
        }
        dump::write_bytes(&self.dir, meta.index, &snapshot.data)?;
        // The dump kept before this one is older than the new log's start: no fallback.
        self.newest = DumpPosition {
            index: meta.index,
            term: meta.term,
        };
        self.fallback = None;
        self.next_due = meta.index.saturating_add(self.compact_after_entries);
        Ok(db)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use crate::raft::put;

    use super::*;

    fn db_at(index: u64) -> Db {
        let mut db = Db::new();
        for i in 1..=index {
            db.advance(i, 1);
        }
        db
    }

    /// A dump is due every `compact_after_entries` applied entries, one at a time.
    #[test]
    fn dump_is_due_every_compact_after_entries() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut dumps = Dumps::new(dir.path().into(), 10, DumpPosition { index: 1, term: 1 });
        assert!(!dumps.is_due(10));
        assert!(dumps.is_due(11));
        let db = Arc::new(RwLock::new(db_at(11)));
        let (tx, rx) = mpsc::channel();
        dumps
            .start(db, move |position, outcome| {
                tx.send((position, outcome)).expect("test receiver lives");
            })
            .expect("start");
        assert!(!dumps.is_due(30), "one dump at a time");
        let (position, outcome) = rx.recv().expect("dump outcome");
        assert_eq!(position, DumpPosition { index: 11, term: 1 });
        assert_eq!(dumps.written(position, outcome), Some(1));
        assert!(!dumps.is_due(20));
        assert!(dumps.is_due(21));
    }

    /// The log may be compacted only to the dump before the newest, and only once one is known.
    #[test]
    fn compaction_point_is_the_fallback_dump() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut dumps = Dumps::new(dir.path().into(), 10, DumpPosition { index: 5, term: 1 });
        assert_eq!(
            dumps.written(DumpPosition { index: 15, term: 2 }, Ok(())),
            Some(5)
        );
        assert_eq!(
            dumps.written(DumpPosition { index: 30, term: 2 }, Ok(())),
            Some(15)
        );
        let failed = dumps.written(
            DumpPosition { index: 45, term: 2 },
            Err(DumpError::Truncated),
        );
        assert_eq!(failed, None);
        assert!(!dumps.is_due(54));
        assert!(dumps.is_due(55));
    }

    /// A leader's snapshot becomes the replica and the newest dump on disk.
    #[test]
    fn snapshot_from_the_leader_is_written_as_a_dump() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut dumps = Dumps::new(dir.path().into(), 10, DumpPosition { index: 1, term: 1 });
        let mut leader = Db::new();
        leader.apply(7, 3, &put("from leader")).expect("apply");
        let mut snapshot = Snapshot {
            data: dump::to_bytes(&leader).expect("encode").into(),
            ..Snapshot::default()
        };
        snapshot.mut_metadata().index = 7;
        snapshot.mut_metadata().term = 3;
        let db = dumps.restore(&snapshot).expect("restore");
        assert!(db.internal("from leader").is_some());
        let loaded = dump::load_newest(dir.path())
            .expect("load")
            .expect("a dump");
        assert_eq!(loaded.db.applied_index(), 7);
        assert_eq!(
            std::fs::read(&loaded.path).expect("read dump"),
            snapshot.data
        );

        snapshot.mut_metadata().term = 4;
        assert!(matches!(
            dumps.restore(&snapshot),
            Err(StorageError::SnapshotMismatch { .. })
        ));
    }
}
