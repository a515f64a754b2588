"""The pre-commit hooks and the GitHub Action, run as their hosts would run them."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from abiscan.testing.elf_writer import build_shared_object

from helpers import write_zip

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def env_with_abiscan(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


@pytest.fixture
def layers(tmp_path: Path) -> dict[str, Path]:
    return {
        "good": write_zip(tmp_path / "good layer.zip", {"python/ok.py": ""}),
        "bad": write_zip(tmp_path / "bad.zip", {
            "python/_x.cpython-311-x86_64-linux-gnu.so":
                build_shared_object(exports=["PyInit__x"]),
        }),
    }


def test_pre_commit_hooks_run_the_configured_stack(tmp_path: Path,
                                                   layers: dict[str, Path]) -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert [h["id"] for h in hooks] == ["abiscan", "abiscan-matrix"]
    for hook in hooks:
        assert hook["language"] == "python" and hook["pass_filenames"] is False
    # pre-commit runs `entry` (split like a shell) in the repository root.
    (tmp_path / "abiscan.toml").write_text(
        f'layers = ["{layers["good"].name}"]\nruntime = "python3.12"\n')
    entry = shlex.split(hooks[0]["entry"])
    done = subprocess.run(entry, cwd=tmp_path, env=env_with_abiscan(),
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    (tmp_path / "abiscan.toml").write_text(
        f'layers = ["{layers["good"].name}", "bad.zip"]\nruntime = "python3.12"\n')
    done = subprocess.run(entry, cwd=tmp_path, env=env_with_abiscan(),
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "ABI101 _x: ModuleNotFoundError" in done.stdout
    # The matrix hook takes its inputs on the command line in the hook's args.
    matrix = [*shlex.split(hooks[1]["entry"]), "bad.zip", "--runtime", "python3.11"]
    done = subprocess.run(matrix, cwd=tmp_path, env=env_with_abiscan(),
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "python3.11-x86_64  yes" in done.stdout


def _scan_step() -> dict[str, object]:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    (step,) = [s for s in action["runs"]["steps"] if s.get("id") == "scan"]
    return step  # type: ignore[no-any-return]


def test_action_scan_step(tmp_path: Path, layers: dict[str, Path]) -> None:
    """The Action's scan script, run by bash with the inputs as the runner passes them."""
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    step = _scan_step()
    # Every input the step reads is declared, with its default.
    inputs = action["inputs"]
    for value in step["env"].values():  # type: ignore[attr-defined]
        name = value.removeprefix("${{ inputs.").removesuffix(" }}")
        assert name in inputs, name
    output = tmp_path / "github_output"
    sarif = tmp_path / "out" / "abiscan.sarif"
    sarif.parent.mkdir()
    env = env_with_abiscan(
        ABISCAN_LAYERS=f"{layers['bad']}", ABISCAN_FUNCTION="", ABISCAN_RUNTIME="python3.12",
        ABISCAN_ARCH="x86_64", ABISCAN_ARGS="--no-config", ABISCAN_SARIF=str(sarif),
        GITHUB_OUTPUT=str(output),
    )
    done = subprocess.run(["bash", "-e", "-c", str(step["run"])], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert output.read_text() == "exit-code=1\n"
    assert done.stdout.startswith(f"::error file={layers['bad']},title=ABI101 ")
    doc = json.loads(sarif.read_text())
    assert [r["ruleId"] for r in doc["runs"][0]["results"]] == ["ABI101"]
    # A passing stack: exit code 0; --ignore through args.
    env["ABISCAN_ARGS"] = "--no-config --ignore ABI101"
    output.unlink()
    done = subprocess.run(["bash", "-e", "-c", str(step["run"])], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False)
    assert output.read_text() == "exit-code=0\n", done.stderr
