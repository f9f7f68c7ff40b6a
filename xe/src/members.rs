//! The pool members xe has seen behind each server it was pointed at (`~/.xe.d/pool_members`):
//! when the server named is down, the others are tried in turn (api-client's failover).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::XeError;
use crate::files;

/// `server:port` → the `host:port` of every member seen after a login through it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolMembers {
    entries: BTreeMap<String, Vec<String>>,
}

impl PoolMembers {
    /// Reads the file: one `server:port member:port member:port …` line per server.
    pub fn load(path: &Path) -> Result<PoolMembers, XeError> {
        let text = files::read_optional(path)?;
        let entries = text
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                let server = words.next()?;
                Some((server.to_owned(), words.map(str::to_owned).collect()))
            })
            .collect();
        Ok(PoolMembers { entries })
    }

    pub fn get(&self, server: &str) -> &[String] {
        self.entries.get(server).map_or(&[], Vec::as_slice)
    }

    /// Records the members seen through `server`; `true` if that changed anything.
    pub fn set(&mut self, server: &str, mut members: Vec<String>) -> bool {
        members.sort();
        members.dedup();
        if self.get(server) == members.as_slice() {
            return false;
        }
        self.entries.insert(server.to_owned(), members);
        true
    }

    pub fn save(&self, path: &Path) -> Result<(), XeError> {
        let text: String = self
            .entries
            .iter()
            .map(|(server, members)| format!("{server} {}\n", members.join(" ")))
            .collect();
        files::write_private(path, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The members file round-trips, sorted and without duplicates.
    #[test]
    fn members_file_round_trips() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pool_members");
        let mut members = PoolMembers::default();
        assert!(members.set(
            "a:443",
            vec!["c:443".into(), "b:443".into(), "c:443".into()]
        ));
        assert!(!members.set("a:443", vec!["b:443".into(), "c:443".into()]));
        members.save(&path).expect("saved");
        let loaded = PoolMembers::load(&path).expect("loaded");
        assert_eq!(loaded.get("a:443"), ["b:443", "c:443"]);
        assert!(loaded.get("z:443").is_empty());
    }
}
