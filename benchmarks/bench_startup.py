"""Benchmark: how much abiscan's start-up adds to the interpreter's own.

Measures, side by side in one run (median wall time of ``--repeat`` runs each):

* ``python -c pass``: the interpreter alone, the floor;
* ``python -m abiscan --help``;
* ``python -m abiscan scan one.zip``: a layer holding one extension module
  (built with :mod:`abiscan.testing.elf_writer`), with ``--no-cache``.

Each runs in a fresh temporary directory, as in a folder without a configuration
file (run in this checkout, a scan would find and parse abiscan's own
``pyproject.toml``).

and prints what each adds to the floor, in wall and CPU time (target: under
100 ms; on a shared machine, compare CPU time). Also lists the
slowest imports of a scan (``-X importtime``). With ``--instructions`` it also
counts the instructions of one run of each under valgrind (callgrind): the same
count on a busy machine as on an idle one, to compare two versions. Run:

    python benchmarks/bench_startup.py [--repeat 11] [--instructions]
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from _installed import installed_env

from abiscan.testing.elf_writer import build_shared_object


def _one_so_layer(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("python/_one.cpython-312-x86_64-linux-gnu.so", (2024, 1, 1, 0, 0, 0))
        info.create_system = 3
        info.external_attr = 0o100644 << 16
        zf.writestr(info, build_shared_object(machine="x86_64", exports=["PyInit__one"],
                                              needed=["libc.so.6"]))
    return path




def _median_ms(cmd: list[str], repeat: int, env: dict[str, str], cwd: str) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system) of the command, in ms.

    CPU time is what to compare on a shared machine: wall time includes waiting
    for a core.
    """
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                       env=env, cwd=cwd)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000


def _instructions(cmd: list[str], env: dict[str, str], cwd: str) -> float | None:
    """Millions of instructions one run of ``cmd`` executes (callgrind), or None
    without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    with tempfile.TemporaryDirectory() as out:
        run = subprocess.run([valgrind, "--tool=callgrind", f"--callgrind-out-file={out}/cg",
                              *cmd], capture_output=True, text=True, check=False, env=env, cwd=cwd)
    found = re.search(r"Collected : (\d+)", run.stderr)
    return int(found.group(1)) / 1e6 if found else None


def _slowest_imports(cmd: list[str], env: dict[str, str], cwd: str, n: int = 8) -> list[str]:
    run = subprocess.run([sys.executable, "-X", "importtime", *cmd[1:]], capture_output=True,
                         text=True, check=False, env=env, cwd=cwd)
    rows = []
    for line in run.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    return [f"{us / 1000:7.1f} ms {name}" for us, name in sorted(rows, reverse=True)[:n]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--instructions", action="store_true",
                    help="also count each command's instructions (valgrind)")
    args = ap.parse_args()
    env = installed_env()
    with tempfile.TemporaryDirectory() as tmp:
        layer = _one_so_layer(Path(tmp) / "one.zip")
        py = sys.executable
        cases = {
            "python -c pass": [py, "-c", "pass"],
            "abiscan --help": [py, "-m", "abiscan", "--help"],
            "abiscan scan one-.so layer": [py, "-m", "abiscan", "scan", str(layer), "--no-cache"],
        }
        floor: tuple[float, float] | None = None
        print(f"{'':28s} {'wall':>9s} {'cpu':>9s}   (medians of {args.repeat})")
        for label, cmd in cases.items():
            wall, cpu = _median_ms(cmd, args.repeat, env, tmp)
            extra = ""
            if floor is None:
                floor = (wall, cpu)
            else:
                extra = f"  +{wall - floor[0]:.0f} ms wall, +{cpu - floor[1]:.0f} ms cpu"
            print(f"{label:28s} {wall:6.1f} ms {cpu:6.1f} ms{extra}")
        if args.instructions:
            print("instructions (callgrind, one run each):")
            counts = {label: _instructions(cmd, env, tmp) for label, cmd in cases.items()}
            base = counts["python -c pass"]
            for label, count in counts.items():
                extra = ""
                if count is not None and base is not None and count != base:
                    extra = f"  +{count - base:.1f} M"
                shown = "no valgrind" if count is None else f"{count:.1f} M"
                print(f"  {label:28s} {shown}{extra}")
        print("slowest imports of the scan (cumulative):")
        for row in _slowest_imports(cases["abiscan scan one-.so layer"], env, tmp):
            print("  " + row)


if __name__ == "__main__":
    main()
