"""Benchmark: symbol references between libraries, at N and 2N references.

Builds, with :mod:`abiscan.testing.elf_writer` (no download), a layer where
one library (``libconsumer.so``) needs N symbols from another
(``libprovider.so``, which exports exactly those N), each reference carried
by a relocation so that the dynamic linker (and abiscan's simulation of it)
looks every one up; four extension modules need ``libconsumer.so``. Every
extension's ``dlopen`` therefore binds N references against a library whose
string table grows with N too: a lookup whose cost grows with the table
makes the whole case grow with N squared.

It scans the layer at N and at 2N, side by side in one run: one scan of each
first, untimed (the first scan of a process imports the pipeline), then
``--repeat`` pairs, the two sizes alternating so that a drift of the host's
speed reaches both alike. It prints the median times of each size and the
median of the pairs' ratios; linear work gives about 2, the budget (issue 10)
is 2.2. (Timed as all of N's scans, the first importing the pipeline, then
all of 2N's, three runs in a row gave 1.44, 2.46 and 2.43: docs/benchmarks.md,
*Session 18*.) Run:

    python benchmarks/bench_crosslib.py [--symbols 16000] [--extensions 4] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

from abiscan import scan
from abiscan.testing.elf_writer import build_shared_object

_SITE = "python"


def build_layer(path: Path, symbols: int, extensions: int) -> int:
    """Write the layer zip; return the number of references the consumer makes."""
    names = [f"provider_function_number_{k}" for k in range(symbols)]
    provider = build_shared_object(exports=names, soname="libprovider.so")
    consumer = build_shared_object(
        exports=["consumer_entry"], undefined=names, needed=["libprovider.so"],
        soname="libconsumer.so", runpath="$ORIGIN", relocate=True,
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        _add(zf, f"{_SITE}/pkg/__init__.py", b"")
        _add(zf, f"{_SITE}/pkg/libs/libprovider.so", provider)
        _add(zf, f"{_SITE}/pkg/libs/libconsumer.so", consumer)
        for i in range(extensions):
            ext = build_shared_object(
                exports=[f"PyInit__ext{i}"], undefined=["consumer_entry"],
                needed=["libconsumer.so"], runpath="$ORIGIN/libs", relocate=True,
            )
            _add(zf, f"{_SITE}/pkg/_ext{i}.cpython-312-x86_64-linux-gnu.so", ext)
    return symbols


def _add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    """A member with mode 0644, as a real layer build writes it (writestr gives 0600)."""
    info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
    info.create_system = 3
    info.external_attr = 0o100644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def time_scan(layer: Path) -> tuple[float, float, int]:
    """One scan's wall and CPU time, and the number of modules predicted ok.

    The scan runs in this process (``jobs=1``), so its CPU time is this
    process's: on a machine shared with other jobs, compare that.
    """
    c0 = time.process_time()
    t0 = time.perf_counter()
    # Without the content cache: every run reads and binds everything (a
    # warm run would read the summaries instead).
    report = scan([layer], runtime="python3.12", arch="x86_64", use_cache=False, jobs=1)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return wall, cpu, sum(1 for m in report.modules if m.outcome == "ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=16000, help="N, the references")
    parser.add_argument("--extensions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5, help="pairs of timed scans")
    args = parser.parse_args()
    sizes = (args.symbols, 2 * args.symbols)
    with tempfile.TemporaryDirectory(prefix="abiscan-crosslib-") as tmp:
        layers = [Path(tmp) / f"crosslib-{n}.zip" for n in sizes]
        for layer, n in zip(layers, sizes, strict=True):
            build_layer(layer, n, args.extensions)
            time_scan(layer)  # untimed: the first scan imports the pipeline
        runs: list[list[tuple[float, float, int]]] = [[], []]
        for i in range(args.repeat):
            order = (0, 1) if i % 2 == 0 else (1, 0)
            for k in order:
                runs[k].append(time_scan(layers[k]))
    for n, done in zip(sizes, runs, strict=True):
        print(f"N = {n:6d} references, {args.extensions} extensions: "
              f"{statistics.median(r[0] for r in done) * 1000:8.1f} ms wall, "
              f"{statistics.median(r[1] for r in done) * 1000:8.1f} ms CPU "
              f"(medians of {args.repeat}); {done[-1][2]} modules ok")
    wall = statistics.median(b[0] / a[0] for a, b in zip(*runs, strict=True))
    cpu = statistics.median(b[1] / a[1] for a, b in zip(*runs, strict=True))
    print(f"ratio 2N / N (median of the {args.repeat} pairs): {wall:.2f} wall, "
          f"{cpu:.2f} CPU (budget 2.2)")


if __name__ == "__main__":
    main()
