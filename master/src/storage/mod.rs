//! Storage: SRs, VDIs and what reaches their data. Until oxapi has a storage backend on the
//! master's side, it holds only the VDI rows that snapshots, clones and copies of disks make
//! (`vdi_copies.rs`).

pub(crate) mod vdi_copies;
