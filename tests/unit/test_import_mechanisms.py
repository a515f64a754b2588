"""Import mechanisms real stacks use that once turned clean layers into false errors.

One test per mechanism, each on a synthetic layer that pins it alone (the
package it came from is named in a comment). The same stacks run against the
real CPythons 3.8-3.13 in ``test_differential_graph.py::case_import_mechanisms``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import abiscan
from abiscan.report.model import Report
from abiscan.target.profiles import custom_target
from abiscan.testing.elf_writer import build_shared_object

from helpers import SELECT_CMODULE, SELECT_PQ, selecting_package, write_zip

T311 = ".cpython-311-x86_64-linux-gnu.so"


def scan(tmp_path: Path, members: Mapping[str, bytes | str], imports: tuple[str, ...]) -> Report:
    layer = write_zip(tmp_path / "layer.zip", members)
    return abiscan.scan(
        [layer], target=custom_target("3.12", "x86_64", "2.34"), imports=list(imports)
    )


def _outcome(report: Report, name: str) -> str:
    m = report.module(name)
    assert m is not None
    return m.outcome if m.error is None else f"{m.outcome}: {m.error}"


def test_a_memoized_import_keeps_what_it_imported_in_sys_modules(tmp_path: Path) -> None:
    # sqlalchemy: "import sqlalchemy" runs a cycle from sqlalchemy.sql.a's side; a later
    # "import sqlalchemy.sql.b" finds b in sys.modules and must not run the cycle
    # again from b's side, where it fails.
    report = scan(tmp_path, {
        "python/sa/__init__.py": "from . import a\n",
        "python/sa/a.py": "X = 1\nfrom .b import Y\n",
        "python/sa/b.py": "from .a import X\nY = 2\n",
        "python/direct/__init__.py": "",
        "python/direct/a.py": "X = 1\nfrom .b import Y\n",
        "python/direct/b.py": "from .a import X\nY = 2\n",
    }, ("sa", "sa.b", "direct.b"))
    assert _outcome(report, "sa.b") == "ok"
    # The same cycle entered from b's side really fails: the rule is the order.
    assert _outcome(report, "direct.b") == (
        "error: ImportError: cannot import name 'Y' from partially initialized module "
        "'direct.b' (most likely due to a circular import) (/opt/python/direct/b.py)")


def test_a_submodule_in_sys_modules_still_fails_with_its_parent(tmp_path: Path) -> None:
    # s3fs on an overlay: "import s3fs" may fail (an undecided condition), and it imported
    # s3fs._version first; "import s3fs._version" imports s3fs again and may fail with it.
    report = scan(tmp_path, {
        f"python/_backend{T311}": build_shared_object(exports=["PyInit__backend"]),
        "python/pkg/__init__.py": "from . import sub\nimport os\n"
                                  "if os.getcwd() == '/':\n    import _backend\n",
        "python/pkg/sub.py": "X = 1\n",
    }, ("pkg", "pkg.sub"))
    assert _outcome(report, "pkg") == "unknown"
    assert _outcome(report, "pkg.sub") == "unknown"


def test_from_package_import_of_a_failing_submodule_is_cannot_import_name(
    tmp_path: Path,
) -> None:
    # multidict._compat: "try: from . import _multidict except ImportError:
    # USE_EXTENSIONS = False" while multidict/__init__.py later imports _multidict only
    # when USE_EXTENSIONS: the extension is never tried on the target.
    report = scan(tmp_path, {
        "python/md/__init__.py": "from ._compat import USE_EXT\nif not USE_EXT:\n"
                                 "    from ._py import X\nelse:\n    from ._ext import X\n",
        "python/md/_compat.py": "USE_EXT = True\ntry:\n    from . import _ext\n"
                                "except ImportError:\n    USE_EXT = False\n",
        "python/md/_py.py": "X = 1\n",
        f"python/md/_ext{T311}": build_shared_object(exports=["PyInit__ext"]),
        "python/unguarded/__init__.py": "from . import _ext\nfrom ._ext import X\n",
        f"python/unguarded/_ext{T311}": build_shared_object(exports=["PyInit__ext"]),
    }, ("md", "unguarded"))
    assert _outcome(report, "md") == "ok"
    assert _outcome(report, "unguarded") == (
        "error: ImportError: cannot import name '_ext' from partially initialized module "
        "'unguarded' (most likely due to a circular import) "
        "(/opt/python/unguarded/__init__.py)")


def test_main_is_always_importable(tmp_path: Path) -> None:
    # dill: "import __main__ as _main_module".
    report = scan(tmp_path, {"python/usesmain.py": "import __main__ as _m\nimport __main__\n"},
                  ("usesmain",))
    assert _outcome(report, "usesmain") == "ok"


def test_names_a_called_function_declares_global_are_assumed_bound(tmp_path: Path) -> None:
    # psycopg.pq's "def import_from_libpq(): global Escaping, ...", called at module
    # level, in a form the evaluator does not run (a loop): the call is taken to bind it.
    report = scan(tmp_path, {
        "python/pq/__init__.py": "Escaping: type\n"
                                 "def load():\n    global Escaping\n"
                                 "    for name in ('impl',):\n"
                                 "        module = __import__('pq.' + name)\n"
                                 "    Escaping = module.Escaping\n"
                                 "load()\n",
        "python/pq/impl.py": "class Escaping:\n    pass\n",
        "python/user.py": "from pq import Escaping\n",
        "python/lazy.py": "def init():\n    global Late\n    Late = 1\n",
        "python/user2.py": "from lazy import Late\n",
    }, ("user", "user2"))
    user = report.module("user")
    assert user is not None and user.outcome == "ok" and user.confidence == "likely"
    assert [(a.path, a.line, a.taken) for a in user.assumptions] == [
        ("/opt/python/pq/__init__.py", 7, True)]
    # Never called at import time: whether it is bound is unknown, not an error.
    assert _outcome(report, "user2") == "unknown"


def test_a_module_that_replaces_itself_in_sys_modules_has_any_name(tmp_path: Path) -> None:
    # passlib.utils.compat: a ModuleType subclass with __getattr__ put in
    # sys.modules[__name__] by a classmethod called with __name__.
    overlay = ("import sys\nfrom types import ModuleType\n"
               "class _Overlay(ModuleType):\n"
               "    @classmethod\n    def replace_module(cls, name):\n"
               "        self = cls(name)\n        sys.modules[name] = self\n"
               "    def __getattr__(self, attr):\n        if attr.startswith('__'):\n"
               "            raise AttributeError(attr)\n        return 1\n"
               "_Overlay.replace_module(__name__)\n")
    report = scan(tmp_path, {
        "python/compat.py": overlay,
        "python/user.py": "from compat import SafeConfigParser\n",
        "python/plain.py": "import sys\nX = 1\n",
        "python/user2.py": "from plain import SafeConfigParser\n",
        # Registers another module, and passes __name__ to an unrelated call.
        "python/registers.py": "import logging, sys\nlog = logging.getLogger(__name__)\n"
                               "def register(key):\n    sys.modules['reg_' + key] = sys\n",
        "python/user3.py": "from registers import SafeConfigParser\n",
    }, ("user", "user2", "user3"))
    assert _outcome(report, "user") == "ok"
    assert _outcome(report, "user2").startswith("error: ImportError: cannot import name")
    assert _outcome(report, "user3").startswith("error: ImportError: cannot import name")


def test_imports_a_called_function_starts_with_run_at_the_call(tmp_path: Path) -> None:
    # sqlalchemy.util._has_cy: "try: _import_cy_extensions() except ImportError:
    # HAS_CYEXTENSION = False", the function's body being "from ..cyextension import x".
    report = scan(tmp_path, {
        "python/sa/__init__.py": "",
        "python/sa/cy/__init__.py": "",
        f"python/sa/cy/ext{T311}": build_shared_object(exports=["PyInit_ext"]),
        "python/sa/has_cy.py": "def _import_cy():\n    '''Doc.'''\n    from .cy import ext\n"
                               "    return (ext,)\n"
                               "try:\n    _import_cy()\nexcept ImportError:\n    HAS_CY = False\n"
                               "else:\n    HAS_CY = True\n",
        "python/sa/coll.py": "from .has_cy import HAS_CY\nif not HAS_CY:\n    X = 1\n"
                             "else:\n    from .cy.ext import X\n",
        "python/sa/unguarded.py": "def load():\n    import sa.cy.ext\nload()\n",
        # Defined on each side of an if: which body runs is not followed.
        "python/sa/either.py": "import sys\nif sys.version_info < (3,):\n"
                               "    def load():\n        import sa.cy.ext\n"
                               "else:\n    def load():\n        import sa.cy\nload()\n",
    }, ("sa.coll", "sa.unguarded", "sa.either"))
    assert _outcome(report, "sa.coll") == "ok"
    assert _outcome(report, "sa.either") == "ok"
    assert _outcome(report, "sa.unguarded") == (
        "error: ModuleNotFoundError: No module named 'sa.cy.ext'")


def test_a_submodule_an_extension_registers_is_likely_there(tmp_path: Path) -> None:
    # duckdb: "from _duckdb._sqltypes import BIGINT", where _duckdb is an extension
    # module whose init calls pybind11's def_submodule("_sqltypes") (PyImport_AddModule).
    ext = build_shared_object(exports=["PyInit__ext"], undefined=["PyImport_AddModule"],
                              rodata=b"\x00_sqltypes\x00")
    plain = build_shared_object(exports=["PyInit__plain"], rodata=b"\x00_sqltypes\x00")
    report = scan(tmp_path, {
        "python/_ext.abi3.so": ext,
        "python/_plain.abi3.so": plain,
        "python/user.py": "from _ext._sqltypes import BIGINT\n",
        "python/other.py": "import _ext._absent\n",
        "python/noadd.py": "import _plain._sqltypes\n",
    }, ("user", "other", "noadd"))
    user = report.module("user")
    assert user is not None and user.outcome == "ok" and user.confidence == "likely"
    assert [a.condition for a in user.assumptions] == [
        "_ext registers '_ext._sqltypes' in sys.modules while it initialises"]
    assert _outcome(report, "other") == (
        "error: ModuleNotFoundError: No module named '_ext._absent'; '_ext' is not a package")
    assert _outcome(report, "noadd") == (
        "error: ModuleNotFoundError: No module named '_plain._sqltypes'; "
        "'_plain' is not a package")


def test_a_function_called_at_module_level_binds_its_globals(tmp_path: Path) -> None:
    # The binary package is built for CPython 3.11 (the target is 3.12), sel_c is absent:
    # the pure-Python implementation is chosen, and the dispatch on __impl__ is decided.
    report = scan(tmp_path, {
        **selecting_package(),
        f"python/sel_binary/pq{T311}": build_shared_object(exports=["PyInit_pq"]),
        f"python/sel_binary/_psycopg{T311}": build_shared_object(exports=["PyInit__psycopg"]),
    }, ("sel._cmodule", "sel.user"))
    for name in ("sel._cmodule", "sel.user"):
        m = report.module(name)
        assert m is not None and (m.outcome, m.confidence, m.assumptions) == ("ok", "certain", ())


def test_a_called_function_that_cannot_finish_binds_nothing(tmp_path: Path) -> None:
    # No implementation loads: the function raises, which abiscan leaves to the module
    # body's own run (not an error), and __impl__ stays undecided: the dispatch may fail.
    report = scan(tmp_path, {
        "python/sel/__init__.py": "",
        "python/sel/pq/__init__.py": SELECT_PQ,
        "python/sel/_cmodule.py": SELECT_CMODULE,
    }, ("sel._cmodule",))
    assert _outcome(report, "sel._cmodule") == "unknown"


def test_a_called_function_after_an_unfollowed_call_binds_nothing(tmp_path: Path) -> None:
    # The flag is set after a call abiscan does not follow, which may raise ImportError
    # (and then the except clause sets it false): what the function stored is not taken
    # for the module, and the import under the flag is not a certain error.
    report = scan(tmp_path, {
        "python/flag/__init__.py": "import helperlib\n"
                                   "def _probe():\n    global HAS_X\n    try:\n"
                                   "        helperlib.check()\n        HAS_X = True\n"
                                   "    except ImportError:\n        HAS_X = False\n"
                                   "_probe()\n"
                                   "if HAS_X:\n    from ._x import y\n",
        "python/helperlib.py": "def check():\n    for _ in ():\n        pass\n",
    }, ("flag",))
    assert _outcome(report, "flag") == "unknown"
