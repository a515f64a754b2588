"""The target's system libraries: which shared objects its file system holds, and what they define.

The dynamic-linker simulation (:mod:`abiscan.simulate.linker.dlopen`) needs, for the target and
never for the host: the libraries in its directories (soname, class, machine,
the symbol versions each defines), what ``/etc/ld.so.cache`` maps names to,
the default directories, directory symlinks (``/lib64 -> usr/lib64`` on
Amazon Linux), and the objects a fresh interpreter process has already
loaded (libpython, libc, libm, ...).

An inventory comes from one of three places:

* a profile captured from a real system (:mod:`abiscan.target.capture`), which lists
  every library it saw: ``complete`` is true, and a name it does not list is
  absent for certain;
* the built-in data for Amazon Linux 2 and 2023 (``data/system_inventories.json``),
  written from public package data with a source and a certainty for each
  fact; it lists what matters for Python wheels, so a name it does not list
  is *probably* absent (``absent_confidence`` "likely");
* a generic glibc system for custom targets: only glibc's own libraries are
  known, so a missing name is only "possibly" absent.

This module reads nothing from the host. It knows nothing of targets or
stacks; :mod:`abiscan.target.profiles` picks the inventory for a target.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import field
from functools import cache
from typing import Any

from abiscan.errors import InventoryError as InventoryError  # re-exported (its old home)
from abiscan.records import record
from abiscan.target._data import read_json

__all__ = [
    "CERTAINTIES",
    "AbsentLibrary",
    "InventoryError",
    "SystemInventory",
    "SystemLibrary",
    "builtin_inventory",
    "builtin_os_ids",
    "generic_glibc_inventory",
    "glibc_versions",
]

CERTAINTIES = ("certain", "likely", "possible")


@record
class SystemLibrary:
    """One shared object in the target's file system."""

    path: str
    soname: str | None
    bits: int = 64
    machine: str = "x86_64"
    # Symbol versions the library defines (``.gnu.version_d``, without the
    # base entry). Empty: it defines none (unversioned, as libexpat, libbz2).
    # None: not known; version needs on it cannot be checked.
    version_defs: tuple[str, ...] | None = ()
    # Exported dynamic symbols when known (captured for the interpreter's own
    # process libraries); None for nearly every library.
    exports: frozenset[str] | None = None
    # How sure the data is that the file is there with these versions.
    certainty: str = "certain"
    source: str = ""

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "soname": self.soname,
            "bits": self.bits,
            "machine": self.machine,
            "version_defs": None if self.version_defs is None else list(self.version_defs),
            "certainty": self.certainty,
            "source": self.source,
        }
        if self.exports is not None:
            out["exports"] = sorted(self.exports)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SystemLibrary:
        try:
            defs = data.get("version_defs", ())
            exports = data.get("exports")
            return cls(
                path=str(data["path"]),
                soname=None if data.get("soname") is None else str(data["soname"]),
                bits=int(data.get("bits", 64)),
                machine=str(data.get("machine", "x86_64")),
                version_defs=None if defs is None else tuple(str(v) for v in defs),
                exports=None if exports is None else frozenset(str(s) for s in exports),
                certainty=_certainty(data.get("certainty", "certain")),
                source=str(data.get("source", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InventoryError(f"bad library entry {dict(data)!r}: {exc}") from None


@record
class AbsentLibrary:
    """A library name known *not* to be on the target, and how sure that is."""

    soname: str
    certainty: str = "certain"
    source: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"soname": self.soname, "certainty": self.certainty, "source": self.source}


@record
class SystemInventory:
    """The shared libraries of a target system, as its dynamic linker sees them."""

    name: str
    libraries: tuple[SystemLibrary, ...]
    default_dirs: tuple[str, ...] = ("/lib64", "/usr/lib64")
    # (name, path) as /etc/ld.so.cache maps them, in the cache's order.
    cache: tuple[tuple[str, str], ...] = ()
    # Directory symlinks: (link, target), both absolute.
    dir_links: tuple[tuple[str, str], ...] = ()
    # Names of the objects a fresh interpreter process has loaded before any
    # import (the executable's dependency tree), in load order.
    preloaded: tuple[str, ...] = ()
    # DT_RPATH of the interpreter executable: ld.so searches it for every
    # dlopen whose object has no DT_RUNPATH (DT_RUNPATH of the executable
    # does not count).
    executable_rpath: tuple[str, ...] = ()
    # True when every library of the system is listed (a captured profile).
    complete: bool = False
    # How sure "not listed" means "not there" when the list is incomplete.
    absent_confidence: str = "possible"
    absent: tuple[AbsentLibrary, ...] = ()
    # What ld.so substitutes for $LIB and $PLATFORM in search paths.
    lib_token: str = "lib64"
    platform_token: str | None = None
    sources: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    _by_path: dict[str, SystemLibrary] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        index = self._by_path
        for lib in self.libraries:
            index.setdefault(self.canonical(lib.path), lib)

    # -- file system ------------------------------------------------------

    def canonical(self, path: str) -> str:
        """The path with directory symlinks followed and ``.``/``..`` removed."""
        path = posixpath.normpath(path)
        for _ in range(8):  # links to links, bounded
            for link, target in self.dir_links:
                if path == link or path.startswith(link + "/"):
                    path = posixpath.normpath(target + path[len(link) :])
                    break
            else:
                return path
        return path

    def library_at(self, path: str) -> SystemLibrary | None:
        return self._by_path.get(self.canonical(path))

    def cached(self, name: str) -> list[str]:
        """Paths the cache gives for ``name``, in cache order (ld.so takes the first that fits)."""
        return [p for n, p in self.cache if n == name]

    def absent_entry(self, soname: str) -> AbsentLibrary | None:
        """The entry saying ``soname`` is not on the system (entries may be glob patterns)."""
        return next((a for a in self.absent if fnmatch.fnmatchcase(soname, a.soname)), None)

    def by_soname(self, soname: str) -> list[SystemLibrary]:
        return [lib for lib in self.libraries if lib.soname == soname or lib.name == soname]

    # -- serialisation ----------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "complete": self.complete,
            "absent_confidence": self.absent_confidence,
            "default_dirs": list(self.default_dirs),
            "dir_links": [list(p) for p in self.dir_links],
            "cache": [list(p) for p in self.cache],
            "preloaded": list(self.preloaded),
            "executable_rpath": list(self.executable_rpath),
            "lib_token": self.lib_token,
            "platform_token": self.platform_token,
            "libraries": [lib.to_dict() for lib in self.libraries],
            "absent": [a.to_dict() for a in self.absent],
            "sources": list(self.sources),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SystemInventory:
        if not isinstance(data, Mapping):
            raise InventoryError("a system inventory is a JSON object")
        try:
            return cls(
                name=str(data.get("name", "captured")),
                libraries=tuple(SystemLibrary.from_dict(d) for d in data.get("libraries", ())),
                default_dirs=_strs(data.get("default_dirs", ("/lib64", "/usr/lib64"))),
                cache=tuple(_pair(p) for p in data.get("cache", ())),
                dir_links=tuple(_pair(p) for p in data.get("dir_links", ())),
                preloaded=_strs(data.get("preloaded", ())),
                executable_rpath=_strs(data.get("executable_rpath", ())),
                complete=bool(data.get("complete", False)),
                absent_confidence=_certainty(data.get("absent_confidence", "possible")),
                absent=tuple(
                    AbsentLibrary(
                        soname=str(a["soname"]),
                        certainty=_certainty(a.get("certainty", "certain")),
                        source=str(a.get("source", "")),
                    )
                    for a in data.get("absent", ())
                ),
                lib_token=str(data.get("lib_token", "lib64")),
                platform_token=(
                    None if data.get("platform_token") is None else str(data["platform_token"])
                ),
                sources=_strs(data.get("sources", ())),
                notes=_strs(data.get("notes", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InventoryError):
                raise
            raise InventoryError(f"bad system inventory: {exc}") from None


def _strs(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InventoryError(f"expected a list of strings, not {value!r}")
    return tuple(str(v) for v in value)


def _pair(value: Any) -> tuple[str, str]:
    items = _strs(value)
    if len(items) != 2:
        raise InventoryError(f"expected a [name, path] pair, not {value!r}")
    return (items[0], items[1])


def _certainty(value: Any) -> str:
    text = str(value)
    if text not in CERTAINTIES:
        raise InventoryError(f"certainty must be one of {', '.join(CERTAINTIES)}, not {text!r}")
    return text


# -- built-in data ----------------------------------------------------------


@cache
def _data() -> dict[str, Any]:
    table: dict[str, Any] = read_json("system_inventories.json")
    return table


def _version_key(name: str) -> tuple[int, ...] | None:
    m = re.fullmatch(r"[A-Z]+_(\d+(?:\.\d+)*)", name)
    return tuple(int(p) for p in m.group(1).split(".")) if m else None


def _parse_release(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def glibc_versions(library: str, arch: str, glibc: str) -> tuple[tuple[str, ...], str] | None:
    """The GLIBC_* versions ``library`` defines in glibc ``glibc`` on ``arch``, and their certainty.

    None when abiscan has no data for that library.
    """
    table = _data()["glibc"]
    per_arch = table["libraries"].get(arch)
    if per_arch is None or library not in per_arch:
        return None
    release = _parse_release(glibc)
    since = table["named_versions_since"]
    out = []
    for name in per_arch[library]:
        key = _version_key(name)
        first = key if key is not None else _parse_release(since.get(name, "0.0"))
        if first <= release:
            out.append(name)
    certainty = table["certainty"][arch]
    newest = _parse_release(table["data_up_to"])
    if release > newest:
        # Versions a newer glibc added are not in the data: a need for one
        # would be reported as missing although it may exist.
        certainty = "possible"
    return tuple(out), certainty


def _glibc_libraries(
    arch: str, glibc: str, dirs: Sequence[str], source: str
) -> list[SystemLibrary]:
    """glibc's own libraries, in the first default directory, with their versions."""
    per_arch = _data()["glibc"]["libraries"].get(arch, {})
    out = []
    for name in per_arch:
        found = glibc_versions(name, arch, glibc)
        if found is None:
            continue
        versions, certainty = found
        out.append(
            SystemLibrary(
                path=posixpath.join(dirs[0], name),
                soname=name,
                machine=arch,
                version_defs=versions,
                certainty=certainty,
                source=source,
            )
        )
    return out


def builtin_os_ids() -> list[str]:
    return list(_data()["operating_systems"])


@cache
def builtin_inventory(
    os_id: str, arch: str, python: tuple[int, int] | None = None
) -> SystemInventory:
    """The built-in inventory of a Lambda OS (``al2``, ``al2023``) on ``arch`` for ``python``."""
    data = _data()
    entry = data["operating_systems"].get(os_id)
    if entry is None:
        raise InventoryError(f"no built-in inventory for {os_id!r}")
    if arch not in entry["arches"]:
        raise InventoryError(f"no built-in inventory for {os_id!r} on {arch}")
    glibc = entry["glibc"]
    dirs = tuple(entry["default_dirs"])
    libs = _glibc_libraries(arch, glibc, dirs, data["glibc"]["source"])
    sets = data["version_sets"]
    for item in entry["libraries"]:
        versions = item.get("versions", [])
        source = str(item["source"])
        if isinstance(versions, str):
            source += f"; versions: {sets[versions]['source']}"
            versions = sets[versions][arch]
        libs.append(
            SystemLibrary(
                path=posixpath.join(item.get("dir", dirs[0]), item["soname"]),
                soname=item["soname"],
                machine=arch,
                version_defs=None if versions is None else tuple(versions),
                certainty=_certainty(item.get("certainty", "likely")),
                source=source,
            )
        )
    cache_entries = [(lib.soname or lib.name, lib.path) for lib in libs]
    libpython: str | None = None
    if python is not None:
        for item in entry.get("interpreter_libraries", ()):
            name = item["soname"].format(minor=python[1])
            libpython = name
            # Not in ld.so.cache: /var/lang/lib is no system directory, only
            # on LD_LIBRARY_PATH.
            libs.append(
                SystemLibrary(
                    path=posixpath.join(item["dir"], name),
                    soname=name,
                    machine=arch,
                    version_defs=(),
                    certainty=_certainty(item.get("certainty", "likely")),
                    source=str(item["source"]),
                )
            )
    ld_so = "ld-linux-x86-64.so.2" if arch == "x86_64" else "ld-linux-aarch64.so.1"
    preloaded = []
    for name in entry["preloaded"]:
        if name == "libpython":
            if libpython is not None:
                preloaded.append(libpython)
            continue
        preloaded.append(name.replace("{ld_so}", ld_so))
    return SystemInventory(
        name=f"{entry['name']} ({arch})",
        libraries=tuple(libs),
        default_dirs=dirs,
        cache=tuple(cache_entries),
        dir_links=tuple((a, b) for a, b in entry["dir_links"]),
        preloaded=tuple(preloaded),
        complete=False,
        absent_confidence=_certainty(entry["absent_confidence"]),
        absent=tuple(
            AbsentLibrary(
                soname=a["soname"], certainty=_certainty(a["certainty"]), source=a["source"]
            )
            for a in entry.get("absent", ())
        ),
        lib_token="lib64",
        platform_token=arch,
        sources=tuple(entry["sources"]),
        notes=tuple(entry.get("notes", ())),
    )


@cache
def generic_glibc_inventory(glibc: str, arch: str) -> SystemInventory:
    """A glibc system about which nothing but the glibc version is known (custom targets)."""
    dirs = ("/lib64", "/usr/lib64")
    libs = _glibc_libraries(arch, glibc, dirs, _data()["glibc"]["source"])
    ld_so = "ld-linux-x86-64.so.2" if arch == "x86_64" else "ld-linux-aarch64.so.1"
    preloaded = ["libc.so.6", "libm.so.6", ld_so]
    if _parse_release(glibc) < (2, 34):
        preloaded[1:1] = ["libpthread.so.0", "libdl.so.2", "libutil.so.1"]
    return SystemInventory(
        name=f"generic glibc {glibc} ({arch})",
        libraries=tuple(libs),
        default_dirs=dirs,
        cache=tuple((lib.soname, lib.path) for lib in libs if lib.soname),
        preloaded=tuple(preloaded),
        complete=False,
        absent_confidence="possible",
        lib_token="lib64",
        platform_token=arch,
        sources=(_data()["glibc"]["source"],),
        notes=(
            "custom target: only glibc's own libraries are known; any other library may or "
            "may not be installed",
        ),
    )
