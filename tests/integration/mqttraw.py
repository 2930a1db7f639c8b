"""Raw MQTT bytes for integration tests: packet builders that write exactly
what the specification says, and a reader that splits a socket's bytes into
packets. Deliberately independent of the broker's codec."""
import socket
import struct
import time

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT, AUTH = 12, 13, 14, 15


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(x):
    b = x.encode() if isinstance(x, str) else x
    return struct.pack(">H", len(b)) + b


# Property encoders: id -> kind.
_KIND = {0x01: "b", 0x02: "i", 0x03: "s", 0x08: "s", 0x09: "s", 0x0B: "v", 0x11: "i",
         0x12: "s", 0x13: "h", 0x15: "s", 0x16: "s", 0x17: "b", 0x18: "i", 0x19: "b",
         0x1A: "s", 0x1C: "s", 0x1F: "s", 0x21: "h", 0x22: "h", 0x23: "h", 0x24: "b",
         0x25: "b", 0x27: "i", 0x28: "b", 0x29: "b", 0x2A: "b"}


def props(items=()):
    """items: list of (id, value); 0x26 takes (key, value)."""
    body = bytearray()
    for pid, val in items:
        body.append(pid)
        if pid == 0x26:
            body += s(val[0]) + s(val[1])
            continue
        k = _KIND[pid]
        body += {"b": lambda v: bytes([v]), "h": lambda v: struct.pack(">H", v),
                 "i": lambda v: struct.pack(">I", v), "v": varint, "s": s}[k](val)
    return varint(len(body)) + bytes(body)


def parse_props(b, off):
    """Returns (list of (id, value), new offset)."""
    n, off = read_varint(b, off)
    end = off + n
    out = []
    while off < end:
        pid = b[off]
        off += 1
        if pid == 0x26:
            k, off = read_str(b, off)
            v, off = read_str(b, off)
            out.append((pid, (k, v)))
            continue
        kind = _KIND[pid]
        if kind == "b":
            out.append((pid, b[off])); off += 1
        elif kind == "h":
            out.append((pid, struct.unpack_from(">H", b, off)[0])); off += 2
        elif kind == "i":
            out.append((pid, struct.unpack_from(">I", b, off)[0])); off += 4
        elif kind == "v":
            v, off = read_varint(b, off)
            out.append((pid, v))
        else:
            v, off = read_str(b, off)
            out.append((pid, v))
    return out, end


def read_varint(b, off):
    mult, val = 1, 0
    while True:
        c = b[off]
        off += 1
        val += (c & 0x7F) * mult
        mult *= 128
        if not c & 0x80:
            return val, off


def read_str(b, off):
    n = struct.unpack_from(">H", b, off)[0]
    return bytes(b[off + 2:off + 2 + n]), off + 2 + n


def pkt(type_flags, body):
    return bytes([type_flags]) + varint(len(body)) + body


def connect(v, client_id="", clean=True, keepalive=60, will=None, user=None, password=None,
            p=()):
    """will: dict(topic, payload, qos=0, retain=False, props=())."""
    name = b"MQIsdp" if v == 3 else b"MQTT"
    flags = (0x02 if clean else 0)
    if will:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    if user is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    body = s(name) + bytes([v, flags]) + struct.pack(">H", keepalive)
    if v == 5:
        body += props(p)
    body += s(client_id)
    if will:
        if v == 5:
            body += props(will.get("props", ()))
        body += s(will["topic"]) + s(will["payload"])
    if user is not None:
        body += s(user)
    if password is not None:
        body += s(password)
    return pkt(0x10, body)


def publish(v, topic, payload=b"", qos=0, pid=0, retain=False, dup=False, p=()):
    body = s(topic)
    if qos:
        body += struct.pack(">H", pid)
    if v == 5:
        body += props(p)
    payload = payload.encode() if isinstance(payload, str) else payload
    return pkt(0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0), body + payload)


def subscribe(v, pid, filters, p=()):
    """filters: list of (filter, options byte)."""
    body = struct.pack(">H", pid)
    if v == 5:
        body += props(p)
    for f, o in filters:
        body += s(f) + bytes([o])
    return pkt(0x82, body)


def unsubscribe(v, pid, filters):
    body = struct.pack(">H", pid)
    if v == 5:
        body += props()
    for f in filters:
        body += s(f)
    return pkt(0xA2, body)


def ack(type_, pid, rc=None):
    body = struct.pack(">H", pid)
    if rc is not None:
        body += bytes([rc])
    return pkt((type_ << 4) | (0x02 if type_ == PUBREL else 0), body)


def disconnect(v, rc=None, p=()):
    if v == 5 and (rc or p):
        return pkt(0xE0, bytes([rc or 0]) + props(p))
    return pkt(0xE0, b"")


class Packet:
    def __init__(self, type_flags, body, v):
        self.type = type_flags >> 4
        self.flags = type_flags & 0x0F
        self.body = bytes(body)
        self.raw = bytes([type_flags]) + varint(len(body)) + self.body
        self.v = v
        self.props = []
        if self.type == PUBLISH:
            self.qos = (self.flags >> 1) & 3
            self.dup = bool(self.flags & 8)
            self.retain = bool(self.flags & 1)
            self.topic, off = read_str(self.body, 0)
            self.pid = 0
            if self.qos:
                self.pid = struct.unpack_from(">H", self.body, off)[0]
                off += 2
            if v == 5:
                self.props, off = parse_props(self.body, off)
            self.payload = self.body[off:]
        elif self.type == CONNACK:
            self.session_present = bool(self.body[0] & 1)
            self.rc = self.body[1]
            if v == 5:
                self.props, _ = parse_props(self.body, 2)
        elif self.type in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            self.pid = struct.unpack_from(">H", self.body, 0)[0]
            self.rc = self.body[2] if len(self.body) > 2 else 0
        elif self.type in (SUBACK, UNSUBACK):
            self.pid = struct.unpack_from(">H", self.body, 0)[0]
            off = 2
            if v == 5:
                self.props, off = parse_props(self.body, off)
            self.rcs = list(self.body[off:])
        elif self.type in (DISCONNECT, AUTH):
            self.rc = self.body[0] if self.body else 0
            if len(self.body) > 1:
                self.props, _ = parse_props(self.body, 1)

    def prop(self, pid, default=None):
        for k, val in self.props:
            if k == pid:
                return val
        return default

    def all_props(self, pid):
        return [val for k, val in self.props if k == pid]

    def __repr__(self):
        return f"<packet type {self.type} flags {self.flags:#x} {self.raw[:40].hex()}>"


class Client:
    """One raw connection. recv() returns the next whole packet or raises."""

    def __init__(self, port, v=4, host="127.0.0.1"):
        self.v = v
        self.sock = socket.create_connection((host, port), timeout=5)
        self.buf = bytearray()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no packet in time")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no packet in time")
        if not chunk:
            raise ConnectionError("closed by the broker")
        self.buf += chunk

    def recv(self, timeout=3.0):
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                try:
                    n, off = read_varint(self.buf, 1)
                except IndexError:
                    n = None
                if n is not None and len(self.buf) >= off + n:
                    p = Packet(self.buf[0], self.buf[off:off + n], self.v)
                    del self.buf[:off + n]
                    return p
            self._fill(deadline)

    def expect(self, type_, timeout=3.0):
        p = self.recv(timeout)
        assert p.type == type_, f"expected packet type {type_}, got {p!r}"
        return p

    def nothing(self, wait=0.3):
        """Assert that no packet arrives within wait seconds."""
        try:
            p = self.recv(wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected packet {p!r}")

    def closed(self, timeout=3.0):
        """Assert the broker closes the connection (packets before it are returned)."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got.append(self.recv(max(0.01, deadline - time.monotonic())))
            except ConnectionError:
                return got
            except (ConnectionResetError, BrokenPipeError):
                return got
            except TimeoutError:
                raise AssertionError(f"still open after {timeout}s; got {got}")

    def connect(self, client_id, clean=True, keepalive=60, **kw):
        self.send(connect(self.v, client_id, clean, keepalive, **kw))
        p = self.expect(CONNACK)
        return p

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
