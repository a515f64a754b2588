"""The package's stages import only downwards (docs/architecture.md).

Every ``import`` in ``abiscan/`` (module level, inside functions and under
``TYPE_CHECKING`` alike) is read with :mod:`ast` and checked against the
layer order below. A lower layer importing a higher one fails this test.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "abiscan"

# Longest prefix wins. Equal ranks may import each other; nothing imports upwards.
LAYERS: dict[str, float] = {
    "abiscan.errors": 0,
    "abiscan.records": 0,
    "abiscan._record_inits": 0,
    "abiscan.testing": 0,
    "abiscan.limits": 0,
    "abiscan.progress": 0,
    "abiscan.collector": 0,
    "abiscan._deferred_imports": 0,
    "abiscan.frame_stack": 0,
    "abiscan.report.escape": 1,
    "abiscan.report.findings": 1,
    "abiscan.elf": 1,
    "abiscan.target": 1,
    "abiscan.inputs": 2,
    "abiscan.report.model": 3,
    "abiscan.simulate": 4,
    "abiscan.simulate.imports": 4,
    "abiscan.simulate.linker": 4.1,
    "abiscan.simulate.python": 4.2,
    "abiscan.rules": 5,
    "abiscan.predict": 6,
    "abiscan.report": 6,
    "abiscan.prefetch": 6,
    "abiscan.parallel": 6,
    "abiscan.config": 6,
    "abiscan.result_memo": 6.4,
    "abiscan.runtime_matrix": 6.6,
    "abiscan.api": 6.5,
    "abiscan.fleet": 6.7,
    "abiscan.cli": 7,
    "abiscan.demo": 7,
    "abiscan.__main__": 7,
}


def rank(module: str) -> float:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len,
               default=None)
    if best is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and the docs")
    return LAYERS[best]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, name: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, abiscan module) for every import of an abiscan module in ``tree``."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("abiscan."):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "abiscan":
                # ``from abiscan import x``: x is a submodule or the root's own
                # ``__version__``, which every layer may read.
                for alias in node.names:
                    if alias.name != "__version__":
                        yield node.lineno, f"abiscan.{alias.name}"
            elif target.startswith("abiscan."):
                yield node.lineno, target


def violations(source: str, name: str, is_package: bool = False) -> list[str]:
    tree = ast.parse(source)
    mine = rank(name)
    return [f"{name}:{line} imports {target} (layer {rank(target)} > {mine})"
            for line, target in imported(tree, name, is_package) if rank(target) > mine]


# Upward imports being removed; each entry must still exist (so a fix removes it here).
KNOWN: set[str] = set()


def test_no_stage_imports_a_higher_one() -> None:
    found: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if name == "abiscan":
            continue  # the facade: its lazy exports name every layer
        found += violations(path.read_text("utf-8"), name, path.name == "__init__.py")
    known = {f for f in found if re.sub(r":\d+ (imports \S+).*", r" \1", f) in KNOWN}
    assert sorted(set(found) - known) == []
    assert len({re.sub(r":\d+ (imports \S+).*", r" \1", f) for f in known}) == len(KNOWN)


@pytest.mark.parametrize(("source", "name"), [
    ("from abiscan.simulate.linker.dlopen import x", "abiscan.elf.reader"),
    ("from ...rules import impact", "abiscan.simulate.python.propagation"),
    ("def f():\n    import abiscan.report.render", "abiscan.inputs.stack"),
    ("from abiscan import api", "abiscan.target.profiles"),
])
def test_the_check_catches_an_upward_import(source: str, name: str) -> None:
    assert len(violations(source, name)) == 1


def test_every_module_belongs_to_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if name != "abiscan":
            rank(name)
