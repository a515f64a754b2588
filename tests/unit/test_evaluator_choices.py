""""One of a set" values: a name the sides of an undecided ``if`` bind to different
constants keeps them, and a later test decides where every alternative agrees (issue 9,
sympy's ``_SYMPY_GROUND_TYPES``).

Each test pins one mechanism; the differential case ``one_of_constants`` checks the same
stacks against real CPythons.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import abiscan
from abiscan.report.model import ModuleOutcome
from abiscan.simulate.python.evaluator import (
    UNKNOWN,
    Evaluator,
    Namespace,
    OneOf,
    TargetFacts,
    one_of,
    truth,
)
from abiscan.target.profiles import custom_target
from abiscan.testing.dists import installed

from helpers import NoModules, write_zip

# Both sides of an undecided `if` bind a constant (os.getcwd() is not known).
_CHOOSE = "import os\nif os.getcwd() == '/x':\n    MODE = 'fast'\nelse:\n    MODE = 'slow'\n"


def scan_one(tmp_path: Path, source: str, *, intact: bool = False,
             extra: Mapping[str, str] | None = None) -> ModuleOutcome:
    files = {"m.py": source, **(extra or {})}
    members = installed("m", files) if intact else {f"python/{k}": v for k, v in files.items()}
    layer = write_zip(tmp_path / "layer.zip", members)
    report = abiscan.scan([layer], target=custom_target("3.12", "x86_64", "2.34"),
                          imports=["m"])
    m = report.module("m")
    assert m is not None
    return m


def evaluate(values: dict[str, Any], expr: str) -> Any:
    ns = Namespace(module="m", values=values)
    return Evaluator(ns, TargetFacts(version=(3, 12)), NoModules()).eval(
        ast.parse(expr, mode="eval").body)


# -- the value ----------------------------------------------------------------------------------


def test_a_merge_of_two_constants_keeps_both() -> None:
    a = Namespace(module="m", values={"T": "gmpy", "same": 1, "obj": [1]})
    b = Namespace(module="m", values={"T": "python", "same": 1, "obj": [2]})
    a.merge(b)
    assert a.values["T"] == OneOf(options=("gmpy", "python"))
    assert a.values["same"] == 1
    assert a.values["obj"] is UNKNOWN  # a list is not a constant: mutable, aliased


def test_one_of_flattens_dedupes_and_stays_small() -> None:
    assert one_of([OneOf(options=("a", "b")), "b", "c"]) == OneOf(options=("a", "b", "c"))
    assert one_of(["a", "a"]) == "a"
    assert one_of([True, 1]) == OneOf(options=(True, 1))  # equal, but not the same value
    assert one_of([str(i) for i in range(9)]) is UNKNOWN  # more than 8 alternatives
    assert one_of(["a", UNKNOWN]) is UNKNOWN


def test_truth_is_known_when_every_alternative_agrees() -> None:
    assert truth(OneOf(options=("a", "b"))) is True
    assert truth(OneOf(options=("", 0))) is False
    assert truth(OneOf(options=("", "a"))) is None


@pytest.mark.parametrize(("expr", "value"), [
    ("T == 'flint'", False),
    ("T != 'flint'", True),
    ("T in ('gmpy', 'python')", True),
    ("T is None", False),
    ("len(T) > 3", True),
    ("T.upper()", OneOf(options=("GMPY", "PYTHON"))),
    ("'types: ' + T[:1]", OneOf(options=("types: g", "types: p"))),
    ("(T == 'gmpy') + (U == 'x')", OneOf(options=(2, 1, 0))),  # each combination
    ("T in ('gmpy', 'python') and U in ('x', 'y')", True),
    ("[T][0] == T", True),
    ("{'gmpy': 1}.get(T)", OneOf(options=(1, None))),
])
def test_an_expression_is_decided_where_all_alternatives_agree(expr: str, value: Any) -> None:
    values = {"T": OneOf(options=("gmpy", "python")), "U": OneOf(options=("x", "y"))}
    got = evaluate(values, expr)
    assert got == value if value is not UNKNOWN else got is UNKNOWN


@pytest.mark.parametrize("expr", ["T == 'gmpy'", "T == 'gmpy' or U == 'y'", "T[0] == 'g'"])
def test_a_test_that_holds_for_some_alternatives_only_is_undecided(expr: str) -> None:
    values = {"T": OneOf(options=("gmpy", "python")), "U": OneOf(options=("x", "y"))}
    assert truth(evaluate(values, expr)) is None


def test_results_that_are_not_constants_keep_only_their_truth() -> None:
    got = evaluate({"T": OneOf(options=("gmpy", "python"))}, "[T]")
    assert not isinstance(got, list) and truth(got) is True


def test_an_expression_that_grows_a_list_is_not_evaluated_per_alternative() -> None:
    values: dict[str, Any] = {"T": OneOf(options=("a", "b")), "seen": []}
    evaluate(values, "seen.append(T)")
    assert values["seen"] == [UNKNOWN]  # once, with the value not known


def test_another_modules_one_of_read_as_an_attribute_is_unknown() -> None:
    class Other(NoModules):
        def attribute(self, module: str, name: str) -> Any:
            return OneOf(options=(None, "x"))

    ns = Namespace(module="m", values={"mod": abiscan_module("other")})
    ev = Evaluator(ns, TargetFacts(version=(3, 12)), Other())
    assert ev.eval(ast.parse("mod.X is None", mode="eval").body) is UNKNOWN


def abiscan_module(name: str) -> Any:
    from abiscan.simulate.python.evaluator import ModuleRef

    return ModuleRef(name=name)


# -- whole modules ------------------------------------------------------------------------------


def test_sympys_ground_types_check_is_decided(tmp_path: Path) -> None:
    # sympy.external.gmpy (1.14): the probe for python-flint is run (flint is absent, so
    # _flint is None); gmpy2's probe is not (import_module is too large), so the ground
    # types are 'gmpy' or 'python', and the 'flint' branch with its assert never runs.
    source = (
        "import os\n"
        "def _get_flint(kind):\n"
        "    if kind not in ('auto', 'flint'):\n        return None\n"
        "    try:\n        import flint\n    except ImportError:\n        return None\n"
        "    return flint\n"
        "_T = os.environ.get('SYMPY_GROUND_TYPES', 'auto').lower()\n"
        "_flint = None\n_gmpy = None\n"
        "if _T in ('auto', 'flint'):\n"
        "    _flint = _get_flint(_T)\n"
        "    if _flint is not None:\n        _T = 'flint'\n    else:\n        _T = 'auto'\n"
        "if _T in ('auto', 'gmpy', 'gmpy2'):\n"
        "    _gmpy = os.getcwd()\n"
        "    if _gmpy is not None:\n        _T = 'gmpy'\n    else:\n        _T = 'python'\n"
        "if _T not in ('flint', 'gmpy', 'python'):\n    _T = 'python'\n"
        "if _T == 'gmpy':\n    G = 'gmpy'\n"
        "elif _T == 'flint':\n    assert _flint is not None\n    G = 'flint'\n"
        "elif _T == 'python':\n    G = 'python'\n"
        "else:\n    assert False\n"
    )
    m = scan_one(tmp_path, source)
    # An elif chain narrows the name: the last branch is decided, the `assert False`
    # never taken, and nothing had to be assumed about it.
    assert (m.outcome, m.confidence, m.assumptions) == ("ok", "certain", ()), m.reason


def test_a_check_that_fails_for_every_alternative_is_an_error(tmp_path: Path) -> None:
    source = _CHOOSE + ("if MODE != 'turbo':\n"
                        "    raise ImportError('mode has %d letters' % len(MODE))\n")
    m = scan_one(tmp_path, source)
    assert (m.outcome, m.confidence) == ("error", "certain"), m.reason
    assert str(m.error) == "ImportError: mode has 4 letters"  # the same for both


def test_a_message_the_alternatives_build_differently_is_not_guessed(tmp_path: Path) -> None:
    source = _CHOOSE + "if MODE != 'turbo':\n    raise ImportError('bad mode ' + MODE)\n"
    m = scan_one(tmp_path, source)
    assert m.outcome == "error", m.reason
    assert m.error is not None and m.error.message == "bad mode ..."
    assert m.confidence != "certain"


def test_a_check_that_holds_for_some_alternatives_stays_undecided(tmp_path: Path) -> None:
    source = _CHOOSE + "if MODE == 'fast':\n    import absent_dependency\n"
    m = scan_one(tmp_path, source)
    assert m.outcome == "unknown", m.reason
    assert "only if MODE == 'fast'" in m.reason


# -- what invalidates it ------------------------------------------------------------------------


def test_rebinding_replaces_the_alternatives(tmp_path: Path) -> None:
    source = _CHOOSE + "MODE = os.getcwd()\nif MODE == 'turbo':\n    import absent_dependency\n"
    assert scan_one(tmp_path, source).outcome == "unknown"


def test_augmented_assignment_applies_to_each_alternative(tmp_path: Path) -> None:
    source = _CHOOSE + ("MODE += '_build'\nif MODE not in ('fast_build', 'slow_build'):\n"
                        "    import absent_dependency\n"
                        "if MODE == 'fast':\n    import absent_dependency\n")
    m = scan_one(tmp_path, source)
    assert (m.outcome, m.confidence) == ("ok", "certain"), m.reason


def test_a_merge_with_an_unknown_side_is_unknown(tmp_path: Path) -> None:
    source = ("import os\nif os.getcwd() == '/x':\n    MODE = 'fast'\nelse:\n"
              "    MODE = os.getcwd()\nif MODE == 'turbo':\n    import absent_dependency\n")
    assert scan_one(tmp_path, source).outcome == "unknown"


_REBIND = ("def _switch():\n    global MODE\n    MODE = 'slow'\n"
           "def _setup():\n    _switch()\n")


@pytest.mark.parametrize(("before", "call", "confidence"), [
    # The module body calls the writer itself: it is run, and MODE is 'slow' for sure.
    ("MODE = 'fast'\n", "_switch()\n", "certain"),
    (_CHOOSE, "_switch()\n", "certain"),
    # Through a function that calls the writer: forgotten, the check assumed not to fire.
    ("MODE = 'fast'\n", "_setup()\n", "likely"),
    ("MODE = 'fast'\n", "X = [_setup()]\n", "likely"),
])
def test_a_call_of_a_function_that_rebinds_a_global_forgets_its_value(
    tmp_path: Path, before: str, call: str, confidence: str
) -> None:
    # The real module imports fine: MODE is 'slow' when the check runs.
    source = before + _REBIND + call + "if MODE == 'fast':\n    raise ImportError('fast')\n"
    m = scan_one(tmp_path, source, intact=True)
    assert (m.outcome, m.confidence) == ("ok", confidence), m.reason
    if confidence == "likely":
        assert [(a.line, a.taken) for a in m.assumptions][-1][1] is False
    else:
        assert m.assumptions == ()


def test_a_global_write_in_a_function_never_called_keeps_the_value(tmp_path: Path) -> None:
    source = "MODE = 'fast'\n" + _REBIND + "if MODE == 'fast':\n    raise ImportError('fast')\n"
    m = scan_one(tmp_path, source, intact=True)
    assert m.outcome == "error" and str(m.error) == "ImportError: fast", m.reason
