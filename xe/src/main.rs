//! `xe`: the command line of an oxapi pool, from any of its hosts or a workstation.
//!
//! It speaks the XenAPI (JSON-RPC over HTTPS, api-spec's codec) to any host; the commands are
//! xapi's xe's. Start with `commands/mod.rs` (the command table: the generic commands derived
//! from api-spec for every class, then the operation commands), `args.rs` and `settings.rs`
//! (what the command line, `XE_EXTRA_ARGS` and `~/.xe` say), `client.rs` (login with failover
//! over the pool members seen, through api-client; `trust.rs` for the certificates) and `render.rs` /
//! `output.rs` (xe's output format). `complete.rs` is the bash completion.

mod args;
mod client;
mod commands;
mod complete;
mod error;
mod files;
mod help;
mod members;
mod output;
mod render;
mod report;
mod select;
mod settings;
mod tasks;
mod trust;
mod views;

use std::process::ExitCode;

use crate::args::CommandLine;
use crate::client::Login;
use crate::error::XeError;
use crate::settings::{Paths, Sources};

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The completion protocol's arguments are a bash word and a command line, not parameters.
    if let [hidden, cur, line] = argv.as_slice()
        && hidden == "__complete"
    {
        runtime.block_on(complete::run(cur, line));
        return ExitCode::SUCCESS;
    }
    match runtime.block_on(run(args::parse(argv))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{}", report::text(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(mut line: CommandLine) -> Result<(), XeError> {
    let name = match line.command.clone() {
        Some(name) => name,
        None if line.wants_help => return help::run(&line),
        None => {
            eprint!("{}", help::usage());
            return Err(XeError::NoCommand);
        }
    };
    match name.as_str() {
        "help" => return help::run(&line),
        "completion" => {
            output::print(complete::BASH_SCRIPT);
            return Ok(());
        }
        _ => {}
    }
    let command = commands::find(&name).ok_or(XeError::UnknownCommand { name })?;
    if line.wants_help {
        output::print(&help::describe(command));
        return Ok(());
    }
    if let Some(arg) = line.positionals.first() {
        return Err(XeError::UnexpectedArgument { arg: arg.clone() });
    }
    let paths = Paths::from_env();
    let sources = Sources::from_env(paths.as_ref())?;
    let settings = settings::resolve(&mut line, &sources)?;
    command.check(&line.params)?;
    let how = if command.local_login {
        Login::Local
    } else {
        Login::Pool
    };
    let session = client::connect(&settings, paths.as_ref(), how).await?;
    let mut result = commands::run(command, &session, &line.params).await;
    if let Err(XeError::Api { error, .. }) = &mut result {
        report::name_objects(&session, error).await;
    }
    session.logout().await;
    result
}
