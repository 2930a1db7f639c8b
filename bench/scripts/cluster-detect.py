#!/usr/bin/python3
"""How long a cluster takes to declare a crashed node dead.

Three real nodes on loopback (tests/cluster/membership_test.py's harness),
joined; after a few seconds (a different phase each run) the third gets
kill -9, and the other two are polled (/metrics, every 20 ms) until each
shows it dead. Reports, per run, when the first and when both declared it,
then the mean and the worst. Bounded: RUNS runs of at most 30 s each.

With `leave` as the third argument the third node gets SIGTERM instead
(a graceful leave) and the others are polled until each shows it left.

usage: cluster-detect.py STARLING RUNS [lan|fast|leave]
"""
import os
import signal
import statistics
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "tests", "cluster"))
sys.path.insert(0, os.path.join(here, "..", "..", "tests", "integration"))
from membership_test import Cluster  # noqa: E402


def dead(c, n):
    return c.metric(n, "starling_cluster_members", '{state="dead"}') == 1


def left(c, n):
    return c.metric(n, "starling_cluster_members", '{state="left"}') == 1


def one_run(binary, profile, phase_s):
    leave = profile == "leave"
    if leave:
        profile = "lan"
    c = Cluster(binary, 1)
    try:
        c.start("n1", profile=profile)
        c.start("n2", seeds=["n1"], profile=profile)
        c.start("n3", seeds=["n1"], profile=profile)
        c.wait("join", lambda: all(c.alive(n) == 2 for n in ("n1", "n2", "n3")), 15)
        time.sleep(phase_s)
        t0 = time.monotonic()
        if leave:
            c.nodes["n3"].proc.send_signal(signal.SIGTERM)
        else:
            c.kill9("n3")
        first = None
        while time.monotonic() - t0 < 30:
            d = [(left if leave else dead)(c, n) for n in ("n1", "n2")]
            if first is None and any(d):
                first = time.monotonic() - t0
            if all(d):
                return first, time.monotonic() - t0
            time.sleep(0.02)
        raise RuntimeError("not detected within 30 s")
    finally:
        c.close()


def main():
    binary, runs = sys.argv[1], int(sys.argv[2])
    profile = sys.argv[3] if len(sys.argv) > 3 else "lan"
    res = []
    for r in range(runs):
        first, both = one_run(binary, profile, 3 + (r % 5) * 0.2)
        res.append((first, both))
        print(f"run {r + 1}: first {first:.2f} s, both {both:.2f} s", flush=True)
    firsts = [f for f, _ in res]
    boths = [b for _, b in res]
    what = "seen to leave" if profile == "leave" else "declared dead"
    print(f"{profile}, 3 nodes, {runs} runs: first {what} after {statistics.mean(firsts):.2f} s "
          f"mean, {max(firsts):.2f} s worst; by both after {statistics.mean(boths):.2f} s mean, "
          f"{max(boths):.2f} s worst")


if __name__ == "__main__":
    main()
