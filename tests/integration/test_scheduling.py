"""Scheduled runs against the real binary and a local receiver (SPEC §2, §3,
§4; docs/api.md "Executions"): every-second cron, 5-field cron, @every,
jitter, @at, and the execution history they leave.

One node serves the class; each test has its own receiver and jobs, and
disables its jobs when done so they do not load the others.
"""

import math
import time
import unittest

import chronos_harness as h
import exec_common as ec
from chronos_harness import assert_ok
from receiver import Receiver, new_receiver

EPS = 0.002  # clock rounding between the server's and our time.time()


@h.require_binary
class SchedulingTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.node = ec.start_node(cls, class_level=True)
        # The 5-field job is created first so its (up to 60 s) wait for the
        # next minute overlaps the other tests; test_zz_* checks it last.
        cls.minute_rx = Receiver()
        cls.addClassCleanup(cls.minute_rx.close)
        r = cls.node.api("POST", "/api/v1/jobs", {
            "name": ec.unique("minutely"), "schedule": "* * * * *",
            "webhook": {"url": cls.minute_rx.url()}})
        assert r.status == 201, r
        cls.minute_job = r.json["data"]

    def create(self, rx, **fields):
        fields.setdefault("webhook", ec.webhook(rx))
        job = ec.create_job(self, self.node, **fields)
        self.addCleanup(self.node.api, "POST",
                        "/api/v1/jobs/%s/disable" % job["id"])
        return job

    def assert_spec_headers(self, req, job):
        hd = req.headers
        self.assertTrue((hd.get("User-Agent") or "").startswith("chronos/"),
                        "User-Agent of %r: %r" % (req, hd.get("User-Agent")))
        self.assertEqual(hd.get("X-Chronos-Job-ID"), job["id"], repr(req))
        self.assertRegex(hd.get("X-Chronos-Execution-ID") or "", ec.ANY_UUID_RE,
                         repr(req))
        self.assertRegex(hd.get("X-Chronos-Scheduled-Time") or "",
                         h.RFC3339_RE, repr(req))
        self.assertEqual(hd.get("X-Chronos-Attempt"), "1", repr(req))
        self.assertEqual(hd.get("Idempotency-Key"),
                         hd.get("X-Chronos-Execution-ID"), repr(req))

    # --- every second --------------------------------------------------------
    def test_every_second_cron_fires_once_per_second_never_early(self):
        rx = new_receiver(self)
        job = self.create(rx, schedule="* * * * * *")
        created = ec.parse_time(job["created_at"])
        first = math.floor(created) + 1          # first second after creation
        last = first + 10
        rx.wait_for(lambda reqs: any(
            ec.parse_time(r.scheduled_time) >= last for r in reqs
            if r.job_id == job["id"]), 30, "a run scheduled at >= %s" %
            ec.format_time(last))
        ec.set_enabled(self, self.node, job["id"], False)
        stopped = time.time()
        reqs = rx.requests_for(job["id"])

        by_second = {}
        exec_ids = {}
        for r in reqs:
            self.assert_spec_headers(r, job)
            s = ec.parse_time(r.scheduled_time)
            self.assertEqual(s, math.floor(s),
                             "scheduled time not a whole second: %r" % r)
            self.assertGreater(s, created, "run before creation: %r" % r)
            self.assertLessEqual(s, stopped, "run after disable: %r" % r)
            self.assertGreaterEqual(r.time + EPS, s,
                                    "arrived %.3fs EARLY: %r" % (s - r.time, r))
            by_second.setdefault(int(s), []).append(r)
            self.assertNotIn(r.execution_id, exec_ids,
                             "execution id seen twice: %r and %r" %
                             (exec_ids.get(r.execution_id), r))
            exec_ids[r.execution_id] = r
        # The interior of the window: every second exactly once (the first
        # and last boundary seconds may be absent).
        for s in range(first + 1, last):
            got = by_second.get(s, [])
            self.assertEqual(len(got), 1, "second %s: %d request(s) %r; all: %r"
                             % (ec.format_time(s), len(got), got, reqs))
        for s, got in by_second.items():
            self.assertEqual(len(got), 1, "second %s duplicated: %r" %
                             (ec.format_time(s), got))
        lags = sorted(r.time - ec.parse_time(r.scheduled_time) for r in reqs)
        print("\n  every-second job: %d runs, lag min %.3fs median %.3fs max "
              "%.3fs" % (len(lags), lags[0], lags[len(lags) // 2], lags[-1]))

    # --- @every --------------------------------------------------------------
    def wait_planned_ahead(self, job, min_lead_s):
        """A run of `job` listed as running while its scheduled time is
        still at least `min_lead_s` ahead (scheduler.lookahead, 500 ms by
        default, commits starts ahead of their fire time)."""
        path = "/api/v1/jobs/%s/executions?status=running" % job["id"]

        def planned_ahead():
            now = time.time()
            r = self.node.api("GET", path)
            for e in (r.json["data"]["executions"] if r.status == 200 else []):
                if ec.parse_time(e["scheduled_time"]) > now + min_lead_s:
                    return e
            return None
        return h.wait_for(planned_ahead, 30, "a run listed before its time",
                          interval=0.02)

    def test_runs_are_committed_ahead_and_sent_at_their_time(self):
        """The start is committed before the fire time; the run is listed
        as running with started_at = its scheduled time, and its request
        arrives no earlier than that time."""
        rx = new_receiver(self)
        job = self.create(rx, schedule="*/2 * * * * *", concurrency="allow")
        ahead = self.wait_planned_ahead(job, 0)
        self.assertEqual(ec.parse_time(ahead["started_at"]),
                         ec.parse_time(ahead["scheduled_time"]), repr(ahead))
        req = rx.wait_for(lambda reqs: next(
            (r for r in reqs if r.execution_id == ahead["id"]), None), 30,
            "the request of %s" % ahead["id"])
        self.assertGreaterEqual(req.time + EPS,
                                ec.parse_time(ahead["scheduled_time"]),
                                "arrived early: %r" % req)

    def test_run_committed_ahead_is_not_sent_once_its_job_is_disabled(self):
        """SPEC §1: a paused job has no scheduled runs. A run committed
        ahead of its time whose job is disabled before that time is never
        sent; it ends cancelled."""
        rx = new_receiver(self)
        job = self.create(rx, schedule="*/2 * * * * *", concurrency="allow")
        ahead = self.wait_planned_ahead(job, 0.25)
        ec.set_enabled(self, self.node, job["id"], False)
        path = "/api/v1/jobs/%s/executions/%s" % (job["id"], ahead["id"])
        done = h.wait_for(lambda: (lambda r: r.json["data"] if r.status == 200
                                   and r.json["data"]["status"] != "running"
                                   else None)(self.node.api("GET", path)),
                          30, "execution %s to end" % ahead["id"])
        self.assertEqual(done["status"], "cancelled", repr(done))
        # Past its fire time (plus slack) and still no request for it.
        fire = ec.parse_time(ahead["scheduled_time"])
        time.sleep(max(0.0, fire + 1.0 - time.time()))  # until a clock time
        self.assertEqual([r for r in rx.requests_for(job["id"])
                          if r.execution_id == ahead["id"]], [])

    def test_every_2s_fires_every_2s_anchored_at_creation(self):
        rx = new_receiver(self)
        job = self.create(rx, schedule="@every 2s")
        created = ec.parse_time(job["created_at"])
        self.assertAlmostEqual(ec.parse_time(job["next_run"]), created + 2,
                               delta=0.001, msg="next_run of %r" % job)
        reqs = rx.wait_count(4, 20, job["id"])
        ec.set_enabled(self, self.node, job["id"], False)
        reqs = reqs[:4]
        scheds = [ec.parse_time(r.scheduled_time) for r in reqs]
        for k, s in enumerate(scheds, start=1):
            self.assertAlmostEqual(s, created + 2 * k, delta=0.001,
                                   msg="run %d scheduled %s, created %s: %r" %
                                   (k, reqs[k - 1].scheduled_time,
                                    job["created_at"], reqs))
            self.assertGreaterEqual(reqs[k - 1].time + EPS, s,
                                    "early: %r" % reqs[k - 1])
        gaps = [b.time - a.time for a, b in zip(reqs, reqs[1:])]
        for g in gaps:
            self.assertAlmostEqual(g, 2.0, delta=0.5,
                                   msg="arrival gaps %r" % gaps)

    # --- jitter --------------------------------------------------------------
    def test_jittered_job_fires_with_constant_offset_within_jitter(self):
        rx = new_receiver(self)
        job = self.create(rx, schedule="* * * * * *", jitter="500ms")
        reqs = rx.wait_count(5, 20, job["id"])
        ec.set_enabled(self, self.node, job["id"], False)
        # SPEC §1: deterministic per-job offset in [0, jitter) from a hash of
        # the id (src/sched: FNV-1a 64 of the id, modulo jitter in ms).
        expected_off = (ec.fnv1a64(job["id"].encode()) % 500) / 1000.0
        deltas = []
        for r in reqs:
            s = ec.parse_time(r.scheduled_time)
            self.assertEqual(s, math.floor(s), "nominal time expected: %r" % r)
            d = r.time - s
            deltas.append(d)
            self.assertGreaterEqual(d + EPS, 0, "early: %r" % r)
            self.assertGreaterEqual(d + EPS, expected_off,
                                    "arrived before scheduled + offset "
                                    "%.3fs: %r" % (expected_off, r))
            self.assertLess(d, 0.5 + 0.4, "beyond jitter + slack: %r" % r)
        self.assertLess(max(deltas) - min(deltas), 0.3,
                        "offset not constant: %r (expected %.3fs)" %
                        (["%.3f" % d for d in deltas], expected_off))
        print("\n  jitter offset expected %.3fs, observed %s" % (
            expected_off, ["%.3f" % d for d in deltas]))

    # --- @at -----------------------------------------------------------------
    def test_at_job_fires_once_then_disables_itself(self):
        rx = new_receiver(self)
        at = math.floor(time.time()) + 4
        job = self.create(rx, schedule="@at %s" % ec.format_time(at))
        self.assertEqual(ec.parse_time(job["next_run"]), at, repr(job))
        req = rx.wait_count(1, 20, job["id"])[0]
        self.assertEqual(ec.parse_time(req.scheduled_time), at, repr(req))
        self.assertGreaterEqual(req.time + EPS, at, "early: %r" % req)

        def disabled():
            j = ec.get_job(self, self.node, job["id"])
            return j if j["enabled"] is False else None
        after = h.wait_for(disabled, 15, "@at job disabled after its run")
        self.assertEqual(after["version"], job["version"] + 1, repr(after))
        self.assertIsNone(after.get("next_run"), repr(after))
        # Observation window: no second run.
        time.sleep(2.5)
        self.assertEqual(len(rx.requests_for(job["id"])), 1,
                         repr(rx.requests_for(job["id"])))
        ex = ec.wait_all_finished(self, self.node, job["id"])
        self.assertEqual(len(ex), 1, repr(ex))
        self.assertEqual(ex[0]["status"], "success", repr(ex))
        self.assertEqual(ex[0]["id"], req.execution_id)

    # --- history -------------------------------------------------------------
    def test_execution_history_newest_first_with_results(self):
        rx = new_receiver(self)
        job = self.create(rx, schedule="* * * * * *")
        rx.wait_count(3, 20, job["id"])
        ec.set_enabled(self, self.node, job["id"], False)
        ex = ec.wait_all_finished(self, self.node, job["id"])
        reqs = rx.requests_for(job["id"])
        self.assertGreaterEqual(len(ex), 3, repr(ex))
        self.assertEqual(sorted(e["id"] for e in ex),
                         sorted(r.execution_id for r in reqs),
                         "history vs received: %r / %r" % (ex, reqs))
        scheds = [ec.parse_time(e["scheduled_time"]) for e in ex]
        self.assertEqual(scheds, sorted(scheds, reverse=True),
                         "not newest first: %r" % [e["scheduled_time"]
                                                   for e in ex])
        self.assertEqual(len(set(scheds)), len(scheds), repr(ex))
        for e in ex:
            self.assertEqual(e["job_id"], job["id"])
            self.assertEqual(e["job_name"], job["name"])
            self.assertEqual(e["trigger"], "schedule", repr(e))
            self.assertEqual(e["status"], "success", repr(e))
            self.assertEqual(e["attempts"], 1, repr(e))
            self.assertEqual(e["status_code"], 200, repr(e))
            for f in ("started_at", "completed_at"):
                self.assertRegex(e.get(f) or "", h.RFC3339_RE, "%s: %r" % (f, e))
            self.assertGreaterEqual(ec.parse_time(e["started_at"]) + EPS,
                                    ec.parse_time(e["scheduled_time"]), repr(e))
        one = ec.get_execution(self, self.node, job["id"], ex[0]["id"])
        self.assertEqual(one, ex[0])
        # Paging: limit=1 walks the same list.
        page = assert_ok(self, self.node.api(
            "GET", "/api/v1/jobs/%s/executions?limit=1" % job["id"]))
        self.assertEqual([e["id"] for e in page["executions"]], [ex[0]["id"]])
        self.assertTrue(page["next_cursor"], repr(page))
        page2 = assert_ok(self, self.node.api(
            "GET", "/api/v1/jobs/%s/executions?limit=1&cursor=%s" %
            (job["id"], page["next_cursor"])))
        self.assertEqual([e["id"] for e in page2["executions"]], [ex[1]["id"]])
        ok_only = ec.list_executions(self, self.node, job["id"],
                                     "status=success")
        self.assertEqual(len(ok_only), len(ex))
        self.assertEqual(ec.list_executions(self, self.node, job["id"],
                                            "status=failed"), [])

    # --- 5-field (runs last: waits for the minute boundary) ------------------
    def test_zz_five_field_cron_fires_at_next_minute(self):
        job = self.minute_job
        created = ec.parse_time(job["created_at"])
        boundary = (math.floor(created / 60) + 1) * 60
        self.assertEqual(ec.parse_time(job["next_run"]), boundary, repr(job))
        left = boundary - time.time() + 8
        req = self.minute_rx.wait_count(1, max(left, 5), job["id"])[0]
        self.node.api("POST", "/api/v1/jobs/%s/disable" % job["id"])
        self.assertEqual(ec.parse_time(req.scheduled_time), boundary, repr(req))
        self.assertGreaterEqual(req.time + EPS, boundary, "early: %r" % req)
        self.assertLess(req.time, boundary + 3, "late: %r" % req)
        self.assertEqual(len(self.minute_rx.requests_for(job["id"])), 1)


if __name__ == "__main__":
    unittest.main()
