"""The result memo: an unchanged scan is answered whole, and only an unchanged one.

A hit must be byte-identical to a fresh scan, and every part of what a report
depends on must be in the key: each test changes one part and checks the
memo misses (the analysis runs again) and the answer is the fresh one.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from abiscan import api, result_memo
from abiscan.inputs.content_cache import ContentCache
from abiscan.inputs.sources import InputKind
from abiscan.limits import DEFAULT_LIMITS
from abiscan.report.render import render_json
from abiscan.target.profiles import builtin_target
from abiscan.target.system_libraries import SystemLibrary
from abiscan.testing.elf_writer import build_shared_object
from tests.helpers import write_tree, write_zip


def _members() -> dict[str, bytes | str]:
    return {
        "python/pkg/__init__.py": "from . import mod\nimport missing_optional_x\n",
        "python/pkg/mod.py": "import json\nvalue = 1\n",
        "python/pkg/_fast.cpython-312-x86_64-linux-gnu.so": build_shared_object(
            machine="x86_64", exports=["PyInit__fast"], needed=["libc.so.6", "libgone.so.1"]
        ),
    }


class _Analyses:
    """Counts the scans that were not answered by the memo."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.keys: list[str | None] = []
        real_analyse, real_key = api.analyse, result_memo.memo_key

        def analyse(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return real_analyse(*args, **kwargs)

        def memo_key(*args: Any, **kwargs: Any) -> str | None:
            key = real_key(*args, **kwargs)
            self.keys.append(key)
            return key

        monkeypatch.setattr(api, "analyse", analyse)
        monkeypatch.setattr(result_memo, "memo_key", memo_key)


@pytest.fixture()
def analyses(monkeypatch: pytest.MonkeyPatch) -> _Analyses:
    return _Analyses(monkeypatch)


def _json(layers: list[Path], **kwargs: Any) -> str:
    kwargs.setdefault("runtime", "python3.12")
    kwargs.setdefault("arch", "x86_64")
    kwargs.setdefault("jobs", 1)
    return render_json(api.scan([str(p) for p in layers], **kwargs))


def test_a_hit_is_byte_identical_and_runs_no_analysis(tmp_path: Path, analyses: _Analyses) -> None:
    layer = write_zip(tmp_path / "layer.zip", _members())
    cache = tmp_path / "cache"
    fresh = _json([layer], use_cache=False)
    assert _json([layer], cache_dir=cache) == fresh
    assert analyses.count == 2
    assert _json([layer], cache_dir=cache) == fresh
    assert _json([layer], cache_dir=cache, jobs=2) == fresh  # jobs is not in the key
    assert analyses.count == 2
    assert "libgone.so.1" in fresh and "missing_optional_x" in fresh


def test_no_cache_is_no_memo(tmp_path: Path, analyses: _Analyses) -> None:
    layer = write_zip(tmp_path / "layer.zip", _members())
    for _ in range(2):
        _json([layer], use_cache=False)
    assert analyses.count == 2
    assert analyses.keys == []


def _changed_member(tmp_path: Path) -> list[Path]:
    changed = {**_members(), "python/pkg/mod.py": "import json\nvalue = 2\n"}
    return [write_zip(tmp_path / "b" / "layer.zip", changed)]


def _added_member(tmp_path: Path) -> list[Path]:
    return [write_zip(tmp_path / "b" / "layer.zip", {**_members(), "python/extra.py": ""})]


def _removed_member(tmp_path: Path) -> list[Path]:
    members = _members()
    del members["python/pkg/mod.py"]
    return [write_zip(tmp_path / "b" / "layer.zip", members)]


def _renamed_member(tmp_path: Path) -> list[Path]:
    members = _members()
    members["python/pkg/mod2.py"] = members.pop("python/pkg/mod.py")
    return [write_zip(tmp_path / "b" / "layer.zip", members)]


def _mode_changed(tmp_path: Path) -> list[Path]:
    return [write_zip(tmp_path / "b" / "layer.zip", _members(), mode=0o600)]


def _other_label(tmp_path: Path) -> list[Path]:
    return [write_zip(tmp_path / "other-name.zip", _members())]


def _second_layer(tmp_path: Path) -> list[Path]:
    return [
        write_zip(tmp_path / "layer.zip", _members()),
        write_zip(tmp_path / "two.zip", {"python/two.py": ""}),
    ]


# Each: what the second scan changes, against a first scan of layer.zip.
_INPUT_CHANGES: dict[str, Callable[[Path], list[Path]]] = {
    "a member's bytes (CRC-32)": _changed_member,
    "a member added": _added_member,
    "a member removed": _removed_member,
    "a member renamed": _renamed_member,
    "a member's mode": _mode_changed,
    "the input's label": _other_label,
    "another layer": _second_layer,
}


@pytest.mark.parametrize("change", list(_INPUT_CHANGES))
def test_a_changed_input_misses(tmp_path: Path, analyses: _Analyses, change: str) -> None:
    layer = write_zip(tmp_path / "layer.zip", _members())
    cache = tmp_path / "cache"
    _json([layer], cache_dir=cache)
    assert _json([layer], cache_dir=cache) and analyses.count == 1  # primed: a hit
    second = _INPUT_CHANGES[change](tmp_path)
    got = _json(second, cache_dir=cache)
    assert analyses.count == 2
    assert analyses.keys[-1] != analyses.keys[0]
    assert got == _json(second, use_cache=False)


def test_layer_order_is_in_the_key(tmp_path: Path, analyses: _Analyses) -> None:
    one = write_zip(tmp_path / "one.zip", _members())
    two = write_zip(tmp_path / "two.zip", {"python/pkg/mod.py": "raise ImportError('late')\n"})
    cache = tmp_path / "cache"
    forward = _json([one, two], cache_dir=cache)
    backward = _json([two, one], cache_dir=cache)
    assert analyses.count == 2
    assert forward != backward
    assert backward == _json([two, one], use_cache=False)


@pytest.mark.parametrize(
    "option",
    [
        {"runtime": "python3.11"},
        {"arch": "arm64"},
        {"imports": ["pkg.mod"]},
        {"limits": DEFAULT_LIMITS.replace(source_bytes=10)},
        {"memory_budget": 64 * 1024 * 1024},
        {"labels": {"LAYER": "s3://bucket/layer.zip"}},
    ],
    ids=lambda o: next(iter(o)),
)
def test_an_option_that_changes_the_report_misses(
    tmp_path: Path, analyses: _Analyses, option: dict[str, Any]
) -> None:
    layer = write_zip(tmp_path / "layer.zip", _members())
    if "labels" in option:
        option = {"labels": {str(layer): option["labels"]["LAYER"]}}
    cache = tmp_path / "cache"
    _json([layer], cache_dir=cache)
    got = _json([layer], cache_dir=cache, **option)
    assert analyses.count == 2
    assert got == _json([layer], use_cache=False, **option)
    assert _json([layer], cache_dir=cache, **option) == got
    assert analyses.count == 3  # and that scan is remembered in turn


def test_every_field_of_the_target_is_in_the_key(tmp_path: Path) -> None:
    """A captured profile: changing any field, or one library of its embedded
    inventory, changes the key; the order of a set inside it does not."""
    layer = write_zip(tmp_path / "layer.zip", _members())
    sources, opened, problems = api.open_inputs([(str(layer), InputKind.LAYER)])
    base = builtin_target("python3.12", "x86_64")
    inventory = base.inventory()
    captured = dataclasses.replace(base, system=inventory)

    def key(target: Any) -> str | None:
        return result_memo.memo_key(
            [(str(layer), InputKind.LAYER)], opened, problems, target, [], DEFAULT_LIMITS, 1 << 28
        )

    try:
        keys = {key(base), key(captured)}
        assert len(keys) == 2
        changed = [
            dataclasses.replace(captured, libc_version="2.17"),
            dataclasses.replace(captured, sys_path=(*captured.sys_path, "/extra")),
            dataclasses.replace(captured, notes=("captured elsewhere",)),
            dataclasses.replace(
                captured,
                system=dataclasses.replace(inventory, libraries=inventory.libraries[1:]),
            ),
        ]
        for target in changed:
            keys.add(key(target))
        assert len(keys) == 2 + len(changed)
        lib = SystemLibrary(path="/lib64/libx.so.1", soname="libx.so.1",
                            exports=frozenset({"a", "b", "c"}))
        again = SystemLibrary(path="/lib64/libx.so.1", soname="libx.so.1",
                              exports=frozenset(["c", "b", "a"]))
        with_lib = dataclasses.replace(inventory, libraries=(*inventory.libraries, lib))
        with_again = dataclasses.replace(inventory, libraries=(*inventory.libraries, again))
        assert key(dataclasses.replace(base, system=with_lib)) == key(
            dataclasses.replace(base, system=with_again)
        )
    finally:
        for source in sources:
            source.close()


def test_abiscan_and_python_are_in_the_key(
    tmp_path: Path, analyses: _Analyses, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = write_zip(tmp_path / "layer.zip", _members())
    cache = tmp_path / "cache"
    _json([layer], cache_dir=cache)
    real = result_memo.environment()
    assert real[0] == api.__version__
    # The libraries' own __version__, as their distributions' metadata say.
    from importlib import metadata

    assert f"elftools=={metadata.version('pyelftools')}" in real
    assert f"packaging=={metadata.version('packaging')}" in real
    for i in range(len(real)):
        other = (*real[:i], real[i] + " (another)", *real[i + 1 :])
        monkeypatch.setattr(result_memo, "environment", lambda other=other: other)
        _json([layer], cache_dir=cache)
    assert analyses.count == 1 + len(real)
    assert len(set(analyses.keys)) == 1 + len(real)


def test_the_package_digest_covers_code_and_data(tmp_path: Path) -> None:
    package = write_tree(tmp_path / "pkg", {"a.py": "x = 1\n", "data/t.json": "{}"})
    first = result_memo.package_digest(package)
    (package / "data" / "t.json").write_text('{"k": 1}')
    second = result_memo.package_digest(package)
    (package / "data" / "t.json").write_text("{}")
    (package / "b.py").write_text("")
    third = result_memo.package_digest(package)
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert len({first, second, third}) == 3
    assert result_memo.package_digest(package) == third  # compiled files are not the code
    assert result_memo.package_digest(Path(result_memo.__file__).parent)


def test_a_changed_file_in_a_directory_misses(tmp_path: Path, analyses: _Analyses) -> None:
    tree = write_tree(tmp_path / "tree", _members())
    cache = tmp_path / "cache"
    _json([tree], cache_dir=cache)
    _json([tree], cache_dir=cache)
    assert analyses.count == 1
    mod = tree / "python/pkg/mod.py"
    st = mod.stat()
    mod.write_text("import json\nvalue = 3\n")  # same size
    os.utime(mod, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime
    got = _json([tree], cache_dir=cache)
    assert analyses.count == 2  # the ctime still says it changed
    assert got == _json([tree], use_cache=False)
    (tree / "python/pkg/mod.py").chmod(0o600)
    _json([tree], cache_dir=cache)
    assert analyses.count == 4


def _memo_key(analyses: _Analyses) -> str:
    key = analyses.keys[-1]
    assert key is not None
    return key


@pytest.mark.parametrize("damage", ["truncated", "another value", "another key"])
def test_a_corrupt_memo_entry_is_a_miss_and_rewritten(
    tmp_path: Path, analyses: _Analyses, damage: str
) -> None:
    layer = write_zip(tmp_path / "layer.zip", _members())
    cache = tmp_path / "cache"
    fresh = _json([layer], cache_dir=cache)
    key = _memo_key(analyses)
    store = ContentCache(cache)
    stored = store.raw(key)
    assert stored is not None
    # Stored again, damaged, in a newer pack: it is the entry a scan reads.
    if damage == "truncated":
        store.put_entry(key, stored[:-20])
    elif damage == "another value":
        store.put(key, ("not", "a", "report", (), "x"))
    else:
        store.put("another key", (1,))
        other = store.raw("another key")
        assert other is not None
        store.put_entry(key, other)
    store.close()
    assert _json([layer], cache_dir=cache) == fresh
    assert analyses.count == 2
    assert _json([layer], cache_dir=cache) == fresh
    assert analyses.count == 2  # rewritten: a hit again


def test_a_read_only_cache_never_fails_and_never_answers(
    tmp_path: Path, analyses: _Analyses
) -> None:
    layer = write_zip(tmp_path / "layer.zip", _members())
    cache = tmp_path / "ro"
    cache.mkdir()
    cache.chmod(0o500)
    try:
        if os.access(cache, os.W_OK):
            pytest.skip("running as a user who can write a read-only directory")
        fresh = _json([layer], use_cache=False)
        assert _json([layer], cache_dir=cache) == fresh
        assert _json([layer], cache_dir=cache) == fresh
        assert analyses.count == 3
    finally:
        cache.chmod(0o700)


def test_a_cache_under_a_file_never_fails(tmp_path: Path, analyses: _Analyses) -> None:
    layer = write_zip(tmp_path / "layer.zip", _members())
    blocker = tmp_path / "file"
    blocker.write_text("x")
    fresh = _json([layer], use_cache=False)
    assert _json([layer], cache_dir=blocker / "cache") == fresh
    assert _json([layer], cache_dir=blocker / "cache") == fresh
    assert analyses.count == 3


def test_a_failed_read_is_not_remembered(tmp_path: Path, analyses: _Analyses) -> None:
    """A member over the memory budget is not read: the next scan tries again."""
    members = {**_members(), "python/pkg/big.py": "x = 1\n" * 200_000}
    layer = write_zip(tmp_path / "layer.zip", members)
    cache = tmp_path / "cache"
    budget = 1024 * 1024
    first = _json([layer], cache_dir=cache, memory_budget=budget, imports=["pkg.big"])
    assert "over the memory budget" in first
    assert _json([layer], cache_dir=cache, memory_budget=budget, imports=["pkg.big"]) == first
    assert analyses.count == 2
    assert not ContentCache(cache).has(_memo_key(analyses))


def test_an_internal_error_is_not_remembered(
    tmp_path: Path, analyses: _Analyses, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = write_zip(tmp_path / "layer.zip", _members())
    cache = tmp_path / "cache"

    def broken(*_: object) -> list[object]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(api, "_dead_root_findings", broken)
    first = _json([layer], cache_dir=cache)
    assert "a bug" in first
    monkeypatch.undo()
    analyses = _Analyses(monkeypatch)
    fixed = _json([layer], cache_dir=cache)
    assert analyses.count == 1
    assert "a bug" not in fixed
