//! What a running VM takes from its host beyond its own memory (`VM.memory_overhead`), by the
//! hypervisor that runs it: the model the master's memory accounting and the qemu driver share,
//! so what the master reserves is what the driver's QEMU is bounded to.
//!
//! Measured on QEMU 10 (x86-64, q35, the driver's devices; the peak resident set, shared
//! libraries included, of a guest that touched all its memory): a QEMU takes about 60 MiB of
//! its own under KVM whatever the guest's size; under TCG each vCPU thread adds about 20 MiB at
//! its peak, and the translation cache grows up to its bound (`tb-size`), which QEMU sets to a
//! gigabyte unless told. Page tables and QEMU's per-page maps grow with the guest's memory. The
//! simulator takes nothing.

/// The translation cache of a TCG guest's QEMU (`-accel tcg,tb-size=`), in MiB: bounded, so
/// that the model holds; a Linux guest boots as fast with it as with QEMU's gigabyte.
pub const TCG_TRANSLATION_CACHE_MIB: i64 = 64;

const MIB: i64 = 1 << 20;

/// A QEMU's own memory whatever its guest: its code, libraries, devices and firmware.
const QEMU_BASE: i64 = 64 * MIB;
/// Each vCPU thread under KVM (its stack and KVM's run structure).
const KVM_PER_VCPU: i64 = 2 * MIB;
/// Each vCPU thread under TCG (its stack, TCG's per-thread state and its peak at start).
const TCG_PER_VCPU: i64 = 24 * MIB;
/// One byte in this many of guest memory goes to page tables and QEMU's per-page maps.
const PER_GUEST_BYTES: i64 = 256;

/// The bytes a VM with `vcpus_max` vCPUs and `memory_static_max` bytes takes beyond its memory
/// on a host whose hypervisor is `hypervisor`, as the host's `software_version:hypervisor`
/// names it (`qemu-kvm`, `qemu-tcg`, `simulator`; an unknown name takes nothing).
pub fn vm_overhead_bytes(hypervisor: &str, vcpus_max: i64, memory_static_max: i64) -> i64 {
    let vcpus = vcpus_max.max(1);
    let pages = memory_static_max.max(0) / PER_GUEST_BYTES;
    let own = match hypervisor {
        "qemu-kvm" => QEMU_BASE.saturating_add(vcpus.saturating_mul(KVM_PER_VCPU)),
        "qemu-tcg" => QEMU_BASE
            .saturating_add(vcpus.saturating_mul(TCG_PER_VCPU))
            .saturating_add(TCG_TRANSLATION_CACHE_MIB * MIB),
        _ => return 0,
    };
    own.saturating_add(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// KVM costs a fixed base and a little per vCPU; TCG adds its bounded translation cache and
    /// more per vCPU; both grow with the guest's memory; the simulator costs nothing.
    #[test]
    fn the_overhead_follows_the_hypervisor_vcpus_and_memory() {
        let gib = 1 << 30;
        let kvm = vm_overhead_bytes("qemu-kvm", 1, gib);
        assert_eq!(kvm, 64 * MIB + 2 * MIB + 4 * MIB);
        assert_eq!(
            vm_overhead_bytes("qemu-kvm", 4, gib) - kvm,
            3 * KVM_PER_VCPU
        );
        assert_eq!(vm_overhead_bytes("qemu-kvm", 1, 2 * gib) - kvm, 4 * MIB);
        let tcg = vm_overhead_bytes("qemu-tcg", 1, gib);
        assert_eq!(tcg, 64 * MIB + 24 * MIB + 64 * MIB + 4 * MIB);
        assert_eq!(vm_overhead_bytes("simulator", 8, gib), 0);
        assert_eq!(vm_overhead_bytes("", 8, gib), 0);
        assert_eq!(vm_overhead_bytes("qemu-kvm", 0, -1), 66 * MIB);
        assert_eq!(vm_overhead_bytes("qemu-tcg", i64::MAX, i64::MAX), i64::MAX);
    }
}
