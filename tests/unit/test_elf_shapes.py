"""Hostile ELF shapes from issue 11 (1, 2 and 11), each built from its description.

1. An extension whose relocation table is the file's last 8 bytes, with
   DT_RELAENT = 1 (a ``struct.error`` crashed the scan).
2. Version-need entries that all share one auxiliary chain: N entries times a
   chain of M cost N x M (minutes, gigabytes), on the section path and on the
   DT_VERNEED path with an unbounded DT_VERNEEDNUM.
11. Non-UTF-8 bytes in a DT_NEEDED name (lone surrogates in the JSON, a
   UnicodeEncodeError under a strict stdout).
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from abiscan import scan
from abiscan.elf.reader import ElfError, read_facts
from abiscan.testing.elf_writer import build_shared_object

DT = {"DT_RELA": 7, "DT_RELASZ": 8, "DT_RELAENT": 9, "DT_VERNEED": 0x6FFFFFFE,
      "DT_VERNEEDNUM": 0x6FFFFFFF}


# -- helpers (64-bit little-endian files) -------------------------------------


def load_whole_file(data: bytes) -> tuple[bytearray, int]:
    """The file with its first PT_LOAD (at offset 0) covering every byte; its p_vaddr."""
    out = bytearray(data)
    e_phoff, = struct.unpack_from("<Q", out, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", out, 54)
    for i in range(e_phnum):
        at = e_phoff + i * e_phentsize
        p_type, _, p_offset, p_vaddr = struct.unpack_from("<IIQQ", out, at)
        if p_type == 1 and p_offset == 0:
            struct.pack_into("<QQ", out, at + 32, len(out), len(out))  # p_filesz, p_memsz
            return out, p_vaddr
    raise AssertionError("no PT_LOAD at offset 0")


def set_tag(data: bytearray, tag: int, value: int) -> None:
    """Overwrite the value of dynamic tag ``tag`` (found through PT_DYNAMIC)."""
    e_phoff, = struct.unpack_from("<Q", data, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    for i in range(e_phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, e_phoff + i * e_phentsize
        )
        if p_type == 2:
            for pos in range(p_offset, p_offset + p_filesz, 16):
                if struct.unpack_from("<Q", data, pos)[0] == tag:
                    struct.pack_into("<Q", data, pos + 8, value)
                    return
    raise AssertionError(f"no dynamic tag {tag:#x}")


def strip_section_headers(data: bytearray) -> None:
    struct.pack_into("<Q", data, 40, 0)
    struct.pack_into("<HH", data, 60, 0, 0)


def layer(tmp_path: Path, members: dict[str, bytes]) -> Path:
    path = tmp_path / "layer.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            zf.writestr(info, data)
    return path


GOOD = build_shared_object(exports=["PyInit_good"], needed=["libc.so.6"])


# -- shape 1 ------------------------------------------------------------------


def shape_1() -> bytes:
    data, vaddr = load_whole_file(build_shared_object(
        exports=["PyInit_shape"], undefined=["helper"], needed=["libc.so.6"], relocate=True,
    ))
    set_tag(data, DT["DT_RELA"], vaddr + len(data) - 8)
    set_tag(data, DT["DT_RELASZ"], 8)
    set_tag(data, DT["DT_RELAENT"], 1)
    return bytes(data)


def test_shape_1_relocation_entry_size_one_is_an_elf_error() -> None:
    facts = read_facts(shape_1())
    assert facts.pyinit_names == ("PyInit_shape",)
    with pytest.raises(ElfError, match="bad relocation entry size 1"):
        _ = facts.references
    with pytest.raises(ElfError):  # asked again: the same answer, not a retry
        _ = facts.references


def test_shape_1_scan_reports_the_others(tmp_path: Path) -> None:
    report = scan(
        [layer(tmp_path, {"python/shape.cpython-312-x86_64-linux-gnu.so": shape_1(),
                          "python/good.cpython-312-x86_64-linux-gnu.so": GOOD})],
        runtime="python3.12", arch="x86_64",
    )
    outcomes = {m.name: m for m in report.modules}
    assert outcomes["good"].outcome == "ok"
    # The relocations cannot be read: abiscan says so, and is not sure.
    assert outcomes["shape"].outcome in ("ok", "unknown")
    assert "possible: the relocations of" in outcomes["shape"].reason
    assert "bad relocation entry size 1" in outcomes["shape"].reason


# -- shape 2 ------------------------------------------------------------------


def shared_chain_table(n: int, m: int, file_name: int, version_name: int) -> bytes:
    """N version-need entries whose vn_aux all point at one chain of M aux entries."""
    chain_at = 16 * n
    out = bytearray()
    for i in range(n):
        vn_next = 16 if i < n - 1 else 0
        out += struct.pack("<HHIII", 1, m, file_name, chain_at - 16 * i, vn_next)
    for j in range(m):
        vna_next = 16 if j < m - 1 else 0
        out += struct.pack("<IHHII", 0x0D696914, 0, 2, version_name, vna_next)
    return bytes(out)


def shape_2(n: int, m: int) -> tuple[bytes, int, int]:
    """A writer object with the shared-chain table appended; (bytes, table offset, size)."""
    base = build_shared_object(
        exports=["PyInit_v"], needed=["libc.so.6"], version_needs=[("libc.so.6", ["GLIBC_2.2.5"])],
    )
    elf = ELFFile(io.BytesIO(base))
    dynstr = elf.get_section_by_name(".dynstr")
    raw = dynstr.data()
    table = shared_chain_table(n, m, raw.index(b"libc.so.6\0"), raw.index(b"GLIBC_2.2.5\0"))
    data = bytearray(base + table)
    # The section path: .gnu.version_r now describes the appended table.
    for i, sec in enumerate(elf.iter_sections()):
        if sec.name == ".gnu.version_r":
            at = elf["e_shoff"] + i * elf["e_shentsize"]
            struct.pack_into("<QQ", data, at + 24, len(base), len(table))  # sh_offset, sh_size
            struct.pack_into("<I", data, at + 44, n)  # sh_info
    return bytes(data), len(base), len(table)


def test_shape_2_section_path_is_bounded() -> None:
    data, _, _ = shape_2(16_000, 16_000)
    t0 = time.process_time()
    with pytest.raises(ElfError, match="more entries than its .* bytes can hold"):
        read_facts(data)
    assert time.process_time() - t0 < 2.0


def test_shape_2_dt_verneed_path_is_bounded() -> None:
    data, table_at, _ = shape_2(16_000, 16_000)
    whole, vaddr = load_whole_file(data)
    strip_section_headers(whole)
    set_tag(whole, DT["DT_VERNEED"], vaddr + table_at)
    set_tag(whole, DT["DT_VERNEEDNUM"], 0xFFFFFFFF)  # unbounded count, as in the shape
    t0 = time.process_time()
    with pytest.raises(ElfError, match="more entries than its .* bytes can hold"):
        read_facts(bytes(whole))
    assert time.process_time() - t0 < 2.0


def test_shape_2_unshared_chains_still_read() -> None:
    """The bound never refuses a table a linker writes: one entry, a long chain."""
    names = [f"V_{i}" for i in range(3000)]
    data = build_shared_object(exports=["PyInit_v"], version_needs=[("libv.so", names)])
    assert read_facts(data).version_needs == (("libv.so", tuple(names)),)


# -- shape 11 -----------------------------------------------------------------


def shape_11() -> bytes:
    data = build_shared_object(exports=["PyInit_odd"], needed=["libAAAA.so"])
    assert data.count(b"libAAAA.so\0") == 1
    return data.replace(b"libAAAA.so\0", b"lib\xff\xfeAA.so\0")


def test_shape_11_names_decode_with_backslash_escapes() -> None:
    facts = read_facts(shape_11())
    assert facts.needed == ("lib\\xff\\xfeAA.so",)
    assert all(not 0xD800 <= ord(ch) <= 0xDFFF for ch in facts.needed[0])


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_shape_11_output_is_valid_utf8_under_a_strict_stdout(tmp_path: Path, fmt: str) -> None:
    path = layer(tmp_path, {"python/odd.cpython-312-x86_64-linux-gnu.so": shape_11(),
                            "python/good.cpython-312-x86_64-linux-gnu.so": GOOD})
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    proc = subprocess.run(
        [sys.executable, "-m", "abiscan", "scan", str(path), "--runtime", "python3.12",
         "--format", fmt, "-v"],
        capture_output=True, env=env, check=False,
    )
    assert proc.returncode == 1, proc.stderr.decode("utf-8", "replace")  # the import error
    out = proc.stdout.decode("utf-8")  # strict: lone surrogates would not decode
    if fmt == "json":
        json.loads(out)
        assert "lib\\\\xff\\\\xfeAA.so" in out  # the backslash, escaped as JSON does
    else:
        assert "lib\\xff\\xfeAA.so" in out
    assert b"Traceback" not in proc.stderr


def test_shape_2_many_entries_naming_one_long_string_are_bounded() -> None:
    """Distinct aux entries (no shared chain) that all name one 20 KB string:
    each name would cost the whole string, N times over (600 MB here)."""
    long_name = "V" * 20_000
    base = build_shared_object(exports=["PyInit_v"], needed=["libc.so.6"],
                               version_needs=[("libc.so.6", [long_name])])
    elf = ELFFile(io.BytesIO(base))
    raw = elf.get_section_by_name(".dynstr").data()
    m = 30_000
    table = bytearray(struct.pack("<HHIII", 1, m, raw.index(b"libc.so.6\0"), 16, 0))
    name_at = raw.index(long_name.encode())
    for j in range(m):
        table += struct.pack("<IHHII", 0, 0, 2, name_at, 16 if j < m - 1 else 0)
    data = bytearray(base + table)
    for i, sec in enumerate(elf.iter_sections()):
        if sec.name == ".gnu.version_r":
            at = elf["e_shoff"] + i * elf["e_shentsize"]
            struct.pack_into("<QQ", data, at + 24, len(base), len(table))
            struct.pack_into("<I", data, at + 44, 1)
    t0 = time.process_time()
    with pytest.raises(ElfError, match="names overlap implausibly"):
        read_facts(bytes(data))
    assert time.process_time() - t0 < 2.0
