"""Fleet audits: many stacks x many targets, on this machine's cores or a Dask cluster.

``audit(manifest)`` scans every stack of a manifest on every target it names
and returns one record per (stack, target); see docs/audit.md.
"""

from __future__ import annotations

from importlib.resources import files

from abiscan.fleet.cells import RECORD_SCHEMA, CellTask, Prepared, scan_cell
from abiscan.fleet.executors import ExecutorError
from abiscan.fleet.manifest import (
    MANIFEST_SCHEMA,
    Manifest,
    ManifestError,
    StackSpec,
    load_manifest,
    parse_manifest,
)
from abiscan.fleet.run import AuditResult, Progress, audit, dump_record, read_records
from abiscan.fleet.summary import format_progress, summary_table

__all__ = [
    "MANIFEST_SCHEMA",
    "RECORD_SCHEMA",
    "AuditResult",
    "CellTask",
    "ExecutorError",
    "Manifest",
    "ManifestError",
    "Prepared",
    "Progress",
    "StackSpec",
    "audit",
    "dump_record",
    "format_progress",
    "load_manifest",
    "parse_manifest",
    "read_records",
    "scan_cell",
    "schema",
    "summary_table",
]


def schema(name: str) -> str:
    """A JSON Schema shipped with the package: ``MANIFEST_SCHEMA`` or ``RECORD_SCHEMA``."""
    return (files(__name__) / "schemas" / name).read_text("utf-8")
