"""Whether a source parses under the target's grammar, with CPython's message and line.

The target's grammar
--------------------
The standard library offers one parser, the running interpreter's, and
``ast.parse(..., feature_version=(3, minor))`` to reject *some* newer syntax
for an older target. abiscan parses once with ``feature_version`` set to the
target; when that fails and the running grammar accepts the source, the
failure is a newer construct, which :func:`_newer_syntax` then places on the
line CPython reports. ``feature_version`` does not police everything (checked
against real CPython 3.8-3.13): relaxed decorators (PEP 614, 3.9),
``for x in *a, *b`` (3.9), ``a[*b]`` and ``*args: *Ts`` (PEP 646, 3.11),
nested quotes, backslashes and comments in f-string expressions (PEP 701,
3.12), ``except A, B:`` without parentheses (PEP 758, 3.14), and with some
running versions parenthesised context managers (3.9): :func:`_newer_syntax`
finds those in the tree itself. A source the grammar accepts is then compiled
(never run): the compiler's own SyntaxErrors (``return`` outside a function,
``global`` after use, ``nonlocal`` at module level) come from
:mod:`abiscan.simulate.python.compile_time`.

A NUL byte is refused before any grammar (``compile()`` checks the bytes
first): ``ValueError`` up to CPython 3.11.3, ``SyntaxError`` from 3.11.4,
with the same words and no line, whatever the running parser says.

A target **newer** than the running interpreter cannot be checked with its
own grammar: the source is parsed with the running grammar, and when that
fails the outcome is unknown (the construct may be valid on the target),
never a ``SyntaxError``.

Messages: the line and the exception type (``SyntaxError``,
``IndentationError``, ``TabError``) are the target's; the message is the
running parser's, mapped to the older wording for the messages that changed
in 3.10 (``expected ':'`` was ``invalid syntax`` on 3.8 and 3.9, and so on)
when the target is older. ``SyntaxVerdict.exact`` says whether the text is
known to be the target's own.
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from collections.abc import Iterator, Sequence

from abiscan.records import record
from abiscan.report.findings import PredictedError
from abiscan.simulate.python.compile_time import compile_error, source_warnings_ignored
from abiscan.simulate.python.syntax_verdict import SyntaxVerdict, syntax_error

__all__ = [
    "RUNNING",
    "SyntaxVerdict",
    "check_syntax",
    "child_nodes",
]

RUNNING = (sys.version_info[0], sys.version_info[1])


# Messages CPython 3.10 introduced, and what 3.8 and 3.9 said instead.
_OLD_WORDING: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^expected an indented block.*"), "expected an indented block"),
    (re.compile(r"^cannot assign to (.+?) here\. Maybe you meant .*"), r"cannot assign to \1"),
    (re.compile(r"^'.' was never closed$"), "unexpected EOF while parsing"),
    (re.compile(r"^unterminated string literal.*"), "EOL while scanning string literal"),
    (
        re.compile(r"^unterminated triple-quoted string literal.*"),
        "EOF while scanning triple-quoted string literal",
    ),
    (
        re.compile(
            r"^(expected ':'|expected '.+'|multiple exception types must be parenthesized"
            r"|invalid syntax\..*|expected 'except' or 'finally' block)$"
        ),
        "invalid syntax",
    ),
)


_PRINT_HINT = "Missing parentheses in call to 'print'. Did you mean print(...)?"


def _message_for(msg: str, target: tuple[int, int], line: str = "") -> tuple[str, bool]:
    """The message the target would print for an error the running parser worded ``msg``
    (``line``: the source line of the error), and whether that wording is certain."""
    if target == RUNNING:
        return msg, True
    if target < (3, 10) <= RUNNING:
        if msg == _PRINT_HINT and line.strip().startswith("print "):
            # 3.8 and 3.9 spelled out the call, from the rest of the line.
            rest = line.strip()[len("print ") :].strip().rstrip(";").strip()
            return f"Missing parentheses in call to 'print'. Did you mean print({rest})?", False
        if target < (3, 9) and msg.startswith("f-string: unmatched"):
            return "invalid syntax", False
        for pattern, old in _OLD_WORDING:
            if pattern.match(msg):
                return pattern.sub(old, msg), False
    return msg, msg == "invalid syntax"


def check_syntax(
    source: bytes, filename: str, target: tuple[int, int]
) -> tuple[ast.Module | None, SyntaxVerdict | None]:
    """Parse ``source`` for the target: the tree, and a verdict when it does not parse.

    The tree is returned whenever the running grammar can read the source
    (also with a verdict, so that its imports are still known).
    """
    if b"\x00" in source:
        return None, _null_bytes(target)
    fv = target if target < RUNNING else None
    try:
        with source_warnings_ignored():
            if fv is not None:
                tree = ast.parse(source, filename, feature_version=fv)
            else:
                tree = ast.parse(source, filename)
    except SyntaxError as exc:
        if fv is None:
            if target > RUNNING and not _undecodable(exc):
                return None, SyntaxVerdict(
                    error=None,
                    line=exc.lineno,
                    unknown=(
                        f"the source does not parse with the grammar of CPython "
                        f"{RUNNING[0]}.{RUNNING[1]}, which runs abiscan ({exc.msg}, line "
                        f"{exc.lineno}); the target's grammar (CPython {target[0]}.{target[1]}) "
                        "is newer and may accept it: run abiscan on CPython "
                        f"{target[0]}.{target[1]} or later to know"
                    ),
                )
            return None, _verdict(exc, filename, target, source)
        try:
            with source_warnings_ignored():
                tree = ast.parse(source, filename)
        except SyntaxError as plain:
            return None, _verdict(plain, filename, target, source)
        # The running grammar reads it: a construct newer than the target.
        newer = _newer_syntax(tree, source, target, filename)
        if newer is not None:
            return tree, newer
        if exc.msg.startswith(_FV_COVERED):
            # feature_version polices these more strictly than the old grammar did
            # (3.8 reads "with (a, b):" as a tuple); the tree check above decides.
            return tree, compile_error(tree, filename, target)
        msg = "invalid syntax"
        return tree, SyntaxVerdict(
            error=syntax_error("SyntaxError", msg, exc.lineno, filename),
            line=exc.lineno,
            exact=False,
            why=f"{exc.msg} (ast feature_version={target[0]}.{target[1]})",
        )
    except ValueError as exc:  # not seen since NUL bytes are decided above; kept as a guard
        return None, SyntaxVerdict(
            error=None, line=None, unknown=f"the source cannot be parsed: {exc}"
        )
    if fv is not None:
        newer = _newer_syntax(tree, source, target, filename)
        if newer is not None:
            return tree, newer
    return tree, compile_error(tree, filename, target)


_NULL_BYTES = "source code string cannot contain null bytes"


def _null_bytes(target: tuple[int, int]) -> SyntaxVerdict:
    """A source with a NUL byte: ``compile()`` refuses the bytes before any grammar,
    with the same words and no line, as ValueError up to 3.11.3 and SyntaxError
    from 3.11.4, whichever of the two the running interpreter raises."""
    kind = "ValueError" if target < (3, 11) else "SyntaxError"
    return SyntaxVerdict(
        error=PredictedError(type=kind, message=_NULL_BYTES),
        line=None,
        why=f"a NUL byte in the source ({kind} on CPython {target[0]}.{target[1]}"
        + (", ValueError before 3.11.4)" if target == (3, 11) else ")"),
    )


def _undecodable(exc: SyntaxError) -> bool:
    """Whether the source failed before any grammar: bytes no CPython version reads."""
    return any(word in exc.msg for word in ("null bytes", "encoding", "codec can't decode"))


# feature_version's messages for the constructs _newer_syntax checks in the tree.
_FV_COVERED = (
    "Parenthesized context managers",
    "Pattern matching",
    "Exception groups",
    "Type statement",
    "Type parameter",
)


def _verdict(
    exc: SyntaxError, filename: str, target: tuple[int, int], source: bytes
) -> SyntaxVerdict:
    msg, line = exc.msg, exc.lineno
    if target < (3, 10) <= RUNNING and msg == _COMMA_HINT and exc.end_lineno:
        # 3.10 points at the first of two expressions missing a comma between
        # them; the older parsers stopped at the second.
        line = exc.end_lineno
    if target < (3, 10) <= RUNNING and _UNCLOSED.match(msg):
        old = _unclosed_before_310(source)
        if old is not None:
            text, line = old
            return SyntaxVerdict(
                error=syntax_error("SyntaxError", text, line, filename),
                line=line,
                exact=text != "invalid syntax",
                why=f"{msg} (parsed by CPython {RUNNING[0]}.{RUNNING[1]})",
            )
    text, exact = _message_for(msg, target, exc.text or "")
    return SyntaxVerdict(
        error=syntax_error(type(exc).__name__, text, line, filename),
        line=line,
        exact=exact,
        why=f"{msg} (parsed by CPython {RUNNING[0]}.{RUNNING[1]})",
    )


_COMMA_HINT = "invalid syntax. Perhaps you forgot a comma?"
_UNCLOSED = re.compile(r"^'.' was never closed$")
_CLOSERS = {"(": ")", "[": "]", "{": "}"}


def _unclosed_before_310(source: bytes) -> tuple[str, int] | None:
    """Where 3.8 and 3.9 report a source with an unclosed bracket (3.10 points at the
    bracket instead): the token their parser stops at, or the end of the file."""
    opened: list[str] = []
    try:
        for tok in tokenize.tokenize(io.BytesIO(source).readline):
            if tok.type == tokenize.OP and tok.string in _CLOSERS:
                opened.append(_CLOSERS[tok.string])
            elif tok.type == tokenize.OP and tok.string in ")]}" and opened:
                opened.pop()
    except (tokenize.TokenError, SyntaxError):
        pass
    if not opened:
        return None
    n_lines = len(source.splitlines())
    # Closed at the end, the source parses up to where the old parsers stopped.
    closed = source + b"\n" + "".join(reversed(opened)).encode()
    try:
        with source_warnings_ignored():
            ast.parse(closed)
    except SyntaxError as exc:
        line = exc.end_lineno if exc.msg == _COMMA_HINT and exc.end_lineno else exc.lineno
        if line is not None and line <= n_lines:
            return "invalid syntax", line
        return None
    except ValueError:
        return None
    return "unexpected EOF while parsing", max(n_lines, 1)


@record
class _Newer:
    since: tuple[int, int]
    line: int
    col: int
    what: str
    message: str = "invalid syntax"


def _newer_syntax(
    tree: ast.Module, source: bytes, target: tuple[int, int], filename: str
) -> SyntaxVerdict | None:
    """The first construct of the tree that the target's grammar rejects, on the line
    CPython reports, or None."""
    lines = source.decode("utf-8", "replace").splitlines()
    found: list[_Newer] = []
    for node in _walk(tree):
        if isinstance(node, _MAY_BE_NEWER):
            found.extend(n for n in _constructs(node, lines, target) if n.since > target)
    if not found:
        return None
    first = min(found, key=lambda n: (n.line, n.col))
    return SyntaxVerdict(
        error=syntax_error("SyntaxError", first.message, first.line, filename),
        line=first.line,
        exact=first.message == "invalid syntax",
        why=f"{first.what} needs CPython {first.since[0]}.{first.since[1]}",
    )


def _walk(tree: ast.AST) -> list[ast.AST]:
    """The nodes of ``tree`` in the order of ``ast.walk`` (breadth first), by a loop
    over a list instead of its generators: this walk cost more than the parse."""
    out = [tree]
    i = 0
    while i < len(out):
        out.extend(child_nodes(out[i]))
        i += 1
    return out


def child_nodes(node: ast.AST) -> list[ast.AST]:
    """``list(ast.iter_child_nodes(node))`` without its generators (the syntax walks
    run over every node of every parsed module)."""
    out: list[ast.AST] = []
    for name in node._fields:
        value = getattr(node, name, None)
        if type(value) is list:
            out.extend([v for v in value if isinstance(v, ast.AST)])
        elif isinstance(value, ast.AST):
            out.append(value)
    return out


# The nodes :func:`_constructs` looks at (it yields nothing for any other).
_MAY_BE_NEWER: tuple[type[ast.AST], ...] = tuple(
    t
    for t in (
        ast.Match,
        getattr(ast, "TryStar", None),
        getattr(ast, "TypeAlias", None),
        ast.FunctionDef,
        ast.AsyncFunctionDef,
        ast.ClassDef,
        ast.With,
        ast.AsyncWith,
        ast.Subscript,
        ast.arguments,
        ast.For,
        ast.AsyncFor,
        ast.ExceptHandler,
        getattr(ast, "TemplateStr", None),
        ast.JoinedStr,
    )
    if isinstance(t, type)
)


def _segment_char(lines: Sequence[str], line: int, col: int) -> str:
    """The character at a node position (``col`` counts UTF-8 bytes, as ast does)."""
    if not 0 < line <= len(lines):
        return ""
    raw = lines[line - 1].encode("utf-8")
    return raw[col : col + 1].decode("utf-8", "replace")


def _parenthesised(node: ast.Tuple, lines: Sequence[str]) -> bool:
    """Whether a tuple's own parentheses enclose it (``(x, *y)``, not ``(x), *y``)."""
    end_line = getattr(node, "end_lineno", None)
    end_col = getattr(node, "end_col_offset", None)
    if end_line is None or end_col is None or not 0 < node.lineno <= end_line <= len(lines):
        return False
    chunk = [ln.encode("utf-8") for ln in lines[node.lineno - 1 : end_line]]
    chunk[-1] = chunk[-1][:end_col]
    chunk[0] = chunk[0][node.col_offset :]
    text = b"\n".join(chunk).decode("utf-8", "replace")
    if not text.startswith("("):
        return False
    depth = 0
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return False
    significant = [t for t in tokens if t.type == tokenize.OP or t.type not in _LAYOUT]
    for i, tok in enumerate(significant):
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
            if depth == 0:
                # The first parenthesis closes here: it encloses the tuple only if
                # nothing follows.
                return i == len(significant) - 1
    return False


_LAYOUT = frozenset(
    {
        tokenize.NEWLINE,
        tokenize.NL,
        tokenize.COMMENT,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENDMARKER,
    }
)


def _is_dotted(node: ast.expr) -> bool:
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name)


# Long on purpose: one branch per construct newer than the target, each with the
# version that introduced it; a table of predicates would hide the AST shapes.
def _constructs(node: ast.AST, lines: Sequence[str], target: tuple[int, int]) -> Iterator[_Newer]:
    line = getattr(node, "lineno", 0)
    col = getattr(node, "col_offset", 0)
    if isinstance(node, ast.Match):
        yield _Newer(since=(3, 10), line=line, col=col, what="a match statement")
    try_star = getattr(ast, "TryStar", None)
    if try_star is not None and isinstance(node, try_star):
        first = node.handlers[0] if node.handlers else node
        yield _Newer(since=(3, 11), line=first.lineno, col=first.col_offset, what="except*")
    type_alias = getattr(ast, "TypeAlias", None)
    if type_alias is not None and isinstance(node, type_alias):
        yield _Newer(since=(3, 12), line=line, col=col, what="a type statement")
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        params = getattr(node, "type_params", None) or []
        if params:
            is_def = not isinstance(node, ast.ClassDef)
            msg = "expected '('" if is_def and target >= (3, 11) else "invalid syntax"
            yield _Newer(
                since=(3, 12), line=line, col=col, what="a type parameter list", message=msg
            )
        for param in params:
            if getattr(param, "default_value", None) is not None:
                msg = (
                    "expected '('"
                    if target >= (3, 11) and not isinstance(node, ast.ClassDef)
                    else "invalid syntax"
                )
                yield _Newer(
                    since=(3, 13), line=line, col=col, what="a type parameter default", message=msg
                )
        for deco in node.decorator_list:
            call = deco.func if isinstance(deco, ast.Call) else deco
            if not _is_dotted(call):
                yield _Newer(
                    since=(3, 9),
                    line=deco.lineno,
                    col=deco.col_offset,
                    what="a decorator that is not a dotted name (PEP 614)",
                )
    if isinstance(node, (ast.With, ast.AsyncWith)):
        yield from _parenthesised_with(node, lines)
    if isinstance(node, ast.Subscript):
        index = node.slice
        # ``a[(x, *y)]`` is a parenthesised tuple display, valid since 3.5; only a
        # star directly inside the brackets (``a[*y]``, ``a[x, *y]``) is PEP 646. The
        # star first: tokenizing for the parentheses of every ``a[i, j]`` cost more
        # than the parse.
        if isinstance(index, ast.Starred) or (
            isinstance(index, ast.Tuple)
            and any(isinstance(e, ast.Starred) for e in index.elts)
            and not _parenthesised(index, lines)
        ):
            yield _Newer(since=(3, 11), line=line, col=col, what="a starred subscript (PEP 646)")
    if (
        isinstance(node, ast.arguments)
        and node.vararg is not None
        and isinstance(node.vararg.annotation, ast.Starred)
    ):
        yield _Newer(
            since=(3, 11),
            line=node.vararg.lineno,
            col=node.vararg.col_offset,
            what="a starred *args annotation (PEP 646)",
        )
    if (
        isinstance(node, (ast.For, ast.AsyncFor))
        and isinstance(node.iter, ast.Tuple)
        and any(isinstance(e, ast.Starred) for e in node.iter.elts)
        and _segment_char(lines, node.iter.lineno, node.iter.col_offset) != "("
    ):
        yield _Newer(
            since=(3, 9), line=line, col=col, what="an unparenthesised starred for iterable"
        )
    if (
        isinstance(node, ast.ExceptHandler)
        and isinstance(node.type, ast.Tuple)
        and (_segment_char(lines, node.type.lineno, node.type.col_offset) != "(")
    ):
        yield _Newer(since=(3, 14), line=line, col=col, what="except without parentheses (PEP 758)")
    template = getattr(ast, "TemplateStr", None)
    if template is not None and isinstance(node, template):
        yield _Newer(since=(3, 14), line=line, col=col, what="a template string (PEP 750)")
    if isinstance(node, ast.JoinedStr) and RUNNING >= (3, 12) and target < (3, 12):
        found = _pep701(node, lines, target)
        if found is not None:
            yield found


def _parenthesised_with(node: ast.With | ast.AsyncWith, lines: Sequence[str]) -> Iterator[_Newer]:
    """``with (a as b, c):``: parentheses around the items themselves (3.9)."""
    first = node.items[0].context_expr
    text = lines[node.lineno - 1] if 0 < node.lineno <= len(lines) else ""
    raw = text.encode("utf-8")
    head = raw[node.col_offset :].lstrip()
    head = head.removeprefix(b"async").lstrip().removeprefix(b"with").lstrip()
    if not head.startswith(b"("):
        return
    paren_col = len(raw) - len(head)
    if first.lineno == node.lineno and first.col_offset <= paren_col:
        return  # the parenthesis belongs to the first expression: ``with (f)(x) as b:``
    if not _parens_enclose_items(lines, node.lineno, paren_col):
        return  # ``with (a) as b:``: the parenthesis closes before the items end
    # Without any "as", 3.8 reads the parentheses as a tuple: valid syntax; with
    # one, its parser stops at that "as".
    named = next((item.optional_vars for item in node.items if item.optional_vars), None)
    if named is not None:
        yield _Newer(
            since=(3, 9),
            line=named.lineno,
            col=named.col_offset,
            what="parenthesised context managers",
        )


def _parens_enclose_items(lines: Sequence[str], line: int, col: int) -> bool:
    """Whether the parenthesis at (line, col) closes right before the with statement's ':'."""
    chunk = [ln.encode("utf-8") for ln in lines[line - 1 :]]
    chunk[0] = chunk[0][col:]
    text = b"\n".join(chunk).decode("utf-8", "replace")
    depth = 0
    closed = False
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in _LAYOUT:
                continue
            if closed:
                return tok.string == ":"
            if tok.type == tokenize.OP and tok.string in "([{":
                depth += 1
            elif tok.type == tokenize.OP and tok.string in ")]}":
                depth -= 1
                closed = depth == 0
    except (tokenize.TokenError, SyntaxError):
        return True
    return True


_STRING_NEXT = re.compile(r"\s*[rRbBuUfF]{0,2}['\"]")


def _pep701(node: ast.JoinedStr, lines: Sequence[str], target: tuple[int, int]) -> _Newer | None:
    """Quotes, backslashes or comments inside an f-string's replacement fields (3.12)."""
    end = getattr(node, "end_lineno", None) or node.lineno
    chunk = "\n".join(lines[node.lineno - 1 : end]).encode("utf-8")
    last = len(lines[end - 1].encode("utf-8")) if 0 < end <= len(lines) else 0
    stop = len(chunk) - (last - (node.end_col_offset or 0))
    text = chunk[node.col_offset : stop].decode("utf-8", "replace")

    def newer(what: str, message: str) -> _Newer:
        return _Newer(
            since=(3, 12), line=node.lineno, col=node.col_offset, what=what, message=message
        )

    i = 0
    while i < len(text):
        m = re.match(r"([rRbBuUfF]*)('\'\'|\"\"\"|'|\")", text[i:])
        if m is None:
            i += 1
            continue
        prefix, quote = m.group(1).lower(), m.group(2)
        i += m.end()
        # Frames of the replacement fields open at i: [kind, open brackets].
        frames: list[tuple[str, list[str]]] = []
        while i < len(text):
            c = text[i]
            if not frames:
                if c == "\\" and "r" not in prefix:
                    i += 2
                    continue
                if text.startswith(quote, i):
                    i += len(quote)
                    break
                if "f" in prefix and c == "{":
                    if text.startswith("{{", i):
                        i += 2
                        continue
                    frames.append(("expr", []))
                i += 1
                continue
            kind, brackets = frames[-1]
            if text.startswith(quote, i):
                if brackets:
                    msg = (
                        "invalid syntax"
                        if target < (3, 9)
                        else (f"f-string: unmatched '{brackets[-1]}'")
                    )
                else:
                    msg = "f-string: expecting '}'"
                if target < (3, 9) and not _STRING_NEXT.match(text, i + len(quote)):
                    # 3.8 parsed the tokens before an f-string's contents: unless a string
                    # literal continues after the early closing quote, that parse fails.
                    msg = "invalid syntax"
                return newer("a quote reused inside an f-string expression (PEP 701)", msg)
            if kind == "spec":
                if c == "{":
                    frames.append(("expr", []))
                elif c == "}":
                    frames.pop()
                i += 1
                continue
            if c == "\\":
                return newer(
                    "a backslash inside an f-string expression (PEP 701)",
                    "f-string expression part cannot include a backslash",
                )
            if c == "#":
                return newer(
                    "a comment inside an f-string expression (PEP 701)",
                    "f-string expression part cannot include '#'",
                )
            if c in "([{":
                brackets.append(c)
            elif c in ")]}" and brackets:
                brackets.pop()
            elif c == "}":
                frames.pop()
            elif c == ":" and not brackets:
                frames[-1] = ("spec", [])
            elif c in "'\"":
                # a string of the other quote kind inside the field: skip it whole (a
                # backslash in it is still a backslash in the expression part)
                j = text.find(c, i + 1)
                if j > i and "\\" in text[i:j]:
                    return newer(
                        "a backslash inside an f-string expression (PEP 701)",
                        "f-string expression part cannot include a backslash",
                    )
                i = j if j > i else i
            i += 1
    return None
