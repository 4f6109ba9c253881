"""A private test network of Linux network namespaces, with per-direction
packet drops (nftables), for multi-process partition tests.

Python 3 standard library only; needs root, `ip` (iproute2, with `ip
netns`) and `nft` (nftables). A missing piece is an error naming it, never
a skip.

    net = Network(3)                    # sets up everything, or raises
    test.addCleanup(net.close)          # (also closed at interpreter exit)
    net.node_ip(0), net.exec_prefix(0)  # "198.18.X.1", [ip, netns, exec, ns]
    net.root_ip                         # the test process's address
    net.cut(0, 1)                       # drop what node 0 sends to node 1
    net.heal(0, 1); net.isolate(2); net.heal_all()

Layout: one "switch" namespace holds a Linux bridge; each node has its own
namespace with one veth into the bridge and the address 198.18.X.(i+1)/24;
one more veth pair runs from the root namespace into the bridge, with
198.18.X.254/24 on the root side, so the test process reaches every node and
every node reaches a receiver the test runs on `root_ip`. X is a random /24
of 198.18.0.0/15 (RFC 2544, benchmarking) that no root interface or route
uses. Nothing else of the host changes: no sysctl, no ip_forward, no route
but the connected one of the root-side veth.

Cuts: each node namespace holds an nftables table `chronos_test` with an
output-hook chain; cut(a, b) adds `ip daddr <b> drop` there. It drops every
packet a sends to b, on new and established connections alike. Note what
one direction means for TCP: with a->b cut, b's SYN still reaches a but a's
SYN-ACK does not get back, so a TCP connection b opens to a does not
complete either (b's datagrams, and data on a connection already
established, do reach a). Traffic to and from root_ip is never cut.

Loopback services: chronos without authentication serves its HTTP API on
loopback only (127.0.0.0/8), and each member advertises that address to the
others for forwarding. map_loopback_ports(ports) makes "127.0.0.1:ports[i]"
mean node i's service in every namespace of the network, with NAT inside
the node namespaces (table `chronos_nat`; route_localnet=1 there, the only
sysctl touched, in those namespaces only): node i's namespace turns
connections to node_ip(i):ports[i] (from the test or another node) into
connections to its 127.0.0.1:ports[i]; in node j's namespace, a connection
to 127.0.0.1:ports[i] (i != j) goes to node_ip(i):ports[i], leaving from
node_ip(j). Cuts see the translated addresses (the filter chain runs after
the NAT output chain), so they cut this traffic like any other.

Names carry the test process's pid (namespaces `chrt-<pid>-<k>-...`,
interfaces `chrt<pid><kind><n>`), so concurrent runs do not collide; a
namespace or root-side veth left by a run whose process no longer exists is
removed when the next network is made.
"""

import atexit
import ipaddress
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading

SUPERNET = ipaddress.ip_network("198.18.0.0/15")
ROOT_HOST_OCTET = 254
TABLE = "chronos_test"
CHAIN = "output"
NAT_TABLE = "chronos_nat"
LOOPBACK = "127.0.0.1"
NS_PREFIX = "chrt-"
IF_PREFIX = "chrt"
IFNAMSIZ = 15
CMD_TIMEOUT_S = 30

_NS_RE = re.compile(r"^chrt-(\d+)-\d+-")
_ROOT_IF_RE = re.compile(r"^chrt(\d+)r\d+$")


class NetnsError(RuntimeError):
    """The test network cannot be built here (not root, a tool missing, the
    kernel refusing); the message names what is missing."""


# --- tools -----------------------------------------------------------------

def find_tool(name):
    """Absolute path of a system tool, also when /usr/sbin is not in PATH;
    None when absent."""
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def check_prerequisites():
    """Raises NetnsError unless this process is root and `ip` and `nft` are
    installed. Returns (ip path, nft path)."""
    if os.geteuid() != 0:
        raise NetnsError(
            "network-namespace tests need root: id -u is %d (run the tests "
            "as root, as CI does)" % os.geteuid())
    ip = find_tool("ip")
    nft = find_tool("nft")
    missing = [what for what, path in (
        ("`ip` (Debian package iproute2)", ip),
        ("`nft` (Debian package nftables)", nft)) if path is None]
    if missing:
        raise NetnsError(
            "network-namespace tests need %s, not found in PATH or /usr/sbin; "
            "scripts/install-deps.sh installs them" % " and ".join(missing))
    return ip, nft


def _run(argv, what, stdin=None, check=True):
    """Runs a command to completion; raises NetnsError naming `what` with its
    output on failure (when check)."""
    try:
        p = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, stdin=None if stdin
                           is not None else subprocess.DEVNULL,
                           timeout=CMD_TIMEOUT_S, text=True)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NetnsError("%s: `%s` failed: %r" % (what, " ".join(argv), e)) \
            from None
    if check and p.returncode != 0:
        raise NetnsError("%s: `%s` exited %d: %s" % (
            what, " ".join(argv), p.returncode, p.stdout.strip()))
    return p


def _log(msg):
    sys.stderr.write("[netns] %s\n" % msg)
    sys.stderr.flush()


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _list_netns(ip):
    out = _run([ip, "netns", "list"], "ip netns list", check=False).stdout
    # "name" or "name (id: 3)"
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _root_links(ip):
    out = _run([ip, "-o", "link", "show"], "ip link show", check=False).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def _kill_pids_in(ip, ns):
    """SIGKILLs, by PID, every process still inside namespace `ns` (ours:
    started by this module's user); returns their PIDs."""
    out = _run([ip, "netns", "pids", ns], "ip netns pids", check=False).stdout
    killed = []
    for tok in out.split():
        if tok.isdigit() and int(tok) != os.getpid():
            _log("killing leftover pid %s in %s" % (tok, ns))
            killed.append(int(tok))
            try:
                os.kill(int(tok), signal.SIGKILL)
            except ProcessLookupError:
                pass
    return killed


def sweep_stale(ip):
    """Deletes namespaces (killing what still runs inside) and root-side
    veths named by this module for a process that no longer exists (a run
    killed before its cleanup)."""
    for ns in _list_netns(ip):
        m = _NS_RE.match(ns)
        if m and int(m.group(1)) != os.getpid() and \
                not _pid_alive(int(m.group(1))):
            _log("removing stale namespace %s" % ns)
            _kill_pids_in(ip, ns)
            _run([ip, "netns", "del", ns], "ip netns del", check=False)
    for link in _root_links(ip):
        m = _ROOT_IF_RE.match(link)
        if m and int(m.group(1)) != os.getpid() and \
                not _pid_alive(int(m.group(1))):
            _log("removing stale interface %s" % link)
            _run([ip, "link", "del", link], "ip link del", check=False)


# --- the network -----------------------------------------------------------

_counter = [0]
_networks = set()
_lock = threading.Lock()


def _used_root_networks(ip):
    """IPv4 networks of the root namespace's addresses and routes."""
    used = []
    for argv in ([ip, "-4", "-o", "addr", "show"], [ip, "-4", "route", "show",
                                                     "table", "all"]):
        out = _run(argv, " ".join(argv[1:]), check=False).stdout
        for tok in re.findall(r"\b(\d+\.\d+\.\d+\.\d+(?:/\d+)?)", out):
            try:
                used.append(ipaddress.ip_network(tok, strict=False))
            except ValueError:
                pass
    return used


class Network:
    """A bridge in a switch namespace, `size` node namespaces and a
    root-side veth; see the module doc. Nodes are numbered 0..size-1; every
    method taking a node also accepts its address or an object with a
    `.host` attribute (a chronos_harness.Node). Not thread-safe."""

    def __init__(self, size):
        if not 1 <= size <= 200:
            raise ValueError("size %d out of range" % size)
        self.ip, self.nft = check_prerequisites()
        self.size = size
        with _lock:
            _counter[0] += 1
            k = _counter[0]
        pid = os.getpid()
        self.tag = "%d-%d" % (pid, k)
        self.switch_ns = "%s%s-sw" % (NS_PREFIX, self.tag)
        self.node_ns = ["%s%s-n%d" % (NS_PREFIX, self.tag, i + 1)
                        for i in range(size)]
        self.bridge = self._ifname(pid, "b", k)
        self.root_if = self._ifname(pid, "r", k)
        self.root_peer_if = self._ifname(pid, "u", k)
        self.node_if = [self._ifname(pid, "e", i + 1) for i in range(size)]
        self.port_if = [self._ifname(pid, "p", i + 1) for i in range(size)]
        self._made_ns = []
        self._made_root_if = False
        self._cuts = set()     # (a, b): a's packets to b are dropped
        self._route_localnet = [False] * size
        self.loopback_ports = [None] * size
        self.closed = False
        with _lock:
            _networks.add(self)
        _install_handlers()
        sweep_stale(self.ip)
        self.subnet = self._pick_subnet()
        hosts = list(self.subnet.hosts())
        self.prefixlen = self.subnet.prefixlen
        self.node_ips = [str(hosts[i]) for i in range(size)]
        self.root_ip = str(hosts[ROOT_HOST_OCTET - 1])
        self._index_of = {a: i for i, a in enumerate(self.node_ips)}
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _ifname(pid, kind, n):
        name = "%s%d%s%d" % (IF_PREFIX, pid, kind, n)
        if len(name) > IFNAMSIZ:
            raise NetnsError("interface name %s is longer than %d characters"
                             % (name, IFNAMSIZ))
        return name

    def _pick_subnet(self):
        used = _used_root_networks(self.ip)
        for _ in range(200):
            block = random.randrange(SUPERNET.num_addresses // 256)
            net = ipaddress.ip_network("%s/24" % (
                SUPERNET.network_address + block * 256))
            if not any(net.overlaps(u) for u in used
                       if u.prefixlen > 0):
                return net
        raise NetnsError("no free /24 in %s for the test network" % SUPERNET)

    # --- building -----------------------------------------------------------
    def _ipn(self, ns, *args, what=None):
        argv = [self.ip, "-n", ns] + list(args)
        return _run(argv, what or "ip -n %s %s" % (ns, args[0]))

    def _add_ns(self, ns):
        _run([self.ip, "netns", "add", ns],
             "creating network namespace %s (`ip netns add` needs root and "
             "a kernel with network namespaces)" % ns)
        self._made_ns.append(ns)
        self._ipn(ns, "link", "set", "lo", "up")

    def _build(self):
        sw = self.switch_ns
        self._add_ns(sw)
        self._ipn(sw, "link", "add", self.bridge, "type", "bridge")
        self._ipn(sw, "link", "set", self.bridge, "up")
        for i, ns in enumerate(self.node_ns):
            self._add_ns(ns)
            self._ipn(sw, "link", "add", self.port_if[i], "type", "veth",
                      "peer", "name", self.node_if[i], "netns", ns)
            self._ipn(sw, "link", "set", self.port_if[i], "master",
                      self.bridge)
            self._ipn(sw, "link", "set", self.port_if[i], "up")
            self._ipn(ns, "addr", "add", "%s/%d" % (self.node_ips[i],
                                                   self.prefixlen),
                      "dev", self.node_if[i])
            self._ipn(ns, "link", "set", self.node_if[i], "up")
            self._apply_rules(i)  # creates the (empty) table: checks nft
        _run([self.ip, "link", "add", self.root_if, "type", "veth", "peer",
              "name", self.root_peer_if, "netns", sw], "ip link add (root)")
        self._made_root_if = True
        self._ipn(sw, "link", "set", self.root_peer_if, "master", self.bridge)
        self._ipn(sw, "link", "set", self.root_peer_if, "up")
        _run([self.ip, "addr", "add", "%s/%d" % (self.root_ip, self.prefixlen),
              "dev", self.root_if], "ip addr add (root)")
        _run([self.ip, "link", "set", self.root_if, "up"],
             "ip link set (root)")

    # --- nodes --------------------------------------------------------------
    def node_ip(self, i):
        return self.node_ips[self.index(i)]

    def namespace(self, i):
        return self.node_ns[self.index(i)]

    def exec_prefix(self, i):
        """argv prefix that runs a program in node i's namespace (`ip netns
        exec` execs it: the PID stays the program's)."""
        return [self.ip, "netns", "exec", self.namespace(i)]

    def index(self, x):
        if hasattr(x, "host"):
            x = x.host
        if isinstance(x, str):
            if x not in self._index_of:
                raise ValueError("%s is not a node of this network" % x)
            return self._index_of[x]
        if not 0 <= x < self.size:
            raise ValueError("no node %r" % (x,))
        return x

    def run(self, i, argv, timeout=CMD_TIMEOUT_S, stdin=None):
        """Runs argv in node i's namespace to completion ->
        CompletedProcess (text, stdout and stderr separate)."""
        return subprocess.run(self.exec_prefix(i) + list(argv), input=stdin,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout)

    def map_loopback_ports(self, ports):
        """Makes LOOPBACK:ports[i] reach node i's LOOPBACK:ports[i] from
        every node, and node_ip(i):ports[i] reach it from the test (see the
        module doc). ports[i] None: node i has no such service. Replaces
        an earlier mapping; the ports must differ."""
        if len(ports) > self.size:
            raise ValueError("%d ports for %d nodes" % (len(ports), self.size))
        ports = list(ports) + [None] * (self.size - len(ports))
        given = [p for p in ports if p is not None]
        if len(set(given)) != len(given):
            raise ValueError("loopback ports must differ: %r" % (ports,))
        for i in range(self.size):
            if not self._route_localnet[i]:
                _run(self.exec_prefix(i) + [
                    "sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/all/"
                    "route_localnet"], "route_localnet in %s" %
                    self.node_ns[i])
                self._route_localnet[i] = True
            lines = [
                "add table ip %s" % NAT_TABLE,
                "delete table ip %s" % NAT_TABLE,
                "table ip %s {" % NAT_TABLE,
                "  chain prerouting {",
                "    type nat hook prerouting priority -100; policy accept;",
            ]
            if ports[i] is not None:
                lines.append("    ip daddr %s tcp dport %d dnat to %s" % (
                    self.node_ips[i], ports[i], LOOPBACK))
            lines += [
                "  }",
                "  chain output {",
                "    type nat hook output priority -100; policy accept;",
            ]
            for j, p in enumerate(ports):
                if p is not None and j != i:
                    lines.append("    ip daddr %s tcp dport %d dnat to %s" % (
                        LOOPBACK, p, self.node_ips[j]))
            lines += [
                "  }",
                "  chain postrouting {",
                "    type nat hook postrouting priority 100; policy accept;",
                "    ip saddr %s oifname != \"lo\" snat to %s" % (
                    LOOPBACK, self.node_ips[i]),
                "  }",
                "}",
            ]
            _run(self.exec_prefix(i) + [self.nft, "-f", "-"],
                 "nft nat in namespace %s" % self.node_ns[i],
                 stdin="\n".join(lines) + "\n")
        self.loopback_ports = ports

    # --- cuts ---------------------------------------------------------------
    def _apply_rules(self, a):
        """Replaces node a's drop rules with those of the current cuts, in
        one nft transaction."""
        lines = [
            "table ip %s {" % TABLE,
            "  chain %s { type filter hook output priority 0; "
            "policy accept; }" % CHAIN,
            "}",
            "flush chain ip %s %s" % (TABLE, CHAIN),
        ]
        for (x, b) in sorted(self._cuts):
            if x == a:
                lines.append("add rule ip %s %s ip daddr %s drop" % (
                    TABLE, CHAIN, self.node_ips[b]))
        _run(self.exec_prefix(a) + [self.nft, "-f", "-"],
             "nft in namespace %s (nftables needs the nf_tables kernel "
             "module)" % self.node_ns[a], stdin="\n".join(lines) + "\n")

    def cut(self, a, b):
        """Drops every packet node a sends to node b (b -> a untouched)."""
        a, b = self.index(a), self.index(b)
        if a == b:
            raise ValueError("cut of a node from itself")
        self._cuts.add((a, b))
        self._apply_rules(a)

    def heal(self, a, b):
        """Undoes cut(a, b)."""
        a, b = self.index(a), self.index(b)
        self._cuts.discard((a, b))
        self._apply_rules(a)

    def isolate(self, a):
        """Cuts node a from every other node, both ways (not from root_ip:
        the test still reaches it and it still reaches the receiver)."""
        a = self.index(a)
        for b in range(self.size):
            if b != a:
                self._cuts.add((a, b))
                self._cuts.add((b, a))
        for x in range(self.size):
            self._apply_rules(x)

    def isolate_all(self):
        """Every node cut from every other, both ways."""
        self._cuts = {(a, b) for a in range(self.size)
                      for b in range(self.size) if a != b}
        for x in range(self.size):
            self._apply_rules(x)

    def heal_all(self):
        self._cuts.clear()
        for x in range(self.size):
            self._apply_rules(x)

    @property
    def cuts(self):
        """The current cuts as (from ip, to ip) pairs."""
        return sorted((self.node_ips[a], self.node_ips[b])
                      for a, b in self._cuts)

    def rules(self, i):
        """`nft list table` of node i (for diagnostics)."""
        return self.run(i, [self.nft, "list", "table", "ip", TABLE]).stdout

    # --- teardown -----------------------------------------------------------
    def close(self):
        """Deletes the root-side veth and every namespace made (their veths
        and the bridge go with them). Idempotent. A process still inside one
        of the namespaces (a test that did not clean up) is killed by its
        PID first, so the namespace is really gone; returns those PIDs."""
        if self.closed:
            return []
        self.closed = True
        killed = []
        with _lock:
            _networks.discard(self)
        if self._made_root_if:
            _run([self.ip, "link", "del", self.root_if], "ip link del",
                 check=False)
        for ns in reversed(self._made_ns):
            killed += _kill_pids_in(self.ip, ns)
            _run([self.ip, "netns", "del", ns], "ip netns del", check=False)
        self._made_ns = []
        return killed

    def leftovers(self):
        """Names of this network's namespaces and root veth that still
        exist (empty after close())."""
        names = set(self.node_ns) | {self.switch_ns}
        left = [ns for ns in _list_netns(self.ip) if ns in names]
        if self.root_if in _root_links(self.ip):
            left.append(self.root_if)
        return left

    def __repr__(self):
        return "Network(%s, %s, root %s, nodes %s)" % (
            self.tag, self.subnet, self.root_ip, self.node_ips)


def close_all():
    """Closes every network still open; first kills the processes
    chronos_harness tracks (the nodes running inside them)."""
    harness = sys.modules.get("chronos_harness")
    if harness is not None:
        try:
            harness.cleanup_everything()
        except Exception as e:  # noqa: BLE001 - best effort at exit
            _log("harness cleanup failed: %r" % (e,))
    with _lock:
        nets = list(_networks)
    for n in nets:
        try:
            n.close()
        except Exception as e:  # noqa: BLE001 - best effort at exit
            _log("closing %r failed: %r" % (n, e))


atexit.register(close_all)

_handlers_installed = [False]


def _install_handlers():
    """SIGTERM (e.g. a CI runner cancelling) cleans up before dying, like
    atexit does on a normal exit. Only when nobody else handles it."""
    if _handlers_installed[0] or \
            threading.current_thread() is not threading.main_thread():
        return
    _handlers_installed[0] = True
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_term(signum, frame):
        close_all()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
    signal.signal(signal.SIGTERM, on_term)
