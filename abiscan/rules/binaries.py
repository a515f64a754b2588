"""ABI2xx: files the target's dynamic linker refuses."""

from __future__ import annotations

from abiscan.inputs.stack import Provenance
from abiscan.report.findings import ABI201, ABI202, Confidence, Finding, PredictedError
from abiscan.rules import located
from abiscan.target.profiles import Target

__all__ = [
    "NOT_ELF_REASONS",
    "refused_by_loader",
]

# Loader verdict reasons that mean "this is not an ELF object at all".
NOT_ELF_REASONS = frozenset({"not-elf", "file-too-short", "empty"})

# The file is a fine ELF object, only for another machine: another build fixes it.
_IDENTITY_REASONS = frozenset({"wrong-class", "wrong-byte-order", "wrong-machine", "wrong-os"})

_FORMAT_HINT = {
    "mach-o": "a Mach-O binary (built on macOS)",
    "pe": "a PE/COFF binary (built on Windows)",
    "empty": "an empty file",
    "unknown": "not a binary format abiscan knows",
    "elf": "an ELF file the loader cannot use",
}


def refused_by_loader(
    module: str,
    path: str,
    reason: str,
    message: str,
    detail: str,
    file_format: str,
    origin: Provenance | None,
    target: Target,
    confidence: Confidence = Confidence.CERTAIN,
) -> tuple[Finding, PredictedError]:
    """The loader refuses the file outright: not ELF (ABI201) or wrong identity (ABI202)."""
    error = PredictedError(type="ImportError", message=message)
    name = path.rsplit("/", 1)[-1]
    if reason in NOT_ELF_REASONS or file_format != "elf":
        info = ABI201
        what = _FORMAT_HINT.get(file_format, file_format)
        text = f"{path} is {what}; the target's dynamic linker refuses it"
        fix = (
            f"Replace {name} with a Linux {target.arch} build (a manylinux wheel for "
            f"CPython {target.python}); binaries built on macOS or Windows never load on Lambda"
        )
        evidence = (f"file {name}: {what}", detail)
    elif reason in _IDENTITY_REASONS:
        info = ABI202
        text = f"{path}: {detail}"
        fix = (
            f"Install the {target.lambda_arch} build of the distribution "
            f"(pip install --platform manylinux2014_{target.arch} ...) or deploy on the "
            f"architecture it was built for"
        )
        evidence = (f"readelf -h {name}", detail)
    else:
        info = ABI202
        text = f"{path}: {detail}"
        fix = (
            f"{name} is not a usable shared object ({reason}): it is damaged, truncated or "
            "was not linked with -shared; reinstall the distribution from its wheel or "
            "rebuild it"
        )
        evidence = (f"readelf -h {name}", detail)
    finding = Finding.of(
        info,
        text,
        fix,
        confidence=confidence,
        path=path,
        **located(origin),
        module=module,
        predicted_error=error,
        evidence=evidence,
    )
    return finding, error
