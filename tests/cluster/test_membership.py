"""Membership and leadership changes (docs/cluster.md): a node joining with
--join, removing a member, transferring leadership (on request and on
SIGTERM), taking a snapshot on request, and a lagging node catching up
from a snapshot after the log was compacted.
"""

import os
import re
import threading
import time
import unittest

import cluster_harness as ch
from cluster_harness import FORWARDED, assert_ok, ec, h, log

SNAPSHOT_THRESHOLD = 64
SMALL_SNAPSHOTS = {"cluster.raft.snapshot_threshold": SNAPSHOT_THRESHOLD,
                   "cluster.raft.snapshot_trailing": 16}


def create_jobs(test, node, n, prefix="job"):
    return [ec.create_job(test, node, name=ec.unique(prefix),
                          schedule=h.YEARLY,
                          webhook={"url": h.WEBHOOK_URL})["id"]
            for _ in range(n)]


def member(members, node_id):
    return next((m for m in members if m.get("id") == node_id), None)


@h.require_binary
class JoinTest(ch.ClusterTestCase):

    TIME_BUDGET_S = 90

    def test_join_adds_a_voter_with_every_job(self):
        # A low snapshot threshold: the log is compacted before n4 joins, so
        # it starts from a snapshot.
        c = self.new_cluster(3, config=SMALL_SNAPSHOTS)
        leader = c.leader()
        jobs = create_jobs(self, leader, 3 * SNAPSHOT_THRESHOLD)
        via = c.followers()[0]
        n4 = c.add_node_via_join(c.url(via))

        c.wait_member_list(
            leader, lambda ms: (member(ms, "n4") or {}).get("role") == "voter",
            what="n4 listed as voter", watch=[n4])
        n4.wait_ready(ch.DEADLINE_S)
        ch.wait_has_jobs(n4, jobs)
        members = c.cluster_nodes(leader)
        m4 = member(members, "n4")
        self.assertEqual(len(members), 4, repr(members))
        self.assertEqual(m4["raft_address"], c.raft_address(n4), repr(m4))
        self.assertEqual(m4["http_address"], "%s:%d" % (ch.HOST, n4.http_port),
                         repr(m4))

        # New writes reach it, and it takes writes itself (forwarded).
        jobs += create_jobs(self, leader, 1) + create_jobs(self, n4, 1)
        ch.wait_has_jobs(n4, jobs)
        for n in c.live():
            ch.wait_has_jobs(n, jobs)

        # Joining again with the same id and address is a no-op.
        again = {"id": "n4", "raft_address": c.raft_address(n4),
                 "http_address": "%s:%d" % (ch.HOST, n4.http_port)}
        assert_ok(self, leader.api("POST", "/api/v1/cluster/join", again), 200,
                  "join again")
        self.assertEqual(len(c.cluster_nodes(leader)), 4)

        # A restart of a member ignores --join.
        c.restart(n4)
        c.wait_caught_up(n4)
        self.assertEqual(len(c.cluster_nodes(c.leader())), 4)


@h.require_binary
class RemoveTest(ch.ClusterTestCase):

    TIME_BUDGET_S = 60

    def test_remove_member(self):
        c = self.new_cluster(3)
        leader = c.leader()
        gone, stay = c.followers()
        jobs = create_jobs(self, leader, 3)

        # The leader does not remove itself.
        h.assert_error(self, leader.api(
            "DELETE", "/api/v1/cluster/nodes/%s" % leader.node_id), 409,
            "CONFLICT")

        assert_ok(self, leader.api("DELETE", "/api/v1/cluster/nodes/%s" %
                                   gone.node_id), 200, "remove " + gone.node_id)
        c.forget(gone)
        for n in (leader, stay):
            c.wait_member_list(
                n, lambda ms: member(ms, gone.node_id) is None and len(ms) == 2,
                what="%s gone" % gone.node_id)

        # Two voters left, both up: writes still commit, from either one.
        jobs += create_jobs(self, leader, 2) + create_jobs(self, stay, 2)
        ch.wait_has_jobs(stay, jobs)
        self.assertIs(c.leader(), leader)

        # The removed node still runs; it is not added back. (A check over
        # a window: a dozen election timeouts in which it could try.)
        self.assertTrue(gone.running(), gone.log_tail())
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            ms = c.cluster_nodes(leader)
            self.assertIsNone(member(ms, gone.node_id), repr(ms))
            self.assertEqual(len(ms), 2, repr(ms))
            time.sleep(0.1)
        jobs += create_jobs(self, stay, 1)
        ch.wait_has_jobs(leader, jobs)
        c.kill9(gone)


@h.require_binary
class LeadershipTest(ch.ClusterTestCase):

    TIME_BUDGET_S = 90

    def start_writers(self, node, n=2):
        """Writers creating jobs on `node` until the test stops them."""
        writers = [ch.JobWriter(node, "%s%d" % (node.node_id, i))
                   for i in range(n)]
        for w in writers:
            w.start()
            self.addCleanup(w.stop)
        return writers

    def stop_writers(self, c, writers):
        """Stops them; every acknowledged job is on every live node."""
        for w in writers:
            w.stop()
        acked = [i for w in writers for i in w.acked]
        log("writers: %d acknowledged, statuses %s, %d transport errors" % (
            len(acked), [w.statuses for w in writers],
            sum(w.errors for w in writers)))
        self.assertTrue(acked, "no write succeeded: %s" % writers[0].first_failure)
        for n in c.live():
            ch.wait_has_jobs(n, acked)

    def test_transfer_leadership(self):
        c = self.new_cluster(3)
        rx = ch.new_receiver(self)
        leader = c.leader()
        target = c.followers()[0]
        job = ch.create_every_second_job(self, leader, rx)
        ch.first_run_after(rx, job["id"], time.time())
        # Writes keep coming in while leadership moves (a rolling restart).
        writers = self.start_writers(leader)
        r = c.api(leader, "POST", "/api/v1/cluster/transfer-leadership",
                  {"id": target.node_id})
        data = assert_ok(self, r, 200, "transfer to " + target.node_id)
        self.assertEqual(data["leader"]["id"], target.node_id, repr(data))
        self.assertIs(c.leader(), target)

        # Without an id the most up-to-date voter is chosen: someone else.
        r = c.api(target, "POST", "/api/v1/cluster/transfer-leadership")
        assert_ok(self, r, 200, "transfer without id")
        h.wait_for(lambda: c.leader() is not target, ch.DEADLINE_S,
                   "leadership moved away from %s" % target.node_id)
        self.stop_writers(c, writers)
        self.assertEqual(len(c.live()), 3, "a node died:\n" + c.describe())
        # Both former leaders had runs starting when they stepped down;
        # neither keeps working on them (it once spun on their outcomes).
        assert_ok(self, c.api(c.leader(), "POST", "/api/v1/jobs/%s/disable"
                              % job["id"]), 200, "disable")
        ch.assert_idle(self, [leader, target])

    def test_sigterm_on_leader_hands_over(self):
        c = self.new_cluster(3)
        rx = ch.new_receiver(self)
        leader = c.leader()
        job = ch.create_every_second_job(self, leader, rx)
        ch.first_run_after(rx, job["id"], time.time())
        others = [n for n in c.live() if n is not leader]
        writers = self.start_writers(others[0])

        exit_code = []
        t0 = time.time()
        stopper = threading.Thread(target=lambda: exit_code.append(
            c.stop(leader)))
        stopper.start()
        new = c.leader(nodes=others, interval=0.01)
        t_leader = time.time() - t0
        run = ch.first_run_after(rx, job["id"], t0)
        stopper.join(60)
        log("SIGTERM on leader %s: new leader %s after %.3fs, next run %.3fs "
            "after the signal (election timeout %s); exit code %s" % (
                leader.node_id, new.node_id, t_leader, run.time - t0,
                c.config["cluster.raft.election_timeout"], exit_code))
        self.assertEqual(exit_code, [0], "graceful exit\n" + leader.log_tail())

        # The job keeps firing under the new leader.
        report = ch.settle_and_report(rx, job["id"], 5.0)
        log("after SIGTERM handover: " + report.summary())
        self.stop_writers(c, writers)
        c.restart(leader)
        c.wait_caught_up(leader)


@h.require_binary
class SnapshotTest(ch.ClusterTestCase):

    TIME_BUDGET_S = 90
    # ~200 small entries and one snapshot over loopback take well under a
    # second; libraft's install-snapshot timeout (30 s by default) must not
    # be what lets the node catch up.
    CATCH_UP_S = 15

    def test_snapshot_on_request(self):
        c = self.new_cluster(3)
        leader = c.leader()
        create_jobs(self, leader, 5)
        for n in [leader] + c.followers():
            committed = c.status(leader)["commit_index"]
            r = c.api(n, "POST", "/api/v1/cluster/snapshot")
            data = assert_ok(self, r, 200, "snapshot through " + n.node_id)
            # Taken on the leader; a follower forwards the request.
            if n is leader:
                self.assertNotIn(FORWARDED, r.headers)
            else:
                self.assertEqual(r.headers.get(FORWARDED), n.node_id)
            self.assertIsInstance(data.get("index"), int, repr(data))
            self.assertGreaterEqual(data["index"], committed, repr(data))

    def test_lagging_node_catches_up_from_snapshot(self):
        c = self.new_cluster(3, config=SMALL_SNAPSHOTS)
        leader = c.leader()
        jobs = create_jobs(self, leader, 10)
        lagging = c.followers()[0]
        c.wait_caught_up(lagging)
        behind = c.status(lagging)["applied_index"]
        c.kill9(lagging)

        jobs += create_jobs(self, leader, 3 * SNAPSHOT_THRESHOLD, "while-down")
        committed = c.status(leader)["commit_index"]
        self.assertGreater(committed, behind + 2 * SNAPSHOT_THRESHOLD)

        c.restart(lagging)  # returns once /ready is 200
        applied_when_ready = c.status(lagging)["applied_index"]
        t0 = time.monotonic()
        c.wait_caught_up(lagging, timeout=self.CATCH_UP_S)
        ch.wait_has_jobs(lagging, jobs)
        log("node %s caught up from index %d to %d in %.2fs after /ready" % (
            lagging.node_id, behind, committed, time.monotonic() - t0))
        # Evidence that it was a snapshot, not the log: the restore line.
        restored = [int(i) for i in re.findall(
            r"restored snapshot at index (\d+)", lagging.log_tail(10000))]
        self.assertTrue([i for i in restored if i > behind],
                        "no snapshot installed past index %d:\n%s" % (
                            behind, lagging.log_tail()))
        # /ready is 200 only once everything the cluster committed is
        # applied (docs/cluster.md); nothing was written since `committed`.
        self.assertGreaterEqual(
            applied_when_ready, committed,
            "/ready said 200 on %s at applied index %d while the cluster had "
            "committed %d" % (lagging.node_id, applied_when_ready, committed))


if __name__ == "__main__":
    unittest.main()


@h.require_binary
class RestoreAndGrowTest(ch.ClusterTestCase):
    """A cluster restored from a backup grows with --join: the joiner gets
    the restored state (by snapshot: no log entry explains it)."""

    TIME_BUDGET_S = 120

    def test_joiner_of_a_restored_cluster_has_every_job(self):
        src = self.new_cluster(1)
        jobs = create_jobs(self, src.leader(), 5, prefix="restored")
        backup = src.leader().api("GET", "/api/v1/cluster/backup")
        self.assertEqual(backup.status, 200, repr(backup))
        work = h.make_temp_dir("chronos-restore-grow-")
        self.addCleanup(h.remove_temp_dir, work)
        path = os.path.join(work, "backup.bin")
        with open(path, "wb") as f:
            f.write(backup.raw)
        for n in src.all_nodes:
            n.stop()

        data = os.path.join(work, "r1")
        rc, out = h.run_chronos(["restore", path, "--data-dir", data])
        self.assertEqual(rc, 0, out)
        r1 = h.Node(data_dir=data, node_id="r1",
                    extra_args=["--config", src.config_path])
        self.addCleanup(r1.cleanup)
        r1.start_ready()
        ch.wait_has_jobs(r1, jobs)

        r2 = h.Node(node_id="r2", extra_args=[
            "--config", src.config_path,
            "--join", "http://%s:%d" % (ch.HOST, r1.http_port)])
        self.addCleanup(r2.cleanup)
        r2.start()
        r2.wait_ready(ch.DEADLINE_S)
        ch.wait_has_jobs(r2, jobs)
        # Later writes reach it too.
        jobs += create_jobs(self, r1, 1, prefix="after")
        ch.wait_has_jobs(r2, jobs)

        # A restored data dir never joins another cluster.
        other = os.path.join(work, "r3")
        rc, out = h.run_chronos(["restore", path, "--data-dir", other])
        self.assertEqual(rc, 0, out)
        rc, out = h.run_chronos([
            "serve", "--data-dir", other, "--node-id", "r3",
            "--http-address", "%s:%d" % (ch.HOST, ch.pick_port()),
            "--raft-address", "%s:%d" % (ch.HOST, ch.pick_port()),
            "--join", "http://%s:%d" % (ch.HOST, r1.http_port)])
        self.assertNotEqual(rc, 0, out)
        self.assertIn("cluster.join", out)
