"""Who does what in a scan with workers (abiscan.prefetch): each binary and each
module is taken once, by one process, on the board, and the report is the
in-process one.

These tests count work, never time it: which process parsed which module and
read which binary, from the board (:meth:`SourcePrefetch.shares`) and from
counters in this process (the workers are other processes: a counter patched
here counts the main process alone).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

from abiscan import api, parallel, prefetch
from abiscan.inputs.sources import Entry, InputKind, ZipSource, open_source
from abiscan.inputs.stack import Stack, build_stack
from abiscan.prefetch import SourcePrefetch
from abiscan.report.render import render_json
from abiscan.simulate.python.import_graph import ImportGraph
from abiscan.target.profiles import builtin_target
from abiscan.testing.elf_writer import build_shared_object
from tests.helpers import write_zip


def _sources(packages: int = 10, modules: int = 8) -> dict[str, bytes | str]:
    """Enough sources for the pool to start (each package imports its modules and
    the next package), and one extension module."""
    members: dict[str, bytes | str] = {}
    for p in range(packages):
        mods = ", ".join(f"mod{m}" for m in range(modules))
        members[f"python/pkg{p}/__init__.py"] = (
            f"from . import {mods}\nimport pkg{(p + 1) % packages}\n"
        )
        for m in range(modules):
            members[f"python/pkg{p}/mod{m}.py"] = f"value = {m}\nimport json\n"
    members["python/pkg0/_fast.cpython-312-x86_64-linux-gnu.so"] = build_shared_object(
        machine="x86_64", exports=["PyInit__fast"], needed=["libc.so.6"]
    )
    return members


def _json(layer: Path, **kwargs: object) -> str:
    report = api.scan([str(layer)], runtime="python3.12", arch="x86_64",
                      **kwargs)  # type: ignore[arg-type]
    return render_json(report)


def _recording_shares(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str]]:
    """A list that gets the board of each scan with workers, as it closes."""
    boards: list[dict[str, str]] = []
    real = SourcePrefetch.close

    def close(self: SourcePrefetch) -> None:
        real(self)
        if self.shares():
            boards.append(self.shares())

    monkeypatch.setattr(SourcePrefetch, "close", close)
    return boards


def _reads_here(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The members this process reads from a zip (not the workers), with how often."""
    reads: Counter[str] = Counter()
    real = ZipSource.read

    def counting(self: ZipSource, entry: Entry, limit: int | None = None) -> bytes:
        reads[entry.path] += 1
        return real(self, entry, limit)

    monkeypatch.setattr(ZipSource, "read", counting)
    return reads


def _stack_of(layer: Path) -> Stack:
    """The stack of one layer zip, on the built-in python3.12 x86_64 target."""
    source = open_source(str(layer), InputKind.LAYER)
    return build_stack(builtin_target("python3.12", "x86_64"), [source])


def _parsed_here(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The modules this process parses (not the workers), with how often."""
    parsed: Counter[str] = Counter()
    real = ImportGraph.parse_file

    def counting(self: ImportGraph, name: str, *args: object) -> object:
        parsed[name] += 1
        return real(self, name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ImportGraph, "parse_file", counting)
    return parsed


def test_the_module_names_workers_answer_from(tmp_path: Path) -> None:
    """Every dotted name with a file or directory under a sys.path entry: a package's
    own name and its parents', once per directory; a dotted directory is one part."""
    layer = write_zip(tmp_path / "l.zip", {
        "python/pkg/__init__.py": "", "python/pkg/sub/mod.py": "", "python/pkg/sub/data.txt": "",
        "python/pkg.libs/libx.so.1": b"", "python/top.py": "", "python/empty/": "",
        "python/pkg/sub/deep/x.cpython-312-x86_64-linux-gnu.so": b"", "other/ignored.py": "",
    })
    assert prefetch._module_names(_stack_of(layer)) == {
        "pkg", "pkg.sub", "pkg.sub.mod", "pkg.sub.data", "pkg.libs", "pkg.libs.libx",
        "top", "empty", "pkg.sub.deep", "pkg.sub.deep.x",
    }


def test_no_module_is_parsed_by_two_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The main process parses only the modules it took on the board, and each once;
    a worker took the others (at least the first: the main process waits for the
    workers' first word), and the report is the in-process one."""
    layer = write_zip(tmp_path / "layer.zip", _sources())
    alone = _json(layer, jobs=1, use_cache=False)
    boards = _recording_shares(monkeypatch)
    parsed = _parsed_here(monkeypatch)
    assert _json(layer, jobs=2, use_cache=False) == alone
    [board] = boards
    modules = {name: who for name, who in board.items() if "/" not in name}
    assert len(modules) == 90  # every source module on the board (10 packages of 9)
    assert all(n == 1 for n in parsed.values())  # none twice (perhaps none: the worker was quick)
    assert {name for name in parsed if name in modules} <= {
        name for name, who in modules.items() if who == "main"
    }
    by_workers = {name for name, who in modules.items() if who.startswith("worker")}
    assert by_workers
    assert not by_workers & set(parsed)


@pytest.mark.parametrize("resident", [None, 0])
def test_each_binary_is_read_by_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resident: int | None
) -> None:
    """A large binary (over MAIN_READS_AT_MOST) is a worker's, never read here, unless
    this process's resident memory is known to leave room for it (then either may
    read it); the main process reads small ones itself (ahead of asking, while it
    waits for the large one), and no binary is read by both; the report is the
    in-process one."""
    members = _sources()
    members["python/pkg0/_big.cpython-312-x86_64-linux-gnu.so"] = build_shared_object(
        machine="x86_64", exports=["PyInit__big"], needed=["libc.so.6"],
        rodata=bytes(range(256)) * 400,  # about 100 KB, the others a few KB
    )
    for n in range(6):
        members[f"python/pkg9/_small{n}.cpython-312-x86_64-linux-gnu.so"] = build_shared_object(
            machine="x86_64", exports=[f"PyInit__small{n}"], needed=["libc.so.6"]
        )
    layer = write_zip(tmp_path / "layer.zip", members)
    alone = _json(layer, jobs=1, use_cache=False)
    monkeypatch.setattr(parallel, "MIN_BINARY_BYTES", 0)
    monkeypatch.setattr(prefetch, "MAIN_READS_AT_MOST", 64 * 1024)
    monkeypatch.setattr(prefetch, "_resident_bytes", lambda: resident)
    boards = _recording_shares(monkeypatch)
    reads = _reads_here(monkeypatch)
    assert _json(layer, jobs=2, use_cache=False) == alone
    [board] = boards
    binaries = {path: who for path, who in board.items() if "/" in path}
    assert len(binaries) == 8
    if resident is None:
        assert binaries["/opt/python/pkg0/_big.cpython-312-x86_64-linux-gnu.so"] == "worker 0"
    assert all(who in ("main", "worker 0") for who in binaries.values())
    read_here = {name for name in reads if name.endswith(".so")}
    mine = {p for p, who in binaries.items() if who == "main"}
    assert {f"/opt/{name}" for name in read_here} == mine
    assert all(reads[name] == 1 for name in read_here)


def test_the_workers_hear_of_a_package_whose_import_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package whose import certainly fails (its first line imports a module found
    nowhere) is told to the parse-ahead, which has the workers skip its
    submodules: no import reaches them. A package that imports is not told, nor
    one whose failure is only possible."""
    members = _sources()
    members["python/broken/__init__.py"] = "import missing_first\nfrom . import sub\n"
    members["python/broken/sub/__init__.py"] = "x = 1\n"
    members["python/maybe/__init__.py"] = (
        "import sys\nif sys.argv:\n    import missing_maybe\n"
    )
    layer = write_zip(tmp_path / "layer.zip", members)
    alone = _json(layer, jobs=1, use_cache=False)
    heard: list[str] = []
    real = SourcePrefetch.failed

    def failed(self: SourcePrefetch, name: str) -> None:
        heard.append(name)
        real(self, name)

    monkeypatch.setattr(SourcePrefetch, "failed", failed)
    assert _json(layer, jobs=2, use_cache=False) == alone
    assert "broken" in heard
    assert not [name for name in heard if name.startswith(("pkg", "maybe"))]


def _sources_read_here(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The source members this process inflates (not the workers), with how often."""
    reads: Counter[str] = Counter()
    real = ZipSource.read

    def counting(self: ZipSource, entry: Entry, limit: int | None = None) -> bytes:
        if entry.path.endswith(".py"):
            reads[entry.path] += 1
        return real(self, entry, limit)

    monkeypatch.setattr(ZipSource, "read", counting)
    return reads


def test_a_source_a_worker_parsed_is_not_inflated_again_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether a source module can be read is known once a worker parsed it (its bytes
    inflated whole, their CRC-32 checked): this process does not inflate it again
    for its outcome, as it did for every one; and the report is the in-process one."""
    layer = write_zip(tmp_path / "layer.zip", _sources())
    reads = _sources_read_here(monkeypatch)
    alone = _json(layer, jobs=1, use_cache=False)
    assert len(reads) == 90 and set(reads.values()) == {1}  # read for its outcome, then parsed
    reads.clear()
    boards = _recording_shares(monkeypatch)
    assert _json(layer, jobs=2, use_cache=False) == alone
    [board] = boards
    by_workers = {name for name, who in board.items() if who.startswith("worker")}
    # A worker's module whose program came before its outcome was asked for is not read
    # here (the first ones may be: their outcomes come before the first program).
    assert by_workers
    assert len(reads) < 90


def test_a_source_over_the_memory_budget_is_reported_with_workers_too(
    tmp_path: Path,
) -> None:
    """A worker reads a source within the default limits; this process within the
    stack's memory budget: a source over the budget is read here all the same
    (and reported as not read), as without workers."""
    members = _sources()
    members["python/pkg3/mod2.py"] = "value = 2\nimport json\n" + "# padding\n" * 1200
    layer = write_zip(tmp_path / "layer.zip", members)
    alone = _json(layer, jobs=1, use_cache=False, memory_budget=9000)
    assert "python/pkg3/mod2.py" in alone and "over the memory budget" in alone
    assert _json(layer, jobs=2, use_cache=False, memory_budget=9000) == alone


class _CountingQueue:
    """A chain's queue of news, in this process: counts the polls."""

    def __init__(self) -> None:
        self.items: list[tuple[str, tuple[str, ...]]] = []
        self.polls = 0
        self.waits: list[float] = []

    def get_nowait(self) -> tuple[str, tuple[str, ...]]:
        import queue

        self.polls += 1
        if not self.items:
            raise queue.Empty
        return self.items.pop(0)

    def get(self, timeout: float) -> tuple[str, tuple[str, ...]]:
        self.waits.append(timeout)
        return self.get_nowait()


def test_a_chain_polls_its_news_only_when_some_was_posted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker's chain looks at its queue of news only when the main process has
    posted more than it took (the board counts them): a poll on every step of its
    walk cost the real layer's worker 16,000 empty polls. A message counted but not
    yet in the pipe is polled for again at the next step, never lost."""
    posted = [0]
    claims = _CountingQueue()
    board = prefetch._Board(slots=[], lock=None, posted=posted, sent=[0])
    monkeypatch.setitem(prefetch._worker, "board", board)
    monkeypatch.setitem(prefetch._worker, "claims", [claims])
    news = prefetch._News()
    for _ in range(100):
        prefetch._take_news(0, news)
    assert claims.polls == 0
    posted[0] = 2  # two posted, one in the pipe so far
    claims.items.append(("failed", ("broken",)))
    prefetch._take_news(0, news)
    assert news.failed == {"broken"} and news.heard == 1 and claims.polls == 2
    claims.items.append(("parsing", ()))
    prefetch._take_news(0, news)
    assert news.parsing and news.heard == 2 and claims.polls == 4
    prefetch._take_news(0, news)
    assert claims.polls == 4


def test_a_chain_done_with_its_walk_waits_for_news(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chain whose static walk is done waits for news instead of ending: the main
    process still finds modules no static walk reached and tells their imports
    (a hint: parsed first), and the imports of modules it parsed ahead itself,
    which the chains skipped (far: parsed after the rest). Each wait is bounded, and
    "stop" only wakes the chain."""
    posted = [0]
    claims = _CountingQueue()
    board = prefetch._Board(slots=[], lock=None, posted=posted, sent=[0])
    monkeypatch.setitem(prefetch._worker, "board", board)
    monkeypatch.setitem(prefetch._worker, "claims", [claims])
    news = prefetch._News(todo=["mine"])
    prefetch._take_news(0, news, wait=0.25)  # nothing posted: it still waits, once
    assert claims.waits == [0.25] and news.heard == 0
    posted[0] = 3
    claims.items += [("far", ("pkg.far",)), ("hint", ("pkg.next",)), ("stop", ())]
    prefetch._take_news(0, news, wait=0.25)
    assert claims.waits == [0.25, 0.25] and news.heard == 3  # the rest taken without waiting
    assert news.todo == ["pkg.far", "pkg", "mine", "pkg.next", "pkg"]  # popped from the end
    assert not news.parsing and not news.failed and not news.next


def test_the_setup_does_not_travel_with_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers' setup (800 KB pickled for the real layer) goes on a queue, not in
    the arguments pickled with the process: a start-up pickle larger than a pipe
    holds kept the main process waiting until the worker had started and imported
    abiscan. The report is the in-process one."""
    import concurrent.futures

    layer = write_zip(tmp_path / "layer.zip", _sources())
    alone = _json(layer, jobs=1, use_cache=False)
    real = concurrent.futures.ProcessPoolExecutor
    initargs: list[tuple[object, ...]] = []

    def recording(*args: object, **kwargs: object) -> object:
        initargs.append(kwargs["initargs"])  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", recording)
    assert _json(layer, jobs=2, use_cache=False) == alone
    [args] = initargs
    assert not [a for a in args if isinstance(a, prefetch._WorkerSetup)]


def test_when_no_worker_can_start_this_process_does_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the pool cannot start (no process can be made), this process reads and
    parses everything itself, waits for no worker, and the report is the
    in-process one."""
    import concurrent.futures

    members = _sources()
    members["python/pkg0/_big.cpython-312-x86_64-linux-gnu.so"] = build_shared_object(
        machine="x86_64", exports=["PyInit__big"], needed=["libc.so.6"],
        rodata=bytes(range(256)) * 400,  # a large binary, which this process waits for
    )
    layer = write_zip(tmp_path / "layer.zip", members)
    alone = _json(layer, jobs=1, use_cache=False)
    monkeypatch.setattr(prefetch, "MAIN_READS_AT_MOST", 64 * 1024)
    tried: list[int] = []

    def failing(*args: object, **kwargs: object) -> None:
        tried.append(1)
        raise OSError("no more processes")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", failing)
    boards = _recording_shares(monkeypatch)
    parsed = _parsed_here(monkeypatch)
    assert _json(layer, jobs=2, use_cache=False) == alone
    assert tried == [1]
    assert not boards  # no board is left: no worker took anything
    assert len(parsed) == 90 and set(parsed.values()) == {1}


def test_this_process_holds_a_large_binary_only_within_its_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The main process inflates a large binary itself only while its resident memory
    and the member stay under its limit (the largest binary on the board plus
    MAIN_HOLDS_OVER_LARGEST), and never where its resident memory cannot be read."""
    here = SourcePrefetch(_stack_of(write_zip(tmp_path / "layer.zip", _sources())), (3, 12),
                          None, 2)
    here._hold_limit = 100 * 2**20
    if sys.platform == "linux":  # read from /proc: this interpreter holds megabytes
        assert (prefetch._resident_bytes() or 0) > 2**20
    monkeypatch.setattr(prefetch, "_resident_bytes", lambda: 60 * 2**20)
    assert here._may_hold(40 * 2**20)
    assert not here._may_hold(40 * 2**20 + 1)
    monkeypatch.setattr(prefetch, "_resident_bytes", lambda: None)
    assert not here._may_hold(1)


def test_a_binary_this_process_took_is_not_read_again_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small binary this process took when it asked for it (its file facts read it)
    is not read again when, later waiting for another binary, it reads small ones
    ahead: the list of those still holds it. (52 to 65 binaries of the real layer
    were read twice in some cold scans, depending on when the worker started.)"""
    import threading

    members: dict[str, bytes | str] = {
        f"python/_s{n}.cpython-312-x86_64-linux-gnu.so": build_shared_object(
            machine="x86_64", exports=[f"PyInit__s{n}"], needed=["libc.so.6"]
        )
        for n in range(2)
    }
    stack = _stack_of(write_zip(tmp_path / "layer.zip", members))
    files = sorted(
        (sf for sf in stack.walk_files() if sf.target_path.endswith(".so")),
        key=lambda sf: sf.target_path,
    )
    binaries = [
        prefetch._Binary(source=0, entry=sf.entry, target_path=sf.target_path, key=None, slot=i)
        for i, sf in enumerate(files)
    ]
    here = SourcePrefetch(stack, (3, 12), None, 2)
    here._board = prefetch._Board(
        slots=[prefetch.FREE] * 2, lock=threading.Lock(), posted=[0], sent=[0]
    )
    here._small = binaries[::-1]  # popped: the first asked for first
    reads = _reads_here(monkeypatch)
    assert not here._wait_for_binary(binaries[0])  # taken here, for its facts to read
    assert here._read_next_small()  # ahead: the other one
    assert not here._read_next_small()  # none left
    assert reads == Counter({binaries[1].entry.path: 1})
    assert set(here._read_ahead) == {binaries[1].target_path}


def test_a_source_a_worker_parses_is_not_read_here_to_check_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether a source can be read is asked just before its program: for one a worker
    took, this process waits for the worker's word (it parsed it, so read it whole)
    rather than inflate it again (71 sources of the real layer were, in a cold scan)."""
    import queue
    import threading
    from concurrent.futures import Future

    stack = _stack_of(write_zip(tmp_path / "layer.zip", {"python/mod.py": "value = 1\n"}))
    [sf] = [sf for sf in stack.walk_files() if sf.target_path.endswith("/mod.py")]
    task = prefetch._Task(source=0, entry=sf.entry, target_path=sf.target_path, name="mod",
                          is_package=False, slot=0)
    here = SourcePrefetch(stack, (3, 12), None, 2)
    board = prefetch._Board(
        slots=[prefetch.WORKER], lock=threading.Lock(), posted=[0], sent=[0]
    )
    results: queue.Queue[tuple[object, ...]] = queue.Queue()
    monkeypatch.setattr(here, "_pool", object())  # started (no process needed here)
    monkeypatch.setattr(here, "_results", results, raising=False)  # set when started
    here._board, here._chains = board, [Future()]
    here._table, here._task_at = {"mod": task}, {sf.target_path: task}
    reads = _reads_here(monkeypatch)

    def worker_done() -> None:  # the worker's word, a moment later
        key = prefetch._ready_key("mod", sf.target_path, False)
        results.put(("done", 0, "mod", key, b"its program, pickled", None))
        board.sent[0] = 1

    later = threading.Timer(0.2, worker_done)
    later.start()
    try:
        assert here.read_elsewhere(sf)
    finally:
        later.join()
    assert not reads


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_rebuilt_layer_at_a_new_path_is_not_inflated_again_to_check_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    """The sources an earlier scan parsed (their programs are in the content cache,
    under their CRC-32, size and name) are known to be readable: a warm scan of the
    same layer rebuilt at another path (a CI build's) inflates only what changed,
    with workers or without. The members a scan reads are also kept per input, but
    by its path."""
    members = _sources()
    first = write_zip(tmp_path / "build1" / "layer.zip", members)
    cache = tmp_path / "cache"
    _json(first, jobs=2, cache_dir=cache)
    members["python/pkg3/mod5.py"] = "value = 'changed'\nimport json\n"
    second = write_zip(tmp_path / "build2" / "layer.zip", members)
    reads = _reads_here(monkeypatch)
    warm = _json(second, jobs=jobs, cache_dir=cache)
    assert {name for name in reads if name.endswith(".py")} == {"python/pkg3/mod5.py"}
    monkeypatch.undo()
    assert warm == _json(second, jobs=1, use_cache=False)


_DIES = """
import os, sys
from abiscan import api, prefetch

def close(self):
    print(" ".join(map(str, self._pool._processes)), flush=True)
    os._exit(0)  # gone without stopping its workers

prefetch.SourcePrefetch.close = close
if __name__ == "__main__":
    api.scan([sys.argv[1]], runtime="python3.12", arch="x86_64", jobs=2, use_cache=False)
"""


def test_a_worker_ends_when_the_scan_process_is_gone(tmp_path: Path) -> None:
    """A chain done with its walk waits for news, and its worker ends once the
    process that started it is gone without a word (killed, or exited without
    closing the scan), instead of waiting forever. (The run returns only once every
    process holding its output has ended: the worker and the resource tracker.)"""
    import subprocess

    layer = write_zip(tmp_path / "layer.zip", _sources())
    script = tmp_path / "dies.py"
    script.write_text(_DIES)
    out = subprocess.run([sys.executable, str(script), str(layer)], capture_output=True,
                         text=True, timeout=60, check=True)
    pids = [int(p) for p in out.stdout.split()]
    assert pids
    assert not [p for p in pids if _running(p)]


def _running(pid: int) -> bool:
    """Whether ``pid`` runs: neither gone nor a zombie (an orphan's zombie stays
    until init reaps it, which a container's init may never do)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


_WORKER_DIES = """
import os, sys
from abiscan import api, prefetch

def dies(*args):
    os._exit(3)  # before it reads its setup

prefetch._init_worker = dies  # the spawned worker runs this script first, then looks it up
if __name__ == "__main__":
    report = api.scan([sys.argv[1]], runtime="python3.12", arch="x86_64", jobs=2,
                      use_cache=False)
    print(len(report.modules))
"""


def test_a_scan_whose_worker_dies_at_start_exits(tmp_path: Path) -> None:
    """A worker that dies before it reads its setup leaves the setup in the queue's
    pipe: with a setup larger than a pipe holds, the queue's feeder thread blocks,
    and waiting for it kept the scan's process from exiting (it is not waited for).
    The scan itself goes on in its own process and reports every module."""
    import pickle
    import subprocess

    members = _sources(packages=60, modules=40)
    layer = write_zip(tmp_path / "layer.zip", members)
    # Each of the 2,460 modules is a task of the setup, with its member's entry: far
    # more than the 64 KiB a pipe holds (the module names alone pickle to 58 KB).
    names = [name for name in members if name.endswith(".py")]
    assert len(names) == 2460 and len(pickle.dumps(names)) > 50_000
    script = tmp_path / "worker_dies.py"
    script.write_text(_WORKER_DIES)
    out = subprocess.run([sys.executable, str(script), str(layer)], capture_output=True,
                         text=True, timeout=120, check=True)
    assert out.stdout.split() == ["61"]  # 60 packages and the extension module
