//! Trust on first use: the SHA-256 fingerprint of each server's certificate, remembered per
//! `host:port` in `~/.xe.d/known_hosts` the first time xe talks to it; a different certificate
//! later is refused (see `XeError::CertificateChanged`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use api_spec::tls_pin::{self, CertCheck};

use crate::error::XeError;
use crate::files;

/// The SHA-256 of a certificate's DER, as `openssl x509 -noout -fingerprint -sha256` prints it
/// (`AB:CD:…`), so that an operator can compare it with the host's certificate file.
pub fn fingerprint(der: &[u8]) -> String {
    tls_pin::sha256(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

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

/// What the check of one server decides, and what it saw.
#[derive(Debug)]
pub struct Trust {
    address: String,
    /// The fingerprint remembered for `address`; `None` on first use.
    known: Option<String>,
    no_verify: bool,
    /// The fingerprint the server presented in the last handshake.
    presented: Mutex<Option<String>>,
}

impl Trust {
    pub fn new(address: &str, known: Option<&str>, no_verify: bool) -> Arc<Trust> {
        Arc::new(Trust {
            address: address.to_owned(),
            known: known.map(str::to_owned),
            no_verify,
            presented: Mutex::new(None),
        })
    }

    /// The fingerprint presented, once a handshake has happened.
    pub fn presented(&self) -> Option<String> {
        self.presented
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether the presented certificate is new to this server and should be remembered.
    pub fn is_first_use(&self) -> bool {
        self.known.is_none() && !self.no_verify && self.presented().is_some()
    }

    /// The error to report when a connection failed because the certificate changed.
    pub fn changed_error(&self, known_hosts: &Path) -> Option<XeError> {
        let presented = self.presented()?;
        let known = self.known.as_ref()?;
        (!self.no_verify && *known != presented).then(|| XeError::CertificateChanged {
            server: self.address.clone(),
            known: known.clone(),
            presented,
            file: known_hosts.to_owned(),
        })
    }

    /// The rustls client configuration that checks certificates against this decision.
    pub fn client_config(self: &Arc<Trust>) -> rustls::ClientConfig {
        tls_pin::client_config(self.clone())
    }
}

/// Accepts the certificate remembered for the server, any certificate on first use (it is
/// remembered after a successful login) or with `--no-verify`; the name and chain are not
/// checked, as pool hosts have self-signed certificates.
impl CertCheck for Trust {
    fn check(&self, der: &[u8]) -> Result<(), &'static str> {
        let presented = fingerprint(der);
        let accepted =
            self.no_verify || self.known.as_ref().is_none_or(|known| *known == presented);
        *self
            .presented
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(presented);
        accepted
            .then_some(())
            .ok_or("certificate differs from the one remembered")
    }
}

/// Remembers the certificate `trust` saw, if it was a first use; says so on stderr.
pub fn remember_first_use(trust: &Trust, path: Option<&PathBuf>) -> Result<(), XeError> {
    if !trust.is_first_use() {
        return Ok(());
    }
    let (Some(path), Some(fp)) = (path, trust.presented()) else {
        return Ok(());
    };
    let mut known = KnownHosts::load(path)?;
    known.insert(&trust.address, &fp);
    known.save(path)?;
    eprintln!(
        "xe: trusting the certificate of {} on first use (SHA-256 {fp}); remembered in {}",
        trust.address,
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fingerprint is SHA-256, written as colon-separated upper-case hex.
    #[test]
    fn fingerprint_is_sha256_in_openssl_form() {
        assert_eq!(
            fingerprint(b"abc"),
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
    }

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
        let changed = Trust::new("h:443", Some("AA"), false);
        *changed.presented.lock().expect("unpoisoned") = Some("BB".into());
        assert!(matches!(
            changed.changed_error(file),
            Some(XeError::CertificateChanged { ref known, ref presented, .. })
                if known == "AA" && presented == "BB"
        ));
        let unchecked = Trust::new("h:443", Some("AA"), true);
        *unchecked.presented.lock().expect("unpoisoned") = Some("BB".into());
        assert!(unchecked.changed_error(file).is_none());
        let first = Trust::new("h:443", None, false);
        *first.presented.lock().expect("unpoisoned") = Some("BB".into());
        assert!(first.changed_error(file).is_none());
        assert!(first.is_first_use());
    }
}
