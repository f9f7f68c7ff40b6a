"""The VM lifecycle through the SDK, on the simulator backend: every power operation, the state at
each step, the errors xapi raises, resources and placement."""

import pytest
import XenAPI

from lifecycle import default_template, new_vm, wait_task


def test_start_and_clean_shutdown(session):
    """start makes the VM Running on this host with a domain, consoles and metrics;
    clean_shutdown makes it Halted again and removes them."""
    host = session.xenapi.host.get_all()[0]
    vm = new_vm(session, "cycle")
    session.xenapi.VM.start(vm, False, False)
    rec = session.xenapi.VM.get_record(vm)
    assert rec["power_state"] == "Running"
    assert rec["resident_on"] == host
    assert rec["scheduled_to_be_resident_on"] == "OpaqueRef:NULL"
    assert int(rec["domid"]) > 0
    assert rec["current_operations"] == {}
    assert vm in session.xenapi.host.get_resident_VMs(host)
    protocols = sorted(session.xenapi.console.get_protocol(c) for c in rec["consoles"])
    assert protocols == ["rfb", "vt100"]
    for console in rec["consoles"]:
        assert "console" in session.xenapi.console.get_location(console)
    metrics = session.xenapi.VM_metrics.get_record(rec["metrics"])
    assert int(metrics["VCPUs_number"]) == int(rec["VCPUs_at_startup"])
    assert metrics["start_time"].value > "19700101T00:00:00Z"

    session.xenapi.VM.clean_shutdown(vm)
    rec = session.xenapi.VM.get_record(vm)
    assert rec["power_state"] == "Halted"
    assert rec["resident_on"] == "OpaqueRef:NULL"
    assert rec["domid"] == "-1"
    assert rec["consoles"] == []
    assert vm not in session.xenapi.host.get_resident_VMs(host)


def test_allowed_operations_follow_the_power_state(session):
    """allowed_operations offers start when Halted and the shutdowns when Running."""
    vm = new_vm(session, "allowed")
    halted = set(session.xenapi.VM.get_allowed_operations(vm))
    assert {"start", "start_on", "clone", "destroy"} <= halted
    assert not {"clean_shutdown", "hard_shutdown", "pause", "unpause"} & halted
    session.xenapi.VM.start(vm, False, False)
    running = set(session.xenapi.VM.get_allowed_operations(vm))
    assert {"clean_shutdown", "hard_shutdown", "clean_reboot", "hard_reboot",
            "pause", "suspend"} <= running
    assert not {"start", "unpause", "resume", "destroy"} & running
    session.xenapi.VM.hard_shutdown(vm)


def test_pause_unpause_reboot_suspend_resume(session):
    """Every power operation moves the VM to the state xapi's table says."""
    vm = new_vm(session, "every-op")
    ps = lambda: session.xenapi.VM.get_power_state(vm)
    session.xenapi.VM.start(vm, True, False)
    assert ps() == "Paused"
    session.xenapi.VM.unpause(vm)
    assert ps() == "Running"
    session.xenapi.VM.pause(vm)
    assert ps() == "Paused"
    session.xenapi.VM.unpause(vm)
    domid = session.xenapi.VM.get_domid(vm)
    session.xenapi.VM.clean_reboot(vm)
    assert ps() == "Running" and session.xenapi.VM.get_domid(vm) != domid
    session.xenapi.VM.hard_reboot(vm)
    assert ps() == "Running"
    session.xenapi.VM.suspend(vm)
    assert ps() == "Suspended"
    assert session.xenapi.VM.get_suspend_VDI(vm) != "OpaqueRef:NULL"
    assert session.xenapi.VM.get_resident_on(vm) == "OpaqueRef:NULL"
    session.xenapi.VM.resume(vm, False, False)
    assert ps() == "Running"
    assert session.xenapi.VM.get_suspend_VDI(vm) == "OpaqueRef:NULL"
    session.xenapi.VM.shutdown(vm)
    assert ps() == "Halted"
    host = session.xenapi.host.get_all()[0]
    session.xenapi.VM.start_on(vm, host, False, False)
    assert session.xenapi.VM.get_resident_on(vm) == host
    session.xenapi.VM.hard_shutdown(vm)
    assert ps() == "Halted"


def test_power_state_reset_refuses_a_running_domain_and_resets_the_rest(session):
    """power_state_reset marks a VM Halted in the DB; a domain that still runs on a live host is
    not forgotten that way: DOMAIN_EXISTS [vm; domid], as on xapi."""
    vm = new_vm(session, "reset")
    session.xenapi.VM.start(vm, False, False)
    domid = session.xenapi.VM.get_domid(vm)
    assert _error(lambda: session.xenapi.VM.power_state_reset(vm)) == [
        "DOMAIN_EXISTS", vm, domid]
    session.xenapi.VM.suspend(vm)
    session.xenapi.VM.power_state_reset(vm)
    rec = session.xenapi.VM.get_record(vm)
    assert rec["power_state"] == "Halted" and rec["resident_on"] == "OpaqueRef:NULL"
    assert rec["current_operations"] == {}


def _error(call):
    with pytest.raises(XenAPI.Failure) as err:
        call()
    return err.value.details


def test_power_state_errors(session):
    """Operations in the wrong state fail with VM_BAD_POWER_STATE [vm; expected; actual]."""
    vm = new_vm(session, "bad-state")
    assert _error(lambda: session.xenapi.VM.clean_shutdown(vm)) == [
        "VM_BAD_POWER_STATE", vm, "running", "halted"]
    assert _error(lambda: session.xenapi.VM.unpause(vm))[0] == "VM_BAD_POWER_STATE"
    assert _error(lambda: session.xenapi.VM.resume(vm, False, False))[0] == "VM_BAD_POWER_STATE"
    session.xenapi.VM.start(vm, False, False)
    assert _error(lambda: session.xenapi.VM.start(vm, False, False)) == [
        "VM_BAD_POWER_STATE", vm, "halted", "running"]
    assert _error(lambda: session.xenapi.VM.destroy(vm))[0] == "VM_BAD_POWER_STATE"
    session.xenapi.VM.hard_shutdown(vm)


def test_templates_cannot_start(session):
    """A template cannot be started: VM_IS_TEMPLATE."""
    template = default_template(session)
    assert _error(lambda: session.xenapi.VM.start(template, False, False)) == [
        "VM_IS_TEMPLATE", template]


def test_blocked_operations_are_refused(session):
    """An operation listed in blocked_operations fails with OPERATION_BLOCKED [vm; reason]."""
    vm = new_vm(session, "blocked")
    session.xenapi.VM.add_to_blocked_operations(vm, "start", "maintenance")
    assert _error(lambda: session.xenapi.VM.start(vm, False, False)) == [
        "OPERATION_BLOCKED", vm, "maintenance"]
    session.xenapi.VM.remove_from_blocked_operations(vm, "start")
    session.xenapi.VM.start(vm, False, False)
    session.xenapi.VM.hard_shutdown(vm)


def test_memory_constraints_and_host_memory(session):
    """Memory limits out of order are MEMORY_CONSTRAINT_VIOLATION; a VM bigger than the host's
    free memory cannot start: HOST_NOT_ENOUGH_FREE_MEMORY."""
    vm = new_vm(session, "memory")
    gib = 1 << 30
    assert _error(lambda: session.xenapi.VM.set_memory_limits(
        vm, str(2 * gib), str(gib), str(gib), str(gib)))[0] == "MEMORY_CONSTRAINT_VIOLATION"
    host = session.xenapi.host.get_all()[0]
    free = int(session.xenapi.host.compute_free_memory(host))
    huge = str(free + gib)
    session.xenapi.VM.set_memory_limits(vm, str(gib), huge, huge, huge)
    details = _error(lambda: session.xenapi.VM.start(vm, False, False))
    assert details[0] == "HOST_NOT_ENOUGH_FREE_MEMORY"
    assert session.xenapi.VM.get_power_state(vm) == "Halted"
    assert session.xenapi.VM.get_current_operations(vm) == {}


def test_started_vm_uses_host_memory(session):
    """Starting a VM lowers the host's free memory by its footprint; stopping gives it back."""
    host = session.xenapi.host.get_all()[0]
    vm = new_vm(session, "footprint")
    before = int(session.xenapi.host.compute_free_memory(host))
    session.xenapi.VM.start(vm, False, False)
    during = int(session.xenapi.host.compute_free_memory(host))
    assert during <= before - int(session.xenapi.VM.get_memory_dynamic_min(vm))
    session.xenapi.VM.hard_shutdown(vm)
    assert int(session.xenapi.host.compute_free_memory(host)) == before


def test_vcpus_and_memory_live(session):
    """set_VCPUs_number_live and set_memory_dynamic_range act on a running VM; limits hold."""
    vm = new_vm(session, "live")
    session.xenapi.VM.set_VCPUs_max(vm, "4")
    session.xenapi.VM.set_VCPUs_at_startup(vm, "1")
    session.xenapi.VM.start(vm, False, False)
    session.xenapi.VM.set_VCPUs_number_live(vm, "3")
    metrics = session.xenapi.VM.get_metrics(vm)
    assert session.xenapi.VM_metrics.get_VCPUs_number(metrics) == "3"
    assert _error(lambda: session.xenapi.VM.set_VCPUs_number_live(vm, "5"))[0] == "INVALID_VALUE"
    smin = int(session.xenapi.VM.get_memory_static_min(vm))
    smax = int(session.xenapi.VM.get_memory_static_max(vm))
    session.xenapi.VM.set_memory_dynamic_range(vm, str(smin), str(smax))
    assert int(session.xenapi.VM.get_memory_dynamic_max(vm)) == smax
    session.xenapi.VM.hard_shutdown(vm)


def test_async_start_reports_a_successful_task(session):
    """Async.VM.start returns a task that ends in success with progress 1."""
    vm = new_vm(session, "async-start")
    task = session.xenapi.Async.VM.start(vm, False, False)
    assert wait_task(session, task) == "success"
    assert session.xenapi.task.get_progress(task) == 1.0
    assert session.xenapi.VM.get_power_state(vm) == "Running"
    session.xenapi.VM.hard_shutdown(vm)


def test_placement_policy_is_read_from_pool_other_config(session):
    """Both placement policies pick the only host; an unknown policy is refused or ignored
    without breaking starts."""
    pool = session.xenapi.pool.get_all()[0]
    host = session.xenapi.host.get_all()[0]
    for policy in ("depth-first", "breadth-first"):
        session.xenapi.pool.remove_from_other_config(pool, "placement-policy")
        session.xenapi.pool.add_to_other_config(pool, "placement-policy", policy)
        vm = new_vm(session, "placed-" + policy)
        session.xenapi.VM.start(vm, False, False)
        assert session.xenapi.VM.get_resident_on(vm) == host
        session.xenapi.VM.hard_shutdown(vm)
    session.xenapi.pool.remove_from_other_config(pool, "placement-policy")
