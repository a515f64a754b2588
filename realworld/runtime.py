"""What the Lambda runtime itself puts on ``sys.path`` (boto3 and company), for the truth.

A real function imports the runtime's own boto3, botocore and their dependencies when
no layer carries them (``/var/runtime`` up to python3.10, the interpreter's
``/var/lang/lib/python3.X/site-packages`` after). The ground truth must too, or a
layer that relies on them is wrongly recorded as failing.

Which distributions, and at which version, come from abiscan's own runtime data
(``abiscan/target/data/runtime_packages.json``, with its sources):

- only those the data says are present with certainty ``certain`` or ``likely``. A
  ``possible`` one (simplejson on python3.12, awslambdaric on python3.8) is inferred,
  not observed, and is left out;
- at the version the data records for that runtime; where it records none, the version
  it records for the nearest runtime that has one (newer first: the python3.11 listing
  is the only complete one), if the pinned packages' ``Requires-Dist`` accept it, else
  the newest release they accept.

``python -m realworld runtime`` pins these wheels (file name, SHA-256) into the
manifest's ``runtime`` section; the truth unpacks them once into the cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from realworld.layers import build_layer, unpack
from realworld.pypi import PYTHONS, WheelFile, choose, download, project_json

__all__ = ["RuntimeDir", "RuntimeDistribution", "pin_runtime", "runtime_dirs", "runtime_key",
           "runtime_packages_for"]

PRESENT = ("certain", "likely")


@dataclass(frozen=True)
class RuntimeDir:
    """A directory of the runtime's own distributions, and where Lambda has it."""

    location: str  # "/var/runtime" or "/var/lang/lib/python3.X/site-packages"
    path: Path  # its stand-in in the cache


@dataclass(frozen=True)
class RuntimeDistribution:
    name: str
    location: str
    version: str | None  # recorded for this runtime, or None
    certainty: str


def runtime_packages_for(python: str) -> list[RuntimeDistribution]:
    """The distributions abiscan's data says the runtime has (certain or likely)."""
    from abiscan.target.profiles import builtin_target
    from abiscan.target.runtime_packages import runtime_packages

    target = builtin_target(f"python{python}", "x86_64")
    return [RuntimeDistribution(name=p.name, location=p.location, version=p.version,
                    certainty=p.certainty)
            for p in runtime_packages(target) if p.certainty in PRESENT]


def _recorded_elsewhere(name: str, python: str) -> tuple[str, str] | None:
    """(version, runtime) recorded for ``name`` on the nearest runtime, newer first."""
    from abiscan.target.profiles import builtin_target
    from abiscan.target.runtime_packages import runtime_package

    minor = int(python.split(".")[1])
    others = sorted((p for p in PYTHONS if p != python),
                    key=lambda p: (abs(int(p.split(".")[1]) - minor), -int(p.split(".")[1])))
    for other in others:
        found = runtime_package(builtin_target(f"python{other}", "x86_64"), name)
        if found is not None and found.version is not None:
            return found.version, f"python{other}"
    return None


def _pin_one(want: RuntimeDistribution, python: str, cache: Path, accepted: Sequence[SpecifierSet]
             ) -> tuple[WheelFile, str]:
    data = project_json(want.name, cache)
    if want.version is not None:
        chosen = choose(data, python, [SpecifierSet(f"=={want.version}")])
        if chosen is None:
            raise RuntimeError(f"{want.name} {want.version}: no wheel for python{python}")
        return chosen["x86_64"], f"recorded for python{python}"
    elsewhere = _recorded_elsewhere(want.name, python)
    if elsewhere is not None:
        version, where = elsewhere
        spec = SpecifierSet(f"=={version}")
        if all(s.contains(version, prereleases=True) for s in accepted):
            chosen = choose(data, python, [spec])
            if chosen is not None:
                return chosen["x86_64"], f"none recorded; the version recorded for {where}"
    chosen = choose(data, python, list(accepted))
    if chosen is None:
        raise RuntimeError(f"{want.name}: no release for python{python} the others accept")
    return chosen["x86_64"], "none recorded; the newest release the other pins accept"


def pin_runtime(cache: Path) -> dict[str, dict[str, Any]]:
    """The manifest's ``runtime`` section: per CPython, each runtime distribution's wheel,
    where Lambda has it, and why this version."""
    from realworld.resolve import requirements_of

    out: dict[str, dict[str, Any]] = {}
    for python in PYTHONS:
        wanted = runtime_packages_for(python)
        # Recorded versions first: their requirements bound the versions guessed after.
        wanted.sort(key=lambda w: w.version is None)
        accepted: dict[str, list[SpecifierSet]] = {}
        pins: dict[str, Any] = {}
        for want in wanted:
            wheel, why = _pin_one(want, python, cache, accepted.get(want.name, []))
            path = download([wheel], cache)[wheel.filename]
            for req in requirements_of(path, python):
                accepted.setdefault(canonicalize_name(req.name), []).append(req.specifier)
            pins[want.name] = {**wheel.to_dict(), "location": want.location,
                               "certainty": want.certainty, "version_from": why}
        out[python] = dict(sorted(pins.items()))
    return out


def runtime_dirs(manifest: Mapping[str, Any], python: str, cache: Path) -> list[RuntimeDir]:
    """The runtime's distributions for ``python`` unpacked into the cache (once), one
    directory per Lambda location."""
    pins: Mapping[str, Any] = manifest.get("runtime", {}).get(python, {})
    by_location: dict[str, list[WheelFile]] = {}
    for name, raw in sorted(pins.items()):
        by_location.setdefault(raw["location"], []).append(WheelFile(
            project=name, version=raw["version"], filename=raw["filename"],
            sha256=raw["sha256"], size=raw["size"]))
    out: list[RuntimeDir] = []
    for location, wheels in by_location.items():
        paths = download(wheels, cache)
        unpacked = [(unpack(paths[w.filename], w.sha256, cache), w.sha256) for w in wheels]
        layer = build_layer(unpacked, "python", python, cache)
        out.append(RuntimeDir(location=location, path=layer.root / "python"))
    return out


def runtime_key(dirs: Sequence[RuntimeDir]) -> str:
    """Names the runtime directories' contents (their layer directories are content-keyed)."""
    text = ";".join(f"{d.location}={d.path.parent.name}" for d in dirs)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
