"""``python -m realworld resolve``: pin every project of ``projects.json`` and the
dependencies they need into ``manifest.json`` (version, file name, SHA-256, size).

For each CPython 3.8-3.13 a project gets the newest release with a wheel pip would
install on that Lambda runtime on x86_64 (manylinux up to the runtime's glibc), and
from the same release the aarch64, manylinux_2_27+ and musllinux files where
published. Dependencies (``Requires-Dist`` evaluated for the runtime) are read from
the downloaded x86_64 wheels and pinned the same way, in the stack that first needs
them.
"""

from __future__ import annotations

import datetime
import json
import zipfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from email.parser import Parser
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from realworld.paths import MANIFEST, PROJECTS, cache_dir
from realworld.pypi import PYTHONS, WheelFile, choose, download, project_json

__all__ = ["marker_environment", "repin_runtime", "requirements_of", "resolve"]


def marker_environment(python: str, arch: str = "x86_64") -> dict[str, str]:
    env = {k: str(v) for k, v in default_environment().items()}
    env.update(python_version=python, python_full_version=PYTHONS[python],
               sys_platform="linux", platform_system="Linux", os_name="posix",
               platform_machine=arch, implementation_name="cpython",
               platform_python_implementation="CPython", implementation_version=PYTHONS[python],
               extra="")
    return env


def requirements_of(wheel: Path, python: str) -> list[Requirement]:
    """The wheel's ``Requires-Dist`` that apply on ``python`` without extras."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist()
                    if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(name).decode("utf-8", "replace"))
    env = marker_environment(python)
    out = []
    for line in meta.get_all("Requires-Dist") or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is None or req.marker.evaluate(env):
            out.append(req)
    return out


Constraints = dict[tuple[str, str], list[SpecifierSet]]


def _pins(name: str, cache: Path, constraints: Constraints) -> dict[str, dict[str, WheelFile]]:
    data = project_json(name, cache)
    out: dict[str, dict[str, WheelFile]] = {}
    for python in PYTHONS:
        chosen = choose(data, python, constraints.get((name, python), []))
        if chosen is not None:
            out[python] = {str(k): v for k, v in chosen.items()}
    return out


def resolve(jobs: int = 4, rounds: int = 6) -> dict[str, Any]:
    """Resolve ``projects.json`` into the manifest (and write it).

    Each project first gets its newest release; where a dependent's ``Requires-Dist``
    excludes the pinned version, the next round pins the newest release that every
    dependent accepts, until no conflict is left (or ``rounds`` run out: the remaining
    conflicts are written into the manifest, and their imports may fail for real).
    """
    constraints: Constraints = _given_constraints()
    for _ in range(rounds):
        result, found = _resolve_once(jobs, constraints)
        fresh = False
        for key, spec in found:
            known = constraints.setdefault(key, [])
            if spec not in known:
                known.append(spec)
                fresh = True
        if not fresh:
            break
    return result


def repin_runtime() -> dict[str, Any]:
    """Pin the runtime's own distributions again (``realworld.runtime``), leaving the
    projects' pins as they are."""
    from realworld.runtime import pin_runtime

    manifest: dict[str, Any] = json.loads(MANIFEST.read_text())
    manifest["runtime"] = pin_runtime(cache_dir())
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    runtime: dict[str, Any] = manifest["runtime"]
    return runtime


def _given_constraints() -> Constraints:
    """The constraints ``projects.json`` states (what the resolver cannot work out alone)."""
    spec = json.loads(PROJECTS.read_text()).get("constraints", {}).get("projects", {})
    out: Constraints = {}
    for name, by_python in spec.items():
        for python in PYTHONS:
            text = by_python.get(python, by_python.get("*"))
            if text:
                out[(canonicalize_name(name), python)] = [SpecifierSet(text)]
    return out


def _resolve_once(jobs: int, constraints: Constraints
                  ) -> tuple[dict[str, Any], list[tuple[tuple[str, str], SpecifierSet]]]:
    cache = cache_dir()
    spec = json.loads(PROJECTS.read_text())
    stacks: dict[str, list[str]] = {
        s: [canonicalize_name(n) for n in names] for s, names in spec["stacks"].items()}
    categories: dict[str, list[str]] = {}
    for cat, names in spec["categories"].items():
        for n in names:
            categories.setdefault(canonicalize_name(n), []).append(cat)
    home: dict[str, str] = {}
    for s, names in stacks.items():
        for n in names:
            home.setdefault(n, s)
    projects: dict[str, dict[str, Any]] = {}
    unresolved: dict[str, str] = {}
    reqs: dict[tuple[str, str], list[Requirement]] = {}
    queue = list(home)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while queue:
            batch = [n for n in dict.fromkeys(queue) if n not in projects and n not in unresolved]
            queue = []
            for name, pins in zip(batch, pool.map(lambda n: _pins(n, cache, constraints), batch),
                                  strict=True):
                if not pins:
                    unresolved[name] = "no wheel for any CPython 3.8-3.13 on Linux x86_64"
                    continue
                projects[name] = {"home": home[name], "categories": categories.get(name, []),
                                  "pins": pins, "requires": {}}
            _fetch_batch([projects[n] for n in batch if n in projects], cache)
            for name in batch:
                if name in projects:
                    queue += _requires(name, projects, home, cache, reqs)
    conflicts, found = _conflicts(projects, reqs)
    return _write(stacks, projects, unresolved, conflicts, spec), found


def _fetch_batch(entries: list[dict[str, Any]], cache: Path) -> None:
    """Download the x86_64 wheels of a round in one pip call per Python (pip is slow to start)."""
    by_python: dict[str, dict[str, WheelFile]] = {}
    for entry in entries:
        for python, files in entry["pins"].items():
            by_python.setdefault(python, {})[files["x86_64"].filename] = files["x86_64"]
    files = {w.filename: w for wheels in by_python.values() for w in wheels.values()}
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda w: download([w], cache), files.values()))


def _requires(name: str, projects: dict[str, dict[str, Any]], home: dict[str, str],
              cache: Path, reqs: dict[tuple[str, str], list[Requirement]]) -> list[str]:
    """Record ``name``'s dependencies per Python; return the ones not pinned yet."""
    new: list[str] = []
    entry = projects[name]
    for python, files in entry["pins"].items():
        wheel = files["x86_64"]
        path = download([wheel], cache)[wheel.filename]
        reqs[(name, python)] = requirements_of(path, python)
        deps = sorted({canonicalize_name(r.name) for r in reqs[(name, python)]})
        for dep in deps:
            home.setdefault(dep, entry["home"])
            if dep not in projects:
                new.append(dep)
        entry["requires"][python] = deps
    return new


def _conflicts(projects: Mapping[str, dict[str, Any]],
               reqs: Mapping[tuple[str, str], list[Requirement]]
               ) -> tuple[list[str], list[tuple[tuple[str, str], SpecifierSet]]]:
    """Where a dependent excludes the version pinned for its dependency."""
    text: list[str] = []
    found: list[tuple[tuple[str, str], SpecifierSet]] = []
    for (name, python), rs in sorted(reqs.items()):
        for req in rs:
            dep = canonicalize_name(req.name)
            pins = projects.get(dep, {}).get("pins", {}).get(python)
            if pins is None:
                continue
            pinned = pins["x86_64"].version
            if not req.specifier.contains(pinned, prereleases=True):
                found.append(((dep, python), req.specifier))
                version = projects[name]["pins"][python]["x86_64"].version
                text.append(f"{name} {version} on {python} requires {req}; "
                            f"pinned {dep} {pinned}")
    return text, found


def _write(stacks: Mapping[str, list[str]], projects: Mapping[str, dict[str, Any]],
           unresolved: Mapping[str, str], conflicts: list[str], spec: Mapping[str, Any]
           ) -> dict[str, Any]:
    manifest = {
        "schema": 1,
        "comment": "Generated by `python -m realworld resolve` from projects.json; "
                   "each file is pinned by version and SHA-256.",
        "resolved": datetime.date.today().isoformat(),
        "pythons": list(PYTHONS),
        "stacks": dict(stacks),
        "skip_modules": spec.get("skip_modules", {}),
        "projects": {
            name: {
                "home": p["home"],
                "categories": p["categories"],
                "pins": {py: {v: w.to_dict() for v, w in files.items()}
                         for py, files in sorted(p["pins"].items(),
                                                 key=lambda kv: int(kv[0].split(".")[1]))},
                "requires": p["requires"],
            }
            for name, p in sorted(projects.items())
        },
        "unresolved": dict(sorted(unresolved.items())),
        "conflicts": sorted(set(conflicts)),
    }
    from realworld.runtime import pin_runtime

    manifest["runtime"] = pin_runtime(cache_dir())
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    return manifest
