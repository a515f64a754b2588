"""Fuzz the ELF reader: mutated real objects must give facts or ElfError, nothing else.

Seeds are real gcc-built shared objects (compiled here, if gcc is installed:
plain, versioned, SysV hash, ``-z now``, without section headers) and
:mod:`abiscan.testing.elf_writer` objects (32/64-bit, both byte orders,
relocations, version needs and definitions, no section headers). Each
iteration mutates one seed (byte flips, interesting words written into the
header, program headers, section headers or dynamic tags, truncation, a chunk
copied elsewhere) and asks the reader for every fact a scan uses: the facts,
``PyInit_`` names, exported and undefined symbols, repeated export lookups
(both the string-search and the decoded-set path), the relocation
references and the read-only data. Anything but :class:`ElfError` is a
failure. It reports the count, the longest single file and the peak RSS.

The long run (10^5 files, a few minutes on 2 cores), one command:

    python benchmarks/fuzz_elf.py --files 100000 [--seed 1]

``tests/unit/test_elf_fuzz.py`` runs the same harness for a few seconds.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import struct
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from abiscan.elf.reader import ElfError, read_facts
from abiscan.testing.elf_writer import build_shared_object

__all__ = ["FuzzResult", "fuzz", "gcc_seeds", "writer_seeds"]

C_SOURCE = r"""
#include <stdio.h>
#include <string.h>
extern int missing_strong(int);
extern int missing_weak(int) __attribute__((weak));
int exported_data = 7;
int PyInit_fuzz(void) {
    printf("%d", (int)strlen("x") + exported_data);
    if (missing_weak) return missing_weak(1);
    return missing_strong(2);
}
int foo(void) { return 5; }
"""
VERSION_SCRIPT = "V_1 { global: foo; }; V_2 { global: PyInit_fuzz; local: *; };\n"
# Values that make counts, offsets and sizes interesting.
INTERESTING = (0, 1, 2, 7, 8, 16, 24, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000,
               0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)


class FuzzResult:
    """What a run did: files, the slowest file (wall and CPU time), failures (text of each)."""

    def __init__(self) -> None:
        self.files = 0
        self.elf_errors = 0
        self.max_seconds = 0.0
        # CPU time is what the file costs; wall time also counts a busy machine.
        self.max_cpu_seconds = 0.0
        self.slowest = -1  # index of the file with the most CPU time
        self.failures: list[str] = []


def writer_seeds() -> list[bytes]:
    """Synthetic objects covering both classes and byte orders, versions, relocations."""
    out = []
    for bits in (32, 64):
        for order in ("little", "big"):
            out.append(build_shared_object(
                bits=bits, byte_order=order, exports=["PyInit_a", "alpha", "beta@V_1"],
                undefined=["malloc@GLIBC_2.2.5", "gamma"], weak_undefined=["delta"],
                needed=["libc.so.6", "libm.so.6"], soname="liba.so", runpath="$ORIGIN",
                version_defs=["V_1"], version_needs=[("libc.so.6", ["GLIBC_2.2.5"])],
                rodata=b"pkg.module\0other\0",
            ))
    out.append(build_shared_object(
        exports=["PyInit_r"], undefined=[f"u{i}" for i in range(40)], relocate=True,
        needed=["libx.so"],
    ))
    return out + [strip_section_headers(d) for d in out]


def gcc_seeds(workdir: Path) -> list[bytes]:
    """Real gcc-built objects (none when gcc is missing)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return []
    (workdir / "f.c").write_text(C_SOURCE)
    (workdir / "v.map").write_text(VERSION_SCRIPT)
    out = []
    for name, extra in (
        ("plain", []),
        ("versioned", [f"-Wl,--version-script={workdir / 'v.map'}"]),
        ("sysv", ["-Wl,--hash-style=sysv", "-Wl,-soname,libf.so.1", "-Wl,-rpath,/a:/b"]),
        ("now", ["-Wl,-z,now", "-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN"]),
    ):
        so = workdir / f"{name}.so"
        subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-o", str(so), str(workdir / "f.c"),
                        *extra], check=True, capture_output=True)
        out.append(so.read_bytes())
    return out + [strip_section_headers(d) for d in out]


def strip_section_headers(data: bytes) -> bytes:
    """The same file with e_shoff, e_shnum and e_shstrndx zeroed (like sstrip)."""
    out = bytearray(data)
    e = "<" if data[5] == 1 else ">"
    if data[4] == 2:
        struct.pack_into(e + "Q", out, 40, 0)
        struct.pack_into(e + "HH", out, 60, 0, 0)
    else:
        struct.pack_into(e + "I", out, 32, 0)
        struct.pack_into(e + "HH", out, 48, 0, 0)
    return bytes(out)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to eight mutations, biased toward the places tables are described."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        kind = rng.random()
        if not out:
            break
        if kind < 0.35:
            # A byte anywhere, or in the ELF and program headers.
            span = len(out) if rng.random() < 0.5 else min(256, len(out))
            pos = rng.randrange(span)
            out[pos] = rng.randrange(256)
        elif kind < 0.75:
            # An interesting word at an aligned position (counts, offsets, tags).
            width = rng.choice((2, 4, 8))
            limit = max(1, len(out) - width)
            pos = rng.randrange(0, limit) & ~(width - 1)
            value = rng.choice((*INTERESTING, len(out), len(out) - 8, rng.randrange(len(out) + 1)))
            out[pos : pos + width] = (value & ((1 << 8 * width) - 1)).to_bytes(
                width, "little" if data[5] != 2 else "big"
            )
        elif kind < 0.85:
            del out[rng.randrange(len(out)):]  # truncate
        else:
            a, b = rng.randrange(len(out)), rng.randrange(len(out))
            n = rng.randint(1, 64)
            out[b : b + n] = out[a : a + n]  # a chunk copied elsewhere
    return bytes(out)


def exercise(data: bytes) -> None:
    """Every fact a scan asks of a file; raises whatever the reader raises."""
    facts = read_facts(data)
    _ = (facts.needed, facts.soname, facts.version_needs, facts.version_defs,
         facts.rodata_ranges)
    for probe in ("PyInit_fuzz", "PyInit_a", "foo", "missing", "a\\xffb"):
        facts.has_export(probe)
    _ = facts.pyinit_names
    for probe in ("alpha", "beta", "gamma", "PyInit_r", "x", "y"):
        facts.has_export(probe)  # past the first few lookups: the decoded set
    _ = (facts.exported, facts.undefined, facts.weak_undefined, facts.references)


def fuzz(seeds: list[bytes], files: int, seed: int,
         progress: Callable[[FuzzResult], None] | None = None,
         only: int | None = None) -> FuzzResult:
    """Mutate and exercise ``files`` files; ``only`` replays just the file of that index."""
    rng = random.Random(seed)
    result = FuzzResult()
    for i in range(files):
        data = mutate(seeds[i % len(seeds)], rng)
        if only is not None and i != only:
            continue
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            exercise(data)
        except ElfError:
            result.elf_errors += 1
        except Exception:  # the point is to catch anything else
            result.failures.append(f"{data.hex()}\n{traceback.format_exc()}")
        cpu = time.process_time() - c0
        result.max_seconds = max(result.max_seconds, time.perf_counter() - t0)
        if cpu > result.max_cpu_seconds:
            result.max_cpu_seconds, result.slowest = cpu, i
        result.files += 1
        if progress is not None and result.files % 10_000 == 0:
            progress(result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", type=int, help="replay only the file of this index")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="abiscan-fuzz-") as tmp:
        seeds = gcc_seeds(Path(tmp)) + writer_seeds()
    t0 = time.perf_counter()

    def progress(r: FuzzResult) -> None:
        print(f"  {r.files} files, {len(r.failures)} failures", flush=True)

    result = fuzz(seeds, args.files, args.seed, progress, args.only)
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"seeds: {len(seeds)}; files: {result.files}; ElfError: {result.elf_errors}; "
          f"facts read: {result.files - result.elf_errors - len(result.failures)}")
    print(f"other exceptions: {len(result.failures)}")
    print(f"total {elapsed:.1f} s; longest file {result.max_seconds * 1000:.1f} ms wall, "
          f"{result.max_cpu_seconds * 1000:.1f} ms CPU (file {result.slowest}); "
          f"peak RSS {peak:.0f} MB")
    for failure in result.failures[:3]:
        print(failure)
    if result.failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
