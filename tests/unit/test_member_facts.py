"""A binary is inflated once per scan, and not at all in a warm scan.

What a scan keeps of a binary instead of its bytes (the ELF facts decoded in
full, the blocks the loader's identity checks read, an extension's read-only
data) must answer every question exactly as the bytes do: the identity
verdicts are compared with the full file's on damaged headers, the facts
with the lazily decoded ones, and the reports with and without the cache.
"""

from __future__ import annotations

import random
import struct
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from abiscan import api, result_memo
from abiscan.elf.header import loader_blocks
from abiscan.elf.reader import ElfError, ElfFacts, read_facts
from abiscan.inputs.stack import Stack
from abiscan.report.render import render_json
from abiscan.simulate.linker.identity import verify_identity
from abiscan.testing.elf_writer import build_shared_object
from tests.helpers import write_zip


def _objects() -> list[bytes]:
    return [
        build_shared_object(
            exports=["PyInit_w", "f"], undefined=["malloc@GLIBC_2.2.5", "g"],
            weak_undefined=["h"], needed=["libc.so.6"], soname="libw.so",
            version_needs=[("libc.so.6", ["GLIBC_2.2.5"])], relocate=True,
        ),
        build_shared_object(bits=32, machine="i386", exports=["PyInit_x"], abi_note=(0, 3, 2, 0)),
        build_shared_object(byte_order="big", machine="s390x", abi_note=(0, 5, 0, 0)),
        build_shared_object(abi_note=(1, 2, 6, 32), extra_data=b"\0" * 5000),
    ]


def _mutants(seed: int, count: int) -> list[bytes]:
    """Files with their header and program headers damaged at random."""
    rng = random.Random(seed)
    out = []
    bases = _objects()
    for _ in range(count):
        data = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(min(len(data), 400))
            data[at] = rng.randrange(256)
        if rng.random() < 0.2:
            data = data[: rng.randrange(len(data))]
        out.append(bytes(data))
    return out


@pytest.mark.parametrize("arch", ["x86_64", "aarch64", "i686", "s390x"])
def test_identity_from_the_loader_blocks_is_the_full_files(arch: str) -> None:
    for data in [*_objects(), *_mutants(seed=len(arch), count=300)]:
        blocks = loader_blocks(data)
        assert blocks is not None
        for glibc in (None, "2.26", "2.34", "2.36"):
            full = verify_identity(data, "/opt/x.so", arch=arch, glibc=glibc)
            kept = verify_identity(
                blocks[0][1], "/opt/x.so", arch=arch, glibc=glibc, size=len(data), blocks=blocks
            )
            assert kept == full, (arch, glibc, data[:64].hex())


def test_program_headers_far_into_the_file_are_kept() -> None:
    """patchelf moves the program headers and notes to the end of the file."""
    base = bytearray(build_shared_object(abi_note=(0, 9, 0, 0), extra_data=b"\0" * 8192))
    phoff, phnum = struct.unpack_from("<QH", base, 32)[0], struct.unpack_from("<H", base, 56)[0]
    table = bytes(base[phoff : phoff + 56 * phnum])
    new_off = len(base)
    data = bytes(base[:32]) + struct.pack("<Q", new_off) + bytes(base[40:]) + table
    blocks = loader_blocks(data)
    assert blocks is not None and any(off == new_off for off, _ in blocks)
    for glibc in ("2.26", "2.34"):
        full = verify_identity(data, "/x.so", arch="x86_64", glibc=glibc, kernel=(4, 14, 0))
        kept = verify_identity(
            blocks[0][1], "/x.so", arch="x86_64", glibc=glibc, kernel=(4, 14, 0),
            size=len(data), blocks=blocks,
        )
        assert kept == full
        assert not full.ok  # the note asks for Linux 9.0.0


def test_summary_answers_as_the_lazy_facts() -> None:
    for data in _objects():
        try:
            lazy = read_facts(data)
        except ElfError:
            continue
        kept = ElfFacts.from_summary(read_facts(data).summary())
        assert kept.exported == lazy.exported
        assert (kept.undefined, kept.weak_undefined) == (lazy.undefined, lazy.weak_undefined)
        assert kept.pyinit_names == lazy.pyinit_names
        assert kept.references == lazy.references
        assert (kept.needed, kept.soname, kept.version_needs) == (
            lazy.needed, lazy.soname, lazy.version_needs,
        )
        for name in ("f", "PyInit_w", "malloc", "nothing", "PyInit_"):
            assert kept.has_export(name) == lazy.has_export(name)


def _layer(tmp_path: Path) -> Path:
    """One library loaded by three extensions; one extension with a symbol nothing
    defines, one whose read-only data names ``_cffi_backend``."""
    lib = build_shared_object(exports=["shared_fn"], soname="libshared.so.1")
    members: dict[str, bytes | str] = {
        "python/pkg/__init__.py": "from . import _a, _b\n",
        "python/pkg/libshared.so.1": lib,
        "python/other/__init__.py": "",
        "python/other/libshared.so.1": lib,
    }
    for path, missing, ro in (
        ("pkg/_a", None, b""),
        ("pkg/_b", None, b"\0_cffi_backend\0"),
        ("other/_c", "missing_fn", b""),
    ):
        name = path.rpartition("/")[2]
        members[f"python/{path}.cpython-312-x86_64-linux-gnu.so"] = build_shared_object(
            exports=[f"PyInit_{name}"], needed=["libshared.so.1", "libc.so.6"],
            undefined=["shared_fn", *([missing] if missing else [])],
            runpath="$ORIGIN", relocate=True, rodata=ro,
        )
    return write_zip(tmp_path / "layer.zip", members)


def _scan(layer: Path, **kwargs: object) -> str:
    report = api.scan([str(layer)], runtime="python3.12", arch="x86_64",
                      **kwargs)  # type: ignore[arg-type]
    return render_json(report)


def _counting_inflations(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    counts: Counter[str] = Counter()
    real = Stack._inflate

    def counting(self: Stack, sf: object) -> bytes:
        counts[sf.target_path] += 1  # type: ignore[attr-defined]
        return real(self, sf)  # type: ignore[arg-type]

    monkeypatch.setattr(Stack, "_inflate", counting)
    return counts


@pytest.fixture()
def without_result_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    """A warm scan that goes through the content cache: the result memo (which would
    answer an unchanged scan whole, tests/unit/test_result_memo.py) recalls nothing."""
    monkeypatch.setattr(result_memo, "recall", lambda *_: None)


@pytest.mark.usefixtures("without_result_memo")
def test_each_binary_is_inflated_once_and_a_warm_scan_inflates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = _layer(tmp_path)
    plain = _scan(layer, jobs=1, use_cache=False)
    counts = _counting_inflations(monkeypatch)
    cold = _scan(layer, jobs=1, cache_dir=tmp_path / "cache")
    binaries = {p: n for p, n in counts.items() if ".so" in p}
    assert len(binaries) == 5  # pkg's library is loaded by two extensions
    assert set(binaries.values()) == {1}
    counts.clear()
    warm = _scan(layer, jobs=1, cache_dir=tmp_path / "cache")
    assert not [p for p in counts if ".so" in p]
    assert plain == cold == warm
    assert "missing_fn" in plain  # the references were bound, from the kept facts
    assert "_cffi_backend" in plain  # and the read-only data was read


@pytest.mark.usefixtures("without_result_memo")
def test_a_corrupt_member_entry_is_a_miss(tmp_path: Path) -> None:
    layer = _layer(tmp_path)
    cache = tmp_path / "cache"
    cold = _scan(layer, jobs=1, cache_dir=cache)
    from abiscan.inputs.content_cache import ContentCache

    store = ContentCache(cache)
    for key, raw in list(store.entries()):  # stored again, damaged, in a newer pack
        store.put_entry(key, raw[:-1] + bytes([raw[-1] ^ 0xFF]))
    store.close()
    assert _scan(layer, jobs=1, cache_dir=cache) == cold


@pytest.mark.usefixtures("without_result_memo")
def test_a_warm_scan_inflates_no_source_it_read_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = _layer(tmp_path)
    counts = _counting_inflations(monkeypatch)
    cold = _scan(layer, jobs=1, cache_dir=tmp_path / "cache")
    sources = {p: n for p, n in counts.items() if p.endswith(".py")}
    assert len(sources) == 2 and set(sources.values()) == {1}  # checked, then parsed
    counts.clear()
    warm = _scan(layer, jobs=1, cache_dir=tmp_path / "cache")
    assert not counts
    assert cold == warm


@pytest.mark.usefixtures("without_result_memo")
def test_an_unreadable_source_stays_unreadable_when_warm(tmp_path: Path) -> None:
    """Only a read that succeeded is remembered: a member that fails to inflate
    (a CRC-32 that does not match its bytes) is read, and fails, in every scan."""
    layer = tmp_path / "layer.zip"
    with zipfile.ZipFile(layer, "w", zipfile.ZIP_STORED) as zf:
        info = zipfile.ZipInfo("python/bad.py")
        info.external_attr = 0o100644 << 16
        zf.writestr(info, "import os\n")
    raw = bytearray(layer.read_bytes())
    at = raw.index(b"import os")
    raw[at] ^= 0x20  # stored, not deflated: the bytes change, the CRC-32 does not
    layer.write_bytes(bytes(raw))
    cache = tmp_path / "cache"
    cold = _scan(layer, jobs=1, cache_dir=cache)
    assert "cannot read the file" in cold
    assert _scan(layer, jobs=1, cache_dir=cache) == cold


def test_workers_summarise_the_binaries_the_main_process_waits_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With workers, a binary larger than MAIN_READS_AT_MOST that the main process
    may not hold (its resident memory and the member over the largest binary plus
    MAIN_HOLDS_OVER_LARGEST) is summarised by a worker and never inflated by the main
    process; the report is the in-process one, and the workers' summaries are in the
    cache for the next scan. (The bound is set to 0 here: with the default, whether
    the main process may hold one depended on how much the test process held, and
    the test failed when run alone.)"""
    from abiscan import parallel, prefetch

    layer = _layer(tmp_path)
    plain = _scan(layer, jobs=1, use_cache=False)
    monkeypatch.setattr(parallel, "MIN_BINARY_BYTES", 0)  # a pool for five small binaries
    monkeypatch.setattr(prefetch, "MAIN_READS_AT_MOST", 0)  # and every one is "large"
    monkeypatch.setattr(prefetch, "MAIN_HOLDS_OVER_LARGEST", 0)  # and never held here
    counts = _counting_inflations(monkeypatch)  # in this process only, not the workers
    cold = _scan(layer, jobs=2, cache_dir=tmp_path / "cache")
    assert not [p for p in counts if ".so" in p]
    assert _scan(layer, jobs=2, use_cache=False) == cold == plain
    assert not [p for p in counts if ".so" in p]
    warm = _scan(layer, jobs=1, cache_dir=tmp_path / "cache")
    assert not [p for p in counts if ".so" in p]  # the workers wrote the summaries
    assert warm == plain


def test_the_main_process_reads_small_binaries_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A binary no worker has started, small enough, the main process reads itself
    (and tells the workers, which skip it): each is still read once in all."""
    from abiscan import parallel, prefetch

    layer = _layer(tmp_path)
    plain = _scan(layer, jobs=1, use_cache=False)
    monkeypatch.setattr(parallel, "MIN_BINARY_BYTES", 0)
    monkeypatch.setattr(prefetch, "MAIN_READS_AT_MOST", 1 << 30)
    for jobs in (2, 3):
        assert _scan(layer, jobs=jobs, use_cache=False) == plain


def test_members_read_are_one_cache_entry_per_input(tmp_path: Path) -> None:
    """Which sources a scan read is kept as one entry for the layer, not one tiny file
    per source module (writing those cost a cold scan of the real layer 0.4 s)."""
    layer = _layer(tmp_path)
    cache = tmp_path / "cache"
    _scan(layer, jobs=1, cache_dir=cache)
    from abiscan.inputs.content_cache import ContentCache

    entries = list(ContentCache(cache).entries())
    # 2 parsed modules, 5 binaries' summaries (one entry each, however often linked),
    # 1 list, and the scan's report (abiscan.result_memo).
    assert len(entries) == 2 + 5 + 1 + 1
    assert len([p for p in cache.rglob("*") if p.is_file()]) == 1  # in one pack
