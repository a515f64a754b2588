"""ABI3xx: what the installed distributions' metadata says about the target."""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
from collections import defaultdict
from collections.abc import Callable, Sequence

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, parse_tag
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from abiscan.elf.reader import ElfFacts
from abiscan.inputs.dists import Distribution
from abiscan.inputs.sources import SourceError
from abiscan.inputs.stack import Stack
from abiscan.records import record
from abiscan.report.findings import (
    ABI301,
    ABI302,
    ABI303,
    ABI304,
    ABI305,
    ABI306,
    Confidence,
    Finding,
    PredictedError,
    Severity,
)
from abiscan.simulate.imports.file_finder import ImportSystem
from abiscan.target.profiles import Target, marker_environment
from abiscan.target.runtime_packages import RuntimePackage

__all__ = [
    "ElfOf",
    "Provider",
    "duplicates",
    "marker_environment",
    "mixed_trees",
    "requirements",
    "requires_python",
    "unsupported_tags",
    "visible",
]

_GLIBC_NEED = re.compile(r"^GLIBC_(\d+)\.(\d+)(?:\.\d+)?$")
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_")
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}

ElfOf = Callable[[str], ElfFacts | None]


@record
class Provider:
    """Who answers a requirement on the target: a distribution in the stack, or the runtime."""

    name: str
    version: str | None
    where: str
    # The runtime's versions change in place (and by region): never more than "possible".
    from_runtime: bool = False


def visible(dists: Sequence[Distribution], target: Target) -> list[Distribution]:
    order = {p: i for i, p in enumerate(target.sys_path)}
    return sorted((d for d in dists if d.site in order), key=lambda d: (order[d.site], d.dist_info))


def _loading_copy(copies: Sequence[Distribution], importer: ImportSystem) -> Distribution | None:
    """The copy whose top-level modules the import system finds first.

    Copies unpacked into the same directory share one tree; the one unpacked
    last wrote last, so it stands for the tree.
    """
    copies = sorted(copies, key=lambda d: -d.source_index)
    for d in copies:
        for top in d.top_level:
            spec = importer.find(top).spec
            if spec is None:
                continue
            # The sys.path entry it was found in, not a path prefix: /opt/python holds
            # /opt/python/lib/python3.X/site-packages, which is an entry of its own.
            if spec.entry == d.site:
                return d
    return copies[0] if copies else None


def _glibc_of_tag(tag: Tag) -> tuple[int, int] | None:
    m = _MANYLINUX.match(tag.platform)
    if m:
        return int(m.group(1)), int(m.group(2))
    for legacy, version in _LEGACY.items():
        if tag.platform.startswith(legacy + "_"):
            return version
    return None


def _glibc_needed(dist: Distribution, elf_of: ElfOf) -> tuple[tuple[int, int] | None, int]:
    """The newest GLIBC_x.y any ELF file of the distribution needs, and how many were read."""
    newest: tuple[int, int] | None = None
    read = 0
    for path in dist.files():
        if ".so" not in posixpath.basename(path):
            continue
        facts = elf_of(path)
        if facts is None:
            continue
        read += 1
        for _lib, versions in facts.version_needs:
            for v in versions:
                m = _GLIBC_NEED.match(v)
                if m:
                    got = (int(m.group(1)), int(m.group(2)))
                    newest = got if newest is None or got > newest else newest
    return newest, read


def unsupported_tags(
    dist: Distribution, supported: frozenset[Tag], target: Target, elf_of: ElfOf
) -> Finding | None:
    """ABI301: no WHEEL tag of the distribution is one the target supports."""
    if not dist.wheel_tags:
        return None
    tags: set[Tag] = set()
    for text in dist.wheel_tags:
        try:
            tags |= parse_tag(text)
        except ValueError:
            continue
    if not tags or tags & supported:
        return None
    shown = ", ".join(dist.wheel_tags[:3])
    message = (
        f"{dist.label} is tagged {shown}; none of its tags is supported by CPython "
        f"{target.python} on {target.arch} with glibc {target.libc_version}"
    )
    severity = ABI301.severity
    confidence = Confidence.CERTAIN
    wanted = [g for g in (_glibc_of_tag(t) for t in tags) if g is not None]
    have = tuple(int(x) for x in target.libc_version.split("."))
    if wanted and all(g > have for g in wanted):
        need, read = _glibc_needed(dist, elf_of)
        if read and (need is None or need <= have):
            needs = f"at most GLIBC_{need[0]}.{need[1]}" if need else "no versioned glibc symbol"
            message += (
                f"; but its {read} binaries need {needs}, so they load as far as glibc "
                "goes (the tag is stricter than the binaries)"
            )
            severity, confidence = Severity.WARNING, Confidence.LIKELY
        elif read and need is not None:
            message += f"; its binaries need GLIBC_{need[0]}.{need[1]} (see the loader findings)"
    plat = "manylinux2014_x86_64" if target.arch == "x86_64" else "manylinux2014_aarch64"
    return Finding.of(
        ABI301,
        message,
        f"Install a build for the target: pip install --platform {plat} --python-version "
        f"{target.python} --implementation cp --only-binary=:all: --target python/ "
        f"'{dist.name}=={dist.version}' (or an older release that still ships one)",
        severity=severity,
        confidence=confidence,
        path=dist.dist_info,
        source=dist.source,
        distribution=dist.label,
        evidence=(f"{dist.dist_info}/WHEEL: Tag: {', '.join(dist.wheel_tags)}",),
    )


def requires_python(dist: Distribution, target: Target) -> Finding | None:
    """ABI302: Requires-Python excludes the target's version."""
    if not dist.requires_python:
        return None
    try:
        spec = SpecifierSet(dist.requires_python)
    except InvalidSpecifier:
        return None
    low, high = Version(f"{target.python}.0"), Version(f"{target.python}.99")
    ok_low, ok_high = spec.contains(low, prereleases=True), spec.contains(high, prereleases=True)
    if ok_low and ok_high:
        return None
    confidence = Confidence.CERTAIN if not ok_low and not ok_high else Confidence.POSSIBLE
    return Finding.of(
        ABI302,
        f"{dist.label} declares Requires-Python {dist.requires_python}, which excludes "
        f"Python {target.python}"
        + ("" if confidence is Confidence.CERTAIN else " (depending on the patch release)"),
        f"Install a release of {dist.name} that supports Python {target.python} "
        f"(pip install --python-version {target.python} ... picks one), or change the runtime",
        confidence=confidence,
        path=dist.dist_info,
        source=dist.source,
        distribution=dist.label,
        evidence=(f"{dist.dist_info}/METADATA: Requires-Python: {dist.requires_python}",),
    )


def _providers(
    visible: Sequence[Distribution], runtime: Sequence[RuntimePackage], importer: ImportSystem
) -> dict[str, Provider]:
    by_name: dict[str, list[Distribution]] = defaultdict(list)
    for d in visible:
        by_name[d.canonical_name].append(d)
    out: dict[str, Provider] = {}
    for name, copies in by_name.items():
        loading = _loading_copy(copies, importer)
        if loading is not None:
            out[name] = Provider(name=loading.name, version=loading.version, where=loading.site)
    for pkg in runtime:
        out.setdefault(
            canonicalize_name(pkg.name),
            Provider(
                name=pkg.name,
                version=pkg.version,
                where=f"the runtime ({pkg.location})",
                from_runtime=True,
            ),
        )
    return out


def requirements(
    visible: Sequence[Distribution],
    runtime: Sequence[RuntimePackage],
    importer: ImportSystem,
    target: Target,
) -> list[Finding]:
    """ABI303 (missing) and ABI304 (wrong version) for every visible distribution."""
    env = marker_environment(target)
    providers = _providers(visible, runtime, importer)
    out = []
    for dist in visible:
        for text in dist.requires_dist:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            try:
                if req.marker is not None and not req.marker.evaluate(env):
                    continue
            except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
                continue
            name = canonicalize_name(req.name)
            provider = providers.get(name)
            if provider is None:
                top = req.name.replace("-", "_").lower()
                out.append(
                    Finding.of(
                        ABI303,
                        f"{dist.label} requires {text}, which is neither in the stack nor provided "
                        f"by the runtime (the module name '{top}' is guessed from the project "
                        "name)",
                        f"Add {req} to the layer (pip install --target python/ '{req}'), or to "
                        "the function package",
                        confidence=Confidence.LIKELY,
                        path=dist.dist_info,
                        source=dist.source,
                        distribution=dist.label,
                        predicted_error=PredictedError(
                            type="ModuleNotFoundError", message=f"No module named '{top}'"
                        ),
                        evidence=(f"{dist.dist_info}/METADATA: Requires-Dist: {text}",),
                    )
                )
                continue
            if provider.version is None or not req.specifier:
                continue
            try:
                version = Version(provider.version)
            except InvalidVersion:
                continue
            if not req.specifier.contains(version, prereleases=True):
                out.append(
                    Finding.of(
                        ABI304,
                        f"{dist.label} requires {text}, but {provider.name} "
                        f"{provider.version} from {provider.where} is what loads",
                        f"Install a version of {provider.name} matching '{req.specifier}' next to "
                        f"{dist.name}, or a release of {dist.name} that accepts {provider.version}",
                        confidence=Confidence.POSSIBLE
                        if provider.from_runtime
                        else Confidence.LIKELY,
                        path=dist.dist_info,
                        source=dist.source,
                        distribution=dist.label,
                        evidence=(
                            f"{dist.dist_info}/METADATA: Requires-Dist: {text}",
                            f"{provider.name} {provider.version} at {provider.where}",
                        ),
                    )
                )
    return out


def duplicates(visible: Sequence[Distribution], importer: ImportSystem) -> list[Finding]:
    """ABI305: the same project installed more than once."""
    by_name: dict[str, list[Distribution]] = defaultdict(list)
    for d in visible:
        by_name[d.canonical_name].append(d)
    out = []
    for copies in by_name.values():
        if len(copies) < 2:
            continue
        loading = _loading_copy(copies, importer)
        assert loading is not None
        others = [c for c in copies if c is not loading]
        same_dir = [c for c in others if c.site == loading.site]
        listing = "; ".join(f"{c.version} in {c.site} (from {c.source})" for c in copies)
        if same_dir:
            message = (
                f"{loading.name} is installed {len(copies)} times ({listing}); copies share "
                f"{loading.site}, so their files are mixed (see ABI306)"
            )
        else:
            message = (
                f"{loading.name} is installed {len(copies)} times ({listing}); the copy in "
                f"{loading.site} ({loading.version}) loads, the others are dead weight"
            )
        out.append(
            Finding.of(
                ABI305,
                message,
                f"Keep one copy of {loading.name}: remove it from all but one layer or from the "
                "function package, at the version every dependent accepts",
                path=loading.dist_info,
                source=loading.source,
                distribution=loading.label,
                evidence=tuple(c.dist_info for c in copies),
            )
        )
    return out


def _sha256(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def mixed_trees(visible: Sequence[Distribution], stack: Stack) -> list[Finding]:
    """ABI306: files overwritten by another input, and leftovers of another version."""
    out = []
    owned: dict[str, list[Distribution]] = defaultdict(list)
    for d in visible:
        for path in d.files():
            owned[path].append(d)
    for dist in visible:
        changed: list[str] = []
        for entry, path in zip(dist.record, dist.files(), strict=True):
            if entry.hash is None or not entry.hash.startswith("sha256="):
                continue
            sf = stack.entry_at(path)
            if sf is None or sf.kind != "file" or sf.origin.source == dist.source:
                continue
            if entry.size is not None and sf.entry.size != entry.size:
                changed.append(path)
                continue
            try:
                if _sha256(stack.read(path)) != entry.hash:
                    changed.append(path)
            except SourceError:
                continue
        leftovers = (
            sorted(
                p
                for p, ds in owned.items()
                if dist not in ds
                and _same_project_same_site(ds, dist)
                and stack.exists(p)
                and ".dist-info/" not in p
            )
            if _unpacked_last(dist, visible) and _same_project_same_site(visible, dist)
            else []  # no other copy of the project in its directory: nothing is left over
        )
        if not changed and not leftovers:
            continue
        parts = []
        if changed:
            parts.append(
                f"{len(changed)} of its files were overwritten by another input "
                f"({', '.join(changed[:5])}{', ...' if len(changed) > 5 else ''})"
            )
        if leftovers:
            parts.append(
                f"{len(leftovers)} files of an earlier version remain next to it "
                f"({', '.join(leftovers[:5])}{', ...' if len(leftovers) > 5 else ''})"
            )
        out.append(
            Finding.of(
                ABI306,
                f"{dist.label} in {dist.site} is a mixed tree: " + "; ".join(parts),
                f"Install {dist.name} once, from one layer: two layers that both unpack it into "
                "python/ leave a tree that is neither version",
                confidence=Confidence.CERTAIN if changed else Confidence.LIKELY,
                path=dist.dist_info,
                source=dist.source,
                distribution=dist.label,
                evidence=tuple(
                    [f"RECORD hash/size differs: {p}" for p in changed[:50]]
                    + [f"left over from an earlier version: {p}" for p in leftovers[:50]]
                ),
            )
        )
    return out


def _unpacked_last(dist: Distribution, visible: Sequence[Distribution]) -> bool:
    """Whether no other copy of the project in the same directory was unpacked after it."""
    return all(
        o.source_index <= dist.source_index
        for o in visible
        if o.canonical_name == dist.canonical_name and o.site == dist.site
    )


def _same_project_same_site(owners: Sequence[Distribution], dist: Distribution) -> bool:
    return any(
        o.canonical_name == dist.canonical_name
        and o.site == dist.site
        and o.dist_info != dist.dist_info
        for o in owners
    )
