"""The API's answer: a :class:`Report` of module outcomes, findings and input problems."""

from __future__ import annotations

import json
from dataclasses import field
from typing import Any, Literal

from abiscan.inputs.sources import InputProblem
from abiscan.records import record
from abiscan.report.escape import json_safe
from abiscan.report.findings import Finding, PredictedError, Severity
from abiscan.target.profiles import Target

__all__ = [
    "SCHEMA_VERSION",
    "Assumption",
    "Candidate",
    "ChainStep",
    "InputSummary",
    "ModuleOutcome",
    "OutcomeConfidence",
    "Report",
]

# Bump the major part when a documented key changes meaning or disappears.
# 1.1: modules carry "confidence" and "assumptions".
SCHEMA_VERSION = "1.1"

OutcomeConfidence = Literal["certain", "likely", "possible"]
Outcome = Literal["ok", "error", "unknown"]
# The loader a found file gets (FileFinder's suffix table).
LoaderKind = Literal["extension", "source", "bytecode"]
# What kind of thing ``import x`` found: a file's loader, a directory, or the runtime's own.
ModuleKind = Literal[
    "extension", "source", "bytecode", "package", "namespace", "stdlib", "runtime", "builtin"
]
# How one chain link imports the next (see ChainStep).
LinkKind = Literal["import", "from", "submodule", "name", "star", "dynamic", "parent", "native"]


@record
class Candidate:
    """A file named for a module that the target does not load, and why."""

    path: str
    source: str | None
    source_path: str | None
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "source": self.source,
            "source_path": self.source_path,
            "why": self.why,
        }


@record
class ChainStep:
    """One link of an import chain: while ``module`` is imported, it imports ``imports``."""

    module: str
    imports: str
    # "import", "from", "submodule", "name", "star", "dynamic" (a statement of
    # ``module``'s source), "parent" (a package before its submodule), or
    # "native" (from the extension module's native code)
    how: LinkKind
    path: str | None = None  # the file of ``module``
    line: int | None = None  # the line of the statement in ``path``
    statement: str = ""  # the statement, as written (or what the native code does)
    note: str = ""  # guards it passes through, how sure a native edge is

    def describe(self) -> str:
        where = ""
        if self.path:
            where = f"{self.path}:{self.line}" if self.line else self.path
        text = f"{self.module} -> {self.imports}"
        if self.statement:
            text += f": {self.statement}"
        if where:
            text += f" ({where})"
        if self.note:
            text += f"; {self.note}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "imports": self.imports,
            "how": self.how,
            "path": self.path,
            "line": self.line,
            "statement": self.statement,
            "note": self.note,
        }


@record
class Assumption:
    """An ``if`` abiscan could not decide, and the side its prediction took."""

    path: str
    line: int
    condition: str  # "if __version__ != getattr(core, 'PILLOW_VERSION', None)"
    taken: bool  # the value the prediction took the test to have
    why: str

    def describe(self) -> str:
        side = "true" if self.taken else "false"
        return f"{self.path}:{self.line}: {self.condition}: taken as {side} ({self.why})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "condition": self.condition,
            "taken": self.taken,
            "why": self.why,
        }


@record
class ModuleOutcome:
    """What the target interpreter would do on ``import <name>``."""

    name: str
    outcome: Outcome
    path: str | None  # the file the target would load (None if none, or a namespace package)
    source: str | None  # the input that file came from
    source_path: str | None = None
    kind: ModuleKind | None = None
    error: PredictedError | None = None
    reason: str = ""
    candidates: tuple[Candidate, ...] = field(default=())
    # Earlier copies of the loaded file that a later input overwrote ("input:member").
    replaced: tuple[str, ...] = field(default=())
    # For an error or unknown outcome: the import chain from this module to the
    # module that fails (just this module when it fails by itself), and its links.
    chain: tuple[str, ...] = field(default=())
    steps: tuple[ChainStep, ...] = field(default=())
    # How sure the outcome is: "certain" when nothing undecided was assumed.
    confidence: OutcomeConfidence = "certain"
    assumptions: tuple[Assumption, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "source": self.source,
            "source_path": self.source_path,
            "kind": self.kind,
            "outcome": self.outcome,
            "error": self.error.to_dict() if self.error else None,
            "reason": self.reason,
            "candidates": [c.to_dict() for c in self.candidates],
            "replaced": list(self.replaced),
            "chain": list(self.chain),
            "chain_steps": [s.to_dict() for s in self.steps],
            "confidence": self.confidence,
            "assumptions": [a.to_dict() for a in self.assumptions],
        }


@record
class InputSummary:
    """One input as the report lists it: where it was placed and what it holds."""

    label: str
    kind: str
    placed_at: str
    files: int
    unzipped_bytes: int
    readable: bool

    @classmethod
    def unreadable(cls, label: str, kind: str) -> InputSummary:
        """An input that could not be opened: it keeps its place in the list."""
        return cls(label=label, kind=kind, placed_at="", files=0, unzipped_bytes=0, readable=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.label,
            "kind": self.kind,
            "placed_at": self.placed_at,
            "files": self.files,
            "unzipped_bytes": self.unzipped_bytes,
            "readable": self.readable,
        }


@record
class Report:
    """Everything one scan predicts. Deterministic: same inputs and target, same report."""

    target: Target
    modules: tuple[ModuleOutcome, ...]
    findings: tuple[Finding, ...]
    inputs: tuple[InputSummary, ...] = ()
    problems: tuple[InputProblem, ...] = ()
    tool_version: str = ""

    def module(self, name: str) -> ModuleOutcome | None:
        for m in self.modules:
            if m.name == name:
                return m
        return None

    def findings_for(self, code: str) -> list[Finding]:
        return [f for f in self.findings if f.code == code]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def has_errors(self) -> bool:
        return bool(self.errors) or any(m.outcome == "error" for m in self.modules)

    @property
    def internal_errors(self) -> list[InputProblem]:
        """Unexpected exceptions inside abiscan, caught where they happened."""
        return [p for p in self.problems if p.internal]

    @property
    def unreadable_inputs(self) -> list[InputSummary]:
        return [i for i in self.inputs if not i.readable]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "abiscan", "version": self.tool_version},
            "target": self.target.to_dict(embed=False),
            "inputs": [i.to_dict() for i in self.inputs],
            "summary": {
                "modules": len(self.modules),
                "modules_ok": sum(m.outcome == "ok" for m in self.modules),
                "modules_error": sum(m.outcome == "error" for m in self.modules),
                "modules_unknown": sum(m.outcome == "unknown" for m in self.modules),
                "findings": {
                    s.value: sum(f.severity is s for f in self.findings) for s in Severity
                },
                "input_problems": len(self.problems),
            },
            "modules": [m.to_dict() for m in self.modules],
            "findings": [f.to_dict() for f in self.findings],
            "problems": [p.to_dict() for p in self.problems],
        }

    def to_json(self, indent: int | None = 2) -> str:
        # Valid UTF-8 whatever the inputs' names hold (report.escape says how).
        return json.dumps(json_safe(self.to_dict()), indent=indent, sort_keys=False) + "\n"
