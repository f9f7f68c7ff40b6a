//! Trust on first use: the SHA-256 fingerprint of each server's certificate, remembered per
//! `host:port` in `~/.xe.d/known_hosts` the first time xe talks to it; a different certificate
//! later is refused (see `XeError::CertificateChanged`). The check itself is api-client's
//! `Trust`; the file and what is said about it are xe's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use api_client::Trust;

use crate::error::XeError;
use crate::files;

/// The known-hosts file: one `host:port fingerprint` line per server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownHosts {
    entries: BTreeMap<String, String>,
}

impl KnownHosts {
    /// Reads the file; a missing file knows no host, and malformed lines are skipped.
    pub fn load(path: &Path) -> Result<KnownHosts, XeError> {
        let text = files::read_optional(path)?;
        let entries = text
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                match (words.next(), words.next()) {
                    (Some(address), Some(fp)) => Some((address.to_owned(), fp.to_owned())),
                    _ => None,
                }
            })
            .collect();
        Ok(KnownHosts { entries })
    }

    pub fn get(&self, address: &str) -> Option<&str> {
        self.entries.get(address).map(String::as_str)
    }

    pub fn insert(&mut self, address: &str, fingerprint: &str) {
        self.entries
            .insert(address.to_owned(), fingerprint.to_owned());
    }

    pub fn save(&self, path: &Path) -> Result<(), XeError> {
        let text: String = self
            .entries
            .iter()
            .map(|(address, fp)| format!("{address} {fp}\n"))
            .collect();
        files::write_private(path, &text)
    }
}

/// The check of a server's certificate: the fingerprint `known` remembered for it, else trust
/// on first use; any certificate with `--no-verify` (the name and chain are never checked, as
/// pool hosts have self-signed certificates).
pub fn check_of(known: Option<&str>, no_verify: bool) -> Trust {
    match known {
        _ if no_verify => Trust::anything(),
        Some(fingerprint) => Trust::fingerprint(fingerprint),
        None => Trust::first_use(),
    }
}

/// The error to report when a connection to `address` failed because its certificate is not
/// the one `known` remembered.
pub fn changed_error(
    address: &str,
    known: Option<&str>,
    check: &Trust,
    known_hosts: &Path,
) -> Option<XeError> {
    let presented = check.refused()?;
    Some(XeError::CertificateChanged {
        server: address.to_owned(),
        known: known?.to_owned(),
        presented: presented.to_openssl(),
        file: known_hosts.to_owned(),
    })
}

/// Remembers the certificate `address` showed to `check`, if it was a first use; says so on
/// stderr.
pub fn remember_first_use(
    address: &str,
    check: &Trust,
    path: Option<&PathBuf>,
) -> Result<(), XeError> {
    if !check.is_first_use() {
        return Ok(());
    }
    let (Some(path), Some(fp)) = (path, check.presented()) else {
        return Ok(());
    };
    let fp = fp.to_openssl();
    let mut known = KnownHosts::load(path)?;
    known.insert(address, &fp);
    known.save(path)?;
    eprintln!(
        "xe: trusting the certificate of {address} on first use (SHA-256 {fp}); remembered in {}",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use api_client::Fingerprint;
    use api_spec::tls_pin::CertCheck;

    use super::*;

    /// The known-hosts file round-trips and skips lines it cannot read.
    #[test]
    fn known_hosts_round_trip_and_skip_bad_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("d/known_hosts");
        let mut known = KnownHosts::default();
        known.insert("h:443", "AA:BB");
        known.save(&path).expect("saved");
        std::fs::write(&path, "h:443 AA:BB\ngarbage\n").expect("written");
        let loaded = KnownHosts::load(&path).expect("loaded");
        assert_eq!(loaded.get("h:443"), Some("AA:BB"));
        assert_eq!(loaded.get("garbage"), None);
    }

    /// A changed certificate is reported with both fingerprints; first use and `--no-verify`
    /// are not.
    #[test]
    fn changed_certificate_is_reported_only_when_checked() {
        let file = Path::new("known_hosts");
        let old = Fingerprint::of(b"old").to_openssl();
        let new = Fingerprint::of(b"new").to_openssl();
        let changed = check_of(Some(&old), false);
        assert!(changed.check(b"new").is_err());
        assert!(matches!(
            changed_error("h:443", Some(&old), &changed, file),
            Some(XeError::CertificateChanged { ref known, ref presented, .. })
                if *known == old && *presented == new
        ));
        let unchecked = check_of(Some(&old), true);
        assert_eq!(unchecked.check(b"new"), Ok(()));
        assert!(changed_error("h:443", Some(&old), &unchecked, file).is_none());
        let first = check_of(None, false);
        assert_eq!(first.check(b"new"), Ok(()));
        assert!(changed_error("h:443", None, &first, file).is_none());
        assert!(first.is_first_use());
    }
}
