//! The network of a test pool: a loopback /24 of its own (127.0.X.0, held with a lock file so
//! that concurrent test processes never share one), and partitions made with real packet drops
//! in an iptables chain of its own, hooked into INPUT and always removed.

use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;

/// Prefix of the iptables chains the tests create: `OXAPI_TEST_<pid>_<X>`.
const CHAIN_PREFIX: &str = "OXAPI_TEST_";
/// The built-in chain the tests' chains hook into (see `Firewall`).
const HOOK: &str = "INPUT";

/// A 127.0.X.0/24 block held by this process until dropped; hosts get 127.0.X.1, .2, …
///
/// The harnesses of `host.rs` and the Python tests use 127.A.B.C with A ≥ 1, so second byte 0
/// is the cluster tests' alone.
pub struct Subnet {
    pub third: u8,
    /// Holds the flock; the kernel releases it when the process dies.
    _lock: File,
}

impl Subnet {
    /// Takes the first free block, starting from one the pid picks.
    pub fn take() -> Subnet {
        let start = std::process::id() as usize;
        for i in 0..254 {
            let third = ((start + i) % 254 + 1) as u8;
            let path = std::env::temp_dir().join(format!("oxapi-cluster-127.0.{third}.lock"));
            let Ok(file) = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
            else {
                continue;
            };
            // SAFETY: flock(2) on a file descriptor this function owns.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Subnet { third, _lock: file };
            }
        }
        panic!("every 127.0.X.0/24 block is in use by another test process");
    }

    /// The address of host `index` (from 0).
    pub fn host(&self, index: usize) -> Ipv4Addr {
        assert!(index < 250, "at most 250 hosts per cluster");
        Ipv4Addr::new(127, 0, self.third, index as u8 + 1)
    }
}

/// Prints, where a test run shows it (not captured by the test harness), that a test skipped.
pub fn skipped(test: &str, reason: &str) {
    let mut err = std::io::stderr();
    let _ = writeln!(err, "skipped: {test}: {reason}");
}

/// Why partitions cannot be made here.
#[derive(Debug)]
pub struct Unsupported(pub String);

/// An iptables chain of this test's own that drops packets between chosen addresses.
///
/// Hosts reach each other from their own address (their outgoing peer connections are bound to
/// it), while test clients come from 127.0.0.1: a partition cuts hosts from hosts, never the
/// test from a host.
///
/// Packets are dropped where they arrive (INPUT), as a real partition drops them: the sending
/// kernel is not told, so TCP backs off its retransmissions as it would across a network.
/// Dropped on the way out (OUTPUT), the sender would get an error and retry at once, and a
/// healed partition would look healed sooner than it ever is.
pub struct Firewall {
    chain: String,
}

fn iptables(args: &[&str]) -> Result<(), String> {
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run iptables: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "iptables {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether process `pid` exists.
fn is_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Unhooks, flushes and deletes `chain`; errors are ignored (parts may not exist). OUTPUT too:
/// earlier versions of these tests hooked their chains there as well.
fn remove_chain(chain: &str) {
    for hook in [HOOK, "OUTPUT"] {
        while iptables(&["-D", hook, "-j", chain]).is_ok() {}
    }
    let _ = iptables(&["-F", chain]);
    let _ = iptables(&["-X", chain]);
}

/// Removes the chains of test processes that died without cleaning up.
fn remove_leftovers() {
    let Ok(out) = Command::new("iptables").args(["-w", "-S"]).output() else {
        return;
    };
    let rules = String::from_utf8_lossy(&out.stdout);
    for line in rules.lines() {
        let Some(chain) = line.strip_prefix("-N ") else {
            continue;
        };
        let Some(rest) = chain.strip_prefix(CHAIN_PREFIX) else {
            continue;
        };
        let pid = rest.split('_').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !is_alive(pid)) {
            remove_chain(chain);
        }
    }
}

impl Firewall {
    /// Creates the chain and hooks it in; `Unsupported` when not root or without iptables.
    pub fn new(subnet: &Subnet) -> Result<Firewall, Unsupported> {
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(Unsupported("partitions need root (iptables)".into()));
        }
        iptables(&["-S", HOOK]).map_err(Unsupported)?;
        remove_leftovers();
        let chain = format!("{CHAIN_PREFIX}{}_{}", std::process::id(), subnet.third);
        remove_chain(&chain);
        iptables(&["-N", &chain]).map_err(Unsupported)?;
        let firewall = Firewall { chain };
        iptables(&["-I", HOOK, "1", "-j", &firewall.chain]).map_err(Unsupported)?;
        Ok(firewall)
    }

    /// Drops every packet between an address of `a` and one of `b`, both ways.
    pub fn cut(&self, a: &[Ipv4Addr], b: &[Ipv4Addr]) {
        for x in a {
            for y in b {
                for (src, dst) in [(x, y), (y, x)] {
                    let (src, dst) = (src.to_string(), dst.to_string());
                    iptables(&["-A", &self.chain, "-s", &src, "-d", &dst, "-j", "DROP"])
                        .unwrap_or_else(|e| panic!("{e}"));
                }
            }
        }
    }

    /// Removes every drop rule: the network is whole again.
    pub fn heal(&self) {
        iptables(&["-F", &self.chain]).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// An IPv4 address:port of `/proc/net/tcp` (`0100007F:115B`: the address in host byte order).
fn parse_endpoint(text: &str) -> Option<(Ipv4Addr, u16)> {
    let (ip, port) = text.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some((Ipv4Addr::from(u32::from_be(ip)), port))
}

/// The established TCP connections of this machine, as (local, remote) endpoints.
fn established() -> Vec<((Ipv4Addr, u16), (Ipv4Addr, u16))> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) != Some(&"01") {
                return None;
            }
            Some((
                parse_endpoint(fields.get(1)?)?,
                parse_endpoint(fields.get(2)?)?,
            ))
        })
        .collect()
}

/// Whether some host of `hosts` dials another from its own address (not 127.0.0.1): only then
/// can rules on source and destination cut hosts apart while test clients still get through.
pub fn hosts_dial_from_their_own_address(hosts: &[Ipv4Addr], port: u16) -> bool {
    established().iter().any(|((lip, lport), (rip, rport))| {
        *rport == port && *lport != port && lip != rip && hosts.contains(lip) && hosts.contains(rip)
    })
}

impl Drop for Firewall {
    fn drop(&mut self) {
        remove_chain(&self.chain);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/net/tcp` prints an address as a host-order number in hex.
    #[test]
    fn proc_net_tcp_endpoints_parse() {
        assert_eq!(
            parse_endpoint("0205007F:115B"),
            Some((Ipv4Addr::new(127, 0, 5, 2), 4443))
        );
        assert_eq!(parse_endpoint("nonsense"), None);
    }

    /// Two subnets taken by one process are different blocks.
    #[test]
    fn subnets_taken_at_once_differ() {
        let (a, b) = (Subnet::take(), Subnet::take());
        assert_ne!(a.third, b.third);
        assert_eq!(a.host(0), Ipv4Addr::new(127, 0, a.third, 1));
    }
}
