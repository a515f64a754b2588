"""The C API each CPython exports: which symbols an extension module can bind to.

An extension module's undefined ``Py*``/``_Py*`` symbols are resolved by the
dynamic linker against the interpreter (libpython, or the executable of a
static build). The built-in data (``data/cpython_exports.json``) lists, for
every symbol libpython exported in the local builds it was generated from
(``tools/gen_cpython_exports.py``), the minor versions that export it. A
profile captured from a real interpreter carries that interpreter's exact
list instead (:class:`CApiExports` with certainty "certain").

For a version without data (3.14 today) nothing is guessed:
:func:`builtin_exports` returns None and the callers say "unknown".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from itertools import compress
from typing import Any

from abiscan.records import record
from abiscan.target._data import read_json

__all__ = [
    "CApiExports",
    "builtin_exports",
    "exporting_versions",
    "is_capi_name",
    "known_versions",
    "unavailable_reason",
]

Version = tuple[int, int]


@record
class CApiExports:
    """The dynamic symbols one CPython interpreter exports to extension modules."""

    version: Version
    symbols: frozenset[str]
    # "certain": read from the target's own interpreter; "likely": from a
    # build of the same minor version elsewhere.
    certainty: str
    provenance: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": f"{self.version[0]}.{self.version[1]}",
            "certainty": self.certainty,
            "provenance": self.provenance,
            "symbols": sorted(self.symbols),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CApiExports:
        major, minor = (int(p) for p in str(data["version"]).split(".")[:2])
        symbols = data.get("symbols", ())
        if isinstance(symbols, str) or not isinstance(symbols, Iterable):
            raise ValueError("C-API export symbols must be a list of names")
        return cls(
            version=(major, minor),
            symbols=frozenset(str(s) for s in symbols),
            certainty=str(data.get("certainty", "certain")),
            provenance=str(data.get("provenance", "")),
        )


def is_capi_name(name: str) -> bool:
    """Whether a symbol belongs to the interpreter's C API by its name.

    Only the interpreter (or a library that wraps it) defines these, so
    whether one resolves follows from the interpreter's exports alone.
    """
    return name.startswith(("Py", "_Py"))


@cache
def _table() -> dict[str, Any]:
    table: dict[str, Any] = read_json("cpython_exports.json")
    return table


def _expand(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


@cache
def _exported_by(minor: int) -> frozenset[str]:
    """The names CPython 3.``minor`` exports: one version decoded, not every one
    (a scan needs one; decoding all took some 10 ms of its start-up)."""
    symbols: dict[str, str] = _table()["symbols"]
    # Each distinct range tested once; the names then picked in C (compress), not
    # one generator step per name.
    covering = {spec for spec in set(symbols.values()) if _covers(spec, minor)}
    return frozenset(compress(symbols, map(covering.__contains__, symbols.values())))


@cache  # a few hundred distinct ranges for some 2,500 names
def _covers(spec: str, minor: int) -> bool:
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        if int(lo) <= minor <= int(hi or lo):
            return True
    return False


def known_versions() -> list[Version]:
    """Versions the built-in data covers."""
    return sorted(
        _parse(key) for key, info in _table()["versions"].items() if info.get("available")
    )


def _parse(key: str) -> Version:
    major, minor = key.split(".")
    return (int(major), int(minor))


def unavailable_reason(version: Version) -> str:
    info = _table()["versions"].get(f"{version[0]}.{version[1]}")
    if info is None:
        return f"abiscan has no C-API data for CPython {version[0]}.{version[1]}"
    return str(info.get("why", "no data"))


@cache
def builtin_exports(version: Version) -> CApiExports | None:
    """The built-in C-API exports of CPython ``version``; None when there is no data."""
    info = _table()["versions"].get(f"{version[0]}.{version[1]}")
    if not info or not info.get("available"):
        return None
    return CApiExports(
        version=version,
        symbols=_exported_by(version[1]) if version[0] == 3 else frozenset(),
        certainty="likely",
        provenance=(
            f"libpython of CPython {info['interpreter']} ({info['library']}, {info['build']}); "
            "Lambda's build of the same minor version is assumed to export the same C API"
        ),
    )


def exporting_versions(name: str) -> list[Version]:
    """The versions (of those with data) whose libpython exports ``name``."""
    spec = _table()["symbols"].get(name)
    return [] if spec is None else [(3, m) for m in _expand(spec)]
