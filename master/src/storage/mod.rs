//! Storage: SRs, VDIs and what reaches their data: how a host reaches an SR (`sr_spec.rs`)
//! and the VDI rows that snapshots, clones and copies of disks make (`vdi_copies.rs`).

pub(crate) mod sr_spec;
pub(crate) mod vdi_copies;
