#!/usr/bin/python3
"""Count passed and failed tests in a meson testlog.json.

A TAP test (our Criterion executables and integration scripts) counts one per
"ok"/"not ok" line of its output; any other test counts once by its result.
A TAP executable that crashed or timed out before reporting counts as one
failure more, so a dead binary can never look green. Prints "PASSED FAILED".
"""
import json
import re
import sys

passed = failed = 0
with open(sys.argv[1]) as f:
    for line in f:
        t = json.loads(line)
        if t.get("protocol") == "tap":
            out = t.get("stdout") or ""
            ok = len(re.findall(r"^ok\b", out, re.M))
            bad = len(re.findall(r"^not ok\b", out, re.M))
            passed += ok
            failed += bad
            if t["result"] not in ("OK", "EXPECTEDFAIL") and bad == 0:
                failed += 1
            elif ok + bad == 0:
                failed += 1  # a suite that ran nothing is a defect
        elif t["result"] in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif t["result"] != "SKIP":
            failed += 1
print(passed, failed)
