"""The ELF model: pyelftools' parsers over a member's bytes, read once.

:func:`read_layout` is the one boundary between abiscan and pyelftools. Inside
it pyelftools' construct parsers (``ELFStructs``) read the header, the section
headers (with their names, for section lookup such as ``.rodata``), the
program headers and the dynamic tags, and its GNU version sections the version
need and definition tables; every exception pyelftools (or the
``construct`` and ``struct`` modules under it) can raise becomes an
:class:`~abiscan.elf.header.ElfError` there, and nothing of pyelftools leaves
it. The section headers, program headers and dynamic tags are tables of
fixed-size records: each of those three parsers is compiled once into a
``struct`` format with its enum mappings (:func:`_compiled`), so a table is
decoded in one call rather than a construct parse per record. The result, an
:class:`ElfLayout`, is plain data: where each table is and the few decoded
entries. The bulk tables (symbols, hash, relocations) are
decoded by :mod:`abiscan.elf.tables` from the locations given here.

pyelftools trusts counts read from the file; abiscan does not. Before a
table is walked its count is checked against the bytes it needs, and every
walk of a linked list (version needs and their auxiliary entries) is bounded
by its table's size, so a hostile file costs at most time linear in its size.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.common.utils import struct_parse
from elftools.construct import (
    ConstructError,
    FormatField,
    MappingAdapter,
    Pass,
    Struct,
    Value,
)
from elftools.construct.lib.container import Container
from elftools.elf.enums import ENUM_D_TAG_COMMON, ENUM_P_TYPE_BASE, ENUM_SH_TYPE_BASE
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection
from elftools.elf.sections import StringTableSection
from elftools.elf.structs import ELFStructs

from abiscan.elf import constants as c
from abiscan.elf.header import ElfError, ElfHeader, read_header
from abiscan.records import record

__all__ = ["ElfLayout", "Section", "Segment", "VersionNeed", "read_layout"]


@record
class Section:
    """One section header (numbers as in the file; ``name`` as pyelftools reads it)."""

    index: int
    name: str
    sh_type: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int
    addr: int


@record
class Segment:
    """One program header."""

    p_type: int
    offset: int
    vaddr: int
    filesz: int
    flags: int


@record
class VersionNeed:
    """One version-need entry: the library's name offset and (name offset, vna_other) pairs."""

    file: int
    versions: tuple[tuple[int, int], ...]


@record
class ElfLayout:
    """Where everything is, and the small tables, of one ELF file."""

    header: ElfHeader
    is64: bool
    little: bool
    sections: tuple[Section, ...]
    segments: tuple[Segment, ...]
    tags: tuple[tuple[int, int], ...]
    dynstr: bytes
    version_needs: tuple[VersionNeed, ...]
    version_need_strings: bytes
    version_defs: tuple[int, ...]
    version_def_strings: bytes

    def tag(self, which: int) -> int | None:
        """The value of the first dynamic tag ``which``, or None."""
        for tag, val in self.tags:
            if tag == which:
                return val
        return None

    def section(self, sh_type: int) -> Section | None:
        """The first section of type ``sh_type``."""
        return next((s for s in self.sections if s.sh_type == sh_type), None)

    def sections_named(self, prefix: str) -> tuple[Section, ...]:
        """Sections named ``prefix`` or ``prefix.*`` (``.rodata``, ``.rodata.str1.1``)."""
        return tuple(
            s for s in self.sections if s.name == prefix or s.name.startswith(prefix + ".")
        )

    def vaddr_to_offset(self, addr: int, what: str) -> int:
        """The file offset of a virtual address, through the PT_LOAD segments, as ld.so maps it."""
        return _file_offset(self.segments, addr, what)


def _file_offset(segments: tuple[Segment, ...], addr: int, what: str) -> int:
    for seg in segments:
        if seg.p_type == c.PT_LOAD and seg.vaddr <= addr < seg.vaddr + seg.filesz:
            return seg.offset + (addr - seg.vaddr)
    raise ElfError(f"{what} address {addr:#x} is not inside any loaded segment")


# What pyelftools and the modules under it raise for a damaged file.
_PYELFTOOLS_ERRORS = (
    ELFError,
    ConstructError,
    struct.error,
    ValueError,
    IndexError,
    KeyError,
    TypeError,
    AttributeError,
    OverflowError,
    UnicodeDecodeError,
    AssertionError,
    EOFError,
)


@contextmanager
def _pyelftools_boundary() -> Iterator[None]:
    """Every failure inside pyelftools becomes an ElfError with its text."""
    try:
        yield
    except ElfError:
        raise
    except MemoryError as exc:
        raise ElfError(f"malformed ELF file: a table too large to read ({exc})") from exc
    except _PYELFTOOLS_ERRORS as exc:
        raise ElfError(f"malformed ELF file: {exc or type(exc).__name__}") from exc


def read_layout(data: bytes) -> ElfLayout:
    """Read the structure of an ELF file through pyelftools; ElfError for any damage."""
    header = read_header(data)
    if header.bits == 0:
        raise ElfError(f"invalid ELF class: EI_CLASS is {header.ei_class}")
    if header.byte_order == "invalid":
        raise ElfError(f"invalid data encoding: EI_DATA is {header.ei_data}")
    with _pyelftools_boundary():
        return _Walk(data, header).layout()


def _number(enum: Mapping[str, Any], value: object) -> int:
    """pyelftools decodes known numbers to names: the number again."""
    if isinstance(value, int):
        return value
    found = enum.get(str(value))
    return found if isinstance(found, int) else -1


# pyelftools builds some 120 construct parsers for every file it opens (about 2
# ms, most of the cost of opening a small file). They depend only on the class,
# byte order, e_type, e_machine and OS ABI, and parse without keeping state,
# so one set per layout is built and shared.
_STRUCTS: dict[tuple[object, ...], ELFStructs] = {}
_MAX_SHARED_STRUCTS = 32
_Advanced = tuple[Any, Any, Any]


class _Elf:
    """What pyelftools' section classes read from the ``elffile`` they are given:
    its construct parsers (``structs``) and its ``stream``.

    Not an ``ELFFile``: importing :mod:`elftools.elf.elffile` imports pyelftools'
    DWARF and ARM unwind-table readers, some 15 ms of start-up that no scan uses
    (docs/decisions.md). abiscan reads the header, the section and program
    headers and the dynamic tags with pyelftools' parsers itself, and builds no
    ``Section`` but the version tables'.
    """

    def __init__(self, data: bytes, little: bool, bits: int) -> None:
        # (BytesIO.getbuffer() would copy the bytes.)
        self.stream = io.BytesIO(data)
        self.little_endian = little
        self.elfclass = bits
        ehdr = struct_parse(_structs(little, bits, None).Elf_Ehdr, self.stream, stream_pos=0)
        self.structs = _structs(
            little, bits, (ehdr["e_type"], ehdr["e_machine"], ehdr["e_ident"]["EI_OSABI"])
        )


def _structs(little: bool, bits: int, advanced: _Advanced | None) -> ELFStructs:
    key = (little, bits, advanced)
    found = _STRUCTS.get(key)
    if found is None:
        found = ELFStructs(little_endian=little, elfclass=bits)
        found.create_basic_structs()
        if advanced is not None:
            found.create_advanced_structs(*advanced)
        # Real layers use a handful of layouts; damaged headers could name
        # thousands (memory, and long garbage-collector pauses): keep a few.
        if len(_STRUCTS) < _MAX_SHARED_STRUCTS:
            _STRUCTS[key] = found
    return found


def _open(data: bytes, header: ElfHeader) -> _Elf:
    return _Elf(data, header.byte_order == "little", header.bits)


Record = Mapping[str, Any]


@record
class _Compiled:
    """One of pyelftools' record structs as a single ``struct`` format: its fields
    in its order, widths and byte order, each enum field decoded through
    pyelftools' own mapping (raw numbers it does not name pass through, as in
    pyelftools)."""

    packer: struct.Struct
    names: tuple[str, ...]
    enums: tuple[tuple[int, Mapping[Any, Any]], ...]  # (field position, value -> name)

    def records(self, data: bytes, offset: int, count: int, step: int) -> list[Record]:
        """``count`` records from ``offset``, ``step`` bytes apart (at least the record's size)."""
        packer, names = self.packer, self.names
        if step == packer.size:
            rows = list(packer.iter_unpack(data[offset : offset + count * step]))
        else:
            rows = [packer.unpack_from(data, offset + i * step) for i in range(count)]
        if self.enums:
            rows = [self._decoded(row) for row in rows]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def _decoded(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        out = list(row)
        for at, decoding in self.enums:
            out[at] = decoding.get(out[at], out[at])
        return tuple(out)


# id(parser) -> (parser, compiled): the entry keeps the parser alive, so its id
# names no other parser while the entry exists.
_COMPILED: dict[int, tuple[Struct, _Compiled | None]] = {}


def _compiled(parser: Struct) -> _Compiled | None:
    """``parser`` (one of the shared ``ELFStructs``' record structs) compiled once;
    None for a shape this does not know (then construct parses it, record by record)."""
    known = _COMPILED.get(id(parser))
    if known is not None and known[0] is parser:
        return known[1]
    order, fmt = "", ""
    names: list[str] = []
    enums: list[tuple[int, Mapping[Any, Any]]] = []
    found: _Compiled | None = None
    for sub in parser.subcons:
        if isinstance(sub, Value):
            continue  # computed from other fields (d_ptr): no bytes of its own
        field = sub.subcon if isinstance(sub, MappingAdapter) else sub
        if (
            not isinstance(field, FormatField)
            or not isinstance(field.packer.format, str)
            or not isinstance(sub.name, str)
        ):
            break
        if isinstance(sub, MappingAdapter):
            if sub.decdefault is not Pass:
                break  # an unnamed value would be an error there
            enums.append((len(names), sub.decoding))
        order = order or field.packer.format[0]
        if field.packer.format[0] != order:
            break
        fmt += field.packer.format[1:]
        names.append(sub.name)
    else:
        packer = struct.Struct(order + fmt)
        if packer.size == parser.sizeof():
            found = _Compiled(packer=packer, names=tuple(names), enums=tuple(enums))
    if len(_COMPILED) < 4 * _MAX_SHARED_STRUCTS:  # three record parsers per shared set
        _COMPILED[id(parser)] = (parser, found)
    return found


class _Walk:
    """One pass over a file with pyelftools; the checks pyelftools leaves out."""

    def __init__(self, data: bytes, header: ElfHeader) -> None:
        self.data = data
        self.size = len(data)
        self.header = header
        self.is64 = header.bits == 64
        self.elf = _open(data, header)

    def check_range(self, what: str, offset: int, size: int) -> None:
        end = offset + size
        if offset > self.size or end > self.size:
            raise ElfError(
                f"truncated: {what} ends at {end:#x} past end of file (size {self.size:#x})"
            )

    def bytes_at(self, what: str, offset: int, size: int) -> bytes:
        self.check_range(what, offset, size)
        return self.data[offset : offset + size]

    def records(self, parser: Struct, offset: int, count: int, step: int) -> list[Record]:
        """``count`` records parsed with pyelftools' ``parser`` from ``offset``,
        ``step`` bytes apart; the caller has checked that they lie in the file.

        A table is decoded in one call of the parser compiled to a ``struct``
        format (a record through construct costs some 15 µs: a cold scan of the
        real layer parsed 16,000 of them); a parser that does not compile is
        run record by record.
        """
        compiled = _compiled(parser)
        if compiled is not None:
            return compiled.records(self.data, offset, count, step)
        stream = self.elf.stream
        return [struct_parse(parser, stream, stream_pos=offset + i * step) for i in range(count)]

    def layout(self) -> ElfLayout:
        sections = self._sections()
        segments = self._segments(sections)
        tags, dynstr = self._dynamic(sections, segments)
        partial = ElfLayout(
            header=self.header,
            is64=self.is64,
            little=self.header.byte_order == "little",
            sections=sections,
            segments=segments,
            tags=tags,
            dynstr=dynstr,
            version_needs=(),
            version_need_strings=b"",
            version_defs=(),
            version_def_strings=b"",
        )
        needs, need_strings, defs, def_strings = _Versions(self, partial).read()
        return ElfLayout(
            header=partial.header,
            is64=partial.is64,
            little=partial.little,
            sections=sections,
            segments=segments,
            tags=tags,
            dynstr=dynstr,
            version_needs=needs,
            version_need_strings=need_strings,
            version_defs=defs,
            version_def_strings=def_strings,
        )

    # -- section and program headers ------------------------------------

    def _sections(self) -> tuple[Section, ...]:
        h = self.header
        if h.e_shoff == 0 or (h.e_shnum == 0 and h.e_shentsize == 0):
            return ()
        std = 64 if self.is64 else 40
        if h.e_shentsize < std:
            raise ElfError(f"bad e_shentsize {h.e_shentsize}: a section header is {std} bytes")
        shnum = h.e_shnum
        if shnum:
            self.check_range("section header table", h.e_shoff, shnum * h.e_shentsize)
        else:
            self.check_range("section header 0", h.e_shoff, std)
        # pyelftools' own section-header parser. Its Section objects are not
        # built: a hash section's object decodes the whole table on creation.
        shdr = self.elf.structs.Elf_Shdr
        if shnum == 0:
            # Extended numbering (0xff00 sections or more): the count is in
            # section 0, and the table must still fit in the file.
            shnum = self.records(shdr, h.e_shoff, 1, h.e_shentsize)[0]["sh_size"]
            self.check_range("section header table", h.e_shoff, shnum * h.e_shentsize)
        headers = self.records(shdr, h.e_shoff, max(shnum, 1), h.e_shentsize)
        names = self._names(headers)
        return tuple(
            Section(
                index=index,
                name=names(sec["sh_name"]),
                sh_type=_number(ENUM_SH_TYPE_BASE, sec["sh_type"]),
                offset=sec["sh_offset"],
                size=sec["sh_size"],
                link=sec["sh_link"],
                info=sec["sh_info"],
                entsize=sec["sh_entsize"],
                addr=sec["sh_addr"],
            )
            for index, sec in enumerate(headers)
        )

    def _names(self, headers: list[Record]) -> Callable[[int], str]:
        """Section names from the section-name string table (e_shstrndx); "" when unreadable."""
        index = self.header.e_shstrndx
        table = b""
        if 0 < index < len(headers):
            off, size = headers[index]["sh_offset"], headers[index]["sh_size"]
            if off + size <= self.size:
                table = self.data[off : off + size]

        def name(at: int) -> str:
            end = table.find(b"\0", at) if at < len(table) else -1
            return table[at:end].decode("utf-8", "backslashreplace") if end >= 0 else ""

        return name

    def _segments(self, sections: tuple[Section, ...]) -> tuple[Segment, ...]:
        h = self.header
        phnum = h.e_phnum
        if phnum == 0xFFFF and sections:
            phnum = sections[0].info  # PN_XNUM: the count is in section 0
        if phnum == 0 or h.e_phoff == 0:
            return ()
        std = 56 if self.is64 else 32
        if h.e_phentsize < std:
            raise ElfError(f"bad e_phentsize {h.e_phentsize}: a program header is {std} bytes")
        self.check_range("program header table", h.e_phoff, phnum * h.e_phentsize)
        # pyelftools' own program-header parser; its Segment objects are not
        # built because a PT_DYNAMIC one searches every section on creation.
        return tuple(
            Segment(
                p_type=_number(ENUM_P_TYPE_BASE, seg["p_type"]),
                offset=seg["p_offset"],
                vaddr=seg["p_vaddr"],
                filesz=seg["p_filesz"],
                flags=int(seg["p_flags"]),
            )
            for seg in self.records(self.elf.structs.Elf_Phdr, h.e_phoff, phnum, h.e_phentsize)
        )

    # -- the dynamic section ----------------------------------------------

    def _dynamic(
        self, sections: tuple[Section, ...], segments: tuple[Segment, ...]
    ) -> tuple[tuple[tuple[int, int], ...], bytes]:
        dyn = next((s for s in sections if s.sh_type == c.SHT_DYNAMIC), None)
        if dyn is not None:
            self.check_range(f".dynamic (section {dyn.index})", dyn.offset, dyn.size)
            tags = self._tags(dyn.offset, dyn.size)
            if not 0 < dyn.link < len(sections):
                raise ElfError(f".dynamic links to section {dyn.link}, which does not exist")
            return tags, self.section_bytes(sections[dyn.link], ".dynstr")
        pt = next((s for s in segments if s.p_type == c.PT_DYNAMIC), None)
        if pt is None:
            return (), b""
        self.check_range("PT_DYNAMIC", pt.offset, pt.filesz)
        tags = self._tags(pt.offset, pt.filesz)
        table = dict(reversed(tags))
        strtab, strsz = table.get(c.DT_STRTAB), table.get(c.DT_STRSZ)
        if strtab is None or strsz is None:
            return tags, b""
        return tags, self.bytes_at("DT_STRTAB", _file_offset(segments, strtab, "DT_STRTAB"), strsz)

    def _tags(self, offset: int, size: int) -> tuple[tuple[int, int], ...]:
        """The tags up to DT_NULL or the table's end, decoded by pyelftools' Elf_Dyn."""
        step = 16 if self.is64 else 8
        entries = self.records(self.elf.structs.Elf_Dyn, offset, size // step, step)
        out = []
        positions = range(offset, offset + size - size % step, step)
        for pos, entry in zip(positions, entries, strict=True):
            tag = _number(ENUM_D_TAG_COMMON, entry["d_tag"])
            if tag == c.DT_NULL:
                break
            if tag < 0:
                # A name pyelftools knows only for some machine: read it raw.
                tag = int.from_bytes(
                    self.data[pos : pos + step // 2], "little" if self.elf.little_endian else "big"
                )
            out.append((tag, entry["d_val"]))
        return tuple(out)

    def section_bytes(self, sec: Section, what: str) -> bytes:
        if sec.sh_type == c.SHT_NOBITS:
            return b""
        return self.bytes_at(f"{what} (section {sec.index})", sec.offset, sec.size)


class _Versions:
    """Version needs and definitions through pyelftools' GNU version sections.

    Files without section headers have the tables only through DT_VERNEED /
    DT_VERDEF; pyelftools reads them with the same section classes, over a
    header made from the tags (the table runs at most to the end of the file).
    Each walk visits at most as many entries as the table can hold, and stops
    at a zero ``vn_next`` / ``vna_next`` as glibc does.
    """

    def __init__(self, walk: _Walk, layout: ElfLayout) -> None:
        self.walk = walk
        self.layout = layout
        self.strings = b""

    def read(self) -> tuple[tuple[VersionNeed, ...], bytes, tuple[int, ...], bytes]:
        needs = self._needs()
        need_strings, self.strings = self.strings, b""
        defs = self._defs()
        return needs, need_strings, defs, self.strings

    def _section(
        self, sh_type: int, tag_addr: int, tag_num: int, what: str, cls: type[Any]
    ) -> tuple[Any, int] | None:
        """(pyelftools section object, bytes the table may span)."""
        lay = self.layout
        walk = self.walk
        sec = lay.section(sh_type)
        if sec is not None:
            walk.check_range(f"{what} (section {sec.index})", sec.offset, sec.size)
            if not 0 < sec.link < len(lay.sections):
                raise ElfError(f"{what} links to section {sec.link}, which does not exist")
            self.strings = walk.section_bytes(lay.sections[sec.link], f"{what} strings")
            strings = _unread_strings(walk.elf)
            # sh_info 0 leaves the count unknown: walk to the zero vn_next.
            count = sec.info or sec.size // 16
            return cls(_header(sec.offset, sec.size, count), what, walk.elf, strings), sec.size
        if lay.sections:
            return None
        addr, num = lay.tag(tag_addr), lay.tag(tag_num)
        if addr is None or not num:
            return None
        off = lay.vaddr_to_offset(addr, what)
        span = max(0, walk.size - off)
        self.strings = lay.dynstr
        strings = _unread_strings(walk.elf)
        # DT_VERNEEDNUM / DT_VERDEFNUM are bounded by what the rest of the file can hold.
        return cls(_header(off, span, min(num, span // 8)), what, walk.elf, strings), span

    def _needs(self) -> tuple[VersionNeed, ...]:
        found = self._section(
            c.SHT_GNU_VERNEED, c.DT_VERNEED, c.DT_VERNEEDNUM, ".gnu.version_r", GNUVerNeedSection
        )
        if found is None:
            return ()
        sec, span = found
        table = _Bounds(sec["sh_offset"], span, ".gnu.version_r")
        out: list[VersionNeed] = []
        need_at = table.start
        versions_iter = sec.iter_versions()
        for _ in range(sec.num_versions()):
            table.visit(need_at, 16, "version need entry")
            need, auxes = next(versions_iter)
            count, aux_at = need.entry["vn_cnt"], need_at + need.entry["vn_aux"]
            versions: list[tuple[int, int]] = []
            for _ in range(count):
                table.visit(aux_at, 16, "version need aux entry")
                aux = next(auxes)
                versions.append((aux.entry["vna_name"], aux.entry["vna_other"]))
                if aux.entry["vna_next"] == 0:
                    break
                aux_at += aux.entry["vna_next"]
            out.append(VersionNeed(file=need.entry["vn_file"], versions=tuple(versions)))
            if need.entry["vn_next"] == 0:
                break
            need_at += need.entry["vn_next"]
        return tuple(out)

    def _defs(self) -> tuple[int, ...]:
        found = self._section(
            c.SHT_GNU_VERDEF, c.DT_VERDEF, c.DT_VERDEFNUM, ".gnu.version_d", GNUVerDefSection
        )
        if found is None:
            return ()
        sec, span = found
        table = _Bounds(sec["sh_offset"], span, ".gnu.version_d")
        out: list[int] = []
        def_at = table.start
        versions_iter = sec.iter_versions()
        for _ in range(sec.num_versions()):
            table.visit(def_at, 20, "version definition")
            vdef, auxes = next(versions_iter)
            # The base definition names the file itself (its soname), not a
            # version anything can require.
            if vdef.entry["vd_cnt"] and not vdef.entry["vd_flags"] & c.VER_FLG_BASE:
                table.visit(def_at + vdef.entry["vd_aux"], 8, "version definition aux")
                out.append(next(auxes).entry["vda_name"])
            if vdef.entry["vd_next"] == 0:
                break
            def_at += vdef.entry["vd_next"]
        return tuple(out)


class _Bounds:
    """A version table's extent, and a budget of entry visits.

    Every entry must lie inside the table before pyelftools reads it. Entries
    are at least 8 bytes and do not overlap in any file a linker wrote, so a
    walk that visits more entries than ``span // 8`` is going round shared or
    looping chains (N needs sharing one chain of M cost N times M): it stops
    there, and the walk costs at most the table's size.
    """

    def __init__(self, start: int, span: int, what: str) -> None:
        self.start = start
        self.end = start + span
        self.what = what
        self.budget = span // 8 + 1

    def visit(self, at: int, size: int, entry: str) -> None:
        if at < self.start or at + size > self.end:
            raise ElfError(f"truncated: {entry} at {at - self.start:#x} of {self.what}")
        self.budget -= 1
        if self.budget < 0:
            raise ElfError(
                f"{self.what}: more entries than its {self.end - self.start} bytes can hold"
                " (entries share or loop through their chains)"
            )


class _UnreadStrings(StringTableSection):
    """The string table given to pyelftools' version sections, which never reads.

    abiscan reads the names itself, inside the table's bounds
    (:func:`abiscan.elf.tables.cstr`). pyelftools would read each auxiliary
    entry's name up to the next NUL anywhere in the file: with many entries
    pointing at a long run of non-NUL bytes, work quadratic in the file.
    """

    def get_string(self, offset: int) -> str:
        return ""


def _unread_strings(elf: _Elf) -> _UnreadStrings:
    # pyelftools types ``elffile`` as its ELFFile; a section reads only its stream and structs.
    carrier: Any = elf
    return _UnreadStrings(_header(0, 0, 0), "", carrier)


def _header(offset: int, size: int, info: int) -> Container:
    """A section header for a table known only from the dynamic tags."""
    return Container(
        sh_name=0,
        sh_type="SHT_NULL",
        sh_flags=0,
        sh_addr=0,
        sh_offset=offset,
        sh_size=size,
        sh_link=0,
        sh_info=info,
        sh_addralign=1,
        sh_entsize=0,
    )
