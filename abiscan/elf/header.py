"""The ELF identification and header, read raw, the way glibc's ``open_verify`` reads them.

This is the one place abiscan reads ELF structures without pyelftools, and on
purpose: the dynamic linker's identity checks (:mod:`abiscan.simulate.linker.identity`)
must see what glibc sees in files that are *not* well-formed, and pyelftools
refuses exactly those. ``ELFFile`` raises on an EI_CLASS or EI_DATA other than
1 or 2, while glibc reads such a header with its own layout (64-bit
little-endian on x86_64) to produce "wrong ELF class" or "ELF file data
encoding not little-endian"; a file shorter than the header is "file too
short" for glibc and a parse error for pyelftools. So the header is decoded
here from bytes 0-63 with ``struct``, every field as the raw number, and
:func:`sniff_format` names non-ELF formats from their magic numbers.

Everything else (sections, segments, dynamic tags, versions) is read through
pyelftools in :mod:`abiscan.elf.model`.
"""

from __future__ import annotations

import struct

from abiscan.elf import constants as c
from abiscan.errors import ElfError as ElfError  # re-exported (its home before errors.py)
from abiscan.records import record

__all__ = ["ElfError", "ElfHeader", "loader_blocks", "read_header", "sniff_format"]

EI_NIDENT = 16
_ELF_MAGIC = b"\x7fELF"


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


@record
class ElfHeader:
    """The identification bytes and ELF header fields, as raw numbers.

    Holds what glibc's ``open_verify`` examines plus the table locations. For
    an invalid EI_CLASS the fields after ``e_version`` are decoded with the
    64-bit layout, and for an invalid EI_DATA in little-endian order: that is
    how a 64-bit little-endian dynamic linker reads such a file.
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
        return {c.ELFCLASS32: 32, c.ELFCLASS64: 64}.get(self.ei_class, 0)

    @property
    def byte_order(self) -> str:
        return {c.ELFDATA2LSB: "little", c.ELFDATA2MSB: "big"}.get(self.ei_data, "invalid")

    @property
    def machine_name(self) -> str:
        return c.MACHINE_NAMES.get(self.e_machine, f"EM_{self.e_machine}")

    @property
    def class_name(self) -> str:
        return c.CLASS_NAMES.get(self.ei_class, f"ELFCLASS_{self.ei_class}")

    @property
    def type_name(self) -> str:
        return c.TYPE_NAMES.get(self.e_type, f"ET_{self.e_type:#x}")

    @property
    def osabi_name(self) -> str:
        return c.OSABI_NAMES.get(self.ei_osabi, f"ELFOSABI_{self.ei_osabi}")

    def describe(self) -> str:
        """A ``file(1)``-like phrase: ``ELF 64-bit LSB ET_DYN, machine x86_64``."""
        bits = f"{self.bits}-bit" if self.bits else f"{self.class_name}"
        order = {"little": "LSB", "big": "MSB"}.get(self.byte_order, f"EI_DATA={self.ei_data}")
        return f"ELF {bits} {order} {self.type_name}, machine {self.machine_name}"


def read_header(data: bytes) -> ElfHeader:
    """Decode the identification bytes and the ELF header, raw.

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
    e = ">" if ei_data == c.ELFDATA2MSB else "<"
    if ei_class == c.ELFCLASS32:
        size = 52
        fmt = e + "HHIIIIIHHHHHH"
    else:
        size = 64
        fmt = e + "HHIQQQIHHHHHH"
    if n < size:
        cls = c.CLASS_NAMES.get(ei_class, f"ELFCLASS_{ei_class}")
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


# open_verify reads this much of a file into its buffer at once (the larger of
# the two classes' buffers).
_LOADER_BUFFER = 832
_PT_NOTE = 4


def loader_blocks(data: bytes, limit: int = 1 << 16) -> tuple[tuple[int, bytes], ...] | None:
    """The parts of ``data`` the dynamic linker's identity checks can read, as
    (offset, bytes): its buffer (the file's first bytes, first), then the
    program headers and the PT_NOTE segments.

    The loader reads program headers only when EI_CLASS and EI_DATA are its
    own, so they are located with the file's own class and byte order. With
    the file's size, these blocks are all the identity checks need
    (:func:`abiscan.simulate.linker.identity.verify_identity`), so a scan keeps
    them instead of the file's bytes. A range that ends past the file is not
    kept (the loader reports it from the size alone). None when the blocks
    would hold more than ``limit`` bytes: then the whole file is needed.
    """
    n = len(data)
    blocks = [(0, bytes(data[:_LOADER_BUFFER]))]
    if n < 64 or data[:4] != _ELF_MAGIC or data[4] not in (1, 2) or data[5] not in (1, 2):
        return tuple(blocks)
    bits = 64 if data[4] == c.ELFCLASS64 else 32
    e = "<" if data[5] == c.ELFDATA2LSB else ">"
    word = "Q" if bits == 64 else "I"
    phoff = struct.unpack_from(e + word, data, 32 if bits == 64 else 28)[0]
    phnum = struct.unpack_from(e + "H", data, 56 if bits == 64 else 44)[0]
    size = 56 if bits == 64 else 32
    end = phoff + phnum * size
    if end > n:
        return tuple(blocks)  # "cannot read file data", known from the size alone
    blocks.append((phoff, bytes(data[phoff:end])))
    # where p_offset and p_filesz are in a program header
    at_offset, at_filesz = (8, 32) if bits == 64 else (4, 16)
    for at in range(phoff, end, size):
        if struct.unpack_from(e + "I", data, at)[0] != _PT_NOTE:
            continue
        p_offset = struct.unpack_from(e + word, data, at + at_offset)[0]
        p_filesz = struct.unpack_from(e + word, data, at + at_filesz)[0]
        if p_offset + p_filesz <= n:
            blocks.append((p_offset, bytes(data[p_offset : p_offset + p_filesz])))
    if sum(len(b) for _, b in blocks) > limit:
        return None
    return tuple(blocks)
