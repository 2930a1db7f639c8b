#!/usr/bin/python3
"""Count passed and failed tests in a meson testlog.json.

A test whose output is TAP (our Criterion executables and integration
scripts) counts one per "ok"/"not ok" line; any other test counts once by its
result. A TAP test that exited badly without reporting a failure, or that
reported nothing at all, counts as one failure more, so a dead binary can
never look green. Prints "PASSED FAILED".
"""
import json
import re
import sys

passed = failed = 0
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
        elif good:
            passed += 1
        elif t["result"] != "SKIP":
            failed += 1
print(passed, failed)
