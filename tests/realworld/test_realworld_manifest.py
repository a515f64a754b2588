"""The real-world suite's manifest and harness logic, checked without any download.

The suite itself is opt-in (``python -m realworld run``); these tests only make sure
what it would run is well formed.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name, parse_wheel_filename

from realworld.layers import build_layer, modules_of, unpack
from realworld.paths import MANIFEST, PROJECTS
from realworld.pypi import best_wheel, target_tags
from realworld.run import select_modules

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    dupes = {k for k in keys if keys.count(k) > 1}
    assert not dupes, f"duplicate keys: {sorted(dupes)}"
    return dict(pairs)


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(MANIFEST.read_text(), object_pairs_hook=_no_duplicates)
    return data


def test_manifest_pins_every_file_by_version_and_sha256(manifest: dict[str, Any]) -> None:
    assert manifest["pythons"] == ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13"]
    assert len(manifest["projects"]) >= 150
    filenames: dict[str, str] = {}
    for name, entry in manifest["projects"].items():
        assert name == canonicalize_name(name)
        assert entry["pins"], name
        for python, files in entry["pins"].items():
            assert python in manifest["pythons"]
            assert "x86_64" in files, (name, python)
            for variant, f in files.items():
                assert variant in ("x86_64", "aarch64", "glibc228", "musl")
                assert _SHA256.match(f["sha256"]), (name, f["filename"])
                dist, version, _, _ = parse_wheel_filename(f["filename"])
                assert canonicalize_name(dist) == name
                assert str(version) == f["version"] or version.public == f["version"]
                # One file name, one digest, wherever it is pinned.
                assert filenames.setdefault(f["filename"], f["sha256"]) == f["sha256"]


def test_every_stack_project_is_pinned(manifest: dict[str, Any]) -> None:
    spec = json.loads(PROJECTS.read_text(), object_pairs_hook=_no_duplicates)
    for stack, names in spec["stacks"].items():
        assert len(names) == len(set(names)), stack
        for n in names:
            assert canonicalize_name(n) in manifest["projects"], (stack, n)
    for cat, names in spec["categories"].items():
        for n in names:
            assert canonicalize_name(n) in manifest["projects"], (cat, n)
    for entry in manifest["projects"].values():
        for deps in entry["requires"].values():
            assert all(d == canonicalize_name(d) for d in deps)


def test_wheel_choice_follows_the_runtime_glibc() -> None:
    files = [
        {"filename": "x-1-cp311-cp311-manylinux_2_28_x86_64.whl"},
        {"filename": "x-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"},
        {"filename": "x-1-cp311-cp311-musllinux_1_2_x86_64.whl"},
        {"filename": "x-1-cp312-cp312-manylinux_2_28_x86_64.whl"},
    ]
    # python3.11 runs on Amazon Linux 2 (glibc 2.26), python3.12 on AL2023 (2.34).
    chosen = best_wheel(files, target_tags("3.11", "x86_64"), "3.11")
    assert chosen is not None and "manylinux_2_17" in chosen["filename"]
    newer = best_wheel(files, target_tags("3.11", "x86_64", glibc_minor=28), "3.11")
    assert newer is not None and "manylinux_2_28" in newer["filename"]
    musl = best_wheel(files, target_tags("3.11", "x86_64", libc="musl"), "3.11")
    assert musl is not None and "musllinux" in musl["filename"]
    assert best_wheel(files, target_tags("3.12", "aarch64"), "3.12") is None


def _wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg/__init__.py", "")
        zf.writestr("pkg/_speed.cpython-312-x86_64-linux-gnu.so", b"\x7fELF")
        zf.writestr("pkg/sub/deep.py", "")
        zf.writestr("pkg/tests/test_x.py", "")
        zf.writestr("pkg.libs/libz.so.1", b"\x7fELF")
        zf.writestr("solo.py", "")
        zf.writestr("pkg-1.data/purelib/extra_mod.py", "")
        zf.writestr("pkg-1.data/scripts/tool", "")
        zf.writestr("pkg-1.dist-info/METADATA", "Name: pkg\n")
    return path


def test_wheels_become_layers_and_module_lists(tmp_path: Path) -> None:
    unpacked = unpack(_wheel(tmp_path / "pkg-1-py3-none-any.whl"), "0" * 64, tmp_path)
    mods, exts = modules_of(unpacked)
    # pkg.sub has no __init__.py: a namespace package, reached through pkg.sub.deep.
    assert mods == ["extra_mod", "pkg", "pkg._speed", "pkg.sub.deep", "solo"]
    assert exts == ["pkg._speed"]
    assert select_modules(mods, exts, cap=4) == ["extra_mod", "pkg", "solo", "pkg._speed"]
    assert select_modules(mods, exts, cap=9)[-1] == "pkg.sub.deep"
    layer = build_layer([(unpacked, "0" * 64)], "site-packages", "3.11", tmp_path)
    site = layer.root / "python/lib/python3.11/site-packages"
    assert (site / "extra_mod.py").is_file() and (site / "pkg/sub/deep.py").is_file()
    assert not (site / "pkg-1.data").exists()
    # The layer holds what Lambda would see and nothing else.
    assert sorted(p.name for p in layer.root.iterdir()) == ["python"]


def test_agreement_is_outcome_then_type_then_exact_message() -> None:
    from realworld.report import compare, render
    from realworld.scenarios import LayerSpec, Scenario
    from realworld.truth import Truth

    scen = Scenario(category="minor", python="3.12",
                    layers=(LayerSpec(stack="crypto", python="3.11"),))
    real = Truth(outcome="error", type="ModuleNotFoundError",
                 message="No module named '_cffi_backend'")
    exact = compare(scen, "cffi", "_cffi_backend", real, {
        "outcome": "error", "reason": "",
        "error": {"type": "ModuleNotFoundError", "message": "No module named '_cffi_backend'"}})
    assert exact.outcome_agrees and exact.type_agrees and exact.message_agrees
    worded = compare(scen, "cffi", "_cffi_backend", real, {
        "outcome": "error", "reason": "", "error": {"type": "ModuleNotFoundError",
                                                    "message": "No module named 'cffi'"}})
    assert worded.type_agrees and not worded.message_agrees
    panic = compare(scen, "cryptography", "cryptography.hazmat.bindings._rust",
                    Truth(outcome="error", type="pyo3_runtime.PanicException", message="x"),
                    {"outcome": "error", "reason": "",
                     "error": {"type": "PanicException", "message": "x"}})
    assert panic.message_agrees
    unknown = compare(scen, "cffi", "cffi", Truth(outcome="ok"),
                      {"outcome": "unknown", "reason": "may end in X", "error": None})
    assert not unknown.outcome_agrees
    crash = compare(scen, "pyyaml", "_yaml", Truth(outcome="crash", type="signal 11"), None)
    assert crash.truth_type == "<crash: signal 11>" and crash.predicted == "missing"
    manifest = {"pythons": ["3.12"], "projects": {}}
    text = render([exact, worded, panic, unknown, crash], manifest, cap=12, elapsed=60.0,
                  timings={"build": 1.0, "truth": 2.0, "scan": 3.0})
    # 5 modules with truth; 2 predicted unknown or missing; 3 outcome agreements, 3 types,
    # 2 exact messages.
    assert "| minor | 1 | 5 | 1 / 4 | 0 / 3 / 2 | 40.0% | 60.0% | 60.0% | 40.0% | 0 | 0 |" in text


def test_runtime_section_pins_what_abiscans_data_says_the_runtime_has(
        manifest: dict[str, Any]) -> None:
    from realworld.runtime import runtime_packages_for

    assert list(manifest["runtime"]) == manifest["pythons"]
    for python, pins in manifest["runtime"].items():
        wanted = {w.name: w for w in runtime_packages_for(python)}
        # Only what the data calls certain or likely: simplejson on python3.12 is
        # "possible" (inferred), so the truth leaves it out.
        assert set(pins) == set(wanted), python
        assert {"boto3", "botocore", "urllib3"} <= set(pins)
        for name, f in pins.items():
            assert _SHA256.match(f["sha256"]), (python, name)
            assert f["location"] == wanted[name].location
            if wanted[name].version is not None:
                assert f["version"] == wanted[name].version, (python, name)
    assert "simplejson" not in manifest["runtime"]["3.12"]
    assert manifest["runtime"]["3.11"]["simplejson"]["version"] == "3.20.1"


def test_truth_sys_path_follows_lambda_order(tmp_path: Path) -> None:
    from realworld.runtime import RuntimeDir
    from realworld.truth import lambda_entries, shadowed

    opt = tmp_path / "opt"
    old = [RuntimeDir(location="/var/runtime", path=tmp_path / "var-runtime")]
    # Up to python3.10 /var/runtime comes after /opt and before the standard library.
    assert lambda_entries(opt, "3.9", old) == (
        [str(opt / "python/lib/python3.9/site-packages"), str(opt / "python"),
         str(tmp_path / "var-runtime")], [])
    new = [RuntimeDir(location="/var/lang/lib/python3.12/site-packages",
                      path=tmp_path / "site")]
    before, after = lambda_entries(opt, "3.12", new)
    assert before[-1] == str(tmp_path / "site") and after == []
    # From python3.11 on, the interpreter's site-packages comes before /var/runtime.
    assert lambda_entries(opt, "3.12", [*old, *new])[0][-2:] == [
        str(tmp_path / "site"), str(tmp_path / "var-runtime")]
    # The layers shadow the runtime only when they carry every one of its modules.
    (tmp_path / "site" / "six.py").parent.mkdir(parents=True)
    (tmp_path / "site" / "six.py").write_text("")
    (tmp_path / "site" / "boto3").mkdir()
    (tmp_path / "site" / "boto3" / "__init__.py").write_text("")
    (opt / "python" / "boto3").mkdir(parents=True)
    (opt / "python" / "boto3" / "__init__.py").write_text("")
    assert not shadowed(opt, "3.12", new)
    (opt / "python" / "six.py").write_text("")
    assert shadowed(opt, "3.12", new)


def _record(truth: str, predicted: str) -> Any:
    from realworld.report import Record

    return Record(scenario="arch/x/on-3.12", category="arch", python="3.12", distribution="d",
                  module="m", truth_outcome="error", truth_type="ImportError",
                  truth_message=truth, predicted="error", predicted_type="ImportError",
                  predicted_message=predicted, reason="", confidence="certain")


def test_messages_compare_with_either_spelling_of_the_executable() -> None:
    # The truth's interpreter reads /var/lang/bin/python; Lambda's is python3.12.
    same = _record('from "/var/lang/bin/python"', 'from "/var/lang/bin/python3.12"')
    assert same.message_agrees and same.host_only is None
    assert not _record('from "/usr/bin/python"', 'from "/var/lang/bin/python3.12"').message_agrees


def test_host_only_messages_are_marked_but_still_disagree() -> None:
    from realworld.report import cause

    r = _record("/lib/x86_64-linux-gnu/libc.so: invalid ELF header",
                "libc.so: cannot open shared object file: No such file or directory")
    assert not r.message_agrees and r.host_only is not None
    assert cause(r).startswith("host-only message (ImportError): this host's libc.so")


def test_a_glibc_need_this_host_meets_has_no_truth_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """bcrypt built for glibc 2.28 on a 2.26 target imports on a glibc 2.36 host: the
    record is left out of the agreement, not counted as a false error."""
    import realworld.report as report
    from realworld.scenarios import LayerSpec, Scenario
    from realworld.truth import Truth

    scen = Scenario(category="minor", python="3.11",
                    layers=(LayerSpec(stack="crypto", python="3.12"),))
    reason = ("_bcrypt.abi3.so needs version GLIBC_2.28 of libc.so.6, which the target's "
              "/lib64/libc.so.6 does not define")
    pred = {"outcome": "error", "reason": reason,
            "error": {"type": "ImportError", "message": "version `GLIBC_2.28' not found"}}
    other = report.compare(scen, "six", "six", Truth(outcome="ok"),
                           {"outcome": "ok", "reason": "", "error": None})
    assert other.outcome_agrees and not other.beyond_host
    monkeypatch.setattr(report, "_HOST_GLIBC", (2, 36))
    r = report.compare(scen, "bcrypt", "bcrypt", Truth(outcome="ok"), pred)
    assert r.beyond_host and not r.outcome_agrees
    row = report._row("minor", [r, other])
    assert row[3] == "1 / 0" and row[-2] == "0"  # one judged record, no false error
    monkeypatch.setattr(report, "_HOST_GLIBC", (2, 26))  # a host as old as the target
    assert not r.beyond_host
    assert report._row("minor", [r, other])[-2] == "1"
