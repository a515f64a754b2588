from __future__ import annotations

import json
from pathlib import Path

import pytest

from abiscan.target.profiles import (
    Target,
    TargetError,
    builtin_target,
    builtin_targets,
    custom_target,
    extension_suffixes,
    load_target,
    runtime_names,
)


def test_every_lambda_python_runtime_on_both_architectures() -> None:
    names = {t.name for t in builtin_targets()}
    for minor in range(8, 15):
        assert f"python3.{minor}-x86_64" in names
        assert f"python3.{minor}-arm64" in names
    assert runtime_names() == [f"python3.{m}" for m in range(8, 15)]


@pytest.mark.parametrize(
    ("runtime", "glibc", "os_name"),
    [("python3.8", "2.26", "Amazon Linux 2"), ("python3.11", "2.26", "Amazon Linux 2"),
     ("python3.12", "2.34", "Amazon Linux 2023"), ("python3.14", "2.34", "Amazon Linux 2023")],
)
def test_operating_system_facts(runtime: str, glibc: str, os_name: str) -> None:
    t = builtin_target(runtime, "arm64")
    assert (t.libc, t.libc_version, t.os_name) == ("glibc", glibc, os_name)
    assert t.arch == "aarch64" and t.lambda_arch == "arm64"
    assert t.extension_suffixes[0] == f".cpython-3{runtime[8:]}-aarch64-linux-gnu.so"


def test_sys_path_order_changed_in_311() -> None:
    old = builtin_target("python3.10").sys_path
    new = builtin_target("python3.11").sys_path
    assert old[:4] == ("/var/task", "/opt/python/lib/python3.10/site-packages", "/opt/python",
                       "/var/runtime")
    assert new[:5] == ("/var/task", "/opt/python/lib/python3.11/site-packages", "/opt/python",
                       "/var/lang/lib/python3.11/site-packages", "/var/runtime")
    assert old[-1] == "/var/lang/lib/python3.10/site-packages"


def test_layer_libraries_come_last_on_ld_library_path() -> None:
    t = builtin_target("python3.12")
    assert t.ld_library_path[0] == "/var/lang/lib" and t.ld_library_path[-1] == "/opt/lib"


def test_extension_suffixes_match_cpython_order() -> None:
    assert extension_suffixes((3, 12), "x86_64-linux-gnu") == (
        ".cpython-312-x86_64-linux-gnu.so", ".abi3.so", ".so")
    # The free-threaded build does not list .abi3.so.
    assert extension_suffixes((3, 13), "x86_64-linux-gnu", "t") == (
        ".cpython-313t-x86_64-linux-gnu.so", ".so")


def test_json_round_trip_and_file(tmp_path: Path) -> None:
    for t in builtin_targets():
        assert Target.from_dict(json.loads(t.to_json())) == t
    path = tmp_path / "t.json"
    t = custom_target("3.9", "arm64", "2.28")
    path.write_text(t.to_json())
    assert load_target(path) == t
    assert t.libc_version == "2.28" and t.sys_path[0] == "/var/task"


def test_bad_target_inputs_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="unknown runtime 'python2.7'"):
        builtin_target("python2.7")
    with pytest.raises(TargetError, match="unknown architecture"):
        builtin_target("python3.12", "sparc")
    with pytest.raises(TargetError, match="not a glibc version"):
        custom_target("3.12", "x86_64", "two")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TargetError, match="bad.json: not a JSON target profile"):
        load_target(bad)
    bad.write_text('{"name": "x"}')
    with pytest.raises(TargetError, match="bad.json: target is missing"):
        load_target(bad)
    data = custom_target("3.12").to_dict()
    data["ld_so_flavor"] = "gentoo"
    bad.write_text(json.dumps(data))
    with pytest.raises(TargetError, match="ld_so_flavor"):
        load_target(bad)
    with pytest.raises(TargetError, match="cannot read target file"):
        load_target(tmp_path / "missing.json")


def test_the_host_is_never_consulted(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import platform
    import sysconfig

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("a target must not read the host")

    monkeypatch.setattr(sysconfig, "get_config_var", boom)
    monkeypatch.setattr(platform, "libc_ver", boom)
    monkeypatch.setattr(platform, "machine", boom)
    monkeypatch.setattr(os, "confstr", boom)
    assert builtin_target("python3.13", "arm64").multiarch == "aarch64-linux-gnu"
    assert custom_target("3.10", "x86_64", "2.17").libc_version == "2.17"
