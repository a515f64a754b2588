"""Benchmark: encoding and decoding parsed programs for the content cache.

Parses every ``.py`` member of a layer (default: the real layer of
docs/benchmarks.md, ``/work/cache/speed/layer.zip``) with the extractor, as a
scan does, then measures the CPU time of:

* **encode**: :func:`pack_entry` of every program (what a worker does before
  sending a module to the main process, and a cache write);
* **decode**: :func:`unpack_entry` of every entry (a warm scan);
* **rebuild defs**: the first use of every kept ``def`` (``AssignStep.function``)
  of the decoded programs, which are rebuilt lazily.

Best of ``--repeat`` runs each; also the entries' total size. Run:

    python benchmarks/bench_encode.py [--layer PATH] [--repeat 5] [--limit N] [--tests]
"""

from __future__ import annotations

import argparse
import gc
import time
import zipfile
from pathlib import Path
from typing import Any

from abiscan.inputs.content_cache import pack_entry, unpack_entry
from abiscan.simulate.python.import_graph import (
    AssignStep,
    CondStep,
    ImportGraph,
    LoopStep,
    ModuleSource,
    SourceReader,
    TryStep,
)

LAYER = Path("/work/cache/speed/layer.zip")


def programs(layer: Path, limit: int | None, tests: bool) -> list[ModuleSource]:
    """Every ``.py`` member of ``layer`` (of a test package too, with ``tests``), parsed
    for CPython 3.12."""
    with zipfile.ZipFile(layer) as zf:
        names = sorted(
            n for n in zf.namelist() if n.endswith(".py") and (tests or "/tests/" not in n)
        )[:limit]
        data = {n: zf.read(n) for n in names}
    graph = ImportGraph(reader=SourceReader(data.get, lambda _: None), version=(3, 12))
    out = []
    for n in names:
        module = n.removeprefix("python/").removesuffix(".py").replace("/", ".")
        parsed = graph.parse_file(module, n, n.endswith("__init__.py"), lambda _: True)
        if parsed is not None:
            out.append(parsed)
    return out


def kept_defs(block: Any) -> list[Any]:
    """The ``AssignStep.function`` nodes of a program's steps, nested ones too."""
    out = []
    for step in block:
        if isinstance(step, AssignStep) and step.function is not None:
            out.append(step.function)
        elif isinstance(step, TryStep):
            out += kept_defs(step.body) + kept_defs(step.orelse) + kept_defs(step.final)
            for h in step.handlers:
                out += kept_defs(h.body)
        elif isinstance(step, (CondStep, LoopStep)):
            out += kept_defs(step.body)
    return out


def best(repeat: int, run: Any) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layer", type=Path, default=LAYER)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--tests", action="store_true", help="the test packages' modules too")
    args = ap.parse_args()
    progs = programs(args.layer, args.limit, args.tests)
    keys = [f"{p.name}\0{p.path}" for p in progs]
    entries = [pack_entry(k, p) for k, p in zip(keys, progs, strict=True)]
    defs = sum(len(kept_defs(p.body)) for p in progs)
    print(f"{len(progs)} programs, {defs} kept defs, entries {sum(map(len, entries)):,} bytes")

    def encode() -> None:
        for k, p in zip(keys, progs, strict=True):
            pack_entry(k, p)

    def decode() -> None:
        for k, e in zip(keys, entries, strict=True):
            unpack_entry(e, k)

    decoded: list[Any] = []

    def rebuild() -> None:
        for fn in decoded:
            _ = fn.body  # the first use rebuilds the whole def

    def fresh() -> None:
        decoded[:] = [
            f
            for k, e in zip(keys, entries, strict=True)
            for f in kept_defs(unpack_entry(e, k).body)
        ]

    print(f"encode        {best(args.repeat, encode):7.3f} s CPU")
    print(f"decode        {best(args.repeat, decode):7.3f} s CPU")
    times = []
    for _ in range(args.repeat):
        fresh()
        times.append(best(1, rebuild))
    print(f"rebuild defs  {min(times):7.3f} s CPU")


if __name__ == "__main__":
    main()
