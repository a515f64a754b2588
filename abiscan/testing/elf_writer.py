"""A small writer of ELF shared objects, for tests, benchmarks and offline demos.

abiscan never executes what it scans, so its tests need ELF files whose every
field is chosen on purpose: a 32-bit object, a big-endian one, one for another
machine, one with 50,000 exported symbols, one with a bad OS ABI byte. Real
toolchains for all of those are rarely installed; this module writes them
directly.

The output is a real, minimal ET_DYN object that glibc's dynamic linker maps
(on a matching host): ELF header, program headers (a read/execute PT_LOAD for
the headers, tables and code, a read/write PT_LOAD for ``.dynamic``,
PT_DYNAMIC, PT_GNU_STACK and optionally PT_NOTE), ``.hash`` (SysV, which
glibc's symbol lookup understands), ``.dynsym``, ``.dynstr``, ``.text`` with a
return stub per exported function, ``.dynamic`` and section headers with
``.shstrtab``. There are no relocations, so nothing needs the stubs to be
correct code; they exist so that each symbol has its own address.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from abiscan.errors import BuildError as BuildError  # re-exported (its old home)

__all__ = [
    "ET_DYN",
    "ET_EXEC",
    "ET_REL",
    "MACHINES",
    "BuildError",
    "build_shared_object",
    "machine_number",
    "sysv_hash",
]

ET_REL = 1
ET_EXEC = 2
ET_DYN = 3

MACHINES: dict[str, int] = {
    "i386": 3,
    "s390": 22,
    "ppc64": 21,
    "arm": 40,
    "x86_64": 62,
    "aarch64": 183,
    "riscv": 243,
}
_MACHINE_ALIASES = {
    "i686": "i386",
    "x86": "i386",
    "amd64": "x86_64",
    "arm64": "aarch64",
    "armv7l": "arm",
    "ppc64le": "ppc64",
    "s390x": "s390",
    "riscv64": "riscv",
}

_PT_LOAD = 1
_PT_DYNAMIC = 2
_PT_NOTE = 4
_PT_GNU_STACK = 0x6474E551

_SHT_PROGBITS = 1
_SHT_STRTAB = 3
_SHT_HASH = 5
_SHT_DYNAMIC = 6
_SHT_NOTE = 7
_SHT_DYNSYM = 11

_SHF_WRITE = 1
_SHF_ALLOC = 2
_SHF_EXECINSTR = 4

_DT_NULL = 0
_DT_NEEDED = 1
_DT_HASH = 4
_DT_STRTAB = 5
_DT_SYMTAB = 6
_DT_STRSZ = 10
_DT_SYMENT = 11
_DT_SONAME = 14
_DT_RPATH = 15
_DT_RUNPATH = 29

_STB_GLOBAL = 1
_STB_WEAK = 2
_STT_NOTYPE = 0
_STT_FUNC = 2

# 64 KiB is a multiple of every page size Linux uses on the supported
# machines (4 KiB, 16 KiB, 64 KiB), so glibc's "alignment not page-aligned"
# check passes everywhere.
_SEGMENT_ALIGN = 0x10000

# One return instruction per exported function, padded to 4 bytes.
_RET_STUBS: dict[tuple[int, str], bytes] = {
    (62, "little"): b"\xc3\x90\x90\x90",
    (3, "little"): b"\xc3\x90\x90\x90",
    (183, "little"): b"\xc0\x03\x5f\xd6",
    (183, "big"): b"\xd6\x5f\x03\xc0",
    (243, "little"): b"\x67\x80\x00\x00",  # jalr x0, 0(ra)
}


def machine_number(machine: int | str) -> int:
    """The e_machine value for a machine name (or pass an int through)."""
    if isinstance(machine, int):
        if not 0 <= machine <= 0xFFFF:
            raise BuildError(f"e_machine out of range: {machine}")
        return machine
    key = machine.lower()
    key = _MACHINE_ALIASES.get(key, key)
    try:
        return MACHINES[key]
    except KeyError:
        raise BuildError(f"unknown machine name: {machine!r}") from None


def sysv_hash(name: bytes) -> int:
    """The SysV ELF hash (``elf_hash`` in the gABI) of a symbol name."""
    h = 0
    for c in name:
        h = ((h << 4) + c) & 0xFFFFFFFF
        g = h & 0xF0000000
        if g:
            # Folding the top nibble down and clearing it in one step: the two
            # masks do not overlap, so xor does both.
            h ^= g | (g >> 24)
    return h


class _StrTab:
    """A string table that stores each distinct string once."""

    def __init__(self) -> None:
        self._parts: list[bytes] = [b"\0"]
        self._size = 1
        self._index: dict[bytes, int] = {b"": 0}

    def add(self, s: str | bytes) -> int:
        b = s.encode() if isinstance(s, str) else s
        if b"\0" in b:
            raise BuildError(f"string contains a NUL byte: {b!r}")
        off = self._index.get(b)
        if off is None:
            off = self._size
            self._index[b] = off
            self._parts.append(b + b"\0")
            self._size += len(b) + 1
        return off

    def data(self) -> bytes:
        return b"".join(self._parts)


def _align(n: int, a: int) -> int:
    return (n + a - 1) & -a


@dataclass(frozen=True)
class _Layout:
    bits: int
    e: str  # struct byte-order prefix

    @property
    def ehdr_size(self) -> int:
        return 64 if self.bits == 64 else 52

    @property
    def phdr_size(self) -> int:
        return 56 if self.bits == 64 else 32

    @property
    def shdr_size(self) -> int:
        return 64 if self.bits == 64 else 40

    @property
    def sym_size(self) -> int:
        return 24 if self.bits == 64 else 16

    @property
    def dyn_size(self) -> int:
        return 16 if self.bits == 64 else 8

    @property
    def word(self) -> int:
        return 8 if self.bits == 64 else 4

    def phdr(
        self, p_type: int, flags: int, offset: int, vaddr: int, filesz: int, memsz: int, align: int
    ) -> bytes:
        if self.bits == 64:
            return struct.pack(
                self.e + "IIQQQQQQ", p_type, flags, offset, vaddr, vaddr, filesz, memsz, align
            )
        return struct.pack(
            self.e + "IIIIIIII", p_type, offset, vaddr, vaddr, filesz, memsz, flags, align
        )

    def shdr(
        self,
        name: int,
        sh_type: int,
        flags: int,
        addr: int,
        offset: int,
        size: int,
        link: int,
        info: int,
        align: int,
        entsize: int,
    ) -> bytes:
        fmt = "IIQQQQIIQQ" if self.bits == 64 else "IIIIIIIIII"
        return struct.pack(
            self.e + fmt, name, sh_type, flags, addr, offset, size, link, info, align, entsize
        )

    def dyn(self, entries: Sequence[tuple[int, int]]) -> bytes:
        fmt = self.e + ("qQ" if self.bits == 64 else "iI")
        return b"".join(struct.pack(fmt, t, v) for t, v in entries)


_SHT_RELA = 4
_SHT_GNU_VERDEF = 0x6FFFFFFD
_SHT_GNU_VERNEED = 0x6FFFFFFE
_SHT_GNU_VERSYM = 0x6FFFFFFF
_DT_RELA = 7
_DT_RELASZ = 8
_DT_RELAENT = 9
_DT_VERSYM = 0x6FFFFFF0
_DT_VERDEF = 0x6FFFFFFC
_DT_VERDEFNUM = 0x6FFFFFFD
_DT_VERNEED = 0x6FFFFFFE
_DT_VERNEEDNUM = 0x6FFFFFFF
_VER_FLG_BASE = 1
# R_X86_64_GLOB_DAT and R_AARCH64_GLOB_DAT: "the address of this symbol".
_GLOB_DAT = {62: 6, 183: 1025}


def _split_version(name: str) -> tuple[str, str | None]:
    """``"foo@V"`` -> ("foo", "V"); a plain name has no version."""
    bare, sep, version = name.partition("@")
    return (bare, version) if sep and version else (name, None)


class _Versioning:
    """The ``.gnu.version*`` sections of one object: indices, bytes, tags, headers."""

    def __init__(
        self,
        e: str,
        dynstr: _StrTab,
        soname: str | None,
        defs: Sequence[str],
        needs: Sequence[tuple[str, Sequence[str]]],
        sym_versions: Sequence[str | None],
        sym_kinds: Sequence[tuple[int, int]],
    ) -> None:
        self.e = e
        self.enabled = bool(defs or needs)
        self.defs = list(defs)
        self.needs = [(lib, list(vs)) for lib, vs in needs]
        # Index 1 is the base definition ("global"); definitions then needs.
        self.def_index = {v: i + 2 for i, v in enumerate(self.defs)}
        self.need_index: dict[str, int] = {}
        nxt = len(self.defs) + 2
        for _, versions in self.needs:
            for v in versions:
                self.need_index.setdefault(v, nxt)
                nxt += 1
        self.base_name = dynstr.add(soname or "base") if self.defs else 0
        self.def_names = [dynstr.add(v) for v in self.defs]
        self.need_files = [dynstr.add(lib) for lib, _ in self.needs]
        self.need_names = [[dynstr.add(v) for v in vs] for _, vs in self.needs]
        self.versym: list[int] = []
        for ver, (_, defined) in zip(sym_versions, sym_kinds, strict=True):
            if not self.versym:
                self.versym.append(0)  # the null symbol is local
                continue
            table = self.def_index if defined else self.need_index
            if ver is not None and ver not in table:
                raise BuildError(f"symbol version {ver!r} is not among the versions given")
            self.versym.append(table[ver] if ver is not None else 1)
        if not self.enabled and any(v is not None for v in sym_versions):
            raise BuildError("a symbol has a version but no version_defs/version_needs are given")

    def section_names(self) -> list[str]:
        if not self.enabled:
            return []
        out = [".gnu.version"]
        if self.defs:
            out.append(".gnu.version_d")
        if self.needs:
            out.append(".gnu.version_r")
        return out

    def layout(self, start: int) -> list[tuple[str, int, bytes]]:
        """(section, file offset, bytes) for each section, from ``start`` on."""
        if not self.enabled:
            return []
        e = self.e
        blobs = [(".gnu.version", struct.pack(f"{e}{len(self.versym)}H", *self.versym))]
        if self.defs:
            names = [("base", self.base_name), *zip(self.defs, self.def_names, strict=True)]
            parts = []
            for i, (text, off) in enumerate(names):
                flags = _VER_FLG_BASE if i == 0 else 0
                nxt = 28 if i < len(names) - 1 else 0
                hashed = sysv_hash(text.encode()) if i else 0
                parts.append(struct.pack(e + "HHHHIII", 1, flags, i + 1, 1, hashed, 20, nxt))
                parts.append(struct.pack(e + "II", off, 0))
            blobs.append((".gnu.version_d", b"".join(parts)))
        if self.needs:
            parts = []
            for n, ((_, versions), file_off) in enumerate(
                zip(self.needs, self.need_files, strict=True)
            ):
                size = 16 + 16 * len(versions)
                nxt = size if n < len(self.needs) - 1 else 0
                parts.append(struct.pack(e + "HHIII", 1, len(versions), file_off, 16, nxt))
                for k, (v, name_off) in enumerate(zip(versions, self.need_names[n], strict=True)):
                    last = k == len(versions) - 1
                    parts.append(struct.pack(
                        e + "IHHII", sysv_hash(v.encode()), 0, self.need_index[v], name_off,
                        0 if last else 16,
                    ))
            blobs.append((".gnu.version_r", b"".join(parts)))
        out = []
        off = start
        for name, blob in blobs:
            off = _align(off, 8)
            out.append((name, off, blob))
            off += len(blob)
        return out

    def dynamic_tags(self, blobs: Sequence[tuple[str, int, bytes]]) -> list[tuple[int, int]]:
        where = {name: off for name, off, _ in blobs}
        tags: list[tuple[int, int]] = []
        if ".gnu.version" in where:
            tags.append((_DT_VERSYM, where[".gnu.version"]))
        if ".gnu.version_d" in where:
            tags += [(_DT_VERDEF, where[".gnu.version_d"]), (_DT_VERDEFNUM, len(self.defs) + 1)]
        if ".gnu.version_r" in where:
            tags += [(_DT_VERNEED, where[".gnu.version_r"]), (_DT_VERNEEDNUM, len(self.needs))]
        return tags

    def headers(
        self, blobs: Sequence[tuple[str, int, bytes]]
    ) -> dict[str, tuple[int, int, bytes, int]]:
        """section -> (sh_type, offset, bytes, sh_info), in section order."""
        types = {
            ".gnu.version": (_SHT_GNU_VERSYM, 0),
            ".gnu.version_d": (_SHT_GNU_VERDEF, len(self.defs) + 1),
            ".gnu.version_r": (_SHT_GNU_VERNEED, len(self.needs)),
        }
        return {name: (types[name][0], off, blob, types[name][1]) for name, off, blob in blobs}


def build_shared_object(
    *,
    bits: int = 64,
    byte_order: str = "little",
    machine: int | str = "x86_64",
    exports: Sequence[str] = (),
    needed: Sequence[str] = (),
    soname: str | None = None,
    rpath: str | None = None,
    runpath: str | None = None,
    undefined: Sequence[str] = (),
    weak_undefined: Sequence[str] = (),
    osabi: int = 0,
    abiversion: int = 0,
    e_type: int = ET_DYN,
    e_flags: int = 0,
    abi_note: tuple[int, int, int, int] | None = None,
    extra_data: bytes = b"",
    version_defs: Sequence[str] = (),
    version_needs: Sequence[tuple[str, Sequence[str]]] = (),
    relocate: bool = False,
    rodata: bytes = b"",
) -> bytes:
    """Write a minimal ELF shared object and return its bytes.

    ``exports`` become defined GLOBAL FUNC dynamic symbols in ``.text``;
    ``undefined`` and ``weak_undefined`` become undefined GLOBAL / WEAK
    references. ``abi_note`` adds a ``.note.ABI-tag`` (PT_NOTE) with
    (os, major, minor, patch), which older glibc compares with the kernel.
    ``extra_data`` is appended after the section headers, outside every
    segment and section, the way trailing signatures or padding sit in real
    files.

    Symbol versioning: ``version_defs`` writes ``.gnu.version_d`` (after the
    base entry, which names ``soname``), ``version_needs`` writes
    ``.gnu.version_r`` as (library, versions) pairs, and either adds
    ``.gnu.version``. A name ``"foo@V"`` in ``exports`` is defined at version
    V, in ``undefined``/``weak_undefined`` bound to the needed version V.
    ``relocate`` adds a GLOB_DAT relocation (``.rela.dyn`` into a ``.got``)
    for every undefined symbol, so that the dynamic linker looks each one up,
    as it does for the references of real code (x86_64 and aarch64 only).
    ``rodata`` becomes a ``.rodata`` section in the read-only segment: the
    strings real code keeps there (module names it imports, pyo3's panic
    type), which abiscan reads to find imports made from native code.
    """
    if bits not in (32, 64):
        raise BuildError(f"bits must be 32 or 64, not {bits!r}")
    if byte_order not in ("little", "big"):
        raise BuildError(f"byte_order must be 'little' or 'big', not {byte_order!r}")
    em = machine_number(machine)
    lay = _Layout(bits, "<" if byte_order == "little" else ">")
    e = lay.e
    word = lay.word

    dynstr = _StrTab()
    # Symbol 0 is the reserved null symbol; undefined references first, then
    # definitions, which is the order GNU ld uses too.
    sym_names: list[bytes] = [b""]
    sym_kinds: list[tuple[int, int]] = [(0, 0)]  # (st_info, st_shndx marker)
    sym_versions: list[str | None] = [None]
    for name in undefined:
        bare, ver = _split_version(name)
        sym_names.append(bare.encode())
        sym_versions.append(ver)
        sym_kinds.append(((_STB_GLOBAL << 4) | _STT_NOTYPE, 0))
    for name in weak_undefined:
        bare, ver = _split_version(name)
        sym_names.append(bare.encode())
        sym_versions.append(ver)
        sym_kinds.append(((_STB_WEAK << 4) | _STT_NOTYPE, 0))
    first_export = len(sym_names)
    for name in exports:
        bare, ver = _split_version(name)
        sym_names.append(bare.encode())
        sym_versions.append(ver)
        sym_kinds.append(((_STB_GLOBAL << 4) | _STT_FUNC, 1))
    nsyms = len(sym_names)
    name_offsets = [dynstr.add(n) for n in sym_names]

    needed_offs = [dynstr.add(n) for n in needed]
    soname_off = dynstr.add(soname) if soname is not None else None
    rpath_off = dynstr.add(rpath) if rpath is not None else None
    runpath_off = dynstr.add(runpath) if runpath is not None else None
    versioning = _Versioning(
        e, dynstr, soname, version_defs, version_needs, sym_versions, sym_kinds
    )
    n_undef = first_export - 1
    if relocate and n_undef and em not in _GLOB_DAT:
        raise BuildError(f"relocations are written for x86_64 and aarch64 only, not {machine!r}")
    n_relocs = n_undef if relocate else 0
    dynstr_bytes = dynstr.data()

    # Section indices, fixed by the order the headers are written below.
    sections = [".hash", ".dynsym", ".dynstr"]
    sections += versioning.section_names()
    if n_relocs:
        sections.append(".rela.dyn")
    sections.append(".text")
    if rodata:
        sections.append(".rodata")
    if abi_note is not None:
        sections.append(".note.ABI-tag")
    sections.append(".dynamic")
    if n_relocs:
        sections.append(".got")
    sections.append(".shstrtab")
    shidx = {name: i + 1 for i, name in enumerate(sections)}

    stub = _RET_STUBS.get((em, byte_order), b"\0\0\0\0")
    n_funcs = nsyms - first_export

    nphdr = 4 + (1 if abi_note is not None else 0)
    off = lay.ehdr_size + nphdr * lay.phdr_size

    # s390x and Alpha use 8-byte .hash words; every other 64-bit ABI uses 4.
    hash_word = 8 if (bits == 64 and em == 22) else 4
    nbucket = max(1, min(nsyms, 1 << 17) // 2 | 1)
    hash_off = _align(off, 8)
    hash_size = (2 + nbucket + nsyms) * hash_word
    dynsym_off = _align(hash_off + hash_size, 8)
    dynsym_size = nsyms * lay.sym_size
    dynstr_off = dynsym_off + dynsym_size
    ver_off = _align(dynstr_off + len(dynstr_bytes), 8)
    ver_blobs = versioning.layout(ver_off)
    rela_off = _align(ver_off + sum(len(b) for _, _, b in ver_blobs), 8)
    rela_ent = 24 if bits == 64 else 12
    rela_size = n_relocs * rela_ent
    text_off = _align(rela_off + rela_size, 16)
    text_size = max(n_funcs, 1) * len(stub)
    rodata_off = _align(text_off + text_size, 16)
    note_off = _align(rodata_off + len(rodata), 4)
    note_bytes = b""
    if abi_note is not None:
        note_bytes = struct.pack(e + "III4sIIII", 4, 16, 1, b"GNU\0", *abi_note)
    rx_end = note_off + len(note_bytes)

    dynamic_off = _align(rx_end, 8)
    # The writable segment sits one alignment unit above its file offset so
    # its pages never overlap the read/execute segment's pages in memory.
    dynamic_vaddr = dynamic_off + _SEGMENT_ALIGN
    dyn_entries: list[tuple[int, int]] = [(_DT_NEEDED, o) for o in needed_offs]
    if soname_off is not None:
        dyn_entries.append((_DT_SONAME, soname_off))
    if rpath_off is not None:
        dyn_entries.append((_DT_RPATH, rpath_off))
    if runpath_off is not None:
        dyn_entries.append((_DT_RUNPATH, runpath_off))
    dyn_entries += versioning.dynamic_tags(ver_blobs)
    got_off = 0
    if n_relocs:
        dyn_entries += [(_DT_RELA, rela_off), (_DT_RELASZ, rela_size), (_DT_RELAENT, rela_ent)]
    dyn_entries += [
        (_DT_HASH, hash_off),
        (_DT_STRTAB, dynstr_off),
        (_DT_SYMTAB, dynsym_off),
        (_DT_STRSZ, len(dynstr_bytes)),
        (_DT_SYMENT, lay.sym_size),
        (_DT_NULL, 0),
    ]
    dynamic_bytes = lay.dyn(dyn_entries)
    dynamic_end = dynamic_off + len(dynamic_bytes)
    rela_bytes = b""
    if n_relocs:
        # One GOT slot per undefined symbol, after .dynamic in the writable
        # segment; symbol i (1-based) gets slot i-1.
        got_off = _align(dynamic_end, word)
        rela_fmt = e + ("QQq" if bits == 64 else "IIi")
        shift = 32 if bits == 64 else 8
        rela_bytes = b"".join(
            struct.pack(
                rela_fmt, got_off + _SEGMENT_ALIGN + (i - 1) * word,
                (i << shift) | _GLOB_DAT[em], 0,
            )
            for i in range(1, n_undef + 1)
        )
        dynamic_end = got_off + n_relocs * word

    shstr = _StrTab()
    sh_names = {name: shstr.add(name) for name in sections}
    shstrtab_bytes = shstr.data()
    shstrtab_off = dynamic_end
    shoff = _align(shstrtab_off + len(shstrtab_bytes), 8)
    shnum = len(sections) + 1
    file_end = shoff + shnum * lay.shdr_size

    # .hash: buckets hold the last symbol of each chain, chains link back.
    buckets = [0] * nbucket
    chains = [0] * nsyms
    for i in range(1, nsyms):
        b = sysv_hash(sym_names[i]) % nbucket
        chains[i] = buckets[b]
        buckets[b] = i
    hash_fmt = e + ("Q" if hash_word == 8 else "I") * (2 + nbucket + nsyms)
    hash_bytes = struct.pack(hash_fmt, nbucket, nsyms, *buckets, *chains)

    text_shndx = shidx[".text"]
    if bits == 64:
        sym = struct.Struct(e + "IBBHQQ")
        sym_parts = [
            sym.pack(
                name_offsets[i],
                sym_kinds[i][0],
                0,
                text_shndx if sym_kinds[i][1] else 0,
                text_off + (i - first_export) * len(stub) if sym_kinds[i][1] else 0,
                len(stub) if sym_kinds[i][1] else 0,
            )
            for i in range(nsyms)
        ]
    else:
        sym = struct.Struct(e + "IIIBBH")
        sym_parts = [
            sym.pack(
                name_offsets[i],
                text_off + (i - first_export) * len(stub) if sym_kinds[i][1] else 0,
                len(stub) if sym_kinds[i][1] else 0,
                sym_kinds[i][0],
                0,
                text_shndx if sym_kinds[i][1] else 0,
            )
            for i in range(nsyms)
        ]
    dynsym_bytes = b"".join(sym_parts)

    ident = (
        b"\x7fELF"
        + bytes(
            [
                2 if bits == 64 else 1,
                1 if byte_order == "little" else 2,
                1,
                osabi & 0xFF,
                abiversion & 0xFF,
            ]
        )
        + b"\0" * 7
    )
    if bits == 64:
        ehdr = ident + struct.pack(
            e + "HHIQQQIHHHHHH",
            e_type,
            em,
            1,
            0,
            lay.ehdr_size,
            shoff,
            e_flags,
            lay.ehdr_size,
            lay.phdr_size,
            nphdr,
            lay.shdr_size,
            shnum,
            shidx[".shstrtab"],
        )
    else:
        ehdr = ident + struct.pack(
            e + "HHIIIIIHHHHHH",
            e_type,
            em,
            1,
            0,
            lay.ehdr_size,
            shoff,
            e_flags,
            lay.ehdr_size,
            lay.phdr_size,
            nphdr,
            lay.shdr_size,
            shnum,
            shidx[".shstrtab"],
        )

    dynamic_size = len(dynamic_bytes)
    phdrs = [
        lay.phdr(_PT_LOAD, 5, 0, 0, rx_end, rx_end, _SEGMENT_ALIGN),
        lay.phdr(
            _PT_LOAD, 6, dynamic_off, dynamic_vaddr, dynamic_end - dynamic_off,
            dynamic_end - dynamic_off, _SEGMENT_ALIGN,
        ),
        lay.phdr(_PT_DYNAMIC, 6, dynamic_off, dynamic_vaddr, dynamic_size, dynamic_size, word),
        lay.phdr(_PT_GNU_STACK, 6, 0, 0, 0, 0, 16),
    ]
    if abi_note is not None:
        phdrs.append(lay.phdr(_PT_NOTE, 4, note_off, note_off, len(note_bytes), len(note_bytes), 4))

    shdrs = [lay.shdr(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)]
    shdrs.append(
        lay.shdr(
            sh_names[".hash"],
            _SHT_HASH,
            _SHF_ALLOC,
            hash_off,
            hash_off,
            hash_size,
            shidx[".dynsym"],
            0,
            8,
            hash_word,
        )
    )
    shdrs.append(
        lay.shdr(
            sh_names[".dynsym"],
            _SHT_DYNSYM,
            _SHF_ALLOC,
            dynsym_off,
            dynsym_off,
            dynsym_size,
            shidx[".dynstr"],
            1,
            word,
            lay.sym_size,
        )
    )
    shdrs.append(
        lay.shdr(
            sh_names[".dynstr"],
            _SHT_STRTAB,
            _SHF_ALLOC,
            dynstr_off,
            dynstr_off,
            len(dynstr_bytes),
            0,
            0,
            1,
            0,
        )
    )
    for name, (sh_type, sh_off, blob, info) in versioning.headers(ver_blobs).items():
        shdrs.append(
            lay.shdr(
                sh_names[name], sh_type, _SHF_ALLOC, sh_off, sh_off, len(blob),
                shidx[".dynsym" if name == ".gnu.version" else ".dynstr"], info,
                2 if name == ".gnu.version" else word, 2 if name == ".gnu.version" else 0,
            )
        )
    if n_relocs:
        shdrs.append(
            lay.shdr(
                sh_names[".rela.dyn"], _SHT_RELA, _SHF_ALLOC, rela_off, rela_off, rela_size,
                shidx[".dynsym"], 0, word, rela_ent,
            )
        )
    shdrs.append(
        lay.shdr(
            sh_names[".text"],
            _SHT_PROGBITS,
            _SHF_ALLOC | _SHF_EXECINSTR,
            text_off,
            text_off,
            text_size,
            0,
            0,
            16,
            0,
        )
    )
    if rodata:
        shdrs.append(
            lay.shdr(
                sh_names[".rodata"], _SHT_PROGBITS, _SHF_ALLOC, rodata_off, rodata_off,
                len(rodata), 0, 0, 16, 0,
            )
        )
    if abi_note is not None:
        shdrs.append(
            lay.shdr(
                sh_names[".note.ABI-tag"],
                _SHT_NOTE,
                _SHF_ALLOC,
                note_off,
                note_off,
                len(note_bytes),
                0,
                0,
                4,
                0,
            )
        )
    shdrs.append(
        lay.shdr(
            sh_names[".dynamic"],
            _SHT_DYNAMIC,
            _SHF_ALLOC | _SHF_WRITE,
            dynamic_vaddr,
            dynamic_off,
            dynamic_size,
            shidx[".dynstr"],
            0,
            word,
            lay.dyn_size,
        )
    )
    if n_relocs:
        shdrs.append(
            lay.shdr(
                sh_names[".got"], _SHT_PROGBITS, _SHF_ALLOC | _SHF_WRITE,
                got_off + _SEGMENT_ALIGN, got_off, n_relocs * word, 0, 0, word, word,
            )
        )
    shdrs.append(
        lay.shdr(
            sh_names[".shstrtab"],
            _SHT_STRTAB,
            0,
            0,
            shstrtab_off,
            len(shstrtab_bytes),
            0,
            0,
            1,
            0,
        )
    )

    out = bytearray(file_end)
    out[0 : len(ehdr)] = ehdr
    pos = lay.ehdr_size
    for ph in phdrs:
        out[pos : pos + len(ph)] = ph
        pos += len(ph)
    out[hash_off : hash_off + hash_size] = hash_bytes
    out[dynsym_off : dynsym_off + dynsym_size] = dynsym_bytes
    out[dynstr_off : dynstr_off + len(dynstr_bytes)] = dynstr_bytes
    out[text_off : text_off + text_size] = stub * max(n_funcs, 1)
    out[rodata_off : rodata_off + len(rodata)] = rodata
    if note_bytes:
        out[note_off : note_off + len(note_bytes)] = note_bytes
    out[dynamic_off : dynamic_off + len(dynamic_bytes)] = dynamic_bytes
    for _, off, blob in ver_blobs:
        out[off : off + len(blob)] = blob
    out[rela_off : rela_off + rela_size] = rela_bytes
    out[shstrtab_off : shstrtab_off + len(shstrtab_bytes)] = shstrtab_bytes
    out[shoff:file_end] = b"".join(shdrs)
    return bytes(out) + extra_data
