"""Where an audit's tasks run: this process, a local process pool, or a Dask cluster.

The audit loop needs four things of an executor: submit a task, wait until
one of the submitted tasks ends, read how it ended, and the address of a
dashboard to show. A task that raised, or whose worker died, ends with an
exception; the loop decides about retries, not the executor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import importlib
import os
from collections.abc import Callable, Collection
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal, Protocol

from abiscan.errors import AbiscanError

__all__ = [
    "DaskExecutor",
    "Executor",
    "ExecutorError",
    "ExecutorKind",
    "InlineExecutor",
    "LocalExecutor",
    "make_executor",
]

ExecutorKind = Literal["local", "dask"]


class ExecutorError(AbiscanError, ValueError):
    """The executor asked for cannot be set up: a bad option, or a missing extra."""


class Executor(Protocol):
    dashboard: str | None
    window: int  # how many tasks to hand over at once

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any: ...

    def wait_any(self, handles: Collection[Any]) -> set[Any]: ...

    def outcome(self, handle: Any) -> tuple[Any, BaseException | None]: ...

    def close(self) -> None: ...


class InlineExecutor:
    """``--jobs 1``: every task runs in this process, at once (simplest to debug)."""

    dashboard: str | None = None
    window: int = 1

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        future: cf.Future[Any] = cf.Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def wait_any(self, handles: Collection[Any]) -> set[Any]:
        return set(handles)

    def outcome(self, handle: Any) -> tuple[Any, BaseException | None]:
        exc = handle.exception()
        return (None, exc) if exc is not None else (handle.result(), None)

    def close(self) -> None:
        pass


class LocalExecutor(InlineExecutor):
    """A process pool on this machine. A worker that dies breaks the whole pool:
    every task running then fails, and the pool is started again for the retries."""

    def __init__(self, jobs: int) -> None:
        self._jobs = jobs
        self.window = 2 * jobs  # every worker busy, and one task each waiting
        self._pool = cf.ProcessPoolExecutor(max_workers=jobs)
        self._generation: dict[cf.Future[Any], cf.ProcessPoolExecutor] = {}

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        try:
            future = self._pool.submit(fn, *args)
        except BrokenProcessPool:
            self._restart()
            future = self._pool.submit(fn, *args)
        self._generation[future] = self._pool
        return future

    def wait_any(self, handles: Collection[Any]) -> set[Any]:
        return set(cf.wait(handles, return_when=cf.FIRST_COMPLETED).done)

    def outcome(self, handle: Any) -> tuple[Any, BaseException | None]:
        pool = self._generation.pop(handle, None)
        exc = handle.exception()
        if isinstance(exc, BrokenProcessPool) and pool is self._pool:
            self._restart()
        return (None, exc) if exc is not None else (handle.result(), None)

    def _restart(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = cf.ProcessPoolExecutor(max_workers=self._jobs)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Tasks on a ``dask.distributed`` cluster; needs the ``abiscan[dask]`` extra.

    Every submission is a new task (``pure=False``): a retry must run again,
    not return the failed result of the same key.
    """

    def __init__(self, scheduler: Any) -> None:
        try:
            distributed: Any = importlib.import_module("distributed")
        except ModuleNotFoundError:
            raise ExecutorError(
                "the dask executor needs dask.distributed: pip install 'abiscan[dask]'"
            ) from None
        self._distributed = distributed
        self._own = not isinstance(scheduler, distributed.Client)
        self._client = distributed.Client(scheduler) if self._own else scheduler
        link = getattr(self._client, "dashboard_link", None)
        self.dashboard: str | None = str(link) if link else None
        # Enough tasks to keep every thread busy with one waiting, and few enough
        # that waiting for the first of them stays cheap on a long audit.
        threads = sum(self._client.nthreads().values())
        self.window = max(256, 4 * threads)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._client.submit(fn, *args, pure=False)

    def wait_any(self, handles: Collection[Any]) -> set[Any]:
        return set(self._distributed.wait(list(handles), return_when="FIRST_COMPLETED").done)

    def outcome(self, handle: Any) -> tuple[Any, BaseException | None]:
        try:
            if handle.status == "finished":
                # The worker holding the result may die before it is gathered.
                return handle.result(), None
            exc = handle.exception()
        except (Exception, asyncio.CancelledError) as lost:  # a cancelled or lost future
            exc = lost
        handle.release()
        return None, exc

    def close(self) -> None:
        if self._own:
            self._client.close()


def make_executor(kind: ExecutorKind, jobs: int | None, scheduler: Any) -> Executor:
    if kind == "dask":
        if scheduler is None:
            raise ExecutorError("the dask executor needs a scheduler address (tcp://HOST:PORT)")
        return DaskExecutor(scheduler)
    if scheduler is not None:
        raise ExecutorError("a scheduler goes with the dask executor")
    n = jobs if jobs is not None else (os.cpu_count() or 1)
    if n < 1:
        raise ExecutorError("jobs must be at least 1")
    return InlineExecutor() if n == 1 else LocalExecutor(n)
