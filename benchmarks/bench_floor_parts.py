"""Benchmark: the C work a cold scan cannot skip, beside the inflate floor.

A cold scan of a layer inflates its binaries and parses and compiles every
source module it reaches (importing compiles a source, and the compiler raises
SyntaxErrors of its own). Those three are C code abiscan calls: CPython's
parser and compiler, and the inflater. This script measures them alone, in one
process, beside the floor of ``bench_real.py`` (zipfile inflating every ELF
member once), each the least CPU time of ``--rounds`` runs with the collector
off:

* **floor**: the same loop as ``bench_real.py``'s floor;
* **inflate**: every ELF member inflated by abiscan's own reader
  (:meth:`abiscan.inputs.sources.ZipSource.read`, ISA-L's inflater when the
  ``fast`` extra is installed);
* **parse**: ``ast.parse`` of every source a cold ``--jobs 1`` scan parses
  (recorded from that scan, run first in this process);
* **compile**: ``compile`` of each parsed tree, as the scan's compile check
  does.

It prints each, their sum, the scan's own CPU time, and what the sum means for
the cold target: with abiscan's own Python work taking no time at all and the
cores shared perfectly, a cold scan on ``--cores`` cores would still take the
sum divided by the cores, as a ratio to the floor. Run:

    python benchmarks/bench_floor_parts.py [LAYER.zip] [--rounds 3] [--cores 2] [--json]

The default layer is ``bench_real.py``'s real one
(``/work/cache/wheels/abiscan-bench-layers/real-1.zip``); ``bench_real.py`` runs
this script too, and writes its summary under its table.
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import time
import warnings
import zipfile
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from unittest.mock import patch

import abiscan.simulate.python.import_graph as import_graph
from abiscan import scan
from abiscan.inputs.sources import InputKind, ZipSource, open_source
from abiscan.simulate.python.grammar import check_syntax
from abiscan.simulate.python.syntax_verdict import SyntaxVerdict

DEFAULT_LAYER = Path("/work/cache/wheels/abiscan-bench-layers/real-1.zip")


def parsed_sources(layer: Path, runtime: str) -> tuple[list[tuple[str, bytes]], float]:
    """The sources a cold ``--jobs 1`` scan parses, and the scan's CPU time."""
    seen: list[tuple[str, bytes]] = []
    # Recorded where the import graph calls the parser: the library has no hook for it,
    # and a benchmark must not add one to the scan's path.

    def recording(
        source: bytes, filename: str, target: tuple[int, int]
    ) -> tuple[ast.Module | None, SyntaxVerdict | None]:
        tree, verdict = check_syntax(source, filename, target)
        if tree is not None:  # a source the running parser refuses is neither parsed nor compiled
            seen.append((filename, source))
        return tree, verdict

    with patch.object(import_graph, "check_syntax", recording):
        start = time.process_time()
        scan([str(layer)], runtime=runtime, arch="x86_64", jobs=1, use_cache=False)
        cpu = time.process_time() - start
    return seen, cpu


def least_cpu(work: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
        gc.enable()
    return best


@dataclass(frozen=True)
class Parts:
    """CPU seconds (least of the rounds) of the floor and of each part, and the scan's."""

    elf_members: int
    elf_mb: float
    sources: int
    source_mb: float
    scan_cpu: float
    floor: float
    inflate: float
    parse: float
    compile: float

    @property
    def parts(self) -> float:
        return self.inflate + self.parse + self.compile


def measure(layer: Path, rounds: int = 3, runtime: str = "python3.12") -> Parts:
    """The floor and the three parts, measured in this process."""
    warnings.simplefilter("ignore")  # the sources' own warnings, as the scan ignores them
    sources, scan_cpu = parsed_sources(layer, runtime)
    zf = zipfile.ZipFile(layer)
    elf_infos = []
    for info in zf.infolist():
        if info.is_dir() or info.filename.endswith(".py"):
            continue
        with zf.open(info) as fh:
            if fh.read(4) == b"\x7fELF":
                elf_infos.append(info)
    reader = open_source(layer, InputKind.LAYER)
    assert isinstance(reader, ZipSource)
    by_path = {e.path: e for e in reader.entries()}
    elf_entries = [by_path[i.filename] for i in elf_infos]

    def floor() -> None:
        for info in elf_infos:
            with zf.open(info) as fh:
                fh.read()

    def inflate() -> None:
        for entry in elf_entries:
            reader.read(entry)

    def parse() -> None:
        for name, data in sources:
            ast.parse(data, name)

    trees = [(name, ast.parse(data, name)) for name, data in sources]

    def compile_trees() -> None:
        for name, tree in trees:
            with suppress(SyntaxError):  # the compiler's own errors: the scan meets them too
                compile(tree, name, "exec", dont_inherit=True)

    return Parts(
        elf_members=len(elf_infos),
        elf_mb=sum(i.file_size for i in elf_infos) / 1e6,
        sources=len(sources),
        source_mb=sum(len(d) for _, d in sources) / 1e6,
        scan_cpu=scan_cpu,
        floor=least_cpu(floor, rounds),
        inflate=least_cpu(inflate, rounds),
        parse=least_cpu(parse, rounds),
        compile=least_cpu(compile_trees, rounds),
    )


def summary(p: Parts, cores: int) -> str:
    """One paragraph for docs/benchmarks.md (``bench_real.py`` writes it)."""
    return (
        f"What a cold scan cannot skip (`bench_floor_parts.py`, CPU in one process, least of "
        f"its rounds): abiscan's inflater over the {p.elf_members} ELF members "
        f"{p.inflate:.2f} s, `ast.parse` of the {p.sources} sources a cold scan parses "
        f"{p.parse:.2f} s, `compile` of their trees {p.compile:.2f} s; together "
        f"{p.parts / p.floor:.2f}x the floor's {p.floor:.2f} s measured beside them, so "
        f"{p.parts / p.floor / cores:.2f}x on {cores} cores with no other work at all."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("layer", nargs="?", type=Path, default=DEFAULT_LAYER)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--runtime", default="python3.12")
    parser.add_argument("--json", action="store_true", help="print the measures as JSON")
    args = parser.parse_args()
    p = measure(args.layer, args.rounds, args.runtime)
    if not p.elf_members:
        parser.exit(2, f"{args.layer}: no ELF member, so no floor to measure against\n")
    if args.json:
        print(json.dumps(asdict(p)))
        return
    print(f"layer: {args.layer}")
    print(f"{p.elf_members} ELF members ({p.elf_mb:.0f} MB unzipped), {p.sources} sources "
          f"parsed ({p.source_mb:.1f} MB) by a cold --jobs 1 scan, which took "
          f"{p.scan_cpu:.2f} s of CPU")
    for label, t in [("floor (zipfile, every ELF member)", p.floor),
                     ("inflate: abiscan's reader, every ELF member", p.inflate),
                     ("parse: ast.parse, every source", p.parse),
                     ("compile: every parsed tree", p.compile)]:
        print(f"  {label:46s} {t:6.3f} s CPU (least of {args.rounds})")
    print(f"  {'inflate + parse + compile':46s} {p.parts:6.3f} s CPU = "
          f"{p.parts / p.floor:.2f}x the floor")
    print(f"the scan's CPU less these parts: {p.scan_cpu - p.parts:.2f} s "
          f"({(p.scan_cpu - p.parts) / p.scan_cpu:.0%} of the scan)")
    print(f"on {args.cores} cores, perfectly shared, with nothing else: "
          f"{p.parts / args.cores / p.floor:.2f}x the floor; the cold target (1.5x) leaves "
          f"{max(0.0, 1.5 * p.floor * args.cores - p.parts):.2f} s of CPU for all the rest")


if __name__ == "__main__":
    main()
