"""The ``abiscan`` command: a thin shell over the API. The only module that prints."""

from __future__ import annotations

import argparse
import gc
import os
import sys
import warnings
from io import TextIOWrapper

from abiscan import __version__

__all__ = [
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_PREDICTED_ERROR",
    "EXIT_USAGE",
    "FORMATS",
    "main",
    "run",
]

# ``abiscan --help`` loads none of what a command needs (the configuration, targets,
# limits, records, typing, dataclasses, pathlib: some 40 ms of CPU), nor the
# pipeline, which loads on the first scan: each command imports what it uses.
# A name TYPE_CHECKING, not typing's: mypy reads it as typing's, and typing stays unloaded.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from abiscan.config import Config
    from abiscan.limits import Limits
    from abiscan.progress import ScanProgress
    from abiscan.report.model import Report
    from abiscan.target.profiles import Target

FORMATS = ("text", "json", "sarif", "github")

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


_COMMANDS = ("scan", "explain", "matrix", "capture", "targets", "demo", "audit")


def _parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command line's parser; given ``argv``, only the commands it names get their
    options. argparse runs a command's parser only when its name is in the arguments,
    so the parse is the same; and building every option (each makes a help formatter
    and looks up translations) was most of ``abiscan --help``'s start-up."""
    named = set(_COMMANDS) if argv is None else set(_COMMANDS).intersection(argv)
    if named:
        from abiscan._deferred_imports import defer_rare_imports

        defer_rare_imports()  # a command runs: before its options import the pipeline
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
        "scan",
        help="scan layers (and function code) for a target",
        epilog="exit status: 0 nothing predicted to fail; 1 an import error is predicted; "
        "2 usage error or an input that cannot be read; 3 internal error in abiscan "
        "(the report is still written)",
        # A parser that is never run needs no -h (a formatter and a translation
        # lookup each); explain's -h is scan's.
        add_help=bool(named & {"scan", "explain"}),
    )
    if named & {"scan", "explain"}:
        _scan_options(s)
    # Same inputs and target options as scan; the first positional is the module.
    sub.add_parser(
        "explain",
        parents=[s] if "explain" in named else [],
        add_help=False,
        usage="abiscan explain NAME [LAYER ...] [--function PATH] [--site-packages PATH] "
        "[target options]",
        help="print how importing one module ends on a target, and the import chain behind it",
        description="NAME is a dotted module name; the rest are scan's inputs and target "
        "options. Exit status: 0 when the import is predicted to work, 1 when not, "
        "2 for a usage error or an unreadable input, 3 for an internal error.",
    )
    _command(sub, named, "matrix", _matrix_options,
             help="scan one stack for every built-in runtime and architecture (or some)",
             description="One scan of the stack per target: where it imports, and the first "
             "failure on each. Exit status 1 when a declared target fails (ABI405).")
    _command(sub, named, "capture", _capture_options,
             help="write a target profile captured from a real interpreter and its system")
    _command(sub, named, "targets", _targets_options,
             help="list the built-in targets, or show one as JSON")
    _command(sub, named, "demo", _demo_options,
             help="rebuild the incident offline and show the prediction")
    _command(sub, named, "audit", _audit_options,
             help="scan many stacks on many targets from a manifest (docs/audit.md)",
             description="Scan every stack of MANIFEST (TOML or JSON) on every target it "
             "names. Exit status over the whole audit: 0 no import error predicted, 1 one "
             "predicted, 2 bad input or usage, 3 internal error (the records are still "
             "written).")
    return p


def _command(
    sub: argparse._SubParsersAction[_CommandParser],
    named: set[str],
    name: str,
    options: Callable[[argparse.ArgumentParser], None],
    **kwargs: Any,
) -> None:
    """Command ``name``'s parser, given its options (and -h) only when the arguments
    name it: argparse runs no other command's parser."""
    parser = sub.add_parser(name, add_help=name in named, **kwargs)
    if name in named:
        options(parser)


def _targets_options(t: argparse.ArgumentParser) -> None:
    t.add_argument(
        "--show", metavar="NAME", help="print one target profile as JSON, e.g. python3.12-arm64"
    )


def _demo_options(d: argparse.ArgumentParser) -> None:
    d.add_argument("--format", choices=("text", "json"), default="text")


# Long on purpose: a declarative table of scan's options, read top to bottom like
# --help; splitting it would scatter them.
def _scan_options(s: argparse.ArgumentParser) -> None:
    from abiscan.target.profiles import runtime_names

    s.add_argument(
        "layers",
        nargs="*",
        metavar="LAYER",
        help="layer zips or extracted layer directories, in attach order; "
        "a .whl is installed into site-packages",
    )
    s.add_argument("--function", metavar="PATH", help="the function's deployment zip or directory")
    s.add_argument(
        "--site-packages",
        metavar="PATH",
        action="append",
        default=[],
        help="a wheel or directory installed into the target's site-packages (repeatable)",
    )
    which = s.add_mutually_exclusive_group()
    which.add_argument(
        "--runtime", metavar="NAME", help=f"built-in Lambda runtime ({', '.join(runtime_names())})"
    )
    which.add_argument("--python", metavar="X.Y", help="custom target: CPython version")
    which.add_argument("--target", metavar="FILE", help="a target profile (JSON)")
    which.add_argument(
        "--interpreter",
        metavar="PATH",
        help="capture the target from this interpreter and its system (runs abiscan's "
        "capture.py in it), keeping the Lambda layout of layers and function code",
    )
    s.add_argument(
        "--arch",
        help="x86_64 or arm64 (default: x86_64; not with --target or "
        "--interpreter, which carry their own)",
    )
    s.add_argument("--glibc", metavar="X.Y", help="custom target: glibc version (with --python)")
    s.add_argument(
        "--free-threaded",
        action="store_true",
        help="custom target: the free-threaded build (with --python)",
    )
    s.add_argument(
        "--import",
        dest="imports",
        metavar="NAME",
        action="append",
        default=[],
        help="also predict this dotted module name (repeatable)",
    )
    s.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="output format (default: text, or 'format' in the configuration)",
    )
    s.add_argument(
        "--limits",
        metavar="NAME=N,...",
        help="change budgets, e.g. source_bytes=8M,members=500000 (see docs/limits.md)",
    )
    s.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="text: every finding's evidence and fix (-vv: and every module); "
        "tracebacks of internal errors",
    )
    _add_config_options(s)
    _speed_options(s)


def _matrix_options(m: argparse.ArgumentParser) -> None:
    m.add_argument("layers", nargs="*", metavar="LAYER", help="layer zips or directories")
    m.add_argument("--function", metavar="PATH")
    m.add_argument("--site-packages", metavar="PATH", action="append", default=[])
    m.add_argument(
        "--runtime",
        metavar="NAME",
        action="append",
        help="only this runtime (repeatable; default: every built-in one)",
    )
    m.add_argument(
        "--arch",
        action="append",
        choices=("x86_64", "arm64"),
        help="only this architecture (repeatable; default: both)",
    )
    m.add_argument(
        "--declared",
        metavar="FILE",
        help="the JSON of 'aws lambda get-layer-version' (or list-layer-versions): "
        "each declared runtime/architecture where the stack fails is ABI405",
    )
    m.add_argument("--import", dest="imports", metavar="NAME", action="append", default=[])
    m.add_argument("--format", choices=("text", "json"), default="text")


def _capture_options(c: argparse.ArgumentParser) -> None:
    c.add_argument(
        "--python",
        metavar="PATH",
        default=sys.executable,
        help="the interpreter to capture (default: the one running abiscan)",
    )
    c.add_argument("-o", "--output", metavar="FILE", help="write the profile here, not stdout")


def _speed_options(s: argparse.ArgumentParser) -> None:
    """Options that change how fast a scan runs and what it holds, never its report."""
    g = s.add_argument_group("speed and resources (the report is the same with any of them)")
    g.add_argument(
        "--jobs",
        "-j",
        metavar="N",
        type=_positive_int,
        help="processes working on the scan: this one and N-1 workers parsing sources "
        "(default: the cores this process may run on; 1 when they are busy with other work)",
    )
    g.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="content cache directory (default: $ABISCAN_CACHE_DIR, else "
        "$XDG_CACHE_HOME/abiscan or ~/.cache/abiscan)",
    )
    g.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    g.add_argument(
        "--memory-budget",
        metavar="MB",
        type=_positive_int,
        help="most inflated member bytes held at once, in MiB (default: 256); "
        "a larger member is reported as an input problem and not read",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _speed(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "jobs": args.jobs,
        "cache_dir": args.cache_dir,
        "use_cache": not args.no_cache,
    }
    if args.memory_budget is not None:
        out["memory_budget"] = args.memory_budget * 1024 * 1024
    return out


def _add_config_options(s: argparse.ArgumentParser) -> None:
    """Options that override the configuration file (docs/configuration.md)."""
    from abiscan.config import FAIL_ON

    s.add_argument(
        "--select",
        metavar="CODES",
        action="append",
        help="report only these codes or code prefixes, comma-separated (ABI1,ABI203)",
    )
    s.add_argument(
        "--ignore",
        metavar="CODES",
        action="append",
        help="do not report these codes or code prefixes, comma-separated",
    )
    s.add_argument(
        "--fail-on",
        choices=FAIL_ON,
        help="exit 1 on findings of this severity or worse (default: error)",
    )
    s.add_argument("-o", "--output", metavar="FILE", help="write the report here, not stdout")
    s.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print no report on stdout (the exit status tells; -o still writes)",
    )
    where = s.add_mutually_exclusive_group()
    where.add_argument(
        "--config",
        metavar="FILE",
        help="read this abiscan.toml or pyproject.toml, not the one found by "
        "walking up from the working directory",
    )
    where.add_argument("--no-config", action="store_true", help="read no configuration file")


def _config(args: argparse.Namespace) -> Config:
    """The configuration file's settings, with the command line's on top."""
    from dataclasses import replace
    from pathlib import Path

    from abiscan.config import Config, find_config, load_config
    from abiscan.errors import ConfigError

    if args.no_config:
        config = Config()
    elif args.config:
        config = load_config(Path(args.config))
    else:
        found = find_config(Path.cwd())
        config = load_config(found) if found else Config()
    if config.format is not None and config.format not in FORMATS:
        raise ConfigError(f"{config.path}: 'format' must be one of {', '.join(FORMATS)}")
    policy = config.policy
    select, ignore = _codes_flag(args.select, "select"), _codes_flag(args.ignore, "ignore")
    policy = replace(
        policy,
        select=policy.select if select is None else select,
        ignore=policy.ignore if ignore is None else ignore,
        fail_on=args.fail_on or policy.fail_on,
    )
    return replace(config, policy=policy)


def _codes_flag(given: list[str] | None, key: str) -> tuple[str, ...] | None:
    """``--select``/``--ignore``: comma-separated, repeatable; None when not given."""
    from abiscan.config import check_code_prefix

    if given is None:
        return None
    codes = tuple(c.strip() for text in given for c in text.split(",") if c.strip())
    for code in codes:
        check_code_prefix(code, f"--{key}")
    return codes


def _merge_config(args: argparse.Namespace, config: Config, layers: list[str]) -> list[str]:
    """Fill what the command line left unset from the configuration file; the layers."""
    if not layers and not args.function and not args.site_packages:
        layers = [str(p) for p in config.layers or ()]
        args.function = str(config.function) if config.function else None
        args.site_packages = [str(p) for p in config.site_packages or ()]
    if not (args.runtime or args.python or args.target or args.interpreter):
        args.runtime, args.python = config.runtime, config.python
        args.target = str(config.target) if config.target else None
        args.arch = args.arch or config.arch
        args.glibc = args.glibc or config.glibc
    if not args.imports:
        args.imports = list(config.imports or ())
    args.format = args.format or config.format or "text"
    args.output = args.output or (str(config.output) if config.output else None)
    return layers


def _configured(
    args: argparse.Namespace, command: str, layers: list[str]
) -> tuple[Config, list[str]] | int:
    """The configuration and the layers, or the exit status of a bad configuration."""
    from abiscan.errors import ConfigError

    try:
        config = _config(args)
    except ConfigError as exc:
        print(f"abiscan {command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return config, _merge_config(args, config, layers)


def _emit(args: argparse.Namespace, text: str, command: str) -> bool:
    """Write the report to -o FILE or stdout (not with --quiet); False when it cannot be."""
    from pathlib import Path

    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(
                f"abiscan {command}: error: {args.output}: {exc.strerror or exc}", file=sys.stderr
            )
            return False
    elif not args.quiet:
        sys.stdout.write(text)
    return True


def _target(args: argparse.Namespace, limits: Limits) -> Target:
    from abiscan.target.profiles import TargetError, builtin_target, custom_target, load_target

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
    from abiscan.limits import LimitsError, parse_limits
    from abiscan.report.escape import escape_text
    from abiscan.target.profiles import TargetError

    if not layers and not args.function and not args.site_packages:
        print(
            f"abiscan {command}: error: give at least one layer, --function or --site-packages",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        limits = parse_limits(args.limits or "")
        target = _target(args, limits)
    except (TargetError, LimitsError) as exc:
        print(escape_text(f"abiscan {command}: error: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    from abiscan.api import is_module_name, scan

    bad = [n for n in imports if not is_module_name(n)]
    if bad:
        print(f"abiscan {command}: error: not a dotted module name: {bad[0]!r}", file=sys.stderr)
        return EXIT_USAGE
    progress = _Progress()
    count = len(layers) + len(args.site_packages) + bool(args.function)
    progress.show(
        f"abiscan: reading {count} input{'s' if count != 1 else ''} and predicting "
        f"for {target.name} ..."
    )
    try:
        return scan(
            layers,
            args.function,
            args.site_packages,
            target=target,
            imports=imports,
            limits=limits,
            progress=progress.counts(target.name) if progress.live else None,
            **_speed(args),
        )
    finally:
        progress.done()


def _unreadable(report: Report) -> bool:
    """Name each input that could not be read, on stderr; whether there was one."""
    from abiscan.report.escape import escape_text

    for summary in report.unreadable_inputs:
        problem = next((p.problem for p in report.problems if p.source == summary.label), "")
        print(escape_text(f"abiscan: cannot read {summary.label}: {problem}"), file=sys.stderr)
    return bool(report.unreadable_inputs)


def _status(report: Report, verbose: bool, failed: bool) -> int:
    """The exit status once the report is written; internal errors are named on stderr."""
    from abiscan.report.escape import escape_text

    for problem in report.internal_errors:
        print(escape_text(f"abiscan: {problem}"), file=sys.stderr)
        if verbose:
            sys.stderr.write(escape_text(problem.detail, keep_newlines=True))
    if report.internal_errors:
        return EXIT_INTERNAL
    if _unreadable(report):
        return EXIT_USAGE
    return EXIT_PREDICTED_ERROR if failed else EXIT_OK


def _render(report: Report, args: argparse.Namespace) -> str:
    from abiscan.report.render import render_github, render_json, render_sarif, render_text
    from abiscan.report.terminal import Style, use_colour

    if args.format == "json":
        return render_json(report)
    if args.format == "sarif":
        return render_sarif(report)
    if args.format == "github":
        return render_github(report)
    colour = not args.output and use_colour(sys.stdout)
    return render_text(report, verbose=args.verbose, style=Style(colour=colour))


def _cmd_scan(args: argparse.Namespace) -> int:
    configured = _configured(args, "scan", list(args.layers))
    if isinstance(configured, int):
        return configured
    config, layers = configured
    report = _run_scan(args, "scan", layers, args.imports)
    if isinstance(report, int):
        return report
    shown = config.policy.apply(report)
    if not _emit(args, _render(shown, args), "scan"):
        return EXIT_USAGE
    return _status(report, args.verbose > 0, config.policy.fails(report, shown))


def _cmd_explain(args: argparse.Namespace) -> int:
    from abiscan.api import is_module_name
    from abiscan.report.render import render_explain, render_explain_json

    if not args.layers or not is_module_name(args.layers[0]):
        print("abiscan explain: error: give a dotted module name, then the inputs", file=sys.stderr)
        return EXIT_USAGE
    name = args.layers[0]
    configured = _configured(args, "explain", list(args.layers[1:]))
    if isinstance(configured, int):
        return configured
    config, layers = configured
    report = _run_scan(args, "explain", layers, [name, *args.imports])
    if isinstance(report, int):
        return report
    module = report.module(name)
    shown = config.policy.apply(report)
    if args.format == "json":
        text = render_explain_json(shown, name)
    else:
        text = render_explain(shown, name)
    if not _emit(args, text, "explain"):
        return EXIT_USAGE
    return _status(report, args.verbose > 0, module is None or not module.ok)


class _Progress:
    """One self-rewriting status line on stderr, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()

    def show(self, text: str) -> None:
        if self.live:
            sys.stderr.write(f"\r\033[K{text}")
            sys.stderr.flush()

    def done(self) -> None:
        self.show("")

    def target(self, i: int, n: int, target: Target) -> None:
        self.show(f"abiscan: target {i} of {n}: {target.name}")

    def counts(self, target: str) -> Callable[[ScanProgress], None]:
        def show(p: ScanProgress) -> None:
            self.show(format_scan_progress(target, p))

        return show


def format_scan_progress(target: str, p: ScanProgress) -> str:
    """The progress line of a scan: the work done so far, by stage."""
    return (
        f"abiscan: {target}: {p.members_read:,} members read, {p.elf_parsed:,} ELF files "
        f"parsed, {p.modules_simulated:,} modules simulated"
    )


def _cmd_matrix(args: argparse.Namespace) -> int:
    from abiscan.errors import AbiscanError
    from abiscan.runtime_matrix import matrix, read_declared, render_matrix
    from abiscan.target.profiles import TargetError, builtin_targets, runtime_names

    if not args.layers and not args.function and not args.site_packages:
        print(
            "abiscan matrix: error: give at least one layer, --function or --site-packages",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        targets = [
            t
            for t in builtin_targets()
            if (not args.runtime or t.runtime in args.runtime)
            and (not args.arch or t.lambda_arch in args.arch)
        ]
        unknown = sorted(set(args.runtime or ()) - set(runtime_names()))
        if unknown:
            raise TargetError(
                f"unknown runtime {unknown[0]!r}; built-in runtimes: {', '.join(runtime_names())}"
            )
        declared = read_declared(args.declared) if args.declared else None
        progress = _Progress()
        try:
            result = matrix(
                args.layers,
                args.function,
                args.site_packages,
                targets=targets,
                declared=declared,
                imports=args.imports,
                progress=progress.target,
            )
        finally:
            progress.done()
    except AbiscanError as exc:
        print(f"abiscan matrix: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(result.to_json() if args.format == "json" else render_matrix(result))
    if any(not i.readable for i in result.inputs):
        return EXIT_USAGE
    return EXIT_PREDICTED_ERROR if result.findings else EXIT_OK


def _cmd_targets(args: argparse.Namespace) -> int:
    from abiscan.target.profiles import TargetError, builtin_target, builtin_targets

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
    from abiscan.target.profiles import TargetError

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
            print(f"abiscan capture: error: {args.output}: {exc.strerror or exc}", file=sys.stderr)
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


def _audit_options(a: argparse.ArgumentParser) -> None:
    a.add_argument("manifest", metavar="MANIFEST")
    a.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the JSON Lines records here (default: stdout, and the "
        "summary table goes to stderr)",
    )
    a.add_argument("--summary", metavar="FILE", help="also write the summary table here")
    a.add_argument("--sarif-dir", metavar="DIR", help="write a SARIF file per stack here")
    a.add_argument(
        "--resume",
        metavar="FILE",
        help="reuse the records of FILE whose stack digest, target and abiscan "
        "version are unchanged",
    )
    a.add_argument("--executor", choices=("local", "dask"), default="local")
    a.add_argument(
        "-j",
        "--jobs",
        type=int,
        metavar="N",
        help="local worker processes (default: every core; 1: in this process)",
    )
    a.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="the dask.distributed scheduler, e.g. tcp://HOST:8786",
    )
    a.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where URLs are downloaded (default: $ABISCAN_CACHE_DIR or ~/.cache/abiscan)",
    )
    a.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="a progress line on stderr (auto: when stderr is a terminal)",
    )


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
            args.manifest,
            executor=args.executor,
            jobs=args.jobs,
            scheduler=args.scheduler,
            resume=args.resume,
            output=args.output,
            cache_dir=args.cache_dir,
            sarif=bool(args.sarif_dir),
            progress=progress if shown else None,
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
                with open(
                    os.path.join(args.sarif_dir, f"{stack}.sarif"), "w", encoding="utf-8"
                ) as f:
                    f.write(result.sarif(stack) or "")
    except OSError as exc:
        print(f"abiscan audit: error: {exc}", file=err)
        return EXIT_USAGE
    return result.exit_status


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "scan":
        return _cmd_scan(args)
    if args.command == "explain":
        return _cmd_explain(args)
    if args.command == "matrix":
        return _cmd_matrix(args)
    if args.command == "targets":
        return _cmd_targets(args)
    if args.command == "capture":
        return _cmd_capture(args)
    if args.command == "audit":
        return _cmd_audit(args)
    return _cmd_demo(args)


def main(argv: Sequence[str] | None = None) -> int:
    # Spaced from the start, not only in scan(): building the parser and importing
    # the pipeline (some 100 modules, their classes and tables) triggered a dozen
    # collector passes otherwise.
    from abiscan.collector import collector_spaced

    with collector_spaced():
        return _main(sys.argv[1:] if argv is None else list(argv))


def _main(argv: list[str]) -> int:
    args = _parser(argv).parse_args(argv)
    # Parsing a scanned source may warn (invalid escape sequences): what a
    # scanned file says must not reach stderr, raw, as a warning.
    warnings.simplefilter("ignore", SyntaxWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    # Whatever a scanned name holds, writing it must not fail on a strict stdout.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    try:
        return _dispatch(args)
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    except Exception:
        # The API catches what one input or module raises; this is a bug outside
        # that (argument handling, rendering). Still no bare traceback.
        print("abiscan: internal error (please report it):", file=sys.stderr)
        import traceback  # start-up: only for this report

        from abiscan.report.escape import escape_text

        sys.stderr.write(escape_text(traceback.format_exc(), keep_newlines=True))
        return EXIT_INTERNAL


def run() -> int:
    """abiscan as a program (the console script, ``python -m abiscan``): :func:`main`
    on ``sys.argv``, in a process that exits when it returns."""
    from abiscan.collector import collector_spaced

    with collector_spaced():
        try:
            return main()
        finally:
            # CPython's last collection at exit walks every object still tracked
            # (some 100,000 once the pipeline is imported: 10 ms of a one-.so scan's
            # CPU) to free what the exit frees anyway; frozen, they are left to it.
            # Frozen before the thresholds come back, or the young ones are walked
            # once more as main returns.
            gc.freeze()


if __name__ == "__main__":
    raise SystemExit(run())
