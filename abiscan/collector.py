"""The cyclic garbage collector's pace during a scan.

A scan allocates millions of small objects that live until its report is built
(every binary's facts, every module's program), so the collector's young
generation fills hundreds of times and each older pass walks that whole heap:
about a fifth of a cold scan of the real layer of docs/benchmarks.md (10.8 s of
CPU against 8.6 s with the collector off, at the same peak RSS). Spacing the
young collections keeps cycles collectable, unlike switching the collector off,
and the caller's thresholds come back when the last concurrent scan ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["SPACED_YOUNG", "collector_paused", "collector_spaced"]

# Session 10, with the simulation's cycles gone (session 9: 562 objects of cyclic
# garbage per scan of the real layer, not 166,854): the main process's collections
# of a cold scan of it took 0.031 to 0.055 s at 1,000,000 against 0.089 to 0.123 s
# at 100,000 (eight paired runs; docs/decisions.md).
SPACED_YOUNG = 1_000_000
_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] = (0, 0, 0)
_paused = 0


@contextmanager
def collector_spaced() -> Iterator[None]:
    """Run the body with the young generation at least :data:`SPACED_YOUNG`
    allocations wide; the thresholds found on entry are restored on exit."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            young, middle, old = _saved = gc.get_threshold()
            if young:  # 0: the caller turned automatic collection off; leave it off
                gc.set_threshold(max(young, SPACED_YOUNG), middle, old)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.set_threshold(*_saved)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the body with automatic collection off, for a burst of allocations that
    leaves no cycles: ``ast.parse`` builds a tree of a hundred thousand nodes, and
    every collection it triggered walked the tree and the scan's whole heap, for
    nothing (a third of the parse of the real layer's modules with the default
    thresholds: docs/benchmarks.md). A caller that turned the collector off keeps it
    off; concurrent scans turn it back on when the last of them leaves."""
    global _paused
    with _lock:
        pause = _paused > 0 or gc.isenabled()
        if pause:
            _paused += 1
            gc.disable()
    if not pause:
        yield
        return
    try:
        yield
    finally:
        with _lock:
            _paused -= 1
            if _paused == 0:
                gc.enable()
