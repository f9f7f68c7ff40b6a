//! This host's local identity (`identity.json`: its host ref and uuid, its Raft node id), the
//! root password and secret of a new pool, and the atomic file write every file of the data
//! dir uses.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file, in the data dir, that holds the identity.
pub const IDENTITY_FILE: &str = "identity.json";

/// The characters of a generated password: 64 URL-safe ones, so one random byte (mod 64) picks
/// one without bias.
const PASSWORD_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const PASSWORD_LENGTH: usize = 24;
/// The random bytes of a pool secret (64 hex characters).
const POOL_SECRET_BYTES: usize = 32;

/// Who this host is, chosen on its first start and never changed afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// `OpaqueRef:<uuid>` of this host's row in the pool DB.
    pub host_ref: String,
    pub host_uuid: String,
    /// Never 0 (raft-rs reserves it) and below 2^63, so it fits a XenAPI int.
    pub raft_node_id: u64,
}

/// Why the identity (or another data-dir file) could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} holds raft node id 0")]
    ZeroNodeId { path: PathBuf },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read random bytes")]
    Random(#[source] std::io::Error),
}

impl Identity {
    /// A fresh identity: new uuid, matching ref, random non-zero node id.
    pub fn generate() -> Identity {
        let host_uuid = uuid::Uuid::new_v4();
        let raft_node_id = loop {
            let bytes = uuid::Uuid::new_v4().into_bytes();
            let mut id_bytes = [0u8; 8];
            id_bytes.copy_from_slice(&bytes[..8]);
            let id = u64::from_le_bytes(id_bytes) >> 1;
            if id != 0 {
                break id;
            }
        };
        Identity {
            host_ref: format!("OpaqueRef:{host_uuid}"),
            host_uuid: host_uuid.to_string(),
            raft_node_id,
        }
    }

    /// The identity of a host ejected from a pool: the same uuid, a new host ref (the pool
    /// keeps the old one's tombstone, and refs are never reused) and a new Raft node id.
    pub fn after_eject(&self) -> Identity {
        Identity {
            host_ref: format!("OpaqueRef:{}", uuid::Uuid::new_v4()),
            host_uuid: self.host_uuid.clone(),
            raft_node_id: Identity::generate().raft_node_id,
        }
    }

    /// Reads `identity.json` from the data dir.
    pub fn load(data_dir: &Path) -> Result<Identity, IdentityError> {
        let path = data_dir.join(IDENTITY_FILE);
        Identity::load_if_present(data_dir)?.ok_or_else(|| IdentityError::Read {
            path,
            source: std::io::ErrorKind::NotFound.into(),
        })
    }

    /// Reads `identity.json` if the data dir has one; `None` if it does not.
    pub fn load_if_present(data_dir: &Path) -> Result<Option<Identity>, IdentityError> {
        let path = data_dir.join(IDENTITY_FILE);
        let identity: Option<Identity> = read_json_if_present(&path)?;
        if identity
            .as_ref()
            .is_some_and(|identity| identity.raft_node_id == 0)
        {
            return Err(IdentityError::ZeroNodeId { path });
        }
        Ok(identity)
    }

    /// Writes `identity.json` into the data dir, atomically.
    pub fn save(&self, data_dir: &Path) -> Result<(), IdentityError> {
        let mut text = serde_json::to_vec_pretty(self).expect("an identity always serializes");
        text.push(b'\n');
        write_atomically(&data_dir.join(IDENTITY_FILE), &text, 0o600)
    }
}

/// Reads the JSON file `path` of a data dir; `None` if there is no such file (a damaged one is
/// an error).
pub fn read_json_if_present<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, IdentityError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            let path = path.to_owned();
            return Err(IdentityError::Read { path, source });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| IdentityError::Parse {
            path: path.to_owned(),
            source,
        })
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one: a temp
/// file beside it, fsync, rename over `path`, fsync the directory. The file gets `mode`.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), IdentityError> {
    let write_error = |source| IdentityError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| write_error(std::io::Error::other("path has no file name")))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(".tmp");
    let temp = dir.join(temp_name);

    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temp)?;
        // A stale temp file from a crash keeps its old mode through `open`: set it again.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(write_error)
}

/// The root password of a new pool: 24 characters from a URL-safe alphabet, from the kernel's
/// random source.
pub fn generate_root_password() -> Result<String, IdentityError> {
    let bytes = random_bytes::<PASSWORD_LENGTH>()?;
    Ok(bytes
        .iter()
        .map(|b| char::from(PASSWORD_ALPHABET[usize::from(b % 64)]))
        .collect())
}

/// The secret of a new pool: 32 random bytes from the kernel, as 64 lowercase hex characters.
pub fn generate_pool_secret() -> Result<String, IdentityError> {
    let bytes = random_bytes::<POOL_SECRET_BYTES>()?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `N` bytes from the kernel's random source.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], IdentityError> {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(IdentityError::Random)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An identity saved and loaded again is the same identity.
    #[test]
    fn identity_round_trips_through_its_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let identity = Identity::generate();
        identity.save(dir.path()).expect("save");
        assert_eq!(Identity::load(dir.path()).expect("load"), identity);
        assert_eq!(
            Identity::load_if_present(dir.path()).expect("load"),
            Some(identity)
        );
    }

    /// A generated identity has a ref matching its uuid and a node id in 1..2^63.
    #[test]
    fn generated_identity_is_well_formed() {
        let a = Identity::generate();
        let b = Identity::generate();
        assert_eq!(a.host_ref, format!("OpaqueRef:{}", a.host_uuid));
        assert!(uuid::Uuid::parse_str(&a.host_uuid).is_ok());
        assert!(a.raft_node_id > 0 && a.raft_node_id < 1 << 63);
        assert_ne!(a, b);
    }

    /// No identity file means `None`, not an error; a garbled one is a parse error.
    #[test]
    fn absent_and_garbled_identity_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(Identity::load_if_present(dir.path()).expect("absent"), None);
        std::fs::write(dir.path().join(IDENTITY_FILE), b"{not json").expect("write");
        assert!(matches!(
            Identity::load(dir.path()),
            Err(IdentityError::Parse { .. })
        ));
    }

    /// An identity with node id 0 is refused.
    #[test]
    fn identity_with_node_id_zero_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = r#"{"host_ref":"OpaqueRef:x","host_uuid":"x","raft_node_id":0}"#;
        std::fs::write(dir.path().join(IDENTITY_FILE), text).expect("write");
        assert!(matches!(
            Identity::load(dir.path()),
            Err(IdentityError::ZeroNodeId { .. })
        ));
    }

    /// An atomic write replaces the old content, leaves no temp file and sets the mode.
    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("key.pem");
        write_atomically(&path, b"old", 0o600).expect("first write");
        write_atomically(&path, b"new", 0o600).expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("key.pem")]);
    }

    /// An atomic write into a missing directory fails and names the file.
    #[test]
    fn atomic_write_into_missing_dir_fails() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("absent/identity.json");
        let err = write_atomically(&path, b"x", 0o600).expect_err("no dir");
        assert!(err.to_string().contains("identity.json"), "{err}");
    }

    /// A pool secret is 64 lowercase hex characters and differs each time.
    #[test]
    fn generated_pool_secret_is_64_hex_characters() {
        let a = generate_pool_secret().expect("secret");
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
            "{a}"
        );
        assert_ne!(a, generate_pool_secret().expect("secret"));
    }

    /// After an eject the uuid stays; the ref and node id are new.
    #[test]
    fn identity_after_eject_keeps_only_the_uuid() {
        let identity = Identity::generate();
        let next = identity.after_eject();
        assert_eq!(next.host_uuid, identity.host_uuid);
        assert_ne!(next.host_ref, identity.host_ref);
        assert_ne!(next.raft_node_id, identity.raft_node_id);
        assert!(next.raft_node_id > 0);
    }

    /// A generated password has 24 URL-safe characters and differs each time.
    #[test]
    fn generated_password_is_24_url_safe_characters() {
        let a = generate_root_password().expect("password");
        let b = generate_root_password().expect("password");
        assert_eq!(a.len(), 24);
        assert!(a.bytes().all(|c| PASSWORD_ALPHABET.contains(&c)), "{a}");
        assert_ne!(a, b);
    }
}
