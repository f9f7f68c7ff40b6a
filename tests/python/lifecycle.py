"""Helpers for the lifecycle tests: VMs from templates, waiting for tasks and events, and the
simulator's test-only control on the host's Unix socket."""

import http.client
import json
import socket

MIB = 1 << 20


def event_from(session, classes, token, timeout):
    return getattr(session.xenapi.event, "from")(classes, token, timeout)


def default_template(session):
    """The pool's default template first by name: other tests' templates and snapshots (which
    may carry devices) are never picked."""
    templates = session.xenapi.VM.get_all_records_where('field "is_default_template"="true"')
    return min(templates, key=lambda ref: templates[ref]["name_label"])


def new_vm(session, name, memory_mib=256):
    """A halted VM cloned from a default template, with small memory so many fit on a host."""
    vm = session.xenapi.VM.clone(default_template(session), name)
    session.xenapi.VM.set_is_a_template(vm, False)
    size = str(memory_mib * MIB)
    session.xenapi.VM.set_memory_limits(vm, size, size, size, size)
    return vm


def wait_task(session, task, timeout=120.0):
    """Waits, by watching the task's events, until it is no longer pending; returns its status."""
    token = event_from(session, ["task/" + task], "", 0.0)["token"]
    waited = 0.0
    while waited < timeout:
        status = session.xenapi.task.get_status(task)
        if status not in ("pending", "cancelling"):
            return status
        token = event_from(session, ["task/" + task], token, 5.0)["token"]
        waited += 5.0
    raise AssertionError("task %s still pending after %ss" % (task, timeout))


def wait_vm(session, vm, predicate, timeout=60.0):
    """Waits, by watching the VM's events, until predicate(record) holds; returns the record."""
    token = event_from(session, ["vm/" + vm], "", 0.0)["token"]
    waited = 0.0
    while waited < timeout:
        rec = session.xenapi.VM.get_record(vm)
        if predicate(rec):
            return rec
        token = event_from(session, ["vm/" + vm], token, 5.0)["token"]
        waited += 5.0
    raise AssertionError("VM %s never reached the expected state" % vm)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self._path)


def simulator(host, route, body):
    """POSTs to the simulator's test-only control on the host's Unix socket; returns the JSON."""
    conn = _UnixConnection(host.socket)
    conn.request("POST", "/simulator/" + route, json.dumps(body),
                 {"Content-Type": "application/json"})
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    assert reply.status == 200, data
    return json.loads(data) if data else None
