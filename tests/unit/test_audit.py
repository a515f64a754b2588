"""``abiscan audit``: many stacks on many targets, resumed, retried, on a pool or Dask."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from abiscan.cli import main
from abiscan.fleet import (
    MANIFEST_SCHEMA,
    RECORD_SCHEMA,
    AuditResult,
    ManifestError,
    audit,
    load_manifest,
    parse_manifest,
    read_records,
    schema,
    summary_table,
)
from abiscan.fleet.summary import format_progress

from audit_fleet import (
    TARGETS,
    broken_runner,
    build_fleet,
    dying_runner,
    flaky_runner,
    lost_runner,
    write_stack,
)
from helpers import write_zip

jsonschema = pytest.importorskip("jsonschema")


_VALIDATORS: dict[str, Any] = {}


def validate(doc: Any, name: str) -> None:
    if name not in _VALIDATORS:
        loaded = json.loads(schema(name))
        cls = jsonschema.validators.validator_for(loaded)
        cls.check_schema(loaded)
        _VALIDATORS[name] = cls(loaded)
    _VALIDATORS[name].validate(doc)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """50 stacks of five shapes, on four targets."""
    return build_fleet(tmp_path_factory.mktemp("fleet"))


@pytest.fixture(scope="module")
def reference(fleet: Path, tmp_path_factory: pytest.TempPathFactory) -> AuditResult:
    """The audit run in this process, one cell after the other."""
    return audit(fleet, jobs=1, cache_dir=tmp_path_factory.mktemp("cache"))


def test_fifty_stacks_on_four_targets_on_the_local_pool(
    fleet: Path, reference: AuditResult, tmp_path: Path
) -> None:
    out = tmp_path / "records.jsonl"
    result = audit(fleet, jobs=2, output=out, cache_dir=tmp_path / "cache")
    assert len(result.records) == 200
    assert result.scanned == 200 and result.reused == 0 and result.retried == 0
    # The pool finishes cells in any order; the records come in manifest order all the same.
    assert [(r["stack"], r["target"]) for r in result.records] == [
        (f"stack-{i:03d}", t) for i in range(50) for t in TARGETS
    ]
    assert out.read_text() == reference.to_jsonl() == result.to_jsonl()
    assert not Path(f"{out}.partial").exists()
    for rec in read_records(out):
        validate(rec, RECORD_SCHEMA)
    by = {(r["stack"], r["target"]): r for r in result.records}
    # Each shape fails where the real interpreter would, and only there.
    assert {t for t in TARGETS if by[("stack-001", t)]["status"] == "error"} == set(TARGETS[1:])
    assert by[("stack-001", "python3.12-x86_64")]["codes"] == ["ABI101", "ABI501"]
    assert [t for t in TARGETS if by[("stack-002", t)]["status"] == "error"] == [
        "python3.12-arm64"]
    assert by[("stack-003", "python3.12-x86_64")]["status"] == "ok"
    assert by[("stack-003", "python3.13-x86_64")]["first_failure"]["module"] == "ext003"
    assert all(by[(f"stack-{i:03d}", t)]["status"] == "ok" for i in (0, 4) for t in TARGETS)
    assert result.exit_status == 1
    # Every stack's layers differ, so every digest does.
    assert len({r["stack_digest"] for r in result.records}) == 50


def test_the_summary_table_shows_the_first_failure_of_each_cell(
    reference: AuditResult,
) -> None:
    table = summary_table(reference)
    lines = table.splitlines()
    assert lines[0].split() == ["stack", *TARGETS]
    assert lines[2].split() == ["stack-001", "ok", "pkg001:", "ImportError", "pkg001:",
                                "ImportError", "pkg001:", "ImportError"]
    assert "50 stacks x 4 targets: 130 ok, 70 failing, 0 input errors, 0 internal errors" in table


def test_resume_rescans_only_the_stacks_whose_artifacts_changed(tmp_path: Path) -> None:
    manifest = build_fleet(tmp_path, 10)
    out = tmp_path / "records.jsonl"
    first = audit(manifest, jobs=1, output=out, cache_dir=tmp_path / "cache")
    for i in (3, 5):  # new bytes in one layer of two stacks
        write_stack(tmp_path, i, variant="rebuilt")
    again = audit(manifest, jobs=2, resume=out, output=out, cache_dir=tmp_path / "cache")
    assert (again.scanned, again.reused) == (8, 32)
    fresh = audit(manifest, jobs=1, cache_dir=tmp_path / "cache")
    assert out.read_text() == fresh.to_jsonl()
    changed = {r["stack"] for r in again.records
               if r["stack_digest"] != first.record(r["stack"], r["target"])["stack_digest"]}
    assert changed == {"stack-003", "stack-005"}
    # An unchanged stack's records are the old ones, byte for byte.
    assert again.record("stack-000", TARGETS[0]) == first.record("stack-000", TARGETS[0])


def test_resume_ignores_records_of_another_abiscan_version(tmp_path: Path) -> None:
    manifest = build_fleet(tmp_path, 2, targets=TARGETS[:2])
    old = audit(manifest, jobs=1, cache_dir=tmp_path / "cache")
    stale = [dict(r, abiscan_version="0.0.1") for r in old.records]
    assert audit(manifest, jobs=1, resume=stale, cache_dir=tmp_path / "c").scanned == 4
    assert audit(manifest, jobs=1, resume=old.records, cache_dir=tmp_path / "c").reused == 4


def test_an_interrupted_audit_resumes_from_its_partial_file(tmp_path: Path) -> None:
    manifest = build_fleet(tmp_path, 3, targets=TARGETS[:2])
    out = tmp_path / "records.jsonl"
    done = audit(manifest, jobs=1, cache_dir=tmp_path / "cache")
    # As a killed run leaves it: some records, then a torn line.
    lines = done.to_jsonl().splitlines(keepends=True)
    Path(f"{out}.partial").write_text("".join(lines[:4]) + lines[4][:30])
    again = audit(manifest, jobs=1, resume=out, output=out, cache_dir=tmp_path / "cache")
    assert (again.reused, again.scanned) == (4, 2)
    assert out.read_text() == done.to_jsonl()


def test_a_failing_task_is_retried_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = build_fleet(tmp_path, 12, targets=TARGETS[:2])
    monkeypatch.setenv("ABISCAN_TEST_MARKERS", str(tmp_path))
    result = audit(manifest, jobs=2, runner=flaky_runner, cache_dir=tmp_path / "cache")
    # stack-001 and stack-011, on two targets each: failed once, then scanned.
    assert result.retried == 4
    assert result.to_jsonl() == audit(manifest, jobs=1, cache_dir=tmp_path / "c").to_jsonl()


def test_a_task_that_fails_twice_is_an_internal_error_and_the_audit_finishes(
    tmp_path: Path,
) -> None:
    manifest = build_fleet(tmp_path, 4, targets=TARGETS[:2])
    result = audit(manifest, jobs=2, runner=broken_runner, cache_dir=tmp_path / "cache")
    assert result.retried == 2
    bad = [r for r in result.records if r["status"] == "internal-error"]
    assert [(r["stack"], r["exit_status"]) for r in bad] == [("stack-002", 3)] * 2
    assert bad[0]["problems"] == ["internal error: RuntimeError: broken on purpose"]
    assert all(r["status"] != "internal-error" for r in result.records if r not in bad)
    assert result.exit_status == 3
    for rec in result.records:
        validate(rec, RECORD_SCHEMA)
    row = next(x for x in summary_table(result).splitlines() if x.startswith("stack-002"))
    assert row.split() == ["stack-002", "internal", "error", "internal", "error"]


def test_a_worker_that_dies_is_replaced_and_its_cell_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = build_fleet(tmp_path, 4, targets=TARGETS[:2])
    monkeypatch.setenv("ABISCAN_TEST_MARKERS", str(tmp_path))
    result = audit(manifest, jobs=2, runner=dying_runner, cache_dir=tmp_path / "cache")
    # The broken pool held at most two tasks per worker: only those are retried.
    assert 1 <= result.retried <= 4
    assert result.to_jsonl() == audit(manifest, jobs=1, cache_dir=tmp_path / "c").to_jsonl()


def test_unreadable_inputs_are_input_errors_with_exit_status_2(tmp_path: Path) -> None:
    manifest = build_fleet(tmp_path, 2, targets=TARGETS[:1])
    (tmp_path / "layers" / "s001-0.zip").unlink()
    (tmp_path / "layers" / "s000-0.zip").write_bytes(b"not a zip")
    result = audit(manifest, jobs=1, cache_dir=tmp_path / "cache")
    missing, garbage = result.record("stack-001", TARGETS[0]), result.record("stack-000",
                                                                             TARGETS[0])
    assert missing is not None and garbage is not None
    assert missing["status"] == "input-error"
    assert missing["problems"] == ["layers/s001-0.zip: cannot read: No such file or directory"]
    assert garbage["status"] == "input-error" and garbage["problems"]
    assert "layers/s000-0.zip" in garbage["problems"][0]
    assert result.exit_status == 2
    for rec in result.records:
        validate(rec, RECORD_SCHEMA)


def test_declared_metadata_marks_the_targets_the_layer_claims(tmp_path: Path) -> None:
    build_fleet(tmp_path, 2)
    (tmp_path / "meta.json").write_text(json.dumps({"LayerVersions": [
        {"Version": 3, "CompatibleRuntimes": ["python3.12"],
         "CompatibleArchitectures": ["x86_64"]},
        {"Version": 2, "CompatibleRuntimes": ["python3.8"]},
    ]}))
    manifest = tmp_path / "audit.toml"
    manifest.write_text(
        'targets = ["python3.8-x86_64", "python3.12-x86_64", "python3.12-arm64"]\n'
        '[[stacks]]\nname = "claims-3.12"\nlayers = ["layers/s001-0.zip"]\n'
        'declared = "meta.json"\n'
    )
    result = audit(manifest, jobs=1, cache_dir=tmp_path / "cache")
    assert [r["declared"] for r in result.records] == [False, True, False]
    assert [r["status"] for r in result.records] == ["ok", "error", "error"]
    table = summary_table(result)
    assert "!pkg001: ImportError" in table
    assert "declared metadata lists" in table


def test_a_file_url_and_an_fsspec_url_read_the_same_bytes(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    build_fleet(tmp_path, 2)
    data = (tmp_path / "layers" / "s001-0.zip").read_bytes()
    with fsspec.open("memory://bucket/s001-0.zip", "wb") as f:
        f.write(data)
    manifest = {"targets": ["python3.12-x86_64"], "stacks": [
        {"name": "local", "layers": ["layers/s001-0.zip"]},
        {"name": "file", "layers": [(tmp_path / "layers" / "s001-0.zip").as_uri()]},
        {"name": "memory", "layers": ["memory://bucket/s001-0.zip"]},
    ]}
    validate(manifest, MANIFEST_SCHEMA)
    cache = tmp_path / "cache"
    result = audit(parse_manifest(manifest, tmp_path), jobs=1, cache_dir=cache)
    local, file_url, memory = result.records
    assert local["status"] == file_url["status"] == memory["status"] == "error"
    assert memory["first_failure"] == local["first_failure"]
    # The URL was copied into the cache under the SHA-256 of its bytes, and nowhere else.
    import hashlib

    blob = cache / "audit" / "blobs" / f"{hashlib.sha256(data).hexdigest()}.zip"
    assert blob.read_bytes() == data
    assert sorted(p.name for p in (cache / "audit" / "blobs").iterdir()) == [blob.name]
    sarif = audit(parse_manifest(manifest, tmp_path), jobs=1, cache_dir=cache, sarif=True)
    uris = {loc["physicalLocation"]["artifactLocation"]["uri"]
            for r in sarif.records for res in r["sarif"]["results"]
            for loc in res.get("locations", [])}
    # Findings name the input as the manifest does, not the cached copy.
    assert "memory://bucket/s001-0.zip" in uris and not any(str(cache) in u for u in uris)


@pytest.mark.parametrize(("doc", "message"), [
    ({"targets": "all"}, "'stacks' must be a non-empty list"),
    ({"targets": ["python3.12"], "stacks": [{"name": "a", "layers": ["x.zip"]}]},
     "unknown target 'python3.12'"),
    ({"targets": "all", "stacks": [{"name": "a"}]}, "at least one layer or a function"),
    ({"targets": "all", "stacks": [{"name": "a", "layers": ["x"], "lyers": []}]},
     "unknown key 'lyers'"),
    ({"targets": "all", "stacks": [{"name": "a b", "layers": ["x"]}]}, "'name' must be"),
    ({"targets": "all", "stacks": [{"name": "a", "layers": ["x"]},
                                   {"name": "a", "function": "y"}]}, "two stacks are named"),
])
def test_a_bad_manifest_is_refused_by_the_parser_and_the_schema(
    doc: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(doc, tmp_path)
    if message != "two stacks are named":  # uniqueness of names is beyond JSON Schema
        with pytest.raises(jsonschema.ValidationError):
            validate(doc, MANIFEST_SCHEMA)


def test_the_manifests_of_the_docs_follow_the_schema(tmp_path: Path) -> None:
    doc = {"schema_version": 1, "targets": "all", "stacks": [
        {"name": "powertools@v3", "layers": ["s3://layers/pt.zip", "extra.zip"],
         "function": "fn.zip", "declared": "pt.json"}]}
    validate(doc, MANIFEST_SCHEMA)
    manifest = parse_manifest(doc, tmp_path)
    assert len(manifest.targets) == 14
    assert [(i.role, i.where) for i in manifest.stacks[0].inputs] == [
        ("layer", "s3://layers/pt.zip"), ("layer", str(tmp_path / "extra.zip")),
        ("function", str(tmp_path / "fn.zip")), ("declared", str(tmp_path / "pt.json"))]


def test_the_cli_writes_records_table_and_sarif(
    fleet: Path, reference: AuditResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, table, sarif = tmp_path / "r.jsonl", tmp_path / "table.txt", tmp_path / "sarif"
    status = main(["audit", str(fleet), "-o", str(out), "--summary", str(table),
                   "--sarif-dir", str(sarif), "-j", "2", "--cache-dir", str(tmp_path / "c"),
                   "--progress", "always"])
    assert status == 1
    captured = capsys.readouterr()
    assert captured.out == table.read_text() == summary_table(reference)
    assert "audit: python3.8-x86_64 50/50" in captured.err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [{k: v for k, v in r.items() if k != "sarif"} for r in records] == list(
        reference.records)
    log = json.loads((sarif / "stack-001.sarif").read_text())
    assert log["version"] == "2.1.0"
    assert [run["properties"]["target"] for run in log["runs"]] == TARGETS
    assert {res["ruleId"] for res in log["runs"][1]["results"]} == {"ABI101", "ABI501"}
    for run in log["runs"]:  # every run carries the rule table its ruleIndex points into
        rules = run["tool"]["driver"]["rules"]
        assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in run["results"])
    assert len(list(sarif.iterdir())) == 50


def test_the_cli_prints_records_when_no_output_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = build_fleet(tmp_path, 1, targets=TARGETS[:2])
    assert main(["audit", str(manifest), "-j", "1", "--cache-dir", str(tmp_path / "c")]) == 0
    captured = capsys.readouterr()
    assert [json.loads(x)["target"] for x in captured.out.splitlines()] == TARGETS[:2]
    assert captured.err.startswith("stack ")


@pytest.mark.parametrize(("argv", "message"), [
    (["--executor", "dask"], "needs a scheduler address"),
    (["--scheduler", "tcp://127.0.0.1:1"], "a scheduler goes with the dask executor"),
    (["-j", "0"], "jobs must be at least 1"),
])
def test_cli_usage_errors_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = build_fleet(tmp_path, 1, targets=TARGETS[:1])
    assert main(["audit", str(manifest), *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_or_broken_manifest_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", str(tmp_path / "none.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "bad.toml").write_text("targets = [\n")
    assert main(["audit", str(tmp_path / "bad.toml")]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    with pytest.raises(ManifestError):
        load_manifest(tmp_path / "bad.toml")


def test_progress_names_every_target_and_the_time_left() -> None:
    from abiscan.fleet import Progress

    line = format_progress(Progress(done={"python3.12-x86_64": 10, "python3.12-arm64": 7},
                                    stacks=50, elapsed=65.0, eta=125.4, dashboard=None))
    assert line == ("audit: python3.12-x86_64 10/50 python3.12-arm64 7/50  "
                    "0:01:05 elapsed, ETA 0:02:05")


def test_a_directory_layer_is_digested_by_names_modes_and_bytes(tmp_path: Path) -> None:
    from abiscan.fleet.artifacts import digest_of

    tree = tmp_path / "layer" / "python" / "pkg"
    tree.mkdir(parents=True)
    (tree / "__init__.py").write_text("x = 1\n")
    first = digest_of(str(tmp_path / "layer"), tmp_path / "cache")
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "layer", copy)
    assert digest_of(str(copy), tmp_path / "cache") == first
    (copy / "python" / "pkg" / "__init__.py").write_text("x = 2\n")
    assert digest_of(str(copy), tmp_path / "cache") != first
    write_zip(tmp_path / "z.zip", {"a": "b"})
    assert not (tmp_path / "cache").exists()  # local inputs are never copied


def test_a_stack_whose_digest_task_fails_twice_is_an_internal_error_on_every_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import abiscan.fleet.run as run_module

    manifest = build_fleet(tmp_path, 3, targets=TARGETS[:2])
    real = run_module.prepare_stack
    calls: list[str] = []

    def failing(stack: Any, cache_dir: str) -> Any:
        calls.append(stack.name)
        if stack.name == "stack-001":
            raise OSError("disk gone")
        return real(stack, cache_dir)

    monkeypatch.setattr(run_module, "prepare_stack", failing)  # jobs=1: in this process
    result = audit(manifest, jobs=1, cache_dir=tmp_path / "cache")
    assert calls.count("stack-001") == 2 and result.retried == 1
    bad = [r for r in result.records if r["stack"] == "stack-001"]
    assert [(r["status"], r["stack_digest"]) for r in bad] == [("internal-error", None)] * 2
    assert bad[0]["problems"] == ["internal error: OSError: disk gone"]
    assert {r["status"] for r in result.records if r["stack"] != "stack-001"} <= {"ok", "error"}
    for rec in result.records:
        validate(rec, RECORD_SCHEMA)


def test_the_package_exports_audit() -> None:
    import abiscan
    import abiscan.fleet

    assert abiscan.audit is abiscan.fleet.audit
    assert "audit" in abiscan.__all__


def test_a_result_lost_on_the_way_is_retried_then_an_internal_error(tmp_path: Path) -> None:
    manifest = build_fleet(tmp_path, 2, targets=TARGETS[:1])
    result = audit(manifest, jobs=1, runner=lost_runner, cache_dir=tmp_path / "cache")
    assert result.retried == 1
    lost = result.record("stack-001", TARGETS[0])
    assert lost is not None and lost["problems"] == [
        "internal error: RuntimeError: the task's result was lost (NoneType)"]
    assert [r["status"] for r in result.records] == ["ok", "internal-error"]
