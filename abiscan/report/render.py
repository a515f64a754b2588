"""Turn a :class:`~abiscan.report.model.Report` into text for people, or JSON for tools."""

from __future__ import annotations

import json
from typing import Any

from abiscan.report.escape import escape_text, json_safe
from abiscan.report.findings import Finding, Severity
from abiscan.report.model import SCHEMA_VERSION, ModuleOutcome, Report
from abiscan.report.terminal import Style, render_concise, render_github

__all__ = [
    "explain_dict",
    "render_detailed",
    "render_explain",
    "render_explain_json",
    "render_github",
    "render_json",
    "render_sarif",
    "render_text",
]


def render_sarif(report: Report) -> str:
    """The report as one SARIF 2.1.0 log (:func:`abiscan.report.sarif.render_sarif`)."""
    from abiscan.report.sarif import render_sarif as sarif  # start-up: only when asked

    return sarif(report)


_EVIDENCE_LINES = 6
_HEADINGS = {Severity.ERROR: "ERRORS", Severity.WARNING: "WARNINGS", Severity.INFO: "NOTES"}


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def render_json(report: Report) -> str:
    return report.to_json()


def explain_dict(report: Report, name: str) -> dict[str, Any]:
    """``abiscan explain --format json``: one module's outcome, and the findings on its chain."""
    m = report.module(name)
    chain = set(m.chain) if m else set()
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "abiscan", "version": report.tool_version},
        "target": report.target.to_dict(embed=False),
        "name": name,
        "module": m.to_dict() if m else None,
        "findings": [f.to_dict() for f in report.findings if f.module in chain],
    }


def render_explain_json(report: Report, name: str) -> str:
    return json.dumps(json_safe(explain_dict(report, name)), indent=2) + "\n"


def _finding_lines(f: Finding) -> list[str]:
    lines = [
        f"  {f.code} {f.name} [{f.confidence.value}]" + (f"  module {f.module}" if f.module else "")
    ]
    lines.append(f"    {f.message}")
    if f.path:
        where = f"    at {f.path}"
        if f.source:
            where += f"  (from {f.source}" + (f": {f.source_path})" if f.source_path else ")")
        lines.append(where)
    if f.predicted_error:
        lines.append(f"    predicted: {f.predicted_error}")
    for ev in f.evidence[:_EVIDENCE_LINES]:
        lines.append(f"    evidence: {ev}")
    if len(f.evidence) > _EVIDENCE_LINES:
        lines.append(f"    evidence: ... {len(f.evidence) - _EVIDENCE_LINES} more (--format json)")
    lines.append(f"    fix: {f.fix}")
    return lines


_BREAKING_SHOWN = 20


def _breaking_lines(report: Report) -> list[str]:
    """The answer people come for first: which top-level imports fail, and through what."""
    broken = [m for m in report.modules if "." not in m.name and m.outcome == "error"]
    if not broken:
        return []
    # Packages that fail through their imports first: the chain is the news.
    broken.sort(key=lambda m: (len(m.chain) <= 1, m.name))
    out = [f"TOP-LEVEL IMPORTS THAT FAIL ({len(broken)})"]
    for m in broken[:_BREAKING_SHOWN]:
        out.append(f"  import {m.name}: {m.error}")
        if len(m.chain) > 1:
            out.append(f"    chain: {' -> '.join(m.chain)}")
    if len(broken) > _BREAKING_SHOWN:
        out.append(f"  ... {len(broken) - _BREAKING_SHOWN} more (MODULES below)")
    out.append("")
    return out


def _lines(out: list[str]) -> str:
    # The output boundary: one line per item, whatever the input's names hold.
    return "".join(escape_text(line) + "\n" for line in out)


def _outcome_word(m: ModuleOutcome) -> str:
    """The outcome, with its confidence where it is not certain (an unknown is never sure)."""
    if m.confidence == "certain" or m.outcome == "unknown":
        return m.outcome
    return f"{m.outcome} ({m.confidence})"


def _assumption_lines(m: ModuleOutcome) -> list[str]:
    if not m.assumptions:
        return []
    out = ["", "assumptions (conditions abiscan could not decide, and the side it took):"]
    for a in m.assumptions:
        side = "true" if a.taken else "false"
        out.append(f"  {a.path}:{a.line}")
        out.append(f"      {a.condition}  -> taken as {side}")
        out.append(f"      because {a.why}")
    return out


def render_explain(report: Report, name: str) -> str:
    """``abiscan explain``: one module's outcome and the import chain behind it."""
    t = report.target
    out = [f"abiscan {report.tool_version}: target {t.name}: {t.describe()}"]
    m = report.module(name)
    if m is None:
        out.append(f"import {name}: not predicted")
        return _lines(out)
    out.append(f"import {name}: {_outcome_word(m)}")
    if m.error:
        out.append(f"  {m.error}")
    if m.outcome == "ok":
        where = m.path or m.reason
        out.append(
            f"  loads {where}; every import that runs while it is imported loads too, "
            "or fails inside an except clause that catches it"
        )
        out.extend(_assumption_lines(m))
        return _lines(out)
    if m.steps:
        out.append("")
        out.append("chain (each module imports the next while it is being imported):")
        arriving = f", which does not catch {m.error.type}" if m.error else ""
        for step in m.steps:
            where = f"{step.path}:{step.line}" if step.path and step.line else (step.path or "")
            out.append(f"  {step.module}" + (f"  {where}" if where else ""))
            if step.statement:
                out.append(f"      {step.statement}")
            if step.note:
                note = step.note
                if note.startswith("inside ") and step.how != "native":
                    note += arriving
                out.append(f"      {note}")
        broken = report.module(m.chain[-1])
        last = f"  {m.chain[-1]}"
        if broken is not None and broken.error is not None:
            last += f"  fails: {broken.error}"
        out.append(last)
    out.append("")
    out.append(f"why: {m.reason}")
    out.extend(_assumption_lines(m))
    related = [f for f in report.findings if f.module in m.chain]
    if related:
        out.append("")
        out.append("findings on this chain:")
        for f in related:
            out.append(f"  {f.code} {f.name} [{f.confidence.value}]  module {f.module}")
    return _lines(out)


def _unsure(m: ModuleOutcome) -> str:
    if m.confidence == "certain" or m.outcome == "unknown":
        return ""
    n = len(m.assumptions)
    assumed = f", {_n(n, 'assumption')} (abiscan explain {m.name})" if n else ""
    return f"  [{m.confidence}{assumed}]"


def render_text(report: Report, *, verbose: int = 0, style: Style | None = None) -> str:
    """The text report: the concise one for a terminal (:mod:`abiscan.report.terminal`);
    with ``verbose`` every finding's evidence and fix, and the modules that fail; with
    ``verbose`` 2 or more, the modules that load too."""
    if not verbose:
        return render_concise(report, style or Style())
    return render_detailed(report, list_ok=verbose > 1)


def render_detailed(report: Report, *, list_ok: bool = False) -> str:
    t = report.target
    out = [f"abiscan {report.tool_version}: target {t.name}: {t.describe()}"]
    if report.inputs:
        parts = []
        for i in report.inputs:
            if i.readable:
                parts.append(f"{i.label} ({i.kind} -> {i.placed_at}, {_n(i.files, 'file')})")
            else:
                parts.append(f"{i.label} ({i.kind}, UNREADABLE)")
        out.append("inputs: " + "; ".join(parts))
    out.append("")
    out.extend(_breaking_lines(report))
    counts = {s: sum(f.severity is s for f in report.findings) for s in Severity}
    for severity in Severity:
        group = [f for f in report.findings if f.severity is severity]
        if not group:
            continue
        out.append(f"{_HEADINGS[severity]} ({len(group)})")
        for f in group:
            out.extend(_finding_lines(f))
            out.append("")
    bad = [m for m in report.modules if m.outcome != "ok"]
    ok = [m for m in report.modules if m.outcome == "ok"]
    out.append(
        f"MODULES: {len(ok)} ok, {sum(m.outcome == 'error' for m in bad)} error, "
        f"{sum(m.outcome == 'unknown' for m in bad)} unknown"
    )
    for m in sorted(bad, key=lambda m: (m.outcome != "error", m.name)):
        if m.error:
            out.append(f"  {m.outcome:<8} {m.name}: {m.error}{_unsure(m)}")
        else:
            out.append(f"  {m.outcome:<8} {m.name}: {m.reason}")
    if list_ok:
        for m in ok:
            out.append(f"  ok       {m.name}: {m.path or m.reason}{_unsure(m)}")
    elif ok:
        out.append(f"  ({_n(len(ok), 'module')} load{'s' if len(ok) == 1 else ''}; -vv lists them)")
    if report.problems:
        out.append("")
        out.append(f"INPUT PROBLEMS ({len(report.problems)})")
        out.extend(f"  {p}" for p in report.problems)
    out.append("")
    verdict = (
        "predicted: import errors on this target"
        if report.has_errors
        else "predicted: everything scanned imports on this target"
    )
    out.append(
        f"{verdict} ({counts[Severity.ERROR]} error, {counts[Severity.WARNING]} warning, "
        f"{counts[Severity.INFO]} note findings)"
    )
    return _lines(out)
