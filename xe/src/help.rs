//! `xe help`, `xe help <command>` and `xe help --all`, from the command table.

use crate::args::CommandLine;
use crate::commands::{self, Action, Command, Extra};
use crate::error::XeError;
use crate::output;
use crate::views;

/// The usage lines printed by `xe help` and when no command is given.
pub fn usage() -> String {
    "Usage: xe <command> [-s <server>] [-p <port>] ([-u <user>] [-pw <password>] | [-pwf <file>])\n\
     \x20         [--no-verify] [--minimal] [--json] [<name>=<value> …]\n\
     \n\
     The server, port, user and password may also come from XE_EXTRA_ARGS\n\
     (server=…,port=…,username=…,password=…) or from ~/.xe (one name=value a line).\n\
     `xe help <command>` describes a command; `xe help --all` lists every command.\n"
        .to_owned()
}

/// Whether a command is one of the generic ones of a view (listed apart in `xe help`).
fn is_generic(command: &Command) -> bool {
    matches!(
        command.action,
        Action::List
            | Action::ParamList
            | Action::ParamGet
            | Action::ParamSet
            | Action::ParamAdd
            | Action::ParamRemove
            | Action::ParamClear
    )
}

/// The description of one command, in xapi's xe layout.
pub fn describe(command: &Command) -> String {
    let mut optional: Vec<String> = command.optional.iter().map(|s| s.to_string()).collect();
    if let (Extra::Fields, Some(view)) = (command.extra, command.view) {
        optional.push(format!("<{}-fields>", view.name));
    }
    if command.extra == Extra::Anything {
        optional.push("<name>=<value> …".to_owned());
    }
    format!(
        "command name            : {}\n        reqd params     : {}\n        optional params : {}\n        description     : {}\n",
        command.name,
        command.required.join(", "),
        optional.join(", "),
        command.help
    )
}

/// Runs `xe help [<command>] [--all] [--minimal]`.
pub fn run(line: &CommandLine) -> Result<(), XeError> {
    if let Some(name) = line.positionals.first() {
        let command =
            commands::find(name).ok_or_else(|| XeError::UnknownCommand { name: name.clone() })?;
        output::print(&describe(command));
        return Ok(());
    }
    let all = line.params.flag("all");
    let names: Vec<String> = commands::all()
        .iter()
        .filter(|c| all || !is_generic(c))
        .map(|c| c.name.clone())
        .collect();
    if line.params.flag("minimal") {
        output::print(&output::minimal(&names));
        return Ok(());
    }
    let mut text = usage();
    text.push_str(if all {
        "\nEvery command:\n"
    } else {
        "\nOperation commands:\n"
    });
    for chunk in names.chunks(3) {
        let row: Vec<String> = chunk.iter().map(|n| format!("{n:<38}")).collect();
        text.push_str(&format!("    {}\n", row.join("").trim_end()));
    }
    if !all {
        let classes: Vec<&str> = views::views().iter().map(|v| v.name.as_str()).collect();
        text.push_str(&format!(
            "\nEvery class also has <class>-list, <class>-param-list, -param-get, -param-set,\n\
             -param-add, -param-remove and -param-clear; the classes are:\n    {}\n",
            classes.join(", ")
        ));
    }
    output::print(&text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command's help names its parameters and what it does.
    #[test]
    fn command_help_lists_parameters() {
        let text = describe(commands::find("vm-start").expect("vm-start"));
        assert!(
            text.starts_with("command name            : vm-start\n"),
            "{text}"
        );
        assert!(
            text.contains("optional params : vm, on, paused, <vm-fields>"),
            "{text}"
        );
    }
}
