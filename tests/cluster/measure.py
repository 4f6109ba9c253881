#!/usr/bin/env python3
"""Cluster measurements for the closing note (not part of ctest).

(a) Failover: a 3-node cluster runs an every-second job against a local
    receiver; the leader is killed with SIGKILL --kills times (each time the
    victim is restarted and caught up before the next kill). For each kill:
    the time to a new leader (all survivors agree on a live leader) and the
    time to the next run fired (arrival of the first request scheduled after
    the kill). Prints median and max of both, and the seconds missed over
    the whole window.
(b) Job-create throughput: --threads threads, each with its own keep-alive
    http.client connection, create jobs for --seconds seconds, first all on
    the leader, then spread over the followers (every request forwarded).
    Prints creates/s and p50/p99 latency.

    CHRONOS_BIN=$PWD/build/src/main/chronos python3 tests/cluster/measure.py \
        --election-timeout 400ms --heartbeat-timeout 50ms

bench/run.py (`make bench`) reuses failover_figures for its failover row.
"""

import argparse
import os
import statistics
import sys
import time
import unittest

import cluster_harness as ch
from cluster_harness import ec, h

FAILOVER_BOUND_S = 5.0


def pct(values, q):
    return ec.quantile(values, q) if values else float("nan")


def failover_figures(kills, config, log=print):
    """Runs (a) and returns its figures: `new_leader_s` and `next_run_s`
    (one value per kill), `missed` (scheduled seconds with no run),
    `report` (the RunReport) and the Raft timeouts used. `log` gets one
    line per kill. Also used by bench/run.py."""
    checker = unittest.TestCase()
    c = ch.Cluster(3, config=config).start()
    rx = ch.Receiver()
    try:
        job = ch.create_every_second_job(checker, c.leader(), rx)
        ch.first_run_after(rx, job["id"], time.time())
        leader_s, run_s = [], []
        for i in range(kills):
            r = ch.failover_cycle(c, rx, job["id"])
            leader_s.append(r["new_leader_s"])
            run_s.append(r["next_run_s"])
            log("  kill %2d: %s -> %s, new leader %.3fs, next run %.3fs" % (
                i + 1, r["killed"][0], r["new_leader"], r["new_leader_s"],
                r["next_run_s"]))
        report = ch.settle_and_report(rx, job["id"], FAILOVER_BOUND_S)
        return {"kills": kills, "new_leader_s": leader_s, "next_run_s": run_s,
                "missed": report.missed, "report": report,
                "election_timeout": c.config["cluster.raft.election_timeout"],
                "heartbeat_timeout":
                    c.config["cluster.raft.heartbeat_timeout"]}
    finally:
        rx.close()
        c.cleanup()


def measure_failover(kills, config):
    f = failover_figures(kills, config,
                         log=lambda line: print(line, flush=True))
    leader_s, run_s, report = f["new_leader_s"], f["next_run_s"], f["report"]
    print("(a) failover, 3 nodes, %d kill -9 of the leader "
          "(election timeout %s, heartbeat %s):" % (
              kills, f["election_timeout"], f["heartbeat_timeout"]))
    print("    time to new leader: median %.3fs  max %.3fs" % (
        statistics.median(leader_s), max(leader_s)))
    print("    time to next run:   median %.3fs  max %.3fs" % (
        statistics.median(run_s), max(run_s)))
    print("    receiver: %s" % report.summary())
    print("    missed seconds: %d%s" % (
        len(report.missed), "" if not report.missed else " " + ", ".join(
            ec.format_time(s) for s in report.missed[:20])))


def run_load(nodes, threads, seconds, label, tag):
    deadline = time.monotonic() + seconds
    workers = [ch.JobWriter(nodes[i % len(nodes)], "%s%d" % (tag, i),
                            deadline=deadline) for i in range(threads)]
    t0 = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - t0
    lat = [x for w in workers for x in w.latencies]
    statuses = {}
    for w in workers:
        for k, v in w.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    print("    %-28s %7.0f creates/s  p50 %6.1f ms  p99 %6.1f ms  "
          "(%d created in %.1fs; statuses %s; %d forwarded; %d transport "
          "errors)" % (label, len(lat) / elapsed, pct(lat, 0.5) * 1000,
                       pct(lat, 0.99) * 1000, len(lat), elapsed, statuses,
                       sum(w.forwarded for w in workers),
                       sum(w.errors for w in workers)), flush=True)
    failures = [w.first_failure for w in workers if w.first_failure]
    if failures:
        print("      first failure: %s" % failures[0])


def measure_throughput(threads, seconds, config):
    c = ch.Cluster(3, config=config).start()
    try:
        leader = c.leader()
        followers = c.followers()
        print("(b) job creates, 3 nodes, %d threads with keep-alive "
              "connections, %ds each run (client: one Python process, "
              "%d cores shared with the servers):" % (threads, seconds,
                                                     os.cpu_count()))
        run_load([leader], threads, seconds, "to the leader", "l")
        run_load(followers, threads, seconds, "to the followers (forwarded)",
                 "f")
    finally:
        c.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--threads", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--election-timeout", default=ch.DEFAULT_CONFIG[
        "cluster.raft.election_timeout"])
    ap.add_argument("--heartbeat-timeout", default=ch.DEFAULT_CONFIG[
        "cluster.raft.heartbeat_timeout"])
    ap.add_argument("--skip-failover", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    if not h.binary_available():
        sys.exit("chronos binary not found at %s (set CHRONOS_BIN)" %
                 h.CHRONOS_BIN)
    print("binary: %s" % h.CHRONOS_BIN)
    config = {"cluster.raft.election_timeout": args.election_timeout,
              "cluster.raft.heartbeat_timeout": args.heartbeat_timeout}
    if not args.skip_failover:
        measure_failover(args.kills, config)
    if not args.skip_throughput:
        measure_throughput(args.threads, args.seconds, config)


if __name__ == "__main__":
    main()
