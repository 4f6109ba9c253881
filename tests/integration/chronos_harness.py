"""Harness for Chronos integration tests: runs the real `chronos` binary on
127.0.0.1 (or another local address, optionally inside a network namespace:
Node's `host` and `cmd_prefix`) and talks to it over HTTP.

Python 3 standard library only. A `Node` owns one server process, its ports
and (unless given one) a temporary data directory; it is always cleaned up,
by the test's cleanups and, as a last resort, at interpreter exit.
"""

import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

# Default: the build tree of the checkout this file belongs to
# (tests/integration/../../build/src/main/chronos).
DEFAULT_CHRONOS_BIN = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "src",
    "main", "chronos"))
CHRONOS_BIN = os.environ.get("CHRONOS_BIN", DEFAULT_CHRONOS_BIN)
HOST = "127.0.0.1"  # default address of nodes and of every request
REQUEST_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.05

UUID_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
RFC3339_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

# Every live process and temp dir, so atexit can clean up whatever a crashed
# test left behind.
_live_processes = {}  # pid -> Popen
_temp_dirs = set()


def track_process(proc):
    """Registers a process this harness did not start (e.g. a benchmark's
    load generator) for the last-resort kill at exit."""
    _live_processes[proc.pid] = proc


def untrack_process(proc):
    _live_processes.pop(proc.pid, None)


def cleanup_everything():
    """SIGKILLs every tracked process still running and removes every temp
    dir made here (also run at interpreter exit)."""
    _cleanup_everything()


def _cleanup_everything():
    for pid, proc in list(_live_processes.items()):
        if proc.poll() is None:
            try:
                os.kill(pid, signal.SIGKILL)
                proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        _live_processes.pop(pid, None)
    for d in list(_temp_dirs):
        shutil.rmtree(d, ignore_errors=True)
        _temp_dirs.discard(d)


atexit.register(_cleanup_everything)


def make_temp_dir(prefix="chronos-it-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _temp_dirs.add(d)
    return d


def remove_temp_dir(d):
    shutil.rmtree(d, ignore_errors=True)
    _temp_dirs.discard(d)


def free_port():
    """A port that was free on 127.0.0.1 a moment ago (bind 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_is_listening(port, host=HOST):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect((host, port))
            return True
        except OSError:
            return False


def binary_available():
    return os.path.isfile(CHRONOS_BIN) and os.access(CHRONOS_BIN, os.X_OK)


def require_binary(test_case_cls):
    """Class decorator: skip the tests when the binary is not built."""
    return unittest.skipUnless(
        binary_available(), "chronos binary not found at %s" % CHRONOS_BIN)(
            test_case_cls)


def wait_for(predicate, timeout, what, interval=POLL_INTERVAL_S):
    """Polls predicate() until truthy; returns its value or raises
    AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s%s" %
                                 (timeout, what, "" if last_exc is None else
                                  " (last error: %r)" % (last_exc,)))
        time.sleep(interval)


class Response:
    """An HTTP response. Unpacks as (status, json, headers); `raw` is the
    body bytes and `text` the body decoded for messages."""

    def __init__(self, status, body_json, headers, raw):
        self.status = status
        self.json = body_json
        self.headers = headers
        self.raw = raw

    @property
    def text(self):
        return self.raw.decode("utf-8", errors="replace")

    def __iter__(self):
        return iter((self.status, self.json, self.headers))

    def __repr__(self):
        body = self.text
        if len(body) > 2000:
            body = body[:2000] + "...(%d bytes)" % len(self.raw)
        return "HTTP %s %s" % (self.status, body)


def http_request(port, method, path, body=None, raw=None, headers=None,
                 timeout=REQUEST_TIMEOUT_S, host=HOST):
    """One request on a fresh connection to host:port (127.0.0.1 unless
    given).

    `body` is JSON-encoded; `raw` (bytes) is sent as is. Returns a Response.
    """
    hdrs = {"Accept": "application/json"}
    payload = None
    if raw is not None:
        payload = raw if isinstance(raw, bytes) else raw.encode("utf-8")
        hdrs["Content-Type"] = "application/json"
    elif body is not None:
        payload = json.dumps(body).encode("utf-8")
        hdrs["Content-Type"] = "application/json"
    elif method in ("POST", "PUT", "PATCH"):
        payload = b""
    if headers:
        hdrs.update(headers)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        send_error = None
        try:
            conn.request(method, path, body=payload, headers=hdrs)
        except (BrokenPipeError, ConnectionResetError) as e:
            # The server may answer (e.g. 413) before reading the whole body;
            # the answer can still be waiting for us.
            send_error = e
        try:
            resp = conn.getresponse()
        except (http.client.HTTPException, OSError) as e:
            if send_error is not None:
                raise ConnectionError(
                    "%s %s: server closed the connection while the request "
                    "was sent (%r) and sent no response (%r)" %
                    (method, path, send_error, e)) from e
            raise
        data = resp.read()
        resp_headers = {k.lower(): v for k, v in resp.getheaders()}
        parsed = None
        if data:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = None
        return Response(resp.status, parsed, resp_headers, data)
    finally:
        conn.close()


class Node:
    """One `chronos serve` process, on 127.0.0.1 unless given a `host`.

    Picks two free ports (HTTP and Raft) once; restart() reuses them and the
    data directory. `use_flags=False` leaves the node id, data dir and
    addresses out of the command line (tests of env/config precedence pass
    them through `env`/`extra_args` themselves). `host`: the IPv4 address
    the node listens on (HTTP and Raft) and the harness talks to; a node on
    another address passes its ports explicitly (free_port() probes
    127.0.0.1). `http_host`: the address in --http-address when it is not
    `host` (the harness still talks to `host`: something, e.g. a NAT rule,
    must lead from one to the other). `cmd_prefix`: argv run in front of
    the binary, e.g.
    ["ip", "netns", "exec", ns] to run it in a network namespace; it must
    exec the binary (not fork), so the process's PID is chronos's and kills
    by PID reach it. Not thread-safe.
    """

    def __init__(self, data_dir=None, node_id="n1", extra_args=(), env=None,
                 use_flags=True, http_port=None, raft_port=None, host=None,
                 http_host=None, cmd_prefix=()):
        self.node_id = node_id
        self.host = host or HOST
        self.http_host = http_host or self.host
        self.cmd_prefix = list(cmd_prefix)
        self.work_dir = make_temp_dir()
        self.owns_data_dir = data_dir is None
        self.data_dir = data_dir or os.path.join(self.work_dir, "data")
        self.http_port = http_port or free_port()
        self.raft_port = raft_port or free_port()
        while self.raft_port == self.http_port:
            self.raft_port = free_port()
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.use_flags = use_flags
        self.proc = None
        self.starts = 0
        self.log_path = None

    # --- lifecycle -------------------------------------------------------
    def command(self):
        cmd = self.cmd_prefix + [CHRONOS_BIN, "serve"]
        if self.use_flags:
            cmd += [
                "--node-id", self.node_id,
                "--data-dir", self.data_dir,
                "--http-address", "%s:%d" % (self.http_host, self.http_port),
                "--raft-address", "%s:%d" % (self.host, self.raft_port),
            ]
        return cmd + self.extra_args

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, \
            "node already running"
        self.starts += 1
        self.log_path = os.path.join(self.work_dir,
                                     "chronos-%d.log" % self.starts)
        env = dict(os.environ)
        # A developer's shell must not leak settings into the test.
        for k in list(env):
            if k.startswith("CHRONOS_") and k != "CHRONOS_BIN":
                del env[k]
        env.update(self.env)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=self.work_dir, env=env)
        _live_processes[self.proc.pid] = self.proc
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        parts = []
        for i in range(1, self.starts + 1):
            p = os.path.join(self.work_dir, "chronos-%d.log" % i)
            try:
                with open(p, "rb") as f:
                    parts.append(f.read().decode("utf-8", errors="replace"))
            except OSError:
                pass
        return "".join(parts)

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", errors="replace").splitlines()
        except (OSError, TypeError):
            return "(no log)"
        return "\n".join(lines[-n:])

    def wait_ready(self, timeout=30):
        """Polls GET /ready every 50 ms until 200. Fails at once with the log
        tail if the process exits."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    "chronos exited with %s before becoming ready; cmd %s\n"
                    "--- log tail ---\n%s" % (self.proc.returncode,
                                              " ".join(self.command()),
                                              self.log_tail()))
            try:
                r = http_request(self.http_port, "GET", "/ready", timeout=2,
                                 host=self.host)
                if r.status == 200:
                    return self
                last = r
            except OSError as e:
                last = e
            if time.monotonic() >= deadline:
                raise AssertionError(
                    "chronos not ready after %ss (last: %r)\n--- log tail ---\n%s"
                    % (timeout, last, self.log_tail()))
            time.sleep(POLL_INTERVAL_S)

    def start_ready(self, timeout=30):
        self.start()
        return self.wait_ready(timeout)

    def _wait_exit(self, timeout):
        try:
            self.proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill9(self):
        """SIGKILL by PID and wait for the process to be gone."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self._wait_exit(30)
        _live_processes.pop(self.proc.pid, None)

    def stop(self, timeout=20):
        """SIGTERM, wait up to `timeout` s, then SIGKILL. Returns the exit
        code of the graceful stop, or None when it had to be killed."""
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                _live_processes.pop(self.proc.pid, None)
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, signal.SIGTERM)
        graceful = self._wait_exit(timeout)
        if not graceful:
            self.kill9()
            return None
        _live_processes.pop(self.proc.pid, None)
        return self.proc.returncode

    def restart(self, timeout=30):
        """Starts again on the same data dir and ports, waits until ready."""
        if self.running():
            self.stop()
        # The old process may leave its listening port in TIME_WAIT; servers
        # set SO_REUSEADDR, so no wait is needed here.
        return self.start_ready(timeout)

    def cleanup(self):
        if self.proc is not None:
            self.kill9()
        remove_temp_dir(self.work_dir)

    # --- HTTP --------------------------------------------------------------
    def api(self, method, path, body=None, raw=None, headers=None,
            timeout=REQUEST_TIMEOUT_S):
        """(status, parsed JSON or None, headers) — also has .raw/.text."""
        return http_request(self.http_port, method, path, body=body, raw=raw,
                            headers=headers, timeout=timeout, host=self.host)


def new_node(test, **kwargs):
    """Starts a ready node whose cleanup is registered on `test` (a TestCase
    instance) so it runs even when the test fails."""
    node = Node(**kwargs)
    test.addCleanup(node.cleanup)
    node.start_ready()
    return node


def run_chronos(args, env=None, cwd=None, timeout=30):
    """Runs the binary to completion (for commands expected to exit).
    Returns (returncode, combined output); returncode None if it had to be
    killed at the deadline."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith("CHRONOS_") or k == "CHRONOS_BIN"}
    full_env.update(env or {})
    proc = subprocess.Popen([CHRONOS_BIN] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=full_env, cwd=cwd)
    _live_processes[proc.pid] = proc
    try:
        out, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
        rc = None
    finally:
        _live_processes.pop(proc.pid, None)
    return rc, out.decode("utf-8", errors="replace")


# --- job helpers -------------------------------------------------------------

# Runs once a year (Jan 1 00:00 UTC), so no test sees a scheduled execution
# changing state under it; the target is never called.
YEARLY = "0 0 1 1 *"
WEBHOOK_URL = "https://example.com/chronos-hook"


def job_body(name, **fields):
    body = {"name": name, "schedule": YEARLY, "webhook": {"url": WEBHOOK_URL}}
    body.update(fields)
    return body


def without(d, *keys):
    return {k: v for k, v in d.items() if k not in keys}


def assert_ok(test, resp, status=200, what=""):
    test.assertEqual(resp.status, status,
                     "%sexpected HTTP %d, got %r" % (what + ": " if what else "",
                                                     status, resp))
    test.assertIsInstance(resp.json, dict, "non-JSON body: %r" % resp)
    test.assertIs(resp.json.get("success"), True, "envelope: %r" % resp)
    return resp.json["data"]


def assert_error(test, resp, status, code, field=None, what=""):
    prefix = what + ": " if what else ""
    test.assertEqual(resp.status, status,
                     "%sexpected HTTP %d %s, got %r" % (prefix, status, code,
                                                        resp))
    test.assertIsInstance(resp.json, dict, "%snon-JSON body: %r" % (prefix,
                                                                    resp))
    test.assertIs(resp.json.get("success"), False, "%s%r" % (prefix, resp))
    err = resp.json.get("error") or {}
    test.assertEqual(err.get("code"), code, "%s%r" % (prefix, resp))
    test.assertTrue(err.get("message"), "%serror without message: %r" %
                    (prefix, resp))
    if field is not None:
        test.assertEqual(err.get("field"), field, "%s%r" % (prefix, resp))
    return err
