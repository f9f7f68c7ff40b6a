//! A VM's CD drives and the ISOs for them: an ISO found by its name in an ISO library, the CD
//! drives of a VM, the one a command acts on, and `vm-cd-list`.

use api_spec::{NULL_REF, Value};

use super::format;
use super::generic::{columns, json_object, print_records};
use super::vm::devices_of;
use crate::args::Params;
use crate::client::Session;
use crate::error::XeError;
use crate::output::{self, Format};
use crate::render::{self, Lookup};
use crate::views;

/// A text field of a record, as the server sent it ("" when absent).
pub(super) fn field(record: &Value, name: &str) -> String {
    match record.as_struct().and_then(|r| r.get(name)) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// The one drive among `drives` of the VM named `vm`, else why not.
pub(super) fn only_one<'a>(
    drives: impl Iterator<Item = &'a (String, Value)>,
    vm: &str,
    drive: &str,
    command: &'static str,
) -> Result<&'a str, XeError> {
    let drives: Vec<&str> = drives.map(|(r, _)| r.as_str()).collect();
    match drives.as_slice() {
        [one] => Ok(one),
        [] => Err(XeError::NoDrive {
            vm: vm.to_owned(),
            drive: drive.to_owned(),
        }),
        _ => Err(XeError::SeveralDrives {
            vm: vm.to_owned(),
            drive: drive.to_owned(),
            command,
        }),
    }
}

/// The ref of the ISO `cd-name=` names: the VDI of that name-label in an ISO library (an SR
/// whose content-type, or type, is `iso`).
pub(super) async fn iso_named(session: &Session, params: &Params) -> Result<String, XeError> {
    let name = params.get("cd-name").unwrap_or_default();
    let srs = render::all_records(session, "SR").await?;
    let is_library = |sr: &str| {
        srs.get(sr)
            .is_some_and(|r| field(r, "content_type") == "iso" || field(r, "type") == "iso")
    };
    let named = session
        .call("VDI.get_by_name_label", vec![Value::str(name)])
        .await?;
    let mut isos = Vec::new();
    for vdi in named
        .as_array()
        .unwrap_or(&[])
        .iter()
        .filter_map(Value::as_str)
    {
        let sr = session
            .call_str("VDI.get_SR", vec![Value::str(vdi)])
            .await?;
        if is_library(&sr) {
            isos.push(vdi.to_owned());
        }
    }
    let reason = match isos.len() {
        1 => return Ok(isos.remove(0)),
        0 => format!(
            "no ISO library holds an ISO named '{name}' (`xe sr-scan` finds new files; `xe \
             vdi-list sr-uuid=<library>` lists them)"
        ),
        _ => format!("several ISOs are named '{name}': use vbd-create or vbd-insert with uuids"),
    };
    Err(XeError::InvalidValue {
        name: "cd-name".to_owned(),
        reason,
    })
}

/// The CD drives of the VM of `record`: each VBD's ref and record, by userdevice.
pub(super) async fn cd_drives(
    session: &Session,
    record: &Value,
) -> Result<Vec<(String, Value)>, XeError> {
    let mut cds = devices_of(session, "VBD", record).await?;
    cds.retain(|(_, vbd)| field(vbd, "type") == "CD");
    cds.sort_by_cached_key(|(_, cd)| {
        let device = field(cd, "userdevice");
        (device.parse::<u64>().unwrap_or(u64::MAX), device)
    });
    Ok(cds)
}

/// The name of the ISO in a CD drive: `<EMPTY>` for none, as xapi's xe writes it.
pub(super) async fn cd_name(session: &Session, cd: &Value) -> Result<String, XeError> {
    let vdi = field(cd, "VDI");
    if field(cd, "empty") == "true" || vdi == NULL_REF {
        return Ok("<EMPTY>".to_owned());
    }
    session
        .call_str("VDI.get_name_label", vec![Value::String(vdi)])
        .await
}

/// `vm-cd-list`: each CD drive of the VMs and the ISO in it.
pub(super) async fn cd_list(
    session: &Session,
    vms: &[(String, Value)],
    params: &Params,
) -> Result<(), XeError> {
    let view = |name| {
        views::view(name).ok_or_else(|| XeError::UnknownCommand {
            name: name.to_owned(),
        })
    };
    let vbd_columns = columns(
        view("vbd")?,
        params.get("vbd-params").or(Some(CD_VBD_FIELDS)),
    )?;
    let vdi_columns = columns(
        view("vdi")?,
        params.get("vdi-params").or(Some(CD_VDI_FIELDS)),
    )?;
    let mut drives = Vec::new();
    for (_, record) in vms {
        for (vbd, cd) in cd_drives(session, record).await? {
            let vdi = field(&cd, "VDI");
            let iso = match vdi.as_str() {
                NULL_REF | "" => None,
                r => {
                    let iso = session.call("VDI.get_record", vec![Value::str(r)]).await?;
                    Some((vdi.clone(), iso))
                }
            };
            drives.push(((vbd, cd), iso));
        }
    }
    let mut lookup = Lookup::default();
    let cds: Vec<&Value> = drives.iter().map(|((_, cd), _)| cd).collect();
    lookup
        .prepare(session, &vbd_columns, cds.into_iter())
        .await?;
    let isos: Vec<&Value> = drives
        .iter()
        .filter_map(|(_, i)| Some(&i.as_ref()?.1))
        .collect();
    lookup
        .prepare(session, &vdi_columns, isos.into_iter())
        .await?;
    match format(params) {
        Format::Records => {
            for (n, (drive, iso)) in drives.into_iter().enumerate() {
                output::print(&format!("CD {n} VBD:\n"));
                print_records(&vbd_columns, &[drive], &lookup, Format::Records);
                if let Some(iso) = iso {
                    output::print(&format!("CD {n} VDI:\n"));
                    print_records(&vdi_columns, &[iso], &lookup, Format::Records);
                }
            }
        }
        Format::Minimal => {
            let vbds: Vec<(String, Value)> = drives.into_iter().map(|(d, _)| d).collect();
            print_records(&vbd_columns, &vbds, &lookup, Format::Minimal);
        }
        Format::Json => {
            let objects = drives
                .iter()
                .map(|((_, cd), iso)| {
                    serde_json::json!({
                        "vbd": json_object(&vbd_columns, cd, &lookup),
                        "vdi": iso.as_ref().map(|(_, r)| json_object(&vdi_columns, r, &lookup)),
                    })
                })
                .collect();
            output::print(&output::json(&serde_json::Value::Array(objects)));
        }
    }
    Ok(())
}

/// The fields `vm-cd-list` shows of a drive and of its ISO, as xapi's xe chooses them.
const CD_VBD_FIELDS: &str = "uuid,vm-name-label,userdevice,empty";
const CD_VDI_FIELDS: &str = "uuid,name-label,virtual-size,sr-name-label";
