"""Bad input to the execution routes gets a clear 4xx naming the field and
changes nothing stored (SPEC §5; docs/api.md "Executions").
"""

import unittest
import uuid

import chronos_harness as h
import exec_common as ec
from chronos_harness import assert_error, assert_ok
from receiver import Receiver


@h.require_binary
class ExecutionApiErrorsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.rx = Receiver()
        cls.addClassCleanup(cls.rx.close)
        cls.node = ec.start_node(cls, class_level=True)
        r = cls.node.api("POST", "/api/v1/jobs", {
            "name": ec.unique("errors"), "schedule": h.YEARLY,
            "webhook": {"url": cls.rx.url()},
            "retry_policy": dict(ec.NO_RETRY)})
        assert r.status == 201, r
        cls.job = r.json["data"]
        # One finished execution to address.
        r = cls.node.api("POST", "/api/v1/jobs/%s/trigger?wait=true" %
                         cls.job["id"], timeout=60)
        assert r.status == 200 and r.json["data"]["status"] == "success", r
        cls.done = r.json["data"]

    def api(self, *args, **kwargs):
        return self.node.api(*args, **kwargs)

    def snapshot(self):
        job = ec.get_job(self, self.node, self.job["id"])
        ex = ec.list_executions(self, self.node, self.job["id"])
        return (job["version"], job["enabled"],
                [(e["id"], e["status"]) for e in ex], len(self.rx.requests))

    def assert_rejected(self, method, path, status, code, field=None,
                        body=None):
        before = self.snapshot()
        r = self.api(method, path, body=body)
        err = assert_error(self, r, status, code, field,
                           what="%s %s" % (method, path))
        self.assertEqual(self.snapshot(), before,
                         "%s %s changed stored state" % (method, path))
        return err

    def jpath(self, suffix=""):
        return "/api/v1/jobs/%s%s" % (self.job["id"], suffix)

    # --- trigger -------------------------------------------------------------
    def test_trigger_unknown_job_404(self):
        self.assert_rejected("POST", "/api/v1/jobs/%s/trigger" % uuid.uuid4(),
                             404, "NOT_FOUND")
        self.assert_rejected("POST", "/api/v1/jobs/no-such-job/trigger",
                             404, "NOT_FOUND")

    def test_trigger_bad_force_400(self):
        self.assert_rejected("POST", self.jpath("/trigger?force=maybe"), 400,
                             "VALIDATION_ERROR", "force")

    def test_trigger_bad_wait_400(self):
        self.assert_rejected("POST", self.jpath("/trigger?wait=yes"), 400,
                             "VALIDATION_ERROR", "wait")

    def test_trigger_bad_timeout_400(self):
        for t in ("bad", "0s", "11m", "-1s"):
            self.assert_rejected(
                "POST", self.jpath("/trigger?wait=true&timeout=%s" % t), 400,
                "VALIDATION_ERROR", "timeout")

    # --- list ----------------------------------------------------------------
    def test_list_bad_status_400(self):
        self.assert_rejected("GET", self.jpath("/executions?status=bogus"),
                             400, "VALIDATION_ERROR", "status")

    def test_list_bad_limit_400(self):
        for v in ("0", "1001", "-1", "x"):
            self.assert_rejected("GET", self.jpath("/executions?limit=%s" % v),
                                 400, "VALIDATION_ERROR", "limit")

    def test_list_bad_cursor_400(self):
        for v in ("!!!", "not-a-cursor", "%00"):
            self.assert_rejected("GET", self.jpath("/executions?cursor=%s" % v),
                                 400, "VALIDATION_ERROR", "cursor")

    def test_list_unknown_parameter_400(self):
        self.assert_rejected("GET", self.jpath("/executions?colour=red"),
                             400, "VALIDATION_ERROR", "colour")

    def test_list_unknown_job_404(self):
        self.assert_rejected("GET", "/api/v1/jobs/%s/executions" %
                             uuid.uuid4(), 404, "NOT_FOUND")

    # --- get / cancel / replay ------------------------------------------------
    def test_get_unknown_execution_404(self):
        self.assert_rejected("GET", self.jpath("/executions/%s" %
                                               uuid.uuid4()), 404, "NOT_FOUND")
        self.assert_rejected("GET", self.jpath("/executions/garbage"), 404,
                             "NOT_FOUND")

    def test_cancel_finished_execution_409(self):
        self.assert_rejected("POST", self.jpath("/executions/%s/cancel" %
                                                self.done["id"]),
                             409, "CONFLICT")
        e = ec.get_execution(self, self.node, self.job["id"], self.done["id"])
        self.assertEqual(e["status"], "success")

    def test_cancel_unknown_execution_404(self):
        self.assert_rejected("POST", self.jpath("/executions/%s/cancel" %
                                                uuid.uuid4()), 404, "NOT_FOUND")

    def test_replay_unknown_execution_404(self):
        self.assert_rejected("POST", self.jpath("/executions/%s/replay" %
                                                uuid.uuid4()), 404, "NOT_FOUND")

    def test_replay_bad_force_400(self):
        self.assert_rejected("POST", self.jpath("/executions/%s/replay?force=1"
                                                % self.done["id"]),
                             400, "VALIDATION_ERROR", "force")

    # --- cluster-wide list -----------------------------------------------------
    def test_cluster_executions_only_running_400(self):
        for s in ("failed", "success", "bogus"):
            self.assert_rejected("GET", "/api/v1/executions?status=%s" % s,
                                 400, "VALIDATION_ERROR", "status")

    def test_cluster_executions_bad_limit_and_cursor_400(self):
        self.assert_rejected("GET", "/api/v1/executions?status=running&limit=0",
                             400, "VALIDATION_ERROR", "limit")
        self.assert_rejected("GET", "/api/v1/executions?status=running&"
                             "cursor=zzz", 400, "VALIDATION_ERROR", "cursor")

    # --- webhooks/test ---------------------------------------------------------
    def test_webhook_test_bad_url_400(self):
        for url in ("not a url", "ftp://127.0.0.1/x", ""):
            self.assert_rejected("POST", "/api/v1/webhooks/test", 400,
                                 "VALIDATION_ERROR", "webhook.url",
                                 body={"webhook": {"url": url}})

    def test_webhook_test_missing_webhook_and_unknown_field_400(self):
        self.assert_rejected("POST", "/api/v1/webhooks/test", 400,
                             "VALIDATION_ERROR", "webhook", body={})
        self.assert_rejected("POST", "/api/v1/webhooks/test", 400,
                             "VALIDATION_ERROR", "extra",
                             body={"webhook": {"url": self.rx.url()},
                                   "extra": 1})
        self.assert_rejected("POST", "/api/v1/webhooks/test", 400,
                             "VALIDATION_ERROR", "timeout",
                             body={"webhook": {"url": self.rx.url()},
                                   "timeout": "2m"})

    def test_webhook_test_calls_target_and_records_nothing(self):
        before = self.snapshot()
        n = len(self.rx.requests)
        data = assert_ok(self, self.api("POST", "/api/v1/webhooks/test", {
            "webhook": {"url": self.rx.url("/probe"), "method": "PUT",
                        "body": "{\"x\": \"{{.Attempt}}\"}"},
            "timeout": "5s"}))
        self.assertIs(data["success"], True, repr(data))
        self.assertEqual(data["status_code"], 200, repr(data))
        reqs = self.rx.wait_count(n + 1, 10)
        got = reqs[n]
        self.assertEqual(got.method, "PUT")
        self.assertEqual(got.path, "/probe")
        self.assertEqual(got.body, b'{"x": "1"}')
        after = self.snapshot()
        self.assertEqual(after[:3], before[:3],
                         "webhooks/test changed the job or its history")
        running = assert_ok(self, self.api(
            "GET", "/api/v1/executions?status=running"))["executions"]
        self.assertNotIn(got.execution_id, [e["id"] for e in running])
        r = self.api("GET", self.jpath("/executions/%s" % got.execution_id))
        assert_error(self, r, 404, "NOT_FOUND")


if __name__ == "__main__":
    unittest.main()
