//! Dumps: the whole DB as MessagePack behind a header (magic, format version, Raft index and term,
//! length, CRC32), written to a temp file, fsynced, renamed, directory fsynced.
