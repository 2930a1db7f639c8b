#!/usr/bin/python3
"""Cluster discovery through a real DNS server: `--cluster-dns=NAME:PORT`
against Debian's dnsmasq, the way a Kubernetes headless Service works. One
name (starling-headless.test) has one A record per node; every node binds
its own loopback address 127.0.0.x on the same cluster port P, like the
pods of a StatefulSet behind the Service. What a user would check: three
nodes with nothing but the name find each other; a fourth node whose
address is added to the records later is found by the others' periodic
re-resolution (cluster_dns_interval_s); a name that does not resolve is
logged, and the node still starts and is ready alone after
cluster_join_timeout_ms. Every test is bounded in time and stops what it
started (nodes, dnsmasq, files) whether it passes or not.

How the nodes reach the test's DNS server, and nothing else does.
Starling resolves with getaddrinfo, i.e. glibc's stub resolver, which takes
its name servers from /etc/resolv.conf only: RES_OPTIONS changes options
(timeout, attempts, ndots) and LOCALDOMAIN the search list, but no
variable names a server, and resolv.conf has no syntax for a port (always
53). So:

  * dnsmasq listens on port 53 of an address of its own in 127.0.0.0/8
    (127.53.X.Y, picked at random and retried if taken; all of 127/8 is
    local on Linux, nothing to configure) with --bind-interfaces, so it
    takes nothing else's port 53. It serves the records from a hosts file
    (--addn-hosts, re-read on SIGHUP, TTL 0, no cache), answers NXDOMAIN
    for anything else under .test (--local=/test/), has no upstream
    (--no-resolv) and reads neither /etc/hosts nor a configuration file.
  * each node runs in a mount namespace of its own:
        unshare --mount --propagation private -- sh -c \\
          'mount --bind PRIVATE_RESOLV_CONF /etc/resolv.conf; ...; exec starling ...'
    The private resolv.conf names only the dnsmasq address; a private
    nsswitch.conf (the machine's, with "hosts: files dns") keeps an
    nss-resolve or mdns module from bypassing it, and an nscd socket, if
    the machine has one, is hidden under a tmpfs (nscd answers from outside
    the namespace). The bind mounts exist only in that namespace (private
    propagation: the machine never sees them) and vanish with the node's
    process, killed or not: there is no mount to clean up, and the machine's
    /etc/resolv.conf is never written. sh execs starling and unshare does not
    fork, so the process the test signals is the node itself. Needs root
    (CAP_SYS_ADMIN), which the suite has.

Each test checks that the machine's /etc/resolv.conf is unchanged and that
no mount of the test's directory is visible outside the nodes. Nodes and
dnsmasq are stopped after every test, passed or failed; on SIGTERM (meson's
timeout) the test unwinds and stops them too, and should it die without
unwinding, the nodes get SIGTERM from the kernel (setpriv --pdeathsig) and
dnsmasq from a watchdog shell reading a pipe only the test holds (dnsmasq
changes its credentials, which clears a parent-death signal). The test's
own DNS client (a few lines below) asks dnsmasq directly, so a test knows
the records are served before it starts the clock.

Usage: dns_test.py STARLING [--workers N] [--only NAME]
"""
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402  (puts ../integration on the path)
import tap  # noqa: E402
from broker import Broker  # noqa: E402

DNSMASQ = "/usr/sbin/dnsmasq"
NAME = "starling-headless.test"
JOIN_TIMEOUT_MS = 3000
NODE_NAMES = ("n1", "n2", "n3", "n4")
LIVE = set()  # contexts not torn down yet: main() tears them down on SIGTERM


# ---- a DNS client: one A query over UDP ------------------------------------

def _skip_name(msg, i):
    while True:
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:  # compression pointer
            return i + 2
        i += 1 + n


def dns_a(server, name, timeout=1.0):
    """(rcode, sorted IPv4 addresses) for NAME's A records from SERVER:53."""
    qid = random.randrange(1 << 16)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    q += struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(q, (server, 53))
        while True:
            msg = s.recv(4096)
            if len(msg) >= 12 and struct.unpack(">H", msg[:2])[0] == qid:
                break
    finally:
        s.close()
    _, flags, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
    i = 12
    for _ in range(qd):
        i = _skip_name(msg, i) + 4
    addrs = []
    for _ in range(an):
        i = _skip_name(msg, i)
        rtype, _, _, rdlen = struct.unpack(">HHIH", msg[i:i + 10])
        i += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(msg[i:i + 4]))
        i += rdlen
    return flags & 0xF, sorted(addrs)


def port_free(addr, port):
    """Whether PORT is free for both UDP and TCP on ADDR."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind((addr, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def mounts_mentioning(path):
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if path in line]


# ---- the context of one test: a dnsmasq, its records, nodes in namespaces ----

class DnsCluster(Cluster):
    """Cluster (cluster.py: metrics, waits, stop checks) whose nodes have
    addresses of their own on one port, discover each other through the
    test's dnsmasq, and resolve in a mount namespace pointing at it."""

    def __init__(self, binary, workers):
        super().__init__(binary, workers)
        self.dnsmasq = None
        self.watchdog = None
        self.dns_log = None
        self.dns_addr = None
        self.dir = tempfile.mkdtemp(prefix="starling-dns-")
        LIVE.add(self)
        with open("/etc/resolv.conf", "rb") as f:
            self.machine_resolv = f.read()
        try:
            for tool in (DNSMASQ, "/usr/bin/unshare", "/usr/bin/mount", "/usr/bin/setpriv"):
                assert os.access(tool, os.X_OK), \
                    f"{tool} is missing (deploy/setup.sh --test installs dnsmasq-base)"
            assert os.geteuid() == 0, "needs root: each node runs in a mount namespace"
            self.addrs, self.port = self._pick_addresses()
            self.hosts = os.path.join(self.dir, "hosts")
            self._write_records({})
            self._start_dnsmasq()
            self._write_resolver_files()
        except BaseException:
            self._teardown()
            raise

    # addresses and port ---------------------------------------------------

    def _pick_addresses(self):
        """127.0.0.B .. 127.0.0.B+3 (one per node) and a port P free for
        UDP and TCP on all of them."""
        for _ in range(100):
            base = random.randrange(20, 240)
            addrs = {n: f"127.0.0.{base + i}" for i, n in enumerate(NODE_NAMES)}
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((addrs["n1"], 0))
            port = s.getsockname()[1]
            s.close()
            if all(port_free(a, port) for a in addrs.values()):
                return addrs, port
        raise RuntimeError("no port free on four loopback addresses")

    # dnsmasq --------------------------------------------------------------

    def _write_records(self, nodes):
        """The hosts file dnsmasq serves: NAME -> the addresses of NODES.
        Written whole and renamed, so dnsmasq never reads half of it."""
        tmp = self.hosts + ".new"
        with open(tmp, "w") as f:
            for n in nodes:
                f.write(f"{self.addrs[n]} {NAME}\n")
        os.chmod(tmp, 0o644)
        os.rename(tmp, self.hosts)

    def _start_dnsmasq(self):
        for _ in range(20):
            addr = f"127.53.{random.randrange(1, 255)}.{random.randrange(1, 255)}"
            if not port_free(addr, 53):
                continue
            self.dns_log = os.path.join(self.dir, "dnsmasq.log")
            log = open(self.dns_log, "ab")
            self.dnsmasq = subprocess.Popen(
                [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                 "--no-hosts", f"--addn-hosts={self.hosts}", f"--listen-address={addr}",
                 "--bind-interfaces", "--port=53", "--local=/test/", "--cache-size=0",
                 "--local-ttl=0", "--pid-file=", "--user=root", "--log-queries",
                 "--log-facility=-"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            log.close()
            # dnsmasq changes its credentials, which clears a parent-death
            # signal: a shell waits on a pipe only this process holds and
            # stops dnsmasq when it closes, at _stop_dnsmasq or at our death.
            self.watchdog = subprocess.Popen(
                ["/bin/sh", "-c", 'read x; kill "$1" 2>/dev/null', "sh", str(self.dnsmasq.pid)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.dns_addr = addr
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.dnsmasq.poll() is None:
                try:
                    if dns_a(addr, "probe." + NAME, 0.2)[0] == 3:  # NXDOMAIN: it answers
                        return
                except OSError:
                    pass
                time.sleep(0.05)
            self._stop_dnsmasq()  # taken meanwhile, or it failed: try again elsewhere
        raise RuntimeError("dnsmasq did not start:\n" + self.dnsmasq_log()[-1500:])

    def _stop_dnsmasq(self):
        """The watchdog's pipe closed: it sends dnsmasq SIGTERM (dnsmasq is
        not reaped before, so its pid cannot be anyone else's)."""
        p, self.dnsmasq = self.dnsmasq, None
        w, self.watchdog = self.watchdog, None
        if w:
            w.stdin.close()
            try:
                w.wait(5)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
        if p:
            if p.poll() is None and not w:
                p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def dnsmasq_log(self):
        try:
            with open(self.dns_log, errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def set_records(self, nodes, timeout=3):
        """Serve NAME -> NODES' addresses: rewrite the hosts file, SIGHUP
        dnsmasq, and wait until it answers so. Returns the time of the
        SIGHUP."""
        self._write_records(nodes)
        t0 = time.monotonic()
        self.dnsmasq.send_signal(signal.SIGHUP)
        want = sorted(self.addrs[n] for n in nodes)

        def served():
            try:
                return dns_a(self.dns_addr, NAME, 0.5) == (0, want)
            except OSError:  # no answer yet
                return False
        self.wait(f"dnsmasq serves {want}", served, timeout)
        return t0

    # the nodes' resolver --------------------------------------------------

    def _write_resolver_files(self):
        self.resolv = os.path.join(self.dir, "resolv.conf")
        with open(self.resolv, "w") as f:
            f.write(f"nameserver {self.dns_addr}\noptions timeout:1 attempts:2\n")
        self.nsswitch = "-"
        if os.path.exists("/etc/nsswitch.conf"):
            with open("/etc/nsswitch.conf") as f:
                lines = [ln for ln in f if not re.match(r"\s*hosts\s*:", ln)]
            self.nsswitch = os.path.join(self.dir, "nsswitch.conf")
            with open(self.nsswitch, "w") as f:
                f.write("".join(lines) + "hosts: files dns\n")
        for p in (self.resolv, self.nsswitch):
            if p != "-":
                os.chmod(p, 0o644)

    def prefix(self):
        script = ('set -e; mount --bind "$1" /etc/resolv.conf; '
                  '[ "$2" = - ] || mount --bind "$2" /etc/nsswitch.conf; '
                  '[ ! -d /run/nscd ] || mount -t tmpfs none /run/nscd; '
                  'shift 2; exec "$@"')
        # setpriv: the node gets SIGTERM if the test dies before stopping it.
        return ["/usr/bin/setpriv", "--pdeathsig", "TERM", "/usr/bin/unshare", "--mount", "--propagation", "private", "--",
                "/bin/sh", "-c", script, "sh", self.resolv, self.nsswitch]

    def start_node(self, name, dns=NAME, interval_s=None, extra=()):
        """Node NAME on its own address, port P, resolving through dnsmasq.
        dns=None: no discovery at all (a lone node others must find)."""
        args = [f"--node-name={name}", f"--cluster-listen={self.addrs[name]}:{self.port}",
                "--cluster-profile=fast", f"--cluster-join-timeout-ms={JOIN_TIMEOUT_MS}"]
        if dns:
            args.append(f"--cluster-dns={dns}:{self.port}")
        if interval_s:
            args.append(f"--cluster-dns-interval-s={interval_s}")
        b = Broker(self.binary, self.workers, [*args, *extra], log_level="info",
                   prefix=self.prefix())
        self.nodes[name] = b
        return b

    # cleanup --------------------------------------------------------------

    def _teardown(self):
        """dnsmasq, the directory; then what must hold for the machine."""
        LIVE.discard(self)
        self._stop_dnsmasq()
        shutil.rmtree(self.dir, ignore_errors=True)
        with open("/etc/resolv.conf", "rb") as f:
            assert f.read() == self.machine_resolv, "the machine's /etc/resolv.conf changed"
        leaked = mounts_mentioning(self.dir)
        assert not leaked, f"mounts visible outside the nodes: {leaked}"

    def _teardown_quietly(self):
        for b in self.nodes.values():
            if b.proc.poll() is None:
                b.proc.kill()
            b.cleanup()
        self.nodes.clear()
        try:
            self._teardown()
        except BaseException:  # noqa: BLE001
            pass

    def close(self):
        try:
            super().close()
        finally:
            self._teardown()

    def discard(self):
        try:
            super().discard()
            tap.comment("dnsmasq: " + self.dnsmasq_log()[-1200:])
        finally:
            try:
                self._teardown()
            except AssertionError as e:
                tap.comment(str(e))


# ---- the tests ---------------------------------------------------------------

def t01_three_nodes_find_each_other_through_dns(c):
    c.set_records(["n1", "n2", "n3"])
    three = ("n1", "n2", "n3")
    t0 = time.monotonic()
    for n in three:
        c.start_node(n)
    c.wait("three nodes see each other", lambda: all(c.alive(n) == 2 for n in three), 10)
    took = time.monotonic() - t0
    for n in three:
        log = c.log(n)
        assert f"cluster: {n} at {c.addrs[n]}:{c.port}" in log, log[-600:]
        assert f"; dns {NAME}:{c.port}" in log, log[-600:]
        assert "cannot resolve" not in log, log[-600:]
        for o in set(three) - {n}:
            assert re.search(rf"cluster: {o} \({re.escape(c.addrs[o])}:{c.port}\) joined", log), \
                (n, o, log[-800:])
    # The answers came from the test's dnsmasq, not from anything else.
    assert re.search(rf"query\[A\] {re.escape(NAME)} from ", c.dnsmasq_log()), \
        c.dnsmasq_log()[-800:]
    # Joined for real: ready, and each holds the others' routes over the link.
    def state(n):
        return (c.ready(n), c.metric(n, "starling_cluster_ready"),
                c.metric(n, "starling_cluster_synced"))
    try:
        c.wait("all ready and synced", lambda: all(state(n) == (True, 1, 1) for n in three), 10)
    except AssertionError:
        errors = [f"{n}: {ln}" for n in three for ln in c.log(n).splitlines()
                  if " ERROR " in ln or " WARN " in ln]
        raise AssertionError("not ready and synced within 10 s: (readyz, cluster_ready, "
                             f"cluster_synced) {({n: state(n) for n in three})}; "
                             f"{errors[:6]}") from None
    for n in three:
        for o in set(three) - {n}:
            assert c.metric(n, "starling_cluster_routes", f'{{origin="{o}"}}') is not None, \
                (n, o, c.metrics_text(n)[-800:])
        assert c.metric(n, "starling_cluster_members", '{state="dead"}') == 0
    tap.comment(f"3 nodes with only --cluster-dns saw each other after {took:.2f} s")


def t02_a_node_added_to_the_records_is_found_by_re_resolution(c):
    interval = 1
    three = ("n1", "n2", "n3")
    c.set_records(three)
    for n in three:
        c.start_node(n, interval_s=interval)
    c.wait("three nodes see each other", lambda: all(c.alive(n) == 2 for n in three), 10)
    # n4 knows nobody (no seeds, no name): only the others can find it, and
    # they will not while its address is not in the records.
    c.start_node("n4", dns=None)
    time.sleep(2.5 * interval)
    assert c.alive("n4") == 0, c.log("n4")[-600:]
    for n in three:
        assert c.alive(n) == 2, (n, c.log(n)[-600:])
    t0 = c.set_records(["n1", "n2", "n3", "n4"])
    slack = 3
    c.wait("every node sees three others",
           lambda: all(c.alive(n) == 3 for n in NODE_NAMES), interval + slack)
    took = time.monotonic() - t0
    for n in three:
        assert re.search(rf"cluster: n4 \({re.escape(c.addrs['n4'])}:{c.port}\) joined",
                         c.log(n)), (n, c.log(n)[-800:])
    for n in NODE_NAMES:
        assert c.metric(n, "starling_cluster_members", '{state="dead"}') == 0
    tap.comment(f"n4 found {took:.2f} s after its record appeared "
                f"(cluster_dns_interval_s={interval}, bound {interval + slack} s)")


def t03_a_name_that_does_not_resolve_is_logged_and_the_node_is_ready_alone(c):
    bad = "nosuch.test"
    assert dns_a(c.dns_addr, bad)[0] == 3, "dnsmasq should answer NXDOMAIN"
    t0 = time.monotonic()
    c.start_node("n1", dns=bad, interval_s=1)
    assert not c.ready("n1"), "ready before cluster_join_timeout_ms"
    assert c.metric("n1", "starling_cluster_ready") == 0
    c.wait("ready alone after the join timeout", lambda: c.ready("n1"),
           JOIN_TIMEOUT_MS / 1000 + 3)
    took = time.monotonic() - t0
    assert took >= JOIN_TIMEOUT_MS / 1000 - 0.5, \
        f"ready after {took:.2f} s, before the {JOIN_TIMEOUT_MS} ms join timeout"
    log = c.log("n1")
    assert re.search(rf"cluster: cannot resolve {re.escape(bad)}: .+ \(tried again later\)", log), \
        log[-800:]
    assert "alone in the cluster (no seed answered" in log, log[-800:]
    assert c.metric("n1", "starling_cluster_ready") == 1
    assert c.alive("n1") == 0
    # dnsmasq was asked, again and again (every cluster_dns_interval_s).
    asked = len(re.findall(rf"query\[A\] {re.escape(bad)} from ", c.dnsmasq_log()))
    assert asked >= 2, c.dnsmasq_log()[-800:]
    line = next(ln for ln in log.splitlines() if "cannot resolve" in ln)
    tap.comment(f"ready alone after {took:.2f} s; dnsmasq asked {asked} times; log: "
                + line[line.index("cluster:"):])


def t04_a_bridge_follows_its_remote_name(c):
    """bridge.NAME.address with a host name: the edge starts while the name
    does not resolve yet (its uplink is not there) and connects once it
    does; when the name moves to another address and the old remote goes
    away, the bridge dials the new one. Two Starlings as the remotes, on
    the addresses of n1 and n2; the edge resolves through the test's
    dnsmasq."""
    import paho.mqtt.client as mqtt

    def remote(n):
        b = Broker(c.binary, c.workers, [f"--listen={c.addrs[n]}:{c.port}"],
                   log_level="info")
        c.nodes["remote-" + n] = b
        return b

    def subscriber(n):
        got = []
        cl = mqtt.Client(client_id="sub-" + n, protocol=mqtt.MQTTv5)
        cl.on_message = lambda _c, _u, m: got.append(m.payload.decode())
        done = []
        cl.on_subscribe = lambda *a: done.append(1)
        cl.connect(c.addrs[n], c.port)
        cl.loop_start()
        cl.subscribe("t/#", qos=1)
        c.wait(f"SUBACK from {n}", lambda: done, 5)
        return cl, got

    def publish(port, payload):
        cl = mqtt.Client(client_id="pub", protocol=mqtt.MQTTv5)
        cl.connect("127.0.0.1", port)
        cl.loop_start()
        info = cl.publish("t/x", payload, qos=1)
        info.wait_for_publish(5)
        assert info.is_published()
        cl.disconnect()
        cl.loop_stop()

    clients = []
    try:
        remote("n1")
        edge = Broker(c.binary, c.workers,
                      [f"--bridge.cloud.address={NAME}:{c.port}", "--bridge.cloud.topic=t/# out 1",
                       "--bridge.cloud.reconnect-min-ms=100", "--bridge.cloud.reconnect-max-ms=500"],
                      log_level="info", prefix=c.prefix())
        c.nodes["edge"] = edge
        # Started, waiting for its name.
        c.wait("the edge saying its name does not resolve",
               lambda: "no address of" in c.log("edge"), 5)
        assert "bridge cloud: up to" not in c.log("edge")
        t0 = c.set_records(["n1"])
        c.wait("the bridge up to n1",
               lambda: f"bridge cloud: up to {c.addrs['n1']}:{c.port}" in c.log("edge"), 5)
        took = time.monotonic() - t0
        cl1, got1 = subscriber("n1")
        clients.append(cl1)
        publish(edge.port, "one")
        c.wait("'one' at n1", lambda: got1 == ["one"], 5)
        # The name moves to n2 and n1 goes away.
        remote("n2")
        cl2, got2 = subscriber("n2")
        clients.append(cl2)
        c.set_records(["n2"])
        t1 = time.monotonic()
        r1 = c.nodes.pop("remote-n1")
        r1.stop()
        r1.cleanup()
        c.wait("the bridge up to n2",
               lambda: f"bridge cloud: up to {c.addrs['n2']}:{c.port}" in c.log("edge"), 10)
        moved = time.monotonic() - t1
        publish(edge.port, "two")
        c.wait("'two' at n2", lambda: got2 == ["two"], 5)
        log = c.log("edge")
        assert f"now resolves to 1 address (was 1)" in log, log[-800:]
        assert re.search(rf"query\[A\] {re.escape(NAME)} from ", c.dnsmasq_log())
        tap.comment(f"up {took:.2f} s after the name resolved; on the new address "
                    f"{moved:.2f} s after the old remote stopped")
    finally:
        for cl in clients:
            cl.disconnect()
            cl.loop_stop()


TESTS = [
    ("01 three nodes with only --cluster-dns find each other",
     t01_three_nodes_find_each_other_through_dns),
    ("02 a node added to the records is found by re-resolution",
     t02_a_node_added_to_the_records_is_found_by_re_resolution),
    ("03 a name that does not resolve is logged; the node is ready alone",
     t03_a_name_that_does_not_resolve_is_logged_and_the_node_is_ready_alone),
    ("04 a bridge follows its remote's name", t04_a_bridge_follows_its_remote_name),
]


def main():
    args = tap.parse_args()
    tests = [(name, fn) for name, fn in TESTS if args.only in name]
    print("TAP version 13")
    # meson's timeout sends SIGTERM: unwind, so what a test started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        n, failed = tap.run(tests, lambda: DnsCluster(args.binary, args.workers))
    finally:
        for c in list(LIVE):
            try:
                c.discard()
            except BaseException:  # noqa: BLE001 - the next one still goes
                c._teardown_quietly()
    tap.finish(n, failed)


if __name__ == "__main__":
    main()
