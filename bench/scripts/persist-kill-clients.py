#!/usr/bin/python3
"""kill -9 rounds with clients nobody here wrote: Debian's python3-paho-mqtt
publishing QoS 1 and QoS 2 into persistent sessions (5.0 and 3.1.1; one
subscriber offline each round, drawn), while starling-bench streams QoS 1
into persistent sessions of its own as load; kill -9 at a random moment, a
new start, every paho client reconnects (session present 1) and resends
what its session holds, as paho does. At the end of each round every
message paho's on_publish reported acknowledged reached every subscriber:
QoS 1 at least once (duplicates counted), QoS 2 exactly once.

A soak outside CI (CI's rounds use raw clients: persist_messages_test.py
m04, m13); results in bench/results/. Loopback only, bounded in rounds.

usage: persist-kill-clients.py STARLING STARLING_BENCH [ROUNDS] [SYNC ...]
"""
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

EXPIRY = 3600


class Node:
    def __init__(self, binary, data, sync):
        self.log = tempfile.NamedTemporaryFile(prefix="pkc-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [binary, "--listen=127.0.0.1:0", "--metrics=false", "--workers=2",
             "--persistence=true", f"--data-dir={data}", f"--persistence-sync={sync}",
             "--queue-messages-max=100000", "--log-level=info"],
            stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            text = open(self.log.name, "rb").read()
            m = re.search(rb"listening for MQTT on \S*:(\d+)", text)
            if m and b"running" in text:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(open(self.log.name).read())

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        os.unlink(self.log.name)


class Paho:
    """One paho client with a persistent session, kept across the rounds
    (paho holds its in-flight messages and resends them on reconnect)."""

    def __init__(self, cid, v):
        self.cid, self.v = cid, v
        self.lock = threading.Lock()
        self.got = {}  # publisher -> [seq, ...] in arrival order
        self.acked = set()  # mids paho reported complete
        self.mid_seq = {}
        self.connected = threading.Event()
        self.present = None
        proto = mqtt.MQTTv5 if v == 5 else mqtt.MQTTv311
        kw = {} if v == 5 else {"clean_session": False}
        self.c = mqtt.Client(client_id=cid, protocol=proto, reconnect_on_failure=False, **kw)
        self.c.max_inflight_messages_set(20)
        self.c.max_queued_messages_set(0)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_publish = self._on_publish

    def _on_connect(self, c, u, flags, rc, props=None):
        self.present = int(flags["session present"])
        self.connected.set()

    def _on_message(self, c, u, msg):
        pub, seq = msg.payload.decode().split(":")
        with self.lock:
            self.got.setdefault(pub, []).append(int(seq))

    def _on_publish(self, c, u, mid):
        with self.lock:
            self.acked.add(mid)

    def connect(self, port, first=False):
        self.connected.clear()
        if self.v == 5:
            p = Properties(PacketTypes.CONNECT)
            p.SessionExpiryInterval = EXPIRY
            self.c.connect("127.0.0.1", port, keepalive=30, clean_start=first, properties=p)
        else:
            self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        assert self.connected.wait(10), f"{self.cid}: no CONNACK"
        return self.present

    def drop(self):
        """The broker died: stop the network thread (paho keeps its state)."""
        self.c.loop_stop()
        try:
            self.c.socket() and self.c.socket().close()
        except OSError:
            pass

    def bye(self):
        self.c.disconnect()
        self.c.loop_stop()


def main():
    binary, bench = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    syncs = sys.argv[4:] or ["write", "fsync"]
    seed = int(os.environ.get("SEED") or random.SystemRandom().randrange(1 << 31))
    import paho.mqtt
    print(f"seed {seed} (SEED={seed} repeats the draws); {rounds} rounds per sync mode; "
          f"paho-mqtt {paho.mqtt.__version__}; 2 workers")
    failures = 0
    for sync in syncs:
        rng = random.Random(f"{seed}-{sync}")
        data = tempfile.mkdtemp(prefix="pkc-data-")
        node = Node(binary, data, sync)
        subs = {n: Paho(f"pkc-{n}", v) for n, v in (("s5", 5), ("s4", 4), ("t5", 5))}
        for s in subs.values():
            s.connect(node.port, first=True)
            s.c.subscribe("pkc/#", qos=2)
        time.sleep(0.3)
        pubs = {n: (Paho(f"pkc-{n}", v), q) for n, v, q in
                (("p5q2", 5, 2), ("p4q2", 4, 2), ("p5q1", 5, 1), ("p4q1", 4, 1))}
        for p, _ in pubs.values():
            p.connect(node.port, first=True)
        seqs = {n: 0 for n in pubs}
        dups = {n: 0 for n in subs}
        t0 = time.monotonic()
        for rnd in range(rounds):
            off = rng.choice(sorted(subs))
            subs[off].bye()
            load = subprocess.Popen(
                [bench, "pairs", "-p", str(node.port), "-c", "20", "-q", "1", "--persistent",
                 "--session-expiry", "3600", "--topic-prefix", "load", "--id-prefix",
                 f"load{rnd % 2}", "-d", "5", "--quiet"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            stop_at = time.monotonic() + rng.uniform(0.1, 0.8)
            while time.monotonic() < stop_at:
                for n, (p, q) in pubs.items():
                    seqs[n] += 1
                    info = p.c.publish(f"pkc/{n}", f"{n}:{seqs[n]}", qos=q)
                    p.mid_seq[info.mid] = seqs[n]
                time.sleep(0.002)
            node.kill()
            load.kill()
            load.wait()
            for x in [*subs.values(), *(p for p, _ in pubs.values())]:
                if x.cid != f"pkc-{off}":
                    x.drop()
            node = Node(binary, data, sync)
            everyone = [*subs.values(), *(p for p, _ in pubs.values())]
            rng.shuffle(everyone)
            for x in everyone:
                sp = x.connect(node.port)
                assert sp == 1, f"round {rnd}: {x.cid} present 0 after kill -9"
            # paho resends its in-flight messages on reconnect; wait until
            # every one is acknowledged and reached every subscriber
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                done = all(len(p.acked) == len(p.mid_seq) for p, _ in pubs.values())
                if done and all(
                        {p.mid_seq[m] for m in p.acked} <= set(s.got.get(n, ()))
                        for n, (p, _) in pubs.items() for s in subs.values()):
                    break
                time.sleep(0.05)
            time.sleep(0.3)
            bad = []
            for n, (p, q) in pubs.items():
                acked = {p.mid_seq[m] for m in p.acked}
                for sn, s in subs.items():
                    with s.lock:
                        got = list(s.got.get(n, ()))
                    lost = acked - set(got)
                    twice = len(got) - len(set(got))
                    if lost:
                        bad.append(f"{sn} from {n}: lost {len(lost)} {sorted(lost)[:5]}")
                    if twice and q == 2:
                        bad.append(f"{sn} from {n}: QoS 2 delivered twice {twice}")
            if bad:
                failures += 1
                print(f"sync={sync} round {rnd}: " + "; ".join(bad), flush=True)
        total = {n: len(p.acked) for n, (p, _) in pubs.items()}
        for sn, s in subs.items():
            with s.lock:
                dups[sn] = sum(len(g) - len(set(g)) for n, g in s.got.items()
                               if pubs[n][1] == 1)
        print(f"sync={sync}: {rounds} kill -9 rounds in {time.monotonic() - t0:.1f} s; "
              f"acknowledged to paho {total}; QoS 1 duplicates per subscriber {dups}; rounds with a loss or a QoS 2 "
              f"duplicate: {failures}", flush=True)
        for x in [*subs.values(), *(p for p, _ in pubs.values())]:
            x.bye()
        node.kill()
        shutil.rmtree(data, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
