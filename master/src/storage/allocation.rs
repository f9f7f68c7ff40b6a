//! An SR's `virtual_allocation`: the sum of the `virtual_size` of its VDIs, kept true by every
//! Txn (`operations::complete` calls `settle`) rather than by each call that makes, resizes,
//! moves or destroys a disk. The Txn requires the SR's figure to be, when applied, what it was
//! computed from: a racing change to the same SR's disks makes the decision be taken again.

use std::collections::BTreeSet;

use api_spec::Value;

use crate::vm::operations::Draft;

/// Sets the `virtual_allocation` of every SR whose VDIs `draft` creates, destroys, moves or
/// resizes to what their sizes add up to once it is applied.
pub(crate) fn settle(draft: &mut Draft) {
    let view = draft.view();
    let mut srs = BTreeSet::new();
    for (class, vdi) in view.touched() {
        if class != "VDI" {
            continue;
        }
        // A moved or destroyed VDI leaves the SR the replica has it in.
        let before = view.replica().get("VDI", vdi).and_then(|row| row.get("SR"));
        let after = view.field("VDI", vdi, "SR");
        srs.extend(before.into_iter().chain(after).filter_map(Value::as_str));
    }
    let srs: Vec<String> = srs.into_iter().map(str::to_owned).collect();
    for sr in srs {
        settle_sr(draft, &sr);
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
}
