//! Reconciliation: the DB made to agree with what an agent reports it runs.
//!
//! - `GuestChanged`: a guest powered off, rebooted or crashed and the agent did what its
//!   `actions_after_*` say; the VM shows the domain as it now is (halted, or a new domid and
//!   start time, or paused when preserved after a crash).
//! - `Inventory`, sent by an agent that (re)started: for every VM the DB has resident on or
//!   scheduled to that host, a reported domain makes it Running or Paused as reported and a
//!   missing one makes it Halted (a suspended VM whose resume died stays Suspended; one whose
//!   resume ran has used its suspend image, which is deleted). A reported
//!   domain the DB places nowhere (the VM Halted or Suspended) is adopted; one whose VM runs
//!   elsewhere, is a template or snapshot, or is unknown is left alone and raised as a
//!   `VM_GHOST` message. The operations of those VMs that no worker of this process runs died
//!   with an earlier process: their keys are removed and their tasks fail with
//!   `INTERNAL_ERROR ["operation interrupted by a restart"]`.
//!
//! VMs with an operation running in this process (on the VM or on one of its devices) are left
//! to that operation, whose end writes what its action did (`in_progress.rs`).

mod hypervisor;
mod in_progress;
mod takeover;

use std::sync::Arc;

use api_spec::classes::vm::VmPowerState;
use api_spec::{NULL_REF, Value};
use db_schema::Txn;

pub(crate) use self::in_progress::{clear_dead_operations, is_busy};
pub use self::takeover::Takeover;
pub(crate) use self::takeover::take_over;
use crate::Master;
use crate::call::ctx::Ctx;
use crate::error::{Error, to_api_error};
use crate::storage::volumes::{self, Volume};
use crate::vm::agent_failures;
use crate::vm::operations::Draft;
use crate::vm::power_state::{drop_suspend_image, power_state, set_running, set_stopped};
use host_api::{ActionResult, AgentReport, DomainInfo, GuestEvent, HostAction};

/// The name of the message raised for a domain the DB does not place on its host.
pub(crate) const GHOST_MESSAGE: &str = "VM_GHOST";

/// The priority of that message (1 is the highest): a VM may be running twice.
const GHOST_PRIORITY: i64 = 2;

/// Takes in a report of the agent of `host`; a failure is logged, the next report retries.
pub(crate) async fn report(master: &Arc<Master>, host: &str, report: AgentReport) {
    let outcome = match &report {
        AgentReport::GuestChanged { vm, event, now } => {
            guest_changed(master, host, vm, *event, now.as_ref()).await
        }
        AgentReport::Inventory(domains) => inventory(master, host, domains).await,
        AgentReport::Hypervisor(info) => hypervisor::record(master, host, info).await,
    };
    if let Err(e) = outcome {
        let code = to_api_error(e).code;
        tracing::warn!(host = %host, code = %code, "agent report not reconciled");
    }
}

/// Asks the agent of `host` what it runs and reconciles the DB with the answer.
pub(crate) async fn ask(master: &Arc<Master>, host: &str) -> Result<(), Error> {
    let (progress, _) = tokio::sync::watch::channel(0.0);
    let cancel = tokio_util::sync::CancellationToken::new();
    let term = master.db.term();
    let answer = master
        .link
        .run(host, term, HostAction::Inventory, progress, cancel)
        .await
        .map_err(|failure| {
            let context = agent_failures::Context::host(host);
            agent_failures::to_api_error(&master.db.read(), &context, failure)
        })?;
    match answer {
        ActionResult::Inventory(domains) => inventory(master, host, &domains).await,
        ActionResult::Domain(_)
        | ActionResult::Scanned { .. }
        | ActionResult::Vdi(_)
        | ActionResult::Done => {
            tracing::warn!(host = %host, "host agent answered an inventory with something else");
            Ok(())
        }
    }
}

async fn guest_changed(
    master: &Master,
    host: &str,
    uuid: &str,
    event: GuestEvent,
    domain: Option<&DomainInfo>,
) -> Result<(), Error> {
    let now = master.now();
    master
        .decide(|db| {
            let Some(vm) = db.ref_by_uuid("VM", uuid) else {
                tracing::warn!(vm = %uuid, "guest change reported for an unknown VM");
                return Ok((Txn::default(), ()));
            };
            let mut draft = Draft::new(db);
            let view = draft.view();
            let is_here = view.str("VM", vm, "resident_on") == host
                || view.str("VM", vm, "scheduled_to_be_resident_on") == host;
            if !is_here {
                tracing::warn!(vm = %uuid, host = %host, "guest change reported by a host the VM is not on");
                return Ok((Txn::default(), ()));
            }
            for field in ["resident_on", "scheduled_to_be_resident_on", "domid"] {
                draft.require_unchanged("VM", vm, field);
            }
            match domain {
                Some(info) => {
                    let is_new_domain = draft.view().int("VM", vm, "domid") != info.domid;
                    set_running(&mut draft, vm, host, info, is_new_domain, now);
                }
                None => set_stopped(&mut draft, vm, VmPowerState::Halted, now),
            }
            Ok((draft.into_txn(), ()))
        })
        .await?;
    tracing::debug!(vm = %uuid, host = %host, event = ?event, "guest change reconciled");
    Ok(())
}

/// What the DB makes of one reported domain whose VM the DB does not place on the host.
enum Stray {
    Adopt,
    Ghost(String),
}

async fn inventory(master: &Arc<Master>, host: &str, domains: &[DomainInfo]) -> Result<(), Error> {
    let now = master.now();
    let ((ghosts, used_images), _) = master
        .decide(|db| {
            let mut draft = Draft::new(db);
            let host_metrics = draft.view().str("host", host, "metrics").to_owned();
            if draft.view().exists("host_metrics", &host_metrics) {
                draft.update("host_metrics", &host_metrics, "live", Value::Bool(true));
                let stamp = Value::DateTime(api_spec::datetime::format_unix(now));
                draft.update("host_metrics", &host_metrics, "last_updated", stamp);
            }
            let mut ghosts = 0;
            let mut used_images = Vec::new();
            for vm in draft.view().refs("VM") {
                let view = draft.view();
                if view.bool("VM", &vm, "is_control_domain") {
                    continue;
                }
                let uuid = view.str("VM", &vm, "uuid").to_owned();
                let reported = domains.iter().find(|d| d.vm == uuid);
                let is_here = view.str("VM", &vm, "resident_on") == host
                    || view.str("VM", &vm, "scheduled_to_be_resident_on") == host;
                if !is_here && reported.is_none() {
                    continue;
                }
                for field in [
                    "current_operations",
                    "power_state",
                    "resident_on",
                    "scheduled_to_be_resident_on",
                ] {
                    draft.require_unchanged("VM", &vm, field);
                }
                clear_dead_operations(master, &mut draft, &vm, now);
                if is_busy(master, draft.view(), &vm) {
                    continue;
                }
                match (is_here, reported) {
                    (true, Some(info)) => {
                        used_images.extend(keep_running(&mut draft, &vm, host, info, now));
                    }
                    (true, None) => {
                        if power_state(draft.view(), &vm) == VmPowerState::Suspended {
                            let null = Value::str(NULL_REF);
                            draft.update("VM", &vm, "scheduled_to_be_resident_on", null);
                        } else {
                            set_stopped(&mut draft, &vm, VmPowerState::Halted, now);
                        }
                    }
                    (false, Some(info)) => match stray(&draft, &vm) {
                        Stray::Adopt => {
                            tracing::info!(vm = %uuid, host = %host, "running domain adopted");
                            used_images.extend(keep_running(&mut draft, &vm, host, info, now));
                        }
                        Stray::Ghost(why) => {
                            ghost(&mut draft, host, info, Some(&vm), &why, now);
                            ghosts += 1;
                        }
                    },
                    (false, None) => {}
                }
            }
            for info in domains {
                if db.ref_by_uuid("VM", &info.vm).is_none() {
                    ghost(&mut draft, host, info, None, "no VM has its uuid", now);
                    ghosts += 1;
                }
            }
            Ok((draft.into_txn(), (ghosts, used_images)))
        })
        .await?;
    let ctx = Ctx::internal(master);
    for image in &used_images {
        volumes::forget(&ctx, image).await;
    }
    if ghosts > 0 {
        tracing::warn!(host = %host, ghosts, "domains the pool does not place on their host");
    }
    tracing::info!(host = %host, domains = domains.len(), "host inventory reconciled");
    Ok(())
}

/// Makes `vm` show its reported domain on `host`; a suspended VM running again has used its
/// suspend image, whose volume is returned to be deleted.
fn keep_running(
    draft: &mut Draft,
    vm: &str,
    host: &str,
    info: &DomainInfo,
    now: i64,
) -> Option<Volume> {
    let view = draft.view();
    let was = power_state(view, vm);
    let (was_live, was_suspended) = (was.has_domain(), was == VmPowerState::Suspended);
    let is_new_domain = !was_live || view.int("VM", vm, "domid") != info.domid;
    set_running(draft, vm, host, info, is_new_domain, now);
    if !was_suspended {
        return None;
    }
    drop_suspend_image(draft, vm)
}

/// Whether a domain of `vm` that the DB places nowhere on this host may be adopted.
fn stray(draft: &Draft, vm: &str) -> Stray {
    let view = draft.view();
    let is_live = power_state(view, vm).has_domain();
    let elsewhere = view.str("VM", vm, "resident_on");
    if is_live && view.exists("host", elsewhere) {
        let name = view.str("host", elsewhere, "name_label");
        return Stray::Ghost(format!("the pool database has it running on host {name}"));
    }
    if view.bool("VM", vm, "is_a_template") || view.bool("VM", vm, "is_a_snapshot") {
        return Stray::Ghost("it is a template or a snapshot".to_owned());
    }
    Stray::Adopt
}

/// Raises a `VM_GHOST` message about a domain left running on `host`.
fn ghost(draft: &mut Draft, host: &str, info: &DomainInfo, vm: Option<&str>, why: &str, now: i64) {
    let view = draft.view();
    let host_name = view.str("host", host, "name_label").to_owned();
    let (cls, obj_uuid) = match vm {
        Some(vm) => ("VM", view.str("VM", vm, "uuid").to_owned()),
        None => ("Host", view.str("host", host, "uuid").to_owned()),
    };
    let body = format!(
        "domain {} of VM {} runs on host {host_name}, but {why}; it was left running",
        info.domid, info.vm
    );
    tracing::warn!(vm = %info.vm, host = %host, domid = info.domid, "ghost domain");
    draft.create(
        "message",
        [
            ("name", Value::str(GHOST_MESSAGE)),
            ("priority", Value::Int(GHOST_PRIORITY)),
            ("cls", Value::str(cls)),
            ("obj_uuid", Value::String(obj_uuid)),
            (
                "timestamp",
                Value::DateTime(api_spec::datetime::format_unix(now)),
            ),
            ("body", Value::String(body)),
        ],
    );
}

#[cfg(test)]
mod tests {
    use api_spec::NULL_REF;

    use super::*;
    use crate::testing::{HALTED_OPERATIONS, RUNNING_OPERATIONS, TestPool, s};
    use host_api::{ConsoleInfo, DomainState};

    fn domain(uuid: &str, domid: i64, state: DomainState) -> DomainInfo {
        DomainInfo {
            vm: uuid.to_owned(),
            state,
            domid,
            memory_actual_bytes: 1 << 30,
            vcpus: 1,
            vbds: Vec::new(),
            vifs: Vec::new(),
            consoles: vec![ConsoleInfo {
                protocol: "rfb".to_owned(),
            }],
        }
    }

    fn messages(pool: &TestPool) -> Vec<(String, String, String)> {
        pool.refs("message")
            .iter()
            .map(|m| {
                let text = |f| pool.text("message", m, f);
                (text("name"), text("cls"), text("obj_uuid"))
            })
            .collect()
    }

    /// A guest that powered off is halted; one that rebooted gets its new domid and start
    /// time; one preserved after a crash shows paused.
    #[tokio::test]
    async fn guest_changes_reach_the_db() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        let uuid = pool.text("VM", &vm, "uuid");
        let metrics = pool.text("VM", &vm, "metrics");
        pool.clock.advance(60);
        let rebooted = AgentReport::GuestChanged {
            vm: uuid.clone(),
            event: GuestEvent::Rebooted,
            now: Some(domain(&uuid, 9, DomainState::Running)),
        };
        pool.master.report(&pool.host, rebooted).await;
        assert_eq!(pool.field("VM", &vm, "domid"), Some(Value::Int(9)));
        let start_time = api_spec::datetime::format_unix(crate::testing::TEST_START_UNIX + 60);
        assert_eq!(
            pool.field("VM_metrics", &metrics, "start_time"),
            Some(Value::DateTime(start_time))
        );
        let crashed = AgentReport::GuestChanged {
            vm: uuid.clone(),
            event: GuestEvent::Crashed,
            now: Some(domain(&uuid, 9, DomainState::Paused)),
        };
        pool.master.report(&pool.host, crashed).await;
        assert_eq!(pool.text("VM", &vm, "power_state"), "Paused");
        let off = AgentReport::GuestChanged {
            vm: uuid,
            event: GuestEvent::PoweredOff,
            now: None,
        };
        pool.master.report(&pool.host, off).await;
        assert_eq!(pool.text("VM", &vm, "power_state"), "Halted");
        assert_eq!(pool.text("VM", &vm, "resident_on"), NULL_REF);
        assert_eq!(pool.allowed("VM", &vm), HALTED_OPERATIONS);
    }

    /// After a restart, the inventory halts the VMs whose domain is gone, keeps those that
    /// run, adopts a domain of a halted VM, and raises `VM_GHOST` for a domain of a VM that
    /// runs elsewhere and for one no VM owns, leaving them be.
    #[tokio::test]
    async fn an_inventory_halts_keeps_adopts_and_raises_ghosts() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let gone = pool.running_vm(&session, "gone").await;
        let kept = pool.running_vm(&session, "kept").await;
        let adopted = pool.new_vm(&session, "adopted").await;
        let elsewhere = pool.running_vm(&session, "elsewhere").await;
        let other_host = pool.add_host("host2", 64 << 30);
        pool.write("VM", &elsewhere, &[("resident_on", s(&other_host))]);
        let uuid = |vm: &str| pool.text("VM", vm, "uuid");
        let mut domains = vec![
            pool.agent.domain(&uuid(&kept)).expect("kept runs"),
            domain(&uuid(&adopted), 40, DomainState::Running),
            domain(&uuid(&elsewhere), 41, DomainState::Running),
            domain(
                "00000000-0000-4000-8000-0000000000ff",
                42,
                DomainState::Running,
            ),
        ];
        domains[0].state = DomainState::Paused;
        pool.master
            .report(&pool.host, AgentReport::Inventory(domains))
            .await;
        assert_eq!(pool.text("VM", &gone, "power_state"), "Halted");
        assert_eq!(pool.allowed("VM", &gone), HALTED_OPERATIONS);
        assert_eq!(pool.text("VM", &kept, "power_state"), "Paused");
        assert_eq!(pool.text("VM", &adopted, "power_state"), "Running");
        assert_eq!(pool.text("VM", &adopted, "resident_on"), pool.host);
        assert_eq!(pool.field("VM", &adopted, "domid"), Some(Value::Int(40)));
        assert_eq!(pool.allowed("VM", &adopted), RUNNING_OPERATIONS);
        assert_eq!(pool.text("VM", &elsewhere, "resident_on"), other_host);
        let mut raised = messages(&pool);
        raised.sort();
        let host_uuid = pool.text("host", &pool.host, "uuid");
        let mut expected = vec![
            (GHOST_MESSAGE.to_owned(), "VM".to_owned(), uuid(&elsewhere)),
            (GHOST_MESSAGE.to_owned(), "Host".to_owned(), host_uuid),
        ];
        expected.sort();
        assert_eq!(raised, expected);
    }

    /// A suspended VM whose resume ran but was not recorded (its master died first) is
    /// running once its host's inventory shows it, and its used suspend image is deleted.
    #[tokio::test]
    async fn an_inventory_deletes_the_image_of_a_resume_it_finds_done() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let (vm, image) = pool.suspended_vm(&session, "web").await;
        let uuid = pool.text("VM", &vm, "uuid");
        let resumed = domain(&uuid, 7, DomainState::Running);
        pool.master
            .report(&pool.host, AgentReport::Inventory(vec![resumed]))
            .await;
        assert_eq!(pool.text("VM", &vm, "power_state"), "Running");
        assert_eq!(pool.text("VM", &vm, "suspend_VDI"), NULL_REF);
        assert!(pool.read().get("VDI", &image).is_none());
        assert_eq!(
            pool.agent.kinds().last(),
            Some(&crate::testing::ActionKind::DestroyVdi)
        );
    }

    /// A start cut short after its begin Txn (the VM scheduled here, its task pending) ends
    /// halted, with its host released, when the domain never came.
    #[tokio::test]
    async fn an_inventory_releases_a_start_that_died() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        let stale = Value::Struct([("OpaqueRef:dead".to_owned(), s("start"))].into());
        pool.write(
            "VM",
            &vm,
            &[
                ("current_operations", stale),
                ("scheduled_to_be_resident_on", s(&pool.host)),
            ],
        );
        assert!(pool.allowed("VM", &vm).is_empty());
        pool.master.reconcile(&pool.host).await.expect("reconciled");
        assert_eq!(
            pool.text("VM", &vm, "scheduled_to_be_resident_on"),
            NULL_REF
        );
        assert!(pool.current("VM", &vm).is_empty());
        assert_eq!(pool.allowed("VM", &vm), HALTED_OPERATIONS);
        let free = pool
            .call_as(&session, "host.compute_free_memory", vec![s(&pool.host)])
            .await;
        assert_eq!(free, Ok(Value::Int(15 << 30)));
    }
}
