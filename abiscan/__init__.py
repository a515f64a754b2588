"""abiscan: will the Python code in Lambda layers, wheels and site-packages import on a target?

The names below are loaded on first use, so that ``import abiscan.elf`` (or
any other low-level module) does not pull in the whole pipeline.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Confidence": "findings",
    "Finding": "findings",
    "PredictedError": "findings",
    "Severity": "findings",
    "ModuleOutcome": "report",
    "Report": "report",
    "analyse": "pipeline",
    "scan": "pipeline",
    "Target": "targets",
    "builtin_target": "targets",
    "builtin_targets": "targets",
    "custom_target": "targets",
    "load_target": "targets",
}

__all__ = [
    "Confidence",
    "Finding",
    "ModuleOutcome",
    "PredictedError",
    "Report",
    "Severity",
    "Target",
    "__version__",
    "analyse",
    "builtin_target",
    "builtin_targets",
    "custom_target",
    "load_target",
    "scan",
]

if TYPE_CHECKING:
    from .findings import Confidence, Finding, PredictedError, Severity
    from .pipeline import analyse, scan
    from .report import ModuleOutcome, Report
    from .targets import Target, builtin_target, builtin_targets, custom_target, load_target


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'abiscan' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
