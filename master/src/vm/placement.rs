//! Where a VM starts: `choose` picks a host among candidates (affinity first, then by the
//! pool's placement policy), `check_host` vets a host the caller named (`start_on`,
//! `resume_on`, a migration's destination): `check` whether it is up with the memory,
//! `check_srs` whether it sees the VM's disks and suspend image; and `candidates` reads the
//! pool's hosts that see them, with what they have free.

use api_spec::classes::vm::VmPowerState;
use api_spec::{ApiError, errors};

use crate::vm::memory;
use crate::vm::operations::Overlay;
use crate::vm::power_state::power_state;

/// The `pool.other_config` key that names the placement policy.
pub(crate) const POLICY_KEY: &str = "placement-policy";

/// How `VM.start` spreads VMs over the hosts that can take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// The host with the most free memory: spreads the load (the default).
    BreadthFirst,
    /// The host with the least free memory that still fits: fills one host before the next.
    DepthFirst,
}

impl Policy {
    /// The policy `pool.other_config:placement-policy` names (`breadth-first` or
    /// `depth-first`); anything else is the default.
    pub fn from_config(value: Option<&str>) -> Policy {
        match value {
            Some("depth-first") => Policy::DepthFirst,
            _ => Policy::BreadthFirst,
        }
    }

    /// The pool's policy in `view`.
    pub fn of_pool(view: &Overlay) -> Policy {
        let pool = view.refs("pool").into_iter().next().unwrap_or_default();
        let config = view.string_map("pool", &pool, "other_config");
        Policy::from_config(config.get(POLICY_KEY).map(String::as_str))
    }
}

/// A host a VM could start on, as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub host: String,
    pub is_enabled: bool,
    /// `host_metrics.live`.
    pub is_live: bool,
    pub free_bytes: i64,
    /// What the VM would take there beyond its memory (`memory::overhead_on`).
    pub overhead_bytes: i64,
}

/// Why `choose` picked its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// It is the VM's affinity host and can take the VM.
    Affinity,
    /// Breadth-first: the most free memory.
    MostFreeMemory,
    /// Depth-first: the least free memory that fits.
    LeastFreeMemoryThatFits,
}

/// What a VM asks of its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Need {
    /// The guest's memory; each candidate adds its own overhead.
    pub memory_bytes: i64,
    /// The VM's `affinity` host, if it names one.
    pub affinity: Option<String>,
}

/// Whether `candidate` can take a VM needing `memory_bytes` now: `HOST_NOT_LIVE`,
/// `HOST_DISABLED [host]` or `HOST_NOT_ENOUGH_FREE_MEMORY [needed; available]` when not, in
/// the order xapi checks them.
pub(crate) fn check(candidate: &Candidate, memory_bytes: i64) -> Result<(), ApiError> {
    if !candidate.is_live {
        return Err(errors::host_not_live());
    }
    if !candidate.is_enabled {
        return Err(errors::host_disabled(&candidate.host));
    }
    if candidate.free_bytes < memory_bytes {
        return Err(errors::host_not_enough_free_memory(
            memory_bytes,
            candidate.free_bytes,
        ));
    }
    Ok(())
}

/// Whether `vm` can run on `host` now, in xapi's order (`assert_can_boot_here`):
/// `HOST_NOT_LIVE`, `HOST_DISABLED [host]`, `VM_REQUIRES_SR [vm; sr]`, then
/// `HOST_NOT_ENOUGH_FREE_MEMORY [needed; available]` (the VM's own use not counted, so the
/// host it runs on always has room for it).
pub(crate) fn check_host(view: &Overlay, vm: &str, host: &str) -> Result<(), ApiError> {
    let candidate = candidate(view, host, vm);
    check(&candidate, 0)?;
    check_srs(view, vm, host)?;
    check(&candidate, memory::start_bytes(view, vm, host))
}

/// The SRs `host` has a plugged PBD for: those its storage reaches.
pub(crate) fn plugged_srs(view: &Overlay, host: &str) -> Vec<String> {
    view.children("PBD", "host", host)
        .into_iter()
        .filter(|pbd| view.bool("PBD", pbd, "currently_attached"))
        .map(|pbd| view.str("PBD", &pbd, "SR").to_owned())
        .collect()
}

/// `VM_REQUIRES_SR [vm; sr]` unless `host` has a plugged PBD for the SR of every disk of `vm`
/// (empty drives aside, the suspend image included for a suspended VM), as xapi's
/// `assert_can_see_SRs`: a VM whose disks are on a host's local SR can run only there.
pub(crate) fn check_srs(view: &Overlay, vm: &str, host: &str) -> Result<(), ApiError> {
    let plugged = plugged_srs(view, host);
    let mut vdis: Vec<String> = view
        .children("VBD", "VM", vm)
        .into_iter()
        .filter(|vbd| !view.bool("VBD", vbd, "empty"))
        .map(|vbd| view.str("VBD", &vbd, "VDI").to_owned())
        .collect();
    if power_state(view, vm) == VmPowerState::Suspended {
        vdis.push(view.str("VM", vm, "suspend_VDI").to_owned());
    }
    let needed = vdis
        .iter()
        .filter(|vdi| view.exists("VDI", vdi))
        .map(|vdi| view.str("VDI", vdi, "SR"));
    for sr in needed {
        if !plugged.iter().any(|p| p == sr) {
            return Err(errors::vm_requires_sr(vm, sr));
        }
    }
    Ok(())
}

/// Picks the host a VM starts on: its affinity host when that can take it, else one of the
/// hosts that can, by `policy` (ties go to the lowest ref, so the choice is deterministic).
/// When none has the memory, xapi tries again without the memory check and then fails on the
/// host it picks: `HOST_NOT_ENOUGH_FREE_MEMORY [needed; available]` for the live, enabled host
/// with the most free memory. `NO_HOSTS_AVAILABLE` when no host is live and enabled.
pub(crate) fn choose(
    candidates: &[Candidate],
    need: &Need,
    policy: Policy,
) -> Result<(String, Reason), ApiError> {
    let needed = |c: &Candidate| need.memory_bytes.saturating_add(c.overhead_bytes);
    let fits = |c: &&Candidate| check(c, needed(c)).is_ok();
    if let Some(affinity) = &need.affinity
        && let Some(host) = candidates.iter().filter(fits).find(|c| &c.host == affinity)
    {
        return Ok((host.host.clone(), Reason::Affinity));
    }
    let mut fitting: Vec<&Candidate> = candidates.iter().filter(fits).collect();
    fitting.sort_by(|a, b| a.host.cmp(&b.host));
    let chosen = match policy {
        Policy::BreadthFirst => fitting
            .iter()
            .rev()
            .max_by_key(|c| c.free_bytes)
            .map(|c| (c.host.clone(), Reason::MostFreeMemory)),
        Policy::DepthFirst => fitting
            .iter()
            .min_by_key(|c| c.free_bytes)
            .map(|c| (c.host.clone(), Reason::LeastFreeMemoryThatFits)),
    };
    if let Some(chosen) = chosen {
        return Ok(chosen);
    }
    let short = candidates
        .iter()
        .filter(|c| c.is_live && c.is_enabled)
        .max_by(|a, b| a.free_bytes.cmp(&b.free_bytes).then(b.host.cmp(&a.host)));
    match short {
        Some(host) => Err(errors::host_not_enough_free_memory(
            needed(host),
            host.free_bytes,
        )),
        None => Err(errors::no_hosts_available()),
    }
}

/// Every host of the pool that sees the SRs `vm` needs (`check_srs`) as a candidate for it
/// (its own reservation not counted): xapi leaves the others out of its choice.
pub(crate) fn candidates(view: &Overlay, vm: &str) -> Vec<Candidate> {
    view.refs("host")
        .into_iter()
        .filter(|host| check_srs(view, vm, host).is_ok())
        .map(|host| candidate(view, &host, vm))
        .collect()
}

/// `host` as a candidate for `vm`.
pub(crate) fn candidate(view: &Overlay, host: &str, vm: &str) -> Candidate {
    let metrics = view.str("host", host, "metrics");
    Candidate {
        host: host.to_owned(),
        is_enabled: view.bool("host", host, "enabled"),
        is_live: view.bool("host_metrics", metrics, "live"),
        free_bytes: memory::host_free_bytes(view, host, Some(vm)),
        overhead_bytes: memory::overhead_on(view, vm, host),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: i64 = 1 << 30;

    fn host(name: &str, free_gib: i64) -> Candidate {
        Candidate {
            host: name.to_owned(),
            is_enabled: true,
            is_live: true,
            free_bytes: free_gib * GIB,
            overhead_bytes: 0,
        }
    }

    fn need(gib: i64) -> Need {
        Need {
            memory_bytes: gib * GIB,
            affinity: None,
        }
    }

    /// Breadth-first takes the host with the most free memory, depth-first the one with the
    /// least that still fits.
    #[test]
    fn policies_pick_the_most_or_least_free_host_that_fits() {
        let hosts = [host("a", 8), host("b", 32), host("c", 3), host("d", 16)];
        assert_eq!(
            choose(&hosts, &need(4), Policy::BreadthFirst),
            Ok(("b".to_owned(), Reason::MostFreeMemory))
        );
        assert_eq!(
            choose(&hosts, &need(4), Policy::DepthFirst),
            Ok(("a".to_owned(), Reason::LeastFreeMemoryThatFits))
        );
        assert_eq!(
            choose(&hosts, &need(20), Policy::DepthFirst),
            Ok(("b".to_owned(), Reason::LeastFreeMemoryThatFits))
        );
    }

    /// Depth-first fills one host before the next: placing VMs one after the other (taking
    /// each one's memory from its host) uses up the fullest host first.
    #[test]
    fn depth_first_fills_one_host_before_the_next() {
        let mut hosts = vec![host("a", 10), host("b", 6), host("c", 10)];
        let mut order = Vec::new();
        for _ in 0..5 {
            let (chosen, _) = choose(&hosts, &need(2), Policy::DepthFirst).expect("a host");
            let slot = hosts.iter_mut().find(|h| h.host == chosen).expect("known");
            slot.free_bytes -= 2 * GIB;
            order.push(chosen);
        }
        assert_eq!(order, ["b", "b", "b", "a", "a"]);
    }

    /// Breadth-first spreads VMs over the hosts.
    #[test]
    fn breadth_first_spreads_vms() {
        let mut hosts = vec![host("a", 8), host("b", 8), host("c", 8)];
        let mut order = Vec::new();
        for _ in 0..3 {
            let (chosen, _) = choose(&hosts, &need(2), Policy::BreadthFirst).expect("a host");
            let slot = hosts.iter_mut().find(|h| h.host == chosen).expect("known");
            slot.free_bytes -= 2 * GIB;
            order.push(chosen);
        }
        order.sort();
        assert_eq!(order, ["a", "b", "c"]);
    }

    /// The affinity host wins when it can take the VM, whatever the policy; when it cannot,
    /// the policy decides.
    #[test]
    fn affinity_comes_first_when_it_qualifies() {
        let hosts = [host("a", 4), host("b", 32)];
        let mut wanted = need(2);
        wanted.affinity = Some("a".to_owned());
        assert_eq!(
            choose(&hosts, &wanted, Policy::BreadthFirst),
            Ok(("a".to_owned(), Reason::Affinity))
        );
        wanted.memory_bytes = 8 * GIB;
        assert_eq!(
            choose(&hosts, &wanted, Policy::BreadthFirst),
            Ok(("b".to_owned(), Reason::MostFreeMemory))
        );
    }

    /// Disabled, dead and full hosts are skipped; with only full ones left the answer is the
    /// memory the roomiest one lacks, with none live and enabled `NO_HOSTS_AVAILABLE`.
    #[test]
    fn disabled_dead_and_full_hosts_are_skipped() {
        let mut disabled = host("a", 64);
        disabled.is_enabled = false;
        let mut dead = host("b", 64);
        dead.is_live = false;
        let full = host("c", 1);
        let hosts = [disabled.clone(), dead.clone(), full.clone(), host("d", 0)];
        assert_eq!(
            choose(&hosts, &need(2), Policy::BreadthFirst),
            Err(errors::host_not_enough_free_memory(2 * GIB, GIB))
        );
        assert_eq!(
            choose(&hosts[..2], &need(2), Policy::BreadthFirst),
            Err(errors::no_hosts_available())
        );
        assert_eq!(check(&disabled, GIB), Err(errors::host_disabled("a")));
        assert_eq!(check(&dead, GIB), Err(errors::host_not_live()));
        assert_eq!(
            check(&full, 2 * GIB),
            Err(errors::host_not_enough_free_memory(2 * GIB, GIB))
        );
    }

    /// The policy comes from `pool.other_config`; unknown values mean breadth-first.
    #[test]
    fn the_policy_is_read_from_its_config_value() {
        assert_eq!(Policy::from_config(Some("depth-first")), Policy::DepthFirst);
        assert_eq!(
            Policy::from_config(Some("breadth-first")),
            Policy::BreadthFirst
        );
        assert_eq!(Policy::from_config(Some("random")), Policy::BreadthFirst);
        assert_eq!(Policy::from_config(None), Policy::BreadthFirst);
    }
}
