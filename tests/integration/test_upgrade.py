"""A data directory written by an earlier build starts under this one with
every job and execution intact, and its jobs keep firing.

data/upgrade-<commit>.tar.gz: written by make_upgrade_fixture.py with a
build of <commit> (the store then had no timing records, c/: this build
rebuilds them from the jobs when it opens the store, store/README.md)."""

import glob
import os
import tarfile
import time
import unittest

import chronos_harness as h
from chronos_harness import assert_ok
from exec_common import list_executions

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = sorted(glob.glob(os.path.join(HERE, "data", "upgrade-*.tar.gz")))


@h.require_binary
class UpgradeTest(unittest.TestCase):

    def start_from(self, fixture):
        root = h.make_temp_dir("chronos-upgrade-")
        with tarfile.open(fixture) as tar:
            tar.extractall(root)
        return h.new_node(self, data_dir=os.path.join(root, "data"))

    def jobs(self, node):
        data = assert_ok(self, node.api("GET", "/api/v1/jobs?limit=100"))
        return {j["name"]: j for j in data["jobs"]}

    def test_fixture_exists(self):
        self.assertTrue(FIXTURES, "no data/upgrade-*.tar.gz")

    def test_jobs_and_executions_survive_and_jobs_keep_firing(self):
        for fixture in FIXTURES:
            with self.subTest(fixture=os.path.basename(fixture)):
                node = self.start_from(fixture)
                jobs = self.jobs(node)
                self.assertEqual(set(jobs), {"every-second", "paused-daily",
                                             "jittered-daily"})
                self.assertFalse(jobs["paused-daily"]["enabled"])
                self.assertEqual(jobs["jittered-daily"]["jitter"], "10m")
                self.assertEqual(jobs["jittered-daily"]["timezone"],
                                 "Europe/Berlin")
                every = jobs["every-second"]["id"]
                before = list_executions(self, node, every)
                self.assertGreaterEqual(len(before), 1,
                                        "the fixture's runs are gone")
                self.assertIn("timing records rebuilt for 3 job(s)",
                              node.log_text())
                # Scheduled by this build from the rebuilt records: new runs
                # (they fail: the webhook's port is closed), none lost.
                deadline = time.monotonic() + 30
                while True:
                    after = list_executions(self, node, every)
                    new = [e for e in after
                           if e["id"] not in {b["id"] for b in before}]
                    if any(e["status"] in ("failed", "success") for e in new):
                        break
                    self.assertLess(time.monotonic(), deadline,
                                    "no new run of the every-second job")
                    time.sleep(0.2)
                old = {e["id"]: e for e in after}
                for e in before:
                    if e["status"] not in ("running", "pending"):
                        self.assertEqual(old[e["id"]], e)
                # A restart does not rebuild again: the records are current.
                node.stop()
                node.start_ready()
                self.assertEqual(
                    node.log_text().count("timing records rebuilt"), 1)
                self.assertEqual(set(self.jobs(node)), set(jobs))


if __name__ == "__main__":
    unittest.main()
