"""Installed distributions for synthetic layers: files with a RECORD that checks out.

abiscan tells an intact distribution from a mix of two versions by the hashes in
its RECORD, so tests that build layers need RECORDs that agree with the files.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import TypeVar

__all__ = ["installed"]

Content = TypeVar("Content", bound="bytes | str")


def installed(
    name: str,
    files: Mapping[str, Content],
    *,
    version: str = "1.0",
    requires: Sequence[str] = (),
) -> dict[str, Content | str]:
    """Layer members (under ``python/``) for ``files`` plus a dist-info whose METADATA
    names ``requires`` and whose RECORD lists each file with its real sha256 and size."""
    rows = []
    for path, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        rows.append(f"{path},sha256={digest.decode()},{len(data)}")
    info = f"{name}-{version}.dist-info"
    rows.append(f"{info}/RECORD,,")
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    members: dict[str, Content | str] = {f"python/{p}": t for p, t in files.items()}
    members[f"python/{info}/METADATA"] = metadata
    members[f"python/{info}/RECORD"] = "\n".join(rows) + "\n"
    return members
