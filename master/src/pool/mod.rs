//! Hosts and the pool: what the master does for the pool as a whole rather than for one call.
//!
//! `bootstrap.rs` (and `bootstrap/`) writes the pool DB of a new pool and the rows a joining
//! host brings. `control.rs` is `PoolControl`, what the pool handlers need from `member` (Raft
//! membership, leadership transfer, joins), and the pool's membership as the DB holds it.
//! `liveness.rs` keeps `host_metrics.live` and halts the VMs of a silent host; `reconcile/`
//! makes the DB agree with what agents report, and takes over when this host becomes master
//! (`reconcile/takeover.rs`, which ends the task of a hand-over: `handover.rs`).
//! `evacuation.rs` plans where a host's VMs go; `alerts.rs` raises alerts about the pool itself
//! (a split pool, a failed store, a skewed clock).

pub(crate) mod alerts;
pub mod bootstrap;
pub mod control;
pub(crate) mod evacuation;
pub(crate) mod handover;
pub(crate) mod liveness;
pub(crate) mod reconcile;
