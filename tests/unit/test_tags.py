from __future__ import annotations

import pytest

from abiscan.simulate.imports.extension_tags import (
    mismatch,
    parse_extension_filename,
    split_module_name,
)
from abiscan.target.profiles import builtin_target, custom_target


def test_module_name_stops_at_first_dot() -> None:
    assert split_module_name("_cffi_backend.cpython-311-x86_64-linux-gnu.so") == (
        "_cffi_backend", ".cpython-311-x86_64-linux-gnu.so")
    assert parse_extension_filename("libfoo.so.1") is None
    assert parse_extension_filename("x.py") is None


@pytest.mark.parametrize(
    ("filename", "kind", "version", "platform"),
    [
        ("a.cpython-311-x86_64-linux-gnu.so", "cpython", (3, 11), "x86_64-linux-gnu"),
        ("a.cpython-313t-aarch64-linux-gnu.so", "cpython", (3, 13), "aarch64-linux-gnu"),
        ("a.cpython-36m-x86_64-linux-gnu.so", "cpython", (3, 6), "x86_64-linux-gnu"),
        ("a.cpython-312-darwin.so", "cpython", (3, 12), "darwin"),
        ("a.cpython-312-x86_64-linux-musl.so", "cpython", (3, 12), "x86_64-linux-musl"),
        ("a.abi3.so", "abi3", None, None),
        ("a.so", "untagged", None, None),
        ("a.cp312-win_amd64.pyd", "windows", (3, 12), "win_amd64"),
        ("a.pyd", "windows", None, "windows"),
        ("a.pypy39-pp73-x86_64-linux-gnu.so", "pypy", None, "x86_64-linux-gnu"),
    ],
)
def test_parse(filename: str, kind: str, version: object, platform: object) -> None:
    tag = parse_extension_filename(filename)
    assert tag is not None
    assert (tag.kind, tag.python_version, tag.platform) == (kind, version, platform)


@pytest.mark.parametrize(
    ("filename", "code"),
    [
        ("a.cpython-38-x86_64-linux-gnu.so", "ABI101"),
        ("a.cpython-313-x86_64-linux-gnu.so", "ABI101"),
        ("a.cpython-312-aarch64-linux-gnu.so", "ABI102"),
        ("a.cpython-312-x86_64-linux-musl.so", "ABI102"),
        ("a.cpython-312-darwin.so", "ABI102"),
        ("a.cp312-win_amd64.pyd", "ABI102"),
        ("a.pypy39-pp73-x86_64-linux-gnu.so", "ABI102"),
        ("a.cpython-312t-x86_64-linux-gnu.so", "ABI104"),
        ("a.cpython-312-x86_64-linux-gnu.so", None),
        ("a.abi3.so", None),
        ("a.so", None),
    ],
)
def test_mismatch_on_312(filename: str, code: str | None) -> None:
    tag = parse_extension_filename(filename)
    assert tag is not None
    got = mismatch(tag, builtin_target("python3.12", "x86_64"))
    assert (got.code if got else None) == code


def test_free_threaded_target_refuses_gil_builds_and_abi3() -> None:
    ft = custom_target("3.13", "x86_64", "2.34", free_threaded=True)
    for name, code in [("a.cpython-313-x86_64-linux-gnu.so", "ABI104"), ("a.abi3.so", "ABI104"),
                       ("a.cpython-313t-x86_64-linux-gnu.so", None)]:
        tag = parse_extension_filename(name)
        assert tag is not None
        got = mismatch(tag, ft)
        assert (got.code if got else None) == code, name
