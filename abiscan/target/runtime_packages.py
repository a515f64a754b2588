"""What each Lambda Python runtime itself provides on sys.path (boto3 and company).

The facts live in ``data/runtime_packages.json`` with their sources. They feed
two kinds of finding: a copy in the function or a layer that shadows the
runtime's own (ABI107: ``/var/task`` and ``/opt`` come first on sys.path), and
requirements the runtime already satisfies (ABI303/ABI304).

Two certainties are kept apart because they age differently:

* ``certainty``: that the distribution is there, at ``location``. This is
  stable for the life of a runtime.
* ``version_certainty``: that ``version`` is what the runtime has *now*. AWS
  updates the SDK in place and per region, so a version is an observation as of
  ``as_of`` and is never better than ``possible``; a rule comparing versions
  should say so.

Custom targets (``target.runtime is None``) provide nothing: a custom profile
says nothing about what is preinstalled on it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import field
from functools import cache
from typing import Any

from abiscan.errors import RuntimeDataError as RuntimeDataError  # re-exported (its old home)
from abiscan.records import record
from abiscan.target._data import read_json
from abiscan.target.profiles import Target

__all__ = [
    "CERTAINTIES",
    "Citation",
    "RuntimePackage",
    "data_as_of",
    "runtime_modules",
    "runtime_names",
    "runtime_notes",
    "runtime_package",
    "runtime_packages",
    "sources",
]

CERTAINTIES = ("certain", "likely", "possible")
_UNKNOWN = "unknown"


@record
class Citation:
    """Where a fact comes from, in words a person can follow up."""

    id: str
    title: str
    url: str | None
    date: str | None
    says: str

    def cite(self) -> str:
        where = f" <{self.url}>" if self.url else ""
        when = f" ({self.date})" if self.date else ""
        return f"{self.title}{where}{when}"


@record
class RuntimePackage:
    """A distribution the Lambda runtime puts on sys.path by itself."""

    name: str  # canonical (PEP 503) project name
    version: str | None  # None: unknown
    location: str  # the sys.path entry it is found through
    top_level: tuple[str, ...]  # import names it provides (modules or packages)
    certainty: str  # that it is present at ``location``
    source: str  # the sources of the presence fact, cited
    as_of: str | None  # date of the observation behind the version (or presence)
    version_certainty: str = "possible"
    version_source: str = ""
    source_ids: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        version = self.version or "unknown version"
        when = f" as of {self.as_of}" if self.as_of and self.version else ""
        return f"{self.name} {version}{when} in {self.location} [{self.certainty}]"


def _need_str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise RuntimeDataError(f"runtime package data: {what} must be a non-empty string")
    return value


def _certainty(value: Any, what: str) -> str:
    if value not in CERTAINTIES:
        raise RuntimeDataError(
            f"runtime package data: {what} is {value!r}, not one of {', '.join(CERTAINTIES)}"
        )
    return str(value)


@cache
def _raw() -> dict[str, Any]:
    data: dict[str, Any] = read_json("runtime_packages.json")
    return data


@cache
def sources() -> Mapping[str, Citation]:
    """Every source the data cites, by id."""
    out: dict[str, Citation] = {}
    for source_id, entry in _raw()["sources"].items():
        out[source_id] = Citation(
            id=source_id,
            title=_need_str(entry.get("title"), f"source {source_id} title"),
            url=entry.get("url"),
            date=entry.get("date"),
            says=_need_str(entry.get("says"), f"source {source_id} says"),
        )
    return out


def _cite(ids: list[str], what: str) -> str:
    table = sources()
    missing = [i for i in ids if i not in table]
    if missing:
        raise RuntimeDataError(f"runtime package data: {what} cites unknown {missing}")
    return "; ".join(table[i].cite() for i in ids)


@cache
def _top_levels() -> dict[str, tuple[str, ...]]:
    return {
        _canonical(name): tuple(entry["top_level"])
        for name, entry in _raw()["distributions"].items()
    }


@cache  # per runtime: a scan needs one (building every runtime's was 1 ms of its start-up)
def _packages(runtime: str) -> tuple[RuntimePackage, ...]:
    top_levels = _top_levels()
    entry = _raw()["runtimes"].get(runtime)
    if entry is None:
        return ()
    location = _need_str(entry.get("location"), f"{runtime} location")
    packages: list[RuntimePackage] = []
    for item in entry["packages"]:
        name = _canonical(_need_str(item.get("name"), f"{runtime} package name"))
        what = f"{runtime} {name}"
        if name not in top_levels:
            raise RuntimeDataError(f"runtime package data: {what} has no top_level entry")
        ids = list(item.get("sources") or [])
        if not ids:
            raise RuntimeDataError(f"runtime package data: {what} cites no source")
        version = item.get("version", _UNKNOWN)
        version_ids = list(item.get("version_sources") or [])
        packages.append(
            RuntimePackage(
                name=name,
                version=None if version in (None, _UNKNOWN) else str(version),
                location=item.get("location", location),
                top_level=top_levels[name],
                certainty=_certainty(item.get("certainty"), f"{what} certainty"),
                source=_cite(ids, what),
                as_of=item.get("as_of"),
                version_certainty=_certainty(
                    item.get("version_certainty", "possible"), f"{what} version_certainty"
                ),
                version_source=_cite(version_ids, what) if version_ids else "",
                source_ids=tuple(ids + [i for i in version_ids if i not in ids]),
                notes=tuple(item.get("notes", ())),
            )
        )
    return tuple(packages)


def runtime_names() -> list[str]:
    """The runtimes the data covers."""
    return list(_raw()["runtimes"])


def data_as_of() -> str | None:
    """The date of the newest observation the data was assembled from."""
    value = _raw().get("as_of")
    return str(value) if value else None


def runtime_notes(runtime: str) -> tuple[str, ...]:
    entry = _raw()["runtimes"].get(runtime)
    return tuple(entry.get("notes", ())) if entry else ()


def runtime_packages(target: Target) -> tuple[RuntimePackage, ...]:
    """What the target's Lambda runtime provides by itself; empty for custom targets."""
    if target.runtime is None:
        return ()
    return _packages(target.runtime)


def runtime_package(target: Target, name: str) -> RuntimePackage | None:
    """The runtime's own copy of a project (any spelling of its name), if it has one."""
    wanted = _canonical(name)
    for package in runtime_packages(target):
        if package.name == wanted:
            return package
    return None


def runtime_modules(target: Target) -> dict[str, RuntimePackage]:
    """Top-level import name → the runtime distribution that provides it."""
    return {module: package for package in runtime_packages(target) for module in package.top_level}


_SEPARATORS = re.compile(r"[-_.]+")


def _canonical(name: str) -> str:
    """A project's normalised name (PEP 503), as ``packaging.utils.canonicalize_name``
    gives it; that module imports ``packaging.tags`` (subprocess, logging, platform),
    which a scan without dist-info never needs."""
    return _SEPARATORS.sub("-", name).lower()
