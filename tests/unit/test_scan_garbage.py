"""A scan leaves no reference cycles of its own behind.

A cycle holding the simulation (a run of a module's body reached back from
its evaluator; a module's functions bound in the namespace they read as their
globals) kept every program and outcome of a scan alive after it returned,
until the cyclic collector walked them all: 0.2 to 0.3 s after a scan of the
real layer (docs/benchmarks.md), paid by the caller, or at exit. Broken, the
scan's objects are freed by their reference counts as it returns.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from abiscan import api
from tests.helpers import write_zip

_MEMBERS = {
    "python/pkg/__init__.py": (
        "import os\n"
        "from . import helpers\n"
        "def _check(name):\n"
        "    return _known(name)\n"
        "def _known(name):\n"
        "    return name in _NAMES\n"
        "_NAMES = ('a', 'b')\n"
        "class Thing:\n"
        "    def method(self):\n"
        "        return _check('a')\n"
        "if _check('a'):\n"
        "    from .helpers import value\n"
    ),
    "python/pkg/helpers.py": "def twice(x):\n    return 2 * x\nvalue = twice(21)\n",
    "python/other/__init__.py": "import pkg\nimport missing_module\n",
}


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """What the next collection finds unreachable (gc.DEBUG_SAVEALL), after a
    collection of what was garbage before the test."""
    gc.collect()
    flags = gc.get_debug()
    gc.set_debug(flags | gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(flags)
        gc.garbage.clear()


def test_a_scan_leaves_no_cycle_of_abiscan_objects(
    tmp_path: Path, saved_garbage: list[object]
) -> None:
    layer = write_zip(tmp_path / "layer.zip", _MEMBERS)
    report = api.scan([str(layer)], runtime="python3.12", arch="x86_64", jobs=1,
                      use_cache=False)
    assert {m.name: m.outcome for m in report.modules} == {"other": "error", "pkg": "ok"}
    del report
    gc.collect()
    left = sorted({type(o).__qualname__ for o in saved_garbage
                   if type(o).__module__.startswith("abiscan.")})
    assert left == []
