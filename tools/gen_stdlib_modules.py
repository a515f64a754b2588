"""Regenerate ``abiscan/target/data/stdlib_modules.json``: the top-level standard-library names.

abiscan never looks at the host's standard library when it predicts an import
(the target is not the host), yet the import graph has to know that ``import
os`` is served by the target's stdlib rather than by the stack. This writes,
for each CPython minor version, the top-level module names of its standard
library:

* 3.10 and later: ``sys.stdlib_module_names`` of a local pyenv interpreter of
  that version (CPython's own list, which includes modules a given build may
  lack, such as ``_tkinter`` or the Windows-only ones);
* 3.8 and 3.9 (no ``sys.stdlib_module_names``): the modules a local
  interpreter finds in its stdlib directories and built-ins, plus the names of
  3.10's list that are optional or platform-specific (in 3.10's list but not
  found in a local 3.10 either);
* a version without a local interpreter: the nearest older list, marked
  ``derived``, with the documented additions and removals below.

    python tools/gen_stdlib_modules.py            # write the data file
    python tools/gen_stdlib_modules.py --check    # exit 1 if it would change
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from _generated import write_or_check

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "abiscan" / "target" / "data" / "stdlib_modules.json"
WANTED = [(3, m) for m in range(8, 15)]

_ASK = r"""
import json, pkgutil, sys, sysconfig
paths = sysconfig.get_paths()
dirs = [paths["stdlib"], paths["platstdlib"] + "/lib-dynload"]
found = {m.name for m in pkgutil.iter_modules(dirs)} | set(sys.builtin_module_names)
print(json.dumps({
    "version": list(sys.version_info[:2]),
    "declared": sorted(getattr(sys, "stdlib_module_names", ())),
    "found": sorted(found),
}))
"""

# Modules of a build's test suite and examples: installed, but not part of
# the library a program imports.
_NOT_LIBRARY_PREFIXES = ("_test", "_xx", "xx", "_ctypes_test", "_sysconfigdata", "__phello__")
_NOT_LIBRARY = {"test", "site-packages"}

# Changes for versions abiscan has no local interpreter for, from "What's New
# in Python 3.X" (module additions and removals only).
_DOCUMENTED: dict[tuple[int, int], tuple[set[str], set[str]]] = {
    (3, 14): ({"annotationlib", "compression", "_zstd"}, set()),
}


def _ask(executable: Path) -> dict[str, object] | None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    try:
        proc = subprocess.run([str(executable), "-I", "-S", "-c", _ASK], capture_output=True,
                              text=True, timeout=60, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    data: dict[str, object] = json.loads(proc.stdout)
    return data


def _library(names: set[str]) -> set[str]:
    return {
        n for n in names
        if n not in _NOT_LIBRARY and not n.startswith(_NOT_LIBRARY_PREFIXES)
    }


def collect() -> dict[str, object]:
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    local: dict[tuple[int, int], dict[str, object]] = {}
    for exe in sorted(root.glob("versions/*/bin/python")):
        data = _ask(exe)
        if data is None:
            continue
        version = tuple(data["version"])  # type: ignore[arg-type]
        if (version[0], version[1]) in WANTED:
            local.setdefault((version[0], version[1]), data)
    modules: dict[str, list[str]] = {}
    how: dict[str, str] = {}
    ref = local.get((3, 10))
    optional: set[str] = set()
    if ref is not None:
        optional = set(ref["declared"]) - set(ref["found"])  # type: ignore[call-overload]
    previous: set[str] | None = None
    for version in WANTED:
        key = f"{version[0]}.{version[1]}"
        data = local.get(version)
        if data is not None and data["declared"]:
            names = set(data["declared"])  # type: ignore[call-overload]
            how[key] = "sys.stdlib_module_names of a local interpreter"
        elif data is not None:
            names = _library(set(data["found"])) | optional  # type: ignore[call-overload]
            names.add("__future__")
            how[key] = ("modules found in a local interpreter's stdlib and built-ins, plus "
                        "3.10's optional and platform-specific names")
        elif previous is not None and version in _DOCUMENTED:
            added, removed = _DOCUMENTED[version]
            names = (previous | added) - removed
            how[key] = "derived: the previous version's list with the documented changes"
        else:
            continue
        modules[key] = sorted(names)
        previous = names
    return {
        "comment": "Top-level standard-library module names per CPython version; written by "
                   "tools/gen_stdlib_modules.py. Do not edit by hand.",
        "how": how,
        "modules": modules,
    }


def main(argv: list[str]) -> int:
    return write_or_check(
        OUT, lambda: json.dumps(collect(), indent=1, sort_keys=True) + "\n",
        __doc__.split("\n\n")[0], argv,
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
