#!/usr/bin/python3
"""Forwarding between nodes with real nodes: three `starling` processes on
loopback (a, b, c; b and c join through a; the fast profile) become one
broker. What a user would check: each node advertises its filters to every
peer (`starling_cluster_routes{origin=...}`, per filter, not per
subscriber) and withdraws them on UNSUBSCRIBE, on a clean session's
disconnect and when the node dies; a publish on one node reaches the
subscribers of every node once, with QoS min(pub, sub), its MQTT 5
properties, wildcards, '$' topics, overlapping subscriptions, subscription
identifiers and retain-as-published exactly as on one node; a publish
crosses once per interested node and is never forwarded again
(`starling_cluster_forwarded_total`); a restarted node serves again;
mosquitto_pub/_sub and paho work across nodes; one publisher's 1,000
QoS 1 messages arrive in order, none lost, none twice. Every test is
bounded in time (a watchdog per test), uses ephemeral loopback ports only
and stops what it started.

Usage: forward_test.py STARLING [--workers N] [--only NAME]
(FORWARD_TEST_LOGS=DIR keeps the whole log of each node of a failed test;
not STARLING_..., which the broker reads as configuration.)
"""
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402  (puts ../integration on the path)
import tap  # noqa: E402
from mqttraw import (PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, UNSUBACK,  # noqa: E402
                     Client, ack, disconnect, publish, read_str, subscribe, unsubscribe)

TEST_TIMEOUT_S = 90   # watchdog for one whole test
CONVERGE_S = 5        # routes and counters reach their value within this
QUIET_S = 0.4         # "nothing more arrives" is watched this long
PEERS = {"a": ("b", "c"), "b": ("a", "c"), "c": ("a", "b")}
_ids = itertools.count(1)


# ------------------------------------------------------------------ metrics

_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{([^}]*)\})? (\S+)$", re.M)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text, family):
    """[(labels dict, value)] of one family in a /metrics text."""
    out = []
    for m in _SAMPLE.finditer(text):
        if m.group(1) == family:
            out.append((dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


# ------------------------------------------------------------------ clients

class Sub:
    """A raw subscriber read by a thread of its own, which acknowledges QoS 1
    and 2 at once (PUBACK; PUBREC, then PUBCOMP for the PUBREL) and keeps
    every PUBLISH in arrival order."""

    def __init__(self, client, name):
        self.c = client
        self.name = name
        self.msgs = []
        self.other = []
        self.err = None
        self.cond = threading.Condition()
        self.stopping = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stopping:
            try:
                p = self.c.recv(0.1)
            except TimeoutError:
                continue
            except Exception as e:  # noqa: BLE001 - closed or broken: recorded
                with self.cond:
                    self.err = e
                    self.cond.notify_all()
                return
            try:
                if p.type == PUBLISH:
                    if p.qos == 1:
                        self.c.send(ack(PUBACK, p.pid))
                    elif p.qos == 2:
                        self.c.send(ack(PUBREC, p.pid))
                elif p.type == PUBREL:
                    self.c.send(ack(PUBCOMP, p.pid))
            except OSError as e:
                with self.cond:
                    self.err = e
                    self.cond.notify_all()
                return
            with self.cond:
                (self.msgs if p.type == PUBLISH else self.other).append(p)
                self.cond.notify_all()

    def wait(self, n, timeout=CONVERGE_S):
        """The first n messages, once they are there."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.msgs) < n:
                left = deadline - time.monotonic()
                assert left > 0 and self.err is None, (
                    f"{self.name}: {len(self.msgs)} of {n} messages within {timeout} s"
                    f" (error: {self.err!r}); got {summary(self.msgs)}")
                self.cond.wait(min(left, 0.1))
            return list(self.msgs[:n])

    def exactly(self, n, timeout=CONVERGE_S, quiet=QUIET_S):
        """n messages arrive, then nothing more for `quiet` s."""
        got = self.wait(n, timeout)
        time.sleep(quiet)
        with self.cond:
            assert len(self.msgs) == n, (f"{self.name}: {len(self.msgs)} messages, expected"
                                         f" exactly {n}; the extra: {summary(self.msgs[n:])}")
        return got

    def until_quiet(self, quiet=0.6, timeout=CONVERGE_S):
        """Everything that arrives until nothing has for `quiet` s."""
        deadline = time.monotonic() + timeout
        n, last = -1, time.monotonic()
        while time.monotonic() < deadline:
            with self.cond:
                if len(self.msgs) != n:
                    n, last = len(self.msgs), time.monotonic()
            if time.monotonic() - last >= quiet:
                break
            time.sleep(0.02)
        with self.cond:
            return list(self.msgs)

    def close(self):
        self.stopping = True
        self.t.join(2)
        self.c.close()


def summary(msgs, k=8):
    s = ", ".join(f"({m.topic.decode(errors='replace')} {m.payload[:24]!r} q{m.qos}"
                  f" r{int(m.retain)})" for m in msgs[:k])
    return s + (f" and {len(msgs) - k} more" if len(msgs) > k else "")


class Pub:
    """A raw publisher that completes every QoS 1/2 flow before returning."""

    def __init__(self, client):
        self.c = client
        self.v = client.v
        self.pid = 0

    def next_pid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    def publish(self, topic, payload, qos=0, retain=False, p=()):
        pid = self.next_pid() if qos else 0
        self.c.send(publish(self.v, topic, payload, qos=qos, pid=pid, retain=retain, p=p))
        if qos == 1:
            a = self.c.expect(PUBACK)
            assert a.pid == pid and a.rc == 0, a
        elif qos == 2:
            r = self.c.expect(PUBREC)
            assert r.pid == pid and r.rc == 0, r
            self.c.send(ack(PUBREL, pid))
            assert self.c.expect(PUBCOMP).pid == pid

    def burst(self, items, qos=1, window=100):
        """Pipelined QoS 1 publishes of (topic, payload), `window` in flight."""
        assert qos == 1
        items = list(items)
        for i in range(0, len(items), window):
            pids = []
            for topic, payload in items[i:i + window]:
                pids.append(self.next_pid())
                self.c.send(publish(self.v, topic, payload, qos=1, pid=pids[-1]))
            for pid in pids:
                a = self.c.expect(PUBACK, timeout=10)
                assert a.pid == pid and a.rc == 0, (pid, a)


def no_pid(m):
    """A PUBLISH's bytes with its packet identifier zeroed: what two
    deliveries of one message must share, wherever they were delivered."""
    if not m.qos:
        return m.raw
    _, off = read_str(m.body, 0)
    body = m.body[:off] + b"\0\0" + m.body[off + 2:]
    return m.raw[:len(m.raw) - len(m.body)] + body


# ------------------------------------------------------------------ context

class FwdCluster(Cluster):
    """Cluster plus the clients, threads and processes of one test, all
    closed before the nodes stop."""

    def __init__(self, binary, workers):
        super().__init__(binary, workers)
        self.closers = []

    # nodes
    def three(self):
        self.start("a")
        self.start("b", seeds=["a"])
        self.start("c", seeds=["a"])
        self.wait("three nodes see each other",
                  lambda: all(self.alive(n) == 2 for n in "abc"), 10)
        self.links_up_all()

    def links_up_all(self, names="abc", peers=2):
        want = self.workers * peers
        for n in names:
            self.wait(f"{n}: starling_cluster_links_up == {want} (workers x peers)",
                      lambda n=n: self.value(n, "starling_cluster_links_up") == want,
                      CONVERGE_S)

    # metrics
    def value(self, node, family, **labels):
        """The sum of the family's samples carrying these labels; None
        without any."""
        got = [v for lab, v in samples(self.metrics_text(node), family)
               if all(lab.get(k) == w for k, w in labels.items())]
        return sum(got) if got else None

    def routes(self, node, origin):
        return self.value(node, "starling_cluster_routes", origin=origin)

    def fwd(self, node, direction):
        return self.value(node, "starling_cluster_forwarded_total", direction=direction)

    def counters(self):
        return {(n, d): self.fwd(n, d) for n in sorted(self.nodes) for d in ("in", "out")}

    def settle(self, what, fn, want, timeout=CONVERGE_S, hold=0.3):
        """fn() reaches want within timeout and still has it hold s later."""
        deadline = time.monotonic() + timeout
        got = fn()
        while got != want and time.monotonic() < deadline:
            time.sleep(0.02)
            got = fn()
        assert got == want, f"{what}: {got}, expected {want} (within {timeout} s)"
        time.sleep(hold)
        got = fn()
        assert got == want, f"{what}: {got} after it was {want}"

    def wait_routes(self, origin, want, on=None):
        for n in on or [x for x in self.nodes if x != origin]:
            self.settle(f'{n}: starling_cluster_routes{{origin="{origin}"}}',
                        lambda n=n: self.routes(n, origin), want, hold=0)

    def fwd_deltas(self, before, want, timeout=CONVERGE_S):
        """Each node's forwarded_total{in,out} grows from `before` by exactly
        want[(node, dir)] (0 where not named)."""
        for key in before:
            w = want.get(key, 0)
            self.settle(f"{key[0]}: starling_cluster_forwarded_total{{direction=\"{key[1]}\"}}"
                        f" grew by", lambda key=key: None if self.fwd(*key) is None or
                        before[key] is None else self.fwd(*key) - before[key], w, timeout, 0)
        time.sleep(QUIET_S)
        now = self.counters()
        for key in before:
            d = now[key] - before[key]
            assert d == want.get(key, 0), f"{key}: forwarded grew by {d}, expected {want.get(key, 0)}"

    # clients
    def client(self, node, v=4, cid=None, clean=True, **kw):
        c = Client(self.nodes[node].port, v)
        self.closers.append(c.close)
        a = c.connect(cid or f"{node}-{next(_ids)}", clean, **kw)
        assert a.rc == 0, f"CONNACK {a.rc:#x}"
        return c

    def sub(self, node, filters, v=4, p=(), name=None, cid=None, clean=True, **kw):
        """A subscriber on node: filters [(filter, options)], one SUBSCRIBE."""
        c = self.client(node, v, cid, clean, **kw)
        c.send(subscribe(v, 1, filters, p=p))
        a = c.expect(SUBACK)
        want = [o & 3 for _, o in filters]
        assert a.rcs == want, f"SUBACK {a.rcs}, expected {want}"
        s = Sub(c, name or f"subscriber on {node}")
        self.closers.append(s.close)
        return s

    def pub(self, node, v=4):
        return Pub(self.client(node, v))

    def proc(self, args, **kw):
        p = subprocess.Popen(args, **kw)

        def stop():
            if p.poll() is None:
                p.kill()
            p.wait()
        self.closers.append(stop)
        return p

    def _close_clients(self):
        for fn in reversed(self.closers):
            try:
                fn()
            except Exception:  # noqa: BLE001
                pass
        self.closers.clear()

    def close(self):
        self._close_clients()
        super().close()

    def discard(self):
        """The link's metrics of every node as the test left them, and (with
        FORWARD_TEST_LOGS=DIR) each node's whole log copied there."""
        for n in sorted(self.nodes):
            try:
                text = self.metrics_text(n)
                tap.comment(f"{n}: " + " ".join(
                    l for l in text.splitlines() if l.startswith("starling_cluster_")
                    and ("route" in l or "forward" in l or "link" in l)))
            except Exception as e:  # noqa: BLE001
                tap.comment(f"{n}: no /metrics: {e!r}")
        self._close_clients()
        keep = os.environ.get("FORWARD_TEST_LOGS")
        if keep:
            os.makedirs(keep, exist_ok=True)
            for n, b in self.nodes.items():
                dst = os.path.join(keep, f"{os.getpid()}-{next(_ids)}-{n}.log")
                with open(dst, "wb") as f:
                    f.write(b.text())
                tap.comment(f"{n}: whole log in {dst}")
        super().discard()


# ------------------------------------------------------------------ tests

def t01_routes_are_advertised_per_filter(c):
    c.three()
    for n in "abc":
        for o in PEERS[n]:
            c.settle(f'{n}: starling_cluster_routes{{origin="{o}"}} (a line per known peer)',
                     lambda n=n, o=o: c.routes(n, o), 0, hold=0)
    # Three filters on b, five subscriptions: a peer holds b's three filters.
    c.sub("b", [("r/1", 1), ("r/+/x", 0)])
    c.sub("b", [("r/1", 2), ("r/#", 1)], v=5)
    c.sub("b", [("r/#", 0)])
    c.wait_routes("b", 3)
    c.sub("c", [("r/1", 0)])
    c.wait_routes("c", 1)
    for n in "bc":
        c.settle(f'{n}: starling_cluster_routes{{origin="a"}}', lambda n=n: c.routes(n, "a"), 0)
    c.settle('a: starling_cluster_routes{origin="b"} still', lambda: c.routes("a", "b"), 3)
    c.settle('c: starling_cluster_routes{origin="b"} still', lambda: c.routes("c", "b"), 3)
    assert c.routes("b", "c") == 1 and c.routes("a", "c") == 1


def t02_qos_is_min_of_publish_and_subscription(c):
    c.three()
    s4 = c.sub("b", [("q/0", 0), ("q/1", 1), ("q/2", 2)], name="3.1.1 subscriber on b")
    s5 = c.sub("c", [("q/0", 0), ("q/1", 1), ("q/2", 2)], v=5, name="5.0 subscriber on c")
    c.wait_routes("b", 3)
    c.wait_routes("c", 3)
    p = c.pub("a")
    want = {}
    for sq in (0, 1, 2):
        for pq in (0, 1, 2):
            p.publish(f"q/{sq}", f"s{sq}p{pq}", qos=pq)
            want[f"s{sq}p{pq}".encode()] = (f"q/{sq}".encode(), min(sq, pq))
    for s in (s4, s5):
        got = s.exactly(9)
        seen = {m.payload: (m.topic, m.qos) for m in got}
        assert seen == want, f"{s.name}: {seen} != {want}"
        assert all(not m.dup and not m.retain for m in got)


def t03_once_per_interested_node_never_forwarded_again(c):
    c.three()
    sb1 = c.sub("b", [("f/#", 1), ("f/x", 1)], name="b: f/# and f/x")
    sb2 = c.sub("b", [("f/+", 1)], name="b: f/+")
    sc = c.sub("c", [("f/x", 1)], name="c: f/x")
    sa = c.sub("a", [("f/x", 1)], name="a: f/x (local)")
    c.wait_routes("b", 3)
    c.wait_routes("c", 1)
    before = c.counters()
    assert None not in before.values(), f"starling_cluster_forwarded_total missing: {before}"
    p = c.pub("a")
    n = 20
    for i in range(n):
        p.publish("f/x", f"x{i}", qos=1)
    for s in (sb1, sb2, sc, sa):
        got = s.exactly(n)
        assert [m.payload for m in got] == [f"x{i}".encode() for i in range(n)], s.name
    # once per node: 2 peers interested, whatever the number of filters there
    c.fwd_deltas(before, {("a", "out"): 2 * n, ("b", "in"): n, ("c", "in"): n})
    # f/y interests b only; g/1 nobody
    before = c.counters()
    for i in range(5):
        p.publish("f/y", f"y{i}", qos=1)
        p.publish("g/1", f"g{i}", qos=1)
    c.fwd_deltas(before, {("a", "out"): 5, ("b", "in"): 5})
    sb1.exactly(n + 5)
    sb2.exactly(n + 5)
    sc.exactly(n)
    sa.exactly(n)
    # the other way: from b, a and c get it once each, and a does not pass it to c
    before = c.counters()
    pb = c.pub("b")
    for i in range(10):
        pb.publish("f/x", f"bx{i}", qos=1)
    c.fwd_deltas(before, {("b", "out"): 20, ("a", "in"): 10, ("c", "in"): 10})
    for s, k in ((sb1, n + 15), (sb2, n + 15), (sc, n + 10), (sa, n + 10)):
        assert [m.payload for m in s.exactly(k)][-10:] == [f"bx{i}".encode() for i in range(10)]
    # the link's own counters saw it
    for n_ in "abc":
        for d in ("in", "out"):
            for fam in ("starling_cluster_link_bytes_total", "starling_cluster_link_frames_total"):
                v = c.value(n_, fam, direction=d)
                assert v is not None and v > 0, f"{n_}: {fam}{{direction={d}}} = {v}"
        for r in ("full", "down"):
            v = c.value(n_, "starling_cluster_link_drops_total", reason=r)
            assert v == 0, f"{n_}: starling_cluster_link_drops_total{{reason={r}}} = {v}"
        drops = samples(c.metrics_text(n_), "starling_cluster_link_drops_total")
        assert all(v == 0 for _, v in drops), f"{n_}: drops {drops}"
        assert c.value(n_, "starling_cluster_links_up") == 2 * c.workers


PROPS = [(0x01, 1), (0x02, 100), (0x03, "text/plain; charset=utf-8"), (0x08, "reply/to/me"),
         (0x09, b"\x00\xffcorr\x01"), (0x26, ("k", "1")), (0x26, ("k", "2")),
         (0x26, ("a", "b")), (0x26, ("", "empty key")), (0x26, ("\u00e9t\u00e9", "\u2603"))]


def t04_mqtt5_properties_cross_unchanged(c):
    c.three()
    sb = c.sub("b", [("p/#", 1)], v=5, name="5.0 subscriber on b")
    sa = c.sub("a", [("p/#", 1)], v=5, name="5.0 subscriber on a (local)")
    s4 = c.sub("c", [("p/#", 2)], v=4, name="3.1.1 subscriber on c")
    c.wait_routes("b", 1)
    c.wait_routes("c", 1)
    p = c.pub("a", v=5)
    big = bytes(range(256)) * 256  # 64 KiB, every byte value
    huge = bytes(range(251)) * 3984  # 999,984 bytes: a PUBLISH just under max_packet_size (1 MiB)
    sends = [("p/all", "utf-8 payload \u2713".encode(), 1, PROPS),
             ("p/none", b"\x00binary\xff", 1, ()),
             ("p/q2", b"two", 2, [(0x26, ("only", "one")), (0x02, 3600)]),
             ("p/big", big, 1, [(0x03, "application/octet-stream"), (0x01, 0)]),
             ("p/huge", huge, 1, [(0x26, ("size", str(len(huge))))])]
    for topic, payload, qos, pp in sends:
        p.publish(topic, payload, qos=qos, p=pp)
    got_b, got_a, got_4 = sb.exactly(5), sa.exactly(5), s4.exactly(5)
    for (topic, payload, qos, pp), mb, ma, m4 in zip(sends, got_b, got_a, got_4):
        assert (mb.topic, mb.payload, mb.qos) == (topic.encode(), payload, 1), (topic, mb)
        assert (m4.topic, m4.payload, m4.qos) == (topic.encode(), payload, min(qos, 2)), topic
        # user properties in their order, every other property by value (a
        # payload format indicator of 0, the default, may be left out)
        users = [(k.encode(), v.encode()) for pid, (k, v) in
                 ((pid, v) for pid, v in pp if pid == 0x26)]
        assert mb.all_props(0x26) == users, f"{topic}: user properties {mb.all_props(0x26)}"
        want = {k: v.encode() if isinstance(v, str) else v for k, v in pp
                if k not in (0x02, 0x26) and (k, v) != (0x01, 0)}
        got = {k: v for k, v in mb.props if k not in (0x02, 0x26) and (k, v) != (0x01, 0)}
        assert got == want, f"{topic}: properties on b {mb.props}, sent {pp}"
        assert [(k, v) for k, v in ma.props if k != 0x02] == \
            [(k, v) for k, v in mb.props if k != 0x02], f"{topic}: on a {ma.props}, on b {mb.props}"
        sent_exp = dict(pp).get(0x02)
        if sent_exp is None:
            assert mb.prop(0x02) is None, f"{topic}: an expiry appeared: {mb.props}"
        else:
            e = mb.prop(0x02)
            assert e is not None and sent_exp - 2 <= e <= sent_exp, \
                f"{topic}: expiry {e} on b, {sent_exp} sent (decremented, never increased)"


def t05_wildcards_and_dollar_topics(c):
    c.three()
    filters = ["+/x", "w/#", "#", "$d/+", "+/+", "w/+/z"]
    want = {"+/x": ["w/x", "v/x"], "w/#": ["w/x", "w/y/z", "w"], "#": ["w/x", "w/y/z", "w", "v/x"],
            "$d/+": ["$d/x"], "+/+": ["w/x", "v/x"], "w/+/z": ["w/y/z"]}
    subs = {}
    for node in "ba":
        for f in filters:
            subs[node, f] = c.sub(node, [(f, 1)], name=f"{node}: {f}")
    c.wait_routes("b", len(filters))
    p = c.pub("a")
    for t in ("w/x", "$d/x", "w/y/z", "w", "v/x", "$d/x/y"):
        p.publish(t, "m:" + t, qos=1)
    for (node, f), s in subs.items():
        got = [m.topic.decode() for m in s.exactly(len(want[f]))]
        assert got == want[f], f"{node}: {f} got {got}, expected {want[f]}"


def _sid(m):
    return sorted(m.all_props(0x0B))


def _compare_local_remote(c, subs_by_filterset, sends, pubv=5):
    """For each subscription set, one subscriber on a (local to the
    publisher) and one on b; the deliveries of b must be those of a, byte
    for byte but for packet identifiers."""
    pairs = []
    for v, filters, pp in subs_by_filterset:
        sa = c.sub("a", filters, v=v, p=pp, name=f"a: v{v} {filters}")
        sb = c.sub("b", filters, v=v, p=pp, name=f"b: v{v} {filters}")
        pairs.append((sa, sb))
    c.wait_routes("b", len({f for _, fs, _ in subs_by_filterset for f, _ in fs}))
    p = c.pub("a", v=pubv)
    for topic, payload, qos, retain, pp in sends:
        p.publish(topic, payload, qos=qos, retain=retain, p=pp)
    out = []
    for sa, sb in pairs:
        la = sa.until_quiet()
        try:
            sb.wait(len(la))  # b's copies may come a little later: wait for them first
        except AssertionError:
            pass  # the comparison below says what is missing
        lb = sb.until_quiet()
        assert la, f"{sa.name}: nothing at all"
        ka = sorted(no_pid(m) for m in la)
        kb = sorted(no_pid(m) for m in lb)
        assert ka == kb, (f"{sb.name}: {len(lb)} packets {[m.raw[:60].hex() for m in lb]}; on the"
                          f" publisher's node {len(la)} {[m.raw[:60].hex() for m in la]}")
        # and in the same order per topic
        for t in {m.topic for m in la}:
            assert [m.payload for m in la if m.topic == t] == \
                [m.payload for m in lb if m.topic == t], f"{sb.name}: order on {t}"
        out.append((la, lb))
    return out


def t06_overlapping_subscriptions_as_on_one_node(c):
    c.three()
    sends = [("o/x", "x2", 2, False, ()), ("o/x", "x1", 1, False, [(0x26, ("u", "p"))]),
             ("o/x", "x0", 0, False, ()), ("o/y", "y1", 1, False, ()),
             ("o/y/z", "yz2", 2, False, ()), ("q/x", "qx1", 1, False, ())]
    res = _compare_local_remote(c, [
        (4, [("o/#", 0), ("o/x", 2), ("+/x", 1)], ()),
        (5, [("o/#", 1), ("o/+", 2), ("o/x", 0), ("+/x", 1)], ()),
    ], sends)
    # what one node does (mqttraw's scenarios): one copy, the maximum QoS
    for la, lb in res:
        assert sorted(m.payload for m in lb) == sorted([b"x2", b"x1", b"x0", b"y1", b"yz2", b"qx1"]), \
            [m.payload for m in lb]
        q = {m.payload: m.qos for m in lb}
        assert q[b"x2"] == 2 and q[b"x1"] == 1 and q[b"x0"] == 0 and q[b"qx1"] == 1, q
    (_, l4), (_, l5) = res
    assert {m.payload: m.qos for m in l4}[b"yz2"] == 0  # o/# at QoS 0 only
    assert {m.payload: m.qos for m in l5}[b"y1"] == 1   # o/+ at 2, published at 1


def t07_subscription_identifiers(c):
    c.three()
    sends = [("s/x", "sx", 1, False, ()), ("s/y/z", "syz", 2, False, ()),
             ("t/x", "tx", 0, False, ())]
    res = _compare_local_remote(c, [
        (5, [("s/+", 1)], [(0x0B, 7)]),
        (5, [("s/#", 2)], [(0x0B, 268435455)]),
        (5, [("s/x", 1)], ()),
        (5, [("+/x", 1), ("s/y/#", 0)], [(0x0B, 300)]),
    ], sends)
    (_, b7), (_, bmax), (_, bnone), (_, b300) = res
    assert [(m.payload, _sid(m)) for m in b7] == [(b"sx", [7])], b7
    assert [(m.payload, _sid(m)) for m in bmax] == [(b"sx", [268435455]), (b"syz", [268435455])]
    assert [(m.payload, _sid(m)) for m in bnone] == [(b"sx", [])]
    assert sorted((m.payload, tuple(_sid(m))) for m in b300) == \
        [(b"sx", (300,)), (b"syz", (300,)), (b"tx", (300,))], [(m.payload, _sid(m)) for m in b300]


def t08_retain_as_published_on_a_live_publish(c):
    c.three()
    sends = [("rp/x", "kept", 1, True, ()), ("rp/x", "plain", 1, False, ()),
             ("rp/x", "kept0", 0, True, ())]
    res = _compare_local_remote(c, [
        (5, [("rp/x", 0x08 | 1)], ()),     # retain as published
        (5, [("rp/#", 1)], ()),
        (4, [("rp/x", 1)], ()),
    ], sends)
    (_, rap), (_, plain), (_, v4) = res
    assert [(m.payload, m.retain) for m in rap] == [(b"kept", True), (b"plain", False),
                                                   (b"kept0", True)], rap
    for lb in (plain, v4):
        assert [(m.payload, m.retain) for m in lb] == [(b"kept", False), (b"plain", False),
                                                      (b"kept0", False)], lb


def t09_unsubscribe_and_clean_disconnect_withdraw_routes(c):
    c.three()
    cl = c.client("b")
    cl.send(subscribe(4, 1, [("u/1", 1), ("u/2", 1)]))
    assert cl.expect(SUBACK).rcs == [1, 1]
    c.wait_routes("b", 2)
    p = c.pub("a")
    p.publish("u/1", "one", qos=1)
    m = cl.expect(PUBLISH)
    assert m.payload == b"one"
    cl.send(ack(PUBACK, m.pid))
    cl.send(unsubscribe(4, 2, ["u/1"]))
    cl.expect(UNSUBACK)
    c.wait_routes("b", 1)
    time.sleep(0.2)
    before = c.counters()
    p.publish("u/1", "gone", qos=1)
    cl.nothing(QUIET_S)
    c.fwd_deltas(before, {})
    p.publish("u/2", "two", qos=1)
    assert cl.expect(PUBLISH).payload == b"two"
    # a clean session's DISCONNECT
    cl.send(disconnect(4))
    cl.closed()
    c.wait_routes("b", 0)
    # a clean 5.0 session dropped without DISCONNECT
    c5 = c.client("b", v=5)
    c5.send(subscribe(5, 1, [("u/3", 1), ("u/4/#", 0)]))
    c5.expect(SUBACK)
    c.wait_routes("b", 2)
    c5.close()
    c.wait_routes("b", 0)
    # a 3.1.1 clean session dropped, with a filter another client on b still holds
    k1 = c.client("b")
    k1.send(subscribe(4, 1, [("u/5", 0), ("u/6", 0)]))
    k1.expect(SUBACK)
    k2 = c.sub("b", [("u/5", 0)], name="b: keeps u/5")
    c.wait_routes("b", 2)
    k1.close()
    c.wait_routes("b", 1)
    before = c.counters()
    p.publish("u/5", "still", qos=1)
    assert [m.payload for m in k2.exactly(1)] == [b"still"]
    p.publish("u/6", "none", qos=1)
    time.sleep(0.2)
    c.fwd_deltas(before, {("a", "out"): 1, ("b", "in"): 1})


def _flap(cl, filt, times, end_subscribed):
    """times SUBSCRIBE/UNSUBSCRIBE pairs pipelined (the last UNSUBSCRIBE
    left out when end_subscribed), then every acknowledgement."""
    out = bytearray()
    n = 0
    for i in range(times):
        out += subscribe(4, (2 * i) % 65535 + 1, [(filt, 1)])
        n += 1
        if not (end_subscribed and i == times - 1):
            out += unsubscribe(4, (2 * i + 1) % 65535 + 1, [filt])
            n += 1
    cl.send(bytes(out))
    kinds = [cl.recv(5).type for _ in range(n)]
    assert kinds.count(SUBACK) == times and kinds.count(UNSUBACK) == n - times, kinds[:10]


def t10_flapping_leaves_no_orphaned_route(c):
    c.three()
    cl = c.client("b")
    _flap(cl, "fl/x", 200, end_subscribed=False)
    c.settle("a: b's routes after 200 flaps ending unsubscribed",
             lambda: c.routes("a", "b"), 0, hold=1.0)
    c.settle("c: b's routes after 200 flaps ending unsubscribed",
             lambda: c.routes("c", "b"), 0, hold=0)
    _flap(cl, "fl/x", 200, end_subscribed=True)
    c.settle("a: b's routes after 200 flaps ending subscribed",
             lambda: c.routes("a", "b"), 1, hold=1.0)
    c.settle("c: b's routes after 200 flaps ending subscribed",
             lambda: c.routes("c", "b"), 1, hold=0)
    s = Sub(cl, "b: fl/x after flapping")
    c.closers.append(s.close)
    p = c.pub("a")
    p.publish("fl/x", "after", qos=1)
    assert [m.payload for m in s.exactly(1)] == [b"after"]
    s.close()
    # two clients on b (both workers, with 2) flapping one filter at once
    c1, c2 = c.client("b"), c.client("b")
    errors = []

    def flap(*a):
        try:
            _flap(*a)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
    ts = [threading.Thread(target=flap, args=(c1, "fl/y", 200, False)),
          threading.Thread(target=flap, args=(c2, "fl/y", 200, True))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert not any(t.is_alive() for t in ts) and not errors, errors
    c.settle("a: b's routes (fl/y held by one of two flapping clients)",
             lambda: c.routes("a", "b"), 1, hold=1.0)
    c2.send(unsubscribe(4, 9, ["fl/y"]))
    c2.expect(UNSUBACK)
    c.wait_routes("b", 0)
    # 200 filters at once, then half of them, then all of them away
    k = c.client("b")
    k.send(b"".join(subscribe(4, i + 1, [(f"many/{i}", 0)]) for i in range(200)))
    for _ in range(200):
        k.expect(SUBACK)
    c.wait_routes("b", 200)
    k.send(b"".join(unsubscribe(4, i + 1, [f"many/{i}"]) for i in range(0, 200, 2)))
    for _ in range(100):
        k.expect(UNSUBACK)
    c.wait_routes("b", 100)
    k.send(b"".join(unsubscribe(4, i + 1, [f"many/{i}"]) for i in range(1, 200, 2)))
    for _ in range(100):
        k.expect(UNSUBACK)
    c.settle("a: b's routes after all 200 are gone", lambda: c.routes("a", "b"), 0, hold=1.0)
    c.settle("c: b's routes after all 200 are gone", lambda: c.routes("c", "b"), 0, hold=0)
    before = c.counters()
    for t in ("fl/x", "fl/y", "many/0", "many/1"):
        p.publish(t, "to nobody", qos=1)
    c.fwd_deltas(before, {})


def t11_a_dead_node_loses_its_routes_and_comes_back(c):
    c.three()
    sb = c.sub("b", [("k/#", 1)], name="b: k/# (killed)")
    sc = c.sub("c", [("k/#", 1)], name="c: k/#")
    c.wait_routes("b", 1)
    c.wait_routes("c", 1)
    p = c.pub("a")
    p.publish("k/0", "before", qos=1)
    sb.exactly(1)
    sc.exactly(1)
    t0 = time.monotonic()
    c.kill9("b")
    for n in "ac":
        c.wait(f"{n} sees b dead", lambda n=n: c.metric(n, "starling_cluster_members",
                                                         '{state="dead"}') == 1, 6)
    dead = time.monotonic() - t0
    for n in "ac":
        c.wait(f"{n} drops b's routes (0 or no line)",
               lambda n=n: c.routes(n, "b") in (0, None), CONVERGE_S)
    c.links_up_all("ac", peers=1)
    before = c.counters()
    for i in range(10):
        p.publish("k/1", f"while b is dead {i}", qos=1)
    got = sc.exactly(11)
    assert [m.payload for m in got[1:]] == [f"while b is dead {i}".encode() for i in range(10)]
    c.fwd_deltas(before, {("a", "out"): 10, ("c", "in"): 10})
    tap.comment(f"b declared dead {dead:.2f} s after kill -9; its routes gone")
    # b again, a new process under the same name
    c.start("b", seeds=["a"])
    c.wait("all alive again", lambda: all(c.alive(n) == 2 for n in "abc"), 10)
    c.links_up_all()
    sb2 = c.sub("b", [("k/#", 1)], name="b: k/# (restarted)")
    c.wait_routes("b", 1)
    before = c.counters()
    for i in range(10):
        p.publish("k/2", f"b is back {i}", qos=1)
    assert [m.payload for m in sb2.exactly(10)] == [f"b is back {i}".encode() for i in range(10)]
    assert [m.payload for m in sc.exactly(21)[11:]] == [f"b is back {i}".encode()
                                                      for i in range(10)]
    c.fwd_deltas(before, {("a", "out"): 20, ("b", "in"): 10, ("c", "in"): 10})


def t12_mosquitto_sub_on_b_mosquitto_pub_on_a(c):
    c.three()
    for v in ("mqttv311", "mqttv5"):
        topic = f"mq/{v}/t"
        n = 10
        sub = c.proc(["mosquitto_sub", "-V", v, "-h", "127.0.0.1", "-p", str(c.nodes["b"].port),
                      "-t", f"mq/{v}/#", "-q", "1", "-v", "-C", str(n), "-W", "20"],
                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        c.wait_routes("b", 1)
        lines = "".join(f"line {i}\n" for i in range(n)).encode()
        pr = subprocess.run(["mosquitto_pub", "-V", v, "-h", "127.0.0.1", "-p",
                             str(c.nodes["a"].port), "-t", topic, "-q", "1", "-l"],
                            input=lines, capture_output=True, timeout=20)
        assert pr.returncode == 0, pr
        try:
            out, err = sub.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            sub.kill()
            out, err = sub.communicate()
        assert sub.returncode == 0, f"mosquitto_sub exit {sub.returncode} (27: -W timeout): {out!r} {err!r}"
        assert out.decode().splitlines() == [f"{topic} line {i}" for i in range(n)], out
        c.wait_routes("b", 0)


def t13_paho_subscriber_on_c_publisher_on_a(c):
    import paho.mqtt
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    tap.comment(f"paho-mqtt {paho.mqtt.__version__}")
    c.three()
    cond = threading.Condition()
    got, subacks, acked = [], [], set()

    def on_message(cl, u, msg):
        with cond:
            got.append(msg)
            cond.notify_all()

    def on_subscribe(cl, u, mid, granted, props=None):
        with cond:
            subacks.append(mid)
            cond.notify_all()

    def on_publish(cl, u, mid):
        with cond:
            acked.add(mid)
            cond.notify_all()

    def waitfor(pred, what, timeout=CONVERGE_S * 2):
        deadline = time.monotonic() + timeout
        with cond:
            while not pred():
                left = deadline - time.monotonic()
                assert left > 0, f"paho: no {what} within {timeout} s"
                cond.wait(left)

    sub = mqtt.Client(client_id=f"paho-sub-{next(_ids)}", protocol=mqtt.MQTTv5)
    sub.on_message, sub.on_subscribe = on_message, on_subscribe
    pub = mqtt.Client(client_id=f"paho-pub-{next(_ids)}", protocol=mqtt.MQTTv5)
    pub.on_publish = on_publish
    pub.max_inflight_messages_set(1000)  # paho 1.6 reorders when it queues
    for cl in (sub, pub):
        def stop(cl=cl):
            cl.disconnect()
            cl.loop_stop()
        c.closers.append(stop)
    sub.connect("127.0.0.1", c.nodes["c"].port, keepalive=30, clean_start=True)
    sub.loop_start()
    rc, mid = sub.subscribe("paho/#", qos=2)
    assert rc == 0
    waitfor(lambda: mid in subacks, "SUBACK")
    c.wait_routes("c", 1)
    pub.connect("127.0.0.1", c.nodes["a"].port, keepalive=30, clean_start=True)
    pub.loop_start()
    n = 50
    mids = []
    for i in range(n):
        pp = Properties(PacketTypes.PUBLISH)
        pp.UserProperty = [("i", str(i))]
        pp.ContentType = "text/plain"
        info = pub.publish(f"paho/{i % 3}", f"paho {i}", qos=1 + i % 2, properties=pp)
        assert info.rc == 0
        mids.append(info.mid)
    waitfor(lambda: all(m in acked for m in mids), "acknowledgement of every publish")
    waitfor(lambda: len(got) >= n, f"{n} messages (have {len(got)})")
    time.sleep(QUIET_S)
    assert len(got) == n, f"{len(got)} messages, expected {n}"
    # QoS 1 and 2 are ordered each on their own (MQTT 4.6)
    for q in (1, 2):
        mine = [m for m in got if m.qos == q]
        want = [f"paho {i}".encode() for i in range(n) if 1 + i % 2 == q]
        assert [m.payload for m in mine] == want, f"QoS {q}: {[m.payload for m in mine][:10]}"
    for m in got:
        i = int(m.payload.split()[1])
        assert m.topic == f"paho/{i % 3}"
        assert m.properties.UserProperty == [("i", str(i))], m.properties
        assert m.properties.ContentType == "text/plain"


def t14_one_publishers_1000_messages_in_order(c):
    c.three()
    sb = c.sub("b", [("ord/x", 1)], name="b: ord/x")
    sc = c.sub("c", [("ord/#", 2)], v=5, name="c: ord/#")
    c.wait_routes("b", 1)
    c.wait_routes("c", 1)
    before = c.counters()
    n = 1000
    p = c.pub("a")
    t0 = time.monotonic()
    p.burst((("ord/x", b"%06d" % i) for i in range(n)))
    want = [b"%06d" % i for i in range(n)]
    for s in (sb, sc):
        got = [m.payload for m in s.exactly(n, timeout=20)]
        if got != want:
            lost = sorted(set(want) - set(got))
            dup = len(got) - len(set(got))
            first = next(i for i, (x, y) in enumerate(zip(got, want)) if x != y)
            raise AssertionError(f"{s.name}: {len(lost)} lost (first {lost[:5]}), {dup}"
                                 f" duplicates, first out of order at {first}: {got[first:first + 5]}")
        assert all(m.qos == 1 for m in s.msgs)
    took = time.monotonic() - t0
    c.fwd_deltas(before, {("a", "out"): 2 * n, ("b", "in"): n, ("c", "in"): n})
    tap.comment(f"{n} QoS 1 messages a -> b and c in order in {took:.2f} s")


TESTS = [
    ("01 routes are advertised per filter, to every peer", t01_routes_are_advertised_per_filter),
    ("02 QoS is min(publish, subscription) across nodes", t02_qos_is_min_of_publish_and_subscription),
    ("03 once per interested node, never forwarded again",
     t03_once_per_interested_node_never_forwarded_again),
    ("04 MQTT 5 properties cross unchanged", t04_mqtt5_properties_cross_unchanged),
    ("05 wildcards and '$' topics", t05_wildcards_and_dollar_topics),
    ("06 overlapping subscriptions as on one node", t06_overlapping_subscriptions_as_on_one_node),
    ("07 subscription identifiers", t07_subscription_identifiers),
    ("08 retain as published on a live publish", t08_retain_as_published_on_a_live_publish),
    ("09 UNSUBSCRIBE and a clean session's end withdraw routes",
     t09_unsubscribe_and_clean_disconnect_withdraw_routes),
    ("10 200 subscribe/unsubscribe flaps leave no orphaned route",
     t10_flapping_leaves_no_orphaned_route),
    ("11 kill -9: routes dropped, the others served, a restart serves again",
     t11_a_dead_node_loses_its_routes_and_comes_back),
    ("12 mosquitto_sub on b, mosquitto_pub on a", t12_mosquitto_sub_on_b_mosquitto_pub_on_a),
    ("13 paho subscriber on c, publisher on a", t13_paho_subscriber_on_c_publisher_on_a),
    ("14 one publisher's 1000 QoS 1 messages in order", t14_one_publishers_1000_messages_in_order),
]


class Watchdog(Exception):
    pass


def bounded(fn):
    def run(c):
        def alarm(signum, frame):
            raise Watchdog(f"test exceeded its {TEST_TIMEOUT_S} s watchdog")
        old = signal.signal(signal.SIGALRM, alarm)
        signal.alarm(TEST_TIMEOUT_S)
        try:
            fn(c)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
    return run


def main():
    args = tap.parse_args()
    tests = [(name, bounded(fn)) for name, fn in TESTS if args.only in name]
    print("TAP version 13")
    n, failed = tap.run(tests, lambda: FwdCluster(args.binary, args.workers))
    tap.finish(n, failed)


if __name__ == "__main__":
    main()
