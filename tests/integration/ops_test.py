#!/usr/bin/python3
"""Operations: /metrics (checked by promtool and scraped by a real Prometheus
server), /healthz, /readyz, $SYS topics, logs, SIGTERM, SIGHUP, configuration
from files, the environment and flags, and startup errors. The real binary on
ephemeral loopback ports. Prints TAP.

usage: ops_test.py STARLING_BINARY [--workers N] [--only SUBSTRING]
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tap  # noqa: E402
from broker import Broker  # noqa: E402
from mqttraw import *  # noqa: E402,F403
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cluster"))
from cluster import free_udp_port  # noqa: E402  (free for UDP and TCP: the cluster's port)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTS = []
_ids = iter(range(1, 1 << 30))


def test(fn):
    TESTS.append(fn)
    return fn


def uniq(prefix="ops"):
    return f"{prefix}/{next(_ids)}"


def http_get(port, path, method="GET", raw=None, timeout=5):
    """(status, headers dict with lower-case names, body bytes)."""
    if raw is not None:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(raw)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        return status, headers, body
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape(port):
    """The exposition as {'name{labels}': float}."""
    status, _, body = http_get(port, "/metrics")
    assert status == 200, status
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def wait_metric(port, pred, what, timeout=5.0):
    """Scrape until pred(samples) holds (workers publish every 100 ms, gauges
    are refreshed every 250 ms)."""
    deadline = time.monotonic() + timeout
    while True:
        m = scrape(port)
        if pred(m):
            return m
        if time.monotonic() > deadline:
            now = {k: v for k, v in m.items() if k.startswith("starling_") and "worker=" not in k}
            raise AssertionError(f"{what}: not seen within {timeout}s; now {now}")
        time.sleep(0.05)


def connected(b, v=5, cid=None, **kw):
    c = Client(b.port, v)
    a = c.connect(cid or f"ops{next(_ids)}", True, **kw)
    assert a.rc == 0, f"CONNACK {a.rc:#x}"
    return c


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- /metrics, /healthz, /readyz --------------------------------------------

@test
def t01_metrics_text_passes_promtool(ctx):
    b = ctx.broker
    status, headers, body = http_get(b.metrics_port, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4"), headers
    assert int(headers["content-length"]) == len(body)
    text = body.decode()
    for family in ("starling_connections", "starling_messages_received_total",
                   "starling_worker_loop_busy_seconds", "starling_memory_allocated_bytes",
                   "process_cpu_seconds_total"):
        assert f"# TYPE {family} " in text, family
    r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    # promtool prints lint problems (naming, missing HELP) even when it exits 0.
    assert not (r.stdout + r.stderr).strip(), r.stdout.decode() + r.stderr.decode()
    workers = scrape(b.metrics_port)["starling_workers"]
    assert workers == ctx.workers, workers


@test
def t01_counters_move_with_traffic(ctx):
    b = ctx.broker
    port = b.metrics_port
    before = scrape(port)
    t = uniq()
    sub = connected(b)
    sub.send(subscribe(5, 1, [(t, 2)]))
    sub.expect(SUBACK)
    pub = connected(b)
    for _ in range(10):
        pub.send(publish(5, t, b"q0"))
    for i in range(5):
        pub.send(publish(5, t, b"q1", qos=1, pid=i + 1))
        pub.expect(PUBACK)
    for i in range(3):
        pub.send(publish(5, t, b"q2", qos=2, pid=100 + i))
        pub.expect(PUBREC)
        pub.send(bytes([0x62, 2, 0, 100 + i]))  # PUBREL
        pub.expect(PUBCOMP)
    got = {0: 0, 1: 0, 2: 0}
    while sum(got.values()) < 18:
        p = sub.recv()
        if p.type == PUBREL:
            sub.send(bytes([0x70, 2]) + p.pid.to_bytes(2, "big"))  # PUBCOMP
            continue
        assert p.type == PUBLISH, p
        got[p.qos] += 1
        if p.qos == 1:
            sub.send(bytes([0x40, 2]) + p.pid.to_bytes(2, "big"))  # PUBACK
        elif p.qos == 2:
            sub.send(bytes([0x50, 2]) + p.pid.to_bytes(2, "big"))  # PUBREC
    assert got == {0: 10, 1: 5, 2: 3}, got

    def d(m, k):
        return m.get(k, 0) - before.get(k, 0)

    def moved(m):
        return (d(m, 'starling_messages_received_total{qos="0"}') == 10
                and d(m, 'starling_messages_received_total{qos="1"}') == 5
                and d(m, 'starling_messages_received_total{qos="2"}') == 3
                and d(m, 'starling_messages_delivered_total{qos="0"}') >= 10
                and d(m, 'starling_messages_delivered_total{qos="1"}') >= 5
                and d(m, 'starling_messages_delivered_total{qos="2"}') >= 3
                and d(m, 'starling_connects_total{code="0x00",reason="success"}') == 2
                and d(m, "starling_connections_accepted_total") == 2
                and m["starling_connections"] >= 2
                and m['starling_sessions{state="online"}'] >= 2
                and d(m, "starling_network_received_bytes_total") > 18 * 10
                and d(m, "starling_network_sent_bytes_total") > 18 * 10)
    wait_metric(port, moved, "message, connect and byte counters")
    mid = scrape(port)
    sub.send(disconnect(5))
    pub.send(disconnect(5))
    sub.closed()
    pub.closed()
    wait_metric(port, lambda m: m['starling_connections_closed_total{reason="client_disconnect"}']
                - mid['starling_connections_closed_total{reason="client_disconnect"}'] == 2
                and m["starling_connections"] == mid["starling_connections"] - 2,
                "two client disconnects")


@test
def t01_drops_and_close_reasons_are_counted(ctx):
    b = ctx.broker
    port = b.metrics_port
    before = scrape(port)
    c = connected(b)
    c.send(publish(5, uniq("nobody-listens"), b"x", qos=1, pid=7))
    assert c.expect(PUBACK).rc == 0
    c.send(publish(5, "$SYS/broker/forged", b"x", qos=1, pid=8))
    assert c.expect(PUBACK).rc == 0x87, "clients may not publish into $SYS/"
    # A bridge's state (mosquitto's bridges send it, and their will on it):
    # one level between connection/ and /state, nothing else under $SYS/.
    c.send(publish(5, "$SYS/broker/connection/edge-1/state", b"1", qos=1, pid=9))
    assert c.expect(PUBACK).rc == 0, "a bridge may publish its state"
    c.send(publish(5, "$SYS/broker/connection/a/b/state", b"1", qos=1, pid=10))
    assert c.expect(PUBACK).rc == 0x87, "only one level names the bridge"
    g = Client(b.port, 5)
    g.send(b"\x10\xff\xff\xff\xff\x7f")  # remaining length over 4 bytes
    g.closed()
    r = Client(b.port, 4)  # the refusal comes in 3.1.1's form
    r.send(pkt(0x10, s("MQTT") + bytes([9, 2, 0, 60]) + s("x")))  # level 9
    assert r.expect(CONNACK).rc == 0x01  # 3.1.1: unacceptable protocol version
    r.closed()

    def d(m, k):
        return m.get(k, 0) - before.get(k, 0)

    wait_metric(port, lambda m: d(m, 'starling_messages_dropped_total{reason="no_subscribers"}') == 2
                and d(m, 'starling_messages_dropped_total{reason="not_authorized"}') == 2
                and d(m, 'starling_connections_closed_total{reason="protocol_error"}') == 1
                and d(m, 'starling_connections_closed_total{reason="connect_refused"}') == 1
                and d(m, 'starling_connects_total{code="0x84",reason="unsupported protocol version"}') == 1,
                "drops by reason, closes by reason, refused CONNECT by code")
    c.close()


@test
def t01_gauges_follow_state(ctx):
    b = ctx.broker
    port = b.metrics_port
    before = scrape(port)
    t = uniq()
    c = connected(b, cid=f"gauge{next(_ids)}", p=[(0x11, 300)])  # session expiry 300 s
    c.send(subscribe(5, 1, [(t + "/+", 1), ("$share/g1/" + t, 1)]))
    c.expect(SUBACK)
    pub = connected(b)
    pub.send(publish(5, t + "/r", b"kept", qos=1, pid=1, retain=True))
    pub.expect(PUBACK)
    c.recv()  # the retained one, live
    wait_metric(port, lambda m: m["starling_subscriptions"] - before["starling_subscriptions"] == 2
                and m["starling_shared_groups"] - before["starling_shared_groups"] == 1
                and m["starling_retained_messages"] - before["starling_retained_messages"] == 1
                and m["starling_retained_bytes"] > before["starling_retained_bytes"],
                "subscriptions, shared groups and retained gauges")
    c.close()  # abnormal close: the session stays, offline
    for i in range(3):
        pub.send(publish(5, t + "/q", b"queued", qos=1, pid=10 + i))
        pub.expect(PUBACK)
    wait_metric(port, lambda m: m['starling_sessions{state="offline"}']
                - before['starling_sessions{state="offline"}'] == 1
                and m["starling_queued_messages"] - before["starling_queued_messages"] == 3
                and m["starling_queued_bytes"] > before["starling_queued_bytes"],
                "an offline session with 3 queued messages")
    pub.send(publish(5, t + "/r", b"", qos=1, pid=20, retain=True))  # delete the retained one
    pub.expect(PUBACK)
    pub.close()


@test
def t01_per_worker_loop_metrics(ctx):
    m = scrape(ctx.broker.metrics_port)
    for w in range(ctx.workers):
        assert m[f'starling_worker_loop_turns_total{{worker="{w}"}}'] > 0
        inf = m[f'starling_worker_loop_busy_seconds_bucket{{worker="{w}",le="+Inf"}}']
        assert inf == m[f'starling_worker_loop_busy_seconds_count{{worker="{w}"}}'] > 0
        assert f'starling_worker_mailbox_depth{{worker="{w}"}}' in m
        assert f'starling_worker_mailbox_overflows_total{{worker="{w}"}}' in m
    assert f'starling_worker_loop_turns_total{{worker="{ctx.workers}"}}' not in m
    assert m["starling_memory_allocated_bytes"] > 0
    assert m["process_resident_memory_bytes"] > 0 and m["process_open_fds"] > 0


@test
def t01_http_endpoints_and_bad_requests(ctx):
    port = ctx.broker.metrics_port
    st, h, body = http_get(port, "/healthz")
    assert (st, body) == (200, b"ok\n"), (st, body)
    st, h, body = http_get(port, "/readyz")
    assert (st, body) == (200, b"ready\n"), (st, body)
    st, h, body = http_get(port, "/metrics", method="HEAD")
    assert st == 200 and body == b"" and int(h["content-length"]) > 1000
    assert http_get(port, "/nope")[0] == 404
    st, h, _ = http_get(port, "/metrics", method="POST")
    assert st == 405 and h["allow"] == "GET, HEAD", (st, h)
    assert http_get(port, None, raw=b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")[0] == 400
    assert http_get(port, None, raw=b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n\r\n")[0] == 414
    big = b"GET /metrics HTTP/1.1\r\n" + b"X-Pad: " + b"p" * 9000 + b"\r\n\r\n"
    assert http_get(port, None, raw=big)[0] == 431
    # Clients that connect and say nothing cost a slot each, not the
    # listener (t07 has the hostile versions of this).
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    assert http_get(port, "/healthz", timeout=2)[0] == 200
    for s_ in idle:
        s_.close()


# ---- Prometheus --------------------------------------------------------------

@test
def t02_real_prometheus_scrapes_the_broker(ctx):
    b = ctx.broker
    prom = shutil.which("prometheus")
    assert prom, "prometheus is not installed (deploy/setup.sh --test installs it)"
    work = tempfile.mkdtemp(prefix="starling-prom-")
    web = free_port()
    with open(os.path.join(work, "prometheus.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: starling\n    static_configs:\n"
                f"      - targets: ['127.0.0.1:{b.metrics_port}']\n")
    log = open(os.path.join(work, "log"), "wb")
    p = subprocess.Popen([prom, f"--config.file={work}/prometheus.yml",
                          f"--storage.tsdb.path={work}/data", f"--web.listen-address=127.0.0.1:{web}",
                          "--log.level=warn"], stdout=log, stderr=log)

    def query(q):
        url = f"http://127.0.0.1:{web}/api/v1/query?" + urllib.parse.urlencode({"query": q})
        with urllib.request.urlopen(url, timeout=5) as r:
            res = json.load(r)
        assert res["status"] == "success", res
        return [(x["metric"], float(x["value"][1])) for x in res["data"]["result"]]

    def until(q, pred, what, timeout=40):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise AssertionError("prometheus exited:\n" + open(log.name).read()[-2000:])
            try:
                last = query(q)
                if pred(last):
                    return last
            except (OSError, ValueError, http.client.HTTPException):
                pass
            time.sleep(0.5)
        raise AssertionError(f"{what}: last answer {last}")

    try:
        until("up", lambda r: any(m.get("job") == "starling" and v == 1 for m, v in r),
              "up{job=starling} == 1")
        first = until("sum(starling_messages_received_total)", lambda r: len(r) == 1,
                      "a first sample of the received counter")[0][1]
        t = uniq()
        c = connected(b)
        for i in range(25):
            c.send(publish(5, t, b"scraped", qos=1, pid=i + 1))
            c.expect(PUBACK)
        until("sum(starling_messages_received_total)",
              lambda r: len(r) == 1 and r[0][1] >= first + 25,
              "the received counter moving by the 25 messages sent")
        until("starling_connections", lambda r: len(r) == 1 and r[0][1] >= 1,
              "the connections gauge")
        c.close()
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


@test
def t02_dashboard_uses_only_exported_metrics(ctx):
    path = os.path.join(ROOT, "deploy", "grafana", "starling-dashboard.json")
    with open(path) as f:
        dash = json.load(f)
    exprs = []

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k in ("expr", "query") and isinstance(v, str):
                    exprs.append(v)
                else:
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(dash)
    assert len(exprs) >= 20, len(exprs)
    _, _, body = http_get(ctx.broker.metrics_port, "/metrics")
    families = set(re.findall(r"^# TYPE (\S+) (\S+)$", body.decode(), re.M))
    # The cluster's families appear on a node with cluster_listen: one alone.
    # Its one port must be free for UDP and TCP, and another test may take
    # it between the check and the start (CI runs two at once): again then.
    for attempt in range(5):
        port = free_udp_port()
        try:
            b = Broker(ctx.binary, ctx.workers,
                       [f"--cluster-listen=127.0.0.1:{port}", "--node-name=solo"])
            break
        except RuntimeError as e:
            if "Address already in use" not in str(e) or attempt == 4:
                raise
    try:
        _, _, body = http_get(b.metrics_port, "/metrics")
    finally:
        assert b.stop() == 0
        b.cleanup()
    families |= set(re.findall(r"^# TYPE (\S+) (\S+)$", body.decode(), re.M))
    assert any(n.startswith("starling_cluster_") for n, _ in families)
    names = {n for n, _ in families}
    for n, kind in families:
        if kind == "histogram":
            names |= {n + "_bucket", n + "_sum", n + "_count"}
    used = set()
    for e in exprs:
        used |= set(re.findall(r"\b((?:starling|process)_[a-z0-9_]+)", e))
    missing = used - names
    assert not missing, f"the dashboard queries metrics /metrics does not have: {missing}"


# ---- $SYS ---------------------------------------------------------------------

@test
def t03_sys_topics(ctx):
    b = Broker(ctx.binary, ctx.workers, ["--sys-interval-s=1"])
    try:
        c = Client(b.port, 4)
        assert c.connect("sys-reader", True).rc == 0
        c.send(subscribe(4, 1, [("$SYS/broker/#", 0)]))
        c.expect(SUBACK)
        seen = {}
        deadline = time.monotonic() + 10
        pub = connected(b, v=4)
        for i in range(7):
            pub.send(publish(4, "sys/test", b"m"))
        while time.monotonic() < deadline and not (
                seen.get("$SYS/broker/publish/messages/received", "0") != "0"
                and seen.get("$SYS/broker/clients/connected") == "2"):
            try:
                p = c.expect(PUBLISH, timeout=1)
                seen[p.topic.decode()] = p.payload.decode()
            except TimeoutError:
                pass
        assert seen.get("$SYS/broker/version") == "starling 0.1.0", seen.get("$SYS/broker/version")
        assert re.fullmatch(r"\d+ seconds", seen["$SYS/broker/uptime"]), seen["$SYS/broker/uptime"]
        assert seen.get("$SYS/broker/clients/connected") == "2", seen
        assert int(seen["$SYS/broker/publish/messages/received"]) >= 7, seen
        assert int(seen["$SYS/broker/clients/maximum"]) >= 2, seen
        for k in ("bytes/received", "bytes/sent", "messages/sent", "subscriptions/count",
                  "retained messages/count", "load/messages/received/1min",
                  "load/connections/15min", "heap/current"):
            assert "$SYS/broker/" + k in seen, k
        # Retained: a new subscriber gets the current values at once.
        late = Client(b.port, 4)
        assert late.connect("sys-late", True).rc == 0
        late.send(subscribe(4, 1, [("$SYS/broker/version", 0)]))
        late.expect(SUBACK)
        p = late.expect(PUBLISH)
        assert p.retain and p.payload == b"starling 0.1.0"
        # '#' does not match $SYS topics [MQTT-4.7.2-1].
        wild = Client(b.port, 4)
        assert wild.connect("sys-wild", True).rc == 0
        wild.send(subscribe(4, 1, [("#", 0)]))
        wild.expect(SUBACK)
        wild.nothing(1.5)
        for x in (c, late, wild, pub):
            x.close()
        assert b.stop() == 0
        assert not b.sanitizer_report(), b.sanitizer_report()
    finally:
        b.cleanup()


# ---- logs -------------------------------------------------------------------

@test
def t04_lifecycle_lines_and_rate_limit(ctx):
    b = Broker(ctx.binary, ctx.workers, ["--log-json=true"], log_level="info")
    try:
        c = connected(b, cid="lifecycle-1")
        c.send(disconnect(5))
        c.closed()
        # A flood of bad connections: each would log; the log stays small.
        flood_start = time.monotonic()
        for _ in range(1000):
            g = socket.create_connection(("127.0.0.1", b.port))
            g.sendall(b"\xff\xff")
            g.close()
        flood_s = time.monotonic() - flood_start
        time.sleep(1.2)
        # Lines from the flooded call sites after their window closed: each
        # (per worker) first says how many it suppressed.
        for _ in range(8 * ctx.workers):
            g = socket.create_connection(("127.0.0.1", b.port))
            g.sendall(b"\xff\xff")
            g.close()
        c = connected(b, cid="lifecycle-2")
        c.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and b"lifecycle-2" not in b.text():
            time.sleep(0.05)
        lines = b.text().decode().splitlines()
        objs = [json.loads(ln) for ln in lines]  # every line is one JSON object
        msgs = [o["msg"] for o in objs]
        conn = [m for m in msgs if m.startswith("connected ") and "lifecycle-1" in m]
        assert conn and " on mqtt 127.0.0.1:" in conn[0], conn
        disc = [m for m in msgs if m.startswith("disconnected ") and "lifecycle-1" in m]
        assert disc and disc[0].endswith(": client_disconnect"), disc
        bad = [m for m in msgs if m.startswith("disconnected ") and "protocol_error" in m]
        assert all("reason code 0x" in m for m in bad), bad[:3]
        # At most 50 a second per call site and worker (LOG_CLIENT_RL).
        limit = 50 * ctx.workers * (int(flood_s) + 3)
        assert 0 < len(bad) <= min(limit, 900), (len(bad), limit)
        assert any("suppressed" in m for m in msgs), "no line says what was suppressed"
        assert b.stop() == 0
    finally:
        b.cleanup()


# ---- SIGTERM ------------------------------------------------------------------

@test
def t05_sigterm_wills_readiness_grace(ctx):
    b = Broker(ctx.binary, ctx.workers, ["--shutdown-grace-ms=2000"])
    try:
        t = uniq("will")
        watcher = connected(b, cid="will-watcher")
        watcher.send(subscribe(5, 1, [(t, 1)]))
        watcher.expect(SUBACK)
        dying = connected(b, cid="will-owner", will={"topic": t, "payload": b"gone", "qos": 1})
        # A subscriber that never reads, with a full outbox: it holds the
        # node up until the grace period ends, and no longer.
        stuck = Client(b.port, 5)
        stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        assert stuck.connect("stuck", True).rc == 0
        stuck.send(subscribe(5, 1, [(t + "/flood", 0)]))
        stuck.expect(SUBACK)
        flood = connected(b)
        # 12 MB: more than the kernel's socket buffers and the 1 MiB outbox.
        for _ in range(6000):
            flood.send(publish(5, t + "/flood", b"f" * 2000))
        flood.send(publish(5, t + "/flood", b"f", qos=1, pid=1))
        flood.expect(PUBACK, timeout=10)
        start = time.monotonic()
        b.proc.send_signal(signal.SIGTERM)
        st, _, body = (0, 0, b"")
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                st, _, body = http_get(b.metrics_port, "/readyz", timeout=1)
            except OSError as e:
                body = repr(e).encode()
                break
            if st == 503:
                break
            time.sleep(0.02)
        assert (st, body) == (503, b"shutting down\n"), (st, body)
        got = watcher.closed(timeout=5)
        assert got[-1].type == DISCONNECT and got[-1].rc == 0x8B, got
        if ctx.workers == 1:
            # Same worker: the will is published before the DISCONNECT.
            wills = [p for p in got if p.type == PUBLISH and p.topic == t.encode()]
            assert wills and wills[0].payload == b"gone", got
        for x in (dying, flood):
            x.closed(timeout=5)
        rc = b.proc.wait(15)
        took = time.monotonic() - start
        assert rc == 0, rc
        assert 1.5 < took < 6, f"exit took {took:.1f}s with a 2 s grace and a stuck client"
        assert b"SIGTERM: stopping (grace 2000 ms)" in b.text()
        assert not b.sanitizer_report(), b.sanitizer_report()
        stuck.close()
    finally:
        b.cleanup()


# ---- SIGHUP and configuration ---------------------------------------------------

@test
def t06_sighup_reloads_log_level_and_keeps_connections(ctx):
    work = tempfile.mkdtemp(prefix="starling-conf-")
    conf = os.path.join(work, "starling.conf")
    with open(conf, "w") as f:
        f.write("# test\nlog_level = info\nmax_connections = 1000\n")
    # A --log-level flag would override the file on reload too: pass none.
    b = Broker(ctx.binary, ctx.workers, ["-c", conf], log_level=None)
    try:
        c = connected(b, cid="hup")
        with open(conf, "w") as f:
            f.write("log_level = debug\nmax_connections = 2000\n")
        b.proc.send_signal(signal.SIGHUP)
        wait_log(b, b"SIGHUP: log_level = debug")
        assert b"SIGHUP: max_connections = 2000 (takes effect at restart)" in b.text()
        c.send(pkt(0xC0, b""))
        c.expect(PINGRESP)  # still connected
        c.send(disconnect(5))
        c.closed()
        wait_log(b, b"DEBUG disconnect from")  # debug lines now written
        with open(conf, "w") as f:
            f.write("log_level = loud\n")
        b.proc.send_signal(signal.SIGHUP)
        wait_log(b, b"keeping the running configuration")
        assert re.search(rb"SIGHUP: \S*starling\.conf:1: log_level: ", b.text()), b.text()[-500:]
        d = connected(b, cid="hup-2")  # still serving, still at debug
        d.send(disconnect(5))
        d.closed()
        wait_log(b, b'DEBUG disconnect from 127.0.0.1', count=2)
        assert b.stop() == 0
    finally:
        b.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def wait_log(b, needle, timeout=5, count=1):
    deadline = time.monotonic() + timeout
    while b.text().count(needle) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not in the log:\n" + b.text().decode()[-1500:])
        time.sleep(0.05)


@test
def t06_file_env_and_flags_in_order(ctx):
    work = tempfile.mkdtemp(prefix="starling-conf-")
    conf = os.path.join(work, "s.conf")
    with open(conf, "w") as f:
        f.write("sys_interval_s = 30\nshutdown_grace_ms = 100\nmax_qos = 1\n")
    env = dict(os.environ, STARLING_SHUTDOWN_GRACE_MS="200", STARLING_MAX_QOS="0")
    try:
        r = subprocess.run([ctx.binary, "--check-config", conf, "--max-qos=2"], env=env,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert "\nsys_interval_s = 30\n" in r.stdout  # file
        assert "\nshutdown_grace_ms = 200\n" in r.stdout  # environment over file
        assert "\nmax_qos = 2\n" in r.stdout  # flag over environment
        with open(conf, "w") as f:
            f.write("# ok\n\nsys_interval_s = 10s\n")
        r = subprocess.run([ctx.binary, "--check-config", conf], capture_output=True, text=True)
        assert r.returncode != 0
        assert f"{conf}:3: sys_interval_s:" in r.stderr, r.stderr
        with open(conf, "w") as f:
            f.write("no_such_key = 1\n")
        r = subprocess.run([ctx.binary, "-c", conf], capture_output=True, text=True, timeout=10)
        assert r.returncode != 0 and f'{conf}:1: unknown key "no_such_key"' in r.stderr, r.stderr
        r = subprocess.run([ctx.binary, "--listen=127.0.0.1:0"], capture_output=True, text=True,
                           timeout=10, env=dict(os.environ, STARLING_METRICS="maybe"))
        assert r.returncode != 0 and "environment" in r.stderr and "metrics" in r.stderr, r.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)


@test
def t06_startup_errors_are_one_line(ctx):
    for what in ("listen", "metrics-listen"):
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        args = [ctx.binary, "--workers=1", "--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0",
                f"--{what}=127.0.0.1:{port}"]
        try:
            r = subprocess.run(args, capture_output=True, text=True, timeout=10)
        finally:
            holder.close()
        assert r.returncode != 0
        errors = [ln for ln in r.stderr.splitlines() if " ERROR " in ln]
        assert len(errors) == 1, r.stderr
        assert f"127.0.0.1:{port}: Address already in use" in errors[0], errors


# ---- what a node exposes (defaults, first log line) -------------------------

# Run inside a network namespace of its own (unshare -rn): its loopback is
# private, so the broker can start on its real defaults (ports 1883, 9100)
# without touching the host's. Brings lo up, starts the broker with no
# listener configured, and says which loopback addresses accept: bound to
# 127.0.0.1 only, a connect to 127.0.0.2 is refused; bound to 0.0.0.0 it
# would succeed. Prints one JSON object.
NETNS_DEFAULTS = r"""
import fcntl, json, os, signal, socket, struct, subprocess, sys, tempfile, time
s = socket.socket()
flags = struct.unpack("16sH14x", fcntl.ioctl(s, 0x8913, struct.pack("16sH14x", b"lo", 0)))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", flags | 1))  # SIOCSIFFLAGS IFF_UP
s.close()
log = tempfile.TemporaryFile()
env = {k: v for k, v in os.environ.items() if not k.startswith("STARLING_")}
p = subprocess.Popen([sys.argv[1], "--workers=1"], stdout=log, stderr=log, env=env)
def text():
    log.seek(0)
    return log.read().decode(errors="replace")
deadline = time.monotonic() + 10
while "running" not in text() and p.poll() is None and time.monotonic() < deadline:
    time.sleep(0.02)
def accepts(host, port, send=b""):
    try:
        with socket.create_connection((host, port), timeout=2) as c:
            c.sendall(send)
            return c.recv(16).hex() if send else "open"
    except OSError as e:
        return type(e).__name__
out = {"log": text()}
connect = b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01t"
for host in ("127.0.0.1", "127.0.0.2"):
    out[host + ":1883"] = accepts(host, 1883, connect)
    out[host + ":9100"] = accepts(host, 9100, b"GET /healthz HTTP/1.0\r\n\r\n")
out["[::1]:1883"] = accepts("::1", 1883, connect)
p.send_signal(signal.SIGTERM)
out["rc"] = p.wait(10)
out["log"] = text()
print(json.dumps(out))
"""


@test
def t07_defaults_listen_on_loopback_only(ctx):
    r = subprocess.run([ctx.binary, "--check-config", "/dev/null"], capture_output=True,
                       text=True, env={k: v for k, v in os.environ.items()
                                       if not k.startswith("STARLING_")})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    listen = next(ln for ln in lines if ln.startswith("listen = "))
    assert listen in ("listen = 127.0.0.1:1883,[::1]:1883", "listen = 127.0.0.1:1883"), listen
    assert "metrics_listen = 127.0.0.1:9100" in lines, r.stdout
    assert lines[0].startswith("# listeners mqtt 127.0.0.1:1883 (anonymous allowed)"), lines[0]
    assert "; metrics http 127.0.0.1:9100 (no authentication);" in lines[0], lines[0]
    # The real thing, on the real default ports, in a private network
    # namespace (where unprivileged user namespaces are allowed).
    if subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode != 0:
        print("  # unshare -rn not permitted here: defaults checked through --check-config only")
        return
    r = subprocess.run(["unshare", "-rn", sys.executable, "-c", NETNS_DEFAULTS, ctx.binary],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["127.0.0.1:1883"] == "20020000", out  # anonymous CONNACK, accepted
    assert out["127.0.0.1:9100"].startswith("485454502f312e"), out  # "HTTP/1."
    if "[::1]" in listen:
        assert out["[::1]:1883"] == "20020000", out
    assert out["127.0.0.2:1883"] == "ConnectionRefusedError", out
    assert out["127.0.0.2:9100"] == "ConnectionRefusedError", out
    assert out["rc"] == 0, out["log"]
    first = out["log"].splitlines()[0]
    assert "starting on embedded defaults" in first and "mqtt 127.0.0.1:1883 (anonymous allowed)" \
        in first, first


@test
def t07_anonymous_beyond_loopback_warns(ctx):
    def check(*flags):
        r = subprocess.run([ctx.binary, "--check-config", "/dev/null", *flags],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stderr
    # Checked without binding: the warning is the same at start (a WARN line).
    err = check("--listen=0.0.0.0:1883")
    assert err == ("starling: warning: anonymous clients may connect from other hosts on mqtt "
                   "0.0.0.0:1883 with no ACL: set password_file (and acl_file), or "
                   "allow_anonymous = true if that is meant\n"), err
    assert check("--listen=127.0.0.1:1883,[::1]:1883") == "", "loopback: no warning"
    assert check("--listen=0.0.0.0:1883", "--allow-anonymous=true") == "", "meant: no warning"
    assert check("--listen=0.0.0.0:1883", "--allow-anonymous=false") == ""
    assert "ws [::]:8080" in check("--ws-listen=[::]:8080")
    assert check("--ws-listen=[::]:8080", "--ws-allow-anonymous=true") == ""


@test
def t07_first_log_line_says_what_is_exposed(ctx):
    work = tempfile.mkdtemp(prefix="starling-exposed-")
    pw = os.path.join(work, "passwd")
    acl = os.path.join(work, "acl")
    subprocess.run([ctx.binary, "passwd", "-c", "-b", "-I", "1000", pw, "alice", "s3cret"],
                   check=True, capture_output=True)
    with open(acl, "w") as f:
        f.write("user alice\ntopic readwrite a/#\n")
    b = Broker(ctx.binary, 2, ["--ws-listen=127.0.0.2:0", f"--password-file={pw}",
                               f"--acl-file={acl}", "--ws-allow-anonymous=true"])
    try:
        first = b.text().decode().splitlines()[0]
        assert " INFO starling " in first and "starting on embedded defaults" in first, first
        _, _, exposed = first.partition("(no config file given): ")
        assert exposed == (
            "listeners mqtt 127.0.0.1:0 (anonymous refused), ws 127.0.0.2:0 (anonymous allowed); "
            f"metrics http 127.0.0.1:0 (no authentication); password_file {pw}; acl_file {acl}; "
            "persistence off (a restart loses sessions, queued and retained messages); 2 workers"), first
        # What the line says is what the node does: anonymous refused on
        # mqtt (5.0: 0x87 not authorized) ...
        c = Client(b.port, 5)
        assert c.connect("anon-mqtt", True).rc == 0x87
        c.closed()
        assert b.stop() == 0
    finally:
        b.cleanup()
        shutil.rmtree(work, ignore_errors=True)


# ---- --check-config loads what a start loads --------------------------------

@test
def t08_check_config_loads_what_start_loads(ctx):
    work = tempfile.mkdtemp(prefix="starling-check-")
    def path(name):
        return os.path.join(work, name)
    def write(name, text):
        with open(path(name), "w") as f:
            f.write(text)
        return path(name)
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)
    try:
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", path("k1.pem"), "-out", path("c1.pem"), "-subj", "/CN=localhost",
                "-days", "2")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                path("k2.pem"))
        subprocess.run([ctx.binary, "passwd", "-c", "-b", "-I", "1000", path("pw"), "alice",
                        "s3cret"], check=True, capture_output=True)
        write("acl", "user alice\ntopic readwrite a/#\n")
        garbage = write("garbage", "alice $7$not-a-hash\nno colon here\n")
        bad_acl = write("bad.acl", "user alice\ntopic\n")
        tls = ["tls_listen = 127.0.0.1:0", f"tls_cert_file = {path('c1.pem')}",
               f"tls_key_file = {path('k1.pem')}"]
        good = [f"password_file = {path('pw')}", f"acl_file = {path('acl')}", *tls,
                f"tls_ca_file = {path('c1.pem')}"]
        cases = [
            # (config lines, what the one-line error must hold)
            ([f"password_file = {path('none')}"],
             f"password_file {path('none')}: cannot open: No such file or directory"),
            ([f"password_file = {garbage}"], f"password_file {garbage}:1: "),
            ([f"acl_file = {bad_acl}"], f"acl_file {bad_acl}:2: topic: "),
            (["tls_listen = 127.0.0.1:0", f"tls_cert_file = {path('none')}",
              f"tls_key_file = {path('k1.pem')}"], f"tls_cert_file {path('none')}: "),
            (["tls_listen = 127.0.0.1:0", f"tls_cert_file = {path('k1.pem')}",
              f"tls_key_file = {path('k1.pem')}"], f"tls_cert_file {path('k1.pem')}: "),
            (["tls_listen = 127.0.0.1:0", f"tls_cert_file = {path('c1.pem')}",
              f"tls_key_file = {path('k2.pem')}"],
             f"tls_key_file {path('k2.pem')}: does not match the certificate in "
             f"{path('c1.pem')}"),
            ([*tls, f"tls_ca_file = {path('none')}"], f"tls_ca_file {path('none')}: "),
            ([*tls, "tls_ciphers = NOT-A-CIPHER"], 'tls_ciphers "NOT-A-CIPHER": '),
            (["wss_listen = 127.0.0.1:0", f"tls_cert_file = {path('c1.pem')}",
              f"tls_key_file = {path('k2.pem')}"], f"tls_key_file {path('k2.pem')}: "),
        ]
        flags = ["--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0", "--workers=1"]
        for lines, want in cases:
            conf = write("s.conf", "\n".join(lines) + "\n")
            r = subprocess.run([ctx.binary, "--check-config", conf, *flags], capture_output=True,
                               text=True, timeout=10)
            assert r.returncode != 0, (lines, r.stdout[-300:])
            assert r.stdout == "", (lines, r.stdout[-300:])
            assert r.stderr.startswith("starling: " + want), (lines, r.stderr)
            checked = r.stderr.strip()[len("starling: "):]
            # ... and a start refuses the same file with the same words.
            r = subprocess.run([ctx.binary, "-c", conf, *flags], capture_output=True, text=True,
                               timeout=10)
            assert r.returncode != 0, lines
            errors = [ln for ln in r.stderr.splitlines() if " ERROR " in ln]
            assert len(errors) == 1 and errors[0].endswith(" ERROR cannot start: " + checked), \
                (checked, r.stderr)
        conf = write("s.conf", "\n".join(good) + "\n")
        r = subprocess.run([ctx.binary, "--check-config", conf, *flags], capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert f"\npassword_file = \"{path('pw')}\"\n" in r.stdout, r.stdout
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---- the README's examples ---------------------------------------------------

@test
def t09_readme_acl_example_loads_and_defaults_match(ctx):
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    m = re.search(r"\n    cat > acl <<'ACL'\n(.*?)\n    ACL\n", readme, re.S)
    assert m, "README has no ACL example"
    acl = "\n".join(ln[4:] for ln in m.group(1).splitlines()) + "\n"
    work = tempfile.mkdtemp(prefix="starling-readme-")
    try:
        pw = os.path.join(work, "passwords")
        for user in ("alice", "bob"):
            subprocess.run([ctx.binary, "passwd", *(["-c"] if user == "alice" else []), "-b",
                            "-I", "1000", pw, user, "x"], check=True, capture_output=True)
        path = os.path.join(work, "acl")
        with open(path, "w") as f:
            f.write(acl)
        r = subprocess.run([ctx.binary, "--check-config", "/dev/null", f"--password-file={pw}",
                            f"--acl-file={path}"], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        assert "(anonymous refused)" in r.stdout.splitlines()[0], r.stdout.splitlines()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # The defaults the README states are the ones the binary has.
    r = subprocess.run([ctx.binary, "--check-config", "/dev/null"], capture_output=True,
                       text=True, env={k: v for k, v in os.environ.items()
                                       if not k.startswith("STARLING_")})
    assert "MQTT on\n`127.0.0.1:1883` and `[::1]:1883`, metrics on `127.0.0.1:9100`" in readme
    assert "\nmetrics_listen = 127.0.0.1:9100\n" in r.stdout
    assert re.search(r"\nlisten = 127\.0\.0\.1:1883(,\[::1\]:1883)?\n", r.stdout), r.stdout


# ---- the ops listener under hostile clients, and its credentials ---------------

def probe(port, path="/healthz", host="127.0.0.1", headers=None, timeout=2):
    """One probe as a kubelet sends it: new connection, GET, read, close.
    (status, headers, body); status 0 when it was not answered in timeout."""
    try:
        c = http.client.HTTPConnection(host, port, timeout=timeout)
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    except OSError as e:
        return 0, {}, repr(e).encode()


def stopped_clean(b):
    """SIGTERM: exit 0 and no sanitizer report (hostile clients, evictions
    and credential files must not leak or corrupt anything)."""
    rc = b.stop()
    report = b.sanitizer_report()
    assert rc == 0 and not report, f"exit {rc}: {report}"


def hostile(port, idle, slow):
    """idle connections that send nothing, and slowloris ones that sent part
    of a request head and dribble one more byte per call of the returned
    function."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(idle)]
    drip = []
    for _ in range(slow):
        s_ = socket.create_connection(("127.0.0.1", port))
        s_.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        drip.append(s_)

    def dribble():
        for s_ in drip:
            try:
                s_.send(b"a")
            except OSError:
                pass
    return socks + drip, dribble


def closed_by_peer(s_, timeout):
    """True when the server closed s_ (EOF or reset) within timeout."""
    s_.settimeout(timeout)
    try:
        while True:
            if not s_.recv(4096):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


@test
def t07_probes_answered_under_idle_and_slowloris_connections(ctx):
    # 200 connections that never finish a request, then a kubelet's probes
    # (a new connection each, 2 s timeout): every one must be answered.
    # Before: 16 slots of 5 s each, so a probe waited for a slot to expire.
    b = Broker(ctx.binary, ctx.workers)
    socks = []
    try:
        port = b.metrics_port
        socks, dribble = hostile(port, 100, 100)
        failed = []
        for i in range(30):
            st, _, body = probe(port, "/healthz" if i % 2 else "/readyz")
            if st != 200:
                failed.append((i, st, body))
            dribble()
            time.sleep(0.05)
        assert not failed, f"{len(failed)} of 30 probes failed: {failed[:3]}"
        # Past the table (256): the oldest hostile ones were closed for newer.
        more, dribble2 = hostile(port, 200, 100)
        socks += more
        for i in range(10):
            st, _, body = probe(port)
            assert st == 200, (i, st, body)
            dribble2()
        m = scrape(port)
        assert m['starling_ops_connections_dropped_total{reason="evicted"}'] >= 200 + 200 - 256, m
        assert m["starling_ops_connections"] <= 256, m
        stopped_clean(b)
    finally:
        for s_ in socks:
            s_.close()
        b.cleanup()


@test
def t07_small_table_evicts_oldest_and_keeps_probes(ctx):
    b = Broker(ctx.binary, ctx.workers, ["--metrics-max-connections=4"])
    socks = []
    try:
        port = b.metrics_port
        socks, _ = hostile(port, 10, 10)
        for _ in range(10):
            st, _, body = probe(port)
            assert (st, body) == (200, b"ok\n"), (st, body)
        # The first ones were evicted to make room: closed by the broker.
        assert closed_by_peer(socks[0], 2)
        m = scrape(port)
        assert m['starling_ops_connections_dropped_total{reason="evicted"}'] >= 16, m
        stopped_clean(b)
    finally:
        for s_ in socks:
            s_.close()
        b.cleanup()


@test
def t07_idle_and_slow_connections_time_out(ctx):
    b = Broker(ctx.binary, ctx.workers, ["--metrics-request-timeout-ms=400"])
    socks = []
    try:
        port = b.metrics_port
        socks, dribble = hostile(port, 3, 3)
        # The deadline counts from accept: bytes that keep arriving do not
        # extend it (slowloris), and nothing at all certainly does not.
        deadline = time.monotonic() + 5
        pending = list(socks)
        while pending and time.monotonic() < deadline:
            dribble()
            pending = [s_ for s_ in pending if not closed_by_peer(s_, 0.05)]
        assert not pending, f"{len(pending)} of 6 still open after 5 s"
        m = scrape(port)
        assert m['starling_ops_connections_dropped_total{reason="request_timeout"}'] == 6, m
        assert m["starling_ops_connections"] == 1, m  # the scrape itself
        assert probe(port)[0] == 200
        stopped_clean(b)
    finally:
        for s_ in socks:
            s_.close()
        b.cleanup()


def basic(user_pass):
    import base64
    return {"Authorization": "Basic " + base64.b64encode(user_pass.encode()).decode()}


@test
def t07_metrics_credentials(ctx):
    work = tempfile.mkdtemp(prefix="starling-ops-auth-")
    token_file = os.path.join(work, "token")
    basic_file = os.path.join(work, "basic")
    with open(token_file, "w") as f:
        f.write("s3cret-Token.1\n")  # as `kubectl create secret` or echo leave it
    with open(basic_file, "w") as f:
        f.write("prom:pass word:x\n")
    b = Broker(ctx.binary, ctx.workers, [f"--metrics-token-file={token_file}",
                                         f"--metrics-basic-auth-file={basic_file}"])
    try:
        port = b.metrics_port
        st, h, body = probe(port, "/metrics")
        assert st == 401, (st, body)
        assert b"# TYPE" not in body
        st, _, body = http_get(port, None, raw=b"GET /metrics HTTP/1.1\r\n\r\n")
        assert st == 401
        assert http_get(port, None, raw=b"GET /metrics HTTP/1.0\r\n\r\n")[0] == 401
        wrong = [{"Authorization": "Bearer s3cret-Token.2"},
                 {"Authorization": "Bearer s3cret-Token.1x"},
                 {"Authorization": "Bearer s3cret-Token."},
                 {"Authorization": "Bearer "},
                 {"Authorization": "s3cret-Token.1"},
                 {"Authorization": "Basic s3cret-Token.1"},
                 {"Authorization": "Token s3cret-Token.1"},
                 basic("prom:pass word:y"), basic("prom:pass word"), basic("s3cret-Token.1")]
        for hd in wrong:
            st, _, body = probe(port, "/metrics", headers=hd)
            assert st == 401, (hd, st, body)
        right = [{"Authorization": "Bearer s3cret-Token.1"},
                 {"Authorization": "bearer s3cret-Token.1"},
                 basic("prom:pass word:x")]
        for hd in right:
            st, _, body = probe(port, "/metrics", headers=hd)
            assert st == 200 and b"# TYPE starling_build_info" in body, (hd, st)
        # HEAD needs them too; the probes and the index never do.
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("HEAD", "/metrics")
        r = c.getresponse()
        assert r.status == 401 and 'Bearer realm="starling"' in r.getheader("www-authenticate")
        c.close()
        for path, want in (("/healthz", b"ok\n"), ("/readyz", b"ready\n")):
            assert probe(port, path)[:3:2] == (200, want), path
        # Counted; and the challenge names both schemes.
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s_:
            s_.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
            head = s_.recv(65536).split(b"\r\n\r\n")[0].decode()
        assert 'WWW-Authenticate: Bearer realm="starling"' in head, head
        assert 'WWW-Authenticate: Basic realm="starling", charset="UTF-8"' in head, head
        st, _, body = probe(port, "/metrics", headers=right[0])
        # 1 + 2 raw + 10 wrong + HEAD + the one just above.
        assert re.search(rb"^starling_ops_unauthorized_total 15$", body, re.M), body
        # A rotated secret (a Kubernetes update replaces the file) is used
        # from the next request on; the old token stops working.
        with open(token_file + ".new", "w") as f:
            f.write("rotated-2")
        os.replace(token_file + ".new", token_file)
        assert probe(port, "/metrics", headers=right[0])[0] == 401
        assert probe(port, "/metrics", headers={"Authorization": "Bearer rotated-2"})[0] == 200
        # Two Authorization headers are not a choice between them.
        st, _, _ = http_get(port, None, raw=b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer "
                            b"rotated-2\r\nAuthorization: Bearer x\r\n\r\n")
        assert st == 401, st
        # A token as long as a JWT gets (4 KB).
        jwt = "eyJ" + "a" * 3500 + ".sig"
        with open(token_file + ".new", "w") as f:
            f.write(jwt)
        os.replace(token_file + ".new", token_file)
        assert probe(port, "/metrics", headers={"Authorization": "Bearer " + jwt})[0] == 200
        assert probe(port, "/metrics", headers={"Authorization": "Bearer " + jwt[:-1]})[0] == 401
        with open(token_file + ".new", "w") as f:
            f.write("rotated-2")
        os.replace(token_file + ".new", token_file)
        assert probe(port, "/metrics", headers={"Authorization": "Bearer rotated-2"})[0] == 200
        # A broken replacement keeps the credential in force, with a warning.
        with open(token_file + ".new", "w") as f:
            f.write("")
        os.replace(token_file + ".new", token_file)
        assert probe(port, "/metrics", headers={"Authorization": "Bearer rotated-2"})[0] == 200
        wait_log(b, b"is empty; keeping the credential read before")
        assert b"rotated-2" not in b.text() and b"s3cret" not in b.text()
        stopped_clean(b)
    finally:
        b.cleanup()
        shutil.rmtree(work, ignore_errors=True)


@test
def t07_real_prometheus_scrapes_with_credentials(ctx):
    # Prometheus's own bearer and basic auth (credentials from files, as a
    # Kubernetes secret gives them): both jobs up, the wrong token's down.
    prom = shutil.which("prometheus")
    assert prom, "prometheus is not installed (deploy/setup.sh --test installs it)"
    work = tempfile.mkdtemp(prefix="starling-prom-auth-")
    for name, text in (("token", "tok-123\n"), ("basic", "scraper:pw 456\n"),
                       ("prom-token", "tok-123\n"), ("prom-pw", "pw 456\n")):
        with open(os.path.join(work, name), "w") as f:
            f.write(text)
    b = Broker(ctx.binary, ctx.workers, [f"--metrics-token-file={work}/token",
                                         f"--metrics-basic-auth-file={work}/basic"])
    web = free_port()
    target = f"      - targets: ['127.0.0.1:{b.metrics_port}']\n"
    with open(os.path.join(work, "prometheus.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n"
                "  - job_name: token\n    authorization:\n"
                f"      credentials_file: {work}/prom-token\n    static_configs:\n" + target +
                "  - job_name: basic\n    basic_auth:\n      username: scraper\n"
                f"      password_file: {work}/prom-pw\n    static_configs:\n" + target +
                "  - job_name: wrong\n    authorization:\n      credentials: tok-124\n"
                "    static_configs:\n" + target)
    log = open(os.path.join(work, "log"), "wb")
    p = subprocess.Popen([prom, f"--config.file={work}/prometheus.yml",
                          f"--storage.tsdb.path={work}/data", f"--web.listen-address=127.0.0.1:{web}",
                          "--log.level=warn"], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 40
        last = None
        while time.monotonic() < deadline:
            assert p.poll() is None, "prometheus exited:\n" + open(log.name).read()[-2000:]
            try:
                url = f"http://127.0.0.1:{web}/api/v1/query?" + urllib.parse.urlencode({"query": "up"})
                with urllib.request.urlopen(url, timeout=5) as r:
                    res = json.load(r)
                last = {x["metric"]["job"]: float(x["value"][1]) for x in res["data"]["result"]}
                if last == {"token": 1, "basic": 1, "wrong": 0}:
                    break
            except (OSError, ValueError, KeyError, http.client.HTTPException):
                pass
            time.sleep(0.5)
        assert last == {"token": 1, "basic": 1, "wrong": 0}, last
        stopped_clean(b)
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
        log.close()
        b.cleanup()
        shutil.rmtree(work, ignore_errors=True)


@test
def t07_unusable_credential_files_stop_startup(ctx):
    work = tempfile.mkdtemp(prefix="starling-ops-auth-")
    try:
        empty = os.path.join(work, "empty")
        open(empty, "w").close()
        nocolon = os.path.join(work, "nocolon")
        with open(nocolon, "w") as f:
            f.write("justapassword\n")
        cases = [(f"--metrics-token-file={work}/missing", "No such file"),
                 (f"--metrics-token-file={empty}", "is empty"),
                 (f"--metrics-basic-auth-file={nocolon}", "user:password")]
        for flag, why in cases:
            r = subprocess.run([ctx.binary, "--workers=1", "--listen=127.0.0.1:0",
                                "--metrics-listen=127.0.0.1:0", flag],
                               capture_output=True, text=True, timeout=10)
            assert r.returncode != 0, flag
            errors = [ln for ln in r.stderr.splitlines() if " ERROR " in ln]
            assert len(errors) == 1 and why in errors[0], (flag, r.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@test
def t07_metrics_listen_on_another_address(ctx):
    b = Broker(ctx.binary, ctx.workers, ["--metrics-listen=127.0.0.2:0"])
    try:
        port = b.metrics_port
        assert f"/readyz on 127.0.0.2:{port}".encode() in b.text()
        assert probe(port, host="127.0.0.2")[0] == 200
        assert probe(port, "/metrics", host="127.0.0.2")[0] == 200
        with socket.socket() as s_:
            assert s_.connect_ex(("127.0.0.1", port)) != 0  # not on the other address
        stopped_clean(b)
    finally:
        b.cleanup()


# ---- runner -----------------------------------------------------------------

class Ctx:
    def __init__(self, broker, binary, workers):
        self.broker = broker
        self.binary = binary
        self.workers = workers


def main():
    a = tap.parse_args()
    print("TAP version 13")
    shared = Broker(a.binary, a.workers)
    todo = [(t.__name__, t) for t in TESTS if a.only in t.__name__]
    n, failed = tap.run(todo, lambda: Ctx(shared, a.binary, a.workers))
    if not tap.clean_shutdown(n + 1, shared, "defaults"):
        failed += 1
    tap.finish(n + 1, failed)


if __name__ == "__main__":
    main()
