"""The terminal report: colour rules, and GitHub workflow annotations."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from abiscan.cli import main
from abiscan.report.terminal import use_colour
from abiscan.testing.elf_writer import build_shared_object

from helpers import write_zip


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_rules() -> None:
    assert use_colour(Tty(), {}) is True
    assert use_colour(io.StringIO(), {}) is False
    assert use_colour(Tty(), {"NO_COLOR": "1"}) is False
    assert use_colour(Tty(), {"NO_COLOR": ""}) is True  # no-color.org: set and non-empty
    assert use_colour(io.StringIO(), {"FORCE_COLOR": "1"}) is True
    assert use_colour(Tty(), {"NO_COLOR": "1", "FORCE_COLOR": "1"}) is False
    assert use_colour(Tty(), {"TERM": "dumb"}) is False


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    return write_zip(tmp_path / "my, layer.zip", {
        "python/_x.cpython-311-x86_64-linux-gnu.so": build_shared_object(exports=["PyInit__x"]),
    })


def test_colour_in_the_cli(layer: Path, capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert main(["scan", str(layer), "--no-config"]) == 1
    assert "\033[1;31mABI101\033[0m" in capsys.readouterr().out
    monkeypatch.setenv("NO_COLOR", "1")
    assert main(["scan", str(layer), "--no-config"]) == 1
    assert "\033[" not in capsys.readouterr().out
    # JSON never has colour.
    monkeypatch.delenv("NO_COLOR")
    assert main(["scan", str(layer), "--no-config", "--format", "json"]) == 1
    assert "\033[" not in capsys.readouterr().out


def test_github_annotations(layer: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(layer), "--no-config", "--format", "github"]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    # Workflow command syntax: properties escape ',' and ':'; the message escapes '%' and newlines.
    where = str(layer).replace(',', '%2C')
    prefix = f"::error file={where},title=ABI101 extension-for-other-python::"
    assert line.startswith(prefix)
    assert "Predicted: ModuleNotFoundError: No module named '_x'." in line
    assert "\n" not in line


def test_progress_only_on_a_terminal(layer: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["matrix", str(layer), "--runtime", "python3.11", "--runtime", "python3.12",
            "--arch", "x86_64"]
    assert main(argv) == 0
    assert capsys.readouterr().err == ""  # not a terminal: no progress
    err = Tty()
    monkeypatch.setattr("sys.stderr", err)
    assert main(argv) == 0
    shown = err.getvalue()
    assert "abiscan: target 1 of 2: python3.11-x86_64" in shown
    assert "abiscan: target 2 of 2: python3.12-x86_64" in shown
    assert shown.endswith("\r\033[K")  # the status line is cleared at the end
    assert "IMPORTS" in capsys.readouterr().out  # the table itself is on stdout
    err.truncate(0)
    assert main(["scan", str(layer), "--no-config", "-q"]) == 1
    assert "abiscan: reading 1 input and predicting for python3.12-x86_64" in err.getvalue()
    assert capsys.readouterr().out == ""
