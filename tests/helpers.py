"""Small fixture writers shared by the tests (zips, directory trees)."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path


def write_zip(path: Path, members: Mapping[str, bytes | str], *, mode: int = 0o644) -> Path:
    """A zip as Lambda tooling writes it: Unix modes, deflated, fixed timestamps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = ((0o040755 if name.endswith("/") else 0o100000 | mode) << 16)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data.encode() if isinstance(data, str) else data)
    return path


def write_tree(root: Path, members: Mapping[str, bytes | str]) -> Path:
    for name, data in members.items():
        full = root / name
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data.encode() if isinstance(data, str) else data)
    return root
