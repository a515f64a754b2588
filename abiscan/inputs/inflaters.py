"""Raw-deflate inflaters for zip members: zlib's, or ISA-L's when installed.

Inflating is the largest single cost of a cold scan of a big layer. ISA-L's
inflater (the ``isal`` package, installed by the optional ``abiscan[fast]``
extra) makes the same bytes in about half zlib's CPU time, with the same
interface. Which one is used never changes a result: both make the same bytes,
the CRC-32 is checked either way, and a member either cannot inflate is read
again through ``zipfile``, which names what is wrong with it.

``ABISCAN_INFLATER=zlib`` in the environment keeps zlib's inflater even when
``isal`` is installed (to compare the two, or to rule one out).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from functools import cache
from typing import Literal, Protocol, cast

from abiscan.records import record

__all__ = [
    "INFLATER_VARIABLE",
    "ZLIB_BELOW",
    "Inflater",
    "InflaterName",
    "RawInflater",
    "inflater",
]

InflaterName = Literal["zlib", "isal"]
INFLATER_VARIABLE = "ABISCAN_INFLATER"
# A member smaller than this inflates with zlib: importing isal (about 1.2 ms)
# costs more than it saves on a small one (zlib inflates 64 KiB in about 0.2 ms).
ZLIB_BELOW = 64 * 1024


class RawInflater(Protocol):
    """What ``zlib.decompressobj(-15)`` returns, and ``isal_zlib``'s alike."""

    @property
    def eof(self) -> bool: ...

    @property
    def unconsumed_tail(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


@record
class Inflater:
    """One implementation of raw deflate: a decompressor factory, its CRC-32, and
    the exceptions it raises on a damaged stream."""

    name: InflaterName
    decompressobj: Callable[[int], RawInflater]
    crc32: Callable[[bytes, int], int]
    errors: tuple[type[Exception], ...]


def inflater(size: int | None = None) -> Inflater:
    """The inflater a scan uses: ISA-L's when ``isal`` is installed and
    ``ABISCAN_INFLATER`` is not ``zlib``, else zlib's; zlib's for a member of
    ``size`` below :data:`ZLIB_BELOW` bytes (the same bytes either way)."""
    if size is not None and size < ZLIB_BELOW:
        return _zlib()
    if os.environ.get(INFLATER_VARIABLE, "").strip().lower() == "zlib":
        return _zlib()
    return _isal() or _zlib()


@cache
def _zlib() -> Inflater:
    return Inflater(name="zlib", decompressobj=zlib.decompressobj, crc32=zlib.crc32,
                    errors=(zlib.error,))


@cache
def _isal() -> Inflater | None:
    try:
        from isal import isal_zlib  # the optional "fast" extra
    except ImportError:
        return None
    # isal's stub declares its error as an instance; at run time it is a class.
    damaged = cast("type[Exception]", isal_zlib.error)
    return Inflater(name="isal", decompressobj=isal_zlib.decompressobj, crc32=isal_zlib.crc32,
                    errors=(damaged, zlib.error))
