#!/usr/bin/python3
"""Bytes a subscriber receives for N messages, with outgoing topic aliases
on (topic_alias_out_max=64) and off (0): what the broker's aliasing saves
on the wire. Loopback only, bounded: one broker per setting, N messages.

usage: bench/alias-bytes.py STARLING_BINARY [--messages N] [--topics K]
       [--topic-len L] [--payload P]
Prints one Markdown table row per setting and the saving.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from broker import Broker  # noqa: E402
from mqttraw import CONNACK, SUBACK, Client, connect, publish, subscribe  # noqa: E402


def run(binary, out_max, a):
    b = Broker(binary, 1, [f"--topic-alias-out-max={out_max}"], log_level="info")
    try:
        sub = Client(b.port, 5)
        sub.send(connect(5, "alias-bytes-sub", p=[(0x22, 64)]))
        sub.expect(CONNACK)
        sub.send(subscribe(5, 1, [("bench/#", 0)]))
        sub.expect(SUBACK)
        pub = Client(b.port, 5)
        pub.send(connect(5, "alias-bytes-pub"))
        pub.expect(CONNACK)
        pad = "x" * max(0, a.topic_len - len("bench/000/"))
        topics = [f"bench/{k:03d}/{pad}"[:a.topic_len] for k in range(a.topics)]
        payload = b"p" * a.payload
        total = got = 0
        deadline = time.monotonic() + 60
        # In chunks the subscriber reads before the next: QoS 0 past a full
        # outbox would be dropped, and a dropped message is no saving.
        for start in range(0, a.messages, 500):
            n = min(500, a.messages - start)
            pub.send(b"".join(publish(5, topics[(start + i) % a.topics], payload)
                              for i in range(n)))
            for _ in range(n):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {got} of {a.messages} messages in 60 s")
                total += len(sub.recv(10).raw)
                got += 1
        return total
    finally:
        b.stop()
        b.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--topics", type=int, default=10)
    ap.add_argument("--topic-len", type=int, default=64)
    ap.add_argument("--payload", type=int, default=32)
    a = ap.parse_args()
    off = run(a.binary, 0, a)
    on = run(a.binary, 64, a)
    print(f"{a.messages} QoS 0 messages, {a.topics} topics of {a.topic_len} bytes, "
          f"{a.payload}-byte payloads, subscriber's Topic Alias Maximum 64")
    print("| topic_alias_out_max | bytes received | per message |")
    print("|---|---|---|")
    print(f"| 0 (off) | {off} | {off / a.messages:.1f} |")
    print(f"| 64 | {on} | {on / a.messages:.1f} |")
    print(f"saved: {off - on} bytes, {100.0 * (off - on) / off:.1f}%")


if __name__ == "__main__":
    main()
