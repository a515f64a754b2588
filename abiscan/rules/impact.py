"""ABI5xx: what breaks when a module's imports are followed (see simulate.python.propagation)."""

from __future__ import annotations

from collections.abc import Sequence

from abiscan.inputs.stack import Stack
from abiscan.report.findings import ABI501, ABI502, Confidence, Finding, PredictedError
from abiscan.report.model import ChainStep, ModuleOutcome
from abiscan.simulate.python.propagation import Followed

__all__ = [
    "broken_chain",
    "guard_pierced",
    "impact_findings",
]

_MAX_EVIDENCE = 12


def _evidence(steps: Sequence[ChainStep], broken: str, reason: str) -> tuple[str, ...]:
    lines = [f"import chain: {s.describe()}" for s in steps]
    if len(lines) > _MAX_EVIDENCE:
        lines = [
            *lines[: _MAX_EVIDENCE - 1],
            f"... {len(lines) - _MAX_EVIDENCE + 1} more links",
            lines[-1],
        ]
    lines.append(f"{broken}: {reason}")
    return tuple(lines)


def _fix_for(module: str, broken: str, error: PredictedError | None) -> str:
    what = f" ({error.type})" if error is not None else ""
    return (
        f"Fix '{broken}' for the target (its own finding or outcome says how); if '{module}' "
        f"can work without it, make the import optional where the chain enters it, with an "
        f"except clause that catches what arrives{what}; 'abiscan explain {module} ...' "
        "shows every link"
    )


def broken_chain(
    module: ModuleOutcome,
    broken: str,
    broken_reason: str,
    confidence: Confidence,
    origin: tuple[str | None, str | None],
) -> Finding:
    """A top-level package that fails because of a broken module it reaches (ABI501)."""
    chain = " -> ".join(module.chain)
    return Finding.of(
        ABI501,
        f"'import {module.name}' fails on the target through the chain {chain}: "
        f"'{broken}' fails and no except clause on the way catches what arrives",
        _fix_for(module.name, broken, module.error),
        confidence=confidence,
        path=module.path,
        source=origin[0],
        source_path=origin[1],
        module=module.name,
        predicted_error=module.error,
        evidence=_evidence(module.steps, broken, broken_reason),
    )


def guard_pierced(
    module: str,
    path: str | None,
    line: int,
    statement: str,
    guards: Sequence[str],
    error: PredictedError,
    steps: Sequence[ChainStep],
    broken: str,
    broken_reason: str,
    confidence: Confidence,
    origin: tuple[str | None, str | None],
) -> Finding:
    """An import guarded against ImportError that a non-ImportError passes through (ABI502)."""
    # Imported here: a scan that parses no source never loads the import graph.
    from abiscan.simulate.python.import_graph import PANIC

    guard = "; ".join(guards)
    if error.type == PANIC:
        why = (
            "a BaseException, not an Exception: only a bare 'except:' or 'except "
            "BaseException' catches it; the import fails and the Lambda runtime exits "
            "(Runtime.ExitError)"
        )
        fix = (
            f"Make '{broken}' import on the target, so that nothing panics (the real fix); "
            "if the guarded import must survive any failure, catch BaseException around it "
            "and re-raise KeyboardInterrupt and SystemExit; for cryptography 40 to 42.0.5 "
            "(whose pyo3 module panics when its cffi module fails), cryptography 42.0.6 or "
            "later raises an ImportError that the guard catches"
        )
    else:
        why = f"the clause does not catch {error.type}"
        fix = _fix_for(module, broken, error)
    return Finding.of(
        ABI502,
        f"{module} guards '{statement}' (line {line}) with {guard}, but what arrives "
        f"from '{broken}' is {error.type}: {why}",
        fix,
        confidence=confidence,
        path=path,
        source=origin[0],
        source_path=origin[1],
        module=module,
        predicted_error=error,
        evidence=(
            f"{path}:{line}: {statement}",
            *(f"guard: {g}" for g in guards),
            *_evidence(steps, broken, broken_reason),
        ),
    )


def impact_findings(followed: Followed, stack: Stack) -> list[Finding]:
    """The ABI501/ABI502 findings for what following the imports found."""
    out = [
        broken_chain(
            b.module,
            b.raised.broken,
            b.raised.reason,
            Confidence(b.raised.confidence),
            _provenance(stack, b.module.path),
        )
        for b in followed.broken
    ]
    for p in followed.pierced:
        error = p.raised.error
        if error is None:
            continue
        out.append(
            guard_pierced(
                p.module,
                p.path,
                p.line,
                p.statement,
                p.guards,
                error,
                p.raised.steps,
                p.raised.broken,
                p.raised.reason,
                Confidence(p.raised.confidence),
                _provenance(stack, p.path),
            )
        )
    return out


def _provenance(stack: Stack, path: str | None) -> tuple[str | None, str | None]:
    if path is None:
        return None, None
    sf = stack.file(path)
    return (sf.origin.source, sf.origin.source_path) if sf is not None else (None, None)
