#!/usr/bin/python3
"""Interop tests: Starling against real MQTT clients nobody here wrote.

Debian's mosquitto_pub / mosquitto_sub (2.0) and python3-paho-mqtt (1.6 API)
talk to the real broker on an ephemeral loopback port. Every wait has a
timeout, every test has a watchdog, and the broker and every client process
are stopped even when a test fails.

Usage: interop_test.py PATH/TO/starling [--workers N]. Prints TAP.
"""
import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from broker import Broker  # noqa: E402

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

ap = argparse.ArgumentParser()
ap.add_argument("starling")
ap.add_argument("--workers", type=int, default=1)
ARGS = ap.parse_args()

TEST_TIMEOUT_S = 45      # watchdog for one whole test
WAIT_S = 10              # one wait for a packet or message
QUIET_S = 1.0            # how long "nothing more arrives" is watched
RUN = uuid.uuid4().hex[:8]  # topics and client ids unique to this run
V311, V5 = mqtt.MQTTv311, mqtt.MQTTv5
PROTO_NAME = {V311: "3.1.1", V5: "5"}


class TestFailure(Exception):
    pass


class Watchdog(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


# ---------------------------------------------------------------- the broker

class BrokerRun:
    """The broker of this run (tests/integration/broker.py), restarted if a
    test kills it so the remaining tests still report."""

    def __init__(self, workers):
        self.workers = workers
        self.b = None

    def start(self):
        self.b = Broker(ARGS.starling, self.workers)
        self.port = self.b.port

    def alive(self):
        return self.b is not None and self.b.proc.poll() is None

    def exit_code(self):
        return self.b.proc.poll()

    def log_text(self):
        return self.b.text().decode(errors="replace")

    def stop(self):
        """SIGTERM; returns the exit code (None if it had to be killed)."""
        return self.b.stop() if self.b is not None else None

    def kill(self):
        if self.alive():
            self.b.proc.kill()
            self.b.proc.wait(5)


broker = BrokerRun(ARGS.workers)


# ---------------------------------------------------------- per-test cleanup

class Ctx:
    """What one test started; everything is stopped in close()."""

    def __init__(self):
        self.clients = []
        self.procs = []

    def close(self):
        for c in self.clients:
            c.close()
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass


ctx = None


def topic(name):
    return f"interop/{RUN}/{name}"


def cid(name):
    return f"interop-{RUN}-{name}"


# -------------------------------------------------------------- paho clients

class _Client(mqtt.Client):
    """paho 1.6.1 drops the reason code of a server DISCONNECT whose
    remaining length is 1 or 2 (it parses it only when > 2, i.e. with
    properties), although [MQTT-3.14.2] allows omitting the property length.
    Record the reason code from the packet itself before paho handles it."""

    server_disconnect_rc = None

    def _handle_disconnect(self):
        pkt = self._in_packet["packet"]
        self.server_disconnect_rc = pkt[0] if len(pkt) >= 1 else 0x00
        return super()._handle_disconnect()


class Paho:
    """A paho client on its own network thread, recording what it sees."""

    def __init__(self, name, proto=V5, clean=True, expiry=None, will=None,
                 client_id=None):
        self.name = name
        self.proto = proto
        self.clean = clean
        self.expiry = expiry
        self.cond = threading.Condition()
        self.msgs = []            # paho MQTTMessage, in arrival order
        self.connacks = []        # (session_present, reason code int)
        self.disconnects = []     # reason code int
        self.subacks = {}         # mid -> list of granted QoS / reason code ints
        self.published = set()    # mids acknowledged (PUBACK / PUBCOMP / sent for QoS 0)
        self.cid = client_id if client_id is not None else cid(name)
        kw = {"client_id": self.cid, "protocol": proto, "reconnect_on_failure": False}
        if proto != V5:
            kw["clean_session"] = clean
        self.c = _Client(**kw)
        # paho 1.6 sends a new QoS 1/2 message at once whenever its in-flight
        # count is under the limit, even while older ones wait in its own
        # queue (publish() vs the network thread's ack handling): it then
        # reorders on its own. Tests send at most a few hundred messages, so
        # a limit above that (and under the broker's receive maximum of 1024)
        # means paho never queues.
        self.c.max_inflight_messages_set(1000)
        if will is not None:
            wtopic, wpayload, wqos = will
            self.c.will_set(wtopic, wpayload, wqos, False)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_publish = self._on_publish
        self.threaded = False
        ctx.clients.append(self)

    # callbacks (network thread)
    def _on_connect(self, c, u, flags, rc, props=None):
        with self.cond:
            self.connacks.append((int(flags["session present"]), rc_int(rc)))
            self.cond.notify_all()

    def _on_disconnect(self, c, u, rc, props=None):
        with self.cond:
            self.disconnects.append(rc_int(rc))
            self.cond.notify_all()

    def _on_message(self, c, u, msg):
        with self.cond:
            self.msgs.append(msg)
            self.cond.notify_all()

    def _on_subscribe(self, c, u, mid, granted, props=None):
        with self.cond:
            self.subacks[mid] = [rc_int(g) for g in granted]
            self.cond.notify_all()

    def _on_publish(self, c, u, mid):
        with self.cond:
            self.published.add(mid)
            self.cond.notify_all()

    def wait(self, pred, what, timeout=WAIT_S):
        deadline = time.time() + timeout
        with self.cond:
            while not pred():
                left = deadline - time.time()
                if left <= 0:
                    raise TestFailure(f"{self.name}: timed out after {timeout}s waiting for {what}")
                self.cond.wait(left)

    def connect(self, threaded=True, expect_rc=0):
        kw = {}
        if self.proto == V5:
            kw["clean_start"] = self.clean
            if self.expiry is not None:
                p = Properties(PacketTypes.CONNECT)
                p.SessionExpiryInterval = self.expiry
                kw["properties"] = p
        self.c.connect("127.0.0.1", broker.port, keepalive=30, **kw)
        if threaded:
            self.threaded = True
            self.c.loop_start()
            self.wait(lambda: self.connacks, "CONNACK")
        else:
            deadline = time.time() + WAIT_S
            while not self.connacks and time.time() < deadline:
                self.c.loop(0.1)
            check(self.connacks, f"{self.name}: no CONNACK within {WAIT_S}s")
        sp, rc = self.connacks[-1]
        check(rc == expect_rc, f"{self.name}: CONNACK reason {rc:#x}, expected {expect_rc:#x}")
        return sp

    def subscribe(self, filt, qos=0, options=None, props=None):
        if options is not None:
            rc, mid = self.c.subscribe(filt, options=options, properties=props)
        else:
            rc, mid = self.c.subscribe(filt, qos, properties=props)
        check(rc == mqtt.MQTT_ERR_SUCCESS, f"{self.name}: subscribe({filt}) returned {rc}")
        self.wait(lambda: mid in self.subacks, f"SUBACK for {filt}")
        return self.subacks[mid]

    def publish(self, t, payload, qos=0, retain=False, props=None, wait=True):
        info = self.c.publish(t, payload, qos, retain, properties=props)
        check(info.rc == mqtt.MQTT_ERR_SUCCESS, f"{self.name}: publish returned {info.rc}")
        if wait:
            self.wait(lambda: info.mid in self.published, f"ack of publish mid {info.mid}")
        return info.mid

    def wait_msgs(self, n, timeout=WAIT_S):
        self.wait(lambda: len(self.msgs) >= n, f"{n} messages (have {len(self.msgs)})", timeout)

    def quiet(self, n, secs=QUIET_S):
        """Wait secs and assert no more than n messages arrived in total."""
        time.sleep(secs)
        with self.cond:
            check(len(self.msgs) == n, f"{self.name}: {len(self.msgs)} messages, expected exactly {n}: "
                  + describe(self.msgs[n:n + 5]))

    def disconnect(self, props=None, reasoncode=None):
        self.c.disconnect(reasoncode=reasoncode, properties=props)
        if self.threaded:
            self.wait(lambda: self.disconnects, "own DISCONNECT to complete")
            self.c.loop_stop()
            self.threaded = False

    def drop(self):
        """Kill the TCP connection without DISCONNECT (network failure)."""
        check(not self.threaded, "drop() needs a client without network thread")
        self.c._sock.close()

    def close(self):
        try:
            if self.threaded:
                self.c.disconnect()
                self.c.loop_stop()
            elif self.c._sock is not None:
                self.c._sock.close()
        except Exception:
            pass


def rc_int(rc):
    return rc.value if hasattr(rc, "value") else int(rc)


def describe(msgs):
    return ", ".join(f"({m.topic} {m.payload[:40]!r} q{m.qos} r{int(m.retain)})" for m in msgs)


def payloads(msgs):
    return [m.payload for m in msgs]


# ---------------------------------------------------------- mosquitto clients

def mosq(args, timeout=15, input_=None):
    """Run a mosquitto client to completion; returns (rc, stdout, stderr)."""
    p = subprocess.Popen(args, stdin=subprocess.PIPE if input_ else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ctx.procs.append(p)
    try:
        out, err = p.communicate(input_, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise TestFailure(f"{' '.join(args)} did not finish in {timeout}s; stdout={out[-300:]!r}")
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def pub(*args, timeout=15):
    cmd = ["mosquitto_pub", "-h", "localhost", "-p", str(broker.port)] + list(args)
    rc, out, err = mosq(cmd, timeout)
    check(rc == 0, f"{' '.join(cmd)} exited {rc}: {err.strip()}")


class Sub:
    """A background mosquitto_sub; lines of stdout are collected by a thread."""

    def __init__(self, *args):
        self.cmd = ["mosquitto_sub", "-h", "localhost", "-p", str(broker.port)] + list(args)
        # mosquitto_sub flushes each message but not its -d debug lines, and
        # "Subscribed (mid..." is how a test knows the SUBACK came: line-buffer.
        self.p = subprocess.Popen(["stdbuf", "-oL"] + self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        ctx.procs.append(self.p)
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
            self.lines.append(None)  # EOF
            self.cond.notify_all()

    def wait_line(self, pred, what, timeout=WAIT_S):
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for ln in self.lines:
                    if ln is not None and pred(ln):
                        return ln
                if None in self.lines:
                    raise TestFailure(f"mosquitto_sub exited (rc {self.p.poll()}) before {what}; "
                                      f"output {self.messages()!r}; stderr {self.p.stderr.read()[-300:]!r}")
                left = deadline - time.time()
                if left <= 0:
                    raise TestFailure(f"timed out waiting for {what}; mosquitto_sub printed {self.messages()!r}")
                self.cond.wait(left)

    def wait_subscribed(self):
        # with -d, mosquitto_sub prints "Subscribed (mid: 1): <granted>" after SUBACK
        return self.wait_line(lambda ln: ln.startswith("Subscribed (mid"), "SUBACK")

    def finish(self, timeout=WAIT_S + 5):
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"{' '.join(self.cmd)} did not exit in {timeout}s")
        self.t.join(5)
        return self.p.returncode

    def messages(self):
        """Lines that are not -d debug output."""
        return [ln for ln in self.lines if ln is not None and not ln.startswith("Client ")
                and not ln.startswith("Subscribed (mid")]


# -------------------------------------------------------------- the runner

TESTS = []


def test(name):
    def deco(fn):
        TESTS.append((name, fn))
        return fn
    return deco


def on_alarm(signum, frame):
    raise Watchdog(f"test exceeded its {TEST_TIMEOUT_S}s watchdog")


# ======================================================= mosquitto_pub / _sub

def quick_start(extra):
    # README quick start, verbatim except for -p PORT (and extra -V).
    t = "home/livingroom/temperature"
    s = Sub(*extra, "-t", t)
    # Verbatim mosquitto_sub prints nothing until a message arrives, so the
    # publish is repeated until the subscription is in place.
    deadline = time.time() + WAIT_S
    while time.time() < deadline:
        pub(*extra, "-t", t, "-m", "23.4")
        with s.cond:
            if s.lines:
                break
            s.cond.wait(0.3)
    first = s.wait_line(lambda ln: True, "the first message", timeout=1)
    check(first == "23.4", f"mosquitto_sub printed {first!r}, expected '23.4'")
    time.sleep(0.3)
    check(all(ln == "23.4" for ln in s.messages()), f"unexpected output {s.messages()!r}")


@test("mosquitto: README quick start (sub receives 23.4)")
def t_quick_start():
    quick_start([])


@test("mosquitto: quick start with -V mqttv5")
def t_quick_start_v5():
    quick_start(["-V", "mqttv5"])


@test("mosquitto: quick start with -V mqttv311")
def t_quick_start_v311():
    quick_start(["-V", "mqttv311"])


def mosq_qos(version, qos):
    t = topic(f"mosq/qos{qos}/{version}")
    s = Sub("-V", version, "-q", str(qos), "-t", t, "-C", "3", "-W", "10", "-d",
            "-F", "%t|%q|%r|%p")
    granted = s.wait_subscribed()
    check(granted == f"Subscribed (mid: 1): {qos}", f"SUBACK printed as {granted!r}, expected QoS {qos}")
    for i in range(3):
        pub("-V", version, "-q", str(qos), "-t", t, "-m", f"m{i}")
    rc = s.finish()
    check(rc == 0, f"mosquitto_sub exited {rc} (27 = -W timeout); got {s.messages()!r}")
    want = [f"{t}|{qos}|0|m{i}" for i in range(3)]
    check(s.messages() == want, f"got {s.messages()!r}, expected {want!r}")


for _v in ("mqttv311", "mqttv5"):
    for _q in (1, 2):
        test(f"mosquitto: -V {_v} -q {_q} pub/sub, 3 messages in order at QoS {_q}")(
            lambda v=_v, q=_q: mosq_qos(v, q))


@test("mosquitto: retained (-r) message reaches a later subscriber, with the retain flag")
def t_mosq_retained():
    t = topic("mosq/retained")
    pub("-t", t, "-m", "kept", "-r", "-q", "1")
    rc, out, err = mosq(["mosquitto_sub", "-h", "localhost", "-p", str(broker.port), "-t", t,
                         "-C", "1", "-W", "5", "-F", "%t|%r|%p"])
    check(rc == 0, f"mosquitto_sub exited {rc} (27 = -W timeout, no retained message), out={out!r}")
    check(out == f"{t}|1|kept\n", f"got {out!r}, expected retained 'kept' with retain flag 1")
    # and the v5 path: a wildcard subscription also matches the retained message
    rc, out, err = mosq(["mosquitto_sub", "-V", "mqttv5", "-h", "localhost", "-p", str(broker.port),
                         "-t", topic("mosq/+"), "-C", "1", "-W", "5", "-F", "%t|%r|%p"])
    check(out == f"{t}|1|kept\n", f"v5 wildcard got {out!r} (rc {rc}), expected the retained 'kept'")
    pub("-t", t, "-r", "-n")


@test("mosquitto: retained delete with -r -n; a later subscriber gets nothing")
def t_mosq_retained_delete():
    t = topic("mosq/retained-del")
    pub("-t", t, "-m", "old", "-r", "-q", "1")
    rc, out, err = mosq(["mosquitto_sub", "-h", "localhost", "-p", str(broker.port), "-t", t,
                         "-C", "1", "-W", "5"])
    check(out == "old\n", f"before delete: got {out!r} (rc {rc}), expected 'old'")
    pub("-t", t, "-r", "-n", "-q", "1")
    rc, out, err = mosq(["mosquitto_sub", "-h", "localhost", "-p", str(broker.port), "-t", t,
                         "-C", "1", "-W", "2", "-F", "%r|%p"])
    check(out == "", f"after -r -n a new subscriber still got {out!r}")
    check(rc == 27, f"mosquitto_sub -W 2 exited {rc}, expected 27 (timed out with nothing)")


@test("mosquitto: wildcards + and # match exactly the right topics")
def t_mosq_wildcards():
    base = topic("wild")
    s = Sub("-t", f"{base}/+/temp", "-t", f"{base}/house/#", "-C", "5", "-W", "10", "-d", "-v",
            "-q", "1")
    s.wait_line(lambda ln: ln.startswith("Subscribed (mid"), "SUBACK")
    miss = [f"{base}/a/b/temp", f"{base}/temp", f"{base}/a/humidity", f"{base}/houses/x",
            f"{base}/a/temp/x"]
    hit = [f"{base}/kitchen/temp", f"{base}/house", f"{base}/house/a/b/c", f"{base}//temp"]
    for t in miss:
        pub("-q", "1", "-t", t, "-m", "miss")
    for t in hit:
        pub("-q", "1", "-t", t, "-m", "hit")
    pub("-q", "1", "-t", f"{base}/house/zz-end", "-m", "end")
    rc = s.finish()
    got = sorted(s.messages())
    want = sorted([f"{t} hit" for t in hit] + [f"{base}/house/zz-end end"])
    check(got == want, f"got {got!r}, expected {want!r} (rc {rc})")


@test("mosquitto: a # subscriber does not get $foo/bar; an explicit $foo/# subscriber does")
def t_mosq_dollar():
    dollar = f"$interop{RUN}/bar"
    s_all = Sub("-t", "#", "-d", "-v", "-W", "10", "-q", "1")
    s_plus = Sub("-t", f"+/bar", "-d", "-v", "-W", "10", "-q", "1")
    s_dollar = Sub("-t", f"$interop{RUN}/#", "-d", "-v", "-W", "10", "-q", "1")
    for s in (s_all, s_plus, s_dollar):
        s.wait_subscribed()
    pub("-q", "1", "-t", dollar, "-m", "dollar")
    pub("-q", "1", "-t", topic("after-dollar"), "-m", "plain")
    s_dollar.wait_line(lambda ln: ln == f"{dollar} dollar", "the $ message on $.../#")
    s_all.wait_line(lambda ln: ln.startswith(topic("after-dollar")), "the plain message on #")
    time.sleep(0.3)
    bad = [ln for ln in s_all.messages() if ln.startswith("$")]
    check(not bad, f"'#' subscriber received {bad!r} [MQTT-4.7.2-1]")
    bad = [ln for ln in s_plus.messages() if ln.startswith("$")]
    check(not bad, f"'+/bar' subscriber received {bad!r} [MQTT-4.7.2-1]")


# ============================================================= paho clients

def pubsub(proto_a, proto_b, qos, n):
    """A and B each publish n messages to the other's topic at qos."""
    pa = PROTO_NAME[proto_a]
    pb = PROTO_NAME[proto_b]
    a = Paho(f"a{pa}q{qos}", proto_a)
    b = Paho(f"b{pb}q{qos}", proto_b)
    a.connect()
    b.connect()
    ta, tb = topic(f"paho/{pa}-{pb}/q{qos}/to-a"), topic(f"paho/{pa}-{pb}/q{qos}/to-b")
    ga = a.subscribe(ta, qos)
    gb = b.subscribe(tb, qos)
    check(ga == [qos] and gb == [qos], f"granted {ga} / {gb}, expected [{qos}]")
    for i in range(n):
        a.publish(tb, f"a{i}", qos, wait=False)
        b.publish(ta, f"b{i}", qos, wait=False)
    for c, src in ((a, "b"), (b, "a")):
        c.wait_msgs(n, timeout=20)
    for c in (a, b):
        c.quiet(n, 0.5)
    for c, src in ((a, "b"), (b, "a")):
        got = [m.payload.decode() for m in c.msgs]
        want = [f"{src}{i}" for i in range(n)]
        if got != want:
            dups = len(got) - len(set(got))
            raise TestFailure(f"{c.name}: {len(got)} messages, {dups} duplicates, first differences "
                              f"{[(i, g, w) for i, (g, w) in enumerate(zip(got, want)) if g != w][:5]}")
        bad = [m for m in c.msgs if m.qos != qos or m.retain]
        check(not bad, f"{c.name}: wrong QoS/retain on delivery: {describe(bad[:3])}")
    # every publish of ours was acknowledged (PUBACK / PUBCOMP)
    for c in (a, b):
        c.wait(lambda: len(c.published) >= n, f"acks of all {n} publishes")


for _p in (V311, V5):
    for _q in (0, 1, 2):
        test(f"paho {PROTO_NAME[_p]}: QoS {_q} both ways, 200 messages each, exactly once, in order")(
            lambda p=_p, q=_q: pubsub(p, p, q, 200))
test("paho 3.1.1 <-> paho 5: QoS 1 and 2 across protocol versions, 100 each way")(
    lambda: (pubsub(V311, V5, 1, 100), pubsub(V311, V5, 2, 100)))


def persistent_session(proto):
    pn = PROTO_NAME[proto]
    t = topic(f"persist/{pn}")
    id_ = cid(f"persist-{pn}")
    s = Paho(f"sub{pn}", proto, clean=True, expiry=300 if proto == V5 else None, client_id=id_)
    if proto == V311:
        # start from no session, then keep it
        s.connect()
        s.disconnect()
        s = Paho(f"sub{pn}", proto, clean=False, client_id=id_)
    sp = s.connect()
    check(sp == 0, f"first connect: session present {sp}, expected 0")
    check(s.subscribe(t, 1) == [1], "subscribe QoS 1 not granted")
    s.disconnect()
    p = Paho(f"pub{pn}", proto)
    p.connect()
    n = 50
    for i in range(n):
        p.publish(t, f"offline-{i}", 1, wait=False)
    p.wait(lambda: len(p.published) >= n, "PUBACKs")
    # reconnect: the session and the queued messages must be there
    s2 = Paho(f"sub{pn}-again", proto, clean=False, expiry=300 if proto == V5 else None,
              client_id=id_)
    sp = s2.connect()
    check(sp == 1, f"reconnect with clean {'session' if proto == V311 else 'start'}=0: "
          f"session present {sp}, expected 1")
    s2.wait_msgs(n)
    s2.quiet(n, 0.5)
    got = [m.payload.decode() for m in s2.msgs]
    check(got == [f"offline-{i}" for i in range(n)], f"queued messages {got[:10]}... not the {n} sent, in order")
    check(all(m.qos == 1 for m in s2.msgs), "queued messages not delivered at QoS 1")
    # the subscription itself survived too: a live message still arrives
    p.publish(t, "live", 1)
    s2.wait_msgs(n + 1)
    check(s2.msgs[n].payload == b"live", f"live message after resume: {describe(s2.msgs[n:])}")
    s2.disconnect()
    # end the session: clean start, then expiry 0 / clean session
    s3 = Paho(f"sub{pn}-end", proto, clean=True, expiry=0 if proto == V5 else None, client_id=id_)
    sp = s3.connect()
    check(sp == 0, f"clean connect after persistent session: session present {sp}, expected 0")
    s3.disconnect()


@test("paho 3.1.1: persistent session (clean_session=False) gets QoS 1 messages sent while offline")
def t_persist_311():
    persistent_session(V311)


@test("paho 5: persistent session (clean_start=False, session expiry 300) gets QoS 1 messages sent while offline")
def t_persist_5():
    persistent_session(V5)


def will_abnormal(proto):
    pn = PROTO_NAME[proto]
    wt = topic(f"will/abnormal/{pn}")
    w = Paho(f"watch{pn}", proto)
    w.connect()
    w.subscribe(wt, 1)
    d = Paho(f"dying{pn}", proto, will=(wt, f"gone-{pn}", 1))
    d.connect(threaded=False)
    d.drop()
    w.wait_msgs(1)
    w.quiet(1, 0.5)
    m = w.msgs[0]
    check(m.topic == wt and m.payload == f"gone-{pn}".encode() and m.qos == 1,
          f"will delivered as {describe([m])}")


@test("paho 3.1.1: will message delivered on abnormal disconnect (socket closed, no DISCONNECT)")
def t_will_311():
    will_abnormal(V311)


@test("paho 5: will message delivered on abnormal disconnect (socket closed, no DISCONNECT)")
def t_will_5():
    will_abnormal(V5)


def will_normal(proto):
    pn = PROTO_NAME[proto]
    wt = topic(f"will/normal/{pn}")
    w = Paho(f"watch{pn}", proto)
    w.connect()
    w.subscribe(wt, 1)
    d = Paho(f"polite{pn}", proto, will=(wt, "must-not-arrive", 1))
    d.connect()
    d.disconnect()
    time.sleep(QUIET_S)
    # liveness control: the watcher's subscription works
    p = Paho(f"ctl{pn}", proto)
    p.connect()
    p.publish(wt, "control", 1)
    w.wait_msgs(1)
    w.quiet(1, 0.3)
    check(payloads(w.msgs) == [b"control"], f"watcher got {describe(w.msgs)} [MQTT-3.1.2-10 / 3.14.4-3]")


@test("paho 3.1.1: will NOT delivered on normal DISCONNECT")
def t_will_normal_311():
    will_normal(V311)


@test("paho 5: will NOT delivered on normal DISCONNECT (reason 0x00)")
def t_will_normal_5():
    will_normal(V5)


@test("paho 5: DISCONNECT with reason 0x04 (Disconnect with Will Message) publishes the will")
def t_will_0x04():
    wt = topic("will/0x04")
    w = Paho("watch", V5)
    w.connect()
    w.subscribe(wt, 1)
    d = Paho("withwill", V5, will=(wt, "asked-for", 1))
    d.connect()
    from paho.mqtt.reasoncodes import ReasonCodes
    d.disconnect(reasoncode=ReasonCodes(PacketTypes.DISCONNECT, identifier=0x04))
    w.wait_msgs(1)
    check(payloads(w.msgs) == [b"asked-for"], f"got {describe(w.msgs)} [MQTT-3.14.2-1 reason 0x04]")


@test("paho 5: PUBLISH properties passed through unchanged")
def t_props():
    t = topic("props")
    s = Paho("sub", V5)
    s.connect()
    s.subscribe(t, 1)
    p = Paho("pub", V5)
    p.connect()
    props = Properties(PacketTypes.PUBLISH)
    ups = [("b-key", "1"), ("a-key", "two"), ("b-key", "3"), ("", ""), ("unicode", "é✓")]
    props.UserProperty = ups
    props.ContentType = "application/json; charset=utf-8"
    props.ResponseTopic = topic("props/reply")
    props.CorrelationData = b"\x00\x01corr\xff"
    props.PayloadFormatIndicator = 1
    props.MessageExpiryInterval = 3600
    for qos in (0, 1, 2):
        p.publish(t, '{"x":1}', qos, props=props)
    s.wait_msgs(3)
    s.quiet(3, 0.3)
    for m in s.msgs:
        mp = m.properties
        where = f"QoS {m.qos} delivery"
        check(getattr(mp, "UserProperty", None) == ups,
              f"{where}: user properties {getattr(mp, 'UserProperty', None)!r}, sent {ups!r} [MQTT-3.3.2-17/18]")
        check(getattr(mp, "ContentType", None) == props.ContentType, f"{where}: content type {getattr(mp, 'ContentType', None)!r}")
        check(getattr(mp, "ResponseTopic", None) == props.ResponseTopic, f"{where}: response topic {getattr(mp, 'ResponseTopic', None)!r}")
        check(getattr(mp, "CorrelationData", None) == props.CorrelationData, f"{where}: correlation data {getattr(mp, 'CorrelationData', None)!r}")
        check(getattr(mp, "PayloadFormatIndicator", None) == 1, f"{where}: payload format {getattr(mp, 'PayloadFormatIndicator', None)!r}")
        exp = getattr(mp, "MessageExpiryInterval", None)
        check(exp is not None and 0 < exp <= 3600, f"{where}: message expiry {exp!r}, expected present and <= 3600 [MQTT-3.3.2-6]")
        check(m.payload == b'{"x":1}', f"{where}: payload {m.payload!r}")
    check(sorted(m.qos for m in s.msgs) == [0, 1, 1], f"delivered QoS {[m.qos for m in s.msgs]} (subscribed at 1)")


@test("paho 5: subscription identifier delivered with matching messages")
def t_subid():
    s = Paho("sub", V5)
    s.connect()
    for f, sid in ((topic("subid/a/#"), 42), (topic("subid/b"), 268435455)):
        sp = Properties(PacketTypes.SUBSCRIBE)
        sp.SubscriptionIdentifier = sid
        check(s.subscribe(f, 1, props=sp) == [1], f"subscribe {f} with id {sid} refused")
    s.subscribe(topic("subid/c"), 1)  # no identifier
    p = Paho("pub", V5)
    p.connect()
    p.publish(topic("subid/a/x"), "a", 1)
    p.publish(topic("subid/b"), "b", 1)
    p.publish(topic("subid/c"), "c", 1)
    s.wait_msgs(3)
    s.quiet(3, 0.3)
    ids = {m.payload: getattr(m.properties, "SubscriptionIdentifier", None) for m in s.msgs}
    check(ids == {b"a": [42], b"b": [268435455], b"c": None},
          f"subscription identifiers by message {ids!r}, expected a:[42] b:[268435455] c:none [MQTT-3.3.4-3]")


@test("paho 5: no-local: own publications are not delivered back; others' are")
def t_nolocal():
    t = topic("nolocal")
    a = Paho("a", V5)
    a.connect()
    a.subscribe(t, options=SubscribeOptions(qos=1, noLocal=True))
    b = Paho("b", V5)
    b.connect()
    b.subscribe(t, 1)
    a.publish(t, "from-a", 1)
    b.wait_msgs(1)  # positive control: it was routed
    time.sleep(0.3)
    b.publish(t, "from-b", 1)
    a.wait_msgs(1)
    a.quiet(1, 0.5)
    check(payloads(a.msgs) == [b"from-b"], f"no-local subscriber got {describe(a.msgs)} [MQTT-3.8.3-3]")
    b.quiet(2, 0.1)


@test("paho 5: retain-as-published keeps the RETAIN flag on live delivery; without it the flag is 0")
def t_rap():
    t = topic("rap")
    a = Paho("rap1", V5)
    a.connect()
    a.subscribe(t, options=SubscribeOptions(qos=1, retainAsPublished=True))
    b = Paho("rap0", V5)
    b.connect()
    b.subscribe(t, options=SubscribeOptions(qos=1, retainAsPublished=False))
    p = Paho("pub", V5)
    p.connect()
    p.publish(t, "r", 1, retain=True)
    p.publish(t, "n", 1, retain=False)
    a.wait_msgs(2)
    b.wait_msgs(2)
    try:
        fa = [(m.payload, int(m.retain)) for m in a.msgs]
        fb = [(m.payload, int(m.retain)) for m in b.msgs]
        check(fa == [(b"r", 1), (b"n", 0)], f"retain-as-published=1 got {fa} [MQTT-3.3.1-13]")
        check(fb == [(b"r", 0), (b"n", 0)], f"retain-as-published=0 got {fb} [MQTT-3.3.1-12]")
    finally:
        p.publish(t, b"", 1, retain=True)


@test("paho 5: retained message with v5 properties reaches a later subscriber with RETAIN=1")
def t_retained_props():
    t = topic("retained/props")
    p = Paho("pub", V5)
    p.connect()
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("k", "v")]
    props.ContentType = "text/plain"
    p.publish(t, "stored", 1, retain=True, props=props)
    try:
        s = Paho("late", V5)
        s.connect()
        s.subscribe(topic("retained/+"), 1)
        s.wait_msgs(1)
        s.quiet(1, 0.3)
        m = s.msgs[0]
        check(m.payload == b"stored" and m.retain and m.topic == t, f"got {describe([m])}")
        check(getattr(m.properties, "UserProperty", None) == [("k", "v")] and
              getattr(m.properties, "ContentType", None) == "text/plain",
              f"retained properties {m.properties}")
    finally:
        p.publish(t, b"", 1, retain=True)
    s2 = Paho("later", V5)
    s2.connect()
    s2.subscribe(t, 1)
    s2.quiet(0, 0.5)


@test("paho 5: shared subscription $share/g/t: 2 members get each of 200 messages exactly once")
def t_shared():
    t = topic("shared")
    m1 = Paho("m1", V5)
    m2 = Paho("m2", V5)
    plain = Paho("plain", V5)
    for c in (m1, m2, plain):
        c.connect()
    check(m1.subscribe(f"$share/g/{t}", 1) == [1], "m1 shared subscribe refused")
    check(m2.subscribe(f"$share/g/{t}", 1) == [1], "m2 shared subscribe refused")
    plain.subscribe(t, 1)
    p = Paho("pub", V5)
    p.connect()
    n = 200
    for i in range(n):
        p.publish(t, str(i), 1, wait=False)
    plain.wait_msgs(n, timeout=20)
    m1.wait(lambda: len(m1.msgs) + len(m2.msgs) >= n, f"{n} messages across the group", timeout=20)
    time.sleep(0.5)
    got = sorted(int(m.payload) for m in m1.msgs + m2.msgs)
    dups = len(got) - len(set(got))
    check(got == list(range(n)), f"group got {len(got)} messages ({len(m1.msgs)} + {len(m2.msgs)}), "
          f"{dups} duplicates, missing {sorted(set(range(n)) - set(got))[:10]}")
    check(sorted(int(m.payload) for m in plain.msgs) == list(range(n)), "non-shared subscriber lost messages")
    for c in (m1, m2):
        seq = [int(m.payload) for m in c.msgs]
        check(seq == sorted(seq), f"{c.name}: order of one publisher's messages broken")
    print(f"# shared split: m1 {len(m1.msgs)}, m2 {len(m2.msgs)}")


@test("paho 5: delivery QoS is min(publish QoS, granted QoS)")
def t_downgrade():
    t = topic("downgrade")
    subs = {q: Paho(f"s{q}", V5) for q in (0, 1, 2)}
    for q, c in subs.items():
        c.connect()
        c.subscribe(t, q)
    p = Paho("pub", V5)
    p.connect()
    for q in (0, 1, 2):
        p.publish(t, f"p{q}", q)
    for sq, c in subs.items():
        c.wait_msgs(3)
        c.quiet(3, 0.2)
        got = sorted((m.payload.decode(), m.qos) for m in c.msgs)
        want = sorted((f"p{q}", min(q, sq)) for q in (0, 1, 2))
        check(got == want, f"subscriber at QoS {sq} got {got}, expected {want} [MQTT-3.8.4-8]")


@test("paho 5: overlapping subscriptions deliver both subscription identifiers")
def t_subid_overlap():
    s = Paho("sub", V5)
    s.connect()
    for f, sid in ((topic("ovl/#"), 1), (topic("ovl/+"), 2)):
        sp = Properties(PacketTypes.SUBSCRIBE)
        sp.SubscriptionIdentifier = sid
        s.subscribe(f, 1, props=sp)
    p = Paho("pub", V5)
    p.connect()
    p.publish(topic("ovl/x"), "one", 1)
    s.wait_msgs(1)
    time.sleep(0.5)
    ids = sorted(i for m in s.msgs for i in (getattr(m.properties, "SubscriptionIdentifier", None) or []))
    check(1 <= len(s.msgs) <= 2 and ids == [1, 2],
          f"{len(s.msgs)} deliveries with identifiers {ids}, expected 1 and 2 across them [MQTT-3.3.4-3/4/5]")


@test("paho 3.1.1: unsubscribe stops delivery; the other subscription keeps working")
def t_unsubscribe():
    s = Paho("sub", V311)
    s.connect()
    s.subscribe(topic("unsub/a"), 1)
    s.subscribe(topic("unsub/b"), 1)
    unsubacks = []
    # Installed before the call: the UNSUBACK can arrive before it returns.
    s.c.on_unsubscribe = lambda c, u, m, *a: unsubacks.append(m)
    rc, mid = s.c.unsubscribe(topic("unsub/a"))
    check(rc == 0, f"unsubscribe returned {rc}")
    s.wait(lambda: mid in unsubacks, "UNSUBACK")
    p = Paho("pub", V311)
    p.connect()
    p.publish(topic("unsub/a"), "gone", 1)
    p.publish(topic("unsub/b"), "kept", 1)
    s.wait_msgs(1)
    s.quiet(1, 0.5)
    check(payloads(s.msgs) == [b"kept"], f"got {describe(s.msgs)}")


@test("paho 5: 60 retained topics (all retained shards) are each delivered once to a wildcard subscriber")
def t_retained_many():
    base = topic("rmany")
    p = Paho("pub", V5)
    p.connect()
    n = 60
    names = [f"{base}/t{i}/x" for i in range(n)]
    try:
        for i, t in enumerate(names):
            p.publish(t, f"v{i}", 1, retain=True, wait=False)
        p.wait(lambda: len(p.published) >= n, "PUBACKs")
        s = Paho("late", V5)
        s.connect()
        s.subscribe(f"{base}/+/x", 1)
        s.wait_msgs(n)
        s.quiet(n, 0.5)
        got = sorted((m.topic, m.payload.decode(), bool(m.retain)) for m in s.msgs)
        want = sorted((t, f"v{i}", True) for i, t in enumerate(names))
        check(got == want, f"{len(got)} retained deliveries; missing "
              f"{sorted(set(want) - set(got))[:5]}, unexpected {sorted(set(got) - set(want))[:5]}")
    finally:
        for t in names:
            p.publish(t, b"", 1, retain=True, wait=False)
        p.wait(lambda: len(p.published) >= 2 * n, "PUBACKs of the deletes")


@test("paho 5: message expiry: a message that expires while the session is offline is not delivered")
def t_expiry_offline():
    t = topic("expiry")
    id_ = cid("expiry")
    s = Paho("sub", V5, client_id=id_, expiry=300)
    s.connect()
    s.subscribe(t, 1)
    s.disconnect()
    p = Paho("pub", V5)
    p.connect()
    short = Properties(PacketTypes.PUBLISH)
    short.MessageExpiryInterval = 1
    long_ = Properties(PacketTypes.PUBLISH)
    long_.MessageExpiryInterval = 600
    p.publish(t, "expires", 1, props=short)
    p.publish(t, "stays", 1, props=long_)
    time.sleep(2.2)
    s2 = Paho("sub-again", V5, client_id=id_, clean=False, expiry=0)
    check(s2.connect() == 1, "session not present on reconnect")
    s2.wait_msgs(1)
    s2.quiet(1, 0.5)
    m = s2.msgs[0]
    check(m.payload == b"stays", f"got {describe(s2.msgs)}; 'expires' had a 1 s expiry [MQTT-3.3.2-5]")
    exp = getattr(m.properties, "MessageExpiryInterval", None)
    check(exp is not None and exp <= 598, f"forwarded expiry {exp}, expected <= 598 after >2 s "
          "in the queue [MQTT-3.3.2-6]")


@test("paho 5: takeover: same client id connects, the first gets DISCONNECT 0x8E")
def t_takeover_5():
    id_ = cid("takeover5")
    t = topic("takeover5")
    a = Paho("first", V5, client_id=id_)
    a.connect()
    a.subscribe(t, 1)
    b = Paho("second", V5, client_id=id_)
    b.connect()
    a.wait(lambda: a.disconnects, "the first client to be disconnected")
    rc = a.c.server_disconnect_rc
    check(rc is not None, f"first client was disconnected (on_disconnect rc {a.disconnects[0]}) "
          "without a DISCONNECT packet; expected DISCONNECT 0x8E [MQTT-3.1.4-3, 3.14.2.1]")
    check(rc == 0x8E, f"first client's DISCONNECT reason {rc:#x}, expected 0x8E Session taken over")
    # the second one works
    b.subscribe(t, 1)
    b.publish(t, "hello", 1)
    b.wait_msgs(1)
    b.quiet(1, 0.3)
    check(not b.disconnects, f"second client disconnected: {b.disconnects}")


@test("paho 3.1.1: takeover: same client id connects, the first is disconnected")
def t_takeover_311():
    id_ = cid("takeover311")
    t = topic("takeover311")
    a = Paho("first", V311, client_id=id_)
    a.connect()
    b = Paho("second", V311, client_id=id_)
    b.connect()
    a.wait(lambda: a.disconnects, "the first client to be disconnected")
    check(a.disconnects[0] != 0, "first client reported a clean disconnect")
    b.subscribe(t, 1)
    b.publish(t, "hello", 1)
    b.wait_msgs(1)
    check(not b.disconnects, f"second client disconnected: {b.disconnects}")


@test("paho: takeover of a persistent session keeps its subscriptions (session present 1)")
def t_takeover_persistent():
    id_ = cid("takeover-persist")
    t = topic("takeover-persist")
    a = Paho("first", V5, client_id=id_, expiry=300)
    a.connect()
    a.subscribe(t, 1)
    b = Paho("second", V5, client_id=id_, clean=False, expiry=0)
    sp = b.connect()
    a.wait(lambda: a.disconnects, "the first client to be disconnected")
    check(sp == 1, f"session present {sp} on takeover with clean_start=0, expected 1")
    p = Paho("pub", V5)
    p.connect()
    p.publish(t, "to-session", 1)
    b.wait_msgs(1)
    check(payloads(b.msgs) == [b"to-session"], f"got {describe(b.msgs)}")


# =================================================================== main

@test("paho 5: no Topic Alias Maximum in its CONNECT, so every message comes with its whole topic")
def t_no_alias_unless_asked():
    # paho 1.6 does not resolve inbound topic aliases (and, rightly, does
    # not announce a Topic Alias Maximum): the broker's outgoing aliases
    # must never reach it [MQTT-3.1.2-27]. MQTT.js, which resolves them,
    # receives aliased messages in interop_mqttjs.mjs.
    base = topic("alias/a-long-topic-that-would-be-worth-an-alias")
    s = Paho("sub", V5)
    s.connect()
    s.subscribe(base + "/+", 1)
    p = Paho("pub", V5)
    p.connect()
    want = []
    for i in range(20):
        t = f"{base}/{'xy'[i % 2]}"
        want.append((t, f"m{i}".encode()))
        p.publish(t, want[-1][1], i % 2)
    s.wait_msgs(20)
    s.quiet(20, 0.3)
    got = [(m.topic, m.payload) for m in s.msgs]
    check(got == want, f"got {got[:4]}..., expected {want[:4]}...")
    aliased = [m for m in s.msgs if getattr(m.properties, "TopicAlias", None)]
    check(not aliased, f"{len(aliased)} messages carried a topic alias")


def main():
    global ctx
    print("TAP version 13")
    print(f"# starling {ARGS.starling} --workers {ARGS.workers}; paho-mqtt {paho.mqtt.__version__}; run {RUN}")
    sys.stdout.flush()
    signal.signal(signal.SIGALRM, on_alarm)
    n = 0
    failed = 0
    sanitizer_seen = False
    try:
        broker.start()
    except Exception as e:
        print("1..1")
        print("not ok 1 - broker starts")
        print(f"# {e}".replace("\n", "\n# "))
        return 1
    for name, fn in TESTS:
        n += 1
        name = f"{name} [workers={ARGS.workers}]"
        if not broker.alive():
            try:
                broker.start()
                sanitizer_seen = False
            except Exception as e:
                print(f"not ok {n} - {name}\n# broker could not be restarted: {e}")
                failed += 1
                continue
        ctx = Ctx()
        err = None
        t0 = time.time()
        signal.alarm(TEST_TIMEOUT_S)
        try:
            fn()
        except (TestFailure, Watchdog) as e:
            err = str(e)
        except Exception:
            err = traceback.format_exc()
        finally:
            signal.alarm(0)
            try:
                ctx.close()
            except Exception:
                pass
        if not broker.alive():
            rc = broker.exit_code()
            tail = "\n".join(broker.log_text().splitlines()[-25:])
            err = (err or "") + f"\nbroker DIED during this test (exit {rc}); its stderr ends:\n{tail}"
            broker.stop()
            broker.b.cleanup()
        elif not sanitizer_seen:
            report = broker.b.sanitizer_report()
            if report:
                sanitizer_seen = True
                err = (err or "") + "\nsanitizer report in the broker during this test:\n" + report
        dt = time.time() - t0
        if err is None:
            print(f"ok {n} - {name}")
            print(f"# {dt:.2f}s")
        else:
            failed += 1
            print(f"not ok {n} - {name}")
            print("# " + err.strip().replace("\n", "\n# "))
        sys.stdout.flush()
    # last: the broker stops cleanly
    n += 1
    name = f"broker exits 0 on SIGTERM with no sanitizer report [workers={ARGS.workers}]"
    if broker.alive():
        rc = broker.stop()
        report = broker.b.sanitizer_report()
        if rc == 0 and not report:
            print(f"ok {n} - {name}")
        else:
            failed += 1
            print(f"not ok {n} - {name}")
            print(f"# exit {rc}\n# " + (report or "").strip().replace("\n", "\n# "))
        broker.b.cleanup()
    else:
        failed += 1
        print(f"not ok {n} - {name}\n# broker not running at the end")
    print(f"1..{n}")
    sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    rc = 1
    try:
        rc = main()
    finally:
        try:
            broker.kill()
        except Exception:
            pass
        if ctx is not None:
            try:
                ctx.close()
            except Exception:
                pass
    sys.exit(rc)
