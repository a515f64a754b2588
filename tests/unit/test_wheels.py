"""ABI307: .whl inputs are verified with wheel-inspect, imported only when a wheel is scanned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import abiscan

from helpers import record_hash, write_zip


def wheel(path: Path, files: dict[str, bytes], tamper: dict[str, bytes] | None = None) -> Path:
    """A pure wheel whose RECORD lists ``files``; ``tamper`` replaces some bytes after."""
    info = "demo_pkg-1.0.dist-info"
    members = {
        **files,
        f"{info}/METADATA": b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\n",
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                         b"Tag: py3-none-any\n",
    }
    record = [f"{name},{record_hash(data)},{len(data)}" for name, data in members.items()]
    record.append(f"{info}/RECORD,,")
    members[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    members.update(tamper or {})
    return write_zip(path, members)


def test_a_sound_wheel_has_no_finding(tmp_path: Path) -> None:
    w = wheel(tmp_path / "demo_pkg-1.0-py3-none-any.whl", {"demo_pkg/__init__.py": b"x = 1\n"})
    report = abiscan.scan(site_packages=w)
    assert report.findings_for("ABI307") == []
    assert report.module("demo_pkg") is not None


def test_a_tampered_file_gets_abi307(tmp_path: Path) -> None:
    w = wheel(tmp_path / "demo_pkg-1.0-py3-none-any.whl",
              {"demo_pkg/__init__.py": b"x = 1\n", "demo_pkg/util.py": b"y = 2\n"},
              tamper={"demo_pkg/util.py": b"y = 3\n"})
    for report in (abiscan.scan(site_packages=w), abiscan.scan(w)):
        (f,) = report.findings_for("ABI307")
        assert f.source == str(w) and "demo_pkg/util.py" in f.message
        assert f.evidence[0].startswith("wheel-inspect: RecordDigestMismatchError")
    # A file RECORD does not list.
    extra = wheel(tmp_path / "x" / "demo_pkg-1.0-py3-none-any.whl",
                  {"demo_pkg/__init__.py": b""}, tamper={"demo_pkg/extra.py": b""})
    (f,) = abiscan.scan(extra).findings_for("ABI307")
    assert "demo_pkg/extra.py" in f.message


def test_layers_never_import_wheel_inspect(tmp_path: Path) -> None:
    layer = write_zip(tmp_path / "layer.zip", {"python/ok.py": ""})
    w = wheel(tmp_path / "demo_pkg-1.0-py3-none-any.whl", {"demo_pkg/__init__.py": b""})
    code = ("import sys, abiscan; abiscan.scan(sys.argv[1]); "
            "print('wheel_inspect' in sys.modules)")
    for path, imported in ((layer, "False"), (w, "True")):
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                              text=True, check=True)
        assert done.stdout.strip() == imported
