"""Opt-in: the target-grammar pass against real ``compile()`` over every ``.py`` of pinned wheels.

Run with ``ABISCAN_PYPI_TESTS=1 python -m pytest tests/realworld/test_pypi_grammar.py``.
Each interpreter 3.8+ compiles every source file of the wheels (in one
process per interpreter); abiscan's verdict for that version must agree on
whether it compiles, and on the line where it does not.

``test_grammar_agrees_on_the_whole_realworld_manifest`` does the same over every
``.py`` of every x86_64 wheel of ``realworld/manifest.json`` (and its runtime section),
per CPython 3.8 to 3.13 (``realworld.grammar``; ``python -m realworld grammar`` prints
the counts). Its downloads are the suite's (several GB, cached); it takes long on a
busy machine, so it runs only with ``ABISCAN_REALWORLD_GRAMMAR=1`` as well.
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

try:
    from realworld.grammar import check_grammar, manifest_wheels
    from realworld.paths import cache_dir
    from realworld.run import load_manifest
except ImportError:  # the suite lives at the repository root; an installed copy lacks it
    check_grammar = None  # type: ignore[assignment]

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


@pytest.mark.skipif(os.environ.get("ABISCAN_REALWORLD_GRAMMAR") != "1",
                    reason="every wheel of the real-world manifest (hours on a busy machine); "
                    "set ABISCAN_REALWORLD_GRAMMAR=1 to run")
def test_grammar_agrees_on_the_whole_realworld_manifest() -> None:
    if check_grammar is None:
        pytest.skip("realworld/ is not importable")
    manifest = load_manifest()
    result = check_grammar(manifest, cache_dir())
    assert result.wheels == len(manifest_wheels(manifest))
    # Every distinct source compared for every version, and 3.8's grammar really
    # rejects some of them (numpy 2.x and others use newer syntax).
    assert set(result.checked) == {"3.8", "3.9", "3.10", "3.11", "3.12", "3.13"}
    assert set(result.checked.values()) == {result.unique}
    assert result.real_errors.get("3.8", 0) > 0
    assert not result.disagreements, "\n".join(result.disagreements[:50])
