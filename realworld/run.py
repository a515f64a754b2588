"""``python -m realworld run``: build every scenario's layers, record the ground truth,
scan with abiscan, compare, and write the agreement tables."""

from __future__ import annotations

import datetime
import json
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realworld.layers import Layer, build_layer, merge_layers, modules_of, unpack
from realworld.paths import MANIFEST, REPO, cache_dir
from realworld.pypi import WheelFile, download
from realworld.report import Record, compare, write_docs
from realworld.runtime import runtime_dirs
from realworld.scenarios import LayerSpec, Scenario, scenarios
from realworld.truth import Truth, ground_truth

__all__ = ["BuiltScenario", "build", "rerender", "run_suite", "select_modules"]

DEFAULT_CAP = 12
QUICK_CAP = 6


@dataclass(frozen=True)
class BuiltScenario:
    scenario: Scenario
    layers: tuple[Layer, ...]
    opt: Path  # the layers merged, playing /opt for the ground truth
    modules: tuple[tuple[str, str], ...]  # (distribution, module), in test order
    left_out: tuple[str, ...]  # distributions with no file for the scenario's platform


def load_manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(MANIFEST.read_text())
    return data


def _file_for(entry: Mapping[str, Any], spec: LayerSpec) -> WheelFile | None:
    files = entry["pins"].get(spec.python)
    if files is None:
        return None
    raw = files.get(spec.variant)
    if raw is None and spec.variant == "glibc228":
        raw = files["x86_64"]  # no newer build published: the same file pip would take
    if raw is None:
        return None
    return WheelFile(project=entry["name"], version=raw["version"], filename=raw["filename"],
                     sha256=raw["sha256"], size=raw["size"])


def _closure(manifest: Mapping[str, Any], spec: LayerSpec) -> tuple[list[WheelFile], list[str]]:
    """The wheels of the stack's projects and their dependencies for ``spec``; and the
    projects left out because nothing installable is published for its platform."""
    projects = manifest["projects"]
    seen: dict[str, WheelFile] = {}
    left_out: list[str] = []
    queue = list(manifest["stacks"][spec.stack])
    while queue:
        name = queue.pop(0)
        if name in seen or name in left_out or name not in projects:
            continue
        wheel = _file_for({"name": name, **projects[name]}, spec)
        if wheel is None:
            left_out.append(name)
            continue
        seen[name] = wheel
        queue += projects[name]["requires"].get(spec.python, [])
    return [seen[n] for n in sorted(seen)], sorted(left_out)


def select_modules(mods: Sequence[str], exts: Sequence[str], cap: int) -> list[str]:
    """Every top-level module; then extension modules, then the shallowest other modules
    (each in name order) until ``cap`` modules are chosen. Deterministic, and biased to
    what functions import and to what abiscan reads the binaries of."""
    chosen = [m for m in mods if "." not in m]
    rest = [e for e in exts if e not in chosen]
    rest += sorted((m for m in mods if m not in chosen and m not in exts),
                   key=lambda m: (m.count("."), m))
    return chosen + rest[: max(0, cap - len(chosen))]


def _skipped(name: str, skip: Mapping[str, Any]) -> bool:
    if name in skip.get("modules", {}):
        return True
    return any(name.startswith(p) for p in skip.get("prefixes", {}))


def build(scenario: Scenario, manifest: Mapping[str, Any], cache: Path, cap: int
          ) -> BuiltScenario:
    layers: list[Layer] = []
    modules: dict[str, str] = {}
    left_out: set[str] = set()
    roots = set(manifest["stacks"][scenario.layers[0].stack])
    for spec in scenario.layers:
        wheels, missing = _closure(manifest, spec)
        left_out.update(m for m in missing if m in roots)
        paths = download(wheels, cache)
        with ThreadPoolExecutor(max_workers=2) as pool:
            unpacked = list(pool.map(unpack, [paths[w.filename] for w in wheels],
                                     [w.sha256 for w in wheels], [cache] * len(wheels)))
        layers.append(build_layer([(u, w.sha256) for u, w in zip(unpacked, wheels, strict=True)],
                                  spec.layout, spec.python, cache))
        for u, w in zip(unpacked, wheels, strict=True):
            if w.project in roots:
                for m in select_modules(*modules_of(u), cap):
                    if not _skipped(m, manifest.get("skip_modules", {})):
                        modules.setdefault(m, w.project)
    return BuiltScenario(scenario=scenario, layers=tuple(layers),
                         opt=merge_layers(layers, cache),
                         modules=tuple((d, m) for m, d in modules.items()),
                         left_out=tuple(sorted(left_out)))


def predict(built: BuiltScenario) -> dict[str, dict[str, Any]]:
    """abiscan's prediction for every module of the scenario, through the public API (JSON)."""
    from abiscan import scan
    from abiscan.target.profiles import builtin_target

    target = builtin_target(f"python{built.scenario.python}", "x86_64")
    report = scan([la.root for la in built.layers], target=target,
                  imports=[m for _, m in built.modules])
    for problem in report.internal_errors:
        # Never compared silently: an abiscan bug makes the modules it touched unknown,
        # and the run says so (session 13: one such bug had left a web layer's modules
        # at their own outcomes, 599 errors predicted ok).
        print(f"  abiscan internal error on {built.scenario.id}: {problem.problem}",
              file=sys.stderr, flush=True)
        INTERNAL_ERRORS.setdefault(built.scenario.id, []).append(problem.problem)
    data: dict[str, Any] = json.loads(report.to_json(indent=None))
    return {m["name"]: m for m in data["modules"]}


# The internal errors each scenario's scan reported, saved with the run's records.
INTERNAL_ERRORS: dict[str, list[str]] = {}


def _run_one(scenario: Scenario, manifest: Mapping[str, Any], cache: Path, cap: int,
             jobs: int, timings: dict[str, float]) -> list[Record]:
    t0 = time.monotonic()
    built = build(scenario, manifest, cache, cap)
    t1 = time.monotonic()
    names = [m for _, m in built.modules]
    # abiscan runs in this process while the interpreters run in theirs.
    with ThreadPoolExecutor(max_workers=1) as pool:
        scanning = pool.submit(_timed_predict, built)
        truths: dict[str, Truth] = (
            ground_truth(built.opt, scenario.python, names, cache, jobs,
                         runtime_dirs(manifest, scenario.python, cache))
            if scenario.truth else {}
        )
        t2 = time.monotonic()
        preds, scan_time = scanning.result()
    timings["build"] += t1 - t0
    timings["truth"] += t2 - t1
    timings["scan"] += scan_time
    new = [compare(scenario, dist, mod, truths.get(mod), preds.get(mod))
           for dist, mod in built.modules]
    judged = [r for r in new if r.truth_outcome is not None]
    print(f"{scenario.id}: {len(new)} modules, outcome agreement "
          f"{sum(r.outcome_agrees for r in judged)}/{len(judged)} (layers {t1 - t0:.0f}s, "
          f"real imports {t2 - t1:.0f}s, abiscan {scan_time:.0f}s)", flush=True)
    return new


def _timed_predict(built: BuiltScenario) -> tuple[dict[str, dict[str, Any]], float]:
    start = time.monotonic()
    try:
        preds = predict(built)
    except Exception as exc:  # abiscan itself failed: every module counts as missing
        print(f"  abiscan failed on {built.scenario.id}: {exc!r}", file=sys.stderr)
        preds = {}
    return preds, time.monotonic() - start


def run_suite(quick: bool, jobs: int, cap: int | None, only: Sequence[str],
              write_docs: bool, budget: float | None = None, results: str | None = None
              ) -> int:
    """Run the scenarios (within ``budget`` minutes: none is started after it), save the
    records, and write the tables (docs/realworld.md; for ``quick``, the cache)."""
    manifest = load_manifest()
    cache = cache_dir()
    cap = cap if cap is not None else (QUICK_CAP if quick else DEFAULT_CAP)
    todo = [s for s in scenarios(manifest, quick) if not only or any(o in s.id for o in only)]
    records: list[Record] = []
    timings: dict[str, float] = {"build": 0.0, "truth": 0.0, "scan": 0.0}
    started = time.monotonic()
    host = platform.python_version()  # abiscan parses with this interpreter's grammar
    not_run: list[str] = []
    for n, scenario in enumerate(todo, 1):
        if budget is not None and time.monotonic() - started > budget * 60:
            not_run = [s.id for s in todo[n - 1:]]
            print(f"time budget spent: {len(not_run)} scenarios not run", flush=True)
            break
        print(f"[{n}/{len(todo)}] ", end="", flush=True)
        records += _run_one(scenario, manifest, cache, cap, jobs, timings)
        # Saved after every scenario: `report` can render a run that was stopped.
        _save(records, cache, quick, {"cap": cap, "elapsed": time.monotonic() - started,
                                      "timings": timings, "abiscan_python": host,
                                      "not_run": [s.id for s in todo[n:]],
                                      "internal_errors": INTERNAL_ERRORS}, results, final=False)
    elapsed = time.monotonic() - started
    _save(records, cache, quick, {"cap": cap, "elapsed": elapsed, "timings": timings,
                                  "abiscan_python": host, "not_run": not_run,
                                  "internal_errors": INTERNAL_ERRORS}, results)
    if INTERNAL_ERRORS:
        print(f"abiscan reported internal errors in {len(INTERNAL_ERRORS)} scenarios "
              "(saved with the records as meta.internal_errors)", flush=True)
    if write_docs or quick:
        write_docs_page(records, manifest, quick=quick, cap=cap, elapsed=elapsed,
                        timings=timings, not_run=not_run, abiscan_python=host)
    return 1 if INTERNAL_ERRORS else 0


def write_docs_page(records: Sequence[Record], manifest: Mapping[str, Any], *, quick: bool,
                    cap: int, elapsed: float, timings: Mapping[str, float],
                    not_run: Sequence[str], abiscan_python: str) -> None:
    target = REPO / "docs" / "realworld.md" if not quick else cache_dir() / "results" / "quick.md"
    write_docs(target, records, manifest, cap=cap, elapsed=elapsed, timings=timings,
               not_run=not_run, abiscan_python=abiscan_python)
    print(f"wrote {target}")


def rerender(paths: Sequence[Path] = ()) -> int:
    """Write docs/realworld.md again from saved runs (default ``results/latest.json``);
    several runs are merged (a scenario's records from the last file that has it)."""
    sources = list(paths) or [cache_dir() / "results" / "latest.json"]
    by_scenario: dict[str, list[Record]] = {}
    elapsed = 0.0
    timings = {"build": 0.0, "truth": 0.0, "scan": 0.0}
    caps: set[int] = set()
    hosts: list[str] = []
    for source in sources:
        data = json.loads(source.read_text())
        meta = data["meta"]
        caps.add(meta["cap"])
        host = meta.get("abiscan_python", "unrecorded")
        if host not in hosts:
            hosts.append(host)
        elapsed += meta["elapsed"]
        for key in timings:
            timings[key] += meta["timings"][key]
        runs: dict[str, list[Record]] = {}
        for raw in data["records"]:
            runs.setdefault(raw["scenario"], []).append(Record(**raw))
        by_scenario.update(runs)
    ran = set(by_scenario)
    manifest = load_manifest()
    not_run = [s.id for s in scenarios(manifest) if s.id not in ran]
    records = [r for recs in by_scenario.values() for r in recs]
    write_docs_page(records, manifest, quick=False, cap=max(caps), elapsed=elapsed,
                    timings=timings, not_run=not_run, abiscan_python=" and ".join(hosts))
    return 0


def _save(records: Sequence[Record], cache: Path, quick: bool, meta: Mapping[str, Any],
          name: str | None = None, final: bool = True) -> None:
    folder = cache / "results"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    text = json.dumps({"meta": meta, "records": [r.to_dict() for r in records]}, indent=0)
    if final:
        (folder / f"{stamp}{'-quick' if quick else ''}.json").write_text(text)
    latest = folder / (name or ("latest-quick.json" if quick else "latest.json"))
    latest.write_text(text)
    if final:
        print(f"records: {latest}")
