"""The evaluator of import-time code: one test per rule, then the calibrated outcome.

The expression rules are checked on :class:`Evaluator` directly; the statement
rules (loops, try flags, consistency checks, parents first) through a scan of
a synthetic layer. ``test_differential_graph.py::case_evaluated_conditions``
checks the same rules against the real CPythons 3.8-3.13.
"""

from __future__ import annotations

import ast
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import abiscan
from abiscan.cli import main
from abiscan.report.model import Report
from abiscan.simulate.python.evaluator import (
    MISSING,
    UNKNOWN,
    EvalRaise,
    Evaluator,
    ExcValue,
    ModuleRef,
    Namespace,
    Opaque,
    Probe,
    TargetFacts,
    Unordered,
    truth,
)
from abiscan.target.profiles import custom_target
from abiscan.testing.dists import installed
from abiscan.testing.elf_writer import build_shared_object

from helpers import write_zip

T311 = ".cpython-311-x86_64-linux-gnu.so"
BACKEND_311 = {f"python/_backend{T311}": build_shared_object(exports=["PyInit__backend"])}


class _Other:
    """Another module of the stack: ``other.VERSION`` is "1.0"; nothing else is bound."""

    def attribute(self, module: str, name: str) -> Any:
        if module == "other":
            return {"VERSION": "1.0", "WINDOWS": False}.get(name, MISSING)
        return UNKNOWN

    def import_module(self, name: str) -> ModuleRef:
        return ModuleRef(name)

    def listdir(self, path: str) -> list[str] | None:
        # A package directory of the stack; its entries in the order of its file system.
        return {"/opt/python/pkg": ["b.py", "_umath.so", "__init__.py", "_umath.py"],
                "/opt/python": ["pkg"]}.get(path)


def ev(source: str, values: Mapping[str, Any] | None = None, *,
       version: tuple[int, int] = (3, 12), machine: str = "x86_64") -> Any:
    ns = Namespace("pkg.mod", dict(values or {}))
    ns.values.setdefault("sys", ModuleRef("sys"))
    ns.values.setdefault("os", ModuleRef("os"))
    ns.values.setdefault("platform", ModuleRef("platform"))
    ns.values.setdefault("struct", ModuleRef("struct"))
    ns.values.setdefault("other", ModuleRef("other"))
    facts = TargetFacts(version, machine, 8 if machine.endswith("64") else 4)
    return Evaluator(ns, facts, _Other()).eval(ast.parse(source, mode="eval").body)


# -- what the target fixes -------------------------------------------------------


@pytest.mark.parametrize(("source", "value"), [
    ("sys.version_info >= (3, 12)", True),
    ("sys.version_info < (3, 8)", False),
    ("sys.version_info[:2] == (3, 12)", True),
    ("sys.version_info.minor", 12),
    ("sys.version_info > (3, 12)", True),  # (3, 12, micro, ...) is longer, so greater
    ("sys.version_info == (3, 12)", False),  # a 5-tuple never equals a pair
    ("sys.platform", "linux"),
    ("os.name", "posix"),
    ("os.sep", "/"),
    ("sys.byteorder", "little"),
    ("sys.maxsize > 2**32", True),
    ("sys.implementation.name", "cpython"),
    ("sys.implementation.cache_tag", "cpython-312"),
    ("hasattr(sys, 'pypy_version_info')", False),
    ("getattr(sys, 'pypy_version_info', None) is None", True),
    # A fresh interpreter's hook is the builtin (exceptiongroup, anyio test it).
    ("getattr(sys.excepthook, '__name__', None) in ('apport_excepthook',)", False),
    ("sys.excepthook.__name__", "excepthook"),
    ("platform.system()", "Linux"),
    ("platform.machine()", "x86_64"),
    ("platform.python_implementation() in ('PyPy',)", False),
    ("struct.calcsize('P')", 8),
])
def test_target_fixed_values(source: str, value: Any) -> None:
    assert ev(source) == value or (value is UNKNOWN and ev(source) is UNKNOWN)


def test_an_undecided_micro_version_stays_unknown() -> None:
    assert ev("sys.version_info >= (3, 12, 4)") is UNKNOWN
    assert ev("platform.machine()", machine="aarch64") == "aarch64"


def test_type_checking_is_false() -> None:
    assert ev("typing.TYPE_CHECKING", {"typing": ModuleRef("typing")}) is False


# -- names bound so far ------------------------------------------------------------


def test_globals_membership_follows_the_bindings_so_far() -> None:
    assert ev("'_is_loaded' in globals()") is False
    assert ev("'_is_loaded' in globals()", {"_is_loaded": True}) is True
    assert ev("'__name__' in globals()") is True


def test_an_unbound_name_raises_name_error_unless_it_may_be_bound_elsewhere() -> None:
    with pytest.raises(EvalRaise, match="name '__SETUP__' is not defined"):
        ev("__SETUP__")
    ns = Namespace("m", declared=frozenset({"__SETUP__"}))
    assert Evaluator(ns, TargetFacts((3, 12)), _Other()).eval(
        ast.parse("__SETUP__", mode="eval").body) is UNKNOWN


# -- other modules, by value -------------------------------------------------------


def test_attributes_of_other_modules() -> None:
    assert ev("other.VERSION") == "1.0"
    assert ev("getattr(other, 'MISSING_NAME', 'dflt')") == "dflt"
    assert ev("getattr(other, 'VERSION', None)") == "1.0"
    assert ev("hasattr(other, 'WINDOWS')") is True
    assert ev("hasattr(other, 'MACOS')") is False
    assert ev("not other.WINDOWS") is True


def test_attributes_of_untracked_objects_stay_unknown() -> None:
    assert ev("getattr(sys.stdout, 'name', None) in ('a', 'b')") is UNKNOWN
    assert ev("getattr(core, 'PILLOW_VERSION', None)", {"core": UNKNOWN}) is UNKNOWN


# -- containers and strings ----------------------------------------------------------


def test_containers_built_then_tested() -> None:
    assert ev("bool(xs)", {"xs": []}) is False
    assert ev("len(xs) == 2 and 'b' in xs", {"xs": ["a", "b"]}) is True
    assert truth(ev("xs or None", {"xs": []})) is False


def test_messages_built_from_known_parts() -> None:
    e = ExcValue("ImportError", "No module named 'numpy'")
    assert ev("f'{d}: {e}'", {"d": "numpy", "e": e}) == "numpy: No module named 'numpy'"
    assert ev("'a %s %d' % ('b', 3)") == "a b 3"
    assert ev("'{} and {x}'.format(1, x='y')") == "1 and y"
    assert ev("'x' + '\\n'.join(parts)", {"parts": ["a", "b"]}) == "xa\nb"
    assert ev("f'{v!r} in {p}'", {"v": "1.0", "p": "/x"}) == "'1.0' in /x"
    assert ev("str(e)", {"e": e}) == "No module named 'numpy'"


def test_unknown_parts_make_the_whole_unknown() -> None:
    assert ev("f'{x} y'", {"x": UNKNOWN}) is UNKNOWN
    assert ev("'a' * 10**9") is UNKNOWN  # never built


def test_boolean_operators_short_circuit() -> None:
    assert ev("False and undefined_name") is False
    assert truth(ev("x or True", {"x": UNKNOWN})) is True
    assert truth(ev("x and False", {"x": UNKNOWN})) is False  # falsy either way
    assert ev("x and True", {"x": UNKNOWN}) is UNKNOWN


def test_environment_reads_are_taken_as_unset_and_reported() -> None:
    ns = Namespace("m", {"os": ModuleRef("os")})
    e = Evaluator(ns, TargetFacts((3, 12)), _Other())
    assert e.eval(ast.parse("os.environ.get('POLICY', 'default')", mode="eval").body) == \
        "default"
    assert e.used == ["the environment variable POLICY is not set"]


def test_variables_lambda_sets_are_set_with_an_unknown_value() -> None:
    ns = Namespace("m", {"os": ModuleRef("os")})
    e = Evaluator(ns, TargetFacts((3, 12)), _Other())
    for source, value in [("os.getenv('AWS_REGION', 'us-east-1')", UNKNOWN),
                          ("os.environ.get('LAMBDA_TASK_ROOT')", UNKNOWN),
                          ("'AWS_LAMBDA_FUNCTION_NAME' in os.environ", True),
                          ("'SYMPY_USE_CACHE' not in os.environ", True)]:
        e.used = []
        got = e.eval(ast.parse(source, mode="eval").body)
        assert got == value or (value is UNKNOWN and got is UNKNOWN), source
    assert e.used == ["the environment variable SYMPY_USE_CACHE is not set"]


def test_a_call_given_a_module_name_is_a_probe() -> None:
    value = ev("f('numexpr', errors='warn') is not None", {"f": Opaque("function")})
    assert value == Probe("numexpr", True, True) and truth(value) is None


def test_a_caught_exception_by_type_and_module_name() -> None:
    found = ExcValue("ModuleNotFoundError", "No module named 'pkg.x'", name="pkg.x")
    raised = ExcValue("ImportError", "built at run time", name=None)
    assert ev("isinstance(e, ModuleNotFoundError) and e.name == 'pkg.x'", {"e": found}) is True
    assert ev("isinstance(e, ModuleNotFoundError)", {"e": raised}) is False
    assert ev("isinstance(e, (KeyError, ImportError))", {"e": found}) is True
    assert ev("e.name", {"e": raised}) is None
    assert ev("isinstance(e, ImportError)", {"e": ExcValue("pkg.Error", "x")}) is UNKNOWN
    assert ev("isinstance(e, Custom)", {"e": raised, "Custom": Opaque("class")}) is UNKNOWN


def test_the_executable_is_what_the_target_says_or_unknown() -> None:
    ns = Namespace("m", {"sys": ModuleRef("sys")})
    node = ast.parse("sys.executable", mode="eval").body
    lam = TargetFacts((3, 12), executable="/var/lang/bin/python3.12")
    assert Evaluator(ns, lam, _Other()).eval(node) == "/var/lang/bin/python3.12"
    assert Evaluator(ns, TargetFacts((3, 12)), _Other()).eval(node) is UNKNOWN


def test_directory_listings_have_known_entries_and_no_known_order() -> None:
    one = "[f for f in os.listdir('/opt/python/pkg') if f.endswith('.so')]"
    assert ev(one) == ["_umath.so"]
    two = "[f for f in os.listdir('/opt/python/pkg') if f.startswith('_umath')]"
    assert ev(two) == Unordered(("_umath.so", "_umath.py"))
    assert ev(f"sorted({two})") == ["_umath.py", "_umath.so"]
    assert ev(f"len({two})") == 2
    assert ev(f"', '.join({two})") is UNKNOWN  # the order is the file system's
    assert ev("os.listdir('pkg')") is UNKNOWN  # relative to an unknown directory
    assert ev("os.listdir('/etc')") is UNKNOWN  # not the stack's
    assert ev("[x for x in y]", {"y": UNKNOWN}) is UNKNOWN
    assert ev("[x * 2 for x in (1, 2)]", {"x": "kept"}) == [2, 4]


def test_a_list_grown_with_unknown_items_keeps_its_length() -> None:
    xs: list[Any] = []
    assert ev("xs.append(v)", {"xs": xs, "v": UNKNOWN}) is None
    assert len(xs) == 1 and truth(ev("xs", {"xs": xs})) is True
    assert ev("'\\n'.join(xs)", {"xs": xs}) is UNKNOWN


def test_paths_of_the_layers_are_tested_on_the_stack() -> None:
    assert ev("os.path.join(os.path.dirname('/opt/python/pkg/__init__.py'), '..', 'setup.py')") \
        == "/opt/python/pkg/../setup.py"
    assert ev("os.path.exists('/opt/python/pkg/../setup.py')") is False
    assert ev("os.path.exists('/opt/python/pkg/b.py')") is True
    assert ev("os.path.isdir('/opt/python/pkg')") is True
    assert ev("os.path.isfile('/opt/python/pkg')") is False
    assert ev("os.path.exists('/etc/os-release')") is UNKNOWN  # the target's system decides


def test_percent_formats_an_exception_as_its_message() -> None:
    e = ExcValue("ImportError", "No module named 'x'")
    assert ev("'Python%d.%d: %s' % (3, 12, e)", {"e": e}) == "Python3.12: No module named 'x'"
    assert ev("'was: %s' % e", {"e": e}) == "was: No module named 'x'"
    assert ev("'was: %r' % (e,)", {"e": e}) is UNKNOWN  # repr is not the message


# -- statements, through a scan ---------------------------------------------------------


def scan(tmp_path: Path, members: Mapping[str, bytes | str],
         imports: tuple[str, ...] = ()) -> Report:
    layer = write_zip(tmp_path / "layer.zip", members)
    return abiscan.scan([layer], target=custom_target("3.12", "x86_64", "2.34"),
                        imports=list(imports))


def test_loop_with_try_import_append_then_raise(tmp_path: Path) -> None:
    report = scan(tmp_path, {**BACKEND_311, "python/okdep.py": "", "python/pd.py": (
        "_hard = ('okdep', '_backend')\n_missing = []\nfor _d in _hard:\n    try:\n"
        "        __import__(_d)\n    except ImportError as _e:\n"
        "        _missing.append(f'{_d}: {_e}')\nif _missing:\n    raise ImportError(\n"
        "        'Unable to import required dependencies:\\n' + '\\n'.join(_missing))\n")})
    pd = report.module("pd")
    assert pd is not None and pd.outcome == "error" and pd.confidence == "certain"
    assert pd.error is not None and pd.error.message == (
        "Unable to import required dependencies:\n_backend: No module named '_backend'")


def test_flags_set_in_try_blocks_reach_other_modules(tmp_path: Path) -> None:
    report = scan(tmp_path, {
        **BACKEND_311,
        "python/flagpkg/__init__.py": "try:\n    from _backend import *\n    __with_c__ = True\n"
                                      "except ImportError:\n    __with_c__ = False\n",
        "python/shim.py": "import flagpkg\nif not getattr(flagpkg, '__with_c__', False):\n"
                          "    exc = ModuleNotFoundError\n"
                          "    raise exc(\"No module named 'shim'\")\n",
    })
    shim = report.module("shim")
    assert shim is not None and str(shim.error) == "ModuleNotFoundError: No module named 'shim'"


@pytest.mark.skipif(not hasattr(ast, "TypeAlias"), reason="type statements need a 3.12+ host")
def test_a_type_statement_binds_its_name(tmp_path: Path) -> None:
    # numpy 2.x: `type _AnyShape = tuple[Any, ...]` in numpy/_typing/_shape.py, imported
    # by name from numpy._typing; CPython 3.12 binds it (a TypeAliasType, value lazy).
    report = scan(tmp_path, {
        "python/shapes.py": "from typing import Any\ntype _AnyShape = tuple[Any, ...]\n"
                            "type _Lazy = undefined_name\n",
        "python/user.py": "from shapes import _AnyShape, _Lazy\n",
    })
    user = report.module("user")
    assert user is not None and user.outcome == "ok", user


def test_a_message_with_unknown_parts_keeps_the_known_text(tmp_path: Path) -> None:
    report = scan(tmp_path, {"python/partial.py": (
        "import os\nraise ImportError(f'built for {os.getcwd()}; reinstall')\n")})
    m = report.module("partial")
    assert m is not None and m.error is not None
    assert m.error.message == "built for ...; reinstall"


def _dist(name: str, files: Mapping[str, str]) -> dict[str, str]:
    return installed(name, files)


_CHECKED = {
    "checked/__init__.py": "from . import _core as core\n__version__ = '1.0'\n"
                           "if __version__ != getattr(core, 'VERSION', None):\n"
                           "    msg = 'built for another version'\n    raise ImportError(msg)\n",
    "checked/_core.py": "import os\nVERSION = os.getcwd()\n",
}


def test_a_consistency_check_in_an_intact_distribution_is_assumed_not_to_fire(
        tmp_path: Path) -> None:
    report = scan(tmp_path, _dist("checked", _CHECKED))
    m = report.module("checked")
    assert m is not None and (m.outcome, m.confidence) == ("ok", "likely")
    (assumed,) = m.assumptions
    assert (assumed.path, assumed.line, assumed.taken) == ("/opt/python/checked/__init__.py",
                                                           3, False)
    assert "consistency check" in assumed.why and "checked 1.0" in assumed.why


def test_without_an_intact_record_the_check_stays_unknown(tmp_path: Path) -> None:
    members = _dist("checked", _CHECKED)
    members["python/checked/_core.py"] += "# edited after install\n"
    m = scan(tmp_path, members).module("checked")
    assert m is not None and (m.outcome, m.confidence) == ("unknown", "possible")
    assert "which abiscan cannot decide" in m.reason and not m.assumptions


def test_the_parents_error_comes_first(tmp_path: Path) -> None:
    report = scan(tmp_path, {
        **BACKEND_311,
        "python/pkg/__init__.py": "import _backend\n",
        f"python/pkg/_sub{T311}": build_shared_object(exports=["PyInit__sub"]),
    }, imports=("pkg._sub",))
    sub = report.module("pkg._sub")
    assert sub is not None and str(sub.error) == "ModuleNotFoundError: No module named '_backend'"
    assert sub.chain == ("pkg._sub", "pkg", "_backend")


def test_confidence_and_assumptions_in_json_text_and_explain(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layer = write_zip(tmp_path / "layer.zip", _dist("checked", _CHECKED))
    assert main(["scan", str(layer), "--runtime", "python3.12", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema_version"] == "1.1"
    m = next(m for m in doc["modules"] if m["name"] == "checked")
    assert m["confidence"] == "likely" and m["assumptions"][0]["taken"] is False
    assert main(["scan", str(layer), "--runtime", "python3.12", "-vv"]) == 0
    text = capsys.readouterr().out
    assert "[likely, 1 assumption (abiscan explain checked)]" in text
    assert main(["explain", "checked", str(layer), "--runtime", "python3.12"]) == 0
    explained = capsys.readouterr().out
    assert "import checked: ok (likely)" in explained
    assert "-> taken as false" in explained and "/opt/python/checked/__init__.py:3" in explained


def test_module_dunders_are_always_importable_names(tmp_path: Path) -> None:
    # python-dateutil's tz/__init__.py: "from .tz import __doc__".
    report = scan(tmp_path, {"python/dtz/__init__.py": "from .tz import __doc__\n",
                             "python/dtz/tz.py": "X = 1\n"})
    m = report.module("dtz")
    assert m is not None and m.outcome == "ok", m.reason


def test_names_an_import_hook_registers_are_served(tmp_path: Path) -> None:
    # six: the module installs a sys.meta_path finder that serves "six.moves".
    hooked = ("import sys\nclass _Importer:\n    def find_spec(self, name, path, target=None):\n"
              "        return None\n_importer = _Importer()\n_known = ['moves']\n"
              "sys.meta_path.append(_importer)\n")
    report = scan(tmp_path, {"python/sixish.py": hooked,
                             "python/user.py": "from sixish.moves import urllib\n",
                             "python/other.py": "import sixish.elsewhere\n"})
    user, other = report.module("user"), report.module("other")
    assert user is not None and user.outcome == "ok", user.reason
    assert other is not None and other.outcome == "unknown"


def test_names_an_import_hook_registers_by_concatenation_are_served(tmp_path: Path) -> None:
    # six (vendored in urllib3 1.x): MovedModule("http_client", ...), registered under
    # "moves." + attr.name; requests imports urllib3.packages.six.moves.http_client.
    hooked = ("import sys\nclass _Importer:\n    def find_spec(self, name, path, target=None):\n"
              "        return None\n_importer = _Importer()\n_moved = ['http_client']\n"
              "for attr in _moved:\n    _importer.known = 'moves.' + attr\n"
              "sys.meta_path.append(_importer)\n")
    report = scan(tmp_path, {"python/sixish.py": hooked,
                             "python/user.py": "from sixish.moves.http_client import X\n",
                             "python/other.py": "import sixish.moves.elsewhere\n"})
    user, other = report.module("user"), report.module("other")
    assert user is not None and user.outcome == "ok", user.reason
    assert other is not None and other.outcome == "unknown"


def test_from_import_of_a_namespace_package_without_the_name(tmp_path: Path) -> None:
    # pydantic_core on another Python: the cp312 .so is never tried, and the directory
    # next to it becomes a namespace package with no such name.
    report = scan(tmp_path, {
        "python/core/__init__.py": "from ._native import ArgsKwargs\n",
        f"python/core/_native{T311}": build_shared_object(exports=["PyInit__native"]),
        "python/core/_native/stub.pyi": "",
    })
    m = report.module("core")
    assert m is not None and str(m.error) == (
        "ImportError: cannot import name 'ArgsKwargs' from 'core._native' (unknown location)")


def test_a_parent_that_may_fail_first_makes_the_childs_error_likely(tmp_path: Path) -> None:
    report = scan(tmp_path, {
        **BACKEND_311,
        "python/pkg/__init__.py": "import os\nif os.path.exists('/x'):\n    import _backend\n",
    }, imports=("pkg.missing",))
    m = report.module("pkg.missing")
    assert m is not None and m.outcome == "error" and m.confidence == "likely"
    assert str(m.error) == "ModuleNotFoundError: No module named 'pkg.missing'"
    assert "unless its parent fails first" in m.reason


def test_a_very_deep_expression_is_unknown_not_a_crash(tmp_path: Path) -> None:
    deep = " + ".join(["'a'"] * 900)  # parses; deeper than the evaluator recurses
    report = scan(tmp_path, {"python/deep.py": f"X = {deep}\nif X:\n    pass\n"})
    m = report.module("deep")
    assert m is not None and m.outcome == "ok"


def test_an_unbound_name_is_a_name_error_only_where_the_code_expects_one(
        tmp_path: Path) -> None:
    # gettext.install() puts "_" into builtins from another module: not an error here.
    report = scan(tmp_path, {
        **BACKEND_311,
        "python/gt.py": "TITLE = _('title')\n",
        "python/idiom.py": "try:\n    __SETUP__\nexcept NameError:\n    __SETUP__ = False\n"
                           "if __SETUP__:\n    import _backend\n",
    })
    gt, idiom = report.module("gt"), report.module("idiom")
    assert gt is not None and gt.outcome == "ok"
    assert idiom is not None and (idiom.outcome, idiom.confidence) == ("ok", "certain")


# -- optional dependencies: a feature check whose other side imports one that is absent ----


def _feature(requires: str = "", source: str = "") -> dict[str, str]:
    """``feat``, whose ``if`` abiscan cannot decide imports ``absentdep`` (not in the stack)."""
    source = source or ("import os\nHAVE = os.path.isdir('/usr/share/absentdep')\n"
                        "if HAVE:\n    from feat._fast import speedup\n")
    members = _dist("feat", {"feat/__init__.py": source,
                             "feat/_fast.py": "import absentdep\nspeedup = absentdep.f\n"})
    meta = "python/feat-1.0.dist-info/METADATA"
    members[meta] += "".join(f"Requires-Dist: {r}\n" for r in requires.split(";;") if r)
    return members


def test_a_check_for_an_absent_optional_dependency_is_taken_as_not_there(
        tmp_path: Path) -> None:
    members = {**_feature('absentdep>=1; extra == "fast";;okdep'), **_dist("okdep", {
        "okdep.py": ""})}
    report = scan(tmp_path, members, imports=("feat",))
    m = report.module("feat")
    assert m is not None and (m.outcome, m.confidence) == ("ok", "likely"), m.reason
    (assumed,) = m.assumptions
    assert (assumed.path, assumed.line, assumed.taken) == ("/opt/python/feat/__init__.py", 3,
                                                           False)
    assert "absentdep, an optional dependency" in assumed.why
    assert "feat 1.0 does not require it" in assumed.why


def test_a_dependency_not_listed_at_all_is_optional_too(tmp_path: Path) -> None:
    # The else side: "if not HAVE: ... else: import it" is taken as true.
    source = ("import os\nHAVE = os.path.isdir('/x')\nif not HAVE:\n    speedup = None\n"
              "else:\n    import absentdep\n")
    m = scan(tmp_path, _feature(source=source), imports=("feat",)).module("feat")
    assert m is not None and (m.outcome, m.confidence) == ("ok", "likely"), m.reason
    assert [a.taken for a in m.assumptions] == [True]


@pytest.mark.parametrize("requires", [
    "absentdep",  # required: the layer is broken, or the check may well pass
    "absentdep; python_version >= '3.8'",  # required on the target
    "absent-dep-under-another-name",  # required and not installed: may provide the module
])
def test_a_required_or_possibly_required_dependency_stays_unknown(
        tmp_path: Path, requires: str) -> None:
    m = scan(tmp_path, _feature(requires), imports=("feat",)).module("feat")
    assert m is not None and (m.outcome, m.confidence) == ("unknown", "possible")
    assert "which abiscan cannot decide" in m.reason and not m.assumptions


def test_without_dist_info_an_absent_import_stays_unknown(tmp_path: Path) -> None:
    members = {k: v for k, v in _feature().items() if ".dist-info/" not in k}
    m = scan(tmp_path, members, imports=("feat",)).module("feat")
    assert m is not None and m.outcome == "unknown"


def test_a_standard_module_the_target_lacks_is_never_optional(tmp_path: Path) -> None:
    source = "import os\nif os.path.isdir('/x'):\n    import distutils\n"  # gone in 3.12
    m = scan(tmp_path, _feature(source=source), imports=("feat",)).module("feat")
    assert m is not None and m.outcome == "unknown"


# -- small module functions called at import time are run ---------------------------------

_HAS = ("try:\n    import absentmod\nexcept ImportError:\n    absentmod = None\n"
        "def _has():\n    return absentmod is not None\n"
        "if _has():\n    import absentmod.sub\n")
_CAN = ("import importlib\ndef _can(name):\n    try:\n        mod = importlib.import_module(name)\n"
        "        if not mod:\n            raise ImportError(name + ' was None')\n"
        "        return True\n    except ImportError:\n        return False\n"
        "if _can({probe!r}):\n    kind = 'c'\nelse:\n    kind = 'python'\n"
        "if kind == 'c':\n    from {probe} import not_there\n")
_GETENV = ("def _getenv(key, default=None):\n    from os import getenv\n"
           "    return getenv(key, default)\n"
           "USE = _getenv('ABISCAN_SWITCH', 'yes').lower()\n"
           "if USE == 'debug':\n    import _backend\nelif USE != 'yes':\n"
           "    raise RuntimeError('unrecognized value: %s' % USE)\n")


def test_a_function_returning_a_flag_is_run_when_called(tmp_path: Path) -> None:
    m = scan(tmp_path, {"python/has.py": _HAS}, imports=("has",)).module("has")
    assert m is not None and (m.outcome, m.confidence) == ("ok", "certain"), m.reason


def test_a_try_import_function_decides_which_implementation_loads(tmp_path: Path) -> None:
    report = scan(tmp_path, {**BACKEND_311, "python/okmod.py": "X = 1\n",
                             "python/impl_c.py": _CAN.format(probe="okmod"),
                             "python/impl_py.py": _CAN.format(probe="_backend")},
                  imports=("impl_c", "impl_py"))
    c, py = report.module("impl_c"), report.module("impl_py")
    assert py is not None and (py.outcome, py.confidence) == ("ok", "certain"), py.reason
    assert c is not None and c.outcome == "error" and c.confidence == "certain"
    assert str(c.error).startswith("ImportError: cannot import name 'not_there' from 'okmod'")


def test_an_environment_read_through_a_function_is_an_assumption(tmp_path: Path) -> None:
    report = scan(tmp_path, {**BACKEND_311, "python/cache.py": _GETENV}, imports=("cache",))
    m = report.module("cache")
    assert m is not None and (m.outcome, m.confidence) == ("ok", "likely"), m.reason
    assert [(a.line, a.taken) for a in m.assumptions] == [(5, False), (7, False)]
    assert {a.why for a in m.assumptions} == {"the environment variable ABISCAN_SWITCH is not set"}


def test_a_function_abiscan_cannot_follow_stays_unknown(tmp_path: Path) -> None:
    source = ("import os\ndef _has():\n    for p in os.listdir('/'):\n        return True\n"
              "if _has():\n    import absentmod\n")
    m = scan(tmp_path, {"python/loopy.py": source}, imports=("loopy",)).module("loopy")
    assert m is not None and m.outcome == "unknown"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="abiscan parses with its host's grammar")
def test_a_type_statement_binds_its_name_certainly(tmp_path: Path) -> None:
    # numpy 2.x numpy/_typing/_shape.py: "type _AnyShape = tuple[Any, ...]", imported by name.
    report = scan(tmp_path, {"python/shapes.py": "from typing import Any\n"
                                                 "type _AnyShape = tuple[Any, ...]\n",
                             "python/uses.py": "from shapes import _AnyShape\n"},
                  imports=("uses",))
    m = report.module("uses")
    assert m is not None and (m.outcome, m.confidence) == ("ok", "certain"), m.reason


def test_version_info_unpacks_with_a_starred_rest(tmp_path: Path) -> None:
    report = scan(tmp_path, {"python/ver.py": (
        "import sys\nmajor, minor, *_ = sys.version_info\n"
        "raise ImportError(f'Python {major}.{minor}')\n")})
    m = report.module("ver")
    assert m is not None and str(m.error) == "ImportError: Python 3.12"


def test_a_runtime_message_from_the_caught_exception(tmp_path: Path) -> None:
    report = scan(tmp_path, {
        **{f"python/pkg/_umath{T311}": build_shared_object(exports=["PyInit__umath"])},
        "python/pkg/__init__.py": (
            "import os\ntry:\n    from . import _umath\nexcept ImportError as exc:\n"
            "    if isinstance(exc, ModuleNotFoundError):\n        info = 'not found'\n"
            "    else:\n"
            "        found = [f for f in os.listdir(__path__[0]) if f.startswith('_u')]\n"
            "        info = 'found: ' + ', '.join(found)\n"
            "    raise ImportError(f'{info}; was: {exc}') from exc\n"),
    })
    m = report.module("pkg")
    assert m is not None and m.error is not None
    assert m.error.message == "found: _umath.cpython-311-x86_64-linux-gnu.so; was: cannot import " \
        "name '_umath' from partially initialized module 'pkg' (most likely due to a circular " \
        "import) (/opt/python/pkg/__init__.py)"


def test_a_half_initialised_package_has_no_names_of_its_later_star_import(
        tmp_path: Path) -> None:
    report = scan(tmp_path, {
        **{f"python/rx/_core{T311}": build_shared_object(exports=["PyInit__core"])},
        "python/rx/__init__.py": "import rx._main\nfrom rx._main import *\n",
        "python/rx/_main.py": "from rx import _core\n",
    })
    m = report.module("rx")
    assert m is not None and str(m.error) == (
        "ImportError: cannot import name '_core' from partially initialized module 'rx' "
        "(most likely due to a circular import) (/opt/python/rx/__init__.py)")


def test_a_from_import_imports_every_submodule_before_reading_names(tmp_path: Path) -> None:
    report = scan(tmp_path, {
        **BACKEND_311,
        **{f"python/fl/_ext{T311}": build_shared_object(exports=["PyInit__ext"])},
        "python/fl/__init__.py": "from . import _ext, sub\n",
        "python/fl/sub.py": "import _backend\n",
    })
    m = report.module("fl")
    assert m is not None and str(m.error) == "ModuleNotFoundError: No module named '_backend'"
