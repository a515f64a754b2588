"""Issue 11, must show: every hostile case under resource limits, threads, and no side effects.

- Every hostile case of ``hostile_inputs.CASES``, scanned next to a good layer
  by the real command in a subprocess limited to 3 GB of address space, ends
  within 30 s, prints no traceback, exits 0, 1, 2 or 3 with the report
  written, and still reports the good layer.
- Four threads calling ``abiscan.scan()`` at once give the sequential reports.
- A scan under an audit hook opens nothing for writing, starts no process and
  executes no code from the inputs (setup.py, sitecustomize.py, .pth files).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hostile_inputs as H
import pytest

import abiscan

from helpers import write_zip

# Parsing the scanned sources warns about what they hold (in-process scans).
pytestmark = [pytest.mark.filterwarnings("ignore::SyntaxWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

_ADDRESS_SPACE = 3 * 1024**3
_SECONDS = 30


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_ADDRESS_SPACE, _ADDRESS_SPACE))


def _run_case(name: str, good: Path, paths: list[Path], out_dir: Path) -> dict[str, object]:
    """One scan by the real command; its exit status, CPU seconds and peak RSS."""
    out, err = out_dir / f"{name}.out", out_dir / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "abiscan", "scan", str(good), *map(str, paths),
             "--format", "json"],
            stdout=stdout, stderr=stderr, preexec_fn=_limited,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        # CPU time, not wall time: the bound must hold on a loaded machine too.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {"name": name, "code": proc.returncode, "cpu": usage.ru_utime + usage.ru_stime,
            "rss_mib": usage.ru_maxrss // 1024, "out": out.read_text(), "err": err.read_text()}


def test_every_hostile_case_is_bounded_and_keeps_the_good_layer(tmp_path: Path) -> None:
    good = H.good_layer(tmp_path)
    cases = {}
    for name, build in H.CASES.items():
        (tmp_path / name).mkdir()
        cases[name] = build(tmp_path / name)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda item: _run_case(item[0], good, item[1], tmp_path),
                                cases.items()))
    for r in results:
        name, err = r["name"], str(r["err"])
        assert float(r["cpu"]) < _SECONDS, r  # type: ignore[arg-type]
        assert int(r["rss_mib"]) < 1024, (name, r["rss_mib"])  # type: ignore[call-overload]
        assert r["code"] in (0, 1, 2, 3), (name, r["code"], err[-2000:])
        assert "Traceback" not in err, (name, err[-2000:])
        doc = json.loads(str(r["out"]))  # the report is written whatever the status
        modules = {m["name"]: m["outcome"] for m in doc["modules"]}
        assert modules.get("fine") == "ok" and modules.get("_fast") == "ok", name
        assert not any(p.get("internal") for p in doc["problems"]), (name, doc["problems"])


def _stack_of_inputs(root: Path) -> list[Path]:
    paths = [H.good_layer(root)]
    for name in ("bad_crc", "not_not", "bad_record", "escapes", "unsupported_method"):
        (root / name).mkdir()
        paths += H.CASES[name](root / name)
    paths.append(write_zip(root / "pkgs.zip", {
        "python/pkg/__init__.py": "from . import a\nimport json\n",
        "python/pkg/a.py": "try:\n    import missing_mod\nexcept ImportError:\n    pass\n",
        "python/broken.py": "import not_there\n",
    }))
    return paths


def test_threads_give_the_sequential_reports(tmp_path: Path) -> None:
    paths = _stack_of_inputs(tmp_path)
    runs = [(paths[:i] or paths, runtime) for i in range(1, len(paths) + 1)
            for runtime in ("python3.12", "python3.9")]

    def one(run: tuple[list[Path], str]) -> str:
        return abiscan.scan(run[0], runtime=run[1]).to_json()

    sequential = [one(r) for r in runs]
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(one, runs))
    assert concurrent == sequential


_AUDITED = r'''
import json, os, sys
events = []
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
inputs = sys.argv[1]
cache = os.environ["ABISCAN_CACHE_DIR"]  # the one place a scan may write

def hook(event, args):
    if event == "open":
        path, mode, flags = args
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE):
            # An int is a descriptor already audited when its path was opened.
            if not isinstance(path, int) and not str(path).startswith(cache + os.sep):
                events.append(["open-for-writing", str(path)])
    elif event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                   "os.fork", "os.forkpty", "ctypes.dlopen", "os.startfile"):
        events.append([event, repr(args)[:200]])
    elif event == "exec":
        filename = getattr(args[0], "co_filename", "")
        if filename.startswith(inputs):
            events.append(["exec", filename])
    elif event == "import" and args[1] and str(args[1]).startswith(inputs):
        events.append(["import", str(args[1])])
    elif event == "compile" and isinstance(args[1], str) and args[1].startswith(inputs):
        pass  # ast.parse of a scanned source is reading, not running

import abiscan, abiscan.cli
sys.addaudithook(hook)
code = abiscan.cli.main(["scan", *sys.argv[2:], "--format", "json"])
sys.stdout.flush()
print("\n" + json.dumps({"code": code, "events": events}), file=sys.stderr)
'''


def test_a_scan_executes_nothing_and_writes_nothing_outside_the_cache(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    canary = tmp_path / "canary"
    payload = f"open({str(canary)!r}, 'w').write('ran')\nimport os\nos.system('true')\n"
    layer = write_zip(inputs / "evil.zip", {
        "python/setup.py": payload,
        "python/sitecustomize.py": payload,
        "python/usercustomize.py": payload,
        "python/evil.pth": f"import os; {payload.splitlines()[0]}\n",
        "python/pkg/__init__.py": payload + "from . import sub\n",
        "python/pkg/sub.py": payload,
        "python/pkg/_ext.cpython-312-x86_64-linux-gnu.so": b"\x7fELF" + bytes(60),
    })
    tree = inputs / "tree" / "python"
    tree.mkdir(parents=True)
    for name in ("setup.py", "sitecustomize.py", "conftest.py"):
        (tree / name).write_text(payload)
    (tree / "x.pth").write_text(f"import os; {payload.splitlines()[0]}\n")
    before = sorted(p for p in tmp_path.rglob("*"))
    proc = subprocess.run(
        [sys.executable, "-c", _AUDITED, str(inputs), str(layer), str(tree.parent)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
             "ABISCAN_CACHE_DIR": str(tmp_path / "cache")},
    )
    result = json.loads(proc.stderr.strip().splitlines()[-1])
    assert result["code"] in (0, 1), proc.stderr[-2000:]
    assert result["events"] == []
    assert not canary.exists()
    after = sorted(p for p in tmp_path.rglob("*") if not p.is_relative_to(tmp_path / "cache"))
    assert after == before
    assert any((tmp_path / "cache").rglob("*"))  # the cache was written, and nothing else
    doc = json.loads(proc.stdout)
    names = {m["name"] for m in doc["modules"]}
    assert {"setup", "sitecustomize", "pkg"} <= names  # read and predicted, not run


@pytest.mark.parametrize("name", ["huge_metadata", "inflates_past_declared"])
def test_memory_of_inflating_cases_stays_small(tmp_path: Path, name: str) -> None:
    # Peak RSS of the whole command: members are never inflated past their
    # declared size, and METADATA over the budget is not read at all.
    good = H.good_layer(tmp_path)
    paths = H.CASES[name](tmp_path)
    # VmHWM, not ru_maxrss: after fork and exec, ru_maxrss keeps the forking
    # parent's peak (pytest's, here), while VmHWM is this process image's own.
    script = ("import re, sys, abiscan.cli\n"
              "code = abiscan.cli.main(['scan', *sys.argv[1:], '--format', 'json'])\n"
              "status = open('/proc/self/status').read()\n"
              "print(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(good), *map(str, paths)],
                          capture_output=True, text=True, timeout=120)
    peak_kib = int(proc.stderr.strip().splitlines()[-1])
    assert peak_kib < 200 * 1024, peak_kib
