"""GET /metrics (docs/api.md "Metrics") and a schedule-lag measurement with
100 every-second jobs (issue 3's closing note: p50/p99 of the lag).

The lag test PRINTS its numbers; it asserts only that runs happened.
"""

import time
import unittest

import chronos_harness as h
import exec_common as ec
from receiver import new_receiver

FAMILIES = [
    "chronos_executions_total", "chronos_execution_duration_seconds",
    "chronos_schedule_lag_seconds", "chronos_missed_runs_total",
    "chronos_retries_total", "chronos_circuit_breaker_state",
    "chronos_jobs_total", "chronos_raft_is_leader", "chronos_raft_term",
    "chronos_raft_commit_index", "chronos_raft_applied_index",
    "chronos_raft_peers", "chronos_http_requests_total",
    "chronos_http_request_duration_seconds",
]
HISTOGRAMS = ["chronos_execution_duration_seconds",
              "chronos_schedule_lag_seconds",
              "chronos_http_request_duration_seconds"]
LAG_JOBS = 100
LAG_WINDOW_S = 10


@h.require_binary
class MetricsTest(unittest.TestCase):

    def setUp(self):
        self.node = ec.start_node(self)

    def test_metrics_exposes_documented_families(self):
        rx = new_receiver(self)
        # Something to count: one scheduled job for a few runs, a failure.
        job = ec.create_job(self, self.node, schedule="* * * * * *",
                            webhook=ec.webhook(rx))
        rx.wait_count(2, 15, job["id"])
        ec.set_enabled(self, self.node, job["id"], False)
        ec.wait_all_finished(self, self.node, job["id"])

        r = self.node.api("GET", "/metrics")
        self.assertEqual(r.status, 200, repr(r))
        ctype = r.headers.get("content-type", "")
        self.assertTrue(ctype.startswith("text/plain"), ctype)
        self.assertIn("version=0.0.4", ctype)
        samples, types = ec.parse_metrics(r.text)
        names = {n for n, _, _ in samples}
        for fam in FAMILIES:
            self.assertIn(fam, types, "no # TYPE line for %s" % fam)
        for fam in HISTOGRAMS:
            self.assertEqual(types[fam], "histogram", fam)
            for suffix in ("_bucket", "_sum", "_count"):
                self.assertIn(fam + suffix, names, fam + suffix)
            les = [l.get("le") for n, l, _ in samples if n == fam + "_bucket"]
            self.assertIn("+Inf", les, fam)
        for fam in ("chronos_executions_total", "chronos_missed_runs_total",
                    "chronos_retries_total", "chronos_http_requests_total"):
            self.assertEqual(types[fam], "counter", fam)
        for fam in ("chronos_jobs_total", "chronos_raft_is_leader",
                    "chronos_circuit_breaker_state"):
            self.assertEqual(types[fam], "gauge", fam)

        self.assertGreater(ec.metric_value(samples, "chronos_executions_total",
                                           status="success") or 0, 0)
        self.assertGreater(ec.metric_value(
            samples, "chronos_schedule_lag_seconds_count") or 0, 0)
        self.assertGreater(ec.metric_value(
            samples, "chronos_execution_duration_seconds_count") or 0, 0)
        self.assertEqual(ec.metric_value(samples, "chronos_raft_is_leader"), 1)
        self.assertGreaterEqual(ec.metric_value(samples,
                                                "chronos_jobs_total") or 0, 1)
        http = [(l, v) for n, l, v in samples
                if n == "chronos_http_requests_total"]
        self.assertTrue(http)
        for l, _ in http:
            self.assertEqual(set(l), {"method", "route", "status"}, repr(l))
        # Routes are templates, not raw paths (bounded cardinality).
        self.assertFalse([l for l, _ in http if job["id"] in l["route"]],
                         repr(http))

    def test_schedule_lag_100_jobs_every_second(self):
        rx = new_receiver(self)
        t0 = time.time()
        jobs = []
        for i in range(LAG_JOBS):
            jobs.append(ec.create_job(self, self.node,
                                      name=ec.unique("lag%03d" % i),
                                      schedule="* * * * * *",
                                      webhook=ec.webhook(rx),
                                      retry_policy=dict(ec.NO_RETRY)))
        created = time.time()
        # Measure from the next whole second on, for LAG_WINDOW_S seconds.
        start = int(created) + 2
        end = start + LAG_WINDOW_S
        time.sleep(max(0.0, start - time.time() - 0.3))
        before, _ = ec.scrape(self, self.node)
        # Only the newest requests are looked at: the predicate runs under
        # the receiver's lock on every arrival.
        rx.wait_for(lambda rs: any(ec.parse_time(r.scheduled_time) >= end
                                   for r in rs[-20:] if r.scheduled_time),
                    LAG_WINDOW_S + 30, "runs scheduled after the window")
        after, _ = ec.scrape(self, self.node)

        reqs = [r for r in rx.requests
                if r.scheduled_time and
                start <= ec.parse_time(r.scheduled_time) < end]
        lags = [r.time - ec.parse_time(r.scheduled_time) for r in reqs]
        expected = LAG_JOBS * LAG_WINDOW_S
        hist = ec.bucket_delta(
            ec.histogram_buckets(after, "chronos_schedule_lag_seconds"),
            ec.histogram_buckets(before, "chronos_schedule_lag_seconds"))
        n_hist = hist[-1][1] if hist else 0
        early = [l for l in lags if l < -0.002]
        print("\n  lag measurement: %d jobs x %ds every second; creating them "
              "took %.1fs" % (LAG_JOBS, LAG_WINDOW_S, created - t0))
        print("  receiver: %d of %d expected runs in the window; lag "
              "(arrival - scheduled) p50 %.1f ms, p99 %.1f ms, max %.1f ms; "
              "early %d" % (len(lags), expected, 1000 * ec.quantile(lags, 0.5),
                            1000 * ec.quantile(lags, 0.99),
                            1000 * max(lags or [float("nan")]), len(early)))
        print("  chronos_schedule_lag_seconds (delta over the window, %d "
              "observations): p50 %.1f ms, p99 %.1f ms" % (
                  n_hist, 1000 * ec.histogram_quantile(0.5, hist),
                  1000 * ec.histogram_quantile(0.99, hist)))
        print("  histogram buckets (le: count): %s" % ", ".join(
            "%s: %d" % (le, c) for le, c in hist))
        self.assertGreater(len(reqs), 0, "no run in the window")
        self.assertGreater(n_hist, 0, "histogram did not move")


if __name__ == "__main__":
    unittest.main()
