"""Installed distributions: ``*.dist-info`` directories read from the stack.

Everything is read with ``packaging`` (metadata, names, versions) and the
standard library's ``csv`` (RECORD). Nothing is imported from the scanned
distributions. A damaged dist-info is reported as a problem on the
distribution, not raised.
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
from collections.abc import Iterable
from dataclasses import field
from email.parser import HeaderParser

from packaging.metadata import parse_email
from packaging.utils import canonicalize_name

from abiscan.inputs.sources import SourceError
from abiscan.inputs.stack import Stack
from abiscan.limits import DEFAULT_LIMITS
from abiscan.records import record

__all__ = [
    "MAX_METADATA_BYTES",
    "Distribution",
    "RecordEntry",
    "find_distributions",
    "read_distribution",
]

_DIST_INFO = re.compile(r"^(?P<name>[^-/]+)-(?P<version>[^-/]+)\.dist-info$")
MAX_METADATA_BYTES = DEFAULT_LIMITS.metadata_bytes


@record
class RecordEntry:
    """One line of RECORD: a path relative to the directory holding the dist-info."""

    path: str
    hash: str | None  # "sha256=<urlsafe b64, no padding>"
    size: int | None


@record
class Distribution:
    """What one ``.dist-info`` directory says about an installed distribution."""

    name: str
    version: str
    dist_info: str  # target path of the .dist-info directory
    site: str  # the directory that holds it
    source: str | None  # the input its METADATA came from
    source_index: int = -1  # that input's position in the order given
    wheel_tags: tuple[str, ...] = ()
    root_is_purelib: bool | None = None
    requires_python: str | None = None
    requires_dist: tuple[str, ...] = ()
    record: tuple[RecordEntry, ...] = ()
    top_level: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default=())

    @property
    def canonical_name(self) -> str:
        return canonicalize_name(self.name)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    def files(self) -> list[str]:
        """Target paths of the files RECORD lists."""
        return [posixpath.normpath(posixpath.join(self.site, e.path)) for e in self.record]


def find_distributions(stack: Stack) -> list[Distribution]:
    """Every ``*.dist-info`` directory in the stack, in path order."""
    out = []
    for path in sorted(_dist_info_dirs(stack)):
        out.append(read_distribution(stack, path))
    return out


def _dist_info_dirs(stack: Stack) -> Iterable[str]:
    seen = set()
    for sf in stack.walk_files():
        parent = posixpath.dirname(sf.target_path)
        if parent.endswith(".dist-info") and parent not in seen:
            seen.add(parent)
            yield parent


def _read_text(stack: Stack, path: str, problems: list[str]) -> str | None:
    sf = stack.file(path)
    if sf is None or sf.kind != "file":
        return None
    name = posixpath.basename(path)
    # The size the input declares is checked before anything is inflated
    # (a member cannot inflate past it: see sources).
    limit = min(MAX_METADATA_BYTES, sf.source.limits.metadata_bytes)
    if sf.entry.size > limit:
        problems.append(
            f"{name} is {sf.entry.size} bytes, over the budget of {limit}; not read "
            "(--limits metadata_bytes=N)"
        )
        return None
    try:
        data = stack.read(path)
    except SourceError as exc:
        problems.append(f"{name} cannot be read: {exc.reason}")
        return None
    if len(data) > limit:
        problems.append(f"{name} is over {limit} bytes; ignored")
        return None
    text = data.decode("utf-8", "replace")
    if "\ufffd" in text:
        problems.append(f"{name} is not valid UTF-8; undecodable bytes replaced")
    return text


def read_distribution(stack: Stack, dist_info: str) -> Distribution:
    problems: list[str] = []
    site = posixpath.dirname(dist_info)
    dirname = posixpath.basename(dist_info)
    m = _DIST_INFO.match(dirname)
    name = m.group("name") if m else dirname.removesuffix(".dist-info")
    version = m.group("version") if m else ""
    meta_path = posixpath.join(dist_info, "METADATA")
    source, index = None, -1
    sf = stack.file(meta_path)
    if sf is not None:
        source, index = sf.origin.source, sf.origin.index
    requires_python = None
    requires_dist: tuple[str, ...] = ()
    text = _read_text(stack, meta_path, problems)
    if text is None:
        problems.append("no readable METADATA")
    else:
        raw, unparsed = parse_email(text)
        if unparsed:
            problems.append("METADATA fields that do not parse: " + ", ".join(sorted(unparsed)[:5]))
        name = str(raw.get("name") or name)
        version = str(raw.get("version") or version)
        rp = raw.get("requires_python")
        requires_python = str(rp) if rp else None
        requires_dist = tuple(str(r) for r in raw.get("requires_dist") or ())
    wheel_tags: tuple[str, ...] = ()
    purelib = None
    wheel_text = _read_text(stack, posixpath.join(dist_info, "WHEEL"), problems)
    if wheel_text is not None:
        headers = HeaderParser().parsestr(wheel_text)
        wheel_tags = tuple(t.strip() for t in headers.get_all("Tag") or () if t.strip())
        value = headers.get("Root-Is-Purelib")
        purelib = value.strip().lower() == "true" if value else None
    record = _read_record(stack, posixpath.join(dist_info, "RECORD"), problems)
    top_level = _top_level(stack, dist_info, record, problems)
    return Distribution(
        name=name,
        version=version,
        dist_info=dist_info,
        site=site,
        source=source,
        source_index=index,
        wheel_tags=wheel_tags,
        root_is_purelib=purelib,
        requires_python=requires_python,
        requires_dist=requires_dist,
        record=record,
        top_level=top_level,
        problems=tuple(problems),
    )


def _read_record(stack: Stack, path: str, problems: list[str]) -> tuple[RecordEntry, ...]:
    text = _read_text(stack, path, problems)
    if text is None:
        return ()
    entries = []
    try:
        for row in csv.reader(io.StringIO(text)):
            if not row or not row[0]:
                continue
            digest = row[1] if len(row) > 1 and row[1] else None
            size: int | None = None
            if len(row) > 2 and row[2]:
                try:
                    size = int(row[2])
                except ValueError:
                    problems.append(f"RECORD: bad size {row[2]!r} for {row[0]}")
            entries.append(RecordEntry(path=row[0], hash=digest, size=size))
    except csv.Error as exc:
        problems.append(f"RECORD is not valid CSV: {exc}")
    return tuple(entries)


def _top_level(
    stack: Stack, dist_info: str, record: tuple[RecordEntry, ...], problems: list[str]
) -> tuple[str, ...]:
    """Importable top-level names: top_level.txt when present, else derived from RECORD."""
    text = _read_text(stack, posixpath.join(dist_info, "top_level.txt"), problems)
    if text is not None:
        return tuple(sorted({line.strip() for line in text.splitlines() if line.strip()}))
    names = set()
    for entry in record:
        first = entry.path.split("/", 1)[0]
        if first.endswith((".dist-info", ".data")) or first.startswith(".."):
            continue
        if first == "__pycache__":
            continue
        head = first.partition(".")[0]
        if head.isidentifier():
            names.add(head)
    return tuple(sorted(names))
