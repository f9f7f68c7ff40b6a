//! Storage: SRs, VDIs and what reaches their data. Until oxapi has a storage backend on the
//! master's side, it holds only the VDI rows that snapshots, clones and copies of disks make
//! (`vdi_copies.rs`); and what it decides for the HTTP handlers that move a VDI's bytes
//! (`raw_vdi.rs`).

pub mod raw_vdi;
pub(crate) mod vdi_copies;
