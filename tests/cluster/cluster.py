"""What the cluster suites share: a port free for the cluster's UDP and TCP,
and `Cluster`, the nodes of one test (real `starling` processes on
loopback, each with its own MQTT, metrics and cluster ports), started by
name, killed, stopped and restarted by the tests.
"""
import os
import re
import signal
import socket
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "integration"))
import tap  # noqa: E402
from broker import Broker  # noqa: E402


def free_udp_port():
    """A port free for both UDP and TCP on 127.0.0.1 (the cluster's one port)."""
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free port")


class Cluster:
    """The nodes of one test: started with their names and cluster ports,
    stopped (each must exit 0 without a sanitizer report) when it passes."""

    def __init__(self, binary, workers):
        self.binary = binary
        self.workers = workers
        self.nodes = {}  # name -> Broker
        self.ports = {}  # name -> cluster port
        self.dir = None

    def start(self, name, seeds=(), profile="fast", extra=(), port=None, wait=True, env=None):
        port = port or self.ports.get(name) or free_udp_port()
        self.ports[name] = port
        args = [f"--node-name={name}", f"--cluster-listen=127.0.0.1:{port}",
                f"--cluster-profile={profile}", "--cluster-join-timeout-ms=3000", *extra]
        if seeds:
            args.append("--cluster-seeds=" + ",".join(f"127.0.0.1:{self.ports[s]}" for s in seeds))
        b = Broker(self.binary, self.workers, args, env_extra=env, log_level="info")
        self.nodes[name] = b
        return b

    def metrics_text(self, name):
        b = self.nodes[name]
        with urllib.request.urlopen(f"http://127.0.0.1:{b.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def metric(self, name, family, labels=""):
        text = self.metrics_text(name)
        m = re.search(rf"^{re.escape(family + labels)} (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    def alive(self, name):
        return self.metric(name, "starling_cluster_members", '{state="alive"}')

    def ready(self, name):
        b = self.nodes[name]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{b.metrics_port}/readyz",
                                        timeout=5) as r:
                return r.status == 200
        except urllib.error.HTTPError:
            return False

    def log(self, name):
        return self.nodes[name].text().decode(errors="replace")

    def wait(self, what, fn, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if fn():
                return time.monotonic()
            time.sleep(0.02)
        raise AssertionError(f"not within {timeout} s: {what}")

    def kill9(self, name):
        b = self.nodes.pop(name)
        b.proc.kill()
        b.proc.wait()
        b.cleanup()

    def close(self):
        try:
            for name, b in list(self.nodes.items()):
                rc = b.stop()
                report = b.sanitizer_report()
                b.cleanup()
                assert rc == 0 and not report, f"{name}: exit {rc}: {report}"
        finally:
            self.nodes.clear()

    def discard(self):
        for name, b in self.nodes.items():
            tap.comment(f"{name}: " + b.text().decode(errors="replace")[-800:])
            if b.proc.poll() is None:
                b.proc.send_signal(signal.SIGCONT)
            b.cleanup()
        self.nodes.clear()
