"""Targets captured from real interpreters: capture.py itself, the API and the CLI."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from abiscan.cli import main
from abiscan.target.capture import LAMBDA_LD_LIBRARY_PATH, lambda_sys_path
from abiscan.target.interpreters import capture_script, capture_target
from abiscan.target.profiles import Target, TargetError, builtin_target

from native import Interpreter, discover_interpreters

INTERPRETERS = discover_interpreters()


def _params() -> list[object]:
    if not INTERPRETERS:
        return [pytest.param(None, marks=pytest.mark.skip(reason="no pyenv CPython 3.8+"))]
    return [pytest.param(i, id=i.short + i.abiflags) for i in INTERPRETERS]


@pytest.mark.parametrize("interp", _params())
def test_capture_agrees_with_the_interpreter(interp: Interpreter) -> None:
    t = capture_target(interp.executable)
    assert t.python_version == interp.version[:2]
    assert t.extension_suffixes == interp.extension_suffixes
    assert t.abiflags == interp.abiflags
    assert t.multiarch == interp.multiarch
    assert t.libc == "glibc" and t.libc_version.count(".") >= 1
    # The layout is Lambda's whatever machine the capture ran on.
    assert t.sys_path == builtin_target(f"python{interp.short}").sys_path
    assert t.layer_root == "/opt" and t.function_root == "/var/task"
    inv = t.inventory()
    assert inv.complete and inv.libraries
    assert "libc.so.6" in inv.preloaded
    assert any(name.startswith("libpython") for name in inv.preloaded)
    capi = t.capi_exports()
    assert capi is not None and capi.certainty == "certain"
    assert "PyModule_Create2" in capi.symbols and "PyLong_FromLong" in capi.symbols
    assert Target.from_dict(json.loads(t.to_json())) == t


def test_capture_script_is_standalone_and_runs_on_python38() -> None:
    text = capture_script()
    tree = ast.parse(text, feature_version=(3, 8))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "capture.py must not import abiscan's other modules"
            modules.add((node.module or "").split(".")[0])
    assert "abiscan" not in modules
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    assert modules <= stdlib, modules - stdlib


@pytest.mark.parametrize("minor", range(8, 15))
def test_capture_layout_matches_the_builtin_targets(minor: int) -> None:
    t = builtin_target(f"python3.{minor}")
    assert tuple(lambda_sys_path(3, minor)) == t.sys_path
    assert tuple(LAMBDA_LD_LIBRARY_PATH) == t.ld_library_path


def test_capture_of_a_missing_interpreter(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="no such interpreter"):
        capture_target(tmp_path / "nope")
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(TargetError, match="capture failed"):
        capture_target(broken)


@pytest.mark.skipif(not INTERPRETERS, reason="no pyenv CPython 3.8+")
def test_cli_capture_and_scan_with_interpreter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from abiscan.testing.elf_writer import build_shared_object

    from helpers import write_zip

    oldest = INTERPRETERS[0]
    out = tmp_path / "target.json"
    assert main(["capture", "--python", str(oldest.executable), "-o", str(out)]) == 0
    assert Target.from_dict(json.loads(out.read_text())).python_version == oldest.version[:2]
    layer = write_zip(tmp_path / "layer.zip", {
        "python/_m.abi3.so": build_shared_object(
            exports=["PyInit__m"], needed=["libabiscan_nowhere.so.9"]
        ),
    })
    capsys.readouterr()
    assert main(["scan", str(layer), "--interpreter", str(oldest.executable), "-v"]) == 1
    text = capsys.readouterr().out
    assert "ABI203" in text and "[certain]" in text
    assert "libabiscan_nowhere.so.9: cannot open shared object file" in text
    assert main(["scan", str(layer), "--interpreter", str(tmp_path / "nope")]) == 2


def test_capture_of_a_non_pie_interpreter_reads_its_exports(tmp_path: Path) -> None:
    # Debian's /usr/bin/python3.X is ET_EXEC with libpython linked in: its C API
    # is in the executable's own dynamic symbol table.
    import json
    import shutil

    exe = shutil.which("python3.11", path="/usr/bin")
    if exe is None:
        pytest.skip("no /usr/bin/python3.11 on this machine")
    from abiscan.cli import main

    out = tmp_path / "t.json"
    assert main(["capture", "--python", exe, "-o", str(out)]) == 0
    capi = json.loads(out.read_text())["capi"]
    assert capi is None or "PyObject_GetAttr" in capi["symbols"]
