"""Builders of the hostile and broken inputs of issue 11, one per shape.

Each builder writes its input(s) under a directory and returns the paths to
scan. The regression tests and the resource-limited run over every case
(tests/test_hostile_limits.py) share them.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

from abiscan.testing.elf_writer import build_shared_object

from helpers import write_zip

Builder = Callable[[Path], list[Path]]

TAG = ".cpython-312-x86_64-linux-gnu.so"
ESC = "\x1b[31mRED\x1b]0;title\x07"

# Offsets of fields in a zip's local file header and central directory header.
LOCAL = {"flags": 6, "method": 8, "crc": 14, "csize": 18, "usize": 22, "name": 30}
CENTRAL = {"flags": 8, "method": 10, "crc": 16, "csize": 20, "usize": 24, "offset": 42,
           "name": 46}


def good_layer(root: Path) -> Path:
    return write_zip(root / "good.zip", {
        "python/fine.py": "import json\n",
        f"python/_fast{TAG}": build_shared_object(exports=["PyInit__fast"]),
    })


def patch_member(raw: bytes, name: str, *, local: dict[str, bytes] | None = None,
                 central: dict[str, bytes] | None = None) -> bytes:
    """Overwrite header fields of member ``name`` (its local and/or central header)."""
    out = bytearray(raw)
    encoded = name.encode()
    for sig, fields, patch in ((b"PK\x03\x04", LOCAL, local), (b"PK\x01\x02", CENTRAL, central)):
        if not patch:
            continue
        at = 0
        while True:
            at = out.index(sig, at)
            if out[at + fields["name"]:at + fields["name"] + len(encoded)] == encoded:
                break
            at += 4
        for field, value in patch.items():
            out[at + fields[field]:at + fields[field] + len(value)] = value
    return bytes(out)


def _damaged(root: Path, label: str, local: dict[str, bytes] | None,
             central: dict[str, bytes] | None, data: bytes = b"import json\n" * 50) -> Path:
    z = write_zip(root / f"{label}.zip", {"python/mod.py": data, "python/other.py": ""})
    z.write_bytes(patch_member(z.read_bytes(), "python/mod.py", local=local, central=central))
    return z


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.create_system, info.external_attr = 3, 0o100644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _u32(value: int) -> bytes:
    return struct.pack("<I", value)


def _u16(value: int) -> bytes:
    return struct.pack("<H", value)


# -- shape 8: members that cannot be read ------------------------------------

def bad_crc(root: Path) -> list[Path]:
    crc = _u32(0xDEADBEEF)
    return [_damaged(root, "bad_crc", {"crc": crc}, {"crc": crc})]


def encrypted(root: Path) -> list[Path]:
    return [_damaged(root, "encrypted", {"flags": _u16(1)}, {"flags": _u16(1)})]


def unsupported_method(root: Path) -> list[Path]:
    return [_damaged(root, "method", {"method": _u16(99)}, {"method": _u16(99)})]


def local_name_differs(root: Path) -> list[Path]:
    z = write_zip(root / "local_name.zip", {"python/mod.py": "import json\n",
                                             "python/other.py": ""})
    raw = bytearray(z.read_bytes())
    name_at = raw.index(b"python/mod.py")  # local headers come before the directory
    raw[name_at:name_at + 13] = b"python/mad.py"
    z.write_bytes(bytes(raw))
    return [z]


def lying_size(root: Path) -> list[Path]:
    size = _u32(5_000_000)
    return [_damaged(root, "lying_size", {"usize": size}, {"usize": size})]


def lying_zip64_size(root: Path) -> list[Path]:
    """python/mod.py stored, its zip64 extra field claiming 3 GiB inflated."""
    import zlib

    local_part, central_part = b"", b""
    for name, data, claimed in ((b"python/mod.py", b"import json\n", 3 * 1024**3),
                                (b"python/other.py", b"", 0)):
        crc = zlib.crc32(data)
        extra = struct.pack("<HHQQ", 1, 16, claimed, len(data))
        central_part += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 45 | 3 << 8, 45, 0, 0, 0, 0x5821, crc,
            0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra), 0, 0, 0, 0o100644 << 16,
            len(local_part)) + name + extra
        local_part += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0x5821, crc,
                                  0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra)) + name + extra
        local_part += data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 2, 2, len(central_part),
                      len(local_part), 0)
    z = root / "zip64.zip"
    z.write_bytes(local_part + central_part + end)
    return [z]


def bad_offset(root: Path) -> list[Path]:
    return [_damaged(root, "bad_offset", None, {"offset": _u32(0x7FFFFFF0)})]


def inflates_past_declared(root: Path) -> list[Path]:
    """A member declaring 100 bytes whose data inflates to 64 MB (shape 13)."""
    z = root / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open(_info("python/mod.py"), "w") as fh:
            for _ in range(64):
                fh.write(b"#" * (1024 * 1024))
        zf.writestr(_info("python/other.py"), "")
    z.write_bytes(patch_member(z.read_bytes(), "python/mod.py",
                               local={"usize": _u32(100)}, central={"usize": _u32(100)}))
    return [z]


# -- shape 4: deep and large sources ----------------------------------------

def _source(root: Path, label: str, text: str) -> list[Path]:
    return [write_zip(root / f"{label}.zip", {"python/mod.py": text, "python/other.py": ""})]


def not_not(root: Path) -> list[Path]:
    return _source(root, "notnot", "if " + "not " * 2000 + "x:\n    import json\n")


def long_sum(root: Path) -> list[Path]:
    return _source(root, "sum", "x = " + "1+" * 100_000 + "1\nimport json\n")


def unparse_sum(root: Path) -> list[Path]:
    return _source(root, "unparse", "if " + "a+" * 2500 + "a:\n    import json\n")


def dotted_import(root: Path) -> list[Path]:
    return _source(root, "dotted", "import " + ".".join(f"p{i}" for i in range(20_000)) + "\n")


def large_source(root: Path) -> list[Path]:
    return _source(root, "large", "import json\n" + "x = [1, 2, 3]\n" * 400_000)


# -- shape 6: one crowded directory -----------------------------------------

def crowded_directory(root: Path) -> list[Path]:
    members: dict[str, bytes | str] = {f"python/pkg/m{i}.py": "" for i in range(20_000)}
    members["python/pkg/__init__.py"] = "from . import m1\n"
    return [write_zip(root / "crowded.zip", members)]


# -- shape 9: dist-info ------------------------------------------------------

def _dist(root: Path, label: str, files: dict[str, bytes | str]) -> list[Path]:
    info = "python/demo-1.0.dist-info/"
    members: dict[str, bytes | str] = {"python/demo/__init__.py": "",
                                       info + "WHEEL": "Wheel-Version: 1.0\nTag: py3-none-any\n"}
    members.update({info + k: v for k, v in files.items()})
    members.setdefault(info + "METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
    return [write_zip(root / f"{label}.zip", members)]


def bad_record(root: Path) -> list[Path]:
    return _dist(root, "record", {"RECORD": "demo/__init__.py," + "x" * 200_000 + ",0\n"})


def huge_metadata(root: Path) -> list[Path]:
    z = root / "metadata.zip"
    _dist(root, "metadata", {})
    with zipfile.ZipFile(z, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as zf, \
            zf.open(_info("python/big-1.0.dist-info/METADATA"), "w") as fh:
        fh.write(b"Metadata-Version: 2.1\nName: big\nVersion: 1.0\n\n")
        for _ in range(200):
            fh.write(b"A" * (1024 * 1024))
    return [z]


def garbage_metadata(root: Path) -> list[Path]:
    return _dist(root, "garbage", {"METADATA": bytes(range(256)) * 8 + b"\nName\n:::\n"})


# -- shapes 11 and 12: what reaches the output -------------------------------

def escapes(root: Path) -> list[Path]:
    elf = build_shared_object(exports=["PyInit__esc"], needed=["libXXXXXXXXXXXXXXXX.so"])
    elf = elf.replace(b"libXXXXXXXXXXXXXXXX.so", b"lib\x1b[31m\xff\xfeXXXXXXXXX.so")
    z = root / "escapes.zip"
    write_zip(z, {
        f"python/{ESC}.py": "",
        # Parsing this warns about the escape sequence, quoting it: not on stderr.
        "python/warns.py": f'x = "\\d{ESC}" 1 if 1else 2\nimport json\n',
        f"python/_esc{TAG}": elf,
        "python/esc-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {ESC}\nVersion: 1\n",
        "python/esc-1.0.dist-info/RECORD": f"python/{ESC}.py,,\n",
    })
    with zipfile.ZipFile(z, "a") as zf:
        info = zipfile.ZipInfo("python/link.py", date_time=(2024, 1, 1, 0, 0, 0))
        info.create_system = 3
        info.external_attr = 0o120777 << 16
        zf.writestr(info, f"../../{ESC}/x.py")
    return [z]


def long_link(root: Path) -> list[Path]:
    z = root / "long_link.zip"
    write_zip(z, {"python/other.py": ""})
    with zipfile.ZipFile(z, "a") as zf:
        info = zipfile.ZipInfo("python/link.py", date_time=(2024, 1, 1, 0, 0, 0))
        info.create_system = 3
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "x" * 5000)
    return [z]


# -- shape 10: what is not a file -------------------------------------------

def not_regular(root: Path) -> list[Path]:
    import os

    fifo = root / "fifo.zip"
    os.mkfifo(fifo)
    return [fifo, Path("/dev/zero"), Path("/dev/urandom")]


CASES: dict[str, Builder] = {
    "bad_crc": bad_crc,
    "encrypted": encrypted,
    "unsupported_method": unsupported_method,
    "local_name_differs": local_name_differs,
    "lying_size": lying_size,
    "lying_zip64_size": lying_zip64_size,
    "bad_offset": bad_offset,
    "inflates_past_declared": inflates_past_declared,
    "not_not": not_not,
    "long_sum": long_sum,
    "unparse_sum": unparse_sum,
    "dotted_import": dotted_import,
    "large_source": large_source,
    "crowded_directory": crowded_directory,
    "bad_record": bad_record,
    "huge_metadata": huge_metadata,
    "garbage_metadata": garbage_metadata,
    "escapes": escapes,
    "long_link": long_link,
    "not_regular": not_regular,
}
