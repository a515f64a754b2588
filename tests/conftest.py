"""Shared fixtures: the opt-in PyPI wheels (downloaded once, pinned, hash-checked, cached)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# wheel file name -> (requirement, --python-version to download it for, sha256 on PyPI)
WHEELS: dict[str, tuple[str, str, str]] = {
    "PyMySQL-1.1.0-py3-none-any.whl": (
        "PyMySQL==1.1.0", "3.11",
        "8969ec6d763c856f7073c4c64662882675702efcb114b4bcbb955aea3a069fa7"),
    "cffi-1.16.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": (
        "cffi==1.16.0", "3.11",
        "7b78010e7b97fef4bee1e896df8a4bbb6712b7f05b7ef630f9d1da00f6444d2e"),
    "cffi-1.16.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": (
        "cffi==1.16.0", "3.12",
        "e715596e683d2ce000574bae5d07bd522c781a822866c20495e52520564f0969"),
    "cffi-1.15.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": (
        "cffi==1.15.1", "3.11",
        "94411f22c3985acaec6f83c6df553f2dbe17b698cc7f8ae751ff2237d96b9e3c"),
    "cryptography-41.0.7-cp37-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": (
        "cryptography==41.0.7", "3.11",
        "841df4caa01008bad253bce2a6f7b47f86dc9f08df4b433c404def869f590a15"),
    # sha256 as PyPI's simple index lists it (checked against the download).
    "cryptography-39.0.2-cp36-abi3-manylinux_2_28_x86_64.whl": (
        "cryptography==39.0.2", "3.11",
        "b49a88ff802e1993b7f749b1eeb31134f03c8d5c956e3c125c75558955cda536"),
    "cryptography-42.0.5-cp39-abi3-manylinux_2_28_x86_64.whl": (
        "cryptography==42.0.5", "3.11",
        "cd2030f6650c089aeb304cf093f3244d34745ce0cfcc39f20c6fbfe030102e2a"),
    "bcrypt-4.1.2-cp39-abi3-manylinux_2_28_x86_64.whl": (
        "bcrypt==4.1.2", "3.11",
        "2a298db2a8ab20056120b45e86c00a0a5eb50ec4075b6142db35f593b97cb3fb"),
    "urllib3-1.26.18-py2.py3-none-any.whl": (
        "urllib3==1.26.18", "3.12",
        "34b97092d7e0a3a8cf7cd10e386f401b3737364026c45e622aa02903dffe0f07"),
    "urllib3-2.2.1-py3-none-any.whl": (
        "urllib3==2.2.1", "3.12",
        "450b20ec296a467077128bff42b73080516e71b56ff59a60a02bef2232c4fa9d"),
    "pydantic-2.6.4-py3-none-any.whl": (
        "pydantic==2.6.4", "3.12",
        "cc46fce86607580867bdc3361ad462bab9c222ef042d3da86f2fb333e1d916c5"),
    "pydantic_core-2.16.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": (
        "pydantic_core==2.16.3", "3.12",
        "500960cb3a0543a724a81ba859da816e8cf01b0e6aaeedf2c3775d12ee49cade"),
    "annotated_types-0.6.0-py3-none-any.whl": (
        "annotated_types==0.6.0", "3.12",
        "0641064de18ba7a25dee8f96403ebc39113d0cb953a01429249d5c7564666a43"),
    "typing_extensions-4.10.0-py3-none-any.whl": (
        "typing_extensions==4.10.0", "3.12",
        "69b1a937c3a517342112fb4c6df7e72fc39a38e7891a5730ed4985b5214b5475"),
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def wheel(pytestconfig: pytest.Config) -> Callable[[str], Path]:
    """A pinned wheel from the cache, downloaded once and checked against its SHA-256."""
    assert pytestconfig.cache is not None
    cache = Path(pytestconfig.cache.mkdir("abiscan-wheels"))

    def get(filename: str) -> Path:
        req, python, digest = WHEELS[filename]
        path = cache / filename
        if not path.exists():
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                 "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64",
                 "--python-version", python, "--implementation", "cp", req,
                 "-d", str(cache)],
                capture_output=True, text=True, check=False, timeout=300,
            )
            if proc.returncode != 0 or not path.exists():
                pytest.skip(f"cannot download {req}: {proc.stderr.strip()[-300:]}")
        assert _sha256(path) == digest, f"{filename}: SHA-256 mismatch"
        return path

    return get




@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Scans in tests keep their content cache in a temporary directory, not ~/.cache."""
    monkeypatch.setenv("ABISCAN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "abiscan-cache"))
@pytest.fixture(autouse=True, scope="session")
def _every_json_output_matches_its_schema() -> Iterator[None]:
    """Each JSON output the suite produces is validated against the shipped schema."""
    from abiscan.report import render
    from abiscan.report.model import Report
    from abiscan.runtime_matrix import Matrix
    from abiscan.target.profiles import Target

    from schema_check import validate_output

    report_to_dict, target_to_dict = Report.to_dict, Target.to_dict
    matrix_to_dict = Matrix.to_dict
    explain_dict = render.explain_dict

    def checked_report(self: Report) -> dict[str, Any]:
        data = report_to_dict(self)
        validate_output("scan", data)
        return data

    def checked_target(self: Target, *, embed: bool = True) -> dict[str, Any]:
        data = target_to_dict(self, embed=embed)
        validate_output("target", data)
        return data

    def checked_explain(report: Report, name: str) -> dict[str, Any]:
        data = explain_dict(report, name)
        validate_output("explain", data)
        return data

    def checked_matrix(self: Matrix) -> dict[str, Any]:
        data = matrix_to_dict(self)
        validate_output("matrix", data)
        return data

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Matrix, "to_dict", checked_matrix)
        mp.setattr(Report, "to_dict", checked_report)
        mp.setattr(Target, "to_dict", checked_target)
        mp.setattr(render, "explain_dict", checked_explain)
        yield
