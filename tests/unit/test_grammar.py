"""Unit tests of the target-grammar pass for the cases the running parser alone gets wrong."""

from __future__ import annotations

import pytest

from abiscan.simulate.python.grammar import RUNNING, check_syntax

OLD = [(3, 8), (3, 9), (3, 10)]


@pytest.mark.parametrize("target", OLD)
@pytest.mark.parametrize("source", [
    "Annotated[(self.annotation, *self.metadata)]\n",  # pydantic 2 fields.py
    "a[((x, *y))]\n", "a[(x, *y), z]\n", "a[(x,\n  *y)]\n", "a[(x), (*y,)]\n",
])
def test_parenthesised_star_in_subscript_is_old_syntax(target: tuple[int, int],
                                                       source: str) -> None:
    tree, verdict = check_syntax(source.encode(), "fields.py", target)
    assert tree is not None
    assert verdict is None


@pytest.mark.parametrize("target", OLD)
@pytest.mark.parametrize("source", ["a[*y]\n", "a[x, *y]\n", "a[(x), *y]\n", "a[1:2, *y]\n"])
def test_bare_star_in_subscript_needs_311(target: tuple[int, int], source: str) -> None:
    _, verdict = check_syntax(source.encode(), "m.py", target)
    assert verdict is not None and verdict.error is not None
    assert verdict.error.message == "invalid syntax (m.py, line 1)"
    if RUNNING >= (3, 11):  # an older running parser rejects it itself, and says so
        assert "PEP 646" in verdict.why


@pytest.mark.skipif(RUNNING < (3, 10), reason="the running parser already speaks 3.8's words")
def test_unclosed_bracket_is_reported_where_the_old_parser_stopped() -> None:
    _, verdict = check_syntax(b"x = [1, 2\nprint(x)\n", "m.py", (3, 9))
    assert verdict is not None and verdict.error is not None
    assert (verdict.error.message, verdict.line) == ("invalid syntax (m.py, line 2)", 2)
    _, verdict = check_syntax(b"x = (1,\n\n\n", "m.py", (3, 8))
    assert verdict is not None and verdict.error is not None
    assert verdict.error.message == "unexpected EOF while parsing (m.py, line 3)"
    assert verdict.exact


@pytest.mark.parametrize(("source", "valid_on_38"), [
    ("with (a) as b:\n    pass\n", True),
    ("with (a, b):\n    pass\n", True),
    ("with (a as b, c):\n    pass\n", False),
])
def test_parenthesised_with(source: str, valid_on_38: bool) -> None:
    _, verdict = check_syntax(source.encode(), "m.py", (3, 8))
    assert (verdict is None) is valid_on_38


@pytest.mark.parametrize(("target", "kind"), [
    ((3, 8), "ValueError"), ((3, 10), "ValueError"), ((3, 11), "SyntaxError"),
    ((3, 12), "SyntaxError"), ((3, 13), "SyntaxError"),
])
def test_a_nul_byte_is_refused_before_any_grammar(target: tuple[int, int], kind: str) -> None:
    # compile() refuses the bytes before parsing, with no line: ValueError until 3.11.3.
    # The running parser's own answer (ValueError on 3.10) is not the target's.
    tree, verdict = check_syntax(b"import json\x00\n", "m.py", target)
    assert tree is None and verdict is not None and verdict.error is not None
    assert (verdict.error.type, verdict.error.message, verdict.line) == (
        kind, "source code string cannot contain null bytes", None)
    assert ("before 3.11.4" in verdict.why) is (target == (3, 11))
