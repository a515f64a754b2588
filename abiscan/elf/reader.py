"""ELF facts: what a file is, what it needs and what it exports.

Everything here is read from bytes; nothing is loaded or executed. The parser
is our own (``struct`` over the raw bytes) rather than pyelftools' object
model, for two reasons: the dynamic symbol table of a real extension module
has tens of thousands of entries and pyelftools decodes them one at a time
(about 25 µs each), and files in the wild are sometimes truncated or corrupt,
so every offset and size is checked against the file before use and every
failure becomes an :class:`ElfError` with a short problem text. Work and
memory are bounded by the size of the input: no count read from the file is
trusted before the bytes it describes are known to exist.

Symbol names are the bulk of that work and are read only when asked for:
:func:`read_facts` checks where the dynamic symbol table and its strings
are, and :class:`ElfFacts` decodes them on demand. Looking up one name
(:meth:`ElfFacts.has_export`) or the ``PyInit_`` names searches the string
table and the symbol table's columns with ``bytes`` methods, at C speed,
and never decodes the whole table.

Dynamic information is read through the section headers (``.dynamic``,
``.dynsym``, ``.gnu.version_r``, ``.gnu.version_d``); a file without section
headers (stripped with ``sstrip``, or hand-made) falls back to PT_DYNAMIC and
the dynamic tags, the way the dynamic linker itself finds them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import compress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from abiscan.elf.references import SymbolRef

from abiscan.errors import ElfError as ElfError  # re-exported (its old home)

__all__ = [
    "ElfError",
    "ElfFacts",
    "ElfHeader",
    "read_facts",
    "read_header",
    "sniff_format",
]

EI_NIDENT = 16
_ELF_MAGIC = b"\x7fELF"

ELFCLASS32 = 1
ELFCLASS64 = 2
ELFDATA2LSB = 1
ELFDATA2MSB = 2

_CLASS_NAMES = {0: "ELFCLASSNONE", 1: "ELFCLASS32", 2: "ELFCLASS64"}
_TYPE_NAMES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
_MACHINE_NAMES = {
    2: "sparc",
    3: "i386",
    8: "mips",
    20: "ppc",
    21: "ppc64",
    22: "s390",
    40: "arm",
    42: "sh",
    43: "sparcv9",
    50: "ia64",
    62: "x86_64",
    183: "aarch64",
    243: "riscv",
    258: "loongarch",
}
_OSABI_NAMES = {
    0: "ELFOSABI_SYSV",
    1: "ELFOSABI_HPUX",
    2: "ELFOSABI_NETBSD",
    3: "ELFOSABI_GNU",
    6: "ELFOSABI_SOLARIS",
    9: "ELFOSABI_FREEBSD",
    12: "ELFOSABI_OPENBSD",
    97: "ELFOSABI_ARM",
    255: "ELFOSABI_STANDALONE",
}

_SHN_UNDEF = 0
_SHN_LORESERVE = 0xFF00
_SHN_XINDEX = 0xFFFF
_PN_XNUM = 0xFFFF

_SHT_NOBITS = 8
_SHT_DYNAMIC = 6
_SHT_DYNSYM = 11
_SHT_GNU_VERDEF = 0x6FFFFFFD
_SHT_GNU_VERNEED = 0x6FFFFFFE

_PT_LOAD = 1
_PT_DYNAMIC = 2

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
_DT_GNU_HASH = 0x6FFFFEF5
_DT_VERDEF = 0x6FFFFFFC
_DT_VERDEFNUM = 0x6FFFFFFD
_DT_VERNEED = 0x6FFFFFFE
_DT_VERNEEDNUM = 0x6FFFFFFF

_STB_GLOBAL = 1
_STB_WEAK = 2
_STB_GNU_UNIQUE = 10
_STV_DEFAULT = 0
_STV_PROTECTED = 3

_VER_FLG_BASE = 1


def sniff_format(data: bytes) -> str:
    """Name the executable format of ``data`` from its first bytes.

    Returns ``"elf"``, ``"mach-o"`` (thin 32/64-bit in either byte order, and
    fat/universal), ``"pe"`` (an ``MZ`` DOS header, as PE/COFF DLLs have),
    ``"empty"`` or ``"unknown"``.
    """
    if not data:
        return "empty"
    head = bytes(data[:8])
    if head.startswith(_ELF_MAGIC):
        return "elf"
    magic = head[:4]
    if magic in (
        b"\xfe\xed\xfa\xce",
        b"\xce\xfa\xed\xfe",
        b"\xfe\xed\xfa\xcf",
        b"\xcf\xfa\xed\xfe",
    ):
        return "mach-o"
    if magic in (b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf"):
        # Java class files share 0xcafebabe; there the next word is the class
        # file version (45 and up), while a fat Mach-O has a small arch count.
        if len(head) < 8:
            return "unknown"
        nfat = int.from_bytes(head[4:8], "big")
        return "mach-o" if 0 < nfat < 45 else "unknown"
    if head.startswith(b"MZ"):
        return "pe"
    return "unknown"


@dataclass(frozen=True)
class ElfHeader:
    """The identification bytes and ELF header fields, as raw numbers.

    Holds what glibc's ``open_verify`` examines plus the table locations the
    rest of the parser needs. For an invalid EI_CLASS the fields after
    ``e_version`` are decoded with the 64-bit layout, and for an invalid
    EI_DATA in little-endian order: that is how a 64-bit little-endian
    dynamic linker reads such a file.
    """

    ei_class: int
    ei_data: int
    ei_version: int
    ei_osabi: int
    ei_abiversion: int
    ei_pad: bytes
    e_type: int
    e_machine: int
    e_version: int
    e_phentsize: int
    e_phnum: int
    e_shnum: int
    e_entry: int = 0
    e_phoff: int = 0
    e_shoff: int = 0
    e_flags: int = 0
    e_ehsize: int = 0
    e_shentsize: int = 0
    e_shstrndx: int = 0

    @property
    def bits(self) -> int:
        return {ELFCLASS32: 32, ELFCLASS64: 64}.get(self.ei_class, 0)

    @property
    def byte_order(self) -> str:
        return {ELFDATA2LSB: "little", ELFDATA2MSB: "big"}.get(self.ei_data, "invalid")

    @property
    def machine_name(self) -> str:
        return _MACHINE_NAMES.get(self.e_machine, f"EM_{self.e_machine}")

    @property
    def class_name(self) -> str:
        return _CLASS_NAMES.get(self.ei_class, f"ELFCLASS_{self.ei_class}")

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES.get(self.e_type, f"ET_{self.e_type:#x}")

    @property
    def osabi_name(self) -> str:
        return _OSABI_NAMES.get(self.ei_osabi, f"ELFOSABI_{self.ei_osabi}")

    def describe(self) -> str:
        """A ``file(1)``-like phrase: ``ELF 64-bit LSB ET_DYN, machine x86_64``."""
        bits = f"{self.bits}-bit" if self.bits else f"{self.class_name}"
        order = {"little": "LSB", "big": "MSB"}.get(self.byte_order, f"EI_DATA={self.ei_data}")
        return f"ELF {bits} {order} {self.type_name}, machine {self.machine_name}"


def read_header(data: bytes) -> ElfHeader:
    """Decode the identification bytes and the ELF header.

    Raises :class:`ElfError` when ``data`` is shorter than the 16
    identification bytes, lacks the ELF magic, or is shorter than the ELF
    header of its class.
    """
    n = len(data)
    if n < EI_NIDENT:
        raise ElfError(
            f"file too short: {n} bytes, less than the {EI_NIDENT}-byte ELF identification"
        )
    if bytes(data[:4]) != _ELF_MAGIC:
        raise ElfError(f"not an ELF file: bad magic {bytes(data[:4]).hex()}")
    ei_class, ei_data, ei_version, ei_osabi, ei_abiversion = data[4:9]
    e = ">" if ei_data == ELFDATA2MSB else "<"
    if ei_class == ELFCLASS32:
        size = 52
        fmt = e + "HHIIIIIHHHHHH"
    else:
        size = 64
        fmt = e + "HHIQQQIHHHHHH"
    if n < size:
        cls = _CLASS_NAMES.get(ei_class, f"ELFCLASS_{ei_class}")
        raise ElfError(f"file too short: {n} bytes, less than the {size}-byte {cls} ELF header")
    (
        e_type,
        e_machine,
        e_version,
        e_entry,
        e_phoff,
        e_shoff,
        e_flags,
        e_ehsize,
        e_phentsize,
        e_phnum,
        e_shentsize,
        e_shnum,
        e_shstrndx,
    ) = struct.unpack_from(fmt, data, EI_NIDENT)
    return ElfHeader(
        ei_class=ei_class,
        ei_data=ei_data,
        ei_version=ei_version,
        ei_osabi=ei_osabi,
        ei_abiversion=ei_abiversion,
        ei_pad=bytes(data[9:16]),
        e_type=e_type,
        e_machine=e_machine,
        e_version=e_version,
        e_phentsize=e_phentsize,
        e_phnum=e_phnum,
        e_shnum=e_shnum,
        e_entry=e_entry,
        e_phoff=e_phoff,
        e_shoff=e_shoff,
        e_flags=e_flags,
        e_ehsize=e_ehsize,
        e_shentsize=e_shentsize,
        e_shstrndx=e_shstrndx,
    )


@dataclass(frozen=True)
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
    at the few symbols whose names can match. A lazily decoded fact may raise
    :class:`ElfError` (and nothing else) when a symbol it reads has a name
    outside the string table or without its terminating NUL.

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
    _symbols: _DynamicSymbols = field(default_factory=lambda: _DynamicSymbols(), repr=False)
    _references: _LazyReferences = field(
        default_factory=lambda: _LazyReferences(b""), repr=False, compare=False
    )

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
        """Whether ``name`` is in :attr:`exported`, without decoding the table.

        Finds ``name`` in the string table and checks only the symbols that
        point at it, so it costs a few scans at C speed however large the
        table is.
        """
        return self._symbols.has_export(name)


class _LazyReferences:
    """The relocation references of one file, decoded on first use and kept."""

    __slots__ = ("_data", "_result")

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data
        self._result: tuple[SymbolRef, ...] | ElfError | None = None

    def get(self) -> tuple[SymbolRef, ...]:
        if self._result is None:
            from abiscan.elf.references import symbol_references

            try:
                self._result = symbol_references(self._data or b"") if self._data else ()
            except ElfError as exc:
                self._result = exc
            self._data = None  # the bytes are not needed once decoded
        if isinstance(self._result, ElfError):
            raise self._result
        return self._result


# What the lazy symbol decoding treats as unexpected (an ElfError for the
# caller): the same list read_facts guards.
_UNEXPECTED = (struct.error, ValueError, IndexError, OverflowError, MemoryError)


@contextmanager
def _only_elf_errors() -> Iterator[None]:
    """Turn any exception the explicit checks missed into an ElfError."""
    try:
        yield
    except ElfError:
        raise
    except _UNEXPECTED as exc:
        raise ElfError(f"malformed ELF file: {exc}") from exc


def _table(match: Callable[[int], bool]) -> bytes:
    """A ``bytes.translate`` table mapping each byte to 1 or 0."""
    return bytes(1 if match(i) else 0 for i in range(256))


_EXPORT_BINDS = (_STB_GLOBAL, _STB_WEAK, _STB_GNU_UNIQUE)
_EXPORT_VISIBILITIES = (_STV_DEFAULT, _STV_PROTECTED)
# Classifiers for the st_info, st_other and st_shndx columns.
_T_EXPORT_BIND = _table(lambda b: b >> 4 in _EXPORT_BINDS)
_T_GLOBAL = _table(lambda b: b >> 4 == _STB_GLOBAL)
_T_WEAK = _table(lambda b: b >> 4 == _STB_WEAK)
_T_VISIBLE = _table(lambda b: b & 3 in _EXPORT_VISIBILITIES)
_T_ZERO = _table(lambda b: b == 0)
_T_NONZERO = _table(lambda b: b != 0)

# has_export searches the string table for its first few lookups (an
# extension's own PyInit_ lookup, a library's rare use); past this many it
# decodes the exports into a set once, so lookups never cost table size each.
_FIND_LOOKUPS = 8
# has_export / pyinit_names look string offsets up one at a time when there
# are at most this many; more share one pass over the whole name column.
_FEW_OFFSETS = 8
# A lookup verifies the records whose st_name has the wanted low byte one by
# one when there are at most this many (or one per 32 records); more build an
# exact 4-byte mask. Real tables give about one hit per 256 records.
_FEW_HITS = 64
# Decoding stops with an ElfError past this many bytes of distinct symbol
# names per byte of string table (plus the slack); see _DynamicSymbols._strings.
_NAME_BYTES_PER_TABLE_BYTE = 8
_NAME_BYTES_SLACK = 1 << 20


def _equal_to(value: int) -> bytes:
    """A ``bytes.translate`` table mapping ``value`` to 1 and every other byte to 0."""
    return bytes(value) + b"\1" + bytes(255 - value)


def _and_masks(first: bytes, *rest: bytes) -> bytes:
    """Bytewise AND of equally long 0/1 byte strings (as big integers: C speed)."""
    acc = int.from_bytes(first, "little")
    for mask in rest:
        acc &= int.from_bytes(mask, "little")
    return acc.to_bytes(len(first), "little")


def _or_bytes(a: bytes, b: bytes) -> bytes:
    """Bytewise OR of two equally long byte strings."""
    return (int.from_bytes(a, "little") | int.from_bytes(b, "little")).to_bytes(len(a), "little")


def _cstr(tab: bytes, off: int, what: str) -> str:
    """The NUL-terminated string at ``off`` of a string table."""
    end = tab.find(b"\0", off) if off < len(tab) else -1
    if end < 0:
        raise _bad_string(tab, off, what)
    # ELF names are bytes; surrogateescape keeps odd bytes round-trippable.
    return tab[off:end].decode("utf-8", "surrogateescape")


def _bad_string(tab: bytes, off: int, what: str) -> ElfError:
    if off >= len(tab):
        return ElfError(f"string offset {off:#x} out of range of {what} (size {len(tab):#x})")
    return ElfError(f"unterminated string at offset {off:#x} of {what}")


def _overlapping(tab: bytes, budget: int) -> ElfError:
    return ElfError(
        f"symbol names overlap implausibly: more than {budget} bytes of names"
        f" from a {len(tab)}-byte .dynstr"
    )


class _DynamicSymbols:
    """A dynamic symbol table and its string table, decoded only as far as asked.

    Holds copies of the two tables, whose location and entry size
    :func:`read_facts` has checked. Nothing here trusts a symbol's fields:
    every st_name is checked against the string table before it is read,
    and work is linear in the size of the tables.

    The fast lookups work on columns: ``symtab[k::entsize]`` is byte ``k`` of
    every record, cut out at C speed. To find the records whose st_name is a
    given offset, the column of st_name's least significant byte is searched
    with ``bytes.find`` and each hit verified (or, when the byte is common,
    the four byte columns are compared at once through ``bytes.translate``
    and a big-integer AND). Offsets come from searching the string table for
    ``name + NUL``, which finds every string equal to ``name``, including
    ones sharing the tail of a longer string (``"foo"`` at the end of
    ``"xfoo"``).
    """

    __slots__ = (
        "_columns",
        "_exported",
        "_hash",
        "_info_at",
        "_little",
        "_lookups",
        "_pyinit",
        "_pyinit_at",
        "_std",
        "_strtab",
        "_symtab",
        "_undefined",
    )

    def __init__(
        self, symtab: bytes = b"", strtab: bytes = b"", *, is64: bool = True, little: bool = True
    ) -> None:
        std = 24 if is64 else 16
        self._std = std
        # A partial record at the end is ignored, as the dynamic linker would.
        self._symtab = symtab[: len(symtab) - len(symtab) % std]
        self._strtab = strtab
        # st_info, st_other and st_shndx follow each other in both classes.
        self._info_at = 4 if is64 else 12
        self._little = little
        self._columns: dict[int, bytes] = {}
        # Decoded separately: an extension's few undefined symbols are often all
        # that is asked of a table with tens of thousands of exports.
        self._exported: frozenset[str] | None = None
        self._undefined: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self._pyinit: tuple[str, ...] | None = None
        self._pyinit_at: list[int] | None = None
        self._hash: int | None = None
        self._lookups = 0

    # -- identity -----------------------------------------------------------

    def _key(self) -> tuple[int, bool, bytes, bytes]:
        return (self._std, self._little, self._symtab, self._strtab)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _DynamicSymbols):
            return NotImplemented
        return self is other or self._key() == other._key()

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(self._key())
        return self._hash

    def __repr__(self) -> str:
        return f"<{len(self._symtab) // self._std} dynamic symbols>"

    # -- columns ------------------------------------------------------------

    def _column(self, at: int) -> bytes:
        """Byte ``at`` of every record."""
        col = self._columns.get(at)
        if col is None:
            col = self._columns[at] = self._symtab[at :: self._std]
        return col

    def _name_byte(self, j: int) -> bytes:
        """Byte ``j`` (0 = least significant) of every st_name."""
        return self._column(j if self._little else 3 - j)

    def _st_names(self) -> tuple[int, ...]:
        """Every st_name as an integer, in table order."""
        n = len(self._symtab) // self._std
        packed = bytearray(4 * n)
        for k in range(4):
            packed[k::4] = self._column(k)
        return struct.unpack(f"{'<' if self._little else '>'}{n}I", packed)

    def _st_name(self, index: int) -> int:
        at = index * self._std
        return int.from_bytes(self._symtab[at : at + 4], "little" if self._little else "big")

    def _is_exported(self, index: int) -> bool:
        sym = self._symtab
        at = index * self._std + self._info_at
        return (
            sym[at] >> 4 in _EXPORT_BINDS
            and sym[at + 1] & 3 in _EXPORT_VISIBILITIES
            and (sym[at + 2] != 0 or sym[at + 3] != 0)
        )

    # -- full decode --------------------------------------------------------

    def decoded(self) -> tuple[frozenset[str], tuple[str, ...], tuple[str, ...]]:
        """(exported, undefined, weak_undefined), each decoded once."""
        undefined, weak = self.undefined_names()
        return self.exported_names(), undefined, weak

    def exported_names(self) -> frozenset[str]:
        if self._exported is None:
            with _only_elf_errors():
                self._exported = self._decode_exported()
        return self._exported

    def undefined_names(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(undefined GLOBAL, undefined WEAK), in table order."""
        if self._undefined is None:
            with _only_elf_errors():
                self._undefined = self._decode_undefined()
        return self._undefined

    def _decode_exported(self) -> frozenset[str]:
        if not self._symtab:
            return frozenset()
        at = self._info_at
        shndx = _or_bytes(self._column(at + 2), self._column(at + 3))
        exported_mask = _and_masks(
            self._column(at).translate(_T_EXPORT_BIND),
            self._column(at + 1).translate(_T_VISIBLE),
            shndx.translate(_T_NONZERO),
        )
        # filter(None, ...) drops st_name 0, the conventional "no name".
        return frozenset(
            self._strings(filter(None, compress(self._st_names(), exported_mask)), [0])
        )

    def _decode_undefined(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if not self._symtab:
            return (), ()
        at = self._info_at
        binds = self._column(at)
        undefined = _or_bytes(self._column(at + 2), self._column(at + 3)).translate(_T_ZERO)
        undefined_mask = _and_masks(binds.translate(_T_GLOBAL), undefined)
        weak_mask = _and_masks(binds.translate(_T_WEAK), undefined)
        st_names = self._st_names()
        spent = [0]
        return (
            tuple(self._strings(filter(None, compress(st_names, undefined_mask)), spent)),
            tuple(self._strings(filter(None, compress(st_names, weak_mask)), spent)),
        )

    def _strings(self, offsets: Iterable[int], spent: list[int]) -> list[str]:
        """The names at ``offsets`` of the string table, checked.

        The bytes read are capped (``spent`` carries the count between
        calls): names that are suffixes of longer names (tail merging) let a
        hostile table make every symbol name almost the whole table, which
        would take time and memory quadratic in its size. Linkers overlap
        names very little (on a Debian system's libraries, the names add up
        to at most 1.1 times the string table), so the cap sits far above
        any real file.
        """
        tab = self._strtab
        budget = _NAME_BYTES_PER_TABLE_BYTE * len(tab) + _NAME_BYTES_SLACK
        total = spent[0]
        out: list[str] = []
        append = out.append
        if tab.isascii():
            # One decode for the whole table; str.find then works in place.
            text = tab.decode("ascii")
            find = text.find
            for off in offsets:
                end = find("\0", off)
                if end < 0:
                    raise _bad_string(tab, off, ".dynstr")
                total += end - off
                if total > budget:
                    raise _overlapping(tab, budget)
                append(text[off:end])
        else:
            bfind = tab.find
            for off in offsets:
                end = bfind(b"\0", off)
                if end < 0:
                    raise _bad_string(tab, off, ".dynstr")
                total += end - off
                if total > budget:
                    raise _overlapping(tab, budget)
                append(tab[off:end].decode("utf-8", "surrogateescape"))
        spent[0] = total
        return out

    # -- lookups ------------------------------------------------------------

    def has_export(self, name: str) -> bool:
        if self._exported is not None:
            return name in self._exported
        self._lookups += 1
        if self._lookups > _FIND_LOOKUPS:
            # Each search below scans the string table: past a few lookups the
            # object is a library others bind to, and one decode into a set
            # keeps the cost linear in (references + table size).
            return name in self.exported_names()
        try:
            encoded = name.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return False  # a lone surrogate no decoded name can contain
        if b"\0" in encoded:
            return False
        needle = encoded + b"\0"
        with _only_elf_errors():
            if encoded.startswith(b"PyInit_") and self._pyinit_at is not None:
                # Every string equal to the name starts where "PyInit_" does:
                # reuse the scan pyinit_names made.
                starts = self._strtab.startswith
                offsets = [off for off in self._pyinit_at if starts(needle, off)]
                return bool(self._exported_offsets(offsets, first=True))
            # Usually the first string equal to the name is the symbol's: stop
            # there rather than scan the rest of the table for other copies.
            at = self._strtab.find(needle, 1)
            if at < 0:
                return False
            if any(self._is_exported(i) for i in self._records_named(at)):
                return True
            return bool(self._exported_offsets(self._offsets_of(needle, at + 1), first=True))

    def pyinit_names(self) -> tuple[str, ...]:
        if self._pyinit is None:
            if self._exported is not None:
                names = {n for n in self._exported if n.startswith("PyInit_")}
            else:
                with _only_elf_errors():
                    offsets = self._exported_offsets(self._pyinit_offsets())
                    names = set(self._strings(sorted(offsets), [0]))
            self._pyinit = tuple(sorted(names))
        return self._pyinit

    def _pyinit_offsets(self) -> list[int]:
        """Offsets of the string table where a name starting with ``PyInit_`` can start."""
        if self._pyinit_at is None:
            self._pyinit_at = self._offsets_of(b"PyInit_")
        return self._pyinit_at

    def _offsets_of(self, needle: bytes, start: int = 1) -> list[int]:
        """Every offset of the string table from ``start`` on where ``needle`` starts.

        ``start`` is at least 1: a symbol with st_name 0 has no name.
        """
        find = self._strtab.find
        out: list[int] = []
        at = find(needle, max(start, 1))
        while at >= 0:
            out.append(at)
            at = find(needle, at + 1)
        return out

    def _exported_offsets(self, offsets: list[int], *, first: bool = False) -> set[int]:
        """Those ``offsets`` that are the st_name of at least one exported symbol.

        With ``first``, stop at the first one found.
        """
        found: set[int] = set()
        if not offsets or not self._symtab:
            return found
        if len(offsets) > _FEW_OFFSETS:
            # One pass over all st_names (C-level iteration) instead of a scan
            # per offset, so the work stays linear in the table.
            targets = set(offsets)
            st_names = self._st_names()
            hits = compress(range(len(st_names)), map(targets.__contains__, st_names))
            for index in hits:
                off = st_names[index]
                if off not in found and self._is_exported(index):
                    found.add(off)
                    if first:
                        break
            return found
        for off in offsets:
            if any(self._is_exported(i) for i in self._records_named(off)):
                found.add(off)
                if first:
                    break
        return found

    def _records_named(self, off: int) -> Iterator[int]:
        """Indices of the records whose st_name is ``off``, in table order."""
        if off > 0xFFFFFFFF:
            return
        low = self._name_byte(0)
        byte0 = off & 0xFF
        # Each hit costs about as much as the mask costs for 32 records.
        if low.count(byte0) <= max(_FEW_HITS, len(low) // 32):
            at = low.find(byte0)
            while at >= 0:
                if self._st_name(at) == off:
                    yield at
                at = low.find(byte0, at + 1)
            return
        mask = _and_masks(
            *(self._name_byte(j).translate(_equal_to((off >> 8 * j) & 0xFF)) for j in range(4))
        )
        at = mask.find(1)
        while at >= 0:
            yield at
            at = mask.find(1, at + 1)


@dataclass(frozen=True)
class _Section:
    index: int
    sh_type: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int
    addr: int


@dataclass(frozen=True)
class _Segment:
    p_type: int
    offset: int
    vaddr: int
    filesz: int


def read_facts(data: bytes) -> ElfFacts:
    """Read the dynamic-linking facts of an ELF file.

    Raises :class:`ElfError` for anything that is not a well-formed ELF file:
    truncation, tables or strings outside the file, absurd counts or sizes.
    Symbol names are not read here (see :class:`ElfFacts`): a bad name in
    the dynamic symbol table surfaces, as an ElfError, only when a symbol
    fact that reads it is asked for.
    """
    # The explicit checks below should leave nothing for the guard to catch;
    # it keeps the promise of "only ElfError" if one was missed.
    with _only_elf_errors():
        return _Reader(bytes(data)).facts()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.header = read_header(data)
        h = self.header
        if h.bits == 0:
            raise ElfError(f"invalid ELF class: EI_CLASS is {h.ei_class}")
        if h.byte_order == "invalid":
            raise ElfError(f"invalid data encoding: EI_DATA is {h.ei_data}")
        self.e = "<" if h.byte_order == "little" else ">"
        self.is64 = h.bits == 64
        self.sections = self._read_sections()
        self.segments = self._read_segments()

    # -- bounds -------------------------------------------------------------

    def _check_range(self, what: str, offset: int, size: int) -> None:
        end = offset + size
        if offset > self.size or end > self.size:
            raise ElfError(
                f"truncated: {what} ends at {end:#x} past end of file (size {self.size:#x})"
            )

    def _bytes(self, what: str, offset: int, size: int) -> bytes:
        self._check_range(what, offset, size)
        return self.data[offset : offset + size]

    # -- tables -------------------------------------------------------------

    def _read_sections(self) -> list[_Section]:
        h = self.header
        if h.e_shoff == 0:
            return []
        std = 64 if self.is64 else 40
        shnum = h.e_shnum
        if shnum == 0 and h.e_shentsize == 0:
            return []
        if h.e_shentsize < std:
            raise ElfError(f"bad e_shentsize {h.e_shentsize}: a section header is {std} bytes")
        fmt = self.e + ("IIQQQQIIQQ" if self.is64 else "IIIIIIIIII")
        if shnum == 0:
            # Extended numbering: more than 0xff00 sections, the real count
            # sits in section 0's sh_size.
            self._check_range("section header 0", h.e_shoff, std)
            shnum = struct.unpack_from(fmt, self.data, h.e_shoff)[5]
        table_size = shnum * h.e_shentsize
        self._check_range("section header table", h.e_shoff, table_size)
        out = []
        for i in range(shnum):
            (_, sh_type, _, addr, offset, size, link, info, _, entsize) = struct.unpack_from(
                fmt, self.data, h.e_shoff + i * h.e_shentsize
            )
            out.append(_Section(i, sh_type, offset, size, link, info, entsize, addr))
        return out

    def _read_segments(self) -> list[_Segment]:
        h = self.header
        phnum = h.e_phnum
        if phnum == _PN_XNUM and self.sections:
            phnum = self.sections[0].info
        if phnum == 0 or h.e_phoff == 0:
            return []
        std = 56 if self.is64 else 32
        if h.e_phentsize < std:
            raise ElfError(f"bad e_phentsize {h.e_phentsize}: a program header is {std} bytes")
        self._check_range("program header table", h.e_phoff, phnum * h.e_phentsize)
        out = []
        for i in range(phnum):
            off = h.e_phoff + i * h.e_phentsize
            if self.is64:
                p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
                    self.e + "IIQQQQ", self.data, off
                )
            else:
                p_type, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
                    self.e + "IIIII", self.data, off
                )
            out.append(_Segment(p_type, p_offset, p_vaddr, p_filesz))
        return out

    def _section(self, index: int, what: str) -> _Section:
        if not 0 < index < len(self.sections):
            raise ElfError(f"{what} links to section {index}, which does not exist")
        return self.sections[index]

    def _section_bytes(self, sec: _Section, what: str) -> bytes:
        if sec.sh_type == _SHT_NOBITS:
            return b""
        return self._bytes(f"{what} (section {sec.index})", sec.offset, sec.size)

    def _vaddr_to_offset(self, addr: int, what: str) -> int:
        for seg in self.segments:
            if seg.p_type == _PT_LOAD and seg.vaddr <= addr < seg.vaddr + seg.filesz:
                return seg.offset + (addr - seg.vaddr)
        raise ElfError(f"{what} address {addr:#x} is not inside any loaded segment")

    def _vaddr_bytes(self, addr: int, size: int, what: str) -> bytes:
        return self._bytes(what, self._vaddr_to_offset(addr, what), size)

    # -- the facts ----------------------------------------------------------

    def facts(self) -> ElfFacts:
        dyn_sec = next((s for s in self.sections if s.sh_type == _SHT_DYNAMIC), None)
        if dyn_sec is not None:
            dyn_bytes = self._section_bytes(dyn_sec, ".dynamic")
            dynstr = self._section_bytes(self._section(dyn_sec.link, ".dynamic"), ".dynstr")
            tags = self._dyn_entries(dyn_bytes)
        else:
            pt_dyn = next((s for s in self.segments if s.p_type == _PT_DYNAMIC), None)
            if pt_dyn is not None:
                tags = self._dyn_entries(self._bytes("PT_DYNAMIC", pt_dyn.offset, pt_dyn.filesz))
                dynstr = self._dynstr_from_tags(tags)
            else:
                tags, dynstr = [], b""

        needed: list[str] = []
        rpath: list[str] = []
        runpath: list[str] = []
        soname: str | None = None
        for tag, val in tags:
            if tag == _DT_NEEDED:
                needed.append(_cstr(dynstr, val, ".dynstr"))
            elif tag == _DT_SONAME:
                soname = _cstr(dynstr, val, ".dynstr")
            elif tag == _DT_RPATH:
                rpath.extend(_split_path(_cstr(dynstr, val, ".dynstr")))
            elif tag == _DT_RUNPATH:
                runpath.extend(_split_path(_cstr(dynstr, val, ".dynstr")))

        symbols = self._symbols(tags)
        version_needs = self._version_needs(tags)
        version_defs = self._version_defs(tags)
        return ElfFacts(
            header=self.header,
            soname=soname,
            needed=tuple(needed),
            rpath=tuple(rpath),
            runpath=tuple(runpath),
            version_needs=version_needs,
            version_defs=version_defs,
            _symbols=symbols,
            _references=_LazyReferences(self.data),
        )

    def _dyn_entries(self, raw: bytes) -> list[tuple[int, int]]:
        # Tags read unsigned: the OS-specific ones (0x6fff....) then compare
        # equal in both classes.
        fmt = self.e + ("QQ" if self.is64 else "II")
        step = struct.calcsize(fmt)
        usable = len(raw) - len(raw) % step
        out = []
        for tag, val in struct.iter_unpack(fmt, raw[:usable]):
            if tag == _DT_NULL:
                break
            out.append((tag, val))
        return out

    @staticmethod
    def _tag(tags: list[tuple[int, int]], which: int) -> int | None:
        for tag, val in tags:
            if tag == which:
                return val
        return None

    def _dynstr_from_tags(self, tags: list[tuple[int, int]]) -> bytes:
        strtab = self._tag(tags, _DT_STRTAB)
        strsz = self._tag(tags, _DT_STRSZ)
        if strtab is None or strsz is None:
            return b""
        return self._vaddr_bytes(strtab, strsz, "DT_STRTAB")

    # -- symbols ------------------------------------------------------------

    def _symbols(self, tags: list[tuple[int, int]]) -> _DynamicSymbols:
        """The dynamic symbol table and its strings, checked for place and entry size only."""
        std = 24 if self.is64 else 16
        dynsym_sec = next((s for s in self.sections if s.sh_type == _SHT_DYNSYM), None)
        if dynsym_sec is not None:
            if dynsym_sec.entsize != std:
                raise ElfError(
                    f"bad .dynsym entry size {dynsym_sec.entsize}: a symbol is {std} bytes"
                )
            raw = self._section_bytes(dynsym_sec, ".dynsym")
            strtab = self._section_bytes(self._section(dynsym_sec.link, ".dynsym"), ".dynstr")
        elif not self.sections and tags:
            raw, strtab = self._dynsym_from_tags(tags, std)
        else:
            raw, strtab = b"", b""
        return _DynamicSymbols(raw, strtab, is64=self.is64, little=self.e == "<")

    def _dynsym_from_tags(self, tags: list[tuple[int, int]], std: int) -> tuple[bytes, bytes]:
        symtab = self._tag(tags, _DT_SYMTAB)
        if symtab is None:
            return b"", b""
        syment = self._tag(tags, _DT_SYMENT)
        if syment is not None and syment != std:
            raise ElfError(f"bad DT_SYMENT {syment}: a symbol is {std} bytes")
        count = self._symbol_count(tags)
        if count is None:
            return b"", b""
        off = self._vaddr_to_offset(symtab, "DT_SYMTAB")
        raw = self._bytes("dynamic symbol table", off, count * std)
        return raw, self._dynstr_from_tags(tags)

    def _symbol_count(self, tags: list[tuple[int, int]]) -> int | None:
        """Number of dynamic symbols, from DT_HASH or DT_GNU_HASH."""
        hash_addr = self._tag(tags, _DT_HASH)
        if hash_addr is not None:
            off = self._vaddr_to_offset(hash_addr, "DT_HASH")
            # s390x and Alpha use 8-byte hash words, everything else 4.
            wide = self.is64 and self.header.e_machine in (22, 0x9026)
            fmt = self.e + ("QQ" if wide else "II")
            _, nchain = struct.unpack(fmt, self._bytes("DT_HASH", off, struct.calcsize(fmt)))
            return int(nchain)
        gnu_addr = self._tag(tags, _DT_GNU_HASH)
        if gnu_addr is None:
            return None
        off = self._vaddr_to_offset(gnu_addr, "DT_GNU_HASH")
        nbuckets, symoffset, bloom_size, _ = struct.unpack(
            self.e + "IIII", self._bytes("DT_GNU_HASH", off, 16)
        )
        word = 8 if self.is64 else 4
        buckets_off = off + 16 + bloom_size * word
        buckets = struct.unpack(
            f"{self.e}{nbuckets}I", self._bytes("DT_GNU_HASH buckets", buckets_off, nbuckets * 4)
        )
        last = max(buckets, default=0)
        if last < symoffset:
            return int(symoffset)
        chain_off = buckets_off + nbuckets * 4
        idx = last
        # Walk the last chain to its end marker; each step reads one word of
        # the file, so the walk cannot outlast the file.
        while True:
            (value,) = struct.unpack(
                self.e + "I",
                self._bytes("DT_GNU_HASH chain", chain_off + (idx - symoffset) * 4, 4),
            )
            idx += 1
            if value & 1:
                return idx

    # -- symbol versions ----------------------------------------------------

    def _version_table(
        self, sh_type: int, tag_addr: int, tag_num: int, tags: list[tuple[int, int]], what: str
    ) -> tuple[bytes, int, bytes] | None:
        """(section bytes, entry count or 0 for unknown, string table) for a version table."""
        sec = next((s for s in self.sections if s.sh_type == sh_type), None)
        if sec is not None:
            raw = self._section_bytes(sec, what)
            strtab = self._section_bytes(self._section(sec.link, what), f"{what} strings")
            return raw, sec.info, strtab
        if self.sections:
            return None
        addr = self._tag(tags, tag_addr)
        num = self._tag(tags, tag_num)
        if addr is None or not num:
            return None
        off = self._vaddr_to_offset(addr, what)
        # Without section headers the table's size is unknown; it cannot
        # extend past the end of the file, so take the rest of the file.
        return self.data[off:], num, self._dynstr_from_tags(tags)

    def _version_needs(
        self, tags: list[tuple[int, int]]
    ) -> tuple[tuple[str, tuple[str, ...]], ...]:
        table = self._version_table(
            _SHT_GNU_VERNEED, _DT_VERNEED, _DT_VERNEEDNUM, tags, ".gnu.version_r"
        )
        if table is None:
            return ()
        raw, count, strtab = table
        out: list[tuple[str, tuple[str, ...]]] = []
        limit = count or len(raw) // 16
        off = 0
        # vn_next / vd_next are unsigned and non-zero, so offsets only grow:
        # the walk cannot cycle and every step is bounds-checked.
        for _ in range(limit):
            if off + 16 > len(raw):
                raise ElfError(f"truncated: version need entry at {off:#x} of .gnu.version_r")
            _, vn_cnt, vn_file, vn_aux, vn_next = struct.unpack_from(self.e + "HHIII", raw, off)
            names: list[str] = []
            aux = off + vn_aux
            for _ in range(vn_cnt):
                if aux + 16 > len(raw):
                    raise ElfError(
                        f"truncated: version need aux entry at {aux:#x} of .gnu.version_r"
                    )
                _, _, _, vna_name, vna_next = struct.unpack_from(self.e + "IHHII", raw, aux)
                names.append(_cstr(strtab, vna_name, ".gnu.version_r strings"))
                if vna_next == 0:
                    break
                aux += vna_next
            out.append((_cstr(strtab, vn_file, ".gnu.version_r strings"), tuple(names)))
            if vn_next == 0:
                break
            off += vn_next
        return tuple(out)

    def _version_defs(self, tags: list[tuple[int, int]]) -> tuple[str, ...]:
        table = self._version_table(
            _SHT_GNU_VERDEF, _DT_VERDEF, _DT_VERDEFNUM, tags, ".gnu.version_d"
        )
        if table is None:
            return ()
        raw, count, strtab = table
        out: list[str] = []
        limit = count or len(raw) // 20
        off = 0
        # vn_next / vd_next are unsigned and non-zero, so offsets only grow:
        # the walk cannot cycle and every step is bounds-checked.
        for _ in range(limit):
            if off + 20 > len(raw):
                raise ElfError(f"truncated: version definition at {off:#x} of .gnu.version_d")
            _, vd_flags, _, vd_cnt, _, vd_aux, vd_next = struct.unpack_from(
                self.e + "HHHHIII", raw, off
            )
            # The base definition names the file itself (its soname), not a
            # version anything can require.
            if vd_cnt and not vd_flags & _VER_FLG_BASE:
                aux = off + vd_aux
                if aux + 8 > len(raw):
                    raise ElfError(
                        f"truncated: version definition aux at {aux:#x} of .gnu.version_d"
                    )
                (vda_name,) = struct.unpack_from(self.e + "I", raw, aux)
                out.append(_cstr(strtab, vda_name, ".gnu.version_d strings"))
            if vd_next == 0:
                break
            off += vd_next
        return tuple(out)


def _split_path(value: str) -> list[str]:
    return value.split(":") if value else []
