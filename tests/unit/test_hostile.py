"""Issue 11: hostile and broken inputs, one regression test per shape.

Each case is scanned next to a good layer: the damaged part is reported (an
input problem naming the file, the module ``unknown`` with the reason), and
the good layer is still predicted.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import hostile_inputs as H
import pytest

import abiscan
from abiscan import api
from abiscan.cli import EXIT_INTERNAL, EXIT_USAGE, main
from abiscan.inputs.sources import InputKind, SourceError, ZipSource, open_source
from abiscan.inputs.stack import Stack
from abiscan.limits import DEFAULT_LIMITS, LimitsError, parse_limits
from abiscan.progress import ScanProgress
from abiscan.report.escape import escape_text, json_safe
from abiscan.report.model import Report
from abiscan.simulate.imports.file_finder import ImportSystem
from abiscan.target.profiles import TargetError, builtin_target, custom_target, load_target

from helpers import write_zip

# Parsing the scanned sources warns about what they hold (in-process scans).
pytestmark = [pytest.mark.filterwarnings("ignore::SyntaxWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _scan(tmp_path: Path, *inputs: Path) -> Report:
    report = abiscan.scan([H.good_layer(tmp_path), *inputs], runtime="python3.12")
    fine, fast = report.module("fine"), report.module("_fast")
    assert fine is not None and fine.ok and fast is not None and fast.ok
    return report


def _problem(report: Report, source: Path, contains: str) -> None:
    assert any(p.source == str(source) and contains in p.problem for p in report.problems), (
        [str(p) for p in report.problems])


# -- exit status 3: an internal error is caught where it happens -------------

def test_internal_error_in_one_module_keeps_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = api._predict

    def broken(cand, res, *args):  # type: ignore[no-untyped-def]
        if cand.name == "boom":
            raise KeyError("simulated bug")
        return real(cand, res, *args)

    monkeypatch.setattr(api, "_predict", broken)
    boom = write_zip(tmp_path / "boom.zip", {"python/boom.py": ""})
    report = _scan(tmp_path, boom)
    m = report.module("boom")
    assert m is not None and m.outcome == "unknown" and "internal error" in m.reason
    [problem] = report.internal_errors
    assert problem.source == str(boom) and problem.path == "python/boom.py"
    assert "KeyError" in problem.problem and "Traceback" in problem.detail
    assert json.loads(report.to_json())["problems"][0]["internal"] is True

    code = main(["scan", str(H.good_layer(tmp_path)), str(boom)])
    out, err = capsys.readouterr()
    assert code == EXIT_INTERNAL == 3
    assert "unknown boom: internal error" in out and "input problem: " in out
    assert "Traceback" not in err and "internal error" in err
    assert main(["scan", str(boom), "-v"]) == 3
    assert "Traceback" in capsys.readouterr().err  # under -v only


def test_internal_error_in_a_stage_keeps_the_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> object:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(api, "_distributions", broken)
    report = _scan(tmp_path)
    assert [p.problem.split(":")[0] for p in report.internal_errors] == [
        "internal error while reading dist-info"]
    monkeypatch.setattr(api, "impact_findings", broken)  # after the imports were followed
    report = _scan(tmp_path)
    assert [p.problem.split(":")[0] for p in report.internal_errors] == [
        "internal error while reading dist-info",
        "internal error while reporting broken import chains"]
    # Even with no module list at all, the report (inputs, problems) is made.
    monkeypatch.setattr(api, "candidates", broken)
    report = abiscan.scan([H.good_layer(tmp_path)])
    assert report.modules == () and [i.label for i in report.inputs] == [
        str(tmp_path / "good.zip")]
    assert "internal error while listing modules" in report.internal_errors[0].problem


def test_internal_error_following_one_import_keeps_every_other_prediction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real one: the runtime-API check raised KeyError on django/http/cookie.py, the
    # "following imports" stage failed whole, and every module of the web layer kept
    # its own outcome: pydantic, built for CPython 3.11, "ok" on 3.12 (certain).
    from abiscan.simulate.python.import_graph import ImportGraph

    real = ImportGraph.parse_file

    def broken(self, name, *args):  # type: ignore[no-untyped-def]
        if name == "bad_dep":
            raise KeyError("simulated bug")
        return real(self, name, *args)

    monkeypatch.setattr(ImportGraph, "parse_file", broken)
    layer = write_zip(tmp_path / "mixed.zip", {
        "python/first.py": "import bad_dep\n",
        "python/second.py": "import bad_dep\n",
        "python/bad_dep.py": "",
        "python/fails.py": "import not_there\n",
        "python/fine.py": "import json\n",
    })
    report = abiscan.scan([layer], runtime="python3.12", jobs=1, use_cache=False)
    outcomes = {m.name: m.outcome for m in report.modules}
    # Both modules that reach the bug are unknown (the second meets it again: a failed
    # parse is not taken for "no source"); the others are followed as ever.
    assert outcomes == {"bad_dep": "unknown", "fails": "error", "fine": "ok",
                        "first": "unknown", "second": "unknown"}
    first = report.module("first")
    assert first is not None and first.reason.endswith(
        "its imports were not followed: internal error in abiscan (KeyError)")
    [problem] = report.internal_errors  # one bug, reported once
    assert problem.problem.startswith(
        "internal error while following the imports of 'bad_dep' and 2 other modules: KeyError")

    # When the stage fails whole, no module whose own file loads is called ok.
    def failing(*args: object) -> object:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(ImportGraph, "parse_file", real)
    monkeypatch.setattr(api, "follow_imports", failing)
    report = abiscan.scan([layer], runtime="python3.12", jobs=1, use_cache=False)
    assert {m.name: m.outcome for m in report.modules} == dict.fromkeys(outcomes, "unknown")
    assert [p.problem for p in report.internal_errors] == [
        "internal error while following imports: RuntimeError: simulated bug (please report it)"]


def test_exit_status_3_is_documented() -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "abiscan", "--help"], capture_output=True,
                          text=True, check=True)
    assert "3 internal error" in " ".join(proc.stdout.split())
    assert "3 for an internal error" in " ".join((root / "README.md").read_text().split())
    assert "exit status 3" in (root / "docs" / "limits.md").read_text().lower()


# -- shape 3 and 13: a member is bounded by its declared size -----------------

def test_member_never_inflates_past_its_declared_size(tmp_path: Path) -> None:
    [bomb] = H.inflates_past_declared(tmp_path)
    source = ZipSource(bomb, InputKind.LAYER)
    entry = next(e for e in source.entries() if e.path == "python/mod.py")
    assert entry.size == 100
    with pytest.raises(SourceError, match="python/mod.py: damaged member"):
        source.read(entry)
    report = _scan(tmp_path, bomb)
    m = report.module("mod")
    assert m is not None and m.outcome == "unknown" and "damaged member" in m.reason


def test_member_and_directory_budgets(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "many.zip", {f"python/m{i}.py": "" for i in range(30)})
    few = DEFAULT_LIMITS.replace(members=10)
    with pytest.raises(SourceError, match="declares 30 members, over the budget of 10"):
        open_source(z, InputKind.LAYER, limits=few)
    with pytest.raises(SourceError, match="directory 'python' has 30 entries"):
        open_source(z, InputKind.LAYER, limits=DEFAULT_LIMITS.replace(dir_entries=20))
    d = tmp_path / "tree"
    (d / "python").mkdir(parents=True)
    for i in range(30):
        (d / "python" / f"m{i}.py").write_text("")
    with pytest.raises(SourceError, match="more than 20 entries"):
        open_source(d, InputKind.LAYER, limits=DEFAULT_LIMITS.replace(dir_entries=20))
    report = abiscan.scan([z, H.good_layer(tmp_path)], limits=few)
    assert report.unreadable_inputs[0].label == str(z)
    assert report.module("fine") is not None


def test_limits_parse_and_cli_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_limits("source_bytes=4M, members=12").source_bytes == 4 * 1024 * 1024
    assert parse_limits("member-bytes=2K").member_bytes == 2048
    for bad in ("nope=1", "members=-1", "members", "members=0", "members=1e9"):
        with pytest.raises(LimitsError):
            parse_limits(bad)
    z = write_zip(tmp_path / "src.zip", {"python/mod.py": "import json\n" * 100})
    assert main(["scan", str(z), "--limits", "source_bytes=100"]) == 0
    assert "over the budget of 100" in capsys.readouterr().out
    assert main(["scan", str(z), "--limits", "bogus=1"]) == EXIT_USAGE
    assert "not a budget: 'bogus=1'" in capsys.readouterr().err


# -- shape 4: deep and large sources ------------------------------------------

@pytest.mark.parametrize("build, why", [
    (H.not_not, "nested too deeply"),
    (H.long_sum, "nested too deeply"),
    (H.unparse_sum, "nested too deeply"),
    (H.dotted_import, "more than 100 dotted parts"),
    (H.large_source, "over the budget of 2097152"),
])
def test_deep_and_large_sources_are_unknown_not_crashes(
    tmp_path: Path, build: H.Builder, why: str
) -> None:
    # The budgets bound the work (the reason names the one that was hit); how long that
    # takes is measured by benchmarks/fuzz_inputs.py, not asserted here.
    report = _scan(tmp_path, *build(tmp_path))
    m = report.module("mod")
    assert m is not None and m.outcome == "unknown" and why in m.reason
    assert not report.internal_errors


def test_sources_within_the_budget_are_still_followed(tmp_path: Path) -> None:
    # 90 nested lists, an import chain of 50 parts: real code, nothing refused.
    src = "x = " + "[" * 90 + "1" + "]" * 90 + "\nimport " + ".".join("p" * 50) + "\n"
    z = write_zip(tmp_path / "ok.zip", {"python/mod.py": src})
    m = abiscan.scan([z]).module("mod")
    assert m is not None and m.outcome == "error" and m.error is not None
    assert m.error.type == "ModuleNotFoundError"


# -- shape 6: one lookup costs the names it concerns -------------------------

class _CountingFs:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.listed = 0

    def listdir(self, path: str) -> list[str]:
        self.listed += 1
        return self.names if path == "/d" else []

    def is_dir(self, path: str) -> bool:
        return path == "/d"

    def is_file(self, path: str) -> bool:
        return path.startswith("/d/") and path[3:] in self.names


def test_passed_over_lists_each_directory_once() -> None:
    names = [f"m{i}.py" for i in range(20_000)] + ["_x.cpython-38-x86_64-linux-gnu.so"]
    fs = _CountingFs(names)
    target = replace(builtin_target("python3.12"), sys_path=("/d",))
    finder = ImportSystem(fs, target)
    for i in range(0, 20_000, 7):
        assert finder.find(f"m{i}").spec is not None
    assert fs.listed == 1
    res = finder.find("_x")
    assert res.spec is None and [p.reason for p in res.passed_over] == ["suffix-not-tried"]


def test_crowded_directory_scans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Work, not time, is what is bounded (timings belong in benchmarks/): a directory of
    # 20,000 modules is listed a few times in all, not once per module looked up in it,
    # and each member is inflated at most once.
    listed: Counter[str] = Counter()
    real = Stack.listdir

    def counting(self: Stack, path: str) -> Sequence[str]:
        listed[path] += 1
        return real(self, path)

    monkeypatch.setattr(Stack, "listdir", counting)
    seen: list[ScanProgress] = []
    report = abiscan.scan(
        [H.good_layer(tmp_path), *H.crowded_directory(tmp_path)],
        runtime="python3.12",
        progress=seen.append,
    )
    pkg = report.module("pkg")
    assert pkg is not None and pkg.ok
    assert listed["/opt/python/pkg"] <= 4, listed.most_common(3)
    assert seen[-1].members_read <= 20_001 + 10  # the crowded layer, and the good one


# -- shape 7: target files validated against the shipped schema --------------

def _target_file(tmp_path: Path, **changes: object) -> Path:
    data = custom_target("3.12").to_dict()
    data.update(changes)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("changes, message", [
    ({"abiflags": 5}, "target field 'abiflags' must be a string, not 5"),
    ({"max_layers": "five"}, "target field 'max_layers' must be an integer, not \"five\""),
    ({"runtime": []}, "target field 'runtime' must be a string or null, not []"),
    ({"libc_version": "two.thirty"}, "target field 'libc_version' must be glibc version"),
    ({"system": {"libraries": ["x"]}},
     "target field 'system.libraries[0]' must be an object, not \"x\""),
    ({"implementation": "pypy"}, "target field 'implementation' must be one of \"cpython\""),
    ({"python_version": "3.1000000000000000000000000"},
     "target field 'python_version' must be CPython 3 version"),
    ({"schema_version": "1"}, "target field 'schema_version' must be an integer, not \"1\""),
    ({"schema_version": 2}, "target field 'schema_version' must be at most 1"),
    ({"sys_path": ["relative"]}, "target field 'sys_path[0]' must be matching ^/"),
])
def test_bad_target_files_name_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, object], message: str
) -> None:
    path = _target_file(tmp_path, **changes)
    with pytest.raises(TargetError) as info:
        load_target(path)
    assert message in str(info.value) and str(path) in str(info.value)
    layer = H.good_layer(tmp_path)
    assert main(["scan", str(layer), "--target", str(path)]) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_target_file_budgets(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(TargetError, match="nested deeper than 32 levels"):
        load_target(deep)
    big = _target_file(tmp_path, notes=["x" * 1000] * 100)
    from abiscan.limits import Limits
    with pytest.raises(TargetError, match="over the budget of 1000"):
        load_target(big, Limits(target_bytes=1000))
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(TargetError, match="not a regular file"):
        load_target(fifo)
    # What abiscan writes, it reads back.
    for t in (builtin_target("python3.12", "arm64"), custom_target("3.13", free_threaded=True)):
        path = tmp_path / "ok.json"
        path.write_text(t.to_json())
        assert load_target(path) == t


def test_python_version_option_is_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "x.zip", "--python", "3.1000000000000000000000000"]) == EXIT_USAGE
    assert "not a CPython 3 version" in capsys.readouterr().err


# -- shape 8: a member that cannot be read is never ok -----------------------

@pytest.mark.parametrize("build, why", [
    (H.bad_crc, "Bad CRC-32"),
    (H.encrypted, "encrypted"),
    (H.unsupported_method, "unsupported compression"),
    (H.local_name_differs, "differ"),
    (H.lying_size, "declared"),
    (H.lying_zip64_size, "member of 3221225472 bytes is over the"),
    (H.bad_offset, "damaged member"),
])
def test_unreadable_member_is_unknown_and_reported(
    tmp_path: Path, build: H.Builder, why: str
) -> None:
    [z] = build(tmp_path)
    report = _scan(tmp_path, z)
    m = report.module("mod")
    assert m is not None and m.outcome == "unknown"
    assert why in m.reason and "python/mod.py" in m.reason
    assert any(p.source == str(z) and p.path == "python/mod.py" and why in p.problem
               for p in report.problems)
    other = report.module("other")
    assert other is not None and other.ok


# -- shape 9: dist-info problems reach the report ----------------------------

@pytest.mark.parametrize("build, why", [
    (H.bad_record, "RECORD is not valid CSV"),
    (H.huge_metadata, "METADATA is 209715246 bytes, over the budget"),
    (H.garbage_metadata, "METADATA is not valid UTF-8"),
])
def test_dist_info_problems_are_reported(tmp_path: Path, build: H.Builder, why: str) -> None:
    [z] = build(tmp_path)
    _problem(_scan(tmp_path, z), z, why)


# -- shape 10: inputs are regular files or directories -----------------------

def test_non_regular_inputs_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo, zero, urandom = H.not_regular(tmp_path)
    sock_path = tmp_path / "s.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    read_fd, write_fd = os.pipe()
    try:
        pipe = f"/proc/self/fd/{read_fd}"
        good = H.good_layer(tmp_path)
        # A FIFO or device opened for reading would block (or never end): being refused
        # before any read is what lets this call return at all.
        code = main(["scan", str(fifo), str(zero), str(urandom), str(sock_path), pipe, "",
                     str(good), "-v"])
    finally:
        sock.close()
        os.close(read_fd)
        os.close(write_fd)
    out, err = capsys.readouterr()
    assert code == EXIT_USAGE
    for name, kind in ((fifo, "a FIFO or pipe"), (zero, "a character device"),
                       (urandom, "a character device"), (sock_path, "a socket"),
                       (pipe, "a FIFO or pipe")):
        assert f"cannot read {name}: not a regular file or directory ({kind}); refused" in err
    assert "an empty path is not an input" in err
    assert "2 ok" in out


# -- shapes 11, 12: safe output ------------------------------------------------

def test_escape_helpers() -> None:
    assert escape_text("a\x1b[31mb\x07\x9b\n") == "a\\x1b[31mb\\x07\\x9b\\x0a"
    assert escape_text("a\nb", keep_newlines=True) == "a\nb"
    undecodable = b"lib\xff.so".decode("utf-8", "surrogateescape")
    assert escape_text(undecodable) == "lib\\xff.so"
    assert json_safe({"k\udcff": [undecodable, 1, None]}) == {"k\\xff": ["lib\\xff.so", 1, None]}
    assert escape_text("caf\u00e9 \\x41") == "caf\u00e9 \\x41"  # text and backslashes stay


def test_output_is_inert_and_valid_utf8(tmp_path: Path) -> None:
    [z] = H.escapes(tmp_path)
    env = {**os.environ, "PYTHONIOENCODING": "ascii:strict"}
    for fmt in ("text", "json", "sarif"):
        proc = subprocess.run(
            [sys.executable, "-m", "abiscan", "scan", str(z), "--format", fmt, "-v"],
            capture_output=True, env=env, timeout=60,
        )
        assert proc.returncode == 1, proc.stderr
        assert b"\x1b" not in proc.stdout and b"\x07" not in proc.stdout
        assert b"Traceback" not in proc.stderr and b"Warning" not in proc.stderr
        assert b"\x1b" not in proc.stderr
        text = proc.stdout.decode("utf-8")  # strict: valid UTF-8
        if fmt == "text":
            assert "lib\\x1b[31m\\xff\\xfeXXXXXXXXX.so" in text
            assert "../../\\x1b[31mRED\\x1b]0;title\\x07/x.py" in text
        else:
            assert "\\\\xff\\\\xfe" in text and "\\ud" not in text
            json.loads(text)


# -- shape 13: smaller problems ------------------------------------------------

def test_options_after_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = H.good_layer(tmp_path)
    b = write_zip(tmp_path / "b.zip", {"python/other.py": ""})
    assert main(["scan", str(a), "--format", "json", str(b), "--runtime", "python3.12"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [i["source"] for i in doc["inputs"]] == [str(a), str(b)]
    assert main(["explain", "fine", str(a), "--runtime", "python3.12", str(b)]) == 0
    assert "import fine: ok" in capsys.readouterr().out


def test_long_link_target_message_names_the_member_once(tmp_path: Path) -> None:
    [z] = H.long_link(tmp_path)
    report = _scan(tmp_path, z)
    [problem] = [p for p in report.problems if p.source == str(z)]
    assert problem.path == "python/link.py"
    assert problem.problem == "member of 5000 bytes is over the limit of 4096 bytes"
    assert str(problem).count("python/link.py") == 1


def test_undecodable_sources_say_what_is_wrong(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "bytes.zip", {
        "python/nul.py": b"import json\x00\n",
        "python/cookie.py": b"# -*- coding: bogus-enc -*-\nimport json\n",
    })
    report = abiscan.scan([z], runtime="python3.13")  # newer than the running grammar
    for name, text in (("nul", "null bytes"), ("cookie", "unknown encoding: bogus-enc")):
        m = report.module(name)
        assert m is not None and m.outcome == "error" and m.error is not None
        assert m.error.type == "SyntaxError" and text in m.error.message
        assert "may accept it" not in m.reason
