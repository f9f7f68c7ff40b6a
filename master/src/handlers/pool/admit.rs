//! The master's half of a join (`Master::admit`, reached through `POST /pool/join`): the
//! joiner's session and versions are checked, its rows and member entry committed, and it is
//! added to Raft as a learner; the answer is what its peer transport needs.

use api_spec::api::{API_VERSION_MAJOR, API_VERSION_MINOR};
use api_spec::{ApiError, errors};
use db_schema::Db;

use super::errors::control_failed;
use crate::Master;
use crate::error::{Error, to_api_error};
use crate::pool::bootstrap::{HostFacts, joining_host};
use crate::pool::control::{Admission, JoinRequest, admission, members};

/// What xapi says when the CPUs of a joiner and the pool differ.
const CPUS_DIFFER: &str = "CPUs differ";

impl Master {
    /// Admits the joining host `request` describes: its session must be a root session of
    /// this pool; its API version must be this master's, and (unless forced) its CPUs like
    /// the master's. Answers the pool's secret, epoch and members, the joiner included.
    pub async fn admit(&self, request: JoinRequest) -> Result<Admission, ApiError> {
        self.admit_joiner(request).await.map_err(to_api_error)
    }

    async fn admit_joiner(&self, request: JoinRequest) -> Result<Admission, Error> {
        self.db.read_barrier().await.map_err(Error::ReadBarrier)?;
        crate::call::session::check(self, &request.session).await?;
        let txn = {
            let db = self.db.read();
            check_admission(&db, &request, &self.this_host)?;
            joining_host(
                &db,
                &request.facts,
                &request.member,
                &request.host_uuid,
                self.now(),
            )
        };
        self.commit(txn).await?;
        let node = request.member.node_id;
        self.pool
            .add_learner(node)
            .await
            .map_err(|e| control_failed("adding the joining host to raft", e))?;
        tracing::info!(host = %request.member.host, node_id = node, address = %request.member.address, "host joined the pool");
        let db = self.db.read();
        admission(&db).ok_or_else(|| {
            errors::internal_error("the pool database has no pool secret or epoch").into()
        })
    }
}

/// The checks of the master's side, in xapi's order: a root session, not this pool's own host,
/// the same API version, CPUs alike unless forced.
fn check_admission(db: &Db, request: &JoinRequest, this_host: &str) -> Result<(), Error> {
    let session = db
        .get("session", &request.session)
        .ok_or_else(|| errors::session_invalid(&request.session))?;
    if session.get("is_local_superuser") != Some(&api_spec::Value::Bool(true)) {
        return Err(errors::operation_not_allowed("only root may add a host to the pool").into());
    }
    let host = request.member.host.as_str();
    if host == this_host {
        return Err(errors::operation_not_allowed("Host cannot become slave of itself").into());
    }
    let node = request.member.node_id;
    if db.get("host", host).is_some() || members(db).iter().any(|m| m.node_id == node) {
        return Err(errors::operation_not_allowed("Host is already part of a pool").into());
    }
    if (request.api_version_major, request.api_version_minor)
        != (API_VERSION_MAJOR, API_VERSION_MINOR)
    {
        return Err(errors::pool_joining_host_must_have_same_api_version(
            format!(
                "{}.{}",
                request.api_version_major, request.api_version_minor
            ),
            format!("{API_VERSION_MAJOR}.{API_VERSION_MINOR}"),
        )
        .into());
    }
    if !request.force && !has_cpus_like_master(db, &request.facts) {
        return Err(errors::hosts_not_homogeneous(CPUS_DIFFER).into());
    }
    Ok(())
}

/// Whether the joiner's CPUs have the vendor and flags of the master's first CPU.
fn has_cpus_like_master(db: &Db, facts: &HostFacts) -> bool {
    let master = super::pool_master(db);
    let master_cpu = db
        .rows("host_cpu")
        .map(|(_, cpu)| cpu)
        .filter(|cpu| cpu.str("host") == master)
        .min_by_key(|cpu| cpu.get("number").and_then(api_spec::Value::as_int));
    let (Some(master_cpu), Some(joiner_cpu)) = (master_cpu, facts.cpus.first()) else {
        return true;
    };
    master_cpu.str("vendor") == joiner_cpu.vendor && master_cpu.str("flags") == joiner_cpu.flags
}

#[cfg(test)]
mod tests {
    use api_spec::errors as codes;

    use super::*;
    use crate::pool::control::PoolMember;
    use crate::testing::{ControlCall, TestPool, sample_facts};

    const JOINER: &str = "OpaqueRef:00000000-0000-4000-8000-000000000002";

    fn request(session: &str) -> JoinRequest {
        let mut facts = sample_facts();
        facts.hostname = "host2".to_owned();
        facts.address = "127.0.0.2".to_owned();
        JoinRequest {
            session: session.to_owned(),
            force: false,
            member: PoolMember {
                node_id: 2,
                host: JOINER.to_owned(),
                address: "127.0.0.2:4443".to_owned(),
                cert_sha256: "ef".repeat(32),
            },
            host_uuid: "00000000-0000-4000-8000-000000000002".to_owned(),
            api_version_major: API_VERSION_MAJOR,
            api_version_minor: API_VERSION_MINOR,
            facts,
        }
    }

    /// An admitted joiner gets its host, CPUs, PIF on the pool's network, local SR and PBD,
    /// and member entry; it is added as a learner; the answer lists both members.
    #[tokio::test]
    async fn admitted_joiner_gets_its_rows_and_becomes_a_learner() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let answer = pool
            .master
            .admit(request(&session))
            .await
            .expect("admitted");
        let db = pool.read();
        let host = db.get("host", JOINER).expect("the joiner's host");
        assert_eq!(host.str("name_label"), "host2");
        assert_eq!(host.str("address"), "127.0.0.2");
        let cpus = db.rows("host_cpu").filter(|(_, c)| c.str("host") == JOINER);
        assert_eq!(cpus.count(), 2);
        let pif = db
            .rows("PIF")
            .map(|(_, pif)| pif)
            .find(|pif| pif.str("host") == JOINER)
            .expect("the joiner's PIF");
        let master_pif = db
            .rows("PIF")
            .map(|(_, pif)| pif)
            .find(|pif| pif.str("host") == pool.host)
            .expect("the master's PIF");
        assert_eq!(pif.str("network"), master_pif.str("network"));
        let pbd = db
            .rows("PBD")
            .map(|(_, pbd)| pbd)
            .find(|pbd| pbd.str("host") == JOINER)
            .expect("the joiner's PBD");
        assert!(db.get("SR", pbd.str("SR")).is_some());
        assert_eq!(db.count("network"), 1);
        drop(db);
        assert_eq!(answer.members.len(), 2);
        assert!(answer.members.contains(&request(&session).member));
        assert_eq!(pool.pool_control.calls(), vec![ControlCall::AddLearner(2)]);
    }

    /// A joiner with another API version is refused with both versions, and nothing changes.
    #[tokio::test]
    async fn other_api_version_is_refused() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let mut joiner = request(&session);
        joiner.api_version_minor += 1;
        let reply = pool.master.admit(joiner).await;
        let error = reply.expect_err("refused");
        assert_eq!(
            error.code,
            codes::POOL_JOINING_HOST_MUST_HAVE_SAME_API_VERSION
        );
        assert_eq!(
            error.params,
            vec![
                format!("{API_VERSION_MAJOR}.{}", API_VERSION_MINOR + 1),
                format!("{API_VERSION_MAJOR}.{API_VERSION_MINOR}"),
            ]
        );
        assert!(pool.read().get("host", JOINER).is_none());
        assert!(pool.pool_control.calls().is_empty());
    }

    /// Other CPUs are `HOSTS_NOT_HOMOGENEOUS`, unless the join is forced.
    #[tokio::test]
    async fn other_cpus_are_refused_unless_forced() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let mut joiner = request(&session);
        for cpu in &mut joiner.facts.cpus {
            cpu.vendor = "AuthenticAMD".to_owned();
        }
        let error = pool
            .master
            .admit(joiner.clone())
            .await
            .expect_err("refused");
        assert_eq!(error.code, codes::HOSTS_NOT_HOMOGENEOUS);
        assert_eq!(error.params, vec![CPUS_DIFFER.to_owned()]);
        joiner.force = true;
        pool.master.admit(joiner).await.expect("forced");
        assert!(pool.read().get("host", JOINER).is_some());
    }

    /// An unknown session is `SESSION_INVALID`; a host already in the pool cannot join twice.
    #[tokio::test]
    async fn bad_session_and_second_join_are_refused() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let error = pool
            .master
            .admit(request("OpaqueRef:bogus"))
            .await
            .expect_err("refused");
        assert_eq!(error.code, codes::SESSION_INVALID);
        pool.master
            .admit(request(&session))
            .await
            .expect("first join");
        let error = pool
            .master
            .admit(request(&session))
            .await
            .expect_err("second join");
        assert_eq!(error.code, codes::OPERATION_NOT_ALLOWED);
    }
}
