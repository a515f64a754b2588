"""Ground truth: each module imported in a fresh CPython of the target's version.

The interpreter runs with ``-I -S -B`` (no user site, no site-packages of its own, no
bytecode written), and ``sys.path`` is Lambda's (``abiscan.target.capture.lambda_sys_path``):
``/opt/python/lib/python3.X/site-packages`` and ``/opt/python`` (with the merged layers
playing ``/opt``; ``/var/task`` is empty here), then the runtime's own distributions where
Lambda has them (``/var/runtime`` before the standard library up to python3.10, the
interpreter's site-packages before it after; see ``realworld.runtime``), and the
standard library. Results are cached by the layer directory (named for the SHA-256 of
its wheels), the interpreter, the probe and the runtime's directories.
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

from realworld.runtime import RuntimeDir, runtime_key

__all__ = ["Interpreter", "Truth", "find_interpreter", "ground_truth", "lambda_entries",
           "shadowed", "truth_key"]

# 2: the runtime's own distributions on sys.path (1 had none: boto3 and company missing).
PROBE_VERSION = 2
_V1 = 1
TIMEOUT = 180
_SAVE_EVERY = 25
# Python 3.8-compatible: runs inside every target interpreter. The last line is the answer.
_PROBE = r"""
import json, sys
name = sys.argv[1]
sys.path[:0] = json.loads(sys.argv[2])
sys.path += json.loads(sys.argv[3])
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


def lambda_entries(opt: Path, python: str, runtime: Sequence[RuntimeDir] = ()
                   ) -> tuple[list[str], list[str]]:
    """Lambda's sys.path entries (before, after) the standard library, in
    ``lambda_sys_path``'s order, with ``opt`` as /opt and ``runtime`` standing for the
    runtime's directories (/var/task is empty here; a location with nothing in it is
    left out)."""
    from abiscan.target.capture import lambda_sys_path

    major, minor = (int(p) for p in python.split("."))
    where = {d.location: str(d.path) for d in runtime}
    before: list[str] = []
    after: list[str] = []
    seen_stdlib = False
    for entry in lambda_sys_path(major, minor):
        if entry.startswith("/opt/"):
            real: str | None = str(opt / entry.removeprefix("/opt/"))
        elif entry in where:
            real = where[entry]
        elif entry.startswith(f"/var/lang/lib/python{major}") and not entry.endswith(
                "site-packages"):
            seen_stdlib = True
            continue
        else:
            real = None  # /var/task, or a runtime location holding nothing
        if real is not None:
            (after if seen_stdlib else before).append(real)
    return before, after


def shadowed(opt: Path, python: str, runtime: Sequence[RuntimeDir]) -> bool:
    """Whether the layers carry every top-level module of the runtime's directories,
    ahead of them on sys.path: then the runtime cannot change any import."""
    before, _ = lambda_entries(opt, python)
    for d in runtime:
        for item in d.path.iterdir():
            if item.name.endswith((".dist-info", ".pth")) or item.name.startswith("_distutils"):
                continue
            name = item.name.split(".", 1)[0]
            if item.is_dir() and not (item / "__init__.py").is_file():
                return False  # a namespace portion merges with the layers' copy
            if not any(_provides(Path(e), name) for e in before):
                return False
    return True


def _provides(entry: Path, name: str) -> bool:
    return ((entry / name / "__init__.py").is_file() or (entry / f"{name}.py").is_file()
            or any(entry.glob(f"{name}.*.so")) or (entry / f"{name}.so").is_file())


def _normalise(text: str | None, opt: Path, interp: Interpreter, home: str,
               runtime: Sequence[RuntimeDir] = ()) -> str | None:
    if text is None:
        return None
    for d in runtime:
        text = text.replace(str(d.path), d.location)
    text = text.replace(str(opt), "/opt")
    text = text.replace(str(interp.prefix), "/var/lang")
    return text.replace(home, "/tmp/home")


def _import(interp: Interpreter, name: str, opt: Path, python: str, home: str,
            runtime: Sequence[RuntimeDir]) -> Truth:
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
           "MPLCONFIGDIR": home, "XDG_CACHE_HOME": home, "XDG_CONFIG_HOME": home}
    before, after = lambda_entries(opt, python, runtime)
    cmd = [str(interp.executable), "-I", "-S", "-B", "-c", _PROBE, name,
           json.dumps(before), json.dumps(after)]
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
                     message=_normalise(proc.stderr.strip()[-500:], opt, interp, home, runtime))
    return Truth(outcome=data["outcome"], type=data.get("type"),
                 message=_normalise(data.get("message"), opt, interp, home, runtime),
                 file=_normalise(data.get("file"), opt, interp, home, runtime))


def truth_key(opt: Path, python: str, runtime: Sequence[RuntimeDir]) -> str:
    """The truth file's name. Where the layers shadow every runtime module the runtime
    cannot change an import, and the key (and truth) of probe 1, which had no runtime,
    still holds; otherwise the key names the probe and the runtime's directories."""
    interp = find_interpreter(python)
    if not runtime or shadowed(opt, python, runtime):
        text = f"{_V1}:{interp.executable}:{interp.version}:{opt.name}"
    else:
        text = (f"{PROBE_VERSION}:{interp.executable}:{interp.version}:{opt.name}:"
                f"{runtime_key(runtime)}")
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def ground_truth(opt: Path, python: str, modules: Sequence[str], cache: Path, jobs: int,
                 runtime: Sequence[RuntimeDir] = (),
                 progress: Callable[[int], None] | None = None) -> dict[str, Truth]:
    """Each of ``modules`` imported in its own fresh interpreter, with the runtime's
    directories ``runtime`` where Lambda has them; cached results reused."""
    interp = find_interpreter(python)
    if runtime and shadowed(opt, python, runtime):
        runtime = ()
    path = cache / "truth" / f"{truth_key(opt, python, runtime)}.json"
    known: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else {}
    todo = [m for m in modules if m not in known]
    lock = threading.Lock()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="realworld-home-") as home:

        def one(name: str) -> None:
            truth = _import(interp, name, opt, python, home, runtime)
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
