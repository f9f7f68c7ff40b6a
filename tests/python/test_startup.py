"""A host that restarts answers only once the DB agrees with what its hypervisor runs: the
agent's first inventory is reconciled before `oxapi ready`, so no client sees a VM as it was
before the restart."""

import json
import os
import time

from conftest import Host
from lifecycle import new_vm, wait_vm

STATE_FILE = os.path.join("simulator", "domains.json")
DEADLINE_SECS = 30


def _wait_for_domain(host, uuid):
    """Polls the simulator's state file, with a deadline, until it holds a domain of `uuid`."""
    path = os.path.join(host.data_dir, STATE_FILE)
    deadline = time.monotonic() + DEADLINE_SECS
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                if uuid in json.load(f)["domains"]:
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError("no domain of %s in the simulator" % uuid)


def test_the_first_answer_after_a_restart_already_shows_what_runs():
    """oxapi killed mid-start, its half-built domain slow to tear down at the restart (destroy
    takes 1.5 s): the very first answer after `oxapi ready` shows the VM Halted with no
    operation left, not the start that died with the old process."""
    host = Host(config={"simulator": {"latency_ms": {"build": 2000, "destroy": 1500}}})
    try:
        s = host.session()
        vm = new_vm(s, "interrupted")
        s.xenapi.Async.VM.start(vm, False, False)
        wait_vm(s, vm, lambda r: r["current_operations"] != {})
        _wait_for_domain(host, s.xenapi.VM.get_uuid(vm))
        host.kill()
        host.start()
        s = host.session()
        rec = s.xenapi.VM.get_record(vm)
        assert rec["current_operations"] == {}
        assert rec["power_state"] == "Halted"
        assert rec["scheduled_to_be_resident_on"] == "OpaqueRef:NULL"
    finally:
        host.close()
