#!/usr/bin/python3
"""Write the membership fuzzer's seed corpus (tests/fuzz/corpus/membership/).

Each seed is one mode byte and records of a big-endian u16 length and bytes
(fuzz_membership.c: mode & 3 is 0 raw datagrams without a secret, 1 raw
datagrams with the secret "fuzz-secret", 2 packets the harness seals with
the secret, 3 packets the harness wraps without a MAC; mode >> 2 sets the
clock's step). The packets are proto/membership.proto, encoded here by hand
from the .proto (not by protobuf-c or the broker's encoder): a second
implementation that must agree with the first. The instance under test is
"fuzz-self" at 10.0.0.1:7946, epoch 5, in cluster "fuzz". Run it again after
changing the format; the seeds are committed.
"""
import hashlib
import hmac
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "membership")
SECRET = b"fuzz-secret"
CLUSTER = "fuzz"
SELF = ("fuzz-self", "10.0.0.1:7946", 5)
ALIVE, SUSPECT, DEAD, LEFT = 1, 2, 3, 4


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


def member(name, address, epoch, inc, state, frm=""):
    return (f_str(1, name) + f_str(2, address) + f_uint(3, epoch) + f_uint(4, inc) +
            f_uint(5, state) + f_str(6, frm))


def packet(frm="peer-1", address="10.0.0.2:7946", epoch=9, inc=0, left=False, ping=None,
           ack=None, ping_req=None, nack=None, push_pull=None, updates=(), payload=None,
           cluster=CLUSTER, version=1):
    out = f_uint(1, version) + f_str(2, cluster) + f_str(3, frm) + f_str(4, address)
    out += f_uint(5, epoch) + f_uint(6, inc) + f_bool(7, left)
    if ping is not None:
        seq, target = ping
        out += f_msg(8, f_uint(1, seq) + f_str(2, target))
    if ack is not None:
        out += f_msg(9, f_uint(1, ack))
    if ping_req is not None:
        seq, target, target_address, want_nack, after = ping_req
        out += f_msg(10, f_uint(1, seq) + f_str(2, target) + f_str(3, target_address) +
                     f_bool(4, want_nack) + f_uint(5, after))
    if nack is not None:
        out += f_msg(11, f_uint(1, nack))
    if push_pull is not None:
        reply, join, part, parts, members = push_pull
        body = f_bool(1, reply) + f_bool(2, join) + f_uint(3, part) + f_uint(4, parts)
        for m in members:
            body += f_msg(5, m)
        out += f_msg(12, body)
    for u in updates:
        out += f_msg(13, u)
    if payload is not None:
        out += f_msg(14, f_bytes(1, payload))
    return out


def datagram(pkt, secret=None):
    out = f_bytes(1, pkt)
    if secret is not None:
        out += f_bytes(2, hmac.new(secret, pkt, hashlib.sha256).digest())
    return out


def seed(mode, records):
    out = bytes([mode])
    for r in records:
        out += struct.pack(">H", len(r)) + r
    return out


PEER1 = member("peer-1", "10.0.0.2:7946", 9, 0, ALIVE)
STATE = [
    PEER1,
    member("peer-2", "10.0.0.3:7946", 11, 2, ALIVE),
    member("peer-3", "10.0.0.4:7946", 12, 1, SUSPECT, "peer-2"),
    member("peer-4", "10.0.0.5:7946", 13, 0, DEAD, "peer-1"),
    member("peer-5", "10.0.0.6:7946", 14, 3, LEFT, "peer-5"),
]

JOIN = packet(push_pull=(False, True, 0, 1, STATE), payload=b"route-digest")
REPLY = packet(push_pull=(True, False, 0, 1, STATE))
PING = packet(ping=(1, "fuzz-self"), payload=b"d1",
              updates=[member("fuzz-self", "10.0.0.1:7946", 5, 0, SUSPECT, "peer-1"),
                       member("peer-2", "10.0.0.3:7946", 11, 3, ALIVE)])
PING_OTHER = packet(ping=(2, "someone-else"))
PING_REQ = packet(ping_req=(7, "peer-2", "10.0.0.3:7946", True, 80))
PING_REQ_SELF = packet(ping_req=(8, "fuzz-self", "10.0.0.1:7946", True, 0))
ACK1 = packet(ack=1)
ACK2 = packet(frm="peer-2", address="10.0.0.3:7946", epoch=11, inc=2, ack=2, payload=b"")
NACK = packet(nack=1)
GOSSIP = packet(updates=[
    member("peer-2", "10.0.0.3:7946", 11, 2, SUSPECT, "peer-1"),
    member("peer-2", "10.0.0.3:7946", 11, 2, SUSPECT, "peer-3"),
    member("peer-3", "10.0.0.4:7946", 12, 1, DEAD, "peer-1"),
    member("peer-6", "10.0.0.7:7946", 1, 0, ALIVE),
    member("fuzz-self", "10.0.0.1:7946", 4, 9, DEAD, "peer-1"),   # an older epoch of us
    member("fuzz-self", "10.0.0.1:7946", 6, 0, ALIVE),            # a newer one: a conflict
])
RESTART = packet(epoch=10, ping=(3, "fuzz-self"))
STALE = packet(epoch=8, ack=1)
LEAVE = packet(left=True, updates=[member("peer-1", "10.0.0.2:7946", 9, 0, LEFT, "peer-1")])
MANY = packet(push_pull=(False, False, 0, 2, [
    member("m-%02d" % i, "10.1.0.%d:7946" % i, 100 + i, i % 3, ALIVE) for i in range(20)]))
PART2 = packet(push_pull=(True, False, 1, 2, STATE[1:]))
OTHER_CLUSTER = packet(cluster="other", ping=(1, "fuzz-self"))
VERSION2 = packet(version=2, ping=(1, "fuzz-self"))
FROM_SELF = packet(frm="fuzz-self", address="10.0.0.1:7946", epoch=5, ping=(1, "fuzz-self"))
BAD_STATE = packet(updates=[member("peer-2", "10.0.0.3:7946", 11, 2, 9)])
LONG_NAME = packet(updates=[member("x" * 65, "10.0.0.3:7946", 11, 2, ALIVE)])
BAD_PART = packet(push_pull=(True, False, 3, 2, STATE))
BIG_PAYLOAD = packet(ping=(1, "fuzz-self"), payload=b"p" * 257)

SEEDS = {
    # raw datagrams, no secret
    "join": seed(0, [datagram(JOIN)]),
    "reply_then_ping": seed(0, [datagram(REPLY), datagram(PING), datagram(ACK1)]),
    "ping_req_nack": seed(4, [datagram(REPLY), datagram(PING_REQ), datagram(PING_REQ_SELF),
                              datagram(NACK), datagram(ACK2)]),
    "gossip": seed(0, [datagram(REPLY), datagram(GOSSIP), datagram(PING_OTHER)]),
    "restart_and_stale": seed(0, [datagram(REPLY), datagram(RESTART), datagram(STALE)]),
    "leave": seed(0, [datagram(JOIN), datagram(LEAVE)]),
    "many_members": seed(0, [datagram(MANY), datagram(PART2), datagram(GOSSIP)]),
    "refused": seed(0, [datagram(OTHER_CLUSTER), datagram(VERSION2), datagram(FROM_SELF),
                        datagram(BAD_STATE), datagram(LONG_NAME), datagram(BAD_PART),
                        datagram(BIG_PAYLOAD), datagram(PING, SECRET), b"\x0a\x05ab"]),
    "slow_clock": seed(0xFC, [datagram(JOIN), datagram(PING), datagram(GOSSIP)]),
    # with the secret: datagrams sealed here, and one forged
    "secret_join": seed(1, [datagram(JOIN, SECRET), datagram(PING, SECRET),
                            datagram(GOSSIP, SECRET)]),
    "secret_forged": seed(1, [datagram(JOIN, b"not-the-secret"), datagram(JOIN),
                              datagram(JOIN, SECRET)[:-1] + b"\x00"]),
    # packets the harness seals (mode 2) or wraps (mode 3)
    "sealed": seed(2, [JOIN, PING, PING_REQ, GOSSIP, RESTART, LEAVE]),
    "sealed_many": seed(6, [MANY, PART2, GOSSIP, ACK2, NACK]),
    "wrapped": seed(3, [REPLY, PING, GOSSIP, STALE, BAD_STATE]),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(SEEDS), OUT))


if __name__ == "__main__":
    main()
