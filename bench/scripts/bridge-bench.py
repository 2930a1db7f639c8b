#!/usr/bin/python3
"""Bridges (docs/bridges.md), measured in one session on this machine:

1. Throughput, QoS 1: starling-bench pairs with the publishers on an edge
   broker and the subscribers on a remote Starling (--sub-hosts), the edge
   carrying them over its bridge ("bench/# out 1"), against the same pairs
   straight to the remote (a direct client's). Edges: Starling, and
   Debian's mosquitto with its own bridge. Messages delivered per second,
   lost, duplicates, latency.
2. Outages: a paho publisher streams QoS 1 (then QoS 2) into the edge; the
   remote Starling (persistence on; its subscriber's session persistent) is
   killed with kill -9 for 1 s, then for 30 s, and started again. Reported
   per edge: acknowledged by the edge, received at the remote, lost,
   duplicates, out of order, and the time from the remote's return
   (listening again) to the first message published during the outage
   reaching the remote's subscriber (it can only come through the bridge's
   reconnect).

Loopback only, bounded. usage:
  bridge-bench.py STARLING STARLING-BENCH [DURATION_S] [ROUNDS] > bench/results/DATE-bridges.md
"""
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

CLK = os.sysconf("SC_CLK_TCK")
WORK = tempfile.mkdtemp(prefix="bridge-bench-")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


class Proc:
    def __init__(self, name, args, port, wait_text=None):
        self.name, self.port = name, port
        self.logpath = os.path.join(WORK, f"{name}-{time.monotonic_ns()}.log")
        self.log = open(self.logpath, "wb")
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not listening(port):
            if self.p.poll() is not None:
                raise RuntimeError(f"{name} exited: {open(self.logpath).read()[-800:]}")
            time.sleep(0.01)
        self.ready_at = time.monotonic()
        if wait_text:
            while time.monotonic() < deadline and wait_text not in self.text():
                time.sleep(0.01)

    def text(self):
        return open(self.logpath, "rb").read()

    def cpu_s(self):
        with open(f"/proc/{self.p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK

    def kill(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()


def remote(starling, port, data=None):
    args = [starling, f"--listen=127.0.0.1:{port}", "--metrics=false", "--log-level=info",
            "--queue-messages-max=1000000", "--queue-bytes-max=4294967296"]
    if data:
        args += ["--persistence=true", f"--data-dir={data}"]
    return Proc("remote", args, port)


def starling_edge(starling, remote_port, rule):
    port = free_port()
    return Proc("edge-starling", [starling, f"--listen=127.0.0.1:{port}", "--metrics=false",
                                  "--log-level=info", "--queue-messages-max=1000000",
                                  f"--bridge.cloud.address=127.0.0.1:{remote_port}",
                                  f"--bridge.cloud.topic={rule}",
                                  "--bridge.cloud.queue-messages-max=1000000",
                                  "--bridge.cloud.queue-bytes-max=4294967296"],
                port, wait_text=b"bridge cloud: up to")


def mosquitto_edge(remote_port, rule):
    port = free_port()
    conf = os.path.join(WORK, f"mosq-{port}.conf")
    with open(conf, "w") as f:
        # Its documented knobs for a bridge that keeps what it queued: a
        # persistent remote session, a deep queue; restart_timeout left at
        # its default back-off (5 s base, jittered, to 30 s).
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                "max_queued_messages 1000000\nmax_inflight_messages 0\nlog_dest stderr\n"
                "log_type all\n"
                f"connection cloud\naddress 127.0.0.1:{remote_port}\n"
                f"topic {rule}\ncleansession false\nbridge_protocol_version mqttv311\n"
                "try_private true\n")
    return Proc("edge-mosquitto", ["/usr/sbin/mosquitto", "-c", conf], port,
                wait_text=b"Connecting bridge")


def bench(sb, procs, args):
    before = sum(p.cpu_s() for p in procs)
    out = subprocess.run([sb, *args, "--quiet", "--json"], capture_output=True, text=True,
                         timeout=600)
    after = sum(p.cpu_s() for p in procs)
    if not out.stdout.strip():
        raise RuntimeError(f"bench failed: {out.stderr[-500:]}")
    return json.loads(out.stdout), after - before


def throughput(starling, sb, duration, kind):
    rport = free_port()
    r = remote(starling, rport)
    procs = [r]
    try:
        if kind == "direct":
            hosts = f"127.0.0.1:{rport}"
        else:
            e = (starling_edge(starling, rport, "bench/# out 1") if kind == "starling"
                 else mosquitto_edge(rport, "bench/# out 1"))
            procs.append(e)
            time.sleep(0.5)
            hosts = f"127.0.0.1:{e.port}"
        rep, cpu = bench(sb, procs, ["pairs", "-h", hosts, "--sub-hosts", f"127.0.0.1:{rport}",
                                     "-c", "20", "-q", "1", "-s", "64", "-d", str(duration),
                                     "--inflight", "64", "--e2e-window", "64", "--drain", "10"])
        d = rep["delivery"]
        return {"rate": d["delivered"] / duration, "delivered": d["delivered"],
                "lost": d["lost"], "dup": d["duplicates"], "p50": rep["latency_us"]["p50"],
                "p99": rep["latency_us"]["p99"], "cpu": cpu}
    finally:
        for p in procs:
            p.stop()


class Keeper:
    """The remote's subscriber: a persistent session, reconnected after
    each remote restart, recording arrivals with their time."""

    def __init__(self, port, qos):
        self.port, self.qos = port, qos
        self.got = []
        self.lock = threading.Lock()
        self.c = None

    def connect(self):
        c = mqtt.Client(client_id="keeper", protocol=mqtt.MQTTv5)
        c.on_message = self._on
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        c.connect("127.0.0.1", self.port, clean_start=False, properties=props)
        c.loop_start()
        c.subscribe("s/#", self.qos)
        self.c = c

    def _on(self, c, u, m):
        with self.lock:
            self.got.append((time.monotonic(), m.payload.decode()))

    def close(self):
        if self.c:
            self.c.disconnect()
            self.c.loop_stop()
            self.c = None


def outage(starling, edge_kind, qos, outage_s):
    rport = free_port()
    data = os.path.join(WORK, f"remote-{rport}")
    r = remote(starling, rport, data)
    keeper = Keeper(rport, qos)
    keeper.connect()
    time.sleep(0.3)
    e = (starling_edge(starling, rport, f"s/# out {qos}") if edge_kind == "starling"
         else mosquitto_edge(rport, f"s/# out {qos}"))
    time.sleep(1.0)
    pub = mqtt.Client(client_id=f"pub-{edge_kind}", protocol=mqtt.MQTTv311)
    pub.connect("127.0.0.1", e.port)
    pub.loop_start()
    acked, stop = [], threading.Event()

    def publish():
        i = 0
        while not stop.is_set():
            info = pub.publish("s/t", str(i), qos=qos)
            info.wait_for_publish(10)
            if not info.is_published():
                break
            acked.append(str(i))
            i += 1
            time.sleep(0.002)  # ~400 msg/s: a sensor gateway's stream, not a flood

    t = threading.Thread(target=publish)
    t.start()
    time.sleep(2.0)
    keeper.close()
    r.kill()
    at_kill = len(acked)  # what is published from here can only come through a reconnect
    time.sleep(outage_s)
    r = remote(starling, rport, data)
    back = r.ready_at
    keeper.connect()
    time.sleep(3.0)
    stop.set()
    t.join(20)
    last = acked[-1] if acked else None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with keeper.lock:
            if last is None or any(p == last for _, p in keeper.got):
                break
        time.sleep(0.1)
    time.sleep(1.0)
    with keeper.lock:
        got = list(keeper.got)
    pub.loop_stop()
    keeper.close()
    e.stop()
    r.stop()
    shutil.rmtree(data, ignore_errors=True)
    payloads = [p for _, p in got]
    after = [ts for ts, p in got if ts >= back and int(p) >= at_kill]
    nums = [int(p) for p in payloads]
    return {"acked": len(acked), "received": len(payloads),
            "lost": len(set(acked) - set(payloads)),
            "dup": len(payloads) - len(set(payloads)),
            "ooo": sum(1 for a, b in zip(nums, nums[1:]) if b < a),
            "first_after_s": (min(after) - back) if after else float("nan")}


def main():
    starling, sb = sys.argv[1], sys.argv[2]
    duration = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    ver = subprocess.run(["/usr/sbin/mosquitto", "-h"], capture_output=True, text=True).stdout
    ver = ver.splitlines()[0] if ver else "mosquitto"
    print(f"# Bridges — {time.strftime('%Y-%m-%d', time.gmtime())}\n")
    print(f"- machine: {os.cpu_count()} CPUs, {os.uname().release}")
    print(f"- {ver}; the remote is a Starling in every run")
    print(f"- command: `bench/scripts/bridge-bench.py STARLING STARLING-BENCH {duration} {rounds}`\n")
    print("## Throughput, QoS 1, pairs 20 x 64 B, window 64\n")
    print("Publishers on the edge, subscribers on the remote; `direct`: both on the remote.\n")
    print("| path | round | delivered/s | lost | dup | p50 µs | p99 µs | brokers' CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    means = {}
    for rnd in range(rounds):
        for kind in ("direct", "starling", "mosquitto"):
            r = throughput(starling, sb, duration, kind)
            means.setdefault(kind, []).append(r["rate"])
            print(f"| {kind if kind == 'direct' else kind + ' bridge'} | {rnd + 1} | "
                  f"{r['rate']:,.0f} | {r['lost']} | {r['dup']} | {r['p50']} | {r['p99']} | "
                  f"{r['cpu']:.1f} |", flush=True)
    m = {k: statistics.median(v) for k, v in means.items()}
    print(f"\nMedians: direct {m['direct']:,.0f}/s; Starling's bridge {m['starling']:,.0f}/s "
          f"({m['starling'] / m['direct']:.0%} of direct); mosquitto's bridge "
          f"{m['mosquitto']:,.0f}/s ({m['mosquitto'] / m['direct']:.0%}).\n")
    print("## Outages: the remote killed (kill -9) during a paho stream, then back\n")
    print("| edge | QoS | outage | acknowledged | received | lost | duplicates | out of order "
          "| first delivery after the remote's return |")
    print("|---|---|---|---|---|---|---|---|---|")
    for outage_s in (1, 30):
        for qos in (1, 2):
            for kind in ("starling", "mosquitto"):
                r = outage(starling, kind, qos, outage_s)
                print(f"| {kind} | {qos} | {outage_s} s | {r['acked']} | {r['received']} | "
                      f"{r['lost']} | {r['dup']} | {r['ooo']} | {r['first_after_s']:.2f} s |",
                      flush=True)
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
