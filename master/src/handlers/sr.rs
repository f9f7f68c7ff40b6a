//! `SR.scan` and `SR.update`: the SR's VDIs as its storage driver finds them, through the agent of a host that
//! has the SR attached (`StorageAction::Scan`). A VDI the driver holds and the DB does not
//! gets a row named after its file, as xapi introduces a volume it finds; the sizes of one the
//! DB has are brought up to date. A row whose volume the driver does not hold is left as it is
//! (a disk made before its SR's driver held volumes, say). How an SR is made and removed is in
//! `sr/lifecycle.rs`.

mod lifecycle;

pub(super) use lifecycle::{create, destroy, forget, introduce};

use api_spec::{Value, errors};
use host_api::{ActionResult, HostAction, StorageAction, VdiInfo};

use crate::call::ctx::{Args, Ctx, void};
use crate::error::Error;
use crate::storage::allocation;
use crate::storage::sr_spec::where_attached;
use crate::storage::volumes::{self, record_answer, recorded_fields};
use crate::vm::operations::Draft;

/// `SR.scan(sr)`: asks a host where the SR is attached (a live one first) what VDIs it
/// holds and what it takes, then records them in one Txn. `SR_HAS_NO_PBDS [sr]` when no PBD
/// of the SR is attached.
pub(super) async fn scan(ctx: Ctx, args: Args) -> Result<Value, Error> {
    scan_sr(&ctx, args.str("sr")?).await?;
    Ok(void())
}

/// Scans `sr` (see `scan`).
pub(super) async fn scan_sr(ctx: &Ctx, sr: &str) -> Result<(), Error> {
    let (host, spec) = {
        let db = ctx.db();
        let draft = Draft::new(&db);
        where_attached(draft.view(), sr)?
    };
    let action = HostAction::Storage(StorageAction::Scan { sr: spec });
    let answer = ctx.run_on_host(&host, action).await?;
    let ActionResult::Scanned { vdis: found, usage } = answer else {
        let message = format!("the host agent answered a scan of SR {sr} with another result");
        return Err(errors::internal_error(message).into());
    };
    let (added, _) = ctx
        .master
        .decide(|db| {
            let mut draft = Draft::new(db);
            if !draft.view().exists("SR", sr) {
                return Err(errors::handle_invalid("SR", sr).into());
            }
            // Two scans at once must not both add a row for the same volume.
            draft.require_unchanged("SR", sr, "VDIs");
            let added = record(&mut draft, sr, &found);
            // Written even when unchanged: what a scan measures stands over what its Txn's
            // disks would move (`allocation::settle`).
            for (field, bytes) in [
                ("physical_size", usage.physical_size_bytes),
                ("physical_utilisation", usage.physical_utilisation_bytes),
            ] {
                draft.set("SR", sr, field, volumes::size(bytes));
            }
            allocation::settle_sr(&mut draft, sr);
            Ok((draft.into_txn(), added))
        })
        .await?;
    tracing::info!(sr = %sr, host = %host, found = found.len(), added, ?usage, "SR scanned");
    Ok(())
}

/// `SR.update(sr)`: as `SR.scan`, the sizes of the SR and its VDIs brought up to date from
/// its driver.
pub(super) async fn update(ctx: Ctx, args: Args) -> Result<Value, Error> {
    scan(ctx, args).await
}

/// Gives each VDI of `found` that `sr` has no row for (by `location`) a row, and brings the
/// sizes of the others up to date; how many rows it made.
fn record(draft: &mut Draft, sr: &str, found: &[VdiInfo]) -> usize {
    let rows: Vec<(String, String)> = draft
        .view()
        .children("VDI", "SR", sr)
        .into_iter()
        .map(|vdi| {
            let location = draft.view().str("VDI", &vdi, "location").to_owned();
            (location, vdi)
        })
        .collect();
    let mut added = 0;
    for vdi in found {
        // A known row keeps its location (the one it was found by), so only sizes change.
        match rows.iter().find(|(location, _)| *location == vdi.location) {
            Some((_, r)) => record_answer(draft, r, vdi),
            None => {
                // Named after its file, as xapi's ISO libraries name an ISO: what `xe
                // vm-cd-add cd-name=` finds it by.
                let fields = [
                    ("name_label", Value::str(&vdi.location)),
                    ("SR", Value::str(sr)),
                    ("read_only", Value::Bool(vdi.read_only)),
                    ("type", Value::str("user")),
                    ("managed", Value::Bool(true)),
                ];
                // Under the uuid its file is named after, unless a VDI has it already.
                let uuid = volumes::uuid_named_by(&vdi.location)
                    .filter(|uuid| draft.view().replica().ref_by_uuid("VDI", uuid).is_none())
                    .map(|uuid| ("uuid", Value::String(uuid)));
                let fields = fields.into_iter().chain(uuid).chain(recorded_fields(vdi));
                draft.create("VDI", fields);
                added += 1;
            }
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use api_spec::Value;
    use host_api::{HostAction, StorageAction, VdiInfo};

    use super::*;
    use crate::host_link::LinkFailure;
    use crate::testing::{ActionKind, FAKE_SR_BYTES, TestPool, s};

    fn vdi(location: &str, virtual_size_bytes: u64) -> VdiInfo {
        VdiInfo {
            location: location.to_owned(),
            virtual_size_bytes,
            physical_utilisation_bytes: virtual_size_bytes / 2,
            read_only: false,
        }
    }

    /// The VDIs of `sr` by location, with their virtual sizes.
    fn sizes(pool: &TestPool, sr: &str) -> Vec<(String, i64)> {
        let mut rows: Vec<(String, i64)> = pool
            .refs("VDI")
            .into_iter()
            .filter(|vdi| pool.text("VDI", vdi, "SR") == sr)
            .map(|vdi| {
                let size = match pool.field("VDI", &vdi, "virtual_size") {
                    Some(Value::Int(size)) => size,
                    other => panic!("a size, got {other:?}"),
                };
                (pool.text("VDI", &vdi, "location"), size)
            })
            .collect();
        rows.sort();
        rows
    }

    /// A scan asks the SR's host with the SR's uuid, type and path; a VDI the driver holds
    /// and the DB does not gets a row named after its file, a known one gets its sizes, and a
    /// row the driver does not hold stays.
    #[tokio::test]
    async fn a_scan_records_what_the_driver_holds() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let sr = pool.refs("SR").remove(0);
        let uuid = pool.text("SR", &sr, "uuid");
        let known = pool.new_disk(&session, "known").await;
        let known_location = pool.text("VDI", &known, "location");
        let kept = pool.new_disk(&session, "kept").await;
        let kept_location = pool.text("VDI", &kept, "location");
        pool.agent.put_vdi(&uuid, vdi(&known_location, 8 << 30));
        pool.agent.put_vdi(&uuid, vdi("found.img", 4 << 30));
        let kept_size = sizes(&pool, &sr)
            .into_iter()
            .find(|(location, _)| *location == kept_location)
            .map(|(_, size)| size)
            .expect("the kept VDI");
        assert_eq!(
            pool.call_as(&session, "SR.scan", vec![s(&sr)]).await,
            Ok(s(""))
        );
        let mut expected = vec![
            ("found.img".to_owned(), 4 << 30),
            (known_location, 8 << 30),
            (kept_location, kept_size),
        ];
        expected.sort();
        assert_eq!(sizes(&pool, &sr), expected);
        let found = pool
            .refs("VDI")
            .into_iter()
            .find(|vdi| pool.text("VDI", vdi, "location") == "found.img")
            .expect("the found VDI has a row");
        assert_eq!(
            pool.field("VDI", &found, "physical_utilisation"),
            Some(Value::Int(2 << 30))
        );
        // The SR takes what its driver says, and allocates what its disks add up to.
        let used: u64 = pool
            .agent
            .vdis(&uuid)
            .iter()
            .map(|vdi| vdi.physical_utilisation_bytes)
            .sum();
        let allocated: i64 = expected.iter().map(|(_, size)| size).sum();
        for (field, value) in [
            ("physical_size", FAKE_SR_BYTES as i64),
            ("physical_utilisation", used as i64),
            ("virtual_allocation", allocated),
        ] {
            assert_eq!(
                pool.field("SR", &sr, field),
                Some(Value::Int(value)),
                "{field}"
            );
        }
        assert_eq!(pool.text("VDI", &found, "name_label"), "found.img");
        let scans: Vec<_> = pool
            .agent
            .received()
            .into_iter()
            .filter_map(|r| match r.action {
                HostAction::Storage(StorageAction::Scan { sr }) => Some((r.host, sr)),
                _ => None,
            })
            .collect();
        let [(host, spec)] = scans.as_slice() else {
            panic!("one scan, got {scans:?}");
        };
        assert_eq!(host, &pool.host);
        assert_eq!(
            (spec.uuid.as_str(), spec.sr_type.as_str()),
            (uuid.as_str(), pool.text("SR", &sr, "type").as_str())
        );
        assert!(!spec.location.is_empty());
        assert_eq!(
            pool.call_as(&session, "SR.scan", vec![s(&sr)]).await,
            Ok(s(""))
        );
        assert_eq!(sizes(&pool, &sr).len(), 3, "a second scan adds nothing");
    }

    /// An unknown SR is `HANDLE_INVALID`, one with no attached PBD `SR_HAS_NO_PBDS`, both
    /// before any host is asked; an unreachable host is `HOST_OFFLINE`.
    #[tokio::test]
    async fn a_scan_needs_an_attached_sr_on_a_reachable_host() {
        let pool = TestPool::new();
        let session = pool.login().await;
        assert_eq!(
            pool.call_as(&session, "SR.scan", vec![s("OpaqueRef:nowhere")])
                .await,
            Err(errors::handle_invalid("SR", "OpaqueRef:nowhere"))
        );
        let sr = pool.refs("SR").remove(0);
        let pbd = pool.ref_list("SR", &sr, "PBDs").remove(0);
        pool.write("PBD", &pbd, &[("currently_attached", Value::Bool(false))]);
        assert_eq!(
            pool.call_as(&session, "SR.scan", vec![s(&sr)]).await,
            Err(errors::sr_has_no_pbds(&sr))
        );
        assert!(!pool.agent.kinds().contains(&ActionKind::ScanSr));
        pool.write("PBD", &pbd, &[("currently_attached", Value::Bool(true))]);
        pool.agent
            .fail_next(ActionKind::ScanSr, LinkFailure::HostOffline);
        assert_eq!(
            pool.call_as(&session, "SR.scan", vec![s(&sr)]).await,
            Err(errors::host_offline(&pool.host))
        );
    }
}
