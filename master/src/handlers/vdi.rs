//! The custom messages of `VDI`: `create`, `destroy`, `resize`, `resize_online` (removed
//! from xapi; here it grows a disk a running guest writes too), `snapshot`, `clone` and
//! `copy`. Each asks the storage driver
//! of a host where the disk's SR is attached first (`storage/volumes.rs`) and records its
//! answer in one Txn after; a failed driver call changes nothing, and a volume whose row is
//! not committed is destroyed again. `set_name_label` and `set_name_description` change the
//! row alone.

use std::collections::BTreeMap;
use std::slice;

use api_spec::classes::vdi::VdiOperation;
use api_spec::{NULL_REF, Value, errors};

use crate::call::ctx::{Args, Ctx, void};
use crate::call::generic;
use crate::error::Error;
use crate::storage::vdi_copies::{DiskOp, copy_vdi};
use crate::storage::volumes::{self, commit_or_undo, recorded_fields, size_bytes};
use crate::vm::operations::{Draft, Overlay};

/// `VDI.create`: the generic constructor, its record checked before the SR's driver makes the
/// volume, whose `location` and sizes the row records.
pub(super) async fn create(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let class = args.class();
    let given = args.fields("args")?.clone();
    let (sr, size) = {
        let db = ctx.db();
        generic::create_txn(&db, class, given.clone(), BTreeMap::new())?;
        let sr = given.get("SR").and_then(Value::as_str).unwrap_or(NULL_REF);
        let size = given.get("virtual_size").and_then(Value::as_int);
        (sr.to_owned(), size.unwrap_or(0))
    };
    let made = volumes::create(&ctx, &sr, size_bytes("virtual_size", size)?).await?;
    let commit = ctx.master.decide(|db| {
        let (r, mut txn) = generic::create_txn(db, class, given.clone(), BTreeMap::new())?;
        if let Some(fields) = generic::created_fields(&mut txn) {
            for (name, value) in recorded_fields(&made.info) {
                fields.insert(name.to_owned(), value);
            }
            fields.insert("uuid".to_owned(), Value::str(&made.uuid));
            // A disk its SR's driver made is the SR's to manage, as xapi records it.
            fields.insert("managed".to_owned(), Value::Bool(true));
        }
        Ok((txn, r))
    });
    let (r, _) = commit_or_undo(&ctx, slice::from_ref(&made), commit).await?;
    tracing::debug!(vdi = %r, sr = %sr, location = %made.info.location, "disk created");
    Ok(Value::String(r))
}

/// `VDI.set_name_label`. xapi also tells the SR's driver, for SRs that keep names; oxapi's
/// drivers keep none.
pub(super) async fn set_name_label(ctx: Ctx, args: Args) -> Result<Value, Error> {
    set_name(&ctx, &args, "name_label").await
}

/// `VDI.set_name_description`, as `set_name_label`.
pub(super) async fn set_name_description(ctx: Ctx, args: Args) -> Result<Value, Error> {
    set_name(&ctx, &args, "name_description").await
}

async fn set_name(ctx: &Ctx, args: &Args, field: &str) -> Result<Value, Error> {
    let (vdi, value) = (args.str("self")?, args.str("value")?);
    ctx.set_field("VDI", vdi, field, Value::str(value)).await?;
    Ok(void())
}

/// `VDI_IN_USE [vdi; operation]` when a VBD has `vdi` attached.
fn check_detached(view: &Overlay, vdi: &str, operation: VdiOperation) -> Result<(), Error> {
    let vbds = view.children("VBD", "VDI", vdi);
    if vbds
        .iter()
        .any(|vbd| view.bool("VBD", vbd, "currently_attached"))
    {
        return Err(errors::vdi_in_use(vdi, operation).into());
    }
    Ok(())
}

/// `VDI.destroy`: refused while a VBD has the disk attached (`VDI_IN_USE [vdi; destroy]`);
/// the driver deletes the volume, then the VBDs that point at it go with the row, as xapi
/// destroys them.
pub(super) async fn destroy(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let vdi = args.str("self")?;
    let volume = {
        let db = ctx.db();
        let view = Overlay::new(&db);
        check_detached(&view, vdi, VdiOperation::Destroy)?;
        volumes::volume_of(&view, vdi)?
    };
    volumes::destroy(&ctx, &volume).await?;
    ctx.master
        .decide(|db| {
            let mut draft = Draft::new(db);
            if !draft.view().exists("VDI", vdi) {
                return Err(errors::handle_invalid("VDI", vdi).into());
            }
            draft.require_unchanged("VDI", vdi, "VBDs");
            check_detached(draft.view(), vdi, VdiOperation::Destroy)?;
            for vbd in draft.view().children("VBD", "VDI", vdi) {
                draft.require_unchanged("VBD", &vbd, "currently_attached");
                draft.destroy("VBD", &vbd);
            }
            draft.destroy("VDI", vdi);
            Ok((draft.into_txn(), ()))
        })
        .await?;
    tracing::debug!(vdi = %vdi, location = %volume.location, "disk destroyed");
    Ok(crate::call::ctx::void())
}

/// `VDI.resize`: grows the disk, which no VBD may have attached (`VDI_IN_USE [vdi;
/// resize]`); a smaller size is refused by the driver as xapi's are
/// (`SR_BACKEND_FAILURE_79`), changing nothing.
pub(super) async fn resize(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (vdi, size) = (args.str("vdi")?, args.int("size")?);
    let size = size_bytes("size", size)?;
    check_detached(&Overlay::new(&ctx.db()), vdi, VdiOperation::Resize)?;
    grow(&ctx, vdi, size).await
}

/// `VDI.resize_online`: as `resize`, and for a disk a running guest has attached read-write
/// too, which the host the guest runs on grows under it (the guest sees its disk grow). A disk
/// attached read-only only is `VDI_IN_USE`.
pub(super) async fn resize_online(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (vdi, size) = (args.str("vdi")?, args.int("size")?);
    grow(&ctx, vdi, size_bytes("size", size)?).await
}

/// Has the driver grow `vdi` to `size` bytes and records its answer.
async fn grow(ctx: &Ctx, vdi: &str, size: u64) -> Result<Value, Error> {
    let info = volumes::resize(ctx, vdi, size).await?;
    ctx.master
        .decide(|db| {
            let mut draft = Draft::new(db);
            if !draft.view().exists("VDI", vdi) {
                return Err(errors::handle_invalid("VDI", vdi).into());
            }
            draft.require_exists("VDI", vdi);
            volumes::record_answer(&mut draft, vdi, &info);
            Ok((draft.into_txn(), ()))
        })
        .await?;
    tracing::debug!(vdi = %vdi, virtual_size_bytes = info.virtual_size_bytes, "disk resized");
    Ok(crate::call::ctx::void())
}

/// Makes the snapshot, clone or copy of `vdi` that `op` says: its volume through the driver,
/// then its row in one Txn.
async fn new_disk(ctx: &Ctx, vdi: &str, op: DiskOp<'_>) -> Result<Value, Error> {
    let made = volumes::copy(ctx, vdi, op).await?;
    let now = ctx.now();
    let commit = ctx.master.decide(|db| {
        let mut draft = Draft::new(db);
        let r = copy_vdi(&mut draft, vdi, op, now, &made)?;
        Ok((draft.into_txn(), r))
    });
    let (r, _) = commit_or_undo(ctx, slice::from_ref(&made), commit).await?;
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

/// `VDI.copy`: a new disk in `sr` made from this one (within its SR a clone; to another SR,
/// a new disk there filled with this one's data, host to host: `volumes::copy`); or, given
/// `into_vdi`, that disk, which must be at least as large (`VDI_TOO_SMALL`), and is left as it
/// is (no data is copied into it yet). `base_vdi` (a delta's base) is not used.
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
    use crate::db::ProposeError;
    use crate::host_link::LinkFailure;
    use crate::testing::{ActionKind, TestPool, s};
    use host_api::{AgentFailure, HostAction, StorageAction};

    /// A 1 GiB user disk in the pool's SR, made through `VDI.create`.
    async fn disk(pool: &TestPool, session: &str, name: &str) -> String {
        let vdi = pool
            .call_as(session, "VDI.create", vec![record(pool, name, 1 << 30)])
            .await
            .expect("a VDI");
        vdi.as_str().expect("a ref").to_owned()
    }

    /// The record of a user disk of `size` bytes in the pool's SR, for `VDI.create`.
    fn record(pool: &TestPool, name: &str, size: i64) -> Value {
        let sr = pool.refs("SR").remove(0);
        let record: BTreeMap<String, Value> = [
            ("name_label", s(name)),
            ("SR", s(&sr)),
            ("virtual_size", Value::Int(size)),
            ("type", s("user")),
            ("sharable", Value::Bool(false)),
            ("read_only", Value::Bool(false)),
            ("other_config", Value::Struct(BTreeMap::new())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Value::Struct(record)
    }

    /// A VDI's name and description change on its row, without asking any host; an unknown
    /// VDI is `HANDLE_INVALID`.
    #[tokio::test]
    async fn names_change_on_the_row_alone() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vdi = disk(&pool, &session, "data").await;
        let asked = pool.agent.received().len();
        for (method, field) in [
            ("VDI.set_name_label", "name_label"),
            ("VDI.set_name_description", "name_description"),
        ] {
            let reply = pool.call_as(&session, method, vec![s(&vdi), s("new")]);
            assert_eq!(reply.await, Ok(s("")), "{method}");
            assert_eq!(pool.text("VDI", &vdi, field), "new", "{method}");
            let unknown = vec![s("OpaqueRef:nowhere"), s("x")];
            assert_eq!(
                pool.call_as(&session, method, unknown).await,
                Err(errors::handle_invalid("VDI", "OpaqueRef:nowhere"))
            );
        }
        assert_eq!(pool.agent.received().len(), asked);
    }

    /// The locations of the volumes the fake agent holds in the pool's SR.
    fn volumes(pool: &TestPool) -> Vec<String> {
        let sr = pool.refs("SR").remove(0);
        let vdis = pool.agent.vdis(&pool.text("SR", &sr, "uuid"));
        vdis.into_iter().map(|vdi| vdi.location).collect()
    }

    /// A created VDI records the location and sizes of the volume its SR's driver made; a
    /// snapshot, a clone and a copy are new volumes and new VDIs with their location, the
    /// snapshot pointing at its original.
    #[tokio::test]
    async fn create_snapshot_clone_and_copy_make_new_disks() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vdi = disk(&pool, &session, "data").await;
        assert_eq!(volumes(&pool), [pool.text("VDI", &vdi, "location")]);
        assert_eq!(
            pool.field("VDI", &vdi, "physical_utilisation"),
            Some(Value::Int(1 << 29)),
            "as the fake driver answered"
        );
        let sr = pool.text("VDI", &vdi, "SR");
        let empty = Value::Struct(BTreeMap::new());
        let mut made = Vec::new();
        for (method, args, kind) in [
            (
                "VDI.snapshot",
                vec![s(&vdi), empty.clone()],
                ActionKind::SnapshotVdi,
            ),
            ("VDI.clone", vec![s(&vdi), empty], ActionKind::CloneVdi),
            (
                "VDI.copy",
                vec![s(&vdi), s(&sr), s(NULL_REF), s(NULL_REF)],
                ActionKind::CloneVdi,
            ),
        ] {
            let new = pool.call_as(&session, method, args).await.expect(method);
            let new = new.as_str().expect("a ref").to_owned();
            assert_ne!(new, vdi, "{method}");
            assert_eq!(pool.text("VDI", &new, "name_label"), "data", "{method}");
            assert_eq!(pool.agent.kinds().last(), Some(&kind), "{method}");
            let location = pool.text("VDI", &new, "location");
            assert_eq!(volumes(&pool).last(), Some(&location), "{method}");
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

    /// A copy to another SR is a new volume there, filled by an import on that SR's host of
    /// what the original's host exports to it under one token; the new row has the uuid the
    /// import was told. An export that fails fails the copy with its error and destroys the
    /// new volume.
    #[tokio::test]
    async fn a_copy_to_another_sr_moves_the_data_host_to_host() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vdi = disk(&pool, &session, "data").await;
        let other = pool.add_host("other", 8 << 30);
        let sr = pool.new_file_sr(&session, &other, "/srv/other").await;
        let copy = pool
            .call_as(
                &session,
                "VDI.copy",
                vec![s(&vdi), s(&sr), s(NULL_REF), s(NULL_REF)],
            )
            .await
            .expect("a copy");
        let copy = copy.as_str().expect("a ref").to_owned();
        let received = pool.agent.received();
        let import = received.iter().find_map(|r| match &r.action {
            HostAction::Storage(StorageAction::Import { disk, token, .. }) => Some((disk, token)),
            _ => None,
        });
        let export = received.iter().find_map(|r| match &r.action {
            HostAction::Storage(StorageAction::Export {
                disk,
                to_host,
                token,
                ..
            }) => Some((disk, to_host, token)),
            _ => None,
        });
        let (Some((taken, taken_token)), Some((sent, to_host, sent_token))) = (import, export)
        else {
            panic!("an import and an export, got {received:?}");
        };
        assert_eq!(sent.location, pool.text("VDI", &vdi, "location"));
        assert_eq!(to_host, &other);
        assert_eq!(sent_token, taken_token);
        assert_eq!(taken.vdi_uuid, pool.text("VDI", &copy, "uuid"));
        assert_eq!(taken.location, pool.text("VDI", &copy, "location"));
        assert_eq!(pool.text("VDI", &copy, "SR"), sr);

        let rows = pool.refs("VDI").len();
        pool.agent.fail_next(
            ActionKind::ExportVdi,
            AgentFailure::VdiInUse {
                sr: pool.text("SR", &pool.text("VDI", &vdi, "SR"), "uuid"),
                location: pool.text("VDI", &vdi, "location"),
                operation: host_api::StorageOperation::CloneVdi,
            },
        );
        let refused = pool
            .call_as(
                &session,
                "VDI.copy",
                vec![s(&vdi), s(&sr), s(NULL_REF), s(NULL_REF)],
            )
            .await
            .expect_err("the export fails");
        assert_eq!(refused.code, errors::VDI_IN_USE);
        assert_eq!(pool.refs("VDI").len(), rows);
        assert_eq!(pool.agent.kinds().last(), Some(&ActionKind::DestroyVdi));
        assert_eq!(pool.agent.vdis(&pool.text("SR", &sr, "uuid")).len(), 1);
    }

    /// The disk of a guest running on one host, on an SR every host reaches, is snapshotted
    /// by that host, where the guest can be moved onto the new top of its chain.
    #[tokio::test]
    async fn a_running_guests_disk_is_snapshotted_where_the_guest_runs() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let other = pool.add_host("other", 8 << 30);
        let args = crate::testing::sr_create_args(&pool.host, "file", "/srv/shared", true);
        let sr = pool.call_as(&session, "SR.create", args).await;
        let sr = sr.expect("an SR").as_str().expect("a ref").to_owned();
        let vm = pool.new_vm(&session, "web").await;
        let (_, vdi) = pool.add_disk_on(&session, &vm, "0", &sr).await;
        let empty = || Value::Struct(BTreeMap::new());
        let snapshot_host = || async {
            pool.call_as(&session, "VDI.snapshot", vec![s(&vdi), empty()])
                .await
                .expect("a snapshot");
            let received = pool.agent.received();
            received.into_iter().rev().find_map(|r| match r.action {
                HostAction::Storage(StorageAction::SnapshotVdi { .. }) => Some(r.host),
                _ => None,
            })
        };
        // Halted, the disk is snapshotted wherever the SR is reached; running, on the guest's
        // host, the other one.
        let idle = snapshot_host().await.expect("a host snapshotted it");
        let guest_host = if idle == other {
            pool.host.clone()
        } else {
            other
        };
        pool.start_on(&session, &vm, &guest_host).await;
        assert_eq!(snapshot_host().await, Some(guest_host.clone()));

        // Copied elsewhere, it is exported from a snapshot taken for the copy, which goes.
        let to_sr = pool
            .new_file_sr(&session, &pool.host, "/srv/elsewhere")
            .await;
        let params = vec![s(&vdi), s(&to_sr), s(NULL_REF), s(NULL_REF)];
        pool.call_as(&session, "VDI.copy", params)
            .await
            .expect("a copy");
        let received = pool.agent.received();
        let exported = received.iter().rev().find_map(|r| match &r.action {
            HostAction::Storage(StorageAction::Export { disk, .. }) => Some((&r.host, disk)),
            _ => None,
        });
        let (from, disk) = exported.expect("an export");
        assert_eq!(from, &guest_host);
        assert_ne!(disk.location, pool.text("VDI", &vdi, "location"));
        let destroyed = received.iter().rev().find_map(|r| match &r.action {
            HostAction::Storage(StorageAction::DestroyVdi { location, .. }) => Some(location),
            _ => None,
        });
        assert_eq!(destroyed, Some(&disk.location), "the copy's snapshot goes");
    }

    /// A driver that fails leaves no row; a Txn that fails after the driver made the volume
    /// destroys the volume again.
    #[tokio::test]
    async fn a_failed_create_leaves_neither_row_nor_volume() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let rows = pool.refs("VDI").len();
        pool.agent
            .fail_next(ActionKind::CreateVdi, LinkFailure::HostOffline);
        let create = || pool.call_as(&session, "VDI.create", vec![record(&pool, "x", 1 << 20)]);
        assert_eq!(create().await, Err(errors::host_offline(&pool.host)));
        assert_eq!(pool.refs("VDI").len(), rows);
        pool.db
            .fail_next_proposal(ProposeError::TooLarge { bytes: 2, limit: 1 });
        assert!(create().await.is_err());
        assert_eq!(pool.refs("VDI").len(), rows);
        assert_eq!(
            pool.agent.kinds(),
            [
                ActionKind::CreateVdi,
                ActionKind::CreateVdi,
                ActionKind::DestroyVdi
            ]
        );
        assert!(volumes(&pool).is_empty());
    }

    /// A VDI on an SR with no attached PBD is neither made nor destroyed
    /// (`SR_HAS_NO_PBDS [sr]`), and no host is asked; a negative size is `INVALID_VALUE`.
    #[tokio::test]
    async fn vdis_need_an_attached_sr_and_a_size() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vdi = disk(&pool, &session, "data").await;
        let sr = pool.refs("SR").remove(0);
        let create = |size| pool.call_as(&session, "VDI.create", vec![record(&pool, "x", size)]);
        assert_eq!(
            create(-1).await,
            Err(errors::invalid_value("virtual_size", -1))
        );
        let pbd = pool.ref_list("SR", &sr, "PBDs").remove(0);
        pool.write("PBD", &pbd, &[("currently_attached", Value::Bool(false))]);
        let actions = pool.agent.kinds().len();
        assert_eq!(create(1 << 20).await, Err(errors::sr_has_no_pbds(&sr)));
        assert_eq!(
            pool.call_as(&session, "VDI.destroy", vec![s(&vdi)]).await,
            Err(errors::sr_has_no_pbds(&sr))
        );
        assert_eq!(
            pool.call_as(&session, "VDI.resize", vec![s(&vdi), Value::Int(2 << 30)])
                .await,
            Err(errors::sr_has_no_pbds(&sr))
        );
        assert_eq!(pool.agent.kinds().len(), actions);
        assert!(pool.read().get("VDI", &vdi).is_some());
    }

    /// A resize grows the disk as the driver says; a shrink is the driver's
    /// `SR_BACKEND_FAILURE_79` and changes nothing; an attached disk is not resized
    /// (`VDI_IN_USE`) but by `resize_online`.
    #[tokio::test]
    async fn resize_grows_detached_disks_and_resize_online_attached_ones() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        let (vbd, vdi) = pool.add_disk(&session, &vm, "1").await;
        let resize = |method, size| pool.call_as(&session, method, vec![s(&vdi), Value::Int(size)]);
        assert_eq!(resize("VDI.resize", 2 << 30).await, Ok(s("")));
        assert_eq!(
            pool.field("VDI", &vdi, "virtual_size"),
            Some(Value::Int(2 << 30))
        );
        let shrink = resize("VDI.resize", 1 << 30).await.expect_err("a shrink");
        assert_eq!(shrink.code, "SR_BACKEND_FAILURE_79");
        assert_eq!(
            pool.field("VDI", &vdi, "virtual_size"),
            Some(Value::Int(2 << 30))
        );
        pool.call_as(&session, "VBD.plug", vec![s(&vbd)])
            .await
            .expect("plugged");
        assert_eq!(
            resize("VDI.resize", 3 << 30).await,
            Err(errors::vdi_in_use(&vdi, "resize"))
        );
        assert_eq!(
            pool.field("VDI", &vdi, "virtual_size"),
            Some(Value::Int(2 << 30))
        );
        assert_eq!(resize("VDI.resize_online", 3 << 30).await, Ok(s("")));
        assert_eq!(
            pool.field("VDI", &vdi, "virtual_size"),
            Some(Value::Int(3 << 30))
        );
    }

    /// A disk attached to a running VM is not destroyed (`VDI_IN_USE`); once detached it is,
    /// its volume first, then its row with the VBD that pointed at it.
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
        let location = pool.text("VDI", &vdi, "location");
        assert!(volumes(&pool).contains(&location));
        assert_eq!(destroy().await, Ok(s("")));
        assert!(!volumes(&pool).contains(&location));
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
