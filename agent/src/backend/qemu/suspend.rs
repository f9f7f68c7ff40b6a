//! Suspend and resume: the guest's memory and device state kept in the suspend VDI (a
//! qcow2) as its internal snapshot, written with `snapshot-save` and read with
//! `snapshot-load`, each a QMP job run to its end.

use host_api::DiskSpec;
use serde_json::{Value, json};

use super::{Qemu, Vm, failed, short};
use crate::backend::{AttachedDisk, BackendError, BackendOp, DiskFormat};

/// The internal snapshot of a suspend image that holds the VM's state, and its job.
const SUSPEND_TAG: &str = "oxapi-suspend";
const SUSPEND_JOB: &str = "oxapi-suspend";

impl Qemu {
    /// Opens the suspend image `image` (at `at`) in QEMU, runs the snapshot job `command`
    /// (`snapshot-save` or `snapshot-load`) with it as the VM state's home, and closes it.
    pub(super) async fn with_image(
        &self,
        vm: &Vm,
        op: BackendOp,
        image: &DiskSpec,
        at: &AttachedDisk,
        command: &str,
    ) -> Result<(), BackendError> {
        if at.format != DiskFormat::Qcow2 {
            return Err(BackendError::Failed {
                op,
                reason: format!("suspend image {} is not a qcow2 VDI", image.vdi_uuid),
            });
        }
        let key = short(&image.vdi_uuid);
        let (file_node, image_node) = (format!("t{key}"), format!("s{key}"));
        // Writable both ways: loading a snapshot also reverts the image's own (empty) disk.
        let file = json!({"driver": "file", "filename": at.path, "node-name": file_node});
        self.command(vm, op, "blockdev-add", file).await?;
        let format = json!({"driver": "qcow2", "node-name": image_node, "file": file_node});
        let mut result = self.command(vm, op, "blockdev-add", format).await.map(drop);
        if result.is_ok() {
            let arguments = json!({
                "job-id": SUSPEND_JOB,
                "tag": SUSPEND_TAG,
                "vmstate": image_node,
                "devices": [image_node],
            });
            result = self.run_job(vm, op, command, arguments).await;
            let _ = self
                .command(vm, op, "blockdev-del", json!({"node-name": image_node}))
                .await;
        }
        let _ = self
            .command(vm, op, "blockdev-del", json!({"node-name": file_node}))
            .await;
        result
    }

    /// Runs the QMP job `command` (its `job-id` in `arguments`) to its end, within
    /// `image_timeout`, and dismisses it; its error, if it had one.
    async fn run_job(
        &self,
        vm: &Vm,
        op: BackendOp,
        command: &str,
        arguments: Value,
    ) -> Result<(), BackendError> {
        let id = arguments["job-id"].as_str().unwrap_or_default().to_owned();
        let mut events = vm.qmp(op)?.events();
        self.command(vm, op, command, arguments).await?;
        let concluded = events.next_matching(|event| {
            event.is("JOB_STATUS_CHANGE", &[("id", &id), ("status", "concluded")])
        });
        match tokio::time::timeout(self.config.image_timeout, concluded).await {
            Ok(result) => drop(result.map_err(|err| failed(op, err))?),
            Err(_) => {
                let _ = self.command(vm, op, "job-cancel", json!({"id": id})).await;
                return Err(BackendError::Failed {
                    op,
                    reason: format!("{command} took longer than {:?}", self.config.image_timeout),
                });
            }
        }
        let jobs = self.command(vm, op, "query-jobs", json!({})).await?;
        let error = jobs.as_array().and_then(|jobs| {
            jobs.iter()
                .find(|job| job.get("id").and_then(Value::as_str) == Some(&id))
                .and_then(|job| job.get("error"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        self.command(vm, op, "job-dismiss", json!({"id": id}))
            .await?;
        match error {
            Some(reason) => Err(BackendError::Failed { op, reason }),
            None => Ok(()),
        }
    }
}
