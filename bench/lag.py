"""Schedule lag and dispatch throughput ceiling rows of `make bench` (issue 5).

Python 3 standard library only; used by bench/run.py:

    rows = {}
    lag_rows(rows, quick, log)        # fills rows["lag_<rate>"], ...
    lines = table_lines(rows)  # [(figure, setup, value, p50, p99, max, note)]

One 3-node cluster on 127.0.0.1 (tests/cluster/cluster_harness.Cluster,
production Raft timeouts: heartbeat 50 ms, election 400 ms, every other
setting default) and one local receiver, bench/receiver.cc
(`chronos_bench_receiver`, built by `make bench`; CHRONOS_BENCH_RECEIVER
overrides its path). Steps, in increasing order:

    full:  100, 1 000, 2 000, 3 000, 4 000, 6 000, 8 000, 10 000, 14 000,
           20 000 runs/s, 5 windows of 3 s each; the ceiling steps stop at
           the first one that fails (10 000 is measured anyway), and steps
           that would pass the time budget (240 s) are skipped; <= ~4 min
    quick: 100, 1 000, 3 000 runs/s, 2 windows of 2 s each (budget 35 s);
           its 7 s spans give an overloaded step less time to build a
           backlog, so quick figures err on the good side

What a step measures. R runs per second are R jobs due every second. Each
step creates its own R jobs, all with one schedule that fires every second
of the step's measuring span and never again (this year), e.g.
`12-30 40 18 27 11 *`: every second from 18:40:12 to 18:40:30 UTC on Nov 27
(a cron range cannot cross a minute: a span that does is split between two
groups of R jobs, one per minute, or moved to the next minute, whichever
starts sooner). Within the span a job behaves as a `* * * * * *` job; outside
it the job is idle, so the jobs are created on a quiet cluster (creating
10 000 jobs while thousands of runs a second are in flight would take
minutes on 2 cores), every job starts at the same second, and a step's load
does not leak into the next one. Each job: `concurrency: allow` (a slow run
never makes the next one skip), `missed_run_policy: execute_all` (a run the
scheduler reaches more than `scheduler.late_grace` late is still run, with
its own scheduled time, so no run is silently dropped and the lag shows the
backlog), `timeout: 10s`, at most 2 attempts. The receiver answers 200 at
once.

After a warm-up of `warmup_s` from the span's first second (and from the
last job's 201, if creating overran), `windows` consecutive windows of
`window_s` seconds of *scheduled* time. For every run scheduled in a window
the receiver records

    lag = arrival of its first request (receiver's CLOCK_REALTIME)
          - its scheduled time (X-Chronos-Scheduled-Time)

(same machine, same clock). The span goes on `settle_s` past the last
window, so the last window's runs compete with later runs as in a steady
state. Percentiles are ranked among the runs the window should hold (jobs x
window_s), counting runs not delivered by the time the receiver is asked
(`settle_s` after the last window, earlier once all have arrived) as later
than any arrival; a percentile that falls among them is reported as "> X",
X the shortest time any of them has been waiting. Each figure of a row (p50,
p99, max, delivered runs/s) is the median over the windows. A step runs on
the previous step's cluster when that one passed and all its runs arrived
within `drain_s`; otherwise on a fresh cluster, so an overloaded step's
backlog, elections or re-dispatches never spill into the next step.

Schedule lag rows (lag_100, lag_1000, lag_10000; quick: lag_3000 instead
of lag_10000): the step at that rate.

Dispatch throughput ceiling (dispatch_ceiling): a step passes when the
median over its windows of the p99 lag is under 1 s (so in a typical window
at least 99% of the runs arrived within 1 s of their scheduled time). The
ceiling is the delivered executions per second (distinct execution ids
received for the window's scheduled seconds / window length, median over
the windows) of the highest step before the first failing one. Every
delivered execution was committed through Raft first (SPEC §3: an execution
is committed before its target is called), so it counts executions both
committed and delivered. The row also names the first failing step and its
p99. The finished-execution rate (chronos_executions_total summed over the
nodes, over the windows) is recorded alongside.
"""

import http.client
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))

import cluster_harness as ch  # noqa: E402
from cluster_harness import h  # noqa: E402

RECEIVER_BIN = os.environ.get(
    "CHRONOS_BENCH_RECEIVER",
    os.path.join(ROOT, "build", "bench", "chronos_bench_receiver"))

PRODUCTION_RAFT = ch.PRODUCTION_CONFIG  # the binary's defaults: heartbeat 50 ms, election 400 ms

CEILING_P99_MS = 1000.0
CREATE_THREADS = 64  # keep-alive connections creating jobs on the leader


class Plan:
    def __init__(self, lag_rates, ceiling_rates, windows, window_s, warmup_s,
                 settle_s, drain_s, budget_s):
        self.lag_rates = tuple(lag_rates)
        self.ceiling_rates = tuple(ceiling_rates)
        self.windows = windows
        self.window_s = window_s
        self.warmup_s = warmup_s
        self.settle_s = settle_s
        self.drain_s = drain_s
        self.budget_s = budget_s

    def span_s(self):
        """Seconds a step's jobs fire: warm-up, windows, settle."""
        return self.warmup_s + self.windows * self.window_s + self.settle_s

    def steps(self):
        return sorted(set(self.lag_rates) | set(self.ceiling_rates))

    def describe(self):
        return {"lag_rates": list(self.lag_rates),
                "ceiling_rates": list(self.ceiling_rates),
                "windows": self.windows, "window_s": self.window_s,
                "warmup_s": self.warmup_s, "settle_s": self.settle_s,
                "drain_s": self.drain_s, "budget_s": self.budget_s}


FULL = Plan(lag_rates=(100, 1000, 10000),
            ceiling_rates=(1000, 2000, 3000, 4000, 6000, 8000, 10000, 14000,
                           20000),
            windows=5, window_s=3, warmup_s=2, settle_s=2, drain_s=3,
            budget_s=240)
QUICK = Plan(lag_rates=(100, 1000, 3000), ceiling_rates=(1000, 3000),
             windows=2, window_s=2, warmup_s=1, settle_s=2, drain_s=2,
             budget_s=35)


def span_schedule(first, last):
    """A 6-field cron firing every second from `first` to `last` (unix
    seconds, same UTC minute) and at no other time this year."""
    a, b = time.gmtime(first), time.gmtime(last)
    assert (a.tm_year, a.tm_yday, a.tm_hour, a.tm_min) == (
        b.tm_year, b.tm_yday, b.tm_hour, b.tm_min), (first, last)
    return "%d-%d %d %d %d %d *" % (a.tm_sec, b.tm_sec, a.tm_min, a.tm_hour,
                                     a.tm_mday, a.tm_mon)


def plan_span(rate, span, create_rate, now):
    """(first second, schedules) of a step: the span starts once its jobs
    should exist (creating at a quarter under `create_rate`, plus half a
    second). A cron range cannot cross a minute, so a span that does is
    either split in two job groups (one per minute: the same `rate` runs
    every second, twice the jobs to create) or moved to the next minute,
    whichever is sooner."""
    def start(jobs):
        return int(math.ceil(now + 0.5 + 1.25 * jobs / create_rate))
    s1 = start(rate)
    if s1 % 60 + span <= 60:
        return s1, [span_schedule(s1, s1 + span - 1)]
    next_minute = s1 - s1 % 60 + 60
    split = start(2 * rate)
    if split % 60 + span > 60 and split < next_minute:
        edge = split - split % 60 + 60
        return split, [span_schedule(split, edge - 1),
                       span_schedule(edge, split + span - 1)]
    return next_minute, [span_schedule(next_minute, next_minute + span - 1)]


def job_body(name, url, schedule):
    return {"name": name, "schedule": schedule, "concurrency": "allow",
            "missed_run_policy": "execute_all", "catchup_window": "10m",
            "timeout": "10s",
            "retry_policy": {"max_attempts": 2, "initial_interval": "500ms",
                             "max_interval": "1s", "multiplier": 2,
                             "jitter": 0},
            "webhook": {"url": url}}


# --- the receiver ------------------------------------------------------------

class BenchReceiver:
    """bench/receiver.cc on a free port; killed by PID in stop() (and by the
    harness's atexit hook if this process dies first)."""

    def __init__(self, timeout=10):
        if not (os.path.isfile(RECEIVER_BIN) and os.access(RECEIVER_BIN,
                                                            os.X_OK)):
            raise RuntimeError(
                "receiver not found at %s (cmake --build build --target "
                "chronos_bench_receiver, or set CHRONOS_BENCH_RECEIVER)" %
                RECEIVER_BIN)
        self.dir = h.make_temp_dir("chronos-bench-rx-")
        self.port = ch.pick_port()
        with open(os.path.join(self.dir, "receiver.log"), "wb") as out:
            self.proc = subprocess.Popen(
                [RECEIVER_BIN, str(self.port)], stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        h.track_process(self.proc)

        def up():
            if self.proc.poll() is not None:
                raise _Exited("receiver exited with %s" % self.proc.returncode)
            return h.http_request(self.port, "GET", "/health",
                                  timeout=2).status == 200
        try:
            h.wait_for(up, timeout, "bench receiver on port %d" % self.port)
        except _Exited as e:
            raise RuntimeError(str(e)) from None

    def url(self, path="/hook"):
        return "http://%s:%d%s" % (ch.HOST, self.port, path)

    def stats(self, from_s, to_s, expected=None):
        q = "/stats?from=%d&to=%d" % (from_s, to_s)
        if expected is not None:
            q += "&expected=%d" % expected
        r = h.http_request(self.port, "GET", q, timeout=30)
        if r.status != 200 or not isinstance(r.json, dict):
            raise RuntimeError("receiver stats: %r" % (r,))
        return r.json

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        h.untrack_process(self.proc)
        h.remove_temp_dir(self.dir)


class _Exited(BaseException):
    """Escapes h.wait_for's retry loop."""


# --- creating jobs -----------------------------------------------------------

def create_jobs(port, prefix, count, url, schedule, deadline):
    """Creates jobs <prefix>0..<prefix><count-1> on 127.0.0.1:port over
    CREATE_THREADS keep-alive connections; a 503 is retried after its
    Retry-After (at most 0.2 s), a lost connection after reconnecting (a 409
    then means the first try got through). Raises when time.monotonic()
    passes `deadline` first. Returns the seconds it took."""
    names = iter(range(count))
    lock = threading.Lock()
    failures = []
    t0 = time.monotonic()

    def next_name():
        with lock:
            return next(names, None)

    def worker():
        conn = None
        i = next_name()
        while i is not None and not failures:
            if time.monotonic() > deadline:
                failures.append("deadline passed")
                return
            if conn is None:
                conn = http.client.HTTPConnection(ch.HOST, port, timeout=30)
            body = json.dumps(job_body("%s%d" % (prefix, i), url,
                                       schedule)).encode()
            try:
                conn.request("POST", "/api/v1/jobs", body=body, headers={
                    "Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = None
                continue
            if resp.status in (201, 409):
                i = next_name()
            elif resp.status == 503:
                try:
                    wait = float(resp.getheader("Retry-After") or 0.05)
                except ValueError:
                    wait = 0.05
                time.sleep(min(max(wait, 0.01), 0.2))
            else:
                failures.append("HTTP %d %s" % (resp.status, data[:300]))
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True)
               for _ in range(CREATE_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic() + 5))
    if failures or any(t.is_alive() for t in threads):
        raise RuntimeError("creating %d jobs: %s" % (
            count, failures[0] if failures else "workers did not finish"))
    return time.monotonic() - t0


# --- node metrics and logs ---------------------------------------------------

_METRIC_RE = re.compile(r"^(chronos_[a-z_]+)(\{[^}]*\})?\s+(\S+)$", re.M)


def scrape(cluster):
    """Execution counters summed over the live nodes (each counts what it
    dispatched while it led, so the sum survives a leader change): finished
    executions (by status), missed runs (caught up by execute_all), retries;
    and the highest Raft term any node reports."""
    out = {"finished": 0.0, "success": 0.0, "failed": 0.0, "missed": 0.0,
           "retries": 0.0, "term": 0.0}
    for node in cluster.live():
        try:
            text = node.api("GET", "/metrics", timeout=10).text
        except (OSError, http.client.HTTPException):
            continue
        for name, labels, value in _METRIC_RE.findall(text):
            v = float(value)
            if name == "chronos_executions_total":
                out["finished"] += v
                m = re.search(r'status="([a-z]+)"', labels or "")
                if m and m.group(1) in ("success", "failed"):
                    out[m.group(1)] += v
            elif name == "chronos_missed_runs_total":
                out["missed"] += v
            elif name == "chronos_retries_total":
                out["retries"] += v
            elif name == "chronos_raft_term":
                out["term"] = max(out["term"], v)
    return out


_NOISE_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f-]{27}|\d+(\.\d+)?")


def log_summary(cluster, limit=8):
    """Warning and error lines of every node's log, grouped by message with
    numbers and ids blanked: {node: {"warning": n, "error": n, "critical":
    n, "top": ["<count>x <level> <message>", ...]}}."""
    out = {}
    for n in cluster.all_nodes:
        counts = {"warning": 0, "error": 0, "critical": 0}
        groups = {}
        for line in n.log_text().splitlines():
            parts = line.split(None, 2)
            if len(parts) < 3 or parts[1] not in counts:
                continue
            counts[parts[1]] += 1
            key = "%s %s" % (parts[1], _NOISE_RE.sub("#", parts[2])[:160])
            groups[key] = groups.get(key, 0) + 1
        top = sorted(groups.items(), key=lambda kv: -kv[1])[:limit]
        out[n.node_id] = dict(counts, top=["%dx %s" % (c, k) for k, c in top])
    return out


# --- figures -----------------------------------------------------------------

def _window(rx, from_s, to_s, expected, t_query):
    s = rx.stats(from_s, to_s, expected)
    lag = s["lag_ms"]
    # A run not delivered yet, scheduled at second t < to_s, has waited at
    # least t_query - (to_s - 1).
    waiting_ms = max(0.0, (t_query - (to_s - 1)) * 1000.0)
    return {"from": from_s, "to": to_s, "expected": expected,
            "delivered": s["executions"], "requests": s["requests"],
            "duplicates": s["duplicates"],
            "delivered_per_s": s["executions"] / float(to_s - from_s),
            "p50_ms": lag["p50"], "p99_ms": lag["p99"], "max_ms": lag["max"],
            "max_delivered_ms": lag["max_delivered"],
            "undelivered_waiting_ms": (None if s["executions"] >= expected
                                       else round(waiting_ms, 1)),
            "per_second": s["per_second"]}


def _median_censored(windows, key):
    """(value_ms, at_least_ms): the median over the windows of a percentile
    that is None in a window where it fell among runs not delivered. Such a
    value counts as larger than any delivered one; when the median is one,
    value_ms is None and at_least_ms a lower bound for it."""
    vals = sorted(((w[key] if w[key] is not None else math.inf),
                   w["undelivered_waiting_ms"] or 0.0) for w in windows)
    n = len(vals)
    mid = vals[(n - 1) // 2: n // 2 + 1]
    if all(v != math.inf for v, _ in mid):
        return statistics.mean(v for v, _ in mid), None
    return None, min(v if v != math.inf else b for v, b in mid)


def summarize(step):
    w = step["windows"]
    for key in ("p50_ms", "p99_ms", "max_ms"):
        step[key], step[key.replace("_ms", "_at_least_ms")] = \
            _median_censored(w, key)
    step["delivered_per_s"] = statistics.median(x["delivered_per_s"]
                                                for x in w)
    step["delivered_fraction"] = statistics.median(
        x["delivered"] / float(x["expected"]) for x in w)
    step["min_delivered_fraction"] = min(x["delivered"] / float(x["expected"])
                                         for x in w)
    step["passed"] = (step["p99_ms"] is not None and
                      step["p99_ms"] < CEILING_P99_MS)
    return step


def measure_step(c, leader, rx, rate, plan, create_rate, log):
    """Creates the step's `rate` jobs (their span planned to start once
    they are expected to exist, from `create_rate` creates/s), measures
    the windows. Returns the step's figures and raw per-window data."""
    t0 = time.monotonic()
    span = plan.span_s()
    s1, schedules = plan_span(rate, span, create_rate, time.time())
    s2 = s1 + span - 1
    secs = 0.0
    for g, schedule in enumerate(schedules):
        secs += create_jobs(leader.http_port, "lag-%d-%d-" % (rate, g), rate,
                            rx.url(), schedule,
                            deadline=t0 + max(30.0, rate / 100.0))
    created = time.time()
    jobs = rate * len(schedules)
    log("  %d runs/s: created %d jobs in %.1fs (%.0f/s), schedule %s%s"
        % (rate, jobs, secs, jobs / secs,
           " + ".join('"%s"' % x for x in schedules),
           "" if created < s1 else " (%.1fs late)" % (created - s1)))
    s0 = max(s1 + plan.warmup_s, int(math.ceil(created + plan.warmup_s)))
    windows = min(plan.windows, (s2 + 1 - plan.settle_s - s0) //
                  plan.window_s)
    if windows < 1:
        raise RuntimeError("creating %d jobs took %.1fs: no window left in "
                           "the span %s" % (jobs, secs, schedules))
    s_end = s0 + windows * plan.window_s
    _sleep_until(s0)
    m0 = scrape(c)
    _sleep_until(s_end)
    m1 = scrape(c)
    # Settle: the windows' runs are all in, or settle_s has passed.
    expected_all = rate * (s_end - s0)
    deadline = s_end + plan.settle_s
    while True:
        got = rx.stats(s0, s_end, expected_all)["executions"]
        if got >= expected_all or time.time() >= deadline:
            break
        time.sleep(0.1)
    t_query = time.time()
    wins = [_window(rx, s, s + plan.window_s, rate * plan.window_s, t_query)
            for s in range(s0, s_end, plan.window_s)]
    dur = float(s_end - s0)
    step = {"rate": rate, "jobs": jobs, "schedules": schedules,
            "span": [s1, s2], "create_s": round(secs, 2),
            "creates_per_s": round(jobs / secs, 1),
            "windows": wins, "window_s": plan.window_s,
            "windows_short": plan.windows - windows,
            "query_after_s": round(t_query - s_end, 2),
            "finished_per_s": round((m1["finished"] - m0["finished"]) / dur,
                                    1),
            "failed": m1["failed"] - m0["failed"],
            "missed": m1["missed"] - m0["missed"],
            "retries": m1["retries"] - m0["retries"],
            "elections": int(m1["term"] - m0["term"]),
            "duplicates": sum(w["duplicates"] for w in wins),
            "leader": leader.node_id}
    summarize(step)
    if step["failed"]:
        step["failure_sample"] = failure_sample(
            c, ["lag-%d-0-%d" % (rate, i)
                for i in range(0, rate, max(1, rate // 10))],
            time.monotonic() + 5)
    log("  %d runs/s: delivered %.0f/s (%.1f%%), lag p50 %s p99 %s max %s, "
        "finished %.0f/s, %d failed, %d missed, %d retries, %d duplicate "
        "requests, %d election(s)" % (
            rate, step["delivered_per_s"], 100 * step["delivered_fraction"],
            fmt_lag(step, "p50"), fmt_lag(step, "p99"), fmt_lag(step, "max"),
            step["finished_per_s"], step["failed"], step["missed"],
            step["retries"], step["duplicates"], step["elections"]))
    if step.get("failure_sample"):
        log("    a failed execution's error: %r; breakers not closed: %s" % (
            step["failure_sample"]["error"],
            step["failure_sample"]["breakers"] or "none"))
    return step


def failure_sample(c, names, deadline):
    """Best effort, until time.monotonic() passes `deadline`: the error of
    one failed execution among the jobs `names`, and the circuit breakers
    a node reports not closed."""
    out = {"error": None, "breakers": []}
    for node in c.live():
        if time.monotonic() > deadline:
            return out
        try:
            st = c.status(node, timeout=2)
        except (AssertionError, OSError, ValueError,
                http.client.HTTPException):
            continue
        out["breakers"] += [dict(b, node=node.node_id)
                            for b in st.get("circuit_breakers") or []
                            if b.get("state") != "closed"]
    node = c.live()[0] if c.live() else None
    for name in names if node else ():
        if time.monotonic() > deadline:
            break
        try:
            r = node.api("GET", "/api/v1/jobs/%s/executions?status=failed&"
                         "limit=1" % name, timeout=2)
        except (OSError, http.client.HTTPException):
            continue
        ex = (r.json or {}).get("data", {}).get("executions") \
            if r.status == 200 else None
        if ex:
            out["error"] = ex[0].get("error")
            break
    return out


def drain(rx, step, deadline):
    """Waits until every run of the step's span has arrived or
    time.monotonic() passes `deadline`; returns the runs still missing."""
    s1, s2 = step["span"]
    expected = step["rate"] * (s2 + 1 - s1)
    while True:
        missing = expected - rx.stats(s1, s2 + 1)["executions"]
        if (missing <= 0 and time.time() >= s2 + 1) or \
                time.monotonic() >= deadline:
            return max(0, missing)
        time.sleep(0.1)


def _sleep_until(t):
    """Waits for the wall clock to reach t (a measurement window's edge)."""
    while True:
        left = t - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.5))


# --- the rows ----------------------------------------------------------------

def lag_rows(rows, quick, log, config=None, log_dir=None):
    """Fills rows["lag_<rate>"] for each lag rate, rows["dispatch_ceiling"]
    and rows["lag_run"] (plan, per-step raw data, node log summaries).
    `config` adds YAML keys to the cluster (default PRODUCTION_RAFT);
    `log_dir`, if given, receives a copy of every node's log.

    A step runs on the previous step's cluster when that step passed and
    all its runs have arrived (within `drain_s`); otherwise on a fresh
    cluster (2-3 s to start), so an overloaded step's backlog, leader
    elections or re-dispatches never spill into the next one. A step that
    fails to run (e.g. its jobs cannot be created in time) is recorded
    with its error and the run goes on."""
    plan = QUICK if quick else FULL
    t_start = time.monotonic()
    cfg = dict(PRODUCTION_RAFT)
    cfg.update(config or {})
    run = {"plan": plan.describe(), "config": cfg, "steps": [],
           "skipped": [], "errors": [], "clusters": []}
    rows["lag_run"] = run
    rx = BenchReceiver()
    state = {"cluster": None, "leader": None, "info": None}

    def retire():
        c = state["cluster"]
        if c is None:
            return
        state["cluster"] = None
        try:
            state["info"]["node_logs"] = log_summary(c)
            if log_dir:
                d = os.path.join(log_dir, "cluster-%d" % (
                    len(run["clusters"]) - 1))
                os.makedirs(d, exist_ok=True)
                for n in c.all_nodes:
                    for i in range(1, n.starts + 1):
                        p = os.path.join(n.work_dir, "chronos-%d.log" % i)
                        if os.path.exists(p):
                            shutil.copy(p, os.path.join(d, "%s-%d.log" % (
                                n.node_id, i)))
        finally:
            c.cleanup()

    def fresh():
        retire()
        t0 = time.monotonic()
        state["info"] = {"start_s": None, "steps": []}
        run["clusters"].append(state["info"])
        state["cluster"] = ch.Cluster(3, config=cfg)
        state["cluster"].start()
        state["leader"] = state["cluster"].leader()
        state["info"]["start_s"] = round(time.monotonic() - t0, 1)
        log("lag: 3 nodes up in %.1fs, leader %s" % (
            state["info"]["start_s"], state["leader"].node_id))

    try:
        log("lag: steps %s runs/s, %d windows of %ds each" % (
            plan.steps(), plan.windows, plan.window_s))
        broken = None
        create_rate = 700.0  # creates/s, until measured
        prev = None
        for rate in plan.steps():
            if broken is not None and rate not in plan.lag_rates:
                run["skipped"].append({"rate": rate, "why": "after %d failed"
                                       % broken["rate"]})
                continue
            # The lead (creating fits in it), the span, a minute-fit wait
            # (span/2 on average, span/60 of the time), a fresh cluster if
            # needed, the stats queries.
            fresh_s = 0 if prev is not None and prev.get("passed") else 2.5
            estimate = (0.5 + 1.25 * rate / create_rate + plan.span_s() *
                        (1 + plan.span_s() / 120.0) + fresh_s + 0.5)
            elapsed = time.monotonic() - t_start
            if elapsed + estimate > plan.budget_s:
                log("  %d runs/s skipped: %.0fs + ~%.0fs would pass the "
                    "%ds budget" % (rate, elapsed, estimate, plan.budget_s))
                run["skipped"].append({"rate": rate, "why": "time budget"})
                continue
            try:
                if (prev is None or not prev.get("passed") or
                        drain(rx, prev, time.monotonic() + plan.drain_s)):
                    fresh()
                c = state["cluster"]
                step = measure_step(c, state["leader"], rx, rate, plan,
                                    create_rate, log)
            except Exception as e:  # noqa: BLE001 - recorded, run goes on
                log("  %d runs/s FAILED: %s" % (rate, e))
                err = {"rate": rate, "error": "%s: %s" % (type(e).__name__,
                                                          e)}
                run["errors"].append(err)
                if rate in plan.lag_rates:
                    rows["lag_%d" % rate] = dict(err, jobs=rate)
                prev = dict(err, passed=False)
                broken = broken or prev
                continue
            create_rate = step["creates_per_s"]
            state["info"]["steps"].append(rate)
            try:
                now_leader = c.leader(timeout=10)
            except AssertionError:
                now_leader = None
            step["leader_changed"] = now_leader is not state["leader"]
            if step["leader_changed"]:
                log("  note: leader %s -> %s" % (
                    state["leader"].node_id,
                    now_leader.node_id if now_leader else "none agreed"))
                state["leader"] = now_leader or state["leader"]
            run["steps"].append(step)
            prev = step
            if rate in plan.lag_rates:
                rows["lag_%d" % rate] = _lag_row(step, plan)
            if broken is None and not step["passed"]:
                broken = step
        rows["dispatch_ceiling"] = _ceiling_row(run["steps"], plan, broken)
    finally:
        try:
            retire()
        finally:
            rx.stop()
            run["elapsed_s"] = round(time.monotonic() - t_start, 1)
    return rows


def _lag_row(step, plan):
    keys = ("rate", "jobs", "schedules", "p50_ms", "p99_ms", "max_ms",
            "p50_at_least_ms", "p99_at_least_ms", "max_at_least_ms",
            "delivered_per_s",
            "delivered_fraction", "min_delivered_fraction", "finished_per_s",
            "failed", "missed", "retries", "elections", "duplicates",
            "leader_changed", "windows_short", "failure_sample", "windows")
    row = {k: step.get(k) for k in keys}
    row["repetitions"] = plan.windows - step["windows_short"]
    row["window_s"] = plan.window_s
    return row


def _ceiling_row(steps, plan, broken):
    """The dispatch ceiling from the measured steps (in increasing order)
    and the first failing one (`broken`: a step, or {"rate", "error"} for a
    step that could not run; None when every step passed)."""
    best = None
    for s in steps:
        if broken is not None and s["rate"] >= broken["rate"]:
            break
        best = s
    row = {"criterion": "median over windows of p99 lag < %.0f ms" %
           CEILING_P99_MS,
           "repetitions": plan.windows, "window_s": plan.window_s,
           "steps": [{k: s.get(k) for k in (
               "rate", "delivered_per_s", "finished_per_s", "p99_ms",
               "p99_at_least_ms", "elections", "duplicates", "passed")}
               for s in steps],
           "exec_per_s": None, "rate": None, "broke_at": None}
    if best is not None:
        row.update({k: best[k] for k in (
            "rate", "finished_per_s", "p50_ms", "p99_ms", "max_ms",
            "p50_at_least_ms", "p99_at_least_ms", "max_at_least_ms")})
        row["exec_per_s"] = best["delivered_per_s"]
    if broken is not None:
        row.update({"broke_at": broken["rate"],
                    "broke_error": broken.get("error"),
                    "broke_p99_ms": broken.get("p99_ms"),
                    "broke_p99_at_least_ms": broken.get("p99_at_least_ms"),
                    "broke_delivered_per_s": broken.get("delivered_per_s"),
                    "broke_elections": broken.get("elections"),
                    "broke_duplicates": broken.get("duplicates")})
    return row


# --- the table ---------------------------------------------------------------

def _dur(ms):
    return "%.2f ms" % ms if ms < 1000 else "%.2f s" % (ms / 1000.0)


def _fig(row, key):
    if row.get(key + "_ms") is not None:
        return _dur(row[key + "_ms"])
    if row.get(key + "_at_least_ms") is not None:
        return "> " + _dur(row[key + "_at_least_ms"])
    return ""


def fmt_lag(row, key):
    return _fig(row, key) or "-"


def _rate(r):
    return "%gk" % (r / 1000.0) if r >= 1000 else str(r)


def _trouble(r):
    """Notes on what went wrong in a step (or row)."""
    notes = []
    if r.get("error"):
        notes.append(r["error"][:120])
    if r.get("min_delivered_fraction", 1) < 1:
        notes.append("delivered %.1f%% (worst window %.1f%%)" % (
            100 * r["delivered_fraction"], 100 * r["min_delivered_fraction"]))
    if r.get("failed"):
        notes.append("%d failed" % r["failed"])
    if r.get("elections"):
        notes.append("%d election(s)" % r["elections"])
    if r.get("duplicates"):
        notes.append("%d re-sent" % r["duplicates"])
    return notes


def table_lines(rows):
    """[(figure, setup, value, p50, p99, max, note)] for the lag rows and the
    dispatch ceiling, in bench/run.py's table() style."""
    out = []
    lag = sorted((r for k, r in rows.items()
                  if k.startswith("lag_") and isinstance(r, dict) and
                  "rate" in r), key=lambda r: r["rate"])
    for r in lag:
        setup = "chronos 3 nodes, %d every-second jobs" % r["rate"]
        notes = (["goal p99 <= 5 ms"] if r["rate"] == 1000 else []) + \
            _trouble(r)
        out.append(("schedule lag", setup, "%d runs/s" % r["rate"],
                    _fig(r, "p50"), _fig(r, "p99"), _fig(r, "max"),
                    ", ".join(notes)))
    c = rows.get("dispatch_ceiling")
    if c:
        setup = "chronos 3 nodes, steps %s runs/s" % "/".join(
            _rate(s["rate"]) for s in c["steps"])
        notes = ["goal >= 20000/s"]
        if c["broke_at"] is None:
            notes.append("every step passed: at least this")
        else:
            b = {"p99_ms": c["broke_p99_ms"],
                 "p99_at_least_ms": c["broke_p99_at_least_ms"],
                 "error": c["broke_error"], "elections": c["broke_elections"],
                 "duplicates": c["broke_duplicates"]}
            what = ["p99 " + fmt_lag(b, "p99")] if not b["error"] else []
            notes.append("failed at %s/s: %s" % (
                _rate(c["broke_at"]), ", ".join(what + _trouble(b))))
        if c["exec_per_s"] is None:
            value = "< %s exec/s" % _rate(c["broke_at"]) if c["broke_at"] \
                else ""
            out.append(("dispatch ceiling", setup, value, "", "", "",
                        "; ".join(notes)))
        else:
            out.append(("dispatch ceiling", setup,
                        "%.0f exec/s" % c["exec_per_s"], _fig(c, "p50"),
                        _fig(c, "p99"), _fig(c, "max"), "; ".join(notes)))
    return out
