"""Facts read from the stack's bytes, each member inflated at most once per scan.

A binary's bytes are read once: its ELF facts are decoded then, in full
(:meth:`abiscan.elf.reader.ElfFacts.summary`), with the few bytes the dynamic
linker's identity checks read (:func:`abiscan.elf.header.loader_blocks`) and,
for an extension module, its read-only data (native imports look for module
names there). The bytes are then dropped: the loader simulation, the rules
and a second extension loading the same library read the summary.

With a content cache the summary is kept on disk, keyed by the member's
identity (:func:`member_key`: CRC-32, size and name from the zip directory;
size, mtime and inode in a directory) and the code that computed it, so a
warm scan inflates no binary that has not changed. A file whose facts
cannot all be decoded (a damaged table) keeps its lazily decoded facts, as
before, and is not cached: each fact then fails, or not, exactly as it did.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from abiscan import __version__
from abiscan.elf.header import loader_blocks
from abiscan.elf.reader import ElfError, ElfFacts, ElfSummary, read_facts, read_rodata
from abiscan.inputs.sources import DirectorySource, InputProblem, Source, SourceError, ZipSource
from abiscan.inputs.stack import Stack, StackFile
from abiscan.progress import count
from abiscan.records import mutable_record, record

if TYPE_CHECKING:  # start-up: a scan without the cache never loads it
    from abiscan.inputs.content_cache import ContentCache

__all__ = [
    "FileFacts",
    "LoaderBytes",
    "MemberSummary",
    "member_key",
    "summarise",
    "summary_key",
]

Blocks = tuple[tuple[int, bytes], ...]


@record
class LoaderBytes:
    """What the dynamic linker's identity checks read of a file: its first bytes,
    its size, and the other (offset, bytes) blocks they read
    (:func:`abiscan.simulate.linker.identity.verify_identity`)."""

    head: bytes
    size: int
    blocks: Blocks


@record
class MemberSummary:
    """What a scan keeps of one binary member (and the content cache stores).

    ``identity`` is None when the loader's blocks are too large to keep (the
    bytes are read again for the identity checks). ``elf`` is None when the
    file is no readable ELF file, ``elf_error`` saying why. ``rodata`` is
    kept for extension modules (files exporting ``PyInit_``) only.
    """

    size: int
    identity: Blocks | None
    elf: ElfSummary | None
    elf_error: str | None
    rodata: bytes | None


@mutable_record
class _Member:
    """What a scan read of one member: its size, identity, ELF facts and rodata."""

    size: int
    identity: Blocks | None
    elf: ElfFacts | ElfError
    rodata: bytes | None


def member_key(sf: StackFile) -> str | None:
    """What identifies a member's bytes without reading them; None when nothing does."""
    entry = sf.entry
    if entry.crc is not None:
        return f"zip|{entry.crc:08x}|{entry.size}|{entry.path}"
    if isinstance(sf.source, DirectorySource):
        full = sf.source.root / entry.path
        try:
            st = os.stat(full)
        except OSError:
            return None
        return f"dir|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{full}"
    return None


def summary_key(sf: StackFile) -> str | None:
    """The content cache's key for a member's :class:`MemberSummary`; None when
    nothing identifies its bytes without reading them."""
    ident = member_key(sf)
    return f"member-facts|{_code_fingerprint()}|{ident}" if ident else None


def summarise(data: bytes) -> MemberSummary | None:
    """A member's summary from its bytes, as a scan keeps it; None for a file whose
    facts cannot all be decoded (a damaged table: read by the scan itself, lazily)."""
    return _from_bytes(data, cacheable=True)[1]


@cache  # the files do not change while a process runs
def _code_fingerprint() -> str:
    """abiscan's version and the bytes of the code that computes a summary."""
    import hashlib  # start-up: only a scan with a cache computes keys

    digest = hashlib.sha256(__version__.encode())
    elf = Path(__file__).resolve().parents[1] / "elf"
    for path in [*sorted(elf.glob("*.py")), Path(__file__).resolve()]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:24]


@mutable_record
class FileFacts:
    """Facts read from the stack's bytes, each file at most once."""

    stack: Stack
    problems: list[InputProblem] = field(default_factory=list)
    cache: ContentCache | None = None
    # Summaries made elsewhere (abiscan.prefetch's workers): None when this process
    # is to read the member itself.
    prefetched: Callable[[StackFile], MemberSummary | None] | None = None
    # Whether another process read a member whole, within this stack's limits (a
    # worker that parsed it): then :meth:`check_readable` need not inflate it again.
    read_elsewhere: Callable[[StackFile], bool] | None = None
    _members: dict[str, _Member | SourceError] = field(default_factory=dict)
    # Per input: the members a scan read before (from the cache), and those read now.
    _reads: dict[int, tuple[str, frozenset[str], set[str]]] = field(default_factory=dict)

    def read(self, path: str) -> bytes | SourceError:
        try:
            return self.stack.read(path)
        except SourceError as exc:
            self._unreadable(path, exc)
            return exc

    def check_readable(self, path: str) -> SourceError | None:
        """Why the file at ``path`` cannot be read (inflated); None when it can.

        Only whether the bytes read is needed (a source module's program comes
        from the import graph), so a member that a scan read before under the
        same key (CRC-32, size and name) is not inflated again: a warm scan
        inflated every source it imports for this check alone. The members read
        are one cache entry per input (:meth:`save_reads`), not one per member:
        writing 536 tiny files cost a cold scan of the real layer 0.4 s. Nor is one
        a worker read whole (:attr:`read_elsewhere`): a cold scan with a worker
        inflated every source the worker had parsed a second time, here.
        """
        sf = self.stack.file(path)
        reads = None
        if self.cache is not None and sf is not None and sf.entry.size <= self.stack.memory_budget:
            reads = self._reads_of(sf.source)
        ident = member_key(sf) if reads is not None and sf is not None else None
        known = (reads is not None and ident is not None and ident in reads[1]) or (
            sf is not None and self.read_elsewhere is not None and self.read_elsewhere(sf)
        )
        if not known:
            data = self.read(path)
            if isinstance(data, SourceError):
                return data
        if reads is not None and ident is not None:
            reads[2].add(ident)
        return None

    def _reads_of(self, source: Source) -> tuple[str, frozenset[str], set[str]] | None:
        """The cache key of the members of ``source`` read before, those members, and
        the set of members read in this scan; None for an input the key cannot name."""
        got = self._reads.get(id(source))
        if got is not None or self.cache is None:
            return got
        if isinstance(source, ZipSource):
            where = f"zip|{os.path.abspath(source.path)}"
        elif isinstance(source, DirectorySource):
            where = f"dir|{os.path.abspath(source.root)}"
        else:
            return None
        key = f"member-reads|{__version__}|{where}"
        before = self.cache.get(key)
        known = before if isinstance(before, frozenset) else frozenset()
        got = self._reads[id(source)] = (key, known, set())
        return got

    def save_reads(self) -> None:
        """Keep the members this scan read, one entry per input: the members of the
        input read now (members gone from it are dropped, so an entry stays the
        size of its input's sources)."""
        if self.cache is None:
            return
        for key, before, now in self._reads.values():
            if now and frozenset(now) != before:
                self.cache.put(key, frozenset(now))

    def _unreadable(self, path: str, exc: SourceError) -> None:
        """A member that cannot be read is an input problem, named once."""
        sf = self.stack.file(path)
        if sf is None:
            return
        problem = InputProblem(
            source=sf.origin.source, path=sf.origin.source_path, problem=exc.reason
        )
        if problem not in self.problems:
            self.problems.append(problem)

    # -- one summary per binary ---------------------------------------------

    def _member(self, path: str) -> _Member | SourceError:
        sf = self.stack.file(path)
        real = sf.target_path if sf is not None else path
        got = self._members.get(real)
        if got is None:
            got = self._members[real] = self._summarise(path, sf)
        return got

    def _summarise(self, path: str, sf: StackFile | None) -> _Member | SourceError:
        if self.prefetched is not None and sf is not None:
            made = _as_member(self.prefetched(sf))
            if made is not None:
                return made
        key = None
        # A member over the memory budget is not read (an input problem), cached or not.
        if self.cache is not None and sf is not None and sf.entry.size <= self.stack.memory_budget:
            key = summary_key(sf)
        if key is not None and self.cache is not None:
            cached = _as_member(self.cache.get(key))
            if cached is not None:
                return cached
        data = self.read(path)
        if isinstance(data, SourceError):
            return data
        member, summary = _from_bytes(data, cacheable=key is not None)
        if key is not None and self.cache is not None and summary is not None:
            self.cache.put(key, summary)
        return member

    def elf(self, path: str) -> ElfFacts | ElfError | SourceError:
        got = self._member(path)
        return got if isinstance(got, SourceError) else got.elf

    def loader_bytes(self, path: str) -> LoaderBytes | SourceError:
        """What the identity checks of the file at ``path`` read."""
        got = self._member(path)
        if isinstance(got, SourceError):
            return got
        if got.identity is None:
            data = self.read(path)
            if isinstance(data, SourceError):
                return data
            return LoaderBytes(head=data, size=len(data), blocks=())
        return LoaderBytes(head=got.identity[0][1], size=got.size, blocks=got.identity)

    def rodata(self, path: str) -> bytes | SourceError:
        """The file's read-only data (:func:`abiscan.elf.reader.read_rodata`); b"" when
        it is no readable ELF file. Kept until first asked for, then released."""
        got = self._member(path)
        if isinstance(got, SourceError):
            return got
        if got.rodata is not None:
            ro, got.rodata = got.rodata, None
            return ro
        if isinstance(got.elf, ElfError):
            return b""
        data = self.read(path)
        return data if isinstance(data, SourceError) else read_rodata(data, got.elf)

    def is_extension(self, path: str) -> bool:
        """Whether an untagged ``.so`` is meant as an extension module.

        An ELF object exporting no ``PyInit_`` function is a shared library that
        happens to sit on the path (``libfoo.so`` next to a package); anything
        that is not ELF, or exports one, is treated as a module.
        """
        facts = self.elf(path)
        if isinstance(facts, (ElfError, SourceError)):
            return True
        try:
            return bool(facts.pyinit_names)
        except ElfError:
            return True


def _from_bytes(data: bytes, *, cacheable: bool) -> tuple[_Member, MemberSummary | None]:
    """The member's facts from its bytes, and (when ``cacheable``) their summary
    for the cache; None for a file whose facts cannot all be decoded."""
    identity = loader_blocks(data)
    count("elf")
    try:
        facts = read_facts(data)
    except ElfError as exc:
        member = _Member(size=len(data), identity=identity, elf=exc, rodata=None)
        summary = MemberSummary(
            size=len(data), identity=identity, elf=None, elf_error=str(exc), rodata=None
        )
        return member, summary
    try:
        settled = facts.settled()
        elf = settled.summary() if cacheable else None
    except ElfError:
        # A damaged table: the lazy facts fail (or not) as each is asked for.
        return _Member(size=len(data), identity=identity, elf=facts, rodata=None), None
    rodata = read_rodata(data, facts) if settled.pyinit_names else None
    member = _Member(size=len(data), identity=identity, elf=settled, rodata=rodata)
    if elf is None:
        return member, None
    summary = MemberSummary(
        size=len(data), identity=identity, elf=elf, elf_error=None, rodata=rodata
    )
    return member, summary


def _member_of(summary: MemberSummary) -> _Member:
    elf: ElfFacts | ElfError = (
        ElfFacts.from_summary(summary.elf)
        if summary.elf is not None
        else ElfError(summary.elf_error or "not an ELF file")
    )
    return _Member(size=summary.size, identity=summary.identity, elf=elf, rodata=summary.rodata)


def _as_member(value: object) -> _Member | None:
    """A cached summary, checked for its shape; None for anything else (a miss)."""
    if not isinstance(value, MemberSummary) or not isinstance(value.size, int):
        return None
    if value.elf is not None and not isinstance(value.elf, ElfSummary):
        return None
    if value.identity is not None and not (
        value.identity and all(isinstance(b, bytes) for _, b in value.identity)
    ):
        return None
    try:
        return _member_of(value)
    except (TypeError, ValueError, UnicodeDecodeError):
        return None
