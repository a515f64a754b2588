"""Propagation: what ``import X`` does once X's own imports are followed.

The pipeline predicts each module on its own: its file is found (or not), the
loader and the dynamic linker accept it (or not). Importing a module also
imports its parent packages first and runs its body, which imports more
modules, and an extension module may import modules from native code. This
module executes that, statically, over the programs :mod:`abiscan.simulate.python.import_graph`
extracts: in statement order, entering ``try`` blocks and ``if`` branches the
target takes, until an exception arrives that no enclosing ``except`` clause
catches, or the module's body ends.

The exception that arrives is the broken module's own (same type, same
message), except where the path changes it:

* ``from x import y``, where ``y`` is neither a submodule in the stack nor a
  name ``x`` binds: ``ImportError: cannot import name 'y' from 'x' (...)``;
* an import made by a pyo3 module that panics on failure:
  ``pyo3_runtime.PanicException: Python API call failed``, a ``BaseException``
  that ``except ImportError`` and ``except Exception`` let through;
* an ``except`` clause that raises something else (``raise ImportError("...")``).

Circular imports end where CPython ends them: a module already being imported
is returned half-initialised, which never raises by itself. A module's result
is computed once when it does not depend on which modules are half-initialised
(it is in no import cycle with the modules above it), and again for each way
into a cycle otherwise.

Conditions abiscan cannot decide (an ``if`` on something other than the
Python version, the platform or ``TYPE_CHECKING``; a loop body) turn a failure
inside them into an ``unknown`` outcome, never an ``error``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from abiscan.elf.reader import ElfError, ElfFacts
from abiscan.inputs.dists import Distribution
from abiscan.inputs.sources import SourceError
from abiscan.inputs.stack import Stack
from abiscan.report.findings import Confidence, Finding, PredictedError
from abiscan.report.model import ChainStep, ModuleOutcome
from abiscan.rules import impact as rules
from abiscan.simulate.imports.file_finder import ImportSystem
from abiscan.simulate.python.import_graph import (
    PANIC,
    AssignStep,
    Block,
    CondStep,
    ImportEdge,
    ImportGraph,
    ImportStep,
    ModuleSource,
    RaiseStep,
    SourceReader,
    TryStep,
    catches,
)
from abiscan.simulate.python.native_imports import PANIC_MESSAGE, NativeFacts, native_imports
from abiscan.simulate.python.runtime_api import stdlib_dir
from abiscan.target.profiles import Target
from abiscan.target.runtime_packages import runtime_modules
from abiscan.target.stdlib import BUILTIN_FIRST, is_stdlib

# Deeper than any real package's import nesting; a guard against runaway recursion.
MAX_DEPTH = 200

_RANK = {"certain": 0, "likely": 1, "possible": 2}


def _weaker(a: str, b: str) -> str:
    return a if _RANK[a] >= _RANK[b] else b


class FactsLike(Protocol):
    def read(self, path: str) -> bytes | SourceError: ...

    def elf(self, path: str) -> ElfFacts | ElfError | SourceError: ...


@dataclass(frozen=True)
class Raised:
    """An exception on its way up: what it is, where it started, how it got here."""

    error: PredictedError | None  # None: it fails, but how is not known
    steps: tuple[ChainStep, ...]  # from the module it arrives at down to the broken one
    broken: str  # the module that fails by itself
    reason: str  # why the broken module fails
    certain: bool = True  # False: it may not happen (an undecided condition, an unknown)
    confidence: str = "certain"  # how sure the links are (native edges lower it)
    missing: bool = False  # the broken module is not found at all (an import hook may serve it)

    def via(self, step: ChainStep, confidence: str = "certain") -> Raised:
        return replace(self, steps=(step, *self.steps),
                       confidence=_weaker(self.confidence, confidence))

    def maybe(self) -> Raised:
        return replace(self, certain=False) if self.certain else self


@dataclass(frozen=True)
class Pierced:
    """An import guarded against ImportError that something else still passes through."""

    module: str
    path: str | None
    line: int
    statement: str
    guards: tuple[str, ...]
    raised: Raised


@dataclass
class _Env:
    """The module-level flags one module body has assigned so far (``has_x = True``)."""

    values: dict[str, bool | None] = field(default_factory=dict)
    uncertain: bool = False  # inside a branch that may not run: what it assigns is unsure


@dataclass
class _Run:
    running: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    lows: list[int] = field(default_factory=list)
    local: dict[str, Raised | None] = field(default_factory=dict)
    paused: dict[str, int] = field(default_factory=dict)  # running module -> current line
    # Names an import hook installed earlier in this run may serve (module -> names).
    hooks: dict[str, frozenset[str]] = field(default_factory=dict)
    tainted: bool = False  # a result here depended on those hooks: memoize nothing more
    results: dict[str, Raised | None] = field(default_factory=dict)  # every import of this run


class Simulator:
    """Imports modules statically, one fresh interpreter per :meth:`run`."""

    def __init__(
        self,
        graph: ImportGraph,
        own: Callable[[str], ModuleOutcome],
        native: Callable[[str, str], NativeFacts | None],
    ) -> None:
        self.graph = graph
        self.own = own
        self.native = native
        self.done: dict[str, Raised | None] = {}
        # The import hooks each memoized import installed along the way: a later
        # import in the same run can still see them.
        self.done_hooks: dict[str, dict[str, frozenset[str]]] = {}
        self.pierced: dict[tuple[str, int], Pierced] = {}
        self._run = _Run()

    def run(self, name: str) -> Raised | None:
        """What ``import name`` raises in a fresh interpreter on the target (None: nothing)."""
        self._run = _Run(lows=[0])
        return self.import_(name)

    # -- modules -------------------------------------------------------------

    def import_(self, name: str) -> Raised | None:
        run = self._run
        if name in self.done and not self._hooked(self.done[name]):
            run.hooks.update(self.done_hooks.get(name, {}))
            run.results[name] = self.done[name]
            return self.done[name]
        if name in run.local:
            return run.local[name]
        if name in run.index:
            # Half-initialised (a circular import): CPython returns it as it is.
            run.lows[-1] = min(run.lows[-1], run.index[name])
            return None
        depth = len(run.running)
        if depth > MAX_DEPTH:
            return Raised(None, (), name, f"import chain deeper than {MAX_DEPTH} modules; "
                          "abiscan stops following it", certain=False)
        run.lows.append(depth)
        hooks_before = set(run.hooks)
        try:
            result = self._import(name, depth)
        finally:
            low = run.lows.pop()
        run.lows[-1] = min(run.lows[-1], low)
        if low >= depth and not run.tainted:
            self.done[name] = result
            added = {k: v for k, v in run.hooks.items() if k not in hooks_before}
            if added:
                self.done_hooks[name] = added
        else:
            run.local[name] = result
        run.results[name] = result
        return result

    def _hooked(self, got: Raised | None) -> str | None:
        """The import hook of this run that may serve the missing module ``got`` ends in."""
        if got is None or not got.missing or not self._run.hooks:
            return None
        top = got.broken.partition(".")[0]
        return next((h for h, names in self._run.hooks.items()
                     if got.broken in names or top in names), None)

    def _import(self, name: str, depth: int) -> Raised | None:
        run = self._run
        parent = name.rpartition(".")[0]
        maybe: Raised | None = None
        if parent:
            up = self.import_(parent)
            if up is not None:
                step = ChainStep(name, parent, "parent", statement=f"import {parent} first")
                if up.certain:
                    return up.via(step)
                maybe = up.via(step)
            if name in run.results:  # the parent's own import imported it
                return run.results[name]
        run.running.append(name)
        run.index[name] = depth
        try:
            result = self._load(name)
        finally:
            run.running.pop()
            del run.index[name]
            run.paused.pop(name, None)
        return result if result is not None else maybe

    def _load(self, name: str) -> Raised | None:
        own = self.own(name)
        if own.outcome == "error":
            got = Raised(own.error, (), name, own.reason, missing=own.path is None)
            hook = self._hooked(got)
            if hook is not None:
                self._run.tainted = True
                return replace(got, certain=False, reason=(
                    f"{own.reason}; but {hook}, imported before it, installs an import hook "
                    f"that may provide '{name}'"))
            return got
        if own.outcome != "ok":
            return Raised(own.error, (), name, own.reason, certain=False)
        source = self.graph.module(name) if own.kind in ("source", "package") else None
        if source is not None:
            return self._exec(source)
        if own.path is not None and own.kind in ("extension", "package"):
            return self._native(name, own.path)
        return None

    def _exec(self, source: ModuleSource) -> Raised | None:
        verdict = source.syntax
        if verdict is not None:
            if verdict.error is not None:
                why = f"{source.path} does not parse under the target's grammar: {verdict.why}"
                if not verdict.exact:
                    why += " (the message text is the closest abiscan knows; type and line " \
                           "are the target's)"
                return Raised(verdict.error, (), source.name, why)
            return Raised(None, (), source.name, verdict.unknown or "", certain=False)
        if source.custom_finder:
            self._run.hooks[source.name] = source.hook_names
        return self._block(source, source.body, None, _Env())

    def _native(self, name: str, path: str) -> Raised | None:
        facts = self.native(name, path)
        if facts is None:
            return None
        for edge in facts.imports:
            if edge.confidence == "possible" or not edge.at_init:
                continue
            got = self.import_(edge.imports)
            if got is None:
                continue
            note = f"{edge.confidence}: " + "; ".join(edge.evidence[-2:])
            step = ChainStep(name, edge.imports, "native", path, None,
                             f"imports {edge.imports} from native code while it initialises",
                             note)
            if edge.panics and got.error is not None:
                panic = PredictedError(PANIC, PANIC_MESSAGE)
                cause = f"{got.error} inside {name}'s init, which pyo3 turns into a panic"
                return replace(got, error=panic, reason=f"{got.reason}; {cause}").via(
                    step, edge.confidence)
            return got.via(step, edge.confidence)
        return None

    # -- statements ----------------------------------------------------------

    def _block(self, source: ModuleSource, block: Block, caught: Raised | None, env: _Env
               ) -> Raised | None:
        maybe: Raised | None = None
        for step in block:
            got = self._step(source, step, caught, env)
            if got is None:
                continue
            if got.certain:
                return got
            maybe = maybe or got
        return maybe

    def _step(self, source: ModuleSource, step: object, caught: Raised | None, env: _Env
              ) -> Raised | None:
        if isinstance(step, ImportStep):
            return self._edge(source, step.edge)
        if isinstance(step, AssignStep):
            env.values[step.name] = None if env.uncertain else step.value
            return None
        if isinstance(step, CondStep):
            runs = step.runs
            if runs is None and step.name is not None and env.values.get(step.name) is not None:
                runs = bool(env.values[step.name]) != step.negated
            if runs is True:
                return self._block(source, step.body, caught, env)
            if runs is False:
                return self._block(source, step.orelse, caught, env)
            unsure = _Env(env.values, uncertain=True)
            got = self._block(source, step.body, caught, unsure) or self._block(
                source, step.orelse, caught, unsure)
            if got is not None and got.certain:
                return replace(got.maybe(), reason=f"{got.reason} (only {step.condition}, "
                               f"line {step.line}, which abiscan cannot decide)")
            return got
        if isinstance(step, TryStep):
            return self._try(source, step, caught, env)
        if isinstance(step, RaiseStep):
            return self._raise(source, step, caught)
        return None

    def _try(self, source: ModuleSource, step: TryStep, caught: Raised | None, env: _Env
             ) -> Raised | None:
        got = self._block(source, step.body, caught, env)
        result: Raised | None
        if got is None:
            result = self._block(source, step.orelse, caught, env)
        else:
            exc = got.error.type if got.error is not None else None
            handler = next((h for h in step.handlers
                            if exc is not None and catches(h.guard, exc)), None)
            if handler is None and exc is None and any(
                    catches(h.guard, "BaseException") for h in step.handlers):
                handler = next(h for h in step.handlers if catches(h.guard, "BaseException"))
            if handler is not None:
                # A failure that may not happen makes what the handler (or the
                # else block) assigns uncertain too.
                branch = env if got.certain else _Env(env.values, uncertain=True)
                result = self._block(source, handler.body, got, branch)
                if result is not None and not got.certain:
                    result = result.maybe()
                if not got.certain:
                    other = self._block(source, step.orelse, caught, branch)
                    result = result or (other.maybe() if other is not None else None)
            else:
                result = got
                self._note_pierced(source, step, got)
                if exc is None and step.handlers:
                    result = got.maybe()  # unknown failure: a guard may catch it
        final = self._block(source, step.final, caught, env)
        if final is not None and (final.certain or result is None):
            return final
        return result

    def _note_pierced(self, source: ModuleSource, step: TryStep, got: Raised) -> None:
        if got.error is None or not got.steps:
            return
        # Clauses meant for a failing import: they catch ModuleNotFoundError.
        guards = [h.guard for h in step.handlers if catches(h.guard, "ModuleNotFoundError")]
        if not guards:
            return
        first = got.steps[0]
        key = (source.name, first.line or step.line)
        if key not in self.pierced:
            self.pierced[key] = Pierced(
                source.name, source.path, first.line or step.line, first.statement,
                tuple(f"{g.text} (line {g.line})" for g in guards), got,
            )

    def _raise(self, source: ModuleSource, step: RaiseStep, caught: Raised | None
               ) -> Raised | None:
        if step.exc_type is None:
            return caught  # a bare raise: the exception being handled goes on
        message = step.message if step.message is not None else "<message built at run time>"
        error = PredictedError(step.exc_type, message)
        where = f"{source.path}:{step.line}"
        if caught is not None:
            return replace(caught, error=error, confidence=_weaker(
                caught.confidence, "certain" if step.message is not None else "likely"),
                reason=f"{caught.reason}; {source.name} catches that and raises "
                       f"{step.exc_type} instead ({where}: {step.text})")
        return Raised(error, (), source.name, f"{where} raises it: {step.text}",
                      confidence="certain" if step.message is not None else "likely")

    def _edge(self, source: ModuleSource, edge: ImportEdge) -> Raised | None:
        self._run.paused[source.name] = edge.line
        step = ChainStep(source.name, edge.target, edge.kind, source.path, edge.line,
                         edge.statement, _guard_note(edge))
        if edge.kind == "name":
            return self._from_name(source, edge, step)
        got = self.import_(edge.target)
        if got is not None:
            return got.via(step)
        if edge.kind == "star":
            target = self.graph.module(edge.target)
            for name in (target.all_names or ()) if target is not None else ():
                full = f"{edge.target}.{name}"
                if self.graph.is_module(full):
                    sub = self.import_(full)
                    if sub is not None:
                        return sub.via(replace(step, imports=full, how="submodule"))
        return None

    def _from_name(self, source: ModuleSource, edge: ImportEdge, step: ChainStep
                   ) -> Raised | None:
        got = self.import_(edge.target)
        if got is not None:
            return got.via(replace(step, how="from"))
        name = edge.name or ""
        base = self.graph.module(edge.target)
        if base is None or base.open_namespace or base.custom_finder:
            return None  # any name may exist (an import hook may provide it, too)
        # A half-initialised module (its own body, or one paused in a circular
        # import) has only the names bound before the line it is paused at.
        paused = self._run.paused.get(edge.target)
        bound_at = base.bound.get(name)
        if bound_at is not None and (paused is None or bound_at < paused):
            return None
        prefix = edge.target + "."
        if any(e.target.startswith(prefix) and e.target[len(prefix):].split(".")[0] == name
               for e in base.edges):
            return None  # a submodule the package imports becomes its attribute
        partial = "partially initialized module " if edge.target in self._run.index else ""
        circular = " (most likely due to a circular import)" if partial else ""
        error = PredictedError(
            "ImportError",
            f"cannot import name '{name}' from {partial}'{edge.target}'{circular} ({base.path})",
        )
        note = f"'{name}' is neither a submodule in the stack nor a name {edge.target} binds"
        return Raised(error, (replace(step, note=note),), edge.target, note)


def _guard_note(edge: ImportEdge) -> str:
    if not edge.guards:
        return ""
    return "inside " + ", ".join(f"{g.text} (line {g.line})" for g in edge.guards)


# -- the pipeline's entry point ------------------------------------------------


def _reader(stack: Stack, importer: ImportSystem, facts: FactsLike) -> SourceReader:
    def read(path: str) -> bytes | None:
        data = facts.read(path)
        return None if isinstance(data, SourceError) else data

    def find(name: str) -> tuple[str, str | None, bool] | None:
        spec = importer.find(name).spec
        if spec is None:
            return None
        return spec.loader_kind, spec.origin, spec.is_package

    return SourceReader(read, find)


def apply_impact(
    modules: Sequence[ModuleOutcome],
    predict: Callable[[str], ModuleOutcome],
    stack: Stack,
    importer: ImportSystem,
    facts: FactsLike,
    owners: Mapping[str, Distribution],
    target: Target,
) -> tuple[list[ModuleOutcome], list[Finding]]:
    """Each module's outcome once its imports are followed, and the ABI5xx findings.

    ``predict(name)`` is the pipeline's own prediction for one module (its
    file found, loaded and linked); ``owners`` maps stack paths to the
    distribution that installed them.
    """
    graph = ImportGraph(_reader(stack, importer, facts), target.python_version,
                        stdlib_dir(target.sys_path, target.python_version))
    runtime = runtime_modules(target)
    tops = _top_level_names(stack, target)

    def own(name: str) -> ModuleOutcome:
        top = name.partition(".")[0]
        if top in BUILTIN_FIRST:
            return ModuleOutcome(name, "ok", None, None, kind="builtin",
                                 reason="built into the interpreter")
        if top not in tops:
            if is_stdlib(name, target.python_version):
                return ModuleOutcome(name, "ok", None, None, kind="stdlib",
                                     reason="the target's standard library")
            if top in runtime:
                return ModuleOutcome(name, "ok", None, None, kind="runtime",
                                     reason=f"provided by the runtime ({runtime[top].describe()})")
        got = predict(name)
        if got.outcome == "error" and got.path is None:
            return _not_found(name, got, graph, importer, stack, target)
        return got

    def exists(name: str) -> bool:
        if name.partition(".")[0] not in tops:
            return False
        res = importer.find(name)
        return res.spec is not None or bool(res.passed_over)

    native_memo: dict[str, NativeFacts | None] = {}

    def native(name: str, path: str) -> NativeFacts | None:
        if path not in native_memo:
            data = facts.read(path)
            elf = facts.elf(path)
            dist = owners.get(path)
            native_memo[path] = None if isinstance(data, SourceError) else native_imports(
                name, path, data, elf if isinstance(elf, ElfFacts) else None, exists,
                (dist.name, dist.version) if dist is not None else None,
            )
        return native_memo[path]

    sim = Simulator(graph, own, native)
    out: list[ModuleOutcome] = []
    findings: list[Finding] = []
    for module in modules:
        got = sim.run(module.name)
        provided = own(module.name)
        if module.outcome == "error" and module.path is None and provided.ok:
            # A name asked for with --import that the target itself provides (os, boto3).
            module = replace(module, outcome="ok", error=None, kind=provided.kind,
                             reason=provided.reason, candidates=())
        updated = _outcome(module, got)
        out.append(updated)
        if "." not in module.name and got is not None and got.certain and got.steps \
                and got.error is not None:
            findings.append(rules.broken_chain(updated, got.broken, got.reason,
                                               Confidence(got.confidence),
                                               _provenance(stack, updated.path)))
    for pierced in sorted(sim.pierced.values(), key=lambda p: (p.module, p.line)):
        if pierced.raised.certain and pierced.raised.error is not None:
            findings.append(rules.guard_pierced(
                pierced.module, pierced.path, pierced.line, pierced.statement, pierced.guards,
                pierced.raised.error, pierced.raised.steps, pierced.raised.broken,
                pierced.raised.reason, Confidence(pierced.raised.confidence),
                _provenance(stack, pierced.path),
            ))
    return out, findings


def _outcome(module: ModuleOutcome, got: Raised | None) -> ModuleOutcome:
    if got is None:
        return module
    chain = (module.name, *(s.imports for s in got.steps))
    if not got.steps:
        # It fails by itself (own load error, or a SyntaxError found here).
        if module.outcome == "ok" and got.error is not None and got.certain:
            return replace(module, outcome="error", error=got.error, reason=got.reason,
                           chain=chain)
        if module.outcome == "ok":
            return replace(module, outcome="unknown", reason=got.reason, chain=chain)
        return replace(module, chain=chain) if module.outcome == "error" else module
    path = " -> ".join(chain)
    if module.outcome == "error" and got.certain and got.error == module.error:
        return replace(module, chain=chain, steps=got.steps)  # its reason already says why
    if got.certain and got.error is not None:
        how = "" if got.confidence == "certain" else f" ({got.confidence})"
        reason = f"import chain {path}{how}; {got.broken}: {got.reason}"
        if got.steps[0].how == "parent":
            # "import a.b" imports "a" first: say so in the words a user expects.
            reason = (f"its parent package '{got.steps[0].imports}' fails to import "
                      f"({reason})")
        return replace(module, outcome="error", error=got.error, reason=reason, chain=chain,
                       steps=got.steps)
    if module.outcome == "error":
        return module
    what = f"{got.error}" if got.error is not None else "an unknown outcome"
    reason = f"may end in {what} through the import chain {path}; {got.broken}: {got.reason}"
    return replace(module, outcome="unknown", reason=reason, chain=chain, steps=got.steps)


def _not_found(
    name: str, got: ModuleOutcome, graph: ImportGraph, importer: ImportSystem, stack: Stack,
    target: Target,
) -> ModuleOutcome:
    """A module the finder does not find, unless a package extends its search at run time."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        package = ".".join(parts[:i])
        source = graph.module(package)
        if source is None:
            continue
        if source.custom_finder:
            return replace(got, outcome="unknown", error=None, reason=(
                f"not found as a file, but {package} installs an import hook "
                "(sys.meta_path/path_hooks) that may provide it"))
        if source.extends_path and i == len(parts) - 1:
            if _on_extended_path(name, importer, stack, target):
                return replace(got, outcome="ok", error=None, reason=(
                    f"found through {package}.__path__, which the package extends to every "
                    "sys.path entry (pkgutil.extend_path / declare_namespace)"))
            return got
    return got


def _on_extended_path(name: str, importer: ImportSystem, stack: Stack, target: Target) -> bool:
    parent, _, tail = name.rpartition(".")
    rel = parent.replace(".", "/")
    for entry in target.sys_path:
        directory = posixpath.join(entry, rel)
        if stack.is_dir(directory) and importer._file_finder(name, tail, directory) is not None:
            return True
    return False


def _top_level_names(stack: Stack, target: Target) -> frozenset[str]:
    """Every top-level name the stack offers on sys.path (module, package or candidate)."""
    names: set[str] = set()
    for entry in target.sys_path:
        if not stack.is_dir(entry):
            continue
        for child in stack.listdir(entry):
            names.add(child.partition(".")[0])
    return frozenset(names)


def _provenance(stack: Stack, path: str | None) -> tuple[str | None, str | None]:
    if path is None:
        return None, None
    sf = stack.file(path)
    return (sf.origin.source, sf.origin.source_path) if sf is not None else (None, None)
