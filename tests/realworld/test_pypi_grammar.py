"""Opt-in: the target-grammar pass against real ``compile()`` over every ``.py`` of pinned wheels.

Run with ``ABISCAN_PYPI_TESTS=1 python -m pytest tests/test_pypi_grammar.py``.
Each interpreter 3.8+ compiles every source file of the wheels (in one
process per interpreter); abiscan's verdict for that version must agree on
whether it compiles, and on the line where it does not.
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from abiscan.simulate.python.grammar import RUNNING, check_syntax

from native import Interpreter, discover_interpreters

pytestmark = [
    pytest.mark.pypi,
    pytest.mark.skipif(
        os.environ.get("ABISCAN_PYPI_TESTS") != "1",
        reason="downloads wheels from PyPI; set ABISCAN_PYPI_TESTS=1 to run",
    ),
]

WHEELS = (
    "pydantic-2.6.4-py3-none-any.whl",
    "urllib3-2.2.1-py3-none-any.whl",
    "urllib3-1.26.18-py2.py3-none-any.whl",
    "typing_extensions-4.10.0-py3-none-any.whl",
    "annotated_types-0.6.0-py3-none-any.whl",
    "PyMySQL-1.1.0-py3-none-any.whl",
)

_COMPILE = r"""
import json, sys
out = {}
for name, source in json.loads(sys.stdin.read()).items():
    try:
        compile(source.encode("utf-8", "surrogateescape"), name, "exec")
    except SyntaxError as exc:
        out[name] = exc.lineno
    else:
        out[name] = None
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def sources(wheel: Callable[[str], Path]) -> dict[str, str]:
    out: dict[str, str] = {}
    for filename in WHEELS:
        with zipfile.ZipFile(wheel(filename)) as whl:
            for name in whl.namelist():
                if name.endswith(".py"):
                    out[f"{filename}/{name}"] = whl.read(name).decode("utf-8", "surrogateescape")
    return out


@pytest.mark.parametrize("interp", discover_interpreters(), ids=lambda i: i.short)
def test_grammar_agrees_with_compile_on_real_sources(interp: Interpreter,
                                                     sources: dict[str, str]) -> None:
    target = (interp.version[0], interp.version[1])
    real = json.loads(subprocess.run(
        [str(interp.executable), "-I", "-S", "-c", _COMPILE], input=json.dumps(sources),
        capture_output=True, text=True, timeout=600, check=True).stdout)
    wrong = []
    for name, line in real.items():
        _, verdict = check_syntax(sources[name].encode("utf-8", "surrogateescape"), name, target)
        predicted = None if verdict is None else (verdict.line if verdict.error else "unknown")
        if predicted == "unknown" and target > RUNNING:
            continue
        if predicted != line:
            wrong.append(f"{name}: compile() line {line}, abiscan {predicted}")
    assert len(real) > 100
    assert not wrong, "\n".join(wrong)
