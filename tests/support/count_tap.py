#!/usr/bin/python3
"""Count passed and failed tests in a meson testlog.json.

A test whose output is TAP (our Criterion executables and integration
scripts) counts one per "ok"/"not ok" line; any other test counts once by its
result. A TAP test that exited badly without reporting a failure, or that
reported nothing at all, counts as one failure more, so a dead binary can
never look green. Prints "PASSED FAILED" on stdout, and on stderr what each
failed test said (its "not ok" lines with their diagnostics, the end of its
stderr): tests/run.sh shows only the end of meson's output, and a failure
that happened once must be readable from the CI log alone.
"""
import json
import re
import sys

passed = failed = 0


def report(t, out):
    """What a failed test said, to stderr."""
    lines = out.splitlines()
    said = []
    for i, line in enumerate(lines):
        if line.startswith("not ok"):
            said.append(line)
            for more in lines[i + 1:i + 40]:
                if more.startswith(("ok", "not ok")):
                    break
                said.append(more)
    err = (t.get("stderr") or "").splitlines()[-30:]
    sys.stderr.write(f"--- failed: {t['name']} ({t['result']})\n")
    for line in said[:120] + (["  stderr:"] + err if err else []):
        sys.stderr.write(f"  {line}\n")

with open(sys.argv[1]) as f:
    for line in f:
        t = json.loads(line)
        out = t.get("stdout") or ""
        good = t["result"] in ("OK", "EXPECTEDFAIL")
        if re.search(r"^TAP version|^1\.\.\d+|^(not )?ok\b", out, re.M):
            ok = len(re.findall(r"^ok\b", out, re.M))
            bad = len(re.findall(r"^not ok\b", out, re.M))
            passed += ok
            failed += bad
            if (not good and bad == 0) or ok + bad == 0:
                failed += 1
            if bad or not good:
                report(t, out)
        elif good:
            passed += 1
        elif t["result"] != "SKIP":
            failed += 1
            report(t, out)
print(passed, failed)
