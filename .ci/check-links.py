#!/usr/bin/env python3
"""Fails when a relative link in a tracked Markdown file points to a file that does not exist.

    python3 .ci/check-links.py

Checks `[text](target)` links whose target is a path (not `http:`, `https:`, `mailto:` or a
bare `#anchor`), relative to the file; the `#fragment` is ignored. Code spans and fenced
code blocks are skipped.
"""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def main():
    files = subprocess.run(["git", "ls-files", "*.md"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    broken = []
    for name in files:
        path = ROOT / name
        fenced = False
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            if fenced:
                continue
            for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                    continue
                rel = target.split("#", 1)[0]
                if rel and not (path.parent / rel).exists():
                    broken.append(f"{name}:{n}: {target}")
    for b in broken:
        print(b)
    if broken:
        sys.exit(f"{len(broken)} broken relative link(s) in Markdown files")
    print(f"links: {len(files)} Markdown files, no broken relative link")


if __name__ == "__main__":
    main()
