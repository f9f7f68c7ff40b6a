"""A 3-host pool driven through the official Python SDK: pool.join called on each joiner, every
call working through a non-master, and after the master is killed, the SDK logging in again
through another host and finding everything it wrote."""

import time
import xmlrpc.client

import pytest
import XenAPI

from conftest import HTTPS_PORT, Host
from lifecycle import new_vm

# Short failure timings, as the Rust cluster tests use.
CONFIG = {
    "pool": {"dead_after_secs": 4, "fence_after_secs": 2},
    "raft": {"replace_voter_after_secs": 4},
}
DEADLINE_SECS = 60
# The longest the SDK may need, from the kill of the master, to write through another host.
FAILOVER_SECS = 10


def _until(what, check, deadline=DEADLINE_SECS):
    """Polls `check` until it returns something true (errors count as not yet)."""
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        try:
            value = check()
            if value:
                return value
        except (OSError, XenAPI.Failure, xmlrpc.client.Error) as e:
            last = e
        time.sleep(0.1)
    raise AssertionError("%s: not within %ss (last error: %r)" % (what, deadline, last))


def _host_count(host):
    s = host.session()
    try:
        return len(s.xenapi.host.get_all())
    finally:
        s.xenapi.session.logout()


def _master_of(hosts, via):
    """The host of `hosts` that `via` names as the pool's master."""
    s = via.session()
    try:
        pool = s.xenapi.pool.get_all()[0]
        address = s.xenapi.host.get_address(s.xenapi.pool.get_master(pool))
    finally:
        s.xenapi.session.logout()
    return next(h for h in hosts if h.ip == address)


@pytest.fixture(scope="module")
def pool():
    """Three hosts, each started as its own pool, then joined to the first with pool.join."""
    hosts = [Host(password="pool-pw-%d" % i, config=CONFIG) for i in range(3)]
    try:
        master = hosts[0]
        for n, joiner in enumerate(hosts[1:], start=2):
            pid = joiner.proc.pid
            s = joiner.session()
            s.xenapi.pool.join("%s:%d" % (master.ip, HTTPS_PORT), "root", master.password)
            # The joiner restarts itself in place, then takes the pool's root password.
            joiner.password = master.password
            _until("host %s in a pool of %d" % (joiner.ip, n), lambda: _host_count(joiner) == n)
            assert joiner.proc.pid == pid and joiner.proc.poll() is None
        yield hosts
    finally:
        for h in hosts:
            h.close()


def test_every_host_lists_the_pool_and_names_one_master(pool):
    """Each host, through the SDK, lists the three hosts and names the first one master."""
    for h in pool:
        assert _host_count(h) == 3
        assert _master_of(pool, h) is pool[0]


def test_calls_through_a_non_master_are_forwarded(pool):
    """Login, a VM made and started, and a rename, all through a non-master: the master sees it
    all, and the VM runs on a host of the pool."""
    follower = pool[1]
    s = follower.session()
    vm = new_vm(s, "via a non-master")
    s.xenapi.VM.start(vm, False, False)
    s.xenapi.VM.set_name_label(vm, "renamed via a non-master")
    m = pool[0].session()
    rec = m.xenapi.VM.get_record(vm)
    assert rec["name_label"] == "renamed via a non-master"
    assert rec["power_state"] == "Running"
    assert rec["resident_on"] in m.xenapi.host.get_all()


def test_pool_migrate_and_evacuate_move_vms_between_hosts(pool):
    """A diskless VM started on one host moves to another with VM.pool_migrate and off it again
    with host.evacuate, running all along; a VM with a disk on its host's local SR gets
    VM_REQUIRES_SR."""
    s = pool[0].session()
    hosts = s.xenapi.host.get_all()
    vm = new_vm(s, "migrating")
    s.xenapi.VM.start_on(vm, hosts[0], False, False)
    s.xenapi.VM.pool_migrate(vm, hosts[1], {"live": "true"})
    assert s.xenapi.VM.get_resident_on(vm) == hosts[1]
    assert s.xenapi.VM.get_power_state(vm) == "Running"
    s.xenapi.host.evacuate(hosts[1])
    assert s.xenapi.VM.get_resident_on(vm) in (hosts[0], hosts[2])
    assert s.xenapi.VM.get_power_state(vm) == "Running"

    pbd = s.xenapi.host.get_PBDs(hosts[0])[0]
    sr = s.xenapi.PBD.get_SR(pbd)
    rooted = new_vm(s, "rooted")
    vdi = s.xenapi.VDI.create({
        "name_label": "root", "SR": sr, "virtual_size": str(1 << 30), "type": "user",
        "sharable": False, "read_only": False, "other_config": {}})
    s.xenapi.VBD.create({
        "VM": rooted, "VDI": vdi, "userdevice": "0", "bootable": True, "mode": "RW",
        "type": "Disk", "empty": False, "other_config": {}, "qos_algorithm_type": "",
        "qos_algorithm_params": {}})
    s.xenapi.VM.start_on(rooted, hosts[0], False, False)
    with pytest.raises(XenAPI.Failure) as err:
        s.xenapi.VM.pool_migrate(rooted, hosts[1], {"live": "true"})
    assert err.value.details == ["VM_REQUIRES_SR", rooted, sr]
    assert s.xenapi.VM.get_resident_on(rooted) == hosts[0]


def test_after_the_master_is_killed_the_sdk_goes_on_through_another_host(pool):
    """kill -9 of the master: the SDK logs in through another host within seconds, sees what it
    wrote before, writes again, and its old session still works there."""
    s = pool[0].session()
    old_session = s._session
    pool_ref = s.xenapi.pool.get_all()[0]
    s.xenapi.pool.add_to_other_config(pool_ref, "before-failover", "yes")
    master = _master_of(pool, pool[0])
    master.kill()
    killed_at = time.monotonic()
    survivors = [h for h in pool if h is not master]

    def write_through_a_survivor():
        for h in survivors:
            try:
                s = h.session()
                s.xenapi.pool.add_to_other_config(pool_ref, "after-failover", "yes")
                return s
            except (OSError, XenAPI.Failure, xmlrpc.client.Error):
                continue
        return None

    s = _until("a write through a survivor", write_through_a_survivor, FAILOVER_SECS)
    assert time.monotonic() - killed_at < FAILOVER_SECS
    config = s.xenapi.pool.get_other_config(pool_ref)
    assert config["before-failover"] == "yes" and config["after-failover"] == "yes"
    assert _master_of(pool, survivors[0]) in survivors
    reply = survivors[0].raw().pool.get_other_config(old_session, pool_ref)
    assert reply["Status"] == "Success", reply
