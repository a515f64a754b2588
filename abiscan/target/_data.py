"""The built-in data files under ``abiscan/target/data/``."""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["read_json"]


def read_json(name: str) -> Any:
    """The parsed contents of ``data/<name>``, shipped with the package.

    Read through the package's loader, as ``pkgutil.get_data`` reads it (which
    works from a zip as well as from files) without importing pkgutil:
    ``importlib.resources`` would cost every start of abiscan some 20 ms of
    imports (tempfile, shutil, zipfile) for this alone.
    """
    loader = __spec__.loader if __spec__ else None
    if loader is None or not hasattr(loader, "get_data"):
        raise FileNotFoundError(f"abiscan.target: data/{name}")
    data = loader.get_data(os.path.join(os.path.dirname(__file__), "data", name))
    return json.loads(data.decode("utf-8"))
