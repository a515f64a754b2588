"""The progress counts of a scan (issue 12): what they count, that they never change
the report, and the line a terminal shows."""

from __future__ import annotations

import itertools
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from abiscan import api, progress
from abiscan.cli import format_scan_progress
from abiscan.progress import ScanProgress
from abiscan.report.render import render_json
from abiscan.testing.elf_writer import build_shared_object
from tests.helpers import write_zip


def _members() -> dict[str, bytes | str]:
    return {
        "python/pkg/__init__.py": "from . import a, b\n",
        "python/pkg/a.py": "import json\n",
        "python/pkg/b.py": "x = 1\n",
        "python/solo.py": "import pkg\n",
        "python/pkg/_x.cpython-312-x86_64-linux-gnu.so": build_shared_object(
            machine="x86_64", exports=["PyInit__x"], needed=["libc.so.6"]
        ),
        "python/pkg/_y.cpython-312-x86_64-linux-gnu.so": build_shared_object(
            machine="x86_64", exports=["PyInit__y"], needed=["libgone.so.1"]
        ),
    }


@pytest.fixture()
def layer(tmp_path: Path) -> Path:
    return write_zip(tmp_path / "layer.zip", _members())


def test_count_without_a_listener_does_nothing() -> None:
    progress.count("members", 5)  # no listener: must not raise or remember
    seen: list[ScanProgress] = []
    with progress.reporting(seen.append):
        progress.count("elf")
    assert seen[-1] == ScanProgress(members_read=0, elf_parsed=1, modules_simulated=0)


def test_counts_are_throttled_but_the_last_is_always_reported() -> None:
    seen: list[ScanProgress] = []
    with progress.reporting(seen.append, interval=3600.0):
        for _ in range(1000):
            progress.count("modules")
    # The first update, then none within the hour, then the final counts.
    assert len(seen) == 2
    assert seen[0].modules_simulated == 1
    assert seen[-1].modules_simulated == 1000


def test_listeners_do_not_leak_out_of_their_block() -> None:
    outer: list[ScanProgress] = []
    inner: list[ScanProgress] = []
    with progress.reporting(outer.append, interval=0.0):
        with progress.reporting(inner.append, interval=0.0):
            progress.count("members", 2)
        progress.count("members", 3)
    assert inner[-1].members_read == 2
    assert outer[-1].members_read == 3


def test_scan_counts_members_elf_files_and_modules(layer: Path, tmp_path: Path) -> None:
    seen: list[ScanProgress] = []
    report = api.scan(
        str(layer), runtime="python3.12", jobs=1, use_cache=False, progress=seen.append
    )
    last = seen[-1]
    assert last.elf_parsed == 2  # each extension parsed once, however often it is linked
    assert last.members_read >= 6  # every member of the layer is inflated at least once
    assert last.modules_simulated == len(report.modules)
    # The counts only grow.
    for before, after in itertools.pairwise(seen):
        assert before.members_read <= after.members_read
        assert before.modules_simulated <= after.modules_simulated


def test_progress_never_changes_the_report(layer: Path, tmp_path: Path) -> None:
    quiet = api.scan(str(layer), runtime="python3.12", jobs=1, use_cache=False)
    shown = api.scan(
        str(layer), runtime="python3.12", jobs=1, use_cache=False, progress=lambda p: None
    )
    assert render_json(quiet) == render_json(shown)


def test_progress_line_names_each_count() -> None:
    line = format_scan_progress(
        "python3.12 (x86_64)",
        ScanProgress(members_read=12345, elf_parsed=219, modules_simulated=815),
    )
    assert line == (
        "abiscan: python3.12 (x86_64): 12,345 members read, 219 ELF files parsed, "
        "815 modules simulated"
    )


def _run_on_a_terminal(args: list[str], cwd: Path) -> tuple[str, str]:
    """stdout (a pipe) and what the terminal (stderr, a pty) showed."""
    main, side = pty.openpty()
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "abiscan", *args],
        stdout=subprocess.PIPE,
        stderr=side,
        cwd=cwd,
        env=env,
    )
    os.close(side)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    out, _ = proc.communicate(timeout=120)
    os.close(main)
    return out.decode(), shown.decode(errors="replace")


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_a_terminal_sees_the_counts_and_a_pipe_does_not(layer: Path, tmp_path: Path) -> None:
    args = ["scan", str(layer), "--no-cache", "--jobs", "1", "--no-config"]
    out, shown = _run_on_a_terminal(args, tmp_path)
    assert "members read" in shown and "modules simulated" in shown
    assert shown.rstrip().endswith("\x1b[K")  # the line is erased before the report
    assert "members read" not in out
    piped = subprocess.run(
        [sys.executable, "-m", "abiscan", *args], capture_output=True, text=True, cwd=tmp_path
    )
    assert "members read" not in piped.stderr
