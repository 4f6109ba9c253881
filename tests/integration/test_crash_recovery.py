"""Crash recovery of in-flight executions (SPEC §3: committed before the
call; re-dispatched after a crash with the same execution id, attempt + 1;
in history exactly once).

The node is killed with SIGKILL while a slow receiver holds the run's
request; the answer is never delivered. After a restart on the same data
directory the run must be sent again and end `success`, once.
"""

import math
import time
import unittest

import chronos_harness as h
import exec_common as ec
from chronos_harness import assert_ok
from receiver import Behaviour, new_receiver


@h.require_binary
class CrashRecoveryTest(unittest.TestCase):

    def setUp(self):
        self.rx = new_receiver(self)
        self.rx.script("/hook", Behaviour(hang=True))  # first call held
        self.node = ec.start_node(self)

    def crash_and_recover(self, job, eid):
        first = self.rx.wait_for(
            lambda rs: [r for r in rs if r.execution_id == eid], 20,
            "the run's first request")[0]
        self.assertEqual(first.attempt, 1, repr(first))
        self.node.kill9()
        self.rx.release()  # the held request's answer goes nowhere
        self.node.start_ready()
        again = self.rx.wait_for(
            lambda rs: [r for r in rs if r.execution_id == eid and
                        r.seq > first.seq], 30,
            "the same execution re-dispatched after restart")[0]
        self.assertGreater(again.attempt, first.attempt, repr(again))
        self.assertEqual(again.headers.get("Idempotency-Key"), eid)
        self.assertEqual(again.scheduled_time, first.scheduled_time)
        e = ec.wait_execution_status(self, self.node, job["id"], eid,
                                     timeout=30)
        self.assertEqual(e["status"], "success", repr(e))
        self.assertGreaterEqual(e["attempts"], again.attempt, repr(e))
        ex = ec.list_executions(self, self.node, job["id"])
        self.assertEqual([x["id"] for x in ex], [eid],
                         "history should hold the run exactly once: %r" % ex)
        # Every request the receiver got for the job carried this one id.
        self.assertEqual({r.execution_id for r in
                          self.rx.requests_for(job["id"])}, {eid})
        running = assert_ok(self, self.node.api(
            "GET", "/api/v1/executions?status=running"))["executions"]
        self.assertNotIn(eid, [x["id"] for x in running])
        return e

    def test_manual_run_redispatched_after_kill9(self):
        job = ec.create_job(self, self.node, schedule=h.YEARLY,
                            webhook=ec.webhook(self.rx), timeout="2m",
                            retry_policy=dict(ec.FAST_RETRY))
        started = assert_ok(self, ec.trigger(self.node, job["id"]), 202)
        e = self.crash_and_recover(job, started["id"])
        self.assertEqual(e["trigger"], "manual")

    def test_at_run_redispatched_after_kill9(self):
        at = math.floor(time.time()) + 3
        job = ec.create_job(self, self.node,
                            schedule="@at %s" % ec.format_time(at),
                            webhook=ec.webhook(self.rx), timeout="2m",
                            retry_policy=dict(ec.FAST_RETRY))
        first = self.rx.wait_count(1, 20, job["id"])[0]
        self.assertEqual(ec.parse_time(first.scheduled_time), at)
        e = self.crash_and_recover(job, first.execution_id)
        self.assertEqual(e["trigger"], "schedule")
        self.assertIs(ec.get_job(self, self.node, job["id"])["enabled"], False)


if __name__ == "__main__":
    unittest.main()
