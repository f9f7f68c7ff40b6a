//! The commands on a VM's drives, with xapi's xe names and parameters: its CDs (`vm-cd-add`,
//! `vm-cd-remove`, `vm-cd-insert`, `vm-cd-eject`, `vm-cd-list`, a CD named by the name-label
//! of an ISO in an ISO library; the lookups are in `cds.rs`), a new disk (`vm-disk-add`), and
//! VBDs by uuid (`vbd-create`, `vbd-insert`).

use api_spec::{NULL_REF, Value};

use super::cds::{cd_drives, cd_list, cd_name, field, iso_named, only_one};
use super::storage::{constructor_record, create, object, pool_field, size_param};
use super::vm::{selected_vms, vm_command};
use super::{Action, Command};
use crate::args::Params;
use crate::client::Session;
use crate::error::XeError;
use crate::render::Lookup;
use crate::tasks::call_and_wait;

/// A drive operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveAction {
    CdAdd,
    CdRemove,
    CdInsert,
    CdEject,
    CdList,
    DiskAdd,
    VbdCreate,
    VbdInsert,
}

/// The name-label and description of a disk `vm-disk-add` makes, as xapi's xe names it.
const NEW_DISK_NAME: &str = "Created by xe";

/// Adds the commands to the table.
pub fn commands(out: &mut Vec<Command>) {
    use DriveAction::*;
    for (name, action, required, optional, help) in [
        (
            "vm-cd-add",
            CdAdd,
            &["cd-name", "device"][..],
            &[][..],
            "Adds to the selected VM(s) a CD drive at device= (a free userdevice, such as 3) \
             holding the ISO cd-name= (its name-label in an ISO library).",
        ),
        (
            "vm-cd-remove",
            CdRemove,
            &["cd-name"],
            &[],
            "Removes from the selected VM(s) the CD drive holding the ISO cd-name=.",
        ),
        (
            "vm-cd-insert",
            CdInsert,
            &["cd-name"],
            &[],
            "Puts the ISO cd-name= in the empty CD drive of the selected VM(s) (with several, \
             use vbd-insert).",
        ),
        (
            "vm-cd-eject",
            CdEject,
            &[],
            &[],
            "Takes the CD out of the CD drive of the selected VM(s) (with several, use \
             vbd-eject).",
        ),
        (
            "vm-cd-list",
            CdList,
            &[],
            &["vbd-params", "vdi-params"],
            "Lists the CD drives of the selected VM(s) and the ISOs in them; vbd-params= and \
             vdi-params= choose the fields shown.",
        ),
        (
            "vm-disk-add",
            DiskAdd,
            &["disk-size", "device"],
            &["sr-uuid"],
            "Adds to the selected VM(s) a new disk of disk-size= (bytes, or with a suffix: KiB, \
             MiB, GiB, TiB) at device=, in the SR sr-uuid= or the pool's default SR.",
        ),
    ] {
        out.push(vm_command(name, Action::Drive(action), optional, help).required(required));
    }
    out.push(
        Command::new(
            "vbd-create",
            Action::Drive(VbdCreate),
            "Makes a VBD of the VM vm-uuid= at device=, for the VDI vdi-uuid= (without it, an \
             empty CD drive); type= Disk (the default), CD or Floppy; mode= RW (the default) or \
             RO; prints its uuid.",
        )
        .required(&["vm-uuid", "device"])
        .optional(&["vdi-uuid", "bootable", "type", "mode", "unpluggable"])
        .on("vbd"),
    );
    out.push(
        Command::new(
            "vbd-insert",
            Action::Drive(VbdInsert),
            "Puts the VDI vdi-uuid= in the empty CD drive the VBD uuid= is.",
        )
        .required(&["uuid", "vdi-uuid"])
        .on("vbd"),
    );
}

/// Runs a drive command.
pub async fn run(
    action: DriveAction,
    command: &Command,
    session: &Session,
    params: &Params,
) -> Result<(), XeError> {
    match action {
        DriveAction::VbdCreate => return vbd_create(session, params).await,
        DriveAction::VbdInsert => {
            let vbd = object(session, "VBD", params, "uuid").await?;
            let vdi = object(session, "VDI", params, "vdi-uuid").await?;
            call_and_wait(session, "VBD.insert", vec![vbd, vdi]).await?;
            return Ok(());
        }
        _ => {}
    }
    let mut lookup = Lookup::default();
    let vms = selected_vms(session, command, params, &mut lookup).await?;
    let iso = match action {
        DriveAction::CdAdd | DriveAction::CdInsert => Some(iso_named(session, params).await?),
        _ => None,
    };
    if action == DriveAction::CdList {
        return cd_list(session, &vms, params).await;
    }
    if action == DriveAction::DiskAdd {
        return disk_add(session, &vms, params).await;
    }
    for (vm, record) in &vms {
        let vm = Vm::new(vm, record);
        let cds = cd_drives(session, record).await?;
        match (action, &iso) {
            (DriveAction::CdAdd, Some(iso)) => {
                let device = params.get("device").unwrap_or_default();
                let drive = vec![
                    ("VM", Value::str(vm.r)),
                    ("VDI", Value::str(iso.as_str())),
                    ("userdevice", Value::str(device)),
                    ("mode", Value::str("RO")),
                    ("type", Value::str("CD")),
                ];
                add_drive(session, &vm, drive).await?;
            }
            (DriveAction::CdInsert, Some(iso)) => {
                let empty = cds.iter().filter(|(_, cd)| field(cd, "empty") == "true");
                let vbd = only_one(empty, &vm.name, "empty CD drive", "vbd-insert")?;
                let args = vec![Value::str(vbd), Value::str(iso.as_str())];
                call_and_wait(session, "VBD.insert", args).await?;
            }
            (DriveAction::CdEject, _) => {
                let vbd = only_one(cds.iter(), &vm.name, "CD drive", "vbd-eject")?;
                call_and_wait(session, "VBD.eject", vec![Value::str(vbd)]).await?;
            }
            (DriveAction::CdRemove, _) => {
                let name = params.get("cd-name").unwrap_or_default();
                let mut holding = Vec::new();
                for (vbd, cd) in &cds {
                    if cd_name(session, cd).await? == name {
                        holding.push(vbd.clone());
                    }
                }
                let Some(vbd) = holding.first() else {
                    let drive = format!("CD drive holding '{name}'");
                    return Err(XeError::NoDrive { vm: vm.name, drive });
                };
                call_and_wait(session, "VBD.destroy", vec![Value::str(vbd.as_str())]).await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A selected VM: its ref, and what a message about it shows.
struct Vm<'a> {
    r: &'a str,
    name: String,
    is_running: bool,
}

impl<'a> Vm<'a> {
    fn new(r: &'a str, record: &Value) -> Vm<'a> {
        Vm {
            r,
            name: field(record, "name_label"),
            is_running: field(record, "power_state") == "Running",
        }
    }
}

/// Makes a VBD of `fields` on `vm` (a drive that can be unplugged, not bootable, unless the
/// fields say otherwise) and plugs it into a running VM; its ref.
async fn add_drive(
    session: &Session,
    vm: &Vm<'_>,
    fields: Vec<(&str, Value)>,
) -> Result<Value, XeError> {
    let mut all = vec![
        ("bootable", Value::Bool(false)),
        ("unpluggable", Value::Bool(true)),
        ("empty", Value::Bool(false)),
    ];
    all.extend(fields);
    let record = constructor_record("VBD", all);
    let vbd = call_and_wait(session, "VBD.create", vec![record]).await?;
    // xapi's xe plugs it at once too, and keeps a drive that cannot be plugged yet.
    if vm.is_running
        && let Err(e) = call_and_wait(session, "VBD.plug", vec![vbd.clone()]).await
    {
        eprintln!(
            "xe: warning: the drive was added to {} but not plugged ({e}); it is there at its \
             next start",
            vm.name
        );
    }
    Ok(vbd)
}

/// `vm-disk-add`: a new VDI, then its drive, for each VM; a VDI whose drive cannot be made is
/// destroyed again.
async fn disk_add(
    session: &Session,
    vms: &[(String, Value)],
    params: &Params,
) -> Result<(), XeError> {
    let size = Value::Int(size_param(params, "disk-size")?);
    let sr = match params.get("sr-uuid") {
        Some(_) => object(session, "SR", params, "sr-uuid").await?,
        None => default_sr(session).await?,
    };
    for (vm, record) in vms {
        let vm = Vm::new(vm, record);
        let hint = Value::Struct([("vmhint".to_owned(), Value::str(field(record, "uuid")))].into());
        let disk = constructor_record(
            "VDI",
            vec![
                ("name_label", Value::str(NEW_DISK_NAME)),
                ("name_description", Value::str(NEW_DISK_NAME)),
                ("SR", sr.clone()),
                ("virtual_size", size.clone()),
                ("type", Value::str("user")),
                ("sm_config", hint),
            ],
        );
        let vdi = call_and_wait(session, "VDI.create", vec![disk]).await?;
        let owner = Value::Struct([("owner".to_owned(), Value::str(""))].into());
        let device = params.get("device").unwrap_or_default();
        let drive = vec![
            ("VM", Value::str(vm.r)),
            ("VDI", vdi.clone()),
            ("userdevice", Value::str(device)),
            ("mode", Value::str("RW")),
            ("type", Value::str("Disk")),
            ("other_config", owner),
        ];
        if let Err(e) = add_drive(session, &vm, drive).await {
            let _ = call_and_wait(session, "VDI.destroy", vec![vdi]).await;
            return Err(e);
        }
    }
    Ok(())
}

/// The pool's default SR, or why there is none.
async fn default_sr(session: &Session) -> Result<Value, XeError> {
    let sr = pool_field(session, "default_SR").await?;
    if sr == NULL_REF {
        return Err(XeError::InvalidValue {
            name: "sr-uuid".to_owned(),
            reason: "the pool has no default SR: give one".to_owned(),
        });
    }
    Ok(Value::String(sr))
}

/// `vbd-create`: `VBD.create` of a record from the parameters given.
async fn vbd_create(session: &Session, params: &Params) -> Result<(), XeError> {
    let fields = vec![
        ("type", Value::str("Disk")),
        ("mode", Value::str("RW")),
        ("bootable", Value::Bool(false)),
        ("unpluggable", Value::Bool(true)),
        ("empty", Value::Bool(!params.has("vdi-uuid"))),
        ("VDI", Value::str(NULL_REF)),
    ];
    let named = [
        ("vm-uuid", "VM"),
        ("vdi-uuid", "VDI"),
        ("device", "userdevice"),
        ("bootable", "bootable"),
        ("type", "type"),
        ("mode", "mode"),
        ("unpluggable", "unpluggable"),
    ];
    create(session, "VBD", fields, &named, params).await
}
