"""Layers built from wheels without running anything: each wheel is unzipped once into
the cache, and a layer is a directory of hard links to those files, laid out as Lambda
unpacks a layer into ``/opt`` (``python/`` or ``python/lib/python3.X/site-packages/``)."""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["Layer", "Layout", "build_layer", "merge_layers", "modules_of", "unpack"]

Layout = Literal["python", "site-packages"]
_SKIP_PARTS = {"tests", "test", "testing", "_tests", "conftest", "__main__", "setup"}


@dataclass(frozen=True)
class Layer:
    """A built layer: the directory playing ``/opt`` and the wheels in it, in order."""

    root: Path
    wheels: tuple[str, ...]  # sha256 of each wheel, in install order
    layout: Layout
    python: str  # the CPython the wheels were chosen for

    @property
    def site(self) -> str:
        """The directory, relative to ``/opt``, the wheels were installed into."""
        if self.layout == "python":
            return "python"
        return f"python/lib/python{self.python}/site-packages"


def unpack(wheel: Path, sha256: str, cache: Path) -> Path:
    """The wheel's files under ``cache/unpacked/<sha256>`` (extracted once)."""
    dest = cache / "unpacked" / sha256
    if _done(dest).is_file():
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    tmp = dest.with_name(sha256 + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp)  # zipfile drops absolute and ".." parts
    tmp.rename(dest)
    _done(dest).write_text("")
    return dest


def _installed_files(unpacked: Path) -> Iterable[tuple[Path, str]]:
    """(file, path inside site-packages), as pip installs a wheel: ``*.data/purelib`` and
    ``platlib`` merged into the root, scripts, headers and data left out."""
    for path in sorted(unpacked.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(unpacked).as_posix()
        top, _, rest = rel.partition("/")
        if top.endswith(".data"):
            kind, _, inner = rest.partition("/")
            if kind in ("purelib", "platlib") and inner:
                yield path, inner
            continue
        yield path, rel


def build_layer(wheels: Sequence[tuple[Path, str]], layout: Layout, python: str,
                cache: Path) -> Layer:
    """A layer directory with ``wheels`` ((unpacked dir, sha256), in order) installed."""
    shas = tuple(sha for _, sha in wheels)
    key = hashlib.sha256(f"{layout}:{python}:{','.join(shas)}".encode()).hexdigest()[:24]
    layer = Layer(root=cache / "layers" / key, wheels=shas, layout=layout, python=python)
    if _done(layer.root).is_file():
        return layer
    if layer.root.exists():
        shutil.rmtree(layer.root)
    site = layer.root / layer.site
    for unpacked, _ in wheels:
        for src, rel in _installed_files(unpacked):
            _link(src, site / rel)
    _done(layer.root).write_text("")
    return layer


def _done(root: Path) -> Path:
    """The marker of a finished directory, beside it (a layer holds only what Lambda sees)."""
    return root.with_name(root.name + ".complete")


def _link(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        dest.unlink()  # a later wheel's file wins, as with pip --target --upgrade
    os.link(src, dest)


def merge_layers(layers: Sequence[Layer], cache: Path) -> Path:
    """One directory with ``layers`` unpacked in order (a later layer's file wins):
    what ``/opt`` holds on Lambda after the layers are attached."""
    if len(layers) == 1:
        return layers[0].root
    key = hashlib.sha256(",".join(str(la.root) for la in layers).encode()).hexdigest()[:24]
    root = cache / "merged" / key
    if _done(root).is_file():
        return root
    if root.exists():
        shutil.rmtree(root)
    for layer in layers:
        for path in sorted(layer.root.rglob("*")):
            if path.is_file():
                _link(path, root / path.relative_to(layer.root))
    _done(root).write_text("")
    return root


def modules_of(unpacked: Path) -> tuple[list[str], list[str]]:
    """(all importable module names, extension module names) a wheel installs, sorted.

    Test suites, ``__main__`` and ``setup`` modules are left out: they are not what a
    function imports, and they import test runners no layer carries.
    """
    mods: set[str] = set()
    exts: set[str] = set()
    for _, rel in _installed_files(unpacked):
        parts = rel.split("/")
        leaf = parts[-1]
        if leaf.endswith(".py"):
            stem = leaf[:-3]
            name_parts = parts[:-1] if stem == "__init__" else [*parts[:-1], stem]
            is_ext = False
        elif leaf.endswith(".so"):
            name_parts = [*parts[:-1], leaf.split(".", 1)[0]]
            is_ext = True
        else:
            continue
        if not name_parts or not all(p.isidentifier() for p in name_parts):
            continue
        if any(p in _SKIP_PARTS or p.startswith("test_") for p in name_parts):
            continue
        name = ".".join(name_parts)
        mods.add(name)
        if is_ext:
            exts.add(name)
    return sorted(mods), sorted(exts)
