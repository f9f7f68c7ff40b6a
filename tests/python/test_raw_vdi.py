"""A VDI's bytes through xapi's HTTP handlers, as a script does it: the session ref from the SDK
in the query of `PUT /import_raw_vdi` and `GET /export_raw_vdi`, with urllib. The host's storage
is the simulator's, which keeps the length and SHA-256 of what an import brought."""

import hashlib
import json
import os
import ssl
import urllib.error
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
