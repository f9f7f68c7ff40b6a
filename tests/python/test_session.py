"""Sessions through the official SDK: login forms, failures, the record, logout, the local socket."""

import pytest
import XenAPI


def test_login_with_two_three_or_four_parameters(host):
    """login_with_password takes 2 to 4 parameters: version and originator have defaults."""
    for extra in ([], ["1.0"], ["1.0", "pytest"]):
        s = XenAPI.Session(host.url, ignore_ssl=True)
        s.xenapi.login_with_password("root", host.password, *extra)
        assert s.handle.startswith("OpaqueRef:")
        s.xenapi.session.logout()


def test_wrong_password_is_session_authentication_failed(host):
    """A wrong password fails with SESSION_AUTHENTICATION_FAILED, naming the user."""
    s = XenAPI.Session(host.url, ignore_ssl=True)
    with pytest.raises(XenAPI.Failure) as err:
        s.xenapi.login_with_password("root", "not-the-password")
    assert err.value.details[0] == "SESSION_AUTHENTICATION_FAILED"
    assert err.value.details[1] == "root"


def test_unknown_user_is_refused(host):
    """Only root exists: any other user fails to log in."""
    s = XenAPI.Session(host.url, ignore_ssl=True)
    with pytest.raises(XenAPI.Failure) as err:
        s.xenapi.login_with_password("alice", host.password)
    assert err.value.details[0] == "SESSION_AUTHENTICATION_FAILED"


def test_session_record_describes_the_login(session):
    """The session record names this host, a local superuser and the originator."""
    ref = session.handle
    rec = session.xenapi.session.get_record(ref)
    hosts = session.xenapi.host.get_all()
    assert rec["this_host"] == hosts[0]
    assert rec["is_local_superuser"] is True
    assert rec["originator"] == "pytest"
    assert len(rec["uuid"]) == 36
    assert session.xenapi.session.get_by_uuid(rec["uuid"]) == ref


def test_logged_out_session_is_invalid(host):
    """After logout, the old session ref gets SESSION_INVALID naming it."""
    s = host.session()
    ref = s.handle
    s.xenapi.session.logout()
    reply = host.raw().pool.get_all(ref)
    assert reply["Status"] == "Failure"
    assert reply["ErrorDescription"] == ["SESSION_INVALID", ref]


def test_made_up_session_is_invalid(host):
    """A session ref that was never issued gets SESSION_INVALID."""
    reply = host.raw().VM.get_all("OpaqueRef:00000000-0000-0000-0000-000000000000")
    assert reply["ErrorDescription"][0] == "SESSION_INVALID"


def test_local_socket_login_is_trusted_as_root(host):
    """Over the Unix socket (the SDK's xapi_local transport) the password is not checked."""
    s = XenAPI.Session("http://" + host.socket.replace("/", "_") + "/",
                       transport=XenAPI.UDSTransport())
    s.xenapi.login_with_password("root", "anything at all")
    assert s.xenapi.session.get_is_local_superuser(s.handle) is True
    s.xenapi.session.logout()


def test_sessions_survive_a_restart(own_host):
    """Sessions live in the pool DB: the same ref works after oxapi restarts."""
    s = own_host.session()
    ref = s.handle
    own_host.stop()
    own_host.start()
    assert own_host.raw().pool.get_all(ref)["Status"] == "Success"
