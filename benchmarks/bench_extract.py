"""The cost of parsing and extracting the import-time program of source modules, and
a digest of every program, to show that a faster extractor builds the same ones.

    python benchmarks/bench_extract.py digest OUT.json [--layer ZIP] [--stdlib] [--target 3.12]
    python benchmarks/bench_extract.py compare OLD.json NEW.json
    python benchmarks/bench_extract.py time [--layer ZIP] [--reached] [--repeat 3]
    python benchmarks/bench_extract.py profile [--layer ZIP] [--reached]

``digest`` runs ``ImportGraph.parse_file`` (parse, extraction, hook names) over every
``.py`` of the layer (and with ``--stdlib`` of the running interpreter's standard
library) and stores a sha256 of each program: every field of the ModuleSource, the
``ast`` nodes in it dumped whole with their positions, and which of them are the same
object (the executor relies on node identity); it runs with PYTHONHASHSEED=0, as the
order of some mappings follows that of a set of strings. ``time`` measures the CPU time of
``ImportGraph.parse_file`` (parse and extraction, as a scan runs it: the scan's collector
pace, every program kept) and of ``check_syntax`` alone over the same modules
(``--reached``: only those a cold scan of the layer parses; ``--reached-list FILE`` keeps
them between runs), each the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import ast
import cProfile
import dataclasses
import hashlib
import json
import os
import pstats
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from abiscan.simulate.python.grammar import check_syntax
from abiscan.simulate.python.import_graph import ImportGraph, SourceReader

LAYER = "/work/cache/speed/layer.zip"


@dataclasses.dataclass(frozen=True)
class _Module:
    name: str
    path: str
    is_package: bool
    data: bytes


def _layer_modules(zip_path: str) -> tuple[list[_Module], frozenset[str]]:
    with zipfile.ZipFile(zip_path) as zf:
        paths = [i.filename for i in zf.infolist() if not i.is_dir()]
        names = _names(p[len("python/") :] for p in paths if p.startswith("python/"))
        mods = [
            _module(p[len("python/") :], "/opt/" + p, zf.read(p))
            for p in paths
            if p.startswith("python/") and p.endswith(".py")
        ]
    return mods, names


def _stdlib_modules() -> tuple[list[_Module], frozenset[str]]:
    root = Path(ast.__file__).parent
    files = sorted(p for p in root.rglob("*") if p.is_file() and "site-packages" not in p.parts)
    rels = [str(p.relative_to(root)) for p in files]
    names = _names(rels)
    mods = [
        _module(rel, str(p), p.read_bytes())
        for rel, p in zip(rels, files, strict=True)
        if rel.endswith(".py")
    ]
    return mods, names


def _names(rels: Iterator[str] | list[str]) -> frozenset[str]:
    names: set[str] = set()
    for rel in rels:
        parts = rel.split("/")
        parts[-1] = parts[-1].split(".", 1)[0]
        if parts[-1] == "__init__":
            parts.pop()
        names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return frozenset(names)


def _module(rel: str, path: str, data: bytes) -> _Module:
    parts = rel[: -len(".py")].split("/")
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return _Module(name=".".join(parts), path=path, is_package=is_package, data=data)


class _Dumper:
    """A canonical text of a program: dataclasses field by field, ``ast`` nodes with
    their positions, and a reference for a node met before (shared objects)."""

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}
        self.keep: list[ast.AST] = []  # ids stay unique while the dump lives

    def dump(self, v: Any) -> str:
        if isinstance(v, ast.AST):
            return self.node(v)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            inner = ", ".join(
                f"{f.name}={self.dump(getattr(v, f.name))}" for f in dataclasses.fields(v)
            )
            return f"{type(v).__name__}({inner})"
        if isinstance(v, (frozenset, set)):
            return "{" + ", ".join(sorted(self.dump(x) for x in v)) + "}"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{self.dump(k)}: {self.dump(x)}" for k, x in v.items()) + "}"
        if isinstance(v, (list, tuple)):
            return f"{type(v).__name__}[" + ", ".join(self.dump(x) for x in v) + "]"
        return repr(v)

    def node(self, v: ast.AST) -> str:
        known = self.seen.get(id(v))
        if known is not None:
            return f"@{known}"
        first = len(self.seen)
        for n in ast.walk(v):
            if id(n) not in self.seen:
                self.seen[id(n)] = len(self.seen)
                self.keep.append(n)
        return f"#{first}:{type(v).__name__}:{ast.dump(v, include_attributes=True)}"


def _graph(target: tuple[int, int], data: dict[str, bytes]) -> ImportGraph:
    return ImportGraph(
        reader=SourceReader(data.get, lambda _: None),
        version=target,
        stdlib=f"/var/lang/lib/python{target[0]}.{target[1]}",
    )


def _digests(
    mods: list[_Module], names: frozenset[str], target: tuple[int, int]
) -> dict[str, str]:
    graph = _graph(target, {m.path: m.data for m in mods})
    out: dict[str, str] = {}
    for m in mods:
        try:
            parsed: Any = graph.parse_file(m.name, m.path, m.is_package, names.__contains__)
        except Exception as exc:  # an exception is a result too
            parsed = f"raised {type(exc).__name__}: {exc}"
        text = _Dumper().dump(parsed)
        out[m.path] = hashlib.sha256(text.encode()).hexdigest()
    return out


def _reached(zip_path: str) -> set[str]:
    """The paths a cold one-process scan of the layer parses."""
    import tempfile

    from abiscan import scan

    seen: set[str] = set()
    original = ImportGraph.parse_file

    def recording(self: ImportGraph, name: str, path: str, *args: Any) -> Any:
        seen.add(path)
        return original(self, name, path, *args)

    ImportGraph.parse_file = recording  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as cache:
            scan([zip_path], runtime="python3.12", arch="x86_64", jobs=1, cache_dir=cache)
    finally:
        ImportGraph.parse_file = original  # type: ignore[method-assign]
    return seen


def _selected(args: argparse.Namespace) -> tuple[list[_Module], frozenset[str]]:
    mods, names = _layer_modules(args.layer)
    if args.reached:
        saved = Path(args.reached_list) if args.reached_list else None
        if saved is not None and saved.exists():
            reached = set(json.loads(saved.read_text()))
        else:
            reached = _reached(args.layer)
            if saved is not None:
                saved.write_text(json.dumps(sorted(reached)))
        mods = [m for m in mods if m.path in reached]
    return mods, names


def _time(args: argparse.Namespace) -> None:
    """As a scan runs them: under the scan's collector pace, keeping every program."""
    from abiscan.collector import collector_spaced

    mods, names = _selected(args)
    target = _target(args.target)
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        with collector_spaced():
            graph = _graph(target, {m.path: m.data for m in mods})
            t0 = time.process_time()
            programs = [
                graph.parse_file(m.name, m.path, m.is_package, names.__contains__) for m in mods
            ]
            t1 = time.process_time()
            for m in mods:
                check_syntax(m.data, m.path, target)  # each tree dropped, as the scan does
            t2 = time.process_time()
            del programs
        runs = {"parse_file_cpu_s": t1 - t0, "check_syntax_alone_cpu_s": t2 - t1}
        best = {k: min(v, best.get(k, v)) for k, v in runs.items()}
    print(json.dumps({"modules": len(mods), "bytes": sum(len(m.data) for m in mods),
                      **{k: round(v, 3) for k, v in best.items()}}))


def _profile(args: argparse.Namespace) -> None:
    mods, names = _selected(args)
    target = _target(args.target)
    graph = _graph(target, {m.path: m.data for m in mods})
    run: Callable[[], None] = lambda: [  # noqa: E731
        graph.parse_file(m.name, m.path, m.is_package, names.__contains__) for m in mods
    ] and None
    prof = cProfile.Profile()
    prof.runcall(run)
    pstats.Stats(prof).sort_stats("tottime").print_stats(30)


def _target(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("digest")
    d.add_argument("out")
    d.add_argument("--stdlib", action="store_true")
    c = sub.add_parser("compare")
    c.add_argument("old")
    c.add_argument("new")
    for name in ("time", "profile"):
        t = sub.add_parser(name)
        t.add_argument("--reached", action="store_true")
        t.add_argument("--reached-list", help="a file that keeps the reached paths between runs")
        t.add_argument("--repeat", type=int, default=3)
    for p in sub.choices.values():
        if p is not c:
            p.add_argument("--layer", default=LAYER)
            p.add_argument("--target", default="3.12")
    args = parser.parse_args()
    if args.command == "digest":
        if os.environ.get("PYTHONHASHSEED") != "0":
            # Mappings built from sets (bound_by_call) follow the hash order of strings.
            env = {**os.environ, "PYTHONHASHSEED": "0"}
            os.execve(sys.executable, [sys.executable, *sys.argv], env)
        mods, names = _layer_modules(args.layer)
        out = _digests(mods, names, _target(args.target))
        if args.stdlib:
            smods, snames = _stdlib_modules()
            out.update(_digests(smods, snames, _target(args.target)))
        Path(args.out).write_text(json.dumps(out, indent=0, sort_keys=True))
        print(f"{len(out)} programs")
    elif args.command == "compare":
        old, new = json.loads(Path(args.old).read_text()), json.loads(Path(args.new).read_text())
        differ = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        print(f"{len(old)} and {len(new)} programs, {len(differ)} differ")
        for k in differ[:20]:
            print("  ", k)
        sys.exit(1 if differ else 0)
    elif args.command == "time":
        _time(args)
    else:
        _profile(args)


if __name__ == "__main__":
    main()
