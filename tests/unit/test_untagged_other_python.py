"""Untagged extension modules built for another CPython (ABI106): what they carry says which.

Synthetic modules pin each mechanism; ``tests/test_pypi_native.py`` checks
the same predictions on real cffi and PyYAML wheels against real imports.
"""

from __future__ import annotations

from pathlib import Path

import abiscan
from abiscan.report.model import Report
from abiscan.testing.elf_writer import build_shared_object

from helpers import installed, write_zip

CFFI_RODATA = (b"this module was compiled for Python %c%c%c\x00"
               b"/opt/_internal/cpython-3.11.5/include/python3.11\x00")
# What Cython 0.29 built for CPython 3.11+ keeps for its code objects.
CYTHON_RODATA = (b"cython_runtime\x00co_argcount\x00co_cellvars\x00co_linetable\x00replace\x00")


def _scan(tmp_path: Path, members: dict[str, bytes | str], version: str) -> Report:
    layer = write_zip(tmp_path / f"layer{version}.zip", members)
    return abiscan.scan([layer], runtime=f"python{version}", arch="x86_64")


def _module(report: Report, name: str) -> tuple[str, str | None, list[tuple[str, str]]]:
    got = report.module(name)
    assert got is not None
    found = [(f.code, f.severity.value) for f in report.findings if f.module == name]
    return got.outcome, str(got.error) if got.error else None, found


def test_cffi_backend_refuses_another_python_by_its_own_check(tmp_path: Path) -> None:
    so = build_shared_object(exports=["PyInit__cffi_backend"], rodata=CFFI_RODATA)
    members: dict[str, bytes | str] = {"python/_cffi_backend.so": so}
    assert _module(_scan(tmp_path, members, "3.9"), "_cffi_backend") == (
        "error", "ImportError: this module was compiled for Python 3.1",
        [("ABI106", "error")])
    # "3.10"[:3] == "3.11"[:3]: the check passes, and what follows is undefined.
    outcome, error, found = _module(_scan(tmp_path, members, "3.10"), "_cffi_backend")
    assert (outcome, error, found) == ("ok", None, [("ABI106", "warning")])
    assert _module(_scan(tmp_path, members, "3.11"), "_cffi_backend") == ("ok", None, [])


def test_undefined_behaviour_warning_names_the_module(tmp_path: Path) -> None:
    so = build_shared_object(exports=["PyInit__speedups"], rodata=CFFI_RODATA[44:])
    report = _scan(tmp_path, {"python/pkg/__init__.py": "", "python/pkg/_speedups.so": so},
                   "3.12")
    (finding,) = report.findings_for("ABI106")
    assert finding.severity.value == "warning" and finding.module == "pkg._speedups"
    assert "module pkg._speedups" in finding.message
    assert "undefined behaviour" in finding.message
    assert "include directory python3.11" in finding.evidence[0]


def test_cython_for_311_before_310_is_unknown_with_a_warning(tmp_path: Path) -> None:
    """PyYAML 6.0.1's cp311 _yaml.so on 3.9: a TypeError from code.replace() or a
    segfault, depending on the process; abiscan says unknown, and why."""
    so = build_shared_object(exports=["PyInit__yaml"], rodata=CYTHON_RODATA)
    members: dict[str, bytes | str] = {"python/yaml/_yaml.so": so, "python/yaml/__init__.py": ""}
    report = _scan(tmp_path, members, "3.9")
    assert _module(report, "yaml._yaml") == ("unknown", None, [("ABI106", "warning")])
    (finding,) = report.findings_for("ABI106")
    assert "crashes the process" in finding.evidence[0]
    assert _module(_scan(tmp_path, members, "3.10"), "yaml._yaml") == (
        "ok", None, [("ABI106", "warning")])
    assert _module(_scan(tmp_path, members, "3.11"), "yaml._yaml") == ("ok", None, [])


def test_nothing_said_without_evidence(tmp_path: Path) -> None:
    so = build_shared_object(exports=["PyInit_plain"], rodata=b"hello\x00")
    assert _module(_scan(tmp_path, {"python/plain.so": so}, "3.9"), "plain") == ("ok", None, [])


def test_wheel_tag_of_the_owning_distribution(tmp_path: Path) -> None:
    so = build_shared_object(exports=["PyInit__speedups"], rodata=b"nothing to see\x00")
    members = installed("fastthing", "1.0", {"fastthing/__init__.py": "",
                                             "fastthing/_speedups.so": so},
                        tags=("cp311-cp311-manylinux_2_17_x86_64",))
    outcome, error, found = _module(_scan(tmp_path, dict(members), "3.12"), "fastthing._speedups")
    assert (outcome, error, found) == ("ok", None, [("ABI106", "warning")])
    abi3 = installed("fastthing", "1.0", {"fastthing/__init__.py": "",
                                          "fastthing/_speedups.so": so},
                     tags=("cp311-abi3-manylinux_2_17_x86_64",))
    assert _module(_scan(tmp_path, dict(abi3), "3.12"), "fastthing._speedups") == (
        "ok", None, [])
