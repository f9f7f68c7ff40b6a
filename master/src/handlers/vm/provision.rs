//! `VM.provision`: a template made into a VM with the disks its `other_config:disks` asks
//! for, in xapi's XML (`<provision><disk device="0" size="…" sr="" bootable="true"
//! type="system"/></provision>`): each disk a new VDI (in the SR named by uuid, or the pool's
//! default SR when none is named), its volume made by that SR's storage driver first
//! (`storage/volumes.rs`), and a VBD. The key goes once the disks are made, and the VM is no
//! longer a template, as in xapi.

use std::collections::BTreeMap;

use api_spec::classes::vm::VmOperation;
use api_spec::{NULL_REF, Value, errors};
use db_schema::Db;
use host_api::VdiInfo;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use crate::call::ctx::{Args, Ctx, void};
use crate::db::record;
use crate::error::Error;
use crate::handlers::vbd::add_vbd;
use crate::storage::volumes;
use crate::vm::operations::{self, Draft, Overlay};

/// The `other_config` key of the disks to make.
const DISKS_KEY: &str = "disks";
/// The `other_config` key of xapi's post-install script, which goes with the disks.
const POST_INSTALL_KEY: &str = "postinstall";
/// The VDI types a provisioned disk may have (any other is `system`, as in xapi).
const DISK_TYPES: [&str; 5] = ["system", "user", "ephemeral", "suspend", "crashdump"];

/// One disk `other_config:disks` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DiskRequest {
    /// The VBD's `userdevice`.
    device: String,
    size_bytes: i64,
    /// The SR's uuid; empty for the pool's default SR.
    sr: String,
    is_bootable: bool,
    vdi_type: &'static str,
}

/// The disks of xapi's provision XML; `None` when it is not that XML.
fn parse_disks(xml: &str) -> Option<Vec<DiskRequest>> {
    let mut reader = Reader::from_str(xml);
    let mut disks = Vec::new();
    let mut depth = 0;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) if depth == 0 && e.name().as_ref() == "provision" => depth = 1,
            Event::Empty(e) if depth == 0 && e.name().as_ref() == "provision" => depth = -1,
            Event::Empty(e) if depth == 1 && e.name().as_ref() == "disk" => disks.push(disk(&e)?),
            Event::Start(e) if depth == 1 && e.name().as_ref() == "disk" => {
                disks.push(disk(&e)?);
                depth = 2;
            }
            Event::End(e) if depth == 2 && e.name().as_ref() == "disk" => depth = 1,
            Event::End(e) if depth == 1 && e.name().as_ref() == "provision" => depth = -1,
            Event::Text(t) if t.xml10_content().trim().is_empty() => {}
            Event::Decl(_) | Event::Comment(_) => {}
            Event::Eof if depth == -1 => return Some(disks),
            _ => return None,
        }
    }
}

/// The request of one `<disk …/>` element.
fn disk(element: &BytesStart<'_>) -> Option<DiskRequest> {
    let mut attributes = BTreeMap::new();
    for attribute in element.attributes() {
        let attribute = attribute.ok()?;
        let value = attribute.normalized_value(XmlVersion::Implicit1_0).ok()?;
        attributes.insert(attribute.key.as_ref().to_owned(), value.into_owned());
    }
    let vdi_type = attributes.get("type").map(String::as_str);
    Some(DiskRequest {
        device: attributes.get("device")?.clone(),
        size_bytes: attributes.get("size")?.parse().ok()?,
        sr: attributes.get("sr")?.clone(),
        is_bootable: attributes.get("bootable")? == "true",
        vdi_type: DISK_TYPES
            .into_iter()
            .find(|t| Some(*t) == vdi_type)
            .unwrap_or("system"),
    })
}

/// The SR a disk goes to: the one named by uuid (`UUID_INVALID` if there is none), else the
/// pool's default SR (`DEFAULT_SR_NOT_FOUND` if it has none).
fn disk_sr(db: &Db, draft: &Draft, uuid: &str) -> Result<String, Error> {
    if !uuid.is_empty() {
        return db
            .ref_by_uuid("SR", uuid)
            .map(str::to_owned)
            .ok_or_else(|| errors::uuid_invalid("SR", uuid).into());
    }
    let view = draft.view();
    let pool = view.refs("pool").into_iter().next().unwrap_or_default();
    let sr = view.str("pool", &pool, "default_SR");
    if view.exists("SR", sr) {
        Ok(sr.to_owned())
    } else {
        let sr = if sr.is_empty() { NULL_REF } else { sr };
        Err(errors::default_sr_not_found(sr).into())
    }
}

/// `VM.provision`: see the module comment. A template that asks for no disks is just made a
/// VM.
pub(in crate::handlers) async fn provision(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let vm = args.str("vm")?;
    let planned = {
        let db = ctx.db();
        let draft = Draft::new(&db);
        operations::check(draft.view(), vm, VmOperation::Provision)?;
        let mut planned = Vec::new();
        for request in requests(draft.view(), vm)? {
            let size = volumes::size_bytes("size", request.size_bytes)?;
            planned.push((disk_sr(&db, &draft, &request.sr)?, size));
        }
        planned
    };
    let made = volumes::make_each(&ctx, planned, |(sr, size)| {
        let ctx = &ctx;
        async move { volumes::create(ctx, &sr, size).await }
    })
    .await?;
    let infos: Vec<VdiInfo> = made.iter().map(|m| m.info.clone()).collect();
    let now = ctx.now();
    let commit = ctx.master.decide(|db| {
        let mut draft = Draft::new(db);
        let disks = provision_txn(db, &mut draft, vm, now, &infos)?;
        Ok((draft.into_txn(), disks))
    });
    let (disks, _) = volumes::commit_or_undo(&ctx, &made, commit).await?;
    tracing::debug!(vm = %vm, disks, "VM provisioned");
    Ok(void())
}

/// The disks the template `vm` asks for (`other_config:disks`).
fn requests(view: &Overlay, vm: &str) -> Result<Vec<DiskRequest>, Error> {
    let other_config = view.string_map("VM", vm, "other_config");
    match other_config.get(DISKS_KEY) {
        Some(xml) => parse_disks(xml)
            .ok_or_else(|| errors::invalid_value(format!("other_config:{DISKS_KEY}"), xml).into()),
        None => Ok(Vec::new()),
    }
}

/// Adds the provisioning of `vm` to `draft`, each disk asked for on the volume of `volumes`
/// at its index; returns how many disks it makes.
fn provision_txn(
    db: &Db,
    draft: &mut Draft,
    vm: &str,
    now: i64,
    volumes: &[VdiInfo],
) -> Result<usize, Error> {
    operations::check(draft.view(), vm, VmOperation::Provision)?;
    for field in ["power_state", "current_operations", "other_config"] {
        draft.require_unchanged("VM", vm, field);
    }
    let requests = requests(draft.view(), vm)?;
    if requests.len() != volumes.len() {
        // The template changed since the volumes were made: another call won the race.
        let reason = "the template's disks changed during the provision";
        return Err(errors::operation_not_allowed(reason).into());
    }
    let vm_uuid = draft.view().str("VM", vm, "uuid").to_owned();
    for (request, made) in requests.iter().zip(volumes) {
        let sr = disk_sr(db, draft, &request.sr)?;
        draft.require_exists("SR", &sr);
        let [location, virtual_size, physical_utilisation] = volumes::recorded_fields(made);
        let vdi = draft.create(
            "VDI",
            [
                ("uuid", Value::String(record::new_uuid())),
                location,
                virtual_size,
                physical_utilisation,
                ("name_label", Value::str(request.device.as_str())),
                (
                    "name_description",
                    Value::str("Created by template provisioner"),
                ),
                ("SR", Value::String(sr)),
                ("type", Value::str(request.vdi_type)),
                ("managed", Value::Bool(true)),
                (
                    "sm_config",
                    Value::Struct(BTreeMap::from([(
                        "vmhint".to_owned(),
                        Value::String(vm_uuid.clone()),
                    )])),
                ),
            ],
        );
        let vbd = BTreeMap::from([
            ("VM".to_owned(), Value::str(vm)),
            ("VDI".to_owned(), Value::String(vdi.clone())),
            (
                "userdevice".to_owned(),
                Value::String(request.device.clone()),
            ),
            ("bootable".to_owned(), Value::Bool(request.is_bootable)),
            ("mode".to_owned(), Value::str("RW")),
            ("type".to_owned(), Value::str("Disk")),
            (
                "unpluggable".to_owned(),
                Value::Bool(request.vdi_type != "system"),
            ),
            ("empty".to_owned(), Value::Bool(false)),
            (
                "other_config".to_owned(),
                Value::Struct(BTreeMap::from([("owner".to_owned(), Value::str(""))])),
            ),
        ]);
        let vbd = add_vbd(draft, vbd)?;
        let device = draft.view().str("VBD", &vbd, "userdevice").to_owned();
        draft.update("VDI", &vdi, "name_label", Value::String(device));
    }
    for key in [DISKS_KEY, POST_INSTALL_KEY] {
        draft.map_remove("VM", vm, "other_config", key);
    }
    draft.set("VM", vm, "is_a_template", Value::Bool(false));
    let metrics = draft.view().str("VM", vm, "metrics").to_owned();
    if draft.view().exists("VM_metrics", &metrics) {
        let now = Value::DateTime(api_spec::datetime::format_unix(now));
        draft.update("VM_metrics", &metrics, "install_time", now);
    }
    Ok(requests.len())
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::testing::{TestPool, s};

    /// xapi's XML gives its disks, a missing type means `system`, and anything else is not
    /// provision XML.
    #[test]
    fn provision_xml_gives_its_disks() {
        let xml = r#"<provision><disk device="0" size="10737418240" sr="" bootable="true" type="system"/><disk device="1" size="1024" sr="u" bootable="false"></disk></provision>"#;
        let disks = parse_disks(xml).expect("disks");
        assert_eq!(
            disks,
            [
                DiskRequest {
                    device: "0".to_owned(),
                    size_bytes: 10 << 30,
                    sr: String::new(),
                    is_bootable: true,
                    vdi_type: "system",
                },
                DiskRequest {
                    device: "1".to_owned(),
                    size_bytes: 1024,
                    sr: "u".to_owned(),
                    is_bootable: false,
                    vdi_type: "system",
                },
            ]
        );
        assert_eq!(parse_disks("<provision/>"), Some(Vec::new()));
        for bad in [
            "",
            "<disks/>",
            r#"<provision><disk device="0"/></provision>"#,
            r#"<provision><disk device="0" size="x" sr="" bootable="true"/></provision>"#,
            "<provision>",
        ] {
            assert_eq!(parse_disks(bad), None, "{bad}");
        }
    }

    /// A clone of the Debian template, not yet made a VM.
    async fn clone(pool: &TestPool, session: &str) -> String {
        let template = pool.read().refs_by_name_label("VM", "Debian Bookworm 12")[0].to_owned();
        let vm = pool
            .call_as(session, "VM.clone", vec![s(&template), s("new")])
            .await
            .expect("cloned");
        vm.as_str().expect("a ref").to_owned()
    }

    /// Provisioning a template's clone gives it its 10 GiB system disk in the default SR (a
    /// volume its driver made) as a bootable VBD at 0, removes the disks key and makes it a VM.
    #[tokio::test]
    async fn provision_makes_the_disks_the_template_asks_for() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = clone(&pool, &session).await;
        let reply = pool.call_as(&session, "VM.provision", vec![s(&vm)]).await;
        assert_eq!(reply, Ok(s("")));
        let vbds = pool.field("VM", &vm, "VBDs").expect("VBDs");
        let vbds = vbds.as_array().expect("a set");
        assert_eq!(vbds.len(), 1);
        let vbd = vbds[0].as_str().expect("a ref");
        assert_eq!(pool.text("VBD", vbd, "userdevice"), "0");
        assert_eq!(pool.field("VBD", vbd, "bootable"), Some(Value::Bool(true)));
        assert_eq!(
            pool.field("VBD", vbd, "unpluggable"),
            Some(Value::Bool(false))
        );
        assert_eq!(pool.text("VBD", vbd, "mode"), "RW");
        let vdi = pool.text("VBD", vbd, "VDI");
        assert_eq!(
            pool.field("VDI", &vdi, "virtual_size"),
            Some(Value::Int(10 << 30))
        );
        assert_eq!(pool.text("VDI", &vdi, "SR"), pool.refs("SR")[0]);
        assert_eq!(pool.text("VDI", &vdi, "type"), "system");
        assert_eq!(pool.text("VDI", &vdi, "name_label"), "0");
        let sr_uuid = pool.text("SR", &pool.refs("SR")[0], "uuid");
        let volumes: Vec<String> = pool
            .agent
            .vdis(&sr_uuid)
            .into_iter()
            .map(|v| v.location)
            .collect();
        assert_eq!(volumes, [pool.text("VDI", &vdi, "location")]);
        let other_config = pool.field("VM", &vm, "other_config").expect("a map");
        assert!(
            !other_config
                .as_struct()
                .expect("a map")
                .contains_key(DISKS_KEY)
        );
        assert_eq!(
            pool.field("VM", &vm, "is_a_template"),
            Some(Value::Bool(false))
        );
        assert_eq!(pool.text("VM", &vm, "power_state"), "Halted");
    }

    /// A VM is not provisioned (`ONLY_PROVISION_TEMPLATE`); bad XML is `INVALID_VALUE`; a pool
    /// without a default SR cannot place a disk asking for none (`DEFAULT_SR_NOT_FOUND`).
    #[tokio::test]
    async fn provision_errors_are_xapis() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "vm").await;
        let reply = pool.call_as(&session, "VM.provision", vec![s(&vm)]).await;
        assert_eq!(reply, Err(errors::only_provision_template()));
        let bad = clone(&pool, &session).await;
        pool.call_as(
            &session,
            "VM.remove_from_other_config",
            vec![s(&bad), s(DISKS_KEY)],
        )
        .await
        .expect("removed");
        pool.call_as(
            &session,
            "VM.add_to_other_config",
            vec![s(&bad), s(DISKS_KEY), s("<provision>")],
        )
        .await
        .expect("added");
        let reply = pool.call_as(&session, "VM.provision", vec![s(&bad)]).await;
        assert_eq!(
            reply.map_err(|e| e.code),
            Err(api_spec::errors::INVALID_VALUE.to_owned())
        );
        let vm = clone(&pool, &session).await;
        let pool_ref = pool.refs("pool").remove(0);
        pool.write("pool", &pool_ref, &[("default_SR", s(NULL_REF))]);
        let reply = pool.call_as(&session, "VM.provision", vec![s(&vm)]).await;
        assert_eq!(reply, Err(errors::default_sr_not_found(NULL_REF)));
        assert!(
            pool.field("VM", &vm, "VBDs")
                .and_then(|v| v.as_array().map(<[Value]>::len))
                == Some(0)
        );
    }
}
