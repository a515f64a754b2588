"""Opt-in: the evaluator on real stacks from pinned PyPI wheels (sha256, cached).

Run with ``ABISCAN_PYPI_TESTS=1 python -m pytest tests/test_pypi_evaluator.py``.
The expected messages are what CPython 3.11.7 really prints importing the
cp312 wheels (checked with one fresh interpreter per module, Lambda's
``sys.path`` order); where a local pyenv 3.11 exists the test imports for real
too.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

import abiscan
from abiscan.report.model import ModuleOutcome, Report

pytestmark = [
    pytest.mark.pypi,
    pytest.mark.skipif(
        os.environ.get("ABISCAN_PYPI_TESTS") != "1",
        reason="downloads wheels from PyPI; set ABISCAN_PYPI_TESTS=1 to run",
    ),
]

# wheel file name -> (requirement, sha256 as PyPI lists it); all for cp312 manylinux x86_64.
WHEELS: dict[str, tuple[str, str]] = {
    "numpy-1.26.4-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl":
        ("numpy==1.26.4", "675d61ffbfa78604709862923189bad94014bef562cc35cf61d3a07bba02a7ed"),
    "pandas-2.2.2-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl":
        ("pandas==2.2.2", "eee3a87076c0756de40b05c5e9a6069c035ba43e8dd71c379e68cab2c20f16ad"),
    "python_dateutil-2.9.0.post0-py2.py3-none-any.whl":
        ("python-dateutil==2.9.0.post0",
         "a8b2bc7bffae282281c8140a97d3aa9c14da0b136dfe83f850eea9a5f7470427"),
    "pytz-2024.1-py2.py3-none-any.whl":
        ("pytz==2024.1", "328171f4e3623139da4983451950b28e95ac706e13f3f2630a879749e7a8b319"),
    "tzdata-2024.1-py2.py3-none-any.whl":
        ("tzdata==2024.1", "9068bc196136463f5245e51efda838afa15aaeca9903f49050dfa2679db4d252"),
    "six-1.16.0-py2.py3-none-any.whl":
        ("six==1.16.0", "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"),
    "psutil-7.2.2-cp36-abi3-manylinux2010_x86_64.manylinux_2_12_x86_64.manylinux_2_28_x86_64.whl":
        ("psutil==7.2.2", "076a2d2f923fd4821644f5ba89f059523da90dc9014e85f8e45a5774ca5bc6f9"),
    "pyyaml-6.0.4-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64"
    ".whl": ("PyYAML==6.0.4", "93bfb2459195406a518e2f487a9bbf01df240175f31e06f5a252ac6734c7bbf0"),
    "zstandard-0.25.0-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl":
        ("zstandard==0.25.0", "5a56ba0db2d244117ed744dfa8f6f5b366e14148e00de44723413b2f3938a902"),
    "pillow-12.2.0-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl":
        ("Pillow==12.2.0", "b86024e52a1b269467a802258c25521e6d742349d760728092e1bc2d135b4d76"),
}
DATA = ("numpy", "pandas", "python_dateutil", "pytz", "tzdata", "six")
OTHERS = ("psutil", "pyyaml", "zstandard", "pillow")

NUMPY_311 = ("Error importing numpy: you should not try to import numpy from\n"
             "        its source directory; please exit the numpy source tree, and relaunch\n"
             "        your python interpreter from there.")


@pytest.fixture(scope="module")
def wheels(pytestconfig: pytest.Config) -> Callable[[str], Path]:
    assert pytestconfig.cache is not None
    cache = Path(pytestconfig.cache.mkdir("abiscan-wheels"))

    def get(prefix: str) -> Path:
        filename = next(f for f in WHEELS if f.lower().startswith(prefix + "-"))
        req, digest = WHEELS[filename]
        path = cache / filename
        if not path.exists():
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                 "--platform", "manylinux2014_x86_64", "--python-version", "3.12", req,
                 "-d", str(cache)], capture_output=True, text=True, check=False, timeout=600)
            if proc.returncode != 0 or not path.exists():
                pytest.skip(f"cannot download {req}: {proc.stderr.strip()[-300:]}")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, filename
        return path

    return get


def _layer(path: Path, wheels: list[Path]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as whl:
                for info in whl.infolist():
                    member = zipfile.ZipInfo(f"python/{info.filename}", info.date_time)
                    member.create_system = 3
                    member.external_attr = 0o100644 << 16
                    out.writestr(member, whl.read(info))
    return path


@pytest.fixture(scope="module")
def layers(wheels: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
           ) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("evaluator-layers")
    return {
        "data": _layer(tmp / "data.zip", [wheels(n) for n in DATA]),
        "others": _layer(tmp / "others.zip", [wheels(n) for n in OTHERS]),
    }


def _scan(layer: Path, runtime: str) -> Report:
    return abiscan.scan([layer], runtime=runtime, arch="x86_64")


def _through_rodata_string(m: ModuleOutcome) -> bool:
    """A chain through a C extension's import guessed from a .rodata string. Issue 9 §4
    makes such edges 'possible' (never followed); until then they are told apart here."""
    return any(s.how == "native" and "NUL-terminated string" in s.note for s in m.steps)


def test_clean_numpy_pandas_layer_has_no_unknown_and_no_error(layers: dict[str, Path]) -> None:
    report = _scan(layers["data"], "python3.12")
    assert [m.name for m in report.modules if m.outcome == "unknown"] == []
    errors = [m.name for m in report.modules
              if m.outcome == "error" and not _through_rodata_string(m)]
    assert errors == []
    numpy = report.module("numpy")
    assert numpy is not None and numpy.outcome in ("ok", "error")
    pandas = report.module("pandas")
    assert pandas is not None and pandas.outcome in ("ok", "error")


def test_numpy_and_pandas_on_the_wrong_python_say_their_own_messages(
        layers: dict[str, Path]) -> None:
    report = _scan(layers["data"], "python3.11")
    numpy, pandas = report.module("numpy"), report.module("pandas")
    assert numpy is not None and numpy.error is not None and pandas is not None
    assert (numpy.error.type, numpy.error.message) == ("ImportError", NUMPY_311)
    assert pandas.error is not None and pandas.error.type == "ImportError"
    assert pandas.error.message == "Unable to import required dependencies:\nnumpy: " + NUMPY_311
    assert numpy.confidence == pandas.confidence == "certain"


def test_real_cases_on_their_own_python(layers: dict[str, Path]) -> None:
    report = _scan(layers["others"], "python3.12")
    for name in ("psutil", "yaml", "_yaml", "zstandard", "PIL"):
        m = report.module(name)
        assert m is not None and m.outcome == "ok", (name, m and m.reason)
    # cffi is not in the layer: zstandard's cffi backend really needs it.
    cffi = report.module("zstandard._cffi")
    assert cffi is not None and str(cffi.error) == \
        "ModuleNotFoundError: No module named '_cffi_backend'"
    psutil = report.module("psutil")
    assert psutil is not None and psutil.confidence == "likely"
    (check,) = psutil.assumptions
    assert check.path.endswith("psutil/__init__.py") and check.taken is False
    assert "consistency check" in check.why and "psutil 7.2.2" in check.why
    zstd = report.module("zstandard")
    assert zstd is not None and any(
        "PYTHON_ZSTANDARD_IMPORT_POLICY is not set" in a.why for a in zstd.assumptions)


def test_real_cases_on_the_wrong_python(layers: dict[str, Path]) -> None:
    report = _scan(layers["others"], "python3.11")
    expected = {
        "_yaml": "ModuleNotFoundError: No module named '_yaml'",
        "zstandard._cffi": "ModuleNotFoundError: No module named 'zstandard.backend_c'",
        "zstandard": "ModuleNotFoundError: No module named 'zstandard.backend_c'",
        "psutil": None,  # abi3: loads on 3.11 too
        "yaml": None,  # falls back to the pure-Python implementation
    }
    for name, error in expected.items():
        m = report.module(name)
        assert m is not None, name
        assert (str(m.error) if m.error else None) == error, (name, m.reason)
