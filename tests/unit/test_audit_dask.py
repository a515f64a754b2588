"""The audit on a dask.distributed cluster: the same records as the local pool, byte for byte.

Skipped when ``distributed`` is not installed (``pip install 'abiscan[dask]'``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from abiscan.fleet import AuditResult, Progress, audit

from audit_fleet import TARGETS, broken_runner, build_fleet, dying_runner

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two in-process workers (threads): quick to start on a small machine."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as c:
        yield c


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fleet(tmp_path_factory.mktemp("fleet"))


def test_fifty_stacks_on_a_local_cluster_give_the_pools_records(
    fleet: Path, cluster: Any, tmp_path: Path
) -> None:
    seen: list[Progress] = []
    on_dask = audit(fleet, executor="dask", scheduler=cluster.scheduler_address,
                    cache_dir=tmp_path / "c", progress=seen.append)
    local = audit(fleet, jobs=2, cache_dir=tmp_path / "c")
    assert len(on_dask.records) == 200 and on_dask.scanned == 200
    assert on_dask.to_jsonl() == local.to_jsonl()
    assert seen[-1].done == {t: 50 for t in TARGETS}
    # Both workers took cells: the tasks were spread, not run in the client.
    with distributed.Client(cluster.scheduler_address) as client:
        assert len(client.scheduler_info()["workers"]) == 2


def test_a_client_can_be_passed_and_a_failing_task_becomes_an_internal_error(
    cluster: Any, tmp_path: Path
) -> None:
    manifest = build_fleet(tmp_path, 4, targets=TARGETS[:2])
    with distributed.Client(cluster.scheduler_address) as client:
        result: AuditResult = audit(manifest, executor="dask", scheduler=client,
                                    runner=broken_runner, cache_dir=tmp_path / "c")
        assert client.status == "running"  # the caller's client is left open
    assert result.retried == 2
    assert [r["status"] for r in result.records if r["stack"] == "stack-002"] == [
        "internal-error"] * 2
    assert result.exit_status == 3
    others = [r for r in result.records if r["stack"] != "stack-002"]
    assert all(r["status"] in ("ok", "error") for r in others)


def test_a_killed_worker_process_is_retried_and_the_audit_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Process workers: the first scan of one cell kills its worker (``os._exit``)."""
    manifest = build_fleet(tmp_path, 4, targets=TARGETS[:2])
    monkeypatch.setenv("ABISCAN_TEST_MARKERS", str(tmp_path))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as procs:
        result = audit(manifest, executor="dask", scheduler=procs.scheduler_address,
                       runner=dying_runner, cache_dir=tmp_path / "c")
    assert (tmp_path / "stack-001@python3.12-x86_64").exists()  # the worker did die
    assert result.to_jsonl() == audit(manifest, jobs=1, cache_dir=tmp_path / "c").to_jsonl()


def test_the_cli_runs_on_a_scheduler_and_shows_its_dashboard(
    cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from abiscan.cli import main

    manifest = build_fleet(tmp_path, 3, targets=TARGETS[:2])
    status = main(["audit", str(manifest), "--executor", "dask", "--scheduler",
                   cluster.scheduler_address, "-o", str(tmp_path / "r.jsonl"),
                   "--cache-dir", str(tmp_path / "c"), "--progress", "always"])
    assert status == 1  # stack-001 fails on python3.12
    err = capsys.readouterr().err
    assert err.startswith("abiscan audit: dashboard http")
    assert "python3.12-x86_64 3/3" in err
    local = audit(manifest, jobs=1, cache_dir=tmp_path / "c")
    assert (tmp_path / "r.jsonl").read_text() == local.to_jsonl()
