"""The static import graph: what each Python source module imports while it is imported.

Every source module is read with :mod:`ast` and nothing else: no scanned code
is imported, compiled to bytecode or run. For each module this records

* whether the source parses under the **target's** grammar (a ``match``
  statement is a ``SyntaxError`` on 3.9), with CPython's message and line;
* the imports that run at import time: the module body, including ``if``,
  ``try``, ``with``, loop and ``match`` blocks and class bodies, but not
  function bodies or lambdas; ``import a.b.c``, ``from x import y`` (``y``
  resolved to a submodule when the stack has one), relative imports, and
  ``importlib.import_module("literal")`` / ``__import__("literal")`` calls;
* for each import, the ``except`` clauses of the enclosing ``try`` blocks (and
  ``with contextlib.suppress(...)``), whether it sits under ``if
  TYPE_CHECKING:`` and whether it runs at all on the target (``sys.version_info``,
  ``sys.platform`` and ``os.name`` tests are evaluated for the target);
* the module body as a small program of those steps (:class:`ImportStep`,
  :class:`TryStep`, :class:`CondStep`, :class:`LoopStep`, :class:`AssignStep`,
  :class:`ExprStep`, :class:`RaiseStep`), keeping the expressions as ``ast``
  nodes: :mod:`abiscan.simulate.python.execute` runs it with the values of
  :mod:`abiscan.simulate.python.evaluator` to decide which failure arrives where.
  A step that raises a known exception at line N is a :class:`RaiseStep` with
  ``exc_type`` and ``message`` and no ``exc``.

"""

from __future__ import annotations

import ast
import codecs
import io
import re
import sys
import tokenize
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from abiscan.collector import collector_paused
from abiscan.inputs.content_cache import keep_def_sources
from abiscan.limits import DEFAULT_LIMITS, Limits
from abiscan.records import record
from abiscan.report.model import LinkKind
from abiscan.simulate.python.globals_writes import GuardedGlobals, prefix_guarded_globals
from abiscan.simulate.python.grammar import SyntaxVerdict, check_syntax, child_nodes
from abiscan.simulate.python.runtime_api import RuntimeChecker

__all__ = [
    "PANIC",
    "RUNNING",
    "AssignStep",
    "Block",
    "CondStep",
    "ExprStep",
    "Guard",
    "Handler",
    "ImportEdge",
    "ImportGraph",
    "ImportStep",
    "LoopStep",
    "ModuleSource",
    "ParseHook",
    "RaiseStep",
    "SourceReader",
    "Step",
    "TryStep",
    "ancestry",
    "catches",
    "extract",
    "inner_blocks",
]

RUNNING = (sys.version_info[0], sys.version_info[1])
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")

# -- the facts ---------------------------------------------------------------


@record
class Guard:
    """One ``except`` clause (or ``with suppress(...)``) around an import."""

    catches: tuple[str, ...]  # class names as written; bare ``except:`` is ("BaseException",)
    text: str  # "except ImportError", "except (ImportError, OSError) as e", "with suppress(...)"
    line: int
    reraises: bool = False  # its body ends in an unconditional ``raise``


@record
class ImportEdge:
    """One import that runs (or may run) while ``importer`` is being imported."""

    importer: str
    target: str  # the absolute module name imported (for kind "name": the module it reads from)
    line: int
    statement: str  # the source line, shortened
    # "import": ``import a.b`` (imports a, then a.b); "from": the module of a
    # ``from x import ...``; "submodule": a name of a from-import that is a
    # submodule in the stack; "name": a name of a from-import that is not;
    # "star": ``from x import *``; "dynamic": importlib.import_module/__import__.
    kind: LinkKind
    name: str | None = None  # for "name": the attribute read from ``target``
    guards: tuple[Guard, ...] = ()  # innermost first
    type_checking: bool = False  # under ``if TYPE_CHECKING:``: never runs
    runs: str = "yes"  # "yes", "no" (a branch the target never takes) or "maybe"
    condition: str | None = None  # the test that makes it "no" or "maybe"


@record
class ImportStep:
    edge: ImportEdge
    # The module-level name the statement binds once the import succeeds, and
    # for kind "import" the module bound to it (``import a.b`` binds ``a`` to
    # module ``a``; ``import a.b as c`` binds ``c`` to ``a.b``).
    bind: str | None = None
    value: str | None = None


@record
class Handler:
    guard: Guard
    body: Block
    name: str | None = None  # ``except E as name``


@record
class TryStep:
    line: int
    body: Block
    handlers: tuple[Handler, ...]
    orelse: Block = ()
    final: Block = ()


@record
class CondStep:
    """A block that runs when ``runs`` is True, never when False, perhaps when None.

    ``runs`` is what the target alone decides; ``test`` (an ``if`` test at
    module level) is evaluated by the executor against the values of the run
    when ``runs`` is None."""

    line: int
    condition: str
    runs: bool | None
    body: Block
    orelse: Block = ()
    test: ast.expr | None = None
    # The else of a loop that searches values (no import, no try in its body): it runs
    # only when no candidate was found.
    search_else: bool = False


@record
class AssignStep:
    """A module-level binding: ``targets = value`` (``targets op= value`` with ``op``).

    ``value`` None binds something whose value is not tracked: a function or a
    class (``what``), or a ``with ... as`` target."""

    line: int
    targets: tuple[ast.expr, ...]
    value: ast.expr | None
    op: ast.operator | None = None
    what: str = ""
    # A function small enough for the evaluator to run when the body calls it.
    function: ast.FunctionDef | None = None


@record
class ExprStep:
    """An expression statement at module level (``deps.append(x)``, a bare name).

    With ``native_call``, ``expr`` is a call with keywords in any statement that runs
    at import (a class body's too) of a bare module-level name: it is not evaluated,
    only its arguments are bound against the callee's signature when the callee is a
    class of an extension module (native_api)."""

    line: int
    expr: ast.expr
    native_call: bool = False


@record
class LoopStep:
    """``for target in iter: body`` with no ``break``, ``continue`` or ``else``: the
    executor unrolls it when ``iter`` is a known sequence."""

    line: int
    text: str
    target: ast.expr
    iter: ast.expr
    body: Block


@record
class RaiseStep:
    line: int
    text: str
    exc_type: str | None  # None: a bare ``raise`` (re-raises what the handler caught)
    message: str | None  # the literal message, when the source has one
    exc: ast.expr | None = None  # the raised expression, for the executor to evaluate


Step = ImportStep | TryStep | CondStep | RaiseStep | AssignStep | ExprStep | LoopStep
Block = tuple[Step, ...]


@record
class ModuleSource:
    """A parsed source module: its import-time program and what it binds."""

    name: str
    path: str
    is_package: bool
    syntax: SyntaxVerdict | None  # None: parses under the target's grammar
    body: Block = ()
    edges: tuple[ImportEdge, ...] = ()
    # Names the module body binds at module level, with the first line that binds each.
    bound: Mapping[str, int] = field(default_factory=dict)
    # A star import, module-level __getattr__ or globals() writes: any name may exist.
    open_namespace: bool = False
    open_line: int | None = None  # the first line that opens it (None: from the start)
    all_names: tuple[str, ...] | None = None  # a literal __all__, if any
    # Mentions sys.meta_path/path_hooks: may install a finder for names no file has
    # (six.moves, vendored "extern" packages).
    custom_finder: bool = False
    # With custom_finder: the module-like string literals of its source, the names
    # its hook may serve (``"distutils"`` in setuptools' _distutils_hack).
    hook_names: frozenset[str] = frozenset()
    # Extends its __path__ at run time (pkgutil.extend_path, declare_namespace): its
    # submodules may come from other sys.path entries too.
    extends_path: bool = False
    # Names a function declares ``global``: bound whenever that function runs.
    declared_global: frozenset[str] = frozenset()
    # Of those, the ones a module-level function declares and the body calls, with
    # the first line of such a call and the function's name (psycopg.pq's
    # ``import_from_libpq()`` binds ``Escaping`` and the rest).
    bound_by_call: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    # Function name -> the names it rebinds through ``global`` when called, itself or
    # through the functions of the module it calls by name: the values the module body
    # knows for them are stale after such a call.
    global_writers: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Calls globals() for more than reading it: any name may be bound at any time.
    writes_globals: bool = False
    # Writes through globals() that bind only names with these prefixes (psutil's
    # RLIM* constants): those names may be bound; the namespace is not open.
    globals_prefixes: tuple[str, ...] = ()
    # A module __getattr__ (PEP 562) that reads a table of constant strings: name ->
    # the module it names, which __getattr__ presumably imports to serve the name.
    lazy: Mapping[str, str] = field(default_factory=dict)


# -- exceptions --------------------------------------------------------------

PANIC = "pyo3_runtime.PanicException"

# The builtin classes an import can raise or a guard can name, with their base.
_BASES: dict[str, str | None] = {
    "BaseException": None,
    "Exception": "BaseException",
    "SystemExit": "BaseException",
    "KeyboardInterrupt": "BaseException",
    "GeneratorExit": "BaseException",
    "BaseExceptionGroup": "BaseException",
    PANIC: "BaseException",
    "ImportError": "Exception",
    "ModuleNotFoundError": "ImportError",
    "SyntaxError": "Exception",
    "IndentationError": "SyntaxError",
    "TabError": "IndentationError",
    "OSError": "Exception",
    "PermissionError": "OSError",
    "FileNotFoundError": "OSError",
    "RuntimeError": "Exception",
    "NotImplementedError": "RuntimeError",
    "RecursionError": "RuntimeError",
    "SystemError": "Exception",
    "AttributeError": "Exception",
    "NameError": "Exception",
    "ValueError": "Exception",
    "UnicodeError": "ValueError",
    "UnicodeDecodeError": "UnicodeError",
    "TypeError": "Exception",
    "LookupError": "Exception",
    "KeyError": "LookupError",
    "IndexError": "LookupError",
    "ArithmeticError": "Exception",
    "ZeroDivisionError": "ArithmeticError",
    "AssertionError": "Exception",
    "Warning": "Exception",
    "ImportWarning": "Warning",
}
_ALIASES = {"IOError": "OSError", "EnvironmentError": "OSError"}

_TRY_STAR: tuple[type[ast.AST], ...] = tuple(
    t for t in (getattr(ast, "TryStar", None),) if isinstance(t, type)
)


def _imports_or_catches(body: list[ast.stmt]) -> bool:
    """Whether statements import (a statement or a call) or catch exceptions."""
    for node in (n for stmt in body for n in ast.walk(stmt)):
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Try, *_TRY_STAR)):
            return True
        if isinstance(node, ast.Call) and (
            (isinstance(node.func, ast.Name) and node.func.id == "__import__")
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
        ):
            return True
    return False


def _canonical(name: str) -> str:
    name = name.removeprefix("builtins.")
    if name.endswith(".PanicException"):
        return PANIC
    return _ALIASES.get(name, name)


def ancestry(exc_type: str) -> list[str]:
    """``exc_type`` and its bases, nearest first. An unknown class is taken to be an
    ``Exception`` subclass, as nearly every class a library defines is."""
    out = [_canonical(exc_type)]
    while True:
        current = out[-1]
        base = _BASES.get(current, "Exception")
        if base is None:
            return out
        out.append(base)


def catches(guard: Guard, exc_type: str) -> bool:
    """Whether the ``except`` clause ``guard`` catches an exception of class ``exc_type``."""
    mro = ancestry(exc_type)
    return any(_canonical(name) in mro for name in guard.catches)


# -- conditions the target decides -------------------------------------------


_FUNCTION_STATEMENTS = (
    ast.Expr,
    ast.Assign,
    ast.Return,
    ast.If,
    ast.Try,
    ast.Import,
    ast.ImportFrom,
    ast.Raise,
    ast.Pass,
    # psycopg.pq's import_from_libpq(): ``global`` names it binds for the module, an
    # annotated local, a nested helper it calls from its ``except`` clauses.
    ast.Global,
    ast.AnnAssign,
    ast.FunctionDef,
)


# The fields that hold blocks of statements (a statement's, an ``except`` clause's, a
# ``case``'s). Statements sit nowhere else, so a walk of these fields alone finds
# every statement without visiting the expressions, which are most of a tree's nodes.
_BLOCK_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements(nodes: Iterable[ast.AST]) -> Iterator[ast.stmt]:
    """Every statement among ``nodes`` and nested in their blocks (function and class
    bodies included), never entering an expression."""
    todo = list(nodes)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.stmt):
            yield node
        for name in _BLOCK_FIELDS:
            block = getattr(node, name, None)
            if block:
                todo.extend(block)


# What makes a def one the evaluator does not run, and the words its source must hold.
_UNINLINABLE = (ast.Lambda, ast.NamedExpr, ast.Yield, ast.YieldFrom, ast.Await)
_UNINLINABLE_WORDS = (b"lambda", b":=", b"yield", b"await")


def _holds(node: ast.AST, kinds: tuple[type[ast.AST], ...]) -> bool:
    """Whether ``node`` or a node under it is one of ``kinds``: ``ast.walk`` without its
    generators, stopping at the first found."""
    todo: list[ast.AST] = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, kinds):
            return True
        todo.extend(child_nodes(n))
    return False


# may_hold(node, words): whether the source of ``node`` may hold one of ``words`` (a
# cheap test on the text, True when the text cannot tell).
MayHold = Callable[[ast.AST, tuple[bytes, ...]], bool]


def _always(node: ast.AST, words: tuple[bytes, ...]) -> bool:
    return True


class _SourceText:
    """The source's lines as bytes, numbered as ``ast`` numbers them, to skip a walk of
    a subtree whose text cannot hold what the walk looks for (most of them)."""

    def __init__(self, lines: list[bytes]) -> None:
        self.lines = lines

    @classmethod
    def of(cls, data: bytes) -> _SourceText | None:
        """None when the text's bytes may not spell its characters in ASCII: a codec
        other than UTF-8 or Latin-1 (UTF-7 writes "(" as "+ACg-")."""
        try:
            encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        except SyntaxError:
            return None
        if encoding not in _ASCII_CODECS:
            return None
        # The tokenizer ends lines at "\r\n", "\r" and "\n" alone (str.splitlines also
        # at form feeds and other separators, which would shift the numbers).
        if b"\r" in data:  # a search, cheaper than the two copies replacing would make
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return cls(data.split(b"\n"))

    def may_hold(self, node: ast.AST, words: tuple[bytes, ...]) -> bool:
        first = getattr(node, "lineno", None)
        last = getattr(node, "end_lineno", None)
        if first is None or last is None or not 0 < first <= last <= len(self.lines):
            return True
        text = self.lines[first - 1] if first == last else b"\n".join(self.lines[first - 1 : last])
        return any(w in text for w in words)


_ASCII_CODECS = frozenset({"utf-8", "utf-8-sig", "iso-8859-1", "latin-1", "ascii"})


def _plain_def(node: ast.stmt) -> bool:
    """A ``def`` without decorators, with plain parameters and constant defaults."""
    if not isinstance(node, ast.FunctionDef) or node.decorator_list:
        return False
    a = node.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
        return False
    return all(isinstance(d, ast.Constant) for d in a.defaults)


def _inlinable(node: ast.stmt, may_hold: MayHold = _always) -> bool:
    """Whether a ``def`` is one the evaluator runs when the module body calls it: no
    decorator, plain parameters with constant defaults, and a short body of
    assignments, ``if``, ``try``, imports, ``raise``, ``return``, ``global`` and plain
    nested ``def`` (tenacity's ``_has_tornado``, protobuf's ``_CanImport``, sympy's
    ``_getenv``, psycopg.pq's ``import_from_libpq``)."""
    if not isinstance(node, ast.FunctionDef) or not _plain_def(node):
        return False
    # The walk stops at the first statement that rules the def out (most defs have
    # one near their end, the walk's start) or past 48 statements.
    for count, n in enumerate(_statements(node.body), 1):
        if (
            count > 48
            or not isinstance(n, _FUNCTION_STATEMENTS)
            or (isinstance(n, ast.FunctionDef) and not _plain_def(n))
        ):
            return False
    return not (may_hold(node, _UNINLINABLE_WORDS) and _holds(node, _UNINLINABLE))


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _is_type_checking(node: ast.expr) -> bool:
    name = _dotted(node)
    return name is not None and name.rpartition(".")[2] == "TYPE_CHECKING"


class _Conditions:
    """Evaluates the ``if`` tests whose value the target fixes; None for the others."""

    def __init__(self, version: tuple[int, int]) -> None:
        self.version = version
        # Module-level names assigned once from something decidable
        # (``PY_3_14_PLUS = sys.version_info >= (3, 14)``); None marks a name
        # assigned more than once, which is never trusted.
        self.consts: dict[str, object] = {}

    def assign(self, name: str, value: ast.expr) -> None:
        if name in self.consts:
            self.consts[name] = None
            return
        known = self._known(value)
        self.consts[name] = known if known is not None else self.value(value)

    def value(self, node: ast.expr) -> bool | None:
        if isinstance(node, ast.Constant):
            return bool(node.value)
        if _is_type_checking(node):
            return False
        if isinstance(node, ast.Name) and isinstance(self.consts.get(node.id), bool):
            return bool(self.consts[node.id])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.value(node.operand)
            return None if inner is None else not inner
        if isinstance(node, ast.BoolOp):
            values = [self.value(v) for v in node.values]
            if isinstance(node.op, ast.And):
                if False in values:
                    return False
                return True if all(v is True for v in values) else None
            if True in values:
                return True
            return False if all(v is False for v in values) else None
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            return self._compare(node.left, node.ops[0], node.comparators[0])
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and (node.func.attr == "startswith" and len(node.args) == 1)
        ):
            subject = self._known(node.func.value)
            arg = node.args[0]
            if (
                isinstance(subject, str)
                and isinstance(arg, ast.Constant)
                and isinstance(arg.value, (str, tuple))
            ):
                return subject.startswith(arg.value)
        return None

    def _known(self, node: ast.expr) -> object:
        """The target's value of a few well-known expressions, or None."""
        if isinstance(node, ast.Name) and self.consts.get(node.id) is not None:
            return self.consts[node.id]
        name = _dotted(node)
        if name is not None:
            tail = name.split(".")[-2:]
            if tail == ["sys", "platform"]:
                return "linux"
            if tail == ["os", "name"]:
                return "posix"
            if name == "__name__":
                return None  # a module's own name: never "__main__" when imported
            if tail == ["sys", "version_info"]:
                return self.version
            if tail in (["version_info", "major"],):
                return self.version[0]
            if tail in (["version_info", "minor"],):
                return self.version[1]
            if tail == ["implementation", "name"]:
                return "cpython"
        if isinstance(node, ast.Subscript) and _dotted(node.value) is not None:
            base = self._known(node.value)
            if isinstance(base, tuple):
                index = node.slice
                if isinstance(index, ast.Constant) and isinstance(index.value, int):
                    return base[index.value] if index.value < len(base) else None
                if (
                    isinstance(index, ast.Slice)
                    and index.lower is None
                    and index.step is None
                    and isinstance(index.upper, ast.Constant)
                    and isinstance(index.upper.value, int)
                    and index.upper.value <= len(base)
                ):
                    return base[: index.upper.value]
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Tuple) and all(isinstance(e, ast.Constant) for e in node.elts):
            return tuple(e.value for e in node.elts if isinstance(e, ast.Constant))
        return None

    def _compare(self, left: ast.expr, op: ast.cmpop, right: ast.expr) -> bool | None:
        if (
            _dotted(left) == "__name__"
            and isinstance(right, ast.Constant)
            and right.value == "__main__"
        ):
            if isinstance(op, ast.Eq):
                return False
            if isinstance(op, ast.NotEq):
                return True
        a, b = self._known(left), self._known(right)
        if (
            _dotted(left) in ("ssl.OPENSSL_VERSION_INFO", "OPENSSL_VERSION_INFO")
            and self.version >= (3, 10)
            and isinstance(b, tuple)
            and b <= (1, 1, 1)
        ):
            # PEP 644: CPython 3.10 and later build only against OpenSSL 1.1.1+.
            strict = b < (1, 1, 1)
            if isinstance(op, ast.Lt) or (strict and isinstance(op, ast.LtE)):
                return False
            if isinstance(op, ast.GtE) or (strict and isinstance(op, ast.Gt)):
                return True
        if a is None or b is None:
            return None
        if isinstance(a, tuple) and isinstance(b, tuple):
            # Only the (major, minor) of the target is known: a longer tuple
            # decides only where its first two items already do.
            if len(b) > len(a) and tuple(b[: len(a)]) == a:
                return None
            b = tuple(b[: max(len(a), 2)])
        try:
            if isinstance(op, ast.Eq):
                return bool(a == b)
            if isinstance(op, ast.NotEq):
                return bool(a != b)
            if isinstance(op, ast.Lt):
                return bool(a < b)  # type: ignore[operator]
            if isinstance(op, ast.LtE):
                return bool(a <= b)  # type: ignore[operator]
            if isinstance(op, ast.Gt):
                return bool(a > b)  # type: ignore[operator]
            if isinstance(op, ast.GtE):
                return bool(a >= b)  # type: ignore[operator]
            if isinstance(op, ast.In) and isinstance(b, tuple):
                return a in b
            if isinstance(op, ast.NotIn) and isinstance(b, tuple):
                return a not in b
        except TypeError:
            return None
        return None


# -- extraction --------------------------------------------------------------


@record
class _Ctx:
    guards: tuple[Guard, ...] = ()
    type_checking: bool = False
    runs: str = "yes"
    condition: str | None = None
    in_class: bool = False
    # In a class body: the names it binds, which shadow module-level ones there.
    class_names: Container[str] = frozenset()

    def under(self, runs: bool | None, condition: str, *, type_checking: bool = False) -> _Ctx:
        if runs is False or self.runs == "no":
            new = "no"
        elif runs is None or self.runs == "maybe":
            new = "maybe"
        else:
            new = "yes"
        cond = condition if new != "yes" and self.runs == "yes" else self.condition
        return _Ctx(
            guards=self.guards,
            type_checking=self.type_checking or type_checking,
            runs=new,
            condition=cond,
            in_class=self.in_class,
            class_names=self.class_names,
        )


_IMPORT_FUNCS = {"importlib.import_module", "import_module", "__import__", "importlib.__import__"}


def _short(line: str) -> str:
    line = line.strip()
    return line if len(line) <= 100 else line[:97] + "..."


def _handler_names(node: ast.expr | None) -> tuple[str, ...]:
    if node is None:
        return ("BaseException",)
    parts = node.elts if isinstance(node, ast.Tuple) else [node]
    out = []
    for p in parts:
        name = _dotted(p)
        out.append(name if name is not None else "<expression>")
    return tuple(out)


def _ends_in_raise(body: Sequence[ast.stmt]) -> bool:
    return any(isinstance(s, ast.Raise) for s in body)


def _leaves_loop(body: Sequence[ast.stmt]) -> bool:
    """Whether a ``break`` or ``continue`` of this loop (not of an inner one) is in ``body``."""
    todo: list[ast.AST] = list(body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Break, ast.Continue)):
            return True
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            todo.extend(node.orelse)  # an inner loop's own body has its own breaks
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        todo.extend(ast.iter_child_nodes(node))
    return False


def _leading_imports(body: Sequence[ast.stmt]) -> tuple[ast.Import | ast.ImportFrom, ...]:
    """The import statements a function body starts with (after its docstring): they
    run whenever it is called."""
    out: list[ast.Import | ast.ImportFrom] = []
    for i, s in enumerate(body):
        if isinstance(s, (ast.Import, ast.ImportFrom)):
            out.append(s)
        elif not (i == 0 and isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)):
            break
    return tuple(out)


def _declared_global(tree: ast.Module) -> frozenset[str]:
    return frozenset(
        name
        for node in _statements(tree.body)
        if isinstance(node, ast.Global)
        for name in node.names
    )


def _replaces_itself(tree: ast.Module) -> bool:
    """Whether the module may put another object in ``sys.modules`` under its own name
    (passlib.utils.compat's lazy overlay module, with a ``__getattr__``): a store into
    ``sys.modules[__name__]``, or into ``sys.modules[p]`` in a function whose parameter
    ``p`` the module body passes ``__name__`` to (``replace_module(__name__, ...)``)."""
    setters: set[str] = set()
    for node in _statements(tree.body):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_module_store(t) == "__name__" for t in targets):
                return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            params = {a.arg for a in (*node.args.posonlyargs, *node.args.args)}
            keys = {
                _module_store(t)
                for n in _statements(node.body)
                if isinstance(n, ast.Assign)
                for t in n.targets
            }
            if params & keys:
                setters.add(node.name)
    return any(
        isinstance(node, ast.Call)
        and (_dotted(node.func) or "").rpartition(".")[2] in setters
        and any(_dotted(a) == "__name__" for a in node.args)
        for stmt in tree.body
        if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        for node in ast.walk(stmt)
    )


def _module_store(target: ast.expr) -> str | None:
    """``k`` for a target ``sys.modules[k]`` (a name), else None."""
    if isinstance(target, ast.Subscript) and _dotted(target.value) == "sys.modules":
        return _dotted(target.slice)
    return None


def _global_writers(tree: ast.Module) -> dict[str, frozenset[str]]:
    """Each function of the module (by name, any depth) that rebinds module globals when
    called: the names it declares ``global``, with those of the functions it calls by name."""
    writes: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    for node in _statements(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            own = {n for g in _statements(node.body) if isinstance(g, ast.Global) for n in g.names}
            writes.setdefault(node.name, set()).update(own)
            calls.setdefault(node.name, set()).update(
                c.func.id
                for c in ast.walk(node)
                if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
            )
    changed = True
    while changed:  # through calls of calls, until nothing more is added
        changed = False
        for name, called in calls.items():
            more = set().union(*(writes.get(c, set()) for c in called)) - writes[name]
            if more:
                writes[name] |= more
                changed = True
    return {name: frozenset(names) for name, names in writes.items() if names}


def _bound_by_call(tree: ast.Module) -> dict[str, tuple[int, str]]:
    """Names declared ``global`` in a module-level function that the module body calls
    by name (outside any function body), with the first such call's line."""
    declares: dict[str, frozenset[str]] = {}
    calls: list[ast.Call] = []
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names = frozenset(
                n for g in _statements(node.body) if isinstance(g, ast.Global) for n in g.names
            )
            if names:
                declares[node.name] = names
            todo.extend([*node.decorator_list, *node.args.defaults])
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Call):
            calls.append(node)
        todo.extend(ast.iter_child_nodes(node))
    out: dict[str, tuple[int, str]] = {}
    for call in sorted(calls, key=lambda c: c.lineno):
        if isinstance(call.func, ast.Name) and call.func.id in declares:
            for name in declares[call.func.id]:
                out.setdefault(name, (call.lineno, call.func.id))
    return out


# What _Extractor.calls does not enter: leaves, and bodies the statement does not run.
_NOT_WALKED_FOR_CALLS = (
    ast.Name,
    ast.Constant,
    ast.Lambda,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
)


class _Extractor:
    """Walks one module's body: the program of import-time steps, and its edges."""

    def __init__(
        self,
        module: str,
        package: str,
        lines: Sequence[str],
        conditions: _Conditions,
        is_module: Callable[[str], bool],
        runtime: RuntimeChecker | None = None,
    ) -> None:
        self.runtime = runtime
        self.module = module
        self.package = package
        self.lines = lines
        self.cond = conditions
        self.is_module = is_module
        self.edges: list[ImportEdge] = []
        self.bound: dict[str, int] = {}
        self.line = 0
        self.open_namespace = False
        self.open_line: int | None = None
        self.writes_globals = False
        self.guarded_globals: frozenset[int] = frozenset()  # globals() calls with prefixes
        self.all_names: tuple[str, ...] | None = None
        # Module-level functions defined once and not rebound since: a call at import
        # time runs the imports their body starts with (sqlalchemy's
        # ``try: _import_cy_extensions()``) and its globals() writes (fontTools).
        self.functions: dict[str, ast.FunctionDef] = {}
        self.writes_when_called: dict[str, bool] = {}  # per function, at its first call
        self.may_hold: MayHold = _always

    def opens(self, line: int) -> None:
        """The namespace is open from ``line`` on (any name may be bound after it)."""
        self.open_namespace = True
        self.open_line = line if self.open_line is None else min(self.open_line, line)

    def text(self, node: ast.AST) -> str:
        line = getattr(node, "lineno", 0)
        if 0 < line <= len(self.lines):
            return _short(self.lines[line - 1])
        return ""

    def edge(
        self,
        node: ast.AST,
        ctx: _Ctx,
        target: str,
        kind: LinkKind,
        name: str | None = None,
        statement: str | None = None,
    ) -> ImportStep:
        edge = ImportEdge(
            importer=self.module,
            target=target,
            line=getattr(node, "lineno", 0),
            statement=self.text(node) if statement is None else statement,
            kind=kind,
            name=name,
            guards=ctx.guards,
            type_checking=ctx.type_checking,
            runs=ctx.runs,
            condition=ctx.condition,
        )
        self.edges.append(edge)
        return ImportStep(edge=edge)

    def block(self, body: Sequence[ast.stmt], ctx: _Ctx) -> Block:
        out: list[Step] = []
        for stmt in body:
            # The runtime API (simulate.python.runtime_api) sees each statement before
            # its nested blocks, in order; its error is a RaiseStep where it happens.
            failure = (
                self.runtime.statement(stmt, ctx.runs, ctx.in_class)
                if self.runtime is not None
                else None
            )
            steps = self.stmt(stmt, ctx)
            if failure is not None:
                raised = RaiseStep(
                    line=failure.line,
                    text=self.text(stmt),
                    exc_type=failure.exc_type,
                    message=failure.message,
                )
                steps = [raised, *steps] if failure.before_body else [*steps, raised]
            out.extend(steps)
        return tuple(out)

    def bind(self, name: str, ctx: _Ctx, line: int | None = None) -> None:
        if not ctx.in_class:
            self.functions.pop(name, None)
            at = self.line if line is None else line
            self.bound[name] = min(self.bound.get(name, at), at)

    def bind_target(self, node: ast.expr, ctx: _Ctx) -> None:
        if isinstance(node, ast.Name):
            self.bind(node.id, ctx)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for e in node.elts:
                self.bind_target(e, ctx)
        elif isinstance(node, ast.Starred):
            self.bind_target(node.value, ctx)

    def stmt(self, s: ast.stmt, ctx: _Ctx) -> list[Step]:
        self.line = s.lineno
        handler = getattr(self, "stmt_" + type(s).__name__, None)
        if handler is None:
            return self.calls(s, ctx)
        steps: list[Step] = handler(s, ctx)
        return steps

    def stmt_Import(self, s: ast.Import, ctx: _Ctx) -> list[Step]:
        steps: list[Step] = []
        for alias in s.names:
            bound = alias.asname or alias.name.partition(".")[0]
            value = alias.name if alias.asname else bound
            step = self.edge(s, ctx, alias.name, "import")
            steps.append(replace(step, bind=None if ctx.in_class else bound, value=value))
            self.bind(bound, ctx)
        return steps

    def stmt_ImportFrom(self, s: ast.ImportFrom, ctx: _Ctx) -> list[Step]:
        return self.import_from(s, ctx)

    def stmt_If(self, s: ast.If, ctx: _Ctx) -> list[Step]:
        tc = _is_type_checking(s.test)
        value: bool | None = False if tc else self.cond.value(s.test)
        cond = f"if {ast.unparse(s.test)}"
        steps = self.calls(s.test, ctx)
        body = self.block(s.body, ctx.under(value, cond, type_checking=tc))
        other = None if value is None else not value
        orelse = self.block(s.orelse, ctx.under(other, f"else of {cond}"))
        test = None if ctx.in_class else s.test
        return [
            *steps,
            CondStep(
                line=s.lineno, condition=cond, runs=value, body=body, orelse=orelse, test=test
            ),
        ]

    def stmt_Try(self, s: ast.Try, ctx: _Ctx) -> list[Step]:
        return [self.try_step(s, ctx)]

    stmt_TryStar = stmt_Try

    def stmt_With(self, s: ast.With, ctx: _Ctx) -> list[Step]:
        steps: list[Step] = []
        suppressed: list[str] = []
        for item in s.items:
            steps.extend(self.calls(item.context_expr, ctx))
            if item.optional_vars is not None:
                self.bind_target(item.optional_vars, ctx)
                if not ctx.in_class:
                    steps.append(
                        AssignStep(line=s.lineno, targets=(item.optional_vars,), value=None)
                    )
            call = item.context_expr
            if (
                isinstance(call, ast.Call)
                and (_dotted(call.func) or "").rpartition(".")[2] == "suppress"
            ):
                suppressed.extend(_dotted(arg) or "<expression>" for arg in call.args)
        if suppressed:
            guard = Guard(catches=tuple(suppressed), text=self.text(s), line=s.lineno)
            inner = _Ctx(
                guards=(guard, *ctx.guards),
                type_checking=ctx.type_checking,
                runs=ctx.runs,
                condition=ctx.condition,
                in_class=ctx.in_class,
            )
            body = self.block(s.body, inner)
            return [
                *steps,
                TryStep(line=s.lineno, body=body, handlers=(Handler(guard=guard, body=()),)),
            ]
        return [*steps, *self.block(s.body, ctx)]

    stmt_AsyncWith = stmt_With

    def stmt_While(self, s: ast.While, ctx: _Ctx) -> list[Step]:
        steps = self.calls(s.test, ctx)
        value = self.cond.value(s.test)
        what = f"while {ast.unparse(s.test)}" if value is not None else "the loop body"
        return [*steps, *self.loop_as_condition(s, ctx, value, what)]

    def stmt_For(self, s: ast.For, ctx: _Ctx) -> list[Step]:
        steps = self.calls(s.iter, ctx)
        self.bind_target(s.target, ctx)
        if ctx.in_class or _leaves_loop(s.body) or s.orelse:
            return [*steps, *self.loop_as_condition(s, ctx, None, "the loop body")]
        what = f"for {ast.unparse(s.target)} in {ast.unparse(s.iter)}"
        body = self.block(s.body, ctx.under(None, what))
        return [*steps, LoopStep(line=s.lineno, text=what, target=s.target, iter=s.iter, body=body)]

    stmt_AsyncFor = stmt_For

    def loop_as_condition(
        self, s: ast.For | ast.AsyncFor | ast.While, ctx: _Ctx, value: bool | None, what: str
    ) -> list[Step]:
        """A loop the executor does not unroll: its body runs perhaps, its else perhaps."""
        body = self.block(s.body, ctx.under(value, what))
        if not isinstance(s, ast.While) and not ctx.in_class:
            body = (
                AssignStep(line=s.lineno, targets=(s.target,), value=None),
                *body,
            )  # the target, unknown
        orelse = self.block(s.orelse, ctx.under(None, "the loop's else"))
        return [
            CondStep(line=s.lineno, condition=what, runs=value, body=body),
            CondStep(
                line=s.lineno,
                condition="the loop's else",
                runs=None,
                body=orelse,
                search_else=not _imports_or_catches(s.body),
            ),
        ]

    def stmt_Match(self, s: ast.Match, ctx: _Ctx) -> list[Step]:
        steps = self.calls(s.subject, ctx)
        for case in s.cases:
            what = f"case {ast.unparse(case.pattern)}"
            steps.append(
                CondStep(
                    line=case.pattern.lineno,
                    condition=what,
                    runs=None,
                    body=self.block(case.body, ctx.under(None, what)),
                )
            )
        return steps

    def stmt_Raise(self, s: ast.Raise, ctx: _Ctx) -> list[Step]:
        return [*self.calls(s.exc, ctx), self.raise_step(s)]

    def stmt_Assert(self, s: ast.Assert, ctx: _Ctx) -> list[Step]:
        # Lambda runs without -O: ``assert test, msg`` is ``if not test: raise
        # AssertionError(msg)`` (click's ``assert sys.platform == "win32"``).
        fails = ast.UnaryOp(op=ast.Not(), operand=s.test)
        what = f"assert {ast.unparse(s.test)}"
        message: str | None = "" if s.msg is None else None
        if isinstance(s.msg, ast.Constant) and isinstance(s.msg.value, str):
            message = s.msg.value
        exc = ast.Call(
            func=ast.Name(id="AssertionError", ctx=ast.Load()),
            args=[] if s.msg is None else [s.msg],
            keywords=[],
        )
        raised = RaiseStep(
            line=s.lineno, text=self.text(s), exc_type="AssertionError", message=message, exc=exc
        )
        value = self.cond.value(fails)
        body = (*self.calls(s.msg, ctx.under(value, what)), raised)
        step = CondStep(
            line=s.lineno,
            condition=what,
            runs=value,
            body=body,
            test=None if ctx.in_class else fails,
        )
        return [*self.calls(s.test, ctx), step]

    def stmt_FunctionDef(self, s: ast.FunctionDef | ast.AsyncFunctionDef, ctx: _Ctx) -> list[Step]:
        # Only a function defined once, where the body surely runs, is followed into.
        once = s.name not in self.bound and ctx.runs == "yes"
        self.bind(s.name, ctx)
        if once and not ctx.in_class and isinstance(s, ast.FunctionDef):
            self.functions[s.name] = s  # an async def's call runs nothing
        if s.name == "__getattr__" and not ctx.in_class:
            self.opens(s.lineno)
        steps: list[Step] = []
        for expr in [
            *s.decorator_list,
            *s.args.defaults,
            *[d for d in s.args.kw_defaults if d is not None],
        ]:
            steps.extend(self.calls(expr, ctx))
        if not ctx.in_class:
            steps.append(
                AssignStep(
                    line=s.lineno,
                    targets=(ast.Name(s.name, ast.Store()),),
                    value=None,
                    what="function",
                    function=s
                    if isinstance(s, ast.FunctionDef) and _inlinable(s, self.may_hold)
                    else None,
                )
            )
        return steps

    stmt_AsyncFunctionDef = stmt_FunctionDef

    def stmt_ClassDef(self, s: ast.ClassDef, ctx: _Ctx) -> list[Step]:
        steps: list[Step] = []
        for expr in [*s.decorator_list, *s.bases, *(k.value for k in s.keywords)]:
            steps.extend(self.calls(expr, ctx))
        inner = _Ctx(
            guards=ctx.guards,
            type_checking=ctx.type_checking,
            runs=ctx.runs,
            condition=ctx.condition,
            in_class=True,
            class_names=_ClassNames(s),
        )
        steps.extend(self.block(s.body, inner))
        self.bind(s.name, ctx, s.lineno)
        if not ctx.in_class:
            steps.append(
                AssignStep(
                    line=s.lineno,
                    targets=(ast.Name(s.name, ast.Store()),),
                    value=None,
                    what="class",
                )
            )
        return steps

    def stmt_TypeAlias(self, s: ast.stmt, ctx: _Ctx) -> list[Step]:
        # ``type X = ...`` (3.12) binds X; its value is evaluated lazily, so nothing in it
        # runs at import (numpy 2.x binds its shape aliases this way).
        name = getattr(s, "name", None)
        if not isinstance(name, ast.Name):
            return []
        self.bind(name.id, ctx)
        if ctx.in_class:
            return []
        return [
            AssignStep(
                line=s.lineno,
                targets=(ast.Name(name.id, ast.Store()),),
                value=None,
                what="type alias",
            )
        ]

    def stmt_Assign(self, s: ast.Assign, ctx: _Ctx) -> list[Step]:
        for t in s.targets:
            self.bind_target(t, ctx)
            self.note_special_target(t, s.value, ctx)
            if isinstance(t, ast.Name) and not ctx.in_class:
                self.cond.assign(t.id, s.value)
        steps = self.calls(s, ctx)
        if not ctx.in_class:
            steps.append(AssignStep(line=s.lineno, targets=tuple(s.targets), value=s.value))
        return steps

    def stmt_AugAssign(self, s: ast.AugAssign, ctx: _Ctx) -> list[Step]:
        self.bind_target(s.target, ctx)
        if isinstance(s.target, ast.Name) and not ctx.in_class:
            self.cond.consts[s.target.id] = None  # changed in place: never trusted statically
        steps = self.calls(s, ctx)
        if not ctx.in_class:
            steps.append(AssignStep(line=s.lineno, targets=(s.target,), value=s.value, op=s.op))
        return steps

    def stmt_AnnAssign(self, s: ast.AnnAssign, ctx: _Ctx) -> list[Step]:
        steps = self.calls(s, ctx)
        if s.value is None:
            return steps
        self.bind_target(s.target, ctx)
        if not ctx.in_class:
            steps.append(AssignStep(line=s.lineno, targets=(s.target,), value=s.value))
        return steps

    def stmt_Expr(self, s: ast.Expr, ctx: _Ctx) -> list[Step]:
        steps = self.calls(s, ctx)
        if not ctx.in_class and not isinstance(s.value, ast.Constant):
            steps.append(ExprStep(line=s.lineno, expr=s.value))
        return steps

    def note_special_target(self, target: ast.expr, value: ast.expr, ctx: _Ctx) -> None:
        if ctx.in_class:
            return
        if (
            isinstance(target, ast.Name)
            and target.id == "__all__"
            and isinstance(value, (ast.List, ast.Tuple))
        ):
            names = [e.value for e in value.elts if isinstance(e, ast.Constant)]
            if len(names) == len(value.elts) and all(isinstance(n, str) for n in names):
                self.all_names = tuple(str(n) for n in names)
        if isinstance(target, ast.Subscript) and _dotted(target.value) == "sys.modules":
            self.opens(target.lineno)  # the module replaces itself in sys.modules

    def try_step(self, s: ast.Try, ctx: _Ctx) -> TryStep:
        guards = tuple(
            Guard(
                catches=_handler_names(h.type),
                text=self.text(h),
                line=h.lineno,
                reraises=_ends_in_raise(h.body),
            )
            for h in s.handlers
        )
        inner = _Ctx(
            guards=(*guards, *ctx.guards),
            type_checking=ctx.type_checking,
            runs=ctx.runs,
            condition=ctx.condition,
            in_class=ctx.in_class,
        )
        body = self.block(s.body, inner)
        handlers = []
        for h, guard in zip(s.handlers, guards, strict=True):
            if h.name:
                self.bind(h.name, ctx, h.lineno)
            hctx = ctx.under(None, f"{guard.text} (when the try block fails)")
            name = None if ctx.in_class else h.name
            handlers.append(Handler(guard=guard, body=self.block(h.body, hctx), name=name))
        orelse = self.block(s.orelse, ctx.under(None, "the try block's else"))
        final = self.block(s.finalbody, ctx)
        return TryStep(
            line=s.lineno, body=body, handlers=tuple(handlers), orelse=orelse, final=final
        )

    def raise_step(self, s: ast.Raise) -> RaiseStep:
        exc = s.exc
        if exc is None:
            return RaiseStep(line=s.lineno, text=self.text(s), exc_type=None, message=None)
        call = exc if isinstance(exc, ast.Call) else None
        name = _dotted(call.func if call is not None else exc)
        message: str | None = None
        if call is not None:
            if not call.args:
                message = ""
            elif isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
                message = call.args[0].value if len(call.args) == 1 else None
        elif name is not None:
            message = ""
        return RaiseStep(
            line=s.lineno,
            text=self.text(s),
            exc_type=name or "<expression>",
            message=message,
            exc=exc,
        )

    def resolve(self, level: int, module: str | None) -> tuple[str | None, str | None]:
        """The absolute module of a relative import, or the ImportError message."""
        if level == 0:
            return module, None
        if not self.package:
            return None, "attempted relative import with no known parent package"
        parts = self.package.split(".")
        if level - 1 >= len(parts):
            return None, "attempted relative import beyond top-level package"
        base = ".".join(parts[: len(parts) - (level - 1)])
        return (f"{base}.{module}" if module else base), None

    def import_from(self, s: ast.ImportFrom, ctx: _Ctx) -> list[Step]:
        base, problem = self.resolve(s.level, s.module)
        if base is None:
            kind = "ImportError"
            if problem and "beyond" in problem and self.cond.version < (3, 9):
                kind = "ValueError"  # 3.9 made it an ImportError
            return [RaiseStep(line=s.lineno, text=self.text(s), exc_type=kind, message=problem)]
        steps: list[Step] = [self.edge(s, ctx, base, "from")]
        names: list[ImportStep] = []
        for alias in s.names:
            if alias.name == "*":
                self.opens(s.lineno)
                steps.append(self.edge(s, ctx, base, "star"))
                continue
            bound = alias.asname or alias.name
            self.bind(bound, ctx)
            full = f"{base}.{alias.name}"
            if self.is_module(full):
                step = self.edge(s, ctx, full, "submodule")
            else:
                step = self.edge(s, ctx, base, "name", alias.name)
            names.append(replace(step, bind=None if ctx.in_class else bound))
        # CPython imports every submodule the statement names first (_handle_fromlist),
        # then reads the names: in "from . import _ext, sub", sub's own error comes
        # before "cannot import name '_ext'".
        return steps + sorted(names, key=lambda st: st.edge.kind != "submodule")

    def calls(self, node: ast.AST | None, ctx: _Ctx) -> list[Step]:
        """``import_module("x")`` / ``__import__("x")`` calls evaluated by this statement."""
        if node is None or not self.may_hold(node, _CALL_WORDS):
            return []
        out: list[Step] = []
        todo: list[ast.AST] = [node]
        reads: set[int] = set()  # globals() calls that only read: 'x' in globals()
        while todo:
            n = todo.pop()
            if isinstance(n, _NOT_WALKED_FOR_CALLS):
                continue  # a leaf (a name's only child is its context), or a body not run
            _note_reads(n, reads)
            if isinstance(n, ast.Call):
                name = _dotted(n.func)
                guarded = id(n) in reads or id(n) in self.guarded_globals
                if name == "globals" and not guarded:
                    self.opens(getattr(n, "lineno", 0))
                    self.writes_globals = True
                if name in _IMPORT_FUNCS:
                    target = self.dynamic_target(n, name)
                    if target is not None:
                        out.append(self.edge(n, ctx, target, "dynamic"))
                if name in self.functions:
                    out.extend(self.called_imports(n, name, ctx))
                    if self.opens_when_called(name):
                        # fontTools' otTables: _buildClasses() binds its classes through
                        # "namespace = globals()"; any name may be bound after the call.
                        self.opens(getattr(n, "lineno", 0))
                        self.writes_globals = True
                out.extend(_native_call(n, ctx))
            todo.extend(reversed(child_nodes(n)))
        return out

    def opens_when_called(self, func: str) -> bool:
        """Whether the body of the module-level function ``func`` writes the module's
        globals when called (a ``globals()`` call that is not only read)."""
        known = self.writes_when_called.get(func)
        if known is None:
            fn = self.functions[func]
            known = self.may_hold(fn, (b"globals",)) and _calls_globals(fn.body)
            self.writes_when_called[func] = known
        return known

    def called_imports(self, call: ast.Call, func: str, ctx: _Ctx) -> list[Step]:
        """The imports a call of a module-level function runs first, as edges at the
        call's line (where the module is paused while they run); they bind nothing
        at module level."""
        out: list[Step] = []
        for s in _leading_imports(self.functions[func].body):
            how = f"{self.text(s)}  (in {func}(), line {s.lineno}, called here)"
            if isinstance(s, ast.Import):
                out.extend(self.edge(call, ctx, a.name, "import", statement=how) for a in s.names)
                continue
            base, _ = self.resolve(s.level, s.module)
            if base is None:
                continue
            out.append(self.edge(call, ctx, base, "from", statement=how))
            for alias in s.names:
                full = f"{base}.{alias.name}"
                if alias.name == "*":
                    continue
                if self.is_module(full):
                    out.append(self.edge(call, ctx, full, "submodule", statement=how))
                else:
                    out.append(self.edge(call, ctx, base, "name", alias.name, statement=how))
        return out

    def dynamic_target(self, call: ast.Call, func: str) -> str | None:
        if not call.args or not isinstance(call.args[0], ast.Constant):
            return None
        name = call.args[0].value
        if not isinstance(name, str) or not name.strip("."):
            return None
        if func.endswith("__import__"):
            level = 0
            args = [*call.args[4:5], *(k.value for k in call.keywords if k.arg == "level")]
            if args:
                if not isinstance(args[0], ast.Constant) or not isinstance(args[0].value, int):
                    return None
                level = args[0].value
            return name if level == 0 else None
        if not name.startswith("."):
            return name
        pkg_args = [*call.args[1:2], *(k.value for k in call.keywords if k.arg == "package")]
        if not pkg_args:
            return None
        arg = pkg_args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            package = arg.value
        elif isinstance(arg, ast.Name) and arg.id == "__package__":
            package = self.package
        elif isinstance(arg, ast.Name) and arg.id == "__name__":
            package = self.module
        else:
            return None
        level = len(name) - len(name.lstrip("."))
        parts = package.split(".") if package else []
        if level - 1 >= len(parts):
            return None
        base = ".".join(parts[: len(parts) - (level - 1)])
        rest = name[level:]
        return f"{base}.{rest}" if rest else base


def extract(
    tree: ast.Module,
    module: str,
    path: str,
    is_package: bool,
    lines: Sequence[str],
    target: tuple[int, int],
    is_module: Callable[[str], bool],
    syntax: SyntaxVerdict | None = None,
    stdlib: str | None = None,
    source: bytes | None = None,
) -> ModuleSource:
    """The import-time program of one parsed module (``stdlib``: the target's stdlib
    directory, for the messages of the runtime API's errors; ``source``: the bytes it
    was parsed from, whose text spares walks of subtrees that cannot matter)."""
    package = module if is_package else module.rpartition(".")[0]
    text = _SourceText.of(source) if source is not None else None
    # A walk of the whole tree costs as much as the extraction: only when the
    # text can hold a global statement. (The words are ASCII and hold no line end:
    # found in the joined lines, they are in one line, and in the bytes decoded
    # with "replace", they are the same bytes; the bytes spare joining the lines.)
    joined: str | bytes = source if source is not None else "\n".join(lines)
    if source is not None and text is not None:  # ASCII spells the statement's words
        may_declare = _global_statement_in(source)
    else:
        may_declare = _says(joined, "global")
    declared = _declared_global(tree) if may_declare else frozenset()
    conditions = _Conditions(target)
    # A function may rebind them whenever it is called: never trusted statically.
    conditions.consts.update(dict.fromkeys(declared))
    ex = _Extractor(module, package, lines, conditions, is_module, RuntimeChecker(target, stdlib))
    guarded = (
        prefix_guarded_globals(tree)
        if _says(joined, "globals()")
        else GuardedGlobals(calls=frozenset(), prefixes=())
    )
    ex.guarded_globals = guarded.calls
    if text is not None:
        ex.may_hold = text.may_hold
    body = ex.block(tree.body, _Ctx())
    return ModuleSource(
        name=module,
        path=path,
        is_package=is_package,
        syntax=syntax,
        body=body,
        edges=tuple(ex.edges),
        bound=dict(ex.bound),
        open_namespace=ex.open_namespace
        or (_says(joined, "sys.modules[") and _replaces_itself(tree)),
        open_line=ex.open_line,
        all_names=ex.all_names,
        declared_global=declared,
        bound_by_call=_bound_by_call(tree) if declared else {},
        global_writers=_global_writers(tree) if declared else {},
        writes_globals=ex.writes_globals,
        globals_prefixes=guarded.prefixes,
        lazy=_lazy_table(tree),
    )


def _calls_globals(body: Sequence[ast.stmt]) -> bool:
    """Whether a function body (not the functions and classes it defines) calls
    ``globals()`` other than to read it: ``'x' in globals()``, ``globals().get(x)``."""
    reads: set[int] = set()
    found: list[int] = []
    todo: list[ast.AST] = list(body)
    while todo:
        n = todo.pop()
        if isinstance(n, _NOT_WALKED_FOR_CALLS):
            continue
        _note_reads(n, reads)
        if isinstance(n, ast.Call) and _dotted(n.func) == "globals":
            found.append(id(n))
        todo.extend(child_nodes(n))
    return any(call not in reads for call in found)


def _note_reads(n: ast.AST, reads: set[int]) -> None:
    """Adds to ``reads`` the ids of the expressions ``n`` only reads from: ``x in <e>``,
    ``<e>.get(...)`` (where ``<e>`` is ``globals()``, the call does not write)."""
    if isinstance(n, ast.Compare):
        reads.update(
            id(c)
            for op, c in zip(n.ops, n.comparators, strict=True)
            if isinstance(op, (ast.In, ast.NotIn))
        )
    elif isinstance(n, ast.Attribute) and n.attr == "get":
        reads.add(id(n.value))


def _global_statement_in(data: bytes) -> bool:
    """Whether the source may hold a ``global`` statement: the word where a statement
    starts (the line's start, or after ``;`` or ``:``, past blanks) and followed by a
    blank or a line continuation. The word alone is in most modules (``globals()``,
    comments), and the walk it spared found a statement in few of them."""
    at = data.find(b"global")
    while at != -1:
        if at + 6 < len(data) and data[at + 6] in _BLANK_OR_CONTINUATION:
            i = at - 1
            while i >= 0 and data[i] in _BLANK:
                i -= 1
            if i < 0 or data[i] in _STATEMENT_START or data[: i + 1] == codecs.BOM_UTF8:
                return True
        at = data.find(b"global", at + 6)
    return False


_BLANK = frozenset(b" \t\f")
_BLANK_OR_CONTINUATION = frozenset(b" \t\f\\")
_STATEMENT_START = frozenset(b"\n\r;:")


def _says(text: str | bytes, word: str) -> bool:
    """Whether ``text`` (the source's decoded lines, or its bytes) holds the ASCII ``word``."""
    if isinstance(text, bytes):
        return word.encode("ascii") in text
    return word in text


def _lazy_table(tree: ast.Module) -> dict[str, str]:
    """The ``{name: module}`` tables (dict literals of strings, bound at module level)
    that a module-level ``def __getattr__`` reads: langchain's ``_dynamic_imports``."""
    getattr_def = next(
        (s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "__getattr__"),
        None,
    )
    if getattr_def is None:
        return {}
    reads = {n.id for n in ast.walk(getattr_def) if isinstance(n, ast.Name)}
    out: dict[str, str] = {}
    for s in tree.body:
        target, value = None, None
        if isinstance(s, ast.Assign) and len(s.targets) == 1:
            target, value = s.targets[0], s.value
        elif isinstance(s, ast.AnnAssign):
            target, value = s.target, s.value
        if not (isinstance(target, ast.Name) and target.id in reads):
            continue
        if not isinstance(value, ast.Dict) or None in value.keys:
            continue
        pairs = [
            (k.value, v.value)
            for k, v in zip(value.keys, value.values, strict=True)
            if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)
        ]
        if len(pairs) == len(value.keys) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in pairs
        ):
            out.update((str(k), str(v)) for k, v in pairs)
    return out


_DOTTED_RUN = re.compile(rb"(?:\w+[ \t]*\.[ \t]*)+")


def _long_dotted_import(data: bytes, limit: int) -> bool:
    """Whether an import line names a module of more than ``limit`` dotted parts.

    Checked on the bytes, before parsing: CPython's parser takes time and
    memory quadratic in the parts of one dotted name (20,000 parts: 4 s, 1.6 GB).
    """
    if data.count(b".") <= limit:
        return False
    if b"\\\n" in data:
        data = data.replace(b"\\\n", b"")
    # Only the lines that say "import" (a few in a module of thousands of lines).
    at = data.find(b"import")
    while at != -1:
        start = data.rfind(b"\n", 0, at) + 1
        end = data.find(b"\n", at)
        end = len(data) if end == -1 else end
        line = data[start:end]
        if line.count(b".") > limit and any(
            m.group().count(b".") >= limit for m in _DOTTED_RUN.finditer(line)
        ):
            return True
        at = data.find(b"import", end)
    return False


def _unfollowed(name: str, path: str, is_package: bool, why: str) -> ModuleSource:
    return ModuleSource(
        name=name,
        path=path,
        is_package=is_package,
        syntax=SyntaxVerdict(error=None, line=None, unknown=why),
    )


# -- the graph over a stack --------------------------------------------------


class SourceReader:
    """What the graph needs from the stack and the import system."""

    def __init__(
        self,
        read: Callable[[str], bytes | None],
        find: Callable[[str], tuple[str, str | None, bool] | None],
    ) -> None:
        # ``find(name)`` -> (loader kind, origin, is_package) when the stack has
        # the module, else None.
        self.read = read
        self.find = find


# parses(name, path, is_package, is_module, parse_file) -> the module's program:
# may answer from elsewhere (a cache, a worker), else calls parse_file.
ParseHook = Callable[
    [
        str,
        str,
        bool,
        Callable[[str], bool],
        Callable[[str, str, bool, Callable[[str], bool]], "ModuleSource | None"],
    ],
    "ModuleSource | None",
]


@dataclass
class ImportGraph:
    """Source modules parsed on demand, each at most once; never executed."""

    reader: SourceReader
    version: tuple[int, int]
    limits: Limits = DEFAULT_LIMITS
    parses: ParseHook | None = None
    stdlib: str | None = None  # the target's stdlib directory (/var/lang/lib/python3.X)
    _parsed: dict[str, ModuleSource | None] = field(default_factory=dict)

    def is_module(self, name: str) -> bool:
        return self.reader.find(name) is not None

    def module(self, name: str) -> ModuleSource | None:
        """The parsed source module ``name``; None when it is not a source module in the stack."""
        if name in self._parsed:
            return self._parsed[name]
        self._parsed[name] = None  # a guard while parsing (star imports look back)
        found = self.reader.find(name)
        result: ModuleSource | None = None
        try:
            if found is not None and found[0] == "source" and found[1] is not None:
                result = self._parse(name, found[1], found[2])
        except BaseException:
            # Not "no source module": an import that meets it again fails again (an
            # abiscan bug makes each module that reaches it unknown, never ok).
            del self._parsed[name]
            raise
        self._parsed[name] = result
        return result

    def _parse(self, name: str, path: str, is_package: bool) -> ModuleSource | None:
        if self.parses is not None:
            return self.parses(name, path, is_package, self.is_module, self.parse_file)
        return self.parse_file(name, path, is_package, self.is_module)

    def parse_file(
        self, name: str, path: str, is_package: bool, is_module: Callable[[str], bool]
    ) -> ModuleSource | None:
        """Read and parse one source module, asking ``is_module`` which names are modules."""
        data = self.reader.read(path)
        if data is None:
            return None
        # Hostile sources (megabytes, thousands of nested operators) must cost
        # bounded time and stack: over a budget, the module's outcome is unknown.
        # Nesting is not measured on the tree (a walk costs as much as the
        # extraction): deeper than the stack allows ends in RecursionError here.
        if len(data) > self.limits.source_bytes:
            return _unfollowed(
                name,
                path,
                is_package,
                (
                    f"the source is {len(data)} bytes, over the budget of "
                    f"{self.limits.source_bytes} (--limits source_bytes=N)"
                ),
            )
        if _long_dotted_import(data, self.limits.source_depth):
            return _unfollowed(
                name,
                path,
                is_package,
                (
                    f"an import names more than {self.limits.source_depth} dotted parts, over the "
                    "budget (--limits source_depth=N)"
                ),
            )
        try:
            # Parsing and extracting make no cycles: a collection would walk the new
            # tree and the whole heap for nothing.
            with collector_paused():
                return self._parse_source(name, path, is_package, data, is_module)
        except (RecursionError, MemoryError) as exc:
            return _unfollowed(
                name,
                path,
                is_package,
                (f"the source is nested too deeply for abiscan to follow ({type(exc).__name__})"),
            )

    def _parse_source(
        self,
        name: str,
        path: str,
        is_package: bool,
        data: bytes,
        is_module: Callable[[str], bool],
    ) -> ModuleSource | None:
        tree, verdict = check_syntax(data, path, self.version)
        if tree is None:
            return ModuleSource(name=name, path=path, is_package=is_package, syntax=verdict)
        lines = data.decode("utf-8", "replace").splitlines()
        parsed = extract(
            tree,
            name,
            path,
            is_package,
            lines,
            self.version,
            is_module,
            verdict,
            self.stdlib,
            source=data,
        )
        # Textual on purpose: these hooks are usually installed from inside a
        # function (VendorImporter.install()), where the extractor never looks.
        finder = b"meta_path" in data or b"path_hooks" in data
        extends = is_package and (
            b"extend_path" in data
            or b"declare_namespace" in data
            or b"__path__ =" in data
            or b"__path__.append" in data
        )
        if finder or extends:
            names: frozenset[str] = frozenset()
            if finder:
                # Dots at either end too: six registers "moves." + name and
                # __name__ + ".moves".
                names = frozenset(
                    n.value.strip(".")
                    for n in ast.walk(tree)
                    if isinstance(n, ast.Constant)
                    and isinstance(n.value, str)
                    and _MODULE_NAME.fullmatch(n.value.strip("."))
                )
            parsed = replace(parsed, custom_finder=finder, extends_path=extends, hook_names=names)
        kept = _kept_defs(parsed.body)
        if kept:  # as their text, after the last walk of the tree: cheaper to keep and cache
            keep_def_sources(kept, data)
        return parsed

    def edges(self, name: str) -> tuple[ImportEdge, ...]:
        parsed = self.module(name)
        return parsed.edges if parsed is not None else ()

    @property
    def parsed(self) -> dict[str, ModuleSource]:
        return {k: v for k, v in self._parsed.items() if v is not None}


# A call is written with a parenthesis: a statement whose text has none calls nothing.
_CALL_WORDS = (b"(",)


def _kept_defs(block: Block) -> list[ast.FunctionDef]:
    """The ``def`` nodes the steps of ``block`` keep for the evaluator, nested ones too."""
    out: list[ast.FunctionDef] = []
    for step in block:
        if isinstance(step, AssignStep):
            if step.function is not None:
                out.append(step.function)
        else:
            for inner in inner_blocks(step):
                out += _kept_defs(inner)
    return out


def inner_blocks(step: Step) -> tuple[Block, ...]:
    """The blocks nested in ``step``: an ``if``'s both sides, a loop's body, every
    block of a ``try``."""
    if isinstance(step, CondStep):
        return (step.body, step.orelse)
    if isinstance(step, LoopStep):
        return (step.body,)
    if isinstance(step, TryStep):
        return (step.body, step.orelse, step.final, *(h.body for h in step.handlers))
    return ()


def _native_call(call: ast.Call, ctx: _Ctx) -> list[Step]:
    """A check of ``call`` against an extension class's signature, where it may apply:
    a bare module-level name called with keywords, none of them ``**``."""
    func = call.func
    if (
        not isinstance(func, ast.Name)
        or not call.keywords
        or any(k.arg is None for k in call.keywords)
        or any(isinstance(a, ast.Starred) for a in call.args)
        or ctx.runs == "no"
        or ctx.type_checking
        or func.id in ctx.class_names
    ):
        return []
    return [ExprStep(line=getattr(call, "lineno", 0), expr=call, native_call=True)]


class _ClassNames:
    """The names a class body binds, found when first asked: only a call with keywords
    in a class body asks (most classes have none)."""

    def __init__(self, cls: ast.ClassDef) -> None:
        self.cls = cls
        self.names: frozenset[str] | None = None

    def __contains__(self, name: object) -> bool:
        if self.names is None:
            self.names = _class_names(self.cls)
        return name in self.names


def _class_names(cls: ast.ClassDef) -> frozenset[str]:
    """The names a class body binds (anywhere in it: they shadow module-level ones).

    Every node of the body is visited, as ``ast.walk`` does, by a loop over a list
    instead of its generators: this walk was 40% of the extraction of the real
    layer's modules (docs/benchmarks.md), and the loop takes half the time."""
    names: set[str] = set()
    todo: list[ast.AST] = list(cls.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Store):
                names.add(node.id)
            continue  # its only child is its context
        if isinstance(node, ast.Constant):
            continue  # a leaf
        if isinstance(node, _DEFS):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).partition(".")[0])
            continue
        todo.extend(child_nodes(node))
    return frozenset(names)


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
