"""Shared by the data generators: write a generated file, or check that it is current."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def write_or_check(out: Path, make: Callable[[], str], description: str,
                   argv: Sequence[str] | None = None) -> int:
    """``--check`` exits 1 when ``out`` differs from what ``make()`` returns; else write it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file would change")
    args = parser.parse_args(argv)
    text = make()
    if args.check:
        current = out.read_text("utf-8") if out.exists() else ""
        if current != text:
            print(f"{out} is out of date; run {Path(sys.argv[0]).name}", file=sys.stderr)
            return 1
        return 0
    out.write_text(text, "utf-8")
    print(f"wrote {out}")
    return 0


def pyenv_root() -> Path:
    """Where the local CPython builds the generators ask live."""
    env = os.environ.get("PYENV_ROOT")
    return Path(env) if env else Path.home() / ".pyenv"


def minor_ranges(minors: list[int]) -> str:
    """``[8, 9, 10, 12]`` as ``8-10,12``."""
    parts: list[str] = []
    start = prev = minors[0]
    for m in [*minors[1:], -1]:
        if m == prev + 1:
            prev = m
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = m
    return ",".join(parts)
