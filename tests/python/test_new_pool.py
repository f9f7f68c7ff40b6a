"""What a new one-host pool holds: pool, host, metrics, CPUs, network, storage, templates."""

import os


def _meminfo_total_bytes():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal")


def test_pool_has_this_host_as_master(session):
    """One pool row whose master is the only host; the SDK's API_version works."""
    pools = session.xenapi.pool.get_all()
    hosts = session.xenapi.host.get_all()
    assert len(pools) == 1 and len(hosts) == 1
    assert session.xenapi.pool.get_master(pools[0]) == hosts[0]
    assert session.API_version == "%s.%s" % (
        session.xenapi.host.get_API_version_major(hosts[0]),
        session.xenapi.host.get_API_version_minor(hosts[0]))


def test_host_describes_this_machine(host, session):
    """The host record carries the address, hostname, versions, CPUs and memory of this machine."""
    ref = session.xenapi.host.get_all()[0]
    rec = session.xenapi.host.get_record(ref)
    assert rec["address"] == host.ip
    assert rec["hostname"] == os.uname().nodename
    assert rec["enabled"] is True
    assert rec["API_version_major"] == "2"
    assert "product_version" in rec["software_version"]
    assert int(rec["cpu_info"]["cpu_count"]) == os.cpu_count()
    assert len(rec["host_CPUs"]) == os.cpu_count()
    metrics = session.xenapi.host_metrics.get_record(rec["metrics"])
    assert int(metrics["memory_total"]) == _meminfo_total_bytes()
    assert metrics["live"] is True
    cpu = session.xenapi.host_cpu.get_record(rec["host_CPUs"][0])
    assert cpu["host"] == ref


def test_control_domain_runs_on_the_host(session):
    """The host's control domain is a running VM resident on it."""
    ref = session.xenapi.host.get_all()[0]
    dom0 = session.xenapi.host.get_control_domain(ref)
    rec = session.xenapi.VM.get_record(dom0)
    assert rec["is_control_domain"] is True
    assert rec["power_state"] == "Running"
    assert rec["resident_on"] == ref
    assert dom0 in session.xenapi.host.get_resident_VMs(ref)


def test_default_network_and_management_pif(host, session):
    """A network with this host's management PIF, which carries the host's address."""
    ref = session.xenapi.host.get_all()[0]
    pifs = session.xenapi.host.get_PIFs(ref)
    assert len(pifs) == 1
    pif = session.xenapi.PIF.get_record(pifs[0])
    assert pif["management"] is True and pif["IP"] == host.ip
    net = session.xenapi.network.get_record(pif["network"])
    assert pifs[0] in net["PIFs"]
    assert net["bridge"]


def test_local_sr_is_plugged_into_the_host(session):
    """A local SR with a PBD attached to this host, and it is the pool's default SR."""
    ref = session.xenapi.host.get_all()[0]
    pbds = session.xenapi.host.get_PBDs(ref)
    assert len(pbds) == 1
    pbd = session.xenapi.PBD.get_record(pbds[0])
    assert pbd["currently_attached"] is True
    sr = session.xenapi.SR.get_record(pbd["SR"])
    assert sr["shared"] is False and pbds[0] in sr["PBDs"]
    assert int(sr["physical_size"]) > 0
    pool = session.xenapi.pool.get_all()[0]
    assert session.xenapi.pool.get_default_SR(pool) == pbd["SR"]


def test_templates_have_sensible_resources(session):
    """A few templates: halted, with memory limits in order and VCPUs set."""
    templates = session.xenapi.VM.get_all_records_where('field "is_a_template"="true"')
    assert len(templates) >= 3
    for rec in templates.values():
        assert rec["power_state"] == "Halted"
        mem = [int(rec[k]) for k in ("memory_static_min", "memory_dynamic_min",
                                     "memory_dynamic_max", "memory_static_max")]
        assert 0 < mem[0] <= mem[1] <= mem[2] <= mem[3]
        assert int(rec["VCPUs_at_startup"]) <= int(rec["VCPUs_max"])
        assert int(rec["VCPUs_max"]) >= 1


def test_every_listed_class_answers_get_all_records(host, session):
    """As Xen Orchestra does after login: get_all_records on every class listMethods names."""
    methods = host.raw().system.listMethods()
    classes = sorted({m.split(".")[0] for m in methods if m.endswith(".get_all_records")})
    for expected in ("pool", "host", "host_metrics", "host_cpu", "VM", "VM_metrics",
                     "VM_guest_metrics", "VBD", "VDI", "SR", "PBD", "VIF", "network", "PIF",
                     "console", "task", "message"):
        assert expected in classes
    for cls in classes:
        records = getattr(session.xenapi, cls).get_all_records()
        assert isinstance(records, dict)
        for ref, rec in records.items():
            assert ref.startswith("OpaqueRef:")
            assert isinstance(rec, dict)


def test_every_reference_points_at_an_existing_object(session):
    """In the new pool, every ref field points at a live object or is OpaqueRef:NULL."""
    live = {}
    for cls in ("pool", "host", "host_metrics", "host_cpu", "VM", "VM_metrics", "VBD", "VDI",
                "SR", "PBD", "VIF", "network", "PIF", "console"):
        live.update({ref: cls for ref in getattr(session.xenapi, cls).get_all()})
    for ref in list(live):
        rec = getattr(session.xenapi, live[ref]).get_record(ref)
        for field, value in rec.items():
            values = value if isinstance(value, list) else [value]
            for v in values:
                if isinstance(v, str) and v.startswith("OpaqueRef:") and v != "OpaqueRef:NULL":
                    assert v in live, "%s %s.%s -> %s" % (live[ref], ref, field, v)
