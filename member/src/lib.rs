//! What every host of an oxapi pool runs: the `oxapi` binary and the parts it wires.
//!
//! - `config.rs`: the one `Config` (JSON file, overridden by flags) and its validation.
//! - `run/`: start-up and shutdown: a new pool or a restart, then the parts in named steps
//!   (`start.rs`: peers, Raft node, agent, links, master, listeners), the signals, and the one
//!   shutdown path (`stop.rs`). Start reading here.
//! - `data_dir.rs`: the data dir made and kept the owner's only (it holds the pool secret).
//! - `error_chain.rs`: an error and its causes as one line, for logs and reported reasons.
//! - `facts.rs`: what a new pool's host row says about this machine (CPUs, memory, addresses).
//! - `identity.rs`: this host's `identity.json` (host ref and uuid, Raft node id), written before
//!   the pool is bootstrapped, and the atomic file write the data dir uses.
//! - `raft/`: the replicated pool DB (raft-rs, log in redb) behind `master::db::ReplicatedDb`.
//! - `peer/`: the transport between pool members (one framed stream per peer over the HTTPS
//!   port) and the membership book.
//! - `data_plane/`: bulk bytes between hosts (`PUT /data/<token>` on the HTTPS port, pinned
//!   certificate, pool secret and a one-use token), streamed with bounded memory, apart from the
//!   peer streams.
//! - The host agent is the `agent` crate; the master reaches it through `links::PoolLink`
//!   (this host's agent directly, another host's over the peer stream), and its
//!   `AgentReport`s go to `Master::report`.
//! - `space.rs`: the room the pool DB has on this host's disk (a reserve and a quota), which
//!   heartbeats report so that the pool refuses writes before a disk fills up.
//! - `links/`: what travels between this host and the others over the peer streams: calls
//!   forwarded to the leader (event reads answered locally), actions to other hosts' agents,
//!   reports and heartbeats to the leader; fencing, and the master role turned on and off with
//!   Raft leadership.
//! - `front/`: the XenAPI over HTTPS, plain HTTP and the Unix socket; XML-RPC and JSON-RPC in,
//!   `master::Master::call` behind; the simulator's test-only control on the Unix socket.
//!
//! The master's policy lives in the `master` crate; member holds the edges: sockets, files,
//! time (`run::SystemClock`) and the environment (`OXAPI_ROOT_PASSWORD` on a pool's first start).

pub mod config;
pub mod data_dir;
pub mod data_plane;
mod error_chain;
pub mod facts;
pub mod front;
pub mod identity;
pub mod links;
pub mod peer;
pub mod pool;
pub mod raft;
pub mod run;
pub mod space;
