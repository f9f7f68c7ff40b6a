//! The tables of `raft.redb` and how their records are encoded; creating a store, and reading
//! its summary without a node.
//!
//! Tables:
//! - `entries`: the log after the compaction point, by index (protobuf `Entry`);
//! - `conf_states`: the configuration after each configuration entry, by index, back to the
//!   newest one at or before the compaction point (protobuf `ConfState`);
//! - `meta`: `hard_state` (protobuf `HardState`), `snapshot`, the compaction point (protobuf
//!   `SnapshotMetadata`, index and term), and `staged_snapshot`, a leader's snapshot whose
//!   install has begun (`SnapshotMetadata` with its configuration).

use std::path::Path;

use raft::eraftpb::{HardState, SnapshotMetadata};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::raft::StorageError;

pub(crate) const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
pub(crate) const CONF_STATES: TableDefinition<u64, &[u8]> = TableDefinition::new("conf_states");
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const HARD_STATE: &str = "hard_state";
pub(crate) const SNAPSHOT: &str = "snapshot";
pub(crate) const STAGED_SNAPSHOT: &str = "staged_snapshot";

/// Encodes a raft-rs record.
pub(crate) fn encode(record: &impl protobuf::Message) -> Vec<u8> {
    record
        .write_to_bytes()
        .expect("eraftpb messages are proto3 and always encode")
}

/// Decodes a raft-rs record read from the store.
pub(crate) fn decode<M: protobuf::Message>(
    record: &'static str,
    bytes: &[u8],
) -> Result<M, StorageError> {
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
pub(crate) fn position(index: u64, term: u64) -> SnapshotMetadata {
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
pub(crate) fn in_force_at(
    conf_states: &impl ReadableTable<u64, &'static [u8]>,
    index: u64,
) -> Result<u64, StorageError> {
    match conf_states.range(..=index)?.next_back() {
        Some(record) => Ok(record?.0.value()),
        None => Err(missing_conf_state()),
    }
}

/// The error of a store that lacks the configuration in force somewhere it must have one.
pub(crate) fn missing_conf_state() -> StorageError {
    StorageError::Missing {
        record: "conf_state",
    }
}

/// The record `record` of the `meta` table, decoded.
pub(crate) fn read_meta<M: protobuf::Message>(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    record: &'static str,
) -> Result<M, StorageError> {
    let bytes = meta.get(record)?.ok_or(StorageError::Missing { record })?;
    decode(record, bytes.value())
}
