"""The built-in data files under ``abiscan/target/data/``."""

from __future__ import annotations

import json
import pkgutil
from typing import Any

__all__ = ["read_json"]


def read_json(name: str) -> Any:
    """The parsed contents of ``data/<name>``, shipped with the package.

    Read through the package's loader (``pkgutil.get_data``), which works from a
    zip as well as from files: ``importlib.resources`` would cost every start
    of abiscan some 20 ms of imports (tempfile, shutil, zipfile) for this alone.
    """
    data = pkgutil.get_data(__package__ or "abiscan.target", f"data/{name}")
    if data is None:
        raise FileNotFoundError(f"abiscan.target: data/{name}")
    return json.loads(data.decode("utf-8"))
