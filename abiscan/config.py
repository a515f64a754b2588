"""Configuration: ``[tool.abiscan]`` in ``pyproject.toml``, or an ``abiscan.toml``.

The file is found by walking up from the working directory; in each directory
``abiscan.toml`` (keys at its top level) comes before ``pyproject.toml`` (keys
in its ``[tool.abiscan]`` table; a pyproject without that table is passed
over). Command-line flags override the file. Paths in the file are relative
to the directory that holds it. An unknown key, or a value of the wrong
type, is a :class:`~abiscan.errors.ConfigError` naming the file and the key.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from collections.abc import Mapping
from dataclasses import field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from abiscan.errors import ConfigError
from abiscan.records import record
from abiscan.report.findings import Finding, Severity

if TYPE_CHECKING:  # the command line reads the configuration before any scan
    from abiscan.report.model import Report

__all__ = [
    "FAIL_ON",
    "Config",
    "FailOn",
    "Policy",
    "check_code_prefix",
    "find_config",
    "load_config",
    "parse_config",
]

FailOn = Literal["error", "warning", "never"]
FAIL_ON: tuple[FailOn, ...] = ("error", "warning", "never")


@record
class Policy:
    """Which findings are reported, at which severity, and which fail the run."""

    select: tuple[str, ...] = ()  # code prefixes; empty: every code
    ignore: tuple[str, ...] = ()
    fail_on: FailOn = "error"
    severity: Mapping[str, Severity] = field(default_factory=dict)  # code prefix -> severity
    per_path_ignores: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    per_module_ignores: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def keeps(self, f: Finding) -> bool:
        if self.select and not f.code.startswith(tuple(self.select)):
            return False
        if f.code.startswith(tuple(self.ignore)):
            return False
        paths = [p for p in (f.path, f.source_path) if p]
        for pattern, codes in self.per_path_ignores.items():
            if any(fnmatch.fnmatchcase(p, pattern) for p in paths) and f.code.startswith(codes):
                return False
        for pattern, codes in self.per_module_ignores.items():
            if f.module and fnmatch.fnmatchcase(f.module, pattern) and f.code.startswith(codes):
                return False
        return True

    def severity_of(self, f: Finding) -> Severity:
        # The longest matching prefix wins: ABI107 over ABI1.
        best = max((p for p in self.severity if f.code.startswith(p)), key=len, default=None)
        return f.severity if best is None else self.severity[best]

    def _lowered(self, f: Finding, failing: tuple[Severity, ...]) -> bool:
        severity = self.severity_of(f)
        return severity is not f.severity and severity not in failing

    def apply(self, report: Report) -> Report:
        """The report with the findings this policy keeps, at their configured severity."""
        kept = [replace(f, severity=self.severity_of(f)) for f in report.findings if self.keeps(f)]
        return replace(report, findings=tuple(sorted(kept, key=Finding.sort_key)))

    def fails(self, original: Report, applied: Report) -> bool:
        """Whether the run fails: a finding still shown at or above ``fail_on``, or a
        module predicted to fail, unless the policy accepted a finding about its chain
        (ignored it, or lowered it below ``fail_on``)."""
        if self.fail_on == "never":
            return False
        worst = {"error": (Severity.ERROR,), "warning": (Severity.ERROR, Severity.WARNING)}
        failing = worst[self.fail_on]
        if any(f.severity in failing for f in applied.findings):
            return True
        accepted = {
            f.module
            for f in original.findings
            if f.module and (not self.keeps(f) or self._lowered(f, failing))
        }
        return any(
            m.outcome == "error" and not accepted.intersection(m.chain or (m.name,))
            for m in original.modules
        )


@record
class Config:
    """A configuration file, read. Unset keys are ``None``."""

    path: Path | None = None
    runtime: str | None = None
    arch: str | None = None
    python: str | None = None
    glibc: str | None = None
    target: Path | None = None  # a target profile file
    layers: tuple[Path, ...] | None = None
    function: Path | None = None
    site_packages: tuple[Path, ...] | None = None
    imports: tuple[str, ...] | None = None
    format: str | None = None
    output: Path | None = None
    policy: Policy = field(default_factory=Policy)


def find_config(start: Path) -> Path | None:
    """The configuration file that applies in ``start``: the nearest one walking up."""
    for directory in (start, *start.parents):
        candidate = directory / "abiscan.toml"
        if candidate.is_file():
            return candidate
        pyproject = directory / "pyproject.toml"
        if not pyproject.is_file() or not _may_configure(pyproject):
            continue
        if "abiscan" in _read(pyproject).get("tool", {}):
            return pyproject
    return None


def _may_configure(pyproject: Path) -> bool:
    """Whether a ``pyproject.toml`` can hold ``[tool.abiscan]``: it names abiscan, or
    has an escape that could spell the name. Most have neither, and are not parsed
    (importing and running the TOML parser was some 10 ms of a scan's start-up)."""
    try:
        text = pyproject.read_bytes()
    except OSError:
        return True  # _read reports it
    return b"abiscan" in text or b"\\" in text


def _read(path: Path) -> dict[str, Any]:
    # Imported here: most runs have no configuration file to parse.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        with path.open("rb") as f:
            data: dict[str, Any] = tomllib.load(f)
            return data
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_config(path: Path) -> Config:
    """Read one file: an ``abiscan.toml``, or a ``pyproject.toml``'s ``[tool.abiscan]``."""
    data = _read(path)
    if path.name == "pyproject.toml":
        table = data.get("tool", {}).get("abiscan")
        if table is None:
            raise ConfigError(f"{path}: no [tool.abiscan] table")
        return parse_config(table, path, where=f"{path} [tool.abiscan]")
    return parse_config(data, path, where=str(path))


_STR_KEYS = ("runtime", "arch", "python", "glibc", "format")
_KNOWN = frozenset(
    {
        *_STR_KEYS,
        "target",
        "layers",
        "function",
        "site-packages",
        "imports",
        "output",
        "select",
        "ignore",
        "fail-on",
        "severity",
        "per-path-ignores",
        "per-module-ignores",
    }
)
_SEVERITIES = {s.value: s for s in Severity}


class _Reader:
    """Typed access to one table, with errors that name the file and the key."""

    def __init__(self, table: Mapping[str, Any], where: str) -> None:
        self.table, self.where = table, where

    def fail(self, key: str, expected: str) -> ConfigError:
        return ConfigError(f"{self.where}: '{key}' must be {expected}, not {self.table[key]!r}")

    def string(self, key: str) -> str | None:
        value = self.table.get(key)
        if value is not None and not isinstance(value, str):
            raise self.fail(key, "a string")
        return value

    def strings(self, key: str) -> tuple[str, ...] | None:
        value = self.table.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "a string or a list of strings")
        return tuple(value)

    def table_of(self, key: str) -> dict[str, Any]:
        value = self.table.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "a table")
        return value


def parse_config(
    table: Mapping[str, Any], path: Path | None = None, *, where: str = "configuration"
) -> Config:
    """A configuration from its table; relative paths are resolved against ``path``'s folder."""
    unknown = sorted(set(table) - _KNOWN)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known keys: {', '.join(sorted(_KNOWN))})"
        )
    r = _Reader(table, where)
    base = path.parent if path else Path()

    def one(key: str) -> Path | None:
        value = r.string(key)
        return None if value is None else base / value

    def many(key: str) -> tuple[Path, ...] | None:
        values = r.strings(key)
        return None if values is None else tuple(base / v for v in values)

    strs = {key: r.string(key) for key in _STR_KEYS}
    return Config(
        path=path,
        runtime=strs["runtime"],
        arch=strs["arch"],
        python=strs["python"],
        glibc=strs["glibc"],
        format=strs["format"],
        target=one("target"),
        layers=many("layers"),
        function=one("function"),
        site_packages=many("site-packages"),
        imports=r.strings("imports"),
        output=one("output"),
        policy=_policy(r),
    )


def _codes(r: _Reader, key: str) -> tuple[str, ...]:
    codes = r.strings(key) or ()
    for code in codes:
        check_code_prefix(code, f"{r.where}: '{key}'")
    return codes


def check_code_prefix(code: str, where: str) -> None:
    """A code or a prefix of one: ``ABI``, ``ABI1``, ``ABI10``, ``ABI101``."""
    if not re.fullmatch(r"ABI[0-9]{0,3}", code):
        raise ConfigError(f"{where}: {code!r} is not a finding code or code prefix (ABI1, ABI101)")


def _policy(r: _Reader) -> Policy:
    fail_on = r.string("fail-on") or "error"
    if fail_on not in FAIL_ON:
        raise r.fail("fail-on", "'error', 'warning' or 'never'")
    severity = {}
    for code, level in r.table_of("severity").items():
        check_code_prefix(code, f"{r.where}: 'severity'")
        if level not in _SEVERITIES:
            raise ConfigError(
                f"{r.where}: severity of {code} must be 'error', 'warning' or 'info', not {level!r}"
            )
        severity[code] = _SEVERITIES[level]
    ignores = {}
    for key in ("per-path-ignores", "per-module-ignores"):
        sub = _Reader(r.table_of(key), f"{r.where}: '{key}'")
        ignores[key] = {pattern: _codes(sub, pattern) for pattern in sub.table}
    return Policy(
        select=_codes(r, "select"),
        ignore=_codes(r, "ignore"),
        fail_on=fail_on,  # checked against FAIL_ON above
        severity=severity,
        per_path_ignores=ignores["per-path-ignores"],
        per_module_ignores=ignores["per-module-ignores"],
    )
