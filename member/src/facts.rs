//! Reading the machine for a new pool's host row: hostname, management address and interface,
//! memory, CPUs and the local SR's filesystem.

use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use master::pool::bootstrap::{CpuFacts, HostFacts};

use crate::config::SimulatedCpu;

/// The directory, in the data dir, where the local SR keeps its disks.
pub const LOCAL_SR_DIR: &str = "sr";

/// Why the machine could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} has no {what}")]
    Missing { path: PathBuf, what: &'static str },
    #[error("cannot create the local SR directory {path}")]
    CreateSr {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the filesystem size of {path}")]
    Statvfs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One address of a network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub interface: String,
    pub address: IpAddr,
    pub netmask: Option<IpAddr>,
}

/// Reads everything a new pool's host row needs. `listen_ip` is the XenAPI's listen address;
/// the local SR directory is created under `data_dir` if missing. The CPUs show the vendor and
/// flags of `presented_cpu` when the backend presents its own.
pub fn read(
    data_dir: &Path,
    listen_ip: IpAddr,
    presented_cpu: Option<&SimulatedCpu>,
) -> Result<HostFacts, FactsError> {
    let hostname = hostname()?;
    let meminfo_path = Path::new("/proc/meminfo");
    let memory_total_bytes =
        parse_meminfo(&read_text(meminfo_path)?).ok_or_else(|| FactsError::Missing {
            path: meminfo_path.to_owned(),
            what: "MemTotal",
        })?;
    let cpuinfo_path = Path::new("/proc/cpuinfo");
    let mut cpus = parse_cpuinfo(&read_text(cpuinfo_path)?);
    if cpus.is_empty() {
        return Err(FactsError::Missing {
            path: cpuinfo_path.to_owned(),
            what: "processor",
        });
    }
    if let Some(presented) = presented_cpu {
        for cpu in &mut cpus {
            cpu.vendor.clone_from(&presented.vendor);
            cpu.flags.clone_from(&presented.flags);
        }
    }

    let addresses = interface_addresses();
    let address = management_address_among(listen_ip, &addresses, &default_route_interface());
    let management_device = owner_of(address, &addresses)
        .map(|a| a.interface.clone())
        .unwrap_or_else(|| "lo".to_owned());
    let management_mac = std::fs::read_to_string(
        Path::new("/sys/class/net")
            .join(&management_device)
            .join("address"),
    )
    .map(|mac| mac.trim().to_owned())
    .unwrap_or_default();

    let sr_path = data_dir.join(LOCAL_SR_DIR);
    std::fs::create_dir_all(&sr_path).map_err(|source| FactsError::CreateSr {
        path: sr_path.clone(),
        source,
    })?;
    let usage = agent::backend::storage::filesystem_usage(&sr_path).map_err(|source| {
        FactsError::Statvfs {
            path: sr_path.clone(),
            source,
        }
    })?;
    let local_sr_path = std::path::absolute(&sr_path).unwrap_or(sr_path);

    Ok(HostFacts {
        hostname,
        address: address.to_string(),
        memory_total_bytes,
        cpus,
        management_device,
        management_mac,
        local_sr_path: local_sr_path.to_string_lossy().into_owned(),
        local_sr_size_bytes: usage.physical_size_bytes,
        local_sr_used_bytes: usage.physical_utilisation_bytes,
    })
}

/// This machine's hostname.
pub fn hostname() -> Result<String, FactsError> {
    Ok(read_text(Path::new("/proc/sys/kernel/hostname"))?
        .trim()
        .to_owned())
}

/// The management address for a listen address: the address itself, or for `0.0.0.0` / `::`
/// the address of the default-route interface (else any non-loopback IPv4, else 127.0.0.1).
pub fn management_address(listen_ip: IpAddr) -> IpAddr {
    if !listen_ip.is_unspecified() {
        return listen_ip;
    }
    management_address_among(
        listen_ip,
        &interface_addresses(),
        &default_route_interface(),
    )
}

fn management_address_among(
    listen_ip: IpAddr,
    addresses: &[InterfaceAddress],
    default_interface: &Option<String>,
) -> IpAddr {
    if !listen_ip.is_unspecified() {
        return listen_ip;
    }
    let ipv4_of = |want: &dyn Fn(&InterfaceAddress) -> bool| {
        addresses
            .iter()
            .find(|a| a.address.is_ipv4() && want(a))
            .map(|a| a.address)
    };
    default_interface
        .as_ref()
        .and_then(|name| ipv4_of(&|a| &a.interface == name))
        .or_else(|| ipv4_of(&|a| !a.address.is_loopback()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// The interface address that owns `ip`: the one equal to it, else the one whose subnet holds it
/// (all of 127.0.0.0/8 belongs to `lo`).
pub fn owner_of(ip: IpAddr, addresses: &[InterfaceAddress]) -> Option<&InterfaceAddress> {
    addresses.iter().find(|a| a.address == ip).or_else(|| {
        addresses.iter().find(|a| match (a.address, a.netmask, ip) {
            (IpAddr::V4(addr), Some(IpAddr::V4(mask)), IpAddr::V4(ip)) => {
                addr.to_bits() & mask.to_bits() == ip.to_bits() & mask.to_bits()
            }
            (IpAddr::V6(addr), Some(IpAddr::V6(mask)), IpAddr::V6(ip)) => {
                addr.to_bits() & mask.to_bits() == ip.to_bits() & mask.to_bits()
            }
            _ => false,
        })
    })
}

/// `MemTotal` of /proc/meminfo, in bytes.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        let mut words = rest.split_whitespace();
        let number: u64 = words.next()?.parse().ok()?;
        match words.next() {
            Some("kB") => number.checked_mul(1024),
            None => Some(number),
            Some(_) => None,
        }
    })
}

/// The logical CPUs of /proc/cpuinfo: one block per CPU, separated by blank lines. Missing fields
/// are left empty or 0.
pub fn parse_cpuinfo(text: &str) -> Vec<CpuFacts> {
    let mut cpus = Vec::new();
    let mut current: Option<CpuFacts> = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            if line.trim().is_empty() {
                cpus.extend(current.take());
            }
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "processor" {
            cpus.extend(current.take());
            current = Some(CpuFacts {
                number: value.parse().unwrap_or(0),
                vendor: String::new(),
                model_name: String::new(),
                family: 0,
                model: 0,
                stepping: String::new(),
                speed_mhz: 0,
                flags: String::new(),
            });
            continue;
        }
        let Some(cpu) = current.as_mut() else {
            continue;
        };
        match key {
            "vendor_id" => cpu.vendor = value.to_owned(),
            "model name" => cpu.model_name = value.to_owned(),
            "cpu family" => cpu.family = value.parse().unwrap_or(0),
            "model" => cpu.model = value.parse().unwrap_or(0),
            "stepping" => cpu.stepping = value.to_owned(),
            "cpu MHz" => {
                cpu.speed_mhz = value
                    .parse::<f64>()
                    .ok()
                    .filter(|mhz| mhz.is_finite() && *mhz >= 0.0)
                    .map_or(0, |mhz| mhz.round() as u64);
            }
            "flags" => cpu.flags = value.to_owned(),
            _ => {}
        }
    }
    cpus.extend(current);
    cpus
}

/// The interface of the default IPv4 route in /proc/net/route (destination and mask 0).
pub fn parse_default_route(text: &str) -> Option<String> {
    text.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [iface, "00000000", _gateway, _flags, _, _, _, "00000000", ..] => {
                Some((*iface).to_owned())
            }
            _ => None,
        }
    })
}

fn default_route_interface() -> Option<String> {
    std::fs::read_to_string("/proc/net/route")
        .ok()
        .and_then(|text| parse_default_route(&text))
}

fn read_text(path: &Path) -> Result<String, FactsError> {
    std::fs::read_to_string(path).map_err(|source| FactsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every address of every interface; empty if the kernel will not tell.
fn interface_addresses() -> Vec<InterfaceAddress> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we own until freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Vec::new();
    }
    let mut addresses = Vec::new();
    let mut cursor = head;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned, not freed yet.
        let entry = unsafe { &*cursor };
        // SAFETY: the address pointers are null or point to a sockaddr of the family they say.
        if let Some(address) = unsafe { sockaddr_ip(entry.ifa_addr) } {
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let interface = unsafe { CStr::from_ptr(entry.ifa_name) }
                .to_string_lossy()
                .into_owned();
            addresses.push(InterfaceAddress {
                interface,
                address,
                // SAFETY: as for ifa_addr.
                netmask: unsafe { sockaddr_ip(entry.ifa_netmask) },
            });
        }
        cursor = entry.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once; no reference into it survives.
    unsafe { libc::freeifaddrs(head) };
    addresses
}

/// The IP address in a sockaddr of family AF_INET or AF_INET6.
///
/// # Safety
/// `sa` is null or points to a valid sockaddr whose size matches its family.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: non-null and valid per the contract; the family says which struct it is.
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET => {
                let sin = &*sa.cast::<libc::sockaddr_in>();
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))))
            }
            libc::AF_INET6 => {
                let sin6 = &*sa.cast::<libc::sockaddr_in6>();
                Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUINFO: &str = "\
processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 85
model name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz
stepping\t: 7
microcode\t: 0x5003604
cpu MHz\t\t: 2499.996
cache size\t: 36608 KB
flags\t\t: fpu vme de pse tsc msr pae mce
bogomips\t: 4999.99

processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 85
model name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz
stepping\t: 7
cpu MHz\t\t: 2500.4
flags\t\t: fpu vme de pse tsc msr pae mce avx512f

";

    const MEMINFO: &str = "\
MemTotal:       24608788 kB
MemFree:        20000000 kB
MemAvailable:   22000000 kB
";

    const ROUTE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t0011A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth0\t00000000\t0111A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
";

    fn address(interface: &str, address: &str, netmask: &str) -> InterfaceAddress {
        InterfaceAddress {
            interface: interface.to_owned(),
            address: address.parse().expect("address"),
            netmask: Some(netmask.parse().expect("netmask")),
        }
    }

    /// Each CPU block of /proc/cpuinfo becomes one CpuFacts with its fields.
    #[test]
    fn cpuinfo_gives_one_entry_per_cpu() {
        let cpus = parse_cpuinfo(CPUINFO);
        assert_eq!(cpus.len(), 2);
        assert_eq!(
            cpus[0],
            CpuFacts {
                number: 0,
                vendor: "GenuineIntel".to_owned(),
                model_name: "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz".to_owned(),
                family: 6,
                model: 85,
                stepping: "7".to_owned(),
                speed_mhz: 2500,
                flags: "fpu vme de pse tsc msr pae mce".to_owned(),
            }
        );
        assert_eq!(cpus[1].number, 1);
        assert_eq!(cpus[1].speed_mhz, 2500);
        assert!(cpus[1].flags.ends_with("avx512f"));
    }

    /// A CPU block without the x86 fields still counts, with those fields empty.
    #[test]
    fn cpuinfo_without_x86_fields_keeps_the_cpu() {
        let cpus = parse_cpuinfo("processor : 0\nBogoMIPS : 50.00\nFeatures : fp asimd\n");
        assert_eq!(cpus.len(), 1);
        assert_eq!(cpus[0].vendor, "");
        assert_eq!(cpus[0].speed_mhz, 0);
    }

    /// MemTotal is read in kB and given in bytes.
    #[test]
    fn meminfo_total_is_in_bytes() {
        assert_eq!(parse_meminfo(MEMINFO), Some(24_608_788 * 1024));
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
        assert_eq!(parse_meminfo("MemTotal: lots kB\n"), None);
    }

    /// The default route's interface is the one with destination and mask 0.
    #[test]
    fn default_route_interface_is_found() {
        assert_eq!(parse_default_route(ROUTE), Some("eth0".to_owned()));
        let no_default = ROUTE.lines().take(2).collect::<Vec<_>>().join("\n");
        assert_eq!(parse_default_route(&no_default), None);
    }

    /// Any 127.x address belongs to lo; a LAN address to its own interface.
    #[test]
    fn owner_of_matches_exact_then_subnet() {
        let addresses = [
            address("lo", "127.0.0.1", "255.0.0.0"),
            address("eth0", "192.168.17.5", "255.255.255.0"),
        ];
        let owner = |ip: &str| owner_of(ip.parse().expect("ip"), &addresses).map(|a| &a.interface);
        assert_eq!(owner("127.12.34.2").map(String::as_str), Some("lo"));
        assert_eq!(owner("192.168.17.5").map(String::as_str), Some("eth0"));
        assert_eq!(owner("10.0.0.1"), None);
    }

    /// For 0.0.0.0 the management address is the default-route interface's.
    #[test]
    fn unspecified_listen_uses_the_default_route_interface() {
        let addresses = [
            address("lo", "127.0.0.1", "255.0.0.0"),
            address("eth1", "10.1.1.1", "255.0.0.0"),
            address("eth0", "192.168.17.5", "255.255.255.0"),
        ];
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let chosen = management_address_among(any, &addresses, &Some("eth0".to_owned()));
        assert_eq!(chosen, "192.168.17.5".parse::<IpAddr>().expect("ip"));
        let chosen = management_address_among(any, &addresses, &None);
        assert_eq!(chosen, "10.1.1.1".parse::<IpAddr>().expect("ip"));
        let chosen = management_address_among(any, &addresses[..1], &None);
        assert_eq!(chosen, IpAddr::V4(Ipv4Addr::LOCALHOST));
        let given = "127.3.4.5".parse().expect("ip");
        assert_eq!(management_address_among(given, &addresses, &None), given);
    }

    /// Reading this machine gives a plausible host and creates the local SR directory.
    #[test]
    fn reading_this_machine_fills_every_fact() {
        let dir = tempfile::tempdir().expect("temp dir");
        let facts = read(dir.path(), "127.0.0.1".parse().expect("ip"), None).expect("facts");
        assert!(!facts.hostname.is_empty());
        assert_eq!(facts.address, "127.0.0.1");
        assert_eq!(facts.management_device, "lo");
        assert!(facts.memory_total_bytes > 0);
        assert!(!facts.cpus.is_empty());
        assert!(dir.path().join(LOCAL_SR_DIR).is_dir());
        assert!(facts.local_sr_size_bytes >= facts.local_sr_used_bytes);
        assert!(facts.local_sr_size_bytes > 0);
    }

    /// A backend's presented CPU replaces the vendor and flags of every CPU, not their count.
    #[test]
    fn a_presented_cpu_replaces_vendor_and_flags() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ip = "127.0.0.1".parse().expect("ip");
        let machine = read(dir.path(), ip, None).expect("facts");
        let presented = SimulatedCpu {
            vendor: "OtherVendor".to_owned(),
            flags: "fpu".to_owned(),
        };
        let facts = read(dir.path(), ip, Some(&presented)).expect("facts");
        assert_eq!(facts.cpus.len(), machine.cpus.len());
        assert!(
            facts
                .cpus
                .iter()
                .all(|cpu| cpu.vendor == "OtherVendor" && cpu.flags == "fpu")
        );
    }
}
