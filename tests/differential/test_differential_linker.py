"""Differential tests of the dynamic-linker simulation against glibc and real CPythons.

Real shared libraries and extension modules are compiled with gcc (a library
with a version script defining FOO_1 and FOO_2, one defining FOO_1 only, a
plain one), laid into a layer the way Lambda lays it out, and imported for
real by every local CPython 3.8+ with ``LD_LIBRARY_PATH`` set to the target's
(its ``/opt`` and ``/var/task`` entries mapped into the temporary root). The
prediction uses a target *captured* from that same interpreter
(:func:`abiscan.target.interpreters.capture_target`, the API behind
``abiscan scan --interpreter``): its system libraries, ld.so.cache, C API and
ld.so flavour. Outcome, exception type and message must agree.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import pytest

from native import BUILD_TIMEOUT, Interpreter, discover_interpreters, real_import, write_zip

INTERPRETERS = discover_interpreters()
ENOENT = "cannot open shared object file: No such file or directory"

_EXT = """\
#define Py_LIMITED_API {limited:#010x}
#include <Python.h>
{decls}
static struct PyModuleDef def = {{PyModuleDef_HEAD_INIT, "{name}", NULL, 0, NULL}};
PyMODINIT_FUNC PyInit_{name}(void)
{{
    {body}
    return PyModule_Create(&def);
}}
"""

_LIB = "int abiscan_q(void) { return 42; }\n"
_LIBV = "int abiscan_v1(void) { return 1; }\nint abiscan_v2(void) { return 2; }\n"
_MAP_V2 = "FOO_1 { global: abiscan_v1; local: *; };\nFOO_2 { global: abiscan_v2; } FOO_1;\n"
_MAP_V1 = "FOO_1 { global: abiscan_v1; abiscan_v2; local: *; };\n"


@dataclass(frozen=True)
class Built:
    """Everything compiled once per session: layer members and what each module should do."""

    members: Mapping[str, bytes]
    # module -> expected real outcome per minor version: ("ok" | "error", message or None)
    expect: Mapping[str, object]


def _gcc(args: Sequence[str], cwd: Path) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: cannot build real libraries")
    proc = subprocess.run(
        [gcc, *args], cwd=cwd, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"gcc {' '.join(args)} failed:\n{proc.stderr}")


@cache
def _build(workdir: Path, include: Path) -> dict[str, bytes]:
    """Compile the libraries and the abi3 extensions (once: abi3 serves every version)."""
    w = workdir
    w.mkdir(parents=True, exist_ok=True)
    (w / "q.c").write_text(_LIB)
    (w / "v.c").write_text(_LIBV)
    (w / "v2.map").write_text(_MAP_V2)
    (w / "v1.map").write_text(_MAP_V1)
    (w / "v2").mkdir(exist_ok=True)
    (w / "v1").mkdir(exist_ok=True)
    for soname in ("libabiscan_q.so.1", "libabiscan_absent.so.1"):
        _gcc(["-shared", "-fPIC", "q.c", f"-Wl,-soname,{soname}", "-o", soname], w)
    _gcc(["-shared", "-fPIC", "v.c", "-Wl,--version-script=v2.map",
          "-Wl,-soname,libabiscan_v.so.1", "-o", "v2/libabiscan_v.so.1"], w)
    _gcc(["-shared", "-fPIC", "v.c", "-Wl,--version-script=v1.map",
          "-Wl,-soname,libabiscan_v.so.1", "-o", "v1/libabiscan_v.so.1"], w)

    def ext(name: str, *, decls: str = "", body: str = "", limited: int = 0x03080000,
            link: Sequence[str] = ()) -> bytes:
        src = w / f"{name}.c"
        src.write_text(_EXT.format(limited=limited, decls=decls, name=name, body=body))
        out = f"{name}.abi3.so"
        _gcc(["-shared", "-fPIC", "-O0", f"-I{include}", src.name, "-o", out,
              "-Wl,--no-as-needed", *link], w)
        return (w / out).read_bytes()

    call_q = ("extern int abiscan_q(void);", "volatile int x = abiscan_q(); (void)x;")
    return {
        "absent": ext("_dabsent", decls=call_q[0], body=call_q[1],
                      link=["-L.", "-l:libabiscan_absent.so.1"]),
        "optlib": ext("_doptlib", decls=call_q[0], body=call_q[1],
                      link=["-L.", "-l:libabiscan_q.so.1"]),
        "origin": ext("_dorigin", decls=call_q[0], body=call_q[1],
                      link=["-L.", "-l:libabiscan_q.so.1", "-Wl,--enable-new-dtags",
                            "-Wl,-rpath,$ORIGIN/dorigin.libs"]),
        "version": ext("_dversion", decls="extern int abiscan_v2(void);",
                       body="volatile int x = abiscan_v2(); (void)x;",
                       link=["-Lv2", "-l:libabiscan_v.so.1"]),
        "newapi": ext("_dnewapi", limited=0x03090000,
                      body="PyInterpreterState *s = PyInterpreterState_Get(); (void)s;"),
        "nosym": ext("_dnosym", decls="extern int abiscan_nowhere(void);",
                     body="volatile int x = abiscan_nowhere(); (void)x;"),
        "libq": (w / "libabiscan_q.so.1").read_bytes(),
        "libv1": (w / "v1" / "libabiscan_v.so.1").read_bytes(),
    }


def _glibc_99() -> bytes:
    from abiscan.testing.elf_writer import build_shared_object

    return build_shared_object(
        exports=["PyInit__dglibc"], needed=["libc.so.6"],
        version_needs=[("libc.so.6", ["GLIBC_2.2.5", "GLIBC_2.99"])],
    )


def _layer(built: Mapping[str, bytes]) -> dict[str, bytes | str]:
    return {
        "python/_dabsent.abi3.so": built["absent"],
        "python/_doptlib.abi3.so": built["optlib"],
        "lib/libabiscan_q.so.1": built["libq"],
        "python/_dorigin.abi3.so": built["origin"],
        "python/dorigin.libs/libabiscan_q.so.1": built["libq"],
        "python/_dversion.abi3.so": built["version"],
        "lib/libabiscan_v.so.1": built["libv1"],
        "python/_dnewapi.abi3.so": built["newapi"],
        "python/_dnosym.abi3.so": built["nosym"],
        "python/_dglibc.abi3.so": _glibc_99(),
    }


def _expected(minor: int, libc_path: str) -> dict[str, tuple[str, str | None]]:
    """What glibc says, as checked by hand on glibc 2.36 (libc's path is the system's)."""
    return {
        "_dabsent": ("error", f"libabiscan_absent.so.1: {ENOENT}"),
        "_doptlib": ("ok", None),
        "_dorigin": ("ok", None),
        "_dversion": ("error", "/opt/lib/libabiscan_v.so.1: version `FOO_2' not found "
                               "(required by /opt/python/_dversion.abi3.so)"),
        "_dnewapi": ("error", "/opt/python/_dnewapi.abi3.so: undefined symbol: "
                              "PyInterpreterState_Get") if minor < 9 else ("ok", None),
        "_dnosym": ("error", "/opt/python/_dnosym.abi3.so: undefined symbol: abiscan_nowhere"),
        "_dglibc": ("error", f"{libc_path}: version `GLIBC_2.99' not found "
                             "(required by /opt/python/_dglibc.abi3.so)"),
    }


def _interpreter_params() -> list[object]:
    usable = [i for i in INTERPRETERS if ".abi3.so" in i.extension_suffixes]
    if not usable:
        return [pytest.param(None, marks=pytest.mark.skip(
            reason="no pyenv CPython 3.8+ with abi3 support found"))]
    return [pytest.param(i, id=i.short + i.abiflags) for i in usable]


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    usable = [i for i in INTERPRETERS if ".abi3.so" in i.extension_suffixes]
    if not usable:
        pytest.skip("no local CPython to build against")
    # The newest headers: an abi3 build with Py_LIMITED_API works on every version.
    newest = usable[-1]
    if not (newest.include / "Python.h").is_file():
        pytest.skip(f"no Python.h in {newest.include}")
    return _build(tmp_path_factory.mktemp("linker-native"), newest.include)


@cache
def _captured(executable: Path) -> object:
    from abiscan.target.interpreters import capture_target

    return capture_target(executable)


def _lay_out(layer: Path, root: Path) -> None:
    opt = root / "opt"
    (root / "var" / "task").mkdir(parents=True)
    opt.mkdir(parents=True)
    with zipfile.ZipFile(layer) as zf:
        zf.extractall(opt)


def _map(path: str, root: Path) -> str:
    owned = any(path == r or path.startswith(r + "/") for r in ("/opt", "/var/task"))
    return str(root / path.lstrip("/")) if owned else path


@pytest.mark.parametrize("interp", _interpreter_params())
def test_linker_prediction_matches_glibc(
    interp: Interpreter, built: dict[str, bytes], tmp_path: Path
) -> None:
    from abiscan import scan
    from abiscan.target.profiles import Target

    target = _captured(interp.executable)
    assert isinstance(target, Target)
    layer = write_zip(tmp_path / "layer.zip", _layer(built))
    expect_names = list(_expected(interp.version[1], "").keys())
    report = scan([layer], target=target, imports=expect_names)

    root = (tmp_path / "root").resolve()
    _lay_out(layer, root)
    entries = [root / p.lstrip("/") for p in target.sys_path
               if p.startswith(("/opt", "/var/task"))]
    ld_path = ":".join(_map(p, root) for p in target.ld_library_path)
    with ThreadPoolExecutor(max_workers=4) as pool:
        reals = dict(zip(expect_names, pool.map(
            lambda n: real_import(interp, n, entries, {"LD_LIBRARY_PATH": ld_path}),
            expect_names,
        ), strict=True))
    reals = {n: replace(r, message=r.message.replace(str(root), "") if r.message else None)
             for n, r in reals.items()}

    libc = next(
        (o for o in target.inventory().cache if o[0] == "libc.so.6"), ("", "libc.so.6")
    )[1]
    where = f"CPython {'.'.join(map(str, interp.version))} ({interp.executable})"
    broken = []
    for name, (outcome, msg) in _expected(interp.version[1], libc).items():
        r = reals[name]
        if r.outcome != outcome or (msg is not None and r.message != msg):
            broken.append(f"  {name}: expected {outcome} {msg!r}, real {r}")
    if broken:
        pytest.fail(f"harness error on {where}: glibc did not do what the case was built "
                    "for:\n" + "\n".join(broken), pytrace=False)

    wrong = []
    for name in expect_names:
        real = reals[name]
        pred = report.module(name)
        assert pred is not None
        got = (pred.outcome, pred.error.type if pred.error else None,
               pred.error.message if pred.error else None)
        want = (real.outcome, real.type, real.message)
        if got != want:
            wrong.append(f"  {name}:\n    predicted {got} ({pred.reason})\n    real      {want}")
    if wrong:
        pytest.fail(f"abiscan disagrees with {where}:\n" + "\n".join(wrong), pytrace=False)
    codes = {f.module: f.code for f in report.findings if f.code.startswith(("ABI1", "ABI2"))}
    assert codes.get("_dabsent") == "ABI203"
    assert codes.get("_dversion") == "ABI204"
    assert codes.get("_dnosym") == "ABI206"
    assert codes.get("_dnewapi") == ("ABI103" if interp.version[1] < 9 else None)
