//! Bash completion: `xe completion bash` prints a small script that hands the line being
//! completed to the hidden `xe __complete <current bash word> <line up to the cursor>`, which
//! prints one candidate a line: commands, parameter names, enum values, and the uuids and
//! name-labels of the pool's objects (asked of the server, if it is already trusted).

use api_spec::Ty;

use crate::args::{self, CommandLine};
use crate::client::{self, Login, Session};
use crate::commands::{self, Action, Command, Extra};
use crate::error::XeError;
use crate::output;
use crate::render::Lookup;
use crate::select;
use crate::settings::{self, Paths, Sources};
use crate::trust::KnownHosts;
use crate::views::{self, View};

/// The script `source <(xe completion bash)` installs. Bash splits words at `=` and `:`, so
/// xe completes whole xe words and the script is told which part bash will replace.
pub const BASH_SCRIPT: &str = r#"# bash completion for xe (oxapi); install with: source <(xe completion bash)
_xe_complete() {
    local line="${COMP_LINE:0:COMP_POINT}"
    local cur="${COMP_WORDS[COMP_CWORD]}"
    local IFS=$'\n'
    COMPREPLY=($("${COMP_WORDS[0]}" __complete "$cur" "$line" 2>/dev/null))
}
complete -o nospace -F _xe_complete xe
"#;

/// The switches every command takes.
const SWITCHES: &[&str] = &[
    "--force",
    "--minimal",
    "--multiple",
    "--json",
    "--no-verify",
];

/// Splits a command line as the shell would, roughly: whitespace separates words, quotes and
/// backslashes protect. A line ending in whitespace ends with an empty word (the one being
/// typed).
pub fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\\') | (Some('"'), '\\') => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            (_, c) => current.push(c),
        }
    }
    words.push(current);
    words
}

/// What completing the current word needs.
enum Need {
    /// Full words (each with what precedes the current word's value).
    Words(Vec<String>),
    /// Objects of a view from the server: `param=` followed by a uuid (or also a name).
    Objects {
        param: String,
        view: &'static View,
        with_names: bool,
    },
}

fn field_names(view: &View, keep: impl Fn(&views::CliField) -> bool) -> Vec<String> {
    views::fields(view.class)
        .iter()
        .filter(|f| keep(f))
        .map(|f| f.name.clone())
        .collect()
}

/// What completes `current` after the words `before` (the program name first).
fn need(before: &[String], current: &str) -> Need {
    if before.len() <= 1 {
        let mut names: Vec<String> = commands::all().iter().map(|c| c.name.clone()).collect();
        names.extend(["help".to_owned(), "completion".to_owned()]);
        return Need::Words(names.into_iter().map(|n| format!("{n} ")).collect());
    }
    if before[1] == "help" {
        return Need::Words(
            commands::all()
                .iter()
                .map(|c| format!("{} ", c.name))
                .collect(),
        );
    }
    let Some(command) = commands::find(&before[1]) else {
        return Need::Words(Vec::new());
    };
    if current.starts_with('-') {
        return Need::Words(SWITCHES.iter().map(|s| format!("{s} ")).collect());
    }
    match current.split_once('=') {
        Some((name, value)) => values(command, name, value),
        None => Need::Words(parameter_names(command, before)),
    }
}

/// `name=` (and `map:`) for the parameters and fields `command` takes and `before` lacks.
fn parameter_names(command: &Command, before: &[String]) -> Vec<String> {
    let given = |name: &str| before.iter().any(|w| w.starts_with(&format!("{name}=")));
    let mut out: Vec<String> = command
        .required
        .iter()
        .chain(&command.optional)
        .filter(|n| !given(n))
        // A map parameter (`device-config:`) is completed up to its key.
        .map(|n| match n.ends_with(':') {
            true => (*n).to_owned(),
            false => format!("{n}="),
        })
        .collect();
    if let (Extra::Fields, Some(view)) = (command.extra, command.view) {
        let setting = command.action == Action::ParamSet;
        for field in views::fields(view.class) {
            if setting && (!field.writable || field.shows_name) {
                continue;
            }
            if field.is_map() {
                out.push(format!("{}:", field.name));
            }
            let map_being_set = setting && field.is_map();
            if !map_being_set && !given(&field.name) {
                out.push(format!("{}=", field.name));
            }
        }
    }
    out
}

/// The values of `name=` for `command`.
fn values(command: &Command, name: &str, typed: &str) -> Need {
    let words = |values: Vec<String>| {
        Need::Words(
            values
                .into_iter()
                .map(|v| format!("{name}={} ", escape(&v)))
                .collect(),
        )
    };
    let objects = |view: Option<&'static View>, with_names| match view {
        Some(view) => Need::Objects {
            param: name.to_owned(),
            view,
            with_names,
        },
        None => Need::Words(Vec::new()),
    };
    let view = command.view;
    match name {
        "param-name" => {
            let Some(view) = view else {
                return Need::Words(Vec::new());
            };
            words(match command.action {
                Action::ParamGet => field_names(view, |_| true),
                Action::ParamAdd | Action::ParamRemove | Action::ParamClear => {
                    field_names(view, |f| f.writable && (f.is_set() || f.is_map()))
                }
                _ => field_names(view, |f| f.writable && !f.shows_name),
            })
        }
        "params" => {
            let Some(view) = view else {
                return Need::Words(Vec::new());
            };
            let head = typed.rsplit_once(',').map_or("", |(head, _)| head);
            let head = if head.is_empty() {
                String::new()
            } else {
                format!("{head},")
            };
            let mut names = field_names(view, |_| true);
            names.push("all".to_owned());
            Need::Words(
                names
                    .into_iter()
                    .map(|f| format!("{name}={head}{f}"))
                    .collect(),
            )
        }
        "class" => words(views::views().iter().map(|v| v.name.clone()).collect()),
        "paused" | "live" => words(vec!["true".to_owned(), "false".to_owned()]),
        "uuid" => objects(view, false),
        "vm" => objects(views::view("vm"), true),
        "template" => objects(views::view("template"), true),
        "on" | "host" => objects(views::view("host"), true),
        "host-uuid" => objects(views::view("host"), false),
        "sr-uuid" => objects(views::view("sr"), false),
        _ => {
            let field = view.and_then(|v| views::field(v.class, name));
            match field.map(|f| f.field.ty) {
                Some(Ty::Enum(decl)) => {
                    words(decl.values.iter().map(|v| v.to_lowercase()).collect())
                }
                Some(Ty::Bool) => words(vec!["true".to_owned(), "false".to_owned()]),
                Some(Ty::Ref(class)) if name.ends_with("-uuid") => {
                    objects(views::view_of(class), false)
                }
                _ => Need::Words(Vec::new()),
            }
        }
    }
}

/// Protects spaces and shell characters in a value bash will insert.
fn escape(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        if c.is_whitespace() || "\\'\"$`&|;<>()*?[]!#".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `param=<uuid>` (and `param=<name-label>`) for the objects of `view` the server has.
async fn objects(
    session: &Session,
    param: &str,
    view: &View,
    with_names: bool,
) -> Result<Vec<String>, XeError> {
    let mut lookup = Lookup::default();
    let filters = select::with_defaults(view, Vec::new())?;
    let records = select::matching(session, view, &filters, &mut lookup).await?;
    let mut out = Vec::new();
    for (_, record) in &records {
        let field = |name: &str| record.as_struct().and_then(|r| r.get(name)?.as_str());
        let names = ["uuid", "name_label"];
        for name in names.iter().take(if with_names { 2 } else { 1 }) {
            if let Some(value) = field(name).filter(|v| !v.is_empty()) {
                out.push(format!("{param}={} ", escape(value)));
            }
        }
    }
    Ok(out)
}

/// A session for completion, if the server can be asked without trusting anything new.
async fn session_for(mut line: CommandLine) -> Option<Session> {
    let paths = Paths::from_env();
    let sources = Sources::from_env(paths.as_ref()).ok()?;
    let settings = settings::resolve(&mut line, &sources).ok()?;
    let known = match &paths {
        Some(p) => KnownHosts::load(&p.known_hosts).ok()?,
        None => KnownHosts::default(),
    };
    let trusted =
        !settings.use_tls || settings.no_verify || known.get(&settings.address()).is_some();
    if !trusted {
        return None;
    }
    client::connect(&settings, paths.as_ref(), Login::Pool)
        .await
        .ok()
}

/// `xe __complete <current bash word> <line>`: prints the candidates, each cut to the part
/// bash replaces. Its arguments are taken as they are, not parsed as xe parameters.
pub async fn run(cur: &str, text: &str) {
    let words = words(text);
    let (current, before) = words
        .split_last()
        .expect("invariant: words() returns at least one word");
    let candidates = match need(before, current) {
        Need::Words(words) => words,
        Need::Objects {
            param,
            view,
            with_names,
        } => {
            let before_line = args::parse(before.iter().skip(1).cloned());
            match session_for(before_line).await {
                Some(session) => {
                    let found = objects(&session, &param, view, with_names).await;
                    session.logout().await;
                    found.unwrap_or_default()
                }
                None => Vec::new(),
            }
        }
    };
    let typed = escape_typed(current);
    let strip = typed.len().saturating_sub(cur.len());
    let lines: String = candidates
        .iter()
        .filter(|c| c.starts_with(&typed))
        .filter_map(|c| c.get(strip..))
        .map(|c| format!("{c}\n"))
        .collect();
    output::print(&lines);
}

/// The current word as bash holds it: with its escapes (candidates are escaped the same way).
fn escape_typed(current: &str) -> String {
    match current.split_once('=') {
        Some((name, value)) => format!("{name}={}", escape(value)),
        None => current.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(line: &str) -> Vec<String> {
        let words = words(line);
        let (current, before) = words.split_last().expect("a word");
        match need(before, current) {
            Need::Words(all) => all
                .into_iter()
                .filter(|c| c.starts_with(current.as_str()))
                .collect(),
            Need::Objects { view, .. } => vec![format!("<objects of {}>", view.name)],
        }
    }

    /// The line splits as the shell would, with the word being typed last.
    #[test]
    fn words_split_like_the_shell() {
        assert_eq!(words("xe vm-list "), ["xe", "vm-list", ""]);
        assert_eq!(
            words(r#"xe vm=my\ vm name-label="a b"#),
            ["xe", "vm=my vm", "name-label=a b"]
        );
    }

    /// Commands, parameter names, switches and enum values complete without a server.
    #[test]
    fn static_candidates_complete_without_a_server() {
        assert_eq!(complete("xe vm-shu"), ["vm-shutdown "]);
        assert!(complete("xe vm-start ").contains(&"on=".to_owned()));
        assert!(complete("xe vm-list power").contains(&"power-state=".to_owned()));
        assert_eq!(
            complete("xe vm-list power-state=ha"),
            ["power-state=halted "]
        );
        assert_eq!(complete("xe vm-start --fo"), ["--force "]);
        assert!(complete("xe vm-param-set uuid=x other").contains(&"other-config:".to_owned()));
        assert_eq!(
            complete("xe vm-list params=uuid,name-l"),
            ["params=uuid,name-label"]
        );
    }

    /// uuids and names come from the server.
    #[test]
    fn uuids_and_names_need_the_server() {
        assert_eq!(complete("xe vm-param-list uuid="), ["<objects of vm>"]);
        assert_eq!(complete("xe vm-start vm="), ["<objects of vm>"]);
        assert_eq!(complete("xe vm-start on="), ["<objects of host>"]);
    }

    /// Values with spaces are escaped for bash.
    #[test]
    fn values_with_spaces_are_escaped() {
        assert_eq!(escape("Debian Bookworm 12"), r"Debian\ Bookworm\ 12");
        assert_eq!(escape_typed("vm=Deb ian"), r"vm=Deb\ ian");
    }

    /// The installed script hands the line and the current word to `xe __complete`.
    #[test]
    fn script_calls_the_hidden_command() {
        assert!(BASH_SCRIPT.contains("__complete \"$cur\" \"$line\""));
        assert!(BASH_SCRIPT.contains("complete -o nospace -F _xe_complete xe"));
    }
}
