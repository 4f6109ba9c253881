"""Bad requests are refused with the documented status, error code and field,
and never change stored state (SPEC §1, §2, §5; docs/api.md).

The table below is the test: one generated test method per row
(`test_NN_<row name>`). Each row's request is sent, the error envelope
checked, and then the full stored state (every job and every version of it)
is compared with the state before the request.
"""

import collections
import json
import re
import unittest
import uuid

import chronos_harness as h
from chronos_harness import assert_error, assert_ok

J = "/api/v1/jobs"
VALIDATE = "/api/v1/schedules/validate"
UNKNOWN_ID = str(uuid.uuid4())
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,126}$")

# Fixture jobs created in setUpClass; rows refer to their ids as {id} and
# {other}.
EXISTING = "existing"
OTHER = "other-job"


def body(**changes):
    """A valid create body for a job named `row-job` with `changes` applied;
    a change to the value DROP removes the field."""
    b = {"name": "row-job", "schedule": "0 0 1 1 *",
         "webhook": {"url": "https://example.com/hook"}}
    for k, v in changes.items():
        if v is DROP:
            b.pop(k, None)
        else:
            b[k] = v
    return b


DROP = object()
HOOK = {"url": "https://example.com/hook"}


def raw(obj):
    return json.dumps(obj).encode()


Row = collections.namedtuple(
    "Row", "name method path body status code field headers",
    defaults=(None,))

V = "VALIDATION_ERROR"
IJ = "INVALID_JSON"
NF = "NOT_FOUND"

OVERSIZED = raw(body(name="too-big", description="x" * ((1 << 20) + 1024)))

# (name, method, path, JSON body | raw bytes | None, status, code, field)
# field None = not checked (the contract does not pin it down).
ROWS = [
    # --- schedules -----------------------------------------------------------
    Row("cron_minute_61", "POST", J, body(schedule="61 * * * *"), 400, V,
        "schedule"),
    Row("cron_four_fields", "POST", J, body(schedule="* * * *"), 400, V,
        "schedule"),
    Row("cron_step_zero", "POST", J, body(schedule="*/0 * * * *"), 400, V,
        "schedule"),
    Row("cron_impossible_feb_30", "POST", J, body(schedule="0 0 30 2 *"), 400,
        V, "schedule"),
    Row("cron_garbage", "POST", J, body(schedule="every tuesday"), 400, V,
        "schedule"),
    Row("every_below_one_second", "POST", J, body(schedule="@every 500ms"),
        400, V, "schedule"),
    Row("timezone_unknown", "POST", J, body(timezone="Mars/Olympus"), 400, V,
        "timezone"),
    # --- unknown fields ------------------------------------------------------
    Row("unknown_top_level_field", "POST", J, body(colour="red"), 400, V,
        "colour"),
    Row("unknown_retry_policy_field", "POST", J,
        body(retry_policy={"foo": 1}), 400, V, "retry_policy.foo"),
    Row("unknown_webhook_field", "POST", J,
        body(webhook={"url": "https://example.com/hook", "bar": True}), 400, V,
        "webhook.bar"),
    # --- wrong types ---------------------------------------------------------
    Row("name_is_number", "POST", J, body(name=5), 400, V, "name"),
    Row("enabled_is_string", "POST", J, body(enabled="yes"), 400, V,
        "enabled"),
    Row("tags_is_array", "POST", J, body(tags=[]), 400, V, "tags"),
    Row("tag_value_is_number", "POST", J, body(tags={"team": 5}), 400, V,
        "tags.team"),
    Row("max_attempts_is_string", "POST", J,
        body(retry_policy={"max_attempts": "3"}), 400, V,
        "retry_policy.max_attempts"),
    Row("webhook_header_value_is_number", "POST", J,
        body(webhook={"url": "https://example.com/hook",
                      "headers": {"X-Num": 1}}), 400, V,
        "webhook.headers.X-Num"),
    # --- out of range --------------------------------------------------------
    Row("max_attempts_zero", "POST", J, body(retry_policy={"max_attempts": 0}),
        400, V, "retry_policy.max_attempts"),
    Row("max_attempts_101", "POST", J,
        body(retry_policy={"max_attempts": 101}), 400, V,
        "retry_policy.max_attempts"),
    Row("retry_jitter_above_one", "POST", J,
        body(retry_policy={"jitter": 1.5}), 400, V, "retry_policy.jitter"),
    Row("timeout_zero", "POST", J, body(timeout="0s"), 400, V, "timeout"),
    Row("timeout_25h", "POST", J, body(timeout="25h"), 400, V, "timeout"),
    # The jitter bound is not pinned down by SPEC; 25h on a per-minute
    # schedule is beyond both a 24h cap and the schedule's interval.
    Row("jitter_beyond_bound", "POST", J,
        body(schedule="* * * * *", jitter="25h"), 400, V, "jitter"),
    Row("description_over_4kib", "POST", J, body(description="d" * 4097), 400,
        V, "description"),
    # --- bad durations and enums ---------------------------------------------
    Row("duration_in_words", "POST", J, body(timeout="5 minutes"), 400, V,
        "timeout"),
    Row("duration_unknown_unit", "POST", J, body(catchup_window="1x"), 400, V,
        "catchup_window"),
    Row("concurrency_unknown", "POST", J, body(concurrency="sometimes"), 400,
        V, "concurrency"),
    Row("missed_run_policy_unknown", "POST", J,
        body(missed_run_policy="never"), 400, V, "missed_run_policy"),
    # --- names -----------------------------------------------------------------
    Row("name_uppercase", "POST", J, body(name="MyJob"), 400, V, "name"),
    Row("name_128_chars", "POST", J, body(name="a" * 128), 400, V, "name"),
    Row("name_leading_dash", "POST", J, body(name="-job"), 400, V, "name"),
    Row("name_empty", "POST", J, body(name=""), 400, V, "name"),
    Row("namespace_with_space", "POST", J, body(namespace="Bad NS"), 400, V,
        "namespace"),
    Row("name_missing", "POST", J, body(name=DROP), 400, V, "name"),
    Row("schedule_missing", "POST", J, body(schedule=DROP), 400, V,
        "schedule"),
    # --- targets ---------------------------------------------------------------
    Row("neither_webhook_nor_dispatch", "POST", J, body(webhook=DROP), 400, V,
        None),
    Row("both_webhook_and_dispatch", "POST", J,
        body(dispatch={"type": "nats", "url": "nats://127.0.0.1:4222",
                       "subject": "jobs"}), 400, V, None),
    Row("dispatch_type_unknown", "POST", J,
        body(webhook=DROP, dispatch={"type": "smtp"}), 400, V,
        "dispatch.type"),
    Row("webhook_url_ftp", "POST", J, body(webhook={"url": "ftp://x"}), 400, V,
        "webhook.url"),
    Row("webhook_url_missing", "POST", J, body(webhook={}), 400, V,
        "webhook.url"),
    Row("webhook_method_invalid", "POST", J,
        body(webhook={"url": "https://example.com/hook",
                      "method": "NOT A METHOD"}), 400, V, "webhook.method"),
    # --- server-owned fields -----------------------------------------------
    Row("server_owned_version", "POST", J, body(version=5), 400, V, "version"),
    Row("server_owned_created_at", "POST", J,
        body(created_at="2024-01-01T00:00:00Z"), 400, V, "created_at"),
    Row("id_not_a_uuid", "POST", J, body(id="not-a-uuid"), 400, V, "id"),
    # --- broken bodies ---------------------------------------------------------
    Row("json_truncated", "POST", J, b'{"name":', 400, IJ, None),
    Row("json_array_not_object", "POST", J, b"[]", 400, IJ, None),
    Row("json_null", "POST", J, b"null", 400, IJ, None),
    Row("json_trailing_garbage", "POST", J,
        raw(body(name="trailing")) + b" x", 400, IJ, None),
    Row("body_empty", "POST", J, b"", 400, IJ, None),
    Row("json_invalid_utf8", "POST", J,
        raw(body(name="utf8"))[:-1] + b',"description":"\xff\xfe"}', 400, IJ,
        None),
    Row("json_nested_100000_deep", "POST", J, b"[" * 100000 + b"]" * 100000,
        400, IJ, None),
    Row("json_string_not_object", "POST", J, b'"job"', 400, IJ, None),
    Row("body_over_1mib", "POST", J, OVERSIZED, 413, "PAYLOAD_TOO_LARGE",
        None),
    # --- conflicts -------------------------------------------------------------
    Row("duplicate_name", "POST", J, body(name=EXISTING), 409,
        "ALREADY_EXISTS", "name"),
    Row("patch_rename_to_taken_name", "PATCH", J + "/{other}",
        {"name": EXISTING}, 409, "ALREADY_EXISTS", "name"),
    Row("patch_if_match_mismatch", "PATCH", J + "/{id}",
        {"description": "nope"}, 409, "CONFLICT", None, {"If-Match": "99"}),
    Row("delete_if_match_mismatch", "DELETE", J + "/{id}", None, 409,
        "CONFLICT", None, {"If-Match": '"1"'}),
    # --- list query parameters -------------------------------------------------
    Row("list_limit_zero", "GET", J + "?limit=0", None, 400, V, "limit"),
    Row("list_limit_5000", "GET", J + "?limit=5000", None, 400, V, "limit"),
    Row("list_limit_abc", "GET", J + "?limit=abc", None, 400, V, "limit"),
    Row("list_cursor_garbage", "GET", J + "?cursor=%21%21not-a-cursor%21%21",
        None, 400, V, "cursor"),
    Row("list_enabled_maybe", "GET", J + "?enabled=maybe", None, 400, V,
        "enabled"),
    # --- unknown things ----------------------------------------------------
    Row("get_unknown_id", "GET", J + "/" + UNKNOWN_ID, None, 404, NF, None),
    Row("put_unknown_id", "PUT", J + "/" + UNKNOWN_ID, body(name="put-new"),
        404, NF, None),
    Row("delete_unknown_id", "DELETE", J + "/" + UNKNOWN_ID, None, 404, NF,
        None),
    Row("enable_unknown_id", "POST", J + "/" + UNKNOWN_ID + "/enable", None,
        404, NF, None),
    Row("rollback_missing_version", "POST", J + "/{id}/rollback/99", None, 404,
        NF, None),
    Row("get_missing_version", "GET", J + "/{id}/versions/99", None, 404, NF,
        None),
    Row("unknown_route", "POST", "/api/v1/no-such-thing", {}, 404, NF, None),
    Row("method_not_allowed_on_jobs", "DELETE", J, None, 405,
        "METHOD_NOT_ALLOWED", None),
    # --- PATCH / PUT bodies ----------------------------------------------------
    Row("patch_bad_value", "PATCH", J + "/{id}",
        {"retry_policy": {"max_attempts": 0}}, 400, V,
        "retry_policy.max_attempts"),
    Row("patch_bad_schedule", "PATCH", J + "/{id}", {"schedule": "61 * * * *"},
        400, V, "schedule"),
    Row("patch_unknown_field", "PATCH", J + "/{id}", {"colour": "red"}, 400, V,
        "colour"),
    Row("patch_server_owned_version", "PATCH", J + "/{id}", {"version": 9},
        400, V, "version"),
    Row("patch_id", "PATCH", J + "/{id}", {"id": UNKNOWN_ID}, 400, V, "id"),
    Row("patch_truncated_json", "PATCH", J + "/{id}", b'{"description":', 400,
        IJ, None),
    Row("patch_json_array", "PATCH", J + "/{id}", b'["x"]', 400, IJ, None),
    Row("put_missing_schedule", "PUT", J + "/{id}",
        body(name=EXISTING, schedule=DROP), 400, V, "schedule"),
    Row("put_unknown_field", "PUT", J + "/{id}",
        body(name=EXISTING, colour="red"), 400, V, "colour"),
    # --- schedules/validate ----------------------------------------------------
    Row("validate_count_101", "POST", VALIDATE,
        {"schedule": "* * * * *", "count": 101}, 400, V, "count"),
    Row("validate_count_zero", "POST", VALIDATE,
        {"schedule": "* * * * *", "count": 0}, 400, V, "count"),
    Row("validate_bad_from", "POST", VALIDATE,
        {"schedule": "* * * * *", "from": "yesterday"}, 400, V, "from"),
    Row("validate_bad_schedule", "POST", VALIDATE, {"schedule": "61 * * * *"},
        400, V, "schedule"),
    Row("validate_bad_timezone", "POST", VALIDATE,
        {"schedule": "* * * * *", "timezone": "Mars/Olympus"}, 400, V,
        "timezone"),
    Row("validate_missing_schedule", "POST", VALIDATE, {"count": 3}, 400, V,
        "schedule"),
    # --- found in review -------------------------------------------------------
    Row("at_in_the_past", "POST", J,
        body(schedule="@at 2001-01-01T00:00:00Z"), 400, V, "schedule"),
    Row("patch_schedule_to_past_at", "PATCH", J + "/{id}",
        {"schedule": "@at 2001-01-01T00:00:00Z"}, 400, V, "schedule"),
    Row("list_unknown_query_parameter", "GET", J + "?colour=red", None, 400, V,
        "colour"),
    Row("versions_bad_limit", "GET", J + "/{id}/versions?limit=0", None, 400, V,
        "limit"),
    Row("versions_bad_cursor", "GET", J + "/{id}/versions?cursor=x", None, 400,
        V, "cursor"),
    Row("consistent_not_boolean", "GET", J + "/{id}?consistent=maybe", None, 400,
        V, "consistent"),
    Row("api_prefix_not_delimited", "POST", "/api/v1jobs", body(name="nodelim"),
        404, NF, None),
]


def snapshot(test, node):
    """Every stored job (full JSON) with its version list and every version's
    JSON, keyed by job id."""
    r = node.api("GET", J + "?limit=1000")
    data = assert_ok(test, r, 200, "snapshot list")
    test.assertEqual(data["next_cursor"], "", "snapshot needs one page")
    state = {}
    for job in data["jobs"]:
        jid = job["id"]
        vr = assert_ok(test, node.api("GET", "%s/%s/versions" % (J, jid)), 200,
                       "snapshot versions of %s" % jid)
        versions = {}
        for v in vr["versions"]:
            versions[v["version"]] = assert_ok(
                test, node.api("GET", "%s/%s/versions/%d" % (J, jid,
                                                             v["version"])),
                200, "snapshot version %s of %s" % (v["version"], jid))
        state[jid] = {"job": job, "versions": vr["versions"],
                      "bodies": versions}
    return state


@h.require_binary
class BadRequestsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.node = h.Node()
        cls.addClassCleanup(cls.node.cleanup)
        cls.node.start_ready()
        ids = {}
        for key, name in (("id", EXISTING), ("other", OTHER)):
            r = cls.node.api("POST", J, body(
                name=name, description="fixture", tags={"fixture": "yes"},
                webhook={"url": "https://example.com/hook",
                         "auth": {"type": "bearer", "token": "s3cret"}}))
            if r.status != 201:
                raise AssertionError("fixture create failed: %r" % r)
            ids[key] = r.json["data"]["id"]
        # A second version of the first fixture, so versions are compared.
        r = cls.node.api("PATCH", "%s/%s" % (J, ids["id"]),
                         {"description": "fixture v2"})
        if r.status != 200:
            raise AssertionError("fixture patch failed: %r" % r)
        cls.ids = ids

    def test_00_table_has_at_least_30_rows_with_unique_names(self):
        names = [r.name for r in ROWS]
        self.assertGreaterEqual(len(ROWS), 30)
        self.assertEqual(len(names), len(set(names)))

    def run_row(self, row):
        what = "row %r (%s %s)" % (row.name, row.method, row.path[:80])
        before = snapshot(self, self.node)
        path = row.path.format(**self.ids)
        if isinstance(row.body, bytes):
            resp = self.node.api(row.method, path, raw=row.body,
                                 headers=row.headers)
        else:
            resp = self.node.api(row.method, path, body=row.body,
                                 headers=row.headers)
        assert_error(self, resp, row.status, row.code, row.field, what=what)
        after = snapshot(self, self.node)
        if after != before:
            changed = sorted(set(before) ^ set(after)) or [
                k for k in before if before[k] != after.get(k)]
            self.fail("%s changed stored jobs %s:\nbefore=%s\nafter=%s" % (
                what, changed,
                json.dumps({k: before.get(k) for k in changed}, indent=1)[:3000],
                json.dumps({k: after.get(k) for k in changed}, indent=1)[:3000]))
        # A create that was refused must not be findable by its name either.
        name = row.body.get("name") if isinstance(row.body, dict) else None
        if (row.method == "POST" and row.path == J and isinstance(name, str)
                and NAME_RE.match(name) and name not in (EXISTING, OTHER)
                and row.body.get("namespace", "default") == "default"):
            g = self.node.api("GET", "%s/%s" % (J, name))
            self.assertEqual(g.status, 404,
                             "%s: refused job is readable: %r" % (what, g))


def _make_row_test(row):
    def test(self):
        self.run_row(row)
    test.__doc__ = "%s %s -> %d %s %s" % (row.method, row.path[:60],
                                          row.status, row.code,
                                          row.field or "")
    return test


for _i, _row in enumerate(ROWS, start=1):
    setattr(BadRequestsTest, "test_%02d_%s" % (_i, _row.name),
            _make_row_test(_row))


if __name__ == "__main__":
    unittest.main()
