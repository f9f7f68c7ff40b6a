//! The pool DB of a new one-host pool: the pool row, this host with its metrics and CPUs, the
//! default network and its PIF, a local SR and its PBD, the control domain and a few templates.

/// What `member` reads from the machine, so that the master can describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostFacts {
    pub hostname: String,
    /// The management address (the IP the XenAPI listens on).
    pub address: String,
    pub memory_total_bytes: u64,
    pub cpus: Vec<CpuFacts>,
    /// The network interface the management address belongs to, e.g. `eth0` (or `lo`).
    pub management_device: String,
    /// The MAC address of that interface, `""` when unknown.
    pub management_mac: String,
    /// Where the local SR keeps its disks.
    pub local_sr_path: String,
    /// Bytes of space the local SR's filesystem holds, and bytes in use.
    pub local_sr_size_bytes: u64,
    pub local_sr_used_bytes: u64,
}

/// One logical CPU, from /proc/cpuinfo.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuFacts {
    pub number: u32,
    pub vendor: String,
    pub model_name: String,
    pub family: u32,
    pub model: u32,
    pub stepping: String,
    pub speed_mhz: u64,
    pub flags: String,
}

use db_schema::Txn;

/// The refs a new pool's first host is known by, chosen by `member` and kept in its identity
/// file.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstHost {
    pub host_ref: String,
    pub host_uuid: String,
}

/// The Txn that fills an empty DB with a new one-host pool. `root_password` is stored only as an
/// argon2 hash.
pub fn new_pool(facts: &HostFacts, first: &FirstHost, now_unix: i64, root_password: &str) -> Txn {
    let _ = (facts, first, now_unix, root_password);
    todo!()
}
