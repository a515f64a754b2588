"""Small fixture writers shared by the tests (zips, directory trees)."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def write_zip(path: Path, members: Mapping[str, bytes | str], *, mode: int = 0o644) -> Path:
    """A zip as Lambda tooling writes it: Unix modes, deflated, fixed timestamps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = ((0o040755 if name.endswith("/") else 0o100000 | mode) << 16)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data.encode() if isinstance(data, str) else data)
    return path


def write_tree(root: Path, members: Mapping[str, bytes | str]) -> Path:
    for name, data in members.items():
        full = root / name
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


def record_hash(data: bytes) -> str:
    import base64
    import hashlib

    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def installed(
    name: str,
    version: str,
    files: Mapping[str, bytes | str],
    *,
    prefix: str = "python/",
    tags: tuple[str, ...] = ("py3-none-any",),
    requires_dist: tuple[str, ...] = (),
    requires_python: str | None = None,
) -> dict[str, bytes]:
    """Members of a distribution as ``pip install --target`` leaves it: files plus dist-info."""
    out = {f"{prefix}{k}": (v.encode() if isinstance(v, str) else v) for k, v in files.items()}
    info = f"{name.replace('-', '_')}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        meta.append(f"Requires-Python: {requires_python}")
    meta += [f"Requires-Dist: {r}" for r in requires_dist]
    wheel = ["Wheel-Version: 1.0", "Generator: abiscan-tests", "Root-Is-Purelib: "
             + ("true" if tags == ("py3-none-any",) else "false")]
    wheel += [f"Tag: {t}" for t in tags]
    out[f"{prefix}{info}/METADATA"] = ("\n".join(meta) + "\n").encode()
    out[f"{prefix}{info}/WHEEL"] = ("\n".join(wheel) + "\n").encode()
    record = [f"{k},{record_hash(v if isinstance(v, bytes) else v.encode())},"
              f"{len(v if isinstance(v, bytes) else v.encode())}" for k, v in files.items()]
    record += [f"{info}/METADATA,{record_hash(out[f'{prefix}{info}/METADATA'])},"
               f"{len(out[f'{prefix}{info}/METADATA'])}",
               f"{info}/WHEEL,{record_hash(out[f'{prefix}{info}/WHEEL'])},"
               f"{len(out[f'{prefix}{info}/WHEEL'])}",
               f"{info}/RECORD,,"]
    out[f"{prefix}{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    return out


class NoModules:
    """The evaluator's view of the other modules when a test expects none read or imported:
    every attribute is unknown, and an import fails the test."""

    def attribute(self, module: str, name: str) -> Any:
        from abiscan.simulate.python.evaluator import UNKNOWN

        return UNKNOWN

    def import_module(self, name: str) -> Any:
        raise AssertionError("no import expected")

    def imports(self, name: str) -> bool | None:
        return None

    def listdir(self, path: str) -> list[str] | None:
        return None


# psycopg.pq's import_from_libpq(), reduced: a function called at module level picks an
# implementation (environment switch, then c, binary, python in try/except), through a
# nested helper, and binds the module's names it declares global.
SELECT_PQ = (
    "import os\n"
    "__impl__: str\n"
    "def load():\n"
    "    global __impl__, Escaping\n"
    "    impl = os.environ.get('SEL_IMPL', '').lower()\n"
    "    module = None\n"
    "    attempts: list[str] = []\n"
    "    def handle_error(name, e):\n"
    "        if not impl:\n"
    "            attempts.append(f'{name}: {e}')\n"
    "        else:\n"
    "            raise ImportError(f'requested {name}: {e}') from e\n"
    "    if not impl or impl == 'c':\n"
    "        try:\n"
    "            from sel_c import pq as module\n"
    "        except Exception as e:\n"
    "            handle_error('c', e)\n"
    "    if not module and (not impl or impl == 'binary'):\n"
    "        try:\n"
    "            from sel_binary import pq as module\n"
    "        except Exception as e:\n"
    "            handle_error('binary', e)\n"
    "    if not module and (not impl or impl == 'python'):\n"
    "        try:\n"
    "            from . import pq_python as module\n"
    "        except Exception as e:\n"
    "            handle_error('python', e)\n"
    "    if module:\n"
    "        __impl__ = module.__impl__\n"
    "        Escaping = module.Escaping\n"
    "    else:\n"
    "        raise ImportError('no pq wrapper available')\n"
    "load()\n"
)
SELECT_CMODULE = (
    "from . import pq\n"
    "if pq.__impl__ == 'c':\n    import sel_c._psycopg\n"
    "elif pq.__impl__ == 'binary':\n    import sel_binary._psycopg\n"
    "elif pq.__impl__ == 'python':\n    _psycopg = None\n"
    "else:\n    raise ImportError('no _psycopg')\n"
)


def selecting_package() -> dict[str, bytes | str]:
    """The sources of a package ``sel`` shaped like psycopg: ``sel.pq`` picks an
    implementation at import (:data:`SELECT_PQ`), ``sel._cmodule`` dispatches on it, and
    ``sel.user`` imports a name the pick binds. The binaries are the caller's."""
    return {
        "python/sel/__init__.py": "",
        "python/sel/pq/__init__.py": SELECT_PQ,
        "python/sel/pq/pq_python.py": "__impl__ = 'python'\nclass Escaping:\n    pass\n",
        "python/sel/_cmodule.py": SELECT_CMODULE,
        "python/sel/user.py": "from .pq import Escaping\n",
        "python/sel_binary/__init__.py": "",
    }
