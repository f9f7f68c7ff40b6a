//! `VCPUs_params:mask`: every vCPU thread of a guest kept on the host CPUs the mask names
//! (`sched_setaffinity` on the threads `query-cpus-fast` gives).

use serde_json::json;

use super::{Qemu, Vm};
use crate::backend::{BackendError, BackendOp};

impl Qemu {
    /// Keeps every vCPU thread of `vm` on the host CPUs of its `VCPUs_params:mask`, if it
    /// has one.
    pub(super) async fn pin_vcpus(&self, vm: &Vm, op: BackendOp) -> Result<(), BackendError> {
        let mask = vm.domain().spec.vcpus_params.get("mask").cloned();
        let Some(mask) = mask else {
            return Ok(());
        };
        let cpus = cpu_list(&mask).ok_or_else(|| BackendError::Failed {
            op,
            reason: format!("VCPUs_params:mask {mask:?} is not a list of host CPUs"),
        })?;
        let vcpus = self.command(vm, op, "query-cpus-fast", json!({})).await?;
        let threads = vcpus.as_array().cloned().unwrap_or_default();
        for thread in threads
            .iter()
            .filter_map(|cpu| cpu.get("thread-id")?.as_i64())
        {
            set_affinity(thread, &cpus).map_err(|err| BackendError::Failed {
                op,
                reason: format!("cannot keep vCPU thread {thread} on CPUs {mask}: {err}"),
            })?;
        }
        Ok(())
    }
}

/// The CPUs of a list such as `0,2-3`; `None` when it is not one (or names a CPU past what
/// `sched_setaffinity` takes).
fn cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim) {
        let (first, last) = match part.split_once('-') {
            Some((first, last)) => (first.trim().parse().ok()?, last.trim().parse().ok()?),
            None => {
                let cpu: usize = part.parse().ok()?;
                (cpu, cpu)
            }
        };
        if first > last || last >= libc::CPU_SETSIZE as usize {
            return None;
        }
        cpus.extend(first..=last);
    }
    (!cpus.is_empty()).then_some(cpus)
}

/// Keeps thread `thread` on `cpus`.
fn set_affinity(thread: i64, cpus: &[usize]) -> std::io::Result<()> {
    let thread = libc::pid_t::try_from(thread).map_err(std::io::Error::other)?;
    // SAFETY: an all-zero cpu_set_t is the empty set; CPU_SET writes inside the set for every
    // cpu below CPU_SETSIZE, which `cpu_list` checked; sched_setaffinity reads the set only.
    let result = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(thread, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mask is a list of CPUs and ranges; anything else, an empty list or a CPU past the
    /// set's size is refused.
    #[test]
    fn masks_are_lists_of_cpus_and_ranges() {
        assert_eq!(cpu_list("1"), Some(vec![1]));
        assert_eq!(cpu_list("0,2-3"), Some(vec![0, 2, 3]));
        assert_eq!(cpu_list(" 4 - 5 , 7"), Some(vec![4, 5, 7]));
        assert_eq!(cpu_list(""), None);
        assert_eq!(cpu_list("3-1"), None);
        assert_eq!(cpu_list("a"), None);
        assert_eq!(cpu_list("100000"), None);
    }
}
