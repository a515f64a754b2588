"""ABI203-ABI205: the target's dynamic linker refuses an extension's dependencies.

Each rule turns one :class:`abiscan.simulate.linker.dlopen.LinkProblem` into a finding with the
predicted exception (glibc's exact ``dlerror()`` text), evidence to check with
``readelf -d`` / ``readelf -V``, and a fix.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from typing import Any

from abiscan.inputs.stack import Provenance
from abiscan.report.findings import ABI203, ABI204, ABI205, Confidence, Finding, PredictedError
from abiscan.rules import located
from abiscan.simulate.linker.dlopen import LinkObject, LinkProblem
from abiscan.target.profiles import Target

__all__ = ["dependency_refused"]

_GLIBC = re.compile(r"^GLIBC_(\d+)\.(\d+)")


def _confidence(level: str) -> Confidence:
    return Confidence(level)


def _where(chain: Sequence[str]) -> str:
    if len(chain) <= 1:
        return ""
    names = [posixpath.basename(p) for p in chain]
    return f" (through {' -> '.join(names)})"


def _searched(paths: Sequence[str], limit: int = 6) -> str:
    shown = list(dict.fromkeys(paths))
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more if shown else "nothing"


def dependency_refused(
    module: str,
    path: str,
    problem: LinkProblem,
    objects: Sequence[LinkObject],
    origin: Provenance | None,
    target: Target,
) -> tuple[Finding, PredictedError]:
    """A needed library missing (ABI203), musl on glibc (ABI205), or a version missing (ABI204)."""
    assert problem.message is not None
    error = PredictedError(type="ImportError", message=problem.message)
    name = posixpath.basename(path)
    needer = posixpath.basename(problem.object)
    where: dict[str, Any] = {
        "path": path,
        **located(origin),
        "module": module,
        "predicted_error": error,
        "confidence": _confidence(problem.confidence),
    }
    loaded = [o.describe() for o in objects if o.origin in ("stack", "system")]
    if problem.kind == "version-not-found":
        version = problem.version or "?"
        provider = problem.provider or "?"
        message = (
            f"{needer} needs version {version} of {problem.needed}, which the target's "
            f"{provider} does not define{_where(problem.chain)}: {problem.detail}"
        )
        evidence = (
            f"readelf -V -W {needer}: .gnu.version_r requires {problem.needed} {version}",
            f"{provider} on the target: {problem.detail}"
            + (f" (source: {problem.source})" if problem.source else ""),
            *(f"loaded: {d}" for d in loaded[:4]),
        )
        return Finding.of(
            ABI204, message, _version_fix(version, problem, target), evidence=evidence, **where
        ), error
    needed = problem.needed or "?"
    searched = _searched(problem.searched)
    if problem.musl:
        message = (
            f"{needer} is linked against musl libc ({needed}): it comes from a musllinux wheel, "
            f"and the target runs glibc {target.libc_version}, which has no {needed}"
        )
        fix = (
            f"Install the manylinux (glibc) build instead of the musllinux one: pip install "
            f"--platform manylinux2014_{target.arch} --python-version {target.python} "
            f"--only-binary=:all: --target python/ <distribution>"
        )
        evidence = (
            f"readelf -d -W {needer} | grep NEEDED: {needed}",
            f"target libc: {target.libc} {target.libc_version}",
        )
        return Finding.of(ABI205, message, fix, evidence=evidence, **where), error
    if problem.kind == "bad-candidate":
        reason = f"the first {needed} on the search path is refused: {problem.message}"
    elif problem.kind == "wrong-class":
        reason = f"only a {problem.detail.split('the other ')[-1]} copy of {needed} is there"
    else:
        reason = problem.detail
    message = f"{needer} needs {needed}{_where(problem.chain)}; {reason}"
    fix = (
        f"Ship {needed} with the code: put it in the layer's lib/ directory (/opt/lib is on "
        f"LD_LIBRARY_PATH) or next to the module with an $ORIGIN RUNPATH (what auditwheel "
        f"repair does), or install a wheel that bundles it (manylinux wheels vendor their "
        f"libraries); otherwise build {name} in the {target.runtime or 'target'} image"
    )
    evidence = (
        f"readelf -d -W {needer} | grep -E 'NEEDED|RPATH|RUNPATH': needs {needed}",
        f"searched: {searched}",
        f"target system libraries: {target.inventory().name}",
    )
    return Finding.of(ABI203, message, fix, evidence=evidence, **where), error


def _version_fix(version: str, problem: LinkProblem, target: Target) -> str:
    m = _GLIBC.match(version)
    if m:
        have = target.libc_version.replace(".", "_")
        return (
            f"The extension was built for glibc {m.group(1)}.{m.group(2)} or newer "
            f"(a manylinux_{m.group(1)}_{m.group(2)} wheel or a newer build machine); the "
            f"target has glibc {target.libc_version}. Install a wheel tagged manylinux_{have} "
            f"or older: pip install --platform manylinux_{have}_{target.arch} "
            f"--python-version {target.python} --only-binary=:all: --target python/ "
            f"<distribution>, or move to a runtime whose OS has glibc "
            f"{m.group(1)}.{m.group(2)} or newer"
        )
    if version.startswith(("GLIBCXX_", "CXXABI_", "GCC_")):
        return (
            f"The extension was built with a newer GCC than the one whose runtime the target "
            f"has ({problem.provider} lacks {version}). Install a wheel built for an older "
            f"manylinux (which links libstdc++ statically or vendors it), rebuild in the "
            f"{target.runtime or 'target'} image, or ship a newer libstdc++.so.6 in /opt/lib"
        )
    return (
        f"Ship the version of {problem.needed} the extension was built against (defining "
        f"{version}) with the code, or rebuild the extension against the target's "
        f"{problem.needed}"
    )
