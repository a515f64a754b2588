"""Opt-in: the incident built from real wheels downloaded from PyPI (pinned, hashed, cached).

Run with ``ABISCAN_PYPI_TESTS=1 python -m pytest tests/test_pypi.py``. The
default test command never downloads anything: without the variable these
tests skip. Wheels are cached in pytest's cache directory and checked
against their SHA-256 before use.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from abiscan.cli import main
from abiscan.targets import custom_target

from native import discover_interpreters, real_import

pytestmark = [
    pytest.mark.pypi,
    pytest.mark.skipif(
        os.environ.get("ABISCAN_PYPI_TESTS") != "1",
        reason="downloads wheels from PyPI; set ABISCAN_PYPI_TESTS=1 to run",
    ),
]

# (requirement, wheel file name, sha256) as published on PyPI.
WHEELS = {
    "pymysql": ("PyMySQL==1.1.0", "PyMySQL-1.1.0-py3-none-any.whl",
                "8969ec6d763c856f7073c4c64662882675702efcb114b4bcbb955aea3a069fa7"),
    "cffi": ("cffi==1.16.0",
             "cffi-1.16.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
             "7b78010e7b97fef4bee1e896df8a4bbb6712b7f05b7ef630f9d1da00f6444d2e"),
    "cryptography": ("cryptography==41.0.7",
                     "cryptography-41.0.7-cp37-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                     "841df4caa01008bad253bce2a6f7b47f86dc9f08df4b433c404def869f590a15"),
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def wheels(pytestconfig: pytest.Config) -> dict[str, Path]:
    assert pytestconfig.cache is not None
    cache = Path(pytestconfig.cache.mkdir("abiscan-wheels"))
    out = {}
    for key, (req, filename, digest) in WHEELS.items():
        path = cache / filename
        if not path.exists():
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                 "--platform", "manylinux2014_x86_64", "--python-version", "3.11",
                 "--implementation", "cp", req, "-d", str(cache)],
                capture_output=True, text=True, check=False, timeout=300,
            )
            if proc.returncode != 0 or not path.exists():
                pytest.skip(f"cannot download {req}: {proc.stderr.strip()[-300:]}")
        assert _sha256(path) == digest, f"{filename}: SHA-256 mismatch"
        out[key] = path
    return out


def _layer(path: Path, wheel_paths: list[Path]) -> Path:
    """A layer zip with the wheels' contents under python/ (as pip --target lays them out)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for wheel in wheel_paths:
            with zipfile.ZipFile(wheel) as whl:
                for info in whl.infolist():
                    out.writestr(f"python/{info.filename}", whl.read(info))
    return path


@pytest.fixture(scope="module")
def incident(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    tmp = tmp_path_factory.mktemp("incident")
    return [_layer(tmp / "L1.zip", [wheels["pymysql"]]),
            _layer(tmp / "L2.zip", [wheels["cryptography"], wheels["cffi"]])]


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
    assert modules["pymysql"]["outcome"] == "ok"

    code, data = _scan(incident, "python3.11", capsys)
    modules = {m["name"]: m for m in data["modules"]}  # type: ignore[attr-defined]
    assert modules["_cffi_backend"]["outcome"] == "ok"
    assert modules["cryptography.hazmat.bindings._rust"]["outcome"] == "ok"


@pytest.mark.parametrize("version", ["3.11", "3.12"])
def test_real_wheels_against_real_interpreters(
    incident: list[Path], tmp_path: Path, version: str
) -> None:
    interp = next((i for i in discover_interpreters() if i.short == version), None)
    if interp is None:
        pytest.skip(f"no local CPython {version}")
    from abiscan import scan

    report = scan(incident, target=custom_target(version, "x86_64", "2.36"))
    opt = tmp_path / "opt"
    for layer in incident:
        with zipfile.ZipFile(layer) as zf:
            zf.extractall(opt)
    predicted = report.module("_cffi_backend")
    real = real_import(interp, "_cffi_backend", [opt / "python"])
    assert predicted is not None
    assert predicted.outcome == real.outcome
    if real.outcome == "error":
        assert predicted.error is not None
        assert (predicted.error.type, predicted.error.message) == (real.type, real.message)
