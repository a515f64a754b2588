"""An exception on its way up a chain of imports, and the guards it passes through.

Kept apart from :mod:`abiscan.simulate.python.execute` (which runs module bodies and
needs the evaluator) so that following the imports of extension modules alone,
as a scan of a layer without Python sources does, loads neither.
"""

from __future__ import annotations

from dataclasses import replace

from abiscan.records import record
from abiscan.report.findings import PredictedError
from abiscan.report.model import ChainStep

__all__ = ["Pierced", "Raised", "weaker"]

_RANK = {"certain": 0, "likely": 1, "possible": 2}


def weaker(a: str, b: str) -> str:
    return a if _RANK[a] >= _RANK[b] else b


@record
class Raised:
    """An exception on its way up: what it is, where it started, how it got here."""

    error: PredictedError | None  # None: it fails, but how is not known
    steps: tuple[ChainStep, ...]  # from the module it arrives at down to the broken one
    broken: str  # the module that fails by itself
    reason: str  # why the broken module fails
    certain: bool = True  # False: it may not happen (an undecided condition, an unknown)
    confidence: str = "certain"  # how sure the links are (native edges lower it)
    missing: bool = False  # the broken module is not found at all (an import hook may serve it)

    def via(self, step: ChainStep, confidence: str = "certain") -> Raised:
        return replace(
            self, steps=(step, *self.steps), confidence=weaker(self.confidence, confidence)
        )

    def maybe(self) -> Raised:
        return replace(self, certain=False) if self.certain else self


@record
class Pierced:
    """An import guarded against ImportError that something else still passes through."""

    module: str
    path: str | None
    line: int
    statement: str
    guards: tuple[str, ...]
    raised: Raised
