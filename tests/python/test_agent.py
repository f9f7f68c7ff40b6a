"""The host agent through the SDK: events of each power-state change, guest-initiated changes,
hooks, cancellation, parallel starts, racing calls and reconciliation after kill -9."""

import os
import stat
import threading

import pytest
import XenAPI

from conftest import Host
from lifecycle import event_from, new_vm, simulator, wait_task, wait_vm


@pytest.fixture
def slow_host():
    """A host whose simulated domain build takes 400 ms, so operations can be watched mid-way."""
    h = Host(config={"simulator": {"latency_ms": {"build": 400}}})
    yield h
    h.close()


def test_each_power_state_change_is_an_event(slow_host):
    """A watcher sees the VM go from Halted through a start in progress to Running, then back."""
    s = slow_host.session()
    vm = new_vm(s, "watched")
    token = event_from(s, ["vm/" + vm], "", 0.0)["token"]
    snapshots = []
    stop = threading.Event()
    watcher_session = slow_host.session()

    def watch():
        nonlocal token
        while not stop.is_set():
            batch = event_from(watcher_session, ["vm/" + vm], token, 2.0)
            token = batch["token"]
            snapshots.extend(e["snapshot"] for e in batch["events"] if e["operation"] == "mod")

    watcher = threading.Thread(target=watch)
    watcher.start()
    s.xenapi.VM.start(vm, False, False)
    s.xenapi.VM.clean_shutdown(vm)
    wait_vm(s, vm, lambda r: r["power_state"] == "Halted")
    stop.set()
    watcher.join(30)
    seen = [(snap["power_state"], sorted(snap["current_operations"].values()))
            for snap in snapshots]
    assert ("Halted", ["start"]) in seen
    assert ("Running", []) in seen
    assert ("Running", ["clean_shutdown"]) in seen
    assert seen[-1] == ("Halted", [])
    running = [snap for snap in snapshots if snap["power_state"] == "Running"]
    assert all(snap["resident_on"] != "OpaqueRef:NULL" for snap in running)


def test_guest_power_off_reboot_and_crash_are_reported(own_host):
    """The simulator's test-only control makes a guest power off, reboot or crash; the VM's
    actions_after_* are honoured and the DB follows without anyone asking."""
    s = own_host.session()
    vm = new_vm(s, "guest")
    uuid = s.xenapi.VM.get_uuid(vm)
    s.xenapi.VM.start(vm, False, False)
    domid = s.xenapi.VM.get_domid(vm)
    s.xenapi.VM.set_actions_after_reboot(vm, "restart")
    simulator(own_host, "guest", {"vm": uuid, "event": "reboot"})
    rec = wait_vm(s, vm, lambda r: r["domid"] != domid)
    assert rec["power_state"] == "Running"

    s.xenapi.VM.set_actions_after_crash(vm, "preserve")
    simulator(own_host, "guest", {"vm": uuid, "event": "crash"})
    wait_vm(s, vm, lambda r: r["power_state"] == "Paused")
    s.xenapi.VM.hard_shutdown(vm)

    s.xenapi.VM.start(vm, False, False)
    s.xenapi.VM.set_actions_after_shutdown(vm, "destroy")
    simulator(own_host, "guest", {"vm": uuid, "event": "poweroff"})
    rec = wait_vm(s, vm, lambda r: r["power_state"] == "Halted")
    assert rec["resident_on"] == "OpaqueRef:NULL" and rec["current_operations"] == {}


def _write_hook(host, name, body):
    folder = os.path.join(host.data_dir, "hooks", name)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "10-test")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    return path


def test_hooks_run_with_the_vm_uuid_and_a_failing_pre_start_fails_the_start(own_host):
    """Hook scripts get -reason and -vmuuid; a failing vm-pre-start hook fails the start with
    XAPI_HOOK_FAILED and leaves the VM halted."""
    s = own_host.session()
    vm = new_vm(s, "hooked")
    uuid = s.xenapi.VM.get_uuid(vm)
    log = os.path.join(own_host.root, "hook.log")
    _write_hook(own_host, "vm-pre-start", 'echo "$@" >> %s\n' % log)
    s.xenapi.VM.start(vm, False, False)
    with open(log) as f:
        args = f.read().split()
    assert args[args.index("-vmuuid") + 1] == uuid
    assert "-reason" in args
    s.xenapi.VM.hard_shutdown(vm)

    _write_hook(own_host, "vm-pre-start", "echo refusing; exit 3\n")
    with pytest.raises(XenAPI.Failure) as err:
        s.xenapi.VM.start(vm, False, False)
    assert err.value.details[0] == "XAPI_HOOK_FAILED"
    rec = s.xenapi.VM.get_record(vm)
    assert rec["power_state"] == "Halted" and rec["current_operations"] == {}


def test_cancel_stops_a_start_and_leaves_the_vm_halted(slow_host):
    """task.cancel during a slow start stops it at the next micro-op: the task is cancelled and
    the VM is Halted with nothing in current_operations."""
    s = slow_host.session()
    vm = new_vm(s, "cancelled")
    task = s.xenapi.Async.VM.start(vm, False, False)
    token = event_from(s, ["task/" + task], "", 0.0)["token"]
    while s.xenapi.task.get_progress(task) == 0.0 and s.xenapi.task.get_status(task) == "pending":
        token = event_from(s, ["task/" + task], token, 5.0)["token"]
    s.xenapi.task.cancel(task)
    assert wait_task(s, task) == "cancelled"
    assert s.xenapi.task.get_error_info(task)[0] == "TASK_CANCELLED"
    rec = s.xenapi.VM.get_record(vm)
    assert rec["power_state"] == "Halted"
    assert rec["current_operations"] == {}
    assert rec["resident_on"] == "OpaqueRef:NULL"


def test_racing_operations_on_one_vm(slow_host):
    """Two starts of one VM at once: one wins, the other gets OTHER_OPERATION_IN_PROGRESS."""
    s = slow_host.session()
    vm = new_vm(s, "raced")
    first = s.xenapi.Async.VM.start(vm, False, False)
    wait_vm(s, vm, lambda r: r["current_operations"] != {})
    with pytest.raises(XenAPI.Failure) as err:
        s.xenapi.VM.start(vm, False, False)
    assert err.value.details[0] == "OTHER_OPERATION_IN_PROGRESS"
    assert err.value.details[1:3] == ["VM", vm]
    assert wait_task(s, first) == "success"
    s.xenapi.VM.hard_shutdown(vm)


def test_two_hundred_vms_start_in_parallel(own_host):
    """200 VMs started at once all end Running with consistent records and no leftover
    current_operations."""
    s = own_host.session()
    host = s.xenapi.host.get_all()[0]
    vms = [new_vm(s, "many-%03d" % i, memory_mib=32) for i in range(200)]
    tasks = [s.xenapi.Async.VM.start(vm, False, False) for vm in vms]
    assert [wait_task(s, t) for t in tasks] == ["success"] * 200
    records = [s.xenapi.VM.get_record(vm) for vm in vms]
    assert all(r["power_state"] == "Running" for r in records)
    assert all(r["resident_on"] == host for r in records)
    assert all(r["current_operations"] == {} for r in records)
    domids = [r["domid"] for r in records]
    assert len(set(domids)) == 200
    resident = set(s.xenapi.host.get_resident_VMs(host))
    assert set(vms) <= resident


def test_restart_reconciles_the_db_with_what_runs(own_host):
    """After kill -9 and a restart, running VMs are still Running, halted ones Halted, and no
    current_operations are left behind."""
    s = own_host.session()
    running = new_vm(s, "keeps-running")
    halted = new_vm(s, "stays-halted")
    s.xenapi.VM.start(running, False, False)
    own_host.kill()
    own_host.start()
    s = own_host.session()
    assert s.xenapi.VM.get_power_state(running) == "Running"
    assert s.xenapi.VM.get_power_state(halted) == "Halted"
    for vm in (running, halted):
        assert s.xenapi.VM.get_current_operations(vm) == {}


def test_kill_during_a_start_leaves_a_consistent_vm(slow_host):
    """oxapi killed mid-start: after the restart the VM is Running or Halted, never half-way,
    and its current_operations are clear."""
    s = slow_host.session()
    vm = new_vm(s, "interrupted")
    s.xenapi.Async.VM.start(vm, False, False)
    wait_vm(s, vm, lambda r: r["current_operations"] != {})
    slow_host.kill()
    slow_host.start()
    s = slow_host.session()
    rec = s.xenapi.VM.get_record(vm)
    assert rec["current_operations"] == {}
    assert rec["power_state"] in ("Running", "Halted")
    if rec["power_state"] == "Running":
        assert rec["resident_on"] != "OpaqueRef:NULL"
    else:
        assert rec["resident_on"] == "OpaqueRef:NULL"
