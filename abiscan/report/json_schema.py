"""The JSON Schemas of abiscan's JSON outputs, shipped in ``abiscan/report/schemas/``.

| output | schema |
|---|---|
| ``abiscan scan --format json``, ``Report.to_dict()`` | ``scan.schema.json`` |
| ``abiscan explain --format json`` | ``explain.schema.json`` |
| ``abiscan matrix --format json`` | ``matrix.schema.json`` |
| target profiles (``targets --show``, ``capture``, ``--target FILE``) | ``target.schema.json`` |

The schemas are JSON Schema draft-07 and refer to each other by their
``$id`` (``urn:abiscan:schema:<name>``), so a validator needs them all loaded
(:func:`all_schemas`). They describe schema_version 1.x: every documented
key is required and typed; keys they do not list are allowed, as a later
minor version may add some (the tests check that the outputs have none).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Literal

__all__ = ["SCHEMA_NAMES", "SchemaName", "all_schemas", "schema"]

SchemaName = Literal["scan", "explain", "matrix", "target"]
SCHEMA_NAMES: tuple[SchemaName, ...] = ("scan", "explain", "matrix", "target")


@cache
def _text(name: str) -> str:
    return (resources.files("abiscan.report") / "schemas" / f"{name}.schema.json").read_text(
        encoding="utf-8"
    )


def schema(name: SchemaName) -> dict[str, Any]:
    """One schema as a fresh dict."""
    data: dict[str, Any] = json.loads(_text(name))
    return data


def all_schemas() -> dict[str, dict[str, Any]]:
    """Every schema by its ``$id``."""
    out = {}
    for name in SCHEMA_NAMES:
        doc = schema(name)
        out[str(doc["$id"])] = doc
    return out
