"""The target's dynamic linker, step one: will glibc accept the file at all?

When CPython imports an extension module it calls ``dlopen()`` with the
file's path (always containing a ``/``). glibc's ``_dl_map_object`` then
calls ``open_verify`` (``elf/dl-load.c``), which reads the ELF header and
checks the file's identity against the running dynamic linker before
anything is mapped; ``_dl_map_object_from_fd`` then scans the program
headers. :func:`verify_identity` replays those checks, in glibc's order,
on the file's bytes and returns the :class:`LoadVerdict` with the exact
string ``dlerror()`` would return, which CPython passes on unchanged as the
``ImportError`` message.

How glibc builds the message (``dlfcn/dlerror.c``, same in 2.26 and 2.36):
``"<objname>: <errstring>"`` when the error code is 0, otherwise
``"<objname>: <errstring>: <strerror(errcode)>"``; objname is the path
given to ``dlopen``. Messages are the C-locale (untranslated) texts.

Messages, where they come from, and how they were checked. "2.26" means the
``elf/dl-load.c`` of the 2.2x era (open_verify with ``call_lose``),
"2.34" the 2021 one (``lose:`` inline), as read from public copies of
glibc's source; "here" means reproduced on this project's development host
(Debian 12, x86_64, glibc 2.36) by ``ctypes.CDLL(path)`` *and* by a real
``import`` in CPython 3.11 and 3.12 (identical strings), see
``tests/unit/test_loader_identity.py``:

================================================  ===========================  =====================
message (after ``<path>: ``)                      glibc source                 confirmed
================================================  ===========================  =====================
``file too short``                                open_verify: fewer bytes     here (0, 6, 20, 63
                                                  than ``sizeof(ElfW(Ehdr))``  and 52-byte ELF32)
                                                  read, errno 0
``invalid ELF header``                            open_verify: magic check     here (Mach-O thin
                                                                               and fat, PE, text)
``wrong ELF class: ELFCLASS32``                   _dl_map_object: open_verify  here (i386, arm,
                                                  set found_other_class; the   EI_CLASS 0 and 3)
                                                  text is fixed, whatever the
                                                  file's EI_CLASS
``ELF file data encoding not little-endian``      open_verify: EI_DATA         here (EI_DATA 0)
``ELF file version ident does not match current   open_verify: EI_VERSION      here
one``
``ELF file OS ABI invalid``                       open_verify: VALID_ELF_OSABI here (1, 9)
                                                  (SYSV or GNU on Linux)
``ELF file ABI version invalid``                  open_verify:                 here (SYSV+1, GNU+4)
                                                  VALID_ELF_ABIVERSION
``nonzero padding in e_ident``                    open_verify: EI_PAD          here
``ELF file version does not match current one``   open_verify: e_version       here (0, 2)
``cannot open shared object file: No such file    open_verify close_and_out    here (aarch64, ppc64
or directory``                                    (ENOENT) on                  on x86_64)
                                                  elf_machine_matches_host
                                                  failure, reported by
                                                  _dl_map_object
``only ET_DYN and ET_EXEC can be loaded``         open_verify: e_type          here (ET_REL,
                                                                               ET_CORE, ET_NONE)
``cannot dynamically load executable``            2.26: open_verify, before    here (2.36 order);
                                                  the phentsize check; 2.30+:  2.26 order from
                                                  _dl_map_object_from_fd,      source only
                                                  after the PT_LOAD scan
``ELF file's phentsize not the expected size``    open_verify: e_phentsize     here
``cannot read file data``                         open_verify: short pread of  here (e_phoff past
                                                  the program headers          EOF, e_phnum 1000,
                                                  (errno 0)                    truncated files)
``cannot read file data: Invalid argument``       same, pread64 with an        here (e_phoff
                                                  offset >= 2**63 (EINVAL)     2**63)
``object file has no loadable segments``          _dl_map_object_from_fd       here (e_phnum 0)
``ELF load command alignment not page-aligned``   _dl_map_object_from_fd,      source only; here
                                                  up to 2.34 (p_align not a    (2.36) a 2 KiB
                                                  page multiple)               p_align loads
``ELF load command address/offset not properly    _dl_map_object_from_fd,      source only
aligned``                                         up to 2.34
``ELF load command address/offset not             _dl_map_object_from_fd,      here
page-aligned``                                    2.35 and later
``object file has no dynamic section``            _dl_map_object_from_fd       here (PT_DYNAMIC
                                                  (before mapping since 2.35,  turned into
                                                  just after it before)        PT_NULL)
================================================  ===========================  =====================

Differences between glibc versions and builds, all modelled here (give
``glibc=`` for the target's version; without it a verdict that differs
across 2.26-2.36 comes back as ``depends-on-glibc-version``):

* ET_EXEC is refused inside open_verify, before the e_phentsize check, up
  to 2.29; from 2.30 (the PIE-refusal rework) only after the PT_LOAD scan.
* The PT_LOAD checks changed in 2.35 (see the table).
* The ``.note.ABI-tag`` check (a PT_NOTE naming a non-Linux OS, or a newer
  kernel than the running one, makes the file "not found", ENOENT) exists
  through 2.35 (source) and is gone in 2.36 (here: a note naming OS 1, or
  kernel 99.0.0, loads). Lambda kernels are not knowable statically; the
  oldest Lambda uses is 4.14, so requirements up to 4.14.0 pass, and above
  it the verdict is ``depends-on-kernel-version`` unless ``kernel`` is given.
  (Which notes count changed in 2.27 with 8-byte note alignment; the
  boundary is taken from the source history, not tested.)
* ``ELFOSABI_GNU`` objects may carry an EI_ABIVERSION below LIBC_ABI_MAX,
  which counts the ``libc-abis`` entries for the architecture: UNIQUE, IFUNC
  (x86, powerpc only), and ABSOLUTE since 2.28. On x86_64 2.36 here: 3 is
  accepted, 4 refused.
* Debian and Ubuntu patch ``open_verify`` (their "ldso multilib" patch) to
  test ``elf_machine_matches_host`` inside the identity-failure branch,
  right after the class check. So on this Debian host a big-endian x86_64
  file (whose e_machine, read little-endian, is 0x3e00) gives ENOENT rather
  than "data encoding not little-endian". Amazon Linux (Lambda) carries no
  such patch; ``flavor="debian"`` reproduces it for the differential tests.

A program-header offset so large that glibc's ``size_t`` sum wraps makes it
read outside its buffer; that verdict is ``crash`` with no message.

Why raw bytes here, while the rest of abiscan reads ELF through pyelftools
(:mod:`abiscan.elf.model`): these checks exist to predict what glibc says
about files that are *not* well-formed, and glibc reads them with fixed
offsets into its own ``ElfW(Ehdr)`` whatever EI_CLASS and EI_DATA say.
pyelftools refuses such files before any field can be compared (an EI_CLASS
of 0 or 3, an EI_DATA of 0, a header shorter than its class's), and a
program header it cannot parse is an exception, not glibc's "cannot read
file data". So the header comes from :func:`abiscan.elf.header.read_header`
and the program headers and notes are unpacked with ``struct``, as glibc
reads them.

Left to later steps: mapping the segments (mmap failures, a file that ends
inside a PT_LOAD), the dynamic section (DF_1_PIE: "cannot dynamically load
position-independent executable"), x86 ISA-level notes, dependencies,
symbol versions and relocations. Unusual ARM float-ABI and MIPS
``elf_machine_reject_phdr_p`` rules are not modelled.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from typing import Protocol

from abiscan.elf.header import ElfError, read_header, sniff_format
from abiscan.records import record

__all__ = [
    "ARCHES",
    "LoadVerdict",
    "verify_identity",
]


@record
class LoadVerdict:
    """What the dynamic linker does with the file's identity.

    ``message`` is the exact ``dlerror()`` string (and so the ImportError
    text) when the outcome is certain and a failure; ``None`` when the file
    passes, or when the outcome depends on something not known statically
    (then ``reason`` starts with ``depends-on-`` and ``detail`` lists the
    possibilities).
    """

    ok: bool
    message: str | None
    reason: str
    detail: str


@record
class _Host:
    """The loading process's ELF identity on the target architecture."""

    arch: str
    bits: int
    byte_order: str
    machine: int
    machine_name: str
    # libc-abis entries for this architecture: (name, first glibc with it).
    abi_tags: tuple[tuple[str, tuple[int, int]], ...]

    @property
    def ei_class(self) -> int:
        return 2 if self.bits == 64 else 1

    @property
    def ei_data(self) -> int:
        return 1 if self.byte_order == "little" else 2

    @property
    def class_name(self) -> str:
        return f"ELFCLASS{self.bits}"

    def libc_abi_max(self, glibc: tuple[int, int]) -> int:
        return 1 + sum(1 for _, since in self.abi_tags if glibc >= since)


_OLD = (2, 0)
_ABSOLUTE = ("ABSOLUTE", (2, 28))
_HOSTS = {
    h.arch: h
    for h in (
        _Host(
            arch="x86_64",
            bits=64,
            byte_order="little",
            machine=62,
            machine_name="x86_64",
            abi_tags=(("UNIQUE", _OLD), ("IFUNC", _OLD), _ABSOLUTE),
        ),
        _Host(
            arch="aarch64",
            bits=64,
            byte_order="little",
            machine=183,
            machine_name="aarch64",
            abi_tags=(("UNIQUE", _OLD), _ABSOLUTE),
        ),
        _Host(
            arch="i686",
            bits=32,
            byte_order="little",
            machine=3,
            machine_name="i386",
            abi_tags=(("UNIQUE", _OLD), ("IFUNC", _OLD), _ABSOLUTE),
        ),
        _Host(
            arch="armv7l",
            bits=32,
            byte_order="little",
            machine=40,
            machine_name="arm",
            abi_tags=(("UNIQUE", _OLD), _ABSOLUTE),
        ),
        _Host(
            arch="ppc64le",
            bits=64,
            byte_order="little",
            machine=21,
            machine_name="ppc64",
            abi_tags=(("UNIQUE", _OLD), ("IFUNC", _OLD), _ABSOLUTE),
        ),
        _Host(
            arch="s390x",
            bits=64,
            byte_order="big",
            machine=22,
            machine_name="s390",
            abi_tags=(("UNIQUE", _OLD), _ABSOLUTE),
        ),
    )
}
_ARCH_ALIASES = {
    "amd64": "x86_64",
    "arm64": "aarch64",
    "i386": "i686",
    "i586": "i686",
    "x86": "i686",
    "armhf": "armv7l",
    "arm": "armv7l",
    "ppc64el": "ppc64le",
}
ARCHES: tuple[str, ...] = tuple(_HOSTS)

# The glibc releases abiscan's targets span; with no version given, the
# verdict must hold for all of them.
_GLIBC_RANGE: tuple[tuple[int, int], ...] = tuple((2, m) for m in range(26, 37))

# Lambda's oldest execution-environment kernel. A .note.ABI-tag asking for
# no more than this passes on every Lambda runtime.
_MIN_LAMBDA_KERNEL = (4, 14, 0)

_ET_EXEC = 2
_ET_DYN = 3
_PT_LOAD = 1
_PT_DYNAMIC = 2
_PT_NOTE = 4
_ELFOSABI_SYSV = 0
_ELFOSABI_GNU = 3
_ENOENT_TEXT = "cannot open shared object file: No such file or directory"


class _Prefix(bytes):
    """The first bytes of a file, whose ``len`` is the whole file's size, and
    the other parts the checks read (:func:`abiscan.elf.header.loader_blocks`)."""

    _size: int
    _blocks: Sequence[tuple[int, bytes]]

    def __new__(cls, data: bytes, size: int, blocks: Sequence[tuple[int, bytes]]) -> _Prefix:
        self = super().__new__(cls, data)
        self._size = max(size, len(data))
        self._blocks = blocks
        return self

    def __len__(self) -> int:
        return self._size

    def at(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end``, from the block that holds them."""
        if end <= super().__len__():
            return self[start:end]
        for offset, block in self._blocks:
            if offset <= start and end <= offset + len(block):
                return block[start - offset : end - offset]
        raise ValueError(f"bytes {start:#x}-{end:#x} were not kept for the identity checks")


class _Fail(Exception):
    def __init__(self, verdict: LoadVerdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


def _host(arch: str) -> _Host:
    key = arch.lower()
    key = _ARCH_ALIASES.get(key, key)
    try:
        return _HOSTS[key]
    except KeyError:
        raise ValueError(
            f"unknown target architecture {arch!r}; known: {', '.join(ARCHES)}"
        ) from None


def _parse_glibc(glibc: str | tuple[int, int]) -> tuple[int, int]:
    if isinstance(glibc, tuple):
        return (int(glibc[0]), int(glibc[1]))
    m = re.fullmatch(r"(?:glibc\s+)?(\d+)\.(\d+)(?:\.\d+)?", glibc.strip())
    if not m:
        raise ValueError(f"not a glibc version: {glibc!r} (expected e.g. 2.34)")
    return (int(m.group(1)), int(m.group(2)))


def verify_identity(
    data: bytes,
    target_path: str,
    *,
    arch: str,
    glibc: str | tuple[int, int] | None = None,
    kernel: tuple[int, int, int] | None = None,
    flavor: str = "upstream",
    page_size: int = 4096,
    size: int | None = None,
    blocks: Sequence[tuple[int, bytes]] = (),
) -> LoadVerdict:
    """Replay glibc's identity checks of ``data`` as the file ``target_path``.

    ``arch`` is the target's machine (``x86_64``, ``aarch64``; also
    ``i686``, ``armv7l``, ``ppc64le``, ``s390x``). ``glibc`` is the
    target's glibc version ("2.34" or (2, 34)); without it the verdict must
    agree across 2.26-2.36 or it says ``depends-on-glibc-version``.
    ``kernel`` is the target's kernel version, only consulted by glibc
    before 2.36 and only for files with a ``.note.ABI-tag``. ``flavor`` is
    "upstream" (Amazon Linux, Fedora, RHEL) or "debian" (Debian/Ubuntu's
    patched ld.so). ``page_size`` is the target's page size.

    ``size``, when given, is the length of the whole file, ``data`` only its
    first bytes and ``blocks`` the other (offset, bytes) parts the checks
    read, as :func:`abiscan.elf.header.loader_blocks` keeps them: so a scan
    need not hold (or inflate again) a file to check it.
    """
    host = _host(arch)
    if flavor not in ("upstream", "debian"):
        raise ValueError(f"flavor must be 'upstream' or 'debian', not {flavor!r}")
    data = _Prefix(data, size, blocks) if size is not None else bytes(data)
    if glibc is not None:
        version = _parse_glibc(glibc)
        label = f"{version[0]}.{version[1]}"
        return _verify(data, target_path, host, version, label, kernel, flavor, page_size)
    lo, hi = _GLIBC_RANGE[0], _GLIBC_RANGE[-1]
    label = f"{lo[0]}.{lo[1]}-{hi[0]}.{hi[1]}"
    by_version = [
        (v, _verify(data, target_path, host, v, label, kernel, flavor, page_size))
        for v in _GLIBC_RANGE
    ]
    newest = by_version[-1][1]
    if all(_outcome(vd) == _outcome(newest) for _, vd in by_version):
        return newest
    return _combine_versions(by_version)


def _outcome(vd: LoadVerdict) -> tuple[bool, str | None, str]:
    return (vd.ok, vd.message, vd.reason)


def _combine_versions(by_version: Sequence[tuple[tuple[int, int], LoadVerdict]]) -> LoadVerdict:
    groups: list[tuple[tuple[int, int], tuple[int, int], LoadVerdict]] = []
    for v, vd in by_version:
        if groups and _outcome(groups[-1][2]) == _outcome(vd):
            groups[-1] = (groups[-1][0], v, vd)
        else:
            groups.append((v, v, vd))
    parts = []
    for lo, hi, vd in groups:
        span = f"glibc {lo[0]}.{lo[1]}" + (f"-{hi[0]}.{hi[1]}" if hi != lo else "")
        if vd.ok:
            outcome = "passes the identity checks"
        elif vd.message is None:
            outcome = f"{vd.reason}: {vd.detail}"
        else:
            outcome = f"fails with {vd.message!r}"
        parts.append(f"{span}: {outcome}")
    return LoadVerdict(
        ok=False,
        message=None,
        reason="depends-on-glibc-version",
        detail="the outcome depends on the target's glibc version; " + "; ".join(parts),
    )


def _describe_file(data: bytes) -> str:
    try:
        return read_header(data).describe()
    except ElfError:
        fmt = sniff_format(data)
        return {
            "empty": "an empty file",
            "mach-o": "a Mach-O file",
            "pe": "a PE (MZ) file",
        }.get(fmt, "not an ELF file")


def _verify(
    data: bytes,
    path: str,
    host: _Host,
    glibc: tuple[int, int],
    glibc_label: str,
    kernel: tuple[int, int, int] | None,
    flavor: str,
    page_size: int,
) -> LoadVerdict:
    target = (
        f"the target ({host.arch}, glibc {glibc_label}) loads "
        f"{host.class_name} {'LSB' if host.byte_order == 'little' else 'MSB'} "
        f"{host.machine_name} objects"
    )

    def fail(reason: str, errstring: str, why: str, strerror: str | None = None) -> _Fail:
        text = f"{errstring}: {strerror}" if strerror else errstring
        message = f"{path}: {text}" if path else text
        return _Fail(
            LoadVerdict(ok=False, message=message, reason=reason, detail=f"{why}; {target}")
        )

    try:
        _check(data, host, glibc, kernel, flavor, page_size, fail)
    except _Fail as f:
        return f.verdict
    return LoadVerdict(
        ok=True,
        message=None,
        reason="ok",
        detail=f"{_describe_file(data)} passes the identity checks; {target}",
    )


class _FailFactory(Protocol):
    def __call__(
        self, reason: str, errstring: str, why: str, strerror: str | None = None
    ) -> _Fail: ...


@record
class _Ehdr:
    """The ELF header fields the loader reads, in the target's byte order."""

    e_type: int
    e_machine: int
    e_version: int
    e_phoff: int
    e_phentsize: int
    e_phnum: int


def _read_ehdr(data: bytes, host: _Host, e: str) -> _Ehdr:
    e_type, e_machine, e_version = struct.unpack_from(e + "HHI", data, 16)
    if host.bits == 64:
        (e_phoff,) = struct.unpack_from(e + "Q", data, 32)
        e_phentsize, e_phnum = struct.unpack_from(e + "HH", data, 54)
    else:
        (e_phoff,) = struct.unpack_from(e + "I", data, 28)
        e_phentsize, e_phnum = struct.unpack_from(e + "HH", data, 42)
    return _Ehdr(
        e_type=e_type,
        e_machine=e_machine,
        e_version=e_version,
        e_phoff=e_phoff,
        e_phentsize=e_phentsize,
        e_phnum=e_phnum,
    )


def _check(
    data: bytes,
    host: _Host,
    glibc: tuple[int, int],
    kernel: tuple[int, int, int] | None,
    flavor: str,
    page_size: int,
    fail: _FailFactory,
) -> None:
    """open_verify, then _dl_map_object_from_fd's checks before mapping, in glibc's order."""
    n = len(data)
    e = "<" if host.byte_order == "little" else ">"
    ehdr_size = 64 if host.bits == 64 else 52
    # open_verify reads up to this much into its buffer; program headers
    # and notes inside it are taken from the buffer, others are pread.
    buflen = min(n, 832 if host.bits == 64 else 512)
    addr_mask = (1 << host.bits) - 1
    if n < ehdr_size:
        raise fail(
            "file-too-short",
            "file too short",
            f"the file has {n} bytes ({_describe_file(data)}); the loader reads a "
            f"{ehdr_size}-byte ELF header before checking anything",
        )
    ehdr = _read_ehdr(data, host, e)
    _check_ident(data, host, glibc, flavor, ehdr.e_machine, fail)
    _check_header(data, host, glibc, ehdr, fail)
    segments = _segments(data, host, ehdr, buflen, addr_mask, fail, e)
    if glibc < (2, 36):
        _check_abi_note(data, segments, buflen, addr_mask, host, glibc, kernel, fail, e)
    _check_segments(_describe_file(data), segments, glibc, page_size, addr_mask, ehdr, fail)


# Long on purpose: open_verify's e_ident checks in glibc's order, each with its
# own message; the order decides which message a broken file gets.
def _check_ident(
    data: bytes,
    host: _Host,
    glibc: tuple[int, int],
    flavor: str,
    e_machine: int,
    fail: _FailFactory,
) -> None:
    """e_ident, as open_verify compares it with the host's expected bytes."""
    machine_ok = e_machine == host.machine
    ei_class, ei_data, ei_version, ei_osabi, ei_abiversion = data[4:9]
    pad = data[9:16]
    abi_max = host.libc_abi_max(glibc)
    abiversion_ok = ei_abiversion == 0 or (ei_osabi == _ELFOSABI_GNU and ei_abiversion < abi_max)
    osabi_ok = ei_osabi in (_ELFOSABI_SYSV, _ELFOSABI_GNU)
    ident_ok = (
        data[:4] == b"\x7fELF"
        and ei_class == host.ei_class
        and ei_data == host.ei_data
        and ei_version == 1
        and osabi_ok
        and abiversion_ok
        and pad == bytes(7)
    )
    if ident_ok:
        return
    file_desc = _describe_file(data)
    if data[:4] != b"\x7fELF":
        raise fail(
            "not-elf",
            "invalid ELF header",
            f"{file_desc}: it starts with {data[:4].hex(' ')}, not the ELF magic 7f 45 4c 46",
        )
    if ei_class != host.ei_class:
        other = "ELFCLASS32" if host.bits == 64 else "ELFCLASS64"
        note = (
            ""
            if ei_class in (1, 2)
            else f" (EI_CLASS is {ei_class}; glibc names the other class whatever the value)"
        )
        raise fail("wrong-class", f"wrong ELF class: {other}", f"{file_desc}{note}")
    if flavor == "debian" and not machine_ok:
        raise fail(
            "wrong-machine",
            _ENOENT_TEXT,
            f"{file_desc} (e_machine read as {e_machine:#x} in the target's byte order): "
            "Debian's ld.so skips objects for other machines before naming other ident "
            "problems, and reports the file as not found",
        )
    if ei_data != host.ei_data:
        want = "little" if host.byte_order == "little" else "big"
        raise fail(
            "wrong-byte-order",
            f"ELF file data encoding not {want}-endian",
            f"{file_desc}: EI_DATA is {ei_data}",
        )
    if ei_version != 1:
        raise fail(
            "bad-ident",
            "ELF file version ident does not match current one",
            f"{file_desc}: EI_VERSION is {ei_version}, not 1",
        )
    if not osabi_ok:
        raise fail(
            "bad-ident",
            "ELF file OS ABI invalid",
            f"{file_desc}: EI_OSABI is {ei_osabi}; Linux glibc accepts 0 (SYSV) and 3 (GNU)",
        )
    if not abiversion_ok:
        limit = (
            "0"
            if ei_osabi != _ELFOSABI_GNU
            else f"below {abi_max} with ELFOSABI_GNU (LIBC_ABI_MAX of this glibc)"
        )
        raise fail(
            "bad-ident",
            "ELF file ABI version invalid",
            f"{file_desc}: EI_ABIVERSION is {ei_abiversion}; the loader accepts {limit}",
        )
    raise fail(
        "bad-ident",
        "nonzero padding in e_ident",
        f"{file_desc}: e_ident[9:16] is {pad.hex(' ')}",
    )


def _check_header(
    data: bytes, host: _Host, glibc: tuple[int, int], ehdr: _Ehdr, fail: _FailFactory
) -> None:
    """The rest of the ELF header: version, machine, type, program header size."""
    e_version, e_type, e_phentsize = ehdr.e_version, ehdr.e_type, ehdr.e_phentsize
    machine_ok = ehdr.e_machine == host.machine
    phdr_size = 56 if host.bits == 64 else 32
    file_desc = _describe_file(data)
    if e_version != 1:
        raise fail(
            "bad-version",
            "ELF file version does not match current one",
            f"{file_desc}: e_version is {e_version}, not 1",
        )
    if not machine_ok:
        raise fail(
            "wrong-machine",
            _ENOENT_TEXT,
            f"{file_desc}: glibc skips objects for another machine as if the file did not "
            "exist, so dlopen reports ENOENT",
        )
    if e_type not in (_ET_DYN, _ET_EXEC):
        raise fail(
            "wrong-type",
            "only ET_DYN and ET_EXEC can be loaded",
            f"{file_desc}: an {_type_word(e_type)} cannot be loaded",
        )
    if e_type == _ET_EXEC and glibc < (2, 30):
        raise fail(
            "wrong-type",
            "cannot dynamically load executable",
            f"{file_desc}: an executable, not a shared object",
        )
    if e_phentsize != phdr_size:
        raise fail(
            "bad-phentsize",
            "ELF file's phentsize not the expected size",
            f"{file_desc}: e_phentsize is {e_phentsize}, not {phdr_size}",
        )


def _segments(
    data: bytes,
    host: _Host,
    ehdr: _Ehdr,
    buflen: int,
    addr_mask: int,
    fail: _FailFactory,
    e: str,
) -> list[tuple[int, int, int, int, int]]:
    """(p_type, p_offset, p_vaddr, p_filesz, p_align) of each program header."""
    phdr_size = 56 if host.bits == 64 else 32
    e_phoff, e_phnum = ehdr.e_phoff, ehdr.e_phnum
    phdrs = _read_block(
        data, e_phoff, e_phnum * phdr_size, buflen, addr_mask, host, fail, "program headers"
    )
    ph_fmt = e + ("IIQQQQQQ" if host.bits == 64 else "IIIIIIII")
    segments = []
    for i in range(e_phnum):
        rec = struct.unpack_from(ph_fmt, phdrs, i * phdr_size)
        if host.bits == 64:
            p_type, _, p_offset, p_vaddr, _, p_filesz, _, p_align = rec
        else:
            p_type, p_offset, p_vaddr, _, p_filesz, _, _, p_align = rec
        segments.append((p_type, p_offset, p_vaddr, p_filesz, p_align))

    return segments


def _check_segments(
    file_desc: str,
    segments: list[tuple[int, int, int, int, int]],
    glibc: tuple[int, int],
    page_size: int,
    addr_mask: int,
    ehdr: _Ehdr,
    fail: _FailFactory,
) -> None:
    e_type, e_phnum = ehdr.e_type, ehdr.e_phnum
    # What _dl_map_object_from_fd checks in the program headers before it
    # maps anything. glibc 2.35 replaced the two p_align checks with one
    # page-congruence check when it started honouring large p_align values.
    nload = 0
    has_dynamic = False
    for p_type, p_offset, p_vaddr, p_filesz, p_align in segments:
        if p_type == _PT_DYNAMIC and p_filesz != 0:
            has_dynamic = True
        if p_type != _PT_LOAD:
            continue
        delta = (p_vaddr - p_offset) & addr_mask
        if glibc >= (2, 35):
            if delta & (page_size - 1):
                raise fail(
                    "bad-load-alignment",
                    "ELF load command address/offset not page-aligned",
                    f"{file_desc}: a PT_LOAD has p_vaddr {p_vaddr:#x} and p_offset "
                    f"{p_offset:#x}, not congruent modulo the {page_size:#x}-byte page",
                )
        else:
            if p_align & (page_size - 1):
                raise fail(
                    "bad-load-alignment",
                    "ELF load command alignment not page-aligned",
                    f"{file_desc}: a PT_LOAD has p_align {p_align:#x}, not a multiple of the "
                    f"{page_size:#x}-byte page",
                )
            if delta & ((p_align - 1) & addr_mask):
                raise fail(
                    "bad-load-alignment",
                    "ELF load command address/offset not properly aligned",
                    f"{file_desc}: a PT_LOAD has p_vaddr {p_vaddr:#x} and p_offset "
                    f"{p_offset:#x}, not congruent modulo p_align {p_align:#x}",
                )
        nload += 1
    if nload == 0:
        raise fail(
            "no-loadable-segments",
            "object file has no loadable segments",
            f"{file_desc}: no PT_LOAD among its {e_phnum} program headers",
        )
    if e_type == _ET_EXEC:
        raise fail(
            "wrong-type",
            "cannot dynamically load executable",
            f"{file_desc}: an executable, not a shared object",
        )
    if not has_dynamic:
        # 2.35+ checks this before mapping; older glibc right after mapping,
        # where a mapping failure could be reported first.
        raise fail(
            "no-dynamic-section",
            "object file has no dynamic section",
            f"{file_desc}: no PT_DYNAMIC with contents (a separate debug-info file?)",
        )


def _type_word(e_type: int) -> str:
    return {
        0: "ET_NONE file",
        1: "ET_REL object file (a .o, not linked)",
        4: "ET_CORE core dump",
    }.get(e_type, f"object of e_type {e_type:#x}")


def _read_block(
    data: bytes,
    offset: int,
    size: int,
    buflen: int,
    addr_mask: int,
    host: _Host,
    fail: _FailFactory,
    what: str,
) -> bytes:
    """Bytes glibc gets for ``size`` bytes at ``offset``: its buffer or a pread."""
    end = offset + size
    if (end & addr_mask) <= buflen:
        if end > addr_mask:
            # glibc's size_t sum wrapped around, so it points into memory
            # past its buffer; what happens next is not predictable.
            raise _Fail(
                LoadVerdict(
                    ok=False,
                    message=None,
                    reason="crash",
                    detail=f"the {what} offset {offset:#x} plus size {size:#x} overflows; glibc "
                    "reads outside its buffer and the process most likely crashes",
                )
            )
        return _slice(data, offset, end)
    if host.bits == 64 and offset >= 1 << 63:
        raise fail(
            "unreadable",
            "cannot read file data",
            f"the {what} are at offset {offset:#x}, which pread64 rejects (EINVAL)",
            "Invalid argument",
        )
    if end > len(data):
        raise fail(
            "unreadable",
            "cannot read file data",
            f"the {what} span {offset:#x}-{end:#x} but the file ends at {len(data):#x}",
        )
    return _slice(data, offset, end)


def _slice(data: bytes, start: int, end: int) -> bytes:
    return data.at(start, end) if isinstance(data, _Prefix) else data[start:end]


def _check_abi_note(
    data: bytes,
    segments: list[tuple[int, int, int, int, int]],
    buflen: int,
    addr_mask: int,
    host: _Host,
    glibc: tuple[int, int],
    kernel: tuple[int, int, int] | None,
    fail: _FailFactory,
    e: str,
) -> None:
    """open_verify's .note.ABI-tag check (glibc before 2.36)."""
    expected = struct.pack(e + "III", 4, 16, 1) + b"GNU\0"
    for p_type, p_offset, _, p_filesz, p_align in segments:
        if p_type != _PT_NOTE or p_filesz < 32:
            continue
        if glibc < (2, 27):
            if p_align < 4:
                continue
        elif p_align not in (4, 8):
            continue
        size = p_filesz
        note = _read_block(data, p_offset, size, buflen, addr_mask, host, fail, "PT_NOTE")
        pos = 0
        while note[pos : pos + 16] != expected:
            namesz, descsz = struct.unpack_from(e + "II", note, pos)
            if glibc < (2, 27):
                note_size = 12 + _align(namesz, 4) + _align(descsz, 4)
            else:
                note_size = _align(_align(12 + namesz, p_align) + descsz, p_align)
            if ((size - 32) & addr_mask) < note_size:
                size = 0
                break
            size -= note_size
            pos += note_size
        if size == 0:
            continue
        os_tag, major, minor, patch = struct.unpack_from(e + "IIII", note, pos + 16)
        required = (major & 0xFF, minor & 0xFF, patch & 0xFF)
        req_text = ".".join(map(str, required))
        if os_tag != 0:
            raise fail(
                "wrong-os",
                _ENOENT_TEXT,
                f"its .note.ABI-tag names OS {os_tag}, not Linux (0); glibc before 2.36 "
                "skips such files as if they did not exist",
            )
        if kernel is not None:
            if tuple(k & 0xFF for k in kernel) < required:
                raise fail(
                    "kernel-too-old",
                    _ENOENT_TEXT,
                    f"its .note.ABI-tag requires Linux {req_text}, newer than the target's "
                    f"kernel {'.'.join(map(str, kernel))}",
                )
        elif required > _MIN_LAMBDA_KERNEL:
            raise _Fail(
                LoadVerdict(
                    ok=False,
                    message=None,
                    reason="depends-on-kernel-version",
                    detail=f"its .note.ABI-tag requires Linux {req_text}; glibc before 2.36 "
                    f"refuses it on an older kernel with '{_ENOENT_TEXT}', and the "
                    "target's kernel is not known",
                )
            )
        return


def _align(n: int, a: int) -> int:
    if a <= 1:
        return n
    return (n + a - 1) & -a
