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

from abiscan.errors import BuildError as BuildError  # re-exported (its old home)
from abiscan.records import record

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


@record
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
                    parts.append(
                        struct.pack(
                            e + "IHHII",
                            sysv_hash(v.encode()),
                            0,
                            self.need_index[v],
                            name_off,
                            0 if last else 16,
                        )
                    )
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
    options = _Options(
        bits=bits,
        byte_order=byte_order,
        machine=machine,
        exports=exports,
        needed=needed,
        soname=soname,
        rpath=rpath,
        runpath=runpath,
        undefined=undefined,
        weak_undefined=weak_undefined,
        osabi=osabi,
        abiversion=abiversion,
        e_type=e_type,
        e_flags=e_flags,
        abi_note=abi_note,
        extra_data=extra_data,
        version_defs=version_defs,
        version_needs=version_needs,
        relocate=relocate,
        rodata=rodata,
    )
    return _Writer(options).write()


@record
class _Options:
    """The arguments of :func:`build_shared_object`, checked."""

    bits: int
    byte_order: str
    machine: int | str
    exports: Sequence[str]
    needed: Sequence[str]
    soname: str | None
    rpath: str | None
    runpath: str | None
    undefined: Sequence[str]
    weak_undefined: Sequence[str]
    osabi: int
    abiversion: int
    e_type: int
    e_flags: int
    abi_note: tuple[int, int, int, int] | None
    extra_data: bytes
    version_defs: Sequence[str]
    version_needs: Sequence[tuple[str, Sequence[str]]]
    relocate: bool
    rodata: bytes


@record
class _Symbols:
    """The dynamic symbol table: symbol 0 is the reserved null symbol; undefined
    references come first, then definitions, which is the order GNU ld uses too."""

    names: list[bytes]
    kinds: list[tuple[int, int]]  # (st_info, 1 if defined in .text else 0)
    versions: list[str | None]
    first_export: int


def _symbols(o: _Options) -> _Symbols:
    names: list[bytes] = [b""]
    kinds: list[tuple[int, int]] = [(0, 0)]
    versions: list[str | None] = [None]
    groups = (
        (o.undefined, (_STB_GLOBAL << 4) | _STT_NOTYPE, 0),
        (o.weak_undefined, (_STB_WEAK << 4) | _STT_NOTYPE, 0),
        (o.exports, (_STB_GLOBAL << 4) | _STT_FUNC, 1),
    )
    first_export = 0
    for group, info, defined in groups:
        if defined:
            first_export = len(names)
        for name in group:
            bare, ver = _split_version(name)
            names.append(bare.encode())
            versions.append(ver)
            kinds.append((info, defined))
    return _Symbols(names=names, kinds=kinds, versions=versions, first_export=first_export)


class _Writer:
    """Lays out and writes one shared object; each step sets the offsets the next reads."""

    def __init__(self, o: _Options) -> None:
        self.o = o
        self.em = machine_number(o.machine)
        self.lay = _Layout(bits=o.bits, e="<" if o.byte_order == "little" else ">")
        self.e = self.lay.e
        self.word = self.lay.word
        self.syms = _symbols(o)
        # The order strings enter .dynstr fixes every offset: symbols, DT_NEEDED,
        # DT_SONAME, DT_RPATH, DT_RUNPATH, then the version sections' names.
        dynstr = _StrTab()
        self.name_offsets = [dynstr.add(n) for n in self.syms.names]
        self.name_tags: list[tuple[int, int]] = [(_DT_NEEDED, dynstr.add(n)) for n in o.needed]
        for tag, value in ((_DT_SONAME, o.soname), (_DT_RPATH, o.rpath), (_DT_RUNPATH, o.runpath)):
            if value is not None:
                self.name_tags.append((tag, dynstr.add(value)))
        self.versioning = _Versioning(
            self.e,
            dynstr,
            o.soname,
            o.version_defs,
            o.version_needs,
            self.syms.versions,
            self.syms.kinds,
        )
        self.n_undef = self.syms.first_export - 1
        if o.relocate and self.n_undef and self.em not in _GLOB_DAT:
            raise BuildError(
                f"relocations are written for x86_64 and aarch64 only, not {o.machine!r}"
            )
        self.n_relocs = self.n_undef if o.relocate else 0
        self.dynstr_bytes = dynstr.data()
        self.sections = self._section_names()
        self.shidx = {name: i + 1 for i, name in enumerate(self.sections)}
        self.stub = _RET_STUBS.get((self.em, o.byte_order), b"\0\0\0\0")
        self.n_funcs = len(self.syms.names) - self.syms.first_export
        self.nphdr = 4 + (1 if o.abi_note is not None else 0)

    def _section_names(self) -> list[str]:
        """Section header order; the section indices follow from it."""
        sections = [".hash", ".dynsym", ".dynstr", *self.versioning.section_names()]
        if self.n_relocs:
            sections.append(".rela.dyn")
        sections.append(".text")
        if self.o.rodata:
            sections.append(".rodata")
        if self.o.abi_note is not None:
            sections.append(".note.ABI-tag")
        sections.append(".dynamic")
        if self.n_relocs:
            sections.append(".got")
        sections.append(".shstrtab")
        return sections

    def _place_read_only(self) -> None:
        """Offsets of the read/execute segment: tables, code, .rodata, the note."""
        o, lay = self.o, self.lay
        nsyms = len(self.syms.names)
        # s390x and Alpha use 8-byte .hash words; every other 64-bit ABI uses 4.
        self.hash_word = 8 if (o.bits == 64 and self.em == 22) else 4
        self.nbucket = max(1, min(nsyms, 1 << 17) // 2 | 1)
        self.hash_off = _align(lay.ehdr_size + self.nphdr * lay.phdr_size, 8)
        self.hash_size = (2 + self.nbucket + nsyms) * self.hash_word
        self.dynsym_off = _align(self.hash_off + self.hash_size, 8)
        self.dynsym_size = nsyms * lay.sym_size
        self.dynstr_off = self.dynsym_off + self.dynsym_size
        ver_off = _align(self.dynstr_off + len(self.dynstr_bytes), 8)
        self.ver_blobs = self.versioning.layout(ver_off)
        self.rela_off = _align(ver_off + sum(len(b) for _, _, b in self.ver_blobs), 8)
        self.rela_ent = 24 if o.bits == 64 else 12
        self.rela_size = self.n_relocs * self.rela_ent
        self.text_off = _align(self.rela_off + self.rela_size, 16)
        self.text_size = max(self.n_funcs, 1) * len(self.stub)
        self.rodata_off = _align(self.text_off + self.text_size, 16)
        self.note_off = _align(self.rodata_off + len(o.rodata), 4)
        self.note_bytes = b""
        if o.abi_note is not None:
            self.note_bytes = struct.pack(self.e + "III4sIIII", 4, 16, 1, b"GNU\0", *o.abi_note)
        self.rx_end = self.note_off + len(self.note_bytes)

    def _place_writable(self) -> None:
        """.dynamic and the GOT, in the writable segment, and the relocations into it."""
        self.dynamic_off = _align(self.rx_end, 8)
        # The writable segment sits one alignment unit above its file offset so
        # its pages never overlap the read/execute segment's pages in memory.
        self.dynamic_vaddr = self.dynamic_off + _SEGMENT_ALIGN
        entries = [*self.name_tags, *self.versioning.dynamic_tags(self.ver_blobs)]
        if self.n_relocs:
            entries += [
                (_DT_RELA, self.rela_off),
                (_DT_RELASZ, self.rela_size),
                (_DT_RELAENT, self.rela_ent),
            ]
        entries += [
            (_DT_HASH, self.hash_off),
            (_DT_STRTAB, self.dynstr_off),
            (_DT_SYMTAB, self.dynsym_off),
            (_DT_STRSZ, len(self.dynstr_bytes)),
            (_DT_SYMENT, self.lay.sym_size),
            (_DT_NULL, 0),
        ]
        self.dynamic_bytes = self.lay.dyn(entries)
        self.dynamic_end = self.dynamic_off + len(self.dynamic_bytes)
        self.got_off = 0
        self.rela_bytes = b""
        if self.n_relocs:
            # One GOT slot per undefined symbol, after .dynamic; symbol i
            # (1-based) gets slot i-1.
            self.got_off = _align(self.dynamic_end, self.word)
            rela_fmt = self.e + ("QQq" if self.o.bits == 64 else "IIi")
            shift = 32 if self.o.bits == 64 else 8
            self.rela_bytes = b"".join(
                struct.pack(
                    rela_fmt,
                    self.got_off + _SEGMENT_ALIGN + (i - 1) * self.word,
                    (i << shift) | _GLOB_DAT[self.em],
                    0,
                )
                for i in range(1, self.n_undef + 1)
            )
            self.dynamic_end = self.got_off + self.n_relocs * self.word

    def _place_section_headers(self) -> None:
        shstr = _StrTab()
        self.sh_names = {name: shstr.add(name) for name in self.sections}
        self.shstrtab_bytes = shstr.data()
        self.shstrtab_off = self.dynamic_end
        self.shoff = _align(self.shstrtab_off + len(self.shstrtab_bytes), 8)
        self.shnum = len(self.sections) + 1
        self.file_end = self.shoff + self.shnum * self.lay.shdr_size

    def _hash_table(self) -> bytes:
        """SysV .hash: buckets hold the last symbol of each chain, chains link back."""
        nsyms = len(self.syms.names)
        buckets = [0] * self.nbucket
        chains = [0] * nsyms
        for i in range(1, nsyms):
            b = sysv_hash(self.syms.names[i]) % self.nbucket
            chains[i] = buckets[b]
            buckets[b] = i
        fmt = self.e + ("Q" if self.hash_word == 8 else "I") * (2 + self.nbucket + nsyms)
        return struct.pack(fmt, self.nbucket, nsyms, *buckets, *chains)

    def _dynsym(self) -> bytes:
        text_shndx = self.shidx[".text"]
        size = len(self.stub)
        parts = []
        for i, (info, defined) in enumerate(self.syms.kinds):
            value = self.text_off + (i - self.syms.first_export) * size if defined else 0
            shndx = text_shndx if defined else 0
            if self.o.bits == 64:
                parts.append(
                    struct.pack(
                        self.e + "IBBHQQ",
                        self.name_offsets[i],
                        info,
                        0,
                        shndx,
                        value,
                        size if defined else 0,
                    )
                )
            else:
                parts.append(
                    struct.pack(
                        self.e + "IIIBBH",
                        self.name_offsets[i],
                        value,
                        size if defined else 0,
                        info,
                        0,
                        shndx,
                    )
                )
        return b"".join(parts)

    def _ehdr(self) -> bytes:
        o, lay = self.o, self.lay
        ident = (
            b"\x7fELF"
            + bytes(
                [
                    2 if o.bits == 64 else 1,
                    1 if o.byte_order == "little" else 2,
                    1,
                    o.osabi & 0xFF,
                    o.abiversion & 0xFF,
                ]
            )
            + b"\0" * 7
        )
        fmt = self.e + ("HHIQQQIHHHHHH" if o.bits == 64 else "HHIIIIIHHHHHH")
        return ident + struct.pack(
            fmt,
            o.e_type,
            self.em,
            1,
            0,
            lay.ehdr_size,
            self.shoff,
            o.e_flags,
            lay.ehdr_size,
            lay.phdr_size,
            self.nphdr,
            lay.shdr_size,
            self.shnum,
            self.shidx[".shstrtab"],
        )

    def _phdrs(self) -> list[bytes]:
        lay = self.lay
        rw_size = self.dynamic_end - self.dynamic_off
        dyn_size = len(self.dynamic_bytes)
        phdrs = [
            lay.phdr(_PT_LOAD, 5, 0, 0, self.rx_end, self.rx_end, _SEGMENT_ALIGN),
            lay.phdr(
                _PT_LOAD, 6, self.dynamic_off, self.dynamic_vaddr, rw_size, rw_size, _SEGMENT_ALIGN
            ),
            lay.phdr(
                _PT_DYNAMIC, 6, self.dynamic_off, self.dynamic_vaddr, dyn_size, dyn_size, self.word
            ),
            lay.phdr(_PT_GNU_STACK, 6, 0, 0, 0, 0, 16),
        ]
        if self.o.abi_note is not None:
            size = len(self.note_bytes)
            phdrs.append(lay.phdr(_PT_NOTE, 4, self.note_off, self.note_off, size, size, 4))
        return phdrs

    # Long on purpose: the section header table, one row per section in file order.
    def _section_rows(self) -> list[tuple[str, int, int, int, int, int, str | None, int, int, int]]:
        """(name, type, flags, addr, offset, size, link section, info, align, entsize)."""
        word, dyn = self.word, ".dynsym"
        rows: list[tuple[str, int, int, int, int, int, str | None, int, int, int]] = [
            (
                ".hash",
                _SHT_HASH,
                _SHF_ALLOC,
                self.hash_off,
                self.hash_off,
                self.hash_size,
                dyn,
                0,
                8,
                self.hash_word,
            ),
            (
                dyn,
                _SHT_DYNSYM,
                _SHF_ALLOC,
                self.dynsym_off,
                self.dynsym_off,
                self.dynsym_size,
                ".dynstr",
                1,
                word,
                self.lay.sym_size,
            ),
            (
                ".dynstr",
                _SHT_STRTAB,
                _SHF_ALLOC,
                self.dynstr_off,
                self.dynstr_off,
                len(self.dynstr_bytes),
                None,
                0,
                1,
                0,
            ),
        ]
        for name, (sh_type, off, blob, info) in self.versioning.headers(self.ver_blobs).items():
            versym = name == ".gnu.version"
            rows.append(
                (
                    name,
                    sh_type,
                    _SHF_ALLOC,
                    off,
                    off,
                    len(blob),
                    dyn if versym else ".dynstr",
                    info,
                    2 if versym else word,
                    2 if versym else 0,
                )
            )
        if self.n_relocs:
            rows.append(
                (
                    ".rela.dyn",
                    _SHT_RELA,
                    _SHF_ALLOC,
                    self.rela_off,
                    self.rela_off,
                    self.rela_size,
                    dyn,
                    0,
                    word,
                    self.rela_ent,
                )
            )
        rows.append(
            (
                ".text",
                _SHT_PROGBITS,
                _SHF_ALLOC | _SHF_EXECINSTR,
                self.text_off,
                self.text_off,
                self.text_size,
                None,
                0,
                16,
                0,
            )
        )
        return rows + self._later_section_rows()

    def _later_section_rows(
        self,
    ) -> list[tuple[str, int, int, int, int, int, str | None, int, int, int]]:
        word = self.word
        rows: list[tuple[str, int, int, int, int, int, str | None, int, int, int]] = []
        if self.o.rodata:
            rows.append(
                (
                    ".rodata",
                    _SHT_PROGBITS,
                    _SHF_ALLOC,
                    self.rodata_off,
                    self.rodata_off,
                    len(self.o.rodata),
                    None,
                    0,
                    16,
                    0,
                )
            )
        if self.o.abi_note is not None:
            rows.append(
                (
                    ".note.ABI-tag",
                    _SHT_NOTE,
                    _SHF_ALLOC,
                    self.note_off,
                    self.note_off,
                    len(self.note_bytes),
                    None,
                    0,
                    4,
                    0,
                )
            )
        rows.append(
            (
                ".dynamic",
                _SHT_DYNAMIC,
                _SHF_ALLOC | _SHF_WRITE,
                self.dynamic_vaddr,
                self.dynamic_off,
                len(self.dynamic_bytes),
                ".dynstr",
                0,
                word,
                self.lay.dyn_size,
            )
        )
        if self.n_relocs:
            rows.append(
                (
                    ".got",
                    _SHT_PROGBITS,
                    _SHF_ALLOC | _SHF_WRITE,
                    self.got_off + _SEGMENT_ALIGN,
                    self.got_off,
                    self.n_relocs * word,
                    None,
                    0,
                    word,
                    word,
                )
            )
        rows.append(
            (
                ".shstrtab",
                _SHT_STRTAB,
                0,
                0,
                self.shstrtab_off,
                len(self.shstrtab_bytes),
                None,
                0,
                1,
                0,
            )
        )
        return rows

    def _shdrs(self) -> list[bytes]:
        out = [self.lay.shdr(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)]
        for name, sh_type, flags, addr, off, size, link, info, align, ent in self._section_rows():
            link_index = self.shidx[link] if link else 0
            out.append(
                self.lay.shdr(
                    self.sh_names[name],
                    sh_type,
                    flags,
                    addr,
                    off,
                    size,
                    link_index,
                    info,
                    align,
                    ent,
                )
            )
        return out

    def write(self) -> bytes:
        self._place_read_only()
        self._place_writable()
        self._place_section_headers()
        out = bytearray(self.file_end)
        ehdr = self._ehdr()
        out[0 : len(ehdr)] = ehdr
        phdrs = b"".join(self._phdrs())
        out[self.lay.ehdr_size : self.lay.ehdr_size + len(phdrs)] = phdrs
        parts = [
            (self.hash_off, self._hash_table()),
            (self.dynsym_off, self._dynsym()),
            (self.dynstr_off, self.dynstr_bytes),
            (self.text_off, self.stub * max(self.n_funcs, 1)),
            (self.rodata_off, self.o.rodata),
            (self.note_off, self.note_bytes),
            (self.dynamic_off, self.dynamic_bytes),
            *((off, blob) for _, off, blob in self.ver_blobs),
            (self.rela_off, self.rela_bytes),
            (self.shstrtab_off, self.shstrtab_bytes),
            (self.shoff, b"".join(self._shdrs())),
        ]
        for off, blob in parts:
            out[off : off + len(blob)] = blob
        return bytes(out) + self.o.extra_data
