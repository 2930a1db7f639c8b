#!/usr/bin/python3
"""MQTT over WebSocket with the real binary on ephemeral loopback ports:
python3-paho-mqtt over ws and wss (its websockets transport, a client
nobody here wrote) talking to mosquitto_sub on the TCP listener, and raw
frames for the rules of RFC 6455 and MQTT 5.0 §6 (masking, binary only,
packets spanning frames, several per frame, ping, close, the path).
Prints TAP.

usage: ws_test.py STARLING_BINARY [--workers N] [--only SUBSTRING]
"""
import base64
import hashlib
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tap  # noqa: E402
from mqttraw import *  # noqa: E402,F403
from tls_test import Pki  # noqa: E402

TESTS = []
_ids = iter(range(1, 1 << 30))


def test(fn):
    TESTS.append(fn)
    return fn


class Ctx(tap.BrokerCtx):
    def __init__(self, binary, workers, pki):
        super().__init__(binary, workers, "starling-ws-")
        self.pki = pki

    def broker(self, *args, wss=False):
        extra = ["--ws-listen=127.0.0.1:0"]
        if wss:
            extra += ["--wss-listen=127.0.0.1:0", f"--tls-cert-file={self.pki.p('server.pem')}",
                      f"--tls-key-file={self.pki.p('server.key')}"]
        b = self.start([*extra, *args])
        text = b.text().decode()
        b.ws_port = int(re.search(r"listening for MQTT over WebSocket on \S*:(\d+)", text).group(1))
        m = re.search(r"listening for MQTT over secure WebSocket on \S*:(\d+)", text)
        b.wss_port = int(m.group(1)) if m else None
        return b


# ---- a raw WebSocket client ------------------------------------------------

def frame(opcode, payload, fin=True, mask=True):
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class WsClient:
    def __init__(self, port, path="/mqtt", protocol="mqtt", rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        if rcvbuf:
            # Before connect: the window scale is agreed in the handshake,
            # and a buffer made small after it leaves the peer sending into
            # a window that is not there (segments dropped, their ACKs with
            # them, and the connection stalls in retransmission back-off).
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}"
                           "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.mbuf = b""
        self.head = head.decode()
        want = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.accepted = self.head.startswith("HTTP/1.1 101") and f"Sec-WebSocket-Accept: {want}" in self.head

    def send(self, data):
        self.sock.sendall(data)

    def frame(self, timeout=5):
        """(opcode, payload) of the next server frame; None at close."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                assert not b1 & 0x80, "server frames are never masked [RFC 6455 5.1]"
                n, off = b1 & 0x7F, 2
                if n == 126 and len(self.buf) >= 4:
                    n, off = struct.unpack(">H", self.buf[2:4])[0], 4
                elif n == 127 and len(self.buf) >= 10:
                    n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
                if n < 126 or off > 2:
                    if len(self.buf) >= off + n:
                        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
                        return b0 & 0x0F, payload
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def mqtt(self, v=5, timeout=5):
        """The next MQTT packet from the stream of binary frames (a frame
        may hold several packets, a packet may span frames)."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.mbuf) >= 2:
                try:
                    n, off = read_varint(self.mbuf, 1)
                except IndexError:
                    n = None
                if n is not None and len(self.mbuf) >= off + n:
                    p = Packet(self.mbuf[0], self.mbuf[off:off + n], v)
                    self.mbuf = self.mbuf[off + n:]
                    return p
            f = self.frame(max(0.05, deadline - time.monotonic()))
            assert f is not None, "closed"
            op, payload = f
            assert op in (0, 2), f"MQTT must come in binary frames, got opcode {op}"
            self.mbuf += payload

    def close_code(self, timeout=5):
        """The code of the close frame the server sends next (skipping data)."""
        while True:
            f = self.frame(timeout)
            if f is None:
                return None
            if f[0] == 8:
                return struct.unpack(">H", f[1][:2])[0] if len(f[1]) >= 2 else 1005

    def closed(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except (ConnectionResetError, TimeoutError, socket.timeout):
            pass
        return True


# ---- tests ----------------------------------------------------------------

PAHO = r"""
import sys, ssl, paho.mqtt.client as mqtt
port, proto, topic, n, tls, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1", sys.argv[6]
got = []
c = mqtt.Client(client_id="paho-ws-%s" % proto, transport="websockets",
                protocol=mqtt.MQTTv5 if proto == "5" else mqtt.MQTTv311)
c.ws_set_options(path="/mqtt")
if tls:
    c.tls_set(ca_certs=ca)
def on_connect(client, u, flags, rc, properties=None):
    client.subscribe(topic + "/to-paho", qos=1)
def on_subscribe(client, u, mid, granted, properties=None):
    for i in range(n):
        client.publish(topic + "/from-paho", "p%d" % i, qos=1)
    print("subscribed", flush=True)
def on_message(client, u, m):
    got.append(m.payload.decode())
    if len(got) == n:
        client.disconnect()
c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
c.connect("127.0.0.1", port, keepalive=30)
c.loop_forever(timeout=2)
print("got", ",".join(got), flush=True)
"""


def paho_roundtrip(ctx, b, port, v, tls):
    t = f"wsinterop/{next(_ids)}"
    n = 20
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(b.port), "-t",
                            t + "/from-paho", "-C", str(n), "-W", "20", "-q", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.4)
    paho = subprocess.Popen(["/usr/bin/python3", "-c", PAHO, str(port), str(v), t, str(n),
                             "1" if tls else "0", ctx.pki.p("ca.pem")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = paho.stdout.readline()
    assert line.strip() == "subscribed", (line, paho.stderr.read()[-800:] if paho.poll() is not None else "")
    for i in range(n):
        r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-q", "1",
                            "-t", t + "/to-paho", "-m", f"m{i}"], capture_output=True, timeout=10)
        assert r.returncode == 0, r.stderr
    out, err = paho.communicate(timeout=20)
    got = out.strip().split("got ", 1)[-1].split(",")
    # One mosquitto_pub per message: separate publishers, possibly on
    # different workers, so their relative order is not promised.
    assert sorted(got) == sorted(f"m{i}" for i in range(n)), (got, err[-800:])
    sout, serr = sub.communicate(timeout=20)
    assert sout.split() == [f"p{i}" for i in range(n)], (sout, serr)


@test
def w01_paho_over_ws_and_mosquitto_over_tcp(ctx):
    b = ctx.broker()
    for v in (4, 5):
        paho_roundtrip(ctx, b, b.ws_port, v, tls=False)


@test
def w02_paho_over_wss(ctx):
    b = ctx.broker(wss=True)
    paho_roundtrip(ctx, b, b.wss_port, 5, tls=True)
    # The TLS handshake first, then the upgrade, on the same socket.
    raw = socket.create_connection(("127.0.0.1", b.wss_port), timeout=5)
    tctx = ssl.create_default_context(cafile=ctx.pki.p("ca.pem"))
    s = tctx.wrap_socket(raw, server_hostname="127.0.0.1")
    s.sendall(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(100).startswith(b"HTTP/1.1 400"), "a plain GET over TLS is not an upgrade"
    s.close()


@test
def w03_frames_split_and_joined(ctx):
    b = ctx.broker()
    w = WsClient(b.ws_port)
    assert w.accepted and "Sec-WebSocket-Protocol: mqtt" in w.head, w.head
    c = connect(5, f"ws-raw{next(_ids)}")
    # CONNECT split over two frames of one message, then SUBSCRIBE and
    # PINGREQ in one frame.
    w.send(frame(2, c[:5], fin=False) + frame(0, c[5:]))
    assert w.mqtt().type == CONNACK
    w.send(frame(2, subscribe(5, 1, [("ws/raw", 1)]) + pkt(0xC0, b"")))
    data = b""
    while len(data) < 2 + 4 + 2:  # SUBACK (v5: 2+1+1+1) and PINGRESP
        op, payload = w.frame()
        data += payload
    assert data.startswith(bytes([0x90])) and data.endswith(b"\xd0\x00"), data.hex()
    # A ping is answered with its payload; MQTT goes on afterwards.
    w.send(frame(9, b"are you there"))
    assert w.frame() == (10, b"are you there")
    w.send(frame(2, publish(5, "ws/raw", b"x" * 70000, qos=1, pid=7)))
    p = w.mqtt()
    if p.type == PUBACK:
        p = w.mqtt()
    assert p.type == PUBLISH and p.payload == b"x" * 70000, p
    w.send(frame(8, struct.pack(">H", 1000)))
    assert w.close_code() == 1000
    w.closed()


@test
def w04_protocol_errors_close(ctx):
    b = ctx.broker()
    for bad, code in ((frame(2, connect(4, "u"), mask=False), 1002),  # unmasked
                      (frame(1, b"text is not MQTT"), 1003)):          # text frame
        w = WsClient(b.ws_port)
        assert w.accepted
        w.send(bad)
        assert w.close_code() == code, code
        w.closed()
    # The path and the subprotocol are checked.
    w = WsClient(b.ws_port, path="/other")
    assert w.head.startswith("HTTP/1.1 404"), w.head
    w = WsClient(b.ws_port, protocol="chat")
    assert w.head.startswith("HTTP/1.1 400"), w.head
    # A socket that never upgrades meets the connect timeout like any other.
    b2 = ctx.broker("--connect-timeout-ms=400")
    s = socket.create_connection(("127.0.0.1", b2.ws_port), timeout=5)
    s.sendall(b"GET /mqtt HTTP/1.1\r\n")
    t = time.monotonic()
    s.settimeout(5)
    assert s.recv(100) == b"" and time.monotonic() - t < 3
    s.close()


@test
def w04_pings_without_reading_are_bounded(ctx):
    # Each ping makes a pong; a client that never reads them is closed
    # once they pass its outbox bound, instead of being buffered.
    # The connect timeout must not end it first: with the receive pool of
    # the tiny-buffer build running dry the pings are read in small bites.
    b = ctx.broker("--outbox-bytes-max=65536", "--max-packet-size=65536",
                   "--connect-timeout-ms=60000")
    w = WsClient(b.ws_port, rcvbuf=4096)
    assert w.accepted
    ping = frame(9, b"p" * 125)
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline and b"not reading its output" not in b.text():
            w.sock.sendall(ping * 256)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass  # the broker closed it, or stopped reading while it closes
    deadline = time.monotonic() + 5
    while b"not reading its output" not in b.text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b"WebSocket: not reading its output" in b.text(), b.text()[-600:]
    w.sock.close()


@test
def w05_server_disconnect_then_close_frame(ctx):
    b = ctx.broker()
    w = WsClient(b.ws_port)
    w.send(frame(2, connect(5, "ws-dup")))
    assert w.mqtt().type == CONNACK
    # The same client id on TCP takes the session over: 0x8E, then a close.
    t = Client(b.port, 5)
    assert t.connect("ws-dup", True).rc == 0
    p = w.mqtt()
    assert p.type == DISCONNECT and p.rc == 0x8E, p
    assert w.close_code() == 1000
    t.close()


@test
def w06_custom_path_and_startup_errors(ctx):
    b = ctx.broker("--ws-path=/brokers/mqtt")
    assert WsClient(b.ws_port, path="/brokers/mqtt").accepted
    assert WsClient(b.ws_port).head.startswith("HTTP/1.1 404")
    r = subprocess.run([ctx.binary, "--listen=127.0.0.1:0", "--metrics=false",
                        "--wss-listen=127.0.0.1:0"], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "wss_listen: needs tls_cert_file" in r.stderr, r.stderr
    r = subprocess.run([ctx.binary, "--listen=127.0.0.1:0", "--metrics=false",
                        "--ws-listen=127.0.0.1:0", "--ws-path=mqtt"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode != 0 and "ws_path" in r.stderr, r.stderr


def main():
    a = tap.parse_args()
    print("TAP version 13")
    todo = [(t.__name__, t) for t in TESTS if a.only in t.__name__]
    d = tempfile.mkdtemp(prefix="starling-ws-pki-")
    try:
        pki = Pki(d)
        result = tap.run(todo, lambda: Ctx(a.binary, a.workers, pki))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    tap.finish(*result)


if __name__ == "__main__":
    main()
