"""Benchmark: a pyo3-marked extension full of long dotted strings (issue 11, shape 5).

Builds a layer whose ``pkg/_rs.abi3.so`` carries 8,000 random 200-character
``pkg.…`` strings in ``.rodata`` (1.6 MB), imported by ``pkg/__init__.py``,
and scans it for python3.12 x86_64. Prints the scan time and the peak RSS of
the process. Before the bounded scan: 20-50 s and 0.2-2.9 GB; after: about
1 s and under 50 MB. Run:

    python benchmarks/bench_native_strings.py [--strings 8000] [--length 200]
"""

from __future__ import annotations

import argparse
import random
import resource
import string
import tempfile
import time
import zipfile
from pathlib import Path

from abiscan import scan
from abiscan.testing.elf_writer import build_shared_object


def _dotted(rnd: random.Random, length: int) -> bytes:
    out = "pkg"
    while len(out) < length:
        out += "." + rnd.choice(string.ascii_lowercase) + "".join(
            rnd.choice(string.ascii_letters + "_") for _ in range(rnd.randint(3, 40)))
    return out[:length].encode()


def _put(z: zipfile.ZipFile, name: str, data: bytes | str) -> None:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o100644 << 16
    info.create_system = 3
    z.writestr(info, data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strings", type=int, default=8000)
    parser.add_argument("--length", type=int, default=200)
    args = parser.parse_args()
    rnd = random.Random(5)
    rodata = b"pyo3_runtime.PanicException\x00" + b"\x00".join(
        _dotted(rnd, args.length) for _ in range(args.strings))
    so = build_shared_object(exports=["PyInit__rs"], undefined=["PyImport_ImportModule"],
                             rodata=rodata)
    with tempfile.TemporaryDirectory() as tmp:
        layer = Path(tmp) / "layer.zip"
        with zipfile.ZipFile(layer, "w") as z:
            _put(z, "python/pkg/__init__.py", "from . import _rs\n")
            _put(z, "python/pkg/_rs.abi3.so", so)
            for i in range(30):
                _put(z, f"python/pkg/m{i}.py", "")
        start = time.perf_counter()
        report = scan([layer], runtime="python3.12", arch="x86_64")
        took = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    outcome = report.module("pkg")
    print(f"extension {len(so) / 1e6:.1f} MB, {args.strings} strings of {args.length} chars: "
          f"scan {took:.2f} s, peak RSS {peak:.0f} MB, pkg "
          f"{outcome.outcome if outcome else 'not predicted'}")


if __name__ == "__main__":
    main()
