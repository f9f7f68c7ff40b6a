"""A host that restarts answers only once the DB agrees with what its hypervisor runs: the
agent's first inventory is reconciled before `oxapi ready`, so no client sees a VM as it was
before the restart. Started without `--backend`, a host runs its guests on QEMU where
`qemu.binary` is installed and on the simulator otherwise, and says which at start and in its
host record."""

import json
import os
import re
import shutil
import time

import pytest

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


QEMU_BINARY = "qemu-system-x86_64"
# The line oxapi prints before `oxapi ready`: `guests run on: qemu (kvm, cpu host)` or
# `guests run on: simulator`.
GUESTS_RUN_ON = re.compile(r"^guests run on: (\S+)(?: \(([^,]+), cpu (.+)\))?$")


def _guests_run_on(host):
    """(kind, accel, cpu model) from the one `guests run on:` line of the host's start."""
    lines = [line for line in host.start_lines if line.startswith("guests run on:")]
    assert len(lines) == 1, "start lines: %r" % host.start_lines
    match = GUESTS_RUN_ON.match(lines[0])
    assert match, "unexpected line: %r" % lines[0]
    return match.groups()


def _host_record(host):
    """The record of the one host of `host`'s pool, read right after `oxapi ready`."""
    s = host.session()
    try:
        hosts = s.xenapi.host.get_all()
        assert len(hosts) == 1
        return s.xenapi.host.get_record(hosts[0])
    finally:
        s.xenapi.session.logout()


@pytest.mark.skipif(shutil.which(QEMU_BINARY) is None,
                    reason="%s is not installed, so the default backend is the simulator"
                    % QEMU_BINARY)
def test_without_backend_flag_guests_run_on_qemu_where_it_is_installed():
    """With QEMU installed and no `--backend`, oxapi runs the qemu backend, prints
    `guests run on: qemu (<accel>, cpu <model>)` before its ready line, and its host record
    names the same hypervisor in `software_version`, `cpu_info` and `capabilities`."""
    host = Host(backend=None)
    try:
        kind, accel, cpu_model = _guests_run_on(host)
        assert kind == "qemu"
        assert accel in ("kvm", "tcg")
        assert cpu_model
        rec = _host_record(host)
        assert rec["software_version"].get("hypervisor") == "qemu-" + accel
        assert rec["cpu_info"].get("accel") == accel
        assert rec["cpu_info"].get("cpu_model") == cpu_model
        assert "qemu-%s-x86_64" % accel in rec["capabilities"]
    finally:
        host.close()


def test_without_backend_flag_a_missing_qemu_binary_falls_back_to_the_simulator():
    """With no `--backend` and `qemu.binary` naming a file that does not exist, oxapi runs
    the simulator, prints `guests run on: simulator`, and its host record says `simulator`,
    with no QEMU capability."""
    missing = "/nonexistent-oxapi-test/qemu-system-x86_64"
    assert not os.path.exists(missing)
    host = Host(backend=None, config={"qemu": {"binary": missing}})
    try:
        assert _guests_run_on(host) == ("simulator", None, None)
        rec = _host_record(host)
        assert rec["software_version"].get("hypervisor") == "simulator"
        assert not [c for c in rec["capabilities"] if c.startswith("qemu-")]
        assert not os.path.exists(os.path.join(host.data_dir, "qemu"))
    finally:
        host.close()
