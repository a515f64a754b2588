"""Import-time errors from the target Python's runtime API, found in a module's source.

Code that runs while a module is imported (the module body, class bodies,
decorators, default values, and the annotations of module and class
variables and of function signatures unless ``from __future__ import
annotations``) can use runtime features an older (or newer) CPython lacks.
Each is decided from ``data/runtime_api.json``, generated from the real
interpreters by ``tools/gen_runtime_api.py``, with the exact message:

* subscripting a class that the target cannot subscript (``list[int]`` and
  ``collections.abc.Mapping[str, int]`` on 3.8: PEP 585);
* ``|`` between classes (``int | None`` on 3.8 and 3.9: PEP 604), where the
  operands' types are known (stdlib and builtin classes, ``None``, classes
  the module defines, ``typing`` objects and subscripted classes);
* ``dataclass()`` and ``field()`` keyword arguments the target does not
  accept (``slots=``, ``kw_only=`` before 3.10; ``weakref_slot=`` before 3.11);
* names imported from, or read as attributes of, a standard-library module
  that the target's version lacks (``from typing import Self`` before 3.11,
  ``from collections import Mapping`` from 3.10 on), and builtins it lacks
  (``class E(ExceptionGroup)`` before 3.11: ``NameError``).

Only what the source fixes is predicted: a name bound on a branch the target
may or may not take, a class from another module, a module whose names depend
on how the interpreter was built (``os``, ``socket``, ``sys``...), or a name
whose presence across versions is not one contiguous range, leave the
statement undecided, never an error. The versions the data covers are those
with a local interpreter when it was generated (3.8-3.13); for another
version nothing is predicted.

:class:`RuntimeChecker` is fed each statement the import-graph extractor
walks, in order, and answers with the :class:`RuntimeFailure` that statement
raises on the target, if any.
"""

from __future__ import annotations

import ast
import posixpath
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any, Literal

from abiscan.records import record
from abiscan.target._data import read_json
from abiscan.target.stdlib import stdlib_dir as stdlib_dir  # re-exported; it lives with the stdlib

__all__ = ["RuntimeChecker", "RuntimeFailure", "stdlib_dir", "stdlib_has"]

# Deeper expressions are left undecided (they are machine-made, and the
# checker must not recurse without bound).
_MAX_DEPTH = 100


@record
class RuntimeFailure:
    """The exception one statement raises on the target, and where."""

    line: int
    exc_type: str
    message: str
    # Raised while the statement's header is evaluated, before any block it
    # contains runs (a class's decorators and bases, an ``if`` test).
    before_body: bool
    why: str


@record
class _Value:
    kind: Literal["module", "object", "class", "none", "alias"]
    # module/object: the qualified name (``typing``, ``builtins.list``);
    # class: its metaclass's tp_name (None: unknown); alias: its tp_name.
    name: str | None


_NONE = _Value(kind="none", name=None)


@cache
def _data() -> dict[str, Any]:
    data: dict[str, Any] = read_json("runtime_api.json")
    return data


@cache
def _always(module: str) -> frozenset[str]:
    """The names of stdlib ``module`` that every version the data covers has."""
    return frozenset(_data()["modules"][module]["always"])


def _in_ranges(minor: int, ranges: str) -> bool:
    for part in ranges.split(","):
        low, _, high = part.partition("-")
        if int(low) <= minor <= int(high or low):
            return True
    return False


def _contiguous(ranges: str) -> bool:
    return "," not in ranges


def stdlib_has(module: str, name: str, version: tuple[int, int]) -> bool | None:
    """Whether the stdlib ``module`` of CPython ``version`` has the attribute ``name``
    (``hasattr(typing, "Self")``); None when the data cannot say."""
    key = f"{version[0]}.{version[1]}"
    entry = _data()["modules"].get(module)
    if entry is None or key not in entry["file"] or entry["build_dependent"]:
        return None
    if name in entry["names"]:
        return _in_ranges(version[1], entry["names"][name])
    return True if name in entry["always"] else None


class RuntimeChecker:
    """The runtime-API errors of one module's import-time statements, fed in order."""

    def __init__(self, version: tuple[int, int], stdlib: str | None = None) -> None:
        data = _data()
        self.key = f"{version[0]}.{version[1]}"
        self.minor = version[1]
        self.known = version[0] == 3 and self.key in data["versions"]
        self.runtime: dict[str, Any] = data["runtime"].get(self.key, {})
        self.modules: dict[str, Any] = data["modules"]
        self.classes: dict[str, Any] = data["classes"]
        self.stdlib = stdlib or f"/var/lang/lib/python{self.key}"
        self.names: dict[str, _Value | None] = {}
        self.future_annotations = False
        self.builtins_shadowed = False  # a star import from outside the stdlib

    # -- statements -------------------------------------------------------------

    def statement(self, stmt: ast.stmt, runs: str, in_class: bool) -> RuntimeFailure | None:
        """What ``stmt`` raises on the target (``runs``: "yes", "maybe" or "no")."""
        if not self.known or runs == "no":
            return None
        binder = _Binder(self, certain=runs == "yes" and not in_class)
        try:
            failure = self._statement(stmt, binder)
        except RecursionError:
            return None
        # On a branch the target may not take, the code is nearly always the fallback
        # of a version or hasattr() test abiscan could not decide: the failure it would
        # meet there says nothing about whether the branch runs.
        return failure if runs == "yes" else None

    def _statement(self, s: ast.stmt, bind: _Binder) -> RuntimeFailure | None:
        if isinstance(s, ast.Import):
            for alias in s.names:
                if alias.asname:
                    bind(alias.asname, self._module_value(alias.name))
                else:
                    top = alias.name.partition(".")[0]
                    bind(top, self._module_value(top))
            return None
        if isinstance(s, ast.ImportFrom):
            return self._import_from(s, bind)
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
            failure = self._first(s, self._function_header(s), before=True)
            bind(s.name, None)
            return failure
        if isinstance(s, ast.ClassDef):
            header = [*s.decorator_list, *s.bases, *(k.value for k in s.keywords)]
            failure = self._first(s, header, before=True)
            bind(s.name, self._class_value(s))
            return failure
        if isinstance(s, ast.Assign):
            failure, value = self._eval(s.value)
            for target in s.targets:
                self._bind_target(target, value if len(s.targets) == 1 else None, bind)
            return self._failure(s, failure, before=False)
        if isinstance(s, ast.AnnAssign):
            exprs: list[ast.expr] = [] if s.value is None else [s.value]
            if not self.future_annotations:
                exprs.append(s.annotation)
            failure = self._first(s, exprs, before=False)
            self._bind_target(s.target, None, bind)
            return failure
        return self._other(s, bind)

    def _other(self, s: ast.stmt, bind: _Binder) -> RuntimeFailure | None:
        header: list[ast.expr] = []
        if isinstance(s, (ast.If, ast.While)):
            header = [s.test]
        elif isinstance(s, (ast.For, ast.AsyncFor)):
            header = [s.iter]
            self._bind_target(s.target, None, bind)
        elif isinstance(s, (ast.With, ast.AsyncWith)):
            header = [item.context_expr for item in s.items]
            for item in s.items:
                if item.optional_vars is not None:
                    self._bind_target(item.optional_vars, None, bind)
        elif isinstance(s, ast.Match):
            header = [s.subject]
        elif isinstance(
            s, (ast.Expr, ast.AugAssign, ast.Raise, ast.Assert, ast.Delete, ast.Return)
        ):
            header = [n for n in ast.iter_child_nodes(s) if isinstance(n, ast.expr)]
            if isinstance(s, ast.AugAssign):
                self._bind_target(s.target, None, bind)
            if isinstance(s, ast.Delete):
                for target in s.targets:
                    self._bind_target(target, None, bind)
        compound = isinstance(
            s, (ast.If, ast.While, ast.For, ast.AsyncFor, ast.With, ast.AsyncWith, ast.Match)
        )
        return self._first(s, header, before=compound)

    def _function_header(self, s: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.expr]:
        """What ``def`` evaluates, in CPython's order: decorators, defaults, annotations."""
        args = s.args
        exprs: list[ast.expr] = [
            *s.decorator_list,
            *args.defaults,
            *(d for d in args.kw_defaults if d is not None),
        ]
        if not self.future_annotations:
            every = [
                *args.posonlyargs,
                *args.args,
                *([args.vararg] if args.vararg else []),
                *args.kwonlyargs,
                *([args.kwarg] if args.kwarg else []),
            ]
            exprs.extend(a.annotation for a in every if a.annotation is not None)
            if s.returns is not None:
                exprs.append(s.returns)
        return exprs

    def _import_from(self, s: ast.ImportFrom, bind: _Binder) -> RuntimeFailure | None:
        module = s.module or ""
        if s.level or module not in self.modules or not self._has_module(module):
            if module == "__future__" and any(a.name == "annotations" for a in s.names):
                self.future_annotations = True
            for alias in s.names:
                if alias.name == "*":
                    self.builtins_shadowed = True
                else:
                    bind(alias.asname or alias.name, None)
            return None
        failure: RuntimeFailure | None = None
        for alias in s.names:
            if alias.name == "*":
                continue
            full = f"{module}.{alias.name}"
            if alias.name in self.modules[module].get("submodules", ()):
                # A submodule the data lists but does not record (http.cookies) is
                # bound as unknown: only recorded modules have names to check.
                bind(alias.asname or alias.name, self._module_value(full))
                continue
            if failure is None and (
                self._lacks(module, alias.name) or self._never(module, alias.name)
            ):
                location = self._location(module)
                message = self.runtime["missing_name"].format(
                    name=alias.name, module=module, location=location
                )
                failure = RuntimeFailure(
                    line=s.lineno,
                    exc_type="ImportError",
                    message=message,
                    before_body=False,
                    why=self._why_missing(module, alias.name),
                )
            bind(alias.asname or alias.name, _Value(kind="object", name=full))
        return failure

    # -- names ------------------------------------------------------------------

    def _module_value(self, name: str) -> _Value | None:
        return _Value(kind="module", name=name) if name in self.modules else None

    def _has_module(self, module: str) -> bool:
        return self.key in self.modules[module]["file"]

    def _names(self, module: str) -> tuple[Iterable[str], Mapping[str, str]]:
        entry = self.modules[module]
        return entry["always"], entry["names"]

    def _has(self, module: str, name: str) -> bool | None:
        """Whether the target's ``module`` has ``name``; None when the data cannot say."""
        always, varying = self._names(module)
        if name in varying:
            return _in_ranges(self.minor, varying[name])
        return True if name in always else None

    def _lacks(self, module: str, name: str) -> bool:
        """The target surely lacks it: the versions that have it are one contiguous run
        without the target, in a module whose names do not depend on the build."""
        entry = self.modules[module]
        ranges = entry["names"].get(name)
        return (
            not entry["build_dependent"]
            and ranges is not None
            and _contiguous(ranges)
            and not _in_ranges(self.minor, ranges)
        )

    def _never(self, module: str, name: str) -> bool:
        """No version the data covers has it (the data is Linux's: ``builtins.WindowsError``,
        ``ctypes.windll``), in a module whose names do not depend on the build and that
        serves no names through a module ``__getattr__`` (dir() would not list them).
        Dunders and submodules are left alone: an import elsewhere may bind them."""
        entry = self.modules[module]
        varying = entry["names"]
        return not (
            entry["build_dependent"]
            or name.startswith("__")
            or name in varying
            or "__getattr__" in varying
            or name in entry.get("submodules", ())
            or name in _always(module)
            or "__getattr__" in _always(module)
        )

    def _why_missing(self, module: str, name: str) -> str:
        if name in self.modules[module]["names"]:
            return f"{module}.{name} exists on CPython {self._where(module, name)} only"
        versions = sorted(_data()["versions"], key=lambda v: tuple(map(int, v.split("."))))
        return f"no CPython {versions[0]} to {versions[-1]} on Linux has {module}.{name}"

    def _where(self, module: str, name: str) -> str:
        ranges = self.modules[module]["names"][name]
        return ", ".join(f"3.{p}" for p in ranges.split(","))

    def _location(self, module: str) -> str:
        rel = self.modules[module]["file"].get(self.key)
        return "unknown location" if rel is None else posixpath.join(self.stdlib, rel)

    def lookup(self, name: str) -> _Value | None:
        if name in self.names:
            return self.names[name]
        if self.builtins_shadowed:
            return None
        if self._has("builtins", name):
            return _Value(kind="object", name=f"builtins.{name}")
        return None

    def _bind_target(self, target: ast.expr, value: _Value | None, bind: _Binder) -> None:
        if isinstance(target, ast.Name):
            bind(target.id, value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for e in target.elts:
                self._bind_target(e, None, bind)
        elif isinstance(target, ast.Starred):
            self._bind_target(target.value, None, bind)

    def _class_value(self, s: ast.ClassDef) -> _Value:
        """A class the module defines, with its metaclass's name when its bases fix it."""
        if s.keywords:
            return _Value(kind="class", name=None)
        metas = set()
        for base in s.bases:
            _, value = self._eval(base)
            metas.add(self._tp_name(value))
        metas.discard("type")
        if not metas:
            return _Value(kind="class", name="type")
        return _Value(
            kind="class", name=metas.pop() if len(metas) == 1 and None not in metas else None
        )

    # -- expressions ------------------------------------------------------------

    def _first(
        self, s: ast.stmt, exprs: Iterable[ast.expr], *, before: bool
    ) -> RuntimeFailure | None:
        for expr in exprs:
            failure, _ = self._eval(expr)
            if failure is not None:
                return self._failure(s, failure, before=before)
        return None

    @staticmethod
    def _failure(
        s: ast.stmt, failure: RuntimeFailure | None, *, before: bool
    ) -> RuntimeFailure | None:
        if failure is None:
            return None
        return RuntimeFailure(
            line=failure.line or s.lineno,
            exc_type=failure.exc_type,
            message=failure.message,
            before_body=before,
            why=failure.why,
        )

    def _eval(self, node: ast.expr, depth: int = 0) -> tuple[RuntimeFailure | None, _Value | None]:
        """The first failure evaluating ``node`` raises (in CPython's order), or its value."""
        if depth > _MAX_DEPTH:
            return None, None
        if isinstance(node, ast.Name):
            if (
                isinstance(node.ctx, ast.Load)
                and node.id not in self.names
                and not self.builtins_shadowed
                and self._lacks("builtins", node.id)
            ):
                return RuntimeFailure(
                    line=node.lineno,
                    exc_type="NameError",
                    message=f"name '{node.id}' is not defined",
                    before_body=False,
                    why=f"the builtin {node.id} exists on CPython "
                    f"{self._where('builtins', node.id)} only",
                ), None
            return None, self.lookup(node.id)
        if isinstance(node, ast.Constant):
            return None, _NONE if node.value is None else None
        if isinstance(
            node,
            (
                ast.Lambda,
                ast.IfExp,
                ast.BoolOp,
                ast.ListComp,
                ast.SetComp,
                ast.DictComp,
                ast.GeneratorExp,
            ),
        ):
            # Only the part that always runs; the rest depends on values.
            first = _always_evaluated(node)
            return (self._eval(first, depth + 1)[0] if first is not None else None), None
        if isinstance(node, ast.Attribute):
            failure, value = self._eval(node.value, depth + 1)
            return (failure, None) if failure else self._attribute(node, value)
        if isinstance(node, ast.Subscript):
            failure, value = self._eval(node.value, depth + 1)
            failure = failure or self._eval(node.slice, depth + 1)[0]
            return (failure, None) if failure else self._subscript(node, value)
        if isinstance(node, ast.BinOp):
            failure, left = self._eval(node.left, depth + 1)
            if failure:
                return failure, None
            failure, right = self._eval(node.right, depth + 1)
            if failure or not isinstance(node.op, ast.BitOr):
                return failure, None
            return self._union(node, left, right), None
        if isinstance(node, ast.Call):
            failure, func = self._eval(node.func, depth + 1)
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                failure = failure or self._eval(arg, depth + 1)[0]
            return failure or self._call(node, func), None
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                failure, _ = self._eval(child, depth + 1)
                if failure is not None:
                    return failure, None
        return None, None

    def _attribute(
        self, node: ast.Attribute, value: _Value | None
    ) -> tuple[RuntimeFailure | None, _Value | None]:
        if value is None or value.kind != "module" or value.name is None:
            return None, None
        module, attr = value.name, node.attr
        full = f"{module}.{attr}"
        if attr in self.modules[module].get("submodules", ()):
            return None, self._module_value(full)
        if self._lacks(module, attr) or self._never(module, attr):
            return RuntimeFailure(
                line=node.lineno,
                exc_type="AttributeError",
                message=f"module '{module}' has no attribute '{attr}'",
                before_body=False,
                why=self._why_missing(module, attr),
            ), None
        return None, _Value(kind="object", name=full) if self._has(module, attr) else None

    def _subscript(
        self, node: ast.Subscript, value: _Value | None
    ) -> tuple[RuntimeFailure | None, _Value | None]:
        if value is None or value.kind != "object" or value.name is None:
            return None, None
        entry = self.classes.get(value.name, {})
        ranges = entry.get("subscript")
        if ranges is None:
            return None, None
        if _in_ranges(self.minor, ranges):
            return None, _Value(kind="alias", name=entry.get("alias", {}).get(self.key))
        message = entry.get("subscript_error", {}).get(self.key)
        if message is None:
            return None, None
        return RuntimeFailure(
            line=node.lineno,
            exc_type="TypeError",
            message=message,
            before_body=False,
            why=f"{value.name} can be subscripted on CPython "
            f"{', '.join(f'3.{p}' for p in ranges.split(','))} only",
        ), None

    def _tp_name(self, value: _Value | None) -> str | None:
        """The name CPython's messages give the type of ``value`` on the target."""
        if value is None:
            return None
        if value.kind == "none":
            return str(self.runtime["none"])
        if value.kind in ("class", "alias"):
            return value.name
        if value.kind != "object" or value.name is None:
            return None
        module, _, attr = value.name.rpartition(".")
        entry = self.classes.get(value.name, {})
        if attr in self.modules.get(module, {}).get("classes", ()):
            return str(entry.get("meta", {}).get(self.key, "type"))
        obj = entry.get("object", {}).get(self.key)
        return str(obj) if obj is not None else None

    def _union(
        self, node: ast.BinOp, left: _Value | None, right: _Value | None
    ) -> RuntimeFailure | None:
        if self.runtime.get("union_error") is None:
            return None  # PEP 604: the target's classes support |
        a, b = self._tp_name(left), self._tp_name(right)
        if a is None or b is None:
            return None
        return RuntimeFailure(
            line=node.lineno,
            exc_type="TypeError",
            message=f"unsupported operand type(s) for |: '{a}' and '{b}'",
            before_body=False,
            why=f"| between classes needs CPython 3.10 (PEP 604); the target is {self.key}",
        )

    def _call(self, node: ast.Call, func: _Value | None) -> RuntimeFailure | None:
        if (
            func is None
            or func.kind != "object"
            or func.name not in ("dataclasses.dataclass", "dataclasses.field")
        ):
            return None
        refused = self.runtime["dataclasses"].get(func.name.rpartition(".")[2], {})
        for keyword in node.keywords:
            if keyword.arg in refused:
                return RuntimeFailure(
                    line=node.lineno,
                    exc_type="TypeError",
                    message=refused[keyword.arg],
                    before_body=False,
                    why=f"{func.name}() has no keyword argument {keyword.arg!r} on CPython "
                    f"{self.key}",
                )
        return None


class _Binder:
    """Binds a module-level name to what it holds, or to "unknown" when the binding may
    not happen (a branch the target may skip) or happens in a class body."""

    def __init__(self, checker: RuntimeChecker, *, certain: bool) -> None:
        self._checker = checker
        self._certain = certain

    def __call__(self, name: str, value: _Value | None) -> None:
        self._checker.names[name] = value if self._certain else None


def _always_evaluated(node: ast.expr) -> ast.expr | None:
    if isinstance(node, ast.IfExp):
        return node.test
    if isinstance(node, ast.BoolOp):
        return node.values[0]
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
        return node.generators[0].iter
    return None
