"""The target's dynamic linker, after the identity checks: what ``dlopen(path, RTLD_NOW)`` does.

:func:`simulate_dlopen` replays, for one extension module, the steps of
glibc's ``dl_open_worker`` that can refuse it, in glibc's order, and stops at
the first failure as glibc does:

1. **Dependencies** (``_dl_map_object_deps``): breadth-first over DT_NEEDED,
   each object's entries in order. A name already loaded in the process
   (libpython, libc, ...; matched by the name it was loaded as, its soname or
   its path) is reused; others are searched as ``_dl_map_object`` searches
   (names containing ``/`` are opened as paths):

   * DT_RPATH of the object that needs the library, then of the object that
     loaded that one, and so on, then of the interpreter executable; all of
     this only when the needing object has no DT_RUNPATH;
   * LD_LIBRARY_PATH;
   * DT_RUNPATH of the needing object only;
   * ``/etc/ld.so.cache``;
   * the default directories (``/lib64``, ``/usr/lib64`` on Amazon Linux).

   ``$ORIGIN``/``${ORIGIN}`` is the directory of the object whose path list it
   is (``$LIB`` and ``$PLATFORM`` are the target's), empty entries mean the
   working directory (``/var/task`` on Lambda). A candidate of the other ELF
   class is skipped and remembered, one for another machine skipped silently;
   any other unusable candidate ends the search with its own error. When
   nothing is found the message is ``<name>: cannot open shared object file:
   No such file or directory``, or ``<name>: wrong ELF class: ELFCLASS32``
   when only the other class was seen.

2. **Symbol versions** (``_dl_check_map_versions``): for each new object in
   breadth-first order, each entry of its ``.gnu.version_r``, each version in
   order, against the version definitions of the loaded object that provides
   it: ``<provider>: version `V' not found (required by <object>)``. A
   provider without any version definitions passes (glibc stays silent).

3. **Relocations** (``_dl_relocate_object``, dependencies before the objects
   that need them, with ``RTLD_NOW``): every undefined, non-weak symbol a
   relocation names (:mod:`abiscan.elf.references`, in glibc's order) must be
   defined in the global scope (the interpreter process's own objects) or in
   the extension's dependency tree: ``<object>: undefined symbol: NAME``.

The object paths in messages are the paths the loader opened them by
(``l_name``): the extension's path as CPython passes it, a dependency's
directory plus name as found, a process library as the process found it at
start-up.

Every step says how sure it is. The target's file system is known exactly
for what the stack provides and as well as the inventory
(:mod:`abiscan.target.system_libraries`) knows it for the rest; exported symbols are
known for libraries in the stack and for the interpreter
(:mod:`abiscan.target.capi`), not for other system libraries, so a symbol that could
only come from one of those is taken as found.

Not modelled: ``glibc-hwcaps`` and legacy hardware-capability
subdirectories, ``DF_1_NODEFLIB``, weak version references
(``VER_FLG_WEAK``), libraries loaded earlier in the same process by other
imports (each module is predicted as if imported first), ``LD_PRELOAD``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import field
from typing import Protocol

from abiscan.elf.reader import ElfError, ElfFacts
from abiscan.elf.tables import SymbolRef
from abiscan.inputs.member_facts import LoaderBytes
from abiscan.records import mutable_record, record
from abiscan.simulate.linker.identity import verify_identity
from abiscan.target.capi import CApiExports, is_capi_name
from abiscan.target.profiles import Target
from abiscan.target.system_libraries import SystemInventory, SystemLibrary

__all__ = [
    "BindMemo",
    "LinkObject",
    "LinkProblem",
    "LinkResult",
    "StackView",
    "simulate_dlopen",
]

_ENOENT = "cannot open shared object file: No such file or directory"
_RANK = {"certain": 0, "likely": 1, "possible": 2}
_MUSL = re.compile(r"^(?:.*/)?(?:libc\.musl-[^/]+\.so\.1|ld-musl-[^/]+\.so\.1)$")


def weakest(*levels: str) -> str:
    """The least sure of several certainty levels."""
    return max(levels, key=lambda c: _RANK.get(c, 2))


class StackView(Protocol):
    """What the loader simulation needs from the stack."""

    def owns(self, path: str) -> bool:
        """Whether ``path`` is under a directory the stack provides (``/opt``, ``/var/task``)."""

    def resolve(self, path: str) -> str | None:
        """The real path of the regular file at ``path`` (links followed), or None."""

    def loader_bytes(self, path: str) -> LoaderBytes | None:
        """What the loader's identity checks read of the file, or None when it cannot be read."""

    def elf(self, path: str) -> ElfFacts | None:
        """The file's ELF facts, or None when they cannot be read."""


@record
class LinkObject:
    """One object in the extension's link map."""

    name: str  # l_name: the path it was opened by
    origin: str  # "extension", "stack", "system" or "process"
    needed_as: str | None = None
    loaded_by: str | None = None
    found_via: str | None = None
    certainty: str = "certain"
    source: str | None = None

    def describe(self) -> str:
        via = f" via {self.found_via}" if self.found_via else ""
        by = f" (needed by {self.loaded_by})" if self.loaded_by else ""
        return f"{self.needed_as or self.name} -> {self.name}{via}{by}"


@record
class LinkProblem:
    """Why the dynamic linker refuses the module (or might)."""

    kind: str  # needed-not-found, wrong-class, bad-candidate, version-not-found,
    # undefined-symbol, abort, unknown
    message: str | None  # the exact dlerror() text, None when not predictable
    object: str  # the object whose need fails
    chain: tuple[str, ...] = ()  # the extension down to ``object``
    needed: str | None = None
    searched: tuple[str, ...] = ()
    version: str | None = None
    provider: str | None = None
    symbol: SymbolRef | None = None
    confidence: str = "certain"
    detail: str = ""
    musl: bool = False
    # Where the facts about the provider come from (for evidence).
    source: str | None = None


@record
class LinkResult:
    """What ``dlopen`` does with the extension after its identity checks."""

    outcome: str  # "ok", "error", "unknown"
    problem: LinkProblem | None
    objects: tuple[LinkObject, ...]
    notes: tuple[str, ...] = ()
    # The extension's own references to the C API, in relocation order.
    capi_refs: tuple[SymbolRef, ...] = ()
    # How sure a predicted "ok" is.
    confidence: str = "certain"


@mutable_record
class _Obj:
    """One object in the simulated link map."""

    name: str
    origin: str
    names: set[str]
    identity: str | None
    version_defs: tuple[str, ...] | None
    exports: frozenset[str] | None
    facts: ElfFacts | None = None
    loader: _Obj | None = None
    needed_as: str | None = None
    found_via: str | None = None
    certainty: str = "certain"
    source: str | None = None
    is_interpreter: bool = False

    def defines(self, symbol: str) -> bool | None:
        """Whether the object exports ``symbol``; None when that is not known."""
        if self.facts is not None:
            try:
                return self.facts.has_export(symbol)
            except ElfError:
                return None
        if self.exports is None:
            return None
        return symbol in self.exports

    def export_set(self) -> frozenset[str] | None:
        """Every symbol the object exports; None when not known as a whole."""
        if self.facts is not None:
            try:
                return self.facts.exported
            except ElfError:
                return None
        return self.exports

    def public(self) -> LinkObject:
        return LinkObject(
            name=self.name,
            origin=self.origin,
            needed_as=self.needed_as,
            loaded_by=self.loader.name if self.loader else None,
            found_via=self.found_via,
            certainty=self.certainty,
            source=self.source,
        )


@mutable_record
class _Found:
    """The file a DT_NEEDED search found, and how."""

    path: str
    via: str
    system: SystemLibrary | None = None
    identity: str | None = None


@mutable_record
class _Search:
    """One DT_NEEDED search: what it found, or what it tried."""

    found: _Found | None = None
    tried: list[str] = field(default_factory=list)
    other_class: bool = False
    error: str | None = None  # a candidate glibc refuses outright
    unsure: list[str] = field(default_factory=list)


class BindMemo:
    """What binding a library's references found, kept for one scan.

    A library is bound for every extension that loads it (libarrow for each of
    pyarrow's modules), against mostly the same objects: the names of its
    non-weak references, and those of them each object's export set holds, are
    computed once per library and export set. Entries are keyed by the objects
    themselves (kept alive here, so an id is never reused while it is a key).
    """

    def __init__(self) -> None:
        self._names: dict[int, tuple[Sequence[SymbolRef], frozenset[str]]] = {}
        self._hits: dict[
            tuple[int, int], tuple[Sequence[SymbolRef], frozenset[str], frozenset[str]]
        ] = {}
        self.computed = 0  # intersections made (for tests)

    def names(self, refs: Sequence[SymbolRef]) -> frozenset[str]:
        """Names of the non-weak ``refs``."""
        got = self._names.get(id(refs))
        if got is None or got[0] is not refs:
            got = self._names[id(refs)] = (refs, frozenset(r.name for r in refs if not r.weak))
        return got[1]

    def hits(self, refs: Sequence[SymbolRef], exports: frozenset[str]) -> frozenset[str]:
        """Names of the non-weak ``refs`` that ``exports`` holds."""
        key = (id(refs), id(exports))
        got = self._hits.get(key)
        if got is None or got[0] is not refs or got[1] is not exports:
            self.computed += 1
            got = self._hits[key] = (refs, exports, self.names(refs) & exports)
        return got[2]


class _Fail(Exception):
    def __init__(self, problem: LinkProblem) -> None:
        super().__init__(problem.kind)
        self.problem = problem


def simulate_dlopen(
    path: str,
    facts: ElfFacts,
    target: Target,
    stack: StackView,
    inventory: SystemInventory,
    capi: CApiExports | None,
    *,
    capi_missing_reason: str = "",
    memo: BindMemo | None = None,
) -> LinkResult:
    """Predict what the target's ``dlopen(path, RTLD_NOW)`` does after the identity checks.

    ``facts`` are the extension's ELF facts; ``stack``
    answers for paths the stack provides and ``inventory`` for the rest of
    the file system; ``capi`` is the interpreter's exported C API (None when
    unknown, with ``capi_missing_reason`` saying why). ``memo`` keeps what binding
    each library found for the next extension that loads it (one per scan).
    """
    sim = _Sim(target, stack, inventory, capi, capi_missing_reason, memo or BindMemo())
    ext = _Obj(
        name=path,
        origin="extension",
        names={path},
        identity=stack.resolve(path) or path,
        version_defs=facts.version_defs,
        exports=None,
        facts=facts,
    )
    try:
        order = sim.map_dependencies(ext)
        sim.check_versions(order)
        sim.check_symbols(order)
    except _Fail as fail:
        problem = fail.problem
        outcome = "error" if problem.message and _RANK[problem.confidence] < 2 else "unknown"
        return LinkResult(
            outcome=outcome,
            problem=problem,
            objects=tuple(o.public() for o in sim.objects),
            notes=tuple(sim.notes),
            capi_refs=tuple(sim.capi_refs),
            confidence=problem.confidence,
        )
    return LinkResult(
        outcome="ok",
        problem=None,
        objects=tuple(o.public() for o in sim.objects),
        notes=tuple(sim.notes),
        capi_refs=tuple(sim.capi_refs),
        confidence=sim.confidence,
    )


class _Sim:
    def __init__(
        self,
        target: Target,
        stack: StackView,
        inventory: SystemInventory,
        capi: CApiExports | None,
        capi_missing_reason: str,
        memo: BindMemo,
    ) -> None:
        self.target = target
        self.memo = memo
        self.stack = stack
        self.inv = inventory
        self.capi = capi
        self.capi_missing_reason = capi_missing_reason
        self.bits = target.elf_class
        self.notes: list[str] = []
        self.capi_refs: list[SymbolRef] = []
        self.confidence = "certain"
        self.objects: list[_Obj] = []
        # The first object of the link map by each of its names and by its identity
        # (what _dl_map_object compares): asked for each DT_NEEDED, version file and
        # versioned reference, of a map of dozens of objects.
        self._by_name: dict[str, _Obj] = {}
        self._by_identity: dict[str, _Obj] = {}
        self.process = self._process_objects()

    def _add(self, obj: _Obj) -> None:
        """Appends ``obj`` to the link map (again, for an object found by another name:
        the first of its entries comes first in each index)."""
        self.objects.append(obj)
        for name in obj.names:
            self._by_name.setdefault(name, obj)
        if obj.identity:
            self._by_identity.setdefault(obj.identity, obj)

    # -- the process before the import -----------------------------------

    def _process_objects(self) -> list[_Obj]:
        out: list[_Obj] = []
        interpreter_seen = False
        for name in self.inv.preloaded:
            search = self._search_system(name)
            lib = search.found.system if search.found else None
            is_interp = name.startswith("libpython")
            exports = lib.exports if lib else None
            if is_interp:
                interpreter_seen = True
                exports = self.capi.symbols if self.capi else None
            obj = _Obj(
                name=search.found.path if search.found else name,
                origin="process",
                names={name}
                | ({lib.soname} if lib and lib.soname else set())
                | ({search.found.path} if search.found else set()),
                identity=self.inv.canonical(search.found.path) if search.found else None,
                version_defs=lib.version_defs if lib else None,
                exports=exports,
                found_via=search.found.via if search.found else None,
                certainty=lib.certainty if lib else "possible",
                source=lib.source if lib else None,
                is_interpreter=is_interp,
            )
            out.append(obj)
        if not interpreter_seen:
            # A statically linked interpreter: the executable itself exports
            # the C API.
            out.insert(
                0,
                _Obj(
                    name="the interpreter executable",
                    origin="process",
                    names=set(),
                    identity=None,
                    version_defs=(),
                    exports=self.capi.symbols if self.capi else None,
                    is_interpreter=True,
                ),
            )
        for obj in out:
            self._add(obj)
        return out

    # -- step 1: dependencies --------------------------------------------

    def map_dependencies(self, ext: _Obj) -> list[_Obj]:
        self._add(ext)
        order = [ext]
        queue = [ext]
        while queue:
            obj = queue.pop(0)
            if obj.facts is None:
                continue  # a system library: its own needs are the system's business
            for needed in obj.facts.needed:
                if self._loaded(needed) is not None:
                    continue
                new = self._map(needed, obj)
                self._add(new)  # once more when it is the same file by another name
                order.append(new)
                queue.append(new)
        return order

    def _loaded(self, name: str) -> _Obj | None:
        """The first object of the link map with the name ``name``."""
        return self._by_name.get(name)

    def _chain(self, obj: _Obj) -> tuple[str, ...]:
        out = []
        cur: _Obj | None = obj
        while cur is not None:
            out.append(cur.name)
            cur = cur.loader
        return tuple(reversed(out))

    # Long on purpose: each way _dl_map_object can fail for one DT_NEEDED name (a bad
    # candidate, only the other ELF class, not found, found but refused) is its own
    # LinkProblem with the loader's own message, in the order glibc reports them.
    def _map(self, needed: str, loader: _Obj) -> _Obj:
        if "/" in needed:
            search = self._open_path(self._expand(needed, loader) or needed)
        else:
            search = self._search(needed, loader)
        chain = self._chain(loader)
        musl = bool(_MUSL.match(needed))
        if search.error is not None:
            raise _Fail(
                LinkProblem(
                    kind="bad-candidate",
                    message=search.error,
                    object=loader.name,
                    chain=chain,
                    needed=needed,
                    searched=tuple(search.tried),
                    detail=f"a file named {needed} on the search path is not a loadable object",
                    musl=musl,
                )
            )
        if search.found is None:
            confidence = self._absent_confidence(needed, search)
            if search.other_class:
                other = "ELFCLASS32" if self.bits == 64 else "ELFCLASS64"
                raise _Fail(
                    LinkProblem(
                        kind="wrong-class",
                        message=f"{needed}: wrong ELF class: {other}",
                        object=loader.name,
                        chain=chain,
                        needed=needed,
                        searched=tuple(search.tried),
                        confidence=confidence,
                        detail=f"the only {needed} on the search path is of the other ELF class",
                        musl=musl,
                    )
                )
            raise _Fail(
                LinkProblem(
                    kind="needed-not-found",
                    message=f"{needed}: {_ENOENT}",
                    object=loader.name,
                    chain=chain,
                    needed=needed,
                    searched=tuple(search.tried),
                    confidence=confidence,
                    detail=self._absent_detail(needed),
                    musl=musl,
                )
            )
        found = search.found
        same = self._by_identity.get(found.identity) if found.identity else None
        if same is not None:
            # The same file by another name: glibc compares device and inode.
            same.names.add(needed)
            return same
        if found.system is not None:
            lib = found.system
            if _RANK[lib.certainty] > 0:
                self.confidence = weakest(self.confidence, lib.certainty)
                self.notes.append(
                    f"{needed} is taken from the target's {found.path} "
                    f"({lib.certainty}: {lib.source})"
                )
            return _Obj(
                name=found.path,
                origin="system",
                names={needed, found.path} | ({lib.soname} if lib.soname else set()),
                identity=found.identity,
                version_defs=lib.version_defs,
                exports=lib.exports,
                loader=loader,
                needed_as=needed,
                found_via=found.via,
                certainty=lib.certainty,
                source=lib.source,
            )
        facts = self.stack.elf(found.path)
        if facts is None:
            raise _Fail(
                LinkProblem(
                    kind="unknown",
                    message=None,
                    object=loader.name,
                    chain=chain,
                    needed=needed,
                    searched=tuple(search.tried),
                    confidence="possible",
                    detail=f"{found.path} passes the loader's header checks but cannot be read",
                )
            )
        return _Obj(
            name=found.path,
            origin="stack",
            names={needed, found.path} | ({facts.soname} if facts.soname else set()),
            identity=found.identity,
            version_defs=facts.version_defs,
            exports=None,
            facts=facts,
            loader=loader,
            needed_as=needed,
            found_via=found.via,
        )

    def _absent_confidence(self, needed: str, search: _Search) -> str:
        if self.inv.complete:
            level = "certain"
        else:
            entry = self.inv.absent_entry(needed)
            level = entry.certainty if entry else self.inv.absent_confidence
        if search.unsure:
            level = weakest(level, "possible")
        return level

    def _absent_detail(self, needed: str) -> str:
        if self.inv.complete:
            return f"no {needed} on the search path, in ld.so.cache or the default directories"
        entry = self.inv.absent_entry(needed)
        if entry is not None:
            return f"{needed} is not on the target: {entry.source}"
        return (
            f"no {needed} on the search path, and the target's inventory ({self.inv.name}) "
            "does not list it"
        )

    # -- the search ------------------------------------------------------

    def _origin(self, obj: _Obj) -> str:
        return posixpath.dirname(obj.name) or "."

    def _expand(self, entry: str, obj: _Obj | None) -> str | None:
        """One path-list entry with its dynamic string tokens replaced; None if not possible."""
        out = entry
        for token in ("ORIGIN", "LIB", "PLATFORM"):
            if f"${token}" not in out and f"${{{token}}}" not in out:
                continue
            if token == "ORIGIN":
                if obj is None:
                    return None
                value: str | None = self._origin(obj)
            elif token == "LIB":
                value = self.inv.lib_token
            else:
                value = self.inv.platform_token
            if value is None:
                return None
            out = re.sub(rf"\$(?:{token}\b|\{{{token}\}})", value.replace("\\", "\\\\"), out)
        if not out:
            return self.target.function_root  # an empty entry is the working directory
        if not out.startswith("/"):
            out = posixpath.join(self.target.function_root, out)
        return out

    def _dirs(
        self, entries: Sequence[str], obj: _Obj | None, via: str, search: _Search
    ) -> list[tuple[str, str]]:
        out = []
        for entry in entries:
            expanded = self._expand(entry, obj)
            if expanded is None:
                search.unsure.append(f"{via} entry {entry!r} (its token is not known statically)")
                continue
            out.append((expanded, via))
        return out

    def _search(self, name: str, loader: _Obj) -> _Search:
        search = _Search()
        dirs: list[tuple[str, str]] = []
        facts = loader.facts
        if facts is None or not facts.runpath:
            cur: _Obj | None = loader
            while cur is not None:
                if cur.facts is not None and cur.facts.rpath:
                    dirs += self._dirs(cur.facts.rpath, cur, f"DT_RPATH of {cur.name}", search)
                cur = cur.loader
            dirs += self._dirs(
                self.inv.executable_rpath, None, "DT_RPATH of the interpreter executable", search
            )
        dirs += self._dirs(self.target.ld_library_path, None, "LD_LIBRARY_PATH", search)
        if facts is not None and facts.runpath:
            dirs += self._dirs(facts.runpath, loader, f"DT_RUNPATH of {loader.name}", search)
        for directory, via in dirs:
            if self._try(posixpath.join(directory, name), via, search):
                return search
        return self._search_cache_and_defaults(name, search)

    def _search_system(self, name: str) -> _Search:
        """How the interpreter process found ``name`` at start-up (system directories only)."""
        search = _Search()
        for directory in self.target.ld_library_path:
            if (
                directory
                and not self.stack.owns(directory)
                and self._try_system(posixpath.join(directory, name), "LD_LIBRARY_PATH", search)
            ):
                return search
        return self._search_cache_and_defaults(name, search)

    def _search_cache_and_defaults(self, name: str, search: _Search) -> _Search:
        for path in self.inv.cached(name):
            if self._try(path, "ld.so.cache", search):
                return search
        for directory in self.inv.default_dirs:
            if self._try(posixpath.join(directory, name), "the default directories", search):
                return search
        return search

    def _open_path(self, path: str) -> _Search:
        search = _Search()
        self._try(path, "its path", search)
        return search

    def _try(self, path: str, via: str, search: _Search) -> bool:
        path = posixpath.normpath(path) if path.startswith("/") else path
        if self.stack.owns(path):
            return self._try_stack(path, via, search)
        return self._try_system(path, via, search)

    def _try_stack(self, path: str, via: str, search: _Search) -> bool:
        search.tried.append(path)
        real = self.stack.resolve(path)
        if real is None:
            return False
        view = self.stack.loader_bytes(path)
        if view is None:
            search.unsure.append(f"{path} (cannot be read)")
            return False
        verdict = verify_identity(
            view.head,
            path,
            arch=self.target.arch,
            glibc=self.target.libc_version,
            flavor=self.target.ld_so_flavor,
            size=view.size,
            blocks=view.blocks,
        )
        if verdict.ok:
            search.found = _Found(path=path, via=via, identity=real)
            return True
        if verdict.reason == "wrong-class":
            search.other_class = True
            return False
        if verdict.message is None or verdict.message.endswith(_ENOENT):
            if verdict.message is None:
                search.unsure.append(f"{path} ({verdict.detail})")
            return False
        search.error = verdict.message
        return True

    def _try_system(self, path: str, via: str, search: _Search) -> bool:
        search.tried.append(path)
        lib = self.inv.library_at(path)
        if lib is None:
            return False
        if lib.bits != self.bits:
            search.other_class = True
            return False
        if lib.machine != self.target.arch:
            return False
        search.found = _Found(path=path, via=via, system=lib, identity=self.inv.canonical(path))
        return True

    # -- step 2: symbol versions ------------------------------------------

    def check_versions(self, order: Sequence[_Obj]) -> None:
        for obj in order:
            if obj.facts is None:
                continue  # system libraries were checked when the system was built
            for file, versions in obj.facts.version_needs:
                provider = self._loaded(file)
                if provider is None:
                    self.notes.append(
                        f"{obj.name} requires versions of {file}, which it does not load"
                    )
                    continue
                defs = provider.version_defs
                if defs is None:
                    self.confidence = weakest(self.confidence, "possible")
                    self.notes.append(
                        f"the versions {provider.name} defines are not known; "
                        f"{', '.join(versions)} not checked"
                    )
                    continue
                if not defs:
                    continue  # glibc accepts a library without version information
                for version in versions:
                    if version in defs:
                        continue
                    raise _Fail(
                        LinkProblem(
                            kind="version-not-found",
                            message=f"{provider.name}: version `{version}' not found "
                            f"(required by {obj.name})",
                            object=obj.name,
                            chain=self._chain(obj),
                            needed=file,
                            version=version,
                            provider=provider.name,
                            confidence=provider.certainty,
                            detail=f"{provider.name} defines {_summarise(defs, version)}",
                            source=provider.source,
                        )
                    )

    # -- step 3: relocations ----------------------------------------------

    def check_symbols(self, order: Sequence[_Obj]) -> None:
        scope = [*self.process, *order]
        for obj in reversed(order):
            if obj.facts is None:
                continue  # a system library: bound when the system was built
            try:
                # The facts are the scan's, shared by every extension that
                # loads the object: its relocations are decoded once.
                refs = obj.facts.references
            except ElfError as exc:
                self.notes.append(f"the relocations of {obj.name} cannot be read ({exc})")
                self.confidence = weakest(self.confidence, "possible")
                continue
            if obj is order[0]:
                self.capi_refs = [r for r in refs if is_capi_name(r.name)]
            self._bind(obj, refs, scope)

    def _bind(self, obj: _Obj, refs: Sequence[SymbolRef], scope: Sequence[_Obj]) -> None:
        undecided: list[str] = []
        found = _bound(refs, scope, self.memo)
        abortable = self._abortable_version_files(refs)
        # When every object's exports are known as a set or not at all, a name
        # no set holds is decided by which objects are unknown (as _resolve does).
        whole = all(o.facts is None or o.export_set() is not None for o in scope)
        unknown_interpreter = any(o.export_set() is None and o.is_interpreter for o in scope)
        unknown_any = any(o.export_set() is None for o in scope)
        # The references left to decide: some object defines the others, and no
        # versioned provider can abort first.
        pending = [
            r for r in refs if not r.weak and (r.name not in found or r.version_file in abortable)
        ]
        if whole and unknown_any and not unknown_interpreter and not abortable:
            # Each is defined by no known set: one outside the C API may come from
            # an object whose exports are not known (undecided, as _unfound says);
            # the first in the C API is missing, and the loop below raises on it.
            stop = next((i for i, r in enumerate(pending) if is_capi_name(r.name)), len(pending))
            undecided = [r.name for r in pending[:stop]]
            pending = pending[stop:]
        for ref in pending:
            if whole and ref.name not in found:
                unknown = unknown_interpreter or (unknown_any and not is_capi_name(ref.name))
                verdict = self._unfound(ref.name, unknown)
            else:
                verdict = self._resolve(ref, scope)
            if verdict == "found":
                continue
            if verdict == "unknown-capi":
                raise _Fail(
                    LinkProblem(
                        kind="unknown",
                        message=None,
                        object=obj.name,
                        chain=self._chain(obj),
                        symbol=ref,
                        confidence="possible",
                        detail=(
                            f"{obj.name} uses the C API ({ref.name} first) and "
                            f"{self.capi_missing_reason or 'the interpreter exports are not known'}"
                        ),
                    )
                )
            if verdict == "unknown":
                undecided.append(ref.name)
                continue
            if verdict == "abort":
                raise _Fail(
                    LinkProblem(
                        kind="abort",
                        message=None,
                        object=obj.name,
                        chain=self._chain(obj),
                        symbol=ref,
                        confidence="likely",
                        detail=(
                            f"{ref.describe()} is bound to a version of {ref.version_file}, whose "
                            "copy defines the symbol without any version: glibc's check_match "
                            "assertion aborts the process (Inconsistency detected by ld.so)"
                        ),
                    )
                )
            level = "certain"
            if is_capi_name(ref.name) and self.capi is not None:
                level = self.capi.certainty
            if undecided:
                level = weakest(level, "likely")
            suffix = f", version {ref.version}" if ref.version else ""
            raise _Fail(
                LinkProblem(
                    kind="undefined-symbol",
                    message=f"{obj.name}: undefined symbol: {ref.name}{suffix}",
                    object=obj.name,
                    chain=self._chain(obj),
                    symbol=ref,
                    confidence=level,
                    detail=self._missing_detail(ref, undecided),
                )
            )
        if undecided:
            self.confidence = weakest(self.confidence, "likely")
            self.notes.append(
                f"{obj.name}: {len(undecided)} symbol(s) could come only from system libraries "
                f"whose exports abiscan does not know ({', '.join(undecided[:3])}); taken as found"
            )

    def _abortable_version_files(self, refs: Sequence[SymbolRef]) -> set[str]:
        """Version files whose loaded provider is a stack object without version
        definitions: a reference bound to one may abort (see :meth:`_resolve`)."""
        out = set()
        for file in {r.version_file for r in refs if r.version_file is not None}:
            provider = self._loaded(file)
            if provider is not None and provider.version_defs == () and provider.origin == "stack":
                out.add(file)
        return out

    def _resolve(self, ref: SymbolRef, scope: Sequence[_Obj]) -> str:
        if ref.version_file is not None:
            provider = self._loaded(ref.version_file)
            if provider is not None and provider.defines(ref.name):
                if provider.version_defs == () and provider.origin == "stack":
                    return "abort"
                return "found"
        unknown = False
        for obj in scope:
            has = obj.defines(ref.name)
            if has is None:
                if obj.is_interpreter or not is_capi_name(ref.name):
                    unknown = True
                continue
            if has:
                return "found"
        return self._unfound(ref.name, unknown)

    def _unfound(self, name: str, unknown: bool) -> str:
        """The verdict for a symbol no object surely defines; ``unknown``: an
        object whose exports are not known may define it."""
        if not unknown:
            return "missing"
        if is_capi_name(name) and self.capi is None:
            return "unknown-capi"
        return "missing" if is_capi_name(name) else "unknown"

    def _missing_detail(self, ref: SymbolRef, undecided: Sequence[str]) -> str:
        if is_capi_name(ref.name) and self.capi is not None:
            text = (
                f"{ref.name} is not exported by CPython {self.target.python} "
                f"({self.capi.provenance}) nor by any library the module loads"
            )
        else:
            text = f"no object in the process or the module's dependency tree defines {ref.name}"
        if undecided:
            text += f"; glibc may stop earlier at {undecided[0]}, which abiscan cannot check"
        return text


def _bound(refs: Sequence[SymbolRef], scope: Sequence[_Obj], memo: BindMemo) -> set[str]:
    """Names of the non-weak ``refs`` that an object of ``scope`` surely exports.

    One set intersection per object and library (at C speed, over the smaller
    set, kept in ``memo``) instead of a lookup per reference and object; objects
    whose exports are not known add nothing, and the references left are
    resolved one by one.
    """
    found: set[str] = set()
    for obj in scope:
        exports = obj.export_set()
        if exports is not None:
            found |= memo.hits(refs, exports)
    return found


def _summarise(defs: Sequence[str], wanted: str) -> str:
    """The provider's versions of the same family as ``wanted``, newest last."""
    family = wanted.rsplit("_", 1)[0] + "_" if "_" in wanted else ""
    same = [d for d in defs if family and d.startswith(family)]
    shown = same or list(defs)
    if len(shown) > 4:
        return f"{shown[0]} ... {shown[-1]} ({len(shown)} versions)"
    return ", ".join(shown) if shown else "no versions"
