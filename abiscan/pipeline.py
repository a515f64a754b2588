"""The pipeline: inputs -> stack -> facts -> simulation -> findings -> report.

Everything after the sources are opened is a pure function of the stack's
bytes and the target: same inputs, same target, same report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import __version__
from .capi import unavailable_reason as capi_unavailable_reason
from .dists import Distribution, find_distributions
from .elf import ElfError, ElfFacts, read_facts, sniff_format
from .findings import Finding, PredictedError
from .impact import apply_impact
from .importer import ImportSystem, Resolution
from .inventory import DeadRoot, ModuleCandidate, candidates, dead_roots
from .ldso import simulate_dlopen
from .loader import verify_identity
from .pyc import magic_bytes, version_of_magic
from .report import Candidate, InputSummary, ModuleOutcome, Report
from .rules import binaries, distributions, imports, layers, linker, symbols
from .runtime_packages import runtime_packages
from .sources import InputKind, InputProblem, Source, SourceError, open_source
from .stack import Provenance, Stack, build_stack
from .tags import ExtensionTag, mismatch, parse_extension_filename
from .targets import Target, builtin_target
from .wheeltags import supported_tags

PathLike = str | Path


@dataclass
class _Facts:
    """Facts read from the stack's bytes, each file at most once."""

    stack: Stack
    problems: list[InputProblem] = field(default_factory=list)
    _elf: dict[str, ElfFacts | ElfError | SourceError] = field(default_factory=dict)

    def read(self, path: str) -> bytes | SourceError:
        try:
            return self.stack.read(path)
        except SourceError as exc:
            return exc

    def elf(self, path: str) -> ElfFacts | ElfError | SourceError:
        cached = self._elf.get(path)
        if cached is None:
            data = self.read(path)
            if isinstance(data, SourceError):
                cached = data
            else:
                try:
                    cached = read_facts(data)
                except ElfError as exc:
                    cached = exc
            self._elf[path] = cached
        return cached

    def is_extension(self, path: str) -> bool:
        """Whether an untagged ``.so`` is meant as an extension module.

        An ELF object exporting no ``PyInit_`` function is a shared library that
        happens to sit on the path (``libfoo.so`` next to a package); anything
        that is not ELF, or exports one, is treated as a module.
        """
        data = self.read(path)
        if isinstance(data, SourceError):
            return True
        if sniff_format(data) != "elf":
            return True
        facts = self.elf(path)
        if isinstance(facts, (ElfError, SourceError)):
            return True
        try:
            return bool(facts.pyinit_names)
        except ElfError:
            return True


def scan(
    layers: Sequence[PathLike] = (),
    function: PathLike | None = None,
    site_packages: Sequence[PathLike] = (),
    *,
    target: Target | None = None,
    runtime: str = "python3.12",
    arch: str = "x86_64",
    imports: Sequence[str] = (),
) -> Report:
    """Predict, for every module the inputs provide, what ``import`` does on the target.

    ``layers`` are layer zips or extracted layer directories, in the order they
    are attached (a ``.whl`` among them is installed into site-packages);
    ``function`` is the deployment zip or directory; ``site_packages`` are
    wheels or directories installed into the target's site-packages. Without
    ``target``, the built-in profile of ``runtime`` on ``arch`` is used.
    ``imports`` adds dotted module names to predict besides the ones the stack
    suggests (top-level modules and packages, and every extension module).
    """
    if target is None:
        target = builtin_target(runtime, arch)
    specs: list[tuple[PathLike, InputKind]] = [(p, InputKind.LAYER) for p in layers]
    specs += [(p, InputKind.SITE_PACKAGES) for p in site_packages]
    if function is not None:
        specs.append((function, InputKind.FUNCTION))
    sources: list[Source] = []
    # In the order given; an unreadable input keeps its place in the list.
    opened: list[Source | InputSummary] = []
    problems: list[InputProblem] = []
    for path, kind in specs:
        label = str(path)
        try:
            source = open_source(path, kind, label)
        except SourceError as exc:
            problems.append(InputProblem(label, None, str(exc).removeprefix(f"{label}: ")))
            opened.append(InputSummary(label, kind.value, "", 0, 0, readable=False))
            continue
        sources.append(source)
        opened.append(source)
    try:
        stack = build_stack(target, sources)
        summaries = [
            item if isinstance(item, InputSummary) else _summary(item, stack) for item in opened
        ]
        return analyse(stack, target, summaries, problems + stack.problems, imports)
    finally:
        for source in sources:
            source.close()


def _summary(source: Source, stack: Stack) -> InputSummary:
    files = [e for e in source.entries() if e.kind != "dir"]
    return InputSummary(
        source.label,
        source.kind.value,
        stack.root_for(source.kind),
        len(files),
        sum(e.size for e in files),
        readable=True,
    )


def analyse(
    stack: Stack,
    target: Target,
    inputs: Sequence[InputSummary] = (),
    problems: Sequence[InputProblem] = (),
    imports: Sequence[str] = (),
) -> Report:
    """The pure part: from a stack and a target to a report."""
    facts = _Facts(stack)
    importer = ImportSystem(stack, target)
    dead = dead_roots(stack, target)
    found = candidates(stack, target, dead, facts.is_extension)
    known = {c.name for c in found}
    for name in imports:
        if name not in known:
            known.add(name)
            found.append(ModuleCandidate(name, "", "", visible=True))
    by_name = {c.name: c for c in found}
    memo: dict[str, ModuleOutcome] = {}
    findings: list[Finding] = []

    def predict(name: str) -> ModuleOutcome:
        done = memo.get(name)
        if done is not None:
            return done
        cand = by_name.get(name) or ModuleCandidate(name, "", "", visible=True)
        outcome, new = _predict(cand, importer.find(name), stack, facts, target, dead)
        findings.extend(new)
        parent = name.rpartition(".")[0]
        if parent and outcome.outcome != "error":
            # "import a.b" imports "a" first: a parent that fails fails the child.
            up = predict(parent)
            if up.outcome != "ok" and up.path is not None:
                outcome = _inherit(outcome, up)
        memo[name] = outcome
        return outcome

    modules = [predict(c.name) for c in sorted(found, key=lambda c: c.name)]
    findings.extend(_dead_root_findings(dead, found, modules, stack, target))
    dists = find_distributions(stack)
    owners = _owners(dists)
    # Follow each module's imports (Python and native) to the broken modules it reaches.
    modules, reached = apply_impact(modules, predict, stack, importer, facts, owners, target)
    findings.extend(reached)
    findings = [_attribute(f, owners) for f in findings]
    findings.extend(_distribution_findings(dists, stack, importer, facts, target))
    findings.extend(_shadowing_findings(found, owners, stack, importer, target))
    findings.extend(_deployment_findings(stack, inputs, target))
    findings = _dedupe(findings)
    all_problems = sorted(
        {(p.source, p.path or "", p.problem): p for p in [*problems, *facts.problems]}.values(),
        key=lambda p: (p.source, p.path or "", p.problem),
    )
    return Report(
        target=target,
        modules=tuple(modules),
        findings=tuple(sorted(findings, key=Finding.sort_key)),
        inputs=tuple(inputs),
        problems=tuple(all_problems),
        tool_version=__version__,
    )


def _distribution_findings(
    dists: Sequence[Distribution],
    stack: Stack,
    importer: ImportSystem,
    facts: _Facts,
    target: Target,
) -> list[Finding]:
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
            for loser in specs[1:]:
                sf = stack.file(loser.origin or "")
                out.append(imports.shadowed(
                    name, winner, loser, label(winner.origin), label(loser.origin),
                    sf.origin if sf else None,
                ))
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
            out.append(imports.shadows_runtime(
                name, spec, label(spec.origin), runtime_label, pkg.location,
                sf.origin if sf else None,
            ))
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


def _inherit(child: ModuleOutcome, parent: ModuleOutcome) -> ModuleOutcome:
    """The child's outcome when importing its parent package fails or cannot be predicted."""
    why = f"its parent package '{parent.name}' " + (
        f"fails to import: {parent.error}" if parent.error else f"is unknown: {parent.reason}"
    )
    return replace(child, outcome=parent.outcome, error=parent.error, reason=why)


def _dedupe(findings: Iterable[Finding]) -> list[Finding]:
    seen: dict[tuple[str, str | None, str | None], Finding] = {}
    for f in findings:
        seen.setdefault((f.code, f.path, f.module), f)
    return list(seen.values())


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
    facts: _Facts,
    target: Target,
    dead: Sequence[DeadRoot],
) -> tuple[ModuleOutcome, list[Finding]]:
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
                findings.append(
                    imports.not_tried(cand.name, p, mm, origin, res.spec, res.error, target)
                )
        passed.append(
            Candidate(p.path, origin.source if origin else None,
                      origin.source_path if origin else None, why)
        )
    if res.spec is None:
        if not cand.visible:
            root = next((d for d in dead if d.path == cand.root), None)
            src, src_path = _origin_of(stack, cand.path)
            passed.append(
                Candidate(cand.path, src, src_path,
                          f"not on sys.path: {root.why}" if root else "not on sys.path")
            )
        first = passed[0] if passed else None
        assert res.error is not None
        return (
            ModuleOutcome(
                cand.name, "error", None,
                first.source if first else None,
                first.source_path if first else None,
                None, res.error,
                _not_found_reason(res, passed),
                tuple(passed),
            ),
            findings,
        )
    spec = res.spec
    src, src_path = _origin_of(stack, spec.origin)
    if spec.kind == "namespace":
        src, src_path = _origin_of(stack, spec.search_locations[0])
        return (
            ModuleOutcome(cand.name, "ok", None, src, src_path, "namespace", None,
                          f"namespace package over {', '.join(spec.search_locations)}",
                          tuple(passed)),
            findings,
        )
    assert spec.origin is not None
    kind = spec.kind
    loader = spec.loader_kind
    outcome, error, reason = "ok", None, f"{loader} module {spec.origin}"
    loaded = stack.file(spec.origin)
    prov = loaded.origin if loaded else None
    mode = loaded.entry.mode if loaded else None
    if mode is not None and not mode & 0o004:
        # The runtime runs as an unprivileged user: "other" in the zip's modes.
        if loader == "extension":
            error = PredictedError(
                "ImportError", f"{spec.origin}: cannot open shared object file: Permission denied"
            )
        else:
            error = PredictedError(
                "PermissionError", f"[Errno 13] Permission denied: '{spec.origin}'"
            )
        outcome, reason = "error", f"file mode {mode:04o} lacks o+r (see ABI403)"
    elif loader == "extension":
        outcome, error, reason, new = _load_extension(
            cand.name, spec.origin, facts, target, prov
        )
        findings.extend(new)
    elif loader == "bytecode":
        outcome, error, reason, new = _load_bytecode(cand.name, spec.origin, facts, target, prov)
        findings.extend(new)
    replaced = tuple(p.describe() for p in loaded.replaced) if loaded else ()
    return (
        ModuleOutcome(cand.name, outcome, spec.origin, src, src_path, kind, error, reason,
                      tuple(passed), replaced),
        findings,
    )


def _not_found_reason(res: Resolution, passed: Sequence[Candidate]) -> str:
    if res.failed_parent:
        return f"its parent '{res.failed_parent}' cannot be imported"
    if passed:
        return "; ".join(f"{c.path}: {c.why}" for c in passed[:3])
    return "no file for it on the target's sys.path"


def _load_extension(
    module: str,
    path: str,
    facts: _Facts,
    target: Target,
    origin: Provenance | None,
) -> tuple[str, PredictedError | None, str, list[Finding]]:
    data = facts.read(path)
    if isinstance(data, SourceError):
        return "unknown", None, f"cannot read the file: {data}", []
    verdict = verify_identity(
        data, path, arch=target.arch, glibc=target.libc_version, flavor=target.ld_so_flavor
    )
    if not verdict.ok:
        if verdict.message is None:
            return "unknown", None, verdict.detail, []
        finding, error = binaries.refused_by_loader(
            module, path, verdict.reason, verdict.message, verdict.detail,
            sniff_format(data), origin, target,
        )
        return "error", error, verdict.detail, [finding]
    elf = facts.elf(path)
    if isinstance(elf, (ElfError, SourceError)):
        facts.problems.append(
            InputProblem(origin.source if origin else "stack",
                         origin.source_path if origin else path,
                         f"ELF file cannot be read: {elf}")
        )
        return (
            "unknown", None,
            f"the ELF header is acceptable but the rest cannot be read ({elf}); "
            "abiscan cannot predict what the loader does with it", [],
        )
    tag = parse_extension_filename(path.rsplit("/", 1)[-1])
    # dlopen() maps and binds the whole dependency tree before CPython looks
    # for PyInit_: a missing library or symbol is reported first.
    link = _link_extension(module, path, data, elf, facts, target, origin, tag)
    if link.outcome != "ok":
        return link.outcome, link.error, link.reason, link.findings
    short = module.rpartition(".")[2]
    if not elf.has_export(f"PyInit_{short}"):
        try:
            others: tuple[str, ...] = elf.pyinit_names
        except ElfError:
            others = ()  # a damaged name elsewhere in the table: the verdict stands
        finding, error = imports.missing_init(module, path, others, origin)
        return "error", error, finding.message, [*link.findings, finding]
    what = tag.describe() if tag else "extension"
    return (
        "ok", None,
        f"extension module for {what}: ELF identity, dependencies, symbol versions, "
        f"symbols and PyInit_{short} check out{link.reason}", link.findings,
    )


@dataclass(frozen=True)
class _Linked:
    outcome: str
    error: PredictedError | None
    reason: str
    findings: list[Finding]


class _StackLibraries:
    """The stack as the loader simulation reads it: files under /opt and /var/task."""

    def __init__(self, facts: _Facts, target: Target) -> None:
        self._facts = facts
        self._roots = tuple(
            r.rstrip("/") for r in (target.layer_root, target.function_root) if r
        )

    def owns(self, path: str) -> bool:
        return any(path == r or path.startswith(r + "/") for r in self._roots)

    def resolve(self, path: str) -> str | None:
        sf = self._facts.stack.file(path)
        return sf.target_path if sf is not None and sf.kind == "file" else None

    def read(self, path: str) -> bytes | None:
        data = self._facts.read(path)
        return None if isinstance(data, SourceError) else data

    def elf(self, path: str) -> ElfFacts | None:
        got = self._facts.elf(path)
        return got if isinstance(got, ElfFacts) else None


def _built_for_hint(
    path: str, facts: _Facts, target: Target
) -> tuple[tuple[int, int], str] | None:
    """The CPython an untagged module's tagged neighbours were built for, if not the target's."""
    directory, _, _ = path.rpartition("/")
    versions = set()
    for name in facts.stack.listdir(directory):
        sibling = parse_extension_filename(name)
        if sibling is not None and sibling.kind == "cpython" and sibling.python_version:
            versions.add(sibling.python_version)
    if len(versions) != 1:
        return None
    (version,) = versions
    if version == target.python_version:
        return None
    return version, (
        f"the extension modules next to it in {directory} are tagged "
        f"cpython-{version[0]}{version[1]}"
    )


def _link_extension(
    module: str,
    path: str,
    data: bytes,
    elf: ElfFacts,
    facts: _Facts,
    target: Target,
    origin: Provenance | None,
    tag: ExtensionTag | None,
) -> _Linked:
    """Dependencies, symbol versions and undefined symbols, as the target's dlopen checks them."""
    capi = target.capi_exports()
    if capi is None:
        why = (
            f"abiscan has no C-API data for a CPython {target.python}{target.abiflags} build"
            if target.abiflags
            else capi_unavailable_reason(target.python_version)
        )
    else:
        why = ""
    try:
        result = simulate_dlopen(
            path, data, elf, target, _StackLibraries(facts, target), target.inventory(), capi,
            capi_missing_reason=why,
        )
    except ElfError as exc:
        return _Linked(
            "unknown", None,
            f"the dynamic section or symbols cannot be read ({exc}); abiscan cannot predict "
            "how the loader binds it", [],
        )
    problem = result.problem
    if problem is None:
        note = ""
        if result.confidence != "certain":
            note = f" ({result.confidence}: {'; '.join(result.notes[:2])})"
        found: list[Finding] = []
        hint = _built_for_hint(path, facts, target) if tag and tag.kind == "untagged" else None
        if hint is not None:
            found.append(symbols.built_for_other_python(module, path, *hint, origin, target))
        return _Linked("ok", None, note, found)
    if problem.message is None or result.outcome == "unknown":
        reason = problem.detail or problem.kind
        if problem.message is not None:
            reason = f"possibly {problem.message}: {reason}"
        return _Linked("unknown", None, reason, [])
    if problem.kind == "undefined-symbol":
        finding, error = symbols.undefined_symbol(module, path, problem, tag, origin, target)
    else:
        finding, error = linker.dependency_refused(
            module, path, problem, result.objects, origin, target
        )
    return _Linked("error", error, finding.message, [finding])


def _load_bytecode(
    module: str, path: str, facts: _Facts, target: Target, origin: Provenance | None
) -> tuple[str, PredictedError | None, str, list[Finding]]:
    data = facts.read(path)
    if isinstance(data, SourceError):
        return "unknown", None, f"cannot read the file: {data}", []
    want = magic_bytes(target.python_version)
    if want is None:
        return (
            "unknown", None,
            f"abiscan does not know the bytecode magic number of CPython {target.python}", [],
        )
    magic = data[:4]
    if magic == want:
        return "ok", None, f"bytecode for CPython {target.python}", []
    written = version_of_magic(magic)
    by = f"CPython {written[0]}.{written[1]}" if written else "an unknown Python"
    finding, error = imports.bad_magic(module, path, magic, by, origin, target)
    return "error", error, finding.message, [finding]


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
            {sf.origin.source for sf in stack.walk_files()
             if sf.target_path.startswith(root.path + "/")}
        )
        out.append(imports.outside_sys_path(root.path, root.why, names, hidden, sources, target))
    return out

