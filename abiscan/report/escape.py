"""Safe output: what a scanned input names reaches a terminal or a JSON file inert.

Member names, link targets, METADATA fields and ELF strings are chosen by
whoever built the input. Two rules, applied where the renderers hand text out:

- text: every control character (C0, DEL, C1) becomes ``\\xNN`` (``\\n`` too,
  unless the caller keeps line breaks), so no escape sequence reaches a terminal;
- text and JSON: a byte that was not valid UTF-8 (carried as a lone surrogate
  U+DC80..U+DCFF by ``surrogateescape``) becomes the four characters ``\\xNN``
  of the original byte, and any other lone surrogate ``\\uNNNN``, so the output
  is valid UTF-8. A literal backslash is left as it is.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

__all__ = ["escape_text", "json_safe"]

_SURROGATE = "[\ud800-\udfff]"
_CONTROL = "[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]"
_CONTROL_OR_NEWLINE = "[\x00-\x1f\x7f-\x9f\ud800-\udfff]"


@cache
def _pattern(chars: str) -> re.Pattern[str]:
    # Compiled on first use: these character classes cost up to half a
    # millisecond each, and most text needs none (start-up: docs/benchmarks.md).
    return re.compile(chars)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if code >= 0xD800:
        return f"\\u{code:04x}"
    return f"\\x{code:02x}"


def escape_text(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with control characters and undecodable bytes escaped for a terminal."""
    plain = text.replace("\n", "") if keep_newlines else text
    if plain.isascii() and plain.isprintable():
        return text  # printable ASCII (and kept line breaks): nothing to escape
    pattern = _CONTROL if keep_newlines else _CONTROL_OR_NEWLINE
    return _pattern(pattern).sub(_escape, text)


def json_safe(value: Any) -> Any:
    """JSON-ready data with every string encodable as UTF-8 (keys included)."""
    if isinstance(value, str):
        return value if value.isascii() else _pattern(_SURROGATE).sub(_escape, value)
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
