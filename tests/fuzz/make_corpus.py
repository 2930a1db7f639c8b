#!/usr/bin/python3
"""Write the codec fuzzer's seed corpus (tests/fuzz/corpus/codec/).

Each seed is one byte selecting the protocol level (the fuzzer uses
3 + byte % 3: 0 -> 3.1, 1 -> 3.1.1, 2 -> 5.0) followed by a stream of packets written by hand from the specifications.
Run it again after editing; the seeds are committed.
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "codec")


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(text):
    b = text.encode() if isinstance(text, str) else text
    return struct.pack(">H", len(b)) + b


def pkt(type_flags, body):
    return bytes([type_flags]) + varint(len(body)) + body


def props(*items):
    body = b"".join(items)
    return varint(len(body)) + body


def p_byte(i, v): return bytes([i, v])
def p_u16(i, v): return bytes([i]) + struct.pack(">H", v)
def p_u32(i, v): return bytes([i]) + struct.pack(">I", v)
def p_var(i, v): return bytes([i]) + varint(v)
def p_str(i, v): return bytes([i]) + s(v)
def p_user(k, v): return b"\x26" + s(k) + s(v)


V3, V4, V5 = b"\x00", b"\x01", b"\x02"

seeds = {}

# 3.1.1: a client's whole conversation.
seeds["v4_session"] = V4 + b"".join([
    pkt(0x10, s("MQTT") + b"\x04\xC2\x00\x3C" + s("client-1") + s("user") + s("pass")),
    pkt(0x82, b"\x00\x01" + s("a/+/c") + b"\x01" + s("#") + b"\x00"),
    pkt(0x30, s("a/b/c") + b"hello"),
    pkt(0x32, s("a/b") + b"\x00\x02" + b"payload"),
    pkt(0x34, s("a/b") + b"\x00\x03" + b"x"),
    pkt(0x40, b"\x00\x02"), pkt(0x50, b"\x00\x03"), pkt(0x62, b"\x00\x03"),
    pkt(0x70, b"\x00\x03"),
    pkt(0xA2, b"\x00\x04" + s("a/+/c")),
    pkt(0xC0, b""), pkt(0xE0, b""),
])
seeds["v4_server"] = V4 + b"".join([
    pkt(0x20, b"\x01\x00"), pkt(0x90, b"\x00\x01\x01\x00\x80"), pkt(0xB0, b"\x00\x04"),
    pkt(0xD0, b""), pkt(0x3B, s("t") + b"\x00\x07" + b"dup-retain"),
])
seeds["v4_will"] = V4 + pkt(0x10, s("MQTT") + b"\x04\x2E\x00\x0A" + s("w") + s("will/t") + s("bye"))
seeds["v3_connect"] = V3 + pkt(0x10, s("MQIsdp") + b"\x03\x02\x00\x3C" + s("old-client"))

# 5.0: CONNECT with every property it may carry, and a will with its own.
connect_props = props(
    p_u32(0x11, 3600), p_u16(0x21, 20), p_u32(0x27, 1 << 20), p_u16(0x22, 10),
    p_byte(0x19, 1), p_byte(0x17, 0), p_str(0x15, "SCRAM-SHA-256"), p_str(0x16, b"\x01\x02"),
    p_user("k", "v"), p_user("k", "v2"))
will_props = props(p_u32(0x18, 5), p_byte(0x01, 1), p_u32(0x02, 60), p_str(0x03, "text/plain"),
                   p_str(0x08, "reply/to"), p_str(0x09, b"\x00corr"), p_user("a", "b"))
seeds["v5_connect"] = V5 + pkt(
    0x10, s("MQTT") + b"\x05\xF6\x00\x1E" + connect_props + s("dev-42") + will_props +
    s("status/dev-42") + s("offline") + s("alice") + s(b"\x00secret"))
seeds["v5_connack"] = V5 + pkt(0x20, b"\x00\x00" + props(
    p_u32(0x11, 0), p_u16(0x21, 65535), p_byte(0x24, 1), p_byte(0x25, 1), p_u32(0x27, 1 << 20),
    p_str(0x12, "auto-1"), p_u16(0x22, 10), p_str(0x1F, "ok"), p_byte(0x28, 1), p_byte(0x29, 1),
    p_byte(0x2A, 1), p_u16(0x13, 30), p_str(0x1A, "resp/"), p_str(0x1C, "other:1883")))
seeds["v5_publish"] = V5 + b"".join([
    pkt(0x10, s("MQTT") + b"\x05\x02\x00\x00" + props() + s("")),
    pkt(0x3D, s("sensors/t") + b"\x00\x09" + props(
        p_byte(0x01, 0), p_u32(0x02, 30), p_str(0x03, "application/json"),
        p_str(0x08, "reply"), p_str(0x09, b"\x01\x02"), p_u16(0x23, 3),
        p_var(0x0B, 7), p_var(0x0B, 300), p_user("x", "y")) + b'{"t":21.5}'),
    pkt(0x30, s("") + props(p_u16(0x23, 3)) + b"alias-only"),
])
seeds["v5_subscribe"] = V5 + b"".join([
    pkt(0x82, b"\x00\x0A" + props(p_var(0x0B, 12), p_user("u", "1")) +
        s("a/#") + b"\x2E" + s("$share/g/b/+") + b"\x01" + s("bad/#/x") + b"\x00"),
    pkt(0x90, b"\x00\x0A" + props(p_str(0x1F, "partly")) + b"\x02\x01\x8F"),
    pkt(0xA2, b"\x00\x0B" + props(p_user("k", "v")) + s("a/#") + s("c")),
    pkt(0xB0, b"\x00\x0B" + props() + b"\x00\x11"),
])
seeds["v5_acks"] = V5 + b"".join([
    pkt(0x40, b"\x00\x01"), pkt(0x40, b"\x00\x01\x10"),
    pkt(0x50, b"\x00\x02\x00" + props(p_str(0x1F, "fine"), p_user("a", "b"))),
    pkt(0x62, b"\x00\x02\x92" + props()), pkt(0x70, b"\x00\x02"),
])
seeds["v5_disconnect_auth"] = V5 + b"".join([
    pkt(0xF0, b"\x18" + props(p_str(0x15, "SCRAM-SHA-256"), p_str(0x16, b"c1"))),
    pkt(0xF0, b""),
    pkt(0xE0, b"\x04" + props(p_u32(0x11, 0), p_str(0x1F, "bye"), p_str(0x1C, "srv2"))),
    pkt(0xE0, b""),
])
# Broken on purpose, so the fuzzer starts next to the edges too.
seeds["bad_varint"] = V4 + b"\x30\xFF\xFF\xFF\xFF\x7F"
seeds["bad_utf8"] = V5 + pkt(0x30, s(b"a/\xC0\xAF") + props() + b"x")
seeds["bad_props"] = V5 + pkt(0x30, s("t") + props(p_byte(0x01, 2), p_byte(0x01, 1)))

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"{len(seeds)} seeds in {OUT}")
