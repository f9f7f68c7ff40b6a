//! The commands that call one message on the object `uuid=` names (`sr-scan`, `pbd-plug`,
//! `vdi-snapshot`, `vbd-eject`, …): the message's other parameters keep their defaults, and
//! when it answers a reference, as api-spec declares, xe prints that object's uuid.

use api_spec::{Ty, Value, api};

use super::{Action, Command, print_uuid};
use crate::args::Params;
use crate::client::Session;
use crate::error::XeError;
use crate::select;
use crate::tasks::call_and_wait;

/// xe's name, the class and message it calls, and its help; `vdi-clone` also names the clone.
const COMMANDS: &[(&str, &str, &str, &str)] = &[
    (
        "sr-scan",
        "SR",
        "scan",
        "Asks the SR's storage which VDIs it holds: new ones get a VDI, known ones their sizes.",
    ),
    (
        "sr-forget",
        "SR",
        "forget",
        "Removes the SR, its PBDs and VDIs from the pool database; the data stays.",
    ),
    (
        "sr-destroy",
        "SR",
        "destroy",
        "Removes an SR that holds no VDI and has no PBD attached.",
    ),
    (
        "pbd-plug",
        "PBD",
        "plug",
        "Has the PBD's host reach its SR, so that the SR's VDIs can be used there.",
    ),
    (
        "pbd-unplug",
        "PBD",
        "unplug",
        "Detaches the PBD's SR from its host.",
    ),
    (
        "vdi-destroy",
        "VDI",
        "destroy",
        "Destroys the VDI and its data.",
    ),
    (
        "vdi-snapshot",
        "VDI",
        "snapshot",
        "Takes a snapshot of the VDI; prints its uuid.",
    ),
    (
        "vdi-clone",
        "VDI",
        "clone",
        "Makes a writable clone of the VDI (named new-name-label=, described \
         new-name-description=, if given); prints its uuid.",
    ),
    (
        "vbd-destroy",
        "VBD",
        "destroy",
        "Removes the VBD from its VM (its VDI stays).",
    ),
    (
        "vbd-eject",
        "VBD",
        "eject",
        "Takes the disk out of the CD drive the VBD is.",
    ),
    (
        "vbd-plug",
        "VBD",
        "plug",
        "Plugs the VBD into its running VM.",
    ),
    (
        "vbd-unplug",
        "VBD",
        "unplug",
        "Unplugs the VBD from its running VM.",
    ),
    (
        "vif-plug",
        "VIF",
        "plug",
        "Plugs the VIF into its running VM.",
    ),
    (
        "vif-unplug",
        "VIF",
        "unplug",
        "Unplugs the VIF from its running VM.",
    ),
];

/// The names `vdi-clone` gives the clone.
const NEW_NAMES: [(&str, &str); 2] = [
    ("new-name-label", "set_name_label"),
    ("new-name-description", "set_name_description"),
];

/// Adds the commands to the table.
pub fn commands(out: &mut Vec<Command>) {
    for (name, class, message, help) in COMMANDS {
        let action = Action::OnObject { class, message };
        let mut command = Command::new(*name, action, *help)
            .required(&["uuid"])
            .on(&crate::views::cli_class_name(class));
        if *name == "vdi-clone" {
            command = command.optional(&NEW_NAMES.map(|(param, _)| param));
        }
        out.push(command);
    }
}

/// Calls `class.message` on the object `uuid=` names; prints the uuid of the object it
/// answers, named as the parameters say.
pub async fn run(
    class: &str,
    message: &str,
    session: &Session,
    params: &Params,
) -> Result<(), XeError> {
    let uuid = params.get("uuid").unwrap_or_default();
    let r = select::by_uuid(session, class, uuid).await?;
    let method = format!("{class}.{message}");
    let answer = call_and_wait(session, &method, vec![Value::String(r)]).await?;
    let Some(Ty::Ref(new_class)) = api().method(&method).and_then(|m| m.result) else {
        return Ok(());
    };
    for (param, setter) in NEW_NAMES {
        if let Some(name) = params.get(param) {
            let args = vec![answer.clone(), Value::str(name)];
            session.call(&format!("{new_class}.{setter}"), args).await?;
        }
    }
    print_uuid(session, new_class, params, answer).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command calls a message of its class that takes the object alone (the others
    /// have defaults), so that `uuid=` is all it needs.
    #[test]
    fn every_command_calls_a_message_taking_the_object_alone() {
        for (name, class, message, _) in COMMANDS {
            let method = api()
                .method(&format!("{class}.{message}"))
                .unwrap_or_else(|| panic!("{name}: no {class}.{message}"));
            let [first, rest @ ..] = method.params.as_slice() else {
                panic!("{name}: {class}.{message} takes nothing");
            };
            assert_eq!(first.ty, Ty::Ref(class), "{name}");
            assert!(rest.iter().all(|p| p.default.is_some()), "{name}");
        }
    }
}
