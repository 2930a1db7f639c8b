#!/usr/bin/python3
"""Bridges (docs/bridges.md): an edge Starling that carries topics to and
from a remote broker — a second Starling or Debian's mosquitto — with paho
clients (python3-paho-mqtt) on both sides.

Out, in and both directions at QoS 0/1/2 with prefixes, MQTT 5.0 and 3.1.1
to the remote; loop prevention with `both`; messages published while the
remote is down reach it when it is back; a remote killed (kill -9) in the
middle of a QoS 1 and a QoS 2 stream for 1 s, and of both for 30 s:
nothing the edge acknowledged is lost, QoS 2 has no duplicate and keeps its
order; the queue's bound during an outage, drops counted; the edge killed
with kill -9 during an outage with persistence on: its queue still reaches
the remote; TLS with a right and a wrong CA and name; credentials; failover
across addresses; the metrics and the $SYS state; the client ids of
bridges are refused to clients; the 3.1.1 bridge bit makes a client's
subscriptions no-local.

Usage: bridge_test.py PATH/TO/starling [--workers N] [--only NAME]. TAP.
"""
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tap  # noqa: E402
from broker import Broker  # noqa: E402
from persist_test import metric  # noqa: E402
from tls_test import Pki  # noqa: E402
from mqttraw import Client as RawClient, connect as raw_connect, publish as raw_publish  # noqa: E402,E501
from mqttraw import subscribe as raw_subscribe  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402

TESTS = []
WAIT = 10.0    # how long what must come is waited for
QUIET = 1.0    # how long what must not come is watched for
V5, V311 = mqtt.MQTTv5, mqtt.MQTTv311


def test(fn):
    TESTS.append(fn)
    return fn


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout=WAIT, what="a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Sub:
    """A paho client that records what it receives, in order."""

    def __init__(self, port, topics, qos=1, version=V5, client_id=None, clean=True):
        self.got = []
        self.lock = threading.Lock()
        self.client_id = client_id or "sub-" + uuid.uuid4().hex[:8]
        self.c = mqtt.Client(client_id=self.client_id, protocol=version,
                             clean_session=None if version == V5 else clean)
        self.c.on_message = self._on_message
        self.subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        props = None
        if version == V5 and not clean:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        self.c.connect("127.0.0.1", port, keepalive=30,
                       **({"clean_start": clean, "properties": props} if version == V5 else {}))
        self.c.loop_start()
        self.c.subscribe([(t, qos) for t in topics])
        assert self.subscribed.wait(WAIT), "no SUBACK"

    def _on_message(self, c, u, m):
        with self.lock:
            self.got.append((m.topic, m.payload.decode(), m.qos, m.retain))

    def messages(self):
        with self.lock:
            return list(self.got)

    def wait(self, n, timeout=WAIT):
        wait_for(lambda: len(self.messages()) >= n, timeout, f"{n} messages ({self.messages()})")
        return self.messages()

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


class Pub:
    """A paho publisher whose QoS 1/2 publishes return once acknowledged."""

    def __init__(self, port, version=V5):
        self.c = mqtt.Client(client_id="pub-" + uuid.uuid4().hex[:8], protocol=version)
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()

    def send(self, topic, payload, qos=1, retain=False):
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        if qos:
            info.wait_for_publish(WAIT)
            assert info.is_published(), f"{topic} {payload} not acknowledged"
        return info

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


class Ctx(tap.BrokerCtx):
    def __init__(self, binary, workers):
        super().__init__(binary, workers, "starling-bridge-")
        self.clients = []
        self.procs = []

    def remote(self, port, *args, persist=False):
        """A Starling as the remote broker, on a port that stays across
        restarts (the edge's bridge dials it)."""
        extra = [f"--listen=127.0.0.1:{port}", "--queue-messages-max=1000000"]
        if persist:
            extra += ["--persistence=true", f"--data-dir={self.dir}/remote"]
        b = Broker(self.binary, self.workers, extra + list(args), log_level="info")
        self.brokers.append(b)
        return b

    def edge(self, remote_port, rules, *args, version="5.0", persist=False):
        extra = [f"--bridge.cloud.address=127.0.0.1:{remote_port}",
                 f"--bridge.cloud.version={version}",
                 "--bridge.cloud.reconnect-min-ms=50", "--bridge.cloud.reconnect-max-ms=300"]
        extra += [f"--bridge.cloud.topic={r}" for r in rules]
        if persist:
            extra += ["--persistence=true", f"--data-dir={self.dir}/edge"]
        b = Broker(self.binary, self.workers, extra + list(args), log_level="info")
        self.brokers.append(b)
        return b

    def mosquitto(self, port, extra="", name="mosquitto"):
        conf = self.file(f"{name}.conf",
                         f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                         "persistence false\nlog_dest stderr\n" + extra)
        log = open(os.path.join(self.dir, f"{name}.log"), "wb")
        p = subprocess.Popen(["/usr/sbin/mosquitto", "-c", conf], stdout=log, stderr=log)
        self.procs.append(p)
        wait_for(lambda: _listening(port), 5, "mosquitto to listen")
        return p

    def kill(self, b):
        b.proc.kill()
        b.proc.wait()
        self.brokers.remove(b)
        b.cleanup()

    def sub(self, *a, **k):
        s = Sub(*a, **k)
        self.clients.append(s)
        return s

    def pub(self, *a, **k):
        p = Pub(*a, **k)
        self.clients.append(p)
        return p

    def _end_clients(self):
        for c in self.clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - the broker may be gone already
                pass
        for p in self.procs:
            p.terminate()
            p.wait(5)

    def close(self):
        self._end_clients()
        super().close()

    def discard(self):
        self._end_clients()
        super().discard()


def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def wait_up(edge, n=1):
    """The edge's bridge is up (its n-th time)."""
    wait_for(lambda: edge.text().count(b"bridge cloud: up to") >= n, WAIT, "the bridge up")


def carries_both_ways(ctx, remote_port, version):
    edge = ctx.edge(remote_port, ["sensors/# out 2 site1/ edge/site1/",
                                  "cmd/# in 2 site1/ edge/site1/"], version=version)
    wait_up(edge)
    on_remote = ctx.sub(remote_port, ["edge/#"], qos=2)
    on_edge = ctx.sub(edge.port, ["site1/#"], qos=2)
    p_edge = ctx.pub(edge.port)
    p_remote = ctx.pub(remote_port)
    for q in (0, 1, 2):
        p_edge.send("site1/sensors/t", f"out{q}", qos=q)
        p_remote.send("edge/site1/cmd/go", f"in{q}", qos=q)
    got_r = on_remote.wait(6)
    got_e = on_edge.wait(6)
    time.sleep(QUIET)
    want_out = [("edge/site1/sensors/t", f"out{q}", q) for q in (0, 1, 2)]
    want_in = [("edge/site1/cmd/go", f"in{q}", q) for q in (0, 1, 2)]
    # The remote subscriber sees the bridge's messages and its own
    # publisher's; the edge sees its own publisher's and the bridge's.
    assert sorted(m[:3] for m in on_remote.messages()) == sorted(want_out + want_in), got_r
    assert sorted(m[:3] for m in on_edge.messages()) == sorted(
        [("site1/sensors/t", f"out{q}", q) for q in (0, 1, 2)] +
        [("site1/cmd/go", f"in{q}", q) for q in (0, 1, 2)]), got_e
    return edge


@test
def b01_out_and_in_with_prefixes_to_a_starling_5(ctx):
    port = free_port()
    ctx.remote(port)
    carries_both_ways(ctx, port, "5.0")


@test
def b02_out_and_in_with_prefixes_to_a_starling_311(ctx):
    port = free_port()
    ctx.remote(port)
    carries_both_ways(ctx, port, "3.1.1")


@test
def b03_out_and_in_to_mosquitto_5_and_311(ctx):
    port = free_port()
    ctx.mosquitto(port)
    edge = carries_both_ways(ctx, port, "5.0")
    ctx.kill(edge)
    carries_both_ways(ctx, port, "3.1.1")


def no_echo(ctx, remote_port, version):
    edge = ctx.edge(remote_port, ["loop/# both 1"], version=version)
    wait_up(edge)
    on_remote = ctx.sub(remote_port, ["loop/#"])
    on_edge = ctx.sub(edge.port, ["loop/#"])
    time.sleep(0.3)  # the remote's SUBACK to the bridge
    ctx.pub(edge.port).send("loop/a", "from-edge")
    ctx.pub(remote_port).send("loop/b", "from-remote")
    on_remote.wait(2)
    on_edge.wait(2)
    time.sleep(QUIET)
    assert sorted(on_remote.messages()) == [("loop/a", "from-edge", 1, False),
                                            ("loop/b", "from-remote", 1, False)], \
        on_remote.messages()
    assert sorted(on_edge.messages()) == [("loop/a", "from-edge", 1, False),
                                          ("loop/b", "from-remote", 1, False)], \
        on_edge.messages()


@test
def b04_both_never_echoes_starling_5_and_311(ctx):
    port = free_port()
    ctx.remote(port)
    no_echo(ctx, port, "5.0")
    for b in list(ctx.brokers[1:]):
        ctx.kill(b)
    no_echo(ctx, port, "3.1.1")


@test
def b05_both_never_echoes_mosquitto_5_and_311(ctx):
    port = free_port()
    ctx.mosquitto(port)
    no_echo(ctx, port, "5.0")
    for b in list(ctx.brokers):
        ctx.kill(b)
    no_echo(ctx, port, "3.1.1")


def mosquitto_edge(ctx, remote_port, version):
    """Debian's mosquitto as the edge, its bridge (notifications on, as by
    default) dialling Starling."""
    port = free_port()
    cid = f"mosq-edge-{version}"
    p = ctx.mosquitto(port, f"connection cloud\naddress 127.0.0.1:{remote_port}\n"
                            f"bridge_protocol_version {version}\nremote_clientid {cid}\n"
                            "restart_timeout 1\ncleansession false\n"
                            "topic sensors/# out 1 site1/ edge/site1/\n"
                            "topic cmd/# in 1 site1/ edge/site1/\n"
                            "topic loop/# both 1\n", name=f"edge-{version}")
    return p, port, f"$SYS/broker/connection/{cid}/state"


@test
def b18_mosquitto_as_the_edge_bridges_to_starling(ctx):
    remote = ctx.remote(free_port())
    for version in ("mqttv311", "mqttv50"):
        state = ctx.sub(remote.port, ["$SYS/broker/connection/#"])
        p, port, topic = mosquitto_edge(ctx, remote.port, version)
        # Its state, retained, then its will when it dies: Starling takes
        # both (refusing the will refused mosquitto's bridge CONNECT).
        wait_for(lambda: (topic, "1", 1, False) in state.messages()
                 or (topic, "1", 0, False) in state.messages(), WAIT,
                 f"the bridge's state 1 ({state.messages()})")
        on_remote = ctx.sub(remote.port, ["edge/#", "loop/#"])
        on_edge = ctx.sub(port, ["site1/#", "loop/#"], version=V311)
        time.sleep(0.3)  # the bridge's SUBSCRIBE to Starling
        ctx.pub(port, version=V311).send("site1/sensors/t", "out")
        ctx.pub(remote.port).send("edge/site1/cmd/go", "in")
        ctx.pub(port, version=V311).send("loop/a", "from-edge")
        ctx.pub(remote.port).send("loop/b", "from-remote")
        on_remote.wait(4)
        on_edge.wait(4)
        time.sleep(QUIET)
        assert sorted(m[:2] for m in on_remote.messages()) == [
            ("edge/site1/cmd/go", "in"), ("edge/site1/sensors/t", "out"),
            ("loop/a", "from-edge"), ("loop/b", "from-remote")], (version, on_remote.messages())
        assert sorted(m[:2] for m in on_edge.messages()) == [
            ("loop/a", "from-edge"), ("loop/b", "from-remote"),
            ("site1/cmd/go", "in"), ("site1/sensors/t", "out")], (version, on_edge.messages())
        p.kill()
        p.wait()
        ctx.procs.remove(p)
        wait_for(lambda: any(m[0] == topic and m[1] == "0" for m in state.messages()), WAIT,
                 f"the bridge's will, state 0 ({state.messages()})")


@test
def b06_published_while_the_remote_is_down_arrives_when_it_is_back(ctx):
    port = free_port()
    edge = ctx.edge(port, ["data/# out 1"])  # nothing listens there yet
    pub = ctx.pub(edge.port)
    for i in range(200):
        pub.send("data/x", f"m{i}")
    remote = ctx.remote(port)
    sub = ctx.sub(remote.port, ["data/#"], client_id="keeper", clean=False)
    # The bridge may have delivered before the subscriber subscribed: what
    # counts is what reached the remote, and the remote's own order. Make
    # it certain with a second batch after the subscriber is there.
    wait_up(edge)
    for i in range(200, 300):
        pub.send("data/x", f"m{i}")
    got = [m[1] for m in sub.wait(100)]
    wait_for(lambda: "m299" in [m[1] for m in sub.messages()], WAIT, "m299")
    got = [m[1] for m in sub.messages()]
    tail = got[got.index("m200"):]
    assert tail == [f"m{i}" for i in range(200, 300)], tail[:20]
    sent = edge.text().decode()
    assert "bridge cloud: up to" in sent


@test
def b15_addresses_are_tried_in_turn(ctx):
    dead, port = free_port(), free_port()
    remote = ctx.remote(port)
    edge = ctx.edge(port, ["f/# out 1"], f"--bridge.cloud.address=127.0.0.1:{dead},"
                    f"127.0.0.1:{port}")
    wait_up(edge)
    assert f"up to 127.0.0.1:{port}".encode() in edge.text()
    sub = ctx.sub(remote.port, ["f/#"])
    time.sleep(0.2)
    ctx.pub(edge.port).send("f/x", "failover")
    assert sub.wait(1)[0][1] == "failover"


def stream_through_outage(ctx, qoses, outage_s, pace_s=0.0):
    """A publisher per QoS in qoses streams into the edge (on s<QoS>/t)
    while the remote (with persistence, its subscribers' sessions
    persistent) is killed and comes back after outage_s. Returns
    {qos: (acknowledged, received list)}."""
    port = free_port()
    remote = ctx.remote(port, persist=True)
    for q in qoses:
        sub = Sub(port, [f"s{q}/#"], qos=q, client_id=f"keeper{q}", clean=False)
        sub.close()  # offline: the remote queues for it across its restart
    edge = ctx.edge(port, [f"s{q}/# out {q}" for q in qoses], "--queue-messages-max=100000")
    wait_up(edge)
    acked = {q: [] for q in qoses}
    stop = threading.Event()

    def publish(q, pub):
        i = 0
        while not stop.is_set() and i < 100000:
            try:
                pub.send(f"s{q}/t", f"{i}", qos=q)
            except AssertionError:
                break
            acked[q].append(f"{i}")
            i += 1
            if pace_s:
                time.sleep(pace_s)
            elif i % 50 == 0:
                time.sleep(0.005)

    threads = [threading.Thread(target=publish, args=(q, ctx.pub(edge.port))) for q in qoses]
    for t in threads:
        t.start()
    time.sleep(0.5)
    ctx.kill(remote)
    time.sleep(outage_s)
    remote = ctx.remote(port, persist=True)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(30)
    wait_up(edge, 2)
    out = {}
    for q in qoses:
        sub = ctx.sub(port, [f"s{q}/#"], qos=q, client_id=f"keeper{q}", clean=False)
        last = acked[q][-1]
        wait_for(lambda: last in [m[1] for m in sub.messages()], 30, f"QoS {q} message {last}")
        out[q] = sub
    time.sleep(QUIET)
    return {q: (acked[q], [m[1] for m in out[q].messages()]) for q in qoses}


def check_stream(qos, acked, got, what):
    missing = set(acked) - set(got)
    assert not missing, f"{what}: {len(missing)} of {len(acked)} acknowledged lost: " \
        f"{sorted(missing)[:10]}"
    dups = len(got) - len(set(got))
    if qos == 2:
        assert dups == 0, f"{what}: {dups} duplicates with QoS 2"
        order = [int(x) for x in got]
        assert order == sorted(order), f"{what}: out of order"
    tap.comment(f"{what}: {len(acked)} acknowledged, {len(got)} received, {dups} duplicates"
                + (" (allowed for QoS 1)" if qos == 1 else ""))


@test
def b07_remote_killed_for_1s_during_a_qos1_stream_loses_nothing(ctx):
    acked, got = stream_through_outage(ctx, [1], 1.0)[1]
    check_stream(1, acked, got, "QoS 1, 1 s outage")


@test
def b08_remote_killed_for_1s_during_a_qos2_stream_no_loss_no_duplicate(ctx):
    acked, got = stream_through_outage(ctx, [2], 1.0)[2]
    check_stream(2, acked, got, "QoS 2, 1 s outage")


@test
def b17_remote_down_30s_during_qos1_and_qos2_streams_no_loss(ctx):
    # A gateway's pace (~300 msg/s each): 30 s of it waits in the bridge's
    # queue; one outage for both streams (30 s of the suite's time, not 60).
    r = stream_through_outage(ctx, [1, 2], 30.0, pace_s=0.003)
    for q in (1, 2):
        check_stream(q, *r[q], f"QoS {q}, 30 s outage")


@test
def b09_edge_killed_during_an_outage_keeps_its_queue_with_persistence(ctx):
    port = free_port()
    edge = ctx.edge(port, ["q/# out 1"], persist=True)
    pub = ctx.pub(edge.port)
    for i in range(100):
        pub.send("q/x", f"m{i}")
    time.sleep(0.2)
    ctx.kill(edge)
    ctx.clients.remove(pub)
    remote = ctx.remote(port)
    sub = ctx.sub(remote.port, ["q/#"], client_id="keeper", clean=False)
    edge = ctx.edge(port, ["q/# out 1"], persist=True)
    got = sub.wait(100)
    time.sleep(QUIET)
    got = [m[1] for m in sub.messages()]
    assert got == [f"m{i}" for i in range(100)], got[:10]


@test
def b19_a_remote_with_maximum_qos_1_gets_qos_2_rules_at_qos_1(ctx):
    # AWS IoT Core, for one, takes QoS 1 at most (5.0 CONNACK Maximum QoS):
    # a PUBLISH above it is refused (0x9B) and the link closed, so the
    # bridge sends at QoS 1, both what it queued before it knew and what
    # comes once it does.
    port = free_port()
    remote = ctx.remote(port, persist=True)
    Sub(port, ["q/#"], qos=2, client_id="keeper", clean=False).close()
    ctx.kill(remote)
    edge = ctx.edge(port, ["q/# out 2"])
    pub = ctx.pub(edge.port)
    for i in range(3):
        pub.send("q/x", f"queued{i}", qos=2)
    ctx.remote(port, "--max-qos=1", persist=True)
    wait_up(edge)
    for i in range(3):
        pub.send("q/x", f"live{i}", qos=2)
    sub = ctx.sub(port, ["q/#"], qos=2, client_id="keeper", clean=False)
    sub.wait(6)
    time.sleep(QUIET)
    got = sub.messages()
    assert [m[1] for m in got] == [f"queued{i}" for i in range(3)] + [
        f"live{i}" for i in range(3)], got
    assert all(m[2] == 1 for m in got), got
    assert edge.text().count(b"bridge cloud: up to") == 1, "the link never dropped"
    assert b"its messages go at QoS 1" in edge.text()


@test
def b20_inbound_messages_survive_the_edge_killed_once_received(ctx):
    # In rules: the edge acknowledges the remote only once the message is
    # routed here and journaled; kill -9 of the edge right after it has
    # taken them, and its persistent subscriber still gets every one.
    port = free_port()
    ctx.remote(port)
    edge = ctx.edge(port, ["cmd/# in 1"], persist=True)
    wait_up(edge)
    Sub(edge.port, ["cmd/#"], client_id="keeper", clean=False).close()
    time.sleep(0.3)  # the remote's SUBACK to the bridge
    p = ctx.pub(port)
    n = 200
    for i in range(n):
        p.send("cmd/x", f"c{i}", qos=1)
    wait_for(lambda: metric(edge, 'starling_bridge_messages_total{bridge="cloud",'
                                  'direction="in"}') >= n, WAIT, f"{n} in through the bridge")
    ctx.kill(edge)
    edge = ctx.edge(port, ["cmd/# in 1"], persist=True)
    sub = ctx.sub(edge.port, ["cmd/#"], client_id="keeper", clean=False)
    wait_for(lambda: f"c{n - 1}" in [m[1] for m in sub.messages()], WAIT, f"c{n - 1}")
    time.sleep(QUIET)
    got = [m[1] for m in sub.messages()]
    missing = [f"c{i}" for i in range(n) if f"c{i}" not in got]
    assert not missing, f"{len(missing)} lost: {missing[:10]}"
    tap.comment(f"{n} sent, {len(got)} received ({len(got) - len(set(got))} duplicates)")


@test
def b12_a_long_outage_keeps_the_queue_bound_and_counts_drops(ctx):
    port = free_port()
    remote = ctx.remote(port, persist=True)
    Sub(port, ["d/#"], client_id="keeper", clean=False).close()  # kept across the outage
    ctx.kill(remote)
    edge = ctx.edge(port, ["d/# out 1"], "--bridge.cloud.queue-messages-max=50",
                    "--bridge.cloud.queue-overflow=drop_oldest")
    pub = ctx.pub(edge.port)
    for i in range(200):
        pub.send("d/x", f"m{i}")
    wait_for(lambda: metric(edge, "starling_messages_dropped_total") >= 150, WAIT,
             "150 drops counted")
    ctx.remote(port, persist=True)
    wait_up(edge)
    sub = ctx.sub(port, ["d/#"], client_id="keeper", clean=False)
    wait_for(lambda: "m199" in [m[1] for m in sub.messages()], WAIT, "m199")
    time.sleep(QUIET)
    got = [m[1] for m in sub.messages()]
    assert got == [f"m{i}" for i in range(150, 200)], got
    drops = metric(edge, "starling_messages_dropped_total")
    assert drops == 150, drops


@test
def b13_tls_to_the_remote_verifies_its_certificate(ctx):
    pki = Pki(ctx.dir)
    port = free_port()
    ctx.remote(free_port(), f"--tls-listen=127.0.0.1:{port}",
               f"--tls-cert-file={pki.p('server.pem')}", f"--tls-key-file={pki.p('server.key')}")
    # The right CA, the address's host checked against the certificate.
    edge = ctx.edge(port, ["t/# out 1"], "--bridge.cloud.tls=true",
                    f"--bridge.cloud.cafile={pki.p('ca.pem')}")
    wait_up(edge)
    sub = ctx.sub(ctx.brokers[0].port, ["t/#"])
    time.sleep(0.2)
    ctx.pub(edge.port).send("t/x", "over-tls")
    assert sub.wait(1)[0][:2] == ("t/x", "over-tls")
    ctx.kill(edge)
    # Another CA: no connection, and the log says why.
    edge = ctx.edge(port, ["t/# out 1"], "--bridge.cloud.tls=true",
                    f"--bridge.cloud.cafile={pki.p('other-ca.pem')}")
    wait_for(lambda: b"certificate verify failed" in edge.text(), WAIT, "the verify error")
    assert b"bridge cloud: up to" not in edge.text()
    ctx.kill(edge)
    # A name the certificate does not hold, given as the SNI to check.
    edge = ctx.edge(port, ["t/# out 1"], "--bridge.cloud.tls=true",
                    f"--bridge.cloud.cafile={pki.p('ca.pem')}",
                    "--bridge.cloud.sni=cloud.example")
    wait_for(lambda: b"certificate verify failed" in edge.text(), WAIT, "the name error")
    assert b"bridge cloud: up to" not in edge.text()
    ctx.kill(edge)
    # verify = false: connects to the wrong CA's server, with a warning.
    edge = ctx.edge(port, ["t/# out 1"], "--bridge.cloud.tls=true",
                    f"--bridge.cloud.cafile={pki.p('other-ca.pem')}",
                    "--bridge.cloud.verify=false")
    wait_up(edge)
    assert b"without verifying the remote's certificate" in edge.text()
    # A CA file that does not exist stops the start, naming key and file.
    bad = subprocess.run([ctx.binary, "--listen=127.0.0.1:0", "--metrics=false",
                          f"--bridge.cloud.address=127.0.0.1:{port}",
                          "--bridge.cloud.topic=t/#", "--bridge.cloud.tls=true",
                          "--bridge.cloud.cafile=/nonexistent/ca.pem"],
                         capture_output=True, text=True, timeout=10)
    assert bad.returncode != 0, bad
    assert "bridge.cloud.cafile" in bad.stderr and "/nonexistent/ca.pem" in bad.stderr, \
        bad.stderr


@test
def b16_credentials_at_the_remote(ctx):
    pw = os.path.join(ctx.dir, "passwd")
    r = subprocess.run([ctx.binary, "passwd", "-c", "-b", "-I", "1000", pw, "edge1", "s3cret"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    port = free_port()
    ctx.remote(port, f"--password-file={pw}")
    for version in ("5.0", "3.1.1"):
        edge = ctx.edge(port, ["k/# out 1"], "--bridge.cloud.username=edge1",
                        "--bridge.cloud.password=s3cret", version=version)
        wait_up(edge)
        ctx.kill(edge)
        edge = ctx.edge(port, ["k/# out 1"], "--bridge.cloud.username=edge1",
                        "--bridge.cloud.password=wrong", version=version)
        wait_for(lambda: b"refused the connection" in edge.text(), WAIT, "the refusal")
        assert b"bridge cloud: up to" not in edge.text()
        text = edge.text().decode()
        assert ("bad user name or password" in text.lower() or "0x86" in text
                or "0x04" in text), text[-600:]
        ctx.kill(edge)


def scrape(b):
    with urllib.request.urlopen(f"http://127.0.0.1:{b.metrics_port}/metrics", timeout=5) as r:
        return r.read()


def value(text, line_start):
    for line in text.decode().splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in /metrics")


@test
def b14_metrics_and_sys_state_follow_the_link(ctx):
    port = free_port()
    remote = ctx.remote(port)
    edge = ctx.edge(port, ["m/# out 1", "c/# in 1"], "--sys-interval-s=1")
    wait_up(edge)
    state = ctx.sub(edge.port, ["$SYS/broker/bridge/cloud/state"])
    wait_for(lambda: state.messages(), WAIT, "the retained state")
    assert state.messages()[-1][1:] == ("1", 0, True), state.messages()
    pub = ctx.pub(edge.port)
    for i in range(5):
        pub.send("m/x", "12345")
    ctx.pub(remote.port).send("c/y", "abc")
    up = 'starling_bridge_up{bridge="cloud"}'
    out = 'starling_bridge_messages_total{bridge="cloud",direction="out"}'
    wait_for(lambda: value(scrape(edge), out) >= 5, WAIT, "5 out")
    text = scrape(edge)
    assert value(text, up) == 1
    assert value(text, 'starling_bridge_state{bridge="cloud",state="up"}') == 1
    assert value(text, 'starling_bridge_connects_total{bridge="cloud"}') == 1
    assert value(text, 'starling_bridge_payload_bytes_total{bridge="cloud",direction="out"}') \
        == 25
    assert value(text, 'starling_bridge_ack_rtt_seconds_count{bridge="cloud"}') >= 1
    assert value(text, 'starling_bridge_ack_rtt_seconds_sum{bridge="cloud"}') > 0
    wait_for(lambda: value(scrape(edge),
                           'starling_bridge_messages_total{bridge="cloud",direction="in"}') == 1,
             WAIT, "1 in")
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), \
        r.stdout.decode() + r.stderr.decode()
    ctx.kill(remote)
    wait_for(lambda: value(scrape(edge), up) == 0, WAIT, "up 0")
    wait_for(lambda: state.messages()[-1][1] == "0", WAIT, "state 0")
    for i in range(3):
        pub.send("m/x", "queued")
    wait_for(lambda: value(scrape(edge), 'starling_bridge_queued_messages{bridge="cloud"}') == 3,
             WAIT, "3 queued")
    wait_for(lambda: value(scrape(edge),
                           'starling_bridge_connect_failures_total{bridge="cloud"}') >= 1,
             WAIT, "a failed reconnect counted")


@test
def b10_bridge_client_ids_are_refused_to_clients(ctx):
    b = ctx.start([])
    c = mqtt.Client(client_id="$bridge/cloud", protocol=V5)
    rc = []
    c.on_connect = lambda cl, u, f, r, p=None: rc.append(r)
    c.connect("127.0.0.1", b.port)
    c.loop_start()
    wait_for(lambda: rc, WAIT, "a CONNACK")
    c.loop_stop()
    assert getattr(rc[0], "value", rc[0]) == 0x85, rc  # Client Identifier not valid


@test
def b11_the_bridge_bit_makes_subscriptions_no_local(ctx):
    b = ctx.start([])
    for bridge_bit, want in ((True, 0), (False, 1)):
        c = RawClient(b.port)
        pkt = bytearray(raw_connect(4, client_id=f"peer{int(bridge_bit)}"))
        if bridge_bit:
            # The level byte follows the 2-byte length and "MQTT".
            i = pkt.index(b"MQTT") + 4
            pkt[i] |= 0x80
        c.send(bytes(pkt))
        assert c.recv().type == 2  # CONNACK
        c.send(raw_subscribe(4, 1, [("nl/#", 1)]))
        assert c.recv().type == 9  # SUBACK
        c.send(raw_publish(4, "nl/x", b"self", qos=0))
        if want:
            assert c.recv(WAIT).type == 3, bridge_bit  # its own message
        else:
            c.nothing(QUIET)  # a bridge's own message does not come back
        c.close()


def main():
    a = tap.parse_args()
    print("TAP version 13")
    todo = [(t.__name__, t) for t in TESTS if a.only in t.__name__]
    tap.finish(*tap.run(todo, lambda: Ctx(a.binary, a.workers), tail=12))


if __name__ == "__main__":
    main()
