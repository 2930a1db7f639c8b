#!/usr/bin/python3
"""Write the encoded-session fuzzer's seed corpus (tests/fuzz/corpus/session/).

Each seed is one encoded session, written here from the format described at
the top of core/session/codec.c (version 1), not by the broker's encoder:
a second implementation that must agree with the first. Run it again after
changing the format; the seeds are committed.
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "session")


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


def publish_body(topic, payload, qos, version, props=b""):
    """A PUBLISH body: from the topic's length prefix to the payload's end."""
    body = mqtt_str(topic)
    if qos:
        body += u16(9)
    if version == 5:
        body += varint(len(props)) + props
    return body + payload


def message(topic, payload, qos, version, retain=False, expires_in=0, props=b""):
    body = publish_body(topic, payload, qos, version, props)
    return (u8(version) + u8(qos | (4 if retain else 0)) + u64(expires_in) +
            mqtt_str(topic) + u32(len(body)) + body)


def will_publish():
    body = mqtt_str(b"wills/x") + u16(1) + varint(0) + b"bye"
    return bytes([0x32]) + varint(len(body)) + body


def session(client_id=b"c1", user=None, expiry=0, version=4, next_pid=1, expires_in=0,
            will=b"", will_delay=0, will_in=0, subs=(), infl=(), queued=(), rx_qos2=()):
    out = u8(1) + mqtt_str(client_id)
    out += u8(1) + mqtt_str(user) if user is not None else u8(0)
    out += u32(expiry) + u8(version) + u16(next_pid) + u64(expires_in)
    out += u32(len(will)) + will + u32(will_delay) + u64(will_in)
    out += u32(len(subs))
    for f, sub_id, qos, flags in subs:
        out += mqtt_str(f) + u32(sub_id) + u8(qos) + u8(flags)
    out += u32(len(infl))
    for pid, qos, state, flags, sub_id, msg in infl:
        out += u16(pid) + u8(qos) + u8(state) + u8(flags) + u32(sub_id)
        if state == 1:
            out += msg
    out += u32(len(queued))
    for qos, flags, sub_id, msg in queued:
        out += u8(qos) + u8(flags) + u32(sub_id) + msg
    out += u32(len(rx_qos2))
    for pid in rx_qos2:
        out += u16(pid)
    return out


SEEDS = {
    "empty_311": session(),
    "empty_31": session(version=3, client_id=b"old-client"),
    "user_v5": session(client_id=b"dev-42", user=b"alice", expiry=3600, version=5,
                       next_pid=300, expires_in=120000),
    "subscriptions": session(version=5, subs=[
        (b"a/+/c", 0, 1, 0), (b"b/#", 42, 2, 3), (b"$share/g/x", 0, 0, 0), (b"#", 7, 1, 1)]),
    "inflight": session(version=4, subs=[(b"t/#", 0, 2, 0)], infl=[
        (1, 1, 1, 0, 0, message(b"t/a", b"one", 1, 4)),
        (2, 2, 1, 1, 0, message(b"t/b", b"two", 2, 4, retain=True)),
        (3, 2, 2, 0, 0, None),
        (65535, 1, 1, 2, 0, message(b"t/c", b"three", 1, 4))]),
    "queued_v5_props": session(version=5, queued=[
        (1, 0, 5, message(b"q/1", b"x" * 40, 1, 5, expires_in=30000,
                          props=u8(0x03) + mqtt_str(b"text/plain"))),
        (0, 2, 0, message(b"q/2", b"", 0, 5)),
        (2, 1, 0, message(b"q/3", b"retained", 2, 5, retain=True))]),
    "rx_qos2": session(version=5, rx_qos2=[17, 1, 65535]),
    "will": session(version=5, expiry=60, expires_in=5000, will=will_publish(), will_delay=30,
                    will_in=29000),
    "everything": session(client_id=b"client-1", user=b"bob", expiry=86400, version=5,
                          next_pid=12, expires_in=1000, will=will_publish(), will_delay=0,
                          subs=[(b"s/#", 3, 2, 2)],
                          infl=[(10, 2, 1, 0, 3, message(b"s/1", b"a", 2, 5)),
                                (11, 2, 2, 0, 3, None)],
                          queued=[(1, 0, 3, message(b"s/2", b"b", 1, 5))], rx_qos2=[4]),
    # Seeds the decoder must refuse: a count larger than the bytes left, a
    # message whose body does not parse, a filter that is not one.
    "bad_count": session()[:-4] + u32(1000),
    "bad_body": session(queued=[(1, 0, 0, u8(4) + u8(1) + u64(0) + mqtt_str(b"t") + u32(3) +
                                 b"\x00\x05t")]),
    "bad_filter": session(subs=[(b"a/#/b", 0, 0, 0)]),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {OUT}")


if __name__ == "__main__":
    main()
