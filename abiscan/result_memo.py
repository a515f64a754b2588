"""The result memo: a scan's whole report, reused when nothing it depends on changed.

A scan is a pure function of its inputs' bytes, the target and the options
that change the report (:mod:`abiscan.api`). The memo keys a report by all of
them, and a later scan with the same key returns the stored report instead of
predicting again: same inputs, same answer. The key (:func:`memo_key`) is a
SHA-256 over:

- every input, in the order given: the path asked for, its kind, and either
  why it could not be opened, or what the opened input holds: its label, its
  kind once opened (a ``.whl`` layer is a wheel), the problems found while
  listing it, and every entry's fields (name, kind, size, mode, link target,
  name as stored, why it is unsafe, and the CRC-32 of the zip directory); in
  a directory, each file's size, mtime, ctime and inode as well. These are
  the content cache's member keys (:func:`abiscan.inputs.member_facts.member_key`)
  and more: the memo trusts the zip directory exactly as the content cache does;
- the target profile, every field, as data (a captured profile embeds what
  was read from the capture files);
- the options that change the report: the module names asked for, the
  limits and the memory budget (``jobs`` and the cache directory do not);
- abiscan itself: its version and a hash of every file of the package (code
  and data), the running Python (its grammar parses the sources) and the
  versions of the libraries that read the inputs (pyelftools, packaging).

A report is remembered only when the scan read every member it needed and
met no internal error: a failed read (or a bug) may not happen again, and
must then not be answered from the memo. The memo lives in the content
cache, so ``--no-cache`` turns it off with the rest; a missing, read-only or
corrupt entry is a miss, never a failure.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import importlib
import operator
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from abiscan import __version__
from abiscan.inputs.content_cache import ContentCache
from abiscan.inputs.sources import DirectorySource, Entry, InputKind, InputProblem, Source
from abiscan.limits import Limits
from abiscan.report.findings import Finding
from abiscan.report.model import InputSummary, ModuleOutcome, Report
from abiscan.target.profiles import Target

__all__ = ["MEMO_VERSION", "environment", "memo_key", "package_digest", "recall", "remember"]

# Bump when what is stored, or what the key covers, changes.
MEMO_VERSION = 1
# Every field of an entry (dataclasses.astuple, which deep-copies, cost 0.2 s for
# the real layer's 4,372 entries).
_entry_fields = operator.attrgetter(*(f.name for f in dataclasses.fields(Entry)))
# The libraries whose code decides what a scan reads from the inputs' bytes, by the
# names they import as (environment() reads their __version__).
_LIBRARIES = ("elftools", "packaging")


def memo_key(
    specs: Sequence[tuple[str | os.PathLike[str], InputKind]],
    opened: Sequence[Source | InputSummary],
    problems: Sequence[InputProblem],
    target: Target,
    imports: Sequence[str],
    limits: Limits,
    memory_budget: int,
) -> str | None:
    """The memo's key for a scan of the opened inputs (see the module's text); None
    when one of them cannot be identified without reading it."""
    import hashlib  # start-up: only a scan with a cache keys its report

    rows: list[str] = []  # hashed at the end, joined: one update, not one per row

    def add(*row: object) -> None:
        rows.append(repr(row))

    add("abiscan result memo", MEMO_VERSION, environment())
    try:
        add("target", _canonical(target))
        add("options", tuple(imports), _canonical(limits), memory_budget)
    except TypeError:
        return None  # a profile holding something that is not data: not keyed
    if len(specs) != len(opened):
        return None
    for (path, kind), item in zip(specs, opened, strict=True):
        add("input", os.fspath(path), kind.value)
        if isinstance(item, InputSummary):
            add("unreadable", _canonical(item))
            continue
        for row in _source_rows(item):
            if row is None:
                return None
            add(*row)
    for problem in problems:
        if problem.internal:
            return None  # a bug while opening: never answered from the memo
        add("problem", problem.source, problem.path, problem.problem)
    rows.append("")  # each row ends with a newline
    text = "\n".join(rows).encode("utf-8", "surrogateescape")
    return f"result-memo|{MEMO_VERSION}|{hashlib.sha256(text).hexdigest()}"


def recall(cache: ContentCache, key: str, target: Target) -> Report | None:
    """The report stored under ``key`` for ``target``; None when absent or not a report."""
    stored = cache.get(key)
    if not _is_stored_report(stored):
        return None
    modules, findings, inputs, problems, tool_version = stored
    return Report(
        target=target,
        modules=modules,
        findings=findings,
        inputs=inputs,
        problems=problems,
        tool_version=tool_version,
    )


def remember(cache: ContentCache, key: str, report: Report, *, complete: bool) -> None:
    """Store ``report`` under ``key`` when ``complete`` (every member needed was read)
    and no internal error was met."""
    if not complete or report.internal_errors:
        return
    cache.put(
        key, (report.modules, report.findings, report.inputs, report.problems, report.tool_version)
    )


def _is_stored_report(value: object) -> bool:
    if type(value) is not tuple or len(value) != 5:
        return False
    modules, findings, inputs, problems, tool_version = value
    return (
        _all_of(modules, ModuleOutcome)
        and _all_of(findings, Finding)
        and _all_of(inputs, InputSummary)
        and _all_of(problems, InputProblem)
        and tool_version == __version__
    )


def _all_of(value: object, cls: type) -> bool:
    return type(value) is tuple and all(type(v) is cls for v in value)


def _source_rows(source: Source) -> Iterator[tuple[object, ...] | None]:
    """What identifies an opened input's content; a None row when something cannot be."""
    yield ("source", type(source).__name__, source.label, source.kind.value)
    for problem in source.problems:
        yield ("listing", problem.source, problem.path, problem.problem)
    root = source.root if isinstance(source, DirectorySource) else None
    if root is not None:
        yield ("root", os.fspath(root))
    for entry in source.entries():
        yield ("entry", *_entry_fields(entry))
        if root is not None and entry.kind == "file":
            try:
                st = os.stat(root / entry.path, follow_symlinks=False)
            except OSError:
                yield None
                return
            yield ("stat", st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


@functools.cache  # neither abiscan's files nor the running Python change in a process
def environment() -> tuple[str, ...]:
    """abiscan's version and files, the running Python, and the input-reading libraries.

    A library's version is its module's ``__version__``, not its distribution's
    metadata: :mod:`importlib.metadata` (and the ``email`` package it loads) cost a
    cold scan 20 ms before its workers could start, and a memo hit a tenth of its
    time. Both libraries are loaded by then, and set it."""
    versions = []
    for name in _LIBRARIES:
        version = getattr(importlib.import_module(name), "__version__", None)
        versions.append(f"{name}=={version}" if isinstance(version, str) else f"{name} unversioned")
    package = Path(__file__).resolve().parent
    return (__version__, package_digest(package), sys.version, sys.implementation.name, *versions)


def package_digest(package: Path) -> str:
    """A hash of every file under ``package`` (abiscan's: its code and its data)."""
    import hashlib  # start-up: only a scan with a cache keys its report

    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def _canonical(value: Any) -> Any:
    """``value`` as nested tuples of plain values, independent of set order and of
    what any ``to_dict`` chooses to show: every dataclass field, by name."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, enum.Enum):
        return ("enum", type(value).__qualname__, _canonical(value.value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value).__qualname__,
            tuple((f.name, _canonical(getattr(value, f.name))) for f in dataclasses.fields(value)),
        )
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(_canonical(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted((_canonical(v) for v in value), key=repr)))
    if isinstance(value, dict):
        items = ((_canonical(k), _canonical(v)) for k, v in value.items())
        return ("dict", tuple(sorted(items, key=repr)))
    raise TypeError(f"no canonical form for {type(value).__name__}")
