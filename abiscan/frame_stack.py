"""Room on CPython's frame stack for a scan's recursive walks.

From CPython 3.11 on, a thread's Python frames live on a stack of chunks of
16 KiB, each taken from the system with ``mmap``; a chunk goes back
(``munmap``) as soon as the first frame in it returns. A recursive walk whose
depth goes back and forth across the end of a chunk maps, faults in and unmaps
a chunk every time it crosses: a descent of 60 frames took 20 µs where it
crossed and 2.5 µs where it did not, on the machine of docs/benchmarks.md.
The encoder, the extractor and the simulator are such walks: the main process
of a cold scan of the real layer crossed 10,000 to 16,000 times.

:func:`call_with_frame_room` calls a function from a frame that reserves half
a megabyte of value stack it never uses: CPython puts that frame at the start
of a chunk of its own, of 1 MiB, and the frames of everything the function
calls fill the rest of that chunk, in which no walk of a scan reaches an end.
The pages of the reserve are never written, so they cost no memory.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["FRAME_ROOM", "call_with_frame_room"]

P = ParamSpec("P")
T = TypeVar("T")

# Bytes of frames that fit after the reserving frame: a chunk is a power of two
# at least the frame's size (plus 8 KiB), so a reserve just over half a power of
# two leaves about as much free after it.
FRAME_ROOM = 512 * 1024
_SLOT = 8  # bytes of one value-stack slot (a pointer)


def call_with_frame_room(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)``, with :data:`FRAME_ROOM` bytes of frame stack free
    after the calling frame (CPython 3.11 and later; a plain call before)."""
    return fn(*args, **kwargs)


if sys.version_info >= (3, 11):
    # Only the declared size changes: a frame may reserve more value stack than its
    # code uses (the interpreter never reads past what was pushed).
    _code = call_with_frame_room.__code__
    call_with_frame_room.__code__ = _code.replace(
        co_stacksize=_code.co_stacksize + FRAME_ROOM // _SLOT
    )
    del _code
