//! The custom messages of `VDI` that need no storage backend yet (`storage/`): `create`
//! (which gives the disk its `location`), `snapshot`, `clone` and `copy`, each one Txn that
//! makes a new VDI row.

use std::collections::BTreeMap;

use api_spec::classes::vdi::VdiOperation;
use api_spec::{NULL_REF, Value, errors};

use crate::call::ctx::{Args, Ctx};
use crate::call::generic;
use crate::error::Error;
use crate::storage::vdi_copies::{DiskOp, copy_vdi};
use crate::vm::operations::Draft;

/// `VDI.create`: the generic constructor, with a `location` of its own in its SR (its uuid).
pub(super) async fn create(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let class = args.class();
    let given = args.fields("args")?.clone();
    let (r, _) = ctx
        .master
        .decide(|db| {
            let (r, mut txn) = generic::create_txn(db, class, given.clone(), BTreeMap::new())?;
            if let Some(fields) = generic::created_fields(&mut txn) {
                let uuid = fields.get("uuid").cloned().unwrap_or(Value::str(""));
                fields.insert("location".to_owned(), uuid);
            }
            Ok((txn, r))
        })
        .await?;
    Ok(Value::String(r))
}

/// `VDI.destroy`: refused while a VBD has the disk attached (`VDI_IN_USE [vdi; destroy]`);
/// the VBDs that point at it go with it, as xapi destroys them.
pub(super) async fn destroy(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let vdi = args.str("self")?;
    ctx.master
        .decide(|db| {
            let mut draft = Draft::new(db);
            if !draft.view().exists("VDI", vdi) {
                return Err(errors::handle_invalid("VDI", vdi).into());
            }
            draft.require_unchanged("VDI", vdi, "VBDs");
            for vbd in draft.view().children("VBD", "VDI", vdi) {
                if draft.view().bool("VBD", &vbd, "currently_attached") {
                    return Err(errors::vdi_in_use(vdi, VdiOperation::Destroy).into());
                }
                draft.require_unchanged("VBD", &vbd, "currently_attached");
                draft.destroy("VBD", &vbd);
            }
            draft.destroy("VDI", vdi);
            Ok((draft.into_txn(), ()))
        })
        .await?;
    tracing::debug!(vdi = %vdi, "disk destroyed");
    Ok(crate::call::ctx::void())
}

/// Makes the snapshot, clone or copy of `vdi` that `op` says, in one Txn.
async fn new_disk(ctx: &Ctx, vdi: &str, op: DiskOp<'_>) -> Result<Value, Error> {
    let now = ctx.now();
    let (r, _) = ctx
        .master
        .decide(|db| {
            let mut draft = Draft::new(db);
            let r = copy_vdi(&mut draft, vdi, op, now)?;
            Ok((draft.into_txn(), r))
        })
        .await?;
    tracing::debug!(vdi = %vdi, new = %r, operation = ?op, "disk copied");
    Ok(Value::String(r))
}

/// `VDI.snapshot`: a snapshot of the disk in its SR (`driver_params` are for storage
/// backends, and unused).
pub(super) async fn snapshot(ctx: Ctx, args: Args) -> Result<Value, Error> {
    new_disk(&ctx, args.str("vdi")?, DiskOp::Snapshot).await
}

/// `VDI.clone`: an independent disk made from this one, in its SR.
pub(super) async fn clone(ctx: Ctx, args: Args) -> Result<Value, Error> {
    new_disk(&ctx, args.str("vdi")?, DiskOp::Clone).await
}

/// `VDI.copy`: a new disk in `sr` made from this one; or, given `into_vdi`, that disk, which
/// must be at least as large (`VDI_TOO_SMALL`). `base_vdi` (a delta's base) needs no work
/// without data.
pub(super) async fn copy(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (vdi, sr, into) = (args.str("vdi")?, args.str("sr")?, args.str("into_vdi")?);
    if into == NULL_REF {
        return new_disk(&ctx, vdi, DiskOp::Copy { sr }).await;
    }
    let db = ctx.db();
    let size = |r: &str| {
        db.get("VDI", r)
            .map(|row| row.get("virtual_size").and_then(Value::as_int).unwrap_or(0))
            .ok_or_else(|| Error::from(errors::handle_invalid("VDI", r)))
    };
    let (needed, available) = (size(vdi)?, size(into)?);
    if available < needed {
        return Err(errors::vdi_too_small(into, needed).into());
    }
    Ok(Value::str(into))
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::testing::{TestPool, s};

    /// A 1 GiB user disk in the pool's SR, made through `VDI.create`.
    async fn disk(pool: &TestPool, session: &str, name: &str) -> String {
        let sr = pool.refs("SR").remove(0);
        let record: BTreeMap<String, Value> = [
            ("name_label", s(name)),
            ("SR", s(&sr)),
            ("virtual_size", Value::Int(1 << 30)),
            ("type", s("user")),
            ("sharable", Value::Bool(false)),
            ("read_only", Value::Bool(false)),
            ("other_config", Value::Struct(BTreeMap::new())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let vdi = pool
            .call_as(session, "VDI.create", vec![Value::Struct(record)])
            .await
            .expect("a VDI");
        vdi.as_str().expect("a ref").to_owned()
    }

    /// A created VDI has its uuid as location; a snapshot, a clone and a copy are new VDIs
    /// with their own location, the snapshot pointing at its original.
    #[tokio::test]
    async fn create_snapshot_clone_and_copy_make_new_disks() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vdi = disk(&pool, &session, "data").await;
        assert_eq!(
            pool.text("VDI", &vdi, "location"),
            pool.text("VDI", &vdi, "uuid")
        );
        let sr = pool.text("VDI", &vdi, "SR");
        let empty = Value::Struct(BTreeMap::new());
        let mut made = Vec::new();
        for (method, args) in [
            ("VDI.snapshot", vec![s(&vdi), empty.clone()]),
            ("VDI.clone", vec![s(&vdi), empty]),
            ("VDI.copy", vec![s(&vdi), s(&sr), s(NULL_REF), s(NULL_REF)]),
        ] {
            let new = pool.call_as(&session, method, args).await.expect(method);
            let new = new.as_str().expect("a ref").to_owned();
            assert_ne!(new, vdi, "{method}");
            assert_eq!(pool.text("VDI", &new, "name_label"), "data", "{method}");
            assert_eq!(
                pool.text("VDI", &new, "location"),
                pool.text("VDI", &new, "uuid")
            );
            made.push(new);
        }
        assert_eq!(
            pool.field("VDI", &made[0], "is_a_snapshot"),
            Some(Value::Bool(true))
        );
        assert_eq!(
            pool.field("VDI", &vdi, "snapshots"),
            Some(Value::Array(vec![s(&made[0])]))
        );
        assert_eq!(pool.text("VDI", &made[1], "snapshot_of"), NULL_REF);
    }

    /// A disk attached to a running VM is not destroyed (`VDI_IN_USE`); once detached it is,
    /// with the VBD that pointed at it.
    #[tokio::test]
    async fn destroy_refuses_attached_disks_and_takes_their_vbds() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        let (vbd, vdi) = pool.add_disk(&session, &vm, "1").await;
        pool.call_as(&session, "VBD.plug", vec![s(&vbd)])
            .await
            .expect("plugged");
        let destroy = || pool.call_as(&session, "VDI.destroy", vec![s(&vdi)]);
        assert_eq!(destroy().await, Err(errors::vdi_in_use(&vdi, "destroy")));
        pool.call_as(&session, "VBD.unplug", vec![s(&vbd)])
            .await
            .expect("unplugged");
        assert_eq!(destroy().await, Ok(s("")));
        let db = pool.read();
        assert!(db.get("VDI", &vdi).is_none() && db.get("VBD", &vbd).is_none());
    }

    /// A copy into a smaller disk is `VDI_TOO_SMALL`; into a large enough one, it answers that
    /// disk; a copy to an SR that does not exist is `HANDLE_INVALID`.
    #[tokio::test]
    async fn copies_check_their_target() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let big = disk(&pool, &session, "big").await;
        let small = disk(&pool, &session, "small").await;
        pool.write("VDI", &small, &[("virtual_size", Value::Int(1 << 20))]);
        let copy = |vdi: &str, sr: &str, into: &str| {
            pool.call_as(
                &session,
                "VDI.copy",
                vec![s(vdi), s(sr), s(NULL_REF), s(into)],
            )
        };
        assert_eq!(
            copy(&big, NULL_REF, &small).await,
            Err(errors::vdi_too_small(&small, 1 << 30))
        );
        assert_eq!(copy(&small, NULL_REF, &big).await, Ok(s(&big)));
        assert_eq!(
            copy(&big, "OpaqueRef:nowhere", NULL_REF).await,
            Err(errors::handle_invalid("SR", "OpaqueRef:nowhere"))
        );
    }
}
