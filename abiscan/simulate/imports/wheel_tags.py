"""The wheel tags a target accepts, in priority order, computed for the target alone.

``packaging.tags.sys_tags()`` answers for the running interpreter: it reads the
host's sysconfig, its glibc (``os.confstr``/ctypes) and even the ELF header of
``sys.executable``. abiscan predicts for another machine, so this module builds
the same ordered list from a :class:`~abiscan.target.profiles.Target`:

* CPython tags come from ``packaging.tags.cpython_tags`` and the generic ones
  from ``packaging.tags.compatible_tags``. Both consult the host only for an
  argument that is None or empty (``python_version``, ``abis``, ``platforms``,
  ``interpreter``), so every one of them is always given here, and the platform
  list is never empty.
* The platform list is built here from the target's architecture and glibc,
  mirroring ``packaging._manylinux.platform_tags`` (which would read the host's
  glibc and refine it with an importable ``_manylinux`` module of the host).

The result is what a ``packaging``-based installer such as pip, running *on the
target*, would accept, best first. Whether the files inside a wheel then
load is for the importer and loader to say: a ``manylinux_2_28`` tag whose
binaries need only glibc 2.17 still loads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache

import packaging
from packaging.tags import Tag, compatible_tags, cpython_tags, parse_tag
from packaging.version import Version

from abiscan.target.profiles import Target, TargetError

__all__ = [
    "Tag",
    "best_rank",
    "is_supported",
    "manylinux_glibc",
    "platform_tags",
    "supported_tag_set",
    "supported_tags",
    "unsupported_reason",
]

# packaging 26.3 moved the native ``linux_<arch>`` tag ahead of the manylinux
# and musllinux tags (pypa/packaging#160); every earlier release puts it last.
# Following the installed packaging keeps our order identical to what an
# installer built on it ranks, which is the only thing the order is used for.
_LINUX_FIRST = Version(packaging.__version__) >= Version("26.3")

# packaging's _manylinux: glibc 2.5 (manylinux1) is the oldest tag for x86
# targets, 2.17 (manylinux2014) the oldest for every other architecture.
_OLDEST_GLIBC = {"x86_64": (2, 5), "i686": (2, 5)}
_OLDEST_GLIBC_OTHER = (2, 17)
# A glibc 3.x would still accept every 2.x tag; packaging assumes at most 50 minors.
_LAST_GLIBC_MINOR = 50
_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
_LEGACY_BY_NAME = {name: ver for ver, name in _LEGACY_MANYLINUX.items()}

_VERSION = re.compile(r"^(\d+)\.(\d+)")
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(.+)$")
_LEGACY = re.compile(r"^(manylinux1|manylinux2010|manylinux2014)_(.+)$")
_MUSLLINUX = re.compile(r"^musllinux_(\d+)_(\d+)_(.+)$")
_CP = re.compile(r"^cp(\d)(\d+)$")
_PY = re.compile(r"^py(\d)(\d*)$")


def _manylinux_platforms(arch: str, glibc: tuple[int, int]) -> Iterator[str]:
    oldest = _OLDEST_GLIBC.get(arch, _OLDEST_GLIBC_OTHER)
    tops = [glibc, *((major, _LAST_GLIBC_MINOR) for major in range(glibc[0] - 1, 1, -1))]
    for major, top_minor in tops:
        stop = oldest[1] - 1 if major == oldest[0] else -1
        for minor in range(top_minor, stop, -1):
            yield f"manylinux_{major}_{minor}_{arch}"
            legacy = _LEGACY_MANYLINUX.get((major, minor))
            if legacy:
                yield f"{legacy}_{arch}"


def _musllinux_platforms(arch: str, musl: tuple[int, int]) -> Iterator[str]:
    for minor in range(musl[1], -1, -1):
        yield f"musllinux_{musl[0]}_{minor}_{arch}"


def platform_tags(target: Target) -> list[str]:
    """Platform tags the target accepts, best first.

    On a glibc target: ``manylinux_2_N_<arch>`` from the target's glibc down to
    2_5 (x86_64) or 2_17 (other architectures), each legacy alias right after
    the tag it stands for, and ``linux_<arch>`` where the installed packaging
    ranks it. Never a musllinux tag on a glibc target, nor a manylinux tag on a
    musl one.
    """
    return list(_platforms(_key(target)))


def _abis(target: Target) -> list[str]:
    nodot = f"{target.python_version[0]}{target.python_version[1]}"
    abis = [f"cp{nodot}{target.abiflags}"]
    if "d" in target.abiflags:
        # A debug build also loads release-build extensions (packaging does the same).
        abis.append(f"cp{nodot}{target.abiflags.replace('d', '')}")
    return abis


_Key = tuple[tuple[int, int], str, str, str, tuple[int, int]]


def _key(target: Target) -> _Key:
    """What the tag list depends on; validated here so errors name the target."""
    if target.implementation != "cpython":
        raise TargetError(
            f"target {target.name}: wheel tags are only computed for CPython, "
            f"not {target.implementation}"
        )
    match = _VERSION.match(target.libc_version)
    if not match:
        raise TargetError(
            f"target {target.name}: libc version {target.libc_version!r} is not MAJOR.MINOR"
        )
    libc_version = (int(match.group(1)), int(match.group(2)))
    return (target.python_version, target.abiflags, target.arch, target.libc, libc_version)


@lru_cache(maxsize=64)
def _platforms(key: _Key) -> tuple[str, ...]:
    _version, _flags, arch, libc, libc_version = key
    native = [f"linux_{arch}"]
    if libc == "glibc":
        portable = list(_manylinux_platforms(arch, libc_version))
    elif libc == "musl":
        portable = list(_musllinux_platforms(arch, libc_version))
    else:
        portable = []
    return tuple(native + portable if _LINUX_FIRST else portable + native)


@lru_cache(maxsize=64)
def _supported(key: _Key, abis: tuple[str, ...]) -> tuple[Tag, ...]:
    version = key[0]
    platforms = list(_platforms(key))
    interpreter = f"cp{version[0]}{version[1]}"
    tags = list(cpython_tags(python_version=version, abis=list(abis), platforms=platforms))
    tags.extend(
        compatible_tags(python_version=version, interpreter=interpreter, platforms=platforms)
    )
    return tuple(tags)


def supported_tags(target: Target) -> list[Tag]:
    """Every tag the target accepts, in the order ``sys_tags()`` would give on the target."""
    return list(_supported(_key(target), tuple(_abis(target))))


def supported_tag_set(target: Target) -> frozenset[Tag]:
    return frozenset(_supported(_key(target), tuple(_abis(target))))


@lru_cache(maxsize=64)
def _ranks(key: _Key, abis: tuple[str, ...]) -> dict[Tag, int]:
    ranks: dict[Tag, int] = {}
    for index, tag in enumerate(_supported(key, abis)):
        ranks.setdefault(tag, index)
    return ranks


def _as_tags(tags: Iterable[Tag | str]) -> Iterator[Tag]:
    for tag in tags:
        if isinstance(tag, Tag):
            yield tag
        else:
            # A WHEEL "Tag:" line or a filename's tag triple, compressed sets included.
            yield from parse_tag(tag.strip())


def best_rank(tags: Iterable[Tag | str], target: Target) -> int | None:
    """Index of the best of ``tags`` in :func:`supported_tags` (lower wins), or None."""
    ranks = _ranks(_key(target), tuple(_abis(target)))
    found = [ranks[tag] for tag in _as_tags(tags) if tag in ranks]
    return min(found) if found else None


def is_supported(tags: Iterable[Tag | str], target: Target) -> bool:
    """Whether the target accepts any of a wheel's tags.

    Tags are Tag objects or strings such as ``cp312-abi3-manylinux_2_17_x86_64``
    (compressed sets like ``py2.py3-none-any`` included).
    """
    return best_rank(tags, target) is not None


def manylinux_glibc(platform: str) -> tuple[int, int] | None:
    """The glibc a manylinux platform tag promises to need at most, e.g. (2, 17)."""
    match = _MANYLINUX.match(platform)
    if match:
        return int(match.group(1)), int(match.group(2))
    legacy = _LEGACY.match(platform)
    if legacy:
        return _LEGACY_BY_NAME[legacy.group(1)]
    return None


def _platform_arch(platform: str) -> str | None:
    for pattern, group in ((_MANYLINUX, 3), (_LEGACY, 2), (_MUSLLINUX, 3)):
        match = pattern.match(platform)
        if match:
            return match.group(group)
    if platform.startswith("linux_"):
        return platform[len("linux_") :]
    return None


def _platform_reason(platform: str, target: Target) -> str | None:
    if platform == "any" or platform in _platforms(_key(target)):
        return None
    arch = _platform_arch(platform)
    if arch is None:
        return f"platform {platform} is not Linux; the target is {target.describe()}"
    if arch != target.arch:
        return f"platform {platform} is for {arch}; the target is {target.arch}"
    if platform.startswith("musllinux_") and target.libc != "musl":
        return f"platform {platform} is for musl libc; the target has {target.libc}"
    needs = manylinux_glibc(platform)
    if needs is not None:
        if target.libc != "glibc":
            return f"platform {platform} is for glibc; the target has {target.libc}"
        return (
            f"platform {platform} needs glibc {needs[0]}.{needs[1]}; the target has "
            f"glibc {target.libc_version}"
        )
    return f"platform {platform} is not one the target accepts"


def _abi_reason(tag: Tag, target: Target) -> str | None:
    """What is wrong with a tag's interpreter/ABI part for the target (None: nothing)."""
    want = f"CPython {target.python}{target.abiflags}"
    major, minor = target.python_version
    py = _PY.match(tag.interpreter)
    if py:
        wanted_major = int(py.group(1))
        wanted_minor = int(py.group(2)) if py.group(2) else None
        if wanted_major != major or (wanted_minor is not None and wanted_minor > minor):
            return f"interpreter tag {tag.interpreter} is not for {want}"
        return None if tag.abi == "none" else f"ABI {tag.abi} with {tag.interpreter}"
    cp = _CP.match(tag.interpreter)
    if cp is None:
        return f"interpreter {tag.interpreter} is not CPython; the target is {want}"
    built = (int(cp.group(1)), int(cp.group(2)))
    built_text = f"CPython {built[0]}.{built[1]}"
    if tag.abi == "abi3":
        if target.free_threaded:
            return f"abi3 (the stable ABI) is not loadable by the free-threaded {want}"
        if built > target.python_version:
            return f"abi3 for {built_text} and later; the target is {want}"
        return None
    if tag.abi == "abi3t" and not target.free_threaded:
        return f"abi3t (the free-threaded stable ABI) is not accepted by {want}"
    if built != target.python_version:
        return f"{tag.interpreter}-{tag.abi} is for {built_text} only; the target is {want}"
    if tag.abi not in ("none", "abi3t", *_abis(target)):
        return f"ABI {tag.abi} is not the target's (cp{major}{minor}{target.abiflags})"
    return None


def unsupported_reason(tag: Tag | str, target: Target) -> str | None:
    """Why the target refuses a tag (None when it accepts it); one sentence per failing part."""
    parsed = [tag] if isinstance(tag, Tag) else list(_as_tags([tag]))
    reasons: list[str] = []
    for one in parsed:
        if one in supported_tag_set(target):
            return None
        for reason in (_abi_reason(one, target), _platform_reason(one.platform, target)):
            if reason and reason not in reasons:
                reasons.append(reason)
        if not reasons:
            reasons.append(f"tag {one} is not among the target's supported tags")
    return "; ".join(reasons) if reasons else None
