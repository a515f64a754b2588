"""Binaries summarised and source modules parsed ahead, on every core, and kept
in the content cache.

Inflating and decoding the binaries and parsing the sources a scan reaches are
its largest costs. Worker processes first summarise the layer's binaries
(:func:`abiscan.inputs.member_facts.summarise`, the large ones first) and send
each summary to the main process (:meth:`SourcePrefetch.summary`, the hook of
:class:`~abiscan.inputs.member_facts.FileFacts`): the main process reads a
small binary itself when no worker has taken it, and a large one only while
its resident memory leaves room for it (else it waits for a worker's summary).
Then the workers parse. Who does
which binary and which module is settled on a shared board (``_Board``), so
that none is done twice; while the main process would wait for a worker, it
reads or parses what it will need later instead. This module answers the
import graph's parse hook
(:data:`abiscan.simulate.python.import_graph.ParseHook`):

* from the content cache, when a scan already parsed the same member
  (same CRC-32, size and name) with the same code;
* from a pool of worker processes, which inflate and parse the modules the
  scan will reach (they follow the import graph, in the order imports run)
  while the main process simulates the loader, and send back each module's
  import-time program as soon as it is parsed (pickled, never the member's
  bytes; each is also stored as its cache entry, where it is plain data);
* else by parsing in the main process, as without this module.

A module's program depends on its bytes and on which dotted names are
modules in the stack (``from x import y``). Workers answer that from the
stack's file names; every answer a program was built with is kept with it and
checked against the real import system before the program is used, so the
report is the same with any number of workers, and with or without cache.
"""

from __future__ import annotations

import gc
import os
import pickle
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import field, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abiscan import __version__, parallel
from abiscan.collector import collector_spaced
from abiscan.frame_stack import call_with_frame_room
from abiscan.inputs.content_cache import ContentCache, dumps_value, entry_of
from abiscan.inputs.member_facts import MemberSummary, member_key, summarise, summary_key
from abiscan.inputs.sources import (
    MAX_MEMBER_BYTES,
    DirectorySource,
    Entry,
    InputKind,
    Source,
    ZipSource,
    open_source,
)
from abiscan.inputs.stack import Stack, StackFile
from abiscan.limits import DEFAULT_LIMITS, Limits
from abiscan.progress import count
from abiscan.records import mutable_record, record

if TYPE_CHECKING:  # loaded only when workers start: a small layer never pays for them
    from concurrent.futures import Future, ProcessPoolExecutor
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Event

    # Loaded when a source is parsed: a scan of extension modules alone never is.
    from abiscan.simulate.python.import_graph import ModuleSource

__all__ = ["SourcePrefetch"]

# The main process reads a binary up to this size itself when no worker has started
# it; a larger one it waits for (its peak memory: docs/benchmarks.md).
MAIN_READS_AT_MOST = 4 * 1024 * 1024
# It reads a larger one itself, rather than wait for a worker, while its resident
# memory and the member stay under the largest binary plus this: the bound on
# peak memory is the largest member plus 100 MB, and an inflater holds a few MB more.
MAIN_HOLDS_OVER_LARGEST = 90 * 1000 * 1000
# Directories whose modules no import of the package itself reaches.
_SKIPPED_DIRS = frozenset({"tests", "test", "testing", "benchmarks", "conftest.py"})

IsModule = Callable[[str], bool]
ParseFile = Callable[[str, str, bool, IsModule], "ModuleSource | None"]


@record
class _Task:
    """A source module of the stack to parse ahead."""

    source: int  # index into the stack's sources
    entry: Entry
    target_path: str
    name: str
    is_package: bool
    key: str | None = None  # the content cache's key for the parsed module
    cached: bool = False  # the content cache has it already
    slot: int = -1  # its place on the board (_Board)


@record
class _Binary:
    """A shared object of the stack to summarise ahead."""

    source: int  # index into the stack's sources
    entry: Entry
    target_path: str
    key: str | None  # the content cache's key for its summary
    slot: int = -1  # its place on the board (_Board)
    chain: int = 0  # the chain that reads it when the main process does not


# Who took a binary or a module on the board: nobody yet, this process, or chain N's
# worker (WORKER + N).
FREE, MAIN, WORKER = 0, 1, 2


@record
class _Board:
    """Who does each binary and each module: one slot each in memory shared by every
    process, taken once under a lock. A process does a binary or parses a module only
    when it took its slot, so none is done twice. (Messages said so before, late:
    a process holding the GIL in ``ast.parse`` sends nothing, and 115 modules of
    the real layer were parsed by both processes.)"""

    slots: Any  # a shared array of ints (multiprocessing RawArray)
    lock: Any  # a multiprocessing Lock
    # How many messages this process has put on each chain's queue of news: a chain
    # polls its queue only when it has heard fewer (_take_news). Polling on every
    # step of a chain's walk cost a worker 16,000 empty polls on the real layer.
    posted: Any  # a shared array of ints, one per chain (written here only)
    # And how many each chain has put on the queue of results: this process polls it
    # only when it has taken fewer (or when it waits), as the chains do their news.
    sent: Any  # a shared array of ints, one per chain (each written by its chain only)

    def take(self, slot: int, who: int) -> int:
        """Take ``slot`` for ``who`` unless another took it first; who has it now."""
        with self.lock:
            got: int = self.slots[slot]
            if got == FREE:
                self.slots[slot] = got = who
            return got

    def owner(self, slot: int) -> int:
        got: int = self.slots[slot]
        return got


@record
class _Parsed:
    """A module parsed ahead, with the answers it was parsed with."""

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
        self._pool: ProcessPoolExecutor | None = None
        self._key_prefix: str | None = None  # see _key
        # The workers' chains (one each), their messages, and who took what (_Board).
        self._chains: list[Future[None]] = []
        self._results: Queue[tuple[Any, ...]]
        self._claims: list[Queue[tuple[str, tuple[str, ...]]]] = []
        self._stop: Event
        self._board: _Board
        self._table: dict[str, _Task] = {}  # the modules on the board, by name
        self._task_at: dict[str, _Task] = {}  # and by path
        self._cached_at: frozenset[str] | None = None  # see _cached_paths
        # The programs the workers sent, pickled, by _ready_key (None: parsed here);
        # one the scan does not use is never loaded.
        self._ready: dict[str, bytes | None] = {}
        self._ended: set[int] = set()
        self._received = 0  # messages taken from the queue of results
        self._stored: set[str] = set()  # cache keys the workers write themselves
        self._finished: str | None = None  # see _finished_key
        # The binaries on the board, by path; the summaries the workers sent, pickled
        # (None: read here); those this process read ahead while it waited; and the
        # small binaries in the order it reads them.
        self._binaries_on_board: dict[str, _Binary] = {}
        self._summaries: dict[str, bytes | None] = {}
        self._read_ahead: dict[str, MemberSummary] = {}
        self._small: list[_Binary] = []
        # The large binaries in the order this process asks for them, and the resident
        # memory under which it may read one itself rather than wait (_may_hold).
        self._large: list[_Binary] = []
        self._hold_limit = 0
        self._read_all: set[int] = set()  # chains done with their binaries
        self._parsing = False  # this process has asked for a parsed module
        self._heard = False  # a chain has parsed a module, or ended
        # This process's own parsing ahead, while it waits for a worker: from the other
        # end of the chains' work (the last roots first), the modules it took, and
        # what it parsed ahead (by the key of _ready).
        self._setup: _WorkerSetup | None = None
        self._far: list[str] = []
        self._taken: set[str] = set()
        self._ahead: dict[str, _Parsed | None] = {}
        self._failed: set[str] = set()  # modules whose import certainly fails
        # The sources a worker, or this process parsing ahead, read whole (by path).
        self._read_whole: set[str] = set()

    # -- the hook -----------------------------------------------------------

    def __call__(
        self, name: str, path: str, is_package: bool, is_module: IsModule, parse_file: ParseFile
    ) -> ModuleSource | None:
        sf = self.stack.file(path)
        key = (
            self._key(sf, name, is_package) if sf is not None and self.cache is not None else None
        )
        ready = self._from_pool(name, path, is_package)
        if ready is None and key is not None and self.cache is not None:
            ready = _as_parsed(self.cache.get(key))
        if ready is not None and all(is_module(q) == a for q, a in ready.answers):
            if (
                key is not None
                and self.cache is not None
                and key not in self._stored
                and not self.cache.has(key)
            ):
                self.cache.put(key, ready)
            return ready.source
        answers: dict[str, bool] = {}

        def recording(q: str) -> bool:
            got = answers[q] = is_module(q)
            return got

        parsed = parse_file(name, path, is_package, recording)
        if parsed is not None:
            self._hint(parsed)
        if parsed is not None and key is not None and self.cache is not None:
            self.cache.put(key, _Parsed(source=parsed, answers=tuple(answers.items())))
        return parsed

    def summary(self, sf: StackFile) -> MemberSummary | None:
        """A worker's summary of the binary ``sf``; None when this process reads it.

        This process reads a small binary itself when no worker has taken it, and
        a large one no worker has taken while its resident memory leaves room for
        it (_may_hold); it waits for one a worker has, and for a large one it may
        not hold (asking its worker to take that one next). While it waits, it
        reads ahead the next binaries no worker has taken, small ones first.
        """
        path = sf.target_path
        binary = self._binaries_on_board.get(path)
        if self._pool is None or binary is None:
            return None
        ahead = self._read_ahead.pop(path, None)
        if ahead is not None:
            return ahead
        self._drain(block=False)
        if path not in self._summaries and not self._wait_for_binary(binary):
            return None
        value = _loaded(self._summaries.pop(path, None))
        if not isinstance(value, MemberSummary):
            return None
        count("members")  # the worker inflated it
        count("elf")
        return value

    def read_elsewhere(self, sf: StackFile) -> bool:
        """Whether the source ``sf`` was read whole, and would be by this process's
        stack too (the hook of :class:`~abiscan.inputs.member_facts.FileFacts`):
        a worker parsed it, or this process did ahead, straight from its input, or
        an earlier scan did (the content cache holds its program).

        A worker reads within the default limits; the stack, within its memory
        budget and its input's limits: a member over the least of them is read
        again here, and fails as it does without workers.
        """
        limit = min(self.stack.memory_budget, MAX_MEMBER_BYTES, sf.source.limits.member_bytes)
        if sf.entry.size > limit:
            return False
        if sf.target_path in self._cached_paths():
            # An earlier scan parsed this very member (same CRC-32, size and name):
            # the cache holds its program. The members a scan read are also kept per
            # input, by path, which a rebuilt layer at a new path does not match (a
            # warm scan of one inflated all its 539 sources again for this check).
            return True
        if sf.target_path not in self._read_whole and self._pool is not None:
            self._drain(block=False)  # the worker's word may be in the pipe
            task = self._task_at.get(sf.target_path)
            if task is not None and (owner := self._board.owner(task.slot)) >= WORKER:
                # Asked just before its program: a worker parsing it will have read it
                # (71 sources of the real layer were inflated again here, for nothing).
                self._wait_for_worker(_ready_key(task.name, task.target_path, task.is_package),
                                      owner)
        return sf.target_path in self._read_whole

    def _cached_paths(self) -> frozenset[str]:
        """The sources whose programs the content cache holds, by path: found as
        :meth:`start` keys the modules, or here, once, when it did not (one job)."""
        if self._cached_at is None:
            keyed = map(self._keyed, _tasks(self.stack)) if self.cache is not None else ()
            self._cached_at = frozenset(t.target_path for t in keyed if t.cached)
        return self._cached_at

    def _wait_for_binary(self, binary: _Binary) -> bool:
        """Wait for a worker's summary of ``binary``; False when this process is to
        read it (it took it, or its worker ended or died without it)."""
        path = binary.target_path
        size = binary.entry.size
        owner = self._board.owner(binary.slot)
        if size <= MAIN_READS_AT_MOST or (owner == FREE and self._may_hold(size)):
            owner = self._board.take(binary.slot, MAIN)
        if owner == MAIN:
            return False
        if owner == FREE:
            self._tell(("next-binary", (path,)), only=binary.chain)
        while path not in self._summaries and self._binary_coming(binary):
            # Rather than wait: the next small binary, else the next large one.
            if not self._read_next_small() and not self._read_next_large():
                self._drain(block=True)
            self._drain(block=False)
        if path in self._summaries:
            return True
        self._board.take(binary.slot, MAIN)
        return False

    def _binary_coming(self, binary: _Binary) -> bool:
        owner = self._board.owner(binary.slot)
        if owner >= WORKER:
            return not self._chains[owner - WORKER].done()
        chain = binary.chain
        return owner == FREE and chain not in self._read_all and not self._chains[chain].done()

    def _read_next_small(self) -> bool:
        """Summarise the next small binary no one has taken, in the order this process
        asks for them, rather than wait; False when there is none."""
        return self._read_next(self._small)

    def _read_next_large(self) -> bool:
        """Summarise the next large binary no worker has started, when this process's
        memory allows it (_may_hold), rather than wait; False when there is none."""
        while self._large and self._board.owner(self._large[-1].slot) != FREE:
            self._large.pop()
        if not self._large or not self._may_hold(self._large[-1].entry.size):
            return False
        return self._read_next(self._large)

    def _may_hold(self, size: int) -> bool:
        """Whether this process may inflate a binary of ``size`` bytes itself: its
        resident memory now and the member stay under the largest binary plus
        MAIN_HOLDS_OVER_LARGEST.
        At first it holds little (50 to 80 MB on the real layer, against 150 MB
        at its end), and while the one worker inflated the large binaries in the
        order this process asks for them, this process waited for them: 0.2 to 1.1
        s of a cold scan. Without a reading of resident memory (not Linux), never."""
        resident = _resident_bytes()
        return resident is not None and resident + size <= self._hold_limit

    def _read_next(self, binaries: list[_Binary]) -> bool:
        while binaries:
            binary = binaries.pop()
            # Taken before, by a worker or by this process (which reads a small binary
            # it asks for at once: 52 to 65 of them were read twice in some cold scans
            # of the real layer), or taken by a worker now.
            if self._board.owner(binary.slot) != FREE:
                continue
            if self._board.take(binary.slot, MAIN) != MAIN:
                continue
            try:
                data = self.stack.sources[binary.source].read(
                    binary.entry, limit=min(self.stack.memory_budget, MAX_MEMBER_BYTES)
                )
                made = summarise(data)
            except Exception:  # FileFacts reads it again, and handles it as it does
                return True
            if made is not None:
                self._read_ahead[binary.target_path] = made
                if binary.key is not None and self.cache is not None:
                    self.cache.put(binary.key, made)
                count("members")
                count("elf")
            return True
        return False

    def _key(self, sf: StackFile, name: str, is_package: bool) -> str | None:
        member = member_key(sf)
        if member is None:
            return None
        if self._key_prefix is None:  # the same for every module (a repr of the limits)
            self._key_prefix = (
                f"module-source|{_code_fingerprint()}|{self.version}|{self.stdlib}|"
                f"{self.limits!r}|"
            )
        return f"{self._key_prefix}{name}|{is_package}|{member}"

    def _from_pool(self, name: str, path: str, is_package: bool) -> _Parsed | None:
        """What a worker parsed for this module; None when the main process parses it.

        The main process waits only for a module a worker has taken: any other it
        takes and parses itself, and the workers skip it.
        """
        if self._pool is None:
            return None
        if not self._parsing:
            self._parsing = True
            self._tell(("parsing", ()))  # the workers stop reading binaries ahead
        key = _ready_key(name, path, is_package)
        # At first, the workers' first word: they take their first root (which is
        # where this process starts too) rather than leave everything to it.
        while not self._heard and not all(f.done() for f in self._chains):
            self._drain(block=True)
        if key in self._ahead:
            ahead = self._ahead.pop(key)
            if ahead is not None:
                count("members")  # read and parsed while this process waited
            return ahead
        self._drain(block=False)
        if key not in self._ready:
            task = self._table.get(name)
            if task is None or task.target_path != path or task.is_package != is_package:
                return None  # no worker parses it as it is found here
            owner = self._board.take(task.slot, MAIN)
            if owner == MAIN:
                self._taken.add(name)
                return None
            self._wait_for_worker(key, owner)
        parsed = _as_parsed(_loaded(self._ready.pop(key, None)))
        if parsed is not None:
            count("members")  # the worker inflated it
        return parsed

    def _wait_for_worker(self, key: str, owner: int) -> None:
        """Wait until the program of ``key`` comes from the worker ``owner``
        (WORKER + its chain), or its chain ends without it, parsing far ahead rather
        than idle (_parse_far)."""
        while key not in self._ready and not self._chains[owner - WORKER].done():
            if not self._parse_far():
                self._drain(block=True)
            self._drain(block=False)

    def _parse_far(self) -> bool:
        """Parse the next module from the far end of the chains' work (the last roots,
        then what they import) rather than wait for a worker; False when there is
        none left. What a worker parses next is what this process needs next: it
        takes the work this process needs last."""
        setup = self._setup
        while self._far and setup is not None:
            name = self._far.pop()
            task = self._table.get(name)
            if task is None or name in self._taken or _below(name, self._failed):
                continue
            if self._board.take(task.slot, MAIN) != MAIN:
                continue  # a worker's: it follows its imports
            self._taken.add(name)
            made: _Parsed | None
            if task.cached and self.cache is not None and task.key is not None:
                made = _as_parsed(self.cache.get(task.key))
            else:
                made = _parse(task, setup, self.stack.sources[task.source])
            self._ahead[_ready_key(name, task.target_path, task.is_package)] = made
            if made is not None:
                self._read_whole.add(task.target_path)
                followed = _followed(made.source)
                self._far.extend(_pushed(followed))
                # The chains skip a module this process took, and so never saw what
                # it imports: told, they parse those once their own walk is done.
                self._tell(("far", followed))
            return True
        return False

    def _drain(self, *, block: bool) -> None:
        """Take the workers' messages: the summaries and programs they made."""
        import queue

        if not block and sum(self._board.sent) <= self._received:
            return  # nothing new: no poll of the queue (a lock and a system call)
        timeout = 0.05 if block else None
        while True:
            try:
                if timeout is not None:
                    message = self._results.get(timeout=timeout)
                else:
                    message = self._results.get_nowait()
            except queue.Empty:
                return
            timeout = None  # after the first, take what is there without waiting
            self._received += 1
            what, chain, name = message[:3]
            if what == "binary-done":
                self._summaries[name] = message[3]
            elif what == "binaries-end":
                self._read_all.add(chain)
            elif what == "idle":
                self._heard = True
            elif what == "done":
                self._heard = True
                self._ready[message[3]] = message[4]
                if message[5]:
                    self._stored.add(message[5])
                task = self._table.get(name)
                if message[4] is not None and task is not None:
                    self._read_whole.add(task.target_path)  # parsed: read whole
            else:  # "end"
                self._heard = True
                self._ended.add(chain)

    def failed(self, name: str) -> None:
        """The import of ``name`` certainly fails: no import reaches its submodules, and
        the workers (and this process, parsing ahead) skip them. The workers follow
        the imports statically; a package whose import fails at run time (pandas
        without pytz) would otherwise have them parse its whole tree."""
        if self._pool is not None and name not in self._failed and not _below(
            name, self._failed
        ):
            self._failed.add(name)
            self._tell(("failed", (name,)))

    def _hint(self, parsed: ModuleSource) -> None:
        """Tell the chains what this process imports next: the imports of a module it
        parsed itself. Each chain parses those first, ahead of this process, which
        goes into the first of them while the workers take the others."""
        if self._pool is not None:
            self._tell(("hint", _followed(parsed)))

    def _tell(self, news: tuple[str, tuple[str, ...]], only: int = -1) -> None:
        for chain, claims in enumerate(self._claims):
            if chain not in self._ended and only in (-1, chain):
                claims.put(news)
                self._board.posted[chain] += 1  # after: the chain polls until it has it

    # -- the workers --------------------------------------------------------

    def start(self) -> None:
        """Start worker processes that summarise the binaries and parse the modules
        this process will reach, ahead of it.

        ``jobs`` counts this process: ``jobs - 1`` workers. Each first summarises
        its share of the binaries: the large ones in the order this process asks
        for them (it never reads those itself), then small ones from the end of
        that order, while this process reads small ones from its start. Then it
        follows the import graph from the packages of the layer's extension
        modules, in the order an import runs (a package before its modules, a
        module's imports in program order), as this process will: what it parses
        is what this process needs next, not the layer's other modules. Each
        worker writes what it made to the content cache itself and sends it here.
        Who does which binary and which module is settled on a board (_Board).
        """
        if self.jobs < 2:
            return
        specs = [s for s in map(_spec, self.stack.sources) if s is not None]
        if len(specs) != len(self.stack.sources):
            return
        tasks = [self._keyed(t) for t in _tasks(self.stack)]
        self._cached_at = frozenset(t.target_path for t in tasks if t.cached)
        table: dict[str, _Task] = {}
        for t in tasks:
            table.setdefault(t.name, t)  # the first sys.path entry wins, as in an import
        roots = _roots(self.stack, table)
        fresh = sum(1 for t in tasks if not t.cached)
        self._finished = self._finished_key(table)
        if fresh < parallel.MIN_PREFETCH or _reach_cached(roots, table) or self._scanned_before():
            roots = []  # a warm scan, or a small one: parsing here costs less
        binaries = self._binaries()
        if not roots and sum(b.entry.size for b in binaries) < parallel.MIN_BINARY_BYTES:
            return
        self._launch(_WorkerSetup(
            specs=tuple(specs),
            version=self.version,
            names=_module_names(self.stack),
            stdlib=self.stdlib,
            limits=self.limits,
            cache=(self.cache.directory.parent, self.cache.max_bytes) if self.cache else None,
            tasks=table,
            binaries={b.target_path: b for b in binaries},
            memory_budget=self.stack.memory_budget,
        ), roots)

    def _binaries(self) -> list[_Binary]:
        """The stack's shared objects not in the content cache, within the memory
        budget, by path: nearly the order this process asks for their summaries in
        (the sorted modules' own outcomes, each with the libraries it links)."""
        index = {id(s): i for i, s in enumerate(self.stack.sources)}
        out: list[_Binary] = []
        for sf in self.stack.walk_files():
            name = sf.target_path.rsplit("/", 1)[-1]
            if sf.kind != "file" or not (name.endswith(".so") or ".so." in name):
                continue
            if sf.entry.size > self.stack.memory_budget:
                continue  # not read at all: an input problem, named by this process
            key = summary_key(sf) if self.cache is not None else None
            if key is not None and self.cache is not None and self.cache.has(key):
                continue
            out.append(_Binary(source=index[id(sf.source)], entry=sf.entry,
                               target_path=sf.target_path, key=key))
        return sorted(out, key=lambda b: b.target_path)

    def _launch(self, setup: _WorkerSetup, roots: Sequence[str]) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # "spawn", never "fork" (a scan may run in a thread of a threaded program). Not
        # "forkserver" either: starting the fork server kept this process waiting for
        # it (0.04 to 0.06 s), and a worker forked from it imports abiscan all the same.
        context = multiprocessing.get_context("spawn")
        workers = self.jobs - 1
        self._results = context.Queue()
        self._claims = [context.Queue() for _ in range(workers)]
        self._stop = context.Event()
        setup, shares = self._on_board(setup, workers)
        self._setup = setup
        self._far = _pushed(roots)[::-1]  # popped: the chains' last work first
        try:
            self._board = _Board(
                slots=context.RawArray("i", len(setup.binaries) + len(setup.tasks)),
                lock=context.Lock(),
                posted=context.RawArray("i", workers),
                sent=context.RawArray("i", workers),
            )
            # The setup (800 KB pickled on the real layer) goes on a queue, whose feeder
            # thread writes it, not with the process: a start-up pickle larger than a
            # pipe holds blocked this process until the worker had started its
            # interpreter and imported abiscan (0.15 to 0.2 s of a cold scan's wall).
            # It is put once the workers are started (their initializer waits for it).
            setups: Queue[_WorkerSetup] = context.Queue()
            # Not waited for at exit: with no worker left to read it, the feeder
            # thread would block on a full pipe, and the exit of this process with it.
            setups.cancel_join_thread()
            self._pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(setups, self._results, self._claims, self._stop, self._board),
            )
            for chain in range(workers):
                self._chains.append(self._pool.submit(
                    _work, chain, shares[chain], roots[chain::workers]
                ))
            for _ in range(workers):
                setups.put(setup)
        except Exception:  # no worker could start: this process does everything
            self._binaries_on_board.clear()
            self._table.clear()
            self._task_at.clear()
            self.close()

    def _on_board(
        self, setup: _WorkerSetup, workers: int
    ) -> tuple[_WorkerSetup, list[list[str]]]:
        """The setup with a slot for each binary and module, and each chain's binaries
        in the order it reads them: its large ones as this process will ask for them,
        then its small ones from the last this process will ask for."""
        large: list[list[str]] = [[] for _ in range(workers)]
        small: list[list[str]] = [[] for _ in range(workers)]
        binaries: dict[str, _Binary] = {}
        for slot, (path, binary) in enumerate(setup.binaries.items()):
            binary = replace(binary, slot=slot, chain=slot % workers)
            binaries[path] = binary
            is_small = binary.entry.size <= MAIN_READS_AT_MOST
            (small if is_small else large)[binary.chain].append(path)
            (self._small if is_small else self._large).append(binary)
        self._small.reverse()  # popped: the first this process asks for comes first
        self._large.reverse()
        largest = max((b.entry.size for b in self._large), default=0)
        self._hold_limit = largest + MAIN_HOLDS_OVER_LARGEST
        first = len(binaries)
        tasks = {n: replace(t, slot=first + i) for i, (n, t) in enumerate(setup.tasks.items())}
        self._binaries_on_board = binaries
        self._table = tasks
        self._task_at = {t.target_path: t for t in tasks.values()}
        shares = [large[c] + small[c][::-1] for c in range(workers)]
        return replace(setup, binaries=binaries, tasks=tasks), shares

    def _keyed(self, task: _Task) -> _Task:
        """The task with its cache key, and whether the cache has the module already."""
        if self.cache is None:
            return task
        sf = self.stack.entry_at(task.target_path)
        key = self._key(sf, task.name, task.is_package) if sf is not None else None
        return replace(task, key=key, cached=key is not None and self.cache.has(key))

    def _finished_key(self, table: Mapping[str, _Task]) -> str | None:
        """The cache key saying that a scan of these very sources ran to its end."""
        if self.cache is None:
            return None
        import hashlib  # start-up: only with a cache

        keys = sorted(t.key or t.target_path for t in table.values())
        digest = hashlib.sha256("\0".join(keys).encode("utf-8", "surrogateescape"))
        return f"scan-finished|{_code_fingerprint()}|{digest.hexdigest()}"

    def _scanned_before(self) -> bool:
        """Whether a scan of the same sources ran to its end with this cache: then
        every module it reached is cached, and the chains' roots it did not reach
        (a package whose import fails early) need no worker either. Without this,
        every warm scan of the real layer started a worker for them."""
        return (
            self.cache is not None and self._finished is not None
            and self.cache.has(self._finished)
        )

    def finished(self) -> None:
        """The scan ran to its end: a warm scan of the same sources starts no parsing
        worker (:meth:`_scanned_before`)."""
        if self.cache is not None and self._finished is not None and not self._scanned_before():
            self.cache.put(self._finished, True)

    def shares(self) -> dict[str, str]:
        """Who took each binary (by path) and each module (by name) on the board:
        ``"main"``, ``"worker N"`` or ``""`` (no one); empty when no worker started.
        For tests and benchmarks: which process did which work."""
        if not self._binaries_on_board and not self._table:
            return {}
        out: dict[str, str] = {}
        slots = [(p, b.slot) for p, b in self._binaries_on_board.items()]
        for name, slot in [*slots, *((n, t.slot) for n, t in self._table.items())]:
            owner = self._board.owner(slot)
            out[name] = "" if owner == FREE else "main" if owner == MAIN else (
                f"worker {owner - WORKER}"
            )
        return out

    def _stop_chains(self) -> None:
        """Stop the workers' chains and wait until each has ended (its pack published)."""
        self._stop.set()
        self._tell(("stop", ()))  # a chain waiting for news wakes now
        # Read on until every chain has stopped: a worker never waits on a full pipe.
        while not all(f.done() for f in self._chains):
            self._drain(block=True)

    def close(self) -> None:
        if self._pool is None:
            return
        self._stop_chains()
        for claims in self._claims:
            claims.cancel_join_thread()  # names no worker will read: not waited for at exit
            claims.close()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._results.close()
        self._pool = None


def _resident_bytes() -> int | None:
    """This process's resident memory, from /proc (Linux); None elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _ready_key(name: str, path: str, is_package: bool) -> str:
    """How a module parsed ahead is named, here and in the workers' messages."""
    return f"{name}\0{path}\0{is_package}"


def _pickled(value: _Parsed | MemberSummary) -> bytes | None:
    """``value`` as a worker sends it and stores it: the pickle of its cache entry
    (:func:`~abiscan.inputs.content_cache.dumps_value`), made once for both; None
    when it does not pickle, and the main process then reads or parses that member
    itself. Pickled here, not by the queue's thread: a message that thread could not
    pickle would be lost, and waited for."""
    try:
        return dumps_value(value)
    except (TypeError, ValueError, RecursionError):
        return None


def _loaded(sent: bytes | None) -> Any:
    """What a worker of this scan pickled (:func:`_pickled`); the callers check its type.
    Its own process's bytes: loaded with ``pickle``, not the cache's unpickler of plain
    data, as every message between the two processes is."""
    return pickle.loads(sent) if sent is not None else None


def _as_parsed(value: Any) -> _Parsed | None:
    from abiscan.simulate.python.import_graph import ModuleSource

    ok = isinstance(value, _Parsed) and isinstance(value.source, ModuleSource)
    return value if ok else None


@cache  # the files do not change while a process runs; matrix and audit scan many times
def _code_fingerprint() -> str:
    """abiscan's version, the running grammar and the bytes of the code and data that
    parse: every module of :mod:`abiscan.simulate.python` and the runtime API tables."""
    import hashlib

    digest = hashlib.sha256(f"{__version__}|{sys.version_info[:2]}".encode())
    here = Path(__file__).parent / "simulate" / "python"
    data = Path(__file__).parent / "target" / "data"
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


def _roots(stack: Stack, tasks: Mapping[str, _Task]) -> list[str]:
    """Where the workers' chains start: the top-level source modules and the layer's
    extension modules (whose packages an import of them runs first), in the sorted
    order the scan follows its modules in."""
    names = {name for name in tasks if "." not in name}
    for root in _sys_path_roots(stack):
        prefix = root.rstrip("/") + "/"
        for sf in stack.walk_files():
            path = sf.target_path
            if path.startswith(prefix) and path.endswith(".so"):
                parts = path[len(prefix) :].split("/")
                parts[-1] = parts[-1].split(".", 1)[0]
                if all(p.isidentifier() for p in parts):
                    names.add(".".join(parts))
    return sorted(names)


def _reach_cached(roots: Sequence[str], tasks: Mapping[str, _Task]) -> bool:
    """Whether nearly every module a chain starts at, and every package above it,
    is in the content cache already: all but fewer than one in eight of them.

    Counting every uncached source instead would start workers on each warm
    scan: the modules no import reaches are never parsed, so never cached (a
    warm scan of the real layer took 4.1 s with an idle worker pool against
    2.9 s without). And a few uncached ones are a warm scan with a source or
    two changed, which the workers would mostly walk from the cache too: on
    the real layer, one changed ``pandas/__init__.py`` leaves 1 of the 45
    uncached (a cold scan: 45), and a worker pool cost the scan's own process
    0.4 to 0.9 s of CPU more, and doubled its wall time on 2 busy cores.
    """
    chain: set[str] = set()
    for name in roots:
        parts = name.split(".")
        chain.update(".".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    heads = [tasks[n] for n in chain if n in tasks]
    uncached = sum(1 for task in heads if not task.cached)
    return uncached == 0 or uncached * 8 < len(heads)


def _module_names(stack: Stack) -> frozenset[str]:
    """Dotted names that have a file or directory under a sys.path entry of the stack."""
    names: set[str] = set()
    for root in _sys_path_roots(stack):
        prefix = root.rstrip("/") + "/"
        # A directory's names (its own and its parents') once, not once per file in it:
        # the real layer's 4,372 files sit in 386 directories.
        directories: set[str] = set()
        for path in stack.files:
            if not path.startswith(prefix):
                continue
            head, _, base = path[len(prefix) :].rpartition("/")
            base = base.split(".", 1)[0]
            if base != "__init__":
                names.add(f"{head.replace('/', '.')}.{base}" if head else base)
            if head and head not in directories:
                directories.add(head)
                parts = head.split("/")
                names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return frozenset(names)


# -- in the worker processes ---------------------------------------------------------


@record
class _WorkerSetup:
    """What a worker needs to open the stack's sources and do its chain."""

    specs: tuple[tuple[str, str, str], ...]  # how to open each of the stack's sources
    version: tuple[int, int]
    names: frozenset[str]  # dotted names with a file or directory: is_module's answers
    stdlib: str | None
    limits: Limits
    cache: tuple[Path, int] | None
    tasks: dict[str, _Task]  # the source modules, by name
    binaries: dict[str, _Binary]  # the shared objects to summarise, by path
    memory_budget: int  # the stack's: no member read is larger


_worker: dict[str, Any] = {}


def _init_worker(
    setups: Queue[_WorkerSetup],
    results: Queue[tuple[Any, ...]],
    claims: Sequence[Queue[tuple[str, tuple[str, ...]]]],
    stop: Event,
    board: _Board,
) -> None:
    # What is still buffered when the pool shuts down is not needed: never wait for it.
    results.cancel_join_thread()
    setup = setups.get()
    cache = ContentCache(setup.cache[0], setup.cache[1]) if setup.cache is not None else None
    _worker.update(
        setup=setup, sources={}, cache=cache, results=results, claims=claims, stop=stop,
        board=board,
    )


def _source(index: int) -> Source:
    sources: dict[int, Source] = _worker["sources"]
    if index not in sources:
        path, kind, label = _worker["setup"].specs[index]
        sources[index] = open_source(path, InputKind(kind), label)
    return sources[index]


def _with_parents(name: str) -> list[str]:
    """``a.b.c``, ``a.b``, ``a``: pushed on a stack, the parents come off first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


@mutable_record
class _News:
    """What a chain heard from the main process (:func:`_take_news`)."""

    seen: set[str] = field(default_factory=set)  # modules taken, here or elsewhere
    todo: list[str] = field(default_factory=list)  # modules to parse, a stack
    next: list[str] = field(default_factory=list)  # binaries the main process waits for
    failed: set[str] = field(default_factory=set)  # modules whose import certainly fails
    parsing: bool = False  # the main process has started parsing
    orphaned: bool = False  # the main process is gone without a word
    heard: int = 0  # how many messages it took from its queue


def _work(chain: int, binaries: Sequence[str], roots: Sequence[str]) -> None:
    """One worker's chain: summarise ``binaries`` until the main process parses, then
    parse what ``roots`` reach, still summarising a binary it waits for."""
    # Its walks (the extractor's, the encoder's) cross no end of a frame-stack chunk.
    call_with_frame_room(_work_chain, chain, binaries, roots)


def _work_chain(chain: int, binaries: Sequence[str], roots: Sequence[str]) -> None:
    news = _News(todo=_pushed(roots))
    todo = list(reversed(binaries))
    stop: Event = _worker["stop"]
    cache: ContentCache | None = _worker["cache"]
    try:
        with collector_spaced():  # the collector at the scan's pace, as in the main process
            while todo and not stop.is_set():
                _take_news(chain, news)
                if news.next:
                    _summarise_binary(chain, news.next.pop(), news)
                elif news.parsing:
                    break  # the main process reached its sources: the rest only when asked
                else:
                    _summarise_binary(chain, todo.pop(), news)
            _parse_reach(chain, news)
    finally:
        if cache is not None:
            # Published before the chain says it ended: the main process's close()
            # waits for every chain, so a scan returns with the workers' packs in place
            # (no finalizer is relied on).
            cache.flush()
        # The worker exits next, and the scan's close() waits for it: its interpreter's
        # last collections would walk every object it made (its programs, their
        # nodes). Frozen, they are left to the exit.
        gc.freeze()
    if news.orphaned:
        # A pool's worker waits for its next task on a queue whose writing end it
        # holds itself: it would wait forever for a process that is gone.
        os._exit(0)
    _send(chain, ("binaries-end", chain, ""))


def _summarise_binary(chain: int, path: str, news: _News) -> None:
    """Summarise one binary and send its summary (pickled), then store its cache entry;
    nothing for one the main process read itself."""
    setup: _WorkerSetup = _worker["setup"]
    task = setup.binaries.get(path)
    board: _Board = _worker["board"]
    if task is None or board.take(task.slot, WORKER + chain) != WORKER + chain:
        return
    summary = _summarise(task)
    pickled = _pickled(summary) if summary is not None else None
    _send(chain, ("binary-done", chain, path, pickled))
    _store(task.key, pickled)


def _summarise(task: _Binary) -> MemberSummary | None:
    """The binary's summary; None when the main process is to read it (it cannot be
    read, or its facts not all decoded: the main process names or keeps those)."""
    budget: int = _worker["setup"].memory_budget
    try:
        data = _source(task.source).read(task.entry, limit=min(budget, MAX_MEMBER_BYTES))
        return summarise(data)
    except Exception:  # the main process meets it again, and handles it as it does
        return None


def _parse_reach(chain: int, news: _News) -> None:
    """Parse the modules an import of the chain's roots reaches, depth first in the
    order the imports run, and send each to the main process as soon as it is parsed.

    Modules another chain or the main process took on the board are skipped;
    so is everything once the main process says stop.
    """
    setup: _WorkerSetup = _worker["setup"]
    stop: Event = _worker["stop"]
    board: _Board = _worker["board"]
    seen, todo = news.seen, news.todo
    idle = False
    while not stop.is_set():
        _take_news(chain, news)
        while news.next:  # a binary the main process waits for
            _summarise_binary(chain, news.next.pop(), news)
        if not todo:
            if not _idle(chain, news, idle):
                news.orphaned = True
                break
            idle = True
            continue
        name = todo.pop()
        task = setup.tasks.get(name)
        if name in seen or task is None or _below(name, news.failed):
            continue
        seen.add(name)
        if board.take(task.slot, WORKER + chain) != WORKER + chain:
            continue  # taken by the main process (which tells its imports) or a chain
        sent, parsed = _parse_task(task)
        # Pickled once: sent so, then stored as the body of its cache entry.
        key = _ready_key(name, task.target_path, task.is_package)
        pickled = _pickled(sent) if sent is not None else None
        stored = task.key if pickled is not None and _worker["cache"] is not None else None
        _send(chain, ("done", chain, name, key, pickled, stored))
        _store(stored, pickled)
        if parsed is not None:
            todo.extend(_pushed(_followed(parsed)))
    _send(chain, ("end", chain, ""))


def _idle(chain: int, news: _News, idle: bool) -> bool:
    """The chain's walk is done: wait for news until the main process stops the
    workers (False: it is gone without a word). The main process still meets
    modules the chain skipped or never reached statically (the imports of
    modules it parsed itself, as hints or from its far end); it tells the chains
    of them. A chain that ended with its walk left those to the main process
    alone: 46 modules of the real layer, parsed there after the worker had ended."""
    import multiprocessing

    if not idle:
        _send(chain, ("idle", chain, ""))  # the main process need not wait for a first word
    parent = multiprocessing.parent_process()
    if parent is not None and not parent.is_alive():
        return False
    _take_news(chain, news, wait=0.25)
    return True


def _send(chain: int, message: tuple[Any, ...]) -> None:
    """Put ``message`` on the queue of results, and count it on the board (after: the
    main process polls until it has it)."""
    results: Queue[tuple[Any, ...]] = _worker["results"]
    results.put(message)
    board: _Board = _worker["board"]
    board.sent[chain] += 1


def _store(key: str | None, pickled: bytes | None) -> None:
    """Store what a worker pickled and sent as its cache entry under ``key``; called
    after sending, since the main process may be waiting for the message."""
    cache: ContentCache | None = _worker["cache"]
    if cache is not None and key is not None and pickled is not None:
        cache.put_entry(key, entry_of(key, pickled))


def _followed(parsed: ModuleSource) -> tuple[str, ...]:
    """The modules a module's import may import, in program order."""
    return tuple(e.target for e in parsed.edges if not e.type_checking and e.runs != "no")


def _below(name: str, failed: set[str]) -> bool:
    """Whether ``name`` is a submodule of a module whose import fails."""
    if not failed:
        return False
    parts = name.split(".")
    return any(".".join(parts[:i]) in failed for i in range(1, len(parts)))


def _pushed(names: Sequence[str]) -> list[str]:
    """``names`` and their parents, to push on a stack: the first name's parents come off
    first, then the first name, then the second name's parents."""
    return [n for name in reversed(names) for n in _with_parents(name)]


def _take_news(chain: int, news: _News, *, wait: float = 0.0) -> None:
    """The main process's news: modules it needs next (parsed first), modules whose
    import fails (their submodules skipped), binaries it waits for, that it has
    started parsing, and that it stops. With ``wait``, wait that long for the first
    message."""
    import queue

    board: _Board = _worker["board"]
    if board.posted[chain] <= news.heard and not wait:
        return  # nothing new: no poll of the queue (a lock and a system call)
    claims: Queue[tuple[str, tuple[str, ...]]] = _worker["claims"][chain]
    while True:
        try:
            what, names = claims.get(timeout=wait) if wait else claims.get_nowait()
        except queue.Empty:
            return  # posted, not yet in the pipe: polled again at the next step
        wait = 0.0
        news.heard += 1
        if what == "hint":
            news.todo.extend(_pushed(names))
        elif what == "far":
            news.todo[:0] = _pushed(names)  # at the bottom of the stack: after the rest
        elif what == "failed":
            news.failed.update(names)
        elif what == "next-binary":
            news.next.extend(names)
        elif what == "parsing":
            news.parsing = True
        # "stop": only wakes the chain, which then sees the stop event


def _parse_task(t: _Task) -> tuple[_Parsed | None, ModuleSource | None]:
    """What to send for one module (None: the main process reads the cache, or parses
    it itself), and its program, whose imports the chain follows."""
    setup: _WorkerSetup = _worker["setup"]
    cache: ContentCache | None = _worker["cache"]
    if t.cached and cache is not None and t.key is not None:
        known = _as_parsed(cache.get(t.key))
        return None, known.source if known is not None else None
    made = _parse(t, setup, _source(t.source))
    return made, made.source if made is not None else None


def _parse(t: _Task, setup: _WorkerSetup, source: Source) -> _Parsed | None:
    """The module's program, with the is_module answers it was built with (a scan
    checks them again before it uses it); None when it is to be parsed by the scan."""
    from abiscan.simulate.python.import_graph import ImportGraph, SourceReader

    answers: dict[str, bool] = {}

    def is_module(q: str) -> bool:
        got = answers[q] = q in setup.names
        return got

    def read(_: str) -> bytes | None:
        return source.read(t.entry)

    graph = ImportGraph(
        reader=SourceReader(read, lambda _: None),
        version=setup.version,
        limits=setup.limits,
        stdlib=setup.stdlib,
    )
    try:
        parsed = graph.parse_file(t.name, t.target_path, t.is_package, is_module)
    except Exception:  # the main process meets it again, and handles it as it does
        return None
    return _Parsed(source=parsed, answers=tuple(answers.items())) if parsed is not None else None
