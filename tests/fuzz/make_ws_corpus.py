#!/usr/bin/python3
"""Write the WebSocket fuzzer's seed corpus (tests/fuzz/corpus/ws/).

Each seed is one mode byte (see fuzz_ws.c: bits 0-1 bytes per read 1/7/64/all,
bits 2-3 ws_send mode, bit 4 ws_close halfway, bit 6 max frame 125, bit 7
prepend the handshake) and then the bytes an MQTT-over-WebSocket client
sends: masked frames carrying MQTT packets, pings, closes, and the frames a
server must refuse [RFC 6455 5.1, 5.2, 5.5; MQTT-6.0.0-1]. Run it again after
editing; the seeds are committed.
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "ws")

ALL, BY1, BY7, BY64 = 3, 0, 1, 2
SEND_EVERY, SEND_4TH, SEND_BIG = 1 << 2, 2 << 2, 3 << 2
CLOSE_MID = 1 << 4
SMALL_MAX = 1 << 6
HS = 1 << 7

MASK = bytes([0x37, 0xFA, 0x21, 0x3D])  # RFC 6455 5.7

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

CONNECT = bytes.fromhex("101000044d5154540402003c0004") + b"abcd"
PINGREQ = b"\xc0\x00"
SUBSCRIBE = b"\x82\x08\x00\x01\x00\x03a/b\x01"
DISCONNECT = b"\xe0\x00"


def frame(opcode, payload=b"", fin=True, masked=True, rsv=0, length=None, form=None):
    """One client frame; form forces a length encoding (7, 16 or 64)."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    m = 0x80 if masked else 0
    if form is None:
        form = 7 if n <= 125 else 16 if n <= 0xFFFF else 64
    if form == 7:
        head += bytes([m | n])
    elif form == 16:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    if masked:
        head += MASK
        payload = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return head + payload


def hs_request(path="/mqtt", protocol="mqtt"):
    return ("GET %s HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: %s\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n" % (path, protocol)).encode()


seeds = {}

seeds["handshake_only"] = bytes([HS | ALL])
seeds["handshake_raw_by1"] = bytes([BY1]) + hs_request() + frame(BINARY, PINGREQ)
seeds["handshake_refused_404"] = bytes([BY7]) + hs_request(path="/x") + frame(BINARY, PINGREQ)
seeds["handshake_no_mqtt"] = bytes([ALL | SEND_EVERY]) + hs_request(protocol="chat")
seeds["binary_connect"] = bytes([HS | ALL]) + frame(BINARY, CONNECT)
seeds["binary_by7_send"] = (bytes([HS | BY7 | SEND_EVERY]) + frame(BINARY, CONNECT) +
                            frame(BINARY, PINGREQ + SUBSCRIBE + DISCONNECT))
seeds["fragmented"] = (bytes([HS | BY1 | SEND_4TH]) + frame(BINARY, CONNECT[:1], fin=False) +
                       frame(CONT, CONNECT[1:9], fin=False) + frame(CONT, CONNECT[9:]))
seeds["ping"] = bytes([HS | ALL]) + frame(PING, b"are you there?") + frame(BINARY, PINGREQ)
seeds["ping_between_fragments"] = (bytes([HS | BY64 | SEND_EVERY]) +
                                   frame(BINARY, SUBSCRIBE[:4], fin=False) +
                                   frame(PING, b"x") + frame(PONG, b"y") +
                                   frame(CONT, SUBSCRIBE[4:]))
seeds["close_1000"] = (bytes([HS | ALL]) + frame(CLOSE, struct.pack(">H", 1000) + b"bye") +
                       frame(BINARY, PINGREQ))
seeds["close_bad_code"] = bytes([HS | BY7]) + frame(CLOSE, struct.pack(">H", 1005))
seeds["close_mid_by1"] = (bytes([HS | BY1 | CLOSE_MID | SEND_EVERY]) + frame(BINARY, CONNECT) +
                          frame(BINARY, PINGREQ) + frame(CLOSE, struct.pack(">H", 1000)))
seeds["text"] = bytes([HS | ALL]) + frame(TEXT, b"hello") + frame(BINARY, PINGREQ)
seeds["text_bad_utf8"] = bytes([HS | BY7]) + frame(TEXT, b"\xff\xfe", fin=False)
seeds["unmasked"] = bytes([HS | ALL]) + frame(BINARY, PINGREQ, masked=False)
seeds["rsv_and_reserved_opcode"] = (bytes([HS | BY7]) + frame(BINARY, PINGREQ, rsv=4) +
                                    frame(0x3, b"z"))
seeds["continuation_first"] = bytes([HS | ALL]) + frame(CONT, PINGREQ)
seeds["oversized_small_max"] = bytes([HS | SMALL_MAX | BY64]) + frame(BINARY, bytes(200))
seeds["len16_300"] = bytes([HS | BY64 | SEND_BIG]) + frame(BINARY, bytes(range(256)) + bytes(44))
seeds["len64_huge"] = bytes([HS | ALL]) + frame(BINARY, b"\x30", length=1 << 40, form=64)
seeds["len64_nonminimal"] = bytes([HS | ALL]) + frame(BINARY, PINGREQ, form=64)
seeds["ping_too_long"] = bytes([HS | ALL]) + frame(PING, bytes(126))
seeds["garbage_tls"] = bytes([ALL]) + bytes.fromhex("160301020001000001fc0303") + bytes(8)
seeds["garbage_after_handshake"] = bytes([HS | BY7]) + b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c"

os.makedirs(OUT, exist_ok=True)
for name, data in sorted(seeds.items()):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} seeds to {OUT}")
