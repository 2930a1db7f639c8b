"""The runner the Python integration suites share: their command line, one
TAP line per test with the tail of a failure's traceback, the clean
shutdown check of a broker, and a context base for suites whose tests
start brokers of their own.

A suite lists its tests as (name, fn, *extra) and gives a function making
each test's context from the extra items (none: no arguments); a context
may have close() (run after the test passes: it may still fail
it) and discard() (run after a failure, to kill what the test left).
"""
import argparse
import os
import shutil
import sys
import tempfile
import traceback

from broker import Broker


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--only", default="", help="run the tests whose names hold this")
    return ap.parse_args()


def comment(text):
    for line in text.splitlines():
        print(f"  # {line}")


def run(tests, new_ctx, tail=4):
    """Run fn(new_ctx(*extra)) for each (name, fn, *extra); TAP lines.
    Returns (tests run, tests failed)."""
    failed = 0
    n = 0
    for n, (name, fn, *extra) in enumerate(tests, 1):
        ctx = None
        try:
            ctx = new_ctx(*extra)
            fn(ctx)
            if hasattr(ctx, "close"):
                ctx.close()
            print(f"ok {n} - {name}")
        except Exception:  # noqa: BLE001 - every failure is a test result
            failed += 1
            print(f"not ok {n} - {name}")
            comment("\n".join(traceback.format_exc().strip().splitlines()[-tail:]))
            if hasattr(ctx, "discard"):
                ctx.discard()
        sys.stdout.flush()
    return n, failed


def clean_shutdown(n, broker, label):
    """TAP line n: the broker stops on SIGTERM with exit 0 and no sanitizer
    report. Returns whether it did."""
    rc = broker.stop()
    report = broker.sanitizer_report()
    ok = rc == 0 and not report
    print(f"{'ok' if ok else 'not ok'} {n} - clean shutdown {label}" + ("" if ok else f": exit {rc}"))
    if not ok:
        comment("\n".join((report or broker.text().decode(errors="replace")[-2000:]).splitlines()[:40]))
    broker.cleanup()
    sys.stdout.flush()
    return ok


def finish(n, failed):
    print(f"1..{n}")
    sys.exit(1 if failed else 0)


class BrokerCtx:
    """A test's own brokers and files: each broker must stop cleanly when
    the test passes; after a failure their last output is shown and they
    are killed. The directory goes either way."""

    def __init__(self, binary, workers, prefix):
        self.binary = binary
        self.workers = workers
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.brokers = []

    def start(self, args):
        b = Broker(self.binary, self.workers, list(args))
        self.brokers.append(b)
        return b

    def file(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def close(self):
        try:
            for b in self.brokers:
                rc = b.stop()
                report = b.sanitizer_report()
                b.cleanup()
                assert rc == 0 and not report, f"broker exit {rc}: {report}"
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def discard(self):
        for b in self.brokers:
            comment("broker: " + b.text().decode(errors="replace")[-600:])
            b.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)
