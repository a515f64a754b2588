"""Every exception abiscan raises on purpose, under one base: :class:`AbiscanError`.

``except abiscan.AbiscanError`` catches them all. Each keeps the name (and the
module attribute) it had before the family was gathered here, and the ones
that were ``ValueError`` still are, so existing ``except ValueError`` clauses
keep working. Bugs are not in this family: they stay ``AssertionError``,
``TypeError`` and friends.

This module imports nothing from abiscan: every layer may raise these.
"""

from __future__ import annotations

__all__ = [
    "AbiscanError",
    "ArgumentError",
    "BuildError",
    "CacheFormatError",
    "ConfigError",
    "ElfError",
    "InventoryError",
    "LimitsError",
    "RuntimeDataError",
    "SourceError",
    "TargetError",
]


class AbiscanError(Exception):
    """The base of every error abiscan raises on purpose."""


class ArgumentError(AbiscanError, ValueError):
    """Arguments that contradict each other, or a value that cannot be right
    (``target=`` with ``runtime=``, an invalid dotted module name)."""


class ConfigError(AbiscanError, ValueError):
    """A configuration file (``[tool.abiscan]``, ``abiscan.toml``) is not valid."""


class SourceError(AbiscanError):
    """An input, or one member of it, cannot be read. The text names both.

    ``reason`` is the same text without the input and member names, for
    places that name them already.
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason if reason is not None else message


class ElfError(AbiscanError):
    """The bytes are not a readable ELF file; ``str(exc)`` says what is wrong."""


class TargetError(AbiscanError, ValueError):
    """A target cannot be built or loaded (unknown runtime, bad file)."""


class InventoryError(AbiscanError, ValueError):
    """An inventory cannot be read (bad profile data)."""


class RuntimeDataError(AbiscanError, ValueError):
    """The bundled runtime package data is malformed (a packaging bug, not a user error)."""


class BuildError(AbiscanError, ValueError):
    """The requested object cannot be written (unknown machine, bad parameter)."""


class LimitsError(AbiscanError, ValueError):
    """A ``--limits`` specification names an unknown budget or a bad value."""


class CacheFormatError(AbiscanError, ValueError):
    """A content-cache entry that is not well formed (the cache treats it as a miss)."""
