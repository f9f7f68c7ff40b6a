//! Suspend and resume: the guest's memory and device state kept in the suspend VDI (a
//! qcow2) as its internal snapshot, written with `snapshot-save` and read with
//! `snapshot-load`, each a QMP job run to its end.
//!
//! A migration image is the same kind of qcow2, made for the move: the source writes it
//! beside its QEMU, streams it to the destination and deletes it; the destination keeps it,
//! as `<vm>.migration.qcow2` beside the VM directories, until the new QEMU loads it.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Qemu, Vm, failed, short};
use crate::backend::{AttachedDisk, BackendError, BackendOp, DiskFormat};

/// The internal snapshot of a suspend image that holds the VM's state, and its job.
const SUSPEND_TAG: &str = "oxapi-suspend";
const SUSPEND_JOB: &str = "oxapi-suspend";

impl Qemu {
    /// Opens the image at `at` (a suspend VDI, or a migration image; `uuid` names it) in
    /// QEMU, runs the snapshot job `command` (`snapshot-save` or `snapshot-load`) with it as
    /// the VM state's home, and closes it.
    pub(super) async fn with_image(
        &self,
        vm: &Vm,
        op: BackendOp,
        uuid: &str,
        at: &AttachedDisk,
        command: &str,
    ) -> Result<(), BackendError> {
        if at.format != DiskFormat::Qcow2 {
            return Err(BackendError::Failed {
                op,
                reason: format!("suspend image {uuid} is not a qcow2 VDI"),
            });
        }
        let key = short(uuid);
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

    /// Stops the guest and writes its state into a new migration image beside its QEMU,
    /// then streams that image into `to` and deletes it.
    pub(super) async fn send_migration_image(
        &self,
        vm: &Vm,
        to: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<(), BackendError> {
        let op = BackendOp::SaveImage;
        self.stop_guest(vm, op).await?;
        let path = vm.paths.dir.join(SENT_IMAGE);
        let sent = async {
            new_image(op, &path).await?;
            let uuid = vm.domain().spec.uuid.clone();
            self.with_image(vm, op, &uuid, &qcow2_at(&path), "snapshot-save")
                .await?;
            let io = |err: std::io::Error| BackendError::Failed {
                op,
                reason: format!("cannot send the migration image: {err}"),
            };
            let mut image = tokio::fs::File::open(&path).await.map_err(io)?;
            tokio::io::copy(&mut image, to).await.map_err(io)?;
            to.flush().await.map_err(io)
        };
        let result = sent.await;
        let _ = tokio::fs::remove_file(&path).await;
        result
    }

    /// The migration image received for `vm`, kept until its new QEMU loads it.
    pub(super) fn received_image(&self, vm: &str) -> PathBuf {
        self.root.join(format!("{vm}.migration.qcow2"))
    }

    /// Keeps the migration image read from `from` for `vm` (written whole to a temporary
    /// file, synced, then renamed over an earlier one), once it is seen to be a qcow2.
    pub(super) async fn keep_migration_image(
        &self,
        vm: &str,
        from: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<(), BackendError> {
        let op = BackendOp::ReceiveImage;
        let path = self.received_image(vm);
        let partial = path.with_extension("partial");
        let io = |err: std::io::Error| BackendError::Failed {
            op,
            reason: format!("cannot keep the migration image: {err}"),
        };
        let kept = async {
            std::fs::create_dir_all(&self.root).map_err(io)?;
            let mut magic = [0u8; 4];
            from.read_exact(&mut magic).await.map_err(io)?;
            if magic != QCOW2_MAGIC {
                return Err(BackendError::Failed {
                    op,
                    reason: "the migration image is not a qcow2 image".to_owned(),
                });
            }
            let mut file = tokio::fs::File::create(&partial).await.map_err(io)?;
            file.write_all(&magic).await.map_err(io)?;
            tokio::io::copy(from, &mut file).await.map_err(io)?;
            file.sync_all().await.map_err(io)?;
            tokio::fs::rename(&partial, &path).await.map_err(io)?;
            std::fs::File::open(&self.root)
                .and_then(|dir| dir.sync_all())
                .map_err(io)
        };
        let result = kept.await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        result
    }

    /// Loads the migration image received for the VM of `vm` into its paused QEMU, whose
    /// devices are plugged already, and deletes the image.
    pub(super) async fn load_migration_image(&self, vm: &Vm) -> Result<(), BackendError> {
        let uuid = vm.domain().spec.uuid.clone();
        let path = self.received_image(&uuid);
        if !path.exists() {
            return Err(BackendError::Failed {
                op: BackendOp::RestoreReceived,
                reason: format!("no migration image was received for vm {uuid}"),
            });
        }
        let loaded = self
            .with_image(
                vm,
                BackendOp::RestoreReceived,
                &uuid,
                &qcow2_at(&path),
                "snapshot-load",
            )
            .await;
        let _ = std::fs::remove_file(&path);
        loaded?;
        vm.update(|domain| domain.is_built = true)
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

/// The name of the migration image the source writes in the VM's directory.
const SENT_IMAGE: &str = "migration.qcow2";
/// What a qcow2 image starts with.
const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";

/// The image file at `path` as QEMU takes it.
fn qcow2_at(path: &Path) -> AttachedDisk {
    AttachedDisk {
        path: path.to_owned(),
        format: DiskFormat::Qcow2,
        read_only: false,
    }
}

/// Makes an empty qcow2 image at `path` to hold a VM's state (its disk is never used).
async fn new_image(op: BackendOp, path: &Path) -> Result<(), BackendError> {
    let output = tokio::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg("1M")
        .output()
        .await
        .map_err(|err| BackendError::Failed {
            op,
            reason: format!("cannot run qemu-img: {err}"),
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(BackendError::QemuImg {
        op,
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}
