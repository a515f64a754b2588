"""The ``abiscan`` command: a thin shell over the API. The only module that prints."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from abiscan import __version__
from abiscan.api import scan
from abiscan.report.model import Report
from abiscan.report.render import render_explain, render_json, render_sarif, render_text
from abiscan.target.profiles import (
    Target,
    TargetError,
    builtin_target,
    builtin_targets,
    custom_target,
    load_target,
    runtime_names,
)

EXIT_OK = 0
EXIT_PREDICTED_ERROR = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="abiscan",
        description=(
            "Predict, without executing anything, whether the Python code in Lambda "
            "layers, function zips, wheels and site-packages imports on a target runtime."
        ),
    )
    p.add_argument("--version", action="version", version=f"abiscan {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("scan", help="scan layers (and function code) for a target")
    s.add_argument(
        "layers", nargs="*", metavar="LAYER",
        help="layer zips or extracted layer directories, in attach order; "
        "a .whl is installed into site-packages",
    )
    s.add_argument("--function", metavar="PATH", help="the function's deployment zip or directory")
    s.add_argument(
        "--site-packages", metavar="PATH", action="append", default=[],
        help="a wheel or directory installed into the target's site-packages (repeatable)",
    )
    which = s.add_mutually_exclusive_group()
    which.add_argument(
        "--runtime", metavar="NAME", help=f"built-in Lambda runtime ({', '.join(runtime_names())})"
    )
    which.add_argument("--python", metavar="X.Y", help="custom target: CPython version")
    which.add_argument("--target", metavar="FILE", help="a target profile (JSON)")
    which.add_argument(
        "--interpreter", metavar="PATH",
        help="capture the target from this interpreter and its system (runs abiscan's "
        "capture.py in it), keeping the Lambda layout of layers and function code",
    )
    s.add_argument("--arch", help="x86_64 or arm64 (default: x86_64; not with --target or "
                   "--interpreter, which carry their own)")
    s.add_argument("--glibc", metavar="X.Y", help="custom target: glibc version (with --python)")
    s.add_argument(
        "--free-threaded", action="store_true",
        help="custom target: the free-threaded build (with --python)",
    )
    s.add_argument(
        "--import", dest="imports", metavar="NAME", action="append", default=[],
        help="also predict this dotted module name (repeatable)",
    )
    s.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    s.add_argument("-v", "--verbose", action="store_true", help="list modules that load, too")

    # Same inputs and target options as scan; the first positional is the module.
    sub.add_parser(
        "explain", parents=[s], add_help=False,
        usage="abiscan explain NAME [LAYER ...] [--function PATH] [--site-packages PATH] "
              "[target options]",
        help="print how importing one module ends on a target, and the import chain behind it",
        description="NAME is a dotted module name; the rest are scan's inputs and target "
                    "options. Exit status: 0 when the import is predicted to work, 1 when not.",
    )

    c = sub.add_parser(
        "capture", help="write a target profile captured from a real interpreter and its system"
    )
    c.add_argument(
        "--python", metavar="PATH", default=sys.executable,
        help="the interpreter to capture (default: the one running abiscan)",
    )
    c.add_argument("-o", "--output", metavar="FILE", help="write the profile here, not stdout")

    t = sub.add_parser("targets", help="list the built-in targets, or show one as JSON")
    t.add_argument(
        "--show", metavar="NAME", help="print one target profile as JSON, e.g. python3.12-arm64"
    )

    d = sub.add_parser("demo", help="rebuild the incident offline and show the prediction")
    d.add_argument("--format", choices=("text", "json"), default="text")
    _add_audit_parser(sub)
    return p


def _target(args: argparse.Namespace) -> Target:
    if (args.interpreter or args.target) and args.arch:
        raise TargetError("--arch goes with --runtime or --python; a profile carries its own")
    arch = args.arch or "x86_64"
    if args.interpreter:
        if args.glibc or args.free_threaded:
            raise TargetError("--glibc and --free-threaded go with --python, not --interpreter")
        from abiscan.target.interpreters import capture_target

        return capture_target(args.interpreter)
    if args.target:
        if args.glibc or args.free_threaded:
            raise TargetError("--glibc and --free-threaded go with --python, not --target")
        return load_target(args.target)
    if args.python:
        return custom_target(
            args.python, arch, args.glibc or "2.34", free_threaded=args.free_threaded
        )
    if args.glibc or args.free_threaded:
        raise TargetError("--glibc and --free-threaded go with --python")
    return builtin_target(args.runtime or "python3.12", arch)


def _run_scan(
    args: argparse.Namespace, command: str, layers: Sequence[str], imports: Sequence[str]
) -> Report | int:
    """The scan both commands make, or the exit status of a usage error (already printed)."""
    if not layers and not args.function and not args.site_packages:
        print(f"abiscan {command}: error: give at least one layer, --function or "
              "--site-packages", file=sys.stderr)
        return EXIT_USAGE
    try:
        target = _target(args)
    except TargetError as exc:
        print(f"abiscan {command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    bad = [n for n in imports if not _is_dotted_name(n)]
    if bad:
        print(f"abiscan {command}: error: not a dotted module name: {bad[0]!r}",
              file=sys.stderr)
        return EXIT_USAGE
    return scan(layers, args.function, args.site_packages, target=target, imports=imports)


def _unreadable(report: Report) -> bool:
    """Name each input that could not be read, on stderr; whether there was one."""
    for summary in report.unreadable_inputs:
        problem = next((p.problem for p in report.problems if p.source == summary.label), "")
        print(f"abiscan: cannot read {summary.label}: {problem}", file=sys.stderr)
    return bool(report.unreadable_inputs)


def _cmd_scan(args: argparse.Namespace) -> int:
    report = _run_scan(args, "scan", args.layers, args.imports)
    if isinstance(report, int):
        return report
    if args.format == "json":
        sys.stdout.write(render_json(report))
    elif args.format == "sarif":
        sys.stdout.write(render_sarif(report))
    else:
        sys.stdout.write(render_text(report, verbose=args.verbose))
    if _unreadable(report):
        return EXIT_USAGE
    return EXIT_PREDICTED_ERROR if report.has_errors else EXIT_OK


def _cmd_explain(args: argparse.Namespace) -> int:
    if not args.layers or not _is_dotted_name(args.layers[0]):
        print("abiscan explain: error: give a dotted module name, then the inputs",
              file=sys.stderr)
        return EXIT_USAGE
    name = args.layers[0]
    report = _run_scan(args, "explain", args.layers[1:], [name, *args.imports])
    if isinstance(report, int):
        return report
    module = report.module(name)
    if args.format == "json":
        sys.stdout.write(json.dumps(module.to_dict() if module else None, indent=2) + "\n")
    else:
        sys.stdout.write(render_explain(report, name))
    if _unreadable(report):
        return EXIT_USAGE
    return EXIT_OK if module is not None and module.ok else EXIT_PREDICTED_ERROR


def _is_dotted_name(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def _cmd_targets(args: argparse.Namespace) -> int:
    if args.show:
        name = args.show
        runtime, _, arch = name.rpartition("-")
        try:
            target = builtin_target(runtime or name, arch if runtime else "x86_64")
        except TargetError as exc:
            print(f"abiscan targets: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        sys.stdout.write(target.to_json())
        return EXIT_OK
    for target in builtin_targets():
        print(f"{target.name:<20} {target.describe()}")
    return EXIT_OK


def _cmd_capture(args: argparse.Namespace) -> int:
    from abiscan.target.interpreters import capture_target

    try:
        target = capture_target(args.python)
    except TargetError as exc:
        print(f"abiscan capture: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    text = target.to_json()
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            print(f"abiscan capture: error: {args.output}: {exc.strerror or exc}",
                  file=sys.stderr)
            return EXIT_USAGE
        print(f"abiscan capture: {target.describe()} -> {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from abiscan.demo import run_demo

    text, as_expected = run_demo(args.format)
    sys.stdout.write(text)
    # The demo succeeds when abiscan predicts the incident: 3.12 fails, 3.8 loads.
    return EXIT_OK if as_expected else EXIT_PREDICTED_ERROR


def _add_audit_parser(sub: Any) -> None:
    a = sub.add_parser(
        "audit", help="scan many stacks on many targets from a manifest (docs/audit.md)",
        description="Scan every stack of MANIFEST (TOML or JSON) on every target it names. "
        "Exit status over the whole audit: 0 no import error predicted, 1 one predicted, "
        "2 bad input or usage, 3 internal error (the records are still written).",
    )
    a.add_argument("manifest", metavar="MANIFEST")
    a.add_argument("-o", "--output", metavar="FILE",
                   help="write the JSON Lines records here (default: stdout, and the "
                   "summary table goes to stderr)")
    a.add_argument("--summary", metavar="FILE", help="also write the summary table here")
    a.add_argument("--sarif-dir", metavar="DIR", help="write a SARIF file per stack here")
    a.add_argument("--resume", metavar="FILE",
                   help="reuse the records of FILE whose stack digest, target and abiscan "
                   "version are unchanged")
    a.add_argument("--executor", choices=("local", "dask"), default="local")
    a.add_argument("-j", "--jobs", type=int, metavar="N",
                   help="local worker processes (default: every core; 1: in this process)")
    a.add_argument("--scheduler", metavar="ADDRESS",
                   help="the dask.distributed scheduler, e.g. tcp://HOST:8786")
    a.add_argument("--cache-dir", metavar="DIR",
                   help="where URLs are downloaded (default: $ABISCAN_CACHE_DIR or "
                   "~/.cache/abiscan)")
    a.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="a progress line on stderr (auto: when stderr is a terminal)")


def _cmd_audit(args: argparse.Namespace) -> int:
    import time

    from abiscan.fleet import ExecutorError, ManifestError, audit, format_progress, summary_table

    err = sys.stderr
    shown = args.progress == "always" or (args.progress == "auto" and err.isatty())
    last = [0.0]

    def progress(p: Any) -> None:
        if p.dashboard and last[0] == 0.0:
            err.write(f"abiscan audit: dashboard {p.dashboard}\n")
        now = time.monotonic()
        if now - last[0] >= 0.5 or sum(p.done.values()) == p.stacks * len(p.done):
            last[0] = now
            err.write("\r\x1b[K" + format_progress(p))
            err.flush()

    try:
        result = audit(
            args.manifest, executor=args.executor, jobs=args.jobs, scheduler=args.scheduler,
            resume=args.resume, output=args.output, cache_dir=args.cache_dir,
            sarif=bool(args.sarif_dir), progress=progress if shown else None,
        )
    except (ManifestError, ExecutorError, OSError) as exc:
        # OSError: the output cannot be written, or the scheduler cannot be reached.
        print(f"abiscan audit: error: {exc}", file=err)
        return EXIT_USAGE
    if shown:
        err.write("\n")
    table = summary_table(result)
    if args.output is None:
        sys.stdout.write(result.to_jsonl())
    (sys.stdout if args.output else err).write(table)
    try:
        if args.summary:
            with open(args.summary, "w", encoding="utf-8") as f:
                f.write(table)
        if args.sarif_dir:
            os.makedirs(args.sarif_dir, exist_ok=True)
            for stack in result.stacks:
                with open(os.path.join(args.sarif_dir, f"{stack}.sarif"), "w",
                          encoding="utf-8") as f:
                    f.write(result.sarif(stack) or "")
    except OSError as exc:
        print(f"abiscan audit: error: {exc}", file=err)
        return EXIT_USAGE
    return result.exit_status


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "scan":
            return _cmd_scan(args)
        if args.command == "explain":
            return _cmd_explain(args)
        if args.command == "targets":
            return _cmd_targets(args)
        if args.command == "capture":
            return _cmd_capture(args)
        if args.command == "audit":
            return _cmd_audit(args)
        return _cmd_demo(args)
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
