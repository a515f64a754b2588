"""The indexes and memos of the simulation (issue 10, session 8): each answers as the
scan it replaced did, and the work it saves is counted, never timed."""

from __future__ import annotations

import ast
import zipfile
from pathlib import Path

from abiscan import scan
from abiscan.report.model import Report
from abiscan.simulate.python.evaluator import (
    NAME_READS,
    Evaluator,
    NameReads,
    Namespace,
    OneOf,
    TargetFacts,
)
from abiscan.target.profiles import builtin_target
from abiscan.testing.elf_writer import build_shared_object

from helpers import NoModules


def _expr(text: str) -> ast.expr:
    return ast.parse(text, mode="eval").body


def test_name_reads_walks_each_expression_once() -> None:
    reads = NameReads()
    node = _expr("f(b, a) + a.x[c]")
    assert reads.reads(node) == ("a", "b", "c", "f") and reads.walks == 1 and len(reads) == 1
    assert reads.reads(node) == ("a", "b", "c", "f") and reads.walks == 1
    # An equal expression elsewhere is another node: walked on its own.
    assert reads.reads(_expr("f(b, a) + a.x[c]")) == ("a", "b", "c", "f")
    assert reads.walks == 2


def test_name_reads_of_an_expression_that_grows_a_list_is_none() -> None:
    reads = NameReads()
    node = _expr("g(seen.append(T))")
    assert reads.reads(node) is None and reads.reads(node) is None and reads.walks == 1


def test_name_reads_forgets_an_expression_with_its_program() -> None:
    reads = NameReads()
    reads.reads(_expr("a + b"))  # the node dies here
    assert len(reads) == 0


def test_an_evaluation_repeated_reads_names_from_the_memo() -> None:
    node = _expr("T + '-suffix'")
    ns = Namespace(module="m", values={"T": OneOf(options=("a", "b"))})
    ev = Evaluator(ns, TargetFacts(version=(3, 12)), NoModules())
    before = NAME_READS.walks
    first = ev.eval(node)
    second = ev.eval(node)
    assert first == second == OneOf(options=("a-suffix", "b-suffix"))
    assert NAME_READS.walks == before + 1


# -- the link map's indexes ---------------------------------------------------------------


def _zip_with_symlink(path: Path, members: dict[str, bytes], links: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = (0o100755 << 16)
            zf.writestr(info, data)
        for name, to in links.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, to)
    return path


def _scan_two_names(tmp_path: Path, version: str) -> Report:
    dep = build_shared_object(soname="libdep.so", exports=["dep"], version_defs=["DEP_1"])
    ext = build_shared_object(
        exports=["PyInit_m"],
        needed=["libdep.so", "libdep.so.1"],
        undefined=["dep"],
        version_needs=[("libdep.so.1", [version])],
        relocate=True,
    )
    layer = _zip_with_symlink(
        tmp_path / "layer.zip",
        {"lib/libdep.so": dep, "python/m.abi3.so": ext},
        {"lib/libdep.so.1": "libdep.so"},
    )
    return scan([layer], target=builtin_target("python3.12"), imports=["m"])


def test_a_library_needed_by_two_names_is_one_object(tmp_path: Path) -> None:
    m = _scan_two_names(tmp_path / "ok", "DEP_1").module("m")
    assert m is not None and m.ok, m
    bad = _scan_two_names(tmp_path / "bad", "DEP_2").module("m")
    assert bad is not None and bad.error is not None
    # The second name is the first object's (glibc compares the files): its versions.
    assert "version `DEP_2' not found" in bad.error.message
    assert bad.error.message.startswith("/opt/lib/libdep.so: "), bad.error.message
