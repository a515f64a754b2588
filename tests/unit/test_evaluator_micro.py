"""A test on the micro version, decided from the lowest micro a Lambda runtime may run
(issue 9: redis' ``sys.version_info >= (3, 11, 3)`` on python3.11).

The floor comes from ``lambda_runtimes.json`` with its sources; the prediction that rests
on it is ``likely`` and names it.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path
from typing import Any

import pytest

import abiscan
from abiscan.simulate.python.evaluator import UNKNOWN, Evaluator, Namespace, TargetFacts
from abiscan.target.profiles import builtin_target, custom_target, micro_floor, runtime_names
from abiscan.testing.dists import installed

from helpers import NoModules, write_zip

# redis/asyncio/connection.py (redis 5.x/6.x), with async-timeout required only below 3.11.3.
_REDIS = ("import sys\nif sys.version_info >= (3, 11, 3):\n"
          "    from asyncio import timeout as async_timeout\nelse:\n"
          "    from async_timeout import timeout as async_timeout\n")


def decide(expr: str, version: tuple[int, int], floor: int | None) -> tuple[Any, list[str]]:
    facts = TargetFacts(version=version, micro_floor=None if floor is None else (floor, "why"))
    ev = Evaluator(Namespace(module="m", values={}), facts, NoModules())
    tree = ast.parse(f"import sys\nx = {expr}").body[1]
    assert isinstance(tree, ast.Assign)
    from abiscan.simulate.python.evaluator import ModuleRef

    ev.ns.values["sys"] = ModuleRef(name="sys")
    return ev.eval(tree.value), ev.used


_OPS = (">=", ">", "<", "<=")


@pytest.mark.parametrize(("op", "micro", "floor"),
                         list(itertools.product(_OPS, range(0, 6), range(0, 6))))
def test_decided_exactly_where_every_micro_from_the_floor_agrees(op: str, micro: int,
                                                                  floor: int) -> None:
    expr = f"sys.version_info {op} (3, 11, {micro})"
    got, used = decide(expr, (3, 11), floor)
    # Python's own tuple comparison of the five-field value, for every micro from the floor.
    real = {eval(f"(3, 11, m, 'final', 0) {op} (3, 11, {micro})") for m in range(floor, 60)}
    if len(real) == 1:
        assert got is real.pop() and used == ["why"]
    else:
        assert got is UNKNOWN and used == []


def test_the_reversed_comparison_is_decided_alike() -> None:
    assert decide("(3, 11, 3) <= sys.version_info", (3, 11), 3)[0] is True
    assert decide("(3, 11, 3) > sys.version_info", (3, 11), 3)[0] is False


@pytest.mark.parametrize("expr", [
    "sys.version_info >= (3, 11, 3)",  # no floor known
])
def test_without_a_floor_the_micro_version_stays_unknown(expr: str) -> None:
    assert decide(expr, (3, 11), None)[0] is UNKNOWN


def test_other_minor_versions_are_decided_as_before() -> None:
    assert decide("sys.version_info >= (3, 11, 3)", (3, 12), None)[0] is True
    assert decide("sys.version_info >= (3, 11, 3, 'final', 0)", (3, 11), 3)[0] is UNKNOWN


def test_only_the_python311_runtime_has_a_recorded_floor() -> None:
    floors = {r: micro_floor(r) for r in runtime_names()}
    assert {r for r, f in floors.items() if f is not None} == {"python3.11"}
    micro, says = floors["python3.11"] or (0, "")
    assert micro == 3 and "3.11.3" in says and "2023-07-27" in says
    assert micro_floor(None) is None


def test_redis_on_python311_takes_the_asyncio_side_with_the_assumption(tmp_path: Path) -> None:
    members = installed("redislike", {"rl.py": _REDIS},
                        requires=('async-timeout>=4.0.3; python_full_version < "3.11.3"',))
    layer = write_zip(tmp_path / "layer.zip", members)
    m = abiscan.scan([layer], target=builtin_target("python3.11"), imports=["rl"]).module("rl")
    assert m is not None and (m.outcome, m.confidence) == ("ok", "likely"), m.reason
    (assumed,) = m.assumptions
    assert (assumed.line, assumed.taken) == (2, True)
    assert "3.11.3 or later" in assumed.why
    # A custom target is not a Lambda runtime: nothing bounds its micro version.
    m = abiscan.scan([layer], target=custom_target("3.11"), imports=["rl"]).module("rl")
    assert m is not None and m.outcome == "unknown", m.reason
