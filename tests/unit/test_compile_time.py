"""The compiler's own SyntaxErrors: what ``ast.parse`` accepts and importing rejects.

Each rule of :mod:`abiscan.simulate.python.compile_time` on its own; the
differential graph tests (``case_compile_errors``) check the same sources
against every local CPython 3.8 to 3.13.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import abiscan
from abiscan.simulate.python.grammar import RUNNING, SyntaxVerdict, check_syntax

from helpers import write_zip


def _verdict(source: str, target: tuple[int, int]) -> SyntaxVerdict | None:
    tree, verdict = check_syntax(source.encode(), "m.py", target)
    assert tree is not None  # the parser accepts every source here
    return verdict


@pytest.mark.parametrize("target", [(3, 10), (3, 12), RUNNING])
def test_return_outside_function(target: tuple[int, int]) -> None:
    verdict = _verdict("x = 1\nif x:\n    return x\n", target)
    assert verdict is not None and verdict.error is not None
    assert verdict.error.message == "'return' outside function (m.py, line 3)"
    assert (verdict.line, verdict.exact, verdict.stage) == (3, True, "compile")


def test_a_function_body_is_compiled_too() -> None:
    verdict = _verdict("def f(a, b):\n    return a\n\ndef g():\n    break\n", RUNNING)
    assert verdict is not None and verdict.error is not None
    assert verdict.error.message == "'break' outside loop (m.py, line 5)"


def test_del_debug_is_an_error_from_310_only() -> None:
    source = "del __debug__\n"
    verdict = _verdict(source, (3, 10))
    assert verdict is not None and verdict.error is not None
    assert verdict.error.message == "cannot delete __debug__ (m.py, line 1)"
    old = _verdict(source, (3, 9))
    assert old is not None and old.error is None and old.stage == "compile"
    assert old.unknown is not None and "which CPython 3.9 accepts" in old.unknown


_NESTED = "".join("    " * i + "for x in y:\n" for i in range(21)) + "    " * 21 + "pass\n"


def test_more_than_twenty_nested_blocks() -> None:
    on_312 = _verdict(_NESTED, (3, 12))
    on_313 = _verdict(_NESTED, (3, 13))
    if RUNNING < (3, 13):
        assert on_312 is not None and on_312.error is not None
        assert on_312.error.message == "too many statically nested blocks (m.py, line 21)"
        assert on_313 is not None and on_313.unknown is not None
        assert "which CPython 3.13 accepts" in on_313.unknown
    else:  # the running compiler has no limit: the one error abiscan does not predict
        assert on_312 is None and on_313 is None


@pytest.mark.parametrize(("source", "new", "old"), [
    ("*a, *b = [1, 2]\n", "multiple starred expressions in assignment",
     "two starred expressions in assignment"),
    ("f(a=1, a=2)\n", "keyword argument repeated: a", "keyword argument repeated"),
])
def test_wording_of_38(source: str, new: str, old: str) -> None:
    for target, words in [((3, 8), old), ((3, 9), new)]:
        verdict = _verdict(source, target)
        assert verdict is not None and verdict.error is not None
        assert verdict.error.message == f"{words} (m.py, line 1)"
        assert verdict.exact


@pytest.mark.parametrize(("source", "line_310", "line_39"), [
    # 3.8 and 3.9 raise at the start of the scope's symbol table: the def line.
    ("x = 1\n\n@dec\ndef f():\n    y = 1\n    from os import *\n", 6, 4),
    ("class C:\n    def f(self):\n        pass\n    from os import *\n", 4, 1),
    # ... before the comprehension's own code had a line.
    ("def f():\n    return [x async for x in y]\n", 2, 0),
    # ... at the last statement compiled before the bare except: a def's body is its own.
    ("try:\n    pass\nexcept KeyError:\n    def g():\n        return 9\n"
     "except:\n    z = 3\nexcept ValueError:\n    pass\n", 6, 4),
])
def test_lines_of_38_and_39(source: str, line_310: int, line_39: int) -> None:
    for target, line in [((3, 9), line_39), ((3, 8), line_39), ((3, 10), line_310)]:
        verdict = _verdict(source, target)
        assert verdict is not None and verdict.line == line, target


def test_warnings_of_the_source_are_neither_shown_nor_raised() -> None:
    # An invalid escape and ``is`` with a literal warn when parsed and compiled; under
    # "error" the warning would be raised as a SyntaxError the target never raises.
    source = "def f(a):\n    y = a is 1\n    return '\\d'\n"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("error")
        assert _verdict(source, RUNNING) is None
        assert _verdict(source, (3, 8)) is None
    assert seen == []


def test_a_scan_reports_the_compilers_error(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "layer.zip", {
        "python/pk/__init__.py": "from . import helpers\n",
        "python/pk/helpers.py": "def f():\n    x = 1\n    global x\n",
        "python/guarded.py": "try:\n    import pk\nexcept ImportError:\n    pk = None\n",
    })
    report = abiscan.scan([z], imports=["pk", "guarded"])
    for name in ("pk", "guarded"):
        m = report.module(name)
        assert m is not None and m.outcome == "error" and m.confidence == "certain"
        assert m.error is not None and m.error.type == "SyntaxError"
        assert m.error.message == (
            "name 'x' is assigned to before global declaration (helpers.py, line 3)"
        )
    pk = report.module("pk")
    assert pk is not None and "helpers.py does not compile on the target" in pk.reason
