"""Self-test of netns.py: the private test network connects every node
namespace with every other and with the test process (root namespace), a
cut drops exactly the packets of its direction, isolate() spares the root
side, and close() leaves nothing behind.

Probes are plain sockets: a small agent in each node namespace (`ip netns
exec <ns> python3 -c ...`) listens on TCP and UDP and reports, on its
stdout, every connection it accepts and every datagram it receives; probes
run in a namespace connect or send from there. No chronos process is
involved, so this runs in a few seconds.

What one direction means for TCP (netns.py's doc): with a->b cut, a cannot
connect to b, and b cannot either (b's SYN arrives, a's SYN-ACK is
dropped); b's datagrams reach a, a's never reach b.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest
from unittest import mock

import cluster_harness as ch
import netns
from cluster_harness import h

PORT = 9000
LOOPBACK_PORTS = [9101, 9102, 9103]  # node i's service on 127.0.0.1
CONNECT_TIMEOUT_S = 1.5   # a blocked connect fails after this
ABSENCE_GRACE_S = 0.5     # after a later datagram of the same sender arrived

AGENT = r"""
import select, socket, sys
addr, port, lport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def listen(a, p):
    t = socket.socket()
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((a, p)); t.listen(64)
    return t
t, lo = listen(addr, port), listen("127.0.0.1", lport)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((addr, port))
print("ready", flush=True)
while True:
    for s in select.select([t, lo, u], [], [])[0]:
        if s is u:
            data, peer = u.recvfrom(512)
            print("udp", peer[0], data.decode(), flush=True)
        else:
            c, peer = s.accept(); c.close()
            print("tcp" if s is t else "lo", peer[0], flush=True)
"""

# argv[1]: JSON list of ["tcp", host, port] (connect, in parallel) and
# ["udp", host, port, token] (sent in list order, before the connects).
# Prints a JSON list: "ok", "sent" or the error, one per item.
PROBE = r"""
import json, socket, sys, threading
items = json.loads(sys.argv[1]); timeout = float(sys.argv[2])
out = [None] * len(items)
def tcp(i, host, port):
    try:
        socket.create_connection((host, port), timeout).close(); out[i] = "ok"
    except OSError as e:
        out[i] = "%s: %s" % (type(e).__name__, e)
threads = []
for i, it in enumerate(items):
    if it[0] == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.sendto(it[3].encode(), (it[1], it[2])); out[i] = "sent"
        except OSError as e:
            out[i] = "%s: %s" % (type(e).__name__, e)
        s.close()
    else:
        th = threading.Thread(target=tcp, args=(i, it[1], it[2]))
        th.start(); threads.append(th)
for th in threads:
    th.join()
print(json.dumps(out))
"""


class Agent:
    """The listener in one node namespace; `events` are its report lines."""

    def __init__(self, net, i):
        self.proc = subprocess.Popen(
            net.exec_prefix(i) + [sys.executable, "-c", AGENT,
                                  net.node_ip(i), str(PORT),
                                  str(LOOPBACK_PORTS[i])],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True)
        h.track_process(self.proc)
        self.events = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait(lambda ev: "ready" in ev, "agent ready")

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.events.append(line.strip())
                self.cond.notify_all()

    def wait(self, pred, what, timeout=30):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(self.events):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError("agent: no %s; events %r" % (
                        what, self.events))
                self.cond.wait(min(left, 0.5))

    def seen(self, token):
        with self.cond:
            return any(e.endswith(" " + token) for e in self.events)

    def count(self, line):
        with self.cond:
            return self.events.count(line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        h.untrack_process(self.proc)


class NetnsSelfTest(ch.ClusterTestCase):

    TIME_BUDGET_S = 90

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.net = netns.Network(3)
        cls.addClassCleanup(cls.net.close)
        cls.net.map_loopback_ports(LOOPBACK_PORTS)
        cls.agents = []
        for i in range(3):
            a = Agent(cls.net, i)
            cls.addClassCleanup(a.stop)
            cls.agents.append(a)
        # the root side: a listener in the test process
        cls.root = socket.socket()
        cls.root.bind((cls.net.root_ip, 0))
        cls.root.listen(64)
        cls.root_port = cls.root.getsockname()[1]
        cls.addClassCleanup(cls.root.close)
        threading.Thread(target=cls._accept_root, daemon=True).start()

    @classmethod
    def _accept_root(cls):
        while True:
            try:
                c, _ = cls.root.accept()
            except OSError:
                return
            c.close()

    def tearDown(self):
        self.net.heal_all()
        super().tearDown()

    # --- probes ---------------------------------------------------------
    def probe(self, i, items):
        r = self.net.run(i, [sys.executable, "-c", PROBE, json.dumps(items),
                             str(CONNECT_TIMEOUT_S)], timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def tcp(self, i, targets):
        """{target index or "root": "ok" | error} for connects from node i."""
        items = [["tcp", self.net.root_ip if t == "root" else
                  self.net.node_ip(t), self.root_port if t == "root" else PORT]
                 for t in targets]
        return dict(zip(targets, self.probe(i, items)))

    def assertConnects(self, results, *targets):
        for t in targets:
            self.assertEqual(results[t], "ok", "connect to %s: %r" % (
                t, results))

    def assertBlocked(self, results, *targets):
        for t in targets:
            self.assertNotEqual(results[t], "ok", "connect to %s went "
                                "through: %r" % (t, results))
            self.assertNotIn("Refused", results[t],
                             "a refusal means packets got through")

    def root_connects(self, i):
        try:
            socket.create_connection((self.net.node_ip(i), PORT),
                                     CONNECT_TIMEOUT_S).close()
            return True
        except OSError:
            return False

    def udp(self, src, dst, marker_dst):
        """Sends a token src->dst, then another src->marker_dst; waits for
        the marker to arrive. Returns whether dst got its token."""
        tok = "t%d" % time.monotonic_ns()
        self.probe(src, [["udp", self.net.node_ip(dst), PORT, tok + "a"],
                         ["udp", self.net.node_ip(marker_dst), PORT,
                          tok + "b"]])
        self.agents[marker_dst].wait(
            lambda ev: any(e.endswith(" " + tok + "b") for e in ev),
            "marker datagram %s from n%d" % (tok, src + 1), timeout=10)
        if not self.agents[dst].seen(tok + "a"):
            time.sleep(ABSENCE_GRACE_S)  # a window for absence, not an event
        return self.agents[dst].seen(tok + "a")

    # --- tests ----------------------------------------------------------
    def test_everything_connected(self):
        for i in range(3):
            others = [j for j in range(3) if j != i]
            self.assertConnects(self.tcp(i, others + ["root"]),
                                *others + ["root"])
            self.assertTrue(self.root_connects(i), "root -> n%d" % (i + 1))
        self.assertTrue(self.udp(0, 1, 2))

    def test_one_way_cut(self):
        self.net.cut(0, 1)
        self.assertEqual(self.net.cuts,
                         [(self.net.node_ip(0), self.net.node_ip(1))])
        r0 = self.tcp(0, [1, 2, "root"])
        self.assertBlocked(r0, 1)
        self.assertConnects(r0, 2, "root")
        # n2 -> n1: the datagram arrives; a connection does not complete
        # (n1's SYN-ACK is dropped), see the module doc.
        self.assertTrue(self.udp(1, 0, 2), "n2 -> n1 datagram dropped")
        self.assertFalse(self.udp(0, 1, 2), "n1 -> n2 datagram arrived")
        r1 = self.tcp(1, [0, 2])
        self.assertBlocked(r1, 0)
        self.assertConnects(r1, 2)
        self.assertConnects(self.tcp(2, [0, 1]), 0, 1)
        self.assertTrue(self.root_connects(0))
        self.assertTrue(self.root_connects(1))
        self.net.heal(0, 1)
        self.assertEqual(self.net.cuts, [])
        self.assertConnects(self.tcp(0, [1]), 1)
        self.assertConnects(self.tcp(1, [0]), 0)
        self.assertTrue(self.udp(0, 1, 2))

    def test_isolate_spares_the_root_side(self):
        self.net.isolate(0)
        self.assertEqual(len(self.net.cuts), 4)
        r0 = self.tcp(0, [1, 2, "root"])
        self.assertBlocked(r0, 1, 2)
        self.assertConnects(r0, "root")
        self.assertTrue(self.root_connects(0), "root -> isolated n1")
        self.assertFalse(self.udp(1, 0, 2), "n2 -> isolated n1 arrived")
        self.assertConnects(self.tcp(1, [2]), 2)
        self.net.heal_all()
        self.assertConnects(self.tcp(0, [1, 2]), 1, 2)

    def test_isolate_all(self):
        self.net.isolate_all()
        for i in range(3):
            others = [j for j in range(3) if j != i]
            r = self.tcp(i, others + ["root"])
            self.assertBlocked(r, *others)
            self.assertConnects(r, "root")
        self.net.heal_all()
        self.assertConnects(self.tcp(2, [0, 1]), 0, 1)

    def test_loopback_ports_lead_to_their_node(self):
        """127.0.0.1:LOOPBACK_PORTS[i] is node i's service everywhere in the
        network, reached from the test at node_ip(i):LOOPBACK_PORTS[i];
        the service sees the real sender; cuts apply to it."""
        net, lo = self.net, netns.LOOPBACK
        a1 = self.agents[1]
        before = a1.count("lo %s" % net.root_ip)
        socket.create_connection((net.node_ip(1), LOOPBACK_PORTS[1]),
                                 CONNECT_TIMEOUT_S).close()
        a1.wait(lambda ev: ev.count("lo %s" % net.root_ip) > before,
                "the test's connection on n2's loopback service", 10)
        for src, want in ((0, "lo %s" % net.node_ip(0)),
                          (1, "lo 127.0.0.1")):  # its own: plain loopback
            before = a1.count(want)
            self.assertEqual(
                self.probe(src, [["tcp", lo, LOOPBACK_PORTS[1]]]), ["ok"],
                "n%d -> n2's loopback service" % (src + 1))
            a1.wait(lambda ev: ev.count(want) > before, want, 10)
        self.net.cut(0, 1)
        self.assertBlocked(dict(enumerate(self.probe(
            0, [["tcp", lo, LOOPBACK_PORTS[1]]]))), 0)
        self.assertEqual(self.probe(2, [["tcp", lo, LOOPBACK_PORTS[1]],
                                        ["tcp", lo, LOOPBACK_PORTS[0]]]),
                         ["ok", "ok"])
        # n2 -> n1's service: its SYN reaches n1, n1's answer is cut
        self.assertBlocked(dict(enumerate(self.probe(
            1, [["tcp", lo, LOOPBACK_PORTS[0]]]))), 0)

    def test_close_leaves_nothing(self):
        net = netns.Network(2)
        self.addCleanup(net.close)
        names = set(net.node_ns) | {net.switch_ns}
        listed = subprocess.run([net.ip, "netns", "list"], text=True,
                                stdout=subprocess.PIPE).stdout
        self.assertEqual(names, {ns for ns in names if ns in listed})
        for name in names | {net.root_if}:
            self.assertIn(str(os.getpid()), name)
        for name in [net.root_if, net.bridge] + net.node_if + net.port_if:
            self.assertLessEqual(len(name), 15, name)
        # a process left inside is killed by its PID on close
        stray = subprocess.Popen(net.exec_prefix(1) + ["sleep", "600"],
                                 stdin=subprocess.DEVNULL)
        h.track_process(stray)
        self.addCleanup(h.untrack_process, stray)
        h.wait_for(lambda: str(stray.pid) in subprocess.run(
            [net.ip, "netns", "pids", net.namespace(1)], text=True,
            stdout=subprocess.PIPE).stdout, 10, "sleep in the namespace")
        self.assertEqual(net.close(), [stray.pid])
        h.wait_for(lambda: stray.poll() is not None, 10, "stray process gone")
        self.assertEqual(net.leftovers(), [])
        listed = subprocess.run([net.ip, "netns", "list"], text=True,
                                stdout=subprocess.PIPE).stdout
        self.assertFalse([ns for ns in names if ns in listed], listed)
        self.assertEqual(net.close(), [])  # idempotent

    def test_missing_pieces_are_errors_not_skips(self):
        real = netns.find_tool
        with mock.patch.object(netns, "find_tool",
                               lambda n: None if n == "nft" else real(n)):
            with self.assertRaisesRegex(netns.NetnsError, "nft.*nftables"):
                netns.Network(2)
        with mock.patch.object(netns, "find_tool", lambda n: None):
            with self.assertRaisesRegex(netns.NetnsError,
                                        "`ip`.*iproute2.*nft"):
                netns.check_prerequisites()
        with mock.patch.object(netns.os, "geteuid", lambda: 1000):
            with self.assertRaisesRegex(netns.NetnsError, "root.*1000"):
                netns.check_prerequisites()


if __name__ == "__main__":
    unittest.main()
