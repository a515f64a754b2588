"""The target's import system: which file ``import x.y`` would load.

This follows CPython's ``importlib._bootstrap_external`` on the target's
``sys.path``: ``PathFinder`` walks the entries in order; in each entry
``FileFinder`` checks for a package directory first (``__init__`` with each
loader suffix), then ``<name><suffix>`` for the extension suffixes, ``.py``
and ``.pyc``; a directory without ``__init__`` is a namespace portion, used
only if no entry has a real module or package. Submodules are searched in the
parent package's ``__path__``. Nothing here reads file contents.
"""

from __future__ import annotations

import posixpath
from dataclasses import field
from typing import Protocol

from abiscan.records import record
from abiscan.report.findings import PredictedError
from abiscan.report.model import LoaderKind, ModuleKind
from abiscan.simulate.imports.extension_tags import (
    ExtensionTag,
    loader_suffixes,
    parse_extension_filename,
)
from abiscan.target.profiles import Target

__all__ = [
    "FileSystem",
    "ImportSystem",
    "PassedOver",
    "Resolution",
    "Spec",
]


class FileSystem(Protocol):
    def listdir(self, path: str) -> object: ...

    def is_dir(self, path: str) -> bool: ...

    def is_file(self, path: str) -> bool: ...


@record
class Spec:
    """What the target's finder returns for a module."""

    name: str
    kind: ModuleKind
    origin: str | None  # the file that would be loaded (None for namespace packages)
    search_locations: tuple[str, ...] = ()  # a package's __path__
    entry: str = ""  # the sys.path entry or parent directory it was found in
    package_init_kind: LoaderKind | None = None  # for packages: kind of the __init__ file

    @property
    def is_package(self) -> bool:
        return self.kind in ("package", "namespace")

    @property
    def loader_kind(self) -> ModuleKind:
        """The loader that runs: for a package, the loader of its ``__init__``."""
        return self.package_init_kind or self.kind


@record
class PassedOver:
    """A file named like the module that the finder did not load, and why."""

    path: str
    reason: str  # "suffix-not-tried", "shadowed"
    tag: ExtensionTag | None = None


@record
class Resolution:
    """What ``import name`` finds: the spec, or the error, and the files passed over."""

    name: str
    spec: Spec | None
    error: PredictedError | None
    passed_over: tuple[PassedOver, ...] = field(default=())
    failed_parent: str | None = None  # the ancestor whose lookup failed, if any

    @property
    def found(self) -> bool:
        return self.spec is not None


class ImportSystem:
    """Finds modules on the target's ``sys.path`` in a virtual file system."""

    def __init__(self, fs: FileSystem, target: Target) -> None:
        self.fs = fs
        self.target = target
        self._suffixes = loader_suffixes(target)
        self._memo: dict[str, Resolution] = {}
        # Per directory: its names grouped by the part before the first dot.
        # Built once, so one lookup costs the names it concerns, not the directory.
        self._by_stem: dict[str, dict[str, list[str]]] = {}
        self._listed: dict[str, frozenset[str]] = {}  # each directory's names, with _by_stem

    def find(self, name: str) -> Resolution:
        """Resolve a dotted module name as ``importlib.util.find_spec`` would."""
        cached = self._memo.get(name)
        if cached is None:
            failed = self._ancestors(name)
            cached = failed if failed is not None else self._find(name)
            self._memo[name] = cached
        return cached

    def _ancestors(self, name: str) -> Resolution | None:
        """Resolve the parents of ``name`` top down; the answer for ``name`` if one fails.

        Top down and iterative, so that ``import p0.p1...p19999`` costs no
        recursion, and stops at the first parent that is missing.
        """
        dot = name.find(".")
        while dot != -1:
            parent = name[:dot]
            up = self._memo.get(parent)
            if up is None:
                up = self._memo[parent] = self._find(parent)
            failed = _under_failed_parent(name, parent, up)
            if failed is not None:
                return failed
            dot = name.find(".", dot + 1)
        return None

    def _find(self, name: str) -> Resolution:
        parent, _, tail = name.rpartition(".")
        if parent:
            up = self.find(parent)
            failed = _under_failed_parent(name, parent, up)
            if failed is not None or up.spec is None:
                return failed or up
            locations: tuple[str, ...] = up.spec.search_locations
        else:
            locations = self.target.sys_path
        return self._path_finder(name, tail, locations)

    def providers(self, name: str) -> list[Spec]:
        """Every location that has a module or package for ``name``, in search order.

        The first one loads; the others are shadowed. Namespace portions are left
        out: they never shadow anything.
        """
        parent, _, tail = name.rpartition(".")
        if parent:
            up = self.find(parent).spec
            if up is None or not up.is_package:
                return []
            locations = up.search_locations
        else:
            locations = self.target.sys_path
        out = []
        for entry in locations:
            spec = self.find_in(name, tail, entry)
            if spec is not None and spec.kind != "namespace":
                out.append(spec)
        return out

    def _path_finder(self, name: str, tail: str, locations: tuple[str, ...]) -> Resolution:
        namespace: list[str] = []
        passed: list[PassedOver] = []
        found: Spec | None = None
        for entry in locations:
            if found is None:
                spec = self.find_in(name, tail, entry)
                if spec is not None and spec.kind != "namespace":
                    found = spec
                elif spec is not None:
                    namespace.extend(spec.search_locations)
            passed.extend(self._passed_over(tail, entry, found))
        if found is None and namespace:
            found = Spec(
                name=name,
                kind="namespace",
                origin=None,
                search_locations=tuple(namespace),
                entry=namespace[0],
            )
        passed = [p for p in passed if found is None or p.path != found.origin]
        if found is None:
            return Resolution(
                name=name,
                spec=None,
                error=PredictedError(
                    type="ModuleNotFoundError", message=f"No module named '{name}'"
                ),
                passed_over=tuple(passed),
            )
        return Resolution(name=name, spec=found, error=None, passed_over=tuple(passed))

    def find_in(self, name: str, tail: str, directory: str) -> Spec | None:
        """The spec the FileFinder of one ``directory`` gives ``name`` (last part ``tail``)."""
        if not self.fs.is_dir(directory):
            return None
        if tail not in _NOT_A_NAME and "/" not in tail and not self._named(directory, tail):
            return None  # no entry of the directory is named for it: nothing below is found
        base = posixpath.join(directory, tail)
        is_namespace = False
        if self.fs.is_dir(base):
            for suffix, kind in self._suffixes:
                init = posixpath.join(base, "__init__" + suffix)
                if self.fs.is_file(init):
                    return Spec(
                        name=name,
                        kind="package",
                        origin=init,
                        search_locations=(base,),
                        entry=directory,
                        package_init_kind=kind,
                    )
            is_namespace = True
        for suffix, kind in self._suffixes:
            full = base + suffix
            if self.fs.is_file(full):
                return Spec(name=name, kind=kind, origin=full, search_locations=(), entry=directory)
        if is_namespace:
            return Spec(
                name=name, kind="namespace", origin=None, search_locations=(base,), entry=directory
            )
        return None

    def _passed_over(self, tail: str, directory: str, found: Spec | None) -> list[PassedOver]:
        """Extension files in this directory named for the module that were not loaded."""
        if not self.fs.is_dir(directory):
            return []
        out = []
        tried = {s for s, _ in self._suffixes}
        # A module name has no dot: "name." starts exactly the names whose stem is it.
        for fname in self._stems(directory).get(tail, ()):
            path = posixpath.join(directory, fname)
            if found is not None and path == found.origin:
                continue
            suffix = fname[len(tail) :]
            tag = parse_extension_filename(fname)
            if suffix in tried:
                if found is not None and self.fs.is_file(path):
                    out.append(PassedOver(path=path, reason="shadowed", tag=tag))
                continue
            if tag is not None and self.fs.is_file(path):
                out.append(PassedOver(path=path, reason="suffix-not-tried", tag=tag))
        return out

    def _stems(self, directory: str) -> dict[str, list[str]]:
        index = self._by_stem.get(directory)
        if index is None:
            names = self.fs.listdir(directory)
            assert isinstance(names, (list, tuple, set, frozenset))
            index = {}
            for fname in sorted(names):
                stem, dot, _ = fname.partition(".")
                if dot:
                    index.setdefault(stem, []).append(fname)
            self._by_stem[directory] = index
            self._listed[directory] = frozenset(names)
        return index

    def _named(self, directory: str, tail: str) -> bool:
        """Whether the directory has an entry ``tail`` or ``tail.<anything>``: the
        only names :meth:`find_in` looks for (a package, or a module by a suffix)."""
        return tail in self._stems(directory) or tail in self._listed[directory]


# Names that a path join does not take as one entry of the directory.
_NOT_A_NAME = frozenset({"", ".", ".."})


def _under_failed_parent(name: str, parent: str, up: Resolution) -> Resolution | None:
    """What ``import name`` raises when its parent package failed or is not a package."""
    if up.spec is None:
        return Resolution(
            name=name, spec=None, error=up.error, failed_parent=up.failed_parent or parent
        )
    if not up.spec.is_package:
        return Resolution(
            name=name,
            spec=None,
            error=PredictedError(
                type="ModuleNotFoundError",
                message=f"No module named '{name}'; '{parent}' is not a package",
            ),
            failed_parent=parent,
        )
    return None
