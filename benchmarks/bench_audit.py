"""Audit throughput: stacks per minute on 1, 2 and 4 local workers, and on a Dask LocalCluster.

    python benchmarks/bench_audit.py [--stacks 40] [--modules 30] [--targets 4]

Builds ``--stacks`` synthetic layer zips in a temporary directory (each with
``--modules`` extension modules, a quarter of them tagged for another CPython,
and as many pure-Python packages), audits them on the first ``--targets``
built-in targets, and prints stacks per minute (every stack on every target)
for each executor, and for a resumed audit in which nothing changed. The Dask
row needs ``abiscan[dask]``; it runs a LocalCluster of two worker processes
with one thread each, like ``--jobs 2``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from abiscan.fleet import audit
from abiscan.target.profiles import builtin_targets
from abiscan.testing.elf_writer import build_shared_object


def _layer(path: Path, index: int, modules: int) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for m in range(modules):
            pkg = f"p{index}_{m}"
            tag = "cpython-38" if m % 4 == 0 else "cpython-312"
            so = build_shared_object(machine="x86_64", exports=["PyInit__ext"],
                                     needed=["libc.so.6"], undefined=["malloc", "free"])
            for name, data in ((f"python/{pkg}/__init__.py", b"from . import _ext\n"),
                               (f"python/{pkg}/_ext.{tag}-x86_64-linux-gnu.so", so),
                               (f"python/pure{index}_{m}/__init__.py", b"import json\n")):
                info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
                info.external_attr = 0o100644 << 16
                zf.writestr(info, data)


def _timed(**kwargs: Any) -> float:
    start = time.perf_counter()
    result = audit(**kwargs)
    assert result.scanned == len(result.records)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stacks", type=int, default=40)
    ap.add_argument("--modules", type=int, default=30)
    ap.add_argument("--targets", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="abiscan-bench-audit-") as tmp:
        root = Path(tmp)
        stacks = []
        for i in range(args.stacks):
            _layer(root / f"s{i}.zip", i, args.modules)
            stacks.append({"name": f"s{i}", "layers": [f"s{i}.zip"]})
        targets = [t.name for t in builtin_targets()][: args.targets]
        manifest = root / "audit.json"
        manifest.write_text(json.dumps({"targets": targets, "stacks": stacks}))
        print(f"{args.stacks} stacks x {len(targets)} targets, {args.modules} extension "
              f"modules and {args.modules} packages per stack")
        common: dict[str, Any] = {"manifest": manifest, "cache_dir": root / "cache"}
        for jobs in (1, 2, 4):
            _report(f"local, --jobs {jobs}", _timed(jobs=jobs, **common), args.stacks)
        # Resumed with nothing changed: every stack is digested again, no cell scanned.
        out = root / "records.jsonl"
        audit(jobs=1, output=out, **common)
        start = time.perf_counter()
        again = audit(jobs=1, resume=out, **common)
        assert again.scanned == 0
        _report("resumed, nothing changed, -j 1", time.perf_counter() - start, args.stacks)
        try:
            import distributed
        except ModuleNotFoundError:
            print("dask LocalCluster: skipped (pip install 'abiscan[dask]')")
            return
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=":0") as cluster:
            seconds = _timed(executor="dask", scheduler=cluster.scheduler_address, **common)
        _report("dask LocalCluster, 2 workers", seconds, args.stacks)


def _report(what: str, seconds: float, stacks: int) -> None:
    print(f"{what:<32} {seconds:7.2f} s  {stacks / seconds * 60:8.0f} stacks/min")


if __name__ == "__main__":
    main()
