#!/usr/bin/python3
"""Cross-node forwarding against local delivery, in one session.

Runs starling-bench at a fixed rate against (a) one node and (b) two nodes
on loopback with the publishers on node A and the subscribers on node B
(--sub-hosts), and reads the brokers' CPU time from /proc before and after
each run: CPU-seconds per million delivered messages, summed over the
nodes. Then (c) fan-out 1 -> N with the subscribers spread over three
nodes: each node must receive each publish once (its
starling_cluster_forwarded_total{direction="in"} equals the publishes).
Every broker has 1 worker (2 nodes on a 2-core machine).

usage: cluster-bench.py STARLING STARLING-BENCH [ROUNDS] [DURATION_S]
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "cluster"))
from cluster import free_udp_port as free_port  # noqa: E402  (a port free for UDP and TCP)

CLK = os.sysconf("SC_CLK_TCK")


class Node:
    def __init__(self, binary, name, seeds=(), clustered=True, logdir=".", profile="fast"):
        self.name = name
        self.mqtt, self.metrics, self.cluster = free_port(), free_port(), free_port()
        args = [binary, "--workers=1", f"--listen=127.0.0.1:{self.mqtt}",
                f"--metrics-listen=127.0.0.1:{self.metrics}", "--log-level=warn",
                "--queue-messages-max=100000", "--max-connections=100000"]
        if clustered:
            args += [f"--node-name={name}", f"--cluster-listen=127.0.0.1:{self.cluster}",
                     f"--cluster-profile={profile}", "--cluster-join-timeout-ms=500"]
            if seeds:
                args.append("--cluster-seeds=" + ",".join(f"127.0.0.1:{s.cluster}" for s in seeds))
        self.log = open(os.path.join(logdir, name + ".log"), "w")
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except Exception:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{name} not ready")

    def cpu_s(self):
        with open(f"/proc/{self.p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK

    def metric(self, family, labels=""):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5) as r:
            text = r.read().decode()
        m = re.search(rf"^{re.escape(family + labels)} (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
        self.log.close()


def bench(sb, nodes, args):
    """One starling-bench run; returns (report, broker CPU seconds summed)."""
    before = sum(n.cpu_s() for n in nodes)
    out = subprocess.run([sb, *args, "--quiet", "--json"], capture_output=True, text=True,
                         timeout=600)
    after = sum(n.cpu_s() for n in nodes)
    if out.returncode not in (0, 1) or not out.stdout.strip():
        raise RuntimeError(f"bench failed: {out.stderr[-500:]}")
    return json.loads(out.stdout), after - before


def pairs(binary, sb, qos, duration, logdir, cross):
    a = Node(binary, "a", clustered=cross, logdir=logdir)
    nodes = [a]
    try:
        sub_host = f"127.0.0.1:{a.mqtt}"
        if cross:
            b = Node(binary, "b", seeds=[a], logdir=logdir)
            nodes.append(b)
            deadline = time.monotonic() + 10
            while a.metric("starling_cluster_links_up") != 1 or b.metric("starling_cluster_synced") != 1:
                if time.monotonic() > deadline:
                    raise RuntimeError("the two nodes did not link")
                time.sleep(0.05)
            sub_host = f"127.0.0.1:{b.mqtt}"
        rep, cpu = bench(sb, nodes, ["pairs", "-h", f"127.0.0.1:{a.mqtt}", "--sub-hosts", sub_host,
                                     "-c", "100", "-q", str(qos), "-r", "200", "-d", str(duration),
                                     "--inflight", "20"])
        d = rep["delivery"]
        return {"delivered": d["delivered"], "lost": d["lost"], "dup": d["duplicates"],
                "ooo": d["out_of_order"], "cpu_s": cpu,
                "cpu_s_per_M": cpu / d["delivered"] * 1e6 if d["delivered"] else float("nan"),
                "p50_us": rep["latency_us"]["p50"], "p99_us": rep["latency_us"]["p99"]}
    finally:
        for n in nodes:
            n.stop()


def fanout(binary, sb, subs, count, logdir):
    a = Node(binary, "a", logdir=logdir)
    b = Node(binary, "b", seeds=[a], logdir=logdir)
    c = Node(binary, "c", seeds=[a], logdir=logdir)
    nodes = [a, b, c]
    try:
        deadline = time.monotonic() + 10
        while any(n.metric("starling_cluster_links_up") != 2 for n in nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the three nodes did not link")
            time.sleep(0.05)
        hosts = ",".join(f"127.0.0.1:{n.mqtt}" for n in nodes)
        rep, cpu = bench(sb, nodes, ["fanout", "-h", f"127.0.0.1:{a.mqtt}", "--sub-hosts", hosts,
                                     "--subs", str(subs), "-q", "1", "-n", str(count), "-r", "100"])
        ins = [n.metric("starling_cluster_forwarded_total", '{direction="in"}') for n in nodes]
        out_a = a.metric("starling_cluster_forwarded_total", '{direction="out"}')
        d = rep["delivery"]
        return {"published": rep["publish"]["published"], "expected": d["expected"],
                "delivered": d["delivered"], "lost": d["lost"], "dup": d["duplicates"],
                "forwarded_in": ins, "forwarded_out_a": out_a, "cpu_s": cpu}
    finally:
        for n in nodes:
            n.stop()


def main():
    binary, sb = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    duration = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    logdir = tempfile.mkdtemp(prefix="cluster-bench-")
    print(f"# logs in {logdir}; {rounds} rounds, {duration} s each, pairs 100 x 200 msg/s")
    for qos in (0, 1):
        ratios = []
        for r in range(rounds):
            one = pairs(binary, sb, qos, duration, logdir, cross=False)
            two = pairs(binary, sb, qos, duration, logdir, cross=True)
            ratio = two["cpu_s_per_M"] / one["cpu_s_per_M"]
            ratios.append(ratio)
            print(f"pairs QoS {qos} round {r + 1}: single {json.dumps(one)}", flush=True)
            print(f"pairs QoS {qos} round {r + 1}: cross  {json.dumps(two)}", flush=True)
            print(f"pairs QoS {qos} round {r + 1}: cross/single CPU per delivery = {ratio:.2f}",
                  flush=True)
        ratios.sort()
        print(f"pairs QoS {qos}: median cross/single = {ratios[len(ratios) // 2]:.2f} "
              f"(target <= 2.0)", flush=True)
    f = fanout(binary, sb, 999, 200, logdir)
    print(f"fanout 1 -> 999 over 3 nodes: {json.dumps(f)}", flush=True)
    ok = all(x == f["published"] for x in f["forwarded_in"][1:]) and f["forwarded_out_a"] == 2 * f["published"]
    print(f"fanout: each node received each publish once: {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
