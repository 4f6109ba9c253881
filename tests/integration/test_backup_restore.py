"""Backup and restore (docs/cluster.md "Snapshots, backup and restore"):
`GET /api/v1/cluster/backup` from a node, `chronos restore FILE --data-dir
DIR`, then `chronos serve --data-dir DIR` is a new single-node cluster with
every job, version and execution, which schedules the jobs and re-dispatches
the executions that were in flight (same id, next attempt).

The source node, its jobs, their history and the backup are built once for
the class; each test restores from that backup.
"""

import math
import os
import re
import time
import unittest

import chronos_harness as h
import exec_common as ec
from chronos_harness import assert_ok, job_body
from receiver import Behaviour, Receiver

J = "/api/v1/jobs"
TERMINAL = ec.TERMINAL


def stable(job):
    """A job's definition without the computed next_run."""
    return h.without(job, "next_run")


def versions_of(test, node, job_id):
    data = assert_ok(test, node.api("GET", "%s/%s/versions?limit=1000" %
                                    (J, job_id)))
    return data["versions"]


def all_job_ids(test, node):
    data = assert_ok(test, node.api("GET", J + "?limit=1000"))
    test.assertEqual(data["next_cursor"], "")
    return {j["id"] for j in data["jobs"]}


def tree(path):
    """Every file under `path` with its bytes, to show nothing changed."""
    out = {}
    for root, dirs, files in os.walk(path):
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), path) + "/"] = None
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, path)] = fh.read()
    return out


@h.require_binary
class BackupRestoreTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.rx = Receiver()
        cls.addClassCleanup(cls.rx.close)
        # The held job's first call is never answered by the source node's
        # time: its execution is in flight when the backup is taken.
        cls.rx.script("/held", Behaviour(hang=True))
        cls.source = ec.start_node(cls, class_level=True)
        src = cls.source

        def create(body):
            r = src.api("POST", J, body)
            assert r.status == 201, r
            return r.json["data"]

        cls.plain = create(job_body(ec.unique("plain"), tags={"k": "v"}))
        versioned = create(job_body(ec.unique("versioned")))
        for i in range(2):
            r = src.api("PATCH", "%s/%s" % (J, versioned["id"]),
                        {"description": "update %d" % i,
                         "tags": {"round": str(i)}})
            assert r.status == 200, r
            versioned = r.json["data"]
        assert versioned["version"] == 3, versioned
        cls.versioned = versioned
        cls.every_second = create({
            "name": ec.unique("every-second"), "schedule": "* * * * * *",
            "webhook": ec.webhook(cls.rx, "/tick"),
            "retry_policy": ec.NO_RETRY})
        cls.held = create({
            "name": ec.unique("held"), "schedule": h.YEARLY,
            "webhook": ec.webhook(cls.rx, "/held"),
            "retry_policy": ec.NO_RETRY})

        # Execution history: a few finished every-second runs, and the held
        # job's run in flight at its receiver.
        def finished_ticks():
            ex = h.http_request(src.http_port, "GET", "%s/%s/executions" %
                                (J, cls.every_second["id"])).json["data"]
            done = [e for e in ex["executions"] if e["status"] in TERMINAL]
            return len(done) >= 3
        h.wait_for(finished_ticks, 30, "three finished every-second runs")
        r = src.api("POST", "%s/%s/trigger" % (J, cls.held["id"]))
        assert r.status == 202, r
        cls.held_eid = r.json["data"]["id"]
        cls.held_first = cls.rx.wait_for(
            lambda rs: [q for q in rs if q.execution_id == cls.held_eid], 20,
            "the held run's first request")[0]

        cls.jobs = [cls.plain, cls.versioned, cls.every_second, cls.held]
        # What the source lists before the backup; every item of it must be
        # in the restored node.
        cls.before = {}
        for job in cls.jobs:
            jid = job["id"]
            cls.before[jid] = {
                "job": h.http_request(src.http_port, "GET",
                                      "%s/%s" % (J, jid)).json["data"],
                "versions": {
                    v["version"]: h.http_request(
                        src.http_port, "GET",
                        "%s/%s/versions/%d" % (J, jid, v["version"])
                    ).json["data"]
                    for v in h.http_request(
                        src.http_port, "GET",
                        "%s/%s/versions" % (J, jid)).json["data"]["versions"]},
                "executions": h.http_request(
                    src.http_port, "GET", "%s/%s/executions?limit=1000" %
                    (J, jid)).json["data"]["executions"],
            }
        held_before = [e for e in cls.before[cls.held["id"]]["executions"]
                       if e["id"] == cls.held_eid]
        assert held_before and held_before[0]["status"] == "running", \
            held_before

        backup = src.api("GET", "/api/v1/cluster/backup")
        assert backup.status == 200, backup
        assert backup.headers.get("content-type", "").startswith(
            "application/octet-stream"), backup.headers
        cls.backup_index = int(backup.headers["x-chronos-applied-index"])
        assert cls.backup_index > 0, backup.headers
        cls.work = h.make_temp_dir("chronos-backup-")
        cls.addClassCleanup(h.remove_temp_dir, cls.work)
        cls.backup_path = os.path.join(cls.work, "chronos-backup.bin")
        with open(cls.backup_path, "wb") as f:
            f.write(backup.raw)
        cls.backup_bytes = backup.raw
        # The old cluster is gone; only the backup is left.
        src.kill9()

    def restore(self, data_dir, backup_path=None):
        return h.run_chronos(["restore", backup_path or self.backup_path,
                              "--data-dir", data_dir])

    def fresh_parent(self):
        d = h.make_temp_dir("chronos-restore-")
        self.addCleanup(h.remove_temp_dir, d)
        return d

    def restored_node(self, data_dir, node_id="r1"):
        node = h.Node(data_dir=data_dir, node_id=node_id)
        self.addCleanup(node.cleanup)
        node.start_ready()
        return node

    def assert_everything_restored(self, node):
        self.assertEqual(all_job_ids(self, node),
                         {j["id"] for j in self.jobs})
        for job in self.jobs:
            jid = job["id"]
            before = self.before[jid]
            got = assert_ok(self, node.api("GET", "%s/%s" % (J, jid)))
            self.assertEqual(stable(got), stable(before["job"]))
            self.assertEqual(sorted(v["version"] for v in
                                    versions_of(self, node, jid)),
                             sorted(before["versions"]))
            for v, old in before["versions"].items():
                self.assertEqual(assert_ok(self, node.api(
                    "GET", "%s/%s/versions/%d" % (J, jid, v))), old,
                    "version %d of %s" % (v, job["name"]))
            for old in before["executions"]:
                now = ec.get_execution(self, node, jid, old["id"])
                if old["status"] in TERMINAL:
                    self.assertEqual(now, old)
                else:
                    # Still in flight at listing time: it may have finished
                    # before the backup or be re-dispatched since.
                    for k in ("job_id", "scheduled_time", "trigger"):
                        self.assertEqual(now[k], old[k], repr(now))

    # --- restore and serve --------------------------------------------------
    def test_restored_node_holds_every_job_version_and_execution_and_runs(self):
        data_dir = os.path.join(self.fresh_parent(), "restored")
        rc, out = self.restore(data_dir)
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"jobs:\s+4\b")
        self.assertRegex(out, r"backup applied index:\s+%d\b" %
                         self.backup_index)
        self.assertIn("chronos serve --data-dir %s" % data_dir, out)
        self.assertEqual(sorted(os.listdir(data_dir)), ["store"])
        self.assertEqual(os.listdir(os.path.dirname(data_dir)), ["restored"],
                         "staging directory left behind")

        seq_before = max((q.seq for q in self.rx.requests), default=0)
        started = time.time()
        node = self.restored_node(data_dir)
        status = ec.cluster_status(self, node)
        self.assertEqual(status.get("node_id"), "r1", status)
        self.assertEqual(status.get("state"), "leader", status)
        self.assert_everything_restored(node)

        # It schedules: the every-second job fires at a time after the start.
        jid = self.every_second["id"]
        first_second = math.floor(started) + 1
        self.rx.wait_for(lambda rs: any(
            q.seq > seq_before and q.job_id == jid and
            ec.parse_time(q.scheduled_time) >= first_second for q in rs), 30,
            "a run of the every-second job scheduled by the restored node")

        # The run in flight at backup time is sent again: same execution id,
        # a later attempt, and then finishes.
        again = self.rx.wait_for(lambda rs: [
            q for q in rs if q.seq > seq_before and
            q.execution_id == self.held_eid], 30,
            "the held run re-dispatched by the restored node")[0]
        self.assertGreater(again.attempt, self.held_first.attempt, repr(again))
        self.assertEqual(again.scheduled_time, self.held_first.scheduled_time)
        e = ec.wait_execution_status(self, node, self.held["id"],
                                     self.held_eid)
        self.assertEqual(e["status"], "success", repr(e))

        # New writes continue the restored history.
        r = assert_ok(self, node.api("PATCH", "%s/%s" % (J,
                                                         self.versioned["id"]),
                                     {"description": "after restore"}))
        self.assertEqual(r["version"], 4)

    def test_restore_into_existing_empty_dir_keeps_the_dir(self):
        data_dir = os.path.join(self.fresh_parent(), "volume")
        os.mkdir(data_dir)
        rc, out = self.restore(data_dir)
        self.assertEqual(rc, 0, out)
        self.assertEqual(sorted(os.listdir(data_dir)), ["store"],
                         "staging directory left behind")
        node = self.restored_node(data_dir, node_id="r2")
        got = assert_ok(self, node.api("GET", "%s/%s" %
                                       (J, self.versioned["id"])))
        self.assertEqual(stable(got),
                         stable(self.before[self.versioned["id"]]["job"]))

    # --- refusals -------------------------------------------------------------
    def test_restore_into_non_empty_dir_fails_and_changes_nothing(self):
        parent = self.fresh_parent()
        data_dir = os.path.join(parent, "used")
        os.makedirs(os.path.join(data_dir, "raft"))
        with open(os.path.join(data_dir, "raft", "metadata1"), "wb") as f:
            f.write(b"someone else's state")
        before = tree(parent)
        rc, out = self.restore(data_dir)
        self.assertNotEqual(rc, 0, out)
        self.assertIsNotNone(rc, "restore did not exit: %s" % out)
        self.assertIn(data_dir, out)
        self.assertIn("not empty", out)
        self.assertEqual(tree(parent), before)

    def test_restore_into_a_file_fails(self):
        parent = self.fresh_parent()
        data_dir = os.path.join(parent, "file")
        with open(data_dir, "wb") as f:
            f.write(b"x")
        rc, out = self.restore(data_dir)
        self.assertNotEqual(rc, 0, out)
        self.assertIn(data_dir, out)
        self.assertEqual(tree(parent), {"file": b"x"})

    def test_corrupted_backup_is_refused_and_leaves_no_dir(self):
        bad_dir = self.fresh_parent()
        # A flipped byte in the middle of the data (only the checksum can
        # tell), and one in the header.
        for pos in (len(self.backup_bytes) // 2, 5):
            bad = bytearray(self.backup_bytes)
            bad[pos] ^= 0x01
            bad_path = os.path.join(bad_dir, "bad-%d.bin" % pos)
            with open(bad_path, "wb") as f:
                f.write(bytes(bad))
            parent = self.fresh_parent()
            data_dir = os.path.join(parent, "restored")
            rc, out = self.restore(data_dir, bad_path)
            self.assertNotEqual(rc, 0, out)
            self.assertIsNotNone(rc, "restore did not exit: %s" % out)
            self.assertIn(bad_path, out)
            self.assertIn("not a valid Chronos backup", out)
            self.assertEqual(os.listdir(parent), [],
                             "restore left something behind: %s" % out)

    def test_truncated_backup_is_refused_and_leaves_empty_dir_empty(self):
        bad_path = os.path.join(self.fresh_parent(), "truncated.bin")
        with open(bad_path, "wb") as f:
            f.write(self.backup_bytes[:len(self.backup_bytes) - 7])
        data_dir = os.path.join(self.fresh_parent(), "volume")
        os.mkdir(data_dir)
        rc, out = self.restore(data_dir, bad_path)
        self.assertNotEqual(rc, 0, out)
        self.assertEqual(os.listdir(data_dir), [],
                         "restore left something behind: %s" % out)

    def test_missing_backup_is_refused_and_leaves_no_dir(self):
        parent = self.fresh_parent()
        missing = os.path.join(parent, "no-such-backup.bin")
        data_dir = os.path.join(parent, "restored")
        rc, out = self.restore(data_dir, missing)
        self.assertNotEqual(rc, 0, out)
        self.assertIn(missing, out)
        self.assertTrue(re.search(r"cannot read backup", out), out)
        self.assertEqual(os.listdir(parent), [])


if __name__ == "__main__":
    unittest.main()
