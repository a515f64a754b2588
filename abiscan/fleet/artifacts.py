"""Where an audit's inputs live: local paths, or URLs read through fsspec.

A URL (``s3://``, ``gs://``, ``https://``, ...) is copied once into the cache
directory, under the SHA-256 of its bytes (``<cache>/audit/blobs/<sha256><suffix>``),
and scanned there: the scanner reads local files only, and a worker that finds
the blob already present does not download it again. ``file://`` URLs and
plain paths are read where they are; nothing is written for them.
fsspec is imported only when a non-``file`` URL is met (the ``abiscan[fsspec]`` extra).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast
from urllib.parse import urlsplit
from urllib.request import url2pathname

from abiscan.errors import AbiscanError
from abiscan.fleet.manifest import is_url

__all__ = ["ArtifactError", "default_cache_dir", "digest_of", "local_path"]

_CHUNK = 1 << 20


class ArtifactError(AbiscanError):
    """An input cannot be found, fetched or read. The text names it."""


def default_cache_dir() -> Path:
    """``$ABISCAN_CACHE_DIR``, else the platform's cache directory (``~/.cache/abiscan``)."""
    env = os.environ.get("ABISCAN_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "abiscan"


def _file_url_path(where: str) -> str | None:
    parts = urlsplit(where)
    if parts.scheme != "file":
        return None
    return url2pathname(parts.path)


def _blobs(cache_dir: Path) -> Path:
    return cache_dir / "audit" / "blobs"


def _suffix(where: str) -> str:
    suffix = PurePosixPath(urlsplit(where).path).suffix
    # The suffix tells a wheel from a layer zip; anything odd is not kept.
    return suffix if suffix.isascii() and suffix[1:].isalnum() else ""


def digest_of(where: str, cache_dir: Path) -> str:
    """``sha256:<hex>`` of an input's bytes (a directory: of its names, modes and bytes).

    A URL is fetched into the cache on the way, so that scanning it later on
    this machine reads the same bytes without another download.
    """
    if is_url(where) and _file_url_path(where) is None:
        return f"sha256:{_fetch(where, cache_dir)[0]}"
    path = Path(_file_url_path(where) or where)
    try:
        if path.is_dir():
            return f"sha256:{_tree_digest(path)}"
        with path.open("rb") as f:
            return f"sha256:{_hash_stream(f, None)}"
    except OSError as exc:
        raise ArtifactError(f"{where}: cannot read: {exc.strerror or exc}") from None


def local_path(where: str, digest: str, cache_dir: Path) -> str:
    """A local path holding the input's bytes: the path itself, or the cached copy of a URL.

    A copy fetched now whose bytes no longer match ``digest`` means the object
    changed during the audit: that is an error, not a silent mix of versions.
    """
    file_path = _file_url_path(where)
    if not is_url(where) or file_path is not None:
        return file_path or where
    blob = _blobs(cache_dir) / f"{digest.removeprefix('sha256:')}{_suffix(where)}"
    if blob.is_file():
        return str(blob)
    got, path = _fetch(where, cache_dir)
    if f"sha256:{got}" != digest:
        raise ArtifactError(f"{where}: changed while the audit ran (sha256 {got})")
    return str(path)


def _fetch(url: str, cache_dir: Path) -> tuple[str, Path]:
    try:
        fsspec: Any = importlib.import_module("fsspec")
    except ModuleNotFoundError:
        raise ArtifactError(
            f"{url}: reading URLs needs fsspec: pip install 'abiscan[fsspec]'"
        ) from None
    blobs = _blobs(cache_dir)
    try:
        blobs.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=blobs, prefix=".fetch-")
    except OSError as exc:
        raise ArtifactError(f"{url}: cannot write to the cache {blobs}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with fsspec.open(url, "rb") as src:
                    hexdigest = _hash_stream(cast("IO[bytes]", src), out)
            except Exception as exc:  # fsspec backends raise their own families
                raise ArtifactError(f"{url}: cannot fetch: {type(exc).__name__}: {exc}") from None
        final = blobs / f"{hexdigest}{_suffix(url)}"
        # Atomic: a concurrent worker fetching the same object writes the same bytes.
        os.replace(tmp, final)
        return hexdigest, final
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _hash_stream(src: IO[bytes], out: IO[bytes] | None) -> str:
    h = hashlib.sha256()
    while chunk := src.read(_CHUNK):
        h.update(chunk)
        if out is not None:
            out.write(chunk)
    return h.hexdigest()


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for rel, st, link in _walk(root, ""):
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0")
        h.update(f"{stat.S_IFMT(st.st_mode):o} {stat.S_IMODE(st.st_mode):o}\0".encode())
        if link is not None:
            h.update(link.encode("utf-8", "surrogateescape") + b"\0")
        elif stat.S_ISREG(st.st_mode):
            with (root / rel).open("rb") as f:
                h.update(_hash_stream(f, None).encode())
    return h.hexdigest()


def _walk(root: Path, rel: str) -> Iterator[tuple[str, os.stat_result, str | None]]:
    here = root / rel if rel else root
    for name in sorted(os.listdir(here)):
        child = f"{rel}/{name}" if rel else name
        st = os.lstat(root / child)
        if stat.S_ISLNK(st.st_mode):
            yield child, st, os.readlink(root / child)
        elif stat.S_ISDIR(st.st_mode):
            yield child, st, None
            yield from _walk(root, child)
        else:
            yield child, st, None
