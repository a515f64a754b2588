"""The expression evaluator of import-time code: values are known constants or unknown.

:mod:`abiscan.simulate.python.propagation` runs each module's import-time
program (:mod:`abiscan.simulate.python.import_graph`) statement by statement;
this module gives the value of one expression in that run, from

* what the target fixes (:class:`TargetFacts`: ``sys.version_info``,
  ``sys.platform``, ``os.name``, ``platform.machine()``, ``struct.calcsize("P")``
  and the rest the docs list);
* the names the module has bound so far (a :class:`Namespace`), so that
  ``'x' in globals()`` is false before the first assignment of ``x``;
* names and attributes of the other modules of the stack, by value, through
  :class:`Modules` (``getattr(mod, "x", default)``, ``hasattr``, ``mod.__version__``);
* builtins and methods applied to known values (``len``, ``str.join``,
  ``list.append``, f-strings, ``%`` and ``.format``).

Anything else is :data:`UNKNOWN`. Nothing here runs scanned code: every value
is computed by abiscan's own rules over constants. The one way evaluation
reaches outside is :meth:`Modules.import_module`, for ``__import__(name)``
with a computed name, which the simulator carries out (and may raise from).
"""

from __future__ import annotations

import ast
import builtins
import functools
import itertools
import json
import operator
import posixpath
import re
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from abiscan.errors import AbiscanError
from abiscan.records import record
from abiscan.simulate.python.grammar import child_nodes
from abiscan.simulate.python.import_graph import Guard, catches

__all__ = [
    "LAMBDA_ENVIRONMENT",
    "MAYBE",
    "MISSING",
    "MODULE_DUNDERS",
    "UNKNOWN",
    "ClassRef",
    "EvalRaise",
    "Evaluator",
    "ExcValue",
    "Function",
    "ModuleRef",
    "Modules",
    "NameReads",
    "Namespace",
    "OneOf",
    "Opaque",
    "Probe",
    "SysModules",
    "TargetFacts",
    "Unordered",
    "VersionInfo",
    "truth",
]


class _Unknown:
    """A value abiscan cannot know statically."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown>"


class _Missing:
    """An attribute a module is known not to have (``getattr`` takes its default)."""

    def __repr__(self) -> str:
        return "<missing>"


class _Maybe:
    """A name bound on one side of an undecided branch only: perhaps bound."""

    def __repr__(self) -> str:
        return "<maybe bound>"


UNKNOWN: Any = _Unknown()
MISSING: Any = _Missing()
MAYBE: Any = _Maybe()


@record
class ModuleRef:
    """A module object, by name."""

    name: str


@record
class ClassRef:
    """A class known by name (a builtin exception class, mostly)."""

    name: str


@record
class ExcValue:
    """An exception instance: ``str(e)`` is its message when known."""

    type: str
    message: Any  # str, or UNKNOWN
    # ``e.name`` of an ImportError: the module the import system names (None when
    # scanned code raised it with a message only), or UNKNOWN.
    name: Any = UNKNOWN


@record
class Unordered:
    """What ``os.listdir`` returns: the entries are known, their order is not (it is the
    file system's). Filtering keeps it unordered; ``sorted`` and ``len`` are exact."""

    items: tuple[Any, ...]


@record
class OneOf:
    """One of a few known constants, which one not known: a name the two sides of an
    undecided ``if`` bind to different constants (sympy's ``_SYMPY_GROUND_TYPES``, set to
    ``'gmpy'`` or ``'python'`` after a probe abiscan cannot decide). It lives in a
    :class:`Namespace` only: an expression that reads it is evaluated once per
    alternative, and has a value where they agree (see :meth:`Evaluator.eval`)."""

    options: tuple[Any, ...]


@record
class Opaque:
    """Something that exists and is true (a function, a class, ``object()``), contents unknown."""

    what: str


@dataclass(frozen=True, eq=False)
class Function:
    """A module-level function small enough to run when called at import time
    (``import_graph`` keeps the ``def`` of those only)."""

    node: ast.FunctionDef
    globals: Namespace  # its module's, live: read when it is called

    @functools.cached_property
    def declared(self) -> frozenset[str]:
        """The names its body declares ``global``: found once per function."""
        return _declared_global(self.node)

    @functools.cached_property
    def local(self) -> frozenset[str]:
        """The names its body assigns and does not declare ``global``, which each call
        keeps local: found once per function, not at each call (a comprehension may
        call it hundreds of times)."""
        assigned = frozenset(
            t.id
            for n in ast.walk(self.node)
            for t in (
                n.targets
                if isinstance(n, ast.Assign)
                else [n.target]
                if isinstance(n, ast.AnnAssign)
                else ()
            )
            if isinstance(t, ast.Name)
        )
        return assigned - self.declared


@record
class VersionInfo:
    """``sys.version_info`` of the target: only (major, minor) are fixed."""

    major: int
    minor: int


@record
class Probe:
    """What a call like ``import_optional_dependency("numexpr")`` returns: unknown, but
    perhaps the module when it imports and None when not. ``test`` is set once it is
    compared (``x is not None``): then it is a bool, true when the module imports iff
    ``importable``."""

    module: str
    test: bool = False
    importable: bool = True


@record
class SysModules:
    """``sys.modules`` at the moment it is read: ``contains(name)`` says whether ``name``
    is in it (None: not known). The simulator provides it; it knows the run's imports."""

    contains: Callable[[str], bool | None]


@record
class _Bool:
    """A value whose truth is known but not the value itself (``x or True``)."""

    value: bool


@record
class _Implementation:
    """``sys.implementation`` of the target."""

    version: tuple[int, int]


@record
class _Globals:
    """What ``globals()`` returns: the namespace being run."""


class EvalRaise(AbiscanError):
    """Evaluating an expression raises this exception on the target (a NameError, ...).

    Control flow inside the evaluator: it never leaves :mod:`abiscan.simulate.python`."""

    def __init__(self, exc_type: str, message: str) -> None:
        super().__init__(f"{exc_type}: {message}")
        self.exc_type = exc_type
        self.message = message


@record
class TargetFacts:
    """What the target interpreter fixes, for the expressions that read it."""

    version: tuple[int, int]
    machine: str = "x86_64"  # platform.machine()
    pointer_size: int = 8
    executable: str | None = None  # sys.executable, where the target fixes it
    # The lowest micro version the runtime may run, and what says so (likely only):
    # decides a test on the micro version where every micro from it on agrees.
    micro_floor: tuple[int, str] | None = None

    def attribute(self, module: str, name: str) -> Any:
        if module == "sys" and name == "version_info":
            return VersionInfo(*self.version)
        if module == "sys" and name == "implementation":
            return _Implementation(version=self.version)
        if module == "sys" and name == "executable" and self.executable is not None:
            return self.executable
        return _FIXED.get((module, name), UNKNOWN)

    def call(self, func: str, args: tuple[Any, ...]) -> Any:
        if func == "platform.machine":
            return self.machine
        if func == "struct.calcsize" and args == ("P",):
            return self.pointer_size
        return _FIXED_CALLS.get(func, UNKNOWN)


_FIXED: dict[tuple[str, str], Any] = {
    ("sys", "platform"): "linux",
    ("os", "name"): "posix",
    ("os", "sep"): "/",
    ("os", "pathsep"): ":",
    ("os", "linesep"): "\n",
    ("sys", "byteorder"): "little",
    ("sys", "maxsize"): 2**63 - 1,
    ("typing", "TYPE_CHECKING"): False,
    ("typing_extensions", "TYPE_CHECKING"): False,
}
# Variables the Lambda runtime sets in every function's environment: set, with a
# value abiscan does not fix (the region, the function's name, the handler, ...).
# https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html
LAMBDA_ENVIRONMENT = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_LOG_FORMAT",
        "AWS_LAMBDA_LOG_LEVEL",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_XRAY_CONTEXT_MISSING",
        "AWS_XRAY_DAEMON_ADDRESS",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
        "LANG",
        "PATH",
        "LD_LIBRARY_PATH",
        "PYTHONPATH",
        "TZ",
    }
)
_FIXED_CALLS: dict[str, Any] = {
    "platform.system": "Linux",
    "platform.python_implementation": "CPython",
    "sys.getdefaultencoding": "utf-8",
}

# Names every module has before its first statement runs.
MODULE_DUNDERS = frozenset(
    {
        "__name__",
        "__doc__",
        "__file__",
        "__spec__",
        "__loader__",
        "__package__",
        "__builtins__",
        "__cached__",
        "__path__",
        "__annotations__",
        "__dict__",
    }
)
_BUILTIN_NAMES = frozenset(dir(builtins))
_NEVER_SHADOWED = frozenset({"isinstance", "issubclass", "getattr", "hasattr", "len"}) | frozenset(
    n
    for n in _BUILTIN_NAMES
    if isinstance(getattr(builtins, n), type) and issubclass(getattr(builtins, n), BaseException)
) - {"BaseExceptionGroup", "ExceptionGroup", "EncodingWarning"}  # not builtins on every target


@dataclass
class Namespace:
    """A module's globals as the run has bound them so far."""

    module: str
    values: dict[str, Any] = field(default_factory=dict)
    # Names assigned from values that rest on an assumption (an environment
    # variable taken as unset), with the assumptions.
    taint: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # A star import from somewhere unknown, or writes through globals(): any
    # name may be bound.
    open: bool = False
    # Names bound where the run does not follow (a function's ``global``): reading
    # one before the run binds it is UNKNOWN, not a NameError.
    declared: frozenset[str] = frozenset()
    # Names bound by ``from ext import attr`` from an extension module, directly or
    # through another module's namespace: name -> (extension module, attr).
    natives: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Names with these prefixes may be bound where the run does not follow (writes
    # through globals() guarded by ``name.startswith(prefix)``).
    prefixes: tuple[str, ...] = ()

    def copy(self) -> Namespace:
        return Namespace(
            module=self.module,
            values={k: _copy(v) for k, v in self.values.items()},
            taint=dict(self.taint),
            open=self.open,
            declared=self.declared,
            natives=dict(self.natives),
            prefixes=self.prefixes,
        )

    def may_bind(self, name: str) -> bool:
        """Whether ``name`` may be bound where the run does not look."""
        return self.open or name in self.declared or name.startswith(self.prefixes)

    def restore(self, saved: Namespace) -> None:
        """Back to a copy taken earlier (the same dict object stays live for readers)."""
        self.values.clear()
        self.values.update(saved.values)
        self.taint = dict(saved.taint)
        self.open = saved.open
        self.natives = dict(saved.natives)

    def merge(self, other: Namespace) -> None:
        """Keep what both paths agree on (two branches, one of which ran)."""
        for name in set(self.values) | set(other.values):
            a, b = self.values.get(name, MISSING), other.values.get(name, MISSING)
            if a is MISSING or b is MISSING:
                self.values[name] = MAYBE
            elif not _same(a, b):
                self.values[name] = one_of((a, b))
        for name, why in other.taint.items():
            self.taint[name] = tuple(dict.fromkeys((*self.taint.get(name, ()), *why)))
        self.open = self.open or other.open
        self.natives = {k: v for k, v in self.natives.items() if other.natives.get(k) == v}


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


_MAX_CHOICES = 8  # alternatives a OneOf keeps; more are UNKNOWN
_MAX_FORKS = 16  # combinations of alternatives one expression is evaluated for


def _choice(value: Any) -> bool:
    """Whether ``value`` may be an alternative of a :class:`OneOf`: an immutable constant."""
    if isinstance(value, tuple):
        return all(_choice(v) for v in value)
    return value is None or isinstance(value, (str, bytes, int, float, bool))


def one_of(values: Iterable[Any]) -> Any:
    """The value that is one of ``values`` (OneOfs among them flattened): the value itself
    where they are all the same, a :class:`OneOf` of a few constants, else UNKNOWN."""
    options: list[Any] = []
    for value in values:
        for option in value.options if isinstance(value, OneOf) else (value,):
            if not _choice(option):
                return UNKNOWN
            if not any(_same(option, o) for o in options):
                options.append(option)
    if len(options) == 1:
        return options[0]
    return OneOf(options=tuple(options)) if 1 < len(options) <= _MAX_CHOICES else UNKNOWN


def _same(a: Any, b: Any) -> bool:
    if a is UNKNOWN or b is UNKNOWN:
        return False
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


class Modules(Protocol):
    """What the evaluator asks the simulator about other modules."""

    def attribute(self, module: str, name: str) -> Any:
        """``module.name``: a value, UNKNOWN, or MISSING when the module lacks it."""

    def import_module(self, name: str) -> ModuleRef:
        """``__import__(name)`` with a computed name; may raise the simulator's exception."""

    def imports(self, name: str) -> bool | None:
        """Whether ``import name`` succeeds (False: it raises an ImportError; None: not known),
        for an import inside a function the evaluator runs."""

    def listdir(self, path: str) -> list[str] | None:
        """``os.listdir(path)`` on the target: the entries, or None when not a directory."""


def truth(value: Any) -> bool | None:
    """``bool(value)``, or None when it is not known."""
    if value is UNKNOWN or value is MISSING or isinstance(value, Probe):
        return None
    if isinstance(value, OneOf):
        truths = {truth(v) for v in value.options}
        return truths.pop() if len(truths) == 1 else None
    if isinstance(value, _Bool):
        return value.value
    if isinstance(value, Unordered):
        return bool(value.items)
    if isinstance(
        value,
        (ModuleRef, ClassRef, Opaque, ExcValue, VersionInfo, _Globals, SysModules, _Implementation),
    ):
        return True
    try:
        return bool(value)
    except Exception:
        return None


_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_MAX_SIZE = 100_000  # longest string or list built; longer ones are UNKNOWN
_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Mod: operator.mod,
    ast.FloorDiv: operator.floordiv,
    ast.Div: operator.truediv,
    ast.BitOr: operator.or_,
    ast.BitAnd: operator.and_,
    ast.BitXor: operator.xor,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.Pow: operator.pow,
}
_CMPOPS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_PLAIN = (str, bytes, int, float, bool, type(None), tuple, list, dict, frozenset, set)
_METHODS: dict[type, frozenset[str]] = {
    str: frozenset(
        {
            "startswith",
            "endswith",
            "split",
            "rsplit",
            "join",
            "replace",
            "strip",
            "lstrip",
            "rstrip",
            "lower",
            "upper",
            "format",
            "partition",
            "rpartition",
            "isdigit",
            "isupper",
            "islower",
            "isidentifier",
            "count",
            "find",
            "splitlines",
            "title",
            "capitalize",
        }
    ),
    tuple: frozenset({"index", "count"}),
    list: frozenset({"append", "extend", "insert", "index", "count", "copy"}),
    dict: frozenset({"get", "keys", "values", "items", "copy", "update", "setdefault"}),
}
_PATH_STRINGS: dict[str, Callable[..., Any]] = {
    "join": posixpath.join,
    "dirname": posixpath.dirname,
    "basename": posixpath.basename,
    "split": posixpath.split,
    "splitext": posixpath.splitext,
    "normpath": posixpath.normpath,
}
_PURE_BUILTINS: dict[str, Callable[..., Any]] = {
    "len": len,
    "str": str,
    "int": int,
    "bool": bool,
    "tuple": tuple,
    "list": list,
    "repr": repr,
    "sorted": sorted,
    "min": min,
    "max": max,
    "abs": abs,
    "any": any,
    "all": all,
    "set": set,
    "frozenset": frozenset,
    "dict": dict,
    "float": float,
    "reversed": lambda x: list(reversed(x)),
    "range": lambda *a: list(range(*a)) if len(range(*a)) <= _MAX_SIZE else UNKNOWN,
}


class Evaluator:
    """Evaluates expressions of one module's import-time code against its namespace."""

    def __init__(self, ns: Namespace, facts: TargetFacts, modules: Modules) -> None:
        self.ns = ns
        self.facts = facts
        self.modules = modules
        # What the last evaluation rested on besides the target's facts (an
        # environment variable taken as unset), for the caller to report.
        self.used: list[str] = []
        # Calls of module functions being run (0: the module body itself).
        self.depth = 0
        # While an expression is evaluated once per alternative of the OneOf values it
        # reads: the alternative each such name stands for in this evaluation.
        self.choice: dict[str, Any] | None = None
        self.nesting = 0  # evaluations in progress: only the outermost one forks

    def eval(self, node: ast.expr) -> Any:
        """The value of ``node`` (UNKNOWN when not known); raises :class:`EvalRaise`.

        An expression that reads names bound to a :class:`OneOf` is evaluated once for
        each combination of their alternatives: its value is theirs where they all agree
        (a test that holds for each, a message all of them build alike), a OneOf where
        they are a few constants, UNKNOWN otherwise."""
        if self.choice is None and not self.nesting:
            names = self._choices_in(node)
            if names:
                return self._fork(node, names)
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            return UNKNOWN
        self.nesting += 1
        try:
            result = method(node)
        except EvalRaise:
            raise
        except (
            ArithmeticError,
            TypeError,
            ValueError,
            KeyError,
            IndexError,
            AttributeError,
            OverflowError,
        ):
            return UNKNOWN  # what would fail on the target too, but not told apart here
        except RecursionError:
            return UNKNOWN  # a chain of thousands of '+': not worth a deeper stack
        finally:
            self.nesting -= 1
        if isinstance(result, (str, list, tuple, bytes)) and len(result) > _MAX_SIZE:
            return UNKNOWN
        return result

    def _choices_in(self, node: ast.expr) -> list[str]:
        """The names ``node`` reads that are bound to a OneOf, when it is evaluated once
        per alternative: it mutates nothing (no list or dict grows more than once)."""
        names = NAME_READS.reads(node)
        if names is None:
            return []
        values = self.ns.values
        return [n for n in names if isinstance(values.get(n), OneOf)]

    def _fork(self, node: ast.expr, names: list[str]) -> Any:
        options = [cast(OneOf, self.ns.values[n]).options for n in names]
        combos = list(itertools.islice(itertools.product(*options), _MAX_FORKS + 1))
        if len(combos) > _MAX_FORKS:
            combos = []  # too many: each name reads as UNKNOWN
        results: list[Any] = []
        raised: list[EvalRaise] = []
        try:
            for combo in combos or [()]:
                self.choice = dict(zip(names, combo, strict=False))
                try:
                    results.append(self.eval(node))
                except EvalRaise as exc:
                    raised.append(exc)
        finally:
            self.choice = None
            self.used[:] = list(dict.fromkeys(self.used))
        if raised:
            first = raised[0]
            if results or any(
                (r.exc_type, r.message) != (first.exc_type, first.message) for r in raised
            ):
                return UNKNOWN  # raises for some alternatives only
            raise first
        return _agreed(results)

    def split(self, test: ast.expr) -> tuple[str, Any, Any] | None:
        """For an undecided test that reads one OneOf name and is decided for each of its
        alternatives: the name, and its value where the test holds and where it does not
        (``if T == 'gmpy': ... elif T == 'python': ... else: raise``)."""
        names = self._choices_in(test)
        if len(names) != 1:
            return None
        name, used = names[0], list(self.used)
        yes: list[Any] = []
        no: list[Any] = []
        try:
            for option in cast(OneOf, self.ns.values[name]).options:
                self.choice = {name: option}
                try:
                    taken = truth(self.eval(test))
                except EvalRaise:
                    taken = None
                if taken is None:
                    return None
                (yes if taken else no).append(option)
        finally:
            self.choice = None
            self.used = used
        return (name, one_of(yes), one_of(no)) if yes and no else None

    # -- names and attributes ----------------------------------------------

    def _Constant(self, node: ast.Constant) -> Any:
        return node.value

    def _Name(self, node: ast.Name) -> Any:
        name = node.id
        if name in self.ns.values:
            self.used.extend(self.ns.taint.get(name, ()))
            value = self.ns.values[name]
            if isinstance(value, OneOf):
                return UNKNOWN if self.choice is None else self.choice.get(name, UNKNOWN)
            return UNKNOWN if value is MAYBE else value
        if name == "__name__":
            return self.ns.module
        if name in _NEVER_SHADOWED and name not in self.ns.declared:
            # Even where a star import or globals() writes may bind any name: packages
            # rebind min or sum (numpy does), never these.
            return _builtin(name)
        if name in MODULE_DUNDERS or self.ns.may_bind(name):
            return UNKNOWN
        if name == "TYPE_CHECKING":
            return UNKNOWN
        if name in _BUILTIN_NAMES:
            return _builtin(name)
        raise EvalRaise("NameError", f"name '{name}' is not defined")

    def _Attribute(self, node: ast.Attribute) -> Any:
        if node.attr == "TYPE_CHECKING":
            return False
        base = self.eval(node.value)
        return self.attribute(base, node.attr)

    def attribute(self, base: Any, name: str) -> Any:
        if base == ModuleRef(name="os") and name == "path":
            return ModuleRef(name="os.path")
        if isinstance(base, ModuleRef):
            fixed = self.facts.attribute(base.name, name)
            if fixed is not UNKNOWN:
                return fixed
            return _settled(self.modules.attribute(base.name, name))
        if isinstance(base, VersionInfo):
            return {"major": base.major, "minor": base.minor}.get(name, UNKNOWN)
        if isinstance(base, ExcValue) and name == "msg":
            return base.message
        if isinstance(base, ExcValue) and name == "name" and base.type in _IMPORT_ERRORS:
            return base.name
        if isinstance(base, _Implementation):
            tag = f"cpython-{base.version[0]}{base.version[1]}"
            return {"name": "cpython", "cache_tag": tag}.get(name, UNKNOWN)
        if isinstance(base, _BuiltinFunc) and name == "__name__":
            return base.name.rpartition(".")[2]
        return UNKNOWN

    def _Subscript(self, node: ast.Subscript) -> Any:
        base = self.eval(node.value)
        index = self.eval(node.slice)
        if isinstance(base, VersionInfo):
            return _version_item(base, index)
        if isinstance(base, _PLAIN) and not isinstance(index, (_Unknown, _Missing)):
            return base[index]  # type: ignore[index]
        return UNKNOWN

    def _Slice(self, node: ast.Slice) -> Any:
        parts = [None if p is None else self.eval(p) for p in (node.lower, node.upper, node.step)]
        if any(p is UNKNOWN for p in parts):
            return UNKNOWN
        return slice(*parts)

    # -- containers and strings --------------------------------------------

    def _Tuple(self, node: ast.Tuple) -> Any:
        items = [self.eval(e) for e in node.elts]
        return UNKNOWN if any(isinstance(e, ast.Starred) for e in node.elts) else tuple(items)

    def _List(self, node: ast.List) -> Any:
        items = [self.eval(e) for e in node.elts]
        return UNKNOWN if any(isinstance(e, ast.Starred) for e in node.elts) else items

    def _Set(self, node: ast.Set) -> Any:
        items = [self.eval(e) for e in node.elts]
        if any(isinstance(e, ast.Starred) for e in node.elts) or not all(map(_hashable, items)):
            return UNKNOWN
        return set(items)

    def _Dict(self, node: ast.Dict) -> Any:
        out: dict[Any, Any] = {}
        for k, v in zip(node.keys, node.values, strict=True):
            if k is None:
                return UNKNOWN
            key = self.eval(k)
            if not _hashable(key):
                return UNKNOWN
            out[key] = self.eval(v)
        return out

    def _ListComp(self, node: ast.ListComp) -> Any:
        return self._comprehension(node.elt, node.generators)

    def _GeneratorExp(self, node: ast.GeneratorExp) -> Any:
        # Consumed where it is built (list.extend, str.join, any): its items, as a list.
        return self._comprehension(node.elt, node.generators)

    def _DictComp(self, node: ast.DictComp) -> Any:
        # scipy's __config__: `{k: _cleanup(v) for k, v in d.items() if v != ''}`.
        pairs = self._comprehension(ast.Tuple([node.key, node.value], ast.Load()), node.generators)
        if not isinstance(pairs, list) or any(UNKNOWN in pair for pair in pairs):
            return UNKNOWN
        return dict(pairs)

    def _comprehension(self, elt: ast.expr, generators: list[ast.comprehension]) -> Any:
        gen = generators[0]
        names = _target_names(gen.target)
        if len(generators) != 1 or gen.is_async or names is None:
            return UNKNOWN
        items = self.eval(gen.iter)
        unordered = isinstance(items, Unordered)
        if isinstance(items, Unordered):
            items = list(items.items)
        elif isinstance(items, (list, tuple, str, dict, *_DICT_VIEWS)):
            items = list(cast(Iterable[Any], items))
        else:
            items = UNKNOWN
        if items is UNKNOWN or len(items) > _MAX_SIZE or any(x is UNKNOWN for x in items):
            return UNKNOWN
        # Its own scope: the module's bindings come back after.
        saved = {name: self.ns.values.get(name, MISSING) for name in names}
        out: list[Any] = []
        try:
            for item in items:
                if not _bind_target(self.ns.values, gen.target, item):
                    return UNKNOWN
                keep = self._all_true(gen.ifs)
                if keep is None:
                    return UNKNOWN
                if keep:
                    out.append(self.eval(elt))
        finally:
            for name, value in saved.items():
                if value is MISSING:
                    self.ns.values.pop(name, None)
                else:
                    self.ns.values[name] = value
        return Unordered(items=tuple(out)) if unordered and len(out) > 1 else out

    def _all_true(self, tests: list[ast.expr]) -> bool | None:
        for test in tests:
            t = truth(self.eval(test))
            if t is not True:
                return t
        return True

    def _JoinedStr(self, node: ast.JoinedStr) -> Any:
        parts = [self.eval(v) for v in node.values]
        if any(not isinstance(p, str) for p in parts):
            return UNKNOWN
        return "".join(parts)

    def _FormattedValue(self, node: ast.FormattedValue) -> Any:
        value = self.eval(node.value)
        spec = "" if node.format_spec is None else self.eval(node.format_spec)
        if not isinstance(spec, str):
            return UNKNOWN
        if node.conversion == ord("r"):
            value = _repr(value)
        elif node.conversion in (ord("s"), -1) or node.conversion is None:
            value = _str(value) if node.conversion == ord("s") or not spec else value
        if value is UNKNOWN or not isinstance(value, (str, int, float, bool, type(None))):
            return UNKNOWN if not isinstance(value, str) else value
        return format(value, spec)

    # -- operators -----------------------------------------------------------

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.eval(node.operand)
        if isinstance(node.op, ast.Not):
            if isinstance(value, Probe):
                return Probe(
                    module=value.module,
                    test=True,
                    importable=not value.importable if value.test else False,
                )
            t = truth(value)
            return UNKNOWN if t is None else not t
        if not isinstance(value, (int, float)):
            return UNKNOWN
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return +value
        return ~value if isinstance(value, int) else UNKNOWN

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        # Short-circuits as Python does: the first operand that decides ends it.
        deciding = isinstance(node.op, ast.Or)  # "or" stops at a true value
        undecided = False
        result: Any = UNKNOWN
        for value_node in node.values:
            result = self.eval(value_node)
            t = truth(result)
            if t is None:
                undecided = True
            elif t is deciding:
                return _Bool(value=t) if undecided else result
        return UNKNOWN if undecided else result

    def _BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.eval(node.left), self.eval(node.right)
        if isinstance(node.op, ast.Mod) and isinstance(left, str) and _has_exc(right):
            # An exception formats as its message ("%s" and "{}"), not as abiscan's value.
            right = UNKNOWN if "%r" in left or "%a" in left else _str_args(right)
            if right is UNKNOWN:
                return UNKNOWN
        if not (isinstance(left, _PLAIN) and isinstance(right, _PLAIN)):
            return UNKNOWN
        if isinstance(node.op, ast.Mult) and _too_big(left, right):
            return UNKNOWN
        if isinstance(node.op, (ast.Pow, ast.LShift)) and isinstance(right, int) and right > 256:
            return UNKNOWN
        op = _BINOPS.get(type(node.op))
        return UNKNOWN if op is None else op(left, right)

    def _IfExp(self, node: ast.IfExp) -> Any:
        t = truth(self.eval(node.test))
        if t is None:
            return UNKNOWN
        return self.eval(node.body if t else node.orelse)

    def _Compare(self, node: ast.Compare) -> Any:
        left = self.eval(node.left)
        if len(node.ops) == 1:
            return self.compare(left, node.ops[0], self.eval(node.comparators[0]))
        result: Any = True
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.eval(right_node)
            one = truth(self.compare(left, op, right))
            if one is False:
                return False
            if one is None:
                result = UNKNOWN
            left = right
        return result

    def compare(self, a: Any, op: ast.cmpop, b: Any) -> Any:
        if isinstance(b, SysModules) and isinstance(op, (ast.In, ast.NotIn)):
            inside = b.contains(a) if isinstance(a, str) else None
            if inside is None:
                return UNKNOWN
            return inside if isinstance(op, ast.In) else not inside
        if isinstance(b, _Environ) and isinstance(op, (ast.In, ast.NotIn)) and isinstance(a, str):
            inside = a in LAMBDA_ENVIRONMENT
            if not inside:
                self.used.append(f"the environment variable {a} is not set")
            return inside if isinstance(op, ast.In) else not inside
        if isinstance(b, _Globals) and isinstance(op, (ast.In, ast.NotIn)):
            if not isinstance(a, str) or self.ns.may_bind(a) or self.ns.values.get(a) is MAYBE:
                return UNKNOWN
            inside = a in self.ns.values or a in MODULE_DUNDERS
            return inside if isinstance(op, ast.In) else not inside
        if (
            isinstance(op, (ast.Is, ast.IsNot, ast.Eq, ast.NotEq))
            and isinstance(a, Probe)
            and not a.test
            and b is None
        ):
            return Probe(
                module=a.module, test=True, importable=isinstance(op, (ast.IsNot, ast.NotEq))
            )
        if isinstance(op, (ast.Is, ast.IsNot)):
            same = _identity(a, b)
            if same is None:
                return UNKNOWN
            return same if isinstance(op, ast.Is) else not same
        if isinstance(a, VersionInfo) or isinstance(b, VersionInfo):
            result = _version_compare(a, op, b)
            floor = self.facts.micro_floor
            if result is UNKNOWN and floor is not None:
                result = _micro_compare(a, op, b, floor[0])
                if result is not UNKNOWN:
                    self.used.append(floor[1])
            return result
        if a is UNKNOWN or b is UNKNOWN or a is MISSING or b is MISSING:
            return UNKNOWN
        if isinstance(op, (ast.In, ast.NotIn)):
            if not isinstance(b, _PLAIN) or isinstance(b, (int, float, bool, type(None))):
                return UNKNOWN
            if any(x is UNKNOWN for x in (b.values() if isinstance(b, dict) else b)):
                return UNKNOWN
            inside = a in b
            return inside if isinstance(op, ast.In) else not inside
        if not (isinstance(a, _PLAIN) and isinstance(b, _PLAIN)) and not isinstance(
            op, (ast.Eq, ast.NotEq)
        ):
            return UNKNOWN
        if not (isinstance(a, _PLAIN) and isinstance(b, _PLAIN)):
            same = _identity(a, b)
            if same is None:
                return UNKNOWN
            return same if isinstance(op, ast.Eq) else not same
        return bool(_CMPOPS[type(op)](a, b))

    # -- calls ---------------------------------------------------------------

    def _Call(self, node: ast.Call) -> Any:
        if any(isinstance(a, ast.Starred) for a in node.args) or any(
            k.arg is None for k in node.keywords
        ):
            return UNKNOWN
        func = node.func
        if isinstance(func, ast.Attribute):
            base = self.eval(func.value)
            args = tuple(self.eval(a) for a in node.args)
            kwargs = {k.arg: self.eval(k.value) for k in node.keywords if k.arg}
            return self.method(base, func.attr, args, kwargs)
        callee = self.eval(func)
        args = tuple(self.eval(a) for a in node.args)
        kwargs = {k.arg: self.eval(k.value) for k in node.keywords if k.arg}
        return self.call(callee, args, kwargs)

    def method(self, base: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if isinstance(base, ModuleRef):
            fixed = self.facts.call(f"{base.name}.{name}", args)
            if fixed is not UNKNOWN:
                return fixed
            if (base.name, name) == ("os", "listdir"):
                return self._listdir(args, kwargs)
            if (base.name, name) == ("json", "loads"):
                return _json_loads(args, kwargs)
            if base.name in ("os.path", "posixpath"):
                return self._os_path(name, args, kwargs)
            if (base.name == "os" and name == "getenv") or (base.name, name) == (
                "importlib",
                "import_module",
            ):
                return self.call(_BuiltinFunc(name=f"{base.name}.{name}"), args, kwargs)
            return self.call(self.attribute(base, name), args, kwargs)
        if isinstance(base, _Environ) and name == "get":
            return self._environ(args, kwargs)
        if isinstance(base, SysModules) and name == "get" and len(args) == 1 and not kwargs:
            inside = base.contains(args[0]) if isinstance(args[0], str) else None
            if inside is None:
                return UNKNOWN
            return ModuleRef(name=args[0]) if inside else None
        if isinstance(base, _Globals) and name == "get" and args and isinstance(args[0], str):
            if self.ns.open or args[0].startswith(self.ns.prefixes):
                return UNKNOWN
            default = args[1] if len(args) > 1 else None
            return _settled(self.ns.values.get(args[0], default))
        allowed = next(
            (names for kind, names in _METHODS.items() if isinstance(base, kind)), frozenset()
        )
        if isinstance(base, list) and name in ("append", "insert", "extend") and not kwargs:
            grown = _grow(base, name, args)
            if grown is not UNKNOWN:
                return grown
        if name not in allowed or any(_opaque(a) for a in (*args, *kwargs.values())):
            return UNKNOWN
        if (
            isinstance(base, str)
            and name == "join"
            and args
            and not all(isinstance(x, str) for x in args[0])
        ):
            return UNKNOWN
        if isinstance(base, str) and name == "format":
            args = tuple(_str(a) if isinstance(a, ExcValue) else a for a in args)
            if any(not isinstance(a, _PLAIN) for a in (*args, *kwargs.values())):
                return UNKNOWN
        return getattr(base, name)(*args, **kwargs)

    def call(self, callee: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if isinstance(callee, _BuiltinFunc):
            return self._builtin_call(callee.name, args, kwargs)
        if isinstance(callee, Function) and self.choice is not None:
            return UNKNOWN  # not run once per alternative: its imports are the run's
        if isinstance(callee, Function):
            result = _FunctionRun(self, callee).call(args, kwargs)
            if result is not UNKNOWN:
                return result
        if isinstance(callee, Probe) or (
            (callee is UNKNOWN or isinstance(callee, (Opaque, Function)))
            and args
            and isinstance(args[0], str)
            and _MODULE_NAME.fullmatch(args[0])
        ):
            # An unknown function given a module name: it may import it (and return
            # None when it cannot); the caller decides only where the import decides.
            return Probe(module=args[0]) if not isinstance(callee, Probe) else UNKNOWN
        if isinstance(callee, ClassRef) and not kwargs:
            message: Any = ""
            if len(args) == 1:
                message = _str(args[0])
            elif args:
                message = UNKNOWN
            # Raised with a message only, an ImportError has no module name.
            return ExcValue(type=callee.name, message=message, name=None)
        return UNKNOWN

    def _builtin_call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if name == "globals" and not args:
            return _Globals()
        if name in ("getattr", "hasattr") and len(args) >= 2 and isinstance(args[1], str):
            value = (
                self.attribute(args[0], args[1])
                if isinstance(args[0], (ModuleRef, VersionInfo, _BuiltinFunc, _Implementation))
                else UNKNOWN
            )
            if name == "hasattr":
                return UNKNOWN if value is UNKNOWN else value is not MISSING
            if value is MISSING:
                return args[2] if len(args) > 2 else UNKNOWN
            return value
        if (
            name in ("__import__", "importlib.import_module")
            and args
            and isinstance(args[0], str)
            and not kwargs
            and len(args) == 1
        ):
            if self.choice is not None:
                return UNKNOWN  # an import is carried out once, not per alternative
            if self.depth:
                return _import_in_function(self.modules, args[0])
            return self.modules.import_module(args[0])
        if name == "os.getenv":
            return self._environ(args, kwargs)
        if name == "isinstance" and len(args) == 2 and isinstance(args[0], ExcValue):
            return _exc_isinstance(args[0].type, args[1])
        if name in _ORDER_BLIND and len(args) == 1 and isinstance(args[0], Unordered):
            args = (list(args[0].items),)
        if name == "isinstance" and len(args) == 2 and isinstance(args[1], _BuiltinFunc):
            kind = _PURE_BUILTINS.get(args[1].name)
            if isinstance(kind, type) and isinstance(args[0], _PLAIN):
                return isinstance(args[0], kind)
            return UNKNOWN
        func = _PURE_BUILTINS.get(name)
        if func is None or kwargs or any(_opaque(a) for a in args):
            return UNKNOWN
        if name == "str" and len(args) == 1:
            return _str(args[0])
        if any(not isinstance(a, _PLAIN) for a in args):
            return UNKNOWN
        return func(*args)

    def _listdir(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if len(args) != 1 or kwargs or not isinstance(args[0], str):
            return UNKNOWN
        if not args[0].startswith("/"):
            return UNKNOWN  # relative to the working directory, which the target does not fix
        entries = self.modules.listdir(args[0])
        if entries is None:
            return UNKNOWN
        return list(entries) if len(entries) <= 1 else Unordered(items=tuple(entries))

    def _os_path(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``os.path`` on the target (POSIX): string functions, and tests of paths in the
        layers or the function code, whose files abiscan has."""
        if kwargs or not args or not all(isinstance(a, str) for a in args):
            return UNKNOWN
        func = _PATH_STRINGS.get(name)
        if func is not None:
            return func(*args)
        if name not in ("exists", "lexists", "isdir", "isfile") or len(args) != 1:
            return UNKNOWN
        path = posixpath.normpath(args[0])
        if not path.startswith("/") or path == "/":
            return UNKNOWN
        parent, leaf = posixpath.split(path)
        entries = self.modules.listdir(parent)
        if entries is None:
            return UNKNOWN  # outside the stack's directories: the target's system decides
        if leaf not in entries:
            return False
        if name in ("exists", "lexists"):
            return True
        is_dir = self.modules.listdir(path) is not None
        return is_dir if name == "isdir" else not is_dir

    def _environ(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not args or not isinstance(args[0], str) or kwargs or args[0] in LAMBDA_ENVIRONMENT:
            return UNKNOWN
        # Lambda sets few variables of its own; a package's switch is taken as unset.
        self.used.append(f"the environment variable {args[0]} is not set")
        return args[1] if len(args) > 1 else None


# Methods that change their object in place: an expression calling one is not
# evaluated once per alternative.
_MUTATORS = frozenset({"append", "extend", "insert", "update", "setdefault"})


class NameReads:
    """The names each expression reads, walked once per expression.

    The evaluator asks before every evaluation (a module's expressions are
    evaluated again by each run that imports it, and by each call of a function):
    nodes are kept weakly, so a program's entries go with it.
    """

    def __init__(self) -> None:
        self._memo: weakref.WeakKeyDictionary[ast.expr, tuple[str, ...] | None] = (
            weakref.WeakKeyDictionary()
        )
        self.walks = 0  # expressions walked (for tests)

    def __len__(self) -> int:
        return len(self._memo)  # expressions remembered (their programs alive)

    def reads(self, node: ast.expr) -> tuple[str, ...] | None:
        """The names ``node`` reads, sorted and each once; None when it calls a method
        that grows a list or dict (``append``, ``update``...)."""
        try:
            return self._memo[node]
        except KeyError:
            pass
        self.walks += 1
        names = self._memo[node] = _walk_reads(node)
        return names


def _walk_reads(node: ast.expr) -> tuple[str, ...] | None:
    names: set[str] = set()
    # Every node, in any order (the answer does not depend on it), by a list
    # rather than ast.walk's generators.
    todo: list[ast.AST] = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, ast.Name):
            names.add(n.id)
            continue  # its only child is its context
        if isinstance(n, ast.Constant):
            continue  # a leaf
        if (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr in _MUTATORS
        ):
            return None
        todo.extend(child_nodes(n))
    return tuple(sorted(names))


NAME_READS = NameReads()


def _settled(value: Any) -> Any:
    """A value read outside :meth:`Evaluator.eval`'s names (another module's attribute,
    ``globals().get``): a OneOf there is UNKNOWN."""
    return UNKNOWN if isinstance(value, OneOf) or value is MAYBE else value


def _agreed(results: list[Any]) -> Any:
    """The value of an expression evaluated once per alternative, from its results."""
    first = results[0]
    if all(_same(r, first) for r in results[1:]):
        return first
    merged = one_of(results)
    if merged is not UNKNOWN:
        return merged
    truths = {truth(r) for r in results}
    if len(truths) == 1 and None not in truths:
        return _Bool(value=truths.pop() is True)
    return UNKNOWN


_DICT_VIEWS: tuple[type, ...] = (type({}.keys()), type({}.values()), type({}.items()))


def _target_names(target: ast.expr) -> list[str] | None:
    """The names a comprehension's ``for`` target binds: a name or a flat tuple of names."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple) and all(isinstance(e, ast.Name) for e in target.elts):
        return [e.id for e in target.elts if isinstance(e, ast.Name)]
    return None


def _bind_target(values: dict[str, Any], target: ast.expr, item: Any) -> bool:
    """Binds ``item`` to the target; False when it cannot be unpacked (its length unknown)."""
    if isinstance(target, ast.Name):
        values[target.id] = item
        return True
    elts = target.elts if isinstance(target, ast.Tuple) else []
    if not isinstance(item, (tuple, list)) or len(item) != len(elts):
        return False
    for elt, part in zip(elts, item, strict=True):
        if isinstance(elt, ast.Name):
            values[elt.id] = part
    return True


_MAX_DEPTH = 4  # calls inside calls run; deeper ones are UNKNOWN
_MAX_STATEMENTS = 64  # statements one call runs before it gives up


class _Undecided(AbiscanError):
    """A call whose result abiscan cannot know: it is UNKNOWN."""


class _Returned(AbiscanError):
    def __init__(self, value: Any) -> None:
        super().__init__("return")
        self.value = value


class _Thrown(AbiscanError):
    """An exception raised inside the function: its class, when known."""

    def __init__(self, exc_type: str | None) -> None:
        super().__init__(exc_type or "<exception>")
        self.exc_type = exc_type


def _import_in_function(modules: Modules, name: str) -> ModuleRef:
    ok = modules.imports(name)
    if ok is None:
        raise _Undecided(name)
    if not ok:
        raise _Thrown("ImportError")
    return ModuleRef(name=name)


class _FunctionRun:
    """One call of a :class:`Function`: its statements on a frame of the module's
    globals as they are now plus the arguments. Anything it cannot follow makes the
    result UNKNOWN; an exception that leaves it makes it UNKNOWN too (the module
    body's own run decides failures)."""

    def __init__(self, caller: Evaluator, function: Function) -> None:
        self.caller = caller
        self.node = function.node
        self.globals = function.globals
        self.local = function.local
        self.budget = _MAX_STATEMENTS
        # Names of ``global`` statements and what the call stored into them: the
        # module's own names once the call returns (psycopg.pq's ``__impl__``).
        self.declared = function.declared
        self.written: dict[str, Any] = {}
        self.unsure = False

    def call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        caller = self.caller
        params = self._bind(args, kwargs)
        if params is None or caller.depth >= _MAX_DEPTH:
            return UNKNOWN
        own = self.globals
        values = dict(own.values)
        for name in self.local:
            values.pop(name, None)
        frame = Namespace(
            module=own.module,
            values={**values, **params},
            taint=dict(own.taint),
            open=own.open,
            declared=own.declared,
            prefixes=own.prefixes,
        )
        self.ev = Evaluator(frame, caller.facts, caller.modules)
        self.ev.depth = caller.depth + 1
        try:
            self.block(self.node.body)
            result: Any = None
        except _Returned as ret:
            result = ret.value
        except (_Undecided, _Thrown, EvalRaise):
            caller.used.extend(self.ev.used)
            return UNKNOWN
        caller.used.extend(self.ev.used)
        self._commit()
        return result

    def _commit(self) -> None:
        """Store the ``global`` names the call bound into its module's namespace: only
        when the module body itself made the call (a call from another module or from
        inside a function leaves them to the assumption that the call binds them)."""
        if not self.written or self.unsure or self.globals is not self.caller.ns:
            return
        used = tuple(dict.fromkeys(self.ev.used))
        for name, value in self.written.items():
            self.globals.values[name] = value
            self.globals.natives.pop(name, None)
            if used:
                self.globals.taint[name] = used
            else:
                self.globals.taint.pop(name, None)

    def store(self, name: str, value: Any) -> None:
        self.ev.ns.values[name] = value
        if name in self.declared:
            self.written[name] = value

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        names = [a.arg for a in self.node.args.args]
        defaults = [d.value for d in self.node.args.defaults if isinstance(d, ast.Constant)]
        if len(args) > len(names) or any(k not in names for k in kwargs):
            return None
        out: dict[str, Any] = dict(zip(names, args, strict=False))
        first_default = len(names) - len(defaults)
        for i, name in enumerate(names[len(args) :], len(args)):
            if name in kwargs:
                out[name] = kwargs[name]
            elif i >= first_default:
                out[name] = defaults[i - first_default]
            else:
                return None
        return out

    def value(self, node: ast.expr) -> Any:
        try:
            value = self.ev.eval(node)
        except EvalRaise as exc:
            raise _Thrown(exc.exc_type) from None
        if (value is UNKNOWN or isinstance(value, Probe)) and any(
            isinstance(n, ast.Call) for n in ast.walk(node)
        ):
            # A call not followed may have raised, or bound names elsewhere: the run goes
            # on for its result, but what it stored is not trusted for the module.
            self.unsure = True
        return value

    def block(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.budget -= 1
            if self.budget < 0:
                raise _Undecided("too long")
            self.statement(stmt)

    def statement(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, ast.Return):
            raise _Returned(None if stmt.value is None else self.value(stmt.value))
        if isinstance(stmt, ast.Expr):
            if not isinstance(stmt.value, ast.Constant):
                self.value(stmt.value)
        elif isinstance(stmt, ast.Assign):
            value = self.value(stmt.value)
            for target in stmt.targets:
                if not isinstance(target, ast.Name):
                    raise _Undecided("assignment")
                self.store(target.id, value)
        elif isinstance(stmt, ast.AnnAssign):
            if not isinstance(stmt.target, ast.Name):
                raise _Undecided("assignment")
            if stmt.value is not None:
                self.store(stmt.target.id, self.value(stmt.value))
        elif isinstance(stmt, ast.FunctionDef):
            self.define(stmt)
        elif isinstance(stmt, ast.If):
            taken = truth(self.value(stmt.test))
            if taken is None:
                raise _Undecided("if")
            self.block(stmt.body if taken else stmt.orelse)
        elif isinstance(stmt, ast.Try):
            self.try_(stmt)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            self.import_(stmt)
        elif isinstance(stmt, ast.Raise):
            self.raise_(stmt)
        elif not isinstance(stmt, (ast.Pass, ast.Global)):
            raise _Undecided(type(stmt).__name__)

    def define(self, stmt: ast.FunctionDef) -> None:
        """A nested ``def``: a function whose globals are this call's frame, so that it
        reads the caller's locals as a closure would. One that declares names global or
        nonlocal writes outside its frame, which is not followed."""
        if any(isinstance(n, (ast.Global, ast.Nonlocal)) for n in ast.walk(stmt)):
            raise _Undecided("nested def writing outside its frame")
        self.store(stmt.name, Function(node=stmt, globals=self.ev.ns))

    def try_(self, stmt: ast.Try) -> None:
        try:
            self.block(stmt.body)
        except _Thrown as thrown:
            handler = next((h for h in stmt.handlers if _handles(h, thrown.exc_type)), None)
            if handler is None:
                raise
            if handler.name:
                exc = ExcValue(type=thrown.exc_type or "Exception", message=UNKNOWN)
                self.store(handler.name, exc)
            self.block(handler.body)
        else:
            self.block(stmt.orelse)
        finally:
            if stmt.finalbody:
                self.block(stmt.finalbody)

    def import_(self, stmt: ast.Import | ast.ImportFrom) -> None:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                _import_in_function(self.ev.modules, alias.name)
                bound = alias.name if alias.asname else alias.name.partition(".")[0]
                self.store(alias.asname or bound, ModuleRef(name=bound))
            return
        base = self._from_base(stmt)
        _import_in_function(self.ev.modules, base)
        for alias in stmt.names:
            self.store(alias.asname or alias.name, self._from_name(base, alias.name))

    def _from_base(self, stmt: ast.ImportFrom) -> str:
        """The module ``from ... import`` reads: a relative one resolved against the
        package of the module the function belongs to."""
        if not stmt.level:
            if stmt.module is None:
                raise _Undecided("import")
            return stmt.module
        own = self.globals
        package = own.module if "__path__" in own.values else own.module.rpartition(".")[0]
        for _ in range(stmt.level - 1):
            package = package.rpartition(".")[0]
        if not package:
            raise _Undecided("relative import beyond the top level")
        return f"{package}.{stmt.module}" if stmt.module else package

    def _from_name(self, base: str, name: str) -> Any:
        """``from base import name``: the name the module binds, else its submodule
        ``base.name``, imported as CPython's import system does; failing both, the
        statement raises ImportError."""
        value = self.ev.attribute(ModuleRef(name=base), name)
        if value is MISSING:
            raise _Thrown("ImportError")
        if value is not UNKNOWN:
            return value
        sub = f"{base}.{name}"
        imported = self.ev.modules.imports(sub)
        if imported:
            return ModuleRef(name=sub)
        if imported is False and self.ev.attribute(ModuleRef(name=base), name) is MISSING:
            raise _Thrown("ImportError")
        raise _Undecided(f"from {base} import {name}")

    def raise_(self, stmt: ast.Raise) -> None:
        value = UNKNOWN if stmt.exc is None else self.value(stmt.exc)
        if isinstance(value, ClassRef):
            raise _Thrown(value.name)
        if isinstance(value, ExcValue):
            raise _Thrown(value.type)
        raise _Thrown(None)


def _declared_global(node: ast.FunctionDef) -> frozenset[str]:
    """The names ``node``'s own body declares ``global`` (nested functions excluded)."""
    names: set[str] = set()
    todo: list[ast.AST] = list(node.body)
    while todo:
        n = todo.pop()
        if isinstance(n, ast.Global):
            names.update(n.names)
        if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(n))
    return frozenset(names)


def _handles(handler: ast.ExceptHandler, exc_type: str | None) -> bool:
    """Whether ``except <handler.type>`` surely catches ``exc_type`` (None: unknown class)."""
    if handler.type is None:
        return True
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    names = [k.id for k in kinds if isinstance(k, ast.Name)]
    if len(names) != len(kinds):
        raise _Undecided("computed except clause")
    if exc_type is None:
        if "BaseException" in names:
            return True
        raise _Undecided("unknown exception class")
    return catches(Guard(catches=tuple(names), text="except", line=handler.lineno), exc_type)


@record
class _BuiltinFunc:
    name: str


@record
class _Environ:
    """``os.environ``."""


def _builtin(name: str) -> Any:
    value = getattr(builtins, name, None)
    if isinstance(value, type) and issubclass(value, BaseException):
        return ClassRef(name=name)
    if name in ("True", "False", "None", "Ellipsis"):
        return value
    return _BuiltinFunc(name=name) if callable(value) else UNKNOWN


_FIXED[("os", "environ")] = _Environ()
_FIXED[("os", "getenv")] = _BuiltinFunc(name="os.getenv")
_FIXED[("importlib", "import_module")] = _BuiltinFunc(name="importlib.import_module")
# A fresh CPython: sys.excepthook is the builtin (no sitecustomize on Lambda replaces
# it), and sys has no PyPy attributes.
_FIXED[("sys", "excepthook")] = _BuiltinFunc(name="sys.excepthook")
_FIXED[("sys", "pypy_version_info")] = MISSING


def _json_loads(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``json.loads`` of a known string (versioneer's ``_version.py`` keeps the version
    in a JSON literal that ``get_versions()`` parses): pure, the same on every target."""
    if len(args) != 1 or kwargs or not isinstance(args[0], str) or len(args[0]) > _MAX_SIZE:
        return UNKNOWN
    try:
        return json.loads(args[0])
    except ValueError:
        return UNKNOWN  # json.JSONDecodeError: raised on the target too, not told apart here


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return value is not UNKNOWN


_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError"})
# Builtins whose result does not depend on the order of their argument's items.
_ORDER_BLIND = frozenset({"sorted", "len", "set", "frozenset", "bool", "any", "all", "min", "max"})


def _exc_isinstance(exc_type: str, classes: Any) -> Any:
    """``isinstance(e, C)`` for an exception of a builtin type against builtin classes."""
    refs = classes if isinstance(classes, tuple) else (classes,)
    exc = getattr(builtins, exc_type, None)
    if not (isinstance(exc, type) and issubclass(exc, BaseException)):
        return UNKNOWN
    found = False
    for ref in refs:
        cls = getattr(builtins, ref.name, None) if isinstance(ref, ClassRef) else None
        if not isinstance(cls, type):
            return UNKNOWN
        found = found or issubclass(exc, cls)
    return found


def _grow(base: list[Any], method: str, args: tuple[Any, ...]) -> Any:
    """``list.append/extend`` of items not all known: the list grows as it really does,
    with UNKNOWN for each item not known (an unordered listing of several entries gives
    as many unknown items), so its length and truth stay right. UNKNOWN: not handled here."""
    if method == "append" and len(args) == 1 and args[0] is UNKNOWN:
        base.append(UNKNOWN)
        return None
    if method == "extend" and len(args) == 1 and isinstance(args[0], Unordered):
        base.extend([UNKNOWN] * len(args[0].items))
        return None
    return UNKNOWN


def _opaque(value: Any) -> bool:
    if value is UNKNOWN or value is MISSING or isinstance(value, Unordered):
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_opaque(v) for v in value)
    if isinstance(value, dict):
        return any(_opaque(v) for v in value.values())
    return False


def _too_big(a: Any, b: Any) -> bool:
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int):
            return len(seq) * n > _MAX_SIZE
    return False


def _str(value: Any) -> Any:
    if isinstance(value, ExcValue):
        return value.message
    if isinstance(value, ClassRef):
        return f"<class '{value.name}'>"
    if isinstance(value, (str, int, float, bool, type(None))):
        return str(value)
    if (
        isinstance(value, (tuple, list))
        and not _opaque(value)
        and all(isinstance(v, _PLAIN) for v in value)
    ):
        return str(value)
    return UNKNOWN


def _repr(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool, type(None))):
        return repr(value)
    return UNKNOWN


def _has_exc(value: Any) -> bool:
    return isinstance(value, ExcValue) or (
        isinstance(value, tuple) and any(isinstance(v, ExcValue) for v in value)
    )


def _str_args(value: Any) -> Any:
    if isinstance(value, ExcValue):
        return _str(value)
    if isinstance(value, tuple):
        items = tuple(_str(v) if isinstance(v, ExcValue) else v for v in value)
        return UNKNOWN if any(not isinstance(v, _PLAIN) for v in items) else items
    return UNKNOWN


def _identity(a: Any, b: Any) -> bool | None:
    if a is UNKNOWN or b is UNKNOWN or a is MISSING or b is MISSING:
        return None
    singletons = (None, True, False)
    if any(a is s for s in singletons) or any(b is s for s in singletons):
        return a is b
    if isinstance(a, (ModuleRef, ClassRef)) and isinstance(b, (ModuleRef, ClassRef)):
        return a == b
    return None


def _version_item(v: VersionInfo, index: Any) -> Any:
    if isinstance(index, int):
        return {0: v.major, 1: v.minor}.get(index, UNKNOWN)
    if (
        isinstance(index, slice)
        and index.start in (None, 0)
        and index.step is None
        and isinstance(index.stop, int)
        and index.stop <= 2
    ):
        return (v.major, v.minor)[: index.stop]
    return UNKNOWN


def _version_compare(a: Any, op: ast.cmpop, b: Any) -> Any:
    """``sys.version_info`` against a tuple: decided where (major, minor) decide it."""
    if isinstance(op, (ast.In, ast.NotIn, ast.Is, ast.IsNot)):
        return UNKNOWN
    flip = {ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE}
    if isinstance(b, VersionInfo):
        if isinstance(a, VersionInfo):
            return UNKNOWN
        a, b = b, a
        op = flip.get(type(op), type(op))()
    if not isinstance(b, tuple) or not all(isinstance(x, int) for x in b):
        return UNKNOWN
    known = (a.major, a.minor)
    # The real value is (major, minor, micro, releaselevel, serial).
    if isinstance(op, (ast.Eq, ast.NotEq)):
        if len(b) != 5 or tuple(b[:2]) != known:
            return isinstance(op, ast.NotEq)
        return UNKNOWN
    head = tuple(b[:2])
    if head != known[: len(head)]:
        return bool(_CMPOPS[type(op)](known[: len(head)], head))
    if len(b) > 2:
        return UNKNOWN  # only the micro version would decide it
    return isinstance(op, (ast.Gt, ast.GtE, ast.NotEq))  # longer, so greater


def _micro_compare(a: Any, op: ast.cmpop, b: Any, floor: int) -> Any:
    """``sys.version_info`` against ``(major, minor, micro)`` of the target's own minor
    version, when every micro from ``floor`` on gives the same answer (the real micro
    version only grows: AWS updates a runtime's interpreter forward)."""
    if isinstance(b, VersionInfo):
        flip = {ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE}
        a, b, op = b, a, flip.get(type(op), type(op))()
    if (
        not isinstance(a, VersionInfo)
        or not isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE))
        or not isinstance(b, tuple)
        or len(b) != 3
        or not all(isinstance(x, int) for x in b)
        or tuple(b[:2]) != (a.major, a.minor)
    ):
        return UNKNOWN
    compare = _CMPOPS[type(op)]
    # Ordering is monotone in the micro version: its least and a far greater value
    # bound every answer (the real value has five fields, so it is never equal to b).
    answers = {bool(compare((a.major, a.minor, m, "final", 0), b)) for m in (floor, 10**6)}
    return answers.pop() if len(answers) == 1 else UNKNOWN
