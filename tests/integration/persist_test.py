#!/usr/bin/python3
"""Persistence with the real binary (core/persist/): what the broker
acknowledged survives kill -9 (persistence_sync=write and fsync), a restart
with another worker count, a torn journal tail, a full disk and an
unwritable data_dir. Raw MQTT clients (mqttraw.py) and Debian's
mosquitto_pub/_sub. Prints TAP.

The journal keeps retained messages and persistent sessions with their
subscriptions (persist_sessions_test.py); the sessions' queued messages come
next (core/persist/README.md).

usage: persist_test.py STARLING_BINARY [--workers N] [--only SUBSTRING]
"""
import os
import random
import re
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tap  # noqa: E402
from broker import Broker  # noqa: E402
from mqttraw import *  # noqa: E402,F403

TESTS = []
KILL_ROUNDS = 20  # per sync mode (the minimum)


def test(fn):
    TESTS.append(fn)
    return fn


class Ctx(tap.BrokerCtx):
    def __init__(self, binary, workers):
        super().__init__(binary, workers, "starling-persist-")
        self.data = os.path.join(self.dir, "data")

    def node(self, *args, workers=None, sync="write", env=None, prefix=()):
        """A broker with persistence on in this test's data dir."""
        b = Broker(self.binary, workers or self.workers,
                   ["--persistence=true", f"--data-dir={self.data}",
                    f"--persistence-sync={sync}", *args],
                   env_extra=env, log_level="info", prefix=prefix)
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


def retained_set(port, flt="#", wait=1.0, v=4):
    """topic -> payload of every retained message a new subscriber gets."""
    c = Client(port, v)
    c.connect(f"reader-{random.random()}")
    c.send(subscribe(v, 1, [(flt, 1)]))
    c.expect(SUBACK)
    got = {}
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            p = c.recv(max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        if p.type == PUBLISH:
            assert p.retain, p
            topic = p.topic.decode()
            if topic.startswith("$SYS"):
                continue
            got[topic] = p.payload
            if p.qos:
                c.send(ack(PUBACK, p.pid))
    c.close()
    return got


def metric(b, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{b.metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    seen = False
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
            seen = True
    assert seen, f"{name} not in /metrics"
    return total


def wait_metric(b, name, pred, timeout=5.0):
    """The metric once pred holds (counters are published every few 100 ms)."""
    deadline = time.monotonic() + timeout
    while True:
        v = metric(b, name)
        if pred(v) or time.monotonic() > deadline:
            assert pred(v), f"{name} = {v}"
            return v
        time.sleep(0.05)


def readyz(b):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{b.metrics_port}/readyz", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@test
def p01_retained_messages_survive_kill9(ctx):
    b = ctx.node()
    want = {}
    c = Client(b.port, 5)
    c.connect("setter")
    pid = 0
    for i in range(40):
        pid += 1
        topic = f"site/{i % 7}/dev{i}"
        body = f"value-{i}".encode()
        # 5.0 properties go with it: a user property and a long expiry
        c.send(publish(5, topic, body, qos=1 + i % 2, pid=pid, retain=True,
                       p=[(0x26, ("k", f"v{i}")), (0x02, 3600)]))
        p = c.recv()
        assert p.type in (PUBACK, PUBREC) and p.rc == 0, p
        if p.type == PUBREC:
            c.send(ack(PUBREL, pid))
            c.expect(PUBCOMP)
        want[topic] = body
    for i in range(0, 40, 5):  # deletes
        pid += 1
        topic = f"site/{i % 7}/dev{i}"
        c.send(publish(5, topic, b"", qos=1, pid=pid, retain=True))
        assert c.expect(PUBACK).rc == 0
        del want[topic]
    # mosquitto_pub at QoS 0 and 1: nobody here wrote it
    for q in (0, 1):
        subprocess.run(["mosquitto_pub", "-p", str(b.port), "-t", f"mq/{q}", "-m", f"m{q}",
                        "-r", "-q", str(q)], check=True, timeout=10)
        want[f"mq/{q}"] = f"m{q}".encode()
    time.sleep(0.1)  # QoS 0 has no acknowledgement to wait for
    ctx.kill(b)

    b = ctx.node()
    log = b.text().decode()
    m = re.search(r"recovered from \S+ in \d+ ms: .*?(\d+) retained messages", log)
    assert m and int(m.group(1)) == len(want), log[-1500:]
    got = retained_set(b.port)
    assert got == want, (sorted(set(got) ^ set(want)), len(got), len(want))
    # The user property and the expiry came back with the message.
    r = Client(b.port, 5)
    r.connect("prop-reader")
    r.send(subscribe(5, 1, [("site/1/dev1", 0)]))
    r.expect(SUBACK)
    p = r.expect(PUBLISH)
    assert p.prop(0x26) == (b"k", b"v1"), p.props
    assert 3500 <= p.prop(0x02) <= 3600, p.props
    wait_metric(b, "starling_persistence_recovered{kind=\"retained\"}", lambda v: v == len(want))
    r.close()
    c.close()


def kill_rounds(ctx, sync):
    """Rounds of: a QoS 1 publisher streams retained values to 20 topics,
    kill -9 at a random moment, restart. Each topic's value after the
    restart must be the last one acknowledged or one sent after it."""
    rng = random.Random(f"persist-{sync}-{ctx.workers}")
    acked = {}     # topic -> index of the last acknowledged value
    sent = {}      # topic -> indexes sent since (maybe journaled, maybe not)
    total_acked = 0
    lost = 0
    b = ctx.node(sync=sync)
    seq = 0
    for rnd in range(KILL_ROUNDS):
        c = Client(b.port, 4)
        c.connect(f"streamer-{rnd}")
        inflight = {}
        deadline = time.monotonic() + rng.uniform(0.05, 0.25)
        pid = 0
        # up to 20 in flight, then one ack per publish
        while time.monotonic() < deadline:
            pid = pid % 65535 + 1
            seq += 1
            topic = f"k/{seq % 20}"
            c.send(publish(4, topic, str(seq).encode(), qos=1, pid=pid, retain=True))
            inflight[pid] = (topic, seq)
            sent.setdefault(topic, set()).add(seq)
            if len(inflight) >= 20:
                p = c.expect(PUBACK)
                t, s = inflight.pop(p.pid)
                if s > acked.get(t, 0):
                    acked[t] = s
                total_acked += 1
        # kill with acknowledgements possibly on the wire
        ctx.kill(b)
        try:
            while True:
                p = c.recv(0.2)
                if p.type == PUBACK and p.pid in inflight:
                    t, s = inflight.pop(p.pid)
                    if s > acked.get(t, 0):
                        acked[t] = s
                    total_acked += 1
        except (TimeoutError, ConnectionError, OSError):
            pass
        c.close()
        b = ctx.node(sync=sync)
        got = retained_set(b.port, "k/#", wait=0.5)
        for t, s in acked.items():
            v = int(got[t]) if t in got else 0
            ok = v == s or (v > s and v in sent[t])
            if not ok:
                lost += 1
                tap.comment(f"round {rnd}: {t} acknowledged {s}, after restart {v or 'nothing'}")
        # the recovered value is the baseline of the next round
        for t in list(sent):
            if t in got:
                acked[t] = int(got[t])
                sent[t] = {int(got[t])}
    tap.comment(f"sync={sync}: {KILL_ROUNDS} kill -9 rounds, {total_acked} retained QoS 1 "
                f"acknowledged, {lost} acknowledged values lost")
    return b, lost


@test
def p02_kill9_rounds_write(ctx):
    b, lost = kill_rounds(ctx, "write")
    assert lost == 0


@test
def p03_kill9_rounds_fsync(ctx):
    b, lost = kill_rounds(ctx, "fsync")
    assert lost == 0
    c = Client(b.port, 4)
    c.connect("last")
    c.send(publish(4, "k/last", b"1", qos=1, pid=1, retain=True))
    c.expect(PUBACK)
    c.close()
    wait_metric(b, "starling_journal_fsyncs_total", lambda v: v >= 1)


@test
def p03b_kill9_rounds_none(ctx):
    """none acknowledges before the write: what a kill -9 loses is reported,
    not asserted (the promise is "the last persistence_fsync_max_ms")."""
    b, lost = kill_rounds(ctx, "none")
    tap.comment(f"sync=none lost {lost} acknowledged values in {KILL_ROUNDS} kills")


@test
def p04_restart_with_fewer_and_more_workers(ctx):
    b = ctx.node(workers=4)
    c = Client(b.port, 4)
    c.connect("w4")
    want = {}
    for i in range(60):
        c.send(publish(4, f"w/{i}", f"x{i}".encode(), qos=1, pid=i + 1, retain=True))
        c.expect(PUBACK)
        want[f"w/{i}"] = f"x{i}".encode()
    c.close()
    ctx.kill(b)
    for workers in (1, 3):
        b = ctx.node(workers=workers)
        got = retained_set(b.port, "w/#")
        assert got == want, (workers, sorted(set(got) ^ set(want)))
        # one more write on this worker count, then a clean stop
        c = Client(b.port, 4)
        c.connect(f"w{workers}")
        c.send(publish(4, f"w/extra{workers}", b"e", qos=1, pid=1, retain=True))
        c.expect(PUBACK)
        want[f"w/extra{workers}"] = b"e"
        c.close()
        assert b.stop() == 0
        ctx.brokers.remove(b)
        b.cleanup()
    b = ctx.node(workers=2)
    assert retained_set(b.port, "w/#") == want


@test
def p05_torn_and_damaged_tails_are_cut(ctx):
    b = ctx.node(workers=1)
    c = Client(b.port, 4)
    c.connect("t")
    for i in range(10):
        c.send(publish(4, f"t/{i}", b"y" * 100, qos=1, pid=i + 1, retain=True))
        c.expect(PUBACK)
    c.close()
    ctx.kill(b)
    jdir = os.path.join(ctx.data, "journal")
    (name,) = [n for n in os.listdir(jdir) if n.startswith("w000-")]
    path = os.path.join(jdir, name)
    size = os.path.getsize(path)
    # A torn last record: 30 bytes of it are gone.
    with open(path, "r+b") as f:
        f.truncate(size - 30)
    b = ctx.node(workers=1)
    log = b.text().decode()
    assert re.search(r"torn tail at byte \d+ of %d: cut there \(9 good records" % (size - 30),
                     log), log[-1500:]
    got = retained_set(b.port, "t/#")
    assert sorted(got) == [f"t/{i}" for i in range(9)], sorted(got)
    # The start's compaction put the 9 into a snapshot and removed the rest.
    deadline = time.monotonic() + 5
    while "compaction" not in b.text().decode() and time.monotonic() < deadline:
        time.sleep(0.05)
    ctx.kill(b)
    (snap,) = [n for n in os.listdir(jdir) if n.endswith(".snap")]
    path = os.path.join(jdir, snap)
    # A flipped bit in the middle of the snapshot: cut from there.
    with open(path, "r+b") as f:
        f.seek(40 + 3 * 150)
        x = f.read(1)
        f.seek(40 + 3 * 150)
        f.write(bytes([x[0] ^ 0x10]))
    b = ctx.node(workers=1)
    log = b.text().decode()
    assert "damaged record at byte" in log, log[-1500:]
    got = retained_set(b.port, "t/#")
    assert 0 < len(got) < 9, sorted(got)
    assert readyz(b) == 200


@test
def p06_unusable_data_dir_is_one_clear_line(ctx):
    f = ctx.file("plainfile", "x")
    r = subprocess.run([ctx.binary, "--listen=127.0.0.1:0", "--metrics=false",
                        "--persistence=true", f"--data-dir={f}/sub"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0, r.stderr
    assert f"cannot create {f}/sub" in r.stderr and "Not a directory" in r.stderr, r.stderr
    r = subprocess.run([ctx.binary, "--listen=127.0.0.1:0", "--metrics=false",
                        "--persistence=true", f"--data-dir={f}"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and f"{f}: not a directory" in r.stderr, r.stderr
    r = subprocess.run([ctx.binary, "--check-config", "/dev/null", "--persistence-sync=always"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "persistence_sync" in r.stderr, r.stderr


def small_disk_broker(ctx, name="small"):
    """A broker (one worker: the disk is full for every worker, but only one
    that wrote knows it; with one the test knows which) whose data_dir,
    DIR/data, is on a 1 MiB tmpfs in its own mount namespace, 900 KiB of it
    taken by DIR/filler (free space with os.unlink of
    /proc/PID/root/DIR/filler). Returns (broker, DIR)."""
    d = os.path.join(ctx.dir, name)
    os.makedirs(d)
    shell = (f"mount -t tmpfs -o size=1m tmpfs {d} && "
             f"dd if=/dev/zero of={d}/filler bs=1k count=900 status=none && exec \"$@\"")
    b = Broker(ctx.binary, 1,
               ["--persistence=true", f"--data-dir={d}/data", "--persistence-sync=write"],
               log_level="info", prefix=("unshare", "-m", "sh", "-c", shell, "sh"))
    ctx.brokers.append(b)
    return b, d


def fill_until_held(c, topic, retain=False):
    """QoS 1 publishes of 4000 bytes to topic(i) from the 5.0 client c, each
    acknowledged, until one's PUBACK does not come (the write that hit the
    full disk holds it until it succeeds): its packet id."""
    for pid in range(1, 401):
        c.send(publish(5, topic(pid), b"z" * 4000, qos=1, pid=pid, retain=retain))
        try:
            p = c.expect(PUBACK, timeout=2)
        except TimeoutError:
            return pid
        assert p.rc == 0, p.rc
    raise AssertionError("the disk never filled")


@test
def p07_disk_full_refuses_and_recovers(ctx):
    """A 1 MiB tmpfs in the broker's own mount namespace, mostly filled:
    retained writes fail, 5.0 gets 0x97, /readyz says 503, and once space
    is freed (through /proc/PID/root) it writes again."""
    b, d = small_disk_broker(ctx)
    c = Client(b.port, 5)
    c.connect("filler")
    stuck = fill_until_held(c, lambda i: f"big/{i}", retain=True)
    pid = stuck
    deadline = time.monotonic() + 5
    while readyz(b) != 503 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert readyz(b) == 503
    log = b.text().decode()
    assert re.search(r"journal \S+: write of \d+ bytes at offset \d+ failed: No space left", log), \
        log[-1500:]
    # Another client: new retained work is refused at once (5.0: 0x97), and
    # its other traffic is not held (nothing of it waits for the journal).
    o = Client(b.port, 5)
    o.connect("other")
    o.send(publish(5, "big/refused", b"r", qos=1, pid=7, retain=True))
    assert o.expect(PUBACK).rc == 0x97
    o.send(subscribe(5, 1, [("plain/#", 1)]))
    o.expect(SUBACK)
    o.send(publish(5, "plain/x", b"not retained", qos=1, pid=8))
    got = {o.recv().type, o.recv().type}
    assert got == {PUBACK, PUBLISH}, got
    o.close()
    wait_metric(b, "starling_journal_errors_total", lambda v: v >= 1)
    wait_metric(b, "starling_journal_refused_total", lambda v: v >= 1)
    os.unlink(f"/proc/{b.proc.pid}/root{d}/filler")
    # The held acknowledgement comes, as success: its record is on disk now.
    p = c.expect(PUBACK, timeout=5)
    assert p.pid == stuck and p.rc == 0, (p.pid, stuck, p.rc)
    deadline = time.monotonic() + 5
    while readyz(b) != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert readyz(b) == 200, "still not ready after space came back"
    assert "writing again" in b.text().decode()
    pid += 1
    c.send(publish(5, "after", b"ok", qos=1, pid=pid, retain=True))
    p = c.expect(PUBACK, timeout=5)
    assert p.pid == pid and p.rc == 0
    c.close()


@test
def p08_fsync_acknowledgement_waits_for_the_flush(ctx):
    """With a test-hook build (SLTEST_FSYNC_DELAY_MS) the flush of each
    group is submitted 400 ms after its write: a PUBACK must not come
    sooner. Without the hooks, the same test shows the hook is absent."""
    env = {"SLTEST_FSYNC_DELAY_MS": "400"}
    b = ctx.node(sync="fsync", env=env)
    if "test hook: every journal flush is delayed" not in b.text().decode():
        tap.comment("not a -Dtest_hooks build: the delayed flush is checked in tests/run.sh's "
                    "test-hook build")
        # still: fsync mode acknowledges, and counts its flushes
        c = Client(b.port, 4)
        c.connect("f")
        c.send(publish(4, "f/1", b"1", qos=1, pid=1, retain=True))
        c.expect(PUBACK)
        wait_metric(b, "starling_journal_fsyncs_total", lambda v: v >= 1)
        c.close()
        return
    c = Client(b.port, 4)
    c.connect("f")
    for i in range(3):
        t0 = time.monotonic()
        c.send(publish(4, f"f/{i}", b"1", qos=1, pid=i + 1, retain=True))
        c.expect(PUBACK, timeout=5)
        took = time.monotonic() - t0
        assert took >= 0.39, f"PUBACK after {took:.3f} s, before the flush"
    # a write-mode node with the same hook is not slowed (the hook is the flush)
    c.close()
    assert b.stop() == 0
    ctx.brokers.remove(b)
    b.cleanup()
    b = ctx.node(sync="write", env=env)
    c = Client(b.port, 4)
    c.connect("w")
    t0 = time.monotonic()
    c.send(publish(4, "w/1", b"1", qos=1, pid=1, retain=True))
    c.expect(PUBACK)
    assert time.monotonic() - t0 < 0.39
    c.close()


@test
def p09_compaction_bounds_the_journal_across_kills(ctx):
    """persistence_compact_bytes at its minimum (1 MiB): 6,000 retained
    writes of 1 KiB to 100 topics, kill -9 twice on the way (once likely in
    the middle of a round): the directory stays small, and every topic
    holds its last acknowledged value."""
    args = ["--persistence-compact-bytes=1048576"]
    b = ctx.node(*args)
    last = {}
    seq = 0
    for part in range(3):
        c = Client(b.port, 4)
        c.connect(f"comp-{part}")
        for i in range(2000):
            seq += 1
            topic = f"c/{seq % 100}"
            c.send(publish(4, topic, str(seq).encode() + b"." * 1000, qos=1,
                           pid=i % 60000 + 1, retain=True))
            c.expect(PUBACK)
            last[topic] = seq
        c.close()
        if part < 2:
            ctx.kill(b)
            b = ctx.node(*args)
    deadline = time.monotonic() + 5
    while metric(b, "starling_journal_compactions_total") < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    log = b.text().decode()
    assert re.search(r"compaction \d+: snapshots of \d+ records by \d+ workers; \d+ older "
                     r"files removed", log), log[-1500:]
    got = retained_set(b.port, "c/#")
    assert {t: int(v.split(b".")[0]) for t, v in got.items()} == last
    jdir = os.path.join(ctx.data, "journal")
    total = sum(os.path.getsize(os.path.join(jdir, n)) for n in os.listdir(jdir))
    # 6 MB written; the live state is 100 KB: what is left is the live
    # state and at most a round's worth (1 MiB) plus one more in flight.
    assert total < 3 * 1048576, (total, sorted(os.listdir(jdir)))
    tap.comment(f"6000 retained writes of 1 KiB, 2 kills: journal directory {total} bytes "
                f"({len(os.listdir(jdir))} files)")


@test
def p10_backup_export_import_and_the_lock(ctx):
    """While a publisher streams retained QoS 1 writes (compaction at its
    minimum, so rounds run under the copies): three backups, each of which
    a node starts on and finds every value acknowledged before the backup
    began (or a later one); an export imported into an empty data_dir gives
    the same retained set, 5.0 properties included; a second node and an
    import are refused while the node holds data_dir."""
    import threading
    b = ctx.node("--persistence-compact-bytes=1048576")
    acked = {}
    stop = threading.Event()

    def stream():
        c = Client(b.port, 4)
        c.connect("streamer")
        seq = 0
        while not stop.is_set():
            seq += 1
            topic = f"s/{seq % 200}"
            c.send(publish(4, topic, str(seq).encode() + b"-" * 500, qos=1,
                           pid=seq % 60000 + 1, retain=True))
            c.expect(PUBACK)
            acked[topic] = seq
        c.close()

    p5 = Client(b.port, 5)
    p5.connect("props")
    p5.send(publish(5, "s/props", b'quote " and \\ and \x01', qos=1, pid=1, retain=True,
                    p=[(0x26, ("k", "v")), (0x03, "text/plain")]))
    assert p5.expect(PUBACK).rc == 0
    p5.close()
    t = threading.Thread(target=stream)
    t.start()
    try:
        time.sleep(0.5)
        backups = []
        for i in range(3):
            before = dict(acked)
            d = os.path.join(ctx.dir, f"backup{i}")
            r = subprocess.run([ctx.binary, "backup", d, f"--data-dir={ctx.data}"],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            assert re.search(r"backup of \S+ in \S+: \d+ files, \d+ bytes; it holds \d+ "
                             r"retained", r.stdout), r.stdout
            backups.append((d, before))
            time.sleep(0.3)
        exp = os.path.join(ctx.dir, "state.jsonl")
        r = subprocess.run([ctx.binary, "export", exp, f"--data-dir={ctx.data}"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "retained messages from" in r.stderr, r.stderr
        # One node per data_dir, and no import under a running node.
        r = subprocess.run([ctx.binary, "--listen=127.0.0.1:0", "--metrics=false",
                            "--persistence=true", f"--data-dir={ctx.data}"],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode != 0 and "is in use by another starling (pid" in r.stderr, r.stderr
        r = subprocess.run([ctx.binary, "import", exp, f"--data-dir={ctx.data}"],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode != 0 and "stop the node first" in r.stderr, r.stderr
    finally:
        stop.set()
        t.join()
    log = b.text().decode()
    rounds = len(re.findall(r"compaction \d+: snapshots", log))
    for d, before in backups:
        n = Broker(ctx.binary, 2, ["--persistence=true", f"--data-dir={d}"], log_level="info")
        ctx.brokers.append(n)
        got = retained_set(n.port, "s/#", wait=0.8)
        for topic, seq in before.items():
            assert topic in got, (d, topic)
            assert int(got[topic].split(b"-")[0]) >= seq, (d, topic, got[topic][:10], seq)
        assert n.stop() == 0
        ctx.brokers.remove(n)
        n.cleanup()
    # The export into a new data_dir: the same set.
    with open(exp) as f:
        lines = f.read().splitlines()
    assert lines[0].startswith('{"format":"starling-export","version":1,'), lines[0]
    fresh = os.path.join(ctx.dir, "fresh")
    r = subprocess.run([ctx.binary, "import", exp, f"--data-dir={fresh}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and f"{len(lines) - 1} retained messages" in r.stderr, r.stderr
    n = Broker(ctx.binary, 1, ["--persistence=true", f"--data-dir={fresh}"], log_level="info")
    ctx.brokers.append(n)
    got = retained_set(n.port, "s/#", wait=0.8)
    assert len(got) == len(lines) - 1, (len(got), len(lines))
    c = Client(n.port, 5)
    c.connect("check")
    c.send(subscribe(5, 1, [("s/props", 0)]))
    c.expect(SUBACK)
    p = c.expect(PUBLISH)
    assert p.payload == b'quote " and \\ and \x01', p.payload
    assert p.prop(0x26) == (b"k", b"v") and p.prop(0x03) == b"text/plain", p.props
    c.close()
    # A damaged export is refused with the line that is wrong.
    bad = os.path.join(ctx.dir, "bad.jsonl")
    with open(bad, "w") as f:
        f.write(lines[0] + "\n" + '{"kind":"retained","topic":"x","protocol":4,"qos":1,'
                '"body":"!!notbase64"}\n')
    r = subprocess.run([ctx.binary, "import", bad, f"--data-dir={os.path.join(ctx.dir, 'b2')}"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "bad.jsonl:2:" in r.stderr, r.stderr
    tap.comment(f"3 backups and an export while streaming, {rounds} compaction rounds under them")


def main():
    a = tap.parse_args()
    print("TAP version 13")
    todo = [(t.__name__, t) for t in TESTS if a.only in t.__name__]
    tap.finish(*tap.run(todo, lambda: Ctx(a.binary, a.workers), tail=12))


if __name__ == "__main__":
    main()
