"""The static import graph: grammar by target version, import-time edges, guards, conditions."""

from __future__ import annotations

import ast
import sys

import pytest

from abiscan.simulate.python.grammar import RUNNING, check_syntax
from abiscan.simulate.python.import_graph import (
    PANIC,
    AssignStep,
    CondStep,
    Guard,
    ImportEdge,
    ImportGraph,
    ImportStep,
    ModuleSource,
    RaiseStep,
    SourceReader,
    TryStep,
    ancestry,
    catches,
    extract,
)


def parse(source: str, name: str = "pkg.mod", *, package: bool = False,
          modules: frozenset[str] = frozenset(), target: tuple[int, int] = RUNNING
          ) -> ModuleSource:
    tree = ast.parse(source)
    return extract(tree, name, f"/opt/python/{name.replace('.', '/')}.py", package,
                   source.splitlines(), target, modules.__contains__)


def edges(source: str, **kw: object) -> list[ImportEdge]:
    return list(parse(source, **kw).edges)  # type: ignore[arg-type]


def targets(source: str, **kw: object) -> list[tuple[str, str]]:
    return [(e.kind, e.target) for e in edges(source, **kw)]


# -- grammar -----------------------------------------------------------------

MATCH = "x = 1\nmatch x:\n    case 1:\n        pass\n"


@pytest.mark.parametrize("minor", [8, 9])
def test_match_is_a_syntax_error_before_310(minor: int) -> None:
    tree, verdict = check_syntax(MATCH.encode(), "/opt/python/m.py", (3, minor))
    assert verdict is not None and verdict.error is not None
    assert verdict.error.type == "SyntaxError"
    # CPython 3.8 and 3.9 stop at the "match x:" line with their generic message.
    assert verdict.error.message == "invalid syntax (m.py, line 2)"
    assert verdict.line == 2 and verdict.exact
    assert tree is not None  # the running grammar still reads it: its imports are known


def test_match_parses_from_310() -> None:
    tree, verdict = check_syntax(MATCH.encode(), "m.py", (3, 10))
    assert tree is not None and verdict is None


@pytest.mark.parametrize(("source", "since", "line"), [
    ("try:\n    pass\nexcept* ValueError:\n    pass\n", 11, 3),
    ("@buttons[0].clicked.connect\ndef f():\n    pass\n", 9, 1),
    ("a = {}\nb = ()\nx = a[*b]\n", 11, 3),
    ("for x in *a, *b:\n    pass\n", 9, 1),
    ("with (open('a') as f, open('b') as g):\n    pass\n", 9, 1),
    ("def f(*args: *tuple[int, ...]):\n    pass\n", 11, 1),
])
def test_constructs_newer_than_the_target(source: str, since: int, line: int) -> None:
    if (3, since) > RUNNING:
        pytest.skip(f"the running CPython {RUNNING} cannot read a 3.{since} construct")
    _, verdict = check_syntax(source.encode(), "m.py", (3, since - 1))
    assert verdict is not None and verdict.error is not None, source
    assert (verdict.error.type, verdict.line) == ("SyntaxError", line)
    _, ok = check_syntax(source.encode(), "m.py", (3, since))
    assert ok is None


def test_a_tuple_in_parentheses_is_not_a_parenthesised_with() -> None:
    # 3.8 reads "with (a, b):" as one tuple context manager: valid syntax.
    source = "with (\n    a,\n    b,\n):\n    pass\n"
    assert check_syntax(source.encode(), "m.py", (3, 8))[1] is None


def test_parenthesised_with_reported_at_its_as() -> None:
    source = "with (\n    open('a') as f,\n):\n    pass\n"
    _, verdict = check_syntax(source.encode(), "m.py", (3, 8))
    assert verdict is not None and verdict.line == 2


def test_old_wording_for_old_targets() -> None:
    source = b"x = 1\nif x\n    pass\n"
    _, old = check_syntax(source, "m.py", (3, 8))
    assert old is not None and old.error is not None
    assert old.error.message == "invalid syntax (m.py, line 2)"
    if RUNNING >= (3, 10):
        _, new = check_syntax(source, "m.py", (3, 10))
        assert new is not None and new.error is not None
        assert new.error.message == "expected ':' (m.py, line 2)"


def test_indentation_error_keeps_its_type() -> None:
    _, verdict = check_syntax(b"def f():\npass\n", "m.py", (3, 8))
    assert verdict is not None and verdict.error is not None
    assert verdict.error.type == "IndentationError"
    assert verdict.error.message == "expected an indented block (m.py, line 2)"


def test_a_newer_target_than_the_running_grammar_is_unknown_not_an_error() -> None:
    newer = (3, RUNNING[1] + 1)
    _, verdict = check_syntax(b"x = (\n", "m.py", newer)
    assert verdict is not None and verdict.error is None
    assert verdict.unknown and f"CPython {newer[0]}.{newer[1]}" in verdict.unknown


def test_print_statement_message_for_38() -> None:
    _, verdict = check_syntax(b"print 'hello'\n", "m.py", (3, 8))
    assert verdict is not None and verdict.error is not None
    assert verdict.error.message == (
        "Missing parentheses in call to 'print'. Did you mean print('hello')? (m.py, line 1)")


# -- edges -------------------------------------------------------------------


def test_import_statement_and_dotted_names() -> None:
    assert targets("import a.b.c\nimport d as e, f\n") == [
        ("import", "a.b.c"), ("import", "d"), ("import", "f")]


def test_function_bodies_and_lambdas_do_not_run() -> None:
    src = ("def f():\n    import inner\n"
           "async def g():\n    import inner2\n"
           "h = lambda: __import__('inner3')\n"
           "class C:\n    import in_class\n    def m(self):\n        import in_method\n")
    assert targets(src) == [("import", "in_class")]


def test_decorators_and_defaults_run_at_definition() -> None:
    src = "import importlib\n@deco(importlib.import_module('x'))\ndef f(a=__import__('y')):\n" \
          "    pass\n"
    assert ("dynamic", "x") in targets(src) and ("dynamic", "y") in targets(src)


def test_relative_imports_resolve_against_the_package() -> None:
    src = "from . import sib\nfrom .sub import thing\nfrom .. import up\nfrom ..other import o\n"
    got = targets(src, name="top.pkg.mod", modules=frozenset({"top.pkg.sib"}))
    assert got == [
        ("from", "top.pkg"), ("submodule", "top.pkg.sib"),
        ("from", "top.pkg.sub"), ("name", "top.pkg.sub"),
        ("from", "top"), ("name", "top"),
        ("from", "top.other"), ("name", "top.other"),
    ]


def test_relative_import_in_a_package_init() -> None:
    got = targets("from . import a\n", name="pkg", package=True, modules=frozenset({"pkg.a"}))
    assert got == [("from", "pkg"), ("submodule", "pkg.a")]


@pytest.mark.parametrize(("target", "kind"), [((3, 8), "ValueError"), ((3, 9), "ImportError")])
def test_relative_import_beyond_the_top(target: tuple[int, int], kind: str) -> None:
    (step,) = parse("from ... import x\n", name="pkg.mod", target=target).body
    assert isinstance(step, RaiseStep)
    assert (step.exc_type, step.message) == (
        kind, "attempted relative import beyond top-level package")


def test_relative_import_without_a_package() -> None:
    (step,) = parse("from . import x\n", name="mod").body
    assert isinstance(step, RaiseStep)
    assert step.message == "attempted relative import with no known parent package"


def test_dynamic_imports_with_literals_only() -> None:
    src = ("import importlib\nfrom importlib import import_module\n"
           "importlib.import_module('a.b')\nimport_module('.c', __package__)\n"
           "import_module(name)\n__import__('d', globals(), None, [], 0)\n"
           "__import__('e', level=1)\n")
    got = [t for k, t in targets(src, name="pkg.mod") if k == "dynamic"]
    assert got == ["a.b", "pkg.c", "d"]


def test_guards_of_enclosing_try_blocks() -> None:
    src = ("try:\n    try:\n        import inner\n    except ModuleNotFoundError:\n"
           "        pass\nexcept (ImportError, OSError) as exc:\n    pass\n"
           "try:\n    import bare\nexcept:\n    pass\n")
    inner, bare = edges(src)
    assert [g.catches for g in inner.guards] == [("ModuleNotFoundError",),
                                                ("ImportError", "OSError")]
    assert bare.guards[0].catches == ("BaseException",)


def test_reraising_handler_and_suppress() -> None:
    src = ("import contextlib\ntry:\n    import a\nexcept ImportError:\n"
           "    raise RuntimeError('needs a')\n"
           "with contextlib.suppress(ImportError):\n    import b\n")
    module = parse(src)
    try_step = next(s for s in module.body if isinstance(s, TryStep) and s.line == 2)
    assert try_step.handlers[0].guard.reraises
    (raise_step,) = try_step.handlers[0].body
    assert isinstance(raise_step, RaiseStep)
    assert (raise_step.exc_type, raise_step.message) == ("RuntimeError", "needs a")
    b = next(e for e in module.edges if e.target == "b")
    assert b.guards[0].catches == ("ImportError",) and "suppress" in b.guards[0].text


def test_type_checking_imports_never_run() -> None:
    src = ("from typing import TYPE_CHECKING\nimport typing\n"
           "if TYPE_CHECKING:\n    import a\nelse:\n    import b\n"
           "if typing.TYPE_CHECKING:\n    import c\n")
    by = {e.target: e for e in edges(src)}
    assert by["a"].type_checking and by["a"].runs == "no"
    assert not by["b"].type_checking and by["b"].runs == "yes"
    assert by["c"].runs == "no"


@pytest.mark.parametrize(("target", "runs"), [((3, 10), "no"), ((3, 11), "yes")])
def test_version_checks_are_decided_for_the_target(target: tuple[int, int], runs: str) -> None:
    src = ("import sys\nif sys.version_info >= (3, 11):\n    import tomllib\n"
           "else:\n    import tomli\n")
    by = {e.target: e for e in edges(src, target=target)}
    assert by["tomllib"].runs == runs
    assert by["tomli"].runs == ("yes" if runs == "no" else "no")


def test_conditions_abiscan_cannot_decide() -> None:
    src = ("import os, sys\nif os.environ.get('X'):\n    import a\n"
           "if sys.platform == 'win32':\n    import winreg\n"
           "PY_NEW = sys.version_info[:2] >= (3, 14)\nif PY_NEW:\n    import annotationlib\n"
           "if sys.version_info < (3, 12, 4):\n    import c\n"
           "if __name__ == '__main__':\n    import d\n"
           "for name in names:\n    import e\n")
    by = {e.target: e for e in edges(src, target=(3, 12))}
    assert by["a"].runs == "maybe" and by["a"].condition == "if os.environ.get('X')"
    assert by["winreg"].runs == "no"
    assert by["annotationlib"].runs == "no"  # a module-level constant of a known test
    assert by["c"].runs == "maybe"  # the micro version is not part of the target
    assert by["d"].runs == "no"
    assert by["e"].runs == "maybe"


def test_from_import_names_and_bound_names() -> None:
    module = parse("from os import path\nX = 1\nfrom .a import b as c\n"
                   "def f():\n    Y = 2\nclass K:\n    Z = 3\n", name="pkg.mod")
    assert set(module.bound) == {"path", "X", "c", "f", "K"}
    assert module.bound["X"] == 2
    assert not module.open_namespace


def test_open_namespaces() -> None:
    assert parse("from x import *\n").open_namespace
    assert parse("def __getattr__(name):\n    return 1\n").open_namespace
    assert parse("globals().update(a=1)\n").open_namespace
    assert parse("__all__ = ['a', 'b']\n").all_names == ("a", "b")


def test_a_called_function_that_writes_globals_opens_the_namespace() -> None:
    builds = "def _b():\n    ns = globals()\n    ns['A'] = 1\n"
    opened = parse(builds + "x = 1\n_b()\n")
    assert opened.open_namespace and opened.open_line == 5 and opened.writes_globals
    # Not called, rebound before the call (the call runs another function), async
    # (a call makes a coroutine and runs nothing), or a body that only reads.
    assert not parse(builds).open_namespace
    assert not parse(builds + "_b = print\n_b()\n").open_namespace
    assert not parse(builds.replace("def", "async def") + "_b()\n").open_namespace
    assert not parse("def _r():\n    return 'A' in globals() or globals().get('A')\n"
                     "_r()\n").open_namespace


def test_assignments_and_tests_keep_their_expressions() -> None:
    module = parse("has_x = False\nother = compute()\nif not has_x:\n    import a\n")
    first, second, cond = module.body
    assert isinstance(first, AssignStep) and ast.unparse(first.targets[0]) == "has_x"
    assert first.value is not None and ast.unparse(first.value) == "False"
    assert isinstance(second, AssignStep) and ast.unparse(second.value or first.value) == \
        "compute()"
    assert isinstance(cond, CondStep) and cond.test is not None
    assert ast.unparse(cond.test) == "not has_x"


def test_steps_keep_statement_order() -> None:
    module = parse("import a\nif x:\n    import b\ntry:\n    import c\nexcept ImportError:\n"
                   "    import d\n")
    kinds = [type(s).__name__ for s in module.body]
    assert kinds == ["ImportStep", "CondStep", "TryStep"]
    cond = module.body[1]
    assert isinstance(cond, CondStep) and cond.runs is None
    assert isinstance(cond.body[0], ImportStep)


# -- exceptions ----------------------------------------------------------------


def guard(*names: str) -> Guard:
    return Guard(names, "except ...", 1)


def test_what_each_guard_catches() -> None:
    assert catches(guard("ImportError"), "ModuleNotFoundError")
    assert not catches(guard("ModuleNotFoundError"), "ImportError")
    assert catches(guard("Exception"), "SyntaxError")
    assert not catches(guard("ImportError"), "SyntaxError")
    assert not catches(guard("ImportError"), PANIC)
    assert not catches(guard("Exception"), PANIC)
    assert catches(guard("BaseException"), PANIC)
    assert catches(guard("OSError", "ImportError"), "ModuleNotFoundError")
    assert catches(guard("builtins.ImportError"), "ModuleNotFoundError")
    assert catches(guard("IOError"), "PermissionError")
    assert ancestry(PANIC) == [PANIC, "BaseException"]


# -- the graph over a file system ------------------------------------------------


def test_graph_parses_each_module_once_and_only_source() -> None:
    files = {"/opt/python/a/__init__.py": b"from . import b\n",
             "/opt/python/a/b.py": b"import c\n"}
    reads: list[str] = []

    def read(path: str) -> bytes | None:
        reads.append(path)
        return files.get(path)

    def find(name: str) -> tuple[str, str | None, bool] | None:
        if name == "a":
            return "source", "/opt/python/a/__init__.py", True
        if name == "a.b":
            return "source", "/opt/python/a/b.py", False
        if name == "ext":
            return "extension", "/opt/python/ext.so", False
        return None

    graph = ImportGraph(SourceReader(read, find), (3, 12))
    a = graph.module("a")
    assert a is not None and [e.kind for e in a.edges] == ["from", "submodule"]
    assert graph.module("a") is a and graph.edges("a.b")[0].target == "c"
    assert graph.module("ext") is None and graph.module("missing") is None
    assert reads == ["/opt/python/a/__init__.py", "/opt/python/a/b.py"]


def test_hook_names_of_a_module_that_installs_a_finder() -> None:
    files = {"/opt/python/hack.py":
             b"import sys\nclass F:\n    def find_spec(self, fullname, path, target=None):\n"
             b"        if fullname != 'distutils':\n            return None\n"
             b"sys.meta_path.insert(0, F())\n"}
    graph = ImportGraph(SourceReader(files.get, lambda n: (
        "source", "/opt/python/hack.py", False) if n == "hack" else None), (3, 12))
    hack = graph.module("hack")
    assert hack is not None and hack.custom_finder and "distutils" in hack.hook_names


def test_running_version_constant() -> None:
    assert (sys.version_info[0], sys.version_info[1]) == RUNNING
