"""The built-in data files under ``abiscan/target/data/``."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["read_json"]


def read_json(name: str) -> Any:
    """The parsed contents of ``data/<name>``, shipped with the package."""
    root = resources.files(__package__ or "abiscan.target")
    return json.loads((root / "data" / name).read_text("utf-8"))
