"""What the target's own standard library provides, by top-level module name.

The import graph meets ``import os`` everywhere; the stack never holds the
standard library (it lives in the runtime image), so without this list every
such import would look like a missing module. The names come from
``data/stdlib_modules.json`` (written by ``tools/gen_stdlib_modules.py`` from
real interpreters), never from the interpreter running abiscan: the target
is not the host.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from abiscan.target._data import read_json

__all__ = [
    "BUILTIN_FIRST",
    "is_stdlib",
    "stdlib_dir",
    "stdlib_modules",
]

# Served by BuiltinImporter/FrozenImporter, which sit before PathFinder on
# sys.meta_path: a file of the same name in a layer never replaces them.
BUILTIN_FIRST = frozenset(
    {
        "sys",
        "builtins",
        "marshal",
        "posix",
        "_imp",
        "_io",
        "_thread",
        "_warnings",
        "_weakref",
        "_frozen_importlib",
        "_frozen_importlib_external",
        "_abc",
        "_codecs",
        "_signal",
        "_sre",
        "_stat",
        "_string",
        "_symtable",
        "_tracemalloc",
        "errno",
        "gc",
        "itertools",
        "time",
        "_collections",
        "_functools",
        "_locale",
        "_operator",
        "atexit",
        "faulthandler",
        "pwd",
    }
)


@cache
def _table() -> dict[str, frozenset[str]]:
    raw = read_json("stdlib_modules.json")
    return {version: frozenset(names) for version, names in raw["modules"].items()}


def stdlib_modules(version: tuple[int, int]) -> frozenset[str]:
    """Top-level stdlib names of CPython ``version`` (the nearest older known list if newer)."""
    table = _table()
    key = f"{version[0]}.{version[1]}"
    if key in table:
        return table[key]
    known = sorted((tuple(int(p) for p in k.split(".")), k) for k in table)
    older = [k for v, k in known if v <= version]
    return table[older[-1] if older else known[0][1]]


def is_stdlib(name: str, version: tuple[int, int]) -> bool:
    """Whether the top-level package of dotted ``name`` belongs to that CPython's stdlib."""
    return name.partition(".")[0] in stdlib_modules(version)


def stdlib_dir(sys_path: Sequence[str], version: tuple[int, int]) -> str:
    """The target's stdlib directory: the ``sys.path`` entry ``.../lib/python3.X``."""
    tail = f"/lib/python{version[0]}.{version[1]}"
    for entry in sys_path:
        if entry.rstrip("/").endswith(tail):
            return entry.rstrip("/")
    return f"/var/lang{tail}"
