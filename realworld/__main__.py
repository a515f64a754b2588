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


if __name__ == "__main__":
    sys.exit(main())
