"""ZipSource inflates a deflated member itself, from the zip's raw bytes.

``zipfile``'s reader stays the reference: every member, good or damaged,
reads the same (the same bytes, or the same error) with the inflater and
through ``zipfile`` alone, and the inflater is never asked for more than the
declared size. Each holds for both inflaters: zlib's, and ISA-L's (the
``fast`` extra, skipped where ``isal`` is not installed).
"""

from __future__ import annotations

import random
import zipfile
import zlib
from pathlib import Path
from typing import Any

import hostile_inputs as H
import pytest

from abiscan.inputs import inflaters, sources
from abiscan.inputs.inflaters import INFLATER_VARIABLE, ZLIB_BELOW, Inflater, inflater
from abiscan.inputs.sources import InputKind, SourceError, ZipSource

from helpers import write_zip

BIG = 3 * 1024 * 1024  # several output chunks and many raw reads


def _has_isal() -> bool:
    try:
        import isal.isal_zlib  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(params=["zlib", pytest.param("isal", marks=pytest.mark.skipif(
    not _has_isal(), reason="isal (the fast extra) is not installed"))])
def codec(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Inflater:
    """Scans in the test use this inflater."""
    if request.param == "zlib":
        monkeypatch.setenv(INFLATER_VARIABLE, "zlib")
    else:
        monkeypatch.delenv(INFLATER_VARIABLE, raising=False)
    monkeypatch.setattr(inflaters, "ZLIB_BELOW", 0)  # the small members of the tests too
    chosen = inflater()
    assert chosen.name == request.param
    return chosen


def _payload(size: int) -> bytes:
    """Random words: Huffman-coded deflate blocks, many of them (a flipped byte
    there makes an invalid stream, not just other bytes)."""
    rng = random.Random(size)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"\x00\x01", b"\xff" * 3, b"PyInit_"]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words)
    return bytes(out[:size])


def _outcomes(z: Path) -> dict[str, bytes | str]:
    source = ZipSource(z, InputKind.LAYER)
    out: dict[str, bytes | str] = {}
    for entry in source.entries():
        if entry.kind != "file":
            continue
        try:
            out[entry.path] = source.read(entry)
        except SourceError as exc:
            out[entry.path] = f"SourceError: {exc}"
    source.close()
    return out


def _patched(root: Path, label: str, data: bytes, local: dict[str, bytes] | None = None,
             central: dict[str, bytes] | None = None, cut: int = 0) -> Path:
    z = write_zip(root / f"{label}.zip", {"python/big.bin": data, "python/other.py": "x = 1\n"})
    raw = H.patch_member(z.read_bytes(), "python/big.bin", local=local, central=central)
    if cut:
        # Damage the deflated stream itself, inside the member's raw bytes.
        at = raw.index(b"python/big.bin") + len("python/big.bin") + cut
        raw = raw[:at] + bytes(b ^ 0x5A for b in raw[at : at + 64]) + raw[at + 64 :]
    z.write_bytes(raw)
    return z


def _damaged_zips(root: Path) -> list[Path]:
    zips = [
        *H.bad_crc(root), *H.encrypted(root), *H.unsupported_method(root),
        *H.local_name_differs(root), *H.lying_size(root), *H.bad_offset(root),
        *H.inflates_past_declared(root), *H.lying_zip64_size(root),
    ]
    data = _payload(BIG)
    packed = zlib.compressobj(6, zlib.DEFLATED, -15)
    csize = len(packed.compress(data) + packed.flush())
    for label, local, central, cut in (
        ("short_usize", {"usize": H._u32(BIG - 1)}, {"usize": H._u32(BIG - 1)}, 0),
        ("long_usize", {"usize": H._u32(BIG + 1)}, {"usize": H._u32(BIG + 1)}, 0),
        ("short_csize", None, {"csize": H._u32(csize // 2)}, 0),
        ("long_csize", None, {"csize": H._u32(csize + 1000)}, 0),
        ("crc", {"crc": H._u32(1)}, {"crc": H._u32(1)}, 0),
        ("stream_start", None, None, 40),
        ("stream_middle", None, None, csize // 2),
        ("stream_end", None, None, csize - 100),
        ("good", None, None, 0),
    ):
        zips.append(_patched(root, label, data, local, central, cut))
    return zips


def test_every_member_reads_as_zipfile_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: Inflater
) -> None:
    zips = _damaged_zips(tmp_path)
    own = [_outcomes(z) for z in zips]
    monkeypatch.setattr(ZipSource, "_inflate_deflated", lambda self, info: None)
    assert [_outcomes(z) for z in zips] == own
    flat = [v for o in own for v in o.values()]
    # Both kinds of outcome: good members read, damaged ones fail with zipfile's words.
    assert sum(isinstance(v, bytes) for v in flat) > len(zips)
    assert any("Bad CRC-32 for file 'python/big.bin'" in str(v) for v in flat)
    assert any("Error -3 while decompressing data" in str(v) for v in flat)
    assert any("python/mod.py: damaged member" in str(v) for v in flat)


def test_a_deflated_member_is_inflated_without_zipfiles_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: Inflater
) -> None:
    data = _payload(BIG)
    z = write_zip(tmp_path / "big.zip", {"python/big.bin": data, "python/empty.py": ""})

    def refused(self: Any, n: int = -1) -> bytes:
        raise AssertionError("zipfile's reader was used")

    monkeypatch.setattr(zipfile.ZipExtFile, "read", refused)
    source = ZipSource(z, InputKind.LAYER)
    entries = {e.path: e for e in source.entries()}
    assert source.read(entries["python/big.bin"]) == data
    with pytest.raises(AssertionError):  # an empty member is zipfile's to read
        source.read(entries["python/empty.py"])


def test_the_inflater_makes_no_more_than_the_declared_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: Inflater
) -> None:
    """The bomb declares 100 bytes and inflates to 64 MB: at most one byte more
    than declared is ever made before the member is handed to zipfile (which
    names the damage)."""
    made: list[int] = []

    class Counting:
        def __init__(self, wbits: int) -> None:
            self.inner = codec.decompressobj(wbits)

        def decompress(self, data: bytes, max_length: int = 0) -> bytes:
            assert max_length > 0
            piece = self.inner.decompress(data, max_length)
            made.append(len(piece))
            return piece

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    counting = Inflater(name=codec.name, decompressobj=Counting, crc32=codec.crc32,
                        errors=codec.errors)
    [bomb] = H.inflates_past_declared(tmp_path)
    source = ZipSource(bomb, InputKind.LAYER)
    entry = next(e for e in source.entries() if e.path == "python/mod.py")
    def handed_over(self: ZipSource, info: zipfile.ZipInfo) -> bytes:
        raise zipfile.BadZipFile("handed to zipfile")

    monkeypatch.setattr(sources, "inflater", lambda *_: counting)
    monkeypatch.setattr(ZipSource, "_inflate_chunked", handed_over)
    with pytest.raises(SourceError, match=r"damaged member \(handed to zipfile\)"):
        source.read(entry)
    assert made and sum(made) <= entry.size + 1


@pytest.mark.skipif(not _has_isal(), reason="isal (the fast extra) is not installed")
def test_isal_is_used_when_installed_unless_zlib_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(INFLATER_VARIABLE, raising=False)
    assert inflater().name == "isal"
    monkeypatch.setenv(INFLATER_VARIABLE, "zlib")
    assert inflater().name == "zlib"


def test_a_small_member_inflates_with_zlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Below ZLIB_BELOW bytes zlib inflates, installed isal or not: importing isal
    costs more than it saves on a small member (a one-.so scan's start-up)."""
    monkeypatch.delenv(INFLATER_VARIABLE, raising=False)
    assert inflater(ZLIB_BELOW - 1).name == "zlib"
    assert inflater(ZLIB_BELOW).name == ("isal" if _has_isal() else "zlib")


@pytest.mark.skipif(not _has_isal(), reason="isal (the fast extra) is not installed")
@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_both_inflaters_make_the_same_bytes_and_crc(
    level: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _payload(BIG) + bytes(range(256)) * 64
    packer = zlib.compressobj(level, zlib.DEFLATED, -15)
    stream = packer.compress(data) + packer.flush()
    made = {}
    for asked in ("zlib", "auto"):
        monkeypatch.setenv(INFLATER_VARIABLE, asked)
        codec = inflater()
        out = codec.decompressobj(-15)
        made[codec.name] = (out.decompress(stream), out.eof, codec.crc32(data, 0))
    assert made["zlib"] == made["isal"] == (data, True, zlib.crc32(data))
