"""The bulk tables abiscan decodes itself, from the locations pyelftools gives.

pyelftools decodes one entry at a time (about 25 µs a symbol); a real
extension's dynamic symbol table has tens of thousands of entries and its
relocation tables as many, so these three tables are read here in bulk, one
walker each:

* the dynamic symbol table (:class:`DynamicSymbols`): columns cut out of the
  raw records at C speed, names decoded only as far as asked;
* the hash tables (:func:`symbol_count`): how many symbols a file without
  section headers has, from DT_HASH or DT_GNU_HASH, as ld.so counts them;
* the relocation tables (:func:`relocation_references`): DT_RELA, DT_REL and
  DT_JMPREL in glibc's order, every ``r_info`` unpacked in one call.

Every offset and size is checked against the bytes before use, counts are
never trusted before the bytes they describe are known to exist, and
anything unexpected becomes an :class:`~abiscan.elf.header.ElfError`.

Strings from a file are bytes. They are decoded as UTF-8 with
``backslashreplace``: an undecodable byte ``0xff`` becomes the four
characters ``\\xff``. The result is deterministic, always encodable (no
lone surrogates reach text or JSON output), and tells a reader which byte
it was.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import compress

from abiscan.elf import constants as c
from abiscan.elf.header import ElfError
from abiscan.elf.model import ElfLayout
from abiscan.records import record

__all__ = [
    "DecodedSymbols",
    "DynamicSymbols",
    "NameBudget",
    "SymbolRef",
    "cstr",
    "decode_name",
    "only_elf_errors",
    "pack_names",
    "pack_references",
    "packed_references",
    "relocation_references",
    "symbol_count",
    "unpack_names",
    "unpack_references",
]


def decode_name(raw: bytes) -> str:
    """A name from an ELF string table: UTF-8, undecodable bytes as ``\\xNN``."""
    return raw.decode("utf-8", "backslashreplace")


# What the lazy symbol decoding treats as unexpected (an ElfError for the
# caller): the same list read_facts guards.
_UNEXPECTED = (struct.error, ValueError, IndexError, OverflowError, MemoryError)


@contextmanager
def only_elf_errors() -> Iterator[None]:
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


_EXPORT_BINDS = (c.STB_GLOBAL, c.STB_WEAK, c.STB_GNU_UNIQUE)
_EXPORT_VISIBILITIES = (c.STV_DEFAULT, c.STV_PROTECTED)
# Classifiers for the st_info, st_other and st_shndx columns.
_T_EXPORT_BIND = _table(lambda b: b >> 4 in _EXPORT_BINDS)
_T_GLOBAL = _table(lambda b: b >> 4 == c.STB_GLOBAL)
_T_WEAK = _table(lambda b: b >> 4 == c.STB_WEAK)
_T_VISIBLE = _table(lambda b: b & 3 in _EXPORT_VISIBILITIES)
_T_ZERO = _table(lambda b: b == 0)
_HOST_LITTLE = sys.byteorder == "little"
_NATIVE_WORD = struct.calcsize("I")
_T_NONLOCAL = _table(lambda b: b >> 4 != c.STB_LOCAL)
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
# names per byte of string table (plus the slack); see DynamicSymbols._strings.
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


def cstr(tab: bytes, off: int, what: str) -> str:
    """The NUL-terminated string at ``off`` of a string table."""
    end = tab.find(b"\0", off) if off < len(tab) else -1
    if end < 0:
        raise _bad_string(tab, off, what)
    return decode_name(tab[off:end])


class NameBudget:
    """How many bytes of names one file's small tables may decode.

    Names may share bytes (tail merging), so N entries can all point at one
    long string: without a cap a hostile file makes N times the string's
    length of work and memory. The cap is the symbol table's
    (_NAME_BYTES_PER_TABLE_BYTE per byte of the string tables, plus the
    slack), far above what any linker writes.
    """

    def __init__(self, table_bytes: int) -> None:
        self.budget = _NAME_BYTES_PER_TABLE_BYTE * table_bytes + _NAME_BYTES_SLACK
        self.left = self.budget

    def name(self, tab: bytes, off: int, what: str) -> str:
        """:func:`cstr`, counted against the budget."""
        text = cstr(tab, off, what)
        self.spend(len(text), what)
        return text

    def spend(self, size: int, what: str) -> None:
        """Count ``size`` bytes of names read from ``what``."""
        self.left -= size
        if self.left < 0:
            raise ElfError(
                f"names overlap implausibly: more than {self.budget} bytes of names from {what}"
            )


def _bad_string(tab: bytes, off: int, what: str) -> ElfError:
    if off >= len(tab):
        return ElfError(f"string offset {off:#x} out of range of {what} (size {len(tab):#x})")
    return ElfError(f"unterminated string at offset {off:#x} of {what}")


def _overlapping(tab: bytes, budget: int) -> ElfError:
    return ElfError(
        f"symbol names overlap implausibly: more than {budget} bytes of names"
        f" from a {len(tab)}-byte .dynstr"
    )


class DynamicSymbols:
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
        if not isinstance(other, DynamicSymbols):
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
            with only_elf_errors():
                self._exported = self._decode_exported()
        return self._exported

    def undefined_names(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(undefined GLOBAL, undefined WEAK), in table order."""
        if self._undefined is None:
            with only_elf_errors():
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
                append(decode_name(tab[off:end]))
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
        if "\\" in name:
            # A backslash may stand for an undecodable byte (decode_name): only
            # the decoded names can say.
            return name in self.exported_names()
        try:
            encoded = name.encode("utf-8")
        except UnicodeEncodeError:
            return False  # a lone surrogate no decoded name contains
        if b"\0" in encoded:
            return False
        needle = encoded + b"\0"
        with only_elf_errors():
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
                with only_elf_errors():
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


class DecodedSymbols:
    """The symbol facts of a table already decoded (:class:`DynamicSymbols`'s
    answers, kept without the tables: a scan's summary of a member, or one read
    back from the content cache). ``has_export`` is a set lookup."""

    __slots__ = ("_exported", "_hash", "_pyinit", "_undefined")

    def __init__(
        self,
        exported: frozenset[str],
        undefined: tuple[str, ...],
        weak_undefined: tuple[str, ...],
        pyinit: tuple[str, ...],
    ) -> None:
        self._exported = exported
        self._undefined = (undefined, weak_undefined)
        self._pyinit = pyinit
        self._hash: int | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DecodedSymbols):
            return NotImplemented
        return (self._exported, self._undefined, self._pyinit) == (
            other._exported,
            other._undefined,
            other._pyinit,
        )

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash((self._exported, self._undefined, self._pyinit))
        return self._hash

    def __repr__(self) -> str:
        return f"<{len(self._exported)} exported symbols, decoded>"

    def decoded(self) -> tuple[frozenset[str], tuple[str, ...], tuple[str, ...]]:
        return self._exported, *self._undefined

    def exported_names(self) -> frozenset[str]:
        return self._exported

    def undefined_names(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return self._undefined

    def has_export(self, name: str) -> bool:
        return name in self._exported

    def pyinit_names(self) -> tuple[str, ...]:
        return self._pyinit


# -- the hash tables -------------------------------------------------------------


def symbol_count(layout: ElfLayout, data: bytes) -> int | None:
    """Number of dynamic symbols, from DT_HASH or DT_GNU_HASH (None without either).

    Only files without section headers need this: there the symbol table's
    size is known only from a hash table, as ld.so knows it.
    """
    e = "<" if layout.little else ">"
    hash_addr = layout.tag(c.DT_HASH)
    if hash_addr is not None:
        off = layout.vaddr_to_offset(hash_addr, "DT_HASH")
        # s390x and Alpha use 8-byte hash words, everything else 4.
        wide = layout.is64 and layout.header.e_machine in (c.EM_S390, c.EM_ALPHA_UNOFFICIAL)
        fmt = e + ("QQ" if wide else "II")
        _, nchain = struct.unpack(fmt, _slice(data, "DT_HASH", off, struct.calcsize(fmt)))
        return int(nchain)
    gnu_addr = layout.tag(c.DT_GNU_HASH)
    if gnu_addr is None:
        return None
    off = layout.vaddr_to_offset(gnu_addr, "DT_GNU_HASH")
    nbuckets, symoffset, bloom_size, _ = struct.unpack(
        e + "IIII", _slice(data, "DT_GNU_HASH", off, 16)
    )
    word = 8 if layout.is64 else 4
    buckets_off = off + 16 + bloom_size * word
    buckets = struct.unpack(
        f"{e}{nbuckets}I", _slice(data, "DT_GNU_HASH buckets", buckets_off, nbuckets * 4)
    )
    last = max(buckets, default=0)
    if last < symoffset:
        return int(symoffset)
    chain_off = buckets_off + nbuckets * 4 + (last - symoffset) * 4
    # The last chain ends at the first word with its low bit set; one search
    # over the rest of the chain array, which cannot run past the file.
    end = len(data) - (len(data) - chain_off) % 4
    rest = data[chain_off:end] if chain_off < len(data) else b""
    words = struct.unpack(f"{e}{len(rest) // 4}I", rest)
    for i, value in enumerate(words):
        if value & 1:
            return last + i + 1
    raise ElfError(f"truncated: DT_GNU_HASH chain at {chain_off:#x} has no end")


def _st_name_column(symtab: bytes, entsize: int, little: bool) -> tuple[int, ...]:
    """The st_name of every record of a symbol table (its first 4 bytes in both
    classes), unpacked in one call."""
    count = len(symtab) // entsize
    packed = bytearray(4 * count)
    for k in range(4):
        packed[k::4] = symtab[k : count * entsize : entsize]
    return struct.unpack(f"{'<' if little else '>'}{count}I", packed)


def _slice(data: bytes, what: str, offset: int, size: int) -> bytes:
    if offset < 0 or size < 0 or offset + size > len(data):
        raise ElfError(
            f"truncated: {what} ends at {offset + size:#x} past end of file (size {len(data):#x})"
        )
    return data[offset : offset + size]


# -- the relocation tables -------------------------------------------------------


@record
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


def relocation_references(layout: ElfLayout, data: bytes) -> tuple[SymbolRef, ...]:
    """Undefined, non-local symbols named by relocations, first reference first, each once.

    The order is glibc's (:mod:`abiscan.elf.references`): DT_RELA, then
    DT_REL, then the PLT relocations of DT_JMPREL, each in file order; an
    entry counted in two tables is processed once.
    """
    return unpack_references(packed_references(layout, data))


def packed_references(layout: ElfLayout, data: bytes) -> bytes:
    """:func:`relocation_references`, packed (:func:`pack_references`): what a
    summary keeps, made without a :class:`SymbolRef` per reference."""
    symtab_addr, strtab_addr = layout.tag(c.DT_SYMTAB), layout.tag(c.DT_STRTAB)
    if symtab_addr is None or strtab_addr is None:
        return b""
    with only_elf_errors():
        return _References(layout, data, symtab_addr, strtab_addr).read()


def pack_names(names: Sequence[str]) -> bytes:
    """Names as one byte string, each NUL-terminated (a symbol name never holds a
    NUL); one encode for them all."""
    return ("\0".join(names) + "\0").encode("utf-8", "surrogateescape") if names else b""


def unpack_names(raw: bytes) -> list[str]:
    """The names :func:`pack_names` packed."""
    return raw.decode("utf-8", "surrogateescape").split("\0")[:-1]


def pack_references(refs: Iterable[SymbolRef]) -> bytes:
    """References packed as names (:func:`pack_names`): each reference's name, ``w``
    or ``s`` (weak or not), and its version and version file, each ``=value`` or
    empty for None."""
    return pack_names(
        [
            part
            for r in refs
            for part in (r.name, "w" if r.weak else "s", _optional(r.version),
                         _optional(r.version_file))
        ]
    )


def unpack_references(raw: bytes) -> tuple[SymbolRef, ...]:
    """The references :func:`pack_references` packed."""
    fields = unpack_names(raw)
    return tuple(
        SymbolRef(
            name=fields[i],
            weak=fields[i + 1] == "w",
            version=fields[i + 2][1:] if fields[i + 2] else None,
            version_file=fields[i + 3][1:] if fields[i + 3] else None,
        )
        for i in range(0, len(fields) - 3, 4)
    )


def _optional(value: str | None) -> str:
    return "" if value is None else "=" + value


class _References:
    def __init__(self, layout: ElfLayout, data: bytes, symtab: int, strtab: int) -> None:
        self.lay = layout
        self.data = data
        self.e = "<" if layout.little else ">"
        self.symtab = layout.vaddr_to_offset(symtab, "DT_SYMTAB")
        strtab_off = layout.vaddr_to_offset(strtab, "DT_STRTAB")
        self.strtab = _slice(data, "dynamic string table", strtab_off, layout.tag(c.DT_STRSZ) or 0)
        std = 24 if layout.is64 else 16
        self.syment = layout.tag(c.DT_SYMENT) or std
        if self.syment < std:
            raise ElfError(f"bad DT_SYMENT {self.syment}: a symbol is {std} bytes")
        versym = layout.tag(c.DT_VERSYM)
        self.versym = None if versym is None else layout.vaddr_to_offset(versym, "DT_VERSYM")
        self.versions = {
            other: (need.file, name)
            for need in layout.version_needs
            for name, other in need.versions
        }
        self.decoded: dict[int, tuple[str, str]] = {}
        self.names = NameBudget(len(self.strtab) + len(layout.version_need_strings))

    def _ranges(self) -> list[tuple[int, int, bool]]:
        """(file offset, size, rela) of each relocation table, in glibc's order."""
        lay = self.lay
        out: list[tuple[int, int, bool]] = []
        rela, rel, jmprel = lay.tag(c.DT_RELA), lay.tag(c.DT_REL), lay.tag(c.DT_JMPREL)
        if rela is not None:
            out.append((lay.vaddr_to_offset(rela, "DT_RELA"), lay.tag(c.DT_RELASZ) or 0, True))
        if rel is not None:
            out.append((lay.vaddr_to_offset(rel, "DT_REL"), lay.tag(c.DT_RELSZ) or 0, False))
        pltsz = lay.tag(c.DT_PLTRELSZ)
        if jmprel is not None and pltsz:
            is_rela = (lay.tag(c.DT_PLTREL) or c.DT_RELA) == c.DT_RELA
            out.append((lay.vaddr_to_offset(jmprel, "DT_JMPREL"), pltsz, is_rela))
        return out

    def _symbol_indices(self) -> list[int]:
        """Symbol indices of the relocations that name a symbol, in order, each once."""
        indices: dict[int, None] = {}
        done: list[tuple[int, int, int]] = []  # (start, end, entry size) processed
        for start, size, rela in self._ranges():
            std = (24 if rela else 16) if self.lay.is64 else (12 if rela else 8)
            ent = self.lay.tag(c.DT_RELAENT if rela else c.DT_RELENT) or std
            if ent < std:
                # glibc asserts the entry size; a smaller one would make every
                # entry overlap the next (and the last run past the table).
                raise ElfError(f"bad relocation entry size {ent}: an entry is {std} bytes")
            count = size // ent
            table = _slice(self.data, "relocation table", start, count * ent)
            syms, types = self._sym_and_type(table, count, ent, rela)
            named = compress(syms, types)  # r_type 0 (R_*_NONE) names nothing
            overlaps = [d for d in done if d[0] < start + count * ent and start < d[1]]
            if overlaps:
                # A linker may count the PLT relocations in DT_RELASZ too;
                # glibc processes each entry once.
                fresh = [
                    not any(s <= pos < e and (pos - s) % st == 0 for s, e, st in overlaps)
                    for pos in range(start, start + count * ent, ent)
                ]
                named = compress(syms, map(bool.__and__, fresh, map(bool, types)))
            indices.update(dict.fromkeys(named))
            done.append((start, start + count * ent, ent))
        indices.pop(0, None)  # symbol 0 is no symbol
        return list(indices)

    def _sym_and_type(
        self, table: bytes, count: int, ent: int, rela: bool
    ) -> tuple[Sequence[int], Sequence[int]]:
        """(r_sym, r_type) columns of a table, unpacked in one call for standard entries.

        ELF64's r_info is (sym << 32 | type): read as 32-bit words it is the
        type then the symbol (little-endian) or the other way round. In the
        host's byte order the words are read in place (a memoryview): a large
        library has hundreds of thousands of relocations, and unpacking every
        word of them (offsets and addends too) cost more than the rest.
        """
        per = 3 if rela else 2
        if self.lay.is64 and ent == per * 8:
            words: Sequence[int] = (
                memoryview(table).cast("I")
                if self.lay.little == _HOST_LITTLE and _NATIVE_WORD == 4
                else struct.unpack(f"{self.e}{count * per * 2}I", table)
            )
            lo, hi = words[2 :: per * 2], words[3 :: per * 2]
            return (hi, lo) if self.lay.little else (lo, hi)
        word, width = ("Q", 8) if self.lay.is64 else ("I", 4)
        infos = [struct.unpack_from(self.e + word, table, i * ent + width)[0] for i in range(count)]
        if self.lay.is64:
            return [i >> 32 for i in infos], [i & 0xFFFFFFFF for i in infos]
        return [i >> 8 for i in infos], [i & 0xFF for i in infos]

    def read(self) -> bytes:
        """The references, packed (:func:`pack_references`)."""
        indices = self._symbol_indices()
        if not indices:
            return b""
        # The symbols' st_info and st_shndx, cut out as columns at C speed,
        # choose the undefined non-local ones before any name is read.
        last = max(indices)
        size = (last + 1) * self.syment
        symtab = _slice(self.data, f"dynamic symbol {last}", self.symtab, size)
        at = 4 if self.lay.is64 else 12
        info = symtab[at :: self.syment]
        undefined = _or_bytes(symtab[at + 2 :: self.syment], symtab[at + 3 :: self.syment])
        wanted = _and_masks(info.translate(_T_NONLOCAL), undefined.translate(_T_ZERO))
        st_names = _st_name_column(symtab, self.syment, self.lay.little)
        versym = self._versym(last)
        name_at = self._namer()
        parts: list[str] = []
        seen: set[str] = set()
        for index in compress(indices, map(wanted.__getitem__, indices)):
            name = name_at(st_names[index])
            if name in seen:
                continue
            seen.add(name)
            version, file = self._version(versym[index] & 0x7FFF) if versym else ("", "")
            parts += (name, "w" if info[index] >> 4 == c.STB_WEAK else "s", version, file)
        return pack_names(parts)

    def _namer(self) -> Callable[[int], str]:
        """The name at an offset of the dynamic string table, checked and counted
        (:meth:`NameBudget.name`); an ASCII table is decoded once, not per name."""
        tab, budget, what = self.strtab, self.names, "the dynamic string table"
        if not tab.isascii():
            return lambda off: budget.name(tab, off, what)
        text = tab.decode("ascii")
        find, size = text.find, len(text)

        def name(off: int) -> str:
            end = find("\0", off) if off < size else -1
            if end < 0:
                raise _bad_string(tab, off, what)
            budget.spend(end - off, what)
            return text[off:end]

        return name

    def _versym(self, last: int) -> tuple[int, ...]:
        """The DT_VERSYM entries of symbols 0 to ``last``, or () without versions."""
        if self.versym is None:
            return ()
        raw = _slice(self.data, "DT_VERSYM table", self.versym, (last + 1) * 2)
        return struct.unpack(f"{self.e}{last + 1}H", raw)

    def _version(self, ndx: int) -> tuple[str, str]:
        """(version, library) of a version index as packed (``=name``, or "" for
        none), decoded once per index."""
        found = self.decoded.get(ndx)
        if found is None:
            need = self.versions.get(ndx)
            if need is None:
                found = ("", "")
            else:
                strings = self.lay.version_need_strings
                found = (
                    "=" + self.names.name(strings, need[1], ".gnu.version_r strings"),
                    "=" + self.names.name(strings, need[0], ".gnu.version_r strings"),
                )
            self.decoded[ndx] = found
        return found
