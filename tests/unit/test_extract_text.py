"""The extractor's tests on the source text, which spare walks of subtrees that cannot
matter: the programs are the same as without them, whatever the text's line ends and
encoding."""

from __future__ import annotations

import ast

import pytest

from abiscan.simulate.python.import_graph import (
    AssignStep,
    ImportGraph,
    ModuleSource,
    SourceReader,
    extract,
)


def parsed(source: bytes) -> ModuleSource:
    """Through ImportGraph.parse_file, which gives the extractor the source's bytes."""
    graph = ImportGraph(reader=SourceReader(lambda _: source, lambda _: None), version=(3, 12))
    result = graph.parse_file("pkg.mod", "/opt/python/pkg/mod.py", False, lambda _: False)
    assert result is not None and result.syntax is None
    return result


def without_text(source: bytes) -> ModuleSource:
    tree = ast.parse(source)
    lines = source.decode("utf-8", "replace").splitlines()
    return extract(tree, "pkg.mod", "/opt/python/pkg/mod.py", False, lines, (3, 12),
                   lambda _: False)


def dynamic(module: ModuleSource) -> list[tuple[str, int]]:
    return [(e.target, e.line) for e in module.edges if e.kind == "dynamic"]


CALL = b'import importlib\nimportlib.import_module("pkg.sub")\n'


@pytest.mark.parametrize(
    "source",
    [
        # str.splitlines() ends a line at a form feed too, ast does not: numbered by
        # splitlines, the call's line would be "b" and hold no parenthesis.
        b"x = 1  # a\x0cb\n" + CALL,
        b"x = '''a\x1cb'''\n" + CALL,
        # "\r" and "\r\n" end lines as "\n" does.
        b"x = 1\r" + CALL.replace(b"\n", b"\r"),
        b"x = 1\r\n" + CALL.replace(b"\n", b"\r\n"),
    ],
)
def test_calls_found_on_lines_numbered_as_ast_numbers_them(source: bytes) -> None:
    assert dynamic(parsed(source)) == [("pkg.sub", 3)]
    assert dynamic(without_text(source)) == [("pkg.sub", 3)]


def test_a_codec_that_spells_a_parenthesis_otherwise_is_walked() -> None:
    # UTF-7 writes "(" as "+ACg-": the bytes hold no parenthesis, the source a call.
    source = b'# coding: utf-7\nimport importlib\nimportlib.import_module+ACg-"pkg.sub"+ACk-\n'
    assert dynamic(parsed(source)) == [("pkg.sub", 3)]


def test_a_statement_without_a_parenthesis_calls_nothing() -> None:
    source = b"TABLE = {'a': [1, 2], 'b': {x for x in 'ab'}}\n"
    module = parsed(source)
    assert module.edges == () and not module.writes_globals
    assert [type(s).__name__ for s in module.body] == ["AssignStep"]


def kept(module: ModuleSource) -> dict[str, bool]:
    """Each module-level def, and whether its body is kept for the evaluator."""
    return {
        s.targets[0].id: s.function is not None
        for s in module.body
        if isinstance(s, AssignStep) and s.what == "function" and isinstance(s.targets[0], ast.Name)
    }


def test_a_def_whose_text_names_a_lambda_is_walked() -> None:
    source = (
        b"def named():\n    return 'lambda and yield, only words'\n"
        b"def makes():\n    return sorted([], key=lambda v: v)\n"
        b"def walrus():\n    if (n := 1):\n        return n\n"
        b"def plain():\n    return 1\n"
    )
    expected = {"named": True, "makes": False, "walrus": False, "plain": True}
    assert kept(parsed(source)) == expected
    assert kept(without_text(source)) == expected


@pytest.mark.parametrize(
    ("source", "declared"),
    [
        (b"def f():\n    global X\n    X = 1\n", {"X"}),
        (b"def f(): global X; X = 1\n", {"X"}),
        (b"x = 1;global Y\n", {"Y"}),
        (b"if x:\n\tglobal \\\n  Z\n", {"Z"}),
        (b"def f():\r\x0c    global W\r", {"W"}),
        (b"\xef\xbb\xbfglobal V\n", {"V"}),
        (b"# a global cache\nCACHE = globals()\nglobal_ = 1\n", set()),
    ],
)
def test_global_statements_are_found_by_the_text_filter_as_by_the_walk(
    source: bytes, declared: set[str]
) -> None:
    # The text decides whether the tree is walked for `global`: never a miss.
    assert parsed(source).declared_global == declared
    assert without_text(source).declared_global == declared
