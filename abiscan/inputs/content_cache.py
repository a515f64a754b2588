"""The content cache: facts about one member, kept on disk between scans.

An entry is keyed by what identifies a member's bytes without reading them
(CRC-32, size and name from the zip directory; size, mtime and inode for a
file in a directory), plus a fingerprint of the code that computed the facts
(abiscan's version, the running Python's grammar and the code's own bytes).

Entries are plain data, never pickles: a cache directory may be shared, and
reading one back must not run anything. The format is a version line, a
table of lengths, a JSON document and the raw byte strings it refers to, with
a CRC-32 over all of it. Writes go to a temporary file renamed into place (``os.replace``), so
concurrent scans never see half an entry. The directory is bounded in size:
past the bound, the least recently used entries are removed. A corrupt entry
is ignored (and rewritten by the scan that computes it again); a cache
directory that is absent, read-only or full never fails a scan.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import enum
import functools
import hashlib
import importlib
import json
import os
import struct
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from abiscan.errors import CacheFormatError as CacheFormatError  # re-exported

__all__ = [
    "DEFAULT_MAX_BYTES",
    "CacheFormatError",
    "ContentCache",
    "decode_plain",
    "default_cache_dir",
    "encode_plain",
]

# Bump when the layout of an entry changes.
FORMAT_VERSION = 4  # 2: syntax-tree nodes; 3: ``...`` and complex constants; 4: blob table first
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
    """Plain facts on disk, by key. Every failure to read or write is a miss."""

    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = Path(directory) / f"v{FORMAT_VERSION}"
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._written = 0
        self._writable = True

    def entry_path(self, key: str) -> Path:
        """Where the entry for ``key`` lives."""
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
        return self.directory / digest[:2] / digest[2:]

    def get(self, key: str) -> Any:
        """The value stored under ``key``; None when absent, unreadable or corrupt."""
        path = self.entry_path(key)
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
            value = _unpack(raw, key)
        except (OSError, CacheFormatError):
            self.misses += 1
            return None
        self.hits += 1
        with contextlib.suppress(OSError):
            os.utime(path)  # least recently *used* goes first when trimming
        return value

    def has(self, key: str) -> bool:
        """Whether an entry exists for ``key`` (without reading or checking it)."""
        return self.entry_path(key).is_file()

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (plain data, see :func:`encode_plain`); never raises for I/O."""
        if not self._writable:
            return
        try:
            data = _pack(key, value)
        except (TypeError, ValueError):
            # A value the format cannot hold is simply not cached: the scan goes on.
            return
        path = self.entry_path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            except BaseException:
                _unlink(Path(tmp))
                raise
        except OSError:
            # Read-only, absent or full: the scan goes on without a cache.
            self._writable = False
            return
        self._written += len(data)
        if self._written >= _TRIM_EVERY:
            self._written = 0
            self.trim()

    def trim(self) -> None:
        """Remove the least recently used entries until the cache is within its bound."""
        entries: list[tuple[float, int, Path]] = []
        try:
            for sub in self.directory.iterdir():
                for path in sub.iterdir():
                    st = path.stat()
                    entries.append((st.st_mtime, st.st_size, path))
        except OSError:
            return
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries, key=lambda e: (e[0], str(e[2]))):
            if total <= self.max_bytes:
                break
            _unlink(path)
            total -= size


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


# -- the entry format ------------------------------------------------------------


def _pack(key: str, value: Any) -> bytes:
    blobs: list[bytes] = []
    doc = json.dumps(
        {"key": key, "value": encode_plain(value, blobs)},
        separators=(",", ":"),
        ensure_ascii=True,
    ).encode("ascii")
    table = struct.pack(f"<QQ{len(blobs)}Q", len(doc), len(blobs), *map(len, blobs))
    body = table + doc + b"".join(blobs)
    return _MAGIC + struct.pack("<I", zlib.crc32(body)) + body


def _unpack(raw: bytes, key: str) -> Any:
    head = len(_MAGIC)
    if not raw.startswith(_MAGIC) or len(raw) < head + 20:
        raise CacheFormatError("not a cache entry of this format")
    (crc,) = struct.unpack_from("<I", raw, head)
    body = raw[head + 4 :]
    if zlib.crc32(body) != crc:
        raise CacheFormatError("checksum mismatch")
    size, count = struct.unpack_from("<QQ", body)
    at = 16 + 8 * count
    if at + size > len(body):
        raise CacheFormatError("truncated entry")
    blobs = []
    for n in struct.unpack_from(f"<{count}Q", body, 16):
        blobs.append(body[at + size : at + size + n])
        at += n
    if at + size != len(body):
        raise CacheFormatError("truncated entry")
    start = 16 + 8 * count
    # The tagged objects are built as the parser meets them, innermost first:
    # no second walk over every value in Python.
    try:
        doc = json.loads(body[start : start + size], object_hook=_Hook(blobs))
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        if isinstance(exc, CacheFormatError):
            raise
        raise CacheFormatError(f"bad entry: {exc}") from None
    if not isinstance(doc, dict) or doc.get("key") != key or "value" not in doc:
        raise CacheFormatError("entry of another key")
    return doc["value"]


class _Hook:
    """``json.loads``' object hook: a tagged object (its first key a ``$`` tag, as
    :func:`encode_plain` writes it) is decoded, from values already decoded;
    field maps and the top document are left as they are (their keys are
    identifiers)."""

    def __init__(self, blobs: list[bytes]) -> None:
        self.blobs = blobs

    def __call__(self, doc: dict[str, Any]) -> Any:
        tag = next(iter(doc), "")
        decode = _TAGS.get(tag)
        if decode is None:
            if tag[:1] == "$":
                raise CacheFormatError("unknown tag")
            return doc
        if len(doc) > 2:
            raise CacheFormatError("unexpected value")
        return decode(doc, self.blobs)


def _complex(doc: dict[str, Any], blobs: list[bytes]) -> complex:
    real, imag = _pair(doc["$c"])
    return complex(float(real), float(imag))


def _ellipsis(doc: dict[str, Any], blobs: list[bytes]) -> Any:
    if doc["$x"] != "...":
        raise CacheFormatError("unknown tag")
    return Ellipsis


_TAGS: dict[str, Callable[[dict[str, Any], list[bytes]], Any]] = {
    "$t": lambda doc, blobs: tuple(_list(doc["$t"])),
    "$o": lambda doc, blobs: _build_dataclass(doc["$o"], doc.get("f")),
    "$b": lambda doc, blobs: _blob(blobs, doc["$b"]),
    "$f": lambda doc, blobs: frozenset(_list(doc["$f"])),
    "$d": lambda doc, blobs: {k: v for k, v in map(_pair, _list(doc["$d"]))},
    "$e": lambda doc, blobs: _enum(doc["$e"], doc.get("v")),
    "$a": lambda doc, blobs: _build_ast_node(doc["$a"], doc.get("f")),
    "$x": _ellipsis,
    "$c": _complex,
}


# -- plain values <-> JSON ---------------------------------------------------------
#
# Tuples, frozensets, dicts with any keys, bytes (kept aside as raw blobs),
# enums and dataclasses of abiscan's own modules are tagged objects; lists,
# strings, numbers, booleans and None are themselves. Decoding builds only
# classes defined in abiscan's modules, from their fields, without running
# any other code.


def encode_plain(value: Any, blobs: list[bytes]) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if value is Ellipsis:  # ``...`` in a syntax tree (stubs, type hints, slices)
        return {"$x": "..."}
    if isinstance(value, complex):  # ``1j`` in a syntax tree
        return {"$c": [value.real, value.imag]}
    if isinstance(value, enum.Enum):
        return {"$e": _class_name(type(value)), "v": encode_plain(value.value, blobs)}
    if isinstance(value, (bytes, bytearray)):
        blobs.append(bytes(value))
        return {"$b": len(blobs) - 1}
    if isinstance(value, list):
        return [encode_plain(v, blobs) for v in value]
    if isinstance(value, tuple):
        return {"$t": [encode_plain(v, blobs) for v in value]}
    if isinstance(value, frozenset):
        items = [encode_plain(v, blobs) for v in value]
        return {"$f": sorted(items, key=lambda v: json.dumps(v, sort_keys=True))}
    if isinstance(value, dict):
        return {"$d": [[encode_plain(k, blobs), encode_plain(v, blobs)] for k, v in value.items()]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            f.name: encode_plain(getattr(value, f.name), blobs)
            for f in dataclasses.fields(value)
            if f.init
        }
        return {"$o": _class_name(type(value)), "f": fields}
    if isinstance(value, ast.AST):
        names = (*value._fields, *value._attributes)
        return {
            "$a": type(value).__name__,
            "f": {n: encode_plain(getattr(value, n), blobs) for n in names if hasattr(value, n)},
        }
    raise TypeError(f"not plain data: {type(value).__name__}")


def decode_plain(doc: Any, blobs: list[bytes]) -> Any:
    if doc is None or isinstance(doc, (bool, int, float, str)):
        return doc
    if isinstance(doc, list):
        return [decode_plain(v, blobs) for v in doc]
    if not isinstance(doc, dict) or len(doc) not in (1, 2):
        raise CacheFormatError("unexpected value")
    try:
        return _decode_tagged(doc, blobs)
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        if isinstance(exc, CacheFormatError):
            raise
        raise CacheFormatError(f"bad value: {exc}") from None


def _decode_tagged(doc: dict[str, Any], blobs: list[bytes]) -> Any:
    if "$t" in doc:
        return tuple([decode_plain(v, blobs) for v in _list(doc["$t"])])
    if "$o" in doc:
        return _dataclass(doc["$o"], doc.get("f"), blobs)
    if "$b" in doc:
        return _blob(blobs, doc["$b"])
    if "$f" in doc:
        return frozenset([decode_plain(v, blobs) for v in _list(doc["$f"])])
    if "$d" in doc:
        pairs = [_pair(p) for p in _list(doc["$d"])]
        return {decode_plain(k, blobs): decode_plain(v, blobs) for k, v in pairs}
    if "$e" in doc:
        return _enum(doc["$e"], decode_plain(doc.get("v"), blobs))
    if "$a" in doc:
        return _ast_node(doc["$a"], doc.get("f"), blobs)
    if doc.get("$x") == "...":
        return Ellipsis
    if "$c" in doc:
        real, imag = _pair(doc["$c"])
        return complex(float(real), float(imag))
    raise CacheFormatError("unknown tag")


def _ast_node(name: Any, fields: Any, blobs: list[bytes]) -> ast.AST:
    """A syntax-tree node (the evaluator keeps expressions to evaluate later); only
    classes of :mod:`ast` are built, from their own fields."""
    if not isinstance(fields, dict):
        raise CacheFormatError(f"bad syntax node: {name!r}")
    return _build_ast_node(name, {k: decode_plain(v, blobs) for k, v in fields.items()})


def _build_ast_node(name: Any, fields: Any) -> ast.AST:
    """The node ``name`` from its decoded fields."""
    cls = _ast_class(name) if isinstance(name, str) else None
    if cls is None or not isinstance(fields, dict):
        raise CacheFormatError(f"bad syntax node: {name!r}")
    node: ast.AST = cls(**{str(k): v for k, v in fields.items()})
    return node


@functools.lru_cache(maxsize=256)
def _ast_class(name: str) -> type[ast.AST] | None:
    cls = getattr(ast, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, ast.AST) else None


def _list(v: Any) -> list[Any]:
    if not isinstance(v, list):
        raise CacheFormatError("expected a list")
    return v


def _pair(v: Any) -> list[Any]:
    if not isinstance(v, list) or len(v) != 2:
        raise CacheFormatError("expected a pair")
    return v


def _blob(blobs: list[bytes], index: Any) -> bytes:
    if not isinstance(index, int) or not 0 <= index < len(blobs):
        raise CacheFormatError("bad blob index")
    return blobs[index]


def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _abiscan_class(name: Any) -> type:
    if not isinstance(name, str):
        raise CacheFormatError("bad class name")
    return _class_named(name)


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


def _enum(name: Any, value: Any) -> enum.Enum:
    cls = _abiscan_class(name)
    if not issubclass(cls, enum.Enum):
        raise CacheFormatError(f"not an enum: {name}")
    return cls(value)


def _dataclass(name: Any, fields: Any, blobs: list[bytes]) -> Any:
    if not isinstance(fields, dict):
        raise CacheFormatError(f"not a dataclass of these fields: {name}")
    return _build_dataclass(name, {k: decode_plain(v, blobs) for k, v in fields.items()})


def _build_dataclass(name: Any, fields: Any) -> Any:
    """An instance of abiscan's dataclass ``name`` from its decoded fields."""
    cls = _abiscan_class(name)
    if not isinstance(fields, dict) or fields.keys() != _init_fields(cls):
        raise CacheFormatError(f"not a dataclass of these fields: {name}")
    return cls(**fields)


@functools.lru_cache(maxsize=512)
def _init_fields(cls: type) -> frozenset[str]:
    if not dataclasses.is_dataclass(cls):
        return frozenset({"\0not a dataclass"})
    return frozenset(f.name for f in dataclasses.fields(cls) if f.init)
