"""Extension module filename tags, and why a target does or does not try a file.

CPython's ``FileFinder`` tries ``<name><suffix>`` for each suffix in
``EXTENSION_SUFFIXES``, in order; everything after the first dot of a file
name is its suffix. A file whose suffix is not in the target's list is never
opened: the import system passes it over in silence.
"""

from __future__ import annotations

import re

from abiscan.records import record
from abiscan.report.model import LoaderKind
from abiscan.target.profiles import Target

__all__ = [
    "BYTECODE_SUFFIXES",
    "IDENTIFIER",
    "SOURCE_SUFFIXES",
    "ExtensionTag",
    "Mismatch",
    "is_tried",
    "loader_suffixes",
    "mismatch",
    "parse_extension_filename",
    "split_module_name",
]

SOURCE_SUFFIXES = (".py",)
BYTECODE_SUFFIXES = (".pyc",)

# cpython-312-x86_64-linux-gnu, cpython-313t-aarch64-linux-gnu, cpython-36m-..., cpython-312-darwin
_CPYTHON = re.compile(r"^cpython-(\d)(\d+)([a-z]*)(?:-(.+))?$")
# The rarer tags, as texts: re compiles (and caches) each on first use, which a scan
# of CPython extensions alone never makes (start-up: docs/benchmarks.md).
# cp312-win_amd64, cp39-win32
_WINDOWS = r"^cp(\d)(\d+)([a-z]*)-(win.*)$"
# pypy39-pp73-x86_64-linux-gnu, pypy310-pp73-darwin
_PYPY = r"^(pypy\d+)-pp(\d+)(?:-(.+))?$"
# graalpy311-graalpy230-310-native-x86_64-linux
_GRAALPY = r"^graalpy.*$"

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@record
class ExtensionTag:
    """What an extension module's file name says about what it was built for."""

    filename: str
    module: str
    suffix: str
    kind: str  # "cpython", "abi3", "untagged", "windows", "pypy", "graalpy", "unknown"
    python_version: tuple[int, int] | None = None
    abiflags: str = ""
    platform: str | None = None  # multiarch triplet, "darwin", "win_amd64", ...

    def describe(self) -> str:
        if self.kind == "cpython":
            ver = (
                f"CPython {self.python_version[0]}.{self.python_version[1]}"
                if (self.python_version)
                else "CPython"
            )
            flags = f" (ABI flags {self.abiflags!r})" if self.abiflags else ""
            plat = f" on {self.platform}" if self.platform else ""
            return f"{ver}{flags}{plat}"
        if self.kind == "abi3":
            return "the stable ABI (abi3)"
        if self.kind == "untagged":
            return "no particular CPython (untagged)"
        if self.kind == "windows":
            return f"Windows ({self.platform})"
        if self.kind == "pypy":
            return f"PyPy ({self.suffix})"
        return f"an unknown interpreter ({self.suffix})"


def split_module_name(filename: str) -> tuple[str, str]:
    """(module name, suffix): the name stops at the first dot."""
    head, dot, rest = filename.partition(".")
    return head, dot + rest


def parse_extension_filename(filename: str) -> ExtensionTag | None:
    """The tag of an extension-module-looking file name, or None if it does not look like one."""
    module, suffix = split_module_name(filename)
    if not module or not suffix:
        return None
    if suffix.endswith(".pyd"):
        inner = suffix[1:-4]
        m = re.match(_WINDOWS, inner)
        if m:
            return ExtensionTag(
                filename=filename,
                module=module,
                suffix=suffix,
                kind="windows",
                python_version=(int(m.group(1)), int(m.group(2))),
                abiflags=m.group(3),
                platform=m.group(4),
            )
        return ExtensionTag(
            filename=filename, module=module, suffix=suffix, kind="windows", platform="windows"
        )
    if not suffix.endswith(".so"):
        return None
    inner = suffix[1:-3]
    if inner == "":
        return ExtensionTag(filename=filename, module=module, suffix=suffix, kind="untagged")
    if inner == "abi3":
        return ExtensionTag(filename=filename, module=module, suffix=suffix, kind="abi3")
    m = _CPYTHON.match(inner)
    if m:
        return ExtensionTag(
            filename=filename,
            module=module,
            suffix=suffix,
            kind="cpython",
            python_version=(int(m.group(1)), int(m.group(2))),
            abiflags=m.group(3),
            platform=m.group(4),
        )
    m = re.match(_PYPY, inner)
    if m:
        return ExtensionTag(
            filename=filename, module=module, suffix=suffix, kind="pypy", platform=m.group(3)
        )
    if re.match(_GRAALPY, inner):
        return ExtensionTag(filename=filename, module=module, suffix=suffix, kind="graalpy")
    return ExtensionTag(filename=filename, module=module, suffix=suffix, kind="unknown")


def loader_suffixes(target: Target) -> tuple[tuple[str, LoaderKind], ...]:
    """(suffix, kind) in the order ``FileFinder`` tries them on the target."""
    return (
        *((s, "extension") for s in target.extension_suffixes),
        *((s, "source") for s in SOURCE_SUFFIXES),
        *((s, "bytecode") for s in BYTECODE_SUFFIXES),
    )


def is_tried(tag: ExtensionTag, target: Target) -> bool:
    return tag.suffix in target.extension_suffixes


@record
class Mismatch:
    """Why the target never tries an extension file: a finding code and a sentence."""

    code: str
    reason: str


def mismatch(tag: ExtensionTag, target: Target) -> Mismatch | None:
    """Why ``target`` never tries a file with this tag (None if it does try it)."""
    if is_tried(tag, target):
        return None
    want = f"CPython {target.python}{target.abiflags} on {target.multiarch}"
    if tag.kind == "windows":
        return Mismatch(
            code="ABI102", reason=f"built for Windows ({tag.suffix}); the target is {want}"
        )
    if tag.kind in ("pypy", "graalpy", "unknown"):
        return Mismatch(
            code="ABI102",
            reason=f"built for another interpreter ({tag.suffix}); the target is {want}",
        )
    if tag.kind == "abi3":
        # Only a free-threaded build refuses .abi3.so on Linux.
        return Mismatch(
            code="ABI104",
            reason=f"an abi3 module; the free-threaded CPython {target.python}t does not load the "
            "stable ABI",
        )
    if tag.kind == "cpython":
        if tag.platform is not None and tag.platform != target.multiarch:
            return Mismatch(code="ABI102", reason=f"built for {tag.platform}; the target is {want}")
        if tag.python_version == target.python_version and (
            ("t" in tag.abiflags) != target.free_threaded
        ):
            built = "free-threaded" if "t" in tag.abiflags else "GIL (default)"
            runs = "free-threaded" if target.free_threaded else "GIL (default)"
            return Mismatch(
                code="ABI104",
                reason=f"built for the {built} build of CPython {target.python}; "
                f"the target is the {runs} build",
            )
        if tag.python_version == target.python_version and tag.abiflags.replace(
            "t", ""
        ) != target.abiflags.replace("t", ""):
            return Mismatch(
                code="ABI101",
                reason=f"built for another ABI of CPython {target.python} (ABI flags "
                f"{tag.abiflags!r}, e.g. a debug build); the target is {want}",
            )
        if tag.python_version == target.python_version:
            return Mismatch(
                code="ABI102",
                reason=f"tagged {tag.suffix}, without the target's platform triplet; "
                f"the target tries only {', '.join(target.extension_suffixes)}",
            )
        assert tag.python_version is not None
        built_for = f"{tag.python_version[0]}.{tag.python_version[1]}{tag.abiflags}"
        return Mismatch(
            code="ABI101", reason=f"built for CPython {built_for}; the target is {want}"
        )
    return Mismatch(code="ABI102", reason=f"suffix {tag.suffix} is not one the target tries")
