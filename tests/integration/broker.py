"""Start and stop the real `starling` binary on an ephemeral loopback port."""
import os
import re
import signal
import subprocess
import tempfile
import time


class Broker:
    def __init__(self, binary, workers=1, args=(), env_extra=None, log_level="debug",
                 prefix=()):
        """prefix: a command the broker runs under (e.g. prlimit ... --)."""
        self.log = tempfile.NamedTemporaryFile(prefix="starling-", suffix=".log", delete=False)
        cmd = [*prefix, binary, "--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0",
               f"--workers={workers}", *args]
        if log_level:
            cmd.append(f"--log-level={log_level}")
        env = dict(os.environ)
        env.update(env_extra or {})
        # A small quarantine keeps RSS meaningful for the memory-bound tests.
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:quarantine_size_mb=4")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=env)
        self.port = None
        self.metrics_port = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = self.text()
            m = re.search(rb"listening for MQTT on \S*:(\d+)", text)
            ops = re.search(rb"/readyz on \S*:(\d+)", text)
            metrics_off = "--metrics=false" in args
            if m and b"running" in text and (ops or metrics_off):
                self.port = int(m.group(1))
                self.metrics_port = int(ops.group(1)) if ops else None
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("broker did not start:\n" + self.text().decode(errors="replace"))

    def text(self):
        with open(self.log.name, "rb") as f:
            return f.read()

    def rss_bytes(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def stop(self, timeout=10):
        """SIGTERM; returns the exit code (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode

    def sanitizer_report(self):
        t = self.text().decode(errors="replace")
        for marker in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                       "WARNING: ThreadSanitizer", "assertion failed"):
            if marker in t:
                i = t.index(marker)
                return t[max(0, i - 200):i + 3000]
        return None

    def cleanup(self):
        self.stop()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass
