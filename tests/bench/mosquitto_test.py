#!/usr/bin/python3
"""Integration tests of starling-bench against Debian's mosquitto.

Starts mosquitto on ephemeral loopback ports (never 1883), runs short,
bounded bench runs with --json and checks what a user would check: exact
delivery counts (no loss, no duplicates), plausible latency, JSON fields,
connection failure accounting, TLS, MQTT over WebSocket (ws and wss),
scenario files, procs and source addresses, the controller with three
agents, and the comparison runner.

Usage: mosquitto_test.py PATH/TO/starling-bench. Prints TAP.
"""
import base64
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BENCH = sys.argv[1]
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
RUN_TIMEOUT_S = 60
results = []
tmp = tempfile.mkdtemp(prefix="bench-test-")
brokers = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Mosquitto:
    def __init__(self, name, extra=""):
        self.port = free_port()
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        self.log = os.path.join(self.dir, "mosquitto.log")
        with open(self.conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\n"
                    "allow_anonymous true\n"
                    "max_connections -1\n"
                    # a fast publisher must not make mosquitto drop QoS 1/2
                    "max_queued_messages 1000000\n"
                    "max_inflight_messages 0\n"
                    "log_type all\n"
                    f"log_dest file {self.log}\n"
                    # as root mosquitto would switch to its own user and lose
                    # access to this private temp dir
                    + ("user root\n" if os.getuid() == 0 else "") + extra)
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], preexec_fn=raise_nofile,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        brokers.append(self)
        # Ready once every listener accepts: the extra ones (TLS, websockets)
        # may open after the first.
        ports = [self.port] + [int(p) for p in re.findall(r"^listener (\d+)", extra, re.M)]
        deadline = time.time() + 10
        while ports and time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", ports[0]), timeout=0.5).close()
                ports.pop(0)
            except OSError:
                time.sleep(0.05)
        if ports:
            raise RuntimeError(f"mosquitto did not open port {ports[0]}: " +
                               open(self.log).read()[-2000:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def bench(*args, expect_rc=None, timeout=RUN_TIMEOUT_S):
    cmd = [BENCH] + [str(a) for a in args] + ["--json", "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       preexec_fn=raise_nofile)
    if expect_rc is not None and p.returncode != expect_rc:
        raise AssertionError(f"exit {p.returncode} (want {expect_rc}) for {' '.join(cmd)}\n"
                             f"{p.stderr[-2000:]}\n{p.stdout[-2000:]}")
    try:
        return json.loads(p.stdout.strip().splitlines()[-1]), p
    except (IndexError, ValueError):
        raise AssertionError(f"no JSON from {' '.join(cmd)} (exit {p.returncode})\n"
                             f"{p.stderr[-2000:]}")


def check(name, fn):
    try:
        fn()
        results.append((True, name, ""))
    except Exception as e:  # a failed check or a crashed run both fail the test
        results.append((False, name, str(e)))
    ok, _, why = results[-1]
    print(f"{'ok' if ok else 'not ok'} {len(results)} - {name}", flush=True)
    if not ok:
        for line in why.splitlines()[:40]:
            print("# " + line, flush=True)


def expect_eq(what, got, want):
    if got != want:
        raise AssertionError(f"{what}: got {got}, want {want}")


def make_certs(d):
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost."""
    os.makedirs(d, exist_ok=True)
    if os.path.exists(os.path.join(d, "server.crt")):
        return
    def ossl(*a):
        subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True)
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=bench-test-ca", "-keyout", "ca.key", "-out", "ca.crt")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-keyout", "server.key", "-out", "server.csr")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-days", "1", "-extfile", "ext.cnf", "-out", "server.crt")


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_frame(opcode, payload, fin=True):
    """A server frame: unmasked [RFC 6455 5.1]."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + n.to_bytes(2, "big")
    else:
        head += bytes([127]) + n.to_bytes(8, "big")
    return head + payload


class WsStub:
    """A WebSocket 'broker' on a free port, one thread per connection, for
    what mosquitto cannot show: a path check (404 for any path but /mqtt),
    a wrong Sec-WebSocket-Accept, and (mode "mqtt") an MQTT 5 session whose
    CONNACK is fragmented with a ping between the fragments and shares its
    last frame with a PINGRESP. Records the client's frames."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.requests, self.frames, self.errors = [], [], []
        self.lock = threading.Lock()
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def read_exact(self, conn, n, buf):
        while len(buf) < n:
            chunk = conn.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk
        return buf[:n], buf[n:]

    def read_frame(self, conn, buf):
        head, buf = self.read_exact(conn, 2, buf)
        fin, op, masked, n = head[0] >> 7, head[0] & 15, head[1] >> 7, head[1] & 127
        if n == 126:
            ext, buf = self.read_exact(conn, 2, buf)
            n = int.from_bytes(ext, "big")
        elif n == 127:
            ext, buf = self.read_exact(conn, 8, buf)
            n = int.from_bytes(ext, "big")
        key = b"\0\0\0\0"
        if masked:
            key, buf = self.read_exact(conn, 4, buf)
        body, buf = self.read_exact(conn, n, buf)
        body = bytes(b ^ key[i % 4] for i, b in enumerate(body))
        return (fin, op, bool(masked), body), buf

    def serve(self, conn):
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode().split("\r\n")
            hdrs = {k.strip().lower(): v.strip() for k, v in
                    (l.split(":", 1) for l in lines[1:])}
            with self.lock:
                self.requests.append((lines[0], hdrs))
            path = lines[0].split()[1]
            accept = base64.b64encode(hashlib.sha1(
                (hdrs.get("sec-websocket-key", "") + WS_GUID).encode()).digest()).decode()
            if self.mode == "bad-accept":
                accept = base64.b64encode(b"\0" * 20).decode()
            if path != "/mqtt":
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                return
            conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Protocol: mqtt\r\n"
                          f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
            if self.mode != "mqtt":
                time.sleep(1)
                return
            while True:
                frame, buf = self.read_frame(conn, buf)
                with self.lock:
                    self.frames.append(frame)
                fin, op, masked, body = frame
                if op == 2 and body[:1] == b"\x10":  # CONNECT
                    connack = b"\x20\x03\x00\x00\x00"
                    conn.sendall(ws_frame(2, connack[:2], fin=False) +
                                 ws_frame(9, b"ping-42") +
                                 ws_frame(0, connack[2:] + b"\xd0\x00"))
                elif op == 8:
                    conn.sendall(ws_frame(8, body))
                    return
        except (EOFError, OSError, ValueError, IndexError) as e:
            with self.lock:
                self.errors.append(repr(e))
        finally:
            conn.close()

    def stop(self):
        self.sock.close()


def expect_exact(j, want_expected):
    d = j["delivery"]
    expect_eq("expected", d["expected"], want_expected)
    expect_eq("delivered", d["delivered"], want_expected)
    expect_eq("lost", d["lost"], 0)
    expect_eq("duplicates", d["duplicates"], 0)
    expect_eq("out_of_order", d["out_of_order"], 0)
    expect_eq("connection failures", j["connections"]["failed"], 0)
    expect_eq("connections lost", j["connections"]["lost"], 0)
    expect_eq("latency samples", j["latency_us"]["count"], want_expected)


def main():
    m = Mosquitto("main")
    P = ["-p", m.port]

    # Exact counts: every shape at every QoS. A count per publisher makes the
    # expected total known in advance; QoS 0 uses the end-to-end window so it
    # measures throughput instead of drops.
    shapes = {
        "pairs": (["pairs", "-c", 20, "-n", 300, "-r", 2000], 20 * 300),
        "fanin": (["fanin", "--pubs", 20, "--subs", 3, "-n", 200, "-r", 1000], 20 * 200 * 3),
        "fanout": (["fanout", "--pubs", 1, "--subs", 1000, "-n", 20, "-r", 100], 20 * 1000),
    }
    for shape, (args, want) in shapes.items():
        for qos in (0, 1, 2):
            def run(args=args, want=want, qos=qos):
                extra = ["--e2e-window", 32] if qos == 0 else []
                j, _ = bench(*args, *P, "-q", qos, "-d", 30, *extra, expect_rc=0)
                expect_eq("published", j["publish"]["published"], want // (
                    1000 if args[0] == "fanout" else 3 if args[0] == "fanin" else 1))
                if qos:
                    expect_eq("acked", j["publish"]["acked"], j["publish"]["published"])
                expect_exact(j, want)
            check(f"{shape} qos {qos}: exact delivery counts", run)

    def mqtt311():
        j, _ = bench("pairs", *P, "-c", 10, "-n", 200, "-r", 1000, "-q", 2, "-V", 4,
                     expect_rc=0)
        expect_eq("mqtt", j["mqtt"], 4)
        expect_exact(j, 2000)
    check("MQTT 3.1.1 pairs qos 2: exact counts", mqtt311)

    def shared():
        j, _ = bench("shared", *P, "--pubs", 4, "--subs", 6, "--groups", 2, "-n", 200,
                     "-r", 1000, "-q", 1, expect_rc=0)
        expect_exact(j, 4 * 200 * 2)
    check("shared: one delivery per $share group", shared)

    def unlimited_e2e():
        # unlimited rate, QoS 0, e2e window: a throughput run without drops
        j, _ = bench("pairs", *P, "-c", 4, "-d", 2, "-q", 0, "--e2e-window", 64,
                     "--size", 256, expect_rc=0)
        d = j["delivery"]
        if j["publish"]["published"] < 1000:
            raise AssertionError(f"only {j['publish']['published']} published")
        expect_eq("delivered", d["delivered"], d["expected"])
        expect_eq("duplicates", d["duplicates"], 0)
        if j["publish"]["per_s"] <= 0 or d["per_s"] <= 0:
            raise AssertionError("rates missing")
    check("unlimited rate with e2e window: no drops", unlimited_e2e)

    def unlimited_inflight():
        j, _ = bench("pairs", *P, "-c", 4, "-d", 2, "-q", 1, "--inflight", 8, expect_rc=0)
        expect_eq("acked", j["publish"]["acked"], j["publish"]["published"])
        expect_exact(j, j["publish"]["published"])
    check("unlimited rate qos 1 with in-flight window: exact", unlimited_inflight)

    def large_payloads():
        # 1 MB messages span many receive buffers and sends: reassembly and
        # short-send handling must keep every message whole
        j, _ = bench("pairs", *P, "-c", 2, "-s", 1000000, "-n", 20, "-r", 100, "-q", 1,
                     expect_rc=0)
        expect_exact(j, 40)
    check("1 MB payloads: reassembled whole, exact counts", large_payloads)

    def latency():
        j, _ = bench("pairs", *P, "-c", 5, "-r", 50, "-d", 2, "-q", 0, expect_rc=0)
        lat = j["latency_us"]
        for k in ("count", "min", "mean", "p50", "p90", "p99", "p999", "max"):
            if k not in lat:
                raise AssertionError(f"latency_us.{k} missing")
        if not 0 < lat["p50"] < 1000:
            raise AssertionError(f"p50 {lat['p50']}us is not well under 1 ms")
        if not lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"]:
            raise AssertionError(f"quantiles out of order: {lat}")
        if lat["count"] < 400:
            raise AssertionError(f"only {lat['count']} samples at 5 x 50/s for 2 s")
    check("low-rate latency: p50 well under 1 ms, quantiles ordered", latency)

    def conn_broker_pid():
        # a fresh broker, so its RSS before the run is its idle size
        fresh = Mosquitto("conn")
        j, _ = bench("conn", "-p", fresh.port, "-c", 2000, "-d", 1, "--broker-pid",
                     fresh.proc.pid, expect_rc=0)
        c = j["connections"]
        expect_eq("ok", c["ok"], 2000)
        expect_eq("peak_up", c["peak_up"], 2000)
        if c["per_s"] <= 0:
            raise AssertionError("no connect rate")
        b = j["broker"]
        expect_eq("broker pid", b["pid"], fresh.proc.pid)
        if b["rss_peak_bytes"] <= 0 or b["rss_per_conn_bytes"] <= 0:
            raise AssertionError(f"broker RSS not measured: {b}")
        if j["connect_us"]["count"] != 2000:
            raise AssertionError("connect latency samples missing")
        fresh.stop()
    check("conn: 2000 connections, broker RSS per connection", conn_broker_pid)

    def refused():
        closed = free_port()
        j, p = bench("conn", "-p", closed, "-c", 20, "-d", 1, "--connect-timeout", 3)
        if p.returncode == 0:
            raise AssertionError("a run where every connect failed exited 0")
        expect_eq("failed", j["connections"]["failed"], 20)
        expect_eq("failures.refused", j["connections"]["failures"]["refused"], 20)
    check("conn to a closed port: failures counted by reason, non-zero exit", refused)

    def procs_sources():
        j, _ = bench("conn", *P, "-c", 400, "-d", 1, "--procs", 2,
                     "--source", "127.0.0.2-127.0.0.5", expect_rc=0)
        expect_eq("ok", j["connections"]["ok"], 400)
        expect_eq("procs", j["procs"], 2)
        seen = set(re.findall(r"New client connected from (127\.0\.0\.\d+):",
                              open(m.log).read()))
        if not {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} <= seen:
            raise AssertionError(f"source addresses seen by the broker: {sorted(seen)}")
    check("--procs 2 and --source range: all connect, every source used", procs_sources)

    def procs_pairs():
        j, _ = bench("fanout", *P, "--subs", 50, "-n", 100, "-r", 200, "-q", 1, "--procs", 3,
                     "--e2e-window", 10, expect_rc=0)
        expect_exact(j, 50 * 100)
    check("--procs 3 fanout with e2e window across processes: exact", procs_pairs)

    def scenario_file():
        path = os.path.join(tmp, "fanin.scenario")
        with open(path, "w") as f:
            f.write("# fanin from a file\nscenario = fanin\npubs = 5\nsubs = 2\n"
                    f"count = 50\nrate = 500\nqos = 1\nport = {m.port}\nsize = 100\n")
        j, _ = bench("-f", path, expect_rc=0)
        expect_eq("scenario", j["scenario"], "fanin")
        expect_eq("size", j["size"], 100)
        expect_exact(j, 5 * 50 * 2)
    check("scenario file: options read from the file", scenario_file)

    def retain_and_foreign():
        j, _ = bench("pairs", *P, "-c", 3, "-n", 10, "-r", 100, "-q", 1, "--retain",
                     "--persistent", "--topic-prefix", "retained", expect_rc=0)
        expect_exact(j, 30)
        # a later subscriber gets the retained messages of that earlier run:
        # they carry another run id and must not count as deliveries
        j, _ = bench("sub", *P, "--subs", 1, "-d", 1, "--topic-prefix", "retained",
                     expect_rc=0)
        expect_eq("delivered", j["delivery"]["delivered"], 0)
        expect_eq("foreign", j["delivery"]["foreign"], 3)
    check("retain + persistent; retained messages of another run are foreign",
          retain_and_foreign)

    def pub_then_sub_json():
        j, _ = bench("pub", *P, "--pubs", 2, "-n", 5, "-r", 100, expect_rc=0)
        expect_eq("published", j["publish"]["published"], 10)
        expect_eq("expected", j["delivery"]["expected"], 0)
        for k in ("scenario", "connections", "publish", "delivery", "latency_us",
                  "connect_us", "bench"):
            if k not in j:
                raise AssertionError(f"JSON field {k} missing")
    check("pub scenario alone and the JSON layout", pub_then_sub_json)

    # TLS with a throwaway CA and server certificate
    def tls():
        d = os.path.join(tmp, "tls")
        make_certs(d)
        port = free_port()
        t = Mosquitto("tlsbroker", extra=(
            f"listener {port} 127.0.0.1\n"
            f"cafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n"))
        j, _ = bench("pairs", "-p", port, "-c", 5, "-n", 100, "-r", 500, "-q", 1, "--tls",
                     "--cafile", os.path.join(d, "ca.crt"), expect_rc=0)
        expect_exact(j, 500)
        # the same broker, but a CA that did not sign it: every handshake fails
        j, p = bench("conn", "-p", port, "-c", 3, "-d", 1, "--tls", "--cafile",
                     os.path.join(d, "server.crt"), "--connect-timeout", 3)
        if p.returncode == 0:
            raise AssertionError("TLS with the wrong CA exited 0")
        expect_eq("tls failures", j["connections"]["failures"]["tls"], 3)
        t.stop()
    check("TLS with a throwaway CA: exact counts; wrong CA fails", tls)

    # MQTT over WebSocket: mosquitto with a websockets listener next to its
    # MQTT one (mosquitto 2.0.11 refuses to start with websockets alone)
    ws_port = free_port()
    wsm = Mosquitto("ws", extra=f"listener {ws_port} 127.0.0.1\nprotocol websockets\n")
    W = ["-p", ws_port, "--ws"]

    for qos in (0, 1, 2):
        def ws_pairs(qos=qos):
            extra = ["--e2e-window", 32] if qos == 0 else []
            j, _ = bench("pairs", *W, "-c", 20, "-n", 300, "-r", 2000, "-q", qos, "-d", 30,
                         *extra, expect_rc=0)
            expect_eq("published", j["publish"]["published"], 6000)
            if qos:
                expect_eq("acked", j["publish"]["acked"], 6000)
            expect_exact(j, 6000)
            expect_eq("ws_handshake failures", j["connections"]["failures"]["ws_handshake"], 0)
        check(f"ws pairs qos {qos}: exact delivery counts", ws_pairs)

    def ws_large():
        # 30 KB packets: every frame is longer than a 16 KiB receive buffer,
        # so frames are cut by reads and a client keeps its frame state
        # across them. (Not larger: mosquitto 2.0.11 itself stops delivering
        # some ~60 KB messages over WebSocket; paho-mqtt sees the same.)
        j, _ = bench("pairs", *W, "-c", 4, "-s", 30000, "-n", 50, "-r", 200, "-q", 1,
                     expect_rc=0)
        expect_exact(j, 200)
    check("ws 30 KB payloads: frames cut by reads, exact counts", ws_large)

    def ws_fanout_v311():
        j, _ = bench("fanout", *W, "--subs", 200, "-n", 20, "-r", 100, "-q", 1, "-V", 4,
                     expect_rc=0)
        expect_exact(j, 4000)
    check("ws fanout to 200 subscribers, MQTT 3.1.1: exact", ws_fanout_v311)

    def ws_conn_memory():
        j, _ = bench("conn", *W, "-c", 1000, "-d", 1, expect_rc=0)
        expect_eq("ok", j["connections"]["ok"], 1000)
        expect_eq("peak_up", j["connections"]["peak_up"], 1000)
    check("ws conn: 1000 connections upgraded", ws_conn_memory)

    def ws_to_mqtt_port():
        # an upgrade request sent to a plain MQTT listener: mosquitto reads
        # "GET " as a malformed packet and drops the connection
        j, p = bench("conn", "-p", m.port, "--ws", "-c", 5, "-d", 1, "--connect-timeout", 5)
        expect_eq("exit status", p.returncode, 2)
        expect_eq("failed", j["connections"]["failed"], 5)
        expect_eq("failures.ws_handshake", j["connections"]["failures"]["ws_handshake"], 5)
        expect_eq("ok", j["connections"]["ok"], 0)
        if "WebSocket upgrade" not in p.stderr:
            raise AssertionError(f"no reason on stderr: {p.stderr[-500:]}")
    check("--ws against an MQTT listener: every upgrade fails as ws_handshake", ws_to_mqtt_port)

    def ws_wrong_path():
        # mosquitto (libwebsockets) upgrades whatever the path, so a broker
        # that checks it is played by a stub: 404 for anything but /mqtt
        stub = WsStub("path")
        try:
            j, p = bench("conn", "-p", stub.port, "--ws", "--ws-path", "/nope", "-c", 4,
                         "-d", 1, "--connect-timeout", 5)
            expect_eq("exit status", p.returncode, 2)
            expect_eq("failures.ws_handshake", j["connections"]["failures"]["ws_handshake"], 4)
            expect_eq("ok", j["connections"]["ok"], 0)
            if "404" not in p.stderr:
                raise AssertionError(f"status not reported: {p.stderr[-500:]}")
            line, hdrs = stub.requests[0]
            expect_eq("request line", line, "GET /nope HTTP/1.1")
            expect_eq("Host", hdrs.get("host"), f"127.0.0.1:{stub.port}")
            expect_eq("Upgrade", hdrs.get("upgrade", "").lower(), "websocket")
            expect_eq("Connection", hdrs.get("connection", "").lower(), "upgrade")
            expect_eq("Sec-WebSocket-Version", hdrs.get("sec-websocket-version"), "13")
            expect_eq("Sec-WebSocket-Protocol", hdrs.get("sec-websocket-protocol"), "mqtt")
            keys = {h["sec-websocket-key"] for _, h in stub.requests}
            expect_eq("distinct keys", len(keys), 4)
            for k in keys:
                expect_eq("key bytes", len(base64.b64decode(k)), 16)
        finally:
            stub.stop()
    check("wrong --ws-path (404 from a path-checking server): ws_handshake failures",
          ws_wrong_path)

    def ws_bad_accept():
        stub = WsStub("bad-accept")
        try:
            j, p = bench("conn", "-p", stub.port, "--ws", "-c", 3, "-d", 1,
                         "--connect-timeout", 5)
            expect_eq("exit status", p.returncode, 2)
            expect_eq("failures.ws_handshake", j["connections"]["failures"]["ws_handshake"], 3)
        finally:
            stub.stop()
    check("101 with a wrong Sec-WebSocket-Accept: ws_handshake failures", ws_bad_accept)

    def ws_fragments_ping():
        stub = WsStub("mqtt")
        try:
            j, p = bench("conn", "-p", stub.port, "--ws", "-c", 2, "-d", 1, expect_rc=0)
            expect_eq("ok", j["connections"]["ok"], 2)
            time.sleep(0.2)
            with stub.lock:
                frames, errors = list(stub.frames), list(stub.errors)
            if errors:
                raise AssertionError(f"stub saw: {errors}")
            if not all(masked for _, _, masked, _ in frames):
                raise AssertionError("a client frame was not masked")
            pongs = [body for _, op, _, body in frames if op == 10]
            expect_eq("pongs", pongs, [b"ping-42", b"ping-42"])
            closes = [body for _, op, _, body in frames if op == 8]
            expect_eq("close frames (1000)", closes, [b"\x03\xe8", b"\x03\xe8"])
            ops = [op for _, op, _, _ in frames]
            expect_eq("binary frames (CONNECT, DISCONNECT)", ops.count(2), 4)
        finally:
            stub.stop()
    check("ws: fragmented CONNACK around a ping, pong, packets sharing a frame, close",
          ws_fragments_ping)

    def wss():
        d = os.path.join(tmp, "tls")
        make_certs(d)
        port = free_port()
        t = Mosquitto("wssbroker", extra=(
            f"listener {port} 127.0.0.1\nprotocol websockets\n"
            f"cafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n"))
        j, _ = bench("pairs", "-p", port, "--ws", "--tls", "--cafile",
                     os.path.join(d, "ca.crt"), "-c", 5, "-n", 200, "-r", 500, "-q", 1,
                     expect_rc=0)
        expect_exact(j, 1000)
        t.stop()
    check("wss (--ws --tls) with a throwaway CA: exact counts", wss)
    wsm.stop()

    def agents():
        ports = [free_port() for _ in range(3)]
        procs = [subprocess.Popen([BENCH, "agent", "--listen", f"127.0.0.1:{p}", "--once"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  preexec_fn=raise_nofile) for p in ports]
        try:
            j, _ = bench("controller", "--agents", ",".join(f"127.0.0.1:{p}" for p in ports),
                         "pairs", *P, "-c", 30, "-n", 100, "-r", 500, "-q", 1, expect_rc=0)
            expect_exact(j, 3000)
            expect_eq("clients", j["connections"]["clients"], 60)
            expect_eq("agents", j["agents"], 3)
            for a in procs:
                a.wait(10)
                if a.returncode != 0:
                    raise AssertionError(f"agent exit {a.returncode}: {a.stderr.read()[-500:]}")
        finally:
            for a in procs:
                if a.poll() is None:
                    a.kill()
                    a.wait()
    check("controller with 3 agents: merged counts and histogram", agents)

    def two_hosts():
        # -h a,b: clients are spread round-robin; pairs stay on one broker
        # because pair i's two clients (indexes i and N+i) land on targets
        # i % 2 and (N+i) % 2, equal when N is even
        other = Mosquitto("hosts")
        j, _ = bench("pairs", "-h", f"127.0.0.1:{m.port},127.0.0.1:{other.port}", "-c", 10,
                     "-n", 50, "-r", 500, "-q", 1, expect_rc=0)
        expect_exact(j, 500)
        other_log = open(other.log).read()
        n = len(re.findall(r"New client connected from", other_log))
        expect_eq("clients on the second broker", n, 10)
        other.stop()
    check("-h with two brokers: clients spread over both", two_hosts)

    def compare():
        b = Mosquitto("second")
        j, _ = bench("compare", "--a", f"127.0.0.1:{m.port}", "--b", f"127.0.0.1:{b.port}",
                     "--a-pid", m.proc.pid, "--b-pid", b.proc.pid, "--rounds", 2,
                     "pairs", "-c", 5, "-n", 200, "-r", 1000, "-q", 1, expect_rc=0)
        f = j["figures"]
        expect_eq("rounds", j["rounds"], 2)
        for k in ("published_per_s", "delivered_per_s", "latency_p50_us",
                  "cpu_s_per_million"):
            if k not in f or f[k]["a"] < 0 or f[k]["b"] < 0:
                raise AssertionError(f"figure {k} missing: {f.get(k)}")
        if f["delivered_per_s"]["ratio"] <= 0:
            raise AssertionError("no ratio")
        b.stop()
    check("compare: A B A B with CPU per million delivered", compare)


try:
    main()
except Exception as e:  # the broker did not start, say: that is a failure too
    results.append((False, "setup", str(e)))
    print(f"not ok {len(results)} - setup\n# {e}")
finally:
    for b in brokers:
        b.stop()
    shutil.rmtree(tmp, ignore_errors=True)
print(f"1..{len(results)}")
sys.exit(0 if all(ok for ok, _, _ in results) else 1)
