"""Fuzz harnesses (hypothesis): the zip reader, the source evaluator, target loading.

Each harness feeds generated and mutated inputs to one entry point and allows
only its documented exceptions. The default run is short (a few seconds in
all); the long run is one command (docs/limits.md):

    ABISCAN_FUZZ_EXAMPLES=40000 python -m pytest -q -p no:cacheprovider tests/test_fuzz.py

With ``ABISCAN_FUZZ_STATS=path.json`` the run writes, per harness, the number
of executions, the slowest one and the process's peak RSS.
"""

from __future__ import annotations

import io
import json
import os
import resource
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abiscan.inputs.sources import InputKind, SourceError, ZipSource
from abiscan.simulate.imports.wheel_tags import supported_tags
from abiscan.simulate.python.import_graph import ImportGraph, SourceReader
from abiscan.target.profiles import TargetError, builtin_target, custom_target, load_target

# Generated zips may store one name twice, as hostile ones do.
pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")

_EXAMPLES = int(os.environ.get("ABISCAN_FUZZ_EXAMPLES", "40"))
_FUZZ = settings(
    max_examples=_EXAMPLES,
    # No deadline: a timing is a benchmark's business (benchmarks/fuzz_inputs.py reports
    # the slowest case); here a case must only end, with no exception but abiscan's own.
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)
_STATS: dict[str, dict[str, float]] = {}
_WORK = Path(tempfile.mkdtemp(prefix="abiscan-fuzz-"))


def _timed(name: str, run: Callable[[], None]) -> None:
    started = time.perf_counter()
    try:
        run()
    finally:
        took = time.perf_counter() - started
        stats = _STATS.setdefault(name, {"executions": 0, "max_seconds": 0.0})
        stats["executions"] += 1
        stats["max_seconds"] = max(stats["max_seconds"], took)


@pytest.fixture(scope="module", autouse=True)
def _report_stats() -> Iterator[None]:
    yield
    out = os.environ.get("ABISCAN_FUZZ_STATS")
    if out:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        Path(out).write_text(json.dumps({"harnesses": _STATS, "peak_rss_kib": peak}, indent=2))


# -- mutations ------------------------------------------------------------------

_EXTREMES = [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xff\xff\x00\x00",
             b"\x01\x00\x00\x80"]


@st.composite
def _mutated(draw: st.DrawFn, base: bytes) -> bytes:
    """``base`` with a few bytes overwritten, inserted, deleted, or the tail cut."""
    data = bytearray(base)
    for _ in range(draw(st.integers(0, 8))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["set", "insert", "delete", "cut", "word"]))
        if action == "set":
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(max_size=16))
        elif action == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        elif action == "cut":
            del data[at:]
        else:  # a header field set to an extreme value
            data[at:at + 4] = draw(st.sampled_from(_EXTREMES))
    return bytes(data)


# -- the zip reader ---------------------------------------------------------------

_NAMES = st.text(st.sampled_from("abc_/.\\:\x1b\xff\u00e9"), min_size=1, max_size=12)


@st.composite
def _zip_bytes(draw: st.DrawFn) -> bytes:
    buf = io.BytesIO()
    method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED,
                                   zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]))
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data, link in draw(st.lists(st.tuples(
                _NAMES, st.binary(max_size=300), st.booleans()), max_size=5)):
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = (0o120777 if link else 0o100644) << 16
            info.compress_type = method
            zf.writestr(info, data)
    return draw(_mutated(buf.getvalue()))


def _read_zip(raw: bytes) -> None:
    path = _WORK / "fuzz.zip"
    path.write_bytes(raw)
    try:
        source = ZipSource(path, InputKind.LAYER)
    except SourceError:
        return
    try:
        # A name stored twice: the last member wins, as it does when unzipped.
        last = {e.path: e for e in source.entries()}
        for entry in source.entries():
            if entry.kind == "file":
                try:
                    data = source.read(entry)
                except SourceError:
                    continue
                assert len(data) == last[entry.path].size
    finally:
        source.close()


@_FUZZ
@given(_zip_bytes())
def test_fuzz_zip_reader(raw: bytes) -> None:
    _timed("zip reader", lambda: _read_zip(raw))


# -- the source evaluator --------------------------------------------------------

_SNIPPETS = [
    "import os\n", "import a.b.c as d\n", "from . import x\n", "from .. import y\n",
    "from m import *\n", "try:\n    import q\nexcept ImportError:\n    q = None\n",
    "if sys.version_info >= (3, 9):\n    import r\nelse:\n    import s\n",
    "if TYPE_CHECKING:\n    import t\n", "def f():\n    import u\n", "class C:\n    import v\n",
    "__import__('w')\n", "importlib.import_module('x.y')\n", "x = (1 +\n", "match x:\n",
    "    case 1:\n        import z\n", "async def g():\n    await h()\n", "del x\n",
    "while True:\n    import k\n    break\n", "x: int = 1\n", "with open(p) as f:\n    pass\n",
    "print(f'{x!r:>{w}}')\n", "raise ImportError('no')\n", "lambda: (yield)\n", "\t\x00\n",
    "# -*- coding: latin-1 -*-\n", "\ufeffimport bom\n", "if not not not x:\n    pass\n",
    "try:\n    pass\nexcept* ValueError:\n    pass\n", "type T = int\n", "global g\n",
]


@st.composite
def _python_source(draw: st.DrawFn) -> bytes:
    parts = draw(st.lists(st.sampled_from(_SNIPPETS), max_size=12))
    indent = draw(st.integers(0, 2))
    text = "".join(("    " * indent if i % 3 == 2 else "") + p for i, p in enumerate(parts))
    if draw(st.booleans()):
        depth = draw(st.integers(0, 400))
        text += "x = " + "(" * depth + "1" + ")" * depth + "\n"
    if draw(st.booleans()):
        text += "if " + draw(st.sampled_from(["not ", "a+", "-", "a."])) * draw(
            st.integers(0, 3000)) + "a:\n    import deep\n"
    return draw(_mutated(text.encode("utf-8", "surrogatepass")))


def _evaluate(data: bytes, version: tuple[int, int]) -> None:
    def find(name: str) -> tuple[str, str | None, bool] | None:
        return ("source", "/opt/python/m/__init__.py", True) if name == "m" else None

    graph = ImportGraph(SourceReader(lambda path: data, find), version)
    parsed = graph.module("m")
    assert parsed is not None
    for edge in parsed.edges:
        assert isinstance(edge.target, str)


@_FUZZ
@given(_python_source(), st.sampled_from([(3, 8), (3, 9), (3, 11), (3, 12), (3, 13)]))
def test_fuzz_source_evaluator(data: bytes, version: tuple[int, int]) -> None:
    _timed("source evaluator", lambda: _evaluate(data, version))


# -- target loading ---------------------------------------------------------------

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=10,
)
_BASES = [builtin_target("python3.12").to_dict(), custom_target("3.13", "arm64").to_dict()]


@st.composite
def _profile(draw: st.DrawFn) -> bytes:
    data = json.loads(json.dumps(draw(st.sampled_from(_BASES))))
    keys = [*sorted(data), "system", "capi"]
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(keys))
        if draw(st.booleans()):
            data.pop(key, None)
        else:
            data[key] = draw(_JSON_VALUES)
    if draw(st.booleans()):
        data["system"] = {"libraries": draw(st.lists(_JSON_VALUES, max_size=3)),
                          "cache": draw(_JSON_VALUES)}
    text = json.dumps(data).encode()
    return draw(_mutated(text)) if draw(st.booleans()) else text


def _load(raw: bytes) -> None:
    path = _WORK / "target.json"
    path.write_bytes(raw)
    try:
        target = load_target(path)
    except TargetError:
        return
    # What loads must be usable by the pipeline.
    target.inventory()
    target.capi_exports()
    assert supported_tags(target)


@_FUZZ
@given(_profile())
def test_fuzz_target_loading(raw: bytes) -> None:
    _timed("target loading", lambda: _load(raw))
