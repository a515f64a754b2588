"""Runs one module's import-time program, statement by statement, on known values.

:class:`BodyRun` executes the steps :mod:`abiscan.simulate.python.import_graph`
extracts: imports (through the simulator, which follows them), assignments,
expression statements, ``if``, ``try``, ``for`` over known sequences and
``raise``, with the values :mod:`abiscan.simulate.python.evaluator` computes.
Its answer is the exception that leaves the module body (a :class:`Raised`),
or None.

An ``if`` whose test stays unknown runs both branches on copies of the
namespace and keeps what they agree on. A failure on one side only is a
failure that *may* happen, with one exception: a branch that does nothing but
raise (a consistency check, such as Pillow's version check against its C
extension) is taken not to fire when the module's files come from one intact
distribution; the prediction records that as an :class:`Assumption`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from abiscan.report.findings import PredictedError
from abiscan.report.model import Assumption, ChainStep
from abiscan.simulate.python.evaluator import (
    UNKNOWN,
    ClassRef,
    EvalRaise,
    Evaluator,
    ExcValue,
    Function,
    ModuleRef,
    Namespace,
    Opaque,
    Probe,
    TargetFacts,
    VersionInfo,
    truth,
)
from abiscan.simulate.python.import_graph import (
    AssignStep,
    Block,
    CondStep,
    ExprStep,
    ImportStep,
    LoopStep,
    ModuleSource,
    RaiseStep,
    Step,
    TryStep,
    catches,
    inner_blocks,
)
from abiscan.simulate.python.raised import Pierced, Raised, weaker

__all__ = ["RUNTIME_MESSAGE", "BodyRun", "Pierced", "Raised", "Runner", "weaker"]

RUNTIME_MESSAGE = "<message built at run time>"
_MAX_UNROLL = 256  # longest loop unrolled; longer ones run once, undecided
class Runner(Protocol):
    """What running a module body needs from the simulator around it."""

    @property
    def facts(self) -> TargetFacts:
        """What the target interpreter fixes."""

    def import_step(self, source: ModuleSource, step: ImportStep) -> Raised | None:
        """Carries out one import statement (following the import)."""

    def import_module(self, name: str) -> Raised | None:
        """``__import__(name)`` with a computed name."""

    def attribute(self, module: str, name: str) -> Any:
        """``module.name`` by value: a value, UNKNOWN, or MISSING."""

    def listdir(self, path: str) -> list[str] | None:
        """The entries of a directory of the target (None: not a directory)."""

    def intact(self, path: str) -> str | None:
        """The distribution ``path`` belongs to, when its files are all there as RECORD says."""

    def assume(self, assumption: Assumption) -> None:
        """Records a side taken on an undecided condition."""

    def optional(self, paths: tuple[str | None, ...], module: str) -> str | None:
        """Why ``module``, absent from the stack, is an optional dependency of the
        distributions holding ``paths`` (None: it may be required, or it is not known)."""

    def note_pierced(self, source: ModuleSource, step: TryStep, got: Raised) -> None:
        """Notes an import guard that what arrives passes through."""

    def native_call(
        self, caller: str, native: tuple[str, str], positional: int, keywords: tuple[str, ...]
    ) -> str | None:
        """The TypeError message of calling ``native`` (extension module, class) from the
        file ``caller`` with these arguments, when it certainly raises one."""


class _Failed(Exception):
    """Carries a :class:`Raised` out of an evaluation (``__import__`` of a computed name)."""

    def __init__(self, raised: Raised) -> None:
        super().__init__(raised.reason)
        self.raised = raised


class _Modules:
    """The evaluator's view of the other modules, through the runner."""

    def __init__(self, runner: Runner, where: Callable[[], tuple[str, str | None, int]]) -> None:
        self.runner = runner
        self.where = where

    def attribute(self, module: str, name: str) -> Any:
        return self.runner.attribute(module, name)

    def listdir(self, path: str) -> list[str] | None:
        return self.runner.listdir(path)

    def import_module(self, name: str) -> ModuleRef:
        got = self.runner.import_module(name)
        if got is not None:
            module, path, line = self.where()
            raise _Failed(
                got.via(
                    ChainStep(
                        module=module,
                        imports=name,
                        how="dynamic",
                        path=path,
                        line=line,
                        statement=f"__import__({name!r})",
                    )
                )
            )
        return ModuleRef(name=name)

    def imports(self, name: str) -> bool | None:
        got = self.runner.import_module(name)
        if got is None:
            return True
        if got.certain and got.error is not None and got.error.type in _IMPORT_ERRORS:
            return False
        return None


_IMPORT_ERRORS = ("ImportError", "ModuleNotFoundError")


class BodyRun:
    """One run of one module's body: its namespace, and the statements in order."""

    def __init__(self, runner: Runner, source: ModuleSource, ns: Namespace) -> None:
        self.runner = runner
        self.source = source
        self.ns = ns
        self.line = 0
        self.ev = Evaluator(ns, runner.facts, _Modules(runner, self._where))
        # The except clauses around the statement running, innermost last.
        self.handlers: list[TryStep] = []

    def _where(self) -> tuple[str, str | None, int]:
        return self.source.name, self.source.path, self.line

    def run(self) -> Raised | None:
        try:
            return self.block(self.source.body, None)
        finally:
            # The evaluator reaches this run back (through _Modules.where): a cycle
            # holding the simulator, and with it every program and outcome of the
            # scan, until the cyclic collector walks it (0.2 to 0.3 s after a scan of
            # the real layer). Broken here, the run is freed when it returns.
            del self.ev

    def block(self, block: Block, caught: Raised | None) -> Raised | None:
        maybe: Raised | None = None
        for step in block:
            got = self.step(step, caught)
            if got is None:
                continue
            if got.certain:
                return got
            maybe = maybe or got
        return maybe

    def step(self, step: Step, caught: Raised | None) -> Raised | None:
        if isinstance(step, ImportStep):
            self.line = step.edge.line
            return self.runner.import_step(self.source, step)
        self.line = step.line
        if isinstance(step, AssignStep):
            return self.assign(step)
        if isinstance(step, ExprStep) and step.native_call:
            return self.native_call(step.expr)
        if isinstance(step, ExprStep):
            return self.evaluate(step.expr)[1]
        if isinstance(step, CondStep):
            return self.cond(step, caught)
        if isinstance(step, LoopStep):
            return self.loop(step, caught)
        if isinstance(step, TryStep):
            return self.try_(step, caught)
        return self.raise_(step, caught)

    # -- values --------------------------------------------------------------

    def evaluate(self, node: ast.expr) -> tuple[Any, Raised | None]:
        """The value of ``node``, or what evaluating it raises."""
        self.ev.used = []
        if self.source.global_writers:
            self._forget_globals(node)
        try:
            return self.ev.eval(node), None
        except EvalRaise as exc:
            if exc.exc_type == "NameError" and not self._catching("NameError"):
                # Outside the "try: X except NameError:" idiom, an unbound name is more
                # likely bound where abiscan does not look (builtins.x = ..., exec).
                return UNKNOWN, None
            error = PredictedError(type=exc.exc_type, message=exc.message)
            why = f"{self.source.path}:{self.line}: {ast.unparse(node)} raises {error}"
            return UNKNOWN, Raised(error=error, steps=(), broken=self.source.name, reason=why)
        except _Failed as failed:
            return UNKNOWN, failed.raised

    def _forget_globals(self, node: ast.expr) -> None:
        """A call of a function that rebinds module globals (``global x`` in its body, or
        in a function it calls): what the run knew of those names no longer holds. Its
        body is not run, so they are UNKNOWN from before the call on."""
        writers = self.source.global_writers
        for call in ast.walk(node):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name):
                for name in writers.get(call.func.id, ()):
                    if name in self.ns.values:
                        self.ns.values[name] = UNKNOWN

    def native_call(self, call: ast.expr) -> Raised | None:
        """A call of a class from an extension module whose binding fails (native_api)."""
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
            return None
        native = self.ns.natives.get(call.func.id)
        if native is None:
            return None
        keywords = tuple(k.arg for k in call.keywords if k.arg is not None)
        message = self.runner.native_call(self.source.path, native, len(call.args), keywords)
        if message is None:
            return None
        error = PredictedError(type="TypeError", message=message)
        why = (
            f"{self.source.path}:{self.line}: {ast.unparse(call)} raises {error}: "
            f"{native[0]}.{native[1]}, from another version of the project, has no such "
            "parameter (the signature Cython embedded in the binary)"
        )
        return Raised(error=error, steps=(), broken=self.source.name, reason=why)

    def bind(self, target: ast.expr, value: Any, used: tuple[str, ...] = ()) -> None:
        if isinstance(target, ast.Name):
            self.ns.natives.pop(target.id, None)
            self.ns.values[target.id] = value
            if used:
                self.ns.taint[target.id] = used
            else:
                self.ns.taint.pop(target.id, None)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt, item in zip(target.elts, _unpacked(target.elts, value), strict=True):
                inner = elt.value if isinstance(elt, ast.Starred) else elt
                self.bind(inner, item, used)

    def assign(self, step: AssignStep) -> Raised | None:
        if step.value is None:
            value: Any = (
                ClassRef(name=_name_of(step.targets))
                if step.what == "class"
                else (self._function(step) if step.what == "function" else UNKNOWN)
            )
            for target in step.targets:
                self.bind(target, value)
            return None
        if step.op is not None:
            target = step.targets[0]
            node: ast.expr = (
                ast.BinOp(ast.Name(target.id, ast.Load()), step.op, step.value)
                if isinstance(target, ast.Name)
                else step.value
            )
            value, raised = self.evaluate(node)
            if not isinstance(target, ast.Name):
                value = UNKNOWN
        else:
            value, raised = self.evaluate(step.value)
        if raised is not None:
            return raised
        used = tuple(self.ev.used)
        for target in step.targets:
            self.bind(target, value, used)
        return None

    def _function(self, step: AssignStep) -> Any:
        if step.function is None:
            return _FUNCTION
        return Function(node=step.function, globals=self.ns)

    # -- control flow ----------------------------------------------------------

    def cond(self, step: CondStep, caught: Raised | None) -> Raised | None:
        runs = step.runs
        value: Any = UNKNOWN
        if runs is None and step.test is not None:
            value, raised = self.evaluate(step.test)
            if raised is not None:
                return raised
            runs = truth(value)
            # Worth saying only where the side not taken could have failed.
            if runs is not None and self.ev.used and _may_fail(step.orelse if runs else step.body):
                self._assume(step, runs, "; ".join(dict.fromkeys(self.ev.used)))
        if runs is True:
            return self.block(step.body, caught)
        if runs is False:
            return self.block(step.orelse, caught)
        probe = (
            value
            if runs is None and step.test is not None and isinstance(value, Probe) and value.test
            else None
        )
        split = self.ev.split(step.test) if step.test is not None else None
        return self.undecided(step, caught, probe, split)

    def _assume(self, step: CondStep, taken: bool, why: str) -> None:
        """Record the side of ``step`` the prediction took, and why."""
        self.runner.assume(
            Assumption(
                path=self.source.path,
                line=step.line,
                condition=step.condition,
                taken=taken,
                why=why,
            )
        )

    def undecided(
        self,
        step: CondStep,
        caught: Raised | None,
        probe: Probe | None = None,
        split: tuple[str, Any, Any] | None = None,
    ) -> Raised | None:
        """Both sides of an undecided ``step``; with ``split``, a name that is one of a
        few constants is narrowed on each side to those for which the test decides it."""
        before = self.ns.copy()
        if split is not None:
            self.ns.values[split[0]] = split[1]
        got_body = self.block(step.body, caught)
        after_body = self.ns.copy()
        self.ns.restore(before)
        if split is not None:
            self.ns.values[split[0]] = split[2]
        got_else = self.block(step.orelse, caught)
        for taken, got, other, branch in (
            (False, got_body, got_else, step.body),
            (True, got_else, got_body, step.orelse),
        ):
            # The other side is taken even when it fails too: both sides fail, and the
            # error is the one of the side that does not merely check (a dispatch's `else`).
            if got is not None and got.certain and _only_raises(branch):
                tested = step.test is not None or step.search_else
                dist = self.runner.intact(self.source.path) if tested else None
                if dist is not None:
                    if taken:
                        self.ns.restore(after_body)
                    self._assume(
                        step,
                        taken,
                        "a consistency check whose branch only raises; the files come from "
                        f"one intact distribution ({dist}: every file RECORD lists is there)",
                    )
                    return other
        side = self._probed(step, probe, got_body, got_else) if probe is not None else None
        if side is None and step.test is not None:
            side = self._optional(step, got_body, got_else)
        if side is not None:
            if side:
                self.ns.restore(after_body)
            return None
        self.ns.merge(after_body)
        got = got_body or got_else
        if got is not None and got.certain:
            return replace(
                got.maybe(),
                reason=f"{got.reason} (only {step.condition}, "
                f"line {step.line}, which abiscan cannot decide)",
            )
        return got

    def _probed(
        self, step: CondStep, probe: Probe, got_body: Raised | None, got_else: Raised | None
    ) -> bool | None:
        """The side of a test on whether ``probe.module`` imports, when the import itself
        decides it: the branch for "it imports" fails because it does not."""
        if probe.importable:
            fails, other = got_body, got_else
        else:
            fails, other = got_else, got_body
        if fails is None or not fails.certain or not fails.missing or other is not None:
            return None
        if fails.broken != probe.module and not fails.broken.startswith(probe.module + "."):
            return None
        taken = not probe.importable
        self._assume(
            step,
            taken,
            f"it tests whether {probe.module} imports (the value comes from a call given "
            f"'{probe.module}'), and {probe.module} does not import on the target",
        )
        return taken

    def _optional(
        self, step: CondStep, got_body: Raised | None, got_else: Raised | None
    ) -> bool | None:
        """The side of a feature check whose other side imports an optional dependency
        that is absent: the check is taken as "the feature is not there"."""
        for taken, fails, other in ((False, got_body, got_else), (True, got_else, got_body)):
            if fails is None or other is not None or not fails.certain or not fails.missing:
                continue
            # The file whose import statement names it ("parent" steps carry no file).
            importer = next(
                (s.path for s in reversed(fails.steps) if s.path is not None), self.source.path
            )
            why = self.runner.optional((self.source.path, importer), fails.broken)
            if why is None:
                continue
            why = f"the other side imports {fails.broken}, an optional dependency: {why}"
            self._assume(step, taken, why)
            return taken
        return None

    def loop(self, step: LoopStep, caught: Raised | None) -> Raised | None:
        items, raised = self.evaluate(step.iter)
        if raised is not None:
            return raised
        if isinstance(items, dict):
            items = list(items)
        if (
            not isinstance(items, (list, tuple, str))
            or len(items) > _MAX_UNROLL
            or any(x is UNKNOWN for x in items)
        ):
            # Runs perhaps, perhaps many times: once, undecided, with the target unknown.
            self.bind(step.target, UNKNOWN)
            body = CondStep(line=step.line, condition=step.text, runs=None, body=step.body)
            return self.undecided(body, caught)
        maybe: Raised | None = None
        for item in list(items):
            self.bind(step.target, item)
            got = self.block(step.body, caught)
            if got is not None and got.certain:
                return got
            maybe = maybe or got
        return maybe

    def _catching(self, exc_type: str) -> bool:
        return any(catches(h.guard, exc_type) for t in self.handlers for h in t.handlers)

    def try_(self, step: TryStep, caught: Raised | None) -> Raised | None:
        self.handlers.append(step)
        try:
            got = self.block(step.body, caught)
        finally:
            self.handlers.pop()
        result = self.block(step.orelse, caught) if got is None else self.handle(step, got, caught)
        final = self.block(step.final, caught)
        if final is not None and (final.certain or result is None):
            return final
        return result

    def handle(self, step: TryStep, got: Raised, caught: Raised | None) -> Raised | None:
        exc = got.error.type if got.error is not None else None
        handler = next(
            (h for h in step.handlers if exc is not None and catches(h.guard, exc)), None
        )
        if handler is None and exc is None:
            handler = next((h for h in step.handlers if catches(h.guard, "BaseException")), None)
        if handler is None:
            self.runner.note_pierced(self.source, step, got)
            return got.maybe() if exc is None and step.handlers else got
        if got.certain:
            self._bind_caught(handler.name, got)
            return self.block(handler.body, got)
        # A failure that may not happen: the else block, or the handler.
        after_body = self.ns.copy()
        other = self.block(step.orelse, caught)
        after_else = self.ns.copy()
        self.ns.restore(after_body)
        self._bind_caught(handler.name, got)
        result = self.block(handler.body, got)
        self.ns.merge(after_else)
        result = result.maybe() if result is not None else None
        return result or (other.maybe() if other is not None else None)

    def _bind_caught(self, name: str | None, got: Raised) -> None:
        if name is None:
            return
        error = got.error
        message: Any = UNKNOWN
        if error is not None and error.message != RUNTIME_MESSAGE and got.confidence == "certain":
            message = error.message
        self.ns.values[name] = (
            ExcValue(type=error.type, message=message, name=_import_name(error, got))
            if error is not None
            else UNKNOWN
        )

    def raise_(self, step: RaiseStep, caught: Raised | None) -> Raised | None:
        if step.exc_type is None:
            return caught  # a bare raise: the exception being handled goes on
        exc_type, message, exact = self._exception(step)
        error = PredictedError(type=exc_type, message=message)
        where = f"{self.source.path}:{step.line}"
        confidence = "certain" if exact else "likely"
        if caught is not None:
            return replace(
                caught,
                error=error,
                confidence=weaker(caught.confidence, confidence),
                reason=f"{caught.reason}; {self.source.name} catches that and raises "
                f"{exc_type} instead ({where}: {step.text})",
            )
        return Raised(
            error=error,
            steps=(),
            broken=self.source.name,
            reason=f"{where} raises it: {step.text}",
            confidence=confidence,
        )

    def _exception(self, step: RaiseStep) -> tuple[str, str, bool]:
        """The type and message ``raise`` makes, and whether the message is exact."""
        static_type = step.exc_type or "<expression>"
        value: Any = UNKNOWN
        if step.exc is not None:
            try:
                value = self.ev.eval(step.exc)
            except (EvalRaise, _Failed):
                value = UNKNOWN
        if isinstance(value, ClassRef):
            value = ExcValue(type=value.name, message="")
        if isinstance(value, ExcValue):
            if isinstance(value.message, str):
                return value.type, value.message, True
            static_type = value.type
        if step.message is not None:
            return static_type, step.message, True
        partial = self._partial_message(step.exc)
        return static_type, partial or RUNTIME_MESSAGE, False

    def _partial_message(self, exc: ast.expr | None) -> str | None:
        """The message with ``...`` where a part is unknown, when some parts are known."""
        if not isinstance(exc, ast.Call) or len(exc.args) != 1:
            return None
        text = _partial(self.ev, exc.args[0])
        return text if text and text.strip(". ") else None


_FUNCTION = Opaque(what="function")
_NO_MODULE = re.compile(r"No module named '([^']+)'")
_CANNOT_IMPORT = re.compile(
    r"cannot import name '[^']+' from (?:partially initialized module )?'([^']+)'"
)


def _import_name(error: PredictedError, got: Raised) -> Any:
    """``e.name`` of a caught import error: the module the import system names in the
    messages it makes itself; UNKNOWN for any other (a loader's or scanned code's)."""
    if got.confidence != "certain" or error.message == RUNTIME_MESSAGE:
        return UNKNOWN
    pattern = {"ModuleNotFoundError": _NO_MODULE, "ImportError": _CANNOT_IMPORT}.get(error.type)
    found = pattern.match(error.message) if pattern is not None else None
    if found is None or not got.reason or "raises it" in got.reason or " instead (" in got.reason:
        return UNKNOWN
    return found.group(1)


def _unpacked(targets: list[ast.expr], value: Any) -> list[Any]:
    """The values ``a, b, *rest = value`` gives each target (UNKNOWN where not known)."""
    if isinstance(value, VersionInfo):
        value = (value.major, value.minor, UNKNOWN, UNKNOWN, UNKNOWN)
    stars = [i for i, t in enumerate(targets) if isinstance(t, ast.Starred)]
    if not isinstance(value, (tuple, list)) or len(stars) > 1:
        return [UNKNOWN] * len(targets)
    if not stars:
        return list(value) if len(value) == len(targets) else [UNKNOWN] * len(targets)
    star, after = stars[0], len(targets) - stars[0] - 1
    if len(value) < len(targets) - 1:
        return [UNKNOWN] * len(targets)
    rest = list(value[star : len(value) - after])
    middle: Any = UNKNOWN if any(v is UNKNOWN for v in rest) else rest
    return [*value[:star], middle, *value[len(value) - after :]]


def _name_of(targets: tuple[ast.expr, ...]) -> str:
    first = targets[0] if targets else None
    return first.id if isinstance(first, ast.Name) else "<class>"


def _partial(ev: Evaluator, node: ast.expr) -> str:
    try:
        value = ev.eval(node)
    except (EvalRaise, _Failed):
        value = UNKNOWN
    if isinstance(value, str):
        return value
    if isinstance(value, ExcValue) and isinstance(value.message, str):
        return value.message
    if isinstance(node, ast.JoinedStr):
        return "".join(_partial(ev, v) for v in node.values)
    if isinstance(node, ast.FormattedValue):
        return _partial(ev, node.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _partial(ev, node.left) + _partial(ev, node.right)
    return "..."


def _may_fail(block: Block) -> bool:
    """Whether a block has an import or a raise anywhere in it."""
    for step in block:
        if isinstance(step, (ImportStep, RaiseStep)):
            return True
        if any(_may_fail(b) for b in inner_blocks(step)):
            return True
    return False


def _only_raises(block: Block) -> bool:
    """A branch that does nothing but compute a message and raise it."""
    last = block[-1] if block else None
    if isinstance(last, CondStep) and last.runs is True:
        # `assert False`, or an `if` the target decides, that raises.
        return _only_raises((*block[:-1], *last.body))
    if not isinstance(last, RaiseStep) or last.exc_type is None:
        return False
    for step in block[:-1]:
        if isinstance(step, (ImportStep, TryStep, LoopStep)):
            return False
        if isinstance(step, CondStep) and not all(
            isinstance(s, (AssignStep, ExprStep)) for s in (*step.body, *step.orelse)
        ):
            return False
    return True
