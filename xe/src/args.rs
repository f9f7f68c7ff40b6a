//! The command line as xe reads it: the command, `name=value` parameters, switches (`--force`
//! is the parameter `force=true`, as in xapi's xe) and the connection options (`-s`, `-p`, `-u`,
//! `-pw`, `-pwf`, or the same as keywords: `server=`, `port=`, …).

/// The connection keywords: given on the command line, in `XE_EXTRA_ARGS` or in `~/.xe`, they
/// configure the connection and are never passed to a command.
pub const KEYWORDS: &[&str] = &[
    "server",
    "port",
    "username",
    "password",
    "passwordfile",
    "nossl",
    "no-verify",
];

/// The parameters of a command, in the order given. A name given twice keeps its first value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    items: Vec<(String, String)>,
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether a switch is on: `--force`, `force=true`, `force=yes` or `force=1`.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(is_true)
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.items.push((name.into(), value.into()));
    }

    /// Adds a parameter only if it is not given already (a lower-precedence source).
    pub fn push_default(&mut self, name: &str, value: &str) {
        if !self.has(name) {
            self.push(name, value);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.items.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Whether a parameter value means "on".
pub fn is_true(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "true" | "yes" | "on" | "1"
    )
}

/// A parsed command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandLine {
    /// The first word that is neither an option nor a parameter.
    pub command: Option<String>,
    /// Further bare words (`xe help vm-start`).
    pub positionals: Vec<String>,
    pub params: Params,
    /// Connection keywords, in the order given.
    pub keywords: Vec<(String, String)>,
    /// `--help` or `-help` was given.
    pub wants_help: bool,
}

/// The keyword a short option stands for, as xapi's xe spells them (`-h` is the server too).
fn short_option(arg: &str) -> Option<&'static str> {
    Some(match arg {
        "-s" | "-h" => "server",
        "-p" => "port",
        "-u" => "username",
        "-pw" => "password",
        "-pwf" => "passwordfile",
        _ => return None,
    })
}

/// Splits the arguments (without the program name).
pub fn parse(args: impl IntoIterator<Item = String>) -> CommandLine {
    let mut line = CommandLine::default();
    let mut args = args.into_iter().peekable();
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-help" {
            line.wants_help = true;
        } else if let Some(keyword) = short_option(&arg) {
            match args.next() {
                Some(value) => line.keywords.push((keyword.to_owned(), value)),
                None => line.positionals.push(arg),
            }
        } else if let Some(name) = arg.strip_prefix("--").filter(|n| !n.is_empty()) {
            let (name, value) = name.split_once('=').unwrap_or((name, "true"));
            add_pair(&mut line, name, value);
        } else if let Some((name, value)) = arg.split_once('=').filter(|(n, _)| !n.is_empty()) {
            add_pair(&mut line, name, value);
        } else if line.command.is_none() {
            line.command = Some(arg);
        } else {
            line.positionals.push(arg);
        }
    }
    line
}

fn add_pair(line: &mut CommandLine, name: &str, value: &str) {
    if KEYWORDS.contains(&name) {
        line.keywords.push((name.to_owned(), value.to_owned()));
    } else {
        line.params.push(name, value);
    }
}

/// Splits `XE_EXTRA_ARGS` as xapi's xe does: items separated by commas, `\,` a comma inside an
/// item; each item is `name=value` or a `--switch`.
pub fn split_extra_args(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            ',' => {
                if !current.is_empty() {
                    items.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        items.push(current);
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(args: &[&str]) -> CommandLine {
        parse(args.iter().map(|a| a.to_string()))
    }

    /// Short options become connection keywords; the rest are the command and its parameters.
    #[test]
    fn short_options_are_keywords_and_the_rest_parameters() {
        let got = line(&[
            "vm-start", "-s", "pool-a", "-pw", "secret", "vm=my vm", "--force", "-pwf", "pw-file",
        ]);
        assert_eq!(got.command.as_deref(), Some("vm-start"));
        assert_eq!(
            got.keywords,
            [
                ("server".to_owned(), "pool-a".to_owned()),
                ("password".to_owned(), "secret".to_owned()),
                ("passwordfile".to_owned(), "pw-file".to_owned()),
            ]
        );
        assert_eq!(got.params.get("vm"), Some("my vm"));
        assert!(got.params.flag("force"));
        assert!(!got.params.flag("multiple"));
    }

    /// Keywords may also be written `name=value`, as in `~/.xe` and `XE_EXTRA_ARGS`.
    #[test]
    fn keywords_written_as_parameters_configure_the_connection() {
        let got = line(&["vm-list", "server=h", "port=4443", "params=all"]);
        assert_eq!(got.keywords.len(), 2);
        assert_eq!(got.params.get("params"), Some("all"));
        assert_eq!(got.params.get("server"), None);
    }

    /// The first value of a parameter given twice wins, and a default never overrides it.
    #[test]
    fn first_value_wins_and_defaults_do_not_override() {
        let mut params = line(&["x", "a=1", "a=2"]).params;
        params.push_default("a", "3");
        params.push_default("b", "4");
        assert_eq!(params.get("a"), Some("1"));
        assert_eq!(params.get("b"), Some("4"));
    }

    /// Bare words after the command are positionals (`xe help vm-start`).
    #[test]
    fn bare_words_after_the_command_are_positionals() {
        let got = line(&["help", "vm-start", "--all"]);
        assert_eq!(got.command.as_deref(), Some("help"));
        assert_eq!(got.positionals, ["vm-start"]);
        assert!(got.params.flag("all"));
    }

    /// `XE_EXTRA_ARGS` splits on commas, except escaped ones.
    #[test]
    fn extra_args_split_on_unescaped_commas() {
        assert_eq!(
            split_extra_args(r"server=h,password=a\,b,,--debug"),
            ["server=h", "password=a,b", "--debug"]
        );
    }
}
