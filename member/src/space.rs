//! The room the pool DB has on this host: the free bytes of the data dir's disk against a
//! reserve, and what the store takes (the Raft log and the dumps) against a quota. A host short
//! of either says so in its heartbeats, and the master refuses the pool's API writes until it
//! has room again (etcd's NOSPACE alarm): a disk that fills up makes the pool refuse writes
//! cleanly instead of killing the store.

use std::path::Path;

use crate::raft::{DUMPS_DIR, STORE_FILE};

/// Where the pool DB must keep room, and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceLimits {
    /// Below this many free bytes on the data dir's disk the host is short of room (0: never).
    pub reserve_bytes: u64,
    /// Above this many bytes of store (log and dumps) the host is short of room (0: no quota).
    pub quota_bytes: u64,
}

/// The bytes free on the disk of `path` for an unprivileged user (statvfs(2)'s `f_bavail`).
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    agent::backend::storage::filesystem_stat(path).map(|stat| stat.available_bytes)
}

/// The bytes the store of `data_dir` takes: the Raft log file and every dump.
pub fn store_bytes(data_dir: &Path) -> std::io::Result<u64> {
    let mut total = std::fs::metadata(data_dir.join(STORE_FILE))?.len();
    for entry in std::fs::read_dir(data_dir.join(DUMPS_DIR))? {
        total = total.saturating_add(entry?.metadata()?.len());
    }
    Ok(total)
}

/// Why the pool DB of `data_dir` is short of room under `limits`; `None` when it is not.
pub fn shortage(data_dir: &Path, limits: SpaceLimits) -> Option<String> {
    if limits.reserve_bytes > 0 {
        match free_bytes(data_dir) {
            Ok(free) if free < limits.reserve_bytes => {
                return Some(format!(
                    "{} free on the disk of {}, below the reserve of {}",
                    mib(free),
                    data_dir.display(),
                    mib(limits.reserve_bytes)
                ));
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "cannot read the data dir's free space"),
        }
    }
    if limits.quota_bytes > 0 {
        match store_bytes(data_dir) {
            Ok(used) if used > limits.quota_bytes => {
                return Some(format!(
                    "the pool database takes {}, over its quota of {}",
                    mib(used),
                    mib(limits.quota_bytes)
                ));
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "cannot read the store's size"),
        }
    }
    None
}

/// `bytes` in MiB with one decimal, for messages.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data dir with a store of `bytes` bytes and one dump of `bytes` bytes.
    fn data_dir_with_store(bytes: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(STORE_FILE), vec![0u8; bytes]).expect("store");
        std::fs::create_dir(dir.path().join(DUMPS_DIR)).expect("dumps");
        std::fs::write(dir.path().join(DUMPS_DIR).join("db.dump"), vec![0u8; bytes]).expect("dump");
        dir
    }

    /// The store's size counts the log and the dumps; over the quota is a shortage that says
    /// both sizes, at or under it is none.
    #[test]
    fn a_store_over_its_quota_is_short_of_room() {
        let dir = data_dir_with_store(3 << 20);
        assert_eq!(store_bytes(dir.path()).expect("size"), 6 << 20);
        let within = SpaceLimits {
            reserve_bytes: 0,
            quota_bytes: 6 << 20,
        };
        assert_eq!(shortage(dir.path(), within), None);
        let over = SpaceLimits {
            quota_bytes: 5 << 20,
            ..within
        };
        let why = shortage(dir.path(), over).expect("short");
        assert!(why.contains("6.0 MiB") && why.contains("5.0 MiB"), "{why}");
    }

    /// A reserve larger than the disk's free bytes is a shortage naming the data dir; a reserve
    /// of 0 never is.
    #[test]
    fn a_disk_below_the_reserve_is_short_of_room() {
        let dir = data_dir_with_store(1024);
        let free = free_bytes(dir.path()).expect("statvfs");
        let limits = SpaceLimits {
            reserve_bytes: free.saturating_add(1 << 30),
            quota_bytes: 0,
        };
        let why = shortage(dir.path(), limits).expect("short");
        assert!(why.contains(&dir.path().display().to_string()), "{why}");
        let none = SpaceLimits {
            reserve_bytes: 0,
            quota_bytes: 0,
        };
        assert_eq!(shortage(dir.path(), none), None);
    }
}
