"""Differential tests: abiscan's prediction against what real CPythons do.

For every local CPython 3.8+ (pyenv) and every case below, the same stack of
layer zips (and function code) is scanned by abiscan and also laid out on disk
the way Lambda lays it out (layers into ``/opt``, the function into
``/var/task``, both re-rooted under a temp dir). Each module is then imported
for real, in a fresh ``python -I -S``, with the target's ``/var/task`` and
``/opt`` entries first on ``sys.path``. The interpreter is the truth: abiscan
must predict the same outcome, exception type, message (tmp prefix removed)
and, for successful imports, the same file.

Each case also states what the real interpreter is expected to do. That check
runs first and guards the harness itself: if it fails, the stack was not
built as intended, and comparing abiscan with it would prove nothing.
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from native import (
    ExtensionSpec,
    Interpreter,
    NativeBuilder,
    RealOutcome,
    discover_interpreters,
    real_import,
    write_tree,
    write_zip,
)

Members = Mapping[str, bytes | str]

INTERPRETERS = discover_interpreters()
MNFE = "ModuleNotFoundError"

# Enough to use both cores; each probe is one short-lived interpreter.
_WORKERS = 4


@dataclass(frozen=True)
class Expect:
    """What the real interpreter must do for the case to be built right."""

    outcome: str
    type: str | None = None
    file: str | None = None  # target path of the file that must load


@dataclass
class Stack:
    layers: list[Members]
    function: Members | None = None
    function_as_dir: bool = False
    expect: dict[str, Expect] = field(default_factory=dict)


@dataclass(frozen=True)
class Ctx:
    interp: Interpreter
    build: NativeBuilder
    others: tuple[Interpreter, ...]

    @property
    def minor(self) -> int:
        return self.interp.version[1]

    @property
    def suffix(self) -> str:
        return self.interp.suffix_for(self.minor)

    def other_suffix(self, delta: int) -> str:
        return self.interp.suffix_for(self.minor + delta)

    def ext(self, name: str, *, init: str | None = None, limited_api: int | None = None) -> bytes:
        spec = ExtensionSpec(name, init=init, limited_api=limited_api)
        return self.build.extension(self.interp, spec)

    @property
    def abi3_loads(self) -> bool:
        # Free-threaded builds drop ".abi3.so" from their suffixes.
        return ".abi3.so" in self.interp.extension_suffixes


def case_other_version_tags(c: Ctx) -> Stack:
    return Stack(
        layers=[
            {f"python/_backend{c.other_suffix(-1)}": c.ext("_backend")},
            {f"python/_backend2{c.other_suffix(+1)}": c.ext("_backend2")},
        ],
        expect={"_backend": Expect("error", MNFE), "_backend2": Expect("error", MNFE)},
    )


def case_abi3(c: Ctx) -> Stack:
    if not c.abi3_loads:
        pytest.skip(f"CPython {c.interp.short}{c.interp.abiflags} has no limited API build")
    return Stack(
        layers=[{"python/mod.abi3.so": c.ext("mod", limited_api=0x03080000)}],
        expect={"mod": Expect("ok", file="/opt/python/mod.abi3.so")},
    )


def case_untagged_so(c: Ctx) -> Stack:
    return Stack(
        layers=[{"python/mod.so": c.ext("mod")}],
        expect={"mod": Expect("ok", file="/opt/python/mod.so")},
    )


def case_package_shadows_module(c: Ctx) -> Stack:
    return Stack(
        layers=[{"python/shadow/__init__.py": "WHO = 'package'\n",
                 "python/shadow.py": "WHO = 'module'\n"}],
        expect={"shadow": Expect("ok", file="/opt/python/shadow/__init__.py")},
    )


def _function_over_layer(as_dir: bool) -> Stack:
    return Stack(
        layers=[{"python/thing/__init__.py": "WHO = 'layer'\n"}],
        function={"thing.py": "WHO = 'function'\n"},
        function_as_dir=as_dir,
        expect={"thing": Expect("ok", file="/var/task/thing.py")},
    )


def case_function_zip_shadows_layer(c: Ctx) -> Stack:
    return _function_over_layer(as_dir=False)


def case_function_dir_shadows_layer(c: Ctx) -> Stack:
    return _function_over_layer(as_dir=True)


def case_namespace_over_two_layers(c: Ctx) -> Stack:
    site = f"python/lib/python3.{c.minor}/site-packages"
    return Stack(
        layers=[{"python/nsp/a.py": "A = 1\n"}, {f"{site}/nsp/b.py": "B = 1\n"}],
        expect={
            "nsp": Expect("ok"),
            "nsp.a": Expect("ok", file="/opt/python/nsp/a.py"),
            "nsp.b": Expect("ok", file=f"/opt/{site}/nsp/b.py"),
        },
    )


def case_wrong_machine_elf(c: Ctx) -> Stack:
    from abiscan.testing.elf_writer import build_shared_object

    if not c.abi3_loads:
        pytest.skip(f"CPython {c.interp.short}{c.interp.abiflags} does not load .abi3.so")
    return Stack(
        layers=[{
            "python/armmod.abi3.so": build_shared_object(
                machine="aarch64", exports=["PyInit_armmod"]
            ),
            "python/m32.abi3.so": build_shared_object(
                bits=32, machine="i386", exports=["PyInit_m32"]
            ),
        }],
        expect={"armmod": Expect("error", "ImportError"), "m32": Expect("error", "ImportError")},
    )


def case_missing_pyinit(c: Ctx) -> Stack:
    return Stack(
        layers=[{f"python/noinit{c.suffix}": c.ext("noinit", init="PyInit_other")}],
        expect={"noinit": Expect("error", "ImportError")},
    )


def case_not_elf(c: Ctx) -> Stack:
    # Mach-O magic: what a macOS build of a wheel accidentally zipped up contains.
    return Stack(
        layers=[{f"python/fake{c.suffix}": b"\xcf\xfa\xed\xfe" + bytes(4092)}],
        expect={"fake": Expect("error", "ImportError")},
    )


def case_layer_for_other_version(c: Ctx) -> Stack:
    return Stack(
        layers=[{f"python/lib/python3.{c.minor - 1}/site-packages/oldpkg/__init__.py": ""}],
        expect={"oldpkg": Expect("error", MNFE)},
    )


def case_extension_submodule(c: Ctx) -> Stack:
    return Stack(
        layers=[{
            "python/pkgx/__init__.py": "",
            f"python/pkgx/_speed{c.suffix}": c.ext("_speed"),
            f"python/pkgx/_slow{c.other_suffix(-1)}": c.ext("_slow"),
        }],
        expect={
            "pkgx": Expect("ok", file="/opt/python/pkgx/__init__.py"),
            "pkgx._speed": Expect("ok", file=f"/opt/python/pkgx/_speed{c.suffix}"),
            "pkgx._slow": Expect("error", MNFE),
        },
    )


def case_pure_python_fallback(c: Ctx) -> Stack:
    return Stack(
        layers=[{"python/fb.py": "FAST = False\n", f"python/fb{c.other_suffix(-1)}": c.ext("fb")}],
        expect={"fb": Expect("ok", file="/opt/python/fb.py")},
    )


def case_sourceless_bytecode(c: Ctx) -> Stack:
    # Any other minor version has a different magic number.
    other = next((o for o in c.others if o.version[:2] != c.interp.version[:2]), None)
    if other is None:
        pytest.skip("needs a second local CPython to write foreign bytecode")
    return Stack(
        layers=[{
            "python/oldbc.pyc": c.build.bytecode(other, "X = 'old'\n"),
            "python/newbc.pyc": c.build.bytecode(c.interp, "X = 'new'\n"),
        }],
        expect={
            "oldbc": Expect("error", "ImportError"),
            "newbc": Expect("ok", file="/opt/python/newbc.pyc"),
        },
    )


def case_failing_parent_package(c: Ctx) -> Stack:
    # "import pkgp._sub" imports pkgp first; its wrong-machine __init__ fails both.
    from abiscan.testing.elf_writer import build_shared_object

    return Stack(
        layers=[{
            f"python/pkgp/__init__{c.suffix}": build_shared_object(
                machine="aarch64", exports=["PyInit_pkgp"]
            ),
            f"python/pkgp/_sub{c.suffix}": c.ext("_sub"),
            "python/pkgq/__init__.py": "",
            f"python/pkgq/_old{c.other_suffix(-1)}": c.ext("_old"),
        }],
        expect={
            "pkgp": Expect("error", "ImportError"),
            "pkgp._sub": Expect("error", "ImportError"),
            "pkgq._old": Expect("error", MNFE),
        },
    )


CASES: dict[str, Callable[[Ctx], Stack]] = {
    name.removeprefix("case_"): fn
    for name, fn in dict(globals()).items()
    if name.startswith("case_") and callable(fn)
}


@pytest.fixture(scope="session")
def native_builder(tmp_path_factory: pytest.TempPathFactory) -> NativeBuilder:
    return NativeBuilder(tmp_path_factory.mktemp("native"))


def _interpreter_params() -> list[object]:
    if not INTERPRETERS:
        return [pytest.param(None, marks=pytest.mark.skip(
            reason="no pyenv CPython 3.8+ found under $PYENV_ROOT or ~/.pyenv"))]
    return [pytest.param(i, id=i.short + i.abiflags) for i in INTERPRETERS]


def _lay_out(stack: Stack, layer_zips: Sequence[Path], function: Path | None, root: Path) -> None:
    """Extract the stack as Lambda does: layers in order into /opt, function into /var/task."""
    opt = root / "opt"
    task = root / "var" / "task"
    opt.mkdir(parents=True)
    task.mkdir(parents=True)
    for layer in layer_zips:
        with zipfile.ZipFile(layer) as zf:
            zf.extractall(opt)  # later layers overwrite earlier files, as on Lambda
    if function is not None:
        if function.is_dir():
            shutil.copytree(function, task, dirs_exist_ok=True)
        else:
            with zipfile.ZipFile(function) as zf:
                zf.extractall(task)


def _mapped_sys_path(sys_path: Sequence[str], root: Path) -> list[Path]:
    def lambda_owned(p: str) -> bool:
        return any(p == r or p.startswith(r + "/") for r in ("/var/task", "/opt"))

    return [root / p.lstrip("/") for p in sys_path if lambda_owned(p)]


def _norm(text: str | None, root: Path) -> str | None:
    return None if text is None else text.replace(str(root), "")


def _describe_real(r: RealOutcome) -> str:
    if r.outcome == "ok":
        return f"ok (file={r.file!r})"
    return f"{r.outcome} {r.type}: {r.message!r}"


_CAPTURED: dict[Path, object] = {}


def _captured_target(interp: Interpreter) -> object:
    from abiscan.target.interpreters import capture_target
    from abiscan.target.profiles import TargetError

    if interp.executable not in _CAPTURED:
        try:
            _CAPTURED[interp.executable] = capture_target(interp.executable)
        except TargetError:
            _CAPTURED[interp.executable] = None
    return _CAPTURED[interp.executable]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("interp", _interpreter_params())
def test_prediction_matches_real_import(
    interp: Interpreter, case: str, native_builder: NativeBuilder, tmp_path: Path
) -> None:
    from abiscan import scan
    from abiscan.target.profiles import custom_target

    ctx = Ctx(interp, native_builder, tuple(i for i in INTERPRETERS if i != interp))
    stack = CASES[case](ctx)

    inputs = tmp_path / "inputs"
    layer_zips = [write_zip(inputs / f"layer{n}.zip", m) for n, m in enumerate(stack.layers, 1)]
    function: Path | None = None
    if stack.function is not None:
        function = (
            write_tree(inputs / "function", stack.function)
            if stack.function_as_dir
            else write_zip(inputs / "function.zip", stack.function)
        )

    # The target captured from the interpreter itself (what `abiscan scan
    # --interpreter` does); the parameter-built profile is the fallback.
    target = _captured_target(interp) or custom_target(
        interp.short, "x86_64", "2.36", free_threaded=interp.free_threaded
    )
    report = scan(layer_zips, function=function, target=target, imports=list(stack.expect))

    root = (tmp_path / "root").resolve()
    _lay_out(stack, layer_zips, function, root)
    entries = _mapped_sys_path(target.sys_path, root)

    names = list(dict.fromkeys([*(m.name for m in report.modules), *stack.expect]))
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        raw = pool.map(lambda n: real_import(interp, n, entries), names)
        reals = {
            n: replace(r, message=_norm(r.message, root), file=_norm(r.file, root))
            for n, r in zip(names, raw, strict=True)
        }

    where = f"CPython {'.'.join(map(str, interp.version))}{interp.abiflags} ({interp.executable})"

    # The harness checks itself before it judges abiscan.
    broken = []
    for name, exp in stack.expect.items():
        r = reals[name]
        wrong_file = exp.file is not None and r.file != exp.file
        if r.outcome != exp.outcome or r.type != exp.type or wrong_file:
            broken.append(f"  {name}: case expects {exp}, real {_describe_real(r)}")
    if broken:
        pytest.fail(f"harness error in case {case!r} on {where}: the stack does not do what "
                    "it was built to do:\n" + "\n".join(broken), pytrace=False)

    disagreements = []
    for name in names:
        real = reals[name]
        pred = report.module(name)
        if pred is None:
            disagreements.append(f"  {name}: predicted nothing (not in report.modules); "
                                 f"real {_describe_real(real)}")
            continue
        ptype = pred.error.type if pred.error else None
        pmsg = pred.error.message if pred.error else None
        same = (pred.outcome, ptype, pmsg) == (real.outcome, real.type, real.message)
        if same and real.outcome == "ok":
            same = pred.path == real.file
        if not same:
            predicted = (f"ok (path={pred.path!r}, kind={pred.kind})" if pred.outcome == "ok"
                         else f"{pred.outcome} {ptype}: {pmsg!r} (path={pred.path!r}, "
                              f"reason={pred.reason!r})")
            disagreements.append(f"  {name}:\n    predicted {predicted}\n"
                                 f"    real      {_describe_real(real)}")
    if disagreements:
        pytest.fail(f"abiscan disagrees with {where} in case {case!r}:\n"
                    + "\n".join(disagreements), pytrace=False)
