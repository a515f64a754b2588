"""Regenerate ``abiscan/target/data/runtime_modules.json``: what the runtime's own packages hold.

``data/runtime_packages.json`` records which distributions each Lambda runtime
provides and, where a source gives it, at which version (boto3 and botocore
1.23.32 on python3.8). A layer built against a newer SDK imports modules and
names that version lacks (aiobotocore's ``from botocore.auth import
resolve_auth_type``). This writes, for each (distribution, version) the runtime
data records, the modules its wheel installs and the names each module binds at
module level, and the imports its body runs whatever happens (top-level import
statements), read from the wheel pinned (by SHA-256) in the real-world
manifest's ``runtime`` section; nothing is imported or run. A module that mentions
``sys.meta_path`` or ``path_hooks`` is listed among ``finders``: it may serve
modules no file holds next to it (botocore's vendored ``six.moves``).

A module whose names cannot be listed statically (a star import, a module
``__getattr__``, writes through ``globals()``) is listed with ``null``: any name
may be there.

    python tools/gen_runtime_modules.py            # write the data file
    python tools/gen_runtime_modules.py --check    # exit 1 if it would change
"""

from __future__ import annotations

import ast
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

from _generated import write_or_check

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "abiscan" / "target" / "data" / "runtime_modules.json"
sys.path.insert(0, str(ROOT))

from abiscan.target.profiles import builtin_target  # noqa: E402
from abiscan.target.runtime_packages import runtime_packages  # noqa: E402
from realworld.paths import cache_dir  # noqa: E402
from realworld.pypi import WheelFile, download  # noqa: E402

PYTHONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14")
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
# The interpreter's own installers (python3.11's site-packages): packages do not import
# them against a version, and their vendored trees would make the file three times larger.
_LEFT_OUT = frozenset({"pip", "setuptools"})


def _recorded() -> dict[tuple[str, str], str]:
    """(project, version) the runtime data records -> the runtime it is recorded for."""
    out: dict[tuple[str, str], str] = {}
    for python in PYTHONS:
        for p in runtime_packages(builtin_target(f"python{python}", "x86_64")):
            if p.version is not None and p.name not in _LEFT_OUT:
                out.setdefault((p.name, p.version), python)
    return out


def _pinned_wheel(manifest: dict[str, Any], name: str, version: str) -> WheelFile:
    for pins in manifest["runtime"].values():
        raw = pins.get(name)
        if raw is not None and raw["version"] == version:
            return WheelFile(project=name, version=version, filename=raw["filename"],
                             sha256=raw["sha256"], size=raw["size"])
    raise SystemExit(f"{name} {version}: not pinned in realworld/manifest.json (run "
                     "python -m realworld runtime)")


def _module_of(member: str) -> str | None:
    """The import name of a wheel member installed as Python source (None: not one)."""
    top, _, rest = member.partition("/")
    if top.endswith(".data"):
        kind, _, member = rest.partition("/")
        if kind not in ("purelib", "platlib"):
            return None
    elif top.endswith(".dist-info"):
        return None
    if not member.endswith(".py"):
        return None
    parts = member[:-3].split("/")
    if parts[-1] == "__init__":
        parts.pop()
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    return ".".join(parts)


def _targets(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Starred):
        return _targets(node.value)
    if isinstance(node, (ast.Tuple, ast.List)):
        return [n for e in node.elts for n in _targets(e)]
    return []


def _bound_names(tree: ast.Module) -> list[str] | None:
    """The names module-level code may bind (every branch), or None when any name may be."""
    names: set[str] = set()
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if node.name == "__getattr__":
                return None
            names.update(n for g in ast.walk(node) if isinstance(g, ast.Global) for n in g.names)
            continue
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            return None
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign):
            names.update(n for t in node.targets for n in _targets(t))
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
            names.update(_targets(node.target))
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            names.update(_targets(node.optional_vars))
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.NamedExpr):
            names.update(_targets(node.target))
        elif isinstance(node, ast.Match) or (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("globals", "vars", "exec")
        ):
            return None
        todo.extend(c for c in ast.iter_child_nodes(node) if not isinstance(c, _SCOPES))
    return sorted(names)


def _imports(tree: ast.Module, module: str, is_package: bool, known: set[str]) -> list[Any]:
    """The imports the module body runs whatever happens: ``[line, module]`` for each
    import statement at the top level of the body (not under ``if``, ``try``, ``with``
    or in a function), and the submodules a ``from`` statement names."""
    package = module if is_package else module.rpartition(".")[0]
    out: list[Any] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            out.extend([stmt.lineno, a.name] for a in stmt.names)
        elif isinstance(stmt, ast.ImportFrom):
            base = stmt.module or ""
            if stmt.level:
                parts = package.split(".")
                if stmt.level - 1 >= len(parts):
                    continue
                head = ".".join(parts[: len(parts) - (stmt.level - 1)])
                base = f"{head}.{base}" if base else head
            out.append([stmt.lineno, base])
            out.extend([stmt.lineno, f"{base}.{a.name}"] for a in stmt.names
                       if f"{base}.{a.name}" in known)
    return out


def _contents(wheel: Path) -> dict[str, Any]:
    modules: dict[str, list[str] | None] = {}
    packages: list[str] = []
    finders: list[str] = []
    trees: dict[str, tuple[ast.Module, bool]] = {}
    with zipfile.ZipFile(wheel) as zf:
        for member in sorted(zf.namelist()):
            name = _module_of(member)
            if name is None:
                continue
            if member.endswith("/__init__.py"):
                packages.append(name)
            source = zf.read(member)
            if b"meta_path" in source or b"path_hooks" in source:
                finders.append(name)  # may serve modules no file has (six.moves)
            try:
                trees[name] = (ast.parse(source), member.endswith("/__init__.py"))
            except (SyntaxError, ValueError):
                modules[name] = None
                continue
            modules[name] = _bound_names(trees[name][0])
    known = set(modules)
    imports = {m: _imports(t, m, pkg, known) for m, (t, pkg) in sorted(trees.items())}
    # Space-separated strings: one line per module keeps the file small and diffable.
    return {"packages": sorted(packages), "finders": sorted(finders),
            "modules": {m: None if n is None else " ".join(n) for m, n in sorted(modules.items())},
            "imports": {m: " ".join(f"{line}:{t}" for line, t in i)
                        for m, i in imports.items() if i}}


def make() -> str:
    manifest = json.loads((ROOT / "realworld" / "manifest.json").read_text("utf-8"))
    cache = cache_dir()
    dists: dict[str, Any] = {}
    for (name, version), python in sorted(_recorded().items()):
        wheel = _pinned_wheel(manifest, name, version)
        path = download([wheel], cache)[wheel.filename]
        dists[f"{name} {version}"] = {"wheel": wheel.filename, "sha256": wheel.sha256,
                                      "recorded_for": f"python{python}", **_contents(path)}
    data = {
        "comment": "The modules each runtime distribution (at a version data/runtime_packages."
                   "json records) installs, and the names each binds at module level (null: "
                   "any name may be bound). Read from the wheels the real-world manifest pins; "
                   "nothing imported. Generated by tools/gen_runtime_modules.py.",
        "generator": "tools/gen_runtime_modules.py",
        "distributions": dists,
    }
    return json.dumps(data, indent=1, sort_keys=False) + "\n"


if __name__ == "__main__":
    raise SystemExit(write_or_check(OUT, make, __doc__.splitlines()[0]))
