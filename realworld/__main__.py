"""``python -m realworld resolve|run``."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realworld", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    res = sub.add_parser("resolve", help="pin projects.json into manifest.json (network)")
    res.add_argument("--jobs", type=int, default=4)
    sub.add_parser("runtime", help="pin the Lambda runtime's own distributions (boto3 and "
                   "company) into manifest.json for the truth (network)")
    gram = sub.add_parser("grammar", help="abiscan's grammar verdict against real compile() "
                          "on every .py of the manifest's wheels, CPython 3.8-3.13")
    gram.add_argument("--jobs", type=int, default=2, help="interpreters run at once")
    gram.add_argument("--budget", type=float, default=None, help="minutes")
    gram.add_argument("--limit", type=int, default=None, help="the first N wheels by name")
    run = sub.add_parser("run", help="build layers, record ground truth, compare, write docs")
    run.add_argument("--quick", action="store_true", help="a small subset (minutes)")
    run.add_argument("--jobs", type=int, default=2, help="interpreters run at once")
    run.add_argument("--cap", type=int, default=None, help="modules per distribution")
    run.add_argument("--only", action="append", default=[],
                     help="run only scenarios whose id contains this text (repeatable)")
    run.add_argument("--budget", type=float, default=None,
                     help="minutes; start no scenario after them (the truth stays cached)")
    run.add_argument("--results", default=None,
                     help="file name of the records in <cache>/results (default latest.json)")
    run.add_argument("--no-docs", action="store_true", help="do not write docs/realworld.md")
    rep = sub.add_parser("report", help="write docs/realworld.md again from the last run")
    rep.add_argument("results", nargs="*", help="results JSON files (merged)")
    args = parser.parse_args(argv)
    if args.command == "report":
        from pathlib import Path

        from realworld.run import rerender

        return rerender([Path(p) for p in args.results])
    if args.command == "runtime":
        from realworld.resolve import repin_runtime

        pinned = repin_runtime()
        print(", ".join(f"python{py}: {len(p)}" for py, p in pinned.items()),
              "runtime distributions pinned")
        return 0
    if args.command == "grammar":
        return _grammar(args.jobs, args.budget, args.limit)
    if args.command == "resolve":
        from realworld.resolve import resolve

        manifest = resolve(jobs=args.jobs)
        print(f"{len(manifest['projects'])} projects pinned, "
              f"{len(manifest['unresolved'])} unresolved, {len(manifest['conflicts'])} conflicts")
        return 0
    from realworld.run import run_suite

    return run_suite(quick=args.quick, jobs=args.jobs, cap=args.cap, only=args.only,
                     write_docs=not args.no_docs and not args.only, budget=args.budget,
                     results=args.results)


def _grammar(jobs: int, budget: float | None, limit: int | None) -> int:
    import json
    import platform

    from realworld.grammar import GrammarResult, check_grammar
    from realworld.paths import cache_dir
    from realworld.run import load_manifest

    out = cache_dir() / "results" / "grammar.json"
    out.parent.mkdir(parents=True, exist_ok=True)

    def save(result: GrammarResult) -> None:  # after each chunk: a stopped run keeps its counts
        out.write_text(json.dumps({"abiscan_python": platform.python_version(),
                                   **result.to_dict()}, indent=1))

    result = check_grammar(load_manifest(), cache_dir(), jobs=jobs, budget=budget, limit=limit,
                           progress=save)
    save(result)
    print(f"{result.wheels} wheels, {result.files} .py files, {result.unique} distinct "
          f"sources; compared per version: {result.checked}; real SyntaxErrors: "
          f"{result.real_errors}; unknown (target newer than abiscan's host): "
          f"{result.newer_unknown}; {len(result.disagreements)} disagreements "
          f"({result.elapsed / 60:.1f} min, abiscan on CPython {platform.python_version()})")
    for line in result.disagreements:
        print("  " + line)
    print(f"written: {out}")
    return 1 if result.disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
