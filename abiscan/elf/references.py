"""The symbols an ELF object makes the dynamic linker look up, in the order it looks them up.

An undefined symbol in ``.dynsym`` only matters when a relocation refers to
it: glibc resolves symbols while it processes relocations, and a symbol no
relocation names is never looked up (an object with undefined symbols but no
relocations loads). glibc's ``_dl_relocate_object`` walks the ``DT_RELA``
(or ``DT_REL``) table and then the ``DT_JMPREL`` (PLT) table, each in file
order; with ``RTLD_NOW``, which CPython uses for extension modules, the PLT
entries are bound at load time too. The first symbol that resolves nowhere
ends the ``dlopen`` with ``<object>: undefined symbol: <name>``, so the order
here is the order in which glibc would report them. (Checked on glibc 2.36:
a data reference in ``.rela.dyn`` is reported before a function called
through the PLT, whatever the order of ``.dynsym``.)

Read through the program headers and the dynamic section, as the dynamic
linker reads them; every offset is checked against the file and a damaged
file raises :class:`abiscan.elf.reader.ElfError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from abiscan.elf.reader import ElfError, read_header

__all__ = ["SymbolRef", "symbol_references"]

_PT_LOAD = 1
_PT_DYNAMIC = 2

_DT_NULL = 0
_DT_PLTRELSZ = 2
_DT_STRTAB = 5
_DT_SYMTAB = 6
_DT_RELA = 7
_DT_RELASZ = 8
_DT_RELAENT = 9
_DT_STRSZ = 10
_DT_SYMENT = 11
_DT_REL = 17
_DT_RELSZ = 18
_DT_RELENT = 19
_DT_PLTREL = 20
_DT_JMPREL = 23
_DT_VERSYM = 0x6FFFFFF0
_DT_VERNEED = 0x6FFFFFFE
_DT_VERNEEDNUM = 0x6FFFFFFF

_STB_LOCAL = 0
_STB_WEAK = 2
_SHN_UNDEF = 0


@dataclass(frozen=True)
class SymbolRef:
    """An undefined symbol a relocation asks the dynamic linker to find."""

    name: str
    weak: bool
    # The version the reference is bound to (``.gnu.version`` -> ``.gnu.version_r``)
    # and the library that version was required from; None when unversioned.
    version: str | None = None
    version_file: str | None = None

    def describe(self) -> str:
        return f"{self.name}@{self.version}" if self.version else self.name


class _Image:
    def __init__(self, data: bytes) -> None:
        self.data = data
        h = read_header(data)
        if h.bits == 0 or h.byte_order == "invalid":
            raise ElfError("not a readable ELF class or byte order")
        self.is64 = h.bits == 64
        self.e = "<" if h.byte_order == "little" else ">"
        self.loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
        self.dynamic: tuple[int, int] | None = None
        size = 56 if self.is64 else 32
        if h.e_phentsize < size and h.e_phnum:
            raise ElfError(f"bad e_phentsize {h.e_phentsize}")
        for i in range(h.e_phnum):
            off = h.e_phoff + i * h.e_phentsize
            self._need(off, size, "program header")
            if self.is64:
                p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
                    self.e + "IIQQQQ", data, off
                )
            else:
                p_type, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
                    self.e + "IIIII", data, off
                )
            if p_type == _PT_LOAD:
                self.loads.append((p_vaddr, p_offset, p_filesz))
            elif p_type == _PT_DYNAMIC:
                self.dynamic = (p_offset, p_filesz)

    def _need(self, off: int, size: int, what: str) -> None:
        if off < 0 or off + size > len(self.data):
            raise ElfError(f"truncated: {what} at {off:#x} (+{size}) is past the end of the file")

    def offset(self, addr: int, what: str) -> int:
        for vaddr, off, filesz in self.loads:
            if vaddr <= addr < vaddr + filesz:
                return off + (addr - vaddr)
        raise ElfError(f"{what} address {addr:#x} is not inside any loaded segment")

    def tags(self) -> dict[int, int]:
        if self.dynamic is None:
            return {}
        off, size = self.dynamic
        self._need(off, size, "PT_DYNAMIC")
        fmt = self.e + ("QQ" if self.is64 else "II")
        step = struct.calcsize(fmt)
        out: dict[int, int] = {}
        for pos in range(off, off + size - size % step, step):
            tag, val = struct.unpack_from(fmt, self.data, pos)
            if tag == _DT_NULL:
                break
            out.setdefault(tag, val)
        return out

    def cstr(self, strtab: int, strsz: int, off: int) -> str:
        if off >= strsz:
            raise ElfError(f"string offset {off:#x} out of range of the dynamic string table")
        start = strtab + off
        end = self.data.find(b"\0", start, strtab + strsz)
        if end < 0:
            raise ElfError(f"unterminated string at offset {off:#x} of the dynamic string table")
        return self.data[start:end].decode("utf-8", "surrogateescape")


def symbol_references(data: bytes) -> tuple[SymbolRef, ...]:
    """Undefined, non-local symbols named by relocations, first reference first, each once."""
    img = _Image(bytes(data))
    tags = img.tags()
    if _DT_SYMTAB not in tags or _DT_STRTAB not in tags:
        return ()
    symtab = img.offset(tags[_DT_SYMTAB], "DT_SYMTAB")
    strtab = img.offset(tags[_DT_STRTAB], "DT_STRTAB")
    strsz = tags.get(_DT_STRSZ, 0)
    img._need(strtab, strsz, "dynamic string table")
    syment = tags.get(_DT_SYMENT, 24 if img.is64 else 16)
    if syment < (24 if img.is64 else 16):
        raise ElfError(f"bad DT_SYMENT {syment}")
    versions = _needed_versions(img, tags, strtab, strsz)
    versym = img.offset(tags[_DT_VERSYM], "DT_VERSYM") if _DT_VERSYM in tags else None

    ranges: list[tuple[int, int, bool]] = []  # (file offset, size, rela)
    if _DT_RELA in tags:
        ranges.append((img.offset(tags[_DT_RELA], "DT_RELA"), tags.get(_DT_RELASZ, 0), True))
    if _DT_REL in tags:
        ranges.append((img.offset(tags[_DT_REL], "DT_REL"), tags.get(_DT_RELSZ, 0), False))
    if _DT_JMPREL in tags and tags.get(_DT_PLTRELSZ, 0):
        rela = tags.get(_DT_PLTREL, _DT_RELA) == _DT_RELA
        ranges.append((img.offset(tags[_DT_JMPREL], "DT_JMPREL"), tags[_DT_PLTRELSZ], rela))

    seen: set[str] = set()
    out: list[SymbolRef] = []
    done: set[int] = set()
    for start, size, rela in ranges:
        if img.is64:
            ent = tags.get(_DT_RELAENT, 24) if rela else tags.get(_DT_RELENT, 16)
        else:
            ent = tags.get(_DT_RELAENT, 12) if rela else tags.get(_DT_RELENT, 8)
        if ent <= 0:
            raise ElfError(f"bad relocation entry size {ent}")
        img._need(start, size, "relocation table")
        for pos in range(start, start + size - size % ent, ent):
            # A linker may count the PLT relocations in DT_RELASZ too; glibc
            # processes each entry once.
            if pos in done:
                continue
            done.add(pos)
            if img.is64:
                (info,) = struct.unpack_from(img.e + "Q", img.data, pos + 8)
                sym, rtype = info >> 32, info & 0xFFFFFFFF
            else:
                (info,) = struct.unpack_from(img.e + "I", img.data, pos + 4)
                sym, rtype = info >> 8, info & 0xFF
            if sym == 0 or rtype == 0:
                continue
            ref = _symbol(img, symtab, syment, sym, strtab, strsz, versym, versions)
            if ref is None or ref.name in seen:
                continue
            seen.add(ref.name)
            out.append(ref)
    return tuple(out)


def _symbol(
    img: _Image,
    symtab: int,
    syment: int,
    index: int,
    strtab: int,
    strsz: int,
    versym: int | None,
    versions: dict[int, tuple[str, str]],
) -> SymbolRef | None:
    off = symtab + index * syment
    img._need(off, syment, f"dynamic symbol {index}")
    if img.is64:
        st_name, st_info, _, st_shndx = struct.unpack_from(img.e + "IBBH", img.data, off)
    else:
        st_name, st_info, _, st_shndx = struct.unpack_from(img.e + "I8xBBH", img.data, off)
    bind = st_info >> 4
    if st_shndx != _SHN_UNDEF or bind == _STB_LOCAL:
        return None
    name = img.cstr(strtab, strsz, st_name)
    version = file = None
    if versym is not None:
        img._need(versym + index * 2, 2, "DT_VERSYM entry")
        (ndx,) = struct.unpack_from(img.e + "H", img.data, versym + index * 2)
        found = versions.get(ndx & 0x7FFF)
        if found is not None:
            file, version = found
    return SymbolRef(name, bind == _STB_WEAK, version, file)


def _needed_versions(
    img: _Image, tags: dict[int, int], strtab: int, strsz: int
) -> dict[int, tuple[str, str]]:
    """vna_other index -> (library, version) from DT_VERNEED."""
    if _DT_VERNEED not in tags:
        return {}
    off = img.offset(tags[_DT_VERNEED], "DT_VERNEED")
    count = tags.get(_DT_VERNEEDNUM, 0)
    out: dict[int, tuple[str, str]] = {}
    for _ in range(count):
        img._need(off, 16, "version need entry")
        _, vn_cnt, vn_file, vn_aux, vn_next = struct.unpack_from(img.e + "HHIII", img.data, off)
        file = img.cstr(strtab, strsz, vn_file)
        aux = off + vn_aux
        for _ in range(vn_cnt):
            img._need(aux, 16, "version need aux entry")
            _, _, vna_other, vna_name, vna_next = struct.unpack_from(
                img.e + "IHHII", img.data, aux
            )
            out[vna_other] = (file, img.cstr(strtab, strsz, vna_name))
            if vna_next == 0:
                break
            aux += vna_next
        if vn_next == 0:
            break
        off += vn_next
    return out
