"""The skeleton parse: a compiled source's tree with its functions' bodies parsed
when first read, equal in every node and position to the whole parse.

Each shape where a body's end could be guessed wrong is here with the check
that catches it; ``tools``-free real sources are checked the same way by the
real-world suite's scan (docs/benchmarks.md, *Session 17*).
"""

from __future__ import annotations

import ast

import pytest

from abiscan.inputs.content_cache import keep_def_sources
from abiscan.simulate.python.grammar import RUNNING, check_syntax
from abiscan.simulate.python.import_graph import _may_inline
from abiscan.simulate.python.skeleton import ReadsBody, compiled_skeleton

_SHAPES = '''\
"""A module."""
import os


def spread(a, *args, b=1):
    """Doc."""
    x = a + b
    return x


def plain(a, b=1):
    return a


@staticmethod
@property
def decorated(
    a: "dict[str, int]" = {"k": (1, 2)},
    b=lambda: 0,
) -> "x:y":
    # a comment at the body's start
    if a:
        return a

# a comment between


class C(object):
    attr = 1

    def method(self):
        return [i for i in range(3)]

    def other(self):
        return 2

    def last(self):
        s = """text
at column 0
"""
        return s


class D:
    def only(self):
        return 1


if os.name:

    def in_if():
        return 1

else:

    def in_else():
        return 2


def one_line(): return 1
async def coroutine():
    await x
try:
    def in_try():
        pass
except ImportError:
    def in_handler():
        pass
finally:
    y = 2
'''


def _whole(source: str) -> str:
    return ast.dump(ast.parse(source), include_attributes=True)


def _never(header: str, decorated: bool, in_class: bool) -> bool:
    return False


def _skeleton(source: str, reads_body: ReadsBody = _may_inline) -> ast.Module:
    compiles, tree = compiled_skeleton(source.encode(), "m.py", reads_body)
    assert compiles and tree is not None
    return tree


def test_the_skeleton_is_the_whole_tree() -> None:
    tree = _skeleton(_SHAPES)
    cut = [n for n in _unread(tree.body) if type(n) is not ast.FunctionDef]  # deferred
    # Every def at module or class level whose body has lines of its own is cut, but
    # a function the extraction may run (plain: no decorator, no star), the last
    # statement of a block (D.only: the class ends where it does; in_if, in_else)
    # and C.last, whose end is not proven (a string's line at column 0)...
    assert sorted(n.name for n in cut) == ["decorated", "method", "other", "spread"]
    # ...and reading the tree parses each body into the nodes the whole parse makes.
    assert ast.dump(tree, include_attributes=True) == _whole(_SHAPES)


def test_bodies_the_caller_reads_are_left_in_the_skeleton() -> None:
    asked: list[tuple[str, bool, bool]] = []

    def never(header: str, decorated: bool, in_class: bool) -> bool:
        asked.append((header.partition("(")[0], decorated, in_class))
        return False

    tree = _skeleton(_SHAPES, never)
    cut = [n for n in _unread(tree.body) if type(n) is not ast.FunctionDef]
    assert sorted(n.name for n in cut) == ["decorated", "method", "other", "plain", "spread"]
    assert ("def plain", False, False) in asked
    assert ("def decorated", True, False) in asked
    assert ("def method", False, True) in asked
    assert ast.dump(tree, include_attributes=True) == _whole(_SHAPES)


def _unread(body: list[ast.stmt]) -> list[ast.FunctionDef]:
    """The defs of a module or class body, nested in blocks, without reading a cut
    def's body (ast.walk would parse each)."""
    out: list[ast.FunctionDef] = []
    for node in body:
        if isinstance(node, ast.FunctionDef):
            out.append(node)
            continue
        for field in ("body", "orelse", "finalbody"):
            out += _unread(node.__dict__.get(field, []))
        for handler in node.__dict__.get("handlers", []):
            out += _unread(handler.body)
    return out


def test_headers_are_read_before_bodies() -> None:
    tree = _skeleton(_SHAPES)
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "spread")
    assert node.args.args[0].arg == "a" and node.lineno == 5
    assert "body" not in node.__dict__
    assert (node.end_lineno, node.end_col_offset) == (8, 12)  # parses the body
    assert isinstance(node.body[1], ast.Assign)


def test_a_block_ending_in_a_def_ends_where_the_whole_parse_says() -> None:
    tree = _skeleton(_SHAPES)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "D")
    whole = next(n for n in ast.parse(_SHAPES).body if getattr(n, "name", "") == "D")
    assert type(cls.body[0]) is ast.FunctionDef  # left whole: its end is the class's
    assert (cls.end_lineno, cls.end_col_offset) == (whole.end_lineno, whole.end_col_offset)


@pytest.mark.parametrize(
    "source",
    [
        # A string's lines at column 0 inside a body, read as code, would import.
        'def f(*a):\n    s = """\nimport evil\n"""\n    return s\nx = 1\n',
        # The same, as the body's last statement: no code of the body follows it.
        'def f(*a):\n    x = 1\n    """\nimport evil\n"""\ny = 2\n',
        # A continued line at column 0.
        "def f(*a):\n    return 1 + \\\n2\ny = 3\n",
        "def f(*a):\n    return g(\n1)\ny = 3\n",
        # A statement with no code of its own follows the def.
        "def f(*a):\n    return 1\nglobal y\n",
        # Tabs are counted as the tokenizer counts them: not here.
        "def f(*a):\n\treturn 1\n",
    ],
)
def test_a_def_whose_end_is_not_proven_is_left_whole(source: str) -> None:
    compiles, tree = compiled_skeleton(source.encode(), "m.py", _never)
    assert compiles and tree is None
    tree, verdict = check_syntax(source.encode(), "m.py", RUNNING, reads_body=_never)
    assert verdict is None and tree is not None
    assert ast.dump(tree, include_attributes=True) == _whole(source)
    assert not any(isinstance(n, ast.Import) for n in tree.body)


def test_a_source_that_does_not_compile_is_decided_as_before() -> None:
    source = b"def f(a):\n    return a\n\ndef g():\n    break\n"
    assert compiled_skeleton(source, "m.py", _never) == (False, None)
    plain = check_syntax(source, "m.py", RUNNING)
    skeleton = check_syntax(source, "m.py", RUNNING, reads_body=_never)
    assert plain[1] is not None and plain[1] == skeleton[1]
    assert plain[1].error is not None
    assert plain[1].error.message == "'break' outside loop (m.py, line 5)"


def test_an_older_target_parses_the_whole_source() -> None:
    # feature_version must see every body: a newer construct in one fails the module.
    source = b"def f(x):\n    match x:\n        case 1:\n            return 1\n"
    tree, verdict = check_syntax(source, "m.py", (3, 9), reads_body=_never)
    assert tree is not None and verdict is not None and verdict.error is not None
    assert "body" in tree.body[0].__dict__


def test_a_kept_def_read_first_for_its_end_is_parsed() -> None:
    # FunctionDef answers None for end_lineno at class level: a deferred def must
    # parse its text instead of answering that.
    source = b"def f(a):\n    return a\n"
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.FunctionDef)
    keep_def_sources([node], source)
    assert "end_lineno" not in node.__dict__
    assert (node.end_lineno, node.end_col_offset, node.returns) == (2, 12, None)
