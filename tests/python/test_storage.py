"""VDIs with data through the SDK, on a host whose local SR is kept by the file driver: create
makes a qcow2 file, resize grows it (a shrink is SR_BACKEND_FAILURE_79), a snapshot reads the
original's data."""

import json
import os
import subprocess

import pytest
import XenAPI

from conftest import Host


@pytest.fixture(scope="module")
def file_host():
    """A host whose local SR holds its VDIs as qcow2 files."""
    h = Host(config={"agent": {"storage_driver": "file"}})
    yield h
    h.close()


def _file(s, vdi):
    sr = s.xenapi.VDI.get_SR(vdi)
    [pbd] = s.xenapi.SR.get_PBDs(sr)
    directory = s.xenapi.PBD.get_device_config(pbd)["location"]
    return os.path.join(directory, s.xenapi.VDI.get_location(vdi))


def _virtual_size(path):
    out = subprocess.run(["qemu-img", "info", "--output=json", "-U", path],
                         check=True, capture_output=True).stdout
    return json.loads(out)["virtual-size"]


def _qemu_io(path, command):
    run = subprocess.run(["qemu-io", "-f", "qcow2", "-c", command, path], capture_output=True)
    return run.returncode == 0 and b"Pattern verification failed" not in run.stdout


def test_create_resize_and_snapshot_keep_the_data(file_host):
    """A created VDI is a qcow2 file of its size; resize grows it and refuses a shrink; its
    snapshot reads the block written into it before."""
    s = file_host.session()
    sr = s.xenapi.pool.get_default_SR(s.xenapi.pool.get_all()[0])
    vdi = s.xenapi.VDI.create({
        "name_label": "data", "SR": sr, "virtual_size": str(1 << 30), "type": "user",
        "sharable": False, "read_only": False, "other_config": {}})
    path = _file(s, vdi)
    assert _virtual_size(path) == 1 << 30

    s.xenapi.VDI.resize(vdi, str(2 << 30))
    assert _virtual_size(path) == 2 << 30
    assert s.xenapi.VDI.get_virtual_size(vdi) == str(2 << 30)
    with pytest.raises(XenAPI.Failure) as shrink:
        s.xenapi.VDI.resize(vdi, str(1 << 30))
    assert shrink.value.details[0] == "SR_BACKEND_FAILURE_79"
    assert _virtual_size(path) == 2 << 30

    assert _qemu_io(path, "write -P 0xab 0 64k")
    snap = s.xenapi.VDI.snapshot(vdi, {})
    assert s.xenapi.VDI.get_snapshot_of(snap) == vdi
    assert _qemu_io(_file(s, snap), "read -P 0xab 0 64k")
    s.xenapi.session.logout()


def test_an_iso_library_made_with_sr_create_lists_its_isos(file_host, tmp_path):
    """SR.create makes an iso SR on a directory holding an ISO with one attached PBD; SR.scan
    makes a read-only VDI of the ISO with its length; writing into the SR is refused."""
    s = file_host.session()
    with open(tmp_path / "disc.iso", "wb") as iso:
        iso.truncate(1 << 20)
    host = s.xenapi.host.get_all()[0]
    sr = s.xenapi.SR.create(host, {"location": str(tmp_path)}, "0", "ISOs", "", "iso", "iso",
                            False, {})
    [pbd] = s.xenapi.SR.get_PBDs(sr)
    assert s.xenapi.PBD.get_currently_attached(pbd)

    s.xenapi.SR.scan(sr)
    [vdi] = s.xenapi.SR.get_VDIs(sr)
    record = s.xenapi.VDI.get_record(vdi)
    assert (record["location"], record["read_only"], record["virtual_size"]) == (
        "disc.iso", True, str(1 << 20))
    with pytest.raises(XenAPI.Failure) as refused:
        s.xenapi.VDI.create({
            "name_label": "no", "SR": sr, "virtual_size": str(1 << 20), "type": "user",
            "sharable": False, "read_only": False, "other_config": {}})
    assert refused.value.details == ["SR_OPERATION_NOT_SUPPORTED", sr]
