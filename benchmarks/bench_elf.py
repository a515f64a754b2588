"""Benchmark: the ELF phase over the real big layer, the previous reader against the model.

The real big layer is the cp312 manylinux x86_64 wheels of numpy 1.26.4,
pandas 2.2.2, pyarrow 16.1.0 and scipy 1.13.1 (219 ELF members, 290 MB of
ELF). They are not downloaded by this script; fetch them once into the
cache (an opt-in download):

    pip download --only-binary=:all: --no-deps --python-version 3.12 \\
        --platform manylinux2014_x86_64 -d /work/cache/wheels \\
        numpy==1.26.4 pandas==2.2.2 pyarrow==16.1.0 scipy==1.13.1

The previous reader (abiscan's own ``struct`` parser, before the ELF model on
pyelftools) is taken from git at run time (``git show f8411de:...`` into a
temporary module), so the two are timed side by side in one run on the same
inflated bytes. The ELF phase is what a scan asks of every ELF member, each
fact once: the facts (header, dynamic tags, versions), the ``PyInit_`` names,
the exported and the undefined symbols, and the relocation references. The
script also checks that both readers give the same facts. Run:

    python benchmarks/bench_elf.py [--wheels /work/cache/wheels] [--repeat 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from abiscan.elf.reader import ElfError, read_facts

OLD_COMMIT = "f8411de"
WHEELS = ("numpy-1.26.4-", "pandas-2.2.2-", "pyarrow-16.1.0-", "scipy-1.13.1-")
_REPO = Path(__file__).resolve().parent.parent


def load_previous_reader(tmp: Path) -> tuple[ModuleType, ModuleType]:
    """The reader and references modules of OLD_COMMIT, imported from a temporary directory."""
    def show(path: str) -> str:
        return subprocess.run(
            ["git", "-C", str(_REPO), "show", f"{OLD_COMMIT}:{path}"],
            check=True, capture_output=True, text=True,
        ).stdout

    (tmp / "_old_elf_reader.py").write_text(show("abiscan/elf/reader.py"))
    refs = show("abiscan/elf/references.py").replace(
        "from abiscan.elf.reader import", "from _old_elf_reader import"
    )
    (tmp / "_old_elf_references.py").write_text(refs)
    sys.path.insert(0, str(tmp))
    modules = []
    for name in ("_old_elf_reader", "_old_elf_references"):
        spec = importlib.util.spec_from_file_location(name, tmp / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        modules.append(module)
    return modules[0], modules[1]


def elf_members(folder: Path) -> list[bytes]:
    """Every ELF member of the four wheels, inflated once."""
    out = []
    for prefix in WHEELS:
        found = sorted(folder.glob(f"{prefix}cp312-cp312-*manylinux*x86_64*.whl"))
        if not found:
            raise SystemExit(f"no {prefix}*.whl in {folder}; see this script's docstring")
        with zipfile.ZipFile(found[0]) as zf:
            for info in zf.infolist():
                if info.is_dir() or info.filename.endswith(".py"):
                    continue
                data = zf.read(info)
                if data[:4] == b"\x7fELF":
                    out.append(data)
    return out


def phase_new(data: bytes) -> tuple[Any, ...]:
    try:
        f = read_facts(data)
        return (f.needed, f.version_needs, f.version_defs, f.pyinit_names, f.exported,
                f.undefined, f.references)
    except ElfError as exc:
        return ("error", str(exc))


def make_phase_old(reader: ModuleType, refs: ModuleType) -> Callable[[bytes], tuple[Any, ...]]:
    def phase_old(data: bytes) -> tuple[Any, ...]:
        try:
            f = reader.read_facts(data)
            return (f.needed, f.version_needs, f.version_defs, f.pyinit_names, f.exported,
                    f.undefined, refs.symbol_references(data))
        except reader.ElfError as exc:
            return ("error", str(exc))
    return phase_old


def same(old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    if old[0] == "error" or new[0] == "error":
        return old[0] == new[0]
    plain = [tuple((r.name, r.weak, r.version, r.version_file) for r in t[-1]) for t in (old, new)]
    return old[:-1] == new[:-1] and plain[0] == plain[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, default=Path("/work/cache/wheels"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    members = elf_members(args.wheels)
    print(f"ELF members: {len(members)}, {sum(map(len, members)) / 1e6:.1f} MB")
    with tempfile.TemporaryDirectory(prefix="abiscan-bench-elf-") as tmp:
        phase_old = make_phase_old(*load_previous_reader(Path(tmp)))
        olds, news = [], []
        for _ in range(args.repeat):
            # Interleaved, so that a busy machine slows both alike.
            t0 = time.perf_counter()
            old_out = [phase_old(d) for d in members]
            t1 = time.perf_counter()
            new_out = [phase_new(d) for d in members]
            t2 = time.perf_counter()
            olds.append(t1 - t0)
            news.append(t2 - t1)
    differ = sum(not same(o, n) for o, n in zip(old_out, new_out, strict=True))
    o, n = statistics.median(olds), statistics.median(news)
    print(f"previous reader ({OLD_COMMIT}): {o * 1000:8.1f} ms (median of {args.repeat})")
    print(f"ELF model on pyelftools:      {n * 1000:8.1f} ms (median of {args.repeat})")
    print(f"ratio model / previous: {n / o:.2f} (budget 1.3)")
    print(f"members whose facts differ: {differ}")


if __name__ == "__main__":
    main()
