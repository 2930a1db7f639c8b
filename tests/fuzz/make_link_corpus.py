#!/usr/bin/python3
"""Write the link fuzzer's seed corpus (tests/fuzz/corpus/link/).

Each seed is a flags byte, a count byte k, k chunk sizes (each byte b means
b + 1 bytes; none: one byte at a time) and then a byte stream of link frames
(fuzz_link.c: flags & 3 picks the frame limit 16 MiB / 256 / 4096 / 65536;
with flags & 4 the stream starts with a length byte and a route digest of
routes.h's format). A frame is a
4-byte big-endian length and one encoded LinkFrame of proto/link.proto,
encoded here by hand from the .proto (not by protobuf-c or the broker's
encoder): a second implementation that must agree with the first. The PUBLISH
bodies are written from MQTT 3.1.1 / 5.0 §3.3. Run it again after changing
the format; the seeds are committed.
"""
import hashlib
import hmac
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "link")
SECRET = b"fuzz-secret"  # the harness's secret (fuzz_link.c)


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def key(field, wire):
    return varint(field << 3 | wire)


def f_uint(field, v):
    return key(field, 0) + varint(v) if v else b""  # proto3: zero is not sent


def f_bool(field, v):
    return f_uint(field, 1 if v else 0)


def f_bytes(field, b):
    return key(field, 2) + varint(len(b)) + b if b else b""


def f_str(field, s):
    return f_bytes(field, s.encode())


def f_msg(field, body):
    return key(field, 2) + varint(len(body)) + body  # present even when empty


# LinkFrame's oneof: the message kinds by field number.
HELLO, PING, PROOF, SNAPSHOT, DELTA, BATCH, ACK, RSET, RDEL, REND = range(1, 11)


def frame(kind, body):
    """A framed LinkFrame carrying one message."""
    msg = f_msg(kind, body)
    return struct.pack(">I", len(msg)) + msg


def raw_frame(msg):
    return struct.pack(">I", len(msg)) + msg


def hello(cluster, node, epoch, workers, worker, nonce, version=1):
    return frame(HELLO, f_str(1, cluster) + f_str(2, node) + f_uint(3, version) +
                 f_uint(4, workers) + f_uint(5, epoch) + f_uint(6, worker) + f_bytes(7, nonce))


def proof_mac(their_nonce, node, epoch, secret=SECRET):
    msg = b"starling-link-v1" + their_nonce + node.encode() + struct.pack(">Q", epoch)
    return hmac.new(secret, msg, hashlib.sha256).digest()


def proof(mac):
    return frame(PROOF, f_bytes(1, mac))


def ping(seq, ack=False):
    return frame(PING, f_uint(1, seq) + f_bool(2, ack))


def snapshot(epoch, seq, filters, last):
    body = f_uint(1, epoch) + f_uint(2, seq)
    for f in filters:
        body += key(3, 2) + varint(len(f)) + f  # repeated bytes: even an empty one is sent
    return frame(SNAPSHOT, body + f_bool(4, last))


def delta(epoch, first_seq, changes):
    body = f_uint(1, epoch) + f_uint(2, first_seq)
    for flt, add in changes:
        body += f_msg(3, f_bytes(1, flt) + f_bool(2, add))
    return frame(DELTA, body)


def publish_body(topic, version, qos, payload, alias=False):
    """The PUBLISH body as received: topic, packet id (QoS > 0), 5.0
    properties, payload."""
    t = b"" if alias else topic
    out = struct.pack(">H", len(t)) + t
    if qos:
        out += struct.pack(">H", 0x1234)
    if version == 5:
        props = b"\x02\x00\x00\x00\x3c"  # Message Expiry Interval 60 s
        if alias:
            props += b"\x23\x00\x01"  # Topic Alias 1
        out += varint(len(props)) + props
    return out + payload


def publish(link_seq, version, qos, retain, topic, body, expiry=0, wall=0, origin="node-a",
            shared=False, store_only=False):
    return (f_uint(1, link_seq) + f_uint(2, version) + f_uint(3, qos) + f_bool(4, retain) +
            f_bytes(5, topic) + f_bytes(6, body) + f_uint(7, expiry) + f_uint(8, wall) +
            f_str(9, origin) + f_bool(10, shared) + f_bool(11, store_only))


def batch(publishes):
    return frame(BATCH, b"".join(f_msg(1, p) for p in publishes))


def ack(up_to):
    return frame(ACK, f_uint(1, up_to))


def retained_set(topic, body, version, qos, wall, origin):
    return frame(RSET, f_bytes(1, topic) + f_bytes(2, body) + f_uint(3, version) +
                 f_uint(4, qos) + f_uint(5, wall) + f_str(6, origin))


def retained_delete(topic, wall, origin):
    return frame(RDEL, f_bytes(1, topic) + f_uint(2, wall) + f_str(3, origin))


def retained_end():
    return frame(REND, b"")


def digest(entries):
    """A route digest (cluster/routes.h), behind its length byte."""
    out = b"\x01"
    for name, epoch, seq in entries:
        out += bytes([len(name)]) + name.encode() + varint(epoch) + varint(seq)
    return bytes([len(out)]) + out


def seed(flags, chunks, stream):
    return bytes([flags, len(chunks)]) + bytes(c - 1 for c in chunks) + stream


NONCE_A = bytes(range(16))
NONCE_B = bytes(range(0xB0, 0xC0))
EPOCH = 1712345678901234

HANDSHAKE = (hello("prod", "starling-0", EPOCH, 4, 2, NONCE_A) +
             proof(proof_mac(NONCE_B, "starling-0", EPOCH)) +
             proof(b""))

ROUTES = (snapshot(7, 3, [b"a/#", b"b/+/c", b"$share/g/jobs/#"], False) +
          snapshot(7, 3, [b"d", b"a//b"], True) +
          delta(7, 4, [(b"a/#", False), (b"e/+", True)]) +
          delta(7, 6, [(b"f", True)]) +
          delta(7, 9, [(b"gap", True)]) +                # a gap: nothing applied
          delta(7, 5, [(b"e/+", True), (b"f", True)]) +  # overlap: only 6
          delta(6, 8, [(b"old", True)]) +                # an older epoch
          delta(8, 1, [(b"x/#", True), (b"y", True)]) +  # a new epoch: all dropped
          snapshot(8, 2, [b"x/#", b"y", b"z"], True) +
          ack(1) +                                       # the link breaks (harness)
          snapshot(8, 2, [b"x/#"], False) +
          retained_end())                                # the node dies (harness)

PUBLISHES = b""
for v in (3, 4, 5):
    PUBLISHES += batch([
        publish(0, v, 0, False, b"sensors/1/temp", publish_body(b"sensors/1/temp", v, 0, b"21.5")),
        publish(41, v, 1, False, b"sensors/2", publish_body(b"sensors/2", v, 1, b"x"), expiry=59000),
        publish(42, v, 2, True, b"state/door", publish_body(b"state/door", v, 2, b"open"),
                wall=1700000000123, origin="node-c"),
    ])
PUBLISHES += batch([publish(43, 5, 1, False, b"aliased/t",
                            publish_body(b"aliased/t", 5, 1, b"p", alias=True))])
# a shared group's pick, and a retained replica (numbered whatever its QoS)
PUBLISHES += batch([
    publish(44, 4, 1, False, b"jobs/1", publish_body(b"jobs/1", 4, 1, b"j"), shared=True),
    publish(45, 4, 0, True, b"state/lamp", publish_body(b"state/lamp", 4, 0, b"on"),
            wall=1700000000500, origin="node-b", store_only=True),
])
PUBLISHES += ack(43) + ping(9) + ping(9, True)
PUBLISHES += retained_set(b"state/door", publish_body(b"state/door", 4, 1, b"open"), 4, 1,
                          1700000000999, "node-b")
PUBLISHES += retained_delete(b"state/door", 1700000001000, "node-b") + retained_end()

ALL = HANDSHAKE + ROUTES + PUBLISHES

REFUSED = {
    # a length beyond the limit (256 with flags 1): refused before buffering
    "oversize": seed(1, [3], struct.pack(">I", 257) + b"\x3a\x00" * 4),
    "huge_length": seed(0, [], b"\xff\xff\xff\xff" + ack(1)),
    # values out of bounds
    "bad_filter": seed(0, [64], snapshot(7, 1, [b"a/#/b"], True) + ack(2)),
    "nul_filter": seed(0, [64], delta(7, 1, [(b"a\x00b", True)])),
    "bad_qos": seed(0, [64], batch([publish(1, 4, 3, False, b"t", publish_body(b"t", 4, 1, b""))])),
    "qos0_seq": seed(0, [64], batch([publish(5, 4, 0, False, b"t", publish_body(b"t", 4, 0, b""))])),
    "bad_version": seed(0, [64], batch([publish(0, 6, 0, False, b"t", publish_body(b"t", 5, 0, b""))])),
    "topic_mismatch": seed(0, [64], batch([publish(0, 4, 0, False, b"t/1",
                                                   publish_body(b"t/2", 4, 0, b""))])),
    "wild_topic": seed(0, [64], retained_delete(b"t/+", 1, "n")),
    "long_name": seed(0, [64], hello("prod", "n" * 65, 1, 1, 0, NONCE_A)),
    "short_nonce": seed(0, [64], hello("prod", "n", 1, 1, 0, NONCE_A[:15])),
    "worker_range": seed(0, [64], hello("prod", "n", 1, 2, 2, NONCE_A)),
    "short_mac": seed(0, [64], proof(b"\x01" * 31)),
    # not a LinkFrame we know
    "empty_frame": seed(0, [], raw_frame(b"")),
    "unknown_kind": seed(0, [], frame(11, b"")),
    "bad_wire_type": seed(0, [], raw_frame(b"\x0b\x0c")),
    "truncated_inner": seed(0, [], raw_frame(b"\x3a\x05\x08")),
}

SEEDS = {
    "handshake": seed(0, [], HANDSHAKE),
    "routes": seed(0, [3, 17, 1], ROUTES),
    "publishes": seed(0, [5, 200], PUBLISHES),
    "all_whole": seed(0, [256], ALL),
    "all_pieces": seed(3, [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233], ALL),
    "small_limit": seed(1, [7, 11], ALL),
    "digest_refused": seed(4, [], digest([("a", 1, 1), ("a", 2, 2)]) + ack(1)),
    "digest": seed(4, [32], digest([("starling-0", EPOCH, 12), ("starling-1", 0, 0),
                                    ("starling-2", EPOCH + 7, 2**64 - 1)]) + ROUTES),
    "unknown_fields": seed(0, [], frame(ACK, f_uint(1, 5) + f_uint(15, 1) + f_bytes(16, b"x")) +
                           raw_frame(f_msg(ACK, f_uint(1, 6)) + f_uint(20, 3))),
    "many_unknown_fields": seed(2, [255], frame(ACK, f_uint(15, 1) * 600)),
    "merged_batches": seed(0, [], raw_frame(
        f_msg(BATCH, f_msg(1, publish(0, 4, 0, False, b"t", publish_body(b"t", 4, 0, b"1")))) +
        f_msg(BATCH, f_msg(1, publish(0, 4, 0, False, b"u", publish_body(b"u", 4, 0, b"2")))))),
}
SEEDS.update({"refused_" + k: v for k, v in REFUSED.items()})


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(SEEDS), OUT))


if __name__ == "__main__":
    main()
