#!/usr/bin/python3
"""Cluster membership with real nodes: several `starling` processes on
loopback, each with its own MQTT, metrics and cluster ports, joining through
a seed. What a user would check: every node sees the others alive in
/metrics and its log; /readyz waits for the join; kill -9 is detected and
named, a restart under the same name is a new epoch, SIGTERM is a leave
(never a death); a 2 s SIGSTOP with the default profile kills nobody; a
node without the cluster's secret, or of another cluster name, never joins;
a bad cluster configuration names its key. Every test is bounded in time and
stops what it started.

Usage: membership_test.py STARLING [--workers N] [--only NAME]
"""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster, free_udp_port  # noqa: E402  (puts ../integration on the path)
import tap  # noqa: E402
from mqttraw import Client  # noqa: E402


def three(c, profile="fast"):
    c.start("n1", profile=profile)
    c.start("n2", seeds=["n1"], profile=profile)
    c.start("n3", seeds=["n1"], profile=profile)
    c.wait("three nodes see each other", lambda: all(c.alive(n) == 2 for n in ("n1", "n2", "n3")),
           10)


def t01_three_nodes_join_through_one_seed(c):
    t0 = time.monotonic()
    three(c)
    took = time.monotonic() - t0
    # Ready follows the join once the peers' routes and retained messages
    # are here (the link's sync): a few milliseconds after they see each other.
    c.wait("all three ready", lambda: all(c.ready(n) for n in ("n1", "n2", "n3")), 5)
    for n in ("n1", "n2", "n3"):
        assert c.ready(n), f"{n} not ready"
        assert c.metric(n, "starling_cluster_ready") == 1
        assert c.metric(n, "starling_cluster_members", '{state="dead"}') == 0
        others = {"n1", "n2", "n3"} - {n}
        for o in others:
            assert re.search(rf"cluster: {o} \(127\.0\.0\.1:\d+\) joined", c.log(n)), (n, o)
    assert "cluster: n2 at 127.0.0.1:" in c.log("n2"), "the start line names node and address"
    tap.comment(f"3 nodes started and joined in {took:.2f} s")


def t02_kill_9_is_detected_and_named(c):
    three(c)
    t0 = time.monotonic()
    c.kill9("n3")
    for n in ("n1", "n2"):
        c.wait(f"{n} sees n3 dead", lambda n=n: c.metric(n, "starling_cluster_members",
                                                          '{state="dead"}') == 1, 6)
    took = time.monotonic() - t0
    for n in ("n1", "n2"):
        assert re.search(r"cluster: n3 \(127\.0\.0\.1:\d+\) is dead", c.log(n)), c.log(n)[-800:]
        assert c.alive(n) == 1
    # The others keep serving clients.
    cl = Client(c.nodes["n1"].port, 5)
    assert cl.connect("after-a-death", True).rc == 0
    cl.close()
    assert took < 5, f"detected after {took:.2f} s (fast profile: about 1.5 s)"
    tap.comment(f"kill -9 detected by both others after {took:.2f} s (fast profile)")


def t03_restart_under_the_same_name_is_a_new_epoch(c):
    three(c)
    c.kill9("n3")
    c.wait("n1 sees n3 dead", lambda: c.metric("n1", "starling_cluster_members",
                                               '{state="dead"}') == 1, 6)
    c.start("n3", seeds=["n1"])
    c.wait("all alive again", lambda: all(c.alive(n) == 2 for n in ("n1", "n2", "n3")), 10)
    for n in ("n1", "n2"):
        c.wait(f"{n} logs the restart",
               lambda n=n: re.search(r"cluster: n3 \(127\.0\.0\.1:\d+\) (restarted \(epoch "
                                     r"\d+, was \d+\)|joined)", c.log(n).split("is dead")[-1]), 5)
        assert c.metric(n, "starling_cluster_members", '{state="dead"}') == 0


def t04_sigterm_is_a_leave_not_a_death(c):
    three(c)
    t0 = time.monotonic()
    b = c.nodes.pop("n3")
    rc = b.stop()
    report = b.sanitizer_report()
    text = b.text().decode(errors="replace")
    b.cleanup()
    assert rc == 0 and not report, (rc, report)
    assert "cluster: n3 left the cluster" in text
    for n in ("n1", "n2"):
        c.wait(f"{n} sees n3 left", lambda n=n: c.metric(n, "starling_cluster_members",
                                                          '{state="left"}') == 1, 3)
    took = time.monotonic() - t0
    time.sleep(2)  # longer than the fast profile's detection: no death follows
    for n in ("n1", "n2"):
        assert re.search(r"cluster: n3 \(127\.0\.0\.1:\d+\) left", c.log(n))
        assert "n3 (127.0.0.1" not in "".join(l for l in c.log(n).splitlines() if "is dead" in l)
    tap.comment(f"a leave (SIGTERM) seen by both others within {took:.2f} s, stop included")


def t05_a_two_second_stall_kills_nobody_with_the_default_profile(c):
    three(c, profile="lan")
    b = c.nodes["n3"]
    b.proc.send_signal(signal.SIGSTOP)
    time.sleep(2)
    b.proc.send_signal(signal.SIGCONT)
    time.sleep(8)  # past the suspicion the stall may have raised
    for n in ("n1", "n2", "n3"):
        assert c.alive(n) == 2, (n, c.log(n)[-600:])
        assert " is dead" not in c.log(n), c.log(n)[-600:]


def t06_a_node_without_the_secret_is_refused(c):
    c.dir = c.dir or __import__("tempfile").mkdtemp(prefix="starling-cluster-")
    good = os.path.join(c.dir, "secret")
    bad = os.path.join(c.dir, "other")
    with open(good, "w") as f:
        f.write("the cluster's secret\n")
    with open(bad, "w") as f:
        f.write("not it\n")
    c.start("n1", extra=[f"--cluster-secret-file={good}"])
    c.start("n2", seeds=["n1"], extra=[f"--cluster-secret-file={good}"])
    c.wait("signed nodes join", lambda: c.alive("n1") == 1 and c.alive("n2") == 1, 10)
    c.start("n3", seeds=["n1"], extra=[f"--cluster-secret-file={bad}"])
    c.start("n4", seeds=["n1"])  # no secret at all
    time.sleep(3)
    for n in ("n1", "n2"):
        assert c.alive(n) == 1, c.log(n)[-600:]
        assert not re.search(r"cluster: n[34] \(", c.log(n)), c.log(n)[-600:]
    assert c.metric("n1", "starling_cluster_membership_packets_dropped_total",
                    '{reason="auth"}') > 0
    assert "refused a membership packet" in c.log("n1")
    for n in ("n3", "n4"):
        assert c.alive(n) == 0, c.log(n)[-600:]
    assert "signed" in c.log("n1") and "unsigned" in c.log("n4")


def t07_another_cluster_name_is_refused(c):
    c.start("n1")
    c.start("n2", seeds=["n1"], extra=["--cluster-name=other"])
    time.sleep(2)
    assert c.alive("n1") == 0 and c.alive("n2") == 0
    assert c.metric("n1", "starling_cluster_membership_packets_dropped_total",
                    '{reason="cluster"}') > 0


def t08_ready_waits_for_the_join(c):
    # A seed nobody answers at: not ready until cluster_join_timeout_ms.
    dead_port = free_udp_port()
    c.ports["nobody"] = dead_port
    t0 = time.monotonic()
    c.start("n1", seeds=["nobody"])
    assert not c.ready("n1"), "ready before anyone answered"
    assert c.metric("n1", "starling_cluster_ready") == 0
    c.wait("ready alone after the join timeout", lambda: c.ready("n1"), 6)
    took = time.monotonic() - t0
    assert 2.5 <= took, f"ready after {took:.2f} s, before the 3 s join timeout"
    assert "alone in the cluster (no seed answered" in c.log("n1")


def t09_bad_cluster_configuration_names_its_key(c):
    import subprocess
    r = subprocess.run([c.binary, "--cluster-listen=0.0.0.0:7946", "--listen=127.0.0.1:0",
                        "--metrics-listen=127.0.0.1:0"], capture_output=True, timeout=10)
    assert r.returncode == 1, r
    assert b"cannot start: cluster_advertise:" in r.stderr, r.stderr[-500:]
    r = subprocess.run([c.binary, "--check-config", "/dev/null",
                        "--cluster-listen=127.0.0.1:7946",
                        "--cluster-secret-file=/nonexistent/secret"],
                       capture_output=True, timeout=10)
    assert r.returncode == 1 and b"cluster_secret_file" in r.stderr, r
    r = subprocess.run([c.binary, "--check-config", "/dev/null", "--cluster-seeds=a b:1"],
                       capture_output=True, timeout=10)
    assert r.returncode == 1 and b"cluster_seeds" in r.stderr, r
    r = subprocess.run([c.binary, "--check-config", "/dev/null", "--node-name=a/b"],
                       capture_output=True, timeout=10)
    assert r.returncode == 1 and b"node_name" in r.stderr, r


TESTS = [
    ("01 three nodes join through one seed", t01_three_nodes_join_through_one_seed),
    ("02 kill -9 is detected and named", t02_kill_9_is_detected_and_named),
    ("03 a restart under the same name is a new epoch", t03_restart_under_the_same_name_is_a_new_epoch),
    ("04 SIGTERM is a leave, not a death", t04_sigterm_is_a_leave_not_a_death),
    ("05 a 2 s stall kills nobody (lan profile)", t05_a_two_second_stall_kills_nobody_with_the_default_profile),
    ("06 a node without the secret is refused", t06_a_node_without_the_secret_is_refused),
    ("07 another cluster name is refused", t07_another_cluster_name_is_refused),
    ("08 /readyz waits for the join", t08_ready_waits_for_the_join),
    ("09 a bad cluster configuration names its key", t09_bad_cluster_configuration_names_its_key),
]


def main():
    args = tap.parse_args()
    tests = [(name, fn) for name, fn in TESTS if args.only in name]
    print("TAP version 13")
    n, failed = tap.run(tests, lambda: Cluster(args.binary, args.workers))
    tap.finish(n, failed)


if __name__ == "__main__":
    main()
