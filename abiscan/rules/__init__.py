"""Finding rules: small functions from facts and simulation results to findings.

One module per kind of problem: ``imports`` (ABI101-109, the import system),
``symbols`` (ABI103, ABI106, ABI206), ``binaries`` (ABI201-202, what the
loader refuses outright), ``linker`` (ABI203-205), ``distributions``
(ABI301-306), ``layers`` (ABI401-404) and ``impact`` (ABI501-502).
"""

from __future__ import annotations

from typing import TypedDict

from abiscan.inputs.stack import Provenance


class Location(TypedDict):
    source: str | None
    source_path: str | None


def located(origin: Provenance | None) -> Location:
    """The ``source`` and ``source_path`` of a finding about a file from ``origin``."""
    return {
        "source": origin.source if origin else None,
        "source_path": origin.source_path if origin else None,
    }
