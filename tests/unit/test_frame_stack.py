"""Room on the frame stack: a walk that goes back and forth across the end of a
frame-stack chunk maps a new chunk each time, unless it runs with room.

The chunks are counted by the page faults they cost: every chunk mapped anew is
written, so faulted in, when a frame is put on it (ru_minflt, a count, not a time).
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import pytest

from abiscan import scan
from abiscan.frame_stack import FRAME_ROOM, call_with_frame_room

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="frames are on a chunked stack from CPython 3.11 on"
)

DESCENTS = 300  # per base depth


def _down(n: int) -> int:
    return 0 if n == 0 else _down(n - 1)


def _descend_from(base: int) -> None:
    """At ``base`` frames below here, go 40 frames deeper and back, DESCENTS times."""
    if base:
        _descend_from(base - 1)
        return
    for _ in range(DESCENTS):
        _down(40)


def _most_faults() -> int:
    """The most page faults the descents cost from any base depth in a range wider
    than a 16 KiB chunk holds frames of these functions."""
    most = 0
    for base in range(0, 400, 2):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        _descend_from(base)
        most = max(most, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return most


@pytest.mark.skipif(
    bool(os.environ.get("PYTHONMALLOC")),
    reason="another allocator may reuse freed chunks without new page faults",
)
def test_without_room_some_depth_maps_a_chunk_every_descent() -> None:
    # The mechanism the module works around is there: at the depth where the
    # descents cross a chunk's end, each maps (and faults in) a fresh chunk.
    assert _most_faults() >= DESCENTS


def test_with_room_no_depth_maps_a_chunk_per_descent() -> None:
    assert call_with_frame_room(_most_faults) < DESCENTS // 10


def test_the_room_is_declared_on_the_calling_frame() -> None:
    code = call_with_frame_room.__code__
    assert code.co_stacksize * 8 >= FRAME_ROOM


def test_arguments_results_and_exceptions_pass_through() -> None:
    def f(a: int, *, b: int) -> tuple[int, int]:
        return a, b

    assert call_with_frame_room(f, 1, b=2) == (1, 2)

    def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError, match="x"):
        call_with_frame_room(boom)


def test_a_scan_runs_with_room(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # scan() and analyse() both call through it (the scan's walks are in its room).
    import abiscan.api as api

    called: list[str] = []
    real = api.call_with_frame_room

    def spy(fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        called.append(fn.__name__)
        return real(fn, *args, **kwargs)

    monkeypatch.setattr(api, "call_with_frame_room", spy)
    (tmp_path / "python").mkdir()
    (tmp_path / "python" / "m.py").write_text("import os\n")
    scan([tmp_path], use_cache=False, jobs=1)
    assert called == ["_scan", "_analyse"]
