#!/usr/bin/python3
"""Route convergence between two nodes on loopback.

Node A has a publisher sending to the topic of the current trial every
~0.2 ms (QoS 0, raw socket). A subscriber on node B subscribes to a new
topic per trial: the time from its SUBACK to the first message forwarded
from A is how long the new route took to reach A (SUBACK does not wait for
the cluster), within the publisher's spacing. Then it unsubscribes, and A's
starling_cluster_routes{origin="b"} is polled until the route is gone
(each poll is an HTTP request: about a millisecond of resolution).
Reports p50/p99/max of both. Bounded: TRIALS trials, 2 s each at most.

usage: cluster-convergence.py STARLING [TRIALS]
"""
import os
import statistics
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


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def main():
    binary = sys.argv[1]
    trials = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    logdir = tempfile.mkdtemp(prefix="cluster-conv-")
    a = bench.Node(binary, "a", logdir=logdir)
    b = bench.Node(binary, "b", seeds=[a], logdir=logdir)
    stop = threading.Event()
    topic = ["conv/none"]
    try:
        deadline = time.monotonic() + 10
        while a.metric("starling_cluster_links_up") != 1 or b.metric("starling_cluster_synced") != 1:
            if time.monotonic() > deadline:
                raise RuntimeError("no link")
            time.sleep(0.05)
        pub = Client(a.mqtt, v=4)
        pub.connect("conv-pub")

        def publish():
            while not stop.is_set():
                pub.send(mqttraw.publish(4, topic[0], b"x"))
                time.sleep(0.0002)

        t = threading.Thread(target=publish, daemon=True)
        t.start()
        sub = Client(b.mqtt, v=4)
        sub.connect("conv-sub")
        adds, removes = [], []
        for k in range(trials):
            topic[0] = f"conv/{k}"
            time.sleep(0.005)
            sub.send(mqttraw.subscribe(4, 1 + k % 60000, [(topic[0], 0)]))
            sub.expect(mqttraw.SUBACK)
            t0 = time.monotonic()
            while True:
                p = sub.recv(2.0)
                if p.type == mqttraw.PUBLISH:
                    break
            adds.append((time.monotonic() - t0) * 1000)
            sub.send(mqttraw.unsubscribe(4, 1 + k % 60000, [topic[0]]))
            t1 = time.monotonic()
            while True:  # drain until UNSUBACK
                p = sub.recv(2.0)
                if p.type == mqttraw.UNSUBACK:
                    break
            while a.metric("starling_cluster_routes", '{origin="b"}') != 0:
                if time.monotonic() - t1 > 2:
                    raise RuntimeError("route not removed in 2 s")
            removes.append((time.monotonic() - t1) * 1000)
        stop.set()
        t.join()
        for name, xs in (("subscribe -> first forwarded message", adds),
                         ("unsubscribe -> route gone on the peer (metric poll)", removes)):
            print(f"{name}: n={len(xs)} p50 {statistics.median(xs):.2f} ms, "
                  f"p99 {pct(xs, 0.99):.2f} ms, max {max(xs):.2f} ms")
    finally:
        stop.set()
        a.stop()
        b.stop()


if __name__ == "__main__":
    main()
