"""A local HTTP receiver for webhook tests: records every request it gets and
answers with scripted behaviours.

Python 3 standard library only. Listens on 127.0.0.1 (or the `host` given),
port 0 (any free port).

    rx = Receiver()                      # started at once
    test.addCleanup(rx.close)            # or: rx = new_receiver(test)
    rx.script("/hook", Behaviour(status=503), Behaviour(status=503))
    url = rx.url("/hook")
    ...
    rx.wait_for(lambda reqs: len(reqs) >= 3, 10, "three requests")

Every request is recorded as a `Request` (arrival time from time.time(),
method, path, case-insensitive headers, body, and when the answer ended).
Waiting is event-driven: a Condition is notified on every arrival and every
completion, so tests never sleep to synchronise.
"""

import http.server
import sys
import threading
import time

HOST = "127.0.0.1"  # default listening address


class Headers:
    """A case-insensitive, read-only view of request headers (the last value
    wins for a repeated header; `get_all` returns every value)."""

    def __init__(self, pairs):
        self._pairs = list(pairs)
        self._map = {}
        for k, v in self._pairs:
            self._map[k.lower()] = v

    def get(self, name, default=None):
        return self._map.get(name.lower(), default)

    def get_all(self, name):
        return [v for k, v in self._pairs if k.lower() == name.lower()]

    def __getitem__(self, name):
        return self._map[name.lower()]

    def __contains__(self, name):
        return name.lower() in self._map

    def items(self):
        return list(self._pairs)

    def __repr__(self):
        return "Headers(%r)" % (self._pairs,)


class Behaviour:
    """How to answer one request.

    status/headers/body: the response. delay: seconds to wait before
    answering. hang: hold the request until `Receiver.release()` (or close);
    then answer normally, or when `close` is set, drop the connection without
    an answer. close alone (no hang): drop the connection at once.
    """

    def __init__(self, status=200, headers=None, body=b"", delay=0.0,
                 hang=False, close=False):
        self.status = status
        self.headers = dict(headers or {})
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.delay = delay
        self.hang = hang
        self.close = close

    def __repr__(self):
        return "Behaviour(status=%r, delay=%r, hang=%r, close=%r)" % (
            self.status, self.delay, self.hang, self.close)


class Request:
    """One recorded request."""

    def __init__(self, seq, arrival, method, path, headers, body, client):
        self.seq = seq
        self.time = arrival          # time.time() when headers were read
        self.method = method
        self.path = path             # as sent, with the query string
        self.headers = headers       # Headers (case-insensitive)
        self.body = body             # bytes
        self.client = client         # (host, port) of the connection
        self.done_time = None        # time.time() when the answer (or the
        #                              drop) began; None while held
        self.behaviour = None        # the Behaviour it got

    @property
    def job_id(self):
        return self.headers.get("X-Chronos-Job-ID")

    @property
    def execution_id(self):
        return self.headers.get("X-Chronos-Execution-ID")

    @property
    def attempt(self):
        v = self.headers.get("X-Chronos-Attempt")
        return int(v) if v is not None and v.isdigit() else None

    @property
    def scheduled_time(self):
        return self.headers.get("X-Chronos-Scheduled-Time")

    def __repr__(self):
        return "Request(#%d %s %s at %.3f job=%s exec=%s attempt=%s sched=%s)" % (
            self.seq, self.method, self.path, self.time, self.job_id,
            self.execution_id, self.headers.get("X-Chronos-Attempt"),
            self.scheduled_time)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chronos-test-receiver"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers up to the empty line
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _handle(self):
        arrival = time.time()
        rx = self.server.receiver
        body = self._read_body()
        req = rx._record(arrival, self.command, self.path,
                         Headers(self.headers.items()), body,
                         self.client_address)
        b = req.behaviour
        try:
            if b.hang:
                rx._wait_released(req)
            if b.delay > 0:
                rx._sleep(b.delay)
            # Answered from here on: chronos cannot see the answer before
            # this instant, so "in flight" ends now (no race with our write).
            rx._done(req)
            if b.close or rx._closed.is_set():
                self.close_connection = True
                try:
                    self.connection.shutdown(2)
                except OSError:
                    pass
                return
            self.send_response(b.status)
            for k, v in b.headers.items():
                self.send_header(k, str(v))
            self.send_header("Content-Length", str(len(b.body)))
            self.end_headers()
            if b.body and self.command != "HEAD":
                self.wfile.write(b.body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
        finally:
            rx._done(req)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = \
        do_OPTIONS = _handle


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # many jobs may call at the same second

    def handle_error(self, request, client_address):
        # A killed chronos resets its keep-alive connections: not an error.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class Receiver:
    """Threaded HTTP server on host:<free port> (host 127.0.0.1 unless given,
    e.g. the address of a test network's root-side interface); see module
    doc."""

    def __init__(self, default=None, host=None):
        self.host = host or HOST
        self._cond = threading.Condition()
        self._requests = []
        self._scripts = {}          # path (without query) -> [Behaviour]
        self._defaults = {}         # path -> Behaviour
        self._default = default or Behaviour()
        self._release_gen = 0       # bumped by release()
        self._closed = threading.Event()
        self._server = _Server((self.host, 0), _Handler)
        self._server.receiver = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name="receiver-%d" % self.port,
                                        daemon=True)
        self._thread.start()

    # --- configuration ---------------------------------------------------
    def url(self, path="/hook"):
        return "http://%s:%d%s" % (self.host, self.port, path)

    def script(self, path, *behaviours):
        """Appends behaviours for the next requests to `path` (query string
        ignored); once used up, the path's default answers."""
        with self._cond:
            self._scripts.setdefault(path, []).extend(behaviours)

    def clear_script(self, path=None):
        """Drops the queued behaviours of `path` (of all paths when None)."""
        with self._cond:
            if path is None:
                self._scripts.clear()
            else:
                self._scripts.pop(path, None)

    def set_default(self, behaviour, path=None):
        """The answer when no script is queued: for `path`, or for all."""
        with self._cond:
            if path is None:
                self._default = behaviour
            else:
                self._defaults[path] = behaviour

    def release(self):
        """Lets every request held by a `hang` behaviour go on."""
        with self._cond:
            self._release_gen += 1
            self._cond.notify_all()

    # --- recorded requests ---------------------------------------------------
    @property
    def requests(self):
        with self._cond:
            return list(self._requests)

    def requests_for(self, job_id):
        with self._cond:
            return [r for r in self._requests if r.job_id == job_id]

    def in_flight(self, job_id=None):
        with self._cond:
            return [r for r in self._requests if r.done_time is None and
                    (job_id is None or r.job_id == job_id)]

    def wait_for(self, pred, timeout, what="condition"):
        """Waits until pred(list of requests) is truthy; returns its value.
        Woken on every arrival and completion. Raises AssertionError after
        `timeout` seconds, listing what was received."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = pred(list(self._requests))
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    reqs = self._requests
                    raise AssertionError(
                        "receiver :%d: timed out after %.1fs waiting for %s; "
                        "got %d request(s)%s" % (
                            self.port, timeout, what, len(reqs),
                            "".join("\n  %r" % r for r in reqs[-20:])))
                self._cond.wait(min(left, 1.0))

    def wait_count(self, n, timeout, job_id=None, what=None):
        """Waits for at least n requests (of job_id when given)."""
        def pred(reqs):
            sel = [r for r in reqs if job_id is None or r.job_id == job_id]
            return sel if len(sel) >= n else None
        return self.wait_for(pred, timeout, what or "%d request(s)%s" % (
            n, "" if job_id is None else " of job %s" % job_id))

    def max_overlap(self, job_id=None):
        """The most requests (of job_id) that were in flight at one time,
        counting a still-open request as open until now."""
        with self._cond:
            sel = [r for r in self._requests
                   if job_id is None or r.job_id == job_id]
            now = time.time()
            events = []
            for r in sel:
                events.append((r.time, 1))
                events.append((r.done_time if r.done_time is not None else now,
                               -1))
        # ends before starts at the same instant: touching is not overlap
        events.sort(key=lambda e: (e[0], e[1]))
        cur = best = 0
        for _, d in events:
            cur += d
            best = max(best, cur)
        return best

    # --- lifecycle -------------------------------------------------------
    def close(self):
        """Releases held requests and shuts the server down (idempotent)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # --- handler side ------------------------------------------------------
    def _record(self, arrival, method, path, headers, body, client):
        with self._cond:
            req = Request(len(self._requests) + 1, arrival, method, path,
                          headers, body, client)
            bare = path.split("?", 1)[0]
            queue = self._scripts.get(bare)
            if queue:
                req.behaviour = queue.pop(0)
            else:
                req.behaviour = self._defaults.get(bare, self._default)
            req.release_gen = self._release_gen
            self._requests.append(req)
            self._cond.notify_all()
            return req

    def _wait_released(self, req):
        with self._cond:
            while (self._release_gen == req.release_gen and
                   not self._closed.is_set()):
                self._cond.wait(1.0)

    def _sleep(self, seconds):
        # Interrupted by close() so shutdown is never held up by a delay.
        self._closed.wait(seconds)

    def _done(self, req):
        with self._cond:
            if req.done_time is None:
                req.done_time = time.time()
                self._cond.notify_all()


def new_receiver(test, default=None, host=None):
    """A started Receiver closed by `test`'s cleanups."""
    rx = Receiver(default=default, host=host)
    test.addCleanup(rx.close)
    return rx
