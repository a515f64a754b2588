"""The verdict on a source that does not import as source, and its message.

Shared by :mod:`abiscan.simulate.python.grammar` (the parser's errors) and
:mod:`abiscan.simulate.python.compile_time` (the compiler's), which grammar calls.
"""

from __future__ import annotations

import posixpath
from typing import Literal

from abiscan.records import record
from abiscan.report.findings import PredictedError

__all__ = ["SyntaxVerdict", "syntax_error"]


@record
class SyntaxVerdict:
    """Why a source does not import as source: a predicted SyntaxError, or unknown."""

    error: PredictedError | None  # SyntaxError (or IndentationError, TabError) on the target
    line: int | None
    unknown: str | None = None  # set instead of ``error`` when the target's grammar is newer
    exact: bool = True  # the message is known to be the target's own wording
    why: str = ""
    # Which of the steps of compiling a source on import rejects it: the parser, or
    # the compiler's later passes (abiscan.simulate.python.compile_time).
    stage: Literal["parse", "compile"] = "parse"


def syntax_error(kind: str, msg: str, line: int | None, filename: str) -> PredictedError:
    """The exception as CPython prints it: the message, then the file and line."""
    base = posixpath.basename(filename)
    where = f" ({base}, line {line})" if line is not None else f" ({base})"
    return PredictedError(type=kind, message=msg + where)
