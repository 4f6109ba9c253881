"""A 3-node cluster (docs/cluster.md): agreement on the leader, the member
registry, every write forwarded from a follower to the leader (same answer
plus X-Chronos-Forwarded-By), reads everywhere, /ready, and 503 NO_LEADER
exactly while a majority is down.
"""

import unittest

import cluster_harness as ch
from cluster_harness import FORWARDED, assert_ok, ec, h


def create(test, node, name=None, status=201, **fields):
    r = node.api("POST", "/api/v1/jobs", h.job_body(name or ec.unique("job"),
                                                    **fields))
    return r, assert_ok(test, r, status, "create job on %s" % node.node_id)


def wait_readable(node, job_id):
    """Waits until the node's own state has the job; returns it."""
    def get():
        r = node.api("GET", "/api/v1/jobs/%s" % job_id)
        return r.json["data"] if r.status == 200 else None
    return h.wait_for(get, ch.DEADLINE_S, "job %s on %s" % (job_id,
                                                          node.node_id))


def assert_forwarded(test, resp, follower):
    test.assertEqual(resp.headers.get(FORWARDED), follower.node_id,
                     "no %s header from %s: %r %r" % (
                         FORWARDED, follower.node_id, resp.headers, resp))


@h.require_binary
class BasicClusterTest(ch.ClusterTestCase):
    """One healthy cluster shared by the tests (none of them stops a node)."""

    TIME_BUDGET_S = 90

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.c = cls.new_class_cluster(3)
        cls.rx = ch.Receiver()
        cls.addClassCleanup(cls.rx.close)

    def setUp(self):
        super().setUp()
        self.leader = self.c.leader()
        self.followers = [n for n in self.c.live() if n is not self.leader]
        self.assertEqual(len(self.followers), 2)

    def test_status_agrees_on_leader_and_term(self):
        statuses = {n.node_id: self.c.status(n) for n in self.c.all_nodes}
        info = repr(statuses)
        self.assertEqual({st["leader"]["address"] for st in statuses.values()},
                         {self.c.raft_address(self.leader)}, info)
        self.assertEqual(len({st["term"] for st in statuses.values()}), 1, info)
        self.assertEqual([k for k, st in statuses.items()
                          if st["state"] == "leader"], [self.leader.node_id],
                         info)
        for node_id, st in statuses.items():
            self.assertEqual(st["node_id"], node_id, info)
            self.assertEqual(len(st["nodes"]), 3, info)
            self.assertIs(st["ready"], True, info)

    def test_nodes_lists_every_member(self):
        want = {n.node_id: n for n in self.c.all_nodes}
        self.c.wait_registered()
        for node in self.c.all_nodes:
            members = self.c.cluster_nodes(node)
            info = "%s: %r" % (node.node_id, members)
            self.assertEqual(sorted(m["id"] for m in members), sorted(want),
                             info)
            for m in members:
                n = want[m["id"]]
                self.assertEqual(m["raft_address"], self.c.raft_address(n),
                                 info)
                self.assertEqual(m["http_address"],
                                 "%s:%d" % (ch.HOST, n.http_port), info)
                self.assertEqual(m["role"], "voter", info)
                self.assertTrue(str(m["raft_id"]), info)
                self.assertIn("last_contact_ms", m, info)
                if n is self.leader:
                    self.assertEqual(m["state"], "leader", info)
                elif n is node:
                    self.assertEqual(m["state"], "follower", info)
                # A follower hears from the leader every heartbeat (50 ms)
                # and knows when it last did; the leader knows, per member,
                # whether it answered within the election timeout, when it
                # last heard from it and how far its log is replicated there.
                if node is not self.leader and n is self.leader:
                    self.assertIsInstance(m["last_contact_ms"], int, info)
                    self.assertLess(m["last_contact_ms"], 5000, info)
                if node is self.leader:
                    self.assertIs(m["reachable"], True, info)
                    self.assertIsInstance(m["match_index"], int, info)
                    if n is not node:
                        self.assertIsInstance(m["last_contact_ms"], int, info)
                        self.assertLess(m["last_contact_ms"], 5000, info)
            self.assertEqual([m["id"] for m in members if m["is_leader"]],
                             [self.leader.node_id], info)

    def test_create_through_each_follower(self):
        ref, ref_job = create(self, self.leader)
        self.assertNotIn(FORWARDED, ref.headers)
        for f in self.followers:
            r, job = create(self, f)
            assert_forwarded(self, r, f)
            self.assertEqual(sorted(r.json), sorted(ref.json))
            self.assertEqual(sorted(job), sorted(ref_job),
                             "same job shape as created on the leader")
            self.assertEqual(job["version"], 1)
            self.assertEqual(r.headers.get("content-type"),
                             ref.headers.get("content-type"))
            # Linearizable read on the follower right away, no waiting.
            got = assert_ok(self, f.api("GET", "/api/v1/jobs/%s?consistent=true"
                                        % job["id"]), 200, "consistent read")
            self.assertEqual(got["id"], job["id"])
            self.assertEqual(got["name"], job["name"])
            # Plain reads everywhere once replicated, answered locally.
            for n in self.c.all_nodes:
                self.assertEqual(wait_readable(n, job["id"])["version"], 1)
                r = n.api("GET", "/api/v1/jobs/%s" % job["id"])
                self.assertNotIn(FORWARDED, r.headers)

    def test_idle_followers_do_not_spin(self):
        """A follower that has applied writes sits idle: its scheduler
        thread waits for leadership instead of looping on the jobs the
        writes marked (it once burned a core per follower, forever). The
        bound is loose on purpose: a spinning follower uses most of a core
        over the window, an idle one about 1%."""
        _, job = create(self, self.leader)
        for f in self.followers:
            wait_readable(f, job["id"])
        ch.assert_idle(self, self.followers)

    def test_update_trigger_delete_through_followers(self):
        f1, f2 = self.followers
        _, job = create(self, f1, webhook=ec.webhook(self.rx))
        path = "/api/v1/jobs/%s" % job["id"]

        body = h.job_body(job["name"], description="replaced",
                          webhook=ec.webhook(self.rx))
        r = f2.api("PUT", path, body)
        assert_forwarded(self, r, f2)
        self.assertEqual(assert_ok(self, r, 200, "PUT")["version"], 2)

        r = f1.api("PATCH", path, {"description": "patched"},
                   headers={"If-Match": "2"})
        assert_forwarded(self, r, f1)
        patched = assert_ok(self, r, 200, "PATCH")
        self.assertEqual((patched["version"], patched["description"]),
                         (3, "patched"))

        r = f2.api("POST", path + "/disable")
        assert_forwarded(self, r, f2)
        self.assertIs(assert_ok(self, r, 200, "disable")["enabled"], False)

        r = ec.trigger(f1, job["id"])
        assert_forwarded(self, r, f1)
        eid = assert_ok(self, r, 202, "trigger")["id"]
        got = self.rx.wait_for(lambda rs: [x for x in rs
                                           if x.execution_id == eid],
                               ch.DEADLINE_S, "the triggered run")[0]
        self.assertEqual(got.job_id, job["id"])
        e = ec.wait_execution_status(self, self.leader, job["id"], eid)
        self.assertEqual(e["status"], "success", repr(e))

        r = f2.api("DELETE", path)
        assert_forwarded(self, r, f2)
        self.assertEqual(assert_ok(self, r, 200, "DELETE"),
                         {"id": job["id"], "deleted": True})
        h.assert_error(self, f1.api("GET", path + "?consistent=true"), 404,
                       "NOT_FOUND")

    def test_errors_come_back_from_the_leader_unchanged(self):
        f1, f2 = self.followers
        r = f1.api("POST", "/api/v1/jobs", h.job_body("bad", schedule="* *"))
        assert_forwarded(self, r, f1)
        h.assert_error(self, r, 400, "VALIDATION_ERROR", field="schedule")

        _, job = create(self, self.leader)
        r = f2.api("POST", "/api/v1/jobs", h.job_body(job["name"]))
        assert_forwarded(self, r, f2)
        h.assert_error(self, r, 409, "ALREADY_EXISTS")

        r = f1.api("PATCH", "/api/v1/jobs/%s" % job["id"],
                   {"description": "x"}, headers={"If-Match": "7"})
        assert_forwarded(self, r, f1)
        h.assert_error(self, r, 409, "CONFLICT")

        r = f2.api("DELETE", "/api/v1/jobs/no-such-job")
        assert_forwarded(self, r, f2)
        h.assert_error(self, r, 404, "NOT_FOUND")

    def test_validate_schedule_is_not_forwarded(self):
        for f in self.followers:
            r = f.api("POST", "/api/v1/schedules/validate",
                      {"schedule": "*/5 * * * *", "count": 2})
            self.assertEqual(len(assert_ok(self, r)["next_runs"]), 2)
            self.assertNotIn(FORWARDED, r.headers)

    def test_ready_on_every_node(self):
        for n in self.c.all_nodes:
            r = n.api("GET", "/ready")
            self.assertEqual(r.status, 200, "%s: %r" % (n.node_id, r))


@h.require_binary
class QuorumLossTest(ch.ClusterTestCase):
    """Writes fail with 503 NO_LEADER + Retry-After only while a majority is
    down; nothing committed is lost when it comes back."""

    TIME_BUDGET_S = 150

    def no_leader(self, node):
        """Waits until a write on `node` gets 503 NO_LEADER with Retry-After
        (the survivor first has to notice: an election timeout, or a leader
        stepping down for lack of a quorum)."""
        def write_refused():
            r = node.api("POST", "/api/v1/jobs",
                         h.job_body(ec.unique("refused")), timeout=5)
            if (r.status == 503 and r.json and
                    r.json["error"]["code"] == "NO_LEADER"):
                return r
            return None
        r = ch.wait_while_running([node], write_refused, ch.DEADLINE_S,
                                  "503 NO_LEADER on %s" % node.node_id)
        self.assertTrue(r.headers.get("retry-after"), repr(r.headers))
        ready = node.api("GET", "/ready")
        self.assertEqual(ready.status, 503, repr(ready))
        return r

    def check_majority_loss(self, survivor_leads):
        """Kills one node (writes go on), then a second: the survivor is the
        leader of the moment when survivor_leads, else a follower."""
        c = self.new_cluster(3)
        leader = c.leader()
        jobs = [create(self, n)[1]["id"] for n in c.live()]

        # One node down: a majority is left, writes go on everywhere.
        first_victim = next(n for n in c.live() if n is not leader)
        c.kill9(first_victim)
        leader = c.leader()
        for n in c.live():
            jobs.append(create(self, n)[1]["id"])

        # Two down: the survivor refuses writes but still answers reads.
        second_victim = next(n for n in c.live()
                             if (n is leader) != survivor_leads)
        c.kill9(second_victim)
        (survivor,) = c.live()
        self.no_leader(survivor)
        got = survivor.api("GET", "/api/v1/jobs/%s" % jobs[0])
        self.assertEqual(got.status, 200, repr(got))

        c.restart(first_victim)
        c.restart(second_victim)
        c.leader()
        c.wait_ready()
        for n in c.live():
            jobs.append(create(self, n)[1]["id"])
        for n in c.live():
            ch.wait_has_jobs(n, jobs)

    def test_survivor_follower_refuses_writes(self):
        self.check_majority_loss(survivor_leads=False)

    def test_isolated_leader_steps_down_and_refuses_writes(self):
        self.check_majority_loss(survivor_leads=True)


if __name__ == "__main__":
    unittest.main()
