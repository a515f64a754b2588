"""Hostile and broken inputs: a clear error naming the file, the rest of the scan goes on."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import abiscan
from abiscan.cli import main
from abiscan.testing.elf_writer import build_shared_object

from helpers import write_zip

TAG = ".cpython-312-x86_64-linux-gnu.so"


def _good_layer(tmp_path: Path) -> Path:
    return write_zip(tmp_path / "good.zip", {
        "python/fine.py": "",
        f"python/_fast{TAG}": build_shared_object(exports=["PyInit__fast"]),
    })


def _with_absurd_section_count(data: bytes) -> bytes:
    # e_shnum sits at offset 60 in a 64-bit ELF header.
    return data[:60] + struct.pack("<H", 0xFFFF) + data[62:]


def test_broken_binaries_do_not_stop_the_scan(tmp_path: Path) -> None:
    elf = build_shared_object(exports=["PyInit__trunc"])
    bad = write_zip(tmp_path / "bad.zip", {
        f"python/_trunc{TAG}": elf[:40],
        f"python/_absurd{TAG}": _with_absurd_section_count(
            build_shared_object(exports=["PyInit__absurd"])),
        f"python/_empty{TAG}": b"",
        f"python/_text{TAG}": b"#!/bin/sh\necho not a module\n" * 4,
    })
    report = abiscan.scan([_good_layer(tmp_path), bad], runtime="python3.12")
    outcomes = {m.name: m for m in report.modules}
    assert outcomes["_fast"].outcome == "ok" and outcomes["fine"].outcome == "ok"
    for name in ("_trunc", "_absurd", "_empty", "_text"):
        m = outcomes[name]
        assert m.outcome in ("error", "unknown"), name
        if m.outcome == "error":
            assert m.error is not None and m.error.type == "ImportError"
            assert m.error.message.startswith(f"/opt/python/{name}{TAG}: ")
        else:
            # Where abiscan cannot predict, it says so, naming the input and member.
            assert any(p.source == str(bad) and p.path == f"python/{name}{TAG}"
                       for p in report.problems) or m.reason, name
    assert outcomes["_text"].error is not None
    assert outcomes["_text"].error.message.endswith("invalid ELF header")


def test_damaged_member_names_input_and_member(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 16
    z = write_zip(tmp_path / "crc.zip", {f"python/_bad{TAG}": payload, "python/ok.py": ""})
    raw = bytearray(z.read_bytes())
    at = raw.index(f"python/_bad{TAG}".encode()) + len(f"python/_bad{TAG}") + 40
    raw[at:at + 8] = b"\x00" * 8
    z.write_bytes(bytes(raw))
    report = abiscan.scan([z], runtime="python3.12")
    bad = report.module("_bad")
    assert bad is not None and bad.outcome == "unknown"
    assert f"python/_bad{TAG}" in bad.reason and str(z) in bad.reason
    ok = report.module("ok")
    assert ok is not None and ok.outcome == "ok"


def test_cli_reports_bad_inputs_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "notes.zip"
    text.write_text("not a zip")
    missing = tmp_path / "missing.zip"
    code = main(["scan", str(text), str(missing), str(_good_layer(tmp_path))])
    out, err = capsys.readouterr()
    assert code == 2
    assert f"cannot read {text}: not a readable zip file" in err
    assert f"cannot read {missing}: no such file or directory" in err
    assert "Traceback" not in out + err
    assert "UNREADABLE" in out and "2 of 2 modules load" in out
