"""A short, bounded run of the ELF fuzz harness (benchmarks/fuzz_elf.py; the long run is there).

Mutated gcc-built and writer-built objects must give facts or ElfError,
nothing else, each quickly.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

HARNESS = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_elf.py"


def load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_elf", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_elf"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def harness() -> ModuleType:
    return load_harness()


def test_mutated_objects_give_only_elf_errors(harness: ModuleType, tmp_path: Path) -> None:
    seeds = harness.gcc_seeds(tmp_path) + harness.writer_seeds()
    result = harness.fuzz(seeds, 600, seed=20261127)
    assert result.files == 600
    assert result.failures == [], result.failures[0][:2000]
    # Both outcomes happen: the mutations are neither all harmless nor all fatal.
    assert 0 < result.elf_errors < result.files
    assert result.max_seconds < 2.0


def test_the_harness_catches_other_exceptions(
    harness: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that raised anything but ElfError would be reported, not hidden."""
    def broken(data: bytes) -> None:
        raise ValueError("not an ElfError")

    monkeypatch.setattr(harness, "exercise", broken)
    result = harness.fuzz(harness.writer_seeds(), 5, seed=1)
    assert len(result.failures) == 5
    assert "ValueError: not an ElfError" in result.failures[0]
