"""The real-world differential suite: abiscan's predictions against real imports.

Pinned PyPI wheels (``manifest.json``, resolved once by ``python -m realworld
resolve``) are assembled into Lambda layers, clean and mismatched; every chosen
module is imported for real in a fresh CPython of the target's version with
Lambda's ``sys.path`` order, and abiscan's prediction for the same stack is
compared with what happened. ``python -m realworld run`` writes the agreement
table into ``docs/realworld.md``. Nothing here runs in the default test command.
"""

from __future__ import annotations

__all__: list[str] = []
