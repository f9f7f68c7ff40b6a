//! The VM commands (`vm-start`, `vm-install`, `vm-uninstall`, …) and the VBD / VIF plug
//! commands, with xapi's xe names and parameters; each calls the XenAPI message behind it.

use std::collections::BTreeMap;
use std::io::BufRead;

use api_spec::{NULL_REF, Value};

use super::generic::{columns, print_records, sort_by_name};
use super::{Action, Command, format, print_uuid};
use crate::args::Params;
use crate::client::Session;
use crate::error::XeError;
use crate::render::Lookup;
use crate::select;
use crate::tasks::call_and_wait;
use crate::views::{self, View};

/// A VM or device operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmAction {
    Install,
    Start,
    Shutdown,
    Reboot,
    Suspend,
    Resume,
    Pause,
    Unpause,
    Clone,
    Copy,
    Snapshot,
    Uninstall,
    Destroy,
    ResetPowerstate,
    Migrate,
    /// `vm-vbd-list` (`VBD`) and `vm-vif-list` (`VIF`).
    DeviceList(&'static str),
}

/// A command on the VMs `vm=` and field filters choose.
pub(super) fn vm_command(
    name: &str,
    action: Action,
    optional: &[&'static str],
    help: &str,
) -> Command {
    Command::new(name, action, help)
        .optional(&["vm"])
        .optional(optional)
        .selecting("vm")
}

/// Adds the VM and device commands to the table.
pub fn commands(out: &mut Vec<Command>) {
    use VmAction::*;
    out.push(
        Command::new(
            "vm-install",
            Action::Vm(Install),
            "Makes a new VM from a template (by name or uuid): a clone, or a copy onto the SR \
             sr-uuid= names; prints its uuid.",
        )
        .required(&["template", "new-name-label"])
        .optional(&["sr-uuid"])
        .on("template"),
    );
    for (name, action, optional, help) in [
        (
            "vm-start",
            Start,
            &["on", "paused"][..],
            "Starts the selected VM(s), on the host on= names if given; paused=true leaves them paused.",
        ),
        (
            "vm-shutdown",
            Shutdown,
            &[],
            "Shuts the selected VM(s) down cleanly, or at once with --force.",
        ),
        (
            "vm-reboot",
            Reboot,
            &[],
            "Reboots the selected VM(s) cleanly, or at once with --force.",
        ),
        ("vm-suspend", Suspend, &[], "Suspends the selected VM(s)."),
        (
            "vm-resume",
            Resume,
            &["on", "paused"],
            "Resumes the selected suspended VM(s), on the host on= names if given.",
        ),
        ("vm-pause", Pause, &[], "Pauses the selected running VM(s)."),
        (
            "vm-unpause",
            Unpause,
            &[],
            "Unpauses the selected paused VM(s).",
        ),
        (
            "vm-uninstall",
            Uninstall,
            &[],
            "Destroys the selected VM(s) and their disks, after confirmation unless --force.",
        ),
        (
            "vm-destroy",
            Destroy,
            &[],
            "Destroys the selected VM(s), leaving their disks.",
        ),
        (
            "vm-reset-powerstate",
            ResetPowerstate,
            &[],
            "Marks the selected VM(s) halted without touching any host (needs --force): for a VM \
             left running on a host that is gone.",
        ),
        (
            "vm-vbd-list",
            DeviceList("VBD"),
            &["params"],
            "Lists the virtual disks (VBDs) of the selected VM(s).",
        ),
        (
            "vm-vif-list",
            DeviceList("VIF"),
            &["params"],
            "Lists the virtual network interfaces (VIFs) of the selected VM(s).",
        ),
    ] {
        out.push(vm_command(name, Action::Vm(action), optional, help));
    }
    for (name, action, help) in [
        (
            "vm-clone",
            Clone,
            "Clones the selected VM (fast, sharing disks where the storage can); prints the new uuid.",
        ),
        (
            "vm-copy",
            Copy,
            "Copies the selected VM with full copies of its disks, onto sr-uuid= if given; prints \
             the new uuid.",
        ),
        (
            "vm-snapshot",
            Snapshot,
            "Takes a snapshot of the selected VM; prints its uuid.",
        ),
    ] {
        let optional: &[&'static str] = if action == Copy { &["sr-uuid"] } else { &[] };
        out.push(
            vm_command(name, Action::Vm(action), optional, help).required(&["new-name-label"]),
        );
    }
    out.push(
        vm_command(
            "vm-migrate",
            Action::Vm(Migrate),
            &["live"],
            "Moves the selected VM(s) to the host host= names (by name or uuid); live=true keeps \
             them running.",
        )
        .required(&["host"]),
    );
}

fn view(name: &str) -> Result<&'static View, XeError> {
    views::view(name).ok_or_else(|| XeError::UnknownCommand {
        name: name.to_owned(),
    })
}

/// Runs a VM or device command.
pub async fn run(
    action: VmAction,
    command: &Command,
    session: &Session,
    params: &Params,
) -> Result<(), XeError> {
    let mut lookup = Lookup::default();
    if action == VmAction::Install {
        return install(session, params, &mut lookup).await;
    }
    let vms = selected_vms(session, command, params, &mut lookup).await?;
    if let VmAction::DeviceList(class) = action {
        return device_list(session, class, &vms, params).await;
    }
    if action == VmAction::ResetPowerstate && !params.flag("force") {
        return Err(XeError::InvalidValue {
            name: "force".to_owned(),
            reason: "vm-reset-powerstate needs --force: it marks the VM halted without checking \
                     that it is"
                .to_owned(),
        });
    }
    if action == VmAction::Uninstall && !params.flag("force") {
        confirm_uninstall(session, &vms).await?;
    }
    for (vm, record) in &vms {
        one(action, session, params, vm, record, &mut lookup).await?;
    }
    Ok(())
}

/// The VMs a command's `vm=` and field filters choose.
pub(super) async fn selected_vms(
    session: &Session,
    command: &Command,
    params: &Params,
    lookup: &mut Lookup,
) -> Result<Vec<(String, Value)>, XeError> {
    let named = command.named_params();
    select::objects(session, view("vm")?, "vm", params, &named, lookup).await
}

/// The ref of the host `param` names (by name or uuid).
async fn host(
    session: &Session,
    params: &Params,
    param: &str,
    lookup: &mut Lookup,
) -> Result<Option<Value>, XeError> {
    let Some(wanted) = params.get(param) else {
        return Ok(None);
    };
    let r = select::one_by_name_or_uuid(session, view("host")?, param, wanted, lookup).await?;
    Ok(Some(Value::String(r)))
}

async fn one(
    action: VmAction,
    session: &Session,
    params: &Params,
    vm: &str,
    record: &Value,
    lookup: &mut Lookup,
) -> Result<(), XeError> {
    let vm = Value::str(vm);
    let paused = Value::Bool(params.flag("paused"));
    let force = Value::Bool(params.flag("force"));
    let new_name = || Value::str(params.get("new-name-label").unwrap_or_default());
    let (method, args) = match action {
        VmAction::Start => match host(session, params, "on", lookup).await? {
            Some(host) => ("VM.start_on", vec![vm, host, paused, force]),
            None => ("VM.start", vec![vm, paused, force]),
        },
        VmAction::Resume => match host(session, params, "on", lookup).await? {
            Some(host) => ("VM.resume_on", vec![vm, host, paused, force]),
            None => ("VM.resume", vec![vm, paused, force]),
        },
        VmAction::Shutdown if params.flag("force") => ("VM.hard_shutdown", vec![vm]),
        VmAction::Shutdown => ("VM.clean_shutdown", vec![vm]),
        VmAction::Reboot if params.flag("force") => ("VM.hard_reboot", vec![vm]),
        VmAction::Reboot => ("VM.clean_reboot", vec![vm]),
        VmAction::Suspend => ("VM.suspend", vec![vm]),
        VmAction::Pause => ("VM.pause", vec![vm]),
        VmAction::Unpause => ("VM.unpause", vec![vm]),
        VmAction::Destroy => ("VM.destroy", vec![vm]),
        VmAction::ResetPowerstate => ("VM.power_state_reset", vec![vm]),
        VmAction::Migrate => {
            let host = host(session, params, "host", lookup).await?;
            let live = params.flag("live").to_string();
            let options = Value::Struct(BTreeMap::from([("live".to_owned(), Value::String(live))]));
            let host = host.unwrap_or_else(|| Value::str(NULL_REF));
            ("VM.pool_migrate", vec![vm, host, options])
        }
        VmAction::Clone | VmAction::Snapshot => {
            let method = if action == VmAction::Clone {
                "VM.clone"
            } else {
                "VM.snapshot"
            };
            let new = call_and_wait(session, method, vec![vm, new_name()]).await?;
            return print_uuid(session, "VM", params, new).await;
        }
        VmAction::Copy => {
            let sr = match params.get("sr-uuid") {
                Some(uuid) => select::by_uuid(session, "SR", uuid).await?,
                None => NULL_REF.to_owned(),
            };
            let new =
                call_and_wait(session, "VM.copy", vec![vm, new_name(), Value::String(sr)]).await?;
            return print_uuid(session, "VM", params, new).await;
        }
        VmAction::Uninstall => return uninstall(session, &vm, record).await,
        // `run` handles these before any VM is selected.
        VmAction::Install | VmAction::DeviceList(_) => return Ok(()),
    };
    call_and_wait(session, method, args).await?;
    Ok(())
}

/// `vm-install template= new-name-label= [sr-uuid=]`: clone (or copy) the template, provision
/// its disks, and make it a VM.
async fn install(session: &Session, params: &Params, lookup: &mut Lookup) -> Result<(), XeError> {
    let wanted = params.get("template").unwrap_or_default();
    let template =
        select::one_by_name_or_uuid(session, view("template")?, "template", wanted, lookup).await?;
    let name = Value::str(params.get("new-name-label").unwrap_or_default());
    let vm = match params.get("sr-uuid") {
        Some(uuid) => {
            let sr = select::by_uuid(session, "SR", uuid).await?;
            let args = vec![Value::String(template), name, Value::String(sr)];
            call_and_wait(session, "VM.copy", args).await?
        }
        None => call_and_wait(session, "VM.clone", vec![Value::String(template), name]).await?,
    };
    match call_and_wait(session, "VM.provision", vec![vm.clone()]).await {
        Ok(_) => {}
        // A server without provisioning still gives a usable (diskless) VM, as the XenAPI's
        // documented clone-then-unmark path does; say so rather than fail half-way.
        Err(e)
            if matches!(
                e.api_code(),
                Some("NOT_IMPLEMENTED" | "MESSAGE_METHOD_UNKNOWN")
            ) =>
        {
            eprintln!("xe: warning: the server does not provision disks ({e}); the VM has none")
        }
        Err(e) => return Err(e),
    }
    session
        .call("VM.set_is_a_template", vec![vm.clone(), Value::Bool(false)])
        .await?;
    print_uuid(session, "VM", params, vm).await
}

/// The disks `vm-uninstall` destroys with a VM: the VDIs of its disk VBDs that no other VM
/// uses. Returns `(ref, uuid, name)` of each.
async fn disks_of(
    session: &Session,
    record: &Value,
) -> Result<Vec<(String, String, String)>, XeError> {
    let mut disks = Vec::new();
    for (_, vbd) in devices_of(session, "VBD", record).await? {
        let field = |name| vbd.as_struct().and_then(|r| r.get(name)?.as_str());
        let Some(vdi) = field("VDI").filter(|v| *v != NULL_REF) else {
            continue;
        };
        if field("type") != Some("Disk") {
            continue;
        }
        let disk = session
            .call("VDI.get_record", vec![Value::str(vdi)])
            .await?;
        let disk_field = |name| disk.as_struct().and_then(|r| r.get(name));
        let users = disk_field("VBDs")
            .and_then(Value::as_array)
            .map_or(0, <[Value]>::len);
        if users > 1 {
            continue;
        }
        let text = |name| disk_field(name).and_then(Value::as_str).unwrap_or("");
        disks.push((
            vdi.to_owned(),
            text("uuid").to_owned(),
            text("name_label").to_owned(),
        ));
    }
    Ok(disks)
}

/// Lists what `vm-uninstall` will destroy and asks for `yes` on stdin.
async fn confirm_uninstall(session: &Session, vms: &[(String, Value)]) -> Result<(), XeError> {
    let mut listing = String::from("The following items are about to be destroyed\n");
    for (_, record) in vms {
        let field = |name| record.as_struct().and_then(|r| r.get(name)?.as_str());
        listing.push_str(&format!(
            "VM : {} ({})\n",
            field("uuid").unwrap_or(""),
            field("name_label").unwrap_or("")
        ));
        for (_, uuid, name) in disks_of(session, record).await? {
            listing.push_str(&format!("VDI: {uuid} ({name})\n"));
        }
    }
    confirm(&listing)
}

/// Prints `what` on stderr and asks for `yes`; anything else (or no input) cancels.
pub fn confirm(what: &str) -> Result<(), XeError> {
    eprintln!("{what}Type 'yes' to continue");
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(XeError::NotConfirmed)
    }
}

/// Destroys a VM, then the disks only it used.
async fn uninstall(session: &Session, vm: &Value, record: &Value) -> Result<(), XeError> {
    let disks = disks_of(session, record).await?;
    call_and_wait(session, "VM.destroy", vec![vm.clone()]).await?;
    for (vdi, _, _) in disks {
        call_and_wait(session, "VDI.destroy", vec![Value::String(vdi)]).await?;
    }
    Ok(())
}

/// The devices of `class` (`VBD`, `VIF`) of the VM whose record is `vm`: each one's ref and
/// record.
pub(super) async fn devices_of(
    session: &Session,
    class: &str,
    vm: &Value,
) -> Result<Vec<(String, Value)>, XeError> {
    let field = format!("{class}s");
    let refs = vm
        .as_struct()
        .and_then(|r| r.get(&field)?.as_array())
        .unwrap_or(&[]);
    let mut devices = Vec::new();
    for r in refs.iter().filter_map(Value::as_str) {
        let record = session
            .call(&format!("{class}.get_record"), vec![Value::str(r)])
            .await?;
        devices.push((r.to_owned(), record));
    }
    Ok(devices)
}

/// `vm-vbd-list` / `vm-vif-list`: the devices of the selected VMs.
async fn device_list(
    session: &Session,
    class: &'static str,
    vms: &[(String, Value)],
    params: &Params,
) -> Result<(), XeError> {
    let device_view = views::view_of(class).ok_or_else(|| XeError::UnknownCommand {
        name: class.to_owned(),
    })?;
    let mut records = Vec::new();
    for (_, vm) in vms {
        records.extend(devices_of(session, class, vm).await?);
    }
    sort_by_name(&mut records);
    let columns = columns(device_view, params.get("params"))?;
    let mut lookup = Lookup::default();
    lookup
        .prepare(session, &columns, records.iter().map(|(_, r)| r))
        .await?;
    print_records(&columns, &records, &lookup, format(params));
    Ok(())
}
