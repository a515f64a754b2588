"""Benchmark: the CPU cost of summarising every binary of a layer, in one process.

A cold scan inflates each ELF member once and decodes its summary
(:func:`abiscan.inputs.member_facts.summarise`: the loader's blocks, every
ELF fact, the read-only data of an extension module). This script does that
for every ``.so`` member of a zip, one phase at a time, and prints the CPU
seconds of each phase:

* **floor**: ``zipfile``'s one-call read of each member (what bench_real's
  floor does), the bytes dropped;
* **chunked**: ``zipfile``'s reader a megabyte at a time up to the declared
  size, as ``ZipSource`` read every member before it inflated deflated ones
  itself;
* **inflate**: :meth:`abiscan.inputs.sources.ZipSource.read` of each member,
  with the inflater a scan uses (ISA-L's when the ``fast`` extra is installed)
  and, when that is not zlib's, with zlib's too (``ABISCAN_INFLATER=zlib``):
  both must make the same bytes;
* **summary**: ``summarise`` of the inflated bytes;
* **encode**: the summary as the content cache's entry (``pack_entry``).

With ``--digests FILE`` it writes one sha256 per member of its summary's
cache entry (and the entry's decoded facts), and with ``--against FILE``
compares them to a file written before: every binary's summary must stay the
same, byte for byte. Run (the real layer, or bench_scan's synthetic one with
``--synthetic``):

    python benchmarks/bench_summary.py /work/cache/speed/layer.zip [--repeat 3]
        [--digests out.json] [--against before.json]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from abiscan.elf.reader import ElfFacts
from abiscan.inputs.content_cache import pack_entry
from abiscan.inputs.inflaters import INFLATER_VARIABLE, inflater
from abiscan.inputs.member_facts import MemberSummary, summarise
from abiscan.inputs.sources import Entry, InputKind, ZipSource


def _members(source: ZipSource) -> list[Entry]:
    return [
        e for e in source.entries()
        if e.kind == "file" and (e.name.endswith(".so") or ".so." in e.name)
    ]


def _cpu(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def _floor(path: Path, names: list[str]) -> None:
    with zipfile.ZipFile(path) as zf:
        for name in names:
            with zf.open(name) as fh:
                fh.read()


def _chunked(path: Path, names: list[str]) -> None:
    with zipfile.ZipFile(path) as zf:
        for name in names:
            out = io.BytesIO()
            left = zf.getinfo(name).file_size
            with zf.open(name) as member:
                while left > 0:
                    chunk = member.read(min(1 << 20, left))
                    if not chunk:
                        break
                    out.write(chunk)
                    left -= len(chunk)
                member.read(1)
            out.getvalue()


def _read_all(source: ZipSource, members: list[Entry], force_zlib: bool = False) -> str:
    """Every member read through ``source``, hashed (with zlib's inflater if asked)."""
    before = os.environ.get(INFLATER_VARIABLE)
    if force_zlib:
        os.environ[INFLATER_VARIABLE] = "zlib"
    try:
        h = hashlib.sha256()
        for e in members:
            h.update(source.read(e))
        return h.hexdigest()
    finally:
        if before is None:
            os.environ.pop(INFLATER_VARIABLE, None)
        else:
            os.environ[INFLATER_VARIABLE] = before


def _digest(summary: MemberSummary | None) -> str:
    """The summary's cache entry and its decoded facts, hashed."""
    if summary is None:
        return "none"
    h = hashlib.sha256(pack_entry("k", summary))
    if summary.elf is not None:
        facts = ElfFacts.from_summary(summary.elf)
        h.update(repr((facts, sorted(facts.exported), facts.undefined, facts.weak_undefined,
                       facts.pyinit_names, facts.references)).encode())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("zip", nargs="?", type=Path, default=Path("/work/cache/speed/layer.zip"))
    ap.add_argument("--synthetic", action="store_true",
                    help="bench_scan's synthetic layer instead of ZIP")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--digests", type=Path)
    ap.add_argument("--against", type=Path)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.zip
        if args.synthetic:
            sys.path.insert(0, str(Path(__file__).parent))
            from bench_scan import build_layer

            path = Path(tmp) / "synthetic.zip"
            build_layer(path, 400, 20, 30000)
        return _run(path, args)


def _run(path: Path, args: argparse.Namespace) -> int:
    source = ZipSource(path, InputKind.LAYER)
    members = _members(source)
    total = sum(e.size for e in members)
    print(f"{len(members)} binaries, {total / 1e6:.1f} MB inflated", flush=True)
    names = [e.raw_name or e.path for e in members]
    # Interleaved: the machine's load changes from one minute to the next.
    floor = chunked = inflate = with_zlib = float("inf")
    other = inflater().name != "zlib"
    for _ in range(args.repeat):
        floor = min(floor, _cpu(lambda: _floor(path, names), 1))
        chunked = min(chunked, _cpu(lambda: _chunked(path, names), 1))
        inflate = min(inflate, _cpu(lambda: _read_all(source, members), 1))
        if other:
            with_zlib = min(with_zlib, _cpu(lambda: _read_all(source, members, True), 1))
    print(f"floor (zipfile read): {floor:.2f} s CPU", flush=True)
    print(f"chunked (zipfile, 1 MB reads): {chunked:.2f} s CPU", flush=True)
    print(f"inflate (ZipSource.read, {inflater().name}): {inflate:.2f} s CPU", flush=True)
    if other:
        same = _read_all(source, members) == _read_all(source, members, True)
        print(f"inflate (ZipSource.read, zlib): {with_zlib:.2f} s CPU; the same bytes: {same}",
              flush=True)
    summaries: dict[str, MemberSummary | None] = {}

    def summarise_all() -> None:
        for e in members:
            summaries[e.path] = summarise(source.read(e))

    both = _cpu(summarise_all, args.repeat)
    print(f"summary (inflate + summarise): {both:.2f} s CPU, "
          f"summarise alone ~{both - inflate:.2f} s", flush=True)
    encode = _cpu(lambda: [pack_entry("k", s) for s in summaries.values() if s], args.repeat)
    print(f"encode (pack_entry): {encode:.2f} s CPU", flush=True)
    digests = {name: _digest(s) for name, s in sorted(summaries.items())}
    if args.digests:
        args.digests.write_text(json.dumps(digests, indent=1) + "\n")
    if args.against:
        before = json.loads(args.against.read_text())
        changed = sorted(n for n in before.keys() | digests.keys()
                         if before.get(n) != digests.get(n))
        print(f"against {args.against}: {len(changed)} of {len(digests)} summaries differ")
        for name in changed[:20]:
            print(f"  {name}")
        return 1 if changed else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
