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
