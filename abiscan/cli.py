"""The ``abiscan`` command: a thin shell over the API. The only module that prints."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
import warnings
from collections.abc import Sequence
from io import TextIOWrapper
from typing import Any

from abiscan import __version__
from abiscan.api import scan
from abiscan.limits import Limits, LimitsError, parse_limits
from abiscan.report.escape import escape_text, json_safe
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
EXIT_INTERNAL = 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class _CommandParser(_Parser):
    """A command's parser: options may follow the inputs (scan a.zip --runtime X b.zip)."""

    _intermixed = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        # The intermixed parse calls back into this method on some versions.
        if self._intermixed:
            return super().parse_known_args(args, namespace)
        self._intermixed = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixed = False


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="abiscan",
        description=(
            "Predict, without executing anything, whether the Python code in Lambda "
            "layers, function zips, wheels and site-packages imports on a target runtime."
        ),
        epilog=(
            "exit status: 0 nothing predicted to fail; 1 an import error is predicted; "
            "2 usage error or an input that cannot be read; 3 internal error in abiscan "
            "(the report is still written; INPUT PROBLEMS says where)"
        ),
    )
    p.add_argument("--version", action="version", version=f"abiscan {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_CommandParser)

    s = sub.add_parser(
        "scan", help="scan layers (and function code) for a target",
        epilog="exit status: 0 nothing predicted to fail; 1 an import error is predicted; "
        "2 usage error or an input that cannot be read; 3 internal error in abiscan "
        "(the report is still written)",
    )
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
    s.add_argument(
        "--limits", metavar="NAME=N,...",
        help="change budgets, e.g. source_bytes=8M,members=500000 (see docs/limits.md)",
    )
    s.add_argument("-v", "--verbose", action="store_true",
                   help="list modules that load, too, and tracebacks of internal errors")

    # Same inputs and target options as scan; the first positional is the module.
    sub.add_parser(
        "explain", parents=[s], add_help=False,
        usage="abiscan explain NAME [LAYER ...] [--function PATH] [--site-packages PATH] "
              "[target options]",
        help="print how importing one module ends on a target, and the import chain behind it",
        description="NAME is a dotted module name; the rest are scan's inputs and target "
                    "options. Exit status: 0 when the import is predicted to work, 1 when not, "
                    "2 for a usage error or an unreadable input, 3 for an internal error.",
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
    return p


def _target(args: argparse.Namespace, limits: Limits) -> Target:
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
        return load_target(args.target, limits)
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
        limits = parse_limits(args.limits or "")
        target = _target(args, limits)
    except (TargetError, LimitsError) as exc:
        print(escape_text(f"abiscan {command}: error: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    bad = [n for n in imports if not _is_dotted_name(n)]
    if bad:
        print(f"abiscan {command}: error: not a dotted module name: {bad[0]!r}",
              file=sys.stderr)
        return EXIT_USAGE
    return scan(layers, args.function, args.site_packages, target=target, imports=imports,
                limits=limits)


def _unreadable(report: Report) -> bool:
    """Name each input that could not be read, on stderr; whether there was one."""
    for summary in report.unreadable_inputs:
        problem = next((p.problem for p in report.problems if p.source == summary.label), "")
        print(escape_text(f"abiscan: cannot read {summary.label}: {problem}"), file=sys.stderr)
    return bool(report.unreadable_inputs)


def _status(report: Report, verbose: bool, failed: bool) -> int:
    """The exit status once the report is written; internal errors are named on stderr."""
    for problem in report.internal_errors:
        print(escape_text(f"abiscan: {problem}"), file=sys.stderr)
        if verbose:
            sys.stderr.write(escape_text(problem.detail, keep_newlines=True))
    if report.internal_errors:
        return EXIT_INTERNAL
    if _unreadable(report):
        return EXIT_USAGE
    return EXIT_PREDICTED_ERROR if failed else EXIT_OK


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
    return _status(report, args.verbose, report.has_errors)


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
        data = json_safe(module.to_dict()) if module else None
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(render_explain(report, name))
    return _status(report, args.verbose, module is None or not module.ok)


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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Parsing a scanned source may warn (invalid escape sequences): what a
    # scanned file says must not reach stderr, raw, as a warning.
    warnings.simplefilter("ignore", SyntaxWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    # Whatever a scanned name holds, writing it must not fail on a strict stdout.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    try:
        if args.command == "scan":
            return _cmd_scan(args)
        if args.command == "explain":
            return _cmd_explain(args)
        if args.command == "targets":
            return _cmd_targets(args)
        if args.command == "capture":
            return _cmd_capture(args)
        return _cmd_demo(args)
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    except Exception:
        # The API catches what one input or module raises; this is a bug outside
        # that (argument handling, rendering). Still no bare traceback.
        print("abiscan: internal error (please report it):", file=sys.stderr)
        sys.stderr.write(escape_text(traceback.format_exc(), keep_newlines=True))
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
