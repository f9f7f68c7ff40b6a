"""A VDI's bytes through xapi's HTTP handlers, as a script does it: the session ref from the SDK
in the query of `PUT /import_raw_vdi` and `GET /export_raw_vdi`, with urllib. The host's storage
is the simulator's, which keeps the length and SHA-256 of what an import brought."""

import hashlib
import http.client
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request


def _vdi(s, size):
    sr = s.xenapi.pool.get_default_SR(s.xenapi.pool.get_all()[0])
    return s.xenapi.VDI.create({
        "name_label": "imported", "SR": sr, "virtual_size": str(size), "type": "user",
        "sharable": False, "read_only": False, "other_config": {}})


def _request(host, method, path, body=None):
    """The status and body of an HTTPS request to `host` (its certificate is self-signed)."""
    request = urllib.request.Request(host.url + path, data=body, method=method)
    context = ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(request, context=context) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_an_image_imported_with_the_session_ref_reaches_the_vdi(host, session):
    """An import with the SDK's session ref answers 200 and the driver holds the image's hash;
    the export gives as many bytes back; without a session the answer is 401."""
    vdi = _vdi(session, 4 << 20)
    uuid = session.xenapi.VDI.get_uuid(vdi)
    image = bytes(range(256)) * 4096
    query = "session_id=%s&vdi=%s&format=raw" % (session._session, uuid)
    status, _ = _request(host, "PUT", "/import_raw_vdi?" + query, image)
    assert status == 200
    with open(os.path.join(host.data_dir, "simulator", "domains.json")) as f:
        imported = json.load(f)["storage"]["imported"][uuid]
    assert imported["bytes"] == len(image)
    assert imported["sha256"] == hashlib.sha256(image).hexdigest()
    status, exported = _request(host, "GET", "/export_raw_vdi?" + query)
    assert (status, len(exported)) == (200, len(image))
    status, _ = _request(host, "PUT", "/import_raw_vdi?vdi=%s" % uuid, image)
    assert status == 401


def test_an_image_larger_than_the_vdi_is_refused(host, session):
    """A raw image larger than the VDI gets VDI_TOO_SMALL, as a JSON array."""
    vdi = _vdi(session, 1 << 20)
    query = "session_id=%s&vdi=%s&format=raw" % (session._session, vdi)
    status, body = _request(host, "PUT", "/import_raw_vdi?" + query, b"\1" * (2 << 20))
    assert status == 500
    assert json.loads(body)[:2] == ["VDI_TOO_SMALL", vdi]


def _progress_between(session, task, deadline):
    """The task's progress once it is past 0 and short of 1, waiting for it until `deadline`."""
    while True:
        progress = session.xenapi.task.get_progress(task)
        if 0.0 < progress < 1.0 or time.monotonic() > deadline:
            return progress
        time.sleep(0.05)


def test_an_import_reports_its_progress_on_its_task_while_the_bytes_come(host, session):
    """With half of the image sent and the rest held back, the import's task shows a progress
    between 0 and 1; once the rest is sent the task succeeds with progress 1."""
    size = 8 << 20
    vdi = _vdi(session, size)
    task = session.xenapi.task.create("import", "")
    query = "session_id=%s&vdi=%s&format=raw&task_id=%s" % (session._session, vdi, task)
    address = urllib.parse.urlsplit(host.url)
    connection = http.client.HTTPSConnection(
        address.hostname, address.port, context=ssl._create_unverified_context(), timeout=60)
    connection.putrequest("PUT", "/import_raw_vdi?" + query)
    connection.putheader("Content-Length", str(size))
    connection.endheaders()
    chunk = b"\x5a" * (1 << 20)
    for _ in range(size // len(chunk) // 2):
        connection.send(chunk)
    midway = _progress_between(session, task, time.monotonic() + 30)
    assert 0.0 < midway < 1.0
    assert session.xenapi.task.get_status(task) == "pending"
    for _ in range(size // len(chunk) // 2):
        connection.send(chunk)
    reply = connection.getresponse()
    assert (reply.status, reply.read()) == (200, b"")
    connection.close()
    assert session.xenapi.task.get_status(task) == "success"
    assert session.xenapi.task.get_progress(task) == 1.0
