#!/usr/bin/env python3
"""test-summary.py: one closing line for every meson test log given.

Counts every test case: TAP tests (the cmocka binaries) by their `ok` /
`not ok` lines, with a crash before the plan was finished counted as failed
cases; other tests as one case each. Prints `N passed, N failed, N skipped`
and exits 1 when anything failed. Before it, the last lines of every failed
test's output, so that a CI log cut to its tail still says why.
"""
import json
import re
import sys

TAP_LINE = re.compile(r"^(not ok|ok)\b(.*)$")
TAP_PLAN = re.compile(r"^1\.\.(\d+)")


TAIL_LINES = 40


def tail(test):
    """The last TAIL_LINES lines of a test's output (stdout, then stderr)."""
    text = (test.get("stdout") or "") + (test.get("stderr") or "")
    return text.splitlines()[-TAIL_LINES:]


def count(log_path):
    passed = failed = skipped = 0
    failures = []
    tails = []  # (name, lines) of every failed test
    with open(log_path) as log:
        for line in log:
            test = json.loads(line)
            name, result = test["name"], test["result"]
            stdout = test.get("stdout") or ""
            plan, ok, not_ok, skip = None, 0, 0, 0
            for out in stdout.splitlines():
                m = TAP_PLAN.match(out)
                if m and plan is None:
                    plan = int(m.group(1))
                    continue
                m = TAP_LINE.match(out)
                if not m:
                    continue
                if "# SKIP" in m.group(2).upper():
                    skip += 1
                elif m.group(1) == "ok":
                    ok += 1
                else:
                    not_ok += 1
                    failures.append(f"{name}: {out}")
            if plan is None and ok + not_ok + skip == 0:
                # Not a TAP test: one case, judged by its result.
                if result in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                elif result == "SKIP":
                    skipped += 1
                else:
                    failed += 1
                    failures.append(f"{name}: {result}")
                    tails.append((name, tail(test)))
                continue
            missing = (plan or 0) - (ok + not_ok + skip)
            if result not in ("OK", "SKIP") and not_ok == 0 and missing <= 0:
                missing = 1  # crashed or timed out after its last line
            if missing > 0 and result not in ("OK", "SKIP"):
                failures.append(f"{name}: {result} with {missing} case(s) unreported")
                not_ok += missing
            passed += ok
            failed += not_ok
            skipped += skip
            if not_ok:
                tails.append((name, tail(test)))
    return passed, failed, skipped, failures, tails


def main():
    extra_skipped = 0
    logs = []
    checks = []  # (name, passed): checks the script ran itself
    for arg in sys.argv[1:]:
        if arg.startswith("--skipped="):
            extra_skipped += int(arg.split("=", 1)[1])
        elif arg.startswith("--passed="):
            checks.append((arg.split("=", 1)[1], True))
        elif arg.startswith("--failed="):
            checks.append((arg.split("=", 1)[1], False))
        else:
            logs.append(arg)
    total = [0, 0, extra_skipped]
    all_failures = []
    all_tails = []
    for name, ok in checks:
        total[0 if ok else 1] += 1
        if not ok:
            all_failures.append(name)
    for path in logs:
        p, f, s, failures, tails = count(path)
        total[0] += p
        total[1] += f
        total[2] += s
        all_failures += failures
        all_tails += tails
    for name, lines in all_tails:
        print(f"--- the last {len(lines)} lines of {name} ---")
        for line in lines:
            print("   ", line)
    for failure in all_failures:
        print("FAILED", failure)
    print(f"{total[0]} passed, {total[1]} failed, {total[2]} skipped")
    return 1 if total[1] or not total[0] else 0


if __name__ == "__main__":
    sys.exit(main())
