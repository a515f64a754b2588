"""Inputs as read-only trees of entries: zips, wheels and directories.

Nothing is extracted. A zip member is read into memory once, whole, with a
size bound (never through a seeking decompressor, which would inflate the
member again for every backwards seek). Every problem is reported against the
input and the member it concerns; reading goes on with the rest.
"""

from __future__ import annotations

import os
import posixpath
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from abiscan.errors import SourceError as SourceError  # re-exported (its old home)

# A member larger than this is not read (a Lambda deployment is at most 250 MB
# unzipped; anything bigger than that in one member is hostile or broken).
MAX_MEMBER_BYTES = 256 * 1024 * 1024


class InputKind(str, Enum):
    LAYER = "layer"
    FUNCTION = "function"
    WHEEL = "wheel"
    SITE_PACKAGES = "site-packages"


@dataclass(frozen=True)
class InputProblem:
    """Something wrong with an input that did not stop the scan."""

    source: str
    path: str | None
    problem: str

    def __str__(self) -> str:
        where = f"{self.source}: {self.path}" if self.path else self.source
        return f"{where}: {self.problem}"

    def to_dict(self) -> dict[str, str | None]:
        return {"source": self.source, "path": self.path, "problem": self.problem}


@dataclass(frozen=True)
class Entry:
    """One file, directory or symbolic link inside an input."""

    path: str  # normalised, relative, '/'-separated; "" never appears
    kind: str  # "file", "dir" or "symlink"
    size: int
    mode: int | None  # permission bits when the input records them
    link_target: str | None = None
    raw_name: str | None = None  # the name as stored, when it had to be normalised
    unsafe: str | None = None  # why the stored name is unsafe (absolute, "..")

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)


def normalise_member_name(raw: str) -> tuple[str | None, str | None]:
    """Return (normalised relative path or None, reason it is unsafe or None)."""
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


class Source:
    """A read-only view of one input."""

    def __init__(self, label: str, kind: InputKind) -> None:
        self.label = label
        self.kind = kind
        self.problems: list[InputProblem] = []

    def entries(self) -> list[Entry]:
        raise NotImplementedError

    def read(self, entry: Entry, limit: int = MAX_MEMBER_BYTES) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _problem(self, path: str | None, problem: str) -> None:
        self.problems.append(InputProblem(self.label, path, problem))


class ZipSource(Source):
    """A layer zip, function zip or wheel, read through its central directory."""

    def __init__(self, path: Path, kind: InputKind, label: str | None = None) -> None:
        super().__init__(label or str(path), kind)
        self.path = path
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
        except (ValueError, EOFError, NotImplementedError) as exc:
            raise SourceError(f"{self.label}: damaged zip file ({exc})") from None
        self._infos: dict[str, zipfile.ZipInfo] = {}
        self._entries = list(self._scan())

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
                    self._problem(path, str(exc))
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
            )

    def entries(self) -> list[Entry]:
        return self._entries

    def read(self, entry: Entry, limit: int = MAX_MEMBER_BYTES) -> bytes:
        return self._read_info(self._infos[entry.path], limit)

    def _read_info(self, info: zipfile.ZipInfo, limit: int) -> bytes:
        where = f"{self.label}: {info.filename}"
        if info.file_size > limit:
            raise SourceError(f"{where}: member of {info.file_size} bytes is over the limit")
        try:
            with self._zip.open(info) as member:
                # One sequential read of the whole member; +1 catches a member
                # that inflates past the size its header claims.
                data = member.read(limit + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise SourceError(f"{where}: damaged member ({exc})") from None
        except NotImplementedError as exc:
            raise SourceError(f"{where}: unsupported compression ({exc})") from None
        except RuntimeError as exc:  # encrypted members
            raise SourceError(f"{where}: cannot read ({exc})") from None
        except OSError as exc:
            raise SourceError(f"{where}: cannot read ({exc.strerror or exc})") from None
        if len(data) > limit:
            raise SourceError(f"{where}: member inflates past the limit of {limit} bytes")
        return data

    def close(self) -> None:
        self._zip.close()


class DirectorySource(Source):
    """An extracted layer, a function directory or a site-packages directory."""

    def __init__(self, path: Path, kind: InputKind, label: str | None = None) -> None:
        super().__init__(label or str(path), kind)
        self.root = path
        if not path.is_dir():
            raise SourceError(f"{self.label}: not a directory")
        try:
            os.listdir(path)
        except OSError as exc:
            raise SourceError(f"{self.label}: cannot list: {exc.strerror or exc}") from None
        self._entries = list(self._walk(""))

    def _walk(self, rel: str) -> Iterator[Entry]:
        full = self.root / rel if rel else self.root
        try:
            with os.scandir(full) as it:
                children = sorted(it, key=lambda e: e.name)
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
                yield Entry(child_rel, "symlink", 0, mode, link_target=target)
            elif stat.S_ISDIR(st.st_mode):
                yield Entry(child_rel, "dir", 0, mode)
                yield from self._walk(child_rel)
            elif stat.S_ISREG(st.st_mode):
                yield Entry(child_rel, "file", st.st_size, mode)
            else:
                self._problem(child_rel, "not a regular file, directory or link; skipped")

    def entries(self) -> list[Entry]:
        return self._entries

    def read(self, entry: Entry, limit: int = MAX_MEMBER_BYTES) -> bytes:
        where = f"{self.label}: {entry.path}"
        if entry.size > limit:
            raise SourceError(f"{where}: file of {entry.size} bytes is over the limit")
        try:
            with open(self.root / entry.path, "rb") as fh:
                data = fh.read(limit + 1)
        except OSError as exc:
            raise SourceError(f"{where}: cannot read: {exc.strerror or exc}") from None
        if len(data) > limit:
            raise SourceError(f"{where}: file grew past the limit of {limit} bytes")
        return data


def open_source(path: str | Path, kind: InputKind, label: str | None = None) -> Source:
    """Open an input by what it is on disk: a directory, or a zip (a wheel is a zip)."""
    p = Path(path)
    shown = label or str(path)
    if not p.exists() and not p.is_symlink():
        raise SourceError(f"{shown}: no such file or directory")
    if p.is_dir():
        return DirectorySource(p, kind, shown)
    if kind in (InputKind.LAYER, InputKind.SITE_PACKAGES) and p.suffix == ".whl":
        kind = InputKind.WHEEL
    return ZipSource(p, kind, shown)
