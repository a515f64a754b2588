"""Inputs as read-only trees of entries: zips, wheels and directories.

Nothing is extracted. A zip member is read into memory once, whole, in
bounded chunks and never past the size its directory entry declares (never
through a seeking decompressor, which would inflate the member again for every
backwards seek). Inputs are regular files or directories: FIFOs, devices and
sockets are refused before anything is read from them. Every problem is
reported against the input and the member it concerns; reading goes on with
the rest. The budgets are :class:`abiscan.limits.Limits`.
"""

from __future__ import annotations

import io
import lzma
import os
import posixpath
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import BinaryIO

from abiscan.errors import SourceError as SourceError  # re-exported (its old home)
from abiscan.inputs.inflaters import inflater
from abiscan.limits import DEFAULT_LIMITS, Limits
from abiscan.records import record

__all__ = [
    "MAX_MEMBER_BYTES",
    "DirectorySource",
    "Entry",
    "InputKind",
    "InputProblem",
    "Source",
    "SourceError",
    "ZipSource",
    "normalise_member_name",
    "open_source",
]

# A member larger than this is not read (a Lambda deployment is at most 250 MB
# unzipped; anything bigger than that in one member is hostile or broken).
MAX_MEMBER_BYTES = DEFAULT_LIMITS.member_bytes
# Members are inflated this much at a time: a member that lies about its size
# costs at most one chunk more than it declares.
_CHUNK = 1024 * 1024
# A deflated member is inflated from raw reads of this size, each call making at
# most _INFLATE_STEP bytes: fewer, larger calls cost less (zlib copies the end
# of each call's output into its window), and 4 MB bounds what one call holds.
_RAW_CHUNK = 1024 * 1024
_INFLATE_STEP = 4 * 1024 * 1024


class InputKind(str, Enum):
    LAYER = "layer"
    FUNCTION = "function"
    WHEEL = "wheel"
    SITE_PACKAGES = "site-packages"


@record
class InputProblem:
    """Something wrong with an input that did not stop the scan."""

    source: str
    path: str | None
    problem: str
    # An unexpected exception inside abiscan, caught where it happened: the
    # scan went on, but this part of the report may be incomplete.
    internal: bool = False
    detail: str = ""  # the traceback of an internal error

    def __str__(self) -> str:
        where = f"{self.source}: {self.path}" if self.path else self.source
        return f"{where}: {self.problem}"

    def to_dict(self) -> dict[str, str | bool | None]:
        out: dict[str, str | bool | None] = {
            "source": self.source,
            "path": self.path,
            "problem": self.problem,
        }
        if self.internal:
            out["internal"] = True
            out["traceback"] = self.detail
        return out


@record
class Entry:
    """One file, directory or symbolic link inside an input."""

    path: str  # normalised, relative, '/'-separated; "" never appears
    kind: str  # "file", "dir" or "symlink"
    size: int
    mode: int | None  # permission bits when the input records them
    link_target: str | None = None
    raw_name: str | None = None  # the name as stored, when it had to be normalised
    unsafe: str | None = None  # why the stored name is unsafe (absolute, "..")
    crc: int | None = None  # CRC-32 from the zip directory (the content cache's key)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)


def normalise_member_name(raw: str) -> tuple[str | None, str | None]:
    """Return (normalised relative path or None, reason it is unsafe or None)."""
    if _is_normal(raw):
        return raw, None
    name = raw.replace("\\", "/")
    unsafe = None
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        unsafe = "absolute path"
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            unsafe = "'..' component leaves the tree"
            if parts:
                parts.pop()
            continue
        parts.append(part)
    if name[1:2] == ":":
        parts = parts[1:] if parts and parts[0].endswith(":") else parts
    if not parts:
        return None, unsafe or "empty name"
    return "/".join(parts), unsafe


def _is_normal(raw: str) -> bool:
    """Whether ``raw`` is its own normal form: relative, no empty, ``.`` or ``..`` part,
    no backslash, no drive (what nearly every member of a real zip is; the general
    path splits each name, and every member of an input is named once per open)."""
    wrapped = f"/{raw}/"
    return (
        "//" not in wrapped
        and "/./" not in wrapped
        and "/../" not in wrapped
        and "\\" not in raw
        and raw[1:2] != ":"
    )


class Source:
    """A read-only view of one input."""

    def __init__(self, label: str, kind: InputKind, limits: Limits = DEFAULT_LIMITS) -> None:
        self.label = label
        self.kind = kind
        self.limits = limits
        self.problems: list[InputProblem] = []

    def entries(self) -> list[Entry]:
        raise NotImplementedError

    def read(self, entry: Entry, limit: int | None = None) -> bytes:
        """The entry's bytes; over ``limit`` (default: the member budget) is an error."""
        raise NotImplementedError

    def _limit(self, limit: int | None) -> int:
        budget = self.limits.member_bytes
        return budget if limit is None else min(limit, budget)

    def _check_directories(self, entries: list[Entry]) -> None:
        """The entries-per-directory budget (the import system lists directories)."""
        per_dir: dict[str, int] = {}
        for entry in entries:
            parent = entry.path.rpartition("/")[0]  # posixpath.dirname of a normal path
            per_dir[parent] = per_dir.get(parent, 0) + 1
        crowded = sorted(d for d, n in per_dir.items() if n > self.limits.dir_entries)
        if crowded:
            raise SourceError(
                f"{self.label}: directory '{crowded[0] or '.'}' has {per_dir[crowded[0]]} "
                f"entries, over the budget of {self.limits.dir_entries} (--limits dir_entries=N)"
            )

    def close(self) -> None:
        pass

    def _problem(self, path: str | None, problem: str) -> None:
        self.problems.append(InputProblem(source=self.label, path=path, problem=problem))


class ZipSource(Source):
    """A layer zip, function zip or wheel, read through its central directory."""

    def __init__(
        self,
        path: Path,
        kind: InputKind,
        label: str | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        super().__init__(label or str(path), kind, limits)
        self.path = path
        try:
            declared = _declared_members(path)
        except OSError as exc:
            raise SourceError(f"{self.label}: cannot open: {exc.strerror or exc}") from None
        if declared is not None and declared > limits.members:
            raise SourceError(
                f"{self.label}: the zip declares {declared} members, over the budget of "
                f"{limits.members} (--limits members=N)"
            )
        try:
            self._zip = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise SourceError(f"{self.label}: not a readable zip file ({exc})") from None
        except UnicodeDecodeError:
            raise SourceError(
                f"{self.label}: a member name is flagged UTF-8 but is not valid UTF-8"
            ) from None
        except OSError as exc:
            raise SourceError(f"{self.label}: cannot open: {exc.strerror or exc}") from None
        except (ValueError, EOFError, NotImplementedError, struct.error) as exc:
            raise SourceError(f"{self.label}: damaged zip file ({exc})") from None
        if len(self._zip.infolist()) > limits.members:
            self._zip.close()
            raise SourceError(
                f"{self.label}: {len(self._zip.infolist())} members, over the budget of "
                f"{limits.members} (--limits members=N)"
            )
        self._infos: dict[str, zipfile.ZipInfo] = {}
        self._raw: BinaryIO | None = None
        self._entries = list(self._scan())
        try:
            self._check_directories(self._entries)
        except SourceError:
            self._zip.close()
            raise

    def _scan(self) -> Iterator[Entry]:
        seen: set[str] = set()
        for info in self._zip.infolist():
            path, unsafe = normalise_member_name(info.filename)
            if path is None:
                self._problem(info.filename, f"member skipped: {unsafe}")
                continue
            unix_mode = info.external_attr >> 16
            # Zips made on Windows carry no Unix mode; the Lambda service then
            # applies its defaults, so "unknown" is the honest answer.
            mode = stat.S_IMODE(unix_mode) if info.create_system == 3 and unix_mode else None
            if info.is_dir():
                kind = "dir"
            elif unix_mode and stat.S_ISLNK(unix_mode):
                kind = "symlink"
            else:
                kind = "file"
            link_target = None
            if kind == "symlink":
                try:
                    link_target = self._read_info(info, 4096).decode("utf-8", "surrogateescape")
                except SourceError as exc:
                    self._problem(path, exc.reason)
                    continue
            if path in seen and kind != "dir":
                self._problem(path, "member appears more than once; the last one wins")
            seen.add(path)
            self._infos[path] = info
            yield Entry(
                path=path,
                kind=kind,
                size=info.file_size,
                mode=mode,
                link_target=link_target,
                raw_name=info.filename if info.filename.rstrip("/") != path else None,
                unsafe=unsafe,
                crc=info.CRC,
            )

    def entries(self) -> list[Entry]:
        return self._entries

    def read(self, entry: Entry, limit: int | None = None) -> bytes:
        return self._read_info(self._infos[entry.path], self._limit(limit))

    def _read_info(self, info: zipfile.ZipInfo, limit: int) -> bytes:
        where = f"{self.label}: {info.filename}"

        def fail(reason: str) -> SourceError:
            return SourceError(f"{where}: {reason}", reason)

        if info.file_size > limit:
            raise fail(f"member of {info.file_size} bytes is over the limit of {limit} bytes")
        try:
            data = self._inflate(info)
        except (
            zipfile.BadZipFile,
            zlib.error,
            lzma.LZMAError,
            EOFError,
            struct.error,
            ValueError,
        ) as exc:  # ValueError: a local name flagged UTF-8 that is not
            raise fail(f"damaged member ({exc})") from None
        except NotImplementedError as exc:
            raise fail(f"unsupported compression ({exc})") from None
        except RuntimeError as exc:  # encrypted members
            raise fail(f"cannot read ({exc})") from None
        except OSError as exc:
            raise fail(f"cannot read ({exc.strerror or exc})") from None
        if len(data) != info.file_size:
            raise fail(f"damaged member: {len(data)} bytes inflated, {info.file_size} declared")
        return data

    def _inflate(self, info: zipfile.ZipInfo) -> bytes:
        """The member's bytes: a deflated member through one inflater over its raw
        bytes (:meth:`_inflate_deflated`); any other, and one that fails there,
        through ``zipfile``, which also names what is wrong with a damaged one."""
        if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > 0:
            data = self._inflate_deflated(info)
            if data is not None:
                return data
        return self._inflate_chunked(info)

    def _inflate_deflated(self, info: zipfile.ZipInfo) -> bytes | None:
        """A deflated member's bytes, inflated straight from the zip's raw bytes, its
        CRC-32 checked; None when anything is amiss (``zipfile`` then reads it again
        and raises its own error, so a damaged member fails the same either way).

        ``zipfile``'s reader costs a cold scan of the real layer about 10% more
        CPU than inflating does (its read buffers and shared-file bookkeeping);
        here the raw bytes are read a megabyte at a time and inflated never past
        the declared size (each call may make at most what is left, and one byte
        more is only asked for to see that the stream ends there). The inflater
        is :func:`abiscan.inputs.inflaters.inflater`'s: ISA-L's when installed.
        """
        # Opening the member makes zipfile's checks of its local header (name,
        # flags, encryption, overlapping entries), with its errors.
        with self._zip.open(info):
            pass
        raw = self._raw_file()
        raw.seek(info.header_offset)
        local = raw.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            return None
        name_len, extra_len = struct.unpack_from("<HH", local, 26)
        start = info.header_offset + 30 + name_len + extra_len
        if start + info.compress_size > os.fstat(raw.fileno()).st_size:
            # zipfile's reader may or may not fail on such a member, depending
            # on how its reads fall: it decides.
            return None
        raw.seek(start)
        codec = inflater(info.file_size)
        stream = codec.decompressobj(-15)
        out = io.BytesIO()
        crc, left, left_in, pending = 0, info.file_size, info.compress_size, b""
        try:
            while not stream.eof:
                if not pending:
                    pending = raw.read(min(left_in, _RAW_CHUNK)) if left_in > 0 else b""
                    if not pending:
                        return None  # the raw bytes end before the stream does
                    left_in -= len(pending)
                piece = stream.decompress(pending, min(left, _INFLATE_STEP) or 1)
                if len(piece) > left:
                    return None  # inflates past its declared size
                pending = stream.unconsumed_tail
                crc = codec.crc32(piece, crc)
                out.write(piece)
                left -= len(piece)
        except codec.errors:
            return None
        return out.getvalue() if left == 0 and crc == info.CRC else None

    def _raw_file(self) -> BinaryIO:
        """The zip file, opened once more for reading members' raw bytes."""
        if self._raw is None:
            self._raw = open(self.path, "rb")  # noqa: SIM115 (closed by close())
        return self._raw

    def _inflate_chunked(self, info: zipfile.ZipInfo) -> bytes:
        """The member's bytes through ``zipfile``, a chunk at a time up to its declared size.

        ``read(n)`` may inflate up to ``n`` bytes before trimming to the
        declared size, so a large ``n`` lets a member declaring 100 bytes
        allocate as much; one chunk at a time bounds that.
        """
        # BytesIO hands its buffer over without a copy: the member is held once,
        # where a list of chunks joined at the end holds it twice at the peak.
        out = io.BytesIO()
        left = info.file_size
        with self._zip.open(info) as member:
            while left > 0:
                chunk = member.read(min(_CHUNK, left))
                if not chunk:
                    break
                out.write(chunk)
                left -= len(chunk)
            # The CRC is checked when the stream ends: read to the end.
            if left == 0 and member.read(1):
                raise zipfile.BadZipFile("member inflates past its declared size")
        return out.getvalue()

    def close(self) -> None:
        self._zip.close()
        if self._raw is not None:
            self._raw.close()
            self._raw = None


class DirectorySource(Source):
    """An extracted layer, a function directory or a site-packages directory."""

    def __init__(
        self,
        path: Path,
        kind: InputKind,
        label: str | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        super().__init__(label or str(path), kind, limits)
        self.root = path
        if not path.is_dir():
            raise SourceError(f"{self.label}: not a directory")
        try:
            os.listdir(path)
        except OSError as exc:
            raise SourceError(f"{self.label}: cannot list: {exc.strerror or exc}") from None
        self._entries: list[Entry] = []
        for entry in self._walk(""):
            if len(self._entries) >= limits.members:
                raise SourceError(
                    f"{self.label}: more than {limits.members} entries, over the budget "
                    "(--limits members=N)"
                )
            self._entries.append(entry)

    def _walk(self, rel: str) -> Iterator[Entry]:
        full = self.root / rel if rel else self.root
        try:
            with os.scandir(full) as it:
                children: list[os.DirEntry[str]] = []
                for child in it:
                    if len(children) >= self.limits.dir_entries:
                        raise SourceError(
                            f"{self.label}: directory '{rel or '.'}' has more than "
                            f"{self.limits.dir_entries} entries, over the budget "
                            "(--limits dir_entries=N)"
                        )
                    children.append(child)
                children.sort(key=lambda e: e.name)
        except OSError as exc:
            self._problem(rel or ".", f"cannot list directory: {exc.strerror or exc}")
            return
        for child in children:
            name = child.name
            child_rel = f"{rel}/{name}" if rel else name
            try:
                st = child.stat(follow_symlinks=False)
            except OSError as exc:
                self._problem(child_rel, f"cannot stat: {exc.strerror or exc}")
                continue
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                try:
                    target = os.readlink(child.path)
                except OSError as exc:
                    self._problem(child_rel, f"cannot read link: {exc.strerror or exc}")
                    continue
                yield Entry(path=child_rel, kind="symlink", size=0, mode=mode, link_target=target)
            elif stat.S_ISDIR(st.st_mode):
                yield Entry(path=child_rel, kind="dir", size=0, mode=mode)
                yield from self._walk(child_rel)
            elif stat.S_ISREG(st.st_mode):
                yield Entry(path=child_rel, kind="file", size=st.st_size, mode=mode)
            else:
                self._problem(child_rel, "not a regular file, directory or link; skipped")

    def entries(self) -> list[Entry]:
        return self._entries

    def read(self, entry: Entry, limit: int | None = None) -> bytes:
        where = f"{self.label}: {entry.path}"
        limit = self._limit(limit)

        def fail(reason: str) -> SourceError:
            return SourceError(f"{where}: {reason}", reason)

        if entry.size > limit:
            raise fail(f"file of {entry.size} bytes is over the limit of {limit} bytes")
        try:
            # O_NONBLOCK: a file swapped for a FIFO since the walk must not block.
            fd = os.open(self.root / entry.path, os.O_RDONLY | os.O_NONBLOCK)
            with open(fd, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                    raise fail("no longer a regular file")
                data = fh.read(limit + 1)
        except OSError as exc:
            raise fail(f"cannot read: {exc.strerror or exc}") from None
        if len(data) > limit:
            raise fail(f"file grew past the limit of {limit} bytes")
        return data


def open_source(
    path: str | Path,
    kind: InputKind,
    label: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Source:
    """Open an input by what it is on disk: a directory, or a zip (a wheel is a zip).

    Anything else (a FIFO, a device, a socket, an empty path) is refused
    before it is opened: reading one could block forever or never end.
    """
    shown = label or str(path)
    if str(path) == "":
        raise SourceError(f"{shown}: an empty path is not an input; refused")
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise SourceError(f"{shown}: no such file or directory") from None
    except OSError as exc:
        raise SourceError(f"{shown}: cannot open: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        return DirectorySource(p, kind, shown, limits)
    if not stat.S_ISREG(mode):
        raise SourceError(f"{shown}: not a regular file or directory ({_file_type(mode)}); refused")
    if kind in (InputKind.LAYER, InputKind.SITE_PACKAGES) and p.suffix == ".whl":
        kind = InputKind.WHEEL
    return ZipSource(p, kind, shown, limits)


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO or pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "an unknown file type"


def _declared_members(path: Path) -> int | None:
    """The member count a zip's end record declares, read before anything else.

    ``zipfile`` builds one object per member while opening; a crafted
    directory of millions of entries costs memory before any budget could
    apply. None when no end record is found (zipfile then says what is wrong).
    """
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        tail_len = min(size, 22 + 65535)
        fh.seek(size - tail_len)
        tail = fh.read(tail_len)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or at + 22 > len(tail):
            return None
        count = int.from_bytes(tail[at + 10 : at + 12], "little")
        locator = at - 20
        if count == 0xFFFF and locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
            offset = int.from_bytes(tail[locator + 8 : locator + 16], "little")
            if offset + 40 <= size:
                fh.seek(offset)
                record = fh.read(40)
                if record[:4] == b"PK\x06\x06":
                    count = int.from_bytes(record[32:40], "little")
        return count
