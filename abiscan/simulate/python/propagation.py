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

Module bodies run in :mod:`abiscan.simulate.python.execute`, on the values
:mod:`abiscan.simulate.python.evaluator` computes: the target's fixed values,
the names bound so far, other modules' values. A condition that stays
undecided turns a failure inside it into an ``unknown`` outcome, never an
``error``, unless a documented assumption takes a side (a consistency check in
an intact distribution, an unset environment variable); each outcome carries
its ``confidence`` and the ``assumptions`` it rests on (docs/evaluator.md).
:func:`follow_imports` returns what happened (outcomes, broken chains, pierced
guards); :mod:`abiscan.rules.impact` makes the findings.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import field, replace
from typing import TYPE_CHECKING, Any, Protocol

from abiscan.elf.reader import ElfError, ElfFacts
from abiscan.inputs.sources import SourceError
from abiscan.inputs.stack import Stack
from abiscan.limits import DEFAULT_LIMITS
from abiscan.progress import count
from abiscan.report.findings import PredictedError
from abiscan.report.model import (
    Assumption,
    ChainStep,
    LinkKind,
    ModuleOutcome,
    OutcomeConfidence,
)
from abiscan.simulate.imports.file_finder import ImportSystem
from abiscan.simulate.python.native_api import (
    cython_keyword_error,
    embedded_signature,
    lacks_name,
    numpy_import_array,
)
from abiscan.simulate.python.native_imports import PANIC_MESSAGE, NativeFacts, native_imports
from abiscan.simulate.python.raised import Pierced, Raised, weaker
from abiscan.target.profiles import Target, marker_environment, micro_floor
from abiscan.target.runtime_modules import RuntimeModules, runtime_modules_of
from abiscan.target.runtime_packages import RuntimePackage, runtime_modules

if TYPE_CHECKING:  # dist-info is read (and packaging.metadata imported) only when present
    from abiscan.inputs.dists import Distribution

    # The evaluator and the body runner are imported where a source module runs:
    # ~17 ms of CPU at start-up that a layer holding only extension modules never needs;
    # the import graph (the parser of sources, some 20 ms) where a source is parsed.
    from abiscan.simulate.python.evaluator import Namespace, TargetFacts
    from abiscan.simulate.python.import_graph import (
        ImportEdge,
        ImportGraph,
        ImportStep,
        ModuleSource,
        ParseHook,
        SourceReader,
        TryStep,
    )
from abiscan.records import mutable_record, record
from abiscan.target.stdlib import BUILTIN_FIRST, is_stdlib, stdlib_dir

__all__ = [
    "AT_STARTUP",
    "Broken",
    "FactsLike",
    "Followed",
    "Simulator",
    "follow_imports",
    "not_followed",
]

# In sys.modules when the first line of any CPython 3.8-3.13 runs, even with -I -S
# (tests/differential checks it against the real interpreters).
AT_STARTUP = frozenset(
    {
        "__main__", "_abc", "_codecs", "_frozen_importlib", "_frozen_importlib_external",
        "_imp", "_io", "_signal", "_thread", "_warnings", "_weakref", "abc", "builtins",
        "codecs", "encodings", "encodings.aliases", "encodings.utf_8", "io", "marshal",
        "posix", "sys", "time", "zipimport",
    }
)  # fmt: skip

# Deeper than any real package's import nesting; a guard against runaway recursion.
MAX_DEPTH = 200


class FactsLike(Protocol):
    def read(self, path: str) -> bytes | SourceError: ...

    def elf(self, path: str) -> ElfFacts | ElfError | SourceError: ...

    def rodata(self, path: str) -> bytes | SourceError: ...


@mutable_record
class _Run:
    """The state of one run of import chains (Tarjan's stack, memoised results)."""

    running: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    lows: list[int] = field(default_factory=list)
    local: dict[str, Raised | None] = field(default_factory=dict)
    paused: dict[str, int] = field(default_factory=dict)  # running module -> current line
    # Names an import hook installed earlier in this run may serve (module -> names).
    hooks: dict[str, frozenset[str]] = field(default_factory=dict)
    tainted: bool = False  # a result here depended on those hooks: memoize nothing more
    results: dict[str, Raised | None] = field(default_factory=dict)  # every import of this run
    order: list[str] = field(default_factory=list)  # the keys of results, in order
    # The sides taken on undecided conditions by every module this run imported.
    assumed: dict[tuple[str, int], Assumption] = field(default_factory=dict)
    # (project, version) of each file loaded whose bytes one version of a project
    # installed twice wrote (see _writers_check) -> the first such file.
    writers: dict[tuple[str, str], str] = field(default_factory=dict)
    # The same, per import in progress (innermost last): what each import reaches,
    # whether or not an earlier import of the run reached it first.
    writer_frames: list[dict[tuple[str, str], str]] = field(default_factory=list)
    # A module of the stack was reused from an earlier run: what it imported is not
    # in ``results``, so "is x in sys.modules" can no longer be answered no.
    reused: bool = False


class Simulator:
    """Imports modules statically, one fresh interpreter per :meth:`run`."""

    def __init__(
        self,
        graph: ImportGraph | Callable[[], ImportGraph],
        own: Callable[[str], ModuleOutcome],
        native: Callable[[str, str], NativeFacts | None],
        facts: Callable[[], TargetFacts] | None = None,
        intact: Callable[[str], str | None] = lambda path: None,
        writer: Callable[[str], tuple[str, str] | None] = lambda path: None,
        optional: Callable[[tuple[str | None, ...], str], str | None] = lambda paths, m: None,
        listdir: Callable[[str], Sequence[str] | None] = lambda path: None,
        rodata: Callable[[str], bytes | None] = lambda path: None,
        runtime: RuntimeModules | None = None,
    ) -> None:
        self._graph = graph
        self._rodata = rodata
        self._runtime = runtime or RuntimeModules(by_top={})
        self._listdir = listdir
        self.own = own
        self.native = native
        self._make_facts = facts
        self._facts: TargetFacts | None = None
        self._intact = intact
        self._writer = writer
        self._optional = optional
        # Each executed source module's globals, live while it runs.
        self.namespaces: dict[str, Namespace] = {}
        self.done: dict[str, Raised | None] = {}
        self.done_assumed: dict[str, dict[tuple[str, int], Assumption]] = {}
        self.done_writers: dict[str, dict[tuple[str, str], str]] = {}
        # Modules whose import runs nothing abiscan follows (stdlib, builtin, runtime).
        self._plain: set[str] = set()
        # The import hooks each memoized import installed along the way: a later
        # import in the same run can still see them.
        self.done_hooks: dict[str, dict[str, frozenset[str]]] = {}
        # The other modules each memoized import imported (and what they gave): they are
        # in sys.modules once it is, so a later import of one of them does not run it
        # again from another entry point (which would change the order of a cycle).
        self.done_imported: dict[str, dict[str, Raised | None]] = {}
        self.pierced: dict[tuple[str, int], Pierced] = {}
        self._run = _Run()

    @property
    def graph(self) -> ImportGraph:
        """The source modules' parser; given as a function, built on first use (a scan
        of extension modules alone parses no source, nor imports the parser)."""
        if callable(self._graph):
            self._graph = self._graph()
        return self._graph

    @property
    def facts(self) -> TargetFacts:
        """What the target interpreter fixes (built when a source module first runs)."""
        if self._facts is None:
            from abiscan.simulate.python.evaluator import TargetFacts  # start-up: see above

            make = self._make_facts
            self._facts = make() if make is not None else TargetFacts(version=self.graph.version)
        return self._facts

    def run(self, name: str) -> Raised | None:
        """What ``import name`` raises in a fresh interpreter on the target (None: nothing)."""
        self._run = _Run(lows=[0])
        got = self.import_(name)
        mixed = _mixed_versions(self._run.writers)
        if got is None and mixed is not None:
            # The mixed files ran as they are on disk and met no failure abiscan sees;
            # neither version was ever tested with the other's files: likely, not certain.
            self.assume(mixed)
        return got

    def release(self) -> None:
        """Forget the modules' globals once every import has run. A function's
        globals are its module's namespace, which binds the function: each module
        with a ``def`` is a cycle, and the cycles held a scan of the real layer's
        programs and outcomes (14,000 objects) for the cyclic collector."""
        for ns in self.namespaces.values():
            ns.values.clear()
        self.namespaces.clear()

    def assumptions(self) -> tuple[Assumption, ...]:
        """The sides the last :meth:`run` took on conditions it could not decide."""
        return tuple(sorted(self._run.assumed.values(), key=lambda a: (a.path, a.line)))

    # -- modules -------------------------------------------------------------

    def import_(self, name: str) -> Raised | None:
        run = self._run
        if name in self.done and not self._hooked(self.done[name]):
            run.hooks.update(self.done_hooks.get(name, {}))
            run.assumed.update(self.done_assumed.get(name, {}))
            results = run.results
            imported = self.done_imported.get(name, {})
            # Most reuses add nothing (a module's imports ran earlier in the run): the
            # subset test runs at C speed, where the loop took 184,627 steps on the
            # real layer for 32,298 new names.
            if not imported.keys() <= results.keys():
                for other, got in imported.items():
                    if other not in results:  # _record, inline
                        run.order.append(other)
                        results[other] = got
            for key, path in self.done_writers.get(name, {}).items():
                self._wrote(key, path)
            run.reused = run.reused or name not in self._plain
            self._record(name, self.done[name])
            return self.done[name]
        if name in run.local:
            return run.local[name]
        if name in run.results and self._parent_imported(name):
            return run.results[name]  # imported earlier in this run: in sys.modules
        if name in run.index:
            # Half-initialised (a circular import): CPython returns it as it is.
            run.lows[-1] = min(run.lows[-1], run.index[name])
            return None
        depth = len(run.running)
        if depth > MAX_DEPTH:
            return Raised(
                error=None,
                steps=(),
                broken=name,
                reason=f"import chain deeper than {MAX_DEPTH} modules; abiscan stops following it",
                certain=False,
            )
        run.lows.append(depth)
        hooks_before = set(run.hooks)
        assumed_before = set(run.assumed)
        results_before = len(run.order)
        run.writer_frames.append({})
        try:
            result = self._import(name, depth)
        finally:
            low = run.lows.pop()
            wrote = run.writer_frames.pop()
        run.lows[-1] = min(run.lows[-1], low)
        if low >= depth and not run.tainted:
            self.done[name] = result
            added = {k: v for k, v in run.hooks.items() if k not in hooks_before}
            if added:
                self.done_hooks[name] = added
            assumed = {k: v for k, v in run.assumed.items() if k not in assumed_before}
            if assumed:
                self.done_assumed[name] = assumed
            imported = {k: run.results[k] for k in run.order[results_before:]}
            if imported:
                self.done_imported[name] = imported
            if wrote:
                self.done_writers[name] = wrote
        else:
            run.local[name] = result
        self._record(name, result)
        return result

    def _parent_imported(self, name: str) -> bool:
        """Whether ``name``'s parent (if any) imported without a failure in this run: a
        parent that may fail makes its submodule's import fail with it."""
        parent = name.rpartition(".")[0]
        return not parent or self._run.results.get(parent, False) is None

    def _record(self, name: str, result: Raised | None) -> None:
        if name not in self._run.results:
            self._run.order.append(name)
        self._run.results[name] = result

    def _wrote(self, key: tuple[str, str], path: str) -> None:
        """Notes a file of one version of a project installed twice, for every import
        in progress (each one reaches it)."""
        self._run.writers.setdefault(key, path)
        for frame in self._run.writer_frames:
            frame.setdefault(key, path)

    def _hooked(self, got: Raised | None) -> str | None:
        """The import hook of this run that may serve the missing module ``got`` ends in."""
        if got is None or not got.missing or not self._run.hooks:
            return None
        top = got.broken.partition(".")[0]
        return next(
            (h for h, names in self._run.hooks.items() if got.broken in names or top in names), None
        )

    def _import(self, name: str, depth: int) -> Raised | None:
        run = self._run
        parent = name.rpartition(".")[0]
        maybe: Raised | None = None
        if parent:
            up = self.import_(parent)
            if up is not None:
                step = ChainStep(
                    module=name, imports=parent, how="parent", statement=f"import {parent} first"
                )
                if up.certain:
                    return up.via(step)
                maybe = up.via(step)
            if name in run.results:  # the parent's own import imported it
                return run.results[name] or maybe
        run.running.append(name)
        run.index[name] = depth
        try:
            result = self._load(name)
        finally:
            run.running.pop()
            del run.index[name]
            run.paused.pop(name, None)
        if result is None:
            return maybe
        if maybe is not None and result.certain and maybe.error != result.error:
            # It fails either way; with which error depends on whether the parent does.
            result = replace(
                result,
                confidence=weaker(result.confidence, "likely"),
                reason=f"{result.reason}; unless its parent fails first: {maybe.reason}",
            )
        return result

    def _load(self, name: str) -> Raised | None:
        own = self.own(name)
        if own.kind in ("builtin", "stdlib", "runtime", "namespace"):
            self._plain.add(name)
        wrote = self._writer(own.path) if own.path is not None else None
        if wrote is not None:
            self._wrote(wrote, own.path or "")
        if own.outcome == "error" and self._registered_by_parent(name):
            return None
        if own.outcome == "error":
            got = Raised(
                error=own.error, steps=(), broken=name, reason=own.reason, missing=own.path is None
            )
            for assumed in own.assumptions:  # a runtime module missing at its recorded version
                self.assume(assumed)
                got = replace(got, confidence=weaker(got.confidence, own.confidence))
            hook = self._hooked(got)
            if hook is not None:
                self._run.tainted = True
                return replace(
                    got,
                    certain=False,
                    reason=(
                        f"{own.reason}; but {hook}, imported before it, installs an import hook "
                        f"that may provide '{name}'"
                    ),
                )
            return got
        if own.outcome != "ok":
            return Raised(error=own.error, steps=(), broken=name, reason=own.reason, certain=False)
        if own.kind == "runtime":
            return self._runtime_imports(name)
        source = self.graph.module(name) if own.kind in ("source", "package") else None
        if source is not None:
            return self._exec(source)
        if own.path is not None and own.kind in ("extension", "package"):
            return self._native(name, own.path)
        return None

    def _runtime_imports(self, name: str) -> Raised | None:
        """The imports a runtime module's body runs whatever happens, at the version the
        runtime data records: the first that fails is its failure (the runtime's boto3
        1.20.32 imports s3transfer, which a layer may hold at a version needing a newer
        botocore)."""
        rt = self._runtime
        for line, target in rt.imports(name):
            got = self.import_(target)
            if got is None:
                continue
            path = rt.path(name)
            self.assume(
                Assumption(
                    path=path or name,
                    line=line,
                    condition=f"{name} imports {target}",
                    taken=True,
                    why=rt.assumption(name),
                )
            )
            step = ChainStep(
                module=name,
                imports=target,
                how="import",
                path=path,
                line=line,
                statement=f"(an import of {target} at the recorded version)",
            )
            return got.via(step, "likely")
        return None

    def _registered_by_parent(self, name: str) -> bool:
        """Whether ``name``'s parent is an extension module that may have put ``name`` in
        sys.modules while it initialised (pybind11's ``def_submodule``): the import then
        finds it there, and no finder is asked. Taken as so, with an assumption."""
        parent, _, tail = name.rpartition(".")
        up = self.own(parent) if parent else None
        if up is None or up.outcome != "ok" or up.kind != "extension" or up.path is None:
            return False
        facts = self.native(parent, up.path)
        if facts is None or tail not in facts.registers:
            return False
        self.assume(
            Assumption(
                path=up.path,
                line=0,
                condition=f"{parent} registers '{name}' in sys.modules while it initialises",
                taken=True,
                why=f"it calls {facts.registers_via} and its .rodata has the string '{tail}'",
            )
        )
        return True

    def _exec(self, source: ModuleSource) -> Raised | None:
        verdict = source.syntax
        if verdict is not None:
            if verdict.error is not None:
                why = (
                    f"{source.path} does not parse under the target's grammar: {verdict.why}"
                    if verdict.stage == "parse"
                    else f"{source.path} does not compile on the target: {verdict.why}"
                )
                if not verdict.exact:
                    why += (
                        " (the message text is the closest abiscan knows; type and line "
                        "are the target's)"
                    )
                return Raised(error=verdict.error, steps=(), broken=source.name, reason=why)
            return Raised(
                error=None,
                steps=(),
                broken=source.name,
                reason=verdict.unknown or "",
                certain=False,
            )
        from abiscan.simulate.python.evaluator import Namespace  # start-up: see the imports
        from abiscan.simulate.python.execute import BodyRun

        if source.custom_finder:
            self._run.hooks[source.name] = source.hook_names
        ns = Namespace(
            module=source.name,
            open=source.writes_globals,
            declared=source.declared_global | _unfollowed_names(source),
            prefixes=source.globals_prefixes,
        )
        # What the import system sets before the body runs (numpy lists its __path__).
        ns.values["__file__"] = source.path
        if source.is_package:
            ns.values["__path__"] = [posixpath.dirname(source.path)]
        self.namespaces[source.name] = ns
        return BodyRun(self, source, ns).run()

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
            step = ChainStep(
                module=name,
                imports=edge.imports,
                how="native",
                path=path,
                line=None,
                statement=f"imports {edge.imports} from native code while it initialises",
                note=note,
            )
            if edge.replaces and got.error is not None and got.certain:
                error = PredictedError(type="ImportError", message=edge.replaces)
                cause = f"{got.error} inside {name}'s init, which numpy's import_array replaces"
                return replace(got, error=error, reason=f"{got.reason}; {cause}").via(
                    step, edge.confidence
                )
            if edge.panics and got.error is not None:
                from abiscan.simulate.python.import_graph import PANIC  # start-up

                panic = PredictedError(type=PANIC, message=PANIC_MESSAGE)
                cause = f"{got.error} inside {name}'s init, which pyo3 turns into a panic"
                return replace(got, error=panic, reason=f"{got.reason}; {cause}").via(
                    step, edge.confidence
                )
            return got.via(step, edge.confidence)
        return None

    def _not_in_namespace(self, source: ModuleSource, edge: ImportEdge, name: str) -> Raised:
        """``from ns import name`` where ``ns`` is a namespace package (a directory left
        next to an extension the target does not load): nothing binds ``name``."""
        error = PredictedError(
            type="ImportError",
            message=f"cannot import name '{name}' from '{edge.target}' (unknown location)",
        )
        note = (
            f"'{edge.target}' is a namespace package on the target (a directory, no "
            f"__init__.py) and has no submodule '{name}'"
        )
        step = _edge_step(source, edge, note=note)
        return Raised(error=error, steps=(step,), broken=edge.target, reason=note)

    # -- what a module body asks (execute.Runner) ------------------------------

    def intact(self, path: str) -> str | None:
        return self._intact(path)

    def optional(self, paths: tuple[str | None, ...], module: str) -> str | None:
        return self._optional(paths, module)

    def listdir(self, path: str) -> list[str] | None:
        entries = self._listdir(path)
        return None if entries is None else list(entries)

    def assume(self, assumption: Assumption) -> None:
        self._run.assumed.setdefault((assumption.path, assumption.line), assumption)

    def import_module(self, name: str) -> Raised | None:
        return self.import_(name)

    def attribute(self, module: str, name: str) -> Any:
        """``module.name`` as the run has it: a value, UNKNOWN, or MISSING."""
        from abiscan.simulate.python import evaluator as ev  # start-up: see the imports

        if (module, name) == ("sys", "modules"):
            return ev.SysModules(contains=self.in_sys_modules)
        ns = self.namespaces.get(module)
        source = self.graph.module(module)
        if ns is None or source is None:
            return ev.UNKNOWN  # an extension, the standard library: not tracked
        if name in ns.values:
            value = ns.values[name]
            return ev.UNKNOWN if value is ev.MAYBE else value
        if name == "__name__":
            return module
        if name == "__file__":
            return source.path
        full = f"{module}.{name}"
        if self._run.results.get(full, False) is None or self.done.get(full, False) is None:
            return ev.ModuleRef(name=full)  # an imported submodule is its package's attribute
        if (
            ns.open
            or source.open_namespace
            or name in ns.declared
            or name.startswith(source.globals_prefixes)
            or name in ev.MODULE_DUNDERS
            or (self.graph.is_module(full) and not self._failed_here(full))
        ):
            return ev.UNKNOWN
        return ev.MISSING

    def _failed_here(self, full: str) -> bool:
        """Whether this run saw ``import full`` certainly fail: CPython then never sets
        the submodule as its package's attribute (psycopg.pq's ``from psycopg_binary
        import pq`` of an extension built for another Python)."""
        got = self._run.results.get(full)
        return got is not None and got.certain

    def in_sys_modules(self, name: str) -> bool | None:
        """Whether ``name`` is in ``sys.modules`` at this point of the run: the modules
        every interpreter has at startup, the ones being imported, and the ones this
        run imported (a failed import is removed again). None where the runtime's own
        start-up (Lambda's bootstrap imports more of the stdlib, and its packages) or a
        module reused from an earlier run may have imported it."""
        run = self._run
        if name in AT_STARTUP:
            return True
        if name in run.index or name in run.results:
            got = run.results.get(name)
            if got is not None and not got.certain:
                return None
            run.tainted = True  # the answer depends on this run's imports: memoize no more
            return got is None
        if run.reused or self.own(name).kind in ("builtin", "stdlib", "runtime"):
            return None
        run.tainted = True
        return False

    def import_step(self, source: ModuleSource, step: ImportStep) -> Raised | None:
        from abiscan.simulate.python.evaluator import UNKNOWN  # start-up: see the imports

        got = self._edge(source, step.edge)
        if step.bind is None and step.edge.kind != "star":
            return got
        ns = self.namespaces[source.name]
        if step.bind is not None:
            ns.natives.pop(step.bind, None)
        if got is not None:
            if step.bind is not None:
                ns.values[step.bind] = UNKNOWN
            return got
        edge = step.edge
        if edge.kind == "star":
            self._bind_star(ns, edge.target)
        elif step.bind is not None:
            ns.values[step.bind] = self._bound_value(step)
            ns.taint.pop(step.bind, None)
            native = self._native_origin(edge)
            if native is not None:
                ns.natives[step.bind] = native
            if edge.kind == "name" and edge.name is not None:
                from_ns = self.namespaces.get(edge.target)
                if from_ns is not None and edge.name in from_ns.taint:
                    ns.taint[step.bind] = from_ns.taint[edge.name]
        return None

    def _native_origin(self, edge: ImportEdge) -> tuple[str, str] | None:
        """(extension module, attribute) a ``from x import name`` binds, directly or
        through ``x``'s own namespace."""
        if edge.kind != "name" or edge.name is None:
            return None
        if self.own(edge.target).kind == "extension":
            return (edge.target, edge.name)
        from_ns = self.namespaces.get(edge.target)
        return from_ns.natives.get(edge.name) if from_ns is not None else None

    def native_call(
        self, caller: str, native: tuple[str, str], positional: int, keywords: tuple[str, ...]
    ) -> str | None:
        own = self.own(native[0])
        path = own.path
        if own.kind != "extension" or path is None or not self._other_version(caller, path):
            return None
        ro = self._rodata(path)
        signature = embedded_signature(ro, native[0], native[1]) if ro is not None else None
        if ro is None or signature is None:
            return None
        return cython_keyword_error(ro, signature, positional, keywords)

    def _bound_value(self, step: ImportStep) -> Any:
        from abiscan.simulate.python.evaluator import MISSING, UNKNOWN, ModuleRef  # start-up

        edge = step.edge
        if edge.kind == "import":
            return ModuleRef(name=step.value or edge.target)
        if edge.kind == "submodule":
            parent, _, tail = edge.target.rpartition(".")
            value = self.attribute(parent, tail)  # from-import reads the attribute first
            return value if value not in (UNKNOWN, MISSING) else ModuleRef(name=edge.target)
        if edge.kind == "name" and edge.name is not None:
            fixed = self.facts.attribute(edge.target, edge.name)
            if fixed is not UNKNOWN and fixed is not MISSING:
                return fixed
            value = self.attribute(edge.target, edge.name)
            return UNKNOWN if value is MISSING else value
        return UNKNOWN

    def _bind_star(self, ns: Namespace, target: str) -> None:
        source = self.graph.module(target)
        other = self.namespaces.get(target)
        if (
            source is None
            or other is None
            or other.open
            or source.open_namespace
            or source.globals_prefixes
        ):
            ns.open = True
            return
        from abiscan.simulate.python.evaluator import UNKNOWN  # start-up: see the imports

        names = source.all_names or [n for n in other.values if not n.startswith("_")]
        for name in names:
            ns.values[name] = other.values.get(name, UNKNOWN)

    def note_pierced(self, source: ModuleSource, step: TryStep, got: Raised) -> None:
        if got.error is None or not got.steps:
            return
        from abiscan.simulate.python.import_graph import catches  # start-up

        # Clauses meant for a failing import: they catch ModuleNotFoundError.
        guards = [h.guard for h in step.handlers if catches(h.guard, "ModuleNotFoundError")]
        if not guards:
            return
        first = got.steps[0]
        key = (source.name, first.line or step.line)
        if key not in self.pierced:
            self.pierced[key] = Pierced(
                module=source.name,
                path=source.path,
                line=first.line or step.line,
                statement=first.statement,
                guards=tuple(f"{g.text} (line {g.line})" for g in guards),
                raised=got,
            )

    def _edge(self, source: ModuleSource, edge: ImportEdge) -> Raised | None:
        self._run.paused[source.name] = edge.line
        # The edge's ChainStep is made only where a failure goes through it: most
        # imports succeed (7,352 edges followed in the real layer, a few dozen fail).
        if edge.kind == "name":
            return self._from_name(source, edge)
        got = self.import_(edge.target)
        if got is not None:
            return got.via(_edge_step(source, edge))
        if edge.kind == "star":
            target = self.graph.module(edge.target)
            for name in (target.all_names or ()) if target is not None else ():
                full = f"{edge.target}.{name}"
                if self.graph.is_module(full):
                    sub = self.import_(full)
                    if sub is not None:
                        return sub.via(_edge_step(source, edge, imports=full, how="submodule"))
        return None

    def _runtime_name(self, source: ModuleSource, edge: ImportEdge, name: str) -> Raised | None:
        """``from m import name`` of a runtime module whose names the data lists at the
        version the runtime data records: ``cannot import name`` when it lacks ``name``."""
        rt = self._runtime
        names = rt.names(edge.target)
        full = f"{edge.target}.{name}"
        from abiscan.simulate.python.evaluator import MODULE_DUNDERS  # start-up: see the imports

        if names is None or name in names or name in MODULE_DUNDERS:
            return None
        if rt.is_package(edge.target) and rt.has_module(full) is not False:
            sub = self.import_(full)  # CPython imports the submodule the name may be
            if sub is None:
                return None
            return sub.via(_edge_step(source, edge, imports=full, how="submodule"))
        assumption = Assumption(
            path=rt.path(edge.target) or edge.target,
            line=0,
            condition=f"{edge.target} has no '{name}'",
            taken=True,
            why=rt.assumption(edge.target),
        )
        self.assume(assumption)
        error = PredictedError(
            type="ImportError",
            message=f"cannot import name '{name}' from '{edge.target}' ({rt.path(edge.target)})",
        )
        note = f"the runtime's {edge.target} binds no '{name}' ({assumption.why})"
        return Raised(
            error=error,
            steps=(_edge_step(source, edge, note=note),),
            broken=edge.target,
            reason=f"{rt.path(edge.target)}: {note}",
            confidence="likely",
        )

    def _from_name(self, source: ModuleSource, edge: ImportEdge) -> Raised | None:
        from abiscan.simulate.python.evaluator import MODULE_DUNDERS  # start-up: see the imports

        got = self.import_(edge.target)
        if got is not None:
            return got.via(_edge_step(source, edge, how="from"))
        name = edge.name or ""
        base = self.graph.module(edge.target)
        if (
            base is None
            and self.own(edge.target).kind == "namespace"
            and not self.graph.is_module(f"{edge.target}.{name}")
        ):
            return self._not_in_namespace(source, edge, name)
        lazy = self._lazy_module(base, name) if base is not None else None
        if lazy is not None:
            return self._lazy_import(source, edge, name, lazy)
        # A half-initialised module (its own body, or one paused in a circular
        # import) has only the names bound before the line it is paused at.
        if base is None and self.own(edge.target).kind == "runtime":
            return self._runtime_name(source, edge, name)
        if base is None:
            return self._native_name(source, edge, name)
        paused = self._run.paused.get(edge.target)
        if base.custom_finder or _open_at(base, paused):
            return None  # any name may exist (an import hook may provide it, too)
        bound_at = base.bound.get(name)
        if bound_at is not None and (paused is None or bound_at < paused):
            return None
        if name in MODULE_DUNDERS and (name != "__path__" or base.is_package):
            return None  # every module has these before its first line runs
        if name.startswith(base.globals_prefixes):
            return None  # a name its guarded globals() writes may bind
        if name in base.declared_global:
            return self._bound_in_function(source, edge, base, name, paused)
        prefix = edge.target + "."
        if not self._submodule_fails(prefix + name) and any(
            e.target.startswith(prefix)
            and e.target[len(prefix) :].split(".")[0] == name
            and (paused is None or e.line < paused)
            for e in base.edges
        ):
            # A submodule the package imported before the line it is paused at becomes
            # its attribute, unless this run saw that import fail (an extension the
            # target never tries, in multidict's `try: from . import _multidict`).
            return None
        partial = "partially initialized module " if edge.target in self._run.index else ""
        circular = " (most likely due to a circular import)" if partial else ""
        error = PredictedError(
            type="ImportError",
            message=f"cannot import name '{name}' from {partial}'{edge.target}'{circular} "
            f"({base.path})",
        )
        note = f"'{name}' is neither a submodule in the stack nor a name {edge.target} binds"
        step = _edge_step(source, edge, note=note)
        return Raised(error=error, steps=(step,), broken=edge.target, reason=note)

    def _native_name(self, source: ModuleSource, edge: ImportEdge, name: str) -> Raised | None:
        """``from ext import name`` where ``ext`` is an extension module that another
        version of the importer's project wrote: the name is missing where the binary
        certainly does not bind it (native_api.lacks_name). Within one version, the
        Python side and its binary agree, and any name is taken to be there."""
        own = self.own(edge.target)
        path = own.path
        if own.kind != "extension" or path is None or not self._other_version(source.path, path):
            return None
        ro = self._rodata(path)
        controls = [e.name for e in source.edges if e.target == edge.target and e.name]
        facts = self.native(edge.target, path)
        plain = facts is not None and "pyo3" in facts.kinds
        if ro is None or not lacks_name(ro, name, controls, plain=plain):
            return None
        error = PredictedError(
            type="ImportError", message=f"cannot import name '{name}' from '{edge.target}' ({path})"
        )
        note = (
            f"{path}, of another version of the project than {source.path}, does not bind "
            f"'{name}': the name is nowhere in its read-only data, which keeps names as "
            "plain text ("
            + ("a pyo3 module" if plain else "it holds the other names imported from it")
            + ")"
        )
        step = _edge_step(source, edge, note=note)
        return Raised(error=error, steps=(step,), broken=edge.target, reason=note)

    def _other_version(self, path: str, other: str) -> bool:
        """Whether two files were written by different versions of one project."""
        a, b = self._writer(path), self._writer(other)
        return a is not None and b is not None and a[0] == b[0] and a[1] != b[1]

    def _bound_in_function(
        self,
        source: ModuleSource,
        edge: ImportEdge,
        base: ModuleSource,
        name: str,
        paused: int | None,
    ) -> Raised | None:
        """``from base import name`` where only a function declaring ``name`` global binds
        it: function bodies are not run, so whether it is bound is assumed, never an error."""
        from abiscan.simulate.python.evaluator import MAYBE  # start-up: see the imports

        ns = self.namespaces.get(base.name)
        if ns is not None and ns.values.get(name, MAYBE) is not MAYBE:
            return None  # the evaluator ran the call, which bound it
        call = base.bound_by_call.get(name)
        if call is not None and (paused is None or call[0] < paused):
            line, func = call
            self.assume(
                Assumption(
                    path=base.path,
                    line=line,
                    condition=f"{func}() binds '{name}' (declared global in it)",
                    taken=True,
                    why="the module body calls the function that declares the name global; "
                    "abiscan does not run function bodies and takes the call to bind it",
                )
            )
            return None
        note = (
            f"'{name}' is bound only by a function that declares it global, and abiscan "
            f"cannot tell whether it has run when {source.name} imports it"
        )
        return Raised(
            error=None,
            steps=(_edge_step(source, edge, note=note),),
            broken=base.name,
            reason=note,
            certain=False,
        )

    def _submodule_fails(self, full: str) -> bool:
        """Whether ``import full`` certainly fails in this run: CPython's ``from pkg
        import name`` tries the submodule when the package lacks the name, and turns
        its ModuleNotFoundError into "cannot import name"."""
        got = self._run.results.get(full)
        if got is not None:
            return got.certain
        if full in self._run.results:
            return False
        return self.own(full).outcome == "error"

    def _lazy_module(self, base: ModuleSource, name: str) -> str | None:
        """The module ``base``'s ``__getattr__`` imports to serve ``name`` (PEP 562 lazy
        imports through a table), when ``base`` never binds ``name`` itself."""
        value = base.lazy.get(name)
        ns = self.namespaces.get(base.name)
        # What the run bound (a binding under TYPE_CHECKING never ran), else the source.
        if value is None or (name in ns.values if ns is not None else name in base.bound):
            return None
        package = base.name if base.is_package else base.name.rpartition(".")[0]
        if value.startswith("."):
            parts = package.split(".")
            up = len(value) - len(value.lstrip("."))
            if up > len(parts):
                return None
            head = ".".join(parts[: len(parts) - up + 1])
            candidates = [f"{head}.{value.lstrip('.')}" if value.lstrip(".") else head]
        else:
            candidates = [f"{package}.{value}", value]
        return next((c for c in candidates if self.graph.is_module(c)), None)

    def _lazy_import(
        self, source: ModuleSource, edge: ImportEdge, name: str, module: str
    ) -> Raised | None:
        got = self.import_(module)
        if got is None:
            return None
        note = (
            f"{edge.target} serves '{name}' from its module __getattr__, whose table names {module}"
        )
        step = _edge_step(source, edge, imports=module, how="dynamic", note=note)
        return got.via(step, "likely")


def _open_at(source: ModuleSource, paused: int | None) -> bool:
    """Whether any name may be bound in ``source``'s namespace: it is open (a star import,
    globals() writes), and, where it is paused half-way, opened before that line."""
    if not source.open_namespace:
        return False
    return paused is None or source.open_line is None or source.open_line < paused


def _unfollowed_names(source: ModuleSource) -> frozenset[str]:
    """Module-level names bound by constructs the run does not follow (walrus, match)."""
    return frozenset()


def _edge_step(
    source: ModuleSource,
    edge: ImportEdge,
    *,
    imports: str | None = None,
    how: LinkKind | None = None,
    note: str | None = None,
) -> ChainStep:
    """The link of a chain that ``edge`` of ``source`` is (what it imports, how, and
    its note given where the failure says more than the edge)."""
    return ChainStep(
        module=source.name,
        imports=edge.target if imports is None else imports,
        how=edge.kind if how is None else how,
        path=source.path,
        line=edge.line,
        statement=edge.statement,
        note=_guard_note(edge) if note is None else note,
    )


def _guard_note(edge: ImportEdge) -> str:
    if not edge.guards:
        return ""
    return "inside " + ", ".join(f"{g.text} (line {g.line})" for g in edge.guards)


# -- the pipeline's entry point ------------------------------------------------


def _lazy_graph(
    stack: Stack,
    importer: ImportSystem,
    facts: FactsLike,
    target: Target,
    parses: ParseHook | None,
) -> Callable[[], ImportGraph]:
    """The scan's import graph, built (and its modules imported) on first use."""
    built: list[ImportGraph] = []

    def graph() -> ImportGraph:
        if not built:
            from abiscan.simulate.python.import_graph import ImportGraph  # start-up

            built.append(
                ImportGraph(
                    reader=_reader(stack, importer, facts),
                    version=target.python_version,
                    # Every source of one scan has the scan's budgets.
                    limits=stack.sources[0].limits if stack.sources else DEFAULT_LIMITS,
                    parses=parses,
                    stdlib=stdlib_dir(target.sys_path, target.python_version),
                )
            )
        return built[0]

    return graph


def _reader(stack: Stack, importer: ImportSystem, facts: FactsLike) -> SourceReader:
    from abiscan.simulate.python.import_graph import SourceReader  # start-up: see the imports

    def read(path: str) -> bytes | None:
        data = facts.read(path)
        return None if isinstance(data, SourceError) else data

    def find(name: str) -> tuple[str, str | None, bool] | None:
        spec = importer.find(name).spec
        if spec is None:
            return None
        return spec.loader_kind, spec.origin, spec.is_package

    return SourceReader(read, find)


@record
class Broken:
    """A top-level module that certainly fails through a chain of imports."""

    module: ModuleOutcome
    raised: Raised


@record
class Followed:
    """What following every module's imports found: the outcomes, and the events the
    rules turn into findings (broken chains, guards that let an exception through)."""

    modules: tuple[ModuleOutcome, ...]
    broken: tuple[Broken, ...]
    pierced: tuple[Pierced, ...]
    # The modules whose import abiscan failed to simulate (a bug of abiscan's), each
    # with its exception: the scan reports them as internal errors.
    failures: tuple[tuple[str, Exception], ...] = ()


def not_followed(module: ModuleOutcome, why: str) -> ModuleOutcome:
    """``module``'s own outcome when its imports could not be followed: what they do is
    not known, so a module whose own file loads is unknown, not ok, and an error
    (its own file fails) may be met after another one (its parent's)."""
    reason = f"{module.reason}; its imports were not followed: {why}".lstrip("; ")
    if module.outcome == "error":
        sure: OutcomeConfidence = "likely" if module.confidence == "certain" else "possible"
        return replace(module, reason=reason, confidence=sure)
    return replace(module, outcome="unknown", error=None, reason=reason)


def follow_imports(
    modules: Sequence[ModuleOutcome],
    predict: Callable[[str], ModuleOutcome],
    stack: Stack,
    importer: ImportSystem,
    facts: FactsLike,
    owners: Mapping[str, Distribution],
    target: Target,
    parses: ParseHook | None = None,
    failed: Callable[[str], None] | None = None,
) -> Followed:
    """Each module's outcome once its imports are followed.

    ``predict(name)`` is the pipeline's own prediction for one module (its
    file found, loaded and linked); ``owners`` maps stack paths to the
    distribution that installed them. ``failed(name)`` hears of each module
    whose import certainly fails, as soon as that is known: no import reaches
    its submodules (the parse-ahead workers skip them).
    """
    graph = _lazy_graph(stack, importer, facts, target, parses)
    runtime = runtime_modules(target)
    contents = runtime_modules_of(target)
    tops = _top_level_names(stack, target)

    def own(name: str) -> ModuleOutcome:
        outside = _outside_stack(name, target, tops, runtime, contents)
        if outside is not None:
            return outside
        got = predict(name)
        if got.outcome == "error" and got.path is None:
            return _not_found(name, got, graph, importer, stack, target)
        return got

    def exists(name: str) -> bool:
        if name.partition(".")[0] not in tops:
            return False
        res = importer.find(name)
        return res.spec is not None or bool(res.passed_over)

    native = _NativeReader(facts, owners, exists)

    def facts_of_target() -> TargetFacts:
        from abiscan.simulate.python.evaluator import TargetFacts  # start-up: see the imports

        return TargetFacts(
            version=target.python_version,
            machine=target.arch,
            pointer_size=8 if target.arch.endswith("64") else 4,
            executable=_executable(target),
            micro_floor=micro_floor(target.runtime),
        )

    roots = tuple(r.rstrip("/") for r in (target.layer_root, target.function_root))

    def rodata(path: str) -> bytes | None:
        ro = facts.rodata(path)
        return None if isinstance(ro, SourceError) else ro

    def listdir(path: str) -> Sequence[str] | None:
        # Only where the stack is the whole truth: /opt holds the layers and nothing
        # else, /var/task the function code; elsewhere the target's system decides.
        if not any(path == r or path.startswith(r + "/") for r in roots):
            return None
        return stack.listdir(path) if stack.is_dir(path) else None

    sim = Simulator(
        graph,
        own,
        native,
        facts_of_target,
        _intact_check(stack, owners),
        writer=_writers_check(stack, owners),
        optional=_optional_check(owners, target, tops, runtime),
        listdir=listdir,
        rodata=rodata,
        runtime=contents,
    )
    try:
        return _follow_each(sim, modules, own, failed)
    finally:
        sim.release()


def _outside_stack(
    name: str,
    target: Target,
    tops: Container[str],
    runtime: Mapping[str, RuntimePackage],
    contents: RuntimeModules,
) -> ModuleOutcome | None:
    """The outcome of a module the stack does not provide: built in, the standard
    library, or the runtime's own packages; None when the stack decides."""
    top = name.partition(".")[0]
    if top in BUILTIN_FIRST or name == "__main__":
        reason = (
            "built into the interpreter"
            if name != "__main__"
            else "always in sys.modules: the program the interpreter runs"
        )
        return ModuleOutcome(
            name=name, outcome="ok", path=None, source=None, kind="builtin", reason=reason
        )
    if top in tops:
        return None
    if is_stdlib(name, target.python_version):
        return ModuleOutcome(
            name=name,
            outcome="ok",
            path=None,
            source=None,
            kind="stdlib",
            reason="the target's standard library",
        )
    if top not in runtime:
        return None
    if contents.has_module(name) is False:
        return _missing_runtime_module(name, contents)
    return ModuleOutcome(
        name=name,
        outcome="ok",
        path=None,
        source=None,
        kind="runtime",
        reason=f"provided by the runtime ({runtime[top].describe()})",
    )


class _NativeReader:
    """What each extension module imports while it initialises, read once per file
    from the facts the scan kept when it read the binary."""

    def __init__(
        self,
        facts: FactsLike,
        owners: Mapping[str, Distribution],
        exists: Callable[[str], bool],
    ) -> None:
        self._facts = facts
        self._owners = owners
        self._exists = exists
        self._memo: dict[str, NativeFacts | None] = {}

    def __call__(self, name: str, path: str) -> NativeFacts | None:
        if path not in self._memo:
            self._memo[path] = self._read(name, path)
        return self._memo[path]

    def _read(self, name: str, path: str) -> NativeFacts | None:
        ro = self._facts.rodata(path)
        if isinstance(ro, SourceError):
            return None
        elf = self._facts.elf(path)
        dist = self._owners.get(path)
        found = native_imports(
            name,
            path,
            b"",
            elf if isinstance(elf, ElfFacts) else None,
            self._exists,
            (dist.name, dist.version) if dist is not None else None,
            ro=ro,
        )
        return _with_import_array(found, ro, self._exists)


def _missing_runtime_module(name: str, contents: RuntimeModules) -> ModuleOutcome:
    """A submodule the runtime's distribution lacks at the version the data records."""
    parent = name.rpartition(".")[0]
    message = f"No module named '{name}'"
    if contents.has_module(parent) and not contents.is_package(parent):
        message += f"; '{parent}' is not a package"
    why = contents.assumption(name)
    return ModuleOutcome(
        name=name,
        outcome="error",
        path=None,
        source=None,
        kind="runtime",
        error=PredictedError(type="ModuleNotFoundError", message=message),
        reason=f"not in the runtime's distribution: {why}",
        confidence="likely",
        assumptions=(
            Assumption(
                path=contents.path(parent) or parent,
                line=0,
                condition=f"{parent} has no submodule '{name.rpartition('.')[2]}'",
                taken=True,
                why=why,
            ),
        ),
    )


def _with_import_array(facts: NativeFacts, ro: bytes, exists: Callable[[str], bool]) -> NativeFacts:
    """``facts`` with the import numpy's import_array() makes at init, where it applies."""
    edge = numpy_import_array(facts.module, ro, exists)
    return facts if edge is None else replace(facts, imports=(*facts.imports, edge))


def _executable(target: Target) -> str | None:
    """``sys.executable`` where the target fixes it: a Lambda runtime's bootstrap runs
    ``/var/lang/bin/python3.X`` (docs/evaluator.md); unknown elsewhere."""
    if target.runtime is None or not target.runtime.startswith("python"):
        return None
    major, minor = target.python_version
    return f"/var/lang/bin/python{major}.{minor}"


def _follow_each(
    sim: Simulator,
    modules: Sequence[ModuleOutcome],
    own: Callable[[str], ModuleOutcome],
    failed: Callable[[str], None] | None = None,
) -> Followed:
    """Runs ``import name`` for each module, in a fresh simulated interpreter each."""
    out: list[ModuleOutcome] = []
    broken: list[Broken] = []
    failures: list[tuple[str, Exception]] = []
    for module in modules:
        count("modules")
        try:
            got = sim.run(module.name)
        except Exception as exc:  # a bug: this module is unknown, the others still followed
            failures.append((module.name, exc))
            why = f"internal error in abiscan ({type(exc).__name__})"
            out.append(not_followed(module, why))
            continue
        if failed is not None and got is not None and got.certain:
            failed(module.name)
        provided = own(module.name)
        if module.outcome == "error" and module.path is None and provided.ok:
            # A name asked for with --import that the target itself provides (os, boto3).
            module = replace(
                module,
                outcome="ok",
                error=None,
                kind=provided.kind,
                reason=provided.reason,
                candidates=(),
            )
        updated = _calibrated(_outcome(module, got), got, sim.assumptions())
        out.append(updated)
        if (
            "." not in module.name
            and got is not None
            and got.certain
            and got.steps
            and got.error is not None
        ):
            broken.append(Broken(module=updated, raised=got))
    pierced = [
        p
        for p in sorted(sim.pierced.values(), key=lambda p: (p.module, p.line))
        if p.raised.certain and p.raised.error is not None
    ]
    return Followed(
        modules=tuple(out), broken=tuple(broken), pierced=tuple(pierced), failures=tuple(failures)
    )


def _calibrated(
    module: ModuleOutcome, got: Raised | None, assumed: tuple[Assumption, ...]
) -> ModuleOutcome:
    """The outcome's confidence, from the links of its chain and the sides it assumed."""
    confidence: str = module.confidence
    if module.outcome == "unknown":
        confidence = "possible"
    elif got is not None and got.certain and module.outcome == "error":
        confidence = got.confidence
    if assumed and confidence == "certain":
        confidence = "likely"
    level: OutcomeConfidence = (
        "possible"
        if confidence == "possible"
        else ("likely" if confidence == "likely" else "certain")
    )
    return replace(module, confidence=level, assumptions=assumed)


def _installed_elsewhere(record_path: str) -> bool:
    """A RECORD entry outside the import tree: a script, header or data file installed
    under another prefix (``../../bin/isympy``), or still under the wheel's ``*.data``
    directory (sympy's ``share/man`` page, where the layer was unpacked, not installed)."""
    top = record_path.split("/", 1)[0]
    return top == ".." or top.endswith(".data")


def _intact_check(stack: Stack, owners: Mapping[str, Distribution]) -> Callable[[str], str | None]:
    """``intact(path)``: the label of the distribution that installed ``path`` when every
    file its RECORD lists is in the stack, from the same input, of the recorded size."""
    memo: dict[str, bool] = {}

    def whole(dist: Distribution) -> bool:
        for entry, path in zip(dist.record, dist.files(), strict=True):
            if entry.hash is None or _installed_elsewhere(entry.path):
                continue  # RECORD itself, files written after install, scripts and data
            sf = stack.file(path)
            if sf is None or sf.origin.source != dist.source:
                return False
            if entry.size is not None and sf.entry.size != entry.size:
                return False
        return True

    def intact(path: str) -> str | None:
        dist = owners.get(path)
        if dist is None:
            return None
        if dist.dist_info not in memo:
            memo[dist.dist_info] = whole(dist)
        return dist.label if memo[dist.dist_info] else None

    return intact


def _writers_check(
    stack: Stack, owners: Mapping[str, Distribution]
) -> Callable[[str], tuple[str, str] | None]:
    """``writer(path)``: (project, version) of the copy whose RECORD hash the file's bytes
    match, for a project with copies of two versions in one directory (layers unpacked
    one over the other); None elsewhere, and for a file both versions ship alike."""
    groups: dict[tuple[str, str], list[Distribution]] = defaultdict(list)
    for dist in {d.dist_info: d for d in owners.values()}.values():
        groups[(dist.canonical_name, dist.site)].append(dist)
    mixed = {k: ds for k, ds in groups.items() if len({d.version for d in ds}) > 1}
    hashes: dict[str, dict[str, str]] = {}  # dist-info -> path -> RECORD hash
    memo: dict[str, tuple[str, str] | None] = {}

    def recorded(dist: Distribution) -> dict[str, str]:
        if dist.dist_info not in hashes:
            hashes[dist.dist_info] = {
                path: entry.hash
                for entry, path in zip(dist.record, dist.files(), strict=True)
                if entry.hash is not None and entry.hash.startswith("sha256=")
            }
        return hashes[dist.dist_info]

    def writer(path: str) -> tuple[str, str] | None:
        dist = owners.get(path)
        copies = mixed.get((dist.canonical_name, dist.site)) if dist is not None else None
        if dist is None or copies is None:
            return None
        if path not in memo:
            memo[path] = None
            try:
                actual = _record_hash(stack.read(path))
            except SourceError:
                return None
            versions = {c.version for c in copies if recorded(c).get(path) == actual}
            if len(versions) == 1:
                memo[path] = (dist.name, versions.pop())
        return memo[path]

    return writer


def _record_hash(data: bytes) -> str:
    """A file's hash as RECORD writes it."""
    import base64
    import hashlib

    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()
    return "sha256=" + digest.rstrip("=")


def _mixed_versions(writers: Mapping[tuple[str, str], str]) -> Assumption | None:
    """The assumption an import that loaded files of two versions of one project rests
    on (``writers``: (project, version) -> a file that version wrote), or None."""
    by_project: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for (project, version), path in sorted(writers.items()):
        by_project[project].append((version, path))
    for project, seen in by_project.items():
        if len(seen) > 1:
            files = "; ".join(f"{version} ({path})" for version, path in seen)
            return Assumption(
                path=seen[-1][1],
                line=0,
                condition=f"the files of {len(seen)} versions of {project}, unpacked one "
                f"over the other, work together: {files}",
                taken=True,
                why=f"the import runs them as they are on disk and meets no failure abiscan "
                f"checks (calls against their signatures, names imported from extension "
                f"modules, attributes read from other modules); no release of {project} "
                "was built or tested with that mix (see ABI306)",
            )
    return None


def _optional_check(
    owners: Mapping[str, Distribution],
    target: Target,
    tops: frozenset[str],
    runtime: Mapping[str, RuntimePackage],
) -> Callable[[tuple[str | None, ...], str], str | None]:
    """``optional(paths, module)``: why ``module`` is an optional dependency of the
    distributions that installed ``paths``, or None.

    It is, when its top-level name is nowhere in the stack, each distribution is known
    (dist-info lists the path), none requires it on the target (a ``Requires-Dist``
    outside an ``extra`` marker, by project name), and every requirement they do have is
    installed: a missing one might be what provides the module under another name."""
    env = marker_environment(target)
    installed: set[str] = set()
    required: dict[str, frozenset[str]] = {}

    def requires(dist: Distribution) -> frozenset[str]:
        if dist.dist_info not in required:
            required[dist.dist_info] = frozenset(_required(dist, env))
        return required[dist.dist_info]

    def optional(paths: tuple[str | None, ...], module: str) -> str | None:
        top = module.partition(".")[0]
        if top in tops or top in runtime or _ever_stdlib(top):
            return None  # there after all, or a standard module this version lacks
        dists = [owners.get(p) if p is not None else None for p in dict.fromkeys(paths)]
        if not dists or any(d is None for d in dists):
            return None
        from packaging.utils import canonicalize_name  # only with a dist-info: see _required

        if not installed:
            installed.update(canonicalize_name(d.name) for d in owners.values())
            installed.update(canonicalize_name(p.name) for p in runtime.values())
        labels = []
        for dist in dists:
            assert dist is not None
            needs = requires(dist)
            if canonicalize_name(top) in needs or needs - installed:
                return None
            labels.append(dist.label)
        return (
            f"'{top}' is not in the stack, and {' and '.join(dict.fromkeys(labels))} does not "
            "require it (Requires-Dist names it only under an extra, or not at all)"
        )

    return optional


def _ever_stdlib(top: str) -> bool:
    return any(is_stdlib(top, (3, minor)) for minor in range(6, 15))


def _required(dist: Distribution, env: Mapping[str, str]) -> set[str]:
    """The projects ``dist`` requires on the target, outside any extra (canonical names);
    a requirement abiscan cannot read counts as required, under a name no module has."""
    # Imported here, not at the top: packaging's markers cost a scan with no
    # dist-info (a layer of one extension module) a third of its start-up.
    from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    out: set[str] = set()
    for text in dist.requires_dist:
        try:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate(dict(env)):
                continue
        except (InvalidRequirement, InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
            out.add(f"<unreadable: {text}>")
            continue
        out.add(canonicalize_name(req.name))
    return out


def _outcome(module: ModuleOutcome, got: Raised | None) -> ModuleOutcome:
    if got is None:
        return module
    chain = (module.name, *(s.imports for s in got.steps))
    if not got.steps:
        # It fails by itself (own load error, or a SyntaxError found here).
        if module.outcome == "ok" and got.error is not None and got.certain:
            return replace(module, outcome="error", error=got.error, reason=got.reason, chain=chain)
        if module.outcome == "ok":
            return replace(module, outcome="unknown", reason=got.reason, chain=chain)
        if module.outcome != "error":
            return module
        # Its own reason, with what may come first (a parent that may fail) added.
        more = got.reason.startswith(module.reason) and got.reason != module.reason
        return replace(module, chain=chain, reason=got.reason if more else module.reason)
    path = " -> ".join(chain)
    if module.outcome == "error" and got.certain and got.error == module.error:
        return replace(module, chain=chain, steps=got.steps)  # its reason already says why
    if got.certain and got.error is not None:
        how = "" if got.confidence == "certain" else f" ({got.confidence})"
        reason = f"import chain {path}{how}; {got.broken}: {got.reason}"
        if got.steps[0].how == "parent":
            # "import a.b" imports "a" first: say so in the words a user expects.
            reason = f"its parent package '{got.steps[0].imports}' fails to import ({reason})"
        return replace(
            module, outcome="error", error=got.error, reason=reason, chain=chain, steps=got.steps
        )
    if module.outcome == "error":
        return module
    what = f"{got.error}" if got.error is not None else "an unknown outcome"
    reason = f"may end in {what} through the import chain {path}; {got.broken}: {got.reason}"
    return replace(module, outcome="unknown", reason=reason, chain=chain, steps=got.steps)


def _not_found(
    name: str,
    got: ModuleOutcome,
    graph: Callable[[], ImportGraph],
    importer: ImportSystem,
    stack: Stack,
    target: Target,
) -> ModuleOutcome:
    """A module the finder does not find, unless a package extends its search at run time."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        package = ".".join(parts[:i])
        source = graph().module(package)
        if source is None:
            continue
        if source.custom_finder:
            rel = name[len(package) + 1 :]
            if (
                rel in source.hook_names
                or name in source.hook_names
                or all(part in source.hook_names for part in rel.split("."))
            ):
                # six's "moves": importing the submodule imports the package first,
                # which installs the hook that its own source registers the name with.
                return replace(
                    got,
                    outcome="ok",
                    error=None,
                    candidates=(),
                    confidence="likely",
                    reason=(
                        f"served by the import hook {package} installs "
                        f"(sys.meta_path), whose source names '{rel}'"
                    ),
                )
            return replace(
                got,
                outcome="unknown",
                error=None,
                reason=(
                    f"not found as a file, but {package} installs an import hook "
                    "(sys.meta_path/path_hooks) that may provide it"
                ),
            )
        if source.extends_path and i == len(parts) - 1:
            if _on_extended_path(name, importer, stack, target):
                return replace(
                    got,
                    outcome="ok",
                    error=None,
                    reason=(
                        f"found through {package}.__path__, which the package extends to every "
                        "sys.path entry (pkgutil.extend_path / declare_namespace)"
                    ),
                )
            return got
    return got


def _on_extended_path(name: str, importer: ImportSystem, stack: Stack, target: Target) -> bool:
    parent, _, tail = name.rpartition(".")
    rel = parent.replace(".", "/")
    for entry in target.sys_path:
        directory = posixpath.join(entry, rel)
        if stack.is_dir(directory) and importer.find_in(name, tail, directory) is not None:
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
