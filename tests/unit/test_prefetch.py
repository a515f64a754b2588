"""Who does what in a scan with workers (abiscan.prefetch): each binary and each
module is taken once, by one process, on the board, and the report is the
in-process one.

These tests count work, never time it: which process parsed which module and
read which binary, from the board (:meth:`SourcePrefetch.shares`) and from
counters in this process (the workers are other processes: a counter patched
here counts the main process alone).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from abiscan import api, prefetch
from abiscan.inputs.sources import Entry, ZipSource
from abiscan.prefetch import SourcePrefetch
from abiscan.report.render import render_json
from abiscan.simulate.python.import_graph import ImportGraph
from abiscan.testing.elf_writer import build_shared_object
from tests.helpers import write_zip


def _sources(packages: int = 10, modules: int = 8) -> dict[str, bytes | str]:
    """Enough sources for the pool to start (each package imports its modules and
    the next package), and one extension module."""
    members: dict[str, bytes | str] = {}
    for p in range(packages):
        mods = ", ".join(f"mod{m}" for m in range(modules))
        members[f"python/pkg{p}/__init__.py"] = (
            f"from . import {mods}\nimport pkg{(p + 1) % packages}\n"
        )
        for m in range(modules):
            members[f"python/pkg{p}/mod{m}.py"] = f"value = {m}\nimport json\n"
    members["python/pkg0/_fast.cpython-312-x86_64-linux-gnu.so"] = build_shared_object(
        machine="x86_64", exports=["PyInit__fast"], needed=["libc.so.6"]
    )
    return members


def _json(layer: Path, **kwargs: object) -> str:
    report = api.scan([str(layer)], runtime="python3.12", arch="x86_64",
                      **kwargs)  # type: ignore[arg-type]
    return render_json(report)


def _recording_shares(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str]]:
    """A list that gets the board of each scan with workers, as it closes."""
    boards: list[dict[str, str]] = []
    real = SourcePrefetch.close

    def close(self: SourcePrefetch) -> None:
        real(self)
        if self.shares():
            boards.append(self.shares())

    monkeypatch.setattr(SourcePrefetch, "close", close)
    return boards


def _parsed_here(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The modules this process parses (not the workers), with how often."""
    parsed: Counter[str] = Counter()
    real = ImportGraph.parse_file

    def counting(self: ImportGraph, name: str, *args: object) -> object:
        parsed[name] += 1
        return real(self, name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ImportGraph, "parse_file", counting)
    return parsed


def test_no_module_is_parsed_by_two_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The main process parses only the modules it took on the board, and each once;
    a worker took the others (at least the first: the main process waits for the
    workers' first word), and the report is the in-process one."""
    layer = write_zip(tmp_path / "layer.zip", _sources())
    alone = _json(layer, jobs=1, use_cache=False)
    boards = _recording_shares(monkeypatch)
    parsed = _parsed_here(monkeypatch)
    assert _json(layer, jobs=2, use_cache=False) == alone
    [board] = boards
    modules = {name: who for name, who in board.items() if "/" not in name}
    assert len(modules) == 90  # every source module on the board (10 packages of 9)
    assert max(parsed.values()) == 1
    assert {name for name in parsed if name in modules} <= {
        name for name, who in modules.items() if who == "main"
    }
    by_workers = {name for name, who in modules.items() if who.startswith("worker")}
    assert by_workers
    assert not by_workers & set(parsed)


def test_each_binary_is_read_by_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large binary (over MAIN_READS_AT_MOST) is a worker's, never read here; the
    main process reads small ones itself (ahead of asking, while it waits for the
    large one), and no binary is read by both; the report is the in-process one."""
    members = _sources()
    members["python/pkg0/_big.cpython-312-x86_64-linux-gnu.so"] = build_shared_object(
        machine="x86_64", exports=["PyInit__big"], needed=["libc.so.6"],
        rodata=bytes(range(256)) * 400,  # about 100 KB, the others a few KB
    )
    for n in range(6):
        members[f"python/pkg9/_small{n}.cpython-312-x86_64-linux-gnu.so"] = build_shared_object(
            machine="x86_64", exports=[f"PyInit__small{n}"], needed=["libc.so.6"]
        )
    layer = write_zip(tmp_path / "layer.zip", members)
    alone = _json(layer, jobs=1, use_cache=False)
    monkeypatch.setattr(prefetch, "MIN_BINARY_BYTES", 0)
    monkeypatch.setattr(prefetch, "MAIN_READS_AT_MOST", 64 * 1024)
    boards = _recording_shares(monkeypatch)
    reads: Counter[str] = Counter()
    real = ZipSource.read

    def counting(self: ZipSource, entry: Entry, limit: int | None = None) -> bytes:
        reads[entry.path] += 1
        return real(self, entry, limit)

    monkeypatch.setattr(ZipSource, "read", counting)
    assert _json(layer, jobs=2, use_cache=False) == alone
    [board] = boards
    binaries = {path: who for path, who in board.items() if "/" in path}
    assert len(binaries) == 8
    assert binaries["/opt/python/pkg0/_big.cpython-312-x86_64-linux-gnu.so"].startswith("worker")
    assert all(who in ("main", "worker 0") for who in binaries.values())
    read_here = {name for name in reads if name.endswith(".so")}
    assert "python/pkg0/_big.cpython-312-x86_64-linux-gnu.so" not in read_here
    mine = {p for p, who in binaries.items() if who == "main"}
    assert {f"/opt/{name}" for name in read_here} == mine
    assert all(reads[name] == 1 for name in read_here)


def test_the_workers_hear_of_a_package_whose_import_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package whose import certainly fails (its first line imports a module found
    nowhere) is told to the parse-ahead, which has the workers skip its
    submodules: no import reaches them. A package that imports is not told, nor
    one whose failure is only possible."""
    members = _sources()
    members["python/broken/__init__.py"] = "import missing_first\nfrom . import sub\n"
    members["python/broken/sub/__init__.py"] = "x = 1\n"
    members["python/maybe/__init__.py"] = (
        "import sys\nif sys.argv:\n    import missing_maybe\n"
    )
    layer = write_zip(tmp_path / "layer.zip", members)
    alone = _json(layer, jobs=1, use_cache=False)
    heard: list[str] = []
    real = SourcePrefetch.failed

    def failed(self: SourcePrefetch, name: str) -> None:
        heard.append(name)
        real(self, name)

    monkeypatch.setattr(SourcePrefetch, "failed", failed)
    assert _json(layer, jobs=2, use_cache=False) == alone
    assert "broken" in heard
    assert not [name for name in heard if name.startswith(("pkg", "maybe"))]
