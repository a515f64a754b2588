"""A synthetic fleet for the audit tests: stacks of small layer zips, and test runners.

Runners live here, in a module of their own, so that worker processes can import
them by name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from abiscan.fleet import CellTask, scan_cell
from abiscan.testing.elf_writer import build_shared_object

from helpers import write_zip

TARGETS = ["python3.8-x86_64", "python3.12-x86_64", "python3.12-arm64", "python3.13-x86_64"]


def _ext(name: str, machine: str = "x86_64") -> bytes:
    return build_shared_object(machine=machine, exports=[f"PyInit_{name}"])


def stack_members(i: int, variant: str = "") -> list[dict[str, bytes | str]]:
    """The layers of stack ``i``: five shapes, each with names of its own."""
    pkg = f"pkg{i:03d}"
    pure = {f"python/{pkg}/__init__.py": f"VALUE = {i!r}  # {variant}\n"}
    shape = i % 5
    if shape == 0:  # pure Python: loads everywhere
        return [pure]
    if shape == 1:  # built for CPython 3.8 only: never tried elsewhere
        return [{**pure, f"python/{pkg}/_speed.cpython-38-x86_64-linux-gnu.so": _ext("_speed"),
                 f"python/{pkg}/__init__.py": "from . import _speed\n"}]
    if shape == 2:  # abi3 for x86_64: the wrong machine on arm64
        return [{f"python/{pkg}/__init__.py": "from . import _core\n",
                 f"python/{pkg}/_core.abi3.so": _ext("_core")}]
    if shape == 3:  # two layers; the second brings a CPython 3.12 extension
        return [pure, {f"python/ext{i:03d}.cpython-312-x86_64-linux-gnu.so": _ext(f"ext{i:03d}")}]
    return [pure, {f"python/lib{i:03d}/__init__.py": "import json\n"}]


def build_fleet(root: Path, count: int = 50, *, targets: list[str] | None = None) -> Path:
    """Write ``count`` stacks and their manifest (JSON) under ``root``; the manifest's path."""
    stacks: list[dict[str, Any]] = []
    for i in range(count):
        write_stack(root, i)
        n = len(stack_members(i))
        stacks.append({"name": f"stack-{i:03d}",
                       "layers": [f"layers/s{i:03d}-{k}.zip" for k in range(n)]})
    manifest = root / "audit.json"
    manifest.write_text(json.dumps({"targets": targets or TARGETS, "stacks": stacks}))
    return manifest


def write_stack(root: Path, i: int, variant: str = "") -> None:
    for k, members in enumerate(stack_members(i, variant)):
        write_zip(root / "layers" / f"s{i:03d}-{k}.zip", members)


def _first_attempt(task: CellTask) -> bool:
    """True the first time this cell is seen (a marker file per cell, across processes)."""
    marker = Path(os.environ["ABISCAN_TEST_MARKERS"]) / f"{task.stack.name}@{task.target}"
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return False
    return True


def flaky_runner(task: CellTask) -> dict[str, Any]:
    """Fails the first attempt of every cell of stacks whose number ends in 1."""
    if task.stack.name.endswith("1") and _first_attempt(task):
        raise RuntimeError("flaky on purpose")
    return scan_cell(task)


def broken_runner(task: CellTask) -> dict[str, Any]:
    """Always fails for stack-002: retried once, then an internal error."""
    if task.stack.name == "stack-002":
        raise RuntimeError("broken on purpose")
    return scan_cell(task)


def dying_runner(task: CellTask) -> dict[str, Any]:
    """Kills its worker process the first time it scans stack-001 on python3.12-x86_64."""
    if (task.stack.name, task.target) == ("stack-001", "python3.12-x86_64") and \
            _first_attempt(task):
        os._exit(17)
    return scan_cell(task)


def lost_runner(task: CellTask) -> dict[str, Any] | None:
    """Returns nothing for stack-001, as Dask does for a result lost with its worker."""
    if task.stack.name == "stack-001":
        return None
    return scan_cell(task)
