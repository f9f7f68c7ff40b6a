//! The command table: the generic commands of every view (`<class>-list`, `-param-*`), derived
//! from api-spec, and the operation commands with xe's names and parameters; the check of the
//! parameters a command is given, and the dispatch to its implementation.

mod cds;
mod drives;
mod event;
mod generic;
mod object_message;
mod pool;
mod setters;
mod storage;
mod vdi_transfer;
mod vm;

use std::sync::LazyLock;

use api_spec::Value;

use crate::args::Params;
use crate::client::Session;
use crate::error::XeError;
use crate::output::{self, Format};
use crate::tasks;
use crate::views::{self, View};

/// Switches every command accepts (and ignores where they mean nothing).
pub const GLOBAL_SWITCHES: &[&str] = &["minimal", "json", "multiple", "force"];

/// What a command accepts besides its named parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    Nothing,
    /// Fields of its view (`name=value`, `map:key=value`): filters, selectors or values to set.
    Fields,
    /// Anything: the implementation checks (`event-wait`, `-param-add` of map entries).
    Anything,
}

/// What a command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    List,
    ParamList,
    ParamGet,
    ParamSet,
    ParamAdd,
    ParamRemove,
    ParamClear,
    Vm(vm::VmAction),
    /// One message on the object `uuid=` names (`sr-scan`, `vbd-eject`, …).
    OnObject {
        class: &'static str,
        message: &'static str,
    },
    Storage(storage::StorageAction),
    Drive(drives::DriveAction),
    Pool(pool::PoolAction),
    EventWait,
}

/// One command.
#[derive(Debug)]
pub struct Command {
    pub name: String,
    /// Parameter names; one ending in `:` is a map given entry by entry (`device-config:k=v`).
    pub required: Vec<&'static str>,
    pub optional: Vec<&'static str>,
    pub extra: Extra,
    /// The objects it lists, selects or changes.
    pub view: Option<&'static View>,
    pub help: String,
    pub action: Action,
    /// Logs in to the host named alone, with `session.slave_local_login_with_password` (the
    /// emergency commands, which must work without a master).
    pub local_login: bool,
}

impl Command {
    fn new(name: impl Into<String>, action: Action, help: impl Into<String>) -> Command {
        Command {
            name: name.into(),
            required: Vec::new(),
            optional: Vec::new(),
            extra: Extra::Nothing,
            view: None,
            help: help.into(),
            action,
            local_login: false,
        }
    }

    fn required(mut self, names: &[&'static str]) -> Command {
        self.required.extend_from_slice(names);
        self
    }

    fn optional(mut self, names: &[&'static str]) -> Command {
        self.optional.extend_from_slice(names);
        self
    }

    /// Acts on objects of `view` chosen by its fields.
    fn selecting(mut self, view: &str) -> Command {
        self.view = views::view(view);
        self.extra = Extra::Fields;
        self
    }

    fn on(mut self, view: &str) -> Command {
        self.view = views::view(view);
        self
    }

    fn extra(mut self, extra: Extra) -> Command {
        self.extra = extra;
        self
    }

    /// The parameters that are not field filters.
    pub fn named_params(&self) -> Vec<&'static str> {
        let mut all = self.required.clone();
        all.extend(&self.optional);
        all.extend(GLOBAL_SWITCHES);
        all
    }

    /// Fails on a missing required parameter or one the command does not know.
    pub fn check(&self, params: &Params) -> Result<(), XeError> {
        if let Some(missing) = self.required.iter().find(|n| !params.has(n)) {
            return Err(XeError::MissingParam {
                command: self.name.clone(),
                name: (*missing).to_owned(),
            });
        }
        let named = self.named_params();
        for (name, _) in params.iter() {
            let is_map_entry = |n: &&str| n.ends_with(':') && name.starts_with(*n);
            if named.contains(&name) || named.iter().any(is_map_entry) {
                continue;
            }
            let known = match (self.extra, self.view) {
                (Extra::Anything, _) => true,
                (Extra::Fields, Some(view)) => {
                    let field = name.split_once(':').map_or(name, |(f, _)| f);
                    views::field(view.class, field).is_some()
                }
                _ => false,
            };
            if !known {
                return Err(XeError::UnknownParam {
                    command: self.name.clone(),
                    name: name.to_owned(),
                });
            }
        }
        Ok(())
    }
}

/// The generic commands of one view.
fn generic_commands(view: &'static View, out: &mut Vec<Command>) {
    let v = view.name.as_str();
    let fields = views::fields(view.class);
    out.push(
        Command::new(
            format!("{v}-list"),
            Action::List,
            format!(
                "Lists the {v} objects. params=<field>,…|all chooses the fields shown; \
                 <field>=<value> (or <map>:<key>=<value>) keeps the objects that have that value."
            ),
        )
        .optional(&["params"])
        .selecting(v),
    );
    out.push(
        Command::new(
            format!("{v}-param-list"),
            Action::ParamList,
            format!("Shows every field of one {v}."),
        )
        .required(&["uuid"])
        .on(v),
    );
    out.push(
        Command::new(
            format!("{v}-param-get"),
            Action::ParamGet,
            format!("Prints one field of a {v}; param-key= picks one entry of a map field."),
        )
        .required(&["uuid", "param-name"])
        .optional(&["param-key"])
        .on(v),
    );
    if fields.iter().any(|f| f.writable) {
        out.push(
            Command::new(
                format!("{v}-param-set"),
                Action::ParamSet,
                format!(
                    "Sets fields of a {v}: <field>=<value> for each, <map>:<key>=<value> for one \
                     entry of a map field."
                ),
            )
            .required(&["uuid"])
            .selecting(v),
        );
    }
    if fields
        .iter()
        .any(|f| f.writable && (f.is_set() || f.is_map()))
    {
        out.push(
            Command::new(
                format!("{v}-param-add"),
                Action::ParamAdd,
                format!(
                    "Adds to a set or map field of a {v}: param-key=<member> for a set, \
                     <key>=<value> pairs for a map."
                ),
            )
            .required(&["uuid", "param-name"])
            .optional(&["param-key"])
            .on(v)
            .extra(Extra::Anything),
        );
        out.push(
            Command::new(
                format!("{v}-param-remove"),
                Action::ParamRemove,
                format!("Removes a member of a set field, or a key of a map field, of a {v}."),
            )
            .required(&["uuid", "param-name", "param-key"])
            .on(v),
        );
        out.push(
            Command::new(
                format!("{v}-param-clear"),
                Action::ParamClear,
                format!("Empties a set or map field of a {v}."),
            )
            .required(&["uuid", "param-name"])
            .on(v),
        );
    }
}

static COMMANDS: LazyLock<Vec<Command>> = LazyLock::new(|| {
    let mut all = Vec::new();
    for view in views::views() {
        generic_commands(view, &mut all);
    }
    vm::commands(&mut all);
    object_message::commands(&mut all);
    storage::commands(&mut all);
    drives::commands(&mut all);
    pool::commands(&mut all);
    all.push(
        Command::new(
            "event-wait",
            Action::EventWait,
            "Waits until an object of class= has the given field values (<field>=<value>, or \
             <field>=/=<value> for any other value); timeout=<seconds> gives up.",
        )
        .required(&["class"])
        .optional(&["timeout"])
        .extra(Extra::Anything),
    );
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
});

/// Every command, sorted by name.
pub fn all() -> &'static [Command] {
    &COMMANDS
}

pub fn find(name: &str) -> Option<&'static Command> {
    all().iter().find(|c| c.name == name)
}

/// The output format the parameters ask for.
pub fn format(params: &Params) -> Format {
    if params.flag("json") {
        Format::Json
    } else if params.flag("minimal") {
        Format::Minimal
    } else {
        Format::Records
    }
}

/// Prints the uuid of the new object of `class` that a call answered the ref `r` of.
async fn print_uuid(
    session: &Session,
    class: &str,
    params: &Params,
    r: Value,
) -> Result<(), XeError> {
    let uuid = tasks::uuid_of(session, class, r).await?;
    let text = match format(params) {
        Format::Json => output::json(&serde_json::Value::String(uuid)),
        _ => format!("{uuid}\n"),
    };
    output::print(&text);
    Ok(())
}

/// Runs `command` in `session`.
pub async fn run(command: &Command, session: &Session, params: &Params) -> Result<(), XeError> {
    let view = command.view;
    match (command.action, view) {
        (Action::List, Some(view)) => generic::list(session, view, command, params).await,
        (Action::ParamList, Some(view)) => generic::param_list(session, view, params).await,
        (Action::ParamGet, Some(view)) => generic::param_get(session, view, params).await,
        (Action::ParamSet, Some(view)) => setters::param_set(session, view, command, params).await,
        (Action::ParamAdd, Some(view)) => setters::param_add(session, view, params).await,
        (Action::ParamRemove, Some(view)) => setters::param_remove(session, view, params).await,
        (Action::ParamClear, Some(view)) => setters::param_clear(session, view, params).await,
        (Action::Vm(action), _) => vm::run(action, command, session, params).await,
        (Action::OnObject { class, message }, _) => {
            object_message::run(class, message, session, params).await
        }
        (Action::Storage(action), _) => storage::run(action, session, params).await,
        (Action::Drive(action), _) => drives::run(action, command, session, params).await,
        (Action::Pool(action), _) => pool::run(action, command, session, params).await,
        (Action::EventWait, _) => event::wait(session, params).await,
        (_, None) => Err(XeError::UnknownCommand {
            name: command.name.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args;

    fn params(args: &[&str]) -> Params {
        args::parse(args.iter().map(|a| a.to_string())).params
    }

    /// Every class with `get_all_records` has its generic commands, templates included.
    #[test]
    fn every_listable_class_has_generic_commands() {
        for name in [
            "vm-list",
            "vm-param-list",
            "vm-param-get",
            "vm-param-set",
            "vm-param-add",
            "vm-param-remove",
            "vm-param-clear",
            "template-list",
            "host-list",
            "host-cpu-list",
            "sr-param-set",
            "task-list",
            "message-list",
        ] {
            assert!(find(name).is_some(), "{name} missing");
        }
    }

    /// A missing parameter is named; an unknown one is refused; fields are accepted as filters.
    #[test]
    fn parameters_are_checked_by_name() {
        let clone = find("vm-clone").expect("vm-clone");
        let err = clone.check(&params(&["vm=a"])).expect_err("missing");
        assert!(matches!(err, XeError::MissingParam { ref name, .. } if name == "new-name-label"));
        let list = find("vm-list").expect("vm-list");
        list.check(&params(&[
            "power-state=halted",
            "other-config:k=v",
            "--minimal",
        ]))
        .expect("fields are filters");
        let err = list.check(&params(&["colour=red"])).expect_err("unknown");
        assert!(matches!(err, XeError::UnknownParam { ref name, .. } if name == "colour"));
    }

    /// A map parameter is given entry by entry (`device-config:location=…`); its bare name
    /// and other maps are refused.
    #[test]
    fn map_parameters_are_given_entry_by_entry() {
        let create = find("sr-create").expect("sr-create");
        let given = [
            "name-label=isos",
            "type=iso",
            "device-config:location=/srv/iso",
        ];
        create.check(&params(&given)).expect("a map entry");
        for bad in ["device-config=/srv/iso", "other-config:k=v"] {
            let all = [&given[..2], &[bad]].concat();
            let err = create.check(&params(&all)).expect_err(bad);
            assert!(matches!(err, XeError::UnknownParam { .. }), "{bad}");
        }
    }
}
