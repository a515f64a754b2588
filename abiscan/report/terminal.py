"""The default text report, for people at a terminal: short, one line per thing.

The failing top-level imports come first, each with its chain on one line;
then one line per finding (code, module, predicted exception); then a line of
counts. Evidence and fixes are in ``-v`` (:func:`abiscan.report.render.render_text`
with ``verbose=True``) and in ``abiscan explain``, as ruff and pip-audit keep
their default output short. Colour is a :class:`Style`, decided by the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, TextIO

from abiscan.records import record
from abiscan.report.escape import escape_text as _safe
from abiscan.report.findings import Finding, Severity

if TYPE_CHECKING:  # the command line styles its output before any scan
    from abiscan.report.model import ModuleOutcome, Report

__all__ = ["Style", "render_concise", "render_github", "use_colour"]

_SHOWN = 20  # top-level imports listed before "... N more"
_SGR = {"bold": "1", "dim": "2", "red": "31", "yellow": "33", "cyan": "36", "green": "32"}
_SEVERITY_COLOUR = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


@record
class Style:
    """ANSI colour, or none: ``Style(colour=False)`` returns text unchanged."""

    colour: bool = False

    def __call__(self, text: str, *names: str) -> str:
        if not self.colour or not names:
            return text
        codes = ";".join(_SGR[n] for n in names)
        return f"\033[{codes}m{text}\033[0m"


def use_colour(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Colour when ``stream`` is a terminal, unless NO_COLOR is set; FORCE_COLOR forces it.

    (no-color.org: a non-empty NO_COLOR disables colour; FORCE_COLOR, as Node,
    pytest and rich read it, enables it even when not a terminal.)
    """
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and env.get("TERM") != "dumb"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _failing(report: Report) -> list[ModuleOutcome]:
    """Top-level imports that fail, and any failing module no finding is about
    (a submodule asked for with --import that nothing provides)."""
    named = {f.module for f in report.findings if f.module}
    broken = [
        m
        for m in report.modules
        if m.outcome == "error"
        and ("." not in m.name or not named.intersection(m.chain or (m.name,)))
    ]
    # Packages that fail through their imports first: the chain is the news.
    return sorted(broken, key=lambda m: (len(m.chain) <= 1, m.name))


def _finding_line(f: Finding, style: Style) -> str:
    what = _safe(f.module or f.path or f.source or "")
    outcome = _safe(str(f.predicted_error) if f.predicted_error else f.message)
    code = style(f.code, "bold", _SEVERITY_COLOUR[f.severity])
    return f"{code} {what}: {outcome}" if what else f"{code} {outcome}"


def render_concise(report: Report, style: Style | None = None) -> str:
    style = style or Style()
    t = report.target
    # Everything an input named is escaped before styling: names may hold control
    # characters, the styles' own escape sequences must pass.
    out = [style(_safe(f"abiscan {report.tool_version}: target {t.name}: {t.describe()}"), "dim")]
    if report.inputs:
        out.append(
            style(
                _safe(
                    "inputs: "
                    + "; ".join(
                        f"{i.label} ({i.kind} -> {i.placed_at}, {_n(i.files, 'file')})"
                        if i.readable
                        else f"{i.label} ({i.kind}, UNREADABLE)"
                        for i in report.inputs
                    )
                ),
                "dim",
            )
        )
    broken = _failing(report)
    if broken:
        out.append("")
        for m in broken[:_SHOWN]:
            out.append(
                f"{style(_safe('import ' + m.name), 'bold')}: {style(_safe(str(m.error)), 'red')}"
            )
            if len(m.chain) > 1:
                out.append(style(_safe(f"  {' -> '.join(m.chain)}"), "dim"))
        if len(broken) > _SHOWN:
            out.append(f"... {len(broken) - _SHOWN} more failing imports (-v lists every module)")
    unknown = [m for m in report.modules if m.outcome == "unknown"]
    if unknown:
        # Not predicted either way: the user must know, and why.
        out.append("")
        out.extend(
            style(_safe(f"unknown {m.name}: {m.reason}"), "yellow") for m in unknown[:_SHOWN]
        )
        if len(unknown) > _SHOWN:
            out.append(f"... {len(unknown) - _SHOWN} more unknown modules (-v lists them)")
    if report.findings:
        out.append("")
        out.extend(_finding_line(f, style) for f in report.findings)
    if report.problems:
        out.append("")
        out.extend(style(_safe(f"input problem: {p}"), "yellow") for p in report.problems[:_SHOWN])
        if len(report.problems) > _SHOWN:
            out.append(f"... {len(report.problems) - _SHOWN} more input problems (-v lists them)")
    out.append("")
    out.append(_counts(report, len(broken), style))
    if report.findings:
        out.append("-v for evidence and fixes; abiscan explain MODULE ... for one import chain")
    return "\n".join(out) + "\n"


def _counts(report: Report, broken: int, style: Style) -> str:
    by = {s: sum(f.severity is s for f in report.findings) for s in Severity}
    ok = sum(m.ok for m in report.modules)
    loads = "loads" if ok == 1 else "load"
    text = (
        f"{_n(broken, 'failing import')}; {_n(by[Severity.ERROR], 'error')}, "
        f"{_n(by[Severity.WARNING], 'warning')}, {_n(by[Severity.INFO], 'note')}; "
        f"{ok} of {_n(len(report.modules), 'module')} {loads}"
    )
    if report.problems:
        text += f"; {_n(len(report.problems), 'input problem')}"
    if report.has_errors:
        verdict = style("predicted: import errors on this target", "bold", "red")
    else:
        verdict = style("predicted: everything scanned imports on this target", "bold", "green")
    return f"{verdict} ({text})"


_GITHUB_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _escape_data(text: str) -> str:
    return (
        _safe(text, keep_newlines=True)
        .replace("%", "%25")
        .replace("\r", "%0D")
        .replace("\n", "%0A")
    )


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(report: Report) -> str:
    """GitHub Actions workflow commands: one annotation per finding, on its input file."""
    out = []
    labels = {i.label for i in report.inputs}
    for f in report.findings:
        props = []
        # ABI108 can name several inputs: then the annotation is not on one file.
        if f.source in labels:
            props.append(f"file={_escape_property(f.source)}")
        props.append(f"title={_escape_property(f'{f.code} {f.name}')}")
        text = f.message + (f" Predicted: {f.predicted_error}." if f.predicted_error else "")
        text += f" Fix: {f.fix}"
        out.append(f"::{_GITHUB_LEVEL[f.severity]} {','.join(props)}::{_escape_data(text)}")
    for p in report.problems:
        out.append(
            f"::warning file={_escape_property(p.source)},title=abiscan input problem::"
            f"{_escape_data(str(p))}"
        )
    return "\n".join(out) + ("\n" if out else "")
