"""abiscan.elf.model and abiscan.elf.tables against pyelftools' own object model.

The reader opens files through pyelftools with construct parsers shared per
layout, and decodes relocations in bulk; here both are compared, fact by
fact, with a plain ``ELFFile`` on real gcc-built objects, system libraries
and writer output.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection, GNUVerSymSection
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from abiscan.elf import model
from abiscan.elf.reader import ElfError, read_facts
from abiscan.testing.elf_writer import build_shared_object

GCC = shutil.which("gcc")
SYSTEM_LIBRARIES = [
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/lib/x86_64-linux-gnu/libstdc++.so.6",
    "/lib/x86_64-linux-gnu/libm.so.6",
]

SOURCE = r"""
#include <stdio.h>
#include <string.h>
#include <math.h>
extern int missing_strong(int);
extern int missing_weak(int) __attribute__((weak));
extern int shared_data;
int PyInit_m(void) {
    printf("%d %f", (int)strlen("x") + shared_data, sin(1.0));
    if (missing_weak) return missing_weak(1);
    return missing_strong(2);
}
"""


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out: dict[str, bytes] = {
        "writer": build_shared_object(
            exports=["PyInit_w", "f"], undefined=["malloc@GLIBC_2.2.5", "g"],
            weak_undefined=["h"], needed=["libc.so.6"], soname="libw.so",
            version_needs=[("libc.so.6", ["GLIBC_2.2.5"])], relocate=True,
        ),
        # Big-endian: the relocations' words are unpacked, not read in place.
        "writer-big": build_shared_object(
            machine="aarch64", byte_order="big", exports=["PyInit_w"],
            undefined=["malloc@GLIBC_2.17", "g"], weak_undefined=["h"], needed=["libc.so.6"],
            version_needs=[("libc.so.6", ["GLIBC_2.17"])], relocate=True,
        ),
    }
    if GCC is not None:
        d = tmp_path_factory.mktemp("model")
        (d / "m.c").write_text(SOURCE)
        variants = (("lazy", []), ("now", ["-Wl,-z,now"]), ("sysv", ["-Wl,--hash-style=sysv"]))
        for name, extra in variants:
            so = d / f"{name}.so"
            subprocess.run(
                [GCC, "-shared", "-fPIC", "-O1", "-o", str(so), str(d / "m.c"), "-lm", *extra],
                check=True, capture_output=True,
            )
            out[name] = so.read_bytes()
    for path in SYSTEM_LIBRARIES:
        if os.path.exists(path):
            out[path] = Path(path).read_bytes()
    return out


def reference_references(data: bytes) -> list[tuple[str, bool, str | None, str | None]]:
    """The relocations' undefined symbols, pyelftools' way: .rela.dyn then .rela.plt."""
    elf = ELFFile(io.BytesIO(data))
    dynsym = elf.get_section_by_name(".dynsym")
    assert isinstance(dynsym, SymbolTableSection)
    versym = next((s for s in elf.iter_sections() if isinstance(s, GNUVerSymSection)), None)
    versions: dict[int, tuple[str, str]] = {}
    for sec in elf.iter_sections():
        if isinstance(sec, GNUVerNeedSection):
            for need, auxes in sec.iter_versions():
                for aux in auxes:
                    versions[aux.entry["vna_other"]] = (str(need.name), str(aux.name))
    tags = {t.entry.d_tag: t.entry.d_val for t in _dynamic(elf).iter_tags()}
    tables = []
    for tag in ("DT_RELA", "DT_JMPREL"):
        if tag in tags:
            tables += [
                s for s in elf.iter_sections()
                if isinstance(s, RelocationSection) and s["sh_addr"] == tags[tag]
            ]
    out: list[tuple[str, bool, str | None, str | None]] = []
    seen: set[str] = set()
    for table in tables:
        for rel in table.iter_relocations():
            index, rtype = rel["r_info_sym"], rel["r_info_type"]
            if index == 0 or rtype == 0:
                continue
            sym = dynsym.get_symbol(index)
            bind = sym["st_info"]["bind"]
            if sym["st_shndx"] != "SHN_UNDEF" or bind == "STB_LOCAL" or sym.name in seen:
                continue
            seen.add(sym.name)
            file = version = None
            if versym is not None:
                ndx = versym.get_symbol(index)["ndx"]
                if isinstance(ndx, int) and (ndx & 0x7FFF) in versions:
                    file, version = versions[ndx & 0x7FFF]
            out.append((sym.name, bind == "STB_WEAK", version, file))
    return out


def _dynamic(elf: ELFFile) -> DynamicSection:
    dyn = next(s for s in elf.iter_sections() if isinstance(s, DynamicSection))
    assert isinstance(dyn, DynamicSection)
    return dyn


def test_references_match_pyelftools(objects: dict[str, bytes]) -> None:
    for label, data in objects.items():
        got = [(r.name, r.weak, r.version, r.version_file) for r in read_facts(data).references]
        assert got == reference_references(data), label


def test_dynamic_tags_match_pyelftools(objects: dict[str, bytes]) -> None:
    for label, data in objects.items():
        facts = read_facts(data)
        tags: dict[str, list[Any]] = {}
        for tag in _dynamic(ELFFile(io.BytesIO(data))).iter_tags():
            tags.setdefault(tag.entry.d_tag, []).append(tag)
        assert facts.needed == tuple(t.needed for t in tags.get("DT_NEEDED", [])), label
        assert facts.soname == next((t.soname for t in tags.get("DT_SONAME", [])), None), label
        assert facts.runpath == tuple(
            p for t in tags.get("DT_RUNPATH", []) for p in t.runpath.split(":")
        ), label


def test_shared_structs_parse_like_elffile(objects: dict[str, bytes]) -> None:
    """The parsers shared per layout are the ones a plain ELFFile builds for the file:
    the same header, section headers, program headers and version needs."""
    from elftools.common.utils import struct_parse

    for label, data in objects.items():
        header = model.read_header(data)
        shared = model._open(data, header)
        plain = ELFFile(io.BytesIO(data))
        assert struct_parse(shared.structs.Elf_Ehdr, shared.stream, 0) == plain.header, label
        h = plain.header
        assert [
            struct_parse(shared.structs.Elf_Shdr, shared.stream, h.e_shoff + i * h.e_shentsize)
            for i in range(h.e_shnum)
        ] == [s.header for s in plain.iter_sections()], label
        assert [
            struct_parse(shared.structs.Elf_Phdr, shared.stream, h.e_phoff + i * h.e_phentsize)
            for i in range(h.e_phnum)
        ] == [s.header for s in plain.iter_segments()], label
        assert shared.structs.Elf_Verneed.sizeof() == plain.structs.Elf_Verneed.sizeof()
        layout = model.read_layout(data)
        verneed = plain.get_section_by_name(".gnu.version_r")
        expected = [] if not isinstance(verneed, GNUVerNeedSection) else [
            need.entry["vn_file"] for need, _ in verneed.iter_versions()
        ]
        assert [n.file for n in layout.version_needs] == expected, label


def test_reading_an_elf_file_imports_no_dwarf_reader() -> None:
    """``elftools.elf.elffile`` imports pyelftools' DWARF and ARM unwind readers (some
    15 ms of start-up); the model reads through pyelftools' parsers without it."""
    code = (
        "import sys; from abiscan.elf.reader import read_facts; "
        "from abiscan.testing.elf_writer import build_shared_object; "
        "f = read_facts(build_shared_object(exports=['PyInit_x'], needed=['libc.so.6'], "
        "version_needs=[('libc.so.6', ['GLIBC_2.2.5'])], undefined=['malloc@GLIBC_2.2.5'])); "
        "print(f.needed, sorted(m for m in sys.modules if m.startswith(("
        "'elftools.dwarf', 'elftools.ehabi', 'elftools.elf.elffile'))))"
    )
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "('libc.so.6',) []"


def test_rodata_ranges_are_the_rodata_sections(objects: dict[str, bytes]) -> None:
    for label, data in objects.items():
        elf = ELFFile(io.BytesIO(data))
        expected = tuple(
            (s["sh_offset"], s["sh_size"]) for s in elf.iter_sections()
            if (s.name == ".rodata" or s.name.startswith(".rodata."))
            and s["sh_type"] != "SHT_NOBITS"
        )
        assert read_facts(data).rodata_ranges == expected, label


def test_table_counts_are_checked_before_pyelftools_walks_them() -> None:
    data = bytearray(build_shared_object(exports=["PyInit_x"], needed=["libc.so.6"]))
    data[32:40] = (len(data) - 8).to_bytes(8, "little")  # e_phoff: 8 bytes before the end
    with pytest.raises(ElfError, match="truncated: program header table"):
        read_facts(bytes(data))


def _layout_or_error(data: bytes) -> model.ElfLayout | str:
    try:
        return model.read_layout(data)
    except ElfError as exc:
        return f"ElfError: {exc}"


def test_compiled_record_parsers_read_like_construct(
    objects: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Section headers, program headers and dynamic tags are decoded a table at a
    time by pyelftools' record parsers compiled to ``struct`` formats; with them
    run record by record through construct, every layout (and every error of a
    damaged file) is the same: gcc-built, system and writer objects of both
    classes, both byte orders and several machines, with and without section
    headers, and 400 mutations of them."""
    import random

    from tests.unit.test_elf_fuzz import load_harness

    harness = load_harness()
    seeds = [*objects.values(), *harness.writer_seeds(), *harness.gcc_seeds(tmp_path)]
    for machine in ("i386", "arm", "aarch64", "ppc64", "s390", "riscv", 8, 0x9026):
        for bits, order in ((32, "big"), (64, "little"), (64, "big")):
            seeds.append(build_shared_object(
                machine=machine, bits=bits, byte_order=order, exports=["PyInit_m"],
                needed=["libc.so.6"], undefined=["f@V1"], version_needs=[("libc.so.6", ["V1"])],
                relocate=machine in ("aarch64", "x86_64"), rodata=b"x\0",
            ))
    rng = random.Random(20261127)
    samples = seeds + [harness.mutate(rng.choice(seeds), rng) for _ in range(400)]
    compiled = [_layout_or_error(d) for d in samples]
    assert sum(isinstance(r, model.ElfLayout) for r in compiled) > len(seeds)
    monkeypatch.setattr(model, "_compiled", lambda parser: None)
    assert [_layout_or_error(d) for d in samples] == compiled
