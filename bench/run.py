#!/usr/bin/env python3
"""`make bench`: Chronos measured against the real binary, side by side with
etcd, printed as one table and written to bench/results/latest.json.

Python 3 standard library only; uses tests/cluster (cluster_harness for the
Chronos clusters, measure.failover_figures for the failover rows), the
schedule-lag and dispatch-ceiling rows of bench/lag.py (with the receiver
bench/receiver.cc), the scale rows of bench/scale.py, and two tools
installed by `scripts/install-deps.sh --bench`: wrk (load generator) and
etcd (the baseline). docs/performance.md says what each row measures.

    python3 bench/run.py                  # full: 5 repetitions, <= 15 min
    BENCH_QUICK=1 python3 bench/run.py    # quick: 2 repetitions, <= 2 min
    CHRONOS_BIN=... overrides the binary (default build/src/main/chronos)
    CHRONOS_BENCH_BASELINE_BIN=... also measures 3-node creates with another
        binary in the same run (a before/after ratio)

Every process it starts (chronos, etcd, wrk, receivers) is killed by PID on
the way out, also when the time budget runs out or the run is interrupted.
"""

import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))

import cluster_harness as ch  # noqa: E402
import lag  # noqa: E402
import measure  # noqa: E402
import scale  # noqa: E402
from cluster_harness import h  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
REPETITIONS = 2 if QUICK else 5
WRK_SECONDS = 3 if QUICK else 5
WRK_WARMUP_SECONDS = 1
WRK_THREADS = 2
CONNECTIONS = 64
FAILOVER_KILLS = 3 if QUICK else 10
BUDGET_S = 120 if QUICK else 900
SCALE_MARGIN_S = 10  # left after the scale rows: table, JSON, cleanup
RESULTS = os.path.join(HERE, "results", "latest.json")
# Optional: another chronos binary measured in the same run (baseline_rows).
BASELINE_BIN = os.environ.get("CHRONOS_BENCH_BASELINE_BIN", "")

PRODUCTION_RAFT = ch.PRODUCTION_CONFIG  # the binary's defaults: heartbeat 50 ms, election 400 ms


# Every process and temp dir started here is tracked by the integration
# harness (h.track_process, h.make_temp_dir) and killed / removed by PID at
# the end and at exit, like the chronos nodes it starts.


class BudgetExceeded(BaseException):
    """Raised by SIGALRM when the run passes BUDGET_S (a BaseException so the
    harness's polling loops do not swallow it)."""


def _on_signal(signum, frame):
    if signum == signal.SIGALRM:
        raise BudgetExceeded("bench passed its time budget of %ds" % BUDGET_S)
    raise KeyboardInterrupt()


def log(msg):
    sys.stderr.write("[bench] %s\n" % msg)
    sys.stderr.flush()


# --- machine and commit -----------------------------------------------------

def disk_type(path):
    """'ssd'/'hdd' (+ device) for the block device holding `path`, from
    /sys/block/<dev>/queue/rotational; best effort."""
    try:
        dev = os.stat(path).st_dev
        major, minor = os.major(dev), os.minor(dev)
        sys_dev = os.path.realpath("/sys/dev/block/%d:%d" % (major, minor))
        for d in (sys_dev, os.path.dirname(sys_dev)):  # partition -> disk
            rot = os.path.join(d, "queue", "rotational")
            if os.path.exists(rot):
                with open(rot) as f:
                    kind = "hdd" if f.read().strip() == "1" else "ssd"
                return "%s (%s)" % (kind, os.path.basename(d))
    except OSError:
        pass
    # Overlay/tmpfs (a container): name what the machine's disks are.
    kinds = []
    for name in sorted(os.listdir("/sys/block")) if os.path.isdir(
            "/sys/block") else []:
        if name.startswith(("loop", "ram", "zram", "dm-")):
            continue
        try:
            with open("/sys/block/%s/queue/rotational" % name) as f:
                kinds.append("%s %s" % (name, "hdd" if f.read().strip() == "1"
                                        else "ssd"))
        except OSError:
            pass
    return "unknown for %s; disks: %s" % (path, ", ".join(kinds) or "none")


def machine():
    u = platform.uname()
    tmp = tempfile.gettempdir()
    return {"cores": os.cpu_count(), "disk": disk_type(tmp), "temp_dir": tmp,
            "kernel": "%s %s %s" % (u.system, u.release, u.machine)}


def commit():
    def git(*args):
        return subprocess.run(["git", "-C", ROOT] + list(args),
                              capture_output=True, text=True,
                              timeout=30).stdout.strip()
    try:
        rev = git("rev-parse", "--short", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"rev": "unknown", "dirty": None}
    return {"rev": rev or "unknown", "dirty": dirty}


# --- wrk --------------------------------------------------------------------

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def _ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError("wrk latency %r" % text)
    return float(m.group(1)) * _UNIT_MS[m.group(2)]


def parse_wrk(out):
    """wrk --latency output -> requests_per_s, p50/p75/p90/p99/max (ms),
    requests, non_2xx, socket_errors."""
    r = {"non_2xx": 0, "socket_errors": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise ValueError("no Requests/sec in wrk output:\n" + out)
    r["requests_per_s"] = float(m.group(1))
    m = re.search(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    r["max_ms"] = _ms(m.group(3))
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M):
        r["p%s_ms" % pct] = _ms(value)
    m = re.search(r"(\d+) requests in", out)
    r["requests"] = int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        r["non_2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", out)
    if m:
        r["socket_errors"] = sum(int(x) for x in m.groups())
    return r


def run_wrk(url, script, args, seconds):
    cmd = ["wrk", "-t%d" % WRK_THREADS, "-c%d" % CONNECTIONS,
           "-d%ds" % seconds, "--latency", "--timeout", "10s",
           "-s", os.path.join(HERE, script), url, "--"] + list(args)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    h.track_process(proc)
    try:
        out, _ = proc.communicate(timeout=seconds + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        h.untrack_process(proc)
    if proc.returncode != 0:
        raise RuntimeError("wrk exited %d:\n%s" % (proc.returncode, out))
    return parse_wrk(out)


def wrk_row(label, url, script, make_args):
    """A warm-up run, then REPETITIONS runs of WRK_SECONDS; each figure is
    the median over the runs. make_args(i) -> the script's arguments."""
    run_wrk(url, script, make_args("w"), WRK_WARMUP_SECONDS)
    runs = []
    for i in range(REPETITIONS):
        r = run_wrk(url, script, make_args(str(i)), WRK_SECONDS)
        log("  %s run %d: %.0f req/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms, "
            "%d non-2xx, %d socket errors" % (
                label, i + 1, r["requests_per_s"], r["p50_ms"], r["p99_ms"],
                r["max_ms"], r["non_2xx"], r["socket_errors"]))
        runs.append(r)
    row = {k: statistics.median(r[k] for r in runs)
           for k in ("requests_per_s", "p50_ms", "p75_ms", "p90_ms", "p99_ms",
                     "max_ms")}
    row["non_2xx"] = sum(r["non_2xx"] for r in runs)
    row["socket_errors"] = sum(r["socket_errors"] for r in runs)
    row["runs"] = runs
    return row


# --- etcd -------------------------------------------------------------------

def _http_json(url, body=None, timeout=5):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={
        "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


class EtcdCluster:
    """A 3-member etcd cluster on 127.0.0.1, each member with its own data
    dir under one temp dir, default durability (the WAL is fsynced before a
    put is acknowledged). Members are killed by PID in stop() and, as a last
    resort, by the atexit hook."""

    def __init__(self, size=3):
        self.dir = h.make_temp_dir("chronos-bench-etcd-")
        self.members = [{"name": "e%d" % (i + 1), "client": ch.pick_port(),
                         "peer": ch.pick_port()} for i in range(size)]
        self.procs = []

    def client_url(self, m):
        return "http://%s:%d" % (ch.HOST, m["client"])

    def start(self, timeout=30):
        initial = ",".join("%s=http://%s:%d" % (m["name"], ch.HOST, m["peer"])
                           for m in self.members)
        for m in self.members:
            peer = "http://%s:%d" % (ch.HOST, m["peer"])
            cmd = ["etcd", "--name", m["name"],
                   "--data-dir", os.path.join(self.dir, m["name"]),
                   "--listen-client-urls", self.client_url(m),
                   "--advertise-client-urls", self.client_url(m),
                   "--listen-peer-urls", peer,
                   "--initial-advertise-peer-urls", peer,
                   "--initial-cluster", initial,
                   "--initial-cluster-token", "chronos-bench",
                   "--initial-cluster-state", "new",
                   "--logger", "zap", "--log-level", "warn"]
            log_file = open(os.path.join(self.dir, m["name"] + ".log"), "wb")
            proc = subprocess.Popen(cmd, stdout=log_file,
                                    stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=self.dir)
            log_file.close()
            h.track_process(proc)
            self.procs.append(proc)
        h.wait_for(lambda: all(
            _http_json(self.client_url(m) + "/health").get("health") == "true"
            for m in self.members), timeout, "etcd cluster healthy")
        return self

    def leader(self, timeout=30):
        """The member whose /v3/maintenance/status names itself leader."""
        def find():
            for m in self.members:
                st = _http_json(self.client_url(m) + "/v3/maintenance/status",
                                {})
                if st.get("leader") and st["leader"] == st["header"][
                        "member_id"]:
                    return m
            return None
        return h.wait_for(find, timeout, "an etcd leader")

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
            h.untrack_process(p)


# --- the rows ---------------------------------------------------------------

def chronos_rows(rows):
    # 1 node: a one-voter Raft cluster (`chronos serve` without peers).
    node = h.Node(node_id="n1", extra_args=["--config", ch.ec.write_config(
        ch.yaml_text(PRODUCTION_RAFT))])
    try:
        node.start_ready()
        url = "http://%s:%d" % (ch.HOST, node.http_port)
        rows["create_1"] = wrk_row("create, chronos 1 node", url,
                                   "create.lua", lambda i: ["one" + i])
    finally:
        node.cleanup()

    c = ch.Cluster(3, config=PRODUCTION_RAFT).start()
    try:
        leader = c.leader()
        url = c.url(leader)
        rows["create_3"] = wrk_row("create, chronos 3 nodes", url,
                                   "create.lua", lambda i: ["three" + i])
        r = c.api(leader, "POST", "/api/v1/jobs", h.job_body("bench-get"))
        if r.status != 201:
            raise RuntimeError("creating the job to GET: %r" % (r,))
        job_id = r.json["data"]["id"]
        rows["get_3"] = wrk_row("GET job, chronos 3 nodes", url, "get.lua",
                                lambda i: [job_id])
        if c.leader() is not leader:
            log("  note: the chronos leader changed during the run")
    finally:
        c.cleanup()


def baseline_rows(rows):
    """With CHRONOS_BENCH_BASELINE_BIN only: the 3-node create row again
    with that binary (e.g. a build of an earlier commit), in the same run on
    the same machine, for a before/after ratio."""
    if not BASELINE_BIN:
        return
    saved = h.CHRONOS_BIN
    h.CHRONOS_BIN = BASELINE_BIN
    try:
        c = ch.Cluster(3, config=PRODUCTION_RAFT).start()
        try:
            rows["create_3_baseline"] = wrk_row(
                "create, baseline binary, 3 nodes", c.url(c.leader()),
                "create.lua", lambda i: ["base" + i])
            rows["create_3_baseline"]["binary"] = BASELINE_BIN
        finally:
            c.cleanup()
    finally:
        h.CHRONOS_BIN = saved


def etcd_rows(rows):
    e = EtcdCluster(3).start()
    try:
        leader = e.leader()
        rows["etcd_put_3"] = wrk_row(
            "put, etcd 3 nodes", e.client_url(leader), "etcd_put.lua",
            lambda i: [("Run" + i + "xxxx")[:4]])
        rows["etcd_version"] = _http_json(
            e.client_url(leader) + "/version").get("etcdserver")
    finally:
        e.stop()


def failover_row(rows, key, config):
    f = measure.failover_figures(FAILOVER_KILLS, config, log=log)
    rows[key] = {
        "kills": f["kills"],
        "new_leader_s_p50": statistics.median(f["new_leader_s"]),
        "new_leader_s_max": max(f["new_leader_s"]),
        "next_run_s_p50": statistics.median(f["next_run_s"]),
        "next_run_s_max": max(f["next_run_s"]),
        "runs_missed": len(f["missed"]),
        "new_leader_s": f["new_leader_s"], "next_run_s": f["next_run_s"],
        "election_timeout": f["election_timeout"],
        "heartbeat_timeout": f["heartbeat_timeout"],
        "receiver": f["report"].summary()}


def failover_rows(rows):
    """With the production timeouts (the binary's defaults)."""
    failover_row(rows, "failover", dict(PRODUCTION_RAFT))


# --- the table --------------------------------------------------------------

def table(rows):
    """[(figure, setup, value, p50, p99, max, note)] from the rows."""
    def ms(x):
        return "%.2f ms" % x

    def wrk_line(figure, setup, r, unit):
        errs = r["non_2xx"] + r["socket_errors"]
        return (figure, setup, "%.0f %s" % (r["requests_per_s"], unit),
                ms(r["p50_ms"]), ms(r["p99_ms"]), ms(r["max_ms"]),
                "%d errors" % errs if errs else "")
    conn = "%d conn" % CONNECTIONS
    out = []
    if "create_1" in rows:
        out.append(wrk_line("job create (API)", "chronos 1 node, " + conn,
                            rows["create_1"], "creates/s"))
    if "create_3" in rows:
        out.append(wrk_line("job create (API)", "chronos 3 nodes, leader, " +
                            conn, rows["create_3"], "creates/s"))
    if "create_3_baseline" in rows:
        out.append(wrk_line("job create (API)", "baseline binary, 3 nodes, "
                            "leader, " + conn, rows["create_3_baseline"],
                            "creates/s"))
        if "create_3" in rows:
            ratio = (rows["create_3"]["requests_per_s"] /
                     rows["create_3_baseline"]["requests_per_s"])
            p99 = (rows["create_3"]["p99_ms"] /
                   rows["create_3_baseline"]["p99_ms"])
            out.append(("create ratio", "chronos 3 / baseline 3",
                        "%.2fx" % ratio, "", "%.2fx" % p99, "",
                        "this binary over the baseline"))
    if "etcd_put_3" in rows:
        out.append(wrk_line("put (HTTP gateway)", "etcd 3 nodes, leader, " +
                            conn, rows["etcd_put_3"], "puts/s"))
    if "create_3" in rows and "etcd_put_3" in rows:
        ratio = (rows["create_3"]["requests_per_s"] /
                 rows["etcd_put_3"]["requests_per_s"])
        rows["ratio_create3_etcd3"] = ratio
        p99 = rows["create_3"]["p99_ms"] / rows["etcd_put_3"]["p99_ms"]
        out.append(("create ratio", "chronos 3 / etcd 3", "%.2fx" % ratio,
                    "", "%.2fx" % p99, "", "goal >= 2x, p99 <= 1x"))
    if "get_3" in rows:
        out.append(wrk_line("GET job by id (API)", "chronos 3 nodes, leader, "
                            + conn, rows["get_3"], "req/s"))
    out += lag.table_lines(rows)
    out += scale.table_lines(rows)
    if "failover" in rows:
        f = rows["failover"]
        setup = "chronos 3 nodes, %d kill -9, election %s" % (
            f["kills"], f["election_timeout"])
        out.append(("failover: new leader", setup, "",
                    "%.3f s" % f["new_leader_s_p50"], "",
                    "%.3f s" % f["new_leader_s_max"], ""))
        out.append(("failover: next fired run", setup, "",
                    "%.3f s" % f["next_run_s_p50"], "",
                    "%.3f s" % f["next_run_s_max"], "goal <= 1 s"))
        out.append(("failover: runs missed", setup, str(f["runs_missed"]),
                    "", "", "", "goal 0"))
    return out


def format_table(lines):
    head = ("figure", "setup", "value", "p50", "p99", "max", "note")
    widths = [max(len(r[i]) for r in [head] + lines) for i in range(7)]
    fmt = lambda r: "| " + " | ".join(  # noqa: E731
        c.ljust(w) for c, w in zip(r, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(head), sep] + [fmt(r) for r in lines])


def main():
    if not h.binary_available():
        sys.exit("chronos binary not found at %s (make build)" % h.CHRONOS_BIN)
    for tool in ("wrk", "etcd"):
        if shutil.which(tool) is None:
            sys.exit("%s not found: bash scripts/install-deps.sh --bench" % tool)
    signal.signal(signal.SIGALRM, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.alarm(BUDGET_S)
    t0 = time.monotonic()
    result = {"mode": "quick" if QUICK else "full", "machine": machine(),
              "commit": commit(), "binary": h.CHRONOS_BIN,
              "repetitions": REPETITIONS, "wrk_seconds": WRK_SECONDS,
              "wrk_threads": WRK_THREADS, "connections": CONNECTIONS,
              "durability": "chronos: libraft fsyncs its log before a 201; "
                            "etcd: default (WAL fsynced before a put's answer)",
              "rows": {}}
    rows = result["rows"]
    error = None
    try:
        log("mode %s: %d repetition(s) of %ds per wrk figure, %d kills, "
            "budget %ds" % (result["mode"], REPETITIONS, WRK_SECONDS,
                            FAILOVER_KILLS, BUDGET_S))
        chronos_rows(rows)
        baseline_rows(rows)
        etcd_rows(rows)
        lag.lag_rows(rows, QUICK, log)
        failover_rows(rows)
        # Last: the scale rows fit their sizes into what is left of the
        # budget and say so when a size could not be reached.
        scale.scale_rows(rows, QUICK, log,
                         deadline=t0 + BUDGET_S - SCALE_MARGIN_S)
    except (Exception, BudgetExceeded, KeyboardInterrupt) as e:  # noqa: BLE001
        error = "%s: %s" % (type(e).__name__, e)
    finally:
        signal.alarm(0)
        h.cleanup_everything()
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    lines = table(rows)
    result["table"] = [dict(zip(("figure", "setup", "value", "p50", "p99",
                                 "max", "note"), r)) for r in lines]
    if error:
        result["error"] = error
    m, cm = result["machine"], result["commit"]
    print("machine: %d cores, disk %s, %s" % (m["cores"], m["disk"],
                                              m["kernel"]))
    print("commit:  %s%s (%s run, %.0fs; each figure the median of %d runs "
          "of %ds, wrk -t%d -c%d)" % (
              cm["rev"], "-dirty" if cm["dirty"] else "", result["mode"],
              result["elapsed_s"], REPETITIONS, WRK_SECONDS, WRK_THREADS,
              CONNECTIONS))
    print()
    print(format_table(lines))
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print("written: %s" % os.path.relpath(RESULTS, os.getcwd()))
    if error:
        print("bench FAILED: %s" % error, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
