"""What an extension module offers to Python code, read from its bytes.

Two facts, each used only where the bytes are solid evidence and the binary and the
Python code that uses it come from two versions of one project (docs/evaluator.md,
"Files of two versions of one project"):

* **Names it cannot bind.** An extension module binds a module attribute by its
  name, and the name's text is in the binary's read-only data (a pyo3 ``&str``, a
  Cython string constant, a C string literal). A name whose text is nowhere in the
  whole of ``.rodata`` cannot be one of its attributes, provided the read was not cut
  short, the binary does not compress its strings (Cython 3.1 and later can: zlib
  or bz2 with ``CYTHON_COMPRESS_STRINGS``, whose message "cannot initialise module
  strings" is then in the binary, and Cython 3.3's own LZSS, "string data
  decompression failed"), and either the same data holds another name the
  importing module takes from it as a whole identifier (the control), or the binary
  is a pyo3 module (Rust string literals, never compressed: the names of its
  classes, functions and submodules are all there). A name never counts when it is
  a dunder every module has (``__doc__``).
* **The signature Cython embeds** (``embedsignature``) for a class:
  ``_Unquoter(str ignore='', *, bool qs=False)``. A call with a keyword the
  signature does not have fails in Cython's argument parsing with Cython's own
  message, ``__init__() got an unexpected keyword argument 'x'`` (the function's
  bare name, whatever the Python version), which the binary carries as
  ``%s() got an unexpected keyword argument '%U'``.

And, for any extension: numpy's ``import_array()``, whose message in the binary
says that it imports numpy's core while it initialises, and replaces a failure
there with that message (:func:`numpy_import_array`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from abiscan.elf.reader import MAX_RODATA
from abiscan.records import record
from abiscan.simulate.python.native_imports import NativeImport

__all__ = [
    "Signature",
    "cython_keyword_error",
    "embedded_signature",
    "lacks_name",
    "numpy_import_array",
]

# Cython's errors when its compressed string table does not unpack: only binaries
# whose strings are compressed carry them.
_COMPRESSED = (b"cannot initialise module strings", b"string data decompression failed")
# Texts, compiled by re on first use (and cached there): start-up.
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
# Cython 0.29 spells it "%.200s() got ... '%U'", Cython 3 "%s() got ... '%U'".
_CYTHON_KEYWORD = rb"%(?:\.200)?s\(\) got an unexpected keyword argument '%U'\x00"


@record
class Signature:
    """The parameters of a callable, as far as binding arguments to them goes."""

    positional: int  # how many arguments may be passed by position
    keywords: frozenset[str]  # the names that may be passed by keyword
    var_positional: bool  # *args
    var_keyword: bool  # **kwargs


def lacks_name(ro: bytes, name: str, controls: Iterable[str], *, plain: bool = False) -> bool:
    """Whether an extension whose read-only data is ``ro`` certainly does not bind
    ``name``: its text is nowhere in ``ro``, ``ro`` is whole, and ``ro`` holds at least
    one of ``controls`` (other names the importer takes from it), unless the binary is
    known to keep its names as plain text (``plain``: pyo3)."""
    if len(ro) >= MAX_RODATA or not re.fullmatch(_IDENTIFIER, name):
        return False
    if name.startswith("__") or name.encode() in ro or any(m in ro for m in _COMPRESSED):
        return False
    return plain or any(
        _whole(ro, c) for c in controls if c != name and re.fullmatch(_IDENTIFIER, c)
    )


def _whole(ro: bytes, name: str) -> bool:
    """Whether ``name`` is in ``ro`` as an identifier of its own, not inside a longer one."""
    pattern = rb"(?<![A-Za-z0-9_])" + re.escape(name.encode()) + rb"(?![A-Za-z0-9_])"
    return re.search(pattern, ro) is not None


def embedded_signature(ro: bytes, module: str, cls: str) -> Signature | None:
    """The ``__init__`` signature Cython embedded for class ``cls`` of extension
    ``module``: there must be exactly one ``cls(...)`` text, the class's own
    ``module.cls.__init__`` and no ``__cinit__`` (which would parse the arguments
    first, under its own name)."""
    if not re.fullmatch(_IDENTIFIER, cls):
        return None
    qualified = f"{module}.{cls}".encode()
    if qualified + b".__init__\x00" not in ro or qualified + b".__cinit__" in ro:
        return None
    found = {
        m.group(1)
        for m in re.finditer(rb"\x00" + re.escape(cls.encode()) + rb"\(([^\x00\n]*)\)\x00", ro)
    }
    if len(found) != 1:
        return None
    try:
        return _parse(found.pop().decode())
    except UnicodeDecodeError:
        return None


def cython_keyword_error(
    ro: bytes, signature: Signature, positional: int, keywords: Sequence[str]
) -> str | None:
    """The message of the TypeError Cython's argument parsing raises for a call with
    ``positional`` arguments and ``keywords``, when it certainly rejects a keyword."""
    if re.search(_CYTHON_KEYWORD, ro) is None or signature.var_keyword:
        return None
    if positional > signature.positional and not signature.var_positional:
        return None  # too many positional arguments: another message, not pinned here
    rejected = [k for k in keywords if k not in signature.keywords]
    if not rejected:
        return None
    return f"__init__() got an unexpected keyword argument '{rejected[0]}'"


# numpy's C-API import (``import_array()``, and Cython's ``cnp.import_array()``)
# imports the core extension module and, when that fails, raises ImportError with this
# message in place of the original error: numpy 2.x headers, then 1.x headers.
_IMPORT_ARRAY = (
    ("numpy._core.multiarray failed to import", "numpy._core._multiarray_umath"),
    ("numpy.core.multiarray failed to import", "numpy.core._multiarray_umath"),
)


def numpy_import_array(
    module: str, ro: bytes, exists: Callable[[str], bool]
) -> NativeImport | None:
    """The import numpy's ``import_array()`` makes while an extension initialises, when
    the binary carries the message of exactly one numpy header and the stack has the
    module that header imports first."""
    if module.startswith("numpy."):
        return None  # numpy's own modules: checked first, as it needs no search of ro
    found = [(m, t) for m, t in _IMPORT_ARRAY if m.encode() + b"\x00" in ro]
    if len(found) != 1 or not exists(found[0][1]):
        return None
    message, target = found[0]
    return NativeImport(
        module=module,
        imports=target,
        confidence="likely",
        at_init=True,
        panics=False,
        evidence=(
            f"'{message}' in .rodata: numpy's import_array(), which imports {target} "
            "while the module initialises (where it is called is not in the bytes)",
        ),
        replaces=message,
    )


def _parse(text: str) -> Signature | None:
    positional = 0
    keywords: set[str] = set()
    var_positional = var_keyword = keyword_only = False
    for part in _split(text):
        if part == "/":
            keywords.clear()  # everything before it is positional-only
            continue
        if part == "*":
            keyword_only = True
            continue
        if part.startswith("**"):
            var_keyword = True
            continue
        if part.startswith("*"):
            var_positional = keyword_only = True
            continue
        name = _param_name(part)
        if name is None:
            return None
        keywords.add(name)
        if not keyword_only:
            positional += 1
    return Signature(
        positional=positional,
        keywords=frozenset(keywords),
        var_positional=var_positional,
        var_keyword=var_keyword,
    )


def _param_name(part: str) -> str | None:
    """``bool qs=False``, ``qs: bool = False``, ``ignore`` -> the parameter's name."""
    head = part.partition("=")[0].partition(":")[0].split()
    if not head or not re.fullmatch(_IDENTIFIER, head[-1]):
        return None
    return head[-1]


def _split(text: str) -> list[str]:
    """The comma-separated parts of a parameter list, outside brackets and quotes."""
    parts: list[str] = []
    depth = 0
    quote = ""
    current = ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += ch
    if current.strip():
        parts.append(current.strip())
    return parts
