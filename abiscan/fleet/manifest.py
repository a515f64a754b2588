"""The audit manifest: which stacks, on which targets.

A manifest is TOML or JSON (``audit-manifest.schema.json`` beside this module
describes it). Paths are local (relative ones are read from the manifest's
folder) or URLs; the targets are built-in target names, or ``"all"``.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from abiscan.errors import AbiscanError
from abiscan.records import record
from abiscan.target.profiles import builtin_targets

__all__ = [
    "MANIFEST_SCHEMA",
    "Manifest",
    "ManifestError",
    "Role",
    "StackInput",
    "StackSpec",
    "is_url",
    "load_manifest",
    "parse_manifest",
]

MANIFEST_SCHEMA = "audit-manifest.schema.json"

Role = Literal["layer", "function", "declared"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*$")
_STACK_KEYS = {"name", "layers", "function", "declared"}
_TOP_KEYS = {"schema_version", "targets", "stacks"}


class ManifestError(AbiscanError, ValueError):
    """The manifest cannot be read or does not follow the schema. The text says where."""


@record
class StackInput:
    """One input of a stack: ``location`` as the manifest writes it (the name the
    records and reports use), ``where`` the absolute path or URL it is read from."""

    role: Role
    location: str
    where: str


@record
class StackSpec:
    name: str
    inputs: tuple[StackInput, ...]  # layers in attach order, then function, then declared

    def of_role(self, role: Role) -> list[StackInput]:
        return [i for i in self.inputs if i.role == role]


@record
class Manifest:
    stacks: tuple[StackSpec, ...]
    targets: tuple[str, ...]  # built-in target names, in the order the records list them


def is_url(text: str) -> bool:
    # A one-letter "scheme" is a Windows drive, not a URL.
    return len(urlsplit(text).scheme) > 1


def load_manifest(path: str | Path) -> Manifest:
    """Read a manifest file (``.toml``, or JSON for any other name)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read: {exc.strerror or exc}") from None
    data = _decode(raw, p.suffix.lower() == ".toml", str(path))
    return parse_manifest(data, base=p.resolve().parent, label=str(path))


def _decode(raw: bytes, toml: bool, label: str) -> Any:
    try:
        if toml:
            tomllib = _toml_module(label)
            return tomllib.loads(raw.decode("utf-8"))
        return json.loads(raw.decode("utf-8"))
    except ManifestError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{label}: not valid {'TOML' if toml else 'JSON'}: {exc}") from None


def _toml_module(label: str) -> Any:
    for name in ("tomllib", "tomli"):  # tomllib from Python 3.11; tomli before
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise ManifestError(
        f"{label}: a TOML manifest needs Python 3.11 or the tomli package; "
        "or write the manifest as JSON"
    )


def parse_manifest(data: Any, base: Path, label: str = "manifest") -> Manifest:
    """Check a decoded manifest against the rules of the schema, resolving paths from ``base``."""
    if not isinstance(data, Mapping):
        raise ManifestError(f"{label}: the manifest must be a table/object")
    extra = sorted(set(data) - _TOP_KEYS)
    if extra:
        raise ManifestError(f"{label}: unknown key {extra[0]!r}")
    if data.get("schema_version", 1) != 1:
        raise ManifestError(f"{label}: schema_version must be 1")
    targets = _targets(data.get("targets"), label)
    stacks_raw = data.get("stacks")
    if not isinstance(stacks_raw, list) or not stacks_raw:
        raise ManifestError(f"{label}: 'stacks' must be a non-empty list")
    stacks = [_stack(s, i, base, label) for i, s in enumerate(stacks_raw)]
    seen: set[str] = set()
    for s in stacks:
        if s.name in seen:
            raise ManifestError(f"{label}: two stacks are named {s.name!r}")
        seen.add(s.name)
    return Manifest(stacks=tuple(stacks), targets=targets)


def _targets(raw: Any, label: str) -> tuple[str, ...]:
    known = [t.name for t in builtin_targets()]
    if raw == "all":
        return tuple(known)
    if not isinstance(raw, list) or not raw or not all(isinstance(t, str) for t in raw):
        raise ManifestError(f"{label}: 'targets' must be \"all\" or a non-empty list of names")
    for name in raw:
        if name not in known:
            raise ManifestError(
                f"{label}: unknown target {name!r}; built-in targets: {', '.join(known)}"
            )
    if len(set(raw)) != len(raw):
        raise ManifestError(f"{label}: a target is listed twice")
    return tuple(raw)


def _stack(raw: Any, index: int, base: Path, label: str) -> StackSpec:
    where = f"{label}: stacks[{index}]"
    if not isinstance(raw, Mapping):
        raise ManifestError(f"{where}: must be a table/object")
    extra = sorted(set(raw) - _STACK_KEYS)
    if extra:
        raise ManifestError(f"{where}: unknown key {extra[0]!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ManifestError(f"{where}: 'name' must be a name of letters, digits and ._:@+-")
    layers = raw.get("layers", [])
    if not isinstance(layers, list) or not all(isinstance(x, str) and x for x in layers):
        raise ManifestError(f"{where}: 'layers' must be a list of paths or URLs")
    inputs = [_input("layer", x, base) for x in layers]
    for role in ("function", "declared"):
        value = raw.get(role)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise ManifestError(f"{where}: {role!r} must be a path or URL")
        inputs.append(_input(role, value, base))
    if not any(i.role != "declared" for i in inputs):
        raise ManifestError(f"{where}: give at least one layer or a function")
    return StackSpec(name=name, inputs=tuple(inputs))


def _input(role: Role, location: str, base: Path) -> StackInput:
    if is_url(location):
        return StackInput(role=role, location=location, where=location)
    return StackInput(role=role, location=location, where=str(base / location))
