"""The target runtime: an explicit, serialisable profile.

A :class:`Target` is plain data. The built-in ones come from
``data/lambda_runtimes.json``; custom ones are made from parameters
(:func:`custom_target`) or loaded from a JSON file (:func:`load_target`).
Nothing here looks at the host: a target describes the machine the code will
run on, which is almost never the machine abiscan runs on.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import asdict, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from abiscan.errors import TargetError as TargetError  # re-exported (its old home)
from abiscan.limits import DEFAULT_LIMITS, Limits
from abiscan.records import record
from abiscan.target._data import read_json
from abiscan.target.capi import CApiExports, builtin_exports
from abiscan.target.system_libraries import (
    InventoryError,
    SystemInventory,
    builtin_inventory,
    generic_glibc_inventory,
)

__all__ = [
    "FUNCTION_ROOT",
    "LAYER_ROOT",
    "TARGET_SCHEMA_VERSION",
    "Target",
    "builtin_target",
    "builtin_targets",
    "custom_target",
    "extension_suffixes",
    "load_target",
    "marker_environment",
    "micro_floor",
    "normalise_arch",
    "parse_python_version",
    "runtime_names",
]

TARGET_SCHEMA_VERSION = 1

# Lambda says "arm64"; CPython's multiarch and ELF say "aarch64".
_ARCH_ALIASES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "arm64": "aarch64",
    "aarch64": "aarch64",
}

# The runtime's own layout. The DESIGN card lists where these come from.
LAYER_ROOT = "/opt"
FUNCTION_ROOT = "/var/task"


@record
class Target:
    """Everything abiscan needs to know about the interpreter and OS it predicts for."""

    name: str
    python_version: tuple[int, int]
    arch: str
    multiarch: str
    extension_suffixes: tuple[str, ...]
    sys_path: tuple[str, ...]
    ld_library_path: tuple[str, ...]
    libc: str
    libc_version: str
    os_name: str
    implementation: str = "cpython"
    abiflags: str = ""
    runtime: str | None = None
    layer_root: str = LAYER_ROOT
    function_root: str = FUNCTION_ROOT
    site_packages: str = ""
    # Debian and Ubuntu patch ld.so to skip a file for another machine before
    # any other header check; Amazon Linux runs glibc's own order ("upstream").
    ld_so_flavor: str = "upstream"
    max_layers: int = 5
    max_unzipped_bytes: int = 250 * 1024 * 1024
    sources: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    # The target's system libraries and interpreter C API. Built-in targets
    # name their OS ("al2", "al2023") and take both from abiscan's data;
    # captured profiles embed what was read from the real system.
    os_id: str = ""
    system: SystemInventory | None = None
    capi: CApiExports | None = None

    def inventory(self) -> SystemInventory:
        """The system libraries the dynamic-linker simulation sees on this target."""
        if self.system is not None:
            return self.system
        minor = self.python_version if self.implementation == "cpython" else None
        if self.os_id:
            try:
                return builtin_inventory(self.os_id, self.arch, minor)
            except InventoryError:
                pass
        return generic_glibc_inventory(self.libc_version, self.arch)

    def capi_exports(self) -> CApiExports | None:
        """The interpreter's exported C API, or None when abiscan has no data for it."""
        if self.capi is not None:
            return self.capi
        if self.abiflags:
            return None  # debug and free-threaded builds export other symbols
        return builtin_exports(self.python_version)

    @property
    def python(self) -> str:
        return f"{self.python_version[0]}.{self.python_version[1]}"

    @property
    def free_threaded(self) -> bool:
        return "t" in self.abiflags

    @property
    def soabi(self) -> str:
        """CPython's SOABI, e.g. ``cpython-312-x86_64-linux-gnu``."""
        major, minor = self.python_version
        return f"cpython-{major}{minor}{self.abiflags}-{self.multiarch}"

    @property
    def elf_class(self) -> int:
        return 64 if self.arch in ("x86_64", "aarch64", "ppc64le", "s390x") else 32

    @property
    def lambda_arch(self) -> str:
        return "arm64" if self.arch == "aarch64" else self.arch

    def describe(self) -> str:
        return (
            f"CPython {self.python}{self.abiflags} {self.arch}, "
            f"{self.os_name} ({self.libc} {self.libc_version})"
        )

    def to_dict(self, *, embed: bool = True) -> dict[str, Any]:
        """The profile as JSON-ready data.

        With ``embed=False`` a captured system inventory and C-API list are
        summarised (name, counts, provenance) instead of listed in full: what
        a report needs to say which target it was made for.
        """
        data = asdict(replace(self, system=None, capi=None))
        data["python_version"] = self.python
        data["system"] = None
        data["capi"] = None
        if self.system is not None:
            data["system"] = (
                self.system.to_dict()
                if embed
                else {
                    "name": self.system.name,
                    "libraries": len(self.system.libraries),
                    "complete": self.system.complete,
                    "sources": list(self.system.sources),
                }
            )
        if self.capi is not None:
            data["capi"] = (
                self.capi.to_dict()
                if embed
                else {
                    "version": f"{self.capi.version[0]}.{self.capi.version[1]}",
                    "certainty": self.capi.certainty,
                    "provenance": self.capi.provenance,
                    "symbols": len(self.capi.symbols),
                }
            )
        for key in ("extension_suffixes", "sys_path", "ld_library_path", "sources", "notes"):
            data[key] = list(data[key])
        return {"schema_version": TARGET_SCHEMA_VERSION, **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Target:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        missing = {
            "name",
            "python_version",
            "arch",
            "multiarch",
            "extension_suffixes",
            "sys_path",
            "ld_library_path",
            "libc",
            "libc_version",
            "os_name",
        } - values.keys()
        if missing:
            raise TargetError(f"target is missing {', '.join(sorted(missing))}")
        values["python_version"] = parse_python_version(str(values["python_version"]))
        values["arch"] = normalise_arch(str(values["arch"]))
        for key in ("extension_suffixes", "sys_path", "ld_library_path", "sources", "notes"):
            if key in values:
                if not isinstance(values[key], Sequence) or isinstance(values[key], str):
                    raise TargetError(f"target field {key!r} must be a list of strings")
                values[key] = tuple(str(v) for v in values[key])
        if values.get("ld_so_flavor", "upstream") not in ("upstream", "debian"):
            raise TargetError("target field 'ld_so_flavor' must be 'upstream' or 'debian'")
        try:
            if values.get("system") is not None:
                values["system"] = SystemInventory.from_dict(values["system"])
            if values.get("capi") is not None:
                values["capi"] = CApiExports.from_dict(values["capi"])
        except (InventoryError, KeyError, TypeError, ValueError) as exc:
            raise TargetError(f"bad system data in target: {exc}") from None
        return cls(**values)


def marker_environment(target: Target) -> dict[str, str]:
    """PEP 508 marker values on the target (the patch level is unknown: ``.0`` stands in)."""
    py = target.python
    return {
        "implementation_name": "cpython",
        "implementation_version": f"{py}.0",
        "os_name": "posix",
        "platform_machine": target.arch,
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": f"{py}.0",
        "platform_python_implementation": "CPython",
        "python_version": py,
        "sys_platform": "linux",
        "extra": "",
    }


def normalise_arch(arch: str) -> str:
    try:
        return _ARCH_ALIASES[arch.lower()]
    except KeyError:
        raise TargetError(
            f"unknown architecture {arch!r} (expected one of x86_64, arm64)"
        ) from None


def parse_python_version(text: str) -> tuple[int, int]:
    # Two digits at most: "3.1000000000000000000000000" is not a version to plan for.
    match = re.fullmatch(r"(?:python)?3\.(\d{1,2})(?:\.\d{1,3})?", text.strip())
    if not match:
        raise TargetError(f"not a CPython 3 version: {text!r} (expected e.g. 3.12)")
    return (3, int(match.group(1)))


def _sys_path(major: int, minor: int, runtime_first: bool) -> tuple[str, ...]:
    ver = f"{major}.{minor}"
    stdlib = (
        f"/var/lang/lib/python{major}{minor}.zip",
        f"/var/lang/lib/python{ver}",
        f"/var/lang/lib/python{ver}/lib-dynload",
    )
    site = f"/var/lang/lib/python{ver}/site-packages"
    head = ("/var/task", f"/opt/python/lib/python{ver}/site-packages", "/opt/python")
    if runtime_first:
        return (*head, "/var/runtime", *stdlib, site)
    return (*head, site, "/var/runtime", *stdlib)


def extension_suffixes(
    version: tuple[int, int], multiarch: str, abiflags: str = ""
) -> tuple[str, ...]:
    """``importlib.machinery.EXTENSION_SUFFIXES`` of a Linux CPython build."""
    major, minor = version
    tagged = f".cpython-{major}{minor}{abiflags}-{multiarch}.so"
    if "t" in abiflags:
        # A free-threaded build (3.13t, 3.14t) does not load abi3 modules: the
        # stable ABI of those versions assumes the GIL.
        return (tagged, ".so")
    return (tagged, ".abi3.so", ".so")


@cache
def _runtime_table() -> dict[str, Any]:
    table: dict[str, Any] = read_json("lambda_runtimes.json")
    return table


def _build(
    *,
    name: str,
    version: tuple[int, int],
    arch: str,
    libc_version: str,
    os_name: str,
    runtime: str | None,
    abiflags: str = "",
    os_id: str = "",
    sources: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> Target:
    table = _runtime_table()
    multiarch = f"{arch}-linux-gnu"
    runtime_first = version < tuple(table["runtime_before_site_packages_until"])
    return Target(
        name=name,
        python_version=version,
        arch=arch,
        multiarch=multiarch,
        extension_suffixes=extension_suffixes(version, multiarch, abiflags),
        sys_path=_sys_path(*version, runtime_first=runtime_first),
        ld_library_path=tuple(table["ld_library_path"]),
        libc="glibc",
        libc_version=libc_version,
        os_name=os_name,
        abiflags=abiflags,
        runtime=runtime,
        site_packages=f"/opt/python/lib/python{version[0]}.{version[1]}/site-packages",
        max_layers=int(table["max_layers"]),
        max_unzipped_bytes=int(table["max_unzipped_bytes"]),
        sources=tuple(sources),
        notes=tuple(notes),
        os_id=os_id,
    )


def runtime_names() -> list[str]:
    return list(_runtime_table()["runtimes"])


def micro_floor(runtime: str | None) -> tuple[int, str] | None:
    """The lowest micro version of CPython a Lambda runtime may run, and what says so
    (``lambda_runtimes.json``; ``likely`` at best: AWS does not publish it), or None."""
    entry = _runtime_table()["runtimes"].get(runtime or "", {}).get("micro_floor")
    if entry is None:
        return None
    return int(entry["micro"]), str(entry["says"])


def builtin_target(runtime: str, arch: str = "x86_64") -> Target:
    """The built-in profile of a Lambda runtime, e.g. ``builtin_target("python3.12", "arm64")``."""
    table = _runtime_table()
    entry = table["runtimes"].get(runtime)
    if entry is None:
        raise TargetError(
            f"unknown runtime {runtime!r}; built-in runtimes: {', '.join(table['runtimes'])}"
        )
    os_entry = table["operating_systems"][entry["os"]]
    norm = normalise_arch(arch)
    return _build(
        name=f"{runtime}-{'arm64' if norm == 'aarch64' else norm}",
        version=parse_python_version(runtime),
        arch=norm,
        libc_version=os_entry["glibc"],
        os_name=os_entry["name"],
        runtime=runtime,
        os_id=entry["os"],
        sources=tuple(table["sources"]) + tuple(os_entry.get("sources", ())),
        notes=tuple(os_entry.get("notes", ())),
    )


def builtin_targets() -> list[Target]:
    return [
        builtin_target(runtime, arch) for runtime in runtime_names() for arch in ("x86_64", "arm64")
    ]


def custom_target(
    python: str, arch: str = "x86_64", glibc: str = "2.34", *, free_threaded: bool = False
) -> Target:
    """A target from parameters that keeps the Lambda layout of layers and function code."""
    version = parse_python_version(python)
    if not re.fullmatch(r"\d+\.\d+", glibc):
        raise TargetError(f"not a glibc version: {glibc!r} (expected e.g. 2.34)")
    if free_threaded and version < (3, 13):
        raise TargetError(
            f"there is no free-threaded build of CPython {version[0]}.{version[1]}"
            " (free threading starts with 3.13)"
        )
    norm = normalise_arch(arch)
    abiflags = "t" if free_threaded else ""
    return _build(
        name=f"custom-{version[0]}.{version[1]}{abiflags}-{norm}-glibc{glibc}",
        version=version,
        arch=norm,
        libc_version=glibc,
        os_name="custom Linux",
        runtime=None,
        abiflags=abiflags,
        notes=("custom target: Lambda layout with the given Python, architecture and glibc",),
    )


def load_target(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> Target:
    """A target profile from a JSON file, validated against ``data/target.schema.json``.

    The file must be a regular file within the ``target_bytes`` budget; every
    problem is a :class:`TargetError` naming the file and the field.
    """
    path = Path(path)
    try:
        with open(path, "rb", opener=_nonblocking) as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise TargetError(f"{path}: not a regular file")
            raw = fh.read(limits.target_bytes + 1)
    except OSError as exc:
        raise TargetError(f"{path}: cannot read target file: {exc.strerror or exc}") from None
    from abiscan.target.schema import SchemaError, parse_profile  # a target file only

    try:
        data = parse_profile(raw, limits)
    except SchemaError as exc:
        raise TargetError(f"{path}: {exc}") from None
    try:
        return Target.from_dict(data)
    except TargetError as exc:
        raise TargetError(f"{path}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise TargetError(f"{path}: bad target profile: {exc}") from None


def _nonblocking(path: str, flags: int) -> int:
    # A FIFO given as a profile must not block the command forever.
    return os.open(path, flags | os.O_NONBLOCK)
