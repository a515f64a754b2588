"""Ground truth: each module imported in a fresh CPython of the target's version.

The interpreter runs with ``-I -S -B`` (no user site, no site-packages of its own, no
bytecode written), and ``sys.path`` is Lambda's: ``/var/task``,
``/opt/python/lib/python3.X/site-packages`` and ``/opt/python`` (with the merged layers
playing ``/opt``) before the interpreter's standard library. Results are cached by the
layer directory (named for the SHA-256 of its wheels), the interpreter and the probe.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Interpreter", "Truth", "find_interpreter", "ground_truth", "lambda_entries"]

PROBE_VERSION = 1
TIMEOUT = 180
_SAVE_EVERY = 25
# Python 3.8-compatible: runs inside every target interpreter. The last line is the answer.
_PROBE = r"""
import json, sys
name = sys.argv[1]
sys.path[:0] = json.loads(sys.argv[2])
try:
    import importlib
    module = importlib.import_module(name)
    out = {"outcome": "ok", "file": getattr(module, "__file__", None)}
except BaseException as exc:
    t = type(exc)
    qual = t.__qualname__ if t.__module__ == "builtins" else t.__module__ + "." + t.__qualname__
    out = {"outcome": "error", "type": qual, "message": str(exc)}
sys.stdout.write("\n" + json.dumps(out) + "\n")
sys.stdout.flush()
"""


@dataclass(frozen=True)
class Interpreter:
    executable: Path
    version: str  # "3.12.1"

    @property
    def prefix(self) -> Path:
        return self.executable.parent.parent


@dataclass(frozen=True)
class Truth:
    """What ``import <module>`` really did: ok, or the exception's type and message."""

    outcome: str  # "ok", "error" or "crash"
    type: str | None = None
    message: str | None = None
    file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "type": self.type, "message": self.message,
                "file": self.file}


def find_interpreter(python: str) -> Interpreter:
    """The pyenv CPython ``python`` (3.X) of this machine, newest patch level."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found = sorted(root.glob(f"versions/{python}.*/bin/python"),
                   key=lambda p: tuple(int(x) for x in p.parent.parent.name.split(".")
                                       if x.isdigit()))
    if not found:
        raise RuntimeError(f"no CPython {python} under {root}/versions")
    exe = found[-1]
    return Interpreter(executable=exe, version=exe.parent.parent.name)


def lambda_entries(opt: Path, python: str) -> list[str]:
    """Lambda's sys.path entries before the standard library, with ``opt`` as /opt
    (/var/task is empty here and /var/runtime holds nothing a layer imports)."""
    return [str(opt / "python" / "lib" / f"python{python}" / "site-packages"),
            str(opt / "python")]


def _normalise(text: str | None, opt: Path, interp: Interpreter, home: str) -> str | None:
    if text is None:
        return None
    text = text.replace(str(opt), "/opt")
    text = text.replace(str(interp.prefix), "/var/lang")
    return text.replace(home, "/tmp/home")


def _import(interp: Interpreter, name: str, opt: Path, python: str, home: str) -> Truth:
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
           "MPLCONFIGDIR": home, "XDG_CACHE_HOME": home, "XDG_CONFIG_HOME": home}
    cmd = [str(interp.executable), "-I", "-S", "-B", "-c", _PROBE, name,
           json.dumps(lambda_entries(opt, python))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=home,
                              timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return Truth(outcome="crash", type="Timeout", message=f"over {TIMEOUT}s")
    lines = proc.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1])
    except (ValueError, IndexError):
        why = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        return Truth(outcome="crash", type=why,
                     message=_normalise(proc.stderr.strip()[-500:], opt, interp, home))
    return Truth(outcome=data["outcome"], type=data.get("type"),
                 message=_normalise(data.get("message"), opt, interp, home),
                 file=_normalise(data.get("file"), opt, interp, home))


def ground_truth(opt: Path, python: str, modules: Sequence[str], cache: Path, jobs: int,
                 progress: Callable[[int], None] | None = None) -> dict[str, Truth]:
    """Each of ``modules`` imported in its own fresh interpreter; cached results reused."""
    interp = find_interpreter(python)
    key = hashlib.sha256(
        f"{PROBE_VERSION}:{interp.executable}:{interp.version}:{opt.name}".encode()
    ).hexdigest()[:24]
    path = cache / "truth" / f"{key}.json"
    known: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else {}
    todo = [m for m in modules if m not in known]
    lock = threading.Lock()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="realworld-home-") as home:

        def one(name: str) -> None:
            truth = _import(interp, name, opt, python, home)
            with lock:
                known[name] = truth.to_dict()
                if progress is not None:
                    progress(1)
                if len(known) % _SAVE_EVERY == 0:  # an interrupted run keeps what it did
                    _save(path, known)

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, todo))
    if todo:
        _save(path, known)
    return {m: Truth(**known[m]) for m in modules}


def _save(path: Path, known: Mapping[str, Mapping[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(known, indent=0, sort_keys=True))
    tmp.replace(path)
