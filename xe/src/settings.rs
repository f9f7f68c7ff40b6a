//! Where xe connects and as whom, from its sources in xapi's xe order of precedence: the command
//! line, then `XE_EXTRA_ARGS`, then the `~/.xe` file, then the defaults. Also the files xe keeps
//! under the home directory.

use std::path::{Path, PathBuf};

use crate::args::{self, CommandLine, Params};
use crate::error::XeError;

/// The port of the XenAPI over HTTPS unless told otherwise.
pub const DEFAULT_TLS_PORT: u16 = 443;
/// The port of plain HTTP (`--nossl`).
pub const DEFAULT_PLAIN_PORT: u16 = 80;

/// The files xe reads and writes, all under the home directory (`$HOME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `~/.xe`: `name=value` lines (`server=`, `port=`, `username=`, `password=`, …).
    pub rc: PathBuf,
    /// `~/.xe.d/known_hosts`: the certificate fingerprint trusted for each `host:port`.
    pub known_hosts: PathBuf,
    /// `~/.xe.d/pool_members`: for each server xe was pointed at, the pool members it saw.
    pub pool_members: PathBuf,
}

impl Paths {
    pub fn under(home: &Path) -> Paths {
        let dir = home.join(".xe.d");
        Paths {
            rc: home.join(".xe"),
            known_hosts: dir.join("known_hosts"),
            pool_members: dir.join("pool_members"),
        }
    }

    /// The paths under `$HOME`, if it is set.
    pub fn from_env() -> Option<Paths> {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|home| Paths::under(Path::new(&home)))
    }
}

/// The resolved connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub server: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    /// HTTPS unless `--nossl`.
    pub use_tls: bool,
    /// Skip the certificate check (`--no-verify`).
    pub no_verify: bool,
}

impl Settings {
    /// `host:port`, the key of the known-hosts and pool-members files.
    pub fn address(&self) -> String {
        address(&self.server, self.port)
    }
}

/// `host:port`, with brackets around an IPv6 literal.
pub fn address(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The `name=value` lines of an rc file; blank lines and `#` comments are skipped.
pub fn parse_rc(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .collect()
}

/// What the three sources give, lowest precedence first.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `~/.xe`, parsed.
    pub rc: Vec<(String, String)>,
    /// `XE_EXTRA_ARGS`, split.
    pub extra_args: Vec<String>,
}

impl Sources {
    /// Reads `~/.xe` (if there) and `XE_EXTRA_ARGS`.
    pub fn from_env(paths: Option<&Paths>) -> Result<Sources, XeError> {
        let rc = match paths {
            Some(paths) => match std::fs::read_to_string(&paths.rc) {
                Ok(text) => parse_rc(&text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(source) => {
                    return Err(XeError::Read {
                        path: paths.rc.clone(),
                        source,
                    });
                }
            },
            None => Vec::new(),
        };
        let extra_args = std::env::var("XE_EXTRA_ARGS")
            .map(|text| args::split_extra_args(&text))
            .unwrap_or_default();
        Ok(Sources { rc, extra_args })
    }
}

/// Resolves the settings: each source overrides the one before it (defaults, `~/.xe`,
/// `XE_EXTRA_ARGS`, the command line), and a password file, wherever it was named, supplies
/// the user name and password last, as in xapi's xe. Parameters from `~/.xe` and
/// `XE_EXTRA_ARGS` that are not keywords are added to the command's, below those given on the
/// command line.
pub fn resolve(line: &mut CommandLine, sources: &Sources) -> Result<Settings, XeError> {
    let mut values = Values::default();
    for (k, v) in &sources.rc {
        if !values.set(k, v)? {
            line.params.push_default(k, v);
        }
    }
    let extra = args::parse(sources.extra_args.iter().cloned());
    for (k, v) in &extra.keywords {
        values.set(k, v)?;
    }
    for (k, v) in &line.keywords {
        values.set(k, v)?;
    }
    merge_below(&mut line.params, &extra.params);
    if let Some(path) = values.passwordfile.clone() {
        let (username, password) = read_password_file(Path::new(&path))?;
        values.username = Some(username);
        values.password = Some(password);
    }
    let use_tls = !values.nossl;
    Ok(Settings {
        server: values.server.unwrap_or_else(|| "127.0.0.1".to_owned()),
        port: values.port.unwrap_or(if use_tls {
            DEFAULT_TLS_PORT
        } else {
            DEFAULT_PLAIN_PORT
        }),
        username: values.username.unwrap_or_else(|| "root".to_owned()),
        password: values.password.unwrap_or_default(),
        use_tls,
        no_verify: values.no_verify,
    })
}

/// Adds `lower`'s parameters that `params` does not give.
fn merge_below(params: &mut Params, lower: &Params) {
    for (k, v) in lower.iter() {
        params.push_default(k, v);
    }
}

#[derive(Debug, Default)]
struct Values {
    server: Option<String>,
    port: Option<u16>,
    username: Option<String>,
    password: Option<String>,
    passwordfile: Option<String>,
    nossl: bool,
    no_verify: bool,
}

impl Values {
    /// Applies a keyword; `false` if `key` is not one.
    fn set(&mut self, key: &str, value: &str) -> Result<bool, XeError> {
        match key {
            "server" => self.server = Some(value.to_owned()),
            "port" => {
                let port = value.trim().parse().map_err(|_| XeError::InvalidValue {
                    name: "port".to_owned(),
                    reason: format!("'{value}' is not a port number (1-65535)"),
                })?;
                self.port = Some(port);
            }
            "username" => self.username = Some(value.to_owned()),
            "password" => self.password = Some(value.to_owned()),
            "passwordfile" => self.passwordfile = Some(value.to_owned()),
            "nossl" => self.nossl = args::is_true(value),
            "no-verify" => self.no_verify = args::is_true(value),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A password file as xapi's xe reads it: the user name on the first line, the password on
/// the second.
fn read_password_file(path: &Path) -> Result<(String, String), XeError> {
    let text = std::fs::read_to_string(path).map_err(|source| XeError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(user), Some(password)) => Ok((user.to_owned(), password.to_owned())),
        _ => Err(XeError::PasswordFile {
            path: path.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(args: &[&str]) -> CommandLine {
        args::parse(args.iter().map(|a| a.to_string()))
    }

    fn sources(rc: &str, extra: &str) -> Sources {
        Sources {
            rc: parse_rc(rc),
            extra_args: args::split_extra_args(extra),
        }
    }

    /// The command line beats `XE_EXTRA_ARGS`, which beats `~/.xe`, which beats the defaults.
    #[test]
    fn flags_beat_environment_beat_rc_file_beat_defaults() {
        let src = sources(
            "server=rc-host\nport=1111\nusername=rc-user\npassword=rc-pw\n",
            "server=env-host,port=2222",
        );
        let got = resolve(&mut line(&["vm-list", "-s", "flag-host"]), &src).expect("valid");
        assert_eq!(got.server, "flag-host");
        assert_eq!(got.port, 2222);
        assert_eq!(got.username, "rc-user");
        assert_eq!(got.password, "rc-pw");
        let defaults = resolve(&mut line(&["vm-list"]), &Sources::default()).expect("valid");
        assert_eq!(
            (
                defaults.server.as_str(),
                defaults.port,
                defaults.username.as_str()
            ),
            ("127.0.0.1", DEFAULT_TLS_PORT, "root")
        );
    }

    /// Non-keyword lines of `~/.xe` and `XE_EXTRA_ARGS` become parameters below the command
    /// line's.
    #[test]
    fn other_rc_lines_become_parameters_below_the_command_line() {
        let src = sources("minimal=true\nparams=uuid\n", "params=name-label");
        let mut cmd = line(&["vm-list", "params=all"]);
        resolve(&mut cmd, &src).expect("valid");
        assert_eq!(cmd.params.get("params"), Some("all"));
        assert_eq!(cmd.params.get("minimal"), Some("true"));
    }

    /// A password file gives the user and password, whatever else says so.
    #[test]
    fn password_file_gives_user_and_password() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "admin\ns3cret\n").expect("written");
        let file = file.to_str().expect("a UTF-8 temp path");
        let mut cmd = line(&["vm-list", "-pw", "other", "-pwf", file]);
        let got = resolve(&mut cmd, &Sources::default()).expect("valid");
        assert_eq!(
            (got.username.as_str(), got.password.as_str()),
            ("admin", "s3cret")
        );
    }

    /// A bad port is refused with the keyword's name.
    #[test]
    fn bad_port_names_the_keyword() {
        let err =
            resolve(&mut line(&["x", "-p", "http"]), &Sources::default()).expect_err("refused");
        assert!(matches!(err, XeError::InvalidValue { ref name, .. } if name == "port"));
    }

    /// `--nossl` switches to plain HTTP and its default port.
    #[test]
    fn nossl_uses_plain_http_port() {
        let got = resolve(&mut line(&["x", "--nossl"]), &Sources::default()).expect("valid");
        assert!(!got.use_tls);
        assert_eq!(got.port, DEFAULT_PLAIN_PORT);
    }

    /// IPv6 literals are bracketed in `host:port`.
    #[test]
    fn ipv6_addresses_are_bracketed() {
        assert_eq!(address("::1", 443), "[::1]:443");
        assert_eq!(address("h", 443), "h:443");
    }
}
