//! In-memory doubles, so a handler test is a function call: `MemoryDb` (a `ReplicatedDb` that
//! applies each Txn at once, at increasing indexes), `ManualClock` (a settable `Clock`), and
//! `TestPool` (a master over a new one-host pool, with a few call helpers).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use api_spec::{ApiError, Value};
use db_schema::{Applied, Db, Txn};
use tokio::sync::watch;

use crate::bootstrap::{CpuFacts, FirstHost, HostFacts, new_pool};
use crate::db::{BoxFuture, ProposeError, ReplicatedDb};
use crate::host_link::{ActionResult, HostAction, HostLink};
use crate::{Call, Clock, Master, MasterConfig, Origin};
use tokio_util::sync::CancellationToken;

/// A `ReplicatedDb` without Raft: a proposal is applied at once, at the next index, in term 1.
pub struct MemoryDb {
    db: RwLock<Db>,
    applied: watch::Sender<u64>,
    /// Failures the next proposals answer with, instead of being applied.
    failures: Mutex<VecDeque<ProposeError>>,
    /// Txns of racing writers, each applied just before the next proposal.
    racers: Mutex<VecDeque<Txn>>,
}

impl MemoryDb {
    pub fn new() -> Arc<MemoryDb> {
        Arc::new(MemoryDb {
            db: RwLock::new(Db::new()),
            applied: watch::Sender::new(0),
            failures: Mutex::new(VecDeque::new()),
            racers: Mutex::new(VecDeque::new()),
        })
    }

    /// Applies `txn` as the next entry, as a committed proposal would be.
    pub fn apply(&self, txn: &Txn) -> Result<Applied, ProposeError> {
        let outcome = {
            let mut db = self.db.write().expect("no panic while holding the DB lock");
            let index = db.applied_index() + 1;
            let outcome = db.apply(index, 1, txn);
            self.applied.send_replace(index);
            outcome
        };
        outcome.map_err(ProposeError::Apply)
    }

    /// Applies `txn` just before the next proposal, as a writer that won a race with it.
    pub fn race_next_proposal(&self, txn: Txn) {
        self.racers
            .lock()
            .expect("no panic while holding the racers lock")
            .push_back(txn);
    }

    /// Makes the next proposal fail with `error` without being applied.
    pub fn fail_next_proposal(&self, error: ProposeError) {
        self.failures
            .lock()
            .expect("no panic while holding the failures lock")
            .push_back(error);
    }
}

impl ReplicatedDb for MemoryDb {
    fn propose(&self, txn: Txn) -> BoxFuture<'_, Result<Applied, ProposeError>> {
        Box::pin(async move {
            let failure = self
                .failures
                .lock()
                .expect("no panic while holding the failures lock")
                .pop_front();
            if let Some(error) = failure {
                return Err(error);
            }
            let racer = self
                .racers
                .lock()
                .expect("no panic while holding the racers lock")
                .pop_front();
            if let Some(racer) = racer {
                self.apply(&racer)?;
            }
            self.apply(&txn)
        })
    }

    fn read_barrier(&self) -> BoxFuture<'_, Result<(), ProposeError>> {
        Box::pin(async { Ok(()) })
    }

    fn read(&self) -> RwLockReadGuard<'_, Db> {
        self.db.read().expect("no panic while holding the DB lock")
    }

    fn applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    fn term(&self) -> u64 {
        1
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now_unix: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(now_unix)))
    }

    pub fn set(&self, now_unix: i64) {
        self.0.store(now_unix, Ordering::SeqCst);
    }

    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// How long `TestPool::wait_until` waits before it fails the test.
pub const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// The root password of `TestPool`s.
pub const TEST_ROOT_PASSWORD: &str = "xenroot";

/// The time `TestPool`s start at: 2024-01-01T00:00:00Z.
pub const TEST_START_UNIX: i64 = 1_704_067_200;

/// The facts of a small machine with two CPUs.
pub fn sample_facts() -> HostFacts {
    let cpu = |number| CpuFacts {
        number,
        vendor: "GenuineIntel".to_owned(),
        model_name: "Test CPU @ 2.40GHz".to_owned(),
        family: 6,
        model: 85,
        stepping: "7".to_owned(),
        speed_mhz: 2400,
        flags: "fpu vme de pse tsc msr pae mce cx8 apic".to_owned(),
    };
    HostFacts {
        hostname: "host1".to_owned(),
        address: "127.0.0.1".to_owned(),
        memory_total_bytes: 16 << 30,
        cpus: vec![cpu(0), cpu(1)],
        management_device: "eth0".to_owned(),
        management_mac: "02:00:00:00:00:01".to_owned(),
        local_sr_path: "/var/lib/oxapi/sr".to_owned(),
        local_sr_size_bytes: 100 << 30,
        local_sr_used_bytes: 10 << 30,
    }
}

/// The first host of `TestPool`s.
pub fn sample_first_host() -> FirstHost {
    FirstHost {
        host_ref: "OpaqueRef:00000000-0000-4000-8000-000000000001".to_owned(),
        host_uuid: "00000000-0000-4000-8000-000000000001".to_owned(),
    }
}

/// The new pool's Txn, built once: hashing the password is slow in debug builds.
static SAMPLE_POOL: LazyLock<Txn> = LazyLock::new(|| {
    new_pool(
        &sample_facts(),
        &sample_first_host(),
        TEST_START_UNIX,
        TEST_ROOT_PASSWORD,
    )
});

/// A `HostLink` whose agent runs nothing: every action succeeds at once.
pub struct FakeAgent {}

impl FakeAgent {
    pub fn new() -> Arc<FakeAgent> {
        Arc::new(FakeAgent {})
    }
}

impl HostLink for FakeAgent {
    fn run(
        &self,
        host: &str,
        term: u64,
        action: HostAction,
        progress: watch::Sender<f64>,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<ActionResult, ApiError>> {
        let _ = (host, term, action, progress, cancel);
        Box::pin(async { todo!() })
    }
}

/// A master over a new one-host pool in memory.
pub struct TestPool {
    pub master: Arc<Master>,
    pub db: Arc<MemoryDb>,
    pub clock: Arc<ManualClock>,
    /// The ref of the pool's only host.
    pub host: String,
}

impl TestPool {
    /// A new pool with the default `MasterConfig`.
    pub fn new() -> TestPool {
        TestPool::with_config(MasterConfig::default())
    }

    pub fn with_config(config: MasterConfig) -> TestPool {
        let db = MemoryDb::new();
        db.apply(&SAMPLE_POOL)
            .expect("the new pool's Txn applies to an empty DB");
        let clock = ManualClock::new(TEST_START_UNIX);
        let host = sample_first_host().host_ref;
        let agent = FakeAgent::new();
        let master = Master::new(
            db.clone(),
            agent.clone(),
            clock.clone(),
            config,
            host.clone(),
        );
        TestPool {
            master,
            db,
            clock,
            host,
        }
    }

    /// Calls `method` with `params` as given (a session first where the method takes one),
    /// as a client on the network.
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, ApiError> {
        self.master
            .call(Call {
                method: method.to_owned(),
                params,
                origin: Origin::Network { peer: None },
            })
            .await
    }

    /// Calls `method` with `session` and then `params`.
    pub async fn call_as(
        &self,
        session: &str,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Value, ApiError> {
        let mut all = vec![Value::str(session)];
        all.extend(params);
        self.call(method, all).await
    }

    /// A root session, logged in over the local socket (no password check, so no hashing).
    pub async fn login(&self) -> String {
        let reply = self
            .master
            .call(Call {
                method: "session.login_with_password".to_owned(),
                params: vec![Value::str("root"), Value::str("")],
                origin: Origin::LocalSocket,
            })
            .await
            .expect("local root login succeeds");
        match reply {
            Value::String(session) => session,
            other => panic!("login answered {other:?}"),
        }
    }

    /// The local replica. Never hold it across an `.await`.
    pub fn read(&self) -> RwLockReadGuard<'_, Db> {
        self.db.read()
    }

    /// The refs of the live rows of `class`.
    pub fn refs(&self, class: &str) -> Vec<String> {
        self.db
            .read()
            .rows(class)
            .map(|(r, _)| r.to_owned())
            .collect()
    }

    /// Waits until `done` holds on the DB, checking again after every apply. Panics after
    /// `WAIT_LIMIT`: a test waits for an event, never for a fixed time.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&Db) -> bool) {
        let mut applied = self.db.applied();
        let wait = async {
            loop {
                applied.borrow_and_update();
                if done(&self.db.read()) {
                    return;
                }
                if applied.changed().await.is_err() {
                    return;
                }
            }
        };
        if tokio::time::timeout(WAIT_LIMIT, wait).await.is_err() {
            panic!("timed out waiting for {what}");
        }
    }

    /// A field of a live row, if both exist.
    pub fn field(&self, class: &str, r: &str, field: &str) -> Option<Value> {
        self.db.read().get(class, r)?.get(field).cloned()
    }
}

impl Default for TestPool {
    fn default() -> Self {
        TestPool::new()
    }
}
