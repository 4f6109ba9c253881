"""Concurrency policies with slow receivers, and missed-run policies across
a node stop (SPEC §3 "Concurrency", "Missed runs"; docs/api.md
"Executions").
"""

import time
import unittest

import chronos_harness as h
import exec_common as ec
from chronos_harness import assert_error, assert_ok
from receiver import Behaviour, Receiver, new_receiver

EPS = 0.002


@h.require_binary
class ConcurrencyTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.node = ec.start_node(cls, class_level=True)

    def create(self, rx, **fields):
        fields.setdefault("webhook", ec.webhook(rx))
        fields.setdefault("retry_policy", dict(ec.NO_RETRY))
        fields.setdefault("timeout", "20s")
        job = ec.create_job(self, self.node, **fields)
        # Cleanups run last-in first-out: disable before the receiver closes.
        self.addCleanup(self.node.api, "POST",
                        "/api/v1/jobs/%s/disable" % job["id"])
        return job

    def executions(self, job):
        return ec.list_executions(self, self.node, job["id"])

    def wait_executions(self, job, pred, timeout, what):
        return h.wait_for(lambda: pred(self.executions(job)), timeout, what)

    def test_forbid_never_overlaps_and_records_skipped(self):
        rx = new_receiver(self, default=Behaviour(delay=3))
        job = self.create(rx, schedule="* * * * * *", concurrency="forbid")
        self.wait_executions(
            job, lambda ex: len([e for e in ex if e["status"] == "skipped"])
            >= 3, 20, "3 skipped executions")
        ec.set_enabled(self, self.node, job["id"], False)
        ex = self.executions(job)
        reqs = rx.requests_for(job["id"])
        self.assertGreaterEqual(len(reqs), 1)
        self.assertEqual(rx.max_overlap(job["id"]), 1,
                         "two requests of a forbid job in flight: %r" % reqs)
        received = {r.execution_id for r in reqs}
        skipped = [e for e in ex if e["status"] == "skipped"]
        for e in skipped:
            self.assertNotIn(e["id"], received, "a skipped run was sent: %r"
                             % e)
            self.assertEqual(e["trigger"], "schedule", repr(e))
        # Every received run is a non-skipped execution.
        self.assertTrue(received <= {e["id"] for e in ex
                                     if e["status"] != "skipped"},
                        "%r vs %r" % (reqs, ex))

    def test_replace_cancels_running_and_starts_newer(self):
        rx = new_receiver(self, default=Behaviour(delay=3))
        job = self.create(rx, schedule="* * * * * *", concurrency="replace")
        ex = self.wait_executions(
            job, lambda ex: ex if any(e["status"] == "cancelled" for e in ex)
            else None, 20, "a cancelled execution")
        cancelled = [e for e in ex if e["status"] == "cancelled"][-1]  # oldest
        newer = [e for e in ex if ec.parse_time(e["scheduled_time"]) >
                 ec.parse_time(cancelled["scheduled_time"])]
        self.assertTrue(newer, "no newer execution than the cancelled %r: %r"
                        % (cancelled, ex))
        # The receiver saw the cancelled run's request and, while it was
        # still held, the next run's request.
        reqs = {r.execution_id: r for r in rx.requests_for(job["id"])}
        c_req = reqs.get(cancelled["id"])
        self.assertIsNotNone(c_req, "cancelled run was never sent: %r / %r" %
                             (cancelled, list(reqs.values())))
        nxt = sorted(newer, key=lambda e: e["scheduled_time"])[0]
        n_req = rx.wait_for(
            lambda rs: [r for r in rs if r.execution_id == nxt["id"]], 10,
            "request of the replacing execution %s" % nxt["id"])[0]
        # Paused only now: the replacing run may have been committed ahead
        # of its fire time, and a scheduled run of a job paused before its
        # first attempt is cancelled unsent (which a slow machine hit).
        ec.set_enabled(self, self.node, job["id"], False)
        self.assertGreater(n_req.time, c_req.time)
        self.assertTrue(c_req.done_time is None or n_req.time < c_req.done_time,
                        "replacing run %r arrived after the cancelled one "
                        "ended (%r)" % (n_req, c_req.done_time))
        self.assertGreaterEqual(rx.max_overlap(job["id"]), 2)
        # The cancelled run's late 200 does not overwrite its status.
        rx.wait_for(lambda rs: c_req.done_time is not None, 10,
                    "cancelled run's request answered")
        time.sleep(0.5)  # let a (wrong) late result be committed if any
        again = ec.get_execution(self, self.node, job["id"], cancelled["id"])
        self.assertEqual(again["status"], "cancelled", repr(again))

    def test_replace_stops_retries_of_the_replaced_run(self):
        # A replaced run is cancelled (SPEC §3); its retries must stop, or a
        # failing target gets every replaced run's retries on top.
        # Own node: a breaker that never opens, so it cannot hide retries.
        node = ec.start_node(self, config="""
dispatcher:
  circuit_breaker:
    failure_threshold: 100000
""")
        rx = new_receiver(self, default=Behaviour(status=503))
        job = ec.create_job(self, node, schedule="* * * * * *",
                            concurrency="replace", webhook=ec.webhook(rx),
                            retry_policy={"max_attempts": 20,
                                          "initial_interval": "300ms",
                                          "max_interval": "300ms",
                                          "multiplier": 1, "jitter": 0})
        # Three runs started: the first two were replaced.
        rx.wait_for(lambda rs: len({q.execution_id for q in rs}) >= 3, 15,
                    "three runs")
        time.sleep(1.0)  # observation window for retries of replaced runs
        ec.set_enabled(self, node, job["id"], False)
        reqs = rx.requests_for(job["id"])
        first_arrival = {}
        for q in reqs:
            first_arrival.setdefault(q.execution_id, q.time)
        order = sorted(first_arrival, key=first_arrival.get)
        st = {e["id"]: e["status"] for e in
              ec.list_executions(self, node, job["id"])}
        for old, new in zip(order, order[1:]):
            self.assertEqual(st.get(old), "cancelled", "%s: %r" % (old, st))
            late = [q for q in reqs if q.execution_id == old and
                    q.time > first_arrival[new] + 0.1]
            self.assertEqual(late, [], "replaced run %s still retried after "
                             "run %s replaced it: %r" % (old, new, late))

    def test_allow_runs_overlap(self):
        rx = new_receiver(self, default=Behaviour(delay=3))
        job = self.create(rx, schedule="* * * * * *", concurrency="allow")
        rx.wait_for(lambda rs: len([r for r in rs if r.job_id == job["id"] and
                                    r.done_time is None]) >= 2, 15,
                    "two requests of the job in flight at once")
        ec.set_enabled(self, self.node, job["id"], False)
        self.assertGreaterEqual(rx.max_overlap(job["id"]), 2)
        ex = ec.wait_all_finished(self, self.node, job["id"], timeout=20)
        self.assertFalse([e for e in ex if e["status"] in
                          ("skipped", "cancelled")], repr(ex))
        self.assertTrue(all(e["status"] == "success" for e in ex), repr(ex))

    def test_parallel_manual_triggers_under_forbid_start_exactly_one(self):
        # Regression: triggers planned from the same state all started;
        # forbid is now enforced when the start is applied.
        import threading
        rx = new_receiver(self)
        rx.script("/hook", Behaviour(hang=True))
        job = self.create(rx, schedule=h.YEARLY, concurrency="forbid")
        statuses = []
        lock = threading.Lock()

        def one():
            r = ec.trigger(self.node, job["id"])
            with lock:
                statuses.append(r.status)
        threads = [threading.Thread(target=one) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(sorted(statuses), [202] + [409] * 5, statuses)
        reqs = rx.wait_count(1, 10, job["id"])
        self.assertEqual(len({r.execution_id for r in reqs}), 1, repr(reqs))
        rx.release()

    def test_manual_trigger_obeys_forbid_unless_forced(self):
        rx = new_receiver(self)
        rx.script("/hook", Behaviour(hang=True))
        job = self.create(rx, schedule=h.YEARLY, concurrency="forbid")
        first = assert_ok(self, ec.trigger(self.node, job["id"]), 202)
        self.assertIn(first["status"], ("pending", "running"), repr(first))
        self.assertEqual(first["trigger"], "manual")
        rx.wait_count(1, 10, job["id"])
        before = self.executions(job)

        r = ec.trigger(self.node, job["id"])
        assert_error(self, r, 409, "CONFLICT")
        after = self.executions(job)
        skipped = [e for e in after if e["id"] not in {b["id"] for b in before}]
        self.assertEqual(len(skipped), 1, repr(after))
        self.assertEqual(skipped[0]["status"], "skipped", repr(skipped))

        forced = assert_ok(self, ec.trigger(self.node, job["id"],
                                            "?force=true"), 202)
        self.assertNotEqual(forced["id"], first["id"])
        reqs = rx.wait_count(2, 10, job["id"])
        self.assertEqual(reqs[1].execution_id, forced["id"])
        self.assertEqual(reqs[0].execution_id, first["id"])
        rx.release()
        for eid in (first["id"], forced["id"]):
            e = ec.wait_execution_status(self, self.node, job["id"], eid)
            self.assertEqual(e["status"], "success", repr(e))


# --- missed runs --------------------------------------------------------------

MISSED_CONFIG = """
scheduler:
  late_grace: 100ms
"""
DOWN_S = 6.0


def _start_policy_jobs(cls, prefix):
    """A node (with MISSED_CONFIG) and one every-second job per missed-run
    policy, each seen running twice; stored on the test class."""
    cls.rx = Receiver()
    cls.addClassCleanup(cls.rx.close)
    cls.node = ec.start_node(cls, config=MISSED_CONFIG, class_level=True)
    cls.jobs = {}
    for policy in ("ignore", "execute_one", "execute_all"):
        r = cls.node.api("POST", "/api/v1/jobs", {
            "name": ec.unique(prefix + "-" + policy.replace("_", "-")),
            "schedule": "* * * * * *", "concurrency": "allow",
            "missed_run_policy": policy, "catchup_window": "1h",
            "webhook": {"url": cls.rx.url()},
            "retry_policy": dict(ec.NO_RETRY)})
        assert r.status == 201, r
        cls.jobs[policy] = r.json["data"]
    for job in cls.jobs.values():
        cls.rx.wait_count(2, 20, job["id"])

@h.require_binary
class MissedRunsTest(unittest.TestCase):
    """One scenario for all three policies: three every-second jobs run,
    the node is stopped (SIGTERM) for DOWN_S seconds and restarted; each
    test checks one policy's catch-up executions."""

    @classmethod
    def setUpClass(cls):
        _start_policy_jobs(cls, "missed")
        cls.stop_time = time.time()
        rc = cls.node.stop()
        cls.stopped_time = time.time()
        assert rc is not None, "node did not stop on SIGTERM"
        time.sleep(DOWN_S)  # the outage being tested, not synchronisation
        cls.restart_time = time.time()
        cls.node.start_ready()
        cls.ready_time = time.time()
        # On-time runs again for every job.
        for job in cls.jobs.values():
            cls.rx.wait_for(lambda rs, j=job: [
                r for r in rs if r.job_id == j["id"] and
                ec.parse_time(r.scheduled_time) >= cls.ready_time + 1],
                20, "on-time runs after restart of %s" % job["name"])
        for job in cls.jobs.values():
            ec.set_enabled(_Checker(), cls.node, job["id"], False)
        cls.samples, _ = _scrape(cls.node)

    def analyse(self, policy):
        job = self.jobs[policy]
        ex = ec.wait_all_finished(self, self.node, job["id"])
        sched = [e for e in ex if e["trigger"] == "schedule"]
        before = [ec.parse_time(e["scheduled_time"]) for e in sched
                  if ec.parse_time(e["scheduled_time"]) <= self.stop_time]
        after = [ec.parse_time(e["scheduled_time"]) for e in sched
                 if ec.parse_time(e["scheduled_time"]) > self.stop_time]
        self.assertTrue(before and after, "%s: %r" % (policy, ex))
        last, first = max(before), min(after)
        missed = list(range(int(last) + 1, int(first)))
        catchup = [e for e in ex if e["trigger"] == "catchup"]
        info = ("%s: last before stop %s, first on-time after restart %s, "
                "stopped %s..%s, ready %s; missed %d; catch-ups %r" % (
                    policy, ec.format_time(last), ec.format_time(first),
                    ec.format_time(self.stop_time),
                    ec.format_time(self.restart_time),
                    ec.format_time(self.ready_time), len(missed),
                    [e["scheduled_time"] for e in catchup]))
        # The outage covers at least DOWN_S whole seconds.
        self.assertGreaterEqual(len(missed), int(DOWN_S) - 1, info)
        # No duplicated scheduled time across all runs.
        times = [e["scheduled_time"] for e in ex]
        self.assertEqual(len(times), len(set(times)), info)
        return job, ex, missed, catchup, info

    def test_ignore_runs_no_catchup(self):
        _, _, missed, catchup, info = self.analyse("ignore")
        self.assertEqual(catchup, [], info)
        print("\n  " + info)

    def test_execute_one_runs_exactly_one_catchup_newest(self):
        job, _, missed, catchup, info = self.analyse("execute_one")
        self.assertEqual(len(catchup), 1, info)
        self.assertEqual(ec.parse_time(catchup[0]["scheduled_time"]),
                         missed[-1], info)
        self.assertEqual(catchup[0]["status"], "success", info)
        got = [r for r in self.rx.requests_for(job["id"])
               if r.execution_id == catchup[0]["id"]]
        self.assertEqual(len(got), 1, info)
        print("\n  " + info)

    def test_execute_all_runs_each_missed_time(self):
        job, _, missed, catchup, info = self.analyse("execute_all")
        self.assertEqual(sorted(ec.parse_time(e["scheduled_time"])
                                for e in catchup), missed, info)
        for e in catchup:
            self.assertEqual(e["status"], "success", repr(e))
        sent = {r.execution_id for r in self.rx.requests_for(job["id"])}
        self.assertTrue({e["id"] for e in catchup} <= sent, info)
        # Never early: a catch-up is sent after its scheduled time.
        for r in self.rx.requests_for(job["id"]):
            self.assertGreaterEqual(r.time + EPS, ec.parse_time(
                r.scheduled_time), repr(r))
        print("\n  " + info)

    def test_missed_runs_metric_counts_ignored_runs(self):
        _, _, missed, _, info = self.analyse("ignore")
        v = ec.metric_value(self.samples, "chronos_missed_runs_total")
        self.assertIsNotNone(v, "chronos_missed_runs_total not exposed")
        # The restarted process counted at least the ignore job's misses
        # (and execute_one's, minus the one it ran).
        _, _, missed_one, _, _ = self.analyse("execute_one")
        self.assertGreaterEqual(v, len(missed) + len(missed_one) - 1,
                                "%s; metric %s" % (info, v))


@h.require_binary
class PausedThenResumedTest(unittest.TestCase):
    """SPEC §3: a paused-then-resumed job's paused period is missed runs;
    each policy applies on resume (src/sched README: a disabled job consumes
    nothing)."""

    PAUSE_S = 4.0

    @classmethod
    def setUpClass(cls):
        _start_policy_jobs(cls, "paused")
        cls.pause_time = time.time()
        for job in cls.jobs.values():
            ec.set_enabled(_Checker(), cls.node, job["id"], False)
        time.sleep(cls.PAUSE_S)  # the pause being tested
        cls.resume_time = time.time()
        for job in cls.jobs.values():
            ec.set_enabled(_Checker(), cls.node, job["id"], True)
        for job in cls.jobs.values():
            cls.rx.wait_for(lambda rs, j=job: [
                r for r in rs if r.job_id == j["id"] and
                ec.parse_time(r.scheduled_time) >= cls.resume_time + 1],
                20, "on-time runs after resume of %s" % job["name"])
        for job in cls.jobs.values():
            ec.set_enabled(_Checker(), cls.node, job["id"], False)

    def analyse(self, policy):
        job = self.jobs[policy]
        ex = ec.wait_all_finished(self, self.node, job["id"])
        sched = [ec.parse_time(e["scheduled_time"]) for e in ex
                 if e["trigger"] == "schedule"]
        before = [t for t in sched if t <= self.pause_time]
        after = [t for t in sched if t > self.pause_time]
        self.assertTrue(before and after, "%s: %r" % (policy, ex))
        last, first = max(before), min(after)
        missed = list(range(int(last) + 1, int(first)))
        catchup = [e for e in ex if e["trigger"] == "catchup"]
        info = ("%s: paused %s..%s, last before %s, first after %s, missed "
                "%d, catch-ups %r" % (
                    policy, ec.format_time(self.pause_time),
                    ec.format_time(self.resume_time), ec.format_time(last),
                    ec.format_time(first), len(missed),
                    [e["scheduled_time"] for e in catchup]))
        self.assertGreaterEqual(len(missed), int(self.PAUSE_S) - 1, info)
        return missed, catchup, info

    def test_ignore_on_resume(self):
        _, catchup, info = self.analyse("ignore")
        self.assertEqual(catchup, [], info)

    def test_execute_one_on_resume(self):
        missed, catchup, info = self.analyse("execute_one")
        self.assertEqual([ec.parse_time(e["scheduled_time"]) for e in catchup],
                         [missed[-1]], info)

    def test_execute_all_on_resume(self):
        missed, catchup, info = self.analyse("execute_all")
        self.assertEqual(sorted(ec.parse_time(e["scheduled_time"])
                                for e in catchup), missed, info)


def _Checker():
    """A TestCase usable for assertions outside a test method."""
    return unittest.TestCase()


def _scrape(node):
    return ec.scrape(_Checker(), node)


if __name__ == "__main__":
    unittest.main()
