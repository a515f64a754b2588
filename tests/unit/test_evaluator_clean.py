"""Evaluator rules that keep clean real stacks decided (issue 9, clean-stack unknowns).

Each test pins one mechanism on a synthetic layer; the real packages it comes from
are named in the test.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import abiscan
from abiscan.report.model import Report
from abiscan.simulate.python.evaluator import UNKNOWN, Evaluator, ModuleRef, Namespace, TargetFacts
from abiscan.target.profiles import custom_target
from abiscan.testing.dists import installed

from helpers import write_zip


def scan(tmp_path: Path, members: Mapping[str, str], imports: tuple[str, ...]) -> Report:
    layer = write_zip(tmp_path / "layer.zip", members)
    return abiscan.scan([layer], target=custom_target("3.12", "x86_64", "2.34"),
                        imports=list(imports))


def dist(name: str, files: Mapping[str, str], requires: tuple[str, ...] = ()) -> dict[str, str]:
    return installed(name, files, requires=requires)


# -- a dispatch whose last branch only raises ----------------------------------------------

# awswrangler.pandas: `if fmt == PANDAS: from pandas import * / elif fmt == MODIN: from
# modin.pandas import * / else: raise ImportError(...)`, modin an extra.
_DISPATCH = ("import os\nFMT = os.environ.get('FMT') or os.getcwd()\n"
             "if FMT == 'plain':\n    import okdep\nelif FMT == 'fast':\n    import absentdep\n"
             "else:\n    raise ImportError(f'Unknown format {FMT}')\n")


def test_a_dispatch_whose_else_only_raises_takes_the_side_that_loads(tmp_path: Path) -> None:
    members = {**dist("disp", {"disp.py": _DISPATCH}, ("okdep", 'absentdep; extra == "fast"')),
               **dist("okdep", {"okdep.py": ""})}
    m = scan(tmp_path, members, ("disp",)).module("disp")
    assert m is not None and (m.outcome, m.confidence) == ("ok", "likely"), m.reason
    assert {(a.line, a.taken) for a in m.assumptions} == {(3, True), (5, True)}


def test_a_check_that_only_raises_leaves_the_failure_of_the_other_side(tmp_path: Path) -> None:
    # Both sides fail: the import fails whichever runs; the error is the import's, not the
    # consistency check's.
    source = ("import os\nFMT = os.getcwd()\nif FMT == 'fast':\n    import absentdep\n"
              "else:\n    raise ImportError(f'Unknown format {FMT}')\n")
    m = scan(tmp_path, dist("disp", {"disp.py": source}, ("absentdep",)), ("disp",)).module("disp")
    assert m is not None and (m.outcome, m.confidence) == ("error", "likely"), m.reason
    assert str(m.error) == "ModuleNotFoundError: No module named 'absentdep'"
    assert [(a.line, a.taken) for a in m.assumptions] == [(3, True)]


# -- a loop's else that only raises: the search found nothing --------------------------------

# patsy.util: `for float_type in ("float128", "float96", "float64"): if hasattr(np, float_type):
# widest_float = getattr(np, float_type); break / else: assert False`.
_SEARCH = ("import os\nfor name in ('a', 'b'):\n    if hasattr(os, name + os.getcwd()):\n"
           "        found = name\n        break\nelse:\n    assert False\n")


def test_a_searching_loops_else_that_only_raises_is_assumed_not_to_run(tmp_path: Path) -> None:
    m = scan(tmp_path, dist("search", {"search.py": _SEARCH}), ("search",)).module("search")
    assert m is not None and (m.outcome, m.confidence) == ("ok", "likely"), m.reason
    (assumed,) = m.assumptions
    assert (assumed.line, assumed.condition, assumed.taken) == (2, "the loop's else", False)


def test_a_loop_that_tries_imports_keeps_its_else_undecided(tmp_path: Path) -> None:
    # polars._plr: the loop tries each build of the Rust module; on another platform
    # none loads and the else raises.
    source = ("import importlib\nfor name in ('fast_a', 'fast_b'):\n    try:\n"
              "        importlib.import_module(name)\n        break\n    except ImportError:\n"
              "        pass\nelse:\n    raise ImportError('no build found')\n")
    m = scan(tmp_path, dist("search", {"search.py": source}), ("search",)).module("search")
    assert m is not None and m.outcome != "ok", m.reason
    assert not m.assumptions


# -- writes through globals() guarded by a prefix ----------------------------------------------

_RLIM = ("import os\n_globals = globals()\nfor _name in dir(os):\n"
         "    if _name.startswith('RLIM') and _name.isupper():\n"
         "        _globals[_name] = getattr(os, _name)\ndel _globals, _name\n")


def test_prefix_guarded_globals_writes_bind_only_prefixed_names(tmp_path: Path) -> None:
    # psutil/__init__.py copies RLIM* constants; psutil._psaix's `from . import
    # _psutil_aix` is then CPython's "cannot import name".
    members = {"python/rl/__init__.py": _RLIM,
               "python/rl/aix.py": "from . import _ext_aix\n",
               "python/rl/user.py": "from rl import RLIMIT_NOFILE\n"}
    report = scan(tmp_path, members, ("rl.aix", "rl.user"))
    aix, user = report.module("rl.aix"), report.module("rl.user")
    assert aix is not None and str(aix.error) == (
        "ImportError: cannot import name '_ext_aix' from 'rl' (/opt/python/rl/__init__.py)")
    assert user is not None and user.outcome != "error", user.reason


@pytest.mark.parametrize("write", [
    "_globals[_name] = 1",  # no guard on the name
    "_globals.update({_name: 1})",  # not a subscripted store
])
def test_other_globals_writes_keep_the_namespace_open(tmp_path: Path, write: str) -> None:
    source = ("_globals = globals()\nfor _name in ('A', 'B'):\n"
              f"    if _name.isupper():\n        {write}\n")
    members = {"python/op/__init__.py": source, "python/op/aix.py": "from . import _ext_aix\n"}
    m = scan(tmp_path, members, ("op.aix",)).module("op.aix")
    assert m is not None and m.outcome != "error", m.reason


# -- dict comprehensions, tuple targets, dict views ----------------------------------------------


def ev(source: str, values: Mapping[str, Any] | None = None) -> Any:
    ns = Namespace("pkg.mod", dict(values or {}))
    facts = TargetFacts((3, 12), "x86_64", 8)
    return Evaluator(ns, facts, _NoModules()).eval(ast.parse(source, mode="eval").body)


class _NoModules:
    def attribute(self, module: str, name: str) -> Any:
        return UNKNOWN

    def import_module(self, name: str) -> ModuleRef:
        return ModuleRef(name)

    def listdir(self, path: str) -> list[str] | None:
        return None


@pytest.mark.parametrize(("source", "value"), [
    # scipy's __config__: `{k: _cleanup(v) for k, v in d.items() if v != ''}`
    ("{k: v for k, v in {'a': 1, 'b': ''}.items() if v != ''}", {"a": 1}),
    ("[v for k, v in {'a': 1, 'b': 2}.items() if k != 'a']", [2]),
    ("[k for k in {'a': 1}.keys()]", ["a"]),
    ("{k: v for k, v in [('a', 1), ('a', 2)]}", {"a": 2}),
    ("bool(r'false'.lower().replace('false', ''))", False),
])
def test_comprehensions_over_dicts(source: str, value: Any) -> None:
    assert ev(source) == value


@pytest.mark.parametrize("source", [
    "{k: v for k, v in {'a': x}.items()}",  # an unknown value
    "{k: v for k, v in [(1, 2, 3)]}",  # does not unpack
    "[k for k, *v in [(1, 2)]]",  # a starred target
])
def test_comprehensions_with_unknown_parts_stay_unknown(source: str) -> None:
    assert ev(source, {"x": UNKNOWN}) is UNKNOWN


# -- RECORD entries installed outside the import tree ------------------------------------------

_CHECK = ("import os\nif os.getcwd() == 'x':\n    raise ImportError('built for another version')\n")


@pytest.mark.parametrize("elsewhere", [
    "../../bin/chk",  # a script pip installed under the prefix
    "chk-1.0.data/data/share/man/man1/chk.1",  # sympy's man page, in an unpacked wheel
])
def test_scripts_and_data_do_not_count_against_an_intact_distribution(
        tmp_path: Path, elsewhere: str) -> None:
    members = dist("chk", {"chk.py": _CHECK})
    record = "python/chk-1.0.dist-info/RECORD"
    members[record] += f"{elsewhere},sha256=AAAA,10\n"
    m = scan(tmp_path, members, ("chk",)).module("chk")
    assert m is not None and (m.outcome, m.confidence) == ("ok", "likely"), m.reason


def test_a_missing_file_of_the_import_tree_still_counts(tmp_path: Path) -> None:
    members = dist("chk", {"chk.py": _CHECK})
    members["python/chk-1.0.dist-info/RECORD"] += "chk_extra.py,sha256=AAAA,10\n"
    m = scan(tmp_path, members, ("chk",)).module("chk")
    assert m is not None and m.outcome == "unknown", m.reason


# -- the runtime's own distributions, at the version the runtime data records ---------------------

_SDK_USERS = {
    "python/new_sdk.py": "import botocore.httpchecksum\n",  # added to botocore after 1.23.32
    "python/new_name.py": "from botocore.auth import resolve_auth_type\n",
    "python/old_name.py": "from botocore.auth import SigV4Auth\nfrom botocore import auth\n",
    "python/vendored.py": "from botocore.vendored.six.moves import urllib\n",  # six's finder
    "python/guarded.py": "try:\n    from botocore.auth import resolve_auth_type\n"
                         "except ImportError:\n    resolve_auth_type = None\n",
}


def test_a_layer_built_against_a_newer_sdk_than_the_runtimes(tmp_path: Path) -> None:
    # aiobotocore and s3fs on python3.8, whose runtime data records botocore 1.23.32.
    from abiscan.target.profiles import builtin_target

    layer = write_zip(tmp_path / "layer.zip", _SDK_USERS)
    report = abiscan.scan([layer], target=builtin_target("python3.8", "x86_64"),
                          imports=[p[7:-3] for p in _SDK_USERS])
    got = {m.name: m for m in report.modules}
    assert str(got["new_sdk"].error) == (
        "ModuleNotFoundError: No module named 'botocore.httpchecksum'")
    assert str(got["new_name"].error) == ("ImportError: cannot import name 'resolve_auth_type' "
                                          "from 'botocore.auth' (/var/runtime/botocore/auth.py)")
    for name in ("new_sdk", "new_name"):
        assert got[name].confidence == "likely"
        (assumed,) = got[name].assumptions
        assert "botocore is 1.23.32" in assumed.why and "updates the SDK" in assumed.why
    for name in ("old_name", "vendored", "guarded"):
        assert got[name].outcome == "ok", got[name].reason


def test_where_the_data_records_no_version_any_runtime_module_loads(tmp_path: Path) -> None:
    from abiscan.target.profiles import builtin_target

    layer = write_zip(tmp_path / "layer.zip", _SDK_USERS)
    report = abiscan.scan([layer], target=builtin_target("python3.10", "x86_64"),
                          imports=["new_sdk", "new_name"])
    assert [m.outcome for m in report.modules if m.name in ("new_sdk", "new_name")] == ["ok"] * 2


def test_a_runtime_modules_imports_reach_a_layers_newer_package(tmp_path: Path) -> None:
    # The runtime's boto3 1.20.32 (python3.8): boto3.s3.transfer imports s3transfer, which
    # the layer holds at a version that needs a newer botocore (awswrangler on python3.8).
    from abiscan.target.profiles import builtin_target

    members = {"python/s3transfer/__init__.py": "",
               "python/s3transfer/exceptions.py": "",
               "python/s3transfer/manager.py": "from botocore.httpchecksum import X\n",
               "python/user.py": "import boto3.s3.transfer\n"}
    layer = write_zip(tmp_path / "layer.zip", members)
    report = abiscan.scan([layer], target=builtin_target("python3.8", "x86_64"),
                          imports=["user"])
    m = report.module("user")
    assert m is not None and str(m.error) == (
        "ModuleNotFoundError: No module named 'botocore.httpchecksum'"), m.reason
    assert m.confidence == "likely"
    assert m.chain == ("user", "boto3.s3.transfer", "s3transfer.manager", "botocore.httpchecksum")
    assert any(a.condition == "boto3.s3.transfer imports s3transfer.manager"
               for a in m.assumptions), m.assumptions
