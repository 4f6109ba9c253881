"""Jobs API against the real binary (SPEC §1, §5; docs/api.md).

One node serves the whole class; each test uses its own namespace or job
names so tests do not see each other's jobs.
"""

import datetime
import itertools
import threading
import unittest
import uuid

import chronos_harness as h
from chronos_harness import assert_error, assert_ok, job_body

_counter = itertools.count(1)


def unique(prefix):
    return "%s-%d-%s" % (prefix, next(_counter), uuid.uuid4().hex[:6])


def parse_rfc3339(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


@h.require_binary
class JobsApiTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.node = h.Node()
        cls.addClassCleanup(cls.node.cleanup)
        cls.node.start_ready()

    # --- helpers -----------------------------------------------------------
    def api(self, *args, **kwargs):
        return self.node.api(*args, **kwargs)

    def create(self, name=None, **fields):
        body = job_body(name or unique("job"), **fields)
        return assert_ok(self, self.api("POST", "/api/v1/jobs", body), 201,
                         "create %s" % body["name"])

    def get(self, ref, query=""):
        return assert_ok(self, self.api("GET", "/api/v1/jobs/%s%s" % (ref,
                                                                      query)))

    def list_jobs(self, query):
        data = assert_ok(self, self.api("GET", "/api/v1/jobs?" + query))
        self.assertIn("jobs", data)
        self.assertIn("next_cursor", data)
        return data

    def patch(self, job_id, body, headers=None):
        return self.api("PATCH", "/api/v1/jobs/%s" % job_id, body,
                        headers=headers)

    # --- create ------------------------------------------------------------
    def test_create_returns_201_with_spec_defaults(self):
        name = unique("defaults")
        r = self.api("POST", "/api/v1/jobs", job_body(name))
        job = assert_ok(self, r, 201)
        self.assertEqual(job["name"], name)
        self.assertEqual(job["namespace"], "default")
        self.assertEqual(job["timezone"], "UTC")
        self.assertIs(job["enabled"], True)
        self.assertEqual(job["schedule"], h.YEARLY)
        self.assertEqual(job.get("description", ""), "")
        self.assertEqual(job["retry_policy"], {
            "max_attempts": 3, "initial_interval": "1s", "max_interval": "1m",
            "multiplier": 2.0, "jitter": 0.1})
        self.assertEqual(job["timeout"], "5m")
        self.assertEqual(job["concurrency"], "buffer_one")
        self.assertEqual(job["missed_run_policy"], "execute_one")
        self.assertEqual(job["catchup_window"], "1d")
        self.assertEqual(job["jitter"], "0s")
        self.assertEqual(job.get("tags", {}), {})
        self.assertEqual(job["version"], 1)
        self.assertEqual(job["webhook"]["url"], h.WEBHOOK_URL)
        self.assertEqual(job["webhook"]["method"], "POST")
        self.assertNotIn("dispatch", [k for k, v in job.items() if v])

    def test_create_returns_uuid_v4_id(self):
        job = self.create()
        self.assertRegex(job["id"], h.UUID_RE)

    def test_create_returns_rfc3339_timestamps_and_next_run(self):
        job = self.create()
        for f in ("created_at", "updated_at", "next_run"):
            self.assertIsInstance(job.get(f), str, "%s in %r" % (f, job))
            self.assertRegex(job[f], h.RFC3339_RE, f)
        self.assertEqual(job["created_at"], job["updated_at"])
        now = datetime.datetime.now(datetime.timezone.utc)
        created = parse_rfc3339(job["created_at"])
        self.assertLess(abs((now - created).total_seconds()), 120)
        # YEARLY = Jan 1 00:00 UTC: the next one after now.
        self.assertEqual(job["next_run"],
                         "%d-01-01T00:00:00Z" % (now.year + 1))

    def test_create_keeps_given_fields(self):
        job = self.create(
            namespace="given-ns", description="nightly report",
            timezone="Europe/Berlin", enabled=False,
            retry_policy={"max_attempts": 5, "initial_interval": "2s",
                          "max_interval": "90s", "multiplier": 1.5,
                          "jitter": 0.2},
            timeout="30s", concurrency="allow", missed_run_policy="execute_all",
            catchup_window="2h", jitter="10s", tags={"team": "core"})
        self.assertEqual(job["namespace"], "given-ns")
        self.assertEqual(job["description"], "nightly report")
        self.assertEqual(job["timezone"], "Europe/Berlin")
        self.assertIs(job["enabled"], False)
        self.assertEqual(job["retry_policy"], {
            "max_attempts": 5, "initial_interval": "2s", "max_interval": "1m30s",
            "multiplier": 1.5, "jitter": 0.2})
        self.assertEqual(job["timeout"], "30s")
        self.assertEqual(job["concurrency"], "allow")
        self.assertEqual(job["missed_run_policy"], "execute_all")
        self.assertEqual(job["catchup_window"], "2h")
        self.assertEqual(job["jitter"], "10s")
        self.assertEqual(job["tags"], {"team": "core"})
        self.assertIsNone(job.get("next_run"), "disabled job has no next_run")

    # --- get ---------------------------------------------------------------
    def test_get_by_id_returns_created_job(self):
        job = self.create()
        self.assertEqual(self.get(job["id"]), job)

    def test_get_by_name_in_default_namespace(self):
        job = self.create()
        self.assertEqual(self.get(job["name"])["id"], job["id"])

    def test_get_by_name_uses_namespace_query(self):
        ns = unique("ns")
        job = self.create(namespace=ns)
        self.assertEqual(self.get(job["name"], "?namespace=" + ns)["id"],
                         job["id"])
        assert_error(self, self.api("GET", "/api/v1/jobs/" + job["name"]), 404,
                     "NOT_FOUND")

    def test_get_unknown_job_is_404(self):
        assert_error(self, self.api("GET", "/api/v1/jobs/%s" % uuid.uuid4()),
                     404, "NOT_FOUND")

    # --- list --------------------------------------------------------------
    def test_list_filters_by_namespace(self):
        ns_a, ns_b = unique("lsa"), unique("lsb")
        a = [self.create(namespace=ns_a)["id"] for _ in range(2)]
        self.create(namespace=ns_b)
        data = self.list_jobs("namespace=" + ns_a)
        self.assertEqual(sorted(j["id"] for j in data["jobs"]), sorted(a))
        self.assertEqual(data["next_cursor"], "")

    def test_list_filters_by_two_tags_all_must_match(self):
        ns = unique("tags")
        both = self.create(namespace=ns, tags={"team": "core", "env": "prod"})
        self.create(namespace=ns, tags={"team": "core", "env": "dev"})
        self.create(namespace=ns, tags={"team": "edge", "env": "prod"})
        self.create(namespace=ns)
        data = self.list_jobs("namespace=%s&tag.team=core&tag.env=prod" % ns)
        self.assertEqual([j["id"] for j in data["jobs"]], [both["id"]])

    def test_list_filters_by_one_tag(self):
        ns = unique("tag1")
        core = {self.create(namespace=ns, tags={"team": "core"})["id"],
                self.create(namespace=ns, tags={"team": "core", "x": "y"})["id"]}
        self.create(namespace=ns, tags={"team": "edge"})
        data = self.list_jobs("namespace=%s&tag.team=core" % ns)
        self.assertEqual({j["id"] for j in data["jobs"]}, core)

    def test_list_filters_by_enabled_false(self):
        ns = unique("en")
        off = self.create(namespace=ns, enabled=False)
        self.create(namespace=ns)
        data = self.list_jobs("namespace=%s&enabled=false" % ns)
        self.assertEqual([j["id"] for j in data["jobs"]], [off["id"]])
        data = self.list_jobs("namespace=%s&enabled=true" % ns)
        self.assertNotIn(off["id"], [j["id"] for j in data["jobs"]])
        self.assertEqual(len(data["jobs"]), 1)

    def test_list_q_matches_name_or_description_substring(self):
        ns = unique("q")
        token = uuid.uuid4().hex[:10]
        by_name = self.create(name="n-%s-x" % token, namespace=ns)
        by_desc = self.create(namespace=ns, description="has %s inside" % token)
        self.create(namespace=ns, description="nothing here")
        data = self.list_jobs("namespace=%s&q=%s" % (ns, token))
        self.assertEqual({j["id"] for j in data["jobs"]},
                         {by_name["id"], by_desc["id"]})

    def test_list_pages_with_limit_2_return_each_job_exactly_once(self):
        ns = unique("page")
        ids = {self.create(namespace=ns)["id"] for _ in range(7)}
        seen = []
        cursor = None
        pages = 0
        while True:
            pages += 1
            self.assertLessEqual(pages, 10, "cursor never ended: %r" % seen)
            q = "namespace=%s&limit=2" % ns
            if cursor:
                q += "&cursor=" + cursor
            data = self.list_jobs(q)
            self.assertLessEqual(len(data["jobs"]), 2, data)
            seen += [j["id"] for j in data["jobs"]]
            cursor = data["next_cursor"]
            if cursor == "":
                break
            self.assertTrue(data["jobs"], "empty page with a cursor: %r" % data)
        self.assertEqual(len(seen), len(set(seen)), "duplicates: %r" % seen)
        self.assertEqual(set(seen), ids)
        self.assertEqual(pages, 4)

    def test_list_returns_full_jobs(self):
        ns = unique("full")
        job = self.create(namespace=ns)
        data = self.list_jobs("namespace=" + ns)
        self.assertEqual(data["jobs"], [job])

    # --- PUT ---------------------------------------------------------------
    def test_put_replaces_whole_definition_and_reapplies_defaults(self):
        job = self.create(description="old", tags={"a": "b"}, timeout="1m",
                          concurrency="allow", jitter="5s",
                          retry_policy={"max_attempts": 7})
        new_body = {"name": job["name"], "schedule": "0 0 1 6 *",
                    "webhook": {"url": h.WEBHOOK_URL + "/v2"}}
        r = self.api("PUT", "/api/v1/jobs/%s" % job["id"], new_body)
        put = assert_ok(self, r)
        self.assertEqual(put["id"], job["id"])
        self.assertEqual(put["version"], 2)
        self.assertEqual(put["created_at"], job["created_at"])
        self.assertGreaterEqual(parse_rfc3339(put["updated_at"]),
                                parse_rfc3339(job["updated_at"]))
        self.assertEqual(put["schedule"], "0 0 1 6 *")
        self.assertEqual(put["webhook"]["url"], h.WEBHOOK_URL + "/v2")
        self.assertEqual(put.get("description", ""), "")
        self.assertEqual(put.get("tags", {}), {})
        self.assertEqual(put["timeout"], "5m")
        self.assertEqual(put["concurrency"], "buffer_one")
        self.assertEqual(put["jitter"], "0s")
        self.assertEqual(put["retry_policy"]["max_attempts"], 3)
        self.assertEqual(self.get(job["id"]), put)

    # --- PATCH -------------------------------------------------------------
    def test_patch_changes_one_field_and_keeps_the_others(self):
        job = self.create(description="before", timeout="1m", tags={"k": "v"})
        r = self.patch(job["id"], {"description": "after"})
        patched = assert_ok(self, r)
        self.assertEqual(patched["description"], "after")
        self.assertEqual(patched["version"], 2)
        for k in ("name", "namespace", "schedule", "timeout", "tags",
                  "webhook", "retry_policy", "created_at", "id"):
            self.assertEqual(patched[k], job[k], k)
        self.assertEqual(self.get(job["id"]), patched)

    def test_patch_merges_nested_webhook_headers(self):
        job = self.create(webhook={"url": h.WEBHOOK_URL,
                                   "headers": {"A": "1", "B": "2"}})
        r = self.patch(job["id"], {"webhook": {"headers": {"B": "3", "C": "4"}}})
        patched = assert_ok(self, r)
        self.assertEqual(patched["webhook"]["headers"],
                         {"A": "1", "B": "3", "C": "4"})
        self.assertEqual(patched["webhook"]["url"], h.WEBHOOK_URL)
        self.assertEqual(patched["version"], 2)

    def test_patch_null_removes_a_key(self):
        job = self.create(tags={"keep": "1", "drop": "2"})
        patched = assert_ok(self, self.patch(job["id"],
                                             {"tags": {"drop": None}}))
        self.assertEqual(patched["tags"], {"keep": "1"})

    def test_patch_with_matching_if_match_succeeds(self):
        job = self.create()
        r = self.patch(job["id"], {"description": "x"}, headers={"If-Match": "1"})
        self.assertEqual(assert_ok(self, r)["version"], 2)
        r = self.patch(job["id"], {"description": "y"},
                       headers={"If-Match": '"2"'})
        self.assertEqual(assert_ok(self, r)["version"], 3)

    def test_patch_with_mismatched_if_match_is_409_and_changes_nothing(self):
        job = self.create(description="orig")
        r = self.patch(job["id"], {"description": "new"},
                       headers={"If-Match": "7"})
        assert_error(self, r, 409, "CONFLICT")
        self.assertEqual(self.get(job["id"]), job)

    def test_put_with_mismatched_if_match_is_409_and_changes_nothing(self):
        job = self.create(description="orig")
        body = job_body(job["name"], description="new")
        r = self.api("PUT", "/api/v1/jobs/%s" % job["id"], body,
                     headers={"If-Match": '"2"'})
        assert_error(self, r, 409, "CONFLICT")
        self.assertEqual(self.get(job["id"]), job)

    def test_delete_with_mismatched_if_match_is_409_and_keeps_job(self):
        job = self.create()
        r = self.api("DELETE", "/api/v1/jobs/%s" % job["id"],
                     headers={"If-Match": "5"})
        assert_error(self, r, 409, "CONFLICT")
        self.assertEqual(self.get(job["id"]), job)

    def test_patch_rename_frees_old_name(self):
        job = self.create()
        new_name = unique("renamed")
        r = assert_ok(self, self.patch(job["id"], {"name": new_name}))
        self.assertEqual(r["name"], new_name)
        self.assertEqual(self.get(new_name)["id"], job["id"])
        assert_error(self, self.api("GET", "/api/v1/jobs/" + job["name"]), 404,
                     "NOT_FOUND")
        self.assertNotEqual(self.create(name=job["name"])["id"], job["id"])

    def test_same_name_is_allowed_in_another_namespace(self):
        job = self.create()
        other = self.create(name=job["name"], namespace=unique("other"))
        self.assertNotEqual(other["id"], job["id"])

    # --- races ---------------------------------------------------------------
    def _parallel(self, fn, n=8):
        results = [None] * n

        def run(i):
            try:
                results[i] = fn(i)
            except Exception as e:  # noqa: BLE001 - reported below
                results[i] = e
        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
            self.assertFalse(t.is_alive(), "request thread hung")
        return results

    def test_concurrent_creates_of_one_name_make_exactly_one_job(self):
        ns = unique("race")
        name = unique("same")
        results = self._parallel(lambda i: self.api(
            "POST", "/api/v1/jobs", job_body(name, namespace=ns,
                                             description=str(i))))
        statuses = sorted(getattr(r, "status", r) for r in results)
        self.assertEqual(statuses, [201] + [409] * 7, results)
        for r in results:
            if r.status == 409:
                self.assertEqual(r.json["error"]["code"], "ALREADY_EXISTS")
        self.assertEqual(len(self.list_jobs("namespace=" + ns)["jobs"]), 1)

    def test_concurrent_patches_with_same_if_match_let_exactly_one_win(self):
        job = self.create()
        results = self._parallel(lambda i: self.patch(
            job["id"], {"description": "writer %d" % i},
            headers={"If-Match": "1"}))
        statuses = sorted(getattr(r, "status", r) for r in results)
        self.assertEqual(statuses, [200] + [409] * 7, results)
        winner = [r for r in results if r.status == 200][0].json["data"]
        self.assertEqual(self.get(job["id"]), winner)
        self.assertEqual(winner["version"], 2)

    def test_concurrent_patches_without_if_match_all_apply_in_sequence(self):
        job = self.create()
        results = self._parallel(lambda i: self.patch(
            job["id"], {"tags": {"w%d" % i: "1"}}))
        self.assertEqual([getattr(r, "status", r) for r in results], [200] * 8,
                         results)
        self.assertEqual(sorted(r.json["data"]["version"] for r in results),
                         list(range(2, 10)))
        final = self.get(job["id"])
        self.assertEqual(final["version"], 9)
        self.assertEqual(final["tags"], {"w%d" % i: "1" for i in range(8)})

    def test_concurrent_puts_without_if_match_all_apply_in_sequence(self):
        job = self.create()
        results = self._parallel(lambda i: self.api(
            "PUT", "/api/v1/jobs/%s" % job["id"],
            job_body(job["name"], description="put %d" % i)))
        self.assertEqual([getattr(r, "status", r) for r in results], [200] * 8,
                         results)
        self.assertEqual(self.get(job["id"])["version"], 9)

    def test_concurrent_enable_disable_without_if_match_all_succeed(self):
        job = self.create()
        results = self._parallel(lambda i: self.api(
            "POST", "/api/v1/jobs/%s/%s" % (job["id"], ("enable", "disable")[
                i % 2])))
        self.assertEqual([getattr(r, "status", r) for r in results], [200] * 8,
                         results)

    def test_forty_concurrent_patches_without_if_match_all_apply(self):
        # Regression: losers of a version race used to get 409 after a few
        # rounds; updates of one job are now applied one at a time.
        job = self.create()
        results = self._parallel(lambda i: self.patch(
            job["id"], {"tags": {"w%d" % i: "1"}}), n=40)
        self.assertEqual([getattr(r, "status", r) for r in results], [200] * 40,
                         results)
        final = self.get(job["id"])
        self.assertEqual(final["version"], 41)
        self.assertEqual(final["tags"], {"w%d" % i: "1" for i in range(40)})

    def test_create_with_null_id_generates_one(self):
        # Regression: "id": null crashed the server (exception on an I/O
        # thread). null means "not given".
        body = job_body(unique("nullid"))
        body["id"] = None
        job = assert_ok(self, self.api("POST", "/api/v1/jobs", body), 201)
        self.assertRegex(job["id"], h.UUID_RE)
        self.assertEqual(self.api("GET", "/health").status, 200)

    def test_create_with_client_uuid_keeps_it(self):
        wanted = str(uuid.uuid4())
        body = job_body(unique("ownid"))
        body["id"] = wanted
        job = assert_ok(self, self.api("POST", "/api/v1/jobs", body), 201)
        self.assertEqual(job["id"], wanted)

    def test_consistent_read_returns_the_latest_write(self):
        job = self.create()
        patched = assert_ok(self, self.patch(job["id"], {"description": "new"}))
        got = self.get(job["id"], "?consistent=true")
        self.assertEqual(got["version"], patched["version"])
        self.assertEqual(got["description"], "new")
        listed = self.list_jobs("consistent=true&limit=1000")
        self.assertIn(job["id"], [j["id"] for j in listed["jobs"]])

    def test_versions_page_through_newest_first(self):
        job = self.create()
        for i in range(6):
            assert_ok(self, self.patch(job["id"], {"description": str(i)}))
        seen = []
        cursor = ""
        for _ in range(10):
            q = "?limit=3" + ("&cursor=" + cursor if cursor else "")
            data = assert_ok(self, self.api(
                "GET", "/api/v1/jobs/%s/versions%s" % (job["id"], q)))
            seen += [v["version"] for v in data["versions"]]
            cursor = data["next_cursor"]
            if not cursor:
                break
        self.assertEqual(seen, [7, 6, 5, 4, 3, 2, 1])

    def test_head_has_no_body_and_keeps_the_connection_usable(self):
        import socket
        with socket.create_connection((h.HOST, self.node.http_port), 10) as s:
            s.sendall(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            deadline = 10
            s.settimeout(deadline)
            while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b"}"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        self.assertIn(b"Content-Length", head)
        self.assertTrue(rest.startswith(b"HTTP/1.1 200"), rest[:80])
        self.assertTrue(rest.endswith(b'"success":true}'), rest[-80:])

    # --- DELETE ------------------------------------------------------------
    def test_delete_then_get_is_404(self):
        job = self.create()
        r = self.api("DELETE", "/api/v1/jobs/%s" % job["id"])
        self.assertEqual(assert_ok(self, r), {"id": job["id"], "deleted": True})
        assert_error(self, self.api("GET", "/api/v1/jobs/%s" % job["id"]), 404,
                     "NOT_FOUND")
        assert_error(self, self.api("GET", "/api/v1/jobs/%s" % job["name"]),
                     404, "NOT_FOUND")

    def test_deleted_name_can_be_reused(self):
        job = self.create()
        assert_ok(self, self.api("DELETE", "/api/v1/jobs/%s" % job["id"]))
        again = self.create(name=job["name"])
        self.assertNotEqual(again["id"], job["id"])
        self.assertEqual(again["version"], 1)

    # --- enable / disable / pause / resume --------------------------------
    def test_disable_sets_enabled_false_clears_next_run_and_bumps_version(self):
        job = self.create()
        d = assert_ok(self, self.api("POST", "/api/v1/jobs/%s/disable" %
                                     job["id"]))
        self.assertIs(d["enabled"], False)
        self.assertIsNone(d.get("next_run"))
        self.assertEqual(d["version"], 2)
        self.assertEqual(self.get(job["id"]), d)

    def test_disable_when_already_disabled_makes_no_new_version(self):
        job = self.create(enabled=False)
        d = assert_ok(self, self.api("POST", "/api/v1/jobs/%s/disable" %
                                     job["id"]))
        self.assertIs(d["enabled"], False)
        self.assertEqual(d["version"], 1)

    def test_enable_sets_enabled_true_and_next_run(self):
        job = self.create(enabled=False)
        e = assert_ok(self, self.api("POST", "/api/v1/jobs/%s/enable" %
                                     job["id"]))
        self.assertIs(e["enabled"], True)
        self.assertRegex(e.get("next_run") or "", h.RFC3339_RE)
        self.assertEqual(e["version"], 2)

    def test_pause_is_alias_of_disable(self):
        job = self.create()
        p = assert_ok(self, self.api("POST", "/api/v1/jobs/%s/pause" %
                                     job["id"]))
        self.assertIs(p["enabled"], False)
        self.assertEqual(p["version"], 2)

    def test_resume_is_alias_of_enable(self):
        job = self.create(enabled=False)
        r = assert_ok(self, self.api("POST", "/api/v1/jobs/%s/resume" %
                                     job["id"]))
        self.assertIs(r["enabled"], True)
        self.assertEqual(r["version"], 2)
        self.assertIsNotNone(r.get("next_run"))

    def test_enable_by_name_works(self):
        job = self.create(enabled=False)
        r = assert_ok(self, self.api("POST", "/api/v1/jobs/%s/enable" %
                                     job["name"]))
        self.assertEqual(r["id"], job["id"])
        self.assertIs(r["enabled"], True)

    # --- versions and rollback --------------------------------------------
    def test_versions_list_newest_first_and_get_version(self):
        job = self.create(description="one")
        assert_ok(self, self.patch(job["id"], {"description": "two"}))
        assert_ok(self, self.patch(job["id"], {"description": "three"}))
        data = assert_ok(self, self.api("GET", "/api/v1/jobs/%s/versions" %
                                        job["id"]))
        self.assertEqual([v["version"] for v in data["versions"]], [3, 2, 1])
        for v in data["versions"]:
            self.assertRegex(v["updated_at"], h.RFC3339_RE)
        v1 = assert_ok(self, self.api("GET", "/api/v1/jobs/%s/versions/1" %
                                      job["id"]))
        self.assertEqual(v1["description"], "one")
        self.assertEqual(v1["version"], 1)
        self.assertEqual(v1["id"], job["id"])
        v2 = assert_ok(self, self.api("GET", "/api/v1/jobs/%s/versions/2" %
                                      job["id"]))
        self.assertEqual(v2["description"], "two")
        self.assertEqual(v2["version"], 2)

    def test_rollback_to_v1_creates_version_3_with_v1_definition(self):
        job = self.create(description="one", timeout="1m")
        assert_ok(self, self.patch(job["id"], {"description": "two",
                                               "timeout": "2m"}))
        r = self.api("POST", "/api/v1/jobs/%s/rollback/1" % job["id"])
        rb = assert_ok(self, r)
        self.assertEqual(rb["version"], 3)
        self.assertEqual(rb["description"], "one")
        self.assertEqual(rb["timeout"], "1m")
        self.assertEqual(rb["id"], job["id"])
        self.assertEqual(rb["created_at"], job["created_at"])
        self.assertEqual(
            without_server_fields(rb), without_server_fields(job))
        self.assertEqual(self.get(job["id"]), rb)
        data = assert_ok(self, self.api("GET", "/api/v1/jobs/%s/versions" %
                                        job["id"]))
        self.assertEqual([v["version"] for v in data["versions"]], [3, 2, 1])

    # --- secrets -------------------------------------------------------------
    def _secret_job(self, auth):
        return self.create(webhook={"url": h.WEBHOOK_URL, "auth": auth})

    def test_basic_auth_password_is_never_returned(self):
        secret = "pw-" + uuid.uuid4().hex
        job = self._secret_job({"type": "basic", "username": "alice",
                                "password": secret})
        self.assertEqual(job["webhook"]["auth"]["password"], "***")
        self.assertEqual(job["webhook"]["auth"]["username"], "alice")
        self._assert_secret_hidden(job, secret)

    def test_bearer_token_is_never_returned(self):
        secret = "tok-" + uuid.uuid4().hex
        job = self._secret_job({"type": "bearer", "token": secret})
        self.assertEqual(job["webhook"]["auth"]["token"], "***")
        self._assert_secret_hidden(job, secret)

    def test_api_key_is_never_returned(self):
        secret = "key-" + uuid.uuid4().hex
        job = self._secret_job({"type": "api_key", "header": "X-Api-Token",
                                "key": secret})
        self.assertEqual(job["webhook"]["auth"]["key"], "***")
        self.assertEqual(job["webhook"]["auth"]["header"], "X-Api-Token")
        self._assert_secret_hidden(job, secret)

    def _assert_secret_hidden(self, job, secret):
        jid = job["id"]
        for path in ("/api/v1/jobs/%s" % jid,
                     "/api/v1/jobs?namespace=%s&limit=1000" % job["namespace"],
                     "/api/v1/jobs/%s/versions" % jid,
                     "/api/v1/jobs/%s/versions/1" % jid):
            r = self.api("GET", path)
            self.assertEqual(r.status, 200, r)
            self.assertNotIn(secret, r.text, path)

    def test_patch_of_other_field_keeps_secret(self):
        secret = "pw-" + uuid.uuid4().hex
        job = self._secret_job({"type": "basic", "username": "bob",
                                "password": secret})
        r = self.patch(job["id"], {"description": "touched"})
        patched = assert_ok(self, r)
        self.assertNotIn(secret, r.text)
        auth = patched["webhook"].get("auth")
        self.assertIsNotNone(auth, "PATCH dropped webhook.auth: %r" % patched)
        self.assertEqual(auth.get("type"), "basic")
        self.assertEqual(auth.get("username"), "bob")
        self.assertEqual(auth.get("password"), "***")
        self.assertEqual(self.get(job["id"])["webhook"]["auth"], auth)

    def test_patch_of_webhook_headers_keeps_secret(self):
        job = self._secret_job({"type": "bearer", "token": "t-" +
                                uuid.uuid4().hex})
        r = self.patch(job["id"], {"webhook": {"headers": {"X-A": "1"}}})
        patched = assert_ok(self, r)
        self.assertEqual(patched["webhook"].get("auth"),
                         job["webhook"]["auth"])
        self.assertEqual(patched["webhook"]["auth"]["token"], "***")

    def test_secrets_never_reach_the_log(self):
        secret = "logpw-" + uuid.uuid4().hex
        job = self._secret_job({"type": "basic", "username": "u",
                                "password": secret})
        assert_ok(self, self.patch(job["id"], {"description": "x"}))
        assert_ok(self, self.api("POST", "/api/v1/jobs/%s/rollback/1" %
                                 job["id"]))
        self.assertNotIn(secret, self.node.log_text())

    # --- operations ---------------------------------------------------------
    def test_health_is_200_ok(self):
        data = assert_ok(self, self.api("GET", "/health"))
        self.assertEqual(data, {"status": "ok"})

    def test_ready_is_200(self):
        self.assertEqual(self.api("GET", "/ready").status, 200)

    def test_cluster_status_shows_single_leader(self):
        assert_ok(self, self.api("POST", "/api/v1/jobs",
                                 job_body(unique("cs"))), 201)
        st = assert_ok(self, self.api("GET", "/api/v1/cluster/status"))
        self.assertEqual(st["state"], "leader")
        self.assertEqual(st["node_id"], "n1")
        self.assertEqual(st["leader"]["id"], "n1")
        self.assertEqual(len(st["nodes"]), 1, st)
        self.assertEqual(st["nodes"][0]["id"], "n1")
        self.assertIs(st["nodes"][0]["is_leader"], True)
        self.assertGreaterEqual(st["term"], 1)
        self.assertGreater(st["applied_index"], 0)
        self.assertGreaterEqual(st["commit_index"], st["applied_index"])

    def test_cluster_status_applied_index_advances_with_writes(self):
        def applied():
            return assert_ok(self, self.api(
                "GET", "/api/v1/cluster/status"))["applied_index"]
        start = applied()
        for _ in range(3):
            self.create()
        h.wait_for(lambda: applied() >= start + 3, 10,
                   "applied_index to cover 3 acknowledged writes")

    def test_unknown_route_is_404(self):
        assert_error(self, self.api("GET", "/api/v1/nothing-here"), 404,
                     "NOT_FOUND")


def without_server_fields(job):
    return h.without(job, "version", "updated_at", "next_run")


if __name__ == "__main__":
    unittest.main()
