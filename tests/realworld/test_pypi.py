"""Opt-in: the incident built from real wheels downloaded from PyPI (pinned, hashed, cached).

Run with ``ABISCAN_PYPI_TESTS=1 python -m pytest tests/test_pypi.py``. The
default test command never downloads anything: without the variable these
tests skip. Wheels are cached in pytest's cache directory and checked
against their SHA-256 before use.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

import abiscan
from abiscan.cli import main
from abiscan.report.findings import Finding

from native import discover_interpreters, real_import

pytestmark = [
    pytest.mark.pypi,
    pytest.mark.skipif(
        os.environ.get("ABISCAN_PYPI_TESTS") != "1",
        reason="downloads wheels from PyPI; set ABISCAN_PYPI_TESTS=1 to run",
    ),
]

def _layer(path: Path, wheel_paths: list[Path]) -> Path:
    """A layer zip with the wheels' contents under python/ (as pip --target lays them out)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for wheel in wheel_paths:
            with zipfile.ZipFile(wheel) as whl:
                for info in whl.infolist():
                    member = zipfile.ZipInfo(f"python/{info.filename}", info.date_time)
                    member.create_system = 3
                    member.external_attr = 0o100644 << 16
                    member.compress_type = zipfile.ZIP_DEFLATED
                    out.writestr(member, whl.read(info))
    return path


@pytest.fixture(scope="module")
def incident(wheel: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
             ) -> list[Path]:
    tmp = tmp_path_factory.mktemp("incident")
    return [
        _layer(tmp / "L1.zip", [wheel("PyMySQL-1.1.0-py3-none-any.whl")]),
        _layer(tmp / "L2.zip", [
            wheel("cryptography-41.0.7-cp37-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
            wheel("cffi-1.16.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
        ]),
    ]


def _scan(incident: list[Path], runtime: str, capsys: pytest.CaptureFixture[str]
          ) -> tuple[int, dict[str, object]]:
    code = main(["scan", *map(str, incident), "--runtime", runtime, "--arch", "x86_64",
                 "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def test_incident_from_real_wheels(incident: list[Path],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, data = _scan(incident, "python3.12", capsys)
    modules = {m["name"]: m for m in data["modules"]}  # type: ignore[attr-defined]
    backend = modules["_cffi_backend"]
    assert code == 1
    assert backend["outcome"] == "error"
    assert backend["error"] == {"type": "ModuleNotFoundError",
                                "message": "No module named '_cffi_backend'"}
    abi101 = [f for f in data["findings"] if f["code"] == "ABI101"]  # type: ignore[attr-defined]
    assert [f["path"] for f in abi101] == [
        "/opt/python/_cffi_backend.cpython-311-x86_64-linux-gnu.so"]
    # cryptography 41's pyo3 module turns the ModuleNotFoundError into a panic,
    # which pymysql's "except ImportError" does not catch.
    pymysql = modules["pymysql"]
    assert pymysql["outcome"] == "error"
    assert pymysql["error"] == {"type": "pyo3_runtime.PanicException",
                                "message": "Python API call failed"}
    assert pymysql["chain"] == [
        "pymysql", "pymysql.connections", "pymysql._auth",
        "cryptography.hazmat.primitives.serialization",
        "cryptography.hazmat.primitives._serialization",
        "cryptography.hazmat.primitives.hashes", "cryptography.hazmat.bindings._rust",
        "_cffi_backend"]
    assert pymysql["chain_steps"][-1]["how"] == "native"
    by_code = {f["code"]: f for f in data["findings"]}  # type: ignore[attr-defined]
    assert by_code["ABI501"]["module"] == "pymysql"
    assert by_code["ABI502"]["module"] == "pymysql._auth"
    assert by_code["ABI502"]["confidence"] == "certain"

    code, data = _scan(incident, "python3.11", capsys)
    modules = {m["name"]: m for m in data["modules"]}  # type: ignore[attr-defined]
    assert modules["_cffi_backend"]["outcome"] == "ok"
    assert modules["cryptography.hazmat.bindings._rust"]["outcome"] == "ok"
    assert modules["pymysql"]["outcome"] == "ok"


@pytest.fixture(scope="module")
def incident39(wheel: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
               ) -> list[Path]:
    tmp = tmp_path_factory.mktemp("incident39")
    return [
        _layer(tmp / "L1.zip", [wheel("PyMySQL-1.1.0-py3-none-any.whl")]),
        _layer(tmp / "L2.zip", [
            wheel("cryptography-39.0.2-cp36-abi3-manylinux_2_28_x86_64.whl"),
            wheel("cffi-1.16.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
        ]),
    ]


def test_cryptography_39_raises_what_the_guard_catches(incident39: list[Path]) -> None:
    report = abiscan.scan(incident39, runtime="python3.12", arch="x86_64",
                          imports=["cryptography.hazmat.bindings._openssl"])
    openssl = report.module("cryptography.hazmat.bindings._openssl")
    assert openssl is not None and openssl.outcome == "error"
    assert str(openssl.error) == "ModuleNotFoundError: No module named '_cffi_backend'"
    assert openssl.chain == ("cryptography.hazmat.bindings._openssl", "_cffi_backend")
    pymysql = report.module("pymysql")
    assert pymysql is not None and pymysql.outcome == "ok", pymysql.reason
    assert not report.findings_for("ABI502")


_COMPARED = ("_cffi_backend", "pymysql", "cryptography.hazmat.bindings._rust",
             "cryptography.hazmat.bindings._openssl", "cryptography.x509", "cffi")


@pytest.mark.parametrize("crypto", ["41", "39"])
@pytest.mark.parametrize("version", ["3.11", "3.12"])
def test_real_wheels_against_real_interpreters(
    incident: list[Path], incident39: list[Path], tmp_path: Path, version: str, crypto: str
) -> None:
    interp = next((i for i in discover_interpreters() if i.short == version), None)
    if interp is None:
        pytest.skip(f"no local CPython {version}")
    from abiscan import scan
    from abiscan.target.interpreters import capture_target

    layers = incident if crypto == "41" else incident39
    # The interpreter's own system as the target: a generic profile does not
    # know libgcc_s, which cryptography's Rust extension needs.
    report = scan(layers, target=capture_target(interp.executable), imports=list(_COMPARED))
    opt = tmp_path / "opt"
    for layer in layers:
        with zipfile.ZipFile(layer) as zf:
            zf.extractall(opt)
    for name in _COMPARED:
        predicted = report.module(name)
        real = real_import(interp, name, [opt / "python"])
        assert predicted is not None
        assert predicted.outcome == real.outcome, (name, predicted.reason, real)
        if real.outcome == "error":
            assert predicted.error is not None
            # The real run reports the class name; abiscan qualifies pyo3's.
            assert predicted.error.type.rpartition(".")[2] == real.type, name
            assert predicted.error.message == real.message, name


def _findings(report: abiscan.Report, code: str) -> list[Finding]:
    return report.findings_for(code)


def test_two_urllib3_layers_in_one_directory(wheel: Callable[[str], Path], tmp_path: Path) -> None:
    l1 = _layer(tmp_path / "L1.zip", [wheel("urllib3-1.26.18-py2.py3-none-any.whl")])
    l2 = _layer(tmp_path / "L2.zip", [wheel("urllib3-2.2.1-py3-none-any.whl")])
    report = abiscan.scan([l1, l2], runtime="python3.12")
    assert [f.distribution for f in _findings(report, "ABI305")] == ["urllib3 2.2.1"]
    mixed = {f.distribution: f for f in _findings(report, "ABI306")}
    # urllib3 1.26's contrib/appengine.py is gone from 2.x: it is left over next to 2.2.1.
    assert "/opt/python/urllib3/contrib/appengine.py" in " ".join(
        mixed["urllib3 2.2.1"].evidence)
    assert "overwritten" in mixed["urllib3 1.26.18"].message


def test_function_cffi_over_layer_cffi(wheel: Callable[[str], Path], tmp_path: Path) -> None:
    layer = _layer(tmp_path / "layer.zip", [
        wheel("cffi-1.16.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")])
    fn = tmp_path / "fn.zip"
    with zipfile.ZipFile(fn, "w") as out, zipfile.ZipFile(wheel(
            "cffi-1.15.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")) as whl:
        for info in whl.infolist():
            member = zipfile.ZipInfo(info.filename, info.date_time)
            member.create_system = 3
            member.external_attr = 0o100644 << 16
            out.writestr(member, whl.read(info))
    report = abiscan.scan([layer], function=fn, runtime="python3.11")
    shadow = [f for f in _findings(report, "ABI107") if f.module == "cffi"]
    assert shadow and "/var/task/cffi/__init__.py (cffi 1.15.1) loads" in shadow[0].message
    (dup,) = _findings(report, "ABI305")
    assert "the copy in /var/task (1.15.1) loads" in dup.message


def test_manylinux_2_28_on_python311(wheel: Callable[[str], Path], tmp_path: Path) -> None:
    layer = _layer(tmp_path / "layer.zip", [
        wheel("cryptography-42.0.5-cp39-abi3-manylinux_2_28_x86_64.whl"),
        wheel("bcrypt-4.1.2-cp39-abi3-manylinux_2_28_x86_64.whl"),
    ])
    report = abiscan.scan([layer], runtime="python3.11")
    assert sorted(f.distribution or "" for f in _findings(report, "ABI301")) == [
        "bcrypt 4.1.2", "cryptography 42.0.5"]
    old = abiscan.scan([layer], runtime="python3.8")
    assert len(_findings(old, "ABI301")) == 2
    assert _findings(abiscan.scan([layer], runtime="python3.12"), "ABI301") == []


def test_clean_pydantic_layer(wheel: Callable[[str], Path], tmp_path: Path) -> None:
    layer = _layer(tmp_path / "layer.zip", [
        wheel("pydantic-2.6.4-py3-none-any.whl"),
        wheel("pydantic_core-2.16.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
        wheel("annotated_types-0.6.0-py3-none-any.whl"),
        wheel("typing_extensions-4.10.0-py3-none-any.whl"),
    ])
    report = abiscan.scan([layer], runtime="python3.12", arch="x86_64")
    assert report.errors == [], [f.to_dict() for f in report.errors]
    assert not report.has_errors
