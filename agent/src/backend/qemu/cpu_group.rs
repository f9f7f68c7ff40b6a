//! `VCPUs_params:weight` and `cap`: a guest's QEMU in a cgroup of its own, `oxapi/<vm uuid>`
//! under the host's cpu controller, with its share of the host's CPUs and its ceiling written
//! there (cgroup v2's `cpu.weight` and `cpu.max`, or v1's `cpu.shares` and `cpu.cfs_quota_us`).
//! A VM that sets neither has no group of its own.
//!
//! The values keep xapi's meaning (Xen's credit scheduler): `weight` is relative to the other
//! guests, 256 by default (1 to 65535), and scales cgroup's default share (100 in v2, 1024 in
//! v1) in proportion; `cap` is a ceiling in percent of one host CPU (50 is half a CPU, 200 two
//! CPUs, 0 none).

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{Qemu, Vm};
use crate::backend::{BackendError, BackendOp};

/// Where cgroup hierarchies are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The group, under the hierarchy's root, that holds one group per guest.
const PARENT: &str = "oxapi";
/// The period caps are written against, in microseconds (cgroup's default).
const PERIOD_US: u64 = 100_000;
/// xapi's default weight, which maps to cgroup's default share.
const XAPI_DEFAULT_WEIGHT: u64 = 256;

/// A guest's share of the host's CPUs, from its `VCPUs_params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuShare {
    /// `weight`, 1 to 65535.
    pub weight: Option<u64>,
    /// `cap`, in percent of one host CPU; 0 is none.
    pub cap: Option<u64>,
}

impl CpuShare {
    /// The share `params` ask for; the error names a value that is not one.
    pub fn from_params(params: &BTreeMap<String, String>) -> Result<CpuShare, String> {
        let number = |key: &str, range: std::ops::RangeInclusive<u64>| {
            params
                .get(key)
                .map(|value| {
                    value
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|n| range.contains(n))
                        .ok_or_else(|| {
                            format!(
                                "VCPUs_params:{key} {value:?} is not a number from {} to {}",
                                range.start(),
                                range.end()
                            )
                        })
                })
                .transpose()
        };
        Ok(CpuShare {
            weight: number("weight", 1..=65_535)?,
            cap: number("cap", 0..=u64::from(u32::MAX))?,
        })
    }

    /// Whether the guest asks for anything a group of its own would hold.
    pub fn is_set(&self) -> bool {
        self.weight.is_some() || self.cap.is_some_and(|cap| cap > 0)
    }
}

/// The cgroup hierarchy that has the host's cpu controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuHierarchy {
    /// cgroup v2: the unified hierarchy's root.
    Unified(PathBuf),
    /// cgroup v1: the cpu controller's own hierarchy.
    Legacy(PathBuf),
}

impl CpuHierarchy {
    /// The hierarchy under `root` (normally `CGROUP_ROOT`) with the cpu controller, if any.
    pub fn find(root: &Path) -> Option<CpuHierarchy> {
        let unified = std::fs::read_to_string(root.join("cgroup.controllers"));
        if unified.is_ok_and(|list| list.split_whitespace().any(|c| c == "cpu")) {
            return Some(CpuHierarchy::Unified(root.to_owned()));
        }
        ["cpu", "cpu,cpuacct"]
            .into_iter()
            .map(|name| root.join(name))
            .find(|dir| dir.join("cpu.shares").exists())
            .map(CpuHierarchy::Legacy)
    }

    fn root(&self) -> &Path {
        match self {
            CpuHierarchy::Unified(root) | CpuHierarchy::Legacy(root) => root,
        }
    }

    /// The group of the guest of VM `vm`.
    pub fn group(&self, vm: &str) -> PathBuf {
        self.root().join(PARENT).join(vm)
    }

    /// Puts process `pid` (all its threads) into the group of `vm`, made with `share`.
    pub fn place(&self, vm: &str, pid: u32, share: CpuShare) -> std::io::Result<()> {
        let parent = self.root().join(PARENT);
        if let CpuHierarchy::Unified(root) = self {
            // v2 gives a group the cpu controller only where its parent passes it down.
            enable_cpu(root)?;
            make_dir(&parent)?;
            enable_cpu(&parent)?;
        }
        let group = self.group(vm);
        std::fs::create_dir_all(&group)?;
        for (file, value) in self.settings(share) {
            std::fs::write(group.join(file), value)?;
        }
        std::fs::write(group.join("cgroup.procs"), pid.to_string())
    }

    /// The files of a group and what they hold for `share`.
    fn settings(&self, share: CpuShare) -> Vec<(&'static str, String)> {
        let weight = share.weight.unwrap_or(XAPI_DEFAULT_WEIGHT);
        let quota = share
            .cap
            .filter(|cap| *cap > 0)
            .map(|cap| (cap * PERIOD_US / 100).max(1_000));
        match self {
            CpuHierarchy::Unified(_) => {
                let weight = (weight * 100 / XAPI_DEFAULT_WEIGHT).clamp(1, 10_000);
                let max = quota.map_or("max".to_owned(), |quota| quota.to_string());
                vec![
                    ("cpu.weight", weight.to_string()),
                    ("cpu.max", format!("{max} {PERIOD_US}")),
                ]
            }
            CpuHierarchy::Legacy(_) => {
                let shares = (weight * 1024 / XAPI_DEFAULT_WEIGHT).clamp(2, 262_144);
                let quota = quota.map_or("-1".to_owned(), |quota| quota.to_string());
                vec![
                    ("cpu.shares", shares.to_string()),
                    ("cpu.cfs_period_us", PERIOD_US.to_string()),
                    ("cpu.cfs_quota_us", quota),
                ]
            }
        }
    }

    /// Removes the group of `vm`, once its QEMU is gone; a VM without one has nothing to do.
    pub fn remove(&self, vm: &str) {
        match std::fs::remove_dir(self.group(vm)) {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => tracing::warn!(
                vm,
                error = &err as &dyn std::error::Error,
                "the guest's cpu cgroup stays"
            ),
        }
    }
}

impl Qemu {
    /// Puts the QEMU of `vm` in a cpu cgroup of its own when its `VCPUs_params` set `weight`
    /// or `cap`; on a host without the cpu controller it runs without one, and the log says so.
    pub(super) fn share_cpus(&self, vm: &Vm, op: BackendOp) -> Result<(), BackendError> {
        let (uuid, params) = {
            let domain = vm.domain();
            (domain.spec.uuid.clone(), domain.spec.vcpus_params.clone())
        };
        let share =
            CpuShare::from_params(&params).map_err(|reason| BackendError::Failed { op, reason })?;
        if !share.is_set() {
            return Ok(());
        }
        let Some(hierarchy) = &self.cpu_hierarchy else {
            tracing::warn!(vm = %uuid, "VCPUs_params:weight and cap are not honoured: this host has no cpu cgroup controller");
            return Ok(());
        };
        hierarchy
            .place(&uuid, vm.pid, share)
            .map_err(|err| BackendError::Failed {
                op,
                reason: format!(
                    "cannot put QEMU in the cpu cgroup {}: {err}",
                    hierarchy.group(&uuid).display()
                ),
            })
    }

    /// Removes the cpu cgroup of `vm`, if it has one, once its QEMU is gone.
    pub(super) fn release_cpus(&self, vm: &str) {
        if let Some(hierarchy) = &self.cpu_hierarchy {
            hierarchy.remove(vm);
        }
    }
}

/// Makes `dir` unless it is there.
fn make_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::create_dir(dir) {
        Err(err) if err.kind() != ErrorKind::AlreadyExists => Err(err),
        _ => Ok(()),
    }
}

/// Passes the cpu controller down to the children of the v2 group `dir`.
fn enable_cpu(dir: &Path) -> std::io::Result<()> {
    let control = dir.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&control).unwrap_or_default();
    if enabled.split_whitespace().any(|c| c == "cpu") {
        return Ok(());
    }
    std::fs::write(control, "+cpu")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// `weight` and `cap` are numbers in xapi's ranges; anything else is refused by name;
    /// `mask` alone, or a cap of 0, asks for no group.
    #[test]
    fn weight_and_cap_are_read_from_vcpus_params() {
        let share = CpuShare::from_params(&params(&[("weight", "512"), ("cap", "50")]));
        assert_eq!(
            share,
            Ok(CpuShare {
                weight: Some(512),
                cap: Some(50)
            })
        );
        assert!(share.is_ok_and(|s| s.is_set()));
        let none = CpuShare::from_params(&params(&[("mask", "0"), ("cap", "0")]));
        assert!(none.is_ok_and(|s| !s.is_set()));
        for (key, value) in [
            ("weight", "0"),
            ("weight", "65536"),
            ("cap", "-1"),
            ("cap", "x"),
        ] {
            let err = CpuShare::from_params(&params(&[(key, value)])).expect_err(value);
            assert!(err.contains(&format!("VCPUs_params:{key}")), "{err}");
        }
    }

    /// xapi's weight scales cgroup's default share and a cap is a quota of the period, in
    /// both hierarchies; no cap is no quota.
    #[test]
    fn shares_and_caps_map_onto_both_hierarchies() {
        let share = CpuShare {
            weight: Some(512),
            cap: Some(50),
        };
        let v2 = CpuHierarchy::Unified(PathBuf::from("/x"));
        assert_eq!(
            v2.settings(share),
            [
                ("cpu.weight", "200".to_owned()),
                ("cpu.max", "50000 100000".to_owned())
            ]
        );
        let v1 = CpuHierarchy::Legacy(PathBuf::from("/x/cpu"));
        assert_eq!(
            v1.settings(share),
            [
                ("cpu.shares", "2048".to_owned()),
                ("cpu.cfs_period_us", "100000".to_owned()),
                ("cpu.cfs_quota_us", "50000".to_owned())
            ]
        );
        let uncapped = CpuShare {
            weight: Some(1),
            cap: None,
        };
        assert_eq!(v2.settings(uncapped)[0].1, "1");
        assert_eq!(v2.settings(uncapped)[1].1, "max 100000");
        assert_eq!(v1.settings(uncapped)[0].1, "4");
        assert_eq!(v1.settings(uncapped)[2].1, "-1");
    }

    /// The cpu controller is found in the unified hierarchy when it lists it, else in its v1
    /// hierarchy; a machine with neither has none.
    #[test]
    fn the_cpu_controller_is_found_in_either_hierarchy() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let root = dir.path();
        assert_eq!(CpuHierarchy::find(root), None);
        std::fs::create_dir(root.join("cpu,cpuacct")).expect("mkdir");
        std::fs::write(root.join("cpu,cpuacct/cpu.shares"), "1024").expect("write");
        assert_eq!(
            CpuHierarchy::find(root),
            Some(CpuHierarchy::Legacy(root.join("cpu,cpuacct")))
        );
        std::fs::write(root.join("cgroup.controllers"), "cpuset cpu io memory").expect("write");
        assert_eq!(
            CpuHierarchy::find(root),
            Some(CpuHierarchy::Unified(root.to_owned()))
        );
    }
}
