//! Helpers for the integration tests and the benchmark: real `oxapi` processes on loopback
//! addresses (`host`), a XenAPI client that pins their certificates (`client`), halted VMs
//! to work on (`vms`), a wall clock of a process's own (`faketime`), a small tmpfs disk for
//! a host's data dir (`disk`), a host's storage as the `file` driver keeps it (`storage`), the
//! QEMUs of a qemu host (`qemu`) and the real Linux test guest with its serial log (`guest`).
//!
//! The tests themselves live beside this crate's `src/`: `wire/` (XML-RPC, JSON-RPC, the
//! listeners and the limits on requests and connections, bad input included), `auth/`
//! (password logins under attack), `hostile/` (the data dir's modes, the size of Raft
//! entries), `durability/` (kill -9 under a write load) and `cluster/` (pools of several
//! hosts, with `cluster`'s harness); `guest/` holds the test guest's builder and the test
//! that boots it under bare QEMU. The Python SDK tests are in `python/`; `run` runs all
//! of them.

pub mod client;
pub mod cluster;
pub mod disk;
pub mod events;
pub mod faketime;
pub mod guest;
pub mod host;
pub mod qemu;
pub mod storage;
pub mod vms;

pub use client::{Client, Protocol, logged_in};
pub use guest::{SerialLog, TestGuest, qemu_available, test_guest};
pub use host::{Host, HostOptions, memory_bytes, read_simulator_state};
