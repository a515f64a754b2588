"""Targets captured from real interpreters: run :mod:`abiscan.target.capture` inside them.

This is the one place where abiscan runs a program: the interpreter the user
names, with ``-I`` (isolated: no user site, no ``PYTHON*`` variables, no
current directory on ``sys.path``) on abiscan's own ``capture.py``, which
only reads files and prints JSON. Nothing from a scanned artifact is run.
"""

from __future__ import annotations

import json
import os
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

from abiscan.target.profiles import Target, TargetError

__all__ = ["CAPTURE_TIMEOUT", "capture_profile", "capture_script", "capture_target"]

CAPTURE_TIMEOUT = 120


def capture_script() -> str:
    """The text of ``capture.py``, the stdlib-only part that runs inside the target."""
    return resources.files("abiscan.target").joinpath("capture.py").read_text("utf-8")


def capture_profile(python: str | Path) -> dict[str, Any]:
    """Run ``capture.py`` in the interpreter ``python`` and return the profile it prints."""
    script = resources.files("abiscan.target").joinpath("capture.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    with resources.as_file(script) as path:
        try:
            proc = subprocess.run(
                [str(python), "-I", str(path)],
                capture_output=True,
                text=True,
                timeout=CAPTURE_TIMEOUT,
                env=env,
                check=False,
            )
        except FileNotFoundError:
            raise TargetError(f"{python}: no such interpreter") from None
        except PermissionError:
            raise TargetError(f"{python}: not executable") from None
        except OSError as exc:
            raise TargetError(f"{python}: cannot run: {exc.strerror or exc}") from None
        except subprocess.TimeoutExpired:
            raise TargetError(f"{python}: capture took over {CAPTURE_TIMEOUT}s") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise TargetError(f"{python}: capture failed (exit {proc.returncode}): {' / '.join(tail)}")
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise TargetError(f"{python}: capture printed no profile: {exc}") from None
    if not isinstance(data, dict):
        raise TargetError(f"{python}: capture printed no profile")
    return data


def capture_target(python: str | Path) -> Target:
    """The target profile of a real interpreter (CPython 3.8+) and its system, Lambda layout."""
    return Target.from_dict(capture_profile(python))
