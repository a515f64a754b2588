"""The speed machinery changes how fast a scan runs, never what it says.

Worker processes, the content cache and the memory budget each get the same
report as a plain in-process scan; the cache's own properties (atomic
writes, a bound, corrupt or foreign entries ignored, an unusable directory
never failing a scan) are pinned one by one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from abiscan import api, result_memo
from abiscan.inputs.content_cache import (
    FORMAT_VERSION,
    CacheFormatError,
    ContentCache,
    default_cache_dir,
    entry_of,
)
from abiscan.inputs.sources import InputKind, SourceError, open_source
from abiscan.inputs.stack import build_stack
from abiscan.report.render import render_json
from abiscan.simulate.python.import_graph import ImportGraph
from abiscan.target.profiles import builtin_target
from abiscan.testing.elf_writer import build_shared_object
from tests.helpers import write_tree, write_zip

TARGET = builtin_target("python3.12", "x86_64")


def _layer_members(packages: int = 12, modules: int = 8) -> dict[str, bytes | str]:
    """Enough sources for the worker pool to start, with imports that reach each other,
    a broken import behind a guard and one without, and an extension module."""
    members: dict[str, bytes | str] = {}
    for p in range(packages):
        pkg = f"python/pkg{p}"
        mods = ", ".join(f"mod{m}" for m in range(modules))
        members[f"{pkg}/__init__.py"] = (
            f"from . import {mods}\nfrom .mod1 import value\nimport pkg{(p + 1) % packages}\n"
        )
        for m in range(modules):
            body = f"value = {m}\nimport json\n"
            if m == 2:
                body += "try:\n    import missing_optional\nexcept ImportError:\n    pass\n"
            if m == 3 and p == 5:
                body += "import missing_required\n"
            if m == 4:
                body += "match value:\n    case 1:\n        pass\n"
            members[f"{pkg}/mod{m}.py"] = body
        members[f"{pkg}/tests/test_x.py"] = "import pytest\n"
    members["python/pkg0/_fast.cpython-312-x86_64-linux-gnu.so"] = build_shared_object(
        machine="x86_64", exports=["PyInit__fast"], needed=["libc.so.6"]
    )
    members["python/pkg1/_gone.cpython-312-x86_64-linux-gnu.so"] = build_shared_object(
        machine="x86_64", exports=["PyInit__gone"], needed=["libnothere.so.1"]
    )
    return members


@pytest.fixture()
def layer(tmp_path: Path) -> Path:
    return write_zip(tmp_path / "layer.zip", _layer_members())


@pytest.fixture()
def without_result_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    """A warm scan that goes through the content cache: the result memo (which would
    answer an unchanged scan whole, tests/unit/test_result_memo.py) recalls nothing."""
    monkeypatch.setattr(result_memo, "recall", lambda *_: None)


def _json(paths: list[Path], **kwargs: object) -> str:
    report = api.scan([str(p) for p in paths], runtime="python3.12", arch="x86_64",
                      **kwargs)  # type: ignore[arg-type]
    return render_json(report)


# -- the pool ------------------------------------------------------------------


def test_jobs_1_and_2_give_byte_identical_json(layer: Path, tmp_path: Path) -> None:
    one = _json([layer], jobs=1, use_cache=False)
    two = _json([layer], jobs=2, use_cache=False)
    assert one == two
    report = json.loads(one)
    assert report["summary"]  # a real report, with modules and findings
    assert any(f["code"] == "ABI203" for f in report["findings"])


def test_workers_parse_for_the_main_process(
    layer: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With workers, the main process parses fewer modules than it reaches."""
    calls: list[str] = []
    real = ImportGraph.parse_file

    def counting(self: ImportGraph, name: str, *args: object) -> object:
        calls.append(name)
        return real(self, name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ImportGraph, "parse_file", counting)
    _json([layer], jobs=1, use_cache=False)
    alone = len(calls)
    calls.clear()
    _json([layer], jobs=2, use_cache=False)
    assert alone >= 100
    assert len(calls) < alone


def test_workers_parse_only_what_the_imports_reach(tmp_path: Path) -> None:
    """The workers follow the imports from the layer's packages, as the scan does: a
    module nothing imports is not parsed (the pool used to parse every source)."""
    members = {
        k: v
        for k, v in _layer_members().items()
        if "missing" not in str(v) and "_gone" not in k  # every import succeeds
    }
    for m in range(80):
        members[f"python/pkg0/unused/mod{m}.py"] = f"value = {m}\n"
    layer = write_zip(tmp_path / "layer.zip", members)

    def entries(jobs: int) -> int:
        cache = tmp_path / f"cache{jobs}"
        _json([layer], jobs=jobs, cache_dir=cache)
        return sum(1 for _ in ContentCache(cache).entries())

    alone = entries(1)  # the modules the scan reaches, and the binaries' summaries
    assert alone >= 90
    assert entries(2) == alone + 1  # and the mark that a scan of these sources ended


def _count_pools(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one for each worker pool a scan starts from now on."""
    import concurrent.futures

    started: list[int] = []
    real = concurrent.futures.ProcessPoolExecutor

    def counting(*args: Any, **kwargs: Any) -> concurrent.futures.ProcessPoolExecutor:
        started.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", counting)
    return started


@pytest.mark.usefixtures("without_result_memo")
def test_a_warm_scan_starts_no_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the cache holds what the imports reach, workers would only walk it: a
    warm scan with jobs=2 starts no pool, and its report is the cold one."""
    members = dict(_layer_members())
    for m in range(80):
        members[f"python/pkg0/unused/mod{m}.py"] = f"value = {m}\n"  # never reached
    layer = write_zip(tmp_path / "layer.zip", members)
    cache = tmp_path / "cache"
    started = _count_pools(monkeypatch)
    cold = _json([layer], jobs=2, cache_dir=cache)
    assert started == [1]
    warm = _json([layer], jobs=2, cache_dir=cache)
    assert started == [1]
    assert warm == cold


def test_a_warm_scan_with_one_changed_source_starts_no_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One changed package ``__init__`` among twelve cached ones: the workers would
    walk the cache for one module to parse, so no pool starts; the report is the
    scan's without a cache."""
    members = dict(_layer_members())
    for m in range(80):
        members[f"python/pkg0/unused/mod{m}.py"] = f"value = {m}\n"  # never reached
    cache = tmp_path / "cache"
    started = _count_pools(monkeypatch)
    _json([write_zip(tmp_path / "a" / "layer.zip", members)], jobs=2, cache_dir=cache)
    assert started == [1]
    members["python/pkg3/__init__.py"] = str(members["python/pkg3/__init__.py"]) + "# changed\n"
    changed = write_zip(tmp_path / "b" / "layer.zip", members)
    warm = _json([changed], jobs=2, cache_dir=cache)
    assert started == [1]
    assert warm == _json([changed], jobs=1, use_cache=False)


@pytest.mark.usefixtures("without_result_memo")
def test_a_warm_scan_starts_no_workers_for_what_no_scan_reaches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain's root that the scan itself never reaches (its package's import fails
    first) may be left unparsed by the workers of a cold scan: a scan of the same
    sources that ran to its end is remembered, and the warm scan starts no pool."""
    members = dict(_layer_members())
    members["python/broken/__init__.py"] = "import missing_first\nfrom . import sub\n"
    members["python/broken/sub/__init__.py"] = "".join(f"from . import m{m}\n" for m in range(70))
    for m in range(70):
        members[f"python/broken/sub/m{m}.py"] = "x = 1\n"
    members["python/broken/sub/_ext.cpython-312-x86_64-linux-gnu.so"] = build_shared_object(
        machine="x86_64", exports=["PyInit__ext"], needed=["libc.so.6"]
    )
    layer = write_zip(tmp_path / "layer.zip", members)
    cache = tmp_path / "cache"
    cold = _json([layer], jobs=2, cache_dir=cache)
    # What a cold scan's workers may not have parsed before they were stopped:
    old = ContentCache(cache)
    kept = [(key, raw) for key, raw in old.entries() if b"broken.sub" not in raw]
    old.close()
    shutil.rmtree(cache)
    new = ContentCache(cache)
    for key, raw in kept:
        new.put_entry(key, raw)
    new.close()
    started = _count_pools(monkeypatch)
    assert _json([layer], jobs=2, cache_dir=cache) == cold
    assert started == []
    assert _json([layer], jobs=1, use_cache=False) == cold


# -- the content cache -----------------------------------------------------------


@pytest.mark.usefixtures("without_result_memo")
def test_output_identical_without_cache_cold_and_warm(layer: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    plain = _json([layer], jobs=1, use_cache=False)
    cold = _json([layer], jobs=1, cache_dir=cache)
    entries = list((cache / f"v{FORMAT_VERSION}").rglob("*"))
    warm = _json([layer], jobs=1, cache_dir=cache)
    assert plain == cold == warm
    assert any(p.is_file() for p in entries)


@pytest.mark.usefixtures("without_result_memo")
def test_warm_scan_parses_nothing(
    layer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    _json([layer], jobs=1, cache_dir=cache)
    calls: list[str] = []
    real = ImportGraph.parse_file

    def counting(self: ImportGraph, name: str, *args: object) -> object:
        calls.append(name)
        return real(self, name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ImportGraph, "parse_file", counting)
    _json([layer], jobs=1, cache_dir=cache)
    assert calls == []


def test_changed_member_is_a_miss(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    members = _layer_members(packages=2, modules=2)
    first = write_zip(tmp_path / "a" / "layer.zip", members)
    _json([first], jobs=1, cache_dir=cache)
    members["python/pkg0/mod0.py"] = "import missing_now\n"
    second = write_zip(tmp_path / "b" / "layer.zip", members)
    assert _json([second], jobs=1, cache_dir=cache) == _json([second], jobs=1, use_cache=False)
    assert "missing_now" in _json([second], jobs=1, cache_dir=cache)


@pytest.mark.usefixtures("without_result_memo")
def test_directory_inputs_use_the_cache_too(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree", _layer_members(packages=2, modules=2))
    cache = tmp_path / "cache"
    cold = _json([tree], jobs=1, cache_dir=cache)
    assert list((cache / f"v{FORMAT_VERSION}").rglob("*"))
    assert _json([tree], jobs=1, cache_dir=cache) == cold
    (tree / "python/pkg0/mod0.py").write_text("import missing_dir\n")
    assert "missing_dir" in _json([tree], jobs=1, cache_dir=cache)


def test_corrupt_entry_is_ignored_and_rewritten(layer: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    plain = _json([layer], jobs=1, use_cache=False)
    _json([layer], jobs=1, cache_dir=cache)
    store = ContentCache(cache)
    good = dict(store.entries())
    for key, raw in good.items():  # stored again, damaged, in a newer pack: read first
        store.put_entry(key, raw[: len(raw) // 2] + b"garbage")
    store.close()
    assert _json([layer], jobs=1, cache_dir=cache) == plain
    rewritten = dict(ContentCache(cache).entries())  # checked: none damaged
    assert rewritten.keys() == good.keys()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "bad index"])
def test_a_damaged_pack_is_ignored_removed_and_rewritten(
    layer: Path, tmp_path: Path, damage: str
) -> None:
    """A pack is published whole; one damaged since (a torn copy, a full disk) is
    never read: its entries are misses, and the scan writes them again."""
    cache = tmp_path / "cache"
    plain = _json([layer], jobs=1, use_cache=False)
    _json([layer], jobs=1, cache_dir=cache)
    keys = {key for key, _ in ContentCache(cache).entries()}
    packs = list((cache / f"v{FORMAT_VERSION}").glob("*.pack"))
    assert packs and keys
    for pack in packs:
        data = pack.read_bytes()
        if damage == "truncated":
            pack.write_bytes(data[: len(data) // 2])
        elif damage == "garbage":
            pack.write_bytes(b"garbage" * 100)
        elif damage == "empty":
            pack.write_bytes(b"")
        else:  # the index's last byte changed: its CRC-32 no longer matches
            end = len(data) - len(b"abiscan-index\n") - 8
            pack.write_bytes(data[: end - 1] + bytes([data[end - 1] ^ 1]) + data[end:])
    assert _json([layer], jobs=1, cache_dir=cache) == plain
    assert not any(p.exists() for p in packs)  # removed when found damaged
    assert {key for key, _ in ContentCache(cache).entries()} == keys


def test_two_writers_publish_whole_packs(tmp_path: Path) -> None:
    """Two processes (here two caches) writing the same directory: neither sees the
    other's entries before it publishes them, both after, and one key written by
    both reads as either (the same facts)."""
    one, two = ContentCache(tmp_path), ContentCache(tmp_path)
    one.put("a", 1)
    one.put("both", (1, "x"))
    two.put("b", 2)
    two.put("both", (1, "x"))
    assert one.get("a") == 1  # its own pending entries, read back
    assert two.get("a") is None and not two.has("a")
    assert list((tmp_path / f"v{FORMAT_VERSION}").glob("*.pack")) == []
    one.close()
    two.flush()
    third = ContentCache(tmp_path)
    assert (third.get("a"), third.get("b"), third.get("both")) == (1, 2, (1, "x"))
    assert len(list((tmp_path / f"v{FORMAT_VERSION}").glob("*.pack"))) == 2
    assert not list(tmp_path.rglob(".tmp-*"))


def test_an_unflushed_cache_publishes_when_collected(tmp_path: Path) -> None:
    import gc

    store = ContentCache(tmp_path)
    store.put("k", "v")
    del store
    gc.collect()
    assert ContentCache(tmp_path).get("k") == "v"


def test_many_small_packs_are_merged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each scan writes a pack, and each scan reads every pack's index: past a bound,
    the smallest are merged into the next one published, every entry kept (the
    newest of a key winning)."""
    from abiscan.inputs import content_cache

    monkeypatch.setattr(content_cache, "_MAX_PACKS", 8)
    for i in range(20):
        store = ContentCache(tmp_path)
        store.put(f"k{i}", i)
        store.put("latest", i)
        store.close()
    packs = list((tmp_path / f"v{FORMAT_VERSION}").glob("*.pack"))
    assert len(packs) <= 8  # twenty without merging
    store = ContentCache(tmp_path)
    assert [store.get(f"k{i}") for i in range(20)] == list(range(20))
    assert store.get("latest") == 19
    keys = sorted(k for k, _ in store.entries())
    assert keys == sorted([*(f"k{i}" for i in range(20)), "latest"])


def test_a_pack_that_cannot_be_opened_is_a_miss_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a pack whose bytes are wrong is removed: one that cannot be opened now
    (no file descriptor left, removed by another scan) is a miss, nothing more."""
    store = ContentCache(tmp_path)
    store.put("k", 1)
    store.close()
    real = os.open

    def no_descriptor(path: Any, *args: Any) -> int:
        if str(path).endswith(".pack"):
            raise OSError(24, "Too many open files")
        return real(path, *args)

    monkeypatch.setattr(os, "open", no_descriptor)
    assert ContentCache(tmp_path).get("k") is None
    monkeypatch.undo()
    assert ContentCache(tmp_path).get("k") == 1


def test_a_read_only_cache_is_read_and_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a user who cannot write the directory (denied here for root too): its packs
    are read, nothing is written, and nothing raises."""
    store = ContentCache(tmp_path)
    store.put("k", 1)
    store.close()
    real = os.open

    def denied(*_: object) -> None:
        raise PermissionError(13, "Permission denied")

    def read_only(path: Any, flags: int, *args: Any) -> int:
        if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            denied()
        return real(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    monkeypatch.setattr(os, "utime", denied)
    monkeypatch.setattr(os, "replace", denied)
    reader = ContentCache(tmp_path)
    assert reader.get("k") == 1
    reader.put("new", 2)
    assert reader.get("new") is None
    reader.close()
    monkeypatch.undo()
    assert ContentCache(tmp_path).get("new") is None
    assert len(list(tmp_path.rglob("*.pack"))) == 1


def test_temporary_files_left_by_a_dead_process_are_removed(tmp_path: Path) -> None:
    store = ContentCache(tmp_path)
    store.put("k", 1)
    store.close()
    left = store.directory / ".tmp-1-2-3"
    left.write_bytes(b"half a pack")
    recent = store.directory / ".tmp-1-2-4"
    recent.write_bytes(b"being written")
    os.utime(left, (1_000_000, 1_000_000))
    store.trim()
    assert not left.exists() and recent.exists()
    assert ContentCache(tmp_path).get("k") == 1


@pytest.mark.parametrize("how", ["under-a-file", "read-only"])
def test_unusable_cache_dir_never_fails_a_scan(layer: Path, tmp_path: Path, how: str) -> None:
    if how == "under-a-file":
        blocker = tmp_path / "file"
        blocker.write_text("x")
        cache = blocker / "cache"
    else:
        cache = tmp_path / "ro"
        cache.mkdir()
        cache.chmod(0o500)
        if os.access(cache, os.W_OK):
            pytest.skip("running as a user who can write a read-only directory")
    assert _json([layer], jobs=1, cache_dir=cache) == _json([layer], jobs=1, use_cache=False)


def test_atomic_write_leaves_no_partial_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ContentCache(tmp_path)

    def fail(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    store.put("k", {"a": (1, b"x")})
    store.flush()  # the pack cannot be published: dropped whole
    monkeypatch.undo()
    assert ContentCache(tmp_path).get("k") is None
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    store = ContentCache(tmp_path)
    store.put("k", {"a": (1, b"x")})
    store.close()
    assert ContentCache(tmp_path).get("k") == {"a": (1, b"x")}
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_cache_is_bounded_least_recently_used_evicted(tmp_path: Path) -> None:
    store = ContentCache(tmp_path, max_bytes=4000)
    packs = store.directory
    for i in range(40):
        if i == 35:  # read, so used after the packs of k31..k34: kept over them
            assert ContentCache(tmp_path).get("k30") == b"x" * 500
        store.put(f"k{i}", b"x" * 500)
        store.flush()  # one pack each (and a trim)
        newest = max(packs.glob("*.pack"))
        os.utime(newest, (1_000_000 + i, 1_000_000 + i))
    store.trim()
    total = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert total <= 4000
    reader = ContentCache(tmp_path)
    assert reader.get("k39") == b"x" * 500
    assert reader.get("k30") == b"x" * 500
    assert reader.get("k0") is None
    assert reader.get("k34") is None


def test_the_bound_covers_the_packs_of_other_formats(tmp_path: Path) -> None:
    """Packs another format left (an abiscan before an upgrade) count toward the bound
    and, older, go first; a format directory emptied goes; nothing else in the cache
    directory is touched, and under the bound nothing is removed."""
    old = tmp_path / "v7"
    old.mkdir()
    for i in range(3):
        pack = old / f"old{i}.pack"
        pack.write_bytes(b"\0" * 1500)
        os.utime(pack, (1_000 + i, 1_000 + i))
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "x.pack").write_bytes(b"\0" * 5000)
    (tmp_path / "v7.pack").write_bytes(b"\0" * 5000)
    roomy = ContentCache(tmp_path, max_bytes=100_000)
    roomy.put("k", b"x" * 500)
    roomy.flush()
    assert sorted(p.name for p in old.iterdir()) == ["old0.pack", "old1.pack", "old2.pack"]
    store = ContentCache(tmp_path, max_bytes=4000)
    store.put("k2", b"y" * 500)
    store.flush()
    assert sorted(p.name for p in old.iterdir()) == ["old2.pack"]  # the oldest went first
    total = sum(p.stat().st_size for d in (old, store.directory) for p in d.iterdir())
    assert total <= 4000
    assert store.get("k") == b"x" * 500 and store.get("k2") == b"y" * 500
    tiny = ContentCache(tmp_path, max_bytes=1000)
    tiny.trim()
    assert not old.exists()  # emptied, then removed
    assert (mine / "x.pack").exists() and (tmp_path / "v7.pack").exists()


def test_entries_holding_code_or_foreign_classes_are_refused(tmp_path: Path) -> None:
    """A forged entry (valid checksum and key) whose pickle names a function or a class
    outside abiscan's records is a miss, never a value; the forgeries themselves are
    in test_content_cache_ast. Here: what marshal used to let through (a code object)
    and a pickle's own ways of calling (``os.system`` by name)."""
    store = ContentCache(tmp_path)
    code = b"\x80\x05\x8c\x02os\x8c\x06getcwd\x93)R."  # os.getcwd()
    for body in (code, b"\x80\x05\x8c\x08builtins\x8c\x07compile\x93)R."):
        store.put_entry("k", entry_of("k", body))
        assert store.get("k") is None
        store.close()
        assert ContentCache(tmp_path).get("k") is None  # published, still refused
    store.put("k", (1, "a"))
    assert store.get("k") == (1, "a")


def test_default_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABISCAN_CACHE_DIR", "/somewhere/abiscan")
    assert default_cache_dir() == Path("/somewhere/abiscan")
    monkeypatch.delenv("ABISCAN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert default_cache_dir() == Path("/xdg/abiscan")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "abiscan"


# -- the memory budget -------------------------------------------------------------


def test_stack_keeps_only_a_bounded_number_of_bytes(tmp_path: Path) -> None:
    members = {f"python/m{i}.py": "x = 1\n" * 2000 for i in range(50)}  # 12 KB each
    layer = write_zip(tmp_path / "l.zip", members)
    stack = build_stack(TARGET, [open_source(layer, InputKind.LAYER)], memory_budget=100_000)
    for i in range(50):
        assert stack.read(f"/opt/python/m{i}.py").startswith(b"x = 1")
    # Never more than the budget, never the whole layer (600 KB).
    assert 0 < stack.held_bytes <= 100_000
    again = build_stack(TARGET, [open_source(layer, InputKind.LAYER)])
    for i in range(50):
        again.read(f"/opt/python/m{i}.py")
    # With room to spare, what was read is kept (read once, not inflated again).
    assert again.held_bytes == 50 * 12_000


def test_member_over_the_budget_is_an_input_problem(tmp_path: Path) -> None:
    members = _layer_members(packages=2, modules=2)
    members["python/pkg0/big.py"] = "x = 1\n" * 50_000  # 300 KB
    members["python/big_top.py"] = "y = 2\n" * 50_000
    layer = write_zip(tmp_path / "l.zip", members)
    stack = build_stack(TARGET, [open_source(layer, InputKind.LAYER)], memory_budget=200_000)
    with pytest.raises(SourceError, match="memory budget"):
        stack.read("/opt/python/big_top.py")
    report = api.scan([str(layer)], runtime="python3.12", memory_budget=200_000, jobs=1,
                      use_cache=False)
    problems = [p for p in report.problems if "memory budget" in p.problem]
    assert [p.path for p in problems] == ["python/big_top.py"]
    assert problems[0].source == str(layer)
    # The rest of the layer is still reported.
    names = {m.name for m in report.modules}
    assert {"pkg0", "pkg1"} <= names


# -- the command line and start-up ---------------------------------------------------


def test_cli_jobs_and_cache_options_keep_the_output(
    layer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from abiscan.cli import main

    outs = []
    for extra in (["--jobs", "1", "--no-cache"], ["-j", "2", "--cache-dir", str(tmp_path / "c")],
                  ["--jobs", "2", "--cache-dir", str(tmp_path / "c"), "--memory-budget", "64"]):
        status = main(["scan", str(layer), "--format", "json", *extra])
        outs.append((status, capsys.readouterr().out))
    assert outs[0] == outs[1] == outs[2]
    assert list((tmp_path / "c").rglob("*"))
    with pytest.raises(SystemExit) as exc:
        main(["scan", str(layer), "--jobs", "0"])
    assert exc.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_importing_the_cli_loads_no_pipeline() -> None:
    """``abiscan --help`` must start fast: the pipeline loads on the first scan."""
    import subprocess
    import sys

    code = ("import sys, abiscan.cli; print(sorted(m for m in sys.modules if m.startswith("
            "('abiscan.api', 'abiscan.simulate', 'abiscan.elf', 'abiscan.inputs', "
            "'abiscan.report.render', 'packaging', 'concurrent', 'multiprocessing'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_loads_no_command(tmp_path: Path) -> None:
    """``abiscan --help`` builds the command list, not the commands: none of the
    configuration, targets, limits or records, nor typing, dataclasses or pathlib
    (some 40 ms of CPU at start-up); ``abiscan scan --help`` still lists the runtimes."""
    import subprocess
    import sys

    heavy = ("abiscan.config", "abiscan.target", "abiscan.limits", "abiscan.records",
             "abiscan.progress", "abiscan.report", "typing", "dataclasses", "pathlib")
    # What the interpreter loaded before (an editable install's finder loads pathlib).
    code = ("import sys; before = set(sys.modules)\n"
            "import io, contextlib; from abiscan.cli import main; out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    try: main(sys.argv[1:])\n"
            "    except SystemExit as exc: status = exc.code\n"
            "new = set(sys.modules) - before\n"
            f"print(status, sorted(m for m in new if m.startswith({heavy!r})))\n"
            "print(out.getvalue())")

    def run(*argv: str) -> list[str]:
        return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                              text=True, check=True, cwd=tmp_path).stdout.splitlines()

    top = run("--help")
    assert top[0] == "0 []"
    assert "{scan,explain,matrix,capture,targets,demo,audit}" in "\n".join(top)
    scan = run("scan", "--help")
    assert "abiscan.target.profiles" in scan[0]
    assert "built-in Lambda runtime (python3.8, python3.9," in "\n".join(scan)


def test_scan_without_dist_info_loads_no_metadata_reader(tmp_path: Path) -> None:
    import subprocess
    import sys

    so = build_shared_object(exports=["PyInit__one"], needed=["libc.so.6"])
    layer = write_zip(tmp_path / "l.zip", {
        "python/m.py": "import json\n", "python/_one.cpython-312-x86_64-linux-gnu.so": so,
    })
    # packaging (its markers and tags), tomllib and importlib.resources cost a
    # third of the start-up of a scan that needs none of them.
    code = ("import sys; from abiscan import scan; scan([sys.argv[1]], jobs=1, use_cache=False); "
            "print(sorted(m for m in sys.modules if m.startswith(('packaging', "
            "'abiscan.inputs.dists', 'abiscan.rules.distributions', 'concurrent.futures', "
            "'multiprocessing', 'tomllib', 'importlib.resources', 'tempfile'))))")
    out = subprocess.run([sys.executable, "-c", code, str(layer)], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_scan_of_extension_modules_alone_loads_no_body_runner(tmp_path: Path) -> None:
    """Following an extension's imports runs no Python source: the evaluator and the
    body runner (some 17 ms of CPU at start-up) stay unloaded; a source module loads them."""
    import subprocess
    import sys

    # A cffi module: its init imports _cffi_backend, which the layer lacks; the scan
    # follows that native edge to the failure.
    so = build_shared_object(exports=["PyInit__one"], needed=["libc.so.6"],
                             undefined=["PyImport_ImportModule"],
                             rodata=b"\0_cffi_backend\0_init_cffi_1_0_external_module\0")
    one = write_zip(tmp_path / "one.zip", {"python/_one.cpython-312-x86_64-linux-gnu.so": so})
    with_py = write_zip(tmp_path / "py.zip", {"python/m.py": "import json\n"})
    code = ("import sys; from abiscan import scan; r = scan([sys.argv[1]], jobs=1, "
            "use_cache=False); print([m.outcome for m in r.modules], sorted(m for m in "
            "sys.modules if m.startswith(('abiscan.simulate.python.evaluator', "
            "'abiscan.simulate.python.execute', 'abiscan.simulate.python.import_graph'))))")

    def loaded(layer: Path) -> str:
        return subprocess.run([sys.executable, "-c", code, str(layer)], capture_output=True,
                              text=True, check=True).stdout.strip()

    assert loaded(one) == "['error'] []"
    assert loaded(with_py) == ("['ok'] ['abiscan.simulate.python.evaluator', "
                               "'abiscan.simulate.python.execute', "
                               "'abiscan.simulate.python.import_graph']")


def test_cli_scan_of_one_extension_loads_only_what_it_needs(tmp_path: Path) -> None:
    """A one-.so scan from the command line (what ``benchmarks/bench_startup.py``
    times): no source parser (the import graph, the grammar, the runtime-API table),
    no pyelftools DWARF or ARM unwind readers, no TOML parser without a configuration
    file, no pickling or hashing without workers or a cache, not the debugger that
    pyelftools' ``construct`` imports for its debugging constructs, not ``ipaddress``
    (``urllib.parse``'s, for bracketed hosts) and, before CPython 3.12, not
    ``inspect`` (``dataclasses``', for classes without a docstring)."""
    import subprocess
    import sys

    so = build_shared_object(exports=["PyInit__one"], needed=["libc.so.6"])
    layer = write_zip(tmp_path / "one.zip", {"python/_one.cpython-312-x86_64-linux-gnu.so": so})
    heavy = ("abiscan.simulate.python.import_graph", "abiscan.simulate.python.grammar",
             "abiscan.simulate.python.runtime_api", "abiscan.simulate.python.evaluator",
             "abiscan.inputs.dists", "elftools.dwarf", "elftools.ehabi", "elftools.elf.elffile",
             "tomllib", "pickle", "hashlib", "packaging", "multiprocessing", "concurrent",
             "pdb", "traceback", "ipaddress")
    if sys.version_info < (3, 12):  # from 3.12, dataclasses reads annotations with inspect
        heavy += ("inspect", "dis", "linecache")
    # Not what the interpreter imported before (an editable install's path hook may
    # import pathlib, and with it urllib.parse and ipaddress, at start-up).
    code = ("import sys, io, contextlib; pre = set(sys.modules)\n"
            "from abiscan.cli import main; out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out): status = main(sys.argv[1:])\n"
            f"print(status, sorted(m for m in set(sys.modules) - pre if m.startswith({heavy!r})))")
    run = subprocess.run([sys.executable, "-c", code, "scan", str(layer), "--no-cache"],
                         capture_output=True, text=True, check=True, cwd=tmp_path)
    assert run.stdout.strip() == "0 []"


def test_cli_scan_without_cache_or_workers_loads_no_prefetch(tmp_path: Path) -> None:
    """A one-.so scan without the content cache can start no worker and has no cache to
    serve: it loads neither the worker pool (:mod:`abiscan.prefetch`) nor the content
    cache and the result memo, nor the SARIF writer, the builders of findings it does
    not make, the target-file schema or ``isal`` (its one member is small); the same
    scan with a cache loads the cache and the parse hook that serves it. The two
    reports are the same."""
    import subprocess
    import sys

    so = build_shared_object(exports=["PyInit__one"], needed=["libc.so.6"])
    layer = write_zip(tmp_path / "one.zip", {"python/_one.cpython-312-x86_64-linux-gnu.so": so})
    watched = ("abiscan.prefetch", "abiscan.inputs.content_cache", "abiscan.result_memo",
               "abiscan.report.sarif", "abiscan.rules.binaries", "abiscan.rules.linker",
               "abiscan.rules.symbols", "abiscan.rules.imports", "abiscan.target.bytecode",
               "abiscan.target.schema", "isal")
    code = ("import sys, io, contextlib; from abiscan.cli import main; out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out): status = main(sys.argv[1:])\n"
            f"print(status, sorted(m for m in sys.modules if m in {watched!r}))\n"
            "print(out.getvalue())")

    def run(*options: str) -> list[str]:
        done = subprocess.run([sys.executable, "-c", code, "scan", str(layer), "--format",
                               "json", *options], capture_output=True, text=True, check=True,
                              cwd=tmp_path)
        return done.stdout.split("\n", 1)

    bare, bare_report = run("--no-cache")
    cached, cached_report = run("--cache-dir", str(tmp_path / "cache"))
    assert bare == "0 []"
    assert cached == ("0 ['abiscan.inputs.content_cache', 'abiscan.prefetch', "
                      "'abiscan.result_memo']")
    assert bare_report == cached_report


def test_cli_scan_of_one_extension_compiles_no_record_equality(tmp_path: Path) -> None:
    """abiscan's records (:func:`abiscan.records.record`, and ``mutable_record``, whose
    ``__hash__`` is None) compile ``__eq__`` and ``__hash__`` on first use: a one-.so
    scan from the command line compares and hashes none of them, so it compiles none
    (``dataclass`` compiled both, and ``__init__``, ``__setattr__``, ``__delattr__`` and
    ``__repr__``, for every class at import: docs/decisions.md, *Start-up*); and it
    makes no class with ``dataclass`` itself, and compiles no ``__init__``: each
    comes compiled with the package (:mod:`abiscan._record_inits`). Each field's
    ``type`` is its annotation, as ``dataclass`` makes it."""
    import subprocess
    import sys

    so = build_shared_object(exports=["PyInit__one"], needed=["libc.so.6"])
    layer = write_zip(tmp_path / "one.zip", {"python/_one.cpython-312-x86_64-linux-gnu.so": so})
    code = ("import sys, io, contextlib; from abiscan.cli import main; out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out): status = main(sys.argv[1:])\n"
            "def shared(c, name):\n"
            "    code = getattr(c.__dict__.get(name), '__code__', None)\n"
            "    return code is not None and code.co_filename.endswith('records.py')\n"
            "classes = {c for m in list(sys.modules.values()) if m.__name__.startswith('abiscan')\n"
            "           for c in vars(m).values()\n"
            "           if isinstance(c, type) and '__dataclass_fields__' in c.__dict__}\n"
            "records = {c for c in classes if shared(c, '__repr__')}\n"
            "compiled = sorted(f'{c.__name__}.{n}' for c in records for n in ('__eq__', "
            "'__hash__') if not shared(c, n) and c.__dict__.get(n) is not None)\n"
            "# dataclass's own __repr__ (a class's own is in its module's file)\n"
            "made = sorted(c.__name__ for c in classes - records if c.__dict__['__repr__']"
            ".__code__.co_filename != sys.modules[c.__module__].__file__)\n"
            "# an __init__ compiled now, not with the package (abiscan._record_inits)\n"
            "inits = sorted(c.__name__ for c in records\n"
            "               if c.__dict__['__init__'].__code__.co_filename == '<string>')\n"
            "# a field whose type is not its annotation (records make their fields\n"
            "# without dataclass's lookups, then give each its annotation back)\n"
            "typed = sorted(f'{c.__name__}.{n}' for c in records\n"
            "               for n, f in c.__dataclass_fields__.items()\n"
            "               if f.type is not c.__dict__['__annotations__'][n])\n"
            "print(status, len(records) > 40, compiled, made, inits, typed)")
    run = subprocess.run([sys.executable, "-c", code, "scan", str(layer), "--no-cache"],
                         capture_output=True, text=True, check=True, cwd=tmp_path)
    # If a record of the scan's path changed: python tools/gen_record_inits.py
    assert run.stdout.strip() == "0 True [] [] [] []"


def test_four_threads_with_workers_and_one_cache_agree(layer: Path, tmp_path: Path) -> None:
    """Scans in threads of one program, each with its workers, sharing one cache dir."""
    from concurrent.futures import ThreadPoolExecutor

    expected = _json([layer], jobs=1, use_cache=False)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: _json([layer], jobs=2, cache_dir=tmp_path / "c"),
                            range(4)))
    assert got == [expected] * 4


def test_an_entry_packed_once_is_stored_and_read_as_put_would(tmp_path: Path) -> None:
    """A worker encodes a program once: the bytes it sends are the entry it stores,
    and the main process decodes them as the cache reads them; a corrupt copy or
    another key is refused. The entry's directory is made on the first write."""
    from abiscan.inputs.content_cache import pack_entry, unpack_entry

    value = {"a": (1, b"x", frozenset({"y"}))}
    entry = pack_entry("k", value)
    assert unpack_entry(entry, "k") == value
    with pytest.raises(CacheFormatError):
        unpack_entry(entry, "other key")
    with pytest.raises(CacheFormatError):
        unpack_entry(entry[:-1] + bytes([entry[-1] ^ 1]), "k")
    store = ContentCache(tmp_path / "absent")
    store.put_entry("k", entry)
    assert store.get("k") == value
    assert store.raw("k") == entry
    store.close()
    assert ContentCache(tmp_path / "absent").raw("k") == entry
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_rarely_used_standard_modules_load_on_first_use() -> None:
    """After :func:`defer_rare_imports`, ``dataclasses`` and ``urllib.parse`` are
    imported without ``inspect`` and ``ipaddress``, which load when first used: a
    dataclass without a docstring gets its signature as one, a bracketed host is
    parsed, and no stand-in stays in ``sys.modules``."""
    code = (
        "import sys\n"
        "for m in ('dataclasses', 'inspect', 'urllib.parse', 'ipaddress'):\n"
        "    sys.modules.pop(m, None)  # an editable install's path hook may have them\n"
        "from abiscan._deferred_imports import defer_rare_imports\n"
        "defer_rare_imports()\n"
        "import dataclasses, urllib.parse\n"
        "print(sorted(m for m in ('inspect', 'ipaddress') if m in sys.modules))\n"
        "@dataclasses.dataclass\n"
        "class A:\n"
        "    x: int\n"
        "print(A.__doc__)\n"
        # From CPython 3.11.4, urlsplit checks a bracketed host with ipaddress.
        "print(urllib.parse.urlsplit('http://[::1]:80/').hostname)\n"
        "import inspect\n"
        "print(dataclasses.inspect.signature is inspect.signature, sorted({type(m).__name__ "
        "for m in sys.modules.values()}))\n"
    )
    assert _python_lines(code) == ["[]", "A(x: int)", "::1", "True ['module']"]


def test_construct_debuggers_modules_load_on_first_use() -> None:
    """pyelftools' ``construct.debug`` imported through abiscan holds stand-ins for
    ``pdb`` and ``traceback`` that give the real modules' attributes when read; the
    stand-ins never stay in ``sys.modules``; a module imported before is used as it is."""
    code = (
        "import sys\n"
        "import abiscan.elf.reader\n"
        "import elftools.construct.debug as d\n"
        "print(sorted(m for m in ('pdb', 'traceback') if m in sys.modules))\n"
        "print(d.pdb.Pdb.__module__, d.traceback.format_exc.__module__)\n"
        "import pdb, traceback\n"
        "print(pdb.Pdb is d.pdb.Pdb, type(sys.modules['pdb']).__name__)\n"
    )
    assert _python_lines(code) == ["[]", "pdb traceback", "True module"]
    first = "import pdb, abiscan.elf.reader, elftools.construct.debug as d\nprint(d.pdb is pdb)"
    assert _python_lines(first) == ["True"]


def _python_lines(code: str) -> list[str]:
    """What ``code`` prints, run by this interpreter in a process of its own."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return run.stdout.splitlines()
