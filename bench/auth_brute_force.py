#!/usr/bin/python3
"""A legitimate login during a password brute force from many loopback
addresses: how long it waits for its CONNACK. Bounded: one CONNECT per
attacking address, 127.0.1.1-127.0.1.N, one measured login; stops by itself.

usage: auth_brute_force.py STARLING_BINARY [--addresses N] [--iterations I]
       [--spray] [--rounds R] [--workers W]
--spray: each address guesses another user name (password spraying) instead
of all guessing alice. --rounds R: R-1 rounds of one guess per address are
answered first, then the measured round.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from broker import Broker  # noqa: E402
from mqttraw import CONNACK, connect  # noqa: E402
from security_test import raw_client, raw_connect  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--addresses", type=int, default=200)
    ap.add_argument("--iterations", type=int, default=100000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--spray", action="store_true")
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="starling-bf-")
    path = os.path.join(d, "passwords")
    for i, (u, p) in enumerate((("alice", "secret1"), ("bob", "bobs secret"))):
        subprocess.run([a.binary, "passwd", *(["-c"] if i == 0 else []), "-b", "-I",
                        str(a.iterations), path, u, p], check=True)
    b = Broker(a.binary, a.workers, [f"--password-file={path}"], log_level="info")
    try:
        def attack(r):
            attackers = []
            for i in range(a.addresses):
                c = raw_client(b, 5, f"127.0.1.{i % 250 + 1}" if i < 250 else f"127.0.3.{i - 249}")
                user = f"user{i}" if a.spray else "alice"
                c.send(connect(5, f"bf{r}.{i}", True, 60, user=user, password=f"guess{r}.{i}"))
                attackers.append(c)
            return attackers

        for r in range(a.rounds - 1):
            for c in attack(r):
                try:
                    c.expect(CONNACK, timeout=60)
                except (ConnectionError, OSError, TimeoutError):
                    pass
                c.close()
        t0 = time.monotonic()
        attackers = attack(a.rounds)
        time.sleep(0.2)
        t = time.monotonic()
        try:
            c, ack = raw_connect(b, 5, user="bob", password="bobs secret", source="127.0.2.1",
                                 timeout=15)
            rc = f"CONNACK {ack.rc:#x}"
            c.close()
        except (ConnectionError, OSError, TimeoutError) as e:
            rc = f"no CONNACK ({e})"
        legit = time.monotonic() - t
        answers = {}
        for c in attackers:
            try:
                r = f"{c.expect(CONNACK, timeout=30).rc:#x}"
            except (ConnectionError, OSError, TimeoutError):
                r = "closed"
            answers[r] = answers.get(r, 0) + 1
            c.close()
        print(f"{a.addresses} addresses ({'spray' if a.spray else 'alice'}, round {a.rounds}), "
              f"{a.iterations} iterations, {a.workers} worker(s): legitimate login {rc} "
              f"after {legit * 1000:.0f} ms; attack answers {answers} after "
              f"{time.monotonic() - t0:.1f} s")
    finally:
        b.stop()
        b.cleanup()


if __name__ == "__main__":
    main()
