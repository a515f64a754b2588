"""Regenerate ``abiscan/target/data/cpython_exports.json``: the C-API symbols each CPython exports.

Reads the dynamic symbol table of ``libpython3.X.so.1.0`` of every local pyenv
CPython 3.8+ built with ``--enable-shared`` (abiscan's own ELF reader; nothing
is loaded or run but ``python -c`` to ask each interpreter for its version and
build flags) and writes, for every symbol, the minor versions that export it.
Versions without a local interpreter are listed as unavailable, so that
abiscan lowers its confidence instead of guessing.

    python tools/gen_cpython_exports.py            # write the data file
    python tools/gen_cpython_exports.py --check    # exit 1 if it would change
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

from abiscan.elf.reader import read_facts

from _generated import write_or_check

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "abiscan" / "target" / "data" / "cpython_exports.json"
# The CPython versions abiscan's Lambda targets run; the data must say
# something about each of them.
WANTED = [(3, m) for m in range(8, 15)]

_ASK = (
    "import json, sys, sysconfig; print(json.dumps({"
    "'version': '.'.join(map(str, sys.version_info[:3])), "
    "'shared': sysconfig.get_config_var('Py_ENABLE_SHARED'), "
    "'libdir': sysconfig.get_config_var('LIBDIR'), "
    "'soname': sysconfig.get_config_var('INSTSONAME'), "
    "'abiflags': sysconfig.get_config_var('ABIFLAGS') or '', "
    "'multiarch': sysconfig.get_config_var('MULTIARCH') or '', "
    "'config_args': sysconfig.get_config_var('CONFIG_ARGS') or ''}))"
)


def pyenv_root() -> Path:
    env = os.environ.get("PYENV_ROOT")
    return Path(env) if env else Path.home() / ".pyenv"


def interpreters() -> dict[tuple[int, int], dict[str, str]]:
    found: dict[tuple[int, int], dict[str, str]] = {}
    for exe in sorted(pyenv_root().glob("versions/*/bin/python3")):
        try:
            out = subprocess.run(
                [str(exe), "-I", "-S", "-c", _ASK], capture_output=True, text=True,
                timeout=60, check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        info = json.loads(out)
        major, minor = (int(p) for p in info["version"].split(".")[:2])
        if (major, minor) not in WANTED or info["abiflags"] or not info["shared"]:
            continue
        lib = Path(info["libdir"]) / info["soname"]
        if not lib.is_file():
            continue
        info["library"] = str(lib)
        # The newest patch release of each minor wins.
        prev = found.get((major, minor))
        if prev is None or _patch(info["version"]) > _patch(prev["version"]):
            found[(major, minor)] = info
    return found


def _build_words(info: dict[str, str]) -> str:
    """The build: pyenv, its multiarch and the configure switches (no local paths)."""
    pattern = r"'(--(?:enable|disable|with|without)-[^'=]*)"
    switches = sorted(set(re.findall(pattern, info["config_args"])))
    return f"pyenv (python-build) {' '.join(switches)}, {info['multiarch'] or 'unknown multiarch'}"


def _patch(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _ranges(minors: list[int]) -> str:
    parts: list[str] = []
    start = prev = minors[0]
    for m in [*minors[1:], -1]:
        if m == prev + 1:
            prev = m
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = m
    return ",".join(parts)


def build() -> dict[str, object]:
    found = interpreters()
    exports: dict[tuple[int, int], frozenset[str]] = {}
    versions: dict[str, object] = {}
    for ver in WANTED:
        key = f"{ver[0]}.{ver[1]}"
        info = found.get(ver)
        if info is None:
            versions[key] = {
                "available": False,
                "why": f"no local CPython {key} built with --enable-shared was available "
                "when the data was generated; abiscan does not guess its exports",
            }
            continue
        data = Path(info["library"]).read_bytes()
        exports[ver] = read_facts(data).exported
        versions[key] = {
            "available": True,
            "interpreter": info["version"],
            "library": Path(info["library"]).name,
            "build": _build_words(info),
            "sha256": hashlib.sha256(data).hexdigest(),
            "symbols": len(exports[ver]),
        }
    symbols: dict[str, str] = {}
    for name in sorted(set().union(*exports.values())) if exports else []:
        minors = sorted(v[1] for v, names in exports.items() if name in names)
        symbols[name] = _ranges(minors)
    return {
        "comment": (
            "Dynamic symbols exported by libpython of each CPython version (the C API the "
            "interpreter offers an extension module), with the minor versions that export "
            "each. Generated by tools/gen_cpython_exports.py from local pyenv builds; "
            "Lambda's own builds of the same minor version export the same C API (same "
            "sources, same configure switches that matter: no debug, no free threading)."
        ),
        "generator": "tools/gen_cpython_exports.py",
        "versions": versions,
        "symbols": symbols,
    }


def main() -> int:
    return write_or_check(
        OUT, lambda: json.dumps(build(), indent=0, sort_keys=True) + "\n",
        __doc__.splitlines()[0],
    )


if __name__ == "__main__":
    raise SystemExit(main())
