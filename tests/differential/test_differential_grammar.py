"""The target-grammar pass against real ``compile()`` in every local CPython 3.8+.

Each snippet is compiled by each real interpreter (one process per
interpreter for all snippets) and checked by
:func:`abiscan.simulate.python.grammar.check_syntax` for that interpreter's
version. They must agree on whether the source compiles; on a failure, on
the exception type and line, and on the message where abiscan says its
wording is exact. For a target newer than the interpreter running abiscan, a
failure may be ``unknown`` (abiscan cannot read that grammar), never a
``SyntaxError`` the target would not raise.

The snippets are the constructs whose validity changed between 3.8 and
3.14, near misses of them that every version accepts, and a few plain
errors. Only grammar errors: ``compile()`` also raises for things the
grammar accepts (``return`` outside a function), which abiscan does not
predict.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from abiscan.simulate.python.grammar import RUNNING, check_syntax

from native import Interpreter, discover_interpreters

INTERPRETERS = discover_interpreters()

SNIPPETS: dict[str, str] = {
    # PEP 646 (3.11) and the tuple displays every version accepts (pydantic's fields.py).
    "star-subscript-parenthesised": "Annotated[(self.annotation, *self.metadata)]\n",
    "star-subscript-double-parens": "a[((x, *y))]\n",
    "star-subscript-inner-tuple": "a[(x, *y), z]\n",
    "star-subscript-single": "a[(*y,)]\n",
    "star-subscript-multiline": "a[(x,\n   *y)]\n",
    "star-subscript-paren-items": "a[(x), (*y,)]\n",
    "star-subscript-bare": "a[*y]\n",
    "star-subscript-tuple": "a[x, *y]\n",
    "star-subscript-first-parenthesised": "a[(x), *y]\n",
    "star-subscript-slice": "a[1:2, *y]\n",
    "star-args-annotation": "def f(*args: *Ts): pass\n",
    "star-in-tuple-assign": "t = (x, *y)\nu = x, *y\n",
    # 3.9
    "relaxed-decorator": "@buttons[0].clicked.connect\ndef f(): pass\n",
    "dotted-decorator-call": "@a.b.c(1)\ndef f(): pass\n",
    "for-star-unparenthesised": "for x in *a, *b:\n    pass\n",
    "for-star-parenthesised": "for x in (*a, *b):\n    pass\n",
    "with-parenthesised-as": "with (open(a) as f, open(b) as g):\n    pass\n",
    "with-tuple": "with (a, b):\n    pass\n",
    "with-parenthesised-expression": "with (a) as b:\n    pass\n",
    # 3.10
    "match": "match x:\n    case [1, *rest]:\n        pass\n    case _:\n        pass\n",
    "match-as-name": "match = 1\ncase = match\n",
    # 3.11
    "except-star": "try:\n    pass\nexcept* ValueError:\n    pass\n",
    # 3.12
    "type-statement": "type Point = tuple[float, float]\n",
    "type-soft-keyword": "type = 1\nprint(type)\n",
    "generic-function": "def first[T](xs: list[T]) -> T:\n    return xs[0]\n",
    "generic-class": "class Box[T]:\n    pass\n",
    "fstring-same-quotes": "x = f\"{'a' + \"b\"}\"\n",
    "fstring-backslash": "x = f\"{'\\n'.join(y)}\"\n",
    "fstring-same-quotes-in-brackets": "x = f\"{y[\"a\"]}\"\n",
    "fstring-nested-same-quotes": "x = f'{f'{a}'}'\n",
    "fstring-other-quotes": "x = f\"{'a'}\"\n",
    "fstring-nested-spec": "x = f'{a:{width}.{prec}}'\n",
    # 3.13
    "type-param-default": "def f[T = int](): pass\n",
    # 3.14
    "except-without-parens": "try:\n    pass\nexcept A, B:\n    pass\n",
    "except-with-parens": "try:\n    pass\nexcept (A, B):\n    pass\n",
    # 3.8 features every target has
    "walrus": "if (n := len(a)) > 10:\n    pass\n",
    "positional-only": "def f(a, /, b, *, c): pass\n",
    "fstring-equals": "x = f'{a=}'\n",
    "return-star": "def f():\n    return *a, *b\n",
    # plain errors
    "print-statement": "print 'hello'\n",
    "missing-colon": "if x\n    pass\n",
    "unclosed-paren": "x = (1,\ny = 2\n",
    "unclosed-at-eof": "x = (1,\n",
    "unclosed-blank-lines": "x = (1,\n\n\n",
    "unclosed-then-statement": "x = [1, 2\nprint(x)\n",
    "unclosed-dict": "x = {1: 2,\n  3: 4\n",
    "missing-comma": "f(a,\n  b\nz = [1\n",
    "missing-comma-closed": "x = [1, 2\n     3]\n",
    "unterminated-string": "x = 'abc\n",
    "bad-indent": "def f():\nreturn 1\n",
    "tab-mix": "if x:\n\tpass\n        pass\n",
}

_COMPILE = r"""
import json, sys
out = {}
for name, source in json.loads(sys.stdin.read()).items():
    try:
        compile(source, "snippet.py", "exec")
    except SyntaxError as exc:
        out[name] = [type(exc).__name__, exc.msg, exc.lineno]
    else:
        out[name] = None
print(json.dumps(out))
"""


def _real(interp: Interpreter) -> dict[str, list[object] | None]:
    proc = subprocess.run(
        [str(interp.executable), "-I", "-S", "-c", _COMPILE], input=json.dumps(SNIPPETS),
        capture_output=True, text=True, timeout=60, check=True,
    )
    result: dict[str, list[object] | None] = json.loads(proc.stdout)
    return result


@pytest.mark.parametrize("interp", INTERPRETERS, ids=lambda i: i.short)
def test_grammar_agrees_with_real_compile(interp: Interpreter) -> None:
    target = (interp.version[0], interp.version[1])
    disagreements = []
    for name, real in _real(interp).items():
        _, verdict = check_syntax(SNIPPETS[name].encode(), "/opt/python/snippet.py", target)
        if real is None:
            if verdict is not None and not (target > RUNNING and verdict.error is None):
                disagreements.append(f"{name}: compiles, abiscan says {verdict}")
            continue
        kind, msg, line = real
        if verdict is None:
            disagreements.append(f"{name}: {kind}: {msg} (line {line}), abiscan says ok")
        elif verdict.error is None:
            if target <= RUNNING:
                disagreements.append(f"{name}: {kind}: {msg}, abiscan says {verdict.unknown}")
        elif verdict.error.type != kind or verdict.line != line:
            disagreements.append(
                f"{name}: {kind} line {line}, abiscan {verdict.error.type} line {verdict.line}")
        elif verdict.exact and verdict.error.message != f"{msg} (snippet.py, line {line})":
            disagreements.append(f"{name}: {msg!r}, abiscan (exact) {verdict.error.message!r}")
    assert not disagreements, "\n".join(disagreements)


def test_every_snippet_is_valid_somewhere_or_an_error_everywhere() -> None:
    """The table means something: both outcomes occur, and version-specific ones differ."""
    if len(INTERPRETERS) < 2:
        pytest.skip("needs at least two local CPythons")
    results = [_real(i) for i in INTERPRETERS]
    differing = [n for n in SNIPPETS if len({r[n] is None for r in results}) > 1]
    assert "star-subscript-bare" in differing
    assert "star-subscript-parenthesised" not in differing
    assert all(r["star-subscript-parenthesised"] is None for r in results)
