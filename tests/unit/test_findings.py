"""Each finding code from a scan of a small synthesised stack: fields, wording, fix."""

from __future__ import annotations

import py_compile
from pathlib import Path

import pytest

import abiscan
from abiscan.report.findings import Confidence, Finding, Severity, registered_codes
from abiscan.target.bytecode import magic_bytes
from abiscan.target.profiles import custom_target
from abiscan.testing.elf_writer import build_shared_object

from helpers import write_zip

T = ".cpython-312-x86_64-linux-gnu.so"


def only(report: abiscan.Report, code: str) -> Finding:
    found = report.findings_for(code)
    assert len(found) == 1, [f.to_dict() for f in report.findings]
    return found[0]


def scan_layer(tmp_path: Path, members: dict[str, bytes | str], **kw: object) -> abiscan.Report:
    layer = write_zip(tmp_path / "layer.zip", members)
    return abiscan.scan([layer], **kw)  # type: ignore[arg-type]


def test_every_finding_has_the_documented_fields(tmp_path: Path) -> None:
    report = scan_layer(tmp_path, {"python/_x.cpython-38-x86_64-linux-gnu.so": b"\x7fELF"})
    f = only(report, "ABI101")
    d = f.to_dict()
    assert d["severity"] == "error" and d["confidence"] == "certain"
    assert d["source"] == str(tmp_path / "layer.zip")
    assert d["source_path"] == "python/_x.cpython-38-x86_64-linux-gnu.so"
    assert d["predicted_error"] == {
        "type": "ModuleNotFoundError", "message": "No module named '_x'"}
    assert d["fix"].startswith("Rebuild") and "--python-version 3.12" in d["fix"]


@pytest.mark.parametrize(
    ("filename", "code"),
    [
        ("_m.cpython-312-aarch64-linux-gnu.so", "ABI102"),
        ("_m.cpython-312-darwin.so", "ABI102"),
        ("_m.cp312-win_amd64.pyd", "ABI102"),
        ("_m.cpython-312-x86_64-linux-musl.so", "ABI102"),
        ("_m.cpython-312t-x86_64-linux-gnu.so", "ABI104"),
    ],
)
def test_never_tried_for_platform_or_threading(tmp_path: Path, filename: str, code: str) -> None:
    report = scan_layer(tmp_path, {f"python/{filename}": build_shared_object(
        exports=["PyInit__m"])}, runtime="python3.12")
    f = only(report, code)
    assert f.module == "_m" and f.predicted_error is not None
    assert str(f.predicted_error) == "ModuleNotFoundError: No module named '_m'"


def test_abi3_on_free_threaded_target(tmp_path: Path) -> None:
    ft = custom_target("3.13", "x86_64", "2.34", free_threaded=True)
    report = scan_layer(tmp_path, {"python/_m.abi3.so": build_shared_object(
        exports=["PyInit__m"])}, target=ft)
    assert only(report, "ABI104").module == "_m"


def test_pure_python_fallback_turns_abi101_into_a_warning(tmp_path: Path) -> None:
    report = scan_layer(tmp_path, {"python/fb.py": "",
                                   "python/fb.cpython-311-x86_64-linux-gnu.so": b"x"})
    f = only(report, "ABI101")
    assert f.severity is Severity.WARNING and f.predicted_error is None
    assert "loads /opt/python/fb.py (source) instead" in f.message
    m = report.module("fb")
    assert m is not None and m.ok and not report.has_errors


def test_multi_version_layer_is_quiet(tmp_path: Path) -> None:
    so = build_shared_object(exports=["PyInit__m"])
    report = scan_layer(tmp_path, {f"python/_m{T}": so,
                                   "python/_m.cpython-311-x86_64-linux-gnu.so": so})
    assert report.findings == ()
    m = report.module("_m")
    assert m is not None and m.ok and len(m.candidates) == 1


def test_missing_pyinit(tmp_path: Path) -> None:
    report = scan_layer(tmp_path, {f"python/_m{T}": build_shared_object(
        exports=["PyInit_other"])})
    f = only(report, "ABI105")
    assert f.predicted_error is not None
    assert f.predicted_error.message == (
        "dynamic module does not define module export function (PyInit__m)")
    assert "PyInit_other" in f.message


def test_untagged_shared_library_is_not_a_module(tmp_path: Path) -> None:
    report = scan_layer(tmp_path, {
        "python/pkg/__init__.py": "",
        "python/pkg/libhelper.so": build_shared_object(exports=["helper"]),
    })
    assert report.findings == () and report.module("pkg.libhelper") is None


def test_not_elf_and_wrong_identity(tmp_path: Path) -> None:
    report = scan_layer(tmp_path, {
        "python/mac.abi3.so": b"\xcf\xfa\xed\xfe" + bytes(200),
        "python/arm.abi3.so": build_shared_object(machine="aarch64", exports=["PyInit_arm"]),
        "python/m32.abi3.so": build_shared_object(bits=32, machine="i386",
                                                  exports=["PyInit_m32"]),
    })
    f201 = only(report, "ABI201")
    assert f201.module == "mac" and "Mach-O" in f201.message
    assert str(f201.predicted_error) == "ImportError: /opt/python/mac.abi3.so: invalid ELF header"
    by_module = {f.module: f for f in report.findings_for("ABI202")}
    assert str(by_module["m32"].predicted_error) == (
        "ImportError: /opt/python/m32.abi3.so: wrong ELF class: ELFCLASS32")
    assert str(by_module["arm"].predicted_error) == (
        "ImportError: /opt/python/arm.abi3.so: cannot open shared object file: "
        "No such file or directory")


def test_layer_for_another_python_and_packages_at_zip_root(tmp_path: Path) -> None:
    report = scan_layer(tmp_path, {
        "python/lib/python3.11/site-packages/oldpkg/__init__.py": "",
        "python/lib/python3.11/site-packages/both/__init__.py": "",
        "python/both/__init__.py": "",
        "rootpkg/__init__.py": "",
        "lib/libssl.so.3": b"",
    }, runtime="python3.12")
    by_path = {f.path: f for f in report.findings_for("ABI108")}
    old = by_path["/opt/python/lib/python3.11/site-packages"]
    assert old.severity is Severity.ERROR and "oldpkg" in old.message
    assert "both" not in old.message.split("import:")[1]
    assert str(old.predicted_error) == "ModuleNotFoundError: No module named 'oldpkg'"
    root = by_path["/opt"]
    assert "rootpkg" in root.message
    assert {m.name: m.outcome for m in report.modules} == {
        "both": "ok", "oldpkg": "error", "rootpkg": "error"}


def test_bytecode_for_another_python(tmp_path: Path) -> None:
    src = tmp_path / "bc.py"
    src.write_text("x = 1\n")
    pyc = tmp_path / "bc.pyc"
    py_compile.compile(str(src), cfile=str(pyc))
    data = pyc.read_bytes()
    other = magic_bytes((3, 8))
    assert other is not None
    report = scan_layer(tmp_path, {"python/bc.pyc": other + data[4:]}, runtime="python3.12")
    f = only(report, "ABI109")
    assert str(f.predicted_error) == f"ImportError: bad magic number in 'bc': {other!r}"
    assert "CPython 3.8" in f.message


def test_bytecode_magic_unknown_is_said(tmp_path: Path) -> None:
    report = scan_layer(tmp_path, {"python/bc.pyc": b"\0" * 16}, runtime="python3.14")
    m = report.module("bc")
    assert m is not None and m.outcome == "unknown" and "magic number" in m.reason


def test_registry_codes_are_unique_and_described() -> None:
    codes = registered_codes()
    assert len({c.code for c in codes}) == len(codes)
    assert all(c.summary and c.name for c in codes)
    assert Confidence.CERTAIN.rank < Confidence.POSSIBLE.rank


def test_a_failing_parent_package_fails_its_submodules(tmp_path: Path) -> None:
    report = scan_layer(tmp_path, {
        "python/pkg/__init__.abi3.so": build_shared_object(machine="aarch64",
                                                           exports=["PyInit_pkg"]),
        f"python/pkg/_sub{T}": build_shared_object(exports=["PyInit__sub"]),
    })
    parent, child = report.module("pkg"), report.module("pkg._sub")
    assert parent is not None and child is not None
    assert parent.outcome == "error" and child.outcome == "error"
    assert child.error == parent.error and "parent package 'pkg'" in child.reason


def test_layer_python_dir_off_sys_path(tmp_path: Path) -> None:
    from dataclasses import replace

    base = custom_target("3.12", "x86_64", "2.34")
    target = replace(base, sys_path=tuple(p for p in base.sys_path if not p.startswith("/opt")))
    report = scan_layer(tmp_path, {"python/lonely.py": ""}, target=target)
    f = only(report, "ABI108")
    assert f.path == "/opt/python" and "lonely" in f.message
    m = report.module("lonely")
    assert m is not None and m.outcome == "error"


def test_debug_build_tag_is_another_abi(tmp_path: Path) -> None:
    report = scan_layer(tmp_path, {"python/_d.cpython-312d-x86_64-linux-gnu.so": b"x"})
    f = only(report, "ABI101")
    assert "another ABI of CPython 3.12" in f.message
