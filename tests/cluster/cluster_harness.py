"""Harness for Chronos multi-process cluster tests: N `chronos serve`
processes on 127.0.0.1 forming one Raft cluster (docs/cluster.md), or each
in its own network namespace of a netns.Network, so tests can cut the
traffic between them (test_partitions).

Python 3 standard library only. Builds on tests/integration
(chronos_harness.Node, exec_common, receiver): every process is a `Node`, so
it is killed by PID in the test's cleanups and, as a last resort, by
chronos_harness's atexit hook.

    c = Cluster(3).start()          # n1..n3, same --raft-peers, ready
    leader = c.leader()             # polls /cluster/status until all agree
    c.kill9(leader); c.restart(leader); c.wait_caught_up(leader)
    n4 = c.add_node_via_join(c.url(c.followers()[0]))

    net = Network(3); c = Cluster(3, network=net, defaults=BINARY_DEFAULTS)
    net.isolate(c.leader())         # nodes have .host = their address

Timeouts are small (heartbeat 50 ms, election 500 ms) so failovers are
fast; everything waits on events with generous deadlines, never on fixed
sleeps.
"""

import http.client
import json
import os
import random
import signal
import socket
import statistics
import sys
import threading
import time
import unittest

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, "..", "integration"))

import chronos_harness as h  # noqa: E402
import exec_common as ec  # noqa: E402
import netns  # noqa: E402
from chronos_harness import assert_ok  # noqa: E402,F401 (re-exported)
from netns import Network  # noqa: E402,F401 (re-exported)
from receiver import Receiver, new_receiver  # noqa: E402,F401 (re-exported)

HOST = h.HOST
DEADLINE_S = 30.0  # default deadline of every wait
# Added by a follower to the leader's answer to a forwarded request
# (chronos_harness lower-cases response header names).
FORWARDED = "x-chronos-forwarded-by"

# Small Raft timeouts: a failover costs about one election timeout (libraft
# draws it in [T, 2T]). Heartbeats at a tenth of it keep spurious elections
# away even on two loaded cores.
DEFAULT_CONFIG = {
    "cluster.raft.heartbeat_timeout": "50ms",
    "cluster.raft.election_timeout": "500ms",
}

# Chronos's production Raft timeouts (docs/cluster.md), for measurements
# that should see what a deployment sees (bench/).
PRODUCTION_CONFIG = {
    "cluster.raft.heartbeat_timeout": "50ms",
    "cluster.raft.election_timeout": "400ms",
}

# `defaults` of a Cluster that runs the binary's own configuration: no
# config file at all, whatever the binary's defaults are at the time.
BINARY_DEFAULTS = {}

# Ports of nodes in a netns.Network: node i (from 0) serves HTTP on
# 127.0.0.1:NETNS_HTTP_PORT + i + 1 in its namespace (without authentication
# chronos refuses any address off loopback: config.cc, SPEC §6), which the
# network maps to the node (netns.Network.map_loopback_ports): the test
# reaches it at <node address>:<port>, the other nodes at the address the
# node advertises, 127.0.0.1:<port>. Raft listens on <node address>:7000.
NETNS_HTTP_PORT = 8080
NETNS_RAFT_PORT = 7000

# An every-second job that runs each scheduled second even across a
# failover: `execute_all` catches up the seconds no leader was there to
# start, `allow` never skips one because another is still running.
EVERY_SECOND = {
    "schedule": "* * * * * *",
    "concurrency": "allow",
    "missed_run_policy": "execute_all",
    "catchup_window": "10m",
    "timeout": "5s",
    "retry_policy": dict(ec.FAST_RETRY),
}


# --- ports -------------------------------------------------------------------

_used_ports = set()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def pick_port():
    """A port free on 127.0.0.1 now, outside the kernel's ephemeral range
    (so no outgoing connection of a running node can take it while its owner
    is down between a kill and a restart) and never handed out before by
    this process."""
    lo, hi = _ephemeral_range()
    ranges = [(r0, r1) for r0, r1 in ((10000, lo - 1), (hi + 1, 65535))
              if r1 - r0 > 1000]
    for _ in range(1000):
        if ranges:
            r0, r1 = random.choice(ranges)
            port = random.randint(r0, r1)
        else:
            port = h.free_port()
        if port in _used_ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        _used_ports.add(port)
        return port
    raise AssertionError("no free port found")


# --- config ------------------------------------------------------------------

def yaml_text(flat):
    """{"a.b.c": "v"} -> nested YAML mapping text (scalars only)."""
    tree = {}
    for key, value in flat.items():
        node = tree
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    lines = []

    def emit(node, indent):
        for k, v in node.items():
            if isinstance(v, dict):
                lines.append("%s%s:" % ("  " * indent, k))
                emit(v, indent + 1)
            else:
                lines.append("%s%s: %s" % ("  " * indent, k, v))
    emit(tree, 0)
    return "\n".join(lines) + "\n"


# --- the cluster -------------------------------------------------------------

class Cluster:
    """N nodes n1..nN on 127.0.0.1, started with the same --raft-peers.

    `config` adds YAML keys (dotted, e.g. "cluster.raft.snapshot_threshold")
    to `defaults` (DEFAULT_CONFIG unless given; BINARY_DEFAULTS for the
    binary's own configuration: with nothing to set, no --config is
    passed). All ports are picked before any node starts. Nodes that joined
    later or were removed stay in `all_nodes` (and are cleaned up);
    `members` are those not removed. Not thread-safe.

    With a `network` (netns.Network), node i runs in the network's
    namespace i (`ip netns exec`) with the address network.node_ip(i) as
    its `host` (Raft address, and where the harness reaches its API; see
    NETNS_HTTP_PORT); the network needs a namespace for every node,
    including those that join later.
    """

    def __init__(self, size, config=None, prefix="n", network=None,
                 defaults=None):
        self.prefix = prefix
        self.network = network
        self.config = dict(DEFAULT_CONFIG if defaults is None else defaults)
        self.config.update(config or {})
        self.config_path = (ec.write_config(yaml_text(self.config))
                            if self.config else None)
        self.all_nodes = []
        self.removed = set()  # node ids
        places = [self._place(i) for i in range(size)]
        self.peers = ",".join("%s%d@%s:%d" % (prefix, i + 1, pl["host"],
                                              pl["raft_port"])
                              for i, pl in enumerate(places))
        for i, place in enumerate(places):
            self._add_node("%s%d" % (prefix, i + 1),
                           ["--raft-peers", self.peers], place)

    def _place(self, i):
        """h.Node's address and port arguments of the i-th node."""
        if self.network is None:
            return {"host": HOST, "http_port": pick_port(),
                    "raft_port": pick_port()}
        if i >= self.network.size:
            raise AssertionError("network %r has no namespace for node %d" %
                                 (self.network, i + 1))
        return {"host": self.network.node_ip(i),
                "http_host": netns.LOOPBACK,
                "http_port": NETNS_HTTP_PORT + i + 1,
                "raft_port": NETNS_RAFT_PORT,
                "cmd_prefix": self.network.exec_prefix(i)}

    def _add_node(self, node_id, args, place=None):
        place = place or self._place(len(self.all_nodes))
        config = ["--config", self.config_path] if self.config_path else []
        node = h.Node(node_id=node_id, extra_args=config + args, **place)
        self.all_nodes.append(node)
        if self.network is not None:
            self.network.map_loopback_ports(
                [n.http_port for n in self.all_nodes])
        return node

    # --- lifecycle -------------------------------------------------------
    def start(self, timeout=DEADLINE_S):
        """Starts every node; returns once all are ready and every member's
        name and HTTP address is registered (until then a follower answers
        writes with 503: it cannot forward them)."""
        for n in self.all_nodes:
            n.start()
        self.wait_ready(timeout)
        self.wait_registered(timeout)
        return self

    def cleanup(self):
        for n in self.all_nodes:
            n.cleanup()
        if self.config_path:
            h.remove_temp_dir(os.path.dirname(self.config_path))

    def kill_all_now(self):
        """SIGKILL without waiting (for the time-budget signal handler)."""
        for n in self.all_nodes:
            if n.proc is not None and n.proc.poll() is None:
                try:
                    os.kill(n.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def kill9(self, node):
        node.kill9()

    @staticmethod
    def freeze(node):
        """SIGSTOP by PID (the process keeps its sockets; the kernel still
        completes TCP handshakes on its listening ports)."""
        os.kill(node.proc.pid, signal.SIGSTOP)

    @staticmethod
    def thaw(node):
        """SIGCONT by PID."""
        os.kill(node.proc.pid, signal.SIGCONT)

    def stop(self, node, timeout=20):
        """SIGTERM; returns the exit code (None when it had to be killed)."""
        return node.stop(timeout)

    def restart(self, node, timeout=DEADLINE_S):
        """Starts a stopped node on its data dir and ports; waits for /ready."""
        if node.running():
            node.stop()
        return node.start_ready(timeout)

    def add_node_via_join(self, join_url, node_id=None):
        """Starts a new node with an empty data dir and `--join join_url`
        (no --raft-peers). Returns it at once, started but not necessarily
        ready."""
        node_id = node_id or "%s%d" % (self.prefix, len(self.all_nodes) + 1)
        node = self._add_node(node_id, ["--join", join_url])
        node.start()
        return node

    def forget(self, node):
        """Marks a node removed from the membership (after DELETE
        /cluster/nodes/{id}); it no longer counts as live."""
        self.removed.add(node.node_id)

    # --- views -----------------------------------------------------------
    @property
    def members(self):
        return [n for n in self.all_nodes if n.node_id not in self.removed]

    def live(self):
        return [n for n in self.members if n.running()]

    def by_raft_address(self, address):
        for n in self.all_nodes:
            if self.raft_address(n) == address:
                return n
        return None

    def others(self, node):
        """The members other than `node`."""
        return [n for n in self.members if n is not node]

    @staticmethod
    def url(node):
        return "http://%s:%d" % (node.host, node.http_port)

    @staticmethod
    def raft_address(node):
        return "%s:%d" % (node.host, node.raft_port)

    @staticmethod
    def api(node, method, path, body=None, timeout=h.REQUEST_TIMEOUT_S):
        """node.api(), but a request lost because the node died fails with
        its exit status and log tail."""
        try:
            return node.api(method, path, body=body, timeout=timeout)
        except (OSError, http.client.HTTPException) as e:
            if node.proc is not None:
                try:
                    node.proc.wait(timeout=2)
                except Exception:  # noqa: BLE001 - still running
                    pass
            if node.running():
                raise
            raise AssertionError(
                "%s died (exit status %s) during %s %s (%r)\n--- log tail "
                "---\n%s" % (node.node_id, node.proc.returncode, method, path,
                              e, node.log_tail())) from None

    @staticmethod
    def _cluster_get(node, what, timeout):
        """GET /api/v1/cluster/<what> -> data (raises on any failure)."""
        r = node.api("GET", "/api/v1/cluster/" + what, timeout=timeout)
        if r.status != 200 or not isinstance(r.json, dict):
            raise AssertionError("cluster %s of %s: %r" % (what, node.node_id, r))
        return r.json["data"]

    @staticmethod
    def status(node, timeout=5):
        """GET /api/v1/cluster/status -> data."""
        return Cluster._cluster_get(node, "status", timeout)

    @staticmethod
    def cluster_nodes(node, timeout=5):
        """GET /api/v1/cluster/nodes -> list of members."""
        return Cluster._cluster_get(node, "nodes", timeout)

    def describe(self):
        """Every node's state and log tail, for failure messages."""
        out = []
        for n in self.all_nodes:
            try:
                st = self.status(n, timeout=2)
                s = "state=%s term=%s leader=%s commit=%s applied=%s" % (
                    st.get("state"), st.get("term"), st.get("leader"),
                    st.get("commit_index"), st.get("applied_index"))
            except Exception as e:  # noqa: BLE001 - diagnostics only
                s = "status unavailable (%r)" % (e,)
            out.append("--- %s (%s, http %d, raft %d, %s%s): %s\n%s" % (
                n.node_id, n.host, n.http_port, n.raft_port,
                "running" if n.running() else "down",
                ", removed" if n.node_id in self.removed else "", s,
                n.log_tail(15)))
        return "\n".join(out)

    def states(self, nodes=None):
        """One line: each node's state, term and leader as it sees them
        ("n1=leader/t3 n2=follower/t3->n1 n3=?")."""
        out = []
        for n in (self.all_nodes if nodes is None else nodes):
            try:
                st = self.status(n, timeout=2)
                lead = self.by_raft_address(
                    (st.get("leader") or {}).get("address") or "")
                out.append("%s=%s/t%s%s" % (
                    n.node_id, st.get("state"), st.get("term"),
                    "->" + lead.node_id if lead is not None and
                    lead is not n else ""))
            except Exception:  # noqa: BLE001 - diagnostics only
                out.append("%s=%s" % (n.node_id, "?" if n.running()
                                      else "down"))
        return " ".join(out)

    # --- waiting ---------------------------------------------------------
    def _agreed_leader(self, nodes):
        statuses = [self.status(n, timeout=2) for n in nodes]
        addrs = {(st.get("leader") or {}).get("address") for st in statuses}
        terms = {st.get("term") for st in statuses}
        if len(addrs) != 1 or None in addrs or len(terms) != 1:
            return None
        leader = self.by_raft_address(addrs.pop())
        if leader is None or leader not in nodes:
            return None
        st = statuses[nodes.index(leader)]
        return leader if st.get("state") == "leader" else None

    def leader(self, timeout=DEADLINE_S, nodes=None, interval=h.POLL_INTERVAL_S):
        """Polls /cluster/status on every live member (or `nodes`) until all
        name the same leader (by Raft address) in the same term and that
        leader is live and says it leads; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            group = list(nodes) if nodes is not None else self.live()
            try:
                found = self._agreed_leader(group) if group else None
                if found is not None:
                    return found
            except (AssertionError, OSError, ValueError):
                pass
            if time.monotonic() >= deadline:
                raise AssertionError(
                    "no agreed leader among %s after %.0fs\n%s" %
                    ([n.node_id for n in group], timeout, self.describe()))
            time.sleep(interval)

    def followers(self, timeout=DEADLINE_S):
        leader = self.leader(timeout)
        return [n for n in self.live() if n is not leader]

    def wait_ready(self, timeout=DEADLINE_S):
        """Waits until /ready is 200 on every live member."""
        deadline = time.monotonic() + timeout
        for n in self.live():
            n.wait_ready(max(1.0, deadline - time.monotonic()))
        return self

    def wait_registered(self, timeout=DEADLINE_S):
        """Waits until GET /cluster/nodes on every live member lists exactly
        the members, by name, each with an HTTP address."""
        want = {n.node_id for n in self.members}

        def complete(members):
            return (len(members) == len(want) and
                    {m.get("id") for m in members} == want and
                    all(m.get("http_address") for m in members)) and members
        for n in self.live():
            self.wait_member_list(n, complete, timeout,
                                  "%s registered" % sorted(want))
        return self

    def wait_all_caught_up(self, timeout=DEADLINE_S):
        """Every live member agrees on a leader and has applied what it had
        committed (e.g. after a partition heals)."""
        deadline = time.monotonic() + timeout
        for n in self.live():
            self.wait_caught_up(n, max(1.0, deadline - time.monotonic()))
        return self.leader(max(1.0, deadline - time.monotonic()))

    def wait_caught_up(self, node, timeout=DEADLINE_S):
        """Waits until `node` has applied everything the leader had
        committed when this was called (the leader keeps committing while
        jobs run, so "equal" is judged against that sample)."""
        target = self.status(self.leader(timeout))["commit_index"]
        return wait_while_running(
            [node],
            lambda: self.status(node, timeout=2)["applied_index"] >= target,
            timeout, "%s applied index >= leader's commit index %d" %
            (node.node_id, target))

    def wait_member_list(self, node, pred, timeout=DEADLINE_S, what="members",
                         watch=()):
        """Polls GET /cluster/nodes on `node` until pred(list) is truthy;
        fails at once if `node` or a node in `watch` exits."""
        return wait_while_running(
            [node] + list(watch),
            lambda: pred(self.cluster_nodes(node, timeout=2)), timeout,
            "%s on %s" % (what, node.node_id))


def wait_while_running(nodes, predicate, timeout, what):
    """Like h.wait_for, but fails at once, with the log tail, when one of
    `nodes` exits (e.g. a node that does not accept its flags)."""
    def alive_and(pred):
        for n in nodes:
            if not n.running():
                raise _NodeExited(
                    "%s exited (%s) while waiting for %s; cmd %s\n"
                    "--- log tail ---\n%s" % (
                        n.node_id, n.proc and n.proc.returncode, what,
                        " ".join(n.command()), n.log_tail()))
        return pred()
    try:
        return h.wait_for(lambda: alive_and(predicate), timeout, what)
    except _NodeExited as e:
        raise AssertionError(str(e)) from None


class _NodeExited(BaseException):
    """Escapes h.wait_for's retry loop (it retries on Exception)."""


# --- tests with a time budget ------------------------------------------------

class BudgetExceeded(BaseException):
    """Raised in the main thread when a test class runs out of time. A
    BaseException, so the polling loops (which retry on Exception) do not
    swallow it; unittest records it as the test's error."""


class ClusterTestCase(unittest.TestCase):
    """Base of the cluster tests: clusters made with new_cluster are cleaned
    up by the test (or the class), and the class has a time budget,
    TIME_BUDGET_S, enforced with SIGALRM while setUpClass and each test run:
    when it runs out, every node of the class is killed and the running test
    fails at once (BudgetExceeded), as does every test after it; ctest's
    TIMEOUT is never the one to stop a hung run."""

    TIME_BUDGET_S = 180

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._clusters = []
        cls._expired = False
        cls._deadline = time.monotonic() + cls.TIME_BUDGET_S
        cls.addClassCleanup(lambda: log("%s took %.1fs (budget %ds)" % (
            cls.__name__, time.monotonic() - cls._deadline +
            cls.TIME_BUDGET_S, cls.TIME_BUDGET_S)))
        cls._arm_budget()
        cls.addClassCleanup(cls._disarm_budget)

    @classmethod
    def _arm_budget(cls):
        def expire(signum, frame):
            cls._expired = True
            for c in list(cls._clusters):
                c.kill_all_now()
            raise BudgetExceeded("%s exceeded its time budget of %ds; its "
                                 "nodes were killed" % (cls.__name__,
                                                        cls.TIME_BUDGET_S))
        signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL,
                         max(0.01, cls._deadline - time.monotonic()))

    @staticmethod
    def _disarm_budget():
        signal.setitimer(signal.ITIMER_REAL, 0)

    def setUp(self):
        if type(self)._expired or time.monotonic() >= type(self)._deadline:
            self.fail("%s exceeded its time budget of %ds" %
                      (type(self).__name__, self.TIME_BUDGET_S))
        self._arm_budget()

    def tearDown(self):
        # Before the cleanups: stopping nodes is bounded by kill -9 anyway.
        self._disarm_budget()

    @classmethod
    def _make_cluster(cls, size, config, register_cleanup, **kwargs):
        c = Cluster(size, config=config, **kwargs)
        cls._clusters.append(c)
        register_cleanup(c.cleanup)
        try:
            c.start()
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, c.describe())) from None
        return c

    def new_cluster(self, size=3, config=None, **kwargs):
        """A started, ready cluster cleaned up after this test (kwargs:
        Cluster's `network`, `defaults`, `prefix`)."""
        return self._make_cluster(size, config, self.addCleanup, **kwargs)

    @classmethod
    def new_class_cluster(cls, size=3, config=None, **kwargs):
        """A started, ready cluster shared by the class (setUpClass)."""
        return cls._make_cluster(size, config, cls.addClassCleanup, **kwargs)

    def new_network(self, size):
        """A netns.Network closed after this test, after the processes of
        every cluster made later in the test were killed (cleanups run last
        in, first out). Raises netns.NetnsError (the test errors, it is not
        skipped) when namespaces cannot be made here."""
        net = netns.Network(size)
        self.addCleanup(self._close_network, net)
        return net

    def _close_network(self, net):
        killed = net.close()
        left = net.leftovers()
        self.assertEqual(killed, [], "processes were still running in the "
                         "test's namespaces at its end (killed now)")
        self.assertEqual(left, [], "namespaces/interfaces left behind")

    def new_netns_cluster(self, size=3, config=None, defaults=None):
        """A started cluster of `size` nodes, each in its own namespace of a
        new Network (returned as cluster.network), with a receiver-friendly
        root-side address (cluster.network.root_ip)."""
        net = self.new_network(size)
        return self.new_cluster(size, config, network=net, defaults=defaults)


def cpu_seconds(node):
    """User + system CPU time the node's process has used so far."""
    with open("/proc/%d/stat" % node.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def assert_idle(test, nodes, window_s=3.0):
    """Each node uses under a quarter of a core over `window_s` (a
    measurement window, not a wait for an event). Loose on purpose: a busy
    spin uses most of a core, an idle node about 1%."""
    before = {n.node_id: cpu_seconds(n) for n in nodes}
    time.sleep(window_s)
    for n in nodes:
        used = cpu_seconds(n) - before[n.node_id]
        test.assertLess(used, 0.25 * window_s,
                        "%s used %.2f s of CPU in %.1f s while idle" % (
                            n.node_id, used, window_s))


def hold(since, seconds):
    """Sleeps until `seconds` after `since` (time.monotonic()): how long a
    fault lasts, not a wait for an event. Returns the seconds held."""
    left = since + seconds - time.monotonic()
    if left > 0:
        time.sleep(left)
    return time.monotonic() - since


def log(msg):
    """A line in the test output (stderr, like unittest's -v output)."""
    sys.stderr.write("[cluster] %s\n" % msg)
    sys.stderr.flush()


# --- jobs ----------------------------------------------------------------------

def create_default_job(test, node, rx, schedule="* * * * * *"):
    """A job with every setting but its schedule and webhook left to the
    server's defaults (concurrency, missed_run_policy, retry_policy,
    timeout, ...)."""
    return ec.create_job(test, node, schedule=schedule,
                         webhook=ec.webhook(rx))


def create_every_second_job(test, node, rx, **fields):
    body = dict(EVERY_SECOND)
    body["webhook"] = ec.webhook(rx)
    body.update(fields)
    return ec.create_job(test, node, **body)


def all_job_ids(node, timeout=h.REQUEST_TIMEOUT_S):
    """Every job id on the node's own state (all pages)."""
    ids = set()
    cursor = ""
    for _ in range(10000):
        q = "/api/v1/jobs?limit=1000" + ("&cursor=" + cursor if cursor else "")
        r = node.api("GET", q, timeout=timeout)
        if r.status != 200:
            raise AssertionError("list jobs on %s: %r" % (node.node_id, r))
        ids.update(j["id"] for j in r.json["data"]["jobs"])
        cursor = r.json["data"].get("next_cursor") or ""
        if not cursor:
            return ids
    raise AssertionError("job list pagination does not end")


def wait_has_jobs(node, job_ids, timeout=DEADLINE_S):
    """Waits until the node's own state holds every id in job_ids."""
    want = set(job_ids)
    return wait_while_running(
        [node], lambda: want <= all_job_ids(node, timeout=5), timeout,
        "%d job(s) on %s" % (len(want), node.node_id))


class JobWriter(threading.Thread):
    """Creates jobs on `node` over one keep-alive connection until stop()
    or `deadline` (time.monotonic()). Records the latency of each 201, the
    count of each status, the ids of the jobs acknowledged (201), requests
    forwarded (X-Chronos-Forwarded-By), transport errors (the connection is
    then reopened) and the first non-201 answer."""

    def __init__(self, node, tag, deadline=None):
        super().__init__(daemon=True, name="writer-%s" % tag)
        self.node = node
        self.tag = tag
        self.deadline = deadline
        self._stop_event = threading.Event()
        self.latencies = []
        self.statuses = {}
        self.acked = []
        self.forwarded = 0
        self.errors = 0
        self.first_failure = None

    def stop(self):
        self._stop_event.set()
        self.join(60)

    def _go_on(self):
        return not self._stop_event.is_set() and (
            self.deadline is None or time.monotonic() < self.deadline)

    def run(self):
        conn = None
        n = 0
        while self._go_on():
            if conn is None:
                conn = http.client.HTTPConnection(self.node.host,
                                                  self.node.http_port,
                                                  timeout=30)
            n += 1
            body = json.dumps(h.job_body("w-%s-%d" % (self.tag, n))).encode()
            t0 = time.monotonic()
            try:
                conn.request("POST", "/api/v1/jobs", body=body, headers={
                    "Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                self.errors += 1
                conn.close()
                conn = None
                self._stop_event.wait(0.05)  # the node may be down a while
                continue
            self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
            if resp.status == 201:
                self.latencies.append(time.monotonic() - t0)
                self.acked.append(json.loads(data)["data"]["id"])
            elif self.first_failure is None:
                self.first_failure = "%d %s" % (resp.status, data[:300])
            if resp.getheader("X-Chronos-Forwarded-By"):
                self.forwarded += 1
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        if conn is not None:
            conn.close()


# --- failover ------------------------------------------------------------------

def first_run_after(rx, job_id, t, timeout=DEADLINE_S):
    """The first request (by arrival) of the job whose scheduled time is
    after t (epoch seconds)."""
    reqs = rx.wait_for(
        lambda rs: [r for r in rs if r.job_id == job_id and
                    ec.parse_time(r.scheduled_time) > t], timeout,
        "a run of %s scheduled after %.3f" % (job_id, t))
    return min(reqs, key=lambda r: r.time)


def failover_cycle(cluster, rx, job_id, victims=1, timeout=DEADLINE_S):
    """kill -9 the leader (and victims-1 followers at the same instant),
    waits for a new leader and for the next run of the job, restarts the
    victims and waits until they are caught up. Returns a dict with
    `new_leader_s` (kill -> all survivors agree on a live leader) and
    `next_run_s` (kill -> arrival of the first run scheduled after the
    kill)."""
    old = cluster.leader(timeout)
    others = [n for n in cluster.live() if n is not old]
    killed = [old] + others[:victims - 1]
    t_kill = time.time()
    for n in killed:
        cluster.kill9(n)
    new = cluster.leader(timeout, nodes=cluster.live(), interval=0.01)
    t_leader = time.time() - t_kill
    run = first_run_after(rx, job_id, t_kill, timeout)
    for n in killed:
        cluster.restart(n, timeout)
    for n in killed:
        cluster.wait_caught_up(n, timeout)
    return {"killed": [n.node_id for n in killed], "new_leader": new.node_id,
            "new_leader_s": t_leader, "next_run_s": run.time - t_kill,
            "t_kill": t_kill}


def failover_summary(cycles):
    """One greppable line ("FAILOVER SUMMARY ...") of failover_cycle
    results: kill -> new leader agreed, kill -> first run scheduled after
    the kill arrived; median and max over the kills."""
    def fig(key):
        vals = [c[key] for c in cycles]
        return "median %.3fs max %.3fs" % (statistics.median(vals),
                                           max(vals)) if vals else "-"
    return ("FAILOVER SUMMARY kills=%d kill->new_leader: %s; "
            "kill->next_run_arrived: %s" % (len(cycles), fig("new_leader_s"),
                                            fig("next_run_s")))


def count_executions(node, job_id, status, timeout=h.REQUEST_TIMEOUT_S):
    """How many executions of the job the node's state holds with `status`
    (GET /jobs/{id}/executions?status=..., every page)."""
    n = 0
    cursor = ""
    for _ in range(10000):
        q = "/api/v1/jobs/%s/executions?status=%s&limit=1000%s" % (
            job_id, status, "&cursor=" + cursor if cursor else "")
        r = node.api("GET", q, timeout=timeout)
        if r.status != 200 or not isinstance(r.json, dict):
            raise AssertionError("executions of %s on %s: %r" % (
                job_id, node.node_id, r))
        n += len(r.json["data"]["executions"])
        cursor = r.json["data"].get("next_cursor") or ""
        if not cursor:
            return n
    raise AssertionError("execution list pagination does not end")


class RunReport:
    """What an every-second job's receiver saw over a window.

    `seconds`: the scheduled seconds checked (first seen .. `until`);
    `missed`: those with no request; `early`: requests that arrived before
    their scheduled time; `late`: (request, lateness) over `bound_s`;
    `conflicts`: scheduled second -> set of execution ids when one second
    came with more than one id; `copies`: requests beyond one per second
    (same id: re-dispatch after a failover).

    Attempts, per execution id in arrival order: `attempts_backwards`
    (exec id -> X-Chronos-Attempt values) when a value is lower than the one
    before it; `attempts_repeated` when a value equals the one before it
    (non-decreasing, but not the strictly increasing the server promises);
    `attempts_missing`: requests without a numeric X-Chronos-Attempt or
    without an execution id. `skipped`: executions the server recorded as
    `skipped` (None: not counted; settle_and_report counts them)."""

    def __init__(self, requests, until, bound_s, skipped=None):
        by_sched = {}
        for r in requests:
            by_sched.setdefault(ec.parse_time(r.scheduled_time), []).append(r)
        self.bound_s = bound_s
        self.first = min(by_sched) if by_sched else None
        self.until = until
        self.seconds = []
        if self.first is not None:
            s = self.first
            while s <= until:
                self.seconds.append(s)
                s += 1
        self.missed = [s for s in self.seconds if s not in by_sched]
        self.early = [r for r in requests
                      if r.time < ec.parse_time(r.scheduled_time)]
        self.late = [(r, r.time - ec.parse_time(r.scheduled_time))
                     for r in requests
                     if ec.parse_time(r.scheduled_time) <= until and
                     r.time - ec.parse_time(r.scheduled_time) > bound_s]
        self.conflicts = {s: {r.execution_id for r in rs}
                          for s, rs in by_sched.items()
                          if len({r.execution_id for r in rs}) > 1}
        self.copies = sum(len(rs) - 1 for rs in by_sched.values())
        lateness = [r.time - s for s, rs in by_sched.items() for r in rs
                    if s <= until]
        self.max_lateness = max(lateness) if lateness else None
        self.median_lateness = (statistics.median(lateness) if lateness
                                else None)
        by_exec = {}
        for r in sorted(requests, key=lambda r: r.seq):
            by_exec.setdefault(r.execution_id, []).append(r.attempt)
        self.attempts_missing = [r for r in requests
                                 if r.attempt is None or not r.execution_id]
        self.attempts_backwards = {
            e: seq for e, seq in by_exec.items()
            if any(a is not None and b is not None and b < a
                   for a, b in zip(seq, seq[1:]))}
        self.attempts_repeated = {
            e: seq for e, seq in by_exec.items()
            if any(a is not None and b is not None and b == a
                   for a, b in zip(seq, seq[1:]))}
        self.executions = len(by_exec)
        self.skipped = skipped

    def summary(self):
        return ("%d second(s) from %s: %d missed, %d early, %d late (> %.1fs), "
                "%d with conflicting ids, %d re-sent copies, lateness median "
                "%.3fs max %.3fs; %d execution id(s): attempts go backwards "
                "in %d, repeat in %d, missing on %d request(s); skipped "
                "executions: %s" % (
                    len(self.seconds),
                    ec.format_time(self.first) if self.first else "-",
                    len(self.missed), len(self.early), len(self.late),
                    self.bound_s, len(self.conflicts), self.copies,
                    self.median_lateness or 0, self.max_lateness or 0,
                    self.executions, len(self.attempts_backwards),
                    len(self.attempts_repeated), len(self.attempts_missing),
                    "not counted" if self.skipped is None else self.skipped))

    def problems(self, covers=()):
        """Every check that fails, one line each (empty when all hold):
        the checks of assert_ok plus the attempt order (backwards and
        repeated reported apart) and the skipped count."""
        out = []
        if not self.seconds:
            return ["no run arrived at all"]
        for t in covers:
            if not self.first <= t <= self.until:
                out.append("window does not cover %s" % ec.format_time(t))
        if self.missed:
            out.append("MISSED %d scheduled second(s): %s%s" % (
                len(self.missed), _seconds_text(self.missed),
                "" if len(self.missed) <= 40 else " ..."))
        if self.early:
            out.append("EARLY %d run(s) arrived before their second: %s" % (
                len(self.early), self.early[:5]))
        if self.late:
            out.append("LATE %d run(s) arrived more than %.1fs after their "
                       "second (max %.3fs): %s" % (
                           len(self.late), self.bound_s,
                           max(x for _, x in self.late),
                           ["%s +%.3fs" % (r.scheduled_time, x)
                            for r, x in self.late[:10]]))
        if self.conflicts:
            out.append("CONFLICT %d second(s) ran under several execution "
                       "ids: %s" % (len(self.conflicts), _conflicts_text(
                           self.conflicts)))
        if self.attempts_backwards:
            out.append("ATTEMPTS BACKWARDS (not even non-decreasing) for %d "
                       "execution(s): %s" % (len(self.attempts_backwards),
                                             list(self.attempts_backwards
                                                  .items())[:5]))
        if self.attempts_repeated:
            out.append("ATTEMPTS REPEATED (non-decreasing but not strictly "
                       "increasing) for %d execution(s): %s" % (
                           len(self.attempts_repeated),
                           list(self.attempts_repeated.items())[:5]))
        if self.attempts_missing:
            out.append("%d request(s) without attempt or execution id: %s" % (
                len(self.attempts_missing), self.attempts_missing[:5]))
        if self.skipped:
            out.append("SKIPPED %d execution(s) recorded as skipped" %
                       self.skipped)
        return out

    def assert_all(self, test, covers=(), what=""):
        """Fails listing every problem() at once (so one run tells all)."""
        found = self.problems(covers)
        if found:
            test.fail("%s%s\n  %s\n  (%s)" % (
                what + ": " if what else "", "; ".join(
                    p.split(" ", 1)[0] for p in found),
                "\n  ".join(found), self.summary()))

    def assert_ok(self, test, covers=()):
        """Fails on any missed, early, late or conflicting run; `covers`:
        instants (epoch s) the window must include."""
        info = self.summary()
        test.assertTrue(self.seconds, info)
        for t in covers:
            test.assertTrue(self.first <= t <= self.until,
                            "window does not cover %s; %s" % (
                                ec.format_time(t), info))
        test.assertEqual(self.missed, [], "missed seconds %s; %s" % (
            [ec.format_time(s) for s in self.missed[:20]], info))
        test.assertEqual(self.early, [], "runs before their time; " + info)
        test.assertEqual(self.late, [], "runs later than %.1fs: %r; %s" % (
            self.bound_s, self.late[:10], info))
        test.assertEqual(self.conflicts, {}, "a second ran under several "
                         "execution ids; " + info)


def settle_and_report(rx, job_id, bound_s, timeout=DEADLINE_S, node=None,
                      until=None):
    """Reports on the job's scheduled seconds from its first run up to
    `until` (now unless given), once a run scheduled bound_s after it has
    arrived: by then every earlier second must have arrived too (or it is
    missed or late). With `node`, also counts the executions it recorded as
    `skipped` (after the wait, so its state holds the whole window)."""
    until = time.time() if until is None else until
    first_run_after(rx, job_id, until + bound_s, timeout + bound_s)
    skipped = None if node is None else count_executions(node, job_id,
                                                         "skipped")
    return RunReport(rx.requests_for(job_id), until, bound_s, skipped)


def _seconds_text(seconds, limit=40):
    """Scheduled seconds as compact runs: "12:00:01-12:00:04, 12:00:09"."""
    runs = []
    for s in sorted(seconds)[:limit]:
        if runs and s - runs[-1][1] == 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    return ", ".join(
        ec.format_time(a)[11:19] + ("" if a == b else
                                    "-" + ec.format_time(b)[11:19] +
                                    " (%d)" % (b - a + 1))
        for a, b in runs)


def _conflicts_text(conflicts, limit=5):
    return ", ".join("%s: %d ids" % (ec.format_time(s)[11:19], len(ids))
                     for s, ids in sorted(conflicts.items())[:limit])
