//! An SR's `virtual_allocation`: the sum of the `virtual_size` of its VDIs, kept true by every
//! Txn (`operations::complete` calls `settle`) rather than by each call that makes, resizes,
//! moves or destroys a disk. The Txn requires the SR's figure to be, when applied, what it was
//! computed from: a racing change to the same SR's disks makes the decision be taken again.
//!
//! Its `physical_utilisation` (what its storage has used, as the driver last measured it, by
//! `SR.scan` / `SR.update` or at first start) follows the same Txns between measures: up by
//! what a new or grown disk takes, down by what a destroyed one took, as xapi's file SR
//! updates its figures after each VDI operation. A Txn that sets the figure itself (a scan)
//! keeps what it set.

use std::collections::{BTreeMap, BTreeSet};

use api_spec::Value;

use crate::vm::operations::Draft;

/// Sets the `virtual_allocation` of every SR whose VDIs `draft` creates, destroys, moves or
/// resizes to what their sizes add up to once it is applied, and moves its
/// `physical_utilisation` by what those VDIs take more or less, unless it is among `measured`
/// (SRs whose figure the Txn sets itself).
pub(crate) fn settle(draft: &mut Draft, measured: &BTreeSet<String>) {
    let view = draft.view();
    let mut srs = BTreeSet::new();
    let mut used: BTreeMap<String, i64> = BTreeMap::new();
    for (class, vdi) in view.touched() {
        if class != "VDI" {
            continue;
        }
        // A moved or destroyed VDI leaves the SR the replica has it in.
        let row = view.replica().get("VDI", vdi);
        let before = row.and_then(|row| row.get("SR")).and_then(Value::as_str);
        let after = view.field("VDI", vdi, "SR").and_then(Value::as_str);
        let took = row
            .and_then(|row| row.get("physical_utilisation"))
            .and_then(Value::as_int);
        let takes = view
            .field("VDI", vdi, "physical_utilisation")
            .and_then(Value::as_int);
        if let Some(sr) = before {
            *used.entry(sr.to_owned()).or_default() -= took.unwrap_or(0).max(0);
        }
        if let Some(sr) = after {
            *used.entry(sr.to_owned()).or_default() += takes.unwrap_or(0).max(0);
        }
        srs.extend(before.into_iter().chain(after));
    }
    let srs: Vec<String> = srs.into_iter().map(str::to_owned).collect();
    for sr in srs {
        settle_sr(draft, &sr);
    }
    for (sr, delta) in used {
        if delta != 0 && !measured.contains(&sr) {
            move_utilisation(draft, &sr, delta);
        }
    }
}

/// Moves the `physical_utilisation` of `sr` (if it exists) by `delta` bytes, within 0 and its
/// `physical_size` (when that is known).
fn move_utilisation(draft: &mut Draft, sr: &str, delta: i64) {
    let view = draft.view();
    if !view.exists("SR", sr) {
        return;
    }
    let now = view.int("SR", sr, "physical_utilisation");
    let size = view.int("SR", sr, "physical_size");
    let mut moved = now.saturating_add(delta).max(0);
    if size > 0 {
        moved = moved.min(size);
    }
    draft.require_unchanged("SR", sr, "physical_utilisation");
    if moved != now {
        draft.update("SR", sr, "physical_utilisation", Value::Int(moved));
    }
}

/// Sets the `virtual_allocation` of `sr` (if it exists once `draft` is applied) to what the
/// sizes of its VDIs add up to then.
pub(crate) fn settle_sr(draft: &mut Draft, sr: &str) {
    let view = draft.view();
    if !view.exists("SR", sr) {
        return;
    }
    let total = view
        .children("VDI", "SR", sr)
        .iter()
        .fold(0i64, |total, vdi| {
            total.saturating_add(view.int("VDI", vdi, "virtual_size").max(0))
        });
    draft.require_unchanged("SR", sr, "virtual_allocation");
    if draft.view().int("SR", sr, "virtual_allocation") != total {
        draft.update("SR", sr, "virtual_allocation", Value::Int(total));
    }
}

#[cfg(test)]
mod tests {
    use api_spec::NULL_REF;

    use crate::testing::{TestPool, s};

    /// The SR's figure follows its disks: up by a created disk and a copy made into it, up
    /// by a resize, down by a destroy; an SR whose disks a call does not touch keeps its own.
    #[tokio::test]
    async fn an_srs_virtual_allocation_adds_up_its_disks() {
        let pool = TestPool::new();
        let session = pool.login().await;
        // `new_disk` makes its disk in the first SR: the only one yet.
        let vdi = pool.new_disk(&session, "data").await;
        let sr = pool.text("VDI", &vdi, "SR");
        let gib = 1i64 << 30;
        let before = pool
            .refs("VDI")
            .iter()
            .filter(|other| pool.text("VDI", other, "SR") == sr && **other != vdi)
            .map(|other| pool.field("VDI", other, "virtual_size"))
            .map(|size| size.and_then(|v| v.as_int()).unwrap_or(0))
            .sum::<i64>();
        let allocation = |sr: &str| pool.field("SR", sr, "virtual_allocation");
        assert_eq!(allocation(&sr), Some(api_spec::Value::Int(before + gib)));
        let other_sr = pool.new_file_sr(&session, &pool.host, "/srv/other").await;
        pool.call_as(
            &session,
            "VDI.resize",
            vec![s(&vdi), api_spec::Value::Int(3 * gib)],
        )
        .await
        .expect("resized");
        assert_eq!(
            allocation(&sr),
            Some(api_spec::Value::Int(before + 3 * gib))
        );
        pool.call_as(
            &session,
            "VDI.copy",
            vec![s(&vdi), s(&other_sr), s(NULL_REF), s(NULL_REF)],
        )
        .await
        .expect("copied");
        assert_eq!(allocation(&other_sr), Some(api_spec::Value::Int(3 * gib)));
        assert_eq!(
            allocation(&sr),
            Some(api_spec::Value::Int(before + 3 * gib))
        );
        pool.call_as(&session, "VDI.destroy", vec![s(&vdi)])
            .await
            .expect("destroyed");
        assert_eq!(allocation(&sr), Some(api_spec::Value::Int(before)));
    }

    /// The SR's `physical_utilisation` moves by what a created disk takes and back by its
    /// destroy (a scan's measure standing over it: `tests/storage/sr_life.rs`).
    #[tokio::test]
    async fn an_srs_physical_utilisation_follows_its_disks_between_scans() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let sr = pool.refs("SR").remove(0);
        let used = || pool.field("SR", &sr, "physical_utilisation");
        let before = used().and_then(|v| v.as_int()).expect("a figure");
        let vdi = pool.new_disk(&session, "data").await;
        let takes = pool
            .field("VDI", &vdi, "physical_utilisation")
            .and_then(|v| v.as_int())
            .expect("what the disk takes");
        assert!(takes > 0);
        assert_eq!(used(), Some(api_spec::Value::Int(before + takes)));
        pool.call_as(&session, "VDI.destroy", vec![s(&vdi)])
            .await
            .expect("destroyed");
        assert_eq!(used(), Some(api_spec::Value::Int(before)));
    }
}
