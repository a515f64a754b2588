"""Bytecode (``.pyc``) headers: which CPython wrote a sourceless module."""

from __future__ import annotations

__all__ = [
    "MAGIC_BY_VERSION",
    "magic_bytes",
    "version_of_magic",
]

# importlib.util.MAGIC_NUMBER's first two bytes (little-endian), read from each
# interpreter with `python -c "import importlib.util as u; print(u.MAGIC_NUMBER)"`.
# 3.14 is left out until it is read from a real 3.14 interpreter: a wrong
# number here would turn a loading module into a predicted failure.
MAGIC_BY_VERSION: dict[tuple[int, int], int] = {
    (3, 8): 3413,
    (3, 9): 3425,
    (3, 10): 3439,
    (3, 11): 3495,
    (3, 12): 3531,
    (3, 13): 3571,
}


def magic_bytes(version: tuple[int, int]) -> bytes | None:
    number = MAGIC_BY_VERSION.get(version)
    if number is None:
        return None
    return number.to_bytes(2, "little") + b"\r\n"


def version_of_magic(magic: bytes) -> tuple[int, int] | None:
    for version, number in MAGIC_BY_VERSION.items():
        if magic == number.to_bytes(2, "little") + b"\r\n":
            return version
    return None
