"""Rebuild the tiny example layers used in the docs, scan them, print what the CLI says.

The finding pages paste this output. After a change to a rule's wording, run

    python docs/examples/regenerate.py            # every example
    python docs/examples/regenerate.py ABI105     # only the examples of one code
    python docs/examples/regenerate.py quickstart # the quickstart, incident, targets outputs

and paste the new blocks into ``docs/findings/<CODE>.md``. Temporary paths are
removed from the output; each layer zip is named after its example.
"""

from __future__ import annotations

import os
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


def run(example: Example, directory: Path) -> tuple[str, int]:
    write_zip(directory / f"{example.name}.zip", example.members)
    argv = ["scan", f"{example.name}.zip", *example.args]
    out, _, rc = cli(argv, directory)
    return f"$ abiscan {' '.join(argv)}\n{out}", rc


def cli(argv: list[str], directory: Path) -> tuple[str, str, int]:
    proc = subprocess.run(
        [sys.executable, "-m", "abiscan", *argv],
        cwd=directory, capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    strip = str(directory) + "/"
    return proc.stdout.replace(strip, ""), proc.stderr.replace(strip, ""), proc.returncode


def quickstart(directory: Path) -> None:
    """The outputs quickstart.md, incident.md and targets.md paste."""
    from abiscan.demo import build_incident

    l1, l2 = build_incident(directory)
    l1.rename(directory / "L1.zip")
    l2.rename(directory / "L2.zip")
    (directory / "broken.zip").write_bytes(b"not a zip\n")
    runs = [
        ["demo"],
        ["scan", "L1.zip", "L2.zip", "--runtime", "python3.12", "--arch", "x86_64"],
        ["scan", "L1.zip", "L2.zip", "--runtime", "python3.12", "--arch", "x86_64",
         "--format", "json"],
        ["scan", "L1.zip", "L2.zip", "--runtime", "python3.8", "--arch", "x86_64", "-v"],
        ["scan", "L1.zip", "broken.zip", "--runtime", "python3.12"],
        ["scan", "L1.zip", "--runtime", "python3.7"],
        ["scan", "L1.zip", "L2.zip", "--python", "3.13", "--arch", "x86_64", "--glibc", "2.34",
         "--free-threaded"],
        ["targets"],
        ["targets", "--show", "python3.12-arm64"],
    ]
    for argv in runs:
        out, err, rc = cli(argv, directory)
        print(f"### abiscan {' '.join(argv)} (exit status {rc})")
        print("```console")
        print(f"$ abiscan {' '.join(argv)}")
        print(out.rstrip("\n"))
        if err:
            print("--- stderr ---")
            print(err.rstrip("\n"))
        print("```")
        print()


def main(codes: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="abiscan-docs-") as tmp:
        if "quickstart" in codes:
            quickstart(Path(tmp))
            return 0
        for example in EXAMPLES:
            if codes and example.code not in codes:
                continue
            text, rc = run(example, Path(tmp))
            print(f"### {example.code} {example.name} (exit status {rc})")
            print("```console")
            print(text.rstrip("\n"))
            print("```")
            print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
