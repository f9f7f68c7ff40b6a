//! Storage: SRs, VDIs and what reaches their data: how a host reaches an SR (`sr_spec.rs`),
//! a VDI's volume made, changed and deleted through that host's storage driver
//! (`volumes.rs`), and the VDI rows that snapshots, clones and copies of disks make
//! (`vdi_copies.rs`).

pub(crate) mod sr_spec;
pub(crate) mod vdi_copies;
pub(crate) mod volumes;
