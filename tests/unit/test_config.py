"""Configuration files and the flags that override them: one test per key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from abiscan.cli import main
from abiscan.config import find_config, load_config
from abiscan.errors import ConfigError
from abiscan.report.findings import Severity
from abiscan.target.profiles import builtin_target
from abiscan.testing.elf_writer import build_shared_object

from helpers import installed, write_zip

Capsys = pytest.CaptureFixture[str]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder, the working directory, with one layer: an extension for 3.11
    (ABI101 on 3.12) and a distribution with a missing dependency (ABI303)."""
    write_zip(tmp_path / "layer.zip", {
        "python/_speedups.cpython-311-x86_64-linux-gnu.so":
            build_shared_object(exports=["PyInit__speedups"]),
        **installed("app", "1.0", {"app/__init__.py": ""}, requires_dist=("missing-dep",)),
    })
    write_zip(tmp_path / "other.zip", {"python/other.py": ""})
    monkeypatch.chdir(tmp_path)
    return tmp_path


def configure(project: Path, text: str, name: str = "pyproject.toml") -> Path:
    path = project / name
    path.write_text(("[tool.abiscan]\n" if name == "pyproject.toml" else "") + text)
    return path


def scan_json(capsys: Capsys, *argv: str) -> tuple[int, dict[str, object]]:
    code = main(["scan", *argv, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def codes(data: dict[str, object]) -> list[str]:
    return sorted(f["code"] for f in data["findings"])  # type: ignore[index, attr-defined]


def test_layers_key(project: Path, capsys: Capsys) -> None:
    configure(project, 'layers = ["other.zip"]\n')
    _, data = scan_json(capsys)
    assert [i["source"] for i in data["inputs"]] == [str(project / "other.zip")]  # type: ignore
    # Inputs on the command line replace the file's.
    _, data = scan_json(capsys, "layer.zip")
    assert [i["source"] for i in data["inputs"]] == ["layer.zip"]  # type: ignore


def test_function_and_site_packages_keys(project: Path, capsys: Capsys) -> None:
    configure(project, 'function = "other.zip"\nsite-packages = "layer.zip"\n')
    _, data = scan_json(capsys)
    kinds = {i["kind"] for i in data["inputs"]}  # type: ignore[attr-defined]
    assert kinds == {"function", "site-packages"}


def test_runtime_and_arch_keys(project: Path, capsys: Capsys) -> None:
    configure(project, 'runtime = "python3.11"\narch = "arm64"\n')
    _, data = scan_json(capsys, "layer.zip")
    assert data["target"]["name"] == builtin_target("python3.11", "arm64").name  # type: ignore
    # --runtime on the command line wins, and the file's arch goes with the file's runtime.
    _, data = scan_json(capsys, "layer.zip", "--runtime", "python3.12")
    assert data["target"]["name"] == builtin_target("python3.12", "x86_64").name  # type: ignore


def test_python_and_glibc_keys(project: Path, capsys: Capsys) -> None:
    configure(project, 'python = "3.11"\nglibc = "2.17"\n')
    _, data = scan_json(capsys, "layer.zip")
    assert data["target"]["python_version"] == "3.11"  # type: ignore[index]
    assert data["target"]["libc_version"] == "2.17"  # type: ignore[index]


def test_target_key_is_relative_to_the_file(project: Path, capsys: Capsys) -> None:
    (project / "profiles").mkdir()
    (project / "profiles" / "t.json").write_text(builtin_target("python3.11").to_json())
    configure(project, 'target = "profiles/t.json"\n')
    (project / "sub").mkdir()
    import os

    os.chdir(project / "sub")  # found walking up; the path stays relative to the file
    _, data = scan_json(capsys, str(project / "layer.zip"))
    assert data["target"]["python_version"] == "3.11"  # type: ignore[index]


def test_imports_key(project: Path, capsys: Capsys) -> None:
    configure(project, 'imports = ["json", "not_there"]\n')
    _, data = scan_json(capsys, "other.zip")
    names = {m["name"] for m in data["modules"]}  # type: ignore[attr-defined]
    assert {"json", "not_there"} <= names


def test_select_key_and_flag(project: Path, capsys: Capsys) -> None:
    configure(project, 'select = ["ABI3"]\n')
    assert codes(scan_json(capsys, "layer.zip")[1]) == ["ABI303"]
    assert codes(scan_json(capsys, "layer.zip", "--select", "ABI1")[1]) == ["ABI101"]
    both = scan_json(capsys, "layer.zip", "--select", "ABI101,ABI303")[1]
    assert codes(both) == ["ABI101", "ABI303"]


def test_ignore_key_and_flag(project: Path, capsys: Capsys) -> None:
    configure(project, 'ignore = "ABI101"\n')
    assert codes(scan_json(capsys, "layer.zip")[1]) == ["ABI303"]
    assert codes(scan_json(capsys, "layer.zip", "--ignore", "ABI3")[1]) == ["ABI101"]


def test_fail_on_key_and_flag(project: Path, capsys: Capsys) -> None:
    configure(project, 'fail-on = "never"\n')
    assert scan_json(capsys, "layer.zip")[0] == 0
    assert scan_json(capsys, "layer.zip", "--fail-on", "error")[0] == 1
    # warning: a warning finding fails the run too (ABI101 as a warning here).
    configure(project, 'fail-on = "warning"\nseverity = {ABI101 = "warning"}\n'
              'ignore = ["ABI3"]\n')
    assert scan_json(capsys, "layer.zip")[0] == 1
    assert scan_json(capsys, "layer.zip", "--fail-on", "error")[0] == 0


def test_ignoring_every_finding_passes(project: Path, capsys: Capsys) -> None:
    configure(project, 'ignore = ["ABI1", "ABI3"]\n')
    assert scan_json(capsys, "layer.zip")[0] == 0
    # A module that fails with no finding at all still fails the run.
    assert main(["scan", "layer.zip", "--import", "not_there", "-q"]) == 1


def test_severity_key(project: Path, capsys: Capsys) -> None:
    configure(project, '[tool.abiscan.severity]\nABI3 = "info"\nABI303 = "warning"\n')
    _, data = scan_json(capsys, "layer.zip")
    (dep,) = [f for f in data["findings"] if f["code"] == "ABI303"]  # type: ignore
    assert dep["severity"] == "warning"  # the longest prefix wins


def test_per_path_ignores_key(project: Path, capsys: Capsys) -> None:
    configure(project, '[tool.abiscan.per-path-ignores]\n"python/_speedups*" = ["ABI1"]\n')
    assert codes(scan_json(capsys, "layer.zip")[1]) == ["ABI303"]


def test_per_module_ignores_key(project: Path, capsys: Capsys) -> None:
    configure(project, '[tool.abiscan.per-module-ignores]\n"_speed*" = "ABI101"\n')
    assert codes(scan_json(capsys, "layer.zip")[1]) == ["ABI303"]


def test_format_and_output_keys(project: Path, capsys: Capsys) -> None:
    configure(project, 'format = "sarif"\noutput = "out/abiscan.sarif"\n')
    (project / "out").mkdir()
    assert main(["scan", "layer.zip"]) == 1
    assert capsys.readouterr().out == ""
    doc = json.loads((project / "out" / "abiscan.sarif").read_text())
    assert doc["version"] == "2.1.0"
    # -o and --format on the command line win.
    assert main(["scan", "layer.zip", "--format", "json", "-o", "r.json"]) == 1
    assert json.loads((project / "r.json").read_text())["schema_version"] == "1.1"


def test_quiet(project: Path, capsys: Capsys) -> None:
    assert main(["scan", "layer.zip", "--quiet", "--no-config"]) == 1
    assert capsys.readouterr().out == ""


def test_unknown_keys_and_bad_values_are_usage_errors(project: Path, capsys: Capsys) -> None:
    for text, expected in (
        ('selct = ["ABI1"]\n', "unknown key 'selct'"),
        ('fail-on = "sometimes"\n', "'fail-on' must be"),
        ('select = ["XYZ1"]\n', "not a finding code"),
        ('severity = {ABI101 = "fatal"}\n', "severity of ABI101"),
        ('layers = 3\n', "'layers' must be a string or a list of strings"),
        ('format = "html"\n', "'format' must be one of"),
        ('runtime = "python3.12"\n[tool.abiscan.nested]\nx = 1\n', "unknown key 'nested'"),
    ):
        path = configure(project, text)
        assert main(["scan", "layer.zip"]) == 2, text
        err = capsys.readouterr().err
        assert expected in err and str(path) in err, err
    configure(project, "this is = not toml [")
    assert main(["scan", "layer.zip"]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["scan", "layer.zip", "--select", "ABI1x"]) == 2


def test_finding_the_file(project: Path, capsys: Capsys) -> None:
    (project / "a" / "b").mkdir(parents=True)
    assert find_config(project / "a" / "b") is None
    # A pyproject.toml without [tool.abiscan] is passed over.
    (project / "a" / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert find_config(project / "a" / "b") is None
    configure(project, 'ignore = ["ABI1"]\n')
    assert find_config(project / "a" / "b") == project / "pyproject.toml"
    # abiscan.toml comes first in its folder, and a nearer file wins.
    configure(project, 'ignore = ["ABI3"]\n', "abiscan.toml")
    assert find_config(project) == project / "abiscan.toml"
    configure(project / "a", 'select = ["ABI2"]\n', "abiscan.toml")
    assert find_config(project / "a" / "b") == project / "a" / "abiscan.toml"
    assert load_config(project / "abiscan.toml").policy.ignore == ("ABI3",)
    with pytest.raises(ConfigError, match="no \\[tool.abiscan\\]"):
        load_config(project / "a" / "pyproject.toml")


def test_a_pyproject_naming_no_abiscan_is_not_parsed(project: Path) -> None:
    """Only a pyproject.toml that names abiscan (or has an escape that could spell the
    name) is parsed: TOML that is not abiscan's does not stop a scan, and start-up
    imports no TOML parser for it."""
    import subprocess
    import sys

    (project / "a").mkdir()
    (project / "a" / "pyproject.toml").write_text("[project\nname = 'x'\n")  # not TOML
    assert find_config(project / "a") is None
    # A quoted key may spell the name with escapes: such a file is parsed.
    (project / "a" / "pyproject.toml").write_text('[tool."\\u0061biscan"]\nselect = ["ABI1"]\n')
    assert find_config(project / "a") == project / "a" / "pyproject.toml"
    assert load_config(project / "a" / "pyproject.toml").policy.select == ("ABI1",)
    (project / "b").mkdir()
    (project / "b" / "pyproject.toml").write_text("[tool.black]\nline-length = 99\n")
    code = ("import sys; from pathlib import Path; from abiscan.config import find_config; "
            "print(find_config(Path(sys.argv[1])), 'tomllib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(project / "b")], capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == ["None", "False"]


def test_config_and_no_config_flags(project: Path, capsys: Capsys) -> None:
    configure(project, 'ignore = ["ABI1"]\n')
    other = configure(project, 'ignore = ["ABI3"]\n', "strict.toml")
    assert codes(scan_json(capsys, "layer.zip")[1]) == ["ABI303"]
    assert codes(scan_json(capsys, "layer.zip", "--config", str(other))[1]) == ["ABI101"]
    assert codes(scan_json(capsys, "layer.zip", "--no-config")[1]) == ["ABI101", "ABI303"]
    assert main(["scan", "layer.zip", "--config", "missing.toml"]) == 2
    assert "missing.toml" in capsys.readouterr().err


def test_policy_fails_as_before_without_configuration() -> None:
    from abiscan.config import Policy
    from abiscan.report.findings import ABI107, ABI203, Finding, PredictedError
    from abiscan.report.model import ModuleOutcome, Report

    error = PredictedError("ImportError", "x")
    report = Report(
        target=builtin_target("python3.12"),
        modules=(ModuleOutcome("a", "error", None, None, error=error, chain=("a",)),),
        # Only a warning is about 'a': the module's own failure still fails the run.
        findings=(Finding.of(ABI107, "m", "f", module="a"),),
    )
    assert Policy().fails(report, Policy().apply(report)) is True
    ignoring = Policy(ignore=("ABI107",))
    assert ignoring.fails(report, ignoring.apply(report)) is False
    err = Report(target=report.target, modules=report.modules,
                 findings=(Finding.of(ABI203, "m", "f", module="a"),))
    lowered = Policy(severity={"ABI2": Severity.WARNING})
    assert lowered.fails(err, lowered.apply(err)) is False
    assert Policy(fail_on="warning", severity={"ABI2": Severity.WARNING}).fails(
        err, lowered.apply(err)) is True
