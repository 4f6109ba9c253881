"""Failover and network partitions of a real cluster, each node in its own
network namespace (netns.py), with the binary's DEFAULT configuration (no
config file: whatever Raft timeouts the build has) and jobs with DEFAULT
settings (every second, a webhook to a receiver in the test process; the
server's own concurrency, missed-run, retry and timeout defaults).

Faults: leader kill -9 (10 times, with restart and catch-up in between);
leader SIGSTOP ~4 s; leader isolated both ways; one-way cuts leader ->
followers and followers -> leader; the same on 5 nodes; every node isolated
from every other ~2 s (quorum loss). Cuts drop node-to-node packets only:
every node stays reachable from the test and still reaches the receiver
(netns.Network.isolate). Each node's Raft address is its namespace's
address; its HTTP API listens on 127.0.0.1 in its namespace (chronos
without authentication refuses any other address), which the network maps
to the node for the test and for the other nodes' forwarding
(cluster_harness.NETNS_HTTP_PORT), so cuts stop forwarding too.

Over each test's window the receiver must have seen, for every job:
  - every scheduled second at least once (none MISSED),
  - none before its scheduled time (EARLY),
  - none later than LATE_BOUND_S after it (LATE),
  - one execution id per scheduled second (a second that arrives twice
    carries the same id: re-dispatch, not a second run) (CONFLICT),
  - per execution id, X-Chronos-Attempt strictly increasing in arrival
    order (reported apart: ATTEMPTS BACKWARDS when it is not even
    non-decreasing, ATTEMPTS REPEATED when it is non-decreasing only),
and the leader must hold no execution recorded as `skipped` (SKIPPED).
A failing test lists every check that failed, with numbers.

LATE_BOUND_S = 5 s: with the default election timeout T = 400 ms a new
leader is in place within about 2T (4T when only the followers' answers are
cut: they keep hearing the old leader until it steps down), and runs what
nobody started while it is within scheduler.late_grace (5 s by default);
the quorum loss lasts 2 s. Measured lateness stays under 2 s; 5 s leaves
room for two loaded cores. The kill test logs the failover figures as one
line starting with "FAILOVER SUMMARY" (docs/failover.md).
"""

import collections
import re
import sys
import time
import unittest

import cluster_harness as ch
from cluster_harness import ec, h, log

LATE_BOUND_S = 5.0
JOBS = 2                 # default every-second jobs per test
# The checked window ends this long after the cluster has recovered from
# the last fault (runs up to LATE_BOUND_S later are waited for, unchecked).
AFTER_RECOVERY_S = 3.0
# How long a fault waits for the side that has a quorum to elect a leader
# before that is reported (the fault itself lasts its own duration).
ELECTION_WAIT_S = 20.0


class PartitionTestCase(ch.ClusterTestCase):
    """A cluster in namespaces, the receiver on the root-side address, JOBS
    default jobs running; faults are logged and their problems collected;
    finish() reports on the whole window and fails with every problem."""

    def start(self, size):
        t0 = time.monotonic()
        self.c = self.new_netns_cluster(size, defaults=ch.BINARY_DEFAULTS)
        self.net = self.c.network
        self.rx = ch.new_receiver(self, host=self.net.root_ip)
        leader = self.c.leader()
        self.jobs = [ch.create_default_job(self, leader, self.rx)
                     for _ in range(JOBS)]
        j = self.jobs[0]
        log("%s: %d nodes up in %s (%.1fs), leader %s; job defaults: "
            "concurrency=%s missed_run_policy=%s timeout=%s "
            "retry_policy=%s" % (
                self.id().rsplit(".", 1)[-1], size, self.net.subnet,
                time.monotonic() - t0, leader.node_id, j.get("concurrency"),
                j.get("missed_run_policy"), j.get("timeout"),
                j.get("retry_policy")))
        now = time.time()
        for job in self.jobs:  # webhooks from the namespaces reach us
            ch.first_run_after(self.rx, job["id"], now)
        self.problems = []
        self.fault_times = []
        return self.c

    # --- faults ---------------------------------------------------------
    def new_leader_among(self, nodes, since, what):
        """Waits for a leader agreed by `nodes` (the side with a quorum);
        logs the time since `since` (time.monotonic()); on timeout records
        a problem and returns None."""
        try:
            leader = self.c.leader(ELECTION_WAIT_S, nodes=nodes,
                                   interval=0.02)
        except AssertionError as e:
            self.problems.append(
                "NO LEADER among %s within %.0fs of %s: %s" % (
                    [n.node_id for n in nodes], ELECTION_WAIT_S, what,
                    str(e).splitlines()[0]))
            return None
        log("  %s -> %s leads after %.3fs" % (what, leader.node_id,
                                              time.monotonic() - since))
        return leader

    def partition(self, what, apply, quorum_side, duration):
        """Applies a cut (apply()), expects a leader among quorum_side
        (None: no side has a quorum), holds the cut for `duration` s,
        heals everything and waits until all members agree on a leader and
        have caught up. Returns (leader during the fault, leader after)."""
        old = self.c.leader()
        t0 = time.monotonic()
        self.fault_times.append(time.time())
        try:
            apply(old)
            during = None
            if quorum_side is not None:
                during = self.new_leader_among(quorum_side(old), t0,
                                               "%s of %s" % (what,
                                                             old.node_id))
            held = ch.hold(t0, duration)
            log("  after %.1fs of %s: %s" % (held, what, self.c.states()))
        finally:
            self.net.heal_all()
        after = self.c.wait_all_caught_up()
        log("  healed; %s leads, all caught up %.1fs after the heal" % (
            after.node_id, time.monotonic() - t0 - held))
        return old, during, after

    # --- the verdict ----------------------------------------------------
    def finish(self):
        leader = self.c.wait_all_caught_up()
        until = time.time() + AFTER_RECOVERY_S
        by_ip = {n.host: n.node_id for n in self.c.all_nodes}
        reports = []
        for job in self.jobs:
            r = ch.settle_and_report(self.rx, job["id"], LATE_BOUND_S,
                                     node=leader, until=until)
            reports.append(r)
            ex = ec.list_executions(self, leader, job["id"])
            statuses = collections.Counter(e["status"] for e in ex)
            senders = collections.Counter(
                by_ip.get(q.client[0], q.client[0])
                for q in self.rx.requests_for(job["id"]))
            log("  job %s: %s" % (job["id"][-8:], r.summary()))
            log("  job %s: executions on %s: %s; requests by sender: %s" % (
                job["id"][-8:], leader.node_id, dict(statuses),
                dict(sorted(senders.items()))))
            skipped = sorted((e["scheduled_time"], e.get("trigger"),
                              e.get("node_id"), (e.get("error") or "")[:100])
                             for e in ex if e["status"] == "skipped")
            for sk in skipped[:6]:
                log("    skipped %s (trigger %s, node %s): %r" % sk)
            by_sched = collections.defaultdict(list)
            for q in self.rx.requests_for(job["id"]):
                by_sched[ec.parse_time(q.scheduled_time)].append(q)
            twice = [(s, qs) for s, qs in sorted(by_sched.items())
                     if len(qs) > 1]
            for s, qs in twice[:6]:
                log("    %s %s: %s" % (
                    "conflict" if s in r.conflicts else "re-sent",
                    ec.format_time(s), [
                        ((q.execution_id or "-")[-8:], by_ip.get(q.client[0]),
                         "attempt %s" % q.attempt, "+%.3fs" % (q.time - s))
                        for q in qs]))
        failures = list(self.problems)
        for job, r in zip(self.jobs, reports):
            for p in r.problems(covers=self.fault_times):
                failures.append("job %s: %s" % (job["id"][-8:], p))
        if failures:
            kinds = sorted({m.group(1) for m in (
                re.match(r"(?:job \S+: )?([A-Z][A-Z ]*[A-Z])\b", p)
                for p in failures) if m})
            self.fail("%d problem(s) [%s]:\n  %s" % (
                len(failures), ", ".join(kinds), "\n  ".join(failures)))


@h.require_binary
class LeaderKill9Test(PartitionTestCase):

    TIME_BUDGET_S = 240
    KILLS = 10

    def test_repeated_leader_kill9_three_nodes(self):
        c = self.start(3)
        cycles = []
        for i in range(self.KILLS):
            r = ch.failover_cycle(c, self.rx, self.jobs[0]["id"])
            cycles.append(r)
            self.fault_times.append(r["t_kill"])
            log("kill %d/%d of %s: new leader %s after %.3fs, next run "
                "arrived %.3fs after the kill" % (
                    i + 1, self.KILLS, "+".join(r["killed"]), r["new_leader"],
                    r["new_leader_s"], r["next_run_s"]))
        # a line of its own, for `grep '^FAILOVER SUMMARY'` in ctest output
        sys.stderr.write(ch.failover_summary(cycles) + "\n")
        sys.stderr.flush()
        self.finish()


@h.require_binary
class LeaderStopTest(PartitionTestCase):

    TIME_BUDGET_S = 150
    STOPS = 3
    STOP_S = 4.0

    def test_leader_sigstop_sigcont_three_nodes(self):
        c = self.start(3)
        for i in range(self.STOPS):
            old = c.leader()
            t0 = time.monotonic()
            self.fault_times.append(time.time())
            c.freeze(old)
            try:
                self.new_leader_among(c.others(old), t0,
                                      "SIGSTOP %d/%d of %s" % (
                                          i + 1, self.STOPS, old.node_id))
                held = ch.hold(t0, self.STOP_S)
                log("  after %.1fs stopped: %s" % (
                    held, c.states(c.others(old))))
            finally:
                c.thaw(old)
            after = c.wait_all_caught_up()
            log("  SIGCONT; %s leads, %s: %s" % (after.node_id, old.node_id,
                                                 c.states([old])))
        self.finish()


@h.require_binary
class LeaderIsolatedTest(PartitionTestCase):

    TIME_BUDGET_S = 120

    def test_leader_isolated_three_nodes(self):
        c = self.start(3)
        self.partition("isolation", self.net.isolate, c.others, 5.0)
        self.finish()


@h.require_binary
class OneWayCutTest(PartitionTestCase):

    TIME_BUDGET_S = 180

    def cut_from_leader(self, leader):
        for f in self.c.others(leader):
            self.net.cut(leader, f)

    def cut_to_leader(self, leader):
        for f in self.c.others(leader):
            self.net.cut(f, leader)

    def test_leader_to_followers_dropped(self):
        c = self.start(3)
        self.partition("leader->followers cut", self.cut_from_leader,
                       c.others, 5.0)
        self.finish()

    def test_followers_to_leader_dropped(self):
        c = self.start(3)
        self.partition("followers->leader cut", self.cut_to_leader,
                       c.others, 5.0)
        self.finish()


@h.require_binary
class FiveNodeTest(PartitionTestCase):

    TIME_BUDGET_S = 180

    def test_leader_isolated_then_nothing_reaching_the_leader(self):
        c = self.start(5)
        self.partition("isolation", self.net.isolate, c.others, 8.0)

        def cut_to_leader(leader):
            for f in c.others(leader):
                self.net.cut(f, leader)
        self.partition("followers->leader cut", cut_to_leader, c.others, 8.0)
        self.finish()


@h.require_binary
class AllIsolatedTest(PartitionTestCase):

    TIME_BUDGET_S = 120

    def test_every_node_isolated_then_healed(self):
        self.start(3)
        self.partition("isolation of every node",
                       lambda leader: self.net.isolate_all(), None, 2.0)
        self.finish()


if __name__ == "__main__":
    unittest.main()
