"""Files of two versions of one project, unpacked one over the other, run as they are.

A python3.8 layer's older release unpacked over a python3.12 layer's newer one leaves
the old ``.py`` files next to the new version-tagged extension modules. abiscan runs
that mix: a name the old Python side imports from the new binary, or a keyword it
passes to a class the new binary defines, fails where the binary is solid evidence
(native_api). Each test pins one mechanism on synthetic layers; the real stacks of the
real-world suite (overlay category) show the whole, with yarl, pydantic-core and
cryptography.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

import abiscan
from abiscan.report.model import Report
from abiscan.simulate.python.native_api import (
    Signature,
    cython_keyword_error,
    embedded_signature,
    lacks_name,
)
from abiscan.target.profiles import custom_target
from abiscan.testing.dists import installed
from abiscan.testing.elf_writer import build_shared_object

from helpers import write_zip

EXT = ".cpython-312-x86_64-linux-gnu.so"
_CYTHON_MESSAGE = b"%s() got an unexpected keyword argument '%U'\x00"


def scan(tmp_path: Path, *layers: Mapping[str, bytes | str], imports: tuple[str, ...]) -> Report:
    paths = [write_zip(tmp_path / f"layer{i}.zip", m) for i, m in enumerate(layers)]
    return abiscan.scan(paths, target=custom_target("3.12", "x86_64", "2.34"),
                        imports=list(imports))


def _dist(name: str, version: str, files: Mapping[str, bytes | str]) -> dict[str, bytes | str]:
    return installed(name, files, version=version)


def _ext(rodata: bytes) -> bytes:
    return build_shared_object(exports=["PyInit__core"], rodata=b"\x00" + rodata)


def _overlay(
    tmp_path: Path, new_ro: bytes, old_init: str, *, old_version: str = "1.0"
) -> Report:
    """Version 2.0 (its __init__ and its extension), then ``old_version``'s __init__ over it."""
    new = {"pkg/__init__.py": "from ._core import kept\n", f"pkg/_core{EXT}": _ext(new_ro)}
    old = {"pkg/__init__.py": old_init}
    return scan(tmp_path, _dist("pkg", "2.0", new), _dist("pkg", old_version, old),
                imports=("pkg",))


# -- names the new binary does not bind --------------------------------------------------


def test_a_name_the_other_versions_binary_lacks_is_cannot_import_name(tmp_path: Path) -> None:
    report = _overlay(tmp_path, b"kept\x00", "from ._core import gone, kept\n")
    m = report.module("pkg")
    assert m is not None and m.outcome == "error", m.reason
    assert str(m.error) == (
        f"ImportError: cannot import name 'gone' from 'pkg._core' (/opt/python/pkg/_core{EXT})"
    )


def test_a_pyo3_binary_needs_no_control(tmp_path: Path) -> None:
    # cryptography 50's cobblestone.py, the only module importing 'cobblestone' from
    # _rust, against cryptography 47's _rust.abi3.so (one name: abi3 replaced abi3).
    ro = b"pyo3_runtime.PanicException\x00/cargo/registry/pyo3-0.22.2/src/err.rs\x00"
    report = _overlay(tmp_path, ro, "from ._core import cobblestone\n")
    m = report.module("pkg")
    assert m is not None and m.outcome == "error", m.reason
    assert str(m.error) == (
        f"ImportError: cannot import name 'cobblestone' from 'pkg._core' "
        f"(/opt/python/pkg/_core{EXT})"
    )
    assert "a pyo3 module" in m.reason


@pytest.mark.parametrize(
    ("rodata", "why"),
    [
        (b"kept\x00gone\x00Protocol\x00", "every name is in the binary"),
        (b"other\x00", "no control: none of the other names is there either"),
        (b"kept\x00cannot initialise module strings\x00", "Cython's compressed strings"),
        (b"kept\x00LZSS string data decompression failed\x00", "Cython 3.3's LZSS strings"),
        (b"ProtocolState\x00", "a control only inside a longer identifier"),
    ],
)
def test_a_name_stays_unjudged_without_solid_evidence(
    tmp_path: Path, rodata: bytes, why: str
) -> None:
    report = _overlay(tmp_path, rodata, "from ._core import gone, kept, Protocol\n")
    m = report.module("pkg")
    assert m is not None and (m.outcome, m.confidence) == ("ok", "likely"), (why, m.reason)
    assert any("2 versions of pkg" in a.condition for a in m.assumptions)


def test_a_dunder_is_always_there(tmp_path: Path) -> None:
    # lz4 4.x's frame/__init__.py: "from ._frame import __doc__ as _doc".
    report = _overlay(tmp_path, b"kept\x00", "from ._core import kept, __doc__\n")
    m = report.module("pkg")
    assert m is not None and (m.outcome, m.confidence) == ("ok", "likely"), m.reason


def test_one_version_trusts_its_own_binary(tmp_path: Path) -> None:
    # The same import and binary from one distribution: the two sides were built together.
    files = {"pkg/__init__.py": "from ._core import gone, kept\n",
             f"pkg/_core{EXT}": _ext(b"kept\x00")}
    report = scan(tmp_path, _dist("pkg", "2.0", files), imports=("pkg",))
    m = report.module("pkg")
    assert m is not None and (m.outcome, m.confidence) == ("ok", "certain"), m.reason


# -- keywords a class of the new binary does not take -------------------------------------

_SIGNED = (
    b"_Unq(str ignore='', *, bool qs=False)\x00pkg._core._Unq.__init__\x00" + _CYTHON_MESSAGE
)


def test_a_keyword_the_embedded_signature_lacks_is_cythons_type_error(tmp_path: Path) -> None:
    # yarl 1.15's _url.py, class body: _PATH_UNQUOTER = _Unquoter(unsafe="+"), against
    # yarl 1.25's _quoting_c, re-exported through another module.
    old = ("from ._quoting import _Unq\n\n\nclass URL:\n"
           "    _PLAIN = _Unq(ignore='/')\n    _PATH = _Unq(unsafe='+')\n")
    new = {"pkg/__init__.py": "from ._url import URL\n", "pkg/_url.py": "X = 1\n",
           "pkg/_quoting.py": "try:\n    from ._core import _Unq\nexcept ImportError:\n"
                              "    _Unq = None\n",
           f"pkg/_core{EXT}": _ext(_SIGNED)}
    report = scan(tmp_path, _dist("pkg", "2.0", new), _dist("pkg", "1.0", {"pkg/_url.py": old}),
                  imports=("pkg",))
    m = report.module("pkg")
    assert m is not None and m.outcome == "error", m.reason
    assert str(m.error) == "TypeError: __init__() got an unexpected keyword argument 'unsafe'"
    assert "/opt/python/pkg/_url.py:6" in m.reason


@pytest.mark.parametrize(
    ("rodata", "body"),
    [
        (_SIGNED, "X = _Unq(ignore='/', qs=True)\n"),  # every keyword is a parameter
        (_SIGNED.replace(b"bool qs=False", b"**kw"), "X = _Unq(unsafe='+')\n"),
        (_SIGNED + b"pkg._core._Unq.__cinit__\x00", "X = _Unq(unsafe='+')\n"),
        (_SIGNED.replace(_CYTHON_MESSAGE, b""), "X = _Unq(unsafe='+')\n"),
        (_SIGNED, "class C:\n    _Unq = dict\n    X = _Unq(unsafe='+')\n"),  # class-local
        (_SIGNED, "_Unq = dict\nX = _Unq(unsafe='+')\n"),  # rebound at module level
    ],
)
def test_a_call_stays_ok_where_the_binary_does_not_decide(
    tmp_path: Path, rodata: bytes, body: str
) -> None:
    report = _overlay(tmp_path, rodata, "from ._core import _Unq\n" + body)
    m = report.module("pkg")
    assert m is not None and m.outcome == "ok", m.reason


# -- the evidence itself ---------------------------------------------------------------


def test_embedded_signature_parses_cython_and_annotation_styles() -> None:
    ro = b"\x00C(str a, b=(1, 2), /, c='x,y', *args, d: int = 0, **kw)\x00m.C.__init__\x00"
    assert embedded_signature(ro, "m", "C") == Signature(
        positional=3, keywords=frozenset({"c", "d"}), var_positional=True, var_keyword=True
    )
    assert embedded_signature(ro, "other", "C") is None  # not this module's class
    two = ro + b"C(x)\x00"
    assert embedded_signature(two, "m", "C") is None  # two texts: which one is not known


def test_cython_keyword_error_binds_like_cython() -> None:
    ro = _CYTHON_MESSAGE
    sig = Signature(positional=1, keywords=frozenset({"a", "b"}), var_positional=False,
                    var_keyword=False)
    assert cython_keyword_error(ro, sig, 1, ("b",)) is None
    assert cython_keyword_error(ro, sig, 1, ("b", "z", "y")) == (
        "__init__() got an unexpected keyword argument 'z'"
    )
    assert cython_keyword_error(ro, sig, 2, ("z",)) is None  # too many positional first
    assert cython_keyword_error(b"", sig, 0, ("z",)) is None  # not Cython's parser


def test_lacks_name_needs_a_control_and_a_whole_read() -> None:
    assert lacks_name(b"\x00kept\x00", "gone", ["kept", "gone"])
    assert not lacks_name(b"\x00kept\x00", "gone", ["gone"])
    assert not lacks_name(b"\x00kept\x00gone\x00", "gone", ["kept"])


# -- messages that name the version ---------------------------------------------------------

_VERSIONEER = '''import json

version_json = """
{
 "full-revisionid": "9315a9072b2636f75c831b4eca9f42a5f67ca2fb",
 "version": "1.24.4"
}
"""  # END VERSION_JSON


def get_versions():
    return json.loads(version_json)
'''


def test_a_versioneer_version_is_known(tmp_path: Path) -> None:
    # numpy 1.24's core/__init__.py puts numpy.version.version, which versioneer's
    # get_versions() parses from a JSON literal, into the message of the mix's failure.
    report = scan(tmp_path, {
        "python/vv/_version.py": _VERSIONEER,
        "python/vv/version.py": "from ._version import get_versions\n"
                                "vinfo = get_versions()\nversion = vinfo['version']\n"
                                "__version__ = vinfo.get('closest-tag', vinfo['version'])\n",
        "python/vv/__init__.py": "from .version import version, __version__\n"
                                 "raise ImportError('vv %s (%s) is broken' % (version, "
                                 "__version__))\n",
    }, imports=("vv",))
    vv = report.module("vv")
    assert vv is not None and str(vv.error) == "ImportError: vv 1.24.4 (1.24.4) is broken"


# -- numpy's import_array() ----------------------------------------------------------------


def test_numpys_import_array_replaces_the_error_of_numpy(tmp_path: Path) -> None:
    # numexpr's and shapely's extensions import numpy's core while they initialise, and
    # numpy's header replaces the failure with its own message (numexpr's __init__ loads
    # its extension before anything imports numpy). numpy 2.x headers name numpy._core.
    ext = build_shared_object(exports=["PyInit__ext"], undefined=["PyImport_ImportModule"],
                              rodata=b"\x00numpy._core.multiarray failed to import\x00")
    report = scan(tmp_path, {
        "python/numpy/__init__.py": "raise ImportError('numpy is broken')\n",
        "python/numpy/_core/__init__.py": "",
        "python/numpy/_core/_multiarray_umath.py": "",
        f"python/nx/_ext{EXT}": ext,
        "python/nx/__init__.py": "from . import _ext\nimport numpy\n",
        "python/ny/__init__.py": "import numpy\nfrom nx import _ext\n",
    }, imports=("nx", "ny"))
    nx, ny = report.module("nx"), report.module("ny")
    assert nx is not None
    assert str(nx.error) == "ImportError: numpy._core.multiarray failed to import"
    assert nx.confidence == "likely", nx.reason  # where import_array() runs is not in the bytes
    assert ny is not None and str(ny.error) == "ImportError: numpy is broken"  # numpy first
