"""The "scale" rows of `make bench` (issue 5): a 3-node Chronos cluster on
127.0.0.1 loaded with N jobs through the API, then measured.

Python 3 standard library only, plus wrk (bench/load.lua) as the load
generator. bench/run.py calls `scale_rows(rows, quick, log)` and prints
`table_lines(rows)`; docs/performance.md says what each row measures.

For each size N (CHRONOS_BENCH_SCALE_SIZES, comma-separated; default
"100000,1000000", quick "10000"):

1. A 3-node cluster (tests/cluster/cluster_harness.Cluster, production Raft
   timeouts: heartbeat 50 ms, election 400 ms, other settings default) and a
   local webhook receiver (FastReceiver below).
2. Load: one every-second probe job (`* * * * * *`, concurrency allow, to
   the receiver's /probe), then N jobs `scale-00000000` .. with schedule
   `M * * * *`, M = i mod 60 (each fires once an hour, minutes spread over
   the hour: at 1M jobs ~16 700 fire at second 0 of every minute), all
   calling the receiver's /hook. POST /api/v1/jobs on the leader with wrk,
   64 threads of one keep-alive connection each (bench/load.lua: a create
   answered 5xx or lost is sent again, so leader changes do not leave
   holes). The load has its own time budget
   (CHRONOS_BENCH_SCALE_LOAD_BUDGET_S, default 600 s, quick 20 s, further
   capped by the caller's deadline): when it runs out wrk is stopped and the
   rows say how many jobs were reached (counted in the store, not from the
   answers). Creates/s = creates settled (201, or 409 for an earlier attempt
   that was committed) / load time.
3. After the load (every follower caught up): RSS (VmRSS, and the peak
   VmHWM) and bytes on disk (du of the data dir: raft/ log + snapshots,
   store/ RocksDB) of each node; then POST /api/v1/cluster/snapshot (timed)
   and du again.
4. List latency on the leader, one keep-alive connection, client-side time
   (request sent .. body read): a walk over every page at limit=1000
   (timed; repeated when one walk takes < 15 s; at most
   CHRONOS_BENCH_SCALE_WALK_BUDGET_S, default 25 s, then it is partial and
   the rows say so), then GET /api/v1/jobs?limit=100 for the first page and
   for full pages at cursors drawn at random from the walk (deep in the
   keyspace).
5. Restart: SIGTERM to all three nodes at once (through the harness), start
   them again and measure from the start until all nodes agree on a leader
   and until the first request of the probe job reaches the receiver (it
   includes opening RocksDB and the Raft log, the election and the new
   leader's scheduler loading every job; the node logs' "ready" and
   "scheduler: active" timestamps split it up). RSS again. Repeated 5 times
   (quick 2).

Every process is started through the harness (chronos nodes as
cluster_harness.Cluster, wrk tracked with h.track_process) and killed by PID
at the end of each size, on success or failure; the data dirs are removed
(CHRONOS_BENCH_SCALE_LOG_DIR=DIR keeps a copy of the node logs there).
"""

import asyncio
import http.client
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))

import cluster_harness as ch  # noqa: E402
from cluster_harness import ec, h  # noqa: E402

PRODUCTION_RAFT = ch.PRODUCTION_CONFIG  # the binary's defaults: heartbeat 50 ms, election 400 ms

CONNECTIONS = 64
JOB_PREFIX = "scale-"
PROBE_NAME = "scale-probe"  # sorts after every scale-NNNNNNNN job
LIST_FIRST_REQUESTS = 20    # per repetition
LIST_DEEP_REQUESTS = 40     # per repetition
WALK_REPEAT_MAX_S = 15.0    # repeat the full walk only while one is cheaper
# One walk at most (beyond it the walk is partial and the rows say so;
# 1M jobs take ~145 s today).
WALK_BUDGET_S = float(os.environ.get("CHRONOS_BENCH_SCALE_WALK_BUDGET_S",
                                     "25"))
MIB = 1024.0 * 1024.0


def _env_sizes(quick):
    text = os.environ.get("CHRONOS_BENCH_SCALE_SIZES") or (
        "10000" if quick else "100000,1000000")
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def _env_float(name, default):
    v = os.environ.get(name)
    return float(v) if v else default


def settings(quick):
    return {
        "sizes": _env_sizes(quick),
        "repetitions": 2 if quick else 5,
        # Cluster start, settling and cleanup around the measurements: the
        # part of the reserve (measure_size) that does not grow with size.
        "fixed_reserve_s": 5.0 if quick else 10.0,
        # Kept back from the caller's deadline by the list phase (for the
        # restarts after it); the list phase needs this + 10 s to start.
        "phase_margin_s": 8.0 if quick else 20.0,
        "load_budget_s": _env_float("CHRONOS_BENCH_SCALE_LOAD_BUDGET_S",
                                    20.0 if quick else 600.0),
    }


class BudgetNote(Exception):
    """A phase skipped because the caller's deadline is near."""


# --- receiver ---------------------------------------------------------------

class ProbeRun:
    """One request the receiver got on /probe (the attributes the harness's
    receiver.Request has)."""

    def __init__(self, arrival, headers):
        self.time = arrival
        self.job_id = headers.get("x-chronos-job-id")
        self.execution_id = headers.get("x-chronos-execution-id")
        self.scheduled_time = headers.get("x-chronos-scheduled-time")
        self.attempt = headers.get("x-chronos-attempt")


class FastReceiver:
    """A webhook receiver on 127.0.0.1 (asyncio, one thread): answers every
    request 200 with an empty body on keep-alive connections, records the
    requests to /probe (ProbeRun) and counts the others. At 1M jobs ~16 700
    runs arrive in the first seconds of every minute over up to 1000
    connections (dispatcher.concurrency.max_concurrent_jobs); the harness's
    receiver.Receiver (a thread per connection, every request kept) costs
    too much CPU on the cores the nodes share."""

    def __init__(self):
        self.hook_count = 0
        self.probe_runs = []
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._server = None

        def run():
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(asyncio.start_server(
                self._handle, ch.HOST, 0, backlog=1024))
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True,
                                        name="fast-receiver")
        self._thread.start()
        if not ready.wait(10):
            raise AssertionError("receiver did not start")
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, path="/hook"):
        return "http://%s:%d%s" % (ch.HOST, self.port, path)

    async def _handle(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line.strip():
                    break
                arrival = time.time()
                headers = {}
                while True:
                    hl = await reader.readline()
                    if hl in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = hl.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    while True:  # chunks up to the last one and trailers
                        size = int((await reader.readline()).split(b";")[0]
                                   or b"0", 16)
                        if size == 0:
                            while (await reader.readline()) not in (
                                    b"\r\n", b"\n", b""):
                                pass
                            break
                        await reader.readexactly(size + 2)
                else:
                    n = int(headers.get("content-length") or 0)
                    if n:
                        await reader.readexactly(n)
                path = line.split()[1].decode("latin-1") if len(
                    line.split()) > 1 else ""
                if path.startswith("/probe"):
                    with self._cond:
                        self.probe_runs.append(ProbeRun(arrival, headers))
                        self._cond.notify_all()
                else:
                    self.hook_count += 1  # only this thread writes it
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (OSError, ValueError, asyncio.IncompleteReadError,
                asyncio.CancelledError):  # cancelled: close() ends it
            pass
        finally:
            writer.close()

    def wait_for(self, pred, timeout, what="condition"):
        """Waits until pred(list of ProbeRun) is truthy; returns it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = pred(list(self.probe_runs))
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "receiver: timed out after %.0fs waiting for %s "
                        "(%d probe runs, %d other requests)" % (
                            timeout, what, len(self.probe_runs),
                            self.hook_count))
                self._cond.wait(min(left, 1.0))

    async def _shutdown(self):
        # Handlers cancelled before their first step are reported by
        # asyncio's stream callback; nothing to report at shutdown.
        self._loop.set_exception_handler(lambda loop, context: None)
        self._server.close()
        tasks = [t for t in asyncio.all_tasks()
                 if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self):
        if self._thread.is_alive() and not self._loop.is_closed():
            try:
                asyncio.run_coroutine_threadsafe(
                    self._shutdown(), self._loop).result(10)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


# --- measurements of the processes ------------------------------------------

def proc_status(pid):
    """VmRSS and VmHWM (peak RSS) of a process, in bytes."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0]) * 1024
    return {"rss": out.get("VmRSS"), "hwm": out.get("VmHWM")}


def rss_sample(cluster):
    return {n.node_id: proc_status(n.pid) for n in cluster.all_nodes
            if n.running()}


def du(path, apparent=False):
    """Bytes on disk under path: allocated blocks like du (RocksDB and
    libraft preallocate their logs), or with `apparent` the file sizes."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += st.st_size if apparent else st.st_blocks * 512
    return total


def disk_sample(cluster):
    """node -> {total, raft, store, snapshots (bytes of raft/snapshot-*)}."""
    out = {}
    for n in cluster.all_nodes:
        d = {"total": du(n.data_dir),
             "apparent": du(n.data_dir, apparent=True)}
        for sub in ("raft", "store"):
            d[sub] = du(os.path.join(n.data_dir, sub))
        snaps = 0
        raft_dir = os.path.join(n.data_dir, "raft")
        if os.path.isdir(raft_dir):
            for name in os.listdir(raft_dir):
                if name.startswith("snapshot-"):
                    try:
                        snaps += os.lstat(os.path.join(raft_dir, name)
                                          ).st_blocks * 512
                    except OSError:
                        pass
        d["snapshots"] = snaps
        out[n.node_id] = d
    return out


def free_disk(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


_LOG_TS = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z) ")


def log_events(node, start_index):
    """Timestamps (epoch s) of the start-up milestones in the node's log of
    start number start_index: `ready` (Chronos ... ready: API at ...),
    `active` (scheduler: active as leader ...), `loaded` (scheduler:
    loaded N scheduled job(s) ...: its due queue is complete) and the job
    count it names."""
    path = os.path.join(node.work_dir, "chronos-%d.log" % start_index)
    out = {}
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        m = _LOG_TS.match(line)
        if not m:
            continue
        t = ec.parse_time(m.group(1))
        if " ready: API at " in line and "ready" not in out:
            out["ready"] = t
        elif "scheduler: active as leader" in line and "active" not in out:
            out["active"] = t
            out["loads"] = ", loading " in line  # a build that loads in slices
        elif "scheduler: loaded " in line and "loaded" not in out:
            out["loaded"] = t
            jm = re.search(r"loaded (\d+) scheduled job", line)
            if jm:
                out["scheduled_jobs"] = int(jm.group(1))
        elif "raft: store at index" in line and "snapshot_check" not in out:
            out["snapshot_check"] = t
    return out


def count_activations(cluster):
    """How many times a scheduler became active, over every node's logs."""
    return sum(n.log_text().count("scheduler: active as leader")
               for n in cluster.all_nodes)


# --- HTTP on one keep-alive connection --------------------------------------

class KeepAlive:
    """One keep-alive connection to a node; request() times the exchange
    (request sent .. body read), reconnecting once on a dropped
    connection."""

    def __init__(self, node, timeout=60):
        self.node = node
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None):
        payload = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json"} if payload else {}
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    ch.HOST, self.node.http_port, timeout=self.timeout)
            t0 = time.monotonic()
            try:
                self.conn.request(method, path, body=payload, headers=hdrs)
                resp = self.conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise
                continue
            elapsed = time.monotonic() - t0
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
            return resp.status, data, elapsed
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def latency_summary(seconds):
    """p50/p99/max in ms (nearest rank) of a list of seconds."""
    if not seconds:
        return {"count": 0}
    return {"count": len(seconds),
            "p50_ms": ec.quantile(seconds, 0.5) * 1000,
            "p99_ms": ec.quantile(seconds, 0.99) * 1000,
            "max_ms": max(seconds) * 1000}


# --- phases -----------------------------------------------------------------

def _metric(node, name):
    r = node.api("GET", "/metrics", timeout=30)
    if r.status != 200:
        raise AssertionError("GET /metrics on %s: %r" % (node.node_id, r))
    samples, _ = ec.parse_metrics(r.text)
    return ec.metric_value(samples, name)


def load_jobs(cluster, leader, rx, size, budget_s, log, must_stop=None):
    """Creates the probe job and `size` jobs on the leader with wrk
    (bench/load.lua). Returns the load figures; stops wrk when budget_s
    passes, or when must_stop(n) says so with n jobs loaded (the caller
    keeps time for the phases after the load, which grows with n)."""
    r = cluster.api(leader, "POST", "/api/v1/jobs", {
        "name": PROBE_NAME, "schedule": "* * * * * *",
        "concurrency": "allow", "timeout": "5s",
        "webhook": {"url": rx.url("/probe")}})
    if r.status != 201:
        raise AssertionError("creating the probe job: %r" % (r,))
    probe_id = r.json["data"]["id"]

    # As many threads as connections: see bench/load.lua.
    cmd = ["wrk", "-t%d" % CONNECTIONS, "-c%d" % CONNECTIONS,
           "-d%ds" % int(budget_s + 60), "--timeout", "30s",
           "-s", os.path.join(HERE, "load.lua"), cluster.url(leader), "--",
           str(size), str(CONNECTIONS), rx.url("/hook"), JOB_PREFIX]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    h.track_process(proc)
    lines = []
    progress = {}
    done = {}
    cond = threading.Condition()

    def reader():
        for line in proc.stdout:
            with cond:
                lines.append(line.rstrip("\n"))
                parts = line.split()
                if len(parts) == 3 and parts[0] == "progress":
                    progress[parts[1]] = int(parts[2])
                elif len(parts) == 6 and parts[0] == "done":
                    done[parts[1]] = [int(x) for x in parts[2:]]
                    progress[parts[1]] = sum(done[parts[1]][:3])
                cond.notify_all()
        with cond:
            cond.notify_all()

    th = threading.Thread(target=reader, daemon=True, name="wrk-reader")
    th.start()
    stopped_by_budget = False
    load_rss = []  # (seconds, settled creates, {node: RSS}) every 10 s
    deadline = t0 + budget_s
    next_log = t0 + 10
    last_n, last_t = 0, t0
    try:
        with cond:
            while len(done) < CONNECTIONS and proc.poll() is None:
                now = time.monotonic()
                if now >= deadline or (must_stop is not None and
                                       must_stop(sum(progress.values()))):
                    stopped_by_budget = True
                    break
                if now >= next_log:
                    n = sum(progress.values())
                    rss = rss_sample(cluster)
                    log("  load %d: ~%d created after %.0fs (%.0f creates/s "
                        "lately), RSS %s MiB" % (
                            size, n, now - t0,
                            (n - last_n) / max(1e-9, now - last_t),
                            "/".join("%.0f" % (rss[k]["rss"] / MIB)
                                     for k in sorted(rss))))
                    load_rss.append((round(now - t0, 1), n, {
                        k: v["rss"] for k, v in rss.items()}))
                    last_n, last_t = n, now
                    next_log = now + 10
                cond.wait(min(1.0, deadline - now, max(0.01, next_log - now)))
        t_end = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # wrk prints its summary and ends
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        h.untrack_process(proc)
    th.join(10)
    out = "\n".join(lines)
    elapsed = t_end - t0
    m = re.search(r"total created (\d+) existing (\d+) failed (\d+) "
                  r"retries (\d+)", out)
    if not m:
        raise AssertionError("wrk gave no summary (exit %s):\n%s" % (
            proc.returncode, out[-3000:]))
    created, existing, failed, retries = (int(x) for x in m.groups())
    lat = {}
    m = re.search(r"latency_us p50 (\d+) p99 (\d+) max (\d+)", out)
    if m:
        lat = {"p50_ms": int(m.group(1)) / 1000.0,
               "p99_ms": int(m.group(2)) / 1000.0,
               "max_ms": int(m.group(3)) / 1000.0}
    ff = re.findall(r"^first_failure (.*)$", out, re.M)
    fr = re.findall(r"^first_retry (.*)$", out, re.M)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                     r"timeout (\d+)", out)
    settled = created + existing
    res = {"target": size, "created": created, "existing": existing,
           "failed": failed, "retries": retries, "seconds": elapsed,
           "creates_per_s": settled / elapsed,
           "stopped_by_budget": stopped_by_budget, "budget_s": budget_s,
           "socket_errors": sum(int(x) for x in sock.groups()) if sock else 0,
           "first_failure": ff[0] if ff else "",
           "first_retry": fr[0] if fr else "", "probe_id": probe_id,
           "rss_during_load": load_rss}
    res.update(lat)
    log("  load %d: %d created (+%d answered 409: committed by an attempt "
        "that got an error), %d failed, %d retries%s in %.1fs = %.0f "
        "creates/s (p50 %s ms, p99 %s ms)%s" % (
            size, created, existing, failed, retries,
            " (first: %s)" % res["first_retry"][:100] if retries else "",
            elapsed, res["creates_per_s"], lat.get("p50_ms"),
            lat.get("p99_ms"), " STOPPED BY THE TIME BUDGET (at most %.0fs)" %
            budget_s if stopped_by_budget else ""))
    return res


def wait_all_caught_up(cluster, timeout):
    t0 = time.monotonic()
    for n in cluster.live():
        cluster.wait_caught_up(n, timeout)
    return time.monotonic() - t0


def list_phase(cluster, leader, reps, log, deadline):
    """Walks + first and deep page latencies (see the module doc)."""
    ka = KeepAlive(leader)
    out = {"walks": []}
    cursors = []  # (page index, cursor) from the first walk
    try:
        for rep in range(reps):
            t0 = time.monotonic()
            cursor, pages, jobs, page_s = "", 0, 0, []
            partial = False
            while True:
                q = "/api/v1/jobs?limit=1000" + (
                    "&cursor=" + cursor if cursor else "")
                status, data, el = ka.request("GET", q)
                if status != 200:
                    raise AssertionError("GET %s: %d %s" % (q, status,
                                                            data[:300]))
                page_s.append(el)
                body = json.loads(data)["data"]
                pages += 1
                jobs += len(body["jobs"])
                cursor = body.get("next_cursor") or ""
                if not cursor:
                    break
                if rep == 0 and len(body["jobs"]) == 1000:
                    cursors.append((pages, cursor))
                if (time.monotonic() - t0 > WALK_BUDGET_S or
                        (deadline and time.monotonic() > deadline)):
                    partial = True
                    break
            walk_s = time.monotonic() - t0
            w = {"seconds": walk_s, "pages": pages, "jobs": jobs,
                 "partial": partial, "page": latency_summary(page_s)}
            out["walks"].append(w)
            log("  list: walk %d at limit=1000: %d jobs, %d pages in %.2fs "
                "(page p50 %.1f ms, max %.1f ms)%s" % (
                    rep + 1, jobs, pages, walk_s, w["page"]["p50_ms"],
                    w["page"]["max_ms"], " PARTIAL" if partial else ""))
            if partial or walk_s > WALK_REPEAT_MAX_S:
                break
        walk_times = [w["seconds"] for w in out["walks"]]
        out["walk_s_p50"] = statistics.median(walk_times)
        out["walk_s_max"] = max(walk_times)
        # Per-page latency: each walk's p50/p99, median over the walks;
        # the max over all of them.
        pages = [w["page"] for w in out["walks"]]
        out["walk_page"] = {k: statistics.median(p[k] for p in pages)
                            for k in ("p50_ms", "p99_ms")}
        out["walk_page"]["max_ms"] = max(p["max_ms"] for p in pages)

        # A deep page is a full page: not the last cursor (what follows it
        # may be shorter than 100 jobs).
        cursors = cursors[:-1]
        first, deep, deep_by_depth = [], [], []
        rng = random.Random(5)
        total_pages = out["walks"][0]["pages"]
        for rep in range(reps):
            for _ in range(LIST_FIRST_REQUESTS):
                status, data, el = ka.request("GET", "/api/v1/jobs?limit=100")
                if status != 200:
                    raise AssertionError("first page: %d %s" % (status,
                                                                data[:300]))
                first.append(el)
            for _ in range(LIST_DEEP_REQUESTS if cursors else 0):
                page_no, cur = rng.choice(cursors)
                status, data, el = ka.request(
                    "GET", "/api/v1/jobs?limit=100&cursor=" + cur)
                if status != 200:
                    raise AssertionError("deep page: %d %s" % (status,
                                                               data[:300]))
                deep.append(el)
                deep_by_depth.append((page_no / max(1, total_pages), el))
        out["first_page"] = latency_summary(first)
        out["deep_page"] = latency_summary(deep)
        shallow = [el for d, el in deep_by_depth if d <= 0.1]
        deepest = [el for d, el in deep_by_depth if d >= 0.9]
        out["deep_page_first_decile"] = latency_summary(shallow)
        out["deep_page_last_decile"] = latency_summary(deepest)
        out["cursors_from_partial_walk"] = out["walks"][0]["partial"]
        log("  list: first page (limit=100) p50 %.1f ms p99 %.1f ms max "
            "%.1f ms over %d; deep pages p50 %.1f ms p99 %.1f ms max %.1f ms "
            "over %d (first 10%% of the keyspace p50 %s ms, last 10%% %s ms)"
            % (out["first_page"]["p50_ms"], out["first_page"]["p99_ms"],
               out["first_page"]["max_ms"], len(first),
               out["deep_page"].get("p50_ms", float("nan")),
               out["deep_page"].get("p99_ms", float("nan")),
               out["deep_page"].get("max_ms", float("nan")), len(deep),
               _fmt(out["deep_page_first_decile"].get("p50_ms")),
               _fmt(out["deep_page_last_decile"].get("p50_ms"))))
    finally:
        ka.close()
    return out


def _fmt(x, spec="%.1f"):
    return "-" if x is None else spec % x


def stop_all(cluster, timeout):
    """SIGTERM to every node at once (each through the harness's
    Node.stop, in its own thread); returns (seconds, {node: exit code})."""
    codes = {}
    t0 = time.monotonic()

    def stop(n):
        codes[n.node_id] = cluster.stop(n, timeout)
    threads = [threading.Thread(target=stop, args=(n,)) for n in
               cluster.all_nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - t0, codes


def restart_once(cluster, rx, probe_id, size, timeout, log):
    """Stops all nodes, starts them and measures (see the module doc)."""
    stop_s, codes = stop_all(cluster, timeout=max(30, timeout))
    t0 = time.time()
    for n in cluster.all_nodes:
        n.start()
    leader = cluster.leader(timeout, interval=0.02)
    t_leader = time.time()
    seen = {r.execution_id for r in rx.probe_runs}  # before the restart
    run = rx.wait_for(
        lambda rs: [r for r in rs if r.job_id == probe_id and r.time > t0],
        timeout, "the probe's first run after the restart")
    first = min(run, key=lambda r: r.time)
    # The first run the new leader started itself (not one re-dispatched
    # because it was in flight at the stop): a catch-up of a second missed
    # while the nodes were down, or a run on time.
    new = min(rx.wait_for(
        lambda rs: [r for r in rs if r.job_id == probe_id and r.time > t0
                    and r.execution_id not in seen], timeout,
        "the probe's first new run after the restart"),
        key=lambda r: r.time)
    cluster.wait_ready(timeout)
    t_ready = time.time()
    # The new leader goes on loading its jobs after the first runs: wait
    # for its "loaded" line too (a build that loads in one go has none).
    deadline = time.monotonic() + timeout
    while True:
        ev = {n.node_id: log_events(n, n.starts) for n in cluster.all_nodes}
        if (any("loaded" in v or not v.get("loads", True)
                for v in ev.values()) or time.monotonic() >= deadline):
            break
        time.sleep(0.1)
    active = sorted((v["active"], k, v.get("scheduled_jobs"))
                    for k, v in ev.items() if "active" in v)
    rss = rss_sample(cluster)

    def kind(r):
        if r.execution_id in seen:
            return "re-dispatch"
        return ("catch-up" if ec.parse_time(r.scheduled_time) < r.time - 1
                else "on time")
    res = {
        "stop_s": stop_s, "exit_codes": codes,
        "leader_s": t_leader - t0, "first_fire_s": first.time - t0,
        "first_fire_kind": kind(first),
        "first_fire_scheduled": first.scheduled_time,
        "first_new_run_s": new.time - t0, "first_new_run_kind": kind(new),
        "all_ready_s": t_ready - t0, "leader": leader.node_id,
        "node_ready_s": {k: v["ready"] - t0 for k, v in ev.items()
                         if "ready" in v},
        # the first scheduler to become active after the start
        "scheduler_active_s": active[0][0] - t0 if active else None,
        "scheduler_active_node": active[0][1] if active else None,
        "scheduled_jobs": active[0][2] if active else None,
        # ... and when it had loaded every job (its due queue complete)
        "scheduler_loaded_s": (ev[active[0][1]]["loaded"] - t0
                               if active and "loaded" in ev[active[0][1]]
                               else None),
        "activations": len(active),
        "rss": rss,
    }
    log("  restart %d jobs: stop %.2fs (exit %s); from the start: nodes "
        "up (log 'ready') %s s, leader %.2fs, scheduler active %s s, loaded "
        "%s s with %s job(s), first probe request %.2fs (%s, scheduled %s), first new "
        "run %.2fs (%s), all /ready %.2fs; RSS max %.0f MiB%s" % (
            size, stop_s, sorted(codes.values(), key=str),
            "/".join("%.2f" % res["node_ready_s"][k]
                     for k in sorted(res["node_ready_s"])),
            res["leader_s"], _fmt(res["scheduler_active_s"], "%.2f"),
            _fmt(res["scheduler_loaded_s"], "%.2f"),
            res["scheduled_jobs"], res["first_fire_s"],
            res["first_fire_kind"], first.scheduled_time,
            res["first_new_run_s"], res["first_new_run_kind"],
            res["all_ready_s"], max(v["rss"] for v in rss.values()) / MIB,
            "; %d scheduler activations" % len(active)
            if len(active) > 1 else ""))
    return res


def _max_over_nodes(sample, key):
    return max(v[key] for v in sample.values() if v.get(key) is not None)


def measure_size(size, cfg, log, deadline):
    """One row: returns its dict (also on a partial run, with `error`)."""
    row = {"target": size, "repetitions": cfg["repetitions"],
           "phases_s": {}, "notes": []}
    phases = row["phases_s"]

    def remaining():
        return None if deadline is None else deadline - time.monotonic()

    budget = cfg["load_budget_s"]
    left = remaining()
    reserve = None
    if left is not None:
        # Keep time for the cluster's start and the measurements after the
        # load, for the n jobs loaded so far: roughly what they cost on 2
        # cores (measured at 400k and 870k jobs, with some slack): a
        # restart ~4 s + 17 s per 1M jobs, the walk ~45 s per 1M (at most
        # its budget), the first and deep pages ~5 s, the snapshot ~14 s
        # per 1M. The load stops when only that is left, so it loads as
        # many jobs as the budget allows.
        def reserve(n):
            return (cfg["fixed_reserve_s"] + cfg["repetitions"] * (4 + n * 1.7e-5) +
                    min(WALK_BUDGET_S, n * 4.5e-5) + 5 + n * 1.4e-5)
        budget = min(budget, left - reserve(0))
        if budget < 5:
            row["notes"].append("not run: no time left in the bench's "
                                "budget to load %s jobs" % _n(size))
            log("  %d jobs: %s" % (size, row["notes"][-1]))
            return row

    t = time.monotonic()
    c = ch.Cluster(3, config=PRODUCTION_RAFT)
    rx = FastReceiver()
    try:
        c.start(timeout=60)
        leader = c.leader(60)
        phases["cluster_start"] = time.monotonic() - t

        # --- load
        term0 = c.status(leader)["term"]
        t = time.monotonic()
        row["load"] = load_jobs(
            c, leader, rx, size, budget, log,
            None if reserve is None else
            lambda n: time.monotonic() >= deadline - reserve(n))
        phases["load"] = time.monotonic() - t
        t = time.monotonic()
        wait_all_caught_up(c, 600)
        phases["settle"] = time.monotonic() - t
        leader = c.leader(60)
        # Every node's count (the jobs committed, whatever the answers
        # said); minus the probe job.
        counts = {n.node_id: int(_metric(n, "chronos_jobs_total") or 0)
                  for n in c.live()}
        row["load"]["jobs_per_node"] = counts
        row["reached"] = counts[leader.node_id] - 1
        log("  load %d: %d jobs in the store (+ the probe), %s" % (
            size, row["reached"], counts))
        if row["load"]["stopped_by_budget"]:
            row["notes"].append(
                "load stopped by the time budget at %d of %d jobs" % (
                    row["reached"], size))
        if row["load"]["failed"]:
            row["notes"].append("%d creates failed (%s)" % (
                row["load"]["failed"], row["load"]["first_failure"][:80]))
        term1 = c.status(leader)["term"]
        row["load"]["terms"] = [term0, term1]
        # Leaders after the first one (a scheduler becomes active on each).
        row["load"]["leader_changes"] = count_activations(c) - 1

        # --- RSS and disk after the load
        row["rss_after_load"] = rss_sample(c)
        row["disk_after_load"] = disk_sample(c)
        t = time.monotonic()
        r = c.api(leader, "POST", "/api/v1/cluster/snapshot", timeout=600)
        row["snapshot_s"] = time.monotonic() - t
        if r.status != 200:
            row["notes"].append("snapshot: %r" % (r,))
        row["disk_after_snapshot"] = disk_sample(c)
        row["rss_after_snapshot"] = rss_sample(c)
        phases["snapshot"] = row["snapshot_s"]
        log("  %d jobs: RSS after load %s MiB (peak %s); disk %s MiB "
            "(raft %s + store %s); snapshot %.2fs -> disk %s MiB" % (
                row["reached"],
                "/".join("%.0f" % (v["rss"] / MIB) for v in
                         row["rss_after_load"].values()),
                "/".join("%.0f" % (v["hwm"] / MIB) for v in
                         row["rss_after_snapshot"].values()),
                "/".join("%.0f" % (v["total"] / MIB) for v in
                         row["disk_after_load"].values()),
                "/".join("%.0f" % (v["raft"] / MIB) for v in
                         row["disk_after_load"].values()),
                "/".join("%.0f" % (v["store"] / MIB) for v in
                         row["disk_after_load"].values()),
                row["snapshot_s"],
                "/".join("%.0f" % (v["total"] / MIB) for v in
                         row["disk_after_snapshot"].values())))

        # --- list
        left = remaining()
        if left is not None and left < cfg["phase_margin_s"] + 10:
            raise BudgetNote("no time left for the list and restart phases")
        t = time.monotonic()
        row["list"] = list_phase(
            c, leader, cfg["repetitions"], log,
            None if deadline is None else deadline - cfg["phase_margin_s"])
        phases["list"] = time.monotonic() - t

        # --- restarts
        t = time.monotonic()
        row["restarts"] = []
        timeout = 120 + size / 5000.0
        last = 0.0
        for i in range(cfg["repetitions"]):
            left = remaining()
            if left is not None and i > 0 and left < 10 + 1.5 * last:
                row["notes"].append("%d of %d restarts (time budget)" % (
                    i, cfg["repetitions"]))
                break
            t_rep = time.monotonic()
            row["restarts"].append(restart_once(
                c, rx, row["load"]["probe_id"], row["reached"], timeout, log))
            wait_all_caught_up(c, timeout)
            last = time.monotonic() - t_rep
        phases["restarts"] = time.monotonic() - t
        row["hook_runs"] = rx.hook_count
        row["disk_end"] = disk_sample(c)
    except BudgetNote as e:
        row["notes"].append(str(e))
        log("  %d jobs: %s" % (size, e))
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001
        row["error"] = "%s: %s" % (type(e).__name__, e)
        log("  %d jobs FAILED: %s" % (size, row["error"]))
        if isinstance(e, KeyboardInterrupt):
            raise
    finally:
        t = time.monotonic()
        if row.get("restarts"):  # the restarts done, also after a failure
            _summarize_restarts(row)
        row["hook_runs"] = rx.hook_count
        rx.close()
        keep = os.environ.get("CHRONOS_BENCH_SCALE_LOG_DIR")
        if keep:  # the node logs, for a look at the start-up milestones
            c.kill_all_now()
            for n in c.all_nodes:
                dest = os.path.join(keep, "scale_%d" % size, n.node_id)
                os.makedirs(dest, exist_ok=True)
                for i in range(1, n.starts + 1):
                    src = os.path.join(n.work_dir, "chronos-%d.log" % i)
                    if os.path.exists(src):
                        shutil.copy(src, dest)
        c.cleanup()
        phases["cleanup"] = time.monotonic() - t
        log("  %d jobs: phases %s" % (size, ", ".join(
            "%s %.0fs" % kv for kv in phases.items())))
    return row


def _summarize_restarts(row):
    """row["restart"] (p50 and max of each figure over the restarts) and
    row["rss_after_restart"] (of the max over nodes)."""
    rs = row["restarts"]
    row["restart"] = {
        k: {"p50": statistics.median(r[k] for r in rs),
            "max": max(r[k] for r in rs)}
        for k in ("first_fire_s", "first_new_run_s", "leader_s",
                  "all_ready_s", "stop_s")}
    for k in ("scheduler_active_s", "scheduler_loaded_s"):
        v = [r[k] for r in rs if r.get(k) is not None]
        if v:
            row["restart"][k] = {"p50": statistics.median(v), "max": max(v)}
    ups = [max(r["node_ready_s"].values()) for r in rs
           if r["node_ready_s"]]
    if ups:
        row["restart"]["nodes_up_s"] = {"p50": statistics.median(ups),
                                        "max": max(ups)}
    rss_max = [_max_over_nodes(r["rss"], "rss") for r in rs]
    row["rss_after_restart"] = {"p50": statistics.median(rss_max),
                                "max": max(rss_max)}


def scale_rows(rows, quick, log, deadline=None):
    """Fills rows["scale_<N>"] for each size (see the module doc); `log`
    gets progress lines. `deadline` (a time.monotonic() value) is optional:
    the load budget shrinks to keep time for the measurements after it,
    later phases and sizes are skipped (with a note) so the rows end before
    it. A size that fails gets an `error` and the next size still runs."""
    cfg = settings(quick)
    log("scale: sizes %s, %d repetitions, load budget %.0fs, wrk -t%d -c%d"
        % (cfg["sizes"], cfg["repetitions"], cfg["load_budget_s"],
           CONNECTIONS, CONNECTIONS))
    for size in cfg["sizes"]:
        key = "scale_%d" % size
        left = None if deadline is None else deadline - time.monotonic()
        # Below this the size cannot load and measure anything worth a row
        # (a quick 10 000-job row takes ~15 s, a full 100 000 ~90 s).
        if left is not None and left < (20 if quick else 45):
            rows[key] = {"target": size, "notes": [
                "not run: the bench's time budget ran out"]}
            log("scale %d: skipped (time budget)" % size)
            continue
        # ~0.9 KB per job and node after the load at 1M (store + raft log
        # + snapshot), doubled for the snapshot being written and history.
        need = size * 3 * 2000
        free = free_disk(tempfile.gettempdir())
        if free < need:
            rows[key] = {"target": size, "notes": [
                "not run: %.1f GiB free on the temp dir's disk, ~%.1f GiB "
                "needed" % (free / 2**30, need / 2**30)]}
            log("scale %d: skipped (disk)" % size)
            continue
        log("scale %d jobs:" % size)
        rows[key] = measure_size(size, cfg, log, deadline)
    return rows


# --- the table --------------------------------------------------------------

def _mib(x):
    return "%.0f MiB" % (x / MIB)


def _n(x):
    return "{:,}".format(x).replace(",", " ")


def table_lines(rows):
    """[(figure, setup, value, p50, p99, max, note)] for the scale rows, in
    the style of bench/run.py's table()."""
    out = []
    keys = sorted((k for k in rows if re.fullmatch(r"scale_\d+", k)),
                  key=lambda k: int(k.split("_")[1]))
    for key in keys:
        r = rows[key]
        target = r["target"]
        reached = r.get("reached")
        if reached is None or reached == target:
            setup = "chronos 3 nodes, %s jobs" % _n(target)
        else:
            setup = "chronos 3 nodes, %s of %s jobs" % (_n(reached),
                                                        _n(target))
        notes = list(r.get("notes", []))
        if r.get("error"):
            notes.append("FAILED: " + r["error"].splitlines()[0][:120])
        if "load" not in r:
            out.append(("scale", setup, "", "", "", "", "; ".join(notes)))
            continue
        ld = r["load"]
        ln = ["%.0f s" % ld["seconds"]]
        if ld.get("failed"):
            ln.append("%d failed (%s)" % (ld["failed"],
                                          ld["first_failure"][:40]))
        if ld.get("retries"):
            code = re.search(r'"code":"(\w+)"', ld["first_retry"])
            ln.append("%d sent again (first: %s%s)" % (
                ld["retries"], ld["first_retry"][:3],
                " " + code.group(1) if code else ""))
        if ld.get("leader_changes"):
            ln.append("%d leader change(s)" % ld["leader_changes"])
        if ld.get("socket_errors"):
            ln.append("%d socket errors" % ld["socket_errors"])
        out.append(("scale: load (API creates)", setup + ", %d conn" %
                    CONNECTIONS, "%.0f creates/s" % ld["creates_per_s"],
                    "%.2f ms" % ld["p50_ms"], "%.2f ms" % ld["p99_ms"],
                    "%.2f ms" % ld["max_ms"], "; ".join(ln + notes)))
        if "rss_after_load" in r:
            ra = r["rss_after_load"]
            after = _max_over_nodes(ra, "rss")
            peak = _max_over_nodes(r.get("rss_after_snapshot", ra), "hwm")
            note = "max of %s; peak (VmHWM) %s" % (
                "/".join("%.0f" % (ra[k]["rss"] / MIB) for k in sorted(ra)),
                _mib(peak))
            # A snapshot in progress holds an image of the whole store, so
            # one sample says little: also the load's last minute (every
            # 10 s, max over nodes), whose p50 is the level between them.
            late = [max(rss.values()) for _, _, rss in
                    ld.get("rss_during_load", [])[-6:]]
            if late:
                note += "; last minute of the load p50 %s, max %s" % (
                    _mib(statistics.median(late)), _mib(max(late)))
            if target >= 1000000:
                note += "; goal <= 1 GiB"
            out.append(("scale: RSS per node, after load", setup,
                        _mib(after), "", "", "", note))
        if "rss_after_restart" in r:
            rr = r["rss_after_restart"]
            out.append(("scale: RSS per node, after restart", setup, "",
                        _mib(rr["p50"]), "", _mib(rr["max"]),
                        "max over nodes, %d restarts" % len(r["restarts"])))
        if "disk_after_load" in r:
            d = r["disk_after_load"]
            big = max(d, key=lambda k: d[k]["total"])
            note = "max over nodes, du: raft %s + store %s" % (
                _mib(d[big]["raft"]), _mib(d[big]["store"]))
            if "disk_after_snapshot" in r:
                ds = r["disk_after_snapshot"]
                note += "; after a snapshot (%.1f s): %s, snapshot files %s" % (
                    r["snapshot_s"], _mib(max(v["total"] for v in
                                              ds.values())),
                    _mib(max(v["snapshots"] for v in ds.values())))
            out.append(("scale: bytes on disk per node", setup,
                        _mib(d[big]["total"]), "", "", "", note))
        if "restart" in r:
            rs = r["restart"]
            n = len(r["restarts"])
            sa = rs.get("scheduler_active_s")
            sl = rs.get("scheduler_loaded_s")
            note = "scheduler active at %s s, every job loaded at %s s" % (
                _fmt(sa and sa["p50"], "%.2f"), _fmt(sl and sl["p50"], "%.2f"))
            nr = rs["first_new_run_s"]
            if nr["max"] > rs["first_fire_s"]["max"] + 0.5:
                note += "; first new run p50 %.2f s max %.2f s" % (
                    nr["p50"], nr["max"])
            out.append(("scale: restart to first fire", setup + ", %d "
                        "restarts" % n, "", "%.2f s" % rs["first_fire_s"]["p50"],
                        "", "%.2f s" % rs["first_fire_s"]["max"], note))
            out.append(("scale: restart to leader", setup + ", %d restarts"
                        % n, "", "%.2f s" % rs["leader_s"]["p50"], "",
                        "%.2f s" % rs["leader_s"]["max"],
                        "nodes up (log) %s s; election timeout %s" % (_fmt(
                            rs.get("nodes_up_s", {}).get("p50"), "%.2f"),
                            PRODUCTION_RAFT["cluster.raft.election_timeout"])))
        if "list" in r:
            li = r["list"]

            def lat(figure, s, note=""):
                if not s.get("count"):
                    return
                out.append((figure, setup, "%d req" % s["count"],
                            "%.2f ms" % s["p50_ms"], "%.2f ms" % s["p99_ms"],
                            "%.2f ms" % s["max_ms"], note))
            lat("scale: list first page (limit 100)", li["first_page"])
            dd, dl = li["deep_page_first_decile"], li["deep_page_last_decile"]
            lat("scale: list deep pages (limit 100)", li["deep_page"],
                "random cursors%s; p50 first/last tenth %s/%s ms" % (
                    " in the part walked" if li["cursors_from_partial_walk"]
                    else "", _fmt(dd.get("p50_ms")), _fmt(dl.get("p50_ms"))))
            w = li["walks"]
            wp = li["walk_page"]
            if w[0]["partial"]:
                note = ("PARTIAL: %s jobs (%d pages) in %.0f s, the walk's "
                        "budget; p50..max: per page" % (
                            _n(w[0]["jobs"]), w[0]["pages"], w[0]["seconds"]))
                value = ""
            else:
                note = "%d walk(s) of %d pages; value: walk time, p50..max: " \
                       "per page" % (len(w), w[0]["pages"])
                value = "%.2f s" % li["walk_s_p50"]
            out.append(("scale: list all pages (limit 1000)", setup, value,
                        "%.2f ms" % wp["p50_ms"], "%.2f ms" % wp["p99_ms"],
                        "%.2f ms" % wp["max_ms"], note))
    return out
