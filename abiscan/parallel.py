"""Whether a scan could start worker processes, decided without loading them.

:mod:`abiscan.prefetch` (the workers, and the parse hook that serves the
content cache) is a large module with records of its own: a scan that has no
content cache and can start no worker does without it (its start-up:
docs/benchmarks.md). The thresholds live here so that the decision and
:meth:`abiscan.prefetch.SourcePrefetch.start` use the same numbers.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from abiscan.inputs.stack import Stack

__all__ = ["MIN_BINARY_BYTES", "MIN_PREFETCH", "default_jobs", "may_start_workers"]

# Below this many sources, starting workers costs more than it saves.
MIN_PREFETCH = 64
# Below this many bytes of binaries to read, starting workers costs more than it saves.
MIN_BINARY_BYTES = 16 * 1024 * 1024


def default_jobs() -> int:
    """The default ``jobs``: the cores this process may run on (on an idle
    2-core machine a cold scan of the real layer took 8.8 s with one worker
    against 12.2 s without: docs/decisions.md)."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        cores = max(1, os.cpu_count() or 1)
    return cores


def may_start_workers(stack: Stack, jobs: int) -> bool:
    """False when a scan of ``stack`` with ``jobs`` certainly starts no worker.

    An upper bound of what :meth:`~abiscan.prefetch.SourcePrefetch.start`
    counts: every ``.py`` file of the stack (it counts those under sys.path,
    tests left out) and the bytes of every shared object (it counts those not
    cached, within the memory budget). Below both thresholds it starts none.
    """
    if jobs < 2:
        return False
    sources = 0
    binary_bytes = 0
    for sf in stack.walk_files():
        if sf.kind != "file":
            continue
        name = sf.target_path.rsplit("/", 1)[-1]
        if name.endswith(".py"):
            sources += 1
        elif name.endswith(".so") or ".so." in name:
            binary_bytes += sf.entry.size
        if sources >= MIN_PREFETCH or binary_bytes >= MIN_BINARY_BYTES:
            return True
    return False
