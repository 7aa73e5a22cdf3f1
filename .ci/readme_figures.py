#!/usr/bin/env python3
"""Every figure in the root README's tables that cite a crate README must appear in that README.

A row cites its source with a Markdown link to a crate README (e.g. `[lb](lb/README.md#...)` or
the absolute repository link to it). Every number in the row's cells other than the first (what
is measured) and the citing cell must occur in the cited file, as a whole number token. One
source per figure: change a figure in the crate README and this check fails until the root
README follows. Exits 1 and lists each missing figure.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\((?:https://github\.com/tierkit/tierkit/(?:blob|tree)/main/)?([a-z-]+/README\.md)(?:#[^)]*)?\)")
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w])")


def numbers(text):
    return {m.group(0) for m in NUMBER.finditer(text)}


def main():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    checked, missing = 0, []
    for lineno, line in enumerate(readme.splitlines(), 1):
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        cite = [(i, LINK.search(c)) for i, c in enumerate(cells)]
        cite = [(i, m) for i, m in cite if m]
        if not cite:
            continue
        idx, match = cite[-1]
        source = ROOT / match.group(1)
        if not source.is_file():
            missing.append(f"README.md:{lineno}: cites {match.group(1)}, which does not exist")
            continue
        source_numbers = numbers(source.read_text(encoding="utf-8"))
        for cell in cells[1:idx]:
            for figure in sorted(numbers(cell)):
                checked += 1
                if figure not in source_numbers:
                    missing.append(f"README.md:{lineno}: {figure} is not in {match.group(1)}")
    if checked == 0:
        missing.append("README.md: no table row cites a crate README; nothing was checked")
    for m in missing:
        print(m)
    print(f"readme figures: {checked} checked, {len(missing)} missing")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
