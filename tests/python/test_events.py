"""Events through the SDK: event.from tokens, blocking, filters, collapsing, counts, inject, and
the legacy register/next/unregister."""

import threading
import time

import pytest
import XenAPI

from lifecycle import default_template


def event_from(session, classes, token, timeout):
    return getattr(session.xenapi.event, "from")(classes, token, timeout)


def _vm(session, name):
    vm = session.xenapi.VM.clone(default_template(session), name)
    session.xenapi.VM.set_is_a_template(vm, False)
    return vm


def test_empty_token_gives_every_object_as_add(session):
    """Token "" reports every live object of the subscribed classes as an add."""
    batch = event_from(session, ["vm", "host"], "", 0.0)
    vms = set(session.xenapi.VM.get_all())
    hosts = set(session.xenapi.host.get_all())
    added = {(e["class"], e["ref"]) for e in batch["events"] if e["operation"] == "add"}
    assert {("vm", r) for r in vms} <= added and {("host", r) for r in hosts} <= added
    for e in batch["events"]:
        assert e["class"] in ("vm", "host")
        assert e["snapshot"]["uuid"]


def test_a_write_wakes_a_blocked_event_from(session, host):
    """event.from blocks until a relevant change, then returns it as one mod with the new record."""
    vm = _vm(session, "watched")
    token = event_from(session, ["vm"], "", 0.0)["token"]
    results = []
    watcher_session = host.session()
    watcher = threading.Thread(
        target=lambda: results.append(event_from(watcher_session, ["vm"], token, 30.0)))
    watcher.start()
    session.xenapi.VM.set_name_label(vm, "renamed")
    watcher.join(60)
    assert not watcher.is_alive()
    events = [e for e in results[0]["events"] if e["ref"] == vm]
    assert len(events) == 1
    assert events[0]["operation"] == "mod"
    assert events[0]["snapshot"]["name_label"] == "renamed"
    assert results[0]["token"] > token


def test_timeout_returns_no_events_and_a_token(session):
    """With nothing relevant happening, event.from returns after the timeout with no events."""
    token = event_from(session, ["console"], "", 0.0)["token"]
    start = time.monotonic()
    batch = event_from(session, ["console"], token, 1.0)
    assert batch["events"] == []
    assert time.monotonic() - start >= 0.9
    assert batch["token"] >= token


def test_several_changes_collapse_to_one_event(session):
    """Two writes to one object between two calls give one event with the latest snapshot."""
    vm = _vm(session, "collapse")
    token = event_from(session, ["vm"], "", 0.0)["token"]
    session.xenapi.VM.set_name_label(vm, "one")
    session.xenapi.VM.set_name_label(vm, "two")
    batch = event_from(session, ["vm"], token, 5.0)
    mine = [e for e in batch["events"] if e["ref"] == vm]
    assert len(mine) == 1 and mine[0]["snapshot"]["name_label"] == "two"


def test_object_subscription_and_class_name_case(session):
    """"VM" matches like "vm"; "vm/<ref>" only reports that object."""
    a = _vm(session, "sub-a")
    b = _vm(session, "sub-b")
    token = event_from(session, ["VM"], "", 0.0)["token"]
    session.xenapi.VM.set_name_label(b, "b changed")
    session.xenapi.VM.set_name_label(a, "a changed")
    batch = event_from(session, ["vm/" + a], token, 5.0)
    assert [e["ref"] for e in batch["events"]] == [a]


def test_destroy_is_a_del_without_snapshot(session):
    """Destroying an object gives a del event without a snapshot."""
    vm = _vm(session, "doomed")
    token = event_from(session, ["vm"], "", 0.0)["token"]
    session.xenapi.VM.destroy(vm)
    batch = event_from(session, ["vm"], token, 5.0)
    dels = [e for e in batch["events"] if e["ref"] == vm]
    assert len(dels) == 1 and dels[0]["operation"] == "del"
    assert "snapshot" not in dels[0]


def test_create_then_destroy_inside_the_window_reports_nothing(session):
    """An object created and destroyed between two calls does not appear at all."""
    token = event_from(session, ["vm"], "", 0.0)["token"]
    vm = _vm(session, "ephemeral")
    session.xenapi.VM.destroy(vm)
    marker = _vm(session, "marker")
    batch = event_from(session, ["vm"], token, 5.0)
    refs = [e["ref"] for e in batch["events"]]
    assert vm not in refs and marker in refs


def test_valid_ref_counts_match_get_all(session):
    """valid_ref_counts counts the live objects of each subscribed class."""
    batch = event_from(session, ["vm", "host"], "", 0.0)
    counts = batch["valid_ref_counts"]
    assert int(counts["vm"]) == len(session.xenapi.VM.get_all())
    assert int(counts["host"]) == len(session.xenapi.host.get_all())


def test_inject_gives_a_token_before_a_pool_mod(session):
    """event.inject returns a token from which the injected pool mod is seen (XO's first call)."""
    pool = session.xenapi.pool.get_all()[0]
    token = session.xenapi.event.inject("pool", pool)
    batch = event_from(session, ["pool"], token, 5.0)
    assert [(e["operation"], e["ref"]) for e in batch["events"]] == [("mod", pool)]


def test_pool_other_config_change_is_a_pool_mod(session):
    """XO's barrier: a key written to pool.other_config shows up as a pool mod event."""
    pool = session.xenapi.pool.get_all()[0]
    token = event_from(session, ["pool"], "", 0.0)["token"]
    session.xenapi.pool.add_to_other_config(pool, "xo:barrier", "1")
    batch = event_from(session, ["pool"], token, 5.0)
    assert batch["events"][0]["snapshot"]["other_config"]["xo:barrier"] == "1"
    session.xenapi.pool.remove_from_other_config(pool, "xo:barrier")


def test_bad_token_and_bad_subscription_are_refused(session):
    """An unparsable token or subscription gets xapi's parse-failure errors."""
    with pytest.raises(XenAPI.Failure) as err:
        event_from(session, ["vm"], "not a token", 0.0)
    assert err.value.details == ["EVENT_FROM_TOKEN_PARSE_FAILURE", "not a token"]
    with pytest.raises(XenAPI.Failure) as err:
        event_from(session, ["vm/"], "", 0.0)
    assert err.value.details[0] == "EVENT_SUBSCRIPTION_PARSE_FAILURE"


def test_unknown_classes_are_ignored(session):
    """A subscription to a class that does not exist is ignored, as xapi does."""
    batch = event_from(session, ["no_such_class", "host"], "", 0.0)
    assert {e["class"] for e in batch["events"]} == {"host"}


def test_legacy_register_next_unregister(session, host):
    """register/next/unregister: next returns the changes after registration, in id order."""
    with pytest.raises(XenAPI.Failure) as err:
        session.xenapi.event.next()
    assert err.value.details[0] == "SESSION_NOT_REGISTERED"
    vm = _vm(session, "legacy")
    session.xenapi.event.register(["vm"])
    session.xenapi.VM.set_name_label(vm, "legacy changed")
    events = session.xenapi.event.next()
    mine = [e for e in events if e["ref"] == vm]
    assert mine and mine[-1]["operation"] == "mod"
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids)
    session.xenapi.event.unregister(["vm"])
