"""abiscan: will the Python code in Lambda layers, wheels and site-packages import on a target?

The names below are loaded on first use, so that ``import abiscan.elf.reader`` (or
any other low-level module) does not pull in the whole pipeline.
"""

from __future__ import annotations

# Not typing's TYPE_CHECKING (mypy reads this one as typing's): ``abiscan --help``
# does not load typing.
TYPE_CHECKING = False

__version__ = "0.1.0"

_EXPORTS = {
    "AbiscanError": "errors",
    "ArgumentError": "errors",
    "BuildError": "errors",
    "CacheFormatError": "errors",
    "ConfigError": "errors",
    "ElfError": "errors",
    "InventoryError": "errors",
    "LimitsError": "errors",
    "RuntimeDataError": "errors",
    "SourceError": "errors",
    "TargetError": "errors",
    "Confidence": "report.findings",
    "Finding": "report.findings",
    "PredictedError": "report.findings",
    "Severity": "report.findings",
    "ModuleOutcome": "report.model",
    "Report": "report.model",
    "ScanProgress": "progress",
    "analyse": "api",
    "audit": "fleet",
    "matrix": "runtime_matrix",
    "Matrix": "runtime_matrix",
    "scan": "api",
    "Target": "target.profiles",
    "builtin_target": "target.profiles",
    "builtin_targets": "target.profiles",
    "custom_target": "target.profiles",
    "load_target": "target.profiles",
}

__all__ = [
    "AbiscanError",
    "ArgumentError",
    "BuildError",
    "CacheFormatError",
    "Confidence",
    "ConfigError",
    "ElfError",
    "Finding",
    "InventoryError",
    "LimitsError",
    "Matrix",
    "ModuleOutcome",
    "PredictedError",
    "Report",
    "RuntimeDataError",
    "ScanProgress",
    "Severity",
    "SourceError",
    "Target",
    "TargetError",
    "__version__",
    "analyse",
    "audit",
    "builtin_target",
    "builtin_targets",
    "custom_target",
    "load_target",
    "matrix",
    "scan",
]

if TYPE_CHECKING:
    from typing import Any

    from abiscan.api import analyse, scan
    from abiscan.errors import (
        AbiscanError,
        ArgumentError,
        BuildError,
        CacheFormatError,
        ConfigError,
        ElfError,
        InventoryError,
        LimitsError,
        RuntimeDataError,
        SourceError,
        TargetError,
    )
    from abiscan.fleet import audit
    from abiscan.report.findings import Confidence, Finding, PredictedError, Severity
    from abiscan.report.model import ModuleOutcome, Report
    from abiscan.runtime_matrix import Matrix, matrix
    from abiscan.target.profiles import (
        Target,
        builtin_target,
        builtin_targets,
        custom_target,
        load_target,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'abiscan' has no attribute {name!r}")
    import importlib

    from abiscan._deferred_imports import defer_rare_imports

    defer_rare_imports()
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
