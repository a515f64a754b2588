"""The collector's pace during a scan: widened inside, the caller's outside."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from abiscan import scan
from abiscan.collector import SPACED_YOUNG, collector_paused, collector_spaced


@pytest.fixture()
def thresholds() -> Iterator[tuple[int, int, int]]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc.get_threshold()
    gc.set_threshold(*saved)


def test_widened_inside_and_restored(thresholds: tuple[int, int, int]) -> None:
    with collector_spaced():
        assert gc.get_threshold() == (SPACED_YOUNG, 10, 10)
        with collector_spaced():
            assert gc.get_threshold()[0] == SPACED_YOUNG
        assert gc.get_threshold()[0] == SPACED_YOUNG  # the outer scan still runs
    assert gc.get_threshold() == thresholds


def test_restored_after_an_exception(thresholds: tuple[int, int, int]) -> None:
    with pytest.raises(RuntimeError), collector_spaced():
        raise RuntimeError("boom")
    assert gc.get_threshold() == thresholds


def test_a_caller_who_turned_collection_off_keeps_it_off() -> None:
    saved = gc.get_threshold()
    gc.set_threshold(0, 10, 10)
    try:
        with collector_spaced():
            assert gc.get_threshold()[0] == 0
        assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*saved)


def test_overlapping_scans_in_threads_restore_once(thresholds: tuple[int, int, int]) -> None:
    first_in, second_out = threading.Event(), threading.Event()
    seen: list[int] = []

    def first() -> None:
        with collector_spaced():
            first_in.set()
            second_out.wait(5)
            seen.append(gc.get_threshold()[0])  # the second scan left before this one

    def second() -> None:
        first_in.wait(5)
        with collector_spaced():
            pass
        second_out.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [SPACED_YOUNG]
    assert gc.get_threshold() == thresholds


def test_scan_runs_spaced_and_gives_the_thresholds_back(
    thresholds: tuple[int, int, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import abiscan.api as api

    during: list[tuple[int, int, int]] = []
    real = api.analyse

    def spy(*args: object, **kwargs: object) -> object:
        during.append(gc.get_threshold())
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(api, "analyse", spy)
    layer = tmp_path / "layer"
    (layer / "python").mkdir(parents=True)
    (layer / "python" / "m.py").write_text("X = 1\n")
    report = scan([layer], runtime="python3.12", use_cache=False)
    assert [m.name for m in report.modules] == ["m"]
    assert during == [(SPACED_YOUNG, 10, 10)]
    assert gc.get_threshold() == thresholds


def test_the_scan_frees_its_stack_before_the_thresholds_come_back(
    thresholds: tuple[int, int, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restoring the caller's thresholds starts a collection at once; it walks only
    what is alive then, so the scan's own objects must already be gone (the real
    layer's stack and facts made that collection 0.04 s of the scan's end)."""
    import abiscan.collector as collector
    from abiscan.inputs.stack import Stack

    alive_at_restore: list[int] = []
    real = collector.gc.set_threshold

    def spy(*args: int) -> None:
        if args == thresholds:
            alive_at_restore.append(sum(isinstance(o, Stack) for o in gc.get_objects()))
        real(*args)

    monkeypatch.setattr(collector.gc, "set_threshold", spy)
    layer = tmp_path / "layer"
    (layer / "python").mkdir(parents=True)
    (layer / "python" / "m.py").write_text("X = 1\n")
    gc.collect()
    before = sum(isinstance(o, Stack) for o in gc.get_objects())  # other tests' may live on
    report = scan([layer], runtime="python3.12", use_cache=False)
    assert [m.name for m in report.modules] == ["m"]
    assert alive_at_restore == [before]


def test_paused_inside_and_on_again_after_the_last() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer parse still runs
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_caller_who_turned_collection_off_keeps_it_off_after_a_pause() -> None:
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_parsing_a_module_pauses_the_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    import abiscan.simulate.python.import_graph as import_graph

    seen: list[bool] = []
    real = import_graph.check_syntax

    def spying(*args: Any) -> Any:
        seen.append(gc.isenabled())
        return real(*args)

    monkeypatch.setattr(import_graph, "check_syntax", spying)
    graph = import_graph.ImportGraph(
        reader=import_graph.SourceReader(lambda _: b"import os\n", lambda _: None),
        version=(3, 12),
    )
    parsed = graph.parse_file("m", "/opt/python/m.py", False, lambda _: False)
    assert parsed is not None and [e.target for e in parsed.edges] == ["os"]
    assert seen == [False]
    assert gc.isenabled()
