"""Rebuild the example inputs used in the docs, run the real CLI on them, paste its output.

Every pasted output in the docs is a ``console`` code block right after a MyST
comment line ``% output: <id>``; the ids are the keys of :func:`outputs`.
After a change to the CLI's wording, run from the repository root:

    python docs/examples/regenerate.py --check   # list the blocks that differ (exit 1 if any)
    python docs/examples/regenerate.py --write   # rewrite them in place
    python docs/examples/regenerate.py           # print every output

Blocks without a marker are edited by hand. Temporary paths are removed from
the output; each example layer zip is named after its example.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from abiscan.target.bytecode import magic_bytes
from abiscan.testing.elf_writer import build_shared_object


@dataclass(frozen=True)
class Zeros:
    """A member of ``size`` zero bytes, written in chunks (for the size limits)."""

    size: int


# A member: its bytes, (bytes, st_mode) for a mode or a symbolic link, or Zeros.
Member = bytes | tuple[bytes, int] | Zeros


@dataclass(frozen=True)
class Example:
    code: str
    name: str  # the output id
    zips: Mapping[str, Mapping[str, Member]]  # file name -> members
    argv: tuple[str, ...]  # the `abiscan` command line


def single(code: str, name: str, members: Mapping[str, Member], *args: str) -> Example:
    """The common case: one layer zip named after the example."""
    return Example(code, name, {f"{name}.zip": members}, ("scan", f"{name}.zip", "-v", *args))


def _so(**kwargs: object) -> bytes:
    return build_shared_object(**kwargs)  # type: ignore[arg-type]


def _pyc(version: tuple[int, int]) -> bytes:
    magic = magic_bytes(version)
    assert magic is not None
    # flags, mtime, source size, then a (meaningless here) code object byte
    return magic + struct.pack("<III", 0, 0, 0) + b"\xe3"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")
    return f"sha256={digest}"


def dist(
    site: str,
    name: str,
    version: str,
    files: Mapping[str, bytes],
    *,
    tag: str = "py3-none-any",
    requires_python: str | None = None,
    requires: tuple[str, ...] = (),
) -> dict[str, Member]:
    """An installed distribution: its files and a dist-info (METADATA, WHEEL, RECORD)."""
    info = f"{name.replace('-', '_')}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    if requires_python:
        meta += f"Requires-Python: {requires_python}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    pure = "true" if tag.endswith("-none-any") else "false"
    wheel = f"Wheel-Version: 1.0\nGenerator: docs\nRoot-Is-Purelib: {pure}\nTag: {tag}\n"
    content = {**files, f"{info}/METADATA": meta.encode(), f"{info}/WHEEL": wheel.encode()}
    record = "".join(
        f"{path},{_record_hash(data)},{len(data)}\n" for path, data in content.items()
    ) + f"{info}/RECORD,,\n"
    content[f"{info}/RECORD"] = record.encode()
    return {f"{site}/{path}" if site else path: data for path, data in content.items()}


# A Mach-O 64-bit little-endian header (MH_MAGIC_64, x86_64, MH_BUNDLE), padded.
_MACHO = struct.pack("<IiiIIII", 0xFEEDFACF, 0x01000007, 3, 8, 0, 0, 0) + bytes(4) + bytes(64)
_SP312 = "python/lib/python3.12/site-packages"
_MIB = 1024 * 1024

EXAMPLES: tuple[Example, ...] = (
    single(
        "ABI101", "abi101-layer",
        {"python/_speedups.cpython-311-x86_64-linux-gnu.so":
             _so(exports=["PyInit__speedups"])},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI101", "abi101-fallback-layer",
        {"python/markupsafe_like/__init__.py": b"",
         "python/markupsafe_like/_speedups.cpython-311-x86_64-linux-gnu.so":
             _so(exports=["PyInit__speedups"]),
         "python/markupsafe_like/_speedups.py": b"# pure-Python fallback\n"},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI102", "abi102-layer",
        {"python/_native.cpython-312-aarch64-linux-gnu.so":
             _so(machine="aarch64", exports=["PyInit__native"])},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI102", "abi102-darwin-layer",
        {"python/_native.cpython-312-darwin.so": _MACHO},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI104", "abi104-layer",
        {"python/_accel.cpython-313t-x86_64-linux-gnu.so":
             _so(exports=["PyInit__accel"])},
        "--runtime", "python3.13", "--arch", "x86_64",
    ),
    single(
        "ABI104", "abi104-abi3-layer",
        {"python/_accel.abi3.so": _so(exports=["PyInit__accel"])},
        "--python", "3.13", "--arch", "x86_64", "--glibc", "2.34", "--free-threaded",
    ),
    single(
        "ABI105", "abi105-layer",
        {"python/fastjson/__init__.py": b"",
         "python/fastjson/_core.cpython-312-x86_64-linux-gnu.so":
             _so(exports=["PyInit__speedups", "fastjson_dumps"])},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI108", "abi108-layer",
        {"python/lib/python3.11/site-packages/requests_like/__init__.py": b""},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI108", "abi108-root-layer",
        {"mylib/__init__.py": b"", "helpers.py": b""},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI109", "abi109-layer",
        {"python/legacy_config.pyc": _pyc((3, 8))},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI201", "abi201-layer",
        {"python/_native.cpython-312-x86_64-linux-gnu.so": _MACHO},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI202", "abi202-layer",
        {"python/_native.cpython-312-x86_64-linux-gnu.so":
             _so(machine="aarch64", exports=["PyInit__native"])},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI202", "abi202-class-layer",
        {"python/_native.cpython-312-x86_64-linux-gnu.so":
             _so(bits=32, machine="i386", exports=["PyInit__native"])},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI103", "abi103-layer",
        {"python/_fastjson.abi3.so": _so(
            exports=["PyInit__fastjson"],
            undefined=["PyModule_Create2", "PyInterpreterState_Get"], relocate=True)},
        "--runtime", "python3.8", "--arch", "x86_64",
    ),
    single(
        "ABI106", "abi106-layer",
        {"python/_yaml.so": _so(exports=["PyInit__yaml"], undefined=["_PyUnicode_Ready"],
                                relocate=True)},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI106", "abi106-neighbours-layer",
        {"python/yaml_like/__init__.py": b"",
         "python/yaml_like/_yaml.so": _so(exports=["PyInit__yaml"],
                                          undefined=["PyModule_Create2"], relocate=True),
         "python/yaml_like/_emitter.cpython-311-x86_64-linux-gnu.so":
             _so(exports=["PyInit__emitter"])},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI203", "abi203-ssl11-layer",
        {"python/_ssl11.abi3.so": _so(exports=["PyInit__ssl11"], needed=["libssl.so.1.1"])},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI203", "abi203-layer",
        {"python/_ssl_helper.abi3.so": _so(exports=["PyInit__ssl_helper"],
                                           needed=["libssl.so.3", "libc.so.6"])},
        "--runtime", "python3.11", "--arch", "x86_64",
    ),
    single(
        "ABI204", "abi204-layer",
        {"python/cryptography/__init__.py": b"",
         "python/cryptography/hazmat/__init__.py": b"",
         "python/cryptography/hazmat/bindings/__init__.py": b"",
         "python/cryptography/hazmat/bindings/_rust.abi3.so": _so(
             exports=["PyInit__rust"],
             needed=["libgcc_s.so.1", "libpthread.so.0", "libdl.so.2", "libc.so.6"],
             version_needs=[("libgcc_s.so.1", ["GCC_3.0"]),
                            ("libc.so.6", ["GLIBC_2.2.5", "GLIBC_2.28"])],
             undefined=["memcpy@GLIBC_2.2.5", "PyModule_Create2"], relocate=True)},
        "--runtime", "python3.11", "--arch", "x86_64",
    ),
    single(
        "ABI205", "abi205-layer",
        {"python/_speedups.abi3.so": _so(exports=["PyInit__speedups"],
                                         needed=["libc.musl-x86_64.so.1"])},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI206", "abi206-layer",
        {"python/_geo.cpython-312-x86_64-linux-gnu.so": _so(
            exports=["PyInit__geo"], needed=["libgeo_python.so.1"],
            undefined=["geo_wrap_area"], relocate=True),
         "lib/libgeo_python.so.1": _so(
             soname="libgeo_python.so.1", exports=["geo_wrap_area"],
             undefined=["_PyUnicode_Ready"], relocate=True)},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    Example(
        "ABI107", "abi107-function",
        {"abi107-layer.zip": {"python/settings_lib/__init__.py": b"VERSION = 2\n"},
         "abi107-function.zip": {"settings_lib/__init__.py": b"VERSION = 1\n",
                                 "handler.py": b"import settings_lib\n"}},
        ("scan", "abi107-layer.zip", "-v", "--function", "abi107-function.zip",
         "--runtime", "python3.12", "--arch", "x86_64"),
    ),
    single(
        "ABI107", "abi107-runtime-layer",
        dist("python", "botocore", "1.29.0", {"botocore/__init__.py": b"__version__ = '1.29.0'\n"}),
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI301", "abi301-layer",
        dist(_SP312, "fastcsv", "2.1.0",
             {"fastcsv/__init__.py": b"",
              "fastcsv/_parse.cpython-312-aarch64-linux-gnu.so":
                  _so(machine="aarch64", exports=["PyInit__parse"])},
             tag="cp312-cp312-manylinux_2_17_aarch64"),
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI302", "abi302-layer",
        dist("python", "newlib", "3.0.0", {"newlib/__init__.py": b""}, requires_python=">=3.13"),
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI303", "abi303-layer",
        dist("python", "reportgen", "1.4.0", {"reportgen/__init__.py": b""},
             requires=("jinja2>=3", "colorama; sys_platform == 'win32'")),
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI304", "abi304-layer",
        {**dist("python", "oldclient", "0.9.0", {"oldclient/__init__.py": b""},
                requires=("urllib3<2",)),
         **dist("python", "urllib3", "2.2.1", {"urllib3/__init__.py": b""})},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    Example(
        "ABI305", "abi305-function",
        {"abi305-layer.zip": dist("python", "attrs", "23.1.0",
                                  {"attrs/__init__.py": b"# 23.1\n"}),
         "abi305-function.zip": {**dist("", "attrs", "24.2.0",
                                        {"attrs/__init__.py": b"# 24.2\n"}),
                                 "handler.py": b"import attrs\n"}},
        ("scan", "abi305-layer.zip", "-v", "--function", "abi305-function.zip",
         "--runtime", "python3.12", "--arch", "x86_64"),
    ),
    Example(
        "ABI306", "abi306-layers",
        {"abi306-layer1.zip": dist("python", "pydantic_like", "1.10.0",
                                   {"pydantic_like/__init__.py": b"VERSION = '1.10.0'\n",
                                    "pydantic_like/v1_only.py": b""}),
         "abi306-layer2.zip": dist("python", "pydantic_like", "2.5.0",
                                   {"pydantic_like/__init__.py": b"VERSION = '2.5.0'\n"})},
        ("scan", "abi306-layer1.zip", "abi306-layer2.zip", "-v", "--runtime", "python3.12",
         "--arch", "x86_64"),
    ),
    Example(
        "ABI401", "abi401-layers",
        {f"abi401-l{i}.zip": {f"python/pkg{i}/__init__.py": b""} for i in range(1, 7)},
        ("scan", *(f"abi401-l{i}.zip" for i in range(1, 7)), "-v", "--runtime", "python3.12",
         "--arch", "x86_64"),
    ),
    Example(
        "ABI402", "abi402-layers",
        {"abi402-models.zip": {"python/models/weights.bin": Zeros(150 * _MIB),
                               "python/models/__init__.py": b""},
         "abi402-data.zip": {"python/data/tables.bin": Zeros(120 * _MIB),
                             "python/data/__init__.py": b""}},
        ("scan", "abi402-models.zip", "abi402-data.zip", "-v", "--runtime", "python3.12",
         "--arch", "x86_64"),
    ),
    single(
        "ABI403", "abi403-layer",
        {"python/secrets_lib/": (b"", 0o040755),
         "python/secrets_lib/__init__.py": (b"from . import keys\n", 0o100600),
         "python/secrets_lib/keys.py": (b"", 0o100600)},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI404", "abi404-layer",
        {"python/ok_pkg/__init__.py": b"",
         "../python/escaped.py": b"",
         "/etc/profile.d/layer.sh": b"",
         "python/ok_pkg/data": (b"/etc/shadow", 0o120777)},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    single(
        "ABI501", "abi501-layer",
        {"python/reportgen/__init__.py": b"from .render import render\n",
         "python/reportgen/render.py":
             b"import fastjson\n\n\ndef render(data):\n    return fastjson.dumps(data)\n",
         "python/fastjson/__init__.py": b"from ._speedups import dumps\n",
         "python/fastjson/_speedups.cpython-311-x86_64-linux-gnu.so":
             _so(exports=["PyInit__speedups"])},
        "--runtime", "python3.12", "--arch", "x86_64",
    ),
    Example(
        "ABI501", "abi501-explain",
        {"abi501-layer.zip": {
            "python/reportgen/__init__.py": b"from .render import render\n",
            "python/reportgen/render.py":
                b"import fastjson\n\n\ndef render(data):\n    return fastjson.dumps(data)\n",
            "python/fastjson/__init__.py": b"from ._speedups import dumps\n",
            "python/fastjson/_speedups.cpython-311-x86_64-linux-gnu.so":
                _so(exports=["PyInit__speedups"])}},
        ("explain", "reportgen", "abi501-layer.zip", "--runtime", "python3.12"),
    ),
)


def write_zip(path: Path, members: Mapping[str, Member]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, member in sorted(members.items()):
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o040755 if name.endswith("/") else 0o100644
            if isinstance(member, tuple):
                member, mode = member
            info.external_attr = mode << 16
            if isinstance(member, Zeros):
                chunk = bytes(_MIB)
                with zf.open(info, "w", force_zip64=True) as out:
                    for _ in range(member.size // _MIB):
                        out.write(chunk)
                    out.write(bytes(member.size % _MIB))
            else:
                zf.writestr(info, member)
    return path


def cli(argv: list[str], directory: Path) -> tuple[str, str, int]:
    """Run ``abiscan ARGV`` in ``directory``: (stdout, stderr, exit status)."""
    proc = subprocess.run(
        [sys.executable, "-m", "abiscan", *argv],
        cwd=directory, capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    strip = str(directory) + "/"
    return proc.stdout.replace(strip, ""), proc.stderr.replace(strip, ""), proc.returncode


def session(argv: list[str], directory: Path, *, status: bool = False) -> str:
    """What a terminal shows: the command, stdout, then stderr (and ``echo $?``)."""
    out, err, rc = cli(argv, directory)
    text = f"$ abiscan {' '.join(argv)}\n{out}{err}"
    if status:
        text += f"$ echo $?\n{rc}\n"
    return text


# The quickstart, incident and targets runs: id -> (argv, show the exit status).
RUNS: dict[str, tuple[list[str], bool]] = {
    "demo": (["demo"], False),
    "scan-312": (["scan", "L1.zip", "L2.zip", "--runtime", "python3.12", "--arch", "x86_64"],
                 True),
    "scan-38": (["scan", "L1.zip", "L2.zip", "--runtime", "python3.8", "--arch", "x86_64", "-vv"],
                True),
    "scan-broken": (["scan", "L1.zip", "broken.zip", "--runtime", "python3.12"], True),
    "scan-bad-runtime": (["scan", "L1.zip", "--runtime", "python3.7"], True),
    "scan-import": (["scan", "L1.zip", "--runtime", "python3.12",
                     "--import", "pymysql.cursors"], True),
    "scan-313t": (["scan", "L1.zip", "L2.zip", "--python", "3.13", "--arch", "x86_64",
                   "--glibc", "2.34", "--free-threaded"], True),
    "targets": (["targets"], False),
    "targets-show": (["targets", "--show", "python3.12-arm64"], False),
}


def shortened_json(argv: list[str], directory: Path) -> str:
    """The JSON report of ``argv``, cut for the page: ``...`` marks what is left out."""
    out, _, _ = cli(argv, directory)
    data = json.loads(out)
    more = "__more__"
    data["target"] = {**dict(list(data["target"].items())[:5]), more: more}
    for key in ("inputs", "modules"):
        if len(data[key]) > 1:
            data[key] = [data[key][0], more]
    text = json.dumps(data, indent=2)
    text = re.sub(rf'^(\s*)"{more}": "{more}"$', r"\1...", text, flags=re.M)
    text = re.sub(rf'^(\s*)"{more}"$', r"\1...", text, flags=re.M)
    return f"$ abiscan {' '.join(argv)}\n{text}\n"


def outputs(directory: Path) -> dict[str, str]:
    """Every output the docs paste, by id."""
    from abiscan.demo import build_incident

    l1, l2 = build_incident(directory)
    l1.rename(directory / "L1.zip")
    l2.rename(directory / "L2.zip")
    (directory / "broken.zip").write_bytes(b"not a zip\n")
    made = {
        key: session(argv, directory, status=status) for key, (argv, status) in RUNS.items()
    }
    made["scan-312-json"] = shortened_json(
        ["scan", "L1.zip", "L2.zip", "--runtime", "python3.12", "--arch", "x86_64",
         "--format", "json"], directory)
    for example in EXAMPLES:
        for file_name, members in example.zips.items():
            write_zip(directory / file_name, members)
        made[example.name] = session(list(example.argv), directory, status=True)
        for file_name in example.zips:
            (directory / file_name).unlink()
    return made


_MARKER = re.compile(r"^% output: (\S+)\n```console\n(.*?)^```$", re.M | re.S)


def sync(docs: Path, fresh: Mapping[str, str], write: bool) -> list[str]:
    """Compare (and with ``write``, replace) every marked block; return what differs."""
    stale: list[str] = []
    for page in sorted(docs.rglob("*.md")):
        if "_build" in page.parts:
            continue
        text = page.read_text("utf-8")

        def replace(m: re.Match[str], page: Path = page) -> str:
            key, old = m.group(1), m.group(2)
            if key not in fresh:
                stale.append(f"{page}: unknown output id {key!r}")
                return m.group(0)
            if old != fresh[key]:
                stale.append(f"{page}: {key}")
            return f"% output: {key}\n```console\n{fresh[key]}```"

        new = _MARKER.sub(replace, text)
        if write and new != text:
            page.write_text(new, "utf-8")
    return stale


def main(args: list[str]) -> int:
    docs = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="abiscan-docs-") as tmp:
        fresh = outputs(Path(tmp))
    if "--check" in args or "--write" in args:
        stale = sync(docs, fresh, write="--write" in args)
        for line in stale:
            print(("rewritten: " if "--write" in args else "differs: ") + line)
        return 1 if stale and "--check" in args else 0
    for key, text in fresh.items():
        print(f"% output: {key}\n```console\n{text}```\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
