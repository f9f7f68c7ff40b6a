"""Fixtures that start real oxapi processes on loopback addresses and log in with the XenAPI SDK."""

import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import xmlrpc.client

import pytest
import XenAPI

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HTTPS_PORT = 4443
READY_TIMEOUT_SECS = 90
_counter = itertools.count()


def oxapi_bin():
    """The binary under test: $OXAPI_BIN, else the workspace's debug build."""
    if os.environ.get("OXAPI_BIN"):
        return os.environ["OXAPI_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "debug", "oxapi")


def fresh_address():
    """A loopback address no other test process uses (pid in the middle bytes, a counter last).

    The third byte is offset by 128 so that it never meets the Rust harness's addresses."""
    pid = os.getpid()
    n = next(_counter)
    assert n < 250
    return "127.%d.%d.%d" % ((pid >> 8) % 254 + 1, (pid & 0x7F) | 0x80, n + 2)


class Host:
    """One oxapi process with its own data dir, address and log.

    `backend` is passed as `--backend`; None leaves the flag out, so oxapi picks its default.
    `start_lines` holds what oxapi printed on stdout before its ready line, at the last start."""

    def __init__(self, password="pytest-root-pw", config=None, backend="simulator"):
        self.root = tempfile.mkdtemp(prefix="oxapi-py-")
        self.ip = fresh_address()
        self.password = password
        self.data_dir = os.path.join(self.root, "data")
        # The SDK's Unix transport turns "_" into "/", so the socket path must have no "_".
        self.socket = "/tmp/oxapi-%d-%d.sock" % (os.getpid(), next(_counter))
        self.config_path = None
        if config is not None:
            self.config_path = os.path.join(self.root, "config.json")
            with open(self.config_path, "w") as f:
                json.dump(config, f)
        self.backend = backend
        self.proc = None
        self.starts = 0
        self.start_lines = []
        self.start()

    @property
    def url(self):
        return "https://%s:%d" % (self.ip, HTTPS_PORT)

    def log_path(self):
        return os.path.join(self.root, "oxapi-%d.log" % self.starts)

    def start(self):
        assert self.proc is None
        self.starts += 1
        args = [oxapi_bin(), "serve", "--data-dir", self.data_dir,
                "--listen", "%s:%d" % (self.ip, HTTPS_PORT), "--unix-socket", self.socket]
        if self.backend is not None:
            args += ["--backend", self.backend]
        if self.config_path:
            args += ["--config", self.config_path]
        env = dict(os.environ, OXAPI_ROOT_PASSWORD=self.password)
        log = open(self.log_path(), "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, env=env, text=True)
        lines = queue.Queue()

        def drain(stream):
            for line in stream:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=drain, args=(self.proc.stdout,), daemon=True).start()
        self.start_lines = []
        deadline = time.monotonic() + READY_TIMEOUT_SECS
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                with open(self.log_path()) as f:
                    raise RuntimeError("oxapi did not become ready:\n" + f.read())
            if line.startswith("oxapi ready:"):
                return
            self.start_lines.append(line.rstrip("\n"))

    def kill(self):
        """SIGKILL and reap."""
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self):
        """SIGTERM and wait for a clean exit."""
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            code = self.proc.wait(timeout=60)
            self.proc = None
            return code
        return None

    def log(self):
        with open(self.log_path()) as f:
            return f.read()

    def session(self):
        """A logged-in SDK session over HTTPS."""
        s = XenAPI.Session(self.url, ignore_ssl=True)
        s.xenapi.login_with_password("root", self.password, "1.0", "pytest")
        return s

    def raw(self):
        """A plain XML-RPC proxy, for calls the SDK would rewrite (e.g. with a dead session)."""
        import ssl
        return xmlrpc.client.ServerProxy(self.url, context=ssl._create_unverified_context(),
                                         allow_none=True)

    def close(self):
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
        if os.path.exists(self.socket):
            os.unlink(self.socket)


@pytest.fixture(scope="module")
def host():
    """A host shared by the tests of one module."""
    h = Host()
    yield h
    h.close()


@pytest.fixture
def own_host():
    """A host for one test only (restarts, kills)."""
    h = Host()
    yield h
    h.close()


@pytest.fixture
def session(host):
    s = host.session()
    yield s
    try:
        s.xenapi.session.logout()
    except Exception:
        pass
