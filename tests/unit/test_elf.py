"""abiscan.elf.reader (facts from bytes) and abiscan.testing.elf_writer (the test-object writer)."""

from __future__ import annotations

import ctypes
import io
import os
import platform
import random
import shutil
import struct
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection
from elftools.elf.sections import SymbolTableSection

import abiscan.elf.tables as reader_module
from abiscan.elf.reader import ElfError, ElfFacts, read_facts, read_header, sniff_format
from abiscan.testing.elf_writer import ET_DYN, MACHINES, build_shared_object

ALL_MACHINES = sorted(MACHINES)
GCC = shutil.which("gcc")
ON_X86_64_LINUX = platform.system() == "Linux" and platform.machine() == "x86_64"


# -- helpers -----------------------------------------------------------------


def slow_symbols(data: bytes) -> tuple[frozenset[str], tuple[str, ...], tuple[str, ...]]:
    """The three symbol lists, the slow way: pyelftools' per-symbol iteration."""
    elf = ELFFile(io.BytesIO(data))
    dynsym = elf.get_section_by_name(".dynsym")
    exported: set[str] = set()
    undefined: list[str] = []
    weak: list[str] = []
    if not isinstance(dynsym, SymbolTableSection):
        return frozenset(), (), ()
    for sym in dynsym.iter_symbols():
        if not sym.name:
            continue
        bind = sym["st_info"]["bind"]
        vis = sym["st_other"]["visibility"]
        if sym["st_shndx"] == "SHN_UNDEF":
            if bind == "STB_GLOBAL":
                undefined.append(sym.name)
            elif bind == "STB_WEAK":
                weak.append(sym.name)
        elif bind in ("STB_GLOBAL", "STB_WEAK", "STB_GNU_UNIQUE", "STB_LOOS") and vis in (
            "STV_DEFAULT",
            "STV_PROTECTED",
        ):
            exported.add(sym.name)
    return frozenset(exported), tuple(undefined), tuple(weak)


def slow_versions(data: bytes) -> tuple[tuple[tuple[str, tuple[str, ...]], ...], tuple[str, ...]]:
    elf = ELFFile(io.BytesIO(data))
    needs: list[tuple[str, tuple[str, ...]]] = []
    defs: list[str] = []
    for sec in elf.iter_sections():
        if isinstance(sec, GNUVerNeedSection):
            for verneed, auxes in sec.iter_versions():
                needs.append((str(verneed.name), tuple(str(a.name) for a in auxes)))
        elif isinstance(sec, GNUVerDefSection):
            for verdef, auxes in sec.iter_versions():
                if not verdef["vd_flags"] & 1:
                    defs.append(str(next(iter(auxes)).name))
    return tuple(needs), tuple(defs)


def strip_section_headers(data: bytes) -> bytes:
    """The same file with e_shoff, e_shnum and e_shstrndx zeroed (like sstrip)."""
    h = read_header(data)
    e = "<" if h.byte_order == "little" else ">"
    out = bytearray(data)
    if h.bits == 64:
        struct.pack_into(e + "Q", out, 40, 0)
        struct.pack_into(e + "HH", out, 60, 0, 0)
    else:
        struct.pack_into(e + "I", out, 32, 0)
        struct.pack_into(e + "HH", out, 48, 0, 0)
    return bytes(out)


def section_header_offset(data: bytes, name: str) -> int:
    """File offset of the section header called ``name``."""
    elf = ELFFile(io.BytesIO(data))
    for i, sec in enumerate(elf.iter_sections()):
        if sec.name == name:
            return int(elf["e_shoff"]) + i * int(elf["e_shentsize"])
    raise KeyError(name)


def patch(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def facts_or_error(data: bytes) -> ElfFacts | ElfError:
    """read_facts, or its ElfError; a successful read also has its lazy symbol
    facts exercised (only ElfError may escape, and what the fast lookups
    answer must agree with the full decode whenever that succeeds)."""
    try:
        facts = read_facts(data)
    except ElfError as exc:
        assert str(exc), "ElfError must carry a problem text"
        return exc
    check_lazy_symbols(data)
    return facts


def value_or_error(thunk: object) -> object:
    assert callable(thunk)
    try:
        return thunk()
    except ElfError as exc:
        assert str(exc), "ElfError must carry a problem text"
        return exc


def check_lazy_symbols(data: bytes, probes: Iterable[str] = ()) -> None:
    """The lazy lookups on fresh facts raise only ElfError and, when the full
    decode works, agree with it; ``probes`` are extra names to look up."""
    names = ["PyInit_a", "PyInit_gccmod", "a", "b", "x", "", "PyInit_", *probes]
    lazy = read_facts(data)
    answers = {name: value_or_error(lambda name=name: lazy.has_export(name)) for name in names}
    pyinit = value_or_error(lambda: lazy.pyinit_names)
    full = read_facts(data)
    exported = value_or_error(lambda: full.exported)
    value_or_error(lambda: full.undefined)
    value_or_error(lambda: full.weak_undefined)
    if isinstance(exported, frozenset):
        for name, answer in answers.items():
            assert answer == (name in exported), name
        assert pyinit == tuple(sorted(n for n in exported if n.startswith("PyInit_")))


# -- gcc-built objects ---------------------------------------------------------

C_SOURCE = r"""
#include <stdio.h>
#include <string.h>
extern int missing_strong(int);
extern int missing_weak(int) __attribute__((weak));
__attribute__((visibility("hidden"))) int hidden_fn(void) { return 1; }
__attribute__((visibility("protected"))) int protected_fn(void) { return 2; }
__attribute__((weak)) int weak_defined(void) { return 3; }
int exported_data = 7;
static int local_fn(void) { return 4; }
int PyInit_gccmod(void) {
    printf("%d", local_fn() + hidden_fn() + (int)strlen("x"));
    if (missing_weak) return missing_weak(1);
    return missing_strong(2);
}
int foo(void) { return 5; }
int bar(void) { return 6; }
"""

VERSION_SCRIPT = """
VERS_1.0 { global: foo; PyInit_gccmod; exported_data; protected_fn; weak_defined; local: *; };
VERS_2.0 { global: bar; } VERS_1.0;
"""


@pytest.fixture(scope="module")
def gcc_objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    if GCC is None:
        pytest.skip("gcc is not installed")
    d = tmp_path_factory.mktemp("gcc")
    (d / "mod.c").write_text(C_SOURCE)
    (d / "vers.map").write_text(VERSION_SCRIPT)
    out: dict[str, bytes] = {}
    for name, extra in (
        ("plain", []),
        ("versioned", [f"-Wl,--version-script={d / 'vers.map'}"]),
        (
            "sysv_hash",
            [
                "-Wl,--hash-style=sysv",
                "-Wl,-soname,libgccmod.so.1",
                "-Wl,--disable-new-dtags",
                "-Wl,-rpath,/a:/b",
            ],
        ),
        ("runpath", ["-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/lib:/opt/lib"]),
    ):
        so = d / f"{name}.so"
        subprocess.run(
            [GCC, "-shared", "-fPIC", "-O1", "-o", str(so), str(d / "mod.c"), *extra],
            check=True,
            capture_output=True,
        )
        out[name] = so.read_bytes()
    return out


# -- sniff_format ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "empty"),
        (b"\x7fELF\x02\x01\x01", "elf"),
        (b"\x7fELF", "elf"),
        (b"\x7fEL", "unknown"),
        (bytes.fromhex("feedface") + bytes(28), "mach-o"),
        (bytes.fromhex("cefaedfe") + bytes(28), "mach-o"),
        (bytes.fromhex("feedfacf") + bytes(28), "mach-o"),
        (bytes.fromhex("cffaedfe") + bytes(28), "mach-o"),
        (bytes.fromhex("cafebabe00000002") + bytes(40), "mach-o"),
        (bytes.fromhex("cafebabf00000001") + bytes(40), "mach-o"),
        # A Java class file shares the fat magic; its next word is >= 45.
        (bytes.fromhex("cafebabe00000034") + bytes(40), "unknown"),
        (bytes.fromhex("cafebabe"), "unknown"),
        (b"MZ\x90\x00" + bytes(60), "pe"),
        (b"MZ", "pe"),
        (b"#!/bin/sh\necho hi\n", "unknown"),
        (b"PK\x03\x04", "unknown"),
        (b"\x00", "unknown"),
    ],
)
def test_sniff_format(data: bytes, expected: str) -> None:
    assert sniff_format(data) == expected


# -- read_header -------------------------------------------------------------------


def test_read_header_fields_and_names() -> None:
    data = build_shared_object(bits=32, byte_order="big", machine="s390", osabi=3, abiversion=1)
    h = read_header(data)
    assert (h.ei_class, h.ei_data, h.ei_version, h.ei_osabi, h.ei_abiversion) == (1, 2, 1, 3, 1)
    assert h.ei_pad == bytes(7)
    assert (h.e_type, h.e_machine, h.e_version) == (ET_DYN, 22, 1)
    assert (h.e_phentsize, h.e_phnum) == (32, 4)
    assert h.e_shnum > 0
    assert h.bits == 32
    assert h.byte_order == "big"
    assert h.machine_name == "s390"
    assert h.class_name == "ELFCLASS32"
    assert h.type_name == "ET_DYN"
    assert h.osabi_name == "ELFOSABI_GNU"
    assert h.describe() == "ELF 32-bit MSB ET_DYN, machine s390"


def test_read_header_odd_values() -> None:
    data = bytearray(build_shared_object())
    data[4] = 0  # ELFCLASSNONE
    data[5] = 7
    struct.pack_into("<HH", data, 16, 0x1234, 9999)
    h = read_header(bytes(data))
    assert h.bits == 0
    assert h.class_name == "ELFCLASSNONE"
    assert h.byte_order == "invalid"
    assert h.machine_name == "EM_9999"
    assert h.type_name == "ET_0x1234"


@pytest.mark.parametrize("length", [0, 1, 4, 15])
def test_read_header_shorter_than_ident(length: int) -> None:
    with pytest.raises(ElfError, match="file too short"):
        read_header(build_shared_object()[:length])


@pytest.mark.parametrize(("bits", "size"), [(64, 64), (32, 52)])
def test_read_header_shorter_than_header(bits: int, size: int) -> None:
    data = build_shared_object(bits=bits, machine="x86_64" if bits == 64 else "i386")
    for n in range(16, size):
        with pytest.raises(ElfError, match=r"^file too short"):
            read_header(data[:n])
    assert read_header(data[:size]).bits == bits


@pytest.mark.parametrize(
    "data",
    [
        b"MZ" + bytes(100),
        bytes.fromhex("cffaedfe") + bytes(100),
        b"hello world, this is not an ELF file at all....",
        b"\x7fELX" + bytes(100),
    ],
)
def test_not_elf_raises(data: bytes) -> None:
    with pytest.raises(ElfError, match="not an ELF file"):
        read_header(data)
    with pytest.raises(ElfError):
        read_facts(data)


# -- facts from builder output --------------------------------------------------------


@pytest.mark.parametrize("machine", ALL_MACHINES)
@pytest.mark.parametrize("byte_order", ["little", "big"])
@pytest.mark.parametrize("bits", [32, 64])
def test_facts_from_builder(bits: int, byte_order: str, machine: str) -> None:
    exports = ["PyInit_alpha", "PyInit_beta", "helper", "ünïcode_name"]
    data = build_shared_object(
        bits=bits,
        byte_order=byte_order,
        machine=machine,
        exports=exports,
        needed=["libfoo.so.1", "libc.so.6"],
        soname="libalpha.so",
        rpath="$ORIGIN:/opt/lib",
        runpath="/var/task/lib",
        undefined=["PyLong_FromLong", "malloc"],
        weak_undefined=["__gmon_start__"],
    )
    facts = read_facts(data)
    h = facts.header
    assert (h.bits, h.byte_order, h.e_machine) == (bits, byte_order, MACHINES[machine])
    assert h.machine_name == machine
    assert h.type_name == "ET_DYN"
    assert facts.soname == "libalpha.so"
    assert facts.needed == ("libfoo.so.1", "libc.so.6")
    assert facts.rpath == ("$ORIGIN", "/opt/lib")
    assert facts.runpath == ("/var/task/lib",)
    assert facts.exported == frozenset(exports)
    assert facts.undefined == ("PyLong_FromLong", "malloc")
    assert facts.weak_undefined == ("__gmon_start__",)
    assert facts.version_needs == ()
    assert facts.version_defs == ()
    assert facts.pyinit_names == ("PyInit_alpha", "PyInit_beta")
    # The bulk decoder and pyelftools' slow path agree on every layout.
    assert slow_symbols(data) == (facts.exported, facts.undefined, facts.weak_undefined)

    # Without section headers the same facts come from PT_DYNAMIC and DT_HASH.
    stripped = read_facts(strip_section_headers(data))
    assert stripped.needed == facts.needed
    assert stripped.soname == facts.soname
    assert stripped.rpath == facts.rpath
    assert stripped.runpath == facts.runpath
    assert stripped.exported == facts.exported
    assert stripped.undefined == facts.undefined
    assert stripped.weak_undefined == facts.weak_undefined


def test_facts_of_empty_object() -> None:
    facts = read_facts(build_shared_object())
    assert facts.soname is None
    assert facts.needed == facts.rpath == facts.runpath == ()
    assert facts.exported == frozenset()
    assert facts.pyinit_names == ()


def test_builder_output_is_accepted_by_readelf() -> None:
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("readelf is not installed")
    for bits in (32, 64):
        for byte_order in ("little", "big"):
            data = build_shared_object(
                bits=bits,
                byte_order=byte_order,
                machine="aarch64",
                exports=["PyInit_x", "y"],
                needed=["libc.so.6"],
                abi_note=(0, 3, 2, 0),
            )
            r = subprocess.run(
                [readelf, "-W", "-a", "-"],
                input=data,
                capture_output=True,
                check=False,
            )
            if r.returncode != 0 and b"-" in r.stderr:
                # Older readelf cannot read stdin; use a file.
                path = Path(os.environ.get("TMPDIR", "/tmp")) / f"abiscan-readelf-{os.getpid()}"
                path.write_bytes(data)
                try:
                    r = subprocess.run(
                        [readelf, "-W", "-a", str(path)], capture_output=True, check=False
                    )
                finally:
                    path.unlink()
            assert r.returncode == 0, r.stderr
            assert b"Warning" not in r.stderr and b"Error" not in r.stderr, r.stderr
            assert b"PyInit_x" in r.stdout


@pytest.mark.skipif(not ON_X86_64_LINUX, reason="needs an x86_64 Linux host to dlopen")
def test_builder_output_loads_with_host_glibc(tmp_path: Path) -> None:
    path = tmp_path / "libbuilt.so"
    path.write_bytes(
        build_shared_object(exports=["PyInit_foo", "other"], needed=["libc.so.6"], soname="x.so")
    )
    lib = ctypes.CDLL(str(path))
    assert getattr(lib, "PyInit_foo") is not None  # noqa: B009 - the name is the point
    assert lib.other is not None
    with pytest.raises(AttributeError):
        _ = lib.not_exported


@pytest.mark.skipif(not ON_X86_64_LINUX, reason="needs an x86_64 Linux host to dlopen")
def test_big_builder_output_loads_and_looks_up(tmp_path: Path) -> None:
    names = [f"sym_{i}" for i in range(5000)]
    path = tmp_path / "libmany.so"
    path.write_bytes(build_shared_object(exports=names))
    lib = ctypes.CDLL(str(path))
    for name in (names[0], names[1234], names[-1]):
        assert getattr(lib, name) is not None


def test_builder_and_reader_are_fast_on_50000_symbols() -> None:
    # Speed is measured in benchmarks/, not here: this checks the large case is right.
    names = [f"PyInit_or_some_longer_symbol_name_{i}" for i in range(50_000)]
    data = build_shared_object(exports=names, undefined=[f"undef_{i}" for i in range(1000)])
    facts = read_facts(data)
    assert len(facts.exported) == 50_000
    assert len(facts.undefined) == 1000


def test_builder_rejects_bad_parameters() -> None:
    from abiscan.testing.elf_writer import BuildError

    with pytest.raises(BuildError):
        build_shared_object(bits=16)
    with pytest.raises(BuildError):
        build_shared_object(byte_order="middle")
    with pytest.raises(BuildError):
        build_shared_object(machine="vax")
    with pytest.raises(BuildError):
        build_shared_object(exports=["a\0b"])
    assert read_header(build_shared_object(machine=9999)).e_machine == 9999


# -- gcc objects ---------------------------------------------------------------------


def test_gcc_object_symbols_match_pyelftools(gcc_objects: dict[str, bytes]) -> None:
    for name, data in gcc_objects.items():
        facts = read_facts(data)
        assert slow_symbols(data) == (facts.exported, facts.undefined, facts.weak_undefined), name
        assert "PyInit_gccmod" in facts.exported
        assert "protected_fn" in facts.exported
        assert "weak_defined" in facts.exported
        assert "hidden_fn" not in facts.exported
        assert "local_fn" not in facts.exported
        assert "missing_strong" in facts.undefined
        assert "printf" in facts.undefined
        assert "missing_weak" in facts.weak_undefined
        assert facts.pyinit_names == ("PyInit_gccmod",)
        assert facts.header.type_name == "ET_DYN"


def test_gcc_object_dynamic_tags(gcc_objects: dict[str, bytes]) -> None:
    sysv = read_facts(gcc_objects["sysv_hash"])
    assert sysv.soname == "libgccmod.so.1"
    assert sysv.rpath == ("/a", "/b")
    assert "libc.so.6" in sysv.needed
    runpath = read_facts(gcc_objects["runpath"])
    assert runpath.runpath == ("$ORIGIN/lib", "/opt/lib")
    assert runpath.rpath == ()


def test_gcc_object_versions(gcc_objects: dict[str, bytes]) -> None:
    data = gcc_objects["versioned"]
    facts = read_facts(data)
    assert facts.version_defs == ("VERS_1.0", "VERS_2.0")
    libs = dict(facts.version_needs)
    assert "libc.so.6" in libs
    assert any(v.startswith("GLIBC_2.") for v in libs["libc.so.6"])
    assert (facts.version_needs, facts.version_defs) == slow_versions(data)
    # Version definition symbols (VERS_1.0 ...) are absolute and exported.
    assert "bar" in facts.exported
    plain = read_facts(gcc_objects["plain"])
    assert plain.version_defs == ()
    assert (plain.version_needs, plain.version_defs) == slow_versions(gcc_objects["plain"])


def test_gcc_object_without_section_headers(gcc_objects: dict[str, bytes]) -> None:
    for name in ("versioned", "sysv_hash"):
        data = gcc_objects[name]
        full = read_facts(data)
        stripped = read_facts(strip_section_headers(data))
        # .gnu.hash (gcc's default) or .hash gives the symbol count.
        assert stripped.exported == full.exported, name
        assert stripped.undefined == full.undefined, name
        assert stripped.weak_undefined == full.weak_undefined, name
        assert stripped.needed == full.needed, name
        assert stripped.soname == full.soname, name
        assert stripped.version_needs == full.version_needs, name
        assert stripped.version_defs == full.version_defs, name


@pytest.mark.parametrize(
    "path",
    [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/usr/lib64/libc.so.6",
        "/usr/lib64/libstdc++.so.6",
    ],
)
def test_system_library_matches_pyelftools(path: str) -> None:
    if not os.path.exists(path):
        pytest.skip(f"{path} is not on this host")
    data = Path(path).read_bytes()
    facts = read_facts(data)
    assert slow_symbols(data) == (facts.exported, facts.undefined, facts.weak_undefined)
    assert (facts.version_needs, facts.version_defs) == slow_versions(data)
    assert len(facts.exported) > 1000


# -- lazy symbol facts: has_export, pyinit_names ------------------------------------

STB_LOCAL, STB_GLOBAL, STB_WEAK, STB_GNU_UNIQUE = 0, 1, 2, 10
STV_DEFAULT, STV_INTERNAL, STV_HIDDEN, STV_PROTECTED = 0, 1, 2, 3
SHN_ABS = 0xFFF1


def dynsym_layout(data: bytes) -> tuple[int, int, str, int]:
    """(file offset of .dynsym, entry size, struct byte order, offset of st_info)."""
    h = read_header(data)
    elf = ELFFile(io.BytesIO(data))
    sec = elf.get_section_by_name(".dynsym")
    assert sec is not None
    e = "<" if h.byte_order == "little" else ">"
    return int(sec["sh_offset"]), int(sec["sh_entsize"]), e, 4 if h.bits == 64 else 12


def dynstr_bytes(data: bytes) -> tuple[int, bytes]:
    """(file offset, contents) of .dynstr."""
    elf = ELFFile(io.BytesIO(data))
    sec = elf.get_section_by_name(".dynstr")
    assert sec is not None
    return int(sec["sh_offset"]), sec.data()


def symbol_index(data: bytes, name: str) -> int:
    elf = ELFFile(io.BytesIO(data))
    sec = elf.get_section_by_name(".dynsym")
    assert isinstance(sec, SymbolTableSection)
    return next(i for i, sym in enumerate(sec.iter_symbols()) if sym.name == name)


def patch_symbol(
    data: bytes,
    name: str,
    *,
    st_name: int | None = None,
    bind: int | None = None,
    visibility: int | None = None,
    shndx: int | None = None,
) -> bytes:
    """``data`` with fields of the dynamic symbol called ``name`` replaced."""
    base, entsize, e, info_at = dynsym_layout(data)
    at = base + symbol_index(data, name) * entsize
    out = bytearray(data)
    if st_name is not None:
        struct.pack_into(e + "I", out, at, st_name)
    if bind is not None:
        out[at + info_at] = (bind << 4) | (out[at + info_at] & 0xF)
    if visibility is not None:
        out[at + info_at + 1] = (out[at + info_at + 1] & ~3) | visibility
    if shndx is not None:
        struct.pack_into(e + "H", out, at + info_at + 2, shndx)
    return bytes(out)


def probes_for(names: Iterable[str]) -> set[str]:
    """The names plus near misses: suffixes (tail-merged strings), prefixes, extensions."""
    # A lone surrogate cannot be encoded; U+DCFF is surrogateescape's byte 0xff.
    out = {"", "PyInit_", "PyInit", "\0", "a\0b", chr(0xD800), chr(0xDCFF)}
    for n in names:
        out |= {n, n[1:], n[3:], n[:-1], n + "x", "x" + n, n + "\0"}
    return out


@contextmanager
def searches_only() -> Iterator[None]:
    """has_export keeps searching the string table however many lookups come
    (normally it switches to a decoded set after a few), so that the search
    path itself is what a test checks."""
    saved = reader_module._FIND_LOOKUPS
    reader_module._FIND_LOOKUPS = 1 << 30
    try:
        yield
    finally:
        reader_module._FIND_LOOKUPS = saved


def assert_lazy_equals_full(data: bytes, extra: Iterable[str] = ()) -> None:
    """has_export and pyinit_names, without a full decode, agree with the full decode."""
    with searches_only():
        _assert_lazy_equals_full(data, extra)


def _assert_lazy_equals_full(data: bytes, extra: Iterable[str] = ()) -> None:
    full = read_facts(data)
    exported = full.exported
    probes = probes_for([*exported, *full.undefined, *full.weak_undefined, *extra])
    lazy = read_facts(data)
    for name in sorted(probes):
        assert lazy.has_export(name) == (name in exported), name
    expected_pyinit = tuple(sorted(n for n in exported if n.startswith("PyInit_")))
    assert lazy.pyinit_names == expected_pyinit
    # pyinit_names first, then lookups that reuse its scan of the strings.
    lazy = read_facts(data)
    assert lazy.pyinit_names == expected_pyinit
    for name in sorted(p for p in probes if p.startswith("PyInit_")):
        assert lazy.has_export(name) == (name in exported), name
    # Neither needed the whole table decoded.
    assert lazy._symbols._exported is None
    # Once decoded, the same answers come from the decoded set.
    assert lazy.exported == exported
    for name in sorted(probes):
        assert lazy.has_export(name) == (name in exported), name
    assert lazy.pyinit_names == expected_pyinit


def test_has_export_on_gcc_objects(gcc_objects: dict[str, bytes]) -> None:
    with searches_only():
        _check_has_export_on_gcc_objects(gcc_objects)


def test_lookups_switch_to_one_decoded_set(gcc_objects: dict[str, bytes]) -> None:
    """A few lookups search the strings; past _FIND_LOOKUPS the exports are
    decoded once and every later lookup is a set lookup (issue 10: no cost
    that grows with references times string-table size)."""
    data = gcc_objects["gcc-64"] if "gcc-64" in gcc_objects else next(iter(gcc_objects.values()))
    facts = read_facts(data)
    names = ["PyInit_gccmod", "missing", "foo", "nope"]
    for i in range(reader_module._FIND_LOOKUPS):
        facts.has_export(names[i % len(names)])
    assert facts._symbols._exported is None
    assert not facts.has_export("printf")
    assert facts._symbols._exported == read_facts(data).exported
    assert facts.has_export("PyInit_gccmod") and not facts.has_export("hidden_fn")


def _check_has_export_on_gcc_objects(gcc_objects: dict[str, bytes]) -> None:
    for label, data in gcc_objects.items():
        facts = read_facts(data)
        yes = ["PyInit_gccmod", "protected_fn", "weak_defined", "exported_data", "foo", "bar"]
        no = ["hidden_fn", "local_fn", "missing_strong", "missing_weak", "printf", "strlen"]
        no += ["PyInit_gccmo", "PyInit_gccmodx", "yInit_gccmod", "", "PyInit_", "nonexistent"]
        for name in yes:
            assert facts.has_export(name), (label, name)
        for name in no:
            assert not facts.has_export(name), (label, name)
        assert facts.pyinit_names == ("PyInit_gccmod",)
        assert facts._symbols._exported is None, "lookups must not decode the whole table"
        assert_lazy_equals_full(data, yes + no)
        assert_lazy_equals_full(strip_section_headers(data), yes + no)


@pytest.mark.parametrize("byte_order", ["little", "big"])
@pytest.mark.parametrize("bits", [32, 64])
def test_lazy_equals_full_on_builder_output(bits: int, byte_order: str) -> None:
    exports = ["PyInit_alpha", "PyInit_beta", "helper", "ünïcode_name", "alpha", "a"]
    data = build_shared_object(
        bits=bits,
        byte_order=byte_order,
        machine="x86_64" if bits == 64 else "i386",
        exports=exports,
        needed=["libfoo.so.1"],
        soname="PyInit_soname_not_a_symbol",
        undefined=["PyInit_undefined", "malloc", "helper"],
        weak_undefined=["__gmon_start__", "PyInit_weak"],
    )
    facts = read_facts(data)
    assert facts.has_export("PyInit_alpha")
    assert facts.has_export("ünïcode_name")
    assert facts.has_export("helper")  # defined although also referenced undefined
    assert facts.has_export("a")  # also the tail of "alpha" and "PyInit_alpha"
    assert not facts.has_export("PyInit_undefined")
    assert not facts.has_export("PyInit_weak")
    assert not facts.has_export("malloc")
    assert not facts.has_export("PyInit_soname_not_a_symbol")  # a string, no symbol
    assert not facts.has_export("libfoo.so.1")
    assert facts.pyinit_names == ("PyInit_alpha", "PyInit_beta")
    assert_lazy_equals_full(data)
    assert_lazy_equals_full(strip_section_headers(data))


@pytest.mark.parametrize("byte_order", ["little", "big"])
@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize(
    ("bind", "visibility", "shndx", "exported"),
    [
        (STB_GLOBAL, STV_DEFAULT, None, True),
        (STB_WEAK, STV_DEFAULT, None, True),
        (STB_GNU_UNIQUE, STV_DEFAULT, None, True),
        (STB_GLOBAL, STV_PROTECTED, None, True),
        (STB_GLOBAL, STV_DEFAULT, SHN_ABS, True),
        (STB_GLOBAL, STV_HIDDEN, None, False),
        (STB_GLOBAL, STV_INTERNAL, None, False),
        (STB_LOCAL, STV_DEFAULT, None, False),
        (STB_WEAK, STV_HIDDEN, None, False),
        (3, STV_DEFAULT, None, False),  # STB_NUM: not a binding anything binds to
        (STB_GLOBAL, STV_DEFAULT, 0, False),  # SHN_UNDEF: a reference
        (STB_WEAK, STV_DEFAULT, 0, False),
    ],
)
def test_has_export_by_binding_visibility_section(
    bits: int, byte_order: str, bind: int, visibility: int, shndx: int | None, exported: bool
) -> None:
    data = build_shared_object(
        bits=bits,
        byte_order=byte_order,
        machine="x86_64" if bits == 64 else "i386",
        exports=["PyInit_mod", "other"],
    )
    data = patch_symbol(data, "PyInit_mod", bind=bind, visibility=visibility, shndx=shndx)
    facts = read_facts(data)
    assert facts.has_export("PyInit_mod") is exported
    assert facts.pyinit_names == (("PyInit_mod",) if exported else ())
    assert facts.has_export("other")
    assert ("PyInit_mod" in read_facts(data).exported) is exported
    assert_lazy_equals_full(data)


@pytest.mark.parametrize("byte_order", ["little", "big"])
@pytest.mark.parametrize("bits", [32, 64])
def test_has_export_with_tail_merged_names(bits: int, byte_order: str) -> None:
    data = build_shared_object(
        bits=bits,
        byte_order=byte_order,
        machine="x86_64" if bits == 64 else "i386",
        exports=["PyInit_bar", "zzzPyInit_foo", "qux", "PyInit_foobar"],
    )
    _, strings = dynstr_bytes(data)
    long_at = strings.index(b"zzzPyInit_foo\0")
    # "PyInit_bar" is renamed "PyInit_foo" by pointing into the tail of
    # "zzzPyInit_foo", as linkers share suffixes; "qux" becomes "foo".
    data = patch_symbol(data, "PyInit_bar", st_name=long_at + 3)
    data = patch_symbol(data, "qux", st_name=long_at + 10)
    facts = read_facts(data)
    assert facts.has_export("PyInit_foo")
    assert facts.has_export("zzzPyInit_foo")
    assert facts.has_export("foo")
    assert facts.has_export("PyInit_foobar")
    assert not facts.has_export("PyInit_bar")  # the string is still there, no symbol
    assert not facts.has_export("qux")
    assert not facts.has_export("zPyInit_foo")  # a tail nothing points at
    assert not facts.has_export("oo")
    assert facts.pyinit_names == ("PyInit_foo", "PyInit_foobar")
    assert read_facts(data).exported == {"PyInit_foo", "zzzPyInit_foo", "foo", "PyInit_foobar"}
    assert_lazy_equals_full(data, ["PyInit_bar", "qux"])


def test_has_export_only_a_longer_name_or_a_tail() -> None:
    data = build_shared_object(exports=["PyInit_foobar", "xfoo"], undefined=["PyInit_foo"])
    facts = read_facts(data)
    assert not facts.has_export("PyInit_foo")  # defined only as a prefix of another
    assert not facts.has_export("foo")  # present only as the tail of "xfoo"
    assert facts.has_export("xfoo")
    assert facts.pyinit_names == ("PyInit_foobar",)


def test_symbol_with_st_name_zero_has_no_name() -> None:
    data = build_shared_object(exports=["PyInit_a", "b"])
    data = patch_symbol(data, "b", st_name=0)
    facts = read_facts(data)
    assert not facts.has_export("")
    assert not facts.has_export("b")
    assert read_facts(data).exported == {"PyInit_a"}
    assert_lazy_equals_full(data)


@pytest.mark.parametrize("byte_order", ["little", "big"])
@pytest.mark.parametrize("bits", [32, 64])
def test_lookup_when_st_name_low_bytes_collide(bits: int, byte_order: str) -> None:
    # Names of 255 characters put every st_name at 1 modulo 256, so a lookup
    # by the low byte of st_name hits every record and the exact comparison
    # of all four bytes takes over.
    names = [f"{i:0255d}" for i in range(300)]
    exports = [*names[:150], "PyInit_" + "x" * 248, *names[150:]]
    data = build_shared_object(
        bits=bits,
        byte_order=byte_order,
        machine="x86_64" if bits == 64 else "i386",
        exports=exports,
        undefined=[f"{i:0255d}u"[1:] for i in range(100)],
    )
    facts = read_facts(data)
    for name in (names[0], names[149], names[150], names[-1], exports[150]):
        assert facts.has_export(name), name
    assert not facts.has_export(f"{300:0255d}")
    assert not facts.has_export(f"{5:0255d}u"[1:])  # undefined
    assert facts.pyinit_names == (exports[150],)
    assert_lazy_equals_full(data)


@pytest.mark.parametrize("byte_order", ["little", "big"])
@pytest.mark.parametrize("bits", [32, 64])
def test_lookup_of_many_candidate_strings(bits: int, byte_order: str) -> None:
    # More PyInit_ strings (and more strings ending in "x") than the fast
    # path looks up one at a time: one pass over the name column instead.
    exports = [f"PyInit_m{i}" for i in range(40)] + [f"n{i}x" for i in range(40)] + ["x"]
    data = build_shared_object(
        bits=bits,
        byte_order=byte_order,
        machine="x86_64" if bits == 64 else "i386",
        exports=exports,
        undefined=[f"PyInit_u{i}" for i in range(20)],
    )
    data = patch_symbol(data, "PyInit_m7", visibility=STV_HIDDEN)
    facts = read_facts(data)
    assert facts.pyinit_names == tuple(sorted(f"PyInit_m{i}" for i in range(40) if i != 7))
    assert facts.has_export("x")
    assert facts.has_export("PyInit_m39")
    assert not facts.has_export("PyInit_m7")
    assert not facts.has_export("PyInit_u3")
    assert_lazy_equals_full(data)
    hidden_x = patch_symbol(data, "x", visibility=STV_HIDDEN)
    assert not read_facts(hidden_x).has_export("x")
    assert_lazy_equals_full(hidden_x)


def test_lazy_facts_of_object_without_symbols() -> None:
    for data in (build_shared_object(), build_shared_object(needed=["libc.so.6"])):
        facts = read_facts(data)
        assert not facts.has_export("anything")
        assert facts.pyinit_names == ()
        assert facts.exported == frozenset()
        assert facts.undefined == facts.weak_undefined == ()


def test_facts_made_by_hand_have_no_symbols() -> None:
    h = read_header(build_shared_object())
    facts = ElfFacts(
        header=h, soname="x", needed=(), rpath=(), runpath=(), version_needs=(), version_defs=()
    )
    assert facts.exported == frozenset()
    assert not facts.has_export("x")
    assert facts.pyinit_names == ()
    assert replace(facts, soname="y").soname == "y"


def test_facts_equality_and_hash_do_not_decode() -> None:
    data = build_shared_object(exports=["PyInit_a", "b"], needed=["libc.so.6"])
    a, b = read_facts(data), read_facts(data)
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a._symbols._exported is None and b._symbols._exported is None
    assert "PyInit_a" not in repr(a)  # the symbols are not in the repr
    other = read_facts(build_shared_object(exports=["PyInit_a", "c"], needed=["libc.so.6"]))
    assert a != other
    # Decoding does not change equality.
    _ = a.exported
    assert a == b and hash(a) == hash(b)


@pytest.mark.parametrize(
    "path",
    [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/usr/lib64/libc.so.6",
        "/usr/lib64/libstdc++.so.6",
    ],
)
def test_system_library_lazy_lookups(path: str) -> None:
    if not os.path.exists(path):
        pytest.skip(f"{path} is not on this host")
    data = Path(path).read_bytes()
    full = read_facts(data)
    rng = random.Random(7)
    everything = sorted({*full.exported, *full.undefined, *full.weak_undefined})
    sample = rng.sample(everything, min(150, len(everything)))
    lazy = read_facts(data)
    with searches_only():
        for name in sorted(probes_for(sample)):
            assert lazy.has_export(name) == (name in full.exported), name
        assert lazy.pyinit_names == ()
        assert lazy._symbols._exported is None


def test_lazy_lookups_are_fast_on_50000_symbols() -> None:
    names = [f"some_longer_symbol_name_{i}" for i in range(50_000)]
    data = build_shared_object(exports=[*names, "PyInit_big"], needed=["libc.so.6"])
    facts = read_facts(data)
    assert facts.has_export("PyInit_big")
    assert not facts.has_export("PyInit_other")
    assert facts.pyinit_names == ("PyInit_big",)
    # The lookups above did not decode the whole table (what makes them fast).
    assert facts._symbols._exported is None


# -- hostile input ---------------------------------------------------------------------


def test_every_prefix_of_a_small_object() -> None:
    data = build_shared_object(
        exports=["PyInit_a", "b"], needed=["libc.so.6"], soname="s", undefined=["u"]
    )
    full = read_facts(data)
    for n in range(len(data)):
        result = facts_or_error(data[:n])
        if isinstance(result, ElfFacts):
            # A prefix can only parse if nothing the reader used was cut off.
            assert result == full


def test_every_prefix_of_a_32bit_big_endian_object() -> None:
    data = build_shared_object(
        bits=32, byte_order="big", machine="ppc64", exports=["x"], needed=["y"]
    )
    for n in range(len(data)):
        facts_or_error(data[:n])


def test_sampled_prefixes_of_a_gcc_object(gcc_objects: dict[str, bytes]) -> None:
    data = gcc_objects["versioned"]
    for n in list(range(0, 200)) + list(range(200, len(data), 37)):
        facts_or_error(data[:n])


def test_truncated_section_header_table_message() -> None:
    data = build_shared_object(exports=["a"])
    h = read_header(data)
    cut = data[: h.e_shoff + 10]
    with pytest.raises(ElfError) as info:
        read_facts(cut)
    end = h.e_shoff + h.e_shnum * h.e_shentsize
    assert str(info.value) == (
        f"truncated: section header table ends at {end:#x} past end of file (size {len(cut):#x})"
    )


def _absurd_variants() -> list[tuple[str, bytes]]:
    base = build_shared_object(exports=["PyInit_a", "b"], needed=["libc.so.6"], soname="s")
    dynsym = section_header_offset(base, ".dynsym")
    dynamic = section_header_offset(base, ".dynamic")
    dynstr = section_header_offset(base, ".dynstr")
    return [
        ("e_shnum 0xffff", patch(base, 60, "<H", 0xFFFF)),
        ("e_shoff past end", patch(base, 40, "<Q", 1 << 40)),
        ("e_shoff 2**64-1", patch(base, 40, "<Q", (1 << 64) - 1)),
        ("e_shentsize 1", patch(base, 58, "<H", 1)),
        ("e_phnum 0xfffe", patch(base, 56, "<H", 0xFFFE)),
        ("e_phoff past end", patch(base, 32, "<Q", 1 << 50)),
        ("e_phentsize 3", patch(base, 54, "<H", 3)),
        ("dynsym sh_size huge", patch(base, dynsym + 32, "<Q", 1 << 60)),
        ("dynsym sh_offset huge", patch(base, dynsym + 24, "<Q", 1 << 62)),
        ("dynsym sh_entsize 0", patch(base, dynsym + 56, "<Q", 0)),
        ("dynsym sh_entsize 7", patch(base, dynsym + 56, "<Q", 7)),
        ("dynsym sh_link 999", patch(base, dynsym + 40, "<I", 999)),
        ("dynsym sh_link 0", patch(base, dynsym + 40, "<I", 0)),
        ("dynamic sh_size huge", patch(base, dynamic + 32, "<Q", (1 << 64) - 8)),
        ("dynamic sh_link 0", patch(base, dynamic + 40, "<I", 0)),
        ("dynstr sh_size 1", patch(base, dynstr + 32, "<Q", 1)),
        ("dynstr sh_size 0", patch(base, dynstr + 32, "<Q", 0)),
        ("dynstr sh_offset past end", patch(base, dynstr + 24, "<Q", len(base) - 2)),
    ]


@pytest.mark.parametrize(("label", "data"), _absurd_variants(), ids=lambda v: str(v)[:30])
def test_absurd_fields_give_elferror(label: str, data: bytes) -> None:
    with pytest.raises(ElfError) as info:
        read_facts(data)
    assert str(info.value)


def test_string_offset_out_of_range() -> None:
    base = build_shared_object(exports=["PyInit_a", "ok"])
    dynsym = section_header_offset(base, ".dynsym")
    (sym_off,) = struct.unpack_from("<Q", base, dynsym + 24)
    bad = patch(base, sym_off + 24, "<I", 0x7FFFFFFF)  # st_name of symbol 1
    # Symbol names are read lazily: read_facts succeeds, the full decode
    # reports the bad name, and lookups that never read it still answer.
    facts = read_facts(bad)
    assert facts.soname is None
    assert facts.has_export("ok")
    assert not facts.has_export("PyInit_a")
    assert facts.pyinit_names == ()
    with pytest.raises(ElfError, match="string offset 0x7fffffff out of range of .dynstr"):
        _ = read_facts(bad).exported
    # The undefined symbols are decoded on their own and never read that name.
    assert read_facts(bad).undefined == () and read_facts(bad).weak_undefined == ()


def test_unterminated_symbol_name_raises_lazily() -> None:
    base = build_shared_object(exports=["other", "PyInit_last"])
    dynstr = section_header_offset(base, ".dynstr")
    (size,) = struct.unpack_from("<Q", base, dynstr + 32)
    bad = patch(base, dynstr + 32, "<Q", size - 1)  # drop the last NUL
    facts = read_facts(bad)
    assert facts.has_export("other")
    # The NUL-terminated name is not in the table, so nothing matches it...
    assert not facts.has_export("PyInit_last")
    # ...but listing PyInit_ names reads the damaged one.
    with pytest.raises(ElfError, match="unterminated string at offset"):
        _ = facts.pyinit_names
    with pytest.raises(ElfError, match="unterminated string at offset"):
        _ = facts.exported


def test_version_need_chain_out_of_bounds(gcc_objects: dict[str, bytes]) -> None:
    data = gcc_objects["versioned"]
    off = section_header_offset(data, ".gnu.version_r")
    (vr_off,) = struct.unpack_from("<Q", data, off + 24)
    # An unknown entry count (sh_info 0) and a vn_next that leaves the section.
    bad = patch(data, off + 44, "<I", 0)
    bad = patch(bad, vr_off + 12, "<I", 0xFFFFFF00)
    with pytest.raises(ElfError, match="truncated: version need entry"):
        read_facts(bad)
    # A vna_name outside the string table.
    (vn_aux,) = struct.unpack_from("<I", data, vr_off + 8)
    bad = patch(data, vr_off + vn_aux + 8, "<I", 0x7FFFFFF0)
    with pytest.raises(ElfError, match="out of range of .gnu.version_r strings"):
        read_facts(bad)


def test_random_mutations_never_escape(gcc_objects: dict[str, bytes]) -> None:
    rng = random.Random(20240601)
    sources = [gcc_objects["versioned"], build_shared_object(bits=32, exports=["a", "b"])]
    for i in range(1500):
        data = bytearray(sources[i % 2])
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(data)) if rng.random() < 0.5 else rng.randrange(0, 128)
            data[pos] = rng.randrange(256)
        facts_or_error(bytes(data))


def test_non_elf_and_invalid_ident_give_elferror() -> None:
    base = bytearray(build_shared_object(exports=["a"]))
    for pos, value, text in ((4, 0, "invalid ELF class"), (5, 9, "invalid data encoding")):
        bad = bytearray(base)
        bad[pos] = value
        with pytest.raises(ElfError, match=text):
            read_facts(bytes(bad))
    for junk in (b"", b"\x7fELF", bytes(64), b"MZ" * 40):
        with pytest.raises(ElfError):
            read_facts(junk)


def test_overlapping_names_are_refused_not_quadratic() -> None:
    # One long name and thousands of symbols pointing into it, each at a
    # different place: every name would be a tail of almost the whole table.
    long_name = "L" * 200_000
    others = [f"s{i}" for i in range(20_000)]
    data = bytearray(build_shared_object(exports=[long_name, *others, "PyInit_z"]))
    base, entsize, e, _ = dynsym_layout(bytes(data))
    _, strings = dynstr_bytes(bytes(data))
    long_at = strings.index(long_name.encode())
    first = symbol_index(bytes(data), others[0])
    for k in range(len(others)):
        struct.pack_into(e + "I", data, base + (first + k) * entsize, long_at + 1 + k)
    facts = read_facts(bytes(data))
    assert facts.has_export("PyInit_z")
    assert facts.has_export("L" * 199_999)
    assert facts.pyinit_names == ("PyInit_z",)
    with pytest.raises(ElfError, match="symbol names overlap implausibly"):
        _ = facts.exported


def test_many_pyinit_strings_stay_linear() -> None:
    exports = [f"PyInit_{i}" for i in range(20_000)]
    data = build_shared_object(exports=exports)
    facts = read_facts(data)
    assert len(facts.pyinit_names) == 20_000
    assert facts.has_export("PyInit_19999")
    assert not facts.has_export("PyInit_20000")


def test_all_symbols_sharing_one_name() -> None:
    # Every record points at the same string; none is exported but the last.
    data = bytearray(build_shared_object(exports=[f"s{i}" for i in range(5000)] + ["PyInit_t"]))
    base, entsize, e, info_at = dynsym_layout(bytes(data))
    _, strings = dynstr_bytes(bytes(data))
    target = strings.index(b"PyInit_t\0")
    for k in range(1, 5001):
        struct.pack_into(e + "I", data, base + k * entsize, target)
        data[base + k * entsize + info_at + 1] = STV_HIDDEN
    facts = read_facts(bytes(data))
    assert facts.has_export("PyInit_t")
    assert facts.pyinit_names == ("PyInit_t",)
    last = base + 5001 * entsize  # the original PyInit_t record
    hidden = patch(bytes(data), last + info_at + 1, "B", STV_HIDDEN)
    assert not read_facts(hidden).has_export("PyInit_t")
    assert read_facts(hidden).pyinit_names == ()
    assert read_facts(hidden).exported == frozenset()


def test_random_symbol_mutations_lazy_equals_full() -> None:
    """Mutate only the symbol and string tables, where the lazy paths read."""
    rng = random.Random(99)
    for bits, order in ((64, "little"), (32, "big")):
        data = build_shared_object(
            bits=bits,
            byte_order=order,
            machine="x86_64" if bits == 64 else "s390",
            exports=["PyInit_a", "PyInit_ab", "a", "b", "xa", "PyInit_gccmod"],
            undefined=["PyInit_u", "u"],
            weak_undefined=["w"],
        )
        sym_base, entsize, _, _ = dynsym_layout(data)
        str_base, strings = dynstr_bytes(data)
        sym_end = sym_base + entsize * (len(data[sym_base:str_base]) // entsize)
        for _ in range(400):
            out = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                if rng.random() < 0.5:
                    pos = rng.randrange(sym_base, sym_end)
                else:
                    pos = rng.randrange(str_base, str_base + len(strings))
                out[pos] = rng.choice([0, 1, 2, 3, 0x10, 0x12, 0x22, 0xA2, rng.randrange(256)])
            result = facts_or_error(bytes(out))
            if isinstance(result, ElfFacts):
                check_lazy_symbols(bytes(out), ["PyInit_ab", "xa", "u", "w", "ab"])


def test_builder_rodata_is_a_section_in_the_read_only_segment(tmp_path: Path) -> None:
    from abiscan.simulate.python.native_imports import rodata

    strings = b"\0_cffi_backend\0pyo3_runtime.PanicException\0"
    data = build_shared_object(exports=["PyInit_m"], rodata=strings)
    section = ELFFile(io.BytesIO(data)).get_section_by_name(".rodata")
    assert section is not None and section.data() == strings
    assert strings in rodata(data)
    assert read_facts(data).has_export("PyInit_m")
