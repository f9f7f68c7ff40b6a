//! The host's self-signed TLS certificate (made on first start, kept in `<data_dir>/tls/`) and
//! the rustls server configuration built on it.

use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::identity::{IdentityError, write_atomically};

/// The directory, in the data dir, of the host's key and certificate.
pub const TLS_DIR: &str = "tls";
pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";

/// The host's certificate and its private key.
pub struct HostCert {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
}

/// Why the TLS material could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot create {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate a self-signed certificate")]
    Generate(#[source] rcgen::Error),
    #[error("cannot store the certificate")]
    Store(#[source] IdentityError),
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no usable PEM item")]
    Pem {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("certificate {cert} has no key {key}")]
    CertWithoutKey { cert: PathBuf, key: PathBuf },
    #[error("rustls refuses the certificate or key")]
    Config(#[source] rustls::Error),
}

/// Reads the host's certificate and key from `<data_dir>/tls/`, generating and storing them first
/// if there is no certificate yet. The certificate names `hostname`, every address in `ips`,
/// `127.0.0.1` and `localhost`.
pub fn load_or_create(
    data_dir: &Path,
    hostname: &str,
    ips: &[IpAddr],
) -> Result<HostCert, TlsError> {
    let dir = data_dir.join(TLS_DIR);
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    // The certificate is written after the key, so its presence means both are complete; a key
    // alone is what a crash during the first start leaves, and is replaced.
    if !cert_path.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| TlsError::CreateDir {
                path: dir.clone(),
                source,
            })?;
        let (cert_pem, key_pem) = generate(hostname, ips)?;
        write_atomically(&key_path, key_pem.as_bytes(), 0o600).map_err(TlsError::Store)?;
        write_atomically(&cert_path, cert_pem.as_bytes(), 0o600).map_err(TlsError::Store)?;
        tracing::info!(path = %cert_path.display(), "generated a self-signed certificate");
    } else if !key_path.exists() {
        return Err(TlsError::CertWithoutKey {
            cert: cert_path,
            key: key_path,
        });
    }
    let cert_bytes = read(&cert_path)?;
    let cert = CertificateDer::from_pem_slice(&cert_bytes).map_err(|source| TlsError::Pem {
        path: cert_path.clone(),
        source,
    })?;
    let key_bytes = read(&key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|source| TlsError::Pem {
        path: key_path.clone(),
        source,
    })?;
    Ok(HostCert { cert, key })
}

/// The rustls server configuration: aws-lc-rs provider, safe default protocol versions, no
/// client certificates, ALPN `http/1.1` only (see `http1.rs`).
pub fn server_config(host_cert: HostCert) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(vec![host_cert.cert], host_cert.key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A new self-signed certificate and its key, both as PEM.
fn generate(hostname: &str, ips: &[IpAddr]) -> Result<(String, String), TlsError> {
    let mut names: Vec<rcgen::SanType> = Vec::new();
    let mut add = |san: rcgen::SanType| {
        if !names.contains(&san) {
            names.push(san);
        }
    };
    // A hostname that is not a valid DNS name (rcgen accepts only ASCII) is left out of the SANs.
    if let Ok(dns) = rcgen::string::Ia5String::try_from(hostname) {
        add(rcgen::SanType::DnsName(dns));
    }
    for ip in ips.iter().filter(|ip| !ip.is_unspecified()) {
        add(rcgen::SanType::IpAddress(*ip));
    }
    add(rcgen::SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
    if let Ok(dns) = rcgen::string::Ia5String::try_from("localhost") {
        add(rcgen::SanType::DnsName(dns));
    }

    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = names;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    let key = rcgen::KeyPair::generate().map_err(TlsError::Generate)?;
    let cert = params.self_signed(&key).map_err(TlsError::Generate)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// The first call generates and stores a key (mode 0600) and certificate; later calls reuse
    /// them unchanged.
    #[test]
    fn certificate_is_created_once_and_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ips = ["127.9.9.9".parse().expect("ip")];
        let first = load_or_create(dir.path(), "host-a", &ips).expect("first start");
        let cert_path = dir.path().join(TLS_DIR).join(CERT_FILE);
        let key_path = dir.path().join(TLS_DIR).join(KEY_FILE);
        let cert_pem = std::fs::read(&cert_path).expect("cert stored");
        let key_mode = std::fs::metadata(&key_path)
            .expect("key stored")
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);

        let second = load_or_create(dir.path(), "host-b", &ips).expect("second start");
        assert_eq!(second.cert, first.cert);
        assert_eq!(second.key.secret_der(), first.key.secret_der());
        assert_eq!(std::fs::read(&cert_path).expect("cert"), cert_pem);
        server_config(second).expect("rustls takes the stored pair");
    }

    /// The server configuration offers http/1.1 only.
    #[test]
    fn server_config_offers_http1_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let host_cert = load_or_create(dir.path(), "localhost", &[]).expect("cert");
        let config = server_config(host_cert).expect("config");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    /// A key left without its certificate (a crash on first start) is replaced by a new pair.
    #[test]
    fn key_without_certificate_is_regenerated() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join(TLS_DIR)).expect("tls dir");
        std::fs::write(dir.path().join(TLS_DIR).join(KEY_FILE), b"half written").expect("key");
        let host_cert = load_or_create(dir.path(), "host-a", &[]).expect("regenerated");
        server_config(host_cert).expect("usable pair");
    }

    /// A certificate whose key is gone is an error, not a silent new identity.
    #[test]
    fn certificate_without_key_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        load_or_create(dir.path(), "host-a", &[]).expect("first start");
        std::fs::remove_file(dir.path().join(TLS_DIR).join(KEY_FILE)).expect("remove key");
        assert!(matches!(
            load_or_create(dir.path(), "host-a", &[]),
            Err(TlsError::CertWithoutKey { .. })
        ));
    }

    /// A garbled certificate file is a PEM error naming the file.
    #[test]
    fn garbled_certificate_is_a_pem_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        load_or_create(dir.path(), "host-a", &[]).expect("first start");
        std::fs::write(dir.path().join(TLS_DIR).join(CERT_FILE), b"garbage").expect("write");
        let err = load_or_create(dir.path(), "host-a", &[])
            .err()
            .expect("garbled cert refused");
        assert!(matches!(err, TlsError::Pem { .. }), "{err:?}");
        assert!(err.to_string().contains(CERT_FILE));
    }
}
