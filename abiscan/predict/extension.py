"""What loading one found file does on the target.

The import system (``importer``) says which file ``import x`` picks; this
module predicts what happens when CPython loads it: an extension module goes
through the dynamic linker's checks in ``dlopen``'s order (identity,
dependencies, symbol versions, symbols) and then the ``PyInit_`` lookup; a
sourceless ``.pyc`` through its magic number.
"""

from __future__ import annotations

import re
import weakref

from abiscan.elf.reader import ElfError, ElfFacts, sniff_format
from abiscan.inputs.member_facts import FileFacts, LoaderBytes
from abiscan.inputs.sources import InputProblem, SourceError
from abiscan.inputs.stack import Provenance, Stack
from abiscan.records import record
from abiscan.report.findings import Finding, PredictedError
from abiscan.report.model import Outcome
from abiscan.simulate.imports.extension_tags import ExtensionTag, parse_extension_filename
from abiscan.simulate.linker.dlopen import BindMemo, simulate_dlopen
from abiscan.simulate.linker.identity import verify_identity
from abiscan.target.capi import exporting_versions, is_capi_name
from abiscan.target.capi import known_versions as capi_versions
from abiscan.target.capi import unavailable_reason as capi_unavailable_reason
from abiscan.target.profiles import Target

__all__ = [
    "load_bytecode",
    "load_extension",
]


def load_extension(
    module: str,
    path: str,
    facts: FileFacts,
    target: Target,
    origin: Provenance | None,
) -> tuple[Outcome, PredictedError | None, str, list[Finding]]:
    view = facts.loader_bytes(path)
    if isinstance(view, SourceError):
        return "unknown", None, f"cannot read the file: {view}", []
    verdict = verify_identity(
        view.head,
        path,
        arch=target.arch,
        glibc=target.libc_version,
        flavor=target.ld_so_flavor,
        size=view.size,
        blocks=view.blocks,
    )
    if not verdict.ok:
        if verdict.message is None:
            return "unknown", None, verdict.detail, []
        from abiscan.rules import binaries  # start-up: loaded for a finding only

        finding, error = binaries.refused_by_loader(
            module,
            path,
            verdict.reason,
            verdict.message,
            verdict.detail,
            sniff_format(view.head),
            origin,
            target,
        )
        return "error", error, verdict.detail, [finding]
    elf = facts.elf(path)
    if isinstance(elf, (ElfError, SourceError)):
        facts.problems.append(
            InputProblem(
                source=origin.source if origin else "stack",
                path=origin.source_path if origin else path,
                problem=f"ELF file cannot be read: {elf}",
            )
        )
        return (
            "unknown",
            None,
            f"the ELF header is acceptable but the rest cannot be read ({elf}); "
            "abiscan cannot predict what the loader does with it",
            [],
        )
    tag = parse_extension_filename(path.rsplit("/", 1)[-1])
    # dlopen() maps and binds the whole dependency tree before CPython looks
    # for PyInit_: a missing library or symbol is reported first.
    link = _link_extension(module, path, elf, facts, target, origin, tag)
    if link.outcome != "ok":
        return link.outcome, link.error, link.reason, link.findings
    short = module.rpartition(".")[2]
    if not elf.has_export(f"PyInit_{short}"):
        try:
            others: tuple[str, ...] = elf.pyinit_names
        except ElfError:
            others = ()  # a damaged name elsewhere in the table: the verdict stands
        from abiscan.rules import imports  # start-up: loaded for a finding only

        finding, error = imports.missing_init(module, path, others, origin)
        return "error", error, finding.message, [*link.findings, finding]
    if tag is not None and tag.kind == "untagged":
        # Rare (untagged modules only): the whole file is read again here.
        data = facts.read(path)
        other = (
            None
            if isinstance(data, SourceError)
            else _untagged_from_other_python(module, path, data, elf, facts, target, origin)
        )
        if other is not None:
            finding, refusal, fails = other
            if refusal is not None:
                return "error", refusal, finding.message, [*link.findings, finding]
            if fails:
                return "unknown", None, finding.message, [*link.findings, finding]
            link = _Linked(
                outcome=link.outcome,
                error=None,
                reason=link.reason,
                findings=[*link.findings, finding],
            )
    what = tag.describe() if tag else "extension"
    return (
        "ok",
        None,
        f"extension module for {what}: ELF identity, dependencies, symbol versions, "
        f"symbols and PyInit_{short} check out{link.reason}",
        link.findings,
    )


# One scan's binding memo, by its stack (a scan links every extension against the
# same libraries; the memo goes with the stack).
_BIND_MEMOS: weakref.WeakKeyDictionary[Stack, BindMemo] = weakref.WeakKeyDictionary()


@record
class _Linked:
    """What the loader simulation says of one extension module: its outcome and findings."""

    outcome: Outcome
    error: PredictedError | None
    reason: str
    findings: list[Finding]


class _StackLibraries:
    """The stack as the loader simulation reads it: files under /opt and /var/task."""

    def __init__(self, facts: FileFacts, target: Target) -> None:
        self._facts = facts
        self._roots = tuple(r.rstrip("/") for r in (target.layer_root, target.function_root) if r)

    def owns(self, path: str) -> bool:
        return any(path == r or path.startswith(r + "/") for r in self._roots)

    def resolve(self, path: str) -> str | None:
        sf = self._facts.stack.file(path)
        return sf.target_path if sf is not None and sf.kind == "file" else None

    def loader_bytes(self, path: str) -> LoaderBytes | None:
        view = self._facts.loader_bytes(path)
        return None if isinstance(view, SourceError) else view

    def elf(self, path: str) -> ElfFacts | None:
        got = self._facts.elf(path)
        return got if isinstance(got, ElfFacts) else None


def _built_for_hint(
    path: str, facts: FileFacts, target: Target
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


# What cffi's _cffi_backend checks first in its init: the first three characters
# of Py_GetVersion() against those of the PY_VERSION it was compiled with.
_CFFI_CHECK = b"this module was compiled for Python %c%c%c"
# Cython 0.29 built for CPython 3.11+ creates its code objects with
# code.replace(co_linetable=...), a keyword CPython 3.10 introduced: on 3.9 its
# init goes wrong after Cython's version warning, with a TypeError from
# code.replace() or a segfault, depending on the process (PyYAML 6.0.1's _yaml).
_CYTHON_311_CODE = (b"\x00co_cellvars\x00", b"\x00co_linetable\x00", b"\x00replace\x00")
_INCLUDE_DIR = re.compile(rb"/include/python3\.(\d{1,2})(?![0-9])")


def _cython_311(data: bytes) -> bool:
    return all(mark in data for mark in _CYTHON_311_CODE)


@record
class _BuiltFor:
    """The CPython versions an extension's own bytes say it was built for."""

    versions: tuple[tuple[int, int], ...]  # the CPythons the evidence allows, oldest first
    evidence: tuple[str, ...]
    confidence: str  # "certain" or "likely"


def _built_for(
    path: str, data: bytes, elf: ElfFacts, facts: FileFacts, target: Target
) -> _BuiltFor | None:
    """The CPython an untagged extension was built for, from what it carries: the
    include directory its build named, its C-API symbols, Cython's code path for 3.11+,
    and the tags of the modules next to it."""
    evidence: list[str] = []
    allowed = set(capi_versions())
    includes = {int(m.group(1)) for m in _INCLUDE_DIR.finditer(data)}
    if len(includes) == 1:
        minor = includes.pop()
        allowed &= {(3, minor)}
        evidence.append(f"the file names its build's include directory python3.{minor}")
    try:
        needed = [name for name in elf.undefined if is_capi_name(name)]
    except ElfError:
        needed = []
    for name in needed:
        have = set(exporting_versions(name))
        if have and allowed & have != allowed:
            allowed &= have
            evidence.append(f"it needs {name}, which CPython {_span(sorted(have))} export")
    if _cython_311(data):
        allowed = {v for v in allowed if v >= (3, 11)}
        evidence.append("Cython's code objects for CPython 3.11+ (code.replace(co_linetable=...))")
    wheel = _wheel_built_for(path, facts, target)
    if wheel is not None:
        allowed &= {wheel[0]}
        evidence.append(wheel[1])
    hint = _built_for_hint(path, facts, target)
    if hint is not None and hint[0] in allowed and len(allowed) > 1:
        allowed = {hint[0]}
        evidence.append(hint[1])
    if not evidence or not allowed or target.python_version in allowed:
        return None
    confidence = "likely" if hint is not None and len(evidence) == 1 else "certain"
    return _BuiltFor(
        versions=tuple(sorted(allowed)), evidence=tuple(evidence), confidence=confidence
    )


_CP_TAG = re.compile(r"cp3(\d{1,2})")


def _wheel_built_for(
    path: str, facts: FileFacts, target: Target
) -> tuple[tuple[int, int], str] | None:
    """The CPython of the WHEEL tags of the distribution whose RECORD lists the file,
    when they name exactly one (``cp311-cp311-manylinux...``; never abi3)."""
    sites = [e.rstrip("/") for e in target.sys_path if path.startswith(e.rstrip("/") + "/")]
    if not sites:
        return None
    site = max(sites, key=len)
    for name in facts.stack.listdir(site):
        if not name.endswith(".dist-info"):
            continue
        # Only here: dist-info readers (packaging.metadata) load when there is one.
        from abiscan.inputs.dists import read_distribution

        dist = read_distribution(facts.stack, f"{site}/{name}")
        if path not in dist.files():
            continue
        minors = set()
        for tag in dist.wheel_tags:
            parts = tag.split("-")
            abi = _CP_TAG.fullmatch(parts[1]) if len(parts) == 3 else None
            if abi is None:
                return None  # abi3, none, or not a wheel tag
            minors.add(int(abi.group(1)))
        if len(minors) == 1:
            minor = minors.pop()
            return (3, minor), f"{dist.label}'s WHEEL is tagged cp3{minor}"
    return None


def _span(versions: list[tuple[int, int]]) -> str:
    if not versions:
        return "no"
    first, last = versions[0], versions[-1]
    return (
        f"{first[0]}.{first[1]}" if first == last else f"{first[0]}.{first[1]}-{last[0]}.{last[1]}"
    )


def _untagged_from_other_python(
    module: str,
    path: str,
    data: bytes,
    elf: ElfFacts,
    facts: FileFacts,
    target: Target,
    origin: Provenance | None,
) -> tuple[Finding, PredictedError | None, bool] | None:
    """An untagged module that links, built for another CPython: its own refusal, word
    for word, where it has one; otherwise a warning (loading it is undefined behaviour),
    and whether its init surely goes wrong, though not in a way abiscan can word."""
    built = _built_for(path, data, elf, facts, target)
    if built is None:
        return None
    mine = f"{target.python_version[0]}.{target.python_version[1]}"
    refusal: PredictedError | None = None
    short = module.rpartition(".")[2]
    if short == "_cffi_backend" and _CFFI_CHECK in data:
        prefixes = {f"{v[0]}.{v[1]}"[:3] for v in built.versions}
        if len(prefixes) == 1 and mine[:3] not in prefixes:
            refusal = PredictedError(
                type="ImportError", message=f"this module was compiled for Python {prefixes.pop()}"
            )
    fails = (
        refusal is None
        and target.python_version < (3, 10)
        and _cython_311(data)
        and b"cython_runtime" in data
    )
    evidence = built.evidence
    if fails:
        evidence = (
            *evidence,
            "on CPython before 3.10 code.replace() has no co_linetable: "
            "its init fails with a TypeError or crashes the process",
        )
    from abiscan.rules import symbols  # start-up: loaded for a finding only

    return (
        symbols.other_python_loaded(
            module, path, built.versions, evidence, built.confidence, refusal, origin, target
        ),
        refusal,
        fails,
    )


def _link_extension(
    module: str,
    path: str,
    elf: ElfFacts,
    facts: FileFacts,
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
    memo = _BIND_MEMOS.get(facts.stack)
    if memo is None:
        memo = _BIND_MEMOS[facts.stack] = BindMemo()
    try:
        result = simulate_dlopen(
            path,
            elf,
            target,
            _StackLibraries(facts, target),
            target.inventory(),
            capi,
            capi_missing_reason=why,
            memo=memo,
        )
    except ElfError as exc:
        return _Linked(
            outcome="unknown",
            error=None,
            reason=f"the dynamic section or symbols cannot be read ({exc}); abiscan cannot predict "
            "how the loader binds it",
            findings=[],
        )
    problem = result.problem
    if problem is None:
        note = ""
        if result.confidence != "certain":
            note = f" ({result.confidence}: {'; '.join(result.notes[:2])})"
        return _Linked(outcome="ok", error=None, reason=note, findings=[])
    if problem.message is None or result.outcome == "unknown":
        reason = problem.detail or problem.kind
        if problem.message is not None:
            reason = f"possibly {problem.message}: {reason}"
        return _Linked(outcome="unknown", error=None, reason=reason, findings=[])
    from abiscan.rules import linker, symbols  # start-up: loaded for a finding only

    if problem.kind == "undefined-symbol":
        finding, error = symbols.undefined_symbol(module, path, problem, tag, origin, target)
    else:
        finding, error = linker.dependency_refused(
            module, path, problem, result.objects, origin, target
        )
    return _Linked(outcome="error", error=error, reason=finding.message, findings=[finding])


def load_bytecode(
    module: str, path: str, facts: FileFacts, target: Target, origin: Provenance | None
) -> tuple[Outcome, PredictedError | None, str, list[Finding]]:
    data = facts.read(path)
    if isinstance(data, SourceError):
        return "unknown", None, f"cannot read the file: {data}", []
    from abiscan.target.bytecode import magic_bytes, version_of_magic  # only for a .pyc

    want = magic_bytes(target.python_version)
    if want is None:
        return (
            "unknown",
            None,
            f"abiscan does not know the bytecode magic number of CPython {target.python}",
            [],
        )
    magic = data[:4]
    if magic == want:
        return "ok", None, f"bytecode for CPython {target.python}", []
    written = version_of_magic(magic)
    by = f"CPython {written[0]}.{written[1]}" if written else "an unknown Python"
    from abiscan.rules import imports  # start-up: loaded for a finding only

    finding, error = imports.bad_magic(module, path, magic, by, origin, target)
    return "error", error, finding.message, [finding]
