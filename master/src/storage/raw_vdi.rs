//! What the master decides for the HTTP handlers `PUT /import_raw_vdi` and
//! `GET /export_raw_vdi`, which the front door of any host serves: three calls it makes on
//! the client's behalf, with the client's session, named outside the XenAPI's classes (they
//! are not in `system.listMethods`) and dispatched before the API table:
//!
//! - `RAW_VDI_HOST(session, vdi, operation)`: the checks, and the host whose agent reaches
//!   the VDI's SR (a live host with an attached PBD first), where the bytes go or come from;
//! - `IMPORT_RAW_VDI(session, vdi, format, token, host, task)`: the checks again, then the
//!   SR's host imports the image that the front door sends it on the data plane as `token`;
//!   the VDI's sizes are recorded;
//! - `EXPORT_RAW_VDI(session, vdi, format, token, to_host, task)`: the SR's host streams
//!   the VDI to the front door of `to_host`, which expects `token`.
//!
//! The front door draws the token (it is a member of the pool, with the pool secret, as the
//! agents are) and moves the bytes; the master never sees them. `vdi` is a ref or a uuid, as
//! xapi takes it. With a `task` (a client's, from `task.create`; empty for none) the call
//! reports the transfer's progress on it and ends it with the call's outcome, and
//! `task.cancel` stops the transfer. Refused, as xapi refuses them: a VDI in use by a VM that
//! is not halted (`VDI_IN_USE`), a read-only VDI for an import (`VDI_READONLY`), an SR with
//! no attached PBD (`SR_HAS_NO_PBDS`); the agent's refusals (`VDI_TOO_SMALL`,
//! `VDI_IO_ERROR`) come through `vm/agent_failures.rs`.

use std::sync::Arc;

use api_spec::classes::vm::VmPowerState;
use api_spec::{ApiError, NULL_REF, Value, errors};
use host_api::{
    ActionResult, DiskSpec, HostAction, ImageFormat, StorageAction, TransferToken, VdiInfo,
};

use crate::call::ctx::Ctx;
use crate::call::session;
use crate::call::tasks::{self, TaskHandle};
use crate::error::{Error, to_api_error};
use crate::storage::sr_spec::where_attached;
use crate::storage::volumes;
use crate::vm::operations::{Draft, Overlay};
use crate::vm::power_state::power_state;
use crate::vm::vm_spec;
use crate::{Master, Origin};

/// `(session, vdi, operation)` → the ref of the host the VDI's bytes go to or come from;
/// `operation` is `import` or `export`.
pub const RAW_VDI_HOST: &str = "http.raw_vdi_host";
/// `(session, vdi, format, token, host, task)` → `""` once the image is in the VDI.
pub const IMPORT_RAW_VDI: &str = "http.import_raw_vdi";
/// `(session, vdi, format, token, to_host, task)` → `""` once the VDI is sent.
pub const EXPORT_RAW_VDI: &str = "http.export_raw_vdi";

/// Whether `method` is one of this module's calls.
pub(crate) fn is_call(method: &str) -> bool {
    [RAW_VDI_HOST, IMPORT_RAW_VDI, EXPORT_RAW_VDI].contains(&method)
}

/// Answers one of this module's calls (`is_call`).
pub(crate) async fn call(
    master: &Arc<Master>,
    method: &str,
    params: Vec<Value>,
    origin: Origin,
) -> Result<Value, ApiError> {
    let strings: Option<Vec<&str>> = params.iter().map(Value::as_str).collect();
    let expected = if method == RAW_VDI_HOST { 3 } else { 6 };
    let strings = match strings {
        Some(strings) if strings.len() == expected => strings,
        _ => {
            return Err(errors::message_parameter_count_mismatch(
                method,
                expected,
                params.len(),
            ));
        }
    };
    master
        .db
        .read_barrier()
        .await
        .map_err(|e| to_api_error(Error::ReadBarrier(e)))?;
    session::check(master, strings[0])
        .await
        .map_err(to_api_error)?;
    tracing::debug!(method, ?origin, "http handler call");
    let outcome = match method {
        RAW_VDI_HOST => target(master, strings[1], strings[2]).map(|t| Value::str(t.host)),
        IMPORT_RAW_VDI => transfer(master, Direction::Import, &strings, origin).await,
        _ => transfer(master, Direction::Export, &strings, origin).await,
    };
    outcome.map_err(to_api_error)
}

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Import,
    Export,
}

impl Direction {
    /// The operation a refusal names.
    fn name(self) -> &'static str {
        match self {
            Direction::Import => "import",
            Direction::Export => "export",
        }
    }
}

/// A VDI whose bytes may move, and where.
struct Target {
    vdi: String,
    /// The host whose agent reaches the VDI's SR.
    host: String,
    /// The VDI as that host's driver finds it (its SR included).
    disk: DiskSpec,
}

/// Checks that the bytes of `vdi` (a ref or a uuid) may move for `operation` (`import` or
/// `export`), and finds where.
fn target(master: &Master, vdi: &str, operation: &str) -> Result<Target, Error> {
    let db = master.db.read();
    let view = Overlay::new(&db);
    let vdi = if view.exists("VDI", vdi) {
        vdi.to_owned()
    } else if vdi.starts_with("OpaqueRef:") {
        return Err(errors::handle_invalid("VDI", vdi).into());
    } else {
        db.ref_by_uuid("VDI", vdi)
            .ok_or_else(|| errors::uuid_invalid("VDI", vdi))?
            .to_owned()
    };
    let in_use = view.children("VBD", "VDI", &vdi).into_iter().any(|vbd| {
        let vm = view.str("VBD", &vbd, "VM");
        view.bool("VBD", &vbd, "currently_attached")
            || (view.exists("VM", vm) && power_state(&view, vm) != VmPowerState::Halted)
    });
    if in_use {
        return Err(errors::vdi_in_use(&vdi, operation).into());
    }
    if operation == Direction::Import.name() && view.bool("VDI", &vdi, "read_only") {
        return Err(errors::vdi_readonly(&vdi).into());
    }
    let (host, _) = where_attached(&view, view.str("VDI", &vdi, "SR"))?;
    let disk = vm_spec::disk(&view, &vdi);
    Ok(Target { vdi, host, disk })
}

/// Runs an import or an export: `args` are `session, vdi, format, token, host, task`; the
/// transfer's progress is the task's, and `task.cancel` stops it.
async fn transfer(
    master: &Arc<Master>,
    direction: Direction,
    args: &[&str],
    origin: Origin,
) -> Result<Value, Error> {
    let [session, vdi, format, token, host, task] = args else {
        return Err(errors::internal_error("an http handler call with the wrong arguments").into());
    };
    let format = ImageFormat::parse(format)
        .ok_or_else(|| errors::value_not_supported("format", format, "raw and qcow2 are"))?;
    let task = adopt(master, task)?;
    let ctx = Ctx {
        master: Arc::clone(master),
        session: Some((*session).to_owned()),
        origin,
        task: task.clone(),
    };
    let outcome = run(&ctx, direction, vdi, format, token, host)
        .await
        .map_err(to_api_error);
    if let Some(task) = task {
        tasks::finish_adopted(master, task, outcome.clone()).await;
    }
    Ok(outcome?)
}

/// The client's task `task` (empty or the null ref: none), run by this call from now on.
fn adopt(master: &Master, task: &str) -> Result<Option<TaskHandle>, Error> {
    if task.is_empty() || task == NULL_REF {
        return Ok(None);
    }
    if master.db.read().get("task", task).is_none() {
        return Err(errors::handle_invalid("task", task).into());
    }
    Ok(Some(tasks::adopt(master, task)))
}

async fn run(
    ctx: &Ctx,
    direction: Direction,
    vdi: &str,
    format: ImageFormat,
    token: &str,
    host: &str,
) -> Result<Value, Error> {
    let target = target(&ctx.master, vdi, direction.name())?;
    let token = TransferToken(token.to_owned());
    let action = match direction {
        Direction::Import => {
            if target.host != *host {
                return Err(errors::internal_error(
                    "the VDI's SR is reached through another host now: send the request again",
                )
                .into());
            }
            StorageAction::Import {
                sr: target.disk.sr.clone(),
                disk: target.disk.clone(),
                format,
                token,
            }
        }
        Direction::Export => StorageAction::Export {
            sr: target.disk.sr.clone(),
            disk: target.disk.clone(),
            format,
            to_host: host.to_owned(),
            token,
        },
    };
    let action = HostAction::Storage(action);
    let answer = ctx
        .run_on_host_reporting(&target.host, action, ctx.cancel_token())
        .await?;
    if let (Direction::Import, ActionResult::Vdi(written)) = (direction, &answer) {
        record_sizes(&ctx.master, &target.vdi, written).await?;
    }
    tracing::info!(vdi = %target.vdi, host = %target.host, operation = direction.name(), format = format.name(), "vdi data moved");
    Ok(Value::str(""))
}

/// Records what the VDI `vdi` takes in its SR after an import, as its driver answered.
async fn record_sizes(master: &Master, vdi: &str, written: &VdiInfo) -> Result<(), Error> {
    master
        .decide(|db| {
            let mut draft = Draft::new(db);
            if !draft.view().exists("VDI", vdi) {
                return Err(errors::handle_invalid("VDI", vdi).into());
            }
            volumes::record_answer(&mut draft, vdi, written);
            Ok((draft.into_txn(), ()))
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use host_api::{HostAction, StorageAction};

    use super::*;
    use crate::testing::{TestPool, s};

    /// The host of the pool's first SR's PBD.
    fn sr_host(pool: &TestPool, vdi: &str) -> String {
        let sr = pool.text("VDI", vdi, "SR");
        let pbd = pool.ref_list("SR", &sr, "PBDs").remove(0);
        pool.text("PBD", &pbd, "host")
    }

    /// The host of a VDI is its SR's; a bad session is refused before anything, an unknown
    /// VDI by uuid or by ref as xapi names it.
    #[tokio::test]
    async fn the_vdi_host_is_its_srs_and_needs_a_session() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vdi = pool.new_disk(&session, "disk").await;
        let uuid = pool.text("VDI", &vdi, "uuid");
        let host = pool
            .call_as(&session, RAW_VDI_HOST, vec![s(&uuid), s("import")])
            .await;
        assert_eq!(host, Ok(s(&sr_host(&pool, &vdi))));
        let refused = pool
            .call_as("OpaqueRef:nobody", RAW_VDI_HOST, vec![s(&vdi), s("import")])
            .await
            .expect_err("no session");
        assert_eq!(refused.code, errors::SESSION_INVALID);
        for (vdi, code) in [
            ("no-such-uuid", errors::UUID_INVALID),
            ("OpaqueRef:nothing", errors::HANDLE_INVALID),
        ] {
            let refused = pool
                .call_as(&session, RAW_VDI_HOST, vec![s(vdi), s("export")])
                .await
                .expect_err("no such VDI");
            assert_eq!(refused.code, code);
        }
    }

    /// A VDI of a running VM is in use, a read-only one takes no import, and one whose SR has
    /// no attached PBD has nowhere to go.
    #[tokio::test]
    async fn busy_read_only_and_unplugged_vdis_are_refused() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        let (_, busy) = pool.add_disk(&session, &vm, "0").await;
        pool.start_on(&session, &vm, &pool.refs("host")[0]).await;
        let refused = pool
            .call_as(&session, RAW_VDI_HOST, vec![s(&busy), s("import")])
            .await;
        assert_eq!(
            refused.map_err(|e| e.description()),
            Err(vec![
                "VDI_IN_USE".to_owned(),
                busy.clone(),
                "import".to_owned()
            ])
        );
        let read_only = pool.new_disk(&session, "snapshot").await;
        pool.write("VDI", &read_only, &[("read_only", Value::Bool(true))]);
        let refused = pool
            .call_as(&session, RAW_VDI_HOST, vec![s(&read_only), s("import")])
            .await
            .expect_err("read-only");
        assert_eq!(refused.code, errors::VDI_READONLY);
        let exported = pool
            .call_as(&session, RAW_VDI_HOST, vec![s(&read_only), s("export")])
            .await;
        assert!(exported.is_ok(), "{exported:?}");
        let sr = pool.text("VDI", &read_only, "SR");
        for pbd in pool.ref_list("SR", &sr, "PBDs") {
            pool.write("PBD", &pbd, &[("currently_attached", Value::Bool(false))]);
        }
        let refused = pool
            .call_as(&session, RAW_VDI_HOST, vec![s(&read_only), s("export")])
            .await
            .expect_err("no PBD");
        assert_eq!(refused.code, errors::SR_HAS_NO_PBDS);
    }

    /// An import sends the SR's host the VDI and the token, records the VDI's size in its SR,
    /// and ends the client's task with success.
    #[tokio::test]
    async fn an_import_runs_on_the_srs_host_and_ends_the_task() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vdi = pool.new_disk(&session, "disk").await;
        let host = sr_host(&pool, &vdi);
        let task = pool
            .call_as(&session, "task.create", vec![s("import"), s("")])
            .await
            .expect("a task");
        let task = task.as_str().expect("a ref").to_owned();
        let token = "ab".repeat(16);
        let params = [&vdi, "raw", &token, &host, &task].map(s).to_vec();
        assert_eq!(
            pool.call_as(&session, IMPORT_RAW_VDI, params).await,
            Ok(s(""))
        );
        let received = pool.agent.received();
        let Some(HostAction::Storage(StorageAction::Import {
            disk,
            format,
            token: sent,
            ..
        })) = received.last().map(|r| &r.action)
        else {
            panic!("an import, got {received:?}");
        };
        assert_eq!(
            (disk.location.as_str(), *format, sent.0.as_str()),
            (
                pool.text("VDI", &vdi, "location").as_str(),
                ImageFormat::Raw,
                token.as_str()
            )
        );
        assert_eq!(
            pool.field("VDI", &vdi, "physical_utilisation"),
            Some(Value::Int(1 << 30))
        );
        assert_eq!(pool.finished(&task).await, "success");

        let params = [&vdi, "vhd", &token, &host, ""].map(s).to_vec();
        let refused = pool
            .call_as(&session, IMPORT_RAW_VDI, params)
            .await
            .expect_err("an unknown format");
        assert_eq!(refused.code, errors::VALUE_NOT_SUPPORTED);
    }
}
