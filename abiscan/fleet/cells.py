"""The work of an audit, as tasks a worker runs on its own: digest a stack, scan one cell.

Tasks carry paths and URLs, never artifact bytes: a worker opens the inputs
itself. Both task functions are module-level so that a process pool or a Dask
worker can run them by name. A record is a plain dict of JSON values, the same
whichever worker made it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from abiscan import __version__
from abiscan.api import scan
from abiscan.fleet.artifacts import ArtifactError, digest_of, local_path
from abiscan.fleet.manifest import StackSpec
from abiscan.records import record
from abiscan.report.findings import Severity
from abiscan.report.model import Report
from abiscan.report.render import render_sarif
from abiscan.target.profiles import builtin_target

__all__ = [
    "EXIT_OF",
    "RECORD_SCHEMA",
    "RECORD_SCHEMA_VERSION",
    "CellTask",
    "Declared",
    "Prepared",
    "Status",
    "internal_error_record",
    "prepare_stack",
    "scan_cell",
]

RECORD_SCHEMA = "audit-record.schema.json"
RECORD_SCHEMA_VERSION = 1

Status = Literal["ok", "error", "input-error", "internal-error"]
EXIT_OF: dict[Status, int] = {"ok": 0, "error": 1, "input-error": 2, "internal-error": 3}


@record
class Declared:
    """What a layer's published metadata says it runs on (``aws lambda get-layer-version``)."""

    runtimes: tuple[str, ...]
    architectures: tuple[str, ...]  # empty: the metadata names none

    def covers(self, target: str) -> bool:
        runtime, _, arch = target.rpartition("-")
        return runtime in self.runtimes and (not self.architectures or arch in self.architectures)


@record
class Prepared:
    """A stack's digest: SHA-256 over each input's role, manifest location and bytes."""

    stack: str
    digest: str | None  # None: the digest task itself failed
    inputs: tuple[tuple[str, str], ...]  # (where, sha256:...) for the inputs that were read
    problems: tuple[str, ...]
    declared: Declared | None


@record
class CellTask:
    stack: StackSpec
    prepared: Prepared
    target: str
    cache_dir: str
    sarif: bool


def prepare_stack(stack: StackSpec, cache_dir: str) -> Prepared:
    """Read every input of ``stack`` once (fetching URLs into the cache) and digest it."""
    parts: list[list[str]] = []
    found: list[tuple[str, str]] = []
    problems: list[str] = []
    declared: Declared | None = None
    for item in stack.inputs:
        try:
            digest = digest_of(item.where, Path(cache_dir))
        except ArtifactError as exc:
            problems.append(str(exc).replace(item.where, item.location))
            # A missing input still changes the digest, and again when it appears.
            parts.append([item.role, item.location, "unreadable"])
            continue
        parts.append([item.role, item.location, digest])
        found.append((item.where, digest))
        if item.role == "declared":
            try:
                declared = _read_declared(local_path(item.where, digest, Path(cache_dir)))
            except (ArtifactError, OSError, ValueError) as exc:
                problems.append(f"{item.location}: not layer metadata: {exc}")
    text = json.dumps(parts, separators=(",", ":"), ensure_ascii=False)
    return Prepared(
        stack=stack.name,
        digest="sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest(),
        inputs=tuple(found),
        problems=tuple(problems),
        declared=declared,
    )


def _read_declared(path: str) -> Declared:
    """``get-layer-version`` output, or ``list-layer-versions`` (its first, newest, version)."""
    with open(path, "rb") as f:
        data = json.loads(f.read().decode("utf-8"))
    if isinstance(data, dict) and isinstance(data.get("LayerVersions"), list):
        versions = data["LayerVersions"]
        data = versions[0] if versions else {}
    if not isinstance(data, dict) or not isinstance(data.get("CompatibleRuntimes"), list):
        raise ValueError("no CompatibleRuntimes")
    archs = data.get("CompatibleArchitectures") or []
    return Declared(
        runtimes=tuple(str(r) for r in data["CompatibleRuntimes"]),
        architectures=tuple(str(a) for a in archs),
    )


def _base_record(task: CellTask) -> dict[str, Any]:
    declared = task.prepared.declared
    return {
        "schema_version": RECORD_SCHEMA_VERSION,
        "stack": task.stack.name,
        "target": task.target,
        "stack_digest": task.prepared.digest,
        "abiscan_version": __version__,
        "declared": declared.covers(task.target) if declared else None,
    }


def _finish(record: dict[str, Any], status: Status) -> dict[str, Any]:
    record["status"] = status
    record["exit_status"] = EXIT_OF[status]
    return record


def internal_error_record(task: CellTask, error: str) -> dict[str, Any]:
    """The record of a cell whose task failed twice (or whose worker died twice)."""
    record = _base_record(task)
    record.update(_empty_outcome())
    record["problems"] = [f"internal error: {error}"]
    return _finish(record, "internal-error")


def _empty_outcome() -> dict[str, Any]:
    return {
        "first_failure": None,
        "modules": {"total": 0, "ok": 0, "error": 0, "unknown": 0},
        "findings": {s.value: 0 for s in Severity},
        "codes": [],
        "failing_modules": [],
    }


def scan_cell(task: CellTask) -> dict[str, Any]:
    """Scan one stack for one target; the cell's record (and its SARIF run, on request)."""
    record = _base_record(task)
    if task.prepared.problems:
        record.update(_empty_outcome())
        record["problems"] = list(task.prepared.problems)
        return _finish(record, "input-error")
    digests = dict(task.prepared.inputs)
    labels: dict[str, str] = {}
    paths: dict[str, list[str]] = {"layer": [], "function": []}
    try:
        for item in task.stack.inputs:
            if item.role == "declared":
                continue
            local = local_path(item.where, digests[item.where], Path(task.cache_dir))
            labels[os.fspath(local)] = item.location
            paths[item.role].append(local)
    except ArtifactError as exc:
        record.update(_empty_outcome())
        record["problems"] = [str(exc)]
        return _finish(record, "input-error")
    runtime, _, arch = task.target.rpartition("-")
    report = scan(
        paths["layer"],
        paths["function"][0] if paths["function"] else None,
        target=builtin_target(runtime, arch),
        labels=labels,
    )
    record.update(_outcome(report))
    if task.sarif:
        # The run without its tool: the rule table is the same in every record of a
        # version, and AuditResult.sarif puts it back once per file.
        run = json.loads(render_sarif(report))["runs"][0]
        run.pop("tool", None)
        record["sarif"] = run
    if report.unreadable_inputs:
        return _finish(record, "input-error")
    return _finish(record, "error" if report.has_errors else "ok")


def _outcome(report: Report) -> dict[str, Any]:
    failing = [m for m in report.modules if m.outcome == "error"]
    errors = report.errors
    first: dict[str, Any] | None = None
    if failing:
        m = failing[0]
        code = next((f.code for f in errors if f.module == m.name), None)
        first = {"module": m.name, "error": str(m.error) if m.error else None, "code": code}
    elif errors:
        f = errors[0]
        first = {
            "module": f.module,
            "code": f.code,
            "error": str(f.predicted_error) if f.predicted_error else f.message,
        }
    return {
        "first_failure": first,
        "modules": {
            "total": len(report.modules),
            "ok": sum(m.outcome == "ok" for m in report.modules),
            "error": len(failing),
            "unknown": sum(m.outcome == "unknown" for m in report.modules),
        },
        "findings": {s.value: sum(f.severity is s for f in report.findings) for s in Severity},
        "codes": sorted({f.code for f in report.findings}),
        "failing_modules": [
            {"module": m.name, "error": str(m.error) if m.error else None} for m in failing
        ],
        "problems": [str(p) for p in report.problems],
    }
