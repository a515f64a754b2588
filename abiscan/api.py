"""The pipeline: inputs -> stack -> facts -> simulation -> findings -> report.

Everything after the sources are opened is a pure function of the stack's
bytes and the target: same inputs, same target, same report.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from abiscan import __version__
from abiscan.collector import collector_spaced
from abiscan.elf.reader import ElfFacts
from abiscan.errors import ArgumentError
from abiscan.frame_stack import call_with_frame_room
from abiscan.inputs.member_facts import FileFacts
from abiscan.inputs.sources import InputKind, InputProblem, Source, SourceError, open_source
from abiscan.inputs.stack import DEFAULT_MEMORY_BUDGET, Stack, StackFile, build_stack
from abiscan.limits import DEFAULT_LIMITS, Limits
from abiscan.parallel import default_jobs, may_start_workers
from abiscan.predict.extension import load_bytecode, load_extension
from abiscan.progress import ScanProgress, reporting
from abiscan.records import mutable_record
from abiscan.report.findings import Finding, PredictedError
from abiscan.report.model import Candidate, InputSummary, ModuleOutcome, Outcome, Report
from abiscan.rules import layers
from abiscan.rules.impact import impact_findings
from abiscan.simulate.imports.extension_tags import mismatch
from abiscan.simulate.imports.file_finder import ImportSystem, Resolution
from abiscan.simulate.imports.inventory import DeadRoot, ModuleCandidate, candidates, dead_roots
from abiscan.simulate.python.propagation import Followed, follow_imports, not_followed
from abiscan.target.profiles import Target, builtin_target
from abiscan.target.runtime_packages import runtime_packages
from abiscan.target.stdlib import stdlib_dir

__all__ = [
    "PathLike",
    "analyse",
    "is_module_name",
    "module_names",
    "scan",
    "with_wheel_checks",
]

if TYPE_CHECKING:
    from abiscan.inputs.content_cache import ContentCache
    from abiscan.inputs.dists import Distribution
    from abiscan.prefetch import SourcePrefetch

PathLike = str | os.PathLike[str]


def scan(
    layers: PathLike | Sequence[PathLike] = (),
    function: PathLike | None = None,
    site_packages: PathLike | Sequence[PathLike] = (),
    *,
    target: Target | None = None,
    runtime: str | None = None,
    arch: str | None = None,
    imports: str | Sequence[str] = (),
    limits: Limits = DEFAULT_LIMITS,
    jobs: int | None = None,
    cache_dir: PathLike | None = None,
    use_cache: bool = True,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    labels: Mapping[str, str] | None = None,
    progress: Callable[[ScanProgress], None] | None = None,
) -> Report:
    """Predict, for every module the inputs provide, what ``import`` does on the target.

    ``layers`` are layer zips or extracted layer directories, in the order they
    are attached (a ``.whl`` among them is installed into site-packages);
    ``function`` is the deployment zip or directory; ``site_packages`` are
    wheels or directories installed into the target's site-packages. Without
    ``target``, the built-in profile of ``runtime`` on ``arch`` is used.
    ``imports`` adds dotted module names to predict besides the ones the stack
    suggests (top-level modules and packages, and every extension module).
    ``limits`` are the budgets of the scan (``docs/limits.md``).

    An unexpected exception while reading one input or predicting one module
    is caught there: it becomes an input problem with ``internal=True`` (see
    :attr:`Report.internal_errors`), the module is ``unknown``, and the rest
    of the report is made as usual.

    ``jobs`` processes work on the scan: this one, and ``jobs - 1`` workers
    parsing sources ahead (default: the cores this process may run on; 1
    parses in this process only, the better choice where other work keeps
    the cores busy). Workers are started with ``multiprocessing``'s ``spawn``
    method, which imports the calling program's main module again in each
    worker: a script that calls ``scan`` keeps its work under
    ``if __name__ == "__main__":``. Facts are kept in the content cache
    in ``cache_dir`` (default: ``$ABISCAN_CACHE_DIR``, else the platform's
    cache directory) unless ``use_cache`` is false; an unchanged scan (same
    inputs, target, options and abiscan) is answered from it whole, by the
    report it made (:mod:`abiscan.result_memo`). ``memory_budget`` bounds
    the inflated bytes held at once; a member larger than it is reported as an
    input problem and not read. None of these change the report.

    One path (a ``str`` or ``os.PathLike``) given for ``layers`` or
    ``site_packages`` is one input, and one string given for ``imports`` is one
    name. ``target`` together with ``runtime`` or ``arch``, and an invalid
    module name, raise :class:`~abiscan.errors.ArgumentError`.
    ``labels`` names inputs in the report by something other than their path
    (an audit names a downloaded copy by the URL it came from).
    ``progress`` is called with the counts of work done so far (members
    inflated, ELF files parsed, modules simulated) at most ten times a second,
    and once at the end; it must not raise.
    """
    with reporting(progress), collector_spaced():
        # The scan's own objects (the stack's entries, the binaries' facts: some
        # 100,000 on the real layer of docs/benchmarks.md) are freed as _scan
        # returns, before the caller's thresholds come back: the collection those
        # thresholds start at once then walks the report, not them (0.04 s).
        # The scan's recursive walks cross no end of a frame-stack chunk
        # (abiscan.frame_stack: 10,000 or more mmap/munmap pairs otherwise).
        return call_with_frame_room(
            _scan,
            layers=layers, function=function, site_packages=site_packages, target=target,
            runtime=runtime, arch=arch, imports=imports, limits=limits, jobs=jobs,
            cache_dir=cache_dir, use_cache=use_cache, memory_budget=memory_budget, labels=labels,
        )


def _scan(
    *,
    layers: PathLike | Sequence[PathLike],
    function: PathLike | None,
    site_packages: PathLike | Sequence[PathLike],
    target: Target | None,
    runtime: str | None,
    arch: str | None,
    imports: str | Sequence[str],
    limits: Limits,
    jobs: int | None,
    cache_dir: PathLike | None,
    use_cache: bool,
    memory_budget: int,
    labels: Mapping[str, str] | None,
) -> Report:
    if target is None:
        target = builtin_target(runtime or "python3.12", arch or "x86_64")
    elif runtime is not None or arch is not None:
        raise ArgumentError("give either target= or runtime=/arch=, not both")
    names = module_names(imports)
    specs = [(p, InputKind.LAYER) for p in _paths(layers, "layers")]
    specs += [(p, InputKind.SITE_PACKAGES) for p in _paths(site_packages, "site_packages")]
    if function is not None:
        specs.append((function, InputKind.FUNCTION))
    sources, opened, problems = open_inputs(specs, limits, labels)
    try:
        cache = None
        memo = None
        if use_cache:
            # Start-up: a scan without the cache loads neither.
            from abiscan.inputs.content_cache import ContentCache, default_cache_dir
            from abiscan.result_memo import memo_key, recall, remember

            cache = ContentCache(
                Path(cache_dir) if cache_dir is not None else default_cache_dir()
            )
            # The whole report of an unchanged scan (docs/decisions.md).
            memo = memo_key(specs, opened, problems, target, names, limits, memory_budget)
            recalled = recall(cache, memo, target) if memo is not None else None
            if recalled is not None:
                return with_wheel_checks(recalled, specs)
        stack = build_stack(target, sources, memory_budget)
        summaries = [
            item if isinstance(item, InputSummary) else _summary(item, stack) for item in opened
        ]
        report = analyse(
            stack,
            target,
            summaries,
            problems + stack.problems,
            names,
            jobs=default_jobs() if jobs is None else jobs,
            cache=cache,
        )
        if cache is not None and memo is not None:
            remember(cache, memo, report, complete=not stack.failed_reads)
        return with_wheel_checks(report, specs)
    finally:
        if cache is not None:
            cache.close()  # publishes what this process put (one pack)
        for source in sources:
            source.close()


def with_wheel_checks(report: Report, specs: Sequence[tuple[PathLike, InputKind]]) -> Report:
    """The report with ABI307 for each readable ``.whl`` input that fails verification."""
    readable = {i.label for i in report.inputs if i.readable}
    wheels = [os.fspath(path) for path, _ in specs]
    if not any(w.endswith(".whl") for w in wheels):
        return report
    from abiscan.rules.wheels import verify_wheel

    found = [
        f
        for f in (
            verify_wheel(w, w)
            for w in wheels
            if w.endswith(".whl") and w in readable and os.path.isfile(w)
        )
        if f is not None
    ]
    if not found:
        return report
    return replace(report, findings=tuple(sorted((*report.findings, *found), key=Finding.sort_key)))


def _paths(value: PathLike | Sequence[PathLike], parameter: str) -> list[PathLike]:
    """One path is one input; a ``str`` is never a sequence of one-character inputs."""
    if isinstance(value, (str, os.PathLike)):
        return [value]
    if isinstance(value, (bytes, bytearray)):
        raise TypeError(f"{parameter}: give str or os.PathLike paths, not bytes")
    return list(value)


def is_module_name(name: str) -> bool:
    """Whether ``name`` is a dotted module name (``a``, ``a.b_c``)."""
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def module_names(imports: str | Sequence[str]) -> list[str]:
    """``imports`` as a list of names (one string is one name); invalid names raise."""
    names = [imports] if isinstance(imports, str) else list(imports)
    bad = [n for n in names if not isinstance(n, str) or not is_module_name(n)]
    if bad:
        raise ArgumentError(f"imports: not a dotted module name: {bad[0]!r}")
    return names


def open_inputs(
    specs: Sequence[tuple[PathLike, InputKind]],
    limits: Limits = DEFAULT_LIMITS,
    labels: Mapping[str, str] | None = None,
) -> tuple[list[Source], list[Source | InputSummary], list[InputProblem]]:
    """Open each input: the sources, every input in the order given (an unreadable one
    keeps its place as a summary), and the problems of those that could not be opened."""
    sources: list[Source] = []
    opened: list[Source | InputSummary] = []
    problems: list[InputProblem] = []
    for path, kind in specs:
        label = labels.get(os.fspath(path), os.fspath(path)) if labels else os.fspath(path)
        try:
            source = open_source(os.fspath(path), kind, label, limits)
        except SourceError as exc:
            problem = str(exc).removeprefix(f"{label}: ")
            problems.append(InputProblem(source=label, path=None, problem=problem))
        except Exception as exc:
            problems.append(_internal(label, None, "reading the input", exc))
        else:
            sources.append(source)
            opened.append(source)
            continue
        opened.append(InputSummary.unreadable(label, kind.value))
    return sources, opened, problems


def _summary(source: Source, stack: Stack) -> InputSummary:
    files = [e for e in source.entries() if e.kind != "dir"]
    return InputSummary(
        label=source.label,
        kind=source.kind.value,
        placed_at=stack.root_for(source.kind),
        files=len(files),
        unzipped_bytes=sum(e.size for e in files),
        readable=True,
    )


def analyse(
    stack: Stack,
    target: Target,
    inputs: Sequence[InputSummary] = (),
    problems: Sequence[InputProblem] = (),
    imports: str | Sequence[str] = (),
    *,
    jobs: int = 1,
    cache: ContentCache | None = None,
) -> Report:
    """The pure part: from a stack and a target to a report.

    ``jobs`` and ``cache`` change how fast, never what: see :func:`scan`.
    """
    names = module_names(imports)
    if cache is None and not may_start_workers(stack, jobs):
        # Nothing for the parse hook to do: no cache to serve, no worker to start.
        return call_with_frame_room(_analyse, stack, target, inputs, problems, names, None)
    from abiscan.prefetch import SourcePrefetch

    prefetch = SourcePrefetch(
        stack,
        target.python_version,
        cache,
        jobs,
        stdlib=stdlib_dir(target.sys_path, target.python_version),
        limits=stack.sources[0].limits if stack.sources else DEFAULT_LIMITS,
    )
    try:
        prefetch.start()
        report = call_with_frame_room(_analyse, stack, target, inputs, problems, names, prefetch)
        prefetch.finished()
        return report
    finally:
        prefetch.close()


def _analyse(
    stack: Stack,
    target: Target,
    inputs: Sequence[InputSummary],
    problems: Sequence[InputProblem],
    imports: Sequence[str],
    prefetch: SourcePrefetch | None,
) -> Report:
    facts = FileFacts(
        stack=stack,
        cache=prefetch.cache if prefetch is not None else None,
        prefetched=prefetch.summary if prefetch is not None else None,
        read_elsewhere=prefetch.read_elsewhere if prefetch is not None else None,
    )
    importer = ImportSystem(stack, target)
    guard = _Guard()
    no_dead: list[DeadRoot] = []
    dead = guard.stage("finding sys.path roots", lambda: dead_roots(stack, target), no_dead)
    no_modules: list[ModuleCandidate] = []
    found = guard.stage(
        "listing modules", lambda: candidates(stack, target, dead, facts.is_extension), no_modules
    )
    known = {c.name for c in found}
    for name in imports:
        if name not in known:
            known.add(name)
            found.append(ModuleCandidate(name=name, root="", path="", visible=True))
    own = _OwnOutcomes(
        stack=stack,
        target=target,
        facts=facts,
        importer=importer,
        dead=dead,
        found=found,
        guard=guard,
    )
    modules = [own.guarded(c.name) for c in sorted(found, key=lambda c: c.name)]
    findings = own.findings
    none: list[Finding] = []
    findings.extend(
        guard.stage(
            "finding code outside sys.path",
            lambda: _dead_root_findings(dead, found, modules, stack, target),
            none,
        )
    )
    no_dists: list[Distribution] = []
    dists = guard.stage("reading dist-info", lambda: _distributions(stack), no_dists)
    owners = _owners(dists)
    # Follow each module's imports (Python and native) to the broken modules it reaches.
    followed: Followed | None = guard.stage(
        "following imports",
        lambda: follow_imports(
            modules, own.guarded, stack, importer, facts, owners, target, prefetch,
            prefetch.failed if prefetch is not None else None,
        ),
        None,
    )
    if followed is not None:
        modules = list(followed.modules)
        chains = followed  # bound for the lambda (mypy narrows a local, not a closure)
        impact = guard.stage(
            "reporting broken import chains", lambda: impact_findings(chains, stack), none
        )
        findings.extend(impact)
        guard.problems.extend(_follow_problems(followed.failures))
    else:
        modules = [not_followed(m, "internal error in abiscan") for m in modules]
    findings = [_attribute(f, owners) for f in findings]
    findings += _stack_findings(guard, dists, found, owners, stack, importer, facts, target, inputs)
    every = [*problems, *facts.problems, *_dist_problems(dists), *guard.problems]
    all_problems = sorted(
        {(p.source, p.path or "", p.problem): p for p in [*every, *stack.read_problems]}.values(),
        key=lambda p: (p.source, p.path or "", p.problem),
    )
    facts.save_reads()
    return Report(
        target=target,
        modules=tuple(modules),
        findings=tuple(sorted(_dedupe(findings), key=Finding.sort_key)),
        inputs=tuple(inputs),
        problems=tuple(all_problems),
        tool_version=__version__,
    )


@mutable_record
class _OwnOutcomes:
    """Each module's own outcome (its file found, loaded and linked), predicted once."""

    stack: Stack
    target: Target
    facts: FileFacts
    importer: ImportSystem
    dead: Sequence[DeadRoot]
    found: Sequence[ModuleCandidate]
    guard: _Guard
    findings: list[Finding] = field(default_factory=list)
    _memo: dict[str, ModuleOutcome] = field(default_factory=dict)
    # The candidates by name (the first of each), made at the first lookup: every
    # module the import simulation reaches is looked up, thousands in a large layer.
    _by_name: dict[str, ModuleCandidate] | None = None

    def predict(self, name: str) -> ModuleOutcome:
        done = self._memo.get(name)
        if done is not None:
            return done
        cand = self._candidate(name) or ModuleCandidate(name=name, root="", path="", visible=True)
        outcome, new = _predict(
            cand, self.importer.find(name), self.stack, self.facts, self.target, self.dead
        )
        self.findings.extend(new)
        self._memo[name] = outcome
        return outcome

    def guarded(self, name: str) -> ModuleOutcome:
        """:meth:`predict`; one module's bug must not lose the report: that module is
        unknown, and the bug an internal input problem."""
        try:
            return self.predict(name)
        except Exception as exc:
            cand = self._candidate(name)
            src, src_path = _origin_of(self.stack, cand.path if cand else None)
            self.guard.problems.append(
                _internal(src or "abiscan", src_path, f"predicting '{name}'", exc)
            )
            self._memo[name] = ModuleOutcome(
                name=name,
                outcome="unknown",
                path=cand.path if cand else None,
                source=src,
                source_path=src_path,
                reason=f"internal error in abiscan while predicting it ({type(exc).__name__})",
            )
            return self._memo[name]

    def _candidate(self, name: str) -> ModuleCandidate | None:
        if self._by_name is None:
            self._by_name = {}
            for c in self.found:
                self._by_name.setdefault(c.name, c)
        return self._by_name.get(name)


def _stack_findings(
    guard: _Guard,
    dists: Sequence[Distribution],
    found: Sequence[ModuleCandidate],
    owners: dict[str, Distribution],
    stack: Stack,
    importer: ImportSystem,
    facts: FileFacts,
    target: Target,
    inputs: Sequence[InputSummary],
) -> list[Finding]:
    """The findings about the stack as a whole: distributions, shadowing, deployment."""
    none: list[Finding] = []
    out: list[Finding] = []
    if dists:
        out += guard.stage(
            "checking distributions",
            lambda: _distribution_findings(dists, stack, importer, facts, target),
            none,
        )
    out += guard.stage(
        "checking shadowing",
        lambda: _shadowing_findings(found, owners, stack, importer, target),
        none,
    )
    out += guard.stage(
        "checking deployment limits", lambda: _deployment_findings(stack, inputs, target), none
    )
    return out


_T = TypeVar("_T")


class _Guard:
    """A bug in one stage of the analysis must not lose the report: it becomes a problem."""

    def __init__(self) -> None:
        self.problems: list[InputProblem] = []

    def stage(self, what: str, run: Callable[[], _T], fallback: _T) -> _T:
        try:
            return run()
        except Exception as exc:
            self.problems.append(_internal("abiscan", None, what, exc))
            return fallback


def _follow_problems(failures: Sequence[tuple[str, Exception]]) -> list[InputProblem]:
    """One internal error per distinct exception met following imports (one bug met by
    many modules: each of them is unknown, and the bug is reported once)."""
    by_error: dict[tuple[str, str], list[tuple[str, Exception]]] = {}
    for name, exc in failures:
        by_error.setdefault((type(exc).__name__, str(exc)), []).append((name, exc))
    out = []
    for met in by_error.values():
        name, exc = met[0]
        others = f" and {len(met) - 1} other modules" if len(met) > 1 else ""
        out.append(_internal("abiscan", None, f"following the imports of '{name}'{others}", exc))
    return out


def _internal(source: str, path: str | None, doing: str, exc: BaseException) -> InputProblem:
    """An unexpected exception, as an input problem that keeps its traceback."""
    import traceback  # start-up: a scan without an internal error never loads it

    return InputProblem(
        source=source,
        path=path,
        problem=f"internal error while {doing}: {type(exc).__name__}: {exc} (please report it)",
        internal=True,
        detail="".join(traceback.format_exception(exc)),
    )


def _dist_problems(dists: Sequence[Distribution]) -> list[InputProblem]:
    """What could not be read in each dist-info, against the input it came from."""
    return [
        InputProblem(source=d.source or d.dist_info, path=d.dist_info, problem=problem)
        for d in dists
        for problem in d.problems
    ]


def _distributions(stack: Stack) -> list[Distribution]:
    """The stack's dist-info directories; their readers (packaging's) load only if any."""
    if not any(".dist-info/" in path for path in stack.files):
        return []
    from abiscan.inputs.dists import find_distributions

    return list(find_distributions(stack))


def _distribution_findings(
    dists: Sequence[Distribution],
    stack: Stack,
    importer: ImportSystem,
    facts: FileFacts,
    target: Target,
) -> list[Finding]:
    from abiscan.rules import distributions
    from abiscan.simulate.imports.wheel_tags import supported_tags

    visible = distributions.visible(dists, target)
    supported = frozenset(supported_tags(target))
    runtime = runtime_packages(target)

    def elf_of(path: str) -> ElfFacts | None:
        got = facts.elf(path)
        return got if isinstance(got, ElfFacts) else None

    out: list[Finding] = []
    for dist in visible:
        for found in (
            distributions.unsupported_tags(dist, supported, target, elf_of),
            distributions.requires_python(dist, target),
        ):
            if found is not None:
                out.append(found)
    out.extend(distributions.requirements(visible, runtime, importer, target))
    out.extend(distributions.duplicates(visible, importer))
    out.extend(distributions.mixed_trees(visible, stack))
    return out


def _owners(dists: Sequence[Distribution]) -> dict[str, Distribution]:
    """Which distribution's RECORD lists each file of the stack."""
    owner: dict[str, Distribution] = {}
    # A path two copies' RECORDs list holds the bytes of the copy unpacked last.
    for d in sorted(dists, key=lambda d: -d.source_index):
        for path in d.files():
            owner.setdefault(path, d)
    return owner


def _attribute(finding: Finding, owners: dict[str, Distribution]) -> Finding:
    """Name the distribution a finding's file belongs to, in the finding and its fix."""
    dist = owners.get(finding.path or "")
    if dist is None or finding.distribution:
        return finding
    return replace(
        finding,
        distribution=dist.label,
        fix=finding.fix.replace("<distribution>", f"'{dist.name}=={dist.version}'"),
    )


def _shadowing_findings(
    found: Sequence[ModuleCandidate],
    owner: dict[str, Distribution],
    stack: Stack,
    importer: ImportSystem,
    target: Target,
) -> list[Finding]:
    """ABI107: top-level modules provided more than once, by the stack or the runtime."""

    def label(path: str | None) -> str | None:
        d = owner.get(path or "")
        return d.label if d else None

    out = []
    top_level = sorted({c.name for c in found if c.visible and "." not in c.name})
    for name in top_level:
        specs = importer.providers(name)
        if len(specs) > 1:
            winner = specs[0]
            from abiscan.rules import imports  # start-up: loaded for a finding only

            for loser in specs[1:]:
                sf = stack.file(loser.origin or "")
                out.append(
                    imports.shadowed(
                        name,
                        winner,
                        loser,
                        label(winner.origin),
                        label(loser.origin),
                        sf.origin if sf else None,
                    )
                )
    order = {p: i for i, p in enumerate(target.sys_path)}
    for pkg in runtime_packages(target):
        for name in pkg.top_level:
            spec = importer.find(name).spec
            if spec is None or spec.origin is None:
                continue
            if order.get(spec.entry, len(order)) >= order.get(pkg.location, len(order)):
                continue
            sf = stack.file(spec.origin)
            runtime_label = f"{pkg.name} {pkg.version}" if pkg.version else pkg.name
            from abiscan.rules import imports  # start-up: loaded for a finding only

            out.append(
                imports.shadows_runtime(
                    name,
                    spec,
                    label(spec.origin),
                    runtime_label,
                    pkg.location,
                    sf.origin if sf else None,
                )
            )
    return out


def _deployment_findings(
    stack: Stack, inputs: Sequence[InputSummary], target: Target
) -> list[Finding]:
    out = layers.layer_limits(inputs, target)
    for source in stack.sources:
        for found in (
            layers.permissions(source, stack.root_for(source.kind)),
            layers.unsafe_entries(source),
        ):
            if found is not None:
                out.append(found)
    return out


def _dedupe(findings: Iterable[Finding]) -> list[Finding]:
    """Drop repeats of the very same finding (several paths can reach one rule);
    findings that differ in anything, even only in their message, all stay."""
    return list(dict.fromkeys(findings))


def _origin_of(stack: Stack, path: str | None) -> tuple[str | None, str | None]:
    if path is None:
        return None, None
    sf = stack.entry_at(path) or stack.file(path)
    if sf is None:
        return None, None
    return sf.origin.source, sf.origin.source_path


def _predict(
    cand: ModuleCandidate,
    res: Resolution,
    stack: Stack,
    facts: FileFacts,
    target: Target,
    dead: Sequence[DeadRoot],
) -> tuple[ModuleOutcome, list[Finding]]:
    """One module's own outcome: the file the import system picks, and what loading it does."""
    passed, findings = _passed_over(cand, res, stack, target)
    if res.spec is None:
        return _not_found(cand, res, stack, dead, passed), findings
    spec = res.spec
    src, src_path = _origin_of(stack, spec.origin)
    if spec.kind == "namespace":
        src, src_path = _origin_of(stack, spec.search_locations[0])
        namespace = ModuleOutcome(
            name=cand.name,
            outcome="ok",
            path=None,
            source=src,
            source_path=src_path,
            kind="namespace",
            error=None,
            reason=f"namespace package over {', '.join(spec.search_locations)}",
            candidates=tuple(passed),
        )
        return namespace, findings
    assert spec.origin is not None
    loaded = stack.file(spec.origin)
    outcome, error, reason, new = _load(
        cand.name, spec.origin, spec.loader_kind, loaded, facts, target
    )
    replaced = tuple(p.describe() for p in loaded.replaced) if loaded else ()
    return (
        ModuleOutcome(
            name=cand.name,
            outcome=outcome,
            path=spec.origin,
            source=src,
            source_path=src_path,
            kind=spec.kind,
            error=error,
            reason=reason,
            candidates=tuple(passed),
            replaced=replaced,
        ),
        [*findings, *new],
    )


def _passed_over(
    cand: ModuleCandidate, res: Resolution, stack: Stack, target: Target
) -> tuple[list[Candidate], list[Finding]]:
    """The files the import system passed over for ``cand``, and ABI1xx for those it
    never tried."""
    findings: list[Finding] = []
    passed: list[Candidate] = []
    for p in res.passed_over:
        sf = stack.entry_at(p.path)
        origin = sf.origin if sf else None
        why = "shadowed by the file that loads"
        if p.reason == "suffix-not-tried" and p.tag is not None:
            mm = mismatch(p.tag, target)
            if mm is None:
                continue
            why = f"never tried: {mm.reason}"
            if res.spec is None or res.spec.loader_kind != "extension":
                from abiscan.rules import imports  # start-up: loaded for a finding only

                findings.append(
                    imports.not_tried(cand.name, p, mm, origin, res.spec, res.error, target)
                )
        passed.append(
            Candidate(
                path=p.path,
                source=origin.source if origin else None,
                source_path=origin.source_path if origin else None,
                why=why,
            )
        )
    return passed, findings


def _not_found(
    cand: ModuleCandidate,
    res: Resolution,
    stack: Stack,
    dead: Sequence[DeadRoot],
    passed: list[Candidate],
) -> ModuleOutcome:
    if not cand.visible:
        root = next((d for d in dead if d.path == cand.root), None)
        src, src_path = _origin_of(stack, cand.path)
        passed.append(
            Candidate(
                path=cand.path,
                source=src,
                source_path=src_path,
                why=f"not on sys.path: {root.why}" if root else "not on sys.path",
            )
        )
    first = passed[0] if passed else None
    assert res.error is not None
    return ModuleOutcome(
        name=cand.name,
        outcome="error",
        path=None,
        source=first.source if first else None,
        source_path=first.source_path if first else None,
        kind=None,
        error=res.error,
        reason=_not_found_reason(res, passed),
        candidates=tuple(passed),
    )


def _load(
    name: str,
    origin: str,
    loader: str,
    loaded: StackFile | None,
    facts: FileFacts,
    target: Target,
) -> tuple[Outcome, PredictedError | None, str, list[Finding]]:
    """What loading the found file does: (outcome, error, reason, findings)."""
    prov = loaded.origin if loaded else None
    mode = loaded.entry.mode if loaded else None
    if mode is not None and not mode & 0o004:
        # The runtime runs as an unprivileged user: "other" in the zip's modes.
        if loader == "extension":
            error = PredictedError(
                type="ImportError",
                message=f"{origin}: cannot open shared object file: Permission denied",
            )
        else:
            error = PredictedError(
                type="PermissionError", message=f"[Errno 13] Permission denied: '{origin}'"
            )
        return "error", error, f"file mode {mode:04o} lacks o+r (see ABI403)", []
    if loader == "extension":
        return load_extension(name, origin, facts, target, prov)
    if loader == "bytecode":
        return load_bytecode(name, origin, facts, target, prov)
    if loader == "source":
        unreadable = facts.check_readable(origin)
        if unreadable is not None:
            # Its imports cannot be followed, nor its syntax checked: never "ok".
            return "unknown", None, f"cannot read the file: {unreadable}", []
    return "ok", None, f"{loader} module {origin}", []


def _not_found_reason(res: Resolution, passed: Sequence[Candidate]) -> str:
    if res.failed_parent:
        return f"its parent '{res.failed_parent}' cannot be imported"
    if passed:
        return "; ".join(f"{c.path}: {c.why}" for c in passed[:3])
    return "no file for it on the target's sys.path"


def _dead_root_findings(
    dead: Sequence[DeadRoot],
    found: Sequence[ModuleCandidate],
    modules: Sequence[ModuleOutcome],
    stack: Stack,
    target: Target,
) -> list[Finding]:
    by_name = {m.name: m for m in modules}
    out = []
    for root in dead:
        names = sorted(c.name for c in found if c.root == root.path and "." not in c.name)
        if not names:
            continue
        hidden = [n for n in names if by_name[n].outcome == "error" and by_name[n].path is None]
        sources = sorted(
            {
                sf.origin.source
                for sf in stack.walk_files()
                if sf.target_path.startswith(root.path + "/")
            }
        )
        from abiscan.rules import imports  # start-up: loaded for a finding only

        out.append(imports.outside_sys_path(root.path, root.why, names, hidden, sources, target))
    return out
