"""The content cache keeps the evaluator's syntax-tree nodes exactly, and reads back
nothing but plain data."""

from __future__ import annotations

import ast
import enum
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from abiscan.inputs.content_cache import (
    CacheFormatError,
    ContentCache,
    dumps_value,
    entry_of,
    loads_value,
    pack_entry,
    unpack_entry,
)


def _round_trip(value: Any) -> Any:
    return unpack_entry(pack_entry("k", value), "k")


@pytest.mark.parametrize("source", [
    "getattr(sys.excepthook, '__name__', None) in ('a', 'b')",
    "f'{x!r:>{w}} and {y}'",
    "not HAS_CYEXTENSION and platform.python_implementation() in ('PyPy',)",
    "[m for m in (1, 2) if m]",
    "Callable[..., int] if x[1:...] else 2j",
])
def test_expressions_round_trip_with_positions(source: str) -> None:
    node = ast.parse(source, mode="eval").body
    back = _round_trip(node)
    assert ast.dump(back, include_attributes=True) == ast.dump(node, include_attributes=True)


def _forged(module: str, name: str, args: tuple[Any, ...] = ()) -> bytes:
    """A pickle that calls ``module.name(*args)`` when loaded, as an attacker who can
    write the cache directory would make it."""
    body = (
        b"\x80\x05"  # PROTO 5
        + b"\x8c" + bytes([len(module)]) + module.encode()  # SHORT_BINUNICODE
        + b"\x8c" + bytes([len(name)]) + name.encode()
        + b"\x93"  # STACK_GLOBAL
        + pickle.dumps(args, 5)[2:-1]  # the arguments' tuple, without PROTO and STOP
        + b"R."  # REDUCE, STOP
    )
    return body


@pytest.mark.parametrize("module, name, args", [
    ("builtins", "len", ("abc",)),
    ("os", "system", ("echo owned",)),
    ("builtins", "eval", ("1",)),
    ("builtins", "getattr", (1, "real")),
    ("builtins", "bytearray", (10,)),  # a size: memory a few bytes of pickle ask for
    ("subprocess", "Popen", (["true"],)),
    ("ast", "NodeVisitor", ()),  # of ast, but not a syntax node
    ("ast", "parse", ("x",)),
    ("abiscan.api", "scan", ([],)),  # abiscan's, but not a record
    ("abiscan.inputs.content_cache", "ContentCache", ("/tmp",)),  # a class, not a record
    ("abiscan.inputs.content_cache", "_parsed_def", ("def f(): pass\n", 1)),
    ("abiscan.inputs.content_cache", "_def_of_fields", ({"name": "f"},)),  # copy's, not the cache's
])
def test_a_pickle_naming_anything_but_plain_data_is_refused(
    module: str, name: str, args: tuple[Any, ...]
) -> None:
    body = _forged(module, name, args)
    with pytest.raises(CacheFormatError):
        loads_value(body)
    with pytest.raises(CacheFormatError):
        unpack_entry(entry_of("k", body), "k")


def test_the_forgery_is_a_working_pickle() -> None:
    """What the refusals above are worth: unguarded, a forged pickle calls its global."""
    assert pickle.loads(_forged("builtins", "len", ("abc",))) == 3


def test_a_forged_entry_in_the_cache_is_a_miss(tmp_path: Path) -> None:
    """With a valid checksum and key, an entry whose pickle names a foreign class is a
    miss, in this process and in the next; the scan's own put replaces it."""
    store = ContentCache(tmp_path)
    store.put_entry("k", entry_of("k", _forged("os", "getcwd")))
    assert store.get("k") is None
    store.close()
    assert ContentCache(tmp_path).get("k") is None
    again = ContentCache(tmp_path)
    again.put("k", (1, "a"))
    assert again.get("k") == (1, "a")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "persistent id", "other key"])
def test_damaged_entries_are_cache_errors(damage: str) -> None:
    body = dumps_value((1, ast.parse("x = 1")))
    forged = {
        "truncated": body[: len(body) // 2],
        "garbage": b"\x80\x05\xff\xfe" + body,
        "persistent id": b"\x80\x05\x8c\x01xQ.",  # BINPERSID
        "other key": body,
    }[damage]
    raw = entry_of("other" if damage == "other key" else "k", forged)
    with pytest.raises(CacheFormatError):
        unpack_entry(raw, "k")


def test_a_damaged_frame_is_refused() -> None:
    raw = pack_entry("k", [1, 2])
    head = raw.split(b"\n", 1)[0] + b"\n"
    crc_end = len(head) + 4
    flipped = raw[:-1] + bytes([raw[-1] ^ 1])
    long_key = raw[:crc_end] + struct.pack("<I", 10**6) + raw[crc_end + 4:]
    rest = long_key[crc_end:]
    fixed = long_key[:len(head)] + struct.pack("<I", zlib.crc32(rest)) + rest
    for bad in (flipped, fixed, b"abiscan-cache 1\n" + raw[len(head):], raw[:6]):
        with pytest.raises(CacheFormatError):
            unpack_entry(bad, "k")


class _Colour(enum.Enum):
    RED = "red"


def test_records_enums_and_containers_round_trip() -> None:
    from abiscan.inputs.sources import InputKind
    from abiscan.simulate.python.import_graph import ImportGraph, ImportStep, SourceReader

    value = ({"a": [1, 2.5, 3j, b"x", ..., None]}, frozenset({"a"}), {1, 2}, bytearray(b"ab"),
             InputKind.WHEEL)
    assert _round_trip(value) == value
    source = b"try:\n    import a.b as c\nexcept ImportError:\n    c = None\n"
    graph = ImportGraph(SourceReader(lambda _: source, lambda _: None), (3, 12))
    parsed = graph.parse_file("m", "/opt/python/m.py", False, lambda _: False)
    assert parsed is not None and parsed.edges
    back = _round_trip(parsed)
    assert type(back) is type(parsed) and back.edges == parsed.edges
    # An import step's edge is the same object as the module's edge, loaded once.
    step = back.body[0].body[0]
    assert isinstance(step, ImportStep) and step.edge is back.edges[0]
    # An enum of another module (here, this test's) is not plain data.
    with pytest.raises(CacheFormatError):
        _round_trip(_Colour.RED)


def test_a_value_the_format_cannot_hold_is_not_cached(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path)
    cache.put("k", object())  # pickles, but is not plain data: a miss, never raised
    assert cache.get("k") is None
    cache.put("l", lambda: 1)  # does not pickle: skipped
    assert cache.get("l") is None


def test_reading_an_entry_leaves_the_collector_as_it_was(tmp_path: Path) -> None:
    import gc

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
