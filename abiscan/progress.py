"""Counts of a scan's work so far, for a progress display.

The stages count where the work happens (a member inflated, an ELF file parsed,
a module's import simulated) without knowing who listens: :func:`reporting`
installs a listener for the current context, and :func:`count` is a no-op
when there is none. A context variable rather than a parameter keeps the
stages' signatures about what they compute; counting never changes a report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import Literal

from abiscan.records import record

__all__ = ["ScanProgress", "WorkKind", "count", "reporting"]

WorkKind = Literal["members", "elf", "modules"]


@record
class ScanProgress:
    """How much of a scan is done: each count only grows during one scan."""

    members_read: int = 0
    elf_parsed: int = 0
    modules_simulated: int = 0


_FIELDS: dict[WorkKind, str] = {
    "members": "members_read",
    "elf": "elf_parsed",
    "modules": "modules_simulated",
}


class _Listener:
    def __init__(self, callback: Callable[[ScanProgress], None], interval: float) -> None:
        self.callback = callback
        self.interval = interval
        self.state = ScanProgress()
        self.last = 0.0

    def add(self, kind: WorkKind, n: int) -> None:
        field = _FIELDS[kind]
        self.state = replace(self.state, **{field: getattr(self.state, field) + n})
        now = time.monotonic()
        # A terminal redrawn thousands of times a second slows the scan it shows.
        if now - self.last >= self.interval:
            self.last = now
            self.callback(self.state)


_current: ContextVar[_Listener | None] = ContextVar("abiscan_progress", default=None)


def count(kind: WorkKind, n: int = 1) -> None:
    """Record ``n`` units of work of ``kind`` for the listener, if any."""
    listener = _current.get()
    if listener is not None:
        listener.add(kind, n)


@contextmanager
def reporting(
    callback: Callable[[ScanProgress], None] | None, interval: float = 0.1
) -> Iterator[None]:
    """Call ``callback`` with the counts at most every ``interval`` seconds, and
    once more with the final counts when the block ends."""
    if callback is None:
        yield
        return
    listener = _Listener(callback, interval)
    token = _current.set(listener)
    try:
        yield
    finally:
        _current.reset(token)
        callback(listener.state)
