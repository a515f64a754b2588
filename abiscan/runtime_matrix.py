"""One stack against many targets: where does it import? (``abiscan matrix``)

The inputs are opened once, and each member's bytes are read once and shared
by every target's scan (:class:`_SharedSource`); the simulation runs once per
target, as it must: the target decides which file each import picks.

``declared`` reads what a layer's publisher claims, the JSON of
``aws lambda get-layer-version`` or ``list-layer-versions``
(``CompatibleRuntimes``, ``CompatibleArchitectures``): each declared runtime
and architecture on which the stack fails is an ABI405 finding.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import field
from pathlib import Path
from typing import Any

from abiscan import __version__
from abiscan.api import PathLike, analyse, module_names, open_inputs
from abiscan.errors import ArgumentError
from abiscan.inputs.sources import (
    Entry,
    InputKind,
    InputProblem,
    Source,
)
from abiscan.inputs.stack import build_stack
from abiscan.records import record
from abiscan.report.findings import ABI405, Finding, Severity
from abiscan.report.model import SCHEMA_VERSION, InputSummary, ModuleOutcome, Report
from abiscan.target.profiles import Target, builtin_targets

__all__ = [
    "Cell",
    "Declared",
    "Matrix",
    "declared_targets",
    "matrix",
    "read_declared",
    "render_matrix",
]


@record
class Declared:
    """What a layer version's metadata claims: runtimes and architectures, and from where."""

    source: str
    runtimes: tuple[str, ...]
    architectures: tuple[str, ...]


@record
class Cell:
    """The stack on one target."""

    report: Report
    declared: bool = False

    @property
    def target(self) -> Target:
        return self.report.target

    @property
    def imports(self) -> bool:
        return not self.report.has_errors

    @property
    def first_failure(self) -> ModuleOutcome | None:
        """The top-level module that fails, the one failing through the longest chain first."""
        broken = [m for m in self.report.modules if m.outcome == "error"]
        top = [m for m in broken if "." not in m.name] or broken
        return min(top, key=lambda m: (-len(m.chain), m.name), default=None)

    def to_dict(self) -> dict[str, Any]:
        first = self.first_failure
        r = self.report
        return {
            "runtime": self.target.runtime or self.target.name,
            "arch": self.target.lambda_arch,
            "target": self.target.name,
            "imports": self.imports,
            "modules_error": sum(m.outcome == "error" for m in r.modules),
            "findings": {s.value: sum(f.severity is s for f in r.findings) for s in Severity},
            "first_failure": None
            if first is None
            else {
                "module": first.name,
                "error": first.error.to_dict() if first.error else None,
                "chain": list(first.chain),
            },
            "declared": self.declared,
        }


@record
class Matrix:
    """Every cell, and the findings about the stack as a whole (ABI405)."""

    cells: tuple[Cell, ...]
    inputs: tuple[InputSummary, ...]
    findings: tuple[Finding, ...] = ()
    problems: tuple[InputProblem, ...] = ()
    tool_version: str = field(default=__version__)

    def cell(self, runtime: str, arch: str = "x86_64") -> Cell | None:
        return next(
            (c for c in self.cells if (c.target.runtime, c.target.lambda_arch) == (runtime, arch)),
            None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "abiscan", "version": self.tool_version},
            "inputs": [i.to_dict() for i in self.inputs],
            "cells": [c.to_dict() for c in self.cells],
            "findings": [f.to_dict() for f in self.findings],
            "problems": [p.to_dict() for p in self.problems],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


class _SharedSource(Source):
    """One opened input, read once for every target: member bytes are kept after the
    first read (a stack is at most 250 MB unzipped on Lambda)."""

    def __init__(self, inner: Source) -> None:
        super().__init__(inner.label, inner.kind, inner.limits)
        self.inner = inner
        self.problems = inner.problems
        self._entries: list[Entry] | None = None
        self._bytes: dict[str, bytes] = {}

    def entries(self) -> list[Entry]:
        if self._entries is None:
            self._entries = self.inner.entries()
        return self._entries

    def read(self, entry: Entry, limit: int | None = None) -> bytes:
        data = self._bytes.get(entry.path)
        if data is None or len(data) > self._limit(limit):
            data = self.inner.read(entry, limit)
            self._bytes[entry.path] = data
        return data

    def close(self) -> None:
        self.inner.close()


def _paths(value: PathLike | Sequence[PathLike]) -> list[PathLike]:
    return [value] if isinstance(value, (str, os.PathLike)) else list(value)


def matrix(
    layers: PathLike | Sequence[PathLike] = (),
    function: PathLike | None = None,
    site_packages: PathLike | Sequence[PathLike] = (),
    *,
    targets: Iterable[Target] | None = None,
    declared: Declared | None = None,
    imports: str | Sequence[str] = (),
    progress: Callable[[int, int, Target], None] | None = None,
) -> Matrix:
    """Scan the stack for each target (every built-in runtime and architecture by default).

    The inputs are read once for all targets. With ``declared``, each declared
    runtime and architecture where the stack fails gets an ABI405 finding.
    ``progress(i, n, target)`` is called before the i-th of n targets (from 1).
    """
    names = module_names(imports)
    chosen = list(builtin_targets() if targets is None else targets)
    if not chosen:
        raise ArgumentError("matrix: no targets")
    specs = [(p, InputKind.LAYER) for p in _paths(layers)]
    specs += [(p, InputKind.SITE_PACKAGES) for p in _paths(site_packages)]
    if function is not None:
        specs.append((function, InputKind.FUNCTION))
    opened, every, problems = open_inputs(specs)
    sources = [_SharedSource(s) for s in opened]
    unreadable = [i for i in every if isinstance(i, InputSummary)]
    wanted = declared_targets(declared) if declared else set()
    try:
        cells = []
        for i, target in enumerate(chosen, 1):
            if progress is not None:
                progress(i, len(chosen), target)
            stack = build_stack(target, sources)
            summaries = [_summary(s, stack.root_for(s.kind)) for s in sources] + unreadable
            report = analyse(stack, target, summaries, problems + stack.problems, names)
            key = (target.runtime or "", target.lambda_arch)
            cells.append(Cell(report=report, declared=key in wanted))
    finally:
        for source in sources:
            source.close()
    findings = _declared_failures(cells, declared) if declared else []
    first = cells[0].report
    return Matrix(
        cells=tuple(cells),
        inputs=first.inputs,
        findings=tuple(findings),
        problems=first.problems,
        tool_version=__version__,
    )


def _summary(source: Source, placed_at: str) -> InputSummary:
    files = [e for e in source.entries() if e.kind != "dir"]
    return InputSummary(
        label=source.label,
        kind=source.kind.value,
        placed_at=placed_at,
        files=len(files),
        unzipped_bytes=sum(e.size for e in files),
        readable=True,
    )


def read_declared(path: str | Path) -> Declared:
    """The runtimes and architectures a layer version declares, from the JSON that
    ``aws lambda get-layer-version`` prints, or ``list-layer-versions`` (its newest
    version, the first listed)."""
    label = os.fspath(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ArgumentError(f"{label}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ArgumentError(f"{label}: not JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("LayerVersions"), list):
        if not data["LayerVersions"]:
            raise ArgumentError(f"{label}: LayerVersions is empty")
        data = data["LayerVersions"][0]
    if not isinstance(data, dict) or "CompatibleRuntimes" not in data:
        raise ArgumentError(
            f"{label}: no CompatibleRuntimes (expected the JSON of "
            "'aws lambda get-layer-version' or 'list-layer-versions')"
        )
    runtimes = data.get("CompatibleRuntimes") or []
    # A layer version without CompatibleArchitectures is not restricted to one;
    # Lambda's default architecture is x86_64, so a function that attaches it runs there.
    archs = data.get("CompatibleArchitectures") or ["x86_64"]
    if not all(isinstance(v, str) for v in [*runtimes, *archs]):
        raise ArgumentError(
            f"{label}: CompatibleRuntimes and CompatibleArchitectures are lists of strings"
        )
    return Declared(source=label, runtimes=tuple(runtimes), architectures=tuple(archs))


def declared_targets(declared: Declared) -> set[tuple[str, str]]:
    """(runtime, Lambda architecture) pairs declared; non-Python runtimes are left out."""
    return {
        (r, a) for r in declared.runtimes if r.startswith("python") for a in declared.architectures
    }


def _declared_failures(cells: Sequence[Cell], declared: Declared) -> list[Finding]:
    out = []
    for cell in cells:
        first = cell.first_failure
        if not cell.declared or first is None:
            continue
        t = cell.target
        out.append(
            Finding.of(
                ABI405,
                f"The layer declares {t.runtime} on {t.lambda_arch} compatible, but on it "
                f"'import {first.name}' fails"
                + (f" through {' -> '.join(first.chain)}" if len(first.chain) > 1 else ""),
                f"Rebuild the layer for {t.runtime} on {t.lambda_arch} (abiscan scan --runtime "
                f"{t.runtime} --arch {t.lambda_arch} shows each finding and its fix), or stop "
                f"declaring it: publish the layer version with CompatibleRuntimes and "
                f"CompatibleArchitectures that leave it out",
                source=declared.source,
                module=first.name,
                predicted_error=first.error,
                evidence=(
                    f"{declared.source}: CompatibleRuntimes {list(declared.runtimes)}, "
                    f"CompatibleArchitectures {list(declared.architectures)}",
                    f"target {t.name}: {t.describe()}",
                ),
            )
        )
    return out


def render_matrix(m: Matrix) -> str:
    """The matrix as a table for people: one row per target, ``*`` for a declared one."""
    width = max(len(c.target.name) for c in m.cells) + 2
    out = [
        f"abiscan {m.tool_version} matrix: "
        + "; ".join(i.label + ("" if i.readable else " (UNREADABLE)") for i in m.inputs),
        "",
    ]
    out.append(f"  {'TARGET':<{width}}IMPORTS  FIRST FAILURE")
    for c in m.cells:
        mark = "*" if c.declared else " "
        first = c.first_failure
        why = "" if first is None else f"import {first.name}: {first.error}"
        row = f"{mark} {c.target.name:<{width}}{'yes' if c.imports else 'no':<9}{why}"
        out.append(row.rstrip())
    if any(c.declared for c in m.cells):
        out.append("(* declared compatible by the layer's metadata)")
    if m.findings:
        out.append("")
        for f in m.findings:
            out.append(f"{f.code} {f.message}: {f.predicted_error}")
    good = sum(c.imports for c in m.cells)
    out.append("")
    out.append(
        f"imports on {good} of {len(m.cells)} targets"
        + (f"; declared but failing: {len(m.findings)} (ABI405)" if m.findings else "")
    )
    return "\n".join(out) + "\n"
