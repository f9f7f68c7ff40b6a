//! What a restart does once `run` has stopped this host cleanly (listeners drained, Raft node
//! shut down): the offline work on the store, then this process runs again with the same
//! arguments (`exec`: the pid stays). Also the bootstrap of a new one-host pool, on a first
//! start and after an eject.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;

use api_spec::Value;
use db_schema::{Op, Txn};
use master::Clock;
use master::db::{ProposeError, ReplicatedDb};
use master::pool::bootstrap::{FirstHost, PoolKeys, RootPassword, new_pool};
use master::pool::control::{POOL_EPOCH, PoolMember};

use crate::config::Config;
use crate::facts::{self, FactsError};
use crate::identity::{Identity, IdentityError, generate_pool_secret};
use crate::peer::book::MEMBERSHIP_FILE;
use crate::raft::{self, DUMPS_DIR, RaftConfig, STORE_FILE, StorageError};
use crate::run::SystemClock;

/// What a restart does to the stopped store.
#[derive(Clone, PartialEq, Eq)]
pub enum RestartPlan {
    /// Admitted to a pool (`membership.json` is saved): an empty store that takes the leader's
    /// snapshot.
    Join,
    /// Ejected: a new one-host pool under a new host ref and node id, same uuid and root
    /// password.
    Reset { root_password_hash: String },
    /// Emergency transition: this node alone is the voter set, under `pool_epoch`.
    SingleVoter { pool_epoch: String },
}

impl RestartPlan {
    /// The plan's name, for logs (the plan itself holds a password hash).
    pub fn kind(&self) -> &'static str {
        match self {
            RestartPlan::Join => "join",
            RestartPlan::Reset { .. } => "reset",
            RestartPlan::SingleVoter { .. } => "single voter",
        }
    }
}

impl std::fmt::Debug for RestartPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

/// Why a new pool could not be made or a restart could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("cannot read this machine")]
    Facts(#[from] FactsError),
    #[error("cannot read or write this host's identity")]
    Identity(#[from] IdentityError),
    #[error("raft storage failed")]
    Raft(#[from] StorageError),
    #[error("cannot remove {path}")]
    Remove {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the new pool epoch was not committed")]
    Epoch(#[source] ProposeError),
    #[error("cannot run this program again")]
    Exec(#[source] std::io::Error),
}

/// Makes a new one-host pool in the data dir for `identity`: its rows, the root password (as
/// given, or kept as a hash), a new pool secret and epoch, and this host's member entry (its
/// HTTPS address and certificate fingerprint `cert_sha256`).
pub fn bootstrap_pool(
    config: &Config,
    identity: &Identity,
    cert_sha256: &str,
    root_password: RootPassword<'_>,
) -> Result<(), PoolError> {
    let data_dir = &config.data_dir;
    let host_facts = facts::read(data_dir, config.listen.ip(), config.presented_cpu())?;
    let first = FirstHost {
        host_ref: identity.host_ref.clone(),
        host_uuid: identity.host_uuid.clone(),
    };
    let keys = PoolKeys {
        pool_secret: generate_pool_secret()?,
        pool_epoch: uuid::Uuid::new_v4().to_string(),
        first_member: PoolMember {
            node_id: identity.raft_node_id,
            host: identity.host_ref.clone(),
            address: https_address(config).to_string(),
            cert_sha256: cert_sha256.to_owned(),
        },
    };
    let now = SystemClock.now_unix();
    let txn = new_pool(&host_facts, &first, &keys, now, root_password);
    raft::bootstrap(data_dir, identity.raft_node_id, &txn)?;
    tracing::info!(host = %identity.host_uuid, hostname = %host_facts.hostname, address = %host_facts.address, "created a new pool");
    Ok(())
}

/// `ip:port` other hosts reach this host's HTTPS listener at: the listen address, or for an
/// unspecified one the management address, with the listen port.
pub fn https_address(config: &Config) -> SocketAddr {
    SocketAddr::new(
        facts::management_address(config.listen.ip()),
        config.listen.port(),
    )
}

/// Carries out `plan` on the stopped store of this host, then runs this program again with
/// the same arguments. Returns only if something failed.
pub async fn carry_out(
    config: &Config,
    identity: &Identity,
    cert_sha256: &str,
    plan: RestartPlan,
) -> PoolError {
    tracing::info!(plan = plan.kind(), "restarting");
    let prepared = match plan {
        RestartPlan::Join => {
            raft::prepare_joiner(&config.data_dir, identity.raft_node_id).map_err(PoolError::from)
        }
        RestartPlan::Reset { root_password_hash } => {
            reset(config, identity, cert_sha256, &root_password_hash)
        }
        RestartPlan::SingleVoter { pool_epoch } => {
            single_voter(&config.data_dir, identity, pool_epoch).await
        }
    };
    if let Err(e) = prepared {
        return e;
    }
    let program = match std::env::current_exe() {
        Ok(program) => program,
        Err(e) => return PoolError::Exec(e),
    };
    PoolError::Exec(
        std::process::Command::new(program)
            .args(std::env::args_os().skip(1))
            .exec(),
    )
}

/// A new one-host pool in place of the old replica, keeping the data dir's certificate, the
/// local SR's files and the root password.
fn reset(
    config: &Config,
    identity: &Identity,
    cert_sha256: &str,
    root_password_hash: &str,
) -> Result<(), PoolError> {
    let data_dir = &config.data_dir;
    let next = identity.after_eject();
    next.save(data_dir)?;
    remove(&data_dir.join(MEMBERSHIP_FILE))?;
    remove(&data_dir.join(STORE_FILE))?;
    remove(&data_dir.join(DUMPS_DIR))?;
    bootstrap_pool(
        config,
        &next,
        cert_sha256,
        RootPassword::Hash(root_password_hash),
    )?;
    tracing::info!(host_ref = %next.host_ref, node_id = next.raft_node_id, "reset to a new pool");
    Ok(())
}

/// Makes this node the only voter, then commits the new epoch (and this host as the pool's
/// master) on the node alone, so that hosts of the old configuration see the split.
async fn single_voter(
    data_dir: &Path,
    identity: &Identity,
    pool_epoch: String,
) -> Result<(), PoolError> {
    raft::force_single_voter(data_dir, identity.raft_node_id)?;
    let config = RaftConfig {
        node_id: identity.raft_node_id,
        ..RaftConfig::default()
    };
    let node = raft::open(data_dir, config).await?;
    let mut ops = vec![Op::PutInternal {
        key: POOL_EPOCH.to_owned(),
        value: Value::str(pool_epoch.as_str()),
    }];
    let pool = node
        .db
        .read()
        .rows("pool")
        .next()
        .map(|(r, _)| r.to_owned());
    if let Some(pool) = pool {
        ops.push(Op::Set {
            class: "pool".to_owned(),
            r#ref: pool,
            field: "master".to_owned(),
            value: Value::str(identity.host_ref.as_str()),
        });
    }
    let txn = Txn {
        preconditions: Vec::new(),
        ops,
    };
    let committed = node.db.propose(txn).await;
    node.shutdown().await?;
    committed.map_err(PoolError::Epoch)?;
    tracing::warn!(pool_epoch = %pool_epoch, "this host is now the only voter of the pool");
    Ok(())
}

/// Removes a file or directory; one that is not there is fine.
fn remove(path: &Path) -> Result<(), PoolError> {
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(PoolError::Remove {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use master::pool::control::{POOL_SECRET, members};

    use super::*;

    fn config(dir: &Path) -> Config {
        Config {
            data_dir: dir.to_owned(),
            listen: "127.0.0.1:4443".parse().expect("address"),
            ..Config::default()
        }
    }

    /// A new pool in `dir` for a new identity (root password hash "h", certificate "abab…").
    fn bootstrapped(dir: &Path) -> (Identity, Config) {
        let identity = Identity::generate();
        let config = config(dir);
        bootstrap_pool(
            &config,
            &identity,
            &"ab".repeat(32),
            RootPassword::Hash("h"),
        )
        .expect("bootstrap");
        (identity, config)
    }

    /// A new pool holds a 64-hex secret, an epoch, and this host's member entry with its
    /// address and certificate fingerprint.
    #[tokio::test]
    async fn new_pool_holds_its_secret_epoch_and_first_member() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (identity, _) = bootstrapped(dir.path());
        let node = raft::open(
            dir.path(),
            RaftConfig {
                node_id: identity.raft_node_id,
                ..RaftConfig::default()
            },
        )
        .await
        .expect("open");
        {
            let db = node.db.read();
            let secret = master::pool::control::internal_text(&db, POOL_SECRET).expect("secret");
            assert_eq!(secret.len(), 64);
            assert!(master::pool::control::internal_text(&db, POOL_EPOCH).is_some());
            let members = members(&db);
            assert_eq!(members.len(), 1);
            assert_eq!(members[0].node_id, identity.raft_node_id);
            assert_eq!(members[0].address, "127.0.0.1:4443");
            assert_eq!(members[0].cert_sha256, "ab".repeat(32));
            assert_eq!(
                master::pool::bootstrap::root_password_hash(&db).as_deref(),
                Some("h")
            );
        }
        node.shutdown().await.expect("shutdown");
    }

    /// A reset replaces the pool by a new one under the same uuid and a new node id, keeping
    /// the root password hash.
    #[test]
    fn reset_makes_a_new_pool_with_the_same_uuid() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (identity, config) = bootstrapped(dir.path());
        identity.save(dir.path()).expect("identity");
        std::fs::write(dir.path().join(MEMBERSHIP_FILE), b"{}").expect("membership");
        reset(&config, &identity, &"ab".repeat(32), "h").expect("reset");
        let next = Identity::load(dir.path()).expect("identity");
        assert_eq!(next.host_uuid, identity.host_uuid);
        assert_ne!(next.raft_node_id, identity.raft_node_id);
        assert!(!dir.path().join(MEMBERSHIP_FILE).exists());
        assert!(raft::exists(dir.path()));
    }
}
