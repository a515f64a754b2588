"""abiscan matrix: one stack on every built-in target, and what the layer declares (ABI405)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from abiscan.cli import main
from abiscan.demo import build_incident
from abiscan.errors import ArgumentError
from abiscan.runtime_matrix import matrix, read_declared
from abiscan.target.profiles import builtin_target, builtin_targets

from helpers import write_zip
from schema_check import validate_output


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_incident(tmp_path_factory.mktemp("incident"))


def declared_file(tmp_path: Path, runtimes: list[str], archs: list[str] | None = None,
                  listed: bool = False) -> Path:
    version: dict[str, object] = {"Version": 3, "CompatibleRuntimes": runtimes}
    if archs is not None:
        version["CompatibleArchitectures"] = archs
    data = {"LayerVersions": [version, {"Version": 2, "CompatibleRuntimes": []}]} \
        if listed else version
    path = tmp_path / "layer.json"
    path.write_text(json.dumps(data))
    return path


def test_incident_matrix(incident: tuple[Path, Path]) -> None:
    result = matrix(incident)
    assert len(result.cells) == len(builtin_targets())
    new = result.cell("python3.12", "x86_64")
    assert new is not None and not new.imports
    first = new.first_failure
    assert first is not None and first.error is not None
    assert first.error.type == "pyo3_runtime.PanicException"
    assert first.chain[-1] == "_cffi_backend"
    # The _cffi_backend was built for CPython 3.8 on x86_64: that one cell passes.
    passing = [(c.target.runtime, c.target.lambda_arch) for c in result.cells if c.imports]
    assert passing == [("python3.8", "x86_64")]
    assert result.findings == ()


def test_inputs_are_read_once(incident: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
                              ) -> None:
    from abiscan.inputs import sources

    reads: list[str] = []
    original = sources.ZipSource.read

    def counting(self: sources.ZipSource, entry: sources.Entry, limit: int = 1 << 28) -> bytes:
        reads.append(f"{self.label}:{entry.path}")
        return original(self, entry, limit)

    monkeypatch.setattr(sources.ZipSource, "read", counting)
    matrix(incident, targets=[builtin_target("python3.8"), builtin_target("python3.12"),
                              builtin_target("python3.12", "arm64")])
    assert reads and len(reads) == len(set(reads))


def test_declared_yields_abi405(incident: tuple[Path, Path], tmp_path: Path) -> None:
    declared = read_declared(declared_file(tmp_path, ["python3.8", "python3.12", "nodejs20.x"],
                                           ["x86_64"]))
    result = matrix(incident, declared=declared)
    assert [c.target.name for c in result.cells if c.declared] == [
        "python3.8-x86_64", "python3.12-x86_64"]
    (f,) = result.findings
    assert f.code == "ABI405" and "python3.12 on x86_64" in f.message
    assert f.predicted_error is not None
    assert f.predicted_error.type == "pyo3_runtime.PanicException"
    assert f.source == str(tmp_path / "layer.json")


def test_declared_files(tmp_path: Path) -> None:
    d = read_declared(declared_file(tmp_path, ["python3.12"], listed=True))
    assert d.runtimes == ("python3.12",) and d.architectures == ("x86_64",)
    d = read_declared(declared_file(tmp_path, ["python3.11"], ["arm64", "x86_64"]))
    assert d.architectures == ("arm64", "x86_64")
    (tmp_path / "bad.json").write_text('{"LayerArn": "x"}')
    with pytest.raises(ArgumentError, match="CompatibleRuntimes"):
        read_declared(tmp_path / "bad.json")
    with pytest.raises(ArgumentError, match="No such file"):
        read_declared(tmp_path / "missing.json")


def test_cli_matrix(incident: tuple[Path, Path], tmp_path: Path,
                    capsys: pytest.CaptureFixture[str]) -> None:
    layers = [str(p) for p in incident]
    assert main(["matrix", *layers, "--runtime", "python3.8", "--runtime", "python3.12",
                 "--arch", "x86_64"]) == 0
    out = capsys.readouterr().out
    assert "  python3.8-x86_64   yes\n" in out
    assert "  python3.12-x86_64  no       import awswrangler_like: pyo3_runtime." in out
    declared = declared_file(tmp_path, ["python3.12"], ["x86_64"])
    assert main(["matrix", *layers, "--declared", str(declared), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    validate_output("matrix", data)
    assert [f["code"] for f in data["findings"]] == ["ABI405"]
    cell = next(c for c in data["cells"] if c["target"] == "python3.12-x86_64")
    assert cell["declared"] and not cell["imports"]
    assert cell["first_failure"]["error"]["type"] == "pyo3_runtime.PanicException"
    assert main(["matrix", *layers, "--runtime", "python2.7"]) == 2
    assert main(["matrix"]) == 2
    assert main(["matrix", *layers, "--declared", str(tmp_path / "nope.json")]) == 2


def test_unreadable_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_zip(tmp_path / "good.zip", {"python/ok.py": ""})
    assert main(["matrix", str(good), str(tmp_path / "missing.zip"),
                 "--runtime", "python3.12"]) == 2
    assert "missing.zip (UNREADABLE)" in capsys.readouterr().out
