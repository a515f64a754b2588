"""Real interpreters, real compilers: the ground truth for the differential tests.

abiscan predicts what ``import`` does without running anything; these helpers
find the CPythons installed on this machine, build genuine C extension modules
and bytecode for them, and lay out zips, so a test can compare a prediction
with what the interpreter actually does.

Nothing here fails a test because the machine lacks a tool: a missing gcc,
interpreter or header directory is a ``pytest.skip`` with a reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from helpers import write_tree, write_zip

__all__ = ["write_tree", "write_zip"]

MIN_VERSION = (3, 8)

# Python 2-compatible on purpose: every pyenv version is probed, and the old
# ones must answer (and then be filtered out) rather than crash the probe.
_PROBE = r"""
import json, sys, sysconfig
out = {"version": list(sys.version_info[:3])}
if sys.version_info >= (3, 8):
    import importlib.machinery
    out["suffixes"] = list(importlib.machinery.EXTENSION_SUFFIXES)
    out["include"] = sysconfig.get_paths()["include"]
    out["abiflags"] = sysconfig.get_config_var("ABIFLAGS") or ""
    out["multiarch"] = sysconfig.get_config_var("MULTIARCH") or ""
print(json.dumps(out))
"""

PROBE_TIMEOUT = 30
BUILD_TIMEOUT = 120


@dataclass(frozen=True)
class Interpreter:
    """A local CPython, described by what it reports about itself."""

    executable: Path
    version: tuple[int, int, int]
    extension_suffixes: tuple[str, ...]
    include: Path
    abiflags: str
    multiarch: str

    @property
    def short(self) -> str:
        """``3.12``: the test id, and the version a target is built for."""
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def free_threaded(self) -> bool:
        return "t" in self.abiflags

    @property
    def soabi(self) -> str:
        """``cpython-312-x86_64-linux-gnu``, the interpreter's own tag."""
        return self.tag_for(self.version[1])

    def tag_for(self, minor: int) -> str:
        """The tag a build for ``3.<minor>`` of this same flavour would carry."""
        return f"cpython-3{minor}{self.abiflags}-{self.multiarch}"

    def suffix_for(self, minor: int) -> str:
        return f".{self.tag_for(minor)}.so"


def pyenv_root() -> Path:
    env = os.environ.get("PYENV_ROOT")
    return Path(env) if env else Path.home() / ".pyenv"


def probe(executable: Path) -> Interpreter | None:
    """Ask one interpreter about itself; ``None`` if it is older than 3.8 or broken."""
    try:
        proc = subprocess.run(
            [str(executable), "-I", "-S", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            env=_clean_env(),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    try:
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    version = tuple(int(v) for v in data["version"])
    if version[:2] < MIN_VERSION or "suffixes" not in data:
        return None
    multiarch = data["multiarch"] or _multiarch_from_suffixes(data["suffixes"])
    return Interpreter(
        executable=executable,
        version=(version[0], version[1], version[2]),
        extension_suffixes=tuple(data["suffixes"]),
        include=Path(data["include"]),
        abiflags=data["abiflags"],
        multiarch=multiarch,
    )


def _multiarch_from_suffixes(suffixes: Sequence[str]) -> str:
    # ".cpython-312-x86_64-linux-gnu.so" -> "x86_64-linux-gnu"
    for suffix in suffixes:
        if suffix.startswith(".cpython-"):
            return suffix[len(".cpython-"):-len(".so")].split("-", 1)[1]
    return ""


@cache
def discover_interpreters(root: Path | None = None) -> tuple[Interpreter, ...]:
    """Every pyenv CPython 3.8+ under ``root`` (``$PYENV_ROOT`` or ``~/.pyenv``), oldest first.

    Only pyenv is searched: the tests need a known, stable set of
    interpreters, not whatever happens to be on ``PATH``.
    """
    base = root if root is not None else pyenv_root()
    found: list[Interpreter] = []
    for exe in sorted(base.glob("versions/*/bin/python")):
        if not os.access(exe, os.X_OK):
            continue
        interp = probe(exe)
        if interp is not None and interp.multiarch:
            found.append(interp)
    found.sort(key=lambda i: (i.version, i.abiflags, str(i.executable)))
    return tuple(found)


def _clean_env() -> dict[str, str]:
    # PYTHONPATH/PYTHONHOME would leak the test runner's environment into the
    # interpreter under test; -I ignores them, but other tools (gcc) need PATH.
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}


def gcc() -> str:
    path = shutil.which("gcc")
    if path is None:
        pytest.skip("gcc is not installed: cannot build real extension modules")
    return path


_C_TEMPLATE = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>

{extra}

static struct PyModuleDef abiscan_test_def = {{
    PyModuleDef_HEAD_INIT, "{name}", NULL, 0, NULL,
}};

PyMODINIT_FUNC {init}(void)
{{
    /* Multi-phase init: the module takes its name from the spec, so one
       source serves a top-level module and a package submodule alike. */
    return PyModuleDef_Init(&abiscan_test_def);
}}
"""


@dataclass(frozen=True)
class ExtensionSpec:
    """What to compile: the module's (last) name, its init symbol, and options."""

    name: str
    init: str | None = None  # defaults to PyInit_<name>
    limited_api: int | None = None  # e.g. 0x03080000 for an abi3 build
    extra_c: str = ""

    @property
    def init_symbol(self) -> str:
        return self.init if self.init is not None else f"PyInit_{self.name}"

    def source(self) -> str:
        return _C_TEMPLATE.format(extra=self.extra_c, name=self.name, init=self.init_symbol)


class NativeBuilder:
    """Builds extension modules and bytecode once per interpreter per test session."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._extensions: dict[tuple[Path, ExtensionSpec], bytes] = {}
        self._bytecode: dict[tuple[Path, str], bytes] = {}

    def _slot(self, interp: Interpreter, stem: str) -> Path:
        # A directory per interpreter keeps same-named outputs apart.
        d = self.workdir / interp.executable.parent.parent.name
        d.mkdir(parents=True, exist_ok=True)
        return d / stem

    def extension(self, interp: Interpreter, spec: ExtensionSpec) -> bytes:
        """The bytes of ``spec`` compiled with gcc against ``interp``'s headers."""
        key = (interp.executable, spec)
        cached = self._extensions.get(key)
        if cached is not None:
            return cached
        if not (interp.include / "Python.h").is_file():
            pytest.skip(f"no Python.h for CPython {interp.short} in {interp.include}")
        index = len(self._extensions)
        src = self._slot(interp, f"ext{index}_{spec.name}.c")
        out = src.with_suffix(".so")
        src.write_text(spec.source(), "utf-8")
        cmd = [gcc(), "-shared", "-fPIC", "-O0", f"-I{interp.include}"]
        if spec.limited_api is not None:
            cmd.append(f"-DPy_LIMITED_API={spec.limited_api:#010x}")
        cmd += [str(src), "-o", str(out)]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"gcc failed for {spec.name} (CPython {interp.short}):\n"
                f"{' '.join(cmd)}\n{proc.stderr}"
            )
        data = out.read_bytes()
        self._extensions[key] = data
        return data

    def bytecode(self, interp: Interpreter, source: str) -> bytes:
        """``source`` compiled to a ``.pyc`` by ``interp`` itself (its magic, its format)."""
        key = (interp.executable, source)
        cached = self._bytecode.get(key)
        if cached is not None:
            return cached
        index = len(self._bytecode)
        src = self._slot(interp, f"bc{index}.py")
        out = src.with_suffix(".pyc")
        src.write_text(source, "utf-8")
        script = (
            "import py_compile, sys; "
            "py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)"
        )
        proc = subprocess.run(
            [str(interp.executable), "-I", "-S", "-c", script, str(src), str(out)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            env=_clean_env(),
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"py_compile failed under CPython {interp.short}:\n{proc.stderr}")
        data = out.read_bytes()
        self._bytecode[key] = data
        return data


# The import probe runs in a fresh interpreter per module so that one import's
# side effects (sys.modules, a half-initialised package) cannot change the next.
_IMPORT_SCRIPT = r"""
import importlib, json, sys
sys.dont_write_bytecode = True  # keep the laid-out tree exactly as extracted
name = sys.argv[1]
sys.path[0:0] = json.loads(sys.argv[2])
try:
    module = importlib.import_module(name)
except BaseException as exc:
    result = {"outcome": "error", "type": type(exc).__name__, "message": str(exc)}
else:
    result = {"outcome": "ok", "file": getattr(module, "__file__", None)}
sys.stdout.write("\n" + json.dumps(result) + "\n")
"""

IMPORT_TIMEOUT = 30


@dataclass(frozen=True)
class RealOutcome:
    outcome: str  # "ok", "error", or "crash" when the interpreter died without answering
    type: str | None = None
    message: str | None = None
    file: str | None = None


def real_import(
    interp: Interpreter,
    name: str,
    path_entries: Sequence[Path],
    extra_env: Mapping[str, str] | None = None,
) -> RealOutcome:
    """Import ``name`` in a fresh ``python -I -S`` with ``path_entries`` before the stdlib.

    ``extra_env`` adds environment variables (``LD_LIBRARY_PATH``: ``-I`` only
    hides ``PYTHON*`` ones, the dynamic linker still reads it).
    """
    env = {**_clean_env(), **(extra_env or {})}
    try:
        proc = subprocess.run(
            [
                str(interp.executable), "-I", "-S", "-c", _IMPORT_SCRIPT,
                name, json.dumps([str(p) for p in path_entries]),
            ],
            capture_output=True,
            text=True,
            timeout=IMPORT_TIMEOUT,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return RealOutcome("crash", "Timeout", f"import {name} took over {IMPORT_TIMEOUT}s")
    lines = proc.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1])
    except (ValueError, IndexError):
        return RealOutcome(
            "crash", f"exit {proc.returncode}", (proc.stderr or proc.stdout).strip()[-2000:]
        )
    return RealOutcome(data["outcome"], data.get("type"), data.get("message"), data.get("file"))
