"""Source modules parsed ahead, on every core, and kept in the content cache.

Parsing the sources a scan reaches is the largest cost after inflating the
binaries. This module answers the import graph's parse hook
(:data:`abiscan.simulate.python.import_graph.ParseHook`):

* from the content cache, when a scan already parsed the same member
  (same CRC-32, size and name) with the same code;
* from a pool of worker processes, which inflate and parse the layer's
  sources while the main process simulates the loader, and send back each
  module's import-time program (small plain data, never bytes);
* else by parsing in the main process, as without this module.

A module's program depends on its bytes and on which dotted names are
modules in the stack (``from x import y``). Workers answer that from the
stack's file names; every answer a program was built with is kept with it and
checked against the real import system before the program is used, so the
report is the same with any number of workers, and with or without cache.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abiscan import __version__
from abiscan.inputs.content_cache import ContentCache
from abiscan.inputs.member_facts import member_key
from abiscan.inputs.sources import DirectorySource, Entry, InputKind, Source, ZipSource, open_source
from abiscan.inputs.stack import Stack, StackFile
from abiscan.limits import DEFAULT_LIMITS, Limits
from abiscan.progress import count
from abiscan.simulate.python import grammar, import_graph
from abiscan.simulate.python.import_graph import ImportGraph, ModuleSource, SourceReader

if TYPE_CHECKING:  # loaded only when workers start: a small layer never pays for them
    from concurrent.futures import Future, ProcessPoolExecutor

__all__ = ["SourcePrefetch", "default_jobs"]

# Below this many sources, starting workers costs more than it saves.
MIN_PREFETCH = 64
_CHUNK = 24
# Directories whose modules no import of the package itself reaches.
_SKIPPED_DIRS = frozenset({"tests", "test", "testing", "benchmarks", "conftest.py"})

IsModule = Callable[[str], bool]
ParseFile = Callable[[str, str, bool, IsModule], "ModuleSource | None"]


# On this many cores or fewer the parsing workers cost more than they save:
# on 2 cores a cold scan of the real layer of docs/benchmarks.md took 11.0 s
# without workers and 15.4 s with two (main, idle machine), and 31 s without
# and 45 s with one on the speed branch (a loaded machine).
_POOL_MIN_CORES = 3


def default_jobs() -> int:
    """The default ``jobs``: the cores this process may run on, or 1 (no workers)
    where workers were measured a net loss (2 cores or fewer)."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        cores = max(1, os.cpu_count() or 1)
    return cores if cores >= _POOL_MIN_CORES else 1


@dataclass(frozen=True)
class _Task:
    source: int  # index into the stack's sources
    entry: Entry
    target_path: str
    name: str
    is_package: bool
    key: str | None = None  # the content cache's key for the parsed module


@dataclass(frozen=True)
class _Parsed:
    source: ModuleSource
    answers: tuple[tuple[str, bool], ...]  # is_module(name) answers it was built with


class SourcePrefetch:
    """The parse hook of one scan: cache, workers, or the main process."""

    def __init__(
        self,
        stack: Stack,
        version: tuple[int, int],
        cache: ContentCache | None,
        jobs: int,
        *,
        stdlib: str | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.stack = stack
        self.version = version
        self.cache = cache
        self.jobs = jobs
        # What a parse depends on besides the bytes: the same in every worker, and
        # part of every cache key.
        self.stdlib = stdlib
        self.limits = limits
        self._code = _code_fingerprint()
        self._pool: ProcessPoolExecutor | None = None
        self._pending: dict[tuple[str, str, bool], Future[list[tuple[str, _Parsed | None]]]] = {}

    # -- the hook -----------------------------------------------------------

    def __call__(
        self, name: str, path: str, is_package: bool, is_module: IsModule, parse_file: ParseFile
    ) -> ModuleSource | None:
        sf = self.stack.file(path)
        key = self._key(sf, name, is_package) if sf is not None else None
        ready = self._from_pool(name, path, is_package)
        if ready is None and key is not None and self.cache is not None:
            ready = _as_parsed(self.cache.get(key))
        if ready is not None and all(is_module(q) == a for q, a in ready.answers):
            if key is not None and self.cache is not None and not self.cache.has(key):
                self.cache.put(key, ready)
            return ready.source
        answers: dict[str, bool] = {}

        def recording(q: str) -> bool:
            got = answers[q] = is_module(q)
            return got

        parsed = parse_file(name, path, is_package, recording)
        if parsed is not None and key is not None and self.cache is not None:
            self.cache.put(key, _Parsed(source=parsed, answers=tuple(answers.items())))
        return parsed

    def _key(self, sf: StackFile, name: str, is_package: bool) -> str | None:
        member = member_key(sf)
        if member is None:
            return None
        return (
            f"module-source|{self._code}|{self.version}|{self.stdlib}|{self.limits!r}|"
            f"{name}|{is_package}|{member}"
        )

    def _from_pool(self, name: str, path: str, is_package: bool) -> _Parsed | None:
        fut = self._pending.get((name, path, is_package))
        if fut is None or fut.cancel():
            return None  # not submitted, or not started yet: parsing here is as fast
        try:
            results = fut.result()
        except Exception:  # a worker that died; the main process parses instead
            return None
        count("members")  # the worker inflated it
        return dict(results).get(f"{name}\0{path}\0{is_package}")

    # -- the workers --------------------------------------------------------

    def start(self) -> None:
        """Hand the stack's sources (those not cached yet) to worker processes.

        ``jobs`` counts this process: ``jobs - 1`` workers parse while it
        reads the binaries and simulates the loader (on 2 cores, a second
        worker only competes with this process for a core). Each worker
        writes what it parsed to the content cache itself.
        """
        if self.jobs < 2:
            return
        tasks = [k for k in map(self._keyed, _tasks(self.stack)) if k is not None]
        specs = [s for s in map(_spec, self.stack.sources) if s is not None]
        if len(tasks) < MIN_PREFETCH or len(specs) != len(self.stack.sources):
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        method = (
            "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        )
        cache = (self.cache.directory.parent, self.cache.max_bytes) if self.cache else None
        self._pool = ProcessPoolExecutor(
            max_workers=self.jobs - 1,
            mp_context=multiprocessing.get_context(method),
            initializer=_init_worker,
            initargs=(
                specs,
                self.version,
                _module_names(self.stack),
                self.stdlib,
                self.limits,
                cache,
            ),
        )
        for i in range(0, len(tasks), _CHUNK):
            chunk = tasks[i : i + _CHUNK]
            fut = self._pool.submit(_parse_chunk, chunk)
            for t in chunk:
                self._pending[(t.name, t.target_path, t.is_package)] = fut

    def _keyed(self, task: _Task) -> _Task | None:
        """The task with its cache key; None when the cache has the module already."""
        if self.cache is None:
            return task
        sf = self.stack.entry_at(task.target_path)
        key = self._key(sf, task.name, task.is_package) if sf is not None else None
        if key is not None and self.cache.has(key):
            return None
        return replace(task, key=key)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _as_parsed(value: Any) -> _Parsed | None:
    ok = isinstance(value, _Parsed) and isinstance(value.source, ModuleSource)
    return value if ok else None


@cache  # the files do not change while a process runs; matrix and audit scan many times
def _code_fingerprint() -> str:
    """abiscan's version, the running grammar and the bytes of the code and data that
    parse: every module of :mod:`abiscan.simulate.python` and the runtime API tables."""
    digest = hashlib.sha256(f"{__version__}|{sys.version_info[:2]}".encode())
    here = Path(import_graph.__file__ or "").parent
    data = Path(grammar.__file__ or "").parents[2] / "target" / "data"
    for path in [*sorted(here.glob("*.py")), *sorted(data.glob("*.json"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:24]


def _spec(source: Source) -> tuple[str, str, str] | None:
    # Absolute: the workers' current directory is the one their server started in.
    if isinstance(source, ZipSource):
        return os.path.abspath(source.path), source.kind.value, source.label
    if isinstance(source, DirectorySource):
        return os.path.abspath(source.root), source.kind.value, source.label
    return None


def _sys_path_roots(stack: Stack) -> list[str]:
    return [p for p in stack.target.sys_path if stack.is_dir(p)]


def _tasks(stack: Stack) -> list[_Task]:
    """The stack's source modules a package's own imports may reach (tests left out)."""
    index = {id(s): i for i, s in enumerate(stack.sources)}
    out: list[_Task] = []
    for root in _sys_path_roots(stack):
        prefix = root.rstrip("/") + "/"
        for sf in stack.walk_files():
            path = sf.target_path
            if not path.startswith(prefix) or not path.endswith(".py") or sf.kind != "file":
                continue
            parts = path[len(prefix) : -3].split("/")
            if _SKIPPED_DIRS.intersection(parts) or not all(p.isidentifier() for p in parts):
                continue
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            if name:
                out.append(
                    _Task(
                        source=index[id(sf.source)],
                        entry=sf.entry,
                        target_path=path,
                        name=name,
                        is_package=is_package,
                    )
                )
    return sorted(out, key=lambda t: t.target_path)


def _module_names(stack: Stack) -> frozenset[str]:
    """Dotted names that have a file or directory under a sys.path entry of the stack."""
    names: set[str] = set()
    for root in _sys_path_roots(stack):
        prefix = root.rstrip("/") + "/"
        for sf in stack.files.values():
            if not sf.target_path.startswith(prefix):
                continue
            parts = sf.target_path[len(prefix) :].split("/")
            parts[-1] = parts[-1].split(".", 1)[0]
            if parts[-1] == "__init__":
                parts.pop()
            names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return frozenset(names)


# -- in the worker processes ---------------------------------------------------------

_worker: dict[str, Any] = {}


def _init_worker(
    specs: Sequence[tuple[str, str, str]],
    version: tuple[int, int],
    names: frozenset[str],
    stdlib: str | None,
    limits: Limits,
    cache: tuple[Path, int] | None,
) -> None:
    _worker.update(
        specs=list(specs),
        sources={},
        version=version,
        names=names,
        stdlib=stdlib,
        limits=limits,
        cache=ContentCache(cache[0], cache[1]) if cache is not None else None,
    )


def _source(index: int) -> Source:
    sources: dict[int, Source] = _worker["sources"]
    if index not in sources:
        path, kind, label = _worker["specs"][index]
        sources[index] = open_source(path, InputKind(kind), label)
    return sources[index]


def _parse_chunk(tasks: Iterable[_Task]) -> list[tuple[str, _Parsed | None]]:
    names: frozenset[str] = _worker["names"]
    out: list[tuple[str, _Parsed | None]] = []
    for t in tasks:
        answers: dict[str, bool] = {}

        def is_module(q: str, answers: dict[str, bool] = answers) -> bool:
            got = answers[q] = q in names
            return got

        def read(_: str, t: _Task = t) -> bytes | None:
            return _source(t.source).read(t.entry)

        graph = ImportGraph(
            reader=SourceReader(read, lambda _: None),
            version=_worker["version"],
            limits=_worker["limits"],
            stdlib=_worker["stdlib"],
        )
        try:
            parsed = graph.parse_file(t.name, t.target_path, t.is_package, is_module)
        except Exception:  # the main process meets it again, and handles it as it does
            parsed = None
        result = (
            _Parsed(source=parsed, answers=tuple(answers.items())) if parsed is not None else None
        )
        # A warm scan checks the answers again before it uses an entry.
        cache: ContentCache | None = _worker["cache"]
        if result is not None and cache is not None and t.key is not None:
            cache.put(t.key, result)
        out.append((f"{t.name}\0{t.target_path}\0{t.is_package}", result))
    return out
