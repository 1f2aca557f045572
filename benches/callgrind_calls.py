#!/usr/bin/env python3
"""Summarises callgrind output for benches/callgrind.sh.

  callgrind_calls.py phases PATTERNS FILE...   instructions (Ir) of each dump part and how
                                               often functions matching PATTERNS were called
  callgrind_calls.py prims FILE                instructions per call of every `prim_*`
                                               function (inclusive Ir / calls)
  callgrind_calls.py callers FILE SUBSTRING    who called the functions whose name contains
                                               SUBSTRING, and how often

PATTERNS is a comma-separated list of `label=substring` (a function is counted under
`label` when its demangled name contains `substring`; a substring ending in `$` must end
the name).
"""
import re
import subprocess
import sys


def resolve(names, spec):
    m = re.match(r"\((\d+)\)\s*(.*)", spec)
    if not m:
        return spec
    key, name = m.group(1), m.group(2)
    if name:
        names[key] = name
    return names.get(key, spec)


def parse(path):
    """(total Ir, {callee name: calls})."""
    names, calls, total, cfn = {}, {}, None, None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
            elif line.startswith("cfn="):
                cfn = resolve(names, line[4:].strip())
            elif line.startswith("fn="):
                resolve(names, line[3:].strip())
            elif line.startswith("calls=") and cfn is not None:
                calls[cfn] = calls.get(cfn, 0) + int(line[6:].split()[0])
    return total, calls


def callers(path, sub):
    """{(caller, callee): calls} for every callee whose name contains `sub`."""
    names, out, fn, cfn = {}, {}, None, None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("fn="):
                fn = resolve(names, line[3:].strip())
            elif line.startswith("cfn="):
                cfn = resolve(names, line[4:].strip())
            elif line.startswith("calls=") and cfn is not None and sub in cfn:
                key = (fn, cfn)
                out[key] = out.get(key, 0) + int(line[6:].split()[0])
    for (caller, callee), n in sorted(out.items(), key=lambda kv: -kv[1]):
        print(f"{n:6} {callee}  <-  {caller}")


def phases(patterns, files):
    labels = [p.split("=", 1) for p in patterns.split(",")]
    for path in files:
        total, calls = parse(path)
        counts = []
        for label, sub in labels:
            if sub.endswith("$"):
                n = sum(v for k, v in calls.items() if k.endswith(sub[:-1]))
            else:
                n = sum(v for k, v in calls.items() if sub in k)
            counts.append(f"{label} {n}")
        print(f"{path} Ir {total} " + " ".join(counts))


def prims(path):
    _, calls = parse(path)
    out = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
        capture_output=True, text=True, check=True,
    ).stdout
    seen = set()
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \(.*?\)\s+\S*?:(\S*::(prim_\w+))", line)
        if not m or m.group(3) in seen:
            continue
        seen.add(m.group(3))
        ir = int(m.group(1).replace(",", ""))
        n = sum(v for k, v in calls.items() if k.endswith(m.group(2)))
        if n:
            print(f"{m.group(3)[5:]} {ir // n} Ir/call ({n} calls)")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "phases":
        phases(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 4 and sys.argv[1] == "callers":
        callers(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "prims":
        prims(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
