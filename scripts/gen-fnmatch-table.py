"""Writes tests/fixtures/fnmatch_table.json: Python's fnmatch verdict for
every (pattern, tag) pair below. Salt's reactor matches tags with
fnmatch.fnmatch, so saltbridge's tag globs are checked against this table.

Run: python3 scripts/gen-fnmatch-table.py
"""
import fnmatch
import json
import os

PATTERNS = [
    "*", "salt/*", "salt/job/*", "salt/job/*/ret/*", "salt/job/*/new", "salt/job/?/new",
    "salt/job/*/ret/web-0?", "salt/job/*/ret/web-0[12]", "salt/job/*/ret/web-0[!12]",
    "salt/minion/*/start", "minion_start", "minion/refresh/*", "salt/auth", "*/start",
    "salt/job/2026*", "*ret*", "salt/job/*/sub/*/error/*", "[sm]*", "[!s]*", "salt/*/*/new",
    "*.fail_without_changes", "test.*", "salt/job/[0-9]*/new", "my/tag", "my/ta?", "salt/run/*/ret",
    "a\\b", "salt/job/*/ret/*-*", "**", "salt/**/new", "salt/job/*/ret/[a-c]*",
]
TAGS = [
    "salt/job/20261126135646965819/new", "salt/job/20261126135646965819/publish",
    "salt/job/20261126135646965819/ret/web-01", "salt/job/20261126135646965819/ret/web-03",
    "salt/job/1/new", "salt/job/12/new", "salt/minion/web-01/start", "minion_start",
    "minion/refresh/web-01", "salt/auth", "salt/job/20261126135807141393/sub/web-01/error/state.sls",
    "test.fail_without_changes", "20261126141257294921", "new_job", "my/tag", "my/tab",
    "salt/run/20261126135900000000/ret", "salt/run/20261126135900000000/new", "a\\b", "ab",
    "saltbridge/bus/gap", "resource/refresh/web-01", "salt/job/x/ret/alpha", "salt/job/x/ret/delta",
    "", "salt/", "salt",
]

rows = [[p, t, fnmatch.fnmatch(t, p)] for p in PATTERNS for t in TAGS]
out = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "fnmatch_table.json")
with open(out, "w") as f:
    json.dump(rows, f, indent=0)
    f.write("\n")
print(f"{len(rows)} rows -> {out}")
