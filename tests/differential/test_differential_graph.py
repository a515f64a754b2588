"""Differential tests of the import graph: abiscan's propagated outcomes against real CPythons.

Same harness as ``test_differential.py`` (every local pyenv CPython 3.8+,
the stack laid out as Lambda lays it out, one fresh ``python -I -S`` per
module), with stacks whose modules import each other: guarded and unguarded
imports of broken extensions, relative imports, imports inside functions,
``TYPE_CHECKING`` blocks, circular imports, version checks, re-raising
handlers, a C extension that imports a module by name from its ``PyInit_``,
and sources that use syntax newer than the target.

Outcome, exception type and message must match exactly, except for
``SyntaxError`` (and its subclasses), where the type and the line must match
and the message only when abiscan says its wording is exact: CPython's
wording changes between versions and abiscan parses with the grammar of the
interpreter that runs it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from test_differential import (
    Ctx,
    Expect,
    Stack,
    _captured_target,
    _describe_real,
    _lay_out,
    _mapped_sys_path,
    _norm,
)

from abiscan.testing.dists import installed

from helpers import selecting_package
from native import (
    ExtensionSpec,
    Interpreter,
    NativeBuilder,
    discover_interpreters,
    real_import,
    write_zip,
)

INTERPRETERS = discover_interpreters()
MNFE = "ModuleNotFoundError"
_WORKERS = 4

_GUARDED = "try:\n    from . import _speedups\nexcept ImportError:\n    _speedups = None\n"


def _broken(c: Ctx, name: str) -> bytes:
    """An extension tagged for the next CPython: the target never tries it."""
    return c.ext(name)


def case_guarded_and_unguarded_extension(c: Ctx) -> Stack:
    other = c.other_suffix(+1)
    return Stack(
        layers=[{
            "python/guarded/__init__.py": _GUARDED,
            f"python/guarded/_speedups{other}": _broken(c, "_speedups"),
            "python/unguarded/__init__.py": "from . import _speedups\n",
            f"python/unguarded/_speedups{other}": _broken(c, "_speedups"),
            "python/direct.py": "import _backend\n",
            f"python/_backend{other}": _broken(c, "_backend"),
        }],
        expect={
            "guarded": Expect("ok"),
            "unguarded": Expect("error", "ImportError"),
            "direct": Expect("error", MNFE),
        },
    )


def case_guard_kinds(c: Ctx) -> Stack:
    other = c.other_suffix(+1)
    body = "try:\n    import _backend\nexcept {}:\n    _backend = None\n"
    return Stack(
        layers=[{
            f"python/_backend{other}": _broken(c, "_backend"),
            "python/g_mnfe.py": body.format("ModuleNotFoundError"),
            "python/g_exc.py": body.format("Exception"),
            "python/g_bare.py": body.replace("except {}:", "except:"),
            "python/g_tuple.py": body.format("(OSError, ImportError)"),
            "python/g_base.py": body.format("BaseException"),
            "python/g_other.py": body.format("(OSError, AttributeError)"),
            # "cannot import name" is an ImportError, not a ModuleNotFoundError.
            "python/g_pkg/__init__.py":
                "try:\n    from . import _x\nexcept ModuleNotFoundError:\n    _x = None\n",
            f"python/g_pkg/_x{other}": _broken(c, "_x"),
            "python/g_suppress.py":
                "import contextlib\nwith contextlib.suppress(ImportError):\n    import _backend\n",
        }],
        expect={
            "g_mnfe": Expect("ok"), "g_exc": Expect("ok"), "g_bare": Expect("ok"),
            "g_tuple": Expect("ok"), "g_base": Expect("ok"),
            "g_other": Expect("error", MNFE), "g_pkg": Expect("error", "ImportError"),
            "g_suppress": Expect("ok"),
        },
    )


def case_relative_chain(c: Ctx) -> Stack:
    return Stack(
        layers=[{
            "python/app/__init__.py": "from .sub.core import run\n",
            "python/app/sub/__init__.py": "",
            "python/app/sub/core.py": "from ..helpers import helper\n\n\ndef run():\n"
                                      "    return helper()\n",
            "python/app/helpers.py": "import _backend\n\n\ndef helper():\n    return 1\n",
            f"python/_backend{c.other_suffix(-1)}": _broken(c, "_backend"),
            "python/beyond/__init__.py": "from ... import nothing\n",
            "python/toplevel_rel.py": "from . import sibling\n",
            "python/okpkg/__init__.py": "from .a import A\nfrom . import b\n",
            "python/okpkg/a.py": "A = 1\n",
            "python/okpkg/b.py": "from .a import A as B\n",
        }],
        expect={
            "app": Expect("error", MNFE),
            "beyond": Expect("error", "ImportError" if c.minor >= 9 else "ValueError"),
            "toplevel_rel": Expect("error", "ImportError"),
            "okpkg": Expect("ok"),
        },
    )


def case_runtime_only_imports(c: Ctx) -> Stack:
    """Imports in function bodies, lambdas and TYPE_CHECKING blocks never run at import."""
    return Stack(
        layers=[{
            f"python/_backend{c.other_suffix(+1)}": _broken(c, "_backend"),
            "python/lazy.py": "def load():\n    import _backend\n    return _backend\n\n"
                              "get = lambda: __import__('_backend')\n",
            "python/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                               "    import _backend\n",
            "python/typed_else.py": "import typing\nif typing.TYPE_CHECKING:\n    pass\nelse:\n"
                                    "    import _backend\n",
            "python/in_class.py": "class Loader:\n    import _backend\n",
            "python/in_main.py": "if __name__ == '__main__':\n    import _backend\n",
        }],
        expect={
            "lazy": Expect("ok"), "typed": Expect("ok"),
            "typed_else": Expect("error", MNFE), "in_class": Expect("error", MNFE),
            "in_main": Expect("ok"),
        },
    )


def case_circular_and_parents(c: Ctx) -> Stack:
    other = c.other_suffix(+1)
    return Stack(
        layers=[{
            "python/circ_a.py": "import circ_b\nX = 1\n",
            "python/circ_b.py": "import circ_a\nimport _backend\n",
            "python/loop_a.py": "import loop_b\n",
            "python/loop_b.py": "import loop_a\n",
            f"python/_backend{other}": _broken(c, "_backend"),
            "python/parentfail/__init__.py": "import _backend\n",
            "python/parentfail/sub.py": "X = 1\n",
            "python/cyc/__init__.py": "from . import a\n",
            "python/cyc/a.py": "from cyc import nothing\n",
        }],
        expect={
            "circ_a": Expect("error", MNFE), "circ_b": Expect("error", MNFE),
            "loop_a": Expect("ok"), "parentfail.sub": Expect("error", MNFE),
            "cyc": Expect("error", "ImportError"),
        },
    )


def case_dynamic_and_conditions(c: Ctx) -> Stack:
    broken_on = c.minor >= 11
    return Stack(
        layers=[{
            f"python/_backend{c.other_suffix(+1)}": _broken(c, "_backend"),
            "python/dyn_a.py": "import importlib\nmod = importlib.import_module('_backend')\n",
            "python/dyn_b.py": "mod = __import__('_backend')\n",
            "python/ver.py": "import sys\nif sys.version_info >= (3, 11):\n    import _backend\n",
            "python/plat.py": "import sys\nif sys.platform == 'win32':\n    import _backend\n",
            "python/reraise.py": "try:\n    import _backend\nexcept ImportError:\n"
                                 "    raise ImportError('reraise needs _backend')\n",
            "python/okmod.py": "X = 1\n",
            "python/missing_name.py": "from okmod import missing\n",
            "python/stdlib_user.py": "import os, json\nfrom collections import OrderedDict\n",
            "python/flags.py": "has_b = False\ntry:\n    import _backend\n    has_b = True\n"
                               "except ImportError:\n    pass\nif has_b:\n"
                               "    from _backend import x\nelse:\n    import okmod\n",
            "python/flags_neg.py": "ok = True\ntry:\n    import _backend\n"
                                   "except ImportError:\n    ok = False\nif not ok:\n"
                                   "    import _backend\n",
        }],
        expect={
            "dyn_a": Expect("error", MNFE), "dyn_b": Expect("error", MNFE),
            "ver": Expect("error", MNFE) if broken_on else Expect("ok"),
            "plat": Expect("ok"),
            "reraise": Expect("error", "ImportError"),
            "missing_name": Expect("error", "ImportError"),
            "stdlib_user": Expect("ok"),
            "flags": Expect("ok"), "flags_neg": Expect("error", MNFE),
        },
    )


_CIMP = """
/* What cffi's out-of-line API mode puts in .rodata next to the module's name. */
const char *{name}_cffi_mark = "_init_cffi_1_0_external_module";
static struct PyModuleDef {name}_def = {{ PyModuleDef_HEAD_INIT, "{name}", NULL, 0, NULL }};

PyMODINIT_FUNC PyInit_{name}(void)
{{
    /* Import a module by name while initialising, as cffi's generated init
       does; fail the same way it does when it cannot be imported. */
    PyObject *dep = PyImport_ImportModule("{dep}");
    if (dep == NULL)
        return NULL;
    Py_DECREF(dep);
    return PyModule_Create(&{name}_def);
}}
"""

_LAZY = """
static PyObject *{name}_later(PyObject *self, PyObject *unused)
{{
    /* Imported only when called, as lxml.etree imports lxml.cssselect. */
    return PyImport_ImportModule("{dep}");
}}
static PyMethodDef {name}_methods[] = {{
    {{"later", {name}_later, METH_NOARGS, NULL}}, {{NULL, NULL, 0, NULL}}
}};
static struct PyModuleDef {name}_def = {{
    PyModuleDef_HEAD_INIT, "{name}", NULL, 0, {name}_methods
}};

PyMODINIT_FUNC PyInit_{name}(void)
{{
    return PyModule_Create(&{name}_def);
}}
"""


def _importing_ext(c: Ctx, name: str, dep: str, template: str = _CIMP) -> bytes:
    spec = ExtensionSpec(name, init=f"PyInit_{name}_template", extra_c=template.format(
        name=name, dep=dep))
    return c.build.extension(c.interp, spec)


def case_extension_imports_at_init(c: Ctx) -> Stack:
    return Stack(
        layers=[{
            f"python/_cffi_backend{c.other_suffix(+1)}": _broken(c, "_cffi_backend"),
            f"python/cimp{c.suffix}": _importing_ext(c, "cimp", "_cffi_backend"),
            f"python/cimp_lazy{c.suffix}": _importing_ext(c, "cimp_lazy", "lazydep", _LAZY),
            "python/lazydep/__init__.py": "raise ImportError('not now')\n",
            "python/uses_cimp.py": "try:\n    import cimp\nexcept ImportError:\n"
                                   "    cimp = None\n",
            "python/needs_cimp.py": "import cimp\n",
        }],
        expect={
            "cimp": Expect("error", MNFE), "cimp_lazy": Expect("ok"),
            "uses_cimp": Expect("ok"), "needs_cimp": Expect("error", MNFE),
        },
    )


_REGISTERS = """
#include <stdio.h>
static struct PyModuleDef {name}_def = {{ PyModuleDef_HEAD_INIT, "{name}", NULL, 0, NULL }};

PyMODINIT_FUNC PyInit_{name}(void)
{{
    /* pybind11's def_submodule: the parent's name, a dot and the short name, joined
       at run time, put in sys.modules by PyImport_AddModule. */
    char full[256];
    PyObject *m = PyModule_Create(&{name}_def), *sub;
    if (m == NULL)
        return NULL;
    snprintf(full, sizeof full, "%s.%s", PyModule_GetName(m), "{sub}");
    sub = PyImport_AddModule(full);
    if (sub == NULL || PyModule_AddIntConstant(sub, "BIGINT", 20) < 0)
        return NULL;
    Py_INCREF(sub);
    if (PyModule_AddObject(m, "{sub}", sub) < 0)
        return NULL;
    return m;
}}
"""




def case_import_mechanisms(c: Ctx) -> Stack:
    """The import-system mechanisms of tests/unit/test_import_mechanisms.py."""
    broken = {f"python/md/_ext{c.other_suffix(+1)}": _broken(c, "_ext"),
              f"python/sa/cy/ext{c.other_suffix(+1)}": _broken(c, "ext")}
    regext = ExtensionSpec("regext", init="PyInit_regext_template",
                           extra_c=_REGISTERS.format(name="regext", sub="_sqltypes"))
    overlay = ("import sys\nfrom types import ModuleType\n"
               "class _Overlay(ModuleType):\n"
               "    @classmethod\n    def replace_module(cls, name):\n"
               "        self = cls(name)\n        sys.modules[name] = self\n"
               "    def __getattr__(self, attr):\n        if attr.startswith('__'):\n"
               "            raise AttributeError(attr)\n        return 1\n"
               "_Overlay.replace_module(__name__)\n")
    sources = {
        # A cycle entered from a's side by the package, then "import cyc.b".
        "python/cyc/__init__.py": "from . import a\n",
        "python/cyc/a.py": "X = 1\nfrom .b import Y\n",
        "python/cyc/b.py": "from .a import X\nY = 2\n",
        # multidict's fallback when its extension is never tried.
        "python/md/__init__.py": "from ._compat import USE_EXT\nif not USE_EXT:\n"
                                 "    from ._py import X\nelse:\n    from ._ext import X\n",
        "python/md/_compat.py": "USE_EXT = True\ntry:\n    from . import _ext\n"
                                "except ImportError:\n    USE_EXT = False\n",
        "python/md/_py.py": "X = 1\n",
        "python/usesmain.py": "import __main__ as _m\nimport __main__\n",
        # psycopg.pq: names bound by a function that declares them global.
        "python/pq/__init__.py": "Escaping: type\ndef load():\n    global Escaping\n"
                                 "    from . import impl as module\n"
                                 "    Escaping = module.Escaping\nload()\n",
        "python/pq/impl.py": "class Escaping:\n    pass\n",
        "python/usepq.py": "from pq import Escaping\n",
        # passlib.utils.compat: the module replaces itself in sys.modules.
        "python/compat.py": overlay,
        "python/usecompat.py": "from compat import SafeConfigParser\n",
        # sqlalchemy.util._has_cy: a called function's leading imports, in a try.
        "python/sa/__init__.py": "",
        "python/sa/cy/__init__.py": "",
        "python/sa/has_cy.py": "def _import_cy():\n    from .cy import ext\n    return ext\n"
                               "try:\n    _import_cy()\nexcept ImportError:\n    HAS_CY = False\n"
                               "else:\n    HAS_CY = True\n",
        "python/sa/coll.py": "from .has_cy import HAS_CY\nif not HAS_CY:\n    X = 1\n"
                             "else:\n    from .cy.ext import X\n",
        "python/sa/unguarded.py": "def load():\n    import sa.cy.ext\nload()\n",
        # duckdb: a submodule the extension registers while it initialises.
        f"python/regext{c.suffix}": c.build.extension(c.interp, regext),
        "python/usereg.py": "from regext._sqltypes import BIGINT\n",
        "python/absentreg.py": "import regext._absent\n",
        # psycopg.pq's import_from_libpq(): a called function picks the implementation
        # and binds __impl__ for the module; the binary one is for another Python.
        **selecting_package(),
        f"python/sel_binary/pq{c.other_suffix(+1)}": _broken(c, "pq"),
    }
    return Stack(
        layers=[{**broken, **sources}],
        expect={
            "cyc": Expect("ok"), "cyc.b": Expect("ok"), "md": Expect("ok"),
            "usesmain": Expect("ok"), "usepq": Expect("ok"), "usecompat": Expect("ok"),
            "sa.coll": Expect("ok"), "sa.unguarded": Expect("error", MNFE),
            "usereg": Expect("ok"), "absentreg": Expect("error", MNFE),
            "sel._cmodule": Expect("ok"), "sel.user": Expect("ok"),
        },
    )


def case_newer_syntax(c: Ctx) -> Stack:
    match_src = "x = 1\nmatch x:\n    case 1:\n        pass\n"
    rejects_match = c.minor < 10
    return Stack(
        layers=[{
            "python/newsyntax.py": match_src,
            "python/exstar.py": "try:\n    pass\nexcept* ValueError:\n    pass\n",
            "python/missing_colon.py": "x = 1\nif x\n    pass\n",
            "python/bad_indent.py": "def f():\npass\n",
            "python/guards_syntax.py":
                "try:\n    import newsyntax\nexcept ImportError:\n    newsyntax = None\n",
            "python/catches_syntax.py":
                "try:\n    import newsyntax\nexcept Exception:\n    newsyntax = None\n",
        }],
        expect={
            "newsyntax": Expect("error", "SyntaxError") if rejects_match else Expect("ok"),
            "exstar": Expect("error", "SyntaxError") if c.minor < 11 else Expect("ok"),
            "missing_colon": Expect("error", "SyntaxError"),
            "bad_indent": Expect("error", "IndentationError"),
            "guards_syntax": (Expect("error", "SyntaxError") if rejects_match
                              else Expect("ok")),
            "catches_syntax": Expect("ok"),
        },
    )


# Sources the parser accepts and the compiler rejects (a SyntaxError on import, before
# any line runs), each also compiled by CPython 3.8 to 3.13 while writing
# abiscan.simulate.python.compile_time: where they differ in wording or line.
_COMPILE_ERRORS = {
    "ret_mod": "x = 1\nif x:\n    return x\n",
    "ret_class": "class C:\n    return 1\n",
    "break_fn": "def f():\n    break\n",
    "cont_fn": "def f():\n    continue\n",
    "dup_arg": "def f(a, a):\n    pass\n",
    "dup_lambda": "g = lambda a, a: 1\n",
    "nonlocal_mod": "nonlocal q\n",
    "nonlocal_nobind": "def f():\n    nonlocal y\n",
    "global_after": "def f():\n    x = 1\n    global x\n",
    "global_param": "def f(x):\n    global x\n",
    "ann_global": "def f():\n    global x\n    x: int = 1\n",
    "star_in_fn": "x = 1\n\n@dec\ndef f():\n    y = 1\n    from os import *\n",
    "star_in_class": "class C:\n    from os import *\n",
    "yield_mod": "x = yield 1\n",
    "await_mod": "await x\n",
    "await_fn": "def f():\n    await x\n",
    "future_late": "x = 1\nfrom __future__ import annotations\n",
    "future_bad": "from __future__ import nope\n",
    "two_stars": "*a, *b = [1, 2]\n",
    "star_alone": "*a = [1]\n",
    "star_expr": "x = *a\n",
    "yield_from_async": "async def f():\n    yield from x\n",
    "ret_async_gen": "async def f():\n    yield 1\n    return 2\n",
    "bare_except": "x = 1\ntry:\n    pass\n    y = (2,\n         3)\nexcept:\n    pass\n"
                   "except ValueError:\n    pass\n",
    "bare_except_2": "try:\n    pass\nexcept KeyError:\n    def g():\n        return 9\n"
                     "except:\n    z = 3\nexcept ValueError:\n    pass\n",
    "kw_repeat": "f(a=1, a=2)\n",
    "debug_assign": "__debug__ = 1\n",
    "async_comp": "x = 1\n\ndef f():\n    return [x async for x in y]\n",
    "walrus_class": "class C:\n    [(y := 1) for x in range(3)]\n",
    "walrus_rebind": "[(x := 1) for x in range(3)]\n",
    "yield_comp": "def f():\n    return [(yield x) for x in y]\n",
    "match_capture": "match x:\n    case y:\n        pass\n    case 1:\n        pass\n",
    "used_prior_global": "def f():\n    print(x)\n    global x\n",
    "used_prior_nonlocal": "def g():\n    x = 1\n    def f():\n        print(x)\n"
                           "        nonlocal x\n",
    "param_nonlocal": "def g():\n    x = 1\n    def f(x):\n        nonlocal x\n",
    "ann_nonlocal": "def g():\n    x = 1\n    def f():\n        nonlocal x\n"
                    "        x: int = 1\n",
    "yield_genexp": "def f():\n    return ((yield x) for x in y)\n",
    "yield_class": "class C:\n    yield 1\n",
    "walrus_iter": "[x for x in (y := [1, 2])]\n",
}


def case_compile_errors(c: Ctx) -> Stack:
    sources = {f"python/ce_{name}.py": src for name, src in _COMPILE_ERRORS.items()}
    return Stack(
        layers=[{
            **sources,
            "python/ce_fine.py": "def f(a, b):\n    y = a is 1\n    return '\\d'\n",
            "python/ce_guarded.py":
                "try:\n    import ce_ret_mod\nexcept ImportError:\n    pass\n",
            "python/ce_caught.py":
                "try:\n    import ce_break_fn\nexcept SyntaxError:\n    pass\n",
            # Refused before any grammar: ValueError up to 3.10, SyntaxError from 3.11.4.
            "python/ce_nul.py": b"import json\x00\n",
            "python/ce_nul_value.py": "try:\n    import ce_nul\nexcept ValueError:\n    pass\n",
            "python/ce_nul_syntax.py":
                "try:\n    import ce_nul\nexcept SyntaxError:\n    pass\n",
        }],
        expect={
            **{f"ce_{name}": Expect("error", "SyntaxError") for name in _COMPILE_ERRORS},
            "ce_fine": Expect("ok"),
            "ce_guarded": Expect("error", "SyntaxError"),
            "ce_caught": Expect("ok"),
            "ce_nul": Expect("error", "ValueError" if c.minor < 11 else "SyntaxError"),
            "ce_nul_value": Expect("ok") if c.minor < 11 else Expect("error", "SyntaxError"),
            "ce_nul_syntax": Expect("error", "ValueError") if c.minor < 11 else Expect("ok"),
        },
    )


def case_evaluated_conditions(c: Ctx) -> Stack:
    """The evaluator's rules, each in one module, against the real interpreter."""
    broken = {f"python/_backend{c.other_suffix(+1)}": _broken(c, "_backend")}
    sources = {
        # 'x' in globals() before and after the first assignment (numpy's reload guard).
        "python/reload_guard.py": "if '_loaded' in globals():\n    raise RuntimeError('again')\n"
                                  "_loaded = True\n",
        "python/late_guard.py": "_loaded = True\nif '_loaded' in globals():\n"
                                "    raise RuntimeError('loaded twice')\n",
        # A name read before any binding: NameError, caught (numpy's __NUMPY_SETUP__).
        "python/setup_flag.py": "try:\n    __SETUP__\nexcept NameError:\n    __SETUP__ = False\n"
                                "if __SETUP__:\n    import _backend\n",
        # Values from another module of the stack (psutil's WINDOWS, PyYAML's flag).
        "python/plat_consts.py": "import os, sys\nWINDOWS = os.name == 'nt'\n"
                                 "LINUX = sys.platform.startswith('linux')\n",
        "python/uses_consts.py": "from plat_consts import WINDOWS, LINUX\nif WINDOWS:\n"
                                 "    import _backend\nif not LINUX:\n    import _backend\n",
        "python/flagpkg/__init__.py": "try:\n    from _backend import *\n    __with_c__ = True\n"
                                      "except ImportError:\n    __with_c__ = False\n",
        "python/shim.py": "import flagpkg\nif not getattr(flagpkg, '__with_c__', False):\n"
                          "    raise ModuleNotFoundError(\"No module named 'shim'\")\n",
        "python/has_attr.py": "import plat_consts\nif hasattr(plat_consts, 'MACOS'):\n"
                              "    import _backend\n",
        # Target-fixed calls.
        "python/impl.py": "import platform, struct, sys\n"
                          "if platform.python_implementation() in ('PyPy',):\n    import _backend\n"
                          "if struct.calcsize('P') != 8 or sys.maxsize < 2**32:\n"
                          "    import _backend\n",
        # What a fresh interpreter fixes: the builtin excepthook (exceptiongroup, anyio),
        # no PyPy attributes (msgpack), an environment switch nobody set (sympy).
        "python/fresh.py": "import os, sys\n"
                           "if getattr(sys.excepthook, '__name__', None) in ('apport_excepthook',"
                           " 'partial_apport_excepthook'):\n    import apport_python_hook\n"
                           "if hasattr(sys, 'pypy_version_info') or "
                           "sys.implementation.name != 'cpython':\n    import __pypy__\n"
                           "if os.getenv('ABISCAN_UNSET_SWITCH', 'yes').lower() != 'yes':\n"
                           "    import _backend\n",
        # An undecided feature check whose other side imports an absent optional
        # dependency (tenacity's tornado, dnspython's aioquic): taken as not there.
        "python/optfeat/__init__.py": "import os\nHAVE = os.path.isdir('/no/such/abiscan/dir')\n"
                                      "if HAVE:\n    import absentdep\n",
        "python/optfeat-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: optfeat\n"
                                                 "Version: 1.0\nRequires-Dist: absentdep; "
                                                 "extra == 'fast'\n",
        "python/optfeat-1.0.dist-info/RECORD": "optfeat/__init__.py,,\n",
        # Small module functions the body calls: a flag (tenacity's _has_tornado), a
        # try/import probe (protobuf's _CanImport), an environment read (sympy's _getenv).
        "python/has_fn.py": "try:\n    import absentmod\nexcept ImportError:\n"
                            "    absentmod = None\ndef _has():\n    return absentmod is not None\n"
                            "if _has():\n    import absentmod.sub\n",
        "python/can_fn.py": "import importlib\ndef _can(name):\n    try:\n"
                            "        mod = importlib.import_module(name)\n        if not mod:\n"
                            "            raise ImportError(name)\n        return True\n"
                            "    except ImportError:\n        return False\n"
                            "kind = 'c' if _can('_backend') else ('ok' if _can('okdep') else '')\n"
                            "if kind == 'c':\n    from _backend import x\n"
                            "if kind == 'ok':\n    from okdep import not_there\n",
        "python/env_fn.py": "def _getenv(key, default=None):\n    from os import getenv\n"
                            "    return getenv(key, default)\n"
                            "USE = _getenv('ABISCAN_UNSET_SWITCH', 'yes').lower()\n"
                            "if USE == 'debug':\n    import _backend\nelif USE != 'yes':\n"
                            "    raise RuntimeError('unrecognized value: %s' % USE)\n",
        # A loop over a constant tuple with try/import/append, then a message (pandas).
        "python/deps.py": "_hard = ('okdep', '_backend')\n_missing = []\nfor _d in _hard:\n"
                          "    try:\n        __import__(_d)\n    except ImportError as _e:\n"
                          "        _missing.append(f'{_d}: {_e}')\nif _missing:\n"
                          "    raise ImportError('Unable to import required dependencies:\\n'"
                          " + '\\n'.join(_missing))\n",
        "python/okdep.py": "X = 1\n",
        # Messages built with %, .format and a variable.
        "python/formats.py": "import sys\nmsg = 'Python %d.%d is %s' % (sys.version_info[0], "
                             "sys.version_info[1], 'refused')\nraise ImportError("
                             "'{}; see {}'.format(msg, 'docs'))\n",
    }
    return Stack(
        layers=[{**broken, **sources}],
        expect={
            "reload_guard": Expect("ok"), "late_guard": Expect("error", "RuntimeError"),
            "setup_flag": Expect("ok"), "uses_consts": Expect("ok"),
            "shim": Expect("error", MNFE), "has_attr": Expect("ok"), "impl": Expect("ok"),
            "deps": Expect("error", "ImportError"), "formats": Expect("error", "ImportError"),
            "fresh": Expect("ok"), "optfeat": Expect("ok"), "has_fn": Expect("ok"),
            "can_fn": Expect("error", "ImportError"), "env_fn": Expect("ok"),
        },
    )


def case_import_context(c: Ctx) -> Stack:
    """What an import meets besides its own files: sys.modules as the chain has filled it
    (psycopg_binary's check), the target's platform (click's assert), a stdlib name
    no Linux CPython has (paramiko's builtins.WindowsError), a star import below the
    line a half-initialised module is paused at (regex) and a lazy module __getattr__
    (langchain-core)."""
    return Stack(
        layers=[{
            "python/fast/__init__.py": "import sys\nif 'slow' not in sys.modules:\n"
                                       "    raise ImportError('slow should be imported first')\n",
            "python/fast/sub.py": "X = 1\n",
            "python/slow/__init__.py": "from . import core\n",
            "python/slow/core.py": "import fast.sub\n",
            "python/startup.py": "import sys\nif 'encodings' not in sys.modules:\n"
                                 "    raise ImportError('no encodings')\n",
            "python/afterfail.py": "import sys\ntry:\n    import nothere\nexcept ImportError:\n"
                                   "    pass\nif sys.modules.get('nothere') is None:\n"
                                   "    raise ImportError('removed again')\n",
            "python/winonly.py": "import sys\nassert sys.platform == 'win32'\n",
            "python/winmsg.py": "import os\nassert os.name == 'nt', 'Windows only: ' + os.name\n",
            "python/winapi.py": "import builtins\n\n\nclass WindowsError(builtins.WindowsError):\n"
                                "    pass\n",
            "python/fromwin.py": "from builtins import WindowsError\n",
            # regex built for another Python: a star import below the paused line.
            "python/rx/__init__.py": "import rx._main\nfrom rx._main import *\n",
            "python/rx/_main.py": "from rx import _native\n",
            f"python/rx/_native{c.other_suffix(+1)}": _broken(c, "_native"),
            # langchain-core's lazy module __getattr__ over a table of submodules.
            "python/lc/__init__.py": "from importlib import import_module\n"
                                     "_dynamic = {'deprecated': 'deprecation', 'beta': 'beta_mod'}"
                                     "\n\n\ndef __getattr__(name):\n    return getattr("
                                     "import_module('.' + _dynamic[name], __name__), name)\n",
            "python/lc/deprecation.py": "import nowhere\n\n\ndef deprecated():\n    pass\n",
            "python/lc/beta_mod.py": "def beta():\n    pass\n",
            "python/uses_bad.py": "from lc import deprecated\n",
            "python/uses_good.py": "from lc import beta\n",
        }],
        expect={
            "fast": Expect("error", "ImportError"), "fast.sub": Expect("error", "ImportError"),
            "slow": Expect("ok"), "startup": Expect("ok"),
            "afterfail": Expect("error", "ImportError"),
            "winonly": Expect("error", "AssertionError"),
            "winmsg": Expect("error", "AssertionError"),
            "winapi": Expect("error", "AttributeError"), "fromwin": Expect("error", "ImportError"),
            "rx": Expect("error", "ImportError"), "uses_bad": Expect("error", MNFE),
            "uses_good": Expect("ok"),
        },
    )


_CORE_INIT = '''\
import os
from npcore.version import version as __version__
try:
    from . import multiarray
except ImportError as exc:
    import sys
    if isinstance(exc, ModuleNotFoundError) and exc.name == "npcore._umath":
        candidates = []
        for path in __path__:
            candidates.extend(f for f in os.listdir(path) if f.startswith("_umath"))
        tag = sys.implementation.cache_tag or sys.implementation.name
        info = f"files: {', '.join(candidates)} for '{tag}' on '{sys.platform}'\\n"
    else:
        info = ""
    major, minor, *_ = sys.version_info
    msg = f"""
Importing failed.
{info}Python {major}.{minor}; version "{__version__}"
Original error was: {exc}
"""
    raise ImportError(msg) from exc
'''
_OUTER_INIT = '''\
try:
    from npcore import thing
except ImportError as e:
    if isinstance(e, ModuleNotFoundError) and e.name == "npouter.__config__":
        raise ImportError("source directory") from e
    raise
'''
_OLD_STYLE = """\
import sys
try:
    from . import _umath
except ImportError as exc:
    msg = '''Python%d.%d; version "%s"
Original error was: %s''' % (sys.version_info[0], sys.version_info[1], "1.0", exc)
    raise ImportError(msg)
"""
_H5_INIT = '''\
try:
    from . import _errors
except ImportError:
    import os.path as _op
    if _op.exists(_op.join(_op.dirname(__file__), "..", "setup.py")):
        raise ImportError("You cannot import h5like from its source tree.")
    else:
        raise
from . import version
'''


def case_runtime_messages(c: Ctx) -> Stack:
    """Messages built at run time from known parts (numpy's, h5py's, regex's forms), and
    which failure comes first."""
    other = c.other_suffix(+1)
    return Stack(
        layers=[{
            "python/npcore/__init__.py": _CORE_INIT,
            "python/npcore/version.py": "version = '2.0.1'\n",
            "python/npcore/multiarray.py": "from npcore._umath import thing\n",
            f"python/npcore/_umath{other}": _broken(c, "_umath"),
            "python/npouter/__init__.py": _OUTER_INIT,
            "python/oldstyle/__init__.py": _OLD_STYLE,
            f"python/oldstyle/_umath{other}": _broken(c, "_umath"),
            # h5py: the dev-checkout test is decided on the layer's files; the
            # extension's own failure comes before the later import's.
            "python/h5like/__init__.py": _H5_INIT,
            f"python/h5like/_errors{other}": _broken(c, "_errors"),
            "python/h5like/version.py": "import _backend\n",
            f"python/_backend{other}": _broken(c, "_backend"),
            # regex: the package star-imports its main module, which imports the
            # extension from the package while the package is half-initialised.
            "python/rx/__init__.py": "import rx._main\nfrom rx._main import *\n",
            "python/rx/_main.py": "from rx import _core\nVALUE = 1\n",
            f"python/rx/_core{other}": _broken(c, "_core"),
            "python/rxuser.py": "import rx\nfrom rxuser_missing import x\n",
            # multidict: a flag set where the extension import fails, then a fallback.
            "python/md/__init__.py": "from ._compat import USE_EXT\nif not USE_EXT:\n"
                                     "    from ._py import X\nelse:\n    from ._md import X\n",
            "python/md/_compat.py": "USE_EXT = True\ntry:\n    from . import _md\n"
                                    "except ImportError:\n    USE_EXT = False\n",
            f"python/md/_md{other}": _broken(c, "_md"),
            "python/md/_py.py": "X = 1\n",
            # numpy's "from . import _multiarray_umath, overrides": every submodule of
            # the statement is imported before any name is read.
            "python/fl/__init__.py": "from . import _ext, sub\n",
            f"python/fl/_ext{other}": _broken(c, "_ext"),
            "python/fl/sub.py": "import _backend\n",
            "python/fl2/__init__.py": "from . import _ext, sub\n",
            f"python/fl2/_ext{other}": _broken(c, "_ext"),
            "python/fl2/sub.py": "",
        }],
        expect={
            "npcore": Expect("error", "ImportError"), "npouter": Expect("error", "ImportError"),
            "oldstyle": Expect("error", "ImportError"), "h5like": Expect("error", "ImportError"),
            "h5like._errors": Expect("error", "ImportError"),
            "rx": Expect("error", "ImportError"), "rx._core": Expect("error", "ImportError"),
            "rxuser": Expect("error", "ImportError"), "md": Expect("ok"),
            "md._testcapi": Expect("error", MNFE),
            "fl": Expect("error", MNFE), "fl2": Expect("error", "ImportError"),
        },
    )


def _dist(name: str, version: str, files: dict[str, bytes | str]) -> dict[str, bytes | str]:
    return installed(name, files, version=version)


def case_overlay(c: Ctx) -> Stack:
    """An older release unpacked over a newer one (the real-world overlay category): the
    old __init__ asks the new binary for a name whose text it lacks (the message, with
    the binary's path), and a mix that asks for nothing missing imports."""
    # The binary keeps "kept" in .rodata (the control) and binds neither name.
    ext = c.build.extension(c.interp, ExtensionSpec(
        "_core", extra_c='__attribute__((used)) static const char control[] = "kept";'))
    new = {"ov/__init__.py": "from . import _core\n", f"ov/_core{c.suffix}": ext,
           "ov/util.py": "X = 2\n", "ovok/__init__.py": "from .a import A\n",
           "ovok/a.py": "A = 2\n", "ovok/b.py": "B = 2\n"}
    old = {"ov/__init__.py": "from ._core import gone, kept\n",
           "ovok/__init__.py": "from .a import A\nfrom .b import B\n", "ovok/a.py": "A = 1\n"}
    return Stack(
        layers=[{**_dist("ov", "2.0", {k: v for k, v in new.items() if k.startswith("ov/")}),
                 **_dist("ovok", "2.0", {k: v for k, v in new.items() if k.startswith("ovok")})},
                {**_dist("ov", "1.0", {k: v for k, v in old.items() if k.startswith("ov/")}),
                 **_dist("ovok", "1.0", {k: v for k, v in old.items() if k.startswith("ovok")})}],
        expect={"ov": Expect("error", "ImportError"), "ovok": Expect("ok")},
    )


_VERSIONEER = """import json

version_json = '''
{
 "version": "1.24.4"
}
'''  # END VERSION_JSON


def get_versions():
    return json.loads(version_json)
"""


def case_versioneer(c: Ctx) -> Stack:
    """A message naming the version versioneer's get_versions() parses from JSON (numpy
    1.24's "The NumPy version is: ...")."""
    return Stack(
        layers=[{
            "python/vv/_version.py": _VERSIONEER,
            "python/vv/__init__.py": "from ._version import get_versions\n"
                                     "vinfo = get_versions()\n"
                                     "raise ImportError('version: %s' % vinfo['version'])\n",
        }],
        expect={"vv": Expect("error", "ImportError")},
    )


def _intact(name: str, files: dict[str, str], requires: str = "") -> dict[str, str]:
    return installed(name, files, requires=(requires,) if requires else ())


def case_clean_stack_rules(c: Ctx) -> Stack:
    """Rules that keep clean real stacks decided (issue 9): each module loads for real."""
    # awswrangler.pandas: a dispatch whose else only raises; the other undecided side
    # imports an absent optional dependency.
    dispatch = ("import os\nFMT = 'plain' if os.path.isdir('/') else 'other'\n"
                "if FMT == 'plain':\n    import os.path\nelif FMT == 'fast':\n"
                "    import absentdep\nelse:\n    raise ImportError(f'Unknown format {FMT}')\n")
    # patsy.util: a search over names whose else only asserts.
    search = ("import os\nfor _n in ('nosuch', 'sep'):\n"
              "    if hasattr(os, _n + os.path.basename(os.getcwd())[:0]):\n"
              "        found = _n\n        break\nelse:\n    assert False\n")
    # scipy.__config__: a recursive clean-up in a dict comprehension, then a flag.
    config = ("def _cleanup(d):\n    if isinstance(d, dict):\n"
              "        return {k: _cleanup(v) for k, v in d.items() if v != '' and "
              "_cleanup(v) != ''}\n    else:\n        return d\n"
              "CONFIG = _cleanup({'blas': {'ilp64': bool(r'false'.lower().replace('false', '')),"
              " 'name': ''}})\n"
              "if CONFIG['blas']['ilp64']:\n    from cfg import _fblas_64\n"
              "if 'name' in CONFIG['blas']:\n    raise ImportError('not cleaned')\n")
    # psutil: globals() writes guarded by a prefix.
    rlim = ("_globals = globals()\nfor _name in ('RLIMIT_A', 'other'):\n"
            "    if _name.startswith('RLIM') and _name.isupper():\n"
            "        _globals[_name] = 1\ndel _globals, _name\n")
    # fontTools' otTables: a module-level call of a function that binds names through
    # "namespace = globals()"; a function that only reads globals(), or one never
    # called, binds nothing.
    builds = ("def _build():\n    namespace = globals()\n    for name in ('Alpha', 'Beta'):\n"
              "        namespace[name] = type(name, (), {})\n_build()\n")
    peeks = ("def _peek():\n    return 'Alpha' in globals() or globals().get('Alpha')\n"
             "def _later():\n    globals()['Alpha'] = 1\n_peek()\n")
    return Stack(
        layers=[{**_intact("disp", {"disp.py": dispatch}, "absentdep; extra == 'fast'"),
                 **_intact("search", {"search.py": search}),
                 "python/cfg.py": config,
                 "python/rl/__init__.py": rlim,
                 "python/rl/aix.py": "from . import _ext_aix\n",
                 "python/rl/user.py": "from rl import RLIMIT_A\n",
                 "python/ot/__init__.py": builds,
                 "python/ot/user.py": "from ot import Alpha, Beta\n",
                 "python/peek/__init__.py": peeks,
                 "python/peek/user.py": "from peek import Alpha\n"}],
        expect={"disp": Expect("ok"), "search": Expect("ok"), "cfg": Expect("ok"),
                "rl.aix": Expect("error", "ImportError"), "rl.user": Expect("ok"),
                "ot.user": Expect("ok"), "peek.user": Expect("error", "ImportError")},
    )

def case_one_of_constants(c: Ctx) -> Stack:
    """Names the sides of an undecided ``if`` bind to different constants (issue 9, sympy's
    ground types): later tests decided where every alternative agrees."""
    choose = ("import os\nif os.getcwd() == '/nowhere':\n    MODE = 'fast'\nelse:\n"
              "    MODE = 'slow'\n")
    # sympy.external.gmpy: flint's probe is decided (flint is absent), gmpy2's is not.
    ground = ("import os\ndef _get_flint(kind):\n    try:\n        import flint\n"
              "    except ImportError:\n        return None\n    return flint\n"
              "_T = os.environ.get('ONEOF_GROUND_TYPES', 'auto').lower()\n_flint = None\n"
              "if _T in ('auto', 'flint'):\n    _flint = _get_flint(_T)\n"
              "    if _flint is not None:\n        _T = 'flint'\n    else:\n        _T = 'auto'\n"
              "if _T in ('auto', 'gmpy'):\n    _gmpy = None if os.getcwd() else 1\n"
              "    if _gmpy is not None:\n        _T = 'gmpy'\n    else:\n        _T = 'python'\n"
              "if _T == 'gmpy':\n    pass\nelif _T == 'flint':\n    assert _flint is not None\n"
              "elif _T == 'python':\n    pass\nelse:\n    assert False\n")
    rebind = ("MODE = 'fast'\ndef _switch():\n    global MODE\n    MODE = 'slow'\n"
              "def _setup():\n    _switch()\n_setup()\n"
              "if MODE == 'fast':\n    raise ImportError('still fast')\n")
    return Stack(
        layers=[{"python/ground.py": ground,
                 "python/agree.py": choose + "MODE += '_build'\n"
                 "if MODE != 'turbo_build':\n"
                 "    raise ImportError('mode has %d letters' % len(MODE))\n",
                 "python/narrow.py": choose + "if MODE == 'fast':\n    X = 1\n"
                 "elif MODE == 'slow':\n    X = 2\nelse:\n    assert False, MODE\n",
                 **_intact("rebind", {"rebind.py": rebind})}],
        expect={"ground": Expect("ok"), "agree": Expect("error", "ImportError"),
                "narrow": Expect("ok"), "rebind": Expect("ok")},
    )


CASES: dict[str, Callable[[Ctx], Stack]] = {
    name.removeprefix("case_"): fn
    for name, fn in dict(globals()).items()
    if name.startswith("case_") and callable(fn)
}


@pytest.fixture(scope="session")
def graph_builder(tmp_path_factory: pytest.TempPathFactory) -> NativeBuilder:
    return NativeBuilder(tmp_path_factory.mktemp("native-graph"))


def _interpreter_params() -> list[object]:
    if not INTERPRETERS:
        return [pytest.param(None, marks=pytest.mark.skip(
            reason="no pyenv CPython 3.8+ found under $PYENV_ROOT or ~/.pyenv"))]
    return [pytest.param(i, id=i.short + i.abiflags) for i in INTERPRETERS]


_SYNTAX = ("SyntaxError", "IndentationError", "TabError")
_LINE = re.compile(r"\(([^()]*), line (\d+)\)$")


def _same(pred_type: str | None, pred_msg: str | None, exact: bool,
          real_type: str | None, real_msg: str | None) -> bool:
    if pred_type in _SYNTAX or real_type in _SYNTAX:
        if pred_type != real_type or pred_msg is None or real_msg is None:
            return False
        p, r = _LINE.search(pred_msg), _LINE.search(real_msg)
        if p is None and r is None:  # raised before any line was read (NUL bytes)
            return pred_msg == real_msg
        if p is None or r is None or p.groups() != r.groups():
            return False
        return not exact or pred_msg == real_msg
    return (pred_type, pred_msg) == (real_type, real_msg)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("interp", _interpreter_params())
def test_propagation_matches_real_import(
    interp: Interpreter, case: str, graph_builder: NativeBuilder, tmp_path: Path
) -> None:
    from abiscan import scan
    from abiscan.target.profiles import custom_target

    ctx = Ctx(interp, graph_builder, tuple(i for i in INTERPRETERS if i != interp))
    stack = CASES[case](ctx)
    inputs = tmp_path / "inputs"
    layer_zips = [write_zip(inputs / f"layer{n}.zip", m) for n, m in enumerate(stack.layers, 1)]
    target = _captured_target(interp) or custom_target(
        interp.short, "x86_64", "2.36", free_threaded=interp.free_threaded
    )
    report = scan(layer_zips, target=target, imports=list(stack.expect))  # type: ignore[arg-type]

    root = (tmp_path / "root").resolve()
    _lay_out(stack, layer_zips, None, root)
    entries = _mapped_sys_path(target.sys_path, root)  # type: ignore[attr-defined]
    names = list(dict.fromkeys([*(m.name for m in report.modules), *stack.expect]))
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        raw = pool.map(lambda n: real_import(interp, n, entries), names)
        reals = {n: replace(r, message=_norm(r.message, root), file=_norm(r.file, root))
                 for n, r in zip(names, raw, strict=True)}
    where = f"CPython {'.'.join(map(str, interp.version))}{interp.abiflags}"

    broken = [f"  {n}: case expects {e}, real {_describe_real(reals[n])}"
              for n, e in stack.expect.items()
              if (reals[n].outcome, reals[n].type) != (e.outcome, e.type)]
    if broken:
        pytest.fail(f"harness error in case {case!r} on {where}:\n" + "\n".join(broken),
                    pytrace=False)

    disagreements = []
    for name in names:
        real, pred = reals[name], report.module(name)
        if pred is None:
            disagreements.append(f"  {name}: not predicted; real {_describe_real(real)}")
            continue
        ptype = pred.error.type if pred.error else None
        pmsg = pred.error.message if pred.error else None
        exact = "closest abiscan knows" not in pred.reason
        same = pred.outcome == real.outcome and _same(ptype, pmsg, exact, real.type,
                                                      real.message)
        newer = interp.version[:2] > sys.version_info[:2]
        grammar = real.type in _SYNTAX and not any(w in pred.reason for w in _NOT_GRAMMAR)
        if newer and (grammar or _NOT_OUR_GRAMMAR in pred.reason):
            # A grammar newer than abiscan's own (a SyntaxError there, or a source the
            # running grammar cannot read, like except* read by 3.10): unknown, no guess.
            # The compiler's own errors in a source abiscan's grammar reads are predicted.
            same = pred.outcome == "unknown"
        if not same:
            disagreements.append(
                f"  {name}:\n    predicted {pred.outcome} {ptype}: {pmsg!r} "
                f"(chain {' -> '.join(pred.chain)}; {pred.reason})\n"
                f"    real      {_describe_real(real)}")
    if disagreements:
        pytest.fail(f"abiscan disagrees with {where} in case {case!r}:\n"
                    + "\n".join(disagreements), pytrace=False)


# What abiscan says of a source its own interpreter's grammar cannot read.
_NOT_OUR_GRAMMAR = "the source does not parse with the grammar of CPython"
# ... and of one its grammar reads and its compiler rejects, or one refused before
# any grammar.
_NOT_GRAMMAR = ("does not compile on the target", "a NUL byte in the source")


@pytest.mark.parametrize("interp", _interpreter_params())
def test_modules_at_startup_are_in_every_interpreter(interp: Interpreter) -> None:
    """``'x' in sys.modules`` is decided true for these before any import: each real
    interpreter has them when its first line runs, even with ``-I -S``."""
    import subprocess

    from abiscan.simulate.python.propagation import AT_STARTUP

    out = subprocess.run([str(interp.executable), "-I", "-S", "-c",
                          "import sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert set(out.split()) >= AT_STARTUP
