//! The rows of the snapshots, clones and copies of disks that VM and VDI operations make: each
//! a new VDI row with the original's fields but for those a copy does not inherit, and the
//! `location` and sizes of the volume its SR's driver made for it (`volumes.rs`).

use api_spec::{NEVER, NULL_REF, Value, errors};
use db_schema::Op;

use crate::db::record;
use crate::error::Error;
use crate::storage::volumes::{Made, recorded_fields};
use crate::vm::operations::Draft;

/// What a new VDI is of its original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DiskOp<'a> {
    /// A snapshot, in the same SR: `is_a_snapshot`, `snapshot_of` the original.
    Snapshot,
    /// An independent disk in the same SR.
    Clone,
    /// An independent disk in another (or the same) SR.
    Copy { sr: &'a str },
}

/// Creates the row of a snapshot, clone or copy of `vdi` at `now`, on the volume `made` (its
/// uuid and the driver's answer); returns its ref. `HANDLE_INVALID` when `vdi`, or the SR of a copy, has
/// no row.
pub(crate) fn copy_vdi(
    draft: &mut Draft,
    vdi: &str,
    op: DiskOp<'_>,
    now: i64,
    made: &Made,
) -> Result<String, Error> {
    let view = draft.view();
    let Some(source) = view.row("VDI", vdi).cloned() else {
        return Err(errors::handle_invalid("VDI", vdi).into());
    };
    let sr = match op {
        DiskOp::Copy { sr } => sr.to_owned(),
        DiskOp::Snapshot | DiskOp::Clone => view.str("VDI", vdi, "SR").to_owned(),
    };
    if !view.exists("SR", &sr) {
        return Err(errors::handle_invalid("SR", &sr).into());
    }
    draft.require_exists("VDI", vdi);
    draft.require_exists("SR", &sr);
    let is_snapshot = op == DiskOp::Snapshot;
    let mut fields = source;
    let fresh = [
        ("uuid", Value::str(&made.uuid)),
        ("SR", Value::String(sr)),
        ("allowed_operations", Value::Array(Vec::new())),
        ("current_operations", Value::Struct(Default::default())),
        ("is_a_snapshot", Value::Bool(is_snapshot)),
        (
            "snapshot_of",
            Value::str(if is_snapshot { vdi } else { NULL_REF }),
        ),
        (
            "snapshot_time",
            Value::DateTime(if is_snapshot {
                api_spec::datetime::format_unix(now)
            } else {
                NEVER.to_owned()
            }),
        ),
        ("storage_lock", Value::Bool(false)),
        ("managed", Value::Bool(true)),
        ("missing", Value::Bool(false)),
        ("parent", Value::str(NULL_REF)),
        ("metadata_of_pool", Value::str(NULL_REF)),
        ("metadata_latest", Value::Bool(false)),
        ("cbt_enabled", Value::Bool(false)),
    ];
    for (name, value) in fresh.into_iter().chain(recorded_fields(&made.info)) {
        fields.insert(name.to_owned(), value);
    }
    let r = record::new_ref();
    draft.push(Op::Create {
        class: "VDI".to_owned(),
        r#ref: r.clone(),
        fields: record::new_row(record::class("VDI")?, fields),
    });
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestPool;

    /// A disk of 10 GiB in the pool's SR.
    fn disk(draft: &mut Draft, sr: &str) -> String {
        draft.create(
            "VDI",
            [
                ("SR", Value::str(sr)),
                ("name_label", Value::str("root")),
                ("location", Value::str("root.img")),
                ("virtual_size", Value::Int(10 << 30)),
                ("physical_utilisation", Value::Int(1 << 30)),
                ("type", Value::str("system")),
            ],
        )
    }

    /// The volume a driver made at `location`, of 10 GiB with 1 GiB used, for a row of
    /// uuid `uuid`.
    fn made(location: &str, uuid: &str) -> Made {
        let info = host_api::VdiInfo {
            location: location.to_owned(),
            virtual_size_bytes: 10 << 30,
            physical_utilisation_bytes: 1 << 30,
            read_only: false,
        };
        Made {
            volume: crate::storage::volumes::Volume {
                host: NULL_REF.to_owned(),
                sr: host_api::SrSpec::default(),
                location: location.to_owned(),
            },
            info,
            uuid: uuid.to_owned(),
        }
    }

    /// A snapshot points at its original; a clone does not; each gets the location and sizes
    /// of the volume made for it, in the original's SR; a copy goes to the SR asked for.
    #[test]
    fn snapshots_clones_and_copies_are_new_rows() {
        let pool = TestPool::new();
        let sr = pool.refs("SR").remove(0);
        let db = pool.read();
        let mut draft = Draft::new(&db);
        let vdi = disk(&mut draft, &sr);
        let other_sr = draft.create("SR", [("name_label", Value::str("other"))]);
        let snapshot = copy_vdi(
            &mut draft,
            &vdi,
            DiskOp::Snapshot,
            100,
            &made("s", "uuid-s"),
        )
        .expect("snapshot");
        let clone =
            copy_vdi(&mut draft, &vdi, DiskOp::Clone, 100, &made("c", "uuid-c")).expect("clone");
        let copy = copy_vdi(
            &mut draft,
            &vdi,
            DiskOp::Copy { sr: &other_sr },
            100,
            &made("k", "uuid-k"),
        )
        .expect("copy");
        let view = draft.view();
        assert!(view.bool("VDI", &snapshot, "is_a_snapshot"));
        assert_eq!(view.str("VDI", &snapshot, "snapshot_of"), vdi);
        assert_eq!(
            view.field("VDI", &snapshot, "snapshot_time"),
            Some(&Value::DateTime(api_spec::datetime::format_unix(100)))
        );
        assert!(!view.bool("VDI", &clone, "is_a_snapshot"));
        assert_eq!(view.str("VDI", &clone, "snapshot_of"), NULL_REF);
        for (new, location) in [(&snapshot, "s"), (&clone, "c"), (&copy, "k")] {
            assert_eq!(view.str("VDI", new, "location"), location);
            assert_eq!(view.str("VDI", new, "uuid"), format!("uuid-{location}"));
            assert_eq!(view.int("VDI", new, "virtual_size"), 10 << 30);
            assert_eq!(view.int("VDI", new, "physical_utilisation"), 1 << 30);
            assert_eq!(view.str("VDI", new, "name_label"), "root");
        }
        assert_eq!(view.str("VDI", &clone, "SR"), sr);
        assert_eq!(view.str("VDI", &copy, "SR"), other_sr);
        let missing = copy_vdi(
            &mut draft,
            &vdi,
            DiskOp::Copy { sr: NULL_REF },
            100,
            &made("m", "uuid-m"),
        );
        assert_eq!(
            missing.map_err(crate::error::to_api_error),
            Err(errors::handle_invalid("SR", NULL_REF))
        );
    }
}
