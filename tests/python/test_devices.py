"""VBDs and VIFs through the SDK: create and destroy, hotplug on a running VM (plug, unplug,
unplug_force) with currently_attached as event.from shows it, CD insert and eject, and the
errors xapi raises for each."""

import pytest
import XenAPI

from lifecycle import event_from, new_vm

NULL = "OpaqueRef:NULL"


def _error(call):
    with pytest.raises(XenAPI.Failure) as err:
        call()
    return err.value.details


def _disk(s, name, size=1 << 30):
    sr = s.xenapi.pool.get_default_SR(s.xenapi.pool.get_all()[0])
    return s.xenapi.VDI.create({
        "name_label": name, "SR": sr, "virtual_size": str(size), "type": "user",
        "sharable": False, "read_only": False, "other_config": {}})


def _vbd_record(vm, vdi, device, **fields):
    record = {"VM": vm, "VDI": vdi, "userdevice": device, "bootable": False, "mode": "RW",
              "type": "Disk", "unpluggable": True, "empty": False, "other_config": {},
              "qos_algorithm_type": "", "qos_algorithm_params": {}}
    record.update(fields)
    return record


def _vbd(s, vm, vdi, device, **fields):
    return s.xenapi.VBD.create(_vbd_record(vm, vdi, device, **fields))


def _cd(s, vm, device):
    return _vbd(s, vm, NULL, device, type="CD", mode="RO", empty=True)


def _vif(s, vm, device, mac=""):
    return s.xenapi.VIF.create({
        "device": device, "network": s.xenapi.network.get_all()[0], "VM": vm, "MAC": mac,
        "MTU": "1500", "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})


def _attached_as_events_show(s, cls, ref, token):
    """The currently_attached of the newest snapshot of `ref` in the events after `token`."""
    batch = event_from(s, ["%s/%s" % (cls.lower(), ref)], token, 5.0)
    snapshots = [e["snapshot"] for e in batch["events"] if e["operation"] == "mod"]
    assert snapshots, "an event of %s" % ref
    return snapshots[-1]["currently_attached"], batch["token"]


def test_vbd_create_and_destroy_with_xapis_checks(session):
    """A VBD is created detached on a halted VM, with xapi's refusals: CDs must be read-only,
    only CDs may be empty, devices must be valid and free; autodetect takes the first free
    slot; a detached VBD is destroyed and its disk stays."""
    vm = new_vm(session, "vbd-create")
    vdi = _disk(session, "root")
    vbd = _vbd(session, vm, vdi, "0")
    assert session.xenapi.VBD.get_currently_attached(vbd) is False
    assert "plug" not in session.xenapi.VBD.get_allowed_operations(vbd)
    other = _disk(session, "other")
    assert _error(lambda: _vbd(session, vm, NULL, "3", type="CD", empty=True)) == [
        "VBD_CDS_MUST_BE_READONLY"]
    assert _error(lambda: _vbd(session, vm, NULL, "3", empty=True)) == [
        "VBD_NOT_REMOVABLE_MEDIA", "in constructor"]
    assert _error(lambda: _vbd(session, vm, other, "hdz")) == ["INVALID_DEVICE", "hdz"]
    assert _error(lambda: _vbd(session, vm, other, "xvda")) == ["DEVICE_ALREADY_EXISTS", "xvda"]
    auto = _vbd(session, vm, other, "autodetect")
    assert session.xenapi.VBD.get_userdevice(auto) == "1"
    assert session.xenapi.VM.get_allowed_VBD_devices(vm)[:2] == ["2", "3"]
    session.xenapi.VBD.destroy(auto)
    assert auto not in session.xenapi.VM.get_VBDs(vm)
    assert other in session.xenapi.VDI.get_all()


def test_vbd_hotplug_on_a_running_vm(session):
    """On a running VM a new VBD is detached until plugged; plug, unplug and unplug_force
    change currently_attached (seen in events), each refused when already done; an attached
    VBD cannot be destroyed."""
    vm = new_vm(session, "vbd-hotplug")
    session.xenapi.VM.start(vm, False, False)
    vbd = _vbd(session, vm, _disk(session, "data"), "1")
    assert session.xenapi.VBD.get_currently_attached(vbd) is False
    token = event_from(session, ["vbd/" + vbd], "", 0.0)["token"]
    session.xenapi.VBD.plug(vbd)
    attached, token = _attached_as_events_show(session, "VBD", vbd, token)
    assert attached is True
    assert _error(lambda: session.xenapi.VBD.plug(vbd)) == ["DEVICE_ALREADY_ATTACHED", vbd]
    details = _error(lambda: session.xenapi.VBD.destroy(vbd))
    assert details[0] == "OPERATION_NOT_ALLOWED" and "still attached" in details[1]
    session.xenapi.VBD.unplug(vbd)
    attached, token = _attached_as_events_show(session, "VBD", vbd, token)
    assert attached is False
    assert _error(lambda: session.xenapi.VBD.unplug(vbd)) == ["DEVICE_ALREADY_DETACHED", vbd]
    session.xenapi.VBD.plug(vbd)
    session.xenapi.VBD.unplug_force(vbd)
    assert session.xenapi.VBD.get_currently_attached(vbd) is False
    assert session.xenapi.VBD.get_current_operations(vbd) == {}
    session.xenapi.VBD.destroy(vbd)
    session.xenapi.VM.hard_shutdown(vm)


def test_vbd_plug_refusals(session):
    """A halted VM's VBD cannot be plugged (VM_BAD_POWER_STATE [vm; running; halted]); a VBD
    that is not unpluggable stays; an HVM guest's CD drive is not hotplugged."""
    vm = new_vm(session, "vbd-refusals")
    root = _vbd(session, vm, _disk(session, "root"), "0", unpluggable=False)
    cd = _cd(session, vm, "3")
    assert _error(lambda: session.xenapi.VBD.plug(root)) == [
        "VM_BAD_POWER_STATE", vm, "running", "halted"]
    session.xenapi.VM.start(vm, False, False)
    assert session.xenapi.VBD.get_currently_attached(root) is True
    assert _error(lambda: session.xenapi.VBD.unplug(root)) == ["VBD_NOT_UNPLUGGABLE", root]
    assert _error(lambda: session.xenapi.VBD.unplug(cd))[0] == "OPERATION_NOT_ALLOWED"
    session.xenapi.VM.hard_shutdown(vm)
    assert session.xenapi.VBD.get_currently_attached(root) is False


def test_cd_insert_and_eject(session):
    """A CD drive takes a disk when empty and gives it back when full, on a halted VM and on a
    running one; a disk is no removable media."""
    vm = new_vm(session, "cd")
    cd = _cd(session, vm, "3")
    disk = _vbd(session, vm, _disk(session, "root"), "0")
    iso = _disk(session, "install.iso")
    assert _error(lambda: session.xenapi.VBD.eject(cd)) == ["VBD_IS_EMPTY", cd]
    assert _error(lambda: session.xenapi.VBD.eject(disk)) == ["VBD_NOT_REMOVABLE_MEDIA", disk]
    session.xenapi.VBD.insert(cd, iso)
    assert session.xenapi.VBD.get_VDI(cd) == iso and session.xenapi.VBD.get_empty(cd) is False
    assert _error(lambda: session.xenapi.VBD.insert(cd, iso)) == ["VBD_NOT_EMPTY", cd]
    session.xenapi.VBD.eject(cd)
    assert session.xenapi.VBD.get_empty(cd) is True
    session.xenapi.VM.start(vm, False, False)
    assert session.xenapi.VBD.get_currently_attached(cd) is True
    session.xenapi.VBD.insert(cd, iso)
    assert session.xenapi.VBD.get_VDI(cd) == iso
    assert _error(lambda: session.xenapi.VBD.insert(cd, iso)) == ["VBD_NOT_EMPTY", cd]
    session.xenapi.VBD.eject(cd)
    assert session.xenapi.VBD.get_VDI(cd) == NULL
    assert session.xenapi.VBD.get_current_operations(cd) == {}
    session.xenapi.VM.hard_shutdown(vm)


def test_vif_create_destroy_and_hotplug(session):
    """A VIF gets a MAC when none is given, is refused a taken or bad device and a bad MAC,
    starts detached on a running VM, is plugged and unplugged (forced too), and is destroyed
    only once detached."""
    vm = new_vm(session, "vif")
    first = _vif(session, vm, "0")
    mac = session.xenapi.VIF.get_MAC(first)
    assert len(mac.split(":")) == 6
    assert session.xenapi.VIF.get_MAC_autogenerated(first) is True
    assert _error(lambda: _vif(session, vm, "0")) == ["DEVICE_ALREADY_EXISTS", "0"]
    assert _error(lambda: _vif(session, vm, "eth1")) == ["INVALID_DEVICE", "eth1"]
    assert _error(lambda: _vif(session, vm, "1", mac="nonsense")) == ["MAC_INVALID", "nonsense"]
    assert session.xenapi.VM.get_allowed_VIF_devices(vm) == ["1", "2", "3", "4", "5", "6"]
    session.xenapi.VM.start(vm, False, False)
    assert session.xenapi.VIF.get_currently_attached(first) is True
    second = _vif(session, vm, "1", mac="02:00:00:00:aa:01")
    assert session.xenapi.VIF.get_currently_attached(second) is False
    token = event_from(session, ["vif/" + second], "", 0.0)["token"]
    session.xenapi.VIF.plug(second)
    attached, token = _attached_as_events_show(session, "VIF", second, token)
    assert attached is True
    assert _error(lambda: session.xenapi.VIF.plug(second)) == ["DEVICE_ALREADY_ATTACHED", second]
    assert _error(lambda: session.xenapi.VIF.destroy(second)) == [
        "OPERATION_NOT_ALLOWED", "VIF currently attached to a running VM"]
    session.xenapi.VIF.unplug(second)
    attached, token = _attached_as_events_show(session, "VIF", second, token)
    assert attached is False
    assert _error(lambda: session.xenapi.VIF.unplug(second)) == ["DEVICE_ALREADY_DETACHED", second]
    session.xenapi.VIF.unplug_force(first)
    assert session.xenapi.VIF.get_currently_attached(first) is False
    session.xenapi.VIF.destroy(second)
    assert session.xenapi.VM.get_VIFs(vm) == [first]
    session.xenapi.VM.hard_shutdown(vm)
    assert _error(lambda: session.xenapi.VIF.plug(first)) == [
        "VM_BAD_POWER_STATE", vm, "running", "halted"]


def test_devices_plugged_while_running_come_back_at_the_next_start(session):
    """A VBD and a VIF created while the VM runs are attached by its next start."""
    vm = new_vm(session, "next-start")
    session.xenapi.VM.start(vm, False, False)
    vbd = _vbd(session, vm, _disk(session, "late"), "1")
    vif = _vif(session, vm, "0")
    session.xenapi.VM.clean_shutdown(vm)
    session.xenapi.VM.start(vm, False, False)
    assert session.xenapi.VBD.get_currently_attached(vbd) is True
    assert session.xenapi.VIF.get_currently_attached(vif) is True
    session.xenapi.VM.hard_shutdown(vm)
