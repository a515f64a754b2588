"""The stack: every input's entries placed where the target puts them.

Layers are unpacked into ``/opt`` in the order given (a later layer's file
replaces an earlier one's, directories merge), function code goes into
``/var/task``, wheels and site-packages directories into the target's
site-packages. Each file keeps its provenance and what it replaced.
"""

from __future__ import annotations

import posixpath
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import field

from abiscan.inputs.sources import (
    MAX_MEMBER_BYTES,
    Entry,
    InputKind,
    InputProblem,
    Source,
    SourceError,
)
from abiscan.progress import count
from abiscan.records import mutable_record, record
from abiscan.target.profiles import Target

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "Provenance",
    "Stack",
    "StackFile",
    "build_stack",
]

# The most inflated bytes the stack holds at once (a member being read plus the
# recently read members it keeps). Lambda refuses more than 250 MB unzipped, so
# one member this size is already past any deployable layer.
DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024

# What the stack keeps of recently read members (metadata and sources read
# twice in a row): members up to _KEEP_MEMBER bytes, _KEEP_ALL in all. A binary
# is read once (its facts are kept instead of its bytes), so it is not kept.
# A source is read for its readability check while modules are listed and
# again by the import graph much later: keeping every source in between (16 MiB
# before) put the real layer of docs/benchmarks.md 22 MB over its peak memory
# target; inflating the sources again costs its cold scan about 1% of CPU.
_KEEP_ALL = 2 * 1024 * 1024
_KEEP_MEMBER = 1024 * 1024

# The kernel's limit on nested lookups (links, and here parents too) before ELOOP.
_MAX_DEPTH = 40

# "<name>-<version>.data/<scheme>/..." inside a wheel.
_WHEEL_DATA = re.compile(r"^[^/]+\.data/([^/]+)/(.*)$")


@record
class Provenance:
    """Where a file in the stack came from."""

    source: str  # the input's label, as the user named it
    index: int  # position of the input in the order given
    kind: InputKind
    source_path: str  # path inside the input

    def describe(self) -> str:
        return f"{self.source}:{self.source_path}"


@mutable_record
class StackFile:
    """A file at its target path, where it came from and what it replaced."""

    target_path: str
    entry: Entry
    origin: Provenance
    source: Source
    replaced: list[Provenance] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.entry.kind


class Stack:
    """A read-only file system of what the target will see, built from the inputs."""

    def __init__(self, target: Target, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> None:
        self.target = target
        self.files: dict[str, StackFile] = {}
        self._children: dict[str, set[str]] = {"/": set()}
        self.sources: list[Source] = []
        self.problems: list[InputProblem] = []
        # Problems met while reading members (after the stack was built).
        self.read_problems: list[InputProblem] = []
        self.memory_budget = memory_budget
        # Recently read small members, oldest first: a source read by the
        # import graph and again by a check comes from here, while the layer as
        # a whole is never held (issue 11, shape 3). See _window().
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        self._held = 0
        self._failed: dict[str, SourceError] = {}
        # Paths resolved through links, with the steps each took (see _walk); the
        # stack only changes in add(), which clears it.
        self._resolved: dict[str, tuple[str | None, int]] = {}

    # -- building -----------------------------------------------------------

    def root_for(self, kind: InputKind) -> str:
        if kind is InputKind.LAYER:
            return self.target.layer_root
        if kind is InputKind.FUNCTION:
            return self.target.function_root
        return self.target.site_packages

    def add(self, source: Source) -> None:
        index = len(self.sources)
        self.sources.append(source)
        self._resolved.clear()
        root = self.root_for(source.kind)
        self._add_dir(root)
        prefix = root if root.endswith("/") else root + "/"  # posixpath.join(root, ...)
        for entry in source.entries():
            rel = entry.path
            if source.kind is InputKind.WHEEL:
                placed = _wheel_placement(rel)
                if placed is None:
                    continue
                rel = placed
            target_path = rel if rel.startswith("/") else prefix + rel
            origin = Provenance(
                source=source.label, index=index, kind=source.kind, source_path=entry.path
            )
            if entry.kind == "dir":
                existing = self.files.get(target_path)
                if existing is not None and existing.kind != "dir":
                    # A directory over a file: the unzip replaces the file.
                    existing.replaced.append(existing.origin)
                self._add_dir(target_path)
                self.files.setdefault(
                    target_path,
                    StackFile(target_path=target_path, entry=entry, origin=origin, source=source),
                )
                continue
            parent, base = posixpath.split(target_path)
            self._add_dir(parent)
            previous = self.files.get(target_path)
            replaced: list[Provenance] = []
            if previous is not None and previous.kind != "dir":
                replaced = [*previous.replaced, previous.origin]
            self.files[target_path] = StackFile(
                target_path=target_path,
                entry=entry,
                origin=origin,
                source=source,
                replaced=replaced,
            )
            self._children[parent].add(base)  # _add_dir made it
        self.problems.extend(source.problems)

    def _add_dir(self, path: str) -> None:
        child: str | None = None
        while True:
            entries = self._children.get(path)
            existed = entries is not None
            if entries is None:
                entries = self._children[path] = set()
            if child is not None:
                entries.add(child)
            if existed:
                return  # its parents were added with it
            parent, base = posixpath.split(path)
            if parent == path:
                return
            child, path = base, parent

    # -- reading ------------------------------------------------------------

    def listdir(self, path: str) -> Sequence[str]:
        return sorted(self._children.get(self._resolve(path) or path, ()))

    def exists(self, path: str) -> bool:
        return self._resolve(path) is not None

    def is_dir(self, path: str) -> bool:
        real = self._resolve(path)
        return real is not None and real in self._children

    def is_file(self, path: str) -> bool:
        real = self._resolve(path)
        if real is None or real in self._children:
            return False
        entry = self.files.get(real)
        return entry is not None and entry.kind == "file"

    def file(self, path: str) -> StackFile | None:
        """The stack file behind a path, links followed."""
        real = self._resolve(path)
        return self.files.get(real) if real is not None else None

    def entry_at(self, path: str) -> StackFile | None:
        """The stack file at exactly this path, links not followed."""
        return self.files.get(path)

    @property
    def failed_reads(self) -> int:
        """How many members could not be read (inflated) so far in this scan."""
        return len(self._failed)

    def read(self, path: str) -> bytes:
        """The bytes of a file in the stack (links followed), within the memory budget.

        A member larger than the budget is not inflated: the error names it and
        is kept in :attr:`read_problems`; the scan goes on without its bytes.
        """
        real = self._resolve(path)
        sf = self.files.get(real) if real else None
        if real is None or sf is None or sf.kind != "file":
            raise SourceError(f"{path}: not a file in the stack")
        failed = self._failed.get(real)
        if failed is not None:
            raise failed
        data = self._recent.get(real)
        if data is not None:
            self._recent.move_to_end(real)
            return data
        try:
            data = self._inflate(sf)
        except SourceError as exc:
            self._failed[real] = exc
            raise
        self._keep(real, data)
        return data

    def _inflate(self, sf: StackFile) -> bytes:
        size = sf.entry.size
        if size > self.memory_budget:
            problem = (
                f"member of {size} bytes is over the memory budget of {self.memory_budget} "
                "bytes (inflated bytes held at once); not read (raise it with --memory-budget)"
            )
            self.read_problems.append(
                InputProblem(source=sf.origin.source, path=sf.origin.source_path, problem=problem)
            )
            raise SourceError(f"{sf.origin.describe()}: {problem}", reason=problem)
        # Drop what is kept so that this member and the rest fit in the budget.
        self._evict(min(self._window(), self.memory_budget - size))
        data = sf.source.read(sf.entry, limit=min(self.memory_budget, MAX_MEMBER_BYTES))
        count("members")
        return data

    def _window(self) -> int:
        """The most inflated bytes kept between reads (never more than the budget)."""
        return min(self.memory_budget, _KEEP_ALL)

    def _keep(self, real: str, data: bytes) -> None:
        room = self._window()
        if len(data) > min(room, _KEEP_MEMBER):
            return
        self._evict(room - len(data))
        self._recent[real] = data
        self._held += len(data)

    def _evict(self, keep_at_most: int) -> None:
        while self._recent and self._held > keep_at_most:
            _, old = self._recent.popitem(last=False)
            self._held -= len(old)

    @property
    def held_bytes(self) -> int:
        """Inflated bytes the stack keeps between reads (for tests and benchmarks)."""
        return self._held

    def walk_files(self) -> Iterable[StackFile]:
        return (sf for sf in self.files.values() if sf.kind != "dir")

    def _resolve(self, path: str) -> str | None:
        """Follow links inside the stack as the kernel would; None when dangling."""
        got = self._walk(path, 0)
        return got[0] if got is not None else None

    def _walk(self, path: str, depth: int) -> tuple[str | None, int] | None:
        """``path`` resolved ``depth`` steps into a lookup: its real path (None when
        dangling) and the nested steps (parents, links) that took; None past the limit.

        Every path resolved, parents included, is remembered with its steps: a
        lookup under a known directory costs one step, not one per component
        (the import system asks for thousands of names in the same directories).
        The steps do not depend on where the lookup started, so a remembered
        answer holds at any depth that leaves room for them.
        """
        known = self._resolved.get(path)
        if known is not None:
            return known if depth + known[1] <= _MAX_DEPTH else None
        if depth > _MAX_DEPTH:
            return None
        got = self._walk_uncached(path, depth)
        if got is not None:
            self._resolved[path] = got
        return got

    def _walk_uncached(self, path: str, depth: int) -> tuple[str | None, int] | None:
        path = posixpath.normpath(path)
        if path in self._children and path not in self.files:
            return path, 0
        steps = 0
        parent, name = posixpath.split(path)
        if parent != path:
            real_parent: str | None = "/"
            if parent != "/":
                up = self._walk(parent, depth + 1)
                if up is None:
                    return None
                real_parent, steps = up[0], up[1] + 1
            if real_parent is None:
                return None, steps
            path = posixpath.join(real_parent, name)
        sf = self.files.get(path)
        if sf is None:
            return (path if path in self._children else None), steps
        if sf.kind == "symlink" and sf.entry.link_target is not None:
            link = sf.entry.link_target
            dest = link if link.startswith("/") else posixpath.join(posixpath.dirname(path), link)
            down = self._walk(dest, depth + 1)
            if down is None:
                return None
            return down[0], max(steps, down[1] + 1)
        return path, steps


def _wheel_placement(rel: str) -> str | None:
    """Where a wheel member lands relative to site-packages; None for scripts, headers, data."""
    match = _WHEEL_DATA.match(rel)
    if match is None:
        return rel
    scheme, rest = match.groups()
    if scheme in ("purelib", "platlib") and rest:
        return rest
    return None


def build_stack(
    target: Target, sources: Iterable[Source], memory_budget: int = DEFAULT_MEMORY_BUDGET
) -> Stack:
    stack = Stack(target, memory_budget)
    for source in sources:
        stack.add(source)
    return stack
