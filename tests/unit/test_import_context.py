"""What an import meets besides its own files: the interpreter's ``sys.modules``, the
target's standard library and platform, and files of another version of its project.

Each test pins one mechanism on a synthetic layer; the real interpreters confirm the
same cases in ``tests/differential/test_differential_import_context.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import abiscan
from abiscan.report.model import Report
from abiscan.target.profiles import custom_target
from abiscan.testing.dists import installed

from helpers import write_zip


def scan(tmp_path: Path, *layers: Mapping[str, str], imports: tuple[str, ...] = ()) -> Report:
    paths = [write_zip(tmp_path / f"layer{i}.zip", m) for i, m in enumerate(layers)]
    return abiscan.scan(paths, target=custom_target("3.12", "x86_64", "2.34"),
                        imports=list(imports))


def _dist(name: str, version: str, files: Mapping[str, str]) -> dict[str, str]:
    return installed(name, files, version=version)


# -- files of two versions of one project ----------------------------------------------


_NEW = {"mixed/__init__.py": "from . import _core\n", "mixed/_core.py": "VERSION = 2\n"}
_OLD = {"mixed/__init__.py": "from . import _legacy\n", "mixed/_legacy.py": "from . import _core\n"}


def test_an_import_through_files_of_two_versions_runs_them_as_they_are(tmp_path: Path) -> None:
    # Version 1 unpacked over version 2: its __init__ and _legacy, and 2's _core left over.
    # The mix runs as it is on disk: ok, likely, resting on the assumption that it works.
    report = scan(tmp_path, _dist("mixed", "2.0", _NEW), _dist("mixed", "1.0", _OLD))
    m = report.module("mixed")
    assert m is not None and (m.outcome, m.error, m.confidence) == ("ok", None, "likely")
    (assumed,) = m.assumptions
    assert "2 versions of mixed" in assumed.condition
    assert "1.0 (/opt/python/mixed/__init__.py)" in assumed.condition
    assert "2.0 (/opt/python/mixed/_core.py)" in assumed.condition


def test_a_failure_in_the_mix_is_the_prediction(tmp_path: Path) -> None:
    # Version 1's _legacy reads a name version 2's _core no longer has.
    old = {**_OLD, "mixed/_legacy.py": "from ._core import OLD_NAME\n"}
    report = scan(tmp_path, _dist("mixed", "2.0", _NEW), _dist("mixed", "1.0", old))
    m = report.module("mixed")
    assert m is not None and m.outcome == "error", m.reason
    assert str(m.error) == (
        "ImportError: cannot import name 'OLD_NAME' from 'mixed._core' "
        "(/opt/python/mixed/_core.py)"
    )


def test_files_of_one_version_only_stay_ok(tmp_path: Path) -> None:
    # The same two copies, but what "import mixed._legacy_free" reaches is version 1's
    # alone; and a file both versions ship byte for byte belongs to neither.
    old = {**_OLD, "mixed/_legacy.py": "X = 1\n", "mixed/_core.py": "VERSION = 2\n"}
    report = scan(tmp_path, _dist("mixed", "2.0", _NEW), _dist("mixed", "1.0", old))
    m = report.module("mixed")
    assert m is not None and (m.outcome, m.confidence) == ("ok", "certain"), m.reason


def test_a_mix_reached_through_an_import_reused_from_an_earlier_run(tmp_path: Path) -> None:
    # "first" imports two_a (version 1) before helper does, so helper's own import adds
    # nothing new to that run; "second" reuses helper and must still see version 1.
    old, new = {"two_a.py": "A = 1\n"}, {"two_a.py": "A = 2\n", "two_b.py": "B = 2\n"}
    report = scan(tmp_path, {**_dist("two", "2.0", new)}, {
        **_dist("two", "1.0", old),
        "python/first.py": "import two_a\nimport helper\n",
        "python/helper.py": "import two_a\n",
        "python/second.py": "import helper\nimport two_b\n",
    }, imports=("first", "second"))
    second = report.module("second")
    assert second is not None and (second.outcome, second.confidence) == ("ok", "likely")
    assert any("1.0 (/opt/python/two_a.py)" in a.condition for a in second.assumptions)


def test_one_version_unpacked_twice_is_not_mixed(tmp_path: Path) -> None:
    report = scan(tmp_path, _dist("mixed", "2.0", _NEW), _dist("mixed", "2.0", _NEW))
    m = report.module("mixed")
    assert m is not None and m.outcome == "ok", m.reason


# -- the target's platform and standard library -------------------------------------------


def test_a_module_level_assert_the_target_decides_raises(tmp_path: Path) -> None:
    report = scan(tmp_path, {
        "python/winonly.py": "import sys\nassert sys.platform == 'win32'\n",
        "python/winmsg.py": "import os\nassert os.name == 'nt', 'Windows only: ' + os.name\n",
        "python/linux.py": "import sys\nassert sys.platform.startswith('linux')\n",
    }, imports=("winonly", "winmsg", "linux"))
    winonly, winmsg, linux = (report.module(n) for n in ("winonly", "winmsg", "linux"))
    assert winonly is not None and str(winonly.error) == "AssertionError: "
    assert winmsg is not None and str(winmsg.error) == "AssertionError: Windows only: posix"
    assert linux is not None and linux.outcome == "ok"


def test_an_undecided_assert_is_not_an_error(tmp_path: Path) -> None:
    m = scan(tmp_path, {"python/env.py": "import os\nassert os.getcwd() == '/'\n"}).module("env")
    assert m is not None and m.outcome == "unknown", m.reason


def test_a_stdlib_attribute_no_linux_cpython_has_raises_attribute_error(tmp_path: Path) -> None:
    report = scan(tmp_path, {
        "python/winapi.py": "import builtins\n\nclass WindowsError(builtins.WindowsError):\n"
                            "    pass\n",
        "python/fromwin.py": "from builtins import WindowsError\n",
        "python/dunder.py": "import builtins\nx = builtins.__abiscan__\n",
    }, imports=("winapi", "fromwin", "dunder"))
    winapi, fromwin, dunder = (report.module(n) for n in ("winapi", "fromwin", "dunder"))
    assert winapi is not None and str(winapi.error) == (
        "AttributeError: module 'builtins' has no attribute 'WindowsError'")
    assert fromwin is not None and str(fromwin.error) == (
        "ImportError: cannot import name 'WindowsError' from 'builtins' (unknown location)")
    assert dunder is not None and dunder.outcome != "error"  # a dunder may be set elsewhere


# -- sys.modules -------------------------------------------------------------------------


_BINARY = {
    "python/fast/__init__.py": "import sys\nif 'slow' not in sys.modules:\n"
                               "    raise ImportError('slow should be imported before fast')\n",
    "python/fast/sub.py": "X = 1\n",
    "python/slow/__init__.py": "from . import core\n",
    "python/slow/core.py": "import fast\n",
}


def test_sys_modules_holds_what_the_import_chain_imported_so_far(tmp_path: Path) -> None:
    report = scan(tmp_path, _BINARY, imports=("fast", "fast.sub", "slow", "slow.core"))
    for name in ("fast", "fast.sub"):  # imported first, in a fresh interpreter
        m = report.module(name)
        assert m is not None and str(m.error) == (
            "ImportError: slow should be imported before fast"), name
    for name in ("slow", "slow.core"):  # slow is being imported when fast runs
        m = report.module(name)
        assert m is not None and m.outcome == "ok", (name, m.reason)


def test_sys_modules_at_startup_and_after_a_failed_import(tmp_path: Path) -> None:
    report = scan(tmp_path, {
        "python/startup.py": "import sys\nif 'encodings' not in sys.modules:\n"
                             "    raise ImportError('no encodings')\n",
        "python/afterfail.py": "import sys\ntry:\n    import nothere\nexcept ImportError:\n"
                               "    pass\nif sys.modules.get('nothere') is None:\n"
                               "    raise ImportError('removed again')\n",
        "python/stdlib.py": "import sys\nif 'json' in sys.modules:\n    raise ImportError('j')\n",
    }, imports=("startup", "afterfail", "stdlib"))
    startup, afterfail, stdlib = (report.module(n) for n in ("startup", "afterfail", "stdlib"))
    assert startup is not None and startup.outcome == "ok"
    assert afterfail is not None and str(afterfail.error) == "ImportError: removed again"
    # Lambda's bootstrap imports json before the function: not decided.
    assert stdlib is not None and stdlib.outcome == "unknown"


# -- half-initialised modules --------------------------------------------------------------


def test_a_star_import_below_the_paused_line_binds_nothing_yet(tmp_path: Path) -> None:
    # regex: "import regex._main" runs first; _main's "from regex import _regex" finds a
    # half-initialised regex whose star import (line 2) has not run, and no _regex file
    # the target loads.
    report = scan(tmp_path, {
        "python/rx/__init__.py": "import rx._main\nfrom rx._main import *\n",
        "python/rx/_main.py": "from rx import _native\n",
        "python/rx/_native.cpython-311-x86_64-linux-gnu.so": "",
        "python/later/__init__.py": "from later._main import *\nimport later._user\n",
        "python/later/_main.py": "X = 1\n",
        "python/later/_user.py": "from later import X\n",
    }, imports=("rx", "later"))
    rx, later = report.module("rx"), report.module("later")
    assert rx is not None and str(rx.error) == (
        "ImportError: cannot import name '_native' from partially initialized module 'rx' "
        "(most likely due to a circular import) (/opt/python/rx/__init__.py)")
    assert later is not None and later.outcome == "ok", later.reason  # line 1 ran already


def test_a_name_a_lazy_getattr_serves_imports_the_module_its_table_names(
        tmp_path: Path) -> None:
    # langchain_core._api: PEP 562 __getattr__ over {name: submodule}.
    lazy = ("from importlib import import_module\nfrom typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from lc.deprecation import deprecated\n"
            "_dynamic = {'deprecated': 'deprecation', "
            "'beta': 'beta_mod'}\n\ndef __getattr__(name):\n"
            "    return getattr(import_module('.' + _dynamic[name], __name__), name)\n")
    report = scan(tmp_path, {
        "python/lc/__init__.py": lazy,
        "python/lc/deprecation.py": "import nowhere\n\ndef deprecated():\n    pass\n",
        "python/lc/beta_mod.py": "def beta():\n    pass\n",
        "python/uses_bad.py": "from lc import deprecated\n",
        "python/uses_good.py": "from lc import beta\n",
    }, imports=("uses_bad", "uses_good"))
    bad, good = report.module("uses_bad"), report.module("uses_good")
    assert bad is not None and str(bad.error) == "ModuleNotFoundError: No module named 'nowhere'"
    assert bad.chain == ("uses_bad", "lc.deprecation", "nowhere") and bad.confidence == "likely"
    assert good is not None and good.outcome == "ok", good.reason
