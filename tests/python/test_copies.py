"""A VM's copies through the SDK: copy, snapshot of a halted and of a running VM, revert,
provision of a template's disks, and destroy. Here the simulator is the storage driver: a disk's
copy is a new volume it holds, with a location of its own and the same size."""

import pytest
import XenAPI

from lifecycle import new_vm

NULL = "OpaqueRef:NULL"


def _error(call):
    with pytest.raises(XenAPI.Failure) as err:
        call()
    return err.value.details


def _default_sr(s):
    return s.xenapi.pool.get_default_SR(s.xenapi.pool.get_all()[0])


def _vm_with_disk(s, name):
    """A halted VM with a 1 GiB disk at 0 and a NIC; returns the VM and the disk."""
    vm = new_vm(s, name)
    vdi = s.xenapi.VDI.create({
        "name_label": name + " root", "SR": _default_sr(s), "virtual_size": str(1 << 30),
        "type": "system", "sharable": False, "read_only": False, "other_config": {}})
    s.xenapi.VBD.create({
        "VM": vm, "VDI": vdi, "userdevice": "0", "bootable": True, "mode": "RW", "type": "Disk",
        "unpluggable": False, "empty": False, "other_config": {}, "qos_algorithm_type": "",
        "qos_algorithm_params": {}})
    s.xenapi.VIF.create({
        "device": "0", "network": s.xenapi.network.get_all()[0], "VM": vm, "MAC": "",
        "MTU": "1500", "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
    return vm, vdi


def _disks(s, vm):
    return [s.xenapi.VBD.get_VDI(vbd) for vbd in s.xenapi.VM.get_VBDs(vm)
            if s.xenapi.VBD.get_type(vbd) == "Disk"]


def test_copy_makes_a_vm_with_disks_of_its_own(session):
    """VM.copy gives a halted VM with a new disk of the same size in the SR asked for (or the
    disk's own), a new location and a new MAC."""
    vm, vdi = _vm_with_disk(session, "copy-src")
    sr = _default_sr(session)
    for target in (sr, NULL):
        copy = session.xenapi.VM.copy(vm, "copy", target)
        rec = session.xenapi.VM.get_record(copy)
        assert rec["power_state"] == "Halted" and rec["is_a_template"] is False
        assert rec["uuid"] != session.xenapi.VM.get_uuid(vm)
        [disk] = _disks(session, copy)
        assert disk != vdi
        disk_rec = session.xenapi.VDI.get_record(disk)
        assert disk_rec["SR"] == sr
        assert disk_rec["virtual_size"] == str(1 << 30)
        assert disk_rec["location"] != session.xenapi.VDI.get_location(vdi)
        [vif] = rec["VIFs"]
        [orig_vif] = session.xenapi.VM.get_VIFs(vm)
        assert session.xenapi.VIF.get_MAC(vif) != session.xenapi.VIF.get_MAC(orig_vif)
    session.xenapi.VM.start(vm, False, False)
    assert _error(lambda: session.xenapi.VM.copy(vm, "x", NULL)) == [
        "VM_BAD_POWER_STATE", vm, "halted", "running"]
    session.xenapi.VM.hard_shutdown(vm)


def test_snapshot_of_a_halted_vm(session):
    """A snapshot is a halted template that is a snapshot of the VM, with snapshots of its
    disks; the VM lists it and has it as parent."""
    vm, vdi = _vm_with_disk(session, "snap-halted")
    snap = session.xenapi.VM.snapshot(vm, "before")
    rec = session.xenapi.VM.get_record(snap)
    assert rec["is_a_snapshot"] is True and rec["is_a_template"] is True
    assert rec["snapshot_of"] == vm and rec["power_state"] == "Halted"
    assert rec["snapshot_time"].value > "19700101T00:00:00Z"
    assert rec["snapshot_info"]["power-state-at-snapshot"] == "Halted"
    assert session.xenapi.VM.get_snapshots(vm) == [snap]
    assert session.xenapi.VM.get_parent(vm) == snap
    [disk] = _disks(session, snap)
    disk_rec = session.xenapi.VDI.get_record(disk)
    assert disk_rec["is_a_snapshot"] is True and disk_rec["snapshot_of"] == vdi
    assert sorted(rec["allowed_operations"]) == ["clone", "copy", "destroy", "export", "revert"]
    assert _error(lambda: session.xenapi.VM.start(snap, False, False))[0] == "VM_IS_SNAPSHOT"


def test_snapshot_of_a_running_vm_leaves_it_running(session):
    """A running VM is snapshotted without stopping; the snapshot records that it was running,
    its devices are detached, and the disks listed in ignore_vdis are left out."""
    vm, vdi = _vm_with_disk(session, "snap-running")
    extra = session.xenapi.VDI.create({
        "name_label": "scratch", "SR": _default_sr(session), "virtual_size": str(1 << 20),
        "type": "user", "sharable": False, "read_only": False, "other_config": {}})
    session.xenapi.VBD.create({
        "VM": vm, "VDI": extra, "userdevice": "1", "bootable": False, "mode": "RW",
        "type": "Disk", "unpluggable": True, "empty": False, "other_config": {},
        "qos_algorithm_type": "", "qos_algorithm_params": {}})
    session.xenapi.VM.start(vm, False, False)
    snap = session.xenapi.VM.snapshot(vm, "live", [extra])
    assert session.xenapi.VM.get_power_state(vm) == "Running"
    rec = session.xenapi.VM.get_record(snap)
    assert rec["power_state"] == "Halted"
    assert rec["snapshot_info"]["power-state-at-snapshot"] == "Running"
    [disk] = _disks(session, snap)
    assert session.xenapi.VDI.get_snapshot_of(disk) == vdi
    assert all(session.xenapi.VBD.get_currently_attached(v) is False for v in rec["VBDs"])
    [vif] = rec["VIFs"]
    [orig_vif] = session.xenapi.VM.get_VIFs(vm)
    assert session.xenapi.VIF.get_MAC(vif) == session.xenapi.VIF.get_MAC(orig_vif)
    session.xenapi.VM.hard_shutdown(vm)


def test_revert_brings_a_running_vm_back_to_its_snapshot(session):
    """Reverting stops a running VM, gives it a clone of the snapshot's disk (its own disk
    goes) and the snapshot's settings; it ends Halted, its name and snapshots kept."""
    vm, vdi = _vm_with_disk(session, "revert")
    snap = session.xenapi.VM.snapshot(vm, "before")
    session.xenapi.VM.set_VCPUs_max(vm, "2")
    session.xenapi.VM.set_name_description(vm, "after the snapshot")
    session.xenapi.VM.start(vm, False, False)
    session.xenapi.VM.revert(snap)
    rec = session.xenapi.VM.get_record(vm)
    assert rec["power_state"] == "Halted" and rec["resident_on"] == NULL
    assert rec["current_operations"] == {}
    assert rec["VCPUs_max"] == session.xenapi.VM.get_VCPUs_max(snap)
    assert rec["name_description"] == session.xenapi.VM.get_name_description(snap)
    assert rec["name_label"] == "revert" and rec["snapshots"] == [snap]
    assert rec["parent"] == snap
    [disk] = _disks(session, vm)
    assert disk != vdi and vdi not in session.xenapi.VDI.get_all()
    [snap_disk] = _disks(session, snap)
    assert session.xenapi.VDI.get_snapshot_of(snap_disk) == disk
    session.xenapi.VM.start(vm, False, False)
    session.xenapi.VM.hard_shutdown(vm)


def test_revert_errors(session):
    """Only snapshots are reverted to (ONLY_REVERT_SNAPSHOT); a snapshot of a destroyed VM
    cannot be (VM_REVERT_FAILED)."""
    vm, _ = _vm_with_disk(session, "revert-errors")
    assert _error(lambda: session.xenapi.VM.revert(vm)) == ["ONLY_REVERT_SNAPSHOT"]
    snap = session.xenapi.VM.snapshot(vm, "orphan")
    session.xenapi.VM.destroy(vm)
    assert _error(lambda: session.xenapi.VM.revert(snap)) == ["VM_REVERT_FAILED", vm, snap]


def test_provision_creates_the_templates_disks(session):
    """A clone of a default template provisions the disk its other_config:disks asks for in
    the default SR, loses the key and becomes a VM; a VM cannot be provisioned."""
    template = session.xenapi.VM.get_by_name_label("Debian Bookworm 12")[0]
    assert "disks" in session.xenapi.VM.get_other_config(template)
    vm = session.xenapi.VM.clone(template, "provisioned")
    session.xenapi.VM.provision(vm)
    rec = session.xenapi.VM.get_record(vm)
    assert "disks" not in rec["other_config"]
    assert rec["is_a_template"] is False
    [vbd] = rec["VBDs"]
    vbd_rec = session.xenapi.VBD.get_record(vbd)
    assert vbd_rec["userdevice"] == "0" and vbd_rec["bootable"] is True
    assert vbd_rec["mode"] == "RW" and vbd_rec["type"] == "Disk"
    vdi_rec = session.xenapi.VDI.get_record(vbd_rec["VDI"])
    assert vdi_rec["SR"] == _default_sr(session)
    assert vdi_rec["virtual_size"] == str(10 << 30) and vdi_rec["type"] == "system"
    assert _error(lambda: session.xenapi.VM.provision(vm)) == ["ONLY_PROVISION_TEMPLATE"]
    session.xenapi.VM.start(vm, False, False)
    assert session.xenapi.VBD.get_currently_attached(vbd) is True
    session.xenapi.VM.hard_shutdown(vm)


def test_destroy_refuses_a_running_vm_and_removes_a_halted_one_with_its_devices(session):
    """A running VM is not destroyed (VM_BAD_POWER_STATE); a halted one goes with its VBDs,
    VIFs and metrics, and its disk stays."""
    vm, vdi = _vm_with_disk(session, "destroyed")
    session.xenapi.VM.start(vm, False, False)
    assert _error(lambda: session.xenapi.VM.destroy(vm)) == [
        "VM_BAD_POWER_STATE", vm, "halted, suspended", "running"]
    session.xenapi.VM.hard_shutdown(vm)
    rec = session.xenapi.VM.get_record(vm)
    session.xenapi.VM.destroy(vm)
    assert vm not in session.xenapi.VM.get_all()
    for vbd in rec["VBDs"]:
        assert vbd not in session.xenapi.VBD.get_all()
    for vif in rec["VIFs"]:
        assert vif not in session.xenapi.VIF.get_all()
    assert rec["metrics"] not in session.xenapi.VM_metrics.get_all()
    assert vdi in session.xenapi.VDI.get_all()



def test_sr_scan_keeps_the_disks_made_through_the_api(session):
    """SR.scan asks the SR's host what it holds: the disks made through the API stay; an
    unknown SR is HANDLE_INVALID."""
    sr = _default_sr(session)
    disk = session.xenapi.VDI.create({
        "SR": sr, "virtual_size": str(1 << 30), "type": "user", "sharable": False,
        "read_only": False, "other_config": {}, "name_label": "kept",
        "name_description": "",
    })
    assert session.xenapi.SR.scan(sr) == ""
    assert disk in session.xenapi.SR.get_VDIs(sr)
    bogus = "OpaqueRef:NULL"
    assert _error(lambda: session.xenapi.SR.scan(bogus)) == ["HANDLE_INVALID", "SR", bogus]
