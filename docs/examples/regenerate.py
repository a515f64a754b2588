"""Rebuild the example inputs used in the docs, run the real CLI on them, paste its output.

Every pasted output in the docs is a ``console`` code block right after a MyST
comment line ``% output: <id>``; the ids are the keys of :func:`outputs`.
After a change to the CLI's wording, run from the repository root:

    python docs/examples/regenerate.py --check   # list the blocks that differ (exit 1 if any)
    python docs/examples/regenerate.py --write   # rewrite them in place
    python docs/examples/regenerate.py           # print every output

Blocks without a marker (the shortened JSON in quickstart.md) are edited by
hand. Temporary paths are removed from the output; each example layer zip is
named after its example.
"""

from __future__ import annotations

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

from abiscan.elfbuild import build_shared_object
from abiscan.pyc import magic_bytes


@dataclass(frozen=True)
class Example:
    code: str
    name: str  # the zip is <name>.zip
    members: Mapping[str, bytes]
    args: tuple[str, ...]  # target options for `abiscan scan`


def _so(**kwargs: object) -> bytes:
    return build_shared_object(**kwargs)  # type: ignore[arg-type]


def _pyc(version: tuple[int, int]) -> bytes:
    magic = magic_bytes(version)
    assert magic is not None
    # flags, mtime, source size, then a (meaningless here) code object byte
    return magic + struct.pack("<III", 0, 0, 0) + b"\xe3"


# A Mach-O 64-bit little-endian header (MH_MAGIC_64, x86_64, MH_BUNDLE), padded.
_MACHO = struct.pack("<IiiIIII", 0xFEEDFACF, 0x01000007, 3, 8, 0, 0, 0) + bytes(4) + bytes(64)

EXAMPLES: tuple[Example, ...] = (
    Example(
        "ABI101", "abi101-layer",
        {"python/_speedups.cpython-311-x86_64-linux-gnu.so":
             _so(exports=["PyInit__speedups"])},
        ("--runtime", "python3.12", "--arch", "x86_64"),
    ),
    Example(
        "ABI101", "abi101-fallback-layer",
        {"python/markupsafe_like/__init__.py": b"",
         "python/markupsafe_like/_speedups.cpython-311-x86_64-linux-gnu.so":
             _so(exports=["PyInit__speedups"]),
         "python/markupsafe_like/_speedups.py": b"# pure-Python fallback\n"},
        ("--runtime", "python3.12", "--arch", "x86_64"),
    ),
    Example(
        "ABI102", "abi102-layer",
        {"python/_native.cpython-312-aarch64-linux-gnu.so":
             _so(machine="aarch64", exports=["PyInit__native"])},
        ("--runtime", "python3.12", "--arch", "x86_64"),
    ),
    Example(
        "ABI102", "abi102-darwin-layer",
        {"python/_native.cpython-312-darwin.so": _MACHO},
        ("--runtime", "python3.12", "--arch", "x86_64"),
    ),
    Example(
        "ABI104", "abi104-layer",
        {"python/_accel.cpython-313t-x86_64-linux-gnu.so":
             _so(exports=["PyInit__accel"])},
        ("--runtime", "python3.13", "--arch", "x86_64"),
    ),
    Example(
        "ABI104", "abi104-abi3-layer",
        {"python/_accel.abi3.so": _so(exports=["PyInit__accel"])},
        ("--python", "3.13", "--arch", "x86_64", "--glibc", "2.34", "--free-threaded"),
    ),
    Example(
        "ABI105", "abi105-layer",
        {"python/fastjson/__init__.py": b"",
         "python/fastjson/_core.cpython-312-x86_64-linux-gnu.so":
             _so(exports=["PyInit__speedups", "fastjson_dumps"])},
        ("--runtime", "python3.12", "--arch", "x86_64"),
    ),
    Example(
        "ABI108", "abi108-layer",
        {"python/lib/python3.11/site-packages/requests_like/__init__.py": b""},
        ("--runtime", "python3.12", "--arch", "x86_64"),
    ),
    Example(
        "ABI108", "abi108-root-layer",
        {"mylib/__init__.py": b"", "helpers.py": b""},
        ("--runtime", "python3.12", "--arch", "x86_64"),
    ),
    Example(
        "ABI109", "abi109-layer",
        {"python/legacy_config.pyc": _pyc((3, 8))},
        ("--runtime", "python3.12", "--arch", "x86_64"),
    ),
    Example(
        "ABI201", "abi201-layer",
        {"python/_native.cpython-312-x86_64-linux-gnu.so": _MACHO},
        ("--runtime", "python3.12", "--arch", "x86_64"),
    ),
    Example(
        "ABI202", "abi202-layer",
        {"python/_native.cpython-312-x86_64-linux-gnu.so":
             _so(machine="aarch64", exports=["PyInit__native"])},
        ("--runtime", "python3.12", "--arch", "x86_64"),
    ),
    Example(
        "ABI202", "abi202-class-layer",
        {"python/_native.cpython-312-x86_64-linux-gnu.so":
             _so(bits=32, machine="i386", exports=["PyInit__native"])},
        ("--runtime", "python3.12", "--arch", "x86_64"),
    ),
)


def write_zip(path: Path, members: Mapping[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(members.items()):
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
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
    "scan-38": (["scan", "L1.zip", "L2.zip", "--runtime", "python3.8", "--arch", "x86_64", "-v"],
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
    for example in EXAMPLES:
        write_zip(directory / f"{example.name}.zip", example.members)
        argv = ["scan", f"{example.name}.zip", *example.args]
        made[example.name] = session(argv, directory, status=True)
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
