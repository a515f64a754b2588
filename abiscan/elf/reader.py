"""ELF facts: what a file is, what it needs and what it exports.

Everything here is read from bytes; nothing is loaded or executed. The file's
structure comes from pyelftools (:mod:`abiscan.elf.model`: header, sections,
segments, dynamic tags, version tables), read once per file; the tables with
tens of thousands of entries (dynamic symbols, hash, relocations) are decoded
in bulk by :mod:`abiscan.elf.tables` from the locations pyelftools gives. Every
failure, from pyelftools or from abiscan's own checks, is an :class:`ElfError`
with a short problem text, and work and memory are bounded by the size of the
input: no count read from the file is trusted before the bytes it describes
are known to exist.

Symbol names are the bulk of that work and are read only when asked for:
:func:`read_facts` checks where the dynamic symbol table and its strings are,
and :class:`ElfFacts` decodes them on demand, each fact once per object.

Dynamic information is read through the section headers (``.dynamic``,
``.dynsym``, ``.gnu.version_r``, ``.gnu.version_d``); a file without section
headers (stripped with ``sstrip``, or hand-made) falls back to PT_DYNAMIC and
the dynamic tags, the way the dynamic linker itself finds them.

Strings are decoded as UTF-8 with ``backslashreplace``
(:func:`abiscan.elf.tables.decode_name`): an undecodable byte ``0xff`` in a
``DT_NEEDED`` name reads ``\\xff``, so output never carries lone surrogates.
"""

from __future__ import annotations

from dataclasses import field, replace

from abiscan.elf import constants as c
from abiscan.elf.header import ElfError, ElfHeader, read_header, sniff_format
from abiscan.elf.model import ElfLayout, read_layout
from abiscan.elf.tables import (
    DecodedSymbols,
    DynamicSymbols,
    NameBudget,
    SymbolRef,
    only_elf_errors,
    pack_names,
    packed_references,
    symbol_count,
    unpack_names,
    unpack_references,
)
from abiscan.records import record

__all__ = [
    "MAX_RODATA",
    "ElfError",
    "ElfFacts",
    "ElfHeader",
    "ElfSummary",
    "read_facts",
    "read_header",
    "read_rodata",
    "sniff_format",
]


class _LazyReferences:
    """The relocation references of one file, decoded on first use and kept:
    packed as a summary keeps them (:func:`abiscan.elf.tables.pack_references`),
    and as :class:`SymbolRef` objects once those are asked for."""

    __slots__ = ("_data", "_layout", "_packed", "_refs")

    def __init__(
        self, layout: ElfLayout | None = None, data: bytes = b"", packed: bytes | None = None
    ) -> None:
        self._layout = layout
        self._data: bytes | None = data
        self._packed: bytes | ElfError | None = packed
        self._refs: tuple[SymbolRef, ...] | None = None

    def packed(self) -> bytes:
        if self._packed is None:
            try:
                self._packed = (
                    packed_references(self._layout, self._data or b"")
                    if self._layout is not None
                    else b""
                )
            except ElfError as exc:
                self._packed = exc
            # The bytes and the layout are not needed once decoded.
            self._data = self._layout = None
        if isinstance(self._packed, ElfError):
            raise self._packed
        return self._packed

    def get(self) -> tuple[SymbolRef, ...]:
        if self._refs is None:
            self._refs = unpack_references(self.packed())
        return self._refs


@record
class ElfFacts:
    """The dynamic-linking facts of one ELF file.

    ``header`` through ``version_defs`` are read and checked by
    :func:`read_facts`. The symbol facts (:attr:`exported`, :attr:`undefined`,
    :attr:`weak_undefined`, :attr:`pyinit_names`, :meth:`has_export`) come
    from the dynamic symbol table only when asked for: ``read_facts`` checks
    that the table and its string table lie inside the file and have the
    right entry size, but reads no symbol names. The first access to
    ``exported``, ``undefined`` or ``weak_undefined`` decodes the whole table
    once (cached for all three); ``has_export`` and ``pyinit_names`` look only
    at the few symbols whose names can match, until an object is asked often
    (then the exports are decoded once into a set). :attr:`references`, the
    relocations' symbols, are decoded once on first use. A lazily decoded fact
    may raise :class:`ElfError` (and nothing else).

    Two facts compare equal when their eager fields are equal and their
    dynamic symbol and string tables are byte-for-byte the same; comparing
    and hashing never decode symbols.
    """

    header: ElfHeader
    soname: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    version_needs: tuple[tuple[str, tuple[str, ...]], ...]
    version_defs: tuple[str, ...]
    # (file offset, size) of the read-only data: the .rodata sections, or
    # without section headers the read-only PT_LOAD segments.
    rodata_ranges: tuple[tuple[int, int], ...] = ()
    _symbols: DynamicSymbols | DecodedSymbols = field(
        default_factory=lambda: DynamicSymbols(), repr=False
    )
    _references: _LazyReferences = field(default_factory=_LazyReferences, repr=False, compare=False)

    @property
    def references(self) -> tuple[SymbolRef, ...]:
        """The undefined symbols the relocations make the dynamic linker look up,
        in glibc's order (:func:`abiscan.elf.references.symbol_references`).

        Decoded once per object, on first use; raises :class:`ElfError` (every
        time it is asked) when the relocation tables cannot be read.
        """
        return self._references.get()

    @property
    def exported(self) -> frozenset[str]:
        """Names of the defined GLOBAL/WEAK/GNU_UNIQUE symbols with DEFAULT or
        PROTECTED visibility: what other objects can bind to.

        Decodes the whole dynamic symbol table on first use; may raise
        :class:`ElfError` for a damaged string table.
        """
        return self._symbols.exported_names()

    @property
    def undefined(self) -> tuple[str, ...]:
        """Undefined GLOBAL symbols, in table order (decoded on first use, without
        the exports; may raise :class:`ElfError` like :attr:`exported`)."""
        return self._symbols.undefined_names()[0]

    @property
    def weak_undefined(self) -> tuple[str, ...]:
        """Undefined WEAK symbols, in table order (decoded with :attr:`undefined`)."""
        return self._symbols.undefined_names()[1]

    @property
    def pyinit_names(self) -> tuple[str, ...]:
        """Exported ``PyInit_*`` names, sorted: the module init functions.

        Reads only the symbols whose names start with ``PyInit_``; may raise
        :class:`ElfError` when such a name is not NUL-terminated.
        """
        return self._symbols.pyinit_names()

    def has_export(self, name: str) -> bool:
        """Whether ``name`` is in :attr:`exported`.

        The first few lookups of an object find ``name`` in the string table
        and check only the symbols that point at it (a few scans at C speed);
        later ones look it up in the exports, decoded once into a set, so a
        library that many references bind to costs its table size once.
        """
        return self._symbols.has_export(name)

    def settled(self) -> ElfFacts:
        """The same facts with every lazy one decoded now and the tables dropped
        (what a scan keeps of a file). Raises :class:`ElfError` like
        :meth:`summary`."""
        exported, undefined, weak = self._symbols.decoded()
        return replace(
            self,
            _symbols=DecodedSymbols(exported, undefined, weak, self.pyinit_names),
            _references=_LazyReferences(packed=self._references.packed()),
        )

    def summary(self) -> ElfSummary:
        """Every fact, decoded now: what a scan keeps of the file (and caches).

        Raises :class:`ElfError` when a lazily decoded fact cannot be read;
        such a file keeps its tables and fails the same way each time asked.
        """
        exported, undefined, weak = self._symbols.decoded()
        return ElfSummary(
            header=self.header,
            soname=self.soname,
            needed=self.needed,
            rpath=self.rpath,
            runpath=self.runpath,
            version_needs=self.version_needs,
            version_defs=self.version_defs,
            rodata_ranges=self.rodata_ranges,
            exported=pack_names(sorted(exported)),
            undefined=pack_names(undefined),
            weak_undefined=pack_names(weak),
            pyinit_names=self.pyinit_names,
            references=self._references.packed(),
        )

    @classmethod
    def from_summary(cls, summary: ElfSummary) -> ElfFacts:
        """The facts of a file from its summary, without its bytes."""
        symbols = DecodedSymbols(
            frozenset(unpack_names(summary.exported)),
            tuple(unpack_names(summary.undefined)),
            tuple(unpack_names(summary.weak_undefined)),
            summary.pyinit_names,
        )
        return cls(
            header=summary.header,
            soname=summary.soname,
            needed=summary.needed,
            rpath=summary.rpath,
            runpath=summary.runpath,
            version_needs=summary.version_needs,
            version_defs=summary.version_defs,
            rodata_ranges=summary.rodata_ranges,
            _symbols=symbols,
            # Unpacked into SymbolRef objects only when the loader asks.
            _references=_LazyReferences(packed=summary.references),
        )


@record
class ElfSummary:
    """Every fact of one ELF file a scan asks for, decoded: plain data that
    the content cache keeps between scans (:meth:`ElfFacts.summary`).

    Name lists are packed into bytes (:func:`abiscan.elf.tables.pack_names`),
    each name NUL-terminated: tens of thousands of exports are one byte
    string, not a JSON list. ``references`` packs each :class:`SymbolRef` as
    its name, ``w`` or ``s`` (weak or not), and its version and version file,
    each ``=value`` or empty for None (:func:`abiscan.elf.tables.pack_references`).
    """

    header: ElfHeader
    soname: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    version_needs: tuple[tuple[str, tuple[str, ...]], ...]
    version_defs: tuple[str, ...]
    rodata_ranges: tuple[tuple[int, int], ...]
    exported: bytes
    undefined: bytes
    weak_undefined: bytes
    pyinit_names: tuple[str, ...]
    references: bytes


# Read at most this much read-only data per binary: real extension modules
# have a few MB of .rodata at most; a hostile file gets no more.
MAX_RODATA = 64 << 20


def read_rodata(data: bytes, facts: ElfFacts) -> bytes:
    """The read-only data of an ELF file (:attr:`ElfFacts.rodata_ranges`), at most
    :data:`MAX_RODATA` bytes, each range with a NUL on each side so that the
    first and last strings are delimited; empty when there is none."""
    out: list[bytes] = []
    budget = MAX_RODATA
    for off, length in facts.rodata_ranges:
        take = min(length, budget, max(0, len(data) - off))
        if take > 0:
            out.append(data[off : off + take])
            budget -= take
    return b"\x00" + b"\x00".join(out) + b"\x00" if out else b""


def read_facts(data: bytes) -> ElfFacts:
    """Read the dynamic-linking facts of an ELF file.

    Raises :class:`ElfError` for anything that is not a well-formed ELF file:
    truncation, tables or strings outside the file, absurd counts or sizes.
    Symbol names are not read here (see :class:`ElfFacts`): a bad name in
    the dynamic symbol table surfaces, as an ElfError, only when a symbol
    fact that reads it is asked for.
    """
    data = bytes(data)
    layout = read_layout(data)
    # The explicit checks below should leave nothing for the guard to catch;
    # it keeps the promise of "only ElfError" if one was missed.
    with only_elf_errors():
        return _facts(layout, data)


def _facts(layout: ElfLayout, data: bytes) -> ElfFacts:
    dynstr = layout.dynstr
    need_strings = layout.version_need_strings
    def_strings = layout.version_def_strings
    names = NameBudget(len(dynstr) + len(need_strings) + len(def_strings))
    needed: list[str] = []
    rpath: list[str] = []
    runpath: list[str] = []
    soname: str | None = None
    for tag, val in layout.tags:
        if tag == c.DT_NEEDED:
            needed.append(names.name(dynstr, val, ".dynstr"))
        elif tag == c.DT_SONAME:
            soname = names.name(dynstr, val, ".dynstr")
        elif tag == c.DT_RPATH:
            rpath.extend(_split_path(names.name(dynstr, val, ".dynstr")))
        elif tag == c.DT_RUNPATH:
            runpath.extend(_split_path(names.name(dynstr, val, ".dynstr")))
    what = ".gnu.version_r strings"
    version_needs = tuple(
        (
            names.name(need_strings, need.file, what),
            tuple(names.name(need_strings, name, what) for name, _ in need.versions),
        )
        for need in layout.version_needs
    )
    version_defs = tuple(
        names.name(def_strings, name, ".gnu.version_d strings") for name in layout.version_defs
    )
    return ElfFacts(
        header=layout.header,
        soname=soname,
        needed=tuple(needed),
        rpath=tuple(rpath),
        runpath=tuple(runpath),
        version_needs=version_needs,
        version_defs=version_defs,
        rodata_ranges=_rodata_ranges(layout),
        _symbols=_symbols(layout, data),
        _references=_LazyReferences(layout, data),
    )


def _symbols(layout: ElfLayout, data: bytes) -> DynamicSymbols:
    """The dynamic symbol table and its strings, checked for place and entry size only."""
    std = 24 if layout.is64 else 16
    dynsym = layout.section(c.SHT_DYNSYM)
    little = layout.little
    if dynsym is not None:
        if dynsym.entsize != std:
            raise ElfError(f"bad .dynsym entry size {dynsym.entsize}: a symbol is {std} bytes")
        raw = _section_bytes(layout, data, dynsym.index, ".dynsym")
        if not 0 < dynsym.link < len(layout.sections):
            raise ElfError(f".dynsym links to section {dynsym.link}, which does not exist")
        strtab = _section_bytes(layout, data, dynsym.link, ".dynstr")
        return DynamicSymbols(raw, strtab, is64=layout.is64, little=little)
    if layout.sections or not layout.tags:
        return DynamicSymbols(b"", b"", is64=layout.is64, little=little)
    symtab = layout.tag(c.DT_SYMTAB)
    if symtab is None:
        return DynamicSymbols(b"", b"", is64=layout.is64, little=little)
    syment = layout.tag(c.DT_SYMENT)
    if syment is not None and syment != std:
        raise ElfError(f"bad DT_SYMENT {syment}: a symbol is {std} bytes")
    count = symbol_count(layout, data)
    if count is None:
        return DynamicSymbols(b"", b"", is64=layout.is64, little=little)
    off = layout.vaddr_to_offset(symtab, "DT_SYMTAB")
    size = count * std
    if off + size > len(data):
        raise ElfError(
            f"truncated: dynamic symbol table ends at {off + size:#x} past end of file"
            f" (size {len(data):#x})"
        )
    return DynamicSymbols(data[off : off + size], layout.dynstr, is64=layout.is64, little=little)


def _section_bytes(layout: ElfLayout, data: bytes, index: int, what: str) -> bytes:
    sec = layout.sections[index]
    if sec.sh_type == c.SHT_NOBITS:
        return b""
    if sec.offset + sec.size > len(data):
        raise ElfError(
            f"truncated: {what} (section {index}) ends at {sec.offset + sec.size:#x}"
            f" past end of file (size {len(data):#x})"
        )
    return data[sec.offset : sec.offset + sec.size]


def _rodata_ranges(layout: ElfLayout) -> tuple[tuple[int, int], ...]:
    """Where the read-only data is: ``.rodata*`` sections (SHT_NOBITS has no
    bytes), or without section headers the PT_LOAD segments that are
    readable only."""
    if layout.sections:
        return tuple(
            (s.offset, s.size)
            for s in layout.sections_named(".rodata")
            if s.sh_type != c.SHT_NOBITS
        )
    return tuple(
        (s.offset, s.filesz)
        for s in layout.segments
        if s.p_type == c.PT_LOAD and s.flags & 0x7 == c.PF_R
    )


def _split_path(value: str) -> list[str]:
    return value.split(":") if value else []
