"""Opt-in: native imports and untagged extensions, checked on real pinned wheels.

Run with ``ABISCAN_PYPI_TESTS=1 python -m pytest tests/test_pypi_native.py``.
Wheels are downloaded once into pytest's cache and checked against their
SHA-256; each prediction is compared with a real import in a local CPython.
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
from abiscan.elf.reader import read_facts
from abiscan.simulate.python.native_imports import native_imports

from native import Interpreter, discover_interpreters, real_import

pytestmark = [
    pytest.mark.pypi,
    pytest.mark.skipif(
        os.environ.get("ABISCAN_PYPI_TESTS") != "1",
        reason="downloads wheels from PyPI; set ABISCAN_PYPI_TESTS=1 to run",
    ),
]

# wheel file name -> (requirement, --python-version, sha256 of the download)
PINNED: dict[str, tuple[str, str, str]] = {
    "lxml-5.2.1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": (
        "lxml==5.2.1", "3.12",
        "59689a75ba8d7ffca577aefd017d08d659d86ad4585ccc73e43edbfc7476781a"),
    "cffi-1.16.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": (
        "cffi==1.16.0", "3.11",
        "7b78010e7b97fef4bee1e896df8a4bbb6712b7f05b7ef630f9d1da00f6444d2e"),
    "PyYAML-6.0.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": (
        "PyYAML==6.0.1", "3.11",
        "d2b04aac4d386b172d5b9692e2d2da8de7bfb6c387fa4f801fbf6fb2e6ba4673"),
}


@pytest.fixture(scope="session")
def pinned(pytestconfig: pytest.Config) -> Callable[[str], Path]:
    assert pytestconfig.cache is not None
    cache = Path(pytestconfig.cache.mkdir("abiscan-wheels"))

    def get(filename: str) -> Path:
        req, python, digest = PINNED[filename]
        path = cache / filename
        if not path.exists():
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                 "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
                 "--python-version", python, "--implementation", "cp", req, "-d", str(cache)],
                capture_output=True, text=True, check=False, timeout=300,
            )
            if proc.returncode != 0 or not path.exists():
                pytest.skip(f"cannot download {req}: {proc.stderr.strip()[-300:]}")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, filename
        return path

    return get


def _interpreter(version: str) -> Interpreter:
    interp = next((i for i in discover_interpreters() if i.short == version), None)
    if interp is None:
        pytest.skip(f"no local CPython {version}")
    return interp


def _extract(wheel: Path, into: Path) -> Path:
    with zipfile.ZipFile(wheel) as whl:
        whl.extractall(into)
    return into


LXML = "lxml-5.2.1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
LXML_MODULES = ("lxml.etree", "lxml.html", "lxml.builder", "lxml.objectify")


def test_lxml_lazy_cssselect_is_not_an_edge(pinned: Callable[[str], Path],
                                            tmp_path: Path) -> None:
    """etree's .rodata names lxml.cssselect, which lxml imports only when asked to."""
    wheel = pinned(LXML)
    with zipfile.ZipFile(wheel) as whl:
        name = next(n for n in whl.namelist() if n.startswith("lxml/etree.") and n.endswith(".so"))
        data = whl.read(name)
    facts = native_imports("lxml.etree", name, data, read_facts(data),
                           lambda n: n in ("lxml", "lxml.cssselect"))
    assert "cython" in facts.kinds
    assert [(i.imports, i.confidence, i.at_init) for i in facts.imports] == [
        ("lxml", "possible", False), ("lxml.cssselect", "possible", False)]

    report = abiscan.scan(site_packages=[wheel], runtime="python3.12", arch="x86_64",
                          imports=list(LXML_MODULES))
    root = _extract(wheel, tmp_path / "site")
    interp = _interpreter("3.12")
    for module in LXML_MODULES:
        got = report.module(module)
        assert got is not None
        real = real_import(interp, module, [root])
        assert (got.outcome, real.outcome) == ("ok", "ok"), (module, got.reason, real)


UNTAGGED = ("cffi-1.16.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "PyYAML-6.0.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")


def _untagged_layer(wheels: list[Path], path: Path) -> Path:
    """The cp311 wheels with the version tags cut from their extension modules' names."""
    with zipfile.ZipFile(path, "w") as out:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as whl:
                for info in whl.infolist():
                    name = info.filename.replace(".cpython-311-x86_64-linux-gnu", "")
                    member = zipfile.ZipInfo(f"python/{name}", info.date_time)
                    member.create_system = 3
                    member.external_attr = 0o100755 << 16
                    out.writestr(member, whl.read(info))
    return path


@pytest.mark.parametrize("version", ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13"])
def test_untagged_cp311_modules_against_real_imports(
    pinned: Callable[[str], Path], tmp_path: Path, version: str
) -> None:
    """cffi's own version check and Cython's 3.11 code objects, word for word; where the
    module loads anyway, an ABI106 warning that says loading it is undefined behaviour."""
    interp = _interpreter(version)
    layer = _untagged_layer([pinned(w) for w in UNTAGGED], tmp_path / "untagged.zip")
    names = ["_cffi_backend", "yaml._yaml", "yaml"]
    report = abiscan.scan([layer], runtime=f"python{version}", arch="x86_64", imports=names)
    root = tmp_path / "root"
    with zipfile.ZipFile(layer) as zf:
        zf.extractall(root)
    for name in names:
        got = report.module(name)
        assert got is not None
        real = real_import(interp, name, [root / "python"])
        predicted = (got.outcome, got.error.type if got.error else None,
                     got.error.message.replace("/opt/python", str(root / "python"))
                     if got.error else None)
        if got.outcome == "unknown":
            # PyYAML's _yaml on 3.9: a TypeError or a segfault, as the process goes.
            assert real.outcome in ("crash", "error"), (name, real)
            continue
        assert predicted == (real.outcome, real.type, real.message), (name, got.reason)
        if real.outcome == "ok" and name != "yaml" and version != "3.11":
            (finding,) = [f for f in report.findings_for("ABI106") if f.module == name]
            assert finding.severity.value == "warning"
            assert "undefined behaviour" in finding.message
