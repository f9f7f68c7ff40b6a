//! The pool members xe has seen behind each server it was pointed at (`~/.xe.d/pool_members`),
//! and the failover over them: when the server named is down, the others are tried in turn.

use std::collections::BTreeMap;
use std::future::Future;
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

/// The addresses to try, in order: the server named first, then the members seen behind it.
pub fn candidates(server: &str, members: &[String]) -> Vec<String> {
    let mut out = vec![server.to_owned()];
    for member in members {
        if !out.contains(member) {
            out.push(member.clone());
        }
    }
    out
}

/// What one attempt gives: a connection, a host that cannot be reached (try the next one), or
/// an error that ends the attempts (a changed certificate, a refused login).
pub enum Attempt<T> {
    Connected(T),
    Unreachable(XeError),
    Fatal(XeError),
}

/// Tries `addresses` in order with `attempt` until one connects. If none does, the error of
/// the first address is returned when it was the only one, else `NoHostReachable`.
pub async fn first_reachable<T, F, Fut>(addresses: &[String], mut attempt: F) -> Result<T, XeError>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let mut first_error = None;
    for address in addresses {
        match attempt(address.clone()).await {
            Attempt::Connected(t) => return Ok(t),
            Attempt::Fatal(e) => return Err(e),
            Attempt::Unreachable(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) if addresses.len() == 1 => Err(e),
        _ => Err(XeError::NoHostReachable {
            tried: addresses.join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable(address: &str) -> XeError {
        XeError::NoHostReachable {
            tried: address.to_owned(),
        }
    }

    fn run<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(future)
    }

    /// When the first address is down, the next member is tried and used.
    #[test]
    fn down_first_host_fails_over_to_the_next_member() {
        let addresses = candidates("a:443", &["b:443".to_owned(), "c:443".to_owned()]);
        let mut tried = Vec::new();
        let got = run(first_reachable(&addresses, |address| {
            tried.push(address.clone());
            async move {
                if address == "a:443" {
                    Attempt::Unreachable(unreachable(&address))
                } else {
                    Attempt::Connected(address)
                }
            }
        }))
        .expect("b answers");
        assert_eq!(got, "b:443");
        assert_eq!(tried, ["a:443", "b:443"]);
    }

    /// A fatal error (a changed certificate, say) stops the failover at once.
    #[test]
    fn fatal_error_stops_the_failover() {
        let addresses = candidates("a:443", &["b:443".to_owned()]);
        let got: Result<(), _> = run(first_reachable(&addresses, |address| async move {
            Attempt::Fatal(unreachable(&address))
        }));
        assert!(matches!(got, Err(XeError::NoHostReachable { ref tried }) if tried == "a:443"));
    }

    /// With every member down, the error lists what was tried.
    #[test]
    fn every_member_down_lists_what_was_tried() {
        let addresses = candidates("a:443", &["a:443".to_owned(), "b:443".to_owned()]);
        assert_eq!(addresses, ["a:443", "b:443"]);
        let got: Result<(), _> = run(first_reachable(&addresses, |address| async move {
            Attempt::Unreachable(unreachable(&address))
        }));
        assert!(
            matches!(got, Err(XeError::NoHostReachable { ref tried }) if tried == "a:443, b:443")
        );
    }

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
