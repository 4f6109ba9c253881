"""Acknowledged writes survive kill -9, graceful restarts and Raft snapshots
(SPEC §5: "A write is acknowledged only after a Raft majority committed it";
§7 snapshot_threshold)."""

import os
import threading
import unittest

import chronos_harness as h
from chronos_harness import assert_error, assert_ok, job_body

J = "/api/v1/jobs"


def stable(job):
    """A job's definition without the computed next_run."""
    return h.without(job, "next_run")


@h.require_binary
class DurabilityTest(unittest.TestCase):

    def node(self, **kwargs):
        return h.new_node(self, **kwargs)

    def create(self, node, name, **fields):
        return assert_ok(self, node.api("POST", J, job_body(name, **fields)),
                         201, "create %s" % name)

    def all_jobs(self, node):
        data = assert_ok(self, node.api("GET", J + "?limit=1000"))
        self.assertEqual(data["next_cursor"], "")
        return {j["id"]: j for j in data["jobs"]}

    def versions(self, node, job_id):
        data = assert_ok(self, node.api("GET", "%s/%s/versions" % (J, job_id)))
        return [v["version"] for v in data["versions"]]

    # --- kill -9 ----------------------------------------------------------------
    def test_acknowledged_creates_survive_kill9(self):
        node = self.node()
        created = []
        for i in range(20):
            created.append(self.create(
                node, "durable-%02d" % i, description="job %d" % i,
                tags={"i": str(i)}))
        node.kill9()  # immediately after the last 201
        node.restart()
        for job in created:
            got = assert_ok(self, node.api("GET", "%s/%s" % (J, job["id"])),
                            200, "after kill -9: %s" % job["name"])
            self.assertEqual(stable(got), stable(job))
        self.assertEqual(set(self.all_jobs(node)), {j["id"] for j in created})

    def test_acknowledged_updates_and_deletes_survive_kill9(self):
        node = self.node()
        a = self.create(node, "upd-a")
        b = self.create(node, "upd-b")
        patched = assert_ok(self, node.api("PATCH", "%s/%s" % (J, a["id"]),
                                           {"description": "patched"}))
        disabled = assert_ok(self, node.api("POST", "%s/%s/disable" %
                                            (J, patched["id"])))
        assert_ok(self, node.api("DELETE", "%s/%s" % (J, b["id"])))
        node.kill9()
        node.restart()
        got = assert_ok(self, node.api("GET", "%s/%s" % (J, a["id"])))
        self.assertEqual(stable(got), stable(disabled))
        self.assertEqual(got["version"], 3)
        self.assertEqual(self.versions(node, a["id"]), [3, 2, 1])
        assert_error(self, node.api("GET", "%s/%s" % (J, b["id"])), 404,
                     "NOT_FOUND")

    def test_new_writes_after_kill9_restart_continue_versions(self):
        node = self.node()
        job = self.create(node, "continue")
        node.kill9()
        node.restart()
        r = assert_ok(self, node.api("PATCH", "%s/%s" % (J, job["id"]),
                                     {"description": "after restart"}))
        self.assertEqual(r["version"], 2)
        self.assertEqual(r["created_at"], job["created_at"])
        dup = node.api("POST", J, job_body("continue"))
        assert_error(self, dup, 409, "ALREADY_EXISTS", "name")

    def test_acknowledged_creates_from_concurrent_writers_survive_kill9(self):
        """4 writers create jobs as fast as they can; the node is killed -9
        mid-stream. Every create that got a 201 must be there afterwards."""
        node = self.node()
        acked = []  # (id, job) appended only after a 201
        lock = threading.Lock()
        stop = threading.Event()

        def writer(w):
            i = 0
            while not stop.is_set():
                try:
                    r = node.api("POST", J, job_body("w%d-%04d" % (w, i)),
                                 timeout=5)
                except OSError:
                    return  # the node died under us
                if r.status == 201:
                    with lock:
                        acked.append(r.json["data"])
                i += 1

        threads = [threading.Thread(target=writer, args=(w,))
                   for w in range(4)]
        for t in threads:
            t.start()
        try:
            h.wait_for(lambda: len(acked) >= 60, 60, "60 acknowledged creates")
            node.kill9()
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertFalse(any(t.is_alive() for t in threads))
        node.restart()
        stored = self.all_jobs(node)
        with lock:
            acked_now = list(acked)
        missing = [j["name"] for j in acked_now if j["id"] not in stored]
        self.assertEqual(missing, [], "acknowledged but lost after kill -9")
        for job in acked_now:
            self.assertEqual(stable(stored[job["id"]]), stable(job))

    # --- snapshots ------------------------------------------------------------
    def _snapshot_node(self):
        work = h.make_temp_dir("chronos-cfg-")
        self.addCleanup(h.remove_temp_dir, work)
        cfg = os.path.join(work, "chronos.yaml")
        with open(cfg, "w") as f:
            f.write("cluster:\n  raft:\n    snapshot_threshold: 16\n")
        return self.node(extra_args=["--config", cfg])

    def _write_many(self, node):
        """~100 writes: 40 creates, 50 patches (some jobs twice), 10 deletes.
        Returns (expected jobs by id, expected version lists, deleted ids)."""
        jobs = {}
        for i in range(40):
            j = self.create(node, "snap-%02d" % i, tags={"n": str(i)})
            jobs[j["id"]] = j
        ids = sorted(jobs, key=lambda k: jobs[k]["name"])
        for round_ in range(2):
            for jid in ids[:25]:
                r = node.api("PATCH", "%s/%s" % (J, jid),
                             {"description": "round %d" % round_,
                              "tags": {"round": str(round_)}})
                jobs[jid] = assert_ok(self, r, 200, "patch %s" % jid)
        deleted = set()
        for jid in ids[30:40]:
            assert_ok(self, node.api("DELETE", "%s/%s" % (J, jid)))
            deleted.add(jid)
            del jobs[jid]
        return jobs, deleted

    def _assert_state(self, node, jobs, deleted, when):
        listed = self.all_jobs(node)
        self.assertEqual(set(listed), set(jobs), when)
        for jid, job in jobs.items():
            got = assert_ok(self, node.api("GET", "%s/%s" % (J, jid)), 200,
                            "%s: %s" % (when, job["name"]))
            self.assertEqual(stable(got), stable(job), when)
            self.assertEqual(self.versions(node, jid),
                             list(range(job["version"], 0, -1)), when)
        for jid in deleted:
            assert_error(self, node.api("GET", "%s/%s" % (J, jid)), 404,
                         "NOT_FOUND", what="%s: deleted %s" % (when, jid))

    def test_jobs_survive_snapshots_across_graceful_restart_and_kill9(self):
        node = self._snapshot_node()
        jobs, deleted = self._write_many(node)
        self.assertGreater(
            assert_ok(self, node.api("GET", "/api/v1/cluster/status"))
            ["applied_index"], 16 * 5, "expected several snapshots' worth")
        self._assert_state(node, jobs, deleted, "before restart")

        code = node.stop()
        self.assertEqual(code, 0, "graceful stop exit code\n%s" %
                         node.log_tail())
        node.restart()
        self._assert_state(node, jobs, deleted, "after SIGTERM restart")

        # More writes on top of the restored snapshot, then a hard kill.
        for jid in list(jobs)[:5]:
            jobs[jid] = assert_ok(self, node.api(
                "PATCH", "%s/%s" % (J, jid), {"description": "post-restart"}))
        node.kill9()
        node.restart()
        self._assert_state(node, jobs, deleted, "after kill -9 restart")

    def test_graceful_stop_exits_zero(self):
        node = self.node()
        self.create(node, "stop-me")
        self.assertEqual(node.stop(), 0, node.log_tail())


if __name__ == "__main__":
    unittest.main()
