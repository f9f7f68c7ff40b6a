//! Test pools of several real `oxapi` hosts: start them on a loopback /24 of their own, join
//! them with `pool.join`, kill, freeze and restart hosts, cut the network between them, run a
//! write load and check the history of the run.
//!
//! `node` is one process; `pool` the cluster and its master; `net` the addresses and the
//! iptables partitions; `load` the write load; `history` the checks; `vm` VMs for the tests;
//! `watch` a host's liveness and the pool's messages.

pub mod history;
pub mod load;
pub mod net;
pub mod node;
pub mod pool;
pub mod vm;
pub mod watch;

pub use history::{History, VmWatch, assert_history};
pub use load::Load;
pub use net::{Firewall, skipped};
pub use node::{Node, NodeSetup, NodeState};
pub use pool::{Cluster, ClusterOptions};
