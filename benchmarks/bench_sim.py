"""Benchmark: the CPU of a warm scan's simulation, phase by phase, in one process.

A scan whose content cache is warm but whose result memo misses (the "one
.py changed" case of bench_real.py) spends its CPU on the simulation: the
import system, the import simulation, the loader simulation, the rules. This
script scans a layer ``--reps`` times in one process with ``--jobs 1`` on a
content cache it warmed first, the result memo bypassed, and prints as JSON
the CPU time (``time.process_time``) of each scan and of each stage of
:func:`abiscan.api.analyse` (min and median over the repetitions after the
first), and the share of it spent decoding content-cache entries. Run:

    python benchmarks/bench_sim.py /work/cache/speed/layer.zip [--reps 5] [--cache DIR]

It wraps the result memo's ``recall`` (to miss), ``_Guard.stage`` and
``ContentCache.get`` (to time them): it measures, never changes, what the scan
does. Compare two trees by running it with each on ``PYTHONPATH``, alternately,
in the same minute: the machine's load moves every number.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from abiscan import api, result_memo, scan
from abiscan.inputs import content_cache

_T = TypeVar("_T")
_spent: dict[str, float] = defaultdict(float)


def _instrument() -> None:
    stage = api._Guard.stage
    get = content_cache.ContentCache.get

    def timed_stage(self: Any, what: str, run: Callable[[], _T], fallback: _T) -> _T:
        start = time.process_time()
        try:
            return stage(self, what, run, fallback)
        finally:
            _spent[f"stage: {what}"] += time.process_time() - start

    def timed_get(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return get(self, *args, **kwargs)
        finally:
            _spent["content cache reads (inside the stages)"] += time.process_time() - start

    api._Guard.stage = timed_stage  # type: ignore[method-assign]
    content_cache.ContentCache.get = timed_get  # type: ignore[method-assign]
    result_memo.recall = lambda *args, **kwargs: None  # type: ignore[assignment]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("layer", type=Path)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--cache", type=Path, help="a warm content cache (default: warm a new one)")
    args = ap.parse_args()
    _instrument()
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp)
        runs: list[dict[str, float]] = []
        for _ in range(args.reps + 1):
            _spent.clear()
            start = time.process_time()
            report = scan([args.layer], runtime="python3.12", arch="x86_64", jobs=1,
                          cache_dir=cache)
            _spent["scan"] = time.process_time() - start
            runs.append(dict(_spent))
    steady = runs[1:]  # the first warms the cache (unless given) and the module-level tables
    keys = sorted({k for r in steady for k in r}, key=lambda k: -statistics.median(
        r.get(k, 0.0) for r in steady))
    print(json.dumps({
        "layer": str(args.layer), "reps": args.reps, "modules": len(report.modules),
        "cpu_s": {k: {"min": round(min(r.get(k, 0.0) for r in steady), 3),
                      "median": round(statistics.median(r.get(k, 0.0) for r in steady), 3)}
                  for k in keys},
    }, indent=1))


if __name__ == "__main__":
    main()
