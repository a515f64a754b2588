"""Benchmark: two installed copies of abiscan, cold, in paired rounds against the floor.

On a shared or virtual machine the host's speed drifts within minutes (the
same cold scan measured 1.5x and 2.2x the floor one minute apart), so one
run of :mod:`bench_real` cannot tell two versions apart. This script runs
``--rounds`` rounds of: the inflate floor, then a cold scan (an empty
content cache, default jobs) with each interpreter given, the order of the
scans alternating between rounds; each scan's ratio is to its own round's
floor. It prints every round and the median ratio of each interpreter.

Each interpreter is one with abiscan installed (``pip install .`` of the
version to compare, in its own venv); the scans run in a temporary
directory, so they import that installed copy, compiled as pip would. Run:

    python benchmarks/bench_paired.py LAYER.zip OLD/bin/python NEW/bin/python [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _installed import installed_env
from bench_real import _FLOOR, _SCAN


def _compile(python: str, cwd: str) -> None:
    """Compile the installed copy's bytecode, as ``pip install`` does."""
    where = subprocess.check_output(
        [python, "-c", "import abiscan, os; print(os.path.dirname(abiscan.__file__))"],
        text=True, cwd=cwd).strip()
    subprocess.run([python, "-m", "compileall", "-q", where], stdout=subprocess.DEVNULL,
                   check=False)


def _wall(cmd: list[str], env: dict[str, str], cwd: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env, cwd=cwd)
    _, status, _ = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise RuntimeError(f"{cmd[:3]} failed")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("layer")
    ap.add_argument("pythons", nargs="+", help="interpreters with abiscan installed")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    env = installed_env()
    layer = os.path.abspath(args.layer)
    ratios: dict[str, list[float]] = {py: [] for py in args.pythons}
    with tempfile.TemporaryDirectory() as cwd:
        for py in args.pythons:
            _compile(py, cwd)
        for r in range(args.rounds):
            floor = _wall([sys.executable, "-c", _FLOOR, layer], env, cwd)
            for py in args.pythons if r % 2 == 0 else args.pythons[::-1]:
                with tempfile.TemporaryDirectory() as cache:
                    wall = _wall([py, "-c", _SCAN, layer, cache, "default"], env, cwd)
                ratios[py].append(wall / floor)
                print(f"round {r}: {py}: {wall:.2f} s, floor {floor:.2f} s, "
                      f"{wall / floor:.2f}x", flush=True)
    for py, got in ratios.items():
        print(f"{py}: median {statistics.median(got):.2f}x the floor "
              f"({', '.join(f'{x:.2f}' for x in got)})")


if __name__ == "__main__":
    main()
