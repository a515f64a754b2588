"""Benchmark: what scanning a .whl adds by importing wheel-inspect (ABI307).

abiscan imports wheel-inspect only when a ``.whl`` input is scanned. This
measures, in fresh interpreters, the import of ``abiscan.api`` alone (what a
layer scan pays) and with wheel-inspect's modules (what the first wheel adds),
best of ``--repeat`` runs each. Run:

    python benchmarks/bench_wheel_inspect_import.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

_TIMER = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"


def best(modules: str, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        done = subprocess.run([sys.executable, "-c", _TIMER.format(modules)],
                              capture_output=True, text=True, check=True)
        runs.append(float(done.stdout))
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    base = best("abiscan.api", args.repeat)
    both = best("abiscan.api, wheel_inspect.classes, wheel_inspect.inspecting", args.repeat)
    print(f"import abiscan.api:                  {base * 1000:7.1f} ms")
    print(f"  + wheel_inspect (first .whl only): {(both - base) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
