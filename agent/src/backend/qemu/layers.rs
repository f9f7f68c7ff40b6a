//! The layers of a running disk's chain: a snapshot of a disk the guest writes to moves the
//! guest onto a new, empty top (`blockdev-add` of the overlay with no backing, then
//! `blockdev-snapshot`), and what it wrote so far becomes the read-only base. A disk plugged
//! as `d<key>` (format) on `f<key>` (file) gets tops named `d<key>s1`, `d<key>s2`, …, each with
//! its file inline; an unplug removes them top first. The names are found again from QEMU
//! (`query-named-block-nodes`), so nothing is kept about them.

use std::path::Path;

use serde_json::{Value, json};

use super::{Qemu, Vm, short};
use crate::backend::{BackendError, BackendOp};

/// The names of the nodes of the disk of `vbd`, top first: its tops (newest first), then
/// `d<key>` and `f<key>`.
pub(super) async fn nodes_of(
    qemu: &Qemu,
    vm: &Vm,
    op: BackendOp,
    vbd: &str,
) -> Result<Vec<String>, BackendError> {
    let key = short(vbd);
    let listed = qemu
        .command(vm, op, "query-named-block-nodes", json!({"flat": true}))
        .await?;
    let prefix = format!("d{key}s");
    let mut tops: Vec<u32> = listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|node| node.get("node-name").and_then(Value::as_str))
        .filter_map(|name| name.strip_prefix(&prefix))
        .filter_map(|layer| layer.parse().ok())
        .collect();
    tops.sort_unstable_by(|a, b| b.cmp(a));
    tops.dedup();
    let mut names: Vec<String> = tops.iter().map(|n| format!("{prefix}{n}")).collect();
    names.push(format!("d{key}"));
    names.push(format!("f{key}"));
    Ok(names)
}

impl Qemu {
    /// See `Hypervisor::switch_disk`.
    pub(super) async fn switch_to_overlay(
        &self,
        vm: &Vm,
        vbd: &str,
        overlay: &Path,
    ) -> Result<(), BackendError> {
        let op = BackendOp::SnapshotVdi;
        let nodes = nodes_of(self, vm, op, vbd).await?;
        let top = nodes.first().cloned().unwrap_or_default();
        let layers = nodes.len().saturating_sub(2);
        let new = format!("d{}s{}", short(vbd), layers + 1);
        let add = json!({
            "driver": "qcow2",
            "node-name": new,
            "file": {"driver": "file", "filename": overlay},
            "backing": null,
        });
        self.command(vm, op, "blockdev-add", add).await?;
        let snapshot = json!({"node": top, "overlay": new});
        if let Err(err) = self.command(vm, op, "blockdev-snapshot", snapshot).await {
            let _ = self
                .command(vm, op, "blockdev-del", json!({"node-name": new}))
                .await;
            return Err(err);
        }
        tracing::info!(vbd, top = %new, overlay = %overlay.display(), "disk moved onto a new top");
        Ok(())
    }
}
