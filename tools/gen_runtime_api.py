"""Regenerate ``abiscan/target/data/runtime_api.json``: the runtime API import-time code meets.

Asks every local pyenv CPython 3.8+ (``python -I -S``, a probe script of
this file; nothing from a scanned input is involved) what code that runs at
import time can trip over on an older or newer interpreter:

* the names each of a list of standard-library modules has (``dir()``), with
  the file it is loaded from (relative to the stdlib directory; none for a
  built-in module) and the exact ``ImportError`` ``from M import missing``
  raises;
* which classes of ``builtins`` and of those modules can be subscripted
  (``list[int]``, PEP 585 in 3.9), and the exact ``TypeError`` where not;
* whether ``|`` between classes works (PEP 604, 3.10), and how the operands
  are named in the ``TypeError`` where it does not (the ``tp_name`` of the
  metaclass, of ``typing`` objects, of ``list[int]``);
* the keyword arguments ``dataclasses.dataclass`` and ``dataclasses.field``
  accept, and the exact ``TypeError`` for the others.

Versions without a local interpreter (3.14 on the machine that generated the
file) are listed as unavailable; abiscan predicts nothing from this data for
them.

    python tools/gen_runtime_api.py            # write the data file
    python tools/gen_runtime_api.py --check    # exit 1 if it would change
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from _generated import minor_ranges, pyenv_root, write_or_check

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "abiscan" / "target" / "data" / "runtime_api.json"
WANTED = [(3, m) for m in range(8, 15)]

# The stdlib modules whose exported names are recorded. Modules whose names
# depend on how the interpreter was built (os, socket, ssl, time...) are
# "build-dependent": their names are recorded but abiscan never predicts a
# missing name from them, since a pyenv build and Lambda's may differ.
MODULES = (
    "abc", "argparse", "asyncio", "base64", "builtins", "collections", "collections.abc",
    "concurrent.futures", "contextlib", "contextvars", "copy", "csv", "dataclasses",
    "datetime", "decimal", "enum", "fractions", "functools", "glob", "graphlib", "hashlib",
    "heapq", "hmac", "html", "http", "importlib", "importlib.abc", "importlib.metadata",
    "importlib.resources", "inspect", "io", "ipaddress", "itertools", "json", "logging",
    "math", "numbers", "operator", "os", "pathlib", "pickle", "platform", "pprint", "queue",
    "random", "re", "secrets", "shlex", "shutil", "signal", "socket", "ssl", "statistics",
    "string", "struct", "subprocess", "sys", "tempfile", "textwrap", "threading", "time",
    "tomllib", "traceback", "types", "typing", "unittest", "unittest.mock", "urllib.parse",
    "uuid", "warnings", "weakref", "zoneinfo",
)
BUILD_DEPENDENT = ("os", "signal", "socket", "ssl", "sys", "time", "platform", "hashlib")

# Runs inside each interpreter (3.8+): stdlib only, no syntax newer than 3.8.
PROBE = r"""
import dataclasses, importlib, json, sys, sysconfig, typing

MODULES = json.loads(sys.argv[1])
# Names other versions have: a module __getattr__ (typing's deprecated aliases on
# 3.13, collections' ABC aliases before 3.10) serves names dir() does not list.
CANDIDATES = json.loads(sys.stdin.read() or "{}")
stdlib = sysconfig.get_paths()["stdlib"]


class _Nothing:
    pass


def tp_name(obj):
    # The name CPython's error messages give the type of obj (its tp_name).
    try:
        obj @ _Nothing()
    except TypeError as exc:
        text = str(exc)
        if text.startswith("unsupported operand type(s) for @: '"):
            return text.split("'")[1]
    except Exception:
        pass
    return None


def subscript(obj):
    for args in (int, (int, int)):
        try:
            return True, obj[args]
        except TypeError as exc:
            if "not subscriptable" in str(exc) or "not a generic class" in str(exc):
                return False, str(exc)
        except Exception:
            pass
    return None, None


out = {"version": list(sys.version_info[:3]), "modules": {}, "classes": {}}
for name in MODULES:
    try:
        module = importlib.import_module(name)
    except ImportError:
        continue
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None)
    rel = None
    if origin and origin.startswith(stdlib + "/"):
        rel = origin[len(stdlib) + 1:]
    missing = None
    try:
        exec("from %s import _abiscan_no_such_name_" % name, {})
    except ImportError as exc:
        missing = str(exc)
    names = set(dir(module))
    for candidate in CANDIDATES.get(name, ()):
        if candidate not in names and hasattr(module, candidate):
            names.add(candidate)
    submodules = []
    if hasattr(module, "__path__"):
        import pkgutil
        submodules = sorted(m.name for m in pkgutil.iter_modules(module.__path__))
        # Which submodules happen to be imported depends on what ran before.
        names.difference_update(submodules)
    classes = sorted(n for n in names if isinstance(getattr(module, n, None), type))
    if name == "collections":
        # The ABC aliases (collections.Mapping) come from a module __getattr__ until 3.10.
        import collections.abc
        names.update(n for n in collections.abc.__all__ if hasattr(module, n))
    out["modules"][name] = {"file": rel, "names": sorted(names), "missing": missing,
                            "submodules": submodules, "classes": classes}
    for attr in dir(module):
        if attr.startswith("_"):
            continue
        value = getattr(module, attr, None)
        qual = name + "." + attr
        if isinstance(value, type):
            ok, result = subscript(value)
            out["classes"][qual] = {
                "meta": tp_name(value),
                "subscript": ok,
                "error": None if ok else result,
                "alias": tp_name(result) if ok else None,
            }
        elif name == "typing":
            ok, result = subscript(value)
            out["classes"][qual] = {
                "meta": None, "object": tp_name(value), "subscript": ok,
                "error": None if ok else result, "alias": tp_name(result) if ok else None,
            }
try:
    int | str
    out["union"] = None
except TypeError as exc:
    out["union"] = str(exc)
out["none"] = tp_name(None)
sig = {}
for func in ("dataclass", "field"):
    errors = {}
    for kw in json.loads(sys.argv[2]):
        try:
            getattr(dataclasses, func)(**{kw: dataclasses.MISSING if kw.startswith("default")
                                          else False})
        except TypeError as exc:
            if "unexpected keyword argument" in str(exc):
                errors[kw] = str(exc)
        except Exception:
            pass
    sig[func] = errors
out["dataclasses"] = sig
print(json.dumps(out))
"""


def probe_all() -> dict[tuple[int, int], dict[str, object]]:
    """Each interpreter's answers; asked twice, the second time about every name any
    version listed, so that names served by a module ``__getattr__`` are found."""
    first = _probe_each({})
    candidates: dict[str, set[str]] = {}
    for info in first.values():
        for module, entry in info["modules"].items():  # type: ignore[attr-defined]
            candidates.setdefault(module, set()).update(entry["names"])
    return _probe_each({m: sorted(n) for m, n in candidates.items()})


def _probe_each(candidates: dict[str, list[str]]) -> dict[tuple[int, int], dict[str, object]]:
    found: dict[tuple[int, int], dict[str, object]] = {}
    for exe in sorted(pyenv_root().glob("versions/*/bin/python3")):
        try:
            out = subprocess.run(
                [str(exe), "-I", "-S", "-c", PROBE, json.dumps(MODULES),
                 json.dumps(sorted(_KEYWORDS))], input=json.dumps(candidates),
                capture_output=True, text=True, timeout=300, check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        info = json.loads(out)
        key = (int(info["version"][0]), int(info["version"][1]))
        prev = found.get(key)
        if key in WANTED and (prev is None or info["version"] > prev["version"]):
            found[key] = info
    return found


def _name_table(probes: dict[tuple[int, int], dict[str, object]]) -> dict[str, object]:
    modules: dict[str, object] = {}
    for name in MODULES:
        have = {v: p["modules"][name] for v, p in probes.items()  # type: ignore[index]
                if name in p["modules"]}  # type: ignore[operator]
        if not have:
            continue
        names = sorted(set().union(*(set(m["names"]) for m in have.values())))
        table = {n: minor_ranges(sorted(v[1] for v, m in have.items() if n in m["names"]))
                 for n in names}
        every = minor_ranges(sorted(v[1] for v in probes))
        modules[name] = {
            "build_dependent": name in BUILD_DEPENDENT,
            "file": {f"3.{v[1]}": m["file"] for v, m in sorted(have.items())},
            # Names every version has, then the others with the versions that have them.
            "always": [n for n, r in table.items() if r == every],
            "names": {n: r for n, r in table.items() if r != every},
            "classes": sorted(set().union(*(set(m["classes"]) for m in have.values()))),
        }
        submodules = sorted(set().union(*(set(m["submodules"]) for m in have.values())))
        if submodules:
            modules[name]["submodules"] = submodules  # type: ignore[index]
    return modules


def _class_table(probes: dict[tuple[int, int], dict[str, object]]) -> dict[str, object]:
    """Per class (or typing object): where subscripting it works, and the facts the
    messages need on the versions where it does not (or where ``|`` does not)."""
    classes: dict[str, object] = {}
    quals = sorted(set().union(*(set(p["classes"]) for p in probes.values())))  # type: ignore[arg-type]
    for qual in quals:
        per = {v: p["classes"].get(qual) for v, p in probes.items()}  # type: ignore[attr-defined]
        subscriptable = [v[1] for v, c in per.items() if c and c["subscript"]]
        entry: dict[str, object] = {}
        if subscriptable:
            entry["subscript"] = minor_ranges(sorted(subscriptable))
        errors = {f"3.{v[1]}": c["error"] for v, c in sorted(per.items())
                  if c and c["subscript"] is False}
        if errors and subscriptable:
            entry["subscript_error"] = errors
        # tp_names matter only where | between classes fails.
        old = {v: c for v, c in per.items() if c and probes[v]["union"] is not None}
        for key in ("meta", "object", "alias"):
            names = {f"3.{v[1]}": c.get(key) for v, c in sorted(old.items()) if c.get(key)}
            if names and set(names.values()) != {"type"}:
                entry[key] = names
        if entry:
            classes[qual] = entry
    return classes


_KEYWORDS = frozenset({
    "init", "repr", "eq", "order", "unsafe_hash", "frozen", "match_args", "kw_only", "slots",
    "weakref_slot", "default", "default_factory", "hash", "compare", "metadata", "doc",
})


def _template(message: str) -> str:
    """``cannot import name '{name}' from '{module}' ({location})`` in the version's words."""
    head, _, _ = message.rpartition(" (")
    head = head.replace("'_abiscan_no_such_name_'", "'{name}'").replace("'typing'", "'{module}'")
    return head + " ({location})"


def build() -> dict[str, object]:
    probes = probe_all()
    versions = {f"3.{v[1]}": ".".join(map(str, p["version"]))  # type: ignore[call-overload]
                for v, p in sorted(probes.items())}
    unavailable = {f"3.{v[1]}": "no local interpreter when the file was generated"
                   for v in WANTED if v not in probes}
    # Keyword arguments some version accepts: the others are errors everywhere.
    accepted: dict[str, set[str]] = {}
    for p in probes.values():
        for func, errors in p["dataclasses"].items():  # type: ignore[attr-defined]
            accepted.setdefault(func, set()).update(_KEYWORDS - set(errors))
    per_version = {
        f"3.{v[1]}": {
            "union_error": p["union"],
            "none": p["none"],
            "missing_name": _template(p["modules"]["typing"]["missing"]),  # type: ignore[index]
            "dataclasses": {
                func: {kw: msg for kw, msg in errors.items() if kw in accepted[func]}
                for func, errors in p["dataclasses"].items()  # type: ignore[attr-defined]
            },
        }
        for v, p in sorted(probes.items())
    }
    return {
        "comment": (
            "What import-time code meets in each CPython's runtime: names of stdlib modules "
            "(with the minor versions that have each), subscriptable classes, | between "
            "classes, dataclass keyword arguments, and the exact messages of the errors. "
            "Generated by tools/gen_runtime_api.py from local pyenv builds; paths are "
            "relative to the stdlib directory."
        ),
        "generator": "tools/gen_runtime_api.py",
        "versions": versions,
        "unavailable": unavailable,
        "runtime": per_version,
        "modules": _name_table(probes),
        "classes": _class_table(probes),
    }


def main() -> int:
    return write_or_check(
        OUT, lambda: json.dumps(build(), indent=0, sort_keys=True) + "\n",
        __doc__.splitlines()[0],
    )


if __name__ == "__main__":
    raise SystemExit(main())
