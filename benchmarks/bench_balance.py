"""Benchmark: how the main process and its workers share a cold scan.

Runs one cold scan of a layer (an empty content cache in a temporary
directory) and prints, as JSON: the wall time, the CPU time of the main
process and of each pool worker (read from ``/proc`` before the pool shuts
down; counted in ``total_cpu_s``), the time the main process spent waiting
for the workers (for a module a worker parses, and for a binary's summary),
and who did what: the modules and binaries each side handled, and the modules
the workers parsed that the scan never used. Linux only (``/proc``). Run:

    python benchmarks/bench_balance.py /work/cache/speed/layer.zip [--jobs N] [--names FILE]

``board`` counts who took each binary and module (:meth:`SourcePrefetch.shares`);
``parsed_unused`` and ``parsed_ahead_unused`` the programs a worker, or the main
process while it waited, parsed and the scan never used.

It wraps :class:`abiscan.prefetch.SourcePrefetch` to count: it measures,
never changes, what the scan does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from typing import Any

from abiscan import prefetch as pf
from abiscan import scan

_stats: dict[str, Any] = {
    "wait_module_s": 0.0, "wait_binary_s": 0.0, "modules_from_worker": 0,
    "modules_in_main": 0, "binaries_from_worker": 0, "binaries_in_main": 0,
    "parsed_unused": 0, "parsed_in_main": 0, "worker_cpu_s": [],
}
_phase = ["other"]
_out = [""]  # --names: where to write the names of the modules parsed and not used
_names: dict[str, list[str]] = {"worker": [], "main": [], "parsed": []}


def _cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _instrument() -> None:
    drain, from_pool, summary, close = (
        pf.SourcePrefetch._drain, pf.SourcePrefetch._from_pool,
        pf.SourcePrefetch.summary, pf.SourcePrefetch.close,
    )
    call = pf.SourcePrefetch.__call__

    def timed_drain(self: Any, *, block: bool) -> None:
        start = time.perf_counter()
        drain(self, block=block)
        if block:
            _stats[f"wait_{_phase[0]}_s"] = _stats.get(f"wait_{_phase[0]}_s", 0.0) + (
                time.perf_counter() - start)

    def counted_from_pool(self: Any, *args: Any) -> Any:
        _phase[0] = "module"
        got = from_pool(self, *args)
        _phase[0] = "other"
        if self._pool is not None:
            _stats["modules_from_worker" if got is not None else "modules_in_main"] += 1
            _names["worker" if got is not None else "main"].append(args[0])
        return got

    def counted_call(self: Any, name: str, path: str, is_package: bool, is_module: Any,
                     parse_file: Any) -> Any:
        def parsing(*args: Any) -> Any:
            _stats["parsed_in_main"] += 1
            _names["parsed"].append(name)
            return parse_file(*args)

        return call(self, name, path, is_package, is_module, parsing)

    def counted_summary(self: Any, sf: Any) -> Any:
        _phase[0] = "binary"
        had_pool = self._pool is not None
        got = summary(self, sf)
        _phase[0] = "other"
        if had_pool:
            _stats["binaries_from_worker" if got is not None else "binaries_in_main"] += 1
        return got

    def measured_close(self: Any) -> None:
        if self._pool is not None:
            pids = list(getattr(self._pool, "_processes", {}) or {})
            self._stop_chains()  # as close() does, before the pool shuts down
            _stats["worker_cpu_s"] = [round(_cpu_of(p), 2) for p in pids]
            _stats["parsed_unused"] = sum(1 for v in self._ready.values() if v is not None)
            ahead = getattr(self, "_ahead", {})
            _stats["parsed_ahead_unused"] = sum(1 for v in ahead.values() if v is not None)
            board = getattr(self, "_board", None)
            if board is not None:
                taken: dict[str, int] = {}
                for slot in range(len(board.slots)):
                    kind = "binary" if slot < len(self._binaries_on_board) else "module"
                    who = {0: "free", 1: "main"}.get(board.slots[slot], "worker")
                    taken[f"{kind}_{who}"] = taken.get(f"{kind}_{who}", 0) + 1
                _stats["board"] = taken
            if _out[0]:
                with open(_out[0], "w") as fh:
                    left = [*self._ready.items(), *ahead.items()]
                    fh.write("\n".join(k.split("\0")[0] for k, v in left if v is not None))
                with open(_out[0] + ".json", "w") as fh:
                    json.dump(_names, fh)
        close(self)

    pf.SourcePrefetch._drain = timed_drain  # type: ignore[method-assign]
    pf.SourcePrefetch._from_pool = counted_from_pool  # type: ignore[method-assign]
    pf.SourcePrefetch.summary = counted_summary  # type: ignore[method-assign]
    pf.SourcePrefetch.close = measured_close  # type: ignore[method-assign]
    pf.SourcePrefetch.__call__ = counted_call  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("layer")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--runtime", default="python3.12")
    parser.add_argument("--names", default="", help="write the modules parsed and never "
                        "used to this file, and who parsed what to FILE.json")
    args = parser.parse_args()
    _out[0] = args.names
    _instrument()
    with tempfile.TemporaryDirectory() as cache:
        start_cpu = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        report = scan([args.layer], runtime=args.runtime, arch="x86_64", jobs=args.jobs,
                      cache_dir=cache)
        wall = time.perf_counter() - start
        end_cpu = resource.getrusage(resource.RUSAGE_SELF)
    main_cpu = (end_cpu.ru_utime - start_cpu.ru_utime) + (end_cpu.ru_stime - start_cpu.ru_stime)
    out = {"wall_s": round(wall, 2), "main_cpu_s": round(main_cpu, 2),
           "main_cpu_total_s": round(time.process_time(), 2),
           "main_peak_rss_mb": round(end_cpu.ru_maxrss / 1024, 1),
           "total_cpu_s": round(main_cpu + sum(_stats["worker_cpu_s"]), 2),
           **{k: round(v, 2) if isinstance(v, float) else v for k, v in _stats.items()},
           "modules": len(report.modules), "findings": len(report.findings)}
    print(json.dumps(out))


if __name__ == "__main__":  # a spawned worker imports this module again
    main()
