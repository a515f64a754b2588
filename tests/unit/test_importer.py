"""The FileFinder simulation against hand-made trees (the differential tests check it for real)."""

from __future__ import annotations

from pathlib import Path

from abiscan.inputs.sources import DirectorySource, InputKind
from abiscan.inputs.stack import build_stack
from abiscan.simulate.imports.file_finder import ImportSystem
from abiscan.target.profiles import Target, builtin_target, custom_target

from helpers import write_tree

T312 = builtin_target("python3.12")


def finder(tmp_path: Path, layer: dict[str, str], function: dict[str, str] | None = None,
           target: Target = T312) -> ImportSystem:
    sources = [DirectorySource(write_tree(tmp_path / "layer", layer), InputKind.LAYER)]
    if function is not None:
        sources.append(DirectorySource(write_tree(tmp_path / "fn", function), InputKind.FUNCTION))
    return ImportSystem(build_stack(target, sources), target)


def test_package_beats_module_and_extension_order(tmp_path: Path) -> None:
    imp = finder(tmp_path, {
        "python/p/__init__.py": "", "python/p.py": "",
        "python/e.so": "", "python/e.abi3.so": "", "python/e.py": "",
        "python/f.py": "", "python/f.pyc": "",
    })
    p = imp.find("p").spec
    assert p is not None and (p.kind, p.origin) == ("package", "/opt/python/p/__init__.py")
    e = imp.find("e")
    assert e.spec is not None and e.spec.origin == "/opt/python/e.abi3.so"
    assert [x.path for x in e.passed_over] == ["/opt/python/e.py", "/opt/python/e.so"]
    f = imp.find("f").spec
    assert f is not None and f.origin == "/opt/python/f.py"


def test_package_init_may_be_an_extension(tmp_path: Path) -> None:
    imp = finder(tmp_path, {"python/p/__init__.cpython-312-x86_64-linux-gnu.so": "",
                            "python/p/__init__.py": ""})
    spec = imp.find("p").spec
    assert spec is not None and spec.loader_kind == "extension"


def test_earlier_sys_path_entry_wins(tmp_path: Path) -> None:
    imp = finder(tmp_path, {"python/thing/__init__.py": "",
                            "python/lib/python3.12/site-packages/thing.py": ""},
                 {"thing.py": ""})
    spec = imp.find("thing").spec
    assert spec is not None and spec.origin == "/var/task/thing.py"
    imp2 = finder(tmp_path / "b", {"python/thing/__init__.py": "",
                                   "python/lib/python3.12/site-packages/thing.py": ""})
    spec2 = imp2.find("thing").spec
    assert spec2 is not None and spec2.origin == "/opt/python/lib/python3.12/site-packages/thing.py"


def test_namespace_portions_merge_but_a_real_module_anywhere_wins(tmp_path: Path) -> None:
    imp = finder(tmp_path, {"python/ns/a.py": "",
                            "python/lib/python3.12/site-packages/ns/b.py": ""})
    ns = imp.find("ns").spec
    assert ns is not None and ns.kind == "namespace"
    assert ns.search_locations == ("/opt/python/lib/python3.12/site-packages/ns", "/opt/python/ns")
    assert imp.find("ns.a").found and imp.find("ns.b").found
    imp2 = finder(tmp_path / "b", {"python/lib/python3.12/site-packages/ns/a.py": "",
                                   "python/ns.py": ""})
    spec = imp2.find("ns").spec
    assert spec is not None and spec.origin == "/opt/python/ns.py"


def test_not_found_messages(tmp_path: Path) -> None:
    imp = finder(tmp_path, {"python/mod.py": "", "python/pkg/__init__.py": "",
                            "python/_b.cpython-38-x86_64-linux-gnu.so": ""})
    assert str(imp.find("nothere").error) == "ModuleNotFoundError: No module named 'nothere'"
    assert str(imp.find("mod.sub").error) == (
        "ModuleNotFoundError: No module named 'mod.sub'; 'mod' is not a package")
    assert str(imp.find("pkg.sub").error) == "ModuleNotFoundError: No module named 'pkg.sub'"
    assert str(imp.find("gone.sub").error) == "ModuleNotFoundError: No module named 'gone'"
    b = imp.find("_b")
    assert not b.found and [(p.path, p.reason) for p in b.passed_over] == [
        ("/opt/python/_b.cpython-38-x86_64-linux-gnu.so", "suffix-not-tried")]


def test_free_threaded_target(tmp_path: Path) -> None:
    ft = custom_target("3.13", "x86_64", "2.34", free_threaded=True)
    imp = finder(tmp_path, {"python/a.abi3.so": "",
                            "python/b.cpython-313t-x86_64-linux-gnu.so": ""}, target=ft)
    assert not imp.find("a").found and imp.find("b").found


class _Counting:
    """A file system that counts the paths it is asked about."""

    def __init__(self, fs: object) -> None:
        self.fs = fs
        self.asked: list[str] = []

    def listdir(self, path: str) -> object:
        return self.fs.listdir(path)  # type: ignore[attr-defined]

    def is_dir(self, path: str) -> bool:
        self.asked.append(path)
        return bool(self.fs.is_dir(path))  # type: ignore[attr-defined]

    def is_file(self, path: str) -> bool:
        self.asked.append(path)
        return bool(self.fs.is_file(path))  # type: ignore[attr-defined]


def test_a_directory_without_the_name_is_not_probed_suffix_by_suffix(tmp_path: Path) -> None:
    # FileFinder tries a package and then each loader suffix; where no entry of the
    # directory is named for the module (``tail`` or ``tail.*``), none can match:
    # the directory is only asked whether it is one.
    layer = {"python/m.py": "", "python/p/__init__.py": "", "python/p/sub.py": "",
             "python/n/x.txt": ""}
    stack = build_stack(T312, [DirectorySource(write_tree(tmp_path / "layer", layer),
                                               InputKind.LAYER)])
    fs = _Counting(stack)
    imp = ImportSystem(fs, T312)
    assert imp.find("absent").spec is None
    assert all(not p.endswith(("/absent", ".py", ".so", ".pyc")) for p in fs.asked)
    assert imp.find("p.nope").spec is None
    assert not [p for p in fs.asked if "nope" in p]
    # The names that are there are found as before, by their probes.
    m, sub, n = imp.find("m").spec, imp.find("p.sub").spec, imp.find("n").spec
    assert m is not None and m.origin == "/opt/python/m.py"
    assert sub is not None and sub.origin == "/opt/python/p/sub.py"
    assert n is not None and n.kind == "namespace"
    assert "/opt/python/p/sub.py" in fs.asked
