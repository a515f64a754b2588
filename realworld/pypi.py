"""PyPI: project metadata (the JSON API), wheel choice by target tags, verified downloads."""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

__all__ = [
    "PYTHONS",
    "Variant",
    "WheelFile",
    "best_wheel",
    "choose",
    "download",
    "glibc_of",
    "project_json",
    "target_tags",
]

# The patch levels of the interpreters the ground truth runs (requires-python is checked
# against them).
PYTHONS: dict[str, str] = {
    "3.8": "3.8.18", "3.9": "3.9.18", "3.10": "3.10.13",
    "3.11": "3.11.7", "3.12": "3.12.1", "3.13": "3.13.0",
}
# x86_64 clean, aarch64 clean, a manylinux_2_27+ build where one exists, musllinux.
Variant = Literal["x86_64", "aarch64", "glibc228", "musl"]
_JSON_MAX_AGE = 7 * 24 * 3600


@dataclass(frozen=True)
class WheelFile:
    """One pinned file: where it comes from and the digest it must have."""

    project: str
    version: str
    filename: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "filename": self.filename, "sha256": self.sha256,
                "size": self.size}


def glibc_of(python: str) -> int:
    """The glibc minor of the Lambda runtime: AL2 (2.26) up to 3.11, AL2023 (2.34) after."""
    return 26 if int(python.split(".")[1]) <= 11 else 34


def _platforms(arch: str, libc: str, glibc_minor: int) -> list[str]:
    if libc == "musl":
        return [f"musllinux_1_{n}_{arch}" for n in (2, 1, 0)]
    out: list[str] = []
    for n in range(glibc_minor, 4, -1):
        out.append(f"manylinux_2_{n}_{arch}")
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}.get(n)
        if legacy and (n == 17 or arch == "x86_64"):
            out.append(f"{legacy}_{arch}")
    out.append(f"linux_{arch}")
    return out


def target_tags(python: str, arch: str, libc: str = "glibc", glibc_minor: int | None = None
                ) -> list[Tag]:
    """Tags a CPython ``python`` on ``arch`` accepts, most preferred first (as pip orders them)."""
    version = tuple(int(p) for p in python.split("."))
    glibc = glibc_minor if glibc_minor is not None else glibc_of(python)
    plats = _platforms(arch, libc, glibc)
    abi = f"cp{version[0]}{version[1]}"
    tags = list(cpython_tags(version, abis=[abi], platforms=plats))
    tags += list(compatible_tags(version, interpreter=abi, platforms=plats))
    return list(dict.fromkeys(tags))


def project_json(name: str, cache: Path) -> dict[str, Any]:
    """The project's PyPI JSON (all releases), cached for a week."""
    path = cache / "pypi-json" / f"{canonicalize_name(name)}.json"
    if path.is_file() and time.time() - path.stat().st_mtime < _JSON_MAX_AGE:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    url = f"{_json_api()}{canonicalize_name(name)}/json"
    with urllib.request.urlopen(url, timeout=120) as resp:
        raw = resp.read()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    data = json.loads(raw)
    return data


def _json_api() -> str:
    """The JSON API of the index pip uses by default (overridable); never a host of our own."""
    env = os.environ.get("ABISCAN_REALWORLD_JSON_API")
    if env:
        return env.rstrip("/") + "/"
    from pip._internal.models.index import PyPI  # the ordinary client's own notion of the index

    return str(PyPI.pypi_url).rstrip("/") + "/"


def _versions(data: Mapping[str, Any]) -> list[tuple[Version, list[dict[str, Any]]]]:
    out = []
    for text, files in data.get("releases", {}).items():
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if version.is_prerelease or version.is_devrelease:
            continue
        live = [f for f in files if not f.get("yanked") and f["packagetype"] == "bdist_wheel"]
        if live:
            out.append((version, live))
    out.sort(key=lambda item: item[0], reverse=True)
    return out


def _allows(file: Mapping[str, Any], python: str) -> bool:
    spec = file.get("requires_python") or ""
    try:
        return not spec or SpecifierSet(spec).contains(PYTHONS[python], prereleases=True)
    except InvalidSpecifier:
        return True


def _rank(filename: str, order: Mapping[Tag, int]) -> int | None:
    try:
        _, _, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return None
    ranks = [order[t] for t in tags if t in order]
    return min(ranks) if ranks else None


def best_wheel(files: Sequence[Mapping[str, Any]], tags: Sequence[Tag], python: str
               ) -> Mapping[str, Any] | None:
    """The file pip would pick among ``files`` for ``tags`` (first preferred), or None."""
    order = {t: i for i, t in enumerate(tags)}
    ranked = []
    for f in files:
        rank = _rank(f["filename"], order)
        if rank is not None and _allows(f, python):
            ranked.append((rank, f["filename"], f))
    return min(ranked, key=lambda r: (r[0], r[1]))[2] if ranked else None


def choose(data: Mapping[str, Any], python: str, allowed: Sequence[SpecifierSet] = ()
           ) -> dict[Variant, WheelFile] | None:
    """The newest release (within ``allowed``) with a wheel for ``python`` on x86_64 (the
    runtime's glibc), and
    from that same release the aarch64, manylinux_2_27+ and musllinux files where published."""
    name = canonicalize_name(data["info"]["name"])
    x86 = target_tags(python, "x86_64")
    for version, files in _versions(data):
        if not all(spec.contains(version, prereleases=True) for spec in allowed):
            continue
        chosen = best_wheel(files, x86, python)
        if chosen is None:
            continue
        out: dict[Variant, WheelFile] = {"x86_64": _pin(name, str(version), chosen)}
        arm = best_wheel(files, target_tags(python, "aarch64"), python)
        if arm is not None:
            out["aarch64"] = _pin(name, str(version), arm)
        newer = best_wheel(files, target_tags(python, "x86_64", glibc_minor=28), python)
        if newer is not None and _rank(newer["filename"], {t: 0 for t in x86}) is None:
            out["glibc228"] = _pin(name, str(version), newer)
        musl = best_wheel(files, target_tags(python, "x86_64", libc="musl"), python)
        if musl is not None:
            out["musl"] = _pin(name, str(version), musl)
        return out
    return None


def _pin(name: str, version: str, f: Mapping[str, Any]) -> WheelFile:
    return WheelFile(project=name, version=version, filename=f["filename"],
                     sha256=f["digests"]["sha256"], size=int(f["size"]))


def download(wheels: Sequence[WheelFile], cache: Path) -> dict[str, Path]:
    """The wheels in the cache, downloaded where absent from the address the index's JSON
    API gives for the file; every file's SHA-256 checked against the manifest either way."""
    folder = cache / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for w in wheels:
        path = folder / w.filename
        if not path.is_file() or _sha256(path) != w.sha256:
            _fetch(w, path, cache)
        out[w.filename] = path
    return out


def _fetch(wheel: WheelFile, path: Path, cache: Path) -> None:
    data = project_json(wheel.project, cache)
    base = f"{_json_api()}{wheel.project}/json"
    urls = [urljoin(base, f["url"]) for f in data["releases"].get(wheel.version, [])
            if f["filename"] == wheel.filename]
    if not urls:
        raise RuntimeError(f"{wheel.filename} is not in the index's JSON for {wheel.project}")
    part = path.with_name(path.name + ".part")
    with urllib.request.urlopen(urls[0], timeout=600) as resp, part.open("wb") as out:
        while chunk := resp.read(1 << 20):
            out.write(chunk)
    digest = _sha256(part)
    if digest != wheel.sha256:
        part.unlink()
        raise RuntimeError(f"{wheel.filename}: sha256 {digest}, manifest says {wheel.sha256}")
    part.replace(path)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
