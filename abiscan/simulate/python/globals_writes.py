"""Writes through ``globals()`` that can only bind names with a known prefix.

A module that writes into ``globals()`` may bind any name, so abiscan treats its
namespace as open: ``from m import x`` is never a certain error. Many such writes
copy constants from an extension under a guard on the name, as psutil does::

    _globals = globals()
    for _name in dir(_psplatform.cext):
        if _name.startswith('RLIM') and _name.isupper():
            _globals[_name] = getattr(_psplatform.cext, _name)

Every name bound there starts with ``RLIM``. :func:`prefix_guarded_globals` finds
the ``globals()`` calls whose every write is guarded like this, and the prefixes;
the namespace is then open for those prefixes only, and ``from psutil import
_psutil_aix`` is the import system's ``cannot import name``, as on CPython.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from abiscan.records import record

__all__ = ["GuardedGlobals", "prefix_guarded_globals"]


@record
class GuardedGlobals:
    """The ``globals()`` calls (by node id) whose writes all bind prefixed names."""

    calls: frozenset[int]
    prefixes: tuple[str, ...]


_NONE = GuardedGlobals(calls=frozenset(), prefixes=())


def prefix_guarded_globals(tree: ast.Module) -> GuardedGlobals:
    """The module-level ``globals()`` calls of ``tree`` that bind only names with known
    prefixes: each is stored into one name (or subscripted directly) and every write
    through it, ``g[k] = v``, sits in the body of an ``if`` whose test requires
    ``k.startswith(<constant>)``. Any other use of such a call leaves it out."""
    parents = {
        id(child): node for node in _module_level(tree) for child in ast.iter_child_nodes(node)
    }
    calls: set[int] = set()
    prefixes: list[str] = []
    for node in _module_level(tree):
        if not (isinstance(node, ast.Call) and _is_globals(node)):
            continue
        found = _prefixes_of(tree, node, parents)
        if found is None:
            return _NONE  # one unguarded write opens the namespace anyway
        calls.add(id(node))
        prefixes.extend(p for p in found if p not in prefixes)
    return GuardedGlobals(calls=frozenset(calls), prefixes=tuple(prefixes)) if calls else _NONE


def _module_level(tree: ast.Module) -> Iterator[ast.AST]:
    """The nodes that run at import time: not inside functions, lambdas or classes."""
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
            ):
                todo.append(child)


def _is_globals(call: ast.Call) -> bool:
    func = call.func
    return isinstance(func, ast.Name) and func.id == "globals" and not call.args


def _prefixes_of(tree: ast.Module, call: ast.Call, parents: dict[int, ast.AST]) -> list[str] | None:
    """The prefixes the writes through ``call`` are guarded by (None: not all are)."""
    parent = parents.get(id(call))
    if isinstance(parent, ast.Subscript) and parent.value is call:
        return _write_prefixes(parent, parents)
    if not (
        isinstance(parent, ast.Assign)
        and len(parent.targets) == 1
        and isinstance(parent.targets[0], ast.Name)
    ):
        return None
    alias = parent.targets[0].id
    out: list[str] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Name) and node.id == alias) or node is parent.targets[0]:
            continue
        use = parents.get(id(node))
        if isinstance(node.ctx, ast.Del) and isinstance(use, ast.Delete):
            continue
        if not isinstance(use, ast.Subscript) or use.value is not node:
            return None  # read, passed on, rebound, or used inside a function
        found = _write_prefixes(use, parents)
        if found is None:
            return None
        out.extend(found)
    return out


def _write_prefixes(sub: ast.Subscript, parents: dict[int, ast.AST]) -> list[str] | None:
    """For ``g[k] = v``: the prefixes an enclosing ``if`` requires of ``k``."""
    stmt = parents.get(id(sub))
    if not (
        isinstance(sub.ctx, ast.Store)
        and isinstance(stmt, ast.Assign)
        and isinstance(sub.slice, ast.Name)
    ):
        return None
    key = sub.slice.id
    child: ast.AST = stmt
    node = parents.get(id(stmt))
    while node is not None:
        if isinstance(node, ast.If) and any(c is child for c in node.body):
            found = _required_prefixes(node.test, key)
            if found:
                return found
        child, node = node, parents.get(id(node))
    return None


def _required_prefixes(test: ast.expr, key: str) -> list[str]:
    """The prefixes ``test`` requires ``key`` to start with (a conjunct
    ``key.startswith("P")`` or ``key.startswith(("P", "Q"))``)."""
    is_and = isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And)
    conjuncts = test.values if isinstance(test, ast.BoolOp) and is_and else [test]
    for c in conjuncts:
        if not (
            isinstance(c, ast.Call)
            and isinstance(c.func, ast.Attribute)
            and c.func.attr == "startswith"
            and isinstance(c.func.value, ast.Name)
            and c.func.value.id == key
            and len(c.args) == 1
            and not c.keywords
        ):
            continue
        arg = c.args[0]
        values = arg.elts if isinstance(arg, ast.Tuple) else [arg]
        texts = [v.value for v in values if isinstance(v, ast.Constant)]
        if texts and len(texts) == len(values) and all(isinstance(t, str) and t for t in texts):
            return [str(t) for t in texts]
    return []
