"""Imports made from native code, found statically in the extension module's bytes.

An extension module can import other modules while CPython initialises it,
and no Python source shows it. abiscan reads only the binary's read-only data
(``.rodata``, bounded) and its undefined dynamic symbols, and recognises:

* **cffi modules** (out-of-line API mode, and the older verifier modules): the
  init code cffi generates calls ``PyImport_ImportModule("_cffi_backend")``
  before anything else; its strings ``_cffi_backend`` and
  ``_init_cffi_1_0_external_module`` are in ``.rodata``. Certain.
* **pyo3 modules** (``pyo3_runtime.PanicException``, ``pyo3-0.x.y`` source
  paths in the panic locations). A pyo3 module that embeds a cffi module (the
  cffi strings in the same binary: cryptography 40 to 42) creates it from its
  own init by calling the embedded ``PyInit_``. How a failure there surfaces
  depends on the Rust code around that call: cryptography before 42.0.6 used
  ``from_owned_ptr``, which panics on NULL with "Python API call failed", so
  the ``ModuleNotFoundError`` for ``_cffi_backend`` arrives as
  ``pyo3_runtime.PanicException`` (a ``BaseException``, which ``except
  ImportError`` and ``except Exception`` do not catch); 42.0.6 and later use
  ``from_owned_ptr_or_err`` and the ``ModuleNotFoundError`` arrives as it is
  (checked against cryptography 41.0.7, 42.0.5 and 43.0.0 on CPython 3.12, and
  the 42.0.6 sources). For another distribution abiscan cannot tell the two
  apart from the bytes, and says ``likely``.
  Other module names in a pyo3 binary (Rust strings, not NUL-terminated,
  run together in ``.rodata``) are imports it *may* make, usually lazily from
  a function: ``possible``, never used to predict a failure.
* **Cython and other C extensions** that call ``PyImport_ImportModule`` (or
  ``PyImport_Import`` and friends): NUL-terminated strings that are exactly
  the name of a module the stack has. The bytes do not show whether the
  string is passed to the import call, nor when: a Cython module imports the
  names of its module-level ``import`` statements while it initialises, and
  the names imported inside its functions only when they are called (lxml's
  ``etree`` carries ``lxml.cssselect``, which it imports lazily). Both are
  interned the same way, so such a name is ``possible``, never an edge that
  turns a module that loads into an error or an unknown.

The scan is linear in the bytes read and bounded: ``.rodata`` is read up to
:data:`MAX_RODATA` bytes, and at most :data:`MAX_PROBES` names per binary are
looked up in the stack (each distinct string once), so a binary stuffed with
long dotted strings costs no more than a few thousand look-ups.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from abiscan.elf.reader import MAX_RODATA, ElfError, ElfFacts, read_facts, read_rodata
from abiscan.records import record

__all__ = [
    "MAX_PROBES",
    "MAX_REGISTERED",
    "MAX_RODATA",
    "PANIC_MESSAGE",
    "NativeFacts",
    "NativeImport",
    "native_imports",
    "rodata",
]

PANIC_MESSAGE = "Python API call failed"

_PYIMPORT = frozenset(
    {
        "PyImport_ImportModule",
        "PyImport_Import",
        "PyImport_ImportModuleLevel",
        "PyImport_ImportModuleLevelObject",
        "PyImport_ImportModuleNoBlock",
        "PyImport_ImportModuleEx",
    }
)

# At most this many names are looked up in the stack per binary: the names a
# string scan finds are "possible" at best, and a hostile binary can carry
# any number of them.
MAX_PROBES = 4096
# A module name component longer than this is not looked for in run-together strings.
_MAX_COMPONENT = 64

# The C-API calls that create a module object in sys.modules by its dotted name.
_ADDS_MODULE = frozenset(
    {"PyImport_AddModule", "PyImport_AddModuleObject", "PyImport_AddModuleRef"}
)
# At most this many strings are kept as submodules an extension may register.
MAX_REGISTERED = 1 << 16
# The patterns below are texts: re compiles (and caches) each on its first use, which
# a scan whose binaries are read from the cache never makes (start-up).
# These two consume the NUL before a string rather than look behind for it: the
# regex engine then finds each NUL at C speed, where a look-behind was tried at
# every byte (0.4 s to 0.13 s of CPU over the 8.7 MB of .rodata of the real
# layer of docs/benchmarks.md). The matches are the same: a string that starts
# right after a NUL and ends right before one.
_IDENT = rb"\x00([A-Za-z_][A-Za-z0-9_]{0,63})(?=\x00)"

_CSTRING = rb"\x00([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)(?=\x00)"
_PYO3_VERSION = rb"pyo3-(\d+\.\d+\.\d+)"
# Starts only where an identifier run starts: inner starts would make the scan
# quadratic in the length of the run-together strings.
_DOTTED = rb"(?<![A-Za-z0-9_.])[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+"

# Distributions whose pyo3+cffi binaries are known, with the first version
# that propagates the embedded cffi module's error instead of panicking.
_PANIC_FIXED_IN = {"cryptography": "42.0.6"}


@record
class NativeImport:
    """A module an extension module imports from native code."""

    module: str  # the extension module
    imports: str  # the module it imports
    confidence: str  # "certain", "likely" or "possible"
    at_init: bool  # during the module's initialisation (otherwise: perhaps later)
    panics: bool  # a failure surfaces as pyo3_runtime.PanicException: Python API call failed
    evidence: tuple[str, ...]
    # A failure surfaces as ImportError with this message instead (numpy's import_array).
    replaces: str = ""

    def describe(self) -> str:
        how = "panics (pyo3_runtime.PanicException) if it fails" if self.panics else ""
        when = "during its init" if self.at_init else "perhaps later, from a function"
        return (
            f"{self.module} imports {self.imports} from native code {when} "
            f"[{self.confidence}]" + (f"; {how}" if how else "")
        )


@record
class NativeFacts:
    """What an extension module's bytes say it imports when initialised."""

    module: str
    path: str
    kinds: tuple[str, ...]  # "cffi", "pyo3", "cython", "c-import"
    pyo3_version: str | None
    imports: tuple[NativeImport, ...]
    note: str = ""
    # With a C-API call that puts modules in sys.modules (PyImport_AddModule, the
    # way pybind11's def_submodule and nanobind register ``ext.sub``): the
    # identifiers among its NUL-terminated strings, each a submodule it may register.
    registers: frozenset[str] = frozenset()
    registers_via: str = ""  # the C-API symbols that are the evidence


def rodata(data: bytes, elf: ElfFacts | None = None) -> bytes:
    """The read-only data sections of an ELF file (``.rodata*``), at most MAX_RODATA bytes.

    Without section headers, the loadable segments that are neither
    writable nor executable (where the ELF model finds them:
    :attr:`ElfFacts.rodata_ranges`). Empty when the file cannot be read.
    """
    if elf is None:
        try:
            elf = read_facts(data)
        except ElfError:
            return b""
    return read_rodata(data, elf)


def _panics_for(owner: tuple[str, str] | None) -> tuple[bool, str, str]:
    """(panics, confidence, why) for a pyo3 binary that embeds a cffi module."""
    if owner is not None:
        name, version = owner
        fixed_in = _PANIC_FIXED_IN.get(name.lower())
        if fixed_in is not None:
            # Imported only here, for a binary that embeds a cffi module: not at start-up.
            from packaging.version import InvalidVersion, Version

            fixed = Version(fixed_in)
            try:
                v = Version(version)
            except InvalidVersion:
                v = None
            if v is not None:
                if v < fixed:
                    return (
                        True,
                        "certain",
                        (
                            f"{name} {version} (before {fixed}) creates its embedded cffi module "
                            "with pyo3's from_owned_ptr, which panics when the init returns NULL"
                        ),
                    )
                return (
                    False,
                    "certain",
                    (
                        f"{name} {version} ({fixed} or later) propagates the embedded cffi "
                        "module's error (from_owned_ptr_or_err)"
                    ),
                )
    return (
        True,
        "likely",
        (
            "a pyo3 module that embeds a cffi module: if the Rust code creates it with "
            "from_owned_ptr (as cryptography 40 to 42.0.5 do), a failure panics"
        ),
    )


def native_imports(
    module: str,
    path: str,
    data: bytes,
    elf: ElfFacts | None,
    exists: Callable[[str], bool],
    owner: tuple[str, str] | None = None,
    ro: bytes | None = None,
) -> NativeFacts:
    """What the extension module ``module`` (the file ``path``) imports from native code.

    ``exists(name)`` says whether the stack has a module of that name (or a
    file for it the target passes over); ``owner`` is the (name, version) of
    the distribution that installed the file, when known. ``ro``, when given,
    is :func:`rodata` of the file, already read (``data`` is then not used).
    """
    if ro is None:
        ro = rodata(data, elf)
    undefined: frozenset[str] = frozenset()
    if elf is not None:
        try:
            undefined = frozenset(elf.undefined)
        except ElfError:
            undefined = frozenset()
    calls_import = sorted(_PYIMPORT & undefined)
    kinds: list[str] = []
    out: dict[str, NativeImport] = {}
    short = module.rpartition(".")[2]
    probe = _Prober(exists)

    version_match = re.search(_PYO3_VERSION, ro)
    pyo3 = version_match is not None or b"pyo3_runtime.PanicException" in ro or b"PyO3" in ro
    pyo3_version = version_match.group(1).decode() if version_match else None
    if pyo3:
        kinds.append("pyo3")
    cffi = b"\x00_cffi_backend\x00" in ro and short != "_cffi_backend"
    if cffi:
        kinds.append("cffi")
        out["_cffi_backend"] = _cffi_edge(module, ro, calls_import, pyo3, pyo3_version, owner)
    strings: list[bytes] | None = None
    if calls_import and not pyo3 and short != "_cffi_backend":
        cython = any(mark in ro for mark in _CYTHON_MARKS)
        kinds.append("cython" if cython else "c-import")
        why = (
            "Cython interns the names imported at init and in functions alike"
            if cython
            else "the bytes do not show when, or whether, it is imported"
        )
        strings = list(dict.fromkeys(re.findall(_CSTRING, ro)))
        # Each name is distinct: the first MAX_PROBES of them are looked up (_Prober).
        names = [raw.decode("ascii") for raw in strings]
        for name in [n for n in names if n not in out and n != module][:MAX_PROBES]:
            if not exists(name):
                continue
            out[name] = NativeImport(
                module=module,
                imports=name,
                confidence="possible",
                at_init=False,
                panics=False,
                evidence=(
                    f"NUL-terminated string '{name}' in .rodata, the name of a module in the stack",
                    f"undefined symbol {', '.join(calls_import)}",
                    why,
                ),
            )
    elif pyo3:
        for name in _rust_names(ro, module, probe):
            if name not in out:
                out[name] = NativeImport(
                    module=module,
                    imports=name,
                    confidence="possible",
                    at_init=False,
                    panics=False,
                    evidence=(
                        f"'{name}' in the Rust strings of .rodata (an import pyo3 code may make, "
                        "usually lazily)",
                    ),
                )
    adds = sorted(_ADDS_MODULE & undefined)
    return NativeFacts(
        module=module,
        path=path,
        kinds=tuple(kinds),
        pyo3_version=pyo3_version,
        imports=tuple(sorted(out.values(), key=lambda n: n.imports)),
        registers=_registered(ro, module, strings) if adds else frozenset(),
        registers_via=", ".join(adds),
    )


def _registered(ro: bytes, module: str, strings: list[bytes] | None = None) -> frozenset[str]:
    """The submodule names an extension that calls PyImport_AddModule may register:
    its identifier strings (``_sqltypes``: pybind11 joins the parent's name at run
    time), and the tails of its strings that start with the module's own name.

    ``strings``: the distinct matches of ``_CSTRING`` in ``ro``, when already found;
    the matches of ``_IDENT`` are those without a dot, of at most 64 characters
    (both consume only the NUL before a string, so they start at the same NULs)."""
    names: set[str] = set()
    own = module.encode("ascii", "replace") + b"."
    if strings is None:
        idents: Iterable[bytes] = dict.fromkeys(re.findall(_IDENT, ro))
    else:
        idents = (raw for raw in strings if len(raw) <= 64 and b"." not in raw)
    for raw in idents:
        names.add(raw.decode("ascii"))
        if len(names) >= MAX_REGISTERED:
            break
    at = ro.find(own)
    while at != -1 and len(names) < MAX_REGISTERED:
        end = ro.find(b"\x00", at)
        tail = ro[at + len(own) : end if end != -1 else len(ro)]
        if ro[at - 1 : at] == b"\x00" and re.fullmatch(rb"[A-Za-z_][A-Za-z0-9_.]*", tail):
            names.add(tail.decode("ascii").partition(".")[0])
        at = ro.find(own, at + 1)
    return frozenset(names)


# Strings every Cython module carries (its runtime module, and the names of the
# generated C-API capsule table).
_CYTHON_MARKS = (b"\x00cython_runtime\x00", b"\x00__pyx_capi__\x00", b"_cython_3_")


def _cffi_edge(
    module: str,
    ro: bytes,
    calls_import: list[str],
    pyo3: bool,
    pyo3_version: str | None,
    owner: tuple[str, str] | None,
) -> NativeImport:
    """The ``_cffi_backend`` import of a cffi module (or of a pyo3 module embedding one)."""
    external = b"\x00_init_cffi_1_0_external_module\x00" in ro
    evidence = (
        "NUL-terminated string '_cffi_backend' in .rodata",
        *(
            ["string '_init_cffi_1_0_external_module' (cffi's out-of-line API mode)"]
            if external
            else []
        ),
        *([f"undefined symbol {', '.join(calls_import)}"] if calls_import else []),
    )
    if pyo3:
        panics, confidence, why = _panics_for(owner)
        return NativeImport(
            module=module,
            imports="_cffi_backend",
            confidence=confidence,
            at_init=True,
            panics=panics,
            evidence=(
                *evidence,
                "pyo3 module with an embedded cffi module: " + why,
                *([f"pyo3 {pyo3_version}"] if pyo3_version else []),
            ),
        )
    confidence = "certain" if external and calls_import else "likely"
    return NativeImport(
        module=module,
        imports="_cffi_backend",
        confidence=confidence,
        at_init=True,
        panics=False,
        evidence=(*evidence, "cffi-generated init code imports _cffi_backend first"),
    )


class _Prober:
    """``exists`` with a memo and a budget: at most MAX_PROBES distinct names per binary."""

    def __init__(self, exists: Callable[[str], bool]) -> None:
        self._exists = exists
        self._memo: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        known = self._memo.get(name)
        if known is not None:
            return known
        if len(self._memo) >= MAX_PROBES:
            return False  # out of budget: the name stays unknown, never an edge
        found = self._memo[name] = self._exists(name)
        return found


def _rust_names(ro: bytes, module: str, exists: Callable[[str], bool]) -> list[str]:
    """Dotted module names in run-together Rust strings, each cut at the longest prefix
    that names a module in the stack."""
    parts = module.split(".")
    own = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    found: set[str] = set()
    for raw in dict.fromkeys(m.group(0) for m in re.finditer(_DOTTED, ro)):
        comps = raw.decode("ascii").split(".")
        head = comps[0][-_MAX_COMPONENT:]
        # The start is as unsure as the end: try a few plausible top-level names.
        starts = [head[i:] for i in range(len(head)) if head[i].isalpha() or head[i] == "_"]
        for start in starts[:8]:
            if not exists(start):
                continue
            name = _longest_module([start, *comps[1:]], exists)
            if name is not None and "." in name and name not in own:
                found.add(name)
            break
    return sorted(found)


def _cuts(comp: str) -> list[int]:
    """Where a component may end when the next string ran into it: its whole length,
    then the places where a lower-case letter or a digit meets an upper-case one."""
    comp = comp[:_MAX_COMPONENT]
    inner = [
        i
        for i in range(len(comp) - 1, 0, -1)
        if comp[i].isupper() and (comp[i - 1].islower() or comp[i - 1].isdigit())
    ]
    return [len(comp), *inner[:4]]


def _longest_module(comps: list[str], exists: Callable[[str], bool]) -> str | None:
    current = comps[0]
    if not exists(current):
        return None
    for comp in comps[1:]:
        hit = next(
            (f"{current}.{comp[:cut]}" for cut in _cuts(comp) if exists(f"{current}.{comp[:cut]}")),
            None,
        )
        if hit is None:
            return current
        current = hit
        if not hit.endswith(comp):
            return current  # the component ran on into the next string
    return current
