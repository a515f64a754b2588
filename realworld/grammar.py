"""``python -m realworld grammar``: abiscan's target-grammar verdict against real
``compile()`` on every ``.py`` of the manifest's wheels, for CPython 3.8 to 3.13.

Every x86_64 wheel the manifest pins (each project, each CPython) and every wheel of
the runtime section is read; identical sources (by SHA-256) are checked once. Each
interpreter compiles its share in one process per chunk of wheels (not one per file),
and abiscan's ``check_syntax`` gives its verdict for that interpreter's version in this
process. A verdict agrees when both say the file compiles, or both say it does not on
the same line. abiscan's ``unknown`` for a target newer than the interpreter running it
is counted apart (it is the honest answer there), not as agreement.

The real results are cached per interpreter and source digest
(``<cache>/grammar/<version>.json``): a second run only runs abiscan again.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from realworld.pypi import PYTHONS, WheelFile, download
from realworld.truth import find_interpreter

__all__ = ["GrammarResult", "check_grammar", "manifest_wheels"]

# Python 3.8-compatible: runs in every interpreter. Warnings (invalid escapes) are not
# errors at import, so they are silenced here.
_COMPILE = r"""
import json, sys, warnings, zipfile
warnings.simplefilter("ignore")
out = {}
for wheel, members in json.loads(sys.stdin.read()).items():
    with zipfile.ZipFile(wheel) as zf:
        for member, key in members:
            try:
                compile(zf.read(member), member, "exec", dont_inherit=True)
            except SyntaxError as exc:
                out[key] = exc.lineno or 0
            except (ValueError, RecursionError, MemoryError) as exc:
                out[key] = type(exc).__name__
            else:
                out[key] = None
sys.stdout.write(json.dumps(out))
"""
_CHUNK = 40  # wheels per interpreter process


@dataclass
class GrammarResult:
    """Counts per target version, and each disagreement."""

    files: int = 0  # .py members read
    unique: int = 0  # distinct sources checked
    wheels: int = 0
    checked: dict[str, int] = field(default_factory=dict)  # per version: sources compared
    real_errors: dict[str, int] = field(default_factory=dict)
    newer_unknown: dict[str, int] = field(default_factory=dict)
    disagreements: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "unique": self.unique, "wheels": self.wheels,
                "checked": self.checked, "real_errors": self.real_errors,
                "newer_unknown": self.newer_unknown, "disagreements": self.disagreements,
                "elapsed": self.elapsed}


def manifest_wheels(manifest: Mapping[str, Any]) -> list[WheelFile]:
    """The x86_64 file of every pin and every runtime wheel, once each, by name."""
    out: dict[str, WheelFile] = {}
    for name, entry in manifest["projects"].items():
        for files in entry["pins"].values():
            raw = files["x86_64"]
            out[raw["filename"]] = WheelFile(project=name, version=raw["version"],
                                             filename=raw["filename"], sha256=raw["sha256"],
                                             size=raw["size"])
    for pins in manifest.get("runtime", {}).values():
        for name, raw in pins.items():
            out[raw["filename"]] = WheelFile(project=name, version=raw["version"],
                                             filename=raw["filename"], sha256=raw["sha256"],
                                             size=raw["size"])
    return [out[k] for k in sorted(out)]


def _members(path: Path, seen: set[str]) -> Iterator[tuple[str, str, bytes]]:
    """(member, digest, source) of the wheel's .py files not seen before."""
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            if not member.endswith(".py"):
                continue
            source = zf.read(member)
            key = hashlib.sha256(source).hexdigest()
            if key in seen:
                continue
            seen.add(key)
            yield member, key, source


def _real(python: str, todo: Mapping[str, Sequence[tuple[str, str]]], cache: Path
          ) -> dict[str, Any]:
    """compile() in the CPython ``python`` for the members of ``todo`` not cached."""
    path = cache / "grammar" / f"{python}.json"
    known: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    missing = {w: [(m, k) for m, k in ms if k not in known] for w, ms in todo.items()}
    missing = {w: ms for w, ms in missing.items() if ms}
    if missing:
        interp = find_interpreter(python)
        proc = subprocess.run([str(interp.executable), "-I", "-S", "-B", "-c", _COMPILE],
                              input=json.dumps(missing), capture_output=True, text=True,
                              timeout=3600, check=True)
        known.update(json.loads(proc.stdout))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(known))
        tmp.replace(path)
    return {k: known[k] for ms in todo.values() for _, k in ms}


def _predicted(source: bytes, member: str, target: tuple[int, int]) -> object:
    from abiscan.simulate.python.grammar import check_syntax

    _, verdict = check_syntax(source, member, target)
    if verdict is None:
        return None
    return verdict.line if verdict.error is not None else "unknown"


def check_grammar(manifest: Mapping[str, Any], cache: Path, jobs: int = 2,
                  budget: float | None = None, limit: int | None = None,
                  progress: Callable[[GrammarResult], None] | None = None) -> GrammarResult:
    """Compare over the manifest's wheels (the first ``limit`` by name; stop starting
    chunks after ``budget`` minutes; ``progress`` is called after each chunk)."""
    from abiscan.simulate.python.grammar import RUNNING

    started = time.monotonic()
    wheels = manifest_wheels(manifest)[:limit]
    paths = download(wheels, cache)
    result = GrammarResult()
    seen: set[str] = set()
    pythons = list(PYTHONS)
    for at in range(0, len(wheels), _CHUNK):
        if budget is not None and time.monotonic() - started > budget * 60:
            break
        chunk = wheels[at:at + _CHUNK]
        todo: dict[str, list[tuple[str, str]]] = {}
        sources: dict[str, tuple[str, bytes]] = {}
        for w in chunk:
            path = paths[w.filename]
            result.wheels += 1
            with zipfile.ZipFile(path) as zf:
                result.files += sum(n.endswith(".py") for n in zf.namelist())
            for member, key, source in _members(path, seen):
                todo.setdefault(str(path), []).append((member, key))
                sources[key] = (f"{w.filename}/{member}", source)
        result.unique += len(sources)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            real = dict(zip(pythons, pool.map(_real, pythons, [todo] * len(pythons),
                                              [cache] * len(pythons)), strict=True))
        for python in pythons:
            target = (3, int(python.split(".")[1]))
            for key, (name, source) in sources.items():
                _compare(result, python, target, real[python][key],
                         _predicted(source, name, target), name, target > RUNNING)
        result.elapsed = time.monotonic() - started
        if progress is not None:
            progress(result)
    result.elapsed = time.monotonic() - started
    return result


def _compare(result: GrammarResult, python: str, target: tuple[int, int], real: object,
             predicted: object, name: str, newer: bool) -> None:
    result.checked[python] = result.checked.get(python, 0) + 1
    if real is not None:
        result.real_errors[python] = result.real_errors.get(python, 0) + 1
    if predicted == "unknown" and newer:
        result.newer_unknown[python] = result.newer_unknown.get(python, 0) + 1
        return
    if predicted != real:
        result.disagreements.append(
            f"{name} on {python}: compile() says {real!r}, abiscan {predicted!r}")
