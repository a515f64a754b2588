"""Benchmark: the real big layer, against the inflate floor and ``auditwheel show``.

Builds the layer of issue 10 from four pinned wheels (CPython 3.12,
manylinux x86_64): numpy 1.26.4, pandas 2.2.2, pyarrow 16.1.0 and
scipy 1.13.1, unpacked into one ``python/``. The wheels are checked against
their sha256 and downloaded once (with ``pip download``) into the cache
directory, only when ``--download`` is given: the benchmark is opt-in.

In one run, it measures (wall and CPU time; each scan in a fresh process):

* **floor**: inflate every ELF member of the layer once, in one process;
* **abiscan cold**: ``abiscan.scan`` with an empty content cache, ``--jobs``
  workers (default: the machine's cores), and its peak RSS. The floor and the
  cold scan are measured ``--rounds`` times, one after the other (the host's
  speed drifts within minutes: docs/benchmarks.md); their rows give the medians,
  the cold row's ratios are the medians of each round's to its own floor, and a
  line lists those;
* **abiscan warm**: the same scan again, with the cache the cold scan filled:
  the result memo answers it whole (the inputs, target and options are unchanged);
* **abiscan warm, one .py changed**: a copy of the layer with one reached
  source changed (a comment appended to ``pandas/__init__.py``), with that
  cache: no memo hit, every other member's facts and programs from the cache;
* **abiscan cold with zlib's inflater**, when ``isal`` (the ``fast`` extra)
  is installed and so inflates the other scans: the cold scan again with
  ``ABISCAN_INFLATER=zlib`` (the floor is always zlib's, through ``zipfile``);
* **auditwheel show** on the same four wheels, one after the other;
* a **scaling curve**: cold scans of layers holding 1, 2 and 4 copies of the
  wheels (copy *k* has every top-level name prefixed ``cK_``);
* **what a cold scan cannot skip** (``bench_floor_parts.py``, in a process of
  its own): abiscan's inflater over the ELF members, and CPython's parse and
  compile of the sources a cold scan parses, against a floor measured beside
  them.

It prints a table with the ratios to the floor and to auditwheel, and writes
it into ``docs/benchmarks.md`` between the ``bench_real`` markers. Run:

    pip install auditwheel   # for the comparison only; not a dependency of abiscan
    python benchmarks/bench_real.py --download [--cache /work/cache/wheels] [--copies 1,2,4]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from _installed import installed_env
from bench_floor_parts import Parts, summary

from abiscan.inputs.inflaters import INFLATER_VARIABLE, inflater

WHEELS = {
    "numpy-1.26.4-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl":
        ("numpy==1.26.4", "675d61ffbfa78604709862923189bad94014bef562cc35cf61d3a07bba02a7ed"),
    "pandas-2.2.2-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl":
        ("pandas==2.2.2", "eee3a87076c0756de40b05c5e9a6069c035ba43e8dd71c379e68cab2c20f16ad"),
    "pyarrow-16.1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl":
        ("pyarrow==16.1.0", "0d32000693deff8dc5df444b032b5985a48592c0697cb6e3071a5d59888714e2"),
    "scipy-1.13.1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl":
        ("scipy==1.13.1", "de3ade0e53bc1f21358aa74ff4830235d716211d7d077e340c7349bc3542e884"),
}
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench_real:begin -->", "<!-- bench_real:end -->"


@dataclass(frozen=True)
class Run:
    wall: float  # seconds
    cpu: float  # seconds, user + system, of the process and the children it reaped
    rss_mb: float  # peak resident set of the process, or of its largest child (wait4)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_wheels(cache: Path, download: bool) -> list[Path]:
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for name, (req, digest) in WHEELS.items():
        path = cache / name
        if not path.exists():
            if not download:
                sys.exit(f"{path} is missing; run with --download to fetch the pinned wheels")
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                 "--only-binary=:all:", "--python-version", "3.12", "--platform",
                 "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
                 "-d", str(cache), req], check=True,
            )
        if _sha256(path) != digest:
            sys.exit(f"{path}: sha256 is not the pinned {digest}")
        out.append(path)
    return out


def build_layer(wheels: list[Path], copies: int, out: Path) -> Path:
    """One layer zip with ``copies`` copies of the wheels under ``python/``."""
    if out.exists():
        return out
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for k in range(1, copies + 1):
            prefix = "" if k == 1 else f"c{k}_"
            for wheel in wheels:
                with zipfile.ZipFile(wheel) as src:
                    for info in src.infolist():
                        if info.is_dir():
                            continue
                        new = zipfile.ZipInfo(f"python/{prefix}{info.filename}", info.date_time)
                        new.create_system = 3
                        new.external_attr = (info.external_attr >> 16 or 0o100644) << 16
                        zf.writestr(new, src.read(info), zipfile.ZIP_DEFLATED, 1)
    tmp.replace(out)
    return out




# The source changed in the "one .py changed" layer: one every scan reaches.
CHANGED = "python/pandas/__init__.py"


def changed_layer(layer: Path, out: Path) -> Path:
    """A copy of ``layer`` with a comment appended to :data:`CHANGED`, every other
    member as it was (name, mode, date, bytes)."""
    if out.exists():
        return out
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(layer) as src, zipfile.ZipFile(tmp, "w") as zf:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == CHANGED:
                data += b"\n# changed by bench_real.py\n"
            zf.writestr(info, data, zipfile.ZIP_DEFLATED, 1)
    tmp.replace(out)
    return out


_ENV: dict[str, str] | None = None


def _timed(cmd: list[str], extra_env: dict[str, str] | None = None) -> tuple[Run, str]:
    """Run ``cmd``; its wall time, CPU time and peak RSS (wait4: with those of the
    children it reaped, so a scan's spawned workers are counted), and its stdout."""
    global _ENV
    if _ENV is None:
        _ENV = installed_env()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**_ENV, **(extra_env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"{cmd[:3]} failed: {err.read().decode()[-2000:]}")
        text = out.read().decode()
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024), text


_FLOOR = """
import sys, zipfile
zf = zipfile.ZipFile(sys.argv[1])
elves = 0
for info in zf.infolist():
    if info.is_dir() or info.filename.endswith(".py"):
        continue
    with zf.open(info) as fh:
        if fh.read(4) == b"\\x7fELF":
            fh.read()
            elves += 1
print(elves)
"""

_SCAN = """
import hashlib, json, sys
from abiscan import scan
from abiscan.report.render import render_json
jobs = int(sys.argv[3]) if sys.argv[3] != "default" else None
report = scan([sys.argv[1]], runtime="python3.12", arch="x86_64", jobs=jobs, cache_dir=sys.argv[2])
text = render_json(report)
print(json.dumps({"modules": len(report.modules), "findings": len(report.findings),
                  "sha256": hashlib.sha256(text.encode()).hexdigest()}))
"""


def _median(runs: list[Run]) -> Run:
    """The median wall and CPU time of ``runs``, and their largest peak RSS."""
    return Run(statistics.median(r.wall for r in runs), statistics.median(r.cpu for r in runs),
               max(r.rss_mb for r in runs))


def floor(layer: Path) -> tuple[Run, int]:
    run, out = _timed([sys.executable, "-c", _FLOOR, str(layer)])
    return run, int(out.strip())


def abiscan(layer: Path, cache: Path, jobs: str,
            extra_env: dict[str, str] | None = None) -> tuple[Run, dict[str, int]]:
    run, out = _timed([sys.executable, "-c", _SCAN, str(layer), str(cache), jobs], extra_env)
    info = json.loads(out.strip().splitlines()[-1])
    return run, info


def floor_parts(layer: Path, cores: int) -> str:
    """``bench_floor_parts.py``'s summary of the layer, measured in a fresh process."""
    script = Path(__file__).with_name("bench_floor_parts.py")
    _, out = _timed([sys.executable, str(script), str(layer), "--json"])
    return summary(Parts(**json.loads(out.strip().splitlines()[-1])), cores)


def auditwheel(wheels: list[Path]) -> Run | None:
    exe = shutil.which("auditwheel") or str(Path(sys.executable).parent / "auditwheel")
    if not Path(exe).exists():
        return None
    wall = cpu = rss = 0.0
    for wheel in wheels:
        run, _ = _timed([exe, "show", str(wheel)])
        wall, cpu, rss = wall + run.wall, cpu + run.cpu, max(rss, run.rss_mb)
    return Run(wall, cpu, rss)


def _row(label: str, run: Run, base: Run | None = None,
         ratios: tuple[float, float] | None = None) -> str:
    """A table row; ``ratios`` (wall and CPU over the floor) when measured otherwise
    than as this run's over ``base`` (the cold scan: medians of each round's)."""
    if ratios is None and base is not None:
        ratios = (run.wall / base.wall, run.cpu / base.cpu)
    ratio = f"{ratios[0]:.2f}x" if ratios is not None else ""
    cpu_ratio = f"{ratios[1]:.2f}x" if ratios is not None else ""
    row = (f"| {label} | {run.wall:.2f} | {run.cpu:.2f} | {run.rss_mb:.0f} "
           f"| {ratio} | {cpu_ratio} |")
    print(row, flush=True)  # as measured: a long run shows its progress
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("/work/cache/wheels"),
                    help="where the pinned wheels (and the built layers) are kept")
    ap.add_argument("--download", action="store_true", help="download missing pinned wheels")
    ap.add_argument("--copies", default="1,2,4", help="scaling curve: copies of the wheels")
    ap.add_argument("--jobs", default="default", help="abiscan --jobs (default: cores)")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    ap.add_argument("--no-auditwheel", action="store_true", help="skip the auditwheel run")
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds of the floor and the cold scan (their medians are shown)")
    args = ap.parse_args()
    jobs_label = args.jobs
    if args.jobs == "default":
        from abiscan.parallel import default_jobs

        jobs_label = f"default ({default_jobs()})"
    wheels = fetch_wheels(args.cache, args.download)
    copies = [int(c) for c in args.copies.split(",") if c]
    layers_dir = args.cache / "abiscan-bench-layers"
    layers_dir.mkdir(exist_ok=True)
    layer = build_layer(wheels, 1, layers_dir / "real-1.zip")
    with zipfile.ZipFile(layer) as zf:
        infos = zf.infolist()
    largest = max(i.file_size for i in infos)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        floors: list[Run] = []
        colds: list[Run] = []
        digests: set[str] = set()  # of every round's cold report
        for n in range(max(1, args.rounds)):
            if n:  # each cold scan's cache is empty; the last one's is kept, for warm
                shutil.rmtree(Path(tmp) / "cache")
            base, elves = floor(layer)
            cold, info = abiscan(layer, Path(tmp) / "cache", args.jobs)
            floors.append(base)
            colds.append(cold)
            digests.add(info["sha256"])
        ratios = [c.wall / f.wall for f, c in zip(floors, colds, strict=True)]
        cpu_ratio = statistics.median(c.cpu / f.cpu for f, c in zip(floors, colds, strict=True))
        base, cold = _median(floors), _median(colds)
        warm, info_warm = abiscan(layer, Path(tmp) / "cache", args.jobs)
        edited = changed_layer(layer, layers_dir / "real-1-one-py-changed.zip")
        one, _ = abiscan(edited, Path(tmp) / "cache", args.jobs)
        single, info_single = abiscan(layer, Path(tmp) / "cache-j1", "1")
        with_zlib = None
        if inflater().name != "zlib":
            with_zlib, _ = abiscan(layer, Path(tmp) / "cache-zlib", args.jobs,
                                   {INFLATER_VARIABLE: "zlib"})
        same = digests == {info_warm["sha256"], info_single["sha256"]}
        aw = None if args.no_auditwheel else auditwheel(wheels)
        parts = floor_parts(layer, os.cpu_count() or 1)
        print(parts, flush=True)
        rows.append(_row("floor: inflate every ELF member once", base))
        rows.append(_row(f"abiscan cold, --jobs {jobs_label}", cold, base,
                         (statistics.median(ratios), cpu_ratio)))
        per_round = (f"Cold scan / floor, each of {len(ratios)} rounds against its own floor: "
                     + ", ".join(f"{r:.2f}x" for r in ratios)
                     + f" (median {statistics.median(ratios):.2f}x).")
        print(per_round, flush=True)
        rows.append(_row(
            f"abiscan warm (cache primed: a result memo hit), --jobs {jobs_label}", warm, base))
        rows.append(_row(
            f"abiscan warm, one .py changed (no memo hit), --jobs {jobs_label}", one, base))
        rows.append(_row("abiscan cold, --jobs 1", single, base))
        if with_zlib is not None:
            rows.append(_row(f"abiscan cold, --jobs {jobs_label}, zlib's inflater "
                             f"({INFLATER_VARIABLE}=zlib)", with_zlib, base))
        if aw is not None:
            rows.append(_row("auditwheel show, the four wheels", aw, base))
        curve = []
        for n in copies:
            big = build_layer(wheels, n, layers_dir / f"real-{n}.zip")
            f_run, _ = floor(big)
            c_run, _ = abiscan(big, Path(tmp) / f"cache-{n}", args.jobs)
            curve.append(f"| {n} | {big.stat().st_size / 1e6:.0f} | {f_run.wall:.2f} "
                         f"| {c_run.wall:.2f} | {c_run.cpu:.2f} | {c_run.rss_mb:.0f} "
                         f"| {c_run.wall / f_run.wall:.2f}x |")
            print(curve[-1], flush=True)
    lines = [
        f"Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: CPython "
        f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores "
        f"(load average at the end: {os.getloadavg()[0]:.1f}); abiscan's inflater: "
        f"{inflater().name} (the floor is zlib's, through zipfile).",
        f"Layer: {len(infos)} members, {sum(i.file_size for i in infos) / 1e6:.0f} MB unzipped, "
        f"{layer.stat().st_size / 1e6:.0f} MB zipped, {elves} ELF members, largest member "
        f"{largest / 1e6:.0f} MB; abiscan predicted {info['modules']} modules, "
        f"{info['findings']} findings.",
        "",
        "| what | wall s | CPU s (all its processes) | peak RSS MB | wall / floor | CPU / floor |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        per_round,
        f"Against auditwheel show: abiscan cold is {aw.wall / cold.wall:.1f}x faster, "
        f"warm {aw.wall / warm.wall:.1f}x (one .py changed: {aw.wall / one.wall:.1f}x). "
        f"auditwheel took {aw.wall / base.wall:.1f}x the floor: 15x faster than it is "
        f"{aw.wall / base.wall / 15:.2f}x the floor, where the cold target is 1.5x."
        if aw is not None else "auditwheel not installed.",
        f"JSON reports of the {len(colds)} cold scans, the warm one and --jobs 1: "
        + ("byte-identical." if same else "DIFFERENT (a bug)."),
        f"Peak RSS of the cold scan: {cold.rss_mb:.0f} MB; largest member + 100 MB = "
        f"{largest / 2**20 + 100:.0f} MB.",
        parts,
        "",
        "Scaling (cold scans, --jobs " + jobs_label + "):",
        "",
        "| copies | zip MB | floor s | abiscan wall s | abiscan CPU s | peak RSS MB "
        "| wall / floor |",
        "|---|---|---|---|---|---|---|",
        *curve,
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        doc = DOCS.read_text()
        if BEGIN in doc and END in doc:
            head, rest = doc.split(BEGIN, 1)
            doc = head + BEGIN + "\n\n" + text + "\n\n" + END + rest.split(END, 1)[1]
            DOCS.write_text(doc)


if __name__ == "__main__":
    main()
