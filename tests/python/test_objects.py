"""The generic object API through the SDK: getters, setters, maps, sets, lookups, create, destroy,
relations, and the errors xapi raises for each."""

import uuid
import xmlrpc.client

import pytest
import XenAPI

from lifecycle import default_template


def _new_vm(session, name):
    vm = session.xenapi.VM.clone(default_template(session), name)
    session.xenapi.VM.set_is_a_template(vm, False)
    return vm


def _details(excinfo):
    return excinfo.value.details


def test_get_by_uuid_and_by_name_label(session):
    """Objects are found by uuid and by name; an unknown uuid is UUID_INVALID."""
    vm = _new_vm(session, "lookup-me")
    uid = session.xenapi.VM.get_uuid(vm)
    assert session.xenapi.VM.get_by_uuid(uid) == vm
    assert session.xenapi.VM.get_by_name_label("lookup-me") == [vm]
    assert session.xenapi.VM.get_by_name_label("no such name") == []
    missing = str(uuid.uuid4())
    with pytest.raises(XenAPI.Failure) as err:
        session.xenapi.VM.get_by_uuid(missing)
    assert _details(err) == ["UUID_INVALID", "VM", missing]


def test_unknown_ref_is_handle_invalid(session):
    """Every generic message on an unknown ref answers HANDLE_INVALID with class and ref."""
    bogus = "OpaqueRef:%s" % uuid.uuid4()
    for call in (lambda: session.xenapi.VM.get_record(bogus),
                 lambda: session.xenapi.VM.get_name_label(bogus),
                 lambda: session.xenapi.VM.set_name_label(bogus, "x"),
                 lambda: session.xenapi.VM.destroy(bogus)):
        with pytest.raises(XenAPI.Failure) as err:
            call()
        assert _details(err) == ["HANDLE_INVALID", "VM", bogus]


def test_set_field_is_seen_by_getter_and_record(session):
    """set_<field> on a RW field shows in get_<field> and get_record."""
    vm = _new_vm(session, "setter")
    session.xenapi.VM.set_name_description(vm, "described")
    assert session.xenapi.VM.get_name_description(vm) == "described"
    assert session.xenapi.VM.get_record(vm)["name_description"] == "described"


def test_read_only_fields_have_no_setter(session):
    """A DynamicRO field has no set_ message: MESSAGE_METHOD_UNKNOWN."""
    vm = _new_vm(session, "ro")
    with pytest.raises(XenAPI.Failure) as err:
        session.xenapi.VM.set_power_state(vm, "Running")
    assert _details(err)[0] == "MESSAGE_METHOD_UNKNOWN"


def test_wrong_type_is_field_type_error(session):
    """A value of the wrong type is FIELD_TYPE_ERROR naming the parameter."""
    vm = _new_vm(session, "types")
    with pytest.raises(XenAPI.Failure) as err:
        session.xenapi.VM.set_is_a_template(vm, {"not": "a bool"})
    assert _details(err) == ["FIELD_TYPE_ERROR", "value"]


def test_map_add_remove_and_duplicate_key(session):
    """add_to_/remove_from_ on a map; adding an existing key is MAP_DUPLICATE_KEY."""
    vm = _new_vm(session, "maps")
    session.xenapi.VM.add_to_other_config(vm, "k", "v")
    assert session.xenapi.VM.get_other_config(vm)["k"] == "v"
    with pytest.raises(XenAPI.Failure) as err:
        session.xenapi.VM.add_to_other_config(vm, "k", "w")
    assert _details(err) == ["MAP_DUPLICATE_KEY", "VM", "other_config",
                             session.xenapi.VM.get_uuid(vm), "k"]
    session.xenapi.VM.remove_from_other_config(vm, "k")
    session.xenapi.VM.remove_from_other_config(vm, "never-there")
    assert "k" not in session.xenapi.VM.get_other_config(vm)


def test_set_add_and_remove(session):
    """add_/remove_ on a set field (VM.tags); adding twice keeps one."""
    vm = _new_vm(session, "sets")
    session.xenapi.VM.add_tags(vm, "blue")
    session.xenapi.VM.add_tags(vm, "blue")
    session.xenapi.VM.add_tags(vm, "green")
    assert sorted(session.xenapi.VM.get_tags(vm)) == ["blue", "green"]
    session.xenapi.VM.remove_tags(vm, "blue")
    assert session.xenapi.VM.get_tags(vm) == ["green"]


def test_get_all_records_where_filters(session):
    """get_all_records_where with field equality, and/or/not."""
    a = _new_vm(session, "where-a")
    b = _new_vm(session, "where-b")
    only_a = session.xenapi.VM.get_all_records_where('field "name_label"="where-a"')
    assert list(only_a) == [a]
    both = session.xenapi.VM.get_all_records_where(
        'field "name_label"="where-a" or field "name_label"="where-b"')
    assert sorted(both) == sorted([a, b])
    not_templates = session.xenapi.VM.get_all_records_where('not (field "is_a_template"="true")')
    assert a in not_templates and b in not_templates
    assert all(not r["is_a_template"] for r in not_templates.values())


def test_clone_of_template_and_turning_it_into_a_vm(session):
    """VM.clone of a template gives a template copy; set_is_a_template(false) makes a halted VM."""
    template = default_template(session)
    copy = session.xenapi.VM.clone(template, "my copy")
    rec = session.xenapi.VM.get_record(copy)
    assert copy != template
    assert rec["is_a_template"] is True and rec["name_label"] == "my copy"
    assert rec["uuid"] != session.xenapi.VM.get_uuid(template)
    session.xenapi.VM.set_is_a_template(copy, False)
    rec = session.xenapi.VM.get_record(copy)
    assert rec["is_a_template"] is False and rec["power_state"] == "Halted"
    assert session.xenapi.VM_metrics.get_record(rec["metrics"])


def _vm_record(name, **overrides):
    rec = {
        "name_label": name, "name_description": "", "user_version": "1",
        "is_a_template": False, "affinity": "OpaqueRef:NULL",
        "memory_static_max": "1073741824", "memory_dynamic_max": "1073741824",
        "memory_dynamic_min": "536870912", "memory_static_min": "268435456",
        "VCPUs_params": {}, "VCPUs_max": "2", "VCPUs_at_startup": "1",
        "actions_after_shutdown": "destroy", "actions_after_reboot": "restart",
        "actions_after_crash": "restart", "PV_bootloader": "", "PV_kernel": "",
        "PV_ramdisk": "", "PV_args": "", "PV_bootloader_args": "", "PV_legacy_args": "",
        "HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": "cd"},
        "platform": {}, "PCI_bus": "", "other_config": {}, "recommendations": "",
    }
    rec.update(overrides)
    return rec


def test_vm_create_takes_xapis_record_and_destroy_removes_it(session):
    """VM.create with the record xapi's clients send; destroy removes the VM and its metrics."""
    vm = session.xenapi.VM.create(_vm_record("created"))
    rec = session.xenapi.VM.get_record(vm)
    assert rec["power_state"] == "Halted" and rec["VCPUs_max"] == "2"
    assert rec["domid"] == "-1"
    metrics = rec["metrics"]
    session.xenapi.VM.destroy(vm)
    assert vm not in session.xenapi.VM.get_all()
    assert metrics not in session.xenapi.VM_metrics.get_all()


def test_destroy_of_a_running_vm_is_vm_bad_power_state(session):
    """A running VM cannot be destroyed: VM_BAD_POWER_STATE [vm; expected; actual]."""
    vm = session.xenapi.VM.create(_vm_record("running", power_state="Running"))
    with pytest.raises(XenAPI.Failure) as err:
        session.xenapi.VM.destroy(vm)
    details = _details(err)
    assert details[0] == "VM_BAD_POWER_STATE" and details[1] == vm
    assert details[3] == "running"
    assert vm in session.xenapi.VM.get_all()


def test_relations_are_kept_by_the_db(session):
    """Creating and destroying a VDI's VBD keeps SR.VDIs, VM.VBDs and VDI.VBDs in step."""
    a = _new_vm(session, "rel-a")
    sr = session.xenapi.pool.get_default_SR(session.xenapi.pool.get_all()[0])
    vdi = session.xenapi.VDI.create({
        "name_label": "disk", "name_description": "", "SR": sr, "virtual_size": "1048576",
        "type": "user", "sharable": False, "read_only": False, "other_config": {},
        "xenstore_data": {}, "sm_config": {}, "tags": []})
    assert vdi in session.xenapi.SR.get_VDIs(sr)
    vbd = session.xenapi.VBD.create({
        "VM": a, "VDI": vdi, "userdevice": "0", "bootable": True, "mode": "RW", "type": "Disk",
        "unpluggable": True, "empty": False, "other_config": {}, "qos_algorithm_type": "",
        "qos_algorithm_params": {}})
    assert vbd in session.xenapi.VM.get_VBDs(a)
    assert vbd in session.xenapi.VDI.get_VBDs(vdi)
    session.xenapi.VBD.destroy(vbd)
    assert vbd not in session.xenapi.VM.get_VBDs(a)
    assert vbd not in session.xenapi.VDI.get_VBDs(vdi)
    session.xenapi.VDI.destroy(vdi)
    assert vdi not in session.xenapi.SR.get_VDIs(sr)


def test_create_with_unknown_reference_is_handle_invalid(session):
    """A record pointing at an object that does not exist is refused with HANDLE_INVALID."""
    bogus = "OpaqueRef:%s" % uuid.uuid4()
    with pytest.raises(XenAPI.Failure) as err:
        session.xenapi.VIF.create({
            "device": "0", "network": bogus, "VM": _new_vm(session, "vif"), "MAC": "",
            "MTU": "1500", "other_config": {}, "qos_algorithm_type": "",
            "qos_algorithm_params": {}})
    assert _details(err)[0] == "HANDLE_INVALID"
    assert bogus in _details(err)


def test_a_string_xml_cannot_carry_is_refused(session):
    """A name with a NUL in it is refused whole (HTTP 500 with INTERNAL_ERROR, xapi's answer to a
    malformed call), not stored to be dropped from every later XML-RPC reply."""
    vm = _new_vm(session, "nul test")
    with pytest.raises(xmlrpc.client.ProtocolError) as refused:
        session.xenapi.VM.set_name_label(vm, "a\x00b")
    assert refused.value.errcode == 500
    assert session.xenapi.VM.get_name_label(vm) == "nul test"
