#!/usr/bin/python3
"""Persistent sessions' messages with the real binary (core/persist/): with
persistence on, the QoS 1 and 2 messages that reach a persistent session
(5.0 with Session Expiry > 0, 3.1/3.1.1 clean session 0) are journaled
before the publisher's PUBACK/PUBREC leaves, and the subscriber's PUBACK or
PUBCOMP writes an ack; after kill -9 (sync write and fsync), SIGTERM,
another worker count or a compaction, every message acknowledged to its
publisher and not yet acknowledged by the subscriber comes to the session
again, in order per publisher, unless it expired while the node was down
or the session ended. QoS 1 may come twice across a crash; QoS 2 stays
exactly once across it on both sides (m12; m13: kill -9 rounds between
QoS 2 publishers and subscribers that keep their own session state, and a
duplicate or a loss fails). With persistence off, a restart loses them.
Raw MQTT clients (mqttraw.py), Debian's python3-paho-mqtt, mosquitto_pub
and mosquitto_sub. Prints TAP.

PERSIST_MESSAGES_SEED=N repeats m04's and m13's random kill timings (the
seed is printed).

usage: persist_messages_test.py STARLING_BINARY [--workers N] [--only SUBSTRING]
"""
import json
import os
import random
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tap  # noqa: E402
from broker import Broker  # noqa: E402
from mqttraw import *  # noqa: E402,F403
from persist_sessions_test import (EXPIRY, QUIET, SETTLE, WAIT, Ctx, MosqSub,  # noqa: E402
                                   Paho5, Sess, deliveries, make_many, persistent,
                                   wait_metric)
from persist_test import fill_until_held, metric, small_disk_broker  # noqa: E402

TESTS = []
KILL_ROUNDS = {"write": 20, "fsync": 20}
ROUND_MAX = 400  # messages a kill round publishes at most (the offline queue holds them)
SEED = int(os.environ.get("PERSIST_MESSAGES_SEED") or random.SystemRandom().randrange(1 << 31))


def test(fn):
    TESTS.append(fn)
    return fn


class MSess(Sess):
    """Sess that can hold its acknowledgements back (acking False: the
    PUBLISHes and PUBRELs it gets are kept, nothing is answered), keeps the
    packet ids of the PUBRELs it gets in rels, and publishes with 5.0
    properties."""

    def __init__(self, ctx, port, v=5):
        super().__init__(ctx, port, v)
        self.acking = True
        self.rels = []
        self.odd = []  # packets a reader thread got that were neither PUBLISH nor PUBREL

    def pump(self, timeout, publish=False):
        """Sess.pump, with acking and rels; publish: None after a PUBREL too."""
        deadline = time.monotonic() + timeout
        while True:
            p = self.recv(max(0.001, deadline - time.monotonic()))
            if p.type == PUBLISH:
                self.inbox.append(p)
                if self.acking and p.qos:
                    self.send(ack(PUBACK if p.qos == 1 else PUBREC, p.pid))
            elif p.type == PUBREL:
                self.rels.append(p.pid)
                if self.acking:
                    self.send(ack(PUBCOMP, p.pid))
            else:
                return p
            if publish:
                return None

    def pub(self, topic, payload, qos=1, retain=False, p=()):
        """Sess.pub with PUBLISH properties p."""
        pid = self.next_pid() if qos else 0
        self.send(publish(self.v, topic, payload, qos=qos, pid=pid, retain=retain, p=p))
        if qos == 1:
            assert self.reply(PUBACK, pid).rc < 0x80
        elif qos == 2:
            assert self.reply(PUBREC, pid).rc < 0x80
            self.send(ack(PUBREL, pid))
            self.reply(PUBCOMP, pid)

    def wait_rels(self, n, timeout=WAIT):
        """Until n PUBRELs came (no failure here)."""
        deadline = time.monotonic() + timeout
        while len(self.rels) < n and time.monotonic() < deadline:
            try:
                p = self.pump(deadline - time.monotonic(), publish=True)
            except TimeoutError:
                break
            assert p is None, f"unexpected packet {p!r}"


def mpersistent(ctx, port, cid, v, first=False):
    """persistent() with an MSess."""
    c = MSess(ctx, port, v)
    if v == 5:
        return c, c.open(cid, clean=first, expiry=EXPIRY)
    return c, c.open(cid, clean=False)


def publisher(ctx, b, name, v=4):
    o = MSess(ctx, b.port, v)
    o.open(name, clean=True)
    return o


def body(tag, i):
    """Payload i of a run: its number first, then binary bytes (zeros too)
    of a length that varies."""
    return f"{tag}-{i:04d}|".encode() + bytes((i * 7 + k) % 256 for k in range(i % 50))


def publish_many(ctx, b, prefix, idx, k, tag):
    """k QoS 1 messages to each topic prefix/i (i in idx), each acknowledged."""
    o = publisher(ctx, b, f"pub-{prefix}-{tag}")
    for j in range(k):
        for i in idx:
            o.pub(f"{prefix}/{i}", f"{tag}{j}", 1)
    o.bye()


def drain_many(ctx, b, prefix, want, label):
    """Sessions prefix-i (5.0 even, 3.1.1 odd, as make_many made them)
    reconnect: present 1, and session i gets exactly want[i] (payloads in
    order) on its own topic; they go offline again."""
    subs = {}
    absent = []
    for i in want:
        subs[i], sp = persistent(ctx, b.port, f"{prefix}-{i}", 5 if i % 2 == 0 else 4)
        if sp != 1:
            absent.append(i)
    assert not absent, f"{label}: {len(absent)} of {len(want)} sessions not present: {absent[:10]}"
    # deliveries(), with one deadline for all (it waits WAIT for each in turn)
    deadline = time.monotonic() + 2 * WAIT
    for i, c in subs.items():
        c.wait_for(len(want[i]), max(0.01, deadline - time.monotonic()))
    time.sleep(QUIET)
    got = {i: c.take(0.002) for i, c in subs.items()}
    wrong = {i: g for i, g in got.items()
             if g != [(f"{prefix}/{i}", w.encode(), 1) for w in want[i]]}
    if wrong:
        short = {i: [x[1].decode() for x in g] for i, g in list(wrong.items())[:4]}
        raise AssertionError(f"{label}: {len(wrong)} of {len(want)} sessions got other messages "
                             f"than their {[len(want[i]) for i in list(wrong)[:4]]}: {short}")
    for c in subs.values():
        c.bye()


def recovered_line(b):
    log = b.text().decode()
    i = log.find("recovered from")
    assert i >= 0, log[-1500:]
    return log[i:].splitlines()[0]


# ---------------------------------------------------------------- the tests

@test
def m01_v5_queued_qos1_survive_kill9(ctx):
    """5.0, Session Expiry 3600, subscribed at QoS 1 and offline; a 5.0
    publisher sends 100 QoS 1 messages (binary payloads, a user property
    each), each acknowledged; kill -9 right after the last PUBACK; the
    session reconnects with clean start 0: present 1, the 100 in order,
    payloads and user properties exact, no duplicates."""
    b = ctx.node()
    s, sp = mpersistent(ctx, b.port, "m01-sub", 5, first=True)
    assert sp == 0
    s.sub(("m01/#", 1))
    s.bye()
    o = publisher(ctx, b, "m01-pub", 5)
    for i in range(100):
        o.pub("m01/a", body("m01", i), 1, p=[(0x26, ("n", str(i)))])
    b = ctx.restart(b, "kill")
    o.close()
    s, sp = mpersistent(ctx, b.port, "m01-sub", 5)
    assert sp == 1, "m01-sub: session present 0 after kill -9"
    got = deliveries({"s": (s, 100)})["s"]
    want = [("m01/a", body("m01", i), 1) for i in range(100)]
    assert got == want, \
        f"{len(got)} of 100 came; first wrong at {next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), len(got))}"
    props = [p.all_props(0x26) for p in s.last]
    assert props == [[(b"n", str(i).encode())] for i in range(100)], props[:3]
    s.bye()


@test
def m02_v311_queued_qos2_survive_kill9_and_acks_hold(ctx):
    """3.1.1, clean session 0, subscribed at QoS 2 and offline; 100 QoS 2
    messages published (each flow completed); kill -9; reconnect: present
    1, the 100 in order at QoS 2; their flows completed (PUBREC, PUBREL,
    PUBCOMP); offline, kill -9 again: nothing comes again, no PUBLISH and
    no PUBREL."""
    b = ctx.node()
    s, _ = mpersistent(ctx, b.port, "m02-sub", 4)
    s.sub(("m02/#", 2))
    s.bye()
    o = publisher(ctx, b, "m02-pub", 4)
    for i in range(100):
        o.pub("m02/two", body("m02", i), 2)
    b = ctx.restart(b, "kill")
    o.close()
    s, sp = mpersistent(ctx, b.port, "m02-sub", 4)
    assert sp == 1, "m02-sub: session present 0 after kill -9"
    s.wait_for(100)
    s.wait_rels(100)
    time.sleep(QUIET)
    got = s.take(0.05)
    seen = [int(g[1][4:8]) for g in got]
    dups = len(seen) - len(set(seen))
    tap.comment(f"after kill -9: {len(got)} PUBLISHes for 100 QoS 2 messages ({dups} duplicates), "
                f"{len(s.rels)} PUBRELs")
    assert got == [("m02/two", body("m02", i), 2) for i in range(100)], \
        f"{len(got)} came (want the 100 in order): {seen[:20]}"
    assert len(s.rels) == 100, f"{len(s.rels)} PUBRELs for 100 PUBRECs"
    s.bye()
    time.sleep(SETTLE)  # the PUBCOMPs' acks have no acknowledgement to wait for
    b = ctx.restart(b, "kill")
    s, sp = mpersistent(ctx, b.port, "m02-sub", 4)
    assert sp == 1, "m02-sub: session present 0 after the second kill -9"
    time.sleep(QUIET)
    again = s.take(0.05)
    assert again == [] and s.rels == [], \
        f"after the flows completed and kill -9: {len(again)} PUBLISHes and " \
        f"{len(s.rels)} PUBRELs came again"
    s.bye()


@test
def m03_unacknowledged_in_flight_come_again(ctx):
    """Online at the kill -9 and not acknowledging: a 5.0 session gets 20
    QoS 1 PUBLISHes and sends no PUBACK; a 3.1.1 session gets 20 QoS 2
    PUBLISHes, sends PUBREC for the first 10 (gets PUBREL) and no PUBCOMP.
    After kill -9 and reconnect: the 20 QoS 1 come again in order; each of
    the last 10 QoS 2 comes again as a PUBLISH, each of the first 10 as a
    PUBREL or (at-least-once, counted) a PUBLISH. Everything acknowledged,
    SIGTERM and a new start: nothing comes again."""
    b = ctx.node()
    q1, _ = mpersistent(ctx, b.port, "m03-q1", 5, first=True)
    q1.sub(("m03/one", 1))
    q2, _ = mpersistent(ctx, b.port, "m03-q2", 4)
    q2.sub(("m03/two", 2))
    q1.acking = q2.acking = False
    o = publisher(ctx, b, "m03-pub", 4)
    for i in range(20):
        o.pub("m03/one", body("m03", i), 1)
        o.pub("m03/two", body("m03", i), 2)
    o.bye()
    q1.wait_for(20)
    q2.wait_for(20)
    assert len(q1.inbox) == 20 and len(q2.inbox) == 20, (len(q1.inbox), len(q2.inbox))
    pids2 = [p.pid for p in q2.inbox]
    for pid in pids2[:10]:
        q2.send(ack(PUBREC, pid))
    q2.wait_rels(10)
    assert sorted(q2.rels) == sorted(pids2[:10]), (q2.rels, pids2[:10])
    time.sleep(SETTLE)  # the PUBRECs' records
    b = ctx.restart(b, "kill")
    q1, sp1 = mpersistent(ctx, b.port, "m03-q1", 5)
    q2, sp2 = mpersistent(ctx, b.port, "m03-q2", 4)
    assert (sp1, sp2) == (1, 1), f"session present {sp1}, {sp2} after kill -9"
    # q2 answers nothing until it has seen all: a PUBREL now is of a flow
    # from before the kill (the new connection's packet ids may be the old ones)
    q2.acking = False
    q1.wait_for(20)
    q2.wait_for(10)
    got = {2: q2.take(QUIET), 1: q1.take(0.05)}  # take() pumps for its whole wait
    dup1 = sum(p.dup for p in q1.last)
    resumed, q2.rels = q2.rels, []
    for p in q2.last:
        q2.send(ack(PUBREC, p.pid))
    for pid in resumed:
        q2.send(ack(PUBCOMP, pid))
    q2.acking = True
    q2.wait_rels(len(got[2]))
    assert len(q2.rels) == len(got[2]), f"{len(q2.rels)} PUBRELs for {len(got[2])} PUBRECs"
    tap.comment(f"QoS 1 again: {len(got[1])} PUBLISHes ({dup1} with DUP); QoS 2 again: "
                f"{len(got[2])} PUBLISHes, {len(resumed)} PUBRELs of flows from before the kill")
    assert got[1] == [("m03/one", body("m03", i), 1) for i in range(20)], \
        f"QoS 1: {len(got[1])} of the 20 unacknowledged came again: {[g[1][4:8] for g in got[1]]}"
    again = [int(g[1][4:8]) for g in got[2]]
    assert all(g[2] == 2 for g in got[2]), got[2]
    late = [i for i in range(10, 20) if i not in again]
    assert not late, f"QoS 2: never PUBRECed, not delivered again: {late}"
    early = [i for i in range(10) if i not in again and pids2[i] not in resumed]
    assert not early, f"QoS 2: PUBRECed before the kill, not PUBCOMPed, neither PUBREL " \
                      f"nor PUBLISH after it: {early} (PUBLISHes came for {again})"
    assert again == sorted(again), f"QoS 2 out of order: {again}"
    dup2 = len([i for i in again if i < 10])
    tap.comment(f"QoS 2 across kill -9: {dup2} of the 10 PUBRECed came again as PUBLISH, "
                f"{len(resumed)} as PUBREL")
    # The PUBRECs' records were written before the kill (SETTLE): the
    # released ones come back as PUBREL only, and what comes again may have
    # been sent before, so it carries DUP.
    assert dup2 == 0 and sorted(resumed) == sorted(pids2[:10]), \
        f"PUBRECed before the kill: {dup2} came again as PUBLISH, PUBRELs {resumed}"
    assert dup1 == 20, f"only {dup1} of the 20 QoS 1 sent again carry DUP"
    assert all(p.dup for p in q2.last), "a QoS 2 PUBLISH sent again without DUP"
    # everything was acknowledged and completed by the pumps above
    time.sleep(SETTLE)
    b = ctx.restart(b, "term", online=[q1, q2])
    q1, _ = mpersistent(ctx, b.port, "m03-q1", 5)
    q2, _ = mpersistent(ctx, b.port, "m03-q2", 4)
    got = deliveries({1: (q1, 0), 2: (q2, 0)})
    assert got == {1: [], 2: []} and q2.rels == [], \
        f"after acknowledging all and SIGTERM: {got}, PUBRELs {q2.rels}"
    q1.bye()
    q2.bye()


def read_until_closed(c):
    """A reader thread: the client's pump (acking) until the broker is gone."""
    try:
        while True:
            c.odd.append(c.pump(60))
    except (ConnectionError, OSError):
        pass


def kill_rounds(ctx, sync):
    """Rounds of: a QoS 1 publisher streams into 3 persistent sessions (a
    5.0 one offline, a 5.0 and a 3.1.1 one online and acknowledging on
    threads of their own), kill -9 at a random moment (up to 20 in flight),
    a new start; the sessions reconnect (present 1) and drain. Every
    message the publisher had a PUBACK for comes to every session at least
    once across the rounds, in order within each connection; duplicates are
    counted."""
    rounds = KILL_ROUNDS[sync]
    rng = random.Random(f"{SEED}-{sync}")
    tap.comment(f"seed {SEED} (PERSIST_MESSAGES_SEED={SEED} repeats it)")
    args = ["--queue-messages-max=100000"]  # no drop_oldest in a long round
    kinds = {"off": 5, "on5": 5, "on4": 4}
    b = ctx.node(*args, sync=sync)
    subs = {}
    for n, v in kinds.items():
        subs[n], sp = mpersistent(ctx, b.port, f"kr-{n}", v, first=True)
        assert sp == 0
        subs[n].sub(("kr/#", 1))
    subs.pop("off").bye()
    received = {n: set() for n in kinds}
    dups = {n: 0 for n in kinds}
    disorder = []
    acked = set()
    seq = 0
    t_start = time.monotonic()

    def note(n, packets, where):
        last = 0
        for p in packets:
            s = int(p.payload)
            if s in received[n]:
                dups[n] += 1
            if s <= last:
                disorder.append(f"{where}: {n} got {s} after {last}")
            last = s
            received[n].add(s)

    for rnd in range(rounds):
        readers = [threading.Thread(target=read_until_closed, args=(subs[n],), daemon=True)
                   for n in ("on5", "on4")]
        for t in readers:
            t.start()
        c = Client(b.port, 4)
        c.connect(f"kr-pub-{sync}-{rnd}")
        inflight = {}
        pid = 0
        deadline = time.monotonic() + rng.uniform(0.02, 0.2)
        most = rng.randint(30, ROUND_MAX)
        while time.monotonic() < deadline and pid < most:
            pid += 1
            seq += 1
            c.send(publish(4, "kr/x", str(seq).encode(), qos=1, pid=pid))
            inflight[pid] = seq
            if len(inflight) >= 20:
                p = c.expect(PUBACK)
                acked.add(inflight.pop(p.pid))
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0, 0.02))  # sometimes with less or nothing in flight
        ctx.kill(b)  # acknowledgements possibly on the wire
        try:
            while True:
                p = c.recv(0.2)
                if p.type == PUBACK and p.pid in inflight:
                    acked.add(inflight.pop(p.pid))
        except (TimeoutError, ConnectionError, OSError):
            pass
        c.close()
        for t in readers:
            t.join(10)
            assert not t.is_alive(), "a reader still runs after the kill -9"
        for n in ("on5", "on4"):
            assert not subs[n].odd, f"{n}: unexpected packets {subs[n].odd}"
            note(n, subs[n].inbox, f"round {rnd} before the kill")
            subs[n].close()
        b = ctx.node(*args, sync=sync)
        for n, v in kinds.items():
            subs[n], sp = mpersistent(ctx, b.port, f"kr-{n}", v)
            assert sp == 1, f"round {rnd}: kr-{n} not present after kill -9"
        deadline = time.monotonic() + WAIT
        for n, s in subs.items():
            missing = acked - received[n]
            seen = 0
            while missing and time.monotonic() < deadline:
                try:
                    p = s.pump(deadline - time.monotonic(), publish=True)
                except TimeoutError:
                    break
                assert p is None, f"{n}: unexpected packet {p!r}"
                for q in s.inbox[seen:]:
                    missing.discard(int(q.payload))
                seen = len(s.inbox)
        time.sleep(0.2)  # what else comes (duplicates, unacknowledged ones)
        for n, s in subs.items():
            s.take(0.01)
            note(n, s.last, f"round {rnd} after the restart")
        lost = {n: sorted(acked - received[n]) for n in kinds}
        if any(lost.values()):
            raise AssertionError(
                f"sync={sync} round {rnd} (seed {SEED}): acknowledged to the publisher, never "
                f"delivered: " + ", ".join(f"{n}: {len(x)} of {len(acked)} (first {x[:5]})"
                                           for n, x in lost.items()))
        subs.pop("off").bye()
    unacked = {n: len(received[n] - acked) for n in kinds}
    tap.comment(f"sync={sync}: {rounds} kill -9 rounds in {time.monotonic() - t_start:.1f} s, "
                f"{seq} published, {len(acked)} acknowledged; duplicates per session {dups}; "
                f"unacknowledged ones delivered {unacked}; order breaks {len(disorder)}")
    assert not disorder, disorder[:5]
    for s in subs.values():
        s.bye()


@test
def m04_kill9_rounds_write(ctx):
    kill_rounds(ctx, "write")


@test
def m04b_kill9_rounds_fsync(ctx):
    kill_rounds(ctx, "fsync")


@test
def m05_message_expiry_counts_across_the_downtime(ctx):
    """A 5.0 offline session gets a QoS 1 message with Message Expiry 2 s
    and one with 3600 s; kill -9, a new start 2.5 s after they were
    published: only the second comes, its expiry lowered by the downtime."""
    b = ctx.node()
    s, _ = mpersistent(ctx, b.port, "m05-sub", 5, first=True)
    s.sub(("m05/#", 1))
    s.bye()
    o = publisher(ctx, b, "m05-pub", 5)
    o.pub("m05/short", b"short", 1, p=[(0x02, 2)])
    o.pub("m05/long", b"long", 1, p=[(0x02, 3600)])
    t_sent = time.monotonic()
    ctx.kill(b)
    o.close()
    time.sleep(max(0.0, t_sent + 2.5 - time.monotonic()))
    b = ctx.node()
    s, sp = mpersistent(ctx, b.port, "m05-sub", 5)
    assert sp == 1
    got = deliveries({"s": (s, 1)})["s"]
    assert got == [("m05/long", b"long", 1)], \
        f"{time.monotonic() - t_sent:.1f} s after publishing: {got}"
    left = s.last[0].prop(0x02)
    assert left is not None and 3500 <= left <= 3598, \
        f"remaining Message Expiry {left} after {time.monotonic() - t_sent:.1f} s"
    s.bye()


@test
def m06_restart_with_other_worker_counts(ctx):
    """20 sessions (5.0 and 3.1.1) made on 2 workers, 10 QoS 1 messages
    each queued; kill -9, start on 1 worker: the even sessions drain theirs;
    10 more each; SIGTERM, start on 3 workers: the even ones get the 10
    new, the odd ones all 20, in order."""
    n = 20
    b = ctx.node(workers=2)
    make_many(ctx, b, "wm", n)
    publish_many(ctx, b, "wm", range(n), 10, "a")
    b = ctx.restart(b, "kill", workers=1)
    drain_many(ctx, b, "wm", {i: [f"a{j}" for j in range(10)] for i in range(0, n, 2)},
               "2 -> 1 workers (kill -9)")
    publish_many(ctx, b, "wm", range(n), 10, "b")
    time.sleep(SETTLE)
    b = ctx.restart(b, "term", workers=3)
    drain_many(ctx, b, "wm", {i: ([] if i % 2 == 0 else [f"a{j}" for j in range(10)])
                              + [f"b{j}" for j in range(10)] for i in range(n)},
               "1 -> 3 workers (SIGTERM)")


def force_compaction(ctx, b):
    """Retained writes of 32 KiB until a compaction completes and removes
    every segment there was before it (s08's way)."""
    jdir = os.path.join(ctx.data, "journal")
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
    deadline = time.monotonic() + 5
    while set(before) & set(os.listdir(jdir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = set(before) & set(os.listdir(jdir))
    assert not left, f"segments {sorted(left)} still there after the compaction"
    assert re.search(r"compaction \d+: snapshots of \d+ records", b.text().decode())
    tap.comment(f"{k} retained writes of 32 KiB for a compaction; segments {before} removed")


@test
def m07_compaction_keeps_queued_messages(ctx):
    """persistence_compact_bytes at its minimum: 10 offline sessions with
    10 QoS 1 messages queued each (session 0 drains its 10 first), a
    compaction that removes every segment that held them, 5 more each;
    kill -9: session 0 gets the 5, the others all 15, in order."""
    args = ["--persistence-compact-bytes=1048576"]
    n = 10
    b = ctx.node(*args)
    make_many(ctx, b, "mc", n)
    publish_many(ctx, b, "mc", range(n), 10, "a")
    drain_many(ctx, b, "mc", {0: [f"a{j}" for j in range(10)]}, "before the compaction")
    time.sleep(SETTLE)
    force_compaction(ctx, b)
    publish_many(ctx, b, "mc", range(n), 5, "b")
    b = ctx.restart(b, "kill", *args)
    drain_many(ctx, b, "mc", {i: ([] if i == 0 else [f"a{j}" for j in range(10)])
                              + [f"b{j}" for j in range(5)] for i in range(n)},
               "after the compaction and kill -9")


@test
def m08_ended_sessions_get_nothing(ctx):
    """Offline sessions with 3 QoS 1 messages queued each; kill -9, a new
    start 2.5 s later: a 5.0 session that reconnects with clean start 1, a
    3.1.1 one with clean session 1 and a 5.0 one whose Session Expiry (2 s)
    passed while the node was down get none of them (present 0). The
    clean-started 5.0 session (expiry 3600) subscribes again, goes offline,
    gets a new message; kill -9: only the new one comes to it. A control
    session, offline through both kills, gets its 3."""
    b = ctx.node()
    for name, v, exp in (("xa", 5, EXPIRY), ("xb", 5, 2), ("xc", 4, None), ("xd", 5, EXPIRY)):
        c = MSess(ctx, b.port, v)
        c.open(name, clean=(v == 5), expiry=exp)
        c.sub((f"m08/{name}", 1))
        c.bye()
    t_off = time.monotonic()
    o = publisher(ctx, b, "m08-pub")
    for j in range(3):
        for name in ("xa", "xb", "xc", "xd"):
            o.pub(f"m08/{name}", f"old{j}", 1)
    b = ctx.restart(b, "kill")
    o.close()
    time.sleep(max(0.0, t_off + 2.5 - time.monotonic()))
    subs = {"xa": MSess(ctx, b.port, 5), "xb": MSess(ctx, b.port, 5), "xc": MSess(ctx, b.port, 4)}
    sp = {"xa": subs["xa"].open("xa", clean=True, expiry=EXPIRY),
          "xb": subs["xb"].open("xb", clean=False, expiry=EXPIRY),
          "xc": subs["xc"].open("xc", clean=True)}
    assert sp == {"xa": 0, "xb": 0, "xc": 0}, f"session present {sp}"
    subs["xa"].sub(("m08/xa", 1))
    got = deliveries({n: (c, 0) for n, c in subs.items()})
    assert got == {"xa": [], "xb": [], "xc": []}, f"ended sessions got messages: {got}"
    for c in subs.values():
        c.bye()
    o = publisher(ctx, b, "m08-pub2")
    o.pub("m08/xa", b"new", 1)
    o.bye()
    b = ctx.restart(b, "kill")
    xa, sp_a = mpersistent(ctx, b.port, "xa", 5)
    xd, sp_d = mpersistent(ctx, b.port, "xd", 5)
    assert (sp_a, sp_d) == (1, 1), f"session present xa {sp_a}, xd {sp_d}"
    got = deliveries({"xa": (xa, 1), "xd": (xd, 3)})
    old = [g for g in got["xa"] if g[1].startswith(b"old")]
    assert not old, f"the session started anew got the ended one's messages: {got['xa']}"
    assert got["xa"] == [("m08/xa", b"new", 1)], \
        f"the new session's own message after kill -9: {got['xa']}"
    assert got["xd"] == [("m08/xd", f"old{j}".encode(), 1) for j in range(3)], \
        f"control (offline through two kill -9): {got['xd']}"
    xa.bye()
    xd.bye()


@test
def m09_recovered_messages_in_log_and_metric(ctx):
    """3 offline persistent sessions with 10 QoS 1 messages queued each; a
    persistent session online that acknowledged its 5 and a clean one
    online that acknowledged none of its 5: the start-up line says 30
    queued messages and starling_persistence_recovered{kind="messages"} is
    30; the 3 get their 10, the acknowledging one nothing."""
    b = ctx.node()
    kinds = [5, 4, 5]
    for i, v in enumerate(kinds):
        c, _ = mpersistent(ctx, b.port, f"q{i}", v, first=True)
        c.sub((f"m09/q{i}", 1))
        c.bye()
    acked, _ = mpersistent(ctx, b.port, "acked", 5, first=True)
    acked.sub(("m09/acked", 1))
    clean = MSess(ctx, b.port, 4)
    clean.open("clean", clean=True)
    clean.sub(("m09/clean", 1))
    clean.acking = False
    o = publisher(ctx, b, "m09-pub")
    for j in range(10):
        for i in range(len(kinds)):
            o.pub(f"m09/q{i}", f"m{j}", 1)
        if j < 5:
            o.pub("m09/acked", f"m{j}", 1)
            o.pub("m09/clean", f"m{j}", 1)
    o.bye()
    acked.wait_for(5)
    clean.wait_for(5)
    assert (len(acked.inbox), len(clean.inbox)) == (5, 5)
    time.sleep(SETTLE)  # the PUBACKs' acks
    b = ctx.restart(b, "kill")
    line = recovered_line(b)
    m = re.search(r"(\d+) queued messages", line)
    assert m, f"no queued message count in: {line}"
    assert int(m.group(1)) == 30, line
    wait_metric(b, 'starling_persistence_recovered{kind="messages"}', lambda v: v == 30)
    subs = {}
    for i, v in enumerate(kinds):
        subs[i], sp = mpersistent(ctx, b.port, f"q{i}", v)
        assert sp == 1
    subs["acked"], _ = mpersistent(ctx, b.port, "acked", 5)
    got = deliveries({**{i: (subs[i], 10) for i in range(len(kinds))}, "acked": (subs["acked"], 0)})
    assert got == {**{i: [(f"m09/q{i}", f"m{j}".encode(), 1) for j in range(10)]
                      for i in range(len(kinds))}, "acked": []}, got
    for c in subs.values():
        c.bye()


@test
def m10_paho_and_mosquitto_sessions_keep_messages_across_kill9(ctx):
    """paho (5.0, Session Expiry 3600) and mosquitto_sub -c (3.1.1, clean
    session 0) subscribe at QoS 1 and go offline; 10 mosquitto_pub -q 1 to
    each; kill -9; paho reconnects with clean start 0 (present 1) and
    mosquitto_sub -c with another topic only: each gets its 10, in order."""
    b = ctx.node()
    s = Paho5(ctx, b.port, "m10-paho")
    assert s.connect(clean_start=True) == 0
    s.subscribe("m10/paho", 1)
    s.close()
    m = MosqSub(ctx, b.port, "-c", "-i", "m10-mosq", "-q", "1", "-t", "m10/mosq")
    m.wait_line(lambda ln: ln.startswith("Subscribed (mid"), "SUBACK")
    m.p.kill()
    m.finish()
    time.sleep(SETTLE)
    for i in range(10):
        for t in ("paho", "mosq"):
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-V",
                            "mqttv311", "-q", "1", "-t", f"m10/{t}", "-m", f"{t}-{i}"],
                           check=True, timeout=10)
    b = ctx.restart(b, "kill")
    s = Paho5(ctx, b.port, "m10-paho")
    assert s.connect(clean_start=False) == 1, "paho: session present 0 after kill -9"
    m = MosqSub(ctx, b.port, "-c", "-i", "m10-mosq", "-q", "1", "-t", "m10/other",
                "-C", "10", "-W", "5")
    try:
        s.wait(lambda: len(s.msgs) >= 10, "10 messages")
    except AssertionError:
        pass
    time.sleep(QUIET)
    got = [(x.topic, x.payload, x.qos) for x in s.msgs]
    rc = m.finish()
    assert got == [("m10/paho", f"paho-{i}".encode(), 1) for i in range(10)], f"paho got {got}"
    assert rc == 0 and m.messages() == [f"m10/mosq|1|mosq-{i}" for i in range(10)], \
        f"mosquitto_sub exited {rc} (27: -W timeout); printed {m.messages()}"
    s.close()


@test
def m11_persistence_off_loses_queued_messages(ctx):
    """Without --persistence: QoS 1 messages queued for two offline
    sessions (5.0 and 3.1.1) reach one of them on a reconnect while the
    node runs (control); 5 more each, kill -9 and a new start: both present
    0, nothing comes."""
    b = ctx.plain(f"--data-dir={ctx.data}")
    for v in (5, 4):
        c, _ = mpersistent(ctx, b.port, f"o{v}", v, first=True)
        c.sub((f"off/{v}", 1))
        c.bye()
    o = publisher(ctx, b, "m11-pub")
    for j in range(5):
        o.pub("off/5", f"a{j}", 1)
    c, sp = mpersistent(ctx, b.port, "o5", 5)
    assert sp == 1
    got = deliveries({"c": (c, 5)})["c"]
    assert got == [("off/5", f"a{j}".encode(), 1) for j in range(5)], \
        f"control, no restart: {got}"
    c.bye()
    for j in range(5):
        for v in (5, 4):
            o.pub(f"off/{v}", f"b{j}", 1)
    o.bye()
    ctx.kill(b)
    b = ctx.plain(f"--data-dir={ctx.data}")
    subs, sp = {}, {}
    for v in (5, 4):
        subs[v], sp[v] = mpersistent(ctx, b.port, f"o{v}", v)
    assert sp == {5: 0, 4: 0}, f"persistence off, after kill -9: session present {sp}"
    got = deliveries({v: (c, 0) for v, c in subs.items()})
    assert got == {5: [], 4: []}, got
    for c in subs.values():
        c.bye()
    assert "recovered from" not in b.text().decode()
    assert not os.path.exists(ctx.data), os.listdir(ctx.data)


@test
def m12_qos2_exactly_once_across_kill9(ctx):
    """QoS 2 stays exactly once across kill -9 on both sides. Subscriber
    side: a 5.0 persistent session online gets a QoS 2 PUBLISH and answers
    nothing; after kill -9 it is sent again under the same packet id, with
    DUP (the receiver that had it knows it), and once the flow is completed
    nothing comes again after a second kill. Publisher side: a persistent
    3.1.1 publisher's QoS 2 PUBLISH is PUBRECed; it never sends PUBREL;
    after kill -9 it sends the PUBLISH again (DUP) under the same id: PUBREC,
    and the subscriber does not get it twice; its PUBREL gets PUBCOMP 0;
    after another kill -9 a new message under the same id is routed."""
    b = ctx.node()
    s, _ = mpersistent(ctx, b.port, "m12-sub", 5, first=True)
    s.sub(("m12/#", 2))
    s.acking = False
    o = publisher(ctx, b, "m12-pub0", 4)
    o.pub("m12/a", b"first", 2)
    o.bye()
    s.wait_for(1)
    first = s.inbox[0]
    assert first.qos == 2 and not first.dup, first
    time.sleep(SETTLE)  # its REC_MSG_SENT is before the PUBLISH anyway (the gate)
    b = ctx.restart(b, "kill")
    s, sp = mpersistent(ctx, b.port, "m12-sub", 5)
    assert sp == 1
    s.acking = False
    s.wait_for(1)
    again = s.inbox[0]
    assert (again.pid, again.dup, again.payload) == (first.pid, True, b"first"), \
        f"sent again as pid {again.pid} dup {again.dup} (first: pid {first.pid})"
    s.inbox = []
    s.send(ack(PUBREC, again.pid))
    s.wait_rels(1)
    assert s.rels == [again.pid], s.rels
    s.send(ack(PUBCOMP, again.pid))
    time.sleep(SETTLE)
    s.acking = True
    # Publisher side: a persistent publisher, PUBREC seen, no PUBREL.
    pub, _ = mpersistent(ctx, b.port, "m12-pub", 4)
    pub.send(publish(4, "m12/b", b"once", qos=2, pid=7))
    assert pub.expect(PUBREC).pid == 7
    s.wait_for(1)
    assert [p.payload for p in s.inbox] == [b"once"], s.inbox
    s.inbox = []
    s.rels = []
    s.wait_rels(1)  # the subscriber's own flow completes (PUBCOMP)
    assert len(s.rels) == 1, s.rels
    time.sleep(SETTLE)
    b = ctx.restart(b, "kill")
    s, _ = mpersistent(ctx, b.port, "m12-sub", 5)
    pub, sp = mpersistent(ctx, b.port, "m12-pub", 4)
    assert sp == 1
    pub.send(publish(4, "m12/b", b"once", qos=2, pid=7, dup=True))
    assert pub.expect(PUBREC).pid == 7
    pub.send(ack(PUBREL, 7))
    comp = pub.expect(PUBCOMP)
    assert comp.pid == 7
    got = s.take(QUIET)
    assert got == [], f"the publisher's resend was routed again: {got}"
    # The id was released (journaled before the PUBCOMP): a new message
    # under it after another kill -9 is a new message.
    time.sleep(SETTLE)
    b = ctx.restart(b, "kill")
    s, _ = mpersistent(ctx, b.port, "m12-sub", 5)
    pub, _ = mpersistent(ctx, b.port, "m12-pub", 4)
    pub.send(publish(4, "m12/b", b"second", qos=2, pid=7))
    assert pub.expect(PUBREC).pid == 7
    pub.send(ack(PUBREL, 7))
    assert pub.expect(PUBCOMP).pid == 7
    s.wait_for(1)
    line = recovered_line(b)
    assert [p.payload for p in s.inbox] == [b"second"], \
        f"after a second kill: {[p.payload for p in s.inbox]} (nothing of before may come " \
        f"again): {line}"
    assert re.search(r"\b0 QoS 2 releases owed, 0 inbound QoS 2 ids", line), line
    s.bye()
    pub.bye()


# ------------------------------------------------ QoS 2 exactly once, kill -9 rounds

Q2_ROUNDS = {"write": 40, "fsync": 20}
Q2_BUDGET = 300  # messages one publisher sends at most in a round
Q2_WINDOW = 20   # a publisher's QoS 2 flows open at once (not PUBCOMPed)


class Q2Pub:
    """A QoS 2 sender with a persistent session (5.0 Session Expiry EXPIRY,
    3.1.1 clean session 0) whose own session state survives its reconnects
    (MQTT 4.4): pending holds, in the order first sent, every flow not
    completed as pid -> [seq, released]; after a reconnect each one not
    PUBRECed goes again as PUBLISH with DUP under its packet id, each
    PUBRECed one as PUBREL [MQTT-4.4.0-1]. A message is acknowledged at its
    PUBREC. Payloads are "name:seq", seq from 1 up. One thread per
    connection (run) sends what budget allows and answers until the
    connection ends or stop is set; after stall_at new messages it stops
    processing what comes (as a client that hangs: the bytes are read and
    never looked at), so that the PUBRECs and PUBCOMPs the broker sent
    before the kill are lost to it and it resends what the broker already
    has."""

    def __init__(self, ctx, name, v):
        self.ctx, self.name, self.v = ctx, name, v
        self.topic = f"kq/{name}"
        self.pending = {}
        self.seq = 0
        self.acked = set()
        self.pid = 0
        self.budget = 0
        self.stall_at = None
        self.stalled = False
        self.sent = 0  # new messages sent (the round sets it to 0)
        self.stop = False
        self.c = None
        self.thread = None
        self.window = Q2_WINDOW
        self.odd = []  # what a correct broker never sends this client
        self.n = {"resent PUBLISH": 0, "resent PUBLISH, routed before": 0, "resent PUBREL": 0,
                  "PUBREC again": 0, "PUBCOMP 0x92": 0, "stray PUBCOMP": 0}

    def payload(self, seq):
        return f"{self.name}:{seq}".encode()

    def next_pid(self):
        while True:
            self.pid = self.pid % 65535 + 1
            if self.pid not in self.pending:
                return self.pid

    def connect(self, port, first=False):
        """CONNECT, the session state's resends (in the order first sent),
        the thread; returns session present."""
        c = Client(port, self.v)
        self.ctx.clients.append(c)
        p = [(0x11, EXPIRY)] if self.v == 5 else []
        a = c.connect(f"kq-{self.name}", clean=first and self.v == 5, p=p)
        assert a.rc == 0, f"{self.name}: CONNACK {a.rc:#x}"
        if self.v == 5:
            self.window = min(Q2_WINDOW, a.prop(0x21, 65535))
        for pid, (seq, rel) in sorted(self.pending.items(), key=lambda x: x[1][0]):
            if rel:
                c.send(ack(PUBREL, pid))
                self.n["resent PUBREL"] += 1
            else:
                c.send(publish(self.v, self.topic, self.payload(seq), qos=2, pid=pid, dup=True))
                self.n["resent PUBLISH"] += 1
        self.c, self.stop, self.stalled = c, False, False
        self.thread = threading.Thread(target=self.run, args=(c,), daemon=True)
        self.thread.start()
        return int(a.session_present)

    def run(self, c):
        try:
            while not self.stop:
                if self.stall_at is not None and self.sent >= self.stall_at:
                    self.stalled = True
                    try:
                        c._fill(time.monotonic() + 0.1)  # until the connection ends
                    except TimeoutError:
                        pass
                    continue
                if self.budget > 0 and len(self.pending) < self.window:
                    self.budget -= 1
                    self.seq += 1
                    pid = self.next_pid()
                    self.pending[pid] = [self.seq, False]
                    self.sent += 1
                    c.send(publish(self.v, self.topic, self.payload(self.seq), qos=2, pid=pid))
                    continue
                try:
                    p = c.recv(0.1)
                except TimeoutError:
                    continue
                self.handle(c, p)
        except (ConnectionError, OSError):
            pass

    def handle(self, c, p):
        f = self.pending.get(getattr(p, "pid", None))
        if p.type == PUBREC:
            if f is None:
                self.odd.append(f"PUBREC for packet id {p.pid}, no flow open under it")
            elif p.rc >= 0x80:
                self.odd.append(f"PUBREC {p.rc:#x} (refused) for {f[0]} (packet id {p.pid})")
                del self.pending[p.pid]
            else:
                if f[1]:
                    self.n["PUBREC again"] += 1
                f[1] = True
                self.acked.add(f[0])
                c.send(ack(PUBREL, p.pid))
        elif p.type == PUBCOMP:
            if f is None:
                self.n["stray PUBCOMP"] += 1
            elif not f[1]:
                self.odd.append(f"PUBCOMP before PUBREC for {f[0]} (packet id {p.pid})")
            else:
                del self.pending[p.pid]
                if p.rc == 0x92:
                    self.n["PUBCOMP 0x92"] += 1
        else:
            self.odd.append(repr(p))

    def end(self):
        """The thread ends (the connection ended: a kill)."""
        if self.thread:
            self.thread.join(10)
            assert not self.thread.is_alive(), f"{self.name}: its thread still runs"
        self.thread = None
        if self.c:
            self.c.close()
        self.c = None

    def bye(self):
        self.stop = True
        self.thread.join(10)
        self.thread = None
        self.c.send(disconnect(self.v))
        self.c.closed()
        self.c.close()
        self.c = None


class Q2Sub:
    """A QoS 2 receiver (method B, §4.3.3) with a persistent session whose
    own state survives its reconnects: a QoS 2 PUBLISH under a packet id it
    does not hold is delivered to the application (app, per publisher) and
    its id stored (held); one under a held id is the same message again
    and is not delivered; either is answered PUBREC. A PUBREL discards the
    id and is answered PUBCOMP. One reader thread per connection; what
    happened is kept for the report (events: (publisher, seq) -> every
    PUBLISH of it, delivered or not)."""

    def __init__(self, ctx, name, v):
        self.ctx, self.name, self.v = ctx, name, v
        self.held = {}   # pid -> (publisher, seq, connection number)
        self.app = {}    # publisher -> [seq] as delivered
        self.events = {}  # (publisher, seq) -> [(phase, conn, pid, dup, delivered)]
        self.phase = "setup"
        self.conns = 0
        self.lock = threading.Lock()
        self.closing = False
        self.c = None
        self.thread = None
        self.publishes = 0
        self.odd = []
        self.again_nodup = []  # a held id's message again without DUP
        self.mismatch = []     # a held id with another message
        self.n = {"again (held id, DUP)": 0, "new id with DUP": 0, "PUBREL resumed": 0,
                  "PUBREL unknown id": 0}

    def connect(self, port, first=False):
        """CONNECT (SUBSCRIBE kq/# at QoS 2 when first), the reader thread;
        returns session present."""
        c = Client(port, self.v)
        self.ctx.clients.append(c)
        p = [(0x11, EXPIRY)] if self.v == 5 else []
        a = c.connect(f"kq-{self.name}", clean=first and self.v == 5, p=p)
        assert a.rc == 0, f"{self.name}: CONNACK {a.rc:#x}"
        if first:
            c.send(subscribe(self.v, 1, [("kq/#", 2)]))
            s = c.expect(SUBACK)
            assert s.rcs == [2], s.rcs
        self.conns += 1
        self.c, self.closing = c, False
        self.thread = threading.Thread(target=self.read, args=(c, self.conns), daemon=True)
        self.thread.start()
        return int(a.session_present)

    def read(self, c, conn):
        try:
            while True:
                try:
                    p = c.recv(60)
                except TimeoutError:
                    continue
                with self.lock:
                    if not self.closing:  # nothing is read after our DISCONNECT
                        self.handle(c, p, conn)
        except (ConnectionError, OSError):
            pass

    def handle(self, c, p, conn):
        if p.type == PUBLISH:
            self.publishes += 1
            if p.qos != 2:
                self.odd.append(repr(p))
                return
            pub, seq = p.payload.decode().split(":")
            key = (pub, int(seq))
            h = self.held.get(p.pid)
            ev = self.events.setdefault(key, [])
            if h is None:
                self.held[p.pid] = (*key, conn)
                self.app.setdefault(pub, []).append(key[1])
                ev.append((self.phase, conn, p.pid, p.dup, True))
                if p.dup:
                    self.n["new id with DUP"] += 1
            else:
                ev.append((self.phase, conn, p.pid, p.dup, False))
                if h[:2] != key:
                    self.mismatch.append(f"{self.phase}: packet id {p.pid} held for {h[:2]} "
                                         f"(connection {h[2]}) came with {key} (DUP {p.dup})")
                elif p.dup:
                    self.n["again (held id, DUP)"] += 1
                else:
                    self.again_nodup.append(f"{self.phase}: {key} again under held packet "
                                            f"id {p.pid} without DUP")
            c.send(ack(PUBREC, p.pid))
        elif p.type == PUBREL:
            h = self.held.pop(p.pid, None)
            if h is None:
                self.n["PUBREL unknown id"] += 1
            elif h[2] != conn:
                self.n["PUBREL resumed"] += 1
            c.send(ack(PUBCOMP, p.pid))
        else:
            self.odd.append(repr(p))

    def end(self):
        """The reader ends (the connection ended: a kill)."""
        if self.thread:
            self.thread.join(10)
            assert not self.thread.is_alive(), f"{self.name}: its reader still runs"
        self.thread = None
        if self.c:
            self.c.close()
        self.c = None

    def bye(self):
        with self.lock:
            self.closing = True
            self.c.send(disconnect(self.v))
        self.end()


def q2_check(label, pubs, subs, logs):
    """Every message each publisher got PUBREC for reached every
    subscriber's application exactly once and in order; nothing odd
    happened on either side. On a failure the events and the broker logs
    around the first duplicate are printed (logs: each broker run's log,
    the running one's last)."""
    bad = []
    first = None
    for s in subs.values():
        if s.odd or s.mismatch or s.again_nodup:
            bad.append(f"{s.name}: odd {s.odd[:3]}, held id with another message "
                       f"{s.mismatch[:3]}, held id's message again without DUP "
                       f"{s.again_nodup[:3]}")
        for p in pubs:
            got = s.app.get(p.name, [])
            seen = set(got)
            lost = sorted(p.acked - seen)
            dups = sorted({x for x in got if got.count(x) > 1}) if len(seen) < len(got) else []
            order = [(a, b) for a, b in zip(got, got[1:]) if b <= a and b not in dups]
            if lost or dups or order:
                bad.append(f"{s.name} from {p.name}: {len(got)} delivered for {len(p.acked)} "
                           f"acknowledged; lost {len(lost)} {lost[:5]}, delivered twice "
                           f"{len(dups)} {dups[:5]}, out of order {order[:3]}")
                for x in dups[:3]:
                    tap.comment(f"{s.name} {p.name}:{x}: {s.events.get((p.name, x))} "
                                f"(phase, connection, packet id, DUP, delivered)")
                if first is None and dups:
                    first = s.events[(p.name, dups[0])]
    for p in pubs:
        if p.odd:
            bad.append(f"{p.name}: {p.odd[:3]}")
    if bad:
        if first is not None:
            runs = sorted({int(e[0].split()[1]) for e in first if e[0].startswith("run ")})
            for r in runs[-1:]:
                if 0 < r < len(logs):
                    tap.comment(f"broker run {r - 1} (killed), its log's end:\n" + "\n".join(
                        logs[r - 1].decode(errors="replace").splitlines()[-12:]))
                    tap.comment(f"broker run {r}, its start:\n" + "\n".join(
                        logs[r].decode(errors="replace").splitlines()[1:12]))
        raise AssertionError(f"{label}: " + "; ".join(bad))


def q2_kill_rounds(ctx, sync):
    """Rounds of: two QoS 2 publishers with persistent sessions (3.1.1 and
    5.0) stream numbered messages into three persistent subscriber sessions
    (5.0, 3.1.1, 5.0; one of them, drawn each round, offline), every client
    a correct QoS 2 endpoint whose session state survives its reconnects
    (Q2Pub, Q2Sub); kill -9 at a random moment; a new start, everyone
    reconnects (present 1; in a drawn order) and resends what its session
    holds, and the flows drain. After each round every message PUBRECed to
    its publisher reached every subscriber's application exactly once and
    in order (the publishers resend until PUBREC, so that is all of them).
    At the end, everything completed: kill -9 once more, and nothing comes
    again."""
    rounds = Q2_ROUNDS[sync]
    rng = random.Random(f"{SEED}-q2-{sync}")
    tap.comment(f"seed {SEED} (PERSIST_MESSAGES_SEED={SEED} repeats it)")
    args = ["--queue-messages-max=100000"]
    logs = []  # each broker run's log, kept at its kill
    run = 0

    def kill(b):
        b.proc.kill()
        b.proc.wait()
        logs.append(b.text())
        ctx.kill(b)

    b = ctx.node(*args, sync=sync)
    pubs = [Q2Pub(ctx, "p4", 4), Q2Pub(ctx, "p5", 5)]
    subs = {n: Q2Sub(ctx, n, v) for n, v in (("a5", 5), ("b4", 4), ("c5", 5))}
    for s in subs.values():
        assert s.connect(b.port, first=True) == 0
    for p in pubs:
        p.connect(b.port, first=True)
    t_start = time.monotonic()
    kinds = {"mid-stream": 0, "after the stream": 0, "publisher stalls": 0}
    at_kill = {"publisher flows": 0, "subscriber ids held": 0}
    for rnd in range(rounds):
        off = rng.choice(sorted(subs))
        subs[off].bye()
        for s in subs.values():
            s.phase = f"run {run} round {rnd} before the kill"
        for p in pubs:
            p.sent = 0
            p.budget = rng.randint(30, Q2_BUDGET)
            if rng.random() < 0.3:
                p.stall_at = rng.randint(1, p.budget)
                kinds["publisher stalls"] += 1
        t0 = time.monotonic()
        if rng.random() < 0.25:
            kinds["after the stream"] += 1
            while any(p.budget and not p.stalled for p in pubs) and time.monotonic() < t0 + 3:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.02))  # the last flows and deliveries on the wire
        else:
            kinds["mid-stream"] += 1
            q = rng.choice(pubs)
            target = rng.randint(1, q.budget)
            while q.sent < target and not q.stalled and time.monotonic() < t0 + 3:
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.003))
        kill(b)
        run += 1
        for x in [*pubs, *subs.values()]:
            x.end()
        for p in pubs:
            p.budget, p.stall_at = 0, None
            # what the kill left open; resends of what the broker had routed
            routed = set().union(*(s.app.get(p.name, ()) for s in subs.values()))
            at_kill["publisher flows"] += len(p.pending)
            p.n["resent PUBLISH, routed before"] += sum(
                1 for seq, rel in p.pending.values() if not rel and seq in routed)
        at_kill["subscriber ids held"] += sum(len(s.held) for s in subs.values())
        b = ctx.node(*args, sync=sync)
        for s in subs.values():
            s.phase = f"run {run} round {rnd} after the restart"
        clients = [*pubs, *subs.values()]
        rng.shuffle(clients)
        for x in clients:
            sp = x.connect(b.port)
            assert sp == 1, f"round {rnd}: {x.name} not present after kill -9"
        deadline = time.monotonic() + 2 * WAIT
        while time.monotonic() < deadline:
            if not any(p.pending for p in pubs) and not any(s.held for s in subs.values()) \
                    and all(p.acked <= set(s.app.get(p.name, ()))
                            for p in pubs for s in subs.values()):
                break
            time.sleep(0.01)
        time.sleep(0.2)  # what else comes (a duplicate would)
        left = {p.name: len(p.pending) for p in pubs if p.pending}
        held = {s.name: sorted(s.held) for s in subs.values() if s.held}
        q2_check(f"sync={sync} round {rnd} (seed {SEED}, broker runs {run - 1}/{run}"
                 + (f"; flows still open: publishers {left}, subscribers' held ids {held}"
                    if left or held else "") + ")", pubs, subs, logs + [b.text()])
        assert not left and not held, f"round {rnd}: flows still open: publishers {left}, " \
                                      f"subscribers' held ids {held}"
    elapsed = time.monotonic() - t_start
    tap.comment(f"sync={sync}: {rounds} kill -9 rounds in {elapsed:.1f} s ({kinds}); open at "
                f"the kills, summed: {at_kill}; published "
                + ", ".join(f"{p.name} {p.seq} (all PUBRECed: {len(p.acked) == p.seq})"
                            for p in pubs))
    for p in pubs:
        tap.comment(f"publisher {p.name} (v{p.v}): {p.n}")
    for s in subs.values():
        tap.comment(f"subscriber {s.name} (v{s.v}): delivered "
                    f"{sum(len(x) for x in s.app.values())} once each, {s.publishes} PUBLISHes; "
                    f"{s.n}")
    # All completed: nothing comes again after one more kill -9.
    time.sleep(SETTLE)
    before = {s.name: s.publishes for s in subs.values()}
    rels = {s.name: s.n["PUBREL unknown id"] for s in subs.values()}
    kill(b)
    run += 1
    for x in [*pubs, *subs.values()]:
        x.end()
    b = ctx.node(*args, sync=sync)
    for s in subs.values():
        s.phase = f"run {run} after the last round"
    for x in [*subs.values(), *pubs]:
        assert x.connect(b.port) == 1, f"{x.name} not present after the last kill -9"
    time.sleep(QUIET)
    again = {s.name: s.publishes - before[s.name] for s in subs.values()}
    rels = {s.name: s.n["PUBREL unknown id"] - rels[s.name] for s in subs.values()}
    q2_check(f"sync={sync} after the last kill -9", pubs, subs, logs + [b.text()])
    assert not any(again.values()), f"after every flow completed and kill -9: PUBLISHes {again}"
    assert not any(rels.values()), f"after every flow completed and kill -9: PUBRELs {rels}"
    for x in [*pubs, *subs.values()]:
        x.bye()


@test
def m13_kill9_rounds_qos2_exactly_once(ctx):
    q2_kill_rounds(ctx, "write")


@test
def m13b_kill9_rounds_qos2_exactly_once_fsync(ctx):
    q2_kill_rounds(ctx, "fsync")


@test
def m14_export_and_import_carry_messages(ctx):
    """A node's sessions with their queued messages, a QoS 2 delivery in
    flight, a PUBREL owed and a publisher's inbound QoS 2 id, exported from
    the running node (JSON lines), imported into a new data_dir, started
    there on another worker count: everything comes back (the QoS 2
    delivery under its packet id with DUP, the PUBREL again, the
    publisher's resend not routed); a message line naming a session no
    line before it made is refused with its line number."""
    b = ctx.node(workers=2)
    q, _ = mpersistent(ctx, b.port, "m14-q", 5, first=True)  # offline: queued
    q.sub(("m14/q", 1))
    q.bye()
    f, _ = mpersistent(ctx, b.port, "m14-f", 5, first=True)  # online, answers nothing
    f.sub(("m14/f", 2))
    f.acking = False
    o = publisher(ctx, b, "m14-o", 5)
    for i in range(5):
        o.pub("m14/q", body("m14", i), 1)
    o.pub("m14/f", b"in flight", 2)
    o.pub("m14/f", b"released", 2)
    o.bye()
    f.wait_for(2)
    held = {p.payload: p.pid for p in f.inbox}
    f.send(ack(PUBREC, held[b"released"]))
    f.wait_rels(1)
    pub, _ = mpersistent(ctx, b.port, "m14-pub", 4)
    pub.send(publish(4, "m14/none", b"awaiting PUBREL", qos=2, pid=9))
    assert pub.expect(PUBREC).pid == 9
    time.sleep(SETTLE)
    exp = os.path.join(ctx.dir, "m14.jsonl")
    r = subprocess.run([ctx.binary, "export", exp, f"--data-dir={ctx.data}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "with 6 queued messages" in r.stderr, r.stderr
    lines = open(exp).read().splitlines()
    kinds = [json.loads(x)["kind"] for x in lines[1:]]
    assert kinds.count("message") == 6 and kinds.count("pubrel") == 1 \
        and kinds.count("inbound_qos2") == 1, kinds
    f.close()
    pub.close()
    ctx.kill(b)
    fresh = os.path.join(ctx.dir, "m14-fresh")
    r = subprocess.run([ctx.binary, "import", exp, f"--data-dir={fresh}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "with 6 queued messages" in r.stderr, r.stderr
    n = Broker(ctx.binary, 3, ["--persistence=true", f"--data-dir={fresh}"], log_level="info")
    ctx.brokers.append(n)
    q, sp = mpersistent(ctx, n.port, "m14-q", 5)
    assert sp == 1
    q.wait_for(5)
    assert q.take(QUIET) == [("m14/q", body("m14", i), 1) for i in range(5)]
    f, sp = mpersistent(ctx, n.port, "m14-f", 5)
    assert sp == 1
    f.acking = False
    f.wait_for(1)
    f.wait_rels(1)
    again = f.inbox[0]
    assert (again.payload, again.pid, again.dup) == (b"in flight", held[b"in flight"], True), \
        (again.payload, again.pid, again.dup, held)
    assert f.rels == [held[b"released"]], (f.rels, held)
    pub, sp = mpersistent(ctx, n.port, "m14-pub", 4)
    assert sp == 1
    watch, _ = mpersistent(ctx, n.port, "m14-watch", 5, first=True)
    watch.sub(("m14/none", 2))
    pub.send(publish(4, "m14/none", b"awaiting PUBREL", qos=2, pid=9, dup=True))
    assert pub.expect(PUBREC).pid == 9
    pub.send(ack(PUBREL, 9))
    assert pub.expect(PUBCOMP).pid == 9
    assert watch.take(QUIET) == [], "the publisher's resend was routed again"
    for c in (q, f, pub, watch):
        c.close()
    # A message whose session no line before it made: refused, line named.
    bad = os.path.join(ctx.dir, "m14-bad.jsonl")
    msg_line = next(x for x in lines if '"kind":"message"' in x)
    with open(bad, "w") as out:
        out.write(lines[0] + "\n" + msg_line + "\n")
    r = subprocess.run([ctx.binary, "import", bad,
                        f"--data-dir={os.path.join(ctx.dir, 'm14-b2')}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and ":2: not a message" in r.stderr, r.stderr


@test
def m15_disk_full_refuses_messages_for_persistent_sessions(ctx):
    """A 1 MiB tmpfs in the broker's own mount namespace, mostly filled
    (as persist_test.py p07): once the journal cannot write, a QoS 1 or 2
    PUBLISH that would reach a persistent session is refused (5.0: 0x97 in
    the PUBACK/PUBREC; 3.1.1: the connection closes) and delivered nowhere,
    while one that reaches only a clean session goes on; once space is back
    the held acknowledgement comes, and every acknowledged message, one
    published after the space came back too, survives kill -9 (read from
    a copy of the data taken before the kill: the tmpfs dies with it)."""
    b, d = small_disk_broker(ctx)
    data = f"{d}/data"
    ps, _ = mpersistent(ctx, b.port, "m15-pers", 5, first=True)
    ps.sub(("m15/p", 1))
    ps.bye()
    clean = MSess(ctx, b.port, 5)
    clean.open("m15-clean", clean=True)
    clean.sub(("m15/c", 1))
    # Fill the disk with messages for the persistent session until an
    # acknowledgement is held.
    f = Client(b.port, 5)
    f.connect("m15-filler")
    stuck = fill_until_held(f, lambda i: "m15/p")
    deadline = time.monotonic() + 5
    while metric(b, "starling_journal_failing") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    o = Client(b.port, 5)
    o.connect("m15-other")
    o.send(publish(5, "m15/p", b"refused", qos=1, pid=7))
    assert o.expect(PUBACK).rc == 0x97
    o.send(publish(5, "m15/p", b"refused 2", qos=2, pid=8))
    assert o.expect(PUBREC).rc == 0x97
    o.send(publish(5, "m15/c", b"clean goes", qos=1, pid=9))
    assert o.expect(PUBACK).rc == 0
    clean.wait_for(1)
    assert [m.payload for m in clean.inbox] == [b"clean goes"], clean.inbox
    o3 = Client(b.port, 4)
    o3.connect("m15-311")
    o3.send(publish(4, "m15/p", b"refused 3", qos=1, pid=10))
    o3.closed()  # 3.1.1 has no code for it
    os.unlink(f"/proc/{b.proc.pid}/root{d}/filler")
    p = f.expect(PUBACK, timeout=5)
    assert p.pid == stuck and p.rc == 0, (p.pid, stuck, p.rc)
    deadline = time.monotonic() + 5
    while metric(b, "starling_journal_failing") > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    o.send(publish(5, "m15/p", b"kept", qos=1, pid=11))
    assert o.expect(PUBACK).rc == 0
    for c in (f, o, clean):
        c.close()
    # kill -9 and a start on the same data (the tmpfs lives in the killed
    # broker's namespace: the session is read back from a copy taken now).
    copy = os.path.join(ctx.dir, "m15-copy")
    time.sleep(SETTLE)
    subprocess.run(["cp", "-a", f"/proc/{b.proc.pid}/root{data}", copy], check=True)
    ctx.kill(b)
    n = Broker(ctx.binary, 1, ["--persistence=true", f"--data-dir={copy}"], log_level="info")
    ctx.brokers.append(n)
    ps, sp = mpersistent(ctx, n.port, "m15-pers", 5)
    assert sp == 1
    ps.wait_for(stuck + 1, timeout=10)
    got = [m[1] for m in ps.take(QUIET)]
    assert got[-1:] == [b"kept"] and b"refused" not in got and b"refused 2" not in got \
        and b"refused 3" not in got, got[-3:]
    assert len(got) == stuck + 1, f"{len(got)} for {stuck} acknowledged and 1 kept"
    ps.bye()


@test
def m16_retained_at_subscribe_survives_kill9(ctx):
    """A retained QoS 1 and a retained QoS 2 message are there when a
    persistent session (5.0, then 3.1.1) subscribes; it gets them and
    acknowledges neither (QoS 2: no PUBREC). After kill -9 and reconnect
    (present 1) each comes again, with DUP, retain set; acknowledged, and
    kill -9 once more: nothing comes again. (They are journaled for the
    session by its worker when they reach it: core/persist/README.md.)"""
    b = ctx.node()
    o = publisher(ctx, b, "m16-pub", 5)
    o.pub("m16/one", b"kept-1", 1, retain=True)
    o.pub("m16/two", b"kept-2", 2, retain=True)
    o.bye()
    subs = {}
    for v in (5, 4):
        s, _ = mpersistent(ctx, b.port, f"m16-sub{v}", v, first=True)
        s.acking = False
        s.sub(("m16/#", 2))
        s.wait_for(2)
        got = sorted((p.topic.decode(), p.payload, p.qos, p.retain) for p in s.inbox)
        assert got == [("m16/one", b"kept-1", 1, True), ("m16/two", b"kept-2", 2, True)], got
        subs[v] = s
    time.sleep(SETTLE)
    b = ctx.restart(b, "kill")
    for v in (5, 4):
        s, sp = mpersistent(ctx, b.port, f"m16-sub{v}", v)
        assert sp == 1, f"m16-sub{v}: session present 0 after kill -9"
        s.wait_for(2)
        got = sorted((p.topic.decode(), p.payload, p.qos, p.retain, p.dup) for p in s.inbox)
        s.take(QUIET)
        assert got == [("m16/one", b"kept-1", 1, True, True),
                       ("m16/two", b"kept-2", 2, True, True)], \
            f"v{v}: unacknowledged retained deliveries after kill -9: {got}"
        s.wait_rels(1)
        s.bye()
    time.sleep(SETTLE)
    b = ctx.restart(b, "kill")
    for v in (5, 4):
        s, sp = mpersistent(ctx, b.port, f"m16-sub{v}", v)
        assert sp == 1
        again = s.take(QUIET)
        assert again == [] and s.rels == [], f"v{v}: acknowledged, yet after kill -9: {again}"
        s.bye()


@test
def m17_shared_handoff_to_a_persistent_member_survives_kill9(ctx):
    """A shared group of a clean 5.0 member (online, not acknowledging)
    and a persistent 5.0 member (offline). Two QoS 1 messages reach the
    group; whatever went to the clean member goes to the persistent one
    when the clean one leaves [MQTT 5.0 4.8.2]; kill -9: after the restart
    the persistent member has both, in order. Then a persistent member
    gets some of 4 more (not acknowledged) and ends (clean start 1 on its
    next connection); kill -9 right after: the other has all 4, each once
    (what was handed off comes after what it had)."""
    b = ctx.node()
    keep, _ = mpersistent(ctx, b.port, "m17-keep", 5, first=True)
    keep.sub(("$share/g/m17/#", 1))
    keep.bye()
    gone = MSess(ctx, b.port, 5)
    gone.open("m17-gone", clean=True)
    gone.sub(("$share/g/m17/#", 1))
    gone.acking = False
    o = publisher(ctx, b, "m17-pub", 5)
    for i in range(2):
        o.pub("m17/t", body("m17", i), 1)
    o.bye()
    gone.wait_for(2, timeout=QUIET)
    tap.comment(f"the clean member got {len(gone.inbox)} of 2 (the rest were queued "
                "for the persistent one)")
    gone.bye()
    time.sleep(SETTLE)
    b = ctx.restart(b, "kill")
    keep, sp = mpersistent(ctx, b.port, "m17-keep", 5)
    assert sp == 1
    got = deliveries({"k": (keep, 2)})["k"]
    assert got == [("m17/t", body("m17", i), 1) for i in range(2)], \
        f"after the handoff and kill -9 the persistent member got {[g[1][:8] for g in got]}"
    keep.bye()

    # A persistent member ends (it connects again with clean start 1): its
    # journaled messages go to the other persistent member, journaled for
    # it before the ending one's REC_SESS_END.
    ending, _ = mpersistent(ctx, b.port, "m17-ending", 5, first=True)
    ending.sub(("$share/g/m17/#", 1))
    ending.acking = False
    o = publisher(ctx, b, "m17-pub", 5)
    for i in range(2, 6):
        o.pub("m17/t", body("m17", i), 1)
    o.bye()
    ending.wait_for(4, timeout=QUIET)
    tap.comment(f"the persistent member that ends got {len(ending.inbox)} of 4")
    ending.close()
    again = MSess(ctx, b.port, 5)
    again.open("m17-ending", clean=True)
    again.bye()
    b = ctx.restart(b, "kill")
    keep, sp = mpersistent(ctx, b.port, "m17-keep", 5)
    assert sp == 1
    got = deliveries({"k": (keep, 4)})["k"]
    # A handed-off message goes behind what the member already had (no
    # order across members of a shared group): the set, each once.
    assert sorted(got) == [("m17/t", body("m17", i), 1) for i in range(2, 6)], \
        f"after a persistent member ended and kill -9 the other got {[g[1][:8] for g in got]}"
    keep.bye()


@test
def m18_queue_drops_do_not_come_back(ctx):
    """A persistent session offline, its queue limited to 5 (drop_oldest):
    8 QoS 1 messages are published, the first 3 dropped. It reconnects,
    gets and acknowledges the last 5; kill -9: nothing comes again (the
    drops were journaled as done). Then 8 more while offline under a limit
    of 10; kill -9 and a start with a limit of 5: the last 5 come (recovery
    drops the first 3; the compaction after the start leaves them out);
    acknowledged, kill -9 and a start with a limit of 10: nothing comes
    again."""
    b = ctx.node("--queue-messages-max=5")
    s, _ = mpersistent(ctx, b.port, "m18-sub", 5, first=True)
    s.sub(("m18/#", 1))
    s.bye()
    o = publisher(ctx, b, "m18-pub", 5)
    for i in range(8):
        o.pub("m18/t", body("m18", i), 1)
    o.bye()
    s, sp = mpersistent(ctx, b.port, "m18-sub", 5)
    got = deliveries({"s": (s, 5)})["s"]
    assert got == [("m18/t", body("m18", i), 1) for i in range(3, 8)], got
    s.bye()
    time.sleep(SETTLE)
    b = ctx.restart(b, "kill", "--queue-messages-max=5")
    s, sp = mpersistent(ctx, b.port, "m18-sub", 5)
    assert sp == 1
    again = s.take(QUIET)
    assert again == [], f"dropped by the queue limit, yet after kill -9: {again}"
    s.bye()

    b = ctx.restart(b, "kill", "--queue-messages-max=10")
    o = publisher(ctx, b, "m18-pub", 5)
    for i in range(10, 18):
        o.pub("m18/t", body("m18", i), 1)
    o.bye()
    b = ctx.restart(b, "kill", "--queue-messages-max=5")
    tap.comment(recovered_line(b))
    s, sp = mpersistent(ctx, b.port, "m18-sub", 5)
    assert sp == 1
    got = deliveries({"s": (s, 5)})["s"]
    assert got == [("m18/t", body("m18", i), 1) for i in range(13, 18)], \
        f"under a smaller limit after kill -9: {[g[1][:8] for g in got]}"
    s.bye()
    time.sleep(SETTLE)
    b = ctx.restart(b, "kill", "--queue-messages-max=10")
    tap.comment(recovered_line(b))
    s, sp = mpersistent(ctx, b.port, "m18-sub", 5)
    assert sp == 1
    again = s.take(QUIET)
    assert again == [], \
        f"dropped by the limit at the start before, yet after kill -9: {[g[1][:8] for g in again]}"
    s.bye()


@test
def m19_sessions_moving_through_compactions_keep_messages(ctx):
    """persistence_compact_bytes at its minimum and a writer of 32 KiB
    retained messages keeping compaction rounds going, while 6 persistent
    sessions, each holding 20 QoS 1 messages it never acknowledges,
    reconnect again and again (each time resumed by the worker that takes
    the new connection: the session moves between workers, and some moves
    happen while a round's snapshots are made). After at least 3 rounds,
    kill -9: each session gets its 20 again, in order. (The moves that
    cross a round's snapshots are rare; this keeps the path exercised, it
    does not force it.)"""
    args = ["--persistence-compact-bytes=1048576"]
    n = 6
    b = ctx.node(*args)
    for i in range(n):
        s, _ = mpersistent(ctx, b.port, f"mv-{i}", 5 if i % 2 == 0 else 4, first=True)
        s.sub((f"m19/{i}", 1))
        s.bye()
    o = publisher(ctx, b, "m19-pub", 5)
    for j in range(20):
        for i in range(n):
            o.pub(f"m19/{i}", body("m19", j), 1)
    o.bye()
    done0 = metric(b, "starling_journal_compactions_total")
    stop = threading.Event()
    written = [0]

    def writer():
        w = Sess(ctx, b.port, 4)
        w.open("m19-bulk", clean=True)
        while not stop.is_set():
            w.pub(f"bulk/{written[0] % 40}", b"." * 32768, 1, retain=True)
            written[0] += 1
        w.bye()

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    moves = 0
    deadline = time.monotonic() + 30
    try:
        while (metric(b, "starling_journal_compactions_total") < done0 + 3
               or moves < 60) and time.monotonic() < deadline:
            i = moves % n
            s, sp = mpersistent(ctx, b.port, f"mv-{i}", 5 if i % 2 == 0 else 4)
            assert sp == 1, f"mv-{i}: present 0 on its move {moves}"
            s.acking = False
            s.wait_for(20)
            assert len(s.inbox) == 20, f"mv-{i}: {len(s.inbox)} of its 20 on move {moves}"
            s.bye()
            moves += 1
    finally:
        stop.set()
        t.join(10)
    rounds = metric(b, "starling_journal_compactions_total") - done0
    tap.comment(f"{moves} moves, {rounds} compaction rounds, {written[0]} retained writes of 32 KiB")
    assert rounds >= 3, f"only {rounds} compaction rounds in 30 s"
    time.sleep(SETTLE)
    b = ctx.restart(b, "kill", *args)
    for i in range(n):
        s, sp = mpersistent(ctx, b.port, f"mv-{i}", 5 if i % 2 == 0 else 4)
        assert sp == 1, f"mv-{i}: present 0 after kill -9"
        s.wait_for(20)
        got = s.take(QUIET)
        assert got == [(f"m19/{i}", body("m19", j), 1) for j in range(20)], \
            f"mv-{i}: after moves through compactions and kill -9: " \
            f"{[g[1][:8] for g in got]}"
        s.bye()


def last_message_record(jdir, topic):
    """(path, offset, total bytes) of the last message record (REC_MSG 5 or
    REC_MSG_IN 13) in the journal's segments that holds topic: framing
    per core/persist/README.md (a 40-byte header, then records of u32
    length, u32 checksum, u8 type, ... taking 8 + length bytes)."""
    found = None
    for name in sorted(os.listdir(jdir)):
        if not name.endswith(".log"):
            continue
        path = os.path.join(jdir, name)
        with open(path, "rb") as f:
            data = f.read()
        at = 40
        while at + 9 <= len(data):
            length = int.from_bytes(data[at:at + 4], "big")
            if length < 17 or at + 8 + length > len(data):
                break
            if data[at + 8] in (5, 13) and topic in data[at:at + 8 + length]:
                found = (path, at, 8 + length)
            at += 8 + length
    assert found, f"no message record of {topic!r} in {os.listdir(jdir)}"
    return found


@test
def m20_a_torn_tail_never_keeps_an_inbound_id_without_its_message(ctx):
    """A persistent publisher's QoS 2 message to an offline persistent
    subscriber; the PUBREC is taken as lost (the publisher sends the
    PUBLISH again, DUP, after the restart). kill -9, and the journal's tail
    cut in the middle of the message's record: the node keeps neither the
    message nor the inbound id, so the resend is routed: the subscriber
    gets it once. (When the id was a record of its own before the
    message's, this cut kept the id alone: the resend was PUBRECed and not
    routed, the message lost.) The same without a cut: the message comes
    back from the journal and the resend is not routed again: once."""
    for cut, topic, payload, pid in ((True, "m20/torn", b"cut", 9),
                                     (False, "m20/whole", b"kept", 10)):
        b = ctx.node()
        s, _ = mpersistent(ctx, b.port, "m20-sub", 5, first=cut)
        s.sub(("m20/#", 2))
        s.bye()
        pub, _ = mpersistent(ctx, b.port, "m20-pub", 4, first=cut)
        pub.send(publish(4, topic, payload, qos=2, pid=pid))
        assert pub.expect(PUBREC).pid == pid
        time.sleep(SETTLE)
        ctx.kill(b)
        if cut:
            path, at, total = last_message_record(os.path.join(ctx.data, "journal"),
                                                  topic.encode())
            with open(path, "r+b") as f:
                f.truncate(at + total // 2)
        b = ctx.node()
        line = recovered_line(b)
        pub, sp = mpersistent(ctx, b.port, "m20-pub", 4)
        assert sp == 1
        pub.send(publish(4, topic, payload, qos=2, pid=pid, dup=True))
        assert pub.expect(PUBREC).pid == pid
        pub.send(ack(PUBREL, pid))
        assert pub.expect(PUBCOMP).pid == pid
        s, sp = mpersistent(ctx, b.port, "m20-sub", 5)
        assert sp == 1
        s.wait_for(1)
        got = s.take(QUIET)
        assert got == [(topic, payload, 2)], \
            f"cut {cut}: the subscriber got {got} ({line})"
        s.bye()
        pub.bye()
        ctx.stop(b)


def main():
    a = tap.parse_args()
    print("TAP version 13")
    todo = [(t.__name__, t) for t in TESTS if a.only in t.__name__]
    tap.finish(*tap.run(todo, lambda: Ctx(a.binary, a.workers), tail=12))


if __name__ == "__main__":
    main()
