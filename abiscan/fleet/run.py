"""``audit()``: every stack of a manifest on every target, with resume, retries and progress.

The loop is the same for every executor. Each stack is digested by a task;
when its digest arrives, each of its cells is either reused from the resume
records (same stack digest, target and abiscan version) or submitted as a
scan task. A task that fails, or whose worker dies, is submitted once more;
a second failure becomes the cell's internal-error record and the audit goes on.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from abiscan import __version__
from abiscan.fleet.artifacts import default_cache_dir
from abiscan.fleet.cells import (
    RECORD_SCHEMA_VERSION,
    CellTask,
    Prepared,
    internal_error_record,
    prepare_stack,
    scan_cell,
)
from abiscan.fleet.executors import Executor, ExecutorKind, make_executor
from abiscan.fleet.manifest import Manifest, StackSpec, load_manifest
from abiscan.records import record
from abiscan.report.model import Report
from abiscan.report.render import render_sarif
from abiscan.target.profiles import builtin_target

__all__ = ["AuditResult", "Progress", "audit", "dump_record", "read_records"]

Record = dict[str, Any]
CellRunner = Callable[[CellTask], Record]


@record
class Progress:
    """How far an audit is: stacks done per target, and an estimate of the time left."""

    done: dict[str, int]  # target -> stacks whose cell for it is done
    stacks: int
    elapsed: float
    eta: float | None  # seconds, from the cells scanned so far; None before the first
    dashboard: str | None


@record
class AuditResult:
    """Every cell's record, stack by stack in manifest order, targets in manifest order."""

    stacks: tuple[str, ...]
    targets: tuple[str, ...]
    records: tuple[Record, ...]
    reused: int
    scanned: int
    retried: int

    @property
    def exit_status(self) -> int:
        """As for ``scan``, over the whole audit: 3 internal error, 2 bad input,
        1 an import error predicted, 0 none."""
        return max((int(r["exit_status"]) for r in self.records), default=0)

    def to_jsonl(self) -> str:
        return "".join(dump_record(r) for r in self.records)

    def record(self, stack: str, target: str) -> Record | None:
        return next(
            (r for r in self.records if r["stack"] == stack and r["target"] == target), None
        )

    def sarif(self, stack: str) -> str | None:
        """One SARIF 2.1.0 log for a stack, a run per target (when the audit kept SARIF)."""
        tool = _sarif_tool()
        runs = [
            {"tool": tool, **r["sarif"]}
            for r in self.records
            if r["stack"] == stack and "sarif" in r
        ]
        if not runs:
            return None
        doc = {
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": runs,
        }
        return json.dumps(doc, indent=2) + "\n"


def _sarif_tool() -> Any:
    """The SARIF ``tool`` object of this abiscan version: its rule table, as render gives it."""
    empty = Report(
        target=builtin_target("python3.12"), modules=(), findings=(), tool_version=__version__
    )
    return json.loads(render_sarif(empty))["runs"][0]["tool"]


def dump_record(record: Record) -> str:
    """One JSON Lines line, canonical: the same record is the same bytes."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def read_records(path: str | Path) -> Iterator[Record]:
    """The records of a previous audit's JSON Lines; a torn or foreign line is skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except FileNotFoundError:
        return
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("schema_version") == RECORD_SCHEMA_VERSION:
            yield rec


@dataclass
class _Job:
    kind: str  # "prepare" or "cell"
    args: tuple[Any, ...]
    attempt: int = 0


@dataclass
class _Loop:
    manifest: Manifest
    executor: Executor
    runner: CellRunner
    cache_dir: str
    sarif: bool
    previous: dict[tuple[str, str], Record]
    stream: IO[str] | None
    progress: Callable[[Progress], None] | None
    records: dict[tuple[str, str], Record] = field(default_factory=dict)
    pending: dict[Any, _Job] = field(default_factory=dict)
    # Jobs not yet handed to the executor; cells go first, so stacks finish early.
    cells: deque[_Job] = field(default_factory=deque)
    prepares: deque[_Job] = field(default_factory=deque)
    reused: int = 0
    scanned: int = 0
    retried: int = 0
    started: float = field(default_factory=time.monotonic)

    def run(self) -> None:
        for stack in self.manifest.stacks:
            self._submit(_Job(kind="prepare", args=(stack, self.cache_dir)))
        if self.progress is not None:  # at once: the dashboard's address, 0 done
            self.progress(self._progress())
        self._fill()
        while self.pending:
            for handle in self.executor.wait_any(list(self.pending)):
                job = self.pending.pop(handle)
                value, exc = self.executor.outcome(handle)
                if exc is None and not isinstance(
                    value, Prepared if job.kind == "prepare" else dict
                ):
                    # Seen on Dask: a result lost with its worker arrives as None.
                    exc = RuntimeError(f"the task's result was lost ({type(value).__name__})")
                if exc is None:
                    self._done(job, value)
                elif job.attempt == 0:
                    self.retried += 1
                    self._submit(_Job(kind=job.kind, args=job.args, attempt=1))
                else:
                    self._failed(job, f"{type(exc).__name__}: {exc}")
            self._fill()

    def _submit(self, job: _Job) -> None:
        (self.cells if job.kind == "cell" else self.prepares).append(job)

    def _fill(self) -> None:
        """Hand jobs to the executor up to its window: a pool that breaks fails (and
        retries) only the jobs it held, not every job of the audit."""
        while len(self.pending) < self.executor.window and (self.cells or self.prepares):
            job = (self.cells or self.prepares).popleft()
            fn: Callable[..., Any] = prepare_stack if job.kind == "prepare" else self.runner
            self.pending[self.executor.submit(fn, *job.args)] = job

    def _done(self, job: _Job, value: Any) -> None:
        if job.kind == "cell":
            self.scanned += 1
            self._record(value)
            return
        stack: StackSpec = job.args[0]
        prepared: Prepared = value
        for target in self.manifest.targets:
            old = self.previous.get((stack.name, target))
            if old is not None and self._reusable(old, prepared):
                self.reused += 1
                self._record(old)
            else:
                task = CellTask(
                    stack=stack,
                    prepared=prepared,
                    target=target,
                    cache_dir=self.cache_dir,
                    sarif=self.sarif,
                )
                self._submit(_Job(kind="cell", args=(task,)))

    def _reusable(self, old: Record, prepared: Prepared) -> bool:
        return (
            old.get("stack_digest") == prepared.digest
            and old.get("abiscan_version") == __version__
            and old.get("status") != "internal-error"
            and (not self.sarif or "sarif" in old)
        )

    def _failed(self, job: _Job, error: str) -> None:
        if job.kind == "cell":
            self._record(internal_error_record(job.args[0], error))
            return
        stack: StackSpec = job.args[0]
        unknown = Prepared(stack=stack.name, digest=None, inputs=(), problems=(), declared=None)
        for target in self.manifest.targets:
            task = CellTask(
                stack=stack,
                prepared=unknown,
                target=target,
                cache_dir=self.cache_dir,
                sarif=self.sarif,
            )
            self._record(internal_error_record(task, error))

    def _record(self, record: Record) -> None:
        if not self.sarif:
            record.pop("sarif", None)
        self.records[(record["stack"], record["target"])] = record
        if self.stream is not None:
            self.stream.write(dump_record(record))
            self.stream.flush()
        if self.progress is not None:
            self.progress(self._progress())

    def _progress(self) -> Progress:
        done = {t: 0 for t in self.manifest.targets}
        for _, target in self.records:
            done[target] += 1
        elapsed = time.monotonic() - self.started
        total = len(self.manifest.stacks) * len(self.manifest.targets)
        left = total - len(self.records)
        eta = elapsed / self.scanned * left if self.scanned else None
        return Progress(
            done=done,
            stacks=len(self.manifest.stacks),
            elapsed=elapsed,
            eta=eta,
            dashboard=self.executor.dashboard,
        )


def audit(
    manifest: Manifest | str | Path,
    *,
    executor: ExecutorKind = "local",
    jobs: int | None = None,
    scheduler: Any = None,
    resume: str | Path | Iterable[Record] | None = None,
    output: str | Path | None = None,
    cache_dir: str | Path | None = None,
    sarif: bool = False,
    progress: Callable[[Progress], None] | None = None,
    runner: CellRunner = scan_cell,
) -> AuditResult:
    """Scan every stack of ``manifest`` for every target it names.

    ``executor="local"`` runs on a process pool of ``jobs`` workers (default:
    every core; 1 runs in this process); ``executor="dask"`` runs on the
    ``dask.distributed`` cluster at ``scheduler`` (an address or a ``Client``).
    ``resume`` names a previous audit's records (a JSON Lines file, whose
    ``.partial`` file is read too, or the records): a cell whose stack digest,
    target and abiscan version are unchanged is reused, not scanned.
    ``output`` gets the records in manifest order at the end; while the audit
    runs they go to ``<output>.partial`` as they arrive, for a resume after an
    interruption. URLs are fetched into ``cache_dir`` (default
    ``$ABISCAN_CACHE_DIR`` or ``~/.cache/abiscan``). ``sarif`` keeps each
    cell's SARIF run in its record. ``runner`` scans one cell (a seam for tests
    and other scanners); it must be importable by the workers.
    """
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    previous = _previous(resume)
    cache = str(Path(cache_dir) if cache_dir is not None else default_cache_dir())
    ex = make_executor(executor, jobs, scheduler)
    partial = Path(f"{output}.partial") if output is not None else None
    stream = partial.open("a", encoding="utf-8") if partial is not None else None
    try:
        loop = _Loop(
            manifest=manifest,
            executor=ex,
            runner=runner,
            cache_dir=cache,
            sarif=sarif,
            previous=previous,
            stream=stream,
            progress=progress,
        )
        loop.run()
    finally:
        ex.close()
        if stream is not None:
            stream.close()
    ordered = tuple(loop.records[(s.name, t)] for s in manifest.stacks for t in manifest.targets)
    result = AuditResult(
        stacks=tuple(s.name for s in manifest.stacks),
        targets=manifest.targets,
        records=ordered,
        reused=loop.reused,
        scanned=loop.scanned,
        retried=loop.retried,
    )
    if output is not None and partial is not None:
        tmp = Path(f"{output}.tmp")
        tmp.write_text(result.to_jsonl(), encoding="utf-8")
        os.replace(tmp, output)
        partial.unlink(missing_ok=True)
    return result


def _previous(resume: str | Path | Iterable[Record] | None) -> dict[tuple[str, str], Record]:
    if resume is None:
        return {}
    if isinstance(resume, (str, Path)):
        records = [*read_records(resume), *read_records(f"{resume}.partial")]
    else:
        records = list(resume)
    out: dict[tuple[str, str], Record] = {}
    for rec in records:
        if isinstance(rec.get("stack"), str) and isinstance(rec.get("target"), str):
            out[(rec["stack"], rec["target"])] = rec
    return out
