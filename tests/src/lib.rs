//! Helpers for the integration tests and the benchmark: real `oxapi` processes on loopback
//! addresses (`host`), a small tmpfs disk for a host's data dir (`disk`), a XenAPI client that pins their certificates (`client`) and halted VMs
//! to work on (`vms`).
//!
//! The tests themselves live beside this crate's `src/`: `wire/` (XML-RPC, JSON-RPC, the
//! listeners and the limits on requests and connections, bad input included), `durability/` (kill -9 under a write load) and `cluster/`
//! (pools of several hosts, with `cluster`'s harness). The Python SDK
//! tests are in `python/`; `run` runs all of them.

pub mod client;
pub mod cluster;
pub mod disk;
pub mod events;
pub mod host;
pub mod vms;

pub use client::{Client, Protocol, logged_in};
pub use host::{Host, HostOptions, memory_bytes};
