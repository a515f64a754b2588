"""ABI307: a ``.whl`` input that fails verification, checked with wheel-inspect.

wheel-inspect (the design card's package for wheels) checks what a wheel
says about itself: every file against its RECORD digest and size, no file
missing from or unlisted in RECORD, and readable METADATA and WHEEL files.
A wheel that fails was tampered with or broken by hand editing; what abiscan
predicts for it is about those bytes, not the ones the publisher built.

It is imported here, on the first ``.whl`` only: layer and directory scans
never pay its import cost (docs/decisions.md has the numbers).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from abiscan.report.findings import ABI307, Finding

__all__ = ["verify_wheel"]


def verify_wheel(path: str | Path, label: str) -> Finding | None:
    """ABI307 for the wheel file at ``path`` (named ``label`` in the report), or None."""
    from wheel_filename import ParseError
    from wheel_inspect.classes import WheelFile
    from wheel_inspect.errors import WheelValidationError
    from wheel_inspect.inspecting import verify_record

    try:
        with WheelFile(path) as wheel:
            verify_record(wheel, wheel.get_record())
            wheel.get_metadata()
            wheel.get_wheel_info()
    # Hostile or broken wheels fail in other ways too (bad UTF-8 in METADATA, a
    # member that will not inflate): every one is a failed verification.
    except (
        WheelValidationError,
        ParseError,
        ValueError,
        KeyError,
        OSError,
        zipfile.BadZipFile,
    ) as exc:
        problem, kind = str(exc), type(exc).__name__
    else:
        return None
    return Finding.of(
        ABI307,
        f"{label} fails wheel verification: {problem}",
        "Rebuild or re-download the wheel from its publisher (pip download --no-deps "
        "--only-binary=:all: NAME==VERSION) and compare it with this one; never edit a "
        "wheel's files by hand (change the source and rebuild)",
        source=label,
        evidence=(f"wheel-inspect: {kind}: {problem}",),
    )
