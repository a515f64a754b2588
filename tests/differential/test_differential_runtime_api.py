"""The runtime-API errors of import-time code against real imports in every local CPython 3.8+.

Each snippet is a module in a layer; abiscan scans the layer for a target
captured from the interpreter (so the stdlib paths in messages are that
interpreter's), and the interpreter imports each module in a fresh
``python -I -S``. Outcome, exception type and message must match exactly.
The snippets cover each rule of :mod:`abiscan.simulate.python.runtime_api`
and the code around it that must stay ``ok`` (guards, version checks,
``TYPE_CHECKING``, postponed annotations, function bodies).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_differential import _captured_target

from abiscan.simulate.python.runtime_api import stdlib_dir

from native import Interpreter, discover_interpreters, real_import, write_zip

INTERPRETERS = discover_interpreters()

SNIPPETS: dict[str, str] = {
    # PEP 585 (3.9)
    "sub_builtin": "import os\nX = list[int, int]\n",
    "sub_abc": "from collections.abc import Mapping\nM = Mapping[str, int]\n",
    "sub_abc_dotted": "import collections.abc\nM = collections.abc.Mapping[str, int]\n",
    "sub_nested": "from typing import Dict\nX = Dict[str, list[int]]\n",
    "sub_annotation": "x: dict[str, int] = {}\n",
    "sub_class_annotation": "class C:\n    x: tuple[int, ...] = ()\n",
    "sub_signature": "def f(x: set[int]) -> None:\n    pass\n",
    "sub_default": "def f(x=frozenset[int]):\n    pass\n",
    "sub_decorator": "import functools\n@functools.lru_cache(maxsize=type[int] and 8)\ndef f():\n"
                     "    pass\n",
    "sub_re_pattern": "import re\nP = re.Pattern[str]\n",
    "sub_ordered_dict": "import collections\nD = collections.OrderedDict[str, int]\n",
    "sub_future": "from __future__ import annotations\nx: dict[str, int] = {}\n"
                  "def f(x: set[int]) -> list[int]:\n    pass\n",
    "sub_string_annotation": "x: 'dict[str, int]' = {}\n",
    "sub_in_function": "def f():\n    return list[int]\n",
    "sub_typing": "from typing import List, Optional\nX = Optional[List[int]]\n",
    "sub_shadowed": "list = lambda *a: None\nX = list\n",
    "sub_guarded": "import sys\nif sys.version_info >= (3, 9):\n    X = list[int]\nelse:\n"
                   "    X = None\n",
    "sub_type_checking": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                         "    X = list[int]\n",
    "sub_after_import": "import rt_missing_dep\nX = list[int]\n",
    # PEP 604 (3.10)
    "union_builtin": "X = int | None\n",
    "union_classes": "X = int | str\n",
    "union_abc": "from collections.abc import Mapping\nX = Mapping | dict\n",
    "union_own_class": "class A:\n    pass\nX = A | None\n",
    "union_enum": "import enum\nclass Color(enum.Enum):\n    RED = 1\nX = None | Color\n",
    "union_typing": "from typing import Optional\nX = Optional[int] | None\n",
    "union_generic": "X = list[int] | None\n",
    "union_signature": "def f(x: int | None = None) -> str | None:\n    pass\n",
    "union_flags": "import re\nF = re.I | re.M\n",
    "union_ints": "X = 1 | 2\n",
    # dataclasses
    "dc_slots": "from dataclasses import dataclass\n@dataclass(slots=True)\nclass A:\n"
                "    x: int = 0\n",
    "dc_kw_only": "import dataclasses\n@dataclasses.dataclass(kw_only=True, frozen=True)\n"
                  "class A:\n    x: int = 0\n",
    "dc_weakref_slot": "from dataclasses import dataclass\n@dataclass(slots=True, "
                       "weakref_slot=True)\nclass A:\n    x: int = 0\n",
    "dc_field_kw_only": "from dataclasses import dataclass, field\n@dataclass\nclass A:\n"
                        "    x: int = field(default=0, kw_only=True)\n",
    "dc_frozen": "from dataclasses import dataclass\n@dataclass(frozen=True, order=True)\n"
                 "class A:\n    x: int = 0\n",
    # names of stdlib modules
    "name_self": "from typing import Self\n",
    "name_self_guarded": "try:\n    from typing import Self\nexcept ImportError:\n"
                         "    Self = None\n",
    "name_self_attr": "import typing\nS = typing.Self\n",
    "name_self_getattr": "import typing\nS = getattr(typing, 'Self', None)\n",
    "name_strenum": "from enum import Enum, StrEnum\n",
    "name_collections_mapping": "from collections import Mapping\n",
    "name_taskgroup": "from asyncio import TaskGroup\n",
    "name_asyncio_coroutine": "import asyncio\nC = asyncio.coroutine\n",
    "name_submodule": "from importlib import metadata\nfrom concurrent import futures\n",
    "name_version_checked": "import sys\nif sys.version_info >= (3, 11):\n"
                            "    from typing import Self\nelse:\n    Self = None\n",
    "name_tomllib": "import tomllib\n",
    "name_zoneinfo": "from zoneinfo import ZoneInfo\n",
    "name_module_getattr": "import typing\nC = typing.ContextManager\n"
                           "from typing import AsyncContextManager\n",
    "builtin_missing": "class E(ExceptionGroup):\n    pass\n",
    "builtin_guarded": "try:\n    EG = BaseExceptionGroup\nexcept NameError:\n    EG = None\n",
    "builtin_defined": "def aiter(x):\n    return x\nA = aiter\n",
    "builtin_in_function": "def f():\n    return anext\n",
    "builtin_used": "W = EncodingWarning\n",
    "name_alias": "import typing as t\nX = t.TypeAlias\n",
}


def _real_outcomes(interp: Interpreter, root: Path) -> dict[str, tuple[str, str | None,
                                                                        str | None]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        raw = list(pool.map(lambda n: real_import(interp, f"rt_{n}", [root]), SNIPPETS))
    return {n: (r.outcome, r.type, r.message) for n, r in zip(SNIPPETS, raw, strict=True)}


@pytest.mark.parametrize("interp", INTERPRETERS, ids=lambda i: i.short)
def test_runtime_api_matches_real_import(interp: Interpreter, tmp_path: Path) -> None:
    from abiscan import scan

    target = _captured_target(interp)
    if target is None:
        pytest.skip(f"cannot capture CPython {interp.short}")
    members = {f"python/rt_{n}.py": src for n, src in SNIPPETS.items()}
    layer = write_zip(tmp_path / "layer.zip", members)
    report = scan([layer], target=target)  # type: ignore[arg-type]
    root = tmp_path / "python"
    root.mkdir()
    for name, src in SNIPPETS.items():
        (root / f"rt_{name}.py").write_text(src)
    real = _real_outcomes(interp, root)
    # The interpreter's stdlib sits where the target (Lambda's layout) puts it.
    here = str(interp.executable.resolve().parent.parent / "lib" / f"python{interp.short}")
    there = stdlib_dir(target.sys_path, target.python_version)  # type: ignore[attr-defined]
    wrong = []
    for name, (outcome, kind, raw) in real.items():
        message = raw.replace(here + "/", there + "/") if raw else raw
        got = report.module(f"rt_{name}")
        assert got is not None, name
        predicted = (got.outcome, got.error.type if got.error else None,
                     got.error.message if got.error else None)
        if predicted != (outcome, kind, message):
            wrong.append(f"{name}: real {outcome} {kind}: {message!r}\n"
                         f"    abiscan {predicted} ({got.reason})")
    assert not wrong, "\n".join(wrong)
