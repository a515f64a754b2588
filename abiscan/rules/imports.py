"""ABI1xx: what the target's import system will not find, or finds and refuses."""

from __future__ import annotations

from collections.abc import Sequence

from abiscan.inputs.stack import Provenance
from abiscan.report.findings import (
    ABI101,
    ABI102,
    ABI104,
    ABI105,
    ABI107,
    ABI108,
    ABI109,
    CodeInfo,
    Confidence,
    Finding,
    PredictedError,
    Severity,
)
from abiscan.rules import located
from abiscan.simulate.imports.extension_tags import Mismatch
from abiscan.simulate.imports.file_finder import PassedOver, Spec
from abiscan.target.profiles import Target

__all__ = [
    "bad_magic",
    "missing_init",
    "not_tried",
    "outside_sys_path",
    "shadowed",
    "shadows_runtime",
]

_AWS_SDK = frozenset({"boto3", "botocore", "s3transfer"})

_BY_CODE: dict[str, CodeInfo] = {c.code: c for c in (ABI101, ABI102, ABI104)}


def _rebuild_fix(target: Target, what: str) -> str:
    plat = "manylinux2014_x86_64" if target.arch == "x86_64" else "manylinux2014_aarch64"
    return (
        f"Rebuild {what} for the target: pip install --platform {plat} "
        f"--python-version {target.python} --implementation cp --only-binary=:all: "
        f"--target python/ <distribution>, or build it inside the "
        f"{target.runtime or 'target'} image"
    )


def not_tried(
    module: str,
    passed: PassedOver,
    mismatch: Mismatch,
    origin: Provenance | None,
    loaded: Spec | None,
    error: PredictedError | None,
    target: Target,
) -> Finding:
    """An extension file named for the module that the target never tries (ABI101/102/104)."""
    info = _BY_CODE[mismatch.code]
    fname = passed.path.rsplit("/", 1)[-1]
    evidence = (
        f"file {passed.path} (from {origin.describe() if origin else 'the stack'})",
        f"target EXTENSION_SUFFIXES: {', '.join(target.extension_suffixes)}",
    )
    if loaded is None:
        message = (
            f"{fname} is {mismatch.reason}; CPython never tries it, and nothing else "
            f"provides '{module}'"
        )
        severity = info.severity
    else:
        message = (
            f"{fname} is {mismatch.reason}; CPython never tries it and loads "
            f"{loaded.origin} ({loaded.loader_kind}) instead"
        )
        severity = Severity.WARNING
    return Finding.of(
        info,
        message,
        _rebuild_fix(target, f"<distribution> (which ships {fname})"),
        severity=severity,
        path=passed.path,
        **located(origin),
        module=module,
        predicted_error=error if loaded is None else None,
        evidence=evidence,
    )


def outside_sys_path(
    root: str,
    why: str,
    modules: Sequence[str],
    hidden: Sequence[str],
    sources: Sequence[str],
    target: Target,
) -> Finding:
    """Content placed where sys.path never looks (ABI108)."""
    shown = ", ".join(modules[:8]) + (f" and {len(modules) - 8} more" if len(modules) > 8 else "")
    if hidden:
        message = (
            f"{why}; {len(hidden)} module(s) there are found nowhere else and will not "
            f"import: {', '.join(hidden[:8])}"
        )
        severity = ABI108.severity
        predicted = PredictedError(
            type="ModuleNotFoundError", message=f"No module named '{hidden[0]}'"
        )
    else:
        message = f"{why}; its modules ({shown}) are dead weight: other copies load"
        severity = Severity.WARNING
        predicted = None
    fix = (
        f"Put the packages under python/ in the layer zip (or under "
        f"python/lib/python{target.python}/site-packages/), e.g. "
        f"pip install --target python/ ...; for a function zip, at the zip's root"
    )
    return Finding.of(
        ABI108,
        message,
        fix,
        severity=severity,
        path=root,
        # One input per finding (SARIF takes one artifact); the others are in the evidence.
        source=sources[0] if sources else None,
        module=hidden[0] if hidden else None,
        predicted_error=predicted,
        evidence=(
            f"target sys.path: {', '.join(target.sys_path)}",
            f"modules under {root}: {shown}",
            f"from: {', '.join(sources)}",
        ),
    )


def bad_magic(
    module: str,
    path: str,
    magic: bytes,
    written_by: str,
    origin: Provenance | None,
    target: Target,
) -> tuple[Finding, PredictedError]:
    error = PredictedError(type="ImportError", message=f"bad magic number in {module!r}: {magic!r}")
    finding = Finding.of(
        ABI109,
        f"{path} is bytecode written by {written_by}; CPython {target.python} refuses it",
        f"Ship the .py source (or .pyc compiled by CPython {target.python}) instead of "
        f"{path.rsplit('/', 1)[-1]}",
        path=path,
        **located(origin),
        module=module,
        predicted_error=error,
        evidence=(f"first 4 bytes of {path}: {magic!r}",),
    )
    return finding, error


def missing_init(
    module: str,
    path: str,
    exported: Sequence[str],
    origin: Provenance | None,
    confidence: Confidence = Confidence.CERTAIN,
) -> tuple[Finding, PredictedError]:
    """An extension module without ``PyInit_<name>`` (ABI105)."""
    short = module.rpartition(".")[2]
    error = PredictedError(
        type="ImportError",
        message=f"dynamic module does not define module export function (PyInit_{short})",
    )
    if exported:
        found = f"it exports {', '.join(sorted(exported)[:3])} instead (renamed file?)"
    else:
        found = "it exports no PyInit_ function at all (a plain shared library?)"
    finding = Finding.of(
        ABI105,
        f"{path} would be loaded for '{module}' but does not export PyInit_{short}; {found}",
        "Rename the file to match the module it initialises, or rebuild it from the "
        "module's sources; a plain shared library must not sit where a module is expected",
        confidence=confidence,
        path=path,
        **located(origin),
        module=module,
        predicted_error=error,
        evidence=(f"readelf --dyn-syms -W {path.rsplit('/', 1)[-1]} | grep PyInit_",),
    )
    return finding, error


def shadowed(
    module: str,
    winner: Spec,
    loser: Spec,
    winner_label: str | None,
    loser_label: str | None,
    origin: Provenance | None,
) -> Finding:
    """A module also present in a later sys.path entry, whose copy never loads (ABI107)."""
    same = winner_label is not None and winner_label == loser_label
    a = f"{winner.origin} ({winner_label})" if winner_label else str(winner.origin)
    b = f"{loser.origin} ({loser_label})" if loser_label else str(loser.origin)
    return Finding.of(
        ABI107,
        f"'{module}' is provided twice: {a} loads, because {winner.entry} comes before "
        f"{loser.entry} on sys.path; {b} is never used",
        f"Remove one copy of '{module}' (usually the one in {winner.entry} if it is the "
        "older), so that the version you tested is the version that loads",
        severity=Severity.INFO if same else Severity.WARNING,
        path=loser.origin,
        **located(origin),
        module=module,
        evidence=(f"sys.path order: {winner.entry} before {loser.entry}",),
    )


def shadows_runtime(
    module: str,
    spec: Spec,
    stack_label: str | None,
    runtime_label: str,
    location: str,
    origin: Provenance | None,
) -> Finding:
    """A module in the stack that replaces the runtime's own copy (ABI107, informational)."""
    mine = f"{spec.origin} ({stack_label})" if stack_label else str(spec.origin)
    return Finding.of(
        ABI107,
        f"'{module}' from the stack, {mine}, loads instead of the runtime's own "
        f"{runtime_label} in {location}",
        f"Intended if you pin your own {runtime_label.split()[0]}; otherwise remove it from the "
        "layer or function package and use the runtime's copy"
        + (
            ". Keep boto3, botocore and s3transfer together: the runtime's boto3 with an "
            "older botocore fails"
            if module in _AWS_SDK
            else ""
        ),
        severity=Severity.INFO,
        confidence=Confidence.LIKELY,
        path=spec.origin,
        **located(origin),
        module=module,
        evidence=(f"{spec.entry} comes before {location} on sys.path",),
    )
