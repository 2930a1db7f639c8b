#!/usr/bin/python3
"""A lost route delta is repaired by the digest on membership probes.

Needs a build with the test hooks (meson -Dtest_hooks=true): node a runs
with SLTEST_DROP_ROUTE_DELTAS=N, so its worker 0 drops the first N route
deltas it receives as if they were lost. b then subscribes: its delta to a
is dropped, a's copy of b's routes is behind what b's digest says, and
after a second behind a fetches b's routes whole (its connection from b's
worker 0 closed, a snapshot on the next). What must hold: a holds the
route and a publish on a reaches b's subscriber, a counted one resync, and
the log says which delta was dropped. The time from SUBACK to the route on
a is reported (the issue's target: gap repair <= 2 s), per profile.

usage: gap_test.py STARLING [--workers N] [--only NAME]
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402  (puts ../integration on the path)
import tap  # noqa: E402
from mqttraw import Client, PUBLISH, SUBACK, publish, subscribe  # noqa: E402


def repaired(c, profile, drops):
    c.start("a", profile=profile, env={"SLTEST_DROP_ROUTE_DELTAS": str(drops)})
    c.start("b", seeds=["a"], profile=profile)
    c.wait("both joined and in sync",
           lambda: all(c.metric(n, "starling_cluster_synced") == 1 for n in "ab"), 15)
    assert "test hook: the next" in c.log("a"), "this build has no test hooks (-Dtest_hooks=true)"
    times = []
    sub = Client(c.nodes["b"].port, v=4)
    sub.connect("gap-sub")
    for k in range(drops):
        sub.send(subscribe(4, k + 1, [(f"gap/{k}", 0)]))
        sub.expect(SUBACK)
        t0 = time.monotonic()
        t1 = c.wait(f"b's route {k + 1} on a", lambda: c.metric(
            "a", "starling_cluster_routes", '{origin="b"}') == k + 1, 10)
        times.append(t1 - t0)
        pub = Client(c.nodes["a"].port, v=4)
        pub.connect(f"gap-pub-{k}")
        pub.send(publish(4, f"gap/{k}", b"after the repair"))
        p = sub.recv(5)
        assert p.type == PUBLISH and bytes(p.payload) == b"after the repair", p
        pub.close()
    assert c.log("a").count("test hook: a route delta from b dropped") == drops
    resyncs = c.metric("a", "starling_cluster_route_resyncs_total")
    assert resyncs >= drops, f"{resyncs:g} resyncs for {drops} lost deltas"
    sub.close()
    tap.comment(f"{profile}: {drops} lost deltas repaired after " +
                ", ".join(f"{t:.2f}" for t in times) + f" s (max {max(times):.2f} s)")


def t01_fast(c):
    repaired(c, "fast", 3)


def t02_lan(c):
    repaired(c, "lan", 2)


TESTS = [
    ("01 a lost route delta is repaired by the digest (fast profile)", t01_fast),
    ("02 a lost route delta is repaired by the digest (lan profile)", t02_lan),
]


def main():
    args = tap.parse_args()
    tests = [(name, fn) for name, fn in TESTS if args.only in name]
    print("TAP version 13")
    n, failed = tap.run(tests, lambda: Cluster(args.binary, args.workers))
    tap.finish(n, failed)


if __name__ == "__main__":
    main()
