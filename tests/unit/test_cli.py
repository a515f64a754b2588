"""The CLI and the API end to end on synthesised layers (the incident, bad input, exit codes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import abiscan
from abiscan.cli import main
from abiscan.demo import build_incident
from abiscan.testing.elf_writer import build_shared_object

from helpers import write_zip

BACKEND_311 = "_cffi_backend.cpython-311-x86_64-linux-gnu.so"


@pytest.fixture
def incident(tmp_path: Path) -> list[Path]:
    """Layer 1: pure-Python PyMySQL-like; layer 2: cryptography and cffi built for 3.11."""
    l1 = write_zip(tmp_path / "L1.zip", {
        "python/pymysql/__init__.py": "from . import connections\n",
        "python/pymysql/connections.py": "try:\n    import cryptography\nexcept ImportError:\n"
                                         "    cryptography = None\n",
    })
    l2 = write_zip(tmp_path / "L2.zip", {
        "python/cffi/__init__.py": "import _cffi_backend\n",
        f"python/{BACKEND_311}": build_shared_object(exports=["PyInit__cffi_backend"]),
        "python/cryptography/__init__.py": "",
        "python/cryptography/hazmat/bindings/_rust.abi3.so":
            build_shared_object(exports=["PyInit__rust"]),
    })
    return [l1, l2]


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, dict[str, object]]:
    code = main(argv)
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_incident_on_312_and_311(incident: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    args = ["scan", *map(str, incident), "--arch", "x86_64", "--format", "json"]
    code, data = run_json(capsys, [*args, "--runtime", "python3.12"])
    assert code == 1
    assert {"schema_version", "target", "modules", "findings"} <= data.keys()
    modules = {m["name"]: m for m in data["modules"]}  # type: ignore[attr-defined]
    backend = modules["_cffi_backend"]
    assert backend["outcome"] == "error" and backend["path"] is None
    assert backend["error"] == {"type": "ModuleNotFoundError",
                                "message": "No module named '_cffi_backend'"}
    assert backend["source"] == str(incident[1])
    (finding,) = [f for f in data["findings"] if f["code"] == "ABI101"]  # type: ignore[attr-defined]
    assert finding["path"] == f"/opt/python/{BACKEND_311}"
    assert finding["module"] == "_cffi_backend" and finding["severity"] == "error"
    assert finding["predicted_error"] == backend["error"]
    for key in ("code", "name", "severity", "confidence", "message", "path", "source",
                "module", "predicted_error", "fix"):
        assert key in finding
    assert modules["cryptography.hazmat.bindings._rust"]["outcome"] == "ok"
    assert modules["pymysql"]["outcome"] == "ok"

    code, data = run_json(capsys, [*args, "--runtime", "python3.11"])
    assert code == 0
    modules = {m["name"]: m for m in data["modules"]}  # type: ignore[attr-defined]
    assert modules["_cffi_backend"]["outcome"] == "ok"
    assert modules["_cffi_backend"]["path"] == f"/opt/python/{BACKEND_311}"
    assert data["findings"] == []


def test_api_matches_cli(incident: list[Path]) -> None:
    report = abiscan.scan(incident, runtime="python3.12", arch="x86_64")
    m = report.module("_cffi_backend")
    assert m is not None and m.error is not None and m.error.type == "ModuleNotFoundError"
    # cffi's own __init__ imports _cffi_backend: the package breaks through it (ABI501).
    assert [f.code for f in report.findings] == ["ABI101", "ABI501"]
    cffi = report.module("cffi")
    assert cffi is not None and cffi.chain == ("cffi", "_cffi_backend")
    assert cffi.error == m.error
    again = abiscan.scan(incident, runtime="python3.12", arch="x86_64")
    assert again.to_json() == report.to_json()  # deterministic, byte for byte


def test_text_output_leads_with_the_error_and_its_fix(
    incident: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", *map(str, incident), "--runtime", "python3.12"]) == 1
    out = capsys.readouterr().out
    # Concise by default: first the top-level imports that fail, the ones failing
    # through a chain first, each with its chain on one line; one line per
    # finding; a line of counts. No evidence, no fixes.
    _, imports, findings, counts = out.split("\n\n")
    assert imports == ("import cffi: ModuleNotFoundError: No module named '_cffi_backend'\n"
                       "  cffi -> _cffi_backend\n"
                       "import _cffi_backend: ModuleNotFoundError: No module named "
                       "'_cffi_backend'\n")[:-1]
    assert findings == (
        "ABI101 _cffi_backend: ModuleNotFoundError: No module named '_cffi_backend'\n"
        "ABI501 cffi: ModuleNotFoundError: No module named '_cffi_backend'")
    assert counts.startswith("predicted: import errors on this target (2 failing "
                             "imports; 2 errors, 0 warnings, 0 notes; ")
    assert "fix: " not in out and "evidence: " not in out
    # -v: every finding's evidence and fix.
    assert main(["scan", *map(str, incident), "--runtime", "python3.12", "-v"]) == 1
    out = capsys.readouterr().out
    assert out.index("TOP-LEVEL IMPORTS THAT FAIL (2)") < out.index("ERRORS (2)")
    assert out.index("ERRORS (2)") < out.index("MODULES:")
    assert "ABI101" in out and "fix: " in out
    assert "predicted: ModuleNotFoundError: No module named '_cffi_backend'" in out


def test_custom_and_file_targets(incident: list[Path], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, data = run_json(capsys, ["scan", *map(str, incident), "--python", "3.11",
                                   "--arch", "x86_64", "--glibc", "2.28", "--format", "json"])
    assert code == 0 and data["target"]["libc_version"] == "2.28"  # type: ignore[index]
    assert main(["targets", "--show", "python3.12-arm64"]) == 0
    profile = tmp_path / "t.json"
    profile.write_text(capsys.readouterr().out)
    code, data = run_json(capsys, ["scan", *map(str, incident), "--target", str(profile),
                                   "--format", "json"])
    # On arm64 the x86_64 cp311 backend is not even tried (wrong version and platform).
    assert code == 1 and data["target"]["name"] == "python3.12-arm64"  # type: ignore[index]


def test_usage_errors_exit_2(incident: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(incident[0]), "--runtime", "python2.7"]) == 2
    assert "unknown runtime 'python2.7'" in capsys.readouterr().err
    assert main(["scan"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["scan", str(incident[0]), "--runtime", "python3.12", "--python", "3.12"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


def test_unreadable_input_is_named_and_the_rest_scanned(
    incident: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(incident[1].read_bytes()[:100])
    code = main(["scan", str(incident[0]), str(broken), str(incident[1]), "--format", "json"])
    captured = capsys.readouterr()
    assert code == 2
    assert f"cannot read {broken}: not a readable zip file" in captured.err
    data = json.loads(captured.out)
    assert any(p["source"] == str(broken) for p in data["problems"])
    assert "_cffi_backend" in {m["name"] for m in data["modules"]}


def test_targets_lists_every_runtime(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 14 and "python3.14-arm64" in out


def test_demo_predicts_the_incident(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "As predicted" in out and "ABI101" in out
    assert main(["demo", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    new = {m["name"]: m for m in data["python3.12"]["modules"]}
    old = {m["name"]: m for m in data["python3.8"]["modules"]}
    assert new["_cffi_backend"]["outcome"] == "error" and old["_cffi_backend"]["outcome"] == "ok"


def test_demo_layers_are_real_zips(tmp_path: Path) -> None:
    l1, l2 = build_incident(tmp_path)
    report = abiscan.scan([l1, l2], runtime="python3.8")
    assert not report.has_errors


def test_python_dash_m(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "abiscan", "targets"], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0 and "python3.8-x86_64" in proc.stdout


def test_sarif_output(incident: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", *map(str, incident), "--runtime", "python3.12",
                 "--format", "sarif"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == "2.1.0"
    (run,) = doc["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert sorted(r["ruleId"] for r in run["results"]) == ["ABI101", "ABI501"]
    (result,) = [r for r in run["results"] if r["ruleId"] == "ABI101"]
    assert result["level"] == "error"
    assert rules[result["ruleIndex"]]["id"] == "ABI101"
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "file://" + str(incident[1]))
    assert "No module named '_cffi_backend'" in result["message"]["text"]


def test_overwritten_file_keeps_its_history(tmp_path: Path) -> None:
    one = write_zip(tmp_path / "one.zip", {"python/dup.py": "1"})
    two = write_zip(tmp_path / "two.zip", {"python/dup.py": "2"})
    m = abiscan.scan([one, two]).module("dup")
    assert m is not None and m.source == str(two)
    assert m.replaced == (f"{one}:python/dup.py",)


def test_demo_shows_the_whole_incident_chain() -> None:
    from abiscan.demo import run_demo

    text, as_expected = run_demo("json")
    assert as_expected
    data = json.loads(text)
    new = {m["name"]: m for m in data["python3.12"]["modules"]}
    assert new["pymysql"]["error"] == {"type": "pyo3_runtime.PanicException",
                                       "message": "Python API call failed"}
    assert new["pymysql"]["chain"][-2:] == ["cryptography.hazmat.bindings._rust",
                                            "_cffi_backend"]
    assert "ABI502" in {f["code"] for f in data["python3.12"]["findings"]}
    assert all(m["outcome"] == "ok" for m in data["python3.8"]["modules"])
