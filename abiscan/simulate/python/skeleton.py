"""A compiled source's tree with the bodies of its functions kept as text.

A cold scan parsed each reached source into a whole tree and compiled that tree
(compile_time.py); most of the nodes were the bodies of methods and decorated
functions, which the extraction never reads (docs/benchmarks.md, *Session
17*). Here the source is compiled as importing compiles it, ``compile(source,
path, "exec", dont_inherit=True)``: that alone decides every SyntaxError of the
module, in its function bodies too. Then only a *skeleton* is parsed: the
source with the body of each cut ``def`` replaced by ``...`` on its first line
and blank lines after it, so that every other node keeps its line and column.
A cut ``def`` keeps its header's nodes; its body and end positions are parsed
from its own lines when first read (content_cache's deferred ``def``), and
equal those a whole parse makes.

Which ``def`` is cut, and where its body ends, is checked against what the
compiler says, so that a wrong guess never changes the tree:

* the compiler lists each ``def`` (its code object: name and first line, a
  decorator's if any) at module or class level. Left whole: an ``async
  def``, anything nested in a function, a body on its header's line, a body
  the caller says it reads anyway (``reads_body``: parsed on its own, a
  ``def`` pays for every line before it, to keep its line numbers), and a
  ``def`` that ends an indented block (the block's node ends where the
  ``def`` does);
* the body ends before the first later line, neither blank nor a comment, that
  is indented no deeper than the ``def``; that line must be one where the
  enclosing module or class body has code (no line inside the body is, and a
  string's or a continued expression's line inside it would be such a line),
  or an ``else:``, ``finally:`` or ``try:`` line before one; else the ``def``
  is left whole;
* the skeleton must parse, and each cut ``def`` must come back at its line and
  column, under its name, with the placeholder as its whole body.

Any other shape (tabs or form feeds, another encoding than UTF-8, nothing to
cut, a skeleton that does not parse) gives None, and the caller parses the
whole source.
"""

from __future__ import annotations

import ast
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator
from itertools import accumulate
from types import CodeType
from typing import NamedTuple

from abiscan.inputs.content_cache import defer_def_body, source_text
from abiscan.simulate.python.compile_time import source_warnings_ignored

__all__ = ["ReadsBody", "compiled_skeleton"]

# Whether the caller reads the body of a def anyway, from its header's text (``def``
# to the colon), whether it is decorated, and whether it is a class's.
ReadsBody = Callable[[str, bool, bool], bool]
# The lines where the module and the class bodies around a def have code.
_Enclosing = tuple[frozenset[int], ...]

# Flags of a function's code object (inspect.CO_OPTIMIZED | CO_NEWLOCALS); a class
# body has neither. CO_COROUTINE, CO_ITERABLE_COROUTINE, CO_ASYNC_GENERATOR: async.
_FUNCTION = 0x3
_ASYNC = 0x80 | 0x100 | 0x200


class _Cut(NamedTuple):
    """One ``def``'s body cut out: its lines are ``first`` (a decorator's, if any) to
    ``end - 1``; ``def_line`` holds ``def`` at column ``indent``; the body starts at
    ``body``."""

    name: str
    first: int
    def_line: int
    indent: int
    body: int
    end: int


class _Source(NamedTuple):
    text: str
    lines: list[str]
    starts: list[int]  # the offset of each line's first character in text


def compiled_skeleton(
    source: bytes, filename: str, reads_body: ReadsBody
) -> tuple[bool, ast.Module | None]:
    """Compile ``source`` as importing does: whether it compiles, and when it does,
    its skeleton tree (None when the source has no shape this module cuts)."""
    try:
        with source_warnings_ignored():
            code = compile(source, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return False, None
    return True, _skeleton(source, code, filename, reads_body)


def _skeleton(
    source: bytes, code: CodeType, filename: str, reads_body: ReadsBody
) -> ast.Module | None:
    text = source_text(source)
    if text is None or "\t" in text or "\f" in text:  # tabs count as the tokenizer says
        return None
    lines = text.split("\n")
    starts = list(accumulate(map(len, lines), _next, initial=0))
    src = _Source(text=text, lines=lines, starts=starts)
    cuts = [
        cut
        for name, first, enclosing in _defs(code, ())
        if (cut := _cut(src, name, first, enclosing, reads_body)) is not None
    ]
    if not cuts:
        return None
    kept = list(lines)
    for cut in cuts:
        kept[cut.body - 1] = " " * (cut.indent + 1) + "..."
        kept[cut.body : cut.end - 1] = [""] * (cut.end - 1 - cut.body)
    try:
        with source_warnings_ignored():
            tree = ast.parse("\n".join(kept), filename)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return None
    return tree if _deferred(tree, cuts, lines) else None


def _next(offset: int, length: int) -> int:
    return offset + length + 1


def _defs(code: CodeType, outer: _Enclosing) -> Iterator[tuple[str, int, _Enclosing]]:
    """Each plain ``def`` of ``code`` (a module's or a class body's), with the lines
    where ``code`` and the bodies around it have code (the module's first: a def is
    a class's when there are more); class bodies too."""
    enclosing = (*outer, _code_lines(code))
    for const in code.co_consts:
        if not isinstance(const, CodeType) or const.co_name.startswith("<"):
            continue  # lambdas and comprehensions stay in the tree
        if not const.co_flags & _FUNCTION:
            yield from _defs(const, enclosing)
        elif not const.co_flags & _ASYNC:
            yield const.co_name, const.co_firstlineno, enclosing


def _code_lines(code: CodeType) -> frozenset[int]:
    return frozenset(line for start, end, line in code.co_lines() if line and end > start)


_DEF_LINE = re.compile(r"( *)def[ \t]+(\w+)")
_DECORATOR_LINES = 100  # a def's line is looked for this far past its first decorator
_HEADER = re.compile(r"""(['"])|#[^\n]*|([(\[{])|([)\]}])|(:)""")
_STRING_END = {
    q: re.compile(body + q)
    for q, body in [
        ("'", r"(?:[^\\'\n]|\\[\s\S])*"),
        ('"', r'(?:[^\\"\n]|\\[\s\S])*'),
        ("'''", r"(?:[^\\']|\\[\s\S]|'(?!''))*"),
        ('"""', r'(?:[^\\"]|\\[\s\S]|"(?!""))*'),
    ]
}
# A line with no code of its own that can follow a body: only the whole line (a
# string's inner line holding just these words would be followed by more of it).
_CLAUSE = re.compile(r" *(?:else|finally|try) *: *(?:#.*)?")
_NEXT_CONTENT = re.compile(r"\n *(?=[^ \n#])")
_BODY_END: dict[int, re.Pattern[str]] = {}


def _cut(
    src: _Source, name: str, first: int, enclosing: _Enclosing, reads_body: ReadsBody
) -> _Cut | None:
    """The cut of one ``def``; None to leave it whole (the text around is the same
    either way): its body on its header's line, a body the extraction reads
    anyway, or a shape not read here."""
    found = _def_line(src.lines, name, first)
    if found is None:
        return None
    def_line, indent = found
    start = src.starts[def_line - 1] + indent
    colon = _header_end(src.text, start)
    if colon is None or reads_body(src.text[start:colon], first != def_line, len(enclosing) > 1):
        return None
    header_end = _line_of(src, colon)
    rest = src.lines[header_end - 1][colon - src.starts[header_end - 1] + 1 :].strip()
    if rest and not rest.startswith("#"):
        return None
    body = header_end + 1
    end = _body_end(src, indent, body)
    if end <= body or not _outside(src, end, enclosing) or _ends_block(src, end, indent):
        return None
    return _Cut(name=name, first=first, def_line=def_line, indent=indent, body=body, end=end)


def _ends_block(src: _Source, end: int, indent: int) -> bool:
    """Whether the ``def`` is the last statement of an indented block: the block's
    node (a class, an ``if``) ends where it does, which a skeleton would not know."""
    if indent == 0:
        return False
    if end > len(src.lines):
        return True
    line = src.lines[end - 1]
    return len(line) - len(line.lstrip(" ")) < indent


def _line_of(src: _Source, offset: int) -> int:
    return bisect_right(src.starts, offset)


def _outside(src: _Source, line: int, enclosing: _Enclosing) -> bool:
    """Whether ``line``, where a body seems to end, is surely past it: the end of the
    source, a line where the code around has code (none of a body's lines is),
    or a clause without code of its own (``else:``) before such a line."""
    if line > len(src.lines) or _has_code(enclosing, line):
        return True
    if _CLAUSE.fullmatch(src.lines[line - 1]) is None:
        return False
    after = _NEXT_CONTENT.search(src.text, src.starts[line] - 1) if line < len(src.lines) else None
    return after is not None and _has_code(enclosing, _line_of(src, after.end()))


def _has_code(enclosing: _Enclosing, line: int) -> bool:
    return any(line in lines for lines in enclosing)


def _def_line(lines: list[str], name: str, first: int) -> tuple[int, int] | None:
    """The line of ``def name`` at or after ``first`` (past its decorators), and its
    indentation."""
    if not 1 <= first <= len(lines):
        return None
    indent = len(lines[first - 1]) - len(lines[first - 1].lstrip(" "))
    for number in range(first, min(first + _DECORATOR_LINES, len(lines) + 1)):
        head = _DEF_LINE.match(lines[number - 1])
        if head is not None:
            if head.group(2) != name or len(head.group(1)) != indent:
                return None
            return number, indent
    return None


def _header_end(text: str, start: int) -> int | None:
    """The offset of the colon ending the ``def`` header that starts at ``start``."""
    depth, pos = 0, start
    while True:
        token = _HEADER.search(text, pos)
        if token is None:
            return None
        quote, opening, closing, colon = token.groups()
        pos = token.end()
        if quote is not None:
            if text.startswith(quote * 3, token.start()):
                quote, pos = quote * 3, token.start() + 3
            string = _STRING_END[quote].match(text, pos)
            if string is None:
                return None
            pos = string.end()
        elif opening is not None:
            depth += 1
        elif closing is not None:
            depth -= 1
        elif colon is not None and depth == 0:
            return token.start()


def _body_end(src: _Source, indent: int, body: int) -> int:
    """The first line at or after ``body``, neither blank nor a comment, indented no
    deeper than ``indent``; one past the last line when there is none."""
    pattern = _BODY_END.get(indent)
    if pattern is None:
        pattern = _BODY_END[indent] = re.compile(rf"\n {{0,{indent}}}(?=[^ \n#])")
    found = pattern.search(src.text, src.starts[body - 1] - 1) if body <= len(src.lines) else None
    if found is None:
        return len(src.lines) + 1
    return _line_of(src, found.end())


def _deferred(tree: ast.Module, cuts: list[_Cut], lines: list[str]) -> bool:
    """Whether each cut came back as the ``def`` it was, with the placeholder as its
    whole body; if so, its body is made to be parsed from its lines on first use."""
    defs: dict[int, ast.FunctionDef] = {}
    _collect_defs(tree.body, defs)
    found = [defs.get(cut.def_line) for cut in cuts]
    if not all(n is not None and _is_cut(n, cut) for n, cut in zip(found, cuts, strict=True)):
        return False
    for node, cut in zip(found, cuts, strict=True):
        assert node is not None  # checked above
        last = cut.end - 1
        while _blank_or_comment(lines[last - 1]):  # the body's last line holds a token
            last -= 1
        defer_def_body(node, "\n".join(lines[cut.first - 1 : last]) + "\n", cut.first)
    return True


def _blank_or_comment(line: str) -> bool:
    stripped = line.lstrip(" ")
    return not stripped or stripped.startswith("#")


def _is_cut(node: ast.FunctionDef, cut: _Cut) -> bool:
    if node.name != cut.name or node.col_offset != cut.indent or len(node.body) != 1:
        return False
    only = node.body[0]
    return (
        isinstance(only, ast.Expr)
        and isinstance(only.value, ast.Constant)
        and only.value.value is Ellipsis
        and only.lineno == cut.body
        and only.col_offset == cut.indent + 1
    )


def _collect_defs(body: list[ast.stmt], out: dict[int, ast.FunctionDef]) -> None:
    """The plain ``def`` statements of a module or class body, by line, through
    compound statements and classes but not into functions."""
    for stmt in body:
        if type(stmt) is ast.FunctionDef:
            out[stmt.lineno] = stmt
        elif not isinstance(stmt, (ast.AsyncFunctionDef, ast.FunctionDef)):
            for block in _blocks(stmt):
                _collect_defs(block, out)


def _blocks(stmt: ast.stmt) -> Iterator[list[ast.stmt]]:
    for field in ("body", "orelse", "finalbody"):
        block = getattr(stmt, field, None)
        if isinstance(block, list):
            yield block
    for part in (*getattr(stmt, "handlers", ()), *getattr(stmt, "cases", ())):
        yield part.body
