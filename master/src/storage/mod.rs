//! Storage: SRs, VDIs and what reaches their data: how a host reaches an SR (`sr_spec.rs`),
//! a VDI's volume made, changed and deleted through that host's storage driver
//! (`volumes.rs`), the VDI rows that snapshots, clones and copies of disks make
//! (`vdi_copies.rs`), an SR's `virtual_allocation` kept by every Txn (`allocation.rs`), and
//! what it decides for the HTTP handlers that move a VDI's bytes (`raw_vdi.rs`).

pub(crate) mod allocation;
pub mod raw_vdi;
pub(crate) mod sr_spec;
pub(crate) mod vdi_copies;
pub(crate) mod volumes;
