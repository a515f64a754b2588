"""ABI103, ABI106, ABI206: undefined symbols when the target binds an extension with RTLD_NOW.

Which code a missing symbol gets depends on what it is and what the module
claims to be built for:

* a C-API symbol missing from an abi3 (limited API) module: the module needs
  a newer stable ABI than the target's CPython (ABI103);
* a C-API symbol missing from a version-specific or untagged module: it was
  built for another CPython (ABI106);
* any other symbol: nothing in the process defines it (ABI206).

:func:`other_python_loaded` adds the case where every symbol resolves but
what the untagged module carries says it was built for another CPython: its
own refusal (cffi's version check, Cython's code objects for 3.11+) as an
error, otherwise a warning that loading it is undefined behaviour.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import Any

from abiscan.inputs.stack import Provenance
from abiscan.report.findings import (
    ABI103,
    ABI106,
    ABI206,
    Confidence,
    Finding,
    PredictedError,
    Severity,
)
from abiscan.rules import located
from abiscan.simulate.imports.extension_tags import ExtensionTag
from abiscan.simulate.linker.dlopen import LinkProblem
from abiscan.target.capi import exporting_versions, is_capi_name
from abiscan.target.profiles import Target

__all__ = ["other_python_loaded", "undefined_symbol"]


def _versions(versions: Sequence[tuple[int, int]]) -> str:
    if not versions:
        return "no CPython version abiscan has data for"
    spans: list[list[int]] = []
    for _, minor in versions:
        if spans and spans[-1][1] == minor - 1:
            spans[-1][1] = minor
        else:
            spans.append([minor, minor])
    return ", ".join(f"3.{a}" if a == b else f"3.{a}-3.{b}" for a, b in spans)


def undefined_symbol(
    module: str,
    path: str,
    problem: LinkProblem,
    tag: ExtensionTag | None,
    origin: Provenance | None,
    target: Target,
) -> tuple[Finding, PredictedError]:
    """A symbol the dynamic linker finds nowhere: ABI103, ABI106 or ABI206."""
    assert problem.message is not None and problem.symbol is not None
    error = PredictedError(type="ImportError", message=problem.message)
    symbol = problem.symbol.name
    name = posixpath.basename(path)
    owner = posixpath.basename(problem.object)
    where: dict[str, Any] = {
        "path": path,
        **located(origin),
        "module": module,
        "predicted_error": error,
        "confidence": Confidence(problem.confidence),
    }
    evidence = [f"readelf --dyn-syms -W {owner} | grep ' {symbol}'", problem.detail]
    capi = is_capi_name(symbol) and problem.object == path
    if capi:
        have = exporting_versions(symbol)
        evidence.append(f"CPython versions exporting {symbol}: {_versions(have)}")
        newer = [v for v in have if v > target.python_version]
        older = [v for v in have if v < target.python_version]
        abi3 = tag is not None and tag.kind == "abi3"
        if abi3 and newer:
            first = newer[0]
            message = (
                f"{name} is an abi3 module built for the stable ABI of CPython "
                f"{first[0]}.{first[1]} or newer: it uses {symbol}, which CPython "
                f"{target.python} does not export"
            )
            fix = (
                f"Install a build of the distribution whose wheel tag is "
                f"cp3{target.python_version[1]}-abi3 or older (pip install --python-version "
                f"{target.python} --only-binary=:all: ...), or move to the "
                f"python{first[0]}.{first[1]} runtime"
            )
            return Finding.of(ABI103, message, fix, evidence=tuple(evidence), **where), error
        built_for = newer[0] if newer else (older[-1] if older else None)
        what = f"CPython {built_for[0]}.{built_for[1]}" if built_for else "another CPython"
        message = (
            f"{name} was built for {what}, not {target.python}: it uses {symbol}, which "
            f"CPython {target.python} does not export"
        )
        if tag is None or tag.kind == "untagged":
            message += " (its untagged name lets every CPython try it)"
        fix = (
            f"Rebuild or reinstall the distribution for CPython {target.python} "
            f"(pip install --python-version {target.python} --only-binary=:all: ...); an "
            f"untagged .so must come from a build for exactly the target's Python"
        )
        return Finding.of(ABI106, message, fix, evidence=tuple(evidence), **where), error
    message = (
        f"{owner} needs {problem.symbol.describe()}, which nothing the process has loaded "
        f"defines: {problem.detail}"
    )
    fix = (
        f"Ship the library that defines {symbol} (and make {owner} need it), or install a "
        f"build of {name} made for this target's libraries"
    )
    return Finding.of(ABI206, message, fix, evidence=tuple(evidence), **where), error


def other_python_loaded(
    module: str,
    path: str,
    built_for: Sequence[tuple[int, int]],
    evidence: Sequence[str],
    confidence: str,
    refusal: PredictedError | None,
    origin: Provenance | None,
    target: Target,
) -> Finding:
    """ABI106 for an untagged module that links on the target but was built for another
    CPython: an error when its own init refuses (``refusal``), else a warning."""
    name = posixpath.basename(path)
    what = f"CPython {_versions(built_for)}"
    why = "; ".join(evidence)
    fix = (
        f"Install the distribution's build for CPython {target.python} (pip install "
        f"--python-version {target.python} --only-binary=:all: ...); an untagged .so must "
        "come from a build for exactly the target's Python"
    )
    where: dict[str, Any] = {
        "path": path,
        **located(origin),
        "module": module,
        "confidence": Confidence(confidence),
        "evidence": (why,),
    }
    if refusal is not None:
        message = (
            f"{name} was built for {what}, not {target.python}: every symbol it needs "
            f"resolves, but its initialisation refuses the target's CPython ({refusal})"
        )
        return Finding.of(ABI106, message, fix, predicted_error=refusal, **where)
    message = (
        f"{name} (module {module}) was built for {what}, not {target.python}: every "
        f"symbol it needs resolves, so CPython {target.python} loads it, and what "
        "happens then is undefined behaviour (object layouts and inline macros differ "
        "between versions: a crash or silent corruption, not an ImportError)"
    )
    return Finding.of(ABI106, message, fix, severity=Severity.WARNING, **where)
