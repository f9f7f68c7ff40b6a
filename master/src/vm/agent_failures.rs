//! The one place where an action's failure on a host becomes the XenAPI error a client gets.
//! An agent knows VMs and devices by uuid only; the master, which has the DB, names them by ref
//! as xapi does, and names the task a cancelled action belonged to.

use api_spec::errors::BackendFailure;
use api_spec::{ApiError, errors};
use db_schema::Db;
use host_api::{AgentFailure, StorageOperation};

use crate::host_link::LinkFailure;

/// What the failure of an action is about, besides what the agent said.
pub(crate) struct Context<'a> {
    /// The host the action was sent to.
    pub host: &'a str,
    /// The VM the action was for.
    pub vm: &'a str,
    /// The task (or, without one, the operation) a cancellation names.
    pub task: &'a str,
}

impl<'a> Context<'a> {
    /// An action on the host itself (an inventory), for no VM and no task.
    pub fn host(host: &'a str) -> Context<'a> {
        Context {
            host,
            vm: "",
            task: "",
        }
    }
}

/// The XenAPI error for `failure`.
pub(crate) fn to_api_error(db: &Db, context: &Context<'_>, failure: LinkFailure) -> ApiError {
    let agent = match failure {
        LinkFailure::HostOffline => return errors::host_offline(context.host),
        LinkFailure::Incompatible { theirs } => {
            tracing::warn!(
                host = %context.host,
                theirs,
                ours = host_api::PROTOCOL_VERSION,
                "action for a host of another protocol version refused"
            );
            return errors::vm_host_incompatible_version(context.host, context.vm);
        }
        LinkFailure::Agent(agent) => agent,
    };
    let by_ref = |classes: &[&str], uuid: &str| {
        classes
            .iter()
            .find_map(|class| db.ref_by_uuid(class, uuid))
            .unwrap_or(uuid)
            .to_owned()
    };
    match agent {
        AgentFailure::StaleTerm { .. } => errors::operation_not_allowed(&agent),
        AgentFailure::Cancelled => errors::task_cancelled(context.task),
        AgentFailure::BadPowerState {
            vm,
            expected,
            actual,
        } => errors::vm_bad_power_state(by_ref(&["VM"], &vm), expected, actual),
        AgentFailure::ShutdownTimeout { vm, timeout_secs } => {
            errors::vm_shutdown_timeout(by_ref(&["VM"], &vm), timeout_secs)
        }
        AgentFailure::HookFailed {
            hook,
            reason,
            stdout,
            exit_code,
        } => errors::xapi_hook_failed(hook, reason, stdout, exit_code),
        AgentFailure::DeviceAlreadyAttached { device } => {
            errors::device_already_attached(by_ref(&["VBD", "VIF"], &device))
        }
        AgentFailure::DeviceAlreadyDetached { device } => {
            errors::device_already_detached(by_ref(&["VBD", "VIF"], &device))
        }
        AgentFailure::DetachRejected { device, reason } => {
            let class = ["VBD", "VIF"]
                .into_iter()
                .find(|class| db.ref_by_uuid(class, &device).is_some())
                .unwrap_or("VBD");
            errors::device_detach_rejected(class, by_ref(&[class], &device), reason)
        }
        AgentFailure::DriveEmpty { vbd } => errors::vbd_is_empty(by_ref(&["VBD"], &vbd)),
        AgentFailure::DriveNotEmpty { vbd } => errors::vbd_not_empty(by_ref(&["VBD"], &vbd)),
        AgentFailure::NotRemovable { vbd } => {
            errors::vbd_not_removable_media(by_ref(&["VBD"], &vbd))
        }
        AgentFailure::TooManyVcpus { vm } => errors::vm_too_many_vcpus(by_ref(&["VM"], &vm)),
        AgentFailure::UnknownSrDriver { sr_type } => errors::sr_unknown_driver(sr_type),
        AgentFailure::ImageTooLarge {
            location,
            image_bytes,
            ..
        } => {
            let vdi = db
                .rows("VDI")
                .find(|(_, row)| row.str("location") == location)
                .map_or(location.as_str(), |(r, _)| r);
            errors::vdi_too_small(vdi, image_bytes)
        }
        AgentFailure::ImageUnusable { reason } => errors::vdi_io_error(reason),
        AgentFailure::VdiInUse {
            sr,
            location,
            operation,
        } => errors::vdi_in_use(vdi_at(db, &sr, &location), operation.word()),
        AgentFailure::VdiMissing { sr, location } => {
            errors::vdi_missing(by_ref(&["SR"], &sr), vdi_at(db, &sr, &location))
        }
        // xapi's file and LVM backends refuse a shrink as an invalid size.
        AgentFailure::VdiCannotShrink {
            virtual_size_bytes,
            requested_bytes,
            ..
        } => errors::sr_backend_failure_numbered(
            BackendFailure::VdiSize,
            format_args!(
                "shrinking from {virtual_size_bytes} to {requested_bytes} bytes is not allowed"
            ),
            "",
        ),
        AgentFailure::StorageBackend {
            operation,
            status,
            stderr,
        } => errors::sr_backend_failure_numbered(backend_failure(operation), status, stderr),
        AgentFailure::SrUnavailable { reason, .. } => {
            errors::sr_backend_failure_numbered(BackendFailure::SrUnavailable, reason, "")
        }
        AgentFailure::SrOperationNotSupported { sr } => {
            errors::sr_operation_not_supported(by_ref(&["SR"], &sr))
        }
        AgentFailure::Internal { message } => {
            errors::internal_error(format!("host agent: {message}"))
        }
    }
}

/// The VDI of the SR `sr_uuid` at `location`, by ref; `location` itself when no row has it.
fn vdi_at(db: &Db, sr_uuid: &str, location: &str) -> String {
    let sr = db.ref_by_uuid("SR", sr_uuid);
    db.rows("VDI")
        .find(|(_, row)| Some(row.str("SR")) == sr && row.str("location") == location)
        .map_or(location, |(r, _)| r)
        .to_owned()
}

/// The numbered backend failure a storage driver's failure at `operation` is sent as.
fn backend_failure(operation: StorageOperation) -> BackendFailure {
    match operation {
        StorageOperation::Attach | StorageOperation::Detach => BackendFailure::VdiUnavailable,
        StorageOperation::CreateVdi => BackendFailure::VdiCreate,
        StorageOperation::DestroyVdi => BackendFailure::VdiRemove,
        StorageOperation::ResizeVdi => BackendFailure::VdiResize,
        StorageOperation::SnapshotVdi => BackendFailure::VdiSnapshot,
        StorageOperation::CloneVdi => BackendFailure::VdiClone,
        StorageOperation::Scan => BackendFailure::SrScan,
    }
}

#[cfg(test)]
mod tests {
    use host_api::PowerState;

    use super::*;
    use crate::testing::TestPool;

    fn context<'a>(vm: &'a str) -> Context<'a> {
        Context {
            host: "OpaqueRef:host",
            vm,
            task: "OpaqueRef:task",
        }
    }

    /// A VM named by uuid gets its ref, in xapi's parameter order; a uuid no row has is left
    /// as it is.
    #[test]
    fn uuids_of_live_rows_become_refs() {
        let pool = TestPool::new();
        let db = pool.read();
        let vm = db.refs_by_name_label("VM", "Other install media")[0].to_owned();
        let uuid = db.get("VM", &vm).expect("the VM").str("uuid").to_owned();
        let bad = AgentFailure::BadPowerState {
            vm: uuid,
            expected: PowerState::Running,
            actual: PowerState::Halted,
        };
        assert_eq!(
            to_api_error(&db, &context(&vm), bad.into()).description(),
            ["VM_BAD_POWER_STATE", vm.as_str(), "running", "halted"]
        );
        let unknown = AgentFailure::DeviceAlreadyAttached {
            device: "no-such-uuid".to_owned(),
        };
        assert_eq!(
            to_api_error(&db, &context(&vm), unknown.into()).description(),
            ["DEVICE_ALREADY_ATTACHED", "no-such-uuid"]
        );
    }

    /// A stale term becomes OPERATION_NOT_ALLOWED naming both terms; a cancelled action names
    /// its task; a failed hook keeps xapi's order: hook, reason, stdout, exit code; a disk on
    /// an SR type the host has no driver for is SR_UNKNOWN_DRIVER naming the type.
    #[test]
    fn agent_failures_keep_xapi_codes_and_order() {
        let pool = TestPool::new();
        let db = pool.read();
        let error = |failure: AgentFailure| {
            to_api_error(&db, &context("OpaqueRef:vm"), failure.into()).description()
        };
        assert_eq!(
            error(AgentFailure::StaleTerm {
                newest_seen: 7,
                got: 5
            }),
            ["OPERATION_NOT_ALLOWED", "stale term: newest seen 7, got 5"]
        );
        assert_eq!(
            error(AgentFailure::Cancelled),
            ["TASK_CANCELLED", "OpaqueRef:task"]
        );
        assert_eq!(
            error(AgentFailure::HookFailed {
                hook: "vm-pre-start/10-check".to_owned(),
                reason: "none".to_owned(),
                stdout: "refusing\n".to_owned(),
                exit_code: "3".to_owned(),
            }),
            [
                "XAPI_HOOK_FAILED",
                "vm-pre-start/10-check",
                "none",
                "refusing\n",
                "3"
            ]
        );
        assert_eq!(
            error(AgentFailure::UnknownSrDriver {
                sr_type: "lvm".to_owned()
            }),
            ["SR_UNKNOWN_DRIVER", "lvm"]
        );
        assert_eq!(
            error(AgentFailure::Internal {
                message: "build failed: injected failure".to_owned()
            }),
            [
                "INTERNAL_ERROR",
                "host agent: build failed: injected failure"
            ]
        );
    }

    /// A storage driver's failures become xapi's storage errors: a VDI in use or missing
    /// named by ref (by its location when no row has it), a shrink SR_BACKEND_FAILURE_79, and
    /// a failed tool SR_BACKEND_FAILURE_<n> of its operation with what it printed.
    #[test]
    fn storage_failures_become_xapi_storage_errors() {
        let pool = TestPool::new();
        let sr = pool.refs("SR").remove(0);
        let sr_uuid = pool.text("SR", &sr, "uuid");
        let db = pool.read();
        let mut draft = crate::vm::operations::Draft::new(&db);
        let vdi = draft.create(
            "VDI",
            [
                ("SR", api_spec::Value::str(sr.as_str())),
                ("location", api_spec::Value::str("a.qcow2")),
            ],
        );
        let txn = draft.into_txn();
        drop(db);
        pool.db.apply(&txn).expect("the VDI row");
        let db = pool.read();
        let error = |failure: AgentFailure| {
            to_api_error(&db, &context("OpaqueRef:vm"), failure.into()).description()
        };
        assert_eq!(
            error(AgentFailure::VdiInUse {
                sr: sr_uuid.clone(),
                location: "a.qcow2".to_owned(),
                operation: StorageOperation::DestroyVdi,
            }),
            ["VDI_IN_USE", vdi.as_str(), "destroy"]
        );
        assert_eq!(
            error(AgentFailure::VdiMissing {
                sr: sr_uuid.clone(),
                location: "gone.qcow2".to_owned(),
            }),
            ["VDI_MISSING", sr.as_str(), "gone.qcow2"]
        );
        assert_eq!(
            error(AgentFailure::SrOperationNotSupported {
                sr: sr_uuid.clone(),
            }),
            ["SR_OPERATION_NOT_SUPPORTED", sr.as_str()]
        );
        assert_eq!(
            error(AgentFailure::VdiCannotShrink {
                sr: sr_uuid,
                location: "a.qcow2".to_owned(),
                virtual_size_bytes: 2048,
                requested_bytes: 1024,
            }),
            [
                "SR_BACKEND_FAILURE_79",
                "",
                "VDI size invalid [opterr=shrinking from 2048 to 1024 bytes is not allowed]",
                ""
            ]
        );
        assert_eq!(
            error(AgentFailure::StorageBackend {
                operation: StorageOperation::ResizeVdi,
                status: "exit status: 1".to_owned(),
                stderr: "Image is not in qcow2 format".to_owned(),
            }),
            [
                "SR_BACKEND_FAILURE_110",
                "",
                "VDI resize failed [opterr=exit status: 1]",
                "Image is not in qcow2 format"
            ]
        );
    }

    /// An unreachable host is HOST_OFFLINE naming it; a host of another protocol version is
    /// VM_HOST_INCOMPATIBLE_VERSION naming the host and the VM.
    #[test]
    fn link_failures_name_the_host() {
        let pool = TestPool::new();
        let db = pool.read();
        let context = context("OpaqueRef:vm");
        assert_eq!(
            to_api_error(&db, &context, LinkFailure::HostOffline).description(),
            ["HOST_OFFLINE", "OpaqueRef:host"]
        );
        assert_eq!(
            to_api_error(&db, &context, LinkFailure::Incompatible { theirs: 9 }).description(),
            [
                "VM_HOST_INCOMPATIBLE_VERSION",
                "OpaqueRef:host",
                "OpaqueRef:vm"
            ]
        );
    }
}
