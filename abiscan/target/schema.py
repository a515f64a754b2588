"""Validation of ``--target`` profiles against ``data/target.schema.json``.

A small validator for the part of JSON Schema (2020-12) that schema uses:
``type``, ``properties``, ``required``, ``items``, ``enum``, ``pattern``,
``minimum``/``maximum``, ``maxLength``, ``minItems``/``maxItems``,
``oneOf`` and local ``$ref``. The standard library is enough for that subset,
so abiscan needs no validator dependency (docs/decisions.md). Messages name
the field by its JSON path (``system.libraries[0]``).

Before anything is parsed, the text's size and nesting depth are checked
against the budgets (:class:`abiscan.limits.Limits`): a profile is small and
flat, and a deep one would exhaust the parser's stack.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from abiscan.errors import TargetError
from abiscan.limits import DEFAULT_LIMITS, Limits
from abiscan.target._data import read_json

__all__ = ["SchemaError", "check_json_depth", "parse_profile", "target_schema", "validate"]

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


class SchemaError(TargetError):
    """A profile does not match the schema; the text names the field."""


@cache
def target_schema() -> dict[str, Any]:
    """The JSON Schema of target profiles, as shipped in the package."""
    schema: dict[str, Any] = read_json("target.schema.json")
    return schema


def check_json_depth(text: str, limit: int) -> None:
    """Refuse JSON text nested deeper than ``limit`` before the parser recurses into it."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                raise SchemaError(
                    f"JSON nested deeper than {limit} levels, over the budget "
                    "(--limits target_depth=N)"
                )
        elif ch in "]}":
            depth -= 1


def parse_profile(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """The profile in ``raw`` (UTF-8 JSON), checked against the budgets and the schema."""
    if len(raw) > limits.target_bytes:
        raise SchemaError(
            f"{len(raw)} bytes, over the budget of {limits.target_bytes} (--limits target_bytes=N)"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SchemaError(f"not a JSON target profile: not UTF-8 text: {exc}") from None
    check_json_depth(text, limits.target_depth)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"not a JSON target profile: {exc}") from None
    except (RecursionError, ValueError) as exc:  # huge numbers, deep nesting the scan missed
        raise SchemaError(f"not a JSON target profile: {exc}") from None
    validate(data, target_schema())
    assert isinstance(data, dict)  # the schema's top-level type
    return data


def validate(
    value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None, where: str = ""
) -> None:
    """Raise :class:`SchemaError` naming the first field of ``value`` the schema rejects."""
    root = root if root is not None else schema
    if "$ref" in schema:
        validate(value, _resolve(root, schema["$ref"]), root, where)
        return
    if "oneOf" in schema:
        _one_of(value, schema["oneOf"], root, where)
        return
    name = f"target field '{where}'" if where else "a target profile"
    types = schema.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(value, t) for t in allowed):
            raise SchemaError(
                f"{name} must be {' or '.join(_article(t) for t in allowed)}, not {_show(value)}"
            )
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(json.dumps(v) for v in schema["enum"])
        raise SchemaError(f"{name} must be one of {choices}, not {_show(value)}")
    if isinstance(value, str):
        _string(value, schema, name)
    elif isinstance(value, int) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise SchemaError(f"{name} must be at least {schema['minimum']}, not {value}")
        if "maximum" in schema and value > schema["maximum"]:
            raise SchemaError(f"{name} must be at most {schema['maximum']}, not {_show(value)}")
    elif isinstance(value, list):
        _array(value, schema, root, where, name)
    elif isinstance(value, dict):
        missing = [key for key in schema.get("required", ()) if key not in value]
        if missing:
            what = f"target field '{where}'" if where else "target"
            raise SchemaError(f"{what} is missing {', '.join(missing)}")
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                validate(value[key], sub, root, _join(where, key))


def _string(value: str, schema: dict[str, Any], name: str) -> None:
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise SchemaError(f"{name} is longer than {schema['maxLength']} characters")
    pattern = schema.get("pattern")
    if pattern is not None and not re.search(pattern, value):
        hint = schema.get("description", f"matching {pattern}")
        raise SchemaError(f"{name} must be {hint}, not {_show(value)}")


def _array(
    value: list[Any], schema: dict[str, Any], root: dict[str, Any], where: str, name: str
) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        raise SchemaError(f"{name} must have at least {schema['minItems']} items")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        raise SchemaError(f"{name} must have at most {schema['maxItems']} items")
    items = schema.get("items")
    if items is not None:
        for i, item in enumerate(value):
            validate(item, items, root, f"{where}[{i}]")


def _one_of(value: Any, options: list[dict[str, Any]], root: dict[str, Any], where: str) -> None:
    errors = []
    for option in options:
        try:
            validate(value, option, root, where)
        except SchemaError as exc:
            errors.append(str(exc))
        else:
            return
    # The most specific complaint: the one that got deepest into the value.
    raise SchemaError(max(errors, key=len))


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise SchemaError(f"schema reference {ref!r} is not local")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    assert isinstance(node, dict)
    return node


def _is_type(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[name])


def _article(name: str) -> str:
    return {"integer": "an integer", "array": "a list", "object": "an object", "null": "null"}.get(
        name, f"a {name}"
    )


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
