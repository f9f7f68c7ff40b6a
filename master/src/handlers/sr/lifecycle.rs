//! How an SR comes and goes: `SR.create` (the SR's place checked or made by the driver of
//! every host that gets a PBD, then its rows), `SR.introduce` (the row alone), `SR.forget`
//! (the rows go, the data stays) and `SR.destroy` (an empty SR's rows go).

use api_spec::{Value, errors};
use host_api::{HostAction, SrSpec, StorageAction};

use crate::call::ctx::{Args, Ctx};
use crate::db::record::new_uuid;
use crate::error::Error;
use crate::vm::operations::{Draft, Overlay};

/// The SR types `SR.create` makes: directories of qcow2 files (`ext`, `file`) and ISO
/// libraries (`iso`).
const CREATABLE_TYPES: [&str; 3] = ["ext", "file", "iso"];

/// The fields of an SR that `SR.create` and `SR.introduce` take as they are given.
const GIVEN_FIELDS: [&str; 6] = [
    "name_label",
    "name_description",
    "type",
    "content_type",
    "shared",
    "sm_config",
];

/// `SR.create(host, device_config, physical_size, name_label, name_description, type,
/// content_type, shared, sm_config)`: asks the driver of `host`, then (when `shared`) of every
/// other host of the pool, to reach the SR at `device_config:location`, making the directory
/// of a `file` or `ext` SR (an `iso` library must exist); then records the SR and one PBD per
/// host, attached where its host reached the SR, and scans it. `host`'s failure is the call's
/// and records nothing (`SR_BACKEND_FAILURE_47` for a location that is missing or cannot be made); another
/// host's leaves its PBD detached. `SR_UNKNOWN_DRIVER [type]` for another type.
pub(in crate::handlers) async fn create(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let host = args.str("host")?;
    let sr_type = args.str("type")?;
    if !CREATABLE_TYPES.contains(&sr_type) {
        return Err(errors::sr_unknown_driver(sr_type).into());
    }
    let device_config = args.get("device_config")?.clone();
    let location = device_config
        .as_struct()
        .and_then(|config| config.get("location"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let hosts = hosts(&ctx, host, args.bool("shared")?)?;
    let spec = SrSpec {
        uuid: new_uuid(),
        sr_type: sr_type.to_owned(),
        location,
    };
    let mut plugged = Vec::with_capacity(hosts.len());
    for (i, pbd_host) in hosts.iter().enumerate() {
        let action = HostAction::Storage(StorageAction::Plug {
            sr: spec.clone(),
            create: true,
        });
        match ctx.run_on_host(pbd_host, action).await {
            Ok(_) => plugged.push(true),
            Err(err) if i == 0 => return Err(err),
            Err(err) => {
                tracing::warn!(sr = %spec.uuid, host = %pbd_host, error = ?err, "a new SR's PBD left detached");
                plugged.push(false);
            }
        }
    }
    let mut fields = given_fields(&args)?;
    fields.push(("uuid", Value::str(&spec.uuid)));
    fields.push(("physical_size", Value::Int(args.int("physical_size")?)));
    let (sr, _) = ctx
        .master
        .decide(|db| {
            let mut draft = Draft::new(db);
            let sr = draft.create("SR", fields.clone());
            for (pbd_host, attached) in hosts.iter().zip(&plugged) {
                if !draft.view().exists("host", pbd_host) {
                    return Err(errors::handle_invalid("host", pbd_host).into());
                }
                draft.require_exists("host", pbd_host);
                draft.create(
                    "PBD",
                    [
                        ("host", Value::str(pbd_host)),
                        ("SR", Value::str(&sr)),
                        ("device_config", device_config.clone()),
                        ("currently_attached", Value::Bool(*attached)),
                    ],
                );
            }
            Ok((draft.into_txn(), sr))
        })
        .await?;
    tracing::info!(sr = %sr, sr_type, hosts = hosts.len(), "SR created");
    // What the SR holds (an ISO library's files, an existing directory's disks) and what it
    // takes are known from the start; a failed scan leaves that to the next one.
    if let Err(error) = super::scan_sr(&ctx, &sr).await {
        tracing::warn!(sr = %sr, error = %crate::error::to_api_error(error), "a new SR's first scan failed");
    }
    Ok(Value::String(sr))
}

/// `SR.introduce(uuid, name_label, name_description, type, content_type, shared,
/// sm_config)`: the SR's row, without PBDs (`PBD.create` and `PBD.plug` connect it), as xapi
/// records an SR whose data already exists. `UUID_INVALID` for a uuid an SR already has.
pub(in crate::handlers) async fn introduce(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let uuid = match args.str("uuid")? {
        "" => new_uuid(),
        given => given.to_owned(),
    };
    let mut fields = given_fields(&args)?;
    fields.push(("uuid", Value::str(&uuid)));
    let (sr, _) = ctx
        .master
        .decide(|db| {
            if db.ref_by_uuid("SR", &uuid).is_some() {
                return Err(errors::uuid_invalid("SR", &uuid).into());
            }
            let mut draft = Draft::new(db);
            let sr = draft.create("SR", fields.clone());
            Ok((draft.into_txn(), sr))
        })
        .await?;
    tracing::info!(sr = %sr, "SR introduced");
    Ok(Value::String(sr))
}

/// `SR.forget(sr)`: the SR's rows go (its PBDs and VDIs too; a VBD of one of its VDIs is left
/// empty), its data stays where it is. `SR_HAS_PBD [sr]` while a PBD of it is attached.
pub(in crate::handlers) async fn forget(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let sr = args.str("sr")?;
    ctx.master
        .decide(|db| {
            let mut draft = Draft::new(db);
            check_detached(draft.view(), sr)?;
            for vdi in draft.view().children("VDI", "SR", sr) {
                for vbd in draft.view().children("VBD", "VDI", &vdi) {
                    draft.update("VBD", &vbd, "VDI", Value::str(api_spec::NULL_REF));
                    draft.update("VBD", &vbd, "empty", Value::Bool(true));
                }
                draft.destroy("VDI", &vdi);
            }
            remove(&mut draft, sr);
            Ok((draft.into_txn(), ()))
        })
        .await?;
    tracing::info!(sr = %sr, "SR forgotten");
    Ok(Value::String(String::new()))
}

/// `SR.destroy(sr)`: an SR without VDIs goes, with its PBDs; its directory is left (empty of
/// VDIs). `SR_HAS_PBD [sr]` while a PBD of it is attached, then `SR_NOT_EMPTY` while it has a
/// VDI: unlike xapi, the VDIs are not destroyed with it.
pub(in crate::handlers) async fn destroy(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let sr = args.str("sr")?;
    ctx.master
        .decide(|db| {
            let mut draft = Draft::new(db);
            check_detached(draft.view(), sr)?;
            if !draft.view().children("VDI", "SR", sr).is_empty() {
                return Err(errors::sr_not_empty().into());
            }
            draft.require_unchanged("SR", sr, "VDIs");
            remove(&mut draft, sr);
            Ok((draft.into_txn(), ()))
        })
        .await?;
    tracing::info!(sr = %sr, "SR destroyed");
    Ok(Value::String(String::new()))
}

/// The hosts an SR made on `host` gets a PBD on: `host` first, then, when `shared`, every
/// other host of the pool. `HANDLE_INVALID` when `host` names no host.
fn hosts(ctx: &Ctx, host: &str, shared: bool) -> Result<Vec<String>, Error> {
    let db = ctx.db();
    let view = Overlay::new(&db);
    if !view.exists("host", host) {
        return Err(errors::handle_invalid("host", host).into());
    }
    let mut hosts = vec![host.to_owned()];
    if shared {
        hosts.extend(view.refs("host").into_iter().filter(|other| other != host));
    }
    Ok(hosts)
}

/// The fields of `GIVEN_FIELDS`, as the call gives them.
fn given_fields(args: &Args) -> Result<Vec<(&'static str, Value)>, Error> {
    GIVEN_FIELDS
        .iter()
        .map(|name| Ok((*name, args.get(name)?.clone())))
        .collect()
}

/// `HANDLE_INVALID` for an SR that does not exist, `SR_HAS_PBD [sr]` for one with an
/// attached PBD.
fn check_detached(view: &Overlay, sr: &str) -> Result<(), Error> {
    if !view.exists("SR", sr) {
        return Err(errors::handle_invalid("SR", sr).into());
    }
    let attached = view
        .children("PBD", "SR", sr)
        .iter()
        .any(|pbd| view.bool("PBD", pbd, "currently_attached"));
    if attached {
        return Err(errors::sr_has_pbd(sr).into());
    }
    Ok(())
}

/// Destroys `sr`'s row and its PBDs', once no PBD of it was attached meanwhile.
fn remove(draft: &mut Draft, sr: &str) {
    for pbd in draft.view().children("PBD", "SR", sr) {
        draft.require_unchanged("PBD", &pbd, "currently_attached");
        draft.destroy("PBD", &pbd);
    }
    draft.require_unchanged("SR", sr, "PBDs");
    draft.destroy("SR", sr);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use host_api::AgentFailure;

    use super::*;
    use crate::testing::{ActionKind, TestPool, s, sr_create_args};

    /// The SR's PBDs with their hosts and whether they are attached.
    fn pbds(pool: &TestPool, sr: &str) -> Vec<(String, bool)> {
        let mut pbds: Vec<(String, bool)> = pool
            .ref_list("SR", sr, "PBDs")
            .into_iter()
            .map(|pbd| {
                let attached = pool.field("PBD", &pbd, "currently_attached");
                (
                    pool.text("PBD", &pbd, "host"),
                    attached == Some(Value::Bool(true)),
                )
            })
            .collect();
        pbds.sort();
        pbds
    }

    /// A shared SR gets one PBD per host, each plugged by asking its host to make the
    /// directory; the given host is asked first, so its driver's failure is the call's and
    /// records nothing.
    #[tokio::test]
    async fn a_shared_sr_is_plugged_on_every_host() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let other = pool.add_host("other", 8 << 30);
        pool.agent.fail_next(
            ActionKind::PlugSr,
            AgentFailure::SrUnavailable {
                sr: String::new(),
                reason: "no".to_owned(),
            },
        );
        // The given host is asked first, so the failure is the call's.
        let args = sr_create_args(&pool.host, "file", "/srv/shared", true);
        let refused = pool.call_as(&session, "SR.create", args.clone()).await;
        assert_eq!(
            refused.map_err(|err| err.code),
            Err("SR_BACKEND_FAILURE_47".to_owned())
        );
        let srs = pool.refs("SR").len();
        let sr = pool.call_as(&session, "SR.create", args).await;
        let sr = sr.expect("an SR").as_str().expect("a ref").to_owned();
        assert_eq!(pool.refs("SR").len(), srs + 1);
        let mut expected = vec![(pool.host.clone(), true), (other, true)];
        expected.sort();
        assert_eq!(pbds(&pool, &sr), expected);
        assert_eq!(pool.text("SR", &sr, "type"), "file");
        let plugs: Vec<bool> = pool
            .agent
            .received()
            .into_iter()
            .filter_map(|r| match r.action {
                HostAction::Storage(StorageAction::Plug { sr, create }) => {
                    assert_eq!(sr.location, "/srv/shared");
                    Some(create)
                }
                _ => None,
            })
            .collect();
        assert_eq!(plugs, [true, true, true]);
    }

    /// A type without a driver is `SR_UNKNOWN_DRIVER` before any host is asked.
    #[tokio::test]
    async fn an_unknown_type_is_refused() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let args = sr_create_args(&pool.host, "lvmoiscsi", "/x", false);
        assert_eq!(
            pool.call_as(&session, "SR.create", args).await,
            Err(errors::sr_unknown_driver("lvmoiscsi"))
        );
        assert!(!pool.agent.kinds().contains(&ActionKind::PlugSr));
    }

    /// Forget and destroy are `SR_HAS_PBD` while a PBD is attached; then destroy is
    /// `SR_NOT_EMPTY` while a VDI is left, and forget takes the SR's rows, VDIs included.
    #[tokio::test]
    async fn an_sr_goes_only_once_detached() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let args = sr_create_args(&pool.host, "file", "/srv/sr", false);
        let sr = pool.call_as(&session, "SR.create", args).await;
        let sr = sr.expect("an SR").as_str().expect("a ref").to_owned();
        let config = BTreeMap::from([
            ("SR".to_owned(), s(&sr)),
            ("name_label".to_owned(), s("d")),
            ("virtual_size".to_owned(), Value::Int(1 << 20)),
            ("type".to_owned(), s("user")),
            ("sharable".to_owned(), Value::Bool(false)),
            ("read_only".to_owned(), Value::Bool(false)),
            ("other_config".to_owned(), Value::Struct(BTreeMap::new())),
        ]);
        let vdi = pool
            .call_as(&session, "VDI.create", vec![Value::Struct(config)])
            .await;
        let vdi = vdi.expect("a VDI").as_str().expect("a ref").to_owned();
        for method in ["SR.forget", "SR.destroy"] {
            assert_eq!(
                pool.call_as(&session, method, vec![s(&sr)]).await,
                Err(errors::sr_has_pbd(&sr))
            );
        }
        let pbd = pool.ref_list("SR", &sr, "PBDs").remove(0);
        pool.call_as(&session, "PBD.unplug", vec![s(&pbd)])
            .await
            .expect("an unplug");
        assert_eq!(
            pool.call_as(&session, "SR.destroy", vec![s(&sr)]).await,
            Err(errors::sr_not_empty())
        );
        pool.call_as(&session, "SR.forget", vec![s(&sr)])
            .await
            .expect("a forget");
        let db = pool.read();
        assert!(db.get("SR", &sr).is_none());
        assert!(db.get("PBD", &pbd).is_none());
        assert!(db.get("VDI", &vdi).is_none());
    }

    /// An introduced SR has the uuid given and no PBD; that uuid cannot be introduced twice.
    #[tokio::test]
    async fn an_introduced_sr_has_no_pbds() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let uuid = "0f0e0d0c-0b0a-4908-8706-050403020100";
        let args = |uuid: &str| {
            vec![
                s(uuid),
                s("old"),
                s(""),
                s("iso"),
                s("iso"),
                Value::Bool(true),
                Value::Struct(BTreeMap::new()),
            ]
        };
        let sr = pool.call_as(&session, "SR.introduce", args(uuid)).await;
        let sr = sr.expect("an SR").as_str().expect("a ref").to_owned();
        assert_eq!(pool.text("SR", &sr, "uuid"), uuid);
        assert!(pool.ref_list("SR", &sr, "PBDs").is_empty());
        assert_eq!(
            pool.call_as(&session, "SR.introduce", args(uuid)).await,
            Err(errors::uuid_invalid("SR", uuid))
        );
    }
}
