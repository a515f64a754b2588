"""The content cache keeps the evaluator's syntax-tree nodes exactly."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from abiscan.inputs.content_cache import CacheFormatError, decode_plain, encode_plain


@pytest.mark.parametrize("source", [
    "getattr(sys.excepthook, '__name__', None) in ('a', 'b')",
    "f'{x!r:>{w}} and {y}'",
    "not HAS_CYEXTENSION and platform.python_implementation() in ('PyPy',)",
    "[m for m in (1, 2) if m]",
    "Callable[..., int] if x[1:...] else 2j",
])
def test_expressions_round_trip_with_positions(source: str) -> None:
    node = ast.parse(source, mode="eval").body
    back = decode_plain(encode_plain(node))
    assert ast.dump(back, include_attributes=True) == ast.dump(node, include_attributes=True)


def test_only_ast_classes_are_built() -> None:
    for name in ("Popen", "NodeVisitor"):
        with pytest.raises(CacheFormatError):
            decode_plain(((("node", name, ()),), (5, 0)))


def test_a_value_the_format_cannot_hold_is_not_cached(tmp_path: Path) -> None:
    from abiscan.inputs.content_cache import ContentCache

    cache = ContentCache(tmp_path)
    cache.put("k", object())  # not plain data: skipped, never raised
    assert cache.get("k") is None


def test_a_def_is_rebuilt_on_first_use_exactly() -> None:
    source = "def f(a, b=1):\n    import os\n    if a:\n        return os.sep\n    return b\n"
    node = ast.parse(source).body[0]
    back = decode_plain(encode_plain([node]))[0]
    assert "body" not in back.__dict__  # nothing of it rebuilt yet
    assert isinstance(back, ast.FunctionDef)
    assert ast.dump(back, include_attributes=True) == ast.dump(node, include_attributes=True)
    assert ast.unparse(back) == ast.unparse(node)
    assert [type(n).__name__ for n in ast.walk(back)] == [type(n).__name__ for n in ast.walk(node)]


def test_a_forged_def_fails_at_first_use_as_a_cache_error() -> None:
    table, tree = encode_plain([ast.parse("def f(): pass").body[0]])
    forged = decode_plain((table, [(tree[0][0], (5, 0, "too", "many", "fields", 1, 2, 3))]))[0]
    with pytest.raises(CacheFormatError):
        _ = forged.body


def test_reading_an_entry_leaves_the_collector_as_it_was(tmp_path: Path) -> None:
    import gc

    from abiscan.inputs.content_cache import ContentCache

    cache = ContentCache(tmp_path)
    cache.put("k", [ast.parse("x = 1").body[0]])
    assert gc.isenabled()
    assert cache.get("k") is not None
    assert gc.isenabled()
    gc.disable()
    try:
        assert cache.get("k") is not None
        assert not gc.isenabled()  # a program that turned it off keeps it off
        cache.get("absent")
    finally:
        gc.enable()


def test_a_deferred_def_pickles_and_copies_as_a_plain_def() -> None:
    import copy
    import pickle

    node = ast.parse("def f(a):\n    return a\n").body[0]
    back = decode_plain(encode_plain([node]))[0]
    for twin in (pickle.loads(pickle.dumps(back)), copy.deepcopy(back)):
        assert type(twin) is ast.FunctionDef
        assert ast.dump(twin, include_attributes=True) == ast.dump(node, include_attributes=True)
