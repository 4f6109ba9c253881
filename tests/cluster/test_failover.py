"""Leader failover under an every-second job (SPEC §3, docs/cluster.md):
the leader is killed with SIGKILL again and again; every scheduled second
still reaches the receiver, never early, within a failover bound, and a
second that arrives more than once always carries one execution id.

The bound, FAILOVER_BOUND_S = 5 s: the survivors notice the dead leader
after one election timeout, which libraft draws from [T, 2T] with T = 500 ms
here (<= 1 s); pre-vote and the vote are two loopback round trips; the new
leader commits its barrier (one more), activates the scheduler, plans the
seconds no one started as `execute_all` catch-ups and dispatches them
(milliseconds). About 1.5 s in all, the rest is margin for two shared,
loaded cores.
"""

import time
import unittest

import cluster_harness as ch
from cluster_harness import ec, h, log

FAILOVER_BOUND_S = 5.0


@h.require_binary
class FailoverTest(ch.ClusterTestCase):

    TIME_BUDGET_S = 150
    KILLS = 5

    def run_failovers(self, size, kills, victims):
        c = self.new_cluster(size)
        rx = ch.new_receiver(self)
        job = ch.create_every_second_job(self, c.leader(), rx)
        ch.first_run_after(rx, job["id"], time.time())
        kill_times = []
        for i in range(kills):
            r = ch.failover_cycle(c, rx, job["id"], victims=victims)
            kill_times.append(r["t_kill"])
            log("%d-node kill %d/%d of %s: new leader %s after %.3fs, next "
                "run %.3fs after the kill" % (size, i + 1, kills,
                                              "+".join(r["killed"]),
                                              r["new_leader"],
                                              r["new_leader_s"],
                                              r["next_run_s"]))
        report = ch.settle_and_report(rx, job["id"], FAILOVER_BOUND_S)
        log("%d-node receiver: %s" % (size, report.summary()))
        report.assert_ok(self, covers=kill_times)
        self.check_history(c.leader(), rx, job)

    def check_history(self, leader, rx, job):
        """The store agrees with the receiver: one execution per scheduled
        time, and every request belongs to one of them."""
        ec.set_enabled(self, leader, job["id"], False)
        ex = ec.wait_all_finished(self, leader, job["id"])
        scheds = [e["scheduled_time"] for e in ex]
        info = "%d executions" % len(ex)
        self.assertEqual(len(scheds), len(set(scheds)),
                         "a scheduled time was started twice; " + info)
        by_id = {e["id"]: e for e in ex}
        for r in rx.requests_for(job["id"]):
            self.assertIn(r.execution_id, by_id, "%r not in history" % r)
            self.assertEqual(
                ec.parse_time(r.scheduled_time),
                ec.parse_time(by_id[r.execution_id]["scheduled_time"]), r)
        self.assertEqual({e["status"] for e in ex}, {"success"}, info)

    def test_repeated_leader_kill9_three_nodes(self):
        self.run_failovers(3, self.KILLS, victims=1)

    def test_two_of_five_killed_at_once(self):
        self.run_failovers(5, 2, victims=2)


if __name__ == "__main__":
    unittest.main()
