"""Budgets: how much work and memory one scan may spend on what it reads.

Every input is untrusted. Each budget below bounds one thing a crafted input
could make large; going over one is an input problem naming the file, and the
scan goes on with the rest. ``docs/limits.md`` lists them with their reasons.

This module imports nothing from abiscan: every stage may read it.
"""

from __future__ import annotations

import dataclasses

from abiscan.errors import LimitsError as LimitsError  # re-exported (its first home)
from abiscan.records import record

__all__ = ["DEFAULT_LIMITS", "Limits", "LimitsError", "parse_limits"]

_MB = 1024 * 1024


@record
class Limits:
    """The budgets of one scan. Sizes are bytes; zero or less is never valid."""

    # One member (or file) of an input, as declared and as inflated. A Lambda
    # deployment is at most 250 MB unzipped, so no single real member is larger.
    member_bytes: int = 256 * _MB
    # Members of one zip, entries (files, dirs, links) of one directory input.
    members: int = 200_000
    # Names in one directory of an input (the import system lists them).
    dir_entries: int = 50_000
    # One Python source parsed for its imports, and the dotted parts of one
    # imported name (CPython's parser is quadratic in them: 20,000 parts cost
    # 4 s and 1.6 GB), checked on the bytes before parsing.
    source_bytes: int = 2 * _MB
    source_depth: int = 100
    # dist-info text files (METADATA, WHEEL, RECORD, top_level.txt).
    metadata_bytes: int = 4 * _MB
    # A --target profile file and its JSON nesting depth.
    target_bytes: int = 32 * _MB
    target_depth: int = 32

    def replace(self, **changes: int) -> Limits:
        return dataclasses.replace(self, **changes)


DEFAULT_LIMITS = Limits()


def parse_limits(spec: str, base: Limits = DEFAULT_LIMITS) -> Limits:
    """``"source_bytes=4M,members=1000"`` over ``base``; sizes take K, M or G suffixes."""
    names = {f.name for f in dataclasses.fields(Limits)}
    changes: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in names:
            raise LimitsError(
                f"not a budget: {item!r} (expected NAME=VALUE, NAME one of "
                f"{', '.join(sorted(names))})"
            )
        changes[key] = _number(key, value.strip())
    return base.replace(**changes)


def _number(key: str, text: str) -> int:
    scale = {"K": 1024, "M": _MB, "G": 1024 * _MB}.get(text[-1:].upper(), 1)
    digits = text[:-1] if scale != 1 else text
    if not digits.isdigit() or len(digits) > 15 or int(digits) * scale <= 0:
        raise LimitsError(f"budget {key}: not a positive whole number: {text!r}")
    return int(digits) * scale
