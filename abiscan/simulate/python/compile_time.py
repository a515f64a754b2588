"""SyntaxErrors the compiler raises in a source the parser accepted.

Importing a source compiles it (importlib's ``source_to_code``:
``compile(source, path, "exec", dont_inherit=True)``), and the compiler's
passes after the parser, the symbol table and the code generator, raise
SyntaxErrors of their own that ``ast.parse`` never sees: ``return`` outside a
function, ``break`` outside a loop, a duplicate argument, ``nonlocal`` at module
level, ``global`` after a use, ``import *`` in a function, ``from __future__``
after other statements, ``await`` outside an async function, and more. Such a
module fails to import before any of its lines runs.

:func:`compile_error` compiles the parsed tree with the running interpreter's
compiler (compiling runs nothing) and words the error for the target where
CPython 3.8 to 3.13 are known to differ (each difference was found by compiling
the same sources with all six; the differential tests check them against the
real interpreters):

* wording: 3.8 said ``two starred expressions in assignment`` and
  ``keyword argument repeated`` (without the name);
* line: 3.8 and 3.9 report ``import *`` in a function or class at its ``def``
  or ``class`` line, an asynchronous comprehension outside an async function
  at line 0, and a bare ``except:`` that is not last at the last line the
  compiler had reached before it;
* errors only some versions raise: ``del __debug__`` (3.10 and later), more
  than 20 statically nested blocks (up to 3.12). When the running compiler
  stops at one of these and the target would not, whether the rest of the
  source compiles on the target is unknown, and the verdict says so.

An error the running compiler does not raise is not predicted: a target
running an older compiler than abiscan's (nesting limit of 3.12 and earlier,
when abiscan runs on 3.13) is the one known case.
"""

from __future__ import annotations

import ast
import re
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from abiscan.simulate.python.syntax_verdict import SyntaxVerdict, syntax_error

__all__ = ["compile_error", "source_warnings_ignored"]

RUNNING = (sys.version_info[0], sys.version_info[1])


# Messages compiled from the same sources by CPython 3.8 to 3.13: the same words
# (the differences are the rules below).
_SAME_WORDING = re.compile(
    r"'(return|break|await|yield|yield from)' (outside function|outside loop|outside async "
    r"function|inside async function|inside list comprehension|inside set comprehension"
    r"|inside dict comprehension|inside generator expression)"
    r"|'continue' not properly in loop"
    r"|duplicate argument '.*' in function definition"
    r"|nonlocal declaration not allowed at module level"
    r"|no binding for nonlocal '.*' found"
    r"|name '.*' is (assigned to|used prior to|parameter and) (before global declaration"
    r"|global declaration|global|nonlocal|before nonlocal declaration|nonlocal declaration)"
    r"|annotated name '.*' can't be (global|nonlocal)"
    r"|import \* only allowed at module level"
    r"|from __future__ imports must occur at the beginning of the file"
    r"|future feature .* is not defined"
    r"|starred assignment target must be in a list or tuple"
    r"|can't use starred expression here"
    r"|'return' with value in async generator"
    r"|asynchronous comprehension outside of an asynchronous function"
    r"|assignment expression .*"
    r"|default 'except:' must be last"
    r"|cannot assign to __debug__"
    r"|name capture '.*' makes remaining patterns unreachable"
)
_STARS = "multiple starred expressions in assignment"
_REPEATED = re.compile(r"keyword argument repeated: .*")
# Worded differently by 3.8 (:func:`_old_wording`), each wording known.
_REWORDED = re.compile(
    r"(multiple|two) starred expressions in assignment|keyword argument repeated(: .*)?"
)
_STAR_IMPORT = "import * only allowed at module level"
_ASYNC_COMP = "asynchronous comprehension outside of an asynchronous function"
_BARE_EXCEPT = "default 'except:' must be last"
# (message, first version that raises it, first version that no longer does)
_SOME_VERSIONS = (
    ("cannot delete __debug__", (3, 10), (99, 0)),
    ("too many statically nested blocks", (3, 0), (3, 13)),
)
# The filters are the process's: one scan's thread at a time changes them.
_WARNINGS = threading.Lock()


@contextmanager
def source_warnings_ignored() -> Iterator[None]:
    """Parse or compile a scanned source with its warnings ignored: what the parser and
    the compiler warn of (invalid escapes, ``is`` with a literal) is the source's
    business, must not reach the caller's stderr, and under ``-W error`` would
    be raised as a SyntaxError the target never raises. The filters are the
    process's, so another thread's warnings are ignored meanwhile too."""
    with _WARNINGS, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def compile_error(
    tree: ast.Module, filename: str, target: tuple[int, int]
) -> SyntaxVerdict | None:
    """The verdict on the SyntaxError compiling ``tree`` (parsed from ``filename``)
    raises on the target, or None when it compiles. RecursionError and MemoryError
    propagate, as from ``ast.parse``."""
    try:
        with source_warnings_ignored():
            compile(tree, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        return _for_target(exc, tree, filename, target)
    except (ValueError, TypeError) as exc:  # a tree the compiler refuses: never seen
        return SyntaxVerdict(
            error=None,
            line=None,
            unknown=f"the parsed source does not compile: {type(exc).__name__}: {exc}",
            stage="compile",
        )
    return None


def _for_target(
    exc: SyntaxError, tree: ast.Module, filename: str, target: tuple[int, int]
) -> SyntaxVerdict:
    msg, line = exc.msg, exc.lineno
    why = f"{msg} (compiled by CPython {RUNNING[0]}.{RUNNING[1]})"
    bound = [(since, until) for text, since, until in _SOME_VERSIONS if text == msg]
    if target != RUNNING and any(not since <= target < until for since, until in bound):
        return _accepted_by_target(msg, line, target, why)
    exact = True
    if target != RUNNING:
        if target < (3, 10):
            line = _old_line(msg, line, tree)
        if target < (3, 9):
            msg = _old_wording(msg)
        # Raised by some versions only, those say it in the same words.
        exact = bool(bound) or any(p.fullmatch(msg) for p in (_SAME_WORDING, _REWORDED))
    return SyntaxVerdict(
        error=syntax_error("SyntaxError", msg, line, filename),
        line=line,
        exact=exact,
        why=why,
        stage="compile",
    )


def _accepted_by_target(
    msg: str, line: int | None, target: tuple[int, int], why: str
) -> SyntaxVerdict:
    """The running compiler stopped at an error the target does not raise: what comes
    after it was never compiled, so the outcome is unknown."""
    return SyntaxVerdict(
        error=None,
        line=line,
        exact=False,
        why=why,
        unknown=(
            f"the compiler of CPython {RUNNING[0]}.{RUNNING[1]}, which runs abiscan, stops at "
            f"line {line} ({msg}), which CPython {target[0]}.{target[1]} accepts: whether the "
            f"rest compiles there is not known; run abiscan on CPython {target[0]}.{target[1]} "
            "to know"
        ),
        stage="compile",
    )


def _old_wording(msg: str) -> str:
    if msg == _STARS:
        return "two starred expressions in assignment"
    if _REPEATED.fullmatch(msg):
        return "keyword argument repeated"
    return msg


def _old_line(msg: str, line: int | None, tree: ast.Module) -> int | None:
    """Where CPython 3.8 and 3.9 report an error CPython 3.10 reports at ``line``."""
    if line is None:
        return None
    if msg == _ASYNC_COMP:
        return 0  # raised before the comprehension's own code had a line
    if msg == _STAR_IMPORT:
        scope = _scope_of_star_import(tree, line)
        return scope.lineno if scope is not None else line
    if msg == _BARE_EXCEPT:
        before = _reached_before_bare_except(tree, line)
        return before if before is not None else line
    return line


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _scope_of_star_import(tree: ast.Module, line: int) -> ast.stmt | None:
    """The innermost ``def`` or ``class`` holding a star import on ``line``: 3.8 and
    3.9 raised the error at the start of that scope's symbol table."""

    def search(body: list[ast.stmt], scope: ast.stmt | None) -> ast.stmt | None:
        for node in body:
            if (
                isinstance(node, ast.ImportFrom)
                and node.lineno == line
                and any(a.name == "*" for a in node.names)
            ):
                return scope
            inner = scope
            if isinstance(node, _SCOPES):
                inner = node
            for block in _blocks(node):
                found = search(block, inner)
                if found is not None:
                    return found
        return None

    return search(tree.body, None)


def _blocks(node: ast.stmt) -> list[list[ast.stmt]]:
    """The statement lists directly inside ``node`` (a statement's fields that hold
    statements, and its ``except`` clauses' and ``case``s' bodies)."""
    out: list[list[ast.stmt]] = [
        block for name in ("body", "orelse", "finalbody") if (block := getattr(node, name, None))
    ]
    out.extend(h.body for h in getattr(node, "handlers", ()))
    out.extend(c.body for c in getattr(node, "cases", ()))
    return out


def _reached_before_bare_except(tree: ast.Module, line: int) -> int | None:
    """The last line CPython 3.8 and 3.9 had compiled when they met a bare ``except:``
    that is not last: the greatest line of the statements of the ``try`` body and of
    the handlers before it, the bodies of nested functions and classes left out
    (each is compiled on its own)."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        for i, handler in enumerate(node.handlers[:-1]):
            if handler.type is None and handler.lineno == line:
                seen: list[ast.stmt | ast.excepthandler] = [*node.body, *node.handlers[:i]]
                return max((_last_line(n) for n in seen), default=None)
    return None


def _last_line(node: ast.stmt | ast.excepthandler) -> int:
    """The greatest line of a statement in ``node`` (itself included) outside nested
    scopes: a statement sets the compiler's line; a constant expression folded by
    the AST optimiser sets none, so expressions are left out."""
    best = node.lineno
    todo: list[ast.stmt] = []
    if isinstance(node, ast.ExceptHandler):
        todo.extend(node.body)
    elif isinstance(node, ast.stmt) and not isinstance(node, _SCOPES):
        todo.extend(s for block in _blocks(node) for s in block)
    while todo:
        current = todo.pop()
        best = max(best, current.lineno)
        if not isinstance(current, _SCOPES):
            todo.extend(s for block in _blocks(current) for s in block)
    return best
