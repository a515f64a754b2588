"""abiscan's dist-info reading compared with wheel-inspect's, on real wheels.

wheel-inspect is the reference (a test dependency only: it is heavy at import
and needs private API for a dist-info inside a layer zip). Real wheels come
from two places: one built here by pip and setuptools from a small project
(skipped if setuptools is not installed), and the pinned PyPI wheels of the
opt-in suite when ``ABISCAN_PYPI_TESTS=1``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from abiscan.inputs.dists import Distribution, find_distributions
from abiscan.inputs.sources import InputKind, open_source
from abiscan.inputs.stack import build_stack
from abiscan.target.profiles import builtin_target

wheel_inspect = pytest.importorskip("wheel_inspect")


def _ours(wheel: Path) -> Distribution:
    stack = build_stack(builtin_target("python3.12"), [open_source(wheel, InputKind.WHEEL)])
    (dist,) = find_distributions(stack)
    return dist


def _compare(wheel: Path) -> None:
    ref: dict[str, Any] = wheel_inspect.inspect_wheel(str(wheel))["dist_info"]
    ours = _ours(wheel)
    meta = ref["metadata"]
    assert ours.name == meta["name"] and ours.version == meta["version"]
    assert ours.requires_python == (meta.get("requires_python") or None)
    ref_requires = [
        (canonicalize_name(r["name"]), SpecifierSet(r.get("specifier") or ""),
         str(Marker(r["marker"])) if r.get("marker") else None, sorted(r.get("extras") or ()))
        for r in meta.get("requires_dist", [])
    ]
    parsed = [Requirement(r) for r in ours.requires_dist]
    assert [
        (canonicalize_name(r.name), r.specifier, str(r.marker) if r.marker else None,
         sorted(r.extras))
        for r in parsed
    ] == ref_requires
    assert list(ours.wheel_tags) == ref["wheel"]["tag"]
    assert ours.root_is_purelib == ref["wheel"]["root_is_purelib"]
    ref_record = {
        e["path"]: (
            f"sha256={e['digests']['sha256']}" if e.get("digests") else None, e.get("size"))
        for e in ref["record"]
    }
    assert {e.path: (e.hash, e.size) for e in ours.record} == ref_record
    if "top_level" in ref:
        assert list(ours.top_level) == sorted(ref["top_level"])


def test_locally_built_wheel(tmp_path: Path) -> None:
    pytest.importorskip("setuptools")
    project = tmp_path / "proj"
    (project / "demo_pkg").mkdir(parents=True)
    (project / "demo_pkg" / "__init__.py").write_text("VALUE = 1\n")
    (project / "setup.py").write_text(
        "from setuptools import setup\n"
        "setup(name='demo-pkg', version='1.2.3', packages=['demo_pkg'],\n"
        "      python_requires='>=3.9', install_requires=['packaging>=20', "
        "'tomli; python_version < \"3.11\"'])\n"
    )
    out = tmp_path / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(out), str(project)],
        capture_output=True, text=True, check=False, timeout=300,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {proc.stderr.strip()[-300:]}")
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert any(n.endswith(".dist-info/RECORD") for n in zf.namelist())
    _compare(wheel)


@pytest.mark.pypi
@pytest.mark.skipif(os.environ.get("ABISCAN_PYPI_TESTS") != "1",
                    reason="downloads wheels from PyPI; set ABISCAN_PYPI_TESTS=1 to run")
def test_pinned_pypi_wheels(wheel: Callable[[str], Path]) -> None:
    from conftest import WHEELS

    for filename in WHEELS:
        _compare(wheel(filename))
