"""SARIF 2.1.0 for code-scanning dashboards, in the subset GitHub code scanning accepts.

What GitHub needs beyond the OASIS schema, and how abiscan meets it:

- every result has at least one location with an ``artifactLocation.uri``:
  the input file (the layer zip, the wheel) even when the finding is about the
  whole deployment (ABI401, ABI402), and the member inside a directory input;
- URIs are RFC 3986 URI references: relative paths stay relative (GitHub
  resolves them against the repository root), characters outside the
  unreserved set are percent-encoded, absolute paths become ``file://`` URIs;
- every location has a ``region`` with a ``startLine``: the line of the
  import statement when abiscan knows it (a chain through Python source in a
  directory input), else line 1, which stands for the whole file (a zip, an
  ``.so``);
- rules carry ``helpUri`` (the finding's docs page, under
  :data:`DOCS_BASE_URL`), ``help``, ``fullDescription`` and a default level;
- results carry ``partialFingerprints``, so an alert keeps its identity
  across runs: a hash of what the finding is about (code, input, member,
  target path, module, distribution), never of the wording;
- inputs that could not be read are ``toolExecutionNotifications`` of the
  run's invocation, not results.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any
from urllib.parse import quote

from abiscan.report.escape import json_safe
from abiscan.report.findings import CodeInfo, Finding, Severity, registered_codes
from abiscan.report.model import Report

__all__ = ["DOCS_BASE_URL", "FINGERPRINT_KEY", "SARIF_SCHEMA_URI", "help_uri", "render_sarif"]

# Where the built docs are published; each code's page is findings/<CODE>.html
# under it (docs/findings/<CODE>.md in the source tree).
DOCS_BASE_URL = "https://abiscan.readthedocs.io/en/latest/"
SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
# Versioned, so that a change in what identifies a finding can start new alerts cleanly.
FINGERPRINT_KEY = "abiscanFindingHash/v1"

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
_ARCHIVES = (".zip", ".whl")


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def help_uri(code: str) -> str:
    """The docs page of a finding code."""
    return f"{DOCS_BASE_URL}findings/{code}.html"


def file_uri(path: str) -> str:
    """A path as a URI reference: percent-encoded, relative stays relative; an input
    named by a URL (an audit's ``s3://...``) keeps its scheme."""
    scheme = _SCHEME.match(path)
    if scheme:
        return scheme.group(0) + quote(path[scheme.end() :], safe="/")
    path = path.replace("\\", "/")
    encoded = quote(path, safe="/")
    return f"file://{encoded}" if path.startswith("/") else encoded


def _rule(info: CodeInfo) -> dict[str, Any]:
    level = _LEVEL[info.severity]
    page = help_uri(info.code)
    return {
        "id": info.code,
        "name": info.name,
        "shortDescription": {"text": info.summary},
        "fullDescription": {"text": f"{info.code} {info.name}: {info.summary}"},
        "helpUri": page,
        "help": {
            "text": f"{info.summary} What happens, why, and how to fix it: {page}",
            "markdown": f"{info.summary}\n\nWhat happens, why, and how to fix it: "
            f"[{info.code}]({page})",
        },
        "defaultConfiguration": {"level": level},
        "properties": {"tags": ["abi", "packaging", f"ABI{info.code[3]}xx"]},
    }


def _line(report: Report, f: Finding) -> int | None:
    """The line of the statement in ``f.path`` that starts the failing import, if known.

    Chains are kept per predicted module, and a finding's module (a submodule
    inside a chain) need not be one of them: any chain step in its file will do.
    """
    if f.path is None:
        return None
    own = report.module(f.module) if f.module else None
    modules = ([own] if own else []) + list(report.modules)
    for m in modules:
        for step in m.steps:
            if step.path == f.path and step.line:
                return step.line
    return None


def _inputs_of(report: Report, f: Finding) -> list[str]:
    """The input files a finding is located in (all inputs for a whole-deployment finding)."""
    labels = [i.label for i in report.inputs]
    if f.source in labels:
        return [f.source]
    # ABI108 names every input with files in the directory, comma-separated.
    named = [label for label in labels if f.source and label in f.source.split(", ")]
    if named:
        return named
    if f.source:
        return [f.source]
    return labels[:1] or [f.path or "."]


def _location(report: Report, f: Finding, label: str) -> dict[str, Any]:
    uri, line = file_uri(label), None
    in_directory = not label.lower().endswith(_ARCHIVES)
    if f.source_path and label == f.source and in_directory:
        # A member of a directory input is a file of its own, with lines.
        uri = file_uri(posixpath.join(label.replace("\\", "/"), f.source_path))
        line = _line(report, f)
    logical = [
        {"fullyQualifiedName": name, "kind": kind}
        for name, kind in (
            (f.source_path, "archiveMember"),
            (f.path, "targetPath"),
            (f.module, "module"),
        )
        if name
    ]
    location: dict[str, Any] = {
        "physicalLocation": {
            "artifactLocation": {"uri": uri},
            "region": {"startLine": line or 1},
        },
    }
    if logical:
        location["logicalLocations"] = logical
    return location


def _fingerprint(f: Finding) -> str:
    import hashlib  # start-up: only SARIF output hashes (render.py re-exports this module)

    key = "\0".join(
        x or "" for x in (f.code, f.source, f.source_path, f.path, f.module, f.distribution)
    )
    return hashlib.sha256(key.encode()).hexdigest()


def _result(report: Report, f: Finding, index: dict[str, int]) -> dict[str, Any]:
    text = f.message
    if f.predicted_error:
        text += f" Predicted: {f.predicted_error}."
    text += f" Fix: {f.fix}"
    return {
        "ruleId": f.code,
        "ruleIndex": index[f.code],
        "level": _LEVEL[f.severity],
        "message": {"text": text},
        "locations": [_location(report, f, label) for label in _inputs_of(report, f)],
        "partialFingerprints": {FINGERPRINT_KEY: _fingerprint(f)},
        "properties": {"confidence": f.confidence.value, "evidence": list(f.evidence)},
    }


def _invocation(report: Report) -> dict[str, Any]:
    unreadable = {i.label for i in report.unreadable_inputs}
    notes = []
    for p in report.problems:
        where = file_uri(p.source)
        text = f"{p.source}: {p.path}: {p.problem}" if p.path else f"{p.source}: {p.problem}"
        notes.append(
            {
                "level": "error" if p.source in unreadable and p.path is None else "warning",
                "message": {"text": text},
                "descriptor": {"id": "input-unreadable" if p.path is None else "member-problem"},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": where}}}],
            }
        )
    return {"executionSuccessful": not unreadable, "toolExecutionNotifications": notes}


def render_sarif(report: Report) -> str:
    """The report as one SARIF 2.1.0 log with one run."""
    rules = [_rule(info) for info in registered_codes()]
    index = {r["id"]: i for i, r in enumerate(rules)}
    doc = {
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "abiscan",
                        "version": report.tool_version,
                        "informationUri": DOCS_BASE_URL,
                        "rules": rules,
                    }
                },
                # One analysis per target: uploads for several targets do not close each other.
                "automationDetails": {"id": f"abiscan/{report.target.name}/"},
                "invocations": [_invocation(report)],
                "properties": {"target": report.target.name},
                "results": [_result(report, f, index) for f in report.findings],
            }
        ],
    }
    return json.dumps(json_safe(doc), indent=2) + "\n"
