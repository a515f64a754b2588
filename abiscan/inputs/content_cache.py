"""The content cache: facts about one member, kept on disk between scans.

An entry is keyed by what identifies a member's bytes without reading them
(CRC-32, size and name from the zip directory; size, mtime and inode for a
file in a directory), plus a fingerprint of the code that computed the facts
(abiscan's version, the running Python's grammar and the code's own bytes).

Entries hold plain data only: a cache directory may be shared, and reading
one back must run no code but the constructors of abiscan's records and of
syntax-tree nodes. An entry is a version line, a CRC-32, its key, and a
pickle read back by an unpickler that finds no other class (below). A process writes the
entries it puts into one pack, a temporary file renamed into place whole
(``os.replace``) with its index when the scan ends (:meth:`ContentCache.flush`),
so concurrent scans never see half an entry, nor half a pack. The directory is
bounded in size: past the bound, the least recently used packs are removed,
and too many small packs are merged into the next one. A corrupt entry is
ignored (and rewritten by the scan that computes it again, in a newer pack,
which wins); a damaged pack is removed; a cache directory that is absent,
read-only or full never fails a scan (docs/decisions.md, "The content cache in packs").
"""

from __future__ import annotations

import ast
import contextlib
import copyreg
import dataclasses
import enum
import functools
import importlib
import io
import itertools
import marshal
import os
import pickle
import re
import struct
import sys
import threading
import warnings
import weakref
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from abiscan.collector import collector_paused
from abiscan.errors import CacheFormatError as CacheFormatError  # re-exported

__all__ = [
    "DEFAULT_MAX_BYTES",
    "CacheFormatError",
    "ContentCache",
    "default_cache_dir",
    "dumps_value",
    "entry_of",
    "keep_def_sources",
    "loads_value",
    "pack_entry",
    "unpack_entry",
]

# Bump when the layout of an entry changes.
FORMAT_VERSION = 8  # 2: syntax-tree nodes; 3: ``...`` and complex constants; 4: blob table first;
# 5: marshal of tagged tuples, one class table per entry; 6: a ``def`` as its source text;
# 7: entries in packs (one per process and scan) with an index, not one file each;
# 8: the key in the frame, the value a pickle read by an unpickler of plain data only
_MAGIC = b"abiscan-cache %d\n" % FORMAT_VERSION
# Bounded so that a busy CI machine never fills its disk with facts.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
# Trimming walks the directory; do it once per this many bytes written.
_TRIM_EVERY = 16 * 1024 * 1024


def default_cache_dir() -> Path:
    """``$ABISCAN_CACHE_DIR``, else ``$XDG_CACHE_HOME/abiscan``, else ``~/.cache/abiscan``."""
    explicit = os.environ.get("ABISCAN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "abiscan"


class ContentCache:
    """Plain facts on disk, by key, in packs. Every failure to read or write is a miss.

    Entries this process puts go to its own pack, a temporary file that
    :meth:`flush` publishes whole (renamed into place, with its index): a cold
    scan of the real layer wrote some 770 entries, one file each, and creating
    and renaming those cost more CPU than writing their bytes. Other processes
    see a pack only once it is published, so never a torn one; this process
    reads its own pending entries back from the temporary file.
    """

    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = Path(directory) / f"v{FORMAT_VERSION}"
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._written = 0
        self._writable = True
        # The published packs' entries, newest pack winning: digest -> (pack, offset,
        # length); read on first use.
        self._index: dict[bytes, tuple[str, int, int]] | None = None
        self._files = _Files()
        # Publishes the pending pack and closes the files if no one did (a process
        # that ends with os._exit must call flush() first: a pool's worker does).
        weakref.finalize(self, self._files.close, self.directory)

    def get(self, key: str) -> Any:
        """The value stored under ``key``; None when absent, unreadable or corrupt."""
        digest = _digest(key)
        raw = self._read(digest)
        if raw is not None:
            try:
                value = unpack_entry(raw, key)
            except CacheFormatError:
                # Corrupt: a miss, and the entry this scan puts again replaces it.
                self._forget(digest)
            else:
                self.hits += 1
                return value
        self.misses += 1
        return None

    def has(self, key: str) -> bool:
        """Whether an entry exists for ``key`` (without reading or checking it)."""
        digest = _digest(key)
        return digest in self._files.pending or digest in self._published()

    def raw(self, key: str) -> bytes | None:
        """The bytes stored under ``key`` (an entry :func:`pack_entry` made, unchecked);
        None when there is none."""
        return self._read(_digest(key))

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (plain data: see the entry format below); never raises for I/O."""
        if not self._writable:
            return
        try:
            data = pack_entry(key, value)
        except (TypeError, ValueError, RecursionError):
            # A value the format cannot hold is simply not cached: the scan goes on.
            return
        self.put_entry(key, data)

    def put_entry(self, key: str, data: bytes) -> None:
        """Store an entry :func:`pack_entry` made (a worker sends the bytes it stored,
        not a second encoding of the value) in this process's pending pack; never
        raises for I/O."""
        if not self._writable:
            return
        try:
            self._files.append(self.directory, _digest(key), data)
        except OSError:
            # Read-only, absent or full: the scan goes on without a cache.
            self._writable = False
            self._files.drop()
            return
        self._written += len(data)
        if self._written >= _TRIM_EVERY:
            self._written = 0
            self.trim()

    def flush(self) -> None:
        """Publish the entries put since the last flush as one pack (renamed into place
        whole), merging the smallest packs into it when there are too many; then trim.
        Never raises for I/O: what cannot be published is dropped."""
        files = self._files
        if not files.pending or files.fd < 0:
            return
        packs = self._packs()
        merged = self._merge_into_pending(packs) if len(packs) >= _MAX_PACKS else []
        try:
            name, entries = files.publish(self.directory)
        except OSError:
            self._writable = False
            files.drop()
            return
        if self._index is not None:
            self._index.update((d, (name, off, n)) for d, (off, n) in entries.items())
        for old in merged:
            _unlink(self.directory / old)
        self.trim()

    def close(self) -> None:
        """:meth:`flush`, then close the files this cache holds open."""
        self.flush()
        self._files.close(None)
        self._index = None

    def entries(self) -> Iterator[tuple[str, bytes]]:
        """Every entry readable now, as its key and bytes (for tests and tools: reads
        and checks each one)."""
        for digest in [*self._published(), *self._files.pending]:
            raw = self._read(digest)
            key = _entry_key(raw) if raw is not None else None
            if raw is not None and key is not None and _digest(key) == digest:
                yield key, raw

    def trim(self) -> None:
        """Remove the least recently used packs until the cache is within its bound, and
        temporary files a process left an hour ago or more.

        The bound is the whole cache directory's: the packs of other formats
        (``v7`` beside ``v8``: an abiscan of another version, or this one before an
        upgrade, which no scan of this version reads) count too, and being older
        than this version's, go first."""
        import time

        packs: list[tuple[float, int, Path]] = []
        stale = time.time() - 3600
        directories = self._format_directories()
        for directory in directories:
            try:
                with os.scandir(directory) as found:
                    for item in found:
                        st = item.stat()
                        if item.name.endswith(_PACK):
                            packs.append((st.st_mtime, st.st_size, Path(item.path)))
                        elif item.name.startswith(".tmp-") and st.st_mtime < stale:
                            _unlink(Path(item.path))
            except OSError:
                if directory == self.directory:
                    return
        total = sum(size for _, size, _ in packs) + self._files.size
        for _, size, path in sorted(packs):
            if total <= self.max_bytes:
                break
            _unlink(path)
            if path.parent == self.directory:
                self._files.forget(path.name)
            total -= size
        for directory in directories[1:]:
            with contextlib.suppress(OSError):
                directory.rmdir()  # only once empty: what another format left

    def _format_directories(self) -> list[Path]:
        """This format's directory, then those of other formats beside it (``v`` and a
        number; nothing else in the cache directory is touched)."""
        others: list[Path] = []
        with contextlib.suppress(OSError), os.scandir(self.directory.parent) as found:
            others = [
                Path(item.path) for item in found
                if _FORMAT_DIRECTORY.fullmatch(item.name) and item.name != self.directory.name
                and item.is_dir(follow_symlinks=False)
            ]
        return [self.directory, *sorted(others)]

    # -- reading packs ---------------------------------------------------------

    def _published(self) -> dict[bytes, tuple[str, int, int]]:
        if self._index is None:
            index: dict[bytes, tuple[str, int, int]] = {}
            for name in sorted(self._packs()):  # named by time: the newest last, and wins
                try:
                    entries = self._files.index_of(self.directory, name)
                except OSError:
                    continue  # unreadable now (removed by another scan, no descriptor left)
                if entries is None:
                    _unlink(self.directory / name)  # published whole, so damaged since
                    continue
                index.update((d, (name, off, n)) for d, off, n in entries)
            self._index = index
        return self._index

    def _packs(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.directory) if n.endswith(_PACK)]
        except OSError:
            return []

    def _read(self, digest: bytes) -> bytes | None:
        files = self._files
        try:
            pending = files.pending.get(digest)
            if pending is not None:
                return files.read_pending(*pending)
            where = self._published().get(digest)
            return files.read(self.directory, *where) if where is not None else None
        except OSError:
            return None

    def _forget(self, digest: bytes) -> None:
        self._files.pending.pop(digest, None)
        if self._index is not None:
            self._index.pop(digest, None)

    def _merge_into_pending(self, packs: list[str]) -> list[str]:
        """Copy the live entries of the smallest packs into the pending one (which is
        published as the newest, so it wins where they did); the packs merged."""
        sizes: list[tuple[int, str]] = []
        for name in packs:
            with contextlib.suppress(OSError):
                sizes.append((os.stat(self.directory / name).st_size, name))
        merged = {name for _, name in sorted(sizes)[: len(sizes) - _MAX_PACKS // 2]}
        try:
            for digest, (name, off, n) in list(self._published().items()):
                if name in merged and digest not in self._files.pending:
                    self._files.append(
                        self.directory, digest, self._files.read(self.directory, name, off, n)
                    )
        except OSError:
            return []  # published without them: they stay
        return sorted(merged)


_PACK = ".pack"
_FORMAT_DIRECTORY = re.compile(r"v[0-9]{1,6}")
# A pack: this line, entries one after another (each as pack_entry made it), the
# index (marshal of (digest, offset, length) triples), then its CRC-32 and length
# and _INDEX_END.
_PACK_MAGIC = b"abiscan-pack %d\n" % FORMAT_VERSION
_FOOTER = struct.Struct("<II")
_INDEX_END = b"abiscan-index\n"
# More packs than this (a scan with one source changed writes a small one), and the
# smallest are merged into the next one published: each scan reads every index.
_MAX_PACKS = 64


def _digest(key: str) -> bytes:
    import hashlib  # start-up: a scan without a cache never hashes a key

    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()[:16]


def _entry_key(raw: bytes) -> str | None:
    """The key an entry was stored under; None when it is corrupt."""
    framed = _unframe(raw)
    return framed[0] if framed is not None else None


class _Files:
    """A cache's open files: the pending pack it writes and the packs it reads."""

    def __init__(self) -> None:
        self.fd = -1  # the pending pack's, open for writing
        self.tmp: Path | None = None
        self.size = 0
        self.pending: dict[bytes, tuple[int, int]] = {}  # digest -> (offset, length)
        self.readers: dict[str, int] = {}  # a published pack's name -> its fd
        self.used: set[str] = set()  # the packs whose time of use was set

    def append(self, directory: Path, digest: bytes, data: bytes) -> None:
        if self.fd < 0:
            self.tmp, self.fd = _temporary(directory)
            self.size = 0
            self._write(_PACK_MAGIC)
        offset = self.size
        self._write(data)
        self.pending[digest] = (offset, len(data))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.size += len(data)

    def read_pending(self, offset: int, length: int) -> bytes:
        return _pread(self.fd, offset, length)

    def publish(self, directory: Path) -> tuple[str, dict[bytes, tuple[int, int]]]:
        """Write the index, close and rename the pending pack into place; its name and
        its entries (digest -> offset and length)."""
        import time

        index = marshal.dumps([(d, off, n) for d, (off, n) in self.pending.items()])
        self._write(index + _FOOTER.pack(zlib.crc32(index), len(index)) + _INDEX_END)
        os.close(self.fd)
        self.fd = -1
        name = f"{time.time_ns():016x}-{os.getpid()}-{next(_TEMPORARIES)}{_PACK}"
        assert self.tmp is not None
        try:
            os.replace(self.tmp, directory / name)
        except OSError:
            _unlink(self.tmp)
            raise
        self.tmp = None
        entries, self.pending, self.size = self.pending, {}, 0
        return name, entries

    def drop(self) -> None:
        """Forget the pending pack (its entries are not cached)."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        if self.tmp is not None:
            _unlink(self.tmp)
        self.fd, self.tmp, self.size = -1, None, 0
        self.pending.clear()

    def index_of(self, directory: Path, name: str) -> list[tuple[bytes, int, int]] | None:
        """A published pack's index; None when it is not a whole pack of this format
        (OSError when it cannot be read: that says nothing of its bytes)."""
        fd = self._reader(directory, name)
        try:
            size = os.fstat(fd).st_size
            tail = len(_INDEX_END) + _FOOTER.size
            end = _pread(fd, size - tail, tail) if size >= tail + len(_PACK_MAGIC) else b""
            if not end.endswith(_INDEX_END) or _pread(fd, 0, len(_PACK_MAGIC)) != _PACK_MAGIC:
                return None
            crc, length = _FOOTER.unpack_from(end)
            start = size - tail - length
            index = _pread(fd, start, length) if start >= len(_PACK_MAGIC) else b""
            if len(index) != length or zlib.crc32(index) != crc:
                return None
            entries = _marshal_loads(memoryview(index))
        except (OSError, EOFError, ValueError, TypeError):
            return None
        ok = type(entries) is list and all(
            type(e) is tuple
            and len(e) == 3
            and type(e[0]) is bytes
            and type(e[1]) is int
            and type(e[2]) is int
            and 0 < e[1] <= e[1] + e[2] <= start
            for e in entries
        )
        return entries if ok else None

    def read(self, directory: Path, name: str, offset: int, length: int) -> bytes:
        fd = self._reader(directory, name)
        if name not in self.used:
            self.used.add(name)
            # The least recently *used* pack goes first when trimming.
            with contextlib.suppress(OSError):
                os.utime(directory / name)
        return _pread(fd, offset, length)

    def _reader(self, directory: Path, name: str) -> int:
        fd = self.readers.get(name)
        if fd is None:
            fd = self.readers[name] = os.open(
                directory / name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
            )
        return fd

    def forget(self, name: str) -> None:
        fd = self.readers.pop(name, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self, directory: Path | None) -> None:
        """Close every file; the pending pack published in ``directory`` (else dropped)."""
        if directory is not None and self.pending and self.fd >= 0:
            with contextlib.suppress(OSError):
                self.publish(directory)
        self.drop()
        for name in list(self.readers):
            self.forget(name)


def _marshal_loads(data: memoryview) -> Any:
    """A pack's index (a list of triples), loaded without code objects where the
    interpreter can refuse them."""
    if sys.version_info >= (3, 13):
        return marshal.loads(data, allow_code=False)
    return marshal.loads(data)


def _pread(fd: int, offset: int, length: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise OSError("a pack shorter than its index says")
    return data


_TEMPORARIES = itertools.count()


def _temporary(directory: Path) -> tuple[Path, int]:
    """A new file in ``directory`` (made if absent), open for writing, named for this
    process and thread: ``tempfile.mkstemp`` draws random names in Python, and a
    ``mkdir`` before each write cost a cold scan about 0.1 s in system calls."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for attempt in range(100):
        tmp = directory / f".tmp-{os.getpid()}-{threading.get_ident()}-{next(_TEMPORARIES)}"
        try:
            return tmp, os.open(tmp, flags, 0o600)
        except FileNotFoundError:
            if attempt:
                raise
            directory.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # left by a process that had this id before
            continue
    raise FileExistsError(directory)


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


# -- the entry format ------------------------------------------------------------
#
# An entry is the magic line, a CRC-32 of the rest, the key (its length, then its
# UTF-8), then a pickle (protocol 5) of the value, read back by an unpickler that
# builds nothing but plain data (_PlainUnpickler): containers and scalars,
# abiscan's records (dataclasses) and enums, and the syntax-tree nodes of
# :mod:`ast`. Any other global a pickle names (a function, a class of another
# module, ``os.system``) makes the entry corrupt, so loading one runs no code but
# those classes' constructors, which is what the plain codec of format 7 ran too
# (docs/decisions.md, *Session 14*).
# Pickle is written and read in C: a worker writes the same bytes it sends the
# main process, and the real layer's programs encode and decode in about half the
# CPU the plain codec took (docs/benchmarks.md, *Session 14*).
#
# A ``def`` kept as its source text (keep_def_sources) is written as that text
# and parsed on first use (_DeferredDef); any other ``def``, as ``ast`` pickles it.

_PROTOCOL = 5
_KEY_LENGTH = struct.Struct("<I")


def pack_entry(key: str, value: Any) -> bytes:
    """The cache entry of ``value`` under ``key``; TypeError for a value that does
    not pickle."""
    return entry_of(key, dumps_value(value))


def entry_of(key: str, body: bytes) -> bytes:
    """The cache entry under ``key`` whose value is the pickle ``body`` that
    :func:`dumps_value` made: a worker stores the bytes it sends."""
    name = key.encode("utf-8", "surrogateescape")
    rest = _KEY_LENGTH.pack(len(name)) + name + body
    return _MAGIC + struct.pack("<I", zlib.crc32(rest)) + rest


def dumps_value(value: Any) -> bytes:
    """``value`` pickled as the cache writes it (:func:`loads_value` reads it back);
    TypeError for a value that does not pickle."""
    out = io.BytesIO()
    pickler = pickle.Pickler(out, _PROTOCOL)
    pickler.dispatch_table = _DISPATCH
    try:
        pickler.dump(value)
    except (pickle.PicklingError, AttributeError) as exc:
        raise TypeError(f"not plain data: {exc}") from None
    return out.getvalue()


def loads_value(body: bytes | memoryview) -> Any:
    """The value :func:`dumps_value` pickled; CacheFormatError for bytes that are not
    such a pickle of plain data."""
    try:
        # Decoding allocates tens of thousands of objects, none of them garbage:
        # collections they triggered walked the scan's whole heap for nothing.
        with collector_paused():
            return _PlainUnpickler(io.BytesIO(body)).load()
    except CacheFormatError:
        raise
    except Exception as exc:  # whatever forged bytes make the unpickler raise
        raise CacheFormatError(f"bad entry: {type(exc).__name__}: {exc}") from None


def unpack_entry(raw: bytes, key: str) -> Any:
    """The value an entry made by :func:`pack_entry` holds; CacheFormatError when it is
    corrupt, of another format or of another key."""
    framed = _unframe(raw)
    if framed is None:
        raise CacheFormatError("not a cache entry of this format, or a damaged one")
    if framed[0] != key:
        raise CacheFormatError("entry of another key")
    return loads_value(framed[1])


def _unframe(raw: bytes) -> tuple[str, memoryview] | None:
    """(key, body) of an entry whose checksum holds; None for anything else."""
    head = len(_MAGIC) + 4
    if not raw.startswith(_MAGIC) or len(raw) < head + _KEY_LENGTH.size:
        return None
    rest = memoryview(raw)[head:]
    if zlib.crc32(rest) != struct.unpack_from("<I", raw, len(_MAGIC))[0]:
        return None
    (length,) = _KEY_LENGTH.unpack_from(rest)
    start = _KEY_LENGTH.size
    if start + length > len(rest):
        return None
    try:
        key = bytes(rest[start : start + length]).decode("utf-8", "surrogateescape")
    except UnicodeDecodeError:
        return None
    return key, rest[start + length :]


# What pickle names for the constants ``...`` and ``2j``: the one value, and a
# constructor that only parses numbers.
_PLAIN_BUILTINS: dict[str, Any] = {"Ellipsis": Ellipsis, "complex": complex}


class _PlainUnpickler(pickle.Unpickler):
    """An unpickler that finds only the classes of plain data (:func:`_plain_global`)."""

    def find_class(self, module: str, name: str) -> Any:
        return _plain_global(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise CacheFormatError("a persistent id")


@functools.lru_cache(maxsize=512)
def _plain_global(module: str, name: str) -> Any:
    """The global a pickle of plain data may name: a syntax-node class of
    :mod:`ast`, one of abiscan's enums or dataclasses, what a kept ``def`` is rebuilt
    by, or ``...`` and ``complex``; CacheFormatError for any other."""
    if module in ("ast", "_ast"):
        node = _ast_class(name)
        if node is None:
            raise CacheFormatError(f"not a syntax node: {name!r}")
        return node
    if module == __name__ and name == "_kept_def":
        return _kept_def
    if module == "builtins" and name in _PLAIN_BUILTINS:
        return _PLAIN_BUILTINS[name]
    cls: Any = _class_named(f"{module}:{name}")
    if not (issubclass(cls, enum.Enum) or dataclasses.is_dataclass(cls)):
        raise CacheFormatError(f"not a record of abiscan: {module}:{name}")
    return cls


class _Unparsed:
    """A field ``FunctionDef`` answers None for at class level (``returns``,
    ``type_comment``, the end position): read on a deferred ``def`` before its
    text is parsed, it parses it instead of answering that default."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, node: ast.AST | None, owner: type | None = None) -> Any:
        if node is None:  # the class's own default, as ast.dump asks for it
            return None
        _parse_kept(node)
        return node.__dict__.get(self.name)


class _DeferredDef(ast.FunctionDef):
    """A ``def`` kept as its source text (keep_def_sources), parsed on first use.

    The evaluator keeps the ``def`` of every small module-level function, in
    case the module body calls it; most are never called, and their syntax
    trees were three quarters of the nodes a warm scan of the real layer of
    docs/benchmarks.md rebuilt. Text that is not one ``def`` raises
    CacheFormatError here, at first use.
    """

    returns = _Unparsed()
    type_comment = _Unparsed()
    end_lineno = _Unparsed()
    end_col_offset = _Unparsed()

    def __getattr__(self, name: str) -> Any:
        # Called only for an attribute not set: before first use, every field.
        if name.startswith("__"):  # copy and pickle look for __deepcopy__ and others
            raise AttributeError(name)
        if "body" in self.__dict__:  # parsed already: the attribute is not a field
            raise AttributeError(name)
        _parse_kept(self)
        return getattr(self, name)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (or deep-copied) as the plain ``def`` it stands for: this class
        # is named FunctionDef, a name its module does not have.
        fields = {
            n: getattr(self, n) for n in (*self._fields, *self._attributes) if hasattr(self, n)
        }
        return (_def_of_fields, (fields,))


def _parse_kept(node: ast.AST) -> None:
    """Parse a deferred ``def``'s text into its fields, once."""
    if "body" not in node.__dict__:
        node.__dict__.update(_parsed_def(*node.__dict__[_KEPT]).__dict__)


def _def_of_fields(fields: dict[str, Any]) -> ast.FunctionDef:
    """A ``def`` made of its fields without calling its constructor, which warns from
    CPython 3.13 on when called without them (``ast``'s own pickling does not). Only
    ``pickle`` and ``copy`` outside the cache call it: the cache writes a kept ``def``
    as its text (_reduce_kept_def), and its unpickler does not admit this."""
    node = ast.FunctionDef.__new__(ast.FunctionDef)
    node.__dict__.update(fields)
    return node


def _kept_def(kept: tuple[str, int]) -> _DeferredDef:
    """A ``def`` kept as its source text (lines, first line's number), parsed on first use."""
    if (
        type(kept) is not tuple
        or len(kept) != 2
        or type(kept[0]) is not str
        or type(kept[1]) is not int
    ):
        raise CacheFormatError("a kept def that is not (text, line)")
    node = _DeferredDef.__new__(_DeferredDef)
    node.__dict__[_KEPT] = kept
    return node


def _reduce_kept_def(node: _DeferredDef) -> tuple[Any, ...]:
    # As its text even once parsed: smaller, and parsed again only where it is used.
    # Every _DeferredDef carries it (keep_def_sources and _kept_def set it).
    return (_kept_def, (node.__dict__[_KEPT],))


_DISPATCH = {**copyreg.dispatch_table, _DeferredDef: _reduce_kept_def}


def keep_def_sources(defs: Iterable[ast.FunctionDef], source: bytes) -> None:
    """Make each of ``defs``, nodes ``ast.parse`` made of ``source``, a ``def`` kept as
    its source text: cached so, and parsed again on first use (its nodes dropped
    until then, in this process too).

    The kept ``def`` of the evaluator's small functions held three quarters of a
    program's nodes, each written field by field (positions too) and read back
    so. Its text is much smaller, and re-parsing the same lines at the same
    line number makes equal nodes in every field and position (columns are
    UTF-8 bytes of the line, so whole lines are kept). A ``def`` whose lines
    cannot be taken exactly (another encoding than UTF-8, a decorator written
    oddly, something after its end on its last line) keeps its nodes.
    """
    lines = _source_lines(source)
    if lines is None:
        return
    for node in defs:
        kept = _def_segment(node, lines)
        if kept is not None and type(node) is ast.FunctionDef:
            # Most are never called: a scan that parses its modules itself (--jobs 1)
            # held all their nodes, some hundred thousand for the real layer.
            node.__dict__.clear()
            node.__class__ = _DeferredDef
            node.__dict__[_KEPT] = kept


# Where a ``def`` carries its source text: (its lines, the first one's number).
_KEPT = "abiscan_source"
_BOM = b"\xef\xbb\xbf"
_COOKIE = re.compile(rb"[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")
_INDENT = re.compile(rb"[ \t]*")
_DECORATOR = re.compile(rb"[ \t]*@[ \t]*")
_TAIL = re.compile(rb"[ \t\f]*(?:;[ \t\f]*)?(?:#.*)?")


def _source_lines(source: bytes) -> list[str] | None:
    """``source``'s lines as the parser numbers them; None unless UTF-8."""
    if source.startswith(_BOM):
        source = source[len(_BOM) :]
    for line in source.split(b"\n", 2)[:2]:
        cookie = _COOKIE.match(line)
        if cookie is not None and cookie.group(1).lower().replace(b"_", b"-") not in (
            b"utf-8",
            b"utf8",
        ):
            return None
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\r" in text:  # the parser ends a line at \r\n, \r or \n, and at nothing else
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


def _def_segment(node: ast.FunctionDef, lines: list[str]) -> tuple[str, int] | None:
    """The whole lines of ``node`` (decorators too) and the first one's number, when
    parsing them alone makes ``node`` again; else None."""
    first, end = node.lineno, node.end_lineno
    head = _INDENT
    col = node.col_offset
    if node.decorator_list:
        top = node.decorator_list[0]
        first, col, head = top.lineno, top.col_offset, _DECORATOR
    if end is None or node.end_col_offset is None or not 1 <= first <= end <= len(lines):
        return None
    start = lines[first - 1].encode("utf-8")
    indented = start[:1] in (b" ", b"\t")
    if head.fullmatch(start, 0, col) is None or (indented and first < 2):
        return None
    if _TAIL.fullmatch(lines[end - 1].encode("utf-8"), node.end_col_offset) is None:
        return None
    return "\n".join(lines[first - 1 : end]) + "\n", first


def _parsed_def(text: str, first: int) -> ast.FunctionDef:
    """The ``def`` of :func:`keep_def_sources`, parsed again at its line; its nodes
    equal the original's. CacheFormatError for a text that is not one ``def``."""
    indented = text[:1] in (" ", "\t")
    if first < 1 + indented:
        raise CacheFormatError("a def's source out of place")
    # Indented lines parse inside an ``if 1:`` on the line before; blank lines
    # before put every node at its line (cheaper than ast.increment_lineno's walk).
    wrapped = "\n" * (first - 1 - indented) + ("if 1:\n" if indented else "") + text
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # told once, when the module was parsed
            body = ast.parse(wrapped).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise CacheFormatError("a def's source that does not parse") from None
    if indented:
        wrapper = body[0] if len(body) == 1 else None
        body = wrapper.body if isinstance(wrapper, ast.If) else []
    node = body[0] if len(body) == 1 else None
    if type(node) is not ast.FunctionDef:
        raise CacheFormatError("a def's source that is not one def")
    node.__dict__[_KEPT] = (text, first)
    return node


def _def_source(node: ast.AST) -> tuple[str, int] | None:
    kept: tuple[str, int] | None = node.__dict__.get(_KEPT)
    return kept


# ``ast.dump``, ``ast.unparse`` and visitors name a node by its class's name.
_DeferredDef.__name__ = _DeferredDef.__qualname__ = "FunctionDef"


@functools.lru_cache(maxsize=256)
def _ast_class(name: str) -> type[ast.AST] | None:
    cls = getattr(ast, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, ast.AST) else None


def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


@functools.lru_cache(maxsize=512)
def _class_named(name: str) -> type:
    if ":" not in name:
        raise CacheFormatError("bad class name")
    module, _, qualname = name.partition(":")
    if module != "abiscan" and not module.startswith("abiscan."):
        raise CacheFormatError(f"class outside abiscan: {name}")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise CacheFormatError(f"no such class: {name}") from None
    if not isinstance(obj, type):
        raise CacheFormatError(f"not a class: {name}")
    return obj
