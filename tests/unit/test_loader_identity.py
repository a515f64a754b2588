"""abiscan.simulate.linker.identity.verify_identity: glibc's open_verify, replayed on bytes.

The expected texts come from glibc's elf/dl-load.c and dlerror.c; the
differential tests at the end dlopen the same bytes with this host's glibc
(x86_64 only) and demand the very same string, both through ctypes and
through a real ``import`` of the file as an extension module.
"""

from __future__ import annotations

import json
import os
import platform
import re
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from abiscan.simulate.linker.identity import ARCHES, LoadVerdict, verify_identity
from abiscan.testing.elf_writer import ET_DYN, ET_EXEC, ET_REL, build_shared_object

TARGET = "/opt/python/pkg/_native.cpython-312-x86_64-linux-gnu.so"
ENOENT = "cannot open shared object file: No such file or directory"


def so(**kw: object) -> bytes:
    kw.setdefault("exports", ["PyInit_mod"])
    return build_shared_object(**kw)  # type: ignore[arg-type]


def patched(data: bytes, *edits: tuple[int, str, int]) -> bytes:
    out = bytearray(data)
    for offset, fmt, value in edits:
        struct.pack_into(fmt, out, offset, value)
    return bytes(out)


BASE = so()

# name -> (bytes, reason, errstring after "<path>: " or None when it loads),
# for an x86_64 target with upstream glibc 2.36 (what Amazon Linux ships
# differs only where a test below says so).
CASES: dict[str, tuple[bytes, str, str | None]] = {
    "ok": (BASE, "ok", None),
    "ok-gnu-osabi": (patched(BASE, (7, "B", 3)), "ok", None),
    "ok-gnu-abiversion-3": (patched(BASE, (7, "B", 3), (8, "B", 3)), "ok", None),
    "ok-trailing-data": (so(extra_data=b"\0" * 5000 + b"signature"), "ok", None),
    "ok-abi-note": (so(abi_note=(0, 3, 2, 0)), "ok", None),
    "empty": (b"", "file-too-short", "file too short"),
    "truncated-20": (BASE[:20], "file-too-short", "file too short"),
    "truncated-63": (BASE[:63], "file-too-short", "file too short"),
    "short-text": (b"hello\n", "file-too-short", "file too short"),
    "elf32-header-only": (
        so(bits=32, machine="i386")[:52],
        "file-too-short",
        "file too short",
    ),
    "truncated-64": (BASE[:64], "unreadable", "cannot read file data"),
    "truncated-100": (BASE[:100], "unreadable", "cannot read file data"),
    "mach-o": (bytes.fromhex("cffaedfe07000001") + bytes(300), "not-elf", "invalid ELF header"),
    "mach-o-fat": (bytes.fromhex("cafebabe00000002") + bytes(300), "not-elf", "invalid ELF header"),
    "pe": (b"MZ\x90\x00" + bytes(300), "not-elf", "invalid ELF header"),
    "text": (
        b"#!/usr/bin/env python3\n" + b"print('definitely not a shared object')\n" * 3,
        "not-elf",
        "invalid ELF header",
    ),
    "elf32-i386": (so(bits=32, machine="i386"), "wrong-class", "wrong ELF class: ELFCLASS32"),
    "elf32-arm": (so(bits=32, machine="arm"), "wrong-class", "wrong ELF class: ELFCLASS32"),
    "elfclassnone": (patched(BASE, (4, "B", 0)), "wrong-class", "wrong ELF class: ELFCLASS32"),
    "elfclass3": (patched(BASE, (4, "B", 3)), "wrong-class", "wrong ELF class: ELFCLASS32"),
    "eidata-0": (
        patched(BASE, (5, "B", 0)),
        "wrong-byte-order",
        "ELF file data encoding not little-endian",
    ),
    "big-endian-x86_64": (
        so(byte_order="big"),
        "wrong-byte-order",
        "ELF file data encoding not little-endian",
    ),
    "ident-version-0": (
        patched(BASE, (6, "B", 0)),
        "bad-ident",
        "ELF file version ident does not match current one",
    ),
    "osabi-hpux": (patched(BASE, (7, "B", 1)), "bad-ident", "ELF file OS ABI invalid"),
    "osabi-freebsd": (patched(BASE, (7, "B", 9)), "bad-ident", "ELF file OS ABI invalid"),
    "sysv-abiversion-1": (patched(BASE, (8, "B", 1)), "bad-ident", "ELF file ABI version invalid"),
    "gnu-abiversion-4": (
        patched(BASE, (7, "B", 3), (8, "B", 4)),
        "bad-ident",
        "ELF file ABI version invalid",
    ),
    "nonzero-padding": (patched(BASE, (9, "B", 1)), "bad-ident", "nonzero padding in e_ident"),
    "nonzero-padding-15": (
        patched(BASE, (15, "B", 0x80)),
        "bad-ident",
        "nonzero padding in e_ident",
    ),
    "e_version-0": (
        patched(BASE, (20, "<I", 0)),
        "bad-version",
        "ELF file version does not match current one",
    ),
    "aarch64": (so(machine="aarch64"), "wrong-machine", ENOENT),
    "ppc64le": (so(machine="ppc64"), "wrong-machine", ENOENT),
    "riscv": (so(machine="riscv"), "wrong-machine", ENOENT),
    "et-rel": (so(e_type=ET_REL), "wrong-type", "only ET_DYN and ET_EXEC can be loaded"),
    "et-core": (so(e_type=4), "wrong-type", "only ET_DYN and ET_EXEC can be loaded"),
    "et-none": (so(e_type=0), "wrong-type", "only ET_DYN and ET_EXEC can be loaded"),
    "et-exec": (so(e_type=ET_EXEC), "wrong-type", "cannot dynamically load executable"),
    "phentsize": (
        patched(BASE, (54, "<H", 32)),
        "bad-phentsize",
        "ELF file's phentsize not the expected size",
    ),
    "phoff-past-eof": (patched(BASE, (32, "<Q", 1 << 20)), "unreadable", "cannot read file data"),
    "phnum-1000": (patched(BASE, (56, "<H", 1000)), "unreadable", "cannot read file data"),
    "phoff-2**63": (
        patched(BASE, (32, "<Q", 1 << 63)),
        "unreadable",
        "cannot read file data: Invalid argument",
    ),
    "phnum-0": (
        patched(BASE, (56, "<H", 0)),
        "no-loadable-segments",
        "object file has no loadable segments",
    ),
    # Program header 2 is the builder's PT_DYNAMIC; make it PT_NULL.
    "no-dynamic": (
        patched(BASE, (64 + 2 * 56, "<I", 0)),
        "no-dynamic-section",
        "object file has no dynamic section",
    ),
    # Program header 1 (the RW PT_LOAD): p_vaddr at +16, p_align at +48.
    "load-vaddr-off-page": (
        patched(BASE, (64 + 56 + 16, "<Q", 0x10001)),
        "bad-load-alignment",
        "ELF load command address/offset not page-aligned",
    ),
    "load-align-2k": (patched(BASE, (64 + 48, "<Q", 0x800)), "ok", None),
}


def expect(name: str) -> tuple[bytes, str, str | None]:
    return CASES[name]


@pytest.mark.parametrize("name", sorted(CASES))
def test_verdict_x86_64_glibc_236(name: str) -> None:
    data, reason, errstring = expect(name)
    v = verify_identity(data, TARGET, arch="x86_64", glibc="2.36")
    assert v.reason == reason, v.detail
    if errstring is None:
        assert v.ok and v.message is None
    else:
        assert not v.ok
        assert v.message == f"{TARGET}: {errstring}"
    assert v.detail and "x86_64" in v.detail


# Cases whose verdict is the same on every glibc from 2.26 to 2.36 (the
# others are covered by the version tests below).
VERSION_INDEPENDENT = sorted(
    set(CASES) - {"ok-gnu-abiversion-3", "load-vaddr-off-page", "load-align-2k"}
)


@pytest.mark.parametrize("name", VERSION_INDEPENDENT)
def test_verdict_without_glibc_version(name: str) -> None:
    data, reason, errstring = expect(name)
    v = verify_identity(data, TARGET, arch="x86_64")
    assert v.reason == reason, v.detail
    assert v.message == (None if errstring is None else f"{TARGET}: {errstring}")
    assert "2.26-2.36" in v.detail


def test_brief_examples() -> None:
    v = verify_identity(so(bits=32, machine="i386"), TARGET, arch="x86_64")
    assert v == LoadVerdict(
        False, f"{TARGET}: wrong ELF class: ELFCLASS32", "wrong-class", v.detail
    )
    assert "ELF 32-bit LSB ET_DYN, machine i386" in v.detail
    assert "ELFCLASS64 LSB x86_64" in v.detail
    v = verify_identity(so(machine="aarch64"), TARGET, arch="x86_64")
    assert (v.ok, v.message, v.reason) == (False, f"{TARGET}: {ENOENT}", "wrong-machine")
    v = verify_identity(bytes.fromhex("feedfacf") + bytes(200), TARGET, arch="x86_64")
    assert (v.message, v.reason) == (f"{TARGET}: invalid ELF header", "not-elf")
    assert "Mach-O" in v.detail


def test_aarch64_target() -> None:
    arm = so(machine="aarch64")
    assert verify_identity(arm, TARGET, arch="aarch64").ok
    assert verify_identity(arm, TARGET, arch="arm64").ok
    v = verify_identity(BASE, TARGET, arch="aarch64")
    assert (v.reason, v.message) == ("wrong-machine", f"{TARGET}: {ENOENT}")
    v = verify_identity(so(bits=32, machine="arm"), TARGET, arch="aarch64")
    assert v.message == f"{TARGET}: wrong ELF class: ELFCLASS32"
    # aarch64 lists no IFUNC in libc-abis: GNU ABI versions 0-2 on 2.28+.
    gnu2 = patched(arm, (7, "B", 3), (8, "B", 2))
    gnu3 = patched(arm, (7, "B", 3), (8, "B", 3))
    assert verify_identity(gnu2, TARGET, arch="aarch64", glibc="2.34").ok
    assert verify_identity(gnu3, TARGET, arch="aarch64", glibc="2.34").reason == "bad-ident"
    assert verify_identity(gnu2, TARGET, arch="aarch64", glibc="2.26").reason == "bad-ident"


def test_32bit_targets() -> None:
    v = verify_identity(BASE, TARGET, arch="i686")
    assert v.message == f"{TARGET}: wrong ELF class: ELFCLASS64"
    i386 = so(bits=32, machine="i386")
    assert verify_identity(i386, TARGET, arch="i386").ok
    assert verify_identity(i386[:51], TARGET, arch="i686").reason == "file-too-short"
    # 52 bytes is a whole ELF32 header; the program headers are missing.
    assert verify_identity(i386[:52], TARGET, arch="i686").reason == "unreadable"
    armhf = so(bits=32, machine="arm")
    assert verify_identity(armhf, TARGET, arch="armv7l").ok
    assert verify_identity(i386, TARGET, arch="armv7l").reason == "wrong-machine"


def test_big_endian_target() -> None:
    s390 = so(machine="s390", byte_order="big")
    assert verify_identity(s390, TARGET, arch="s390x").ok
    v = verify_identity(so(machine="s390"), TARGET, arch="s390x")
    assert v.message == f"{TARGET}: ELF file data encoding not big-endian"
    assert verify_identity(so(machine="ppc64"), TARGET, arch="ppc64le").ok


def test_unknown_arch_and_flavor_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown target architecture"):
        verify_identity(BASE, TARGET, arch="vax")
    with pytest.raises(ValueError, match="flavor"):
        verify_identity(BASE, TARGET, arch="x86_64", flavor="gentoo")
    with pytest.raises(ValueError, match="not a glibc version"):
        verify_identity(BASE, TARGET, arch="x86_64", glibc="new")
    assert set(ARCHES) >= {"x86_64", "aarch64"}


def test_glibc_version_accepts_strings_and_tuples() -> None:
    for glibc in ("2.34", "glibc 2.34", "2.34.1", (2, 34)):
        assert verify_identity(BASE, TARGET, arch="x86_64", glibc=glibc).ok


def test_et_exec_order_depends_on_glibc() -> None:
    # Before 2.30 open_verify refuses ET_EXEC before looking at e_phentsize;
    # since 2.30 the refusal happens after the program headers are scanned.
    exe_bad_phentsize = patched(so(e_type=ET_EXEC), (54, "<H", 32))
    old = verify_identity(exe_bad_phentsize, TARGET, arch="x86_64", glibc="2.26")
    new = verify_identity(exe_bad_phentsize, TARGET, arch="x86_64", glibc="2.34")
    assert old.message == f"{TARGET}: cannot dynamically load executable"
    assert new.message == f"{TARGET}: ELF file's phentsize not the expected size"
    both = verify_identity(exe_bad_phentsize, TARGET, arch="x86_64")
    assert (both.ok, both.message, both.reason) == (False, None, "depends-on-glibc-version")
    assert "glibc 2.26-2.29" in both.detail and "glibc 2.30-2.36" in both.detail
    exe_no_load = patched(so(e_type=ET_EXEC), (56, "<H", 0))
    assert (
        verify_identity(exe_no_load, TARGET, arch="x86_64", glibc="2.36").reason
        == "no-loadable-segments"
    )
    assert verify_identity(exe_no_load, TARGET, arch="x86_64", glibc="2.26").reason == "wrong-type"


def test_absolute_abi_tag_since_228() -> None:
    gnu3 = patched(BASE, (7, "B", 3), (8, "B", 3))
    assert not verify_identity(gnu3, TARGET, arch="x86_64", glibc="2.27").ok
    assert verify_identity(gnu3, TARGET, arch="x86_64", glibc="2.28").ok
    v = verify_identity(gnu3, TARGET, arch="x86_64")
    assert v.reason == "depends-on-glibc-version"
    assert "glibc 2.26-2.27: fails with" in v.detail


def test_abi_note_check_before_236() -> None:
    foreign = so(abi_note=(1, 3, 2, 0))
    v = verify_identity(foreign, TARGET, arch="x86_64", glibc="2.34")
    assert (v.reason, v.message) == ("wrong-os", f"{TARGET}: {ENOENT}")
    assert verify_identity(foreign, TARGET, arch="x86_64", glibc="2.36").ok
    assert verify_identity(foreign, TARGET, arch="x86_64", glibc="2.26").reason == "wrong-os"

    future = so(abi_note=(0, 6, 1, 0))
    v = verify_identity(future, TARGET, arch="x86_64", glibc="2.26")
    assert (v.ok, v.message, v.reason) == (False, None, "depends-on-kernel-version")
    assert "6.1.0" in v.detail
    v = verify_identity(future, TARGET, arch="x86_64", glibc="2.26", kernel=(5, 10, 0))
    assert (v.reason, v.message) == ("kernel-too-old", f"{TARGET}: {ENOENT}")
    assert verify_identity(future, TARGET, arch="x86_64", glibc="2.26", kernel=(6, 1, 0)).ok
    assert verify_identity(future, TARGET, arch="x86_64", glibc="2.36").ok
    # The usual "GNU/Linux 3.2.0" (or manylinux2014's 2.6.32) is older than
    # any Lambda kernel.
    assert verify_identity(so(abi_note=(0, 2, 6, 32)), TARGET, arch="x86_64").ok


def test_note_that_is_not_the_abi_tag_is_ignored() -> None:
    data = bytearray(so(abi_note=(1, 3, 2, 0)))
    # n_type 2 instead of NT_GNU_ABI_TAG: glibc walks past it and finds none.
    idx = bytes(data).index(b"GNU\0") - 4
    struct.pack_into("<I", data, idx, 2)
    assert verify_identity(bytes(data), TARGET, arch="x86_64", glibc="2.26").ok


def test_debian_flavor_skips_foreign_machines_first() -> None:
    big = so(byte_order="big")
    v = verify_identity(big, TARGET, arch="x86_64", glibc="2.36", flavor="debian")
    assert (v.reason, v.message) == ("wrong-machine", f"{TARGET}: {ENOENT}")
    arm_padded = patched(so(machine="aarch64"), (9, "B", 1))
    assert (
        verify_identity(arm_padded, TARGET, arch="x86_64", glibc="2.36").message
        == f"{TARGET}: nonzero padding in e_ident"
    )
    assert (
        verify_identity(arm_padded, TARGET, arch="x86_64", glibc="2.36", flavor="debian").message
        == f"{TARGET}: {ENOENT}"
    )
    # Same-machine ident problems read the same on both.
    eidata0 = patched(BASE, (5, "B", 0))
    assert (
        verify_identity(eidata0, TARGET, arch="x86_64", flavor="debian").reason
        == "wrong-byte-order"
    )


def test_load_alignment_checks() -> None:
    # First PT_LOAD (program header 0) p_align at +48 of the header.
    align_2k = patched(BASE, (64 + 48, "<Q", 0x800))
    v = verify_identity(align_2k, TARGET, arch="x86_64", glibc="2.34")
    assert v.message == f"{TARGET}: ELF load command alignment not page-aligned"
    # glibc 2.35 dropped the p_align test; only page congruence remains.
    assert verify_identity(align_2k, TARGET, arch="x86_64", glibc="2.35").ok
    # Second PT_LOAD: p_vaddr - p_offset not a multiple of p_align / the page.
    off_page = patched(BASE, (64 + 56 + 16, "<Q", 0x10001))
    v = verify_identity(off_page, TARGET, arch="x86_64", glibc="2.34")
    assert v.message == f"{TARGET}: ELF load command address/offset not properly aligned"
    v = verify_identity(off_page, TARGET, arch="x86_64", glibc="2.35")
    assert v.message == f"{TARGET}: ELF load command address/offset not page-aligned"
    v = verify_identity(off_page, TARGET, arch="x86_64")
    assert v.reason == "depends-on-glibc-version"
    # 64 KiB pages accept the builder's 64 KiB alignment.
    assert verify_identity(so(machine="aarch64"), TARGET, arch="aarch64", page_size=65536).ok
    for glibc in ("2.26", "2.36"):
        assert verify_identity(
            so(machine="aarch64"), TARGET, arch="aarch64", glibc=glibc, page_size=65536
        ).ok


def test_wrapping_phoff_is_reported_as_unpredictable() -> None:
    wrap = patched(BASE, (32, "<Q", (1 << 64) - 16))
    v = verify_identity(wrap, TARGET, arch="x86_64", glibc="2.36")
    assert (v.ok, v.message, v.reason) == (False, None, "crash")


def test_message_uses_target_path_verbatim() -> None:
    for path in ("/var/task/a b/ü.so", "/opt/x.so"):
        v = verify_identity(b"", path, arch="x86_64")
        assert v.message == f"{path}: file too short"


# -- differential: this host's glibc ---------------------------------------------------


def _host_glibc() -> str | None:
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError, AttributeError):
        return None
    if not value or not value.startswith("glibc "):
        return None
    return value.split()[1]


def _host_flavor() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return "upstream"
    ids = " ".join(re.findall(r"^(?:ID|ID_LIKE)=\"?([^\"\n]*)", text, re.M)).split()
    return "debian" if {"debian", "ubuntu"} & set(ids) else "upstream"


def _host_kernel() -> tuple[int, int, int]:
    nums = [int(x) for x in re.findall(r"\d+", platform.release())[:3]]
    while len(nums) < 3:
        nums.append(0)
    return (nums[0], nums[1], nums[2])


HOST_GLIBC = _host_glibc()
differential = pytest.mark.skipif(
    not (platform.system() == "Linux" and platform.machine() == "x86_64" and HOST_GLIBC),
    reason="the differential test needs an x86_64 Linux host with glibc",
)


def _host_verdict(data: bytes, path: str) -> LoadVerdict:
    return verify_identity(
        data,
        path,
        arch="x86_64",
        glibc=HOST_GLIBC,
        kernel=_host_kernel(),
        flavor=_host_flavor(),
        page_size=os.sysconf("SC_PAGE_SIZE"),
    )


def _write_cases(root: Path, name_for: Callable[[str], str]) -> dict[str, Path]:
    paths = {}
    for case, (data, _, _) in CASES.items():
        d = root / case
        d.mkdir()
        path = d / name_for(case)
        path.write_bytes(data)
        paths[case] = path
    return paths


DLOPEN_ALL = r"""
import ctypes, json, sys
out = {}
for case, path in json.loads(sys.stdin.read()).items():
    try:
        ctypes.CDLL(path)
    except OSError as exc:
        out[case] = str(exc)
    else:
        out[case] = None
print(json.dumps(out))
"""


@differential
def test_differential_ctypes_dlopen(tmp_path: Path) -> None:
    paths = _write_cases(tmp_path, lambda case: "mod.so")
    r = subprocess.run(
        [sys.executable, "-c", DLOPEN_ALL],
        input=json.dumps({c: str(p) for c, p in paths.items()}),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    host = json.loads(r.stdout)
    mismatches = []
    for case, path in paths.items():
        verdict = _host_verdict(CASES[case][0], str(path))
        predicted = None if verdict.ok else verdict.message
        if host[case] != predicted:
            mismatches.append((case, predicted, host[case]))
    assert not mismatches


IMPORT_ALL = r"""
import importlib, json, sys
out = {}
for case, (directory, module) in json.loads(sys.stdin.read()).items():
    sys.path.insert(0, directory)
    try:
        importlib.import_module(module)
    except ImportError as exc:
        out[case] = str(exc)
    else:
        out[case] = None
    sys.path.remove(directory)
print(json.dumps(out))
"""


@differential
def test_differential_python_import(tmp_path: Path) -> None:
    # A real import goes through CPython's dynload_shlib, which raises the
    # dlerror() text as ImportError. Only failing cases: a loaded stub's
    # PyInit would be called.
    failing = {c for c, (data, _, _) in CASES.items() if not _host_verdict(data, "/x").ok}
    paths = _write_cases(tmp_path, lambda case: f"m_{case.replace('-', '_')}.so")
    request = {c: (str(paths[c].parent), paths[c].name[:-3]) for c in failing}
    r = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    host = json.loads(r.stdout)
    mismatches = []
    for case in failing:
        verdict = _host_verdict(CASES[case][0], str(paths[case]))
        if host[case] != verdict.message:
            mismatches.append((case, verdict.message, host[case]))
    assert len(failing) > 30
    assert not mismatches


@differential
def test_differential_abi_note_and_alignment(tmp_path: Path) -> None:
    extra = {
        "note-os": so(abi_note=(1, 3, 2, 0)),
        "note-kernel-99": so(abi_note=(0, 99, 0, 0)),
        "align-2k": patched(BASE, (64 + 48, "<Q", 0x800)),
        "congruence": patched(BASE, (64 + 56 + 16, "<Q", 0x10001)),
        "gnu-abiversion-3": patched(BASE, (7, "B", 3), (8, "B", 3)),
        "exec-bad-phentsize": patched(so(e_type=ET_EXEC), (54, "<H", 32)),
        "exec-no-load": patched(so(e_type=ET_EXEC), (56, "<H", 0)),
        "dyn-only": so(e_type=ET_DYN),
    }
    paths = {}
    for case, data in extra.items():
        (tmp_path / case).mkdir()
        paths[case] = tmp_path / case / "mod.so"
        paths[case].write_bytes(data)
    r = subprocess.run(
        [sys.executable, "-c", DLOPEN_ALL],
        input=json.dumps({c: str(p) for c, p in paths.items()}),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    host = json.loads(r.stdout)
    for case, path in paths.items():
        verdict = _host_verdict(extra[case], str(path))
        assert host[case] == (None if verdict.ok else verdict.message), case
