//! The contract between a pool's master and the agent of each host, and nothing else: what the
//! master hands an agent (`spec`), what it asks (`action`), what the agent answers and reports
//! (`report`), why an action failed (`failure`), and the version of all of it (`protocol`).
//!
//! Everything here is plain data with serde: it crosses the peer stream between two hosts as
//! MessagePack, or stays in the process when the master and the agent share a host.

mod action;
mod failure;
pub mod overhead;
mod protocol;
mod report;
mod spec;

pub use action::{HostAction, NetworkAction, StorageAction, TransferToken, VmAction};
pub use failure::{AgentFailure, PowerState, StorageOperation};
pub use protocol::PROTOCOL_VERSION;
pub use report::{
    ActionResult, AgentReport, ConsoleInfo, DomainInfo, DomainState, GuestEvent, HostHealth,
    HypervisorInfo, SrUsage, VdiInfo,
};
pub use spec::{
    AfterCrash, AfterShutdown, DiskSpec, ImageFormat, SrSpec, VbdKind, VbdSpec, VifSpec, VmSpec,
};
