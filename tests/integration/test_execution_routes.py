"""The execution routes doing their job (docs/api.md "Executions"): replay,
cancel, the cluster-wide running list, ?wait with a timeout, triggering a
paused job; the shape of the webhook request (method, headers, body
placeholders, auth, success codes, 64 KiB response capture); and history
retention (history.max_per_job, history.max_age).
"""

import time
import unittest

import chronos_harness as h
import exec_common as ec
from chronos_harness import assert_ok
from receiver import Behaviour, new_receiver


@h.require_binary
class ExecutionRoutesTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.node = ec.start_node(cls, class_level=True)

    def create(self, rx, **fields):
        fields.setdefault("schedule", h.YEARLY)
        fields.setdefault("webhook", ec.webhook(rx))
        fields.setdefault("retry_policy", dict(ec.NO_RETRY))
        fields.setdefault("timeout", "30s")
        return ec.create_job(self, self.node, **fields)

    def running(self):
        return assert_ok(self, self.node.api(
            "GET", "/api/v1/executions?status=running"))["executions"]

    def test_replay_creates_new_execution_with_replay_of(self):
        rx = new_receiver(self)
        job = self.create(rx)
        first = ec.trigger_wait(self, self.node, job["id"])
        r = self.node.api("POST", "/api/v1/jobs/%s/executions/%s/replay" %
                          (job["id"], first["id"]))
        rep = assert_ok(self, r, 202)
        self.assertNotEqual(rep["id"], first["id"])
        self.assertEqual(rep["trigger"], "replay", repr(rep))
        self.assertEqual(rep["replay_of"], first["id"], repr(rep))
        done = ec.wait_execution_status(self, self.node, job["id"], rep["id"])
        self.assertEqual(done["status"], "success", repr(done))
        reqs = rx.requests_for(job["id"])
        self.assertEqual([q.execution_id for q in reqs],
                         [first["id"], rep["id"]])
        self.assertIsNone(first["replay_of"], repr(first))

    def test_cancel_running_execution_and_ignore_its_late_result(self):
        rx = new_receiver(self, default=Behaviour(hang=True))
        job = self.create(rx)
        started = assert_ok(self, ec.trigger(self.node, job["id"]), 202)
        rx.wait_count(1, 10, job["id"])
        ec.wait_execution_status(self, self.node, job["id"], started["id"],
                                 ("running",), timeout=10)
        self.assertIn(started["id"], [e["id"] for e in self.running()])
        r = self.node.api("POST", "/api/v1/jobs/%s/executions/%s/cancel" %
                          (job["id"], started["id"]))
        c = assert_ok(self, r, 200)
        self.assertEqual(c["status"], "cancelled", repr(c))
        self.assertNotIn(started["id"], [e["id"] for e in self.running()])
        rx.set_default(Behaviour(status=200))
        rx.release()
        rx.wait_for(lambda rs: all(q.done_time for q in rs), 10,
                    "held request answered")
        time.sleep(1.0)  # window for a (wrong) late result to be committed
        e = ec.get_execution(self, self.node, job["id"], started["id"])
        self.assertEqual(e["status"], "cancelled", repr(e))
        self.assertEqual(len(rx.requests_for(job["id"])), 1)

    def test_cancel_during_retry_backoff_stops_retries(self):
        # docs/api.md: cancel ends the execution; only a request ALREADY
        # sent is not aborted. No new attempt may start after the cancel.
        rx = new_receiver(self, default=Behaviour(status=503))
        job = self.create(rx, retry_policy={
            "max_attempts": 10, "initial_interval": "1s",
            "max_interval": "1s", "multiplier": 1, "jitter": 0})
        started = assert_ok(self, ec.trigger(self.node, job["id"]), 202)
        rx.wait_for(lambda rs: [q for q in rs if q.done_time], 10,
                    "attempt 1 answered 503")
        c = assert_ok(self, self.node.api(
            "POST", "/api/v1/jobs/%s/executions/%s/cancel" %
            (job["id"], started["id"])))
        cancelled_at = time.time()
        self.assertEqual(c["status"], "cancelled", repr(c))
        time.sleep(2.5)  # observation window: 2 retry intervals
        late = [q for q in rx.requests_for(job["id"])
                if q.time > cancelled_at + 0.05]
        self.assertEqual(late, [], "attempts sent after the execution was "
                         "cancelled: %r" % late)
        e = ec.get_execution(self, self.node, job["id"], started["id"])
        self.assertEqual(e["status"], "cancelled", repr(e))

    def test_running_list_is_cluster_wide_oldest_first(self):
        rx = new_receiver(self, default=Behaviour(hang=True))
        a = self.create(rx)
        b = self.create(rx)
        ea = assert_ok(self, ec.trigger(self.node, a["id"]), 202)
        rx.wait_count(1, 10, a["id"])
        eb = assert_ok(self, ec.trigger(self.node, b["id"]), 202)
        rx.wait_count(1, 10, b["id"])
        ids = [e["id"] for e in self.running()]
        self.assertIn(ea["id"], ids)
        self.assertIn(eb["id"], ids)
        self.assertLess(ids.index(ea["id"]), ids.index(eb["id"]), ids)
        page = assert_ok(self, self.node.api(
            "GET", "/api/v1/executions?status=running&limit=1"))
        self.assertEqual(len(page["executions"]), 1)
        self.assertTrue(page["next_cursor"], repr(page))
        rx.set_default(Behaviour(status=200))
        rx.release()
        for j, e in ((a, ea), (b, eb)):
            done = ec.wait_execution_status(self, self.node, j["id"], e["id"])
            self.assertEqual(done["status"], "success", repr(done))
        self.assertFalse({ea["id"], eb["id"]} &
                         {e["id"] for e in self.running()})

    def test_trigger_wait_timeout_answers_202_with_current_state(self):
        rx = new_receiver(self, default=Behaviour(hang=True))
        job = self.create(rx)
        t0 = time.monotonic()
        r = ec.trigger(self.node, job["id"], "?wait=true&timeout=1s",
                       timeout=30)
        took = time.monotonic() - t0
        e = assert_ok(self, r, 202)
        self.assertIn(e["status"], ("pending", "running"), repr(e))
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 10)
        rx.set_default(Behaviour(status=200))
        rx.release()
        done = ec.wait_execution_status(self, self.node, job["id"], e["id"])
        self.assertEqual(done["status"], "success", repr(done))

    def test_trigger_runs_a_paused_job(self):
        rx = new_receiver(self)
        job = self.create(rx, schedule="* * * * * *", enabled=False)
        e = ec.trigger_wait(self, self.node, job["id"])
        self.assertEqual(e["status"], "success", repr(e))
        self.assertEqual(e["trigger"], "manual")
        self.assertEqual(len(rx.requests_for(job["id"])), 1)

    # --- request shape -------------------------------------------------------
    def test_webhook_method_headers_body_placeholders_bearer(self):
        rx = new_receiver(self)
        job = self.create(rx, webhook={
            "url": rx.url("/put/here?q=1"), "method": "PUT",
            "headers": {"X-Custom": "abc"},
            "body": "{{.JobID}}|{{.JobName}}|{{.ExecutionID}}|"
                    "{{.ScheduledTime}}|{{.Attempt}}|{{.Unknown}}",
            "auth": {"type": "bearer", "token": "s3cret-token"}})
        self.assertNotIn("s3cret-token", str(job))
        e = ec.trigger_wait(self, self.node, job["id"])
        req = rx.requests_for(job["id"])[0]
        self.assertEqual(req.method, "PUT")
        self.assertEqual(req.path, "/put/here?q=1")
        self.assertEqual(req.headers.get("X-Custom"), "abc")
        self.assertEqual(req.headers.get("Authorization"),
                         "Bearer s3cret-token")
        self.assertEqual(req.body.decode(), "%s|%s|%s|%s|1|{{.Unknown}}" % (
            job["id"], job["name"], e["id"], req.scheduled_time))
        self.assertEqual(ec.parse_time(req.scheduled_time),
                         ec.parse_time(e["scheduled_time"]))
        self.assertNotIn("s3cret-token", self.node.log_text())

    def test_webhook_basic_and_api_key_auth(self):
        rx = new_receiver(self)
        basic = self.create(rx, webhook={
            "url": rx.url(), "auth": {"type": "basic", "username": "u",
                                      "password": "p@ss"}})
        key = self.create(rx, webhook={
            "url": rx.url(), "auth": {"type": "api_key", "key": "k-123",
                                      "header": "X-Token"}})
        ec.trigger_wait(self, self.node, basic["id"])
        ec.trigger_wait(self, self.node, key["id"])
        rb = rx.requests_for(basic["id"])[0]
        rk = rx.requests_for(key["id"])[0]
        self.assertEqual(rb.headers.get("Authorization"), "Basic dTpwQHNz")
        self.assertEqual(rk.headers.get("X-Token"), "k-123")

    def test_success_codes_decide_outcome(self):
        rx = new_receiver(self, default=Behaviour(status=202))
        only_201 = self.create(rx, webhook={"url": rx.url(),
                                            "success_codes": [201]})
        e = ec.trigger_wait(self, self.node, only_201["id"])
        self.assertEqual(e["status"], "failed", repr(e))
        self.assertEqual(e["status_code"], 202)
        self.assertEqual(e["attempts"], 1, "a non-success 2xx is final")
        rx.set_default(Behaviour(status=201))
        e = ec.trigger_wait(self, self.node, only_201["id"])
        self.assertEqual(e["status"], "success", repr(e))

    def test_response_captured_up_to_64k(self):
        big = "a" * (100 * 1024)
        rx = new_receiver(self, default=Behaviour(body=big))
        job = self.create(rx)
        e = ec.trigger_wait(self, self.node, job["id"])
        self.assertEqual(e["status"], "success", repr(e)[:300])
        self.assertEqual(len(e["response"]), 64 * 1024)
        self.assertEqual(e["response"], big[:64 * 1024])


@h.require_binary
class ExecutionEdgeCasesTest(unittest.TestCase):

    def test_max_concurrent_jobs_bounds_requests_in_flight(self):
        rx = new_receiver(self, default=Behaviour(hang=True))
        node = ec.start_node(self, config="""
dispatcher:
  concurrency:
    max_concurrent_jobs: 2
""")
        job = ec.create_job(self, node, schedule=h.YEARLY,
                            concurrency="allow", webhook=ec.webhook(rx),
                            retry_policy=dict(ec.NO_RETRY), timeout="1m")
        started = [assert_ok(self, ec.trigger(node, job["id"]), 202)["id"]
                   for _ in range(4)]
        rx.wait_count(2, 10, job["id"])
        time.sleep(1.0)  # observation window: no third call while 2 are held
        self.assertEqual(len(rx.requests_for(job["id"])), 2,
                         repr(rx.requests_for(job["id"])))
        rx.set_default(Behaviour(status=200))
        rx.release()
        rx.wait_count(4, 15, job["id"])
        rx.release()
        for eid in started:
            e = ec.wait_execution_status(self, node, job["id"], eid)
            self.assertEqual(e["status"], "success", repr(e))
        self.assertLessEqual(rx.max_overlap(job["id"]), 2)

    def test_delete_job_while_its_run_is_in_flight(self):
        rx = new_receiver(self, default=Behaviour(hang=True))
        node = ec.start_node(self)
        job = ec.create_job(self, node, schedule=h.YEARLY,
                            webhook=ec.webhook(rx),
                            retry_policy=dict(ec.NO_RETRY), timeout="1m")
        e = assert_ok(self, ec.trigger(node, job["id"]), 202)
        rx.wait_count(1, 10, job["id"])
        assert_ok(self, node.api("DELETE", "/api/v1/jobs/%s" % job["id"]))
        rx.set_default(Behaviour(status=200))
        rx.release()
        rx.wait_for(lambda rs: all(q.done_time for q in rs), 10, "answered")

        def gone():
            run = assert_ok(self, node.api(
                "GET", "/api/v1/executions?status=running"))["executions"]
            return e["id"] not in [x["id"] for x in run]
        h.wait_for(gone, 15, "the deleted job's run no longer listed as "
                   "running")
        self.assertTrue(node.running(), node.log_tail())
        self.assertEqual(node.api("GET", "/health").status, 200)
        r = node.api("GET", "/api/v1/jobs/%s/executions" % job["id"])
        self.assertEqual(r.status, 404, repr(r))
        # The node still schedules: a new job runs.
        rx2 = new_receiver(self)
        j2 = ec.create_job(self, node, schedule=h.YEARLY,
                           webhook=ec.webhook(rx2))
        self.assertEqual(ec.trigger_wait(self, node, j2["id"])["status"],
                         "success")

    def test_update_changes_target_of_next_runs_and_job_version(self):
        rx1 = new_receiver(self)
        rx2 = new_receiver(self)
        node = ec.start_node(self)
        job = ec.create_job(self, node, schedule="* * * * * *",
                            webhook=ec.webhook(rx1))
        self.addCleanup(node.api, "POST",
                        "/api/v1/jobs/%s/disable" % job["id"])
        rx1.wait_count(1, 10, job["id"])
        upd = assert_ok(self, node.api("PATCH", "/api/v1/jobs/%s" % job["id"],
                                       {"webhook": {"url": rx2.url()}}))
        self.assertEqual(upd["version"], 2)
        changed = time.time()
        rx2.wait_count(2, 10, job["id"])
        late = [r for r in rx1.requests_for(job["id"])
                if ec.parse_time(r.scheduled_time) > changed + 1]
        self.assertEqual(late, [], "old target still called after the update")
        ec.set_enabled(self, node, job["id"], False)
        ex = ec.wait_all_finished(self, node, job["id"])
        ids2 = {r.execution_id for r in rx2.requests_for(job["id"])}
        for e in ex:
            if e["id"] in ids2:
                self.assertEqual(e["job_version"], 2, repr(e))
            self.assertEqual(e["node_id"], node.node_id, repr(e))
            self.assertRegex(e["duration"], r"^[0-9][0-9a-z.]*$", repr(e))


RETENTION_CONFIG = """
history:
  max_per_job: 3
  max_age: 4s
"""


@h.require_binary
class RetentionTest(unittest.TestCase):

    def setUp(self):
        self.rx = new_receiver(self)
        self.node = ec.start_node(self, config=RETENTION_CONFIG)

    def create(self):
        return ec.create_job(self, self.node, schedule=h.YEARLY,
                             webhook=ec.webhook(self.rx),
                             retry_policy=dict(ec.NO_RETRY))

    def test_max_per_job_keeps_newest(self):
        job = self.create()
        ids = [ec.trigger_wait(self, self.node, job["id"])["id"]
               for _ in range(5)]
        h.wait_for(lambda: len(ec.list_executions(
            self, self.node, job["id"])) == 3, 15, "history pruned to 3")
        kept = [e["id"] for e in ec.list_executions(self, self.node,
                                                    job["id"])]
        self.assertEqual(kept, list(reversed(ids[-3:])))

    def test_max_age_drops_old_executions(self):
        job = self.create()
        old = ec.trigger_wait(self, self.node, job["id"])
        time.sleep(4.5)  # let `old` age past history.max_age
        new = ec.trigger_wait(self, self.node, job["id"])
        new_done = time.time()
        h.wait_for(lambda: self.node.api(
            "GET", "/api/v1/jobs/%s/executions/%s" % (job["id"], old["id"])
        ).status == 404, 70, "execution older than max_age dropped")
        kept = [e["id"] for e in ec.list_executions(self, self.node,
                                                    job["id"])]
        if time.time() - new_done < 3.0:  # `new` is still young enough
            self.assertIn(new["id"], kept)


if __name__ == "__main__":
    unittest.main()
