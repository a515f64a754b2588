"""Findings: what abiscan predicts will go wrong, with stable codes.

The code registry is the single list of codes; the docs have one page per code
and a test checks that each registered code has its page.
"""

from __future__ import annotations

from dataclasses import field
from enum import Enum
from typing import Any

from abiscan.records import record

__all__ = [
    "ABI101",
    "ABI102",
    "ABI103",
    "ABI104",
    "ABI105",
    "ABI106",
    "ABI107",
    "ABI108",
    "ABI109",
    "ABI201",
    "ABI202",
    "ABI203",
    "ABI204",
    "ABI205",
    "ABI206",
    "ABI301",
    "ABI302",
    "ABI303",
    "ABI304",
    "ABI305",
    "ABI306",
    "ABI307",
    "ABI401",
    "ABI402",
    "ABI403",
    "ABI404",
    "ABI405",
    "ABI501",
    "ABI502",
    "CodeInfo",
    "Confidence",
    "Finding",
    "PredictedError",
    "Severity",
    "code_info",
    "registered_codes",
]


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "info": 2}[self.value]


class Confidence(str, Enum):
    CERTAIN = "certain"
    LIKELY = "likely"
    POSSIBLE = "possible"

    @property
    def rank(self) -> int:
        return {"certain": 0, "likely": 1, "possible": 2}[self.value]


@record
class PredictedError:
    """The exception the target interpreter would raise: type name and exact message."""

    type: str
    message: str

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message}


@record
class CodeInfo:
    """A finding code as registered: its name, severity and one-line summary."""

    code: str
    name: str
    severity: Severity
    summary: str


_REGISTRY: dict[str, CodeInfo] = {}


def _register(code: str, name: str, severity: Severity, summary: str) -> CodeInfo:
    info = CodeInfo(code=code, name=name, severity=severity, summary=summary)
    _REGISTRY[code] = info
    return info


ABI101 = _register(
    "ABI101",
    "extension-for-other-python",
    Severity.ERROR,
    "Extension module tagged for another CPython version or ABI: the target never tries it.",
)
ABI102 = _register(
    "ABI102",
    "extension-for-other-platform",
    Severity.ERROR,
    "Extension module tagged for another OS, architecture or libc: the target never tries it.",
)
ABI104 = _register(
    "ABI104",
    "free-threading-mismatch",
    Severity.ERROR,
    "Extension built for a free-threaded CPython on a GIL build, or the reverse.",
)
ABI105 = _register(
    "ABI105",
    "missing-module-init",
    Severity.ERROR,
    "Extension module does not export PyInit_<name>.",
)
ABI107 = _register(
    "ABI107",
    "shadowed-module",
    Severity.WARNING,
    "A module is also provided by an earlier sys.path entry, whose copy loads instead.",
)
ABI108 = _register(
    "ABI108",
    "outside-sys-path",
    Severity.ERROR,
    "Layer or function content sits where the target's sys.path never looks.",
)
ABI109 = _register(
    "ABI109",
    "bytecode-for-other-python",
    Severity.ERROR,
    "A sourceless .pyc module written by another CPython version: bad magic number.",
)
ABI201 = _register(
    "ABI201",
    "not-elf",
    Severity.ERROR,
    "A file the target loads as an extension module is not an ELF file.",
)
ABI202 = _register(
    "ABI202",
    "wrong-elf-identity",
    Severity.ERROR,
    "ELF file for another machine, class or byte order than the target.",
)

# Distributions (ABI3xx).
ABI301 = _register(
    "ABI301",
    "unsupported-wheel-tag",
    Severity.ERROR,
    "No WHEEL tag of an installed distribution is supported by the target.",
)
ABI302 = _register(
    "ABI302",
    "requires-python-excludes-target",
    Severity.ERROR,
    "A distribution's Requires-Python excludes the target's Python version.",
)
ABI303 = _register(
    "ABI303",
    "missing-dependency",
    Severity.ERROR,
    "A required dependency is in neither the stack nor the runtime.",
)
ABI304 = _register(
    "ABI304",
    "dependency-version-conflict",
    Severity.WARNING,
    "A dependency is present at a version its dependent excludes.",
)
ABI305 = _register(
    "ABI305",
    "duplicate-distribution",
    Severity.WARNING,
    "The same project is installed more than once; one copy loads, the rest is dead weight.",
)
ABI306 = _register(
    "ABI306",
    "mixed-distribution-tree",
    Severity.ERROR,
    "Files of a distribution were overwritten by another input: a tree of mixed versions.",
)
ABI307 = _register(
    "ABI307",
    "invalid-wheel",
    Severity.ERROR,
    "A wheel input fails verification: a file differs from its RECORD digest or size, a "
    "file is missing or unlisted, or the wheel's metadata is malformed.",
)

# Layers and deployment (ABI4xx).
ABI401 = _register(
    "ABI401",
    "too-many-layers",
    Severity.ERROR,
    "More than five layers: Lambda rejects the function configuration.",
)
ABI402 = _register(
    "ABI402",
    "deployment-too-large",
    Severity.ERROR,
    "Function and layers together are over 250 MB unzipped: Lambda rejects the deployment.",
)
ABI403 = _register(
    "ABI403",
    "unreadable-entry",
    Severity.ERROR,
    "Archive entries the runtime's user cannot read (files need o+r, directories o+x).",
)
ABI405 = _register(
    "ABI405",
    "declared-runtime-fails",
    Severity.ERROR,
    "The layer's published metadata declares a runtime or architecture on which it fails.",
)
ABI404 = _register(
    "ABI404",
    "unsafe-entry",
    Severity.WARNING,
    "Unsafe archive entries: absolute paths, '..' components, links leaving the tree.",
)


# The dynamic linker after the identity checks: dependencies, symbol
# versions, undefined symbols (abiscan.simulate.linker.dlopen; rules in rules/linker.py and
# rules/symbols.py).
ABI103 = _register(
    "ABI103",
    "abi3-needs-newer-python",
    Severity.ERROR,
    "An abi3 extension uses stable-ABI functions the target's CPython does not have yet.",
)
ABI106 = _register(
    "ABI106",
    "extension-built-for-other-python",
    Severity.ERROR,
    "An extension (often an untagged .so) was built for another CPython version.",
)
ABI203 = _register(
    "ABI203",
    "needed-library-not-found",
    Severity.ERROR,
    "A library the extension needs (DT_NEEDED) is found nowhere on the target.",
)
ABI204 = _register(
    "ABI204",
    "symbol-version-not-found",
    Severity.ERROR,
    "A symbol version the extension needs (GLIBC_2.28, GLIBCXX_3.4.29, ...) is not defined "
    "by the target's library.",
)
ABI205 = _register(
    "ABI205",
    "musl-on-glibc",
    Severity.ERROR,
    "An extension linked against musl libc (a musllinux wheel) on a glibc target.",
)
ABI206 = _register(
    "ABI206",
    "undefined-symbol",
    Severity.ERROR,
    "A symbol the extension (or a library it loads) needs is defined nowhere in the process.",
)

# Impact (ABI5xx): following the import graph from each top-level package to
# the broken modules it reaches (simulate.python.import_graph and .propagation; rules in
# rules/impact.py).
ABI501 = _register(
    "ABI501",
    "broken-import-chain",
    Severity.ERROR,
    "A top-level package fails to import because of a broken module it reaches.",
)
ABI502 = _register(
    "ABI502",
    "guard-does-not-catch",
    Severity.ERROR,
    "A guarded import (except ImportError) still fails: what arrives is not an ImportError "
    "(pyo3's PanicException is a BaseException).",
)


def code_info(code: str) -> CodeInfo:
    return _REGISTRY[code]


def registered_codes() -> list[CodeInfo]:
    return sorted(_REGISTRY.values(), key=lambda info: info.code)


@record
class Finding:
    """One predicted problem, where it is, why, and how to fix it."""

    code: str
    name: str
    severity: Severity
    confidence: Confidence
    message: str
    fix: str
    path: str | None = None
    source: str | None = None
    source_path: str | None = None
    module: str | None = None
    distribution: str | None = None
    predicted_error: PredictedError | None = None
    evidence: tuple[str, ...] = field(default=())

    @classmethod
    def of(
        cls,
        info: CodeInfo,
        message: str,
        fix: str,
        *,
        severity: Severity | None = None,
        confidence: Confidence = Confidence.CERTAIN,
        **where: Any,
    ) -> Finding:
        return cls(
            code=info.code,
            name=info.name,
            severity=severity or info.severity,
            confidence=confidence,
            message=message,
            fix=fix,
            **where,
        )

    def sort_key(self) -> tuple[int, int, str, str, str]:
        return (
            self.severity.rank,
            self.confidence.rank,
            self.code,
            self.path or "",
            self.module or "",
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "confidence": self.confidence.value,
            "message": self.message,
            "path": self.path,
            "source": self.source,
            "source_path": self.source_path,
            "module": self.module,
            "distribution": self.distribution,
            "predicted_error": self.predicted_error.to_dict() if self.predicted_error else None,
            "evidence": list(self.evidence),
            "fix": self.fix,
        }
