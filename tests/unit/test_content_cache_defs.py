"""A kept ``def`` is cached as its source text and parsed again, into equal nodes."""

from __future__ import annotations

import ast
import pickle
import sysconfig
import warnings
from pathlib import Path

import pytest

from abiscan.inputs.content_cache import (
    CacheFormatError,
    dumps_value,
    keep_def_sources,
    loads_value,
)


def _defs(tree: ast.AST) -> list[ast.FunctionDef]:
    return [n for n in ast.walk(tree) if type(n) is ast.FunctionDef]


def _dump(node: ast.AST) -> str:
    return ast.dump(node, include_attributes=True)


def _round_trip(source: bytes) -> list[tuple[str, ast.FunctionDef, bool]]:
    """Each def of ``source``: the original's dump (taken before it is made a def kept
    as text), the def the cache gives back, and whether it was written as text."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stdlib's tests hold odd escapes
        defs = _defs(ast.parse(source))
    dumps = [_dump(d) for d in defs]
    keep_def_sources(defs, source)
    back = loads_value(dumps_value(defs))
    as_text = [_kept(d) is not None for d in back]
    return list(zip(dumps, back, as_text, strict=True))


def _kept(node: ast.FunctionDef) -> tuple[str, int] | None:
    """The (text, line) a def was written as, while it has not been parsed again."""
    kept: tuple[str, int] | None = node.__dict__.get("abiscan_source")
    return kept if "body" not in node.__dict__ else None


SOURCES = {
    "plain": b"def f(a, b=1):\n    return a + b\n",
    "one line": b"x = 1\ndef f(): return 1; y = 2;  # done\n",
    "nested": b"if x:\n    def f():\n        def g():\n            return 1\n        return g\n",
    "tabs": b"try:\n\tdef f(a):\n\t\tif a:\n\t\t\treturn 1\n\t\treturn 2\nexcept E:\n\tpass\n",
    "mixed": b"if x:\n\tdef f():\n\t    return 1\n",
    "non-ascii": "s = 'é'\ndef f(x='héllo'):\n    return {'ü': x, 'z': '€'}\n".encode(),
    "decorated": b"@a.b(1,\n   2)\n@ c\ndef f():\n    pass\n",
    "indented decorators": b"if 1:\n    @dec\n    def f(): pass\n",
    "crlf": b"import os\r\nif os:\r\n    def f():\r\n        return '''a\r\nb'''\r\n",
    "cr": b"import os\rdef f():\r    return 1\r",
    "bom": b"\xef\xbb\xbfdef f():\n    return 'x'\n",
    "utf-8 cookie": b"# -*- coding: utf-8 -*-\ndef f():\n    return '\xc3\xa9'\n",
    "continuation": b"def f(a,\n      b):\n    return (a +\nb)  \\\n        + 1\n",
    "form feed": b"x = 1\n\x0c\ndef f():\n    return 1\n",
    "late": b"\n" * 5000 + b"if 1:\n  def f():\n    return [\n  1]\n",
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_a_def_comes_back_equal_from_its_text(name: str) -> None:
    pairs = _round_trip(SOURCES[name])
    assert pairs
    for original, back, as_text in pairs:
        assert as_text, original
        assert "body" not in back.__dict__  # parsed only when first used
        assert _dump(back) == original


@pytest.mark.parametrize(
    "source",
    [
        b"# -*- coding: latin-1 -*-\ndef f():\n    return '\xe9'\n",  # another encoding
        b"@\\\ndec\ndef f():\n    pass\n",  # the @ on a line of its own
        b"@(dec)\ndef f():\n    pass\n",
        b"def f(): pass; \\\n\n",  # a continuation after its end
    ],
)
def test_a_def_whose_text_cannot_be_taken_exactly_keeps_its_nodes(source: bytes) -> None:
    pairs = _round_trip(source)
    assert pairs
    for original, back, as_text in pairs:
        assert not as_text
        assert _dump(back) == original


def test_every_def_of_the_stdlib_comes_back_equal() -> None:
    """Over a share of the running Python's own sources (every 25th file: the whole of
    it takes minutes): tabs, non-ASCII text, cookies and odd layouts included."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)[::25]
    texts = kept = 0
    for path in files:
        data = path.read_bytes()
        try:
            pairs = _round_trip(data)
        except (SyntaxError, ValueError):  # test data written to fail
            continue
        for original, back, as_text in pairs:
            assert _dump(back) == original, path
            texts += 1
            kept += as_text
    assert texts > 800
    assert kept > 0.99 * texts


def test_a_rebuilt_def_writes_its_text_again() -> None:
    source = b"if 1:\n    def f():\n        return 1\n"
    defs = _defs(ast.parse(source))
    keep_def_sources(defs, source)
    once = dumps_value(defs)
    back = loads_value(once)
    assert dumps_value(back) == once  # before first use: not parsed to be written
    assert back[0].body
    assert dumps_value(back) == once  # after it too


def _forged_text(text: object, line: object) -> bytes:
    """A pickle of a kept def whose (text, line) are these: what the cache's own
    pickle of a kept def holds, with other values."""
    module, name = b"abiscan.inputs.content_cache", b"_kept_def"
    args = pickle.dumps(((text, line),), 2)[2:-1]  # the arguments, no PROTO or STOP
    return (b"\x80\x05\x8c" + bytes([len(module)]) + module + b"\x8c" + bytes([len(name)])
            + name + b"\x93" + args + b"R.")


def test_the_forged_text_is_what_the_cache_writes() -> None:
    source = b"def f(): pass\n"
    defs = _defs(ast.parse(source))
    keep_def_sources(defs, source)
    assert _dump(loads_value(_forged_text("def f(): pass\n", 1))) == _dump(defs[0])


@pytest.mark.parametrize(
    "text, line",
    [
        ("x = 1\n", 1),  # not a def
        ("def f(:\n", 1),  # not Python
        ("    def f(): pass\n", 1),  # indented on the first line
        ("def f(): pass\ndef g(): pass\n", 3),  # two
        ("async def f(): pass\n", 2),
    ],
)
def test_a_forged_text_fails_at_first_use_as_a_cache_error(text: str, line: int) -> None:
    forged = loads_value(_forged_text(text, line))
    with pytest.raises(CacheFormatError):
        _ = forged.body


@pytest.mark.parametrize("text, line", [(b"def f(): pass\n", 1), ("def f(): pass\n", "1"),
                                        ("def f(): pass\n", None)])
def test_a_kept_def_of_other_types_is_refused_when_read(text: object, line: object) -> None:
    with pytest.raises(CacheFormatError):
        loads_value(_forged_text(text, line))


def test_a_text_def_pickles_as_a_plain_def() -> None:
    source = b"def f(a):\n    return a\n"
    (original, back, _), = _round_trip(source)
    twin = pickle.loads(pickle.dumps(back))
    assert type(twin) is ast.FunctionDef
    assert _dump(twin) == original


def test_a_text_def_goes_to_another_process_as_its_text() -> None:
    """A worker sends the pickle of its cache entry: a kept def goes as its text,
    neither parsed to be sent nor rebuilt when it arrives (most are never used)."""
    source = b"def f(a):\n    return a\n"
    (node,) = _defs(ast.parse(source))
    original = _dump(node)
    keep_def_sources([node], source)
    sent = dumps_value(node)
    twin = pickle.loads(sent)  # as the main process loads a worker's message
    assert "body" not in node.__dict__  # not parsed to be sent
    assert "body" not in twin.__dict__  # nor when it arrives
    assert _dump(twin) == original  # parsed on first use, equal
    again = pickle.loads(dumps_value(twin))  # used once: still sent as its text
    assert "body" not in again.__dict__
    assert _dump(again) == original
    assert type(pickle.loads(pickle.dumps(twin))) is ast.FunctionDef  # plain pickle: the def


def test_a_def_kept_as_text_drops_its_nodes_until_first_use() -> None:
    source = "x = 1\nif x:\n    def f(a):\n        return [a, 'é']\n".encode()
    node = ast.parse(source).body[1].body[0]  # type: ignore[attr-defined]
    assert isinstance(node, ast.FunctionDef)
    before = _dump(node)
    keep_def_sources([node], source)
    assert isinstance(node, ast.FunctionDef)
    assert "body" not in node.__dict__
    assert _dump(node) == before
    assert ast.unparse(node) == "def f(a):\n    return [a, 'é']"


def test_a_kept_def_read_first_for_its_end_is_parsed() -> None:
    # FunctionDef answers None for end_lineno, returns and type_comment at class
    # level: a kept def must parse its text instead of answering that.
    source = b"def f(a) -> int:\n    return a\n"
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.FunctionDef)
    keep_def_sources([node], source)
    assert "end_lineno" not in node.__dict__
    assert (node.end_lineno, node.end_col_offset) == (2, 12)
    assert isinstance(node.returns, ast.Name) and node.type_comment is None


def test_the_import_graph_keeps_a_small_def_as_text() -> None:
    from abiscan.simulate.python.import_graph import AssignStep, ImportGraph, SourceReader

    source = b"import os\ntry:\n    def helper(n):\n        return n + 1\nexcept E:\n    pass\n"
    graph = ImportGraph(reader=SourceReader(lambda _: source, lambda _: None), version=(3, 12))
    parsed = graph.parse_file("m", "m.py", False, lambda _: True)
    assert parsed is not None
    steps = [s for t in parsed.body for s in getattr(t, "body", ()) if isinstance(s, AssignStep)]
    (fn,) = [s.function for s in steps if s.function is not None]
    assert "body" not in fn.__dict__
    fresh = ast.parse(source).body[1].body[0]  # type: ignore[attr-defined]
    assert _dump(fn) == _dump(fresh)
