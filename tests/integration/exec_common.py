"""Shared helpers of the job-execution integration tests (scheduling,
retries, concurrency, missed runs, crash recovery, metrics).

Python 3 standard library only; builds on chronos_harness and receiver.
"""

import datetime
import itertools
import math
import os
import re
import uuid

import chronos_harness as h
from chronos_harness import assert_ok

_counter = itertools.count(1)

# Retry policy with small, exact intervals (no jitter) for fast tests.
FAST_RETRY = {"max_attempts": 4, "initial_interval": "200ms",
              "max_interval": "2s", "multiplier": 2, "jitter": 0}
NO_RETRY = {"max_attempts": 1, "initial_interval": "100ms",
            "max_interval": "1s", "multiplier": 2, "jitter": 0}

ANY_UUID_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(Z|[+-]\d{2}:\d{2})$")


def unique(prefix):
    return "%s-%d-%s" % (prefix, next(_counter), uuid.uuid4().hex[:6])


def parse_time(s):
    """RFC 3339 (any number of fraction digits) -> float seconds since the
    epoch."""
    m = _TIME_RE.match(s or "")
    if not m:
        raise ValueError("not an RFC 3339 time: %r" % (s,))
    y, mo, d, hh, mm, ss, frac, zone = m.groups()
    dt = datetime.datetime(int(y), int(mo), int(d), int(hh), int(mm), int(ss),
                           tzinfo=datetime.timezone.utc)
    t = dt.timestamp()
    if frac:
        t += int(frac) / (10 ** len(frac))
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        t -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return t


def format_time(t):
    """float epoch seconds -> RFC 3339 UTC with milliseconds trimmed when
    zero."""
    dt = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    if dt.microsecond == 0:
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def write_config(text):
    """Writes a YAML config into a fresh temp dir; returns its path."""
    d = h.make_temp_dir("chronos-it-cfg-")
    path = os.path.join(d, "chronos.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def start_node(test, config=None, class_level=False, **kwargs):
    """A ready node (optionally with a YAML config text) cleaned up by the
    test (or, with class_level, by the class: `test` is then the class)."""
    extra = list(kwargs.pop("extra_args", ()))
    if config:
        extra += ["--config", write_config(config)]
    node = h.Node(extra_args=extra, **kwargs)
    if class_level:
        test.addClassCleanup(node.cleanup)
    else:
        test.addCleanup(node.cleanup)
    node.start_ready()
    return node


def webhook(rx, path="/hook", **fields):
    w = {"url": rx.url(path)}
    w.update(fields)
    return w


def create_job(test, node, name=None, **fields):
    body = {"name": name or unique("job")}
    body.update(fields)
    return assert_ok(test, node.api("POST", "/api/v1/jobs", body), 201,
                     "create job %s" % body["name"])


def set_enabled(test, node, job_id, enabled):
    return assert_ok(test, node.api(
        "POST", "/api/v1/jobs/%s/%s" % (job_id, "enable" if enabled else
                                        "disable")))


def get_job(test, node, job_id):
    return assert_ok(test, node.api("GET", "/api/v1/jobs/%s" % job_id))


def trigger(node, job_id, query="", timeout=h.REQUEST_TIMEOUT_S):
    return node.api("POST", "/api/v1/jobs/%s/trigger%s" % (job_id, query),
                    timeout=timeout)


def trigger_wait(test, node, job_id, wait_s=30):
    """Triggers a run and waits for its committed result (200)."""
    r = trigger(node, job_id, "?wait=true&timeout=%ds" % wait_s,
                timeout=wait_s + 15)
    return assert_ok(test, r, 200, "trigger?wait=true of %s" % job_id)


def list_executions(test, node, job_id, query=""):
    """All executions of a job (every page), newest first."""
    out = []
    cursor = ""
    for _ in range(1000):
        q = "limit=1000"
        if query:
            q += "&" + query
        if cursor:
            q += "&cursor=" + cursor
        data = assert_ok(test, node.api(
            "GET", "/api/v1/jobs/%s/executions?%s" % (job_id, q)))
        out.extend(data["executions"])
        cursor = data.get("next_cursor") or ""
        if not cursor:
            return out
    raise AssertionError("executions of %s: pagination does not end" % job_id)


def get_execution(test, node, job_id, eid):
    return assert_ok(test, node.api(
        "GET", "/api/v1/jobs/%s/executions/%s" % (job_id, eid)))


TERMINAL = ("success", "failed", "skipped", "cancelled")


def wait_execution_status(test, node, job_id, eid, statuses=TERMINAL,
                          timeout=30):
    def done():
        e = get_execution(test, node, job_id, eid)
        return e if e["status"] in statuses else None
    return h.wait_for(done, timeout, "execution %s of job %s in %s" %
                      (eid, job_id, statuses))


def wait_all_finished(test, node, job_id, timeout=30):
    """Waits until no execution of the job is pending or running."""
    def done():
        ex = list_executions(test, node, job_id)
        return ex if all(e["status"] in TERMINAL for e in ex) else None
    return h.wait_for(done, timeout, "all executions of %s finished" % job_id)


# --- metrics --------------------------------------------------------------

_SAMPLE_RE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text -> (samples, types): samples is a list of (name,
    labels dict, float value); types maps family name -> type."""
    samples = []
    types = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3].strip()
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            raise ValueError("bad metrics line: %r" % line)
        name, _, labels_text, value = m.group(1), m.group(2), m.group(3), \
            m.group(4)
        labels = {}
        if labels_text:
            for k, v in _LABEL_RE.findall(labels_text):
                labels[k] = v.replace('\\"', '"').replace("\\n", "\n") \
                    .replace("\\\\", "\\")
        samples.append((name, labels, float(value)))
    return samples, types


def scrape(test, node):
    r = node.api("GET", "/metrics")
    test.assertEqual(r.status, 200, "GET /metrics: %r" % r)
    return parse_metrics(r.text)


def metric_value(samples, name, **labels):
    """Sum of the samples named `name` whose labels include `labels`;
    None when there is none."""
    vals = [v for n, l, v in samples if n == name and
            all(l.get(k) == str(x) for k, x in labels.items())]
    return sum(vals) if vals else None


def histogram_buckets(samples, name):
    """[(le, cumulative count)] of a histogram (all label sets summed),
    sorted by le."""
    acc = {}
    for n, l, v in samples:
        if n == name + "_bucket":
            le = float("inf") if l["le"] in ("+Inf", "Inf") else float(l["le"])
            acc[le] = acc.get(le, 0.0) + v
    return sorted(acc.items())


def histogram_quantile(q, buckets):
    """Prometheus-style quantile from cumulative buckets [(le, count)]
    (linear interpolation inside the bucket)."""
    if not buckets:
        return float("nan")
    total = buckets[-1][1]
    if total <= 0:
        return float("nan")
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return buckets[-1][0]


def bucket_delta(after, before):
    b = dict(before)
    return [(le, c - b.get(le, 0.0)) for le, c in after]


def quantile(values, q):
    """Nearest-rank quantile of a list of numbers."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(math.ceil(q * len(s))) - 1))
    return s[k]


def fnv1a64(data):
    h64 = 0xcbf29ce484222325
    for c in data:
        h64 ^= c
        h64 = (h64 * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h64


def cluster_status(test, node):
    return assert_ok(test, node.api("GET", "/api/v1/cluster/status"))


def breaker_state(test, node, rx):
    """The state string of the breaker for the receiver's endpoint, or None
    if not listed."""
    st = cluster_status(test, node)
    for b in st.get("circuit_breakers") or []:
        if str(rx.port) in b.get("target", "") and "127.0.0.1" in b["target"]:
            return b
    return None
