"""Where the suite keeps its downloads, unpacked wheels, layers and ground truth."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MANIFEST", "PROJECTS", "REPO", "cache_dir"]

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PROJECTS = HERE / "projects.json"
MANIFEST = HERE / "manifest.json"


def cache_dir() -> Path:
    """``$ABISCAN_REALWORLD_CACHE``, else ``/work/cache/realworld`` if ``/work/cache`` exists,
    else ``~/.cache/abiscan-realworld``."""
    env = os.environ.get("ABISCAN_REALWORLD_CACHE")
    if env:
        path = Path(env)
    elif Path("/work/cache").is_dir():
        path = Path("/work/cache/realworld")
    else:
        path = Path.home() / ".cache" / "abiscan-realworld"
    path.mkdir(parents=True, exist_ok=True)
    return path
