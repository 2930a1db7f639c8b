#!/usr/bin/python3
"""Does a wave of disconnects stall unrelated traffic?

N clients connect (each with one QoS 1 subscription of its own, so that
every disconnect also removes an index entry on every worker), then all of
them drop their sockets at once, WAVES times. Meanwhile a bystander pair
does QoS 1 round trips (publish, receive, acknowledge) back to back on
another topic; the script reports the round-trip percentiles during the
waves and the longest stall.

usage: disconnect-wave.py PORT [--clients N] [--waves W] [--v 4|5]
Bounded: W waves of N connections to 127.0.0.1, then it stops.
"""
import argparse
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "integration"))
from mqttraw import (CONNACK, PUBACK, PUBLISH, SUBACK, Client, ack, connect,  # noqa: E402
                     publish, subscribe)


def bystander(port, v, stop, rtts):
    pub, sub = Client(port, v), Client(port, v)
    assert pub.connect("wave-bystander-pub", True).rc == 0
    assert sub.connect("wave-bystander-sub", True).rc == 0
    sub.send(subscribe(v, 1, [("wave-probe", 1)]))
    sub.expect(SUBACK)
    pid = 0
    while not stop.is_set():
        pid = pid % 65535 + 1
        t = time.monotonic()
        pub.send(publish(v, "wave-probe", b"x" * 32, qos=1, pid=pid))
        m = sub.expect(PUBLISH, timeout=10)
        rtts.append((t, time.monotonic() - t))
        sub.send(ack(PUBACK, m.pid))
        pub.expect(PUBACK, timeout=10)
    pub.close()
    sub.close()


def wave(port, v, n, tag):
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(connect(v, f"wave{tag}-{i}", True))
        socks.append(s)
    c = Client.__new__(Client)
    for i, s in enumerate(socks):  # CONNACK, then one subscription each
        c.v, c.sock, c.buf = v, s, bytearray()
        assert c.expect(CONNACK, timeout=30).rc == 0
        s.sendall(subscribe(v, 1, [(f"wave/{tag}/{i}", 1)]))
    for s in socks:
        c.sock, c.buf = s, bytearray()
        c.expect(SUBACK, timeout=30)
    time.sleep(0.5)
    # All at once, as when a process or a NAT holding them dies: the
    # kernel closes every socket of a killed child in one go.
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    for s in socks:
        s.close()  # the child's copies keep them open
    time.sleep(0.2)
    t = time.monotonic()
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--clients", type=int, default=5000)
    ap.add_argument("--waves", type=int, default=5)
    ap.add_argument("--v", type=int, default=4)
    a = ap.parse_args()
    stop = threading.Event()
    rtts = []
    th = threading.Thread(target=bystander, args=(a.port, a.v, stop, rtts))
    th.start()
    time.sleep(0.5)
    windows = []
    for w in range(a.waves):
        t = wave(a.port, a.v, a.clients, w)
        time.sleep(2)
        windows.append((t, time.monotonic()))
    stop.set()
    th.join(20)
    during = sorted(r for t, r in rtts if any(s <= t < e for s, e in windows))
    if not during:
        print("no round trips measured")
        return 1
    q = lambda p: during[min(len(during) - 1, int(p * len(during)))] * 1000  # noqa: E731
    print(f"{a.waves} waves of {a.clients} disconnects: {len(during)} bystander QoS 1 round "
          f"trips in the 2 s after each wave: p50 {q(0.5):.2f} ms, p99 {q(0.99):.2f} ms, "
          f"max {during[-1] * 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
