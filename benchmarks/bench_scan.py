"""Benchmark: scan time against the floor of just reading the input.

Builds a large layer (hundreds of ELF extension modules, some with tens of
thousands of dynamic symbols, plus pure-Python packages), then measures side
by side, in one run:

* floor: list the zip and inflate every ELF member once;
* scan: ``abiscan.scan`` of the same zip for python3.12 x86_64.

It prints both times and their ratio (median of the repeats). Run:

    python benchmarks/bench_scan.py [--modules 400] [--big 20] [--symbols 30000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

from abiscan import scan
from abiscan.elf.reader import sniff_format
from abiscan.testing.elf_writer import build_shared_object


class _Zip(zipfile.ZipFile):
    """Members with the Unix mode a real layer build gives them (0644), not writestr's 0600."""

    def writestr(self, name: str | zipfile.ZipInfo, data: bytes | str, *args: object,
                 **kwargs: object) -> None:
        if isinstance(name, str):
            info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            name = info
        super().writestr(name, data)


def build_layer(path: Path, modules: int, big: int, symbols: int) -> tuple[int, int]:
    """Write the layer; return (ELF members, total unzipped bytes)."""
    total = 0
    elves = 0
    with _Zip(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(modules):
            pkg = f"python/pkg{i % 40}"
            if i < 40:
                zf.writestr(f"{pkg}/__init__.py", f"# package {i}\n" * 20)
                zf.writestr(f"{pkg}/util.py", "def f():\n    return 1\n" * 50)
            name = f"_ext{i}"
            exports = [f"PyInit_{name}"]
            if i < big:
                exports += [f"sym_{i}_{k}" for k in range(symbols)]
            tag = ".cpython-312-x86_64-linux-gnu.so" if i % 3 else ".abi3.so"
            data = build_shared_object(machine="x86_64", exports=exports,
                                       needed=["libc.so.6"])
            zf.writestr(f"{pkg}/{name}{tag}", data)
            total += len(data)
            elves += 1
            # Some libraries next to the modules, as auditwheel puts them.
            if i % 10 == 0:
                lib = build_shared_object(
                    machine="x86_64", exports=[f"lib_{i}_{k}" for k in range(200)],
                    soname=f"libdep{i}.so.1",
                )
                zf.writestr(f"python/pkg{i % 40}.libs/libdep{i}.so.1", lib)
                total += len(lib)
                elves += 1
    return elves, total


def floor(path: Path) -> int:
    """List the zip and inflate every ELF member once."""
    n = 0
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.filename.endswith(".py") or info.is_dir():
                continue
            data = zf.read(info)
            if sniff_format(data[:4]) == "elf":
                n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=400)
    parser.add_argument("--big", type=int, default=20, help="modules with many symbols")
    parser.add_argument("--symbols", type=int, default=30000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="abiscan-bench-") as tmp:
        layer = Path(tmp) / "big-layer.zip"
        elves, total = build_layer(layer, args.modules, args.big, args.symbols)
        size = layer.stat().st_size
        print(f"layer: {elves} ELF members, {total / 1e6:.1f} MB of ELF unzipped, "
              f"{size / 1e6:.1f} MB zipped; {args.big} modules with {args.symbols} symbols each")
        floors, scans = [], []
        modules = 0
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            floor(layer)
            t1 = time.perf_counter()
            report = scan([layer], runtime="python3.12", arch="x86_64")
            t2 = time.perf_counter()
            floors.append(t1 - t0)
            scans.append(t2 - t1)
            modules = len(report.modules)
        f, s = statistics.median(floors), statistics.median(scans)
        print(f"modules predicted: {modules}")
        print(f"floor (list + inflate every ELF once): {f * 1000:.1f} ms (median of {args.repeat})")
        print(f"abiscan scan:                          {s * 1000:.1f} ms (median of {args.repeat})")
        print(f"ratio scan / floor: {s / f:.2f}")


if __name__ == "__main__":
    main()
