//! `oxapi`: flags, configuration, logs, run.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use member::config::{BackendKind, Config, Overrides};
use tracing_subscriber::EnvFilter;

/// One host of an oxapi pool: the XenAPI over HTTPS, on a Raft-replicated pool database.
#[derive(Debug, Parser)]
#[command(name = "oxapi", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs this host: creates a new one-host pool on the first start, then serves the XenAPI
    /// until SIGTERM or SIGINT.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// A JSON config file; flags override what it sets.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where this host keeps its Raft log, TLS key and identity [default: oxapi-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The HTTPS address of the XenAPI [default: 127.0.0.1:4443].
    #[arg(long, value_name = "IP:PORT")]
    listen: Option<SocketAddr>,
    /// Also serve the XenAPI over plain HTTP on this address.
    #[arg(long, value_name = "IP:PORT")]
    http_listen: Option<SocketAddr>,
    /// The Unix socket of local, trusted calls [default: <DIR>/xapi.sock].
    #[arg(long, value_name = "PATH")]
    unix_socket: Option<PathBuf>,
    /// The drivers of the host agent (hypervisor, storage, network) [default: simulator].
    #[arg(long, value_name = "NAME")]
    backend: Option<BackendKind>,
    /// Log filter, as in RUST_LOG (which is used when this is absent) [default: info].
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,
}

fn main() -> ExitCode {
    // Everything oxapi writes is its user's alone (the data dir holds the pool secret), whatever
    // umask it was started with; children (hooks) inherit it.
    // SAFETY: umask(2) only sets this process's file mode mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
    // One process-wide crypto provider, before anything can ask rustls for the default.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
    }
}

/// Blocks from this size up are mapped on their own, and unmapped when freed.
#[cfg(target_env = "gnu")]
const MMAP_THRESHOLD_BYTES: libc::c_int = 4 << 20;

/// Makes the allocator give large blocks back to the system when they are freed. glibc's
/// threshold for that rises with the largest block freed so far, after which a thread's freed
/// blocks of that size stay in its arena: each argon2 check (19 MiB) left its memory
/// resident, hundreds of MiB after a burst of wrong passwords. Called before the runtime
/// starts any other thread.
fn map_large_blocks_on_their_own() {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: mallopt(3) sets a tuning parameter of the allocator; no other thread runs yet.
        let is_set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) } == 1;
        if !is_set {
            tracing::warn!("the allocator's mmap threshold could not be set");
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let filter = match &args.log {
        Some(filter) => EnvFilter::try_new(filter),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    };
    let filter = match filter {
        Ok(filter) => filter,
        Err(err) => {
            eprintln!("oxapi: invalid log filter: {err}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    map_large_blocks_on_their_own();

    let overrides = Overrides {
        data_dir: args.data_dir,
        listen: args.listen,
        http_listen: args.http_listen,
        unix_socket: args.unix_socket,
        backend: args.backend,
    };
    let config = match Config::load(args.config.as_deref(), overrides) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!(
                error = &err as &dyn std::error::Error,
                "invalid configuration"
            );
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(
                error = &err as &dyn std::error::Error,
                "cannot start the runtime"
            );
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(member::run::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = &err as &dyn std::error::Error, "oxapi stopped");
            ExitCode::FAILURE
        }
    }
}
