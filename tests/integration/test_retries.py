"""Retries, timeouts, Retry-After and the circuit breaker against the real
binary and local receivers (SPEC §3 "Retries", §4 circuit breaker;
docs/api.md "Executions", "Metrics").

Runs are started with POST /jobs/{id}/trigger?wait=true on jobs whose own
schedule (yearly) never fires during the test. Each test has its own
receiver, hence its own breaker endpoint.
"""

import time
import unittest

import chronos_harness as h
import exec_common as ec
from receiver import Behaviour, new_receiver

EPS = 0.01
OPEN_S = 3.0  # breaker open period for this module's node

CONFIG = """
dispatcher:
  circuit_breaker:
    failure_threshold: 5
    open_duration: 3s
    success_threshold: 2
"""


@h.require_binary
class RetriesTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.node = ec.start_node(cls, config=CONFIG, class_level=True)

    def create(self, rx, **fields):
        fields.setdefault("schedule", h.YEARLY)
        fields.setdefault("webhook", ec.webhook(rx))
        fields.setdefault("retry_policy", dict(ec.FAST_RETRY))
        fields.setdefault("timeout", "5s")
        return ec.create_job(self, self.node, **fields)

    def assert_one_execution_across_attempts(self, reqs, job):
        eids = {r.execution_id for r in reqs}
        keys = {r.headers.get("Idempotency-Key") for r in reqs}
        self.assertEqual(len(eids), 1, "execution ids: %r" % reqs)
        self.assertEqual(keys, eids, "Idempotency-Key != execution id: %r" %
                         [(r.execution_id, r.headers.get("Idempotency-Key"))
                          for r in reqs])
        self.assertEqual([r.attempt for r in reqs],
                         list(range(1, len(reqs) + 1)),
                         "X-Chronos-Attempt sequence: %r" % reqs)
        for r in reqs:
            self.assertEqual(r.job_id, job["id"])

    # --- 5xx then success ----------------------------------------------------
    def test_503_503_200_three_attempts_growing_gaps_one_key(self):
        rx = new_receiver(self)
        rx.script("/hook", Behaviour(status=503), Behaviour(status=503))
        job = self.create(rx, retry_policy={
            "max_attempts": 4, "initial_interval": "300ms",
            "max_interval": "5s", "multiplier": 2, "jitter": 0})
        ex = ec.trigger_wait(self, self.node, job["id"])
        reqs = rx.requests_for(job["id"])
        self.assertEqual(len(reqs), 3, repr(reqs))
        self.assert_one_execution_across_attempts(reqs, job)
        self.assertEqual(reqs[0].execution_id, ex["id"])
        gaps = [b.time - a.time for a, b in zip(reqs, reqs[1:])]
        self.assertGreaterEqual(gaps[0] + EPS, 0.3, "gaps %r" % gaps)
        self.assertGreaterEqual(gaps[1] + EPS, 0.6, "gaps %r" % gaps)
        self.assertGreater(gaps[1], gaps[0], "gaps not growing: %r" % gaps)
        self.assertLess(gaps[1], 0.6 + 1.5, "gaps %r" % gaps)
        self.assertEqual(ex["status"], "success", repr(ex))
        self.assertEqual(ex["attempts"], 3, repr(ex))
        self.assertEqual(ex["status_code"], 200, repr(ex))
        self.assertEqual(ex["trigger"], "manual", repr(ex))
        print("\n  retry gaps: %s" % ["%.3f" % g for g in gaps])

    # --- 4xx -----------------------------------------------------------------
    def test_404_is_not_retried(self):
        rx = new_receiver(self, default=Behaviour(status=404, body="nope"))
        job = self.create(rx)
        ex = ec.trigger_wait(self, self.node, job["id"])
        self.assertEqual(ex["status"], "failed", repr(ex))
        self.assertEqual(ex["attempts"], 1, repr(ex))
        self.assertEqual(ex["status_code"], 404, repr(ex))
        self.assertEqual(ex["response"], "nope", repr(ex))
        # Observation window longer than the first retry interval (200 ms).
        time.sleep(1.0)
        reqs = rx.requests_for(job["id"])
        self.assertEqual(len(reqs), 1, repr(reqs))

    # --- timeout -------------------------------------------------------------
    def test_hanging_receiver_times_out_and_is_retried(self):
        rx = new_receiver(self)
        rx.script("/hook", Behaviour(hang=True))
        job = self.create(rx, timeout="500ms")
        ex = ec.trigger_wait(self, self.node, job["id"])
        reqs = rx.requests_for(job["id"])
        self.assertEqual(len(reqs), 2, repr(reqs))
        self.assert_one_execution_across_attempts(reqs, job)
        gap = reqs[1].time - reqs[0].time
        # 500 ms timeout, then the 200 ms first retry interval.
        self.assertGreaterEqual(gap + EPS, 0.7, "gap %.3f" % gap)
        self.assertEqual(ex["status"], "success", repr(ex))
        self.assertEqual(ex["attempts"], 2, repr(ex))
        rx.release()

    # --- 429 + Retry-After ---------------------------------------------------
    def test_429_retry_after_is_honoured(self):
        rx = new_receiver(self)
        rx.script("/hook", Behaviour(status=429, headers={"Retry-After": "2"}))
        job = self.create(rx)
        ex = ec.trigger_wait(self, self.node, job["id"])
        reqs = rx.requests_for(job["id"])
        self.assertEqual(len(reqs), 2, repr(reqs))
        self.assert_one_execution_across_attempts(reqs, job)
        gap = reqs[1].time - reqs[0].time
        self.assertGreaterEqual(gap + EPS, 2.0,
                                "retried %.3fs after a 429 with Retry-After: 2"
                                % gap)
        self.assertLess(gap, 4.0, "gap %.3f" % gap)
        self.assertEqual(ex["status"], "success", repr(ex))
        self.assertEqual(ex["attempts"], 2, repr(ex))

    # --- circuit breaker -----------------------------------------------------
    def breaker(self, rx):
        b = ec.breaker_state(self, self.node, rx)
        samples, _ = ec.scrape(self, self.node)
        metric = [(l, v) for n, l, v in samples
                  if n == "chronos_circuit_breaker_state" and
                  str(rx.port) in l.get("target", "")]
        return b, metric

    def test_circuit_breaker_opens_half_opens_and_closes(self):
        rx = new_receiver(self, default=Behaviour(status=500))
        job = self.create(rx, retry_policy=dict(ec.NO_RETRY))
        for i in range(5):
            ex = ec.trigger_wait(self, self.node, job["id"])
            self.assertEqual(ex["status"], "failed", repr(ex))
            self.assertEqual(ex["status_code"], 500, "run %d: %r" % (i + 1, ex))
        reqs = rx.requests_for(job["id"])
        self.assertEqual(len(reqs), 5, repr(reqs))
        opened = reqs[-1].done_time

        b, metric = self.breaker(rx)
        self.assertIsNotNone(b, "breaker of %s not in cluster/status: %r" %
                             (rx.url(), ec.cluster_status(self, self.node)))
        self.assertEqual(b["state"], "open", repr(b))
        self.assertEqual(len(metric), 1, "chronos_circuit_breaker_state for "
                         "%s: %r" % (rx.url(), metric))
        self.assertEqual(metric[0][1], 2, repr(metric))

        # While open: the run fails without reaching the receiver.
        ex = ec.trigger_wait(self, self.node, job["id"])
        refused_done = time.time()
        self.assertLess(refused_done, opened + OPEN_S,
                        "test too slow: the open period ended before the "
                        "refused run finished")
        self.assertEqual(ex["status"], "failed", repr(ex))
        self.assertEqual(len(rx.requests_for(job["id"])), 5,
                         "a call reached the receiver while the breaker was "
                         "open: %r" % rx.requests_for(job["id"]))
        self.assertTrue(ex.get("error"), "refused run without error: %r" % ex)

        # After the open period: a probe goes through (receiver now healthy).
        rx.set_default(Behaviour(status=200))
        # The breaker opened when chronos recorded the 5th failure, a moment
        # after the receiver answered: leave a margin.
        time.sleep(max(0.0, opened + OPEN_S + 1.0 - time.time()))
        ex = ec.trigger_wait(self, self.node, job["id"])
        self.assertEqual(ex["status"], "success", repr(ex))
        self.assertEqual(len(rx.requests_for(job["id"])), 6)
        b, metric = self.breaker(rx)
        self.assertEqual(b["state"], "half_open", repr(b))
        self.assertEqual(metric[0][1], 1, repr(metric))

        ex = ec.trigger_wait(self, self.node, job["id"])
        self.assertEqual(ex["status"], "success", repr(ex))
        self.assertEqual(len(rx.requests_for(job["id"])), 7)
        b, metric = self.breaker(rx)
        self.assertEqual(b["state"], "closed", repr(b))
        self.assertEqual(metric[0][1], 0, repr(metric))


if __name__ == "__main__":
    unittest.main()
