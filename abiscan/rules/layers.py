"""ABI4xx: the deployment itself: layer count, size, permissions, unsafe entries."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from abiscan.inputs.sources import Entry, InputKind, Source
from abiscan.report.findings import ABI401, ABI402, ABI403, ABI404, Finding
from abiscan.report.model import InputSummary
from abiscan.target.profiles import Target

__all__ = [
    "layer_limits",
    "permissions",
    "unsafe_entries",
]


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def layer_limits(inputs: Sequence[InputSummary], target: Target) -> list[Finding]:
    out = []
    layers = [i for i in inputs if i.kind == InputKind.LAYER.value]
    if len(layers) > target.max_layers:
        out.append(
            Finding.of(
                ABI401,
                f"{len(layers)} layers; a function can use at most {target.max_layers}",
                "Merge layers (one layer can hold several packages), or move dependencies into "
                "the function package or a container image",
                evidence=tuple(i.label for i in layers),
            )
        )
    total = sum(i.unzipped_bytes for i in inputs if i.readable)
    if total > target.max_unzipped_bytes:
        biggest = sorted(inputs, key=lambda i: -i.unzipped_bytes)[:3]
        out.append(
            Finding.of(
                ABI402,
                f"function and layers unzip to {_mb(total)}; the limit is "
                f"{_mb(target.max_unzipped_bytes)}",
                "Drop what the runtime does not need (tests, __pycache__, *.dist-info/RECORD is "
                "small; boto3 ships with the runtime; strip debug symbols from .so files with "
                "'strip'), or use a container image (10 GB)",
                evidence=tuple(f"{i.label}: {_mb(i.unzipped_bytes)}" for i in biggest),
            )
        )
    return out


def _unreadable(entry: Entry) -> str | None:
    """Why the runtime's user (not the owner: "other") cannot use this entry, if it cannot."""
    if entry.mode is None:
        return None
    if entry.kind == "dir":
        if not entry.mode & 0o001:
            return f"directory mode {entry.mode:04o} lacks o+x"
        if not entry.mode & 0o004:
            return f"directory mode {entry.mode:04o} lacks o+r"
        return None
    if entry.kind == "file" and not entry.mode & 0o004:
        return f"file mode {entry.mode:04o} lacks o+r"
    return None


def permissions(source: Source, root: str) -> Finding | None:
    """ABI403: entries the runtime user cannot read, one finding per input."""
    bad = [(e, why) for e in source.entries() if (why := _unreadable(e)) is not None]
    if not bad:
        return None
    first, why = bad[0]
    shown = "; ".join(f"{e.path} ({w})" for e, w in bad[:5])
    return Finding.of(
        ABI403,
        f"{len(bad)} entries of {source.label} cannot be read by the runtime's user: {shown}"
        + (" ..." if len(bad) > 5 else ""),
        "Fix the modes before zipping (chmod -R o+rX python/) and zip again; Lambda keeps "
        "the modes stored in the zip",
        path=posixpath.join(root, first.path),
        source=source.label,
        source_path=first.path,
        evidence=(f"zipinfo {source.label} '{first.path}': {why}",),
    )


def unsafe_entries(source: Source) -> Finding | None:
    """ABI404: absolute paths, '..' and links that leave the tree, one finding per input."""
    bad: list[tuple[Entry, str]] = []
    for e in source.entries():
        if e.unsafe:
            bad.append((e, f"{e.raw_name or e.path}: {e.unsafe}"))
        elif e.kind == "symlink" and e.link_target is not None and _leaves_tree(e):
            bad.append((e, f"{e.path} -> {e.link_target}: link leaves the archive"))
    if not bad:
        return None
    return Finding.of(
        ABI404,
        f"{len(bad)} unsafe entries in {source.label}: "
        + "; ".join(w for _, w in bad[:5])
        + (" ..." if len(bad) > 5 else ""),
        "Rebuild the archive from a clean directory with relative paths only "
        "(cd build && zip -r ../layer.zip python); do not store links that point outside it",
        source=source.label,
        source_path=bad[0][0].path,
        evidence=tuple(w for _, w in bad[:10]),
    )


def _leaves_tree(entry: Entry) -> bool:
    assert entry.link_target is not None
    if entry.link_target.startswith("/"):
        return True
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(entry.path), entry.link_target))
    return joined == ".." or joined.startswith("../")
