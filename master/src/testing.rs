//! In-memory doubles, so a handler test is a function call: `MemoryDb` (a `ReplicatedDb` that
//! applies each Txn at once, at increasing indexes), `ManualClock` (a settable `Clock`),
//! `FakeAgent` (a scriptable `HostLink`), and `TestPool` (a master over a new one-host pool,
//! with a few call helpers; `devices.rs` gives its VMs disks, CD drives and NICs).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use api_spec::{ApiError, Value};
use db_schema::{Applied, Db, Op, Txn};
use tokio::sync::watch;

mod agent;
mod devices;
mod pool_control;

pub use agent::{ActionKind, FAKE_PROGRESS, FAKE_SR_BYTES, FakeAgent, Gate, Received, fake_image};
pub use devices::sr_create_args;
pub use pool_control::{ControlCall, FakePoolControl, TEST_NODE_ID};

use crate::db::{BoxFuture, ProposeError, ReplicatedDb};
use crate::pool::bootstrap::{CpuFacts, FirstHost, HostFacts, PoolKeys, RootPassword, new_pool};
use crate::{Call, Clock, Master, MasterConfig, Origin};

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

/// A clock that moves only when told to: its wall clock and its monotonic clock move together,
/// unless the wall clock alone is made to jump.
#[derive(Debug)]
pub struct ManualClock {
    now_unix: AtomicI64,
    monotonic_secs: AtomicU64,
}

impl ManualClock {
    pub fn new(now_unix: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now_unix: AtomicI64::new(now_unix),
            monotonic_secs: AtomicU64::new(0),
        })
    }

    /// Lets `secs` seconds pass, on both clocks.
    pub fn advance(&self, secs: i64) {
        let passed = u64::try_from(secs).expect("time passes forward only");
        self.monotonic_secs.fetch_add(passed, Ordering::SeqCst);
        self.now_unix.fetch_add(secs, Ordering::SeqCst);
    }

    /// Sets the wall clock `secs` seconds forward (backward when negative) while no time
    /// passes, as an operator or NTP stepping it does.
    pub fn jump(&self, secs: i64) {
        self.now_unix.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix(&self) -> i64 {
        self.now_unix.load(Ordering::SeqCst)
    }

    fn monotonic(&self) -> Duration {
        Duration::from_secs(self.monotonic_secs.load(Ordering::SeqCst))
    }
}

/// How long `TestPool::wait_until` waits before it fails the test.
pub const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// The root password of `TestPool`s.
pub const TEST_ROOT_PASSWORD: &str = "xenroot";

/// The time `TestPool`s start at: 2024-01-01T00:00:00Z.
pub const TEST_START_UNIX: i64 = 1_704_067_200;

/// A string value: what the tests write for most arguments.
pub fn s(text: &str) -> Value {
    Value::str(text)
}

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

/// The membership keys of `TestPool`s: its host is node `TEST_NODE_ID`.
pub fn sample_keys() -> PoolKeys {
    PoolKeys {
        pool_secret: "5e".repeat(32),
        pool_epoch: "00000000-0000-4000-8000-0000000000e1".to_owned(),
        first_member: crate::pool::control::PoolMember {
            node_id: TEST_NODE_ID,
            host: sample_first_host().host_ref,
            address: "127.0.0.1:4443".to_owned(),
            cert_sha256: "c0".repeat(32),
        },
    }
}

/// The new pool's Txn, built once: hashing the password is slow in debug builds.
static SAMPLE_POOL: LazyLock<Txn> = LazyLock::new(|| {
    new_pool(
        &sample_facts(),
        &sample_first_host(),
        &sample_keys(),
        TEST_START_UNIX,
        RootPassword::Plain(TEST_ROOT_PASSWORD),
    )
});

/// The allowed operations of a plain halted VM, sorted.
pub const HALTED_OPERATIONS: [&str; 12] = [
    "changing_dynamic_range",
    "changing_shadow_memory",
    "changing_static_range",
    "clone",
    "copy",
    "destroy",
    "export",
    "make_into_template",
    "migrate_send",
    "snapshot",
    "start",
    "start_on",
];

/// The allowed operations of a plain running VM, sorted.
pub const RUNNING_OPERATIONS: [&str; 12] = [
    "changing_VCPUs_live",
    "changing_dynamic_range",
    "checkpoint",
    "clean_reboot",
    "clean_shutdown",
    "hard_reboot",
    "hard_shutdown",
    "migrate_send",
    "pause",
    "pool_migrate",
    "snapshot",
    "suspend",
];

/// A master over a new one-host pool in memory.
pub struct TestPool {
    pub master: Arc<Master>,
    pub db: Arc<MemoryDb>,
    pub clock: Arc<ManualClock>,
    /// The agent of every host of the pool.
    pub agent: Arc<FakeAgent>,
    /// The ref of the pool's only host.
    pub host: String,
    /// What the pool handlers asked of `member`.
    pub pool_control: Arc<FakePoolControl>,
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
        let pool_control = FakePoolControl::new();
        let master = Master::new(
            db.clone(),
            agent.clone(),
            clock.clone(),
            config,
            host.clone(),
            pool_control.clone(),
        );
        TestPool {
            master,
            db,
            clock,
            agent,
            host,
            pool_control,
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

    /// Calls `Async.<method>` with `session` and then `params`; the ref of its task.
    pub async fn async_call(&self, session: &str, method: &str, params: Vec<Value>) -> String {
        let task = self
            .call_as(session, &format!("Async.{method}"), params)
            .await
            .expect("an Async call answers a task");
        task.as_str().expect("a task ref").to_owned()
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

    /// The refs a set field of a live row holds, none if either is missing.
    pub fn ref_list(&self, class: &str, r: &str, field: &str) -> Vec<String> {
        self.field(class, r, field)
            .and_then(|v| {
                v.as_array().map(|refs| {
                    refs.iter()
                        .filter_map(|r| r.as_str().map(str::to_owned))
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    /// The text of a string field of a live row, `""` if either is missing.
    pub fn text(&self, class: &str, r: &str, field: &str) -> String {
        self.field(class, r, field)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The `allowed_operations` of a live row, sorted.
    pub fn allowed(&self, class: &str, r: &str) -> Vec<String> {
        let mut ops: Vec<String> = self
            .field(class, r, "allowed_operations")
            .and_then(|v| {
                v.as_array().map(|ops| {
                    ops.iter()
                        .filter_map(|o| o.as_str().map(str::to_owned))
                        .collect()
                })
            })
            .unwrap_or_default();
        ops.sort();
        ops
    }

    /// The `current_operations` of a live row, as (key, operation).
    pub fn current(&self, class: &str, r: &str) -> Vec<(String, String)> {
        self.field(class, r, "current_operations")
            .and_then(|v| {
                v.as_struct().map(|ops| {
                    ops.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    /// Waits until `task` is no longer pending; answers its status.
    pub async fn finished(&self, task: &str) -> String {
        self.wait_until("the task to finish", |db| {
            db.get("task", task)
                .is_some_and(|t| !matches!(t.str("status"), "pending" | "cancelling"))
        })
        .await;
        self.text("task", task, "status")
    }

    /// A new halted VM named `name`, cloned from the "Debian Bookworm 12" template (1 GiB,
    /// one VCPU, no devices).
    pub async fn new_vm(&self, session: &str, name: &str) -> String {
        let template = self.read().refs_by_name_label("VM", "Debian Bookworm 12")[0].to_owned();
        let vm = self
            .call_as(
                session,
                "VM.clone",
                vec![Value::str(template), Value::str(name)],
            )
            .await
            .expect("the template clones");
        let vm = vm.as_str().expect("a ref").to_owned();
        self.call_as(
            session,
            "VM.set_is_a_template",
            vec![Value::str(vm.as_str()), Value::Bool(false)],
        )
        .await
        .expect("the clone becomes a VM");
        vm
    }

    /// A new VM named `name`, started (as `new_vm`, then `VM.start`).
    pub async fn running_vm(&self, session: &str, name: &str) -> String {
        let vm = self.new_vm(session, name).await;
        let args = vec![
            Value::str(vm.as_str()),
            Value::Bool(false),
            Value::Bool(false),
        ];
        self.call_as(session, "VM.start", args)
            .await
            .expect("the VM starts");
        vm
    }

    /// A new VM named `name`, started and then suspended; the VM and its suspend VDI.
    pub async fn suspended_vm(&self, session: &str, name: &str) -> (String, String) {
        let vm = self.running_vm(session, name).await;
        self.call_as(session, "VM.suspend", vec![Value::str(vm.as_str())])
            .await
            .expect("the VM suspends");
        let image = self.text("VM", &vm, "suspend_VDI");
        (vm, image)
    }

    /// A new VM named `name`, started on `host` (as `new_vm`, then `start_on`).
    pub async fn running_vm_on(&self, session: &str, name: &str, host: &str) -> String {
        let vm = self.new_vm(session, name).await;
        self.start_on(session, &vm, host).await;
        vm
    }

    /// `VM.snapshot(vm, name, [])`: the snapshot's ref.
    pub async fn snapshot(&self, session: &str, vm: &str, name: &str) -> String {
        let args = vec![Value::str(vm), Value::str(name), Value::Array(Vec::new())];
        let snap = self
            .call_as(session, "VM.snapshot", args)
            .await
            .expect("a snapshot");
        snap.as_str().expect("a snapshot ref").to_owned()
    }

    /// Starts `vm` on `host` (`VM.start_on`, not paused, not forced).
    pub async fn start_on(&self, session: &str, vm: &str, host: &str) {
        let args = vec![
            Value::str(vm),
            Value::str(host),
            Value::Bool(false),
            Value::Bool(false),
        ];
        self.call_as(session, "VM.start_on", args)
            .await
            .expect("the VM starts on the host");
    }

    /// Adds an enabled, live host named `name` with `memory_total_bytes` of memory and its
    /// metrics to the pool's DB; returns its ref.
    pub fn add_host(&self, name: &str, memory_total_bytes: i64) -> String {
        let class = |name| api_spec::api().class(name).expect("a declared class");
        let metrics = crate::db::record::new_ref();
        let host = crate::db::record::new_ref();
        let fields = |given: &[(&str, Value)]| {
            let mut given: BTreeMap<String, Value> = given
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            given.insert(
                "uuid".to_owned(),
                Value::String(crate::db::record::new_uuid()),
            );
            given
        };
        let txn = Txn {
            preconditions: Vec::new(),
            ops: vec![
                Op::Create {
                    class: "host_metrics".to_owned(),
                    r#ref: metrics.clone(),
                    fields: crate::db::record::new_row(
                        class("host_metrics"),
                        fields(&[
                            ("memory_total", Value::Int(memory_total_bytes)),
                            ("live", Value::Bool(true)),
                        ]),
                    ),
                },
                Op::Create {
                    class: "host".to_owned(),
                    r#ref: host.clone(),
                    fields: crate::db::record::new_row(
                        class("host"),
                        fields(&[
                            ("name_label", Value::str(name)),
                            ("hostname", Value::str(name)),
                            ("address", Value::str("127.0.0.2")),
                            ("enabled", Value::Bool(true)),
                            ("metrics", Value::str(metrics.as_str())),
                        ]),
                    ),
                },
            ],
        };
        self.db.apply(&txn).expect("a new host applies");
        host
    }

    /// Writes fields of a row directly, as another writer would (allowed operations
    /// recomputed as on any write).
    pub fn write(&self, class: &str, r: &str, fields: &[(&str, Value)]) {
        let txn = Txn {
            preconditions: Vec::new(),
            ops: fields
                .iter()
                .map(|(field, value)| Op::Set {
                    class: class.to_owned(),
                    r#ref: r.to_owned(),
                    field: (*field).to_owned(),
                    value: value.clone(),
                })
                .collect(),
        };
        let txn = crate::vm::operations::complete(&self.read(), txn);
        self.db.apply(&txn).expect("a direct write applies");
    }
}

impl Default for TestPool {
    fn default() -> Self {
        TestPool::new()
    }
}
