#!/usr/bin/python3
"""Probes of the ops listener under hostile connections: start the broker on
loopback, open HOSTILE connections to metrics_listen that never finish a
request (half send nothing, half send part of a head and one more byte per
probe: slowloris), then send PROBES kubelet-style probes (a new connection,
GET /healthz, read, close) with a TIMEOUT each, 100 ms apart, and print how
many were answered 200, how long they took, and the CPU the ops thread used
meanwhile. Loopback only, bounded in
count and time; stops the broker at the end.

usage: bench/ops_flood.py STARLING_BINARY [--hostile N] [--probes N]
                          [--timeout S] [--workers N] [-- BROKER_FLAGS...]
"""
import argparse
import http.client
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from broker import Broker  # noqa: E402


def ops_thread_ticks(pid):
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/comm") as f:
            if f.read().strip() != "starling-ops":
                continue
        with open(f"/proc/{pid}/task/{t}/stat") as f:
            st = f.read()
        fields = st[st.rindex(")") + 2:].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--hostile", type=int, default=64)
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("flags", nargs="*")
    a = ap.parse_args()
    a.hostile = min(a.hostile, 5000)
    a.probes = min(a.probes, 1000)
    b = Broker(a.binary, a.workers, a.flags, log_level="info")
    socks = []
    try:
        port = b.metrics_port
        slow = []
        for i in range(a.hostile):
            s = socket.create_connection(("127.0.0.1", port))
            if i % 2:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                slow.append(s)
            socks.append(s)
        ok, took = 0, []
        start, ticks0 = time.monotonic(), ops_thread_ticks(b.proc.pid)
        for _ in range(a.probes):
            t = time.monotonic()
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=a.timeout)
                c.request("GET", "/healthz")
                r = c.getresponse()
                r.read()
                c.close()
                ok += r.status == 200
            except OSError:
                pass
            took.append(time.monotonic() - t)
            for s in slow:
                try:
                    s.send(b"a")
                except OSError:
                    pass
            time.sleep(0.1)
        cpu = (ops_thread_ticks(b.proc.pid) - ticks0) / os.sysconf("SC_CLK_TCK")
        cpu_pct = 100 * cpu / (time.monotonic() - start)
        took.sort()
        print(f"{ok}/{a.probes} probes answered 200 under {a.hostile} hostile connections "
              f"(timeout {a.timeout:g} s); median {took[len(took) // 2] * 1000:.1f} ms, "
              f"slowest {took[-1] * 1000:.1f} ms; ops thread {cpu_pct:.0f}% of a core")
    finally:
        for s in socks:
            s.close()
        b.cleanup()


if __name__ == "__main__":
    main()
