"""The embedded default: the incident that started abiscan, rebuilt offline.

Two synthesised layers, written to a temporary directory and scanned there:
an "AWS SDK for pandas"-like layer with pure-Python packages (a PyMySQL-like
driver whose optional crypto import is guarded by ``except ImportError``),
and a "Powertools"-like layer with cryptography 41 and cffi, whose cffi
backend was built on a CPython 3.8 base image for every runtime.

On python3.12 ``_cffi_backend`` is never even tried; cryptography's pyo3
module (its stand-in carries the strings the real one has) creates its
embedded cffi module during init, which fails, and pyo3 turns that into
``pyo3_runtime.PanicException``: a ``BaseException`` that goes through the
guard, so ``import pymysql`` fails. On python3.8 everything loads.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

from abiscan.api import scan
from abiscan.report.model import Report
from abiscan.report.render import render_text
from abiscan.testing.elf_writer import build_shared_object

__all__ = [
    "build_incident",
    "run_demo",
]

_PYMYSQL_INIT = '''"""A PyMySQL-like driver (synthesised for the abiscan demo)."""
from . import connections
'''
_PYMYSQL_CONNECTIONS = """try:
    from cryptography.hazmat.primitives import serialization  # optional
except ImportError:
    serialization = None
"""
_WRANGLER_INIT = '''"""An awswrangler-like package (synthesised for the abiscan demo)."""
import pymysql
'''
_CFFI_INIT = '''"""A cffi-like package (synthesised for the abiscan demo)."""
from _cffi_backend import FFI  # noqa: F401
'''
_SERIALIZATION = '''"""cryptography-like: the primitives import the Rust bindings at import time."""
from cryptography.hazmat.bindings._rust import openssl  # noqa: F401
'''
# What cryptography 41's _rust.abi3.so has in .rodata and abiscan reads: pyo3's
# panic type and version, and the embedded cffi module's import of its backend.
_RUST_RODATA = (
    b"\0pyo3_runtime.PanicException\0pyo3-0.19.2\0_cffi_backend\0_init_cffi_1_0_external_module\0"
)


def _dist_info(name: str, version: str, files: dict[str, bytes]) -> dict[str, bytes]:
    """A minimal dist-info so findings can name the distribution, as pip leaves it."""
    info = f"python/{name}-{version}.dist-info"
    record = "".join(f"{path.removeprefix('python/')},,\n" for path in files)
    return {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/RECORD": (record + f"{name}-{version}.dist-info/RECORD,,\n").encode(),
    }


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(members.items()):
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def build_incident(directory: Path) -> tuple[Path, Path]:
    """Write the two layer zips of the incident into ``directory``."""
    layer1 = _zip(
        directory / "aws-sdk-pandas-like.zip",
        {
            "python/awswrangler_like/__init__.py": _WRANGLER_INIT.encode(),
            "python/pymysql/__init__.py": _PYMYSQL_INIT.encode(),
            "python/pymysql/connections.py": _PYMYSQL_CONNECTIONS.encode(),
        },
    )
    backend = build_shared_object(machine="x86_64", exports=["PyInit__cffi_backend"])
    rust = build_shared_object(machine="x86_64", exports=["PyInit__rust"], rodata=_RUST_RODATA)
    cffi = {
        "python/cffi/__init__.py": _CFFI_INIT.encode(),
        "python/_cffi_backend.cpython-38-x86_64-linux-gnu.so": backend,
    }
    cryptography = {
        "python/cryptography/__init__.py": b"",
        "python/cryptography/hazmat/__init__.py": b"",
        "python/cryptography/hazmat/primitives/__init__.py": b"",
        "python/cryptography/hazmat/primitives/serialization.py": _SERIALIZATION.encode(),
        "python/cryptography/hazmat/bindings/__init__.py": b"",
        "python/cryptography/hazmat/bindings/_rust.abi3.so": rust,
    }
    layer2 = _zip(
        directory / "powertools-like.zip",
        {
            **cffi,
            **_dist_info("cffi", "1.15.1", cffi),
            **cryptography,
            **_dist_info("cryptography", "41.0.7", cryptography),
        },
    )
    return layer1, layer2


# What `aws lambda get-layer-version` printed for the Powertools-like layer: it
# was published as compatible with python3.12, built on one image for all.
_DECLARED = {
    "LayerVersionArn": "arn:aws:lambda:us-east-1:123456789012:layer:powertools-like:3",
    "Version": 3,
    "CompatibleRuntimes": ["python3.8", "python3.12"],
    "CompatibleArchitectures": ["x86_64"],
}


def _matrix_part(layers: tuple[Path, Path], directory: Path) -> tuple[str, bool]:
    """The stack on every built-in target, against what the layer declares."""
    from abiscan.runtime_matrix import matrix, read_declared, render_matrix

    declared = directory / "powertools-like-layer-version.json"
    declared.write_text(json.dumps(_DECLARED, indent=2) + "\n", encoding="utf-8")
    result = matrix(layers, declared=read_declared(declared))
    new, old = result.cell("python3.12"), result.cell("python3.8")
    ok = (
        new is not None
        and not new.imports
        and old is not None
        and old.imports
        and [f.code for f in result.findings] == ["ABI405"]
    )
    head = (
        "=== abiscan matrix aws-sdk-pandas-like.zip powertools-like.zip "
        "--declared powertools-like-layer-version.json\n"
    )
    return head + render_matrix(result), ok


def _relabel(text: str, directory: Path) -> str:
    return text.replace(str(directory) + "/", "")


def run_demo(fmt: str = "text") -> tuple[str, bool]:
    """Build the incident, scan it for python3.12 and python3.8; return (output, as expected)."""
    with tempfile.TemporaryDirectory(prefix="abiscan-demo-") as tmp:
        tmp_path = Path(tmp)
        layers = build_incident(tmp_path)
        reports: dict[str, Report] = {
            runtime: scan(layers, runtime=runtime, arch="x86_64")
            for runtime in ("python3.12", "python3.8")
        }
        new, old = reports["python3.12"], reports["python3.8"]
        backend, driver = new.module("_cffi_backend"), new.module("pymysql")
        as_expected = (
            backend is not None
            and backend.outcome == "error"
            and driver is not None
            and driver.error is not None
            and driver.error.type == "pyo3_runtime.PanicException"
            and all(m.ok for m in old.modules)
        )
        if fmt == "json":
            text = json.dumps({name: r.to_dict() for name, r in reports.items()}, indent=2) + "\n"
            return _relabel(text, tmp_path), as_expected
        parts = [
            "abiscan demo: the incident, rebuilt from synthesised layers\n"
            "  layer 1: aws-sdk-pandas-like.zip (pure-Python pymysql-like driver)\n"
            "  layer 2: powertools-like.zip (cryptography 41 and cffi, with _cffi_backend\n"
            "           built for CPython 3.8)\n",
        ]
        for runtime, report in reports.items():
            parts.append(f"=== {runtime} " + "=" * 50 + "\n")
            parts.append(render_text(report))
        table, matrix_ok = _matrix_part(layers, tmp_path)
        parts.append(table)
        as_expected = as_expected and matrix_ok
        if as_expected:
            parts.append(
                "As predicted: on python3.12 `import _cffi_backend` raises "
                "ModuleNotFoundError, and `import pymysql` dies with "
                "pyo3_runtime.PanicException\nthrough its `except ImportError` guard; "
                "on python3.8 everything loads; the layer declares python3.12 and fails there "
                "(ABI405).\n"
            )
        else:
            parts.append("UNEXPECTED: abiscan did not predict the incident; please report this.\n")
        return _relabel("".join(parts), tmp_path), as_expected
