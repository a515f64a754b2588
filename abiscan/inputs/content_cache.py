"""The content cache: facts about one member, kept on disk between scans.

An entry is keyed by what identifies a member's bytes without reading them
(CRC-32, size and name from the zip directory; size, mtime and inode for a
file in a directory), plus a fingerprint of the code that computed the facts
(abiscan's version, the running Python's grammar and the code's own bytes).

Entries are plain data, never pickles: a cache directory may be shared, and
reading one back must not run anything. An entry is a version line, a
CRC-32, and a ``marshal`` image of plain values (below). A process writes the
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
import dataclasses
import enum
import functools
import gc
import importlib
import itertools
import marshal
import os
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

from abiscan.errors import CacheFormatError as CacheFormatError  # re-exported
from abiscan.records import record

__all__ = [
    "DEFAULT_MAX_BYTES",
    "CacheFormatError",
    "ContentCache",
    "decode_plain",
    "default_cache_dir",
    "encode_plain",
    "keep_def_sources",
    "pack_entry",
    "send_kept_defs_as_text",
    "unpack_entry",
]

# Bump when the layout of an entry changes.
FORMAT_VERSION = 7  # 2: syntax-tree nodes; 3: ``...`` and complex constants; 4: blob table first;
# 5: marshal of tagged tuples, one class table per entry; 6: a ``def`` as its source text;
# 7: entries in packs (one per process and scan) with an index, not one file each
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
                with _no_collection():
                    value = _unpack(raw, key)
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
        """Store ``value`` (plain data, see :func:`encode_plain`); never raises for I/O."""
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
        temporary files a process left an hour ago or more."""
        import time

        packs: list[tuple[float, int, str]] = []
        try:
            with os.scandir(self.directory) as found:
                for item in found:
                    st = item.stat()
                    if item.name.endswith(_PACK):
                        packs.append((st.st_mtime, st.st_size, item.name))
                    elif item.name.startswith(".tmp-") and st.st_mtime < time.time() - 3600:
                        _unlink(Path(item.path))
        except OSError:
            return
        total = sum(size for _, size, _ in packs) + self._files.size
        for _, size, name in sorted(packs):
            if total <= self.max_bytes:
                break
            _unlink(self.directory / name)
            self._files.forget(name)
            total -= size

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
    head = len(_MAGIC) + 4
    if not raw.startswith(_MAGIC) or len(raw) < head:
        return None
    if zlib.crc32(memoryview(raw)[head:]) != struct.unpack_from("<I", raw, len(_MAGIC))[0]:
        return None
    try:
        doc = _marshal_loads(memoryview(raw)[head:])
    except (EOFError, ValueError, TypeError):
        return None
    ok = type(doc) is tuple and len(doc) == 3 and type(doc[0]) is str
    return doc[0] if ok else None


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


def _pread(fd: int, offset: int, length: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise OSError("a pack shorter than its index says")
    return data


@contextlib.contextmanager
def _no_collection() -> Iterator[None]:
    """The cyclic garbage collector paused while an entry is decoded.

    Decoding allocates tens of thousands of tuples, lists and nodes, none of
    them garbage; each allocation burst triggered collections that walked the
    whole heap of the scan (which holds every binary's facts). In a warm scan
    of the real layer of docs/benchmarks.md those collections cost more CPU
    than the decoding itself.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


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
# An entry is the magic line, a CRC-32 of the rest, then one ``marshal`` image
# of ``(key, table, tree)``. ``marshal`` holds only plain values here (numbers,
# strings, bytes, tuples, lists; a code object in the image is refused), and
# loads them in C: a warm scan decodes hundreds of thousands of values, and a
# JSON document with a Python object hook cost a third of its time.
#
# The tree is the value with every container that is not a list made a tuple
# whose first item says what it is (below); a dataclass or syntax node names
# a row of ``table``, which gives its class once per entry, so each object is
# one small tuple of its fields' values, in the class's order. A ``def`` is
# rebuilt only when first used (_DeferredDef): written as its source text
# (_SOURCE, see keep_def_sources), else as its nodes wrapped in a _DEFERRED tuple.

_TUPLE, _FROZENSET, _DICT, _ENUM, _OBJECT, _NODE, _AGAIN, _DEFERRED, _SOURCE = range(9)
_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes, type(Ellipsis)})
_ROW_KINDS = ("enum", "object", "node")


def pack_entry(key: str, value: Any) -> bytes:
    """The cache entry of ``value`` under ``key``; TypeError for a value that is not
    plain data (:func:`encode_plain`)."""
    body = marshal.dumps((key, *_Encoder().encode_entry(value)), _MARSHAL_VERSION)
    return _MAGIC + struct.pack("<I", zlib.crc32(body)) + body


def unpack_entry(raw: bytes, key: str) -> Any:
    """The value an entry made by :func:`pack_entry` holds; CacheFormatError when it is
    corrupt, of another format or of another key."""
    with _no_collection():
        return _unpack(raw, key)


def _unpack(raw: bytes, key: str) -> Any:
    head = len(_MAGIC)
    if not raw.startswith(_MAGIC) or len(raw) < head + 4:
        raise CacheFormatError("not a cache entry of this format")
    (crc,) = struct.unpack_from("<I", raw, head)
    body = memoryview(raw)[head + 4 :]
    if zlib.crc32(body) != crc:
        raise CacheFormatError("checksum mismatch")
    try:
        doc = _marshal_loads(body)
    except (EOFError, ValueError, TypeError) as exc:
        raise CacheFormatError(f"bad entry: {exc}") from None
    if type(doc) is not tuple or len(doc) != 3 or doc[0] != key:
        raise CacheFormatError("entry of another key")
    return decode_plain(doc[1:])


def _marshal_loads(data: memoryview) -> Any:
    if sys.version_info >= (3, 13):
        return marshal.loads(data, allow_code=False)
    return marshal.loads(data)


_MARSHAL_VERSION = 4  # readable by every CPython abiscan runs on


def encode_plain(value: Any) -> tuple[tuple[tuple[str, str, tuple[str, ...]], ...], Any]:
    """``value`` as ``(table, tree)`` of plain values (see the format above).

    Plain data is: None, booleans, numbers, strings, bytes, ``...``, lists,
    tuples, frozensets, dicts, and enums, dataclasses and syntax-tree nodes
    of abiscan's own modules and :mod:`ast`. Anything else is a TypeError.
    """
    return _Encoder().encode_entry(value)


def decode_plain(doc: Any) -> Any:
    """The value :func:`encode_plain` encoded; a CacheFormatError when ``doc`` is
    not such an encoding. Builds only enums, dataclasses of abiscan's modules and
    classes of :mod:`ast`, from their fields, and runs no other code."""
    if type(doc) is not tuple or len(doc) != 2 or type(doc[0]) is not tuple:
        raise CacheFormatError("not an encoded value")
    try:
        return _Decoder(doc[0]).decode(doc[1])
    except RecursionError:
        raise CacheFormatError("nested too deeply") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        if isinstance(exc, CacheFormatError):
            raise
        raise CacheFormatError(f"bad value: {exc}") from None


class _Encoder:
    """Writes one entry's tree. Every value is a scalar, a container, or an object of
    a class met before: what to do with a class is learnt once (_Plan), and fields
    are read from the object's ``__dict__`` in one go where it has them all."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, tuple[str, ...]], int] = {}
        self.class_rows: dict[type, int] = {}
        # A dataclass met again (an import step's edge is also in the module's
        # edges) is written once and referred to after: decoded once, shared.
        self.seen: dict[int, int] = {}

    def encode_entry(self, value: Any) -> tuple[tuple[tuple[str, str, tuple[str, ...]], ...], Any]:
        tree = self.encode(value)
        return tuple(self.rows), tree

    def row(self, kind: str, name: str, names: tuple[str, ...]) -> int:
        return self.rows.setdefault((kind, name, names), len(self.rows))

    def class_row(self, t: type, plan: _Plan) -> int:
        row = self.class_rows.get(t)
        if row is None:
            row = self.class_rows[t] = self.row(*plan.row)
        return row

    def items(self, values: Iterable[Any]) -> list[Any]:
        encode, scalars = self.encode, _SCALARS
        return [v if type(v) in scalars else encode(v) for v in values]

    def encode(self, value: Any) -> Any:
        t = type(value)
        if t in _SCALARS:
            return value
        if t is list:
            return self.items(value)
        if t is tuple:
            return (_TUPLE, *self.items(value))
        plan = _PLANS.get(t) or _plan(t)
        if plan.kind == "node":
            return self.encode_node(value, t, plan)
        if plan.kind == "object":
            return self.encode_object(value, t, plan)
        if plan.kind == "enum":
            return (_ENUM, self.class_row(t, plan), self.encode(value.value))
        if isinstance(value, bytearray):
            return bytes(value)
        if isinstance(value, frozenset):
            return (_FROZENSET, *self.items(value))
        if isinstance(value, dict):
            return (_DICT, *self.items(x for kv in value.items() for x in kv))
        raise TypeError(f"not plain data: {t.__name__}")

    def encode_node(self, value: Any, t: type, plan: _Plan) -> Any:
        fields = value.__dict__
        if plan.is_def:
            kept = fields.get(_KEPT)
            if kept is not None:
                return (_SOURCE, *kept)
        try:
            values = [fields[n] for n in plan.names]
        except KeyError:
            # Not all set (a node the extractor made, a def still to rebuild): those set,
            # and those with a default in their class.
            names = tuple(n for n in plan.names if hasattr(value, n))
            row = self.row("node", plan.row[1], names)
            node = (_NODE, row, *self.items([getattr(value, n) for n in names]))
        else:
            node = (_NODE, self.class_row(t, plan), *self.items(values))
        return (_DEFERRED, node) if plan.is_def else node

    def encode_object(self, value: Any, t: type, plan: _Plan) -> Any:
        again = self.seen.get(id(value))
        if again is not None:
            return (_AGAIN, again)
        try:
            fields = value.__dict__
            values = [fields[n] for n in plan.names]
        except (AttributeError, KeyError):  # slots, or a field kept elsewhere
            values = [getattr(value, n) for n in plan.names]
        encoded = self.items(values)
        # Numbered after its fields, in the order the decoder finishes objects.
        self.seen[id(value)] = len(self.seen)
        return (_OBJECT, self.class_row(t, plan), *encoded)


@record
class _Plan:
    """How the encoder writes the objects of one class."""

    kind: str  # "node", "object", "enum", or "" (a container, or not plain data)
    row: tuple[str, str, tuple[str, ...]] = ("", "", ())  # its row of the class table
    names: tuple[str, ...] = ()  # the fields written, in order
    is_def: bool = False  # a ``def``: rebuilt on first use


_PLANS: dict[type, _Plan] = {}


def _plan(t: type) -> _Plan:
    """The plan for class ``t``, learnt once."""
    plan = _Plan(kind="")
    if issubclass(t, ast.AST):
        names = (*t._fields, *t._attributes)
        is_def = issubclass(t, ast.FunctionDef)
        plan = _Plan(kind="node", row=("node", _node_name(t), names), names=names, is_def=is_def)
    elif issubclass(t, enum.Enum):
        plan = _Plan(kind="enum", row=("enum", _class_name(t), ()))
    elif dataclasses.is_dataclass(t):
        names = _init_fields(t)
        plan = _Plan(kind="object", row=("object", _class_name(t), names), names=names)
    _PLANS[t] = plan
    return plan


class _Decoder:
    """Rebuilds one entry's tree; each row of its table is checked once.

    Most values are strings and numbers, left as they are: the walks below
    test a value's type before calling into :meth:`decode` for it.
    """

    def __init__(self, table: tuple[Any, ...]) -> None:
        self.rows = [_row(r) for r in table]
        self.objects: list[Any] = []

    def decode(self, v: Any) -> Any:
        t = type(v)
        if t is tuple:
            return self.tagged(v)
        if t is list:
            return self.items(v, 0)
        if t in _SCALARS:
            return v
        raise CacheFormatError(f"not plain data: {t.__name__}")

    def items(self, v: list[Any] | tuple[Any, ...], start: int) -> list[Any]:
        """``v[start:]``, decoded (a tagged tuple, the most common value that is not a
        scalar, straight to :meth:`tagged`)."""
        decode, tagged, scalars = self.decode, self.tagged, _SCALARS
        return [
            x if type(x) in scalars else tagged(x) if type(x) is tuple else decode(x)
            for x in v[start:]
        ]

    def tagged(self, v: tuple[Any, ...]) -> Any:
        code = v[0]
        if code == _NODE:
            cls, kind, names = self.rows[v[1]]
            if kind != "node" or len(v) != len(names) + 2:
                raise CacheFormatError("not a syntax node of this class")
            if not names:
                return cls  # the shared Load(), Store(), Add()...
            # Fields set straight into the node, as ast.parse leaves them (its
            # constructor's keyword handling costs more than the rest of the decoding).
            node = cls.__new__(cls)
            node.__dict__.update(zip(names, self.items(v, 2), strict=True))
            return node
        if code == _OBJECT:
            cls, kind, names = self.rows[v[1]]
            if kind != "object" or len(v) != len(names) + 2:
                raise CacheFormatError("not an object of this class")
            obj = cls(*self.items(v, 2))
            self.objects.append(obj)
            return obj
        if code == _TUPLE:
            return tuple(self.items(v, 1))
        if code == _AGAIN and len(v) == 2:
            return self.objects[v[1]]
        if code == _SOURCE and len(v) == 3 and type(v[1]) is str and type(v[2]) is int:
            return _kept_def((v[1], v[2]))
        if code == _DEFERRED and len(v) == 2:
            node = _DeferredDef.__new__(_DeferredDef)
            # Its own decoder: a syntax tree holds no objects met before.
            node.__dict__["_deferred"] = (_Decoder(()), self.rows, v[1])
            return node
        if code == _FROZENSET:
            return frozenset(self.items(v, 1))
        if code == _DICT and len(v) % 2:
            items = self.items(v, 1)
            return dict(zip(items[::2], items[1::2], strict=True))
        if code == _ENUM and len(v) == 3:
            cls, kind, _ = self.rows[v[1]]
            if kind != "enum":
                raise CacheFormatError("not an enum")
            return cls(self.decode(v[2]))
        raise CacheFormatError("unknown tag")


class _DeferredDef(ast.FunctionDef):
    """A ``def`` from the cache, or kept as its source text (keep_def_sources), its
    fields rebuilt on first use: decoded from its nodes, or parsed from its text.

    The evaluator keeps the ``def`` of every small module-level function, in
    case the module body calls it; most are never called, and their syntax
    trees were three quarters of the nodes a warm scan of the real layer of
    docs/benchmarks.md rebuilt. The entry was checked whole (its CRC-32) when
    read; a forged body that does not decode (or text that is not one ``def``)
    raises CacheFormatError here, at first use.
    """

    def __getattr__(self, name: str) -> Any:
        # Called only for an attribute not set: before first use, every field.
        if name.startswith("__"):  # copy and pickle look for __deepcopy__ and others
            raise AttributeError(name)
        pending = self.__dict__.pop("_deferred", None)
        if pending is None:
            kept = self.__dict__.get(_KEPT)
            if kept is None or "body" in self.__dict__:
                raise AttributeError(name)
            self.__dict__.update(_parsed_def(*kept).__dict__)
            return getattr(self, name)
        decoder, rows, tree = pending
        decoder.rows = rows
        try:
            whole = decoder.decode(tree)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            if isinstance(exc, CacheFormatError):
                raise
            raise CacheFormatError(f"bad value: {exc}") from None
        if type(whole) is not ast.FunctionDef:
            raise CacheFormatError("a deferred node that is not a def")
        self.__dict__.update(whole.__dict__)
        return getattr(self, name)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (or deep-copied) as the plain ``def`` it stands for: this class
        # is named FunctionDef, a name its module does not have.
        fields = {
            n: getattr(self, n) for n in (*self._fields, *self._attributes) if hasattr(self, n)
        }
        return (ast.FunctionDef, (), fields)


def _kept_def(kept: tuple[str, int]) -> _DeferredDef:
    """A ``def`` kept as its source text (lines, first line's number), parsed on first use."""
    node = _DeferredDef.__new__(_DeferredDef)
    node.__dict__[_KEPT] = kept
    return node


def _reduce_kept_def(node: _DeferredDef) -> tuple[Any, ...]:
    kept = node.__dict__.get(_KEPT)
    if kept is not None and "body" not in node.__dict__:
        return (_kept_def, (kept,))
    return node.__reduce__()


def send_kept_defs_as_text(pickler: Any) -> None:
    """Have ``pickler`` (multiprocessing's ``ForkingPickler``) send a ``def`` still kept
    as its text (:func:`keep_def_sources`) as that text, not as the plain ``def`` its
    ``__reduce__`` rebuilds: a worker sends programs so, and never parses them again."""
    pickler.register(_DeferredDef, _reduce_kept_def)


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


def _node_name(cls: type[ast.AST]) -> str:
    return "FunctionDef" if cls is _DeferredDef else cls.__name__


# Cached: every program of a scan names the same few dozen classes, each row checked
# once per entry before (13,000 checks for the real layer's 538 programs; decoding
# them went from 0.20 to 0.185 s of CPU, best of ten). A row that is not hashable
# (a list inside) raises TypeError, which decode_plain turns into a bad entry.
@functools.lru_cache(maxsize=1024)
def _row(row: Any) -> tuple[Any, str, tuple[str, ...]]:
    """A table row ``(kind, class name, field names)`` as (class, kind, names), the
    class checked: one of abiscan's enums or dataclasses (with exactly these
    init fields), or a syntax-node class of :mod:`ast` (with these fields)."""
    if (
        type(row) is not tuple
        or len(row) != 3
        or row[0] not in _ROW_KINDS
        or type(row[1]) is not str
        or type(row[2]) is not tuple
        or not all(type(n) is str for n in row[2])
    ):
        raise CacheFormatError("bad class row")
    kind, name, names = row
    if kind == "node":
        node = _ast_class(name)
        if node is None or not set(names) <= {*node._fields, *node._attributes}:
            raise CacheFormatError(f"bad syntax node: {name!r}")
        # A node without fields (Load, Store, Add...) is one shared instance, as ast.parse makes it.
        return (node() if not names else node), kind, names
    cls: Any = _class_named(name)
    if kind == "enum" and not issubclass(cls, enum.Enum):
        raise CacheFormatError(f"not an enum: {name}")
    if kind == "object" and _init_fields(cls) != names:
        raise CacheFormatError(f"not a dataclass of these fields: {name}")
    return cls, kind, names


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


@functools.lru_cache(maxsize=512)
def _init_fields(cls: Any) -> tuple[str, ...]:
    if not dataclasses.is_dataclass(cls):
        return ("\0not a dataclass",)
    return tuple(f.name for f in dataclasses.fields(cls) if f.init)
