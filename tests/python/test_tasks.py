"""Tasks through the SDK: Async calls, results, failures, client tasks, cancel, destroy, events."""

import xmlrpc.client

import pytest
import XenAPI

from lifecycle import default_template


def event_from(session, classes, token, timeout):
    return getattr(session.xenapi.event, "from")(classes, token, timeout)


def wait_finished(session, task):
    """Waits for the task to leave pending by watching its events (no sleeping)."""
    token = event_from(session, ["task/" + task], "", 0.0)["token"]
    for _ in range(100):
        status = session.xenapi.task.get_status(task)
        if status not in ("pending", "cancelling"):
            return status
        token = event_from(session, ["task/" + task], token, 10.0)["token"]
    raise AssertionError("task %s never finished" % task)


def test_async_call_gives_a_task_with_the_result(session):
    """Async.VM.clone returns a task that ends in success with the XML-RPC text of the new ref."""
    host_ref = session.xenapi.host.get_all()[0]
    task = session.xenapi.Async.VM.clone(default_template(session), "async clone")
    assert task.startswith("OpaqueRef:")
    assert wait_finished(session, task) == "success"
    rec = session.xenapi.task.get_record(task)
    assert rec["name_label"] == "Async.VM.clone"
    assert rec["progress"] == 1.0
    assert rec["resident_on"] == host_ref
    assert rec["finished"].value >= rec["created"].value
    value, _ = xmlrpc.client.loads(
        "<params><param>%s</param></params>" % rec["result"])
    new_vm = value[0]
    assert session.xenapi.VM.get_name_label(new_vm) == "async clone"


def test_async_failure_is_recorded_in_the_task(session):
    """An Async call that fails leaves status failure and xapi's error_info."""
    bogus = "OpaqueRef:00000000-0000-0000-0000-000000000001"
    task = session.xenapi.Async.VM.clone(bogus, "nope")
    assert wait_finished(session, task) == "failure"
    assert session.xenapi.task.get_error_info(task) == ["HANDLE_INVALID", "VM", bogus]


def test_async_of_a_getter_does_not_exist(session):
    """Getters have no Async form."""
    vm = session.xenapi.VM.get_all()[0]
    with pytest.raises(XenAPI.Failure) as err:
        session.xenapi.Async.VM.get_record(vm)
    assert err.value.details[0] == "MESSAGE_METHOD_UNKNOWN"


def test_client_task_can_be_cancelled_and_destroyed(session):
    """task.create makes a pending task; cancel ends it cancelled; destroy removes it."""
    task = session.xenapi.task.create("client work", "made by the test")
    rec = session.xenapi.task.get_record(task)
    assert rec["status"] == "pending" and rec["name_label"] == "client work"
    session.xenapi.task.cancel(task)
    assert wait_finished(session, task) == "cancelled"
    with pytest.raises(XenAPI.Failure) as err:
        session.xenapi.task.cancel(task)
    assert err.value.details[0] == "OPERATION_NOT_ALLOWED"
    session.xenapi.task.destroy(task)
    assert task not in session.xenapi.task.get_all()


def test_task_changes_are_events(session):
    """Creating and finishing a task are seen through event.from on class task."""
    token = event_from(session, ["task"], "", 0.0)["token"]
    task = session.xenapi.Async.VM.clone(default_template(session), "evented")
    wait_finished(session, task)
    batch = event_from(session, ["task"], token, 5.0)
    mine = [e for e in batch["events"] if e["ref"] == task]
    assert len(mine) == 1 and mine[0]["snapshot"]["status"] == "success"
    assert int(batch["valid_ref_counts"]["task"]) == len(session.xenapi.task.get_all())


def test_finished_tasks_are_garbage_collected():
    """With a short task lifetime, a finished task is destroyed by housekeeping: a del event."""
    from conftest import Host
    h = Host(config={"master": {"task_gc_after_secs": 1, "housekeeping_interval_secs": 1}})
    try:
        s = h.session()
        task = s.xenapi.task.create("short-lived", "")
        s.xenapi.task.cancel(task)
        token = event_from(s, ["task/" + task], "", 0.0)["token"]
        for _ in range(30):
            batch = event_from(s, ["task/" + task], token, 10.0)
            token = batch["token"]
            if any(e["operation"] == "del" for e in batch["events"]):
                break
        assert task not in s.xenapi.task.get_all()
    finally:
        h.close()
