#!/usr/bin/python3
"""Write the journal-record fuzzer's seed corpus (tests/fuzz/corpus/record/).

Each seed is the bytes of a journal tail: records one after another, as
they follow a file's 40-byte header. They are written here from the format
described in core/persist/README.md ("Record format") and core/persist/
record.h, with this script's own CRC-32C (bit by bit from the polynomial,
no table, no C), not by the broker's writer: a second implementation that
must agree with the first. Run it again after changing the format; the
seeds are committed.

    /usr/bin/python3 tests/fuzz/make_record_corpus.py             # the seeds
    /usr/bin/python3 tests/fuzz/make_record_corpus.py --fixtures  # hex for record_test.c

fuzz_record.c decodes with NOW_MS = 5000000 (monotonic) and NOW_WALL_MS =
1700000000000: the seeds' expiry times are wall-clock times around it.
"""
import os
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "record")

NOW_WALL_MS = 1700000000000

REC_RETAIN_SET = 1
REC_RETAIN_DEL = 2
REC_SESS_PUT = 3
REC_SESS_END = 4
REC_MSG = 5
REC_MSG_DONE = 6
REC_SESS_PLACED = 7
REC_MSG_REL = 8
REC_MSG_COMP = 9
REC_MSG_IN = 13

REC_MSG_TARGETS_MAX = 4096


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, init and final
    xor 0xFFFFFFFF; chained by passing the previous result."""
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283
assert crc32c(bytes(32)) == 0x8A9136AA
assert crc32c(b"\xff" * 32) == 0x62A8AB43
assert crc32c(b"56789", crc32c(b"1234")) == 0xE3069283


def u8(v):
    return struct.pack(">B", v)


def u16(v):
    return struct.pack(">H", v)


def u32(v):
    return struct.pack(">I", v)


def u64(v):
    return struct.pack(">Q", v)


def mqtt_str(s):
    return u16(len(s)) + s


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def header(writer, kind, segment, created_wall_ms, version=1):
    """A file's header: magic, version, writer, kind, segment, created, 0, crc."""
    head = (b"STRLJNL1" + u32(version) + u16(writer) + u16(kind) + u64(segment) +
            u64(created_wall_ms) + u32(0))
    return head + u32(crc32c(head))


def record(rtype, lsn, wall_ms, payload):
    """len | crc | type | lsn | wall_ms | payload; the crc covers the len
    bytes and everything after the crc field."""
    rest = u8(rtype) + u64(lsn) + u64(wall_ms) + payload
    length = u32(len(rest))
    return length + u32(crc32c(rest, crc32c(length))) + rest


def publish_body(topic, payload, qos, version, props=b"", packet_id=7):
    """A PUBLISH body: from the topic's length prefix to the payload's end."""
    body = mqtt_str(topic)
    if qos:
        body += u16(packet_id)
    if version == 5:
        body += varint(len(props)) + props
    return body + payload


def retain_set(stamp, origin_rank, wall_ms, version, qos, topic, payload, expires_at=0,
               props=b"", retain=True, flags=None):
    body = publish_body(topic, payload, qos, version, props)
    if flags is None:
        flags = qos | (4 if retain else 0)
    return (u64(stamp) + u64(origin_rank) + u64(wall_ms) + u8(version) + u8(flags) +
            u64(expires_at) + mqtt_str(topic) + u32(len(body)) + body)


def retain_del(stamp, origin_rank, wall_ms, topic):
    return u64(stamp) + u64(origin_rank) + u64(wall_ms) + mqtt_str(topic)


def sess_put(stamp, client_id, state):
    """REC_SESS_PUT: stamp, client id, then the encoded session (state)."""
    return u64(stamp) + mqtt_str(client_id) + state


def sess_end(stamp, client_id):
    return u64(stamp) + mqtt_str(client_id)


def sess_placed(stamp, run, worker, slot, gen, client_id, state):
    """REC_SESS_PLACED: stamp, run, the place (worker, slot, generation),
    client id, then the encoded session (state)."""
    return (u64(stamp) + u64(run) + u16(worker) + u32(slot) + u32(gen) + mqtt_str(client_id) +
            state)


def target(worker, slot, gen, qos, flags=0, sub_id=0):
    """One of a REC_MSG's targets (15 bytes): the session's place, the QoS to
    deliver with, flags (1 retain, 2 shared) and the subscription id."""
    return u16(worker) + u32(slot) + u32(gen) + u8(qos) + u8(flags) + u32(sub_id)


def message(stamp, run, version, qos, topic, payload, targets, expires_at=0, props=b"",
            retain=False, flags=None, count=None):
    """REC_MSG: stamp, run, level, flags, expires at (wall ms), topic, body
    (as REC_RETAIN_SET), then the target count and the targets. count: a
    count other than the targets given (for the refused seeds)."""
    body = publish_body(topic, payload, qos, version, props)
    if flags is None:
        flags = qos | (4 if retain else 0)
    if count is None:
        count = len(targets)
    return (u64(stamp) + u64(run) + u8(version) + u8(flags) + u64(expires_at) + mqtt_str(topic) +
            u32(len(body)) + body + u16(count) + b"".join(targets))


def msg_in(pid, client_id, msg):
    """REC_MSG_IN: the publisher's inbound packet id and client id, then a
    REC_MSG payload."""
    return u16(pid) + mqtt_str(client_id) + msg


def msg_done(msg_stamp, client_id):
    """REC_MSG_DONE: the message's stamp, the client id."""
    return u64(msg_stamp) + mqtt_str(client_id)


def msg_rel(stamp, msg_stamp, pid, client_id):
    """REC_MSG_REL: its stamp, the message's (0: none), packet id, client id."""
    return u64(stamp) + u64(msg_stamp) + u16(pid) + mqtt_str(client_id)


def msg_comp(stamp, pid, client_id):
    """REC_MSG_COMP: its stamp, packet id, client id."""
    return u64(stamp) + u16(pid) + mqtt_str(client_id)


def session_state(client_id, expiry=3600, version=5, subs=(), will=b"", will_delay=0,
                  expires_in=0, user=None):
    """The encoded session as session/codec.c writes it (format version 1)
    without messages: zero in flight, zero queued, zero inbound QoS 2 ids
    (tests/fuzz/make_session_corpus.py writes the whole format)."""
    out = u8(1) + mqtt_str(client_id)
    out += u8(1) + mqtt_str(user) if user is not None else u8(0)
    out += u32(expiry) + u8(version) + u16(1) + u64(expires_in)
    out += u32(len(will)) + will + u32(will_delay) + u64(0)
    out += u32(len(subs))
    for f, sub_id, qos, flags in subs:
        out += mqtt_str(f) + u32(sub_id) + u8(qos) + u8(flags)
    return out + u32(0) + u32(0) + u32(0)


def prop_expiry(s):
    return u8(0x02) + u32(s)


def prop_content_type(t):
    return u8(0x03) + mqtt_str(t)


W = NOW_WALL_MS

SET_311 = record(REC_RETAIN_SET, 1, W - 5000,
                 retain_set(1, 0, W - 5000, 4, 0, b"home/kitchen/temp", b"21.5"))
SET_5 = record(REC_RETAIN_SET, 2, W - 4000,
               retain_set(2, 0x1122334455667788, W - 4000, 5, 1, b"sensors/t1", b'{"t":21.5}',
                          expires_at=W + 60000,
                          props=prop_expiry(64) + prop_content_type(b"application/json")))
SET_5_QOS2 = record(REC_RETAIN_SET, 3, W - 3000,
                    retain_set(3, 9, W - 3000, 5, 2, b"a/b", b"two", props=b""))
SET_31_EMPTY = record(REC_RETAIN_SET, 4, W - 2000,
                      retain_set(4, 0, W - 2000, 3, 1, b"old/client", b""))
SET_EXPIRED = record(REC_RETAIN_SET, 5, W - 1000,
                     retain_set(5, 0, W - 100000, 5, 1, b"gone/soon", b"x",
                                expires_at=W - 1, props=prop_expiry(10)))
DEL = record(REC_RETAIN_DEL, 6, W - 500, retain_del(6, 0, W - 500, b"home/kitchen/temp"))
DEL_RANKED = record(REC_RETAIN_DEL, 7, W - 400,
                    retain_del(7, 0xFEDCBA9876543210, W - 450, b"$SYS/x"))
UNKNOWN = record(200, 8, W - 300, b"a later build's record")
NONE = record(0, 9, W - 200, b"")
BIG = record(REC_RETAIN_SET, 10, W - 100,
             retain_set(10, 0, W - 100, 4, 1, b"big/blob", bytes(range(256)) * 280))

SESS = record(REC_SESS_PUT, 15, W - 90,
              sess_put(3, b"dev-1", session_state(b"dev-1", subs=[(b"a/+/c", 7, 1, 1),
                                                                   (b"$share/g/x", 0, 2, 2)],
                                                  user=b"alice", expires_in=60000)))
SESS_311 = record(REC_SESS_PUT, 16, W - 80,
                  sess_put(4, b"old", session_state(b"old", expiry=0xFFFFFFFF, version=4,
                                                    subs=[(b"#", 0, 0, 0)])))
SESS_END = record(REC_SESS_END, 17, W - 70, sess_end(5, b"dev-1"))

# Messages of persistent sessions: a session placed in run 3, messages
# naming places, and what their subscribers' workers write back.
PLACED = record(REC_SESS_PLACED, 20, W - 60,
                sess_placed(6, 3, 1, 17, 2, b"dev-2",
                            session_state(b"dev-2", subs=[(b"m/#", 5, 2, 0)],
                                          expires_in=30000)))
MSG_5 = record(REC_MSG, 21, W - 50,
               message(7, 3, 5, 1, b"m/temp", b"22.0",
                       [target(1, 17, 2, 1, 0, 5), target(0, 3, 9, 1, 2, 0),
                        target(0xFFFE, 0xFFFFFFFF, 0xFFFFFFFF, 1, 3, 0x0FFFFFFF)],
                       expires_at=W + 120000,
                       props=prop_expiry(125) + prop_content_type(b"text/plain")))
MSG_311 = record(REC_MSG, 22, W - 40,
                 message(8, 3, 4, 2, b"m/state", b"on", [target(1, 17, 2, 2, 1, 0)],
                         retain=True))
MSG_31 = record(REC_MSG, 23, W - 35,
                message(9, 3, 3, 1, b"m/old", b"", [target(0, 0, 1, 1)]))
MSG_EXPIRED = record(REC_MSG, 24, W - 30,
                     message(10, 3, 5, 2, b"m/gone", b"x", [target(1, 17, 2, 2)],
                             expires_at=W - 1, props=prop_expiry(1)))
MSG_MAX = record(REC_MSG, 25, W - 25,
                 message(11, 3, 4, 1, b"m/all", b"everyone",
                         [target(i % 7, i, 1 + i // 7, 1 + i % 2, i % 4, i)
                          for i in range(REC_MSG_TARGETS_MAX)]))
DONE = record(REC_MSG_DONE, 26, W - 20, msg_done(7, b"dev-2"))
REL = record(REC_MSG_REL, 27, W - 15, msg_rel(12, 8, 1, b"dev-2"))
REL_SNAP = record(REC_MSG_REL, 28, W - 12, msg_rel(13, 0, 0xFFFF, b"dev-2"))
COMP = record(REC_MSG_COMP, 29, W - 10, msg_comp(14, 1, b"dev-2"))
PLACED_END = record(REC_SESS_END, 30, W - 5, sess_end(15, b"dev-2"))
MSG_IN = record(REC_MSG_IN, 62, W - 4,
                msg_in(0x1234, b"pub-1", message(16, 3, 5, 2, b"m/cmd", b"go",
                                                 [target(1, 17, 2, 2, 0, 3)])))

SEEDS = {
    "set_311_qos0": SET_311,
    "set_5_qos1_props": SET_5,
    "set_5_qos2": SET_5_QOS2,
    "set_31_empty_payload": SET_31_EMPTY,
    "set_expired": SET_EXPIRED,
    "del": DEL,
    "del_ranked": DEL_RANKED,
    "unknown_type": UNKNOWN,
    "type_none": NONE,
    "big": BIG,
    "tail": SET_311 + SET_5 + SET_5_QOS2 + SET_31_EMPTY + SET_EXPIRED + DEL + DEL_RANKED +
            UNKNOWN + NONE,
    # A header in front: the target reads it too when the input starts with one.
    "with_header": header(3, 0, 17, W - 10000) + SET_311 + DEL,
    # Tails a crash or damage leaves: cut short, a flipped bit, zeros.
    "torn": SET_311 + SET_5[:len(SET_5) // 2],
    "torn_in_length": SET_311 + SET_5[:3],
    "corrupt_crc": SET_311 + SET_5[:30] + bytes([SET_5[30] ^ 0x10]) + SET_5[31:] + DEL,
    "zeros": SET_311 + bytes(64),
    # Good framing around payloads the decoders must refuse.
    "bad_level": record(REC_RETAIN_SET, 11, W, retain_set(1, 0, W, 6, 0, b"t", b"x")),
    "bad_qos": record(REC_RETAIN_SET, 12, W, retain_set(1, 0, W, 4, 0, b"t", b"x", flags=3)),
    "bad_topic": record(REC_RETAIN_SET, 13, W, retain_set(1, 0, W, 4, 0, b"a/+", b"x")),
    "bad_trailing": record(REC_RETAIN_DEL, 14, W, retain_del(1, 0, W, b"t") + b"!"),
    # Sessions: a put, a 3.1.1 one, an end.
    "sess_put": SESS,
    "sess_311": SESS_311,
    "sess_end": SESS_END,
    "sess_tail": SESS + SESS_311 + SET_311 + SESS_END,
    "bad_sess_empty_id": record(REC_SESS_PUT, 18, W, sess_put(1, b"", session_state(b""))),
    "bad_sess_end_trailing": record(REC_SESS_END, 19, W, sess_end(1, b"x") + b"!"),
    # Messages of persistent sessions: a session at its place, messages to
    # places (each level, the most targets a record holds, one expired),
    # done, PUBREL owed (for a message, and a snapshot's naming none),
    # PUBCOMP; a tail of them all; the same tail torn in the targets.
    "sess_placed": PLACED,
    "msg_5_qos1": MSG_5,
    "msg_311_qos2_retain": MSG_311,
    "msg_31_empty_payload": MSG_31,
    "msg_expired": MSG_EXPIRED,
    "msg_most_targets": MSG_MAX,
    "msg_done": DONE,
    "msg_rel": REL,
    "msg_rel_snapshot": REL_SNAP,
    "msg_comp": COMP,
    "msg_tail": PLACED + MSG_5 + MSG_311 + SET_311 + MSG_EXPIRED + DONE + REL + REL_SNAP +
                COMP + MSG_31 + PLACED_END + UNKNOWN,
    "torn_msg": PLACED + MSG_5[:len(MSG_5) - 20],
    # A message with its publisher's inbound QoS 2 id (one record: no tail
    # keeps the id without the message), and the same torn.
    "msg_in_qos2": MSG_IN,
    "torn_msg_in": PLACED + MSG_IN[:len(MSG_IN) - 30],
    # Good framing around message records the decoders must refuse.
    "bad_placed_run0": record(REC_SESS_PLACED, 31, W,
                              sess_placed(1, 0, 1, 2, 3, b"x", session_state(b"x"))),
    "bad_placed_gen0": record(REC_SESS_PLACED, 32, W,
                              sess_placed(1, 1, 1, 2, 0, b"x", session_state(b"x"))),
    "bad_placed_node": record(REC_SESS_PLACED, 33, W,
                              sess_placed(1, 1, 0xFFFF, 2, 1, b"x", session_state(b"x"))),
    "bad_placed_no_session": record(REC_SESS_PLACED, 34, W, sess_placed(1, 1, 1, 2, 3, b"x", b"")),
    "bad_placed_empty_id": record(REC_SESS_PLACED, 35, W,
                                  sess_placed(1, 1, 1, 2, 3, b"", session_state(b""))),
    "bad_msg_no_targets": record(REC_MSG, 36, W, message(1, 1, 4, 1, b"t", b"x", [])),
    "bad_msg_target_qos0": record(REC_MSG, 37, W,
                                  message(1, 1, 4, 1, b"t", b"x", [target(0, 1, 1, 0)])),
    "bad_msg_target_qos3": record(REC_MSG, 38, W,
                                  message(1, 1, 4, 1, b"t", b"x", [target(0, 1, 1, 3)])),
    "bad_msg_target_flags": record(REC_MSG, 39, W,
                                   message(1, 1, 4, 1, b"t", b"x", [target(0, 1, 1, 1, 4)])),
    "bad_msg_target_gen0": record(REC_MSG, 40, W,
                                  message(1, 1, 4, 1, b"t", b"x", [target(0, 1, 0, 1)])),
    "bad_msg_target_node": record(REC_MSG, 41, W,
                                  message(1, 1, 4, 1, b"t", b"x", [target(0xFFFF, 1, 1, 1)])),
    "bad_msg_count_over": record(REC_MSG, 42, W,
                                 message(1, 1, 4, 1, b"t", b"x", [target(0, 1, 1, 1)], count=2)),
    "bad_msg_count_under": record(REC_MSG, 43, W,
                                  message(1, 1, 4, 1, b"t", b"x",
                                          [target(0, 1, 1, 1), target(0, 2, 1, 1)], count=1)),
    "bad_msg_too_many_targets": record(REC_MSG, 44, W,
                                       message(1, 1, 4, 1, b"t", b"x",
                                               [target(0, i, 1, 1)
                                                for i in range(REC_MSG_TARGETS_MAX + 1)])),
    "bad_msg_trailing": record(REC_MSG, 45, W,
                               message(1, 1, 4, 1, b"t", b"x", [target(0, 1, 1, 1)]) + b"!"),
    "bad_msg_stamp0": record(REC_MSG, 46, W, message(0, 1, 4, 1, b"t", b"x", [target(0, 1, 1, 1)])),
    "bad_msg_run0": record(REC_MSG, 47, W, message(1, 0, 4, 1, b"t", b"x", [target(0, 1, 1, 1)])),
    "bad_msg_qos3": record(REC_MSG, 48, W,
                           message(1, 1, 4, 1, b"t", b"x", [target(0, 1, 1, 1)], flags=3)),
    "bad_msg_flags": record(REC_MSG, 49, W,
                            message(1, 1, 4, 1, b"t", b"x", [target(0, 1, 1, 1)], flags=1 | 8)),
    "bad_msg_level": record(REC_MSG, 50, W, message(1, 1, 6, 1, b"t", b"x", [target(0, 1, 1, 1)])),
    "bad_msg_topic": record(REC_MSG, 51, W,
                            message(1, 1, 4, 1, b"t/#", b"x", [target(0, 1, 1, 1)])),
    "bad_msg_expired_target_qos0": record(REC_MSG, 52, W,
                                          message(1, 1, 5, 1, b"t", b"x", [target(0, 1, 1, 0)],
                                                  expires_at=W - 1)),
    "bad_done_empty_id": record(REC_MSG_DONE, 53, W, msg_done(1, b"")),
    "bad_done_trailing": record(REC_MSG_DONE, 54, W, msg_done(1, b"x") + b"!"),
    "bad_rel_pid0": record(REC_MSG_REL, 55, W, msg_rel(2, 1, 0, b"x")),
    "bad_rel_stamp0": record(REC_MSG_REL, 56, W, msg_rel(0, 1, 1, b"x")),
    "bad_rel_empty_id": record(REC_MSG_REL, 57, W, msg_rel(2, 1, 1, b"")),
    "bad_rel_trailing": record(REC_MSG_REL, 58, W, msg_rel(2, 1, 1, b"x") + b"!"),
    "bad_comp_pid0": record(REC_MSG_COMP, 59, W, msg_comp(2, 0, b"x")),
    "bad_comp_stamp0": record(REC_MSG_COMP, 60, W, msg_comp(0, 1, b"x")),
    "bad_comp_short_id": record(REC_MSG_COMP, 61, W, msg_comp(2, 1, b"xy")[:-1]),
    "bad_msg_in_pid0": record(REC_MSG_IN, 63, W,
                              msg_in(0, b"p", message(1, 1, 4, 2, b"t", b"x",
                                                      [target(0, 1, 1, 2)]))),
    "bad_msg_in_empty_id": record(REC_MSG_IN, 64, W,
                                  msg_in(1, b"", message(1, 1, 4, 2, b"t", b"x",
                                                         [target(0, 1, 1, 2)]))),
    "bad_msg_in_id_past_end": record(REC_MSG_IN, 65, W, u16(1) + u16(40) + b"short"),
    "bad_msg_in_no_targets": record(REC_MSG_IN, 66, W,
                                    msg_in(1, b"p", message(1, 1, 4, 2, b"t", b"x", []))),
}

# Fixtures for tests/unit/record_test.c ("the_python_writer_agrees"): the C
# side seals the same records and compares bytes.
FIXTURES = {
    "header": header(writer=3, kind=1, segment=0x0102030405060708,
                     created_wall_ms=1700000000123),
    "retain_set": record(REC_RETAIN_SET, 0x0102030405060708, 1700000000123,
                         retain_set(42, 0x1122334455667788, 1700000000000, 5, 1,
                                    b"sensors/t1", b"21.5", expires_at=1700000060123,
                                    props=prop_expiry(60) + prop_content_type(b"text/plain"))),
    "retain_del": record(REC_RETAIN_DEL, 77, 1700000000999,
                         retain_del(43, 5, 1700000000998, b"sensors/t1")),
    "sess_put": record(REC_SESS_PUT, 78, 1700000001000,
                       sess_put(44, b"c1", bytes([1, 2, 3]))),
    "sess_end": record(REC_SESS_END, 79, 1700000001001, sess_end(45, b"c1")),
    "sess_placed": record(REC_SESS_PLACED, 80, 1700000001002,
                          sess_placed(46, 3, 2, 0x01020304, 7, b"c1", bytes([1, 2, 3]))),
    # record_test.c's make("sensors/t1", "21.5", 1, 60, MQTT_V5): retained,
    # packet id 7, 60 s of expiry from NOW = NOW_WALL + 60000.
    "msg": record(REC_MSG, 81, 1700000001003,
                  message(47, 3, 5, 1, b"sensors/t1", b"21.5",
                          [target(2, 0x01020304, 7, 1, 0, 9),
                           target(0xFFFE, 5, 0xFFFFFFFF, 1, 3, 0x0FFFFFFF)],
                          expires_at=1700000060123,
                          props=prop_expiry(60) + prop_content_type(b"text/plain"),
                          retain=True)),
    # make_msg("a/b", "on", 2, 0, MQTT_V311, retain false): no expiry.
    "msg_311": record(REC_MSG, 82, 1700000001004,
                      message(48, 1, 4, 2, b"a/b", b"on", [target(0, 1, 1, 2, 2, 0)])),
    "msg_done": record(REC_MSG_DONE, 83, 1700000001005, msg_done(47, b"c1")),
    "msg_rel": record(REC_MSG_REL, 84, 1700000001006, msg_rel(49, 47, 0xBEEF, b"c1")),
    "msg_comp": record(REC_MSG_COMP, 85, 1700000001007, msg_comp(50, 0xBEEF, b"c1")),
    # msg_311's message, with the inbound id 0xBEEF of "c1".
    "msg_in": record(REC_MSG_IN, 86, 1700000001008,
                     msg_in(0xBEEF, b"c1", message(48, 1, 4, 2, b"a/b", b"on",
                                                   [target(0, 1, 1, 2, 2, 0)]))),
}


def main():
    if sys.argv[1:] == ["--fixtures"]:
        for name, data in FIXTURES.items():
            print(f"{name}: {data.hex()}")
        return
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {OUT}")


if __name__ == "__main__":
    main()
