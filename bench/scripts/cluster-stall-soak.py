#!/usr/bin/python3
"""False deaths under periodic stalls: three nodes with the default (lan)
profile, linked and forwarding, and every PERIOD seconds one of them (in
turn) is stopped with SIGSTOP for 2 s and continued. Over the whole run no
node may ever be declared dead (suspicions are fine: that is what a stall
looks like), and a subscriber on one node keeps getting a QoS 1 stream
published on another (counted: lost and duplicated). Bounded: MINUTES of
run, then everything is stopped.

usage: cluster-stall-soak.py STARLING [MINUTES] [PERIOD_S]
"""
import os
import signal
import sys
import tempfile
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "tests", "integration"))
sys.path.insert(0, here)
import mqttraw  # noqa: E402
from mqttraw import Client  # noqa: E402
from importlib import import_module  # noqa: E402
bench = import_module("cluster-bench")


def main():
    binary = sys.argv[1]
    minutes = float(sys.argv[2]) if len(sys.argv) > 2 else 10
    period = float(sys.argv[3]) if len(sys.argv) > 3 else 10
    logdir = tempfile.mkdtemp(prefix="cluster-soak-")
    nodes = []
    stop = threading.Event()
    try:
        a = bench.Node(binary, "a", logdir=logdir, profile="lan")
        b = bench.Node(binary, "b", seeds=[a], logdir=logdir, profile="lan")
        c = bench.Node(binary, "c", seeds=[a], logdir=logdir, profile="lan")
        nodes = [a, b, c]
        deadline = time.monotonic() + 20
        while any(n.metric("starling_cluster_links_up") != 2 for n in nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("no links")
            time.sleep(0.1)
        sub = Client(c.mqtt, v=4)
        sub.connect("soak-sub", clean=False)
        sub.send(mqttraw.subscribe(4, 1, [("soak/#", 1)]))
        sub.expect(mqttraw.SUBACK)
        time.sleep(0.5)
        got = []

        def receive():
            while not stop.is_set():
                try:
                    p = sub.recv(0.5)
                except TimeoutError:
                    continue
                if p.type == mqttraw.PUBLISH:
                    got.append(int(bytes(p.payload)))
                    if p.pid:
                        sub.send(mqttraw.ack(mqttraw.PUBACK, p.pid))

        rt = threading.Thread(target=receive, daemon=True)
        rt.start()
        pub = Client(a.mqtt, v=4)
        pub.connect("soak-pub")
        sent = 0
        t_end = time.monotonic() + minutes * 60
        next_stall = time.monotonic() + period
        victim = 0
        stalls = 0
        while time.monotonic() < t_end:
            pid = 1 + sent % 65535
            pub.send(mqttraw.publish(4, "soak/x", str(sent).encode(), qos=1, pid=pid))
            pub.expect(mqttraw.PUBACK, timeout=10)
            sent += 1
            time.sleep(0.01)
            if time.monotonic() >= next_stall:
                n = nodes[victim % 3]
                victim += 1
                os.kill(n.p.pid, signal.SIGSTOP)
                time.sleep(2.0)
                os.kill(n.p.pid, signal.SIGCONT)
                stalls += 1
                next_stall = time.monotonic() + period
        time.sleep(3)
        stop.set()
        rt.join()
        dead = {n.name: n.metric("starling_cluster_members", '{state="dead"}') for n in nodes}
        susp = {n.name: n.metric("starling_cluster_suspicions_total") for n in nodes}
        deaths = sum(1 for n in nodes
                     for line in open(os.path.join(logdir, n.name + ".log"))
                     if " is dead" in line)
        uniq = set(got)
        lost = sent - len(uniq & set(range(sent)))
        dups = len(got) - len(uniq)
        print(f"{minutes} min, a 2 s SIGSTOP every {period} s ({stalls} stalls, a/b/c in turn): "
              f"deaths logged {deaths}, dead now {dead}, suspicions {susp}; "
              f"QoS 1 a -> c: sent {sent}, lost {lost}, duplicates {dups}")
    finally:
        stop.set()
        for n in nodes:
            try:
                os.kill(n.p.pid, signal.SIGCONT)
            except OSError:
                pass
            n.stop()


if __name__ == "__main__":
    main()
