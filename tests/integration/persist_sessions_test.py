#!/usr/bin/python3
"""Persistent sessions with the real binary (core/persist/): with
persistence on, a session with Session Expiry > 0 (5.0) or clean session 0
(3.1/3.1.1) and its subscriptions survive kill -9 and a graceful restart,
on any worker count and across compaction; clean and ended sessions do not
come back, and expiry counts the time the node was down. With persistence
off, a restart loses them. Raw MQTT clients (mqttraw.py), Debian's
python3-paho-mqtt and mosquitto_sub. Prints TAP.

usage: persist_sessions_test.py STARLING_BINARY [--workers N] [--only SUBSTRING]
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tap  # noqa: E402
from broker import Broker  # noqa: E402
from mqttraw import *  # noqa: E402,F403
from persist_test import metric  # noqa: E402

TESTS = []
EXPIRY = 3600   # a 5.0 persistent session's Session Expiry Interval
QUIET = 0.7     # how long a message that must not come is waited for
WAIT = 3.0      # how long a message that must come is waited for
SETTLE = 0.3    # after something the broker does not acknowledge (a DISCONNECT,
                # going offline): time for its record to reach the journal


def test(fn):
    TESTS.append(fn)
    return fn


class Ctx(tap.BrokerCtx):
    def __init__(self, binary, workers):
        super().__init__(binary, workers, "starling-psess-")
        self.data = os.path.join(self.dir, "data")
        self.clients = []  # raw and paho clients, processes: closed before the brokers stop

    def node(self, *args, workers=None, sync="write"):
        """A broker with persistence on in this test's data dir."""
        b = Broker(self.binary, workers or self.workers,
                   ["--persistence=true", f"--data-dir={self.data}",
                    f"--persistence-sync={sync}", *args], log_level="info")
        self.brokers.append(b)
        return b

    def plain(self, *args, workers=None):
        """A broker with persistence off (the default)."""
        b = Broker(self.binary, workers or self.workers, list(args), log_level="info")
        self.brokers.append(b)
        return b

    def kill(self, b):
        """kill -9: no shutdown, nothing flushed by the broker itself."""
        b.proc.kill()
        b.proc.wait()
        report = b.sanitizer_report()
        assert not report, report
        self.brokers.remove(b)
        b.cleanup()

    def stop(self, b, online=()):
        """SIGTERM: exit 0, no sanitizer report. Clients still connected
        (online) read what the broker sends them until it closes."""
        b.proc.send_signal(signal.SIGTERM)
        for c in online:
            c.closed(timeout=10)
            c.close()
        rc = b.stop()
        report = b.sanitizer_report()
        assert rc == 0 and not report, f"broker exit {rc}: {report}"
        self.brokers.remove(b)
        b.cleanup()

    def restart(self, b, how, *args, workers=None, online=()):
        """how: "kill" (kill -9) or "term" (SIGTERM, then a new start)."""
        if how == "kill":
            self.kill(b)
        else:
            self.stop(b, online)
        return self.node(*args, workers=workers)

    def _drop_clients(self):
        for x in self.clients:
            try:
                if isinstance(x, subprocess.Popen):
                    if x.poll() is None:
                        x.kill()
                    x.wait(5)
                else:
                    x.close()
            except Exception:  # noqa: BLE001 - cleanup only
                pass
        self.clients = []

    def close(self):
        self._drop_clients()
        super().close()

    def discard(self):
        self._drop_clients()
        super().discard()


class Sess(Client):
    """A raw client with packet ids that acknowledges what it is sent
    (PUBLISH at QoS 1 and 2, PUBREL) and keeps the PUBLISHes in inbox."""

    def __init__(self, ctx, port, v=5):
        super().__init__(port, v)
        ctx.clients.append(self)
        self.pid = 0
        self.inbox = []

    def next_pid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    def open(self, cid, clean, expiry=None):
        """CONNECT; returns CONNACK's session present (0 or 1)."""
        p = [(0x11, expiry)] if self.v == 5 and expiry is not None else []
        a = self.connect(cid, clean, p=p)
        assert a.rc == 0, f"{cid}: CONNACK {a.rc:#x}"
        return int(a.session_present)

    def pump(self, timeout, publish=False):
        """The next packet that is not a PUBLISH or PUBREL (those are
        acknowledged here; publish: return None after a PUBLISH);
        TimeoutError if none comes."""
        deadline = time.monotonic() + timeout
        while True:
            p = self.recv(max(0.001, deadline - time.monotonic()))
            if p.type == PUBLISH:
                self.inbox.append(p)
                if p.qos == 1:
                    self.send(ack(PUBACK, p.pid))
                elif p.qos == 2:
                    self.send(ack(PUBREC, p.pid))
                if publish:
                    return None
                continue
            if p.type == PUBREL:
                self.send(ack(PUBCOMP, p.pid))
                continue
            return p

    def reply(self, type_, pid):
        p = self.pump(WAIT)
        assert p.type == type_ and p.pid == pid, f"expected type {type_} for {pid}, got {p!r}"
        return p

    def sub(self, *filters, p=()):
        """SUBSCRIBE (filter, options) ...; each must be granted its QoS."""
        pid = self.next_pid()
        self.send(subscribe(self.v, pid, list(filters), p=p))
        a = self.reply(SUBACK, pid)
        assert a.rcs == [o & 3 for _, o in filters], (filters, a.rcs)

    def unsub(self, *filters):
        pid = self.next_pid()
        self.send(unsubscribe(self.v, pid, list(filters)))
        a = self.reply(UNSUBACK, pid)
        if self.v == 5:
            assert a.rcs == [0] * len(filters), (filters, a.rcs)

    def pub(self, topic, payload, qos=1, retain=False):
        """PUBLISH and wait for the end of its acknowledgement."""
        pid = self.next_pid() if qos else 0
        self.send(publish(self.v, topic, payload, qos=qos, pid=pid, retain=retain))
        if qos == 1:
            assert self.reply(PUBACK, pid).rc < 0x80
        elif qos == 2:
            assert self.reply(PUBREC, pid).rc < 0x80
            self.send(ack(PUBREL, pid))
            self.reply(PUBCOMP, pid)

    def wait_for(self, n, timeout=WAIT):
        """Until inbox holds n PUBLISHes or timeout (no failure here)."""
        deadline = time.monotonic() + timeout
        while len(self.inbox) < n and time.monotonic() < deadline:
            try:
                p = self.pump(deadline - time.monotonic(), publish=True)
            except TimeoutError:
                break
            assert p is None, f"unexpected packet {p!r}"

    def take(self, wait=0.05):
        """Whatever else comes within wait, then the inbox (emptied) as
        [(topic, payload, qos)]; the packets are in self.last."""
        try:
            p = self.pump(wait)
        except TimeoutError:
            p = None
        assert p is None, f"unexpected packet {p!r}"
        self.last, self.inbox = self.inbox, []
        return [(p.topic.decode(), p.payload, p.qos) for p in self.last]

    def bye(self):
        """DISCONNECT (the session stays) and wait until the broker closes."""
        self.send(disconnect(self.v))
        self.closed()
        self.close()


def deliveries(want, quiet=QUIET):
    """want: {name: (client, n)}. Waits until each client has n messages,
    then quiet seconds more for any that must not come; returns
    {name: [(topic, payload, qos)]}."""
    for c, n in want.values():
        c.wait_for(n)
    time.sleep(quiet)
    return {name: c.take(0.002) for name, (c, _) in want.items()}


def wait_metric(b, name, pred, timeout=5.0):
    """The metric once pred holds (counters are published every few 100 ms)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = metric(b, name)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            v = None
        if (v is not None and pred(v)) or time.monotonic() > deadline:
            assert v is not None and pred(v), f"{name} = {v}"
            return v
        time.sleep(0.05)


def persistent(ctx, port, cid, v, first=False):
    """A client on session cid that keeps it: 5.0 with Session Expiry
    EXPIRY, 3.1/3.1.1 with clean session 0. first: the session is new (5.0
    starts clean). Returns (client, session present)."""
    c = Sess(ctx, port, v)
    if v == 5:
        return c, c.open(cid, clean=first, expiry=EXPIRY)
    return c, c.open(cid, clean=False)


# ---------------------------------------------------------------- the tests

def check_v5_session(ctx, b, c, tag):
    """c holds q/one (QoS 1, id 7), q/zero (QoS 0) and nl/# (QoS 1,
    no-local): a QoS 1 publish to each, and one of its own to nl/#."""
    o = Sess(ctx, b.port, 5)
    o.open(f"other-{tag}", clean=True)
    o.pub("q/one", b"one", 1)
    o.pub("q/zero", b"zero", 1)
    c.pub("nl/self", b"mine", 1)  # no-local: never back to c
    o.pub("nl/other", b"theirs", 1)
    got = deliveries({"c": (c, 3), "o": (o, 0)})
    assert sorted(got["c"]) == [("nl/other", b"theirs", 1), ("q/one", b"one", 1),
                                ("q/zero", b"zero", 0)], (tag, got["c"])
    ids = {p.topic: p.all_props(0x0B) for p in c.last}
    assert ids == {b"q/one": [7], b"q/zero": [], b"nl/other": []}, (tag, ids)
    assert got["o"] == [], got["o"]
    o.bye()


@test
def s01_v5_session_survives_kill9_and_sigterm(ctx):
    """5.0, Session Expiry 3600, online at the kill -9 and at the SIGTERM:
    session present 1 after each, and its subscriptions are there with
    their QoS, subscription identifier 7 and no-local."""
    b = ctx.node()
    c, sp = persistent(ctx, b.port, "s5", 5, first=True)
    assert sp == 0
    c.sub(("q/one", 1), p=[(0x0B, 7)])
    c.sub(("q/zero", 0))
    c.sub(("nl/#", 1 | 0x04))  # no-local
    b = ctx.restart(b, "kill")  # right after the SUBACKs
    c, sp = persistent(ctx, b.port, "s5", 5)
    assert sp == 1, "after kill -9: session present 0, expected 1"
    check_v5_session(ctx, b, c, "kill")
    b = ctx.restart(b, "term", online=[c])
    c, sp = persistent(ctx, b.port, "s5", 5)
    assert sp == 1, "after SIGTERM and a new start: session present 0, expected 1"
    check_v5_session(ctx, b, c, "term")
    c.bye()


@test
def s02_v311_and_v31_sessions_survive_kill9_and_sigterm(ctx):
    """3.1.1 and 3.1, clean session 0, offline at the kill -9 and at the
    SIGTERM: session present 1, and a QoS 2 publish to each filter arrives
    at the QoS subscribed (2, 1, 0; a wildcard at 1)."""
    b = ctx.node()
    for v in (4, 3):
        c, sp = persistent(ctx, b.port, f"s{v}", v)
        assert sp == 0
        c.sub((f"v{v}/two", 2), (f"v{v}/one", 1), (f"v{v}/zero", 0))
        c.sub((f"v{v}/+/deep", 1))
        c.bye()
    time.sleep(SETTLE)
    for how in ("kill", "term"):
        b = ctx.restart(b, how)
        subs = {}
        for v in (4, 3):
            c, sp = persistent(ctx, b.port, f"s{v}", v)
            # 3.1's CONNACK has no session present flag: its deliveries say it
            assert sp == 1 or v == 3, f"3.1.1 after {how}: session present 0"
            subs[v] = c
        o = Sess(ctx, b.port, 4)
        o.open(f"pub-{how}", clean=True)
        for v in (4, 3):
            for t in ("two", "one", "zero", "x/deep"):
                o.pub(f"v{v}/{t}", f"{how}-{t}", 2)
        got = deliveries({v: (c, 4) for v, c in subs.items()})
        for v in (4, 3):
            assert sorted(got[v]) == sorted([
                (f"v{v}/two", f"{how}-two".encode(), 2), (f"v{v}/one", f"{how}-one".encode(), 1),
                (f"v{v}/zero", f"{how}-zero".encode(), 0),
                (f"v{v}/x/deep", f"{how}-x/deep".encode(), 1)]), (how, v, got[v])
            subs[v].bye()
        o.bye()
        time.sleep(SETTLE)


@test
def s03_publish_while_offline_after_restart_is_queued(ctx):
    """After kill -9 and a new start, the sessions are offline; QoS 1
    publishes to them meanwhile are queued and delivered, in order, when
    they reconnect (5.0 and 3.1.1)."""
    b = ctx.node()
    for v in (5, 4):
        c, sp = persistent(ctx, b.port, f"q{v}", v, first=True)
        c.sub((f"off/{v}", 1))
        c.bye()
    time.sleep(SETTLE)
    b = ctx.restart(b, "kill")
    o = Sess(ctx, b.port, 4)
    o.open("pub", clean=True)
    for i in range(5):
        for v in (5, 4):
            o.pub(f"off/{v}", f"m{i}", 1)
    o.bye()
    for v in (5, 4):
        c, sp = persistent(ctx, b.port, f"q{v}", v)
        assert sp == 1, f"q{v}: session present 0, expected 1"
        c.wait_for(5)
        time.sleep(0.2)
        got = c.take()
        assert got == [(f"off/{v}", f"m{i}".encode(), 1) for i in range(5)], (v, got)
        c.bye()


@test
def s04_clean_and_ended_sessions_do_not_come_back(ctx):
    """Kill -9, then: present 0 for a 5.0 Session Expiry 0 session, a
    3.1.1 clean session, a 3.1.1 persistent session ended by a clean
    reconnect and a 5.0 one ended by DISCONNECT with Session Expiry 0;
    none of their subscriptions deliver. Present 1 for a persistent one
    (control) and for a 5.0 session started anew by clean start 1 with
    expiry 3600, which holds only its new subscription."""
    b = ctx.node()
    c = Sess(ctx, b.port, 5)
    assert c.open("c5", clean=True) == 0  # no Session Expiry: 0
    c.sub(("gone/c5", 1))
    c.bye()
    c = Sess(ctx, b.port, 4)
    assert c.open("c4", clean=True) == 0
    c.sub(("gone/c4", 1))
    c.bye()
    c, _ = persistent(ctx, b.port, "e4", 4)
    c.sub(("gone/e4", 1))
    c.bye()
    c = Sess(ctx, b.port, 4)
    assert c.open("e4", clean=True) == 0  # ends it
    c.bye()
    c, _ = persistent(ctx, b.port, "e5", 5, first=True)
    c.sub(("gone/e5", 1))
    c.send(disconnect(5, 0, p=[(0x11, 0)]))  # ends it
    c.closed()
    c.close()
    c, _ = persistent(ctx, b.port, "k5", 5, first=True)
    c.sub(("gone/k5", 1))
    c.bye()
    c, _ = persistent(ctx, b.port, "r5", 5, first=True)
    c.sub(("gone/r5-old", 1))
    c.bye()
    c, sp = persistent(ctx, b.port, "r5", 5, first=True)  # clean start: a new session
    assert sp == 0
    c.sub(("gone/r5-new", 1))
    c.bye()
    time.sleep(SETTLE)
    b = ctx.restart(b, "kill")
    want_sp = {"c5": 0, "c4": 0, "e4": 0, "e5": 0, "k5": 1, "r5": 1}
    subs = {}
    got_sp = {}
    for name in want_sp:
        subs[name], got_sp[name] = persistent(ctx, b.port, name, int(name[1]))
    assert got_sp == want_sp, f"session present {got_sp}, expected {want_sp}"
    o = Sess(ctx, b.port, 4)
    o.open("pub", clean=True)
    for t in ("c5", "c4", "e4", "e5", "k5", "r5-old", "r5-new"):
        o.pub(f"gone/{t}", t, 1)
    got = deliveries({n: (c, 1 if n in ("k5", "r5") else 0) for n, c in subs.items()})
    assert got == {"c5": [], "c4": [], "e4": [], "e5": [], "k5": [("gone/k5", b"k5", 1)],
                   "r5": [("gone/r5-new", b"r5-new", 1)]}, got
    o.bye()
    for c in subs.values():
        c.bye()


@test
def s05_unsubscribe_and_resubscribe_are_kept(ctx):
    """Subscribe a/#, b/#, c/# (QoS 0), unsubscribe b/#, subscribe c/#
    again at QoS 1 (5.0: identifier 3, then 8); kill -9 right after the
    last acknowledgement: a/x and c/x (at QoS 1, 5.0 with identifier 8)
    arrive, b/x does not."""
    b = ctx.node()
    for v in (5, 4):
        c, _ = persistent(ctx, b.port, f"u{v}", v, first=True)
        c.sub((f"u{v}/a/#", 1), (f"u{v}/b/#", 1))
        c.sub((f"u{v}/c/#", 0), p=[(0x0B, 3)] if v == 5 else ())
        c.unsub(f"u{v}/b/#")
        c.sub((f"u{v}/c/#", 1), p=[(0x0B, 8)] if v == 5 else ())
    b = ctx.restart(b, "kill")
    subs = {}
    for v in (5, 4):
        subs[v], sp = persistent(ctx, b.port, f"u{v}", v)
        assert sp == 1, f"u{v}: session present 0, expected 1"
    o = Sess(ctx, b.port, 4)
    o.open("pub", clean=True)
    for v in (5, 4):
        for t in ("a", "b", "c"):
            o.pub(f"u{v}/{t}/x", t, 1)
    got = deliveries({v: (c, 2) for v, c in subs.items()})
    for v in (5, 4):
        assert sorted(got[v]) == [(f"u{v}/a/x", b"a", 1), (f"u{v}/c/x", b"c", 1)], (v, got[v])
    ids = {p.topic: p.all_props(0x0B) for p in subs[5].last}
    assert ids == {b"u5/a/x": [], b"u5/c/x": [8]}, ids
    o.bye()
    for c in subs.values():
        c.bye()


@test
def s06_session_expiry_counts_across_the_restart(ctx):
    """5.0 sessions with Session Expiry 3 s and 3600 s go offline, kill -9,
    a new start 3.5 s after they went offline: the first has expired
    (present 0, its subscription gone), the second is there."""
    b = ctx.node()
    for name, exp in (("x3", 3), ("x3600", 3600)):
        c = Sess(ctx, b.port, 5)
        assert c.open(name, clean=True, expiry=exp) == 0
        c.sub((f"exp/{name}", 1))
        c.bye()
    t0 = time.monotonic()
    time.sleep(SETTLE)
    ctx.kill(b)
    time.sleep(max(0.0, t0 + 3.5 - time.monotonic()))
    b = ctx.node()
    subs = {}
    got_sp = {}
    for name in ("x3", "x3600"):
        subs[name], got_sp[name] = persistent(ctx, b.port, name, 5)
    assert got_sp == {"x3": 0, "x3600": 1}, \
        f"session present {got_sp} {time.monotonic() - t0:.1f} s after going offline"
    o = Sess(ctx, b.port, 4)
    o.open("pub", clean=True)
    o.pub("exp/x3", b"3", 1)
    o.pub("exp/x3600", b"3600", 1)
    got = deliveries({"x3": (subs["x3"], 0), "x3600": (subs["x3600"], 1)})
    assert got == {"x3": [], "x3600": [("exp/x3600", b"3600", 1)]}, got
    o.bye()
    for c in subs.values():
        c.bye()


def check_many(ctx, b, prefix, n, label):
    """Sessions prefix-0..n-1 (5.0 even, 3.1.1 odd) reconnect: present 1,
    and each gets exactly the message of its own topic."""
    subs = []
    absent = []
    for i in range(n):
        c, sp = persistent(ctx, b.port, f"{prefix}-{i}", 5 if i % 2 == 0 else 4)
        if sp != 1:
            absent.append(i)
        subs.append(c)
    assert not absent, f"{label}: {len(absent)} of {n} sessions not present: {absent[:10]}"
    o = Sess(ctx, b.port, 4)
    o.open(f"pub-{label}", clean=True)
    for i in range(n):
        o.pub(f"{prefix}/{i}", str(i), 1)
    got = deliveries({i: (c, 1) for i, c in enumerate(subs)})
    wrong = {i: g for i, g in got.items() if g != [(f"{prefix}/{i}", str(i).encode(), 1)]}
    assert not wrong, f"{label}: {len(wrong)} sessions got the wrong messages: " \
                      f"{dict(list(wrong.items())[:5])}"
    o.bye()
    for c in subs:
        c.bye()


def make_many(ctx, b, prefix, n):
    for i in range(n):
        c, sp = persistent(ctx, b.port, f"{prefix}-{i}", 5 if i % 2 == 0 else 4, first=True)
        assert sp == 0
        c.sub((f"{prefix}/{i}", 1))
        c.bye()


@test
def s07_restart_with_other_worker_counts(ctx):
    """50 sessions (5.0 and 3.1.1) made on 2 workers, each subscribed to a
    topic of its own; kill -9, start on 1 worker, SIGTERM, start on 3: each
    time every session is present and gets its own topic's message only."""
    b = ctx.node(workers=2)
    make_many(ctx, b, "wc", 50)
    time.sleep(SETTLE)
    b = ctx.restart(b, "kill", workers=1)
    check_many(ctx, b, "wc", 50, "2 -> 1 workers (kill -9)")
    time.sleep(SETTLE)
    b = ctx.restart(b, "term", workers=3)
    check_many(ctx, b, "wc", 50, "1 -> 3 workers (SIGTERM)")


@test
def s07b_export_and_import_carry_sessions(ctx):
    """20 sessions exported from a running node (JSON lines, a "session"
    line each), imported into a new data_dir, started there on another
    worker count: every session present with its subscription; a damaged
    session line is refused with its line number."""
    b = ctx.node(workers=2)
    make_many(ctx, b, "ex", 20)
    time.sleep(SETTLE)
    exp = os.path.join(ctx.dir, "export.jsonl")
    r = subprocess.run([ctx.binary, "export", exp, f"--data-dir={ctx.data}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "20 sessions" in r.stderr, r.stderr
    lines = open(exp).read().splitlines()
    sess = [json.loads(x) for x in lines[1:] if '"kind":"session"' in x]
    assert sorted(x["client_id"] for x in sess) == sorted(f"ex-{i}" for i in range(20)), sess
    assert all(x["recorded_ms"] > 0 and x["state"] for x in sess), sess[0]
    ctx.stop(b)
    fresh = os.path.join(ctx.dir, "fresh")
    r = subprocess.run([ctx.binary, "import", exp, f"--data-dir={fresh}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "20 sessions" in r.stderr, r.stderr
    n = Broker(ctx.binary, 3, ["--persistence=true", f"--data-dir={fresh}"], log_level="info")
    ctx.brokers.append(n)
    check_many(ctx, n, "ex", 20, "imported")
    # A session line whose state is not a session: refused, line named.
    bad = os.path.join(ctx.dir, "bad.jsonl")
    with open(bad, "w") as f:
        f.write(lines[0] + "\n")
        f.write('{"kind":"session","client_id":"x","recorded_ms":1,"state":"AAAA"}\n')
    r = subprocess.run([ctx.binary, "import", bad, f"--data-dir={os.path.join(ctx.dir, 'b2')}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and ":2: not a session" in r.stderr, r.stderr


@test
def s08_compaction_keeps_sessions(ctx):
    """persistence_compact_bytes at its minimum (1 MiB): 200 sessions made,
    reconnected and subscribed again, then retained writes until a
    compaction completes and removes every segment that held the sessions'
    records; kill -9: every session is present with its subscription."""
    args = ["--persistence-compact-bytes=1048576"]
    n = 200
    b = ctx.node(*args)
    jdir = os.path.join(ctx.data, "journal")
    make_many(ctx, b, "cmp", n)
    for i in range(n):  # churn: the same sessions again
        c, sp = persistent(ctx, b.port, f"cmp-{i}", 5 if i % 2 == 0 else 4)
        assert sp == 1, f"cmp-{i} not present before any restart"
        c.sub((f"cmp/{i}", 1))
        c.bye()
    time.sleep(SETTLE)
    before = sorted(x for x in os.listdir(jdir) if x.endswith(".log"))
    done0 = metric(b, "starling_journal_compactions_total")
    w = Sess(ctx, b.port, 4)
    w.open("bulk", clean=True)
    deadline = time.monotonic() + 20
    k = 0
    while metric(b, "starling_journal_compactions_total") <= done0:
        assert time.monotonic() < deadline, f"no compaction after {k} retained writes of 32 KiB"
        for _ in range(16):
            w.pub(f"bulk/{k % 40}", b"%d." % k + b"." * 32768, 1, retain=True)
            k += 1
        time.sleep(0.1)
    w.bye()
    # the round's older files go once its mark is written
    deadline = time.monotonic() + 5
    while set(before) & set(os.listdir(jdir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = set(before) & set(os.listdir(jdir))
    assert not left, f"segments {sorted(left)} still there after the compaction"
    log = b.text().decode()
    assert re.search(r"compaction \d+: snapshots of \d+ records", log), log[-1500:]
    tap.comment(f"{k} retained writes of 32 KiB for a compaction; segments {before} removed")
    b = ctx.restart(b, "kill", *args)
    check_many(ctx, b, "cmp", n, "after compaction and kill -9")


@test
def s09_recovered_sessions_in_log_and_metric(ctx):
    """7 persistent sessions (4 offline, 3 online at the kill -9: 5.0,
    3.1.1, 3.1), 2 clean ones online and 1 ended by DISCONNECT with
    Session Expiry 0: the start-up line says 7 sessions and
    starling_persistence_recovered{kind="sessions"} is 7."""
    b = ctx.node()
    kinds = [5, 4, 5, 4, 5, 4, 3]
    for i, v in enumerate(kinds):
        c, _ = persistent(ctx, b.port, f"n{i}", v, first=True)
        c.sub((f"n/{i}", 1))
        if i < 4:
            c.bye()
    c = Sess(ctx, b.port, 4)
    c.open("clean4", clean=True)
    c.sub(("n/clean4", 1))
    c = Sess(ctx, b.port, 5)
    c.open("clean5", clean=True, expiry=0)
    c.sub(("n/clean5", 1))
    c, _ = persistent(ctx, b.port, "ended", 5, first=True)
    c.sub(("n/ended", 1))
    c.send(disconnect(5, 0, p=[(0x11, 0)]))
    c.closed()
    time.sleep(SETTLE)
    b = ctx.restart(b, "kill")
    log = b.text().decode()
    i = log.find("recovered from")
    assert i >= 0, log[-1500:]
    line = log[i:].splitlines()[0]
    m = re.search(r"(\d+) (?:persistent )?sessions", line)
    assert m, f"no session count in: {line}"
    assert int(m.group(1)) == len(kinds), line
    wait_metric(b, 'starling_persistence_recovered{kind="sessions"}', lambda v: v == len(kinds))
    subs = []
    for i, v in enumerate(kinds):
        c, sp = persistent(ctx, b.port, f"n{i}", v)
        assert sp == 1 or v == 3, f"n{i} (protocol {v}) not present"  # 3.1: no flag
        subs.append(c)
    o = Sess(ctx, b.port, 4)
    o.open("pub", clean=True)
    for i in range(len(kinds)):
        o.pub(f"n/{i}", str(i), 1)
    got = deliveries({i: (c, 1) for i, c in enumerate(subs)})
    assert got == {i: [(f"n/{i}", str(i).encode(), 1)] for i in range(len(kinds))}, got
    o.bye()
    for c in subs:
        c.bye()


class Paho5:
    """Debian's python3-paho-mqtt (1.6 API), MQTT 5, on its own network
    thread, recording what it sees."""

    def __init__(self, ctx, port, cid):
        import paho.mqtt.client as mqtt
        self.port = port
        self.cond = threading.Condition()
        self.connacks, self.msgs, self.subacks, self.acked = [], [], {}, set()
        self.gone = False
        self.c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv5, reconnect_on_failure=False)
        self.c.on_connect = lambda c, u, flags, rc, props=None: self._add(
            self.connacks, (int(flags["session present"]), getattr(rc, "value", rc)))
        self.c.on_message = lambda c, u, msg: self._add(self.msgs, msg)
        self.c.on_subscribe = lambda c, u, mid, granted, props=None: self._put(
            self.subacks, mid, [getattr(g, "value", g) for g in granted])
        self.c.on_publish = lambda c, u, mid: self._put(self.acked, mid, None)
        self.c.on_disconnect = lambda c, u, rc, props=None: self._set_gone()
        ctx.clients.append(self)

    def _add(self, lst, x):
        with self.cond:
            lst.append(x)
            self.cond.notify_all()

    def _put(self, d, k, v):
        with self.cond:
            if isinstance(d, set):
                d.add(k)
            else:
                d[k] = v
            self.cond.notify_all()

    def _set_gone(self):
        with self.cond:
            self.gone = True
            self.cond.notify_all()

    def wait(self, pred, what, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred():
                left = deadline - time.monotonic()
                assert left > 0, f"paho: timed out waiting for {what}"
                self.cond.wait(left)

    def connect(self, clean_start):
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        p = Properties(PacketTypes.CONNECT)
        p.SessionExpiryInterval = EXPIRY
        self.c.connect("127.0.0.1", self.port, keepalive=30, clean_start=clean_start,
                       properties=p)
        self.c.loop_start()
        self.wait(lambda: self.connacks, "CONNACK")
        sp, rc = self.connacks[-1]
        assert rc == 0, f"paho: CONNACK {rc}"
        return sp

    def subscribe(self, flt, qos, no_local=False, sub_id=None):
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        from paho.mqtt.subscribeoptions import SubscribeOptions
        props = None
        if sub_id is not None:
            props = Properties(PacketTypes.SUBSCRIBE)
            props.SubscriptionIdentifier = sub_id
        rc, mid = self.c.subscribe(flt, options=SubscribeOptions(qos=qos, noLocal=no_local),
                                   properties=props)
        assert rc == 0, f"paho: subscribe returned {rc}"
        self.wait(lambda: mid in self.subacks, f"SUBACK of {flt}")
        assert self.subacks[mid] == [qos], self.subacks[mid]

    def publish(self, topic, payload, qos=1):
        info = self.c.publish(topic, payload, qos)
        self.wait(lambda: info.mid in self.acked, f"PUBACK of {topic}")

    def close(self):
        if self.c.is_connected():
            self.c.disconnect()
            self.wait(lambda: self.gone, "the end of the connection")
        self.c.loop_stop()


@test
def s10_paho_v5_session_survives_kill9(ctx):
    """paho, 5.0, clean start then Session Expiry 3600: a subscription with
    identifier 7 and a no-local one; DISCONNECT, kill -9, reconnect with
    clean start 0: session present 1, a message to the first carries
    identifier 7 at QoS 1, its own to the no-local one is not delivered,
    another client's is."""
    b = ctx.node()
    s = Paho5(ctx, b.port, "paho-sess")
    assert s.connect(clean_start=True) == 0
    s.subscribe("paho/id/#", 1, sub_id=7)
    s.subscribe("paho/nl", 1, no_local=True)
    s.close()
    time.sleep(SETTLE)
    b = ctx.restart(b, "kill")
    s = Paho5(ctx, b.port, "paho-sess")
    sp = s.connect(clean_start=False)
    assert sp == 1, "paho: session present 0 after kill -9, expected 1"
    p = Paho5(ctx, b.port, "paho-pub")
    p.connect(clean_start=True)
    p.publish("paho/id/x", b"with-id")
    s.publish("paho/nl", b"own")
    p.publish("paho/nl", b"others")
    s.wait(lambda: len(s.msgs) >= 2, "2 messages")
    time.sleep(QUIET)
    got = [(m.topic, m.payload, m.qos, getattr(m.properties, "SubscriptionIdentifier", None))
           for m in s.msgs]
    assert sorted(got, key=str) == sorted([("paho/id/x", b"with-id", 1, [7]),
                                           ("paho/nl", b"others", 1, None)], key=str), got
    p.close()
    s.close()


class MosqSub:
    """A background mosquitto_sub (-d: its debug lines say CONNACK and
    SUBACK; stdbuf: they come line by line)."""

    def __init__(self, ctx, port, *args):
        self.cmd = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-V", "mqttv311",
                    "-d", "-F", "%t|%q|%p", *args]
        self.p = subprocess.Popen(["stdbuf", "-oL", *self.cmd], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ctx.clients.append(self.p)
        self.lines = []
        self.cond = threading.Condition()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for raw in self.p.stdout:
            with self.cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)
            self.cond.notify_all()

    def wait_line(self, pred, what, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if any(ln is not None and pred(ln) for ln in self.lines):
                    return
                assert None not in self.lines, \
                    f"mosquitto_sub exited ({self.p.poll()}) before {what}: {self.lines}"
                left = deadline - time.monotonic()
                assert left > 0, f"timed out waiting for {what}: {self.lines}"
                self.cond.wait(left)

    def finish(self, timeout=10):
        self.p.wait(timeout)
        self.t.join(5)
        return self.p.returncode

    def messages(self):
        return [ln for ln in self.lines if ln is not None and not ln.startswith("Client ")
                and not ln.startswith("Subscribed (mid")]


@test
def s11_mosquitto_sub_clean_session_false_survives_kill9(ctx):
    """mosquitto_sub -c -i ID -q 1 -t mosq/orig (3.1.1, clean session 0)
    subscribes and is killed; kill -9, a new start; mosquitto_sub -c -i ID
    naming only mosq/other gets a publish to mosq/orig: the stored
    subscription came back."""
    b = ctx.node()
    s = MosqSub(ctx, b.port, "-c", "-i", "mosq-sess", "-q", "1", "-t", "mosq/orig")
    s.wait_line(lambda ln: ln.startswith("Subscribed (mid"), "SUBACK")
    s.p.kill()
    s.finish()
    time.sleep(SETTLE)
    b = ctx.restart(b, "kill")
    s = MosqSub(ctx, b.port, "-c", "-i", "mosq-sess", "-q", "1", "-t", "mosq/other",
                "-C", "1", "-W", "5")
    s.wait_line(lambda ln: "received CONNACK" in ln, "CONNACK")
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-V", "mqttv311",
                    "-q", "1", "-t", "mosq/orig", "-m", "stored"], check=True, timeout=10)
    rc = s.finish()
    assert rc == 0 and s.messages() == ["mosq/orig|1|stored"], \
        f"mosquitto_sub exited {rc} (27: -W timeout, nothing came); printed {s.messages()}"


@test
def s12_persistence_off_loses_sessions(ctx):
    """Without --persistence (data_dir given but unused): the same
    sessions are present 1 on a reconnect while the node runs (control),
    and present 0, with no subscription, after kill -9 and a new start;
    nothing is written to data_dir."""
    b = ctx.plain(f"--data-dir={ctx.data}")
    assert "persistence off" in b.text().decode()
    for v in (5, 4):
        c, sp = persistent(ctx, b.port, f"o{v}", v, first=True)
        assert sp == 0
        c.sub((f"off/{v}", 1))
        c.bye()
        c, sp = persistent(ctx, b.port, f"o{v}", v)
        assert sp == 1, f"o{v}: no session on a reconnect without a restart"
        c.bye()
    time.sleep(SETTLE)
    ctx.kill(b)
    b = ctx.plain(f"--data-dir={ctx.data}")
    subs = {}
    got_sp = {}
    for v in (5, 4):
        subs[v], got_sp[v] = persistent(ctx, b.port, f"o{v}", v)
    assert got_sp == {5: 0, 4: 0}, f"persistence off, after kill -9: session present {got_sp}"
    o = Sess(ctx, b.port, 4)
    o.open("pub", clean=True)
    for v in (5, 4):
        o.pub(f"off/{v}", b"x", 1)
    got = deliveries({v: (c, 0) for v, c in subs.items()})
    assert got == {5: [], 4: []}, got
    o.bye()
    for c in subs.values():
        c.bye()
    assert "recovered from" not in b.text().decode()
    assert not os.path.exists(ctx.data), os.listdir(ctx.data)


def main():
    a = tap.parse_args()
    print("TAP version 13")
    todo = [(t.__name__, t) for t in TESTS if a.only in t.__name__]
    tap.finish(*tap.run(todo, lambda: Ctx(a.binary, a.workers), tail=12))


if __name__ == "__main__":
    main()
