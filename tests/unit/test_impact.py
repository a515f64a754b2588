"""Propagation over the import graph, imports made from native code, ABI501/ABI502, explain."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

import abiscan
from abiscan.cli import main
from abiscan.elf.reader import read_facts
from abiscan.report.model import Report
from abiscan.simulate.python.native_imports import MAX_RODATA, native_imports, rodata
from abiscan.target.profiles import custom_target
from abiscan.testing.elf_writer import build_shared_object

from helpers import installed, write_zip
from native import gcc

T312 = ".cpython-312-x86_64-linux-gnu.so"
T311 = ".cpython-311-x86_64-linux-gnu.so"


def scan(tmp_path: Path, members: Mapping[str, bytes | str], python: str = "3.12",
         imports: tuple[str, ...] = ()) -> Report:
    layer = write_zip(tmp_path / "layer.zip", members)
    return abiscan.scan([layer], target=custom_target(python, "x86_64", "2.34"),
                        imports=list(imports))


def outcome(report: Report, name: str) -> tuple[str, str | None]:
    m = report.module(name)
    assert m is not None, name
    return m.outcome, (str(m.error) if m.error else None)


BACKEND_311 = {f"python/_backend{T311}": build_shared_object(exports=["PyInit__backend"])}
MNFE = "ModuleNotFoundError: No module named '_backend'"


def test_unguarded_import_of_a_broken_module_fails_with_its_chain(tmp_path: Path) -> None:
    report = scan(tmp_path, {
        **BACKEND_311,
        "python/app/__init__.py": "from .core import run\n",
        "python/app/core.py": "import json\nimport _backend\n\ndef run():\n    pass\n",
    }, imports=("app.core",))
    app = report.module("app")
    assert app is not None and (app.outcome, str(app.error)) == ("error", MNFE)
    assert app.chain == ("app", "app.core", "_backend")
    assert [(s.module, s.imports, s.line) for s in app.steps] == [
        ("app", "app.core", 1), ("app.core", "_backend", 2)]
    assert app.to_dict()["chain"] == ["app", "app.core", "_backend"]
    assert app.to_dict()["chain_steps"][1]["statement"] == "import _backend"
    (abi501,) = report.findings_for("ABI501")
    assert abi501.module == "app" and abi501.predicted_error == app.error
    assert "app -> app.core -> _backend" in abi501.message
    # Only top-level packages get ABI501; the submodule carries its chain.
    # "import app.core" imports app first, whose __init__ imports app.core (afresh).
    core = report.module("app.core")
    assert core is not None and core.chain == ("app.core", "app", "app.core", "_backend")


def test_guards_that_catch_and_guards_that_do_not(tmp_path: Path) -> None:
    report = scan(tmp_path, {
        **BACKEND_311,
        "python/ok_guard.py": "try:\n    import _backend\nexcept ImportError:\n"
                              "    _backend = None\n",
        "python/wrong_guard.py": "try:\n    import _backend\nexcept (OSError, KeyError):\n"
                                 "    pass\n",
        "python/reraise.py": "try:\n    import _backend\nexcept ImportError as e:\n"
                             "    raise RuntimeError('no backend') from e\n",
        "python/bare_reraise.py": "try:\n    import _backend\nexcept ImportError:\n    raise\n",
    })
    assert outcome(report, "ok_guard") == ("ok", None)
    assert outcome(report, "wrong_guard") == ("error", MNFE)
    assert outcome(report, "reraise") == ("error", "RuntimeError: no backend")
    assert outcome(report, "bare_reraise") == ("error", MNFE)


def test_imports_that_never_run(tmp_path: Path) -> None:
    report = scan(tmp_path, {
        **BACKEND_311,
        "python/lazy.py": "def f():\n    import _backend\n",
        "python/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                           "    import _backend\n",
        "python/old_only.py": "import sys\nif sys.version_info < (3, 8):\n    import _backend\n",
    })
    for name in ("lazy", "typed", "old_only"):
        assert outcome(report, name) == ("ok", None), name


def test_an_undecidable_condition_makes_the_outcome_unknown(tmp_path: Path) -> None:
    report = scan(tmp_path, {
        **BACKEND_311,
        "python/maybe.py": "import os\nif os.path.exists('/etc/fast'):\n    import _backend\n",
    })
    m = report.module("maybe")
    assert m is not None and m.outcome == "unknown" and m.confidence == "possible"
    assert "if os.path.exists('/etc/fast')" in m.reason and m.chain == ("maybe", "_backend")
    assert not report.findings_for("ABI501")


def test_an_environment_switch_is_taken_as_unset_and_says_so(tmp_path: Path) -> None:
    report = scan(tmp_path, {
        **BACKEND_311,
        "python/maybe.py": "import os\nif os.environ.get('FAST'):\n    import _backend\n",
    })
    m = report.module("maybe")
    assert m is not None and (m.outcome, m.confidence) == ("ok", "likely")
    (assumed,) = m.assumptions
    assert (assumed.line, assumed.taken) == (2, False)
    assert "FAST is not set" in assumed.why


def test_flags_assigned_in_try_blocks_decide_later_ifs(tmp_path: Path) -> None:
    # requests' compat module: the flag says which module the except clause fell back to.
    report = scan(tmp_path, {
        **BACKEND_311,
        "python/compat.py": "has_backend = False\ntry:\n    import _backend\n"
                            "    has_backend = True\nexcept ImportError:\n    import json\n"
                            "if has_backend:\n    from _backend import fast\nelse:\n"
                            "    from json import loads\n",
        "python/negated.py": "ok = True\ntry:\n    import _backend\nexcept ImportError:\n"
                             "    ok = False\nif not ok:\n    import _backend\n",
    })
    assert outcome(report, "compat") == ("ok", None)
    assert outcome(report, "negated") == ("error", MNFE)


def test_circular_imports_terminate_and_fail_where_cpython_does(tmp_path: Path) -> None:
    ring = {f"python/r{i}.py": f"import r{(i + 1) % 30}\n" for i in range(30)}
    report = scan(tmp_path, {
        **BACKEND_311, **ring,
        "python/ca.py": "import cb\nX = 1\n",
        "python/cb.py": "import ca\nimport _backend\n",
        "python/cyc/__init__.py": "from . import a\n",
        "python/cyc/a.py": "from cyc import nothing\n",
    })
    assert all(outcome(report, f"r{i}") == ("ok", None) for i in range(30))
    assert outcome(report, "ca") == ("error", MNFE)
    assert report.module("ca").chain == ("ca", "cb", "_backend")  # type: ignore[union-attr]
    assert outcome(report, "cyc") == ("error", (
        "ImportError: cannot import name 'nothing' from partially initialized module 'cyc' "
        "(most likely due to a circular import) (/opt/python/cyc/__init__.py)"))


def test_parents_first_and_from_import_of_a_missing_name(tmp_path: Path) -> None:
    report = scan(tmp_path, {
        **BACKEND_311,
        "python/pkg/__init__.py": "import _backend\n",
        "python/pkg/sub.py": "X = 1\n",
        "python/mod.py": "X = 1\n",
        "python/user.py": "from mod import Y\n",
        "python/fine.py": "from mod import X\nfrom pkg2 import sub2\n",
        "python/pkg2/__init__.py": "",
        "python/pkg2/sub2.py": "",
    }, imports=("pkg.sub",))
    sub = report.module("pkg.sub")
    assert sub is not None and str(sub.error) == MNFE
    assert sub.chain == ("pkg.sub", "pkg", "_backend") and sub.steps[0].how == "parent"
    assert outcome(report, "user") == ("error", (
        "ImportError: cannot import name 'Y' from 'mod' (/opt/python/mod.py)"))
    assert outcome(report, "fine") == ("ok", None)


def test_stdlib_and_runtime_imports_are_the_targets_own(tmp_path: Path) -> None:
    members = {"python/uses.py": "import os.path, json, asyncio\nimport tomllib\n"}
    assert outcome(scan(tmp_path, members, "3.12"), "uses") == ("ok", None)
    assert outcome(scan(tmp_path, members, "3.10"), "uses") == (
        "error", "ModuleNotFoundError: No module named 'tomllib'")
    layer = write_zip(tmp_path / "b.zip", {"python/aws.py": "import boto3, botocore.session\n"})
    report = abiscan.scan([layer], runtime="python3.12")
    assert outcome(report, "aws") == ("ok", None)


def test_syntax_newer_than_the_target(tmp_path: Path) -> None:
    members = {"python/new.py": "match 1:\n    case 1:\n        pass\n",
               "python/uses_new.py": "try:\n    import new\nexcept ImportError:\n    pass\n"}
    report = scan(tmp_path, members, "3.9")
    assert outcome(report, "new") == ("error", "SyntaxError: invalid syntax (new.py, line 1)")
    # A SyntaxError is not an ImportError: the guard does not catch it.
    assert outcome(report, "uses_new") == ("error",
                                           "SyntaxError: invalid syntax (new.py, line 1)")
    assert outcome(scan(tmp_path, members, "3.10"), "uses_new") == ("ok", None)


def test_import_hooks_and_extended_paths(tmp_path: Path) -> None:
    report = scan(tmp_path, {
        "python/_hack/__init__.py":
            "import sys\nclass F:\n    def find_spec(self, name, path, target=None):\n"
            "        return None if name != 'distutils' else None\n"
            "sys.meta_path.insert(0, F())\n",
        "python/tool.py": "import _hack\nimport distutils.core\n",
        "python/plain.py": "import distutils.core\n",
        "python/ns/__init__.py": "__path__ = __import__('pkgutil').extend_path(__path__, "
                                 "__name__)\n",
        "python/lib/python3.12/site-packages/ns/other.py": "",
        "python/uses_ns.py": "import ns.other\n",
    })
    assert report.module("tool").outcome == "unknown"  # type: ignore[union-attr]
    assert outcome(report, "plain") == ("error",
                                        "ModuleNotFoundError: No module named 'distutils'")
    assert outcome(report, "uses_ns") == ("ok", None)


# -- native code ----------------------------------------------------------------

_PYO3_LIKE = r"""
extern void *PyImport_ImportModule(const char *);
extern void *PyModule_Create2(void *, int);
/* What a pyo3 extension with an embedded cffi module has in .rodata. */
const char *pyo3_marks[] = {
    "pyo3_runtime.PanicException",
    "/github/home/.cargo/registry/src/index.crates.io/pyo3-0.18.3/src/err/mod.rs",
    "_init_cffi_1_0_external_module",
};
void *PyInit__rust(void) { return PyImport_ImportModule("_cffi_backend"); }
"""

_C_IMPORTER = r"""
extern void *PyImport_ImportModule(const char *);
void *PyInit_cimp(void) { return PyImport_ImportModule("okdep"); }
"""


def _compile(tmp: Path, name: str, source: str) -> bytes:
    src = tmp / f"{name}.c"
    src.write_text(source)
    out = tmp / f"{name}.so"
    subprocess.run([gcc(), "-shared", "-fPIC", "-O2", str(src), "-o", str(out)], check=True,
                   capture_output=True)
    return out.read_bytes()


@pytest.fixture(scope="module")
def pyo3_like(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _compile(tmp_path_factory.mktemp("pyo3"), "rust", _PYO3_LIKE)


def _incident(pyo3_like: bytes, crypto_version: str | None) -> dict[str, bytes | str]:
    files: dict[str, bytes | str] = {
        "cryptography/__init__.py": "",
        "cryptography/hazmat/__init__.py": "",
        "cryptography/hazmat/bindings/__init__.py": "",
        "cryptography/hazmat/bindings/_rust.abi3.so": pyo3_like,
        "cryptography/hazmat/primitives/__init__.py": "",
        "cryptography/hazmat/primitives/hashes.py":
            "from cryptography.hazmat.bindings._rust import openssl\n",
    }
    members: dict[str, bytes | str] = {
        f"python/_cffi_backend{T311}": build_shared_object(exports=["PyInit__cffi_backend"]),
        "python/pymysql/__init__.py": "from . import connections\n",
        "python/pymysql/connections.py": "try:\n    from cryptography.hazmat.primitives "
                                         "import hashes\nexcept ImportError:\n"
                                         "    hashes = None\n",
    }
    if crypto_version is None:
        members.update({f"python/{k}": v for k, v in files.items()})
    else:
        members.update(installed("cryptography", crypto_version, files,
                                 tags=("cp37-abi3-manylinux_2_17_x86_64",)))
    return members


def test_pyo3_panic_goes_through_except_importerror(tmp_path: Path, pyo3_like: bytes) -> None:
    report = scan(tmp_path, _incident(pyo3_like, "41.0.7"))
    pymysql = report.module("pymysql")
    assert pymysql is not None and pymysql.outcome == "error"
    assert str(pymysql.error) == "pyo3_runtime.PanicException: Python API call failed"
    assert pymysql.chain == (
        "pymysql", "pymysql.connections", "cryptography.hazmat.primitives.hashes",
        "cryptography.hazmat.bindings._rust", "_cffi_backend")
    assert pymysql.steps[-1].how == "native"
    (abi502,) = report.findings_for("ABI502")
    assert abi502.module == "pymysql.connections" and abi502.confidence.value == "certain"
    assert "except ImportError" in abi502.message
    (abi501,) = report.findings_for("ABI501")
    assert abi501.module == "pymysql" and abi501.confidence.value == "certain"


def test_fixed_cryptography_raises_what_the_guard_catches(tmp_path: Path,
                                                         pyo3_like: bytes) -> None:
    report = scan(tmp_path, _incident(pyo3_like, "43.0.0"))
    assert outcome(report, "pymysql") == ("ok", None)
    assert outcome(report, "cryptography.hazmat.bindings._rust") == (
        "error", "ModuleNotFoundError: No module named '_cffi_backend'")
    assert not report.findings_for("ABI502")


def test_unknown_owner_is_likely(tmp_path: Path, pyo3_like: bytes) -> None:
    report = scan(tmp_path, _incident(pyo3_like, None))
    (abi502,) = report.findings_for("ABI502")
    assert abi502.confidence.value == "likely"
    assert outcome(scan(tmp_path, _incident(pyo3_like, None), "3.11"), "pymysql") == ("ok", None)


def test_native_facts(tmp_path: Path, pyo3_like: bytes) -> None:
    facts = native_imports("pkg._rust", "/x/_rust.abi3.so", pyo3_like, read_facts(pyo3_like),
                           lambda name: name == "_cffi_backend", ("cryptography", "42.0.5"))
    assert facts.kinds == ("pyo3", "cffi") and facts.pyo3_version == "0.18.3"
    (edge,) = facts.imports
    assert (edge.imports, edge.confidence, edge.panics, edge.at_init) == (
        "_cffi_backend", "certain", True, True)
    c_ext = _compile(tmp_path, "cimp", _C_IMPORTER)
    facts = native_imports("cimp", "/x/cimp.so", c_ext, read_facts(c_ext),
                           lambda name: name == "okdep")
    # The bytes do not show when a plain C extension imports "okdep": possible, never an edge.
    assert [(i.imports, i.confidence, i.panics, i.at_init) for i in facts.imports] == [
        ("okdep", "possible", False, False)]
    assert facts.kinds == ("c-import",)
    assert native_imports("cimp", "/x/cimp.so", c_ext, read_facts(c_ext),
                          lambda name: False).imports == ()


def test_rodata_is_bounded_and_empty_without_a_section() -> None:
    plain = build_shared_object(exports=["PyInit_x"])
    assert rodata(plain) == b""
    assert rodata(b"not an elf file") == b""
    assert MAX_RODATA <= 64 << 20


# -- the CLI -----------------------------------------------------------------------


def test_explain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layer = write_zip(tmp_path / "layer.zip", {
        **BACKEND_311,
        "python/app/__init__.py": "from . import core\n",
        "python/app/core.py": "try:\n    import _backend\nexcept (OSError,):\n    pass\n",
    })
    assert main(["explain", "app", str(layer), "--runtime", "python3.12"]) == 1
    out = capsys.readouterr().out
    assert "import app: error\n  " + MNFE in out
    assert "  app.core  /opt/python/app/core.py:2\n      import _backend\n" \
           "      inside except (OSError,): (line 3), which does not catch " \
           "ModuleNotFoundError" in out
    assert "findings on this chain:\n  ABI101" in out
    assert main(["explain", "app", str(layer), "--runtime", "python3.12",
                 "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["schema_version"] == "1.1" and data["name"] == "app"
    assert data["module"]["chain"] == ["app", "app.core", "_backend"]
    assert "ABI101" in {f["code"] for f in data["findings"]}
    assert {f["module"] for f in data["findings"]} <= set(data["module"]["chain"])
    assert main(["explain", "json", str(layer), "--runtime", "python3.12"]) == 0
    assert "import json: ok" in capsys.readouterr().out
    assert main(["explain", "not a name", str(layer)]) == 2
    assert main(["explain", "app"]) == 2


def test_text_output_leads_with_failing_top_level_imports(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    layer = write_zip(tmp_path / "layer.zip", {
        **BACKEND_311, "python/app/__init__.py": "import _backend\n"})
    assert main(["scan", str(layer), "--runtime", "python3.12"]) == 1
    out = capsys.readouterr().out
    head = out.split("\n\n")[1]
    assert head == (f"import app: {MNFE}\n  app -> _backend\n"
                    f"import _backend: {MNFE}")
