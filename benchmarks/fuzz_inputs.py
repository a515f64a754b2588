"""The long fuzz run: random mutations against the zip reader, the source evaluator
and target loading, with counts, the slowest case and peak RSS.

    python benchmarks/fuzz_inputs.py --executions 100000 [--seed 1] [--json out.json]

tests/unit/test_fuzz.py holds the hypothesis harnesses of the same entry points
(short run in the default tests); this script trades hypothesis's shrinking
for speed, so that 10^5 executions take minutes. Each entry point may raise
only its documented exception (``SourceError`` for the zip reader,
``TargetError`` for target loading, nothing for the evaluator); anything else,
or a case over 2 s, is printed with the seed that reproduces it and makes the
exit status 1. The ELF reader has its own harness (helper ``elf``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import resource
import sys
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable
from pathlib import Path

from abiscan.inputs.sources import InputKind, SourceError, ZipSource
from abiscan.simulate.imports.wheel_tags import supported_tags
from abiscan.simulate.python.import_graph import ImportGraph, SourceReader
from abiscan.target.profiles import TargetError, builtin_target, custom_target, load_target

_EXTREMES = [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xff\xff\x00\x00", b"\x01\x00\x00\x80"]
_SNIPPETS = [
    "import os\n", "import a.b.c as d\n", "from . import x\n", "from .. import y\n",
    "from m import *\n", "try:\n    import q\nexcept ImportError:\n    q = None\n",
    "if sys.version_info >= (3, 9):\n    import r\nelse:\n    import s\n",
    "if TYPE_CHECKING:\n    import t\n", "def f():\n    import u\n", "class C:\n    import v\n",
    "__import__('w')\n", "importlib.import_module('x.y')\n", "x = (1 +\n", "match x:\n",
    "    case 1:\n        import z\n", "async def g():\n    await h()\n", "del x\n",
    "while True:\n    import k\n    break\n", "x: int = 1\n", "with (open(p) as f, g):\n    pass\n",
    "print(f'{x!r:>{w}}')\n", "raise ImportError('no')\n", "\t\x00\n",
    "# -*- coding: latin-1 -*-\n", "\ufeffimport bom\n", "if not not not x:\n    pass\n",
    "try:\n    pass\nexcept* ValueError:\n    pass\n", "type T = int\n", "global g\n",
    "sys.meta_path.insert(0, F())\n", "__path__ = extend_path(__path__, __name__)\n",
]


def mutate(rng: random.Random, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(rng.randint(0, 8)):
        if not data:
            break
        at = rng.randrange(len(data))
        action = rng.choice(("set", "insert", "delete", "cut", "word"))
        if action == "set":
            data[at] = rng.randrange(256)
        elif action == "insert":
            data[at:at] = rng.randbytes(rng.randint(0, 16))
        elif action == "delete":
            del data[at:at + rng.randint(1, 16)]
        elif action == "cut":
            del data[at:]
        else:
            data[at:at + 4] = rng.choice(_EXTREMES)
    return bytes(data)


# -- the three entry points ------------------------------------------------------

def zip_case(rng: random.Random, work: Path) -> None:
    buf = io.BytesIO()
    method = rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                         zipfile.ZIP_LZMA])
    with zipfile.ZipFile(buf, "w", method) as zf:
        for i in range(rng.randint(0, 5)):
            info = zipfile.ZipInfo(rng.choice(["a.py", "p/b.so", "../x", "/abs", f"\x1b{i}",
                                               "d/", "\xff.txt"]) + str(i),
                                   date_time=(2024, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = rng.choice([0o100644, 0o120777, 0o040755, 0]) << 16
            info.compress_type = method
            zf.writestr(info, rng.randbytes(rng.randint(0, 300)))
    path = work / "fuzz.zip"
    path.write_bytes(mutate(rng, buf.getvalue()))
    try:
        source = ZipSource(path, InputKind.LAYER)
    except SourceError:
        return
    try:
        for entry in source.entries():
            if entry.kind == "file":
                with contextlib.suppress(SourceError):
                    source.read(entry)
    finally:
        source.close()


def source_case(rng: random.Random, work: Path) -> None:
    text = "".join(rng.choice(_SNIPPETS) for _ in range(rng.randint(0, 12)))
    if rng.random() < 0.2:
        depth = rng.randint(0, 400)
        text += "x = " + "(" * depth + "1" + ")" * depth + "\n"
    if rng.random() < 0.1:
        text += "if " + rng.choice(["not ", "a+", "-", "a."]) * rng.randint(0, 3000) + "a:\n"
    data = mutate(rng, text.encode("utf-8", "surrogatepass"))
    version = rng.choice([(3, 8), (3, 9), (3, 11), (3, 12), (3, 13)])

    def find(name: str) -> tuple[str, str | None, bool] | None:
        return ("source", "/opt/python/m/__init__.py", True) if name == "m" else None

    ImportGraph(SourceReader(lambda path: data, find), version).module("m")


_BASES = [builtin_target("python3.12").to_dict(), custom_target("3.13", "arm64").to_dict()]
_VALUES: list[object] = [None, True, 0, -1, 2**70, 1.5, "", "x", "3.12", [], ["x"], {},
                         {"libraries": ["x"]}, [[[]]], "two.thirty", "pypy", "/opt"]


def target_case(rng: random.Random, work: Path) -> None:
    data = json.loads(json.dumps(rng.choice(_BASES)))
    for _ in range(rng.randint(0, 3)):
        key = rng.choice([*sorted(data), "system", "capi"])
        if rng.random() < 0.3:
            data.pop(key, None)
        else:
            data[key] = rng.choice(_VALUES)
    raw = json.dumps(data).encode()
    if rng.random() < 0.5:
        raw = mutate(rng, raw)
    path = work / "target.json"
    path.write_bytes(raw)
    try:
        target = load_target(path)
    except TargetError:
        return
    target.inventory()
    target.capi_exports()
    supported_tags(target)


HARNESSES: dict[str, Callable[[random.Random, Path], None]] = {
    "zip reader": zip_case,
    "source evaluator": source_case,
    "target loading": target_case,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--executions", type=int, default=3000, help="in all, split evenly")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", metavar="FILE", help="also write the results here")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="abiscan-fuzz-"))
    results: dict[str, dict[str, float]] = {}
    failures = 0
    per = args.executions // len(HARNESSES)
    for h, (name, run) in enumerate(HARNESSES.items()):
        slowest, started = 0.0, time.perf_counter()
        for i in range(per):
            seed = args.seed * 10_000_000 + h * 1_000_000 + i
            t0 = time.perf_counter()
            try:
                run(random.Random(seed), work)
            except Exception:
                failures += 1
                print(f"{name}: seed {seed}:\n{traceback.format_exc()}", file=sys.stderr)
            took = time.perf_counter() - t0
            slowest = max(slowest, took)
            if took > 2.0:
                failures += 1
                print(f"{name}: seed {seed} took {took:.2f} s", file=sys.stderr)
        results[name] = {"executions": per, "max_seconds": round(slowest, 4),
                         "total_seconds": round(time.perf_counter() - started, 1)}
        print(f"{name}: {per} executions, slowest {slowest:.3f} s", flush=True)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"peak RSS {peak_mib} MiB; {failures} failures")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"harnesses": results, "peak_rss_mib": peak_mib, "failures": failures}, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
